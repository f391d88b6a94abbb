/*
 * main.c - netraven-worker's command line and the daemon's wiring.
 *
 *   netraven-worker [--config-dir DIR] run            the daemon (default)
 *   netraven-worker [--config-dir DIR] migrate        apply sql/ to database.url
 *                                      [--wait S]     (waiting for PostgreSQL)
 *   netraven-worker [--config-dir DIR] check-config   print the effective config
 *   netraven-worker [--config-dir DIR] enqueue JOB_ID [--device ID]... [--job-type T]
 *                                      [--wait] [--timeout S]
 *   netraven-worker [--config-dir DIR] health         exit 0 if the daemon's
 *                                                     heartbeat is fresh
 *   netraven-worker version
 *
 * The daemon: the main thread is the intake loop.  It reads queue entries
 * only while the runner has free slots, hands them over, and acknowledges
 * each entry once the runner reports its run recorded.  Signals only set
 * flags; SIGTERM/SIGINT stop intake and wait up to
 * worker.shutdown_grace_seconds for runs in flight.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "netraven/config.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/pool.h"
#include "netraven/queue.h"
#include "netraven/rq.h"
#include "netraven/run.h"
#include "netraven/store.h"

#define NR_VERSION "0.1.0"
#define READ_BATCH 64

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
    g_stop = sig;
}

static void on_hup(int sig)
{
    (void)sig;
    nr_log_reopen();
}

static void install_signals(void)
{
    struct sigaction sa = { 0 };

    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

static void usage(FILE *out)
{
    fputs("usage: netraven-worker [--config-dir DIR] COMMAND [ARGS]\n"
          "\n"
          "commands:\n"
          "  run                      take jobs from Redis and run them (default)\n"
          "  migrate [--wait S]       create or update the schema in database.url; wait up to\n"
          "                           S seconds (default 60) for PostgreSQL to accept connections\n"
          "  check-config             print the effective configuration, secrets masked\n"
          "  enqueue JOB_ID [--device ID]... [--job-type TYPE] [--wait] [--timeout S]\n"
          "                           queue a run of a job; --wait prints its final status\n"
          "  health                   exit 0 if this host's daemon is alive\n"
          "  version                  print the version\n", out);
}

/* ------------------------------------------------------------ heartbeat */

static char *heartbeat_path(const struct nr_config *cfg)
{
    return nr_asprintf("%s/heartbeat", cfg->worker.spool_dir);
}

static void heartbeat(const char *path)
{
    static time_t last;
    time_t now = time(NULL);

    if (path == NULL || now == last)
        return;
    last = now;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld %ld\n", (long)getpid(), (long)now);
        fclose(f);
    }
}

static int cmd_health(const struct nr_config *cfg)
{
    char *path = heartbeat_path(cfg);
    struct stat st;
    int rc = 1;

    if (stat(path, &st) == 0 && time(NULL) - st.st_mtime <= 60)
        rc = 0;
    else
        fprintf(stderr, "netraven-worker: no fresh heartbeat at %s\n", path);
    free(path);
    return rc;
}

/* --------------------------------------------------------------- intake */

struct daemon {
    const struct nr_config *cfg;
    struct nr_runner       *runner;
    struct nr_queue        *q;
    char                   *consumer;
    struct nr_run_done     *unacked;    /* completions waiting for Redis */
    size_t                  n_unacked;
    char                  **inflight;   /* entry ids handed to the runner */
    size_t                  n_inflight;
    uint64_t                next_touch; /* mono ns of the next touch of inflight */
    uint64_t                next_claim; /* mono ns of the next claim */
    bool                    redis_down;
};

static void inflight_add(struct daemon *d, const char *id)
{
    d->inflight = nr_realloc(d->inflight, (d->n_inflight + 1) * sizeof(*d->inflight));
    d->inflight[d->n_inflight++] = nr_strdup(id);
}

static void inflight_del(struct daemon *d, const char *id)
{
    for (size_t i = 0; i < d->n_inflight; i++)
        if (strcmp(d->inflight[i], id) == 0) {
            free(d->inflight[i]);
            d->inflight[i] = d->inflight[--d->n_inflight];
            return;
        }
}

static void redis_down(struct daemon *d, double delay)
{
    if (!d->redis_down)
        NR_LOG(NR_EV_SYS_REDIS_UNAVAILABLE, 0, 0, NR_S("error", d->q->errstr),
               NR_D("delay_s", delay));
    d->redis_down = true;
}

