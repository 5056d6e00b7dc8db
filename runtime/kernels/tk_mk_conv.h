/* tinykiln micro-kernels for CONV_2D (see tk_mk.h for the shared helpers), called by the input16
 * schedule of ops/conv2d.py (Geometry16 there describes the scratch layouts):
 *
 *   tk_mk_widen_row   fills one int16 row of the scratch from an int8 input row (zero points
 *                     around it, an optional padding channel): the input is sign-extended once
 *   tk_mk_im2col_s16  fills one output pixel's whole window as one int16 run (im2col knob)
 *   tk_mk_acc_init    starts an output row's accumulators (pixels x channels) from the biases
 *   tk_mk_conv_s16    one filter row of a whole output row: the int16 runs of all its pixels
 *                     against a tile of int16 weight rows (natural order, packed at build time)
 *
 * tk_mk_conv_s16's inner loop is loads and SMLADs only: blocks of 2 pixels x 2 channels (each
 * weight word feeds two pixels, each input word two channels: 16 MACs per 4 LDRD + 8 SMLAD) and,
 * for aligned runs up to 192 taps, 3 pixels x 2 channels (24 MACs per 5 LDRD + 12 SMLAD). Every
 * DSP body has a portable C twin giving identical sums (runtime/apps/mkcheck compares both with
 * plain loops).
 *
 *   tk_mk_conv_s16w8  tk_mk_conv_s16 with the weights kept int8 (optimize=, ops/footprint.py): each
 *                     run's whole groups of four taps stored (w0, w2, w1, w3) at build time, so
 *                     SXTB16 of a weight word gives (w0, w1) and SXTB16 of it rotated by 8 gives
 *                     (w2, w3), the pairs the input's LDRD gives (no PKH); the k % 4 tail in order.
 *                     2 x 2 blocks: 16 MACs per 2 LDRD + 2 LDR + 4 SXTB16 + 8 SMLAD; 3 x 2: 24 per
 *                     3 LDRD + 2 LDR + 4 SXTB16 + 12 SMLAD. */
#ifndef TK_MK_CONV_H
#define TK_MK_CONV_H

#include "tk_mk.h"

#if TK_MK_DSP
/* Four int16 at a 4-byte aligned address as two words, one LDRD: GCC splits a plain 64-bit load
 * whose halves are used apart into two LDRs. "Uv" (an address with an offset of at most 1020, a
 * multiple of 4: what LDRD encodes) lets GCC keep constant offsets in the instruction; may_alias
 * because the scratch is written as int16 by the same (inlined) kernel just before. */
typedef int64_t tk_mk_a64 __attribute__((may_alias, aligned(4)));

/* volatile: the loads stay in source order (GCC's scheduler would hoist them all ahead of the
 * SMLADs and run out of registers) */
#define TK_MK_LDRD(p, lo, hi) \
    __asm__ volatile("ldrd %0, %1, %2" : "=r"(lo), "=r"(hi) : "Uv"(*(const tk_mk_a64 *)(const void *)(p)))

/* acc (a00 pixel 0 row 0, a10 pixel 1, a01 row 1, a11) += taps off..off+3 of the block: x0, x1 and
 * one weight row loaded first, the second row after (six live words next to the four accumulators
 * and two pointers). */
#define TK_MK_GROUP(xp, wp, off)                                          \
    do {                                                                  \
        int32_t x0l, x0h, x1l, x1h, wl, wh;                               \
        TK_MK_LDRD((xp) + (off), x0l, x0h);                               \
        if (np > 1)                                                       \
            TK_MK_LDRD((xp) + xs + (off), x1l, x1h);                      \
        TK_MK_LDRD((wp) + (off), wl, wh);                                 \
        a00 = __smlad(x0h, wh, __smlad(x0l, wl, a00));                    \
        if (np > 1)                                                       \
            a10 = __smlad(x1h, wh, __smlad(x1l, wl, a10));                \
        if (nr > 1) {                                                     \
            TK_MK_LDRD((wp) + ws + (off), wl, wh);                        \
            a01 = __smlad(x0h, wh, __smlad(x0l, wl, a01));                \
            if (np > 1)                                                   \
                a11 = __smlad(x1h, wh, __smlad(x1l, wl, a11));            \
        }                                                                 \
    } while (0)
