/*
 * secret.h - credential passwords (Fernet) and the redaction of device
 * output, so that no secret reaches the database, a log or Redis.
 *
 * Fernet (docs/netraven.md §7.1).  NetRaven stores credentials.password as a
 * Fernet token made with the key urlsafe-base64(PBKDF2-HMAC-SHA256(master
 * key, salt, 100000 iterations, 32 bytes)); the 32 raw bytes are the Fernet
 * key: the first 16 sign (HMAC-SHA256), the last 16 encrypt (AES-128-CBC).  A
 * row whose value is not a token at all is a legacy plain password; a value
 * that looks like a token but does not verify is an error, never a password
 * to try.
 *
 * Caller's steps:
 *   struct nr_fernet f;
 *   nr_fernet_derive(cfg->security.encryption_key,
 *                    cfg->security.encryption_salt, &f);   once, ~50 ms
 *   ... per credential, from any thread (f is only read) ...
 *   char *pw; size_t n; bool legacy; char err[NR_SECRET_ERRLEN];
 *   if (nr_fernet_decrypt_password(&f, row->password, &pw, &n, &legacy, err) < 0)
 *       ... the credential is unusable; err says why ...
 *   ... use pw ...
 *   nr_secret_free(pw, n);                 cleanses, then frees
 *   nr_fernet_clear(&f);                   at exit: cleanses the key
 *
 * Redaction (docs/netraven.md §3.5).  A line of device output is replaced
 * whole by the marker (worker.redaction.marker, "[REDACTED LINE] ({kind})")
 * when it carries a keyword (worker.redaction.patterns, ASCII
 * case-insensitive) or one of the session's own secrets (exact bytes): the
 * login passwords tried on the device and the enable secret.  Line count and
 * line endings are kept.  Caller's steps:
 *   struct nr_redaction r;
 *   nr_redaction_init(&r, cfg);
 *   nr_redaction_add_secret(&r, cred->password, "login password");  each tried
 *   nr_redaction_add_secret(&r, enable, "enable secret");
 *   nr_redact(text, len, &r, &out, &out_len, &nlines);   or nr_redact_line()
 * r owns nothing: the patterns, marker and secrets it points to must
 * outlive its use, and nothing is released afterwards.
 *
 * Error messages of this module never contain a token, a key or a
 * plaintext, so they may be logged as they are.
 */
#ifndef NR_SECRET_H
#define NR_SECRET_H

#include "netraven/common.h"

/* ---- Fernet ------------------------------------------------------------ */

#define NR_FERNET_KEY_LEN   32          /* signing half + encryption half */
#define NR_FERNET_ITERATIONS 100000     /* PBKDF2 rounds, as NetRaven's Python */

/* Size of the errbuf arguments below; every message fits. */
#define NR_SECRET_ERRLEN    128

/* Why a token was refused.  NR_EINVAL (a NULL argument) and NR_ERR
 * (libcrypto itself failed) come from common.h. */
#define NR_FERNET_ENOTTOKEN  (-20)  /* not base64, version byte not 0x80, or
                                     * shorter than version + timestamp */
#define NR_FERNET_ESIGNATURE (-21)  /* HMAC mismatch: wrong key or tampered */
#define NR_FERNET_ETRUNCATED (-22)  /* a token, but its length is not a
                                     * whole token's (cut off somewhere) */
#define NR_FERNET_EPADDING   (-23)  /* signature fine, PKCS7 padding not */
#define NR_FERNET_ENOKEY     (-24)  /* looks like a token, no key to open it */

/* The derived key.  Plain bytes so that it can live in a context struct;
 * treat as opaque outside this module and tests.  Read-only once derived,
 * hence safe to share between threads. */
struct nr_fernet {
    unsigned char key[NR_FERNET_KEY_LEN];   /* [0,16) signing, [16,32) AES */
};

/*
 * Derive the key from the master key and salt (NUL-terminated, used as
 * their bytes).  Returns 0 and fills *out; NR_EINVAL if master or salt is
 * NULL; NR_ERR if libcrypto failed.  *out is untouched on failure.
 */
