/* listener.c: opens, accepts on and closes the client-facing sockets. TCP
 * listeners bind each address of listen_addr (`*` = every IPv4 and IPv6
 * address). An item that is not a numeric address is a host name, resolved
 * with getaddrinfo once, at start, before the loop runs (so blocking is
 * harmless), and listened on at every address it resolves to; one of them
 * that this machine does not have (`localhost`'s ::1 without IPv6) is
 * skipped with a warning as long as another was bound. --check resolves the
 * names the same way (listeners_check). The Unix socket is created with
 * unix_socket_mode, and a stale
 * socket file left by a dead process is replaced, a live one is refused.
 * Under socket activation a configured listener whose address systemd passed
 * (listener_systemd.c) adopts that socket instead of binding, and its file is
 * left to systemd; passed sockets no listener asked for are adopted too. */
#include "daemon/listener.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/listener_systemd.h"
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
    char *path;                   /* socket file to unlink at close */
    struct sockaddr_storage addr; /* a TCP listener's own address, as bound (zero if adopted) */
    struct listener *next;
} listener;

static listener *all_listeners;
/* Sockets systemd passed, while listeners_open() runs. */
static listener_fd *passed;
static size_t n_passed;

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

/* Listen on l's opened or bound handle and add it to the list; on failure
 * close it. */
static int start_listening(listener *l, const char *what)
{
    int rc = uv_listen(&l->h.stream, 1024, on_connection);
    if (rc < 0) {
        log_error("could not listen on %s: %s", what, uv_strerror(rc));
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    if (!l->unix_socket) uv_tcp_nodelay(&l->h.tcp, 1);
    l->next = all_listeners;
    all_listeners = l;
    return 0;
}

/* Open a socket systemd passed (its file, if any, stays systemd's). */
static int adopt(listener_fd *p, bool configured)
{
    p->used = true;
    listener *l = listener_new(p->unix_socket);
    if (!l) return UV_ENOMEM;
    int rc;
    if (p->unix_socket) {
        uv_pipe_init(tp.loop, &l->h.pipe, 0);
        rc = uv_pipe_open(&l->h.pipe, p->fd);
    } else {
        uv_tcp_init(tp.loop, &l->h.tcp);
        rc = uv_tcp_open(&l->h.tcp, p->fd);
    }
    l->h.handle.data = l;
    if (rc < 0) {
        log_error("could not adopt the socket %s passed by systemd: %s", p->name, uv_strerror(rc));
        close(p->fd);
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    if ((rc = start_listening(l, p->name)) < 0) return rc;
    if (configured)
        log_info("listening on %s (socket adopted from systemd)", p->name);
    else
        log_info("listening on %s (socket adopted from systemd; no listen_addr or unix_socket_dir "
                 "names it)",
                 p->name);
    return 0;
}

/* The addresses of one listen_addr item (not "*"), with `port` set, each
 * once: a numeric address gives one, a host name every address it resolves
 * to. Returns how many (> 0) with *out malloc'd and *is_name set, or -1 with
 * `why` ("'NAME' does not resolve: ..."). */
static int resolve_addr(const char *addr, int port, struct sockaddr_storage **out, bool *is_name, char *why,
                        size_t why_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(addr, NULL, &hints, &res);
    *is_name = rc != 0;
    if (rc != 0) {
        hints.ai_flags = 0;
        rc = getaddrinfo(addr, NULL, &hints, &res);
    }
    if (rc != 0) {
        snprintf(why, why_len, "'%s' does not resolve: %s", addr,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return -1;
    }
    size_t n = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        n++;
    struct sockaddr_storage *v = calloc(n ? n : 1, sizeof *v);
    if (!v) {
        freeaddrinfo(res);
        snprintf(why, why_len, "'%s': out of memory", addr);
        return -1;
    }
    size_t used = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) || ai->ai_addrlen > sizeof v[0]) continue;
        struct sockaddr_storage ss = {0};
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        bool seen = false;
        for (size_t i = 0; i < used && !seen; i++)
            seen = memcmp(&v[i], &ss, sizeof ss) == 0;
        if (!seen) v[used++] = ss;
    }
    freeaddrinfo(res);
    if (used == 0) {
        free(v);
        snprintf(why, why_len, "'%s' does not resolve to an IPv4 or IPv6 address", addr);
        return -1;
    }
    *out = v;
    return (int)used;
}

/* Listen on one address; `name` is the host name it came from, or NULL. */
static int open_tcp_at(const struct sockaddr_storage *ss, const char *name)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port;
    if (ss->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    } else {
        uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    }
    char what[INET6_ADDRSTRLEN + 300];
    if (name)
        snprintf(what, sizeof what, "%s:%d (%s)", ip, port, name);
    else
        snprintf(what, sizeof what, "%s:%d", ip, port);
    listener_fd *p = listener_fds_find(passed, n_passed, (const struct sockaddr *)ss);
    if (p) return adopt(p, true);
    /* listen_addr = localhost, 127.0.0.1: the second names an address the
     * first already listens on. */
    for (listener *o = all_listeners; o; o = o->next)
        if (!o->unix_socket && memcmp(&o->addr, ss, sizeof *ss) == 0) {
            log_debug("already listening on %s", what);
            return 0;
        }
    listener *l = listener_new(false);
    if (!l) return UV_ENOMEM;
    l->addr = *ss;
    uv_tcp_init(tp.loop, &l->h.tcp);
    l->h.handle.data = l;
    unsigned flags = ss->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
    int rc = uv_tcp_bind(&l->h.tcp, (const struct sockaddr *)ss, flags);
    if (rc < 0) {
        /* A name's address this machine lacks is the caller's to judge. */
        if (!name || (rc != UV_EADDRNOTAVAIL && rc != UV_EAFNOSUPPORT && rc != UV_EINVAL))
            log_error("could not listen on %s: %s", what, uv_strerror(rc));
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    if ((rc = start_listening(l, what)) < 0) return rc;
    log_info("listening on %s", what);
    return 0;
}

