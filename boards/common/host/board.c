/* The host board: stdin/stdout for the console, CLOCK_MONOTONIC for the counter, exit() to end,
 * and signal handlers that print a fault report the way the MCU boards do. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tk_board.h"

static void on_fault(int sig, siginfo_t *info, void *context)
{
    (void)context;
    /* Only async-signal-safe calls here: format into a buffer, write(2), _exit(2). */
    char msg[160];
    const char *kind = sig == SIGSEGV ? "segmentation fault" : sig == SIGBUS ? "bus error"
                     : sig == SIGILL ? "illegal instruction" : "floating-point exception";
    int n = snprintf(msg, sizeof msg, "\n*** FAULT: %s (signal %d) at address %p\n", kind, sig,
                     info->si_addr);
    if (n > 0)
        (void)!write(STDOUT_FILENO, msg, (size_t)n);
    _exit(TK_EXIT_FAULT);
}

void tk_board_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    /* Protocol traffic must not sit in a buffer while the other side waits for it. */
    setvbuf(stdout, NULL, _IONBF, 0);
}

void tk_console_putc(char c) { putchar((unsigned char)c); }

int tk_console_getc(void)
{
    int c = getchar();
    return c == EOF ? -1 : c;
}

void tk_console_write(const void *data, size_t n) { fwrite(data, 1, n, stdout); }
void tk_console_puts(const char *s) { fputs(s, stdout); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tk_cycles_start(void) {}
uint32_t tk_cycles(void) { return (uint32_t)now_ns(); }
const char *tk_cycles_name(void) { return "ns"; }

void tk_exit(int status)
{
    fflush(stdout);
    exit(status);
}

int main(void)
{
    tk_board_init();
    tk_exit(app_main());
}