int nr_fernet_derive(const char *master, const char *salt, struct nr_fernet *out);

/* Use a Fernet key as Python writes it: urlsafe base64 of 32 bytes (the
 * "key" of cryptography.fernet.Fernet).  0, or NR_EINVAL if b64 is not
 * that. */
int nr_fernet_set_key(struct nr_fernet *f, const char *b64);

/* Cleanse the key.  f may be NULL; f may be derived again afterwards. */
void nr_fernet_clear(struct nr_fernet *f);

/*
 * Verify and decrypt one token (urlsafe base64 with or without '='
 * padding; the standard alphabet and surrounding whitespace are accepted
 * too).  The timestamp is not checked: NetRaven sets no TTL.
 *
 * Checks, in order: base64 and version 0x80 (else NR_FERNET_ENOTTOKEN),
 * length 57 + 16k bytes (else NR_FERNET_ETRUNCATED), HMAC-SHA256 compared
 * in constant time (else NR_FERNET_ESIGNATURE), PKCS7 padding after
 * AES-128-CBC (else NR_FERNET_EPADDING).  Nothing is decrypted before the
 * signature verifies.
 *
 * On success returns 0, *plain is a malloc'd buffer of *plain_len bytes
 * plus a terminating NUL (the caller releases it with
 * nr_secret_free(*plain, *plain_len)); plain_len may be NULL.
 * On failure returns one of the codes above, writes the message of
 * nr_fernet_strerror() to errbuf (NR_SECRET_ERRLEN bytes; may be NULL),
 * and leaves *plain and *plain_len untouched.
 */
int nr_fernet_decrypt(const struct nr_fernet *f, const char *token,
                      char **plain, size_t *plain_len, char *errbuf);

/*
 * The credential policy in one place: decrypt `stored` (a
 * credentials.password value).  If that fails, the value is a legacy
 * plain password, and is copied, only when it is neither shaped like a
 * token (nr_fernet_looks_like_token) nor structurally one (a value that
 * fails the signature or padding check always is an error).  f may be
 * NULL (no master key configured): then only legacy values succeed and a
 * token-shaped value gives NR_FERNET_ENOKEY.
 *
 * Returns 0 with *plain (malloc'd, NUL-terminated, *plain_len bytes; free
 * with nr_secret_free) and *legacy saying which case it was; or a negative
 * code with errbuf written, the outputs untouched.  Any failure here means
 * "do not use this credential".  plain_len and legacy may be NULL.
 */
int nr_fernet_decrypt_password(const struct nr_fernet *f, const char *stored,
                               char **plain, size_t *plain_len, bool *legacy,
                               char *errbuf);

/* True if s has the shape of a Fernet token of this era: it starts with
 * "gAAAAA" (version 0x80, timestamp below 2^32) and is otherwise base64
 * (urlsafe or standard, '=' only at the end; surrounding whitespace
 * ignored).  A plain password practically never does. */
bool nr_fernet_looks_like_token(const char *s);

/*
 * Encrypt plain_len bytes (as NetRaven's Python does when it stores a
 * password): random IV, the current time.  Returns 0 and *token, a
 * malloc'd NUL-terminated urlsafe base64 string with padding (caller
 * frees with free()), or NR_EINVAL / NR_ERR (libcrypto or the random
 * generator failed) with *token untouched.
 */
int nr_fernet_encrypt(const struct nr_fernet *f, const void *plain,
                      size_t plain_len, char **token);

/* The fixed message for one of this module's return codes, e.g.
 * "not a Fernet token".  Never NULL. */
const char *nr_fernet_strerror(int rc);

/* Cleanse n bytes at p, then free(p).  NULL ok.  For every plaintext this
 * module returns, and for any other buffer that held a secret. */
void nr_secret_free(char *p, size_t n);

/* ---- Redaction --------------------------------------------------------- */

struct nr_config;

