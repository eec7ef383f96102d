/* fuzz_auth.c: libFuzzer target for auth/'s answers to what a client sends:
 * the SCRAM-SHA-256 server fed a client-first and a client-final message,
 * and the md5 and cleartext password checks.
 *
 * Input: byte 0 picks the user's secret (the RFC 7677 verifier for "pencil";
 * no such user, which runs the mock exchange; an MD5 secret, which SCRAM
 * refuses). The rest is the client-first message, a NUL, the client-final
 * message. The server nonce and salt are the RFC's, so a seed can hold a
 * whole successful exchange. The same bytes are also checked as md5 and
 * cleartext answers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "tests/fuzz/fuzz_check.h"

#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_VERIFIER                                                                                         \
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"              \
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
#define MD5_SECRET                                                                                           \
    "md5"                                                                                                    \
    "20c46e3762c864548e296b33c3406aa9" /* "pencil" for user "user" */

static void check_out(auth_scram_result r, const uint8_t *out, size_t out_len, const char *why)
{
    if (r == AUTH_SCRAM_CONTINUE || r == AUTH_SCRAM_FINAL) {
        FUZZ_CHECK(out != NULL && out_len > 0);
        /* The server's messages are printable ASCII. */
        for (size_t i = 0; i < out_len; i++)
            FUZZ_CHECK(out[i] >= 0x20 && out[i] < 0x7f);
    }
    if (r == AUTH_SCRAM_ERROR) FUZZ_CHECK(why != NULL);
}

static void fuzz_scram(const char *secret, const uint8_t *data, size_t size)
{
    auth_scram *s = auth_scram_new_fixed("user", secret, RFC_SNONCE, NULL, 0);
    if (!s) {
        FUZZ_CHECK(secret && strncmp(secret, "md5", 3) == 0);
        return;
    }
    const uint8_t *nul = memchr(data, '\0', size);
    size_t first_len = nul ? (size_t)(nul - data) : size;
    /* Exact-size copies, so ASan sees a read past either message. */
    uint8_t *first = malloc(first_len + 1);
    FUZZ_CHECK(first);
    memcpy(first, data, first_len);
    const uint8_t *out = NULL;
    size_t out_len = 0;
    const char *why = NULL;
    auth_scram_result r = auth_scram_client_first(s, first, first_len, &out, &out_len, &why);
    check_out(r, out, out_len, why);
    if (r == AUTH_SCRAM_CONTINUE && nul) {
        size_t final_len = size - first_len - 1;
        uint8_t *final = malloc(final_len + 1);
        FUZZ_CHECK(final);
        memcpy(final, nul + 1, final_len);
        why = NULL;
        r = auth_scram_client_final(s, final, final_len, &out, &out_len, &why);
        check_out(r, out, out_len, why);
        /* Only the real verifier can succeed. */
        if (r == AUTH_SCRAM_FINAL) FUZZ_CHECK(secret != NULL);
        /* Nothing is accepted after the end. */
        why = NULL;
        FUZZ_CHECK(auth_scram_client_final(s, final, final_len, &out, &out_len, &why) == AUTH_SCRAM_ERROR);
        free(final);
    } else if (r != AUTH_SCRAM_CONTINUE) {
        why = NULL;
        FUZZ_CHECK(auth_scram_client_final(s, first, first_len, &out, &out_len, &why) == AUTH_SCRAM_ERROR);
    }
    free(first);
    auth_scram_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const secrets[] = {RFC_VERIFIER, NULL, MD5_SECRET};
    const char *secret = secrets[data[0] % 3];
    data++;
    size--;
    fuzz_scram(secret, data, size);

    char *answer = malloc(size + 1);
    FUZZ_CHECK(answer);
    memcpy(answer, data, size);
    answer[size] = '\0';
    static const uint8_t salt[4] = {1, 2, 3, 4};
    (void)auth_md5_check("user", MD5_SECRET, salt, answer);
    (void)auth_md5_check("user", "pencil", salt, answer);
    (void)auth_password_check("user", MD5_SECRET, answer);
    (void)auth_password_check("user", "pencil", answer); /* not the verifier: PBKDF2 is slow */
    free(answer);
    return 0;
}
