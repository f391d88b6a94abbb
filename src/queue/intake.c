/*
 * intake.c - the stream intake thread (see the DESIGN comment of the
 * intake section in queue.h).
 *
 * The thread owns one struct nr_queue and every entry id it handed to the
 * runner (`inflight`, kept fresh against claims) or got back from it
 * (`unacked`, completions waiting for Redis).  Nothing else touches them.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netraven/backoff.h"
#include "netraven/log.h"
#include "netraven/queue.h"
#include "netraven/run.h"

#define READ_BATCH      64
#define BACKOFF_MIN_S   0.5
#define BACKOFF_MAX_S   10.0
#define SLOT_WAIT_S     0.5     /* runner wait when no slot is free */
#define GRACE_WAIT_S    0.2     /* ... and while runs finish at shutdown */
#define BUSY_BLOCK_MS   50      /* read block while runs are in flight */

struct nr_queue_intake {
    const struct nr_config *cfg;
    struct nr_runner       *runner;
    char                   *consumer;
    char                   *heartbeat;  /* path; NULL: none */
    time_t                  heartbeat_at;
    pthread_t               thread;
    struct nr_backoff_stop  stop;

    struct nr_queue        *q;
    struct nr_backoff       down;       /* reconnects; said once per outage */
    struct nr_run_done     *unacked;    /* completions waiting for Redis */
    size_t                  n_unacked;
    char                  **inflight;   /* entry ids handed to the runner */
    size_t                  n_inflight;
    uint64_t                next_touch; /* mono ns of the next touch of inflight */
    uint64_t                next_claim; /* mono ns of the next claim */
};

static void inflight_add(struct nr_queue_intake *in, const char *id)
{
    in->inflight = nr_realloc(in->inflight, (in->n_inflight + 1) * sizeof(*in->inflight));
    in->inflight[in->n_inflight++] = nr_strdup(id);
}

static void inflight_del(struct nr_queue_intake *in, const char *id)
{
    for (size_t i = 0; i < in->n_inflight; i++)
        if (strcmp(in->inflight[i], id) == 0) {
            free(in->inflight[i]);
            in->inflight[i] = in->inflight[--in->n_inflight];
            return;
        }
}

/* At most once a second: the daemon's liveness for `health`. */
static void heartbeat(struct nr_queue_intake *in)
{
    time_t now = time(NULL);

    if (in->heartbeat == NULL || now == in->heartbeat_at)
        return;
    in->heartbeat_at = now;
    FILE *f = fopen(in->heartbeat, "w");
    if (f) {
        fprintf(f, "%ld %ld\n", (long)getpid(), (long)now);
        fclose(f);
    }
}

static void log_polling(struct nr_queue_intake *in)
{
    NR_LOG(NR_EV_SYS_QUEUE_POLLING, 0, 0, NR_S("stream", in->cfg->queue.stream),
           NR_S("consumer", in->consumer), NR_S("group", in->cfg->queue.group));
}

static void log_connected(struct nr_queue_intake *in)
{
    char *masked = nr_config_mask_url(in->cfg->scheduler.redis_url);

    NR_LOG(NR_EV_SYS_REDIS_CONNECTED, 0, 0, NR_S("url", masked));
    free(masked);
}

/* Redis failed: said once per outage, with the wait before the next try. */
static void redis_down(struct nr_queue_intake *in, double delay)
{
    if (nr_backoff_say(&in->down))
        NR_LOG(NR_EV_SYS_REDIS_UNAVAILABLE, 0, 0, NR_S("error", in->q->errstr),
               NR_D("delay_s", delay));
}

/* Connected, or reconnected now; else the backoff is waited out (a stop
 * ends the wait) and false returned. */
static bool redis_ensure(struct nr_queue_intake *in)
{
    if (in->q->err == 0)
        return true;
    if (nr_queue_reset(in->q) == 0) {
        log_connected(in);
        log_polling(in);
        nr_backoff_ok(&in->down);
        return true;
    }
    redis_down(in, nr_backoff_fail(&in->down));
    nr_backoff_wait(&in->down, &in->stop);
    return false;
}

/* Acknowledge (or dead-letter) every completion we hold.  A completion
 * whose run could not be recorded is left pending in the stream: the entry
 * is delivered again (restart, or a claim by a live worker). */
