/*
 * test_cred.c - the credential module against a real PostgreSQL
 * (NR_TEST_DATABASE_URL), with passwords encrypted by Debian's
 * python3-cryptography exactly as NetRaven's API stores them: matching by
 * shared tag, priority order, decryption and its refusals, a 2,000-device
 * resolution in one statement, and the success_rate rule.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/cred.h"

/* Debian's interpreter: it has python3-cryptography; the one on PATH may not. */

static const char MASTER[] = "cred-test-master-\xe2\x9c\x93-7f3a9c";
static const char WRONG_MASTER[] = "cred-test-wrong-master-0d41e2";
static const char SALT[] = "netraven_salt";

static PGconn *pg;

/* ---- helpers ------------------------------------------------------------ */

static char *py_token(const char *plain)
{
    char *t;
    nrt_fernet_tokens(MASTER, SALT, &plain, 1, &t);
    return t;
}

static struct nr_store *store_ok(void)
{
    struct nr_store *s = nr_store_connect(nrt_db_url());
    ck_assert_ptr_nonnull(s);
    ck_assert_msg(s->err == 0, "connect failed: %s", s->errstr);
    return s;
}

static void keyring(struct nr_cred_keyring *k, const char *master, const char *salt)
{
    struct nr_config cfg;
    char err[NR_CRED_ERRLEN] = "";

    memset(&cfg, 0, sizeof(cfg));
    cfg.security.encryption_key = (char *)master;
    cfg.security.encryption_salt = (char *)salt;
    ck_assert_msg(nr_cred_keyring_init(k, &cfg, err, sizeof(err)) == 0, "keyring: %s", err);
    ck_assert(k->has_key == (master != NULL && *master != '\0'));
}

static long long add_device(const char *hostname)
{
    static int ip;
    return nrt_sql_int(pg, "INSERT INTO devices (hostname, ip_address, device_type)"
                           " VALUES ('%s', '192.0.2.%d', 'cisco_ios') RETURNING id",
                       hostname, ++ip);
}

static long long add_tag(const char *name)
{
    return nrt_sql_int(pg, "INSERT INTO tags (name, type) VALUES ('%s', 'custom') RETURNING id",
                       name);
}

static void tag_device(long long device, long long tag)
{
    PQclear(nrt_sql(pg, "INSERT INTO device_tag_association VALUES (%lld, %lld)", device, tag));
}

static void tag_cred(long long cred, long long tag)
{
    PQclear(nrt_sql(pg, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", cred, tag));
}

/* A credentials row; priority < 0 means NULL.  Values go as parameters. */
static long long add_cred(const char *username, const char *password, int priority)
{
    char prio[16];
    const char *v[3] = { username, password, NULL };
    PGresult *r;
    long long id;

    if (priority >= 0) {
        snprintf(prio, sizeof(prio), "%d", priority);
        v[2] = prio;
    }
    r = PQexecParams(pg, "INSERT INTO credentials (username, password, priority)"
                         " VALUES ($1, $2, $3::int) RETURNING id", 3, NULL, v, NULL, NULL, 0);
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "add_cred: %s", PQerrorMessage(pg));
    id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return id;
}

static struct nr_cred_set *resolve_ok(struct nr_store *s, const struct nr_cred_keyring *k,
                                      const long long *ids, size_t n)
{
    struct nr_cred_set *set = NULL;
    char err[NR_CRED_ERRLEN] = "";
    int rc = nr_cred_resolve(s, k, ids, n, &set, err, sizeof(err));

    ck_assert_msg(rc == 0, "resolve = %d: %s", rc, err);
    ck_assert_ptr_nonnull(set);
    return set;
}

/* The credential ids of a device as "3,1,2". */
static char *cred_ids(const struct nr_cred_set *set, long long device)
{
    size_t n = 99, len = 0;
    const struct nr_credential *c = nr_cred_set_get(set, device, &n);
    char *buf = calloc(1, 16 + n * 21);

    ck_assert(n == 0 ? c == NULL : c != NULL);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(buf + len, "%s%lld", i ? "," : "", c[i].id);
    return buf;
}

static void assert_creds(const struct nr_cred_set *set, long long device, const char *want)
{
    char *got = cred_ids(set, device);
    ck_assert_msg(strcmp(got, want) == 0, "device %lld: credentials [%s], want [%s]",
                  device, got, want);
    free(got);
}

/* msg names none of the secrets. */
static void assert_no_secret(const char *msg, const char *const *secrets, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (secrets[i] == NULL || strlen(secrets[i]) < 6)
            continue;
        ck_assert_msg(strstr(msg, secrets[i]) == NULL, "message leaks a secret: %s", msg);
        /* nor a recognisable piece of it (tokens share their first bytes) */
        if (strlen(secrets[i]) > 40)
            ck_assert_msg(strstr(msg, secrets[i] + strlen(secrets[i]) - 24) == NULL,
                          "message leaks part of a token: %s", msg);
    }
    ck_assert_msg(strstr(msg, "gAAAAA") == NULL, "message quotes a token: %s", msg);
}

