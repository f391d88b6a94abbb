/*
 * store.c - the libpq connection and the typed queries of store.h.
 *
 * Every value goes to the server as a PQexecParams parameter, never pasted
 * into SQL text.  Ids go as text and are compared as bigint ($1::bigint),
 * so an id out of int4 range is simply "not found" rather than an error.
 *
 * Errors: a statement that fails sets err = NR_ERR and errstr from the
 * server's message; a connection that is gone (PQstatus CONNECTION_BAD)
 * sets err = NR_EIO, and every call fails with NR_EIO until
 * nr_store_reset() reconnects.  A successful call clears err.
 */
#include "netraven/store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "netraven/config.h"
#include "store_i.h"

#define STORE_CONNECT_TIMEOUT "5"
#define STORE_APP_NAME        "netraven-worker"

/* A pipelined transaction's state: the statements sent and not yet
 * answered (see nr_store_pipe_begin). */
struct pipe_slot {
    const char      *what;
    nr_store_pipe_fn fn;
    void            *arg;
    const struct nr_store_stmt *prepare;    /* a Prepare of this statement */
};

#define PIPE_PREPARED_MAX 16

struct nr_store_pipe {
    struct pipe_slot slot[NR_STORE_PIPE_SYNC];
    size_t           n;             /* sent since the last sync */
    bool             failed;        /* s->err holds the first failure */
    /* statements whose Prepare went on this connection and did not fail:
     * the server has them until the session ends (a reset forgets them) */
    const struct nr_store_stmt *prepared[PIPE_PREPARED_MAX];
    size_t           nprepared;
};

/* ---- errors ------------------------------------------------------------ */

/* Copy msg into errstr after prefix, with runs of whitespace (libpq's
 * messages are multi-line: ERROR/DETAIL/HINT) folded into one space and
 * the ends trimmed. */
static void store_set_errstr(struct nr_store *s, const char *prefix, const char *msg)
{
    size_t n = 0, cap = sizeof(s->errstr) - 1;
    bool space = false;

    if (prefix != NULL && *prefix != '\0') {
        int w = snprintf(s->errstr, sizeof(s->errstr), "%s: ", prefix);
        n = w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap;
    }
    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    for (; *msg != '\0' && n < cap; msg++) {
        if (isspace((unsigned char)*msg)) {
            space = true;
            continue;
        }
        if (space && n > 0 && s->errstr[n - 1] != ' ')
            s->errstr[n++] = ' ';
        space = false;
        if (n < cap)
            s->errstr[n++] = *msg;
    }
    s->errstr[n] = '\0';
}

static void store_clear_err(struct nr_store *s)
{
    s->err = 0;
    s->errstr[0] = '\0';
}

/* Replace every occurrence of secret in msg (size bytes) by "****", in one
 * left-to-right pass, so that a secret found inside "****" cannot loop.
 * Messages are one line of at most 1023 bytes (longer ones are cut). */
