/* backend_connect.c: opening a backend without blocking the loop.
 *
 * The pool's conninfo is split by libpq's own parser. Host names are resolved
 * with uv_getaddrinfo (on libuv's thread pool) and handed to libpq as
 * hostaddr, so PQconnectPoll never calls the blocking resolver; Unix socket
 * paths and numeric addresses need no resolution. As with libpq, every
 * address of a name is tried, and a name that does not resolve is skipped. PQconnectStartParams and
 * PQconnectPoll then run the connect, TLS and authentication, driven by a
 * uv_poll on libpq's socket (which may change between hosts of a multi-host
 * url). Once connected, the pool's on_connect SQL runs, then the callback. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/backend.h"
#include "daemon/backend_internal.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"

#define MAX_CONN_KEYWORDS 64
#define DEFAULT_CONNECT_TIMEOUT 15 /* seconds, without connect_timeout in the url */

static uint64_t next_backend_id;

tp_backend *backend_alloc(tp_pool *p)
{
    tp_backend *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->slot.data = b;
    b->slot.state = POOL_CONN_GONE;
    b->pool = p;
    b->id = ++next_backend_id;
    b->fd = -1;
    b->txn_status = 'I';
    b->next_all = p->backends;
    if (p->backends) p->backends->prev_all = b;
    p->backends = b;
    p->n_backends++;
    return b;
}

static void free_targets(tp_backend *b);

static void free_hosts(tp_backend *b)
{
    for (int i = 0; i < b->n_hosts; i++) {
        free(b->hosts[i]);
        free(b->hostaddrs[i]);
    }
    free(b->hosts);
    free(b->hostaddrs);
    b->hosts = b->hostaddrs = NULL;
    b->n_hosts = 0;
    free_targets(b);
}

void backend_free_memory(tp_backend *b)
{
    tp_pool *p = b->pool;
    if (b->prev_all) b->prev_all->next_all = b->next_all;
    else if (p->backends == b) p->backends = b->next_all;
    if (b->next_all) b->next_all->prev_all = b->prev_all;
    p->n_backends--;
    if (b->cancel) PQfreeCancel(b->cancel);
    if (b->conn) PQfinish(b->conn);
    backend_connect_timer_stop(b);
    free_hosts(b);
    free(b->connect_error);
    free(b->query_sqlstate);
    free(b->query_message);
    tp_buf_free(&b->in);
    tp_buf_free(&b->out);
    params_clear(&b->params);
    expects_clear(&b->expects);
    prepared_clear(&b->prepared);
    replay_clear(&b->replay);
    free(b);
    pools_maybe_free(p); /* a removed pool's last backend */
}

void backend_discard(tp_backend *b) { backend_free_memory(b); }

void backend_connect_timer_stop(tp_backend *b)
{
    if (!b->connect_timer) return;
    uv_close((uv_handle_t *)b->connect_timer, (uv_close_cb)free); /* stops it */
    b->connect_timer = NULL;
}

/* End of a connect attempt: success (error NULL) or failure. */
static void connect_done(tp_backend *b, const char *error)
{
    backend_connect_timer_stop(b);
    backend_connect_cb cb = b->on_connected;
    b->on_connected = NULL;
    if (error) {
        free(b->connect_error);
        b->connect_error = strdup(error);
    }
    if (cb) cb(b, error);
}

static void connect_failed(tp_backend *b, const char *error)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", error && *error ? error : "could not connect");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
    /* Each attempt at debug; pools.c warns, without repeating itself while
     * the server stays unreachable. */
    log_debug("pool %s: backend %llu connect failed: %s", b->pool->cfg.pool_logging_name,
              (unsigned long long)b->id, msg);
    connect_done(b, msg);
}

static void on_setup_done(tp_backend *b, bool ok, const char *sqlstate, const char *message)
{
    if (!ok) {
        char msg[512];
        snprintf(msg, sizeof msg, "on_connect failed: %s", message ? message : "connection lost");
        connect_failed(b, msg);
        return;
    }
    connect_done(b, NULL);
}

