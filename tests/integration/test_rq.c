/*
 * test_rq.c - the python-rq intake against real Redis and PostgreSQL, with
 * python-rq itself (Debian's python3-rq 1.13 under /usr/bin/python3) on
 * the other side: it enqueues exactly as NetRaven's API does, and reads
 * back with RQ's own API (Job.fetch, the registries, Worker.all, results)
 * and the `rq info` command.
 *
 * The intake runs in-process with a real runner and dispatcher pool, as
 * the daemon wires it.  Checks made through raw Redis come before any
 * Python registry reader where it matters: python-rq 1.13's registry
 * readers run their own cleanup, which would hide whether ours ran.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/config.h"
#include "netraven/log.h"
#include "netraven/pool.h"
#include "netraven/rq.h"
#include "netraven/run.h"
#include "netraven/store.h"

#define PY      "/usr/bin/python3"
#define WORKER  "nrt-rq-worker"
#define FN      "netraven.worker.runner.run_job"
#define FP      "netraven.scheduler.job_definitions.prune_old_device_configs"

static PGconn *db;
static redisContext *raw;
static struct nr_config cfg;
static bool cfg_loaded;
static struct nr_pool *pool;
static struct nr_runner *runner;
static struct nr_rq_intake *intake;

/* ---------------------------------------------------------------- config */

/* extra: more NAME=value settings, one a line. */
static void load_cfg(const char *db_url, const char *extra)
{
    char *env[16], *err = NULL;
    int n = 0;

    if (asprintf(&env[n++], "NETRAVEN_DATABASE__URL=%s", db_url) < 0 ||
        asprintf(&env[n++], "NETRAVEN_SCHEDULER__REDIS_URL=%s", nrt_redis_url()) < 0)
        abort();
    env[n++] = strdup("NETRAVEN_WORKER__CONSUMER_NAME=" WORKER);
    env[n++] = strdup("NETRAVEN_WORKER__CONNECTION_TIMEOUT=1");
    if (extra == NULL || strstr(extra, "SHUTDOWN_GRACE") == NULL)
        env[n++] = strdup("NETRAVEN_WORKER__SHUTDOWN_GRACE_SECONDS=20");
    env[n++] = strdup("NETRAVEN_WORKER__RETRY_ATTEMPTS=0");
    for (const char *p = extra, *e; p != NULL && *p != '\0' && n < 15; p = *e ? e + 1 : e) {
        e = strchr(p, '\n');
        if (e == NULL)
            e = p + strlen(p);
        env[n++] = strndup(p, (size_t)(e - p));
    }
    env[n] = NULL;
    int rc = nr_config_load(&cfg, NR_SOURCE_ROOT "/config", env, &err);
    ck_assert_msg(rc == 0, "config: %s", err ? err : "?");
    for (int i = 0; i < n; i++)
        free(env[i]);
    cfg_loaded = true;
}

/* Start the intake with cfg as loaded. */
static void intake_start(void)
{
    pool = nr_pool_new(4, 64);
    ck_assert_ptr_nonnull(pool);
    runner = nr_runner_new(&cfg, pool);
    ck_assert_ptr_nonnull(runner);
    intake = nr_rq_intake_new(&cfg, runner, WORKER);
    ck_assert_ptr_nonnull(intake);
    /* one intake per process */
    ck_assert_ptr_null(nr_rq_intake_new(&cfg, runner, WORKER));
}

static void intake_up_with(const char *db_url, const char *extra_env)
{
    load_cfg(db_url, extra_env);
    intake_start();
}

static void intake_up(void) { intake_up_with(nrt_db_url(), NULL); }

static void intake_down(void)
{
    if (intake != NULL) {
        nr_rq_intake_stop(intake);
        nr_rq_intake_stop(intake);  /* a second stop is a no-op */
        nr_rq_intake_free(intake);
        intake = NULL;
    }
    nr_runner_free(runner);
    runner = NULL;
    nr_pool_free(pool);
    pool = NULL;
}

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
    raw = nrt_redis();
}

static void teardown(void)
{
    intake_down();
    /* test_not_recorded's trigger must never outlive it */
    PQclear(PQexec(db, "DROP TRIGGER IF EXISTS nrt_refuse ON job_results"));
    PQclear(PQexec(db, "DROP FUNCTION IF EXISTS nrt_refuse()"));
    PQclear(PQexec(db, "DROP TRIGGER IF EXISTS nrt_refuse_prune ON device_configurations"));
    if (cfg_loaded)
        nr_config_clear(&cfg);
    cfg_loaded = false;
    if (raw)
        redisFree(raw);
    raw = NULL;
    PQfinish(db);
}

/* ---------------------------------------------------------------- python */

static const char prelude[] =
    "import os, re, sys, time, zlib, pickle, uuid, subprocess\n"
    "from redis import Redis\n"
    "from rq import Queue, Worker, Retry\n"
    "from rq.job import Job\n"
    "from rq.results import Result\n"
    "from rq.registry import StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry\n"
    "url = os.environ['NR_TEST_REDIS_URL']\n"
    "r = Redis.from_url(url)\n"
    "q = Queue('default', connection=r)\n"
    "F = '" FN "'\n"
    "FP = '" FP "'\n"
    "W = '" WORKER "'\n"
    "TS = re.compile(r'^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{6}Z$')\n"
    "def check(c, m):\n"
    "    if not c:\n"
    "        print('FAIL: ' + str(m)); sys.exit(1)\n"
    "def fetch(i): return Job.fetch(i, connection=r)\n"
    "def enqueue(job_id, **kw):\n"
    "    # exactly as NetRaven's API enqueues a run\n"
    "    return Queue('default', connection=Redis.from_url(url)).enqueue(F, job_id, **kw)\n";

/* Run prelude + the formatted script with Debian's python3; returns its
 * output (stdout and stderr), and its exit status in *status. */
static char *py_run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *py_run(int *status, const char *fmt, ...)
{
    char *dir = nrt_tmpdir("py"), *path = NULL, *cmd = NULL, *body = NULL, *out;
    FILE *f, *p;
    size_t cap = 4096, len = 0, n;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&body, fmt, ap) < 0)
        abort();
    va_end(ap);
    if (asprintf(&path, "%s/t.py", dir) < 0 || asprintf(&cmd, PY " %s 2>&1", path) < 0)
        abort();
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(prelude, f);
    fputs(body, f);
    fclose(f);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out = malloc(cap);
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 1024)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    *status = pclose(p);
    unlink(path);
    rmdir(dir);
    free(dir);
    free(path);
    free(cmd);
    free(body);
    return out;
}

/* Run a script that must exit 0; returns its output (stripped). */
static char *py(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *py(const char *fmt, ...)
{
    char *body = NULL, *out;
    va_list ap;
    int st;

    va_start(ap, fmt);
    if (vasprintf(&body, fmt, ap) < 0)
        abort();
    va_end(ap);
    out = py_run(&st, "%s", body);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "python failed (%d):\n%s\n--- script:\n%s",
                  st, out, body);
    free(body);
    for (size_t n = strlen(out); n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ');)
        out[--n] = '\0';
    return out;
}

/* ----------------------------------------------------------------- redis */

static char *hget(const char *key, const char *field)
{
    redisReply *r = redisCommand(raw, "HGET %s %s", key, field);
    ck_assert_ptr_nonnull(r);
    char *v = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return v;
}

static long long rint_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -999;
    freeReplyObject(r);
    return v;
}

static char *rstr_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    char *v = r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return v;
}

