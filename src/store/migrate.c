/*
 * migrate.c - apply the embedded sql/ files that this database has not seen.
 *
 * netraven_worker_migrations(name, applied_at) records each file applied.
 * A session advisory lock serialises workers that start together: the
 * second waits, then finds everything recorded and applies nothing.  Each
 * file runs in its own transaction together with the row that records it,
 * so a file is either applied and recorded or neither.  The files are
 * themselves idempotent (IF NOT EXISTS), so running them over a database
 * that NetRaven's alembic migrations created leaves what they made as it
 * was (an empty alembic_version is stamped, see 001).
 */
#include "netraven/store.h"

#include <string.h>

#include <libpq-fe.h>

#include "store_i.h"

/* pg_advisory_lock key: "nrworkmg" read as a big-endian int64. */
#define MIGRATE_LOCK_KEY "7958554812061805927"

static const char create_ledger[] =
    "CREATE TABLE IF NOT EXISTS netraven_worker_migrations ("
    " name text PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

/* 1 if name is recorded, 0 if not, negative on error. */
static int migrate_recorded(struct nr_store *s, const char *name)
{
    const char *params[1] = { name };
    PGresult *r = nr_store_query(s, name,
                                 "SELECT 1 FROM netraven_worker_migrations WHERE name = $1",
                                 1, params);
    int found;

    if (r == NULL)
        return s->err;
    found = PQntuples(r) > 0;
    PQclear(r);
    return found;
}

/* what names the step for errstr: "migrate" or the file being applied. */
static int migrate_simple(struct nr_store *s, const char *what, const char *sql,
                          int nparams, const char *const *params)
{
    PGresult *r = nr_store_query(s, what, sql, nparams, params);
    if (r == NULL)
        return s->err;
    PQclear(r);
    return 0;
}

/* Leave the transaction after a failure without losing the first error. */
static void migrate_rollback(struct nr_store *s)
{
    PGresult *r;

    if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK)
        return;
    r = PQexec(s->conn, "ROLLBACK");
    PQclear(r);
}

/* Apply one file unless recorded; 0 or negative with errstr set. */
static int migrate_one(struct nr_store *s, const struct nr_migration *m)
{
    const char *params[1] = { m->name };
    PGresult *r;
    int rc;

    if ((rc = migrate_simple(s, m->name, "BEGIN", 0, NULL)) < 0)
        return rc;
    rc = migrate_recorded(s, m->name);
    if (rc < 0)
        goto fail;
    if (rc > 0)
        return migrate_simple(s, m->name, "COMMIT", 0, NULL);

    r = nr_store_script(s, m->name, m->sql);
    if (r == NULL) {
        rc = s->err;
        goto fail;
    }
    PQclear(r);
    rc = migrate_simple(s, m->name,
                        "INSERT INTO netraven_worker_migrations (name, applied_at)"
                        " VALUES ($1, now())", 1, params);
    if (rc < 0)
        goto fail;
    rc = migrate_simple(s, m->name, "COMMIT", 0, NULL);
    if (rc < 0)
        goto fail;
    return 0;

fail:
    migrate_rollback(s);
    return rc;
}

int nr_store_migrate(struct nr_store *s)
{
    const char *key[1] = { MIGRATE_LOCK_KEY };
    int rc, err;
    char errstr[sizeof(s->errstr)];

    if ((rc = migrate_simple(s, "migrate", "SELECT pg_advisory_lock($1::bigint)", 1, key)) < 0)
        return rc;
    rc = migrate_simple(s, "migrate", create_ledger, 0, NULL);
    for (size_t i = 0; rc == 0 && i < nr_migrations_count; i++)
        rc = migrate_one(s, &nr_migrations[i]);

    /* Unlock even after a failure, keeping that failure's err/errstr. */
    err = s->err;
    memcpy(errstr, s->errstr, sizeof(errstr));
    if (nr_store_ok(s))
        migrate_simple(s, "migrate", "SELECT pg_advisory_unlock($1::bigint)", 1, key);
    if (rc < 0) {
        s->err = err;
        memcpy(s->errstr, errstr, sizeof(errstr));
    }
    return rc;
}
