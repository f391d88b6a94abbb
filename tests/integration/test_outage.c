/*
 * test_outage.c - nothing is lost while a server is away (issue 5).
 *
 *   spool:   PostgreSQL stopped while more job/connection rows are emitted
 *            than the DB sink's queue holds: the rows go to the spool file
 *            (none dropped) and reach `logs` when it is back, in emission
 *            order, none twice; rows still held at shutdown are spooled and
 *            written by the next start; a torn spool tail is cut; a commit
 *            recorded in the spool header is resolved with txid_status; a
 *            spool that cannot be written makes drops, counted and said.
 *   redis:   the worker binary rides out a Redis restart (says so once,
 *            reconnects, runs a job queued afterwards); session events
 *            emitted meanwhile are dropped and counted, and emitting them
 *            never waits.
 *
 * Needs NR_TEST_DATABASE_URL, NR_TEST_REDIS_URL, NR_SERVICES and
 * NR_SCRATCH (scripts/test, or scripts/services' env file).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/log.h"
/* white box: the spool file API, to stage what a crash leaves behind */
#include "../../src/log/log_i.h"

static PGconn *pg;
static char *scratch;
static char *spool_dir;
static int saved_stdout = -1;
static long long job_id, dev_id;

/* ------------------------------------------------------------- helpers */

static void capture_begin(void)
{
    char *path = nr_asprintf("%s/stdout", scratch);
    int fd;

    fflush(stdout);
    saved_stdout = fcntl(1, F_DUPFD_CLOEXEC, 3);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 1);
    close(fd);
    free(path);
}

static char *capture_end(void)
{
    char *path = nr_asprintf("%s/stdout", scratch);
    char *text;

    fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
    saved_stdout = -1;
    text = nrt_read_file(path);
    free(path);
    return text ? text : nr_strdup("");
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static char *spool_file(void)
{
    return nr_asprintf("%s/logs.spool", spool_dir);
}

static void setup(void)
{
    pg = nrt_pg();
    nrt_db_reset(pg);
    nrt_redis_reset();
    scratch = nrt_tmpdir("outage");
    spool_dir = nr_asprintf("%s/spool", scratch);      /* made by the log module */
    job_id = nrt_sql_int(pg, "INSERT INTO jobs (name) VALUES ('outage-job') RETURNING id");
    dev_id = nrt_sql_int(pg, "INSERT INTO devices (hostname, ip_address, device_type)"
                             " VALUES ('r-out', '192.0.2.9', 'cisco_ios') RETURNING id");
}

static void teardown(void)
{
    /* whatever happened above, leave both servers running for the others */
    nrt_services("pg-start");
    nrt_services("redis-start");
    if (saved_stdout >= 0) {
        fflush(stdout);
        dup2(saved_stdout, 1);
        close(saved_stdout);
        saved_stdout = -1;
    }
    PQfinish(pg);
    pg = NULL;
    free(spool_dir);
    free(scratch);
    spool_dir = scratch = NULL;
}

static void cfg_spool(struct nr_config *c, int queue_size)
{
    memset(c, 0, sizeof(*c));
    c->database.url = (char *)nrt_db_url();
    c->worker.spool_dir = spool_dir;
    c->logging.level = NR_LOG_INFO;
    c->logging.db_level = NR_LOG_INFO;
    c->logging.queue_size = queue_size;
    c->logging.db_batch_size = 50;
}

/* One job or connection row carrying seq in its meta. */
static void emit_row(int seq)
{
    if (seq % 2)
        NR_LOG(NR_EV_TASK_COMPLETED, job_id, dev_id, NR_S("device_name", "r-out"),
               NR_S("job_name", "outage-job"), NR_I("seq", seq));
    else
        NR_LOG(NR_EV_CONN_DISCONNECTED, job_id, dev_id, NR_S("device_name", "r-out"),
               NR_S("reason", "done"), NR_I("seq", seq));
}

static void stop_pg(void)
{
    PQfinish(pg);
    pg = NULL;
    nrt_services("pg-stop");
}

static void start_pg(void)
{
    nrt_services("pg-start");
    pg = nrt_pg();
}

/* Rows with a seq: n of them, seq 0..n-1 each once, in id order. */
static void assert_rows_in_order(int n)
{
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE meta ? 'seq'"), n);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(DISTINCT (meta->>'seq')::int) FROM logs"
                                     " WHERE meta ? 'seq'"), n);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT min((meta->>'seq')::int) FROM logs"
                                     " WHERE meta ? 'seq'"), 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT max((meta->>'seq')::int) FROM logs"
                                     " WHERE meta ? 'seq'"), n - 1);
    /* written in emission order: seq rises with id */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM (SELECT (meta->>'seq')::int AS s,"
                                     " lag((meta->>'seq')::int) OVER (ORDER BY id) AS p"
                                     " FROM logs WHERE meta ? 'seq') x WHERE s <= p"), 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM (SELECT \"timestamp\" AS t,"
                                     " lag(\"timestamp\") OVER (ORDER BY id) AS p"
                                     " FROM logs WHERE meta ? 'seq') x WHERE t < p"), 0);
    /* the columns survived the spool */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE meta ? 'seq' AND"
                                     " job_id = %lld AND device_id = %lld AND level = 'INFO' AND"
                                     " ((log_type = 'job' AND source = 'dispatcher' AND"
                                     "   message = 'Task completed for device ''r-out'' in job"
                                     " ''outage-job''') OR"
                                     "  (log_type = 'connection' AND source = 'ssh' AND"
                                     "   message = 'Disconnected from ''r-out'': done'))",
                                     job_id, dev_id), n);
}

