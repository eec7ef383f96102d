/* peer.h: "ADDR:PORT" of the far end of a TCP connection, for log lines. */
#pragma once

#include <stddef.h>
#include <uv.h>

/* "?:0" when the address cannot be read. */
void peer_describe(const uv_tcp_t *tcp, char *out, size_t len);
