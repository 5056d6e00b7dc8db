/* tinykiln micro-kernels for DEPTHWISE_CONV_2D (see tk_mk.h for the shared helpers).
 *
 * The ROW16 schedule (ops/depthwise_conv2d.py) works one input channel at a time on an int16 copy
 * of that channel's padded plane (rows of `stride` values, width innermost, zero point around it):
 *   tk_mk_dw_fill_s16  copies the channel into the plane (the border only on the first call, as
 *                      the interior is all later channels overwrite);
 *   tk_mk_dw_row_s16   computes one output row of the channel (stride 1 across the width), the
 *                      accumulators starting from the bias: each input word (two int16 of one
 *                      row) loaded once for two (any width) or up to four (three taps) outputs.
 *
 * Weights of tk_mk_dw_row_s16, packed at build time per filter row of kw taps (w0 .. w(kw-1)):
 *   E: w0 w1 .. w(kw-1), zero-padded to an even count ke = kw + (kw & 1)
 *   O: 0 w0 w1 .. w(kw-1), zero-padded to an even count ko = (kw + 1) + ((kw + 1) & 1)
 * so with A_k = (x[s + 2k], x[s + 2k + 1]) the even output s is sum_k A_k . E_k and the odd output
 * s + 1 is sum_k A_k . O_k: one SMLAD per word for both outputs (a zero weight pairs with the
 * input value just outside a window, so the plane has one spare column on the right).
 * Three taps are packed tighter, (w0, w1, w1, w2) per filter row: the two words the three-tap body
 * (tk_mk_dw_row3_dsp) loads with one LDRD per filter row.
 *
 * tk_mk_dw_row_s16w8: the same for three taps with the weights kept int8 in flash (optimize=,
 * ops/footprint.py): per filter row the four bytes (w0, w1, w1, w2), so one LDR and SXTB16 give
 * e = (w0, w1), SXTB16 of it rotated by 8 gives o = (w1, w2) (no PKH): 4 bytes a filter row instead
 * of 8. */
#ifndef TK_MK_DW_H
#define TK_MK_DW_H

#include "tk_mk.h"

/* int16 values per packed filter row of tk_mk_dw_row_s16 (E then O; 4 for three taps), and where
 * tap j of a row is. */
#define TK_MK_DW_KE(kw) ((kw) + ((kw) & 1))
#define TK_MK_DW_KO(kw) ((kw) + 1 + (((kw) + 1) & 1))
#define TK_MK_DW_KP(kw) ((kw) == 3 ? 4 : TK_MK_DW_KE(kw) + TK_MK_DW_KO(kw))
#define TK_MK_DW_TAP(kw, j) ((kw) == 3 && (j) == 2 ? 3 : (j))

/* The plane of one channel: rows x stride int16; the input channel's h x w values (src, src_row
 * apart per row, src_col apart per value) go to rows pt.., columns pl..; everything else is zp.
 * The border (and spare columns) is written only when `border` is non-zero: the caller asks for it
 * on its first channel, later channels overwrite the interior only. */
TK_MK_INLINE void tk_mk_dw_fill_s16(int16_t *plane, int32_t rows, int32_t stride, const int8_t *src,
                                    int32_t src_row, int32_t src_col, int32_t h, int32_t w, int32_t pt,
                                    int32_t pl, int32_t zp, int32_t border)
{
    if (border) {
        for (int32_t r = 0; r < rows; r++)
            for (int32_t c = 0; c < stride; c++)
                if (r < pt || r >= pt + h || c < pl || c >= pl + w)
                    plane[r * stride + c] = (int16_t)zp;
    }
    int16_t *dst = plane + pt * stride + pl;
    /* a value costs a load and a store: unrolled rows keep the loop's share small (kws: 5 values a
     * row) */
#pragma GCC unroll 8
    for (int32_t r = 0; r < h; r++) {
        const int8_t *s = src + r * src_row;
        int16_t *d = dst + r * stride;
#pragma GCC unroll 8
        for (int32_t c = 0; c < w; c++)
            d[c] = s[c * src_col];
    }
}

