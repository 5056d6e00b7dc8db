/* mkcheck (app=mkcheck): checks the micro-kernels (tk_mk_dot_s8, tk_mk_dot_s8w16, tk_mk_dw_s16) of runtime/kernels/tk_mk.h against plain loops on
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
static int16_t w16_buf[MAX_ROWS * (MAX_K + PAD) + PAD];
/* depthwise: up to 5 x 5 windows over rows up to 12 apart */
#define DW_MAX 5
#define DW_STRIDE_MAX 12
static int16_t dx_buf[DW_MAX * DW_STRIDE_MAX + PAD];
static int16_t dw_buf[DW_MAX * DW_MAX + PAD];

/* tk_mk_conv_s16: up to 5 pixels x 5 channels, runs up to 37 taps (pixels up to 20 apart) */
#define CONV_PIXELS 5
#define CONV_K 37
static int16_t cx_buf[(CONV_PIXELS - 1) * 20 + CONV_K + PAD] __attribute__((aligned(4)));
static int16_t cw_buf[CONV_PIXELS * (CONV_K + 1) + PAD] __attribute__((aligned(4)));

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

/* tk_mk_dot_s8w16 reads each whole group of four weights as (w0, w2, w1, w3) (pack_w16 in
 * ops/microkernel.py): pack the row, run it, compare with the plain dot product of the unpacked row. */
static unsigned check_w16(int32_t rows, int32_t k, int32_t offset, unsigned *bad)
{
    int32_t stride = k + offset;
    const int8_t *x = x_buf + offset;
    int16_t *w = w16_buf + (offset ^ 1);
    int8_t plain[MAX_ROWS][MAX_K];
    for (unsigned i = 0; i < sizeof x_buf; i++)
        x_buf[i] = next_byte();
    for (int32_t r = 0; r < rows; r++) {
        for (int32_t i = 0; i < k; i++)
            plain[r][i] = next_byte();
        int32_t whole = k / 4 * 4;
        for (int32_t i = 0; i < k; i++) {
            int32_t slot = i;
            if (i < whole && (i & 3) == 1)
                slot = i + 1;
            else if (i < whole && (i & 3) == 2)
                slot = i - 1;
            w[r * stride + slot] = plain[r][i];
        }
    }
    int32_t got[MAX_ROWS], want[MAX_ROWS];
    for (int32_t r = 0; r < rows; r++)
        got[r] = want[r] = (int32_t)(state >> 3) - (1 << 27);
    tk_mk_dot_s8w16(x, w, k, stride, rows, got);
    for (int32_t r = 0; r < rows; r++)
        for (int32_t i = 0; i < k; i++)
            want[r] += (int32_t)x[i] * (int32_t)plain[r][i];
    for (int32_t r = 0; r < rows; r++) {
        if (got[r] != want[r]) {
            if (*bad < 5)
                tk_printf("mkcheck: w16 rows %ld k %ld offset %ld row %ld: got %ld want %ld\n", (long)rows, (long)k,
                          (long)offset, (long)r, (long)got[r], (long)want[r]);
            (*bad)++;
        }
    }
    return 1;
}

/* tk_mk_dw_s16: int16 values in the int8 range (the padded input and the weights sign-extended). */
static unsigned check_dw(int32_t kh, int32_t kw, int32_t x_stride, int32_t offset, unsigned *bad)
{
    const int16_t *x = dx_buf + offset;
    const int16_t *w = dw_buf + (offset ^ 1);
    for (unsigned i = 0; i < sizeof dx_buf / sizeof dx_buf[0]; i++)
        dx_buf[i] = next_byte();
    for (unsigned i = 0; i < sizeof dw_buf / sizeof dw_buf[0]; i++)
        dw_buf[i] = next_byte();
    int32_t got = (int32_t)(state >> 3) - (1 << 27), want = got;
    tk_mk_dw_s16(x, x_stride, w, kh, kw, &got);
    for (int32_t i = 0; i < kh; i++)
        for (int32_t j = 0; j < kw; j++)
            want += (int32_t)x[i * x_stride + j] * (int32_t)w[i * kw + j];
    if (got != want) {
        if (*bad < 5)
            tk_printf("mkcheck: dw %ldx%ld stride %ld offset %ld: got %ld want %ld\n", (long)kh, (long)kw,
                      (long)x_stride, (long)offset, (long)got, (long)want);
        (*bad)++;
    }
    return 1;
}

/* tk_mk_conv_s16 with `pixels` runs xs apart against `rows` weight rows ws apart. aligned: even
 * distances from 4-byte aligned starts (the LDRD body, as the schedule calls it); else odd distances
 * from odd starts (the word and tap loops). Distances shorter than the run overlap, as a 3x3
 * convolution's neighbouring windows do. from_bias: tk_mk_conv_s16_bias (the sums start from the
 * rows' biases, whatever the accumulators held). */
