/* Console helpers every board shares, built on the board's tk_console_putc. */
/* Weak: a board with a faster path (host: fwrite) provides its own. */
#include "tk_board.h"

__attribute__((weak)) void tk_console_write(const void *data, size_t n)
{
    const char *p = data;
    while (n--)
        tk_console_putc(*p++);
}

__attribute__((weak)) void tk_console_puts(const char *s)
{
    while (*s)
        tk_console_putc(*s++);
}
