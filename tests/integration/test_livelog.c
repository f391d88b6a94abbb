/*
 * test_livelog.c - what NetRaven's users see of a run (issue 11, items 1-3):
 * the worker binary, devsim (real SSH on loopback), PostgreSQL, the queues'
 * Redis and a SECOND Redis that this test starts itself, on a free loopback
 * port, with a password: the one NetRaven's API would subscribe to, named
 * by logging.redis.host / port / db / password.
 *
 * One config_backup of a cisco_ios device, while one subscriber listens on
 * each Redis (session-logs:<job> and netraven-logs).  Then:
 *
 *   - the records arrive on the second Redis, none on the queues' Redis;
 *   - every published record has an upper-case level, and so has every row
 *     of the job in `logs` (NetRaven's Job Logs page filters on INFO, ...);
 *   - the records' `message` is the session a person reads in LiveLog.vue:
 *     what the worker typed with "> " ("> show running-config", the enable
 *     secret as "> ********"), what the device printed as it is, and the
 *     stored configuration can be read off the messages, line by line, in
 *     order; no message is a byte count;
 *   - no password, enable secret or redactable line in any message, and
 *     the publisher's password never in the worker's output.
 */
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

#define PW      "liveLogin-Pw.4hQs"         /* the device's login password (plain) */
#define ES      "liveEnable-Sec.9wXe"       /* its enable secret */
#define RPW     "liveRedis-Pw.2kLm"         /* the second Redis's requirepass */
#define RDB     "3"                         /* logging.redis.db */
#define SENTINEL "{\"livelog\":\"end of the test's messages\"}"

#define N_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

static PGconn *db;
static struct nrt_proc devsim, worker;
static bool devsim_up, worker_up;
static pid_t redis2_pid;
static int redis2_port;
static char *suite_dir;
static char dev_ip[32];
static int dev_port;

/* ---- the second Redis ---------------------------------------------------------- */

/* A port the kernel says is free on 127.0.0.1 right now. */
static int free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *redis2_connect(void)
{
    redisContext *c = redisConnect("127.0.0.1", redis2_port);
    redisReply *r;

    if (c == NULL || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    r = redisCommand(c, "AUTH %s", RPW);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    return c;
}

/* redis-server on a free loopback port, no persistence, with a password;
 * its descriptors are only /dev/null and its log (a server holding the
 * test's pipes would keep meson waiting).  Check kills the test's process
 * group after the test, so it does not outlive a failed test either. */
static bool redis2_try(void)
{
    char port[16], *logf;
    pid_t pid;

    redis2_port = free_port();
    snprintf(port, sizeof(port), "%d", redis2_port);
    if (asprintf(&logf, "%s/redis2.log", suite_dir) < 0)
        abort();
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR), lf = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        if (nul < 0 || lf < 0)
            _exit(126);
        dup2(nul, 0);
        dup2(lf, 1);
        dup2(lf, 2);
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", suite_dir,
               "--requirepass", RPW, (char *)NULL);
        _exit(127);
    }
    free(logf);
    redis2_pid = pid;
    for (int i = 0; i < 300; i++) {
        redisContext *c = redis2_connect();
        int st;

        if (c) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;

            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return true;
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {    /* the port was taken meanwhile */
            redis2_pid = 0;
            return false;
        }
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    redis2_pid = 0;
    return false;
}

static void redis2_start(void)
{
    for (int attempt = 0; attempt < 5; attempt++)
        if (redis2_try())
            return;
    ck_abort_msg("the second redis-server did not start (log in %s)", suite_dir);
}

static void redis2_stop(void)
{
    if (redis2_pid > 0) {
        kill(redis2_pid, SIGTERM);
        waitpid(redis2_pid, NULL, 0);
    }
    redis2_pid = 0;
}

/* ---- devsim: one cisco_ios device ------------------------------------------------ */

static bool devsim_try(unsigned net, int port)
{
    char *inv, *state;
    FILE *f;
    bool ready;

    dev_port = port;
    snprintf(dev_ip, sizeof(dev_ip), "127.%u.%u.1", 80 + net / 200, net % 200);
    if (asprintf(&inv, "%s/inventory.yaml", suite_dir) < 0 ||
        asprintf(&state, "%s/devsim", suite_dir) < 0)
        abort();
    f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  port: %d\n"
               "  accounts: [{username: admin, password: \"%s\"}]\n"
               "  enable_secret: \"%s\"\n  config_kb: 4\n  latency_ms: 1\n"
               "devices:\n  - {name: live-ios, type: cisco_ios, listen: %s}\n",
            port, PW, ES, dev_ip);
    fclose(f);
    ready = nrt_devsim_start(&devsim, inv, state);
    free(inv);
    free(state);
    return ready;
}

