/*
 * test_logdb.c - the log module against real servers: the DB sink writes
 * job and connection records into `logs` (exactly once, ids kept or nulled
 * as the foreign keys allow, rows kept across a PostgreSQL restart), and the
 * Redis sink publishes session records on the channels of docs/netraven.md
 * §5.
 *
 * Needs NR_TEST_DATABASE_URL and NR_TEST_REDIS_URL (scripts/test), and for
 * the restart case NR_SERVICES and NR_SCRATCH (scripts/services' env file).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "netraven/log.h"

static PGconn *pg;
static char *scratch;
static int saved_stdout = -1;
static long long job_a, job_b, dev_a, dev_b;

/* stdout of the log module goes to a file in the scratch folder. */
static void capture_begin(void)
{
    char *path = nr_asprintf("%s/stdout", scratch);
    int fd;

    fflush(stdout);
    saved_stdout = fcntl(1, F_DUPFD_CLOEXEC, 3);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
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
    text = nrt_read_file(path);
    free(path);
    return text ? text : nr_strdup("");
}

static void setup(void)
{
    pg = nrt_pg();
    nrt_db_reset(pg);
    scratch = nrt_tmpdir("logdb");
    job_a = nrt_sql_int(pg, "INSERT INTO jobs (name) VALUES ('log-job-a') RETURNING id");
    job_b = nrt_sql_int(pg, "INSERT INTO jobs (name) VALUES ('log-job-b') RETURNING id");
    dev_a = nrt_sql_int(pg, "INSERT INTO devices (hostname, ip_address, device_type)"
                            " VALUES ('r-a', '192.0.2.1', 'cisco_ios') RETURNING id");
    dev_b = nrt_sql_int(pg, "INSERT INTO devices (hostname, ip_address, device_type)"
                            " VALUES ('r-b', '192.0.2.2', 'arista_eos') RETURNING id");
}

static void teardown(void)
{
    PQfinish(pg);
    pg = NULL;
    free(scratch);
    scratch = NULL;
}

static void cfg_db(struct nr_config *c)
{
    memset(c, 0, sizeof(*c));
    c->database.url = (char *)nrt_db_url();
    c->logging.level = NR_LOG_INFO;
    c->logging.db_level = NR_LOG_INFO;
    c->logging.queue_size = 65536;
    c->logging.db_batch_size = 500;
}

/* ----------------------------------------------------------------- rows */

START_TEST(rows_reach_logs)
{
    struct nr_config c;
    struct nr_log_stats st;
    const int n = 3000;
    char *out, *s;

    cfg_db(&c);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < n; i++) {
        if (i % 3 == 0)
            NR_LOG(NR_EV_TASK_SUBMITTED, job_a, dev_a, NR_S("device_name", "r-a"),
                   NR_S("job_name", "log-job-a"), NR_I("seq", i));
        else if (i % 3 == 1)
            NR_LOG(NR_EV_CONN_CONNECTING, job_b, dev_b, NR_S("device_name", "r-b"),
                   NR_S("host", "192.0.2.2"), NR_I("port", 22), NR_I("seq", i));
        else
            NR_LOG(NR_EV_JOB_STARTED, job_a, 0, NR_S("job_name", "log-job-a"), NR_I("seq", i));
    }
    /* text that COPY must escape, and JSON embedded in meta */
    NR_LOG(NR_EV_TASK_THREAD_ERROR, job_a, dev_a, NR_S("device_name", "r-a"),
           NR_S("job_name", "tab\there"), NR_S("error", "line1\nline2\\back\rcr \\N"),
           NR_J("detail", "{\"k\":[1,\"two\"]}"), NR_I("seq", n));
    NR_LOG(NR_EV_SYS_STARTING, 0, 0, NR_S("version", "x"), NR_S("env", "t"),
           NR_S("config_dir", "/c"));       /* system: stdout only */
    ck_assert_int_eq(nr_log_flush(60), 0);
    nr_log_get_stats(&st);
    nr_log_shutdown();
    out = capture_end();

    ck_assert_uint_eq(st.db_routed, (uint64_t)n + 1);
    ck_assert_uint_eq(st.db_written, (uint64_t)n + 1);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs"), n + 1);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(DISTINCT (meta->>'seq')::int) FROM logs"), n + 1);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'system'"), 0);

    /* columns */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'job'"
                                     " AND level = 'INFO' AND source = 'dispatcher'"
                                     " AND job_id = %lld AND device_id = %lld"
                                     " AND message = 'Submitting task for device ''r-a'' in job ''log-job-a'''"
                                     " AND meta->>'device_name' = 'r-a'", job_a, dev_a), n / 3);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'connection'"
                                     " AND source = 'ssh' AND job_id = %lld AND device_id = %lld"
                                     " AND (meta->>'port')::int = 22", job_b, dev_b), n / 3);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE job_id = %lld"
                                     " AND device_id IS NULL AND message LIKE 'Job %% started%%'",
                                     job_a), n / 3);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE"
                                     " abs(extract(epoch FROM now() - \"timestamp\")) < 120"), n + 1);

    s = nrt_sql_str(pg, "SELECT message FROM logs WHERE (meta->>'seq')::int = %d", n);
    ck_assert_str_eq(s, "Thread error processing device 'r-a' in job 'tab\there': "
                        "line1\nline2\\back\rcr \\N");
    free(s);
    s = nrt_sql_str(pg, "SELECT meta->'detail'->'k'->>1 FROM logs WHERE (meta->>'seq')::int = %d", n);
    ck_assert_str_eq(s, "two");
    free(s);
    s = nrt_sql_str(pg, "SELECT level FROM logs WHERE (meta->>'seq')::int = %d", n);
    ck_assert_str_eq(s, "ERROR");
    free(s);

    ck_assert_int_eq(nrt_count_of(out, "PostgreSQL unavailable"), 0);
    free(out);
}
END_TEST

