/*
 * run.c - job runs and the runner (see run.h for the design).
 */
#include "netraven/run.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/backoff.h"
#include "netraven/breaker.h"
#include "netraven/cred.h"
#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/retry.h"
#include "netraven/store.h"

/* ---------------------------------------------------------------- a run */

struct run;

/*
 * One device of a run.  For a guarded handler (handler.h) each execution
 * of device_task is one attempt: the breaker is asked first, a transient
 * failure is re-submitted to the pool with nr_pool_submit_after (the wait
 * is in the pool's timer heap, not on a thread) up to
 * worker.retry_attempts times, and only the final outcome reaches the run
 * thread.  The task is touched by one thread at a time: the pool thread of
 * the attempt under way, then (once on run->done) the run thread.
 */
struct run_task {
    struct run       *run;
    size_t            idx;          /* into run->devices */
    struct nr_result  res;          /* the final result */
    struct run_task  *next;         /* on run->done once finished */

    unsigned          tries;        /* attempts so far */
    json_t           *attempts;     /* details.attempts: one object per attempt */
    uint64_t          rng;          /* retry jitter */
    struct nr_cred_attempt logins[NR_ARRAY_LEN(((struct nr_result *)0)->attempts)];
    size_t            nlogins;      /* every attempt's logins, for the run to record */
};

struct run {
    const struct nr_config      *cfg;
    struct nr_pool              *pool;
    struct nr_store             *store;
    const struct nr_payload     *payload;
    struct nr_job                job;
    const char                  *job_type;
    const struct nr_handler_def *handler;
    struct nr_device            *devices;
    size_t                       ndev;
    struct run_task             *tasks;
    struct nr_cred_set          *creds;     /* when the handler needs them */
    struct nr_breaker           *breaker;   /* the runner's, shared by every run */

    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    struct run_task *done_head, *done_tail;

    struct nr_backoff_stop *closing;    /* the runner is shutting down */
    bool      record_failed;        /* a write to PostgreSQL failed */
    char     *record_error;
    unsigned  succeeded;
};

const char *nr_run_final_status(unsigned devices, unsigned succeeded)
{
    if (devices == 0)
        return NR_STATUS_NO_DEVICES;
    if (succeeded == devices)
        return NR_STATUS_SUCCESS;
    if (succeeded == 0)
        return NR_STATUS_FAILURE;
    return NR_STATUS_PARTIAL_FAILURE;
}

static double mono_s(void)
{
    return (double)nr_mono_ns() / 1e9;
}

static double round_ms(uint64_t t0)
{
    return round((double)(nr_mono_ns() - t0) / 1e3) / 1e3;
}

