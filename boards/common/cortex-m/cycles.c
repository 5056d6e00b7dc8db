/* The Cortex-M cycle counter: DWT CYCCNT when it counts (real M4/M7 silicon), else SysTick.
 *
 * QEMU does not implement CYCCNT (it reads 0), so the same firmware falls back to SysTick there;
 * with -icount shift=0 one instruction takes 1 ns of virtual time, so SysTick ticks scaled to
 * nanoseconds count instructions. SysTick is 24-bit: its interrupt counts wraps to extend it.
 *
 * TK_SYSTICK_HZ: the SysTick clock, the processor clock = board.toml's clock_hz (tinykiln/boards.py). */
#include <stdint.h>

#include "tk_board.h"

#ifndef TK_SYSTICK_HZ
#error "the board must define TK_SYSTICK_HZ (the SysTick clock, Hz)"
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_ICSR REG(0xE000ED04)
#define DEMCR REG(0xE000EDFC)
#define DWT_CTRL REG(0xE0001000)
#define DWT_CYCCNT REG(0xE0001004)
#define DWT_LAR REG(0xE0001FB0)
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)

#define SYSTICK_MAX 0xFFFFFFu

enum { NOT_STARTED, USE_DWT, USE_SYSTICK };
static int mode = NOT_STARTED;
static volatile uint32_t systick_wraps;

void tk_systick_handler(void) { systick_wraps++; }

void tk_cycles_start(void)
{
    if (mode != NOT_STARTED)
        return;
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_LAR = 0xC5ACCE55u; /* unlock (needed on the M7, ignored elsewhere) */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
    uint32_t before = DWT_CYCCNT;
    for (volatile int i = 0; i < 16; i++) {
    }
    if (DWT_CYCCNT != before) {
        mode = USE_DWT;
        return;
    }
    mode = USE_SYSTICK;
    SYST_RVR = SYSTICK_MAX;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enable */
}

uint32_t tk_cycles(void)
{
    if (mode == USE_DWT)
        return DWT_CYCCNT;
    if (mode == NOT_STARTED)
        return 0;
    uint32_t wraps, value, pending;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
        pending = SCB_ICSR & (1u << 26); /* PENDSTSET */
    } while (wraps != systick_wraps);
    /* A wrap whose interrupt has not run yet: the counter has just reloaded. */
    if (pending && value > SYSTICK_MAX / 2)
        wraps++;
    uint64_t ticks = ((uint64_t)wraps << 24) + (SYSTICK_MAX - value);
#if 1000000000u % TK_SYSTICK_HZ == 0
    return (uint32_t)(ticks * (1000000000u / TK_SYSTICK_HZ));
#else
    return (uint32_t)(ticks * 1000000000u / TK_SYSTICK_HZ);
#endif
}

const char *tk_cycles_name(void)
{
    return mode == USE_DWT ? "cpu-cycles" : "instructions";
}
