/*
 * test_resilience.c - nothing is lost: PostgreSQL stopped mid-run, SIGTERM
 * during a run, two workers sharing the queue, a worker killed mid-run;
 * nothing runs twice: a worker whose every slot runs longer than
 * claim_idle_seconds keeps its entries; a poison entry (delivered and never
 * acknowledged, again and again) goes to the dead stream.
 *
 * Slow runs come from devices in a network namespace the test makes, whose
 * probes wait for worker.connection_timeout.
 */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/common.h"

static PGconn *db;

static struct nrt_proc *workers[4];

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
}

static void teardown(void)
{
    for (size_t i = 0; i < sizeof(workers) / sizeof(workers[0]); i++)
        if (workers[i]) {
            nrt_proc_stop(workers[i], 5);
            workers[i] = NULL;
        }
    nrt_blackhole_down();
    nrt_services("pg-start");
    PQfinish(db);
}

static char *env_kv(const char *key, const char *val)
{
    char *s = NULL;
    if (asprintf(&s, "%s=%s", key, val) < 0)
        abort();
    return s;
}

/* Start a worker with a private spool and the given extras. */
static void start_worker(int slot, struct nrt_proc *w, const char *name, char *const more[])
{
    char *dir = nrt_tmpdir("spool");
    char *extra[16];
    size_t n = 0;

    extra[n++] = env_kv("NETRAVEN_WORKER__SPOOL_DIR", dir);
    extra[n++] = env_kv("NETRAVEN_WORKER__CONSUMER_NAME", name);
    for (size_t i = 0; more && more[i] && n < 15; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    nrt_proc_start(w, argv, extra);
    workers[slot] = w;
    free(extra[0]);
    free(extra[1]);
    free(dir);
}

static void stop_ok(int slot, struct nrt_proc *w, double grace)
{
    nrt_proc_stop(w, grace);
    workers[slot] = NULL;
    ck_assert_msg(WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0,
                  "worker did not exit 0 (status %d)", w->status);
}

/* A reachability job over `count` dark devices (10.199.N.2 ...). */
static long long dark_job(const char *name, int count)
{
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('%s', 'device') "
                                    "RETURNING id", name);
    PQclear(nrt_sql(db, "INSERT INTO devices (hostname, ip_address, device_type, port) "
                        "SELECT format('%s-%%s', i), format('10.199.%d.%%s', i + 2), 'cisco_ios', 22 "
                        "FROM generate_series(0, %d) AS i", name, nrt_blackhole_net(), count - 1));
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association SELECT id, %lld FROM devices "
                        "WHERE hostname LIKE '%s-%%'", tag, name));
    long long job = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, "
                                    "schedule_type) VALUES ('%s', 'reachability', 'PENDING', true, "
                                    "'onetime') RETURNING id", name);
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));
    return job;
}

static long long empty_job(int i)
{
    return nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
                           "VALUES ('empty-%d', 'reachability', 'PENDING', true, 'onetime') "
                           "RETURNING id", i);
}

static void enqueue(redisContext *rc, long long job)
{
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"job_id\": %lld}", job);
    redisReply *r = redisCommand(rc, "XADD netraven:jobs * payload %s", payload);
    ck_assert_msg(r && r->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(r);
}

/* "N of M log rows written" from the worker's last line. */
static void stopped_counts(const char *out, long long *written, long long *routed)
{
    const char *p = strstr(out, "netraven-worker stopped: ");
    ck_assert_msg(p != NULL, "no stop line in: %s", out);
    ck_assert_int_eq(sscanf(p, "netraven-worker stopped: %lld of %lld", written, routed), 2);
}

