/* md5.c: PostgreSQL's MD5 password authentication, and the check of a
 * cleartext password (auth_type password) against a stored secret of any kind.
 *
 * The stored MD5 form is "md5" + hex(md5(password || user)); the client answers
 * an AuthenticationMD5Password(salt) with "md5" + hex(md5(hex || salt)), hex
 * being the stored form without its prefix. A plaintext secret is turned into
 * the stored form first. Comparisons are constant-time (CRYPTO_memcmp). An
 * empty plaintext secret never authenticates, as in PostgreSQL, where an
 * empty password is no password. */
#include "auth/auth.h"
#include "auth/auth_internal.h"

#include <string.h>

#include <openssl/crypto.h>

#define MD5_SECRET_LEN 35 /* "md5" + 32 hex digits */

/* out (36 bytes) = "md5" + hex(md5(a || b)). */
static int md5_hex(const void *a, size_t a_len, const void *b, size_t b_len,
                   char out[MD5_SECRET_LEN + 1])
{
    uint8_t d[AUTH_MD5_LEN];
    if (auth_md5_2(a, a_len, b, b_len, d) != 0)
        return -1;
    memcpy(out, "md5", 3);
    auth_hex_encode(d, sizeof d, out + 3);
    return 0;
}

/* The stored MD5 form of a plain or MD5 secret into out; -1 for other kinds. */
static int stored_md5(const char *user, const char *secret, char out[MD5_SECRET_LEN + 1])
{
    switch (auth_secret_classify(secret)) {
    case AUTH_SECRET_MD5:
        memcpy(out, secret, MD5_SECRET_LEN + 1);
        return 0;
    case AUTH_SECRET_PLAIN:
        if (secret[0] == '\0')
            return -1;
        return md5_hex(secret, strlen(secret), user, strlen(user), out);
    case AUTH_SECRET_SCRAM:
    default:
        return -1;
    }
}

bool auth_md5_check(const char *user, const char *secret, const uint8_t salt[4],
                    const char *client_answer)
{
    char stored[MD5_SECRET_LEN + 1], expect[MD5_SECRET_LEN + 1];
    bool ok = false;
    if (user == NULL || secret == NULL || salt == NULL || client_answer == NULL)
        return false;
    if (stored_md5(user, secret, stored) == 0 &&
        md5_hex(stored + 3, MD5_SECRET_LEN - 3, salt, 4, expect) == 0 &&
        strlen(client_answer) == MD5_SECRET_LEN) /* the length is no secret */
        ok = CRYPTO_memcmp(expect, client_answer, MD5_SECRET_LEN) == 0;
    OPENSSL_cleanse(stored, sizeof stored);
    OPENSSL_cleanse(expect, sizeof expect);
    return ok;
}

bool auth_password_check(const char *user, const char *secret, const char *password)
{
    if (user == NULL || secret == NULL || password == NULL || secret[0] == '\0')
        return false;
    bool ok = false;
    switch (auth_secret_classify(secret)) {
    case AUTH_SECRET_PLAIN: {
        /* Compare digests, so that neither the length nor the content of
         * the secret shows in the time taken. */
        uint8_t a[AUTH_SCRAM_KEY_LEN], b[AUTH_SCRAM_KEY_LEN];
        if (auth_sha256(secret, strlen(secret), a) == 0 &&
            auth_sha256(password, strlen(password), b) == 0)
            ok = CRYPTO_memcmp(a, b, sizeof a) == 0;
        break;
    }
    case AUTH_SECRET_MD5: {
        char computed[MD5_SECRET_LEN + 1];
        if (md5_hex(password, strlen(password), user, strlen(user), computed) == 0)
            ok = CRYPTO_memcmp(computed, secret, MD5_SECRET_LEN) == 0;
        OPENSSL_cleanse(computed, sizeof computed);
        break;
    }
    case AUTH_SECRET_SCRAM: {
        auth_scram_verifier v;
        uint8_t salted[AUTH_SCRAM_KEY_LEN], stored[AUTH_SCRAM_KEY_LEN];
        if (auth_scram_parse_verifier(secret, &v) == 0 &&
            auth_scram_salted_password(password, v.salt, v.salt_len, v.iterations, salted) == 0 &&
            auth_scram_keys(salted, stored, NULL) == 0)
            ok = CRYPTO_memcmp(stored, v.stored_key, AUTH_SCRAM_KEY_LEN) == 0;
        OPENSSL_cleanse(salted, sizeof salted);
        OPENSSL_cleanse(&v, sizeof v);
        break;
    }
    }
    return ok;
}
