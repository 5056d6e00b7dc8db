"""The cycle-estimate plugin (tools/qemu-cycles, tinykiln.cycles): it builds warning-free, and on
micro-benchmarks whose cycles the Cortex-M4 TRM (ARM DDI 0439, Table 3-1) states it charges
exactly those; the Cortex-M7 model's figures are its own rules (m7.c), pinned here.

Each benchmark is a loop `body; subs r5, #1; bne loop` run for 10 (twice) and 110 iterations between
two counter reads (tk_cycles, the plugin's mark): the difference of the two windows over 100 is one
iteration, the loop's overhead included (SUBS 1, a taken BNE 1+P with P = 1 for a 16-bit target).
All benchmarks run in one firmware per core: one QEMU start each.
"""
import subprocess

import pytest

from conftest import ROOT
from tinykiln import KilnError, boards, cycles

LOOP = 3  # SUBS 1 + BNE taken 1 + P (P = 1: the 16-bit, word-aligned loop head)

# name, body (r0 = a RAM buffer whose first word holds its own address, r12 = 16), M4 cycles per
# iteration (TRM figure + LOOP; for taken branches P as m4.c reads the TRM's 1-3: 1, +1 for a
# 32-bit target at a halfword address, +1 for a target from a register or memory), M7 model cycles
# per iteration
BENCHES = [
    ("ldr x4 pipelined", "ldr r1, [r0]\n ldr r2, [r0, #4]\n ldr r3, [r0, #8]\n ldr r4, [r0, #12]",
     2 + 1 + 1 + 1 + LOOP, 3),
    ("ldr address from ldr", "ldr r1, [r0]\n ldr r2, [r1]", 2 + 2 + LOOP, 4),
    ("ldm n=4", "ldm.w r0, {r1-r4}", 1 + 4 + LOOP, 4),
    ("ldm n=8", "ldm.w r0, {r1-r4, r6-r9}", 1 + 8 + LOOP, 6),
    ("push/pop n=4", "push {r1-r4}\n pop {r1-r4}", (1 + 4) * 2 + LOOP, 7),
    ("ldrd", "ldrd r1, r2, [r0]", 1 + 2 + LOOP, 2),
    ("str imm x2", "str r1, [r0, #16]\n str r2, [r0, #20]", 1 + 1 + LOOP, 2),
    ("str reg after ldr", "ldr r1, [r0]\n str r2, [r0, r12]", 2 + 1 + LOOP, 2),
    ("ldr after str reg", "str r2, [r0, r12]\n ldr r1, [r0]", 2 + 2 + LOOP, 2),
    ("mul, mla", "mul r1, r2, r3\n mul r4, r2, r3\n mla r6, r2, r3, r6\n mla r7, r2, r3, r7",
     4 + LOOP, 5),
    ("smull, umlal", "smull r1, r4, r2, r3\n umlal r6, r7, r2, r3", 2 + LOOP, 3),
    ("smlad, smlabb", "smlad r1, r2, r3, r1\n smlabb r4, r2, r3, r4", 2 + LOOP, 3),
    ("smlad chain", "smlad r1, r2, r3, r1\n smlad r1, r2, r3, r1\n smlad r1, r2, r3, r1", 3 + LOOP, 4),
    ("alu x4 independent", "adds r1, #1\n adds r2, #1\n adds r3, #1\n adds r4, #1", 4 + LOOP, 3),
    ("b taken", "b.n 1f\n .balign 4\n1:", 1 + 1 + LOOP, 2),
    ("beq not taken", "cmp r5, #0\n beq.n 9f", 1 + 1 + LOOP, 2),
    ("bl + push/pop pc", "bl leaf2", (1 + 1) + (1 + 1) + (1 + 1 + 2) + LOOP, 11),
    ("bl + bx lr", "bl leaf", (1 + 1) + (1 + 2) + LOOP, 8),  # M7: BX LR unpredicted (m7.c)
]
DIVIDES = ("sdiv, udiv", "sdiv r1, r2, r3\n udiv r4, r2, r3")

