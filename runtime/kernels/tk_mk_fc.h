/* tinykiln micro-kernels for FULLY_CONNECTED (see tk_mk.h for the shared helpers).
 *
 * tk_mk_fc_s8w16(x, w, k, rows, acc): acc[r] += sum_{i < k} x[i] * W[r][i] for r < rows, with the
 * int8 weights re-packed at build time as int16, interleaved across rows so that one pointer walks
 * them in the order they are multiplied (ops/fully_connected.py pack_fc_w16 writes this layout):
 *
 *   the rows of a tile form groups of 4 consecutive rows (the last group: the 1..3 left over);
 *   a group of g rows holds, for each whole block of four inputs q < k / 4, the g rows' four taps
 *   4q..4q+3 one row after the other, each in SXTB16 order (w0, w2, w1, w3); then the k % 4 tail
 *   taps, g rows of them one row after the other, in order; then one int16 of zero if that tail
 *   is an odd count, so that every group starts on a word boundary (4-row groups have 4k values).
 *
 * tk_mk_fc_s16w16(x16, w, k, rows, acc): the same with the input already widened by
 * tk_mk_fc_widen(x, x16, k) into int16 in that order (word aligned: x16 = (x0, x2, x1, x3) per
 * block, then the tail in order), once per input row for all the tiles of the layer.
 *
 * On a DSP core each block of four inputs is one word load and two SXTB16 (x0, x2), (x1, x3)
 * (widened input: one LDRD) shared by the group's rows, and each pair of rows is one LDM of four
 * words (the weights are already int16 pairs in the order SMLAD wants them) and four SMLAD: 4 rows
 * x 4 inputs in 11 instructions (int8 input: 13), the loop unrolled by four blocks. LDM needs its
 * register list in ascending order, so the four weight words live in fixed registers (r8..r11,
 * which no ABI reserves on M-profile). The loops are inline assembly (the compiler, given the same
 * code as intrinsics, spilled an accumulator and the end pointer); a memory clobber orders them
 * after the stores of the input.
 *
 * On Cortex-A with NEON a block is one VMLAL.S16 per row (four lanes, one per slot). The portable
 * twins (host, cores without DSP or NEON, TK_MK_PORTABLE) read the same layouts value by value;
 * int32 sums are the same whatever the order (TFLite's reference sums never overflow for int8
 * layers). */
#ifndef TK_MK_FC_H
#define TK_MK_FC_H

#include "tk_mk.h"

#if !TK_MK_DSP && defined(__ARM_NEON) && !defined(TK_MK_PORTABLE)
#define TK_MK_FC_NEON 1
#include <arm_neon.h>
#else
#define TK_MK_FC_NEON 0
#endif

/* taps 0..3 of a block sit at slots (0, 2, 1, 3): the permutation is its own inverse */
#define TK_MK_FC_SLOT(j) ((j) == 1 ? 2 : (j) == 2 ? 1 : (j))

#if TK_MK_DSP
/* Assembly text of one block of four inputs against a group of 4, 3, 2 or 1 rows: the inputs as
 * xe = (x0, x2) and xo = (x1, x3), then per pair of rows one LDM of their four weight words (per
 * single row two words) and two SMLAD per row. Operands: see TK_MK_FC_ASM. */
#define TK_MK_FC_X8                                                                                \
    "ldr %[xe], [%[xp]], #4\n\t"                                                                    \
    "sxtb16 %[xo], %[xe], ror #8\n\t"                                                               \
    "sxtb16 %[xe], %[xe]\n\t"
#define TK_MK_FC_X16 "ldrd %[xe], %[xo], [%[xp]], #8\n\t"
#define TK_MK_FC_ROWS2(a, b)                                                                       \
    "ldmia %[wp]!, {%[w0], %[w1], %[w2], %[w3]}\n\t"                                                \
    "smlad %[" a "], %[xe], %[w0], %[" a "]\n\t"                                                    \
    "smlad %[" a "], %[xo], %[w1], %[" a "]\n\t"                                                    \
    "smlad %[" b "], %[xe], %[w2], %[" b "]\n\t"                                                    \
    "smlad %[" b "], %[xo], %[w3], %[" b "]\n\t"
