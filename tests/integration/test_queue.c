/*
 * test_queue.c - the native job queue against a real Redis
 * (NR_TEST_REDIS_URL): group creation, enqueue/read, re-delivery of pending
 * entries after a restart, ack and the done list, wait_done, dead letters,
 * two consumers sharing a stream, connection failures, AUTH and SELECT,
 * error replies (a stream key holding a string), the trim of acknowledged
 * entries and delivery counts.
 *
 * Every test starts from an empty database (FLUSHDB) and inspects Redis
 * through a separate raw hiredis connection.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "harness.h"
#include "netraven/queue.h"

#define STREAM  "netraven:jobs"
#define GROUP   "netraven-workers"
#define DEAD    "netraven:jobs:dead"

static struct nr_config cfg;
static redisContext *raw;

static void setup(void)
{
    nrt_redis_reset();
    memset(&cfg, 0, sizeof(cfg));
    cfg.scheduler.redis_url = (char *)nrt_redis_url();
    cfg.queue.stream = STREAM;
    cfg.queue.group = GROUP;
    cfg.queue.dead_stream = DEAD;
    cfg.queue.block_ms = 1000;
    raw = nrt_redis();
}

static void teardown(void)
{
    if (raw)
        redisFree(raw);
    raw = NULL;
}

/* A raw command on the inspection connection; aborts on failure. */
static redisReply *rcmd(const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(raw, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "raw redis command failed: %s", raw->errstr);
    return r;
}

static long long rint_(const char *fmt, const char *arg)
{
    redisReply *r = rcmd(fmt, arg);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "%s: not an integer reply (%d: %s)", fmt,
                  r->type, r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Number of entries pending in the group (XPENDING summary). */
static long long pending_count(void)
{
    redisReply *r = rcmd("XPENDING %s %s", STREAM, GROUP);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(r->element[0]->type, REDIS_REPLY_INTEGER);
    long long n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

static struct nr_queue *connect_ok(const char *consumer)
{
    struct nr_queue *q = nr_queue_connect(&cfg, consumer);
    ck_assert_ptr_nonnull(q);
    ck_assert_msg(q->err == 0, "connect failed: %s", q->errstr);
    return q;
}

static char *enqueue_ok(struct nr_queue *q, const char *payload)
{
    char *id = NULL;
    ck_assert_msg(nr_queue_enqueue(q, payload, &id) == 0, "enqueue: %s", q->errstr);
    ck_assert_ptr_nonnull(id);
    return id;
}

static size_t read_ok(struct nr_queue *q, struct nr_queue_msg *msgs, size_t max, int block_ms)
{
    size_t n = 12345;
    int rc = nr_queue_read(q, msgs, max, block_ms, &n);
    ck_assert_msg(rc == 0, "read returned %d: %s", rc, q->errstr);
    ck_assert_uint_le(n, max);
    return n;
}

static void clear_msgs(struct nr_queue_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nr_queue_msg_clear(&m[i]);
}

/* A loopback TCP port nobody listens on. */
static int dead_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* "127.0.0.1:PORT" of the test Redis, from its URL. */
static void test_hostport(char *host, size_t hlen, int *port)
{
    char h[128];
    int p = 0;

    ck_assert_msg(sscanf(nrt_redis_url(), "redis://%127[^:/]:%d", h, &p) == 2,
                  "cannot parse NR_TEST_REDIS_URL");
    snprintf(host, hlen, "%s", h);
    *port = p;
}

/* ------------------------------------------------------------------ tests */

START_TEST(test_group_created_once)
{
    struct nr_queue *a = connect_ok("c1");
    struct nr_queue *b = connect_ok("c2");      /* BUSYGROUP is not an error */

    ck_assert_int_eq(rint_("EXISTS %s", STREAM), 1);
    redisReply *r = rcmd("XINFO GROUPS %s", STREAM);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    freeReplyObject(r);
    /* a reset also finds the group in place */
    ck_assert_int_eq(nr_queue_reset(a), 0);
    ck_assert_int_eq(a->err, 0);
    nr_queue_free(a);
    nr_queue_free(b);
    nr_queue_free(NULL);
}
END_TEST

START_TEST(test_enqueue_then_read)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[4];
    /* spaces, %-signs and UTF-8 travel untouched */
    const char *payload = "{\"job_id\": 7, \"run_id\": \"a b %s %b \xc3\xa9\"}";
    char *id = enqueue_ok(q, payload);
    size_t n;

    n = read_ok(q, m, 4, 1000);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].entry_id, id);
    ck_assert_ptr_nonnull(m[0].payload);
    ck_assert_uint_eq(m[0].payload_len, strlen(payload));
    ck_assert_str_eq(m[0].payload, payload);

    /* and it parses */
    struct nr_payload p;
    char *reason = NULL;
    ck_assert_int_eq(nr_payload_parse(m[0].payload, m[0].payload_len, &p, &reason), 0);
    ck_assert_int_eq(p.job_id, 7);
    nr_payload_clear(&p);

    clear_msgs(m, n);
    ck_assert_ptr_null(m[0].entry_id);
    ck_assert_ptr_null(m[0].payload);
    nr_queue_msg_clear(NULL);

    /* a NULL id_out is allowed */
    ck_assert_int_eq(nr_queue_enqueue(q, "{\"job_id\": 8}", NULL), 0);
    n = read_ok(q, m, 4, 1000);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].payload, "{\"job_id\": 8}");
    clear_msgs(m, n);
    free(id);
    nr_queue_free(q);
}
END_TEST