static void scrub_one(char *msg, size_t size, const char *secret)
{
    char out[1024];
    size_t slen, n = 0, cap;
    const char *p;

    if (secret == NULL || (slen = strlen(secret)) == 0 || size == 0 ||
        strstr(msg, secret) == NULL)
        return;
    cap = size < sizeof(out) ? size : sizeof(out);
    for (p = msg; *p != '\0' && n + 1 < cap;) {
        if (strncmp(p, secret, slen) == 0) {
            for (int k = 0; k < 4 && n + 1 < cap; k++)
                out[n++] = '*';
            p += slen;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    memcpy(msg, out, n + 1);
}

/* The password as written in a URI's userinfo (still percent-encoded),
 * malloc'd, or NULL.  libpq decodes it, and some of its URI errors quote
 * the raw text ("invalid percent-encoded token"), so both forms go. */
static char *store_uri_password(const char *url)
{
    const char *p = strstr(url, "://");
    const char *end, *at = NULL, *colon, *q;

    if (p == NULL)
        return NULL;
    p += 3;
    end = p + strcspn(p, "/?");
    for (q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at == NULL)
        return NULL;
    colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL || colon + 1 == at)
        return NULL;
    return nr_strndup(colon + 1, (size_t)(at - colon - 1));
}

/* The password libpq would use for url (decoded, from a URI or a
 * keyword=value string), malloc'd, or NULL. */
static char *store_conninfo_password(const char *url)
{
    PQconninfoOption *opts, *o;
    char *err = NULL, *pw = NULL;

    opts = PQconninfoParse(url, &err);
    PQfreemem(err);
    if (opts == NULL)
        return NULL;
    for (o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val != '\0')
            pw = nr_strdup(o->val);
    PQconninfoFree(opts);
    return pw;
}

void nr_store_scrub(char *msg, size_t size, const char *url)
{
    char *conninfo, *pw;

    if (msg == NULL || url == NULL || *url == '\0')
        return;
    conninfo = nr_config_libpq_url(url);
    pw = store_conninfo_password(conninfo);
    scrub_one(msg, size, pw);
    free(pw);
    pw = store_uri_password(conninfo);
    scrub_one(msg, size, pw);
    free(pw);
    free(conninfo);
}

/* Record that the connection is unusable; msg from libpq. */
static int store_fail_conn(struct nr_store *s, const char *what, const char *msg)
{
    s->err = NR_EIO;
    store_set_errstr(s, what, msg);
    if (s->conn != NULL)
        scrub_one(s->errstr, sizeof(s->errstr), PQpass(s->conn));
    return NR_EIO;
}

/* After a failed PQexec*: classify and record.  r may be NULL. */
static void store_fail_result(struct nr_store *s, const char *what, const PGresult *r)
{
    const char *msg = r != NULL ? PQresultErrorMessage(r) : "";

    if (PQstatus(s->conn) == CONNECTION_BAD) {
        if (*msg == '\0')
            msg = PQerrorMessage(s->conn);
        store_fail_conn(s, what, msg);
        return;
    }
    if (*msg == '\0')
        msg = PQerrorMessage(s->conn);
    s->err = NR_ERR;
    store_set_errstr(s, what, msg);
}

/* 0 if a statement may be sent, else NR_EIO with errstr set.  A
 * connection left in pipeline mode (a pipeline whose answers came out of
 * step) is as good as lost: only a reset brings it back. */
static int store_usable(struct nr_store *s, const char *what)
{
    if (s->conn == NULL)
        return store_fail_conn(s, what, "not connected");
    if (PQstatus(s->conn) != CONNECTION_OK)
        return store_fail_conn(s, what, "connection lost (reset needed)");
    if (PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF)
        return store_fail_conn(s, what, "connection left in a pipeline (reset needed)");
    return 0;
}

static bool store_result_ok(const PGresult *r)
{
    ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

PGresult *nr_store_query(struct nr_store *s, const char *what, const char *sql,
                         int nparams, const char *const *values)
{
    PGresult *r;

    if (store_usable(s, what) < 0)
        return NULL;
    r = PQexecParams(s->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    if (!store_result_ok(r)) {
        store_fail_result(s, what, r);
        PQclear(r);
        return NULL;
    }
    store_clear_err(s);
    return r;
}

/* 1-based line of the 1-based character position pos in text. */
static int store_line_of(const char *text, long pos)
{
    int line = 1;
    for (long i = 1; i < pos && *text != '\0'; i++, text++)
        if (*text == '\n')
            line++;
    return line;
}

PGresult *nr_store_script(struct nr_store *s, const char *what, const char *sql)
{
    PGresult *r;
    const char *pos;
    char where[128];

    if (store_usable(s, what) < 0)
        return NULL;
    r = PQexec(s->conn, sql);
    if (!store_result_ok(r)) {
        pos = r != NULL ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
        if (pos != NULL && PQstatus(s->conn) == CONNECTION_OK) {
            snprintf(where, sizeof(where), "%s:%d", what, store_line_of(sql, atol(pos)));
            store_fail_result(s, where, r);
        } else {
            store_fail_result(s, what, r);
        }
        PQclear(r);
        return NULL;
    }
    store_clear_err(s);
    return r;
}

/* Run a statement whose rows do not matter; 0 or s->err. */
static int store_command(struct nr_store *s, const char *what, const char *sql,
                         int nparams, const char *const *values)
{
    PGresult *r = nr_store_query(s, what, sql, nparams, values);
    if (r == NULL)
        return s->err;
    PQclear(r);
    return 0;
}

/* ---- connection -------------------------------------------------------- */

static void store_notice(void *arg, const char *message)
{
    /* "relation ... already exists, skipping" and the like: a library
     * does not write to stderr; nothing here needs the notices. */
    (void)arg;
    (void)message;
}

/* What every new session gets.  Snapshots (tens of KB of text each) are
 * compressed with lz4 where the server has it: a third of pglz's CPU per
 * row, and readers see no difference; a server without lz4 refuses the SET
 * and keeps its default. */
static void store_session(struct nr_store *s)
{
    PQsetNoticeProcessor(s->conn, store_notice, NULL);
    PQclear(PQexec(s->conn, "SET default_toast_compression = lz4"));
}

struct nr_store *nr_store_connect_as(const char *url, const char *app)
{
    /* Our defaults come before dbname, so that a setting written in the
     * URL itself wins.  The keepalives let a query on a connection whose
     * server vanished (no RST) fail in about a minute, not hang. */
    const char *keys[] = { "connect_timeout", "application_name", "client_encoding",
                           "keepalives_idle", "keepalives_interval", "keepalives_count",
                           "dbname", NULL };
    const char *vals[] = { STORE_CONNECT_TIMEOUT, app ? app : STORE_APP_NAME, "UTF8",
                           "30", "10", "3", NULL, NULL };
    struct nr_store *s = nr_calloc(1, sizeof(*s));
    char *conninfo;

    if (url == NULL || *url == '\0') {
        s->err = NR_EINVAL;
        store_set_errstr(s, "connect", "no database URL");
        return s;
    }
    /* SQLAlchemy's "postgresql+psycopg2://" -> "postgresql://": libpq
     * knows no driver suffix.  The config module owns that rule. */
    conninfo = nr_config_libpq_url(url);
    vals[NR_ARRAY_LEN(vals) - 2] = conninfo;     /* dbname, expanded */
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (s->conn == NULL) {
        store_fail_conn(s, "connect", "out of memory");
    } else if (PQstatus(s->conn) != CONNECTION_OK) {
        store_fail_conn(s, "connect", PQerrorMessage(s->conn));
        nr_store_scrub(s->errstr, sizeof(s->errstr), conninfo);
    } else {
        store_session(s);
    }
    free(conninfo);
    return s;
}

struct nr_store *nr_store_connect(const char *url)
{
    return nr_store_connect_as(url, NULL);
}

int nr_store_reset(struct nr_store *s)
{
    if (s->conn == NULL)
        return store_fail_conn(s, "reset", "no connection to reset");
    if (s->pipe != NULL)
        *s->pipe = (struct nr_store_pipe){ 0 };
    PQreset(s->conn);
    if (PQstatus(s->conn) != CONNECTION_OK)
        return store_fail_conn(s, "reset", PQerrorMessage(s->conn));
    store_session(s);
    store_clear_err(s);
    return 0;
}

bool nr_store_ok(const struct nr_store *s)
{
    return s != NULL && s->conn != NULL && PQstatus(s->conn) == CONNECTION_OK &&
           PQpipelineStatus(s->conn) == PQ_PIPELINE_OFF;
}

void nr_store_free(struct nr_store *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL)
        PQfinish(s->conn);
    free(s->pipe);
    free(s);
}

/* ---- transactions ------------------------------------------------------ */

int nr_store_begin(struct nr_store *s)
{
    return store_command(s, "begin", "BEGIN", 0, NULL);
}

int nr_store_commit(struct nr_store *s)
{
    return store_command(s, "commit", "COMMIT", 0, NULL);
}

void nr_store_rollback(struct nr_store *s)
{
    if (nr_store_ok(s))
        PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* ---- pipelined transactions ----------------------------------------------- */

/* The transaction's first failure: r is the failed statement's result
 * (NULL: libpq's own error, as a send that could not go).  Later ones
 * (the statements the server then skipped) say nothing new. */
static void pipe_fail(struct nr_store *s, const char *what, const PGresult *r)
{
    bool lost = PQstatus(s->conn) != CONNECTION_OK;
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    /* invalid_sql_statement_name: the session lost our prepared statements
     * (a pooler between us and the server, say); prepare them again */
    if (state != NULL && strcmp(state, "26000") == 0)
        s->pipe->nprepared = 0;

    if (!s->pipe->failed || (lost && s->err != NR_EIO))
        store_fail_result(s, what, r);
    s->pipe->failed = true;
}

/* A Prepare that failed or was skipped: the server does not have it. */
static void pipe_forget(struct nr_store_pipe *p, const struct nr_store_stmt *st)
{
    for (size_t i = 0; i < p->nprepared; i++)
        if (p->prepared[i] == st) {
            p->prepared[i] = p->prepared[--p->nprepared];
            return;
        }
}

/*
 * Mark a sync point and read the answers of every statement sent since
 * the last one, in order: one result and then NULL per statement (the
 * server's skipped ones come as PGRES_PIPELINE_ABORTED), then the sync's
 * own.  A connection that breaks stops the reading; NR_EIO then, and the
 * pipeline state goes with the reset.
 */
static void pipe_read(struct nr_store *s)
{
    struct nr_store_pipe *p = s->pipe;
    PGresult *r;
    ExecStatusType st;
    size_t i;

    if (!PQpipelineSync(s->conn)) {
        pipe_fail(s, "sync", NULL);
        return;
    }
    for (i = 0; i < p->n; i++) {
        const struct pipe_slot *sl = &p->slot[i];

        r = PQgetResult(s->conn);
        if (r == NULL) {
            pipe_fail(s, sl->what, NULL);
            break;
        }
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (!p->failed && sl->fn != NULL)
                sl->fn(sl->arg, r);
        } else {
            if (sl->prepare != NULL)
                pipe_forget(p, sl->prepare);
            if (st != PGRES_PIPELINE_ABORTED)
                pipe_fail(s, sl->what, r);
        }
        PQclear(r);
        while ((r = PQgetResult(s->conn)) != NULL)
            PQclear(r);
        if (PQstatus(s->conn) != CONNECTION_OK) {
            pipe_fail(s, sl->what, NULL);
            break;
        }
    }
    if (i < p->n) {
        p->n = 0;
        return;
    }
    p->n = 0;
    r = PQgetResult(s->conn);
    if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        /* out of step: nothing read from here on could be trusted */
        store_fail_conn(s, "sync", "pipeline answers out of step");
        s->pipe->failed = true;
    }
    PQclear(r);
}

/* A statement sent: its slot, and the answers read when the slots are full. */
static int pipe_push(struct nr_store *s, struct pipe_slot slot)
{
    struct nr_store_pipe *p = s->pipe;

    p->slot[p->n++] = slot;
    if (p->n == NR_STORE_PIPE_SYNC)
        pipe_read(s);
    return p->failed ? s->err : 0;
}

/* NR_EINVAL (errstr set) when no pipeline is open on s, else 0. */
static int pipe_closed(struct nr_store *s, const char *what)
{
    if (s->pipe != NULL && s->conn != NULL && PQpipelineStatus(s->conn) != PQ_PIPELINE_OFF)
        return 0;
    s->err = NR_EINVAL;
    store_set_errstr(s, what, "no pipeline begun");
    return s->err;
}

int nr_store_pipe_begin(struct nr_store *s)
{
    if (store_usable(s, "begin") < 0)
        return s->err;
    if (s->pipe == NULL)
        s->pipe = nr_calloc(1, sizeof(*s->pipe));
    s->pipe->n = 0;
    s->pipe->failed = false;
    if (!PQenterPipelineMode(s->conn)) {
        store_fail_result(s, "begin", NULL);
        return s->err;
    }
    store_clear_err(s);
    nr_store_pipe_send(s, "begin", "BEGIN", 0, NULL, NULL, NULL);
    return 0;
}

int nr_store_pipe_send(struct nr_store *s, const char *what, const char *sql, int nparams,
                       const char *const *values, nr_store_pipe_fn fn, void *arg)
{
    struct nr_store_pipe *p = s->pipe;

    if (pipe_closed(s, what) < 0 || p->failed)
        return s->err;
    if (!PQsendQueryParams(s->conn, sql, nparams, NULL, values, NULL, NULL, 0)) {
        pipe_fail(s, what, NULL);
        return s->err;
    }
    return pipe_push(s, (struct pipe_slot){ .what = what, .fn = fn, .arg = arg });
}

int nr_store_pipe_exec(struct nr_store *s, const char *what, const struct nr_store_stmt *st,
                       const char *const *values, nr_store_pipe_fn fn, void *arg)
{
    struct nr_store_pipe *p = s->pipe;
    bool known = false;

    if (pipe_closed(s, what) < 0 || p->failed)
        return s->err;
    for (size_t i = 0; i < p->nprepared && !known; i++)
        known = p->prepared[i] == st;
    if (!known && p->nprepared == PIPE_PREPARED_MAX)
        return nr_store_pipe_send(s, what, st->sql, st->nparams, values, fn, arg);
    if (!known) {
        if (!PQsendPrepare(s->conn, st->name, st->sql, st->nparams, NULL)) {
            pipe_fail(s, what, NULL);
            return s->err;
        }
        p->prepared[p->nprepared++] = st;
        if (pipe_push(s, (struct pipe_slot){ .what = what, .prepare = st }) < 0)
            return s->err;
    }
    if (!PQsendQueryPrepared(s->conn, st->name, st->nparams, values, NULL, NULL, 0)) {
        pipe_fail(s, what, NULL);
        return s->err;
    }
    return pipe_push(s, (struct pipe_slot){ .what = what, .fn = fn, .arg = arg });
}

int nr_store_pipe_commit(struct nr_store *s)
{
    struct nr_store_pipe *p = s->pipe;
    int err;

    if (pipe_closed(s, "commit") < 0)
        return s->err;
    nr_store_pipe_send(s, "commit", "COMMIT", 0, NULL, NULL, NULL);
    if (p->n > 0 && PQstatus(s->conn) == CONNECTION_OK)
        pipe_read(s);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        if (!p->failed || s->err != NR_EIO)
            store_fail_conn(s, "commit", PQerrorMessage(s->conn));
        return s->err;
    }
    if (!PQexitPipelineMode(s->conn)) {
        store_fail_conn(s, "commit", "pipeline could not end (reset needed)");
        return s->err;
    }
    if (!p->failed) {
        store_clear_err(s);
        return 0;
    }
    /* a failed statement left the transaction aborted (or a failed COMMIT
     * ended it, and this ROLLBACK is a no-op): end it, keep the failure */
    err = s->err;
    PQclear(PQexec(s->conn, "ROLLBACK"));
    s->err = err;
    return err;
}