/* NetRaven's marker.  The default template starts with it, so that a
 * search for it still finds every redacted line. */
#define NR_REDACTED_LINE "[REDACTED LINE]"

/* worker.redaction.marker's default; "{kind}" is replaced by what the line
 * held. */
#define NR_REDACTION_MARKER_DEFAULT NR_REDACTED_LINE " ({kind})"

/* The kinds the handlers give their secrets. */
#define NR_KIND_LOGIN_PASSWORD "login password"
#define NR_KIND_ENABLE_SECRET  "enable secret"
#define NR_KIND_ENCRYPTED      "encrypted value"   /* a device type's secret_words */

#define NR_REDACT_MAX_SECRETS 16

/* What a redaction removes: device-output lines that carry a keyword
 * (worker.redaction.patterns, case-insensitive), and every line holding
 * one of the session's own secrets (exact bytes): the login passwords
 * tried on the device and the enable secret.  Filled by the calls below;
 * read-only while nr_redact() runs, so one may serve several threads. */
struct nr_redaction {
    const struct nr_strlist *patterns;            /* borrowed; NULL: none */
    const char *marker;                           /* template; "{kind}" is replaced by the
                                                   * kind; single line; NULL: the default */
    const char *secrets[NR_REDACT_MAX_SECRETS];   /* borrowed; NULL or "" never added */
    const char *kinds[NR_REDACT_MAX_SECRETS];     /* "login password", "enable secret" */
    size_t      nsecrets;
};

/* patterns and marker from cfg (worker.redaction.patterns /
 * worker.redaction.marker), no secrets.  cfg may be NULL: no patterns, the
 * default marker. */
void nr_redaction_init(struct nr_redaction *r, const struct nr_config *cfg);

/* Add a literal secret, matched as exact bytes, with the kind a redacted
 * line reports for it (NULL: "secret").  Ignored when secret is NULL or
 * "", when the same secret is already there (the first kind stays: a
 * login password that is also the enable secret is reported as the login
 * password), or when NR_REDACT_MAX_SECRETS are there.  Only the pointers
 * are kept. */
void nr_redaction_add_secret(struct nr_redaction *r, const char *secret, const char *kind);

/*
 * Redact len bytes of text (NUL bytes allowed; text may be NULL when len
 * is 0).  A line ends at '\n'; "\r\n", "\n" and a missing final newline
 * are kept as they were; a '\r' just before the '\n' (or ending the text)
 * belongs to the line ending, is not searched and is kept.
 *
 * A line is replaced whole by the marker, "{kind}" filled in, when it
 * holds one of r's secrets (kind: that secret's; with several, the first
 * added) or else a non-empty pattern (kind: the leftmost keyword in the
 * line, as configured, e.g. "community").  Patterns compare ASCII
 * case-insensitively (empty ones are ignored: they would match every
 * line); secrets compare as bytes, and a secret that spans a line break
 * redacts every line it touches.  r may be NULL, or carry neither: the
 * text is copied unchanged.
 *
 * One pass over the text for the patterns and one per secret (each secret
 * is searched for once from where its previous occurrence was), so the
 * cost is linear in len whatever the number of lines.
 *
 * Returns 0 with *out a malloc'd NUL-terminated buffer of *out_len bytes
 * (caller frees with free(); out_len may be NULL) and *nlines_redacted the
 * number of lines replaced (may be NULL).  NR_EINVAL if text is NULL with
 * len > 0 or out is NULL; then nothing is written.
 */
int nr_redact(const char *text, size_t len, const struct nr_redaction *r,
              char **out, size_t *out_len, size_t *nlines_redacted);

/* One line (a command typed on a device) as it may be shown in a log or a
 * result: a malloc'd copy of the marker, its kind filled in as nr_redact()
 * would, if line holds a pattern or a secret of r anywhere, else a copy of
 * line.  Never returns the secret.  r may be NULL (a copy).  Caller frees
 * with free(). */
char *nr_redact_line(const char *line, const struct nr_redaction *r);

#endif /* NR_SECRET_H */
