/* test_secret.c - Fernet against Debian's python3-cryptography (both
 * directions, same key derivation), every refusal class, and redaction of
 * device configurations. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "netraven/config.h"
#include "netraven/secret.h"

/* Debian's interpreter: it has python3-cryptography; the one on PATH may not. */
#define PYTHON "/usr/bin/python3"

static const char MASTER[] = "netraven-test-master \xe2\x9c\x93 key";
static const char SALT[] = "netraven_salt";

/* ---- helpers ------------------------------------------------------------- */

static char *hex(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    char *h = malloc(2 * n + 1);

    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++) {
        h[2 * i] = digits[b[i] >> 4];
        h[2 * i + 1] = digits[b[i] & 15];
    }
    h[2 * n] = '\0';
    return h;
}

/* Test-side base64 (OpenSSL's), to tamper with tokens byte by byte. */
static unsigned char *b64url_dec(const char *s, size_t *n)
{
    size_t len = strlen(s), glen;
    char *in;
    unsigned char *out;
    int got, pads = 0;

    while (len > 0 && s[len - 1] == '=')
        len--;
    glen = (len + 3) / 4 * 4;
    in = calloc(1, glen + 1);
    for (size_t i = 0; i < glen; i++) {
        char c = i < len ? s[i] : '=';
        in[i] = c == '-' ? '+' : c == '_' ? '/' : c;
        pads += (c == '=');
    }
    out = malloc(glen / 4 * 3 + 1);
    got = EVP_DecodeBlock(out, (unsigned char *)in, (int)glen);
    ck_assert_int_ge(got, 0);
    free(in);
    *n = (size_t)got - (size_t)pads;
    return out;
}

static char *b64url_enc(const unsigned char *p, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);

    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static char scratch[] = "/tmp/nr-test-secret-XXXXXX";
static char script[sizeof(scratch) + 16];

static const char PY[] =
    "import sys, base64\n"
    "from cryptography.fernet import Fernet, InvalidToken\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC\n"
    "mode, master, salt = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])\n"
    "kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=100000)\n"
    "key = base64.urlsafe_b64encode(kdf.derive(master))\n"
    "f = Fernet(key)\n"
    "if mode == 'key':\n"
    "    print(key.decode())\n"
    "elif mode == 'encrypt':\n"
    "    for h in sys.argv[4:]:\n"
    "        print(f.encrypt(bytes.fromhex(h[1:])).decode())\n"
    "elif mode == 'decrypt':\n"
    "    for t in sys.argv[4:]:\n"
    "        try:\n"
    "            print('=' + f.decrypt(t.encode()).hex())\n"
    "        except InvalidToken:\n"
    "            print('INVALID')\n";

/* Run the script in mode with master/salt and args; returns its stdout
 * lines (at most max) in out[], malloc'd; the count. */
static size_t python(const char *mode, const char *master, const char *salt,
                     char **args, size_t nargs, char **out, size_t max)
{
    char *mh = hex(master, strlen(master)), *sh = hex(salt, strlen(salt));
    size_t cap = 256 + strlen(mh) + strlen(sh), n = 0;
    char *cmd, line[16384];
    FILE *p;

    for (size_t i = 0; i < nargs; i++)
        cap += strlen(args[i]) + 4;
    cmd = malloc(cap);
    snprintf(cmd, cap, "%s %s %s %s %s", PYTHON, script, mode, mh, sh);
    for (size_t i = 0; i < nargs; i++) {
        strcat(cmd, " '");
        strcat(cmd, args[i]);
        strcat(cmd, "'");
    }
    p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen: %s", strerror(errno));
    while (n < max && fgets(line, sizeof(line), p) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        out[n++] = strdup(line);
    }
    ck_assert_int_eq(pclose(p), 0);
    free(cmd);
    free(mh);
    free(sh);
    return n;
}

/* The plaintexts Python encrypts for us: ASCII, UTF-8, empty, 1000 chars. */
#define NPLAIN 4
static char long_plain[1001];
static const char *plains[NPLAIN] = {
    "cisco123",
    "p\xc3\xa4sswort-\xe5\xaf\x86\xe7\xa0\x81-\xf0\x9f\x94\x91 \"quoted\" $x;`",
    "",
    long_plain,
};

static struct nr_fernet key;
static char *py_key;
static char *py_tokens[NPLAIN];

