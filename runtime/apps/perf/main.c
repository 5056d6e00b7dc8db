/* The perf app (app=perf): times the first model linked into the firmware, the way STM32's
 * "SystemPerformance" app does. Pseudo-random input, TK_PERF_WARMUP untimed runs, then TK_PERF_RUNS
 * timed runs; prints the count per inference (min / average / max) and the time at the board's
 * clock, then exits 0.
 *
 * The input bytes are the ones the project's benchmarks use (bench/instructions.py), so the figures
 * compare with TFLite Micro measured on the same emulator: x = 12345; for each byte of each input in
 * order: x = x * 1103515245 + 12345 (mod 2^32), byte = (x >> 16) & 0xff. A float32 input takes one
 * such byte per element, as (int8_t)byte / 128 (random bytes would make NaNs).
 *
 * Under QEMU with -icount shift=0 the counter counts instructions; the time at the board's clock then
 * assumes one instruction per cycle. On hardware it is DWT CYCCNT / the PMU: real cycles. */
#include <stdint.h>
#include <string.h>

#include "ai_runtime.h"
#include "tk_board.h"

#ifndef TK_PERF_RUNS
#define TK_PERF_RUNS 10
#endif
#ifndef TK_PERF_WARMUP
#define TK_PERF_WARMUP 1
#endif

/* Fills every input with the benchmark's byte sequence. Called before each run: inputs live in the
 * activation arena, which a run overwrites. */
static void fill_inputs(ai_handle h)
{
    uint32_t x = 12345u;
    for (int32_t i = 0; i < ai_get_input_size(h); i++) {
        ai_tensor *t = ai_get_input(h, i);
        uint8_t *bytes = t->data;
        if (t->info->dtype == TK_DTYPE_FLOAT32) {
            float *values = t->data;
            for (uint32_t k = 0; k < t->size / 4u; k++) {
                x = x * 1103515245u + 12345u;
                values[k] = (float)(int8_t)((x >> 16) & 0xFFu) / 128.0f;
            }
            continue;
        }
        for (uint32_t k = 0; k < t->size; k++) {
            x = x * 1103515245u + 12345u;
            bytes[k] = (uint8_t)((x >> 16) & 0xFFu);
        }
    }
}

static int run_once(ai_handle h, uint32_t *count)
{
    fill_inputs(h);
    uint32_t start = tk_cycles();
    ai_status status = ai_run(h);
    *count = tk_cycles() - start;
    if (status != AI_STATUS_OK) {
        tk_printf("perf: run failed: %s\n", ai_get_error(h));
        return 0;
    }
    return 1;
}

int app_main(void)
{
    tk_cycles_start();
    if (tk_model_count == 0u) {
        tk_console_puts("perf: no model linked\n");
        return 2;
    }
    ai_handle h;
    if (ai_create(tk_models[0], NULL, &h) != AI_STATUS_OK) {
        tk_printf("perf: %s\n", ai_get_error(NULL));
        return 2;
    }
    const char *unit = tk_cycles_name();
    uint32_t clock = tk_clock_hz();
    tk_printf("tinykiln perf: %s on %s (%s, %u Hz), counter: %s\n", ai_get_name(h), tk_board_name(),
              tk_core_name(), (unsigned)clock, unit);
    tk_printf("perf: arena %u bytes, weights %u bytes, %d layers\n",
              (unsigned)ai_get_activations_size(h), (unsigned)ai_get_params_size(h),
              (int)ai_get_node_size(h));
    if (ai_get_state_size(h) > 0u)
        tk_printf("perf: state %u bytes (a stateful model: kept from run to run, not reset between runs)\n",
                  (unsigned)ai_get_state_size(h));
    tk_printf("perf: input x = x * 1103515245 + 12345 from 12345, byte = (x >> 16) & 0xff; "
              "%d warm-up, %d timed runs\n", TK_PERF_WARMUP, TK_PERF_RUNS);

    uint32_t count;
    for (int i = 0; i < TK_PERF_WARMUP; i++) {
        if (!run_once(h, &count))
            return 1;
    }
    uint32_t min = UINT32_MAX, max = 0;
    uint64_t sum = 0;
    for (int i = 0; i < TK_PERF_RUNS; i++) {
        if (!run_once(h, &count))
            return 1;
        min = count < min ? count : min;
        max = count > max ? count : max;
        sum += count;
    }
    uint32_t avg = (uint32_t)(sum / TK_PERF_RUNS);
    tk_printf("perf: %s/inference: min %u avg %u max %u\n", unit, (unsigned)min, (unsigned)avg,
              (unsigned)max);
    /* Microseconds, printed as milliseconds with three decimals: at the board's clock, or the
     * host's own nanosecond clock. */
    if (strcmp(unit, "ns") == 0) {
        uint32_t us = avg / 1000u;
        tk_printf("perf: time/inference: %u.%03u ms\n", (unsigned)(us / 1000u), (unsigned)(us % 1000u));
    } else if (clock != 0u) {
        uint64_t us = (uint64_t)avg * 1000000u / clock;
        tk_printf("perf: time/inference at %u MHz: %u.%03u ms%s\n", (unsigned)(clock / 1000000u),
                  (unsigned)(us / 1000u), (unsigned)(us % 1000u),
                  strcmp(unit, "instructions") == 0 ? " (one instruction per cycle assumed)" : "");
    }
    ai_destroy(h);
    return 0;
}
