/* disco-h747i external memories for variant ext-mem: FMC SDRAM (activations) and QUADSPI
 * memory-mapped NOR flash (weights). Register-level, from these sources:
 *  - RM0399 (STM32H745/747/755/757 reference manual): RCC, GPIO, FMC SDRAM controller, QUADSPI and
 *    the Cortex-M7 MPU register addresses and fields;
 *  - UM2411 (STM32H747I-DISCO user manual / schematic) for which pins carry FMC and QUADSPI; the
 *    QUADSPI list also matches OpenOCD's board/stm32h747i-disco.cfg (its qspi_init);
 *  - the IS42S32800J datasheet (8M x 32 SDRAM, 4 banks, 4096 rows, 512 columns, 4096 refreshes per
 *    64 ms) and the MT25QL512ABB datasheet (4-byte quad output fast read 6Ch, 8 dummy clocks by
 *    default; reset enable 66h + reset memory 99h).
 *
 * Clocks: HCLK3 (the AXI clock) is the kernel clock of the FMC and of QUADSPI (D1CCIPR FMCSEL =
 * QSPISEL = 00 at reset): 200 MHz at clock=max (TK_CLK_HCLK_HZ, stm32_clock_h7.c runs first), the
 * 64 MHz HSI at clock=reset (RCC reset values: HSIDIV /1, D1CPRE /1, HPRE /1). Every timing below
 * derives from HCLK_HZ, and the _Static_asserts stop the build if a clock change pushes a value out
 * of its register field.
 *
 * Status: verified by compilation only (no STM32H7 machine in QEMU, no board on the build host). */
#include "ext_mem.h"

#include <stdint.h>

#include "cortex-m/stm32_gpio.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* RCC (RM0399 section 9/"RCC registers"): base 0x58024400. */
#define RCC_AHB3ENR REG(0x580244D4u) /* FMCEN bit 12, QSPIEN bit 14 */
#define RCC_AHB4ENR REG(0x580244E0u) /* GPIOxEN: bit 0 = port A ... bit 8 = port I */

/* GPIO ports (RM0399 memory map: 0x58020000 + 0x400 per port). */
#define GPIOB 0x58020400u
#define GPIOD 0x58020C00u
#define GPIOE 0x58021000u
#define GPIOF 0x58021400u
#define GPIOG 0x58021800u
#define GPIOH 0x58021C00u
#define GPIOI 0x58022000u

/* FMC (base 0x52004000). On bank 2 the SDCLK/RBURST/RPIPE fields exist only in SDCR1 and the
 * TRC/TRP fields only in SDTR1 (shared by both SDRAM banks), so bank 2 needs both registers. */
#define FMC_BCR1 REG(0x52004000u)  /* FMCEN bit 31 enables the whole controller (H7 only) */
#define FMC_SDCR1 REG(0x52004140u)
#define FMC_SDCR2 REG(0x52004144u)
#define FMC_SDTR1 REG(0x52004148u)
#define FMC_SDTR2 REG(0x5200414Cu)
#define FMC_SDCMR REG(0x52004150u)
#define FMC_SDRTR REG(0x52004154u)
#define FMC_SDSR REG(0x52004158u)
#define FMC_SDSR_BUSY (1u << 5)

/* QUADSPI (base 0x52005000). */
#define QSPI_CR REG(0x52005000u)
#define QSPI_DCR REG(0x52005004u)
#define QSPI_SR REG(0x52005008u)
#define QSPI_FCR REG(0x5200500Cu)
#define QSPI_CCR REG(0x52005014u)
#define QSPI_SR_TCF (1u << 1)
#define QSPI_SR_BUSY (1u << 5)

/* Cortex-M7 MPU (ARMv7-M ARM B3.5) and the D-cache clean+invalidate by address. */
#define MPU_TYPE REG(0xE000ED90u)
#define MPU_CTRL REG(0xE000ED94u)
#define MPU_RNR REG(0xE000ED98u)
#define MPU_RBAR REG(0xE000ED9Cu)
#define MPU_RASR REG(0xE000EDA0u)
#define SCB_DCCIMVAC REG(0xE000EF70u)

