/* Cortex-M4 instruction timing: the Cortex-M4 Technical Reference Manual (ARM DDI 0439), section 3.3
 * "Instruction set summary", Table 3-1 (zero wait states) and the load/store timing notes under it,
 * and Table 7-1 (FPU instructions).
 *
 * What the table states and this charges exactly: ALU 1, MUL/MLA/MLS 1, SMULL/UMULL/SMLAL/UMLAL 1,
 * the DSP MACs 1, LDR 2, LDRD/STRD 1+2, LDM/STM/PUSH/POP 1+N, STR with an immediate offset 1 ("always
 * one cycle"), a load pipelined after a load 1 (the "LDR [any] are pipelined when possible" note:
 * the next LDR or non-base-updating STR whose address does not depend on the first), a branch 1 (+P
 * when taken), TBB/TBH 2+P, VFP 1, VMLA/VFMA 3, VDIV/VSQRT 14, VLDR 2, VLDM 1+N.
 *
 * What the table leaves open, and this chooses:
 *   - P, the pipeline refill after a taken branch, "1 to 3 depending on the alignment and width of
 *     the target instruction, and whether the processor manages to speculate the address early":
 *     charged by the plugin when the next block starts (see plugin.c): 1, plus 1 for a 32-bit
 *     target at a halfword (not word) address, plus 1 when the target came from a register or
 *     memory (BX, POP/LDR/LDM to PC, TBB: no early speculation).
 *   - SDIV/UDIV, "2 to 12 cycles depending on the operand values": the plugin cannot read
 *     registers (QEMU 7.2's plugin API has no register access, and its memory callbacks give
 *     addresses, not values), so a divide is charged a fixed estimate (`div`, default the range's
 *     middle, 7); the plugin counts the divides so the error bound (+-5 each) is known.
 *   - LDR PC: "at least four cycles": 3 + P.
 *   - IT folding onto a preceding 16-bit instruction (0 cycles) is not modelled: IT costs 1.
 *   - Skipped instructions of an IT block are charged as if executed.
 *   - Barriers (B = 0 minimum), exceptions and interrupt entry (12 cycles) are not charged. */
#include "timing.h"

static int is_load_single(const struct insn *in) { return in && in->cls == IC_LOAD && !in->writes_pc; }

/* Whether `in` pipelines behind the load `prev`: its address does not use what prev loaded. */
static int pipelines_after(const struct insn *in, const struct insn *prev)
{
    return is_load_single(prev) && !(in->addr & prev->dst);
}

unsigned m4_cost(const struct insn *in, const struct insn *prev, unsigned div_cycles)
{
    switch (in->cls) {
    case IC_DIV:
        return div_cycles;
    case IC_LOAD:
        if (in->writes_pc)
            return 3;
        return pipelines_after(in, prev) ? 1 : 2;
    case IC_STORE:
        if (!in->reg_offset)
            return 1;
        return pipelines_after(in, prev) && !in->writeback ? 1 : 2;
    case IC_LOAD_DUAL:
    case IC_STORE_DUAL:
        return 3;
    case IC_LOAD_MULTI:
    case IC_STORE_MULTI:
    case IC_FP_LOAD_MULTI:
    case IC_FP_STORE_MULTI:
        return 1u + in->nregs;
    case IC_TABLE_BRANCH:
        return 2;
    case IC_FP_MAC:
        return 3;
    case IC_FP_SLOW:
        return 14;
    case IC_FP_LOAD:
    case IC_FP_STORE:
        return 1u + in->nregs;
    case IC_FP_MOVE:
        return in->wide ? 2 : 1;
    default:
        return 1;
    }
}

/* P: the refill cycles of a taken branch to `target` (see the comment at the top). */
unsigned m4_refill(const struct insn *target, uint64_t target_addr, int indirect)
{
    unsigned p = 1;
    if (target->size == 4 && (target_addr & 2))
        p++;
    if (indirect)
        p++;
    return p;
}
