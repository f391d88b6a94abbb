/*
 * test_worker.c - the whole path, with the real binary: Redis stream ->
 * run -> dispatcher pool -> reachability probes -> PostgreSQL, the log
 * pipeline to stdout, file and `logs`, and the dead-letter stream.
 *
 * Devices live on loopback (127.N.3.x, N from nrt_lo(), listeners opened by the test) and
 * one in a network namespace the test creates, which ignores ICMP and has
 * no listener, so that nothing of it answers.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static PGconn *db;
static struct nrt_proc *running;    /* stopped by teardown if a test failed */

static int listen_on(const char *ip, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    inet_pton(AF_INET, ip, &sa.sin_addr);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s:%d failed", ip, port);
    ck_assert_int_eq(listen(fd, 64), 0);
    return fd;
}

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
    nrt_blackhole_down();
    PQfinish(db);
}

static char *spool_env(void)
{
    char *dir = nrt_tmpdir("spool"), *s = NULL;
    if (asprintf(&s, "NETRAVEN_WORKER__SPOOL_DIR=%s", dir) < 0)
        abort();
    free(dir);
    return s;
}

static void start_worker(struct nrt_proc *w, char *const extra[])
{
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    nrt_proc_start(w, argv, extra);
    running = w;
}

static void stop_worker_ok(struct nrt_proc *w)
{
    nrt_proc_stop(w, 30);
    running = NULL;
    ck_assert_msg(WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0,
                  "worker did not exit 0 on SIGTERM (status %d)", w->status);
}

/* Enqueue with the CLI and wait for the final status it prints. */
static char *enqueue_wait(long long job_id)
{
    char id[32];
    snprintf(id, sizeof(id), "%lld", job_id);
    char *argv[] = { (char *)nrt_worker_bin(), "enqueue", id, "--wait", "--timeout", "60", NULL };
    struct nrt_proc p;
    nrt_proc_start(&p, argv, NULL);
    ck_assert_msg(nrt_proc_wait(&p, 90), "enqueue --wait did not return");
    ck_assert_msg(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "enqueue failed");
    char *out = nrt_proc_stdout(&p);
    nrt_proc_clear(&p);
    return out;
}

static long long add_device(const char *name, const char *ip, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO devices (hostname, ip_address, device_type, port) "
        "VALUES ('%s', '%s', 'cisco_ios', 22) RETURNING id", name, ip);
    if (tag)
        PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", id, tag));
    return id;
}

static long long add_job(const char *name, const char *type, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
        "VALUES ('%s', '%s', 'PENDING', true, 'onetime') RETURNING id", name, type);
    if (tag)
        PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", id, tag));
    return id;
}

static char *probe_status(long long job, long long dev, const char *probe)
{
    return nrt_sql_str(db,
        "SELECT details->'probes'->'%s'->>'status' FROM job_results "
        "WHERE job_id = %lld AND device_id = %lld", probe, job, dev);
}

/* More devices than the pool's threads and queue hold: results are written
 * while devices are still being queued (the run thread does not wait for
 * the whole job to be queued before it writes), and every device has its
 * row once. */
START_TEST(results_written_while_devices_are_queued)
{
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('many', 'device') "
                                    "RETURNING id");
    char name[32], tail[16];

    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "many-%d", i);
        snprintf(tail, sizeof(tail), "5.%d", i + 1);
        add_device(name, nrt_lo(tail), tag);
    }
    long long job = add_job("many", "reachability", tag);
    char *spool = spool_env();
    char *extra[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=1",
                      "NETRAVEN_WORKER__THREAD_POOL_SIZE=2",
                      "NETRAVEN_WORKER__TASK_QUEUE_SIZE=2", spool, NULL };
    struct nrt_proc w;

    start_worker(&w, extra);
    char *out = enqueue_wait(job);
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "enqueue printed: %s", out);
    free(out);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 60);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM job_results "
                                     "WHERE job_id = %lld", job), 60);
    stop_worker_ok(&w);
    /* the first row was written before the last device was queued */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT ((SELECT min(created_at) FROM job_results "
                                     "WHERE job_id = %lld) < (SELECT max(timestamp) FROM logs "
                                     "WHERE job_id = %lld AND message LIKE 'Submitting task%%'))"
                                     "::int", job, job), 1);
    nrt_proc_clear(&w);
    free(spool);
}
END_TEST

