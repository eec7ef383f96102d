/* listener_systemd.c: socket activation. Takes the descriptors systemd passed
 * (sd_listen_fds), keeps the listening stream sockets, names each by its
 * local address (getsockname) and finds the one a configured listener asks
 * for, so listener.c opens it instead of binding. Built without libsystemd,
 * no socket is ever passed. */
#include "daemon/listener_systemd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/log.h"

#ifdef TIDEPOOL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static void name_address(listener_fd *p)
{
    const struct sockaddr *sa = (const struct sockaddr *)&p->addr;
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(p->name, sizeof p->name, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(p->name, sizeof p->name, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t path_len = p->addr_len > offsetof(struct sockaddr_un, sun_path)
                              ? p->addr_len - offsetof(struct sockaddr_un, sun_path)
                              : 0;
        if (path_len > 0 && un->sun_path[0] == '\0') /* abstract namespace */
            snprintf(p->name, sizeof p->name, "@%.*s", (int)(path_len - 1), un->sun_path + 1);
        else
            snprintf(p->name, sizeof p->name, "%.*s", (int)strnlen(un->sun_path, path_len), un->sun_path);
    }
}

#ifdef TIDEPOOL_HAVE_SYSTEMD
int listener_fds_take(listener_fd **out)
{
    *out = NULL;
    int n = sd_listen_fds(1);
    if (n < 0) {
        log_error("LISTEN_FDS: %s", strerror(-n));
        return n;
    }
    if (n == 0) return 0;
    listener_fd *fds = calloc((size_t)n, sizeof *fds);
    if (!fds) return -ENOMEM;
    int kept = 0;
    for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
        listener_fd *p = &fds[kept];
        p->fd = fd;
        p->addr_len = sizeof p->addr;
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0 ||
            getsockname(fd, (struct sockaddr *)&p->addr, &p->addr_len) < 0 ||
            (p->addr.ss_family != AF_INET && p->addr.ss_family != AF_INET6 && p->addr.ss_family != AF_UNIX)) {
            log_warn("descriptor %d passed by systemd is not a listening TCP or Unix stream socket: "
                     "closed",
                     fd);
            close(fd);
            continue;
        }
        p->unix_socket = p->addr.ss_family == AF_UNIX;
        name_address(p);
        kept++;
    }
    if (kept == 0) {
        free(fds);
        return 0;
    }
    log_info("systemd passed %d listening socket%s", kept, kept == 1 ? "" : "s");
    *out = fds;
    return kept;
}
#else
int listener_fds_take(listener_fd **out)
{
    (void)name_address;
    *out = NULL;
    if (getenv("LISTEN_FDS"))
        log_warn("LISTEN_FDS is set but tidepool was built without libsystemd: the passed sockets "
                 "are not used");
    return 0;
}
#endif

static bool same_address(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family) return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    if (a->sa_family == AF_UNIX) {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        return x->sun_path[0] != '\0' && strncmp(x->sun_path, y->sun_path, sizeof x->sun_path) == 0;
    }
    return false;
}

listener_fd *listener_fds_find(listener_fd *fds, size_t n, const struct sockaddr *addr)
{
    for (size_t i = 0; i < n; i++)
        if (!fds[i].used && same_address((const struct sockaddr *)&fds[i].addr, addr)) return &fds[i];
    return NULL;
}

listener_fd *listener_fds_find_dual_stack(listener_fd *fds, size_t n, int port)
{
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    listener_fd *p = listener_fds_find(fds, n, (struct sockaddr *)&any);
    int v6only = 1;
    socklen_t len = sizeof v6only;
    if (!p || getsockopt(p->fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len) < 0 || v6only) return NULL;
    return p;
}