static void fernet_setup(void)
{
    FILE *fp;
    char *args[NPLAIN];

    ck_assert_ptr_nonnull(mkdtemp(scratch));
    snprintf(script, sizeof(script), "%s/fernet.py", scratch);
    fp = fopen(script, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(PY, fp);
    fclose(fp);

    for (int i = 0; i < 1000; i++)
        long_plain[i] = (char)('!' + (i * 7) % 94);
    ck_assert_int_eq(nr_fernet_derive(MASTER, SALT, &key), 0);

    ck_assert_uint_eq(python("key", MASTER, SALT, NULL, 0, &py_key, 1), 1);
    for (int i = 0; i < NPLAIN; i++) {
        char *h = hex(plains[i], strlen(plains[i]));
        args[i] = malloc(strlen(h) + 2);
        sprintf(args[i], "x%s", h);      /* never an empty argument */
        free(h);
    }
    ck_assert_uint_eq(python("encrypt", MASTER, SALT, args, NPLAIN, py_tokens, NPLAIN),
                      NPLAIN);
    for (int i = 0; i < NPLAIN; i++)
        free(args[i]);
}

static void fernet_teardown(void)
{
    unlink(script);
    rmdir(scratch);
    free(py_key);
    for (int i = 0; i < NPLAIN; i++)
        free(py_tokens[i]);
    nr_fernet_clear(&key);
}

/* An error must be the class expected, with its fixed text, and name
 * nothing secret. */
static void assert_refused(int rc, int want, const char *errbuf, const char *token,
                           const char *plain)
{
    ck_assert_int_eq(rc, want);
    ck_assert_str_eq(errbuf, nr_fernet_strerror(want));
    if (token != NULL && *token != '\0')
        ck_assert_ptr_null(strstr(errbuf, token));
    if (plain != NULL && *plain != '\0')
        ck_assert_ptr_null(strstr(errbuf, plain));
    ck_assert_ptr_null(strstr(errbuf, MASTER));
    ck_assert_ptr_null(strstr(errbuf, "gAAAA"));
    ck_assert_ptr_null(strstr(errbuf, py_key));
}

/* Decrypt expecting refusal; also that the outputs stay untouched. */
static void expect_refused(const struct nr_fernet *f, const char *token, int want,
                           const char *plain)
{
    char err[NR_SECRET_ERRLEN] = "";
    char *out = (char *)"untouched";
    size_t n = 4242;

    assert_refused(nr_fernet_decrypt(f, token, &out, &n, err), want, err, token, plain);
    ck_assert_str_eq(out, "untouched");
    ck_assert_uint_eq(n, 4242);
}

/* ---- Fernet -------------------------------------------------------------- */

START_TEST(derived_key_is_pythons)
{
    struct nr_fernet k;
    char *mine = b64url_enc(key.key, sizeof(key.key));

    ck_assert_str_eq(mine, py_key);
    ck_assert_int_eq(nr_fernet_set_key(&k, py_key), 0);
    ck_assert_mem_eq(k.key, key.key, NR_FERNET_KEY_LEN);
    ck_assert_int_eq(nr_fernet_set_key(&k, "c2hvcnQ="), NR_EINVAL);
    ck_assert_int_eq(nr_fernet_set_key(&k, "not base64!"), NR_EINVAL);
    free(mine);
}
END_TEST

START_TEST(decrypts_python_tokens_exactly)
{
    for (int i = 0; i < NPLAIN; i++) {
        char err[NR_SECRET_ERRLEN];
        char *pt = NULL;
        size_t n = 0;

        ck_assert(nr_fernet_looks_like_token(py_tokens[i]));
        ck_assert_int_eq(nr_fernet_decrypt(&key, py_tokens[i], &pt, &n, err), 0);
        ck_assert_uint_eq(n, strlen(plains[i]));
        ck_assert_mem_eq(pt, plains[i], n);
        ck_assert_int_eq(pt[n], '\0');
        nr_secret_free(pt, n);
    }
}
END_TEST

START_TEST(padding_and_whitespace_are_tolerated)
{
    for (int i = 0; i < NPLAIN; i++) {
        char *t = strdup(py_tokens[i]), *spaced, *pt;
        size_t len = strlen(t), n;

        while (len > 0 && t[len - 1] == '=')
            t[--len] = '\0';
        ck_assert_int_eq(nr_fernet_decrypt(&key, t, &pt, &n, NULL), 0);
        ck_assert_mem_eq(pt, plains[i], n);
        nr_secret_free(pt, n);

        spaced = malloc(strlen(py_tokens[i]) + 4);
        sprintf(spaced, " %s\n", py_tokens[i]);
        ck_assert_int_eq(nr_fernet_decrypt(&key, spaced, &pt, &n, NULL), 0);
        ck_assert_uint_eq(n, strlen(plains[i]));
        nr_secret_free(pt, n);
        free(spaced);
        free(t);
    }
}
END_TEST

START_TEST(c_tokens_decrypt_in_python)
{
    char *tokens[NPLAIN], *lines[NPLAIN];

    for (int i = 0; i < NPLAIN; i++) {
        char *pt;
        size_t n;

        ck_assert_int_eq(nr_fernet_encrypt(&key, plains[i], strlen(plains[i]), &tokens[i]), 0);
        ck_assert(nr_fernet_looks_like_token(tokens[i]));
        ck_assert_int_eq(nr_fernet_decrypt(&key, tokens[i], &pt, &n, NULL), 0);
        ck_assert_uint_eq(n, strlen(plains[i]));
        ck_assert_mem_eq(pt, plains[i], n);
        nr_secret_free(pt, n);
    }
    ck_assert_uint_eq(python("decrypt", MASTER, SALT, tokens, NPLAIN, lines, NPLAIN), NPLAIN);
    for (int i = 0; i < NPLAIN; i++) {
        char *h = hex(plains[i], strlen(plains[i]));
        ck_assert_int_eq(lines[i][0], '=');
        ck_assert_str_eq(lines[i] + 1, h);
        free(h);
        free(lines[i]);
        free(tokens[i]);
    }
}
END_TEST

START_TEST(c_tokens_use_fresh_ivs)
{
    char *a, *b;

    ck_assert_int_eq(nr_fernet_encrypt(&key, "same", 4, &a), 0);
    ck_assert_int_eq(nr_fernet_encrypt(&key, "same", 4, &b), 0);
    ck_assert_str_ne(a, b);
    free(a);
    free(b);
}
END_TEST

/* Flip one byte at off (negative: from the end) of the decoded token. */
static char *tampered(const char *token, long off)
{
    size_t n;
    unsigned char *raw = b64url_dec(token, &n);
    char *t;

    raw[off < 0 ? (long)n + off : off] ^= 0x01;
    t = b64url_enc(raw, n);
    free(raw);
    return t;
}

START_TEST(tampered_tokens_fail_the_signature)
{
    /* ciphertext, HMAC, IV, timestamp; offset 1 also changes the text's
     * "gAAAAA" prefix, so the password policy must still see a token */
    static const long where[] = { 25, -1, -32, 9, 24, 1, 8 };
    const char *tok = py_tokens[1];

    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        char *t = tampered(tok, where[i]);
        char err[NR_SECRET_ERRLEN];
        char *pt = NULL;
        size_t n;
        bool legacy;

        expect_refused(&key, t, NR_FERNET_ESIGNATURE, plains[1]);
        /* never used as a password */
        assert_refused(nr_fernet_decrypt_password(&key, t, &pt, &n, &legacy, err),
                       NR_FERNET_ESIGNATURE, err, t, plains[1]);
        ck_assert_ptr_null(pt);
        free(t);
    }
    /* the version byte: no longer a Fernet token */
    {
        char *t = tampered(tok, 0);
        expect_refused(&key, t, NR_FERNET_ENOTTOKEN, plains[1]);
        free(t);
    }
}
END_TEST

START_TEST(wrong_master_key_or_salt)
{
    struct nr_fernet other;

    ck_assert_int_eq(nr_fernet_derive("netraven-test-master \xe2\x9c\x93 kez", SALT, &other), 0);
    for (int i = 0; i < NPLAIN; i++)
        expect_refused(&other, py_tokens[i], NR_FERNET_ESIGNATURE, plains[i]);
    ck_assert_int_eq(nr_fernet_derive(MASTER, "netraven_salt2", &other), 0);
    for (int i = 0; i < NPLAIN; i++)
        expect_refused(&other, py_tokens[i], NR_FERNET_ESIGNATURE, plains[i]);
    nr_fernet_clear(&other);
}
END_TEST

