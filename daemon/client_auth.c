/* client_auth.c: authenticating a client against auth_file with the
 * configured auth_type: scram-sha-256 (SCRAM verifiers or plaintext entries;
 * an md5 entry cannot log in, as in PostgreSQL: no weaker method than the
 * configured one is ever offered or accepted), md5, password, trust, peer
 * (Unix socket only). A user missing from auth_file goes through the same
 * exchange and fails at the same step, with the same message, as a wrong
 * password, so answers do not reveal which users exist. Each failure is
 * logged once, with its real reason; nothing secret is logged. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth/auth.h"
#include "daemon/client_internal.h"
#include "daemon/log.h"
#include "daemon/server.h"

#define AUTH_OK 0
#define AUTH_CLEARTEXT 3
#define AUTH_MD5 5
#define AUTH_SASL 10
#define AUTH_SASL_CONTINUE 11
#define AUTH_SASL_FINAL 12

/* What authentication needs, kept only while it runs. */
struct client_auth {
    int method;        /* config_auth_type in use for this client */
    char *secret;      /* the user's secret from auth_file, or NULL */
    auth_scram *scram; /* SCRAM exchange in progress */
    uint8_t md5_salt[4];
    int step;          /* messages received so far in CLIENT_AUTH */
};

void client_auth_clear(tp_client *c)
{
    if (!c->auth) return;
    if (c->auth->scram) auth_scram_free(c->auth->scram);
    if (c->auth->secret) {
        memset(c->auth->secret, 0, strlen(c->auth->secret));
        free(c->auth->secret);
    }
    free(c->auth);
    c->auth = NULL;
}

/* Why a password check failed, for the operator only: the client is told
 * the same thing whatever it is. */
static const char *failure_reason(const tp_client *c)
{
    const auth_user *u = tp.have_users ? auth_file_find(&tp.users, c->user) : NULL;
    if (!u) return tp.have_users ? "unknown user" : "no auth_file";
    if (u->secret[0] == '\0') return "empty password in auth_file";
    if (c->auth->method == CONFIG_AUTH_SCRAM_SHA_256 && u->kind == AUTH_SECRET_MD5)
        return "md5 secret in auth_file, unusable with scram-sha-256";
    if (c->auth->method == CONFIG_AUTH_MD5 && u->kind == AUTH_SECRET_SCRAM)
        return "SCRAM secret in auth_file, unusable with md5";
    return "wrong password";
}

/* The method of the exchange in progress, for log lines. */
static const char *method_name(const tp_client *c)
{
    return config_auth_type_to_str(c->auth ? (config_auth_type)c->auth->method : tp.cfg->auth_type);
}

static void auth_failed(tp_client *c, const char *method, const char *reason)
{
    char msg[256];
    log_info("login failed: user \"%s\", pool \"%s\", client %llu (%s): %s (%s)", c->user, c->database,
             (unsigned long long)c->id, c->peer, reason ? reason : failure_reason(c),
             method_name(c));
    snprintf(msg, sizeof msg, "%s authentication failed for user \"%s\"", method, c->user);
    client_fatal(c, "28P01", msg);
}

/* A refused exchange (wrong message, malformed, weaker method): logged like
 * a failed password, answered with its own SQLSTATE. */
void client_auth_refused(tp_client *c, const char *sqlstate, const char *message)
{
    log_info("login failed: user \"%s\", pool \"%s\", client %llu (%s): %s (%s)", c->user, c->database,
             (unsigned long long)c->id, c->peer, message,
             method_name(c));
    client_fatal(c, sqlstate, message);
}

static void auth_succeeded(tp_client *c, proto_buf *pb)
{
    client_auth_clear(c);
    proto_build_auth_ok(pb);
    if (client_send_buf(c, pb) < 0) return;
    client_login(c);
}

static void send_auth_request(tp_client *c, int32_t code, const void *data, size_t len)
{
    proto_buf pb;
    proto_buf_init(&pb);
    proto_build_auth(&pb, code, data, len);
    if (client_send_buf(c, &pb) == 0) c->state = CLIENT_AUTH;
    proto_buf_free(&pb);
}

static void peer_auth(tp_client *c)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    int fd = -1;
    if (!c->unix_socket) {
        client_fatal(c, "28000", "peer authentication is only available on the Unix socket");
        return;
    }
    if (uv_fileno(&c->h.handle, &fd) < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        client_fatal(c, "28000", "could not get peer credentials");
        return;
    }
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) != 0 || !found ||
        strcmp(found->pw_name, c->user) != 0) {
        auth_failed(c, "peer", "the OS user of the peer is another");
        return;
    }
    proto_buf pb;
    proto_buf_init(&pb);
    auth_succeeded(c, &pb);
    proto_buf_free(&pb);
}

