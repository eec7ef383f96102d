/* metrics.c: the Prometheus endpoint at metrics_listen (SPEC §5). A plain
 * HTTP/1.1 server that knows one resource: GET (or HEAD) /metrics answers the
 * figures of daemon/figures.c in the text exposition format 0.0.4, rendered
 * by stats_prom_render(); other paths get 404, other methods 405, anything
 * that is not an HTTP/1.x request line 400. Every answer closes the
 * connection.
 *
 * Nothing here blocks the loop: a request is read into a fixed buffer of
 * METRICS_MAX_REQUEST bytes (a longer head gets 431) under a read timeout;
 * the answer is written with one uv_write, then the write side is shut down
 * and what the client still sends is read and dropped until it closes (or a
 * short linger timeout), so a client that sent more than we read does not
 * get a reset in place of its answer. At most METRICS_MAX_CONNS connections
 * are served at once; more are closed at accept. */
#include "daemon/metrics.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "daemon/figures.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/server.h"

#define METRICS_MAX_REQUEST 8192
#define METRICS_READ_TIMEOUT_MS 10000
#define METRICS_LINGER_MS 2000
#define METRICS_MAX_CONNS 64

typedef struct metrics_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    char peer[64];
    char req[METRICS_MAX_REQUEST]; /* the request head read so far */
    size_t len;
    char *response; /* owned until the write callback */
    bool answered;  /* a response was queued; input is dropped from then on */
    bool eof;       /* the client closed its side */
    bool closing;
    int open_handles; /* freed when both handles are closed */
    struct metrics_conn *next, *prev;
} metrics_conn;

static uv_tcp_t *listener; /* malloc'd: a reload may open a new one while the old closes */
static metrics_conn *conns;
static int n_conns;
static char discard[4096]; /* input after the request goes here */

/* ---- connection life ---- */

static void on_conn_closed(uv_handle_t *h)
{
    metrics_conn *c = h->data;
    if (--c->open_handles > 0) return;
    free(c->response);
    free(c);
}

static void conn_close(metrics_conn *c)
{
    if (c->closing) return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next) c->next->prev = c->prev;
    n_conns--;
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    metrics_conn *c = t->data;
    if (!c->answered) log_info("metrics: %s: no complete request in time; closing", c->peer);
    conn_close(c);
}

/* ---- answering ---- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    /* The client closes after reading the answer; on_read sees its EOF. */
    metrics_conn *c = req->data;
    if (status < 0 && !c->closing) conn_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    metrics_conn *c = req->data;
    free(c->response);
    c->response = NULL;
    if (c->closing) return;
    c->shutdown_req.data = c;
    if (status < 0 || c->eof || uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, METRICS_LINGER_MS, 0);
}

/* Queue the whole response (head, then body unless head_only) and close
 * after it. */
static void respond(metrics_conn *c, const char *status, const char *extra_headers, const char *content_type,
                    const char *body, size_t body_len, bool head_only)
{
    c->answered = true;
    stats_text t;
    stats_text_init(&t);
    stats_text_printf(&t,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
                      status, content_type, body_len, extra_headers ? extra_headers : "");
    if (!head_only) stats_text_append(&t, body, body_len);
    if (t.failed) {
        stats_text_free(&t);
        conn_close(c);
        return;
    }
    c->response = t.data; /* ours until on_written */
    uv_buf_t b = uv_buf_init(t.data, (unsigned)t.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) conn_close(c);
}

static void respond_text(metrics_conn *c, const char *status, const char *extra_headers, const char *text,
                         bool head_only)
{
    respond(c, status, extra_headers, "text/plain; charset=utf-8", text, strlen(text), head_only);
}

static void respond_metrics(metrics_conn *c, bool head_only)
{
    stats_globals g;
    figures_globals(&g);
    size_t n;
    stats_figures *f = figures_all(&n);
    stats_text body;
    stats_text_init(&body);
    if (stats_prom_render(&body, &g, f, n) < 0) {
        respond_text(c, "500 Internal Server Error", NULL, "out of memory\n", head_only);
    } else {
        respond(c, "200 OK", NULL, "text/plain; version=0.0.4; charset=utf-8", body.data, body.len,
                head_only);
    }
    stats_text_free(&body);
    free(f);
}

