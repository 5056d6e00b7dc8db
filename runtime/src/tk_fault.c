/* A deliberate fault, so tests can check that every board reports faults and ends the run with a
 * failure status (apps call it when built with their *_FAULT define). */
#include <stdint.h>

#include "tk_board.h"

void tk_fault_on_purpose(void)
{
#if defined(__arm__)
    /* A multiple load from an odd address is an alignment fault on every Arm core, whatever the
     * alignment-checking setting: a UsageFault on Cortex-M, a data abort on Cortex-A. */
    volatile uint32_t word[2] = {0, 0};
    uintptr_t odd = (uintptr_t)&word[0] + 1;
    __asm__ volatile("ldm %0, {r2, r3}" : : "r"(odd) : "r2", "r3", "memory");
#else
    volatile int *volatile bad = (volatile int *)(uintptr_t)8; /* unmapped on every host OS */
    *bad = 1;
#endif
}
