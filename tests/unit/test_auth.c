/* test_auth.c: Check suite for auth/ — the auth_file parser, secret
 * classification, the SCRAM-SHA-256 server (RFC 7677 vector, round trips with
 * a client written here on OpenSSL, failures and malformed messages), MD5 and
 * cleartext checks. Known values were computed independently (Python's
 * hashlib) and are written out, not derived from the code under test. */
#include "auth/auth.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

/* ---------------------------------------------------------------- helpers */

#define RFC_USER "user"
#define RFC_PASSWORD "pencil"
#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT64 "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT64 ",i=4096"
#define RFC_CLIENT_FINAL                                                                         \
    "c=biws,r=" RFC_CNONCE RFC_SNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The verifier PostgreSQL would store for "pencil" with the RFC's salt. */
#define RFC_VERIFIER                                                                             \
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:" \
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static const uint8_t rfc_salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                     0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

static size_t b64enc(const uint8_t *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int b64dec(const char *in, uint8_t *out)
{
    size_t len = strlen(in);
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    return n;
}

/* Feed a message to the server and copy its answer, NUL-terminated, to buf. */
static auth_scram_result feed(auth_scram *s, bool first, const char *msg, size_t msg_len,
                              char *buf, size_t bufsz, const char **why)
{
    const uint8_t *out = (const uint8_t *)"junk";
    size_t out_len = 99;
    auth_scram_result r =
        first ? auth_scram_client_first(s, (const uint8_t *)msg, msg_len, &out, &out_len, why)
              : auth_scram_client_final(s, (const uint8_t *)msg, msg_len, &out, &out_len, why);
    buf[0] = '\0';
    if (r == AUTH_SCRAM_CONTINUE || r == AUTH_SCRAM_FINAL) {
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_lt(out_len, bufsz);
        memcpy(buf, out, out_len);
        buf[out_len] = '\0';
        ck_assert_uint_eq(strlen(buf), out_len);
    } else {
        ck_assert_ptr_null(out);
        ck_assert_uint_eq(out_len, 0);
    }
    return r;
}

static auth_scram_result feed_first(auth_scram *s, const char *msg, char *buf, size_t bufsz,
                                    const char **why)
{
    return feed(s, true, msg, strlen(msg), buf, bufsz, why);
}

static auth_scram_result feed_final(auth_scram *s, const char *msg, char *buf, size_t bufsz,
                                    const char **why)
{
    return feed(s, false, msg, strlen(msg), buf, bufsz, why);
}

/* A SCRAM-SHA-256 client, on OpenSSL directly. From the client-first-bare and
 * the server-first, builds the client-final ("<cbind>,r=...[,ext],p=...") and
 * the server-final the server must answer. */
static void scram_client_final(const char *password, const char *client_first_bare,
                               const char *server_first, const char *cbind, const char *ext,
                               char *final, size_t final_sz, char *expect_server_final)
{
    char nonce[256], salt64[256];
    int iter = 0;
    ck_assert_int_eq(strncmp(server_first, "r=", 2), 0);
    const char *s = strstr(server_first, ",s=");
    const char *i = strstr(server_first, ",i=");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(i);
    ck_assert_uint_lt((size_t)(s - server_first - 2), sizeof nonce);
    memcpy(nonce, server_first + 2, (size_t)(s - server_first - 2));
    nonce[s - server_first - 2] = '\0';
    ck_assert_uint_lt((size_t)(i - s - 3), sizeof salt64);
    memcpy(salt64, s + 3, (size_t)(i - s - 3));
    salt64[i - s - 3] = '\0';
    iter = atoi(i + 3);
    ck_assert_int_gt(iter, 0);

    uint8_t salt[256];
    int salt_len = b64dec(salt64, salt);
    ck_assert_int_gt(salt_len, 0);

    uint8_t salted[32], client_key[32], stored_key[32], server_key[32], sig[32], proof[32];
    unsigned int n;
    ck_assert_int_eq(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, salt_len, iter,
                                       EVP_sha256(), 32, salted),
                     1);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10,
                               client_key, &n));
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Server Key", 10,
                               server_key, &n));
    ck_assert_int_eq(EVP_Digest(client_key, 32, stored_key, &n, EVP_sha256(), NULL), 1);

    char without_proof[512];
    snprintf(without_proof, sizeof without_proof, "c=%s,r=%s%s%s", cbind, nonce, ext ? "," : "",
             ext ? ext : "");
    char auth_message[2048];
    snprintf(auth_message, sizeof auth_message, "%s,%s,%s", client_first_bare, server_first,
             without_proof);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), stored_key, 32, (const uint8_t *)auth_message,
                               strlen(auth_message), sig, &n));
    for (int k = 0; k < 32; k++)
        proof[k] = client_key[k] ^ sig[k];
    char proof64[64];
    b64enc(proof, 32, proof64);
    snprintf(final, final_sz, "%s,p=%s", without_proof, proof64);

    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), server_key, 32, (const uint8_t *)auth_message,
                               strlen(auth_message), sig, &n));
    strcpy(expect_server_final, "v=");
    b64enc(sig, 32, expect_server_final + 2);
}

