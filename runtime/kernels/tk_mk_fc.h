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
 * On a DSP core each block of four inputs is one word load and two SXTB16 (x0, x2), (x1, x3)
 * shared by the group's rows, and each pair of rows is one LDM of four words (the weights are
 * already int16 pairs in the order SMLAD wants them) and four SMLAD: 4 rows x 4 inputs in 15
 * instructions, the loop unrolled by two blocks. LDM needs its register list in ascending order,
 * so the four weight words live in fixed registers (r8..r11, which no ABI reserves on M-profile).
 * The loops are inline assembly (the compiler, given the same code as intrinsics, spilled an
 * accumulator and the end pointer); a memory clobber orders them after the stores of the input.
 *
 * The portable twin (host, Cortex-A, cores without DSP) reads the same layout tap by tap; int32
 * sums are the same whatever the order (TFLite's reference sums never overflow for int8 layers). */
#ifndef TK_MK_FC_H
#define TK_MK_FC_H

#include "tk_mk.h"

/* taps 0..3 of a block sit at slots (0, 2, 1, 3): the permutation is its own inverse */
#define TK_MK_FC_SLOT(j) ((j) == 1 ? 2 : (j) == 2 ? 1 : (j))

#if TK_MK_DSP
/* Assembly text of one block of four inputs against a group of 4, 3, 2 or 1 rows: the input word
 * split into xe = (x0, x2) and xo = (x1, x3), then per pair of rows one LDM of their four weight
 * words (per single row two words) and two SMLAD per row. Operands: see tk_mk_fc_group. */
#define TK_MK_FC_X                                                                                 \
    "ldr %[xe], [%[xp]], #4\n\t"                                                                    \
    "sxtb16 %[xo], %[xe], ror #8\n\t"                                                               \
    "sxtb16 %[xe], %[xe]\n\t"
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
#define TK_MK_FC_BLOCK4 TK_MK_FC_X TK_MK_FC_ROWS2("a0", "a1") TK_MK_FC_ROWS2("a2", "a3")
#define TK_MK_FC_BLOCK3 TK_MK_FC_X TK_MK_FC_ROWS2("a0", "a1") TK_MK_FC_ROW1("a2")
#define TK_MK_FC_BLOCK2 TK_MK_FC_X TK_MK_FC_ROWS2("a0", "a1")
#define TK_MK_FC_BLOCK1 TK_MK_FC_X TK_MK_FC_ROW1("a0")

/* Run `text` (one or two blocks, then maybe a loop back) with the group's operands: the
 * accumulators and pointers in registers of the compiler's choice, the weight words in r8..r11. */
#define TK_MK_FC_ASM(text)                                                                         \
    __asm__ volatile(text                                                                          \
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp),   \
                       [wp] "+r"(wp), [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1), \
                       [w2] "=&r"(w2), [w3] "=&r"(w3)                                              \
                     : [end] "r"(end)                                                              \
                     : "cc", "memory")
#define TK_MK_FC_RUN(block)                                                                        \
    do {                                                                                           \
        if ((whole >> 2) & 1)                                                                      \
            TK_MK_FC_ASM(block);                                                                   \
        if (xp != end)                                                                             \
            TK_MK_FC_ASM("1:\n\t" block block "cmp %[xp], %[end]\n\tbne 1b\n\t");                    \
    } while (0)
#endif

/* One group of g (1..4) rows starting at w (word aligned), in the layout above. */
TK_MK_INLINE void tk_mk_fc_group(const int8_t *x, const int16_t *w, int32_t k, int32_t g, int32_t *acc)
{
    int32_t a0 = acc[0];
    int32_t a1 = g > 1 ? acc[1] : 0;
    int32_t a2 = g > 2 ? acc[2] : 0;
    int32_t a3 = g > 3 ? acc[3] : 0;
    const int32_t whole = k & ~3, tail = k & 3;
    const int16_t *wp = w;
#if TK_MK_DSP
    {
        /* the LDM register list must ascend: the weight words get fixed registers */
        register int32_t w0 __asm__("r8");
        register int32_t w1 __asm__("r9");
        register int32_t w2 __asm__("r10");
        register int32_t w3 __asm__("r11");
        int32_t xe, xo;
        const int8_t *xp = x, *end = x + whole;
        if (g == 4)
            TK_MK_FC_RUN(TK_MK_FC_BLOCK4);
        else if (g == 3)
            TK_MK_FC_RUN(TK_MK_FC_BLOCK3);
        else if (g == 2)
            TK_MK_FC_RUN(TK_MK_FC_BLOCK2);
        else
            TK_MK_FC_RUN(TK_MK_FC_BLOCK1);
        (void)xe, (void)xo, (void)w0, (void)w1, (void)w2, (void)w3;
    }
#else
    for (int32_t q = 0; q < whole; q += 4) {
        for (int32_t j = 0; j < 4; j++) {
            int32_t xv = x[q + j];
            const int16_t *wj = wp + TK_MK_FC_SLOT(j);
            a0 += xv * wj[0];
            if (g > 1)
                a1 += xv * wj[4];
            if (g > 2)
                a2 += xv * wj[8];
            if (g > 3)
                a3 += xv * wj[12];
        }
        wp += 4 * g;
    }
#endif
    for (int32_t j = 0; j < tail; j++) {
        int32_t xv = x[whole + j];
        a0 += xv * wp[j];
        if (g > 1)
            a1 += xv * wp[tail + j];
        if (g > 2)
            a2 += xv * wp[2 * tail + j];
        if (g > 3)
            a3 += xv * wp[3 * tail + j];
    }
    acc[0] = a0;
    if (g > 1)
        acc[1] = a1;
    if (g > 2)
        acc[2] = a2;
    if (g > 3)
        acc[3] = a3;
}

/* The entry point schedules call: a tile of any number of rows, in groups of four (a group shares
 * each input load); w is the tile's first group. */
TK_MK_INLINE void tk_mk_fc_s8w16(const int8_t *x, const int16_t *w, int32_t k, int32_t rows, int32_t *acc)
{
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4)
        tk_mk_fc_group(x, w + r * k, k, 4, acc + r);
    if (rows - r == 3)
        tk_mk_fc_group(x, w + r * k, k, 3, acc + r);
    else if (rows - r == 2)
        tk_mk_fc_group(x, w + r * k, k, 2, acc + r);
    else if (rows - r == 1)
        tk_mk_fc_group(x, w + r * k, k, 1, acc + r);
}

#endif /* TK_MK_FC_H */