/* Wait until rq:job:<id> has status want (or timeout_s passes). */
static bool wait_status(const char *id, const char *want, double timeout_s)
{
    char key[256];
    snprintf(key, sizeof(key), "rq:job:%s", id);
    for (double t = 0; t < timeout_s; t += 0.05) {
        char *s = hget(key, "status");
        bool ok = s && strcmp(s, want) == 0;
        free(s);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

static void expect_status(const char *id, const char *want, double timeout_s)
{
    char key[256];
    bool ok = wait_status(id, want, timeout_s);
    snprintf(key, sizeof(key), "rq:job:%s", id);
    char *s = hget(key, "status");
    ck_assert_msg(ok, "RQ job %s: status %s, want %s", id, s ? s : "(none)", want);
    free(s);
}

/* ------------------------------------------------------------------- db */

static long long add_job_typed(const char *name, const char *type, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
        "VALUES ('%s', '%s', 'PENDING', true, 'onetime') RETURNING id", name, type);
    if (tag)
        PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", id, tag));
    return id;
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
    return add_job_typed(name, "reachability", tag);
}

static int listen_on(const char *ip, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    inet_pton(AF_INET, ip, &sa.sin_addr);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s:%d", ip, port);
    ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

static char *db_status(long long job)
{
    return nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
}

/* ================================================================ tests */

/* run_job jobs enqueued as NetRaven's API does run and end `finished` in
 * RQ whatever their NetRaven status (the call returned), and every RQ
 * reader agrees. */
START_TEST(test_run_job_finishes)
{
    int l = listen_on(nrt_lo("4.1"), 22);
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('rq', 'device') RETURNING id");
    long long tag2 = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('dark', 'device') RETURNING id");
    add_device("rq-edge", nrt_lo("4.1"), tag);
    add_device("rq-other", nrt_lo("4.2"), tag2);
    long long j_none = add_job("rq-no-devices", 0);
    long long j_ok = add_job("rq-reach", tag);
    /* no handler for its type: every device fails, COMPLETED_FAILURE */
    long long j_bad = add_job_typed("rq-unknown-type", "no_such_type", tag2);

    char *ids = py("for j in (%lld, %lld, %lld):\n"
                   "    job = enqueue(j)\n"
                   "    check(r.hget(job.key, 'status') == b'queued', 'enqueued')\n"
                   "    print(job.id, end=' ')\n", j_none, j_ok, j_bad);
    char id[3][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s", id[0], id[1], id[2]), 3);

    intake_up();
    for (int i = 0; i < 3; i++)
        expect_status(id[i], "finished", 60);

    char *s;
    ck_assert_str_eq(s = db_status(j_none), NR_STATUS_NO_DEVICES); free(s);
    ck_assert_str_eq(s = db_status(j_ok), NR_STATUS_SUCCESS); free(s);
    ck_assert_str_eq(s = db_status(j_bad), NR_STATUS_FAILURE); free(s);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id IN (%lld, %lld)",
                                 j_ok, j_bad), 2);
    /* nothing left in the wip registry (checked raw, before any reader) */
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 0);

    free(py("ids = '%s'.split()\n"
            "for i in ids:\n"
            "    job = fetch(i)\n"
            "    check(job.get_status() == 'finished', (i, job.get_status()))\n"
            "    check(job.func_name == F and job.origin == 'default', 'func/origin kept')\n"
            "    check(job.meta == {}, 'meta untouched')\n"
            "    check(job.worker_name == W, job.worker_name)\n"
            "    check(job.started_at and job.ended_at and job.ended_at >= job.started_at, 'times')\n"
            "    check(job.last_heartbeat is not None, 'last_heartbeat')\n"
            "    raw = r.hgetall(job.key)\n"
            "    for f in (b'started_at', b'ended_at', b'last_heartbeat', b'enqueued_at'):\n"
            "        check(TS.match(raw[f].decode()), (f, raw[f]))\n"
            "    check(b'data' in raw and b'description' in raw, 'fields kept')\n"
            "    res = job.latest_result()\n"
            "    check(res is not None and res.type == Result.Type.SUCCESSFUL, res)\n"
            "    check(res.return_value is None and job.result is None, 'returns None')\n"
            "    check(len(job.results()) == 1, 'one result')\n"
            "    check(400 < r.ttl(job.key) <= 500, r.ttl(job.key))\n"
            "    check(400 < r.ttl('rq:results:' + i) <= 500, 'result ttl')\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'started empty')\n"
            "check(sorted(FinishedJobRegistry('default', connection=r).get_job_ids()) == sorted(ids), 'finished')\n"
            "check(FailedJobRegistry('default', connection=r).get_job_ids() == [], 'no failures')\n"
            "ws = [w for w in Worker.all(connection=r) if w.name == W]\n"
            "check(len(ws) == 1, [w.name for w in Worker.all(connection=r)])\n"
            "w = ws[0]\n"
            "check(w.get_state() == 'idle', w.get_state())\n"
            "check(w.queue_names() == ['default', 'high', 'low'], w.queue_names())\n"
            "check(w.pid == %d, w.pid)\n"
            "check(w.hostname, 'hostname')\n"
            "check(w.birth_date is not None and w.last_heartbeat is not None, 'dates')\n"
            "check(0 < r.ttl(w.key) <= 480, r.ttl(w.key))\n"
            "check(r.sismember('rq:workers:default', w.key), 'in the queue set')\n"
            "check(len(Worker.all(queue=q)) == 1, 'by queue')\n"
            "out = subprocess.run(['/usr/bin/rq', 'info', '--url', url], capture_output=True, text=True)\n"
            "check(out.returncode == 0, out.stderr)\n"
            "check(W in out.stdout and 'idle' in out.stdout, out.stdout)\n"
            "check(re.search(r'default\\s*\\|\\s*0', out.stdout), out.stdout)\n"
            "print('OK')\n", ids, (int)getpid()));
    free(ids);

    /* stop: the worker leaves the sets and its key expires within 60 s */
    intake_down();
    free(py("check(W not in [w.name for w in Worker.all(connection=r)], 'gone')\n"
            "check(not r.sismember('rq:workers', 'rq:worker:' + W), 'set')\n"
            "check(not r.sismember('rq:workers:low', 'rq:worker:' + W), 'queue set')\n"
            "check(TS.match(r.hget('rq:worker:' + W, 'death').decode()), 'death')\n"
            "check(0 < r.ttl('rq:worker:' + W) <= 60, r.ttl('rq:worker:' + W))\n"));
    close(l);
}
END_TEST

/* What must not run ends `failed` with the reason in exc_info, and
 * nothing of it is executed. */