/* Run a whole exchange as a client would; returns the server's last result. */
static auth_scram_result round_trip(const char *user, const char *secret, const char *password,
                                    char gs2_flag)
{
    auth_scram *s = auth_scram_new(user, secret);
    ck_assert_ptr_nonnull(s);
    char first[256], buf[1024], final[1024], expect[128];
    const char *why = NULL;
    snprintf(first, sizeof first, "%c,,n=,r=fyko+d2lbbFgONRv9qkxdawL", gs2_flag);
    ck_assert_int_eq(feed_first(s, first, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    ck_assert_int_eq(strncmp(buf, "r=fyko+d2lbbFgONRv9qkxdawL", 26), 0);
    scram_client_final(password, first + 3, buf, gs2_flag == 'y' ? "eSws" : "biws", NULL, final,
                       sizeof final, expect);
    auth_scram_result r = feed_final(s, final, buf, sizeof buf, &why);
    if (r == AUTH_SCRAM_FINAL)
        ck_assert_str_eq(buf, expect);
    else
        ck_assert_ptr_nonnull(why);
    auth_scram_free(s);
    return r;
}

/* ---------------------------------------------------------------- auth_file */

START_TEST(file_parse_basic)
{
    auth_file f;
    int line = -1;
    const char *why = "x";
    const char *text = "\"alice\" \"SCRAM-SHA-256$4096:abc$def:ghi\"\n"
                       "\"bob\"\t\"md5" "0123456789abcdef0123456789abcdef\"\n"
                       "\"carol\"   \"hunter2\"   \n";
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 3);
    auth_user *u = auth_file_find(&f, "alice");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->name, "alice");
    ck_assert_str_eq(u->secret, "SCRAM-SHA-256$4096:abc$def:ghi");
    ck_assert_int_eq(u->kind, AUTH_SECRET_SCRAM);
    u = auth_file_find(&f, "bob");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(u->kind, AUTH_SECRET_MD5);
    u = auth_file_find(&f, "carol");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "hunter2");
    ck_assert_int_eq(u->kind, AUTH_SECRET_PLAIN);
    ck_assert_ptr_null(auth_file_find(&f, "dave"));
    ck_assert_ptr_null(auth_file_find(&f, "Alice"));
    ck_assert_ptr_null(auth_file_find(&f, ""));
    auth_file_free(&f);
    ck_assert_uint_eq(f.n_users, 0);
    auth_file_free(&f); /* twice is harmless */
}
END_TEST

START_TEST(file_parse_quotes)
{
    auth_file f;
    int line;
    const char *why;
    const char *text = "\"a\"\"b\" \"p\"\"w\"\"\"\n"   /* a"b / p"w" */
                       "\"\"\"\" \"\"\n"             /* " / empty */
                       "\"sp ace\" \"x y;#z\"\n"     /* blanks, ; and # inside quotes */
                       "\"tab\" \"\"\"\"\"\"\"\"\n"; /* tab / "" */
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 4);
    auth_user *u = auth_file_find(&f, "a\"b");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "p\"w\"");
    u = auth_file_find(&f, "\"");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "");
    ck_assert_int_eq(u->kind, AUTH_SECRET_PLAIN);
    u = auth_file_find(&f, "sp ace");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "x y;#z");
    u = auth_file_find(&f, "tab");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "\"\"\"");
    auth_file_free(&f);
}
END_TEST

START_TEST(file_parse_comments_blank)
{
    auth_file f;
    int line;
    const char *why;
    const char *text = "; a comment\n"
                       "# another \"x\" \"y\"\n"
                       "\n"
                       "   \t \n"
                       "   ; indented comment\n"
                       "\t# indented comment\n"
                       "  \"u1\" \"p1\"\r\n" /* CRLF */
                       "\r\n"
                       "\"u2\" \"p2\""; /* no final newline */
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 2);
    ck_assert_str_eq(auth_file_find(&f, "u1")->secret, "p1");
    ck_assert_str_eq(auth_file_find(&f, "u2")->secret, "p2");
    ck_assert_ptr_null(auth_file_find(&f, "x"));
    auth_file_free(&f);

    ck_assert_int_eq(auth_file_parse("", &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 0);
    ck_assert_ptr_null(auth_file_find(&f, "u1"));
    auth_file_free(&f);

    ck_assert_int_eq(auth_file_parse("\n\n;x\n", &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 0);
    auth_file_free(&f);
}
END_TEST

/* PgBouncer reads two fields and ignores the rest of the line (pg_auth files
 * had more), so a userlist copied from it loads the same way here. */
START_TEST(file_parse_extra_fields)
{
    auth_file f;
    int line = -1;
    const char *why = NULL;
    const char *text = "\"app\" \"secret\" \"\"\n" /* PgBouncer's own example */
                       "\"u\" \"p\" x\n"           /* a bare word */
                       "\"v\" \"q\" \"r\" \"s\"\n" /* more strings */
                       "\"w\" \"md5"
                       "0123456789abcdef0123456789abcdef\"\t\"valid until\"\n"
                       "\"c\" \"3\" ;\n"                    /* not a comment: ignored too */
                       "\"q\" \"a\"\"b\" \"unterminated\n"; /* the rest is not read */
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 6);
    ck_assert_str_eq(auth_file_find(&f, "app")->secret, "secret");
    ck_assert_str_eq(auth_file_find(&f, "u")->secret, "p");
    ck_assert_str_eq(auth_file_find(&f, "v")->secret, "q");
    ck_assert_int_eq(auth_file_find(&f, "w")->kind, AUTH_SECRET_MD5);
    ck_assert_str_eq(auth_file_find(&f, "c")->secret, "3");
    ck_assert_str_eq(auth_file_find(&f, "q")->secret, "a\"b");
    ck_assert_ptr_null(auth_file_find(&f, "r"));
    auth_file_free(&f);
}
END_TEST