/* Hand a finished task to the run thread. */
static void task_done(struct run_task *t)
{
    struct run *run = t->run;

    pthread_mutex_lock(&run->mu);
    if (run->done_tail)
        run->done_tail->next = t;
    else
        run->done_head = t;
    run->done_tail = t;
    pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* The result of an attempt the breaker refused: no connection was made. */
static void circuit_open_result(struct run_task *t, const struct nr_breaker_info *bi,
                                struct nr_result *out)
{
    struct run *run = t->run;
    const struct nr_device *dev = &run->devices[t->idx];
    char reason[160];

    if (bi->state == NR_BREAKER_OPEN)
        snprintf(reason, sizeof(reason), "%d consecutive connection failures; next trial in "
                 "%.1f s", bi->failures, bi->retry_in);
    else
        snprintf(reason, sizeof(reason), "a trial connection is under way");
    NR_LOG(NR_EV_BREAKER_REJECTED, run->job.id, dev->id, NR_S("device_name", dev->hostname),
           NR_S("job_name", run->job.name), NR_S("reason", reason),
           NR_S("state", nr_breaker_state_name(bi->state)), NR_I("failures", bi->failures),
           NR_D("retry_in_s", round(bi->retry_in * 1e3) / 1e3));
    memset(out, 0, sizeof(*out));
    out->success = false;
    out->fail = NR_FAIL_TRANSIENT;
    out->details = json_pack("{s:s, s:s, s:s, s:s, s:i, s:f, s:o}",
        "error", "circuit open: no connection attempted",
        "class", "circuit open",
        "stage", "dispatch",
        "circuit", nr_breaker_state_name(bi->state),
        "consecutive_failures", bi->failures,
        "retry_in_s", round(bi->retry_in * 1e3) / 1e3,
        "circuit_reason", json_string(reason));
    if (dev->hostname)
        json_object_set_new(out->details, "hostname", json_string(dev->hostname));
}

/* What an attempt's outcome means to the breaker. */
static enum nr_breaker_outcome breaker_outcome(const struct nr_result *a)
{
    if (a->success)
        return NR_BREAKER_ANSWERED;
    switch (a->fail) {
    case NR_FAIL_TRANSIENT:
        return NR_BREAKER_FAILED;
    case NR_FAIL_AUTH:
    case NR_FAIL_PERMANENT:
        return NR_BREAKER_ANSWERED;
    case NR_FAIL_NONE:
        break;
    }
    return NR_BREAKER_NO_OUTCOME;
}

/* Tell the breaker how the attempt went and log what that changed.
 * Returns true when this attempt opened the breaker. */
static bool breaker_report(struct run_task *t, bool trial, const struct nr_result *a)
{
    struct run *run = t->run;
    const struct nr_device *dev = &run->devices[t->idx];
    struct nr_breaker_info bi;
    enum nr_breaker_transition tr;

    tr = nr_breaker_record(run->breaker, dev->id, trial, breaker_outcome(a), mono_s(), &bi);
    if (tr == NR_BREAKER_TO_OPEN) {
        char reason[96];

        if (trial)
            snprintf(reason, sizeof(reason), "the trial connection failed");
        else
            snprintf(reason, sizeof(reason), "%d consecutive connection failures", bi.failures);
        NR_LOG(NR_EV_BREAKER_OPENED, run->job.id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_S("reason", reason),
               NR_I("failures", bi.failures),
               NR_D("reset_timeout_s", run->cfg->worker.circuit_breaker.reset_timeout));
    } else if (tr == NR_BREAKER_TO_CLOSED) {
        NR_LOG(NR_EV_BREAKER_CLOSED, run->job.id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_B("trial", trial));
    }
    if (!bi.tracked) {
        uint64_t n = nr_breaker_untracked(run->breaker);

        if ((n & (n - 1)) == 0)     /* 1, 2, 4, ...: counted, reported, not spammed */
            NR_LOG(NR_EV_SYS_BREAKER_FULL, 0, 0,
                   NR_I("max_devices", run->cfg->worker.circuit_breaker.max_devices),
                   NR_I("untracked", n));
    }
    return tr == NR_BREAKER_TO_OPEN;
}

/* details.attempts gets one object per attempt: its class ("ok" for
 * the one that worked), stage, error and duration. */
static json_t *attempt_entry(unsigned n, const struct nr_result *a, double ms)
{
    json_t *e = json_pack("{s:i}", "attempt", (int)n);
    json_t *d = a->details;

    if (a->success) {
        json_object_set_new(e, "class", json_string("ok"));
    } else {
        static const char *const keys[] = { "class", "stage", "error" };

        for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++) {
            json_t *v = json_object_get(d, keys[i]);
            if (v)
                json_object_set(e, keys[i], v);
        }
    }
    json_object_set_new(e, "ms", json_real(ms));
    return e;
}

static void keep_logins(struct run_task *t, const struct nr_result *a)
{
    for (size_t i = 0; i < a->nattempts && t->nlogins < NR_ARRAY_LEN(t->logins); i++)
        t->logins[t->nlogins++] = a->attempts[i];
}

/* The final result: the last attempt's, with every attempt's logins and
 * details.attempts.  Then to the run thread. */
static void task_finish(struct run_task *t, struct nr_result *a)
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
    task_done(t);
}

static void result_free(struct nr_result *a)
{
    json_decref(a->details);
    free(a->config);
    memset(a, 0, sizeof(*a));
}

/*
 * Runs on a pool thread: one attempt (the breaker, the handler, the
 * breaker again), then a retry in the pool's timer heap or the hand-back
 * to the run thread.
 */