#endif

/* The four accumulators of a block of 2 pixels x 2 channels (the compiler keeps them in registers). */
typedef struct {
    int32_t a00, a01, a10, a11; /* pixel, channel */
} tk_mk_acc2x2;

/* The block's accumulators from acc, or (from_bias: a call that starts them) from the biases of
 * its channels. */
TK_MK_INLINE tk_mk_acc2x2 tk_mk_acc_load(const int32_t *acc, int32_t acc_stride, int32_t np, int32_t nr,
                                         const int32_t *bias, int32_t from_bias)
{
    if (from_bias) {
        tk_mk_acc2x2 b = {bias[0], nr > 1 ? bias[1] : 0, np > 1 ? bias[0] : 0, np > 1 && nr > 1 ? bias[1] : 0};
        return b;
    }
    tk_mk_acc2x2 a = {acc[0], nr > 1 ? acc[1] : 0, np > 1 ? acc[acc_stride] : 0,
                      np > 1 && nr > 1 ? acc[acc_stride + 1] : 0};
    return a;
}

TK_MK_INLINE void tk_mk_acc_store(tk_mk_acc2x2 a, int32_t *acc, int32_t acc_stride, int32_t np, int32_t nr)
{
    acc[0] = a.a00;
    if (nr > 1)
        acc[1] = a.a01;
    if (np > 1) {
        acc[acc_stride] = a.a10;
        if (nr > 1)
            acc[acc_stride + 1] = a.a11;
    }
}

/* One run of a block: np pixels (1, 2) x nr channels (1, 2); a.(p, r) += sum_{i < k} x[p * xs + i] *
 * w[r * ws + i]. `aligned` (x, x + xs, w and w + ws 4-byte aligned) lets the DSP body load four
 * int16 per LDRD. */
TK_MK_INLINE tk_mk_acc2x2 tk_mk_conv_taps(tk_mk_acc2x2 a, const int16_t *x, int32_t xs, const int16_t *w, int32_t ws,
                                          int32_t k, int32_t np, int32_t nr, int32_t aligned)
{
    int32_t a00 = a.a00, a01 = a.a01, a10 = a.a10, a11 = a.a11;
    const int16_t *x1 = x + xs, *w1 = w + ws;
    int32_t i = 0;
#if TK_MK_DSP
    if (aligned) {
        /* groups of four taps, every load at a constant offset from one of two pointers; runs up to
         * 192 taps unrolled whole (no loop test or pointer step between groups) */
        const int16_t *xp = x, *wp = w;
        /* opaque to GCC: it would otherwise hoist every weight address (wp + constant) out of
         * the caller's pixel loop into registers it then spills to the stack */
        __asm__("" : "+r"(xp), "+r"(wp));
#pragma GCC unroll 12
        for (int32_t j = 0; j < (k >> 4); j++) {
            TK_MK_GROUP(xp, wp, 16 * j + 0);
            TK_MK_GROUP(xp, wp, 16 * j + 4);
            TK_MK_GROUP(xp, wp, 16 * j + 8);
            TK_MK_GROUP(xp, wp, 16 * j + 12);
        }
        xp += k & ~15;
        wp += k & ~15;
        if (k & 8) {
            TK_MK_GROUP(xp, wp, 0);
            TK_MK_GROUP(xp, wp, 4);
            xp += 8;
            wp += 8;
        }
        if (k & 4)
            TK_MK_GROUP(xp, wp, 0);
        i = k & ~3;
    }
    for (; i + 2 <= k; i += 2) {
        int32_t x0 = tk_mk_load2x16(x + i), w0 = tk_mk_load2x16(w + i);
        a00 = __smlad(x0, w0, a00);
        if (np > 1)
            a10 = __smlad(tk_mk_load2x16(x1 + i), w0, a10);
        if (nr > 1) {
            int32_t wv1 = tk_mk_load2x16(w1 + i);
            a01 = __smlad(x0, wv1, a01);
            if (np > 1)
                a11 = __smlad(tk_mk_load2x16(x1 + i), wv1, a11);
        }
    }
#else
    (void)aligned;
#endif
    for (; i < k; i++) {
        int32_t x0 = x[i], w0 = w[i];
        a00 += x0 * w0;
        if (np > 1)
            a10 += (int32_t)x1[i] * w0;
        if (nr > 1) {
            a01 += x0 * w1[i];
            if (np > 1)
                a11 += (int32_t)x1[i] * w1[i];
        }
    }
    tk_mk_acc2x2 out = {a00, a01, a10, a11};
    return out;
}

