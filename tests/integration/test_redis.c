/*
 * test_redis.c - one reading of scheduler.redis_url everywhere (issue 10,
 * defect 4), against real Redis servers: the test Redis of scripts/test,
 * and one this suite starts itself on a unix socket in its scratch folder.
 *
 * The stream queue (and the python-rq protocol, which connects through
 * it) and the live log publisher open their connections with the redis
 * module, so they read a URL alike, and as redis-py does for NetRaven's
 * API:
 *   - "redis://x@host" names the user x (AUTH x ""), for both; the
 *     publisher used to send x as a password, the queue sent no AUTH;
 *   - the publisher honours ?db= and unix:// sockets as the queue does.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "netraven/config.h"
#include "netraven/log.h"
#include "netraven/queue.h"
#include "netraven/redis.h"

#define LONE    "nrt_lone"      /* an ACL user with no password (nopass) */

static struct nr_redis_url test_srv;    /* the test Redis, from NR_TEST_REDIS_URL */
static char *scratch;
static int saved_stdout = -1;

static redisReply *rcmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis: %s", c->errstr);
    return r;
}

/* Does CLIENT LIST on c show a client with every one of the fields
 * ("user=nrt_lone", "db=6", ...)? */
static bool has_client(redisContext *c, const char *f1, const char *f2)
{
    redisReply *r = rcmd(c, "CLIENT LIST");
    bool found = false;

    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);      /* RESP2 */
    for (char *line = r->str, *nl; line && *line && !found; line = nl ? nl + 1 : NULL) {
        char buf[1024];
        size_t n;

        nl = strchr(line, '\n');
        n = nl ? (size_t)(nl - line) : strlen(line);
        if (n >= sizeof(buf))
            n = sizeof(buf) - 1;
        memcpy(buf, line, n);
        buf[n] = '\0';
        /* fields are " name=value", so " db=6 " cannot match "db=60" */
        strcat(buf, " ");
        char want1[128], want2[128];
        snprintf(want1, sizeof(want1), " %s ", f1);
        snprintf(want2, sizeof(want2), " %s ", f2 ? f2 : f1);
        if (strstr(buf, want1) && strstr(buf, want2) && !strstr(buf, " cmd=client|list "))
            found = true;
    }
    freeReplyObject(r);
    return found;
}

static void setup(void)
{
    char err[256];
    redisContext *c;

    ck_assert_msg(nr_redis_url_parse(nrt_redis_url(), "NR_TEST_REDIS_URL", &test_srv, err,
                                     sizeof(err)) == 0, "%s", err);
    scratch = nrt_tmpdir("redis");
    c = nrt_redis();
    freeReplyObject(rcmd(c, "ACL SETUSER " LONE " reset on nopass ~* &* +@all"));
    redisFree(c);
    nrt_redis_reset();
}

static void teardown(void)
{
    redisContext *c = nrt_redis();

    freeReplyObject(rcmd(c, "ACL DELUSER " LONE));
    redisFree(c);
    nr_redis_url_clear(&test_srv);
    free(scratch);
}

/* The log module's stdout into a file (the test reads it back). */
static void capture_begin(void)
{
    char *path = nr_asprintf("%s/stdout", scratch);
    int fd;

    fflush(stdout);
    saved_stdout = dup(1);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 1);
    close(fd);
    free(path);
}

static char *capture_end(void)
{
    char *path = nr_asprintf("%s/stdout", scratch), *text;

    fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
    text = nrt_read_file(path);
    free(path);
    return text ? text : nr_strdup("");
}

/* The publisher alone (no DB sink), on url. */
static void log_start(struct nr_config *c, const char *url)
{
    memset(c, 0, sizeof(*c));
    c->logging.level = NR_LOG_INFO;
    c->logging.queue_size = 4096;
    c->logging.redis.enabled = true;
    c->logging.redis.channel_prefix = "nr-test-logs";
    c->logging.redis.queue_size = 1024;
    c->scheduler.redis_url = (char *)url;
    capture_begin();
    ck_assert_int_eq(nr_log_init(c), 0);
}

/* Publish one session record; returns how many were published. */
static uint64_t publish_one(void)
{
    struct nr_log_stats st;

    nr_log_session(7, 8, "rx", "R1#", 3);
    ck_assert_int_eq(nr_log_flush(15), 0);
    nr_log_get_stats(&st);
    return st.redis_published;
}

