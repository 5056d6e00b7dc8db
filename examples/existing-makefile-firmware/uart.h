/* Console on the MPS2 CMSDK UART0, and the end of a run. */
#ifndef UART_H
#define UART_H

#include <stdint.h>

void uart_init(void);
void uart_puts(const char *s);
void uart_put_int(int32_t value);
void exit_qemu(int status) __attribute__((noreturn));

#endif