START_TEST(truncated_tokens)
{
    const char *tok = py_tokens[3];          /* 1000 bytes: many blocks */
    size_t len = strlen(tok);
    size_t cuts[] = { len - 3, len - 10, len - 45, len / 2, 20, 17 };

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        char *t = strndup(tok, cuts[i]);
        char err[NR_SECRET_ERRLEN];
        char *pt = NULL;

        expect_refused(&key, t, NR_FERNET_ETRUNCATED, plains[3]);
        assert_refused(nr_fernet_decrypt_password(&key, t, &pt, NULL, NULL, err),
                       NR_FERNET_ETRUNCATED, err, t, plains[3]);
        ck_assert_ptr_null(pt);
        free(t);
    }
    /* one byte short, re-encoded cleanly */
    {
        size_t n;
        unsigned char *raw = b64url_dec(tok, &n);
        char *t = b64url_enc(raw, n - 1);
        expect_refused(&key, t, NR_FERNET_ETRUNCATED, plains[3]);
        free(t);
        free(raw);
    }
}
END_TEST

/* A token signed with the right key whose plaintext block ends in a
 * byte that is no PKCS7 padding: only the padding check can refuse it. */
static char *signed_token(const unsigned char *ct, size_t clen)
{
    unsigned char buf[256];
    unsigned int mlen;
    size_t n = 0;

    buf[n++] = 0x80;
    memset(buf + n, 0, 8);
    buf[n + 7] = 42;
    n += 8;
    memset(buf + n, 7, 16);                  /* IV */
    n += 16;
    memcpy(buf + n, ct, clen);
    n += clen;
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key.key, 16, buf, n, buf + n, &mlen));
    return b64url_enc(buf, n + mlen);
}

START_TEST(bad_padding_is_refused_after_the_signature)
{
    unsigned char block[16], iv[16], ct[32];
    int outl = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    char *t;

    memset(block, 'A', sizeof(block));
    block[15] = 0x00;                        /* no valid padding ends in 0 */
    memset(iv, 7, sizeof(iv));
    ck_assert_int_eq(EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, key.key + 16, iv), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    ck_assert_int_eq(EVP_EncryptUpdate(c, ct, &outl, block, 16), 1);
    ck_assert_int_eq(outl, 16);
    EVP_CIPHER_CTX_free(c);

    t = signed_token(ct, 16);
    expect_refused(&key, t, NR_FERNET_EPADDING, NULL);
    {
        char err[NR_SECRET_ERRLEN], *pt = NULL;
        assert_refused(nr_fernet_decrypt_password(&key, t, &pt, NULL, NULL, err),
                       NR_FERNET_EPADDING, err, t, NULL);
        ck_assert_ptr_null(pt);
    }
    free(t);
    /* no ciphertext at all, correctly signed */
    t = signed_token(ct, 0);
    expect_refused(&key, t, NR_FERNET_EPADDING, NULL);
    free(t);
}
END_TEST

START_TEST(garbage_is_not_a_token)
{
    static const char *junk[] = {
        "", "!!!", "hello world", "SGVsbG8gd29ybGQ=", "gA", "gAAA====",
        "\x80\x01\xff", "gAAAAABl=x", "-_-_-_-_",
    };

    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        expect_refused(&key, junk[i], NR_FERNET_ENOTTOKEN, NULL);
    ck_assert(!nr_fernet_looks_like_token("hello world"));
    ck_assert(!nr_fernet_looks_like_token("gA"));
    ck_assert(!nr_fernet_looks_like_token(NULL));
    ck_assert(nr_fernet_looks_like_token("gAAAAA"));
}
END_TEST

START_TEST(legacy_plain_passwords)
{
    static const char *plain_rows[] = { "cisco123", "gBcdefghij1234", "P@ss w0rd!", "" };
    char err[NR_SECRET_ERRLEN];

    for (size_t i = 0; i < sizeof(plain_rows) / sizeof(plain_rows[0]); i++) {
        const char *v = plain_rows[i];
        char *pt = NULL;
        size_t n = 99;
        bool legacy = false;
        int rc = nr_fernet_decrypt(&key, v, &pt, &n, err);

        ck_assert_int_lt(rc, 0);
        ck_assert_ptr_null(pt);
        ck_assert(!nr_fernet_looks_like_token(v));
        ck_assert_int_eq(nr_fernet_decrypt_password(&key, v, &pt, &n, &legacy, err), 0);
        ck_assert(legacy);
        ck_assert_uint_eq(n, strlen(v));
        ck_assert_str_eq(pt, v);
        nr_secret_free(pt, n);

        /* no key configured: a legacy value still works */
        ck_assert_int_eq(nr_fernet_decrypt_password(NULL, v, &pt, &n, &legacy, err), 0);
        ck_assert_str_eq(pt, v);
        nr_secret_free(pt, n);
    }
    expect_refused(&key, "cisco123", NR_FERNET_ENOTTOKEN, "cisco123");
}
END_TEST

START_TEST(password_policy_for_tokens)
{
    char err[NR_SECRET_ERRLEN];
    char *pt = NULL;
    size_t n = 0;
    bool legacy = true;

    ck_assert_int_eq(nr_fernet_decrypt_password(&key, py_tokens[0], &pt, &n, &legacy, err), 0);
    ck_assert(!legacy);
    ck_assert_str_eq(pt, plains[0]);
    nr_secret_free(pt, n);

    pt = NULL;
    /* a token-shaped value that cannot be opened is an error, not a password */
    assert_refused(nr_fernet_decrypt_password(&key, "gAAAAA", &pt, &n, &legacy, err),
                   NR_FERNET_ENOTTOKEN, err, NULL, NULL);
    ck_assert_ptr_null(pt);
    assert_refused(nr_fernet_decrypt_password(NULL, py_tokens[0], &pt, &n, &legacy, err),
                   NR_FERNET_ENOKEY, err, py_tokens[0], plains[0]);
    ck_assert_ptr_null(pt);
    assert_refused(nr_fernet_decrypt_password(&key, NULL, &pt, &n, &legacy, err),
                   NR_EINVAL, err, NULL, NULL);
}
END_TEST

