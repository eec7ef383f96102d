/* buf.h: a growable byte queue for socket input and output: bytes are
 * appended at the end and consumed from the front without moving memory
 * until space is needed. Also tp_shared, an immutable block of bytes held
 * by reference (a statement's text, kept by the client's list of statements
 * and by echo's record of each run still in flight). */
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

/* One allocation: refs, then len bytes and a NUL after them (so a text is
 * a C string as it is). Not thread-safe, like the rest of the loop. */
typedef struct tp_shared {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
} tp_shared;

/* A copy of len bytes (at most UINT32_MAX) with one reference; NULL when out of memory. */
tp_shared *tp_shared_new(const void *data, size_t len);
/* Another reference to s (NULL stays NULL). */
static inline tp_shared *tp_shared_ref(tp_shared *s)
{
    if (s) s->refs++;
    return s;
}
/* Drop a reference (NULL is ignored); the last one frees it. */
void tp_shared_unref(tp_shared *s);