/* Entries queued before any worker created the group are still delivered:
 * the group starts at the stream's beginning, not at its end. */
START_TEST(test_entries_before_group_are_delivered)
{
    redisReply *r = rcmd("XADD %s * payload %s", STREAM, "{\"job_id\": 41}");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);

    struct nr_queue *q = connect_ok("late");
    struct nr_queue_msg m[4];
    size_t n = read_ok(q, m, 4, 1000);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].payload, "{\"job_id\": 41}");
    clear_msgs(m, n);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_read_blocks_then_returns_nothing)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[2];
    size_t n = 99;
    double t0;

    /* max 0: nothing asked, nothing read */
    ck_assert_int_eq(nr_queue_read(q, m, 0, 1000, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(nr_queue_read(q, m, 2, 1000, NULL), NR_EINVAL);

    t0 = nr_mono_ms();
    ck_assert_uint_eq(read_ok(q, m, 2, 300), 0);
    double took = nr_mono_ms() - t0;
    ck_assert_msg(took >= 250 && took < 3000, "a 300 ms block took %.0f ms", took);

    /* block 0 means do not block (for Redis it would mean forever) */
    t0 = nr_mono_ms();
    ck_assert_uint_eq(read_ok(q, m, 2, 0), 0);
    ck_assert_msg(nr_mono_ms() - t0 < 200, "block 0 blocked");
    ck_assert_int_eq(q->err, 0);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_block_longer_than_command_timeout)
{
    /* queue.block_ms 0 gives the connection a 5 s command timeout; a 5.5 s
     * block must raise it for the call, not fail with a socket timeout. */
    cfg.queue.block_ms = 0;
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[1];

    ck_assert_uint_eq(read_ok(q, m, 1, 5500), 0);
    ck_assert_int_eq(q->err, 0);
    /* still usable afterwards */
    char *id = enqueue_ok(q, "{\"job_id\": 1}");
    ck_assert_uint_eq(read_ok(q, m, 1, 100), 1);
    clear_msgs(m, 1);
    free(id);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_pending_redelivered_after_restart)
{
    struct nr_queue *q = connect_ok("worker-a");
    struct nr_queue_msg m[10];
    char *ids[4];
    size_t n;

    for (int i = 0; i < 3; i++) {
        char p[32];
        snprintf(p, sizeof(p), "{\"job_id\": %d}", i + 1);
        ids[i] = enqueue_ok(q, p);
    }
    n = read_ok(q, m, 10, 1000);
    ck_assert_uint_eq(n, 3);
    clear_msgs(m, n);
    ck_assert_int_eq(pending_count(), 3);
    nr_queue_free(q);                        /* "crash": nothing acked */

    /* another consumer does not get worker-a's pending entries */
    struct nr_queue *other = connect_ok("worker-b");
    ck_assert_uint_eq(read_ok(other, m, 10, 100), 0);
    nr_queue_free(other);

    /* restart under the same name: the old entries come first, in order,
     * without blocking, max at a time; then new ones */
    q = connect_ok("worker-a");
    ids[3] = enqueue_ok(q, "{\"job_id\": 4}");
    double t0 = nr_mono_ms();
    n = read_ok(q, m, 2, 2000);
    ck_assert_msg(nr_mono_ms() - t0 < 500, "reading pending entries blocked");
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(m[0].entry_id, ids[0]);
    ck_assert_str_eq(m[0].payload, "{\"job_id\": 1}");
    ck_assert_str_eq(m[1].entry_id, ids[1]);
    clear_msgs(m, n);
    n = read_ok(q, m, 2, 2000);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].entry_id, ids[2]);
    clear_msgs(m, n);
    n = read_ok(q, m, 2, 2000);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].entry_id, ids[3]);
    ck_assert_str_eq(m[0].payload, "{\"job_id\": 4}");
    clear_msgs(m, n);
    /* nothing more, and the old ones are not handed out twice */
    ck_assert_uint_eq(read_ok(q, m, 2, 100), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(nr_queue_ack(q, ids[i], NULL), 0);
        free(ids[i]);
    }
    ck_assert_int_eq(pending_count(), 0);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_pending_exactly_max)
{
    /* exactly max pending entries: the scan needs one more (empty) pending
     * read, which must fall through to new entries in the same call */
    struct nr_queue *q = connect_ok("w");
    struct nr_queue_msg m[2];
    char *a = enqueue_ok(q, "{\"job_id\": 1}"), *b = enqueue_ok(q, "{\"job_id\": 2}");

    ck_assert_uint_eq(read_ok(q, m, 2, 100), 2);
    clear_msgs(m, 2);
    nr_queue_free(q);

    q = connect_ok("w");
    ck_assert_uint_eq(read_ok(q, m, 2, 100), 2);
    ck_assert_str_eq(m[0].entry_id, a);
    ck_assert_str_eq(m[1].entry_id, b);
    clear_msgs(m, 2);
    char *c = enqueue_ok(q, "{\"job_id\": 3}");
    ck_assert_uint_eq(read_ok(q, m, 2, 1000), 1);
    ck_assert_str_eq(m[0].entry_id, c);
    clear_msgs(m, 1);
    free(a);
    free(b);
    free(c);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_odd_entries)
{
    struct nr_queue *q = connect_ok("w");
    struct nr_queue_msg m[4];
    redisReply *r;
    char *deleted_id;

    /* a payload with a NUL byte in it, and an entry without "payload" */
    freeReplyObject(rcmd("XADD %s * payload %b", STREAM, "{\"a\"\0x}", (size_t)7));
    freeReplyObject(rcmd("XADD %s * job_id 5 note x", STREAM));
    freeReplyObject(rcmd("XADD %s * other 1 payload %s", STREAM, "{\"job_id\": 6}"));
    ck_assert_uint_eq(read_ok(q, m, 4, 1000), 3);
    ck_assert_uint_eq(m[0].payload_len, 7);
    ck_assert_int_eq(memcmp(m[0].payload, "{\"a\"\0x}", 7), 0);
    ck_assert_int_eq(m[0].payload[7], '\0');
    ck_assert_ptr_null(m[1].payload);
    ck_assert_uint_eq(m[1].payload_len, 0);
    ck_assert_str_eq(m[2].payload, "{\"job_id\": 6}");
    deleted_id = strdup(m[1].entry_id);
    clear_msgs(m, 3);
    nr_queue_free(q);

    /* an entry deleted while pending comes back with a nil field list */
    r = rcmd("XDEL %s %s", STREAM, deleted_id);
    freeReplyObject(r);
    q = connect_ok("w");
    ck_assert_uint_eq(read_ok(q, m, 4, 100), 3);
    ck_assert_str_eq(m[1].entry_id, deleted_id);
    ck_assert_ptr_null(m[1].payload);
    ck_assert_int_eq(nr_queue_dead(q, &m[1], "payload is missing"), 0);
    clear_msgs(m, 3);
    free(deleted_id);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_ack)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[2];
    char *id = enqueue_ok(q, "{\"job_id\": 1}");
    char *id2 = enqueue_ok(q, "{\"job_id\": 2}");
    char key[128];
    redisReply *r;

    ck_assert_uint_eq(read_ok(q, m, 2, 1000), 2);
    clear_msgs(m, 2);
    ck_assert_int_eq(pending_count(), 2);

    ck_assert_int_eq(nr_queue_ack(q, id, "COMPLETED_SUCCESS"), 0);
    ck_assert_int_eq(pending_count(), 1);
    snprintf(key, sizeof(key), "netraven:jobs:done:%s", id);
    r = rcmd("LRANGE %s 0 -1", key);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    ck_assert_str_eq(r->element[0]->str, "COMPLETED_SUCCESS");
    freeReplyObject(r);
    long long ttl = rint_("TTL %s", key);
    ck_assert_msg(ttl > 3500 && ttl <= 3600, "done list TTL %lld", ttl);

    /* without a status: acked, no done list */
    ck_assert_int_eq(nr_queue_ack(q, id2, NULL), 0);
    ck_assert_int_eq(pending_count(), 0);
    snprintf(key, sizeof(key), "netraven:jobs:done:%s", id2);
    ck_assert_int_eq(rint_("EXISTS %s", key), 0);

    /* acking again, or an unknown id, is harmless */
    ck_assert_int_eq(nr_queue_ack(q, id2, NULL), 0);
    ck_assert_int_eq(nr_queue_ack(q, "1-1", NULL), 0);
    ck_assert_int_eq(nr_queue_ack(q, NULL, NULL), NR_EINVAL);
    /* a malformed id is refused by Redis: an error, and a reset fixes it */
    ck_assert_int_eq(nr_queue_ack(q, "not-an-id", NULL), NR_EIO);
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "XACK") != NULL, "errstr: %s", q->errstr);
    ck_assert_int_eq(nr_queue_reset(q), 0);
    ck_assert_int_eq(nr_queue_ack(q, id, NULL), 0);
    free(id);
    free(id2);
    nr_queue_free(q);
}
END_TEST