static void on_connected(tp_backend *b)
{
    PQsetnonblocking(b->conn, 1);
    b->pid = PQbackendPID(b->conn);
    b->cancel = PQgetCancel(b->conn);
    if (PQsslInUse(b->conn)) {
        SSL *ssl = PQsslStruct(b->conn, "OpenSSL");
        if (ssl) {
            SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
            b->ssl = ssl;
        }
    }
    for (int i = 0; params_reported[i]; i++) {
        const char *v = PQparameterStatus(b->conn, params_reported[i]);
        if (v && params_set(&b->params, params_reported[i], v) < 0) {
            connect_failed(b, "out of memory");
            return;
        }
    }
    b->txn_status = 'I';
    b->state = BACKEND_SETUP;
    pools_echo(b->pool, false, "pool %s: Created new connection <backend %llu pid %d>",
               b->pool->cfg.pool_logging_name, (unsigned long long)b->id, b->pid);
    backend_poll_update(b, UV_READABLE);
    if (b->pool->cfg.on_connect) {
        if (backend_query(b, b->pool->cfg.on_connect, on_setup_done) < 0)
            connect_failed(b, "could not send on_connect");
        return;
    }
    connect_done(b, NULL);
}

static void restart_connect_timer(tp_backend *b);

/* Which of the entries libpq is trying now (it goes through them in order):
 * when it moved on, that entry gets its own deadline, as connect_timeout
 * gives each host in libpq. */
static void follow_target(tp_backend *b)
{
    if (!b->targets) return;
    const char *host = PQhost(b->conn), *port = PQport(b->conn), *addr = PQhostaddr(b->conn);
    int found = -1;
    for (int i = b->target_now; host && i < b->n_targets; i++) {
        const backend_target *t = &b->targets[i];
        if (strcmp(t->host, host) != 0 || (t->port && *t->port && port && strcmp(t->port, port) != 0)) continue;
        if (found < 0) found = i; /* the first of a name's addresses, unless one matches */
        if (addr && strcmp(t->addr, addr) == 0) {
            found = i;
            break;
        }
    }
    if (found > b->target_now) {
        b->target_now = found;
        restart_connect_timer(b);
    }
}

