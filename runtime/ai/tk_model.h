/* What a generated model exports (tk_model_info), shared by model.c, the ai_* API and the apps.
 *
 * Every generated model.c defines `const tk_model_info <model>_info`; a firmware may link several.
 * The build also generates tk_models.c, the list of the models linked into this firmware, for apps
 * that serve any of them (the validation app). */
#ifndef TK_MODEL_H
#define TK_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_MAX_RANK 6

/* Element types. The codes are part of the device protocol: never renumber. */
typedef enum {
    TK_DTYPE_INT8 = 1,
    TK_DTYPE_UINT8 = 2,
    TK_DTYPE_INT16 = 3,
    TK_DTYPE_INT32 = 4,
    TK_DTYPE_INT64 = 5,
    TK_DTYPE_FLOAT32 = 6,
    TK_DTYPE_BOOL = 7,
} tk_dtype;

/* Return codes of <model>_run and tk_model_info.run. */
enum {
    TK_OK = 0,
    TK_ERR_ALIGNMENT = 1, /* the arena is not aligned to arena_alignment */
    TK_ERR_ARGUMENT = 2,  /* a clock without a layer_cycles array */
};

typedef struct {
    const char *name;     /* the tensor's name in the .tflite */
    tk_dtype dtype;
    uint8_t rank;
    int32_t shape[TK_MAX_RANK];
    uint32_t size_bytes;
    uint32_t arena_offset; /* where the tensor lives in the activation arena */
    float scale;           /* per-tensor quantization; 0 when the tensor is not quantized */
    int32_t zero_point;
} tk_tensor_info;

typedef struct {
    const char *kernel; /* the generated C function */
    const char *op;     /* the TFLite operator it implements (part of) */
    int32_t op_index;   /* the operator's index in the .tflite subgraph */
} tk_layer_info;

typedef struct tk_model_info {
    const char *name;     /* the model's name */
    const char *c_name;   /* its C prefix: <c_name>_run, <C_NAME>_ARENA_SIZE */
    const char *build_id; /* digest of the generated code and weights */
    uint32_t arena_size;
    uint32_t arena_alignment;
    uint32_t weights_size;
    uint32_t n_inputs;
    uint32_t n_outputs;
    uint32_t n_layers;
    const tk_tensor_info *inputs;
    const tk_tensor_info *outputs;
    const tk_layer_info *layers;
    uint8_t *default_arena; /* the model's own arena in .nn_data_act */
    /* Runs every layer on `arena` (inputs already in place). With a clock, layer_cycles[i] receives
     * the clock difference over layer i (n_layers entries). Returns TK_OK or a TK_ERR_* code. */
    int (*run)(uint8_t *arena, uint32_t (*clock)(void), uint32_t *layer_cycles);
    /* A stateful model (variable tensors, e.g. SVDF's): bytes of its state, a static buffer of the
     * model kept from one run to the next, and the function that clears it. 0 and NULL otherwise. */
    uint32_t state_size;
    void (*reset)(void);
} tk_model_info;

/* The models linked into this firmware (generated tk_models.c). */
extern const tk_model_info *const tk_models[];
extern const unsigned tk_model_count;

/* Bytes per element of a dtype (0 for an unknown code). */
static inline uint32_t tk_dtype_size(tk_dtype dtype)
{
    switch (dtype) {
    case TK_DTYPE_INT8:
    case TK_DTYPE_UINT8:
    case TK_DTYPE_BOOL:
        return 1u;
    case TK_DTYPE_INT16:
        return 2u;
    case TK_DTYPE_INT32:
    case TK_DTYPE_FLOAT32:
        return 4u;
    case TK_DTYPE_INT64:
        return 8u;
    }
    return 0u;
}

#ifdef __cplusplus
}
#endif
#endif /* TK_MODEL_H */
