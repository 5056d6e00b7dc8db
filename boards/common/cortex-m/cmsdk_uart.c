/* Arm CMSDK APB UART (the MPS2 FPGA images): polled console. TK_UART_BASE: [console] base. */
#include <stdint.h>

#include "tk_board.h"
#include "tk_uart.h"

#define UART_DATA (*(volatile uint32_t *)(TK_UART_BASE + 0x00))
#define UART_STATE (*(volatile uint32_t *)(TK_UART_BASE + 0x04))
#define UART_CTRL (*(volatile uint32_t *)(TK_UART_BASE + 0x08))
#define UART_BAUDDIV (*(volatile uint32_t *)(TK_UART_BASE + 0x10))

#define STATE_TX_FULL 1u
#define STATE_RX_FULL 2u

void tk_uart_init(uint32_t clock_hz, uint32_t baud)
{
    uint32_t div = clock_hz / baud;
    UART_BAUDDIV = div < 16 ? 16 : div; /* the CMSDK UART needs at least 16 */
    UART_CTRL = 3u; /* TX and RX enable */
}

void tk_console_putc(char c)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = (uint8_t)c;
}

int tk_console_getc(void)
{
    while (!(UART_STATE & STATE_RX_FULL)) {
    }
    return (int)(UART_DATA & 0xFFu);
}
