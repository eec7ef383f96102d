/* listener_systemd.h: the listening sockets systemd passes to the daemon
 * (socket activation: LISTEN_FDS, from a .socket unit or
 * systemd-socket-activate), described so the listeners can adopt them. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct listener_fd {
    int fd;                       /* the listening socket, ours once taken */
    bool unix_socket;             /* AF_UNIX (else AF_INET or AF_INET6) */
    bool used;                    /* a listener adopted it */
    struct sockaddr_storage addr; /* its local address (getsockname) */
    socklen_t addr_len;
    char name[128]; /* "127.0.0.1:6432", "[::1]:6432" or the path */
} listener_fd;

/* Take the sockets passed in LISTEN_FDS (and unset LISTEN_*). *out is a
 * malloc'd array (free it), NULL when none. Passed descriptors that are not
 * listening stream sockets are logged and closed. Returns how many, or a
 * negative error. Without libsystemd, 0. */
int listener_fds_take(listener_fd **out) __attribute__((warn_unused_result));
/* The unused passed socket bound to exactly this address (family, address,
 * port; for AF_UNIX the path), or NULL. */
listener_fd *listener_fds_find(listener_fd *fds, size_t n, const struct sockaddr *addr);
/* The unused passed IPv6 wildcard socket [::]:port that also accepts IPv4
 * (IPV6_V6ONLY off, systemd's ListenStream=PORT), or NULL. */
listener_fd *listener_fds_find_dual_stack(listener_fd *fds, size_t n, int port);
