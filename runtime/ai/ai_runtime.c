/* STM32-style model runtime API over generated models: see ai_runtime.h. */
#include "ai_runtime.h"

#include <stddef.h>

#ifndef AI_MAX_INSTANCES
#define AI_MAX_INSTANCES 4
#endif
#ifndef AI_MAX_IO
#define AI_MAX_IO 8 /* inputs (and, separately, outputs) per model */
#endif

typedef struct {
    const tk_model_info *model; /* NULL: the slot is free */
    uint8_t *arena;
    const char *error;
    ai_tensor inputs[AI_MAX_IO];
    ai_tensor outputs[AI_MAX_IO];
} ai_instance;

static ai_instance instances[AI_MAX_INSTANCES];
static const char *create_error = "";

/* A handle is a pointer into the pool; anything else is rejected rather than trusted. */
static ai_instance *lookup(ai_handle handle)
{
    for (unsigned i = 0; i < AI_MAX_INSTANCES; i++)
        if (handle == (ai_handle)&instances[i] && instances[i].model != NULL)
            return &instances[i];
    return NULL;
}

static void bind(ai_tensor *t, const tk_tensor_info *info, uint8_t *arena)
{
    t->data = arena + info->arena_offset;
    t->size = info->size_bytes;
    t->info = info;
}

ai_status ai_create(const tk_model_info *model, ai_ptr activations, ai_handle *handle)
{
    if (handle == NULL) {
        create_error = "ai_create: handle pointer is NULL";
        return AI_STATUS_ERROR;
    }
    *handle = NULL;
    if (model == NULL || model->run == NULL) {
        create_error = "ai_create: no model given";
        return AI_STATUS_ERROR;
    }
    if (model->n_inputs > AI_MAX_IO || model->n_outputs > AI_MAX_IO) {
        create_error = "ai_create: the model has more inputs or outputs than AI_MAX_IO: rebuild "
                       "ai_runtime.c with a larger -DAI_MAX_IO";
        return AI_STATUS_ERROR;
    }
    uint8_t *arena = activations != NULL ? (uint8_t *)activations : model->default_arena;
    if (model->arena_alignment != 0u && ((uintptr_t)arena) % model->arena_alignment != 0u) {
        create_error = "ai_create: the activations buffer is not aligned as the model needs "
                       "(ai_get_activations_size, 16-byte alignment)";
        return AI_STATUS_ERROR;
    }
    ai_instance *slot = NULL;
    for (unsigned i = 0; i < AI_MAX_INSTANCES; i++) {
        if (instances[i].model == model && model->state_size > 0u) {
            create_error = "ai_create: this model keeps state between runs in one static buffer: one "
                           "instance at a time (ai_destroy the other)";
            return AI_STATUS_ERROR;
        }
        if (instances[i].model != NULL && instances[i].arena == arena && model->arena_size > 0u) {
            create_error = activations == NULL
                ? "ai_create: the model's own arena is used by another instance: pass an activations "
                  "buffer of ai_get_activations_size bytes"
                : "ai_create: this activations buffer is used by another instance";
            return AI_STATUS_ERROR;
        }
        if (instances[i].model == NULL && slot == NULL)
            slot = &instances[i];
    }
    if (slot == NULL) {
        create_error = "ai_create: all AI_MAX_INSTANCES instances are in use: ai_destroy one, or "
                       "rebuild ai_runtime.c with a larger -DAI_MAX_INSTANCES";
        return AI_STATUS_ERROR;
    }
    slot->model = model;
    slot->arena = arena;
    slot->error = "";
    for (uint32_t i = 0; i < model->n_inputs; i++)
        bind(&slot->inputs[i], &model->inputs[i], arena);
    for (uint32_t i = 0; i < model->n_outputs; i++)
        bind(&slot->outputs[i], &model->outputs[i], arena);
    if (model->reset != NULL)
        model->reset();
    create_error = "";
    *handle = (ai_handle)slot;
    return AI_STATUS_OK;
}

ai_status ai_destroy(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL)
        return AI_STATUS_ERROR;
    inst->model = NULL;
    inst->arena = NULL;
    return AI_STATUS_OK;
}

const char *ai_get_error(ai_handle handle)
{
    if (handle == NULL)
        return create_error;
    ai_instance *inst = lookup(handle);
    return inst ? inst->error : "not a live ai_handle (destroyed, or never created)";
}

int32_t ai_get_input_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? (int32_t)inst->model->n_inputs : 0;
}

int32_t ai_get_output_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? (int32_t)inst->model->n_outputs : 0;
}

ai_tensor *ai_get_input(ai_handle handle, int32_t index)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL)
        return NULL;
    if (index < 0 || (uint32_t)index >= inst->model->n_inputs) {
        inst->error = "ai_get_input: no input with that index";
        return NULL;
    }
    return &inst->inputs[index];
}

ai_tensor *ai_get_output(ai_handle handle, int32_t index)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL)
        return NULL;
    if (index < 0 || (uint32_t)index >= inst->model->n_outputs) {
        inst->error = "ai_get_output: no output with that index";
        return NULL;
    }
    return &inst->outputs[index];
}

ai_status ai_run_profiled(ai_handle handle, uint32_t (*clock)(void), uint32_t *layer_cycles)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL)
        return AI_STATUS_ERROR;
    switch (inst->model->run(inst->arena, clock, layer_cycles)) {
    case TK_OK:
        inst->error = "";
        return AI_STATUS_OK;
    case TK_ERR_ALIGNMENT:
        inst->error = "ai_run: the activations buffer is misaligned";
        return AI_STATUS_ERROR;
    case TK_ERR_ARGUMENT:
        inst->error = "ai_run_profiled: a clock needs a layer_cycles array";
        return AI_STATUS_ERROR;
    default:
        inst->error = "ai_run: the model failed";
        return AI_STATUS_ERROR;
    }
}

ai_status ai_run(ai_handle handle) { return ai_run_profiled(handle, NULL, NULL); }

ai_status ai_reset(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL)
        return AI_STATUS_ERROR;
    if (inst->model->reset != NULL)
        inst->model->reset();
    inst->error = "";
    return AI_STATUS_OK;
}

uint32_t ai_get_state_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model->state_size : 0u;
}

const char *ai_get_name(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model->name : NULL;
}

const char *ai_get_build_id(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model->build_id : NULL;
}

int32_t ai_get_node_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? (int32_t)inst->model->n_layers : 0;
}

const tk_layer_info *ai_get_node(ai_handle handle, int32_t index)
{
    ai_instance *inst = lookup(handle);
    if (inst == NULL || index < 0 || (uint32_t)index >= inst->model->n_layers)
        return NULL;
    return &inst->model->layers[index];
}

uint32_t ai_get_activations_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model->arena_size : 0u;
}

uint32_t ai_get_params_size(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model->weights_size : 0u;
}

ai_ptr ai_get_activations(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? (ai_ptr)inst->arena : NULL;
}

const tk_model_info *ai_get_model(ai_handle handle)
{
    ai_instance *inst = lookup(handle);
    return inst ? inst->model : NULL;
}

uint32_t ai_get_api_version(void)
{
    return ((uint32_t)AI_API_VERSION_MAJOR << 16) | (uint32_t)AI_API_VERSION_MINOR;
}