/* ---- the request ---- */

static bool is_token_char(char ch)
{
    return ch >= 'A' && ch <= 'Z';
}

/* Judge the request line req[0..len) (no line end). Returns 0 and sets
 * method/target (pointers into req, lengths) when it is an HTTP/1.x line. */
static int parse_request_line(const char *req, size_t len, const char **method, size_t *mlen,
                              const char **target, size_t *tlen)
{
    size_t i = 0;
    while (i < len && is_token_char(req[i]))
        i++;
    if (i == 0 || i >= len || req[i] != ' ') return -1;
    *method = req;
    *mlen = i;
    size_t t0 = ++i;
    while (i < len && req[i] > ' ' && req[i] < 0x7f)
        i++;
    if (i == t0 || i >= len || req[i] != ' ' || req[t0] != '/') return -1;
    *target = req + t0;
    *tlen = i - t0;
    i++;
    static const char version[] = "HTTP/1.";
    if (len - i != sizeof version || memcmp(req + i, version, sizeof version - 1) != 0 ||
        (req[len - 1] != '0' && req[len - 1] != '1'))
        return -1;
    return 0;
}

/* Does the head end (an empty line) somewhere after the line end at `from`? */
static bool head_complete(const char *req, size_t len, size_t from)
{
    for (size_t i = from; i < len; i++) {
        if (req[i] != '\n') continue;
        if (i + 1 < len && req[i + 1] == '\n') return true;
        if (i + 2 < len && req[i + 1] == '\r' && req[i + 2] == '\n') return true;
    }
    return false;
}

static void bad_request(metrics_conn *c, const char *why)
{
    log_info("metrics: %s: bad request: %s", c->peer, why);
    respond_text(c, "400 Bad Request", NULL, "bad request\n", false);
}

/* Look at what has been read; answer once the request head is complete (or
 * as soon as its first line is known to be wrong). */
