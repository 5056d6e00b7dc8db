/* Cortex-M start-up shared by every M-profile board: the vector table, the reset handler (FPU,
 * .data/.nn_weights copy, .bss clear, caches on the M7), the fault report and tk_exit.
 *
 * Made by tinykiln/boards.py: TK_M7_CACHES (core cortex-m7: enable the I/D caches), TK_EXIT_SEMIHOSTING
 * (a board with an [emulator]: end runs with a semihosting exit; on hardware a breakpoint loop). */
#include <stdint.h>
#include <string.h>

#include "tk_board.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_ICSR REG(0xE000ED04)
#define SCB_VTOR REG(0xE000ED08)
#define SCB_CCR REG(0xE000ED14)
#define SCB_SHCSR REG(0xE000ED24)
#define SCB_CFSR REG(0xE000ED28)
#define SCB_HFSR REG(0xE000ED2C)
#define SCB_MMFAR REG(0xE000ED34)
#define SCB_BFAR REG(0xE000ED38)
#define SCB_CPACR REG(0xE000ED88)
#define DHCSR REG(0xE000EDF0)

/* Linker-script symbols (boards/common/cortex-m/sections.ld). */
extern uint32_t __stack_top[];
extern uint8_t __data_start[], __data_end[], __data_load[];
extern uint8_t __nn_weights_start[], __nn_weights_end[], __nn_weights_load[];
extern uint8_t __bss_start[], __bss_end[];

void tk_reset_handler(void);
void tk_fault_entry(void);
void tk_default_handler(void);
void tk_systick_handler(void) __attribute__((weak, alias("tk_default_handler")));

/* Only the 16 system exceptions: no peripheral interrupt is ever enabled. */
__attribute__((section(".isr_vector"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))__stack_top,
    tk_reset_handler,
    tk_fault_entry, /* NMI */
    tk_fault_entry, /* HardFault */
    tk_fault_entry, /* MemManage */
    tk_fault_entry, /* BusFault */
    tk_fault_entry, /* UsageFault */
    0, 0, 0, 0,
    tk_default_handler, /* SVCall */
    tk_default_handler, /* DebugMonitor */
    0,
    tk_default_handler, /* PendSV */
    tk_systick_handler,
};

#if defined(TK_M7_CACHES)
#define SCB_CCSIDR REG(0xE000ED80)
#define SCB_CSSELR REG(0xE000ED84)
#define SCB_ICIALLU REG(0xE000EF50)
#define SCB_DCISW REG(0xE000EF60)

static void enable_caches(void)
{
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    SCB_ICIALLU = 0;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    SCB_CCR |= 1u << 17; /* IC */
    /* Invalidate the data cache by set/way, then enable it (ARMv7-M ARM, B2.2.7). */
    SCB_CSSELR = 0; /* level 1 data cache */
    __asm__ volatile("dsb" ::: "memory");
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFF) + 1;
    uint32_t ways = ((ccsidr >> 3) & 0x3FF) + 1;
    for (uint32_t set = 0; set < sets; set++)
        for (uint32_t way = 0; way < ways; way++)
            SCB_DCISW = (way << 30) | (set << 5); /* M7: 4 ways, 32-byte lines */
    __asm__ volatile("dsb" ::: "memory");
    SCB_CCR |= 1u << 16; /* DC */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
}
#endif

__attribute__((noreturn, used)) static void reset_c(void)
{
    /* Copy what is stored in one region and runs from another (LMA != VMA in the linker script). */
    if ((uintptr_t)__data_load != (uintptr_t)__data_start)
        memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
    if ((uintptr_t)__nn_weights_load != (uintptr_t)__nn_weights_start)
        memcpy(__nn_weights_start, __nn_weights_load, (size_t)(__nn_weights_end - __nn_weights_start));
    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    SCB_VTOR = (uint32_t)(uintptr_t)vector_table;
    /* Report faults as what they are instead of escalating them to HardFault; trap division by 0. */
    SCB_SHCSR |= (1u << 16) | (1u << 17) | (1u << 18);
    SCB_CCR |= 1u << 4;
#if defined(TK_M7_CACHES)
    enable_caches();
#endif
    tk_board_init();
    tk_exit(app_main());
}

/* The FPU must be on before any compiled C runs: the compiler may use FP registers anywhere. */
__attribute__((naked)) void tk_reset_handler(void)
{
    __asm__ volatile(
#if defined(__ARM_FP)
        "ldr r0, =0xE000ED88\n\t" /* CPACR: full access to CP10 and CP11 */
        "ldr r1, [r0]\n\t"
        "orr r1, r1, #(0xF << 20)\n\t"
        "str r1, [r0]\n\t"
        "dsb\n\t"
        "isb\n\t"
#endif
        "ldr r0, =__stack_top\n\t"
        "mov sp, r0\n\t"
        "b reset_c\n\t");
}

