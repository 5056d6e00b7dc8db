"""Programming a real board through its debug probe (openocd, pyocd) and reading its console
until the firmware ends: the tools behind tinykiln.device's ProbeDevice (which decides when).

Every failure is a KilnError that says what to do, never a hang: every external tool runs under a
timeout, pyocd with -W (it waits forever for a probe otherwise).

With several boards on one host, `probe=` names the debug probe (its USB serial number) that
openocd (`adapter serial`) and pyocd (`-u`) use; by default it is the probe behind the console
port= when the port's USB serial number is known (an ST-Link's virtual COM port carries the
ST-Link's serial), so flashing reaches the board whose console is read.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from elftools.elf.elffile import ELFFile

from tinykiln import KilnError, prerequisites
from tinykiln.boards import Board

PROBE_TIMEOUT = 60  # seconds for a programming tool to finish (they fail fast without a probe)


def entry_point(elf) -> int:
    with open(elf, "rb") as f:
        return ELFFile(f).header["e_entry"]


def _run_tool(cmd: list[str], what: str, timeout: float) -> tuple[int, str]:
    prerequisites.check_program(cmd[0], f"the tool for {what}")
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise KilnError(f"{what}: {cmd[0]} did not finish within {timeout:g} s and was stopped") from None
    return proc.returncode, (proc.stdout + proc.stderr)


def _tail(text: str, n: int = 6) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line for line in lines[-n:])


def external_bytes(board: Board, elf) -> dict[str, int]:
    """Bytes the ELF loads into the regions [flash] external lists (e.g. the disco-h747i's QSPI
    NOR): flash a chip's built-in driver cannot write; region name -> bytes, empty when none."""
    regions = [board.region(name) for name in board.flash.get("external", [])]
    found: dict[str, int] = {}
    with open(elf, "rb") as f:
        for seg in ELFFile(f).iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                continue
            for r in regions:
                if r.origin <= seg["p_paddr"] < r.end:
                    found[r.name] = found.get(r.name, 0) + seg["p_filesz"]
    return found


def _external_note(board: Board, method: str, elf) -> float:
    """Say how external-flash parts of the ELF get programmed; the extra seconds they may take.
    A method without `writes_external = true` in its [flash.<method>] table cannot write them."""
    found = external_bytes(board, elf)
    if not found:
        return 0.0
    parts = ", ".join(f"{n} bytes for {name} at 0x{board.region(name).origin:08x}"
                      for name, n in found.items())
    settings = board.flash.get(method, {})
    if not settings.get("writes_external"):
        able = [m for m in board.flash_methods if board.flash.get(m, {}).get("writes_external")]
        way_out = (f"Use flasher={able[0]}, or program" if able else "Program")
        raise KilnError(f"flashing {board.name} with {method}: the ELF has {parts}, external flash "
                        f"that {method} cannot program (it has no flash algorithm for it). "
                        f"{way_out} that part with a tool that has the board's external loader "
                        f"(e.g. STM32CubeProgrammer -el).")
    print(f"{board.name}: the ELF has {parts}; {method} writes it through "
          f"{settings.get('external_how', 'its external flash bank')} (erase + program: slow)",
          flush=True)
    return sum(found.values()) / 16384  # about 16 KB/s over the debug probe: a generous bound


def probe_serial(port: str) -> str | None:
    """The USB serial number of the device behind a local console port; None if unknown
    (socket://, rfc2217://, loop://, a port not found)."""
    from serial.tools import list_ports  # pyserial: only needed here

    m = re.fullmatch(r"serial:(.+):(\d+)", port)
    device = m.group(1) if m else port
    if "://" in device:
        return None
    real = os.path.realpath(device)
    for info in list_ports.comports():
        if os.path.realpath(info.device) == real:
            return info.serial_number or None
    return None


def choose_probe(probe: str = "", port: str = "") -> str | None:
    """The probe serial to flash through: probe= if given, else the one behind port=, else None
    (the flasher takes the only probe attached)."""
    if probe:
        if not re.fullmatch(r"[\w.:-]+", probe):
            raise KilnError(f"probe={probe!r} is not a USB serial number (letters, digits, '.', "
                            f"':', '-', '_'); list the attached probes with `.venv/bin/pyocd list`")
        return probe
    return probe_serial(port) if port else None


def openocd_command(board: Board, elf, probe: str | None = None) -> list[str]:
    cfg = board.flash.get("openocd", {})
    if "cfg" not in cfg:
        raise KilnError(f"board {board.name}: [flash.openocd] has no cfg in board.toml")
    script = cfg["cfg"]
    local = board.dir / script
    args = ["openocd", "-s", str(board.dir), "-f", str(local) if local.is_file() else script]
    template = cfg.get("commands", "program {elf} verify reset exit")
    elf_path = Path(elf).resolve().as_posix()
    if probe:
        # before the program command: the probe must be chosen before openocd's init
        args += ["-c", f"adapter serial {probe}"]
    args += ["-c", template.format(elf=elf_path, entry=f"0x{entry_point(elf):08x}")]
    return args


