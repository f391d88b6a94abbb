/* fernet.c - Fernet tokens (version 0x80) on libcrypto: key derivation,
 * verification and decryption of credential passwords, and encryption for
 * round trips.  Every primitive (PBKDF2, HMAC, AES, base64, randomness,
 * constant-time compare) is OpenSSL's; this file only lays out the token:
 *
 *   0x80 | timestamp (8, big-endian) | IV (16) | ciphertext (16k) | HMAC (32)
 *
 * with the HMAC-SHA256 over everything before it, and the whole token in
 * urlsafe base64. */
#include "netraven/secret.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define FERNET_VERSION   0x80
#define SIGN_LEN         16
#define AES_KEY_LEN      16
#define TS_LEN           8
#define IV_LEN           16
#define BLOCK_LEN        16
#define MAC_LEN          32
#define HEADER_LEN       (1 + TS_LEN + IV_LEN)          /* 25 */
#define MIN_TOKEN_LEN    (HEADER_LEN + MAC_LEN)         /* 57 */

static const unsigned char *signing_key(const struct nr_fernet *f)
{
    return f->key;
}

static const unsigned char *aes_key(const struct nr_fernet *f)
{
    return f->key + SIGN_LEN;
}

const char *nr_fernet_strerror(int rc)
{
    switch (rc) {
    case NR_OK:                return "success";
    case NR_EINVAL:            return "invalid argument";
    case NR_FERNET_ENOTTOKEN:  return "not a Fernet token";
    case NR_FERNET_ESIGNATURE:
        return "token signature does not match (wrong encryption key or tampered token)";
    case NR_FERNET_ETRUNCATED: return "token is truncated";
    case NR_FERNET_EPADDING:   return "token padding is invalid";
    case NR_FERNET_ENOKEY:
        return "value is a Fernet token but no encryption key is configured";
    default:                   return "cryptographic library failure";
    }
}

static int fail(int rc, char *errbuf)
{
    if (errbuf != NULL)
        snprintf(errbuf, NR_SECRET_ERRLEN, "%s", nr_fernet_strerror(rc));
    return rc;
}

void nr_secret_free(char *p, size_t n)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, n);
    free(p);
}

/* ---- base64 framing ------------------------------------------------------
 * Decoding itself is EVP_DecodeBlock's; here only the character class is
 * checked, the urlsafe alphabet mapped to the standard one, and unpadded
 * input completed, so that what OpenSSL sees is always well formed. */

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '+' || c == '/';
}

static bool ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The base64 body of s: surrounding whitespace and up to two trailing '='
 * removed.  False if anything else in it is outside the alphabet. */
static bool b64_body(const char *s, const char **body, size_t *blen)
{
    const char *b = s, *e;
    int pads = 0;

    while (ascii_space((unsigned char)*b))
        b++;
    e = b + strlen(b);
    while (e > b && ascii_space((unsigned char)e[-1]))
        e--;
    while (e > b && e[-1] == '=' && pads < 2) {
        e--;
        pads++;
    }
    for (const char *p = b; p < e; p++)
        if (!b64_char((unsigned char)*p))
            return false;
    *body = b;
    *blen = (size_t)(e - b);
    return true;
}

/* Decode token text.  Returns 0 with a malloc'd *out of *out_len bytes and
 * *partial set when the text ended one character into a 4-character group
 * (which no complete encoding does: the text was cut); the dangling
 * character is dropped.  NR_FERNET_ENOTTOKEN if it is not base64. */
static int b64_decode(const char *s, unsigned char **out, size_t *out_len,
                      bool *partial)
{
    const char *body;
    size_t blen, rem, glen, nbytes;
    unsigned char *in, *dec;
    int got;

    if (!b64_body(s, &body, &blen) || blen > (size_t)INT_MAX / 2)
        return NR_FERNET_ENOTTOKEN;
    *partial = (blen % 4 == 1);
    if (*partial)
        blen--;
    rem = blen % 4;
    glen = blen + (rem ? 4 - rem : 0);
    nbytes = blen / 4 * 3 + (rem ? rem - 1 : 0);

    in = nr_malloc(glen + 1);
    for (size_t i = 0; i < blen; i++) {
        char c = body[i];
        in[i] = (unsigned char)(c == '-' ? '+' : c == '_' ? '/' : c);
    }
    /* complete the last group with zero bits; the bytes they produce lie
     * past nbytes and are cut off below */
    for (size_t i = blen; i < glen; i++)
        in[i] = 'A';
    in[glen] = '\0';

    dec = nr_malloc(glen / 4 * 3 + 1);
    got = glen ? EVP_DecodeBlock(dec, in, (int)glen) : 0;
    free(in);
    if (got < 0 || (size_t)got < nbytes) {
        free(dec);
        return NR_FERNET_ENOTTOKEN;
    }
    *out = dec;
    *out_len = nbytes;
    return NR_OK;
}

