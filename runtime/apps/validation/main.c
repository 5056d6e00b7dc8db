/* The validation app: serves the device protocol (runtime/protocol/tk_proto.h) on the console for the
 * first model linked into the firmware, until the host sends EXIT or the input ends.
 *
 * The host (site_scons/tinykiln/runner) sets the inputs, invokes, reads the outputs and compares them
 * with the TFLite reference. Everything goes through the ai_* API, so this app also tests it.
 *
 * Built with TK_VALIDATION_FAULT defined, it faults on purpose inside INVOKE: the tests use it to
 * prove that a fault report reaches the user through the runner. */
#include <string.h>

#include "ai_runtime.h"
#include "tk_board.h"
#include "tk_proto.h"

#ifndef TK_VALIDATION_MAX_LAYERS
#define TK_VALIDATION_MAX_LAYERS 512
#endif

static tk_frame request;
static uint8_t reply[TK_PROTO_MAX_PAYLOAD];
static uint32_t layer_cycles[TK_VALIDATION_MAX_LAYERS];
static uint32_t profiled_layers; /* layers timed by the last profiled invoke; 0 if none */

static void console_write(const void *data, size_t n) { tk_console_write(data, n); }

/* Replies to the current request. Returns 0 so handlers can `return send(...)`. */
static int send(uint8_t status, const void *payload, size_t len)
{
    tk_proto_write((uint8_t)(request.cmd | 0x80u), request.seq, status, payload, (uint16_t)len,
                   console_write);
    return 0;
}

static int fail(uint8_t status, const char *message)
{
    return send(status, message, strlen(message));
}

/* Appends a length-prefixed string to reply[], cut at 255 bytes and at the buffer's end. */
static size_t put_str(size_t at, const char *s)
{
    if (at >= sizeof reply)
        return at;
    size_t room = sizeof reply - at - 1u;
    size_t n = s ? strlen(s) : 0u;
    if (n > 255u)
        n = 255u;
    if (n > room)
        n = room;
    reply[at] = (uint8_t)n;
    memcpy(&reply[at + 1u], s ? s : "", n);
    return at + 1u + n;
}

static int cmd_info(ai_handle h)
{
    size_t at = 0;
    reply[at++] = TK_PROTO_VERSION;
    tk_put_u16(&reply[at], TK_PROTO_MAX_PAYLOAD);
    at += 2;
    reply[at++] = (uint8_t)ai_get_input_size(h);
    reply[at++] = (uint8_t)ai_get_output_size(h);
    tk_put_u16(&reply[at], (uint16_t)ai_get_node_size(h));
    at += 2;
    tk_put_u32(&reply[at], ai_get_activations_size(h));
    at += 4;
    tk_put_u32(&reply[at], ai_get_params_size(h));
    at += 4;
    tk_put_u32(&reply[at], tk_clock_hz());
    at += 4;
    at = put_str(at, ai_get_name(h));
    at = put_str(at, ai_get_build_id(h));
    at = put_str(at, tk_board_name());
    at = put_str(at, tk_core_name());
    at = put_str(at, tk_cycles_name());
    return send(TK_ST_OK, reply, at);
}

static ai_tensor *tensor_of(ai_handle h, uint8_t kind, uint8_t index)
{
    return kind == 0u ? ai_get_input(h, index) : kind == 1u ? ai_get_output(h, index) : NULL;
}

static int cmd_tensor_info(ai_handle h)
{
    if (request.len < 2u)
        return fail(TK_ST_ARGUMENT, "TENSOR_INFO needs kind and index");
    ai_tensor *t = tensor_of(h, request.payload[0], request.payload[1]);
    if (t == NULL)
        return fail(TK_ST_ARGUMENT, "no such tensor");
    const tk_tensor_info *info = t->info;
    size_t at = 0;
    reply[at++] = (uint8_t)info->dtype;
    reply[at++] = info->rank;
    for (unsigned d = 0; d < info->rank; d++, at += 4)
        tk_put_u32(&reply[at], (uint32_t)info->shape[d]);
    tk_put_u32(&reply[at], info->size_bytes);
    at += 4;
    uint32_t scale_bits;
    memcpy(&scale_bits, &info->scale, sizeof scale_bits);
    tk_put_u32(&reply[at], scale_bits);
    at += 4;
    tk_put_u32(&reply[at], (uint32_t)info->zero_point);
    at += 4;
    at = put_str(at, info->name);
    return send(TK_ST_OK, reply, at);
}

static int cmd_set_input(ai_handle h)
{
    if (request.len < 5u)
        return fail(TK_ST_ARGUMENT, "SET_INPUT needs index and offset");
    ai_tensor *t = ai_get_input(h, request.payload[0]);
    uint32_t offset = tk_get_u32(&request.payload[1]);
    uint32_t n = request.len - 5u;
    if (t == NULL)
        return fail(TK_ST_ARGUMENT, "SET_INPUT: no such input");
    if (offset > t->size || n > t->size - offset)
        return fail(TK_ST_ARGUMENT, "SET_INPUT: bytes past the end of the input");
    memcpy((uint8_t *)t->data + offset, &request.payload[5], n);
    return send(TK_ST_OK, NULL, 0);
}

