/*
 * test_metrics.c - /metrics of the real binary, scraped during and after
 * job runs: the counters move as the runs say (final statuses, device
 * outcomes, log rows), the queue gauges show what waits in the stream and
 * in an RQ queue, PostgreSQL and Redis are up, and the text parses with
 * the Prometheus client's own parser (Debian's python3-prometheus-client).
 *
 * One run at a time (worker.max_concurrent_jobs 1): a reachability job on
 * a device in the test's black-hole namespace holds the slot for
 * worker.connection_timeout while a second job, on 127.0.0.1, waits
 * undelivered in the stream; an RQ job waits in `high` under `rq suspend`.
 * And a scrape on its own (the server in process, no worker) reads the
 * stream without making its consumer group.
 */
#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/config.h"
#include "netraven/metrics.h"

static PGconn *db;
static struct nrt_proc *running;
static struct nrt_proc *devsim;     /* likewise */

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
}

static void teardown(void)
{
    if (running)
        nrt_proc_stop(running, 5);
    running = NULL;
    if (devsim)
        nrt_proc_stop(devsim, 5);
    devsim = NULL;
    nrt_blackhole_down();
    PQfinish(db);
}

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET /metrics; the body (malloc'd), or NULL when nothing listens yet. */
static char *scrape(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    size_t n = 0, cap = 1 << 17;
    char *buf;
    ssize_t r;

    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    ck_assert_int_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    buf = calloc(1, cap);
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    ck_assert_msg(strstr(buf, " 200 ") && strstr(buf, "text/plain; version=0.0.4"),
                  "answer: %.300s", buf);
    char *body = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* The value of the sample `series` (exact name and labels); NAN if absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

#define M(s) "netraven_worker_" s

/* Feed text to prometheus_client's parser; it must take every family.
 * Returns what the script printed: one "name type samples" line a family. */
static char *parse_with_prometheus_client(const char *text)
{
    char *dir = nrt_tmpdir("prom"), *in = NULL, *py = NULL, *cmd = NULL;

    if (asprintf(&in, "%s/metrics.txt", dir) < 0 || asprintf(&py, "%s/parse.py", dir) < 0 ||
        asprintf(&cmd, "/usr/bin/python3 %s %s 2>&1", py, in) < 0)
        abort();
    nrt_write_file(in, text);
    nrt_write_file(py,
        "import sys\n"
        "from prometheus_client.parser import text_string_to_metric_families\n"
        "for f in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
        "    print(f.name, f.type, len(f.samples))\n"
        "    for s in f.samples:\n"
        "        assert s.name.startswith('netraven_worker_'), s\n"
        "        float(s.value)\n");
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char *out = calloc(1, 65536);
    size_t n = fread(out, 1, 65535, f);
    out[n] = '\0';
    int st = pclose(f);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the parser refused the text: %s", out);
    free(in);
    free(py);
    free(cmd);
    free(dir);
    return out;
}

static long long add_device(const char *name, const char *ip, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO devices (hostname, ip_address, device_type, port) "
        "VALUES ('%s', '%s', 'cisco_ios', 22) RETURNING id", name, ip);
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", id, tag));
    return id;
}

static long long add_job(const char *name, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
        "VALUES ('%s', 'reachability', 'PENDING', true, 'onetime') RETURNING id", name);
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", id, tag));
    return id;
}

