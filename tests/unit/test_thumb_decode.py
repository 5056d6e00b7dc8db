"""The cycle-estimate plugin's Thumb-2 decoder (tools/qemu-cycles/thumb.c) against binutils: every
instruction of newlib's Cortex-M4F/M7 libraries (real compiler output, every addressing mode)
decodes to the class its mnemonic names, as objdump reads it."""
import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinykiln import cycles

LIBS = [Path("/usr/lib/arm-none-eabi/newlib/thumb/v7e-m+fp/hard") / name for name in ("libc.a", "libm.a")]
CLASSES = ("ALU MUL MUL_LONG DIV LOAD STORE LOAD_DUAL STORE_DUAL LOAD_MULTI STORE_MULTI BRANCH BRANCH_REG "
           "TABLE_BRANCH IT NOP BARRIER SYSTEM FP FP_MAC FP_SLOW FP_LOAD FP_STORE FP_LOAD_MULTI FP_STORE_MULTI "
           "FP_MOVE OTHER").split()  # enum insn_class's order
COND = r"(?:eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?"
# mnemonic (condition and .w/.n/.f32 stripped) -> class; first match wins; the rest is ALU
RULES = [(r"vldr", "FP_LOAD"), (r"vstr", "FP_STORE"), (r"vldm\w*|vpop", "FP_LOAD_MULTI"),
         (r"vstm\w*|vpush", "FP_STORE_MULTI"), (r"vmov|vmrs|vmsr", "FP_MOVE FP"), (r"vdiv|vsqrt", "FP_SLOW"),
         (r"vn?ml[as]|vfn?m[as]", "FP_MAC"), (r"v\w+", "FP"), (r"ldrd", "LOAD_DUAL"), (r"strd", "STORE_DUAL"),
         (r"ldm\w*|pop", "LOAD_MULTI"), (r"stm\w*|push", "STORE_MULTI"), (r"ldr\w*", "LOAD"),
         (r"str\w*", "STORE"), (r"tb[bh]", "TABLE_BRANCH"), (r"bl?x", "BRANCH_REG"), (r"[su]div", "DIV"),
         (r"[su]mull|[su]mlal\w*|umaal|smlsld\w*", "MUL_LONG"),
         (r"mul|ml[as]|smla\w*|smul\w*|smua\w*|smus\w*|smml\w*|smmu\w*|smls\w*|usada?8", "MUL"),
         (r"cbn?z|bl?", "BRANCH"), (r"it[te]*", "IT"), (r"nop|pld|pli|wf[ie]|sev|yield", "NOP"),
         (r"dmb|dsb|isb", "BARRIER"), (r"svc|bkpt|msr|cps\w*|udf", "SYSTEM")]


class Insn(ctypes.Structure):  # struct insn, thumb.h
    _fields_ = [("cls", ctypes.c_int)] + [(n, ctypes.c_uint8) for n in (
        "size", "nregs", "writes_pc", "conditional", "backward", "reg_offset", "writeback", "wide")] + [
        (n, ctypes.c_uint16) for n in ("dst", "src", "addr")]


def expected(mnemonic: str) -> set[str]:
    word = mnemonic.split(".")[0]
    for rule, _ in RULES:  # strip a condition only where the rest is an instruction
        m = re.fullmatch(f"({rule}){COND}", word)
        if m:
            word = m.group(1)
            break
    for rule, classes in RULES:
        if re.fullmatch(rule, word):
            return set(classes.split())
    return {"ALU"}


@pytest.mark.skipif(not all(p.is_file() for p in LIBS) or shutil.which("arm-none-eabi-objdump") is None,
                    reason="needs newlib for arm-none-eabi and its objdump")
def test_decoder_agrees_with_objdump(tmp_path):
    lib = tmp_path / "thumb.so"
    subprocess.run(["gcc", "-O1", "-fPIC", "-shared", "-o", str(lib), str(cycles.PLUGIN_DIR / "thumb.c")],
                   check=True)
    decode = ctypes.CDLL(str(lib)).thumb_decode
    text = subprocess.run(["arm-none-eabi-objdump", "-d", *map(str, LIBS)], capture_output=True, text=True,
                          check=True).stdout
    wrong, total = [], 0
    for m in re.finditer(r"^\s+[0-9a-f]+:\s+([0-9a-f]{4})(?: ([0-9a-f]{4}))?\s+([a-z]\S*)", text, re.M):
        hw1, hw2, mnemonic = m.groups()
        data = bytes.fromhex(hw1)[::-1] + (bytes.fromhex(hw2)[::-1] if hw2 else b"")
        insn = Insn()
        decode(data, len(data), ctypes.byref(insn))
        total += 1
        if CLASSES[insn.cls] not in expected(mnemonic):
            wrong.append(f"{m.group(0).strip()}: {CLASSES[insn.cls]}")
    assert total > 50_000
    assert not wrong, f"{len(wrong)} of {total} misdecoded, e.g.\n" + "\n".join(wrong[:20])
