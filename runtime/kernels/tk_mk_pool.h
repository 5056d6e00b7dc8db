/* tinykiln int8 pooling micro-kernels: a whole MAX_POOL_2D / AVERAGE_POOL_2D layer (NHWC, channels
 * innermost) in one call (ops/pooling.py replaces the TVM loop nest with it).
 *
 * Same arithmetic as TFLite's reference kernels: a window covers only its taps inside the image
 * (padding is never read); max = the largest tap; average = int32 sum / number of taps inside,
 * rounded half away from zero ((sum +- count/2) / count, C division); then the activation clamp
 * [lo, hi] (output quantization = input quantization).
 *
 * Cortex-M DSP (TK_MK_DSP): four channels per 32-bit word.
 *   - max: SSUB8 sets the GE flag of each byte lane where a >= b, SEL picks those lanes: two
 *     instructions per tap for four channels. The running max starts at `lo` (max(x, lo) is the
 *     lower clamp) and the upper clamp is one more SSUB8 + SEL, skipped when hi is 127.
 *   - average: SXTAB16 adds lanes (0, 2) / (1, 3) sign-extended to two int16 pairs: two
 *     instructions per tap for four channels. int16 sums cannot overflow while the window has at
 *     most 255 taps (|sum +- count/2| <= 128 * 255 + 127); larger windows take the int32 path.
 * The portable twin (host, Cortex-A, TK_MK_PORTABLE) computes the same values one channel at a
 * time; channels past the last whole word always take it. */
#ifndef TK_MK_POOL_H
#define TK_MK_POOL_H

#include <stdint.h>
#include <string.h>

#include "tk_mk.h"

/* The image rows/cols covered by the window of output (r, s): [*b, *e). */
TK_MK_INLINE void tk_mk_pool_span(int32_t o, int32_t stride, int32_t pad, int32_t f, int32_t size,
                                  int32_t *b, int32_t *e)
{
    int32_t start = o * stride - pad;
    *b = start < 0 ? 0 : start;
    *e = start + f > size ? size : start + f;
}

/* max over the taps of one channel (portable path and channel tails) */
TK_MK_INLINE int8_t tk_mk_pool_max1(const int8_t *p, int32_t rows, int32_t cols, int32_t row_step,
                                    int32_t c, int32_t lo, int32_t hi)
{
    int32_t m = lo;
    for (int32_t i = 0; i < rows; i++) {
        for (int32_t j = 0; j < cols; j++) {
            int32_t v = p[i * row_step + j * c];
            m = v > m ? v : m;
        }
    }
    return (int8_t)(m < hi ? m : hi);
}

/* rounded average of one channel (portable path and channel tails) */
TK_MK_INLINE int8_t tk_mk_pool_avg1(const int8_t *p, int32_t rows, int32_t cols, int32_t row_step,
                                    int32_t c, int32_t lo, int32_t hi)
{
    int32_t sum = 0;
    for (int32_t i = 0; i < rows; i++) {
        for (int32_t j = 0; j < cols; j++) {
            sum += p[i * row_step + j * c];
        }
    }
    int32_t count = rows * cols, half = count / 2;
    int32_t q = sum > 0 ? (sum + half) / count : (sum - half) / count;
    q = q < lo ? lo : q;
    return (int8_t)(q > hi ? hi : q);
}

#if TK_MK_DSP
TK_MK_INLINE int32_t tk_mk_sxtab16_ror8(int32_t acc, int32_t v)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(v));
    return r;
}

TK_MK_INLINE void tk_mk_store4(int8_t *p, int32_t v)
{
    memcpy(p, &v, 4);
}

/* byte-wise max of four int8 lanes */
TK_MK_INLINE int32_t tk_mk_max4(int32_t a, int32_t b)
{
    (void)__ssub8(a, b);
    return (int32_t)__sel(a, b);
}

/* four channels of one output word: max over a rows x cols window starting at p */
TK_MK_INLINE int32_t tk_mk_pool_max4(const int8_t *p, int32_t rows, int32_t cols, int32_t row_step,
                                     int32_t c, int32_t m)
{
    for (int32_t i = 0; i < rows; i++) {
        const int8_t *q = p + i * row_step;
        for (int32_t j = 0; j < cols; j++) {
            m = tk_mk_max4(tk_mk_load4(q), m);
            q += c;
        }
    }
    return m;
}