/* Ids the database does not know: the rows are kept without them, the
 * original ids go to meta, and the rejection is reported. */
START_TEST(rows_with_unknown_ids)
{
    struct nr_config c;
    struct nr_log_stats st;
    char *out;

    cfg_db(&c);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 150; i++) {
        if (i % 3 == 0)         /* no such job */
            NR_LOG(NR_EV_TASK_COMPLETED, 999999, dev_a, NR_S("device_name", "r-a"),
                   NR_S("job_name", "ghost"), NR_I("seq", i));
        else if (i % 3 == 1)    /* no such device */
            NR_LOG(NR_EV_CONN_DISCONNECTED, job_a, 888888, NR_S("device_name", "gone"),
                   NR_S("reason", "done"), NR_I("seq", i));
        else                    /* fine */
            NR_LOG(NR_EV_TASK_COMPLETED, job_a, dev_a, NR_S("device_name", "r-a"),
                   NR_S("job_name", "log-job-a"), NR_I("seq", i));
    }
    ck_assert_int_eq(nr_log_flush(60), 0);
    nr_log_shutdown();
    nr_log_get_stats(&st);
    out = capture_end();

    /* every record is there once */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(DISTINCT (meta->>'seq')::int) FROM logs"
                                     " WHERE meta ? 'seq'"), 150);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE meta ? 'seq'"), 150);
    /* the unknown job: job_id nulled, the known device kept */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE job_id IS NULL"
                                     " AND device_id = %lld AND (meta->>'orig_job_id')::int = 999999"
                                     " AND NOT meta ? 'orig_device_id'", dev_a), 50);
    /* the unknown device: device_id nulled, the known job kept */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE device_id IS NULL"
                                     " AND job_id = %lld AND (meta->>'orig_device_id')::int = 888888"
                                     " AND log_type = 'connection'", job_a), 50);
    /* the good rows untouched */
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE job_id = %lld"
                                     " AND device_id = %lld AND NOT meta ? 'orig_job_id'"
                                     " AND meta ? 'seq'", job_a, dev_a), 50);
    /* reported, once per type within the rate limit, into logs as well */
    ck_assert_int_ge(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'job'"
                                     " AND level = 'ERROR' AND source = 'log_utils'"
                                     " AND message LIKE 'Job log row rejected%%'"), 1);
    ck_assert_int_ge(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'connection'"
                                     " AND message LIKE 'Connection log row rejected%%'"), 1);
    ck_assert_int_ge(nrt_count_of(out, "rejected by the database"), 2);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_uint_eq(st.db_written, st.db_routed);
    free(out);
}
END_TEST

