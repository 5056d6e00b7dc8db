/* A small printf over tk_console_putc: enough for banners, reports and fault dumps, with no heap
 * and no newlib stdio (which would pull in malloc and syscalls on bare metal). */
#include <stdarg.h>
#include <stdbool.h>

#include "tk_board.h"

typedef struct {
    int count;
} out_t;

static void emit(out_t *o, char c)
{
    tk_console_putc(c);
    o->count++;
}

static void pad(out_t *o, char c, int n)
{
    while (n-- > 0)
        emit(o, c);
}

static void emit_field(out_t *o, const char *s, int len, int width, bool left, char fill)
{
    if (!left)
        pad(o, fill, width - len);
    for (int i = 0; i < len; i++)
        emit(o, s[i]);
    if (left)
        pad(o, ' ', width - len);
}

static int format_unsigned(char *buf, unsigned long long v, unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static int tk_vprintf(const char *fmt, va_list ap)
{
    out_t o = {0};
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            emit(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char fill = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                fill = '0';
            else
                break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int longs = 0;
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }
        if (*fmt == 'z')
            fmt++, longs = 1; /* size_t: long-sized on every target we build for */
        char buf[24];
        int len;
        switch (*fmt) {
        case 'c':
            buf[0] = (char)va_arg(ap, int);
            emit_field(&o, buf, 1, width, left, ' ');
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            len = 0;
            while (s[len])
                len++;
            emit_field(&o, s, len, width, left, ' ');
            break;
        }
        case 'd':
        case 'i': {
            long long v = longs >= 2 ? va_arg(ap, long long) : longs ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            int off = 0;
            if (v < 0)
                buf[off++] = '-';
            len = off + format_unsigned(buf + off, mag, 10, false);
            if (v < 0 && fill == '0' && !left) { /* the sign goes before the zeros */
                emit(&o, '-');
                emit_field(&o, buf + 1, len - 1, width - 1, left, fill);
            } else {
                emit_field(&o, buf, len, width, left, fill);
            }
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long long v = longs >= 2 ? va_arg(ap, unsigned long long)
                                 : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            len = format_unsigned(buf, v, *fmt == 'u' ? 10 : 16, *fmt == 'X');
            emit_field(&o, buf, len, width, left, fill);
            break;
        }
        case 'p': {
            unsigned long long v = (unsigned long long)(unsigned long)va_arg(ap, void *);
            buf[0] = '0';
            buf[1] = 'x';
            len = 2 + format_unsigned(buf + 2, v, 16, false);
            emit_field(&o, buf, len, width, left, ' ');
            break;
        }
        case '%':
            emit(&o, '%');
            break;
        case '\0':
            return o.count; /* a lone '%' at the end */
        default: /* unknown conversion: show it rather than guess */
            emit(&o, '%');
            emit(&o, *fmt);
            break;
        }
    }
    return o.count;
}

int tk_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = tk_vprintf(fmt, ap);
    va_end(ap);
    return n;
}
