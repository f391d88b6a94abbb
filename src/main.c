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
 * The commands are one table (commands[] below).  The daemon: the runner
 * and two intakes, each a thread of its own with the same shape (new /
 * stop / free): the stream intake (queue.h) and the python-rq intake
 * (rq.h).  The main thread only waits for signals, blocked everywhere else
 * and taken with sigwait(): SIGHUP reopens the log file; SIGTERM/SIGINT
 * stop both intakes, which let their runs in flight finish within
 * worker.shutdown_grace_seconds.
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

#include "netraven/backoff.h"
#include "netraven/config.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/pool.h"
#include "netraven/queue.h"
#include "netraven/rq.h"
#include "netraven/run.h"
#include "netraven/store.h"

#define NR_VERSION "0.1.0"

/* The signals the main thread takes with sigwait(): blocked before any
 * thread starts, so that every thread inherits the mask and none is
 * interrupted by them. */
static void block_signals(sigset_t *set)
{
    struct sigaction sa = { 0 };

    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Until SIGTERM or SIGINT, which is returned; SIGHUP reopens the log. */
static int wait_for_stop(const sigset_t *set)
{
    for (;;) {
        int sig = 0;

        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            nr_log_reopen();
            continue;
        }
        return sig;
    }
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

static int cmd_health(const struct nr_config *cfg, int argc, char **argv)
{
    char *path = heartbeat_path(cfg);
    struct stat st;
    int rc = 1;

    (void)argc;
    (void)argv;
    if (stat(path, &st) == 0 && time(NULL) - st.st_mtime <= 60)
        rc = 0;
    else
        fprintf(stderr, "netraven-worker: no fresh heartbeat at %s\n", path);
    free(path);
    return rc;
}

/* --------------------------------------------------------------- daemon */

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

/* The heartbeat file's folder; NULL (and an error said) when it cannot be
 * made: the daemon runs on, `health` then fails. */
static char *heartbeat_prepare(const struct nr_config *cfg)
{
    if (nr_mkdir_p(cfg->worker.spool_dir, 0750) < 0) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "cannot create worker.spool_dir"),
               NR_S("error", strerror(errno)), NR_S("path", cfg->worker.spool_dir));
        return NULL;
    }
    return heartbeat_path(cfg);
}

static int daemon_run(const struct nr_config *cfg, const sigset_t *signals)
{
    /* computed once: the stream's consumer and the RQ worker */
    char *name = nr_config_worker_name(cfg, NULL);

    struct nr_pool *pool = nr_pool_new((size_t)cfg->worker.thread_pool_size,
                                       (size_t)cfg->worker.task_queue_size);
    if (pool == NULL) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the dispatcher pool"),
               NR_S("error", "cannot create threads"));
        free(name);
        return 1;
    }
    struct nr_runner *runner = nr_runner_new(cfg, pool);
    if (runner == NULL) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the runner"),
               NR_S("error", "cannot create threads"));
        nr_pool_free(pool);
        free(name);
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

    /* python-rq queues, then the stream: a thread each, sharing the runner */
    struct nr_rq_intake *rq = nr_rq_intake_new(cfg, runner, name);
    if (rq == NULL)
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the RQ intake"),
               NR_S("error", "cannot create the thread"));
    char *hb = heartbeat_prepare(cfg);
    struct nr_queue_intake *stream = nr_queue_intake_new(cfg, runner, name, hb);
    free(hb);
    int rc = 0;
    if (stream == NULL) {
        NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "starting the stream intake"),
               NR_S("error", "cannot create the thread"));
        rc = 1;
    } else {
        int sig = wait_for_stop(signals);
        NR_LOG(NR_EV_SYS_SHUTDOWN, 0, 0, NR_S("reason", sig == SIGINT ? "SIGINT" : "SIGTERM"),
               NR_I("in_flight", nr_runner_in_flight(runner)));
    }

    /* stop taking jobs (both intakes at once); each lets its runs in
     * flight finish within the grace time, then hands back the rest */
    nr_rq_intake_stop(rq);
    nr_queue_intake_stop(stream);
    nr_queue_intake_free(stream);
    nr_rq_intake_free(rq);

    /* Runs still in flight after the grace time are handed back: their
     * stream entries stay pending (a live worker claims them after
     * worker.claim_idle_seconds), their RQ jobs are back in their queue.
     * Exit without waiting for them; only the log sinks are flushed. */
    size_t left = nr_runner_in_flight(runner);
    if (left > 0) {
        NR_LOG(NR_EV_SYS_HANDED_BACK, 0, 0, NR_I("runs", left),
               NR_I("grace_s", cfg->worker.shutdown_grace_seconds));
        log_stopped();
        fflush(stdout);
        _exit(rc);
    }

    nr_runner_free(runner);
    nr_pool_free(pool);
    free(name);
    nr_metrics_server_stop(metrics);
    log_stopped();
    return rc;
}

static int cmd_run(const struct nr_config *cfg, int argc, char **argv)
{
    sigset_t signals;
    int rc;

    (void)argc;
    (void)argv;
    block_signals(&signals);
    if (nr_log_init(cfg) < 0) {
        fprintf(stderr, "netraven-worker: cannot start the log threads\n");
        return 1;
    }
    NR_LOG(NR_EV_SYS_STARTING, 0, 0, NR_S("version", NR_VERSION), NR_S("env", cfg->env),
           NR_S("config_dir", cfg->config_dir));
    char *files = nr_asprintf("%s/default.yaml, %s/%s.yaml", cfg->config_dir,
                              cfg->config_dir, cfg->env);
    NR_LOG(NR_EV_SYS_CONFIG_LOADED, 0, 0, NR_S("files", files));
    free(files);
    rc = daemon_run(cfg, &signals);
    nr_log_shutdown();
    return rc;
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
    struct nr_backoff b = NR_BACKOFF_INIT(0.5, 5);
    double wait = MIGRATE_WAIT_DEFAULT;
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
        if (nr_backoff_say(&b))
            fprintf(stderr, "netraven-worker: migrate: PostgreSQL not ready (%s); retrying for "
                            "up to %.0f s\n", s->errstr, wait);
        double delay = nr_backoff_fail(&b);
        nr_backoff_sleep(NULL, delay < wait - spent ? delay : wait - spent);  /* the last try
                                                                                 at the deadline */
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

static int cmd_check_config(const struct nr_config *cfg, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    nr_config_print(cfg, stdout);
    return 0;
}

/* The commands; argv[0] is the command's name (argc may be 0 for the
 * default, run).  Those without a configuration come first in main(). */
static const struct command {
    const char *name;
    int       (*fn)(const struct nr_config *cfg, int argc, char **argv);
} commands[] = {
    { "run",          cmd_run },
    { "migrate",      cmd_migrate },
    { "check-config", cmd_check_config },
    { "enqueue",      cmd_enqueue },
    { "health",       cmd_health },
};

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    const struct command *c = NULL;
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
    for (size_t k = 0; k < NR_ARRAY_LEN(commands) && c == NULL; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            c = &commands[k];

    struct nr_config cfg;
    char *err = NULL;
    if (nr_config_load(&cfg, config_dir, NULL, &err) < 0) {
        fprintf(stderr, "netraven-worker: configuration error: %s\n", err ? err : "unknown");
        free(err);
        return 2;
    }

    int rc;
    if (c != NULL) {
        rc = c->fn(&cfg, argc - i, argv + i);
    } else {
        fprintf(stderr, "netraven-worker: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = 2;
    }
    nr_config_clear(&cfg);
    return rc;
}