/* ---- faults and COPY, for callers that drive statements themselves ----- */

enum nr_store_fault nr_store_sqlstate_fault(const char *sqlstate)
{
    if (sqlstate == NULL || strncmp(sqlstate, "08", 2) == 0 ||
        strncmp(sqlstate, "57P0", 4) == 0)
        return NR_STORE_FAULT_CONN;
    if (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0)
        return NR_STORE_FAULT_DATA;
    return NR_STORE_FAULT_OTHER;
}

enum nr_store_fault nr_store_fail(struct nr_store *s, const char *what, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    enum nr_store_fault f = nr_store_sqlstate_fault(state);
    char msg[512];

    /* the primary message and the detail, without libpq's "ERROR:  "
     * layout; libpq's own message when the server sent none */
    if (primary != NULL)
        snprintf(msg, sizeof(msg), "%s%s%s", primary, detail ? ": " : "", detail ? detail : "");
    else
        snprintf(msg, sizeof(msg), "%s", s->conn ? PQerrorMessage(s->conn) : "not connected");
    store_set_errstr(s, what, msg);
    if (s->conn != NULL)
        scrub_one(s->errstr, sizeof(s->errstr), PQpass(s->conn));
    if (s->conn == NULL || PQstatus(s->conn) == CONNECTION_BAD)
        f = NR_STORE_FAULT_CONN;
    s->err = f == NR_STORE_FAULT_CONN ? NR_EIO : NR_ERR;
    return f;
}

