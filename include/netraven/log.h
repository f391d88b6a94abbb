/*
 * log.h - structured logging: the event catalog, the router and the sinks.
 *
 * DESIGN
 *   A call site names an event from the catalog (events.def) and passes
 *   key/value pairs.  nr_log_emit() looks up the event's sink set (computed
 *   once at nr_log_init from the router table, logging.routes.* and the
 *   level thresholds), returns at once if it is empty, else renders the
 *   message and the meta JSON once into one reference-counted record and
 *   pushes it on the bounded queue of each sink thread:
 *     - "out" thread: stdout (human or JSON lines) and the optional file;
 *     - "db" thread: batches rows into the logs table with COPY; while
 *       PostgreSQL is away it keeps the rows and retries with backoff;
 *       past half of its queue's bound it moves the oldest rows to a
 *       spool file under worker.spool_dir, and writes them first (in
 *       order, once) when PostgreSQL is back; rows still held at shutdown
 *       are spooled and written after the next start;
 *     - "redis" thread: publishes session records (docs/netraven.md §5).
 *   Emitting threads never wait on PostgreSQL, Redis or a slow stdout: a
 *   push takes one mutex for a few instructions.  A full queue drops the
 *   record for that sink, counts it, and the sink thread reports the count
 *   (SYS_LOG_DROPPED).
 *
 * Caller's steps:
 *   nr_log_init(&cfg);                 before any thread starts
 *   NR_LOG(NR_EV_JOB_STARTED, job_id, 0, NR_S("job_name", name));
 *   nr_log_reopen();                   from the SIGHUP path (async-safe: it
 *                                      only sets a flag)
 *   nr_log_flush(timeout);             wait until queued records are written
 *   nr_log_shutdown();                 flush, stop threads, free
 *
 * Secrets: callers never pass a password, enable secret or decrypted
 * credential as a value; session data is redacted by the caller.
 */
#ifndef NR_LOG_H
#define NR_LOG_H

#include "netraven/common.h"
#include "netraven/config.h"

enum nr_event {
#define NR_EVENT(id, type, level, source, audit, tmpl) NR_EV_##id,
#include "netraven/events.def"
#undef NR_EVENT
    NR_EV_COUNT
};

struct nr_event_def {
    const char        *name;      /* "JOB_STARTED" */
    enum nr_log_type   type;
    enum nr_log_level  level;
    const char        *source;
    int                audit;     /* row of the logging audit, 0 if none */
    const char        *tmpl;
};

/* The catalog, indexed by enum nr_event. */
extern const struct nr_event_def nr_events[NR_EV_COUNT];

enum nr_kv_kind { NR_KV_NONE = 0, NR_KV_STR, NR_KV_INT, NR_KV_DBL, NR_KV_BOOL, NR_KV_JSON };

/* One key/value of a log call.  NR_KV_JSON carries a JSON text that is
 * embedded in meta as a value and rendered as text in the message. */
struct nr_kv {
    const char      *key;
    enum nr_kv_kind  kind;
    union {
        const char *s;
        long long   i;
        double      d;
    } v;
};

#define NR_S(k, x) ((struct nr_kv){ .key = (k), .kind = NR_KV_STR,  .v.s = (x) })
#define NR_I(k, x) ((struct nr_kv){ .key = (k), .kind = NR_KV_INT,  .v.i = (long long)(x) })
#define NR_D(k, x) ((struct nr_kv){ .key = (k), .kind = NR_KV_DBL,  .v.d = (double)(x) })
#define NR_B(k, x) ((struct nr_kv){ .key = (k), .kind = NR_KV_BOOL, .v.i = !!(x) })
#define NR_J(k, x) ((struct nr_kv){ .key = (k), .kind = NR_KV_JSON, .v.s = (x) })

/*
 * NR_LOG(event, job_id, device_id, kv...): job_id / device_id 0 mean none.
 * The level check happens before anything is formatted.
 */
#define NR_LOG(ev, job, dev, ...)                                            \
    do {                                                                     \
        if (nr_log_enabled(ev)) {                                            \
            const struct nr_kv nr_kv_[] = { { .key = NULL }, __VA_ARGS__ };  \
            nr_log_emit((ev), (job), (dev), nr_kv_ + 1,                      \
                        NR_ARRAY_LEN(nr_kv_) - 1);                           \
        }                                                                    \
    } while (0)

/*
 * Set up the router from cfg and start the sink threads.  The DB sink
 * connects lazily from its own thread (database.url), so this does not
 * fail when PostgreSQL is down.  Returns 0, or NR_ERR if a thread could not
 * be started.  Not thread-safe; call once before other threads start.
 */
int nr_log_init(const struct nr_config *cfg);