/* --------------------------------------------------------------- spool */

/* (a) More rows than the memory queue holds while PostgreSQL is away: the
 * spool takes them, nothing is dropped, and they arrive in order, once. */
START_TEST(spool_takes_what_memory_cannot)
{
    enum { QUEUE = 64, BEFORE = 20, N = 2000 };
    struct nr_config c;
    struct nr_log_stats st;
    char *path = spool_file(), *out;
    long long size, last = -1;
    int grew = 0;
    uint64_t worst = 0;

    cfg_spool(&c, QUEUE);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < BEFORE; i++)
        emit_row(i);
    ck_assert_int_eq(nr_log_flush(30), 0);
    ck_assert_int_eq(file_size(path), -1);      /* no spool while all goes well */

    stop_pg();
    for (int i = BEFORE; i < BEFORE + N; i++) {
        uint64_t t0 = nr_mono_ns(), dt;

        emit_row(i);
        dt = nr_mono_ns() - t0;
        if (dt > worst)
            worst = dt;
        /* emitters are fast; give the sink thread time to move each
         * half-queue to the spool (it never holds an emitter up): past
         * half a queue in memory, wait until it has (5 s at most), so
         * that a loaded machine does not make this a test of scheduling */
        usleep(1000);
        for (int k = 0; k < 5000; k++) {
            nr_log_get_stats(&st);
            if (st.db_routed - st.db_written - st.db_spooled - st.db_dropped <= QUEUE / 2)
                break;
            usleep(1000);
        }
        if (i % 100 == 0 && (size = file_size(path)) > last) {
            grew += last >= 0;
            last = size;
        }
    }
    ck_assert_int_eq(nr_log_flush(1.5), NR_ETIMEOUT);      /* held, not written */
    nr_log_get_stats(&st);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_routed, BEFORE + N);
    ck_assert_uint_eq(st.db_written, BEFORE);
    ck_assert_uint_gt(st.db_spooled, N - QUEUE * 2);          /* most rows are on disk */
    ck_assert_int_ge(grew, 5);                              /* and it grew as they came */
    ck_assert_int_gt(file_size(path), 4096 + (long long)st.db_spooled * 100);
    ck_assert_uint_lt(worst, 50 * 1000 * 1000);             /* no emit waited */

    start_pg();
    ck_assert_int_eq(nr_log_flush(120), 0);
    nr_log_get_stats(&st);
    ck_assert_uint_eq(st.db_written, BEFORE + N);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_spooled, 0);
    ck_assert_uint_eq(st.db_recovered, 0);
    ck_assert_int_eq(file_size(path), 4096);              /* emptied once drained */
    nr_log_shutdown();
    out = capture_end();

    assert_rows_in_order(BEFORE + N);
    ck_assert_int_eq(nrt_count_of(out, "PostgreSQL unavailable"), 1);
    ck_assert_int_ge(nrt_count_of(out, "moved to the spool"), 1);
    ck_assert_int_eq(nrt_count_of(out, "drained"), 1);
    ck_assert_int_eq(nrt_count_of(out, "dropped"), 0);
    free(out);
    free(path);
}
END_TEST

