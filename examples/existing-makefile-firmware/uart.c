/* CMSDK APB UART0 of the MPS2 (polled, transmit only) and the semihosting exit. */
#include "uart.h"

#define UART0 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0 + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0 + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0 + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0 + 0x10u))
#define STATE_TX_FULL 1u

void uart_init(void)
{
    UART_BAUDDIV = 25000000u / 115200u; /* 25 MHz peripheral clock */
    UART_CTRL = 1u;                     /* transmitter on */
}

static void uart_putc(char c)
{
    while (UART_STATE & STATE_TX_FULL) {
    }
    UART_DATA = (uint8_t)c;
}

void uart_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n')
            uart_putc('\r');
        uart_putc(*s++);
    }
}

void uart_put_int(int32_t value)
{
    char buf[12];
    int n = 0;
    uint32_t v = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
    do {
        buf[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    if (value < 0)
        uart_putc('-');
    while (n > 0)
        uart_putc(buf[--n]);
}

/* Semihosting SYS_EXIT_EXTENDED: QEMU (-semihosting-config enable=on) exits with `status`. */
void exit_qemu(int status)
{
    volatile uint32_t block[2] = {0x20026u, (uint32_t)status};
    register uint32_t r0 __asm__("r0") = 0x20u;
    register volatile uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}
