/* netduinoplus2: STM32F405RG. Console on USART1, PA9 (TX) / PA10 (RX), alternate function 7. */
#include "cortex-m/stm32_gpio.h"
#include "tk_board.h"
#include "tk_uart.h"

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define RCC_APB2ENR (*(volatile uint32_t *)0x40023844u)
#define GPIOA 0x40020000u

void tk_board_init(void)
{
    RCC_AHB1ENR |= 1u << 0; /* GPIOA */
    RCC_APB2ENR |= 1u << 4; /* USART1 */
    (void)RCC_APB2ENR;      /* a read-back gives the clock time to start (RM0090 errata) */
    tk_gpio_alternate(GPIOA, 9, 7);
    tk_gpio_alternate(GPIOA, 10, 7);
    tk_uart_init(TK_UART_CLOCK_HZ, TK_CONSOLE_BAUD);
    tk_cycles_start();
}
