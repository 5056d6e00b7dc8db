"""Validation pieces without a device: output comparison, inputs, verdicts, model= resolution,
samples from model.toml, report.json merging."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinykiln import KilnError, models, report
from tinykiln.runner import validate as v
from tinykiln.runner.airunner import TensorDesc


def test_integer_outputs_must_be_bit_exact():
    ref = np.array([[1, -5, 127]], np.int8)
    assert v.compare(ref.copy(), ref) == (0, 0.0)
    dev = np.array([[1, -4, -128]], np.int8)
    assert v.compare(dev, ref) == (2, 255.0)  # no int8 wrap-around in the difference


def test_float_outputs_within_relative_tolerance():
    ref = np.array([1000.0, 1.0, 0.0, -3.0], np.float32)
    ok = ref * np.float32(1 + 5e-6)
    assert v.compare(ok, ref)[0] == 0
    bad = ref.copy()
    bad[1] = 1.0001
    n, diff = v.compare(bad, ref)
    assert n == 1 and diff == pytest.approx(1e-4, rel=1e-2)
    # near zero, the output's own scale decides: 1000 * 1e-3 * 1e-5 = 1e-5 allowed
    near_zero = ref.copy()
    near_zero[2] = 5e-6
    assert v.compare(near_zero, ref)[0] == 0
    nan = ref.copy()
    nan[0] = np.nan
    assert v.compare(nan, ref)[0] == 1


def test_shape_mismatch_is_an_error():
    with pytest.raises(KilnError, match="another model"):
        v.compare(np.zeros(3, np.int8), np.zeros(4, np.int8))


def test_random_inputs_are_seeded_and_cover_the_dtype():
    descs = [TensorDesc("a", "int8", (1, 500), 500, 0.1, 0), TensorDesc("b", "float32", (3,), 12, 0.0, 0)]
    one = v.random_inputs(descs, 3, seed=7)
    again = v.random_inputs(descs, 3, seed=7)
    other = v.random_inputs(descs, 3, seed=8)
    assert len(one) == 3 and all(len(s) == 2 for s in one)
    for x, y in zip(one, again):
        np.testing.assert_array_equal(x[0], y[0])
    assert not np.array_equal(one[0][0], other[0][0])
    assert one[0][0].dtype == np.int8 and one[0][0].shape == (1, 500)
    assert one[0][0].min() < -100 and one[0][0].max() > 100
    assert one[0][1].dtype == np.float32 and np.all(np.abs(one[0][1]) <= 1)


class _FakeRunner:
    """An AiRunner stand-in whose 'device' adds `error` to element 0 of the reference's output."""

    def __init__(self, error):
        self.error = error
        self.info = type("Info", (), {
            "outputs": [TensorDesc("y", "int8", (1, 4), 4, 0.5, 0)], "cycle_unit": "ns"})()

    def invoke(self, inputs):
        out = (inputs[0].astype(np.int16) // 2).astype(np.int8)
        out[0, 0] += self.error
        return [out], {"cycles": 100, "unit": "ns"}


class _FakeReference:
    outputs = [{"name": "y"}]

    def run(self, inputs):
        return [(inputs[0].astype(np.int16) // 2).astype(np.int8)]


def test_validate_counts_mismatches_and_writes_a_verdict():
    inputs = [[np.array([[2, 4, 6, 8]], np.int8)] for _ in range(3)]
    good = v.validate(_FakeRunner(0), _FakeReference(), inputs, sample_runs=1)
    assert good.passed and good.bit_exact and good.runs == 3 and good.sample_runs == 1
    line = v.verdict_line(good, "m", "host")
    assert line.startswith("validation PASS: m on host, 3 runs (2 random, 1 sample), bit-exact")
    assert "100 ns/inference" in line
    bad = v.validate(_FakeRunner(1), _FakeReference(), inputs)
    assert not bad.passed
    assert bad.outputs[0].runs_mismatching == 3 and bad.outputs[0].elements_mismatching == 3
    line = v.verdict_line(bad, "m", "host")
    assert "FAIL" in line and "output 0 'y' in 3 run(s)" in line
    block = bad.to_json()
    assert block["bit_exact"] is False and block["max_abs_difference"] == 1
    assert block["mismatching_outputs"][0]["elements"] == 3


# --- model= -------------------------------------------------------------------------------


def _project(tmp_path: Path) -> Path:
    d = tmp_path / "models" / "tiny"
    (d / "samples").mkdir(parents=True)
    (d / "model.tflite").write_bytes(b"not parsed here")
    np.save(d / "samples" / "img.npy", np.arange(24, dtype=np.uint8).reshape(2, 12) + 120)
    np.save(d / "samples" / "f.npy", np.array([0.0, 1.0, -1.0, 100.0], np.float32))
    (d / "model.toml").write_text(
        'name = "tiny"\nlabels = ["a", "b"]\n'
        '[[samples]]\nfile = "samples/img.npy"\noffset = -128\n'
        '[[samples]]\nfile = "samples/f.npy"\ninput = 1\nquantize = true\n'
    )
    return tmp_path


def test_model_by_name_reads_model_toml(tmp_path):
    root = _project(tmp_path)
    m = models.resolve(root, "tiny")
    assert m.name == "tiny" and m.path == root / "models/tiny/model.tflite" and m.labels == ["a", "b"]
    descs = [TensorDesc("x", "int8", (1, 12), 12, 1.0, 0), TensorDesc("f", "int8", (4,), 4, 0.5, 3)]
    sets = models.load_samples(m, descs)
    assert len(sets) == 1  # input 1 has one window: one complete set
    np.testing.assert_array_equal(sets[0][0].ravel(), np.arange(12) - 8)
    np.testing.assert_array_equal(sets[0][1], [3, 5, 1, 127])  # round(x / 0.5) + 3, saturated


def test_model_flavour_and_int8_samples_for_a_float_input(tmp_path):
    root = _project(tmp_path)
    d = root / "models/tiny"
    (d / "model_float.tflite").write_bytes(b"x")
    np.save(d / "samples" / "q.npy", np.array([-128, 0, 127], np.int8))
    (d / "model.toml").write_text(
        'model = "model.tflite"\n[[inputs]]\nscale = 0.5\nzero_point = -128\n'
        '[[samples]]\nfile = "samples/q.npy"\n[float]\nmodel = "model_float.tflite"\n'
    )
    m = models.resolve(root, "tiny:float")
    assert m.name == "tiny_float" and m.path.name == "model_float.tflite"
    sets = models.load_samples(m, [TensorDesc("x", "float32", (3,), 12, 0.0, 0)])
    np.testing.assert_array_equal(sets[0][0], np.array([0.0, 64.0, 127.5], np.float32))
    with pytest.raises(KilnError, match="no flavour 'fp16'.*float"):
        models.resolve(root, "tiny:fp16")


def test_model_by_path(tmp_path):
    f = tmp_path / "some net.tflite"
    f.write_bytes(b"x")
    m = models.resolve(tmp_path, str(f))
    assert m.name == "some net" and m.c_name == "some_net" and m.directory is None
    assert models.load_samples(m, []) == []


def test_unknown_model_suggests_the_closest(tmp_path):
    root = _project(tmp_path)
    with pytest.raises(KilnError, match="unknown model 'tinny'. Did you mean 'tiny'"):
        models.resolve(root, "tinny")
    with pytest.raises(KilnError, match="not found"):
        models.resolve(root, "missing/x.tflite")


def test_bad_model_toml_is_a_clear_error(tmp_path):
    root = _project(tmp_path)
    (root / "models/tiny/model.toml").write_text("name = \n")
    with pytest.raises(KilnError, match="model.toml"):
        models.resolve(root, "tiny")
    (root / "models/tiny/model.toml").write_text("[[samples]]\nfiles = 'x'\n")
    with pytest.raises(KilnError, match="each with a `file`"):
        models.resolve(root, "tiny")


# --- report.json --------------------------------------------------------------------------


def test_report_merge_keeps_other_blocks(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"regions": [{"name": "FLASH"}], "board": "x"}))
    report.merge(path, memory={"arena_bytes": 10})
    report.merge(path, validation={"runs": 3})
    data = json.loads(path.read_text())
    assert data == {"regions": [{"name": "FLASH"}], "board": "x", "memory": {"arena_bytes": 10},
                    "validation": {"runs": 3}}


def test_samples_option_adds_real_inputs_to_a_path_model(tmp_path):
    """samples=: the input's dtype is fed as is; anything else is quantized with the input's
    scale/zero point (a uint8 image for an int8 input of scale 1, zero point -128: p - 128); a file
    of several inputs back to back gives up to max_runs."""
    f = tmp_path / "net.tflite"
    f.write_bytes(b"x")
    m = models.resolve(tmp_path, str(f))
    np.save(tmp_path / "ready.npy", np.array([[-3, 0, 5]], np.int8))
    np.save(tmp_path / "image.npy", np.array([0, 128, 255, 7, 8, 9], np.uint8))
    np.save(tmp_path / "frames.npy", np.array([[0.0, 1.0, -1.0]] * 5, np.float32))
    with_s = models.with_samples(m, [str(tmp_path / n) for n in ("ready.npy", "image.npy", "frames.npy")],
                                 max_runs=3)
    sets = models.load_samples(with_s, [TensorDesc("x", "int8", (1, 3), 3, 1.0, -128)])
    got = [s[0].tolist() for s in sets]
    assert got[:3] == [[[-3, 0, 5]], [[-128, 0, 127]], [[-121, -120, -119]]]
    assert got[3:] == [[[-128, -127, -128]]] * 3  # 1.0 / 1 - 128; -1.0 clamps to -128; max_runs 3
    with pytest.raises(KilnError, match="samples=nope.npy: no such file"):
        models.with_samples(m, ["nope.npy"])


def test_samples_option_on_a_device_run(scons, tmp_path):
    """validate=1 samples=: the extra inputs run on the device beside the random ones."""
    import modelgen as mg

    mb = mg.ModelBuilder(3)
    x = mb.input((1, 8), "int8", name="input")
    y = mg.fully_connected(mb, x, 4, activation="RELU")
    model = tmp_path / "fc.tflite"
    model.write_bytes(mb.build([x], [y]))
    np.save(tmp_path / "features.npy", np.linspace(-2.0, 2.0, 16).astype(np.float32))
    r = scons("board=host", f"model={model}", "validate=1", "n=1", f"samples={tmp_path / 'features.npy'}")
    assert r.returncode == 0, r.output
    assert "validation PASS" in r.output and "(1 random, 2 sample)" in r.output, r.output


# --- the reference: a corrected copy, or none --------------------------------------------------

def _fc_model(tmp_path: Path, bias_axis: int = 0, version: int = 1) -> Path:
    import modelgen as mg

    path = tmp_path / f"fc_{bias_axis}_{version}.tflite"
    path.write_bytes(mg.fc_model_with(bias_axis, version))
    return path


def test_reference_runs_a_corrected_copy_of_what_the_importer_tolerates(tmp_path):
    """A stale quantized_dimension on a bias: the importer ignores it (as TFLite Micro does), LiteRT
    refuses the file, the reference runs a copy with quantized_dimension 0 and says so."""
    from tinykiln import tflite
    from tinykiln.runner.reference import Reference

    path = _fc_model(tmp_path, bias_axis=3)
    tflite.load(path)
    ref = Reference(path)
    assert "quantized_dimension must be in range" in ref.refused
    assert [str(c) for c in ref.corrections] == [
        "tensor 2 'fc/bias': quantized_dimension 3 -> 0 (a rank-0/1 tensor is quantized along axis 0 "
        "whatever the file says; LiteRT refuses the stale value, TFLite Micro ignores it)"]
    clean = Reference(_fc_model(tmp_path, bias_axis=0))
    assert clean.corrections == [] and clean.refused == ""
    x = np.arange(-40, 40, 10, dtype=np.int8).reshape(1, 8)
    np.testing.assert_array_equal(ref.run([x])[0], clean.run([x])[0])


def test_no_reference_names_litert_error(tmp_path):
    from tinykiln.runner.reference import NoReference, Reference

    with pytest.raises(NoReference, match="Didn't find op for builtin opcode 'FULLY_CONNECTED' version '99'.*"
                                          r"\(tinykiln, like TFLite Micro, does not check op versions"):
        Reference(_fc_model(tmp_path, version=99))
    # a correction that is not enough: LiteRT's errors on the file and on the copy are both named
    with pytest.raises(NoReference, match=r"version '99'.*; nor a copy with tensor 2 'fc/bias': "
                                          r"quantized_dimension 3 -> 0 .*: Didn't find op.*version '99'"):
        Reference(_fc_model(tmp_path, bias_axis=3, version=99))


def test_reference_copy_renames_a_tensor_whose_name_is_not_utf8(tmp_path):
    """LiteRT's Python API cannot decode such a name; the importer takes it as a label."""
    import modelgen as mg
    from ai_edge_litert import schema_py_generated as schema

    from tinykiln import tflite
    from tinykiln.runner.reference import Reference

    model = schema.ModelT.InitFromPackedBuf(mg.fc_model_with(), 0)
    model.subgraphs[0].tensors[0].name = b"in\x80put"
    path = tmp_path / "names.tflite"
    path.write_bytes(mg.pack(model))
    assert tflite.load(path).tensors[0].name == "in\ufffdput"
    ref = Reference(path)
    assert "utf-8" in ref.refused
    assert [(c.where, c.change) for c in ref.corrections] == [
        ("model.subgraphs[0].tensors[0].name", "b'in\\x80put' -> 'in\ufffdput'")]
    assert ref.inputs[0]["name"] == "in\ufffdput"


def test_validation_without_a_reference_compares_nothing_and_does_not_pass():
    from tinykiln.runner.reference import NoReference

    inputs = [[np.array([[2, 4, 6, 8]], np.int8)] for _ in range(3)]
    result = v.validate(_FakeRunner(0), NoReference("LiteRT cannot load m.tflite: no kernel"), inputs)
    assert not result.compared and not result.passed and not result.bit_exact
    assert result.cycles == [100, 100, 100]  # the device still ran every input
    line = v.verdict_line(result, "m", "host")
    assert line.startswith("validation NOT COMPARED: m on host, 3 runs (3 random, 0 sample) ran on the device, "
                           "none compared with a reference: LiteRT cannot load m.tflite: no kernel")
    assert "PASS" not in line
    block = result.to_json()
    assert block["compared"] is False and block["passed"] is False and block["reference"] == "none"
    assert block["reference_error"] == "LiteRT cannot load m.tflite: no kernel"
    assert "compared nothing" in v.failure(result, "m", "host")


def test_validation_against_a_corrected_copy_says_so():
    class Corrected(_FakeReference):
        corrections = ["tensor 2 'b': quantized_dimension 3 -> 0 (why)"]
        refused = "quantized_dimension must be in range [0, 1). Was 3."

    inputs = [[np.array([[2, 4, 6, 8]], np.int8)]]
    result = v.validate(_FakeRunner(0), Corrected(), inputs)
    assert result.passed and result.compared
    block = result.to_json()
    assert block["reference"] == "litert (corrected copy)" and block["corrections"] == Corrected.corrections
    assert block["reference_error"] == Corrected.refused
    assert "a corrected copy" in v.verdict_line(result, "m", "host")
    note = v.reference_note(result)
    assert note.startswith("LiteRT refuses the file as it is (quantized_dimension must be in range")
    assert note.endswith("\n  - tensor 2 'b': quantized_dimension 3 -> 0 (why)")
    plain = v.validate(_FakeRunner(0), _FakeReference(), inputs)
    assert v.reference_note(plain) == "" and plain.to_json()["reference"] == "litert"


def test_reference_copy_drops_empty_data_vectors():
    """PyTorch exporters write empty data vectors for activations: no data to TFLite Micro (and to the
    importer once it reads them so), a 0-byte constant that LiteRT refuses."""
    import modelgen as mg
    from ai_edge_litert import schema_py_generated as schema

    from tinykiln.tflite.tolerances import corrected_copy

    model = schema.ModelT.InitFromPackedBuf(mg.fc_model_with(), 0)
    empty = schema.BufferT()
    empty.data = np.zeros(0, np.uint8)
    model.buffers.append(empty)
    model.subgraphs[0].tensors[-1].buffer = len(model.buffers) - 1  # the output: an activation
    data = mg.pack(model)
    assert mg.litert_error(data) is not None  # the file as it is
    copy, corrections = corrected_copy(data)
    assert [(c.where, c.change) for c in corrections] == [(f"buffer {len(model.buffers) - 1}",
                                                           "empty data vector -> none")]
    assert mg.litert_error(copy, run=True) is None