START_TEST(reachability_mix_end_to_end)
{
    nrt_blackhole_up(0);
    int l1 = listen_on(nrt_lo("3.1"), 22);
    int l2 = listen_on(nrt_lo("3.2"), 443);
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('lab', 'device') RETURNING id");
    long long d1 = add_device("edge-22", nrt_lo("3.1"), tag);
    long long d2 = add_device("edge-443", nrt_lo("3.2"), tag);
    long long d3 = add_device("edge-icmp", nrt_lo("3.3"), tag);
    long long d4 = add_device("edge-dark", nrt_blackhole_ip(), tag);
    long long job = add_job("reach-mix", "reachability", tag);

    char *spool = spool_env();
    char *extra[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=1", spool, NULL };
    struct nrt_proc w;
    start_worker(&w, extra);

    char *out = enqueue_wait(job);
    ck_assert_msg(strstr(out, "COMPLETED_PARTIAL_FAILURE") != NULL, "enqueue printed: %s", out);
    free(out);

    char *st = nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
    ck_assert_str_eq(st, "COMPLETED_PARTIAL_FAILURE");
    free(st);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM jobs WHERE id = %lld AND started_at "
                                     "IS NOT NULL AND completed_at >= started_at", job), 1);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 4);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM job_results "
                                     "WHERE job_id = %lld AND job_type = 'reachability'", job), 4);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld "
                                     "AND status = 'success'", job), 3);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld "
                                     "AND device_id = %lld AND status = 'failure'", job, d4), 1);

    struct { long long dev; const char *probe, *want; } expect[] = {
        { d1, "tcp_22", "ok" },      { d1, "tcp_443", "refused" }, { d1, "icmp", "ok" },
        { d2, "tcp_22", "refused" }, { d2, "tcp_443", "ok" },
        { d3, "tcp_22", "refused" }, { d3, "tcp_443", "refused" }, { d3, "icmp", "ok" },
        { d4, "icmp", "timeout" },
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        char *s = probe_status(job, expect[i].dev, expect[i].probe);
        ck_assert_msg(s && strcmp(s, expect[i].want) == 0, "device %lld %s: %s, want %s",
                      expect[i].dev, expect[i].probe, s ? s : "(null)", expect[i].want);
        free(s);
    }
    ck_assert_int_eq(nrt_sql_int(db, "SELECT ((details->'probes'->'tcp_22'->>'latency_ms')::float "
                                     ">= 0)::int FROM job_results WHERE job_id = %lld AND "
                                     "device_id = %lld", job, d1), 1);

    /* job log rows reach `logs`, with job_id and device_id */
    ck_assert(nrt_wait_sql(db, "4", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'job' AND message LIKE 'Task completed for device%%'", job));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM logs WHERE job_id = %lld "
                                     "AND message LIKE 'Task completed for device%%'", job), 4);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message = 'Job ''reach-mix'' started: dispatching tasks to devices' "
                           "AND source = 'dispatcher' AND level = 'INFO'", job));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message LIKE 'Reachability check failed for "
                           "device ''edge-dark''%%'", job, d4));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message LIKE 'Worker job execution finished%%COMPLETED_PARTIAL_FAILURE' "
                           "AND meta->>'status' = 'COMPLETED_PARTIAL_FAILURE'", job));
    /* system events are stdout only */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE log_type = 'system'"), 0);

    stop_worker_ok(&w);
    char *so = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(so, "Job 'reach-mix' started: dispatching tasks to devices"), "stdout: %s", so);
    ck_assert(strstr(so, "Reachability check completed successfully for device 'edge-22'"));
    ck_assert(strstr(so, "Reachability check failed for device 'edge-dark'"));
    ck_assert(strstr(so, "Polling stream netraven:jobs"));
    free(so);
    nrt_proc_clear(&w);
    close(l1);
    close(l2);
    free(spool);
}
END_TEST

