"""Progress of the long steps (validation on an emulator, per-layer profiling, tuning, the matrix):
a bar when the output is a terminal, and otherwise a plain line now and then, so that a log
shows a long run is alive without filling up when all is well.

    with progress.Progress(total, "validating") as bar:
        for ...:
            bar.update()

tqdm draws the bar; on a pipe or a file a line `validating: 20/70` is printed at most every
EVERY seconds, and not at all for a step that ends sooner.
"""
from __future__ import annotations

import sys
import time

EVERY = 10.0  # seconds between plain progress lines


class Progress:
    def __init__(self, total: int, label: str, stream=None, every: float = EVERY):
        self.total, self.label, self.every = total, label, every
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._bar = None
        self._last = time.monotonic()
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, file=self.stream, leave=False, unit="run",
                             dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self._last >= self.every and self.done < self.total:
            self._last = time.monotonic()
            print(f"{self.label}: {self.done}/{self.total}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