def _probe_failed(board: Board, method: str, probe: str, port: str, code: int, out: str) -> KilnError:
    of = f" (the one of {port})" if port else ""
    return KilnError(f"flashing {board.name} with {method} through the probe with serial {probe}{of} "
                     f"failed (exit {code}): is that probe connected and free? (`.venv/bin/pyocd "
                     f"list` shows the attached probes; pick one with probe=SERIAL) {method} said:"
                     f"\n{_tail(out)}")


def flash_openocd(board: Board, elf, probe: str | None = None, port: str = "") -> int:
    extra = _external_note(board, "openocd", elf)
    code, out = _run_tool(openocd_command(board, elf, probe), f"flashing {board.name}",
                          PROBE_TIMEOUT + extra)
    if code != 0 and probe:
        raise _probe_failed(board, "openocd", probe, port, code, out)
    if code != 0:
        if re.search(r"(?i)no device found|unable to open|couldn't open|error: open failed|"
                     r"no matching|libusb|LIB_USB", out):
            reason = "no debug probe found"
        else:
            reason = "openocd failed"
        raise KilnError(f"flashing {board.name} with openocd: {reason} (exit {code}). Connect the "
                        f"board's debug USB (and check udev permissions), or pick another method "
                        f"with flasher=. openocd said:\n{_tail(out)}")
    return 0


def pyocd_command(board: Board, elf, probe: str | None = None) -> list[str]:
    cfg = board.flash.get("pyocd", {})
    if "target" not in cfg:
        raise KilnError(f"board {board.name}: [flash.pyocd] has no target in board.toml")
    # -W: do not wait for a probe (pyocd otherwise waits forever).
    chosen = ["-u", probe] if probe else []
    return [sys.executable, "-m", "pyocd", "load", *chosen, "-W", "-t", cfg["target"], "--format",
            "elf", str(elf)]


def flash_pyocd(board: Board, elf, probe: str | None = None, port: str = "") -> int:
    cfg = board.flash.get("pyocd", {})
    extra = _external_note(board, "pyocd", elf)
    code, out = _run_tool(pyocd_command(board, elf, probe), f"flashing {board.name}",
                          PROBE_TIMEOUT + extra)
    if code != 0 and probe and not re.search(r"(?i)target type .* not recognized|unknown target|"
                                             r"not found in pack", out):
        raise _probe_failed(board, "pyocd", probe, port, code, out)
    if code != 0:
        if re.search(r"(?i)target type .* not recognized|unknown target|not found in pack", out):
            pack = cfg.get("pack", cfg["target"])
            raise KilnError(f"flashing {board.name} with pyocd: pyocd does not know target "
                            f"{cfg['target']}; install its CMSIS pack once (needs internet): "
                            f"`.venv/bin/pyocd pack install {pack}`, or use flasher=openocd.\n"
                            f"{_tail(out)}")
        reason = "no debug probe found" if re.search(r"(?i)no .*probe", out) else "pyocd failed"
        pack = ""
        if "pack" in cfg:
            pack = (f" pyocd also needs the CMSIS pack of {cfg['target']} (once, needs internet): "
                    f"`.venv/bin/pyocd pack install {cfg['pack']}`.")
        raise KilnError(f"flashing {board.name} with pyocd: {reason} (exit {code}). Connect the "
                        f"board's debug USB, or pick another method with flasher=.{pack} "
                        f"pyocd said:\n{_tail(out)}")
    return 0


_EXIT_LINE = re.compile(rb"tk: exit (-?\d+)")


def monitor(port: str, timeout: float, out=None) -> int:
    """Show a board's console from a pyserial URL until the firmware prints "tk: exit N"."""
    import serial  # pyserial: only needed here

    out = out or sys.stdout.buffer
    try:
        conn = serial.serial_for_url(port, baudrate=115200, timeout=0.2)
    except (serial.SerialException, ValueError) as e:
        raise KilnError(f"cannot open the console port {port}: {e}") from None
    seen = b""
    deadline = time.monotonic() + timeout
    with conn:
        while time.monotonic() < deadline:
            chunk = conn.read(256)
            if not chunk:
                continue
            out.write(chunk)
            out.flush()
            seen = (seen + chunk)[-64:]
            m = _EXIT_LINE.search(seen)
            if m and seen.endswith(b"\n"):
                return int(m.group(1))
    raise KilnError(f"no 'tk: exit' from the firmware on {port} within {timeout:g} s")


def flash_board(board: Board, elf, method: str, probe: str | None = None, port: str = "") -> int:
    """Program a real board with openocd or pyocd (through the probe with serial `probe`, if
    given: the one of console `port`, for the messages); 0, or a KilnError."""
    return (flash_openocd if method == "openocd" else flash_pyocd)(board, elf, probe, port)