static void xadd_job(redisContext *rc, long long job)
{
    char payload[64];

    snprintf(payload, sizeof(payload), "{\"job_id\": %lld}", job);
    redisReply *r = redisCommand(rc, "XADD netraven:jobs * payload %s", payload);
    ck_assert_msg(r && r->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(r);
}

START_TEST(metrics_follow_the_runs)
{
    nrt_blackhole_up(0);
    long long t1 = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('dark', 'device') RETURNING id");
    long long t2 = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('home', 'device') RETURNING id");
    add_device("dark-1", nrt_blackhole_ip(), t1);
    long long home = add_device("home-1", "127.0.0.1", t2);
    long long slow = add_job("slow-dark", t1);
    long long quick = add_job("quick-home", t2);

    /* an RQ job waiting in `high` since 30 s ago, held by `rq suspend` */
    redisContext *rc = nrt_redis();
    char ts[64];
    time_t then = time(NULL) - 30;
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000000Z", gmtime(&then));
    freeReplyObject(redisCommand(rc, "SET rq:suspended 1"));
    freeReplyObject(redisCommand(rc, "HSET rq:job:waiting-1 enqueued_at %s status queued", ts));
    freeReplyObject(redisCommand(rc, "RPUSH rq:queue:high waiting-1"));

    int port = free_port();
    char listen[80], *spool = NULL, *sdir = nrt_tmpdir("spool");
    snprintf(listen, sizeof(listen), "NETRAVEN_METRICS__LISTEN=127.0.0.1:%d", port);
    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s", sdir) < 0)
        abort();
    char *extra[] = { listen, spool, "NETRAVEN_WORKER__CONNECTION_TIMEOUT=3",
                      "NETRAVEN_WORKER__MAX_CONCURRENT_JOBS=1", NULL };
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    struct nrt_proc w;
    nrt_proc_start(&w, argv, extra);
    running = &w;

    /* before any job */
    char *t = NULL;
    for (int i = 0; i < 150 && (t = scrape(port)) == NULL; i++)
        usleep(100000);
    ck_assert_msg(t != NULL, "nothing answered on 127.0.0.1:%d", port);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_SUCCESS\"}")) == 0);
    ck_assert(sample(t, M("postgres_up")) == 1);
    ck_assert(sample(t, M("redis_up")) == 1);
    ck_assert(sample(t, M("queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}")) == 0);
    ck_assert(sample(t, M("queue_depth{kind=\"rq\",queue=\"high\"}")) == 1);
    double age = sample(t, M("queue_oldest_age_seconds{kind=\"rq\",queue=\"high\"}"));
    ck_assert_msg(age >= 29 && age < 120, "rq age %f", age);
    ck_assert(sample(t, M("queue_depth{kind=\"rq\",queue=\"default\"}")) == 0);
    double db_rows0 = sample(t, M("log_rows_written_total{sink=\"db\"}"));
    ck_assert(db_rows0 >= 0);
    free(t);

    /* during: the slow run holds the only slot, the quick one waits */
    xadd_job(rc, slow);
    usleep(300000);
    xadd_job(rc, quick);
    t = scrape(port);
    ck_assert_ptr_nonnull(t);
    char *families = parse_with_prometheus_client(t);
    ck_assert_msg(strstr(families, "netraven_worker_jobs counter 9\n"), "%s", families);
    ck_assert_msg(strstr(families, "netraven_worker_backup_duration_seconds histogram 30\n"),
                  "%s", families);
    ck_assert_msg(strstr(families, "netraven_worker_queue_depth gauge 4\n"), "%s", families);
    ck_assert_msg(strstr(families, "netraven_worker_postgres_up gauge 1\n"), "%s", families);
    int nfam = 0;
    for (const char *p = families; (p = strchr(p, '\n')) != NULL; p++)
        nfam++;
    ck_assert_int_eq(nfam, 13);
    free(families);
    ck_assert_msg(sample(t, M("queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}")) == 2,
                  "during: %s", t);
    age = sample(t, M("queue_oldest_age_seconds{kind=\"stream\",queue=\"netraven:jobs\"}"));
    ck_assert_msg(age >= 0.2 && age < 60, "stream age %f", age);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_SUCCESS\"}")) == 0);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_FAILURE\"}")) == 0);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"success\",class=\"none\"}")) == 0);
    free(t);

    /* after: both recorded */
    ck_assert(nrt_wait_sql(db, "COMPLETED_FAILURE", 60, "SELECT status FROM jobs WHERE id = %lld", slow));
    ck_assert(nrt_wait_sql(db, "COMPLETED_SUCCESS", 60, "SELECT status FROM jobs WHERE id = %lld", quick));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE device_id = %lld "
                                     "AND status = 'success'", home), 1);
    /* the stream entries are acknowledged once the runs are recorded */
    double depth = -1;
    for (int i = 0; i < 100; i++) {
        t = scrape(port);
        depth = sample(t, M("queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}"));
        if (depth == 0)
            break;
        free(t);
        t = NULL;
        usleep(100000);
    }
    ck_assert_msg(t != NULL && depth == 0, "stream depth stays %f", depth);
    ck_assert(sample(t, M("queue_oldest_age_seconds{kind=\"stream\",queue=\"netraven:jobs\"}")) == 0);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_SUCCESS\"}")) == 1);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_FAILURE\"}")) == 1);
    ck_assert(sample(t, M("jobs_total{status=\"COMPLETED_PARTIAL_FAILURE\"}")) == 0);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"success\",class=\"none\"}")) == 1);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"failure\",class=\"other\"}")) == 1);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"failure\",class=\"timeout\"}")) == 0);
    ck_assert(sample(t, M("sessions_in_flight")) == 0);     /* reachability opens none */
    ck_assert(sample(t, M("backup_duration_seconds_count{outcome=\"success\"}")) == 0);
    ck_assert(sample(t, M("breakers_open")) == 0);
    ck_assert(sample(t, M("log_rows_dropped_total{sink=\"db\"}")) == 0);
    ck_assert(sample(t, M("queue_depth{kind=\"rq\",queue=\"high\"}")) == 1);   /* still suspended */
    ck_assert(sample(t, M("postgres_up")) == 1 && sample(t, M("redis_up")) == 1);
    free(t);

    /* the runs' job log rows reach `logs`, and the counter says so */
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message LIKE 'Task completed for device%%'", quick));
    long long rows = nrt_sql_int(db, "SELECT count(*) FROM logs");
    double written = 0;
    for (int i = 0; i < 50; i++) {
        t = scrape(port);
        written = sample(t, M("log_rows_written_total{sink=\"db\"}"));
        free(t);
        if (written >= (double)rows)
            break;
        usleep(100000);
    }
    ck_assert_msg(written >= (double)rows && written > db_rows0,
                  "db rows written %f, logs holds %lld", written, rows);

    nrt_proc_stop(&w, 30);
    running = NULL;
    ck_assert_msg(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0, "exit status %d", w.status);
    char *so = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(so, "Serving Prometheus metrics on 127.0.0.1:"), "stdout: %s", so);
    free(so);
    ck_assert_ptr_null(scrape(port));       /* stopped with the worker */
    nrt_proc_clear(&w);
    redisFree(rc);
    free(spool);
    free(sdir);
}
END_TEST

