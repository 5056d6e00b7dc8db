/* mkcheck (app=mkcheck): checks the micro-kernels of runtime/kernels/tk_mk.h against plain loops on
 * this board: the DSP bodies (SXTB16/SMLAD) on Cortex-M cores with the DSP extension, the portable C
 * elsewhere. Seeded pseudo-random int8 data including the extremes (-128, 127), every row count 1..8,
 * run lengths 0..67 (all tails of the 4-wide loop), unaligned pointers and row strides. Prints the
 * path and the number of cases; exits 0 when all agree, 1 otherwise. */
#include <stdint.h>

#include "tk_board.h"
#include "tk_kernel.h"

#define MAX_K 67
#define MAX_ROWS 8
#define PAD 5

static int8_t x_buf[MAX_K + PAD];
static int8_t w_buf[MAX_ROWS * (MAX_K + PAD) + PAD];

static uint32_t state = 20240613u;

static int8_t next_byte(void)
{
    state = state * 1103515245u + 12345u;
    uint32_t r = (state >> 16) & 0xffu;
    /* one in eight values is an extreme, the rest uniform */
    if ((r & 7u) == 0)
        return (r & 8u) ? (int8_t)127 : (int8_t)-128;
    return (int8_t)(uint8_t)r;
}

int app_main(void)
{
    unsigned cases = 0, bad = 0;
    for (int32_t rows = 1; rows <= MAX_ROWS; rows++) {
        for (int32_t k = 0; k <= MAX_K; k++) {
            for (int32_t offset = 0; offset < 4; offset++) {
                int32_t stride = k + offset; /* rows may be further apart than their length */
                const int8_t *x = x_buf + offset;
                const int8_t *w = w_buf + (offset ^ 1);
                for (unsigned i = 0; i < sizeof x_buf; i++)
                    x_buf[i] = next_byte();
                for (unsigned i = 0; i < sizeof w_buf; i++)
                    w_buf[i] = next_byte();
                int32_t got[MAX_ROWS], want[MAX_ROWS];
                for (int32_t r = 0; r < rows; r++)
                    got[r] = want[r] = (int32_t)(state >> 3) - (1 << 27); /* non-zero start */
                tk_mk_dot_s8(x, w, k, stride, rows, got);
                for (int32_t r = 0; r < rows; r++)
                    for (int32_t i = 0; i < k; i++)
                        want[r] += (int32_t)x[i] * (int32_t)w[r * stride + i];
                for (int32_t r = 0; r < rows; r++) {
                    if (got[r] != want[r]) {
                        if (bad < 5)
                            tk_printf("mkcheck: rows %ld k %ld offset %ld row %ld: got %ld want %ld\n", (long)rows,
                                      (long)k, (long)offset, (long)r, (long)got[r], (long)want[r]);
                        bad++;
                    }
                }
                cases++;
            }
        }
    }
    tk_printf("mkcheck: %s path, %u cases, %u mismatches\n", TK_MK_DSP ? "dsp" : "portable", cases, bad);
    return bad == 0 ? 0 : 1;
}
