/* flush.h: batching of socket writes. Sends append to a connection's output
 * buffer and mark it; once per loop iteration (a uv_check handle, after all
 * I/O callbacks ran) every marked connection is written with one syscall.
 * A relayed result of many messages thus costs one write, not one per
 * message. An idle handle keeps the loop from blocking while marks wait. */
#pragma once

typedef struct tp_client tp_client;
typedef struct tp_backend tp_backend;

void flush_init(void);
void flush_close(void);
void flush_client_later(tp_client *c);
void flush_backend_later(tp_backend *b);
void flush_forget_client(tp_client *c);
void flush_forget_backend(tp_backend *b);
