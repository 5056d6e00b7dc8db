/* Cortex-A9 (Zynq-7000) C start-up, caches, cycle counter, fault report and exit.
 *
 * Caches: the A9's L1 data cache only works with the MMU on, so a flat 1 MB-section table maps
 * DDR and OCM as normal write-back memory and everything else as device memory (ARMv7-AR ARM,
 * B3.5 short-descriptor format). Cycles: the PMU cycle counter on silicon; QEMU leaves it at 0, so
 * the firmware falls back to the SCU global timer (with -icount shift=0: instructions).
 *
 * From board.toml: TK_GTIMER_HZ ([cycles] timer_hz, the global timer's clock as QEMU models it),
 * TK_DDR_END (the end of the memory region named DDR: the first address past the cacheable DDR). */
#include <stdint.h>
#include <string.h>

#include "tk_board.h"

#ifndef TK_GTIMER_HZ
#error "the board must define TK_GTIMER_HZ"
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))
#define GT_COUNT_LO REG(0xF8F00200u)
#define GT_COUNT_HI REG(0xF8F00204u)
#define GT_CONTROL REG(0xF8F00208u)

extern uint8_t __data_start[], __data_end[], __data_load[];
extern uint8_t __nn_weights_start[], __nn_weights_end[], __nn_weights_load[];
extern uint8_t __bss_start[], __bss_end[];
uint32_t tk_a9_svc_lr(void);