#if TK_MK_DSP
/* A block of 3 pixels x 2 channels over a run of k taps (k a multiple of 4, aligned as for
 * tk_mk_conv_taps): both weight words of a group loaded once for three pixels, 24 multiply-
 * accumulates per 5 LDRD + 12 SMLAD (2 x 2 blocks: 16 per 4 + 8). Six accumulators, four weight
 * words, one pixel's two input words and two pointers fill the registers: only for runs unrolled
 * whole (no loop counter). */
TK_MK_INLINE void tk_mk_conv_3x2(const int16_t *x, int32_t xs, const int16_t *w, int32_t ws, int32_t k, int32_t *acc,
                                 int32_t acc_stride, const int32_t *bias, int32_t from_bias)
{
    int32_t a00, a01, a10, a11, a20, a21;
    if (from_bias) { /* see tk_mk_acc_load */
        a00 = a10 = a20 = bias[0];
        a01 = a11 = a21 = bias[1];
    } else {
        a00 = acc[0], a01 = acc[1], a10 = acc[acc_stride], a11 = acc[acc_stride + 1];
        a20 = acc[2 * acc_stride], a21 = acc[2 * acc_stride + 1];
    }
    const int16_t *xp = x, *wp = w;
    __asm__("" : "+r"(xp), "+r"(wp)); /* see tk_mk_conv_taps */
#pragma GCC unroll 48
    for (int32_t i = 0; i < k; i += 4) {
        int32_t w0l, w0h, w1l, w1h, xl, xh;
        TK_MK_LDRD(wp + i, w0l, w0h);
        TK_MK_LDRD(wp + ws + i, w1l, w1h);
        TK_MK_LDRD(xp + i, xl, xh);
        a00 = __smlad(xh, w0h, __smlad(xl, w0l, a00));
        a01 = __smlad(xh, w1h, __smlad(xl, w1l, a01));
        TK_MK_LDRD(xp + xs + i, xl, xh);
        a10 = __smlad(xh, w0h, __smlad(xl, w0l, a10));
        a11 = __smlad(xh, w1h, __smlad(xl, w1l, a11));
        TK_MK_LDRD(xp + 2 * xs + i, xl, xh);
        a20 = __smlad(xh, w0h, __smlad(xl, w0l, a20));
        a21 = __smlad(xh, w1h, __smlad(xl, w1l, a21));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[acc_stride] = a10;
    acc[acc_stride + 1] = a11;
    acc[2 * acc_stride] = a20;
    acc[2 * acc_stride + 1] = a21;
}
#endif

/* Runs of up to this many taps take 3 x 2 blocks (tk_mk_conv_3x2 unrolls them whole). */
#define TK_MK_CONV_3X2_MAX_K 192

/* acc[p * rows + r] += sum_{i < k} x[p * xs + i] * w[r * ws + i] for p < pixels, r < rows: the
 * int16 run of k taps of each of `pixels` output pixels (xs apart) against `rows` weight rows (ws
 * apart). Blocks of 2 x 2 (on DSP cores, for aligned runs of whole groups up to 192 taps, pixel
 * triples first: 3 x 2); an odd pixel or channel count ends with a smaller block. The schedule
 * passes 4-byte aligned x and w when xs and ws are even (rows of even length in the scratch). */
TK_MK_INLINE void tk_mk_conv_s16_from(const int16_t *x, int32_t xs, const int16_t *w, int32_t k, int32_t ws,
                                      int32_t pixels, int32_t rows, int32_t *acc, const int32_t *bias,
                                      int32_t from_bias)
{
    const int32_t aligned = ((xs | ws) & 1) == 0;
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t nr = rows - r >= 2 ? 2 : 1;
        const int32_t *b = from_bias ? bias + r : (const int32_t *)0; /* this channel pair's biases */
        int32_t p = 0;
#if TK_MK_DSP
        if (aligned && nr == 2 && (k & 3) == 0 && k <= TK_MK_CONV_3X2_MAX_K) {
            /* triples while the rest is not a single pixel (16 = 3 x 4 + 2 x 2) */
            int32_t triples = pixels / 3;
            if (triples > 0 && pixels - 3 * triples == 1)
                triples--;
            for (; p < 3 * triples; p += 3)
                tk_mk_conv_3x2(x + p * xs, xs, w + r * ws, ws, k, acc + p * rows + r, rows, b, from_bias);
        }
#endif
        for (; p < pixels; p += 2) {
            const int32_t np = pixels - p >= 2 ? 2 : 1;
            int32_t *a = acc + p * rows + r;
            /* separate bodies for each block shape, so each has constant np, nr */
            if (np == 2 && nr == 2)
                tk_mk_acc_store(tk_mk_conv_taps(tk_mk_acc_load(a, rows, 2, 2, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 2, 2,
                                                aligned), a, rows, 2, 2);
            else if (nr == 2)
                tk_mk_acc_store(tk_mk_conv_taps(tk_mk_acc_load(a, rows, 1, 2, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 1, 2,
                                                aligned), a, rows, 1, 2);
            else if (np == 2)
                tk_mk_acc_store(tk_mk_conv_taps(tk_mk_acc_load(a, rows, 2, 1, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 2, 1,
                                                aligned), a, rows, 2, 1);
            else
                tk_mk_acc_store(tk_mk_conv_taps(tk_mk_acc_load(a, rows, 1, 1, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 1, 1,
                                                aligned), a, rows, 1, 1);
        }
    }
}

/* tk_mk_conv_s16_from: accumulate onto acc (from_bias 0) or start from the biases: acc[p * rows + r]
 * = bias[r] + the sum (a single filter-row call needs no tk_mk_acc_init pass over the accumulators). */
TK_MK_INLINE void tk_mk_conv_s16(const int16_t *x, int32_t xs, const int16_t *w, int32_t k, int32_t ws,
                                 int32_t pixels, int32_t rows, int32_t *acc)
{
    tk_mk_conv_s16_from(x, xs, w, k, ws, pixels, rows, acc, (const int32_t *)0, 0);
}

TK_MK_INLINE void tk_mk_conv_s16_bias(const int16_t *x, int32_t xs, const int16_t *w, int32_t k, int32_t ws,
                                      int32_t pixels, int32_t rows, int32_t *acc, const int32_t *bias)
{
    tk_mk_conv_s16_from(x, xs, w, k, ws, pixels, rows, acc, bias, 1);
}

/* ---- int8 weights (tk_mk_conv_s16w8): whole groups of four stored (w0, w2, w1, w3) ---- */

/* tap i of a run of k int8 weights in that order */
TK_MK_INLINE int32_t tk_mk_w8_at(const int8_t *w, int32_t i, int32_t k)
{
    const int32_t j = i & 3;
    return i < (k & ~3) ? w[(i & ~3) + (j == 1 ? 2 : j == 2 ? 1 : j)] : w[i];
}

#if TK_MK_DSP
/* (w0, w1) and (w2, w3) of one group of four int8 weights in (w0, w2, w1, w3) order */
#define TK_MK_W8(p, lo, hi)                                               \
    do {                                                                  \
        int32_t wv_ = tk_mk_load4((const int8_t *)(p));                   \
        lo = __sxtb16(wv_);                                               \
        hi = tk_mk_sxtb16_ror8(wv_);                                      \
    } while (0)

/* TK_MK_GROUP with int8 weights */
#define TK_MK_GROUP8(xp, wp, off)                                         \
    do {                                                                  \
        int32_t x0l, x0h, x1l, x1h, wl, wh;                               \
        TK_MK_LDRD((xp) + (off), x0l, x0h);                               \
        if (np > 1)                                                       \
            TK_MK_LDRD((xp) + xs + (off), x1l, x1h);                      \
        TK_MK_W8((wp) + (off), wl, wh);                                   \
        a00 = __smlad(x0h, wh, __smlad(x0l, wl, a00));                    \
        if (np > 1)                                                       \
            a10 = __smlad(x1h, wh, __smlad(x1l, wl, a10));                \
        if (nr > 1) {                                                     \
            TK_MK_W8((wp) + ws + (off), wl, wh);                          \
            a01 = __smlad(x0h, wh, __smlad(x0l, wl, a01));                \
            if (np > 1)                                                   \
                a11 = __smlad(x1h, wh, __smlad(x1l, wl, a11));            \
        }                                                                 \
    } while (0)
#endif

/* tk_mk_conv_taps with int8 weights; `aligned`: x and x + xs 4-byte aligned (weights may be at any
 * address: the word loads of M4/M7 allow it) */
TK_MK_INLINE tk_mk_acc2x2 tk_mk_conv_taps8(tk_mk_acc2x2 a, const int16_t *x, int32_t xs, const int8_t *w, int32_t ws,
                                           int32_t k, int32_t np, int32_t nr, int32_t aligned)
{
    int32_t a00 = a.a00, a01 = a.a01, a10 = a.a10, a11 = a.a11;
    const int16_t *x1 = x + xs;
    const int8_t *w1 = w + ws;
    int32_t i = 0;
#if TK_MK_DSP
    if (aligned) {
        const int16_t *xp = x;
        const int8_t *wp = w;
        __asm__("" : "+r"(xp), "+r"(wp)); /* see tk_mk_conv_taps */
#pragma GCC unroll 12
        for (int32_t j = 0; j < (k >> 4); j++) {
            TK_MK_GROUP8(xp, wp, 16 * j + 0);
            TK_MK_GROUP8(xp, wp, 16 * j + 4);
            TK_MK_GROUP8(xp, wp, 16 * j + 8);
            TK_MK_GROUP8(xp, wp, 16 * j + 12);
        }
        xp += k & ~15;
        wp += k & ~15;
        if (k & 8) {
            TK_MK_GROUP8(xp, wp, 0);
            TK_MK_GROUP8(xp, wp, 4);
            xp += 8;
            wp += 8;
        }
        if (k & 4)
            TK_MK_GROUP8(xp, wp, 0);
        i = k & ~3;
    }
#else
    (void)aligned;
#endif
    for (; i < k; i++) {
        int32_t x0 = x[i], w0 = tk_mk_w8_at(w, i, k);
        a00 += x0 * w0;
        if (np > 1)
            a10 += (int32_t)x1[i] * w0;
        if (nr > 1) {
            int32_t wv1 = tk_mk_w8_at(w1, i, k);
            a01 += x0 * wv1;
            if (np > 1)
                a11 += (int32_t)x1[i] * wv1;
        }
    }
    tk_mk_acc2x2 out = {a00, a01, a10, a11};
    return out;
}

#if TK_MK_DSP
/* tk_mk_conv_3x2 with int8 weights: both weight words of a group loaded and widened once for three
 * pixels */
TK_MK_INLINE void tk_mk_conv8_3x2(const int16_t *x, int32_t xs, const int8_t *w, int32_t ws, int32_t k, int32_t *acc,
                                  int32_t acc_stride, const int32_t *bias, int32_t from_bias)
{
    int32_t a00, a01, a10, a11, a20, a21;
    if (from_bias) {
        a00 = a10 = a20 = bias[0];
        a01 = a11 = a21 = bias[1];
    } else {
        a00 = acc[0], a01 = acc[1], a10 = acc[acc_stride], a11 = acc[acc_stride + 1];
        a20 = acc[2 * acc_stride], a21 = acc[2 * acc_stride + 1];
    }
    const int16_t *xp = x;
    const int8_t *wp = w;
    __asm__("" : "+r"(xp), "+r"(wp)); /* see tk_mk_conv_taps */
#pragma GCC unroll 48
    for (int32_t i = 0; i < k; i += 4) {
        int32_t w0l, w0h, w1l, w1h, xl, xh;
        TK_MK_W8(wp + i, w0l, w0h);
        TK_MK_W8(wp + ws + i, w1l, w1h);
        TK_MK_LDRD(xp + i, xl, xh);
        a00 = __smlad(xh, w0h, __smlad(xl, w0l, a00));
        a01 = __smlad(xh, w1h, __smlad(xl, w1l, a01));
        TK_MK_LDRD(xp + xs + i, xl, xh);
        a10 = __smlad(xh, w0h, __smlad(xl, w0l, a10));
        a11 = __smlad(xh, w1h, __smlad(xl, w1l, a11));
        TK_MK_LDRD(xp + 2 * xs + i, xl, xh);
        a20 = __smlad(xh, w0h, __smlad(xl, w0l, a20));
        a21 = __smlad(xh, w1h, __smlad(xl, w1l, a21));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[acc_stride] = a10;
    acc[acc_stride + 1] = a11;
    acc[2 * acc_stride] = a20;
    acc[2 * acc_stride + 1] = a21;
}
#endif

/* tk_mk_conv_s16_from with int8 weights (same blocks; x aligned when xs is even) */
TK_MK_INLINE void tk_mk_conv_s16w8_from(const int16_t *x, int32_t xs, const int8_t *w, int32_t k, int32_t ws,
                                        int32_t pixels, int32_t rows, int32_t *acc, const int32_t *bias,
                                        int32_t from_bias)
{
    const int32_t aligned = (xs & 1) == 0;
    for (int32_t r = 0; r < rows; r += 2) {
        const int32_t nr = rows - r >= 2 ? 2 : 1;
        const int32_t *b = from_bias ? bias + r : (const int32_t *)0;
        int32_t p = 0;
#if TK_MK_DSP
        if (aligned && nr == 2 && (k & 3) == 0 && k <= TK_MK_CONV_3X2_MAX_K) {
            int32_t triples = pixels / 3;
            if (triples > 0 && pixels - 3 * triples == 1)
                triples--;
            for (; p < 3 * triples; p += 3)
                tk_mk_conv8_3x2(x + p * xs, xs, w + r * ws, ws, k, acc + p * rows + r, rows, b, from_bias);
        }
#endif
        for (; p < pixels; p += 2) {
            const int32_t np = pixels - p >= 2 ? 2 : 1;
            int32_t *a = acc + p * rows + r;
            if (np == 2 && nr == 2)
                tk_mk_acc_store(tk_mk_conv_taps8(tk_mk_acc_load(a, rows, 2, 2, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 2, 2,
                                                 aligned), a, rows, 2, 2);
            else if (nr == 2)
                tk_mk_acc_store(tk_mk_conv_taps8(tk_mk_acc_load(a, rows, 1, 2, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 1, 2,
                                                 aligned), a, rows, 1, 2);
            else if (np == 2)
                tk_mk_acc_store(tk_mk_conv_taps8(tk_mk_acc_load(a, rows, 2, 1, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 2, 1,
                                                 aligned), a, rows, 2, 1);
            else
                tk_mk_acc_store(tk_mk_conv_taps8(tk_mk_acc_load(a, rows, 1, 1, b, from_bias), x + p * xs, xs, w + r * ws, ws, k, 1, 1,
                                                 aligned), a, rows, 1, 1);
        }
    }
}

TK_MK_INLINE void tk_mk_conv_s16w8(const int16_t *x, int32_t xs, const int8_t *w, int32_t k, int32_t ws,
                                   int32_t pixels, int32_t rows, int32_t *acc)
{
    tk_mk_conv_s16w8_from(x, xs, w, k, ws, pixels, rows, acc, (const int32_t *)0, 0);
}

TK_MK_INLINE void tk_mk_conv_s16w8_bias(const int16_t *x, int32_t xs, const int8_t *w, int32_t k, int32_t ws,
                                        int32_t pixels, int32_t rows, int32_t *acc, const int32_t *bias)
{
    tk_mk_conv_s16w8_from(x, xs, w, k, ws, pixels, rows, acc, bias, 1);
}

/* Nothing: the acc_init tile of a schedule whose one conv call per tile starts the accumulators
 * from the biases itself (tk_mk_conv_s16_bias). */
TK_MK_INLINE void tk_mk_acc_none(int32_t *acc)
{
    (void)acc;
}

/* acc[p * rows + r] = bias[r] for p < pixels, r < rows: input16's accumulators start from the bias
 * (the requantization then adds nothing). */
TK_MK_INLINE void tk_mk_acc_init(int32_t *acc, const int32_t *bias, int32_t pixels, int32_t rows)
{
    if (rows <= 4) {
        /* the tile's biases in registers, stored per pixel (pairs merge into STRD) */
        int32_t b0 = bias[0], b1 = rows > 1 ? bias[1] : 0, b2 = rows > 2 ? bias[2] : 0, b3 = rows > 3 ? bias[3] : 0;
        for (int32_t p = 0; p < pixels; p++, acc += rows) {
            acc[0] = b0;
            if (rows > 1)
                acc[1] = b1;
            if (rows > 2)
                acc[2] = b2;
            if (rows > 3)
                acc[3] = b3;
        }
        return;
    }
    for (int32_t p = 0; p < pixels; p++, acc += rows)
        for (int32_t r = 0; r < rows; r++)
            acc[r] = bias[r];
}

/* One int16 row of the input16 scratch (ops/conv2d.py Geometry16): `before` pixels of zero points,
 * the w pixels of input row `row` (c int8 channels each, sign-extended, then cp - c zero points),
 * zero points up to `len` values; a row outside the input (row < 0 or row >= h) is all zero
 * points. x is the input's first row, rows w * c apart. */
TK_MK_INLINE void tk_mk_widen_row(int16_t *dst, const int8_t *x, int32_t row, int32_t h, int32_t before, int32_t w,
                                  int32_t c, int32_t cp, int32_t len, int32_t zp)
{
    int16_t *d = dst, *end = dst + len;
    if (row >= 0 && row < h) {
        const int8_t *src = x + row * w * c, *src_end = src + w * c;
        for (int16_t *lead = d + before * cp; d != lead; d++)
            *d = (int16_t)zp;
        if (c == cp) {
#if TK_MK_DSP
            /* four values per turn: SXTB16 gives (v0, v2) and (v1, v3), PKHBT/PKHTB put them back
             * in order; two word stores (unaligned: the row may start at an odd int16) */
            for (; src_end - src >= 4; src += 4, d += 4) {
                int32_t v = tk_mk_load4(src), even = __sxtb16(v), odd = tk_mk_sxtb16_ror8(v), lo, hi;
                __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(lo) : "r"(even), "r"(odd));
                __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(hi) : "r"(odd), "r"(even));
                memcpy(d, &lo, 4);
                memcpy(d + 2, &hi, 4);
            }
#endif
            for (; src != src_end; src++, d++)
                *d = *src;
        } else {
            for (; src != src_end; src += c) {
                for (int32_t ch = 0; ch < c; ch++)
                    *d++ = src[ch];
                for (int32_t ch = c; ch < cp; ch++)
                    *d++ = (int16_t)zp;
            }
        }
    }
    for (; d < end; d++)
        *d = (int16_t)zp;
}

/* d[i] = src[i] (sign-extended) for i < n; d and src may be unaligned. */
TK_MK_INLINE void tk_mk_widen_run(int16_t *d, const int8_t *src, int32_t n)
{
    int32_t i = 0;
#if TK_MK_DSP
    /* four values per turn as in tk_mk_widen_row: 7 instructions where a byte loop takes 16 */
    for (int32_t q = 0; q < n >> 2; q++) {
        int32_t v = tk_mk_load4(src + 4 * q), even = __sxtb16(v), odd = tk_mk_sxtb16_ror8(v), lo, hi;
        __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(lo) : "r"(even), "r"(odd));
        __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(hi) : "r"(odd), "r"(even));
        memcpy(d + 4 * q, &lo, 4);
        memcpy(d + 4 * q + 2, &hi, 4);
    }
    i = n & ~3;
#endif
    for (; i < n; i++)
        d[i] = src[i];
}

/* One output pixel's window as one int16 run (the im2col scratch, ops/conv2d.py Geometry16): for
 * each of the kh filter rows (input rows row0, row0 + dh, ...) the kw taps at columns col0, col0 + dw,
 * ... of c channels each, sign-extended, zero points where a tap falls outside the input; then zero
 * points up to `window` values. x is the input (h rows of w pixels of c channels). */
TK_MK_INLINE void tk_mk_im2col_s16(int16_t *dst, const int8_t *x, int32_t row0, int32_t col0, int32_t h, int32_t w,
                                   int32_t c, int32_t kh, int32_t kw, int32_t dh, int32_t dw, int32_t window,
                                   int32_t zp)
{
    int16_t *d = dst, *end = dst + window;
    const int32_t run = kw * c;
    /* without dilation across, the taps inside the row (j0 <= j < j1) are contiguous in every
     * filter row: zero points before and after, one widened run between (no test per tap) */
    int32_t j0 = 0, j1 = kw;
    if (dw == 1) {
        if (col0 < 0)
            j0 = -col0 < kw ? -col0 : kw;
        if (col0 + kw > w)
            j1 = w - col0 > j0 ? w - col0 : j0;
    }
    const int32_t lead = j0 * c, inside = (j1 - j0) * c;
    if (dw == 1 && inside == run) {
        /* the window wholly inside the row (most pixels): runs of a constant length, which the
         * compiler unrolls (kernels pass constant shapes) */
        for (int32_t t = 0, row = row0; t < kh; t++, row += dh, d += run) {
            if (row < 0 || row >= h) {
                for (int32_t i = 0; i < run; i++)
                    d[i] = (int16_t)zp;
            } else {
                tk_mk_widen_run(d, x + (row * w + col0) * c, run);
            }
        }
        for (; d < end; d++)
            *d = (int16_t)zp;
        return;
    }
    for (int32_t t = 0, row = row0; t < kh; t++, row += dh) {
        if (row < 0 || row >= h) {
            for (int32_t i = 0; i < run; i++)
                d[i] = (int16_t)zp;
        } else if (dw == 1) {
            for (int32_t i = 0; i < lead; i++)
                d[i] = (int16_t)zp;
            if (inside > 0)
                tk_mk_widen_run(d + lead, x + (row * w + col0 + j0) * c, inside);
            for (int32_t i = lead + inside; i < run; i++)
                d[i] = (int16_t)zp;
        } else {
            const int8_t *xr = x + row * w * c;
            for (int32_t j = 0, col = col0; j < kw; j++, col += dw)
                for (int32_t ch = 0; ch < c; ch++)
                    d[j * c + ch] = col >= 0 && col < w ? xr[col * c + ch] : (int16_t)zp;
        }
        d += run;
    }
    for (; d < end; d++)
        *d = (int16_t)zp;
}

#endif /* TK_MK_CONV_H */