/* Sleep up to s seconds, returning early when a stop is requested. */
static void nap(double s)
{
    for (double t = 0; t < s && !g_stop; t += 0.1)
        nr_sleep_s(0.1);
}

static bool redis_ensure(struct daemon *d, double *backoff)
{
    if (d->q->err == 0)
        return true;
    if (nr_queue_reset(d->q) == 0) {
        char *masked = nr_config_mask_url(d->cfg->scheduler.redis_url);
        NR_LOG(NR_EV_SYS_REDIS_CONNECTED, 0, 0, NR_S("url", masked));
        NR_LOG(NR_EV_SYS_QUEUE_POLLING, 0, 0, NR_S("stream", d->cfg->queue.stream),
               NR_S("consumer", d->consumer), NR_S("group", d->cfg->queue.group));
        free(masked);
        d->redis_down = false;
        *backoff = 0.5;
        return true;
    }
    redis_down(d, *backoff);
    nap(*backoff);
    *backoff = *backoff * 2 < 10 ? *backoff * 2 : 10;   /* 0.5 s doubling to 10 s */
    return false;
}

/* Acknowledge (or dead-letter) every completion we hold.  A completion
 * whose run could not be recorded is left pending in the stream: the entry
 * is delivered again (restart, or a claim by a live worker). */
