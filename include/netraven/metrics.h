/*
 * metrics.h - Prometheus metrics: counters that the other modules bump,
 * and the HTTP endpoint (metrics.listen) that serves them as the text
 * exposition format (version 0.0.4).
 *
 * DESIGN
 *   Counting is lock-free: every counter, gauge and histogram bucket is a
 *   process-wide atomic, bumped with a relaxed add by a one-line hook at
 *   the place where the thing happens (run.c: a job's final status and
 *   each device result; handlers/backup.c: a backup's duration;
 *   ssh/session.c: sessions opened and freed; dispatch/breaker.c: breakers
 *   opening and closing; log/: rows spooled, session events dropped).  A
 *   hook never blocks, allocates or fails, so it may sit on any thread.
 *
 *   Serving: libmicrohttpd runs one thread of its own (signals blocked)
 *   that answers GET /metrics.  A scrape reads the atomics, the log
 *   router's counters (nr_log_get_stats), and, on its own connections
 *   with short timeouts, the queues in Redis (depth and age of the oldest
 *   waiting entry of the stream and of each RQ queue) and whether
 *   PostgreSQL answers.  Device work never waits on a scrape: a slow
 *   Redis or PostgreSQL only makes the scrape slow.
 *
 * Caller's steps:
 *   nr_metrics_job_done(status);               ... and the other hooks
 *   srv = nr_metrics_server_start(cfg, err, sizeof err);   metrics.listen set
 *   ...
 *   nr_metrics_server_stop(srv);
 *
 * For tests: nr_metrics_snapshot_take() and nr_metrics_render() turn the
 * counters into text without a server.
 */
#ifndef NR_METRICS_H
#define NR_METRICS_H

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/log.h"

/* Plain counters and gauges moved with nr_metrics_add(). */
enum nr_metric {
    NR_M_SESSIONS_IN_FLIGHT = 0,    /* gauge: SSH sessions connected, not freed */
    NR_M_BREAKERS_OPEN,             /* gauge: devices whose breaker is not closed */
    NR_M_LOG_DB_SPOOLED,            /* counter: log rows moved to the spool */
    NR_M_SESSION_EVENTS_DROPPED,    /* counter: session events not published */
    NR_M_COUNT
};

/* Final job statuses (run.h) counted by name; anything else is "other". */
#define NR_METRICS_JOB_STATUSES 9
/* Failure classes of device tasks (the "class" of job_results.details);
 * index 0 is "none", the class of every success; the last is "other". */
#define NR_METRICS_TASK_CLASSES 10
/* Backup duration buckets: NR_METRICS_BUCKETS - 1 bounds, then +Inf. */
#define NR_METRICS_BUCKETS 13

extern const char *const nr_metrics_job_status_names[NR_METRICS_JOB_STATUSES];
extern const char *const nr_metrics_task_class_names[NR_METRICS_TASK_CLASSES];
extern const double nr_metrics_backup_bounds[NR_METRICS_BUCKETS - 1];

/* ---- hooks: thread-safe, lock-free, never fail ---- */

void nr_metrics_add(enum nr_metric m, long long delta);
/* A run ended with this final status (NULL counts as "other"). */
void nr_metrics_job_done(const char *status);
/* A device's final result; cls is details.class on failure (NULL or an
 * unknown class counts as "other"). */
void nr_metrics_device_task(bool success, const char *cls);
/* One config_backup attempt took seconds, connect to disconnect. */
void nr_metrics_backup_observe(bool success, double seconds);

/* ---- rendering ---- */

/* One queue's state as read from Redis at scrape time. */
struct nr_metrics_queue {
    const char *kind;           /* "stream" or "rq" */
    const char *name;           /* queue.stream, or an RQ queue name */
    long long   depth;          /* entries waiting or running, not acknowledged */
    double      oldest_age_s;   /* age of the oldest of them; 0 when empty;
                                   NAN when unknown (the sample is left out) */
};

struct nr_metrics_snapshot {
    uint64_t  jobs[NR_METRICS_JOB_STATUSES];
    uint64_t  tasks_ok;                             /* class "none" */
    uint64_t  tasks_failed[NR_METRICS_TASK_CLASSES];  /* [0] unused */
    struct {
        uint64_t buckets[NR_METRICS_BUCKETS];       /* per bucket, not cumulative */
        double   sum_s;
    } backup[2];                                    /* [0] failure, [1] success */
    long long values[NR_M_COUNT];
    struct nr_log_stats log;
    int       pg_up, redis_up;                      /* 0 or 1; -1: not probed, left out */
    const struct nr_metrics_queue *queues;          /* NULL when Redis is down */
    size_t    nqueues;
};

/* Read every atomic into s (log stats too); pg_up and redis_up are set to
 * -1 and queues to none: the server fills them in. */
void nr_metrics_snapshot_take(struct nr_metrics_snapshot *s);

/* The text exposition of s (HELP and TYPE lines, then samples, every
 * family always present).  Returns a malloc'd NUL-terminated text, its
 * length in *len when len is not NULL; the caller frees it. */
char *nr_metrics_render(const struct nr_metrics_snapshot *s, size_t *len);

/* ---- the HTTP endpoint ---- */

struct nr_metrics_server;

/*
 * Listen on cfg->metrics.listen ("host:port", ":port" for every IPv4
 * address, "[v6addr]:port") and serve /metrics from a thread of
 * libmicrohttpd.  cfg must outlive the server.  Returns the server, or
 * NULL with a one-line reason in err (bind failed, bad address) and
 * nothing left running.  Call it only when metrics.listen is not empty.
 */
struct nr_metrics_server *nr_metrics_server_start(const struct nr_config *cfg,
                                                  char *err, size_t errlen);

/* Stop answering, join the thread, close the connections, free.  NULL ok. */
void nr_metrics_server_stop(struct nr_metrics_server *srv);

#endif /* NR_METRICS_H */