enum nr_store_fault nr_store_copy_begin(struct nr_store *s, const char *sql)
{
    PGresult *r;
    enum nr_store_fault f = NR_STORE_FAULT_NONE;

    if (s->conn == NULL)
        return nr_store_fail(s, NULL, NULL);
    r = PQexec(s->conn, sql);
    if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN)
        f = nr_store_fail(s, NULL, r);
    PQclear(r);
    return f;
}

enum nr_store_fault nr_store_copy_put(struct nr_store *s, const char *buf, size_t len)
{
    /* PQputCopyData takes an int: pieces above INT_MAX go in parts */
    while (len > 0) {
        int n = len > (size_t)(1 << 30) ? 1 << 30 : (int)len;

        if (PQputCopyData(s->conn, buf, n) != 1)
            return nr_store_fail(s, NULL, NULL);
        buf += n;
        len -= (size_t)n;
    }
    return NR_STORE_FAULT_NONE;
}

enum nr_store_fault nr_store_copy_end(struct nr_store *s)
{
    enum nr_store_fault f = NR_STORE_FAULT_NONE;
    PGresult *r;

    if (PQputCopyEnd(s->conn, NULL) != 1)
        return nr_store_fail(s, NULL, NULL);
    /* every result is read, so the connection is ready for the next
     * statement; the first failure is the one that counts */
    while ((r = PQgetResult(s->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && f == NR_STORE_FAULT_NONE)
            f = nr_store_fail(s, NULL, r);
        PQclear(r);
    }
    if (f == NR_STORE_FAULT_NONE && PQstatus(s->conn) == CONNECTION_BAD)
        f = nr_store_fail(s, NULL, NULL);
    return f;
}

/* ---- jobs -------------------------------------------------------------- */

void nr_job_clear(struct nr_job *j)
{
    if (j == NULL)
        return;
    free(j->name);
    free(j->job_type);
    free(j->status);
    memset(j, 0, sizeof(*j));
}

static const char *store_cell(const PGresult *r, int row, int col, const char *if_null)
{
    return PQgetisnull(r, row, col) ? if_null : PQgetvalue(r, row, col);
}

int nr_store_job_get(struct nr_store *s, long long job_id, struct nr_job *out)
{
    char id[24];
    const char *params[1] = { id };
    PGresult *r;
    struct nr_job j;

    snprintf(id, sizeof(id), "%lld", job_id);
    r = nr_store_query(s, "job_get",
                       "SELECT id, name, job_type, status, device_id, is_enabled"
                       " FROM jobs WHERE id = $1::bigint", 1, params);
    if (r == NULL)
        return s->err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return NR_NOTFOUND;
    }
    j.id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    j.name = nr_strdup(store_cell(r, 0, 1, ""));
    j.job_type = nr_strdup(store_cell(r, 0, 2, "backup"));
    if (*j.job_type == '\0') {
        free(j.job_type);
        j.job_type = nr_strdup("backup");
    }
    j.status = nr_strdup(store_cell(r, 0, 3, ""));
    j.device_id = strtoll(store_cell(r, 0, 4, "0"), NULL, 10);
    /* NULL is_enabled: NetRaven's ORM default is enabled. */
    j.is_enabled = strcmp(store_cell(r, 0, 5, "t"), "t") == 0;
    PQclear(r);
    *out = j;
    return 0;
}

