/* The rated clock of the STM32 boards (clock=max; tinykiln/clocks.py makes the TK_CLK_* macros from
 * board.toml [clock]): one driver per RCC design, stm32_clock_f4f7.c and stm32_clock_h7.c.
 *
 * tk_clock_init() programs the oscillator, the PLL, the voltage scale, the flash wait states and the
 * bus dividers, and switches SYSCLK to the PLL. It returns NULL, or the name of the ready bit that
 * did not come within TK_CLK_POLLS reads (or the step refused), after putting SYSCLK back on the HSI
 * with every divider at 1: the reset clock, which the console then uses to report it.
 *
 * Registers are read and written through tk_clk_rd / tk_clk_wr: on the host, with TK_CLOCK_MODEL,
 * they are a register-level model of the reference manual (tests/stm32_clock_model.py). */
#ifndef TK_STM32_CLOCK_H
#define TK_STM32_CLOCK_H
#include <stdint.h>

const char *tk_clock_init(void);

/* Says on the console which step of the clock set-up failed, then ends the run with TK_EXIT_FAULT:
 * firmware timed at a clock it does not run at would print wrong figures. */
void tk_clock_fault(const char *what) __attribute__((noreturn));

#ifndef TK_CLK_POLLS
#define TK_CLK_POLLS 1000000u /* > 0.5 s at the 16 MHz reset clock: HSE start-up is a few ms */
#endif

#if defined(TK_CLOCK_MODEL)
extern uint32_t (*tk_model_read)(uint32_t addr);
extern void (*tk_model_write)(uint32_t addr, uint32_t value);
static inline uint32_t tk_clk_rd(uint32_t addr) { return tk_model_read(addr); }
static inline void tk_clk_wr(uint32_t addr, uint32_t value) { tk_model_write(addr, value); }
#else
static inline uint32_t tk_clk_rd(uint32_t addr) { return *(volatile uint32_t *)addr; }
static inline void tk_clk_wr(uint32_t addr, uint32_t value) { *(volatile uint32_t *)addr = value; }
#endif

static inline void tk_clk_set(uint32_t addr, uint32_t bits) { tk_clk_wr(addr, tk_clk_rd(addr) | bits); }

/* (reg & mask) == want within TK_CLK_POLLS reads: 1, else 0. */
static inline int tk_clk_wait(uint32_t addr, uint32_t mask, uint32_t want)
{
    for (uint32_t i = 0; i < TK_CLK_POLLS; i++)
        if ((tk_clk_rd(addr) & mask) == want)
            return 1;
    return 0;
}

#if !defined(TK_CLOCK_MODEL)
#include "tk_board.h"
/* Each driver defines tk_clock_fault with this body (one driver per firmware). */
#define TK_CLK_FAULT_REPORT                                                                               \
    void tk_clock_fault(const char *what)                                                                 \
    {                                                                                                     \
        tk_printf("\n*** clock: %s (waited %lu reads); back at the %lu MHz reset clock. clock=reset "    \
                  "builds without the PLL\n", what, (unsigned long)TK_CLK_POLLS,                         \
                  (unsigned long)(TK_CLK_RESET_HZ / 1000000u));                                          \
        tk_exit(TK_EXIT_FAULT);                                                                           \
    }
#else
#define TK_CLK_FAULT_REPORT
#endif

/* Register field codes of a divider (RM0090 / RM0385 / RM0399 RCC_CFGR, RCC_D1CFGR: HPRE, PPRE). */
#define TK_CLK_HPRE(d) ((d) == 1 ? 0u : (d) == 2 ? 8u : (d) == 4 ? 9u : (d) == 8 ? 10u : (d) == 16 ? 11u : \
                        (d) == 64 ? 12u : (d) == 128 ? 13u : (d) == 256 ? 14u : 15u)
#define TK_CLK_PPRE(d) ((d) == 1 ? 0u : (d) == 2 ? 4u : (d) == 4 ? 5u : (d) == 8 ? 6u : 7u)
#endif