static void quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static void setup(void)
{
    pg = nrt_pg();
    PQsetNoticeProcessor(pg, quiet, NULL);
    struct nr_store *s = store_ok();
    ck_assert_msg(nr_store_migrate(s) == 0, "migrate: %s", s->errstr);
    nr_store_free(s);
    nrt_db_reset(pg);
}

static void teardown(void)
{
    PQfinish(pg);
    pg = NULL;
}

/* ---- keyring -------------------------------------------------------------- */

START_TEST(test_keyring_without_key)
{
    struct nr_cred_keyring k;
    struct nr_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    memset(&k, 0xa5, sizeof(k));
    ck_assert_int_eq(nr_cred_keyring_init(&k, &cfg, NULL, 0), 0);
    ck_assert(!k.has_key);
    cfg.security.encryption_key = (char *)"";
    ck_assert_int_eq(nr_cred_keyring_init(&k, &cfg, NULL, 0), 0);
    ck_assert(!k.has_key);
    ck_assert_int_eq(nr_cred_keyring_init(NULL, &cfg, NULL, 0), NR_EINVAL);
    nr_cred_keyring_clear(&k);
    nr_cred_keyring_clear(NULL);
}
END_TEST

/* An unset salt is NetRaven's default one: Python's token opens. */
START_TEST(test_keyring_default_salt)
{
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    char *tok = py_token("Default-Salt-Pw#1");
    long long d = add_device("r1"), t = add_tag("core"), c = add_cred("admin", tok, 10);
    struct nr_cred_set *set;
    const struct nr_credential *cr;
    size_t n;

    tag_device(d, t);
    tag_cred(c, t);
    keyring(&k, MASTER, NULL);
    set = resolve_ok(s, &k, &d, 1);
    cr = nr_cred_set_get(set, d, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(cr[0].password, "Default-Salt-Pw#1");
    nr_cred_set_free(set);
    nr_cred_keyring_clear(&k);
    ck_assert(!k.has_key);
    for (size_t i = 0; i < sizeof(k.fernet.key); i++)
        ck_assert_int_eq(k.fernet.key[i], 0);
    free(tok);
    nr_store_free(s);
}
END_TEST

/* ---- matching --------------------------------------------------------------- */

/* Devices matching 0, 1 and 2 credentials, a device without tags, one
 * that is not in the database; Python's plaintexts come back exactly. */
START_TEST(test_resolve_zero_one_two)
{
    static const char *const plain[] = { "Alpha-\xc3\xa9t\xc3\xa9-pw!", "Bravo 'quoted' \\pw",
                                         "Charlie-unused-pw" };
    char *tok[3];
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    long long t_none = add_tag("no-creds"), t_one = add_tag("one"), t_two = add_tag("two");
    long long d0 = add_device("d0"), d1 = add_device("d1"), d2 = add_device("d2"),
              d3 = add_device("untagged");
    long long c1, c2, c3;
    struct nr_cred_set *set;
    const struct nr_credential *cr;
    size_t n;

    nrt_fernet_tokens(MASTER, SALT, plain, 3, tok);
    c1 = add_cred("alpha", tok[0], 20);
    c2 = add_cred("bravo", tok[1], 10);
    c3 = add_cred("charlie", tok[2], 5);    /* tagged with nothing a device has */
    tag_device(d0, t_none);
    tag_device(d1, t_one);
    tag_device(d2, t_two);
    tag_cred(c1, t_one);
    tag_cred(c1, t_two);
    tag_cred(c2, t_two);
    (void)c3;

    keyring(&k, MASTER, SALT);
    long long ids[] = { d0, d1, d2, d3, 999999 };
    set = resolve_ok(s, &k, ids, 5);
    ck_assert_uint_eq(nr_cred_set_devices(set), 5);
    ck_assert_uint_eq(nr_cred_set_devices_matched(set), 2);
    ck_assert_uint_eq(nr_cred_set_credentials(set), 2);     /* charlie never decrypted */

    ck_assert_ptr_null(nr_cred_set_get(set, d0, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(nr_cred_set_get(set, d3, &n));
    ck_assert_ptr_null(nr_cred_set_get(set, 999999, &n));
    ck_assert_ptr_null(nr_cred_set_get(set, 424242, NULL));     /* not asked for */

    cr = nr_cred_set_get(set, d1, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(cr[0].id, c1);
    ck_assert_str_eq(cr[0].username, "alpha");
    ck_assert_str_eq(cr[0].password, plain[0]);
    ck_assert_int_eq(cr[0].priority, 20);

    cr = nr_cred_set_get(set, d2, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(cr[0].id, c2);                 /* priority 10 before 20 */
    ck_assert_str_eq(cr[0].username, "bravo");
    ck_assert_str_eq(cr[0].password, plain[1]);
    ck_assert_int_eq(cr[1].id, c1);
    ck_assert_str_eq(cr[1].password, plain[0]);

    /* one decryption per credential: both devices point at the same text */
    ck_assert_ptr_eq(nr_cred_set_get(set, d1, NULL)[0].password, cr[1].password);
    nr_cred_set_free(set);
    nr_cred_set_free(NULL);

    /* nothing matches at all: still a set, with no device matched */
    set = resolve_ok(s, &k, &d0, 1);
    ck_assert_uint_eq(nr_cred_set_devices(set), 1);
    ck_assert_uint_eq(nr_cred_set_devices_matched(set), 0);
    nr_cred_set_free(set);

    /* no devices: no query needed */
    set = resolve_ok(s, &k, NULL, 0);
    ck_assert_uint_eq(nr_cred_set_devices(set), 0);
    ck_assert_ptr_null(nr_cred_set_get(set, d1, &n));
    nr_cred_set_free(set);

    nr_cred_keyring_clear(&k);
    for (int i = 0; i < 3; i++)
        free(tok[i]);
    nr_store_free(s);
}
END_TEST

/* Lower priority first; NULL counts as 100; ties by id. */
START_TEST(test_priority_order)
{
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    long long t = add_tag("site"), d = add_device("edge");
    long long c100a = add_cred("p100a", "legacy-a", 100);
    long long cnull = add_cred("pnull", "legacy-b", -1);
    long long c100b = add_cred("p100b", "legacy-c", 100);
    long long c150 = add_cred("p150", "legacy-d", 150);
    long long c10 = add_cred("p10", "legacy-e", 10);
    long long c101 = add_cred("p101", "legacy-f", 101);
    long long c99 = add_cred("p99", "legacy-g", 99);
    long long all[] = { c100a, cnull, c100b, c150, c10, c101, c99 };
    struct nr_cred_set *set;
    const struct nr_credential *cr;
    char want[256];
    size_t n;

    tag_device(d, t);
    for (size_t i = 0; i < 7; i++)
        tag_cred(all[i], t);
    keyring(&k, MASTER, SALT);
    set = resolve_ok(s, &k, &d, 1);
    snprintf(want, sizeof(want), "%lld,%lld,%lld,%lld,%lld,%lld,%lld",
             c10, c99, c100a, cnull, c100b, c101, c150);
    assert_creds(set, d, want);
    cr = nr_cred_set_get(set, d, &n);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(cr[3].priority, NR_CRED_DEFAULT_PRIORITY);   /* the NULL one */
    ck_assert_str_eq(cr[3].username, "pnull");
    ck_assert_str_eq(cr[3].password, "legacy-b");
    nr_cred_set_free(set);
    nr_cred_keyring_clear(&k);
    nr_store_free(s);
}
END_TEST

/* A credential that shares two tags with a device is listed once; the
 * same device id asked twice is one device. */
START_TEST(test_two_tags_listed_once)
{
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    char *tok = py_token("Shared-Two-Tags-Pw");
    long long ta = add_tag("a"), tb = add_tag("b"), tc = add_tag("c");
    long long d = add_device("both"), e = add_device("only-b");
    long long c = add_cred("shared", tok, 50), o = add_cred("other", "legacy-other", 60);
    struct nr_cred_set *set;
    char want[64];

    tag_device(d, ta);
    tag_device(d, tb);
    tag_device(d, tc);
    tag_device(e, tb);
    tag_cred(c, ta);
    tag_cred(c, tb);
    tag_cred(o, tc);
    tag_cred(o, ta);
    keyring(&k, MASTER, SALT);
    long long ids[] = { e, d, d, e };
    set = resolve_ok(s, &k, ids, 4);
    ck_assert_uint_eq(nr_cred_set_devices(set), 2);
    ck_assert_uint_eq(nr_cred_set_devices_matched(set), 2);
    ck_assert_uint_eq(nr_cred_set_credentials(set), 2);
    snprintf(want, sizeof(want), "%lld,%lld", c, o);
    assert_creds(set, d, want);
    snprintf(want, sizeof(want), "%lld", c);
    assert_creds(set, e, want);
    ck_assert_str_eq(nr_cred_set_get(set, e, NULL)[0].password, "Shared-Two-Tags-Pw");
    nr_cred_set_free(set);
    nr_cred_keyring_clear(&k);
    free(tok);
    nr_store_free(s);
}
END_TEST

/* ---- decryption ------------------------------------------------------------- */

/* A legacy row (the password itself) resolves with and without a key. */
START_TEST(test_legacy_plain_password)
{
    struct nr_cred_keyring with, without;
    struct nr_store *s = store_ok();
    long long t = add_tag("legacy"), d = add_device("old");
    long long c = add_cred("cisco", "plain-Legacy-pw=1", 100);
    struct nr_cred_set *set;
    size_t n;

    tag_device(d, t);
    tag_cred(c, t);
    keyring(&with, MASTER, SALT);
    keyring(&without, NULL, SALT);
    set = resolve_ok(s, &with, &d, 1);
    ck_assert_str_eq(nr_cred_set_get(set, d, &n)[0].password, "plain-Legacy-pw=1");
    nr_cred_set_free(set);
    set = resolve_ok(s, &without, &d, 1);
    ck_assert_str_eq(nr_cred_set_get(set, d, &n)[0].password, "plain-Legacy-pw=1");
    nr_cred_set_free(set);
    set = resolve_ok(s, NULL, &d, 1);
    ck_assert_str_eq(nr_cred_set_get(set, d, &n)[0].password, "plain-Legacy-pw=1");
    nr_cred_set_free(set);
    nr_cred_keyring_clear(&with);
    nr_store_free(s);
}
END_TEST

/* An encrypted row with no key configured: a clear error naming the
 * credential and the setting, and no secret. */
START_TEST(test_encrypted_without_key)
{
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    char *tok = py_token("NoKey-Secret-Pw-42");
    long long t = add_tag("enc"), t2 = add_tag("plain"), d = add_device("r"), d2 = add_device("p");
    long long c = add_cred("admin", tok, 1), p = add_cred("plain", "NoKey-Plain-Pw-43", 1);
    struct nr_cred_set *set = (struct nr_cred_set *)&k;    /* sentinel */
    char err[NR_CRED_ERRLEN] = "", want[64];
    const char *secrets[] = { tok, "NoKey-Secret-Pw-42", "NoKey-Plain-Pw-43", MASTER };

    tag_device(d, t);
    tag_device(d2, t2);
    tag_cred(c, t);
    tag_cred(p, t2);
    keyring(&k, NULL, NULL);
    ck_assert_int_eq(nr_cred_resolve(s, &k, &d, 1, &set, err, sizeof(err)), NR_CRED_EDECRYPT);
    ck_assert_ptr_eq(set, (struct nr_cred_set *)&k);        /* untouched */
    snprintf(want, sizeof(want), "credential %lld:", c);
    ck_assert_msg(strstr(err, want) != NULL, "error does not name the credential: %s", err);
    ck_assert_msg(strstr(err, "no encryption key") != NULL, "unclear error: %s", err);
    ck_assert_msg(strstr(err, "security.encryption_key") != NULL, "no setting named: %s", err);
    assert_no_secret(err, secrets, 4);

    /* a device whose credentials are all legacy still resolves */
    set = resolve_ok(s, &k, &d2, 1);
    ck_assert_str_eq(nr_cred_set_get(set, d2, NULL)[0].password, "NoKey-Plain-Pw-43");
    nr_cred_set_free(set);

    /* errbuf may be NULL */
    ck_assert_int_eq(nr_cred_resolve(s, &k, &d, 1, &set, NULL, 0), NR_CRED_EDECRYPT);
    free(tok);
    nr_store_free(s);
}
END_TEST

/* Wrong key, tampered and truncated tokens: refused, never used as a
 * password, and the message carries no secret. */
START_TEST(test_wrong_key_and_tampered)
{
    struct nr_cred_keyring right, wrong;
    struct nr_store *s = store_ok();
    static const char *const plain[] = { "Wrong-Key-Secret-1", "Tamper-Secret-2",
                                         "Truncate-Secret-3" };
    char *tok[3], *tampered, *truncated;
    long long t1 = add_tag("t1"), t2 = add_tag("t2"), t3 = add_tag("t3");
    long long d1 = add_device("w1"), d2 = add_device("w2"), d3 = add_device("w3");
    long long c1, c2, c3;
    struct nr_cred_set *set = NULL;
    char err[NR_CRED_ERRLEN], want[64];
    size_t mid;

    nrt_fernet_tokens(MASTER, SALT, plain, 3, tok);
    tampered = strdup(tok[1]);
    mid = strlen(tampered) / 2;
    tampered[mid] = tampered[mid] == 'A' ? 'B' : 'A';
    truncated = strndup(tok[2], strlen(tok[2]) - 10);
    c1 = add_cred("u1", tok[0], 1);
    c2 = add_cred("u2", tampered, 1);
    c3 = add_cred("u3", truncated, 1);
    tag_device(d1, t1);
    tag_device(d2, t2);
    tag_device(d3, t3);
    tag_cred(c1, t1);
    tag_cred(c2, t2);
    tag_cred(c3, t3);
    const char *secrets[] = { tok[0], tok[1], tok[2], tampered, truncated,
                              plain[0], plain[1], plain[2], MASTER, WRONG_MASTER };

    keyring(&right, MASTER, SALT);
    keyring(&wrong, WRONG_MASTER, SALT);

    /* wrong key */
    err[0] = '\0';
    ck_assert_int_eq(nr_cred_resolve(s, &wrong, &d1, 1, &set, err, sizeof(err)),
                     NR_CRED_EDECRYPT);
    snprintf(want, sizeof(want), "credential %lld:", c1);
    ck_assert_msg(strstr(err, want) != NULL, "error does not name the credential: %s", err);
    ck_assert_msg(strstr(err, "wrong encryption key") != NULL, "unclear error: %s", err);
    assert_no_secret(err, secrets, NR_ARRAY_LEN(secrets));
    /* the right key opens it */
    set = resolve_ok(s, &right, &d1, 1);
    ck_assert_str_eq(nr_cred_set_get(set, d1, NULL)[0].password, plain[0]);
    nr_cred_set_free(set);
    set = NULL;

    /* tampered (right key) */
    err[0] = '\0';
    ck_assert_int_eq(nr_cred_resolve(s, &right, &d2, 1, &set, err, sizeof(err)),
                     NR_CRED_EDECRYPT);
    snprintf(want, sizeof(want), "credential %lld:", c2);
    ck_assert_msg(strstr(err, want) != NULL, "error does not name the credential: %s", err);
    assert_no_secret(err, secrets, NR_ARRAY_LEN(secrets));

    /* truncated: a token's shape, never a legacy password */
    err[0] = '\0';
    ck_assert_int_eq(nr_cred_resolve(s, &right, &d3, 1, &set, err, sizeof(err)),
                     NR_CRED_EDECRYPT);
    snprintf(want, sizeof(want), "credential %lld:", c3);
    ck_assert_msg(strstr(err, want) != NULL, "error does not name the credential: %s", err);
    assert_no_secret(err, secrets, NR_ARRAY_LEN(secrets));

    /* all three at once: one bad credential fails the resolution */
    long long ids[] = { d1, d2, d3 };
    ck_assert_int_eq(nr_cred_resolve(s, &right, ids, 3, &set, err, sizeof(err)),
                     NR_CRED_EDECRYPT);
    ck_assert_ptr_null(set);
    assert_no_secret(err, secrets, NR_ARRAY_LEN(secrets));

    nr_cred_keyring_clear(&right);
    nr_cred_keyring_clear(&wrong);
    for (int i = 0; i < 3; i++)
        free(tok[i]);
    free(tampered);
    free(truncated);
    nr_store_free(s);
}
END_TEST

/* The query fails (no such tables in the schema searched): the store's
 * message and code, outputs untouched. */
START_TEST(test_query_failure)
{
    const char *url = nrt_db_url();
    char *bad = NULL, err[NR_CRED_ERRLEN] = "";
    struct nr_cred_set *set = (struct nr_cred_set *)&bad;    /* sentinel */
    struct nr_store *s;
    long long d = 1;

    PQclear(nrt_sql(pg, "DROP SCHEMA IF EXISTS nrt_cred_empty CASCADE"));
    PQclear(nrt_sql(pg, "CREATE SCHEMA nrt_cred_empty"));
    ck_assert(asprintf(&bad, "%s%soptions=-csearch_path%%3Dnrt_cred_empty", url,
                       strchr(url, '?') ? "&" : "?") > 0);
    s = nr_store_connect(bad);
    ck_assert_msg(s->err == 0, "connect: %s", s->errstr);
    ck_assert_int_eq(nr_cred_resolve(s, NULL, &d, 1, &set, err, sizeof(err)), NR_ERR);
    ck_assert_ptr_eq(set, (struct nr_cred_set *)&bad);
    ck_assert_msg(strstr(err, "cred_resolve") != NULL && strstr(err, "does not exist") != NULL,
                  "unclear error: %s", err);
    ck_assert_int_lt(nr_cred_record_attempt(s, 1, true), 0);
    nr_store_free(s);
    free(bad);
    PQclear(nrt_sql(pg, "DROP SCHEMA nrt_cred_empty CASCADE"));

    s = store_ok();
    ck_assert_int_eq(nr_cred_resolve(s, NULL, NULL, 3, &set, err, sizeof(err)), NR_EINVAL);
    ck_assert_int_eq(nr_cred_resolve(NULL, NULL, &d, 1, &set, err, sizeof(err)), NR_EINVAL);
    ck_assert_int_eq(nr_cred_resolve(s, NULL, &d, 1, NULL, err, sizeof(err)), NR_EINVAL);
    nr_store_free(s);
}
END_TEST

/* ---- scale ------------------------------------------------------------------ */

#define MANY_DEVICES 2000
#define MANY_TAGS    20

/* Statements sent in a libpq trace: one Parse per PQexecParams. */
static size_t count_parse(const char *trace)
{
    size_t n = 0;
    for (const char *p = trace; (p = strstr(p, "\tParse\t")) != NULL; p++)
        n++;
    return n;
}

START_TEST(test_many_devices_one_query)
{
    static const char *const plain[] = { "Many-0", "Many-1", "Many-2", "Many-3", "Many-4" };
    char *tok[5], *trace = NULL;
    size_t trace_len = 0;
    struct nr_cred_keyring k;
    struct nr_store *s = store_ok();
    long long *ids = malloc(MANY_DEVICES * sizeof(*ids));
    struct nr_cred_set *set = NULL;
    char err[NR_CRED_ERRLEN] = "";
    double t0, ms;
    FILE *tf;
    PGresult *r;
    size_t matched = 0;

    nrt_fernet_tokens(MASTER, SALT, plain, 5, tok);
    PQclear(nrt_sql(pg, "INSERT INTO devices (id, hostname, ip_address, device_type)"
                        " SELECT g, 'dev' || g, '10.1.' || (g / 250) || '.' || (g %% 250),"
                        "        'cisco_ios' FROM generate_series(1, %d) g", MANY_DEVICES));
    PQclear(nrt_sql(pg, "INSERT INTO tags (id, name, type)"
                        " SELECT g, 'tag' || g, 'custom' FROM generate_series(1, %d) g",
                    MANY_TAGS));
    /* each device two or three tags; every 10th device none */
    PQclear(nrt_sql(pg, "INSERT INTO device_tag_association"
                        " SELECT DISTINCT g, t FROM generate_series(1, %d) g,"
                        "  LATERAL (VALUES (g %% %d + 1), ((g * 7) %% %d + 1), ((g * 13) %% %d + 1)) v(t)"
                        " WHERE g %% 10 <> 0",
                    MANY_DEVICES, MANY_TAGS, MANY_TAGS, MANY_TAGS));
    /* five encrypted credentials on overlapping tag sets, one legacy on all,
     * one on no tag at all */
    for (int i = 0; i < 5; i++) {
        long long c = add_cred("many", tok[i], i == 2 ? -1 : 40 + 20 * i);
        PQclear(nrt_sql(pg, "INSERT INTO credential_tag_association"
                            " SELECT %lld, t FROM generate_series(1, %d) t WHERE t %% 5 = %d"
                            "    OR t %% 7 = %d", c, MANY_TAGS, i, i));
    }
    long long all = add_cred("fallback", "Many-legacy", 1000);
    PQclear(nrt_sql(pg, "INSERT INTO credential_tag_association"
                        " SELECT %lld, t FROM generate_series(1, %d) t", all, MANY_TAGS));
    add_cred("orphan", "Many-orphan", 1);
    PQclear(nrt_sql(pg, "ANALYZE"));

    for (int i = 0; i < MANY_DEVICES; i++)
        ids[i] = MANY_DEVICES - i;          /* any order */
    keyring(&k, MASTER, SALT);

    /* warm the connection's caches the way a long-lived run thread has them */
    set = resolve_ok(s, &k, ids, 10);
    nr_cred_set_free(set);

    tf = open_memstream(&trace, &trace_len);
    ck_assert_ptr_nonnull(tf);
    PQtrace(s->conn, tf);
    t0 = nr_mono_ms();
    int rc = nr_cred_resolve(s, &k, ids, MANY_DEVICES, &set, err, sizeof(err));
    ms = nr_mono_ms() - t0;
    PQuntrace(s->conn);
    fclose(tf);
    ck_assert_msg(rc == 0, "resolve: %s", err);
    ck_assert_uint_eq(count_parse(trace), 1);
    printf("cred: resolved %d devices (%zu matched, %zu credentials) in %.1f ms, one statement\n",
           MANY_DEVICES, nr_cred_set_devices_matched(set), nr_cred_set_credentials(set), ms);
    ck_assert_msg(ms < 1000.0, "resolution of %d devices took %.1f ms", MANY_DEVICES, ms);
    ck_assert_uint_eq(nr_cred_set_devices(set), MANY_DEVICES);
    ck_assert_uint_eq(nr_cred_set_credentials(set), 6);

    /* every device's list, against the obvious per-device SQL */
    r = nrt_sql(pg, "SELECT d.id, (SELECT string_agg(x.id::text, ',' ORDER BY x.p, x.id) FROM"
                    "   (SELECT DISTINCT c.id, COALESCE(c.priority, 100) p"
                    "      FROM device_tag_association dta"
                    "      JOIN credential_tag_association cta USING (tag_id)"
                    "      JOIN credentials c ON c.id = cta.credential_id"
                    "     WHERE dta.device_id = d.id) x)"
                    " FROM devices d ORDER BY d.id");
    ck_assert_int_eq(PQntuples(r), MANY_DEVICES);
    for (int i = 0; i < PQntuples(r); i++) {
        long long d = atoll(PQgetvalue(r, i, 0));
        const char *want = PQgetvalue(r, i, 1);
        assert_creds(set, d, want);
        matched += *want != '\0';
        size_t n;
        const struct nr_credential *cr = nr_cred_set_get(set, d, &n);
        for (size_t j = 0; j < n; j++)
            ck_assert(strncmp(cr[j].password, "Many-", 5) == 0);
    }
    ck_assert_uint_eq(matched, nr_cred_set_devices_matched(set));
    ck_assert_uint_eq(matched, MANY_DEVICES - MANY_DEVICES / 10);
    PQclear(r);
    nr_cred_set_free(set);

    free(trace);
    free(ids);
    for (int i = 0; i < 5; i++)
        free(tok[i]);
    nr_cred_keyring_clear(&k);
    nr_store_free(s);
}
END_TEST

/* ---- attempts --------------------------------------------------------------- */

static double rate(long long id, bool *is_null)
{
    char *v = nrt_sql_str(pg, "SELECT success_rate::text FROM credentials WHERE id = %lld", id);
    double d = v != NULL ? strtod(v, NULL) : 0.0;

    *is_null = v == NULL;
    free(v);
    return d;
}

static void assert_rate(long long id, double want)
{
    bool null;
    double got = rate(id, &null);
    ck_assert_msg(!null, "credential %lld: success_rate is NULL", id);
    ck_assert_msg(got == want, "credential %lld: success_rate %.17g, want %.17g", id, got, want);
}

START_TEST(test_record_attempt)
{
    struct nr_store *s = store_ok();
    long long a = add_cred("a", "x", 1), b = add_cred("b", "x", 1), c = add_cred("c", "x", 1),
              u = add_cred("untouched", "x", 1);
    volatile double want;

    PQclear(nrt_sql(pg, "UPDATE credentials SET success_rate = NULL WHERE id IN (%lld, %lld)",
                    a, b));
    PQclear(nrt_sql(pg, "UPDATE credentials SET success_rate = 0.5 WHERE id = %lld", c));
    PQclear(nrt_sql(pg, "UPDATE credentials SET success_rate = 0.25 WHERE id = %lld", u));

    /* NULL: success -> 1.0, failure -> 0.0, as credential_metrics.py */
    ck_assert_int_eq(nr_cred_record_attempt(s, a, true), 0);
    assert_rate(a, 1.0);
    ck_assert_int_eq(nr_cred_record_attempt(s, b, false), 0);
    assert_rate(b, 0.0);

    /* then old * 0.9 + 0.1 / old * 0.9, in double precision */
    want = 0.5;
    ck_assert_int_eq(nr_cred_record_attempt(s, c, true), 0);
    want = want * 0.9 + 0.1;
    assert_rate(c, want);
    ck_assert_int_eq(nr_cred_record_attempt(s, c, false), 0);
    want = want * 0.9;
    assert_rate(c, want);
    ck_assert_int_eq(nr_cred_record_attempt(s, c, false), 0);
    want = want * 0.9;
    assert_rate(c, want);
    ck_assert_int_eq(nr_cred_record_attempt(s, c, true), 0);
    want = want * 0.9 + 0.1;
    assert_rate(c, want);
    ck_assert_int_eq(nr_cred_record_attempt(s, a, false), 0);
    assert_rate(a, 0.9);
    ck_assert_int_eq(nr_cred_record_attempt(s, b, true), 0);
    assert_rate(b, 0.1);

    /* last_used is now for those tried, untouched otherwise */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM credentials WHERE id IN (%lld, %lld,"
                                     " %lld) AND last_used > now() - interval '1 minute'"
                                     " AND last_used <= now()", a, b, c), 3);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM credentials WHERE id = %lld"
                                     " AND last_used IS NULL", u), 1);
    assert_rate(u, 0.25);

    /* not found is not an error; an id beyond int4 neither */
    ck_assert_int_eq(nr_cred_record_attempt(s, 987654, true), NR_NOTFOUND);
    ck_assert_int_eq(nr_cred_record_attempt(s, 99999999999LL, false), NR_NOTFOUND);
    ck_assert_int_eq(nr_cred_record_attempt(NULL, a, true), NR_EINVAL);
    nr_store_free(s);
}
END_TEST

static Suite *cred_suite(void)
{
    Suite *su = suite_create("cred");
    TCase *keys = tcase_create("keyring");
    TCase *match = tcase_create("matching");
    TCase *dec = tcase_create("decryption");
    TCase *scale = tcase_create("scale");
    TCase *att = tcase_create("attempts");

    tcase_add_checked_fixture(keys, setup, teardown);
    nrt_add_test(keys, test_keyring_without_key);
    nrt_add_test(keys, test_keyring_default_salt);
    suite_add_tcase(su, keys);

    tcase_add_checked_fixture(match, setup, teardown);
    nrt_add_test(match, test_resolve_zero_one_two);
    nrt_add_test(match, test_priority_order);
    nrt_add_test(match, test_two_tags_listed_once);
    suite_add_tcase(su, match);

    tcase_add_checked_fixture(dec, setup, teardown);
    nrt_add_test(dec, test_legacy_plain_password);
    nrt_add_test(dec, test_encrypted_without_key);
    nrt_add_test(dec, test_wrong_key_and_tampered);
    nrt_add_test(dec, test_query_failure);
    suite_add_tcase(su, dec);

    tcase_add_checked_fixture(scale, setup, teardown);
    nrt_add_test(scale, test_many_devices_one_query);
    suite_add_tcase(su, scale);

    tcase_add_checked_fixture(att, setup, teardown);
    nrt_add_test(att, test_record_attempt);
    suite_add_tcase(su, att);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(cred_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
