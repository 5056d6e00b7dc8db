"""matrix=: rows from the TOML file, the report, and a real matrix whose failing row is reported
while the other rows pass (exit status 1)."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, run_scons
from tinykiln import KilnError, matrix


def write(tmp_path, text: str):
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


def test_rows_are_the_product_of_what_applies(tmp_path):
    rows, settings = matrix.load(ROOT, write(tmp_path, """
boards = ["mps2-an500", "disco-h747i"]
models = ["cifar10", "cifar10:float"]
variants = ["release", "ext-mem"]
n = 3
options = ["werror=1"]
[[exclude]]
board = "mps2-an500"
model = "cifar10:float"
[[row]]
board = "host"
model = "cifar10"
options = ["defines=X"]
"""))
    names = [(r.board, r.variant, r.model, tuple(r.options)) for r in rows]
    # ext-mem is for disco-h747i only; the exclude drops mps2-an500's float row; the extra row last.
    assert names == [
        ("mps2-an500", "release", "cifar10", ("werror=1",)),
        ("disco-h747i", "release", "cifar10", ("werror=1",)),
        ("disco-h747i", "release", "cifar10:float", ("werror=1",)),
        ("disco-h747i", "ext-mem", "cifar10", ("werror=1",)),
        ("disco-h747i", "ext-mem", "cifar10:float", ("werror=1",)),
        ("host", "release", "cifar10", ("werror=1", "defines=X")),
    ]
    assert settings == {"validate": True, "n": 3, "timeout": 900.0, "run_timeout": None}
    assert len({r.slug for r in rows}) == len(rows)


@pytest.mark.parametrize("text, message", [
    ('boards = ["mps2-an500"]\nmodels = ["cifar10"]\nbords = []', "unknown key(s) bords"),
    ('boards = ["mps2-an5000"]\nmodels = ["cifar10"]', "mps2-an5000"),
    ('boards = ["host"]\nmodels = ["cifar11"]', "unknown model 'cifar11'"),
    ('boards = ["host"]\nmodels = ["cifar10"]\nvariants = ["ext-mem"]', "no rows"),
    ('boards = "host"\nmodels = ["cifar10"]', "`boards` must be a list"),
    ('boards = [', "invalid TOML"),
    ('boards = ["host"]\nmodels = ["cifar10"]\n[[exclude]]\nboard = "host"\noptions = []',
     "[[exclude]] takes board, model and variant, not options"),
])
def test_bad_matrix_files_are_clear_errors(tmp_path, text, message):
    with pytest.raises(KilnError, match=None) as e:
        matrix.load(ROOT, write(tmp_path, text))
    assert message in str(e.value)


def test_missing_file_names_the_option(tmp_path):
    with pytest.raises(KilnError, match="matrix file .* not found"):
        matrix.load(ROOT, tmp_path / "nope.toml")


def test_shipped_matrices_cover_every_board_and_model():
    from tinykiln import boards, models

    rows, _ = matrix.load(ROOT, ROOT / "ci" / "matrix.toml")
    assert {r.board for r in rows} == set(boards.board_names(ROOT))
    assert {r.model.split(":")[0] for r in rows} == set(models.model_names(ROOT))
    assert ("netduinoplus2", "cifar10:float") not in {(r.board, r.model) for r in rows}  # too big
    assert all(r.options == ["werror=1"] for r in rows)
    small, _ = matrix.load(ROOT, ROOT / "ci" / "matrix-small.toml")
    assert 1 < len(small) < len(rows)


def test_report_lists_every_row_and_the_failure():
    ok = matrix.Result("mps2-an500", "release", "cifar10", [], "pass", True, 9.0,
                       regions=[{"name": "CODE", "used": 105205, "size": 4194304, "holds": ["text"]}],
                       arena_bytes=40960, weights_bytes=91096, count=29446220,
                       count_unit="instructions", bit_exact=True, validated=True)
    flt = matrix.Result("host", "release", "cifar10:float", [], "pass", True, 2.0, count=7,
                        count_unit="ns", bit_exact=False, validated=True, float_rtol=1e-5)
    bad = matrix.Result("host", "release", "cifar10", ["defines=X"], "fail", True, 3.0,
                        error="the program exited with status 3", log="logs/x.log")
    text = matrix.report_md([ok, flt, bad], "m.toml")
    assert "3 rows: 2 passed, 1 failed" in text
    assert "| 7 ns | within 1e-05 (float) |" in text
    assert "| mps2-an500 | release | cifar10 | pass | CODE 105,205/4,194,304 | 40,960 | 91,096 | " \
           "29,446,220 instructions | yes |" in text
    assert "## FAIL host/release/cifar10 (defines=X)" in text and "status 3" in text


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_matrix_reports_a_failing_row_and_exits_nonzero(tmp_path):
    """Two host rows; the second faults on purpose in the validation app (TK_VALIDATION_FAULT)."""
    path = write(tmp_path, """
boards = ["host"]
models = ["cifar10"]
n = 0
timeout = 300
[[row]]
board = "host"
model = "cifar10"
options = ["defines=TK_VALIDATION_FAULT"]
""")
    r = run_scons(f"matrix={path}", builddir=tmp_path / "build")
    assert r.returncode == 1, r.output
    report = json.loads((tmp_path / "build" / "matrix" / "report.json").read_text())
    assert report["passed"] is False
    first, second = report["rows"]
    assert first["status"] == "pass" and first["bit_exact"] is True and first["validated"] is True
    assert first["count"] > 0
    assert first["arena_bytes"] > 0 and first["regions"]
    assert second["status"] == "fail" and "FAULT" in second["error"]
    md = (tmp_path / "build" / "matrix" / "report.md").read_text()
    assert "1 failed" in md and "## FAIL host/release/cifar10 (defines=TK_VALIDATION_FAULT)" in md
    assert (tmp_path / "build" / "matrix" / "logs").is_dir()


def test_board_filter_of_a_ci_job(tmp_path, capsys):
    path = write(tmp_path, 'boards = ["host"]\nmodels = ["cifar10"]\n')
    assert matrix.main(ROOT, path, builddir=str(tmp_path / "b"), only_board="nucleo-f412zg") == 2
    assert "no rows for board nucleo-f412zg" in capsys.readouterr().err


def test_a_row_over_its_time_is_killed_and_fails(tmp_path):
    rows, settings = matrix.load(ROOT, write(tmp_path, 'boards = ["host"]\nmodels = ["cifar10"]\n'
                                                       'timeout = 1\n'))
    [result] = matrix.run(ROOT, rows, settings, tmp_path / "out", say=lambda line: None)
    assert result.status == "fail" and "timed out after 1 s" in result.error
    assert result.seconds < 30
