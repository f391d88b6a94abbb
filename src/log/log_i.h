/*
 * log_i.h - what the log module's files share and nobody else sees:
 * the record, the bounded sink queue, a growable text buffer, and the
 * hooks between the router (router.c) and the sink threads (sink_*.c).
 *
 * Threads and queues (see also log.h DESIGN):
 *
 *   emitter threads ──push──► out queue   ──► "out" thread   (stdout + file)
 *                    ──push──► db queue    ──► "db" thread    (COPY into logs)
 *                    ──push──► redis queue ──► "redis" thread (PUBLISH)
 *
 *   The db thread also owns the spool (spool.c, <worker.spool_dir>/
 *   logs.spool): rows PostgreSQL cannot take yet move there from the old
 *   end of memory when the queue passes half its bound (nr_logq_nap wakes
 *   it), and are written back first.  See sink_db.c.
 *
 *   A record is rendered once and shared by the queues it went to; its
 *   reference count is the number of queues that accepted it, and the
 *   last sink to finish with it frees it.
 *
 *   Each queue is an array of at most `cap` record pointers behind one
 *   mutex.  A push takes the mutex for a few instructions and never waits:
 *   a full queue refuses the record and counts a drop.  The sink thread
 *   swaps the whole array for its spare one (nr_logq_take), works on the
 *   batch without the lock, and reports progress with nr_logq_done, which
 *   wakes nr_log_flush() callers waiting for a sequence number.
 */
#ifndef NR_LOG_I_H
#define NR_LOG_I_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>

#include "netraven/log.h"
#include "netraven/metrics.h"     /* the sinks' counters for /metrics */

/* ---------------------------------------------------------------- record */

struct nr_log_rec {
    atomic_uint        refs;        /* queues still holding it */
    enum nr_event      ev;
    unsigned           sinks;       /* nr_sink bits this record goes to */
    long long          job_id;      /* 0: none */
    long long          device_id;   /* 0: none */
    struct timespec    ts;          /* CLOCK_REALTIME at emit */
    long               tid;         /* kernel thread id of the emitter */
    size_t             msg_len;
    size_t             meta_len;
    size_t             head_len;
    char              *msg;         /* rendered message, NUL-terminated */
    char              *meta;        /* compact JSON object text */
    char              *head;        /* NULL, or what the human format writes
                                       before msg (session records: the
                                       catalog's "Session log: sent 20 bytes",
                                       their msg being the session text) */
    size_t             parts;       /* raw: the records it stands for */
    bool               raw;         /* session data as the session gave it:
                                       msg holds the bytes (msg_len), meta the
                                       direction; a sink writes the records
                                       nr_log_session describes from it with
                                       nr_log_session_each */
    char               data[];      /* msg, meta and head live here */
};

/* Render a record (message, meta, timestamp, thread) with one reference
 * and count it as emitted; never NULL.  The caller pushes or writes it and
 * drops its reference with nr_log_rec_unref. */
struct nr_log_rec *nr_log_rec_new(enum nr_event ev, long long job_id, long long device_id,
                                  const struct nr_kv *kv, size_t nkv, unsigned sinks);

/* Call fn with each record a raw session record stands for (message,
 * meta and head as nr_log_session describes them; its time and thread),
 * in order; a plain record is passed as it is.  The records fn sees live
 * until it returns. */
void nr_log_session_each(const struct nr_log_rec *r,
                         void (*fn)(const struct nr_log_rec *rec, void *arg), void *arg);

/* Drop one reference; frees the record when it was the last.  NULL ok. */
void nr_log_rec_unref(struct nr_log_rec *r);

/* The bytes a record holds (what a queue's byte bound counts). */
static inline size_t nr_log_rec_size(const struct nr_log_rec *r)
{
    return sizeof(*r) + r->msg_len + r->meta_len + r->head_len + 3;
}

/* --------------------------------------------------------------- queue */

