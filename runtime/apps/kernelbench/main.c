/* The kernel benchmark app (tune=1, site_scons/tinykiln/tune.py): times ONE generated kernel in
 * isolation and prints its count and a digest of its outputs, then exits 0.
 *
 * The build adds a generated bench file (tune.py) that defines the symbols declared below: it holds the
 * kernel's constants and arena-sized buffers for its inputs, outputs and scratch, and calls the
 * kernel. The inputs get the benchmark byte sequence of the perf app, so every candidate schedule of
 * a kernel sees the same input and the tuner can require the same output from all of them.
 *
 * Output (one line):  TKBENCH count=<n> unit=<instructions|cpu-cycles|ns> digest=<16 hex digits>
 * The count is per call: the average of enough back-to-back calls for a fine count, after a first
 * call (the warm-up) whose outputs the digest covers. */
#include <stddef.h>
#include <stdint.h>

#include "tk_board.h"

typedef struct {
    uint8_t *data;
    uint32_t size;
    int is_float;
} tk_bench_buffer;

extern const tk_bench_buffer tk_bench_inputs[];
extern const unsigned tk_bench_input_count;
extern const tk_bench_buffer tk_bench_outputs[];
extern const unsigned tk_bench_output_count;
void tk_bench_call(void);

#ifndef TK_BENCH_MIN_COUNT
#define TK_BENCH_MIN_COUNT 400000u /* 10,000 ticks of a 40-instruction counter */
#endif
#ifndef TK_BENCH_MAX_RUNS
#define TK_BENCH_MAX_RUNS 1000u
#endif

static void fill_inputs(void)
{
    uint32_t x = 12345u;
    for (unsigned i = 0; i < tk_bench_input_count; i++) {
        const tk_bench_buffer *b = &tk_bench_inputs[i];
        if (b->is_float) {
            float *values = (float *)(void *)b->data;
            for (uint32_t k = 0; k < b->size / 4u; k++) {
                x = x * 1103515245u + 12345u;
                values[k] = (float)(int8_t)((x >> 16) & 0xFFu) / 128.0f;
            }
            continue;
        }
        for (uint32_t k = 0; k < b->size; k++) {
            x = x * 1103515245u + 12345u;
            b->data[k] = (uint8_t)((x >> 16) & 0xFFu);
        }
    }
}

/* Instructions of `runs` back-to-back calls. */
static uint32_t timed_calls(uint32_t runs)
{
    uint32_t start = tk_cycles();
    for (uint32_t r = 0; r < runs; r++) {
        tk_bench_call();
    }
    return tk_cycles() - start;
}

/* 64-bit FNV-1a over every output byte in order. */
static uint64_t output_digest(void)
{
    uint64_t h = 14695981039346656037ull;
    for (unsigned i = 0; i < tk_bench_output_count; i++) {
        const tk_bench_buffer *b = &tk_bench_outputs[i];
        for (uint32_t k = 0; k < b->size; k++) {
            h = (h ^ b->data[k]) * 1099511628211ull;
        }
    }
    return h;
}

int app_main(void)
{
    tk_cycles_start();
    fill_inputs();
    /* The digest is of the first call on fresh inputs (an in-place kernel changes its input). */
    uint32_t first = timed_calls(1u); /* also the warm-up */
    uint64_t h = output_digest();
    /* The counter may tick coarsely (SysTick at 25 MHz under QEMU: 40 instructions a tick), so a
     * short kernel is called enough times to count TK_BENCH_MIN_COUNT, and the total divided. */
    uint32_t runs = first >= TK_BENCH_MIN_COUNT ? 1u : TK_BENCH_MIN_COUNT / (first + 1u) + 1u;
    if (runs > TK_BENCH_MAX_RUNS) {
        runs = TK_BENCH_MAX_RUNS;
    }
    uint32_t count = (timed_calls(runs) + runs / 2u) / runs;
    tk_printf("TKBENCH count=%lu unit=%s digest=%08lx%08lx\n", (unsigned long)count, tk_cycles_name(),
              (unsigned long)(h >> 32), (unsigned long)(h & 0xFFFFFFFFu));
    return 0;
}