static void settle_completions(struct nr_queue_intake *in)
{
    struct nr_run_done batch[READ_BATCH];
    size_t n;

    while ((n = nr_runner_collect(in->runner, NR_RUN_SOURCE_STREAM, batch, READ_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++)
            inflight_del(in, batch[i].entry_id);
        in->unacked = nr_realloc(in->unacked, (in->n_unacked + n) * sizeof(*in->unacked));
        memcpy(in->unacked + in->n_unacked, batch, n * sizeof(*batch));
        in->n_unacked += n;
    }

    size_t kept = 0;
    for (size_t i = 0; i < in->n_unacked; i++) {
        struct nr_run_done *c = &in->unacked[i];
        int rc = 0;

        if (in->q->err) {
            in->unacked[kept++] = *c;
            continue;
        }
        switch (c->outcome) {
        case NR_RUN_RECORDED:
            rc = nr_queue_ack(in->q, c->entry_id, c->status);
            if (rc == 0)
                NR_LOG(NR_EV_SYS_QUEUE_ACKED, 0, 0, NR_S("entry_id", c->entry_id),
                       NR_I("job_id", c->job_id), NR_S("status", c->status));
            break;
        case NR_RUN_REJECTED: {
            struct nr_queue_msg m = { .entry_id = c->entry_id };
            char *payload = nr_asprintf("{\"job_id\": %lld}", c->job_id);
            m.payload = payload;
            m.payload_len = strlen(payload);
            rc = nr_queue_dead(in->q, &m, c->reason);
            if (rc == 0)
                NR_LOG(NR_EV_SYS_QUEUE_DEAD, 0, 0, NR_S("entry_id", c->entry_id),
                       NR_S("reason", c->reason), NR_S("dead_stream", in->cfg->queue.dead_stream));
            free(payload);
            break;
        }
        case NR_RUN_NOT_RECORDED:
            NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "run not recorded; entry left pending"),
                   NR_S("error", c->reason ? c->reason : "unknown"),
                   NR_S("entry_id", c->entry_id), NR_I("job_id", c->job_id));
            break;
        }
        if (rc < 0) {
            in->unacked[kept++] = *c;
            continue;
        }
        nr_run_done_clear(c);
    }
    in->n_unacked = kept;
}

static void handle_entry(struct nr_queue_intake *in, struct nr_queue_msg *m)
{
    struct nr_run_request req = { 0 };
    char *reason = NULL;

    /* Delivered again and again, never acknowledged: every worker that took
     * it died, gave it back or could not record its run (a PostgreSQL
     * outage is waited out inside the run, so it does not count here).
     * Running it once more would likely take the next worker down. */
    if (m->deliveries > in->cfg->worker.max_deliveries)
        reason = nr_asprintf("delivered %lld times without being acknowledged "
                             "(worker.max_deliveries is %d): each worker that took it "
                             "died, gave it back or could not record its run",
                             m->deliveries, in->cfg->worker.max_deliveries);
    else if (m->payload == NULL)
        reason = nr_strdup("entry has no 'payload' field");
    else if (nr_payload_parse(m->payload, m->payload_len, &req.payload, &reason) != 0 &&
             reason == NULL)
        reason = nr_strdup("payload rejected");
    if (reason) {
        if (nr_queue_dead(in->q, m, reason) == 0)
            NR_LOG(NR_EV_SYS_QUEUE_DEAD, 0, 0, NR_S("entry_id", m->entry_id),
                   NR_S("reason", reason), NR_S("dead_stream", in->cfg->queue.dead_stream));
        free(reason);
        return;
    }
    NR_LOG(NR_EV_SYS_QUEUE_ENTRY, 0, 0, NR_S("entry_id", m->entry_id),
           NR_I("job_id", req.payload.job_id));
    inflight_add(in, m->entry_id);
    req.entry_id = m->entry_id;
    m->entry_id = NULL;
    if (nr_runner_submit(in->runner, &req) != 0) {
        inflight_del(in, req.entry_id);
        /* cannot happen: we read only as many entries as free slots; the
         * entry stays pending and is delivered again */
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "runner refused an entry"),
               NR_S("error", "no free slot"), NR_S("entry_id", req.entry_id));
        free(req.entry_id);
        nr_payload_clear(&req.payload);
    }
}

/* Every third of worker.claim_idle_seconds, whatever the run slots do: keep
 * the entries we run from looking idle.  It must not wait for a free slot:
 * a worker whose every slot runs longer than claim_idle_seconds would have
 * its entries taken over, and run twice, by another worker (or by its own
 * next claim).  The loop comes here at least every half second, the
 * runner's wait, so the touch is at most that late. */
static void keep_fresh(struct nr_queue_intake *in)
{
    uint64_t now = nr_mono_ns();

    if (now < in->next_touch || in->n_inflight == 0)
        return;
    if (nr_queue_touch(in->q, in->inflight, in->n_inflight) < 0)
        return;         /* err is set: the loop reconnects, then touches */
    in->next_touch = now + (uint64_t)in->cfg->worker.claim_idle_seconds * 1000000000ull / 3;
}

/* Every third of worker.claim_idle_seconds, when a slot is free: take over
 * entries that a dead worker (or a run of ours that could not be recorded)
 * left pending for claim_idle_seconds.  keep_fresh() runs first in every
 * turn of the loop, so none of our own runs looks idle to this claim. */
