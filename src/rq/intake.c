/*
 * intake.c - the RQ intake thread (see the DESIGN comment in rq.h).
 *
 * Every job the thread holds is a `struct held` that moves through
 *
 *   TAKEN   popped and checked; the Start MULTI is not written yet
 *   REJECT  popped, cannot run; its failure is not written yet
 *   WAITING started in RQ; waiting for a runner slot
 *   RUNNING handed to the runner
 *   DONE    the runner reported; its outcome is not written yet
 *
 * and leaves when the write that ends it succeeded.  Every Redis write is
 * retried after a reconnect; TAKEN and REJECT jobs are in this worker's
 * intake list (rq.h, "Taking"), whose other ids (a take that failed half
 * way) go back to their queue after a (re)connect.  So a job taken from
 * its queue is never lost to a Redis failure, nor to this process dying:
 * it is started, failed, finished or handed back.
 * WAITING, RUNNING and DONE jobs are in rq:wip:<q> and are heart-beaten.
 * A RUNNING job past its RQ timeout becomes DONE with a failure, and its
 * run (which goes on) is forgotten: its report, when it comes, matches no
 * held job (each run is submitted under an entry id of its own).
 *
 * A run_job call runs in a runner slot; the scheduler's retention call
 * (prune_old_device_configs) runs on a prune thread of its own (prune.c),
 * one at a time: WAITING for it means waiting for that thread.
 */
#include "rq_i.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/backoff.h"
#include "netraven/log.h"
#include "netraven/queue.h"
#include "netraven/run.h"
#include "netraven/store.h"

#define HEARTBEAT_S       15.0      /* docs/python-rq.md §4.3: <= 30 s */
#define CLEANUP_S         60.0
#define TAKE_BUSY_S       1         /* BLPOP timeout while runs are in flight */
#define TAKE_IDLE_S       2         /* ... and while idle: bounds stop latency */
#define WAIT_S            1.0       /* runner wait when no slot is free */
#define PRUNE_POLL_S      0.2       /* ... and while a prune runs: it does not wake us */
#define BACKOFF_MIN_S     0.5
#define BACKOFF_MAX_S     10.0
#define COLLECT_BATCH     16

enum held_state { H_TAKEN, H_REJECT, H_WAITING, H_RUNNING, H_DONE };

struct held {
    enum held_state     state;
    char               *entry;      /* RUNNING: the run's entry id ("<rq id>#<n>") */
    uint64_t            deadline_ns;/* RUNNING: mono time of its RQ timeout, 0 none */
    struct nr_rq_job    job;
    struct nr_rq_call   call;       /* what it calls (not for REJECT) */
    long long           job_id;     /* NetRaven's job id; 0 for REJECT and prunes */
    char               *reason;     /* REJECT: why */
    struct nr_run_done  done;       /* DONE: the runner's report */
    struct nr_rq_prune *prune;      /* RUNNING prune: its thread */
    long long           devices, pruned, deleted;  /* DONE prune: what it did */
};

/* A command Redis refuses while the connection stays up (say WRONGTYPE on
 * a key someone else wrote) is tried again after a backoff of its own
 * (backoff.h), said once when it starts failing and once when it works
 * again. */

/* Per queue, in the order of rq->queues. */
struct qstate {
    struct nr_backoff       take;           /* the move from the queue */
    struct nr_backoff       cleanup;        /* its wip registry and intake lists */
    char                    take_what[160], cleanup_what[160];
};

struct nr_rq_intake {
    const struct nr_config *cfg;
    struct nr_runner       *runner;
    char                   *worker;
    pthread_t               thread;

    struct nr_backoff_stop  stop;           /* wakes the reconnect wait */

    struct nr_rq           *rq;
    bool                    connected;      /* registered since the last (re)connect */
    struct nr_backoff       down;           /* reconnects; said once per outage */
    uint64_t                next_hb_ns, next_cleanup_ns;
    bool                    suspended;
    char                   *shown_job;      /* current_job last written, NULL idle */
    struct qstate          *qs;             /* rq->queues.n of them, once connected */
    struct nr_backoff       hb_refusal, state_refusal, susp_refusal;
    unsigned long long      run_seq;        /* for the runs' entry ids */

    struct held           **h;
    size_t                  nh, cap;

    struct nr_store        *store;          /* for abandoned runs' job rows; lazy */
};

