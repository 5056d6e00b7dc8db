/* tinykiln requantization helpers: the two steps of an int8 output stage that C alone does not get
 * compiled to one instruction inside a loop. TVM-generated kernels call them from the fused
 * requantization expressions of site_scons/tinykiln/fixedpoint/fused.py (te_requantize_fused_double,
 * tk_rq_sat8 in every int8 clamp); the arithmetic itself is proved there.
 *
 * Two bodies each, bit-identical:
 *   - Cortex-M with the DSP extension (as tk_mk.h: __ARM_FEATURE_DSP, M profile): SMMLAR and SSAT.
 *   - everything else (host, Cortex-A, TK_MK_PORTABLE defined): plain C with int64 arithmetic. */
#ifndef TK_RQ_H
#define TK_RQ_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_ARCH_PROFILE) && (__ARM_ARCH_PROFILE == 'M') && \
    !defined(TK_MK_PORTABLE)
#define TK_RQ_DSP 1
#include <arm_acle.h>
#else
#define TK_RQ_DSP 0
#endif

#define TK_RQ_INLINE static inline __attribute__((always_inline))

/* floor((hi * 2^32 + x * m + 2^31) / 2^32): the rounded high word of x * m, plus hi. The callers
 * keep the exact value inside int32 (fixedpoint/fused.py checks the bounds at build time). */
TK_RQ_INLINE int32_t tk_rq_mulhi(int32_t x, int32_t m, int32_t hi)
{
#if TK_RQ_DSP
    /* GCC makes MOV + SMLAL of the C below; SMMLAR is one instruction. */
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(m), "r"(hi));
    return r;
#else
    int64_t total = (int64_t)hi * 4294967296LL + 2147483648LL + (int64_t)x * m;
    return (int32_t)(total >> 32);
#endif
}

/* v clamped to [-128, 127]. In a loop GCC hoists -128 into a register and then no longer sees
 * the SSAT in a min/max pair (two compares and two conditional moves instead); __ssat also takes
 * a preceding constant arithmetic shift into its operand. */
TK_RQ_INLINE int32_t tk_rq_sat8(int32_t v)
{
#if TK_RQ_DSP
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

#endif /* TK_RQ_H */