/* One step of PQconnectPoll; sets the poll to what libpq waits for. */
static void connect_step(tp_backend *b)
{
    PostgresPollingStatusType st = PQconnectPoll(b->conn);
    if (st == PGRES_POLLING_FAILED) {
        connect_failed(b, PQerrorMessage(b->conn));
        return;
    }
    int fd = PQsocket(b->conn);
    if (fd != b->fd) {
        /* libpq moved on to another host: watch its new socket. */
        backend_poll_close(b);
        b->fd = fd;
        if (backend_poll_open(b) < 0) {
            connect_failed(b, "could not watch the backend socket");
            return;
        }
    } else if (b->poll) {
        /* libpq may also have closed its socket and opened the next one
         * (another host or address) under the same number: epoll forgot the
         * closed one, so re-register instead of trusting the old watch. */
        uv_poll_stop(b->poll);
        b->poll_events = 0;
    }
    follow_target(b);
    if (st == PGRES_POLLING_OK) on_connected(b);
    else backend_poll_update(b, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
}

void backend_on_connect_poll(tp_backend *b, int status, int events)
{
    connect_step(b);
}

static bool is_numeric_addr(const char *h)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

static bool needs_resolution(const char *h)
{
    return h[0] != '\0' && h[0] != '/' && h[0] != '@' && !is_numeric_addr(h);
}

/* Item i of a comma-separated list as [*start, *start+len); false past its end. */
static bool list_item(const char *list, int i, const char **start, size_t *len)
{
    const char *s = list;
    for (; i > 0; i--) {
        s = strchr(s, ',');
        if (!s) return false;
        s++;
    }
    const char *e = strchr(s, ',');
    *start = s;
    *len = e ? (size_t)(e - s) : strlen(s);
    return true;
}

static int list_count(const char *list)
{
    int n = 1;
    for (const char *s = list; *s; s++) n += *s == ',';
    return n;
}

static void free_targets(tp_backend *b)
{
    for (int i = 0; i < b->n_targets; i++) {
        free(b->targets[i].host);
        free(b->targets[i].addr);
        free(b->targets[i].port);
    }
    free(b->targets);
    b->targets = NULL;
    b->n_targets = b->target_first = b->target_now = 0;
}

static char *strndup_or_empty(const char *s, size_t len) { return strndup(s ? s : "", s ? len : 0); }

/* libpq's host entries for the hosts that resolved: a name with several
 * addresses becomes one entry per address, which libpq tries in turn as it
 * does for names it resolves itself; a name that did not resolve is left
 * out. ports: the url's port list (NULL: none). Returns the number of
 * entries, or -1 (out of memory). */
static int build_targets(tp_backend *b, const char *ports)
{
    bool per_host = ports && b->n_hosts > 1 && list_count(ports) == b->n_hosts;
    int cap = 0;
    for (int i = 0; i < b->n_hosts; i++)
        if (b->hostaddrs[i]) cap += list_count(b->hostaddrs[i]);
    b->targets = calloc((size_t)(cap ? cap : 1), sizeof *b->targets);
    if (!b->targets) return -1;
    for (int i = 0; i < b->n_hosts; i++) {
        if (!b->hostaddrs[i]) continue; /* did not resolve */
        const char *port = NULL, *addr;
        size_t port_len = 0, addr_len;
        if (per_host) list_item(ports, i, &port, &port_len);
        for (int k = 0; list_item(b->hostaddrs[i], k, &addr, &addr_len) && b->n_targets < cap; k++) {
            backend_target *t = &b->targets[b->n_targets++];
            t->host = strdup(b->hosts[i]);
            t->addr = strndup(addr, addr_len);
            t->port = per_host ? strndup_or_empty(port, port_len) : NULL;
            if (!t->host || !t->addr || (per_host && !t->port)) return -1;
        }
    }
    return b->n_targets;
}

/* libpq's host, hostaddr and port lists (malloc'd) of the entries from
 * target_first on; *port_list NULL when the url's port applies to all. */
static int join_targets(tp_backend *b, char **host_list, char **addr_list, char **port_list)
{
    bool per_host = b->targets[0].port != NULL;
    size_t sizes[3];
    FILE *f[3] = {open_memstream(host_list, &sizes[0]), open_memstream(addr_list, &sizes[1]),
                  per_host ? open_memstream(port_list, &sizes[2]) : NULL};
    bool ok = f[0] && f[1] && (f[2] || !per_host);
    for (int i = b->target_first; ok && i < b->n_targets; i++) {
        const char *sep = i > b->target_first ? "," : "";
        fprintf(f[0], "%s%s", sep, b->targets[i].host);
        fprintf(f[1], "%s%s", sep, b->targets[i].addr);
        if (per_host) fprintf(f[2], "%s%s", sep, b->targets[i].port);
    }
    for (int k = 0; k < 3; k++)
        if (f[k] && fclose(f[k]) != 0) ok = false;
    if (!per_host) *port_list = NULL;
    if (ok) return 0;
    if (f[0]) free(*host_list);
    if (f[1]) free(*addr_list);
    if (f[2]) free(*port_list);
    *host_list = *addr_list = *port_list = NULL;
    return -1;
}

/* A notice PostgreSQL sends while libpq runs the connection (a WARNING at
 * login, say): one log line with a level, not libpq's own print to stderr. */
static void on_connect_notice(void *arg, const char *message)
{
    tp_backend *b = arg;
    size_t len = strlen(message);
    while (len > 0 && message[len - 1] == '\n')
        len--;
    log_info("pool %s: backend %llu: the server says: %.*s", b->pool->cfg.pool_logging_name,
             (unsigned long long)b->id, (int)len, message);
}

static void start_libpq(tp_backend *b)
{
    tp_pool *p = b->pool;
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(p->cfg.conninfo, &err);
    if (!opts) {
        connect_failed(b, err ? err : "invalid url");
        PQfreemem(err);
        return;
    }
    const char *kw[MAX_CONN_KEYWORDS + 1];
    const char *val[MAX_CONN_KEYWORDS + 1];
    int n = 0;
    char *options = NULL, *host_list = NULL, *addr_list = NULL, *port_list = NULL;
    bool have_fallback = false;
    if (b->n_hosts > 0) {
        const char *ports = NULL;
        for (PQconninfoOption *o = opts; o->keyword; o++)
            if (strcmp(o->keyword, "port") == 0 && o->val && *o->val) ports = o->val;
        int entries = b->targets ? b->n_targets : build_targets(b, ports);
        if (entries <= 0 || join_targets(b, &host_list, &addr_list, &port_list) < 0) {
            PQconninfoFree(opts);
            connect_failed(b, entries != 0 ? "out of memory"
                                           : (b->connect_error ? b->connect_error : "no host could be resolved"));
            return;
        }
    }
    for (PQconninfoOption *o = opts; o->keyword && n < MAX_CONN_KEYWORDS - 5; o++) {
        if (!o->val) continue;
        if (strcmp(o->keyword, "options") == 0) continue; /* merged below */
        if (b->n_hosts > 0 && (strcmp(o->keyword, "hostaddr") == 0 || strcmp(o->keyword, "host") == 0)) continue;
        if (port_list && strcmp(o->keyword, "port") == 0) continue;
        if (strcmp(o->keyword, "fallback_application_name") == 0) have_fallback = true;
        kw[n] = o->keyword;
        val[n] = o->val;
        n++;
    }
    const char *url_options = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "options") == 0 && o->val) url_options = o->val;
    if (url_options || p->startup_options) {
        size_t len = (url_options ? strlen(url_options) : 0) +
                     (p->startup_options ? strlen(p->startup_options) : 0) + 2;
        options = malloc(len);
        if (options) {
            snprintf(options, len, "%s%s%s", url_options ? url_options : "",
                     url_options && p->startup_options ? " " : "",
                     p->startup_options ? p->startup_options : "");
            kw[n] = "options";
            val[n] = options;
            n++;
        }
    }
    if (b->n_hosts > 0) {
        kw[n] = "host";
        val[n++] = host_list;
        kw[n] = "hostaddr";
        val[n++] = addr_list;
        if (port_list) {
            kw[n] = "port";
            val[n++] = port_list;
        }
    }
    if (!have_fallback) {
        kw[n] = "fallback_application_name";
        val[n] = "tidepool";
        n++;
    }
    kw[n] = NULL;
    val[n] = NULL;

    b->state = BACKEND_CONNECTING;
    b->conn = PQconnectStartParams(kw, val, 0);
    PQconninfoFree(opts);
    free(options);
    free(host_list);
    free(addr_list);
    free(port_list);
    if (!b->conn) {
        connect_failed(b, "out of memory");
        return;
    }
    if (PQstatus(b->conn) == CONNECTION_BAD) {
        connect_failed(b, PQerrorMessage(b->conn));
        return;
    }
    PQsetNoticeProcessor(b->conn, on_connect_notice, b);
    b->fd = PQsocket(b->conn);
    if (backend_poll_open(b) < 0) {
        connect_failed(b, "could not watch the backend socket");
        return;
    }
    /* libpq: after PQconnectStart, behave as if PGRES_POLLING_WRITING. */
    backend_poll_update(b, UV_WRITABLE);
}