#define TK_MK_FC_ROW1(a)                                                                           \
    "ldmia %[wp]!, {%[w0], %[w1]}\n\t"                                                              \
    "smlad %[" a "], %[xe], %[w0], %[" a "]\n\t"                                                    \
    "smlad %[" a "], %[xo], %[w1], %[" a "]\n\t"
#define TK_MK_FC_G4 TK_MK_FC_ROWS2("a0", "a1") TK_MK_FC_ROWS2("a2", "a3")
#define TK_MK_FC_G3 TK_MK_FC_ROWS2("a0", "a1") TK_MK_FC_ROW1("a2")
#define TK_MK_FC_G2 TK_MK_FC_ROWS2("a0", "a1")
#define TK_MK_FC_G1 TK_MK_FC_ROW1("a0")

/* Run `text` with the group's operands: the accumulators and pointers in registers of the
 * compiler's choice, the weight words in r8..r11. */
#define TK_MK_FC_ASM(text)                                                                         \
    __asm__ volatile(text                                                                          \
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp),   \
                       [wp] "+r"(wp), [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), \
                       [w2] "=&r"(w2), [w3] "=&r"(w3)                                              \
                     : [end] "r"(end)                                                              \
                     : "cc", "memory")
/* All the whole blocks: the k / 4 % 4 left over first (k is a constant where kernels call this, so
 * only the ones needed are compiled), then a loop of four blocks at a time. */
#define TK_MK_FC_RUN(block)                                                                        \
    do {                                                                                           \
        if ((whole >> 2) & 1)                                                                      \
            TK_MK_FC_ASM(block);                                                                   \
        if ((whole >> 3) & 1)                                                                      \
            TK_MK_FC_ASM(block block);                                                             \
        if (xp != end)                                                                             \
            TK_MK_FC_ASM("1:\n\t" block block block block "cmp %[xp], %[end]\n\tbne 1b\n\t");        \
    } while (0)
/* The group's whole blocks, g rows, input words loaded by `load` (TK_MK_FC_X8 or TK_MK_FC_X16). */
#define TK_MK_FC_BLOCKS(load)                                                                        \
    do {                                                                                           \
        /* the LDM register list must ascend: the weight words get fixed registers */             \
        register int32_t w0 __asm__("r8");                                                         \
        register int32_t w1 __asm__("r9");                                                         \
        register int32_t w2 __asm__("r10");                                                        \
        register int32_t w3 __asm__("r11");                                                        \
        int32_t xe, xo;                                                                            \
        if (g == 4)                                                                                \
            TK_MK_FC_RUN(load TK_MK_FC_G4);                                                         \
        else if (g == 3)                                                                           \
            TK_MK_FC_RUN(load TK_MK_FC_G3);                                                         \
        else if (g == 2)                                                                           \
            TK_MK_FC_RUN(load TK_MK_FC_G2);                                                         \
        else                                                                                       \
            TK_MK_FC_RUN(load TK_MK_FC_G1);                                                         \
        (void)xe, (void)xo, (void)w0, (void)w1, (void)w2, (void)w3;                                \
    } while (0)
/* int8 weights: per pair of rows one LDM of their two words, each widened into two pairs (w0, w2)
 * and (w1, w3) in place and in a spare register (w2, w3 here are temporaries). */
#define TK_MK_FC8_ROWS2(a, b)                                                                      \
    "ldmia %[wp]!, {%[w0], %[w1]}\n\t"                                                             \
    "sxtb16 %[w2], %[w0], ror #8\n\t"                                                              \
    "sxtb16 %[w0], %[w0]\n\t"                                                                      \
    "sxtb16 %[w3], %[w1], ror #8\n\t"                                                              \
    "sxtb16 %[w1], %[w1]\n\t"                                                                      \
    "smlad %[" a "], %[xe], %[w0], %[" a "]\n\t"                                                    \
    "smlad %[" a "], %[xo], %[w2], %[" a "]\n\t"                                                    \
    "smlad %[" b "], %[xe], %[w1], %[" b "]\n\t"                                                    \
    "smlad %[" b "], %[xo], %[w3], %[" b "]\n\t"