FIRMWARE = """
    .syntax unified
    .thumb
    .text
    .word 0x20010000
    .word reset
    .thumb_func
    .global tk_cycles
tk_cycles:
    bx lr
    .balign 4
    .thumb_func
leaf:
    bx lr
    .balign 4
    .thumb_func
leaf2:
    push {{lr}}
    pop {{pc}}
    .thumb_func
    .global reset
reset:
    ldr r0, =0x20000000
    str r0, [r0]
    movs r2, #100
    movs r3, #7
    mov r12, #16
{calls}
    movs r0, #0x18
    ldr r1, =0x20026
    bkpt 0xab
{benches}
    .ltorg
"""
BENCH = """
    .thumb_func
bench{i}:
    push {{lr}}
    bl tk_cycles
    .balign 4
loop{i}:
    {body}
    subs r5, #1
    bne loop{i}
9:
    bl tk_cycles
    pop {{pc}}
"""


def per_iteration(board_cpu: str, machine: str, core: str, tmp_path, benches) -> list[tuple]:
    # a first run of 10 warms the M7 model's branch history, so that the two measured runs start alike
    calls = "\n".join(f"    movs r5, #{n}\n    bl bench{i}" for i in range(len(benches)) for n in (10, 10, 110))
    text = FIRMWARE.format(calls=calls, benches="".join(BENCH.format(i=i, body=b[1])
                                                        for i, b in enumerate(benches)))
    src, elf, out = tmp_path / "bench.S", tmp_path / "bench.elf", tmp_path / f"{core}.txt"
    src.write_text(text)
    subprocess.run(["arm-none-eabi-gcc", f"-mcpu={board_cpu}", "-mthumb", "-nostdlib", "-nostartfiles",
                    "-Wl,-Ttext=0", "-Wl,-e,reset", "-o", str(elf), str(src)], check=True)
    plugin = cycles.build(tmp_path / "tkcycles.so")
    subprocess.run(["qemu-system-arm", "-M", machine, "-display", "none", "-monitor", "none", "-serial",
                    "none", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
                    "-icount", "shift=0", *cycles.qemu_args(plugin, core, out, elf)],
                   check=True, timeout=60)
    wins = cycles.windows(cycles.read_marks(out))
    assert len(wins) == 3 * len(benches)
    rows = []
    for i, bench in enumerate(benches):
        short, long = wins[3 * i + 1], wins[3 * i + 2]
        assert (long.instructions - short.instructions) % 100 == 0
        rows.append((bench, (long.cycles - short.cycles) / 100, (long.divides - short.divides) / 100))
    return rows


needs_plugin = pytest.mark.skipif(bool(cycles.unavailable()), reason=cycles.unavailable() or "-")