static void settle_completions(struct daemon *d)
{
    struct nr_run_done batch[READ_BATCH];
    size_t n;

    while ((n = nr_runner_collect(d->runner, NR_RUN_SOURCE_STREAM, batch, READ_BATCH)) > 0) {
        for (size_t i = 0; i < n; i++)
            inflight_del(d, batch[i].entry_id);
        d->unacked = nr_realloc(d->unacked, (d->n_unacked + n) * sizeof(*d->unacked));
        memcpy(d->unacked + d->n_unacked, batch, n * sizeof(*batch));
        d->n_unacked += n;
    }

    size_t kept = 0;
    for (size_t i = 0; i < d->n_unacked; i++) {
        struct nr_run_done *c = &d->unacked[i];
        int rc = 0;

        if (d->q->err) {
            d->unacked[kept++] = *c;
            continue;
        }
        switch (c->outcome) {
        case NR_RUN_RECORDED:
            rc = nr_queue_ack(d->q, c->entry_id, c->status);
            if (rc == 0)
                NR_LOG(NR_EV_SYS_QUEUE_ACKED, 0, 0, NR_S("entry_id", c->entry_id),
                       NR_I("job_id", c->job_id), NR_S("status", c->status));
            break;
        case NR_RUN_REJECTED: {
            struct nr_queue_msg m = { .entry_id = c->entry_id };
            char *payload = nr_asprintf("{\"job_id\": %lld}", c->job_id);
            m.payload = payload;
            m.payload_len = strlen(payload);
            rc = nr_queue_dead(d->q, &m, c->reason);
            if (rc == 0)
                NR_LOG(NR_EV_SYS_QUEUE_DEAD, 0, 0, NR_S("entry_id", c->entry_id),
                       NR_S("reason", c->reason), NR_S("dead_stream", d->cfg->queue.dead_stream));
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
            d->unacked[kept++] = *c;
            continue;
        }
        nr_run_done_clear(c);
    }
    d->n_unacked = kept;
}

static void handle_entry(struct daemon *d, struct nr_queue_msg *m)
{
    struct nr_run_request req = { 0 };
    char *reason = NULL;

    /* Delivered again and again, never acknowledged: every worker that took
     * it died, gave it back or could not record its run (a PostgreSQL
     * outage is waited out inside the run, so it does not count here).
     * Running it once more would likely take the next worker down. */
    if (m->deliveries > d->cfg->worker.max_deliveries)
        reason = nr_asprintf("delivered %lld times without being acknowledged "
                             "(worker.max_deliveries is %d): each worker that took it "
                             "died, gave it back or could not record its run",
                             m->deliveries, d->cfg->worker.max_deliveries);
    else if (m->payload == NULL)
        reason = nr_strdup("entry has no 'payload' field");
    else if (nr_payload_parse(m->payload, m->payload_len, &req.payload, &reason) != 0 &&
             reason == NULL)
        reason = nr_strdup("payload rejected");
    if (reason) {
        if (nr_queue_dead(d->q, m, reason) == 0)
            NR_LOG(NR_EV_SYS_QUEUE_DEAD, 0, 0, NR_S("entry_id", m->entry_id),
                   NR_S("reason", reason), NR_S("dead_stream", d->cfg->queue.dead_stream));
        free(reason);
        return;
    }
    NR_LOG(NR_EV_SYS_QUEUE_ENTRY, 0, 0, NR_S("entry_id", m->entry_id),
           NR_I("job_id", req.payload.job_id));
    inflight_add(d, m->entry_id);
    req.entry_id = m->entry_id;
    m->entry_id = NULL;
    if (nr_runner_submit(d->runner, &req) != 0) {
        inflight_del(d, req.entry_id);
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
static void keep_fresh(struct daemon *d)
{
    uint64_t now = nr_mono_ns();

    if (now < d->next_touch || d->n_inflight == 0)
        return;
    if (nr_queue_touch(d->q, d->inflight, d->n_inflight) < 0)
        return;         /* err is set: the loop reconnects, then touches */
    d->next_touch = now + (uint64_t)d->cfg->worker.claim_idle_seconds * 1000000000ull / 3;
}

/* Every third of worker.claim_idle_seconds, when a slot is free: take over
 * entries that a dead worker (or a run of ours that could not be recorded)
 * left pending for claim_idle_seconds.  keep_fresh() runs first in every
 * turn of the loop, so none of our own runs looks idle to this claim. */
static void claim_idle(struct daemon *d, struct nr_queue_msg *msgs, size_t free_slots)
{
    uint64_t now = nr_mono_ns();
    size_t n = 0;

    if (now < d->next_claim)
        return;
    d->next_claim = now + (uint64_t)d->cfg->worker.claim_idle_seconds * 1000000000ull / 3;
    if (nr_queue_claim(d->q, (long)d->cfg->worker.claim_idle_seconds * 1000, msgs,
                       free_slots, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        NR_LOG(NR_EV_SYS_QUEUE_CLAIMED, 0, 0, NR_S("entry_id", msgs[i].entry_id),
               NR_I("idle_s", d->cfg->worker.claim_idle_seconds));
        handle_entry(d, &msgs[i]);
        nr_queue_msg_clear(&msgs[i]);
    }
}

static void intake_loop(struct daemon *d)
{
    struct nr_queue_msg msgs[READ_BATCH];
    char *hb = heartbeat_path(d->cfg);
    double backoff = 0.5;

    if (nr_mkdir_p(d->cfg->worker.spool_dir, 0750) < 0) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "cannot create worker.spool_dir"),
               NR_S("error", strerror(errno)), NR_S("path", d->cfg->worker.spool_dir));
        free(hb);
        hb = NULL;
    }
    if (d->q->err == 0) {
        NR_LOG(NR_EV_SYS_QUEUE_POLLING, 0, 0, NR_S("stream", d->cfg->queue.stream),
               NR_S("consumer", d->consumer), NR_S("group", d->cfg->queue.group));
    }

    while (!g_stop) {
        heartbeat(hb);
        if (!redis_ensure(d, &backoff))
            continue;
        settle_completions(d);
        keep_fresh(d);
        if (d->q->err)
            continue;

        size_t free_slots = nr_runner_free_slots(d->runner);
        if (free_slots == 0) {
            nr_runner_wait(d->runner, NR_RUN_SOURCE_STREAM, 0.5);
            continue;
        }
        if (free_slots > READ_BATCH)
            free_slots = READ_BATCH;
        claim_idle(d, msgs, free_slots);
        if (d->q->err)
            continue;
        free_slots = nr_runner_free_slots(d->runner);
        if (free_slots == 0)
            continue;
        if (free_slots > READ_BATCH)
            free_slots = READ_BATCH;
        /* block shortly when runs are in flight, so completions are
         * acknowledged promptly */
        int block = nr_runner_in_flight(d->runner) ? 50 : d->cfg->queue.block_ms;
        size_t n = 0;
        if (nr_queue_read(d->q, msgs, free_slots, block, &n) < 0) {
            redis_down(d, backoff);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            handle_entry(d, &msgs[i]);
            nr_queue_msg_clear(&msgs[i]);
        }
    }

    /* stop taking jobs (both intakes); let runs in flight finish within the
     * grace time */
    nr_rq_intake_request_stop();
    NR_LOG(NR_EV_SYS_SHUTDOWN, 0, 0, NR_S("reason", g_stop == SIGINT ? "SIGINT" : "SIGTERM"),
           NR_I("in_flight", nr_runner_in_flight(d->runner)));
    uint64_t until = nr_mono_ns() + (uint64_t)d->cfg->worker.shutdown_grace_seconds * 1000000000ull;
    while (nr_runner_in_flight(d->runner) > 0 && nr_mono_ns() < until) {
        nr_runner_wait(d->runner, NR_RUN_SOURCE_STREAM, 0.2);
        if (d->q->err)
            nr_queue_reset(d->q);
        settle_completions(d);
    }
    if (d->q->err)
        nr_queue_reset(d->q);
    settle_completions(d);
    free(hb);
}

/* The last line: DB-routed records against the rows written, what an
 * operator (and the outage test) checks after PostgreSQL was away. */
static void log_stopped(void)
{
    struct nr_log_stats st;

    nr_log_flush(30);
    nr_log_get_stats(&st);
    NR_LOG(NR_EV_SYS_STOPPED, 0, 0, NR_I("db_routed", st.db_routed),
           NR_I("db_written", st.db_written), NR_I("db_dropped", st.db_dropped));
    nr_log_flush(5);
}

static int cmd_run(const struct nr_config *cfg)
{
    struct daemon d = { .cfg = cfg };
    char host[256] = "worker";

    gethostname(host, sizeof(host) - 1);
    d.consumer = cfg->worker.consumer_name && *cfg->worker.consumer_name
                     ? nr_strdup(cfg->worker.consumer_name)
                     : nr_asprintf("%s:%ld", host, (long)getpid());

    struct nr_pool *pool = nr_pool_new((size_t)cfg->worker.thread_pool_size,
                                       (size_t)cfg->worker.task_queue_size);
    if (pool == NULL) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the dispatcher pool"),
               NR_S("error", "cannot create threads"));
        free(d.consumer);
        return 1;
    }
    d.runner = nr_runner_new(cfg, pool);
    if (d.runner == NULL) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the runner"),
               NR_S("error", "cannot create threads"));
        nr_pool_free(pool);
        free(d.consumer);
        return 1;
    }
    NR_LOG(NR_EV_SYS_POOL_STARTED, 0, 0, NR_I("threads", nr_pool_threads(pool)),
           NR_I("max_jobs", cfg->worker.max_concurrent_jobs));

    /* Prometheus metrics: optional, so a port that cannot be had is an
     * error in the log, not a worker that stops taking jobs */
    struct nr_metrics_server *metrics = NULL;
    if (cfg->metrics.listen && *cfg->metrics.listen) {
        char err[256];
        metrics = nr_metrics_server_start(cfg, err, sizeof(err));
        if (metrics)
            NR_LOG(NR_EV_SYS_METRICS_LISTENING, 0, 0, NR_S("listen", cfg->metrics.listen));
        else
            NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the metrics server"),
                   NR_S("error", err));
    }

    /* python-rq queues: a thread of their own, sharing the runner */
    bool rq_started = nr_rq_intake_start(cfg, d.runner, d.consumer) == 0;
    if (!rq_started)
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the RQ intake"),
               NR_S("error", "cannot create the thread"));

    d.q = nr_queue_connect(cfg, d.consumer);
    if (d.q->err == 0) {
        char *masked = nr_config_mask_url(cfg->scheduler.redis_url);
        NR_LOG(NR_EV_SYS_REDIS_CONNECTED, 0, 0, NR_S("url", masked));
        free(masked);
    }
    intake_loop(&d);
    if (rq_started)
        nr_rq_intake_stop();      /* hands back RQ runs past the grace time */

    /* Runs still in flight after the grace time are handed back: their
     * stream entries stay pending (a live worker claims them after
     * worker.claim_idle_seconds), their RQ jobs are back in their queue.
     * Exit without waiting for them; only the log sinks are flushed. */
    size_t left = nr_runner_in_flight(d.runner);
    if (left > 0) {
        NR_LOG(NR_EV_SYS_HANDED_BACK, 0, 0, NR_I("runs", left),
               NR_I("grace_s", cfg->worker.shutdown_grace_seconds));
        log_stopped();
        fflush(stdout);
        _exit(0);
    }

    nr_runner_free(d.runner);
    d.runner = NULL;
    nr_pool_free(pool);
    for (size_t i = 0; i < d.n_unacked; i++)
        nr_run_done_clear(&d.unacked[i]);
    free(d.unacked);
    for (size_t i = 0; i < d.n_inflight; i++)
        free(d.inflight[i]);
    free(d.inflight);
    nr_queue_free(d.q);
    free(d.consumer);
    nr_metrics_server_stop(metrics);
    log_stopped();
    return 0;
}