/* devsim serving two devices on 127.<a>.<b>.1 and .2 (the second hangs in
 * the middle of its configuration); the third address has no listener.
 * Returns the port, or 0 when devsim could not have it. */
static int devsim_up(struct nrt_proc *ds, unsigned net, int port, const char *dir)
{
    char *inv = NULL, *state = NULL;

    if (asprintf(&inv, "%s/inventory.yaml", dir) < 0 || asprintf(&state, "%s/devsim", dir) < 0)
        abort();
    FILE *f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  port: %d\n  accounts: [{username: admin, password: \"mx-Pw.1\"}]\n"
               "  enable_secret: \"mx-Pw.1\"\n  config_kb: 4\n  latency_ms: 2\n"
               "devices:\n"
               "  - {name: mx-good, type: cisco_ios, listen: 127.%u.%u.1}\n"
               "  - {name: mx-hang, type: cisco_ios, listen: 127.%u.%u.2, faults: [hang_mid_output]}\n",
            port, 70 + net / 200, net % 200, 70 + net / 200, net % 200);
    fclose(f);
    bool ready = nrt_devsim_start(ds, inv, state);
    free(inv);
    free(state);
    return ready ? port : 0;
}

/* config_backup: sessions in flight while one hangs, the duration
 * histogram, failure classes, and breakers (threshold 1) that open. */
START_TEST(backup_sessions_histogram_and_breakers)
{
    char *dir = nrt_tmpdir("mbackup");
    struct nrt_proc ds;
    unsigned seed = (unsigned)getpid() * 7919u, net = 0;
    int dport = 0;

    for (int attempt = 0; attempt < 8 && dport == 0; attempt++, seed += 104729u) {
        net = seed % 4000;
        dport = devsim_up(&ds, net, 10000 + (int)(seed % 22000), dir);
    }
    ck_assert_msg(dport > 0, "devsim did not start");
    devsim = &ds;

    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('mx', 'device') RETURNING id");
    const char *names[3] = { "mx-good", "mx-hang", "mx-none" };
    for (int i = 0; i < 3; i++) {
        long long id = nrt_sql_int(db,
            "INSERT INTO devices (hostname, ip_address, device_type, port) VALUES "
            "('%s', '127.%u.%u.%d', 'cisco_ios', %d) RETURNING id",
            names[i], 70 + net / 200, net % 200, i + 1, dport);
        PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", id, tag));
    }
    long long cred = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority, "
                                     "description, is_system) VALUES ('admin', 'mx-Pw.1', 10, "
                                     "'plain', false) RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", cred, tag));
    long long job = nrt_sql_int(db,
        "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
        "VALUES ('mx-backup', 'config_backup', 'PENDING', true, 'onetime') RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));

    int port = free_port();
    char listen[80], *spool = NULL;
    snprintf(listen, sizeof(listen), "NETRAVEN_METRICS__LISTEN=127.0.0.1:%d", port);
    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s/spool", dir) < 0)
        abort();
    char *extra[] = { listen, spool, "NETRAVEN_WORKER__CONNECTION_TIMEOUT=2",
                      "NETRAVEN_WORKER__COMMAND_TIMEOUT=3", "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
                      "NETRAVEN_WORKER__CIRCUIT_BREAKER__FAILURE_THRESHOLD=1", NULL };
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    struct nrt_proc w;
    nrt_proc_start(&w, argv, extra);
    running = &w;
    char *t = NULL;
    for (int i = 0; i < 150 && (t = scrape(port)) == NULL; i++)
        usleep(100000);
    ck_assert_ptr_nonnull(t);
    ck_assert(sample(t, M("sessions_in_flight")) == 0);
    free(t);

    redisContext *rc = nrt_redis();
    xadd_job(rc, job);
    /* during: the hanging device keeps its session open for the command timeout */
    double inflight = 0;
    for (int i = 0; i < 100 && inflight < 1; i++) {
        t = scrape(port);
        inflight = sample(t, M("sessions_in_flight"));
        free(t);
        usleep(50000);
    }
    ck_assert_msg(inflight >= 1, "no session seen in flight");
    ck_assert(nrt_wait_sql(db, "COMPLETED_PARTIAL_FAILURE", 60,
                           "SELECT status FROM jobs WHERE id = %lld", job));
    double done = 0;
    for (int i = 0; i < 50 && done < 1; i++) {
        t = scrape(port);
        done = sample(t, M("jobs_total{status=\"COMPLETED_PARTIAL_FAILURE\"}"));
        if (done < 1) {
            free(t);
            usleep(100000);
        }
    }
    ck_assert_msg(done == 1, "jobs_total did not move");
    ck_assert(sample(t, M("sessions_in_flight")) == 0);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"success\",class=\"none\"}")) == 1);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"failure\",class=\"timeout\"}")) == 1);
    ck_assert(sample(t, M("device_tasks_total{outcome=\"failure\",class=\"refused\"}")) == 1);
    ck_assert(sample(t, M("backup_duration_seconds_count{outcome=\"success\"}")) == 1);
    ck_assert(sample(t, M("backup_duration_seconds_count{outcome=\"failure\"}")) == 2);
    /* the hanging one lasted at least the command timeout */
    ck_assert(sample(t, M("backup_duration_seconds_sum{outcome=\"failure\"}")) >= 3);
    ck_assert(sample(t, M("backup_duration_seconds_bucket{outcome=\"failure\",le=\"2\"}")) == 1);
    ck_assert(sample(t, M("breakers_open")) == 2);
    free(parse_with_prometheus_client(t));
    free(t);

    nrt_proc_stop(&w, 30);
    running = NULL;
    ck_assert(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0);
    nrt_proc_clear(&w);
    nrt_proc_stop(&ds, 5);
    devsim = NULL;
    nrt_proc_clear(&ds);
    redisFree(rc);
    free(spool);
    free(dir);
}
END_TEST