/* PostgreSQL stops and comes back: rows wait and arrive, once. */
START_TEST(rows_survive_restart)
{
    const char *svc = getenv("NR_SERVICES"), *dir = getenv("NR_SCRATCH");
    struct nr_config c;
    struct nr_log_stats st;
    char cmd[1024];
    char *out;

    ck_assert_msg(svc && dir, "NR_SERVICES and NR_SCRATCH must be set (scripts/services env)");
    cfg_db(&c);
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 200; i++)
        NR_LOG(NR_EV_JOB_STARTED, job_a, 0, NR_S("job_name", "before"), NR_I("seq", i));
    ck_assert_int_eq(nr_log_flush(30), 0);

    PQfinish(pg);
    snprintf(cmd, sizeof(cmd), "'%s' pg-stop '%s' >/dev/null 2>&1", svc, dir);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 200; i < 400; i++)
        NR_LOG(NR_EV_JOB_STARTED, job_a, 0, NR_S("job_name", "during"), NR_I("seq", i));
    ck_assert_int_eq(nr_log_flush(1.5), NR_ETIMEOUT);     /* held, not written */
    snprintf(cmd, sizeof(cmd), "'%s' pg-start '%s' >/dev/null 2>&1", svc, dir);
    ck_assert_int_eq(system(cmd), 0);
    pg = nrt_pg();
    ck_assert_int_eq(nr_log_flush(60), 0);
    nr_log_shutdown();
    nr_log_get_stats(&st);
    out = capture_end();

    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE meta ? 'seq'"), 400);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(DISTINCT (meta->>'seq')::int) FROM logs"), 400);
    ck_assert_uint_eq(st.db_written, 400);
    ck_assert_uint_eq(st.db_dropped, 0);
    ck_assert_int_eq(nrt_count_of(out, "PostgreSQL unavailable"), 1);
    ck_assert_int_ge(nrt_count_of(out, "Connected to PostgreSQL"), 2);
    ck_assert_int_eq(nrt_count_of(out, "held for the database"), 0);   /* debug only */
    free(out);
}
END_TEST

static void restart_teardown(void)
{
    const char *svc = getenv("NR_SERVICES"), *dir = getenv("NR_SCRATCH");
    char cmd[1024];

    /* whatever happened above, leave PostgreSQL running for the others */
    if (svc && dir) {
        snprintf(cmd, sizeof(cmd), "'%s' pg-start '%s' >/dev/null 2>&1", svc, dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not restart PostgreSQL\n");
    }
    teardown();
}

/* ----------------------------------------------------------------- redis */

static json_t *next_message(redisContext *sub, char **channel)
{
    redisReply *r = NULL;
    json_t *o = NULL;

    if (redisGetReply(sub, (void **)&r) != REDIS_OK || r == NULL)
        return NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        strcmp(r->element[0]->str, "message") == 0) {
        *channel = nr_strdup(r->element[1]->str);
        o = json_loads(r->element[2]->str, 0, NULL);
    }
    freeReplyObject(r);
    return o;
}

START_TEST(session_to_redis)
{
    struct nr_config c;
    redisContext *sub = nrt_redis();
    struct timeval tv = { 10, 0 };
    redisReply *r;
    struct nr_log_stats st;
    int on_job = 0, on_prefix = 0;
    char *out;

    r = redisCommand(sub, "SUBSCRIBE session-logs:%lld nr-test-logs", job_a);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    r = NULL;
    ck_assert_int_eq(redisGetReply(sub, (void **)&r), REDIS_OK);   /* 2nd subscribe ack */
    freeReplyObject(r);
    redisSetTimeout(sub, tv);

    cfg_db(&c);
    c.logging.redis.enabled = true;
    c.logging.redis.channel_prefix = "nr-test-logs";
    c.logging.redis.queue_size = 1024;
    c.scheduler.redis_url = (char *)nrt_redis_url();
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(job_a, dev_a, "rx", "Router#show run\r\n", 17);
    ck_assert_int_eq(nr_log_flush(30), 0);

    for (int i = 0; i < 2; i++) {
        char *chan = NULL;
        json_t *o = next_message(sub, &chan), *meta;
        ck_assert_ptr_nonnull(o);
        if (strcmp(chan, "nr-test-logs") == 0)
            on_prefix++;
        else if (strncmp(chan, "session-logs:", 13) == 0 && atoll(chan + 13) == job_a)
            on_job++;
        ck_assert_str_eq(json_string_value(json_object_get(o, "log_type")), "session");
        ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "DEBUG");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "job_id")), job_a);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "device_id")), dev_a);
        ck_assert_str_eq(json_string_value(json_object_get(o, "source")), "session");
        ck_assert_str_eq(json_string_value(json_object_get(o, "message")), "Router#show run");
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "timestamp")));
        meta = json_object_get(o, "meta");
        ck_assert_str_eq(json_string_value(json_object_get(meta, "data")), "Router#show run\r\n");
        ck_assert_str_eq(json_string_value(json_object_get(meta, "direction")), "rx");
        ck_assert_int_eq(json_integer_value(json_object_get(meta, "bytes")), 17);
        json_decref(o);
        free(chan);
    }
    nr_log_get_stats(&st);
    nr_log_shutdown();
    out = capture_end();
    ck_assert_int_eq(on_job, 1);
    ck_assert_int_eq(on_prefix, 1);
    ck_assert_uint_eq(st.redis_published, 1);
    /* at info, session records are neither on stdout nor in the DB */
    ck_assert_int_eq(nrt_count_of(out, "Session log"), 0);
    ck_assert_int_eq(nrt_sql_int(pg, "SELECT count(*) FROM logs WHERE log_type = 'session'"), 0);
    redisFree(sub);
    free(out);
}
END_TEST

