/* Cadence UART (Zynq-7000 UART0/1, UG585 appendix B.33): polled console.
 * From board.toml [console]: TK_UART_BASE (base), TK_UART_REF_HZ (clock_hz: the reference clock). */
#include <stdint.h>

#include "tk_board.h"
#include "tk_uart.h"

#define UART_CR (*(volatile uint32_t *)(TK_UART_BASE + 0x00))
#define UART_MR (*(volatile uint32_t *)(TK_UART_BASE + 0x04))
#define UART_BAUDGEN (*(volatile uint32_t *)(TK_UART_BASE + 0x18))
#define UART_SR (*(volatile uint32_t *)(TK_UART_BASE + 0x2C))
#define UART_FIFO (*(volatile uint32_t *)(TK_UART_BASE + 0x30))
#define UART_BAUDDIV (*(volatile uint32_t *)(TK_UART_BASE + 0x34))

#define SR_RXEMPTY (1u << 1)
#define SR_TXFULL (1u << 4)

void tk_uart_init(uint32_t clock_hz, uint32_t baud)
{
    (void)clock_hz; /* the UART runs from its own reference clock */
    /* baud = ref / (CD * (BDIV + 1)); BDIV = 6 gives CD = 124 for 115200 from 100 MHz. */
    const uint32_t bdiv = 6;
    UART_CR = (1u << 5) | (1u << 3); /* TX and RX disabled while the divider changes */
    UART_BAUDGEN = (TK_UART_REF_HZ + baud * (bdiv + 1) / 2) / (baud * (bdiv + 1));
    UART_BAUDDIV = bdiv;
    UART_CR = (1u << 1) | (1u << 0); /* reset the TX and RX paths */
    UART_MR = 0x20;                  /* 8 data bits, no parity, 1 stop bit */
    UART_CR = 0x14;                  /* TX enable, RX enable */
}

void tk_console_putc(char c)
{
    while (UART_SR & SR_TXFULL) {
    }
    UART_FIFO = (uint8_t)c;
}

int tk_console_getc(void)
{
    while (UART_SR & SR_RXEMPTY) {
    }
    return (int)(UART_FIFO & 0xFFu);
}