static void device_task(void *arg)
{
    struct run_task *t = arg;
    struct run *run = t->run;
    const struct nr_config *cfg = run->cfg;
    const struct nr_device *dev = &run->devices[t->idx];
    bool guarded = run->handler->guarded && run->breaker != NULL;
    struct nr_handler_ctx ctx = {
        .cfg = cfg, .job = &run->job, .device = dev, .payload = run->payload,
    };
    enum nr_breaker_verdict verdict = NR_BREAKER_ALLOW;
    struct nr_result a;
    uint64_t t0 = nr_mono_ns();
    unsigned max_tries = 1 + (unsigned)(cfg->worker.retry_attempts > 0
                                            ? cfg->worker.retry_attempts : 0);
    bool opened = false;

    memset(&a, 0, sizeof(a));
    ctx.creds = nr_cred_set_get(run->creds, dev->id, &ctx.ncreds);
    t->tries++;
    if (guarded && t->attempts == NULL) {
        t->attempts = json_array();
        t->rng = nr_retry_seed((uint64_t)dev->id ^ ((uint64_t)run->job.id << 32) ^ t0);
    }

    if (guarded) {
        struct nr_breaker_info bi;

        verdict = nr_breaker_acquire(run->breaker, dev->id, mono_s(), &bi);
        if (verdict == NR_BREAKER_TRIAL)
            NR_LOG(NR_EV_BREAKER_HALF_OPEN, run->job.id, dev->id,
                   NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name),
                   NR_I("failures", bi.failures));
        if (verdict == NR_BREAKER_REJECT) {
            circuit_open_result(t, &bi, &a);
            json_array_append_new(t->attempts, attempt_entry(t->tries, &a, round_ms(t0)));
            task_finish(t, &a);
            return;
        }
    }

    NR_LOG(NR_EV_HANDLE_DEVICE, run->job.id, dev->id,
           NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name),
           NR_I("attempt", t->tries));
    run->handler->fn(&ctx, &a);
    if (a.details == NULL) {
        NR_LOG(NR_EV_TASK_THREAD_ERROR, run->job.id, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name),
               NR_S("error", "handler returned no result details"));
        a.success = false;
        a.fail = NR_FAIL_NONE;
        a.details = json_pack("{s:s}", "error", "handler returned no result details");
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

    const char *error = json_string_value(json_object_get(a.details, "error"));
    const char *cls = json_string_value(json_object_get(a.details, "class"));
    const char *stage = json_string_value(json_object_get(a.details, "stage"));

    if (a.fail != NR_FAIL_TRANSIENT) {
        char *why = nr_asprintf("%s at %s: %s", cls ? cls : "failure", stage ? stage : "?",
                                error ? error : "");
        NR_LOG(NR_EV_TASK_NON_RETRIABLE, run->job.id, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name),
               NR_S("error", why), NR_S("class", cls), NR_S("stage", stage),
               NR_I("attempt", t->tries));
        free(why);
        task_finish(t, &a);
        return;
    }

    /* transient: again, later, unless the breaker just opened (the retry
     * would only be refused), the retries are spent, or the worker stops */
    const char *stop = opened ? "the circuit breaker opened"
                       : t->tries >= max_tries ? NULL
                       : nr_backoff_stop_requested(run->closing) ? "the worker is shutting down"
                                                                 : NULL;
    if (t->tries < max_tries && stop == NULL) {
        double delay = nr_retry_delay(cfg->worker.retry_backoff, t->tries - 1, &t->rng);
        json_t *last = json_array_get(t->attempts, json_array_size(t->attempts) - 1);

        json_object_set_new(last, "retry_in_s", json_real(round(delay * 1e3) / 1e3));
        NR_LOG(NR_EV_TASK_RETRY, run->job.id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_D("delay_s", round(delay * 1e3) / 1e3),
               NR_I("attempt", t->tries + 1), NR_I("max_attempts", max_tries),
               NR_S("class", cls), NR_S("stage", stage), NR_S("error", error));
        if (nr_pool_submit_after(run->pool, delay, device_task, t) == 0) {
            result_free(&a);
            return;
        }
        json_object_del(last, "retry_in_s");
        stop = "the dispatcher pool is shutting down";
    }
    if (stop != NULL)
        json_object_set_new(a.details, "retry_stopped", json_string(stop));
    if (max_tries > 1)      /* with retries off, the handler's failure says it all */
        NR_LOG(NR_EV_TASK_GAVE_UP, run->job.id, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_I("attempts", t->tries),
               NR_S("error", error), NR_S("class", cls), NR_S("stage", stage),
               NR_S("reason", stop ? stop : "retries spent"));
    task_finish(t, &a);
}

/* Note the first failure to record and keep going: every task must still
 * be collected before the run's memory can go. */
static void record_failure(struct run *run, const char *what)
{
    if (!run->record_failed) {
        run->record_failed = true;
        run->record_error = nr_asprintf("%s: %s", what, run->store->errstr);
    }
}

/* PostgreSQL went away under a run: wait for it with backoff (backoff.h,
 * 0.5 s doubling to 10 s, said once per call) and reconnect, holding what
 * the run has in memory, so that results are written once, in order, when
 * it is back.  Returns false when the runner is shutting down (its stop
 * ends the wait; the run then ends not recorded and its queue entry is
 * delivered again). */