/* One intake at a time in a process: it owns the worker's name in RQ (its
 * registration, its intake lists), and two under one name would put back
 * each other's jobs. */
static atomic_bool g_running;

static uint64_t s_to_ns(double s) { return (uint64_t)(s * 1e9); }

/* ------------------------------------------------------------- the held */

static struct held *held_add(struct nr_rq_intake *in, enum held_state st, struct nr_rq_job *job)
{
    struct held *h = nr_calloc(1, sizeof(*h));

    h->state = st;
    h->job = *job;
    memset(job, 0, sizeof(*job));
    if (in->nh == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 8;
        in->h = nr_realloc(in->h, in->cap * sizeof(*in->h));
    }
    in->h[in->nh++] = h;
    return h;
}

static void held_free(struct held *h)
{
    nr_rq_prune_abandon(h->prune);  /* stops before its next device */
    free(h->entry);
    nr_rq_job_clear(&h->job);
    free(h->reason);
    nr_run_done_clear(&h->done);
    free(h);
}

static void held_remove(struct nr_rq_intake *in, size_t i)
{
    held_free(in->h[i]);
    memmove(&in->h[i], &in->h[i + 1], (in->nh - i - 1) * sizeof(*in->h));
    in->nh--;
}

static size_t count_state(const struct nr_rq_intake *in, enum held_state st)
{
    size_t n = 0;
    for (size_t i = 0; i < in->nh; i++)
        n += in->h[i]->state == st;
    return n;
}

static bool prune_running(const struct nr_rq_intake *in)
{
    for (size_t i = 0; i < in->nh; i++)
        if (in->h[i]->prune != NULL)
            return true;
    return false;
}

/* ---------------------------------------------------------- Redis state */

static bool stopping(struct nr_rq_intake *in)
{
    return nr_backoff_stop_requested(&in->stop);
}

/* A call failed: NR_EIO means the connection is gone (reconnect later);
 * NR_EINVAL means Redis refused this one write (log it, drop it). */
static void note_failure(struct nr_rq_intake *in, const struct held *h, const char *what, int rc)
{
    if (rc == NR_EIO) {
        in->connected = false;
        return;
    }
    NR_LOG(NR_EV_RQ_WRITE_REFUSED, h ? h->job_id : 0, 0, NR_S("rq_job", h ? h->job.id : "-"),
           NR_S("what", what), NR_S("error", in->rq->errstr));
}

static bool redis_ok(struct nr_rq_intake *in)
{
    return in->connected && in->rq->err == 0;
}

/* A call under r ended with rc: a refusal backs off (and is said the
 * first time), success ends the refusal (said if it was), NR_EIO drops
 * the connection.  Returns rc. */
static int refusal_note(struct nr_rq_intake *in, struct nr_backoff *r, const char *what, int rc)
{
    if (rc == NR_EIO) {
        in->connected = false;
    } else if (rc == NR_EINVAL) {
        double delay = nr_backoff_fail(r);

        if (nr_backoff_say(r))
            NR_LOG(NR_EV_RQ_REFUSED, 0, 0, NR_S("what", what), NR_S("error", in->rq->errstr),
                   NR_D("delay_s", delay));
    } else if (nr_backoff_ok(r)) {
        NR_LOG(NR_EV_RQ_ACCEPTED, 0, 0, NR_S("what", what));
    }
    return rc;
}

/* The jobs RQ sees as started by us, for heartbeats. */
static int heartbeat(struct nr_rq_intake *in)
{
    const struct nr_rq_job **jobs = nr_calloc(in->nh + 1, sizeof(*jobs));
    size_t n = 0;
    int rc;

    for (size_t i = 0; i < in->nh; i++)
        if (in->h[i]->state == H_WAITING || in->h[i]->state == H_RUNNING ||
            in->h[i]->state == H_DONE)
            jobs[n++] = &in->h[i]->job;
    rc = nr_rq_heartbeat(in->rq, jobs, n);
    free(jobs);
    refusal_note(in, &in->hb_refusal, "the heartbeat", rc);
    in->next_hb_ns = nr_mono_ns() + s_to_ns(HEARTBEAT_S);
    return rc;
}

/* A job RQ failed as abandoned had a run whose worker died: its `jobs`
 * row must not stay RUNNING.  A row that is no longer RUNNING (another
 * run finished it since) is left alone. */
