/* STM32F2/F4 USART (SR/DR/BRR/CR1 layout, RM0090 / RM0402 "USART registers"): polled console.
 * TK_UART_BASE: [console] base. The board enables the USART clock and its pins first. */
#include <stdint.h>

#include "tk_board.h"
#include "tk_uart.h"

#define USART_SR (*(volatile uint32_t *)(TK_UART_BASE + 0x00))
#define USART_DR (*(volatile uint32_t *)(TK_UART_BASE + 0x04))
#define USART_BRR (*(volatile uint32_t *)(TK_UART_BASE + 0x08))
#define USART_CR1 (*(volatile uint32_t *)(TK_UART_BASE + 0x0C))

#define SR_RXNE (1u << 5)
#define SR_TXE (1u << 7)
#define CR1_UE (1u << 13)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)

void tk_uart_init(uint32_t clock_hz, uint32_t baud)
{
    /* Oversampling by 16: BRR = mantissa << 4 | fraction = fck / baud, rounded. */
    USART_BRR = (clock_hz + baud / 2) / baud;
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void tk_console_putc(char c)
{
    while (!(USART_SR & SR_TXE)) {
    }
    USART_DR = (uint8_t)c;
}

int tk_console_getc(void)
{
    while (!(USART_SR & SR_RXNE)) {
    }
    return (int)(USART_DR & 0xFFu);
}
