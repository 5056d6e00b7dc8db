/* The board interface: what every board (boards/<board>/) implements and every app uses.
 *
 * Start-up order on every board, host included: the board's reset code (vector table, .data/.bss,
 * FPU, caches) -> tk_board_init() -> app_main() -> tk_exit(its return value). Apps define app_main
 * and never touch hardware directly, so one app builds for every board. */
#ifndef TK_BOARD_H
#define TK_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Clocks, console UART, cycle counter. Called once before app_main. */
void tk_board_init(void);

/* The app's entry point; its return value is the run's exit status. */
int app_main(void);

/* Console: the board's UART (stdin/stdout on host). getc blocks; it returns a byte 0..255, or -1
 * when the input has ended (a host pipe closed). */
void tk_console_putc(char c);
int tk_console_getc(void);
void tk_console_write(const void *data, size_t n);
void tk_console_puts(const char *s); /* no newline added */

/* A free-running counter: DWT CYCCNT / PMU on hardware, a timer under QEMU (with -icount shift=0 it
 * counts instructions), a nanosecond clock on host. tk_cycles_name() says which ("cpu-cycles",
 * "instructions", "ns"). Wraps at 2^32; differences of up to 2^32 - 1 are exact. */
void tk_cycles_start(void);
uint32_t tk_cycles(void);
const char *tk_cycles_name(void);

/* Ends the run with a status: semihosting exit under QEMU, exit() on host, a breakpoint loop on
 * hardware. */
void tk_exit(int status) __attribute__((noreturn));

/* Board facts for banners and protocol "info" replies. */
const char *tk_board_name(void);
const char *tk_core_name(void);
uint32_t tk_clock_hz(void);

#ifdef __cplusplus
}
#endif
#endif
