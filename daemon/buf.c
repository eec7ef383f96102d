/* buf.c: the byte queue used for every socket's input and output. */
#include "daemon/buf.h"

#include <stdlib.h>
#include <string.h>

uint8_t *tp_buf_reserve(tp_buf *b, size_t want)
{
    if (b->off == b->len) b->off = b->len = 0;
    if (b->cap - b->len >= want) return b->data + b->len;
    size_t used = b->len - b->off;
    if (b->off > 0 && b->cap - used >= want) {
        memmove(b->data, b->data + b->off, used);
        b->off = 0;
        b->len = used;
        return b->data + b->len;
    }
    size_t cap = b->cap ? b->cap : 512;
    while (cap - used < want) cap *= 2;
    uint8_t *n = malloc(cap);
    if (!n) return NULL;
    if (used) memcpy(n, b->data + b->off, used);
    free(b->data);
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
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void tp_buf_shrink_if_empty(tp_buf *b, size_t keep)
{
    if (b->off == b->len && b->cap > keep) tp_buf_free(b);
}
