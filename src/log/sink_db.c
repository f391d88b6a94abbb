/*
 * sink_db.c - the "db" thread: job and connection records into the logs
 * table (docs/netraven.md §2.5, §4), through the spool while PostgreSQL is
 * away.
 *
 * The thread owns one PostgreSQL connection, a struct nr_store made lazily
 * from database.url by the store (nr_store_connect_as: the worker's one
 * set of connection settings, application_name netraven-worker-log, the
 * password scrubbed from every message); it runs its statements and COPY
 * on it with the store's fault classes (nr_store_fail) and COPY calls.
 * It takes every queued record at once and writes them in chunks of
 * logging.db_batch_size rows, one transaction per chunk:
 *
 *   BEGIN; SELECT txid_current();  COPY logs (...) FROM STDIN;  COMMIT
 *
 * Exactly once: a chunk is finished (and its records released) only when
 * its COMMIT succeeded.  If the connection breaks before COMMIT, nothing was
 * written and the chunk is sent again after reconnecting.  If it breaks
 * while the COMMIT is under way, the answer is unknown; after reconnecting
 * the thread asks txid_status() of the transaction id it kept, and sends the
 * chunk again only if that transaction did not commit.
 *
 * Errors, by SQLSTATE class (the store's nr_store_fail):
 *   - connection (no result, CONNECTION_BAD, 08, 57P0x): drop the
 *     connection, keep the chunk, reconnect with backoff (0.5 s doubling to
 *     10 s); SYS_DB_UNAVAILABLE once per outage, SYS_DB_CONNECTED when back.
 *   - data (22 data exception, 23 integrity, e.g. a job_id whose jobs row
 *     does not exist): the chunk is written again row by row in one
 *     transaction, each row under a savepoint.  A row that fails has the id
 *     named by the violated constraint (or both ids) set to NULL and the
 *     original ids kept in meta (orig_job_id, orig_device_id), and
 *     LOG_JOB_SAVE_ERROR / LOG_CONN_SAVE_ERROR is emitted (at most one per
 *     NR_DB_REJECT_REPORT_S per type, with the number of rows).  A row that
 *     fails even without ids is given up and counted (db_dropped).
 *   - anything else (a missing table, permissions, out of disk): treated
 *     like an outage, so rows wait instead of being thrown away.
 *
 * Spool (worker.spool_dir; spool.c has the file format).  Rows wait in
 * three places, oldest first: the spool file, the batch this thread took
 * (`held`), the queue.  Order is kept by two rules: rows move to the spool
 * only from the old end of memory (the rest of `held` first, then the
 * queue, taken at once), and memory rows are written only while the spool
 * is empty.  So:
 *   - Whenever the rows in memory pass half of logging.queue_size (the
 *     queue wakes this thread at that mark, also while it waits out a
 *     backoff), they are appended to the spool and fdatasync'd, then
 *     freed.  That happens when PostgreSQL is away or slower than the
 *     emitters; emitters never wait for it.
 *   - While the spool holds rows, chunks are read from its head and
 *     written as above; each chunk leaves the spool (its head moves on)
 *     only after its COMMIT succeeded.  The file is emptied when drained.
 *   - At shutdown, rows still in memory are written if PostgreSQL takes
 *     them and the spool is empty, else spooled; nr_log_init of the next
 *     start takes the file over and this thread writes it first.
 *   - If the spool cannot be written (no folder set, no space, no
 *     permission), rows stay in memory: the queue drops what does not fit
 *     and counts it (db_dropped), SYS_LOG_SPOOL_FAILED says why, and the
 *     spool is tried again after NR_SPOOL_RETRY_S.
 * Counters: a spooled row counts in db_written once its chunk from the
 * spool commits; rows of an earlier run count in db_recovered instead, and
 * nr_log_flush() waits for them too.
 *
 * Exactly once across crashes: before a spool chunk's COMMIT, its
 * transaction id and end offset are written to the spool header and
 * synced; a restart resolves that id with txid_status() before writing
 * the chunk again.  The windows that remain:
 *   - rows still in memory when the process is killed (SIGKILL, power)
 *     are lost; only an orderly shutdown spools them;
 *   - rows appended in the last moments before a crash, before their
 *     fdatasync returned, may be lost (they were in memory only);
 *   - if PostgreSQL can no longer tell the fate of a recorded
 *     transaction (txid_status NULL: older than its commit-log horizon, or
 *     a different database cluster), the rows are written again, and may
 *     then be there twice.
 *
 * The thread's own bookkeeping events never go to the DB sink (that would
 * feed one row per commit back into the next commit), except the row
 * rejection reports, which carry no ids and so cannot be rejected in turn.
 */
