/*
 * sink_db.c - the "db" thread: job and connection records into the logs
 * table (CONTRACT 1 and 3).
 *
 * The thread owns one libpq connection, made lazily from database.url
 * (driver suffix removed by nr_config_libpq_url).  It takes every queued
 * record at once and writes them in chunks of logging.db_batch_size rows,
 * one transaction per chunk:
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
 * Errors, by SQLSTATE class:
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
 * While PostgreSQL is away the emitters are never held up: records pile up
 * in the bounded queue, and what does not fit is dropped and counted.  On
 * shutdown, rows that still cannot be written are counted as dropped.
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

#define NR_DB_BACKOFF_MIN_S     0.5
#define NR_DB_BACKOFF_MAX_S     10.0
#define NR_DB_REJECT_REPORT_S   10.0
#define NR_DB_CONNECT_TIMEOUT   "5"
#define NR_DB_SOURCE_MAX        64
#define NR_DB_COPY_PIECE        (128 * 1024)    /* bytes per PQputCopyData */
#define NR_NOT_DB               (~(unsigned)NR_SINK_DB)

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

struct db_state {
    PGconn        *pg;
    char          *conninfo;        /* libpq form of database.url (secret) */
    char          *masked;          /* for messages */
    double         backoff;
    bool           outage;          /* SYS_DB_UNAVAILABLE said, not yet back */
    bool           said_connected;  /* SYS_DB_CONNECTED said since the outage */
    bool           held_reported;   /* LOG_JOB_PENDING said for this outage */
    long long      pending_xid;     /* COMMIT sent, outcome unknown; 0: none */
    struct nr_sbuf copy;
    struct nr_ts_cache tc;
    char           last_error[256];
    /* rejection reports: [0] job rows, [1] connection (and other) rows */
    struct reject_note notes[2];
    uint64_t       last_report_ns[2];
    uint64_t       unreported[2];
};

/* -------------------------------------------------------------- helpers */

/* Keep msg as one line: runs of white space (libpq's messages carry
 * newlines and tabs) become one space, the ends are trimmed. */
static void set_error(struct db_state *st, const char *msg)
{
    char *o = st->last_error, *end = st->last_error + sizeof(st->last_error) - 1;
    bool space = false;

    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    while (*msg == ' ' || *msg == '\t' || *msg == '\n' || *msg == '\r')
        msg++;
    for (; *msg && o < end; msg++) {
        if (*msg == ' ' || *msg == '\t' || *msg == '\n' || *msg == '\r') {
            space = true;
            continue;
        }
        if (space && o < end - 1)
            *o++ = ' ';
        space = false;
        *o++ = *msg;
    }
    *o = '\0';
}

/* The error of a result without libpq's "ERROR:  " layout: the primary
 * message, and the detail when there is one. */
static void set_result_error(struct db_state *st, const PGresult *res)
{
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    char buf[512];

    if (primary == NULL) {
        set_error(st, PQresultErrorMessage(res));
        return;
    }
    snprintf(buf, sizeof(buf), "%s%s%s", primary, detail ? ": " : "", detail ? detail : "");
    set_error(st, buf);
}

static void drop_conn(struct db_state *st)
{
    PQfinish(st->pg);
    st->pg = NULL;
}

/* Say once per outage that PostgreSQL is away (the outage ends when a
 * chunk commits, not merely when a connection opens). */
static void report_trouble(struct db_state *st)
{
    char delay[32];

    if (st->outage)
        return;
    st->outage = true;
    st->said_connected = false;
    snprintf(delay, sizeof(delay), "%g", st->backoff);
    nr_log_emit_mask(NR_EV_SYS_DB_UNAVAILABLE, 0, 0,
                     (const struct nr_kv[]){ NR_S("error", st->last_error),
                                             NR_S("delay_s", delay),
                                             NR_S("url", st->masked) },
                     3, NR_NOT_DB, 0);
}