/* ---------------------------------------------------- one-shot commands */

/*
 * migrate [--wait SECONDS]: PostgreSQL may still be starting when this runs
 * (docker-compose starts both at once, and postgres:15 answers on TCP only
 * after its first initialisation), so a failed connection is retried with a
 * doubling backoff, 0.5 s up to 5 s, until SECONDS have passed; 0 tries
 * once.  Only connecting is retried: a schema error fails at once.
 */
#define MIGRATE_WAIT_DEFAULT 60.0

static int cmd_migrate(const struct nr_config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "wait", required_argument, NULL, 'w' },
        { NULL, 0, NULL, 0 },
    };
    double wait = MIGRATE_WAIT_DEFAULT, delay = 0.5;
    char *end;
    int c, rc = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'w') {
            usage(stderr);
            return 2;
        }
        errno = 0;
        wait = strtod(optarg, &end);
        if (errno || end == optarg || *end != '\0' || !(wait >= 0 && wait <= 86400)) {
            fprintf(stderr, "netraven-worker: migrate: --wait %s is not a number of seconds "
                            "(0 to 86400)\n", optarg);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct nr_store *s = nr_store_connect(cfg->database.url);
    for (int tries = 1; s->err; tries++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double spent = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (spent >= wait) {
            if (wait > 0)
                fprintf(stderr, "netraven-worker: migrate: PostgreSQL did not accept a connection "
                                "within %.0f s (--wait), %d attempts; last error: %s\n",
                        wait, tries, s->errstr);
            else
                fprintf(stderr, "netraven-worker: migrate: cannot connect to PostgreSQL: %s\n",
                        s->errstr);
            nr_store_free(s);
            return 1;
        }
        if (tries == 1)
            fprintf(stderr, "netraven-worker: migrate: PostgreSQL not ready (%s); retrying for "
                            "up to %.0f s\n", s->errstr, wait);
        double nap = delay < wait - spent ? delay : wait - spent;  /* the last try at the deadline */
        nanosleep(&(struct timespec){ .tv_sec = (time_t)nap,
                                      .tv_nsec = (long)((nap - (time_t)nap) * 1e9) }, NULL);
        delay = delay * 2 > 5 ? 5 : delay * 2;
        nr_store_free(s);
        s = nr_store_connect(cfg->database.url);
    }
    if (nr_store_migrate(s) < 0)
        fprintf(stderr, "netraven-worker: migrate: %s\n", s->errstr);
    else {
        printf("schema is up to date\n");
        rc = 0;
    }
    nr_store_free(s);
    return rc;
}

