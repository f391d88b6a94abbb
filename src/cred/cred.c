/*
 * cred.c - credential resolution for many devices at once, decryption,
 * and attempt bookkeeping (cred.h).
 *
 * Resolution is one statement, whatever the number of devices: the
 * server returns one row per distinct matching credential, already in
 * priority order, with the sorted ids of the requested devices it matches
 * (array_agg).  Each row's password is decrypted once.  The per-device
 * lists are then built in two passes over those arrays (count, then fill
 * in row order), so every device's slice comes out in priority order
 * without sorting pairs, and the reply carries each token once rather
 * than once per device.
 */
#include "netraven/cred.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "netraven/store.h"

/* NetRaven's Python falls back to this salt when none is configured. */
#define CRED_DEFAULT_SALT "netraven_salt"

/* One distinct credential, owning its strings. */
struct cred_item {
    long long id;
    int       priority;
    char     *username;
    char     *password;     /* plaintext; cleansed by nr_cred_set_free */
    size_t    password_len;
};

/* One requested device: its slice of slots. */
struct cred_dev {
    long long id;
    size_t    off, n;
};

struct nr_cred_set {
    struct cred_item     *items;    /* in priority order */
    size_t                nitems;
    struct nr_credential *slots;    /* grouped by device, best first; point into items */
    size_t                nslots;
    struct cred_dev      *devs;     /* sorted by id, distinct */
    size_t                ndevs;
    size_t                nmatched; /* devs with n > 0 */
};

static void cred_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cred_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

/* ---- keyring ------------------------------------------------------------ */

int nr_cred_keyring_init(struct nr_cred_keyring *k, const struct nr_config *cfg,
                         char *errbuf, size_t n)
{
    const char *master, *salt;

    if (k == NULL || cfg == NULL) {
        cred_err(errbuf, n, "credential keyring: invalid argument");
        return NR_EINVAL;
    }
    nr_cred_keyring_clear(k);
    master = cfg->security.encryption_key;
    salt = cfg->security.encryption_salt;
    if (master == NULL || *master == '\0')
        return 0;                       /* legacy plain passwords only */
    if (salt == NULL)
        salt = CRED_DEFAULT_SALT;
    if (nr_fernet_derive(master, salt, &k->fernet) < 0) {
        nr_cred_keyring_clear(k);
        cred_err(errbuf, n, "credential keyring: cannot derive the Fernet key "
                            "(cryptographic library failure)");
        return NR_ERR;
    }
    k->has_key = true;
    return 0;
}

void nr_cred_keyring_clear(struct nr_cred_keyring *k)
{
    if (k == NULL)
        return;
    nr_fernet_clear(&k->fernet);
    k->has_key = false;
}

/* ---- the set ---------------------------------------------------------------- */

void nr_cred_set_free(struct nr_cred_set *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->nitems; i++) {
        nr_secret_free(set->items[i].password, set->items[i].password_len);
        free(set->items[i].username);
    }
    if (set->slots != NULL)
        OPENSSL_cleanse(set->slots, set->nslots * sizeof(*set->slots));
    free(set->items);
    free(set->slots);
    free(set->devs);
    free(set);
}

static int cred_dev_cmp(const void *a, const void *b)
{
    long long x = ((const struct cred_dev *)a)->id, y = ((const struct cred_dev *)b)->id;
    return (x > y) - (x < y);
}

static struct cred_dev *cred_dev_find(const struct nr_cred_set *set, long long id)
{
    struct cred_dev key = { .id = id };

    if (set->ndevs == 0)
        return NULL;
    return bsearch(&key, set->devs, set->ndevs, sizeof(*set->devs), cred_dev_cmp);
}

const struct nr_credential *nr_cred_set_get(const struct nr_cred_set *set,
                                            long long device_id, size_t *n)
{
    const struct cred_dev *d = set != NULL ? cred_dev_find(set, device_id) : NULL;

    if (d == NULL || d->n == 0) {
        if (n != NULL)
            *n = 0;
        return NULL;
    }
    if (n != NULL)
        *n = d->n;
    return set->slots + d->off;
}

size_t nr_cred_set_devices(const struct nr_cred_set *set)
{
    return set != NULL ? set->ndevs : 0;
}

size_t nr_cred_set_devices_matched(const struct nr_cred_set *set)
{
    return set != NULL ? set->nmatched : 0;
}