START_TEST(messages_and_release)
{
    struct nr_fernet k = key;
    static const unsigned char zero[NR_FERNET_KEY_LEN];
    char *pt = NULL;

    ck_assert_str_eq(nr_fernet_strerror(NR_FERNET_ENOTTOKEN), "not a Fernet token");
    ck_assert_str_eq(nr_fernet_strerror(NR_FERNET_ESIGNATURE),
                     "token signature does not match (wrong encryption key or tampered token)");
    ck_assert_str_eq(nr_fernet_strerror(NR_FERNET_ETRUNCATED), "token is truncated");
    ck_assert_str_eq(nr_fernet_strerror(NR_FERNET_EPADDING), "token padding is invalid");
    ck_assert_ptr_nonnull(nr_fernet_strerror(12345));

    ck_assert_int_eq(nr_fernet_derive(NULL, SALT, &k), NR_EINVAL);
    ck_assert_int_eq(nr_fernet_derive(MASTER, NULL, &k), NR_EINVAL);
    ck_assert_mem_eq(k.key, key.key, NR_FERNET_KEY_LEN);   /* untouched */
    ck_assert_int_eq(nr_fernet_decrypt(NULL, py_tokens[0], &pt, NULL, NULL), NR_EINVAL);
    ck_assert_int_eq(nr_fernet_encrypt(&k, NULL, 3, &pt), NR_EINVAL);

    nr_fernet_clear(&k);
    ck_assert_mem_eq(k.key, zero, NR_FERNET_KEY_LEN);
    expect_refused(&k, py_tokens[0], NR_FERNET_ESIGNATURE, plains[0]);
    nr_fernet_clear(NULL);
    nr_secret_free(NULL, 10);
}
END_TEST

/* ---- redaction ----------------------------------------------------------- */

/* a string literal and its length, NUL bytes included */
#define LIT(s) s, sizeof(s) - 1

/* the default marker for a kind */
#define RL(kind) "[REDACTED LINE] (" kind ")"

/* Secrets of the tests: a login password and an enable secret that a
 * device prints in descriptions, on lines without any keyword. */
#define LOGIN_PW  "Hunter2-login"
#define ENABLE_PW "En4ble-S3cr3t!"

static struct nr_strlist pats(const char *a, const char *b, const char *c)
{
    struct nr_strlist l = { 0 };
    if (a) nr_strlist_push(&l, a);
    if (b) nr_strlist_push(&l, b);
    if (c) nr_strlist_push(&l, c);
    return l;
}

/* A redaction with patterns p (may be NULL), the default marker, no secrets. */
static struct nr_redaction rd(const struct nr_strlist *p)
{
    struct nr_redaction r;

    nr_redaction_init(&r, NULL);
    r.patterns = p;
    return r;
}

/* The same with the two test secrets. */
static struct nr_redaction rd_secrets(const struct nr_strlist *p)
{
    struct nr_redaction r = rd(p);