START_TEST(unknown_job_type_then_next_job)
{
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('x', 'device') RETURNING id");
    long long d1 = add_device("r1", nrt_lo("4.1"), tag);
    add_device("r2", nrt_lo("4.2"), tag);
    long long bad = add_job("mystery", "frobnicate", tag);
    long long empty = add_job("lonely", "reachability", 0);

    char *spool = spool_env();
    char *extra[] = { spool, NULL };
    struct nrt_proc w;
    start_worker(&w, extra);

    char *out = enqueue_wait(bad);
    ck_assert_msg(strstr(out, "COMPLETED_FAILURE"), "enqueue printed: %s", out);
    free(out);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld AND "
                                     "status = 'failure' AND details->>'error' LIKE "
                                     "'%%no handler registered for job type ''frobnicate''%%'", bad), 2);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND level = "
                           "'ERROR' AND message = 'No handler registered for job type ''frobnicate'' "
                           "in job ''mystery'''", bad));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld AND "
                                     "device_id = %lld", bad, d1), 1);

    /* the worker goes on */
    out = enqueue_wait(empty);
    ck_assert_msg(strstr(out, "COMPLETED_NO_DEVICES"), "enqueue printed: %s", out);
    free(out);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND level = "
                           "'WARNING' AND message = 'No devices to process for job ''lonely'''", empty));
    stop_worker_ok(&w);
    nrt_proc_clear(&w);
    free(spool);
}
END_TEST

/* Entries pending in the group, after waiting up to 5 s for it to be 0. */
static long long pending_after_wait(redisContext *rc)
{
    long long n = -1;
    for (int i = 0; i < 100 && n != 0; i++) {
        redisReply *r = redisCommand(rc, "XPENDING netraven:jobs netraven-workers");
        ck_assert_ptr_nonnull(r);
        n = r->element[0]->integer;
        freeReplyObject(r);
        if (n != 0)
            usleep(50000);
    }
    return n;
}

static void xadd_raw(redisContext *rc, const char *field, const char *value, size_t len)
{
    redisReply *r = redisCommand(rc, "XADD netraven:jobs * %s %b", field, value, len);
    ck_assert_msg(r && r->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(r);
}

START_TEST(bad_entries_go_to_dead_letters)
{
    long long job = add_job("after-the-junk", "reachability", 0);
    redisContext *rc = nrt_redis();
    char *spool = spool_env();
    char *extra[] = { spool, NULL };
    struct nrt_proc w;

    start_worker(&w, extra);
    const char *junk[] = {
        "this is not json", "{\"device_ids\": [1]}", "{\"job_id\": \"12\"}",
        "{\"job_id\": 99999}", "{\"job_id\": -4}",
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        xadd_raw(rc, "payload", junk[i], strlen(junk[i]));
    xadd_raw(rc, "data", "x", 1);                        /* no payload field */
    xadd_raw(rc, "payload", "\xff\xfe\x00\x01", 4);      /* binary garbage */
    char good[64];
    snprintf(good, sizeof(good), "{\"job_id\": %lld}", job);
    xadd_raw(rc, "payload", good, strlen(good));

    ck_assert(nrt_wait_sql(db, "COMPLETED_NO_DEVICES", 30, "SELECT status FROM jobs WHERE id = %lld", job));

    /* 7 dead letters, each with its reason; nothing left pending */
    redisReply *r = NULL;
    for (int i = 0; i < 100; i++) {
        freeReplyObject(r);
        r = redisCommand(rc, "XLEN netraven:jobs:dead");
        if (r && r->integer == 7)
            break;
        usleep(50000);
    }
    ck_assert_int_eq(r->integer, 7);
    freeReplyObject(r);
    r = redisCommand(rc, "XRANGE netraven:jobs:dead - +");
    ck_assert_int_eq(r->elements, 7);
    const char *want[] = { "not valid JSON", "job_id is missing", "job_id must be a positive integer",
                           "job 99999 does not exist", "job_id must be a positive integer",
                           "no 'payload' field", "JSON" };
    bool seen[7] = { false };
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        const char *reason = NULL;
        for (size_t f = 0; f + 1 < fields->elements; f += 2)
            if (strcmp(fields->element[f]->str, "reason") == 0)
                reason = fields->element[f + 1]->str;
        ck_assert_ptr_nonnull(reason);
        for (size_t k = 0; k < 7; k++)
            if (!seen[k] && strstr(reason, want[k])) {
                seen[k] = true;
                break;
            }
    }
    freeReplyObject(r);
    for (size_t k = 0; k < 7; k++)
        ck_assert_msg(seen[k], "no dead letter with reason '%s'", want[k]);
    /* the status is written before the entry is acknowledged: poll */
    ck_assert_int_eq(pending_after_wait(rc), 0);

    stop_worker_ok(&w);
    char *so = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(so, "rejected: job 99999 does not exist"), "stdout: %s", so);
    free(so);
    nrt_proc_clear(&w);
    redisFree(rc);
    free(spool);
}
END_TEST