#define SDRAM_BASE 0xD0000000u
#define SDRAM_SIZE 0x02000000u

/* ---- Timing arithmetic ------------------------------------------------------------------------ */

/* SDCLK = HCLK/2 (the FMC's fastest setting, SDCLK field 10b): 32 MHz (tCK 31.25 ns) at clock=reset,
 * 100 MHz (tCK 10 ns) at clock=max, at the SDRAM's limit for CAS latency 2 (>= 100 MHz for every
 * speed grade) and the FMC's at VOS1; every other parameter below rounds up to whole clocks. */
#ifdef TK_CLK_HCLK_HZ
#define HCLK_HZ TK_CLK_HCLK_HZ
#else
#define HCLK_HZ TK_CLOCK_HZ /* the reset clock tree: every divider 1 */
#endif
#define SDCLK_HZ (HCLK_HZ / 2u)
#define SDCLK_PER_US (SDCLK_HZ / 1000000u)
/* Clocks covering `ns` nanoseconds, rounded up (a minimum time must never be cut short). */
#define NS_TO_SDCLK(ns) (((ns) * SDCLK_PER_US + 999u) / 1000u)
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* SDRAM AC minimums, in ns. Deliberately a bit above the -6 (166 MHz) grade minimums of ISSI's
 * 8M x 32 SDRAMs (IS42S32800G/J: tRCD = tRP = 18 ns, tRAS = 42 ns, tRC = tRFC = 60 ns,
 * tXSR = 70 ns, tMRD = tWR = 2 tCK) so that a slower grade fits too; at 31.25 ns per clock the
 * margin costs at most one clock, and only tRC and tXSR come out above 2 clocks. */
#define SDRAM_TRCD_CLK MAX(NS_TO_SDCLK(20u), 1u) /* ACTIVE -> READ/WRITE: 20 ns -> 1 */
#define SDRAM_TRP_CLK MAX(NS_TO_SDCLK(20u), 1u)  /* PRECHARGE -> ACTIVE: 20 ns -> 1 */
#define SDRAM_TRAS_CLK MAX(NS_TO_SDCLK(45u), 1u) /* ACTIVE -> PRECHARGE (self-refresh min): 45 ns -> 2 */
/* ACTIVE -> ACTIVE same bank, and the auto-refresh period the FMC waits after each AUTO REFRESH
 * (RM0399: TRC also times refresh): 70 ns -> 3. */
#define SDRAM_TRC_CLK MAX(NS_TO_SDCLK(70u), 1u)
#define SDRAM_TXSR_CLK MAX(NS_TO_SDCLK(75u), 1u) /* exit self-refresh -> ACTIVE: 75 ns -> 3 */
#define SDRAM_TMRD_CLK 2u                        /* LOAD MODE -> ACTIVE: 2 tCK by the datasheet */
/* Write recovery: datasheet 2 tCK (tDPL); RM0399 also requires TWR >= TRAS - TRCD and
 * TWR >= TRC - TRCD - TRP so that a write followed by precharge never violates tRAS/tRC. */
#define SDRAM_TWR_CLK \
    MAX(2u, MAX(SDRAM_TRAS_CLK - SDRAM_TRCD_CLK, SDRAM_TRC_CLK - SDRAM_TRCD_CLK - SDRAM_TRP_CLK))
#define SDRAM_CAS_LATENCY 2u

/* Refresh: 4096 rows every 64 ms = one AUTO REFRESH per 15.625 us = 500 SDCLK at 32 MHz. RM0399
 * (FMC_SDRTR): COUNT = refresh interval in SDCLK - 20 (margin for a refresh request that has to
 * wait for an ongoing access), and COUNT must be above 41. 500 - 20 = 480. */
#define SDRAM_REFRESH_COUNT ((64000u * SDCLK_PER_US) / 4096u - 20u)

