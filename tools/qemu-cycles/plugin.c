/* tk-cycles: a QEMU TCG plugin estimating the cycles a Cortex-M4 or Cortex-M7 would take for the
 * instructions QEMU executes (deterministic: the same firmware gives the same estimate every run).
 *
 *   qemu-system-arm ... -plugin tkcycles.so,core=m4,out=cycles.txt,mark=0x1235[,mark=...][,div=7]
 *
 * At translation time every instruction of a block is decoded (thumb.c) and the block is charged
 * its cycles on the core (m4.c: the Cortex-M4 TRM's table; m7.c: a dual-issue model); at execution
 * one callback per block adds them, plus the branch cost that only execution knows: whether the
 * block was entered by a taken branch (the previous block ended in a branch and this one does not
 * start where it falls through), charged as the M4's pipeline refill P or the M7 model's
 * misprediction penalty.
 *
 * The measuring window. The firmware measures with tk_cycles() (boards/common/cortex-m/cycles.c):
 * count = tk_cycles() - tk_cycles() around a run, and between layers when profiling. `mark` is
 * tk_cycles's address (from the ELF): each time the firmware enters it, the plugin writes the
 * running totals before that instruction as a line "mark <instructions> <cycles> <divides>" to
 * `out`, flushed at once. The difference of two consecutive marks is then the estimate for exactly
 * the window whose instruction count the firmware reports, and the instruction difference is that
 * count itself (to one SysTick tick), which the host checks. At exit: "total ..." likewise. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"
#include "timing.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum core { CORE_M4, CORE_M7 };

#define MAX_MARKS 8
#define MAX_BLOCK 512

struct block {
    uint64_t next;            /* the address after the block's last instruction: its fall-through */
    uint64_t start;
    uint32_t cycles, insns, divs;
    uint8_t branch_end;       /* the last instruction may change the flow */
    uint8_t indirect;         /* ... to an address from a register or memory */
    uint8_t conditional;      /* ... or fall through */
    uint8_t refill[2];        /* M4: P when entered by a taken direct [0] / indirect [1] branch */
    uint8_t backward;         /* ... to a lower address (a direct branch's encoded offset) */
    int8_t taken_before;      /* M7: the last outcome of the block's conditional branch (-1: none) */
};

struct mark {
    uint32_t cycles, insns, divs; /* the block's part from the marked instruction on */
};

static enum core core = CORE_M4;
static unsigned div_cycles;
static uint64_t marks[MAX_MARKS];
static int n_marks;
static FILE *out;

/* One vCPU (M-profile), so plain counters. */
static uint64_t cycles, insns, divs;
static struct block *last;

static void on_block(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    struct block *b = udata;
    if (last && last->branch_end) {
        int taken = b->start != last->next;
        if (core == CORE_M4)
            cycles += taken ? b->refill[last->indirect] : 0;
        else
            cycles += m7_branch_penalty(last->conditional, last->indirect, taken,
                                        last->backward, &last->taken_before);
    }
    cycles += b->cycles;
    insns += b->insns;
    divs += b->divs;
    last = b;
}

static void on_mark(unsigned int vcpu, void *udata)
{
    (void)vcpu;
    const struct mark *m = udata;
    fprintf(out, "mark %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", insns - m->insns, cycles - m->cycles,
            divs - m->divs);
    fflush(out);
}

static int is_mark(uint64_t addr)
{
    for (int i = 0; i < n_marks; i++)
        if (marks[i] == addr)
            return 1;
    return 0;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    if (n == 0)
        return;
    if (n > MAX_BLOCK)
        n = MAX_BLOCK;
    struct insn decoded[MAX_BLOCK];
    unsigned cost[MAX_BLOCK];
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        thumb_decode(qemu_plugin_insn_data(insn), qemu_plugin_insn_size(insn), &decoded[i]);
    }
    if (core == CORE_M4) {
        for (size_t i = 0; i < n; i++)
            cost[i] = m4_cost(&decoded[i], i ? &decoded[i - 1] : NULL, div_cycles);
    } else {
        m7_block_cost(decoded, n, div_cycles, cost);
    }

    struct block *b = calloc(1, sizeof *b);
    if (b == NULL)
        abort();
    struct qemu_plugin_insn *tail = qemu_plugin_tb_get_insn(tb, n - 1);
    b->start = qemu_plugin_tb_vaddr(tb);
    b->next = qemu_plugin_insn_vaddr(tail) + qemu_plugin_insn_size(tail);
    b->insns = (uint32_t)n;
    const struct insn *end = &decoded[n - 1];
    b->branch_end = end->writes_pc;
    b->conditional = end->conditional;
    b->backward = end->backward;
    b->indirect = end->writes_pc && end->cls != IC_BRANCH;
    b->taken_before = -1;
    b->refill[0] = (uint8_t)m4_refill(&decoded[0], b->start, 0);
    b->refill[1] = (uint8_t)m4_refill(&decoded[0], b->start, 1);
    for (size_t i = 0; i < n; i++) {
        b->cycles += cost[i];
        b->divs += decoded[i].cls == IC_DIV;
    }
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, b);

    /* A marked instruction: its record excludes its own part of the block, already added. */
    uint32_t c = 0, k = 0, d = 0;
    for (size_t i = n; i-- > 0;) {
        c += cost[i];
        k++;
        d += decoded[i].cls == IC_DIV;
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (!is_mark(qemu_plugin_insn_vaddr(insn)))
            continue;
        struct mark *m = malloc(sizeof *m);
        if (m == NULL)
            abort();
        *m = (struct mark){.cycles = c, .insns = k, .divs = d};
        qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, m);
    }
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
    (void)id;
    (void)udata;
    fprintf(out, "total %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", insns, cycles, divs);
    fflush(out);
}

static int argument(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return 0;
    size_t key = (size_t)(eq - arg);
    const char *value = eq + 1;
    if (key == 4 && strncmp(arg, "core", 4) == 0) {
        if (strcmp(value, "m4") == 0)
            core = CORE_M4;
        else if (strcmp(value, "m7") == 0)
            core = CORE_M7;
        else
            return 0;
    } else if (key == 3 && strncmp(arg, "out", 3) == 0) {
        out = fopen(value, "w");
        if (out == NULL)
            return 0;
    } else if (key == 4 && strncmp(arg, "mark", 4) == 0) {
        if (n_marks == MAX_MARKS)
            return 0;
        marks[n_marks++] = strtoull(value, NULL, 0) & ~(uint64_t)1; /* a Thumb symbol has bit 0 set */
    } else if (key == 3 && strncmp(arg, "div", 3) == 0) {
        div_cycles = (unsigned)strtoul(value, NULL, 0);
    } else {
        return 0;
    }
    return 1;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
                                           char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!argument(argv[i])) {
            fprintf(stderr, "tk-cycles: bad argument '%s' (core=m4|m7, out=FILE, mark=ADDR, div=N)\n",
                    argv[i]);
            return -1;
        }
    }
    if (out == NULL)
        out = stderr;
    if (div_cycles == 0)
        div_cycles = core == CORE_M4 ? M4_DIV_ESTIMATE : M7_DIV_ESTIMATE;
    fprintf(out, "# tk-cycles core=%s div=%u\n", core == CORE_M4 ? "m4" : "m7", div_cycles);
    fflush(out);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