START_TEST(entry_of_a_dead_worker_is_taken_over)
{
    long long job = add_job("orphan", "reachability", 0);
    redisContext *rc = nrt_redis();
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"job_id\": %lld}", job);

    /* a worker that read the entry and died before recording its run */
    redisReply *r = redisCommand(rc, "XGROUP CREATE netraven:jobs netraven-workers 0 MKSTREAM");
    freeReplyObject(r);
    xadd_raw(rc, "payload", payload, strlen(payload));
    r = redisCommand(rc, "XREADGROUP GROUP netraven-workers dead-worker COUNT 10 STREAMS netraven:jobs >");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);

    char *spool = spool_env();
    char *extra[] = { "NETRAVEN_WORKER__CLAIM_IDLE_SECONDS=1", spool, NULL };
    struct nrt_proc w;
    start_worker(&w, extra);
    ck_assert(nrt_wait_sql(db, "COMPLETED_NO_DEVICES", 30, "SELECT status FROM jobs WHERE id = %lld", job));
    ck_assert_int_eq(pending_after_wait(rc), 0);
    stop_worker_ok(&w);
    char *so = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(so, "taken over"), "stdout: %s", so);
    free(so);
    nrt_proc_clear(&w);
    redisFree(rc);
    free(spool);
}
END_TEST

START_TEST(file_logging_on_and_unwritable)
{
    long long job = add_job("filed", "reachability", 0);
    char *dir = nrt_tmpdir("logfile");
    char *file = NULL, *env_file = NULL;
    if (asprintf(&file, "%s/nested/deeper/worker.log", dir) < 0 ||
        asprintf(&env_file, "NETRAVEN_LOGGING__FILE=%s", file) < 0)
        abort();
    char *spool = spool_env();
    char *extra[] = { env_file, spool, NULL };
    struct nrt_proc w;

    start_worker(&w, extra);
    char *out = enqueue_wait(job);
    free(out);
    stop_worker_ok(&w);
    char *text = nrt_read_file(file);
    ck_assert_msg(text != NULL, "log file %s was not created", file);
    ck_assert(strstr(text, "Job 'filed' started") || strstr(text, "No devices to process for job 'filed'"));
    ck_assert(strstr(text, "netraven-worker stopped"));
    free(text);
    nrt_proc_clear(&w);

    /* a path that cannot be created: one warning on stdout, logging goes on */
    char *extra2[] = { "NETRAVEN_LOGGING__FILE=/proc/netraven-nope/worker.log", spool, NULL };
    start_worker(&w, extra2);
    out = enqueue_wait(job);
    free(out);
    stop_worker_ok(&w);
    char *so = nrt_proc_stdout(&w);
    int warnings = 0;
    for (const char *p = so; (p = strstr(p, "Cannot write log file")); p++)
        warnings++;
    ck_assert_int_eq(warnings, 1);
    ck_assert(strstr(so, "No devices to process for job 'filed'"));
    free(so);
    nrt_proc_clear(&w);
    free(file);
    free(env_file);
    free(dir);
    free(spool);
}
END_TEST

/* Run a python-rq snippet with Debian's python3 (python3-rq); returns its
 * stdout (malloc'd) and asserts it exited 0. */
static char *python_rq(const char *script)
{
    char *dir = nrt_tmpdir("py"), *path = NULL, *cmd = NULL;
    if (asprintf(&path, "%s/snippet.py", dir) < 0 ||
        asprintf(&cmd, "NR_REDIS_URL='%s' /usr/bin/python3 %s 2>&1", nrt_redis_url(), path) < 0)
        abort();
    nrt_write_file(path, script);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char *out = calloc(1, 65536);
    size_t n = fread(out, 1, 65535, f);
    out[n] = '\0';
    int st = pclose(f);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python failed: %s", out);
    free(path);
    free(cmd);
    free(dir);
    return out;
}

