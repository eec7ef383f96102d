/* buf.h: a growable byte queue for socket input and output: bytes are
 * appended at the end and consumed from the front without moving memory
 * until space is needed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A buffer may also borrow bytes it does not own (cap == 0, data != NULL):
 * a client's input straight from the loop's shared read buffer, so that
 * whole messages are relayed without a copy. Reserving space in a borrowed
 * buffer copies its bytes into memory of its own; tp_buf_own does the same
 * before the borrowed memory is reused. */
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
/* Borrow n bytes at data (b must be empty). */
void tp_buf_borrow(tp_buf *b, uint8_t *data, size_t n);
/* Stop borrowing: copy what is left into memory of its own (freeing when
 * nothing is). -1 when out of memory. */
int tp_buf_own(tp_buf *b) __attribute__((warn_unused_result));
/* Release memory of an empty buffer that grew large (keeps idle clients small). */
void tp_buf_shrink_if_empty(tp_buf *b, size_t keep);