_Static_assert(SDRAM_TRCD_CLK <= 16 && SDRAM_TRP_CLK <= 16 && SDRAM_TRAS_CLK <= 16 &&
                   SDRAM_TRC_CLK <= 16 && SDRAM_TXSR_CLK <= 16 && SDRAM_TWR_CLK <= 16,
               "SDRAM timing does not fit its 4-bit FMC_SDTR field: check TK_CLOCK_HZ");
_Static_assert(SDRAM_REFRESH_COUNT > 41 && SDRAM_REFRESH_COUNT < (1u << 13),
               "SDRAM refresh count out of the FMC_SDRTR COUNT range: check TK_CLOCK_HZ");
_Static_assert(SDCLK_HZ <= 100000000u, "SDCLK above 100 MHz needs CAS latency 3");

/* ---- Small helpers ---------------------------------------------------------------------------- */

/* Busy-wait for at least `us` microseconds: each loop iteration takes at least one CPU clock. */
static void delay_us(uint32_t us)
{
    for (volatile uint32_t n = us * (TK_CLOCK_HZ / 1000000u); n > 0; n--) {
    }
}

/* Wait (bounded) until (*reg & mask) == want; 0 when it got there. */
static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    for (uint32_t n = 0; n < 1000000u; n++)
        if ((*reg & mask) == want)
            return 0;
    return -1;
}

/* All the pins of one port to alternate function `af` (very high speed). */
static void pins_alternate(uint32_t port, uint32_t pins, unsigned af)
{
    for (unsigned pin = 0; pin < 16; pin++)
        if (pins & (1u << pin))
            tk_gpio_alternate(port, pin, af);
}

#define P(n) (1u << (n))

/* ---- FMC SDRAM -------------------------------------------------------------------------------- */

/* FMC SDRAM pins of the STM32H747I-DISCO (UM2411 schematic), all AF12: 32 data lines D0-D31,
 * A0-A11 (12 row bits; A0-A8 carry the column), BA0-1, NBL0-3, SDCLK, SDNRAS, SDNCAS, SDNWE and
 * the bank-2 pair SDNE1 (PH6) / SDCKE1 (PH7) -- hence FMC SDRAM bank 2 at 0xD0000000. */
static void sdram_pins(void)
{
    /* D2 D3 | D13 D14 D15 | D0 D1 */
    pins_alternate(GPIOD, P(0) | P(1) | P(8) | P(9) | P(10) | P(14) | P(15), 12);
    /* NBL0 NBL1 | D4-D12 */
    pins_alternate(GPIOE, P(0) | P(1) | P(7) | P(8) | P(9) | P(10) | P(11) | P(12) | P(13) | P(14) |
                              P(15), 12);
    /* A0-A5 | SDNRAS | A6-A9 */
    pins_alternate(GPIOF, P(0) | P(1) | P(2) | P(3) | P(4) | P(5) | P(11) | P(12) | P(13) | P(14) |
                              P(15), 12);
    /* A10 A11 | BA0 BA1 | SDCLK | SDNCAS */
    pins_alternate(GPIOG, P(0) | P(1) | P(4) | P(5) | P(8) | P(15), 12);
    /* SDNWE SDNE1 SDCKE1 | D16-D23 */
    pins_alternate(GPIOH, P(5) | P(6) | P(7) | P(8) | P(9) | P(10) | P(11) | P(12) | P(13) | P(14) |
                              P(15), 12);
    /* D24-D27 | NBL2 NBL3 | D28 D29 | D30 D31 */
    pins_alternate(GPIOI, P(0) | P(1) | P(2) | P(3) | P(4) | P(5) | P(6) | P(7) | P(9) | P(10), 12);
}

/* SDCMR command modes (RM0399 FMC_SDCMR.MODE) and the bank-2 target bit CTB2. */
enum { SDCMD_CLK_ENABLE = 1, SDCMD_PALL = 2, SDCMD_AUTO_REFRESH = 3, SDCMD_LOAD_MODE = 4 };
#define SDCMR_CTB2 (1u << 3)

