/* scram.c: the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as
 * PostgreSQL's backend speaks it (src/backend/libpq/auth-scram.c), plus the
 * SCRAM verifier: making one, parsing one.
 *
 * An exchange is a small state machine fed with the client's two messages; it
 * does no I/O. Like PostgreSQL:
 * - the user name inside the SCRAM messages (n=) is ignored: the startup
 *   packet's user is the one being authenticated;
 * - no channel binding: the mechanism offered is SCRAM-SHA-256 only, so a
 *   client asking for it (gs2 flag "p=") is refused; "n" and "y" are accepted
 *   and c= in the final message must be the matching "biws" or "eSws";
 * - an authzid (a=) and mandatory extensions (m=) are refused, other
 *   extensions are ignored;
 * - a user that does not exist, or whose secret is unusable, gets a mock
 *   exchange with a salt derived from its name (so it looks stable from one
 *   attempt to the next) and random keys; the proof is still computed and
 *   checked, and the exchange fails only at the very end;
 * - passwords are not SASLprep-normalized. PostgreSQL normalizes them, but
 *   for ASCII passwords SASLprep is the identity, and for passwords it cannot
 *   normalize PostgreSQL (and libpq) use the raw bytes too. A plaintext secret
 *   containing non-ASCII characters that SASLprep would change (e.g. not in
 *   NFKC form) will not match what libpq computes; store a verifier made by
 *   PostgreSQL for such users. */
#include "auth/auth.h"
#include "auth/auth_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#define SCRAM_PREFIX "SCRAM-SHA-256$"
#define SCRAM_RAW_NONCE_LEN 18  /* bytes of server nonce, base64'd to 24 chars */
#define SCRAM_MAX_SNONCE_LEN 63 /* longest server nonce (one fixed for a test) */

typedef enum {
    SCRAM_WANT_FIRST = 0, /* waiting for the client-first-message */
    SCRAM_WANT_FINAL,     /* server-first sent, waiting for the client-final */
    SCRAM_DONE,           /* finished, successfully or not: nothing more accepted */
} scram_state;

struct auth_scram {
    scram_state state;

    /* The verifier in use, set by auth_scram_new. */
    int iterations;
    uint8_t salt[AUTH_SCRAM_MAX_SALT_LEN];
    size_t salt_len;
    uint8_t stored_key[AUTH_SCRAM_KEY_LEN];
    uint8_t server_key[AUTH_SCRAM_KEY_LEN];
    bool doomed; /* mock exchange: fail at the end whatever the proof */

    /* Server nonce: random unless fixed by auth_scram_new_fixed. NUL-terminated. */
    char server_nonce[SCRAM_MAX_SNONCE_LEN + 1];

    /* Set by a successful client-first (valid in SCRAM_WANT_FINAL and after). */
    char cbind_flag;           /* 'n' or 'y' */
    char *client_first_bare;   /* client-first-message without the gs2 header */
    char *client_nonce;        /* the client's part of the nonce */
    char *server_first;        /* the server-first-message we sent */
    size_t server_first_len;

    /* Set by a successful client-final. */
    char *server_final; /* "v=<ServerSignature>" */
    size_t server_final_len;
};

/* ---- verifiers ---- */