#define TK_MK_FC8_ROW1(a)                                                                          \
    "ldr %[w0], [%[wp]], #4\n\t"                                                                   \
    "sxtb16 %[w2], %[w0], ror #8\n\t"                                                              \
    "sxtb16 %[w0], %[w0]\n\t"                                                                      \
    "smlad %[" a "], %[xe], %[w0], %[" a "]\n\t"                                                    \
    "smlad %[" a "], %[xo], %[w2], %[" a "]\n\t"
#define TK_MK_FC8_G4 TK_MK_FC8_ROWS2("a0", "a1") TK_MK_FC8_ROWS2("a2", "a3")
#define TK_MK_FC8_G3 TK_MK_FC8_ROWS2("a0", "a1") TK_MK_FC8_ROW1("a2")
#define TK_MK_FC8_G2 TK_MK_FC8_ROWS2("a0", "a1")
#define TK_MK_FC8_G1 TK_MK_FC8_ROW1("a0")
/* The group's whole blocks against int8 weights, input words loaded by `load`. */
#define TK_MK_FC8_BLOCKS(load)                                                                      \
    do {                                                                                           \
        register int32_t w0 __asm__("r8");                                                         \
        register int32_t w1 __asm__("r9");                                                         \
        register int32_t w2 __asm__("r10");                                                        \
        register int32_t w3 __asm__("r11");                                                        \
        int32_t xe, xo;                                                                            \
        if (g == 4)                                                                                \
            TK_MK_FC_RUN(load TK_MK_FC8_G4);                                                        \
        else if (g == 3)                                                                           \
            TK_MK_FC_RUN(load TK_MK_FC8_G3);                                                        \
        else if (g == 2)                                                                           \
            TK_MK_FC_RUN(load TK_MK_FC8_G2);                                                        \
        else                                                                                       \
            TK_MK_FC_RUN(load TK_MK_FC8_G1);                                                        \
        (void)xe, (void)xo, (void)w0, (void)w1, (void)w2, (void)w3;                                \
    } while (0)
#endif

/* The portable twin of the whole blocks: input value of slot j of block q is xs(q, j). */
#define TK_MK_FC_PORTABLE_BLOCKS(xs)                                                               \
    for (int32_t q = 0; q < whole; q += 4) {                                                       \
        for (int32_t j = 0; j < 4; j++) {                                                          \
            int32_t xv = xs(q, j);                                                                 \
            a0 += xv * wp[j];                                                                      \
            if (g > 1)                                                                             \
                a1 += xv * wp[4 + j];                                                              \
            if (g > 2)                                                                             \
                a2 += xv * wp[8 + j];                                                              \
            if (g > 3)                                                                             \
                a3 += xv * wp[12 + j];                                                             \
        }                                                                                          \
        wp += 4 * g;                                                                               \
    }

#if TK_MK_FC_NEON
/* The NEON twin (Cortex-A, where the compiler vectorised tk_mk_dot_s8's plain loops but not the
 * interleaved rows above): a block's four slots are the lanes of one VMLAL.S16 per row, summed
 * at the end. */
TK_MK_INLINE int32_t tk_mk_fc_hsum(int32x4_t v)
{
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
}

