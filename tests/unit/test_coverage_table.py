"""The README's op table is the op registry's (./kiln ops --readme writes it)."""
from __future__ import annotations

from pathlib import Path

from tinykiln.ops import coverage
from tinykiln.ops.registry import OPS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_the_registrys():
    text = README.read_text()
    assert coverage.replace_in(text) == text, "README's op table is stale: run ./kiln ops --readme"


def test_every_registered_op_is_a_row():
    rows = [line for line in coverage.table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == sorted(OPS)


def test_the_table_shows_casts_as_pairs(capsys):
    coverage.main([])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| `DEQUANTIZE` |"))
    assert "int8 → float32" in row