static int sdram_command(uint32_t mode, uint32_t auto_refreshes, uint32_t mode_register)
{
    if (wait_bits(&FMC_SDSR, FMC_SDSR_BUSY, 0) != 0)
        return -1;
    FMC_SDCMR = mode | SDCMR_CTB2 | ((auto_refreshes ? auto_refreshes - 1u : 0u) << 5) |
                (mode_register << 9);
    return wait_bits(&FMC_SDSR, FMC_SDSR_BUSY, 0);
}

static int sdram_init(void)
{
    sdram_pins();

    /* Device geometry, identical in SDCR1 and SDCR2 (RM0399 asks for the shared fields in SDCR1):
     * NC = 01 (9 column bits), NR = 01 (12 row bits), MWID = 10 (32 bits), NB = 1 (4 banks),
     * CAS = 2, no write protection; SDCR1 also gets SDCLK = 10 (HCLK/2) and RBURST = 1 (a
     * cache-line read becomes one burst), RPIPE = 0 (no extra read delay; chosen at 32 MHz, not tried at 100). */
    uint32_t geometry = (1u << 0) | (1u << 2) | (2u << 4) | (1u << 6) | (SDRAM_CAS_LATENCY << 7);
    FMC_SDCR1 = geometry | (2u << 10) | (1u << 12);
    FMC_SDCR2 = geometry;

    /* Timings, each field = clocks - 1: TMRD[3:0] TXSR[7:4] TRAS[11:8] TRC[15:12] TWR[19:16]
     * TRP[23:20] TRCD[27:24]. TRC and TRP are taken from SDTR1 for both banks. */
    uint32_t timing = ((SDRAM_TMRD_CLK - 1u) << 0) | ((SDRAM_TXSR_CLK - 1u) << 4) |
                      ((SDRAM_TRAS_CLK - 1u) << 8) | ((SDRAM_TRC_CLK - 1u) << 12) |
                      ((SDRAM_TWR_CLK - 1u) << 16) | ((SDRAM_TRP_CLK - 1u) << 20) |
                      ((SDRAM_TRCD_CLK - 1u) << 24);
    FMC_SDTR1 = timing;
    FMC_SDTR2 = timing;

    FMC_BCR1 |= 1u << 31; /* FMCEN: the H7 FMC does nothing until this is set */

    /* JEDEC power-up: clock running with CKE high for >= 100 us (200 us here: some datasheets ask
     * for 200), PRECHARGE ALL, 8 AUTO REFRESH, LOAD MODE REGISTER, then periodic refresh. */
    if (sdram_command(SDCMD_CLK_ENABLE, 0, 0) != 0)
        return -1;
    delay_us(200);
    if (sdram_command(SDCMD_PALL, 0, 0) != 0)
        return -1;
    if (sdram_command(SDCMD_AUTO_REFRESH, 8, 0) != 0)
        return -1;
    /* Mode register: burst length 1 (M2:0 = 000, the FMC issues one READ/WRITE per word and
     * bursts by itself), sequential (M3 = 0), CAS latency 2 (M6:4 = 010), standard operation
     * (M8:7 = 00), write burst = programmed length (M9 = 0; with length 1 the same as single). */
    if (sdram_command(SDCMD_LOAD_MODE, 0, SDRAM_CAS_LATENCY << 4) != 0)
        return -1;
    FMC_SDRTR = SDRAM_REFRESH_COUNT << 1;
    return 0;
}

/* The Cortex-M7 default memory map makes 0xC0000000-0xDFFFFFFF Device memory: unaligned accesses
 * (which the kernels and memcpy make) fault there and nothing is cached. An MPU region turns the
 * 32 MB SDRAM into Normal memory, write-back write-allocate, not executable; PRIVDEFENA keeps the
 * default map everywhere else. Nothing else in tinykiln uses the MPU, so region 0 is free. */