static void end_abandoned_runs(struct nr_rq_intake *in, const struct nr_rq_died *died)
{
    for (size_t i = 0; i < died->n; i++) {
        if (in->store == NULL)
            in->store = nr_store_connect(in->cfg->database.url);
        int rc = nr_store_job_abandon(in->store, died->job_ids[i]);
        if (rc < 0 && in->store->err == NR_EIO && nr_store_reset(in->store) == 0)
            rc = nr_store_job_abandon(in->store, died->job_ids[i]);
        if (rc == NR_OK)
            NR_LOG(NR_EV_JOB_ABANDONED, died->job_ids[i], 0, NR_S("status", "FAILED_UNEXPECTED"));
        else if (rc < 0)
            NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "ending the job row of an abandoned RQ job"),
                   NR_S("error", in->store->errstr), NR_I("job_id", died->job_ids[i]));
    }
}

/* Put back the intake lists of queue i: this worker's own (own) or those
 * of dead workers. */
static int recover(struct nr_rq_intake *in, size_t i, bool own)
{
    struct nr_strlist keep = { 0 };
    size_t moved = 0;
    int rc;

    for (size_t k = 0; own && k < in->nh; k++)
        if (in->h[k]->job.in_intake && strcmp(in->h[k]->job.queue, in->rq->queues.v[i]) == 0)
            nr_strlist_push(&keep, in->h[k]->job.id);
    rc = nr_rq_recover(in->rq, in->rq->queues.v[i], own, &keep, &moved);
    nr_strlist_clear(&keep);

    if (moved > 0)
        NR_LOG(NR_EV_RQ_INTAKE_RECOVERED, 0, 0, NR_S("queue", in->rq->queues.v[i]),
               NR_I("moved", moved),
               NR_S("whose", own ? "this worker (before it restarted or reconnected)"
                                 : "workers that died"));
    return rc;
}

static void cleanup(struct nr_rq_intake *in)
{
    for (size_t i = 0; i < in->rq->queues.n && redis_ok(in); i++) {
        size_t failed = 0, requeued = 0;
        struct nr_rq_died died = { 0 };
        int rc = nr_rq_cleanup(in->rq, in->rq->queues.v[i], &failed, &requeued, &died);
        end_abandoned_runs(in, &died);
        free(died.job_ids);
        if (failed + requeued > 0)
            NR_LOG(NR_EV_RQ_ABANDONED, 0, 0, NR_S("queue", in->rq->queues.v[i]),
                   NR_I("failed", failed), NR_I("requeued", requeued));
        if (rc != NR_EIO) {
            int r2 = recover(in, i, false);
            if (rc == NR_OK || r2 == NR_EIO)
                rc = r2;
        }
        refusal_note(in, &in->qs[i].cleanup, in->qs[i].cleanup_what, rc);
    }
    in->next_cleanup_ns = nr_mono_ns() + s_to_ns(CLEANUP_S);
}

/* After a (re)connect: what our intake lists hold and we do not (a take
 * that failed after its move, or all of it after a restart) goes back to
 * its queue (rq.h, "Taking"). */
static void recover_own(struct nr_rq_intake *in)
{
    for (size_t i = 0; i < in->rq->queues.n && redis_ok(in); i++)
        refusal_note(in, &in->qs[i].cleanup, in->qs[i].cleanup_what, recover(in, i, true));
}

static void queues_init(struct nr_rq_intake *in)
{
    if (in->qs != NULL)
        return;
    in->qs = nr_calloc(in->rq->queues.n + 1, sizeof(*in->qs));
    for (size_t i = 0; i < in->rq->queues.n; i++) {
        nr_backoff_init(&in->qs[i].take, BACKOFF_MIN_S, BACKOFF_MAX_S);
        nr_backoff_init(&in->qs[i].cleanup, BACKOFF_MIN_S, BACKOFF_MAX_S);
        snprintf(in->qs[i].take_what, sizeof(in->qs[i].take_what), "taking jobs from queue %s",
                 in->rq->queues.v[i]);
        snprintf(in->qs[i].cleanup_what, sizeof(in->qs[i].cleanup_what),
                 "the cleanup of queue %s", in->rq->queues.v[i]);
    }
}