/* the same for windows cut by the top or bottom edge: full rows of constant fw taps (unrolled) */
TK_MK_INLINE int32_t tk_mk_pool_max4_rows(const int8_t *p, int32_t rows, int32_t fw, int32_t row_step,
                                          int32_t c, int32_t m)
{
    for (int32_t i = 0; i < rows; i++) {
#pragma GCC unroll 16
        for (int32_t j = 0; j < fw; j++) {
            m = tk_mk_max4(tk_mk_load4(p + j * c), m);
        }
        p += row_step;
    }
    return m;
}

/* ... and by the left or right edge: full columns of constant fh taps (unrolled) */
TK_MK_INLINE int32_t tk_mk_pool_max4_cols(const int8_t *p, int32_t fh, int32_t cols, int32_t row_step,
                                          int32_t c, int32_t m)
{
    for (int32_t j = 0; j < cols; j++) {
#pragma GCC unroll 16
        for (int32_t i = 0; i < fh; i++) {
            m = tk_mk_max4(tk_mk_load4(p + i * row_step), m);
        }
        p += c;
    }
    return m;
}

/* the same for a whole window of constant fh x fw taps (unrolled by the compiler) */
TK_MK_INLINE int32_t tk_mk_pool_max4_full(const int8_t *p, int32_t fh, int32_t fw, int32_t row_step,
                                          int32_t c, int32_t m)
{
#pragma GCC unroll 16
    for (int32_t i = 0; i < fh; i++) {
#pragma GCC unroll 16
        for (int32_t j = 0; j < fw; j++) {
            m = tk_mk_max4(tk_mk_load4(p + i * row_step + j * c), m);
        }
    }
    return m;
}
#endif

/* y[n, oh, ow, c] = max pool of x[n, h, w, c], clamped to [lo, hi] */
TK_MK_INLINE void tk_mk_maxpool_s8(const int8_t *x, int8_t *y, int32_t n, int32_t h, int32_t w, int32_t c,
                                   int32_t oh, int32_t ow, int32_t fh, int32_t fw, int32_t sh, int32_t sw,
                                   int32_t pt, int32_t pl, int32_t lo, int32_t hi)
{
    const int32_t row_step = w * c;
    for (int32_t b = 0; b < n; b++) {
        const int8_t *xb = x + b * h * row_step;
        for (int32_t r = 0; r < oh; r++) {
            int32_t rb, re;
            tk_mk_pool_span(r, sh, pt, fh, h, &rb, &re);
            for (int32_t s = 0; s < ow; s++) {
                int32_t cb, ce;
                tk_mk_pool_span(s, sw, pl, fw, w, &cb, &ce);
                const int8_t *p = xb + rb * row_step + cb * c;
                int32_t rows = re - rb, cols = ce - cb;
                int32_t ch = 0;
#if TK_MK_DSP
                const int32_t lo4 = (int32_t)((uint32_t)(uint8_t)lo * 0x01010101u);
                const int32_t hi4 = (int32_t)((uint32_t)(uint8_t)hi * 0x01010101u);
                /* one loop per kind of window, so that the constant filter sizes unroll the taps
                 * of whole windows, whole rows or whole columns */
#define TK_MK_POOL_MAX_LOOP(SUM)                                                                    \
    for (; ch + 4 <= c; ch += 4) {                                                                  \
        int32_t m = SUM;                                                                            \
        if (hi < 127) {                                                                             \
            (void)__ssub8(m, hi4);                                                                  \
            m = (int32_t)__sel(hi4, m);                                                             \
        }                                                                                           \
        tk_mk_store4(y + ch, m);                                                                    \
    }
                if (rows == fh && cols == fw) {
                    TK_MK_POOL_MAX_LOOP(tk_mk_pool_max4_full(p + ch, fh, fw, row_step, c, lo4))
                } else if (cols == fw) {
                    TK_MK_POOL_MAX_LOOP(tk_mk_pool_max4_rows(p + ch, rows, fw, row_step, c, lo4))
                } else if (rows == fh) {
                    TK_MK_POOL_MAX_LOOP(tk_mk_pool_max4_cols(p + ch, fh, cols, row_step, c, lo4))
                } else {
                    TK_MK_POOL_MAX_LOOP(tk_mk_pool_max4(p + ch, rows, cols, row_step, c, lo4))
                }
#undef TK_MK_POOL_MAX_LOOP
#endif
                for (; ch < c; ch++) {
                    y[ch] = tk_mk_pool_max1(p + ch, rows, cols, row_step, c, lo, hi);
                }
                y += c;
            }
        }
    }
}