START_TEST(test_failures_with_reasons)
{
    char *dir = nrt_tmpdir("marker"), marker[512];
    snprintf(marker, sizeof(marker), "%s/pwned", dir);

    char *ids = py("a = q.enqueue('os.system', 'touch %s')\n"
                   "b = enqueue(999999)\n"
                   "c = enqueue(1)\n"
                   "r.hset(c.key, 'data', b'this is not a pickle')\n"
                   "d = enqueue(1)\n"
                   "r.hset(d.key, 'data', zlib.compress(pickle.dumps((F, None, (uuid.UUID(int=1),), {}), 5)))\n"
                   "e = q.enqueue(F, 'seven')\n"
                   "print(a.id, b.id, c.id, d.id, e.id)\n", marker);
    char id[5][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s %63s", id[0], id[1], id[2], id[3], id[4]), 5);

    intake_up();
    for (int i = 0; i < 5; i++)
        expect_status(id[i], "failed", 30);
    ck_assert_msg(access(marker, F_OK) != 0, "os.system ran");
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
    ck_assert_int_eq(rint_cmd("ZCARD rq:failed:default"), 5);

    free(py("ids = '%s'.split()\n"
            "want = [\"job function 'os.system' is not allowed (only \" + F + \")\",\n"
            "        'job 999999 does not exist',\n"
            "        'job data is neither a zlib stream',\n"
            "        'pickle opcode 0x93 (STACK_GLOBAL) is not allowed',\n"
            "        'job_id must be a positive integer, not a str']\n"
            "for i, w in zip(ids, want):\n"
            "    job = fetch(i)\n"
            "    check(job.get_status() == 'failed', (i, job.get_status()))\n"
            "    res = job.latest_result()\n"
            "    check(res.type == Result.Type.FAILED, res)\n"
            "    check(w in res.exc_string, (w, res.exc_string))\n"
            "    check(w in job.exc_info, job.exc_info)\n"
            "    check(TS.match(r.hget(job.key, 'ended_at').decode()), 'ended_at')\n"
            "    check(31536000 - 100 < r.ttl(job.key) <= 31536000, r.ttl(job.key))\n"
            "check(sorted(FailedJobRegistry('default', connection=r).get_job_ids()) == sorted(ids), 'failed registry')\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'started')\n"
            "check(FinishedJobRegistry('default', connection=r).get_job_ids() == [], 'finished')\n"
            "out = subprocess.run(['/usr/bin/rq', 'info', '--url', url], capture_output=True, text=True)\n"
            "check(out.returncode == 0, out.stderr)\n", ids));
    free(ids);
    free(dir);
}
END_TEST

/* Jobs needing RQ features the worker does not implement fail with a
 * clear reason; a retry without intervals is fine. */
START_TEST(test_unsupported_features)
{
    long long job = add_job("rq-features", 0);
    char *ids = py("def cb(*a): pass\n"
                   "a = enqueue(%1$lld, on_success=cb)\n"
                   "b = enqueue(%1$lld)\n"
                   "b2 = enqueue(%1$lld, depends_on=b)\n"
                   "c = enqueue(%1$lld, retry=Retry(max=2, interval=30))\n"
                   "d = enqueue(%1$lld, retry=Retry(max=2))\n"
                   "check(b2.get_status() == 'deferred', 'deferred')\n"
                   "print(a.id, b.id, c.id, d.id, b2.id)\n", job);
    char id[5][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s %63s", id[0], id[1], id[2], id[3], id[4]), 5);

    intake_up();
    expect_status(id[0], "failed", 30);
    expect_status(id[1], "failed", 30);
    expect_status(id[2], "failed", 30);
    expect_status(id[3], "finished", 30);

    free(py("a, b, c, d, b2 = '%s'.split()\n"
            "def exc(i): return fetch(i).latest_result().exc_string\n"
            "check('callbacks' in exc(a), exc(a))\n"
            "check('dependent jobs (rq:job:' + b + ':dependents)' in exc(b), exc(b))\n"
            "check('retry_intervals [30' in exc(c) and \"RQ's scheduler\" in exc(c), exc(c))\n"
            "check(fetch(d).retries_left == 2, fetch(d).retries_left)\n"
            "check(fetch(b2).get_status() == 'deferred', 'dependent untouched')\n", ids));
    free(ids);
}
END_TEST

/* Abandoned jobs (a dead worker's wip entries) are cleaned up at start as
 * RQ does: failed, or requeued while retries are left; stale entries of
 * final jobs are dropped; live ones are left alone. */
START_TEST(test_abandoned_cleanup)
{
    long long job = add_job("rq-abandoned", 0);
    /* the run of x died with its worker: its jobs row was left RUNNING */
    long long died = add_job("rq-died-running", 0);
    PQclear(nrt_sql(db, "UPDATE jobs SET status = 'RUNNING', started_at = now() WHERE id = %lld", died));
    char *ids = py("def dead(j, score):\n"
                   "    r.lrem('rq:queue:default', 0, j.id)\n"
                   "    r.hset(j.key, mapping={'status': 'started', 'worker_name': 'dead-worker',\n"
                   "                           'started_at': '2020-01-01T00:00:00.000000Z'})\n"
                   "    r.zadd('rq:wip:default', {j.id: score})\n"
                   "x = enqueue(%2$lld)\n"
                   "dead(x, int(time.time()) - 10)\n"
                   "y = enqueue(%1$lld, retry=Retry(max=2))\n"
                   "dead(y, int(time.time()) - 10)\n"
                   "z = enqueue(%1$lld)\n"
                   "dead(z, int(time.time()) - 10)\n"
                   "r.hset(z.key, 'status', 'finished')\n"
                   "live = enqueue(%1$lld)\n"
                   "dead(live, int(time.time()) + 3600)\n"
                   "r.zadd('rq:wip:default', {'no-such-job': 5})\n"
                   "print(x.id, y.id, z.id, live.id)\n", job, died);
    char id[4][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s", id[0], id[1], id[2], id[3]), 4);

    intake_up();
    expect_status(id[0], "failed", 30);
    expect_status(id[1], "finished", 30);    /* requeued, then run by us */
    /* the row the dead worker left RUNNING ends failed, and says why */
    ck_assert(nrt_wait_sql(db, "FAILED_UNEXPECTED", 15, "SELECT status FROM jobs WHERE id = %lld", died));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM jobs WHERE id = %lld AND completed_at "
                                     "IS NOT NULL", died), 1);

    /* raw checks before any python-rq registry reader (they clean up too) */
    char key[128];
    snprintf(key, sizeof(key), "rq:job:%s", id[2]);
    char *s = hget(key, "status");
    ck_assert_str_eq(s, "finished");
    free(s);
    s = rstr_cmd("ZSCORE rq:wip:default %s", id[2]);
    ck_assert_ptr_null(s);
    s = rstr_cmd("ZSCORE rq:wip:default no-such-job");
    ck_assert_ptr_null(s);
    s = rstr_cmd("ZSCORE rq:wip:default %s", id[3]);
    ck_assert_ptr_nonnull(s);       /* the live one is untouched */
    free(s);
    snprintf(key, sizeof(key), "rq:job:%s", id[3]);
    s = hget(key, "status");
    ck_assert_str_eq(s, "started");
    free(s);
    s = rstr_cmd("ZSCORE rq:failed:default %s", id[2]);
    ck_assert_ptr_null(s);

    free(py("x, y, z, live = '%s'.split()\n"
            "jx = fetch(x)\n"
            "check(jx.get_status() == 'failed', jx.get_status())\n"
            "check(jx.latest_result().exc_string == 'worker died (abandoned job)', jx.latest_result().exc_string)\n"
            "check(x in FailedJobRegistry('default', connection=r).get_job_ids(), 'failed registry')\n"
            "jy = fetch(y)\n"
            "check(jy.retries_left == 1, jy.retries_left)\n"
            "check(jy.worker_name == W, jy.worker_name)\n"
            "check(fetch(z).get_status() == 'finished', 'z')\n"
            "check(z not in FailedJobRegistry('default', connection=r).get_job_ids(), 'z not failed')\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [live], 'live stays')\n", ids));
    free(ids);
}
END_TEST

/* A run held up (its job row locked in PostgreSQL): the worker shows busy
 * with it, heartbeats move its deadline, a stop request takes no new job,
 * and the stop waits for the run and records it. */
START_TEST(test_busy_heartbeat_and_stop)
{
    long long job = add_job("rq-slow", 0);
    char *a = py("print(enqueue(%lld).id)\n", job), key[128];

    PQclear(nrt_sql(db, "BEGIN"));
    PQclear(nrt_sql(db, "SELECT id FROM jobs WHERE id = %lld FOR UPDATE", job));
    intake_up();
    expect_status(a, "started", 30);
    free(py("w = Worker.find_by_key('rq:worker:' + W, connection=r)\n"
            "for _ in range(50):\n"
            "    if w.get_state() == 'busy': break\n"
            "    time.sleep(0.1); w.refresh()\n"
            "check(w.get_state() == 'busy' and w.get_current_job_id() == '%s', w.get_state())\n", a));

    snprintf(key, sizeof(key), "rq:job:%s", a);
    char *hb1 = hget(key, "last_heartbeat");
    char *sc1 = rstr_cmd("ZSCORE rq:wip:default %s", a);
    ck_assert_ptr_nonnull(sc1);
    /* the next heartbeat, one period (15 s) on: waited for, 30 s at most */
    char *hb2 = NULL, *sc2 = NULL;
    uint64_t hb_t0 = nr_mono_ns();
    for (;;) {
        free(hb2);
        hb2 = hget(key, "last_heartbeat");
        if (strcmp(hb1, hb2) != 0 || nr_mono_ns() - hb_t0 > 30000000000ull)
            break;
        usleep(100000);
    }
    sc2 = rstr_cmd("ZSCORE rq:wip:default %s", a);
    ck_assert_str_ne(hb1, hb2);
    ck_assert_msg(atoll(sc2) >= atoll(sc1) + 14, "wip deadline %s -> %s", sc1, sc2);
    ck_assert_int_gt(rint_cmd("TTL rq:worker:" WORKER), 470);
    free(hb1); free(hb2); free(sc1); free(sc2);

    /* stop requested: a job queued now is not taken */
    nr_rq_intake_stop(intake);
    char *b = py("print(enqueue(%lld).id)\n", job);
    sleep(3);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 1);

    /* the run goes on once the row is free; stop waits and records it */
    PQclear(nrt_sql(db, "COMMIT"));
    nr_rq_intake_free(intake);
    intake = NULL;
    snprintf(key, sizeof(key), "rq:job:%s", a);
    char *st = hget(key, "status");
    ck_assert_str_eq(st, "finished");
    free(st);
    snprintf(key, sizeof(key), "rq:job:%s", b);
    st = hget(key, "status");
    ck_assert_str_eq(st, "queued");
    free(st);
    free(py("check(W not in [w.name for w in Worker.all(connection=r)], 'dead')\n"
            "check(q.job_ids == ['%s'], q.job_ids)\n", b));
    free(a);
    free(b);
}
END_TEST

/* `rq suspend` holds intake; `rq resume` lets it go on. */
START_TEST(test_suspend)
{
    long long job = add_job("rq-suspend", 0);
    char *id = py("from rq.suspension import suspend\n"
                  "suspend(r)\n"
                  "print(enqueue(%lld).id)\n", job);

    intake_up();
    ck_assert_msg(!wait_status(id, "finished", 3), "ran while suspended");
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 1);
    free(py("from rq.suspension import resume\nresume(r)\n"));
    expect_status(id, "finished", 30);
    free(id);
}
END_TEST

/* A run whose results PostgreSQL refuses (a trigger raises) is not
 * recorded: RQ-wise the call raised, so the job is retried while it has
 * retries left, then fails with the reason. */
START_TEST(test_not_recorded)
{
    int l = listen_on(nrt_lo("4.3"), 22);
    long long tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('nr', 'device') RETURNING id");
    add_device("rq-refused", nrt_lo("4.3"), tag);
    long long job = add_job("rq-not-recorded", tag);
    PQclear(nrt_sql(db, "CREATE FUNCTION nrt_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'nrt: results refused'; END $$"));
    PQclear(nrt_sql(db, "CREATE TRIGGER nrt_refuse BEFORE INSERT ON job_results "
                        "FOR EACH ROW EXECUTE FUNCTION nrt_refuse()"));
    char *id = py("print(enqueue(%lld, retry=Retry(max=1)).id)\n", job);

    intake_up();
    expect_status(id, "failed", 60);
    free(py("job = fetch('%s')\n"
            "check(job.retries_left == 0, job.retries_left)\n"
            "check('nrt: results refused' in job.latest_result().exc_string,\n"
            "      job.latest_result().exc_string)\n"
            "check(len(job.results()) == 1, 'one failure: the retry was silent')\n", id));
    free(id);
    close(l);
}
END_TEST

/* PostgreSQL away: the run waits for it (the runner's policy), so the RQ
 * job stays started and heart-beaten, never failed; a stop past the grace
 * time hands it back to its queue for another worker. */
