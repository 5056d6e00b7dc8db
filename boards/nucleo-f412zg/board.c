/* nucleo-f412zg: console on USART3, PD8 (TX) / PD9 (RX), AF7 (RM0402 RCC and GPIO chapters). The
 * USART3 kernel clock is PCLK1, the 16 MHz HSI after reset. */
#include "cortex-m/stm32_gpio.h"
#include "tk_board.h"
#include "tk_uart.h"

#define RCC_AHB1ENR (*(volatile uint32_t *)0x40023830u)
#define RCC_APB1ENR (*(volatile uint32_t *)0x40023840u)
#define GPIOD 0x40020C00u

void tk_board_init(void)
{
    RCC_AHB1ENR |= 1u << 3;  /* GPIOD */
    RCC_APB1ENR |= 1u << 18; /* USART3 */
    (void)RCC_APB1ENR;       /* read back: the clock is running before the first access */
    tk_gpio_alternate(GPIOD, 8, 7);
    tk_gpio_alternate(GPIOD, 9, 7);
    tk_uart_init(TK_CLOCK_HZ, TK_CONSOLE_BAUD);
    tk_cycles_start();
}