START_TEST(postgres_stopped_mid_run)
{
    nrt_blackhole_up(19);
    long long job = dark_job("pgdown", 20);
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=2", "NETRAVEN_WORKER__THREAD_POOL_SIZE=4",
                     NULL };
    struct nrt_proc w;

    start_worker(0, &w, "pg-outage", more);
    enqueue(rc, job);
    ck_assert(nrt_wait_sql(db, "RUNNING", 30, "SELECT status FROM jobs WHERE id = %lld", job));
    PQfinish(db);
    nrt_services("pg-stop");
    sleep(10);
    nrt_services("pg-start");
    db = nrt_pg();

    ck_assert_msg(nrt_wait_sql(db, "COMPLETED_FAILURE", 90, "SELECT status FROM jobs WHERE id = %lld",
                               job), "the run did not end after PostgreSQL came back");
    /* one result per device, none twice */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 20);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM job_results "
                                     "WHERE job_id = %lld", job), 20);
    stop_ok(0, &w, 60);

    char *out = nrt_proc_stdout(&w);
    long long written, routed;
    stopped_counts(out, &written, &routed);
    ck_assert_int_gt(routed, 60);
    ck_assert_int_eq(written, routed);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs"), routed);
    /* in order, none twice: one completion row per device */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "message LIKE 'Task completed%%'", job), 20);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM (SELECT message, device_id FROM logs "
                                     "GROUP BY message, device_id, timestamp HAVING count(*) > 1) d"), 0);
    ck_assert_msg(strstr(out, "PostgreSQL unavailable"), "stdout says nothing of the outage");
    free(out);
    nrt_proc_clear(&w);
    redisFree(rc);
}
END_TEST

/* Results are written a batch at a time, in one transaction (a large
 * batch in two halves, on two connections): a device deleted while its job
 * runs fails the transaction its result is in, which is written again one
 * device at a time, so that only that device's result is missing (and said
 * so); every other device has its row, once, and the rest of the batch
 * went in whole. */
START_TEST(a_deleted_device_costs_only_its_own_result)
{
    nrt_blackhole_up(39);
    long long job = dark_job("deleted", 40);
    long long gone = nrt_sql_int(db, "SELECT id FROM devices WHERE hostname = 'deleted-7'");
    redisContext *rc = nrt_redis();
    /* Most devices refuse at once; ten of them, deleted-7 among them, are
     * addresses nobody holds, which answer nothing until the connection
     * timeout: their results come back together, seconds after the
     * device is gone, however slowly the test sees the run start. */
    PQclear(nrt_sql(db, "UPDATE devices SET ip_address = format('10.199.%d.%%s', 200 + "
                        "split_part(hostname, '-', 2)::int) WHERE hostname ~ '^deleted-([5-9]|1[0-4])$'",
                    nrt_blackhole_net()));
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=4", "NETRAVEN_WORKER__THREAD_POOL_SIZE=40",
                     NULL };
    struct nrt_proc w;

    start_worker(0, &w, "deleted", more);
    enqueue(rc, job);
    /* RUNNING comes before the run loads its devices: delete only once the
     * run holds all 40, or the run never sees deleted-7 at all */
    ck_assert_msg(nrt_wait_stdout(&w, "will process 40 devices", 1, 30), "the run did not load its devices");
    PQclear(nrt_sql(db, "DELETE FROM devices WHERE id = %lld", gone));
    ck_assert_msg(nrt_wait_sql(db, "COMPLETED_FAILURE", 60, "SELECT status FROM jobs WHERE id = %lld",
                               job), "the run did not end");
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 39);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM job_results "
                                     "WHERE job_id = %lld", job), 39);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE device_id = %lld",
                                 gone), 0);
    /* rows of one transaction share created_at: not every row went alone */
    ck_assert_int_ge(nrt_sql_int(db, "SELECT max(n) FROM (SELECT count(*) AS n FROM job_results "
                                     "WHERE job_id = %lld GROUP BY created_at) t", job), 2);
    stop_ok(0, &w, 60);
    if (nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND message LIKE "
                        "'Could not save result for device ''deleted-7''%%'", job) != 1) {
        /* what the job's log and the worker said of the device, to tell a
         * lost row from a result that was saved before the delete */
        char *rows = nrt_sql_str(db, "SELECT coalesce(string_agg(message, ' | ' ORDER BY id), "
                                     "'none') FROM logs WHERE job_id = %lld AND (message LIKE "
                                     "'%%deleted-7%%' OR meta::text LIKE '%%orig_device_id%%')",
                                 job);
        char *out = nrt_proc_stdout(&w), *line = strstr(out, "deleted-7");

        ck_abort_msg("no 'Could not save result' row for deleted-7; the job's rows: %s; "
                     "stdout from its first mention: %.2000s", rows, line ? line : "(none)");
    }
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "message LIKE 'Could not save result%%'", job), 1);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "message LIKE 'Task completed%%'", job), 40);
    nrt_proc_clear(&w);
    redisFree(rc);
}
END_TEST