static void devsim_start(void)
{
    unsigned seed = (unsigned)getpid() * 6151u;

    for (unsigned attempt = 0; attempt < 8; attempt++, seed += 104729u)
        if (devsim_try(seed % 4000, 10000 + (int)(seed % 22000))) {
            devsim_up = true;
            return;
        }
    ck_abort_msg("devsim did not start (built at %s?)", NR_BUILD_ROOT "/tools/devsim/devsim");
}

/* ---- subscribers ------------------------------------------------------------------- */

struct sub {
    redisContext *c;
    pthread_t     th;
    char        **channel, **payload;   /* what arrived, in order */
    size_t        n, cap;
    bool          got_sentinel;
    char          error[128];
};

/* Reads until the sentinel (published by the test once the worker has
 * exited) or an error (the context's read timeout). */
static void *sub_main(void *arg)
{
    struct sub *s = arg;

    for (;;) {
        redisReply *r = NULL;

        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            snprintf(s->error, sizeof(s->error), "%s", s->c->errstr);
            return NULL;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->str &&
            strcmp(r->element[0]->str, "message") == 0) {
            if (strcmp(r->element[2]->str, SENTINEL) == 0) {
                s->got_sentinel = true;
                freeReplyObject(r);
                return NULL;
            }
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 256;
                s->channel = realloc(s->channel, s->cap * sizeof(char *));
                s->payload = realloc(s->payload, s->cap * sizeof(char *));
            }
            s->channel[s->n] = strdup(r->element[1]->str);
            s->payload[s->n] = strndup(r->element[2]->str, r->element[2]->len);
            s->n++;
        }
        freeReplyObject(r);
    }
}

static void sub_start(struct sub *s, redisContext *c, long long job)
{
    struct timeval tv = { 120, 0 };
    redisReply *r;

    memset(s, 0, sizeof(*s));
    s->c = c;
    ck_assert_ptr_nonnull(c);
    redisSetTimeout(s->c, tv);
    r = redisCommand(s->c, "SUBSCRIBE session-logs:%lld netraven-logs", job);
    ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY, "SUBSCRIBE failed");
    freeReplyObject(r);
    ck_assert_int_eq(redisGetReply(s->c, (void **)&r), REDIS_OK);   /* the second channel */
    freeReplyObject(r);
    ck_assert_int_eq(pthread_create(&s->th, NULL, sub_main, s), 0);
}

static void sub_finish(struct sub *s, redisContext *pub)
{
    redisReply *r = redisCommand(pub, "PUBLISH netraven-logs %s", SENTINEL);

    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "PUBLISH failed");
    freeReplyObject(r);
    redisFree(pub);
    pthread_join(s->th, NULL);
    ck_assert_msg(s->got_sentinel, "the subscriber stopped early: %s", s->error);
    redisFree(s->c);
    s->c = NULL;
}

static void sub_clear(struct sub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->channel[i]);
        free(s->payload[i]);
    }
    free(s->channel);
    free(s->payload);
}

/* ---- worker -------------------------------------------------------------------------- */

static void worker_start(void)
{
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    char *spool, *port;

    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s/spool", suite_dir) < 0 ||
        asprintf(&port, "NETRAVEN_LOGGING__REDIS__PORT=%d", redis2_port) < 0)
        abort();
    char *extra[] = {
        "NETRAVEN_ENV=dev",
        "NETRAVEN_SSH__ENABLE_SECRET=" ES,
        "NETRAVEN_LOGGING__LEVEL=info",
        "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
        "NETRAVEN_LOGGING__REDIS__HOST=127.0.0.1",
        "NETRAVEN_LOGGING__REDIS__DB=" RDB,
        "NETRAVEN_LOGGING__REDIS__PASSWORD=" RPW,
        port, spool, NULL,
    };
    nrt_proc_start(&worker, argv, extra);
    worker_up = true;
    free(spool);
    free(port);
}

static void enqueue_wait(long long job)
{
    char jobbuf[24];
    char *argv[] = { (char *)nrt_worker_bin(), "enqueue", jobbuf, "--wait", "--timeout", "50",
                     NULL };
    struct nrt_proc p;
    char *out;

    snprintf(jobbuf, sizeof(jobbuf), "%lld", job);
    nrt_proc_start(&p, argv, NULL);
    ck_assert_msg(nrt_proc_wait(&p, 60), "enqueue --wait did not return");
    out = nrt_proc_stdout(&p);
    ck_assert_msg(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "enqueue failed: %s", out);
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "enqueue printed: %s", out);
    free(out);
    nrt_proc_clear(&p);
}

