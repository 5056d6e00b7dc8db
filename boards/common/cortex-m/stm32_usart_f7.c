/* STM32F7/H7 USART (CR1/BRR/ISR/RDR/TDR layout, RM0385 / RM0399 "USART registers"): polled
 * console. TK_UART_BASE: [console] base. The board enables the USART clock and its pins first. */
#include <stdint.h>

#include "tk_board.h"
#include "tk_uart.h"

#define USART_CR1 (*(volatile uint32_t *)(TK_UART_BASE + 0x00))
#define USART_BRR (*(volatile uint32_t *)(TK_UART_BASE + 0x0C))
#define USART_ISR (*(volatile uint32_t *)(TK_UART_BASE + 0x1C))
#define USART_ICR (*(volatile uint32_t *)(TK_UART_BASE + 0x20))
#define USART_RDR (*(volatile uint32_t *)(TK_UART_BASE + 0x24))
#define USART_TDR (*(volatile uint32_t *)(TK_UART_BASE + 0x28))

#define ISR_ORE (1u << 3)
#define ISR_RXNE (1u << 5)
#define ISR_TXE (1u << 7)
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)

void tk_uart_init(uint32_t clock_hz, uint32_t baud)
{
    USART_CR1 = 0;
    USART_BRR = (clock_hz + baud / 2) / baud; /* oversampling by 16 */
    USART_CR1 = CR1_UE | CR1_TE | CR1_RE;
}

void tk_console_putc(char c)
{
    while (!(USART_ISR & ISR_TXE)) {
    }
    USART_TDR = (uint8_t)c;
}

int tk_console_getc(void)
{
    for (;;) {
        uint32_t isr = USART_ISR;
        if (isr & ISR_RXNE)
            return (int)(USART_RDR & 0xFFu);
        if (isr & ISR_ORE) /* an overrun stops reception until cleared */
            USART_ICR = ISR_ORE;
    }
}