/* Redis away: session records are dropped and counted, emitters go on. */
START_TEST(session_redis_away)
{
    struct nr_config c;
    struct nr_log_stats st;
    uint64_t t0;
    char *out;

    cfg_db(&c);
    c.logging.redis.enabled = true;
    c.scheduler.redis_url = "redis://127.0.0.1:1/0";
    capture_begin();
    ck_assert_int_eq(nr_log_init(&c), 0);
    t0 = nr_mono_ns();
    for (int i = 0; i < 100; i++)
        nr_log_session(job_a, dev_a, "tx", "x", 1);
    ck_assert_uint_lt(nr_mono_ns() - t0, 200000000ull);
    ck_assert_int_eq(nr_log_flush(10), 0);
    nr_log_shutdown();
    nr_log_get_stats(&st);
    out = capture_end();
    ck_assert_uint_eq(st.redis_published, 0);
    ck_assert_uint_eq(st.redis_dropped, 100);
    ck_assert_int_eq(nrt_count_of(out, "Redis unavailable"), 1);
    free(out);
}
END_TEST

/* database.url with a password libpq cannot %-decode: libpq's error quotes
 * the raw token ("invalid percent-encoded token: ..."), and the DB writer
 * says why PostgreSQL is unavailable.  The password never reaches stdout
 * or stderr (issue 10, defect 3). */
START_TEST(db_password_never_printed)
{
    static const char pw[] = "Hunter2%zz";
    const char *base = nrt_db_url(), *auth = strstr(base, "://"), *at;
    struct nr_config c;
    char *url, *out, *err, *err_path = nr_asprintf("%s/stderr", scratch);
    int saved_stderr, fd;

    ck_assert_ptr_nonnull(auth);
    auth += 3;
    at = strchr(auth, '@');
    if (at != NULL)     /* the test URL's user, with the bad password added */
        url = nr_asprintf("postgresql://%.*s:%s%s", (int)(at - auth), auth, pw, at);
    else
        url = nr_asprintf("postgresql://nr:%s@%s", pw, auth);
    cfg_db(&c);
    c.database.url = url;
    c.worker.spool_dir = scratch;       /* the row waits there: shutdown is quick */

    capture_begin();
    fflush(stderr);
    saved_stderr = fcntl(2, F_DUPFD_CLOEXEC, 3);
    fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_STARTED, job_a, 0, NR_S("job_name", "log-job-a"));
    nr_log_flush(1);    /* the writer has tried PostgreSQL by then (connect fails at once) */
    nr_log_shutdown();
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    out = capture_end();
    err = nrt_read_file(err_path);

    ck_assert_msg(strstr(out, "PostgreSQL unavailable") != NULL, "no outage said: %s", out);
    ck_assert_msg(strstr(out, "percent-encoded") != NULL, "not libpq's reason: %s", out);
    ck_assert_msg(strstr(out, "Hunter2") == NULL, "password on stdout: %s", out);
    ck_assert_msg(err == NULL || strstr(err, "Hunter2") == NULL, "password on stderr: %s", err);
    free(out);
    free(err);
    free(err_path);
    free(url);
}
END_TEST

static Suite *logdb_suite(void)
{
    Suite *s = suite_create("logdb");
    TCase *tc;

    tc = tcase_create("db");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    nrt_add_test(tc, rows_reach_logs);
    nrt_add_test(tc, rows_with_unknown_ids);
    nrt_add_test(tc, db_password_never_printed);
    suite_add_tcase(s, tc);

    tc = tcase_create("restart");
    tcase_add_checked_fixture(tc, setup, restart_teardown);
    tcase_set_timeout(tc, 180);
    nrt_add_test(tc, rows_survive_restart);
    suite_add_tcase(s, tc);

    tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    nrt_add_test(tc, session_to_redis);
    nrt_add_test(tc, session_redis_away);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(logdb_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