/* Connect or reconnect, then register, heart-beat our own jobs (so that
 * the cleanup cannot take them for abandoned) and clean up. */
static void ensure_connected(struct nr_rq_intake *in)
{
    int rc;

    if (redis_ok(in) || !nr_backoff_due(&in->down))
        return;
    if (in->rq == NULL) {
        in->rq = nr_rq_connect(in->cfg, in->worker, NULL);
        rc = in->rq->err ? NR_EIO : NR_OK;
    } else {
        rc = nr_rq_reset(in->rq);
    }
    if (rc == NR_OK && (rc = nr_rq_worker_register(in->rq)) == NR_OK) {
        free(in->shown_job);
        in->shown_job = NULL;
        in->connected = true;
        queues_init(in);
        /* a refused heartbeat is said by itself; the connection is fine */
        if (heartbeat(in) != NR_EIO && redis_ok(in)) {
            char *queues = NULL;
            size_t len = 0;
            for (size_t i = 0; i < in->rq->queues.n; i++)
                len += strlen(in->rq->queues.v[i]) + 2;
            queues = nr_calloc(1, len + 1);
            for (size_t i = 0; i < in->rq->queues.n; i++) {
                if (i)
                    strcat(queues, ", ");
                strcat(queues, in->rq->queues.v[i]);
            }
            NR_LOG(NR_EV_RQ_CONSUMING, 0, 0, NR_S("queues", queues), NR_S("worker", in->worker));
            free(queues);
            nr_backoff_ok(&in->down);
            recover_own(in);
            if (redis_ok(in))
                cleanup(in);
            return;
        }
    }
    double delay = nr_backoff_fail(&in->down);

    in->connected = false;
    if (nr_backoff_say(&in->down))
        NR_LOG(NR_EV_RQ_REDIS_UNAVAILABLE, 0, 0, NR_S("error", in->rq->errstr),
               NR_D("delay_s", delay));
}

/* Show the worker busy with the newest job that RQ sees started, or idle. */
static void update_worker_state(struct nr_rq_intake *in)
{
    const char *want = NULL;
    int rc;

    for (size_t i = in->nh; i-- > 0;)
        if (in->h[i]->state == H_WAITING || in->h[i]->state == H_RUNNING ||
            in->h[i]->state == H_DONE) {
            want = in->h[i]->job.id;
            break;
        }
    if ((want == NULL && in->shown_job == NULL) ||
        (want != NULL && in->shown_job != NULL && strcmp(want, in->shown_job) == 0))
        return;
    if (!nr_backoff_due(&in->state_refusal))
        return;
    rc = refusal_note(in, &in->state_refusal, "the worker state",
                      nr_rq_worker_state(in->rq, want));
    if (rc < 0)
        return;
    free(in->shown_job);
    in->shown_job = want ? nr_strdup(want) : NULL;
}

/* --------------------------------------------------------- job outcomes */

static void write_rejection(struct nr_rq_intake *in, size_t i)
{
    struct held *h = in->h[i];
    int rc = nr_rq_fail(in->rq, &h->job, h->reason, false, NULL);

    if (rc == NR_EIO) {
        in->connected = false;
        return;
    }
    if (rc == NR_OK)
        NR_LOG(NR_EV_RQ_JOB_REJECTED, 0, 0, NR_S("rq_job", h->job.id),
               NR_S("queue", h->job.queue), NR_S("reason", h->reason));
    else
        note_failure(in, h, "the job's failure", rc);
    held_remove(in, i);
}

