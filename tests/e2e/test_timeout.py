"""timeout= bounds the whole run, not each reply (issue 15, item 5): a validation of thousands of
inputs with timeout=3 is stopped after 3 s with an error that says so and how to raise it."""
from __future__ import annotations


def test_timeout_bounds_the_whole_validation(scons, tmp_path):
    result = scons("board=host", "model=cifar10", "validate=1", "n=5000", "timeout=3", builddir=tmp_path)
    assert result.returncode != 0, result.output[-3000:]
    assert "the run did not end within timeout=3 s" in result.output, result.output[-3000:]
    assert "Raise the limit with timeout=SECONDS" in result.output
    assert "validation PASS" not in result.output and "Traceback" not in result.output
