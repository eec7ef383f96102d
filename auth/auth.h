/* auth.h: client authentication for tidepool, without I/O.
 *
 * - The auth_file (PgBouncer's userlist.txt format): one `"user" "secret"`
 *   per line (further fields ignored, as PgBouncer does), `""` inside quotes
 *   is a literal quote, `;`/`#` lines and blank lines ignored. A secret is a
 *   SCRAM verifier (`SCRAM-SHA-256$…`), an MD5 hash (`md5` + 32 hex digits)
 *   or a plaintext password.
 * - The server side of SCRAM-SHA-256 (RFC 5802 / 7677, no channel binding),
 *   as a state machine fed with the client's messages.
 * - MD5 and cleartext password checks.
 * Crypto is OpenSSL's; nothing here is hand-rolled. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    AUTH_SECRET_PLAIN = 0,
    AUTH_SECRET_MD5,   /* "md5" + hex(md5(password || user)) */
    AUTH_SECRET_SCRAM, /* "SCRAM-SHA-256$iter:salt$StoredKey:ServerKey" */
} auth_secret_kind;

typedef struct auth_user {
    char *name;
    char *secret;
    auth_secret_kind kind;
    char *scram_cache; /* plaintext secret: a SCRAM verifier made from it once
                          (auth_user_scram_secret), freed with the file */
} auth_user;

typedef struct auth_file {
    auth_user *users;
    size_t n_users;
} auth_file;

/* Parse the text of an auth_file. Returns 0, or -1 with *err_line set to the
 * first bad line (1-based) and *why to a static message. */
int auth_file_parse(const char *text, auth_file *out, int *err_line, const char **why);
/* Read and parse a file. Returns 0; -1 for a bad line, with a malloc'd
 * "PATH:LINE: what" in *err; or -2 when the file cannot be read (or memory
 * is short), with "PATH: cannot open: strerror" (or "cannot read: ...",
 * "out of memory"). */
int auth_file_load(const char *path, auth_file *out, char **err);
void auth_file_free(auth_file *f);
/* The entry of `user`, or NULL. Not const: the entry caches derived keys. */
auth_user *auth_file_find(const auth_file *f, const char *user);

/* The secret to run a SCRAM exchange with for `u`: its SCRAM verifier; for a
 * plaintext secret, a verifier derived from it on first use (PBKDF2, 4096
 * rounds: a few milliseconds; auth_scram_make_user_verifier, so its salt is
 * the one a missing user would get) and kept in `u` until the file is freed, so
 * later logins cost no more than with a stored verifier; NULL for an md5
 * secret (unusable for SCRAM) or when out of memory. */
const char *auth_user_scram_secret(auth_user *u);

/* Classify a secret string. */
auth_secret_kind auth_secret_classify(const char *secret);

/* ---- SCRAM-SHA-256, server side ---- */

typedef enum {
    AUTH_SCRAM_CONTINUE = 0, /* send *out as AuthenticationSASLContinue (11) */
    AUTH_SCRAM_FINAL,        /* send *out as AuthenticationSASLFinal (12), then AuthenticationOk */
    AUTH_SCRAM_FAIL,         /* wrong password (28P01) */
    AUTH_SCRAM_ERROR,        /* malformed exchange (08P01); *why says what */
} auth_scram_result;

typedef struct auth_scram auth_scram; /* opaque */

/* Begin an exchange for `user` whose secret is `secret` (plain or SCRAM).
 * `secret` NULL means the user does not exist: the exchange still runs with a
 * made-up verifier and fails at the end, so timing reveals nothing. Returns
 * NULL only when out of memory or when the secret is MD5 (unusable for SCRAM). */
auth_scram *auth_scram_new(const char *user, const char *secret);
void auth_scram_free(auth_scram *s);

/* Feed the client-first-message (data of SASLInitialResponse). On CONTINUE,
 * *out and *out_len are the server-first-message, owned by s, valid until the next call. */
auth_scram_result auth_scram_client_first(auth_scram *s, const uint8_t *data, size_t len,
                                          const uint8_t **out, size_t *out_len,
                                          const char **why);
/* Feed the client-final-message (data of SASLResponse). On FINAL, *out is
 * the server-final-message ("v=…"). */
auth_scram_result auth_scram_client_final(auth_scram *s, const uint8_t *data, size_t len,
                                          const uint8_t **out, size_t *out_len,
                                          const char **why);

/* auth_scram_new with a fixed server nonce and salt, for tests (the RFC 7677
 * vector): `server_nonce` (printable ASCII but ',', at most 63 chars) replaces
 * the random one; `salt` replaces the random salt of a plaintext secret (it is
 * ignored for a SCRAM secret, which has its own). Either may be NULL: random. */
auth_scram *auth_scram_new_fixed(const char *user, const char *secret, const char *server_nonce,
                                 const uint8_t *salt, size_t salt_len);

/* Whether `secret` is a well-formed SCRAM verifier. auth_file_parse accepts
 * any secret; a loader may use this to warn about a "SCRAM-SHA-256$…" secret
 * that cannot be used (such a user can never log in). */
bool auth_scram_verifier_valid(const char *secret);

/* Make a SCRAM verifier for a password (random 16-byte salt, 4096 iterations),
 * as PostgreSQL stores it. malloc'd; NULL on failure. */
char *auth_scram_make_verifier(const char *password);
/* The same, with the salt a mock exchange shows for `user` (derived from the
 * name and a per-process secret): a user with a plaintext secret is offered
 * the very salt it would be offered if it did not exist. */
char *auth_scram_make_user_verifier(const char *user, const char *password);

/* ---- MD5 and cleartext ---- */

/* Fill salt with 4 random bytes. Returns 0 or -1. */
int auth_random_bytes(uint8_t *buf, size_t len);

/* Check the client's md5 answer ("md5" + hex(md5(hex(md5(pw||user)) || salt)))
 * against a stored secret (plain or MD5). SCRAM secrets cannot be checked
 * this way: returns false. Constant-time compare. */
bool auth_md5_check(const char *user, const char *secret, const uint8_t salt[4],
                    const char *client_answer);

/* Check a cleartext password against a stored secret of any kind. */
bool auth_password_check(const char *user, const char *secret, const char *password);