#include "log_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "netraven/backoff.h"
#include "netraven/store.h"

#define NR_DB_BACKOFF_MIN_S     0.5
#define NR_DB_BACKOFF_MAX_S     10.0
#define NR_DB_REJECT_REPORT_S   10.0
#define NR_DB_APP_NAME          "netraven-worker-log"
#define NR_DB_SOURCE_MAX        64
#define NR_DB_COPY_PIECE        (128 * 1024)    /* bytes per PQputCopyData */
#define NR_NOT_DB               (~(unsigned)NR_SINK_DB)
#define NR_SPOOL_RETRY_S        10.0    /* after a spool write failed */
#define NR_SPOOL_REPORT_S       10.0    /* SYS_LOG_SPOOLED at most this often */

static const char nr_copy_sql[] =
    "COPY logs (\"timestamp\", log_type, level, job_id, device_id, source, message, meta)"
    " FROM STDIN";
static const char nr_insert_sql[] =
    "INSERT INTO logs (\"timestamp\", log_type, level, job_id, device_id, source, message, meta)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)";

enum db_err { DB_OK = 0, DB_ECONN, DB_EDATA, DB_EOTHER };

/* Row rejections of one chunk, reported after it committed. */
struct reject_note {
    uint64_t  rows;
    long long orig_job_id;
    long long orig_device_id;
    char      error[256];
};

/* The rows of one transaction: records taken from the queue, or rows read
 * from the spool (then spool_end is the offset after the last). */
struct chunk {
    size_t                    n;
    struct nr_log_rec *const *recs;
    const struct nr_log_row  *rows;
    uint64_t                  spool_end;
};

struct db_state {
    struct nr_store *db;            /* NULL: not connected */
    char          *masked;          /* for messages */
    struct nr_backoff bo;           /* the next attempt; said: SYS_DB_UNAVAILABLE
                                       said, not yet back */
    bool           said_connected;  /* SYS_DB_CONNECTED said since the outage */
    bool           held_reported;   /* LOG_JOB_PENDING said for this outage */
    /* COMMIT sent, outcome unknown (0: none): of the first pending_rows
     * rows of `held`, or (pending_spool) of the spool's [head, pending_end) */
    long long      pending_xid;
    size_t         pending_rows;
    bool           pending_spool;
    bool           pending_earlier; /* recorded by an earlier run */
    bool           resolved_earlier; /* the chunk just done was that run's commit */
    /* the batch taken from the queue: held[held_off, held_n) wait */
    struct nr_log_rec **held;
    size_t         held_n;
    size_t         held_off;
    size_t         chunk;           /* logging.db_batch_size */
    size_t         high;            /* spool when more rows than this wait in memory */
    /* spool */
    struct nr_spool *sp;            /* NULL: no spool_dir */
    uint64_t       spool_retry_ns;  /* after a failure, not before this */
    bool           spool_failed;    /* SYS_LOG_SPOOL_FAILED said */
    uint64_t       old_left;        /* rows of an earlier run still in the spool */
    uint64_t       spooled_unreported;
    uint64_t       spool_report_ns;
    uint64_t       drained;         /* spool rows written since it was last empty */
    struct nr_sbuf copy;
    struct nr_ts_cache tc;
    char           last_error[256];
    /* rejection reports: [0] job rows, [1] connection (and other) rows */
    struct reject_note notes[2];
    uint64_t       last_report_ns[2];
    uint64_t       unreported[2];
};

/* -------------------------------------------------------------- helpers */

/* The store's account of the last failure (one line, the password
 * masked), for the events that say why. */
static void keep_error(struct db_state *st)
{
    snprintf(st->last_error, sizeof(st->last_error), "%s", st->db->errstr);
}

static void drop_conn(struct db_state *st)
{
    nr_store_free(st->db);
    st->db = NULL;
}

/* Say once per outage that PostgreSQL is away (the outage ends when a
 * chunk commits, not merely when a connection opens). */
static void report_trouble(struct db_state *st)
{
    char delay[32];

    if (!nr_backoff_say(&st->bo))
        return;
    st->said_connected = false;
    snprintf(delay, sizeof(delay), "%g", nr_backoff_delay(&st->bo));
    nr_log_emit_mask(NR_EV_SYS_DB_UNAVAILABLE, 0, 0,
                     (const struct nr_kv[]){ NR_S("error", st->last_error),
                                             NR_S("delay_s", delay),
                                             NR_S("url", st->masked) },
                     3, NR_NOT_DB, 0);
}

