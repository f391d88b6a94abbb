/*
 * run.h - job runs: one run from RUNNING to its final status, and the
 * runner that executes up to worker.max_concurrent_jobs runs at once.
 *
 * DESIGN
 *   The runner owns max_concurrent_jobs run threads, each with its own
 *   PostgreSQL connection kept across runs.  The intake thread hands it a
 *   request (nr_runner_submit) only when a slot is free, so the request
 *   queue never holds more than the slots.  A run thread:
 *     loads the job, marks it RUNNING, resolves its devices, submits one
 *     task per device to the shared pool, writes the results of the tasks
 *     that have reported back (device threads never touch PostgreSQL), sets
 *     the final status and completed_at,
 *   then posts a completion that the intake thread collects
 *   (nr_runner_collect) to acknowledge the queue entry.  `done` wakes the
 *   intake thread.
 *
 *   Each device is one task on the pool (dispatch.h): its attempts, the
 *   retries of the failure classes that are retried (failure.def) and the
 *   device's circuit breaker (breaker.h, one map owned by the runner and
 *   shared by every run) happen on the pool threads; only the final
 *   result of a device reaches the run thread, with details.attempts and
 *   every login for the credential bookkeeping.
 *
 *   Results are written a batch at a time: every result that has come
 *   back while the previous batch was written (up to 256) in one
 *   transaction, the log events that tell of them after its COMMIT.  A
 *   batch of 32 or more is written in two halves at once, the second by
 *   the run thread's writer thread on a connection of its own (a
 *   snapshot's full-text indexing costs PostgreSQL a core per connection).
 *   A failed statement rolls its transaction back and the batch is written
 *   again one device at a time; a lost connection is waited out and the
 *   batch written again.  At most 512 results wait to be written: beyond
 *   that a pool thread waits before it takes another device.
 *
 *   At start, the first run thread to reach PostgreSQL checks that the
 *   master key opens the credentials' passwords and logs a system error
 *   naming the ids of those it does not (never a token or the key).
 *
 * Caller's steps:
 *   r = nr_runner_new(cfg, pool);
 *   while (nr_runner_free_slots(r) > 0) nr_runner_submit(r, &req);
 *   nr_runner_wait(r, 0.2); n = nr_runner_collect(r, done, max);
 *   nr_runner_free(r);      waits for runs in flight
 */
#ifndef NR_RUN_H
#define NR_RUN_H

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/pool.h"
#include "netraven/queue.h"

/* Final job statuses (docs/netraven.md §3.1). */
#define NR_STATUS_RUNNING             "RUNNING"
#define NR_STATUS_SUCCESS             "COMPLETED_SUCCESS"
#define NR_STATUS_PARTIAL_FAILURE     "COMPLETED_PARTIAL_FAILURE"
#define NR_STATUS_FAILURE             "COMPLETED_FAILURE"
#define NR_STATUS_NO_DEVICES          "COMPLETED_NO_DEVICES"
#define NR_STATUS_NO_CREDENTIALS      "COMPLETED_NO_CREDENTIALS"
#define NR_STATUS_FAILED_UNEXPECTED   "FAILED_UNEXPECTED"
#define NR_STATUS_FAILED_DISPATCHER   "FAILED_DISPATCHER_ERROR"
#define NR_STATUS_FAILED_CREDENTIALS  "FAILED_CREDENTIAL_RESOLUTION"

/* How a run ended, for the intake thread. */
enum nr_run_outcome {
    NR_RUN_RECORDED = 0,    /* final status written: acknowledge the entry */
    NR_RUN_REJECTED,        /* the entry cannot run (job not found): dead-letter it */
    NR_RUN_NOT_RECORDED,    /* PostgreSQL failed: leave the entry pending */
};

/* Which intake a run came from; each intake collects its own completions. */
enum nr_run_source {
    NR_RUN_SOURCE_STREAM = 0,   /* the native Redis Stream (the stream intake) */
    NR_RUN_SOURCE_RQ,           /* python-rq queues (the RQ intake thread) */
    NR_RUN_SOURCE_COUNT
};

struct nr_run_request {
    enum nr_run_source source;
    char              *entry_id;    /* queue entry / RQ job id, owned */
    struct nr_payload  payload;     /* owned */
};

struct nr_run_done {
    enum nr_run_source   source;
    char                *entry_id;  /* owned by the receiver */
    long long            job_id;
    enum nr_run_outcome  outcome;
    const char          *status;    /* static string: the final status, or NULL */
    char                *reason;    /* owned; why it was rejected / not recorded */
    unsigned             devices, succeeded;
};

struct nr_runner;

/* Start the run threads.  NULL if a thread could not be started. */
struct nr_runner *nr_runner_new(const struct nr_config *cfg, struct nr_pool *pool);

/* Slots free for new runs (max_concurrent_jobs minus runs in flight or
 * waiting). */
size_t nr_runner_free_slots(struct nr_runner *r);
size_t nr_runner_in_flight(struct nr_runner *r);

/* Hand over a request; the runner owns req's contents afterwards (req is
 * zeroed).  NR_EFULL when no slot is free, NR_ECLOSED while closing. */
int nr_runner_submit(struct nr_runner *r, struct nr_run_request *req);

/* Wait up to timeout_s until a completion from source is ready. */
void nr_runner_wait(struct nr_runner *r, enum nr_run_source source, double timeout_s);

/* Take up to max completions of runs from source; returns how many were
 * written to out. */
size_t nr_runner_collect(struct nr_runner *r, enum nr_run_source source,
                         struct nr_run_done *out, size_t max);
void nr_run_done_clear(struct nr_run_done *d);

/* Stop taking requests, wait for the runs in flight, join, free.  Pending
 * completions not collected are freed.  NULL ok. */
void nr_runner_free(struct nr_runner *r);

/* The final status from per-device outcomes (docs/netraven.md §3.2). */
const char *nr_run_final_status(unsigned devices, unsigned succeeded);

#endif /* NR_RUN_H */