#if TK_MK_DSP
/* four channels of one output word: rounded averages of the window's int16-pair sums (e: lanes
 * 0, 2; o: lanes 1, 3), clamped to [lo, hi] */
TK_MK_INLINE void tk_mk_pool_avg4_out(int8_t *y, int32_t e, int32_t o, int32_t count, int32_t plus,
                                      int32_t minus, int32_t lo, int32_t hi)
{
    /* sum +- count/2 (plus, minus: +-count/2 in both int16 lanes): + where sum > 0 (sum - 1 >= 0
     * sets GE), - elsewhere */
    (void)__ssub16(e, 0x00010001);
    e = __sadd16(e, (int32_t)__sel(plus, minus));
    (void)__ssub16(o, 0x00010001);
    o = __sadd16(o, (int32_t)__sel(plus, minus));
    int32_t q0 = (int16_t)e / count, q2 = (e >> 16) / count;
    int32_t q1 = (int16_t)o / count, q3 = (o >> 16) / count;
    /* an average of int8 values is an int8 value: only a fused activation needs the clamp, done on
     * the packed word */
    int32_t v = q0;
    __asm__("bfi %0, %1, #8, #8" : "+r"(v) : "r"(q1));
    __asm__("bfi %0, %1, #16, #8" : "+r"(v) : "r"(q2));
    __asm__("bfi %0, %1, #24, #8" : "+r"(v) : "r"(q3));
    if (lo > -128) {
        v = tk_mk_max4(v, (int32_t)((uint32_t)(uint8_t)lo * 0x01010101u));
    }
    if (hi < 127) {
        const int32_t hi4 = (int32_t)((uint32_t)(uint8_t)hi * 0x01010101u);
        (void)__ssub8(v, hi4);
        v = (int32_t)__sel(hi4, v);
    }
    tk_mk_store4(y, v);
}

/* the int16-pair sums (lanes 0, 2 / 1, 3) of four channels over a rows x cols window at p */
TK_MK_INLINE void tk_mk_pool_sum4(const int8_t *p, int32_t rows, int32_t cols, int32_t row_step,
                                  int32_t c, int32_t *e, int32_t *o)
{
    int32_t se = 0, so = 0;
    for (int32_t i = 0; i < rows; i++) {
        const int8_t *q = p + i * row_step;
        for (int32_t j = 0; j < cols; j++) {
            int32_t v = tk_mk_load4(q);
            se = __sxtab16(se, v);
            so = tk_mk_sxtab16_ror8(so, v);
            q += c;
        }
    }
    *e = se;
    *o = so;
}

/* the same for windows cut by the top or bottom edge: full rows of constant fw taps (unrolled) */
TK_MK_INLINE void tk_mk_pool_sum4_rows(const int8_t *p, int32_t rows, int32_t fw, int32_t row_step,
                                       int32_t c, int32_t *e, int32_t *o)
{
    int32_t se = 0, so = 0;
    for (int32_t i = 0; i < rows; i++) {
#pragma GCC unroll 16
        for (int32_t j = 0; j < fw; j++) {
            int32_t v = tk_mk_load4(p + j * c);
            se = __sxtab16(se, v);
            so = tk_mk_sxtab16_ror8(so, v);
        }
        p += row_step;
    }
    *e = se;
    *o = so;
}

