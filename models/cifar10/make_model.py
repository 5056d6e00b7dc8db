#!/usr/bin/env python3
"""Build the CIFAR-10 CNN of the microTVM evaluation and write its .tflite files.

The network (the Arm CMSIS-NN CIFAR-10 example that the microTVM evaluation ran):

    input 32x32x3
    conv 5x5x32 'same' -> max-pool 3x3 stride 2 -> relu        32x32 -> 16x16
    conv 5x5x32 'same' -> relu -> avg-pool 3x3 stride 2         16x16 -> 8x8
    conv 5x5x64 'same' -> relu -> avg-pool 3x3 stride 2          8x8  -> 4x4
    flatten (1024) -> dense 10                                   logits, no softmax

The pools use 'same' padding so the sizes halve exactly (32 -> 16 -> 8 -> 4) as in
the original. The CIFAR-10 images cannot be fetched offline, so the weights come from
a short, seeded training run on a synthetic 10-class image task (see make_images);
the class names are CIFAR-10's only so the output layout is the familiar one.

Writes, next to this script (or into --out):
    model.tflite        int8, int8 input and output (full-integer quantization)
    model_float.tflite  float32
    samples/*.npy       one int8 input per class, [1, 32, 32, 3]
    model.toml          metadata; generated, so edit this script rather than the file

TensorFlow is a dev-only extra (requirements-models.txt), never needed to build
firmware. Run it in its own venv:

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install -r requirements-models.txt
    /tmp/tfvenv/bin/python models/cifar10/make_model.py

It takes about two minutes on two cores. Seeds are fixed everywhere and TensorFlow runs
with deterministic ops, fixed thread counts and oneDNN off, so the same TensorFlow
version on the same kind of CPU writes the same bytes.
"""

import argparse
import os
import pathlib
import sys
import tempfile

# Must be set before TensorFlow is imported: oneDNN picks kernels by CPU and
# thread count, which changes float round-off from machine to machine.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

SEED = 20240613
LABELS = ["airplane", "automobile", "bird", "cat", "deer",
          "dog", "frog", "horse", "ship", "truck"]
SIZE = 32
NUM_TRAIN = 8000
NUM_TEST = 2000
EPOCHS = 8
BATCH = 64
LEARNING_RATE = 2e-3
NUM_REPRESENTATIVE = 256

# The synthetic task. Class k is a striped pattern inside a round patch: the stripe
# angle is ORIENTATIONS_DEG[k % 5] and the colours come from PALETTES[k // 5], so a
# classifier needs both the spatial filters (angle) and the colour channels (palette).
ORIENTATIONS_DEG = [0.0, 36.0, 72.0, 108.0, 144.0]
PALETTES = [
    # (stripe colour, patch background colour), RGB in [0, 1]: warm, then cool
    ((0.95, 0.45, 0.15), (0.45, 0.10, 0.10)),
    ((0.20, 0.80, 0.90), (0.10, 0.15, 0.45)),
]


