/*
 * dispatch.h - one device's task on the pool: the handler's attempts,
 * with retries and the device's circuit breaker, up to the final result
 * that goes back to the run.
 *
 * DESIGN
 *   Every execution of a task runs on a pool thread and is one attempt.
 *   For a guarded handler (handler.h; the SSH job types), when the run
 *   has a breaker: the device's breaker (breaker.h, one map shared by
 *   every run) is asked before the handler runs and told the outcome
 *   after; an attempt whose failure class is retried (failure.def) goes
 *   back to the pool with nr_pool_submit_after after nr_retry_delay()
 *   (retry.h), up to worker.retry_attempts times, so that no thread
 *   waits; the retries stop when the breaker opens, when the worker is
 *   shutting down or when the pool refuses the task.  Other failures are
 *   logged as non-retriable.  Any other handler runs once.
 *
 *   Only the final result reaches the caller, through d->done on the
 *   pool thread of the last attempt: the last attempt's result, with
 *   every attempt's logins (for the credential bookkeeping) and, when
 *   guarded, details.attempts (class, stage, error, ms and retry_in_s of
 *   each) and details.retries.  A task is touched by one thread at a
 *   time: the submitter, then the pool thread of the attempt under way,
 *   then (from done on) the caller again.
 *
 * Caller's steps (a run thread):
 *   struct nr_dispatch d = { .cfg, .pool, .breaker, .closing, .handler,
 *                            .job, .payload, .done };       outlives its tasks
 *   nr_dispatch_task_init(&t, &d, device, creds, ncreds);   per device
 *   t.arg = ...;                                            the caller's
 *   if (nr_dispatch_submit(&t) != 0) ... the pool is closing: no done ...
 *   ... d.done(&t) on a pool thread: t.res is the final result ...
 *   nr_dispatch_task_clear(&t);                             frees t.res
 */
#ifndef NR_DISPATCH_H
#define NR_DISPATCH_H

#include <stdatomic.h>

#include "netraven/backoff.h"
#include "netraven/breaker.h"
#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/handler.h"
#include "netraven/pool.h"

struct nr_dispatch_task;

/* The final result of a task is ready (t->res); on a pool thread. */
typedef void (*nr_dispatch_done_fn)(struct nr_dispatch_task *t);

/* What the tasks of one run share; borrowed, it outlives them. */
struct nr_dispatch {
    const struct nr_config      *cfg;
    struct nr_pool              *pool;
    struct nr_breaker           *breaker;   /* NULL: no breaker and no retries */
    struct nr_backoff_stop      *closing;   /* requested: the worker is shutting
                                             * down, no more retries; NULL: never */
    const struct nr_handler_def *handler;
    const struct nr_job         *job;
    const struct nr_payload     *payload;
    nr_dispatch_done_fn          done;
};

struct nr_dispatch_task {
    const struct nr_dispatch   *d;
    const struct nr_device     *device;     /* borrowed */
    const struct nr_credential *creds;      /* the device's, best first; borrowed */
    size_t                      ncreds;
    void                       *arg;        /* the caller's */
    struct nr_result            res;        /* the final result, once done is called */

    /* the attempts so far; dispatch.c's */
    unsigned tries;
    json_t  *attempts;                      /* details.attempts under way */
    uint64_t rng;                           /* retry jitter */
    struct nr_cred_attempt logins[NR_ARRAY_LEN(((struct nr_result *)0)->attempts)];
    size_t   nlogins;
};

/* Prepare t for one device of the run d (t's memory is the caller's). */
void nr_dispatch_task_init(struct nr_dispatch_task *t, const struct nr_dispatch *d,
                           const struct nr_device *device, const struct nr_credential *creds,
                           size_t ncreds);

/* Queue the task's first attempt.  0, after which d->done is called once;
 * NR_ECLOSED when the pool is being freed (done is never called). */
int nr_dispatch_submit(struct nr_dispatch_task *t);

/* The same without waiting for room in the pool's queue: NR_EFULL when
 * there is none (nothing was queued; try again later). */
int nr_dispatch_try_submit(struct nr_dispatch_task *t);

/* Free t->res (details, config) and what the attempts left.  NULL ok. */
void nr_dispatch_task_clear(struct nr_dispatch_task *t);

#endif /* NR_DISPATCH_H */
