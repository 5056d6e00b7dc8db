/* clock=max on the STM32H747 (Cortex-M7 core): the power supply configuration, voltage scale VOS1,
 * flash wait states, PLL1 from the HSI, the domain dividers and the switch to 400 MHz.
 *
 * THE SUPPLY CONFIGURATION (PWR_CR3 SDEN/LDOEN/BYPASS) IS THE ONE SETTING NEVER GUESSED. RM0399, PWR
 * chapter, "Power supply configuration" and the PWR_CR3 register: its low byte can be written only
 * once after power-on, must be written before VOS or the system clock change, and a setting that does
 * not match how the board feeds VCORE (SMPS, LDO, external) leaves the core unpowered: the part stops
 * answering the debugger until the board is recovered by hand (BOOT0 high, power cycle, erase). The
 * value comes from board.toml [clock] supply, which the build requires (tinykiln/clocks.py refuses a
 * board without it) and which this file refuses to compile without:
 *  - STM32H747I-DISCO: "direct-smps" (SDEN = 1, LDOEN = 0, BYPASS = 0). UM2411 "Power supply"/
 *    "SMPS/LDO power supply": the board is delivered in the SMPS configuration (VCORE from the
 *    internal SMPS step-down converter, LDO off), which RM0399's "System supply configurations" calls
 *    direct SMPS supply; the LDO configuration needs the solder bridges changed. ST's own
 *    STM32H747I-DISCO examples (STM32CubeH7 Projects/STM32H747I-DISCO) select the same supply.
 * At run time the code also refuses to write a supply that cannot take: if PWR_CR3 already holds a
 * configuration other than the reset one (0x06: SDEN | LDOEN; written since power-on, e.g. by other
 * firmware) and not ours, it stays at the reset clock and says so instead of writing.
 *
 * Other facts: RM0399 PWR_D3CR (VOS, VOSRDY), PWR_CSR1 (ACTVOSRDY), FLASH_ACR (LATENCY; 4 wait states
 * at AXI 200 MHz as in ST's board examples, RM0399's wait-state table asks 3 at VOS1), RCC_CR, RCC_CFGR,
 * RCC_D1CFGR / D2CFGR / D3CFGR, RCC_PLLCKSELR, RCC_PLLCFGR, RCC_PLL1DIVR (DIVN, DIVP as factor - 1).
 * PLL1 from the 64 MHz HSI (no board oscillator is assumed): /M into the 8-16 MHz input range,
 * wide VCO. The Cortex-M4 core is not touched (it boots from bank 2, which tinykiln leaves empty).
 * See stm32_clock.h for the contract. */
#include "cortex-m/stm32_clock.h"

#if !defined(TK_CLK_H7_SUPPLY)
#error "stm32_clock_h7.c: no TK_CLK_H7_SUPPLY: board.toml [clock] supply must say how the board feeds VCORE"
#endif
_Static_assert(TK_CLK_H7_SUPPLY == 0x04u || TK_CLK_H7_SUPPLY == 0x02u, "supply: direct SMPS or LDO only");
_Static_assert(TK_CLK_PLL_P % 2 == 0, "PLL1 DIVP takes even factors");

#define PWR_CSR1 0x58024804u
#define PWR_CR3 0x5802480Cu
#define PWR_D3CR 0x58024818u
#define FLASH_ACR 0x52002000u
#define RCC_CR 0x58024400u
#define RCC_CFGR 0x58024410u
#define RCC_D1CFGR 0x58024418u
#define RCC_D2CFGR 0x5802441Cu
#define RCC_D3CFGR 0x58024420u
#define RCC_PLLCKSELR 0x58024428u
#define RCC_PLLCFGR 0x5802442Cu
#define RCC_PLL1DIVR 0x58024430u

#define CR3_SUPPLY 0x3Fu /* BYPASS, LDOEN, SDEN, SDEXTHP, SDLEVEL */
#define CR3_RESET_SUPPLY 0x06u /* SDEN | LDOEN after power-on */
#define CSR1_ACTVOSRDY (1u << 13)
#define D3CR_VOS (3u << 14)
#define D3CR_VOSRDY (1u << 13)
#define ACR_LATENCY 0xFu
#define CR_PLL1ON (1u << 24)
#define CR_PLL1RDY (1u << 25)
#define CFGR_SW 0x7u
#define CFGR_SWS 0x38u
#define SW_HSI 0u
#define SW_PLL1 3u
#define D1CFGR_DIVS 0xF7Fu /* HPRE[3:0], D1PPRE[6:4], D1CPRE[11:8] */
#define D2CFGR_DIVS 0x770u /* D2PPRE1[6:4], D2PPRE2[10:8] */
#define D3CFGR_DIVS 0x70u /* D3PPRE[6:4] */
#define PLLCKSELR_PLL1 (0x3u | (0x3Fu << 4)) /* PLLSRC (00 = HSI), DIVM1 */
#define PLLCFGR_PLL1 (0xFu | (1u << 16)) /* PLL1FRACEN, PLL1VCOSEL (0 = wide), PLL1RGE, DIVP1EN */

#define REF_HZ (TK_CLK_RESET_HZ / TK_CLK_PLL_M)
#define PLL1RGE (REF_HZ < 2000000u ? 0u : REF_HZ < 4000000u ? 1u : REF_HZ < 8000000u ? 2u : 3u)

TK_CLK_FAULT_REPORT

