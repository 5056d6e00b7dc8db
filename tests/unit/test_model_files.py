"""The committed models under models/: metadata, files and samples agree with each other.

Every folder with a model.toml is checked against the LiteRT reference interpreter
(BUILTIN_REF kernels): the .tflite files load and run, their inputs and outputs are
what model.toml states, their operators are the listed ones, and every sample input
gives its stated top class. No TensorFlow needed.
"""

import pathlib
import tomllib

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter, OpResolverType

MODELS = pathlib.Path(__file__).resolve().parents[2] / "models"
MODEL_DIRS = sorted(p.parent for p in MODELS.glob("*/model.toml"))
REQUIRED_KEYS = ["name", "description", "source", "licence", "model", "labels",
                 "weights", "inputs", "outputs"]
TENSOR_KEYS = ["name", "shape", "dtype"]


def load_toml(folder):
    with open(folder / "model.toml", "rb") as f:
        return tomllib.load(f)


def variants(meta):
    """(file, inputs, outputs) for the main model and, if present, its float version."""
    yield meta["model"], meta["inputs"], meta["outputs"]
    if "float" in meta:
        flt = meta["float"]
        yield flt["model"], [flt["inputs"]], [flt["outputs"]]


def reference(path):
    it = Interpreter(model_path=str(path),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def read_model(path):
    return schema.ModelT.InitFromPackedBuf(pathlib.Path(path).read_bytes(), 0)


def op_name(model, op):
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    code = model.operatorCodes[op.opcodeIndex]
    return names[max(code.builtinCode, code.deprecatedBuiltinCode)]


def described_ops(path):
    """Operator names as model.toml lists them: NAME or NAME+FUSED_ACTIVATION."""
    acts = {v: k for k, v in vars(schema.ActivationFunctionType).items()
            if not k.startswith("_")}
    model = read_model(path)
    out = []
    for op in model.subgraphs[0].operators:
        act = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        out.append(op_name(model, op) + (f"+{acts[act]}" if act else ""))
    return out


def as_input(sample, sample_detail, detail):
    """A sample (stored for the main model's input) converted to another variant's input."""
    if np.dtype(detail["dtype"]) == sample.dtype:
        return sample
    scale, zero_point = sample_detail["quantization"]
    return ((sample.astype(np.float32) - zero_point) * scale).astype(detail["dtype"])


def test_models_folder_has_cifar10():
    assert MODELS / "cifar10" in MODEL_DIRS


@pytest.fixture(params=MODEL_DIRS, ids=lambda p: p.name)
def folder(request):
    return request.param


def test_toml_has_required_keys(folder):
    meta = load_toml(folder)
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    assert not missing, f"{folder.name}/model.toml lacks {missing}"
    assert meta["name"] == folder.name
    assert isinstance(meta["weights"].get("how"), str) and meta["weights"]["how"]
    for _, inputs, outputs in variants(meta):
        for tensor in inputs + outputs:
            assert all(k in tensor for k in TENSOR_KEYS), tensor
    for tensor in meta["inputs"]:
        assert "sample" in tensor, "each input says how to make a sample"


def test_files_run_with_stated_tensors(folder):
    meta = load_toml(folder)
    for file, inputs, outputs in variants(meta):
        it = reference(folder / file)
        for stated, detail in zip(inputs + outputs,
                                  it.get_input_details() + it.get_output_details()):
            assert detail["name"] == stated["name"]
            assert list(detail["shape"]) == stated["shape"]
            assert list(detail["shape_signature"]) == stated["shape"], "static shapes"
            assert np.dtype(detail["dtype"]).name == stated["dtype"]
            scale, zero_point = detail["quantization"]
            assert scale == pytest.approx(stated.get("scale", 0.0), rel=1e-7)
            assert zero_point == stated.get("zero_point", 0)
        assert len(it.get_input_details()) == len(inputs)
        assert len(it.get_output_details()) == len(outputs)
        # It runs, and its output has one score per label.
        for detail in it.get_input_details():
            it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        it.invoke()
        assert it.get_tensor(it.get_output_details()[0]["index"]).size == len(meta["labels"])


def test_listed_ops_are_the_files_ops(folder):
    meta = load_toml(folder)
    if "ops" not in meta:
        pytest.skip(f"{folder.name}/model.toml lists no ops")
    assert described_ops(folder / meta["model"]) == meta["ops"]["int8"]
    if "float" in meta:
        assert described_ops(folder / meta["float"]["model"]) == meta["ops"]["float32"]


def test_samples_give_expected_class(folder):
    meta = load_toml(folder)
    samples = meta.get("samples", [])
    if not samples:
        pytest.skip(f"{folder.name} has no samples")
    main_input = reference(folder / meta["model"]).get_input_details()[0]
    for file, _, _ in variants(meta):
        it = reference(folder / file)
        detail = it.get_input_details()[0]
        for sample in samples:
            x = np.load(folder / sample["file"])
            assert x.shape == tuple(main_input["shape"]) and x.dtype == main_input["dtype"]
            it.set_tensor(detail["index"], as_input(x, main_input, detail))
            it.invoke()
            scores = it.get_tensor(it.get_output_details()[0]["index"])[0]
            assert int(np.argmax(scores)) == sample["expected_class"], (file, sample["file"])
            assert meta["labels"][sample["expected_class"]] == sample["label"]


def test_cifar10_is_the_microtvm_network():
    """The layer structure the issue asks for: 5x5 'same' convs of 32, 32, 64 filters,
    3x3 stride-2 pools (max, then average twice), and a dense layer of 10."""
    meta = load_toml(MODELS / "cifar10")
    for file in (meta["model"], meta["float"]["model"]):
        model = read_model(MODELS / "cifar10" / file)
        graph = model.subgraphs[0]
        layers = []
        for op in graph.operators:
            name, opts = op_name(model, op), op.builtinOptions
            if name == "CONV_2D":
                weights = graph.tensors[op.inputs[1]].shape.tolist()
                layers.append(("conv", weights[0], weights[1:3], opts.padding, opts.strideH))
            elif name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                layers.append((name, opts.filterHeight, opts.filterWidth, opts.padding,
                               opts.strideH, opts.strideW))
            elif name == "FULLY_CONNECTED":
                layers.append(("dense", graph.tensors[op.outputs[0]].shape.tolist()))
        same = schema.Padding.SAME
        assert layers == [
            ("conv", 32, [5, 5], same, 1), ("MAX_POOL_2D", 3, 3, same, 2, 2),
            ("conv", 32, [5, 5], same, 1), ("AVERAGE_POOL_2D", 3, 3, same, 2, 2),
            ("conv", 64, [5, 5], same, 1), ("AVERAGE_POOL_2D", 3, 3, same, 2, 2),
            ("dense", [1, 10]),
        ], file