/* Write the outcome of a DONE job (see "Outcome mapping" in rq.h). */
static void write_outcome(struct nr_rq_intake *in, size_t i)
{
    struct held *h = in->h[i];
    const struct nr_run_done *d = &h->done;
    bool requeued = false;
    const char *what;
    int rc;

    switch (d->outcome) {
    case NR_RUN_RECORDED:
        what = "the job's success";
        rc = nr_rq_finish(in->rq, &h->job);
        break;
    case NR_RUN_REJECTED:
        what = "the job's failure";
        rc = nr_rq_fail(in->rq, &h->job, d->reason ? d->reason : "the run was rejected",
                        false, &requeued);
        break;
    case NR_RUN_NOT_RECORDED:
    default:
        what = "the job's failure";
        rc = nr_rq_fail(in->rq, &h->job,
                        d->reason ? d->reason : "the run could not be recorded", true,
                        &requeued);
        break;
    }
    if (rc == NR_EIO) {
        in->connected = false;
        return;
    }
    if (rc < 0) {
        note_failure(in, h, what, rc);
    } else if (h->call.func == NR_RQ_PRUNE_CONFIGS && d->outcome == NR_RUN_RECORDED) {
        NR_LOG(NR_EV_RQ_PRUNE_FINISHED, 0, 0, NR_S("rq_job", h->job.id),
               NR_I("retain_count", h->call.arg), NR_I("deleted", h->deleted),
               NR_I("pruned", h->pruned), NR_I("devices", h->devices));
    } else if (h->call.func == NR_RQ_PRUNE_CONFIGS && !requeued) {
        NR_LOG(NR_EV_RQ_PRUNE_FAILED, 0, 0, NR_S("rq_job", h->job.id),
               NR_I("retain_count", h->call.arg), NR_S("reason", d->reason ? d->reason : ""));
    } else if (d->outcome == NR_RUN_RECORDED) {
        NR_LOG(NR_EV_RQ_JOB_FINISHED, h->job_id, 0, NR_S("rq_job", h->job.id),
               NR_I("job_id", h->job_id), NR_S("status", d->status ? d->status : "?"));
    } else if (requeued) {
        NR_LOG(NR_EV_RQ_JOB_REQUEUED, h->job_id, 0, NR_S("rq_job", h->job.id),
               NR_S("queue", h->job.queue), NR_I("retries_left", h->job.retries_left - 1),
               NR_S("reason", d->reason ? d->reason : ""));
    } else {
        NR_LOG(NR_EV_RQ_JOB_FAILED, h->job_id, 0, NR_S("rq_job", h->job.id),
               NR_I("job_id", h->job_id), NR_S("reason", d->reason ? d->reason : ""));
    }
    held_remove(in, i);
}

/* When a run started now must end: its job's RQ timeout; 0 for none. */
static uint64_t deadline_of(const struct held *h)
{
    return h->job.timeout > 0 ? nr_mono_ns() + (uint64_t)h->job.timeout * 1000000000ull : 0;
}

/* RUNNING jobs past their RQ timeout fail, as a Python worker's
 * JobTimeoutException; never retried, since the run cannot be stopped and
 * a retry would run the same NetRaven job twice at once (rq.h). */
static void expire(struct nr_rq_intake *in)
{
    uint64_t now = nr_mono_ns();

    for (size_t i = 0; i < in->nh; i++) {
        struct held *h = in->h[i];
        bool prune = h->prune != NULL;

        if (h->state != H_RUNNING || h->deadline_ns == 0 || now < h->deadline_ns)
            continue;
        nr_rq_prune_abandon(h->prune);      /* stops before its next device */
        h->prune = NULL;
        free(h->entry);                     /* its report will match nothing */
        h->entry = NULL;
        h->done.outcome = NR_RUN_REJECTED;  /* failed, never retried */
        h->done.reason = nr_asprintf("JobTimeoutException: job timed out after %ld s (its RQ "
                                     "timeout); %s", h->job.timeout,
                                     prune ? "the retention call stops before its next device"
                                           : "the run goes on and records its own outcome in "
                                             "NetRaven");
        h->state = H_DONE;
    }
}

/* Hand the job to the runner: RUNNING, or still WAITING when the slot was
 * taken by the other intake. */
static void submit(struct nr_rq_intake *in, struct held *h)
{
    struct nr_run_request req = { .source = NR_RUN_SOURCE_RQ };
    int rc;

    if (h->call.func == NR_RQ_PRUNE_CONFIGS) {
        if (prune_running(in))
            return;
        h->prune = nr_rq_prune_start(in->cfg->database.url, h->call.arg, h->job.id);
        if (h->prune != NULL) {
            h->state = H_RUNNING;
            h->deadline_ns = deadline_of(h);
            return;
        }
        /* as a run the runner could not record: RQ may retry it */
        h->done.outcome = NR_RUN_NOT_RECORDED;
        h->done.reason = nr_strdup("could not start the prune thread");
        h->state = H_DONE;
        return;
    }
    /* an entry id of its own: the same RQ id may run again while a run of
     * it that timed out goes on */
    req.entry_id = nr_asprintf("%s#%llu", h->job.id, ++in->run_seq);
    req.payload.job_id = h->job_id;
    h->entry = nr_strdup(req.entry_id);
    rc = nr_runner_submit(in->runner, &req);
    if (rc == NR_OK) {
        h->state = H_RUNNING;
        h->deadline_ns = deadline_of(h);
        return;
    }
    free(h->entry);
    h->entry = NULL;
    free(req.entry_id);
    nr_payload_clear(&req.payload);
}