int nr_store_job_start(struct nr_store *s, long long job_id)
{
    char id[24];
    const char *params[1] = { id };

    snprintf(id, sizeof(id), "%lld", job_id);
    return store_command(s, "job_start",
                         "UPDATE jobs SET status = 'RUNNING', started_at = now(),"
                         " completed_at = NULL WHERE id = $1::bigint", 1, params);
}

int nr_store_job_finish(struct nr_store *s, long long job_id, const char *status)
{
    char id[24];
    const char *params[2] = { id, status };

    if (status == NULL || *status == '\0') {
        s->err = NR_EINVAL;
        store_set_errstr(s, "job_finish", "no status");
        return NR_EINVAL;
    }
    snprintf(id, sizeof(id), "%lld", job_id);
    return store_command(s, "job_finish",
                         "UPDATE jobs SET status = $2, completed_at = now()"
                         " WHERE id = $1::bigint", 2, params);
}

/* ---- devices ----------------------------------------------------------- */

void nr_device_clear(struct nr_device *d)
{
    if (d == NULL)
        return;
    free(d->hostname);
    free(d->ip_address);
    free(d->device_type);
    memset(d, 0, sizeof(*d));
}

void nr_device_array_free(struct nr_device *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        nr_device_clear(&v[i]);
    free(v);
}

