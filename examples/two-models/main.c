/* Two models and two instances of one of them in one image, through the ai_* API:
 *     a, b   two instances of `cifar` (int8), each with its own activation buffer
 *     f      `cifar_f` (the float32 flavour of the same network), its own buffer too
 * Every round fills all three inputs first, then runs them interleaved (a, f, b), then prints every
 * output: a run must not touch another instance's inputs or outputs. Input k of a round is the
 * sample image rotated by 1024 * k bytes; the float model gets (q + 128) / 255.
 *     <instance> <round> <rotation>: <int8 outputs as integers | float32 outputs as hex bits> */
#include <stdint.h>
#include <string.h>

#include "ai_runtime.h"
#include "cifar.h"
#include "cifar_f.h"
#include "uart.h"

#define IMAGE_BYTES CIFAR_INPUT0_SIZE
extern const int8_t sample_image[IMAGE_BYTES]; /* ../existing-makefile-firmware/sample.c */

static uint8_t arena_a[CIFAR_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t arena_b[CIFAR_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t arena_f[CIFAR_F_ARENA_SIZE] __attribute__((aligned(16)));

static int8_t rotated(uint32_t i, uint32_t rotation)
{
    return sample_image[(i + rotation) % IMAGE_BYTES];
}

static void put_hex(uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    char s[9];
    for (int i = 7; i >= 0; i--, v >>= 4)
        s[i] = digits[v & 0xFu];
    s[8] = '\0';
    uart_puts(s);
}

static void print_output(const char *who, uint32_t round, uint32_t rotation, ai_handle h)
{
    const ai_tensor *out = ai_get_output(h, 0);
    uart_puts(who);
    uart_puts(" ");
    uart_put_int((int32_t)round);
    uart_puts(" ");
    uart_put_int((int32_t)rotation);
    uart_puts(":");
    if (out->info->dtype == TK_DTYPE_FLOAT32) {
        for (uint32_t i = 0; i < out->size / 4u; i++) {
            uint32_t bits;
            memcpy(&bits, (const uint8_t *)out->data + 4u * i, 4u);
            uart_puts(" ");
            put_hex(bits);
        }
    } else {
        for (uint32_t i = 0; i < out->size; i++) {
            uart_puts(" ");
            uart_put_int(((const int8_t *)out->data)[i]);
        }
    }
    uart_puts("\n");
}

static int check(ai_status status, ai_handle h)
{
    if (status == AI_STATUS_OK)
        return 0;
    uart_puts("error: ");
    uart_puts(ai_get_error(h));
    uart_puts("\n");
    return 1;
}

int main(void)
{
    ai_handle a, b, f;
    uart_init();
    if (check(ai_create(&cifar_info, arena_a, &a), NULL) || check(ai_create(&cifar_info, arena_b, &b), NULL) ||
        check(ai_create(&cifar_f_info, arena_f, &f), NULL))
        return 1;
    uart_puts("two-models: cifar x2 + cifar_f\n");
    for (uint32_t round = 0; round < 2; round++) {
        uint32_t rot_a = 1024u * round, rot_b = 1024u * (round + 1u), rot_f = 1024u * (round + 2u);
        int8_t *in_a = ai_get_input(a, 0)->data, *in_b = ai_get_input(b, 0)->data;
        float *in_f = ai_get_input(f, 0)->data;
        for (uint32_t i = 0; i < IMAGE_BYTES; i++) {
            in_a[i] = rotated(i, rot_a);
            in_b[i] = rotated(i, rot_b);
            in_f[i] = (float)(rotated(i, rot_f) + 128) / 255.0f;
        }
        if (check(ai_run(a), a) || check(ai_run(f), f) || check(ai_run(b), b))
            return 2;
        print_output("a", round, rot_a, a);
        print_output("b", round, rot_b, b);
        print_output("f", round, rot_f, f);
    }
    ai_destroy(a);
    ai_destroy(b);
    ai_destroy(f);
    return 0;
}