START_TEST(python_rq_job_through_the_daemon)
{
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('api', 'device') RETURNING id");
    long long dev = add_device("api-edge", nrt_lo("5.1"), tag);
    long long job = add_job("from-the-api", "reachability", tag);
    char *spool = spool_env();
    char *extra[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=1", spool, NULL };
    struct nrt_proc w;
    char script[2048];

    start_worker(&w, extra);
    /* as NetRaven's API does it, then as its UI reads it back */
    snprintf(script, sizeof(script),
             "import os, time\n"
             "from redis import Redis\n"
             "from rq import Queue\n"
             "from rq.job import Job\n"
             "r = Redis.from_url(os.environ['NR_REDIS_URL'])\n"
             "q = Queue('default', connection=r)\n"
             "good = q.enqueue('netraven.worker.runner.run_job', %lld)\n"
             "evil = q.enqueue('os.system', 'true')\n"
             "for _ in range(300):\n"
             "    s = [Job.fetch(j.id, connection=r).get_status() for j in (good, evil)]\n"
             "    if s[0] in ('finished', 'failed') and s[1] in ('finished', 'failed'):\n"
             "        break\n"
             "    time.sleep(0.1)\n"
             "print('good', s[0])\n"
             "print('evil', s[1])\n"
             "print('reason', Job.fetch(evil.id, connection=r).exc_info)\n",
             job);
    char *out = python_rq(script);
    ck_assert_msg(strstr(out, "good finished"), "python said: %s", out);
    ck_assert_msg(strstr(out, "evil failed"), "python said: %s", out);
    ck_assert_msg(strstr(out, "os.system"), "no reason naming the function: %s", out);
    free(out);
    char *st = nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
    ck_assert_str_eq(st, "COMPLETED_SUCCESS");
    free(st);
    /* the results and the logs, as the UI reads them */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld AND "
                                     "device_id = %lld AND status = 'success' AND "
                                     "details->'probes'->'icmp'->>'status' = 'ok'", job, dev), 1);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message LIKE 'Executing job%%'", job));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message LIKE 'Task completed%%'", job, dev));
    stop_worker_ok(&w);
    nrt_proc_clear(&w);
    free(spool);
}
END_TEST

/* A listener has a connection waiting (or had one): readable at once. */
static bool had_connection(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

static long long add_device_port(const char *name, const char *ip, long long port, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO devices (hostname, ip_address, device_type, port) "
        "VALUES ('%s', '%s', 'cisco_ios', %lld) RETURNING id", name, ip, port);
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", id, tag));
    return id;
}

static char *result_error(long long job, long long dev)
{
    return nrt_sql_str(db, "SELECT details->>'error' FROM job_results WHERE job_id = %lld "
                           "AND device_id = %lld AND status = 'failure'", job, dev);
}

/* devices.port past 65535 used to wrap in getaddrinfo (101599 -> 36063),
 * and the credentials went to whatever listened there; a negative port
 * became 22.  Both are refused before any connection, with a failure
 * result naming the port, for SSH handlers and reachability alike; 0
 * still means 22 (issue 10, defect 8). */
