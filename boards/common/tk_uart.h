/* The console UART drivers in boards/common/ (one per UART IP) share this entry point; the board's
 * tk_board_init calls it after enabling the UART's clock and pins. */
#ifndef TK_UART_H
#define TK_UART_H
#include <stdint.h>

void tk_uart_init(uint32_t clock_hz, uint32_t baud);

#endif
