/* peer.c: names the far end of an accepted TCP connection (client
 * connections and metrics scrapes) as "ADDR:PORT" for log lines. */
#include "daemon/peer.h"

#include <stdio.h>

void peer_describe(const uv_tcp_t *tcp, char *out, size_t len)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char host[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, len, "%s:%d", host, port);
}