START_TEST(test_db_away)
{
    char *id = py("print(enqueue(3).id)\n"), key[128];

    intake_up_with("postgresql://postgres@127.0.0.1:1/netraven?connect_timeout=2",
                   "NETRAVEN_WORKER__SHUTDOWN_GRACE_SECONDS=1");
    expect_status(id, "started", 30);
    ck_assert_msg(!wait_status(id, "failed", 3), "failed while the run waits");
    free(py("check(StartedJobRegistry('default', connection=r).get_job_ids() == ['%s'], 'started')\n", id));
    nr_rq_intake_free(intake);
    intake = NULL;
    snprintf(key, sizeof(key), "rq:job:%s", id);
    char *st = hget(key, "status");
    ck_assert_str_eq(st, "queued");
    free(st);
    ck_assert_ptr_null(rstr_cmd("ZSCORE rq:wip:default %s", id));
    free(py("check(Queue('default', connection=r).job_ids[0] == '%s', 'back at the front')\n", id));

    /* a dead worker's leftover of the same job: the cleanup fails it and
     * names the NetRaven job, for its jobs row */
    rint_cmd("LREM rq:queue:default 0 %s", id);
    rint_cmd("HSET %s status started", key);
    rint_cmd("ZADD rq:wip:default 1 %s", id);
    struct nr_rq *rq = nr_rq_connect(&cfg, "nrt-later", NULL);
    size_t failed = 0, requeued = 0;
    struct nr_rq_died died = { 0 };
    ck_assert_int_eq(nr_rq_cleanup(rq, "default", &failed, &requeued, &died), 0);
    ck_assert_uint_eq(failed, 1);
    ck_assert_uint_eq(requeued, 0);
    ck_assert_uint_eq(died.n, 1);
    ck_assert_int_eq(died.job_ids[0], 3);
    free(died.job_ids);
    nr_rq_free(rq);
    free(py("job = fetch('%s')\n"
            "check(job.get_status() == 'failed', job.get_status())\n"
            "check(job.latest_result().exc_string == 'worker died (abandoned job)', 'reason')\n", id));
    free(id);
}
END_TEST

/* The protocol layer alone: every write of docs/python-rq.md §4-§6, read
 * back raw and by python-rq. */
START_TEST(test_protocol_writes)
{
    char *ids = py("a = enqueue(11, result_ttl=-1)\n"
                   "b = enqueue(12, result_ttl=0)\n"
                   "c = enqueue(13, result_ttl=100, failure_ttl=200)\n"
                   "d = enqueue(14, retry=Retry(max=2))\n"
                   "e = enqueue(15, failure_ttl=-1)\n"
                   "r.hset(a.key, 'meta', pickle.dumps({'interval': 60}))\n"
                   "print(a.id, b.id, c.id, d.id, e.id)\n");
    char id[5][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s %63s", id[0], id[1], id[2], id[3], id[4]), 5);
    load_cfg(nrt_db_url(), "NETRAVEN_WORKER__RQ_QUEUES=high,default");

    struct nr_rq *rq = nr_rq_connect(&cfg, "nrt-proto", NULL);
    ck_assert_msg(rq->err == 0, "connect: %s", rq->errstr);
    ck_assert_uint_eq(rq->queues.n, 2);
    ck_assert_int_eq(nr_rq_worker_register(rq), 0);
    ck_assert_int_eq(nr_rq_suspended(rq), 0);

    struct nr_rq_job job;
    long long jid = 0;
    char *reason = NULL;
    time_t now;

    /* A: take, check, start */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[0]);
    ck_assert_str_eq(job.queue, "default");
    ck_assert_int_eq(job.result_ttl, -1);
    ck_assert_int_eq(job.failure_ttl, 31536000);
    ck_assert_int_eq(job.timeout, 180);         /* RQ's default */
    ck_assert_int_eq(nr_rq_job_check(&job, &jid, &reason), 0);
    ck_assert_int_eq(jid, 11);
    now = time(NULL);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    char *sc = rstr_cmd("ZSCORE rq:wip:default %s", id[0]);
    ck_assert_ptr_nonnull(sc);
    ck_assert_msg(atoll(sc) >= now + 89 && atoll(sc) <= now + 92, "wip score %s", sc);
    free(sc);
    ck_assert_int_eq(nr_rq_worker_state(rq, job.id), 0);
    free(py("j = fetch('%1$s')\n"
            "check(j.get_status() == 'started', j.get_status())\n"
            "check(j.worker_name == 'nrt-proto', j.worker_name)\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == ['%1$s'], 'started')\n"
            "w = Worker.find_by_key('rq:worker:nrt-proto', connection=r)\n"
            "check(w.get_state() == 'busy' and w.get_current_job_id() == '%1$s', w.get_state())\n"
            "check(w.queue_names() == ['high', 'default'], w.queue_names())\n", id[0]));

    /* heartbeat moves last_heartbeat and the deadline */
    char key[128];
    snprintf(key, sizeof(key), "rq:job:%s", id[0]);
    char *hb1 = hget(key, "last_heartbeat");
    usleep(1100000);
    const struct nr_rq_job *jobs[] = { &job };
    ck_assert_int_eq(nr_rq_heartbeat(rq, jobs, 1), 0);
    char *hb2 = hget(key, "last_heartbeat");
    ck_assert_str_ne(hb1, hb2);
    free(hb1);
    free(hb2);
    sc = rstr_cmd("ZSCORE rq:wip:default %s", id[0]);
    ck_assert_msg(atoll(sc) >= now + 90, "wip score %s after the heartbeat", sc);
    free(sc);

    /* finish with result_ttl -1: kept forever */
    ck_assert_int_eq(nr_rq_finish(rq, &job), 0);
    ck_assert_int_eq(nr_rq_worker_state(rq, NULL), 0);
    ck_assert_int_eq(rint_cmd("TTL %s", key), -1);
    ck_assert_int_eq(rint_cmd("TTL rq:results:%s", id[0]), -1);
    sc = rstr_cmd("ZSCORE rq:finished:default %s", id[0]);
    ck_assert_str_eq(sc, "inf");
    free(sc);
    nr_rq_job_clear(&job);
    free(py("j = fetch('%1$s')\n"
            "check(j.get_status() == 'finished', 'A finished')\n"
            "check(j.meta == {'interval': 60}, j.meta)\n"
            "w = Worker.find_by_key('rq:worker:nrt-proto', connection=r)\n"
            "check(w.get_state() == 'idle' and w.get_current_job_id() is None, w.get_state())\n",
            id[0]));

    /* B: result_ttl 0: the job goes on success */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[1]);
    ck_assert_int_eq(job.result_ttl, 0);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    ck_assert_int_eq(nr_rq_finish(rq, &job), 0);
    ck_assert_int_eq(rint_cmd("EXISTS rq:job:%s", id[1]), 0);
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
    ck_assert_int_eq(rint_cmd("ZCARD rq:finished:default"), 1);
    nr_rq_job_clear(&job);

    /* C: failure with failure_ttl 200 */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[2]);
    ck_assert_int_eq(job.result_ttl, 100);
    ck_assert_int_eq(job.failure_ttl, 200);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    bool requeued = true;
    ck_assert_int_eq(nr_rq_fail(rq, &job, "it broke: \xc3\xa9 \"quoted\"", true, &requeued), 0);
    ck_assert(!requeued);
    now = time(NULL);
    long long ttl = rint_cmd("TTL rq:job:%s", id[2]);
    ck_assert_msg(ttl > 190 && ttl <= 200, "job ttl %lld", ttl);
    ttl = rint_cmd("TTL rq:results:%s", id[2]);
    ck_assert_msg(ttl > 190 && ttl <= 200, "result ttl %lld", ttl);
    sc = rstr_cmd("ZSCORE rq:failed:default %s", id[2]);
    ck_assert_msg(atoll(sc) >= now + 198 && atoll(sc) <= now + 201, "failed score %s", sc);
    free(sc);
    nr_rq_job_clear(&job);
    free(py("j = fetch('%1$s')\n"
            "check(j.get_status() == 'failed', 'C failed')\n"
            "check(j.latest_result().exc_string == 'it broke: \\u00e9 \"quoted\"', j.latest_result().exc_string)\n"
            "check(j.exc_info == 'it broke: \\u00e9 \"quoted\"', j.exc_info)\n", id[2]));

    /* D: retries left: requeued, retries_left - 1 */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[3]);
    ck_assert_int_eq(job.retries_left, 2);
    ck_assert_int_eq(nr_rq_job_check(&job, &jid, &reason), 0);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    ck_assert_int_eq(nr_rq_fail(rq, &job, "transient", true, &requeued), 0);
    ck_assert(requeued);
    nr_rq_job_clear(&job);
    free(py("j = fetch('%1$s')\n"
            "check(j.get_status() == 'queued' and j.retries_left == 1, (j.get_status(), j.retries_left))\n"
            "check(q.job_ids == ['%2$s', '%1$s'], q.job_ids)\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'not started')\n",
            id[3], id[4]));

    /* E: failure_ttl -1: kept forever */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[4]);
    ck_assert_int_eq(job.failure_ttl, -1);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    ck_assert_int_eq(nr_rq_fail(rq, &job, "kept", false, NULL), 0);
    ck_assert_int_eq(rint_cmd("TTL rq:job:%s", id[4]), -1);
    ck_assert_int_eq(rint_cmd("TTL rq:results:%s", id[4]), -1);
    sc = rstr_cmd("ZSCORE rq:failed:default %s", id[4]);
    ck_assert_str_eq(sc, "inf");
    free(sc);
    nr_rq_job_clear(&job);

    /* D again, released at the front of its queue (shutdown) */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    ck_assert_str_eq(job.id, id[3]);
    ck_assert_int_eq(nr_rq_start(rq, &job), 0);
    ck_assert_int_eq(nr_rq_release(rq, &job), 0);
    nr_rq_job_clear(&job);
    free(py("j = fetch('%1$s')\n"
            "check(j.get_status() == 'queued' and q.job_ids == ['%1$s'], q.job_ids)\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'not started')\n",
            id[3]));

    /* nothing queued: NR_NOTFOUND after the timeout; a job hash that is
     * gone is skipped */
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), 0);
    nr_rq_job_clear(&job);
    rint_cmd("RPUSH rq:queue:high gone-job");
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), NR_NOTFOUND);
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), NR_NOTFOUND);

    ck_assert_int_eq(nr_rq_worker_death(rq), 0);
    free(py("check('nrt-proto' not in [w.name for w in Worker.all(connection=r)], 'dead')\n"));
    nr_rq_free(rq);
    nr_rq_free(NULL);
    free(ids);
}
END_TEST