/* urlsafe base64 with padding, as Python's base64.urlsafe_b64encode. */
static char *b64url_encode(const unsigned char *in, size_t n)
{
    char *out = nr_malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    out[len] = '\0';
    return out;
}

/* ---- key ---------------------------------------------------------------- */

int nr_fernet_derive(const char *master, const char *salt, struct nr_fernet *out)
{
    unsigned char key[NR_FERNET_KEY_LEN];
    size_t mlen, slen;

    if (master == NULL || salt == NULL || out == NULL)
        return NR_EINVAL;
    mlen = strlen(master);
    slen = strlen(salt);
    if (mlen > INT_MAX || slen > INT_MAX)
        return NR_EINVAL;
    if (PKCS5_PBKDF2_HMAC(master, (int)mlen, (const unsigned char *)salt, (int)slen,
                          NR_FERNET_ITERATIONS, EVP_sha256(),
                          (int)sizeof(key), key) != 1) {
        OPENSSL_cleanse(key, sizeof(key));
        return NR_ERR;
    }
    memcpy(out->key, key, sizeof(key));
    OPENSSL_cleanse(key, sizeof(key));
    return NR_OK;
}

int nr_fernet_set_key(struct nr_fernet *f, const char *b64)
{
    unsigned char *raw = NULL;
    size_t n = 0;
    bool partial;

    if (f == NULL || b64 == NULL || b64_decode(b64, &raw, &n, &partial) != NR_OK)
        return NR_EINVAL;
    if (partial || n != NR_FERNET_KEY_LEN) {
        nr_secret_free((char *)raw, n);
        return NR_EINVAL;
    }
    memcpy(f->key, raw, NR_FERNET_KEY_LEN);
    nr_secret_free((char *)raw, n);
    return NR_OK;
}

void nr_fernet_clear(struct nr_fernet *f)
{
    if (f != NULL)
        OPENSSL_cleanse(f->key, sizeof(f->key));
}

/* ---- tokens --------------------------------------------------------------- */

/* HMAC-SHA256 of n bytes with the signing key into mac[MAC_LEN]. */
static bool sign(const struct nr_fernet *f, const unsigned char *data, size_t n,
                 unsigned char mac[MAC_LEN])
{
    unsigned int mlen = 0;

    return HMAC(EVP_sha256(), signing_key(f), SIGN_LEN, data, n, mac, &mlen) != NULL &&
           mlen == MAC_LEN;
}

bool nr_fernet_looks_like_token(const char *s)
{
    const char *body;
    size_t blen;

    if (s == NULL || !b64_body(s, &body, &blen))
        return false;
    return blen >= 6 && memcmp(body, "gAAAAA", 6) == 0;
}

int nr_fernet_decrypt(const struct nr_fernet *f, const char *token,
                      char **plain, size_t *plain_len, char *errbuf)
{
    unsigned char *data = NULL, mac[MAC_LEN];
    unsigned char *pt = NULL;
    size_t n = 0, clen, cap = 0;
    bool partial = false;
    EVP_CIPHER_CTX *ctx = NULL;
    int rc, outl = 0, finl = 0;

    if (f == NULL || token == NULL || plain == NULL)
        return fail(NR_EINVAL, errbuf);

    rc = b64_decode(token, &data, &n, &partial);
    if (rc != NR_OK)
        return fail(rc, errbuf);
    if (n < 1 || data[0] != FERNET_VERSION || n < 1 + TS_LEN) {
        rc = NR_FERNET_ENOTTOKEN;
        goto out;
    }
    if (partial || n < MIN_TOKEN_LEN || (n - MIN_TOKEN_LEN) % BLOCK_LEN != 0) {
        rc = NR_FERNET_ETRUNCATED;
        goto out;
    }
    if (!sign(f, data, n - MAC_LEN, mac)) {
        rc = NR_ERR;
        goto out;
    }
    if (CRYPTO_memcmp(mac, data + n - MAC_LEN, MAC_LEN) != 0) {
        rc = NR_FERNET_ESIGNATURE;
        goto out;
    }

    /* Signed by the holder of the key: now, and only now, decrypt. */
    clen = n - MIN_TOKEN_LEN;
    cap = clen + BLOCK_LEN + 1;
    pt = nr_malloc(cap);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL ||
        EVP_DecryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, aes_key(f), data + 1 + TS_LEN) != 1 ||
        EVP_DecryptUpdate(ctx, pt, &outl, data + HEADER_LEN, (int)clen) != 1) {
        rc = NR_ERR;
        goto out;
    }
    /* with padding on (the default), Final fails exactly when the last
     * block's PKCS7 padding is wrong, or there was no block at all */
    if (EVP_DecryptFinal_ex(ctx, pt + outl, &finl) != 1) {
        rc = NR_FERNET_EPADDING;
        goto out;
    }
    pt[outl + finl] = '\0';
    *plain = (char *)pt;
    if (plain_len != NULL)
        *plain_len = (size_t)(outl + finl);
    pt = NULL;
    rc = NR_OK;