#if TK_MK_DSP
/* Two int16 from an address on a word (an aligned LDR; tk_mk_load2x16 allows any address). */
typedef int32_t tk_mk_word __attribute__((may_alias, aligned(4)));

TK_MK_INLINE int32_t tk_mk_load2x16a(const int16_t *p)
{
    return *(const tk_mk_word *)(const void *)p;
}

/* Halfword multiply-accumulates (one MAC): bottom x top and top x bottom. */
TK_MK_INLINE int32_t tk_mk_smlabt(int32_t a, int32_t b, int32_t acc)
{
    return __smlabt(a, b, acc);
}

TK_MK_INLINE int32_t tk_mk_smlatb(int32_t a, int32_t b, int32_t acc)
{
    return __smlatb(a, b, acc);
}

/* Two words from an address on a word, in one LDRD (GCC splits a plain 64-bit load whose halves
 * are used apart into two LDRs). The "m" operand of a 64-bit value gets an address LDRD takes;
 * Thumb-2's LDRD loads any two registers. */
typedef int64_t tk_mk_dword __attribute__((may_alias, aligned(4)));

#define TK_MK_DW_LOAD2W(p, lo, hi)                                                                  \
    __asm__("ldrd %0, %1, %2" : "=r"(lo), "=r"(hi) : "m"(*(const tk_mk_dword *)(const void *)(p)))

/* Three taps a filter row, (w0, w1) = e and (w1, w2) = o; with the row's input words
 * X_k = (x[2k], x[2k + 1]):
 *   out[2k]     = X_k . (w0, w1) + X_(k+1).bottom * w2      (SMLAD, SMLABT)
 *   out[2k + 1] = X_k.top * w0 + X_(k+1) . (w1, w2)         (SMLATB, SMLAD)
 * Each input word feeds up to four outputs.
 * tk_mk_dw_chunk3: outputs 0 .. m - 1 (m <= 6) of a row, the filter rows one after the other: per
 * filter row one LDRD of its two weight words, LDRDs of the input words the m outputs read, two
 * MACs per output; the m accumulators, the two weights and the words fit in registers (six
 * weight words kept for a whole row do not: GCC spills and reloads them). */
TK_MK_INLINE void tk_mk_dw_chunk3(const int16_t *x, int32_t x_stride, const int16_t *w, int32_t kh,
                                  int32_t m, int32_t bias, int32_t *acc)
{
    int32_t a[6] = {bias, bias, bias, bias, bias, bias};
#pragma GCC unroll 8
    for (int32_t i = 0; i < kh; i++) {
        const int16_t *xr = x + i * x_stride;
        int32_t e, o, x0, x1, x2 = 0, x3 = 0;
        TK_MK_DW_LOAD2W(w + 4 * i, e, o);
        TK_MK_DW_LOAD2W(xr, x0, x1);
        if (m > 4)
            TK_MK_DW_LOAD2W(xr + 4, x2, x3);
        else if (m > 2)
            x2 = tk_mk_load2x16a(xr + 4);
        a[0] = tk_mk_smlabt(x1, o, __smlad(x0, e, a[0]));
        if (m > 1)
            a[1] = __smlad(x1, o, tk_mk_smlatb(x0, e, a[1]));
        if (m > 2)
            a[2] = tk_mk_smlabt(x2, o, __smlad(x1, e, a[2]));
        if (m > 3)
            a[3] = __smlad(x2, o, tk_mk_smlatb(x1, e, a[3]));
        if (m > 4)
            a[4] = tk_mk_smlabt(x3, o, __smlad(x2, e, a[4]));
        if (m > 5)
            a[5] = __smlad(x3, o, tk_mk_smlatb(x2, e, a[5]));
    }
#pragma GCC unroll 6
    for (int32_t j = 0; j < m; j++)
        acc[j] = a[j];
}

