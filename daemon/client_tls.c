/* client_tls.c: TLS on the client side of tidepool, with OpenSSL (see
 * client_tls.h). The SSL object of a client reads from one memory BIO (fed
 * with what libuv read) and writes to another (drained to libuv after every
 * step), so the socket, its backpressure and its close stay in client.c.
 * Renegotiation is refused and no session tickets are issued: a pooler's
 * clients are long-lived connections. */
#include "daemon/client_tls.h"

#include <errno.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/client.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"

#define TLS_WRITE_CHUNK (64 * 1024) /* plaintext encrypted before each drain */
#define TLS_READ_CHUNK (16 * 1024)  /* one TLS record at most */
#define TLS_BIO_KEEP (32 * 1024)    /* an empty memory BIO larger than this is replaced */

struct client_tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the client, owned by ssl */
    BIO *wbio; /* ciphertext to the client, owned by ssl */
    bool handshake_done;
    bool failed; /* a fatal TLS error: nothing more may be sent (not even close_notify) */
};

static SSL_CTX *ctx;

bool client_tls_enabled(void)
{
    return ctx != NULL;
}

/* ---- the context ---- */

/* The first OpenSSL error queued, the cause ("no start line", ...): the
 * later ones only say which layer gave up ("PEM lib"). */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/* A file OpenSSL is to read: say plainly when it cannot be opened. */
static int check_readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open '%s': %s", key, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int version_of(unsigned bit)
{
    switch (bit) {
    case CONFIG_TLS_V1_0:
        return TLS1_VERSION;
    case CONFIG_TLS_V1_1:
        return TLS1_1_VERSION;
    case CONFIG_TLS_V1_2:
        return TLS1_2_VERSION;
    default:
        return TLS1_3_VERSION;
    }
}

/* Lowest to highest version allowed, and the ones between that are not. */
static void set_protocols(SSL_CTX *x, unsigned set)
{
    static const unsigned bits[] = {CONFIG_TLS_V1_0, CONFIG_TLS_V1_1, CONFIG_TLS_V1_2, CONFIG_TLS_V1_3};
    static const long no_op[] = {SSL_OP_NO_TLSv1, SSL_OP_NO_TLSv1_1, SSL_OP_NO_TLSv1_2, SSL_OP_NO_TLSv1_3};
    int lo = -1, hi = -1;
    for (int i = 0; i < 4; i++)
        if (set & bits[i]) {
            if (lo < 0) lo = i;
            hi = i;
        }
    SSL_CTX_set_min_proto_version(x, version_of(bits[lo]));
    SSL_CTX_set_max_proto_version(x, version_of(bits[hi]));
    for (int i = lo; i <= hi; i++)
        if (!(set & bits[i])) SSL_CTX_set_options(x, no_op[i]);
}