#define CP15_READ(op1, crn, crm, op2)                                                           \
    ({                                                                                          \
        uint32_t v_;                                                                            \
        __asm__ volatile("mrc p15, " #op1 ", %0, " #crn ", " #crm ", " #op2 : "=r"(v_));        \
        v_;                                                                                     \
    })
#define CP15_WRITE(op1, crn, crm, op2, v)                                                       \
    __asm__ volatile("mcr p15, " #op1 ", %0, " #crn ", " #crm ", " #op2 : : "r"((uint32_t)(v)) : "memory")

static uint32_t mmu_table[4096] __attribute__((aligned(16384), section(".mmu_table")));

/* Clean (optionally) and invalidate the L1 data cache by set/way. */
static void l1_dcache_by_set_way(int clean)
{
    CP15_WRITE(2, c0, c0, 0, 0); /* CSSELR: level 1 data */
    __asm__ volatile("isb");
    uint32_t ccsidr = CP15_READ(1, c0, c0, 0);
    uint32_t sets = ((ccsidr >> 13) & 0x7FFF) + 1;
    uint32_t ways = ((ccsidr >> 3) & 0x3FF) + 1;
    uint32_t line_shift = (ccsidr & 7) + 4;
    for (uint32_t way = 0; way < ways; way++)
        for (uint32_t set = 0; set < sets; set++) {
            uint32_t sw = (way << 30) | (set << line_shift); /* 4 ways: way in bits 31:30 */
            if (clean)
                CP15_WRITE(0, c7, c14, 2, sw); /* DCCISW */
            else
                CP15_WRITE(0, c7, c6, 2, sw); /* DCISW */
        }
    __asm__ volatile("dsb" ::: "memory");
}

static void caches_on(void)
{
    uint32_t sctlr = CP15_READ(0, c1, c0, 0);
    if (sctlr & (1u << 2)) /* a boot loader left the D-cache on: write it back first */
        l1_dcache_by_set_way(1);
    CP15_WRITE(0, c1, c0, 0, sctlr & ~((1u << 0) | (1u << 2) | (1u << 12)));
    __asm__ volatile("isb");
    for (uint32_t i = 0; i < 4096; i++) {
        uint32_t base = i << 20;
        int memory = base < TK_DDR_END || base >= 0xFFF00000u; /* DDR, OCM (high) */
        /* Section, AP=0b11 (full access), domain 0; memory: TEX=001 C=1 B=1 (write-back,
         * write-allocate); device: B=1 (shareable device), execute-never. */
        mmu_table[i] = base | (3u << 10) | 2u | (memory ? (1u << 12) | (1u << 3) | (1u << 2)
                                                         : (1u << 4) | (1u << 2));
    }
    __asm__ volatile("dsb" ::: "memory");
    CP15_WRITE(0, c8, c7, 0, 0);   /* TLBIALL */
    CP15_WRITE(0, c7, c5, 0, 0);   /* ICIALLU */
    CP15_WRITE(0, c7, c5, 6, 0);   /* BPIALL */
    l1_dcache_by_set_way(0);
    CP15_WRITE(0, c2, c0, 2, 0);   /* TTBCR: TTBR0 only */
    CP15_WRITE(0, c2, c0, 0, (uint32_t)(uintptr_t)mmu_table);
    CP15_WRITE(0, c3, c0, 0, 0x55555555u); /* DACR: client, permissions checked */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    sctlr = CP15_READ(0, c1, c0, 0);
    sctlr |= (1u << 0) | (1u << 2) | (1u << 11) | (1u << 12); /* MMU, D-cache, branch pred., I-cache */
    sctlr &= ~(1u << 1); /* no strict alignment checks: C code may do unaligned word accesses */
    CP15_WRITE(0, c1, c0, 0, sctlr);
    __asm__ volatile("isb");
}

__attribute__((noreturn)) void tk_a9_reset_c(void)
{
    if ((uintptr_t)__data_load != (uintptr_t)__data_start)
        memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
    if ((uintptr_t)__nn_weights_load != (uintptr_t)__nn_weights_start)
        memcpy(__nn_weights_start, __nn_weights_load, (size_t)(__nn_weights_end - __nn_weights_start));
    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    caches_on();
    tk_board_init();
    tk_exit(app_main());
}

/* ---- cycle counter ---- */

enum { NOT_STARTED, USE_PMU, USE_GTIMER };
static int mode = NOT_STARTED;

void tk_cycles_start(void)
{
    if (mode != NOT_STARTED)
        return;
    CP15_WRITE(0, c9, c12, 0, CP15_READ(0, c9, c12, 0) | 1u | 4u); /* PMCR: enable, reset CCNT */
    CP15_WRITE(0, c9, c12, 1, 1u << 31);                           /* PMCNTENSET: CCNT */
    uint32_t before = CP15_READ(0, c9, c13, 0);
    for (volatile int i = 0; i < 16; i++) {
    }
    if (CP15_READ(0, c9, c13, 0) != before) {
        mode = USE_PMU;
        return;
    }
    mode = USE_GTIMER;
    GT_CONTROL = 1u; /* enable, prescaler 0 */
}

uint32_t tk_cycles(void)
{
    if (mode == USE_PMU)
        return CP15_READ(0, c9, c13, 0);
    if (mode == NOT_STARTED)
        return 0;
    uint32_t hi, lo;
    do {
        hi = GT_COUNT_HI;
        lo = GT_COUNT_LO;
    } while (hi != GT_COUNT_HI);
    uint64_t ticks = ((uint64_t)hi << 32) | lo;
#if 1000000000u % TK_GTIMER_HZ == 0
    return (uint32_t)(ticks * (1000000000u / TK_GTIMER_HZ));
#else
    return (uint32_t)(ticks * 1000000000u / TK_GTIMER_HZ);
#endif
}

const char *tk_cycles_name(void) { return mode == USE_PMU ? "cpu-cycles" : "instructions"; }

/* ---- faults and exit ---- */

static const char *fsr_meaning(uint32_t fsr)
{
    switch (((fsr >> 6) & 0x10) | (fsr & 0xF)) { /* FS[4] is bit 10 */
    case 0x01: return "alignment fault";
    case 0x02: return "debug event";
    case 0x03: case 0x06: return "access flag fault";
    case 0x05: case 0x07: return "translation fault";
    case 0x08: return "synchronous external abort";
    case 0x09: case 0x0B: return "domain fault";
    case 0x0D: case 0x0F: return "permission fault";
    case 0x16: return "asynchronous external abort";
    default: return "other";
    }
}

__attribute__((noreturn)) void tk_a9_fault(uint32_t kind, const uint32_t *regs, uint32_t pc, uint32_t spsr)
{
    static const char *const kinds[] = {"", "undefined instruction", "prefetch abort", "data abort",
                                        "unexpected IRQ", "unexpected FIQ"};
    uint32_t dfsr = CP15_READ(0, c5, c0, 0), dfar = CP15_READ(0, c6, c0, 0);
    uint32_t ifsr = CP15_READ(0, c5, c0, 1), ifar = CP15_READ(0, c6, c0, 2);
    tk_printf("\n*** FAULT: %s\n", kind < 6 ? kinds[kind] : "?");
    tk_printf("  PC   0x%08lx  LR   0x%08lx  SPSR 0x%08lx\n", (unsigned long)pc,
              (unsigned long)tk_a9_svc_lr(), (unsigned long)spsr);
    for (int i = 0; i < 13; i++)
        tk_printf("  R%-2d 0x%08lx%s", i, (unsigned long)regs[i], i % 4 == 3 || i == 12 ? "\n" : "");
    tk_printf("  DFSR 0x%08lx (%s)  DFAR 0x%08lx\n", (unsigned long)dfsr, fsr_meaning(dfsr),
              (unsigned long)dfar);
    tk_printf("  IFSR 0x%08lx (%s)  IFAR 0x%08lx\n", (unsigned long)ifsr, fsr_meaning(ifsr),
              (unsigned long)ifar);
    tk_exit(TK_EXIT_FAULT);
}

void tk_exit(int status)
{
    /* Semihosting SYS_EXIT_EXTENDED: QEMU exits with `status`. On silicon without a debugger the
     * SVC handler returns, and the line below tells the host the run is over. */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("svc 0x123456" : "+r"(r0) : "r"(r1) : "memory", "lr");
    tk_printf("\ntk: exit %d\n", status);
    for (;;)
        __asm__ volatile("wfi");
}