START_TEST(sigterm_during_a_run)
{
    nrt_blackhole_up(9);
    long long job = dark_job("term", 10);
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=2", "NETRAVEN_WORKER__THREAD_POOL_SIZE=5",
                     NULL };
    struct nrt_proc w;

    start_worker(0, &w, "term", more);
    enqueue(rc, job);
    ck_assert(nrt_wait_sql(db, "RUNNING", 30, "SELECT status FROM jobs WHERE id = %lld", job));
    kill(w.pid, SIGTERM);
    ck_assert_msg(nrt_proc_wait(&w, 60), "worker did not stop after SIGTERM");
    workers[0] = NULL;
    ck_assert(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0);

    /* the run in flight finished within the grace time and was recorded */
    char *st = nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
    ck_assert_str_eq(st, "COMPLETED_FAILURE");
    free(st);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 10);
    redisReply *r = redisCommand(rc, "XPENDING netraven:jobs netraven-workers");
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);
    char *out = nrt_proc_stdout(&w);
    long long written, routed;
    stopped_counts(out, &written, &routed);
    ck_assert_int_eq(written, routed);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs"), routed);
    free(out);
    nrt_proc_clear(&w);
    redisFree(rc);
}
END_TEST

START_TEST(sigterm_past_the_grace_time_hands_back)
{
    nrt_blackhole_up(9);
    long long job = dark_job("handback", 10);
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=2", "NETRAVEN_WORKER__THREAD_POOL_SIZE=1",
                     "NETRAVEN_WORKER__SHUTDOWN_GRACE_SECONDS=1",
                     "NETRAVEN_WORKER__CLAIM_IDLE_SECONDS=2", NULL };
    struct nrt_proc a, b;

    start_worker(0, &a, "leaving", more);
    enqueue(rc, job);
    ck_assert(nrt_wait_sql(db, "RUNNING", 30, "SELECT status FROM jobs WHERE id = %lld", job));
    /* one thread, ten devices of 2 s each: the run needs about 20 s */
    uint64_t t0 = nr_mono_ns();
    kill(a.pid, SIGTERM);
    ck_assert_msg(nrt_proc_wait(&a, 15), "worker did not leave after its grace time");
    workers[0] = NULL;
    ck_assert(WIFEXITED(a.status) && WEXITSTATUS(a.status) == 0);
    ck_assert_msg(nr_mono_ns() - t0 < 10000000000ull, "exit took too long");
    char *out = nrt_proc_stdout(&a);
    ck_assert_msg(strstr(out, "1 runs still in flight after the 1 s grace time handed back"),
                  "stdout: %s", out);
    free(out);

    /* the entry is still pending, and another worker runs it */
    start_worker(1, &b, "taking-over", more);
    ck_assert_msg(nrt_wait_sql(db, "COMPLETED_FAILURE", 90, "SELECT status FROM jobs WHERE id = %lld",
                               job), "the handed-back run was not taken over");
    ck_assert_int_ge(nrt_sql_int(db, "SELECT count(DISTINCT device_id) FROM job_results "
                                     "WHERE job_id = %lld", job), 10);
    stop_ok(1, &b, 60);
    nrt_proc_clear(&a);
    nrt_proc_clear(&b);
    redisFree(rc);
}
END_TEST