START_TEST(lone_user_is_a_user_for_the_queue)
{
    struct nr_config cfg;
    struct nr_queue *q;
    redisContext *c = nrt_redis();
    char *url = nr_asprintf("redis://" LONE "@%s:%d/0", test_srv.host, test_srv.port);

    memset(&cfg, 0, sizeof(cfg));
    cfg.scheduler.redis_url = url;
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_msg(q->err == 0, "errstr: %s", q->errstr);
    ck_assert_msg(has_client(c, "user=" LONE, NULL), "the queue did not log in as " LONE);
    nr_queue_free(q);

    /* a user Redis does not know: refused, as redis-py is refused */
    free(url);
    url = nr_asprintf("redis://nrt_nobody@%s:%d/0", test_srv.host, test_srv.port);
    cfg.scheduler.redis_url = url;
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "AUTH failed: WRONGPASS") != NULL, "errstr: %s", q->errstr);
    nr_queue_free(q);
    free(url);
    redisFree(c);
}
END_TEST

START_TEST(lone_user_is_a_user_for_the_publisher)
{
    struct nr_config cfg;
    redisContext *c = nrt_redis();
    char *url = nr_asprintf("redis://" LONE "@%s:%d/0", test_srv.host, test_srv.port), *out;
    uint64_t published;
    bool as_lone;

    log_start(&cfg, url);
    published = publish_one();
    as_lone = has_client(c, "user=" LONE, NULL);
    nr_log_shutdown();
    out = capture_end();
    ck_assert_msg(published == 1, "published %llu; stdout: %s", (unsigned long long)published,
                  out);
    ck_assert_msg(as_lone, "the publisher did not log in as " LONE);
    ck_assert_msg(strstr(out, "Redis unavailable") == NULL, "stdout: %s", out);
    free(out);
    free(url);
    redisFree(c);
}
END_TEST

START_TEST(publisher_selects_the_db)
{
    struct nr_config cfg;
    redisContext *c = nrt_redis();
    char *url = nr_asprintf("redis://%s:%d?db=6", test_srv.host, test_srv.port), *out;
    uint64_t published;
    bool on_6;

    log_start(&cfg, url);
    published = publish_one();
    on_6 = has_client(c, "db=6", NULL);
    nr_log_shutdown();
    out = capture_end();
    ck_assert_msg(published == 1, "published %llu; stdout: %s", (unsigned long long)published,
                  out);
    ck_assert_msg(on_6, "no connection on db 6: ?db= ignored");
    free(out);
    free(url);
    redisFree(c);
}
END_TEST

/* ---- a Redis on a unix socket, with a password ---------------------------------- */

#define SOCK_PW "unixRedis-Pw.8sQa"

static pid_t unix_redis_start(const char *sock)
{
    char *logf = nr_asprintf("%s/redis-unix.log", scratch);
    pid_t pid = fork();

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
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", scratch,
               "--requirepass", SOCK_PW, (char *)NULL);
        _exit(127);
    }
    free(logf);
    for (int i = 0; i < 500; i++) {
        redisContext *c = redisConnectUnix(sock);
        bool up = c != NULL && c->err == 0;

        if (c)
            redisFree(c);
        if (up)
            return pid;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("redis-server on %s did not start", sock);
    return -1;
}

START_TEST(unix_socket_for_queue_and_publisher)
{
    char *sock = nr_asprintf("%s/r.sock", scratch);
    char *url = nr_asprintf("unix://:%s@%s?db=2", SOCK_PW, sock), *out;
    pid_t pid = unix_redis_start(sock);
    struct nr_config cfg;
    struct nr_queue *q;
    uint64_t published;

    memset(&cfg, 0, sizeof(cfg));
    cfg.scheduler.redis_url = url;
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_msg(q->err == 0, "errstr: %s", q->errstr);
    nr_queue_free(q);

    log_start(&cfg, url);
    published = publish_one();
    nr_log_shutdown();
    out = capture_end();
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    ck_assert_msg(published == 1, "published %llu; stdout: %s", (unsigned long long)published,
                  out);
    ck_assert_msg(strstr(out, SOCK_PW) == NULL, "the password on stdout: %s", out);
    free(out);
    free(url);
    free(sock);
}
END_TEST

/* ---- who listens ------------------------------------------------------------------ */

/* A connection to the private Redis on sock, logged in. */
static redisContext *unix_conn(const char *sock)
{
    redisContext *c = redisConnectUnix(sock);
    struct timeval tv = { 5, 0 };

    ck_assert_msg(c != NULL && c->err == 0, "connect %s", sock);
    redisSetTimeout(c, tv);
    freeReplyObject(rcmd(c, "AUTH %s", SOCK_PW));
    return c;
}