static int sdram_mpu_region(void)
{
    if (((MPU_TYPE >> 8) & 0xFFu) == 0)
        return -1; /* no MPU regions */
    __asm__ volatile("dmb" ::: "memory");
    MPU_CTRL = 0;
    MPU_RNR = 0;
    MPU_RBAR = SDRAM_BASE; /* 32 MB aligned */
    /* XN = 1, AP = 011 (full access), TEX = 001 C = 1 B = 1 (Normal, WBWA), S = 0,
     * SIZE = 24 (2^(24+1) = 32 MB), ENABLE. */
    MPU_RASR = (1u << 28) | (3u << 24) | (1u << 19) | (1u << 17) | (1u << 16) | (24u << 1) | 1u;
    MPU_CTRL = (1u << 2) | 1u; /* PRIVDEFENA | ENABLE */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    return 0;
}

/* Write distinct words across the 32 MB (different banks, rows, the last word), push them out of
 * the D-cache and read them back: catches a dead clock, a missing data or address line. */
static int sdram_check(void)
{
    static const uint32_t offsets[] = {0x0u, 0x4u, 0x800u, 0x10000u, 0x400000u, 0xFFFFF0u,
                                       SDRAM_SIZE - 4u};
    const unsigned n = sizeof offsets / sizeof offsets[0];
    for (unsigned i = 0; i < n; i++)
        REG(SDRAM_BASE + offsets[i]) = 0xA5C30000u ^ (offsets[i] * 2654435761u);
    for (unsigned i = 0; i < n; i++)
        SCB_DCCIMVAC = SDRAM_BASE + offsets[i];
    __asm__ volatile("dsb" ::: "memory");
    for (unsigned i = 0; i < n; i++)
        if (REG(SDRAM_BASE + offsets[i]) != (0xA5C30000u ^ (offsets[i] * 2654435761u)))
            return -1;
    return 0;
}

/* ---- QUADSPI ---------------------------------------------------------------------------------- */

/* QUADSPI pins (UM2411; the same list as OpenOCD's board/stm32h747i-disco.cfg): CLK PB2 AF9,
 * BK1_NCS PG6 AF10 (one chip select for both flashes in dual-flash mode), bank 1 IO0-3 =
 * PD11 AF9, PF9 AF10, PF7 AF9, PF6 AF9; bank 2 IO0-3 = PH2 AF9, PH3 AF9, PG9 AF9, PG14 AF9. */
static void qspi_pins(void)
{
    tk_gpio_alternate(GPIOB, 2, 9);
    tk_gpio_alternate(GPIOG, 6, 10);
    tk_gpio_alternate(GPIOD, 11, 9);
    tk_gpio_alternate(GPIOF, 9, 10);
    tk_gpio_alternate(GPIOF, 7, 9);
    tk_gpio_alternate(GPIOF, 6, 9);
    tk_gpio_alternate(GPIOH, 2, 9);
    tk_gpio_alternate(GPIOH, 3, 9);
    tk_gpio_alternate(GPIOG, 9, 9);
    tk_gpio_alternate(GPIOG, 14, 9);
}

/* QUADSPI_CCR fields. */
#define CCR_INSTR(i) ((uint32_t)(i) << 0)
#define CCR_IMODE(lines) ((uint32_t)((lines) == 4 ? 3 : (lines)) << 8) /* 1 or 4 lines */
#define CCR_ADMODE_1LINE (1u << 10)
#define CCR_ADSIZE_32BIT (3u << 12)
#define CCR_DCYC(n) ((uint32_t)(n) << 18)
#define CCR_DMODE_4LINES (3u << 24)
#define CCR_FMODE_MEMORY_MAPPED (3u << 26)

/* An instruction-only command (no address, no data) on `lines` lines, sent to both flashes. In
 * indirect-write mode with no address and no data, writing CCR starts it. */
static int qspi_instruction(uint8_t instruction, int lines)
{
    if (wait_bits(&QSPI_SR, QSPI_SR_BUSY, 0) != 0)
        return -1;
    QSPI_CCR = CCR_IMODE(lines) | CCR_INSTR(instruction);
    if (wait_bits(&QSPI_SR, QSPI_SR_TCF, QSPI_SR_TCF) != 0)
        return -1;
    QSPI_FCR = QSPI_SR_TCF; /* CTCF */
    return wait_bits(&QSPI_SR, QSPI_SR_BUSY, 0);
}