START_TEST(two_workers_run_each_job_once)
{
    enum { JOBS = 200 };
    redisContext *rc = nrt_redis();
    struct nrt_proc a, b;

    start_worker(0, &a, "worker-a", NULL);
    start_worker(1, &b, "worker-b", NULL);
    for (int i = 0; i < JOBS; i++)
        enqueue(rc, empty_job(i));
    ck_assert_msg(nrt_wait_sql(db, "200", 120, "SELECT count(*) FROM jobs WHERE status = "
                               "'COMPLETED_NO_DEVICES'"), "not every job ran");
    stop_ok(0, &a, 30);
    stop_ok(1, &b, 30);
    /* each run logs one "Executing job" row: exactly one per job */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE message LIKE 'Executing job%%'"),
                     JOBS);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT job_id) FROM logs WHERE message "
                                     "LIKE 'Executing job%%'"), JOBS);
    /* both took a share */
    char *oa = nrt_proc_stdout(&a), *ob = nrt_proc_stdout(&b);
    ck_assert_msg(strstr(oa, "Executing job") && strstr(ob, "Executing job"),
                  "one worker took every job");
    free(oa);
    free(ob);
    nrt_proc_clear(&a);
    nrt_proc_clear(&b);
    redisFree(rc);
}
END_TEST

START_TEST(worker_killed_mid_run)
{
    nrt_blackhole_up(9);
    long long job = dark_job("killed", 10);
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=3", "NETRAVEN_WORKER__THREAD_POOL_SIZE=2",
                     "NETRAVEN_WORKER__CLAIM_IDLE_SECONDS=2", NULL };
    struct nrt_proc a, b;

    start_worker(0, &a, "victim", more);
    enqueue(rc, job);
    ck_assert(nrt_wait_sql(db, "RUNNING", 30, "SELECT status FROM jobs WHERE id = %lld", job));
    kill(a.pid, SIGKILL);
    nrt_proc_wait(&a, 10);
    workers[0] = NULL;

    start_worker(1, &b, "survivor", more);
    ck_assert_msg(nrt_wait_sql(db, "COMPLETED_FAILURE", 90, "SELECT status FROM jobs WHERE id = %lld",
                               job), "the killed worker's run was not taken over");
    redisReply *r = NULL;
    for (int i = 0; i < 100; i++) {
        freeReplyObject(r);
        r = redisCommand(rc, "XPENDING netraven:jobs netraven-workers");
        if (r->element[0]->integer == 0)
            break;
        usleep(100000);
    }
    ck_assert_int_eq(r->element[0]->integer, 0);
    freeReplyObject(r);
    /* the survivor's run wrote one result per device (the victim's partial
     * results stay, as rows of the run it did not finish) */
    ck_assert_int_ge(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld", job), 10);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM jobs WHERE status = 'RUNNING'"), 0);
    stop_ok(1, &b, 30);
    char *out = nrt_proc_stdout(&b);
    ck_assert_msg(strstr(out, "taken over"), "survivor stdout: %s", out);
    free(out);
    nrt_proc_clear(&a);
    nrt_proc_clear(&b);
    redisFree(rc);
}
END_TEST

/* One redis command on rc that must answer with the given type. */
static redisReply *rc_cmd(redisContext *rc, int type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    ck_assert_msg(r->type == type, "%s: reply type %d (%s)", fmt, r->type,
                  r->type == REDIS_REPLY_ERROR ? r->str : "");
    return r;
}