int auth_scram_parse_verifier(const char *secret, auth_scram_verifier *v)
{
    /* SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> */
    if (strncmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) != 0)
        return -1;
    const char *p = secret + strlen(SCRAM_PREFIX);

    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *endp;
    long it = strtol(p, &endp, 10);
    if (errno != 0 || endp == p || *endp != ':' || it <= 0 || it > INT_MAX)
        return -1;
    v->iterations = (int)it;
    p = endp + 1;

    const char *dollar = strchr(p, '$');
    if (dollar == NULL || dollar == p)
        return -1;
    size_t salt_b64_len = (size_t)(dollar - p);
    if (salt_b64_len / 4 * 3 > AUTH_SCRAM_MAX_SALT_LEN)
        return -1;
    long n = auth_b64_decode(p, salt_b64_len, v->salt);
    if (n <= 0)
        return -1;
    v->salt_len = (size_t)n;
    p = dollar + 1;

    const char *colon = strchr(p, ':');
    uint8_t key[AUTH_SCRAM_KEY_LEN + 3]; /* decode room for a 44-char value */
    if (colon == NULL || (size_t)(colon - p) != AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) ||
        auth_b64_decode(p, (size_t)(colon - p), key) != AUTH_SCRAM_KEY_LEN)
        return -1;
    memcpy(v->stored_key, key, AUTH_SCRAM_KEY_LEN);
    p = colon + 1;
    if (strlen(p) != AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) ||
        auth_b64_decode(p, strlen(p), key) != AUTH_SCRAM_KEY_LEN)
        return -1;
    memcpy(v->server_key, key, AUTH_SCRAM_KEY_LEN);
    return 0;
}

bool auth_scram_verifier_valid(const char *secret)
{
    auth_scram_verifier v;
    return secret != NULL && auth_scram_parse_verifier(secret, &v) == 0;
}

/* A verifier for `password` with the given salt (AUTH_SCRAM_SALT_LEN bytes). */
static char *make_verifier(const char *password, const uint8_t *salt)
{
    uint8_t salted[AUTH_SCRAM_KEY_LEN], stored[AUTH_SCRAM_KEY_LEN], server[AUTH_SCRAM_KEY_LEN];
    char salt64[AUTH_B64_ENC_LEN(AUTH_SCRAM_SALT_LEN) + 1];
    char stored64[AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) + 1];
    char server64[AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) + 1];
    char *out = NULL;

    if (password == NULL ||
        auth_scram_salted_password(password, salt, AUTH_SCRAM_SALT_LEN, AUTH_SCRAM_ITERATIONS, salted) != 0 ||
        auth_scram_keys(salted, stored, server) != 0)
        goto done;
    auth_b64_encode(salt, AUTH_SCRAM_SALT_LEN, salt64);
    auth_b64_encode(stored, sizeof stored, stored64);
    auth_b64_encode(server, sizeof server, server64);
    int n = snprintf(NULL, 0, SCRAM_PREFIX "%d:%s$%s:%s", AUTH_SCRAM_ITERATIONS, salt64, stored64,
                     server64);
    if (n < 0 || (out = malloc((size_t)n + 1)) == NULL)
        goto done;
    snprintf(out, (size_t)n + 1, SCRAM_PREFIX "%d:%s$%s:%s", AUTH_SCRAM_ITERATIONS, salt64,
             stored64, server64);
done:
    OPENSSL_cleanse(salted, sizeof salted);
    return out;
}

char *auth_scram_make_verifier(const char *password)
{
    uint8_t salt[AUTH_SCRAM_SALT_LEN];
    if (auth_random_bytes(salt, sizeof salt) != 0)
        return NULL;
    return make_verifier(password, salt);
}

/* ---- mock exchanges ---- */

/* A per-process random key for the mock salts: the salt shown for a user that
 * does not exist is the same on every attempt (as a real user's would be), but
 * cannot be predicted from the user name. */
static uint8_t mock_key[AUTH_SCRAM_KEY_LEN];
static bool mock_key_ok;
static pthread_once_t mock_once = PTHREAD_ONCE_INIT;

static void mock_key_init(void)
{
    mock_key_ok = auth_random_bytes(mock_key, sizeof mock_key) == 0;
}

/* The salt shown for `user` when it has no usable verifier of its own. */
static int mock_salt(const char *user, uint8_t salt[AUTH_SCRAM_SALT_LEN])
{
    uint8_t mac[AUTH_SCRAM_KEY_LEN];
    pthread_once(&mock_once, mock_key_init);
    if (!mock_key_ok || auth_hmac_sha256(mock_key, sizeof mock_key, user, strlen(user), mac) != 0)
        return -1;
    memcpy(salt, mac, AUTH_SCRAM_SALT_LEN);
    return 0;
}