/* Listen on a listen_addr item (`where`: "FILE:LINE" of the key, for the
 * message when it does not resolve). */
static int open_tcp(const char *addr, int port, const char *where)
{
    struct sockaddr_storage *v = NULL;
    bool is_name;
    char why[600];
    int n = resolve_addr(addr, port, &v, &is_name, why, sizeof why);
    if (n < 0) {
        log_error("%s: listen_addr: %s", where, why);
        return UV_EINVAL;
    }
    int rc = 0, opened = 0, first_err = 0;
    for (int i = 0; i < n; i++) {
        rc = open_tcp_at(&v[i], is_name ? addr : NULL);
        if (rc == 0) {
            opened++;
        } else if (is_name && (rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT || rc == UV_EINVAL)) {
            char ip[INET6_ADDRSTRLEN] = "?";
            if (v[i].ss_family == AF_INET6)
                uv_ip6_name((const struct sockaddr_in6 *)&v[i], ip, sizeof ip);
            else
                uv_ip4_name((const struct sockaddr_in *)&v[i], ip, sizeof ip);
            log_warn("listen_addr %s: not listening on its address %s: %s", addr, ip, uv_strerror(rc));
            if (!first_err) first_err = rc;
            rc = 0;
        } else {
            break; /* logged by open_tcp_at */
        }
    }
    free(v);
    if (rc < 0) return rc;
    if (opened == 0) {
        log_error("listen_addr %s: none of its addresses can be listened on", addr);
        return first_err ? first_err : UV_EADDRNOTAVAIL;
    }
    return 0;
}

int listeners_check(const config *cfg, void (*report)(void *arg, const char *message), void *arg)
{
    int problems = 0;
    char where[1100];
    config_key_where(cfg, "listen_addr", where, sizeof where);
    for (size_t i = 0; i < cfg->n_listen_addrs; i++) {
        const char *a = cfg->listen_addrs[i];
        if (strcmp(a, "*") == 0) continue;
        struct sockaddr_storage *v = NULL;
        bool is_name;
        char why[600], msg[1800];
        if (resolve_addr(a, cfg->listen_port, &v, &is_name, why, sizeof why) < 0) {
            snprintf(msg, sizeof msg, "%s: listen_addr: %s", where, why);
            report(arg, msg);
            problems++;
            continue;
        }
        free(v);
    }
    return problems;
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
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, path, (size_t)n + 1);
    listener_fd *p = listener_fds_find(passed, n_passed, (struct sockaddr *)&sun);
    if (p) return adopt(p, true);
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
    if (rc < 0) {
        log_error("could not listen on %s: %s", path, uv_strerror(rc));
        uv_close(&l->h.handle, on_listener_closed);
        return rc;
    }
    if ((rc = start_listening(l, path)) < 0) return rc;
    log_info("listening on %s", path);
    return 0;
}

static int open_configured(const config *cfg)
{
    int rc;
    char where[1100];
    config_key_where(cfg, "listen_addr", where, sizeof where);
    for (size_t i = 0; i < cfg->n_listen_addrs; i++) {
        const char *a = cfg->listen_addrs[i];
        listener_fd *both;
        if (strcmp(a, "*") == 0 &&
            (both = listener_fds_find_dual_stack(passed, n_passed, cfg->listen_port))) {
            /* systemd's ListenStream=PORT: one socket for IPv6 and IPv4. */
            if ((rc = adopt(both, true)) < 0) return rc;
        } else if (strcmp(a, "*") == 0) {
            if ((rc = open_tcp("0.0.0.0", cfg->listen_port, where)) < 0) return rc;
            if ((rc = open_tcp("::", cfg->listen_port, where)) < 0)
                log_warn("IPv6 listener not opened; continuing with IPv4");
        } else if ((rc = open_tcp(a, cfg->listen_port, where)) < 0) {
            return rc;
        }
    }
    if (cfg->unix_socket_dir &&
        (rc = open_unix(cfg->unix_socket_dir, cfg->listen_port, cfg->unix_socket_mode)) < 0)
        return rc;
    /* A socket the admin had systemd open is meant to be used, as PgBouncer
     * does, even when the configuration does not name it. */
    for (size_t i = 0; i < n_passed; i++)
        if (!passed[i].used && (rc = adopt(&passed[i], false)) < 0) return rc;
    return 0;
}

int listeners_open(const config *cfg)
{
    int rc = listener_fds_take(&passed);
    if (rc < 0) return rc;
    n_passed = (size_t)rc;
    rc = open_configured(cfg);
    for (size_t i = 0; i < n_passed; i++)
        if (!passed[i].used) close(passed[i].fd);
    free(passed);
    passed = NULL;
    n_passed = 0;
    if (rc < 0) return rc;
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