static const struct {
    const char *text;
    int line;
} bad_files[] = {
    {"\"u\" \"p\"\n\"v\" \"q\"x\n", 2},             /* text glued to the secret's quote */
    {"\"u\" \"p\"\n\n\"v\" \"pa\"ss\" \"r\"\n", 3}, /* a quote in the secret not doubled */
    {"u p\n", 1},                                   /* not quoted */
    {"\"u\" p\n", 1},                               /* secret not quoted */
    {"\"u\"\n", 1},                                 /* secret missing */
    {"\"u\"   \n", 1},                              /* secret missing, blanks */
    {"\"u\"\"p\"\n", 1},                            /* one string u"p, then nothing */
    {"\"u\"x\"p\"\n", 1},                           /* no blank between */
    {"# ok\n\"u \"p\"\n", 2},                       /* unterminated secret */
    {"\"u\" \"p\n\"\n", 1},                         /* newline inside quotes */
    {"\"unterminated\n", 1},                        /* unterminated user */
    {"\"\" \"p\"\n", 1},                            /* empty user name */
    {"x\"u\" \"p\"\n", 1},                          /* junk before */
};

START_TEST(file_parse_bad)
{
    auth_file f = {(auth_user *)1, 42}; /* garbage: must be reset */
    int line = -1;
    const char *why = NULL;
    ck_assert_int_eq(auth_file_parse(bad_files[_i].text, &f, &line, &why), -1);
    ck_assert_int_eq(line, bad_files[_i].line);
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(f.users);
    ck_assert_uint_eq(f.n_users, 0);
    auth_file_free(&f);
}
END_TEST

START_TEST(file_parse_duplicates)
{
    auth_file f;
    int line;
    const char *why;
    const char *text = "\"u\" \"first\"\n"
                       "\"v\" \"only\"\n"
                       "\"u\" \"second\"\n"
                       "\"w\" \"w1\"\n"
                       "\"u\" \"md5" "00000000000000000000000000000000\"\n"
                       "\"w\" \"w2\"\n";
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 3);
    auth_user *u = auth_file_find(&f, "u");
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(u->secret, "md500000000000000000000000000000000");
    ck_assert_int_eq(u->kind, AUTH_SECRET_MD5);
    ck_assert_str_eq(auth_file_find(&f, "v")->secret, "only");
    ck_assert_str_eq(auth_file_find(&f, "w")->secret, "w2");
    auth_file_free(&f);
}
END_TEST

START_TEST(file_find_many)
{
    /* Enough users, in no particular order, to exercise the lookup. */
    char *text = malloc(500 * 32);
    ck_assert_ptr_nonnull(text);
    size_t o = 0;
    for (int i = 0; i < 500; i++)
        o += (size_t)sprintf(text + o, "\"user%d\" \"pw%d\"\n", (i * 7919) % 500, i);
    auth_file f;
    int line;
    const char *why;
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    ck_assert_uint_eq(f.n_users, 500);
    for (int i = 0; i < 500; i++) {
        char name[32], pw[32];
        sprintf(name, "user%d", (i * 7919) % 500);
        sprintf(pw, "pw%d", i);
        auth_user *u = auth_file_find(&f, name);
        ck_assert_ptr_nonnull(u);
        ck_assert_str_eq(u->secret, pw);
    }
    ck_assert_ptr_null(auth_file_find(&f, "user500"));
    auth_file_free(&f);
    free(text);
}
END_TEST