static bool db_connect(struct db_state *st)
{
    const char *kw[]  = { "dbname", "connect_timeout", "application_name",
                          "client_encoding", NULL };
    const char *val[] = { st->conninfo, NR_DB_CONNECT_TIMEOUT, "netraven-worker-log",
                          "UTF8", NULL };

    st->pg = PQconnectdbParams(kw, val, 1);
    if (st->pg == NULL || PQstatus(st->pg) != CONNECTION_OK) {
        set_error(st, st->pg ? PQerrorMessage(st->pg) : "out of memory");
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

/* Classify a failed result (res may be NULL); records the error text. */
static enum db_err classify(struct db_state *st, PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
        set_result_error(st, res);
    else
        set_error(st, PQerrorMessage(st->pg));
    if (PQstatus(st->pg) == CONNECTION_BAD || state == NULL ||
        strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0)
        return DB_ECONN;
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
        return DB_EDATA;
    return DB_EOTHER;
}

/* Run sql expecting want.  On failure returns its class (the result is
 * cleared); on success *out (if given) takes the result. */
static enum db_err run(struct db_state *st, const char *sql, ExecStatusType want, PGresult **out)
{
    PGresult *res = PQexec(st->pg, sql);
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

    if (st->pg == NULL)
        return;
    res = PQexec(st->pg, "ROLLBACK");
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

/* COMMIT with the unknown-outcome rule of the file comment. */
static enum db_err commit_tx(struct db_state *st, long long xid)
{
    enum db_err e;

    st->pending_xid = xid;
    e = run(st, "COMMIT", PGRES_COMMAND_OK, NULL);
    if (e != DB_ECONN)
        st->pending_xid = 0;    /* committed, or certainly not */
    return e;
}

/* After a reconnect: did the chunk's COMMIT go through?  1 yes, 0 no,
 * negative: cannot tell yet (try again later). */
static int resolve_pending(struct db_state *st)
{
    char xid[32];
    const char *params[1] = { xid };
    PGresult *res;
    int rc;

    snprintf(xid, sizeof(xid), "%lld", st->pending_xid);
    res = PQexecParams(st->pg, "SELECT txid_status($1::bigint)", 1, NULL, params,
                       NULL, NULL, 0);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (classify(st, res) == DB_ECONN)
            drop_conn(st);
        PQclear(res);
        return NR_EIO;
    }
    if (PQgetisnull(res, 0, 0))
        rc = 0;
    else if (strcmp(PQgetvalue(res, 0, 0), "committed") == 0)
        rc = 1;
    else if (strcmp(PQgetvalue(res, 0, 0), "in progress") == 0)
        rc = NR_EIO;    /* the old backend has not noticed yet */
    else
        rc = 0;
    PQclear(res);
    if (rc >= 0)
        st->pending_xid = 0;
    return rc;
}

/* ---------------------------------------------------------------- rows */

struct row {
    char        ts[NR_ISO_TS_LEN];
    const char *log_type;
    const char *level;
    char        job[24];
    char        dev[24];
    char        source[NR_DB_SOURCE_MAX + 1];
    const char *message;
    const char *meta;
};

static void row_fill(struct db_state *st, struct row *w, const struct nr_log_rec *r)
{
    const struct nr_event_def *e = &nr_events[r->ev];
    size_t slen = e->source ? strlen(e->source) : 0;

    nr_ts_format(&st->tc, &r->ts, w->ts);
    w->log_type = nr_log_type_name(e->type);
    w->level = nr_log_level_name(e->level);
    nr_fmt_ll(w->job, r->job_id);
    nr_fmt_ll(w->dev, r->device_id);
    if (slen > NR_DB_SOURCE_MAX)            /* logs.source is varchar(64) */
        slen = NR_DB_SOURCE_MAX;
    memcpy(w->source, e->source ? e->source : "", slen);
    w->source[slen] = '\0';
    w->message = r->msg;
    w->meta = r->meta;
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

static void copy_row(struct db_state *st, struct nr_sbuf *b, const struct nr_log_rec *r)
{
    struct row w;

    row_fill(st, &w, r);
    nr_sbuf_reserve(b, 128 + r->msg_len + r->meta_len);
    nr_sbuf_puts(b, w.ts);
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, w.log_type);
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, w.level);
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, r->job_id ? w.job : "\\N");
    nr_sbuf_putc(b, '\t');
    nr_sbuf_puts(b, r->device_id ? w.dev : "\\N");
    nr_sbuf_putc(b, '\t');
    copy_field(b, w.source);
    nr_sbuf_putc(b, '\t');
    copy_field(b, w.message);
    nr_sbuf_putc(b, '\t');
    copy_field(b, w.meta);
    nr_sbuf_putc(b, '\n');
}

