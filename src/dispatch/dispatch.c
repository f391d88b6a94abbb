/*
 * dispatch.c - a device's task on the pool: attempts, retries and the
 * circuit breaker (see dispatch.h for the design).
 */
#include "netraven/dispatch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/log.h"
#include "netraven/retry.h"

static double mono_s(void)
{
    return (double)nr_mono_ns() / 1e9;
}

static double round_ms(uint64_t t0)
{
    return round((double)(nr_mono_ns() - t0) / 1e3) / 1e3;
}

void nr_dispatch_task_init(struct nr_dispatch_task *t, const struct nr_dispatch *d,
                           const struct nr_device *device, const struct nr_credential *creds,
                           size_t ncreds)
{
    memset(t, 0, sizeof(*t));
    t->d = d;
    t->device = device;
    t->creds = creds;
    t->ncreds = ncreds;
}

static void result_free(struct nr_result *a)
{
    json_decref(a->details);
    free(a->config);
    memset(a, 0, sizeof(*a));
}

void nr_dispatch_task_clear(struct nr_dispatch_task *t)
{
    if (t == NULL)
        return;
    result_free(&t->res);
    json_decref(t->attempts);
    t->attempts = NULL;
}

/* The result of an attempt the breaker refused: no connection was made. */
static void circuit_open_result(struct nr_dispatch_task *t, const struct nr_breaker_info *bi,
                                struct nr_result *out)
{
    const struct nr_dispatch *d = t->d;
    const struct nr_device *dev = t->device;
    char reason[160];

    if (bi->state == NR_BREAKER_OPEN)
        snprintf(reason, sizeof(reason), "%d consecutive connection failures; next trial in "
                 "%.1f s", bi->failures, bi->retry_in);
    else
        snprintf(reason, sizeof(reason), "a trial connection is under way");
    NR_LOG(NR_EV_BREAKER_REJECTED, d->job->id, dev->id, NR_S("device_name", dev->hostname),
           NR_S("job_name", d->job->name), NR_S("reason", reason),
           NR_S("state", nr_breaker_state_name(bi->state)), NR_I("failures", bi->failures),
           NR_D("retry_in_s", round(bi->retry_in * 1e3) / 1e3));
    memset(out, 0, sizeof(*out));
    out->success = false;
    nr_failure_set(&out->failure, NR_FAILURE_CIRCUIT_OPEN, "dispatch",
                   "circuit open: no connection attempted");
    out->details = json_object();
    nr_failure_details(out->details, &out->failure);
    json_object_set_new(out->details, "circuit", json_string(nr_breaker_state_name(bi->state)));
    json_object_set_new(out->details, "consecutive_failures", json_integer(bi->failures));
    json_object_set_new(out->details, "retry_in_s", json_real(round(bi->retry_in * 1e3) / 1e3));
    json_object_set_new(out->details, "circuit_reason", json_string(reason));
    if (dev->hostname)
        json_object_set_new(out->details, "hostname", json_string(dev->hostname));
}

/* Tell the breaker how the attempt went and log what that changed.
 * Returns true when this attempt opened the breaker. */
