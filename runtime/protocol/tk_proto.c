/* Device side of the tinykiln protocol: see tk_proto.h for the frame layout. */
#include "tk_proto.h"

/* Bitwise CRC-32 (reflected, polynomial 0xEDB88320): no 1 KB table in flash, and the link, not the
 * CRC, is the bottleneck on every board. */
uint32_t tk_crc32(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static int read_exact(uint8_t *dst, size_t n, int (*getc)(void))
{
    for (size_t i = 0; i < n; i++) {
        int c = getc();
        if (c < 0)
            return TK_READ_EOF;
        if (dst)
            dst[i] = (uint8_t)c;
    }
    return TK_READ_OK;
}

int tk_proto_read(tk_frame *f, int (*getc)(void))
{
    /* Hunt for the magic: whatever came before it is noise. */
    int prev = -1;
    for (;;) {
        int c = getc();
        if (c < 0)
            return TK_READ_EOF;
        if (prev == (int)TK_PROTO_MAGIC0 && c == (int)TK_PROTO_MAGIC1)
            break;
        prev = c;
    }
    uint8_t head[TK_PROTO_HEADER - 2];
    if (read_exact(head, sizeof head, getc) != TK_READ_OK)
        return TK_READ_EOF;
    f->version = head[0];
    f->cmd = head[1];
    f->seq = head[2];
    f->status = head[3];
    f->len = tk_get_u16(&head[4]);
    if (f->len > TK_PROTO_MAX_PAYLOAD) {
        /* Skip the payload and CRC so the next read starts at a frame boundary. */
        if (read_exact(NULL, (size_t)f->len + 4u, getc) != TK_READ_OK)
            return TK_READ_EOF;
        return TK_READ_TOO_LONG;
    }
    uint8_t crc_bytes[4];
    if (read_exact(f->payload, f->len, getc) != TK_READ_OK || read_exact(crc_bytes, 4, getc) != TK_READ_OK)
        return TK_READ_EOF;
    uint32_t crc = tk_crc32(0, head, sizeof head);
    crc = tk_crc32(crc, f->payload, f->len);
    return crc == tk_get_u32(crc_bytes) ? TK_READ_OK : TK_READ_CHECKSUM;
}

void tk_proto_write(uint8_t cmd, uint8_t seq, uint8_t status, const void *payload, uint16_t len,
                    void (*write)(const void *data, size_t n))
{
    uint8_t head[TK_PROTO_HEADER];
    head[0] = TK_PROTO_MAGIC0;
    head[1] = TK_PROTO_MAGIC1;
    head[2] = TK_PROTO_VERSION;
    head[3] = cmd;
    head[4] = seq;
    head[5] = status;
    tk_put_u16(&head[6], len);
    uint32_t crc = tk_crc32(0, &head[2], TK_PROTO_HEADER - 2u);
    crc = tk_crc32(crc, payload, len);
    uint8_t tail[4];
    tk_put_u32(tail, crc);
    write(head, sizeof head);
    if (len)
        write(payload, len);
    write(tail, sizeof tail);
}
