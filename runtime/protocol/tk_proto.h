/* The tinykiln device protocol, device side: framing, checksum, version. The host side is
 * site_scons/tinykiln/runner/protocol.py; the spec below is shared and both must follow it.
 *
 * Frame (both directions, little-endian):
 *
 *   offset size
 *   0      2    magic 'T' 'K' (0x54 0x4B)
 *   2      1    protocol version (TK_PROTO_VERSION)
 *   3      1    command; replies carry command | 0x80
 *   4      1    sequence number (the reply echoes the request's)
 *   5      1    status: 0 in requests; in replies TK_ST_OK or an error (then payload = message text)
 *   6      2    payload length N (at most the device's max payload, see INFO)
 *   8      N    payload
 *   8+N    4    CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 2 .. 8+N-1
 *
 * Bytes 0..7 keep this layout in every future version, so any version can read a frame's length
 * and answer a version mismatch with TK_ST_VERSION. Bytes outside frames are skipped (a receiver
 * hunts for the magic), which lets the host show whatever else the device printed (a fault
 * report, a banner after a reset). */
#ifndef TK_PROTO_H
#define TK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TK_PROTO_VERSION 1u
#define TK_PROTO_MAGIC0 0x54u /* 'T' */
#define TK_PROTO_MAGIC1 0x4Bu /* 'K' */
#define TK_PROTO_HEADER 8u
#ifndef TK_PROTO_MAX_PAYLOAD
#define TK_PROTO_MAX_PAYLOAD 1024u /* the device's receive buffer; advertised in INFO */
#endif

/* Commands. Payload layouts: request -> reply (strings are u8 length + bytes). */
enum {
    TK_CMD_INFO = 0x01,        /* -> u8 version, u16 max_payload, u8 n_inputs, u8 n_outputs,
                                *    u16 n_layers, u32 arena, u32 weights, u32 clock_hz,
                                *    str model, str build_id, str board, str core, str cycle_unit */
    TK_CMD_TENSOR_INFO = 0x02, /* u8 kind (0 input, 1 output), u8 index -> u8 dtype, u8 rank,
                                *    i32 shape[rank], u32 bytes, f32 scale, i32 zero_point, str name */
    TK_CMD_SET_INPUT = 0x03,   /* u8 index, u32 offset, bytes -> (empty) */
    TK_CMD_INVOKE = 0x04,      /* u8 flags (bit 0: profile layers) -> u32 cycles */
    TK_CMD_GET_OUTPUT = 0x05,  /* u8 index, u32 offset, u16 length -> bytes */
    TK_CMD_LAYER_INFO = 0x06,  /* u16 index -> i32 op_index, str op, str kernel */
    TK_CMD_GET_PROFILE = 0x07, /* u16 first, u16 count -> u32 cycles[count] of the last profiled run */
    TK_CMD_ECHO = 0x08,        /* bytes -> the same bytes */
    TK_CMD_EXIT = 0x09,        /* u8 status -> (empty); then the app ends with that status */
    TK_CMD_RESET = 0x0A,       /* -> u32 state bytes; the model's state is cleared (stateful models,
                                *    between sequences of INVOKEs; a no-op, 0 bytes, for the others).
                                *    Added within version 1: a device built before it answers
                                *    TK_ST_UNKNOWN, every other command is unchanged */
};

/* Reply status. */
enum {
    TK_ST_OK = 0,
    TK_ST_VERSION = 1,   /* request version != device version; payload: u8 device version + text */
    TK_ST_CHECKSUM = 2,  /* the request's CRC did not match */
    TK_ST_TOO_LONG = 3,  /* payload longer than the device's max payload */
    TK_ST_UNKNOWN = 4,   /* unknown command */
    TK_ST_ARGUMENT = 5,  /* bad index, offset or length */
    TK_ST_RUN = 6,       /* the model failed to run */
};

typedef struct {
    uint8_t version;
    uint8_t cmd;
    uint8_t seq;
    uint8_t status;
    uint16_t len;
    uint8_t payload[TK_PROTO_MAX_PAYLOAD];
} tk_frame;

/* Results of tk_proto_read. */
enum {
    TK_READ_OK = 0,
    TK_READ_EOF = -1,      /* the input ended (host pipe closed) */
    TK_READ_CHECKSUM = -2, /* frame read completely, CRC wrong; header fields are as received */
    TK_READ_TOO_LONG = -3, /* declared length over TK_PROTO_MAX_PAYLOAD; the payload was skipped */
};

uint32_t tk_crc32(uint32_t crc, const void *data, size_t n);

/* Reads one frame, skipping bytes until a magic. getc returns 0..255 or -1 at end of input.
 * A frame of another protocol version is returned as TK_READ_OK with f->version set: the caller
 * answers it with TK_ST_VERSION. */
int tk_proto_read(tk_frame *f, int (*getc)(void));

/* Writes one frame: header, payload, CRC. */
void tk_proto_write(uint8_t cmd, uint8_t seq, uint8_t status, const void *payload, uint16_t len,
                    void (*write)(const void *data, size_t n));

/* Little-endian helpers for payloads. */
static inline void tk_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void tk_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t tk_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t tk_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#ifdef __cplusplus
}
#endif
#endif /* TK_PROTO_H */
