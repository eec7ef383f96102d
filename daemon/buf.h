/* buf.h: a growable byte queue for socket input and output: bytes are
 * appended at the end and consumed from the front without moving memory
 * until space is needed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct tp_buf {
    uint8_t *data;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of valid bytes (data[off..len) is the content) */
    size_t cap;
} tp_buf;

static inline size_t tp_buf_size(const tp_buf *b) { return b->len - b->off; }
static inline uint8_t *tp_buf_head(const tp_buf *b) { return b->data + b->off; }

/* Make room for at least `want` more bytes at the end; returns the write
 * pointer or NULL when out of memory. */
uint8_t *tp_buf_reserve(tp_buf *b, size_t want);
int tp_buf_append(tp_buf *b, const void *data, size_t n) __attribute__((warn_unused_result));
void tp_buf_consume(tp_buf *b, size_t n);
void tp_buf_free(tp_buf *b);
/* Release memory of an empty buffer that grew large (keeps idle clients small). */
void tp_buf_shrink_if_empty(tp_buf *b, size_t keep);