size_t nr_cred_set_credentials(const struct nr_cred_set *set)
{
    return set != NULL ? set->nitems : 0;
}

/* ---- resolution ------------------------------------------------------------ */

/*
 * $1: a bigint[] of the distinct device ids.  Ids are compared as bigint
 * so that one out of int4 range simply matches nothing.  GROUP BY lists
 * every column it returns so that it does not rely on credentials' key.
 */
static const char resolve_sql[] =
    "SELECT c.id, COALESCE(c.priority, 100) AS prio, c.username, c.password,"
    "       array_agg(DISTINCT dta.device_id ORDER BY dta.device_id)"
    "  FROM device_tag_association dta"
    "  JOIN credential_tag_association cta ON cta.tag_id = dta.tag_id"
    "  JOIN credentials c ON c.id = cta.credential_id"
    " WHERE dta.device_id = ANY ($1::bigint[])"
    " GROUP BY c.id, c.priority, c.username, c.password"
    " ORDER BY prio, c.id";

enum { COL_ID, COL_PRIO, COL_USER, COL_PASS, COL_DEVS, NCOLS };

_Static_assert(NR_CRED_DEFAULT_PRIORITY == 100, "resolve_sql spells the default out");

/* "{1,2,3}" as a bigint[] literal, malloc'd. */
static char *cred_id_array(const struct cred_dev *devs, size_t n)
{
    size_t cap = 3 + n * 21, len = 0;
    char *buf = nr_malloc(cap);

    buf[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", devs[i].id);
    buf[len++] = '}';
    buf[len] = '\0';
    return buf;
}

static bool cred_parse_ll(const char *s, long long *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
}

/*
 * Walk an integer array in PostgreSQL's text form ("{1,2,3}", "{}"),
 * calling fn for each element.  false if the text is not that.
 */
static bool cred_each_id(const char *text, void (*fn)(struct nr_cred_set *, long long, size_t),
                         struct nr_cred_set *set, size_t item)
{
    const char *p = text;
    char *end;
    long long v;

    if (*p++ != '{')
        return false;
    if (*p == '}')
        return p[1] == '\0';
    for (;;) {
        errno = 0;
        v = strtoll(p, &end, 10);
        if (errno != 0 || end == p)
            return false;
        fn(set, v, item);
        p = end;
        if (*p == '}')
            return p[1] == '\0';
        if (*p++ != ',')
            return false;
    }
}

static void cred_count(struct nr_cred_set *set, long long device_id, size_t item)
{
    struct cred_dev *d = cred_dev_find(set, device_id);

    (void)item;
    if (d != NULL) {            /* the WHERE clause makes it always so */
        d->n++;
        set->nslots++;
    }
}

static void cred_fill(struct nr_cred_set *set, long long device_id, size_t item)
{
    struct cred_dev *d = cred_dev_find(set, device_id);
    const struct cred_item *it = &set->items[item];
    struct nr_credential *c;

    if (d == NULL)
        return;
    c = &set->slots[d->off + d->n++];
    c->id = it->id;
    c->username = it->username;
    c->password = it->password;
    c->priority = it->priority;
}

/* Overwrite the password column of every row before PQclear: legacy rows
 * carry the plain password there.  (The connection's input buffer is
 * beyond our reach; this bounds what stays behind to that one place.) */
static void cred_cleanse_result(PGresult *r)
{
    int rows = PQntuples(r);

    for (int i = 0; i < rows; i++)
        OPENSSL_cleanse(PQgetvalue(r, i, COL_PASS), (size_t)PQgetlength(r, i, COL_PASS));
}

/* The distinct requested ids, sorted, as the set's devs. */
static void cred_set_devices(struct nr_cred_set *set, const long long *ids, size_t n)
{
    size_t k = 0;

    if (n == 0)
        return;
    set->devs = nr_malloc(n * sizeof(*set->devs));
    for (size_t i = 0; i < n; i++)
        set->devs[i] = (struct cred_dev){ .id = ids[i] };
    qsort(set->devs, n, sizeof(*set->devs), cred_dev_cmp);
    for (size_t i = 0; i < n; i++)
        if (k == 0 || set->devs[k - 1].id != set->devs[i].id)
            set->devs[k++] = set->devs[i];
    set->ndevs = k;
}

/* Fill set->items from the rows, decrypting each password.  0, or a
 * negative code with errbuf written. */
static int cred_load_items(struct nr_cred_set *set, const PGresult *r,
                           const struct nr_cred_keyring *k, char *errbuf, size_t errlen)
{
    const struct nr_fernet *f = k != NULL && k->has_key ? &k->fernet : NULL;
    size_t rows = (size_t)PQntuples(r);
    char why[NR_SECRET_ERRLEN];

    set->items = nr_calloc(rows > 0 ? rows : 1, sizeof(*set->items));
    for (size_t i = 0; i < rows; i++) {
        struct cred_item *it = &set->items[i];
        long long prio;
        int rc;

        if (!cred_parse_ll(PQgetvalue(r, (int)i, COL_ID), &it->id) ||
            !cred_parse_ll(PQgetvalue(r, (int)i, COL_PRIO), &prio) ||
            prio < INT_MIN || prio > INT_MAX) {
            cred_err(errbuf, errlen, "cred_resolve: unexpected reply from the server");
            return NR_ERR;
        }
        it->priority = (int)prio;
        if (PQgetisnull(r, (int)i, COL_USER) || PQgetisnull(r, (int)i, COL_PASS)) {
            cred_err(errbuf, errlen, "credential %lld: username or password is NULL", it->id);
            return NR_CRED_EDECRYPT;
        }
        rc = nr_fernet_decrypt_password(f, PQgetvalue(r, (int)i, COL_PASS), &it->password,
                                        &it->password_len, NULL, why);
        if (rc < 0) {
            if (rc == NR_FERNET_ENOKEY)
                cred_err(errbuf, errlen, "credential %lld: password is a Fernet token but no "
                         "encryption key is configured (security.encryption_key or "
                         "NETRAVEN_ENCRYPTION_KEY)", it->id);
            else
                cred_err(errbuf, errlen, "credential %lld: cannot decrypt password: %s",
                         it->id, why);
            return NR_CRED_EDECRYPT;
        }
        it->username = nr_strdup(PQgetvalue(r, (int)i, COL_USER));
        set->nitems = i + 1;
    }
    set->nitems = rows;
    return 0;
}

/* The per-device slices, from each row's device array. */
static int cred_build_slots(struct nr_cred_set *set, const PGresult *r,
                            char *errbuf, size_t errlen)
{
    size_t off = 0;

    for (size_t i = 0; i < set->nitems; i++)
        if (!cred_each_id(PQgetvalue(r, (int)i, COL_DEVS), cred_count, set, i)) {
            cred_err(errbuf, errlen, "cred_resolve: unexpected reply from the server");
            return NR_ERR;
        }
    set->slots = nr_calloc(set->nslots > 0 ? set->nslots : 1, sizeof(*set->slots));
    for (size_t d = 0; d < set->ndevs; d++) {
        set->devs[d].off = off;
        off += set->devs[d].n;
        set->nmatched += set->devs[d].n > 0;
        set->devs[d].n = 0;             /* refilled as the fill cursor */
    }
    /* rows are in priority order, so each slice fills best first */
    for (size_t i = 0; i < set->nitems; i++)
        cred_each_id(PQgetvalue(r, (int)i, COL_DEVS), cred_fill, set, i);
    return 0;
}

int nr_cred_resolve(struct nr_store *s, const struct nr_cred_keyring *k,
                    const long long *device_ids, size_t n,
                    struct nr_cred_set **out, char *errbuf, size_t errlen)
{
    struct nr_cred_set *set;
    const char *params[1];
    char *ids;
    PGresult *r;
    int rc;

    if (s == NULL || out == NULL || (device_ids == NULL && n > 0)) {
        cred_err(errbuf, errlen, "cred_resolve: invalid argument");
        return NR_EINVAL;
    }
    set = nr_calloc(1, sizeof(*set));
    cred_set_devices(set, device_ids, n);
    if (set->ndevs == 0) {
        *out = set;
        return 0;
    }

    params[0] = ids = cred_id_array(set->devs, set->ndevs);
    r = nr_store_query(s, "cred_resolve", resolve_sql, 1, params);
    free(ids);
    if (r == NULL) {
        cred_err(errbuf, errlen, "%s", s->errstr);
        nr_cred_set_free(set);
        return s->err < 0 ? s->err : NR_ERR;
    }
    if (PQnfields(r) != NCOLS) {
        cred_err(errbuf, errlen, "cred_resolve: unexpected reply from the server");
        rc = NR_ERR;
    } else if ((rc = cred_load_items(set, r, k, errbuf, errlen)) == 0) {
        rc = cred_build_slots(set, r, errbuf, errlen);
    }
    cred_cleanse_result(r);
    PQclear(r);
    if (rc < 0) {
        nr_cred_set_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

/* ---- attempts ------------------------------------------------------------- */

/* The two branches of credential_metrics.py, NULL cases included; float8
 * arithmetic (0.9 and 0.1 are cast to double precision), as Python's
 * floats. */
static const struct nr_store_stmt cred_attempt = { .name = "nr_cred_attempt", .nparams = 2,
    .sql = "UPDATE credentials SET last_used = now(),"
           "       success_rate = CASE WHEN $2::boolean"
           "                           THEN COALESCE(success_rate * 0.9 + 0.1, 1.0)"
           "                           ELSE COALESCE(success_rate * 0.9, 0.0) END"
           " WHERE id = $1::bigint" };

int nr_cred_record_attempt_send(struct nr_store *s, long long cred_id, bool success)
{
    char id[24];
    const char *params[2] = { id, success ? "true" : "false" };

    if (s == NULL)
        return NR_EINVAL;
    snprintf(id, sizeof(id), "%lld", cred_id);
    return nr_store_pipe_exec(s, "cred_record_attempt", &cred_attempt, params, NULL, NULL);
}

int nr_cred_record_attempt(struct nr_store *s, long long cred_id, bool success)
{
    char id[24];
    const char *params[2] = { id, success ? "true" : "false" };
    PGresult *r;
    bool none;

    if (s == NULL)
        return NR_EINVAL;
    snprintf(id, sizeof(id), "%lld", cred_id);
    r = nr_store_query(s, "cred_record_attempt", cred_attempt.sql, 2, params);
    if (r == NULL)
        return s->err < 0 ? s->err : NR_ERR;
    none = strcmp(PQcmdTuples(r), "0") == 0;
    PQclear(r);
    return none ? NR_NOTFOUND : 0;
}

/* ---- start-up check ------------------------------------------------------- */

/* Append ", id" to c->ids while it fits; count the rest. */
static void cred_note_id(struct nr_cred_key_check *c, long long id, size_t *left_out)
{
    size_t len = strlen(c->ids);
    char one[32];
    int n = snprintf(one, sizeof(one), "%s%lld", len ? ", " : "", id);

    /* keep room for ", ... (N more)" */
    if (*left_out == 0 && len + (size_t)n + 32 < sizeof(c->ids))
        memcpy(c->ids + len, one, (size_t)n + 1);
    else
        (*left_out)++;
}

int nr_cred_check_keyring(struct nr_store *s, const struct nr_cred_keyring *k,
                          struct nr_cred_key_check *out)
{
    static const char sql[] = "SELECT id, password FROM credentials ORDER BY id";
    const struct nr_fernet *f = k != NULL && k->has_key ? &k->fernet : NULL;
    struct nr_cred_key_check c;
    size_t more = 0;
    PGresult *r;

    if (s == NULL || out == NULL)
        return NR_EINVAL;
    memset(&c, 0, sizeof(c));
    r = nr_store_query(s, "cred_check_keyring", sql, 0, NULL);
    if (r == NULL)
        return s->err < 0 ? s->err : NR_ERR;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *stored = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
        char *plain = NULL, why[NR_SECRET_ERRLEN];
        size_t plain_len = 0;
        bool legacy = false;
        long long id = 0;

        cred_parse_ll(PQgetvalue(r, i, 0), &id);
        if (nr_fernet_decrypt_password(f, stored, &plain, &plain_len, &legacy, why) == 0) {
            nr_secret_free(plain, plain_len);
            if (legacy) {
                c.legacy++;
                continue;
            }
            c.encrypted++;
            continue;
        }
        c.encrypted++;
        c.unopened++;
        cred_note_id(&c, id, &more);
    }
    if (more > 0) {
        size_t len = strlen(c.ids);
        snprintf(c.ids + len, sizeof(c.ids) - len, ", ... (%zu more)", more);
    }
    for (int i = 0; i < PQntuples(r); i++)
        OPENSSL_cleanse(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
    PQclear(r);
    *out = c;
    return 0;
}