static bool store_wait(struct run *run, struct nr_backoff *b)
{
    double delay = nr_backoff_fail(b);

    if (nr_backoff_say(b))
        NR_LOG(NR_EV_SYS_DB_UNAVAILABLE, 0, 0, NR_S("error", run->store->errstr),
               NR_D("delay_s", delay));
    if (nr_backoff_wait(b, run->closing))
        return false;
    if (nr_store_reset(run->store) == 0) {
        char *masked = nr_config_mask_url(run->cfg->database.url);
        NR_LOG(NR_EV_SYS_DB_CONNECTED, 0, 0, NR_S("url", masked));
        free(masked);
    }
    return true;
}

/* A store call, repeated across a PostgreSQL outage (see store_wait). */
#define STORE_TRY(run, call)                                                  \
    ({                                                                        \
        int rc_;                                                              \
        struct nr_backoff b_ = NR_BACKOFF_INIT(0.5, 10);                      \
        for (;;) {                                                            \
            rc_ = (call);                                                     \
            if (rc_ >= 0 || (run)->store->err != NR_EIO || !store_wait((run), &b_)) \
                break;                                                        \
        }                                                                     \
        rc_;                                                                  \
    })

/* What a successful session leaves besides its result: the configuration
 * snapshot (unless unchanged), devices.last_seen, and the bookkeeping of
 * each credential tried.  Runs on the run thread. */
static void save_side_effects(struct run *run, const struct nr_device *dev, struct nr_result *res)
{
    long long jid = run->job.id;

    for (size_t i = 0; i < res->nattempts; i++)
        if (STORE_TRY(run, nr_cred_record_attempt(run->store, res->attempts[i].cred_id,
                                                   res->attempts[i].success)) < 0)
            record_failure(run, "recording a credential attempt");

    if (res->config != NULL) {
        nr_utf8_scrub(res->config, res->config_len);
        json_t *meta = json_pack("{s:I, s:s, s:s, s:I}", "job_id", (json_int_t)jid,
                                 "hostname", dev->hostname ? dev->hostname : "",
                                 "device_type", dev->device_type ? dev->device_type : "",
                                 "bytes", (json_int_t)res->config_len);
        json_t *dur = json_object_get(res->details, "duration_ms");
        if (dur)
            json_object_set(meta, "duration_ms", dur);
        char *meta_text = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(12));
        int rc = STORE_TRY(run, nr_store_config_save(run->store, dev->id, res->config,
                                                     res->config_len, res->config_hash,
                                                     meta_text));
        if (rc < 0) {
            res->success = false;
            json_object_set_new(res->details, "error",
                                json_string("the configuration could not be stored"));
            record_failure(run, "storing a configuration snapshot");
        } else {
            bool same = rc == NR_SNAPSHOT_SAME;
            json_object_set_new(res->details, "deduplicated", json_boolean(same));
            json_object_set_new(res->details, "sha256", json_string(res->config_hash));
            NR_LOG(same ? NR_EV_CONFIG_UNCHANGED : NR_EV_CONFIG_SAVED, jid, dev->id,
                   NR_S("device_name", dev->hostname), NR_S("hash", res->config_hash),
                   NR_I("bytes", res->config_len));
        }
        free(meta_text);
        json_decref(meta);
    }
    if (res->device_seen && STORE_TRY(run, nr_store_device_seen(run->store, dev->id)) < 0)
        record_failure(run, "updating devices.last_seen");
}

static void save_result(struct run *run, const struct nr_device *dev, struct nr_result *res)
{
    long long jid = run->job.id;

    save_side_effects(run, dev, res);
    char *details = json_dumps(res->details, JSON_COMPACT | JSON_REAL_PRECISION(12));

    NR_LOG(res->success ? NR_EV_RESULT_SAVING_OK : NR_EV_RESULT_SAVING_FAIL, jid, dev->id,
           NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name));
    int rc = STORE_TRY(run, nr_store_result_add(run->store, jid, dev->id, run->job_type,
                                                res->success, details ? details : "{}"));
    if (rc < 0) {
        NR_LOG(NR_EV_RESULT_SAVE_ERROR, jid, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_S("error", run->store->errstr));
        record_failure(run, "saving a job result");
    } else {
        NR_LOG(res->success ? NR_EV_RESULT_SAVED_OK : NR_EV_RESULT_SAVED_FAIL, jid, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name));
    }
    if (res->success)
        run->succeeded++;
    nr_metrics_device_task(res->success, json_string_value(json_object_get(res->details, "class")));
    free(details);
}

/* Fail every device without running anything (no handler, or the pool
 * refused the task). */
static void fail_device(struct run *run, size_t idx, const char *error)
{
    struct nr_result res = { .success = false,
                             .details = json_pack("{s:s}", "error", error) };
    save_result(run, &run->devices[idx], &res);
    json_decref(res.details);
}