static long long rc_int(redisContext *rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_INTEGER, "%s: not an integer", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long pending_entries(redisContext *rc)
{
    redisReply *r = rc_cmd(rc, REDIS_REPLY_ARRAY, "XPENDING netraven:jobs netraven-workers");
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* Defect: the intake refreshed its entries only when it had a free slot to
 * claim with, so a worker running max_concurrent_jobs runs longer than
 * claim_idle_seconds had them taken over by another worker and run twice. */
START_TEST(busy_slots_keep_their_entries)
{
    nrt_blackhole_up(4);
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__CONNECTION_TIMEOUT=2", "NETRAVEN_WORKER__THREAD_POOL_SIZE=2",
                     "NETRAVEN_WORKER__MAX_CONCURRENT_JOBS=2",
                     "NETRAVEN_WORKER__CLAIM_IDLE_SECONDS=3", NULL };
    struct nrt_proc a, b;
    long long dark[2], empty[2];

    /* two jobs over the same five dark devices: 10 probes of 2 s on two
     * threads keep both of a's slots busy about 10 s, past the 3 s claim */
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('busy', 'device') "
                                    "RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO devices (hostname, ip_address, device_type, port) "
                        "SELECT format('busy-%%s', i), format('10.199.%d.%%s', i + 2), 'cisco_ios', 22 "
                        "FROM generate_series(0, 4) AS i", nrt_blackhole_net()));
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association SELECT id, %lld FROM devices "
                        "WHERE hostname LIKE 'busy-%%'", tag));
    for (int i = 0; i < 2; i++) {
        dark[i] = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, "
                                  "schedule_type) VALUES ('busy-%d', 'reachability', 'PENDING', "
                                  "true, 'onetime') RETURNING id", i);
        PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", dark[i], tag));
    }

    start_worker(0, &a, "busy-a", more);
    enqueue(rc, dark[0]);
    enqueue(rc, dark[1]);
    ck_assert(nrt_wait_sql(db, "2", 30, "SELECT count(*) FROM jobs WHERE status = 'RUNNING'"));
    /* a second worker with free slots, claiming what is idle 3 s */
    start_worker(1, &b, "busy-b", more);
    for (int i = 0; i < 2; i++) {
        empty[i] = empty_job(i);
        enqueue(rc, empty[i]);
    }
    ck_assert_msg(nrt_wait_sql(db, "2", 90, "SELECT count(*) FROM jobs WHERE status = "
                               "'COMPLETED_FAILURE'"), "the long runs did not end");
    ck_assert(nrt_wait_sql(db, "2", 30, "SELECT count(*) FROM jobs WHERE status = "
                           "'COMPLETED_NO_DEVICES'"));
    for (int i = 0; i < 100 && pending_entries(rc) > 0; i++)
        usleep(100000);
    ck_assert_int_eq(pending_entries(rc), 0);
    stop_ok(0, &a, 60);
    stop_ok(1, &b, 60);

    /* every job ran once: one "Executing job" row each */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE message LIKE 'Executing job%%'"),
                     4);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT job_id) FROM logs WHERE message "
                                     "LIKE 'Executing job%%'"), 4);
    /* every (job, device) pair has one result */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id IN (%lld, %lld)",
                                 dark[0], dark[1]), 10);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM (SELECT DISTINCT job_id, device_id "
                                     "FROM job_results WHERE job_id IN (%lld, %lld)) p",
                                 dark[0], dark[1]), 10);
    char *ob = nrt_proc_stdout(&b);
    ck_assert_msg(strstr(ob, "taken over") == NULL, "b took over a live run: %s", ob);
    free(ob);
    /* done entries left the stream */
    ck_assert_int_eq(rc_int(rc, "XLEN netraven:jobs"), 0);
    nrt_proc_clear(&a);
    nrt_proc_clear(&b);
    redisFree(rc);
}
END_TEST

/* Make an entry for job pending under consumer, handed out `times` times
 * and idle long enough for any claim. */
static char *pending_entry(redisContext *rc, long long job, const char *consumer, int times)
{
    char payload[64];
    snprintf(payload, sizeof(payload), "{\"job_id\": %lld}", job);
    redisReply *r = rc_cmd(rc, REDIS_REPLY_STRING, "XADD netraven:jobs * payload %s", payload);
    char *id = strdup(r->str);
    freeReplyObject(r);
    freeReplyObject(rc_cmd(rc, REDIS_REPLY_ARRAY, "XREADGROUP GROUP netraven-workers %s COUNT 1 "
                           "STREAMS netraven:jobs >", consumer));
    freeReplyObject(rc_cmd(rc, REDIS_REPLY_ARRAY, "XCLAIM netraven:jobs netraven-workers %s 0 %s "
                           "IDLE 600000 RETRYCOUNT %d JUSTID", consumer, id, times));
    return id;
}

/* Defect: an entry that kills every worker taking it was claimed forever.
 * After worker.max_deliveries hand-outs it goes to the dead stream, both
 * when another worker claims it and when its own worker reads it again
 * after a restart; an entry under the limit still runs. */