/* Shutting down: hand a job that never ran back to its queue. */
static void release(struct nr_rq_intake *in, size_t i)
{
    struct held *h = in->h[i];
    int rc = nr_rq_release(in->rq, &h->job);

    if (rc == NR_EIO) {
        in->connected = false;
        return;
    }
    if (rc == NR_OK)
        NR_LOG(NR_EV_RQ_JOB_RELEASED, h->job_id, 0, NR_S("rq_job", h->job.id),
               NR_S("queue", h->job.queue));
    else
        note_failure(in, h, "handing the job back", rc);
    held_remove(in, i);
}

/* Move every held job as far as it can go now. */
static void advance(struct nr_rq_intake *in)
{
    for (size_t i = 0; i < in->nh && redis_ok(in);) {
        struct held *h = in->h[i];
        size_t before = in->nh;
        int rc;

        switch (h->state) {
        case H_TAKEN:
            if (stopping(in)) {
                release(in, i);     /* never started: back to the front of its queue */
                break;
            }
            rc = nr_rq_start(in->rq, &h->job);
            if (rc == NR_OK) {
                h->state = H_WAITING;
                continue;       /* and try to submit at once */
            }
            if (rc == NR_NOTFOUND) {
                /* put back by a worker that took us for dead: not ours */
                NR_LOG(NR_EV_RQ_JOB_TAKEN_BACK, h->job_id, 0, NR_S("rq_job", h->job.id),
                       NR_S("queue", h->job.queue));
                held_remove(in, i);
                break;
            }
            note_failure(in, h, "marking the job started", rc);
            if (rc != NR_EIO) {
                /* Redis refused the start: fail it rather than run it
                 * without RQ knowing */
                h->state = H_REJECT;
                h->reason = nr_asprintf("could not mark the job started: %s", in->rq->errstr);
                continue;
            }
            break;
        case H_REJECT:
            write_rejection(in, i);
            break;
        case H_WAITING:
            if (stopping(in)) {
                release(in, i);     /* started, never run: likewise */
                break;
            }
            submit(in, h);
            break;
        case H_DONE:
            write_outcome(in, i);
            break;
        case H_RUNNING:
            break;
        }
        if (in->nh == before)
            i++;
    }
}

/* A prune thread that finished: its outcome, as a run's (see "Outcome
 * mapping" in rq.h: a database failure is what a raise of the Python job
 * is, so RQ may retry it). */
static void collect_prune(struct held *h)
{
    struct nr_rq_prune *p = h->prune;

    h->devices = p->devices;
    h->pruned = p->pruned;
    h->deleted = p->deleted;
    if (p->rc == NR_OK) {
        h->done.outcome = NR_RUN_RECORDED;
    } else {
        h->done.outcome = NR_RUN_NOT_RECORDED;
        h->done.reason = nr_asprintf(NR_RQ_FUNC_PRUNE " failed: %s",
                                     p->reason ? p->reason : "stopped");
    }
    nr_rq_prune_free(p);
    h->prune = NULL;
    h->state = H_DONE;
}

/* Take the runner's reports for our runs, and the prune thread's. */
static void collect(struct nr_rq_intake *in)
{
    struct nr_run_done d[COLLECT_BATCH];
    size_t n;

    for (size_t i = 0; i < in->nh; i++)
        if (in->h[i]->prune != NULL && nr_rq_prune_done(in->h[i]->prune))
            collect_prune(in->h[i]);

    while ((n = nr_runner_collect(in->runner, NR_RUN_SOURCE_RQ, d, COLLECT_BATCH)) > 0) {
        for (size_t k = 0; k < n; k++) {
            struct held *match = NULL;
            for (size_t i = 0; i < in->nh && !match; i++)
                if (in->h[i]->state == H_RUNNING && in->h[i]->entry && d[k].entry_id &&
                    strcmp(in->h[i]->entry, d[k].entry_id) == 0)
                    match = in->h[i];
            if (match == NULL) {
                /* a run whose job timed out: RQ has its failure already,
                 * NetRaven's database has the run's own outcome */
                nr_run_done_clear(&d[k]);
                continue;
            }
            match->done = d[k];
            match->state = H_DONE;
        }
    }
}