/* ---- fixtures ------------------------------------------------------------------------ */

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
    suite_dir = nrt_tmpdir("livelog");
}

static void teardown(void)
{
    if (worker_up)
        nrt_proc_stop(&worker, 5);
    worker_up = false;
    if (devsim_up) {
        nrt_proc_stop(&devsim, 2);
        nrt_proc_clear(&devsim);
    }
    devsim_up = false;
    redis2_stop();
    PQfinish(db);
    free(suite_dir);
    suite_dir = NULL;
}

/* ---- checks ---------------------------------------------------------------------------- */

static bool level_ok(const char *l)
{
    static const char *const names[] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };

    for (size_t i = 0; l && i < N_ARRAY(names); i++)
        if (strcmp(l, names[i]) == 0)
            return true;
    return false;
}

static void assert_clean(const char *what, const char *text)
{
    /* secrets, and lines of devsim's config that redaction removes */
    const char *bad[] = { PW, ES, RPW, "secret 5 $", "password 7 ", "enable password " };

    for (size_t i = 0; i < N_ARRAY(bad); i++)
        ck_assert_msg(strstr(text, bad[i]) == NULL, "%s holds '%s'", what, bad[i]);
}

/* The session as a person reads it in the live view: the messages of the
 * device's records, after the config command was typed, one per line. */
static char *received_after_command(const struct sub *s, long long job, long long dev,
                                    size_t *nrec)
{
    char channel[64];
    size_t cap = 4096, len = 0, sent = 0, masked = 0;
    char *text = malloc(cap);
    bool after = false;

    snprintf(channel, sizeof(channel), "session-logs:%lld", job);
    text[0] = '\0';
    *nrec = 0;
    for (size_t i = 0; i < s->n; i++) {
        json_t *o, *meta;
        const char *msg, *dir, *level;

        if (strcmp(s->channel[i], channel) != 0)
            continue;
        o = json_loads(s->payload[i], 0, NULL);
        ck_assert_msg(json_is_object(o), "not a JSON object: %s", s->payload[i]);
        level = json_string_value(json_object_get(o, "level"));
        ck_assert_msg(level_ok(level), "a record with level '%s'", level ? level : "(none)");
        if (json_integer_value(json_object_get(o, "device_id")) != dev ||
            strcmp(json_string_value(json_object_get(o, "log_type")), "session") != 0) {
            json_decref(o);
            continue;
        }
        ck_assert_str_eq(level, "DEBUG");
        msg = json_string_value(json_object_get(o, "message"));
        meta = json_object_get(o, "meta");
        dir = json_string_value(json_object_get(meta, "direction"));
        ck_assert_ptr_nonnull(msg);
        ck_assert_msg(strstr(msg, "Session log:") == NULL,
                      "a byte count, not the session: '%s'", msg);
        ck_assert_ptr_null(strchr(msg, '\r'));
        if (dir == NULL) {          /* prompt / pager records */
            json_decref(o);
            continue;
        }
        ck_assert_msg(json_string_value(json_object_get(meta, "data")) != NULL &&
                      json_integer_value(json_object_get(meta, "bytes")) > 0,
                      "meta lost its data or bytes: %s", s->payload[i]);
        if (strcmp(dir, "sent") == 0) {
            sent++;
            for (const char *line = msg;;) {
                const char *nl = strchr(line, '\n');

                ck_assert_msg(strncmp(line, "> ", 2) == 0, "a sent line without '> ': '%s'", msg);
                if (nl == NULL)
                    break;
                line = nl + 1;
            }
            masked += strcmp(msg, "> ********") == 0;
            after = strcmp(msg, "> show running-config") == 0;
            if (after)
                len = 0;
        } else if (after) {
            size_t m = strlen(msg);

            while (len + m + 2 > cap)
                text = realloc(text, cap *= 2);
            memcpy(text + len, msg, m);
            len += m;
            text[len++] = '\n';
            (*nrec)++;
        }
        json_decref(o);
    }
    text[len] = '\0';
    ck_assert_uint_ge(sent, 3);     /* terminal length 0, enable, its secret, the command */
    ck_assert_msg(masked == 1, "the enable secret typed %zu times as '> ********'", masked);
    return text;
}