/* A port already taken: an error at start, and the worker still runs jobs. */
START_TEST(port_taken_is_an_error_not_a_stop)
{
    int port = free_port();
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 4), 0);

    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('home', 'device') RETURNING id");
    add_device("home-1", "127.0.0.1", tag);
    long long job = add_job("still-runs", tag);
    char listen_env[80], *spool = NULL, *sdir = nrt_tmpdir("spool");
    snprintf(listen_env, sizeof(listen_env), "NETRAVEN_METRICS__LISTEN=127.0.0.1:%d", port);
    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s", sdir) < 0)
        abort();
    char *extra[] = { listen_env, spool, NULL };
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    struct nrt_proc w;
    nrt_proc_start(&w, argv, extra);
    running = &w;

    redisContext *rc = nrt_redis();
    xadd_job(rc, job);
    ck_assert(nrt_wait_sql(db, "COMPLETED_SUCCESS", 60, "SELECT status FROM jobs WHERE id = %lld", job));
    nrt_proc_stop(&w, 30);
    running = NULL;
    ck_assert(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0);
    char *so = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(so, "starting the metrics server: metrics.listen 127.0.0.1:"),
                  "stdout: %s", so);
    ck_assert(strstr(so, "Serving Prometheus metrics") == NULL);
    free(so);
    nrt_proc_clear(&w);
    redisFree(rc);
    close(fd);
    free(spool);
    free(sdir);
}
END_TEST