static bool breaker_report(struct nr_dispatch_task *t, bool trial, const struct nr_result *a)
{
    const struct nr_dispatch *d = t->d;
    const struct nr_device *dev = t->device;
    enum nr_breaker_outcome outcome = a->success ? NR_BREAKER_ANSWERED
                                                 : nr_failure_breaker(a->failure.cls);
    struct nr_breaker_info bi;
    enum nr_breaker_transition tr;

    tr = nr_breaker_record(d->breaker, dev->id, trial, outcome, mono_s(), &bi);
    if (tr == NR_BREAKER_TO_OPEN) {
        char reason[96];

        if (trial)
            snprintf(reason, sizeof(reason), "the trial connection failed");
        else
            snprintf(reason, sizeof(reason), "%d consecutive connection failures", bi.failures);
        NR_LOG(NR_EV_BREAKER_OPENED, d->job->id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", d->job->name), NR_S("reason", reason),
               NR_I("failures", bi.failures),
               NR_D("reset_timeout_s", d->cfg->worker.circuit_breaker.reset_timeout));
    } else if (tr == NR_BREAKER_TO_CLOSED) {
        NR_LOG(NR_EV_BREAKER_CLOSED, d->job->id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", d->job->name), NR_B("trial", trial));
    }
    if (!bi.tracked) {
        uint64_t n = nr_breaker_untracked(d->breaker);

        if ((n & (n - 1)) == 0)     /* 1, 2, 4, ...: counted, reported, not spammed */
            NR_LOG(NR_EV_SYS_BREAKER_FULL, 0, 0,
                   NR_I("max_devices", d->cfg->worker.circuit_breaker.max_devices),
                   NR_I("untracked", n));
    }
    return tr == NR_BREAKER_TO_OPEN;
}

/* details.attempts gets one object per attempt: its class ("ok" for
 * the one that worked), stage, error and duration. */
static json_t *attempt_entry(unsigned n, const struct nr_result *a, double ms)
{
    json_t *e = json_pack("{s:i}", "attempt", (int)n);

    if (a->success)
        json_object_set_new(e, "class", json_string(nr_failure_name(NR_FAILURE_NONE)));
    else
        nr_failure_details(e, &a->failure);
    json_object_set_new(e, "ms", json_real(ms));
    return e;
}

static void keep_logins(struct nr_dispatch_task *t, const struct nr_result *a)
{
    for (size_t i = 0; i < a->nattempts && t->nlogins < NR_ARRAY_LEN(t->logins); i++)
        t->logins[t->nlogins++] = a->attempts[i];
}

/* The final result: the last attempt's, with every attempt's logins and
 * details.attempts.  Then to the caller. */
static void task_finish(struct nr_dispatch_task *t, struct nr_result *a)
{
    t->res = *a;
    memcpy(t->res.attempts, t->logins, t->nlogins * sizeof(t->logins[0]));
    t->res.nattempts = t->nlogins;
    if (t->attempts) {
        json_object_set_new(t->res.details, "attempts", t->attempts);
        json_object_set_new(t->res.details, "retries",
                            json_integer((json_int_t)(t->tries > 0 ? t->tries - 1 : 0)));
        t->attempts = NULL;
    }
    t->d->done(t);
}

/*
 * Runs on a pool thread: one attempt (the breaker, the handler, the
 * breaker again), then a retry in the pool's timer heap or the hand-back
 * to the caller.
 */
static void device_task(void *arg)
{
    struct nr_dispatch_task *t = arg;
    const struct nr_dispatch *d = t->d;
    const struct nr_config *cfg = d->cfg;
    const struct nr_device *dev = t->device;
    bool guarded = d->handler->guarded && d->breaker != NULL;
    struct nr_handler_ctx ctx = {
        .cfg = cfg, .job = d->job, .device = dev, .payload = d->payload,
        .creds = t->creds, .ncreds = t->ncreds,
    };
    enum nr_breaker_verdict verdict = NR_BREAKER_ALLOW;
    struct nr_result a;
    uint64_t t0 = nr_mono_ns();
    unsigned max_tries = 1 + (unsigned)(cfg->worker.retry_attempts > 0
                                            ? cfg->worker.retry_attempts : 0);
    bool opened = false;

    memset(&a, 0, sizeof(a));
    t->tries++;
    if (guarded && t->attempts == NULL) {
        t->attempts = json_array();
        t->rng = nr_retry_seed((uint64_t)dev->id ^ ((uint64_t)d->job->id << 32) ^ t0);
    }

    if (guarded) {
        struct nr_breaker_info bi;

        verdict = nr_breaker_acquire(d->breaker, dev->id, mono_s(), &bi);
        if (verdict == NR_BREAKER_TRIAL)
            NR_LOG(NR_EV_BREAKER_HALF_OPEN, d->job->id, dev->id,
                   NR_S("device_name", dev->hostname), NR_S("job_name", d->job->name),
                   NR_I("failures", bi.failures));
        if (verdict == NR_BREAKER_REJECT) {
            circuit_open_result(t, &bi, &a);
            json_array_append_new(t->attempts, attempt_entry(t->tries, &a, round_ms(t0)));
            task_finish(t, &a);
            return;
        }
    }

    NR_LOG(NR_EV_HANDLE_DEVICE, d->job->id, dev->id,
           NR_S("device_name", dev->hostname), NR_S("job_name", d->job->name),
           NR_I("attempt", t->tries));
    d->handler->fn(&ctx, &a);
    if (a.details == NULL) {
        NR_LOG(NR_EV_TASK_THREAD_ERROR, d->job->id, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", d->job->name),
               NR_S("error", "handler returned no result details"));
        a.success = false;
        nr_failure_set(&a.failure, NR_FAILURE_NONE, NULL, "handler returned no result details");
        a.details = json_object();
        nr_failure_details(a.details, &a.failure);
    }
    keep_logins(t, &a);
    if (!guarded) {
        task_finish(t, &a);
        return;
    }
    opened = breaker_report(t, verdict == NR_BREAKER_TRIAL, &a);
    json_array_append_new(t->attempts, attempt_entry(t->tries, &a, round_ms(t0)));
    if (a.success) {
        task_finish(t, &a);
        return;
    }

    const struct nr_failure *f = &a.failure;
    const char *error = f->message[0] ? f->message : NULL;
    const char *cls = f->cls != NR_FAILURE_NONE ? nr_failure_name(f->cls) : NULL;
    const char *stage = f->cls != NR_FAILURE_NONE ? f->stage : NULL;

    if (!nr_failure_retried(f->cls)) {
        char *why = nr_asprintf("%s at %s: %s", cls ? cls : "failure", stage ? stage : "?",
                                error ? error : "");
        NR_LOG(NR_EV_TASK_NON_RETRIABLE, d->job->id, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", d->job->name),
               NR_S("error", why), NR_S("class", cls), NR_S("stage", stage),
               NR_I("attempt", t->tries));
        free(why);
        task_finish(t, &a);
        return;
    }

    /* retried: again, later, unless the breaker just opened (the retry
     * would only be refused), the retries are spent, or the worker stops */
    const char *stop = opened ? "the circuit breaker opened"
                       : t->tries >= max_tries ? NULL
                       : d->closing && nr_backoff_stop_requested(d->closing)
                           ? "the worker is shutting down"
                       : NULL;
    if (t->tries < max_tries && stop == NULL) {
        double delay = nr_retry_delay(cfg->worker.retry_backoff, t->tries - 1, &t->rng);
        json_t *last = json_array_get(t->attempts, json_array_size(t->attempts) - 1);

        json_object_set_new(last, "retry_in_s", json_real(round(delay * 1e3) / 1e3));
        NR_LOG(NR_EV_TASK_RETRY, d->job->id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", d->job->name), NR_D("delay_s", round(delay * 1e3) / 1e3),
               NR_I("attempt", t->tries + 1), NR_I("max_attempts", max_tries),
               NR_S("class", cls), NR_S("stage", stage), NR_S("error", error));
        if (nr_pool_submit_after(d->pool, delay, device_task, t) == 0) {
            result_free(&a);
            return;
        }
        json_object_del(last, "retry_in_s");
        stop = "the dispatcher pool is shutting down";
    }
    if (stop != NULL)
        json_object_set_new(a.details, "retry_stopped", json_string(stop));
    if (max_tries > 1)      /* with retries off, the handler's failure says it all */
        NR_LOG(NR_EV_TASK_GAVE_UP, d->job->id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", d->job->name), NR_I("attempts", t->tries),
               NR_S("error", error), NR_S("class", cls), NR_S("stage", stage),
               NR_S("reason", stop ? stop : "retries spent"));
    task_finish(t, &a);
}

int nr_dispatch_submit(struct nr_dispatch_task *t)
{
    return nr_pool_submit(t->d->pool, device_task, t);
}

int nr_dispatch_try_submit(struct nr_dispatch_task *t)
{
    return nr_pool_try_submit(t->d->pool, device_task, t);
}