static void back_to_reset_clock(void)
{
    tk_clk_wr(RCC_CFGR, (tk_clk_rd(RCC_CFGR) & ~CFGR_SW) | SW_HSI);
    (void)tk_clk_wait(RCC_CFGR, CFGR_SWS, SW_HSI << 3);
    tk_clk_wr(RCC_D1CFGR, tk_clk_rd(RCC_D1CFGR) & ~D1CFGR_DIVS);
    tk_clk_wr(RCC_D2CFGR, tk_clk_rd(RCC_D2CFGR) & ~D2CFGR_DIVS);
    tk_clk_wr(RCC_D3CFGR, tk_clk_rd(RCC_D3CFGR) & ~D3CFGR_DIVS);
}

static const char *fail(const char *what)
{
    back_to_reset_clock();
    return what;
}

const char *tk_clock_init(void)
{
    /* 1. The supply, once: ours already (a reset since power-on), the reset one (write it), or locked
     *    to something else (refuse). */
    uint32_t cr3 = tk_clk_rd(PWR_CR3);
    if ((cr3 & CR3_SUPPLY) != TK_CLK_H7_SUPPLY) {
        if ((cr3 & CR3_SUPPLY) != CR3_RESET_SUPPLY)
            return "PWR_CR3 already holds another supply configuration since power-on (written once): "
                   "refusing to change it; power-cycle the board";
        tk_clk_wr(PWR_CR3, (cr3 & ~CR3_SUPPLY) | TK_CLK_H7_SUPPLY);
    }
    if (!tk_clk_wait(PWR_CSR1, CSR1_ACTVOSRDY, CSR1_ACTVOSRDY))
        return fail("PWR_CSR1.ACTVOSRDY: the supply configuration did not become active");

    /* 2. VOS1 for 400 MHz. */
    tk_clk_wr(PWR_D3CR, (tk_clk_rd(PWR_D3CR) & ~D3CR_VOS) | ((uint32_t)TK_CLK_VOS << 14));
    (void)tk_clk_rd(PWR_D3CR); /* read back: VOSRDY reads 1 after reset, before the change starts */
    if (!tk_clk_wait(PWR_D3CR, D3CR_VOSRDY, D3CR_VOSRDY))
        return fail("PWR_D3CR.VOSRDY: the voltage scale did not settle");

    /* 3. Wait states for the AXI clock before it rises (reset: 7, also enough). */
    tk_clk_wr(FLASH_ACR, (tk_clk_rd(FLASH_ACR) & ~ACR_LATENCY) | (uint32_t)TK_CLK_FLASH_WS);
    if (!tk_clk_wait(FLASH_ACR, ACR_LATENCY, (uint32_t)TK_CLK_FLASH_WS))
        return fail("FLASH_ACR.LATENCY: the flash wait states did not read back");

    /* 4. PLL1, configured while off (a debugger's core reset may have left it on). */
    back_to_reset_clock();
    tk_clk_wr(RCC_CR, tk_clk_rd(RCC_CR) & ~CR_PLL1ON);
    if (!tk_clk_wait(RCC_CR, CR_PLL1RDY, 0))
        return fail("RCC_CR.PLL1RDY: PLL1 did not stop");
    tk_clk_wr(RCC_PLLCKSELR, (tk_clk_rd(RCC_PLLCKSELR) & ~PLLCKSELR_PLL1) | ((uint32_t)TK_CLK_PLL_M << 4));
    tk_clk_wr(RCC_PLLCFGR, (tk_clk_rd(RCC_PLLCFGR) & ~PLLCFGR_PLL1) | (PLL1RGE << 2) | (1u << 16));
    tk_clk_wr(RCC_PLL1DIVR, (uint32_t)(TK_CLK_PLL_N - 1) | ((uint32_t)(TK_CLK_PLL_P - 1) << 9) |
                                ((uint32_t)(TK_CLK_PLL_Q - 1) << 16) | (1u << 24) /* DIVR /2 */);
    tk_clk_wr(RCC_CR, tk_clk_rd(RCC_CR) | CR_PLL1ON);
    if (!tk_clk_wait(RCC_CR, CR_PLL1RDY, CR_PLL1RDY))
        return fail("RCC_CR.PLL1RDY: PLL1 did not lock");

    /* 5. Dividers before the switch (at the HSI every bus is slower still), then the switch. */
    tk_clk_wr(RCC_D1CFGR, (tk_clk_rd(RCC_D1CFGR) & ~D1CFGR_DIVS) | (TK_CLK_HPRE(TK_CLK_CPU_DIV) << 8) |
                              (TK_CLK_PPRE(TK_CLK_APB3_DIV) << 4) | TK_CLK_HPRE(TK_CLK_AHB_DIV));
    tk_clk_wr(RCC_D2CFGR, (tk_clk_rd(RCC_D2CFGR) & ~D2CFGR_DIVS) | (TK_CLK_PPRE(TK_CLK_APB1_DIV) << 4) |
                              (TK_CLK_PPRE(TK_CLK_APB2_DIV) << 8));
    tk_clk_wr(RCC_D3CFGR, (tk_clk_rd(RCC_D3CFGR) & ~D3CFGR_DIVS) | (TK_CLK_PPRE(TK_CLK_APB4_DIV) << 4));
    tk_clk_wr(RCC_CFGR, (tk_clk_rd(RCC_CFGR) & ~CFGR_SW) | SW_PLL1);
    if (!tk_clk_wait(RCC_CFGR, CFGR_SWS, SW_PLL1 << 3))
        return fail("RCC_CFGR.SWS: SYSCLK did not switch to PLL1");
    return 0;
}
