"""tinykiln.pipeline.compile: the one way from a .tflite to C, its cache, and tinykiln.sources, which
decides what a kernel's and the pipeline's keys cover."""
from __future__ import annotations

import pytest

from tinykiln import KilnError, models, paths, pipeline, sources


@pytest.fixture(scope="module")
def cifar10():
    return models.resolve(paths.ROOT, "cifar10")


def test_compile_gives_the_stages_results_and_the_c_texts(cifar10):
    c = pipeline.compile(cifar10)  # no board: default knobs
    assert c.schedule_path is None and c.knobs == {}
    assert set(c.texts) == {"model.h", "model.c", "weights.c", "tk_models.c"}
    assert list(c.kernels) == list(dict.fromkeys(call.spec.function_name for call in c.lowered.calls))
    for name in c.kernels:
        assert f"{name}(" in c.texts["model.c"]
    assert c.plan.arena_size >= c.plan.lower_bound > 0
    assert f"{c.plan.arena_size}" in c.texts["model.h"]  # the planned arena is the header's size


def test_compile_takes_the_boards_schedule_file_unless_told_not_to(cifar10):
    tuned = pipeline.compile(cifar10, "mps2-an500")
    assert tuned.schedule_path == cifar10.directory / "schedules" / "mps2-an500.json"
    assert tuned.knobs
    assert pipeline.compile(cifar10, "mps2-an500", use_tuned=False).knobs == {}
    assert pipeline.compile(cifar10, "mps2-an500", knobs={}).knobs == {}


def test_expose_layers_makes_every_op_output_a_graph_output(cifar10):
    plain = pipeline.compile(cifar10)
    exposed = pipeline.compile(cifar10, expose_layers=True)
    assert len(exposed.graph.outputs) == len(plain.graph.ops)  # one output per op (the last is the model's)
    assert exposed.graph.outputs[:len(plain.graph.outputs)] == plain.graph.outputs


def test_the_cache_is_reused_while_its_key_holds_and_recomputed_when_it_moves(cifar10, tmp_path, monkeypatch):
    cache = tmp_path / "m" / ".pipeline.pickle"
    first = pipeline.compile(cifar10, cache=cache)
    assert cache.is_file()

    def no_stages(*a, **k):
        raise AssertionError("the stages ran although the cache holds the result")

    monkeypatch.setattr(pipeline, "_run_stages", no_stages)
    again = pipeline.compile(cifar10, cache=cache)
    assert again.texts == first.texts
    with pytest.raises(AssertionError, match="the stages ran"):
        pipeline.compile(cifar10, cache=cache, expose_layers=True)  # another key


def test_a_failed_cache_write_leaves_no_temp_file(cifar10, tmp_path, monkeypatch):
    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline.pickle, "dump", full_disk)
    with pytest.raises(KilnError, match="cannot write .*pipeline.pickle: No space left on device .*make room"):
        pipeline.compile(cifar10, cache=tmp_path / ".pipeline.pickle")
    assert list(tmp_path.iterdir()) == []


def test_a_kernels_generator_files_are_its_family_and_codegen_not_other_families():
    conv = {p.relative_to(sources._ROOT).as_posix() for p in sources.generator_files("tinykiln.ops.conv2d")}
    assert "ops/conv2d.py" in conv and "codegen/__init__.py" in conv
    assert "ops/pooling.py" not in conv and "ops/softmax.py" not in conv
    assert "aot.py" not in conv and "tflite/importer.py" not in conv


def test_the_pipeline_files_cover_the_importer_every_family_planner_and_aot():
    files = {p.relative_to(sources._ROOT).as_posix() for p in sources.pipeline_files()}
    for family in (paths.ROOT / "site_scons/tinykiln/ops").glob("*.py"):
        assert f"ops/{family.name}" in files
    assert {"pipeline.py", "memplan.py", "aot.py", "tflite/importer.py", "codegen/__init__.py"} <= files


def test_imports_are_followed_through_relative_and_lazy_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "tinykiln"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from tinykiln.sub import c\n")  # a submodule: not sub's own code
    (pkg / "b.py").write_text("from tinykiln.sub import x\n")  # a name sub defines: sub and what it imports
    (pkg / "sub" / "__init__.py").write_text("from .d import x\n")
    (pkg / "sub" / "c.py").write_text("from . import e\n")
    (pkg / "sub" / "d.py").write_text("x = 1\n")
    (pkg / "sub" / "e.py").write_text("")
    (pkg / "sub" / "unused.py").write_text("")
    monkeypatch.setattr(sources, "_ROOT", pkg)
    got = {p.relative_to(pkg).as_posix() for p in sources.module_files(["tinykiln.a"])}
    assert got == {"a.py", "sub/c.py", "sub/e.py"}
    got = {p.relative_to(pkg).as_posix() for p in sources.module_files(["tinykiln.b"])}
    assert got == {"b.py", "sub/__init__.py", "sub/d.py"}
    whole = {p.relative_to(pkg).as_posix() for p in sources.module_files(["tinykiln.a"], whole=["tinykiln.sub"])}
    assert "sub/unused.py" in whole


def test_each_spec_carries_the_digest_of_its_own_familys_generator(cifar10):
    c = pipeline.compile(cifar10)
    digests = {}
    for spec in c.kernels.values():
        module = f"tinykiln.ops.{'conv2d' if spec.family.startswith('conv2d') else spec.family.rsplit('_', 1)[0]}"
        if spec.family.startswith(("max_pool", "avg_pool")):
            module = "tinykiln.ops.pooling"
        assert spec.tool_versions["tinykiln-codegen"] == sources.generator_digest(module), spec.family
        digests[module] = spec.tool_versions["tinykiln-codegen"]
    # an edit of pooling.py renames pooling kernels only: the families' digests differ
    assert len(set(digests.values())) == len(digests) >= 3
