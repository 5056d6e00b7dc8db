"""model=: a name under models/ or a path to any .tflite file, and what models/<name>/model.toml says.

models/<name>/model.toml (every key optional):

    name = "cifar10"                  # default: the directory's name
    file = "model.tflite"             # default: model.tflite (`model = ...` works too)
    description = "..."
    source = "how it was made / where it comes from"
    licence = "Apache-2.0"
    labels = ["airplane", "automobile", ...]

    [[samples]]                       # real inputs validation runs besides the random ones
    file = "samples/cat.npy"          # a numpy array, relative to the model's directory
    input = 0                         # which model input it feeds (default 0)
    offset = -128                     # added before the cast (e.g. uint8 image -> int8 model)
    quantize = true                   # float data -> the input's dtype with its scale/zero point
    max_runs = 4                      # a file holding several inputs back to back gives this many

    [[inputs]]                        # the quantization the samples were made for (optional):
    scale = 0.0039                    # an integer sample fed to a float input is dequantized with it
    zero_point = -128

    [float]                           # another flavour of the same model: model=cifar10:float
    model = "model_float.tflite"      # builds as cifar10_float, with the same samples

A path model (model=../x.tflite) has no model.toml: its name is the file's stem. Any model can be
given extra real inputs on the command line: samples=a.npy[,b.npy] (with_samples). Such a file
feeds input 0; an array of the input's dtype is used as is, any other (a uint8 image, float
features) is taken as real values and quantized with the input's scale and zero point.
"""
from __future__ import annotations

import difflib
import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import KilnError, paths
from .aot import c_identifier

MODELS_DIR = "models"