/* devices.port is an int column: past 65535 the socket API wraps it (port
 * 101599 is 36063 there) and the credentials would go to whatever listens
 * on that port; a negative value is no port either.  0 and NULL mean 22,
 * as NetRaven reads them.  Checked before any handler runs, for every job
 * type: a device row this wrong gets no connection at all. */
static bool device_port_ok(const struct nr_device *dev)
{
    return dev->port >= 0 && dev->port <= 65535;
}

/* Dispatch every device and collect the results; returns the final status. */
static const char *dispatch_devices(struct run *run)
{
    long long jid = run->job.id;
    size_t submitted = 0, collected = 0;
    bool dispatch_error = false;

    NR_LOG(NR_EV_HANDLER_DISPATCH, jid, 0, NR_S("job_name", run->job.name),
           NR_S("job_type", run->job_type), NR_S("handler", run->handler->name));

    run->tasks = nr_calloc(run->ndev, sizeof(*run->tasks));
    for (size_t i = 0; i < run->ndev; i++) {
        struct run_task *t = &run->tasks[i];
        t->run = run;
        t->idx = i;
        if (!device_port_ok(&run->devices[i])) {
            char *why = nr_asprintf("device port %d is outside 1-65535 (0 or NULL means 22); "
                                    "nothing was connected", run->devices[i].port);

            NR_LOG(NR_EV_TASK_NON_RETRIABLE, jid, run->devices[i].id,
                   NR_S("device_name", run->devices[i].hostname),
                   NR_S("job_name", run->job.name), NR_S("error", why),
                   NR_I("port", run->devices[i].port));
            fail_device(run, i, why);
            free(why);
            continue;
        }
        if (run->handler->needs_credentials &&
            nr_cred_set_get(run->creds, run->devices[i].id, NULL) == NULL) {
            NR_LOG(NR_EV_DEVICE_NO_CREDENTIALS, jid, run->devices[i].id,
                   NR_S("device_name", run->devices[i].hostname), NR_S("job_name", run->job.name));
            fail_device(run, i, "no credential shares a tag with this device");
            continue;
        }
        NR_LOG(NR_EV_TASK_SUBMITTED, jid, run->devices[i].id,
               NR_S("device_name", run->devices[i].hostname), NR_S("job_name", run->job.name));
        if (nr_pool_submit(run->pool, device_task, t) != 0) {
            NR_LOG(NR_EV_TASK_THREAD_ERROR, jid, run->devices[i].id,
                   NR_S("device_name", run->devices[i].hostname),
                   NR_S("job_name", run->job.name),
                   NR_S("error", "the dispatcher pool is shutting down"));
            fail_device(run, i, "the dispatcher pool is shutting down");
            dispatch_error = true;
            continue;
        }
        submitted++;
    }

    while (collected < submitted) {
        pthread_mutex_lock(&run->mu);
        while (run->done_head == NULL)
            pthread_cond_wait(&run->cv, &run->mu);
        struct run_task *list = run->done_head;
        run->done_head = run->done_tail = NULL;
        pthread_mutex_unlock(&run->mu);

        for (struct run_task *t = list, *next; t; t = next) {
            const struct nr_device *dev = &run->devices[t->idx];
            next = t->next;
            save_result(run, dev, &t->res);
            NR_LOG(NR_EV_TASK_COMPLETED, jid, dev->id, NR_S("device_name", dev->hostname),
                   NR_S("job_name", run->job.name), NR_B("success", t->res.success));
            json_decref(t->res.details);
            t->res.details = NULL;
            free(t->res.config);
            t->res.config = NULL;
            collected++;
        }
    }

    NR_LOG(NR_EV_JOB_TASKS_DONE, jid, 0, NR_S("job_name", run->job.name),
           NR_D("success_rate", run->ndev ? 100.0 * run->succeeded / (double)run->ndev : 0.0),
           NR_I("succeeded", run->succeeded), NR_I("total", run->ndev));
    if (dispatch_error)
        return NR_STATUS_FAILED_DISPATCHER;
    return nr_run_final_status((unsigned)run->ndev, run->succeeded);
}

/* Resolve the devices' credentials (one query), then dispatch; a run
 * whose credentials cannot be resolved, or that has none at all, fails
 * every device with the reason (statuses: docs/netraven.md §3.1). */
