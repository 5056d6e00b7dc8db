/* The model runtime API in the style of STM32's AI runtime (ai_create / ai_run / ai_get_input ...),
 * on top of the generated models (tk_model.h).
 *
 *     ai_handle h;
 *     if (ai_create(&cifar10_info, NULL, &h) != AI_STATUS_OK) puts(ai_get_error(NULL));
 *     ai_tensor *in = ai_get_input(h, 0);
 *     memcpy(in->data, image, in->size);
 *     ai_run(h);
 *     const int8_t *scores = ai_get_output(h, 0)->data;
 *     ai_destroy(h);
 *
 * Several models and several instances of one model can live in one firmware. Each instance needs
 * its own activation buffer (ai_get_activations_size bytes, aligned to 16): pass one to ai_create,
 * or pass NULL to use the model's own arena in .nn_data_act (one instance at a time may do that).
 * Inputs and outputs live in the activation buffer: write the inputs before every ai_run (a run
 * overwrites them), read the outputs after it. No heap: instances come from a static pool of
 * AI_MAX_INSTANCES (default 4; define it when compiling ai_runtime.c to change it).
 *
 * A stateful model (SVDF, recurrent layers: ai_get_state_size > 0) keeps state from one ai_run to
 * the next in a static buffer of the model: ai_create clears it, ai_reset clears it again (at the
 * start of each new sequence), and such a model has one instance at a time. */
#ifndef AI_RUNTIME_H
#define AI_RUNTIME_H

#include <stdint.h>

#include "tk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AI_API_VERSION_MAJOR 1
#define AI_API_VERSION_MINOR 1

typedef void *ai_handle;
typedef void *ai_ptr;

typedef enum {
    AI_STATUS_OK = 0,
    AI_STATUS_ERROR = 1,
} ai_status;

/* One input or output of an instance: where its bytes are and what they mean. */
typedef struct {
    void *data;                 /* in the instance's activation buffer */
    uint32_t size;              /* bytes */
    const tk_tensor_info *info; /* name, dtype, shape, quantization */
} ai_tensor;

/* An instance of `model` on `activations` (NULL: the model's own arena). On failure *handle is NULL
 * and ai_get_error(NULL) says why. */
ai_status ai_create(const tk_model_info *model, ai_ptr activations, ai_handle *handle);
ai_status ai_destroy(ai_handle handle);

/* The last error of an instance (or of ai_create when handle is NULL); "" when none. */
const char *ai_get_error(ai_handle handle);

int32_t ai_get_input_size(ai_handle handle);  /* number of inputs */
int32_t ai_get_output_size(ai_handle handle); /* number of outputs */
ai_tensor *ai_get_input(ai_handle handle, int32_t index);
ai_tensor *ai_get_output(ai_handle handle, int32_t index);

ai_status ai_run(ai_handle handle);
/* Clears the state of a stateful model (a no-op for the others): the next ai_run starts a sequence. */
ai_status ai_reset(ai_handle handle);
/* ai_run with per-layer timing: layer_cycles gets ai_get_node_size entries of clock differences. */
ai_status ai_run_profiled(ai_handle handle, uint32_t (*clock)(void), uint32_t *layer_cycles);

const char *ai_get_name(ai_handle handle);
const char *ai_get_build_id(ai_handle handle);
int32_t ai_get_node_size(ai_handle handle); /* number of kernel calls (layers) */
const tk_layer_info *ai_get_node(ai_handle handle, int32_t index);
uint32_t ai_get_activations_size(ai_handle handle);
uint32_t ai_get_params_size(ai_handle handle);
uint32_t ai_get_state_size(ai_handle handle); /* bytes kept across runs; 0 for a stateless model */
ai_ptr ai_get_activations(ai_handle handle);
const tk_model_info *ai_get_model(ai_handle handle);
uint32_t ai_get_api_version(void); /* (major << 16) | minor */

#ifdef __cplusplus
}
#endif
#endif /* AI_RUNTIME_H */
