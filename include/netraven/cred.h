/*
 * cred.h - device credentials: which credentials each device of a run may
 * use, their passwords decrypted, and the bookkeeping of every attempt
 * (docs/netraven.md §2.3, §7).
 *
 * Matching is NetRaven's (netraven/services/device_credential.py): a
 * credential matches a device when they share at least one tag; a
 * credential is listed once per device however many tags they share; the
 * list is ordered by priority, lower first, a NULL priority counting as
 * the ORM default 100, then by id so that the order is stable.
 *
 * Caller's steps (a run thread, with its own store connection):
 *   struct nr_cred_keyring k;               once, at start-up (~50 ms)
 *   nr_cred_keyring_init(&k, cfg, err, sizeof(err));
 *   ...
 *   struct nr_cred_set *set;
 *   rc = nr_cred_resolve(store, &k, ids, nids, &set, err, sizeof(err));
 *       rc < 0                              -> FAILED_CREDENTIAL_RESOLUTION, err says why
 *       nr_cred_set_devices_matched(set)==0 -> COMPLETED_NO_CREDENTIALS
 *   creds = nr_cred_set_get(set, device_id, &n);   best first; hand to the handler
 *   ... after each try on a device ...
 *   nr_cred_record_attempt(store, creds[i].id, ok);
 *   nr_cred_set_free(set);                  cleanses every password
 *   ...
 *   nr_cred_keyring_clear(&k);              at exit: cleanses the key
 *
 * Threads: the keyring and a resolved set are read-only, so any number of
 * threads may read them at once (the device threads read the set while
 * the run thread holds it).  The store calls use the caller's connection,
 * which is not thread-safe (store.h).
 *
 * Secrets: no message of this module contains a password, a token or the
 * master key, so the messages may be logged as they are; they name the
 * credential by id.
 */
#ifndef NR_CRED_H
#define NR_CRED_H

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/handler.h"
#include "netraven/secret.h"
#include "netraven/store.h"

/* priority used for a credential whose priority column is NULL (the ORM
 * default, docs/netraven.md §2.3) */
#define NR_CRED_DEFAULT_PRIORITY 100

/* A password could not be decrypted (no key configured for a token, wrong
 * key, tampered or truncated token).  Database failures return the
 * store's code instead (NR_EIO: connection gone; NR_ERR: statement). */
#define NR_CRED_EDECRYPT (-30)

/* Suggested size of the errbuf arguments below; longer messages are cut. */
#define NR_CRED_ERRLEN 320

/* ---- keyring ------------------------------------------------------------ */

/* The Fernet key of the deployment, derived once.  has_key is false when
 * no master key is configured: then only legacy plain passwords resolve,
 * and a token-shaped password is an error at resolution. */
struct nr_cred_keyring {
    bool             has_key;
    struct nr_fernet fernet;
};

/*
 * Derive the key from security.encryption_key and security.encryption_salt
 * (salt "netraven_salt" when unset, as NetRaven's Python).  An unset or
 * empty master key is not an error: has_key is false.
 * Returns 0 with *k filled, or NR_EINVAL (k or cfg NULL) / NR_ERR
 * (libcrypto failed) with errbuf (n bytes; may be NULL) written and *k
 * cleared.  The master key is never copied anywhere but into the
 * derivation.
 */
int nr_cred_keyring_init(struct nr_cred_keyring *k, const struct nr_config *cfg,
                         char *errbuf, size_t n);

/* Cleanse the key; has_key becomes false.  k may be NULL. */
void nr_cred_keyring_clear(struct nr_cred_keyring *k);

/* ---- resolution ------------------------------------------------------------ */

/* The credentials of a run's devices, opaque.  Each distinct credential's
 * password is decrypted once and shared by every device it matches. */
struct nr_cred_set;