struct acker {
    char *id;
    int   rc;
};

static void *ack_later(void *arg)
{
    struct acker *a = arg;
    struct nr_queue *q = nr_queue_connect(&cfg, "acker");

    usleep(300 * 1000);
    a->rc = q->err ? -100 : nr_queue_ack(q, a->id, "COMPLETED_PARTIAL_FAILURE");
    nr_queue_free(q);
    return NULL;
}

START_TEST(test_wait_done)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue *waiter = connect_ok("cli");
    struct nr_queue_msg m[1];
    char *id = enqueue_ok(q, "{\"job_id\": 1}");
    char *status = NULL;
    double t0;

    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    clear_msgs(m, 1);

    /* not done yet: times out after about the time asked */
    t0 = nr_mono_ms();
    ck_assert_int_eq(nr_queue_wait_done(waiter, id, 0.4, &status), NR_ETIMEOUT);
    double took = nr_mono_ms() - t0;
    ck_assert_msg(took >= 350 && took < 2000, "a 0.4 s wait took %.0f ms", took);
    ck_assert_ptr_null(status);
    ck_assert_int_eq(waiter->err, 0);
    /* a zero timeout only looks */
    t0 = nr_mono_ms();
    ck_assert_int_eq(nr_queue_wait_done(waiter, id, 0, &status), NR_ETIMEOUT);
    ck_assert_msg(nr_mono_ms() - t0 < 200, "a zero wait blocked");

    /* done while waiting: returns as soon as the ack lands */
    struct acker a = { id, -1 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, ack_later, &a), 0);
    t0 = nr_mono_ms();
    ck_assert_int_eq(nr_queue_wait_done(waiter, id, 10, &status), 0);
    took = nr_mono_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_str_eq(status, "COMPLETED_PARTIAL_FAILURE");
    ck_assert_msg(took < 3000, "the wait took %.0f ms after the ack", took);
    free(status);
    status = NULL;
    ck_assert_int_eq(pending_count(), 0);

    /* already done before the wait starts */
    char *id2 = enqueue_ok(q, "{\"job_id\": 2}");
    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    clear_msgs(m, 1);
    ck_assert_int_eq(nr_queue_ack(q, id2, "COMPLETED_SUCCESS"), 0);
    ck_assert_int_eq(nr_queue_wait_done(waiter, id2, 5, &status), 0);
    ck_assert_str_eq(status, "COMPLETED_SUCCESS");
    free(status);
    status = NULL;
    /* the list had one reader: the status was taken */
    ck_assert_int_eq(nr_queue_wait_done(waiter, id2, 0.2, &status), NR_ETIMEOUT);

    free(id);
    free(id2);
    nr_queue_free(q);
    nr_queue_free(waiter);
}
END_TEST

