/* clock=max on the STM32F405, F412 and F746 (one RCC design at 0x40023800): the PLL from the HSE or
 * the HSI, the voltage scale, the F7's over-drive, flash wait states with prefetch and the ART
 * accelerator (F7) / instruction and data caches (F4), then the bus dividers and the switch.
 * Facts: the FLASH (wait-state table, FLASH_ACR), PWR (PWR_CR/CSR, VOS) and RCC (RCC_CR, PLLCFGR,
 * CFGR) chapters of RM0090 (F405), RM0402 (F412) and RM0385 (F746: also the ART accelerator and
 * "Entering Over-drive mode"). The factors come from board.toml [clock] through tinykiln/clocks.py
 * (TK_CLK_*), which checks them against the limits.
 * See stm32_clock.h for the contract. */
#include "cortex-m/stm32_clock.h"

#if !defined(TK_CLK_FAMILY_F7) && !defined(TK_CLK_FAMILY_F412) && !defined(TK_CLK_FAMILY_F405)
#error "stm32_clock_f4f7.c: no TK_CLK_FAMILY_* (tinykiln/clocks.py adds it with clock=max)"
#endif

#define RCC_CR 0x40023800u
#define RCC_PLLCFGR 0x40023804u
#define RCC_CFGR 0x40023808u
#define RCC_APB1ENR 0x40023840u
#define PWR_CR 0x40007000u /* PWR_CR1 on the F7 */
#define PWR_CSR 0x40007004u /* PWR_CSR1 on the F7 */
#define FLASH_ACR 0x40023C00u

#define CR_HSEON (1u << 16)
#define CR_HSERDY (1u << 17)
#define CR_HSEBYP (1u << 18)
#define CR_PLLON (1u << 24)
#define CR_PLLRDY (1u << 25)
#define CFGR_SW 0x3u
#define CFGR_SWS 0xCu
#define CFGR_DIVS 0xFCF0u /* HPRE[7:4], PPRE1[12:10], PPRE2[15:13] */
#define SW_HSI 0u
#define SW_PLL 2u
#define PLLCFGR_SRC_HSE (1u << 22)
#define PLLCFGR_FIELDS (0x3Fu | (0x1FFu << 6) | (3u << 16) | PLLCFGR_SRC_HSE | (0xFu << 24))
#define APB1ENR_PWREN (1u << 28)
#define CSR_VOSRDY (1u << 14)
#define CR_ODEN (1u << 16)
#define CR_ODSWEN (1u << 17)
#define CSR_ODRDY (1u << 16)
#define CSR_ODSWRDY (1u << 17)
#define ACR_LATENCY 0xFu
#define ACR_PRFTEN (1u << 8)
#if defined(TK_CLK_FAMILY_F7)
#define ACR_ACCEL (1u << 9) /* ARTEN */
#else
#define ACR_ACCEL ((1u << 9) | (1u << 10)) /* ICEN, DCEN */
#endif
#if defined(TK_CLK_FAMILY_F405)
#define VOS_FIELD (1u << 14) /* one bit: 1 = scale 1 */
#else
#define VOS_FIELD (3u << 14)
#endif

TK_CLK_FAULT_REPORT

_Static_assert(TK_CLK_PLL_P == 2 || TK_CLK_PLL_P == 4 || TK_CLK_PLL_P == 6 || TK_CLK_PLL_P == 8, "PLLP");

/* SYSCLK back on the HSI with every divider at 1 (the reset clock tree); the PLL is left as it is. */
static void back_to_reset_clock(void)
{
    tk_clk_wr(RCC_CFGR, (tk_clk_rd(RCC_CFGR) & ~(CFGR_SW | CFGR_DIVS)) | SW_HSI);
    (void)tk_clk_wait(RCC_CFGR, CFGR_SWS, SW_HSI << 2);
}

static const char *fail(const char *what)
{
    back_to_reset_clock();
    return what;
}