char *auth_scram_make_user_verifier(const char *user, const char *password)
{
    uint8_t salt[AUTH_SCRAM_SALT_LEN];
    if (user == NULL || mock_salt(user, salt) != 0)
        return NULL;
    return make_verifier(password, salt);
}

static int make_mock(auth_scram *s, const char *user)
{
    if (mock_salt(user, s->salt) != 0)
        return -1;
    s->salt_len = AUTH_SCRAM_SALT_LEN;
    s->iterations = AUTH_SCRAM_ITERATIONS;
    s->doomed = true;
    /* Random keys: the proof is checked against them and cannot match (and
     * even if it did, doomed fails the exchange). */
    if (auth_random_bytes(s->stored_key, AUTH_SCRAM_KEY_LEN) != 0 ||
        auth_random_bytes(s->server_key, AUTH_SCRAM_KEY_LEN) != 0)
        return -1;
    return 0;
}

/* ---- exchanges ---- */

static bool is_printable_nonce(const char *p, size_t len)
{
    /* RFC 5802: printable = %x21-2B / %x2D-7E (printable ASCII but ','). */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return false;
    }
    return true;
}

static void scram_free_exchange(auth_scram *s)
{
    free(s->client_first_bare);
    free(s->client_nonce);
    free(s->server_first);
    free(s->server_final);
}