/* "{1,2,3}": the text form of a bigint[] parameter.  malloc'd. */
static char *store_id_array(const long long *ids, size_t n)
{
    size_t cap = 2 + n * 21 + 1, len = 0;
    char *buf = nr_malloc(cap);

    buf[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? "," : "", ids[i]);
    buf[len++] = '}';
    buf[len] = '\0';
    return buf;
}

int nr_store_job_devices(struct nr_store *s, const struct nr_job *job,
                         const long long *only_ids, size_t n_only,
                         struct nr_device **out, size_t *n)
{
    /* $2 is NULL (no restriction) or a bigint[] of the ids allowed. */
    static const char by_device[] =
        "SELECT id, hostname, ip_address, device_type, port FROM devices"
        " WHERE id = $1::bigint"
        "   AND ($2::bigint[] IS NULL OR id = ANY ($2::bigint[]))"
        " ORDER BY id";
    static const char by_tags[] =
        "SELECT d.id, d.hostname, d.ip_address, d.device_type, d.port"
        " FROM devices d"
        " WHERE EXISTS (SELECT 1 FROM device_tag_association dta"
        "               JOIN job_tags jt ON jt.tag_id = dta.tag_id"
        "               WHERE dta.device_id = d.id AND jt.job_id = $1::bigint)"
        "   AND ($2::bigint[] IS NULL OR d.id = ANY ($2::bigint[]))"
        " ORDER BY d.id";
    char id[24];
    char *ids = NULL;
    const char *params[2] = { id, NULL };
    struct nr_device *v = NULL;
    PGresult *r;
    size_t rows;

    if (job->device_id > 0)
        snprintf(id, sizeof(id), "%lld", job->device_id);
    else
        snprintf(id, sizeof(id), "%lld", job->id);
    if (only_ids != NULL && n_only > 0)
        params[1] = ids = store_id_array(only_ids, n_only);

    r = nr_store_query(s, "job_devices", job->device_id > 0 ? by_device : by_tags,
                       2, params);
    free(ids);
    if (r == NULL)
        return s->err;
    rows = (size_t)PQntuples(r);
    if (rows > 0)
        v = nr_calloc(rows, sizeof(*v));
    for (size_t i = 0; i < rows; i++) {
        int row = (int)i;
        v[i].id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        v[i].hostname = nr_strdup(PQgetvalue(r, row, 1));
        v[i].ip_address = nr_strdup(PQgetvalue(r, row, 2));
        v[i].device_type = nr_strdup(PQgetvalue(r, row, 3));
        /* NULL port: NetRaven's default, SSH. */
        v[i].port = (int)strtol(store_cell(r, row, 4, "22"), NULL, 10);
    }
    PQclear(r);
    *out = v;
    *n = rows;
    return 0;
}

int nr_store_device_seen(struct nr_store *s, long long device_id)
{
    char id[24];
    const char *params[1] = { id };

    snprintf(id, sizeof(id), "%lld", device_id);
    return store_command(s, "device_seen",
                         "UPDATE devices SET last_seen = now() WHERE id = $1::bigint",
                         1, params);
}