void tk_default_handler(void)
{
    tk_printf("\n*** unexpected exception %lu\n", (unsigned long)(SCB_ICSR & 0x1FF));
    tk_exit(TK_EXIT_FAULT);
}

static const char *const cfsr_bits[32] = {
    [0] = "IACCVIOL: instruction access violation", [1] = "DACCVIOL: data access violation",
    [3] = "MUNSTKERR: MemManage on exception return", [4] = "MSTKERR: MemManage on exception entry",
    [5] = "MLSPERR: MemManage in lazy FP state save", [7] = "MMARVALID: MMFAR holds the address",
    [8] = "IBUSERR: instruction bus error", [9] = "PRECISERR: precise data bus error",
    [10] = "IMPRECISERR: imprecise data bus error", [11] = "UNSTKERR: BusFault on exception return",
    [12] = "STKERR: BusFault on exception entry", [13] = "LSPERR: BusFault in lazy FP state save",
    [15] = "BFARVALID: BFAR holds the address", [16] = "UNDEFINSTR: undefined instruction",
    [17] = "INVSTATE: invalid state (Thumb bit clear?)", [18] = "INVPC: invalid EXC_RETURN",
    [19] = "NOCP: coprocessor access (FPU disabled?)", [24] = "UNALIGNED: unaligned access",
    [25] = "DIVBYZERO: division by zero",
};

/* Called by tk_fault_entry with the stacked registers {r0-r3, r12, lr, pc, xpsr}. */
__attribute__((noreturn, used)) static void fault_report(const uint32_t *frame, uint32_t exc_return)
{
    static const char *const kinds[] = {"", "", "NMI", "HardFault", "MemManage", "BusFault", "UsageFault"};
    uint32_t exc = SCB_ICSR & 0x1FF;
    uint32_t cfsr = SCB_CFSR, hfsr = SCB_HFSR;
    tk_printf("\n*** FAULT: %s (exception %lu)\n", exc < 7 ? kinds[exc] : "?", (unsigned long)exc);
    tk_printf("  PC   0x%08lx  LR   0x%08lx  xPSR 0x%08lx  EXC_RETURN 0x%08lx\n",
              (unsigned long)frame[6], (unsigned long)frame[5], (unsigned long)frame[7],
              (unsigned long)exc_return);
    tk_printf("  R0   0x%08lx  R1   0x%08lx  R2   0x%08lx  R3   0x%08lx  R12 0x%08lx\n",
              (unsigned long)frame[0], (unsigned long)frame[1], (unsigned long)frame[2],
              (unsigned long)frame[3], (unsigned long)frame[4]);
    tk_printf("  CFSR 0x%08lx  HFSR 0x%08lx  MMFAR 0x%08lx  BFAR 0x%08lx\n", (unsigned long)cfsr,
              (unsigned long)hfsr, (unsigned long)SCB_MMFAR, (unsigned long)SCB_BFAR);
    for (int bit = 0; bit < 32; bit++)
        if ((cfsr >> bit) & 1u && cfsr_bits[bit])
            tk_printf("  CFSR.%s\n", cfsr_bits[bit]);
    if (hfsr & (1u << 30))
        tk_printf("  HFSR.FORCED: a configurable fault escalated to HardFault\n");
    if (hfsr & (1u << 1))
        tk_printf("  HFSR.VECTTBL: bus fault on a vector table read\n");
    tk_exit(TK_EXIT_FAULT);
}

/* Finds the exception frame (MSP or PSP, by EXC_RETURN bit 2) and reports it. */
__attribute__((naked)) void tk_fault_entry(void)
{
    __asm__ volatile(
        "tst lr, #4\n\t"
        "ite eq\n\t"
        "mrseq r0, msp\n\t"
        "mrsne r0, psp\n\t"
        "mov r1, lr\n\t"
        "b fault_report\n\t");
}

void tk_exit(int status)
{
#if defined(TK_EXIT_SEMIHOSTING)
    /* SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit: QEMU exits with `status`. */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
#else
    /* Hardware: say so on the console (host tools watch for this line), then stop in a breakpoint
     * when a debugger is attached, else sleep. A bkpt without a debugger would be a HardFault. */
    tk_printf("\ntk: exit %d\n", status);
    if (DHCSR & 1u)
        __asm__ volatile("bkpt 0" ::: "memory");
#endif
    for (;;)
        __asm__ volatile("wfi");
}
