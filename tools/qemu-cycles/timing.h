/* The cores' timing models: cycles per decoded instruction (thumb.h) at translation time, and the
 * branch costs the plugin adds at execution, once it knows where the flow went. */
#ifndef TK_TIMING_H
#define TK_TIMING_H

#include <stddef.h>
#include <stdint.h>

#include "thumb.h"

/* SDIV/UDIV: the plugin cannot see operand values (see m4.c), so a divide costs a fixed estimate. */
#define M4_DIV_ESTIMATE 7 /* the middle of the Cortex-M4 TRM's 2-12 */
#define M7_DIV_ESTIMATE 7 /* assumed the same: no public Cortex-M7 figure (m7.c) */

/* Cortex-M4 (m4.c): the cycles of `in` after `prev` (NULL at a block's start). */
unsigned m4_cost(const struct insn *in, const struct insn *prev, unsigned div_cycles);
/* P, the Cortex-M4 pipeline refill after a taken branch to `target` at `target_addr`; `indirect`:
 * the target came from a register or memory. */
unsigned m4_refill(const struct insn *target, uint64_t target_addr, int indirect);

/* Cortex-M7 (m7.c): the cycles each of a block's `n` instructions adds (`cost[i]`, 0 for the
 * second of a dual-issued pair), issued in order from an empty pipeline. */
void m7_block_cost(const struct insn *in, size_t n, unsigned div_cycles, unsigned *cost);
/* The cycles a block-ending branch adds once its outcome is known: `conditional`, `indirect`
 * (target from a register or memory), `taken`, `backward` (the target is below the branch);
 * `history` is the branch's last outcome (-1: never seen), updated. */
unsigned m7_branch_penalty(int conditional, int indirect, int taken, int backward, int8_t *history);

#endif