/* ... and by the left or right edge: full columns of constant fh taps (unrolled) */
TK_MK_INLINE void tk_mk_pool_sum4_cols(const int8_t *p, int32_t fh, int32_t cols, int32_t row_step,
                                       int32_t c, int32_t *e, int32_t *o)
{
    int32_t se = 0, so = 0;
    for (int32_t j = 0; j < cols; j++) {
#pragma GCC unroll 16
        for (int32_t i = 0; i < fh; i++) {
            int32_t v = tk_mk_load4(p + i * row_step);
            se = __sxtab16(se, v);
            so = tk_mk_sxtab16_ror8(so, v);
        }
        p += c;
    }
    *e = se;
    *o = so;
}

/* the same for a whole window of constant fh x fw taps (unrolled by the compiler) */
TK_MK_INLINE void tk_mk_pool_sum4_full(const int8_t *p, int32_t fh, int32_t fw, int32_t row_step,
                                       int32_t c, int32_t *e, int32_t *o)
{
    int32_t se = 0, so = 0;
#pragma GCC unroll 16
    for (int32_t i = 0; i < fh; i++) {
#pragma GCC unroll 16
        for (int32_t j = 0; j < fw; j++) {
            int32_t v = tk_mk_load4(p + i * row_step + j * c);
            se = __sxtab16(se, v);
            so = tk_mk_sxtab16_ror8(so, v);
        }
    }
    *e = se;
    *o = so;
}
#endif

/* y[n, oh, ow, c] = average pool of x[n, h, w, c], clamped to [lo, hi] */
TK_MK_INLINE void tk_mk_avgpool_s8(const int8_t *x, int8_t *y, int32_t n, int32_t h, int32_t w, int32_t c,
                                   int32_t oh, int32_t ow, int32_t fh, int32_t fw, int32_t sh, int32_t sw,
                                   int32_t pt, int32_t pl, int32_t lo, int32_t hi)
{
    const int32_t row_step = w * c;
    for (int32_t b = 0; b < n; b++) {
        const int8_t *xb = x + b * h * row_step;
        for (int32_t r = 0; r < oh; r++) {
            int32_t rb, re;
            tk_mk_pool_span(r, sh, pt, fh, h, &rb, &re);
            for (int32_t s = 0; s < ow; s++) {
                int32_t cb, ce;
                tk_mk_pool_span(s, sw, pl, fw, w, &cb, &ce);
                const int8_t *p = xb + rb * row_step + cb * c;
                int32_t rows = re - rb, cols = ce - cb;
                int32_t ch = 0;
#if TK_MK_DSP
                if (fh * fw <= 255) {
                    int32_t e, o;
                    /* an opaque count: SDIV is one instruction, GCC's multiply sequence for a
                     * constant divisor (the whole window's count) four per lane */
                    int32_t count = rows * cols;
                    __asm__("" : "+r"(count));
                    const int32_t half = (int32_t)((uint32_t)count >> 1);
                    const int32_t plus = (int32_t)((uint32_t)half * 0x00010001u);
                    const int32_t minus = (int32_t)((uint32_t)(uint16_t)(-half) * 0x00010001u);
#define TK_MK_POOL_AVG_LOOP(SUM)                                                                    \
    for (; ch + 4 <= c; ch += 4) {                                                                  \
        SUM;                                                                                        \
        tk_mk_pool_avg4_out(y + ch, e, o, count, plus, minus, lo, hi);                             \
    }
                    if (rows == fh && cols == fw) {
                        TK_MK_POOL_AVG_LOOP(tk_mk_pool_sum4_full(p + ch, fh, fw, row_step, c, &e, &o))
                    } else if (cols == fw) {
                        TK_MK_POOL_AVG_LOOP(tk_mk_pool_sum4_rows(p + ch, rows, fw, row_step, c, &e, &o))
                    } else if (rows == fh) {
                        TK_MK_POOL_AVG_LOOP(tk_mk_pool_sum4_cols(p + ch, fh, cols, row_step, c, &e, &o))
                    } else {
                        TK_MK_POOL_AVG_LOOP(tk_mk_pool_sum4(p + ch, rows, cols, row_step, c, &e, &o))
                    }
#undef TK_MK_POOL_AVG_LOOP
                }
#endif
                for (; ch < c; ch++) {
                    y[ch] = tk_mk_pool_avg1(p + ch, rows, cols, row_step, c, lo, hi);
                }
                y += c;
            }
        }
    }
}

#endif /* TK_MK_POOL_H */