/* One queue's move: refusals back off per queue (refusal_note). */
static int take_q(struct nr_rq_intake *in, size_t qi, int timeout_s, struct nr_rq_job *job)
{
    return refusal_note(in, &in->qs[qi].take, in->qs[qi].take_what,
                        nr_rq_take_from(in->rq, qi, timeout_s, job));
}

/* Take one job and hold it as TAKEN or REJECT: every queue not backing off
 * from a refusal at once, in order, then a blocking move on the first of
 * them (1 s when there are others to look at again, or runs in flight). */
static void take_one(struct nr_rq_intake *in)
{
    struct nr_rq_job job;
    struct nr_rq_call call;
    char *reason = NULL;
    size_t nq = in->rq->queues.n, first = nq, qi;
    int rc = NR_NOTFOUND;

    for (qi = 0; qi < nq && rc != NR_OK; qi++)
        if (nr_backoff_due(&in->qs[qi].take) && (rc = take_q(in, qi, 0, &job)) == NR_EIO)
            return;
    if (rc != NR_OK) {
        for (qi = 0; qi < nq && first == nq; qi++)
            if (nr_backoff_due(&in->qs[qi].take))
                first = qi;
        if (first == nq) {
            /* every queue refused: wait for the first retry, or a run */
            nr_runner_wait(in->runner, NR_RUN_SOURCE_RQ, WAIT_S);
            return;
        }
        int timeout = nq > 1 || count_state(in, H_RUNNING) ? TAKE_BUSY_S : TAKE_IDLE_S;
        if (take_q(in, first, timeout, &job) != NR_OK)
            return;
    }
    if (nr_rq_job_check_call(&job, &call, &reason) != NR_OK) {
        struct held *h = held_add(in, H_REJECT, &job);
        h->reason = reason ? reason : nr_strdup("job rejected");
        return;
    }
    struct held *h = held_add(in, H_TAKEN, &job);
    h->call = call;
    if (call.func == NR_RQ_PRUNE_CONFIGS) {
        NR_LOG(NR_EV_RQ_PRUNE_TAKEN, 0, 0, NR_S("rq_job", h->job.id),
               NR_S("queue", h->job.queue), NR_I("retain_count", call.arg));
        return;
    }
    h->job_id = call.arg;
    NR_LOG(NR_EV_RQ_JOB_TAKEN, h->job_id, 0, NR_S("rq_job", h->job.id),
           NR_S("queue", h->job.queue), NR_I("job_id", h->job_id));
}

/* Is `rq suspend` in force?  Logged on change. */
static bool suspended(struct nr_rq_intake *in)
{
    int rc;

    if (!nr_backoff_due(&in->susp_refusal))
        return true;
    rc = nr_rq_suspended(in->rq);
    refusal_note(in, &in->susp_refusal, "reading rq:suspended", rc < 0 ? rc : NR_OK);
    if (rc < 0)
        return true;
    if (rc != in->suspended) {
        if (rc)
            NR_LOG(NR_EV_RQ_SUSPENDED, 0, 0);
        else
            NR_LOG(NR_EV_RQ_RESUMED, 0, 0);
        in->suspended = rc;
    }
    return rc;
}

/* ---------------------------------------------------------- the thread */

static bool grace_over(struct nr_rq_intake *in)
{
    uint64_t at = nr_backoff_stop_at(&in->stop);
    int grace = in->cfg->worker.shutdown_grace_seconds;

    return at != 0 && nr_mono_ns() >= at + (uint64_t)(grace > 0 ? grace : 0) * 1000000000ull;
}