static bool db_connect(struct db_state *st)
{
    st->db = nr_store_connect_as(nr_log_set.db_url, NR_DB_APP_NAME);
    if (st->db->err) {
        keep_error(st);
        drop_conn(st);
        report_trouble(st);
        return false;
    }
    if (!st->said_connected) {
        st->said_connected = true;
        nr_log_emit_mask(NR_EV_SYS_DB_CONNECTED, 0, 0,
                         (const struct nr_kv[]){ NR_S("url", st->masked) }, 1, NR_NOT_DB, 0);
    }
    return true;
}

/* A fault of the store's (NR_STORE_FAULT_NONE: none) as this thread's
 * class; records the error text. */
static enum db_err fault_of(struct db_state *st, enum nr_store_fault f)
{
    if (f == NR_STORE_FAULT_NONE)
        return DB_OK;
    keep_error(st);
    return f == NR_STORE_FAULT_DATA ? DB_EDATA : f == NR_STORE_FAULT_OTHER ? DB_EOTHER : DB_ECONN;
}

/* Classify a failed result (res may be NULL) by the store's rule;
 * records the error text. */
static enum db_err classify(struct db_state *st, PGresult *res)
{
    return fault_of(st, nr_store_fail(st->db, NULL, res));
}

/* Run sql expecting want.  On failure returns its class (the result is
 * cleared); on success *out (if given) takes the result. */
static enum db_err run(struct db_state *st, const char *sql, ExecStatusType want, PGresult **out)
{
    PGresult *res = PQexec(st->db->conn, sql);
    enum db_err e;

    if (res && PQresultStatus(res) == want) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return DB_OK;
    }
    e = classify(st, res);
    PQclear(res);
    return e;
}

/* Roll back what is open; a failure here means the connection is gone. */
static void rollback(struct db_state *st)
{
    PGresult *res;

    if (st->db == NULL)
        return;
    res = PQexec(st->db->conn, "ROLLBACK");
    PQclear(res);
}

/* BEGIN and take the transaction id.  Returns DB_OK and *xid, or a class. */
static enum db_err begin_tx(struct db_state *st, long long *xid)
{
    PGresult *res = NULL;
    enum db_err e = run(st, "BEGIN; SELECT txid_current()", PGRES_TUPLES_OK, &res);

    if (e != DB_OK)
        return e;
    *xid = PQntuples(res) == 1 ? atoll(PQgetvalue(res, 0, 0)) : 0;
    PQclear(res);
    return DB_OK;
}


/* A spool problem, said once until the spool works again. */
static void spool_trouble(struct db_state *st)
{
    if (st->spool_failed)
        return;
    st->spool_failed = true;
    nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_FAILED, 0, 0,
                     (const struct nr_kv[]){ NR_S("error", st->sp ? st->sp->error
                                                          : "no spool folder") },
                     1, NR_NOT_DB, 0);
}

/* COMMIT with the unknown-outcome rule of the file comment; a spool
 * chunk's transaction is recorded in the spool header first. */
static enum db_err commit_tx(struct db_state *st, const struct chunk *c, long long xid)
{
    enum db_err e;

    if (c->rows && nr_spool_mark(st->sp, xid, c->spool_end) < 0)
        spool_trouble(st);      /* goes on: only a crash now could double rows */
    st->pending_xid = xid;
    st->pending_rows = c->n;
    st->pending_spool = c->rows != NULL;
    st->pending_earlier = false;
    e = run(st, "COMMIT", PGRES_COMMAND_OK, NULL);
    if (e != DB_ECONN)
        st->pending_xid = 0;    /* committed, or certainly not */
    return e;
}

/* After a reconnect: did the pending COMMIT go through?  1 yes, 0 no,
 * negative: cannot tell yet (try again later). */
static int resolve_pending(struct db_state *st)
{
    char xid[32];
    const char *params[1] = { xid };
    PGresult *res;
    int rc;

    snprintf(xid, sizeof(xid), "%lld", st->pending_xid);
    res = PQexecParams(st->db->conn, "SELECT txid_status($1::bigint)", 1, NULL, params,
                       NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (classify(st, res) == DB_ECONN) {
            drop_conn(st);
            PQclear(res);
            return NR_EIO;
        }
        /* "in the future": an id of another cluster (the database was
         * replaced since a crash); this one has not got the rows */
        rc = 0;
    } else if (PQgetisnull(res, 0, 0)) {
        rc = 0;
    } else if (strcmp(PQgetvalue(res, 0, 0), "committed") == 0) {
        rc = 1;
    } else if (strcmp(PQgetvalue(res, 0, 0), "in progress") == 0) {
        rc = NR_EIO;    /* the old backend has not noticed yet */
    } else {
        rc = 0;
    }
    PQclear(res);
    if (rc >= 0)
        st->pending_xid = 0;
    return rc;
}

/* ---------------------------------------------------------------- rows */

