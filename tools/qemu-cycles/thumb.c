/* Thumb-2 decoding for timing (see thumb.h). Encodings from the ARMv7-M ARM (DDI 0403), A5.2
 * (16-bit) and A5.3 (32-bit); register fields are only as exact as the timing rules need. */
#include <string.h>

#include "thumb.h"

#define BIT(n) ((uint16_t)(1u << (n)))
#define PC 15
#define LR 14
#define SP 13

static uint16_t reg(unsigned r) { return r == PC ? 0 : BIT(r); } /* PC is not a data dependency */

static void load_store(struct insn *in, int load, unsigned rt, unsigned rn)
{
    in->cls = load ? IC_LOAD : IC_STORE;
    in->addr |= reg(rn);
    if (load) {
        in->dst |= reg(rt);
        in->writes_pc = rt == PC;
    } else {
        in->src |= reg(rt);
    }
    in->src |= in->addr;
    if (in->writeback)
        in->dst |= reg(rn);
}

static void decode16(uint16_t hw, struct insn *in)
{
    unsigned lo3 = hw & 7, mid3 = (hw >> 3) & 7, top3 = (hw >> 8) & 7;
    in->cls = IC_ALU;
    if ((hw >> 11) < 3) { /* LSL, LSR, ASR (immediate) */
        in->dst = BIT(lo3);
        in->src = BIT(mid3);
    } else if ((hw >> 11) == 3) { /* ADD, SUB (register or 3-bit immediate) */
        in->dst = BIT(lo3);
        in->src = BIT(mid3) | ((hw & 0x0400) ? 0 : BIT((hw >> 6) & 7)); /* bit 10: immediate */
    } else if ((hw >> 13) == 1) { /* MOV, CMP, ADD, SUB (8-bit immediate) */
        unsigned op = (hw >> 11) & 3;
        in->dst = op == 1 ? 0 : BIT(top3);
        in->src = op == 0 ? 0 : BIT(top3);
    } else if ((hw >> 10) == 0x10) { /* data processing (register) */
        unsigned op = (hw >> 6) & 0xF;
        in->cls = op == 0xD ? IC_MUL : IC_ALU;
        in->src = BIT(lo3) | BIT(mid3);
        in->dst = (op == 8 || op == 0xA || op == 0xB) ? 0 : BIT(lo3); /* TST, CMP, CMN */
        if (op == 0xF || op == 9) /* MVN, RSB #0 */
            in->src = BIT(mid3);
    } else if ((hw >> 10) == 0x11) { /* special data processing, BX, BLX */
        unsigned op = (hw >> 8) & 3, rd = lo3 | ((hw >> 4) & 8), rm = (hw >> 3) & 0xF;
        if (op == 3) {
            in->cls = IC_BRANCH_REG;
            in->writes_pc = 1;
            in->src = reg(rm);
            in->dst = (hw & 0x80) ? BIT(LR) : 0;
        } else {
            in->src = reg(rm) | (op == 2 ? 0 : reg(rd));
            in->dst = op == 1 ? 0 : reg(rd);
            in->writes_pc = op != 1 && rd == PC;
        }
    } else if ((hw >> 11) == 9) { /* LDR (literal) */
        load_store(in, 1, top3, PC);
    } else if ((hw >> 12) == 5) { /* load/store (register offset) */
        unsigned op = (hw >> 9) & 7;
        in->reg_offset = 1;
        in->addr = BIT((hw >> 6) & 7);
        load_store(in, op >= 3, lo3, mid3);
    } else if ((hw >> 13) == 3 || (hw >> 12) == 8) { /* LDR/STR(B) and LDRH/STRH (immediate) */
        load_store(in, (hw >> 11) & 1, lo3, mid3);
    } else if ((hw >> 12) == 9) { /* LDR/STR (SP-relative) */
        load_store(in, (hw >> 11) & 1, top3, SP);
    } else if ((hw >> 12) == 0xA) { /* ADR, ADD (SP plus immediate) */
        in->dst = BIT(top3);
        in->src = (hw & 0x0800) ? BIT(SP) : 0;
    } else if ((hw >> 12) == 0xB) { /* miscellaneous */
        if ((hw & 0xF500) == 0xB100) { /* CBZ, CBNZ */
            in->cls = IC_BRANCH;
            in->conditional = in->writes_pc = 1;
            in->src = BIT(lo3);
        } else if ((hw & 0xFE00) == 0xB400 || (hw & 0xFE00) == 0xBC00) { /* PUSH, POP */
            int pop = (hw & 0x0800) != 0;
            uint16_t list = (hw & 0xFF) | ((hw & 0x100) ? (pop ? 0x8000 : BIT(LR)) : 0);
            in->cls = pop ? IC_LOAD_MULTI : IC_STORE_MULTI;
            in->nregs = (uint8_t)__builtin_popcount(list);
            in->addr = BIT(SP);
            in->dst = BIT(SP) | (pop ? (list & 0x7FFF) : 0);
            in->src = BIT(SP) | (pop ? 0 : list);
            in->writes_pc = pop && (list & 0x8000);
            in->writeback = 1;
        } else if ((hw & 0xFF00) == 0xBF00) {
            in->cls = (hw & 0xF) ? IC_IT : IC_NOP;
        } else if ((hw & 0xFF00) == 0xBE00 || (hw & 0xFFE8) == 0xB660) { /* BKPT, CPS */
            in->cls = IC_SYSTEM;
        } else if ((hw & 0xFF00) == 0xB000) { /* ADD, SUB SP, #imm */
            in->dst = in->src = BIT(SP);
        } else { /* SXTH, SXTB, UXTH, UXTB, REV, REV16, REVSH */
            in->dst = BIT(lo3);
            in->src = BIT(mid3);
        }
    } else if ((hw >> 12) == 0xC) { /* STM, LDM */
        int load = (hw >> 11) & 1;
        in->cls = load ? IC_LOAD_MULTI : IC_STORE_MULTI;
        in->nregs = (uint8_t)__builtin_popcount(hw & 0xFF);
        in->addr = BIT(top3);
        in->src = BIT(top3) | (load ? 0 : (hw & 0xFF));
        in->dst = load ? (hw & 0xFF) : 0;
        in->writeback = !load || !(hw & BIT(top3));
        if (in->writeback)
            in->dst |= BIT(top3);
    } else if ((hw >> 12) == 0xD) { /* B<cc>, UDF, SVC */
        unsigned cond = (hw >> 8) & 0xF;
        if (cond >= 0xE) {
            in->cls = IC_SYSTEM;
        } else {
            in->cls = IC_BRANCH;
            in->conditional = in->writes_pc = 1;
            in->backward = (hw >> 7) & 1;
        }
    } else if ((hw >> 11) == 0x1C) { /* B */
        in->cls = IC_BRANCH;
        in->writes_pc = 1;
        in->backward = (hw >> 10) & 1;
    } else {
        in->cls = IC_OTHER;
    }
}