/* A scrape only reads: with no worker running, it makes neither the
 * stream nor its consumer group (the stream intake does), and counts what
 * waits in a stream that has no group yet. */
START_TEST(scrape_makes_no_group)
{
    struct nr_config cfg;
    struct nr_metrics_server *srv;
    char listen[64], err[256] = "", *t;
    int port = free_port();
    redisContext *rc = nrt_redis();
    redisReply *r;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    cfg.metrics.listen = listen;
    cfg.scheduler.redis_url = (char *)nrt_redis_url();
    cfg.database.url = (char *)nrt_db_url();
    cfg.queue.stream = "netraven:jobs";
    cfg.queue.group = "netraven-workers";
    srv = nr_metrics_server_start(&cfg, err, sizeof(err));
    ck_assert_msg(srv != NULL, "%s", err);

    t = scrape(port);
    ck_assert_ptr_nonnull(t);
    ck_assert(sample(t, M("redis_up")) == 1);
    ck_assert(sample(t, M("queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}")) == 0);
    free(t);
    r = redisCommand(rc, "EXISTS netraven:jobs");
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 0);        /* no MKSTREAM */
    freeReplyObject(r);

    xadd_job(rc, 1);
    xadd_job(rc, 2);
    t = scrape(port);
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(sample(t, M("queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}")) == 2,
                  "%s", t);
    free(t);
    r = redisCommand(rc, "XINFO GROUPS netraven:jobs");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);      /* no XGROUP CREATE */
    freeReplyObject(r);

    nr_metrics_server_stop(srv);
    redisFree(rc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("scrape");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    nrt_add_test(tc, metrics_follow_the_runs);
    nrt_add_test(tc, port_taken_is_an_error_not_a_stop);
    nrt_add_test(tc, backup_sessions_histogram_and_breakers);
    nrt_add_test(tc, scrape_makes_no_group);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