def make_images(rng, labels):
    """Images (uint8, [n, 32, 32, 3]) of the synthetic class of each label.

    Every nuisance is random: stripe angle jitter (+-8 deg), stripe frequency, phase,
    patch position and radius, colour jitter, brightness, a smooth random background
    and pixel noise, so the task is learnable but not by a single pixel.
    """
    n = len(labels)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    yy, xx = yy[None], xx[None]  # broadcast over images

    angle = np.deg2rad(np.array(ORIENTATIONS_DEG)[labels % 5]
                       + rng.uniform(-8.0, 8.0, n))[:, None, None]
    freq = rng.uniform(0.25, 0.45, n)[:, None, None]  # radians per pixel
    phase = rng.uniform(0.0, 2 * np.pi, n)[:, None, None]
    stripes = 0.5 + 0.5 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)

    cy = rng.uniform(9.0, 23.0, n)[:, None, None]
    cx = rng.uniform(9.0, 23.0, n)[:, None, None]
    radius = rng.uniform(8.0, 14.0, n)[:, None, None]
    # Soft edge so the patch border is not a hard step at an exact pixel.
    patch = np.clip(radius - np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2), 0.0, 1.0)

    stripe_rgb = np.array([PALETTES[k // 5][0] for k in labels])
    patch_rgb = np.array([PALETTES[k // 5][1] for k in labels])
    stripe_rgb = np.clip(stripe_rgb + rng.normal(0, 0.08, (n, 3)), 0, 1)[:, None, None, :]
    patch_rgb = np.clip(patch_rgb + rng.normal(0, 0.08, (n, 3)), 0, 1)[:, None, None, :]
    inside = patch_rgb + (stripe_rgb - patch_rgb) * stripes[..., None]

    # Background: a random grey-ish colour with a smooth random gradient.
    bg_rgb = rng.uniform(0.2, 0.8, (n, 1, 1, 3))
    gradient = (rng.uniform(-0.3, 0.3, (n, 1, 1, 1)) * (xx[..., None] / SIZE - 0.5)
                + rng.uniform(-0.3, 0.3, (n, 1, 1, 1)) * (yy[..., None] / SIZE - 0.5))
    background = bg_rgb + gradient

    image = background + (inside - background) * patch[..., None]
    image = image * rng.uniform(0.75, 1.15, (n, 1, 1, 1))
    image = image + rng.normal(0.0, 0.06, image.shape)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def make_dataset(rng, n):
    labels = rng.integers(0, len(LABELS), n)
    return make_images(rng, labels), labels


def to_float(images_u8):
    """The float model's input: pixels scaled to [0, 1]."""
    return images_u8.astype(np.float32) / 255.0


def build_model():
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=(SIZE, SIZE, 3), batch_size=1, name="image"),
        layers.Conv2D(32, 5, padding="same", name="conv1"),
        layers.MaxPooling2D(3, strides=2, padding="same", name="pool1"),
        layers.ReLU(name="relu1"),
        layers.Conv2D(32, 5, padding="same", name="conv2"),
        layers.ReLU(name="relu2"),
        layers.AveragePooling2D(3, strides=2, padding="same", name="pool2"),
        layers.Conv2D(64, 5, padding="same", name="conv3"),
        layers.ReLU(name="relu3"),
        layers.AveragePooling2D(3, strides=2, padding="same", name="pool3"),
        layers.Flatten(name="flatten"),
        layers.Dense(len(LABELS), name="logits"),
    ], name="cifar10")


def train(model, x, y):
    # Train on batches of 64 with a copy whose batch dimension is free; the
    # exported model keeps batch 1 so every shape in the .tflite is static.
    trainable = keras.models.clone_model(
        model, input_tensors=keras.Input(shape=(SIZE, SIZE, 3), name="image"))
    trainable.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    trainable.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=2)
    model.set_weights(trainable.get_weights())


def export_saved_model(model, folder):
    """A SavedModel of the model: the converter's input, with frozen variables.

    The explicit batch-1 signature keeps every shape static; with Keras' default
    (batch None) the converter turns Flatten into SHAPE/STRIDED_SLICE/PACK/RESHAPE.
    """
    signature = [tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="image")]
    model.export(str(folder), format="tf_saved_model", verbose=False, input_signature=signature)
    return str(folder)


def convert_float(saved_model):
    return tf.lite.TFLiteConverter.from_saved_model(saved_model).convert()


def convert_int8(saved_model, representative_images):
    def representative_dataset():
        for image in representative_images:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


# ----------------------------------------------------------------- checks with LiteRT

def interpreter(path, reference):
    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def quantize_input(images_u8, detail):
    """Model input from pixels: the float value x/255 quantized with the input's params."""
    if detail["dtype"] == np.float32:
        return to_float(images_u8)
    scale, zero_point = detail["quantization"]
    q = np.rint(to_float(images_u8) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def predict(it, model_inputs):
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    classes = []
    for x in model_inputs:
        it.set_tensor(inp["index"], x[None])
        it.invoke()
        classes.append(int(np.argmax(it.get_tensor(out["index"])[0])))
    return np.array(classes)


def describe_ops(path):
    """One string per operator: its name, plus its fused activation if it has one."""
    model = schema.ModelT.InitFromPackedBuf(pathlib.Path(path).read_bytes(), 0)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    act_names = {v: k for k, v in vars(schema.ActivationFunctionType).items()
                 if not k.startswith("_")}
    described = []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        act = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        described.append(f"{name}+{act_names[act]}" if act else name)
    return described


# ----------------------------------------------------------------------- model.toml

def toml_value(value):
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def toml_table(header, table):
    lines = [header] if header else []
    lines += [f"{key} = {toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def tensor_table(detail, sample_recipe=None):
    table = {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
    }
    scale, zero_point = detail["quantization"]
    if scale:
        table["scale"] = float(scale)
        table["zero_point"] = int(zero_point)
    if sample_recipe:
        table["sample"] = sample_recipe
    return table


def write_toml(out, info):
    parts = [
        "# Generated by make_model.py; edit the script and run it again rather than this file.\n",
        toml_table("", info["top"]),
        toml_table("[weights]", info["weights"]),
        toml_table("[[inputs]]", info["input"]),
        toml_table("[[outputs]]", info["output"]),
        toml_table("[float]", info["float"]),
        toml_table("[float.inputs]", info["float_input"]),
        toml_table("[float.outputs]", info["float_output"]),
        toml_table("[ops]", info["ops"]),
    ]
    parts += [toml_table("[[samples]]", s) for s in info["samples"]]
    (out / "model.toml").write_text("\n".join(parts))


# ----------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parent,
                        help="folder to write into (default: next to this script)")
    args = parser.parse_args(argv)
    out = args.out
    (out / "samples").mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    rng = np.random.default_rng(SEED)
    train_u8, train_y = make_dataset(rng, NUM_TRAIN)
    test_u8, test_y = make_dataset(rng, NUM_TEST)

    model = build_model()
    train(model, to_float(train_u8), train_y)

    int8_path, float_path = out / "model.tflite", out / "model_float.tflite"
    with tempfile.TemporaryDirectory() as tmp:
        saved_model = export_saved_model(model, pathlib.Path(tmp) / "saved_model")
        float_path.write_bytes(convert_float(saved_model))
        int8_path.write_bytes(convert_int8(saved_model, to_float(train_u8[:NUM_REPRESENTATIVE])))

    # Accuracy on the held-out synthetic images; the optimized kernels keep this quick.
    accuracy = {}
    for key, path in (("int8", int8_path), ("float32", float_path)):
        it = interpreter(path, reference=False)
        pred = predict(it, quantize_input(test_u8, it.get_input_details()[0]))
        accuracy[key] = float(np.mean(pred == test_y))
        print(f"{path.name}: synthetic test accuracy {accuracy[key]:.4f}")

    # One sample per class: the first test image that both files classify right
    # with the reference kernels, which is what validation compares against.
    ref_int8, ref_float = interpreter(int8_path, True), interpreter(float_path, True)
    int8_in = ref_int8.get_input_details()[0]
    samples = []
    for k, label in enumerate(LABELS):
        for i in np.flatnonzero(test_y == k):
            x_q = quantize_input(test_u8[i:i + 1], int8_in)
            x_f = quantize_input(test_u8[i:i + 1], ref_float.get_input_details()[0])
            if predict(ref_int8, x_q)[0] == k and predict(ref_float, x_f)[0] == k:
                break
        else:
            sys.exit(f"no test image of class {label} is classified right by both files")
        sample_file = f"samples/{k}_{label}.npy"
        np.save(out / sample_file, x_q)
        samples.append({"file": sample_file, "label": label, "expected_class": k})

    scale, zero_point = int8_in["quantization"]
    int8_out = ref_int8.get_output_details()[0]
    info = {
        "top": {
            "name": "cifar10",
            "description": (
                "CIFAR-10 CNN of the microTVM evaluation (Arm CMSIS-NN CIFAR-10 example): "
                "conv5x5x32 -> maxpool3x3/2 -> relu -> conv5x5x32 -> relu -> avgpool3x3/2 -> "
                "conv5x5x64 -> relu -> avgpool3x3/2 -> dense 10 (logits, no softmax); "
                "'same' padding throughout. int8 with int8 input and output."),
            "source": "models/cifar10/make_model.py",
            "licence": "Apache-2.0",
            "model": "model.tflite",
            "tensorflow_version": tf.__version__,
            "keras_version": keras.__version__,
            "labels": LABELS,
        },
        "weights": {
            "how": (
                f"Not trained on CIFAR-10 (not available offline). Trained from a seeded "
                f"initialization (seed {SEED}) for {EPOCHS} epochs (Adam, learning rate "
                f"{LEARNING_RATE}, batch {BATCH}) on {NUM_TRAIN} synthetic 32x32 RGB images of a "
                f"10-class task made by make_model.make_images: striped round patches whose stripe "
                f"angle (5 angles, 36 deg apart) and palette (warm or cool) give the class, with "
                f"random angle jitter, frequency, phase, position, size, colours, background, "
                f"brightness and noise. The class names are CIFAR-10's for the familiar output "
                f"layout only: on real photos the predictions mean nothing. int8: full-integer "
                f"post-training quantization calibrated on the first {NUM_REPRESENTATIVE} "
                f"training images (float32, x/255)."),
            "seed": SEED,
            "train_images": NUM_TRAIN,
            "test_images": NUM_TEST,
            "epochs": EPOCHS,
            "calibration_images": NUM_REPRESENTATIVE,
            "synthetic_test_accuracy_int8": round(accuracy["int8"], 4),
            "synthetic_test_accuracy_float32": round(accuracy["float32"], 4),
        },
        "input": tensor_table(int8_in, (
            f"int8 = pixel - 128 for an RGB image with pixel values 0..255 in HWC order "
            f"(the float value x = pixel/255 quantized with scale {float(scale)!r} and zero "
            f"point {int(zero_point)}); ready-made inputs are in samples/")),
        "output": tensor_table(int8_out),
        "float": {"model": "model_float.tflite"},
        "float_input": tensor_table(ref_float.get_input_details()[0], (
            "float32 = pixel/255 for an RGB image with pixel values 0..255 in HWC order; "
            "from an int8 sample q: (q + 128) / 255")),
        "float_output": tensor_table(ref_float.get_output_details()[0]),
        "ops": {"int8": describe_ops(int8_path), "float32": describe_ops(float_path)},
        "samples": samples,
    }
    write_toml(out, info)
    for key, ops in info["ops"].items():
        print(f"{key} ops: {', '.join(ops)}")
    print(f"wrote {int8_path} ({int8_path.stat().st_size} B), "
          f"{float_path} ({float_path.stat().st_size} B), {out / 'model.toml'}, "
          f"{len(samples)} samples")


if __name__ == "__main__":
    main()