static int cmd_invoke(ai_handle h)
{
#ifdef TK_VALIDATION_FAULT
    tk_fault_on_purpose();
#endif
    int profile = request.len >= 1u && (request.payload[0] & 1u);
    uint32_t n_layers = (uint32_t)ai_get_node_size(h);
    if (profile && n_layers > TK_VALIDATION_MAX_LAYERS)
        return fail(TK_ST_ARGUMENT, "INVOKE: too many layers to profile; rebuild with a larger "
                                    "TK_VALIDATION_MAX_LAYERS");
    uint32_t start = tk_cycles();
    ai_status status = profile ? ai_run_profiled(h, tk_cycles, layer_cycles) : ai_run(h);
    uint32_t cycles = tk_cycles() - start;
    if (status != AI_STATUS_OK)
        return fail(TK_ST_RUN, ai_get_error(h));
    profiled_layers = profile ? n_layers : 0u;
    tk_put_u32(reply, cycles);
    return send(TK_ST_OK, reply, 4);
}

static int cmd_get_output(ai_handle h)
{
    if (request.len < 7u)
        return fail(TK_ST_ARGUMENT, "GET_OUTPUT needs index, offset and length");
    ai_tensor *t = ai_get_output(h, request.payload[0]);
    uint32_t offset = tk_get_u32(&request.payload[1]);
    uint32_t n = tk_get_u16(&request.payload[5]);
    if (t == NULL)
        return fail(TK_ST_ARGUMENT, "GET_OUTPUT: no such output");
    if (n > sizeof reply)
        return fail(TK_ST_ARGUMENT, "GET_OUTPUT: length over the max payload");
    if (offset > t->size || n > t->size - offset)
        return fail(TK_ST_ARGUMENT, "GET_OUTPUT: bytes past the end of the output");
    return send(TK_ST_OK, (const uint8_t *)t->data + offset, n);
}

static int cmd_layer_info(ai_handle h)
{
    if (request.len < 2u)
        return fail(TK_ST_ARGUMENT, "LAYER_INFO needs an index");
    const tk_layer_info *layer = ai_get_node(h, tk_get_u16(request.payload));
    if (layer == NULL)
        return fail(TK_ST_ARGUMENT, "LAYER_INFO: no such layer");
    tk_put_u32(reply, (uint32_t)layer->op_index);
    size_t at = put_str(4, layer->op);
    at = put_str(at, layer->kernel);
    return send(TK_ST_OK, reply, at);
}

static int cmd_get_profile(void)
{
    if (request.len < 4u)
        return fail(TK_ST_ARGUMENT, "GET_PROFILE needs first and count");
    uint32_t first = tk_get_u16(request.payload);
    uint32_t count = tk_get_u16(&request.payload[2]);
    if (profiled_layers == 0u)
        return fail(TK_ST_ARGUMENT, "GET_PROFILE: no profiled INVOKE yet");
    if (first > profiled_layers || count > profiled_layers - first || count * 4u > sizeof reply)
        return fail(TK_ST_ARGUMENT, "GET_PROFILE: range past the layers, or over the max payload");
    for (uint32_t i = 0; i < count; i++)
        tk_put_u32(&reply[i * 4u], layer_cycles[first + i]);
    return send(TK_ST_OK, reply, count * 4u);
}

int app_main(void)
{
    tk_cycles_start();
    if (tk_model_count == 0u) {
        tk_console_puts("validation: no model linked\n");
        return 2;
    }
    ai_handle h;
    if (ai_create(tk_models[0], NULL, &h) != AI_STATUS_OK) {
        tk_console_puts("validation: ");
        tk_console_puts(ai_get_error(NULL));
        tk_console_puts("\n");
        return 2;
    }
    /* A line for a human watching the console; the host skips non-frame bytes. */
    tk_console_puts("tinykiln validation: ");
    tk_console_puts(ai_get_name(h));
    tk_console_puts(", waiting for the host\n");

    for (;;) {
        int got = tk_proto_read(&request, tk_console_getc);
        if (got == TK_READ_EOF)
            return 0; /* the host went away: nothing left to serve */
        if (got == TK_READ_CHECKSUM) {
            fail(TK_ST_CHECKSUM, "bad checksum");
            continue;
        }
        if (got == TK_READ_TOO_LONG) {
            fail(TK_ST_TOO_LONG, "payload longer than the device's max payload");
            continue;
        }
        if (request.version != TK_PROTO_VERSION) {
            reply[0] = TK_PROTO_VERSION;
            memcpy(&reply[1], "protocol version mismatch", 25);
            send(TK_ST_VERSION, reply, 26);
            continue;
        }
        switch (request.cmd) {
        case TK_CMD_INFO:
            cmd_info(h);
            break;
        case TK_CMD_TENSOR_INFO:
            cmd_tensor_info(h);
            break;
        case TK_CMD_SET_INPUT:
            cmd_set_input(h);
            break;
        case TK_CMD_INVOKE:
            cmd_invoke(h);
            break;
        case TK_CMD_GET_OUTPUT:
            cmd_get_output(h);
            break;
        case TK_CMD_LAYER_INFO:
            cmd_layer_info(h);
            break;
        case TK_CMD_GET_PROFILE:
            cmd_get_profile();
            break;
        case TK_CMD_RESET:
            if (ai_reset(h) != AI_STATUS_OK) {
                fail(TK_ST_RUN, ai_get_error(h));
                break;
            }
            tk_put_u32(reply, ai_get_state_size(h));
            send(TK_ST_OK, reply, 4);
            break;
        case TK_CMD_ECHO:
            send(TK_ST_OK, request.payload, request.len);
            break;
        case TK_CMD_EXIT: {
            int status = request.len >= 1u ? request.payload[0] : 0;
            send(TK_ST_OK, NULL, 0);
            ai_destroy(h);
            return status;
        }
        default:
            fail(TK_ST_UNKNOWN, "unknown command");
            break;
        }
    }
}