static int parse_id(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v <= 0)
        return NR_EINVAL;
    *out = v;
    return 0;
}

static int cmd_enqueue(const struct nr_config *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "wait", no_argument, NULL, 'w' },
        { "timeout", required_argument, NULL, 't' },
        { "device", required_argument, NULL, 'd' },
        { "job-type", required_argument, NULL, 'j' },
        { NULL, 0, NULL, 0 },
    };
    bool wait = false;
    double timeout = 600;
    long long job_id, dev;
    json_t *payload = json_object(), *devices = NULL;
    int c, rc = 1;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'w': wait = true; break;
        case 't': timeout = atof(optarg); break;
        case 'd':
            if (parse_id(optarg, &dev) != 0) {
                fprintf(stderr, "netraven-worker: enqueue: --device %s is not a device id\n", optarg);
                goto out;
            }
            if (devices == NULL)
                devices = json_array();
            json_array_append_new(devices, json_integer(dev));
            break;
        case 'j': json_object_set_new(payload, "job_type", json_string(optarg)); break;
        default: usage(stderr); goto out;
        }
    }
    if (optind != argc - 1 || parse_id(argv[optind], &job_id) != 0) {
        fprintf(stderr, "netraven-worker: enqueue: expected one positive JOB_ID\n");
        goto out;
    }
    json_object_set_new(payload, "job_id", json_integer(job_id));
    if (devices)
        json_object_set(payload, "device_ids", devices);

    /* refuse a job that does not exist, when the database can tell */
    struct nr_store *s = nr_store_connect(cfg->database.url);
    struct nr_job job;
    int found = s->err ? NR_EIO : nr_store_job_get(s, job_id, &job);
    if (found == 0)
        nr_job_clear(&job);
    else if (found == NR_NOTFOUND)
        fprintf(stderr, "netraven-worker: enqueue: job %lld does not exist\n", job_id);
    else
        fprintf(stderr, "netraven-worker: enqueue: warning: cannot check job %lld in "
                        "PostgreSQL (%s); queueing it anyway\n", job_id, s->errstr);
    nr_store_free(s);
    if (found == NR_NOTFOUND)
        goto out;

    struct nr_queue *q = nr_queue_connect(cfg, "enqueue");
    if (q->err) {
        fprintf(stderr, "netraven-worker: enqueue: Redis: %s\n", q->errstr);
        nr_queue_free(q);
        goto out;
    }
    char *text = json_dumps(payload, JSON_COMPACT), *id = NULL, *status = NULL;
    if (nr_queue_enqueue(q, text, &id) < 0) {
        fprintf(stderr, "netraven-worker: enqueue: %s\n", q->errstr);
    } else if (!wait) {
        printf("%s\n", id);
        rc = 0;
    } else {
        printf("queued %s, waiting for its run\n", id);
        fflush(stdout);
        int w = nr_queue_wait_done(q, id, timeout, &status);
        if (w == 0) {
            printf("job %lld: %s\n", job_id, status);
            rc = 0;
        } else if (w == NR_ETIMEOUT) {
            fprintf(stderr, "netraven-worker: enqueue: no result within %.0f s\n", timeout);
        } else {
            fprintf(stderr, "netraven-worker: enqueue: %s\n", q->errstr);
        }
    }
    free(text);
    free(id);
    free(status);
    nr_queue_free(q);