    nr_redaction_add_secret(&r, LOGIN_PW, NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(&r, ENABLE_PW, NR_KIND_ENABLE_SECRET);
    return r;
}

static const char IOS[] =
    "!\n"
    "version 15.2\n"
    "hostname edge-r1\n"
    "enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0\n"
    "username admin privilege 15 password 7 0822455D0A16\n"
    "snmp-server community s3cr3t RO\n"
    "interface GigabitEthernet0/0\n"
    " ip address 192.0.2.1 255.255.255.0\n"
    "line vty 0 4\n"
    " Password cisco\n"
    "end\n";

/* IOS with the patterns password and secret */
static const char IOS_DEFAULT[] =
    "!\n"
    "version 15.2\n"
    "hostname edge-r1\n"
    RL("secret") "\n"
    RL("password") "\n"
    "snmp-server community s3cr3t RO\n"
    "interface GigabitEthernet0/0\n"
    " ip address 192.0.2.1 255.255.255.0\n"
    "line vty 0 4\n"
    RL("password") "\n"
    "end\n";

static void redact_r(const char *in, size_t len, const struct nr_redaction *r,
                     const char *want, size_t want_len, size_t want_lines)
{
    char *out = NULL;
    size_t n = 0, lines = 0;

    ck_assert_int_eq(nr_redact(in, len, r, &out, &n, &lines), 0);
    ck_assert_msg(n == want_len && memcmp(out, want, want_len) == 0,
                  "got [%.*s]\nwant [%.*s]", (int)n, out, (int)want_len, want);
    ck_assert_int_eq(out[n], '\0');
    ck_assert_uint_eq(lines, want_lines);
    free(out);
}

/* With patterns p only, the default marker. */
static void redact_ok(const char *in, size_t len, const struct nr_strlist *p,
                      const char *want, size_t want_len, size_t want_lines)
{
    struct nr_redaction r = rd(p);

    redact_r(in, len, &r, want, want_len, want_lines);
}

static size_t count(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (s[i] == c);
    return k;
}

/* s with every "\n" turned into "\r\n". */
static char *crlf(const char *s)
{
    char *o = malloc(2 * strlen(s) + 1), *q = o;
    for (; *s; s++) {
        if (*s == '\n')
            *q++ = '\r';
        *q++ = *s;
    }
    *q = '\0';
    return o;
}

START_TEST(default_patterns_on_ios)
{
    struct nr_strlist p = pats("password", "secret", NULL);

    redact_ok(IOS, strlen(IOS), &p, IOS_DEFAULT, strlen(IOS_DEFAULT), 3);
    ck_assert_uint_eq(count(IOS_DEFAULT, strlen(IOS_DEFAULT), '\n'),
                      count(IOS, strlen(IOS), '\n'));
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(prod_patterns_add_community)
{
    struct nr_strlist p = pats("password", "secret", "community");
    char *want = strdup(IOS_DEFAULT);
    char *at = strstr(want, "snmp-server community s3cr3t RO\n");
    char out[sizeof(IOS_DEFAULT) + 64];

    /* same as default, with the snmp line redacted too */
    size_t head = (size_t)(at - want);
    memcpy(out, want, head);
    strcpy(out + head, RL("community") "\n");
    strcat(out, at + strlen("snmp-server community s3cr3t RO\n"));
    redact_ok(IOS, strlen(IOS), &p, out, strlen(out), 4);
    free(want);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(crlf_endings_are_kept)
{
    struct nr_strlist p = pats("password", "secret", NULL);
    struct nr_redaction r = rd_secrets(&p);
    char *in = crlf(IOS), *want = crlf(IOS_DEFAULT);

    redact_ok(in, strlen(in), &p, want, strlen(want), 3);
    free(in);
    free(want);

    /* mixed endings, each kept as it was */
    redact_ok(LIT("a\r\nsecret 1\r\nb\nsecret 2\nsecret 3\r\n"), &p,
              LIT("a\r\n" RL("secret") "\r\nb\n" RL("secret") "\n" RL("secret") "\r\n"), 3);
    /* the same for secrets; "\r\r\n": the first '\r' is the line's */
    redact_r(LIT("a\r\n description " LOGIN_PW "\r\nb\n" ENABLE_PW "\r\r\nc\r"), &r,
             LIT("a\r\n" RL("login password") "\r\nb\n" RL("enable secret") "\r\nc\r"), 2);
    redact_r(LIT("x " ENABLE_PW "\r"), &r, LIT(RL("enable secret") "\r"), 1);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(case_insensitive)
{
    struct nr_strlist p = pats("PassWord", "secret", NULL);
    const char in[] = "x PASSWORD y\nenable SeCrEt 0 z\nnothing\npassw0rd\nSECRE\n";
    /* the kind is the keyword as configured */
    const char want[] = RL("PassWord") "\n" RL("secret") "\nnothing\npassw0rd\nSECRE\n";

    redact_ok(in, strlen(in), &p, want, strlen(want), 2);
    nr_strlist_clear(&p);
}
END_TEST

/* A long configured list (more patterns than the matcher keeps inline):
 * every one still found, an empty one ignored, the first configured kind
 * named where two match at the same place, upper case on either side. */
START_TEST(many_patterns)
{
    struct nr_strlist p = { 0 };
    char name[32];

    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "Key%02d-word", i);
        nr_strlist_push(&p, i == 7 ? "" : name);
    }
    nr_strlist_push(&p, "key39");
    redact_ok(LIT("a key00-WORD b\nKEY39-word\nkey07-word\nkey39\nkey4-word\n"), &p,
              LIT(RL("Key00-word") "\n" RL("Key39-word") "\nkey07-word\n" RL("key39")
                  "\nkey4-word\n"), 3);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(last_line_without_newline)
{
    struct nr_strlist p = pats("password", "secret", NULL);

    redact_ok(LIT("hostname r1\nenable secret 5 x"), &p,
              LIT("hostname r1\n" RL("secret")), 1);
    redact_ok(LIT("hostname r1\nenable secret 5 x\r"), &p,
              LIT("hostname r1\n" RL("secret") "\r"), 1);
    redact_ok(LIT("secret"), &p,
              LIT(RL("secret")), 1);
    redact_ok(LIT("hostname r1"), &p,
              LIT("hostname r1"), 0);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(lines_do_not_join)
{
    struct nr_strlist p = pats("password", "secret", NULL);

    /* a keyword is never matched across a line ending */
    redact_ok(LIT("pass\nword\nsec\r\nret\n"), &p,
              LIT("pass\nword\nsec\r\nret\n"), 0);
    /* the same pattern many times, overlapping prefixes, line at the end */
    redact_ok(LIT("sssssecret\n\n\npasspassword"), &p,
              LIT(RL("secret") "\n\n\n" RL("password")), 2);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(empty_input_and_no_patterns)
{
    struct nr_strlist p = pats("password", NULL, NULL);
    struct nr_strlist none = { 0 };
    struct nr_strlist blank = pats("", NULL, NULL);
    struct nr_redaction r = rd(&p);
    char *out = (char *)"untouched";

    redact_ok(LIT(""), &p,
              LIT(""), 0);
    redact_ok(NULL, 0, &p, "", 0, 0);
    redact_ok(LIT("\n\n"), &p,
              LIT("\n\n"), 0);
    redact_ok(IOS, strlen(IOS), &none, IOS, strlen(IOS), 0);
    redact_ok(IOS, strlen(IOS), NULL, IOS, strlen(IOS), 0);
    redact_r(IOS, strlen(IOS), NULL, IOS, strlen(IOS), 0);     /* no redaction at all */
    /* an empty pattern would match everything: it is ignored */
    redact_ok(IOS, strlen(IOS), &blank, IOS, strlen(IOS), 0);
    /* NUL bytes are text like any other */
    redact_ok(LIT("a\0b\npa\0ssword\nx\0password\n"), &p,
              LIT("a\0b\npa\0ssword\n" RL("password") "\n"), 1);

    ck_assert_int_eq(nr_redact(NULL, 3, &r, &out, NULL, NULL), NR_EINVAL);
    ck_assert_str_eq(out, "untouched");
    ck_assert_int_eq(nr_redact("x", 1, &r, NULL, NULL, NULL), NR_EINVAL);
    nr_strlist_clear(&p);
    nr_strlist_clear(&blank);
}
END_TEST

START_TEST(five_megabytes_fast)
{
    struct nr_strlist p = pats("password", "secret", "community");
    struct nr_redaction r = rd(&p);
    size_t unit = strlen(IOS), reps = 5 * 1024 * 1024 / unit + 1, len = unit * reps;
    char *in = malloc(len + 1), *out = NULL;
    size_t n = 0, lines = 0;
    uint64_t t0, t1;

    for (size_t i = 0; i < reps; i++)
        memcpy(in + i * unit, IOS, unit);
    in[len] = '\0';

    t0 = nr_mono_ns();
    ck_assert_int_eq(nr_redact(in, len, &r, &out, &n, &lines), 0);
    t1 = nr_mono_ns();

    ck_assert_uint_eq(lines, 4 * reps);
    ck_assert_uint_eq(count(out, n, '\n'), count(in, len, '\n'));
    ck_assert_ptr_null(strstr(out, "s3cr3t"));
    ck_assert_ptr_null(strstr(out, "cisco"));
    ck_assert_msg(t1 - t0 < 1000000000ull, "5 MB took %.1f ms", (double)(t1 - t0) / 1e6);
    fprintf(stderr, "redact: %zu bytes in %.2f ms\n", len, (double)(t1 - t0) / 1e6);
    free(in);
    free(out);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(redact_line_for_commands)
{
    struct nr_strlist pats = { 0 };
    struct nr_redaction r;
    char *a, *b, *c;

    nr_strlist_push(&pats, "password");
    nr_strlist_push(&pats, "secret");
    r = rd(&pats);
    a = nr_redact_line("username ops SECRET 0 hunter2", &r);
    b = nr_redact_line("show running-config", &r);
    c = nr_redact_line("show running-config", NULL);
    ck_assert_str_eq(a, RL("secret"));
    ck_assert_str_eq(b, "show running-config");
    ck_assert_str_eq(c, "show running-config");
    free(a);
    free(b);
    free(c);
    nr_strlist_clear(&pats);
}
END_TEST

/* ---- redaction of the session's own secrets ------------------------------ */

/* What a device printing its secrets looks like (devsim leak_secrets). */
static const char LEAKY[] =
    "hostname edge-r1\n"
    "enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0\n"
    "interface GigabitEthernet0/1\n"
    " description uplink " LOGIN_PW " (do not touch)\n"
    " ip address 192.0.2.1 255.255.255.0\n"
    "interface GigabitEthernet0/2\n"
    " description " ENABLE_PW "\n"
    "banner motd ^Cwelcome^C\n"
    "snmp-server community Publ1c-RO RO\n"
    "username ops password 0 " LOGIN_PW "\n"
    "end\n";

static const char LEAKY_REDACTED[] =
    "hostname edge-r1\n"
    RL("secret") "\n"
    "interface GigabitEthernet0/1\n"
    RL("login password") "\n"
    " ip address 192.0.2.1 255.255.255.0\n"
    "interface GigabitEthernet0/2\n"
    RL("enable secret") "\n"
    "banner motd ^Cwelcome^C\n"
    RL("community") "\n"
    RL("login password") "\n"    /* a secret's kind wins over a keyword's */
    "end\n";

START_TEST(kinds_in_the_marker)
{
    struct nr_strlist p = pats("password", "secret", "community");
    struct nr_redaction r = rd_secrets(&p);
    char *out = NULL;
    size_t n = 0, lines = 0;

    redact_r(LIT(LEAKY), &r, LIT(LEAKY_REDACTED), 5);

    /* no secret left anywhere, every redacted line still findable */
    ck_assert_int_eq(nr_redact(LEAKY, strlen(LEAKY), &r, &out, &n, &lines), 0);
    ck_assert_ptr_null(strstr(out, LOGIN_PW));
    ck_assert_ptr_null(strstr(out, ENABLE_PW));
    ck_assert_ptr_null(strstr(out, "Publ1c-RO"));
    ck_assert_uint_eq(count(out, n, '\n'), count(LEAKY, strlen(LEAKY), '\n'));
    {
        size_t found = 0;
        for (const char *q = out; (q = strstr(q, NR_REDACTED_LINE)) != NULL; q++)
            found++;
        ck_assert_uint_eq(found, lines);
    }
    free(out);

    /* several secrets on a line: the first added gives the kind */
    redact_r(LIT("x " ENABLE_PW " " LOGIN_PW "\n"), &r, LIT(RL("login password") "\n"), 1);
    /* the leftmost keyword gives the kind */
    redact_r(LIT("snmp-server community secret-ro\nsecret community\n"), &r,
             LIT(RL("community") "\n" RL("secret") "\n"), 2);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(secrets_without_patterns)
{
    struct nr_redaction r = rd_secrets(NULL);

    /* only the secrets' lines, compared as exact bytes */
    redact_r(LIT(LEAKY), &r,
             LIT("hostname edge-r1\n"
                 "enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0\n"
                 "interface GigabitEthernet0/1\n"
                 RL("login password") "\n"
                 " ip address 192.0.2.1 255.255.255.0\n"
                 "interface GigabitEthernet0/2\n"
                 RL("enable secret") "\n"
                 "banner motd ^Cwelcome^C\n"
                 "snmp-server community Publ1c-RO RO\n"
                 RL("login password") "\n"
                 "end\n"), 3);
    redact_r(LIT("hunter2-LOGIN\nHunter2-logi\nunter2-login\n"), &r,
             LIT("hunter2-LOGIN\nHunter2-logi\nunter2-login\n"), 0);
    /* at the very start, at the very end, twice on a line, overlapping */
    redact_r(LIT(LOGIN_PW "\nok\n" LOGIN_PW LOGIN_PW), &r,
             LIT(RL("login password") "\nok\n" RL("login password")), 2);
    {
        struct nr_redaction o = rd(NULL);
        nr_redaction_add_secret(&o, "aa", "x");
        redact_r(LIT("a\naaa\nbab\naa"), &o, LIT("a\n" RL("x") "\nbab\n" RL("x")), 2);
    }
    /* lines are whole: a secret spanning a line break takes both lines */
    {
        struct nr_redaction o = rd(NULL);
        nr_redaction_add_secret(&o, "ab\ncd", "odd");
        redact_r(LIT("1\nxab\ncdx\n2\n"), &o, LIT("1\n" RL("odd") "\n" RL("odd") "\n2\n"), 2);
    }
}
END_TEST

START_TEST(secret_within_a_keyword_line)
{
    struct nr_strlist p = pats("password", "secret", NULL);
    struct nr_redaction r = rd(&p);

    /* the secret is part of the keyword: the secret's kind */
    nr_redaction_add_secret(&r, "pass", NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(&r, "cret", NR_KIND_ENABLE_SECRET);
    redact_r(LIT("username a password 7 0822\nenable secret 5 x\nip ssh\n"), &r,
             LIT(RL("login password") "\n" RL("enable secret") "\nip ssh\n"), 2);
    /* and alone on a line without any keyword */
    redact_r(LIT("bypass mode\nconcrete\nPASS\n"), &r,
             LIT(RL("login password") "\n" RL("enable secret") "\nPASS\n"), 2);
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(empty_null_and_duplicate_secrets_ignored)
{
    struct nr_redaction r = rd(NULL);
    char name[NR_REDACT_MAX_SECRETS + 2][8];

    nr_redaction_add_secret(&r, NULL, NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(&r, "", NR_KIND_ENABLE_SECRET);
    ck_assert_uint_eq(r.nsecrets, 0);
    redact_r(LIT(LEAKY), &r, LIT(LEAKY), 0);
    redact_r(LIT("\n\n"), &r, LIT("\n\n"), 0);

    /* the same secret twice keeps its first kind (an enable secret that is
     * the login password) */
    nr_redaction_add_secret(&r, LOGIN_PW, NR_KIND_LOGIN_PASSWORD);
    nr_redaction_add_secret(&r, LOGIN_PW, NR_KIND_ENABLE_SECRET);
    ck_assert_uint_eq(r.nsecrets, 1);
    ck_assert_str_eq(r.kinds[0], NR_KIND_LOGIN_PASSWORD);
    redact_r(LIT("x" LOGIN_PW "\n"), &r, LIT(RL("login password") "\n"), 1);

    /* a kind of NULL: "secret" */
    nr_redaction_add_secret(&r, "k-null", NULL);
    redact_r(LIT("k-null"), &r, LIT(RL("secret")), 1);

    /* full: the rest is ignored, nothing written past the table */
    for (size_t k = 0; k < NR_REDACT_MAX_SECRETS + 2; k++) {
        snprintf(name[k], sizeof name[k], "s%02zu", k);
        nr_redaction_add_secret(&r, name[k], "n");
    }
    ck_assert_uint_eq(r.nsecrets, NR_REDACT_MAX_SECRETS);
    /* two were there before the loop: the last one taken is s<MAX - 3> (two
     * digits each, so that no name holds another) */
    char in[32], want[64];
    snprintf(in, sizeof in, "s%02d\ns%02d\n", NR_REDACT_MAX_SECRETS - 3,
             NR_REDACT_MAX_SECRETS - 2);
    snprintf(want, sizeof want, RL("n") "\ns%02d\n", NR_REDACT_MAX_SECRETS - 2);
    ck_assert_str_eq(r.secrets[NR_REDACT_MAX_SECRETS - 1], name[NR_REDACT_MAX_SECRETS - 3]);
    redact_r(in, strlen(in), &r, want, strlen(want), 1);

    /* a hand-filled table with holes is read safely */
    r = rd(NULL);
    r.secrets[0] = "";
    r.secrets[1] = NULL;
    r.secrets[2] = "zz";
    r.kinds[2] = "third";
    r.nsecrets = 3;
    redact_r(LIT("a\nzz\n"), &r, LIT("a\n" RL("third") "\n"), 1);
}
END_TEST

START_TEST(marker_template)
{
    struct nr_strlist p = pats("secret", NULL, NULL);
    struct nr_redaction r = rd(&p);
    struct nr_config cfg;
    char *line;

    /* the default, also when cfg has none */
    ck_assert_str_eq(NR_REDACTION_MARKER_DEFAULT, "[REDACTED LINE] ({kind})");
    memset(&cfg, 0, sizeof cfg);
    nr_redaction_init(&r, &cfg);
    ck_assert_str_eq(r.marker, NR_REDACTION_MARKER_DEFAULT);
    ck_assert_ptr_eq(r.patterns, &cfg.worker.redaction_patterns);
    ck_assert_uint_eq(r.nsecrets, 0);

    /* from cfg; "{kind}" every time it appears */
    cfg.worker.redaction_patterns = p;
    cfg.worker.redaction_marker = (char *)"<{kind}|{kind}|{kin}>";
    nr_redaction_init(&r, &cfg);
    nr_redaction_add_secret(&r, LOGIN_PW, NR_KIND_LOGIN_PASSWORD);
    redact_r(LIT("enable secret 0 x\r\n" LOGIN_PW "\n"), &r,
             LIT("<secret|secret|{kin}>\r\n<login password|login password|{kin}>\n"), 2);

    /* without "{kind}": the template as it is; NetRaven's bare marker */
    r.marker = NR_REDACTED_LINE;
    redact_r(LIT("a secret\n"), &r, LIT("[REDACTED LINE]\n"), 1);
    line = nr_redact_line("x " LOGIN_PW, &r);
    ck_assert_str_eq(line, "[REDACTED LINE]");
    free(line);

    /* NULL or "": the default; a line break in a hand-set marker cannot
     * add a line */
    r.marker = NULL;
    redact_r(LIT("secret\n"), &r, LIT(RL("secret") "\n"), 1);
    r.marker = "";
    redact_r(LIT("secret\n"), &r, LIT(RL("secret") "\n"), 1);
    r.marker = "two\nlines\r{kind}";
    redact_r(LIT("secret\nx\n"), &r, LIT("two lines secret\nx\n"), 1);
    nr_strlist_clear(&p);
}
END_TEST

static size_t count_crlf(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        k += (s[i - 1] == '\r' && s[i] == '\n');
    return k;
}

START_TEST(line_count_preserved)
{
    struct nr_strlist p = pats("password", "secret", "community");
    struct nr_redaction r = rd_secrets(&p);
    static const struct { const char *s; size_t n; } pieces[] = {
        { LIT("") }, { LIT("\r") }, { LIT("secret") }, { LIT(LOGIN_PW) }, { LIT(ENABLE_PW) },
        { LIT("plain text") }, { LIT("x\0y") }, { LIT("COMMUNITY") }, { LIT("Hunter2-") },
        { LIT("login") }, { LIT("\r\r") },
    };
    unsigned seed = 12345;

    /* random lines of random pieces and endings: as many lines out as in,
     * the same "\r\n" endings, no secret left */
    for (int round = 0; round < 200; round++) {
        char in[4096];
        size_t len = 0, n = 0, lines = 0;
        char *out = NULL;

        while (len < sizeof in - 64) {
            size_t k;
            seed = seed * 1103515245u + 12345u;
            k = (seed >> 16) % (sizeof pieces / sizeof pieces[0]);
            memcpy(in + len, pieces[k].s, pieces[k].n);
            len += pieces[k].n;
            if ((seed >> 8) % 3 == 0)
                in[len++] = '\n';
        }
        ck_assert_int_eq(nr_redact(in, len, &r, &out, &n, &lines), 0);
        ck_assert_uint_eq(count(out, n, '\n'), count(in, len, '\n'));
        ck_assert_uint_eq(count_crlf(out, n), count_crlf(in, len));
        ck_assert_ptr_null(memmem(out, n, LOGIN_PW, strlen(LOGIN_PW)));
        ck_assert_ptr_null(memmem(out, n, ENABLE_PW, strlen(ENABLE_PW)));
        ck_assert_ptr_null(memmem(out, n, "secret\n", 7));
        free(out);
    }
    nr_strlist_clear(&p);
}
END_TEST

START_TEST(redact_line_never_returns_the_secret)
{
    struct nr_strlist p = pats("password", "secret", "community");
    struct nr_redaction r = rd_secrets(&p);
    static const char *const cmds[] = {
        "username ops password " LOGIN_PW,
        "echo " LOGIN_PW,
        LOGIN_PW,
        "enable " ENABLE_PW,
        "snmp-server community Publ1c-RO RO",
        "set system login user ops authentication plain-text-password-value " ENABLE_PW,
    };
    static const char *const kinds[] = {
        RL("login password"), RL("login password"), RL("login password"),
        RL("enable secret"), RL("community"), RL("enable secret"),
    };
    char *line;

    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        line = nr_redact_line(cmds[k], &r);
        ck_assert_str_eq(line, kinds[k]);
        ck_assert_ptr_null(strstr(line, LOGIN_PW));
        ck_assert_ptr_null(strstr(line, ENABLE_PW));
        ck_assert_ptr_null(strstr(line, "Publ1c"));
        free(line);
    }
    /* a copy otherwise, the secret compared as bytes */
    line = nr_redact_line("show running-config | include hunter2-LOGIN", &r);
    ck_assert_str_eq(line, "show running-config | include hunter2-LOGIN");
    free(line);
    line = nr_redact_line("", &r);
    ck_assert_str_eq(line, "");
    free(line);
    nr_strlist_clear(&p);
}
END_TEST

/* nr_redact over n bytes; returns the time it took in ms. */
static double timed(const char *in, size_t n, const struct nr_redaction *r, size_t *lines,
                    char **out, size_t *out_len)
{
    uint64_t t0 = nr_mono_ns();

    ck_assert_int_eq(nr_redact(in, n, r, out, out_len, lines), 0);
    return (double)(nr_mono_ns() - t0) / 1e6;
}

START_TEST(one_megabyte_with_secrets_is_linear)
{
    struct nr_strlist p = pats("password", "secret", "community");
    struct nr_redaction r = rd_secrets(&p);
    const size_t mb = 1024 * 1024;
    char *in = malloc(mb + 64), *out = NULL;
    size_t n, lines, len;
    double ms[3];

    /* Each shape would cost seconds or minutes to a search restarted at
     * each line (1 MB x up to 1 000 000 lines); linear, each takes a few
     * milliseconds, tens under ASan.  The bound is far above either: it
     * catches quadratic work, not a slow machine. */

    /* 1. short lines, a secret on one line in ten */
    for (size_t i = len = 0; len < mb; i++) {
        const char *l = i % 10 == 0 ? " description " LOGIN_PW "\n" : "ip ssh\n";
        memcpy(in + len, l, strlen(l));
        len += strlen(l);
    }
    ms[0] = timed(in, len, &r, &lines, &out, &n);
    ck_assert_uint_gt(lines, 0);
    ck_assert_ptr_null(memmem(out, n, LOGIN_PW, strlen(LOGIN_PW)));
    ck_assert_uint_eq(count(out, n, '\n'), count(in, len, '\n'));
    free(out);

    /* 2. 1 MB of empty lines, then the secret once at the end */
    memset(in, '\n', mb);
    memcpy(in + mb, ENABLE_PW, strlen(ENABLE_PW));
    len = mb + strlen(ENABLE_PW);
    ms[1] = timed(in, len, &r, &lines, &out, &n);
    ck_assert_uint_eq(lines, 1);
    ck_assert_uint_eq(n, mb + strlen(RL("enable secret")));
    free(out);

    /* 3. one 1 MB line of near misses of every secret and keyword */
    for (len = 0; len + 32 < mb;) {
        static const char miss[] = "Hunter2-logiEn4ble-S3cr3tpasswor";
        memcpy(in + len, miss, sizeof miss - 1);
        len += sizeof miss - 1;
    }
    ms[2] = timed(in, len, &r, &lines, &out, &n);
    ck_assert_uint_eq(lines, 0);
    ck_assert_uint_eq(n, len);
    ck_assert_mem_eq(out, in, len);
    free(out);

    fprintf(stderr, "redact 1 MB with secrets: %.2f, %.2f, %.2f ms\n", ms[0], ms[1], ms[2]);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(ms[k] < 5000, "shape %d took %.1f ms", k + 1, ms[k]);
    free(in);
    nr_strlist_clear(&p);
}
END_TEST

static Suite *secret_suite(void)
{
    Suite *s = suite_create("secret");
    TCase *f = tcase_create("fernet");
    TCase *r = tcase_create("redact");

    tcase_add_unchecked_fixture(f, fernet_setup, fernet_teardown);
    tcase_set_timeout(f, 60);
    tcase_add_test(f, derived_key_is_pythons);
    tcase_add_test(f, decrypts_python_tokens_exactly);
    tcase_add_test(f, padding_and_whitespace_are_tolerated);
    tcase_add_test(f, c_tokens_decrypt_in_python);
    tcase_add_test(f, c_tokens_use_fresh_ivs);
    tcase_add_test(f, tampered_tokens_fail_the_signature);
    tcase_add_test(f, wrong_master_key_or_salt);
    tcase_add_test(f, truncated_tokens);
    tcase_add_test(f, bad_padding_is_refused_after_the_signature);
    tcase_add_test(f, garbage_is_not_a_token);
    tcase_add_test(f, legacy_plain_passwords);
    tcase_add_test(f, password_policy_for_tokens);
    tcase_add_test(f, messages_and_release);
    suite_add_tcase(s, f);

    tcase_add_test(r, default_patterns_on_ios);
    tcase_add_test(r, prod_patterns_add_community);
    tcase_add_test(r, crlf_endings_are_kept);
    tcase_add_test(r, case_insensitive);
    tcase_add_test(r, many_patterns);
    tcase_add_test(r, last_line_without_newline);
    tcase_add_test(r, lines_do_not_join);
    tcase_add_test(r, empty_input_and_no_patterns);
    tcase_add_test(r, five_megabytes_fast);
    tcase_add_test(r, redact_line_for_commands);
    tcase_add_test(r, kinds_in_the_marker);
    tcase_add_test(r, secrets_without_patterns);
    tcase_add_test(r, secret_within_a_keyword_line);
    tcase_add_test(r, empty_null_and_duplicate_secrets_ignored);
    tcase_add_test(r, marker_template);
    tcase_add_test(r, line_count_preserved);
    tcase_add_test(r, redact_line_never_returns_the_secret);
    tcase_add_test(r, one_megabyte_with_secrets_is_linear);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(secret_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