out:
    EVP_CIPHER_CTX_free(ctx);
    nr_secret_free((char *)pt, cap);
    OPENSSL_cleanse(mac, sizeof(mac));
    free(data);
    return rc == NR_OK ? rc : fail(rc, errbuf);
}

int nr_fernet_decrypt_password(const struct nr_fernet *f, const char *stored,
                               char **plain, size_t *plain_len, bool *legacy,
                               char *errbuf)
{
    char *p;
    size_t n;
    int rc;

    if (stored == NULL || plain == NULL)
        return fail(NR_EINVAL, errbuf);
    if (f != NULL) {
        rc = nr_fernet_decrypt(f, stored, &p, &n, NULL);
        if (rc == NR_OK) {
            *plain = p;
            if (plain_len != NULL)
                *plain_len = n;
            if (legacy != NULL)
                *legacy = false;
            return NR_OK;
        }
        /* A value that got as far as the signature check has a token's
         * whole structure (version byte, exact length); it is one, and a
         * bad one, whatever its first characters say. */
        if (rc == NR_ERR || rc == NR_FERNET_ESIGNATURE || rc == NR_FERNET_EPADDING ||
            nr_fernet_looks_like_token(stored))
            return fail(rc, errbuf);
    } else if (nr_fernet_looks_like_token(stored)) {
        return fail(NR_FERNET_ENOKEY, errbuf);
    }
    /* a legacy row: the value is the password itself */
    n = strlen(stored);
    *plain = nr_strndup(stored, n);
    if (plain_len != NULL)
        *plain_len = n;
    if (legacy != NULL)
        *legacy = true;
    return NR_OK;
}

int nr_fernet_encrypt(const struct nr_fernet *f, const void *plain,
                      size_t plain_len, char **token)
{
    unsigned char *buf;
    size_t cap, n;
    uint64_t ts;
    EVP_CIPHER_CTX *ctx = NULL;
    int outl = 0, finl = 0, rc = NR_ERR;

    if (f == NULL || (plain == NULL && plain_len > 0) || token == NULL ||
        plain_len > (size_t)INT_MAX - 2 * BLOCK_LEN)
        return NR_EINVAL;

    /* version, timestamp, IV, ciphertext (at most one block of padding
     * more than the plaintext), MAC */
    cap = MIN_TOKEN_LEN + plain_len + BLOCK_LEN;
    buf = nr_malloc(cap);
    ts = (uint64_t)time(NULL);
    buf[0] = FERNET_VERSION;
    for (int i = 0; i < TS_LEN; i++)
        buf[1 + i] = (unsigned char)(ts >> (8 * (TS_LEN - 1 - i)));
    if (RAND_bytes(buf + 1 + TS_LEN, IV_LEN) != 1)
        goto out;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL ||
        EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, aes_key(f), buf + 1 + TS_LEN) != 1 ||
        EVP_EncryptUpdate(ctx, buf + HEADER_LEN, &outl,
                          plain_len ? plain : (const void *)"", (int)plain_len) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + HEADER_LEN + outl, &finl) != 1)
        goto out;
    n = HEADER_LEN + (size_t)outl + (size_t)finl;
    if (!sign(f, buf, n, buf + n))
        goto out;
    n += MAC_LEN;
    *token = b64url_encode(buf, n);
    rc = NR_OK;

out:
    EVP_CIPHER_CTX_free(ctx);
    nr_secret_free((char *)buf, cap);
    return rc;
}