START_TEST(test_wait_longer_than_command_timeout)
{
    /* a 5.5 s BLPOP on a connection whose command timeout is 5 s */
    cfg.queue.block_ms = 0;
    struct nr_queue *q = connect_ok("cli");
    char *status = NULL;

    ck_assert_int_eq(nr_queue_wait_done(q, "1-1", 5.5, &status), NR_ETIMEOUT);
    ck_assert_int_eq(q->err, 0);
    ck_assert_int_eq(nr_queue_enqueue(q, "{\"job_id\": 1}", NULL), 0);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_dead_letter)
{
    struct nr_queue *q = connect_ok("worker-x");
    struct nr_queue_msg m[1];
    char *id = enqueue_ok(q, "{\"job_id\": \"12\"}");
    redisReply *r, *fields;

    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    ck_assert_int_eq(pending_count(), 1);
    ck_assert_int_eq(nr_queue_dead(q, &m[0], "job_id must be a positive integer, got \"12\""), 0);
    ck_assert_int_eq(pending_count(), 0);

    r = rcmd("XRANGE %s - +", DEAD);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    fields = r->element[0]->element[1];
    ck_assert_uint_eq(fields->elements, 8);
    ck_assert_str_eq(fields->element[0]->str, "payload");
    ck_assert_str_eq(fields->element[1]->str, "{\"job_id\": \"12\"}");
    ck_assert_str_eq(fields->element[2]->str, "reason");
    ck_assert_str_eq(fields->element[3]->str, "job_id must be a positive integer, got \"12\"");
    ck_assert_str_eq(fields->element[4]->str, "entry_id");
    ck_assert_str_eq(fields->element[5]->str, id);
    ck_assert_str_eq(fields->element[6]->str, "consumer");
    ck_assert_str_eq(fields->element[7]->str, "worker-x");
    freeReplyObject(r);
    clear_msgs(m, 1);

    /* an entry without a payload: the field is written empty */
    struct nr_queue_msg nopay = { .entry_id = strdup("1-1") };
    ck_assert_int_eq(nr_queue_dead(q, &nopay, NULL), 0);
    r = rcmd("XREVRANGE %s + - COUNT 1", DEAD);
    fields = r->element[0]->element[1];
    ck_assert_str_eq(fields->element[1]->str, "");
    ck_assert_str_eq(fields->element[3]->str, "");
    ck_assert_str_eq(fields->element[5]->str, "1-1");
    freeReplyObject(r);
    nr_queue_msg_clear(&nopay);
    ck_assert_int_eq(nr_queue_dead(q, &nopay, "x"), NR_EINVAL);   /* no entry id */
    free(id);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_two_consumers_split)
{
    enum { N = 100 };
    struct nr_queue *prod = connect_ok("producer");
    struct nr_queue *qa = connect_ok("a"), *qb = connect_ok("b");
    struct nr_queue_msg m[7];
    char *ids[N];
    int seen[N] = { 0 };
    size_t got_a = 0, got_b = 0, total = 0;

    for (int i = 0; i < N; i++) {
        char p[32];
        snprintf(p, sizeof(p), "{\"job_id\": %d}", i + 1);
        ids[i] = enqueue_ok(prod, p);
    }
    for (int round = 0; total < N && round < 100; round++) {
        struct nr_queue *q = round % 2 ? qb : qa;
        size_t n = read_ok(q, m, 7, 200);
        for (size_t k = 0; k < n; k++) {
            int job = atoi(m[k].payload + strlen("{\"job_id\": "));
            ck_assert_int_ge(job, 1);
            ck_assert_int_le(job, N);
            ck_assert_str_eq(m[k].entry_id, ids[job - 1]);
            seen[job - 1]++;
            ck_assert_int_eq(nr_queue_ack(q, m[k].entry_id, NULL), 0);
        }
        clear_msgs(m, n);
        *(q == qa ? &got_a : &got_b) += n;
        total += n;
    }
    ck_assert_uint_eq(total, N);
    for (int i = 0; i < N; i++)
        ck_assert_msg(seen[i] == 1, "entry %d seen %d times", i + 1, seen[i]);
    ck_assert_uint_gt(got_a, 0);
    ck_assert_uint_gt(got_b, 0);
    ck_assert_int_eq(pending_count(), 0);
    /* nothing left for either */
    ck_assert_uint_eq(read_ok(qa, m, 7, 50), 0);
    ck_assert_uint_eq(read_ok(qb, m, 7, 50), 0);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    nr_queue_free(prod);
    nr_queue_free(qa);
    nr_queue_free(qb);
}
END_TEST