const char *tk_clock_init(void)
{
    /* Start from the reset state even after a core-only reset by a debugger: SYSCLK on the HSI,
     * PLL off (the PLL factors and the voltage scale may only change while it is off). */
    back_to_reset_clock();
    tk_clk_wr(RCC_CR, tk_clk_rd(RCC_CR) & ~CR_PLLON);
    if (!tk_clk_wait(RCC_CR, CR_PLLRDY, 0))
        return fail("RCC_CR.PLLRDY: the PLL did not stop");

    tk_clk_set(RCC_APB1ENR, APB1ENR_PWREN);
    (void)tk_clk_rd(RCC_APB1ENR); /* the PWR clock runs before its first access */
    tk_clk_wr(PWR_CR, (tk_clk_rd(PWR_CR) & ~VOS_FIELD) | ((uint32_t)TK_CLK_VOS << 14));

#if defined(TK_CLK_SRC_HSE_BYPASS) || defined(TK_CLK_SRC_HSE)
#if defined(TK_CLK_SRC_HSE_BYPASS)
    /* An external clock on OSC_IN (the ST-LINK's MCO on the Nucleo-144): HSEBYP only while HSE is off. */
    tk_clk_wr(RCC_CR, tk_clk_rd(RCC_CR) & ~CR_HSEON);
    if (!tk_clk_wait(RCC_CR, CR_HSERDY, 0))
        return fail("RCC_CR.HSERDY: the HSE did not stop");
    tk_clk_set(RCC_CR, CR_HSEBYP);
#endif
    tk_clk_set(RCC_CR, CR_HSEON);
    if (!tk_clk_wait(RCC_CR, CR_HSERDY, CR_HSERDY))
        return fail("RCC_CR.HSERDY: the HSE clock did not start (is the ST-LINK MCO / crystal there?)");
#define PLL_SOURCE PLLCFGR_SRC_HSE
#else
#define PLL_SOURCE 0u
#endif

    uint32_t pll = (uint32_t)TK_CLK_PLL_M | ((uint32_t)TK_CLK_PLL_N << 6) |
                   ((uint32_t)(TK_CLK_PLL_P / 2 - 1) << 16) | PLL_SOURCE | ((uint32_t)TK_CLK_PLL_Q << 24);
    tk_clk_wr(RCC_PLLCFGR, (tk_clk_rd(RCC_PLLCFGR) & ~PLLCFGR_FIELDS) | pll);
    tk_clk_set(RCC_CR, CR_PLLON);
    if (!tk_clk_wait(RCC_CR, CR_PLLRDY, CR_PLLRDY))
        return fail("RCC_CR.PLLRDY: the PLL did not lock");
    if (!tk_clk_wait(PWR_CSR, CSR_VOSRDY, CSR_VOSRDY))
        return fail("PWR_CSR.VOSRDY: the voltage scale did not settle");

#if defined(TK_CLK_OVERDRIVE)
    /* RM0385 'Entering Over-drive mode': with the PLL on, enable the over-drive, then switch the regulator to it. */
    tk_clk_set(PWR_CR, CR_ODEN);
    if (!tk_clk_wait(PWR_CSR, CSR_ODRDY, CSR_ODRDY))
        return fail("PWR_CSR1.ODRDY: the over-drive did not start");
    tk_clk_set(PWR_CR, CR_ODSWEN);
    if (!tk_clk_wait(PWR_CSR, CSR_ODSWRDY, CSR_ODSWRDY))
        return fail("PWR_CSR1.ODSWRDY: the regulator did not switch to over-drive");
#endif

    /* More wait states before a faster clock; the new latency counts once ACR reads it back. */
    tk_clk_wr(FLASH_ACR, (tk_clk_rd(FLASH_ACR) & ~ACR_LATENCY) | (uint32_t)TK_CLK_FLASH_WS | ACR_PRFTEN | ACR_ACCEL);
    if (!tk_clk_wait(FLASH_ACR, ACR_LATENCY, (uint32_t)TK_CLK_FLASH_WS))
        return fail("FLASH_ACR.LATENCY: the flash wait states did not read back");

    /* Dividers first (at the HSI every bus is slower still), then the switch. */
    uint32_t divs = (TK_CLK_HPRE(TK_CLK_AHB_DIV) << 4) | (TK_CLK_PPRE(TK_CLK_APB1_DIV) << 10) |
                    (TK_CLK_PPRE(TK_CLK_APB2_DIV) << 13);
    tk_clk_wr(RCC_CFGR, (tk_clk_rd(RCC_CFGR) & ~CFGR_DIVS) | divs);
    tk_clk_wr(RCC_CFGR, (tk_clk_rd(RCC_CFGR) & ~CFGR_SW) | SW_PLL);
    if (!tk_clk_wait(RCC_CFGR, CFGR_SWS, SW_PLL << 2))
        return fail("RCC_CFGR.SWS: SYSCLK did not switch to the PLL");
    return 0;
}