/* (b) Shut down with PostgreSQL still away: rows in memory go to the
 * spool, and the next start (PostgreSQL back) writes them before its own. */
START_TEST(spool_survives_a_restart)
{
    enum { QUEUE = 1024, N = 600, AFTER = 100 };
    struct nr_config c;
    struct nr_log_stats st;
    char *path = spool_file(), *out;

    cfg_spool(&c, QUEUE);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    stop_pg();
    for (int i = 0; i < N; i++) {
        emit_row(i);
        if (i % 50 == 0)
            usleep(2000);
    }
    nr_log_shutdown();          /* waits NR_LOG_SHUTDOWN_DB_WAIT_S, then spools */
    nr_log_get_stats(&st);
    ck_assert_uint_eq(st.db_routed, N);
    ck_assert_uint_eq(st.db_written, 0);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_spooled, N);
    ck_assert_int_gt(file_size(path), 4096 + N * 100);

    /* a crash in the middle of an append leaves part of a record: cut off */
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "\x40\0\0\0garbage", 11), 11);
    close(fd);

    start_pg();
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_get_stats(&st);
    ck_assert_uint_eq(st.db_spooled, N);                  /* found at start */
    for (int i = N; i < N + AFTER; i++)
        emit_row(i);
    ck_assert_int_eq(nr_log_flush(60), 0);                /* waits for the spool too */
    nr_log_get_stats(&st);
    nr_log_shutdown();
    out = capture_end();

    ck_assert_uint_eq(st.db_routed, AFTER);
    ck_assert_uint_eq(st.db_written, AFTER);
    ck_assert_uint_eq(st.db_recovered, N);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_spooled, 0);
    assert_rows_in_order(N + AFTER);
    ck_assert_int_eq(nrt_count_of(out, "kept in the spool"), 1);
    ck_assert_int_eq(nrt_count_of(out, "of an earlier run found in the spool"), 1);
    ck_assert_int_eq(nrt_count_of(out, "were not whole records"), 1);
    ck_assert_int_eq(nrt_count_of(out, "drained"), 1);
    free(out);
    free(path);
}
END_TEST

/* The spool cannot be written (its folder cannot be made): rows beyond
 * what memory holds are dropped, counted and said; emitters never wait;
 * the rest arrive once PostgreSQL is back. */
START_TEST(spool_unwritable_drops_are_counted)
{
    enum { QUEUE = 64, N = 600 };
    struct nr_config c;
    struct nr_log_stats st;
    char *file = nr_asprintf("%s/not-a-folder", scratch), *out;
    uint64_t worst = 0;

    nrt_write_file(file, "x");
    free(spool_dir);
    spool_dir = nr_asprintf("%s/spool", file);     /* ENOTDIR, even for root */
    cfg_spool(&c, QUEUE);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    stop_pg();
    for (int i = 0; i < N; i++) {
        uint64_t t0 = nr_mono_ns(), dt;

        emit_row(i);
        dt = nr_mono_ns() - t0;
        if (dt > worst)
            worst = dt;
        if (i % 10 == 0)
            usleep(2000);
    }
    ck_assert_uint_lt(worst, 50 * 1000 * 1000);
    sleep(2);                   /* the out thread reports drops once a second */
    start_pg();
    ck_assert_int_eq(nr_log_flush(120), 0);
    nr_log_get_stats(&st);
    nr_log_shutdown();
    out = capture_end();

    ck_assert_uint_gt(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_spooled, 0);
    /* routed counts what the queue accepted; the refused are dropped */
    ck_assert_uint_eq(st.db_routed, st.db_written);
    ck_assert_uint_eq(st.db_written + st.db_dropped, N);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE meta ? 'seq'"),
                     (long long)st.db_written);
    ck_assert_int_eq(nrt_count_of(out, "Cannot use the log spool"), 1);
    ck_assert_msg(strstr(out, "Not a directory"), "the reason is not said: %s", out);
    ck_assert_int_ge(nrt_count_of(out, "for the db sink dropped"), 1);
    free(out);
    free(file);
}
END_TEST