START_TEST(live_view_on_the_api_redis)
{
    long long tag, dev, cred, job;
    struct sub q, api;
    char *text, *config, *out;
    const char *pos;
    size_t lines = 0, nrec = 0, on_api = 0;
    redisContext *qc;

    redis2_start();
    devsim_start();

    tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('livelog', 'device') "
                          "RETURNING id");
    dev = nrt_sql_int(db, "INSERT INTO devices (hostname, ip_address, device_type, port, source) "
                          "VALUES ('live-ios', '%s', 'cisco_ios', %d, 'local') RETURNING id",
                      dev_ip, dev_port);
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", dev, tag));
    /* a plain password: NetRaven's legacy rows, no encryption key needed */
    cred = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority, description, "
                           "is_system) VALUES ('admin', '%s', 10, 'livelog', false) RETURNING id",
                       PW);
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", cred, tag));
    job = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
                          "VALUES ('livelog', 'config_backup', 'PENDING', true, 'onetime') "
                          "RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));

    sub_start(&q, nrt_redis(), job);
    sub_start(&api, redis2_connect(), job);
    worker_start();
    enqueue_wait(job);
    nrt_proc_stop(&worker, 30);
    worker_up = false;
    ck_assert_msg(WIFEXITED(worker.status) && WEXITSTATUS(worker.status) == 0,
                  "worker did not exit 0 on SIGTERM (status %d)", worker.status);
    /* the worker has exited: all it published is before the sentinels */
    qc = nrt_redis();
    sub_finish(&q, qc);
    sub_finish(&api, redis2_connect());

    /* ---- where: the API's Redis, not the queues' */
    ck_assert_msg(q.n == 0, "%zu records on the queues' Redis, first: %s", q.n,
                  q.n ? q.payload[0] : "");
    for (size_t i = 0; i < api.n; i++) {
        assert_clean("a published record", api.payload[i]);
        on_api += strncmp(api.channel[i], "session-logs:", 13) == 0;
    }
    ck_assert_uint_gt(on_api, 5);
    ck_assert_uint_eq(api.n, 2 * on_api);       /* each also on netraven-logs */

    /* ---- what: the session, readable, in order */
    text = received_after_command(&api, job, dev, &nrec);
    config = nrt_sql_str(db, "SELECT config_data FROM device_configurations WHERE "
                             "device_id = %lld ORDER BY id DESC LIMIT 1", dev);
    ck_assert_ptr_nonnull(config);
    ck_assert_ptr_nonnull(strstr(config, "[REDACTED LINE]"));
    pos = text;
    for (char *line = config; *line;) {
        size_t len = strcspn(line, "\n");
        char *want = strndup(line, len);
        const char *hit = NULL;

        for (const char *h = pos; (h = strstr(h, want)) != NULL; h++)
            if ((h == text || h[-1] == '\n') && h[len] == '\n') {
                hit = h;
                break;
            }
        ck_assert_msg(hit != NULL, "config line %zu '%s' is not a message line of the live "
                      "view (in order)", lines + 1, want);
        pos = hit + len;
        free(want);
        lines++;
        line += len + (line[len] == '\n');
    }
    ck_assert_uint_gt(lines, 30);
    fprintf(stderr, "  %zu config lines in %zu records after the command\n", lines, nrec);
    if (getenv("NRT_LIVELOG_DUMP"))
        fprintf(stderr, "%s", text);
    /* whole lines per record (one or a few, as they came), never one per byte */
    ck_assert_msg(nrec > 0 && nrec <= lines + 4, "%zu records for %zu lines", nrec, lines);
    free(config);
    free(text);

    /* ---- levels in logs, as NetRaven's Job Logs page filters them */
    ck_assert_int_gt(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld", job), 10);
    ck_assert_int_gt(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "level = 'INFO'", job), 5);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE level NOT IN "
                                     "('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')"), 0);

    /* ---- the publisher said where it went, without its password */
    out = nrt_proc_stdout(&worker);
    {
        char want[96];

        snprintf(want, sizeof(want), "Connected to Redis at redis://:****@127.0.0.1:%d/" RDB,
                 redis2_port);
        ck_assert_msg(strstr(out, want) != NULL, "stdout does not say '%s'", want);
    }
    ck_assert_ptr_null(strstr(out, RPW));
    free(out);
    out = nrt_read_file(worker.err_path);
    ck_assert_ptr_null(strstr(out ? out : "", RPW));
    free(out);

    sub_clear(&q);
    sub_clear(&api);
    nrt_proc_clear(&worker);
}
END_TEST

static Suite *livelog_suite(void)
{
    Suite *s = suite_create("livelog");
    TCase *tc = tcase_create("api redis");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    nrt_add_test(tc, live_view_on_the_api_redis);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(livelog_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
