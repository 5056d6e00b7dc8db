/* The model from TinyKilnModel("net", ...) classifies the built-in image through the ai_* API, on an
 * activation buffer of this firmware's own:
 *     scores: <the output bytes>
 *     class: <index> */
#include <stdint.h>
#include <string.h>

#include "ai_runtime.h"
#include "net.h"
#include "uart.h"

extern const int8_t sample_image[3072]; /* ../existing-makefile-firmware/sample.c */

static uint8_t activations[NET_ARENA_SIZE] __attribute__((aligned(16)));

int main(void)
{
    ai_handle net;

    uart_init();
    uart_puts("scons-firmware: model ");
    uart_puts(net_info.name);
    uart_puts(" build ");
    uart_puts(net_info.build_id);
    uart_puts("\n");
    if (ai_create(&net_info, activations, &net) != AI_STATUS_OK) {
        uart_puts(ai_get_error(NULL));
        return 1;
    }
    ai_tensor *input = ai_get_input(net, 0);
    if (input->size != sizeof sample_image) {
        uart_puts("the model's input is not a 32x32x3 int8 image\n");
        return 2;
    }
    memcpy(input->data, sample_image, input->size);
    if (ai_run(net) != AI_STATUS_OK) {
        uart_puts(ai_get_error(net));
        return 3;
    }
    const ai_tensor *output = ai_get_output(net, 0);
    const int8_t *scores = output->data;
    uint32_t best = 0;
    uart_puts("scores:");
    for (uint32_t i = 0; i < output->size; i++) {
        uart_puts(" ");
        uart_put_int(scores[i]);
        if (scores[i] > scores[best])
            best = i;
    }
    uart_puts("\nclass: ");
    uart_put_int((int32_t)best);
    uart_puts("\n");
    ai_destroy(net);
    return 0;
}
