"""TFLite fixed-point arithmetic: build-time helpers, the numpy reference, and the TE expression
compiled to C by TVM and run on the host, all bit for bit."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from tinykiln.fixedpoint import INT32_MAX, INT32_MIN, prepare
from tinykiln.fixedpoint import reference as ref
from tinykiln.fixedpoint import te as fte


# ---------------------------------------------------------------- an independent scalar model
# Python ints with the C semantics spelled out (truncating division, arithmetic shifts, int32 wrap).

def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return _c_div(ab + nudge, 1 << 31)


def _rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _mbqm(x: int, m: int, s: int) -> int:
    left, right = max(s, 0), max(-s, 0)
    return _rdbpot(_srdhm(_wrap32(x * (1 << left)), m), right)


EDGE_X = [0, 1, -1, 2, -2, 3, -3, 127, -128, 1000, -1000, (1 << 30), -(1 << 30), INT32_MAX, INT32_MIN,
          INT32_MAX - 1, INT32_MIN + 1, 12345678, -12345678, 0x40000000 + 1]
EDGE_M = [0, 1, (1 << 30), (1 << 30) + 1, INT32_MAX, INT32_MIN, 1518500250, 1073741824 + 12345, -(1 << 30)]
EDGE_S = [-31, -20, -8, -1, 0, 1, 2, 7, 20]


def _cases(rng, n=3000):
    xs, ms, ss = [], [], []
    for x in EDGE_X:
        for m in EDGE_M:
            for s in EDGE_S:
                xs.append(x), ms.append(m), ss.append(s)
    xs += list(rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True))
    ms += list(rng.integers(1 << 30, INT32_MAX, n, endpoint=True))
    ss += list(rng.integers(-31, 8, n, endpoint=True))
    return np.array(xs, np.int64), np.array(ms, np.int64), np.array(ss, np.int64)


def test_reference_primitives_on_known_values():
    assert _srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert int(ref.srdhm(INT32_MIN, INT32_MIN)) == INT32_MAX
    # half away from zero in both directions
    assert list(ref.rdbpot([5, -5, 4, -4, 6, -6, 7, -7], 1)) == [3, -3, 2, -2, 3, -3, 4, -4]
    assert list(ref.rdbpot([-3, 3, -2, 2, -1, 1], 2)) == [-1, 1, -1, 1, 0, 0]
    # x * 0.5 (multiplier 2^30, shift 0): the doubling high mul rounds its ties up (its negative
    # nudge is 1 - 2^30, and C division truncates), unlike RoundingDivideByPOT
    assert list(ref.multiply_by_quantized_multiplier([3, -3, 1, -1], 1 << 30, 0)) == [2, -1, 1, 0]
    assert int(ref.multiply_by_quantized_multiplier(100, 1 << 30, 1)) == 100  # 0.5 * 2
    assert int(ref.multiply_by_quantized_multiplier(100, 1 << 30, -2)) == 13  # 12.5 -> 13


def test_numpy_reference_matches_scalar_model():
    xs, ms, ss = _cases(np.random.default_rng(0))
    got = ref.multiply_by_quantized_multiplier(xs, ms, ss)
    want = [_mbqm(int(x), int(m), int(s)) for x, m, s in zip(xs, ms, ss)]
    assert got.tolist() == want


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)),
    (0.5, (1 << 30, 0)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (2.0 ** -40, (0, 0)),                     # shift below -31 flushes to zero
    (2.0 ** -31, (1 << 30, -30)),
    (1 - 2.0 ** -40, (1 << 30, 1)),           # rounds up to 2^31: renormalised
    (1 / 3, (1431655765, -1)),                # 0.666..*2^31 = 1431655765.33 -> down
    (0.1, (1717986918, -3)),                  # 0.8*2^31 = 1717986918.4 -> down
])
def test_quantize_multiplier(real, expected):
    assert prepare.quantize_multiplier(real) == expected


def test_quantize_multiplier_round_trip():
    for real in np.exp(np.random.default_rng(1).uniform(-20, 5, 500)):
        m, s = prepare.quantize_multiplier(float(real))
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


def test_single_rounding_reference():
    # (x * m + 2^(30 - s)) >> (31 - s): ties go toward +infinity
    assert list(ref.multiply_by_quantized_multiplier_single([3, -3, 1, -1], 1 << 30, 0)) == [2, -1, 1, 0]
    assert list(ref.multiply_by_quantized_multiplier_single([5, -5, 6, -6], 1 << 30, -1)) == [1, -1, 2, -1]
    xs, ms, ss = _cases(np.random.default_rng(5))
    got = ref.multiply_by_quantized_multiplier_single(xs, ms, ss)
    want = [(int(x) * int(m) + (1 << (30 - int(s)))) >> (31 - int(s)) for x, m, s in zip(xs, ms, ss)]
    assert got.tolist() == want


def test_round_half_away_and_activation_ranges():
    assert prepare.round_half_away(2.5) == 3 and prepare.round_half_away(-2.5) == -3
    assert prepare.activation_range_int8("NONE", 0.1, 3) == (-128, 127)
    assert prepare.activation_range_int8("RELU", 0.1, 3) == (3, 127)
    assert prepare.activation_range_int8("RELU6", 0.1, -100) == (-100, -40)
    assert prepare.activation_range_int8("RELU6", 0.01, 0) == (0, 127)  # 600 clamps
    assert prepare.activation_range_int8("RELU_N1_TO_1", 0.1, 0) == (-10, 10)
    assert prepare.activation_range_float("RELU6") == (0.0, 6.0)
    with pytest.raises(ValueError):
        prepare.activation_range_int8("TANH", 0.1, 0)


# ---------------------------------------------------------------- the TE expression, in C

@pytest.fixture(scope="module")
def mbqm_library(tmp_path_factory):
    """Three kernels: per-element multiplier/shift loads (per-channel style), and two with the
    multiplier and shift baked in as constants (per-tensor style)."""
    import tvm
    from tvm import te

    from kernelrun import ROOT
    from tinykiln.codegen import HEADER, c_function
    from tinykiln.kernel import Param

    n = 4096
    sources = []
    x = te.placeholder((n,), "int32", name="x")
    m = te.placeholder((n,), "int32", name="m")
    s = te.placeholder((n,), "int32", name="s")
    out = te.compute((n,), lambda i: fte.te_multiply_by_quantized_multiplier(x[i], m[i], s[i]), name="out")
    params = [Param("x", "int32", (n,), "input"), Param("m", "int32", (n,), "input"),
              Param("s", "int32", (n,), "input"), Param("out", "int32", (n,), "output")]
    func = tvm.s_tir.Schedule(te.create_prim_func([x, m, s, out])).mod["main"]
    sources.append(c_function(func, "mbqm_loads", params))
    single = te.compute((n,), lambda i: fte.te_multiply_by_quantized_multiplier_single(x[i], m[i], s[i]),
                        name="out")
    func = tvm.s_tir.Schedule(te.create_prim_func([x, m, s, single])).mod["main"]
    sources.append(c_function(func, "mbqm_single_loads", params))
    constants = {}
    for tag, (mult, shift) in {"a": (INT32_MIN, 0), "b": (1518500250, 3), "c": (1073741824 + 12345, -13)}.items():
        xc = te.placeholder((n,), "int32", name="x")
        oc = te.compute((n,), lambda i: fte.te_multiply_by_quantized_multiplier(xc[i], mult, shift), name="out")
        func = tvm.s_tir.Schedule(te.create_prim_func([xc, oc])).mod["main"]
        sources.append(c_function(func, f"mbqm_const_{tag}", [params[0], params[3]]))
        constants[tag] = (mult, shift)
    work = tmp_path_factory.mktemp("mbqm")
    src = work / "mbqm.c"
    src.write_text(f'#include "{HEADER}"\n' + "\n".join(sources))
    lib = work / "mbqm.so"
    subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    f"-I{ROOT / 'runtime' / 'include'}", f"-I{ROOT / 'runtime' / 'kernels'}",
                    "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib)), n, constants


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def test_te_expression_matches_reference_with_loaded_multipliers(mbqm_library):
    lib, n, _ = mbqm_library
    xs, ms, ss = _cases(np.random.default_rng(2), n)
    xs, ms, ss = xs[:n], ms[:n], ss[:n]
    assert len(xs) == n
    x, m, s = (np.ascontiguousarray(v, dtype=np.int32) for v in (xs, ms, ss))
    out = np.zeros(n, np.int32)
    lib.mbqm_loads(_ptr(x), _ptr(m), _ptr(s), _ptr(out))
    want = ref.multiply_by_quantized_multiplier(xs, ms, ss)
    bad = np.nonzero(out != want)[0]
    assert bad.size == 0, [(int(xs[i]), int(ms[i]), int(ss[i]), int(out[i]), int(want[i])) for i in bad[:5]]


def test_te_expression_matches_reference_with_constant_multipliers(mbqm_library):
    lib, n, constants = mbqm_library
    rng = np.random.default_rng(3)
    xs = np.concatenate([np.array(EDGE_X, np.int64), rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)])[:n]
    x = xs.astype(np.int32)
    for tag, (mult, shift) in constants.items():
        out = np.zeros(n, np.int32)
        getattr(lib, f"mbqm_const_{tag}")(_ptr(x), _ptr(out))
        want = ref.multiply_by_quantized_multiplier(xs, mult, shift)
        assert np.array_equal(out, want), tag
    # INT32_MIN * INT32_MIN saturates (constant multiplier INT32_MIN, x = INT32_MIN)
    assert int(ref.multiply_by_quantized_multiplier(INT32_MIN, INT32_MIN, 0)) == INT32_MAX


def test_te_single_rounding_matches_reference(mbqm_library):
    lib, n, _ = mbqm_library
    xs, ms, ss = _cases(np.random.default_rng(6), n)
    keep = ss <= 0  # FULLY_CONNECTED multipliers are below one
    xs, ms, ss = (np.resize(v[keep], n) for v in (xs, ms, ss))
    x, m, s = (np.ascontiguousarray(v, dtype=np.int32) for v in (xs, ms, ss))
    out = np.zeros(n, np.int32)
    lib.mbqm_single_loads(_ptr(x), _ptr(m), _ptr(s), _ptr(out))
    want = ref.multiply_by_quantized_multiplier_single(xs, ms, ss)
    assert np.array_equal(out, want.astype(np.int64).astype(np.int32))
