/*
 * store.h - PostgreSQL access (libpq): jobs, devices, results, schema.
 *
 * The store owns PostgreSQL: every connection of the worker is opened
 * here (nr_store_connect_as: one set of connection settings, the
 * application name, the password scrubbed from every message), and the
 * log's DB writer (src/log/sink_db.c) drives its own statements and COPY
 * on one with the store's fault classes and COPY calls below.
 *
 * One struct nr_store is one connection; it is not thread-safe, so each
 * thread that needs the database owns its own (the run threads, the log
 * writer).  Every query is parameterised (PQexecParams).
 *
 * Caller's steps:
 *   struct nr_store *s = nr_store_connect(cfg->database.url);
 *   if (s->err) { ... s->errstr says why ...; nr_store_free(s); }
 *   nr_store_job_get(s, id, &job) ...
 *   nr_store_free(s);
 *
 * Like hiredis's redisContext, connect returns the object even on failure,
 * with err set; once err is set by a lost connection, nr_store_reset()
 * reconnects (0 on success).
 */
#ifndef NR_STORE_H
#define NR_STORE_H

#include "netraven/common.h"

struct pg_conn;
struct pg_result;

struct nr_store_pipe;

struct nr_store {
    struct pg_conn *conn;       /* PGconn */
    int             err;        /* 0, or NR_EIO (connection) / NR_ERR (query) */
    char            errstr[256];
    struct nr_store_pipe *pipe; /* the pipelined transaction's state (pipe.c) */
};

struct nr_job {
    long long id;
    char     *name;
    char     *job_type;         /* "backup" when the column is NULL */
    char     *status;
    long long device_id;        /* 0 when NULL */
    bool      is_enabled;
};

struct nr_device {
    long long id;
    char     *hostname;
    char     *ip_address;
    char     *device_type;
    int       port;
};

/*
 * Connect as application_name app (NULL: "netraven-worker"); never NULL.
 * url is database.url: a URI, with or without a +driver suffix
 * (postgresql+psycopg2://), or a keyword=value string.  The settings, the
 * same for every connection: connect_timeout 5 s, client_encoding UTF8,
 * TCP keepalives (a query on a connection whose server vanished without a
 * reset fails in about a minute instead of hanging); a setting written in
 * url itself wins.  On failure err is NR_EIO (NR_EINVAL: no url) and
 * errstr says why, without the password.
 */
struct nr_store *nr_store_connect_as(const char *url, const char *app);
/* nr_store_connect_as(url, NULL). */
struct nr_store *nr_store_connect(const char *url);
/* Reconnect after a failure; 0 or NR_EIO (errstr set). */
int  nr_store_reset(struct nr_store *s);
/* True if the connection is up (cheap: no round trip). */
bool nr_store_ok(const struct nr_store *s);
void nr_store_free(struct nr_store *s);

/* A transaction around the calls between begin and commit: 0 or the
 * store's code (err and errstr set).  Rollback also ends a transaction that
 * failed; its own failure (a connection already gone) is ignored. */
int  nr_store_begin(struct nr_store *s);
int  nr_store_commit(struct nr_store *s);
void nr_store_rollback(struct nr_store *s);

/*
 * A transaction sent as a pipeline (libpq's pipeline mode): statements go
 * without waiting for each one's answer, and the answers are read every
 * NR_STORE_PIPE_SYNC statements and at the COMMIT, so that a transaction
 * of a few hundred statements costs the thread and the server a few round
 * trips instead of one per statement.
 *
 *   nr_store_pipe_begin(s);                                      BEGIN
 *   nr_store_pipe_send(s, what, sql, nparams, values, fn, arg);  ...
 *   nr_store_pipe_commit(s);                                     COMMIT
 *
 * All or nothing: commit returns 0 when every statement and the COMMIT
 * succeeded; else the code of the first failure, with err and errstr as
 * nr_store_query sets them (errstr prefixed with that statement's what),
 * the transaction rolled back and the connection out of pipeline mode (or
 * lost: NR_EIO, nr_store_reset() then).  After a failure, send returns it
 * at once and sends nothing; the caller still ends with commit.  Begin
 * fails only when no pipeline could start (then no commit is needed).
 *
 * fn (may be NULL) is called with each successful statement's result, in
 * order, as its answer is read (during a later send or the commit); the
 * result is freed after fn returns.  fn may have been called for
 * statements of a transaction that then failed: keep what it learned only
 * when commit returns 0.  values are copied by send.
 */
#define NR_STORE_PIPE_SYNC 64
typedef void (*nr_store_pipe_fn)(void *arg, const struct pg_result *r);

int nr_store_pipe_begin(struct nr_store *s);
int nr_store_pipe_send(struct nr_store *s, const char *what, const char *sql, int nparams,
                       const char *const *values, nr_store_pipe_fn fn, void *arg);
int nr_store_pipe_commit(struct nr_store *s);

