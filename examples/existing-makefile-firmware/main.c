/* Classify one built-in 32x32 RGB image with the exported CIFAR-10 model and print the result:
 *     scores: <the 10 int8 output bytes>
 *     class: <index> <label>
 * The model runs on its own arena (section .nn_data_act, placed by the export's cifar10.ld). */
#include <stdint.h>

#include "cifar10.h"
#include "uart.h"

extern const int8_t sample_image[CIFAR10_INPUT0_SIZE]; /* sample.c */

static const char *const labels[] = {"airplane", "automobile", "bird", "cat", "deer",
                                     "dog", "frog", "horse", "ship", "truck"};

int main(void)
{
    int8_t scores[CIFAR10_OUTPUT0_SIZE];
    cifar10_inputs in = {.input0 = sample_image};
    cifar10_outputs out = {.output0 = scores};

    uart_init();
    uart_puts("existing-makefile-firmware: cifar10 build ");
    uart_puts(cifar10_info.build_id);
    uart_puts("\n");
    if (cifar10_run(&in, &out, NULL) != 0) {
        uart_puts("cifar10_run failed\n");
        return 1;
    }
    uint32_t best = 0;
    uart_puts("scores:");
    for (uint32_t i = 0; i < CIFAR10_OUTPUT0_SIZE; i++) {
        uart_puts(" ");
        uart_put_int(scores[i]);
        if (scores[i] > scores[best])
            best = i;
    }
    uart_puts("\nclass: ");
    uart_put_int((int32_t)best);
    uart_puts(" ");
    uart_puts(best < sizeof labels / sizeof labels[0] ? labels[best] : "?");
    uart_puts("\n");
    return 0;
}