static void claim_idle(struct nr_queue_intake *in, struct nr_queue_msg *msgs, size_t free_slots)
{
    uint64_t now = nr_mono_ns();
    size_t n = 0;

    if (now < in->next_claim)
        return;
    in->next_claim = now + (uint64_t)in->cfg->worker.claim_idle_seconds * 1000000000ull / 3;
    if (nr_queue_claim(in->q, (long)in->cfg->worker.claim_idle_seconds * 1000, msgs,
                       free_slots, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        NR_LOG(NR_EV_SYS_QUEUE_CLAIMED, 0, 0, NR_S("entry_id", msgs[i].entry_id),
               NR_I("idle_s", in->cfg->worker.claim_idle_seconds));
        handle_entry(in, &msgs[i]);
        nr_queue_msg_clear(&msgs[i]);
    }
}

static size_t read_slots(struct nr_queue_intake *in)
{
    size_t n = nr_runner_free_slots(in->runner);

    return n > READ_BATCH ? READ_BATCH : n;
}

/* Take entries while the runner has free slots, until a stop. */
static void intake_loop(struct nr_queue_intake *in)
{
    struct nr_queue_msg msgs[READ_BATCH];

    while (!nr_backoff_stop_requested(&in->stop)) {
        heartbeat(in);
        if (!redis_ensure(in))
            continue;
        settle_completions(in);
        keep_fresh(in);
        if (in->q->err)
            continue;

        size_t free_slots = read_slots(in);
        if (free_slots == 0) {
            nr_runner_wait(in->runner, NR_RUN_SOURCE_STREAM, SLOT_WAIT_S);
            continue;
        }
        claim_idle(in, msgs, free_slots);
        if (in->q->err)
            continue;
        free_slots = read_slots(in);
        if (free_slots == 0)
            continue;
        /* block shortly when runs are in flight, so completions are
         * acknowledged promptly */
        int block = nr_runner_in_flight(in->runner) ? BUSY_BLOCK_MS : in->cfg->queue.block_ms;
        size_t n = 0;
        if (nr_queue_read(in->q, msgs, free_slots, block, &n) < 0) {
            redis_down(in, nr_backoff_delay(&in->down));
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            handle_entry(in, &msgs[i]);
            nr_queue_msg_clear(&msgs[i]);
        }
    }
}

/* Stopped: let this intake's runs finish within the grace time (counted
 * from the stop request), acknowledging each. */
static void intake_drain(struct nr_queue_intake *in)
{
    int grace = in->cfg->worker.shutdown_grace_seconds;
    uint64_t until = nr_backoff_stop_at(&in->stop) + (uint64_t)(grace > 0 ? grace : 0) *
                                                     1000000000ull;

    while (in->n_inflight > 0 && nr_mono_ns() < until) {
        heartbeat(in);
        nr_runner_wait(in->runner, NR_RUN_SOURCE_STREAM, GRACE_WAIT_S);
        if (in->q->err)
            nr_queue_reset(in->q);
        settle_completions(in);
    }
    if (in->q->err)
        nr_queue_reset(in->q);
    settle_completions(in);
}

static void *intake_main(void *arg)
{
    struct nr_queue_intake *in = arg;
    sigset_t all;

    /* signals belong to the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "stream-intake");

    in->q = nr_queue_connect(in->cfg, in->consumer);
    if (in->q->err == 0) {
        log_connected(in);
        log_polling(in);
    }
    intake_loop(in);
    intake_drain(in);
    return NULL;
}

static void intake_release(struct nr_queue_intake *in)
{
    for (size_t i = 0; i < in->n_unacked; i++)
        nr_run_done_clear(&in->unacked[i]);
    free(in->unacked);
    for (size_t i = 0; i < in->n_inflight; i++)
        free(in->inflight[i]);
    free(in->inflight);
    nr_queue_free(in->q);
    nr_backoff_stop_clear(&in->stop);
    free(in->heartbeat);
    free(in->consumer);
    free(in);
}

struct nr_queue_intake *nr_queue_intake_new(const struct nr_config *cfg,
                                            struct nr_runner *runner, const char *consumer,
                                            const char *heartbeat_path)
{
    struct nr_queue_intake *in;

    if (cfg == NULL || runner == NULL)
        return NULL;
    in = nr_calloc(1, sizeof(*in));
    in->cfg = cfg;
    in->runner = runner;
    in->consumer = nr_config_worker_name(cfg, consumer);
    in->heartbeat = nr_strdup(heartbeat_path);
    nr_backoff_init(&in->down, BACKOFF_MIN_S, BACKOFF_MAX_S);
    nr_backoff_stop_init(&in->stop);
    if (pthread_create(&in->thread, NULL, intake_main, in) != 0) {
        intake_release(in);
        return NULL;
    }
    return in;
}

void nr_queue_intake_stop(struct nr_queue_intake *in)
{
    if (in != NULL)
        nr_backoff_stop_request(&in->stop);
}

void nr_queue_intake_free(struct nr_queue_intake *in)
{
    if (in == NULL)
        return;
    nr_queue_intake_stop(in);
    pthread_join(in->thread, NULL);
    intake_release(in);
}