/* Sink set of an event after routing and level thresholds; 0 = dropped. */
unsigned nr_log_sinks(enum nr_event ev);

/* True when the event reaches at least one sink. */
bool nr_log_enabled(enum nr_event ev);

/* Emit one record; thread-safe; never blocks on a server. */
void nr_log_emit(enum nr_event ev, long long job_id, long long device_id,
                 const struct nr_kv *kv, size_t nkv);

/*
 * Session data (raw SSH bytes, already redacted by the caller): publishes
 * to Redis (and stdout at debug).  Thread-safe; never waits on a server,
 * and at most 0.25 s for room when the publisher's queue holds
 * logging.redis.queue_bytes (then the records are dropped and counted).
 * The data is queued as it is; the publisher cuts and renders it.
 *
 * What a person reads in NetRaven's live view (LiveLog.vue prints
 * "[time] LEVEL message" and nothing of meta) is the session itself, so
 * the record's message is the text, not a byte count:
 *   - data is cut into records of at most NR_LOG_SESSION_LINES lines and
 *     NR_LOG_SESSION_BYTES bytes (a longer line is cut, on a UTF-8
 *     boundary), in order: a config of N lines is about N/8 records, never
 *     one per byte or per line;
 *   - message: the record's lines without their line ends, joined by "\n";
 *     what the worker sent (direction "sent") has "> " before each line,
 *     what the device printed (any other direction) has nothing; carriage
 *     returns, other control characters and terminal escape sequences are
 *     left out, and a backspace erases the character before it on its line
 *     (a pager prompt that the device wipes leaves nothing behind);
 *   - meta: direction, bytes (of the record's share of data) and data (that
 *     share as sent or received, UTF-8 made valid): the records' data, put
 *     together, are the stream byte for byte.
 * The human stdout/file format writes "Session log: <direction> <bytes>
 * bytes: " before the message, on one line.
 */
void nr_log_session(long long job_id, long long device_id,
                    const char *direction, const char *data, size_t len);

#define NR_LOG_SESSION_LINES  8
#define NR_LOG_SESSION_BYTES  1024

/* How many bytes of data[0..len) go into the first session record (see
 * nr_log_session); 0 only when len is 0.  Exposed for tests. */
size_t nr_log_session_chunk(const char *data, size_t len);

/* The message of one session record holding data[0..len) (see
 * nr_log_session), malloc'd; never NULL.  Exposed for tests. */
char *nr_log_session_text(const char *direction, const char *data, size_t len);

/* Ask the file sink to reopen its file (SIGHUP).  Async-signal-safe. */
void nr_log_reopen(void);

/* Wait up to timeout_s for every queued record to be written by its sink
 * (DB rows: committed, also those that went through the spool, and the
 * rows an earlier run left in the spool).  Returns 0 when all were
 * written, NR_ETIMEOUT otherwise. */
int nr_log_flush(double timeout_s);

/* Flush (bounded wait), stop the sink threads and free the router. */
void nr_log_shutdown(void);

/* Counters, for tests, the job log and the benchmark. */
struct nr_log_stats {
    uint64_t emitted[NR_LOG_TYPE_COUNT];   /* records accepted per type */
    uint64_t db_routed;        /* records queued for the DB sink */
    uint64_t db_written;       /* of those, rows committed to logs (also
                                  the ones that went through the spool) */
    uint64_t db_dropped;       /* of those, rows given up (queue full and
                                  no spool, rejected, spool unwritable) */
    uint64_t db_spooled;       /* rows waiting in the spool file now */
    uint64_t db_recovered;     /* rows an earlier run left in the spool,
                                  committed by this one */
    uint64_t out_written;      /* records the stdout/file thread finished */
    uint64_t out_dropped;
    uint64_t redis_published;
    uint64_t redis_dropped;
    uint64_t file_errors;
};
void nr_log_get_stats(struct nr_log_stats *out);

/* How many records of a job bound for Redis (its session events) were
 * dropped so far (publisher queue full, or Redis away), and forget the
 * count.  The run calls it as it ends, to say so in the job log; drops
 * that happen after that call (the publisher still draining) are counted
 * only in the stats.  A bounded table: with more than 256 jobs dropping at
 * once, the oldest counts may be lost. */
uint64_t nr_log_session_drops_take(long long job_id);

/* Render a template with kv into a malloc'd string (the router uses it;
 * exposed for tests). Unknown {names} stay as written. */
char *nr_log_render(const char *tmpl, long long job_id, long long device_id,
                    const struct nr_kv *kv, size_t nkv);

/* The default route of a log type (docs/netraven.md §4.2), before config
 * overrides. */
unsigned nr_log_default_route(enum nr_log_type t);

#endif /* NR_LOG_H */
