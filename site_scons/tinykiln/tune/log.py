"""The resumable trial log: build/<board>/<variant>/<model>/tune/log.jsonl, one JSON line per trial.
A trial already in the log is not measured again (an interrupted run resumes), unless it failed for
a reason of the environment's (a tool missing, a device that did not answer): see settled()."""
from __future__ import annotations

import json
import os
from pathlib import Path


def read_log(path: Path) -> dict[tuple[str, str], dict]:
    """(workload key, knobs key) -> the last trial record; a torn last line (interrupted) is
    skipped."""
    done = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[(rec["kernel"], json.dumps(rec["knobs"], sort_keys=True))] = rec
    return done


def append(path: Path, record: dict) -> None:
    """One record, on disk before the next trial (fsync): a kill loses nothing logged."""
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


# Failures that are the candidate's own and would repeat: TVM cannot schedule the knobs, or the
# kernel computes something else than the default. Any other failure (the benchmark did not build,
# a device error, a timeout) may be the machine's and is tried again on the next run.
_CANDIDATE_FAILURES = ("codegen:", "output differs")


def settled(record: dict) -> bool:
    """Whether a logged trial stands (is not measured again)."""
    return bool(record.get("ok")) or str(record.get("error", "")).startswith(_CANDIDATE_FAILURES)
