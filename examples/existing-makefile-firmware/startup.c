/* Reset: FPU on, .data copied, .bss cleared, then main. Only the reset and fault vectors are set. */
#include <stdint.h>

#include "uart.h"

extern uint32_t _stack_top[], _data_start[], _data_end[], _data_load[], _bss_start[], _bss_end[];
int main(void);
void reset_handler(void);
void fault_handler(void);

__attribute__((section(".vectors"), used)) static void (*const vectors[4])(void) = {
    (void (*)(void))_stack_top, reset_handler, fault_handler, fault_handler,
};

void reset_handler(void)
{
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10/CP11 full access */
    __asm__ volatile("dsb\n\tisb");
    for (uint32_t *s = _data_load, *d = _data_start; d < _data_end;)
        *d++ = *s++;
    for (uint32_t *d = _bss_start; d < _bss_end;)
        *d++ = 0u;
    exit_qemu(main());
}

void fault_handler(void)
{
    uart_puts("fault\n");
    exit_qemu(3);
}