/* ------------------------------------------------------- rq-scheduler */

/* NetRaven's scheduler is rq-scheduler (not packaged by Debian), so its
 * steps are reproduced here with python-rq's own API, line for line after
 * rq-scheduler 0.14's scheduler.py: _create_job (a job of status
 * scheduled, kept in rq:scheduler:scheduled_jobs), schedule (meta interval
 * and repeat, result_ttl -1), cron (meta cron_string and
 * use_local_timezone, result_ttl -1), enqueue_at, and enqueue_job, which
 * moves a due job to its queue under the same id every time and re-
 * schedules it itself from its meta. */
static const char sched_py[] =
    "from rq.job import JobStatus\n"
    "SCHED = 'rq:scheduler:scheduled_jobs'\n"
    "def s_create(func, args, id, meta, result_ttl, description):\n"
    "    job = Job.create(func, args=args, kwargs={}, connection=r, result_ttl=result_ttl,\n"
    "                     ttl=None, id=id, description=description, timeout=None, meta=meta,\n"
    "                     depends_on=None, status=JobStatus.SCHEDULED)\n"
    "    job.origin = 'default'\n"
    "    return job\n"
    "def s_schedule(func, args, id, interval=None, repeat=None, meta=None):\n"
    "    job = s_create(func, args, id, meta, -1 if interval is not None else None, 'interval')\n"
    "    if interval is not None: job.meta['interval'] = int(interval)\n"
    "    if repeat is not None: job.meta['repeat'] = int(repeat)\n"
    "    job.save()\n"
    "    r.zadd(SCHED, {job.id: int(time.time())})\n"
    "    return job\n"
    "def s_cron(cron_string, func, args, id, repeat=None, meta=None):\n"
    "    job = s_create(func, args, id, meta, -1, 'cron')\n"
    "    job.meta['cron_string'] = cron_string\n"
    "    job.meta['use_local_timezone'] = False\n"
    "    if repeat is not None: job.meta['repeat'] = int(repeat)\n"
    "    job.save()\n"
    "    r.zadd(SCHED, {job.id: int(time.time())})\n"
    "    return job\n"
    "def s_enqueue_at(func, args, id, meta=None):\n"
    "    job = s_create(func, args, id, meta, None, 'onetime')\n"
    "    job.save()\n"
    "    r.zadd(SCHED, {job.id: int(time.time())})\n"
    "    return job\n"
    "def s_due(id):\n"
    "    job = Job.fetch(id, connection=r)\n"
    "    interval = job.meta.get('interval', None)\n"
    "    repeat = job.meta.get('repeat', None)\n"
    "    cron_string = job.meta.get('cron_string', None)\n"
    "    if repeat:\n"
    "        job.meta['repeat'] = int(repeat) - 1\n"
    "    queue = Queue.from_queue_key('rq:queue:' + job.origin, connection=r)\n"
    "    queue.enqueue_job(job, at_front=False)\n"
    "    r.zrem(SCHED, job.id)\n"
    "    if interval:\n"
    "        if repeat is not None and job.meta['repeat'] == 0: return\n"
    "        r.zadd(SCHED, {job.id: int(time.time()) + int(interval)})\n"
    "    elif cron_string:\n"
    "        if repeat is not None and job.meta['repeat'] == 0: return\n"
    "        r.zadd(SCHED, {job.id: int(time.time()) + 300})\n";

/* run_job entries as the scheduler makes them (interval with repeat,
 * cron, one-time; meta as NetRaven's job_registration.py gives it) run,
 * whatever their meta, and their meta is left as the scheduler wrote it;
 * an interval job enqueued again under the same id runs again. */
START_TEST(test_scheduler_run_job)
{
    long long j_int = add_job("rq-sched-interval", 0);
    long long j_cron = add_job("rq-sched-cron", 0);
    long long j_once = add_job("rq-sched-once", 0);
    char key[128], *s;

    free(py("%1$s"
            "s_schedule(F, [%2$lld], 'netraven_db_job_%2$lld', interval=60, repeat=2,\n"
            "           meta={'db_job_id': %2$lld, 'schedule_type': 'interval'})\n"
            "s_cron('*/5 * * * *', F, [%3$lld], 'netraven_db_job_%3$lld',\n"
            "       meta={'db_job_id': %3$lld, 'schedule_type': 'cron'})\n"
            "s_enqueue_at(F, [%4$lld], 'netraven_db_job_%4$lld',\n"
            "             meta={'db_job_id': %4$lld, 'schedule_type': 'onetime'})\n"
            "for j in (%2$lld, %3$lld, %4$lld):\n"
            "    check(fetch('netraven_db_job_%%d' %% j).get_status() == 'scheduled', 'scheduled')\n"
            "    s_due('netraven_db_job_%%d' %% j)\n"
            "    check(fetch('netraven_db_job_%%d' %% j).get_status() == 'queued', 'queued')\n"
            "job = fetch('netraven_db_job_%2$lld')\n"
            "check(job.meta == {'db_job_id': %2$lld, 'schedule_type': 'interval', 'interval': 60,\n"
            "                   'repeat': 1}, job.meta)\n",
            sched_py, j_int, j_cron, j_once));

    intake_up();
    char id[3][64];
    snprintf(id[0], sizeof(id[0]), "netraven_db_job_%lld", j_int);
    snprintf(id[1], sizeof(id[1]), "netraven_db_job_%lld", j_cron);
    snprintf(id[2], sizeof(id[2]), "netraven_db_job_%lld", j_once);
    for (int i = 0; i < 3; i++)
        expect_status(id[i], "finished", 60);
    ck_assert_str_eq(s = db_status(j_int), NR_STATUS_NO_DEVICES); free(s);
    ck_assert_str_eq(s = db_status(j_cron), NR_STATUS_NO_DEVICES); free(s);
    ck_assert_str_eq(s = db_status(j_once), NR_STATUS_NO_DEVICES); free(s);
    /* periodic jobs keep their result forever (result_ttl -1), the
     * one-time one for RQ's default 500 s */
    snprintf(key, sizeof(key), "rq:job:%s", id[0]);
    ck_assert_int_eq(rint_cmd("TTL %s", key), -1);
    snprintf(key, sizeof(key), "rq:job:%s", id[1]);
    ck_assert_int_eq(rint_cmd("TTL %s", key), -1);
    snprintf(key, sizeof(key), "rq:job:%s", id[2]);
    ck_assert_int_gt(rint_cmd("TTL %s", key), 400);
    /* the scheduler's own set is the scheduler's: untouched */
    ck_assert_int_eq(rint_cmd("ZCARD rq:scheduler:scheduled_jobs"), 2);

    free(py("def res(i): return fetch(i).latest_result()\n"
            "a, b, c = '%1$s', '%2$s', '%3$s'\n"
            "check(fetch(a).meta == {'db_job_id': %4$lld, 'schedule_type': 'interval', 'interval': 60,\n"
            "                        'repeat': 1}, fetch(a).meta)\n"
            "check(fetch(b).meta == {'db_job_id': %5$lld, 'schedule_type': 'cron',\n"
            "                        'cron_string': '*/5 * * * *', 'use_local_timezone': False},\n"
            "      fetch(b).meta)\n"
            "check(fetch(c).meta == {'db_job_id': %6$lld, 'schedule_type': 'onetime'}, fetch(c).meta)\n"
            "for i in (a, b, c):\n"
            "    check(res(i).type == Result.Type.SUCCESSFUL and res(i).return_value is None, res(i))\n"
            "    check(fetch(i).func_name == F and fetch(i).args == [int(i.rsplit('_', 1)[1])],\n"
            "          (fetch(i).func_name, fetch(i).args))\n"
            "check(sorted(FinishedJobRegistry('default', connection=r).get_job_ids()) == sorted([a, b, c]),\n"
            "      'finished registry')\n"
            "check(FailedJobRegistry('default', connection=r).get_job_ids() == [], 'no failures')\n",
            id[0], id[1], id[2], j_int, j_cron, j_once));

    /* the next interval: the scheduler enqueues the same id again (its
     * last repeat); it runs again and has two results */
    long long first = nrt_sql_int(db, "SELECT extract(epoch FROM started_at) * 1000000 FROM jobs "
                                      "WHERE id = %lld", j_int);
    free(py("%s"
            "s_due('%s')\n"
            "check(r.zscore(SCHED, '%s') is None, 'repeat 0: not re-scheduled')\n",
            sched_py, id[0], id[0]));
    expect_status(id[0], "finished", 60);
    ck_assert_int_gt(nrt_sql_int(db, "SELECT extract(epoch FROM started_at) * 1000000 FROM jobs "
                                     "WHERE id = %lld", j_int), first);
    free(py("job = fetch('%s')\n"
            "check(len(job.results()) == 2, job.results())\n"
            "check(job.meta['repeat'] == 0 and job.meta['interval'] == 60, job.meta)\n"
            "check(job.worker_name == W, job.worker_name)\n", id[0]));
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
}
END_TEST

