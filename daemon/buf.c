/* buf.c: the byte queue used for every socket's input and output, and the
 * shared byte blocks (tp_shared). */
#include "daemon/buf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool borrowed(const tp_buf *b)
{
    return b->cap == 0 && b->data != NULL;
}

/* Blocks of the smallest size are kept for reuse (a client's output buffer
 * is taken and given back on every transaction): a few, loop-wide. */
#define BUF_MIN 512
#define SPARE_MAX 32
static uint8_t *spare[SPARE_MAX];
static int n_spare;

static uint8_t *alloc_block(size_t cap)
{
    if (cap == BUF_MIN && n_spare > 0) return spare[--n_spare];
    return malloc(cap);
}

static void free_block(uint8_t *p, size_t cap)
{
    if (cap == BUF_MIN && n_spare < SPARE_MAX)
        spare[n_spare++] = p;
    else
        free(p);
}

uint8_t *tp_buf_reserve(tp_buf *b, size_t want)
{
    bool own = !borrowed(b);
    if (own && b->off == b->len) b->off = b->len = 0;
    if (own && b->cap - b->len >= want) return b->data + b->len;
    size_t used = b->len - b->off;
    if (own && b->off > 0 && b->cap - used >= want) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : BUF_MIN;
    while (cap < used + want)
        cap *= 2;
    uint8_t *n = alloc_block(cap);
    if (!n) return NULL;
    if (used) memcpy(n, b->data + b->off, used);
    if (own && b->data) free_block(b->data, b->cap);
    b->data = n;
    b->cap = cap;
    b->off = 0;
    b->len = used;
    return b->data + b->len;
}

int tp_buf_append(tp_buf *b, const void *data, size_t n)
{
    if (n == 0) return 0;
    uint8_t *w = tp_buf_reserve(b, n);
    if (!w) return -1;
    memcpy(w, data, n);
    b->len += n;
    return 0;
}

void tp_buf_consume(tp_buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) b->off = b->len = 0;
}

void tp_buf_free(tp_buf *b)
{
    if (!borrowed(b) && b->data) free_block(b->data, b->cap);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void tp_buf_shrink_if_empty(tp_buf *b, size_t keep)
{
    if (b->off == b->len && b->cap > keep) tp_buf_free(b);
}

void tp_buf_borrow(tp_buf *b, uint8_t *data, size_t n)
{
    tp_buf_free(b);
    b->data = data;
    b->len = n;
}

int tp_buf_own(tp_buf *b)
{
    if (!borrowed(b)) return 0;
    if (b->off == b->len) {
        tp_buf_free(b);
        return 0;
    }
    return tp_buf_reserve(b, 0) ? 0 : -1;
}

tp_shared *tp_shared_new(const void *data, size_t len)
{
    if (len > UINT32_MAX) return NULL;
    tp_shared *s = malloc(sizeof *s + len + 1);
    if (!s) return NULL;
    s->refs = 1;
    s->len = (uint32_t)len;
    if (len) memcpy(s->data, data, len);
    s->data[len] = 0;
    return s;
}

void tp_shared_unref(tp_shared *s)
{
    if (s && --s->refs == 0) free(s);
}