def test_plugin_builds_warning_free(tmp_path):
    """-Wall -Wextra -Werror (cycles.CFLAGS): any warning fails the build."""
    assert {"-Wall", "-Wextra", "-Werror"} <= set(cycles.CFLAGS)
    so = cycles.build(tmp_path / "tkcycles.so")
    assert so.stat().st_size > 0
    proc = subprocess.run(["nm", "-D", "--defined-only", str(so)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in proc.stdout.splitlines()}
    assert exported == {"qemu_plugin_install", "qemu_plugin_version"}


@needs_plugin
def test_m4_micro_benchmarks_equal_the_trm(tmp_path):
    rows = per_iteration("cortex-m4", "mps2-an386", "m4", tmp_path, BENCHES + [DIVIDES])
    for (name, _, m4, _), cost, _ in rows[:-1]:
        assert cost == m4, f"{name}: estimated {cost} cycles per iteration, the TRM's table gives {m4}"
    (name, _), cost, divides = rows[-1]
    assert divides == 2
    # SDIV/UDIV: 2-12 by the operands, which the plugin cannot see: the fixed middle estimate
    assert cost == 2 * 7 + LOOP
    assert 2 * 2 + LOOP <= cost <= 2 * 12 + LOOP


@needs_plugin
def test_m7_model_figures(tmp_path):
    rows = per_iteration("cortex-m7", "mps2-an500", "m7", tmp_path, BENCHES)
    got = {bench[0]: cost for bench, cost, _ in rows}
    want = {bench[0]: bench[3] for bench in BENCHES}
    assert got == want
    # what the model claims of the M7 against the M4: pairs dual-issue, LDM moves 2 words a cycle
    assert got["alu x4 independent"] < 4 + LOOP
    assert got["ldm n=8"] < got["ldm n=4"] + 4


def _marks(*totals):
    return [cycles.Mark(i, c, d) for i, c, d in totals]


def test_session_estimate_aligns_with_the_firmwares_counts():
    # a sample run (not counted), two counted runs, then a profiled run of two layers
    marks = _marks((0, 0, 0), (1000, 1500, 0),
                   (2000, 3000, 0), (3000, 4600, 1), (4000, 6000, 1), (5040, 7700, 3),
                   (6000, 9000, 3), (6010, 9010, 3), (6500, 9800, 3), (7000, 10600, 4), (7020, 10630, 4))
    est = cycles.session_estimate("m4", marks, [1000, 1040], layer_counts=[490, 500])
    assert [w.cycles for w in est.runs] == [1600, 1700]
    assert est.per_inference == 1650 and est.divides == 1
    assert [w.cycles for w in est.layers] == [790, 800]
    assert est.report() == {"cycles_estimated_per_inference": 1650, "cycles_estimated_core": "m4",
                            "cycles_estimated_divides_per_inference": 1}
    assert est.runs[1].bounds == (1700 - 2 * cycles.DIVIDE_ERROR, 1700 + 2 * cycles.DIVIDE_ERROR)


def test_session_estimate_refuses_windows_that_are_not_the_firmwares():
    marks = _marks((0, 0, 0), (1000, 1500, 0))
    with pytest.raises(KilnError, match="the plugin counted 1,000 instructions, the firmware 5,000"):
        cycles.session_estimate("m4", marks, [5000])
    with pytest.raises(KilnError, match="recorded 1 runs, the firmware counted 2"):
        cycles.session_estimate("m4", marks, [1000, 1000])


PERF_OUTPUT = """perf: input x = x * 1103515245 + 12345 from 12345, byte = (x >> 16) & 0xff; 1 warm-up, 2 timed runs
perf: instructions/inference: min 1000 avg 1020 max 1040
"""


def test_perf_estimate_takes_the_timed_runs():
    marks = _marks((0, 0, 0), (1100, 2000, 0), (2000, 3000, 0), (3000, 4400, 0), (4000, 5000, 0), (5040, 6600, 0))
    est = cycles.perf_estimate("m7", marks, PERF_OUTPUT)
    assert [w.cycles for w in est.runs] == [1400, 1600]
    assert cycles.perf_line(est).startswith("perf: estimated m7 cycles/inference: min 1400 avg 1500 max 1600")
    assert cycles.perf_estimate("m7", marks, "tinykiln selftest\n") is None  # not the perf app
    with pytest.raises(KilnError, match="recorded 2 runs, the perf app made 3"):
        cycles.perf_estimate("m7", marks[:4], PERF_OUTPUT)


def test_boards_name_their_timing_model():
    assert cycles.core_of(boards.load_board(ROOT, "mps2-an386")) == "m4"
    assert cycles.core_of(boards.load_board(ROOT, "mps2-an500")) == "m7"
    for name in ("host", "pynq-z1", "nucleo-f746zg"):
        assert cycles.core_of(boards.load_board(ROOT, name)) is None


def test_without_plugin_support_the_reason_is_given(monkeypatch, tmp_path):
    fake = tmp_path / "qemu-system-arm"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator: -machine, -kernel'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    cycles.unavailable.cache_clear()
    try:
        assert cycles.unavailable() == "this qemu-system-arm is built without TCG plugin support"
    finally:
        cycles.unavailable.cache_clear()


def test_qemu_device_without_a_plugin_passes_no_plugin(tmp_path):
    """No plugin built (DeviceOptions.cycles_plugin empty): QEMU's command line is today's."""
    from tinykiln.device import DeviceOptions, QemuDevice

    board = boards.load_board(ROOT, "mps2-an386")
    dev = QemuDevice(board, DeviceOptions())
    assert dev._plugin_args(tmp_path / "fw.elf") == [] and dev.cycle_marks() is None