static void decode_fp(uint16_t hw1, uint16_t hw2, struct insn *in)
{
    unsigned coproc = (hw2 >> 8) & 0xF, rn = hw1 & 0xF, rt = hw2 >> 12;
    in->cls = IC_OTHER;
    if (coproc != 10 && coproc != 11)
        return;
    in->wide = coproc == 11;
    if ((hw1 & 0x0E00) == 0x0C00) {
        if ((hw1 & 0x01A0) == 0x0000 && (hw1 & 0x0040)) { /* VMOV two core registers <-> FP */
            in->cls = IC_FP_MOVE;
            in->wide = 1;
            unsigned rt2 = hw1 & 0xF;
            if (hw1 & 0x10)
                in->dst = reg(rt) | reg(rt2);
            else
                in->src = reg(rt) | reg(rt2);
            return;
        }
        int load = (hw1 >> 4) & 1, p = (hw1 >> 8) & 1, w = (hw1 >> 5) & 1;
        in->addr = reg(rn);
        in->src = reg(rn);
        if (p && !w) { /* VLDR, VSTR */
            in->cls = load ? IC_FP_LOAD : IC_FP_STORE;
            in->nregs = in->wide ? 2 : 1;
        } else { /* VLDM, VSTM, VPUSH, VPOP: imm8 counts words */
            in->cls = load ? IC_FP_LOAD_MULTI : IC_FP_STORE_MULTI;
            in->nregs = (uint8_t)(hw2 & 0xFF);
            in->writeback = w;
            if (w)
                in->dst = reg(rn);
        }
    } else if ((hw1 & 0x0F00) == 0x0E00) {
        if (hw2 & 0x10) { /* VMOV core <-> single, VMRS, VMSR */
            in->cls = IC_FP_MOVE;
            if (hw1 & 0x10)
                in->dst = reg(rt);
            else
                in->src = reg(rt);
            return;
        }
        unsigned opc1 = (hw1 >> 4) & 0xB, opc2 = hw1 & 0xF;
        if (opc1 == 0x8 || (opc1 == 0xB && opc2 == 1 && (hw2 & 0xC0) == 0xC0))
            in->cls = IC_FP_SLOW; /* VDIV, VSQRT */
        else if (opc1 == 0x0 || opc1 == 0x1 || opc1 == 0x9 || opc1 == 0xA)
            in->cls = IC_FP_MAC;
        else
            in->cls = IC_FP;
    }
}