static void resolve_next(tp_backend *b);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    tp_backend *b = req->data;
    b->open_handles--;
    if (b->state == BACKEND_CLOSING) {
        uv_freeaddrinfo(res);
        backend_maybe_free(b);
        return;
    }
    int i = b->resolve_index;
    free(b->hostaddrs[i]);
    b->hostaddrs[i] = NULL;
    if (status < 0 || !res) {
        /* As libpq does: leave this host out and try the others. */
        char msg[300];
        snprintf(msg, sizeof msg, "could not translate host name \"%s\" to address: %s", b->hosts[i],
                 uv_strerror(status));
        log_warn("pool %s: backend %llu: %s; trying the other hosts", b->pool->cfg.pool_logging_name,
                 (unsigned long long)b->id, msg);
        free(b->connect_error);
        b->connect_error = strdup(msg);
    } else {
        /* Every address, comma-separated: each becomes a libpq host entry. */
        size_t size = 0;
        FILE *f = open_memstream(&b->hostaddrs[i], &size);
        int count = 0;
        for (struct addrinfo *a = res; f && a; a = a->ai_next) {
            char addr[64] = "";
            if (a->ai_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)a->ai_addr, addr, sizeof addr);
            else if (a->ai_family == AF_INET) uv_ip4_name((struct sockaddr_in *)a->ai_addr, addr, sizeof addr);
            else continue;
            fprintf(f, "%s%s", count++ ? "," : "", addr);
        }
        if (!f || fclose(f) != 0 || count == 0) {
            free(b->hostaddrs[i]);
            b->hostaddrs[i] = NULL;
        }
    }
    uv_freeaddrinfo(res);
    b->resolve_index++;
    resolve_next(b);
}

static void resolve_next(tp_backend *b)
{
    while (b->resolve_index < b->n_hosts && !needs_resolution(b->hosts[b->resolve_index]))
        b->resolve_index++;
    if (b->resolve_index >= b->n_hosts) {
        start_libpq(b);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    b->gai.data = b;
    b->state = BACKEND_RESOLVING;
    int rc = uv_getaddrinfo(tp.loop, &b->gai, on_resolved, b->hosts[b->resolve_index], NULL, &hints);
    if (rc < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "could not resolve \"%s\": %s", b->hosts[b->resolve_index],
                 uv_strerror(rc));
        connect_failed(b, msg);
        return;
    }
    b->open_handles++;
}

/* Split the url's host list; prepare a hostaddr entry for each host. Returns
 * true when the hosts are kept: some name must be resolved, or there are
 * several (each entry then gets its own connect deadline). */
