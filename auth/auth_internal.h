/* auth_internal.h: helpers shared by the files of auth/ and by nothing else.
 *
 * crypto.c owns them: base64 (RFC 4648, strict on input), lowercase hex, and
 * thin wrappers over OpenSSL's SHA-256, HMAC-SHA-256, PBKDF2 and MD5 that
 * report failure as -1 instead of leaving it to the caller to check each
 * OpenSSL return code. scram.c exports the verifier parser so that
 * auth_password_check (md5.c) can check a cleartext password against a
 * SCRAM secret. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SCRAM_KEY_LEN 32        /* SHA-256 output */
#define AUTH_SCRAM_SALT_LEN 16       /* salt of verifiers we make, as PostgreSQL */
#define AUTH_SCRAM_ITERATIONS 4096   /* iterations of verifiers we make */
#define AUTH_SCRAM_MAX_SALT_LEN 1024 /* longest salt accepted in a verifier */
#define AUTH_MD5_LEN 16

/* Encoded length of n bytes, without the terminating NUL (a constant
 * expression when n is, so it can size arrays). */
#define AUTH_B64_ENC_LEN(n) (((size_t)(n) + 2) / 3 * 4)
/* Encode n bytes into out (AUTH_B64_ENC_LEN(n) + 1 bytes), NUL-terminated.
 * Returns the encoded length. */
size_t auth_b64_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly `len` characters of strict base64 (alphabet A-Z a-z 0-9 + /,
 * length a multiple of 4, '=' only as final padding, no whitespace) into out,
 * which must hold at least len / 4 * 3 bytes. Returns the decoded length, or
 * -1 if the input is not valid base64. */
long auth_b64_decode(const char *in, size_t len, uint8_t *out);

/* Write 2n lowercase hex digits and a NUL to out. */
void auth_hex_encode(const uint8_t *in, size_t n, char *out);

/* One-shot digests and MACs. Each returns 0, or -1 if OpenSSL failed. */
int auth_sha256(const void *data, size_t len, uint8_t out[AUTH_SCRAM_KEY_LEN])
    __attribute__((warn_unused_result));
int auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[AUTH_SCRAM_KEY_LEN]) __attribute__((warn_unused_result));
/* MD5 of a || b (either may be empty). */
int auth_md5_2(const void *a, size_t a_len, const void *b, size_t b_len,
               uint8_t out[AUTH_MD5_LEN]) __attribute__((warn_unused_result));
/* SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations). */
int auth_scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
                               int iterations, uint8_t out[AUTH_SCRAM_KEY_LEN])
    __attribute__((warn_unused_result));
/* StoredKey and ServerKey from a SaltedPassword (either output may be NULL). */
int auth_scram_keys(const uint8_t salted[AUTH_SCRAM_KEY_LEN],
                    uint8_t stored_key[AUTH_SCRAM_KEY_LEN],
                    uint8_t server_key[AUTH_SCRAM_KEY_LEN]) __attribute__((warn_unused_result));

/* A parsed "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>". */
typedef struct auth_scram_verifier {
    int iterations;                             /* > 0 */
    uint8_t salt[AUTH_SCRAM_MAX_SALT_LEN];      /* raw (decoded) salt */
    size_t salt_len;                            /* 1 .. AUTH_SCRAM_MAX_SALT_LEN */
    uint8_t stored_key[AUTH_SCRAM_KEY_LEN];     /* H(ClientKey) */
    uint8_t server_key[AUTH_SCRAM_KEY_LEN];     /* HMAC(SaltedPassword, "Server Key") */
} auth_scram_verifier;

/* Parse a SCRAM verifier. Returns 0, or -1 if it is not a well-formed one. */
int auth_scram_parse_verifier(const char *secret, auth_scram_verifier *v)
    __attribute__((warn_unused_result));