static long long add_bare_device(const char *name, const char *ip)
{
    return nrt_sql_int(db, "INSERT INTO devices (hostname, ip_address, device_type, port) "
                           "VALUES ('%s', '%s', 'cisco_ios', 22) RETURNING id", name, ip);
}

/* A snapshot retrieved hours_ago hours ago. */
static long long add_snapshot(long long device, int hours_ago)
{
    return nrt_sql_int(db, "INSERT INTO device_configurations (device_id, config_data, data_hash, "
                           "retrieved_at, config_metadata) VALUES (%lld, 'hostname x %d', "
                           "md5('%lld-%d'), now() - interval '%d hours', '{}') RETURNING id",
                           device, hours_ago, device, hours_ago, hours_ago);
}

static char *snapshot_ids(long long device)
{
    return nrt_sql_str(db, "SELECT COALESCE(string_agg(id::text, ',' ORDER BY id), '') "
                           "FROM device_configurations WHERE device_id = %lld", device);
}

/* The scheduler's retention job, prune_old_device_configs(3), as NetRaven
 * schedules it: every device keeps its 3 newest snapshots, the job ends
 * finished in RQ, and the job-less logs rows are those of NetRaven's
 * Python worker.  Then: a keyword call, a refused retain_count, and a
 * database that refuses the deletion. */
START_TEST(test_retention_prune)
{
    long long a = add_bare_device("rq-prune-a", nrt_lo("5.1"));
    long long b = add_bare_device("rq-prune-b", nrt_lo("5.2"));
    add_bare_device("rq-prune-none", nrt_lo("5.3"));
    long long sa[5], sb[2];
    char want[256], *s;

    /* inserted out of order: age decides, not id */
    int ages_a[5] = { 30, 2, 50, 1, 40 };
    for (int i = 0; i < 5; i++)
        sa[i] = add_snapshot(a, ages_a[i]);
    sb[0] = add_snapshot(b, 5);
    sb[1] = add_snapshot(b, 6);

    free(py("%s"
            "s_schedule(FP, [3], 'prune_old_device_configs', interval=86400, repeat=None,\n"
            "           meta={'system_job': True})\n"
            "s_due('prune_old_device_configs')\n", sched_py));
    intake_up();
    expect_status("prune_old_device_configs", "finished", 60);

    /* the newest 3 of a (1, 2 and 30 hours old); both of b */
    snprintf(want, sizeof(want), "%lld,%lld,%lld", sa[0], sa[1], sa[3]);
    ck_assert_str_eq(s = snapshot_ids(a), want); free(s);
    snprintf(want, sizeof(want), "%lld,%lld", sb[0], sb[1]);
    ck_assert_str_eq(s = snapshot_ids(b), want); free(s);

    /* NetRaven's rows: no job, no device, in this order */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE source = "
                                     "'prune_old_device_configs'"), 3);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE source = "
                                     "'prune_old_device_configs' AND log_type = 'system' AND "
                                     "level = 'INFO' AND job_id IS NULL AND device_id IS NULL "
                                     "AND meta = '{}'::jsonb"), 3);
    s = nrt_sql_str(db, "SELECT string_agg(message, '|' ORDER BY id) FROM logs "
                        "WHERE source = 'prune_old_device_configs'");
    snprintf(want, sizeof(want),
             "[Retention] Starting config prune for 3 devices (retain_count=3)|"
             "[Retention] Pruned 2 configs for device rq-prune-a (IDs: [%lld, %lld])|"
             "[Retention] Config prune complete. Total configs deleted: 2", sa[4], sa[2]);
    ck_assert_str_eq(s, want);
    free(s);

    free(py("job = fetch('prune_old_device_configs')\n"
            "check(job.get_status() == 'finished', job.get_status())\n"
            "check(job.func_name == FP and job.args == [3], (job.func_name, job.args))\n"
            "res = job.latest_result()\n"
            "check(res.type == Result.Type.SUCCESSFUL and res.return_value is None, res)\n"
            "check(job.meta == {'system_job': True, 'interval': 86400}, job.meta)\n"
            "check(job.worker_name == W, job.worker_name)\n"
            "check(r.ttl(job.key) == -1, r.ttl(job.key))\n"
            "check(FinishedJobRegistry('default', connection=r).get_job_ids() == [job.id], 'finished')\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'started')\n"
            "w = Worker.find_by_key('rq:worker:' + W, connection=r)\n"
            "check(w.get_state() == 'idle', w.get_state())\n"));

    /* the keyword form, the default, and what may not run */
    char *ids = py("k = q.enqueue(FP, retain_count=2)\n"
                   "d = q.enqueue(FP)\n"
                   "z = q.enqueue(FP, 0)\n"
                   "t = q.enqueue(FP, 3, 4)\n"
                   "print(k.id, d.id, z.id, t.id)\n");
    char id[4][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s", id[0], id[1], id[2], id[3]), 4);
    expect_status(id[0], "finished", 60);
    expect_status(id[1], "finished", 60);
    expect_status(id[2], "failed", 30);
    expect_status(id[3], "failed", 30);
    snprintf(want, sizeof(want), "%lld,%lld", sa[1], sa[3]);
    ck_assert_str_eq(s = snapshot_ids(a), want); free(s);
    snprintf(want, sizeof(want), "%lld,%lld", sb[0], sb[1]);
    ck_assert_str_eq(s = snapshot_ids(b), want); free(s);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE message = "
                                     "'[Retention] Starting config prune for 3 devices "
                                     "(retain_count=10)'"), 1);
    free(py("z, t = '%s', '%s'\n"
            "def exc(i): return fetch(i).latest_result().exc_string\n"
            "check('retain_count must be a positive integer, not 0' in exc(z), exc(z))\n"
            "check('takes at most one argument, retain_count; got 2 positional' in exc(t), exc(t))\n",
            id[2], id[3]));
    free(ids);

    /* the database refuses: the job fails with the reason, NetRaven's
     * error row says why, nothing of that device went */
    add_snapshot(b, 7);
    PQclear(nrt_sql(db, "CREATE FUNCTION nrt_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN RAISE EXCEPTION 'nrt: prune refused'; END $$"));
    PQclear(nrt_sql(db, "CREATE TRIGGER nrt_refuse_prune BEFORE DELETE ON device_configurations "
                        "FOR EACH ROW EXECUTE FUNCTION nrt_refuse()"));
    char *f = py("print(q.enqueue(FP, 1).id)\n");
    expect_status(f, "failed", 60);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations "
                                     "WHERE device_id = %lld", b), 3);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE source = "
                                     "'prune_old_device_configs' AND level = 'ERROR' AND "
                                     "log_type = 'system' AND job_id IS NULL AND "
                                     "message LIKE '[Retention] Error during config prune: %%"
                                     "nrt: prune refused%%' AND meta->>'error' LIKE "
                                     "'%%nrt: prune refused%%'"), 1);
    free(py("e = fetch('%s').latest_result().exc_string\n"
            "check(FP + ' failed: ' in e and 'nrt: prune refused' in e, e)\n", f));
    free(f);
}
END_TEST

/* The store's step alone: a keep below 1 still keeps the newest, ties on
 * retrieved_at go by id, and a device with nothing to delete gets no row. */
START_TEST(test_prune_keeps_newest)
{
    long long a = add_bare_device("rq-keep", nrt_lo("5.9"));
    long long old = add_snapshot(a, 9);
    long long t1 = add_snapshot(a, 3);
    long long t2 = nrt_sql_int(db, "INSERT INTO device_configurations (device_id, config_data, "
                                   "data_hash, retrieved_at, config_metadata) SELECT %lld, 'x', "
                                   "'y', retrieved_at, '{}' FROM device_configurations WHERE id = "
                                   "%lld RETURNING id", a, t1);
    struct nr_store *st = nr_store_connect(nrt_db_url());
    long long deleted = -1;
    char *ids = NULL, want[64], *s;

    ck_assert_msg(st->err == 0, "%s", st->errstr);
    ck_assert_int_eq(nr_store_config_prune(st, a, 0, &deleted, &ids), 0);
    ck_assert_int_eq(deleted, 2);
    snprintf(want, sizeof(want), "%lld, %lld", t1, old);
    ck_assert_str_eq(ids, want);
    free(ids);
    snprintf(want, sizeof(want), "%lld", t2);
    ck_assert_str_eq(s = snapshot_ids(a), want); free(s);

    ck_assert_int_eq(nr_store_config_prune(st, a, 1, &deleted, &ids), 0);
    ck_assert_int_eq(deleted, 0);
    ck_assert_str_eq(ids, "");
    free(ids);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs"), 1);
    nr_store_free(st);
}
END_TEST

