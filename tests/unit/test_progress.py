"""tinykiln.progress: a bar on a terminal, a plain line now and then elsewhere (issue 15, item 11)."""
from __future__ import annotations

import io

from tinykiln.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_pipe_gets_plain_lines_and_a_quick_step_none():
    out = io.StringIO()
    with Progress(3, "validating", stream=out, every=0.0) as bar:
        for _ in range(3):
            bar.update()
    assert out.getvalue().splitlines() == ["validating: 1/3", "validating: 2/3"]  # the end: the verdict says it
    quiet = io.StringIO()
    with Progress(3, "validating", stream=quiet) as bar:  # done within the interval
        for _ in range(3):
            bar.update()
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_bar_that_is_cleared_at_the_end():
    out = Terminal()
    with Progress(4, "validating", stream=out) as bar:
        bar.update(2)
        assert out.getvalue().startswith("\rvalidating:") and "/4 [" in out.getvalue()  # tqdm's bar
        bar.update(2)
    assert out.getvalue().endswith(" " * 20 + "\r")  # leave=False: the line is cleared for the verdict