/* Stage a spool as a crash leaves it: rows, and a commit of the first k
 * of them recorded in the header, with transaction xid. */
static void stage_spool(int n, int k, long long xid)
{
    struct nr_spool sp;
    struct nr_ts_cache tc = { 0 };
    struct nr_log_rec **recs = calloc((size_t)n, sizeof(*recs));

    for (int i = 0; i < n; i++) {
        const struct nr_kv kv[] = { NR_S("device_name", "r-out"), NR_S("job_name", "outage-job"),
                                    NR_I("seq", i) };
        recs[i] = nr_log_rec_new(NR_EV_TASK_COMPLETED, job_id, dev_id, kv, 3, NR_SINK_DB);
    }
    ck_assert_int_eq(nr_spool_init(&sp, spool_dir), 0);
    ck_assert_int_eq(nr_spool_append(&sp, recs, (size_t)k, &tc), 0);
    uint64_t end = sp.tail;
    ck_assert_int_eq(nr_spool_append(&sp, recs + k, (size_t)(n - k), &tc), 0);
    ck_assert_int_eq(nr_spool_mark(&sp, xid, end), 0);
    nr_spool_clear(&sp);
    for (int i = 0; i < n; i++)
        nr_log_rec_unref(recs[i]);
    free(recs);
}

/* The first k rows as the crashed process had committed them; returns
 * the transaction id, committed or (commit false) rolled back. */
static long long insert_first_rows(int k, bool commit)
{
    long long xid;

    PQclear(nrt_sql(pg, "BEGIN"));
    PQclear(nrt_sql(pg, "INSERT INTO logs (log_type, level, job_id, device_id, source, message, meta)"
                        " SELECT 'job', 'INFO', %lld, %lld, 'dispatcher', 'Task completed for"
                        " device ''r-out'' in job ''outage-job''', jsonb_build_object('seq', i)"
                        " FROM generate_series(0, %d) AS i", job_id, dev_id, k - 1));
    xid = nrt_sql_int(pg, "SELECT txid_current()");
    PQclear(nrt_sql(pg, commit ? "COMMIT" : "ROLLBACK"));
    return xid;
}

/* A crash after COMMIT, before the spool learnt of it: the next start asks
 * PostgreSQL and skips the rows that transaction wrote; if it did not
 * commit, they are written. */
START_TEST(spool_pending_commit_resolved)
{
    enum { N = 120, K = 50 };
    struct nr_config c;
    struct nr_log_stats st;
    char *out;

    for (int round = 0; round < 2; round++) {
        bool committed = round == 0;
        long long xid;

        PQclear(nrt_sql(pg, "DELETE FROM logs"));
        xid = insert_first_rows(K, committed);
        stage_spool(N, K, xid);
        cfg_spool(&c, 1024);
        capture_begin();
        ck_assert_int_eq(nr_log_init(&c), 0);
        ck_assert_int_eq(nr_log_flush(60), 0);
        nr_log_get_stats(&st);
        nr_log_shutdown();
        out = capture_end();
        ck_assert_uint_eq(st.db_recovered, committed ? N - K : N);
        ck_assert_uint_eq(st.db_spooled, 0);
        assert_rows_in_order(N);
        free(out);
    }
}
END_TEST

/* Two workers sharing worker.spool_dir each hold a file of their own (an
 * flock); a later start takes over the first free file with rows. */