/* Row i of a chunk; ts is the buffer for a record's timestamp text. */
static void chunk_row(struct db_state *st, const struct chunk *c, size_t i,
                      char ts[NR_ISO_TS_LEN], struct nr_log_row *w)
{
    if (c->recs)
        nr_log_row_of(c->recs[i], &st->tc, ts, w);
    else
        *w = c->rows[i];
}

/* logs.source is varchar(64): at most that many bytes (sources are ASCII). */
static void source_of(const struct nr_log_row *w, char out[NR_DB_SOURCE_MAX + 1])
{
    size_t len = strlen(w->source);

    if (len > NR_DB_SOURCE_MAX)
        len = NR_DB_SOURCE_MAX;
    memcpy(out, w->source, len);
    out[len] = '\0';
}

/* COPY text format: backslash, tab, newline and CR escaped. */
static void copy_field(struct nr_sbuf *b, const char *s)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = NULL;
        switch (*s) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        nr_sbuf_put(b, run, (size_t)(s - run));
        nr_sbuf_put(b, esc, 2);
        run = s + 1;
    }
    nr_sbuf_put(b, run, (size_t)(s - run));
}

static void copy_id(struct nr_sbuf *b, long long id)
{
    if (id == 0) {
        nr_sbuf_put(b, "\\N", 2);
        return;
    }
    nr_sbuf_reserve(b, 24);
    b->len += nr_fmt_ll(b->p + b->len, id);
}

static void copy_row(struct nr_sbuf *b, const struct nr_log_row *w)
{
    char source[NR_DB_SOURCE_MAX + 1];

    source_of(w, source);
    nr_sbuf_puts(b, w->ts);
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, w->log_type);
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, w->level);
    nr_sbuf_putc(b, '\t');
    copy_id(b, w->job_id);
    nr_sbuf_putc(b, '\t');
    copy_id(b, w->device_id);
    nr_sbuf_putc(b, '\t');
    copy_field(b, source);
    nr_sbuf_putc(b, '\t');
    copy_field(b, w->message);
    nr_sbuf_putc(b, '\t');
    copy_field(b, w->meta);
    nr_sbuf_putc(b, '\n');
}

/* One COPY of the chunk inside the open transaction. */
static enum db_err copy_chunk(struct db_state *st, const struct chunk *c)
{
    enum db_err e = fault_of(st, nr_store_copy_begin(st->db, nr_copy_sql));

    if (e != DB_OK)
        return e;
    /* Sent in pieces as it is built, so the server works on the first
     * rows while this thread formats the next ones. */
    nr_sbuf_reset(&st->copy);
    for (size_t i = 0; i <= c->n; i++) {
        if (i < c->n) {
            struct nr_log_row w;
            char ts[NR_ISO_TS_LEN];

            chunk_row(st, c, i, ts, &w);
            copy_row(&st->copy, &w);
        }
        if ((i == c->n && st->copy.len > 0) || st->copy.len >= NR_DB_COPY_PIECE) {
            e = fault_of(st, nr_store_copy_put(st->db, st->copy.p, st->copy.len));
            if (e != DB_OK)
                return e;
            nr_sbuf_reset(&st->copy);
        }
    }
    return fault_of(st, nr_store_copy_end(st->db));
}

/* meta with orig_job_id / orig_device_id added (malloc'd). */
static char *meta_with_orig(const char *meta, long long job, long long dev)
{
    json_t *o = json_loads(meta, 0, NULL);
    char *s;

    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    if (job)
        json_object_set_new(o, "orig_job_id", json_integer(job));
    if (dev)
        json_object_set_new(o, "orig_device_id", json_integer(dev));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s ? s : nr_strdup("{}");
}

/* INSERT one row under a savepoint, nulling ids the database rejects.
 * Returns DB_OK (written, maybe without ids), DB_EDATA (given up), or a
 * connection/other class (the transaction is lost). */
static enum db_err insert_row(struct db_state *st, const struct nr_log_row *w,
                              struct reject_note *note, bool *nulled)
{
    long long job = w->job_id, dev = w->device_id;
    char jobs[24], devs[24], source[NR_DB_SOURCE_MAX + 1];
    char *meta = NULL;
    enum db_err e;