/* How many PUBLISH commands the server has run (INFO commandstats). */
static long long publish_calls(redisContext *c)
{
    redisReply *r = rcmd(c, "INFO commandstats");
    const char *p = strstr(r->str, "cmdstat_publish:calls=");
    long long n = p ? atoll(p + strlen("cmdstat_publish:calls=")) : 0;

    freeReplyObject(r);
    return n;
}

/* Session records and the publisher's stats after they were flushed. */
static uint64_t emit_records(long long job, int n)
{
    struct nr_log_stats st;

    for (int i = 0; i < n; i++)
        nr_log_session(job, 8, "received", "hostname r1\n", 12);
    ck_assert_int_eq(nr_log_flush(15), 0);
    nr_log_get_stats(&st);
    return st.redis_published;
}

/* The message of the next pub/sub delivery on c (SUBSCRIBE or PSUBSCRIBE);
 * "" past the timeout. */
static char *next_message(redisContext *c, char *channel, size_t chlen)
{
    redisReply *r = NULL;
    char *msg;

    if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL)
        return nr_strdup("");
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    snprintf(channel, chlen, "%s", r->element[r->elements - 2]->str);
    msg = nr_strdup(r->element[r->elements - 1]->str);
    freeReplyObject(r);
    return msg;
}

/* A record no one listens to is not sent (Redis would drop it); one that
 * someone listens to goes to the channels that have listeners: the job's,
 * the stream's, or both when a pattern subscription could match. */
START_TEST(publisher_sends_where_someone_listens)
{
    char *sock = nr_asprintf("%s/l.sock", scratch);
    char *url = nr_asprintf("unix://:%s@%s", SOCK_PW, sock), *out, *m, ch[64];
    pid_t pid = unix_redis_start(sock);
    redisContext *admin = unix_conn(sock), *job = unix_conn(sock), *pat = unix_conn(sock);
    redisContext *stream = unix_conn(sock);
    struct nr_config cfg;
    long long calls;

    log_start(&cfg, url);

    /* nobody: counted as published, never sent */
    calls = publish_calls(admin);
    ck_assert_uint_eq(emit_records(7, 3), 3);
    ck_assert_int_eq(publish_calls(admin), calls);

    /* the job's channel only: sent there, not to the stream */
    freeReplyObject(rcmd(job, "SUBSCRIBE session-logs:7"));
    ck_assert_uint_eq(emit_records(7, 2), 5);
    ck_assert_int_eq(publish_calls(admin), calls + 2);
    for (int i = 0; i < 2; i++) {
        m = next_message(job, ch, sizeof(ch));
        ck_assert_str_eq(ch, "session-logs:7");
        ck_assert_msg(strstr(m, "\"message\":\"hostname r1\"") != NULL, "got: %s", m);
        free(m);
    }
    ck_assert_uint_eq(emit_records(9, 1), 6);       /* another job: nobody */
    ck_assert_int_eq(publish_calls(admin), calls + 2);

    /* a pattern could match anything: both channels */
    freeReplyObject(rcmd(pat, "PSUBSCRIBE session-logs:*"));
    ck_assert_uint_eq(emit_records(9, 1), 7);
    ck_assert_int_eq(publish_calls(admin), calls + 4);
    m = next_message(pat, ch, sizeof(ch));
    ck_assert_str_eq(ch, "session-logs:9");
    free(m);
    redisFree(pat);

    /* the stream's channel: every record there, the job's where heard */
    freeReplyObject(rcmd(stream, "SUBSCRIBE nr-test-logs"));
    ck_assert_uint_eq(emit_records(9, 1), 8);
    ck_assert_int_eq(publish_calls(admin), calls + 5);
    m = next_message(stream, ch, sizeof(ch));
    ck_assert_str_eq(ch, "nr-test-logs");
    ck_assert_msg(strstr(m, "\"job_id\":9") != NULL, "got: %s", m);
    free(m);
    ck_assert_uint_eq(emit_records(7, 1), 9);
    ck_assert_int_eq(publish_calls(admin), calls + 7);

    nr_log_shutdown();
    out = capture_end();
    redisFree(job);
    redisFree(stream);
    redisFree(admin);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(out);
    free(url);
    free(sock);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("reading");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    nrt_add_test(tc, lone_user_is_a_user_for_the_queue);
    nrt_add_test(tc, lone_user_is_a_user_for_the_publisher);
    nrt_add_test(tc, publisher_selects_the_db);
    nrt_add_test(tc, unix_socket_for_queue_and_publisher);
    nrt_add_test(tc, publisher_sends_where_someone_listens);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