START_TEST(test_dead_port)
{
    int port = dead_port();
    char url[128], where[64];
    struct nr_queue_msg m[1];
    size_t n = 7;

    snprintf(url, sizeof(url), "redis://:Sup3rSecretPw@127.0.0.1:%d/0", port);
    snprintf(where, sizeof(where), "127.0.0.1:%d", port);
    cfg.scheduler.redis_url = url;

    double t0 = nr_mono_ms();
    struct nr_queue *q = nr_queue_connect(&cfg, "c1");
    ck_assert_ptr_nonnull(q);
    ck_assert_msg(nr_mono_ms() - t0 < 6000, "connect to a dead port took too long");
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "cannot connect to redis at") != NULL, "errstr: %s", q->errstr);
    ck_assert_msg(strstr(q->errstr, where) != NULL, "errstr: %s", q->errstr);
    ck_assert_msg(strstr(q->errstr, "refused") != NULL, "errstr: %s", q->errstr);
    ck_assert_msg(strstr(q->errstr, "Sup3rSecretPw") == NULL, "password in errstr: %s", q->errstr);

    /* every call refuses while err is set, writing nothing */
    ck_assert_int_eq(nr_queue_read(q, m, 1, 100, &n), NR_EIO);
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(nr_queue_enqueue(q, "{}", NULL), NR_EIO);
    ck_assert_int_eq(nr_queue_ack(q, "1-1", "X"), NR_EIO);
    ck_assert_int_eq(nr_queue_reset(q), NR_EIO);
    ck_assert_msg(strstr(q->errstr, "Sup3rSecretPw") == NULL, "password in errstr: %s", q->errstr);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_bad_urls)
{
    static const struct {
        const char *url, *want;
    } cases[] = {
        { NULL, "scheduler.redis_url is not set" },
        { "", "scheduler.redis_url is not set" },
        { "http://pw:hunter22@host/", "must start with redis:// or unix://" },
        { "rediss://host:6380", "TLS (rediss://) is not supported" },
        { "redis://u:hunter22@127.0.0.1:99999/0", "the port is not a number from 1 to 65535" },
        { "redis://u:hunter22@127.0.0.1:abc/0", "the port is not a number" },
        { "redis://u:hunter22@127.0.0.1:0/0", "the port is not a number" },
        { "redis://:hunter22@127.0.0.1:6379/x", "the path is not a database number" },
        { "redis://127.0.0.1:6379?db=-1", "the db= parameter is not a database number" },
        /* a raw '/' or '?' in the password: no piece of the URL is quoted */
        { "redis://admin:hunter22/x@127.0.0.1:6379/0", "'@' after the host" },
        { "redis://admin:hunter22?x@127.0.0.1:6379/0", "'@' after the host" },
        { "redis://admin:hunter22", "the port is not a number" },
        /* "%zz" is no escape and stays (redis-py); %00 cannot be sent */
        { "redis://:hunter22%00@127.0.0.1/", "the password has a %00 escape" },
        { "redis://[::1:6379/0", "'[' without ']'" },
        { "unix://relative/path", "absolute socket path" },
        { "unix:///nonexistent/netraven-test.sock", "cannot connect to redis at unix:/nonexistent/netraven-test.sock" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cfg.scheduler.redis_url = (char *)cases[i].url;
        struct nr_queue *q = nr_queue_connect(&cfg, "c1");
        ck_assert_int_eq(q->err, NR_EIO);
        ck_assert_msg(strstr(q->errstr, cases[i].want) != NULL, "url %s: errstr \"%s\" lacks \"%s\"",
                      cases[i].url ? cases[i].url : "(null)", q->errstr, cases[i].want);
        ck_assert_msg(strstr(q->errstr, "hunter22") == NULL, "password in errstr: %s", q->errstr);
        nr_queue_free(q);
    }

    /* no config at all */
    struct nr_queue *q = nr_queue_connect(NULL, NULL);
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_ptr_nonnull(q->consumer);     /* host:pid by default */
    ck_assert_ptr_nonnull(strchr(q->consumer, ':'));
    nr_queue_free(q);
}
END_TEST

START_TEST(test_auth_and_select)
{
    char host[128], url[256];
    int port;
    struct nr_queue *q;
    redisReply *r;

    test_hostport(host, sizeof(host), &port);
    r = rcmd("ACL SETUSER nrt_queue reset on >p@ss:w%%rd ~* &* +@all");
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "ACL SETUSER: %s", r->str);
    freeReplyObject(r);

    /* user and %-escaped password; db 9 */
    snprintf(url, sizeof(url), "redis://nrt_queue:p%%40ss%%3Aw%%25rd@%s:%d/9", host, port);
    cfg.scheduler.redis_url = url;
    q = connect_ok("c1");
    char *id = enqueue_ok(q, "{\"job_id\": 1}");
    free(id);
    nr_queue_free(q);
    ck_assert_int_eq(rint_("EXISTS %s", STREAM), 0);        /* not in the test db */
    freeReplyObject(rcmd("SELECT 9"));
    ck_assert_int_eq(rint_("XLEN %s", STREAM), 1);
    freeReplyObject(rcmd("FLUSHDB"));

    /* ?db= works too */
    snprintf(url, sizeof(url), "redis://nrt_queue:p%%40ss%%3Aw%%25rd@%s:%d?db=9", host, port);
    q = connect_ok("c1");
    nr_queue_free(q);
    ck_assert_int_eq(rint_("EXISTS %s", STREAM), 1);
    freeReplyObject(rcmd("FLUSHDB"));

    /* wrong password: the server's reason, never the password */
    snprintf(url, sizeof(url), "redis://nrt_queue:WrongPassw0rd@%s:%d/0", host, port);
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "AUTH failed: WRONGPASS") != NULL, "errstr: %s", q->errstr);
    ck_assert_msg(strstr(q->errstr, "WrongPassw0rd") == NULL, "password in errstr: %s", q->errstr);
    nr_queue_free(q);

    /* a password for a server that wants none */
    snprintf(url, sizeof(url), "redis://:Unwanted99@%s:%d/0", host, port);
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "AUTH") != NULL, "errstr: %s", q->errstr);
    ck_assert_msg(strstr(q->errstr, "Unwanted99") == NULL, "password in errstr: %s", q->errstr);
    nr_queue_free(q);

    /* a database that does not exist */
    snprintf(url, sizeof(url), "redis://%s:%d/100000", host, port);
    q = nr_queue_connect(&cfg, "c1");
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "SELECT failed") != NULL, "errstr: %s", q->errstr);
    nr_queue_free(q);

    freeReplyObject(rcmd("SELECT 0"));
    freeReplyObject(rcmd("ACL DELUSER nrt_queue"));
}
END_TEST