    *nulled = false;
    nr_fmt_ll(jobs, w->job_id);
    nr_fmt_ll(devs, w->device_id);
    source_of(w, source);
    if ((e = run(st, "SAVEPOINT nr_row", PGRES_COMMAND_OK, NULL)) != DB_OK)
        return e;
    for (;;) {
        const char *params[8] = { w->ts, w->log_type, w->level, job ? jobs : NULL,
                                  dev ? devs : NULL, source, w->message,
                                  meta ? meta : w->meta };
        PGresult *res = PQexecParams(st->db->conn, nr_insert_sql, 8, NULL, params,
                                     NULL, NULL, 0);
        const char *state, *cname;
        bool fk, hopeless = false;

        if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            e = run(st, "RELEASE SAVEPOINT nr_row", PGRES_COMMAND_OK, NULL);
            break;
        }
        e = classify(st, res);
        if (e != DB_EDATA) {
            PQclear(res);
            break;
        }
        snprintf(note->error, sizeof(note->error), "%s", st->last_error);
        /* A foreign key names the id to drop; otherwise drop both. */
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        cname = PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME);
        fk = state && strcmp(state, "23503") == 0 && cname;
        if (fk && strstr(cname, "device") && dev)
            dev = 0;
        else if (fk && strstr(cname, "job") && job)
            job = 0;
        else if (job || dev)
            job = dev = 0;
        else
            hopeless = true;    /* no id left to drop */
        PQclear(res);
        if (run(st, "ROLLBACK TO SAVEPOINT nr_row", PGRES_COMMAND_OK, NULL) != DB_OK) {
            e = DB_ECONN;
            break;
        }
        if (hopeless)
            break;      /* give the row up: e stays DB_EDATA */
        free(meta);
        meta = meta_with_orig(w->meta, job ? 0 : w->job_id, dev ? 0 : w->device_id);
        *nulled = true;
    }
    free(meta);
    return e;
}

/* The chunk again, row by row, in one transaction. */
static enum db_err rows_chunk(struct db_state *st, const struct chunk *c, size_t *given_up)
{
    struct reject_note notes[2];
    long long xid = 0;
    enum db_err e;

    memset(notes, 0, sizeof(notes));
    *given_up = 0;
    if ((e = begin_tx(st, &xid)) != DB_OK)
        return e;
    for (size_t i = 0; i < c->n; i++) {
        struct nr_log_row w;
        char ts[NR_ISO_TS_LEN];
        bool nulled;
        int k;

        chunk_row(st, c, i, ts, &w);
        k = strcmp(w.log_type, "job") == 0 ? 0 : 1;
        e = insert_row(st, &w, &notes[k], &nulled);
        if (e != DB_OK && e != DB_EDATA) {
            rollback(st);
            return e;
        }
        if (e == DB_EDATA)
            (*given_up)++;
        if (e == DB_EDATA || nulled) {
            if (notes[k].rows == 0) {
                notes[k].orig_job_id = w.job_id;
                notes[k].orig_device_id = w.device_id;
            }
            notes[k].rows++;
        }
    }
    e = commit_tx(st, c, xid);
    if (e != DB_OK)
        return e == DB_EDATA ? DB_EOTHER : e;
    for (int k = 0; k < 2; k++) {
        if (notes[k].rows == 0)
            continue;
        if (st->notes[k].rows == 0)
            st->notes[k] = notes[k];
        else
            st->notes[k].rows += notes[k].rows;
    }
    return DB_OK;
}

/* Report row rejections, at most once per NR_DB_REJECT_REPORT_S per type.
 * The last report (final, at exit) cannot go to the DB sink any more. */
static void report_rejects(struct db_state *st, bool final)
{
    static const enum nr_event ev[2] = { NR_EV_LOG_JOB_SAVE_ERROR, NR_EV_LOG_CONN_SAVE_ERROR };
    uint64_t now = nr_mono_ns();

    for (int k = 0; k < 2; k++) {
        struct reject_note *n = &st->notes[k];
        if (n->rows == 0)
            continue;
        if (!final && st->last_report_ns[k] &&
            now - st->last_report_ns[k] < (uint64_t)(NR_DB_REJECT_REPORT_S * 1e9))
            continue;
        nr_log_emit_mask(ev[k], 0, 0,
                         (const struct nr_kv[]){ NR_S("error", n->error),
                                                 NR_I("rows", n->rows),
                                                 NR_I("orig_job_id", n->orig_job_id),
                                                 NR_I("orig_device_id", n->orig_device_id) },
                         4, final ? NR_NOT_DB : ~0u, 0);
        st->last_report_ns[k] = now;
        memset(n, 0, sizeof(*n));
    }
}

/* ---------------------------------------------------------------- chunks */

/* Write one chunk exactly once.  DB_OK when its rows are committed (or
 * given up one by one: *given_up); otherwise the chunk must be retried
 * with the same rows. */
static enum db_err write_chunk(struct db_state *st, const struct chunk *c, size_t *given_up)
{
    long long xid = 0;
    enum db_err e;

    *given_up = 0;
    st->resolved_earlier = false;
    if (st->db == NULL && !db_connect(st))
        return DB_ECONN;
    if (st->pending_xid) {
        int rc = resolve_pending(st);
        if (rc < 0)
            return DB_ECONN;
        st->resolved_earlier = rc == 1 && st->pending_earlier;
        st->pending_earlier = false;
        if (rc == 1)
            return DB_OK;       /* these very rows went in before */
    }

