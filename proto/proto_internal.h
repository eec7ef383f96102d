/* proto_internal.h: helpers shared by the proto/ sources and nobody else:
 * big-endian integer decoding and encoding. The wire is big-endian whatever the
 * host is, so every multi-byte integer goes through these (byte shifts, no
 * unaligned loads, no dependency on <arpa/inet.h>). */
#pragma once

#include <stdint.h>

static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

/* Two's-complement reinterpretation without implementation-defined casts. */
static inline int32_t proto_u32_to_i32(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : (int32_t)(v - 2147483648u) - INT32_MAX - 1;
}

static inline void proto_set_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