#define QSPI_PRESCALER ((HCLK_HZ + 32000000u - 1u) / 32000000u - 1u)
_Static_assert(QSPI_PRESCALER <= 255u, "QUADSPI prescaler out of its 8-bit field");

static int qspi_init(void)
{
    qspi_pins();

    /* DCR: FSIZE = 26 (2^(26+1) = 128 MB, the two 64 MB flashes together in dual-flash mode),
     * CSHT = 2 (chip select high for 3 clocks = 94 ns >= the MT25QL's 50 ns between non-read
     * commands), CKMODE = 0 (clock low while idle: SPI mode 0). */
    QSPI_DCR = (26u << 16) | (2u << 8);
    /* CR: PRESCALER = QSPI_PRESCALER (HCLK / (PRESCALER + 1) <= 32 MHz: 32 MHz at 64, 28.6 MHz at
     * 200, well inside the 133 MHz of 6Ch and gentle on the board traces), DFM = 1 (dual flash: bank 1 carries the even bytes, bank 2 the odd ones),
     * SSHIFT = 1 (sample half a clock late, the setting RM0399 recommends for board delays),
     * FTHRES = 0, then EN. */
    QSPI_CR = (QSPI_PRESCALER << 24) | (1u << 6) | (1u << 4);
    QSPI_CR |= 1u << 0;

    /* Put both flashes back into their power-on state whatever a previous run or the debugger left
     * (OpenOCD's reset-init for this board switches them to QPI mode with 10 dummy clocks, and a
     * core reset does not reset the flashes): RESET ENABLE 66h + RESET MEMORY 99h, first on four
     * lines (heard by a flash in QPI mode; a flash in SPI mode sees two clocks of an unfinished
     * instruction and ignores it), then on one line (heard by a flash in SPI mode). */
    static const int protocols[] = {4, 1};
    for (unsigned i = 0; i < sizeof protocols / sizeof protocols[0]; i++) {
        if (qspi_instruction(0x66, protocols[i]) != 0 || qspi_instruction(0x99, protocols[i]) != 0)
            return -1;
    }
    delay_us(1000); /* reset recovery (datasheet: tens of us; 1 ms is plenty) */

    /* Memory-mapped reads: 4-BYTE QUAD OUTPUT FAST READ 6Ch (instruction and 32-bit address on
     * one line, 8 dummy clocks -- the MT25QL default for this command after reset -- data on four
     * lines per flash, eight in dual-flash mode). 4-byte addressing is in the command itself, so
     * it works whatever the flash's address-mode setting. Writing CCR enters the mode. */
    if (wait_bits(&QSPI_SR, QSPI_SR_BUSY, 0) != 0)
        return -1;
    QSPI_CCR = CCR_FMODE_MEMORY_MAPPED | CCR_DMODE_4LINES | CCR_DCYC(8) | CCR_ADSIZE_32BIT |
               CCR_ADMODE_1LINE | CCR_IMODE(1) | CCR_INSTR(0x6C);
    return 0;
}

int tk_ext_mem_init(const char **what)
{
    /* GPIO ports B, D, E, F, G, H, I; then the FMC and QUADSPI clocks. */
    RCC_AHB4ENR |= P(1) | P(3) | P(4) | P(5) | P(6) | P(7) | P(8);
    RCC_AHB3ENR |= P(12) | P(14);
    (void)RCC_AHB3ENR; /* read back: the clocks are on before the first register access */

    *what = "FMC SDRAM init sequence (controller stayed busy)";
    if (sdram_init() != 0)
        return 1;
    *what = "MPU region for the SDRAM";
    if (sdram_mpu_region() != 0)
        return 2;
    *what = "SDRAM read-back check (wrong data at 0xD0000000..0xD1FFFFFF)";
    if (sdram_check() != 0)
        return 3;
    *what = "QUADSPI memory-mapped set-up (controller stayed busy)";
    if (qspi_init() != 0)
        return 4;
    *what = "";
    return 0;
}