static SSL_CTX *build_ctx(const config *cfg, char *err, size_t errlen)
{
    const char *cert = cfg->client_tls_cert_file, *key = cfg->client_tls_key_file,
               *ca = cfg->client_tls_ca_file;
    if (check_readable("client_tls_cert_file", cert, err, errlen) < 0 ||
        check_readable("client_tls_key_file", key, err, errlen) < 0 ||
        (ca && check_readable("client_tls_ca_file", ca, err, errlen) < 0))
        return NULL;
    ERR_clear_error();
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    if (!x) {
        snprintf(err, errlen, "client TLS: cannot create a context: %s", ssl_reason());
        return NULL;
    }
    set_protocols(x, cfg->client_tls_protocols);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                               SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(x, 0);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_dh_auto(x, 1);
    if (SSL_CTX_set_cipher_list(x, cfg->client_tls_ciphers) != 1) {
        snprintf(err, errlen, "client_tls_ciphers: no usable cipher in '%s'", cfg->client_tls_ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1) {
        snprintf(err, errlen, "client_tls_cert_file: no PEM certificate in '%s' (%s)", cert, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1 &&
        ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        snprintf(err, errlen, "client_tls_key_file: no usable PEM private key in '%s' (%s)", key,
                 ssl_reason());
        goto fail;
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        snprintf(err, errlen, "client_tls_key_file: '%s' does not match the certificate '%s'", key, cert);
        goto fail;
    }
    if (ca) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (SSL_CTX_load_verify_locations(x, ca, NULL) != 1 || !names) {
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            snprintf(err, errlen, "client_tls_ca_file: no PEM CA certificate in '%s' (%s)", ca, ssl_reason());
            goto fail;
        }
        SSL_CTX_set_client_CA_list(x, names);
        SSL_CTX_set_verify(x, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    ERR_clear_error();
    return x;
fail:
    ERR_clear_error();
    SSL_CTX_free(x);
    return NULL;
}

int client_tls_configure(const config *cfg, char *err, size_t errlen)
{
    SSL_CTX *x = NULL;
    if (cfg->client_tls_sslmode != CONFIG_TLS_DISABLE) {
        x = build_ctx(cfg, err, errlen);
        if (!x) return -1;
    }
    /* Running sessions hold their own reference to the old one. */
    SSL_CTX_free(ctx);
    ctx = x;
    return 0;
}

int client_tls_check(const config *cfg, char *err, size_t errlen)
{
    if (cfg->client_tls_sslmode == CONFIG_TLS_DISABLE) return 0;
    SSL_CTX *x = build_ctx(cfg, err, errlen);
    if (!x) return -1;
    SSL_CTX_free(x);
    return 0;
}

void client_tls_cleanup(void)
{
    SSL_CTX_free(ctx);
    ctx = NULL;
}

/* ---- a client's session ---- */

static BIO *new_mem_bio(bool for_reading)
{
    BIO *b = BIO_new(BIO_s_mem());
    /* An empty read BIO means "wait for more", not end of file. */
    if (b && for_reading) BIO_set_mem_eof_return(b, -1);
    return b;
}

int client_tls_start(tp_client *c)
{
    client_tls *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->ssl = SSL_new(ctx);
    t->rbio = new_mem_bio(true);
    t->wbio = new_mem_bio(false);
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        return -1;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return 0;
}

void client_tls_free(client_tls *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

/* Write out whatever ciphertext the SSL object produced. */
static int drain(tp_client *c)
{
    client_tls *t = c->tls;
    char *p = NULL;
    long n = BIO_get_mem_data(t->wbio, &p);
    if (n <= 0) return 0;
    int rc = client_write_raw(c, (const uint8_t *)p, (size_t)n);
    (void)BIO_reset(t->wbio);
    return rc;
}

/* A memory BIO keeps the largest buffer it ever had: replace a big empty one,
 * so that a TLS client is small again once a large result has gone by. */
static void shrink_bios(client_tls *t)
{
    BUF_MEM *bm = NULL;
    if (BIO_pending(t->rbio) == 0 && BIO_get_mem_ptr(t->rbio, &bm) == 1 && bm && bm->max > TLS_BIO_KEEP) {
        BIO *b = new_mem_bio(true);
        if (b) {
            SSL_set0_rbio(t->ssl, b); /* frees the old one */
            t->rbio = b;
        }
    }
    bm = NULL;
    if (BIO_pending(t->wbio) == 0 && BIO_get_mem_ptr(t->wbio, &bm) == 1 && bm && bm->max > TLS_BIO_KEEP) {
        BIO *b = new_mem_bio(false);
        if (b) {
            SSL_set0_wbio(t->ssl, b);
            t->wbio = b;
        }
    }
}

static void log_failure(tp_client *c, const char *what, int ssl_error)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else if (ssl_error == SSL_ERROR_SYSCALL)
        snprintf(buf, sizeof buf, "unexpected end of the TLS stream");
    else
        snprintf(buf, sizeof buf, "TLS error %d", ssl_error);
    log_info("client %llu (%s): %s: %s", (unsigned long long)c->id, c->peer, what, buf);
    ERR_clear_error();
}

static int handshake(tp_client *c)
{
    client_tls *t = c->tls;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->handshake_done = true;
        log_debug("client %llu (%s): TLS handshake done (%s, %s)", (unsigned long long)c->id, c->peer,
                  SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
        return drain(c);
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return drain(c);
    log_failure(c, "TLS handshake failed", e);
    t->failed = true;
    (void)drain(c); /* the alert, if any */
    return -1;
}

int client_tls_read(tp_client *c, const uint8_t *data, size_t len)
{
    client_tls *t = c->tls;
    if (BIO_write(t->rbio, data, (int)len) != (int)len) {
        log_info("client %llu (%s): out of memory in TLS", (unsigned long long)c->id, c->peer);
        return -1;
    }
    if (!t->handshake_done) {
        if (handshake(c) < 0) return -1;
        if (!t->handshake_done) return 0;
    }
    /* Decrypt everything buffered: at most what one uv read brought, so the
     * plaintext in c->in is bounded as it is without TLS. */
    for (;;) {
        uint8_t *w = tp_buf_reserve(&c->in, TLS_READ_CHUNK);
        if (!w) {
            log_info("client %llu (%s): out of memory in TLS", (unsigned long long)c->id, c->peer);
            return -1;
        }
        ERR_clear_error();
        int n = SSL_read(t->ssl, w, TLS_READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            log_debug("client %llu (%s): TLS close_notify", (unsigned long long)c->id, c->peer);
            c->eof = true;
            (void)drain(c);
            return -1;
        }
        log_failure(c, "TLS error", e);
        t->failed = true;
        (void)drain(c);
        return -1;
    }
    /* Post-handshake messages (key updates) may have produced output. */
    int rc = drain(c);
    shrink_bios(t);
    return rc;
}

int client_tls_write(tp_client *c, const uint8_t *data, size_t len)
{
    client_tls *t = c->tls;
    if (!t->handshake_done || t->failed) return 0;
    while (len > 0) {
        int n = (int)(len > TLS_WRITE_CHUNK ? TLS_WRITE_CHUNK : len);
        ERR_clear_error();
        int w = SSL_write(t->ssl, data, n);
        if (w <= 0) {
            log_failure(c, "TLS write failed", SSL_get_error(t->ssl, w));
            t->failed = true;
            return -1;
        }
        data += w;
        len -= (size_t)w;
        if (drain(c) < 0) return -1;
    }
    shrink_bios(t);
    return 0;
}

void client_tls_close_notify(tp_client *c)
{
    client_tls *t = c->tls;
    if (!t || !t->handshake_done || t->failed) return;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
    (void)drain(c);
}

const char *client_tls_version(const tp_client *c)
{
    return c->tls && c->tls->handshake_done ? SSL_get_version(c->tls->ssl) : NULL;
}