START_TEST(device_port_out_of_range_is_refused)
{
    int wrapped = listen_on(nrt_lo("3.9"), 101599 - 65536);  /* where the wrap went */
    int l22 = listen_on(nrt_lo("3.10"), 22);                 /* where -1 went */
    int l0 = listen_on(nrt_lo("3.11"), 22);                  /* port 0: 22, as NetRaven */
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('ports', 'device') RETURNING id");
    long long big = add_device_port("port-big", nrt_lo("3.9"), 101599, tag);
    long long neg = add_device_port("port-neg", nrt_lo("3.10"), -1, tag);
    long long cred = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority) "
                                     "VALUES ('admin', 'portLogin-Pw.5tG', 10) RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", cred, tag));
    long long backup = add_job("ports-backup", "config_backup", tag);

    char *spool = spool_env();
    char *extra[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=1", "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
                      spool, NULL };
    struct nrt_proc w;
    start_worker(&w, extra);

    char *out = enqueue_wait(backup);
    ck_assert_msg(strstr(out, "COMPLETED_FAILURE") != NULL, "enqueue printed: %s", out);
    free(out);
    char *e = result_error(backup, big);
    ck_assert_msg(e && strstr(e, "port 101599") && strstr(e, "1-65535"), "error: %s", e ? e : "(null)");
    free(e);
    e = result_error(backup, neg);
    ck_assert_msg(e && strstr(e, "port -1") && strstr(e, "1-65535"), "error: %s", e ? e : "(null)");
    free(e);
    ck_assert_msg(!had_connection(wrapped), "the wrapped port 36063 was connected to");
    ck_assert_msg(!had_connection(l22), "port -1 was connected to as 22");

    /* reachability: the same refusal; port 0 is 22 and probed as ever */
    long long zero = add_device_port("port-zero", nrt_lo("3.11"), 0, tag);
    long long reach = add_job("ports-reach", "reachability", tag);
    out = enqueue_wait(reach);
    ck_assert_msg(strstr(out, "COMPLETED_PARTIAL_FAILURE") != NULL, "enqueue printed: %s", out);
    free(out);
    e = result_error(reach, big);
    ck_assert_msg(e && strstr(e, "port 101599"), "error: %s", e ? e : "(null)");
    free(e);
    e = result_error(reach, neg);
    ck_assert_msg(e && strstr(e, "port -1"), "error: %s", e ? e : "(null)");
    free(e);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld "
                                     "AND device_id = %lld AND status = 'success'", reach, zero), 1);
    ck_assert_msg(!had_connection(wrapped), "the wrapped port 36063 was connected to");
    ck_assert_msg(!had_connection(l22), "port -1 was connected to as 22");
    ck_assert_msg(had_connection(l0), "port 0 was not probed as 22");
    /* the job log says why, with the device's ids */
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message LIKE '%%device port 101599 is outside%%'",
                           backup, big));

    stop_worker_ok(&w);
    nrt_proc_clear(&w);
    close(wrapped);
    close(l22);
    close(l0);
    free(spool);
}
END_TEST

START_TEST(check_config_refuses_bad_values_and_masks_secrets)
{
    char *argv[] = { (char *)nrt_worker_bin(), "check-config", NULL };
    struct nrt_proc p;
    char *bad[] = { "NETRAVEN_WORKER__THREAD_POOL_SIZE=abc", NULL };

    nrt_proc_start(&p, argv, bad);
    ck_assert(nrt_proc_wait(&p, 30));
    ck_assert_int_eq(WEXITSTATUS(p.status), 2);
    char *err = nrt_read_file(p.err_path);
    ck_assert_msg(strstr(err, "NETRAVEN_WORKER__THREAD_POOL_SIZE") && strstr(err, "worker.thread_pool_size"),
                  "stderr: %s", err);
    free(err);
    nrt_proc_clear(&p);

    char *secret[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=hunter2-master-key",
                       "NETRAVEN_SSH__ENABLE_SECRET=en4ble-s3cret",
                       "NETRAVEN_DATABASE__URL=postgresql+psycopg2://nr:db-pa55word@127.0.0.1:1/nr", NULL };
    nrt_proc_start(&p, argv, secret);
    ck_assert(nrt_proc_wait(&p, 30));
    ck_assert_int_eq(WEXITSTATUS(p.status), 0);
    char *out = nrt_proc_stdout(&p);
    ck_assert(strstr(out, "worker.thread_pool_size") != NULL);
    ck_assert(strstr(out, "hunter2-master-key") == NULL);
    ck_assert(strstr(out, "en4ble-s3cret") == NULL);
    ck_assert(strstr(out, "db-pa55word") == NULL);
    free(out);
    nrt_proc_clear(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker");
    TCase *tc = tcase_create("end-to-end");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    nrt_add_test(tc, reachability_mix_end_to_end);
    nrt_add_test(tc, results_written_while_devices_are_queued);
    nrt_add_test(tc, unknown_job_type_then_next_job);
    nrt_add_test(tc, bad_entries_go_to_dead_letters);
    nrt_add_test(tc, entry_of_a_dead_worker_is_taken_over);
    nrt_add_test(tc, file_logging_on_and_unwritable);
    nrt_add_test(tc, python_rq_job_through_the_daemon);
    nrt_add_test(tc, check_config_refuses_bad_values_and_masks_secrets);
    nrt_add_test(tc, device_port_out_of_range_is_refused);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