/* A retention job still running past the grace time (its DELETE waits on
 * a row lock) does not hold up the stop: its job goes back to the front of
 * its queue, and the statement under way still ends in one piece. */
START_TEST(test_prune_stop)
{
    long long a = add_bare_device("rq-prune-stop", nrt_lo("5.20"));
    for (int i = 1; i <= 3; i++)
        add_snapshot(a, i);
    PQclear(nrt_sql(db, "BEGIN"));
    PQclear(nrt_sql(db, "SELECT id FROM device_configurations WHERE device_id = %lld FOR UPDATE", a));

    char *id = py("print(q.enqueue(FP, 1).id)\n"), key[128];
    intake_up_with(nrt_db_url(), "NETRAVEN_WORKER__SHUTDOWN_GRACE_SECONDS=1");
    expect_status(id, "started", 30);
    sleep(1);
    uint64_t t0 = nr_mono_ns();
    nr_rq_intake_free(intake);
    intake = NULL;
    ck_assert_msg(nr_mono_ns() - t0 < 5000000000ull, "stop took %.1f s",
                  (double)(nr_mono_ns() - t0) / 1e9);
    snprintf(key, sizeof(key), "rq:job:%s", id);
    char *st = hget(key, "status");
    ck_assert_str_eq(st, "queued");
    free(st);
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
    free(py("check(q.job_ids == ['%s'], q.job_ids)\n", id));

    /* the lock goes: the deletion under way completes, with its row */
    PQclear(nrt_sql(db, "COMMIT"));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM device_configurations "
                                        "WHERE device_id = %lld", a));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE message LIKE "
                                        "'[Retention] Pruned 2 configs for device rq-prune-stop%%'"));
    free(id);
}
END_TEST


/* ------------------------------------------------ refusals and recovery */

/* Lines of the log file holding s. */
static int count_lines(const char *path, const char *s)
{
    char *text = nrt_read_file(path), *p = text;
    int n = 0;

    ck_assert_ptr_nonnull(text);
    for (char *line = p; line && *line; line = p) {
        p = strchr(line, '\n');
        if (p)
            *p++ = '\0';
        n += strstr(line, s) != NULL;
    }
    free(text);
    return n;
}

static int count_all_lines(const char *path)
{
    return count_lines(path, "");
}

/* Wrong-typed queue keys (`SET rq:queue:default x`, issue 10 defect 6):
 * the move from each is refused, said once per queue, and tried again
 * with backoff, not in a loop (it was ~140,000 lines in 10 s); the other
 * queue is served meanwhile; once the keys are right again, it is said
 * once per queue and their jobs run. */
START_TEST(test_wrongtype_backoff)
{
    char *dir = nrt_tmpdir("rqlog"), path[512], extra[1024];
    long long job = add_job("rq-wrongtype", 0);

    snprintf(path, sizeof(path), "%s/w.log", dir);
    snprintf(extra, sizeof(extra), "NETRAVEN_LOGGING__FILE=%s\n"
             "NETRAVEN_LOGGING__ROUTES__SYSTEM=file\nNETRAVEN_LOGGING__ROUTES__JOB=file\n"
             "NETRAVEN_LOGGING__ROUTES__CONNECTION=file", path);
    load_cfg(nrt_db_url(), extra);
    ck_assert_int_eq(nr_log_init(&cfg), 0);

    /* default is the queue the idle wait blocks on: it must be skipped */
    ck_assert_int_eq(rint_cmd("SADD rq:queues rq:queue:default rq:queue:low"), 2);
    char *s = rstr_cmd("SET rq:queue:default x");
    free(s);
    s = rstr_cmd("SET rq:queue:low x");
    free(s);
    char *hi = py("print(Queue('high', connection=r).enqueue(F, %lld).id)\n", job);

    intake_start();
    uint64_t t0 = nr_mono_ns();
    expect_status(hi, "finished", 30);
    /* five seconds of refusals: the backoff has tried each about 4 times */
    double left = 5.0 - (double)(nr_mono_ns() - t0) / 1e9;
    if (left > 0)
        usleep((useconds_t)(left * 1e6));
    ck_assert_int_eq(nr_log_flush(10), 0);
    ck_assert_int_eq(count_lines(path, "Redis refuses taking jobs from queue default (redis: "
                                       "LMOVE from queue default refused: WRONGTYPE"), 1);
    ck_assert_int_eq(count_lines(path, "Redis refuses taking jobs from queue low"), 1);
    ck_assert_int_eq(count_lines(path, "refuse"), 2);
    ck_assert_int_eq(count_lines(path, "Redis accepts"), 0);
    int lines = count_all_lines(path);
    ck_assert_msg(lines < 40, "%d log lines in 5 s", lines);

    /* the keys are lists again: their jobs run, and that is said once */
    rint_cmd("DEL rq:queue:default rq:queue:low");
    char *ids = py("a = enqueue(%1$lld)\n"
                   "b = Queue('low', connection=r).enqueue(F, %1$lld)\n"
                   "print(a.id, b.id)\n", job);
    char id[2][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s", id[0], id[1]), 2);
    expect_status(id[0], "finished", 30);   /* within a backoff step (<= 10 s) */
    expect_status(id[1], "finished", 30);
    ck_assert_int_eq(nr_log_flush(10), 0);
    ck_assert_int_eq(count_lines(path, "Redis accepts taking jobs from queue default again"), 1);
    ck_assert_int_eq(count_lines(path, "Redis accepts taking jobs from queue low again"), 1);
    ck_assert_int_eq(count_lines(path, "refuse"), 2);

    intake_down();
    nr_log_shutdown();
    free(ids);
    free(hi);
    free(dir);
}
END_TEST

/* A worker killed (SIGKILL) right after it took a job, before marking it
 * started (issue 10 defect 9c): the job is in its intake list, not lost.
 * At start the intake puts back its own list (same worker name) and those
 * of dead workers (their key expired), and runs those jobs; a live
 * worker's list is left alone. */
static void take_and_die(const char *worker)
{
    pid_t pid = fork();
    int st;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct nr_rq *rq = nr_rq_connect(&cfg, worker, NULL);
        struct nr_rq_job job;
        if (rq->err || nr_rq_worker_register(rq) != 0 || nr_rq_take(rq, 2, &job) != 0)
            _exit(3);
        raise(SIGKILL);
        _exit(4);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
}

START_TEST(test_intake_recovery)
{
    long long job = add_job("rq-intake", 0);
    char *ids = py("a = enqueue(%1$lld); b = enqueue(%1$lld); c = enqueue(%1$lld)\n"
                   "print(a.id, b.id, c.id)\n", job), key[256];
    char id[3][64];
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s", id[0], id[1], id[2]), 3);
    load_cfg(nrt_db_url(), NULL);

    take_and_die(WORKER);           /* a: this worker's earlier life */
    take_and_die("nrt-dead");       /* b: a worker that died ... */
    rint_cmd("DEL rq:worker:nrt-dead");     /* ... and whose key expired */
    struct nr_rq *alive = nr_rq_connect(&cfg, "nrt-alive", NULL);
    struct nr_rq_job jc;
    ck_assert_int_eq(nr_rq_worker_register(alive), 0);
    ck_assert_int_eq(nr_rq_take(alive, 1, &jc), 0);     /* c: a live worker's */
    ck_assert_str_eq(jc.id, id[2]);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "rq:job:%s", id[i]);
        char *st = hget(key, "status");
        ck_assert_str_eq(st, "queued");         /* taken, never started */
        free(st);
    }

    intake_start();
    expect_status(id[0], "finished", 60);
    expect_status(id[1], "finished", 60);
    ck_assert(!wait_status(id[2], "finished", 2));
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default:intake:" WORKER), 0);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default:intake:nrt-dead"), 0);
    ck_assert_int_eq(rint_cmd("SISMEMBER rq:queue:default:intakes nrt-dead"), 0);
    ck_assert_int_eq(rint_cmd("SISMEMBER rq:queue:default:intakes " WORKER), 1);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default:intake:nrt-alive"), 1);
    free(py("a, b = '%s', '%s'\n"
            "for i in (a, b):\n"
            "    j = fetch(i)\n"
            "    check(j.worker_name == W and len(j.results()) == 1, (j.worker_name, j.results()))\n"
            "check(StartedJobRegistry('default', connection=r).get_job_ids() == [], 'started')\n",
            id[0], id[1]));

    /* the live one dies too (its key goes): a recovery puts c back, and
     * the worker, if it comes back, may no longer start it */
    rint_cmd("DEL rq:worker:nrt-alive");
    struct nr_rq *other = nr_rq_connect(&cfg, "nrt-other", NULL);
    size_t moved = 0;
    ck_assert_int_eq(nr_rq_recover(other, "default", false, NULL, &moved), 0);
    ck_assert_uint_eq(moved, 1);
    ck_assert_int_eq(nr_rq_start(alive, &jc), NR_NOTFOUND);
    expect_status(id[2], "finished", 60);
    free(py("j = fetch('%s')\n"
            "check(j.worker_name == W and len(j.results()) == 1, (j.worker_name, j.results()))\n",
            id[2]));
    nr_rq_job_clear(&jc);
    nr_rq_free(alive);
    nr_rq_free(other);
    free(ids);
}
END_TEST