START_TEST(test_reset_after_connection_loss)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[2];
    char *a = enqueue_ok(q, "{\"job_id\": 1}");
    redisReply *r;

    ck_assert_uint_eq(read_ok(q, m, 2, 1000), 1);     /* in flight, not acked */
    clear_msgs(m, 1);

    r = rcmd("CLIENT KILL TYPE normal SKIPME yes");
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_ge(r->integer, 1);
    freeReplyObject(r);

    size_t n = 5;
    ck_assert_int_eq(nr_queue_read(q, m, 2, 100, &n), NR_EIO);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, "XREADGROUP") != NULL, "errstr: %s", q->errstr);
    ck_assert_int_eq(nr_queue_ack(q, a, NULL), NR_EIO);    /* refused until reset */

    ck_assert_int_eq(nr_queue_reset(q), 0);
    ck_assert_int_eq(q->err, 0);
    ck_assert_str_eq(q->errstr, "");
    /* entries handed out before a reset may still be running here: they
     * are not handed out again (only a new connect re-reads pending) */
    char *b = enqueue_ok(q, "{\"job_id\": 2}");
    ck_assert_uint_eq(read_ok(q, m, 2, 1000), 1);
    ck_assert_str_eq(m[0].entry_id, b);
    clear_msgs(m, 1);
    ck_assert_int_eq(nr_queue_ack(q, a, NULL), 0);
    ck_assert_int_eq(nr_queue_ack(q, b, NULL), 0);
    ck_assert_int_eq(pending_count(), 0);
    free(a);
    free(b);
    nr_queue_free(q);
}
END_TEST

START_TEST(test_group_recreated_after_flush)
{
    struct nr_queue *q = connect_ok("c1");
    struct nr_queue_msg m[1];

    freeReplyObject(rcmd("FLUSHDB"));       /* stream and group gone */
    ck_assert_uint_eq(read_ok(q, m, 1, 100), 0);
    ck_assert_int_eq(q->err, 0);
    char *id = enqueue_ok(q, "{\"job_id\": 3}");
    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    ck_assert_str_eq(m[0].entry_id, id);
    clear_msgs(m, 1);
    free(id);
    nr_queue_free(q);
}
END_TEST

/* Replace the stream by a string: every stream command is refused with
 * WRONGTYPE.  First restores a stream and reconnects q, since a reset on
 * the string would fail (XGROUP CREATE is refused too). */
static void stream_becomes_string(struct nr_queue *q)
{
    freeReplyObject(rcmd("DEL %s", STREAM));
    ck_assert_msg(nr_queue_reset(q) == 0, "reset: %s", q->errstr);
    freeReplyObject(rcmd("DEL %s", STREAM));
    freeReplyObject(rcmd("SET %s not-a-stream", STREAM));
}

