/* listener.c: opens, accepts on and closes the client-facing sockets. TCP
 * listeners bind each address of listen_addr (`*` = every IPv4 and IPv6
 * address); the Unix socket is created with unix_socket_mode, and a stale
 * socket file left by a dead process is replaced, a live one is refused. */
#include "daemon/listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/log.h"
#include "daemon/server.h"

typedef struct listener {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    bool unix_socket;
    char *path; /* socket file to unlink at close */
    struct listener *next;
} listener;

static listener *all_listeners;

static void on_connection(uv_stream_t *server, int status)
{
    listener *l = server->data;
    if (status < 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    client_accept(server, l->unix_socket);
}

static void on_listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    free(l->path);
    free(l);
}

static listener *listener_new(bool unix_socket)
{
    listener *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    l->unix_socket = unix_socket;
    return l;
}

static int open_tcp(const char *addr, int port)
{
    struct sockaddr_storage ss;
    int rc;
    if (strchr(addr, ':'))
        rc = uv_ip6_addr(addr, port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(addr, port, (struct sockaddr_in *)&ss);
    if (rc < 0) {
        log_error("listen_addr %s: not a numeric address", addr);
        return rc;
    }
    listener *l = listener_new(false);
    if (!l) return UV_ENOMEM;
    uv_tcp_init(tp.loop, &l->h.tcp);
    l->h.handle.data = l;
    unsigned flags = strchr(addr, ':') ? UV_TCP_IPV6ONLY : 0;
    rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&ss, flags);
    if (rc == 0) rc = uv_listen(&l->h.stream, 1024, on_connection);
    if (rc < 0) {
        log_error("could not listen on %s:%d: %s", addr, port, uv_strerror(rc));
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    uv_tcp_nodelay(&l->h.tcp, 1);
    l->next = all_listeners;
    all_listeners = l;
    log_info("listening on %s:%d", addr, port);
    return 0;
}

/* A socket file exists: is a process still accepting on it? */
static bool socket_is_live(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    bool live = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    return live;
}

static int open_unix(const char *dir, int port, int mode)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int n = snprintf(path, sizeof path, "%s/.s.PGSQL.%d", dir, port);
    if (n < 0 || (size_t)n >= sizeof path) {
        log_error("unix_socket_dir %s: path too long for a socket", dir);
        return UV_ENAMETOOLONG;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (socket_is_live(path)) {
            log_error("could not listen on %s: another server is accepting on it", path);
            return UV_EADDRINUSE;
        }
        unlink(path);
    }
    listener *l = listener_new(true);
    if (!l) return UV_ENOMEM;
    l->path = strdup(path);
    uv_pipe_init(tp.loop, &l->h.pipe, 0);
    l->h.handle.data = l;
    int rc = uv_pipe_bind(&l->h.pipe, path);
    if (rc == 0 && chmod(path, (mode_t)mode) < 0) rc = -errno;
    if (rc == 0) rc = uv_listen(&l->h.stream, 1024, on_connection);
    if (rc < 0) {
        log_error("could not listen on %s: %s", path, uv_strerror(rc));
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    l->next = all_listeners;
    all_listeners = l;
    log_info("listening on %s", path);
    return 0;
}

int listeners_open(const config *cfg)
{
    int rc;
    for (size_t i = 0; i < cfg->n_listen_addrs; i++) {
        const char *a = cfg->listen_addrs[i];
        if (strcmp(a, "*") == 0) {
            if ((rc = open_tcp("0.0.0.0", cfg->listen_port)) < 0) return rc;
            if ((rc = open_tcp("::", cfg->listen_port)) < 0)
                log_warn("IPv6 listener not opened; continuing with IPv4");
        } else if ((rc = open_tcp(a, cfg->listen_port)) < 0) {
            return rc;
        }
    }
    if (cfg->unix_socket_dir &&
        (rc = open_unix(cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode)) < 0)
        return rc;
    if (!all_listeners) log_warn("no listener configured: listen_addr and unix_socket_dir are empty");
    return 0;
}

void listeners_close(void)
{
    for (listener *l = all_listeners, *next; l; l = next) {
        next = l->next;
        if (l->path) unlink(l->path);
        uv_close(&l->h.handle, on_listener_closed);
    }
    all_listeners = NULL;
}