int nr_store_job_abandon(struct nr_store *s, long long job_id)
{
    char id[24];
    const char *params[1] = { id };
    PGresult *r;
    int rc;

    snprintf(id, sizeof(id), "%lld", job_id);
    r = nr_store_query(s, "job_abandon",
                       "UPDATE jobs SET status = 'FAILED_UNEXPECTED', completed_at = now()"
                       " WHERE id = $1::bigint AND status = 'RUNNING' RETURNING id",
                       1, params);
    if (r == NULL)
        return s->err;
    rc = PQntuples(r) == 1 ? NR_OK : NR_NOTFOUND;
    PQclear(r);
    return rc;
}

/* The data_hash of the device's newest snapshot (by retrieved_at, then
 * id), '' when it has none: what a new snapshot is compared with, by
 * nr_store_config_save and nr_store_outcome_send alike. */
#define SQL_NEWEST_HASH(device)                                               \
    "COALESCE((SELECT data_hash FROM device_configurations"                   \
    " WHERE device_id = " device                                              \
    " ORDER BY retrieved_at DESC, id DESC LIMIT 1), '')"

int nr_store_config_save(struct nr_store *s, long long device_id, const char *config,
                         size_t config_len, const char *hash, const char *metadata_json)
{
    char id[24];
    const char *params[4];
    PGresult *r;
    int rc;

    (void)config_len;   /* text parameters are NUL-terminated */
    snprintf(id, sizeof(id), "%lld", device_id);
    params[0] = id;
    params[1] = config;
    params[2] = hash;
    params[3] = metadata_json;
    r = nr_store_query(s, "config_save",
                       "INSERT INTO device_configurations"
                       " (device_id, config_data, data_hash, retrieved_at, config_metadata)"
                       " SELECT $1::bigint, $2, $3, now(), $4::jsonb"
                       " WHERE " SQL_NEWEST_HASH("$1::bigint") " <> $3"
                       " RETURNING id",
                       4, params);
    if (r == NULL)
        return s->err;
    rc = PQntuples(r) == 1 ? NR_OK : NR_SNAPSHOT_SAME;
    PQclear(r);
    return rc;
}

/* ---- results ----------------------------------------------------------- */

int nr_store_result_add(struct nr_store *s, long long job_id, long long device_id,
                        const char *job_type, bool success, const char *details_json)
{
    char jid[24], did[24];
    const char *params[5];

    snprintf(jid, sizeof(jid), "%lld", job_id);
    snprintf(did, sizeof(did), "%lld", device_id);
    params[0] = jid;
    params[1] = did;
    params[2] = job_type != NULL && *job_type != '\0' ? job_type : "backup";
    params[3] = success ? "success" : "failure";
    params[4] = details_json;           /* NULL -> SQL NULL */
    return store_command(s, "result_add",
                         "INSERT INTO job_results (job_id, device_id, job_type, status,"
                         " result_time, details, created_at)"
                         " VALUES ($1::bigint, $2::bigint, $3, $4, now(), $5::jsonb, now())",
                         5, params);
}

/*
 * The snapshot and last_seen are data-modifying CTEs of the result's
 * INSERT: each runs once whether or not the INSERT reads it, and all three
 * see the table as it was before the statement, as three statements in a
 * row would for one device.  $6 NULL: no snapshot (the INSERT's WHERE is
 * false); $9 false: last_seen untouched.
 */
int nr_store_outcome_send(struct nr_store *s, const struct nr_store_outcome *o,
                          nr_store_pipe_fn fn, void *arg)
{
    static const struct nr_store_stmt stmt = { .name = "nr_outcome", .nparams = 9, .sql =
        "WITH saved AS ("
        "  INSERT INTO device_configurations"
        "   (device_id, config_data, data_hash, retrieved_at, config_metadata)"
        "  SELECT $2::bigint, $6::text, $7::text, now(), $8::jsonb"
        "  WHERE $6::text IS NOT NULL"
        "   AND " SQL_NEWEST_HASH("$2::bigint") " <> $7::text"
        "  RETURNING id),"
        " seen AS ("
        "  UPDATE devices SET last_seen = now() WHERE id = $2::bigint AND $9::boolean"
        "  RETURNING id)"
        " INSERT INTO job_results (job_id, device_id, job_type, status,"
        "  result_time, details, created_at)"
        " SELECT $1::bigint, $2::bigint, $3, $4, now(),"
        "  CASE WHEN $6::text IS NULL THEN $5::jsonb"
        "   ELSE COALESCE($5::jsonb, '{}'::jsonb) || jsonb_build_object("
        "    'deduplicated', NOT EXISTS (SELECT 1 FROM saved), 'sha256', $7::text) END,"
        "  now()"
        " RETURNING (SELECT count(*) FROM saved)" };
    char jid[24], did[24];
    const char *params[9];

    snprintf(jid, sizeof(jid), "%lld", o->job_id);
    snprintf(did, sizeof(did), "%lld", o->device_id);
    params[0] = jid;
    params[1] = did;
    params[2] = o->job_type != NULL && *o->job_type != '\0' ? o->job_type : "backup";
    params[3] = o->success ? "success" : "failure";
    params[4] = o->details_json;
    params[5] = o->config;
    params[6] = o->config != NULL ? o->hash : NULL;
    params[7] = o->config != NULL ? o->config_meta : NULL;
    params[8] = o->seen ? "true" : "false";
    return nr_store_pipe_exec(s, "outcome", &stmt, params, fn, arg);
}

