"""tune=1 tracker=host:port: kernel benchmarks measured on QEMU devices registered with TVM's RPC
tracker (python -m tvm.exec.rpc_tracker) by board name, all on loopback. The counts must be the
ones the local QEMU path measures (-icount makes them deterministic)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, scons_env
from test_tune import BOARD, _tiny_model

from tinykiln import tune

# TVM's tracker needs tornado, its RPC server cloudpickle (not pinned in requirements.txt yet).
pytest.importorskip("tornado")
pytest.importorskip("cloudpickle")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log):
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=scons_env(), start_new_session=True)


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the server's own worker processes are in its group
    proc.wait(timeout=10)


def _free_devices(port) -> int:
    from tvm import rpc

    try:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
    except Exception:  # not up yet
        return 0
    return sum(v.get("free", 0) for k, v in summary.get("queue_info", {}).items() if k == BOARD)


def _records(log):
    return sorted((r["kernel"], json.dumps(r["knobs"], sort_keys=True), r["count"], r["digest"], r["ok"])
                  for r in map(json.loads, log.read_text().splitlines()))


def test_tune_through_the_rpc_tracker_on_loopback(tmp_path):
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    port = _free_port()
    procs = []
    with open(tmp_path / "servers.log", "w") as log:
        try:
            procs.append(_start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                                 "--port-end", str(port + 1)], log))
            time.sleep(2)  # a device server that cannot reach the tracker at once retries slowly
            for _ in range(2):
                procs.append(_start(["tinykiln.tune_rpc", "--tracker", f"127.0.0.1:{port}",
                                     "--board", BOARD, "--rpc-port", str(_free_port())], log))
            deadline = time.monotonic() + 60
            while _free_devices(port) < 2:
                assert time.monotonic() < deadline, (tmp_path / "servers.log").read_text()
                assert all(p.poll() is None for p in procs), (tmp_path / "servers.log").read_text()
                time.sleep(0.5)

            logs = {}
            for how in ("tracker", "local"):
                opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / how),
                        "model": str(model), "trials": "3", "devices": "2", "werror": True,
                        "schedules": str(tmp_path / f"{how}.json"), "timeout": "60",
                        "tracker": f"127.0.0.1:{port}" if how == "tracker" else ""}
                assert tune.main(ROOT, opts) == 0
                logs[how] = tmp_path / how / BOARD / "release" / "fc" / "tune" / "log.jsonl"
        finally:
            for p in procs:
                _stop(p)
    served = (tmp_path / "servers.log").read_text()
    assert served.count("start serving") >= 6, served  # every trial went through a device server
    vias = {json.loads(line)["via"] for line in logs["tracker"].read_text().splitlines()}
    assert vias == {f"tracker 127.0.0.1:{port}"}
    assert _records(logs["tracker"]) == _records(logs["local"])
    assert json.loads((tmp_path / "tracker.json").read_text())["kernels"] == \
        json.loads((tmp_path / "local.json").read_text())["kernels"]
