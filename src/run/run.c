/*
 * run.c - job runs and the runner (see run.h for the design).
 */
#include "netraven/run.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/backoff.h"
#include "netraven/breaker.h"
#include "netraven/cred.h"
#include "netraven/dispatch.h"
#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/store.h"

/* ---------------------------------------------------------------- a run */

struct run;
struct writer;

/* One device of a run: its task on the pool (dispatch.h: attempts,
 * retries, breaker), then, finished, on run->done for the run thread. */
struct run_task {
    struct nr_dispatch_task  task;
    struct run              *run;
    size_t                   idx;           /* into run->devices */
    struct run_task         *next;          /* on run->done once finished */
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
    struct writer               *writer;    /* the run thread's second writer */
    struct nr_dispatch           dispatch;  /* what its device tasks share */

    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    struct run_task *done_head, *done_tail;
    pthread_cond_t   space_cv;      /* unwritten fell below UNWRITTEN_MAX */
    size_t           unwritten;     /* handed to the run thread, not yet written */

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

/*
 * Hand a finished task to the run thread (on a pool thread).  A finished
 * task holds its result (a backup: the whole configuration) until it is
 * written; when writing falls behind the sessions (a first backup of a
 * large fleet, PostgreSQL slow), the pool thread waits here before it
 * takes another device, so that what waits to be written stays bounded
 * (UNWRITTEN_MAX results) instead of growing with the fleet.
 */
#define UNWRITTEN_MAX 512

static void task_done(struct nr_dispatch_task *task)
{
    struct run_task *t = task->arg;
    struct run *run = t->run;

    pthread_mutex_lock(&run->mu);
    while (run->unwritten >= UNWRITTEN_MAX)
        pthread_cond_wait(&run->space_cv, &run->mu);
    run->unwritten++;
    if (run->done_tail)
        run->done_tail->next = t;
    else
        run->done_head = t;
    run->done_tail = t;
    pthread_cond_signal(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Note the first failure to record and keep going: every task must still
 * be collected before the run's memory can go. */
static void record_failure_on(struct run *run, const struct nr_store *store, const char *what)
{
    pthread_mutex_lock(&run->mu);           /* the run's second writer records too */
    if (!run->record_failed) {
        run->record_failed = true;
        run->record_error = nr_asprintf("%s: %s", what, store->errstr);
    }
    pthread_mutex_unlock(&run->mu);
}

static void record_failure(struct run *run, const char *what)
{
    record_failure_on(run, run->store, what);
}

/* PostgreSQL went away under a run: wait for it on store with backoff
 * (backoff.h, 0.5 s doubling to 10 s, said once per call) and reconnect,
 * holding what the run has in memory, so that results are written once
 * when it is back.  Returns false when the runner is shutting down (its
 * stop ends the wait; the run then ends not recorded and its queue entry
 * is delivered again). */
static bool store_wait_on(struct run *run, struct nr_store *store, struct nr_backoff *b)
{
    double delay = nr_backoff_fail(b);

    if (nr_backoff_say(b))
        NR_LOG(NR_EV_SYS_DB_UNAVAILABLE, 0, 0, NR_S("error", store->errstr),
               NR_D("delay_s", delay));
    if (nr_backoff_wait(b, run->closing))
        return false;
    if (nr_store_reset(store) == 0) {
        char *masked = nr_config_mask_url(run->cfg->database.url);
        NR_LOG(NR_EV_SYS_DB_CONNECTED, 0, 0, NR_S("url", masked));
        free(masked);
    }
    return true;
}

/* A store call on store, repeated across a PostgreSQL outage (see
 * store_wait_on); STORE_TRY on the run thread's own connection. */
#define STORE_TRY_ON(run, store, call)                                        \
    ({                                                                        \
        int rc_;                                                              \
        struct nr_backoff b_ = NR_BACKOFF_INIT(0.5, 10);                      \
        for (;;) {                                                            \
            rc_ = (call);                                                     \
            if (rc_ >= 0 || (store)->err != NR_EIO ||                         \
                !store_wait_on((run), (store), &b_))                          \
                break;                                                        \
        }                                                                     \
        rc_;                                                                  \
    })
#define STORE_TRY(run, call) STORE_TRY_ON(run, (run)->store, call)

/*
 * Storing results.  The run thread writes what a device's session left
 * (credential bookkeeping, the configuration snapshot unless unchanged,
 * devices.last_seen, the job_results row) for every finished device it has
 * in hand in one transaction, up to SAVE_BATCH devices, sent as a pipeline
 * (store_batch_txn): the batch grows by itself when devices finish faster
 * than they can be written.  The log events that tell what was stored are
 * emitted after the COMMIT, so that none says "saved" of a row that was
 * rolled back.  A batch whose connection breaks is written again, whole,
 * once PostgreSQL is back (store_wait_on); one in which a statement fails
 * (a device deleted meanwhile, say) is rolled back and written again one
 * statement at a time (store_one), each failure then kept to its own
 * device.
 */
#define SAVE_BATCH 256

/* What storing one result did, for report_result(). */
struct saved {
    bool  had_config;
    int   config_rc;        /* NR_OK new snapshot, NR_SNAPSHOT_SAME, or < 0 */
    int   result_rc;
    char *result_err;       /* result_rc < 0: why */
};

/* The snapshot's config_metadata (JSON text, caller frees); the config
 * is made valid UTF-8 on the way, as a text column needs it. */
static char *config_meta(const struct run *run, const struct nr_device *dev,
                         struct nr_result *res)
{
    json_t *meta, *dur;
    char *text;

    nr_utf8_scrub(res->config, res->config_len);
    meta = json_pack("{s:I, s:s, s:s, s:I}", "job_id", (json_int_t)run->job.id,
                     "hostname", dev->hostname ? dev->hostname : "",
                     "device_type", dev->device_type ? dev->device_type : "",
                     "bytes", (json_int_t)res->config_len);
    dur = json_object_get(res->details, "duration_ms");
    if (dur)
        json_object_set(meta, "duration_ms", dur);
    text = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(meta);
    return text;
}

/*
 * The statements of one device's result, one at a time, each repeated
 * across a PostgreSQL outage: a failure is recorded, kept to its own
 * statement, and the next one goes on.
 */
static void store_one(struct run *run, struct nr_store *st, const struct nr_device *dev,
                      struct nr_result *res, struct saved *sv)
{
    long long jid = run->job.id;
    char *details;
    int rc;

    free(sv->result_err);
    *sv = (struct saved){ .had_config = res->config != NULL };
    for (size_t i = 0; i < res->nattempts; i++) {
        rc = STORE_TRY_ON(run, st, nr_cred_record_attempt(st, res->attempts[i].cred_id,
                                                           res->attempts[i].success));
        if (rc < 0)
            record_failure_on(run, st, "recording a credential attempt");
    }

    if (res->config != NULL) {
        char *meta_text = config_meta(run, dev, res);
        rc = STORE_TRY_ON(run, st, nr_store_config_save(st, dev->id, res->config,
                                                        res->config_len, res->config_hash,
                                                        meta_text));
        free(meta_text);
        sv->config_rc = rc;
        if (rc < 0) {
            res->success = false;
            json_object_set_new(res->details, "error",
                                json_string("the configuration could not be stored"));
            record_failure_on(run, st, "storing a configuration snapshot");
        } else {
            json_object_set_new(res->details, "deduplicated",
                                json_boolean(rc == NR_SNAPSHOT_SAME));
            json_object_set_new(res->details, "sha256", json_string(res->config_hash));
        }
    }
    if (res->device_seen) {
        rc = STORE_TRY_ON(run, st, nr_store_device_seen(st, dev->id));
        if (rc < 0)
            record_failure_on(run, st, "updating devices.last_seen");
    }

    details = json_dumps(res->details, JSON_COMPACT | JSON_REAL_PRECISION(12));
    rc = STORE_TRY_ON(run, st, nr_store_result_add(st, jid, dev->id, run->job_type,
                                                   res->success, details ? details : "{}"));
    free(details);
    sv->result_rc = rc;
    if (rc < 0) {
        sv->result_err = nr_strdup(st->errstr);
        record_failure_on(run, st, "saving a job result");
    }
}

/* The log events and metrics of one stored result. */
static void report_result(struct run *run, const struct nr_device *dev,
                          const struct nr_result *res, const struct saved *sv)
{
    long long jid = run->job.id;

    if (sv->had_config && sv->config_rc >= 0)
        NR_LOG(sv->config_rc == NR_SNAPSHOT_SAME ? NR_EV_CONFIG_UNCHANGED : NR_EV_CONFIG_SAVED,
               jid, dev->id, NR_S("device_name", dev->hostname),
               NR_S("hash", res->config_hash), NR_I("bytes", res->config_len));
    NR_LOG(res->success ? NR_EV_RESULT_SAVING_OK : NR_EV_RESULT_SAVING_FAIL, jid, dev->id,
           NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name));
    if (sv->result_rc < 0)
        NR_LOG(NR_EV_RESULT_SAVE_ERROR, jid, dev->id, NR_S("device_name", dev->hostname),
               NR_S("job_name", run->job.name), NR_S("error", sv->result_err));
    else
        NR_LOG(res->success ? NR_EV_RESULT_SAVED_OK : NR_EV_RESULT_SAVED_FAIL, jid, dev->id,
               NR_S("device_name", dev->hostname), NR_S("job_name", run->job.name));
    if (res->success)
        run->succeeded++;
    nr_metrics_device_task(res->success, res->failure.cls != NR_FAILURE_NONE
                                             ? nr_failure_name(res->failure.cls) : NULL);
}

static void outcome_saved(void *arg, const struct pg_result *r)
{
    struct saved *sv = arg;

    if (sv->had_config)
        sv->config_rc = nr_store_outcome_saved(r);
}

/*
 * Every result in one transaction sent as a pipeline (store.h): one
 * statement per device (snapshot, last_seen and result together, the
 * snapshot's "deduplicated" decided by the server), the credentials'
 * bookkeeping last, then the COMMIT: a few round trips for the whole
 * batch.  0, or -1 with nothing written (st->err says how it failed).
 * The credentials' rows (a few rows every device of a job shares) come
 * last so that their row locks are held for a moment rather than for the
 * whole batch: the two writers of a run would otherwise wait for each
 * other's COMMIT.  Across devices, each credential's updates keep their
 * order.
 */
static int store_batch_txn(struct run *run, struct nr_store *st, const struct nr_device **devs,
                           struct nr_result **res, struct saved *sv, size_t n)
{
    if (nr_store_pipe_begin(st) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct nr_result *r = res[i];
        char *meta = r->config != NULL ? config_meta(run, devs[i], r) : NULL;
        char *details = json_dumps(r->details, JSON_COMPACT | JSON_REAL_PRECISION(12));
        struct nr_store_outcome o = {
            .job_id = run->job.id, .device_id = devs[i]->id, .job_type = run->job_type,
            .success = r->success, .details_json = details ? details : "{}",
            .seen = r->device_seen, .config = r->config, .hash = r->config_hash,
            .config_meta = meta,
        };

        free(sv[i].result_err);
        sv[i] = (struct saved){ .had_config = r->config != NULL };
        nr_store_outcome_send(st, &o, outcome_saved, &sv[i]);
        free(details);
        free(meta);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < res[i]->nattempts; k++)
            nr_cred_record_attempt_send(st, res[i]->attempts[k].cred_id,
                                        res[i]->attempts[k].success);
    return nr_store_pipe_commit(st) == 0 ? 0 : -1;
}

/* Stores n results on st: one transaction, or one device at a time when
 * the transaction cannot be (see above). */
static void store_results(struct run *run, struct nr_store *st, const struct nr_device **devs,
                          struct nr_result **res, struct saved *sv, size_t n)
{
    struct nr_backoff b = NR_BACKOFF_INIT(0.5, 10);
    bool stored = false;

    while (!stored) {
        if (store_batch_txn(run, st, devs, res, sv, n) == 0)
            stored = true;
        else if (st->err != NR_EIO || !store_wait_on(run, st, &b))
            break;
    }
    for (size_t i = 0; i < n && !stored; i++)
        store_one(run, st, devs[i], res[i], &sv[i]);
}

/*
 * The run's second writer.  Writing a snapshot costs PostgreSQL far more
 * than the run thread spends on it (its full-text index reads the whole
 * configuration), and one connection is one server process on one core:
 * when results wait in a large batch, half of it goes to a second
 * connection, written by a thread of its own while the run thread writes
 * the other half.  One per run thread, its connection made on first use
 * and kept.
 */
#define SPLIT_MIN 32        /* a batch this large is written in two halves */

struct writer {
    pthread_t        th;
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    const struct nr_config *cfg;
    struct nr_store *store;
    bool             started, quit, busy;
    /* the half in hand */
    struct run              *run;
    const struct nr_device **devs;
    struct nr_result       **res;
    struct saved            *sv;
    size_t                   n;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy)
            break;
        pthread_mutex_unlock(&w->mu);
        if (w->store == NULL)
            w->store = nr_store_connect(w->cfg->database.url);
        store_results(w->run, w->store, w->devs, w->res, w->sv, w->n);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static struct writer *writer_new(const struct nr_config *cfg)
{
    struct writer *w = nr_calloc(1, sizeof(*w));

    w->cfg = cfg;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->started = pthread_create(&w->th, NULL, writer_main, w) == 0;
    if (w->started)
        pthread_setname_np(w->th, "nr-write");
    return w;
}

static void writer_free(struct writer *w)
{
    if (w == NULL)
        return;
    if (w->started) {
        pthread_mutex_lock(&w->mu);
        w->quit = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
    }
    nr_store_free(w->store);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

/* Stores n results (at most SAVE_BATCH), half of a large batch on the
 * second writer at the same time, then tells what was stored. */
static void save_results(struct run *run, const struct nr_device **devs, struct nr_result **res,
                         size_t n)
{
    struct saved sv[SAVE_BATCH];
    struct writer *w = run->writer;
    size_t half = w && w->started && n >= SPLIT_MIN ? n / 2 : 0;

    memset(sv, 0, sizeof(sv[0]) * n);
    if (half) {
        pthread_mutex_lock(&w->mu);
        w->run = run;
        w->devs = devs;
        w->res = res;
        w->sv = sv;
        w->n = half;
        w->busy = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    store_results(run, run->store, devs + half, res + half, sv + half, n - half);
    if (half) {
        pthread_mutex_lock(&w->mu);
        while (w->busy)
            pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    for (size_t i = 0; i < n; i++) {
        report_result(run, devs[i], res[i], &sv[i]);
        free(sv[i].result_err);
    }
}

static void save_result(struct run *run, const struct nr_device *dev, struct nr_result *res)
{
    save_results(run, &dev, &res, 1);
}

/* Fail every device without running anything (no handler, or the pool
 * refused the task). */
static void fail_device(struct run *run, size_t idx, const char *error)
{
    struct nr_result res = { .success = false, .details = json_object() };

    nr_failure_set(&res.failure, NR_FAILURE_NONE, NULL, "%s", error);
    nr_failure_details(res.details, &res.failure);
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

/*
 * Write the results that have come back, waiting up to wait_s for one
 * (< 0: as long as it takes).  Returns how many were written.
 */
static size_t write_done(struct run *run, double wait_s)
{
    long long jid = run->job.id;
    struct run_task *list;
    size_t written = 0;

    pthread_mutex_lock(&run->mu);
    if (run->done_head == NULL && wait_s != 0) {
        if (wait_s < 0) {
            while (run->done_head == NULL)
                pthread_cond_wait(&run->cv, &run->mu);
        } else {
            struct timespec ts;

            nr_mono_deadline(wait_s, &ts);
            pthread_cond_timedwait(&run->cv, &run->mu, &ts);
        }
    }
    list = run->done_head;
    run->done_head = run->done_tail = NULL;
    pthread_mutex_unlock(&run->mu);

    while (list) {
        const struct nr_device *devs[SAVE_BATCH];
        struct nr_result *res[SAVE_BATCH];
        struct run_task *batch = list;
        size_t n = 0;

        for (; list && n < SAVE_BATCH; list = list->next, n++) {
            devs[n] = &run->devices[list->idx];
            res[n] = &list->task.res;
        }
        save_results(run, devs, res, n);
        pthread_mutex_lock(&run->mu);
        run->unwritten -= n;
        pthread_cond_broadcast(&run->space_cv);
        pthread_mutex_unlock(&run->mu);
        for (struct run_task *t = batch; t != list; t = t->next) {
            const struct nr_device *dev = &run->devices[t->idx];

            NR_LOG(NR_EV_TASK_COMPLETED, jid, dev->id, NR_S("device_name", dev->hostname),
                   NR_S("job_name", run->job.name), NR_B("success", t->task.res.success));
            nr_dispatch_task_clear(&t->task);
            written++;
        }
    }
    return written;
}

/* Dispatch every device and collect the results; returns the final status. */
static const char *dispatch_devices(struct run *run)
{
    long long jid = run->job.id;
    size_t submitted = 0, collected = 0;
    int rc;
    bool dispatch_error = false;

    NR_LOG(NR_EV_HANDLER_DISPATCH, jid, 0, NR_S("job_name", run->job.name),
           NR_S("job_type", run->job_type), NR_S("handler", run->handler->name));

    run->dispatch = (struct nr_dispatch){
        .cfg = run->cfg, .pool = run->pool, .breaker = run->breaker, .closing = run->closing,
        .handler = run->handler, .job = &run->job, .payload = run->payload, .done = task_done,
    };
    run->tasks = nr_calloc(run->ndev, sizeof(*run->tasks));
    for (size_t i = 0; i < run->ndev; i++) {
        struct run_task *t = &run->tasks[i];
        const struct nr_credential *creds;
        size_t ncreds = 0;

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
        creds = nr_cred_set_get(run->creds, run->devices[i].id, &ncreds);
        if (run->handler->needs_credentials && creds == NULL) {
            NR_LOG(NR_EV_DEVICE_NO_CREDENTIALS, jid, run->devices[i].id,
                   NR_S("device_name", run->devices[i].hostname), NR_S("job_name", run->job.name));
            fail_device(run, i, "no credential shares a tag with this device");
            continue;
        }
        NR_LOG(NR_EV_TASK_SUBMITTED, jid, run->devices[i].id,
               NR_S("device_name", run->devices[i].hostname), NR_S("job_name", run->job.name));
        nr_dispatch_task_init(&t->task, &run->dispatch, &run->devices[i], creds, ncreds);
        t->task.arg = t;
        /* the pool's queue full: write what has come back meanwhile, so
         * that results never wait for the whole job to be queued */
        while ((rc = nr_dispatch_try_submit(&t->task)) == NR_EFULL)
            collected += write_done(run, 0.1);
        if (rc != 0) {
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

    while (collected < submitted)
        collected += write_done(run, -1);

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
                        struct writer *writer, struct nr_run_request *req,
                        struct nr_run_done *done)
{
    struct run run = { .cfg = cfg, .pool = pool, .payload = &req->payload, .closing = closing,
                       .breaker = breaker, .writer = writer };
    long long jid = req->payload.job_id;
    const char *status = NULL;
    pthread_condattr_t ca;
    int rc;

    pthread_mutex_init(&run.mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);    /* write_done()'s deadline */
    pthread_cond_init(&run.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&run.space_cv, NULL);
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
    pthread_cond_destroy(&run.space_cv);
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
    struct writer *writer = writer_new(r->cfg);

    pthread_setname_np(pthread_self(), "nr-run");
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
        run_execute(r->cfg, r->pool, &r->keyring, r->breaker, &r->stopping, &store, writer,
                    &req, &n->d);
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
    writer_free(writer);
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
    struct timespec ts;

    nr_mono_deadline(timeout_s, &ts);
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
