/* Thumb / Thumb-2 (ARMv7E-M) instructions, decoded only as far as their timing needs: the class of
 * the instruction, its width, how many registers it moves, whether it changes the flow, and which
 * core registers it reads and writes (for load pipelining, load-use and pairing rules).
 * Encodings: ARMv7-M Architecture Reference Manual (ARM DDI 0403), chapter A5. */
#ifndef TK_THUMB_H
#define TK_THUMB_H

#include <stddef.h>
#include <stdint.h>

enum insn_class {
    IC_ALU,          /* data processing, moves, shifts, extends, saturation, bit fields, MRS */
    IC_MUL,          /* 32-bit result multiplies and MACs: MUL, MLA, MLS, SMLA<x><y>, SMLAD, SMMUL ... */
    IC_MUL_LONG,     /* 64-bit result: SMULL, UMULL, SMLAL, UMLAL, UMAAL, SMLALD ... */
    IC_DIV,          /* SDIV, UDIV */
    IC_LOAD,         /* one register from memory: LDR, LDRB, LDRH, LDRSB, LDRSH, LDREX */
    IC_STORE,        /* one register to memory */
    IC_LOAD_DUAL,    /* LDRD */
    IC_STORE_DUAL,   /* STRD */
    IC_LOAD_MULTI,   /* LDM, POP */
    IC_STORE_MULTI,  /* STM, PUSH */
    IC_BRANCH,       /* B, B<cc>, BL, CBZ, CBNZ: the target is in the instruction */
    IC_BRANCH_REG,   /* BX, BLX Rm: the target is in a register */
    IC_TABLE_BRANCH, /* TBB, TBH */
    IC_IT,
    IC_NOP,          /* NOP and the other hints */
    IC_BARRIER,      /* DMB, DSB, ISB */
    IC_SYSTEM,       /* MSR, CPS, SVC, BKPT, UDF */
    IC_FP,           /* single-cycle VFP data processing */
    IC_FP_MAC,       /* VMLA, VMLS, VNMLA, VNMLS, VFMA, VFMS, VFNMA, VFNMS */
    IC_FP_SLOW,      /* VDIV, VSQRT */
    IC_FP_LOAD,      /* VLDR */
    IC_FP_STORE,     /* VSTR */
    IC_FP_LOAD_MULTI,  /* VLDM, VPOP */
    IC_FP_STORE_MULTI, /* VSTM, VPUSH */
    IC_FP_MOVE,      /* VMOV between core and FP registers, VMRS, VMSR */
    IC_OTHER,        /* anything else (coprocessor, undefined): charged one cycle */
};

struct insn {
    enum insn_class cls;
    uint8_t size;        /* bytes: 2 or 4 */
    uint8_t nregs;       /* registers (words for FP) moved by a multiple load/store, PC included */
    uint8_t writes_pc;   /* the instruction may change the flow (any branch, LDR/POP/MOV to PC) */
    uint8_t conditional; /* B<cc>, CBZ, CBNZ: may fall through */
    uint8_t backward;    /* a direct branch to a lower address (negative offset) */
    uint8_t reg_offset;  /* load/store addressed by a register offset */
    uint8_t writeback;   /* load/store updating its base register */
    uint8_t wide;        /* FP: double precision (64-bit) transfer */
    uint16_t dst;        /* core registers written (mask, bit n = Rn) */
    uint16_t src;        /* core registers read */
    uint16_t addr;       /* core registers forming a load/store address */
    uint16_t acc;        /* the accumulator(s) a multiply-accumulate reads (part of src) */
};

/* Decodes the instruction at `bytes` (`size` bytes as QEMU translated it: 2 or 4). */
void thumb_decode(const uint8_t *bytes, size_t size, struct insn *out);

#endif