static void decode32(uint16_t hw1, uint16_t hw2, struct insn *in)
{
    unsigned op1 = (hw1 >> 11) & 3, op2 = (hw1 >> 4) & 0x7F;
    unsigned rn = hw1 & 0xF, rd = (hw2 >> 8) & 0xF, rm = hw2 & 0xF, rt = hw2 >> 12;
    in->cls = IC_ALU;
    if (op1 == 1) {
        if ((op2 & 0x64) == 0x00) { /* LDM, STM (and PUSH/POP.W) */
            int load = (hw1 >> 4) & 1;
            in->cls = load ? IC_LOAD_MULTI : IC_STORE_MULTI;
            in->nregs = (uint8_t)__builtin_popcount(hw2);
            in->writeback = (hw1 >> 5) & 1;
            in->addr = reg(rn);
            in->src = reg(rn) | (load ? 0 : hw2);
            in->dst = (load ? (hw2 & 0x7FFF) : 0) | (in->writeback ? reg(rn) : 0);
            in->writes_pc = load && (hw2 & 0x8000);
        } else if ((op2 & 0x64) == 0x04) { /* load/store dual or exclusive, table branch */
            unsigned o1 = (hw1 >> 7) & 3, o2 = (hw1 >> 4) & 3;
            if (o1 == 0 && o2 < 2) { /* STREX, LDREX */
                load_store(in, o2 == 1, rt, rn);
                if (o2 == 0)
                    in->dst |= reg(rd);
            } else if (o1 == 1 && o2 == 1 && ((hw2 >> 4) & 0xE) == 0) { /* TBB, TBH */
                in->cls = IC_TABLE_BRANCH;
                in->writes_pc = 1;
                in->src = in->addr = reg(rn) | reg(rm);
            } else if (o1 == 1 && o2 < 2) { /* STREXB/H, LDREXB/H */
                load_store(in, o2 & 1, rt, rn);
            } else { /* STRD, LDRD */
                int load = o2 & 1;
                in->writeback = (hw1 >> 5) & 1;
                load_store(in, load, rt, rn);
                in->cls = load ? IC_LOAD_DUAL : IC_STORE_DUAL;
                if (load)
                    in->dst |= reg(rd);
                else
                    in->src |= reg(rd);
            }
        } else if ((op2 & 0x60) == 0x20) { /* data processing (shifted register) */
            in->src = reg(rn) | reg(rm);
            in->dst = reg(rd);
        } else {
            decode_fp(hw1, hw2, in);
        }
    } else if (op1 == 2) {
        if (!(hw2 & 0x8000)) { /* data processing (immediate) */
            in->src = reg(rn);
            in->dst = reg(rd);
            if ((hw1 & 0x0300) == 0x0200 && (op2 & 0x1F) == 0x0C) /* MOVT keeps the low half */
                in->src = reg(rd);
        } else {
            unsigned o1 = (hw2 >> 12) & 7;
            if ((o1 & 5) == 0) {
                if (((hw1 >> 7) & 7) != 7) { /* B<cc>.W */
                    in->cls = IC_BRANCH;
                    in->conditional = in->writes_pc = 1;
                    in->backward = (hw1 >> 10) & 1;
                } else if ((hw1 & 0xFFF0) == 0xF3B0) {
                    in->cls = IC_BARRIER;
                } else if ((hw1 & 0xFFF0) == 0xF3A0) {
                    in->cls = IC_NOP;
                } else if ((hw1 & 0xFFE0) == 0xF3E0) { /* MRS */
                    in->dst = reg(rd);
                } else {
                    in->cls = IC_SYSTEM; /* MSR, UDF.W */
                    in->src = reg(rn);
                }
            } else if ((o1 & 5) == 1 || (o1 & 5) == 5) { /* B.W, BL */
                in->cls = IC_BRANCH;
                in->writes_pc = 1;
                in->backward = (hw1 >> 10) & 1;
                in->dst = (o1 & 4) ? BIT(LR) : 0;
            } else {
                in->cls = IC_OTHER;
            }
        }
    } else if ((op2 & 0x71) == 0x00) { /* store single */
        in->reg_offset = !(hw1 & 0x80) && (hw2 & 0x0FC0) == 0;
        in->writeback = !(hw1 & 0x80) && (hw2 & 0x0800) && (hw2 & 0x0100);
        if (in->reg_offset)
            in->addr = reg(rm);
        load_store(in, 0, rt, rn);
    } else if ((op2 & 0x61) == 0x01 && (op2 & 6) != 6) { /* loads: byte, halfword, word */
        if (rt == PC && (op2 & 6) != 4) {
            in->cls = IC_NOP; /* PLD, PLI */
            return;
        }
        in->reg_offset = rn != PC && !(hw1 & 0x80) && (hw2 & 0x0FC0) == 0;
        in->writeback = rn != PC && !(hw1 & 0x80) && (hw2 & 0x0800) && (hw2 & 0x0100);
        if (in->reg_offset)
            in->addr = reg(rm);
        load_store(in, 1, rt, rn);
    } else if ((op2 & 0x70) == 0x20) { /* data processing (register): shifts, extends, SIMD add, CLZ */
        in->src = reg(rn) | reg(rm);
        in->dst = reg(rd);
    } else if ((op2 & 0x78) == 0x30) { /* multiply, multiply accumulate, absolute difference */
        in->cls = IC_MUL;
        in->acc = reg(rt); /* Ra; 15: none */
        in->src = reg(rn) | reg(rm) | in->acc;
        in->dst = reg(rd);
    } else if ((op2 & 0x78) == 0x38) { /* long multiply, long MAC, divide */
        unsigned o1 = (hw1 >> 4) & 7, o2 = (hw2 >> 4) & 0xF;
        in->src = reg(rn) | reg(rm);
        if ((o1 == 1 || o1 == 3) && o2 == 0xF) {
            in->cls = IC_DIV;
            in->dst = reg(rd);
        } else {
            in->cls = IC_MUL_LONG;
            in->dst = reg(rt) | reg(rd);
            if (o1 >= 4) { /* accumulating forms read RdLo, RdHi */
                in->acc = in->dst;
                in->src |= in->dst;
            }
        }
    } else if (op2 & 0x40) {
        decode_fp(hw1, hw2, in);
    } else {
        in->cls = IC_OTHER;
    }
}

void thumb_decode(const uint8_t *bytes, size_t size, struct insn *out)
{
    memset(out, 0, sizeof *out);
    uint16_t hw1 = (uint16_t)(bytes[0] | bytes[1] << 8);
    out->size = (uint8_t)size;
    if (size >= 4)
        decode32(hw1, (uint16_t)(bytes[2] | bytes[3] << 8), out);
    else
        decode16(hw1, out);
}
