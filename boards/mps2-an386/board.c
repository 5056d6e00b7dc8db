/* mps2-an386: Cortex-M4 on the MPS2 FPGA board (QEMU -M mps2-an386). The console UART needs no
 * clock or pin set-up on this FPGA image. TK_CLOCK_HZ, TK_CONSOLE_BAUD: board.toml's clock_hz, [console] baud. */
#include "tk_board.h"
#include "tk_uart.h"

void tk_board_init(void)
{
    tk_uart_init(TK_CLOCK_HZ, TK_CONSOLE_BAUD);
    tk_cycles_start();
}