static void *intake_main(void *arg)
{
    struct nr_rq_intake *in = arg;
    sigset_t all;

    /* signals belong to the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "rq-intake");

    for (;;) {
        uint64_t now;

        collect(in);
        ensure_connected(in);
        expire(in);
        if (redis_ok(in))
            advance(in);
        if (redis_ok(in))
            update_worker_state(in);

        now = nr_mono_ns();
        if (redis_ok(in) && now >= in->next_hb_ns)
            heartbeat(in);
        if (redis_ok(in) && now >= in->next_cleanup_ns && !stopping(in))
            cleanup(in);

        if (stopping(in)) {
            /* done when nothing is left to write, or the grace is over
             * (RUNNING jobs are then handed back; see rq.h) */
            if (in->nh == 0 || (grace_over(in) && (count_state(in, H_RUNNING) == in->nh ||
                                                   !redis_ok(in))))
                break;
            nr_runner_wait(in->runner, NR_RUN_SOURCE_RQ, 0.2);
            continue;
        }
        if (!redis_ok(in)) {
            /* nothing can be written before the reconnect: wait for its
             * time, or a stop */
            nr_backoff_wait(&in->down, &in->stop);
            continue;
        }
        /* a new job only when none waits for a slot and a slot is free */
        if (count_state(in, H_WAITING) == 0 && count_state(in, H_TAKEN) == 0 &&
            nr_runner_free_slots(in->runner) > 0 && !suspended(in) && redis_ok(in)) {
            take_one(in);
            continue;
        }
        nr_runner_wait(in->runner, NR_RUN_SOURCE_RQ,
                       prune_running(in) ? PRUNE_POLL_S : in->suspended ? WAIT_S * 2 : WAIT_S);
    }

    /* hand back what is still running: another worker takes it, and this
     * process will not write its outcome (it exits without waiting) */
    size_t left = 0;
    for (size_t i = 0; i < in->nh && redis_ok(in); i++) {
        if (in->h[i]->state != H_RUNNING)
            continue;
        if (in->h[i]->prune != NULL) {
            /* it stops before its next device: what it deleted stays
             * deleted, and another worker prunes the rest */
            nr_rq_prune_abandon(in->h[i]->prune);
            in->h[i]->prune = NULL;
        }
        int rc = nr_rq_release(in->rq, &in->h[i]->job);
        if (rc < 0)
            note_failure(in, NULL, "handing a job back", rc);
        else
            left++;
    }
    if (redis_ok(in)) {
        int rc = nr_rq_worker_death(in->rq);
        if (rc < 0)
            note_failure(in, NULL, "the worker's death", rc);
    }
    NR_LOG(NR_EV_RQ_STOPPED, 0, 0, NR_I("handed_back", left));
    return NULL;
}

static void intake_release(struct nr_rq_intake *in)
{
    for (size_t i = 0; i < in->nh; i++)
        held_free(in->h[i]);
    free(in->h);
    nr_rq_free(in->rq);
    nr_store_free(in->store);
    free(in->shown_job);
    free(in->qs);
    free(in->worker);
    nr_backoff_stop_clear(&in->stop);
    free(in);
}

struct nr_rq_intake *nr_rq_intake_new(const struct nr_config *cfg, struct nr_runner *runner,
                                      const char *consumer)
{
    struct nr_rq_intake *in;

    if (cfg == NULL || runner == NULL || atomic_exchange(&g_running, true))
        return NULL;
    in = nr_calloc(1, sizeof(*in));
    in->cfg = cfg;
    in->runner = runner;
    in->worker = nr_config_worker_name(cfg, consumer);
    nr_backoff_stop_init(&in->stop);
    nr_backoff_init(&in->down, BACKOFF_MIN_S, BACKOFF_MAX_S);
    nr_backoff_init(&in->hb_refusal, BACKOFF_MIN_S, BACKOFF_MAX_S);
    nr_backoff_init(&in->state_refusal, BACKOFF_MIN_S, BACKOFF_MAX_S);
    nr_backoff_init(&in->susp_refusal, BACKOFF_MIN_S, BACKOFF_MAX_S);
    if (pthread_create(&in->thread, NULL, intake_main, in) != 0) {
        intake_release(in);
        atomic_store(&g_running, false);
        return NULL;
    }
    return in;
}

void nr_rq_intake_stop(struct nr_rq_intake *in)
{
    if (in != NULL)
        nr_backoff_stop_request(&in->stop);
}

void nr_rq_intake_free(struct nr_rq_intake *in)
{
    if (in == NULL)
        return;
    nr_rq_intake_stop(in);
    pthread_join(in->thread, NULL);
    intake_release(in);
    atomic_store(&g_running, false);
}