    e = begin_tx(st, &xid);
    if (e == DB_OK)
        e = copy_chunk(st, c);
    if (e == DB_OK) {
        e = commit_tx(st, c, xid);
        if (e == DB_OK) {
            nr_log_emit_mask(NR_EV_LOG_JOB_COMMITTED, 0, 0,
                             (const struct nr_kv[]){ NR_I("rows", c->n) }, 1, NR_NOT_DB, 0);
            return DB_OK;
        }
        if (e == DB_EDATA)      /* a deferred check failed at COMMIT */
            nr_log_emit_mask(NR_EV_LOG_JOB_COMMIT_ERROR, 0, 0,
                             (const struct nr_kv[]){ NR_S("error", st->last_error) },
                             1, NR_NOT_DB, 0);
    } else if (e != DB_ECONN) {
        rollback(st);
    }
    if (e == DB_EDATA) {
        e = rows_chunk(st, c, given_up);
        if (e == DB_OK) {
            report_rejects(st, false);
            return DB_OK;
        }
    }
    if (e == DB_ECONN || st->db == NULL || !nr_store_ok(st->db)) {
        drop_conn(st);
    } else {
        /* Not the rows' fault: start over on a fresh connection. */
        rollback(st);
        drop_conn(st);
    }
    report_trouble(st);
    return e;
}

/* ---------------------------------------------------------------- memory */

static size_t held_left(const struct db_state *st)
{
    return st->held_n - st->held_off;
}

static uint64_t spool_rows(const struct db_state *st)
{
    return st->sp ? st->sp->rows : 0;
}

static void spool_gauge(const struct db_state *st)
{
    atomic_store(&nr_log_db_spooled, spool_rows(st));
}

/* The first n held records are finished (written or given up). */
static void held_finish(struct db_state *st, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nr_log_rec_unref(st->held[st->held_off + i]);
    st->held_off += n;
    nr_logq_done(&nr_log_q_db, n);
}

/* Take what the queue holds; the held batch must be finished.  With
 * timeout_s < 0 this waits for records or stop. */
static size_t held_take(struct db_state *st, double timeout_s)
{
    st->held_n = nr_logq_take(&nr_log_q_db, &st->held, timeout_s);
    st->held_off = 0;
    return st->held_n;
}

/* Give up on the rest of the held batch, counted and said. */
static void held_give_up(struct db_state *st)
{
    size_t n = held_left(st);

    if (n == 0)
        return;
    atomic_fetch_add(&nr_log_db_lost, n);
    nr_log_emit_mask(NR_EV_SYS_LOG_DROPPED, 0, 0,
                     (const struct nr_kv[]){ NR_I("count", n), NR_S("sink", "db") },
                     2, NR_NOT_DB, 0);
    held_finish(st, n);
}

/* A chunk is in (or given up row by row): count it and let it go. */
static void chunk_finished(struct db_state *st, const struct chunk *c, size_t given_up)
{
    size_t ok = c->n - given_up;
    uint64_t old, old_ok;

    atomic_fetch_add(&nr_log_db_lost, given_up);
    if (c->recs) {
        atomic_fetch_add(&nr_log_db_written, ok);
        held_finish(st, c->n);
        return;
    }
    /* the spool's oldest rows are the earlier run's */
    old = c->n < st->old_left ? c->n : st->old_left;
    old_ok = old < ok ? old : ok;
    st->old_left -= old;
    if (!st->resolved_earlier) {    /* else the earlier run wrote them */
        atomic_fetch_add(&nr_log_db_recovered, old_ok);
        atomic_fetch_add(&nr_log_db_written, ok - old_ok);
    }
    if (nr_spool_consume(st->sp, c->spool_end, c->n) < 0)
        spool_trouble(st);
    spool_gauge(st);
    nr_logq_done(&nr_log_q_db, c->n);
    st->drained += c->n;
    if (st->sp->rows == 0) {
        nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_DRAINED, 0, 0,
                         (const struct nr_kv[]){ NR_S("path", st->sp->path),
                                                 NR_I("rows", st->drained) },
                         2, NR_NOT_DB, 0);
        st->drained = 0;
    }
}

/* ---------------------------------------------------------------- spool */

static bool spool_usable(const struct db_state *st)
{
    return st->sp && st->sp->dir && nr_mono_ns() >= st->spool_retry_ns;
}

static void spool_failed(struct db_state *st)
{
    spool_trouble(st);
    st->spool_retry_ns = nr_mono_ns() + (uint64_t)(NR_SPOOL_RETRY_S * 1e9);
}