static unsigned check_conv(int32_t pixels, int32_t rows, int32_t k, int32_t aligned, int32_t from_bias, unsigned *bad)
{
    int32_t xs = aligned ? ((k / 2 + 2) & ~1) : ((k / 2) | 1);
    int32_t ws = aligned ? ((k + 1) & ~1) : (k | 1);
    const int16_t *x = cx_buf + (aligned ? 0 : 1);
    const int16_t *w = cw_buf + (aligned ? 0 : 1);
    for (unsigned i = 0; i < sizeof cx_buf / sizeof cx_buf[0]; i++)
        cx_buf[i] = next_byte();
    for (unsigned i = 0; i < sizeof cw_buf / sizeof cw_buf[0]; i++)
        cw_buf[i] = next_byte();
    int32_t got[CONV_PIXELS * CONV_PIXELS], want[CONV_PIXELS * CONV_PIXELS], bias[CONV_PIXELS];
    for (int32_t r = 0; r < rows; r++)
        bias[r] = (int32_t)(state >> 5) - (1 << 25) + 7 * r;
    for (int32_t i = 0; i < pixels * rows; i++) {
        got[i] = want[i] = (int32_t)(state >> 3) - (1 << 27) + i;
        if (from_bias)
            want[i] = bias[i % rows];
    }
    if (from_bias)
        tk_mk_conv_s16_bias(x, xs, w, k, ws, pixels, rows, got, bias);
    else
        tk_mk_conv_s16(x, xs, w, k, ws, pixels, rows, got);
    for (int32_t p = 0; p < pixels; p++)
        for (int32_t r = 0; r < rows; r++)
            for (int32_t i = 0; i < k; i++)
                want[p * rows + r] += (int32_t)x[p * xs + i] * (int32_t)w[r * ws + i];
    for (int32_t i = 0; i < pixels * rows; i++) {
        if (got[i] != want[i]) {
            if (*bad < 5)
                tk_printf("mkcheck: conv pixels %ld rows %ld k %ld aligned %ld bias %ld acc %ld: got %ld want %ld\n",
                          (long)pixels, (long)rows, (long)k, (long)aligned, (long)from_bias, (long)i,
                          (long)got[i], (long)want[i]);
            (*bad)++;
        }
    }
    return 1;
}

/* tk_mk_widen_row: input rows of w pixels x c channels (h = 3 rows), one padded int16 row with
 * `before` pixels of zero points, cp channels a pixel and a zero point tail; rows outside the input
 * are all zero points. The destination starts at an even or odd int16 (unaligned word stores). */
#define WIDEN_W 9
#define WIDEN_C 5
static int8_t wx_buf[3 * WIDEN_W * WIDEN_C];
static int16_t wd_buf[(WIDEN_W + 4) * (WIDEN_C + 1) + 2 * PAD];

static unsigned check_widen(int32_t row, int32_t before, int32_t w, int32_t c, int32_t cp, unsigned *bad)
{
    const int32_t h = 3, zp = next_byte(), len = (before + w + 1) * cp + (w & 1), skew = w & 1;
    for (unsigned i = 0; i < sizeof wx_buf; i++)
        wx_buf[i] = next_byte();
    for (unsigned i = 0; i < sizeof wd_buf / sizeof wd_buf[0]; i++)
        wd_buf[i] = 0x5a5a;
    int16_t *dst = wd_buf + skew;
    tk_mk_widen_row(dst, wx_buf, row, h, before, w, c, cp, len, zp);
    unsigned wrong = 0;
    for (int32_t i = 0; i < len; i++) {
        int32_t pixel = i / cp - before, ch = i % cp, want = zp;
        if (row >= 0 && row < h && pixel >= 0 && pixel < w && ch < c)
            want = wx_buf[(row * w + pixel) * c + ch];
        wrong += dst[i] != want;
    }
    for (unsigned i = (unsigned)(skew + len); i < sizeof wd_buf / sizeof wd_buf[0]; i++)
        wrong += wd_buf[i] != 0x5a5a; /* nothing written past the row */
    if (wrong) {
        if (*bad < 5)
            tk_printf("mkcheck: widen row %ld before %ld w %ld c %ld cp %ld: %u values wrong\n", (long)row, (long)before,
                      (long)w, (long)c, (long)cp, wrong);
        (*bad)++;
    }
    return 1;
}

int app_main(void)
{
    unsigned cases = 0, bad = 0;
    for (int32_t rows = 1; rows <= MAX_ROWS; rows++)
        for (int32_t k = 0; k <= MAX_K; k++)
            for (int32_t offset = 0; offset < 2; offset++)
                cases += check_w16(rows, k, offset, &bad);
    for (int32_t pixels = 1; pixels <= CONV_PIXELS; pixels++)
        for (int32_t rows = 1; rows <= CONV_PIXELS; rows++)
            for (int32_t k = 0; k <= CONV_K; k++)
                for (int32_t aligned = 0; aligned < 2; aligned++)
                    for (int32_t from_bias = 0; from_bias < 2; from_bias++)
                        cases += check_conv(pixels, rows, k, aligned, from_bias, &bad);
    for (int32_t row = -1; row <= 3; row += 2)
        for (int32_t before = 0; before <= 2; before++)
            for (int32_t w = 1; w <= WIDEN_W; w++)
                for (int32_t c = 1; c <= WIDEN_C; c++)
                    for (int32_t cp = c; cp <= c + 1; cp++)
                        cases += check_widen(row, before, w, c, cp, &bad);
    for (int32_t kh = 1; kh <= DW_MAX; kh++)
        for (int32_t kw = 1; kw <= DW_MAX; kw++)
            for (int32_t x_stride = kw; x_stride <= DW_STRIDE_MAX; x_stride += 7 - kw / 2)
                for (int32_t offset = 0; offset < 2; offset++)
                    cases += check_dw(kh, kw, x_stride, offset, &bad);
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