struct nr_logq {
    pthread_mutex_t     mu;
    pthread_cond_t      wake;       /* consumer: records arrived, or stop */
    pthread_cond_t      done_cv;    /* nr_log_flush: progress was made */
    struct nr_log_rec **v;          /* pending records, at most cap */
    struct nr_log_rec **spare;      /* the array the consumer works on */
    size_t              n;
    size_t              cap;
    /* Counters change under mu; atomics so that stats read them without it. */
    atomic_uint_fast64_t pushed;    /* records ever accepted */
    atomic_uint_fast64_t done;      /* records the sink finished with */
    atomic_uint_fast64_t dropped;   /* refused (full, stopping) or given up */
    size_t              high;       /* wake the consumer when n reaches it (0: no) */
    /* nr_logq_linger: a consumer that took a batch less than linger_ns ago
     * lets the next one gather (until next_take_ns) instead of waking for
     * every record; an emitter that has to wait for room ends it (hurry). */
    uint64_t            linger_ns;
    uint64_t            next_take_ns;
    bool                hurry;
    bool                stop;
    atomic_bool         running;    /* a thread consumes this queue */
    /* Optional byte bound (nr_logq_bound_bytes): the bytes of the records
     * queued or not yet released by the consumer, at most max_bytes; an
     * emitter waits up to room_wait_s for room, then its record is
     * dropped. */
    pthread_cond_t      room;
    size_t              bytes;
    size_t              max_bytes;  /* 0: no byte bound */
    double              room_wait_s;
};

/* Set up q for at most cap records.  Returns 0 or NR_ERR. */
int  nr_logq_init(struct nr_logq *q, size_t cap);
/* Bound the bytes of q's records to max_bytes (nr_log_rec_size); a push
 * that would pass it waits up to wait_s for the consumer to release room
 * (nr_logq_release), then drops.  A record alone in the queue always
 * fits. */
void nr_logq_bound_bytes(struct nr_logq *q, size_t max_bytes, double wait_s);
/* How long a session's thread waits for room in the live view's queue
 * (logging.redis.queue_bytes) before its record is dropped: the publisher
 * drains in a moment when it only lacked CPU, and drops at once when
 * Redis is away. */
#define NR_LOG_ROOM_WAIT_S 0.25
/* Consumer: records of that many bytes (nr_log_rec_size) are finished
 * and freed; waiting emitters may go on. */
void nr_logq_release(struct nr_logq *q, size_t bytes);
/* Release q; records still queued are unref'd.  Safe on a zeroed q. */
void nr_logq_destroy(struct nr_logq *q);
/* Queue r (the caller's reference moves to the queue).  Returns false and
 * counts a drop when the queue is full or stopping; then the caller still
 * owns its reference. */
bool nr_logq_push(struct nr_logq *q, struct nr_log_rec *r);
/* Consumer: wait until records are queued, stop is asked, or (if
 * timeout_s >= 0) the timeout passes; then take every queued record.
 * With a linger (nr_logq_linger), records that come within it of the
 * previous take wait for its end, or for half the queue's bound, or for
 * an emitter short of room, and go as one batch.
 * Returns the count (0: timeout, or stop with nothing queued) and sets
 * *batch to an array the consumer owns until it calls nr_logq_take again;
 * it must be finished with every record of a batch before that (written,
 * spooled, or given up; nr_logq_done() counts the finished ones, which may
 * come later for spooled records). */
size_t nr_logq_take(struct nr_logq *q, struct nr_log_rec ***batch, double timeout_s);
/* How long after a take a busy queue's records gather before the next
 * one: under load each sink wakes at most this often (not once per
 * record, which costs its thread and the emitters a wake-up each, and
 * PostgreSQL or Redis a small batch each); a record that comes after a
 * quiet spell is taken at once.  Records wait at most this much longer. */
#define NR_LOG_LINGER_S 0.01
void nr_logq_linger(struct nr_logq *q, double seconds);
/* Consumer: n records of the current batch are finished (written,
 * published, or given up and counted). */
void nr_logq_done(struct nr_logq *q, size_t n);
/* Consumer: sleep up to seconds, returning early (true) when stop is
 * asked, and also returning (false) as soon as `high`
 * records are queued (0: no such limit). */
bool nr_logq_nap(struct nr_logq *q, double seconds, size_t high);
/* Records queued right now. */
size_t nr_logq_len(struct nr_logq *q);
/* True once stop was asked. */
bool nr_logq_stopping(struct nr_logq *q);

/* --------------------------------------------------------------- buffer */

/* A growable string.  It may start on a caller's stack buffer
 * (nr_sbuf_init_stack); it moves to the heap when it outgrows it. */
struct nr_sbuf {
    char   *p;
    size_t  len;
    size_t  cap;
    bool    onstack;
};