static const char *resolve_and_dispatch(struct run *run, const struct nr_cred_keyring *keyring)
{
    long long *ids = nr_calloc(run->ndev, sizeof(*ids));
    char err[NR_CRED_ERRLEN];
    const char *status;
    int rc;

    for (size_t i = 0; i < run->ndev; i++)
        ids[i] = run->devices[i].id;
    rc = STORE_TRY(run, nr_cred_resolve(run->store, keyring, ids, run->ndev, &run->creds,
                                        err, sizeof(err)));
    free(ids);

    if (rc < 0) {
        NR_LOG(NR_EV_JOB_CRED_FAILED, run->job.id, 0, NR_S("job_name", run->job.name),
               NR_S("error", err));
        for (size_t i = 0; i < run->ndev; i++)
            fail_device(run, i, err);
        return NR_STATUS_FAILED_CREDENTIALS;
    }
    if (nr_cred_set_devices_matched(run->creds) == 0) {
        NR_LOG(NR_EV_JOB_NO_CREDENTIALS, run->job.id, 0, NR_S("job_name", run->job.name));
        for (size_t i = 0; i < run->ndev; i++)
            fail_device(run, i, "no credential shares a tag with this device");
        status = NR_STATUS_NO_CREDENTIALS;
    } else {
        status = dispatch_devices(run);
    }
    return status;
}

/* One run, start to end.  *storep is the run thread's connection, made
 * here on first use and kept. */
static void run_execute(const struct nr_config *cfg, struct nr_pool *pool,
                        const struct nr_cred_keyring *keyring, struct nr_breaker *breaker,
                        struct nr_backoff_stop *closing, struct nr_store **storep,
                        struct nr_run_request *req, struct nr_run_done *done)
{
    struct run run = { .cfg = cfg, .pool = pool, .payload = &req->payload, .closing = closing,
                       .breaker = breaker };
    long long jid = req->payload.job_id;
    const char *status = NULL;
    int rc;

    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    done->job_id = jid;

    if (*storep == NULL)
        *storep = nr_store_connect(cfg->database.url);
    run.store = *storep;

    rc = STORE_TRY(&run, nr_store_job_get(run.store, jid, &run.job));
    if (rc == NR_NOTFOUND) {
        done->outcome = NR_RUN_REJECTED;
        done->reason = nr_asprintf("job %lld does not exist", jid);
        goto out;
    }
    if (rc < 0) {
        done->outcome = NR_RUN_NOT_RECORDED;
        done->reason = nr_asprintf("loading job %lld: %s", jid, run.store->errstr);
        goto out;
    }
    run.job_type = req->payload.job_type ? req->payload.job_type : run.job.job_type;

    NR_LOG(NR_EV_JOB_EXECUTING, jid, 0, NR_S("job_name", run.job.name),
           NR_S("job_type", run.job_type));
    if (STORE_TRY(&run, nr_store_job_start(run.store, jid)) < 0) {
        done->outcome = NR_RUN_NOT_RECORDED;
        done->reason = nr_asprintf("marking job %lld RUNNING: %s", jid, run.store->errstr);
        goto out;
    }
    NR_LOG(NR_EV_JOB_STARTED, jid, 0, NR_S("job_name", run.job.name));

    rc = STORE_TRY(&run, nr_store_job_devices(run.store, &run.job, req->payload.device_ids,
                                              req->payload.n_device_ids, &run.devices, &run.ndev));
    if (rc < 0) {
        NR_LOG(NR_EV_JOB_FAILED, jid, 0, NR_S("job_name", run.job.name),
               NR_S("error", run.store->errstr));
        record_failure(&run, "loading the job's devices");
        status = NR_STATUS_FAILED_UNEXPECTED;
    } else if (run.ndev == 0) {
        NR_LOG(NR_EV_JOB_NO_DEVICES, jid, 0, NR_S("job_name", run.job.name));
        status = NR_STATUS_NO_DEVICES;
    } else {
        NR_LOG(NR_EV_JOB_DEVICE_COUNT, jid, 0, NR_S("job_name", run.job.name),
               NR_I("device_count", run.ndev));
        run.handler = nr_handler_find(run.job_type);
        if (run.handler == NULL) {
            char *err = nr_asprintf("no handler registered for job type '%s'", run.job_type);
            NR_LOG(NR_EV_NO_HANDLER, jid, 0, NR_S("job_type", run.job_type),
                   NR_S("job_name", run.job.name));
            for (size_t i = 0; i < run.ndev; i++)
                fail_device(&run, i, err);
            free(err);
            status = NR_STATUS_FAILURE;
        } else if (run.handler->needs_credentials) {
            status = resolve_and_dispatch(&run, keyring);
        } else {
            status = dispatch_devices(&run);
        }
    }