TK_MK_INLINE void tk_mk_dw_row3_dsp(const int16_t *x, int32_t x_stride, const int16_t *w, int32_t kh,
                                    int32_t n, int32_t bias, int32_t *acc)
{
    /* chunks of 6 from the start (each starts on a word: LDRD needs that), then a last chunk of 1
     * to 6 outputs; the last chunk's size and place are constants of n, not of the loop (GCC then
     * folds the switch before it checks array bounds) */
    const int32_t last = 1 + (n - 1) % 6, at = n - last;
#pragma GCC unroll 4
    for (int32_t s = 0; s < at; s += 6)
        tk_mk_dw_chunk3(x + s, x_stride, w, kh, 6, bias, acc + s);
    switch (last) {
    case 6:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 6, bias, acc + at);
        break;
    case 5:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 5, bias, acc + at);
        break;
    case 4:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 4, bias, acc + at);
        break;
    case 3:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 3, bias, acc + at);
        break;
    case 2:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 2, bias, acc + at);
        break;
    default:
        tk_mk_dw_chunk3(x + at, x_stride, w, kh, 1, bias, acc + at);
        break;
    }
}
#endif

/* acc[s] = bias + sum_{i < kh} sum_{j < kw} x[i * x_stride + s + j] * w_i[j] for s < n, with w packed
 * as the header says (kh rows of ke + ko int16). The portable body reads the E part only. */
TK_MK_INLINE void tk_mk_dw_row_s16(const int16_t *x, int32_t x_stride, const int16_t *w, int32_t kh,
                                   int32_t kw, int32_t n, int32_t bias, int32_t *acc)
{
    const int32_t kp = TK_MK_DW_KP(kw);
#if TK_MK_DSP
    const int32_t ke = TK_MK_DW_KE(kw);
    if (kw == 3) {
        tk_mk_dw_row3_dsp(x, x_stride, w, kh, n, bias, acc);
        return;
    }
    const int32_t ko = TK_MK_DW_KO(kw);
    int32_t s = 0;
    for (; s + 2 <= n; s += 2) {
        int32_t a0 = bias, a1 = bias;
#pragma GCC unroll 4
        for (int32_t i = 0; i < kh; i++) {
            const int16_t *xr = x + i * x_stride + s, *wr = w + i * kp;
#pragma GCC unroll 4
            for (int32_t k = 0; k < ko; k += 2) {
                int32_t v = tk_mk_load2x16(xr + k);
                if (k < ke)
                    a0 = __smlad(v, tk_mk_load2x16(wr + k), a0);
                a1 = __smlad(v, tk_mk_load2x16(wr + ke + k), a1);
            }
        }
        acc[s] = a0;
        acc[s + 1] = a1;
    }
    if (s < n) {
        int32_t a0 = bias;
        for (int32_t i = 0; i < kh; i++) {
            const int16_t *xr = x + i * x_stride + s, *wr = w + i * kp;
            for (int32_t k = 0; k < ke; k += 2)
                a0 = __smlad(tk_mk_load2x16(xr + k), tk_mk_load2x16(wr + k), a0);
        }
        acc[s] = a0;
    }
#else
    if (kw == 3) {
        /* filter row by filter row along the row, the three weights and the window's values in
         * registers: a load and three multiply-adds per output and filter row */
        for (int32_t s = 0; s < n; s++)
            acc[s] = bias;
        for (int32_t i = 0; i < kh; i++) {
            const int16_t *xr = x + i * x_stride, *wr = w + i * kp;
            const int32_t w0 = wr[0], w1 = wr[1], w2 = wr[3];
            int32_t x0 = xr[0], x1 = xr[1];
            for (int32_t s = 0; s < n; s++) {
                int32_t x2 = xr[s + 2];
                acc[s] += x0 * w0 + x1 * w1 + x2 * w2;
                x0 = x1;
                x1 = x2;
            }
        }
        return;
    }
    for (int32_t s = 0; s < n; s++) {
        int32_t a = bias;
        for (int32_t i = 0; i < kh; i++) {
            const int16_t *xr = x + i * x_stride + s, *wr = w + i * kp;
            for (int32_t j = 0; j < kw; j++)
                a += (int32_t)xr[j] * wr[TK_MK_DW_TAP(kw, j)];
        }
        acc[s] = a;
    }
#endif
}