/*
 * A statement a pipeline sends many times: prepared (named) once per
 * connection, in the pipeline itself, and from then on only bound and
 * executed, so that the server parses and plans it once rather than each
 * time.  The struct and its strings must live as long as the program (a
 * static const); name is unique among the program's statements.  Same
 * contract as nr_store_pipe_send.  A reset, a failed Prepare and a server
 * that says it lost the statement (SQLSTATE 26000: a pooler that shares
 * sessions) make the next exec prepare it again.
 */
struct nr_store_stmt {
    const char *name;
    const char *sql;
    int         nparams;
};

int nr_store_pipe_exec(struct nr_store *s, const char *what, const struct nr_store_stmt *st,
                       const char *const *values, nr_store_pipe_fn fn, void *arg);

/* Mask ("****") in msg, a NUL-terminated text in a buffer of size bytes,
 * the password of url (database.url: a URI, with or without a +driver
 * suffix, or a keyword=value string) in both forms libpq may quote it:
 * decoded, and as written in the URI (a token libpq cannot decode, such as
 * "Hunter2%zz", is quoted raw).  Every writer of a libpq message (the store,
 * the log's PostgreSQL writer) passes it through here.  No-op when url has
 * no password. */
void nr_store_scrub(char *msg, size_t size, const char *url);

/*
 * One parameterised statement (PQexecParams, text parameters, text
 * results).  what names the operation for errstr ("job_get").
 * On success clears s->err and returns the result (caller PQclear()s);
 * on failure sets s->err/errstr (NR_EIO if the connection is gone, NR_ERR
 * for a failed statement) and returns NULL.
 */
struct pg_result *nr_store_query(struct nr_store *s, const char *what, const char *sql,
                                 int nparams, const char *const *values);

/* ---- faults, for callers that drive statements themselves (the log's
 * DB writer): what a failure means for the rows and for the connection. */
enum nr_store_fault {
    NR_STORE_FAULT_NONE = 0,
    NR_STORE_FAULT_CONN,    /* the connection is gone or going: no SQLSTATE
                             * (libpq's own error, no result), class 08
                             * (connection exception), 57P0x (the server
                             * shutting down); reconnect and retry */
    NR_STORE_FAULT_DATA,    /* class 22 (data exception) or 23 (integrity
                             * constraint violation): the rows' fault */
    NR_STORE_FAULT_OTHER,   /* anything else (a missing table, permissions,
                             * a full disk): not the rows' fault */
};

/* The fault of a failed statement's SQLSTATE (NULL: it had none).  Pure. */
enum nr_store_fault nr_store_sqlstate_fault(const char *sqlstate);

/*
 * Record the failure of a statement run on s's connection: r is its result
 * (NULL when none came back; not cleared here).  errstr = "what: " (when
 * what is not NULL) and the server's message and its detail ("primary:
 * detail"), else libpq's message, on one line with the password masked;
 * err = NR_EIO for NR_STORE_FAULT_CONN (always when the connection is
 * bad), else NR_ERR.  Returns the fault, never NR_STORE_FAULT_NONE.
 */
enum nr_store_fault nr_store_fail(struct nr_store *s, const char *what,
                                  const struct pg_result *r);

/*
 * COPY ... FROM STDIN inside the caller's transaction, sent in pieces as
 * the caller builds them:
 *   nr_store_copy_begin(s, sql);             sql: "COPY t (...) FROM STDIN"
 *   nr_store_copy_put(s, buf, len) ...;      text format rows
 *   nr_store_copy_end(s);                    the server's verdict
 * Each returns NR_STORE_FAULT_NONE, or the fault with err/errstr set as
 * nr_store_fail() sets them.  After a fault of begin or put, call no
 * other step: the caller rolls back (or, NR_STORE_FAULT_CONN, drops the
 * connection).
 */
enum nr_store_fault nr_store_copy_begin(struct nr_store *s, const char *sql);
enum nr_store_fault nr_store_copy_put(struct nr_store *s, const char *buf, size_t len);
enum nr_store_fault nr_store_copy_end(struct nr_store *s);

/* Apply the schema in sql/ (embedded in the binary) idempotently.
 * Returns 0, or NR_ERR with errstr naming the migration that failed. */
int nr_store_migrate(struct nr_store *s);

/* Load a job row.  0 and *out filled, NR_NOTFOUND, or negative. */
int  nr_store_job_get(struct nr_store *s, long long job_id, struct nr_job *out);
void nr_job_clear(struct nr_job *j);

/* Mark a run started (status RUNNING, started_at now(), completed_at NULL)
 * and finished (status, completed_at now()).  0 or negative. */
int nr_store_job_start(struct nr_store *s, long long job_id);
int nr_store_job_finish(struct nr_store *s, long long job_id, const char *status);

/* A run whose worker died (an abandoned python-rq job): status
 * FAILED_UNEXPECTED and completed_at now(), only while the row is still
 * RUNNING.  0 when the row was changed, NR_NOTFOUND when it was not
 * RUNNING (or is gone), negative on failure. */
int nr_store_job_abandon(struct nr_store *s, long long job_id);

/* The devices of a job: its device_id if set, else every device sharing a
 * tag with it, ordered by id.  With only_ids/n_only set, the list is
 * restricted to those ids.  *out is a malloc'd array the caller frees with
 * nr_device_array_free.  0 or negative. */