static void handle_request(metrics_conn *c, bool eof)
{
    const char *nl = memchr(c->req, '\n', c->len);
    if (!nl) {
        if (eof && c->len > 0)
            bad_request(c, "incomplete request line");
        else if (c->len == METRICS_MAX_REQUEST)
            bad_request(c, "request line too long");
        return;
    }
    size_t line_len = (size_t)(nl - c->req);
    if (line_len > 0 && c->req[line_len - 1] == '\r') line_len--;
    const char *method, *target;
    size_t mlen, tlen;
    if (parse_request_line(c->req, line_len, &method, &mlen, &target, &tlen) < 0) {
        bad_request(c, "not an HTTP/1.x request line");
        return;
    }
    if (!head_complete(c->req, c->len, (size_t)(nl - c->req))) {
        if (eof)
            bad_request(c, "incomplete request head");
        else if (c->len == METRICS_MAX_REQUEST)
            respond_text(c, "431 Request Header Fields Too Large", NULL, "request head too large\n", false);
        return;
    }
    bool get = mlen == 3 && memcmp(method, "GET", 3) == 0;
    bool head = mlen == 4 && memcmp(method, "HEAD", 4) == 0;
    const char *q = memchr(target, '?', tlen);
    size_t path_len = q ? (size_t)(q - target) : tlen;
    bool is_metrics = path_len == 8 && memcmp(target, "/metrics", 8) == 0;
    log_debug("metrics: %s: %.*s %.*s", c->peer, (int)mlen, method, (int)tlen, target);
    if (!get && !head)
        respond_text(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", "only GET and HEAD\n", false);
    else if (!is_metrics)
        respond_text(c, "404 Not Found", NULL, "not found: try /metrics\n", head);
    else
        respond_metrics(c, head);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    metrics_conn *c = h->data;
    if (c->answered || c->len >= METRICS_MAX_REQUEST)
        *buf = uv_buf_init(discard, sizeof discard);
    else
        *buf = uv_buf_init(c->req + c->len, (unsigned)(METRICS_MAX_REQUEST - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    metrics_conn *c = s->data;
    if (c->closing) return;
    if (nread < 0) {
        if (nread == UV_EOF && !c->answered) {
            c->eof = true;
            uv_read_stop(s);
            handle_request(c, true);
            if (c->answered) return; /* closes after the answer is written */
        }
        conn_close(c);
        return;
    }
    if (nread == 0 || c->answered || buf->base == discard) return;
    c->len += (size_t)nread;
    handle_request(c, false);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        log_warn("metrics: accept failed: %s", uv_strerror(status));
        return;
    }
    metrics_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(tp.loop, &c->tcp);
    c->tcp.data = c;
    c->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (n_conns >= METRICS_MAX_CONNS) {
        log_warn("metrics: %d scrapes in progress; refusing one more", n_conns);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_timer_init(tp.loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->next = conns;
    if (conns) conns->prev = c;
    conns = c;
    n_conns++;
    peer_describe(&c->tcp, c->peer, sizeof c->peer);
    uv_timer_start(&c->timer, on_timeout, METRICS_READ_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) conn_close(c);
}

/* ---- the listener ---- */

/* "HOST:PORT", "[V6]:PORT" or "*:PORT" into an address; a host name is
 * resolved here, once, at start (before the loop runs) and by --check, and
 * its first address is used. Returns 0, or -1 with `why`. */
static int resolve(const char *hostport, struct sockaddr_storage *ss, char *why, size_t why_len)
{
    const char *colon = strrchr(hostport, ':');
    char host[256];
    const char *h = hostport;
    size_t hlen = colon ? (size_t)(colon - hostport) : 0;
    if (colon && h[0] == '[' && hlen >= 2) {
        h++;
        hlen -= 2;
    }
    if (!colon || hlen >= sizeof host) {
        snprintf(why, why_len, "'%s' is not HOST:PORT", hostport);
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    int port = atoi(colon + 1);
    if (strcmp(host, "*") == 0) snprintf(host, sizeof host, "0.0.0.0");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, why_len, "host '%s' does not resolve: %s", host,
                 rc == EAI_SYSTEM ? strerror(errno)
                 : rc             ? gai_strerror(rc)
                                  : "no address");
        if (res) freeaddrinfo(res);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* cfg->metrics_listen into *ss, or -1 with "FILE:LINE: metrics_listen: what". */
static int resolve_configured(const config *cfg, struct sockaddr_storage *ss, char *why, size_t why_len)
{
    memset(ss, 0, sizeof *ss);
    char what[600];
    if (resolve(cfg->metrics_listen, ss, what, sizeof what) == 0) return 0;
    char where[1100];
    snprintf(why, why_len, "%s: metrics_listen: %s",
             config_key_where(cfg, "metrics_listen", where, sizeof where), what);
    return -1;
}

int metrics_check(const config *cfg, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    return cfg->metrics_listen ? resolve_configured(cfg, &ss, why, why_len) : 0;
}

int metrics_open(const config *cfg)
{
    if (!cfg->metrics_listen) return 0;
    struct sockaddr_storage ss;
    char why[1800];
    if (resolve_configured(cfg, &ss, why, sizeof why) < 0) {
        log_error("%s", why);
        return UV_EINVAL;
    }
    listener = malloc(sizeof *listener);
    if (!listener) return UV_ENOMEM;
    uv_tcp_init(tp.loop, listener);
    int rc = uv_tcp_bind(listener, (struct sockaddr *)&ss, ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)listener, 128, on_connection);
    if (rc < 0) {
        log_error("metrics: could not listen on %s: %s", cfg->metrics_listen, uv_strerror(rc));
        metrics_close();
        return rc;
    }
    log_info("metrics: serving /metrics on %s", cfg->metrics_listen);
    return 0;
}

void metrics_close(void)
{
    if (listener) {
        uv_close((uv_handle_t *)listener, (uv_close_cb)free);
        listener = NULL;
    }
    while (conns)
        conn_close(conns);
}