out:
    json_decref(devices);
    json_decref(payload);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--config-dir") == 0 && i + 1 < argc) {
            config_dir = argv[++i];
        } else if (strncmp(argv[i], "--config-dir=", 13) == 0) {
            config_dir = argv[i] + 13;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "netraven-worker: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    const char *cmd = i < argc ? argv[i] : "run";
    if (strcmp(cmd, "version") == 0) {
        printf("netraven-worker %s\n", NR_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }

    struct nr_config cfg;
    char *err = NULL;
    if (nr_config_load(&cfg, config_dir, NULL, &err) < 0) {
        fprintf(stderr, "netraven-worker: configuration error: %s\n", err ? err : "unknown");
        free(err);
        return 2;
    }

    int rc;
    if (strcmp(cmd, "check-config") == 0) {
        nr_config_print(&cfg, stdout);
        rc = 0;
    } else if (strcmp(cmd, "migrate") == 0) {
        rc = cmd_migrate(&cfg, argc - i, argv + i);
    } else if (strcmp(cmd, "enqueue") == 0) {
        rc = cmd_enqueue(&cfg, argc - i, argv + i);
    } else if (strcmp(cmd, "health") == 0) {
        rc = cmd_health(&cfg);
    } else if (strcmp(cmd, "run") == 0) {
        install_signals();
        if (nr_log_init(&cfg) < 0) {
            fprintf(stderr, "netraven-worker: cannot start the log threads\n");
            nr_config_clear(&cfg);
            return 1;
        }
        NR_LOG(NR_EV_SYS_STARTING, 0, 0, NR_S("version", NR_VERSION), NR_S("env", cfg.env),
               NR_S("config_dir", cfg.config_dir));
        char *files = nr_asprintf("%s/default.yaml, %s/%s.yaml", cfg.config_dir,
                                  cfg.config_dir, cfg.env);
        NR_LOG(NR_EV_SYS_CONFIG_LOADED, 0, 0, NR_S("files", files));
        free(files);
        rc = cmd_run(&cfg);
        nr_log_shutdown();
    } else {
        fprintf(stderr, "netraven-worker: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    nr_config_clear(&cfg);
    return rc;
}
