/* crypto.c: the primitives under auth/ — base64, hex, and OpenSSL's SHA-256,
 * HMAC-SHA-256, PBKDF2 and MD5 behind small wrappers that return 0 or -1 —
 * plus auth_random_bytes. Nothing cryptographic is implemented here; it all
 * comes from libcrypto, through the EVP interface (OpenSSL 3 deprecates the
 * low-level MD5/SHA256 calls). Base64 is encoded by OpenSSL and decoded by a
 * strict decoder of our own, because EVP_DecodeBlock accepts whitespace and
 * does not report the length of padded input exactly. */
#include "auth/auth.h"
#include "auth/auth_internal.h"

#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

size_t auth_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t done = 0, o = 0;
    /* EVP_EncodeBlock takes an int length; feed it in chunks (a multiple of
     * 3 bytes, so the pieces concatenate into one valid encoding). */
    while (n - done > 0) {
        size_t chunk = n - done;
        if (chunk > 3u * (1u << 20))
            chunk = 3u * (1u << 20);
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + done, (int)chunk);
        done += chunk;
    }
    out[o] = '\0';
    return o;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long auth_b64_decode(const char *in, size_t len, uint8_t *out)
{
    if (len % 4 != 0 || len / 4 * 3 > (size_t)LONG_MAX)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        const unsigned char *q = (const unsigned char *)in + i;
        bool last = i + 4 == len;
        int pad = 0;
        if (last && q[3] == '=') {
            pad = 1;
            if (q[2] == '=')
                pad = 2;
        }
        int v[4];
        for (int k = 0; k < 4 - pad; k++) {
            v[k] = b64_value(q[k]);
            if (v[k] < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12;
        if (pad < 2)
            w |= (uint32_t)v[2] << 6;
        if (pad < 1)
            w |= (uint32_t)v[3];
        /* The bits dropped by padding must be zero, or two encodings would
         * decode to the same bytes. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return -1;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

void auth_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int auth_sha256(const void *data, size_t len, uint8_t out[AUTH_SCRAM_KEY_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != AUTH_SCRAM_KEY_LEN)
        return -1;
    return 0;
}

int auth_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                     uint8_t out[AUTH_SCRAM_KEY_LEN])
{
    unsigned int n = 0;
    if (key_len > INT_MAX)
        return -1;
    /* HMAC() wants a non-NULL data pointer even for an empty message. */
    static const uint8_t empty[1];
    if (HMAC(EVP_sha256(), key, (int)key_len, len ? data : empty, len, out, &n) == NULL ||
        n != AUTH_SCRAM_KEY_LEN)
        return -1;
    return 0;
}

/* MD5 fetched from the provider once: EVP_md5() makes every
 * EVP_DigestInit_ex look it up again (a third of an md5 login's cost). */
static EVP_MD *md5_fetched;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;

static void md5_fetch(void)
{
    md5_fetched = EVP_MD_fetch(NULL, "MD5", NULL);
}

int auth_md5_2(const void *a, size_t a_len, const void *b, size_t b_len, uint8_t out[AUTH_MD5_LEN])
{
    pthread_once(&md5_once, md5_fetch);
    const EVP_MD *md = md5_fetched ? md5_fetched : EVP_md5();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int rc = -1;
    if (ctx == NULL)
        return -1;
    if (EVP_DigestInit_ex(ctx, md, NULL) == 1 && (a_len == 0 || EVP_DigestUpdate(ctx, a, a_len) == 1) &&
        (b_len == 0 || EVP_DigestUpdate(ctx, b, b_len) == 1) && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
        n == AUTH_MD5_LEN)
        rc = 0;
    EVP_MD_CTX_free(ctx);
    return rc;
}

int auth_scram_salted_password(const char *password, const uint8_t *salt, size_t salt_len,
                               int iterations, uint8_t out[AUTH_SCRAM_KEY_LEN])
{
    size_t pw_len = strlen(password);
    if (pw_len > INT_MAX || salt_len > INT_MAX || iterations <= 0)
        return -1;
    if (PKCS5_PBKDF2_HMAC(password, (int)pw_len, salt, (int)salt_len, iterations, EVP_sha256(),
                          AUTH_SCRAM_KEY_LEN, out) != 1)
        return -1;
    return 0;
}

int auth_scram_keys(const uint8_t salted[AUTH_SCRAM_KEY_LEN],
                    uint8_t stored_key[AUTH_SCRAM_KEY_LEN],
                    uint8_t server_key[AUTH_SCRAM_KEY_LEN])
{
    if (stored_key != NULL) {
        uint8_t client_key[AUTH_SCRAM_KEY_LEN];
        int rc = auth_hmac_sha256(salted, AUTH_SCRAM_KEY_LEN, "Client Key", 10, client_key);
        if (rc == 0)
            rc = auth_sha256(client_key, AUTH_SCRAM_KEY_LEN, stored_key);
        OPENSSL_cleanse(client_key, sizeof client_key);
        if (rc != 0)
            return -1;
    }
    if (server_key != NULL &&
        auth_hmac_sha256(salted, AUTH_SCRAM_KEY_LEN, "Server Key", 10, server_key) != 0)
        return -1;
    return 0;
}

/* Small requests (a salt, a cancel key: one or two per login) are served
 * from a block drawn from the DRBG at once, per thread: each RAND_bytes call
 * costs some 6,000 instructions of locking and bookkeeping whatever its
 * length. Bytes handed out are wiped from the block. */
#define RANDOM_BLOCK 512
#define RANDOM_SMALL 64

int auth_random_bytes(uint8_t *buf, size_t len)
{
    static _Thread_local uint8_t block[RANDOM_BLOCK];
    static _Thread_local size_t used = RANDOM_BLOCK;
    if (len <= RANDOM_SMALL) {
        if (RANDOM_BLOCK - used < len) {
            if (RAND_bytes(block, RANDOM_BLOCK) != 1) return -1;
            used = 0;
        }
        memcpy(buf, block + used, len);
        OPENSSL_cleanse(block + used, len);
        used += len;
        return 0;
    }
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(buf, chunk) != 1)
            return -1;
        buf += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}
