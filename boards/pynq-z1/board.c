/* pynq-z1: Zynq-7020. The boot ROM / FSBL (or QEMU) has clocked UART0 and routed it to MIO 14/15,
 * so the board only programs the UART's divider and mode. */
#include "tk_board.h"
#include "tk_uart.h"

void tk_board_init(void)
{
    tk_uart_init(TK_CLOCK_HZ, TK_CONSOLE_BAUD);
    tk_cycles_start();
}