void nr_sbuf_init_stack(struct nr_sbuf *b, char *buf, size_t size);
void nr_sbuf_reserve(struct nr_sbuf *b, size_t extra);
void nr_sbuf_put(struct nr_sbuf *b, const char *s, size_t n);
void nr_sbuf_puts(struct nr_sbuf *b, const char *s);
void nr_sbuf_putc(struct nr_sbuf *b, char c);
void nr_sbuf_printf(struct nr_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append s as a quoted JSON string (s is valid UTF-8). */
void nr_sbuf_json_str(struct nr_sbuf *b, const char *s);
/* Keep the allocation, forget the contents. */
static inline void nr_sbuf_reset(struct nr_sbuf *b) { b->len = 0; if (b->p) b->p[0] = '\0'; }
/* Free a heap buffer (a stack one is left alone); b is then empty. */
void nr_sbuf_free(struct nr_sbuf *b);

/* Valid UTF-8?  And a malloc'd copy of s[0..n) with every invalid byte
 * (and NUL) replaced by U+FFFD, for text that must become JSON or text. */
bool  nr_utf8_valid(const char *s, size_t n);
char *nr_utf8_sanitize(const char *s, size_t n);

/* Decimal text of v into buf (at least 21 bytes), NUL-terminated; returns
 * its length.  printf is a measurable share of a sink's time per record. */
size_t nr_fmt_ll(char *buf, long long v);

/* ISO 8601 UTC timestamps as nr_iso_ts writes them, with the broken-down
 * seconds cached: a sink formats many records of the same second. */
struct nr_ts_cache {
    time_t sec;
    bool   valid;
    char   head[20];        /* "2026-11-23T18:07:01" */
};
void nr_ts_format(struct nr_ts_cache *c, const struct timespec *ts, char out[NR_ISO_TS_LEN]);

/* The record as the JSON object of docs/netraven.md §5 (timestamp,
 * log_type, level, job_id, device_id, source, message, meta), appended to
 * b, no newline. */
void nr_log_rec_json(struct nr_sbuf *b, const struct nr_log_rec *r, struct nr_ts_cache *tc);

/* The JSON nr_log_rec_json writes for each record nr_log_session_each
 * makes of the raw session record r, built in json and passed to fn, in
 * order (the publisher's way: no record is made). */
void nr_log_session_json_each(const struct nr_log_rec *r, struct nr_sbuf *json,
                              struct nr_ts_cache *tc,
                              void (*fn)(const struct nr_sbuf *json, void *arg), void *arg);

/* ---------------------------------------------------------------- spool */

/* A logs row as text: what the DB sink writes and the spool keeps.  The
 * strings belong to a record or to the spool's read buffer. */
struct nr_log_row {
    const char *ts;             /* ISO 8601 UTC */
    const char *log_type;
    const char *level;
    long long   job_id;         /* 0: NULL */
    long long   device_id;      /* 0: NULL */
    const char *source;
    const char *message;
    const char *meta;           /* JSON object text */
};

/* The row of a record; ts is the caller's buffer for the timestamp. */
void nr_log_row_of(const struct nr_log_rec *r, struct nr_ts_cache *tc, char ts[NR_ISO_TS_LEN],
                   struct nr_log_row *w);

/* The DB sink's spool file (spool.c has the format and the crash rules).
 * Used by the "db" thread only, opened before it starts and closed after
 * it ended. */
struct nr_spool {
    char       *dir;            /* worker.spool_dir; NULL: no spooling */
    char       *path;           /* the file held (flock), NULL: none yet */
    int         fd;             /* -1: none */
    uint64_t    seq;            /* of the last header written */
    uint64_t    epoch;
    uint64_t    head;           /* first row not known committed */
    uint64_t    tail;           /* where the next row goes */
    uint64_t    rows;           /* rows in [head, tail) */
    uint64_t    cut;            /* bytes of a damaged tail cut at open */
    long long   pending_xid;    /* COMMIT of [head, pending_end) under way */
    uint64_t    pending_end;
    struct nr_sbuf wbuf;
    char       *rbuf;
    size_t      rcap;
    struct nr_log_row *rowv;
    size_t      rowcap;
    char        error[256];     /* why the last call failed */
};

extern struct nr_spool nr_log_spool;

/* Set sp up for dir (NULL or "": no spooling) and take over an existing
 * spool file there, if one is free, with its rows and pending mark.  The
 * file is created only by the first append.  Returns 0, or an error with
 * sp->error set (sp is then usable; the next append tries again). */
int  nr_spool_init(struct nr_spool *sp, const char *dir);
/* Close the file (releasing it to the next process) and free. */
void nr_spool_clear(struct nr_spool *sp);
/* Append n records after the last row and fdatasync.  Returns 0, or an
 * error (sp->error) with nothing appended. */
int  nr_spool_append(struct nr_spool *sp, struct nr_log_rec *const *recs, size_t n,
                     struct nr_ts_cache *tc);
/* The oldest rows: up to max, or with limit != 0 exactly those before
 * offset limit.  *rows (valid until the next read), *n (0: empty) and
 * *end (offset after the last) are set on success.  NR_EIO: read error
 * (retry later); NR_EINVAL: damaged data at head (sp->error). */
int  nr_spool_read(struct nr_spool *sp, size_t max, uint64_t limit,
                   const struct nr_log_row **rows, size_t *n, uint64_t *end);
/* Record, synced, that the COMMIT of xid may take the rows before end. */
int  nr_spool_mark(struct nr_spool *sp, long long xid, uint64_t end);
/* The rows before end (rows of them) are committed: forget them; the
 * file is emptied when nothing is left. */
int  nr_spool_consume(struct nr_spool *sp, uint64_t end, uint64_t rows);
/* Give up on a damaged file: move it aside (<path>.bad) and forget it. */
int  nr_spool_discard(struct nr_spool *sp);

/* ----------------------------------------------------- router <-> sinks */

/* The settings the sink threads need, copied from the config at init so
 * that the sinks do not depend on the config's lifetime. */
struct nr_log_settings {
    enum nr_log_format format;
    char   *file;               /* NULL: no file sink */
    char   *db_url;             /* database.url as configured (secret) */
    int     db_batch_size;
    char   *spool_dir;          /* worker.spool_dir; NULL: no spool */
    char   *redis_url;          /* scheduler.redis_url (may carry a password);
                                   used when redis_host is NULL */
    char   *redis_host;         /* logging.redis.host, NULL: unset */
    int     redis_port;         /* logging.redis.port */
    int     redis_db;           /* logging.redis.db */
    char   *redis_password;     /* logging.redis.password (secret), NULL: none */
    char   *channel_prefix;
};

extern struct nr_log_settings nr_log_set;
extern struct nr_logq nr_log_q_out;
extern struct nr_logq nr_log_q_db;
extern struct nr_logq nr_log_q_redis;

/* Emit ev to the sinks in mask (intersected with its routed set), or to
 * exactly `force` when force is non-zero (used for the file-failure warning,
 * which must reach stdout whatever the level).  Sink threads use this to
 * keep their own bookkeeping events out of their own sink. */
void nr_log_emit_mask(enum nr_event ev, long long job_id, long long device_id,
                      const struct nr_kv *kv, size_t nkv, unsigned mask,
                      unsigned force);

/* Sink threads; each takes no argument beyond the globals above. */
void *nr_log_out_main(void *arg);
void *nr_log_db_main(void *arg);
void *nr_log_redis_main(void *arg);

/* Per-sink counters the sinks keep (atomics; read by nr_log_get_stats). */
extern atomic_uint_fast64_t nr_log_db_written;
extern atomic_uint_fast64_t nr_log_db_lost;      /* given up after queueing */
extern atomic_uint_fast64_t nr_log_db_spooled;   /* rows in the spool now */
extern atomic_uint_fast64_t nr_log_db_recovered; /* earlier runs' rows committed */
extern atomic_uint_fast64_t nr_log_db_found;     /* earlier runs' rows at start */
extern atomic_uint_fast64_t nr_log_redis_published;
extern atomic_uint_fast64_t nr_log_redis_lost;   /* dropped after queueing */

/* Count n records of job_id that were bound for Redis and dropped (queue
 * full, Redis away), for nr_log_session_drops_take().  Thread-safe. */
void nr_log_count_drop(long long job_id, uint64_t n);
extern atomic_uint_fast64_t nr_log_file_errors;

/* SIGHUP flag: set by nr_log_reopen, consumed by the out thread. */
extern atomic_int nr_log_reopen_req;

/* Wall-clock seconds to wait for the DB sink at shutdown. */
#define NR_LOG_SHUTDOWN_DB_WAIT_S 10.0

/* Upper-case level names for the human format ("INFO"). */
const char *nr_log_level_upper(enum nr_log_level l);

/* Blocks every signal in the calling (sink) thread: signals are for the
 * main thread, and a SIGPIPE from a closed stdout or socket then turns
 * into an EPIPE error. */
void nr_log_block_signals(void);

#endif /* NR_LOG_I_H */
