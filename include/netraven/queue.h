/*
 * queue.h - the native job queue on a Redis Stream.
 *
 * Entries of stream queue.stream (default netraven:jobs) have one field,
 * "payload", holding {"job_id": N} with optional "device_ids": [..],
 * "job_type", "run_id" and "commands": [..].  Workers read them through the
 * consumer group queue.group (netraven-workers); an entry is acknowledged
 * only after its run is recorded, and deleted from the stream as it is
 * acknowledged, so the stream holds only entries not yet done.  An entry
 * that cannot be run is copied to queue.dead_stream with the reason, then
 * acknowledged and deleted; so is one delivered more than
 * worker.max_deliveries times (a poison entry that kills every worker that
 * takes it): msg.deliveries tells the caller.
 *
 * No function frees what the caller passed in; replies and messages handed
 * out are the caller's to clear, on the error path too.
 *
 * One struct nr_queue is one Redis connection (a struct nr_redis of
 * redis.h); not thread-safe.  It is the stream intake's: connecting makes
 * the consumer group.  Whoever only reads the stream (the metrics scrape)
 * opens a plain nr_redis instead, and never creates the group.
 *
 * Caller's steps (the stream intake, intake.c below):
 *   q = nr_queue_connect(cfg, consumer);  if (q->err) ...
 *   nr_queue_read(q, msgs, max, block_ms, &n);
 *   for each msg: nr_payload_parse(...) -> run, then nr_queue_ack(); or
 *                 nr_queue_dead(q, msg, reason)
 *   nr_queue_msg_clear(&msg); nr_queue_free(q);
 */
#ifndef NR_QUEUE_H
#define NR_QUEUE_H

#include "netraven/common.h"
#include "netraven/config.h"

struct nr_redis;

struct nr_queue {
    struct nr_redis *conn;      /* the connection (redis.h), owned */
    const struct nr_config *cfg;
    char *consumer;
    int   err;                  /* 0 or NR_EIO */
    char  errstr[256];
};

struct nr_queue_msg {
    char  *entry_id;            /* "1700000000000-0" */
    char  *payload;             /* raw field value; NULL if the field is missing */
    size_t payload_len;
    long long deliveries;       /* times Redis has handed the entry out, this time
                                 * included (XPENDING's delivery count): 1 for a new
                                 * entry, more for one re-read after a restart or
                                 * claimed; 0 when Redis no longer knew it */
};

/* A parsed payload. */
struct nr_payload {
    long long  job_id;
    long long *device_ids;      /* NULL when absent */
    size_t     n_device_ids;
    char      *job_type;        /* NULL when absent */
    char      *run_id;          /* NULL when absent */
    struct nr_strlist commands; /* empty when absent */
};

/* Parse and validate a payload (pure, no I/O).  Returns 0 and fills *out,
 * or NR_EINVAL with *reason a malloc'd text naming what was wrong
 * ("payload is not valid JSON: ...", "job_id is missing", "job_id must be
 * a positive integer", ...). */
int  nr_payload_parse(const char *json, size_t len, struct nr_payload *out, char **reason);
void nr_payload_clear(struct nr_payload *p);

/* Connect to scheduler.redis_url and make sure the group exists (creating
 * the stream with MKSTREAM): the stream intake's connection, and the
 * `enqueue` command's.  Never NULL; check q->err.  Any failure, a command
 * Redis refused included, sets q->err until nr_queue_reset(). */
struct nr_queue *nr_queue_connect(const struct nr_config *cfg, const char *consumer);
/* Reconnect after err, and make sure of the group again; 0 or NR_EIO. */
int  nr_queue_reset(struct nr_queue *q);
void nr_queue_free(struct nr_queue *q);

/* Read up to max entries: first this consumer's own pending entries that
 * were never acknowledged (after a restart), then new ones, blocking up to
 * block_ms.  Returns 0 with *n set (possibly 0) and msgs[0..n) filled
 * (deliveries too), or NR_EIO with msgs untouched. */
int  nr_queue_read(struct nr_queue *q, struct nr_queue_msg *msgs, size_t max,
                   int block_ms, size_t *n);
void nr_queue_msg_clear(struct nr_queue_msg *m);

/* Take over entries that other consumers (a dead worker) have held
 * pending for at least idle_ms without acknowledging them: XAUTOCLAIM, up
 * to max, continuing from where the previous call stopped.  Entries whose
 * data was deleted are acknowledged and skipped.  Claims nothing (0, *n 0)
 * until nr_queue_read() has re-read this consumer's own pending entries
 * after the connect, which would hand the claimed ones out again.  Returns
 * 0 with *n set and
 * msgs[0..n) filled (deliveries counts this claim), or NR_EIO with msgs
 * untouched (the entries claimed stay pending, for a later claim). */
int  nr_queue_claim(struct nr_queue *q, long idle_ms, struct nr_queue_msg *msgs,
                    size_t max, size_t *n);