static void report_spooled(struct db_state *st, bool now)
{
    uint64_t t = nr_mono_ns();

    if (st->spooled_unreported == 0 ||
        (!now && st->spool_report_ns &&
         t - st->spool_report_ns < (uint64_t)(NR_SPOOL_REPORT_S * 1e9)))
        return;
    nr_log_emit_mask(NR_EV_SYS_LOG_SPOOLED, 0, 0,
                     (const struct nr_kv[]){ NR_I("rows", st->spooled_unreported),
                                             NR_S("path", st->sp->path),
                                             NR_I("waiting", st->sp->rows) },
                     3, NR_NOT_DB, 0);
    st->spooled_unreported = 0;
    st->spool_report_ns = t;
}

/* The rest of the held batch to the spool, after the rows already there.
 * They are not finished (nr_logq_done) until they are committed from it.
 * Returns false when the spool cannot take them (they stay held). */
static bool spool_held(struct db_state *st)
{
    struct nr_log_rec **r = st->held + st->held_off;
    size_t n = held_left(st), k = 0;

    if (n == 0)
        return true;
    if (st->pending_xid && !st->pending_spool && st->sp->rows == 0) {
        /* The first rows are the chunk whose COMMIT is unknown.  The spool
         * is empty (memory rows are written only then), so they become its
         * head, and the spool takes the transaction over. */
        k = st->pending_rows < n ? st->pending_rows : n;
        if (nr_spool_append(st->sp, r, k, &st->tc) < 0) {
            spool_failed(st);
            return false;
        }
        if (nr_spool_mark(st->sp, st->pending_xid, st->sp->tail) < 0)
            spool_trouble(st);
        st->pending_spool = true;
        for (size_t i = 0; i < k; i++)
            nr_log_rec_unref(r[i]);
        st->held_off += k;
        st->spooled_unreported += k;
    }
    if (nr_spool_append(st->sp, r + k, n - k, &st->tc) < 0) {
        spool_gauge(st);
        spool_failed(st);
        return false;
    }
    for (size_t i = k; i < n; i++)
        nr_log_rec_unref(r[i]);
    st->held_off = st->held_n;
    st->spooled_unreported += n - k;
    st->spool_failed = false;
    spool_gauge(st);
    return true;
}

/* Memory to the spool, oldest first: the held batch, then the queue. */
static bool spool_memory(struct db_state *st)
{
    if (!spool_held(st))
        return false;
    if (held_take(st, 0) == 0)
        return true;
    return spool_held(st);
}

/* Spool when more rows wait in memory than the high-water mark. */
static void maybe_spool(struct db_state *st)
{
    if (!spool_usable(st) || held_left(st) + nr_logq_len(&nr_log_q_db) <= st->high)
        return;
    spool_memory(st);
}

/* The spool's data cannot be read back: its rows are lost, counted. */
static void spool_damaged(struct db_state *st)
{
    uint64_t lost = st->sp->rows;

    nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_DAMAGED, 0, 0,
                     (const struct nr_kv[]){ NR_S("error", st->sp->error), NR_I("rows", lost) },
                     2, NR_NOT_DB, 0);
    atomic_fetch_add(&nr_log_db_lost, lost);
    nr_logq_done(&nr_log_q_db, lost);
    st->old_left = 0;
    if (st->pending_spool) {
        st->pending_xid = 0;
        st->pending_earlier = false;
    }
    nr_spool_discard(st->sp);
    spool_gauge(st);
}

/* ---------------------------------------------------------------- steps */

/* Write the oldest chunk: from the spool while it has rows, else from the
 * held batch. */
static enum db_err step(struct db_state *st)
{
    struct chunk c = { 0 };
    size_t given_up = 0;
    enum db_err e;

    if (spool_rows(st) > 0) {
        uint64_t limit = st->pending_xid && st->pending_spool ? st->sp->pending_end : 0;
        int rc;

        report_spooled(st, true);       /* what moved there, before it leaves */
        rc = nr_spool_read(st->sp, st->chunk, limit, &c.rows, &c.n, &c.spool_end);

        if (rc == NR_EINVAL && limit) {
            /* the recorded commit does not end on a row: forget it, and
             * read the rows as they are */
            st->pending_xid = 0;
            st->pending_earlier = false;
            return DB_EOTHER;
        }
        if (rc == NR_EINVAL || (rc == 0 && c.n == 0)) {
            spool_damaged(st);
            return DB_OK;
        }
        if (rc < 0) {
            spool_trouble(st);
            return DB_EOTHER;
        }
    } else {
        c.n = held_left(st);
        if (c.n == 0)
            return DB_OK;
        if (st->pending_xid && !st->pending_spool && st->pending_rows < c.n)
            c.n = st->pending_rows;         /* the same rows as last time */
        else if (c.n > st->chunk)
            c.n = st->chunk;
        c.recs = st->held + st->held_off;
    }
    e = write_chunk(st, &c, &given_up);
    if (e == DB_OK)
        chunk_finished(st, &c, given_up);
    return e;
}