    uint64_t lost = nr_log_session_drops_take(jid);
    if (lost > 0)
        NR_LOG(NR_EV_JOB_SESSION_DROPPED, jid, 0, NR_S("job_name", run.job.name),
               NR_I("count", lost));
    if (STORE_TRY(&run, nr_store_job_finish(run.store, jid, status)) < 0)
        record_failure(&run, "writing the final status");
    NR_LOG(NR_EV_JOB_FINISHED, jid, 0, NR_S("job_name", run.job.name), NR_S("status", status),
           NR_I("devices", run.ndev), NR_I("succeeded", run.succeeded));
    nr_metrics_job_done(status);

    done->devices = (unsigned)run.ndev;
    done->succeeded = run.succeeded;
    if (run.record_failed) {
        done->outcome = NR_RUN_NOT_RECORDED;
        done->reason = run.record_error;
        run.record_error = NULL;
    } else {
        done->outcome = NR_RUN_RECORDED;
        done->status = status;
    }

out:
    free(run.record_error);
    free(run.tasks);
    nr_cred_set_free(run.creds);
    nr_device_array_free(run.devices, run.ndev);
    nr_job_clear(&run.job);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
}

/* ------------------------------------------------------------ the runner */

struct done_node {
    struct nr_run_done d;
    struct done_node  *next;
};

struct nr_runner {
    const struct nr_config *cfg;
    struct nr_pool         *pool;
    struct nr_cred_keyring  keyring;    /* derived once; read-only after */
    struct nr_breaker      *breaker;    /* per device, shared by every run */
    atomic_bool             keys_checked;   /* the start-up check of the keyring ran */
    size_t                  slots;

    pthread_mutex_t mu;
    pthread_cond_t  req_cv;     /* a request is waiting, or closing */
    pthread_cond_t  done_cv;    /* a completion is ready */

    struct nr_run_request *reqs;    /* ring of `slots` requests */
    size_t                 rhead, rlen;
    size_t                 in_flight;   /* submitted, not yet completed */
    struct done_node      *done_head[NR_RUN_SOURCE_COUNT];
    struct done_node      *done_tail[NR_RUN_SOURCE_COUNT];
    bool                   closing;
    struct nr_backoff_stop stopping;    /* closing, readable without the lock; wakes
                                           a run's wait for PostgreSQL */

    pthread_t *threads;
    size_t     nthreads;
};

/*
 * Does the configured master key open the credentials' passwords?  Once
 * per process, by the first run thread that has PostgreSQL (at start, or
 * at its first run if PostgreSQL was away then), so that a missing or
 * wrong key is a clear error when the worker starts rather than a
 * surprise at the first job; those jobs still end
 * FAILED_CREDENTIAL_RESOLUTION.  Only credential ids are logged.
 */
static void check_keys(struct nr_runner *r, struct nr_store **storep)
{
    struct nr_cred_key_check c;

    if (atomic_load(&r->keys_checked))
        return;
    if (*storep == NULL)
        *storep = nr_store_connect(r->cfg->database.url);
    if ((*storep)->err || atomic_exchange(&r->keys_checked, true))
        return;
    if (nr_cred_check_keyring(*storep, &r->keyring, &c) < 0) {
        atomic_store(&r->keys_checked, false);      /* try again at the next run */
        return;
    }
    if (c.unopened > 0 && !r->keyring.has_key)
        NR_LOG(NR_EV_SYS_CRED_KEY_MISSING, 0, 0, NR_I("count", c.unopened), NR_S("ids", c.ids));
    else if (c.unopened > 0)
        NR_LOG(NR_EV_SYS_CRED_KEY_WRONG, 0, 0, NR_I("count", c.unopened),
               NR_I("encrypted", c.encrypted), NR_S("ids", c.ids));
    else if (c.encrypted > 0)
        NR_LOG(NR_EV_SYS_CRED_KEY_OK, 0, 0, NR_I("encrypted", c.encrypted),
               NR_I("legacy", c.legacy));
}

static void *runner_main(void *arg)
{
    struct nr_runner *r = arg;
    struct nr_store *store = NULL;

    check_keys(r, &store);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->rlen == 0 && !r->closing)
            pthread_cond_wait(&r->req_cv, &r->mu);
        if (r->rlen == 0)
            break;
        struct nr_run_request req = r->reqs[r->rhead];
        r->rhead = (r->rhead + 1) % r->slots;
        r->rlen--;
        pthread_mutex_unlock(&r->mu);

        struct done_node *n = nr_calloc(1, sizeof(*n));
        check_keys(r, &store);
        run_execute(r->cfg, r->pool, &r->keyring, r->breaker, &r->stopping, &store, &req,
                    &n->d);
        n->d.entry_id = req.entry_id;
        n->d.source = req.source;
        nr_payload_clear(&req.payload);

        pthread_mutex_lock(&r->mu);
        if (r->done_tail[req.source])
            r->done_tail[req.source]->next = n;
        else
            r->done_head[req.source] = n;
        r->done_tail[req.source] = n;
        r->in_flight--;
        pthread_cond_broadcast(&r->done_cv);
    }
    pthread_mutex_unlock(&r->mu);
    nr_store_free(store);
    return NULL;
}