static bool plan_resolution(tp_backend *b)
{
    PQconninfoOption *opts = PQconninfoParse(b->pool->cfg.conninfo, NULL);
    if (!opts) return false;
    const char *host = NULL, *hostaddr = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0) host = o->val;
        if (strcmp(o->keyword, "hostaddr") == 0) hostaddr = o->val;
    }
    bool any = false;
    if (host && *host && !(hostaddr && *hostaddr)) {
        int n = 1;
        for (const char *s = host; *s; s++) n += *s == ',';
        b->hosts = calloc((size_t)n, sizeof *b->hosts);
        b->hostaddrs = calloc((size_t)n, sizeof *b->hostaddrs);
        if (b->hosts && b->hostaddrs) {
            const char *s = host;
            for (int i = 0; i < n; i++) {
                const char *e = strchr(s, ',');
                size_t len = e ? (size_t)(e - s) : strlen(s);
                b->hosts[i] = strndup(s, len);
                bool numeric = b->hosts[i] && is_numeric_addr(b->hosts[i]);
                b->hostaddrs[i] = strdup(numeric ? b->hosts[i] : "");
                if (b->hosts[i] && needs_resolution(b->hosts[i])) any = true;
                s = e ? e + 1 : s + len;
            }
            b->n_hosts = n;
        }
    }
    PQconninfoFree(opts);
    if (!any && b->n_hosts <= 1) free_hosts(b);
    return b->n_hosts > 0; /* several hosts: their entries get a deadline each */
}

static void on_connect_timeout(uv_timer_t *t)
{
    tp_backend *b = t->data;
    if (b->on_connected && b->state == BACKEND_CONNECTING && b->targets && b->target_now + 1 < b->n_targets) {
        /* libpq has no call to give up on one host: start it afresh on
         * the entries after the one that did not answer in time. */
        const backend_target *late = &b->targets[b->target_now];
        bool other_addr = *late->addr && strcmp(late->addr, late->host) != 0;
        log_warn("pool %s: backend %llu: timeout expired on host %s%s%s%s%s; trying the next host",
                 b->pool->cfg.pool_logging_name, (unsigned long long)b->id, late->host,
                 other_addr ? " address " : "", other_addr ? late->addr : "", late->port ? " port " : "",
                 late->port ? late->port : "");
        backend_poll_close(b);
        PQfinish(b->conn);
        b->conn = NULL;
        b->fd = -1;
        b->target_first = b->target_now = b->target_now + 1;
        restart_connect_timer(b);
        start_libpq(b);
        return;
    }
    backend_connect_timer_stop(b);
    if (b->on_connected && b->state != BACKEND_CLOSING) connect_failed(b, "timeout expired");
}

/* Seconds a connect may take on one host entry (one address of a name), as
 * libpq's connect_timeout: the url's (libpq's minimum of 2; 0 or less = no
 * limit), else DEFAULT_CONNECT_TIMEOUT.
 * PQconnectPoll does not enforce connect_timeout itself (only libpq's
 * blocking connect does), and without a deadline a server that accepts
 * and never answers (a stopped postmaster, a black hole) would hold the
 * client waiting for this backend for ever. */
static int connect_timeout_of(const char *conninfo)
{
    int secs = DEFAULT_CONNECT_TIMEOUT;
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts) return secs;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val && *o->val) {
            secs = atoi(o->val);
            if (secs == 1) secs = 2;
        }
    PQconninfoFree(opts);
    return secs;
}

static void restart_connect_timer(tp_backend *b)
{
    int secs = connect_timeout_of(b->pool->cfg.conninfo);
    if (b->connect_timer && secs > 0) uv_timer_start(b->connect_timer, on_connect_timeout, (uint64_t)secs * 1000, 0);
}

static void start_connect_timer(tp_backend *b)
{
    int secs = connect_timeout_of(b->pool->cfg.conninfo);
    if (secs <= 0) return;
    uv_timer_t *t = malloc(sizeof *t);
    if (!t) return;
    uv_timer_init(tp.loop, t);
    t->data = b;
    uv_timer_start(t, on_connect_timeout, (uint64_t)secs * 1000, 0);
    b->connect_timer = t;
}

void backend_start(tp_backend *b, backend_connect_cb cb)
{
    b->on_connected = cb;
    start_connect_timer(b);
    b->state = BACKEND_RESOLVING;
    if (plan_resolution(b)) resolve_next(b);
    else start_libpq(b);
}
