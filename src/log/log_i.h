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

#include "netraven/log.h"

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
    char              *msg;         /* rendered message, NUL-terminated */
    char              *meta;        /* compact JSON object text */
    char               data[];      /* msg and meta live here */
};

/* Render a record (message, meta, timestamp, thread) with one reference
 * and count it as emitted; never NULL.  The caller pushes or writes it and
 * drops its reference with nr_log_rec_unref. */
struct nr_log_rec *nr_log_rec_new(enum nr_event ev, long long job_id, long long device_id,
                                  const struct nr_kv *kv, size_t nkv, unsigned sinks);

/* Drop one reference; frees the record when it was the last.  NULL ok. */
void nr_log_rec_unref(struct nr_log_rec *r);

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
    bool                stop;
    atomic_bool         running;    /* a thread consumes this queue */
};

/* Set up q for at most cap records.  Returns 0 or NR_ERR. */
int  nr_logq_init(struct nr_logq *q, size_t cap);
/* Release q; records still queued are unref'd.  Safe on a zeroed q. */
void nr_logq_destroy(struct nr_logq *q);
/* Queue r (the caller's reference moves to the queue).  Returns false and
 * counts a drop when the queue is full or stopping; then the caller still
 * owns its reference. */
bool nr_logq_push(struct nr_logq *q, struct nr_log_rec *r);
/* Consumer: wait until records are queued, stop is asked, or (if
 * timeout_s >= 0) the timeout passes; then take every queued record.
 * Returns the count (0: timeout, or stop with nothing queued) and sets
 * *batch to an array the consumer owns until it calls nr_logq_take again;
 * it must nr_logq_done() every record of a batch before that. */
size_t nr_logq_take(struct nr_logq *q, struct nr_log_rec ***batch, double timeout_s);
/* Consumer: n records of the current batch are finished (written,
 * published, or given up and counted). */
void nr_logq_done(struct nr_logq *q, size_t n);
/* Consumer: sleep up to seconds, returning early (true) when stop is asked. */
bool nr_logq_sleep(struct nr_logq *q, double seconds);
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

/* The record as the JSON object of CONTRACT 3 (timestamp, log_type, level,
 * job_id, device_id, source, message, meta), appended to b, no newline. */
void nr_log_rec_json(struct nr_sbuf *b, const struct nr_log_rec *r, struct nr_ts_cache *tc);

/* ----------------------------------------------------- router <-> sinks */

/* The settings the sink threads need, copied from the config at init so
 * that the sinks do not depend on the config's lifetime. */
struct nr_log_settings {
    enum nr_log_format format;
    char   *file;               /* NULL: no file sink */
    char   *db_url;             /* database.url as configured (secret) */
    int     db_batch_size;
    char   *redis_url;          /* scheduler.redis_url (may carry a password) */
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
extern atomic_uint_fast64_t nr_log_redis_published;
extern atomic_uint_fast64_t nr_log_redis_lost;   /* dropped after queueing */
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