START_TEST(spool_files_one_per_process)
{
    struct nr_spool a, b, c;
    struct nr_ts_cache tc = { 0 };
    const struct nr_kv kv[] = { NR_S("device_name", "r-out"), NR_S("job_name", "outage-job"),
                                NR_I("seq", 7) };
    struct nr_log_rec *r = nr_log_rec_new(NR_EV_TASK_COMPLETED, job_id, dev_id, kv, 3,
                                          NR_SINK_DB);
    const struct nr_log_row *rows;
    size_t n;
    uint64_t end;

    ck_assert_int_eq(nr_spool_init(&a, spool_dir), 0);
    ck_assert_ptr_null(a.path);                         /* nothing there yet */
    ck_assert_int_eq(nr_spool_append(&a, &r, 1, &tc), 0);
    ck_assert_int_eq(nr_spool_init(&b, spool_dir), 0);
    ck_assert_ptr_null(b.path);                         /* logs.spool is a's */
    ck_assert_int_eq(nr_spool_append(&b, &r, 1, &tc), 0);
    ck_assert_int_eq(nr_spool_append(&b, &r, 1, &tc), 0);
    ck_assert_ptr_nonnull(strstr(a.path, "/logs.spool"));
    ck_assert_ptr_nonnull(strstr(b.path, "/logs.1.spool"));
    nr_spool_clear(&a);

    ck_assert_int_eq(nr_spool_init(&c, spool_dir), 0);  /* a's file, free again */
    ck_assert_ptr_nonnull(strstr(c.path, "/logs.spool"));
    ck_assert_uint_eq(c.rows, 1);
    ck_assert_int_eq(nr_spool_read(&c, 10, 0, &rows, &n, &end), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(rows[0].message, "Task completed for device 'r-out' in job 'outage-job'");
    ck_assert_str_eq(rows[0].meta, "{\"device_name\":\"r-out\",\"job_name\":\"outage-job\",\"seq\":7}");
    ck_assert_str_eq(rows[0].log_type, "job");
    ck_assert_str_eq(rows[0].source, "dispatcher");
    ck_assert_int_eq(rows[0].job_id, job_id);
    ck_assert_int_eq(rows[0].device_id, dev_id);
    ck_assert_int_eq(nr_spool_consume(&c, end, n), 0);
    ck_assert_uint_eq(c.rows, 0);
    ck_assert_int_eq(file_size(c.path), 4096);
    nr_spool_clear(&c);
    ck_assert_uint_eq(b.rows, 2);
    nr_spool_clear(&b);
    nr_log_rec_unref(r);
}
END_TEST

/* ---------------------------------------------------------------- redis */

static char *env_kv(const char *key, const char *val)
{
    return nr_asprintf("%s=%s", key, val);
}

static long long empty_job(const char *name)
{
    return nrt_sql_int(pg, "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
                           "VALUES ('%s', 'reachability', 'PENDING', true, 'onetime') "
                           "RETURNING id", name);
}

static void enqueue(long long job)
{
    redisContext *rc = nrt_redis();
    redisReply *r = redisCommand(rc, "XADD netraven:jobs * payload {\"job_id\":%lld}", job);

    ck_assert_msg(r && r->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(r);
    redisFree(rc);
}

/* (c) The worker binary: Redis stops for a few seconds and comes back.
 * The worker says so once, reconnects, and runs a job queued afterwards. */
START_TEST(worker_rides_out_redis_restart)
{
    struct nrt_proc w;
    char *dir = nrt_tmpdir("spool");
    char *extra[] = { env_kv("NETRAVEN_WORKER__SPOOL_DIR", dir),
                      env_kv("NETRAVEN_WORKER__CONSUMER_NAME", "outage"), NULL };
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    long long before = empty_job("before-outage"), after;
    char *out;

    nrt_proc_start(&w, argv, extra);
    ck_assert_msg(nrt_wait_stdout(&w, "Polling stream", 1, 30), "the worker did not start");
    enqueue(before);
    ck_assert(nrt_wait_sql(pg, "COMPLETED_NO_DEVICES", 30,
                           "SELECT status FROM jobs WHERE id = %lld", before));

    nrt_services("redis-stop");
    ck_assert_msg(nrt_wait_stdout(&w, "] Redis unavailable (", 1, 20), "the outage went unsaid");
    sleep(3);
    nrt_services("redis-start");
    /* back: the intake says it polls again */
    ck_assert_msg(nrt_wait_stdout(&w, "Polling stream", 2, 30), "no reconnect");
    after = empty_job("after-outage");
    enqueue(after);
    ck_assert_msg(nrt_wait_sql(pg, "COMPLETED_NO_DEVICES", 60,
                               "SELECT status FROM jobs WHERE id = %lld", after),
                  "the job queued after the restart did not run");

    nrt_proc_stop(&w, 30);
    ck_assert_msg(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0, "exit status %d", w.status);
    out = nrt_proc_stdout(&w);
    ck_assert_int_eq(nrt_count_of(out, "] Redis unavailable ("), 1);      /* once per outage */
    ck_assert_int_eq(nrt_count_of(out, "Polling stream"), 2);
    ck_assert_msg(strstr(out, "0 dropped"), "log rows dropped: %s", out);
    free(out);
    nrt_proc_clear(&w);
    free(extra[0]);
    free(extra[1]);
    free(dir);
}
END_TEST

/* (d) Session events while Redis is away: dropped and counted, and not one
 * emit waits for the server; publishing resumes when it is back. */
START_TEST(session_events_during_redis_outage)
{
    enum { N = 300 };
    struct nr_config c;
    struct nr_log_stats st;
    uint64_t worst = 0, total = 0, t_end;
    char *out;

    memset(&c, 0, sizeof(c));
    c.logging.level = NR_LOG_INFO;
    c.logging.redis.enabled = true;
    c.logging.redis.queue_size = 64;
    c.scheduler.redis_url = (char *)nrt_redis_url();
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(job_id, dev_id, "rx", "hello\r\n", 7);
    ck_assert_int_eq(nr_log_flush(30), 0);
    nr_log_get_stats(&st);
    ck_assert_uint_eq(st.redis_published, 1);

    nrt_services("redis-stop");
    for (int i = 0; i < N; i++) {
        uint64_t t0 = nr_mono_ns(), dt;

        nr_log_session(job_id, dev_id, "tx", "show running-config\n", 20);
        dt = nr_mono_ns() - t0;
        total += dt;
        if (dt > worst)
            worst = dt;
        if (i % 10 == 0)
            usleep(5000);       /* spread over the sink's reconnect attempts */
    }
    ck_assert_int_eq(nr_log_flush(30), 0);          /* dropped records count as done */
    nr_log_get_stats(&st);
    ck_assert_uint_lt(worst, 50 * 1000 * 1000);
    ck_assert_uint_lt(total, 200 * 1000 * 1000);
    ck_assert_uint_eq(st.redis_published, 1);
    ck_assert_uint_eq(st.redis_dropped, N);
    /* the job's own count, which its run reports in the job log */
    ck_assert_uint_eq(nr_log_session_drops_take(job_id), N);
    ck_assert_uint_eq(nr_log_session_drops_take(job_id), 0);
    ck_assert_uint_eq(nr_log_session_drops_take(job_id + 1), 0);

    nrt_services("redis-start");
    t_end = nr_mono_ns() + 30ull * 1000 * 1000 * 1000;
    do {
        nr_log_session(job_id, dev_id, "rx", "Router#", 7);
        usleep(200 * 1000);
        nr_log_get_stats(&st);
    } while (st.redis_published < 2 && nr_mono_ns() < t_end);
    nr_log_shutdown();
    out = capture_end();
    ck_assert_msg(st.redis_published >= 2, "publishing did not resume");
    ck_assert_int_eq(nrt_count_of(out, "] Redis unavailable ("), 1);
    ck_assert_int_ge(nrt_count_of(out, "Connected to Redis"), 2);
    free(out);
}
END_TEST

static Suite *outage_suite(void)
{
    Suite *s = suite_create("outage");
    TCase *tc;

    tc = tcase_create("spool");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    nrt_add_test(tc, spool_takes_what_memory_cannot);
    nrt_add_test(tc, spool_survives_a_restart);
    nrt_add_test(tc, spool_unwritable_drops_are_counted);
    nrt_add_test(tc, spool_pending_commit_resolved);
    nrt_add_test(tc, spool_files_one_per_process);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    nrt_add_test(tc, worker_rides_out_redis_restart);
    nrt_add_test(tc, session_events_during_redis_outage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outage_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