/* lanes += one block (inputs xv: int16x4 in slot order) against the group's g rows at wp */
#define TK_MK_FC_NEON_BLOCK(xv)                                                                    \
    do {                                                                                           \
        if (g >= 2) {                                                                              \
            int16x8_t w01 = vld1q_s16(wp);                                                         \
            l0 = vmlal_s16(l0, (xv), vget_low_s16(w01));                                           \
            l1 = vmlal_s16(l1, (xv), vget_high_s16(w01));                                          \
        } else {                                                                                   \
            l0 = vmlal_s16(l0, (xv), vld1_s16(wp));                                                \
        }                                                                                          \
        if (g == 4) {                                                                              \
            int16x8_t w23 = vld1q_s16(wp + 8);                                                     \
            l2 = vmlal_s16(l2, (xv), vget_low_s16(w23));                                           \
            l3 = vmlal_s16(l3, (xv), vget_high_s16(w23));                                          \
        } else if (g == 3) {                                                                       \
            l2 = vmlal_s16(l2, (xv), vld1_s16(wp + 8));                                            \
        }                                                                                          \
        wp += 4 * g;                                                                               \
    } while (0)
#define TK_MK_FC_NEON_BEGIN int32x4_t l0 = vdupq_n_s32(0), l1 = l0, l2 = l0, l3 = l0;
#define TK_MK_FC_NEON_END                                                                          \
    a0 += tk_mk_fc_hsum(l0);                                                                       \
    a1 += tk_mk_fc_hsum(l1);                                                                       \
    a2 += tk_mk_fc_hsum(l2);                                                                       \
    a3 += tk_mk_fc_hsum(l3);
#endif

/* Accumulators in, the k % 4 tail (in order in both the input and the weights), accumulators out:
 * the frame of both group functions around their whole blocks. */
#define TK_MK_FC_GROUP_BEGIN                                                                       \
    int32_t a0 = acc[0];                                                                           \
    int32_t a1 = g > 1 ? acc[1] : 0;                                                               \
    int32_t a2 = g > 2 ? acc[2] : 0;                                                               \
    int32_t a3 = g > 3 ? acc[3] : 0;                                                               \
    const int32_t whole = k & ~3, tail = k & 3;                                                    \
    const int16_t *wp = w;
#define TK_MK_FC_GROUP_END(x)                                                                      \
    for (int32_t j = 0; j < tail; j++) {                                                           \
        int32_t xv = (x)[whole + j];                                                               \
        a0 += xv * wp[j];                                                                          \
        if (g > 1)                                                                                 \
            a1 += xv * wp[tail + j];                                                               \
        if (g > 2)                                                                                 \
            a2 += xv * wp[2 * tail + j];                                                           \
        if (g > 3)                                                                                 \
            a3 += xv * wp[3 * tail + j];                                                           \
    }                                                                                              \
    acc[0] = a0;                                                                                   \
    if (g > 1)                                                                                     \
        acc[1] = a1;                                                                               \
    if (g > 2)                                                                                     \
        acc[2] = a2;                                                                               \
    if (g > 3)                                                                                     \
        acc[3] = a3;

/* One group of g (1..4) rows starting at w (word aligned), int8 input. */
TK_MK_INLINE void tk_mk_fc_group(const int8_t *x, const int16_t *w, int32_t k, int32_t g, int32_t *acc)
{
    TK_MK_FC_GROUP_BEGIN
#if TK_MK_DSP
    const int8_t *xp = x, *end = x + whole;
    TK_MK_FC_BLOCKS(TK_MK_FC_X8);
#elif TK_MK_FC_NEON
    {
        /* two blocks from one 8-byte load (element size 1: no alignment needed), slots reordered
         * by VTBL, widened by VMOVL; a last odd block from its bytes */
        static const int8_t slots[8] = {0, 2, 1, 3, 4, 6, 5, 7};
        const int8x8_t order = vld1_s8(slots);
        TK_MK_FC_NEON_BEGIN
        int32_t q = 0;
        for (; q + 8 <= whole; q += 8) {
            int16x8_t xv = vmovl_s8(vtbl1_s8(vld1_s8(x + q), order));
            TK_MK_FC_NEON_BLOCK(vget_low_s16(xv));
            TK_MK_FC_NEON_BLOCK(vget_high_s16(xv));
        }
        if (q < whole) {
            const int16_t last[4] = {x[q], x[q + 2], x[q + 1], x[q + 3]};
            TK_MK_FC_NEON_BLOCK(vld1_s16(last));
        }
        TK_MK_FC_NEON_END
    }
#else
#define TK_MK_FC_XS8(q, j) x[(q) + TK_MK_FC_SLOT(j)]
    TK_MK_FC_PORTABLE_BLOCKS(TK_MK_FC_XS8)
#undef TK_MK_FC_XS8
#endif
    TK_MK_FC_GROUP_END(x)
}