static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/tidepool_test_auth_XXXXXX");
    ck_assert_ptr_nonnull(path);
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(file_load)
{
    auth_file f;
    char *err = (char *)"x";
    const char good[] = "; users\n\"alice\" \"pw\"\n\"bob\" \"md5"
                        "53f48b7c4b76a86ce72276c5755f217d\"\n";
    char *path = write_temp(good, sizeof good - 1);
    ck_assert_int_eq(auth_file_load(path, &f, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(f.n_users, 2);
    ck_assert_str_eq(auth_file_find(&f, "alice")->secret, "pw");
    auth_file_free(&f);
    unlink(path);
    free(path);

    const char bad[] = "\"alice\" \"pw\"\n\n\"bob\" pw\n";
    path = write_temp(bad, sizeof bad - 1);
    ck_assert_int_eq(auth_file_load(path, &f, &err), -1);
    ck_assert_ptr_nonnull(err);
    char expect[128];
    snprintf(expect, sizeof expect, "%s:3: ", path);
    ck_assert_int_eq(strncmp(err, expect, strlen(expect)), 0);
    ck_assert_uint_gt(strlen(err), strlen(expect));
    ck_assert_uint_eq(f.n_users, 0);
    free(err);
    unlink(path);
    free(path);

    /* A NUL byte in a line is an error on that line. */
    const char nul[] = "\"a\" \"b\"\n\"c\" \"d\0e\"\n";
    path = write_temp(nul, sizeof nul - 1);
    ck_assert_int_eq(auth_file_load(path, &f, &err), -1);
    snprintf(expect, sizeof expect, "%s:2: ", path);
    ck_assert_int_eq(strncmp(err, expect, strlen(expect)), 0);
    free(err);
    unlink(path);
    free(path);

    /* A file that cannot be read is told apart from a bad line. */
    ck_assert_int_eq(auth_file_load("/nonexistent/tidepool/userlist.txt", &f, &err), -2);
    ck_assert_str_eq(err, "/nonexistent/tidepool/userlist.txt: cannot open: No such file or directory");
    ck_assert_uint_eq(f.n_users, 0);
    free(err);
}
END_TEST

START_TEST(file_load_large)
{
    /* Bigger than the loader's first read buffer. */
    size_t n = 3000, cap = n * 48, o = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(text + o, cap - o, "\"user%zu\" \"password-number-%zu\"\n", i, i);
    char *path = write_temp(text, o);
    auth_file f;
    char *err = NULL;
    ck_assert_int_eq(auth_file_load(path, &f, &err), 0);
    ck_assert_uint_eq(f.n_users, n);
    ck_assert_str_eq(auth_file_find(&f, "user2999")->secret, "password-number-2999");
    auth_file_free(&f);
    unlink(path);
    free(path);
    free(text);
}
END_TEST

START_TEST(secret_classify)
{
    ck_assert_int_eq(auth_secret_classify("md553f48b7c4b76a86ce72276c5755f217d"), AUTH_SECRET_MD5);
    ck_assert_int_eq(auth_secret_classify("md50123456789abcdef0123456789abcdef"), AUTH_SECRET_MD5);
    /* uppercase hex, too short, too long, non-hex: plaintext */
    ck_assert_int_eq(auth_secret_classify("md553F48B7C4B76A86CE72276C5755F217D"),
                     AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("md553f48b7c4b76a86ce72276c5755f217"), AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("md553f48b7c4b76a86ce72276c5755f217d0"),
                     AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("md553f48b7c4b76a86ce72276c5755f217g"),
                     AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("MD553f48b7c4b76a86ce72276c5755f217d"),
                     AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("md5"), AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify(RFC_VERIFIER), AUTH_SECRET_SCRAM);
    ck_assert_int_eq(auth_secret_classify("SCRAM-SHA-256$garbage"), AUTH_SECRET_SCRAM);
    ck_assert_int_eq(auth_secret_classify("SCRAM-SHA-256"), AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("scram-sha-256$4096:x$y:z"), AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify("hunter2"), AUTH_SECRET_PLAIN);
    ck_assert_int_eq(auth_secret_classify(""), AUTH_SECRET_PLAIN);
}
END_TEST

START_TEST(verifier_valid)
{
    ck_assert(auth_scram_verifier_valid(RFC_VERIFIER));
    ck_assert(!auth_scram_verifier_valid(NULL));
    ck_assert(!auth_scram_verifier_valid("pencil"));
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$"));
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    /* salt not base64 */
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6g!==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    /* empty salt */
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096:$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    /* StoredKey too short */
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
    /* ServerKey missing, or trailing text */
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="));
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=x"));
    /* missing iteration count separator */
    ck_assert(!auth_scram_verifier_valid("SCRAM-SHA-256$4096W22ZaJ0SNY7soEsUEjb6gQ==$"
                                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
}
END_TEST

/* ---------------------------------------------------------------- SCRAM */

static void rfc7677_with(const char *secret)
{
    auth_scram *s = auth_scram_new_fixed(RFC_USER, secret, RFC_SNONCE, rfc_salt, sizeof rfc_salt);
    ck_assert_ptr_nonnull(s);
    char buf[512];
    const char *why = NULL;
    ck_assert_int_eq(feed_first(s, RFC_CLIENT_FIRST, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    ck_assert_str_eq(buf, RFC_SERVER_FIRST);
    ck_assert_int_eq(feed_final(s, RFC_CLIENT_FINAL, buf, sizeof buf, &why), AUTH_SCRAM_FINAL);
    ck_assert_str_eq(buf, RFC_SERVER_FINAL);
    /* Nothing more is accepted once finished. */
    ck_assert_int_eq(feed_final(s, RFC_CLIENT_FINAL, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    ck_assert_ptr_nonnull(why);
    auth_scram_free(s);
}

START_TEST(scram_rfc7677_plain)
{
    rfc7677_with(RFC_PASSWORD);
}
END_TEST

START_TEST(scram_rfc7677_verifier)
{
    rfc7677_with(RFC_VERIFIER);
}
END_TEST

START_TEST(scram_rfc7677_wrong_password)
{
    auth_scram *s = auth_scram_new_fixed(RFC_USER, "pencil2", RFC_SNONCE, rfc_salt, 16);
    ck_assert_ptr_nonnull(s);
    char buf[512];
    const char *why = NULL;
    ck_assert_int_eq(feed_first(s, RFC_CLIENT_FIRST, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    ck_assert_str_eq(buf, RFC_SERVER_FIRST);
    ck_assert_int_eq(feed_final(s, RFC_CLIENT_FINAL, buf, sizeof buf, &why), AUTH_SCRAM_FAIL);
    auth_scram_free(s);
}
END_TEST

START_TEST(scram_round_trip_plain)
{
    ck_assert_int_eq(round_trip("alice", "correct horse battery staple",
                                "correct horse battery staple", 'n'),
                     AUTH_SCRAM_FINAL);
    ck_assert_int_eq(round_trip("alice", "p\"w,=x", "p\"w,=x", 'y'), AUTH_SCRAM_FINAL);
}
END_TEST

START_TEST(scram_round_trip_verifier)
{
    ck_assert_int_eq(round_trip("user", RFC_VERIFIER, RFC_PASSWORD, 'n'), AUTH_SCRAM_FINAL);
    ck_assert_int_eq(round_trip("someone-else", RFC_VERIFIER, RFC_PASSWORD, 'y'),
                     AUTH_SCRAM_FINAL);
}
END_TEST

START_TEST(scram_make_verifier)
{
    char *v = auth_scram_make_verifier("s3cr3t pässwörd");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(auth_secret_classify(v), AUTH_SECRET_SCRAM);
    ck_assert(auth_scram_verifier_valid(v));
    /* SCRAM-SHA-256$4096:<24 chars of salt>$<44>:<44> */
    ck_assert_int_eq(strncmp(v, "SCRAM-SHA-256$4096:", 19), 0);
    ck_assert_uint_eq(strlen(v), 19 + 24 + 1 + 44 + 1 + 44);
    ck_assert_int_eq(v[19 + 24], '$');
    ck_assert_int_eq(v[19 + 24 + 1 + 44], ':');
    ck_assert_int_eq(round_trip("bob", v, "s3cr3t pässwörd", 'n'), AUTH_SCRAM_FINAL);
    ck_assert_int_eq(round_trip("bob", v, "s3cr3t passwörd", 'n'), AUTH_SCRAM_FAIL);
    ck_assert(auth_password_check("bob", v, "s3cr3t pässwörd"));
    ck_assert(!auth_password_check("bob", v, "s3cr3t pässwörd "));

    /* A fresh salt every time. */
    char *w = auth_scram_make_verifier("s3cr3t pässwörd");
    ck_assert_ptr_nonnull(w);
    ck_assert_str_ne(v, w);
    free(v);
    free(w);

    v = auth_scram_make_verifier("");
    ck_assert_ptr_nonnull(v);
    ck_assert(auth_scram_verifier_valid(v));
    free(v);
}
END_TEST

START_TEST(scram_wrong_password)
{
    ck_assert_int_eq(round_trip("alice", "secret", "Secret", 'n'), AUTH_SCRAM_FAIL);
    ck_assert_int_eq(round_trip("alice", "secret", "", 'n'), AUTH_SCRAM_FAIL);
    ck_assert_int_eq(round_trip("user", RFC_VERIFIER, "pencil ", 'n'), AUTH_SCRAM_FAIL);
}
END_TEST

/* The salt shown in a server-first-message. */
static void salt_of(const char *server_first, char *salt64, size_t sz)
{
    const char *s = strstr(server_first, ",s=");
    const char *i = strstr(server_first, ",i=");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(i);
    ck_assert_uint_lt((size_t)(i - s - 3), sz);
    memcpy(salt64, s + 3, (size_t)(i - s - 3));
    salt64[i - s - 3] = '\0';
}

static void first_of(const char *user, const char *secret, char *buf, size_t sz)
{
    auth_scram *s = auth_scram_new(user, secret);
    ck_assert_ptr_nonnull(s);
    const char *why;
    ck_assert_int_eq(feed_first(s, "n,,n=,r=abc", buf, sz, &why), AUTH_SCRAM_CONTINUE);
    auth_scram_free(s);
}

START_TEST(scram_nonexistent_user)
{
    /* The exchange runs to the end, with a proof computed from the salt and
     * iteration count offered, and fails only then. */
    ck_assert_int_eq(round_trip("nobody", NULL, "anything", 'n'), AUTH_SCRAM_FAIL);
    ck_assert_int_eq(round_trip("nobody", NULL, "", 'y'), AUTH_SCRAM_FAIL);

    /* The mock salt looks like a real one: 16 bytes, 4096 iterations, the
     * same on every attempt for a user, different between users. */
    char a[256], b[256], c[256], sa[64], sb[64], sc[64];
    first_of("nobody", NULL, a, sizeof a);
    first_of("nobody", NULL, b, sizeof b);
    first_of("somebody", NULL, c, sizeof c);
    salt_of(a, sa, sizeof sa);
    salt_of(b, sb, sizeof sb);
    salt_of(c, sc, sizeof sc);
    ck_assert_uint_eq(strlen(sa), 24);
    ck_assert_str_eq(sa, sb);
    ck_assert_str_ne(sa, sc);
    ck_assert_str_eq(strstr(a, ",i="), ",i=4096");
    /* Server nonces differ between exchanges. */
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(scram_secret_cached)
{
    auth_file f;
    int line = 0;
    const char *why = NULL;
    char text[512];
    snprintf(text, sizeof text, "\"alice\" \"pw\"\n\"bob\" \"md5%032d\"\n\"carol\" \"%s\"\n"
             "\"dave\" \"\"\n", 0, RFC_VERIFIER);
    ck_assert_int_eq(auth_file_parse(text, &f, &line, &why), 0);
    auth_user *alice = auth_file_find(&f, "alice");
    const char *v = auth_user_scram_secret(alice);
    ck_assert_ptr_nonnull(v);
    ck_assert(auth_scram_verifier_valid(v));
    ck_assert_ptr_eq(auth_user_scram_secret(alice), v); /* derived once */
    /* Its salt is the one a missing "alice" would be shown. */
    char first[256], salt[64];
    first_of("alice", NULL, first, sizeof first);
    salt_of(first, salt, sizeof salt);
    ck_assert_ptr_nonnull(strstr(v, salt));
    ck_assert_int_eq(round_trip("alice", v, "pw", 'n'), AUTH_SCRAM_FINAL);
    ck_assert_int_eq(round_trip("alice", v, "nope", 'n'), AUTH_SCRAM_FAIL);
    ck_assert_ptr_null(auth_user_scram_secret(auth_file_find(&f, "bob")));
    ck_assert_str_eq(auth_user_scram_secret(auth_file_find(&f, "carol")), RFC_VERIFIER);
    ck_assert_str_eq(auth_user_scram_secret(auth_file_find(&f, "dave")), "");
    auth_file_free(&f); /* frees the cache too (LSan checks) */
}
END_TEST

START_TEST(scram_unusable_secrets)
{
    /* An MD5 secret cannot be used for SCRAM. */
    ck_assert_ptr_null(auth_scram_new("u", "md553f48b7c4b76a86ce72276c5755f217d"));
    /* A broken verifier or an empty password: a mock exchange that fails at the end. */
    ck_assert_int_eq(round_trip("u", "SCRAM-SHA-256$4096:broken", "SCRAM-SHA-256$4096:broken", 'n'),
                     AUTH_SCRAM_FAIL);
    ck_assert_int_eq(round_trip("u", "", "", 'n'), AUTH_SCRAM_FAIL);
    /* Bad test-hook arguments. */
    ck_assert_ptr_null(auth_scram_new_fixed("u", "pw", "has,comma", NULL, 0));
    ck_assert_ptr_null(auth_scram_new_fixed("u", "pw", "", NULL, 0));
    ck_assert_ptr_null(auth_scram_new_fixed("u", "pw", NULL, rfc_salt, 0));
    ck_assert_ptr_null(auth_scram_new(NULL, "pw"));
}
END_TEST

START_TEST(scram_extensions_ignored)
{
    auth_scram *s = auth_scram_new("alice", "pw");
    ck_assert_ptr_nonnull(s);
    char buf[1024], final[1024], expect[128];
    const char *why;
    const char *first = "n,,n=ignored=2Cname,r=xyz,q=extension,z=";
    ck_assert_int_eq(feed_first(s, first, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    scram_client_final("pw", first + 3, buf, "biws", "x=ext,y=", final, sizeof final, expect);
    ck_assert_int_eq(feed_final(s, final, buf, sizeof buf, &why), AUTH_SCRAM_FINAL);
    ck_assert_str_eq(buf, expect);
    auth_scram_free(s);
}
END_TEST

static const struct {
    const char *msg;
    size_t len; /* 0: strlen */
} bad_firsts[] = {
    {"n,,n=user", 0},                               /* missing r= */
    {"n,,n=user,", 0},                              /* missing r=, trailing comma */
    {"n,,r=abc", 0},                                /* missing n= */
    {"n,,n=user,x=1,r=abc", 0},                     /* r= not second */
    {"n,,n=user,r=", 0},                            /* empty nonce */
    {"n,,n=user,r=ab c", 0},                        /* blank in nonce */
    {"n,,n=user,r=ab\x01", 0},                      /* control char in nonce */
    {"n,,n=user,r=ab\xc3\xa9", 0},                  /* non-ASCII in nonce */
    {"n,,n=user,r=ab\0cd", 15},                     /* NUL byte */
    {"n,,n=user,r=abc,", 0},                        /* trailing comma */
    {"n,,n=user,r=abc,1=x", 0},                     /* attribute not ALPHA */
    {"n,,n=user,r=abc,xx", 0},                      /* attribute without = */
    {"p=tls-server-end-point,,n=,r=abc", 0},        /* channel binding required */
    {"p,,n=,r=abc", 0},                             /* channel binding, bare */
    {"x,,n=,r=abc", 0},                             /* unknown gs2 flag */
    {"n,a=admin,n=,r=abc", 0},                      /* authzid */
    {"n,x,n=,r=abc", 0},                            /* junk in gs2 header */
    {"n,n=,r=abc", 0},                              /* gs2 header cut short */
    {"n,,m=ext,n=,r=abc", 0},                       /* mandatory extension */
    {"nn,,n=,r=abc", 0},
    {"n", 0},
    {"", 0},
    {"n,,n,r=abc", 0},                              /* n without = */
};

START_TEST(scram_bad_client_first)
{
    auth_scram *s = auth_scram_new("alice", "pw");
    ck_assert_ptr_nonnull(s);
    char buf[256];
    const char *why = NULL;
    size_t len = bad_firsts[_i].len ? bad_firsts[_i].len : strlen(bad_firsts[_i].msg);
    ck_assert_int_eq(feed(s, true, bad_firsts[_i].msg, len, buf, sizeof buf, &why),
                     AUTH_SCRAM_ERROR);
    ck_assert_ptr_nonnull(why);
    /* The exchange is over. */
    ck_assert_int_eq(feed_first(s, "n,,n=,r=abc", buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    auth_scram_free(s);
}
END_TEST

START_TEST(scram_channel_binding_error_message)
{
    auth_scram *s = auth_scram_new("alice", "pw");
    char buf[256];
    const char *why = NULL;
    ck_assert_int_eq(feed_first(s, "p=tls-server-end-point,,n=,r=abc", buf, sizeof buf, &why),
                     AUTH_SCRAM_ERROR);
    ck_assert_ptr_nonnull(strstr(why, "channel binding"));
    auth_scram_free(s);
}
END_TEST

/* Client-final messages built from a correct one by a small change. */
enum { BAD_NONCE, BAD_NONCE_SHORT, BAD_NONCE_LONG, BAD_B64, BAD_B64_PAD, BAD_PROOF_LEN,
       BAD_CBIND, BAD_CBIND_Y, NO_PROOF, NO_CBIND, NO_NONCE, GARBAGE_AFTER, TRAILING_COMMA,
       PROOF_FIRST, NUL_BYTE, N_BAD_FINALS };

START_TEST(scram_bad_client_final)
{
    auth_scram *s = auth_scram_new("alice", "pw");
    ck_assert_ptr_nonnull(s);
    char buf[1024], final[1024], expect[128], msg[1200];
    const char *why = NULL;
    const char *first = "n,,n=,r=abcdef";
    ck_assert_int_eq(feed_first(s, first, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    char server_first[512];
    strcpy(server_first, buf);
    scram_client_final("pw", first + 3, server_first, "biws", NULL, final, sizeof final, expect);
    /* final = c=biws,r=<nonce>,p=<proof> */
    char *r = strstr(final, ",r=") + 3;
    char *p = strstr(final, ",p=");
    int nlen = (int)(p - r);
    size_t len = 0;
    switch (_i) {
    case BAD_NONCE: /* one character of the server's part changed */
        strcpy(msg, final);
        msg[(size_t)(r - final) + (size_t)nlen - 1] ^= 1;
        break;
    case BAD_NONCE_SHORT: /* only the client's part echoed */
        snprintf(msg, sizeof msg, "c=biws,r=abcdef%s", p);
        break;
    case BAD_NONCE_LONG:
        snprintf(msg, sizeof msg, "c=biws,r=%.*sX%s", nlen, r, p);
        break;
    case BAD_B64:
        snprintf(msg, sizeof msg, "c=biws,r=%.*s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7And!Q=",
                 nlen, r);
        break;
    case BAD_B64_PAD: /* padding bits not zero */
        snprintf(msg, sizeof msg, "c=biws,r=%.*s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVR=",
                 nlen, r);
        break;
    case BAD_PROOF_LEN: /* valid base64 of 33 bytes, 44 characters */
        snprintf(msg, sizeof msg, "c=biws,r=%.*s,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQA",
                 nlen, r);
        break;
    case BAD_CBIND: /* not the gs2 header sent */
        snprintf(msg, sizeof msg, "c=eSws%s", final + 6);
        break;
    case BAD_CBIND_Y:
        snprintf(msg, sizeof msg, "c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws%s", final + 6);
        break;
    case NO_PROOF:
        snprintf(msg, sizeof msg, "c=biws,r=%.*s", nlen, r);
        break;
    case NO_CBIND:
        snprintf(msg, sizeof msg, "r=%.*s%s", nlen, r, p);
        break;
    case NO_NONCE:
        snprintf(msg, sizeof msg, "c=biws%s", p);
        break;
    case GARBAGE_AFTER:
        snprintf(msg, sizeof msg, "%s,x=1", final);
        break;
    case TRAILING_COMMA:
        snprintf(msg, sizeof msg, "%s,", final);
        break;
    case PROOF_FIRST:
        snprintf(msg, sizeof msg, "%s,c=biws,r=%.*s", p + 1, nlen, r);
        break;
    case NUL_BYTE:
        strcpy(msg, final);
        len = strlen(msg);
        msg[len - 5] = '\0';
        break;
    }
    if (len == 0)
        len = strlen(msg);
    ck_assert_int_eq(feed(s, false, msg, len, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    ck_assert_ptr_nonnull(why);
    /* And the correct message is no longer accepted. */
    ck_assert_int_eq(feed_final(s, final, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    auth_scram_free(s);
}
END_TEST

START_TEST(scram_gs2_flag_mismatch)
{
    /* "y" in the first message, "biws" (= "n,,") in the final one. */
    auth_scram *s = auth_scram_new("alice", "pw");
    char buf[1024], final[1024], expect[128];
    const char *why;
    const char *first = "y,,n=,r=abcdef";
    ck_assert_int_eq(feed_first(s, first, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    scram_client_final("pw", first + 3, buf, "biws", NULL, final, sizeof final, expect);
    ck_assert_int_eq(feed_final(s, final, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    auth_scram_free(s);
}
END_TEST

START_TEST(scram_out_of_order)
{
    auth_scram *s = auth_scram_new("alice", "pw");
    char buf[1024];
    const char *why = NULL;
    ck_assert_int_eq(feed_final(s, RFC_CLIENT_FINAL, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    ck_assert_ptr_nonnull(why);
    auth_scram_free(s);

    s = auth_scram_new("alice", "pw");
    ck_assert_int_eq(feed_first(s, "n,,n=,r=abc", buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    ck_assert_int_eq(feed_first(s, "n,,n=,r=abc", buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    auth_scram_free(s);

    auth_scram_free(NULL);
}
END_TEST

START_TEST(scram_fail_then_nothing)
{
    /* After a failed proof nothing more is accepted. */
    auth_scram *s = auth_scram_new("alice", "pw");
    char buf[1024], final[1024], expect[128];
    const char *why;
    const char *first = "n,,n=,r=abcdef";
    ck_assert_int_eq(feed_first(s, first, buf, sizeof buf, &why), AUTH_SCRAM_CONTINUE);
    scram_client_final("wrong", first + 3, buf, "biws", NULL, final, sizeof final, expect);
    ck_assert_int_eq(feed_final(s, final, buf, sizeof buf, &why), AUTH_SCRAM_FAIL);
    ck_assert_int_eq(feed_final(s, final, buf, sizeof buf, &why), AUTH_SCRAM_ERROR);
    auth_scram_free(s);
}
END_TEST

/* ---------------------------------------------------------------- MD5, cleartext */

/* md5("secretpostgres") */
#define PG_MD5 "md553f48b7c4b76a86ce72276c5755f217d"
/* "md5" + md5("53f48b7c4b76a86ce72276c5755f217d" || 01 02 03 04) */
#define PG_MD5_ANSWER "md5bb41a296aab6baccb36ff243a562abff"
/* the same with salt de ad be ef */
#define PG_MD5_ANSWER2 "md5c546d0bbed2af888b328536b45c76348"

/* The client's answer, computed here on OpenSSL. */
static void md5_answer(const char *user, const char *password, const uint8_t salt[4], char *out)
{
    uint8_t d[16];
    unsigned int n;
    char hex[33], buf[256];
    snprintf(buf, sizeof buf, "%s%s", password, user);
    ck_assert_int_eq(EVP_Digest(buf, strlen(buf), d, &n, EVP_md5(), NULL), 1);
    for (int i = 0; i < 16; i++)
        sprintf(hex + 2 * i, "%02x", d[i]);
    memcpy(buf, hex, 32);
    memcpy(buf + 32, salt, 4);
    ck_assert_int_eq(EVP_Digest(buf, 36, d, &n, EVP_md5(), NULL), 1);
    strcpy(out, "md5");
    for (int i = 0; i < 16; i++)
        sprintf(out + 3 + 2 * i, "%02x", d[i]);
}

START_TEST(md5_known_values)
{
    const uint8_t salt[4] = {1, 2, 3, 4}, salt2[4] = {0xde, 0xad, 0xbe, 0xef};
    char answer[64];
    md5_answer("postgres", "secret", salt, answer);
    ck_assert_str_eq(answer, PG_MD5_ANSWER);

    /* Plain and MD5 secrets alike. */
    ck_assert(auth_md5_check("postgres", "secret", salt, PG_MD5_ANSWER));
    ck_assert(auth_md5_check("postgres", PG_MD5, salt, PG_MD5_ANSWER));
    ck_assert(auth_md5_check("postgres", "secret", salt2, PG_MD5_ANSWER2));
    ck_assert(auth_md5_check("postgres", PG_MD5, salt2, PG_MD5_ANSWER2));

    /* Wrong salt, user, password, case, length. */
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt2, PG_MD5_ANSWER));
    ck_assert(!auth_md5_check("postgre", "secret", salt, PG_MD5_ANSWER));
    ck_assert(!auth_md5_check("postgres", "secret2", salt, PG_MD5_ANSWER));
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, "md5BB41A296AAB6BACCB36FF243A562ABFF"));
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, "md5bb41a296aab6baccb36ff243a562abf"));
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, PG_MD5_ANSWER "0"));
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, ""));
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, "bb41a296aab6baccb36ff243a562abff"));
    /* The stored form itself is not an answer. */
    ck_assert(!auth_md5_check("postgres", PG_MD5, salt, PG_MD5));

    /* SCRAM secrets cannot be checked this way; an empty password never passes. */
    ck_assert(!auth_md5_check("user", RFC_VERIFIER, salt, PG_MD5_ANSWER));
    md5_answer("postgres", "", salt, answer);
    ck_assert(!auth_md5_check("postgres", "", salt, answer));

    /* Random salts, other users. */
    for (int i = 0; i < 8; i++) {
        uint8_t r[4];
        ck_assert_int_eq(auth_random_bytes(r, 4), 0);
        md5_answer("alice", "wonder land", r, answer);
        ck_assert(auth_md5_check("alice", "wonder land", r, answer));
        ck_assert(!auth_md5_check("bob", "wonder land", r, answer));
    }
}
END_TEST

START_TEST(password_check_kinds)
{
    /* plaintext */
    ck_assert(auth_password_check("u", "hunter2", "hunter2"));
    ck_assert(!auth_password_check("u", "hunter2", "hunter"));
    ck_assert(!auth_password_check("u", "hunter2", "hunter22"));
    ck_assert(!auth_password_check("u", "hunter2", "Hunter2"));
    ck_assert(!auth_password_check("u", "hunter2", ""));
    ck_assert(!auth_password_check("u", "", ""));
    /* md5 */
    ck_assert(auth_password_check("postgres", PG_MD5, "secret"));
    ck_assert(!auth_password_check("postgres", PG_MD5, "secret "));
    ck_assert(!auth_password_check("postgres2", PG_MD5, "secret"));
    ck_assert(!auth_password_check("postgres", PG_MD5, PG_MD5));
    /* SCRAM */
    ck_assert(auth_password_check("user", RFC_VERIFIER, "pencil"));
    ck_assert(auth_password_check("anyone", RFC_VERIFIER, "pencil"));
    ck_assert(!auth_password_check("user", RFC_VERIFIER, "pencil2"));
    ck_assert(!auth_password_check("user", RFC_VERIFIER, ""));
    ck_assert(!auth_password_check("user", "SCRAM-SHA-256$4096:broken", "pencil"));
    ck_assert(!auth_password_check("user", "SCRAM-SHA-256$4096:broken",
                                   "SCRAM-SHA-256$4096:broken"));
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t a[32] = {0}, b[32] = {0};
    ck_assert_int_eq(auth_random_bytes(a, sizeof a), 0);
    ck_assert_int_eq(auth_random_bytes(b, sizeof b), 0);
    ck_assert_int_ne(memcmp(a, b, sizeof a), 0);
    ck_assert_int_eq(auth_random_bytes(a, 0), 0);
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *auth_suite(void)
{
    Suite *s = suite_create("auth");

    TCase *tc = tcase_create("auth_file");
    tcase_add_test(tc, file_parse_basic);
    tcase_add_test(tc, file_parse_quotes);
    tcase_add_test(tc, file_parse_comments_blank);
    tcase_add_test(tc, file_parse_extra_fields);
    tcase_add_loop_test(tc, file_parse_bad, 0, (int)(sizeof bad_files / sizeof bad_files[0]));
    tcase_add_test(tc, file_parse_duplicates);
    tcase_add_test(tc, file_find_many);
    tcase_add_test(tc, file_load);
    tcase_add_test(tc, file_load_large);
    tcase_add_test(tc, secret_classify);
    suite_add_tcase(s, tc);

    tc = tcase_create("scram");
    tcase_add_test(tc, verifier_valid);
    tcase_add_test(tc, scram_rfc7677_plain);
    tcase_add_test(tc, scram_rfc7677_verifier);
    tcase_add_test(tc, scram_rfc7677_wrong_password);
    tcase_add_test(tc, scram_round_trip_plain);
    tcase_add_test(tc, scram_round_trip_verifier);
    tcase_add_test(tc, scram_make_verifier);
    tcase_add_test(tc, scram_secret_cached);
    tcase_add_test(tc, scram_wrong_password);
    tcase_add_test(tc, scram_nonexistent_user);
    tcase_add_test(tc, scram_unusable_secrets);
    tcase_add_test(tc, scram_extensions_ignored);
    tcase_add_loop_test(tc, scram_bad_client_first, 0,
                        (int)(sizeof bad_firsts / sizeof bad_firsts[0]));
    tcase_add_test(tc, scram_channel_binding_error_message);
    tcase_add_loop_test(tc, scram_bad_client_final, 0, N_BAD_FINALS);
    tcase_add_test(tc, scram_gs2_flag_mismatch);
    tcase_add_test(tc, scram_out_of_order);
    tcase_add_test(tc, scram_fail_then_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("md5_password");
    tcase_add_test(tc, md5_known_values);
    tcase_add_test(tc, password_check_kinds);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