/* The intake list at the protocol layer: a take moves the id into it, the
 * start takes it out (and a start retried after a lost reply is still a
 * success), a failure before the start too; a recovery after a reconnect
 * puts back only what the worker does not hold, in order. */
START_TEST(test_intake_protocol)
{
    char *ids = py("a = enqueue(21); b = enqueue(22); c = enqueue(23); d = enqueue(24)\n"
                   "print(a.id, b.id, c.id, d.id)\n");
    char id[4][64], *s;
    ck_assert_int_eq(sscanf(ids, "%63s %63s %63s %63s", id[0], id[1], id[2], id[3]), 4);
    load_cfg(nrt_db_url(), NULL);
    struct nr_rq *rq = nr_rq_connect(&cfg, "nrt-intake", NULL);
    struct nr_rq_job j[4];
    struct nr_strlist keep = { 0 };
    size_t moved = 0;

    ck_assert_int_eq(nr_rq_worker_register(rq), 0);
    ck_assert_int_eq(rint_cmd("SISMEMBER rq:queue:low:intakes nrt-intake"), 1);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nr_rq_take(rq, 1, &j[i]), 0);
        ck_assert_str_eq(j[i].id, id[i]);
        ck_assert(j[i].in_intake);
    }
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 0);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default:intake:nrt-intake"), 4);

    /* a reconnect while a and c are held: b and d go back, in order */
    nr_strlist_push(&keep, id[0]);
    nr_strlist_push(&keep, id[2]);
    ck_assert_int_eq(nr_rq_recover(rq, "default", true, &keep, &moved), 0);
    ck_assert_uint_eq(moved, 2);
    nr_strlist_clear(&keep);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default"), 2);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default 0"), id[1]); free(s);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default 1"), id[3]); free(s);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default:intake:nrt-intake 0"), id[0]); free(s);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default:intake:nrt-intake 1"), id[2]); free(s);

    /* a starts; the same start again (as after a lost reply) is fine */
    ck_assert_int_eq(nr_rq_start(rq, &j[0]), 0);
    ck_assert(!j[0].in_intake);
    j[0].in_intake = true;
    ck_assert_int_eq(nr_rq_start(rq, &j[0]), 0);
    ck_assert_int_eq(rint_cmd("LLEN rq:queue:default:intake:nrt-intake"), 1);
    /* c fails before it starts: it leaves the list with its failure */
    ck_assert_int_eq(nr_rq_fail(rq, &j[2], "cannot run", false, NULL), 0);
    ck_assert_int_eq(rint_cmd("EXISTS rq:queue:default:intake:nrt-intake"), 0);
    ck_assert_int_eq(nr_rq_finish(rq, &j[0]), 0);

    /* b and d again; this worker restarts holding nothing: all back */
    nr_rq_job_clear(&j[1]);
    nr_rq_job_clear(&j[3]);
    ck_assert_int_eq(nr_rq_take(rq, 1, &j[1]), 0);
    ck_assert_int_eq(nr_rq_take(rq, 1, &j[3]), 0);
    ck_assert_int_eq(nr_rq_recover(rq, "default", true, NULL, &moved), 0);
    ck_assert_uint_eq(moved, 2);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default 0"), id[1]); free(s);
    ck_assert_str_eq(s = rstr_cmd("LINDEX rq:queue:default 1"), id[3]); free(s);
    /* the start of a job put back is refused, and writes nothing */
    ck_assert_int_eq(nr_rq_start(rq, &j[1]), NR_NOTFOUND);
    char key[128];
    snprintf(key, sizeof(key), "rq:job:%s", id[1]);
    ck_assert_str_eq(s = hget(key, "status"), "queued"); free(s);
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);

    for (int i = 0; i < 4; i++)
        nr_rq_job_clear(&j[i]);
    nr_rq_free(rq);
    free(ids);
}
END_TEST

/* RQ's per-job timeout (issue 10 defect 9d): a run still going after the
 * job's `timeout` fails in RQ as a Python worker's JobTimeoutException,
 * the worker goes idle, and the run itself, once it can go on, records its
 * outcome in NetRaven's database without touching the RQ job again. */
START_TEST(test_job_timeout)
{
    long long job = add_job("rq-timeout", 0), other = add_job("rq-after-timeout", 0);
    char *id = py("j = enqueue(%lld, job_timeout=2)\n"
                  "check(r.hget(j.key, 'timeout') == b'2', r.hget(j.key, 'timeout'))\n"
                  "print(j.id)\n", job), key[128];

    PQclear(nrt_sql(db, "BEGIN"));
    PQclear(nrt_sql(db, "SELECT id FROM jobs WHERE id = %lld FOR UPDATE", job));
    intake_up();
    expect_status(id, "started", 30);
    uint64_t t0 = nr_mono_ns();
    expect_status(id, "failed", 15);
    ck_assert_msg(nr_mono_ns() - t0 < 6000000000ull, "failed %.1f s after the start",
                  (double)(nr_mono_ns() - t0) / 1e9);
    ck_assert_int_eq(rint_cmd("ZCARD rq:wip:default"), 0);
    free(py("j = fetch('%s')\n"
            "e = j.latest_result().exc_string\n"
            "check('JobTimeoutException: job timed out after 2 s' in e, e)\n"
            "check(j.retries_left is None or j.retries_left == 0, j.retries_left)\n"
            "check(FailedJobRegistry('default', connection=r).get_job_ids() == [j.id], 'failed')\n"
            "w = Worker.find_by_key('rq:worker:' + W, connection=r)\n"
            "for _ in range(50):\n"
            "    if w.get_state() == 'idle': break\n"
            "    time.sleep(0.1); w.refresh()\n"
            "check(w.get_state() == 'idle', w.get_state())\n", id));

    /* the run goes on once its row is free; RQ's record stays the failure */
    PQclear(nrt_sql(db, "COMMIT"));
    ck_assert(nrt_wait_sql(db, NR_STATUS_NO_DEVICES, 30, "SELECT status FROM jobs WHERE id = %lld",
                           job));
    char *next = py("print(enqueue(%lld).id)\n", other);
    expect_status(next, "finished", 30);
    snprintf(key, sizeof(key), "rq:job:%s", id);
    char *st = hget(key, "status");
    ck_assert_str_eq(st, "failed");
    free(st);
    free(py("check(len(fetch('%s').results()) == 1, 'one result')\n", id));
    free(next);
    free(id);
}
END_TEST

/* Redis gone: connect reports it, and nothing crashes. */
START_TEST(test_redis_unreachable)
{
    load_cfg(nrt_db_url(), "NETRAVEN_SCHEDULER__REDIS_URL=redis://127.0.0.1:1/0");
    struct nr_rq *rq = nr_rq_connect(&cfg, NULL, NULL);
    struct nr_rq_job job;

    ck_assert_int_eq(rq->err, NR_EIO);
    ck_assert_msg(strstr(rq->errstr, "127.0.0.1:1") != NULL, "errstr: %s", rq->errstr);
    ck_assert_int_eq(nr_rq_take(rq, 1, &job), NR_EIO);
    ck_assert_int_eq(nr_rq_worker_register(rq), NR_EIO);
    ck_assert_int_eq(nr_rq_reset(rq), NR_EIO);
    nr_rq_free(rq);
}
END_TEST

static Suite *rq_suite(void)
{
    Suite *s = suite_create("rq");
    TCase *tc = tcase_create("rq");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    nrt_add_test(tc, test_protocol_writes);
    nrt_add_test(tc, test_run_job_finishes);
    nrt_add_test(tc, test_failures_with_reasons);
    nrt_add_test(tc, test_unsupported_features);
    nrt_add_test(tc, test_abandoned_cleanup);
    nrt_add_test(tc, test_busy_heartbeat_and_stop);
    nrt_add_test(tc, test_suspend);
    nrt_add_test(tc, test_not_recorded);
    nrt_add_test(tc, test_db_away);
    nrt_add_test(tc, test_redis_unreachable);
    nrt_add_test(tc, test_scheduler_run_job);
    nrt_add_test(tc, test_retention_prune);
    nrt_add_test(tc, test_prune_keeps_newest);
    nrt_add_test(tc, test_prune_stop);
    nrt_add_test(tc, test_wrongtype_backoff);
    nrt_add_test(tc, test_intake_recovery);
    nrt_add_test(tc, test_intake_protocol);
    nrt_add_test(tc, test_job_timeout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rq_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