static void scram_start(tp_client *c, auth_user *u)
{
    /* No user, or an md5 entry (which cannot check a SCRAM proof): NULL, a
     * mock exchange that looks the same and fails at the end. */
    const char *secret = u ? auth_user_scram_secret(u) : NULL;
    if ((u && u->kind == AUTH_SECRET_PLAIN && !secret) || !(c->auth->scram = auth_scram_new(c->user, secret))) {
        client_fatal(c, "53200", "out of memory");
        return;
    }
    static const char mech[] = "SCRAM-SHA-256\0";
    send_auth_request(c, AUTH_SASL, mech, sizeof mech); /* list ends with an empty name */
}

/* md5 and password: the secret is kept for the check of the answer. */
static void password_start(tp_client *c, const auth_user *u)
{
    if (u && !(c->auth->secret = strdup(u->secret))) {
        client_fatal(c, "53200", "out of memory");
        return;
    }
    if (c->auth->method == CONFIG_AUTH_PASSWORD) {
        send_auth_request(c, AUTH_CLEARTEXT, NULL, 0);
        return;
    }
    if (auth_random_bytes(c->auth->md5_salt, sizeof c->auth->md5_salt) < 0) {
        client_fatal(c, "XX000", "could not generate a random salt");
        return;
    }
    send_auth_request(c, AUTH_MD5, c->auth->md5_salt, sizeof c->auth->md5_salt);
}

void client_auth_start(tp_client *c)
{
    if (!(c->auth = calloc(1, sizeof *c->auth))) {
        client_fatal(c, "53200", "out of memory");
        return;
    }
    c->auth->method = tp.cfg->auth_type;
    auth_user *u = tp.have_users ? auth_file_find(&tp.users, c->user) : NULL;
    switch (tp.cfg->auth_type) {
    case CONFIG_AUTH_TRUST: {
        proto_buf pb;
        proto_buf_init(&pb);
        auth_succeeded(c, &pb);
        proto_buf_free(&pb);
        return;
    }
    case CONFIG_AUTH_PEER:
        peer_auth(c);
        return;
    case CONFIG_AUTH_SCRAM_SHA_256:
        scram_start(c, u);
        return;
    case CONFIG_AUTH_MD5:
    case CONFIG_AUTH_PASSWORD:
        password_start(c, u);
        return;
    }
}

static void scram_step(tp_client *c, const proto_msg *m)
{
    const uint8_t *out = NULL;
    size_t out_len = 0;
    const char *why = NULL;
    auth_scram_result r;
    if (c->auth->step == 0) {
        const char *mech;
        const uint8_t *data;
        int32_t data_len;
        if (proto_parse_sasl_initial(m, &mech, &data, &data_len) != PROTO_COMPLETE || data_len < 0) {
            client_auth_refused(c, "08P01", "malformed SASLInitialResponse message");
            return;
        }
        if (strcmp(mech, "SCRAM-SHA-256") != 0) {
            client_auth_refused(c, "28000", "client selected an invalid SASL authentication mechanism");
            return;
        }
        r = auth_scram_client_first(c->auth->scram, data, (size_t)data_len, &out, &out_len, &why);
    } else {
        r = auth_scram_client_final(c->auth->scram, m->body, m->body_len, &out, &out_len, &why);
    }
    c->auth->step++;
    switch (r) {
    case AUTH_SCRAM_CONTINUE:
        send_auth_request(c, AUTH_SASL_CONTINUE, out, out_len);
        return;
    case AUTH_SCRAM_FINAL: {
        proto_buf pb;
        proto_buf_init(&pb);
        proto_build_auth(&pb, AUTH_SASL_FINAL, out, out_len);
        auth_succeeded(c, &pb);
        proto_buf_free(&pb);
        return;
    }
    case AUTH_SCRAM_FAIL:
        auth_failed(c, "password", NULL);
        return;
    case AUTH_SCRAM_ERROR: {
        char msg[256];
        snprintf(msg, sizeof msg, "malformed SCRAM message: %s", why ? why : "invalid");
        client_auth_refused(c, "08P01", msg);
        return;
    }
    }
}

void client_auth_message(tp_client *c, const proto_msg *m)
{
    if (m->type != 'p') {
        client_auth_refused(c, "08P01", "expected password response");
        return;
    }
    if (c->auth->method == CONFIG_AUTH_SCRAM_SHA_256) {
        scram_step(c, m);
        return;
    }
    const char *answer;
    if (proto_parse_cstring(m, &answer) != PROTO_COMPLETE) {
        client_auth_refused(c, "08P01", "malformed password message");
        return;
    }
    bool ok;
    if (c->auth->method == CONFIG_AUTH_MD5)
        ok = c->auth->secret && auth_md5_check(c->user, c->auth->secret, c->auth->md5_salt, answer);
    else
        ok = c->auth->secret && auth_password_check(c->user, c->auth->secret, answer);
    if (!ok) {
        auth_failed(c, "password", NULL);
        return;
    }
    proto_buf pb;
    proto_buf_init(&pb);
    auth_succeeded(c, &pb);
    proto_buf_free(&pb);
}
