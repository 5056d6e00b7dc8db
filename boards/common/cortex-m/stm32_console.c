/* Console bring-up of the STM32F4/F7 boards (RCC at 0x40023800 with AHB1ENR at +0x30, APB1ENR at
 * +0x40, APB2ENR at +0x44: RM0090, RM0402, RM0385): clock the GPIO port and the USART, route TX and
 * RX to their alternate function, start the UART and the cycle counter. The board.toml [console]
 * keys say which port, pins and USART (tinykiln/boards.py makes these macros of them):
 *   TK_CONSOLE_GPIO      gpio: GPIO port base (GPIOA 0x40020000, GPIOD 0x40020C00, ...)
 *   TK_CONSOLE_GPIO_BIT  gpio_bit: its AHB1ENR enable bit (GPIOA 0, GPIOD 3)
 *   TK_CONSOLE_TX_PIN, TK_CONSOLE_RX_PIN, TK_CONSOLE_AF: tx_pin, rx_pin, af (7 for USART1..3)
 *   TK_CONSOLE_APB2      apb = 2: the USART sits on APB2 (USART1, USART6); apb = 1: APB1
 *   TK_CONSOLE_APB_BIT   apb_bit: the USART's enable bit in that APBxENR (USART1 4, USART3 18)
 *   TK_UART_CLOCK_HZ     the USART's kernel clock: its APB's clock in the build's clock mode
 *                        (tinykiln/clocks.py), [console] clock_hz, or else the core clock TK_CLOCK_HZ
 *   TK_CLOCK_MAX         clock=max: tk_clock_init (stm32_clock_*.c) sets the rated clock first */
#include "cortex-m/stm32_clock.h"
#include "cortex-m/stm32_gpio.h"
#include "tk_board.h"
#include "tk_uart.h"

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#ifdef TK_CONSOLE_APB2
#define RCC_APBENR (*(volatile uint32_t *)0x40023844u)
#else
#define RCC_APBENR (*(volatile uint32_t *)0x40023840u)
#endif
#ifndef TK_UART_CLOCK_HZ
#define TK_UART_CLOCK_HZ TK_CLOCK_HZ
#endif

void tk_board_init(void)
{
#if defined(TK_CLOCK_MAX)
    /* clock=max: the rated clock before anything else, so the UART divider below is the final one.
     * On a ready bit that never comes, the clock is back at reset: report it at that clock. */
    const char *clock_fault = tk_clock_init();
    uint32_t uart_hz = clock_fault ? TK_CLK_RESET_HZ : TK_UART_CLOCK_HZ;
#else
    uint32_t uart_hz = TK_UART_CLOCK_HZ;
#endif
    RCC_AHB1ENR |= 1u << TK_CONSOLE_GPIO_BIT;
    RCC_APBENR |= 1u << TK_CONSOLE_APB_BIT;
    (void)RCC_APBENR; /* read back: the clock is running before the first access (RM0090 errata) */
    tk_gpio_alternate(TK_CONSOLE_GPIO, TK_CONSOLE_TX_PIN, TK_CONSOLE_AF);
    tk_gpio_alternate(TK_CONSOLE_GPIO, TK_CONSOLE_RX_PIN, TK_CONSOLE_AF);
    tk_uart_init(uart_hz, TK_CONSOLE_BAUD);
#if defined(TK_CLOCK_MAX)
    if (clock_fault)
        tk_clock_fault(clock_fault);
#endif
    tk_cycles_start();
}