/* One COPY of the chunk inside the open transaction. */
static enum db_err copy_chunk(struct db_state *st, struct nr_log_rec **recs, size_t n)
{
    enum db_err e = run(st, nr_copy_sql, PGRES_COPY_IN, NULL);
    PGresult *res;

    if (e != DB_OK)
        return e;
    /* Sent in pieces as it is built, so the server works on the first
     * rows while this thread formats the next ones. */
    nr_sbuf_reset(&st->copy);
    for (size_t i = 0; i <= n; i++) {
        if (i < n)
            copy_row(st, &st->copy, recs[i]);
        if ((i == n && st->copy.len > 0) || st->copy.len >= NR_DB_COPY_PIECE) {
            if (PQputCopyData(st->pg, st->copy.p, (int)st->copy.len) != 1) {
                set_error(st, PQerrorMessage(st->pg));
                return DB_ECONN;
            }
            nr_sbuf_reset(&st->copy);
        }
    }
    if (PQputCopyEnd(st->pg, NULL) != 1) {
        set_error(st, PQerrorMessage(st->pg));
        return DB_ECONN;
    }
    e = DB_OK;
    while ((res = PQgetResult(st->pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && e == DB_OK)
            e = classify(st, res);
        PQclear(res);
    }
    if (e == DB_OK && PQstatus(st->pg) == CONNECTION_BAD) {
        set_error(st, PQerrorMessage(st->pg));
        e = DB_ECONN;
    }
    return e;
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
static enum db_err insert_row(struct db_state *st, const struct nr_log_rec *r,
                              struct reject_note *note, bool *nulled)
{
    struct row w;
    long long job = r->job_id, dev = r->device_id;
    char *meta = NULL;
    enum db_err e;

    *nulled = false;
    row_fill(st, &w, r);
    if ((e = run(st, "SAVEPOINT nr_row", PGRES_COMMAND_OK, NULL)) != DB_OK)
        return e;
    for (;;) {
        const char *params[8] = { w.ts, w.log_type, w.level, job ? w.job : NULL,
                                  dev ? w.dev : NULL, w.source, w.message,
                                  meta ? meta : w.meta };
        PGresult *res = PQexecParams(st->pg, nr_insert_sql, 8, NULL, params, NULL, NULL, 0);
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
        meta = meta_with_orig(r->meta, job ? 0 : r->job_id, dev ? 0 : r->device_id);
        *nulled = true;
    }
    free(meta);
    return e;
}

/* The chunk again, row by row, in one transaction. */
static enum db_err rows_chunk(struct db_state *st, struct nr_log_rec **recs, size_t n,
                              size_t *given_up)
{
    struct reject_note notes[2];
    long long xid = 0;
    enum db_err e;

    memset(notes, 0, sizeof(notes));
    *given_up = 0;
    if ((e = begin_tx(st, &xid)) != DB_OK)
        return e;
    for (size_t i = 0; i < n; i++) {
        int k = nr_events[recs[i]->ev].type == NR_LOG_JOB ? 0 : 1;
        bool nulled;

        e = insert_row(st, recs[i], &notes[k], &nulled);
        if (e != DB_OK && e != DB_EDATA) {
            rollback(st);
            return e;
        }
        if (e == DB_EDATA)
            (*given_up)++;
        if (e == DB_EDATA || nulled) {
            if (notes[k].rows == 0) {
                notes[k].orig_job_id = recs[i]->job_id;
                notes[k].orig_device_id = recs[i]->device_id;
            }
            notes[k].rows++;
        }
    }
    e = commit_tx(st, xid);
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
 * given up one by one, counted); otherwise the chunk must be retried. */
static enum db_err write_chunk(struct db_state *st, struct nr_log_rec **recs, size_t n)
{
    long long xid = 0;
    size_t given_up = 0;
    enum db_err e;

    if (st->pg == NULL && !db_connect(st))
        return DB_ECONN;
    if (st->pending_xid) {
        int rc = resolve_pending(st);
        if (rc < 0)
            return DB_ECONN;
        if (rc == 1) {
            atomic_fetch_add(&nr_log_db_written, n);
            return DB_OK;
        }
    }

    e = begin_tx(st, &xid);
    if (e == DB_OK)
        e = copy_chunk(st, recs, n);
    if (e == DB_OK) {
        e = commit_tx(st, xid);
        if (e == DB_OK) {
            atomic_fetch_add(&nr_log_db_written, n);
            nr_log_emit_mask(NR_EV_LOG_JOB_COMMITTED, 0, 0,
                             (const struct nr_kv[]){ NR_I("rows", n) }, 1, NR_NOT_DB, 0);
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
        e = rows_chunk(st, recs, n, &given_up);
        if (e == DB_OK) {
            atomic_fetch_add(&nr_log_db_written, n - given_up);
            atomic_fetch_add(&nr_log_db_lost, given_up);
            report_rejects(st, false);
            return DB_OK;
        }
    }
    if (e == DB_ECONN || st->pg == NULL || PQstatus(st->pg) == CONNECTION_BAD) {
        drop_conn(st);
    } else {
        /* Not the rows' fault: start over on a fresh connection. */
        rollback(st);
        drop_conn(st);
    }
    report_trouble(st);
    return e;
}

static void give_up(struct nr_log_rec **recs, size_t n)
{
    if (n == 0)
        return;
    atomic_fetch_add(&nr_log_db_lost, n);
    nr_log_emit_mask(NR_EV_SYS_LOG_DROPPED, 0, 0,
                     (const struct nr_kv[]){ NR_I("count", n), NR_S("sink", "db") },
                     2, NR_NOT_DB, 0);
    for (size_t i = 0; i < n; i++)
        nr_log_rec_unref(recs[i]);
    nr_logq_done(&nr_log_q_db, n);
}

void *nr_log_db_main(void *arg)
{
    struct db_state st;
    struct nr_log_rec **batch;
    size_t chunk = (size_t)nr_log_set.db_batch_size;

    (void)arg;
    nr_log_block_signals();
    memset(&st, 0, sizeof(st));
    st.conninfo = nr_config_libpq_url(nr_log_set.db_url);
    st.masked = nr_config_mask_url(nr_log_set.db_url);
    st.backoff = NR_DB_BACKOFF_MIN_S;

    for (;;) {
        size_t n = nr_logq_take(&nr_log_q_db, &batch, -1);
        size_t off = 0;

        if (n == 0)
            break;      /* stopping, and nothing left */
        while (off < n) {
            size_t k = n - off < chunk ? n - off : chunk;

            if (st.outage && st.pg == NULL && nr_logq_stopping(&nr_log_q_db)) {
                give_up(batch + off, n - off);      /* no server, no more time */
                break;
            }
            if (write_chunk(&st, batch + off, k) == DB_OK) {
                for (size_t i = 0; i < k; i++)
                    nr_log_rec_unref(batch[off + i]);
                nr_logq_done(&nr_log_q_db, k);
                off += k;
                st.backoff = NR_DB_BACKOFF_MIN_S;
                st.outage = false;
                st.held_reported = false;
                continue;
            }
            if (!st.held_reported) {
                st.held_reported = true;
                nr_log_emit_mask(NR_EV_LOG_JOB_PENDING, 0, 0,
                                 (const struct nr_kv[]){ NR_I("rows", n - off) },
                                 1, NR_NOT_DB, 0);
            }
            if (nr_logq_sleep(&nr_log_q_db, st.backoff)) {
                give_up(batch + off, n - off);
                break;
            }
            st.backoff = st.backoff * 2 > NR_DB_BACKOFF_MAX_S ? NR_DB_BACKOFF_MAX_S
                                                             : st.backoff * 2;
        }
        report_rejects(&st, false);
    }

    report_rejects(&st, true);
    if (st.pg) {
        drop_conn(&st);
        nr_log_emit_mask(NR_EV_LOG_SESSION_CLOSED, 0, 0, NULL, 0, NR_NOT_DB, 0);
    }
    nr_sbuf_free(&st.copy);
    free(st.conninfo);
    free(st.masked);
    return NULL;
}
