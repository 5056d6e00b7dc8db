/* disco-h747i (Cortex-M7 core): the rated clock with clock=max (stm32_clock_h7.c), console on USART1, PA9 (TX) / PA10 (RX), AF7 (RM0399 RCC and GPIO
 * chapters). The D2-domain SRAMs get their clocks so that a variant may place data there. Variant
 * ext-mem (TK_EXT_MEM) also brings up the SDRAM and the QSPI flash (ext_mem.c). */
#include "cortex-m/stm32_clock.h"
#include "cortex-m/stm32_gpio.h"
#include "ext_mem.h"
#include "tk_board.h"
#include "tk_uart.h"

#define RCC_AHB2ENR (*(volatile uint32_t *)0x580244DCu)
#define RCC_AHB4ENR (*(volatile uint32_t *)0x580244E0u)
#define RCC_APB2ENR (*(volatile uint32_t *)0x580244F0u)
#define GPIOA 0x58020000u

#ifndef TK_UART_CLOCK_HZ
#define TK_UART_CLOCK_HZ TK_CLOCK_HZ
#endif

void tk_board_init(void)
{
#if defined(TK_CLOCK_MAX)
    /* clock=max: supply, VOS1, PLL1 and the dividers first (stm32_clock_h7.c), so the UART divider
     * below is the final one; on a failure the clock is back at reset: report it at that clock. */
    const char *clock_fault = tk_clock_init();
    uint32_t uart_hz = clock_fault ? TK_CLK_RESET_HZ : TK_UART_CLOCK_HZ;
#else
    uint32_t uart_hz = TK_UART_CLOCK_HZ;
#endif
    RCC_AHB2ENR |= (1u << 29) | (1u << 30) | (1u << 31); /* SRAM1, SRAM2, SRAM3 */
    RCC_AHB4ENR |= 1u << 0;                              /* GPIOA */
    RCC_APB2ENR |= 1u << 4;                              /* USART1 */
    (void)RCC_APB2ENR;
    tk_gpio_alternate(GPIOA, 9, 7);
    tk_gpio_alternate(GPIOA, 10, 7);
    tk_uart_init(uart_hz, TK_CONSOLE_BAUD);
#if defined(TK_CLOCK_MAX)
    if (clock_fault)
        tk_clock_fault(clock_fault);
#endif
    tk_cycles_start();
#if defined(TK_EXT_MEM)
    /* Variant ext-mem: weights are read from QSPI flash and activations live in SDRAM, so both
     * must work before app_main (ext_mem.c; verified by compilation only). */
    const char *what = "";
    int failed = tk_ext_mem_init(&what);
    if (failed) {
        tk_printf("disco-h747i: external memory bring-up failed (%d): %s\n", failed, what);
        tk_exit(2);
    }
#endif
}