struct nr_runner *nr_runner_new(const struct nr_config *cfg, struct nr_pool *pool)
{
    struct nr_runner *r = nr_calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    r->cfg = cfg;
    r->pool = pool;
    char err[NR_CRED_ERRLEN];
    if (nr_cred_keyring_init(&r->keyring, cfg, err, sizeof(err)) < 0) {
        /* not fatal: token-shaped passwords will fail resolution with a
         * clear reason, legacy plain ones still work */
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "deriving the credential key"),
               NR_S("error", err));
    }
    r->breaker = nr_breaker_new(cfg->worker.circuit_breaker.failure_threshold,
                                cfg->worker.circuit_breaker.reset_timeout,
                                cfg->worker.circuit_breaker.max_devices > 0
                                    ? (size_t)cfg->worker.circuit_breaker.max_devices : 1);
    r->slots = cfg->worker.max_concurrent_jobs > 0 ? (size_t)cfg->worker.max_concurrent_jobs : 1;
    r->reqs = nr_calloc(r->slots, sizeof(*r->reqs));
    r->threads = nr_calloc(r->slots, sizeof(*r->threads));
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->req_cv, &ca);
    pthread_cond_init(&r->done_cv, &ca);
    pthread_condattr_destroy(&ca);
    nr_backoff_stop_init(&r->stopping);

    for (; r->nthreads < r->slots; r->nthreads++)
        if (pthread_create(&r->threads[r->nthreads], NULL, runner_main, r) != 0) {
            nr_runner_free(r);
            return NULL;
        }
    return r;
}

size_t nr_runner_free_slots(struct nr_runner *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->closing ? 0 : r->slots - r->in_flight;
    pthread_mutex_unlock(&r->mu);
    return n;
}

size_t nr_runner_in_flight(struct nr_runner *r)
{
    pthread_mutex_lock(&r->mu);
    size_t n = r->in_flight;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int nr_runner_submit(struct nr_runner *r, struct nr_run_request *req)
{
    pthread_mutex_lock(&r->mu);
    if (r->closing) {
        pthread_mutex_unlock(&r->mu);
        return NR_ECLOSED;
    }
    if (r->in_flight == r->slots) {
        pthread_mutex_unlock(&r->mu);
        return NR_EFULL;
    }
    r->reqs[(r->rhead + r->rlen) % r->slots] = *req;
    r->rlen++;
    r->in_flight++;
    memset(req, 0, sizeof(*req));
    pthread_cond_signal(&r->req_cv);
    pthread_mutex_unlock(&r->mu);
    return NR_OK;
}

void nr_runner_wait(struct nr_runner *r, enum nr_run_source source, double timeout_s)
{
    uint64_t due = nr_mono_ns() + (uint64_t)(timeout_s * 1e9);
    struct timespec ts = { (time_t)(due / 1000000000ull), (long)(due % 1000000000ull) };

    pthread_mutex_lock(&r->mu);
    while (r->done_head[source] == NULL)
        if (pthread_cond_timedwait(&r->done_cv, &r->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&r->mu);
}

size_t nr_runner_collect(struct nr_runner *r, enum nr_run_source source,
                         struct nr_run_done *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&r->mu);
    while (n < max && r->done_head[source]) {
        struct done_node *d = r->done_head[source];
        r->done_head[source] = d->next;
        if (r->done_head[source] == NULL)
            r->done_tail[source] = NULL;
        out[n++] = d->d;
        free(d);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

void nr_run_done_clear(struct nr_run_done *d)
{
    free(d->entry_id);
    free(d->reason);
    memset(d, 0, sizeof(*d));
}

void nr_runner_free(struct nr_runner *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    nr_backoff_stop_request(&r->stopping);
    pthread_cond_broadcast(&r->req_cv);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    for (int src = 0; src < NR_RUN_SOURCE_COUNT; src++)
        for (struct done_node *d = r->done_head[src], *next; d; d = next) {
            next = d->next;
            nr_run_done_clear(&d->d);
            free(d);
        }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->req_cv);
    pthread_cond_destroy(&r->done_cv);
    nr_backoff_stop_clear(&r->stopping);
    nr_cred_keyring_clear(&r->keyring);
    nr_breaker_free(r->breaker);
    free(r->reqs);
    free(r->threads);
    free(r);
}