static void assert_refused(struct nr_queue *q, const char *what)
{
    char want[64];

    snprintf(want, sizeof(want), "%s failed: WRONGTYPE", what);
    ck_assert_int_eq(q->err, NR_EIO);
    ck_assert_msg(strstr(q->errstr, want) != NULL, "errstr \"%s\" lacks \"%s\"", q->errstr, want);
}

/* An error reply is reported, and freed once: XAUTOCLAIM and XCLAIM freed
 * it a second time (a crash, or "attempting double-free" under ASan). */
START_TEST(test_error_reply_freed_once)
{
    struct nr_queue *q = connect_ok("w");
    struct nr_queue_msg m[2];
    char *const ids[] = { "1-1", "2-1" };
    size_t n = 7;

    ck_assert_uint_eq(read_ok(q, m, 2, 0), 0);     /* claims come after the pending re-read */
    stream_becomes_string(q);
    ck_assert_int_eq(nr_queue_claim(q, 0, m, 2, &n), NR_EIO);
    ck_assert_uint_eq(n, 7);
    assert_refused(q, "XAUTOCLAIM");

    /* a reset cannot make the group on a string: refused, reported */
    ck_assert_int_eq(nr_queue_reset(q), NR_EIO);
    assert_refused(q, "XGROUP CREATE");

    stream_becomes_string(q);
    ck_assert_int_eq(nr_queue_touch(q, ids, 2), NR_EIO);
    assert_refused(q, "XCLAIM");

    stream_becomes_string(q);
    ck_assert_int_eq(nr_queue_read(q, m, 2, 100, &n), NR_EIO);
    ck_assert_uint_eq(n, 7);
    assert_refused(q, "XREADGROUP");

    stream_becomes_string(q);
    ck_assert_int_eq(nr_queue_enqueue(q, "{\"job_id\": 1}", NULL), NR_EIO);
    assert_refused(q, "XADD");

    stream_becomes_string(q);
    ck_assert_int_eq(nr_queue_ack(q, "1-1", "COMPLETED_SUCCESS"), NR_EIO);
    ck_assert_msg(strstr(q->errstr, "XACK failed while acknowledging: WRONGTYPE") != NULL,
                  "errstr: %s", q->errstr);

    /* and the queue works again once the key is a stream */
    freeReplyObject(rcmd("DEL %s", STREAM));
    ck_assert_int_eq(nr_queue_reset(q), 0);
    char *id = enqueue_ok(q, "{\"job_id\": 2}");
    ck_assert_uint_eq(read_ok(q, m, 2, 1000), 1);
    ck_assert_str_eq(m[0].entry_id, id);
    clear_msgs(m, 1);
    free(id);
    nr_queue_free(q);
}
END_TEST

/* Acknowledged and dead-lettered entries leave the stream: its length is
 * what is not done yet, not every job ever run. */
START_TEST(test_acked_entries_trimmed)
{
    enum { ROUNDS = 20, BATCH = 10 };
    struct nr_queue *q = connect_ok("w");
    struct nr_queue_msg m[BATCH];
    long long most = 0;

    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BATCH; i++) {
            char p[32];
            snprintf(p, sizeof(p), "{\"job_id\": %d}", round * BATCH + i + 1);
            ck_assert_int_eq(nr_queue_enqueue(q, p, NULL), 0);
        }
        size_t n = read_ok(q, m, BATCH, 1000);
        ck_assert_uint_eq(n, BATCH);
        /* pending entries are kept: they may still have to run */
        long long len = rint_("XLEN %s", STREAM);
        if (len > most)
            most = len;
        for (size_t k = 0; k < n; k++)
            ck_assert_int_eq(nr_queue_ack(q, m[k].entry_id, k % 2 ? "COMPLETED_SUCCESS" : NULL), 0);
        clear_msgs(m, n);
    }
    ck_assert_int_eq(most, BATCH);
    ck_assert_int_eq(rint_("XLEN %s", STREAM), 0);
    ck_assert_int_eq(pending_count(), 0);

    /* a dead-lettered entry goes too, and its copy stays in the dead stream */
    char *id = enqueue_ok(q, "{\"job_id\": \"x\"}");
    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    ck_assert_int_eq(nr_queue_dead(q, &m[0], "job_id must be a positive integer"), 0);
    clear_msgs(m, 1);
    ck_assert_int_eq(rint_("XLEN %s", STREAM), 0);
    ck_assert_int_eq(rint_("XLEN %s", DEAD), 1);

    /* an unacknowledged entry stays; acknowledging it twice is harmless */
    char *id2 = enqueue_ok(q, "{\"job_id\": 9}");
    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    clear_msgs(m, 1);
    ck_assert_int_eq(rint_("XLEN %s", STREAM), 1);
    ck_assert_int_eq(nr_queue_ack(q, id2, NULL), 0);
    ck_assert_int_eq(nr_queue_ack(q, id2, NULL), 0);
    ck_assert_int_eq(rint_("XLEN %s", STREAM), 0);
    /* the group still reads new entries after the deletions */
    char *id3 = enqueue_ok(q, "{\"job_id\": 10}");
    ck_assert_uint_eq(read_ok(q, m, 1, 1000), 1);
    ck_assert_str_eq(m[0].entry_id, id3);
    clear_msgs(m, 1);
    free(id);
    free(id2);
    free(id3);
    nr_queue_free(q);
}
END_TEST