/* Reset the idle time of entries this consumer is still running (XCLAIM
 * to itself, JUSTID), so that no live worker claims a long run.
 * 0 or NR_EIO. */
int  nr_queue_touch(struct nr_queue *q, char *const *entry_ids, size_t n);

/* XACK the entry and XDEL it from the stream, in one transaction.  Also
 * pushes final_status (may be NULL) to the entry's done list
 * (netraven:jobs:done:<entry_id>, expiring after an hour) for
 * `enqueue --wait`.  0 or NR_EIO. */
int nr_queue_ack(struct nr_queue *q, const char *entry_id, const char *final_status);

/* Copy the entry to the dead-letter stream with fields payload, reason,
 * entry_id, consumer, then acknowledge and delete it.  0 or NR_EIO. */
int nr_queue_dead(struct nr_queue *q, const struct nr_queue_msg *m, const char *reason);

/* XADD a payload to the stream; the new entry id is written to
 * id_out (malloc'd) when not NULL.  0 or NR_EIO. */
int nr_queue_enqueue(struct nr_queue *q, const char *payload_json, char **id_out);

/* Wait up to timeout_s for the final status of an entry (BLPOP on its done
 * list).  0 and *status (malloc'd), NR_ETIMEOUT, or NR_EIO. */
int nr_queue_wait_done(struct nr_queue *q, const char *entry_id, double timeout_s,
                       char **status);

/* ------------------------------------------------------------ intake.c */

/*
 * The stream intake: the daemon's taker of stream entries, beside the RQ
 * intake (rq.h), with the same shape (new / stop / free).
 *
 * DESIGN
 *   One thread, "stream-intake", started by nr_queue_intake_new(), owns one
 *   struct nr_queue (connected by the thread itself, so that a Redis that
 *   is down at start is waited for like one that goes away later) and the
 *   entry ids it handed to the runner; no other thread touches them.  The
 *   loop, every turn:
 *     1. write the heartbeat file (at most once a second; `health`);
 *     2. collect this intake's completions (nr_runner_collect, source
 *        STREAM) and acknowledge each recorded run's entry (XACK + XDEL),
 *        dead-letter each rejected one, leave a run not recorded pending;
 *     3. every third of worker.claim_idle_seconds: touch the entries its
 *        runs hold, so no live worker claims them; when a slot is free,
 *        claim the entries a dead worker left idle that long;
 *     4. when the runner has free slots, read as many entries (blocking
 *        queue.block_ms, or 50 ms while runs are in flight so completions
 *        are acknowledged promptly) and submit each; else wait on the
 *        runner's completion condition for up to 0.5 s.
 *   A Redis failure closes the connection; the loop reconnects with backoff
 *   (backoff.h: 0.5 s doubling to 10 s, SYS_REDIS_UNAVAILABLE once per
 *   outage), waiting on the intake's stop condition, so a stop never waits
 *   out a backoff.  Completions that could not be acknowledged are kept
 *   until Redis is back; runs go on meanwhile.
 *   nr_queue_intake_stop() ends the loop (at the latest after the read or
 *   runner wait under way); the thread then waits up to
 *   worker.shutdown_grace_seconds, counted from the stop, for its runs in
 *   flight, acknowledging each, and ends.  Runs still going then are left
 *   to the runner: their entries stay pending, for a live worker's claim.
 *
 * Caller's steps (the daemon, src/main.c):
 *   in = nr_queue_intake_new(&cfg, runner, name, heartbeat);  after nr_runner_new()
 *   ... on SIGTERM/SIGINT:
 *   nr_queue_intake_stop(in);             stop taking entries now
 *   nr_queue_intake_free(in);             the grace wait; before nr_runner_free()
 */
struct nr_runner;
struct nr_queue_intake;

/* Start the intake thread.  cfg and runner must outlive
 * nr_queue_intake_free().  consumer: the worker name, copied (NULL or "":
 * nr_config_worker_name()'s).  heartbeat: the file to write, copied; NULL:
 * none.  Returns the intake, or NULL when an argument is NULL or the
 * thread could not be created.  Never fails because Redis is down. */
struct nr_queue_intake *nr_queue_intake_new(const struct nr_config *cfg,
                                            struct nr_runner *runner, const char *consumer,
                                            const char *heartbeat);

/* Stop taking entries; returns at once (the grace wait is in _free).  Not
 * async-signal-safe.  Again: no-op.  in may be NULL. */
void nr_queue_intake_stop(struct nr_queue_intake *in);

/* Stop if not yet stopped, wait for the thread (the grace time at most,
 * from the first stop, plus the read under way) and free everything.
 * Must be called before nr_runner_free().  in may be NULL. */
void nr_queue_intake_free(struct nr_queue_intake *in);

#endif /* NR_QUEUE_H */