int nr_store_outcome_saved(const PGresult *r)
{
    const char *v = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "0";
    return strcmp(v, "0") != 0 ? NR_OK : NR_SNAPSHOT_SAME;
}

/* ---- retention ------------------------------------------------------------ */

void nr_prune_device_array_free(struct nr_prune_device *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].hostname);
    free(v);
}

int nr_store_prune_devices(struct nr_store *s, struct nr_prune_device **out, size_t *n)
{
    /* one pass over the snapshots for all devices, so that the per-device
     * statements run only where there is something to delete */
    static const char sql[] =
        "SELECT d.id, d.hostname, COALESCE(c.n, 0)"
        " FROM devices d"
        " LEFT JOIN (SELECT device_id, count(*) AS n FROM device_configurations"
        "            GROUP BY device_id) c ON c.device_id = d.id"
        " ORDER BY d.id";
    struct nr_prune_device *v = NULL;
    PGresult *r;
    size_t rows;

    r = nr_store_query(s, "prune_devices", sql, 0, NULL);
    if (r == NULL)
        return s->err;
    rows = (size_t)PQntuples(r);
    if (rows > 0)
        v = nr_calloc(rows, sizeof(*v));
    for (size_t i = 0; i < rows; i++) {
        int row = (int)i;
        v[i].id = strtoll(PQgetvalue(r, row, 0), NULL, 10);
        v[i].hostname = nr_strdup(store_cell(r, row, 1, ""));
        v[i].snapshots = strtoll(PQgetvalue(r, row, 2), NULL, 10);
    }
    PQclear(r);
    *out = v;
    *n = rows;
    return 0;
}

int nr_store_config_prune(struct nr_store *s, long long device_id, long long keep,
                          long long *deleted, char **ids)
{
    /* Data-modifying CTEs run once and to completion whatever the final
     * SELECT reads, and the statement is its own transaction: the rows go
     * and their log row is written, or neither.  DESC puts a NULL
     * retrieved_at first, as NetRaven's ORDER BY retrieved_at DESC does:
     * such a row counts as newest and is kept. */
    static const char sql[] =
        "WITH ranked AS ("
        "   SELECT id, row_number() OVER (ORDER BY retrieved_at DESC, id DESC) AS rn"
        "   FROM device_configurations WHERE device_id = $1::bigint),"
        " gone AS ("
        "   DELETE FROM device_configurations c USING ranked r"
        "   WHERE c.id = r.id AND r.rn > GREATEST($2::bigint, 1)"
        "   RETURNING c.id, r.rn),"
        " agg AS ("
        "   SELECT count(*) AS n, string_agg(id::text, ', ' ORDER BY rn) AS ids FROM gone),"
        " logged AS ("
        "   INSERT INTO logs (log_type, level, source, message, meta)"
        "   SELECT 'system', 'INFO', 'prune_old_device_configs',"
        "          format('[Retention] Pruned %s configs for device %s (IDs: [%s])',"
        "                 a.n, d.hostname, a.ids),"
        "          '{}'::jsonb"
        "   FROM agg a JOIN devices d ON d.id = $1::bigint WHERE a.n > 0"
        "   RETURNING 1)"
        " SELECT n, COALESCE(ids, '') FROM agg";
    char id[24], k[24];
    const char *params[2] = { id, k };
    PGresult *r;

    snprintf(id, sizeof(id), "%lld", device_id);
    snprintf(k, sizeof(k), "%lld", keep);
    r = nr_store_query(s, "config_prune", sql, 2, params);
    if (r == NULL)
        return s->err;
    *deleted = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    if (ids != NULL)
        *ids = nr_strdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

int nr_store_log_add(struct nr_store *s, const char *log_type, const char *level,
                     const char *source, const char *message, const char *meta_json)
{
    const char *params[5] = { log_type, level, source, message, meta_json ? meta_json : "{}" };

    return store_command(s, "log_add",
                         "INSERT INTO logs (log_type, level, source, message, meta)"
                         " VALUES ($1, $2, $3, $4, $5::jsonb)",
                         5, params);
}