/* XPENDING's delivery count of one entry, read raw. */
static long long deliveries_of(const char *id)
{
    redisReply *r = rcmd("XPENDING %s %s %s %s 1", STREAM, GROUP, id, id);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 1);
    long long v = r->element[0]->element[3]->integer;
    freeReplyObject(r);
    return v;
}

/* Each hand-out counts: a new read 1, a re-read after a restart and each
 * claim one more; keeping an entry fresh (touch) does not count. */
START_TEST(test_delivery_counts)
{
    struct nr_queue *q = connect_ok("a");
    struct nr_queue_msg m[4];
    char *id = enqueue_ok(q, "{\"job_id\": 5}");

    ck_assert_uint_eq(read_ok(q, m, 4, 1000), 1);
    ck_assert_int_eq(m[0].deliveries, 1);
    clear_msgs(m, 1);
    ck_assert_int_eq(m[0].deliveries, 0);
    nr_queue_free(q);                           /* died running it */

    q = connect_ok("a");                        /* restarted under the same name */
    ck_assert_uint_eq(read_ok(q, m, 4, 100), 1);
    ck_assert_str_eq(m[0].entry_id, id);
    ck_assert_int_eq(m[0].deliveries, 2);
    clear_msgs(m, 1);
    ck_assert_int_eq(nr_queue_touch(q, &id, 1), 0);
    ck_assert_int_eq(deliveries_of(id), 2);
    nr_queue_free(q);                           /* died again */

    for (long long want = 3; want <= 5; want++) {
        char name[16];
        size_t n = 0;
        snprintf(name, sizeof(name), "b%lld", want);
        struct nr_queue *b = connect_ok(name);
        ck_assert_uint_eq(read_ok(b, m, 4, 0), 0);
        ck_assert_int_eq(nr_queue_claim(b, 0, m, 4, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_str_eq(m[0].entry_id, id);
        ck_assert_str_eq(m[0].payload, "{\"job_id\": 5}");
        ck_assert_int_eq(m[0].deliveries, want);
        ck_assert_int_eq(deliveries_of(id), want);
        clear_msgs(m, n);
        nr_queue_free(b);
    }
    q = connect_ok("c");
    ck_assert_uint_eq(read_ok(q, m, 4, 0), 0);
    ck_assert_int_eq(nr_queue_ack(q, id, NULL), 0);
    size_t n = 9;
    ck_assert_int_eq(nr_queue_claim(q, 0, m, 4, &n), 0);
    ck_assert_uint_eq(n, 0);
    free(id);
    nr_queue_free(q);
}
END_TEST

/* A claim before the re-read of the consumer's own pending entries after a
 * connect claims nothing: the re-read would have handed the claimed entry
 * out a second time (a worker starting beside a dead one ran its entries
 * twice). */
START_TEST(test_claim_waits_for_pending_reread)
{
    struct nr_queue *dead = connect_ok("gone");
    struct nr_queue_msg m[4];
    char *id = enqueue_ok(dead, "{\"job_id\": 6}");
    size_t n = 9;

    ck_assert_uint_eq(read_ok(dead, m, 4, 1000), 1);
    clear_msgs(m, 1);
    nr_queue_free(dead);

    struct nr_queue *q = connect_ok("w");
    ck_assert_int_eq(nr_queue_claim(q, 0, m, 4, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(read_ok(q, m, 4, 0), 0);              /* nothing of its own */
    ck_assert_int_eq(nr_queue_claim(q, 0, m, 4, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].entry_id, id);
    ck_assert_int_eq(m[0].deliveries, 2);
    clear_msgs(m, 1);
    ck_assert_uint_eq(read_ok(q, m, 4, 100), 0);            /* not handed out again */
    ck_assert_int_eq(deliveries_of(id), 2);
    ck_assert_int_eq(nr_queue_ack(q, id, NULL), 0);
    free(id);
    nr_queue_free(q);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("redis");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    nrt_add_test(tc, test_group_created_once);
    nrt_add_test(tc, test_enqueue_then_read);
    nrt_add_test(tc, test_entries_before_group_are_delivered);
    nrt_add_test(tc, test_read_blocks_then_returns_nothing);
    nrt_add_test(tc, test_block_longer_than_command_timeout);
    nrt_add_test(tc, test_pending_redelivered_after_restart);
    nrt_add_test(tc, test_pending_exactly_max);
    nrt_add_test(tc, test_odd_entries);
    nrt_add_test(tc, test_ack);
    nrt_add_test(tc, test_wait_done);
    nrt_add_test(tc, test_wait_longer_than_command_timeout);
    nrt_add_test(tc, test_dead_letter);
    nrt_add_test(tc, test_two_consumers_split);
    nrt_add_test(tc, test_dead_port);
    nrt_add_test(tc, test_bad_urls);
    nrt_add_test(tc, test_auth_and_select);
    nrt_add_test(tc, test_reset_after_connection_loss);
    nrt_add_test(tc, test_group_recreated_after_flush);
    nrt_add_test(tc, test_error_reply_freed_once);
    nrt_add_test(tc, test_acked_entries_trimmed);
    nrt_add_test(tc, test_delivery_counts);
    nrt_add_test(tc, test_claim_waits_for_pending_reread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);     /* CK_VERBOSITY=verbose lists every test */
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