/* One group of g (1..4) rows starting at w, input widened by tk_mk_fc_widen (both word aligned). */
TK_MK_INLINE void tk_mk_fc_group16(const int16_t *x, const int16_t *w, int32_t k, int32_t g, int32_t *acc)
{
    TK_MK_FC_GROUP_BEGIN
#if TK_MK_DSP
    const int16_t *xp = x, *end = x + whole;
    TK_MK_FC_BLOCKS(TK_MK_FC_X16);
#elif TK_MK_FC_NEON
    TK_MK_FC_NEON_BEGIN
    int32_t q = 0;
    for (; q + 8 <= whole; q += 8) {
        int16x8_t xv = vld1q_s16(x + q);
        TK_MK_FC_NEON_BLOCK(vget_low_s16(xv));
        TK_MK_FC_NEON_BLOCK(vget_high_s16(xv));
    }
    if (q < whole)
        TK_MK_FC_NEON_BLOCK(vld1_s16(x + q));
    TK_MK_FC_NEON_END
#else
#define TK_MK_FC_XS16(q, j) x[(q) + (j)]
    TK_MK_FC_PORTABLE_BLOCKS(TK_MK_FC_XS16)
#undef TK_MK_FC_XS16
#endif
    TK_MK_FC_GROUP_END(x)
}

/* The entry points schedules call: a tile of any number of rows, in groups of four (a group shares
 * each input load); w is the tile's first group. */
#define TK_MK_FC_TILE(group)                                                                       \
    do {                                                                                           \
        int32_t r = 0;                                                                             \
        for (; r + 4 <= rows; r += 4)                                                              \
            group(x, w + r * k, k, 4, acc + r);                                                    \
        if (rows - r == 3)                                                                         \
            group(x, w + r * k, k, 3, acc + r);                                                    \
        else if (rows - r == 2)                                                                    \
            group(x, w + r * k, k, 2, acc + r);                                                    \
        else if (rows - r == 1)                                                                    \
            group(x, w + r * k, k, 1, acc + r);                                                    \
    } while (0)

TK_MK_INLINE void tk_mk_fc_s8w16(const int8_t *x, const int16_t *w, int32_t k, int32_t rows, int32_t *acc)
{
    TK_MK_FC_TILE(tk_mk_fc_group);
}

TK_MK_INLINE void tk_mk_fc_s16w16(const int16_t *x, const int16_t *w, int32_t k, int32_t rows, int32_t *acc)
{
    TK_MK_FC_TILE(tk_mk_fc_group16);
}

/* int8 weights (pack_fc_w8's layout): the frame of both group functions. w is byte-addressed; a
 * group's tail bytes end on a word. */
#define TK_MK_FC8_GROUP_BEGIN                                                                      \
    int32_t a0 = acc[0];                                                                           \
    int32_t a1 = g > 1 ? acc[1] : 0;                                                               \
    int32_t a2 = g > 2 ? acc[2] : 0;                                                               \
    int32_t a3 = g > 3 ? acc[3] : 0;                                                               \
    const int32_t whole = k & ~3, tail = k & 3;                                                    \
    const int8_t *wp = w;

/* The portable twin of the int8 weights' whole blocks: tap j of block q against input xs(q, j). */
#define TK_MK_FC8_PORTABLE_BLOCKS(xs)                                                              \
    for (int32_t q = 0; q < whole; q += 4) {                                                       \
        for (int32_t j = 0; j < 4; j++) {                                                          \
            int32_t xv = xs(q, j);                                                                 \
            a0 += xv * wp[j];                                                                      \
            if (g > 1)                                                                             \
                a1 += xv * wp[4 + j];                                                              \
            if (g > 2)                                                                             \
                a2 += xv * wp[8 + j];                                                              \
            if (g > 3)                                                                             \
                a3 += xv * wp[12 + j];                                                             \
        }                                                                                          \
        wp += 4 * g;                                                                               \
    }