int nr_store_job_devices(struct nr_store *s, const struct nr_job *job,
                         const long long *only_ids, size_t n_only,
                         struct nr_device **out, size_t *n);
void nr_device_clear(struct nr_device *d);
void nr_device_array_free(struct nr_device *v, size_t n);

/* Append a job_results row (result_time and created_at now()).
 * details_json is a JSON object text.  0 or negative. */
int nr_store_result_add(struct nr_store *s, long long job_id, long long device_id,
                        const char *job_type, bool success, const char *details_json);

/* devices.last_seen = now().  0 or negative. */
int nr_store_device_seen(struct nr_store *s, long long device_id);

/*
 * Store a configuration snapshot unless the device's newest one (by
 * retrieved_at, then id) has the same data_hash.  hash is the sha256 hex of
 * config; metadata_json a JSON object text.  Returns 0 when a row was
 * inserted, NR_SNAPSHOT_SAME when the newest
 * snapshot already had this hash and nothing was written, negative on
 * failure.  One round trip: the comparison and the insert are one
 * statement.  config must be valid UTF-8 without NUL bytes.
 */
#define NR_SNAPSHOT_SAME 1
int nr_store_config_save(struct nr_store *s, long long device_id, const char *config,
                         size_t config_len, const char *hash, const char *metadata_json);

/*
 * What a run stores of one device, sent as one statement into a pipelined
 * transaction (nr_store_pipe_begin): the configuration snapshot when
 * config is not NULL (written unless the device's newest one has the same
 * hash, as nr_store_config_save decides), devices.last_seen = now() when
 * seen, and the job_results row, whose details are details_json with, when
 * config is not NULL, "deduplicated" (true: nothing was written) and
 * "sha256" (hash) added.  The snapshot, last_seen and the result are one
 * statement, so one round trip's worth of server work less than three.
 * fn receives the statement's result; nr_store_outcome_saved() reads it.
 * Returns what nr_store_pipe_send returns.
 */
struct nr_store_outcome {
    long long   job_id;
    long long   device_id;
    const char *job_type;       /* NULL or "": "backup" */
    bool        success;
    const char *details_json;   /* a JSON object text */
    bool        seen;
    const char *config;         /* NULL: no snapshot; valid UTF-8, no NUL */
    const char *hash;           /* sha256 hex of config */
    const char *config_meta;    /* the snapshot's config_metadata, JSON */
};

int nr_store_outcome_send(struct nr_store *s, const struct nr_store_outcome *o,
                          nr_store_pipe_fn fn, void *arg);
/* From the result of an outcome: NR_OK when a snapshot was written,
 * NR_SNAPSHOT_SAME when not (no config, or the same hash). */
int nr_store_outcome_saved(const struct pg_result *r);

/*
 * Retention: the steps of NetRaven's prune_old_device_configs, which the
 * python-rq intake drives (src/rq/prune.c):
 *   nr_store_prune_devices()   every device, with its snapshot count;
 *   nr_store_config_prune()    for each device with more than keep;
 *   nr_store_log_add()         the job-less rows around them.
 */
struct nr_prune_device {
    long long id;
    char     *hostname;         /* "" when NULL */
    long long snapshots;        /* rows in device_configurations */
};

/* Every device, ordered by id.  *out is a malloc'd array (NULL when there
 * are none) the caller frees with nr_prune_device_array_free.  0 or
 * negative; *out and *n are written only on success. */
int  nr_store_prune_devices(struct nr_store *s, struct nr_prune_device **out, size_t *n);
void nr_prune_device_array_free(struct nr_prune_device *v, size_t n);

/*
 * One device's retention, in one statement and so one transaction: delete
 * every snapshot of device_id but its keep newest (by retrieved_at, then
 * id, as nr_store_config_save reads "newest"; keep below 1 counts as 1, so
 * the newest is never deleted), ranked with a window function over the
 * device's rows; and, when any went, append in the same transaction the
 * logs row NetRaven's Python worker writes for it: log_type 'system',
 * level 'INFO', no job or device, source 'prune_old_device_configs',
 * message "[Retention] Pruned N configs for device HOST (IDs: [a, b])"
 * (newest first), meta {}.  A snapshot inserted meanwhile is not ranked,
 * so it stays.  Returns 0 with *deleted (0 or more) and, when ids is not
 * NULL, *ids the deleted ids as "a, b" (malloc'd, caller frees; "" for
 * none); negative on failure, with nothing deleted or logged.
 */
int nr_store_config_prune(struct nr_store *s, long long device_id, long long keep,
                          long long *deleted, char **ids);

/* Append one job-less logs row (job_id and device_id NULL, timestamp
 * now()): level in upper case as NetRaven writes it, meta_json a JSON
 * object text (NULL: {}).  0 or negative. */
int nr_store_log_add(struct nr_store *s, const char *log_type, const char *level,
                     const char *source, const char *message, const char *meta_json);

#endif /* NR_STORE_H */