@dataclass
class Model:
    name: str  # as the user knows it; also the build directory's name
    path: Path  # the .tflite
    directory: Path | None = None  # models/<name>/ when the model is one of the project's
    meta: dict = field(default_factory=dict)  # model.toml

    @property
    def c_name(self) -> str:
        return c_identifier(self.name)

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels", []))

    def digest(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def model_names(root: Path) -> list[str]:
    base = Path(root) / MODELS_DIR
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.tflite")))


def resolve(root: Path, spec: str) -> Model:
    """The model `spec` names: a directory under models/, a path to a model's folder (one holding
    a model.toml or model.tflite), or a path to a .tflite file. Relative paths are from where the
    user stands (paths.caller_dir), then from the checkout."""
    root = Path(root)
    if not spec:
        raise KilnError("model= is empty: give a name from models/ or a path to a .tflite file")
    looks_like_path = spec.endswith(".tflite") or "/" in spec or spec.startswith(".")
    if looks_like_path:
        path, flavour = _user_file(root, spec), ""
        if not path.exists() and ":" in spec:  # models/cifar10:float
            head, _, flavour = spec.rpartition(":")
            path = _user_file(root, head)
        if path.is_dir():
            if not ((path / "model.toml").is_file() or any(path.glob("*.tflite"))):
                raise KilnError(f"model={spec}: the folder {path} holds no model.toml and no .tflite: "
                                f"give the .tflite file (model={Path(spec) / 'model.tflite'}) or a model's "
                                f"folder")
            return _from_directory(root, path, spec, path.name, flavour)
        if not path.is_file():
            raise KilnError(f"model file {spec} not found (model= takes a name from models/ or a path "
                            f"to a .tflite file)")
        return Model(name=build_name(path.stem), path=path.resolve())
    spec, _, flavour = spec.partition(":")
    directory = root / MODELS_DIR / spec
    if not directory.is_dir():
        names = model_names(root)
        close = difflib.get_close_matches(spec, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        listed = ", ".join(names) if names else "none yet"
        raise KilnError(f"unknown model '{spec}'.{hint} Models in {MODELS_DIR}/: {listed}; or give a "
                        f"path to a .tflite file")
    return _from_directory(root, directory, spec, spec, flavour)


def build_name(name: str) -> str:
    """A model's name as a folder and file name of its build: the compiler runs through a shell
    (SCons' `sh -c`), so a `;` or a quote from a file name must not reach it."""
    return "".join("_" if c in paths.SHELL_SPECIAL else c for c in name)


def _user_file(root: Path, spec: str) -> Path:
    """Where the user stands first, then the checkout (paths.user_file; `root` for a test's project)."""
    path = paths.user_file(spec)
    if not path.exists() and not Path(os.path.expanduser(spec)).is_absolute() and (root / spec).exists():
        return root / spec
    return path


def _from_directory(root: Path, directory: Path, spec: str, default_name: str, flavour: str) -> Model:
    meta = read_toml(directory / "model.toml")
    name = str(meta.get("name", default_name))
    table = meta
    if flavour:
        table = meta.get(flavour)
        flavours = [k for k, v in meta.items() if isinstance(v, dict) and ("model" in v or "file" in v)]
        if not isinstance(table, dict) or not flavours or flavour not in flavours:
            raise KilnError(f"model {spec} has no flavour '{flavour}' (flavours in model.toml: "
                            f"{', '.join(flavours) or 'none'})")
        name = f"{name}_{flavour}"
    path = directory / table.get("file", table.get("model", "model.tflite"))
    if not path.is_file():
        raise KilnError(f"{_shown(root, directory)}/ has no {path.name}: add the .tflite or set "
                        f"`file` in model.toml")
    return Model(name=build_name(name), path=path, directory=directory, meta=meta)


def _shown(root: Path, directory: Path) -> str:
    try:
        return str(directory.relative_to(root))
    except ValueError:
        return str(directory)


def read_toml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as f:
            meta = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KilnError(f"{path}: {e}") from None
    samples = meta.get("samples", [])
    if not isinstance(samples, list) or not all(isinstance(s, dict) and "file" in s for s in samples):
        raise KilnError(f"{path}: `samples` must be [[samples]] tables, each with a `file`")
    return meta


def load_samples(model: Model, inputs) -> list[list[np.ndarray]]:
    """Input sets built from the model's [[samples]]. `inputs`: the model's input descriptions
    (dtype, shape, scale, zero_point: runner.airunner.TensorDesc or alike). A model with several
    inputs needs a sample for each; sets are formed run by run."""
    if not model.meta.get("samples"):
        return []
    per_input: dict[int, list[np.ndarray]] = {}
    for entry in model.meta["samples"]:
        index = int(entry.get("input", 0))
        if not 0 <= index < len(inputs):
            raise KilnError(f"{model.name}: sample {entry['file']} feeds input {index}, the model has "
                            f"{len(inputs)}")
        per_input.setdefault(index, []).extend(_sample_arrays(model, entry, inputs[index]))
    if set(per_input) != set(range(len(inputs))):
        return []  # samples do not cover every input: nothing to run
    runs = min(len(v) for v in per_input.values())
    return [[per_input[i][r] for i in range(len(inputs))] for r in range(runs)]


def with_samples(model: Model, files: list[str], max_runs: int = 4) -> Model:
    """The model with extra [[samples]] (samples=a.npy,b.npy: paths as the user typed them,
    relative to the working directory). Each feeds input 0, quantized if its dtype is not the
    input's ("auto"); a file holding several inputs back to back gives up to max_runs of them."""
    entries = []
    for name in files:
        path = paths.user_path(name)
        if not path.is_file():
            raise KilnError(f"samples={name}: no such file (give .npy arrays, comma-separated)")
        entries.append({"file": str(path), "quantize": "auto", "max_runs": max_runs})
    meta = dict(model.meta, samples=[*model.meta.get("samples", []), *entries])
    return Model(name=model.name, path=model.path, directory=model.directory, meta=meta)


def _sample_arrays(model: Model, entry: dict, desc) -> list[np.ndarray]:
    path = (model.directory or Path.cwd()) / entry["file"]
    data = _read_sample(model, path)
    if entry.get("quantize") == "auto":
        # the input's own dtype: ready to feed; anything else: real values to quantize
        entry = dict(entry, quantize=data.dtype != np.dtype(desc.dtype) and bool(desc.scale))
    source_int = np.issubdtype(data.dtype, np.integer)
    data = data.astype(np.float64) + float(entry.get("offset", 0))
    dtype = np.dtype(desc.dtype)
    quant = _declared_input_quant(model, int(entry.get("input", 0)))
    if source_int and np.issubdtype(dtype, np.floating) and quant and not entry.get("offset"):
        # an int8 sample for the float flavour: dequantize as the int8 model's input would
        data = (data - quant[1]) * quant[0]
    if entry.get("quantize"):
        if not desc.scale:
            raise KilnError(f"{model.name}: sample {entry['file']} asks to quantize, but input "
                            f"'{desc.name}' is not quantized")
        data = np.round(data / desc.scale) + desc.zero_point
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max)
    size = int(np.prod(desc.shape))
    flat = data.astype(dtype).ravel()
    if flat.size % size:
        raise KilnError(f"{model.name}: sample {entry['file']} has {flat.size} values, not a multiple "
                        f"of input '{desc.name}' {list(desc.shape)}")
    count = min(flat.size // size, int(entry.get("max_runs", 4)))
    return [flat[i * size:(i + 1) * size].reshape(desc.shape) for i in range(count)]


def _read_sample(model: Model, path: Path) -> np.ndarray:
    """A sample file as a non-empty array of finite real numbers, or a KilnError naming the file."""
    bad = f"{model.name}: sample {path}"
    try:
        data = np.load(path, allow_pickle=False)
    except OSError as e:
        raise KilnError(f"{bad}: cannot read it: {e.strerror or e}") from None
    except ValueError:
        # np.load takes anything that is not .npy for a pickle, and pickles are refused
        raise KilnError(f"{bad} is not a numpy array file (.npy): write it with numpy.save(path, array) "
                        f"of numbers") from None
    if not isinstance(data, np.ndarray):
        raise KilnError(f"{bad} is an .npz archive: give one .npy array per file")
    if data.dtype.kind == "c":
        raise KilnError(f"{bad} holds complex numbers ({data.dtype}): inputs are real")
    if data.dtype.kind not in "biuf":
        raise KilnError(f"{bad} holds {data.dtype} values, not numbers: save a numeric array")
    if data.size == 0:
        raise KilnError(f"{bad} is an empty array {list(data.shape)}: it holds no input")
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        count = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise KilnError(f"{bad} holds {count} NaN or infinite value(s): inputs must be finite numbers")
    return data


def _declared_input_quant(model: Model, index: int) -> tuple[float, int] | None:
    inputs = model.meta.get("inputs", [])
    if isinstance(inputs, list) and index < len(inputs) and isinstance(inputs[index], dict):
        entry = inputs[index]
        if "scale" in entry and "zero_point" in entry:
            return float(entry["scale"]), int(entry["zero_point"])
    return None