/* One group of g (1..4) rows of int8 weights starting at w (word aligned), int8 input. */
TK_MK_INLINE void tk_mk_fc8_group(const int8_t *x, const int8_t *w, int32_t k, int32_t g, int32_t *acc)
{
    TK_MK_FC8_GROUP_BEGIN
#if TK_MK_DSP
    const int8_t *xp = x, *end = x + whole;
    TK_MK_FC8_BLOCKS(TK_MK_FC_X8);
#else
#define TK_MK_FC8_XS8(q, j) x[(q) + (j)]
    TK_MK_FC8_PORTABLE_BLOCKS(TK_MK_FC8_XS8)
#undef TK_MK_FC8_XS8
#endif
    TK_MK_FC_GROUP_END(x)
}

/* One group of g (1..4) rows of int8 weights starting at w, input widened by tk_mk_fc_widen (slot
 * order: tap j of a block at slot TK_MK_FC_SLOT(j)). */
TK_MK_INLINE void tk_mk_fc8_group16(const int16_t *x, const int8_t *w, int32_t k, int32_t g, int32_t *acc)
{
    TK_MK_FC8_GROUP_BEGIN
#if TK_MK_DSP
    const int16_t *xp = x, *end = x + whole;
    TK_MK_FC8_BLOCKS(TK_MK_FC_X16);
#else
#define TK_MK_FC8_XS16(q, j) x[(q) + TK_MK_FC_SLOT(j)]
    TK_MK_FC8_PORTABLE_BLOCKS(TK_MK_FC8_XS16)
#undef TK_MK_FC8_XS16
#endif
    TK_MK_FC_GROUP_END(x)
}

/* Tiles as TK_MK_FC_TILE: a group of four rows takes 4k bytes (a whole number of words); only a
 * tile's last group can be short. */
TK_MK_INLINE void tk_mk_fc_s8w8(const int8_t *x, const int8_t *w, int32_t k, int32_t rows, int32_t *acc)
{
    TK_MK_FC_TILE(tk_mk_fc8_group);
}

TK_MK_INLINE void tk_mk_fc_s16w8(const int16_t *x, const int8_t *w, int32_t k, int32_t rows, int32_t *acc)
{
    TK_MK_FC_TILE(tk_mk_fc8_group16);
}

/* x16 = the k int8 inputs as int16, each whole block of four in SXTB16 order (x0, x2, x1, x3), the
 * tail in order; x16 word aligned. */
TK_MK_INLINE void tk_mk_fc_widen(const int8_t *x, int16_t *x16, int32_t k)
{
    const int32_t whole = k & ~3;
#if TK_MK_DSP
    int16_t *p = x16;
    for (int32_t i = 0; i < whole; i += 4) {
        int32_t xv = tk_mk_load4(x + i);
        /* STRD: the compiler, given a memcpy of the pair, went through the stack */
        __asm__ volatile("strd %[e], %[o], [%[p]], #8"
                         : [p] "+r"(p)
                         : [e] "r"(__sxtb16(xv)), [o] "r"(tk_mk_sxtb16_ror8(xv))
                         : "memory");
    }
#else
    int32_t i = 0;
#if TK_MK_FC_NEON
    static const int8_t slots[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    const int8x8_t order = vld1_s8(slots);
    for (; i + 8 <= whole; i += 8)
        vst1q_s16(x16 + i, vmovl_s8(vtbl1_s8(vld1_s8(x + i), order)));
#endif
    for (; i < whole; i += 4)
        for (int32_t j = 0; j < 4; j++)
            x16[i + j] = x[i + TK_MK_FC_SLOT(j)];
#endif
    for (int32_t t = whole; t < k; t++)
        x16[t] = x[t];
}

#endif /* TK_MK_FC_H */