START_TEST(poison_entry_goes_to_the_dead_stream)
{
    redisContext *rc = nrt_redis();
    char *more[] = { "NETRAVEN_WORKER__MAX_DELIVERIES=3", "NETRAVEN_WORKER__CLAIM_IDLE_SECONDS=1",
                     NULL };
    struct nrt_proc w;
    long long poison[2] = { empty_job(0), empty_job(1) }, fine = empty_job(2);

    freeReplyObject(rc_cmd(rc, REDIS_REPLY_STATUS, "XGROUP CREATE netraven:jobs netraven-workers "
                           "0 MKSTREAM"));
    char *p0 = pending_entry(rc, poison[0], "gone", 3);         /* a dead worker's */
    char *p1 = pending_entry(rc, poison[1], "poisoned", 3);     /* the worker's own */
    char *ok = pending_entry(rc, fine, "gone", 2);

    start_worker(0, &w, "poisoned", more);
    ck_assert_msg(nrt_wait_sql(db, "COMPLETED_NO_DEVICES", 30, "SELECT status FROM jobs "
                               "WHERE id = %lld", fine), "the entry under the limit did not run");
    for (int i = 0; i < 100 && (rc_int(rc, "XLEN netraven:jobs:dead") < 2 || pending_entries(rc) > 0);
         i++)
        usleep(100000);
    stop_ok(0, &w, 30);

    redisReply *r = rc_cmd(rc, REDIS_REPLY_ARRAY, "XRANGE netraven:jobs:dead - +");
    ck_assert_uint_eq(r->elements, 2);
    int seen = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        ck_assert_uint_eq(f->elements, 8);
        ck_assert_str_eq(f->element[2]->str, "reason");
        ck_assert_msg(strstr(f->element[3]->str, "delivered 4 times") &&
                      strstr(f->element[3]->str, "worker.max_deliveries is 3"),
                      "reason: %s", f->element[3]->str);
        ck_assert_str_eq(f->element[4]->str, "entry_id");
        long long job = strcmp(f->element[5]->str, p0) == 0 ? poison[0]
                        : strcmp(f->element[5]->str, p1) == 0 ? poison[1] : 0;
        ck_assert_msg(job != 0, "unexpected dead entry %s", f->element[5]->str);
        char want[64];
        snprintf(want, sizeof(want), "{\"job_id\": %lld}", job);
        ck_assert_str_eq(f->element[1]->str, want);
        seen |= job == poison[0] ? 1 : 2;
    }
    ck_assert_int_eq(seen, 3);
    freeReplyObject(r);
    /* the poison jobs never ran */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM jobs WHERE id IN (%lld, %lld) AND "
                                     "status = 'PENDING'", poison[0], poison[1]), 2);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE message LIKE 'Executing job%%' "
                                     "AND job_id IN (%lld, %lld)", poison[0], poison[1]), 0);
    char *out = nrt_proc_stdout(&w);
    ck_assert_msg(strstr(out, "delivered 4 times"), "stdout: %s", out);
    free(out);
    /* nothing left pending, and the stream holds nothing done */
    ck_assert_int_eq(pending_entries(rc), 0);
    ck_assert_int_eq(rc_int(rc, "XLEN netraven:jobs"), 0);
    free(p0);
    free(p1);
    free(ok);
    nrt_proc_clear(&w);
    redisFree(rc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resilience");
    TCase *tc = tcase_create("resilience");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    nrt_add_test(tc, postgres_stopped_mid_run);
    nrt_add_test(tc, a_deleted_device_costs_only_its_own_result);
    nrt_add_test(tc, sigterm_during_a_run);
    nrt_add_test(tc, sigterm_past_the_grace_time_hands_back);
    nrt_add_test(tc, two_workers_run_each_job_once);
    nrt_add_test(tc, worker_killed_mid_run);
    nrt_add_test(tc, busy_slots_keep_their_entries);
    nrt_add_test(tc, poison_entry_goes_to_the_dead_stream);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
