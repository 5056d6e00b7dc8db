/* Cortex-M7: an approximate model of its in-order dual-issue pipeline. There is no public
 * instruction timing table for the Cortex-M7; this model takes its structure from public sources
 * and says where it guesses:
 *   - Arm Cortex-M7 Processor Technical Reference Manual (ARM DDI 0489), chapter 1 / 2 "Functional
 *     description": a six-stage in-order superscalar pipeline that can dual-issue, including
 *     load/load and load/store pairs, a 64-bit load path (LDRD and two registers of an LDM per
 *     cycle), one MAC pipeline, and a branch target address cache (BTAC) predicting branches;
 *   - LLVM's Cortex-M7 scheduling model (llvm/lib/Target/ARM/ARMScheduleM7.td): issue width 2,
 *     in order; loads with a two-cycle result latency, multiplies two;
 *   - GCC's Cortex-M7 pipeline description (gcc/config/arm/cortex-m7.md): which instruction
 *     classes share a pipeline (one load/store unit pair, one MAC, one divider, one FPU issue).
 *
 * The rules charged here (each block starts with an empty pipeline; dependences across blocks are
 * not seen):
 *   - two instructions issue in the same cycle when the second does not read what the first
 *     writes and they do not both need the one MAC, divider, branch or FP-pipe slot; LDM/STM,
 *     PUSH/POP, VLDM/VSTM, divides, barriers and system instructions issue alone;
 *   - a value is ready 1 cycle after an ALU instruction, 2 after a load or multiply (so a
 *     load-use pair costs one stall cycle), except that a multiply-accumulate reads its
 *     accumulator one cycle late (assumed: so that, as on the M4, a chain of MACs into one
 *     accumulator issues one per cycle);
 *   - LDM/STM/PUSH/POP move two registers per cycle (1 + ceil(N/2)), LDRD/STRD one cycle;
 *   - SDIV/UDIV: a fixed estimate (see timing.h), VDIV/VSQRT 14 (single precision, as the M4),
 *     FP MAC 3 (assumed as the M4's fused ops);
 *   - branches: direct unconditional branches are predicted (free beyond their issue slot);
 *     a conditional branch is predicted to do what it did last time (first time: backward taken,
 *     forward not taken) and a misprediction costs M7_MISPREDICT cycles; register/memory targets
 *     (BX LR, POP {PC}) are assumed unpredicted (M7_MISPREDICT): an assumption, the TRM does not
 *     say whether the M7 has a return stack.
 * Expect it to be off by tens of percent on a given loop; it ranks code the way the M7 does far
 * better than an instruction count when code leans on pairing, loads and LDM. */
#include "timing.h"

#define M7_MISPREDICT 5 /* assumed: a six-stage pipeline resolving branches in its first execute stage */

enum slot { SLOT_NONE, SLOT_MAC, SLOT_DIV, SLOT_BRANCH, SLOT_FP, SLOT_ALONE };

static enum slot slot_of(const struct insn *in)
{
    switch (in->cls) {
    case IC_MUL:
    case IC_MUL_LONG:
        return SLOT_MAC;
    case IC_DIV:
    case IC_LOAD_MULTI:
    case IC_STORE_MULTI:
    case IC_FP_LOAD_MULTI:
    case IC_FP_STORE_MULTI:
    case IC_BARRIER:
    case IC_SYSTEM:
    case IC_FP_SLOW:
        return SLOT_ALONE;
    case IC_BRANCH:
    case IC_BRANCH_REG:
    case IC_TABLE_BRANCH:
        return SLOT_BRANCH;
    case IC_FP:
    case IC_FP_MAC:
        return SLOT_FP;
    default:
        return in->writes_pc ? SLOT_BRANCH : SLOT_NONE;
    }
}

/* Cycles the instruction occupies its issue slot (1 for all but the multi-cycle ones). */
static unsigned occupancy(const struct insn *in, unsigned div_cycles)
{
    switch (in->cls) {
    case IC_DIV:
        return div_cycles;
    case IC_LOAD_MULTI:
    case IC_STORE_MULTI:
    case IC_FP_LOAD_MULTI:
    case IC_FP_STORE_MULTI:
        return 1u + (in->nregs + 1u) / 2u;
    case IC_FP_SLOW:
        return 14;
    case IC_TABLE_BRANCH:
        return 2;
    default:
        return 1;
    }
}

static unsigned latency(const struct insn *in)
{
    switch (in->cls) {
    case IC_LOAD:
    case IC_LOAD_DUAL:
    case IC_LOAD_MULTI:
    case IC_MUL:
    case IC_MUL_LONG:
    case IC_FP_MOVE:
        return 2;
    case IC_FP_MAC:
        return 3;
    default:
        return 1;
    }
}

void m7_block_cost(const struct insn *in, size_t n, unsigned div_cycles, unsigned *cost)
{
    unsigned ready[16] = {0}; /* the cycle each core register's value is ready */
    unsigned cycle = 0;       /* the cycle the last instruction issued in */
    int pair_open = 0;        /* that cycle has a free second issue slot */
    enum slot pair_slot = SLOT_NONE;
    uint16_t pair_dst = 0;
    unsigned busy_until = 0;  /* a multi-cycle instruction holds the issue stage until then */
    unsigned end = 0;         /* the cycle after the last issue: the block's length so far */
    for (size_t i = 0; i < n; i++) {
        const struct insn *x = &in[i];
        unsigned need = busy_until;
        for (unsigned r = 0; r < 16; r++) {
            /* a MAC reads its accumulator a cycle late: a chain of MACs issues one per cycle */
            unsigned at_r = (x->acc & (1u << r)) && ready[r] > 0 ? ready[r] - 1 : ready[r];
            if ((x->src & (1u << r)) && at_r > need)
                need = at_r;
        }
        enum slot s = slot_of(x);
        unsigned at;
        if (pair_open && need <= cycle && s != SLOT_ALONE && (s == SLOT_NONE || s != pair_slot) &&
            !(x->src & pair_dst) && !(x->dst & pair_dst)) {
            at = cycle; /* dual-issued with the one before */
            pair_open = 0;
        } else {
            at = i == 0 ? need : (need > cycle + 1 ? need : cycle + 1);
            pair_open = s != SLOT_ALONE;
            pair_slot = s;
            pair_dst = x->dst;
        }
        unsigned occ = occupancy(x, div_cycles);
        if (occ > 1) {
            busy_until = at + occ;
            pair_open = 0;
        }
        for (unsigned r = 0; r < 16; r++)
            if (x->dst & (1u << r))
                ready[r] = at + (occ > 1 && x->cls == IC_DIV ? occ : latency(x));
        cycle = at;
        unsigned new_end = at + occ;
        cost[i] = new_end > end ? new_end - end : 0;
        if (new_end > end)
            end = new_end;
    }
}

unsigned m7_branch_penalty(int conditional, int indirect, int taken, int backward, int8_t *history)
{
    if (indirect)
        return M7_MISPREDICT;
    if (!conditional)
        return 0;
    int predicted = *history < 0 ? backward : *history;
    *history = (int8_t)taken;
    return predicted == taken ? 0 : M7_MISPREDICT;
}