/*
 * Resolve the credentials of n devices (duplicates allowed, n may be 0)
 * in one query, and decrypt each matching credential's password once.
 * k may be NULL (same as a keyring without key).
 *
 * Returns 0 and *out, a new set the caller releases with
 * nr_cred_set_free(), even when no device matched any credential.
 * On failure *out is untouched, nothing is left allocated, and errbuf
 * (errlen bytes; may be NULL) says why:
 *   NR_EINVAL         s or out NULL, or ids NULL with n > 0;
 *   NR_EIO / NR_ERR   the query failed (also in s->err / s->errstr);
 *   NR_CRED_EDECRYPT  a matching credential's password cannot be opened,
 *                     e.g. "credential 7: token signature does not match
 *                     (wrong encryption key or tampered token)".
 * One unusable credential fails the whole resolution: a run must not
 * quietly try fewer credentials than the operator configured.
 */
int nr_cred_resolve(struct nr_store *s, const struct nr_cred_keyring *k,
                    const long long *device_ids, size_t n,
                    struct nr_cred_set **out, char *errbuf, size_t errlen);

/*
 * The credentials of one device, best first, and their number in *n
 * (n may be NULL).  NULL with *n = 0 when the device has none or was not
 * part of the resolution.  The array and the strings it points to belong
 * to the set and live until nr_cred_set_free(); never free or modify them.
 */
const struct nr_credential *nr_cred_set_get(const struct nr_cred_set *set,
                                            long long device_id, size_t *n);

/* Devices of the resolution (distinct ids) and how many of them have at
 * least one credential; distinct credentials decrypted.  0 for NULL. */
size_t nr_cred_set_devices(const struct nr_cred_set *set);
size_t nr_cred_set_devices_matched(const struct nr_cred_set *set);
size_t nr_cred_set_credentials(const struct nr_cred_set *set);

/* Cleanse every password, then free.  set may be NULL. */
void nr_cred_set_free(struct nr_cred_set *set);

/* ---- attempts ------------------------------------------------------------- */

/*
 * Record one use of a credential, atomically in one UPDATE, as NetRaven's
 * netraven/services/credential_metrics.py does: last_used = now(), and
 *   success:  success_rate = success_rate * 0.9 + 0.1   (NULL -> 1.0)
 *   failure:  success_rate = success_rate * 0.9         (NULL -> 0.0)
 * in double precision, so the values are the ones Python would store.
 * Returns 0, NR_NOTFOUND when no credential has that id, or the store's
 * negative code (s->errstr says why).
 */
int nr_cred_record_attempt(struct nr_store *s, long long cred_id, bool success);
/* The same UPDATE sent into s's pipelined transaction (store.h,
 * nr_store_pipe_begin); returns what nr_store_pipe_send returns. */
int nr_cred_record_attempt_send(struct nr_store *s, long long cred_id, bool success);

/* ---- start-up check ------------------------------------------------------- */

/* What nr_cred_check_keyring() found.  ids never hold a password, a
 * token or the key: only credential ids. */
struct nr_cred_key_check {
    size_t encrypted;           /* passwords that are Fernet tokens (or try to be) */
    size_t legacy;              /* plain passwords (legacy rows) */
    size_t unopened;            /* tokens the keyring does not open: every token
                                 * when no key is configured */
    char   ids[NR_CRED_ERRLEN]; /* the unopened ones: "3, 5, 9", cut with
                                 * ", ... (N more)" when long; "" when none */
};

/*
 * Read every credential and try the keyring on each password, as a run
 * would (nr_fernet_decrypt_password), so that a missing or wrong master
 * key shows at start rather than at the first job: the caller logs
 * SYS_CRED_KEY_MISSING (k has no key and encrypted > 0) or
 * SYS_CRED_KEY_WRONG (unopened > 0).  Plaintexts are cleansed at once.
 * Returns 0 with *out filled, or the store's negative code (s->errstr);
 * *out is untouched on failure.
 */
int nr_cred_check_keyring(struct nr_store *s, const struct nr_cred_keyring *k,
                          struct nr_cred_key_check *out);

#endif /* NR_CRED_H */