void auth_scram_free(auth_scram *s)
{
    if (s == NULL)
        return;
    scram_free_exchange(s);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

auth_scram *auth_scram_new_fixed(const char *user, const char *secret, const char *server_nonce,
                                 const uint8_t *salt, size_t salt_len)
{
    if (user == NULL)
        return NULL;
    auth_secret_kind kind = secret != NULL ? auth_secret_classify(secret) : AUTH_SECRET_PLAIN;
    if (secret != NULL && kind == AUTH_SECRET_MD5)
        return NULL;
    if (server_nonce != NULL &&
        (server_nonce[0] == '\0' || strlen(server_nonce) > SCRAM_MAX_SNONCE_LEN ||
         !is_printable_nonce(server_nonce, strlen(server_nonce))))
        return NULL;
    if (salt != NULL && (salt_len == 0 || salt_len > AUTH_SCRAM_MAX_SALT_LEN))
        return NULL;

    auth_scram *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;

    if (server_nonce != NULL) {
        strcpy(s->server_nonce, server_nonce);
    } else {
        uint8_t raw[SCRAM_RAW_NONCE_LEN];
        if (auth_random_bytes(raw, sizeof raw) != 0)
            goto fail;
        auth_b64_encode(raw, sizeof raw, s->server_nonce);
    }

    if (secret == NULL || secret[0] == '\0') {
        /* No such user, or an empty password, which never authenticates. */
        if (make_mock(s, user) != 0)
            goto fail;
    } else if (kind == AUTH_SECRET_SCRAM) {
        auth_scram_verifier v;
        if (auth_scram_parse_verifier(secret, &v) == 0) {
            s->iterations = v.iterations;
            memcpy(s->salt, v.salt, v.salt_len);
            s->salt_len = v.salt_len;
            memcpy(s->stored_key, v.stored_key, AUTH_SCRAM_KEY_LEN);
            memcpy(s->server_key, v.server_key, AUTH_SCRAM_KEY_LEN);
            OPENSSL_cleanse(&v, sizeof v);
        } else if (make_mock(s, user) != 0) { /* unusable verifier: as PostgreSQL */
            goto fail;
        }
    } else {
        /* Plaintext: make a verifier for this exchange. */
        uint8_t salted[AUTH_SCRAM_KEY_LEN];
        if (salt != NULL) {
            memcpy(s->salt, salt, salt_len);
            s->salt_len = salt_len;
        } else {
            if (auth_random_bytes(s->salt, AUTH_SCRAM_SALT_LEN) != 0)
                goto fail;
            s->salt_len = AUTH_SCRAM_SALT_LEN;
        }
        s->iterations = AUTH_SCRAM_ITERATIONS;
        int rc = auth_scram_salted_password(secret, s->salt, s->salt_len, s->iterations, salted);
        if (rc == 0)
            rc = auth_scram_keys(salted, s->stored_key, s->server_key);
        OPENSSL_cleanse(salted, sizeof salted);
        if (rc != 0)
            goto fail;
    }
    s->state = SCRAM_WANT_FIRST;
    return s;

fail:
    auth_scram_free(s);
    return NULL;
}

auth_scram *auth_scram_new(const char *user, const char *secret)
{
    return auth_scram_new_fixed(user, secret, NULL, NULL, 0);
}

/* Reads "<attr>=<value>" at *pp in a NUL-terminated message, up to the next
 * ',' or the end; *pp is left after the ',' (or at the end). `attr` 0 accepts
 * any ALPHA attribute and stores it in *got. Returns false if malformed. */
static bool read_attr(const char **pp, char attr, char *got, const char **val, size_t *val_len)
{
    const char *p = *pp;
    char a = *p;
    if (attr != 0 ? a != attr : !((a >= 'A' && a <= 'Z') || (a >= 'a' && a <= 'z')))
        return false;
    if (p[1] != '=')
        return false;
    p += 2;
    const char *end = strchr(p, ',');
    if (end == NULL)
        end = p + strlen(p);
    if (got != NULL)
        *got = a;
    *val = p;
    *val_len = (size_t)(end - p);
    *pp = *end == ',' ? end + 1 : end;
    return true;
}

static char *dup_n(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* The message as a NUL-terminated string, or NULL (with *why) if it holds a
 * NUL byte or memory ran out. */
static char *message_string(const uint8_t *data, size_t len, const char **why)
{
    if (data == NULL && len > 0) {
        *why = "no data in SCRAM message";
        return NULL;
    }
    if (len > 0 && memchr(data, '\0', len) != NULL) {
        *why = "NUL byte in SCRAM message";
        return NULL;
    }
    char *s = dup_n((const char *)data, len);
    if (s == NULL)
        *why = "out of memory";
    return s;
}

static auth_scram_result scram_error(auth_scram *s, const char **why, const char *what)
{
    s->state = SCRAM_DONE;
    *why = what;
    return AUTH_SCRAM_ERROR;
}

auth_scram_result auth_scram_client_first(auth_scram *s, const uint8_t *data, size_t len,
                                          const uint8_t **out, size_t *out_len,
                                          const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    *out = NULL;
    *out_len = 0;
    if (s->state != SCRAM_WANT_FIRST)
        return scram_error(s, why, "unexpected SCRAM client-first-message");

    char *msg = message_string(data, len, why);
    if (msg == NULL)
        return scram_error(s, why, *why);
    const char *p = msg;
    const char *err = NULL;

    /* gs2-header = gs2-cbind-flag "," [ authzid ] "," */
    switch (*p) {
    case 'n':
    case 'y':
        s->cbind_flag = *p++;
        break;
    case 'p':
        err = "client requires SCRAM channel binding, but it is not supported";
        goto out;
    default:
        err = "unexpected channel-binding flag in client-first-message";
        goto out;
    }
    if (*p++ != ',') {
        err = "comma expected after channel-binding flag";
        goto out;
    }
    if (*p == 'a') {
        err = "client uses authorization identity, but it is not supported";
        goto out;
    }
    if (*p++ != ',') {
        err = "comma expected after gs2 header";
        goto out;
    }

    /* client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions] */
    const char *bare = p;
    if (*p == 'm') {
        err = "client requires mandatory SCRAM extension";
        goto out;
    }
    const char *val;
    size_t vlen;
    if (!read_attr(&p, 'n', NULL, &val, &vlen)) {
        err = "attribute 'n' expected in client-first-message";
        goto out;
    }
    /* The user name is ignored: the startup packet's counts. */
    if (!read_attr(&p, 'r', NULL, &val, &vlen)) {
        err = "attribute 'r' expected in client-first-message";
        goto out;
    }
    if (vlen == 0) {
        err = "empty nonce in client-first-message";
        goto out;
    }
    if (!is_printable_nonce(val, vlen)) {
        err = "non-printable characters in SCRAM nonce";
        goto out;
    }
    const char *nonce = val;
    size_t nonce_len = vlen;
    while (*p != '\0') {
        char a;
        if (!read_attr(&p, 0, &a, &val, &vlen)) {
            err = "attribute expected in client-first-message";
            goto out;
        }
    }
    /* A trailing ',' would have left p at the end with an empty attribute. */
    if (p > msg && p[-1] == ',') {
        err = "trailing comma in client-first-message";
        goto out;
    }

    s->client_first_bare = dup_n(bare, strlen(bare));
    s->client_nonce = dup_n(nonce, nonce_len);
    if (s->client_first_bare == NULL || s->client_nonce == NULL) {
        err = "out of memory";
        goto out;
    }

    /* server-first-message = nonce "," salt "," iteration-count */
    char salt64[AUTH_B64_ENC_LEN(AUTH_SCRAM_MAX_SALT_LEN) + 1];
    auth_b64_encode(s->salt, s->salt_len, salt64);
    int n = snprintf(NULL, 0, "r=%s%s,s=%s,i=%d", s->client_nonce, s->server_nonce, salt64,
                     s->iterations);
    if (n < 0 || (s->server_first = malloc((size_t)n + 1)) == NULL) {
        err = "out of memory";
        goto out;
    }
    snprintf(s->server_first, (size_t)n + 1, "r=%s%s,s=%s,i=%d", s->client_nonce,
             s->server_nonce, salt64, s->iterations);
    s->server_first_len = (size_t)n;

out:
    free(msg);
    if (err != NULL)
        return scram_error(s, why, err);
    s->state = SCRAM_WANT_FINAL;
    *out = (const uint8_t *)s->server_first;
    *out_len = s->server_first_len;
    return AUTH_SCRAM_CONTINUE;
}

/* HMAC(key, AuthMessage) with AuthMessage = client-first-bare "," server-first
 * "," client-final-without-proof. */
static int auth_message_hmac(const auth_scram *s, const uint8_t key[AUTH_SCRAM_KEY_LEN],
                             const char *final_wo_proof, size_t final_len,
                             uint8_t out[AUTH_SCRAM_KEY_LEN])
{
    size_t a = strlen(s->client_first_bare), b = s->server_first_len;
    char *msg = malloc(a + 1 + b + 1 + final_len);
    if (msg == NULL)
        return -1;
    memcpy(msg, s->client_first_bare, a);
    msg[a] = ',';
    memcpy(msg + a + 1, s->server_first, b);
    msg[a + 1 + b] = ',';
    memcpy(msg + a + 1 + b + 1, final_wo_proof, final_len);
    int rc = auth_hmac_sha256(key, AUTH_SCRAM_KEY_LEN, msg, a + b + 2 + final_len, out);
    free(msg);
    return rc;
}

auth_scram_result auth_scram_client_final(auth_scram *s, const uint8_t *data, size_t len,
                                          const uint8_t **out, size_t *out_len,
                                          const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    *out = NULL;
    *out_len = 0;
    if (s->state != SCRAM_WANT_FINAL)
        return scram_error(s, why, "unexpected SCRAM client-final-message");

    char *msg = message_string(data, len, why);
    if (msg == NULL)
        return scram_error(s, why, *why);
    const char *p = msg;
    const char *err = NULL;
    auth_scram_result res = AUTH_SCRAM_ERROR;
    uint8_t proof[AUTH_SCRAM_KEY_LEN + 3] = {0};
    uint8_t sig[AUTH_SCRAM_KEY_LEN], client_key[AUTH_SCRAM_KEY_LEN], stored[AUTH_SCRAM_KEY_LEN];
    const char *val;
    size_t vlen;

    /* client-final-message-without-proof = channel-binding "," nonce ["," extensions]
     * client-final-message = client-final-message-without-proof "," proof
     * Without channel binding, c= is the base64 of the gs2 header sent before. */
    if (!read_attr(&p, 'c', NULL, &val, &vlen)) {
        err = "attribute 'c' expected in client-final-message";
        goto out;
    }
    const char *expect_cb = s->cbind_flag == 'y' ? "eSws" : "biws";
    if (vlen != 4 || memcmp(val, expect_cb, 4) != 0) {
        err = "unexpected SCRAM channel-binding attribute in client-final-message";
        goto out;
    }
    if (!read_attr(&p, 'r', NULL, &val, &vlen)) {
        err = "attribute 'r' expected in client-final-message";
        goto out;
    }
    const char *final_nonce = val;
    size_t final_nonce_len = vlen;

    /* Skip extensions up to the proof, which must be last. */
    const char *proof_attr;
    char a = 0;
    do {
        if (*p == '\0') {
            err = "proof missing from client-final-message";
            goto out;
        }
        proof_attr = p;
        if (!read_attr(&p, 0, &a, &val, &vlen)) {
            err = "attribute expected in client-final-message";
            goto out;
        }
    } while (a != 'p');
    if (*p != '\0' || p[-1] == ',') {
        err = "garbage at end of client-final-message";
        goto out;
    }
    if (vlen != AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) ||
        auth_b64_decode(val, vlen, proof) != AUTH_SCRAM_KEY_LEN) {
        err = "proof in client-final-message is not base64 of 32 bytes";
        goto out;
    }

    /* The nonce must be ours, whole. */
    size_t cn = strlen(s->client_nonce), sn = strlen(s->server_nonce);
    if (final_nonce_len != cn + sn || memcmp(final_nonce, s->client_nonce, cn) != 0 ||
        memcmp(final_nonce + cn, s->server_nonce, sn) != 0) {
        err = "nonce in client-final-message does not match";
        goto out;
    }

    /* ClientSignature = HMAC(StoredKey, AuthMessage); ClientKey = proof XOR
     * ClientSignature; H(ClientKey) must be StoredKey. The check runs in mock
     * exchanges too, so they take as long as real ones. */
    size_t wo_len = (size_t)(proof_attr - 1 - msg); /* up to the ',' before p= */
    if (auth_message_hmac(s, s->stored_key, msg, wo_len, sig) != 0) {
        err = "SCRAM computation failed";
        goto out;
    }
    for (size_t i = 0; i < AUTH_SCRAM_KEY_LEN; i++)
        client_key[i] = proof[i] ^ sig[i];
    if (auth_sha256(client_key, sizeof client_key, stored) != 0) {
        err = "SCRAM computation failed";
        goto out;
    }
    bool match = CRYPTO_memcmp(stored, s->stored_key, AUTH_SCRAM_KEY_LEN) == 0;
    if (!match || s->doomed) {
        s->state = SCRAM_DONE;
        *why = "password authentication failed";
        res = AUTH_SCRAM_FAIL;
        goto out;
    }

    /* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)) */
    if (auth_message_hmac(s, s->server_key, msg, wo_len, sig) != 0) {
        err = "SCRAM computation failed";
        goto out;
    }
    s->server_final = malloc(2 + AUTH_B64_ENC_LEN(AUTH_SCRAM_KEY_LEN) + 1);
    if (s->server_final == NULL) {
        err = "out of memory";
        goto out;
    }
    s->server_final[0] = 'v';
    s->server_final[1] = '=';
    s->server_final_len = 2 + auth_b64_encode(sig, AUTH_SCRAM_KEY_LEN, s->server_final + 2);
    s->state = SCRAM_DONE;
    *out = (const uint8_t *)s->server_final;
    *out_len = s->server_final_len;
    res = AUTH_SCRAM_FINAL;

out:
    OPENSSL_cleanse(client_key, sizeof client_key);
    OPENSSL_cleanse(proof, sizeof proof);
    free(msg);
    if (err != NULL)
        return scram_error(s, why, err);
    return res;
}
