/* Cortex-A9 start-up (ARM state): vector table, one stack per exception mode, VFP/NEON on, then
 * C (a9.c). Exceptions that mean a fault save the registers and call tk_a9_fault(kind, regs, pc).
 * SVC returns at once: a semihosting call (svc 0x123456) with no debugger attached is a no-op. */
    .syntax unified
    .arm

    .section .vectors, "ax"
    .align 5
    .global tk_vectors
tk_vectors:
    ldr pc, =tk_reset
    ldr pc, =undef_entry
    ldr pc, =svc_entry
    ldr pc, =prefetch_entry
    ldr pc, =data_entry
    b .
    ldr pc, =irq_entry
    ldr pc, =fiq_entry
    .ltorg

    .text
    .global tk_reset
    .type tk_reset, %function
tk_reset:
    cpsid if
    /* Only CPU 0 runs the firmware; others (if any) sleep. */
    mrc p15, 0, r0, c0, c0, 5
    ands r0, r0, #3
    bne park
    ldr r0, =tk_vectors
    mcr p15, 0, r0, c12, c0, 0      /* VBAR */
    cps #0x17                       /* abort mode */
    ldr sp, =__exc_stack_top
    cps #0x1B                       /* undefined mode */
    ldr sp, =__exc_stack_top
    cps #0x12                       /* IRQ mode */
    ldr sp, =__exc_stack_top
    cps #0x11                       /* FIQ mode */
    ldr sp, =__exc_stack_top
    cps #0x13                       /* supervisor: the firmware runs here */
    ldr sp, =__stack_top
    /* VFP and NEON: CP10/CP11 full access, then FPEXC.EN, before any C runs. */
    mrc p15, 0, r0, c1, c0, 2
    orr r0, r0, #(0xF << 20)
    mcr p15, 0, r0, c1, c0, 2
    isb
    mov r0, #0x40000000
    vmsr fpexc, r0
    bl tk_a9_reset_c
park:
    wfi
    b park

/* Fault entries: r0 = kind, r1 = saved r0-r12, r2 = the faulting instruction's address,
 * r3 = SPSR; the C handler reads the interrupted mode's LR itself. */
    .macro fault_entry name, kind, offset
\name:
    sub lr, lr, #\offset
    push {r0-r12}
    mov r1, sp
    mov r2, lr
    mrs r3, spsr
    mov r0, #\kind
    bl tk_a9_fault
    b .
    .endm

    fault_entry undef_entry, 1, 4
    fault_entry prefetch_entry, 2, 4
    fault_entry data_entry, 3, 8
    fault_entry irq_entry, 4, 4
    fault_entry fiq_entry, 5, 4

svc_entry:
    movs pc, lr

    /* The supervisor-mode LR at the fault (banked: only readable from that mode). */
    .global tk_a9_svc_lr
tk_a9_svc_lr:
    mrs r1, cpsr
    cps #0x13
    mov r0, lr
    msr cpsr_c, r1
    bx lr