/* Stopping: write what memory still holds when PostgreSQL takes it and
 * the spool is empty; otherwise spool it for the next start; give up (and
 * count) only what neither takes. */
static void finish(struct db_state *st)
{
    for (;;) {
        if (held_left(st) == 0 && held_take(st, 0) == 0)
            break;
        while (held_left(st) > 0 && spool_rows(st) == 0 && !st->bo.said) {
            if (step(st) != DB_OK)
                break;
        }
        if (held_left(st) == 0)
            continue;
        if (st->sp && st->sp->dir && spool_held(st))
            continue;
        held_give_up(st);
    }
    if (st->sp && st->sp->dir) {
        report_spooled(st, true);
        if (st->sp->rows > 0)
            nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_KEPT, 0, 0,
                             (const struct nr_kv[]){ NR_I("rows", st->sp->rows),
                                                     NR_S("path", st->sp->path) },
                             2, NR_NOT_DB, 0);
    }
}

/* What nr_log_init found in the spool. */
static void spool_start(struct db_state *st)
{
    if (st->sp->error[0])
        spool_failed(st);
    if (st->sp->cut) {
        char what[160];
        snprintf(what, sizeof(what), "%s: %llu bytes at its end were not whole records "
                 "(cut off)", st->sp->path, (unsigned long long)st->sp->cut);
        nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_DAMAGED, 0, 0,
                         (const struct nr_kv[]){ NR_S("error", what), NR_I("rows", 0) },
                         2, NR_NOT_DB, 0);
    }
    if (st->sp->rows == 0)
        return;
    st->old_left = st->sp->rows;
    nr_log_emit_mask(NR_EV_SYS_LOG_SPOOL_FOUND, 0, 0,
                     (const struct nr_kv[]){ NR_I("rows", st->sp->rows),
                                             NR_S("path", st->sp->path) },
                     2, NR_NOT_DB, 0);
    if (st->sp->pending_xid) {
        st->pending_xid = st->sp->pending_xid;
        st->pending_spool = true;
        st->pending_earlier = true;
    }
}

void *nr_log_db_main(void *arg)
{
    struct db_state st;

    (void)arg;
    nr_log_block_signals();
    memset(&st, 0, sizeof(st));
    st.masked = nr_config_mask_url(nr_log_set.db_url);
    nr_backoff_init(&st.bo, NR_DB_BACKOFF_MIN_S, NR_DB_BACKOFF_MAX_S);
    st.chunk = (size_t)nr_log_set.db_batch_size;
    st.high = nr_log_q_db.cap / 2 > 0 ? nr_log_q_db.cap / 2 : 1;
    st.sp = nr_log_spool.dir ? &nr_log_spool : NULL;
    if (st.sp)
        spool_start(&st);

    for (;;) {
        if (nr_logq_stopping(&nr_log_q_db))
            break;
        if (held_left(&st) == 0 && spool_rows(&st) == 0) {
            held_take(&st, -1);             /* records, or stop */
            continue;
        }
        maybe_spool(&st);
        report_spooled(&st, false);
        if (!nr_backoff_due(&st.bo)) {
            /* wait out the backoff, but spool if memory fills meanwhile */
            size_t high = 0;
            if (spool_usable(&st))
                high = st.high >= held_left(&st) ? st.high - held_left(&st) + 1 : 1;
            nr_logq_nap(&nr_log_q_db, nr_backoff_left(&st.bo), high);
            continue;
        }
        if (step(&st) == DB_OK) {
            nr_backoff_ok(&st.bo);
            st.held_reported = false;
        } else {
            if (!st.held_reported) {
                st.held_reported = true;
                nr_log_emit_mask(NR_EV_LOG_JOB_PENDING, 0, 0,
                                 (const struct nr_kv[]){ NR_I("rows", held_left(&st) +
                                                                      spool_rows(&st)) },
                                 1, NR_NOT_DB, 0);
            }
            nr_backoff_fail(&st.bo);
        }
        report_rejects(&st, false);
    }
    finish(&st);

    report_rejects(&st, true);
    if (st.db) {
        drop_conn(&st);
        nr_log_emit_mask(NR_EV_LOG_SESSION_CLOSED, 0, 0, NULL, 0, NR_NOT_DB, 0);
    }
    nr_sbuf_free(&st.copy);
    free(st.masked);
    return NULL;
}