/* ---- int8 weights, three taps (tk_mk_dw_row_s16w8): (w0, w1, w1, w2) bytes per filter row ---- */

#if TK_MK_DSP
/* tk_mk_dw_chunk3 with the filter row's e, o widened from its int8 word */
TK_MK_INLINE void tk_mk_dw_chunk3w8(const int16_t *x, int32_t x_stride, const int8_t *w, int32_t kh,
                                    int32_t m, int32_t bias, int32_t *acc)
{
    int32_t a[6] = {bias, bias, bias, bias, bias, bias};
#pragma GCC unroll 8
    for (int32_t i = 0; i < kh; i++) {
        const int16_t *xr = x + i * x_stride;
        int32_t x0, x1, x2 = 0, x3 = 0;
        int32_t wv = tk_mk_load4(w + 4 * i), e = __sxtb16(wv), o = tk_mk_sxtb16_ror8(wv);
        TK_MK_DW_LOAD2W(xr, x0, x1);
        if (m > 4)
            TK_MK_DW_LOAD2W(xr + 4, x2, x3);
        else if (m > 2)
            x2 = tk_mk_load2x16a(xr + 4);
        a[0] = tk_mk_smlabt(x1, o, __smlad(x0, e, a[0]));
        if (m > 1)
            a[1] = __smlad(x1, o, tk_mk_smlatb(x0, e, a[1]));
        if (m > 2)
            a[2] = tk_mk_smlabt(x2, o, __smlad(x1, e, a[2]));
        if (m > 3)
            a[3] = __smlad(x2, o, tk_mk_smlatb(x1, e, a[3]));
        if (m > 4)
            a[4] = tk_mk_smlabt(x3, o, __smlad(x2, e, a[4]));
        if (m > 5)
            a[5] = __smlad(x3, o, tk_mk_smlatb(x2, e, a[5]));
    }
#pragma GCC unroll 6
    for (int32_t j = 0; j < m; j++)
        acc[j] = a[j];
}
#endif

/* tk_mk_dw_row_s16 for kw = 3 with int8 weights (kh rows of 4 bytes, see the header) */
TK_MK_INLINE void tk_mk_dw_row_s16w8(const int16_t *x, int32_t x_stride, const int8_t *w, int32_t kh,
                                     int32_t kw, int32_t n, int32_t bias, int32_t *acc)
{
    (void)kw; /* three taps: the only width this layout has */
#if TK_MK_DSP
    const int32_t last = 1 + (n - 1) % 6, at = n - last; /* as tk_mk_dw_row3_dsp */
#pragma GCC unroll 4
    for (int32_t s = 0; s < at; s += 6)
        tk_mk_dw_chunk3w8(x + s, x_stride, w, kh, 6, bias, acc + s);
    switch (last) {
    case 6:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 6, bias, acc + at);
        break;
    case 5:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 5, bias, acc + at);
        break;
    case 4:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 4, bias, acc + at);
        break;
    case 3:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 3, bias, acc + at);
        break;
    case 2:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 2, bias, acc + at);
        break;
    default:
        tk_mk_dw_chunk3w8(x + at, x_stride, w, kh, 1, bias, acc + at);
        break;
    }
#else
    for (int32_t s = 0; s < n; s++)
        acc[s] = bias;
    for (int32_t i = 0; i < kh; i++) {
        const int16_t *xr = x + i * x_stride;
        const int8_t *wr = w + 4 * i;
        const int32_t w0 = wr[0], w1 = wr[1], w2 = wr[3];
        int32_t x0 = xr[0], x1 = xr[1];
        for (int32_t s = 0; s < n; s++) {
            int32_t x2 = xr[s + 2];
            acc[s] += x0 * w0 + x1 * w1 + x2 * w2;
            x0 = x1;
            x1 = x2;
        }
    }
#endif
}

#endif /* TK_MK_DW_H */
