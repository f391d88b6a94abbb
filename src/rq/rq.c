/*
 * rq.c - python-rq's protocol on one Redis connection: the write set of
 * docs/python-rq.md §4-§6, which python-rq 1.13, 2.3 and 2.10 readers and
 * cleanup all accept.
 *
 * Rules kept everywhere here:
 *   - a job hash is only ever updated field by field (HSET of the fields
 *     named in docs/python-rq.md §4-§5), never rewritten (§7.3): data,
 *     origin, meta, group_id, retries_left and repeats_left belong to whoever
 *     enqueued the job;
 *     result types 1 and 2 are written;
 *   - the final status and the removal from rq:wip:<q> go in one MULTI, so
 *     no reader can see a finished job whose wip deadline passed;
 *   - timestamps are UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ" (nr_iso_ts());
 *   - a job is only ever taken by a move into this worker's intake list
 *     (never popped), and leaves that list in the MULTI that starts,
 *     fails or hands back the job (rq.h, "Taking").
 *
 * Beyond the letter of docs/python-rq.md, on purpose:
 *   - the failure MULTI also gives rq:results:<id> the job's failure TTL
 *     (PERSIST for -1), as the success MULTI does with the result TTL, so
 *     the stream never outlives its job;
 *   - cleanup removes each abandoned id in the MULTI that fails or
 *     requeues it, under WATCH, instead of one ZREMRANGEBYSCORE at the
 *     end: an id whose transaction lost a race stays for the next pass
 *     instead of leaving its job `started` with no wip entry.
 *
 * Commands, pipelines and transactions go through the redis module
 * (struct nr_redis, redis.h), whose two kinds of failure this module
 * passes on: a connection failure (I/O, timeout, EOF) sets rq->err and
 * every later call refuses until nr_rq_reset(); a command the server
 * refuses (say WRONGTYPE on a key someone else wrote) returns NR_EINVAL
 * with rq->errstr saying why and leaves the connection usable.
 */
#include "netraven/rq.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "netraven/redis.h"

#define COMMAND_TIMEOUT_MS   5000
#define BLOCKING_MARGIN_MS   5000
#define WIP_GRACE_S          90         /* wip deadline: now + this */
#define WORKER_TTL_S         480
#define DEATH_TTL_S          60
#define DEFAULT_RESULT_TTL   500
#define DEFAULT_FAILURE_TTL  31536000
#define DEFAULT_TIMEOUT      180        /* python-rq's Queue.DEFAULT_TIMEOUT */
#define RESULTS_MAXLEN       "10"
#define MAX_QUEUES           64
#define CLEANUP_BATCH        100        /* ids per ZRANGEBYSCORE */
#define CLEANUP_ATTEMPTS     3          /* per id, when WATCH fires */
#define ABANDONED_REASON     "worker died (abandoned job)"
#define START_ATTEMPTS       3          /* when WATCH of the intake list fires */
#define RECOVER_MAX          100000     /* ids moved back per list and call */

/* The public struct first, so that pointers convert both ways. */
struct rq_i {
    struct nr_rq            pub;
    const struct nr_config *cfg;
    char                    birth[NR_ISO_TS_LEN];
    char                    hostname[256];
    char                   *queues_csv;     /* "default,high,low" */
    char                   *current_job;    /* NULL: idle */
};

static struct rq_i *ri_of(struct nr_rq *rq) { return (struct rq_i *)rq; }

static int int_reply(struct rq_i *ri, const char *what, struct nr_redis_cmd *c,
                     long long *out);

/* ------------------------------------------------------------------ errors */

static void set_errstr(struct rq_i *ri, const char *fmt, va_list ap)
{
    vsnprintf(ri->pub.errstr, sizeof(ri->pub.errstr), fmt, ap);
    for (char *p = ri->pub.errstr; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
}

/* The connection is gone: err is set until a reset. */
static int conn_fail(struct rq_i *ri, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int conn_fail(struct rq_i *ri, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errstr(ri, fmt, ap);
    va_end(ap);
    ri->pub.err = NR_EIO;
    return NR_EIO;
}

/* What the connection said about a failed call (rc < 0), into rq: errstr,
 * and err when the connection is gone.  Returns rc. */
static int take_err(struct rq_i *ri, int rc)
{
    const struct nr_redis *conn = ri->pub.conn;

    if (rc >= 0)
        return rc;
    snprintf(ri->pub.errstr, sizeof(ri->pub.errstr), "%s", conn->errstr);
    if (conn->err)
        ri->pub.err = NR_EIO;
    return conn->err ? NR_EIO : rc;
}

/* The server refused what (r: an error reply, or one of a type the caller
 * did not expect); the connection is fine.  NR_EINVAL. */
static int reply_refused(struct rq_i *ri, const char *what, const redisReply *r)
{
    return take_err(ri, nr_redis_refused(ri->pub.conn, what, r));
}

static bool usable(struct rq_i *ri)
{
    if (ri->pub.err)
        return false;
    if (ri->pub.conn == NULL) {
        conn_fail(ri, "redis: not connected");
        return false;
    }
    return true;
}

/* One command; NULL (err set) if the connection failed, else the reply
 * (maybe an error reply) for the caller to free. */
static redisReply *command(struct rq_i *ri, int timeout_ms, const char *what,
                           const struct nr_redis_cmd *c)
{
    redisReply *r;

    if (!usable(ri))
        return NULL;
    r = nr_redis_command(ri->pub.conn, timeout_ms, what, c);
    if (r == NULL)
        take_err(ri, NR_EIO);
    return r;
}

/* A simple command whose reply only needs to be non-error. */
static int simple(struct rq_i *ri, const char *what, const struct nr_redis_cmd *c)
{
    if (!usable(ri))
        return NR_EIO;
    return take_err(ri, nr_redis_simple(ri->pub.conn, what, c));
}

/* b inside MULTI/EXEC (nr_redis_transaction): 0, NR_NOTFOUND (a WATCH
 * fired), NR_EINVAL (refused) or NR_EIO. */
static int transaction(struct rq_i *ri, const char *what, const struct nr_redis_batch *b)
{
    if (!usable(ri))
        return NR_EIO;
    return take_err(ri, nr_redis_transaction(ri->pub.conn, what, b));
}

/* ------------------------------------------------------------------- time */

static void now_ts(char buf[NR_ISO_TS_LEN], long long *unix_s)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    nr_iso_ts(&ts, buf);
    if (unix_s != NULL)
        *unix_s = (long long)ts.tv_sec;
}

/* ------------------------------------------------------------- connection */

static char *join_queues(const struct nr_strlist *q)
{
    size_t n = 1;
    char *s, *p;

    for (size_t i = 0; i < q->n; i++)
        n += strlen(q->v[i]) + 1;
    s = p = nr_malloc(n);
    *p = '\0';
    for (size_t i = 0; i < q->n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", q->v[i]);
    return s;
}

struct nr_rq *nr_rq_connect(const struct nr_config *cfg, const char *worker,
                            const struct nr_strlist *queues)
{
    struct rq_i *ri = nr_calloc(1, sizeof(*ri));
    const struct nr_strlist *q = queues && queues->n ? queues : &cfg->worker.rq_queues;

    ri->cfg = cfg;
    if (gethostname(ri->hostname, sizeof(ri->hostname)) != 0)
        strcpy(ri->hostname, "unknown");
    ri->hostname[sizeof(ri->hostname) - 1] = '\0';
    ri->pub.worker = nr_config_worker_name(cfg, worker);
    for (size_t i = 0; i < q->n; i++)
        if (q->v[i] != NULL && q->v[i][0] != '\0')
            nr_strlist_push(&ri->pub.queues, q->v[i]);
    ri->queues_csv = join_queues(&ri->pub.queues);
    now_ts(ri->birth, NULL);

    if (ri->pub.queues.n == 0) {
        conn_fail(ri, "no RQ queue to consume (worker.rq_queues is empty)");
        return &ri->pub;
    }
    if (ri->pub.queues.n > MAX_QUEUES) {
        conn_fail(ri, "worker.rq_queues names %zu queues (at most %d)", ri->pub.queues.n,
                  MAX_QUEUES);
        return &ri->pub;
    }
    nr_rq_reset(&ri->pub);
    return &ri->pub;
}

int nr_rq_reset(struct nr_rq *rq)
{
    struct rq_i *ri;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    if (ri->pub.queues.n == 0 || ri->pub.queues.n > MAX_QUEUES)
        return NR_EIO;      /* a configuration error: errstr says which */
    ri->pub.err = 0;
    ri->pub.errstr[0] = '\0';
    if (ri->pub.conn == NULL)
        ri->pub.conn = nr_redis_new(ri->cfg->scheduler.redis_url, "scheduler.redis_url",
                                    COMMAND_TIMEOUT_MS);
    else
        nr_redis_reconnect(ri->pub.conn);
    if (ri->pub.conn->err)
        return conn_fail(ri, "%s", ri->pub.conn->errstr);
    return NR_OK;
}

void nr_rq_free(struct nr_rq *rq)
{
    struct rq_i *ri;

    if (rq == NULL)
        return;
    ri = ri_of(rq);
    nr_redis_free(ri->pub.conn);
    free(ri->pub.worker);
    nr_strlist_clear(&ri->pub.queues);
    free(ri->queues_csv);
    free(ri->current_job);
    free(ri);
}

/* -------------------------------------------------------------- job hash */

void nr_rq_job_clear(struct nr_rq_job *job)
{
    if (job == NULL)
        return;
    free(job->id);
    free(job->queue);
    free(job->origin);
    free(job->status);
    free(job->data);
    free(job->retry_intervals);
    free(job->worker_name);
    memset(job, 0, sizeof(*job));
}

static bool field_is(const redisReply *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == REDIS_REPLY_STRING && k->len == n && memcmp(k->str, name, n) == 0;
}

/* A decimal integer field; false when empty or not a number. */
static bool field_long(const redisReply *v, long *out)
{
    char buf[32], *end;
    long x;

    if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len >= sizeof(buf))
        return false;
    memcpy(buf, v->str, v->len);
    buf[v->len] = '\0';
    errno = 0;
    x = strtol(buf, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = x;
    return true;
}

static char *field_str(const redisReply *v)
{
    return v->type == REDIS_REPLY_STRING && v->len > 0 ? nr_strndup(v->str, v->len) : NULL;
}

/* Fill job from an HGETALL reply; false if it is empty. */
static bool job_of_hash(const redisReply *h, struct nr_rq_job *job)
{
    long x;

    job->result_ttl = DEFAULT_RESULT_TTL;
    job->failure_ttl = DEFAULT_FAILURE_TTL;
    job->timeout = DEFAULT_TIMEOUT;
    if (h->type != REDIS_REPLY_ARRAY || h->elements < 2)
        return false;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];

        if (field_is(k, "status")) {
            free(job->status);
            job->status = field_str(v);
        } else if (field_is(k, "origin")) {
            free(job->origin);
            job->origin = field_str(v);
        } else if (field_is(k, "data") && v->type == REDIS_REPLY_STRING) {
            free(job->data);
            job->data = nr_malloc(v->len + 1);
            memcpy(job->data, v->str, v->len);
            job->data[v->len] = '\0';
            job->data_len = v->len;
        } else if (field_is(k, "result_ttl")) {
            /* -1 forever, 0 discard, > 0 seconds; anything else: default */
            if (field_long(v, &x) && x >= -1)
                job->result_ttl = x;
        } else if (field_is(k, "failure_ttl")) {
            if (field_long(v, &x) && (x == -1 || x > 0))
                job->failure_ttl = x;
        } else if (field_is(k, "timeout")) {
            /* an int (Queue.enqueue parses "1h" before it stores it);
             * -1 is RQ's "no timeout"; empty: the default */
            if (field_long(v, &x))
                job->timeout = x > 0 ? x : 0;
        } else if (field_is(k, "retries_left")) {
            if (field_long(v, &x) && x > 0)
                job->retries_left = x;
        } else if (field_is(k, "retry_intervals")) {
            free(job->retry_intervals);
            job->retry_intervals = field_str(v);
        } else if (field_is(k, "worker_name")) {
            free(job->worker_name);
            job->worker_name = field_str(v);
        } else if (field_is(k, "success_callback_name") || field_is(k, "failure_callback_name") ||
                   field_is(k, "stopped_callback_name")) {
            if (v->type == REDIS_REPLY_STRING && v->len > 0)
                job->has_callbacks = true;
        } else if (field_is(k, "repeats_left")) {
            if (field_long(v, &x) && x > 0)
                job->repeats_left = x;
        }
    }
    return true;
}

/* HGETALL rq:job:<id> and EXISTS rq:job:<id>:dependents, pipelined.
 * 0 with *job filled (id and queue copied), NR_NOTFOUND when the hash is
 * empty, NR_EINVAL / NR_EIO. */
static int job_load(struct rq_i *ri, const char *id, const char *queue, struct nr_rq_job *job)
{
    struct nr_redis_batch b = { 0 };
    struct nr_rq_job j = { 0 };
    redisReply *rep[2] = { NULL, NULL }, *rh, *re;
    struct nr_redis_cmd *c;
    int rcode;

    if (!usable(ri))
        return NR_EIO;
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "HGETALL");
    nr_redis_argf(c, "rq:job:%s", id);
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "EXISTS");
    nr_redis_argf(c, "rq:job:%s:dependents", id);
    rcode = take_err(ri, nr_redis_pipeline(ri->pub.conn, COMMAND_TIMEOUT_MS, "HGETALL", &b, rep));
    nr_redis_batch_clear(&b);
    if (rcode < 0)
        return rcode;
    rh = rep[0];
    re = rep[1];
    if (rh->type == REDIS_REPLY_ERROR) {
        rcode = reply_refused(ri, "HGETALL of the job", rh);
        goto out;
    }
    if (!job_of_hash(rh, &j)) {
        nr_rq_job_clear(&j);
        rcode = NR_NOTFOUND;
        goto out;
    }
    j.has_dependents = re->type == REDIS_REPLY_INTEGER && re->integer > 0;
    j.id = nr_strdup(id);
    j.queue = nr_strdup(queue);
    *job = j;           /* written only on success */
    rcode = NR_OK;
out:
    freeReplyObject(rh);
    freeReplyObject(re);
    return rcode;
}

/* ------------------------------------------------------------------- take */

/* The list a job moves to when worker takes it from queue (rq.h, "Taking"). */
static void arg_intake(struct nr_redis_cmd *c, const char *queue, const char *worker)
{
    nr_redis_argf(c, "rq:queue:%s:intake:%s", queue, worker);
}

/* LREM the id from this worker's intake list of queue, outside any MULTI:
 * for ids that will never start.  A failure only leaves the id for the
 * next recovery, which skips it again. */
static void intake_drop(struct rq_i *ri, const char *queue, const char *id, size_t idlen)
{
    struct nr_redis_cmd c = { 0 };
    redisReply *r;

    nr_redis_arg(&c, "LREM");
    arg_intake(&c, queue, ri->pub.worker);
    nr_redis_arg(&c, "1");
    nr_redis_arg_n(&c, id, idlen);
    r = command(ri, COMMAND_TIMEOUT_MS, "LREM", &c);
    freeReplyObject(r);
    nr_redis_cmd_clear(&c);
}

int nr_rq_take_from(struct nr_rq *rq, size_t qi, int timeout_s, struct nr_rq_job *job)
{
    struct rq_i *ri;
    struct nr_redis_cmd c = { 0 };
    redisReply *r;
    const char *queue, *what;
    char *id;
    int rcode;

    if (rq == NULL || job == NULL || qi >= rq->queues.n)
        return NR_EINVAL;
    ri = ri_of(rq);
    queue = rq->queues.v[qi];
    if (timeout_s < 0)
        timeout_s = 0;
    if (timeout_s > 60)
        timeout_s = 60;

    /* from the head, as BLPOP takes: RPUSH enqueues, LPUSH puts in front */
    what = timeout_s ? "BLMOVE" : "LMOVE";
    nr_redis_arg(&c, what);
    nr_redis_argf(&c, "rq:queue:%s", queue);
    arg_intake(&c, queue, rq->worker);
    nr_redis_arg(&c, "LEFT");
    nr_redis_arg(&c, "RIGHT");
    if (timeout_s)
        nr_redis_argf(&c, "%d", timeout_s);
    r = command(ri, timeout_s ? timeout_s * 1000 + BLOCKING_MARGIN_MS : COMMAND_TIMEOUT_MS,
                what, &c);
    nr_redis_cmd_clear(&c);
    if (r == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return NR_NOTFOUND;
    }
    if (r->type != REDIS_REPLY_STRING) {
        char w[96];
        snprintf(w, sizeof(w), "%s from queue %s", what, queue);
        rcode = reply_refused(ri, w, r);
        freeReplyObject(r);
        return rcode;
    }
    /* an id with a NUL byte (or none at all) can name no job: skipped */
    if (r->len == 0 || memchr(r->str, '\0', r->len)) {
        intake_drop(ri, queue, r->str, r->len);
        freeReplyObject(r);
        return ri->pub.err ? NR_EIO : NR_NOTFOUND;
    }
    id = nr_strndup(r->str, r->len);
    freeReplyObject(r);
    rcode = job_load(ri, id, queue, job);
    if (rcode == NR_OK)
        job->in_intake = true;
    if (rcode == NR_NOTFOUND) {
        intake_drop(ri, queue, id, strlen(id));
        if (ri->pub.err)
            rcode = NR_EIO;
    }
    free(id);
    return rcode;
}

int nr_rq_take(struct nr_rq *rq, int timeout_s, struct nr_rq_job *job)
{
    uint64_t deadline;
    int rc;

    if (rq == NULL || job == NULL || rq->queues.n == 0)
        return NR_EINVAL;
    if (timeout_s < 1)
        timeout_s = 1;
    if (timeout_s > 60)
        timeout_s = 60;
    deadline = nr_mono_ns() + (uint64_t)timeout_s * 1000000000ull;
    for (;;) {
        for (size_t i = 0; i < rq->queues.n; i++)
            if ((rc = nr_rq_take_from(rq, i, 0, job)) != NR_NOTFOUND)
                return rc;
        uint64_t now = nr_mono_ns();
        if (now >= deadline)
            return NR_NOTFOUND;
        int left = (int)((deadline - now + 999999999ull) / 1000000000ull);
        rc = nr_rq_take_from(rq, 0, rq->queues.n > 1 ? 1 : left, job);
        if (rc != NR_NOTFOUND)
            return rc;
    }
}

/* Move every id of worker's intake list of queue back to the front of
 * queue, newest first, so that they end in their old order. */
static int move_back(struct rq_i *ri, const char *queue, const char *worker, size_t *moved)
{
    for (size_t n = 0; n < RECOVER_MAX; n++) {
        struct nr_redis_cmd c = { 0 };
        redisReply *r;
        int rc = NR_OK;

        nr_redis_arg(&c, "LMOVE");
        arg_intake(&c, queue, worker);
        nr_redis_argf(&c, "rq:queue:%s", queue);
        nr_redis_arg(&c, "RIGHT");
        nr_redis_arg(&c, "LEFT");
        r = command(ri, COMMAND_TIMEOUT_MS, "LMOVE", &c);
        nr_redis_cmd_clear(&c);
        if (r == NULL)
            return NR_EIO;
        if (r->type == REDIS_REPLY_NIL) {
            freeReplyObject(r);
            return NR_OK;
        }
        if (r->type == REDIS_REPLY_STRING)
            (*moved)++;
        else
            rc = reply_refused(ri, "putting back an intake list", r);
        freeReplyObject(r);
        if (rc < 0)
            return rc;
    }
    return NR_OK;
}

/* Move back this worker's own intake list of queue but for the ids of
 * keep (jobs it still holds: it will start, fail or hand them back
 * itself), one MULTI of LREM + LPUSH per id, under WATCH of the list. */
static int move_back_except(struct rq_i *ri, const char *queue, const struct nr_strlist *keep,
                            size_t *moved)
{
    int rc = NR_NOTFOUND;

    for (int attempt = 0; attempt < START_ATTEMPTS && rc == NR_NOTFOUND; attempt++) {
        struct nr_redis_cmd c = { 0 };
        struct nr_redis_batch b = { 0 };
        redisReply *r;
        bool *kept;
        size_t n = 0;

        nr_redis_arg(&c, "WATCH");
        arg_intake(&c, queue, ri->pub.worker);
        rc = simple(ri, "WATCH", &c);
        nr_redis_cmd_clear(&c);
        if (rc < 0)
            return rc;
        nr_redis_arg(&c, "LRANGE");
        arg_intake(&c, queue, ri->pub.worker);
        nr_redis_arg(&c, "0");
        nr_redis_argf(&c, "%d", RECOVER_MAX - 1);
        r = command(ri, COMMAND_TIMEOUT_MS, "LRANGE", &c);
        nr_redis_cmd_clear(&c);
        if (r == NULL)
            return NR_EIO;
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = reply_refused(ri, "LRANGE of the intake list", r);
            freeReplyObject(r);
            nr_redis_arg(&c, "UNWATCH");
            simple(ri, "UNWATCH", &c);
            nr_redis_cmd_clear(&c);
            return ri->pub.err ? NR_EIO : rc;
        }
        /* newest first, each to the front: the oldest ends in front */
        kept = nr_calloc(keep->n + 1, sizeof(*kept));
        for (size_t i = r->elements; i-- > 0;) {
            const redisReply *e = r->element[i];
            bool held = false;
            struct nr_redis_cmd *bc;

            if (e->type != REDIS_REPLY_STRING)
                continue;
            for (size_t k = 0; k < keep->n && !held; k++)
                if (!kept[k] && strlen(keep->v[k]) == e->len &&
                    memcmp(keep->v[k], e->str, e->len) == 0)
                    held = kept[k] = true;
            if (held)
                continue;
            bc = nr_redis_batch_add(&b);
            nr_redis_arg(bc, "LREM");
            arg_intake(bc, queue, ri->pub.worker);
            nr_redis_arg(bc, "1");
            nr_redis_arg_own(bc, nr_strndup(e->str, e->len), e->len);
            bc = nr_redis_batch_add(&b);
            nr_redis_arg(bc, "LPUSH");
            nr_redis_argf(bc, "rq:queue:%s", queue);
            nr_redis_arg_own(bc, nr_strndup(e->str, e->len), e->len);
            n++;
        }
        free(kept);
        freeReplyObject(r);
        if (n == 0) {
            nr_redis_arg(&c, "UNWATCH");
            rc = simple(ri, "UNWATCH", &c);
            nr_redis_cmd_clear(&c);
            return rc;
        }
        rc = transaction(ri, "putting back an intake list", &b);
        nr_redis_batch_clear(&b);
        if (rc == NR_OK)
            *moved += n;
    }
    return rc == NR_NOTFOUND ? NR_OK : rc;     /* still racing: the next call */
}

/* A dead worker whose intake list is empty leaves the set, under WATCH of
 * the list: if it comes back to life and takes a job meanwhile, it stays
 * (and its next heartbeat adds it again anyway). */
static int forget_worker(struct rq_i *ri, const char *queue, const char *worker)
{
    struct nr_redis_cmd c = { 0 };
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd *bc;
    long long len = 0;
    int rc;

    nr_redis_arg(&c, "WATCH");
    arg_intake(&c, queue, worker);
    rc = simple(ri, "WATCH", &c);
    nr_redis_cmd_clear(&c);
    if (rc < 0)
        return rc;
    nr_redis_arg(&c, "LLEN");
    arg_intake(&c, queue, worker);
    rc = int_reply(ri, "LLEN", &c, &len);
    nr_redis_cmd_clear(&c);
    if (rc < 0 || len != 0) {
        if (!ri->pub.err) {
            nr_redis_arg(&c, "UNWATCH");
            simple(ri, "UNWATCH", &c);
            nr_redis_cmd_clear(&c);
        }
        return ri->pub.err ? NR_EIO : rc;
    }
    bc = nr_redis_batch_add(&b);
    nr_redis_arg(bc, "SREM");
    nr_redis_argf(bc, "rq:queue:%s:intakes", queue);
    nr_redis_arg(bc, worker);
    rc = transaction(ri, "forgetting a dead worker's intake list", &b);
    nr_redis_batch_clear(&b);
    return rc == NR_NOTFOUND ? NR_OK : rc;
}

int nr_rq_recover(struct nr_rq *rq, const char *queue, bool own,
                  const struct nr_strlist *keep, size_t *moved)
{
    struct rq_i *ri;
    struct nr_redis_cmd c = { 0 };
    redisReply *r;
    char **workers = NULL;
    size_t nw = 0, n = 0;
    int rc = NR_OK;

    if (rq == NULL || queue == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    if (own && keep != NULL && keep->n > 0)
        rc = move_back_except(ri, queue, keep, &n);
    else if (own)
        rc = move_back(ri, queue, rq->worker, &n);

    nr_redis_arg(&c, "SMEMBERS");
    nr_redis_argf(&c, "rq:queue:%s:intakes", queue);
    r = rc < 0 ? NULL : command(ri, COMMAND_TIMEOUT_MS, "SMEMBERS", &c);
    nr_redis_cmd_clear(&c);
    if (r != NULL && r->type != REDIS_REPLY_ARRAY)
        rc = reply_refused(ri, "SMEMBERS of the intake lists", r);
    else if (r != NULL) {
        workers = nr_calloc(r->elements + 1, sizeof(*workers));
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING && r->element[i]->len > 0 &&
                !memchr(r->element[i]->str, '\0', r->element[i]->len))
                workers[nw++] = nr_strndup(r->element[i]->str, r->element[i]->len);
    } else if (rc == NR_OK) {
        rc = NR_EIO;
    }
    freeReplyObject(r);

    for (size_t i = 0; i < nw && rc >= 0; i++) {
        long long alive = 0;

        if (strcmp(workers[i], rq->worker) == 0)
            continue;
        nr_redis_arg(&c, "EXISTS");
        nr_redis_argf(&c, "rq:worker:%s", workers[i]);
        rc = int_reply(ri, "EXISTS", &c, &alive);
        nr_redis_cmd_clear(&c);
        if (rc < 0 || alive > 0)
            continue;
        if ((rc = move_back(ri, queue, workers[i], &n)) == NR_OK)
            rc = forget_worker(ri, queue, workers[i]);
    }
    for (size_t i = 0; i < nw; i++)
        free(workers[i]);
    free(workers);
    if (moved != NULL)
        *moved = n;
    return rc;
}

/* ------------------------------------------------------------------ check */

/* Does the JSON list of retry intervals hold a non-zero one? */
static bool has_intervals(const char *json)
{
    json_error_t e;
    json_t *a, *v;
    size_t i;
    bool any = false;

    if (json == NULL || json[0] == '\0')
        return false;
    a = json_loads(json, JSON_DECODE_ANY, &e);
    if (a == NULL)
        return true;    /* unreadable: do not guess it is zero */
    if (json_is_array(a)) {
        json_array_foreach(a, i, v)
            if (!json_is_number(v) || json_number_value(v) != 0)
                any = true;
    } else if (!json_is_null(a)) {
        any = true;
    }
    json_decref(a);
    return any;
}

int nr_rq_job_check_call(const struct nr_rq_job *job, struct nr_rq_call *call, char **reason)
{
    struct nr_rq_call c;
    char *why = NULL;

    if (job == NULL || call == NULL)
        return NR_EINVAL;
    if (nr_rq_data_decode_call(job->data, job->data_len, &c, &why) != 0) {
        if (reason != NULL)
            *reason = why;
        else
            free(why);
        return NR_EINVAL;
    }
    if (job->has_dependents)
        why = nr_asprintf("job has dependent jobs (rq:job:%s:dependents); netraven-worker "
                          "does not enqueue dependents", job->id ? job->id : "?");
    else if (job->has_callbacks)
        why = nr_strdup("job has success, failure or stopped callbacks; netraven-worker "
                        "does not run callbacks");
    else if (job->repeats_left > 0)
        why = nr_asprintf("job repeats (repeats_left %ld); netraven-worker does not "
                          "implement RQ repeats", job->repeats_left);
    else if (job->retries_left > 0 && has_intervals(job->retry_intervals))
        why = nr_asprintf("job retries after intervals (retry_intervals %.60s), which need "
                          "RQ's scheduler; netraven-worker retries only without intervals",
                          job->retry_intervals);
    if (why != NULL) {
        for (char *p = why; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        if (reason != NULL)
            *reason = why;
        else
            free(why);
        return NR_EINVAL;
    }
    *call = c;
    return NR_OK;
}

int nr_rq_job_check(const struct nr_rq_job *job, long long *job_id, char **reason)
{
    struct nr_rq_call c;
    int rc;

    if (job_id == NULL)
        return NR_EINVAL;
    rc = nr_rq_job_check_call(job, &c, reason);
    if (rc != NR_OK)
        return rc;
    if (c.func != NR_RQ_RUN_JOB) {
        if (reason != NULL)
            *reason = nr_asprintf("job calls %s, not " NR_RQ_FUNC,
                                  nr_rq_func_table(NULL)[c.func].name);
        return NR_EINVAL;
    }
    *job_id = c.arg;
    return NR_OK;
}

/* ------------------------------------------------------------- write sets */

static void add_zrem_wip(struct nr_redis_batch *b, const char *queue, const char *member)
{
    struct nr_redis_cmd *c = nr_redis_batch_add(b);
    nr_redis_arg(c, "ZREM");
    nr_redis_argf(c, "rq:wip:%s", queue);
    nr_redis_arg(c, member);
}

/* Out of this worker's intake list, for a job that never started (one
 * that did is not in it, but the same id may be again: rq-scheduler
 * enqueues a periodic job under one id every time). */
static void add_lrem_intake(struct nr_redis_batch *b, const struct nr_rq *rq,
                            const struct nr_rq_job *job)
{
    struct nr_redis_cmd *c;

    if (!job->in_intake)
        return;
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "LREM");
    arg_intake(c, job->queue, rq->worker);
    nr_redis_arg(c, "1");
    nr_redis_arg(c, job->id);
}

/* Is id in this worker's intake list of queue?  1 yes, 0 no, or < 0. */
static int in_intake(struct rq_i *ri, const char *queue, const char *id)
{
    struct nr_redis_cmd c = { 0 };
    long long pos = -1;
    int rc;

    nr_redis_arg(&c, "LPOS");
    arg_intake(&c, queue, ri->pub.worker);
    nr_redis_arg(&c, id);
    rc = int_reply(ri, "LPOS", &c, &pos);
    nr_redis_cmd_clear(&c);
    return rc < 0 ? rc : pos >= 0;
}

/* Did an earlier nr_rq_start() of job commit (its reply was lost with the
 * connection)?  1 when the job is started by this worker and in the wip
 * registry, 0 when not, or < 0. */
static int started_here(struct rq_i *ri, const struct nr_rq_job *job)
{
    struct nr_redis_cmd c = { 0 };
    redisReply *r;
    long long score = -1;
    int rc;

    nr_redis_arg(&c, "HMGET");
    nr_redis_argf(&c, "rq:job:%s", job->id);
    nr_redis_arg(&c, "status");
    nr_redis_arg(&c, "worker_name");
    r = command(ri, COMMAND_TIMEOUT_MS, "HMGET", &c);
    nr_redis_cmd_clear(&c);
    if (r == NULL)
        return NR_EIO;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        rc = reply_refused(ri, "HMGET of the job", r);
        freeReplyObject(r);
        return rc;
    }
    rc = r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 7 &&
         memcmp(r->element[0]->str, "started", 7) == 0 &&
         r->element[1]->type == REDIS_REPLY_STRING &&
         r->element[1]->len == strlen(ri->pub.worker) &&
         memcmp(r->element[1]->str, ri->pub.worker, r->element[1]->len) == 0;
    freeReplyObject(r);
    if (rc == 1) {
        nr_redis_arg(&c, "ZSCORE");
        nr_redis_argf(&c, "rq:wip:%s", job->queue);
        nr_redis_arg(&c, job->id);
        rc = int_reply(ri, "ZSCORE", &c, &score);
        nr_redis_cmd_clear(&c);
        if (rc == NR_OK)
            rc = score >= 0;
    }
    return rc;
}

int nr_rq_start(struct nr_rq *rq, struct nr_rq_job *job)
{
    struct rq_i *ri;
    char ts[NR_ISO_TS_LEN];
    long long now;
    int rc = NR_NOTFOUND;

    if (rq == NULL || job == NULL || job->id == NULL || job->queue == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);

    /* WATCH, then LPOS: if a recovery put the id back since we took it
     * (we were taken for dead), EXEC does not run and we see it gone */
    for (int attempt = 0; attempt < START_ATTEMPTS && rc == NR_NOTFOUND; attempt++) {
        struct nr_redis_batch b = { 0 };
        struct nr_redis_cmd w = { 0 }, *c;

        nr_redis_arg(&w, "WATCH");
        arg_intake(&w, job->queue, rq->worker);
        rc = simple(ri, "WATCH", &w);
        nr_redis_cmd_clear(&w);
        if (rc < 0)
            return rc;
        if ((rc = in_intake(ri, job->queue, job->id)) <= 0) {
            if (!ri->pub.err) {
                nr_redis_arg(&w, "UNWATCH");
                simple(ri, "UNWATCH", &w);
                nr_redis_cmd_clear(&w);
            }
            if (ri->pub.err)
                return NR_EIO;
            if (rc == 0 && (rc = started_here(ri, job)) == 1) {
                job->in_intake = false;
                return NR_OK;
            }
            return rc == 0 ? NR_NOTFOUND : rc;
        }

        now_ts(ts, &now);
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "HSET");
        nr_redis_argf(c, "rq:job:%s", job->id);
        nr_redis_arg(c, "status");
        nr_redis_arg(c, "started");
        nr_redis_arg(c, "started_at");
        nr_redis_arg(c, ts);
        nr_redis_arg(c, "last_heartbeat");
        nr_redis_arg(c, ts);
        nr_redis_arg(c, "worker_name");
        nr_redis_arg(c, rq->worker);
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "PERSIST");
        nr_redis_argf(c, "rq:job:%s", job->id);
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "ZADD");
        nr_redis_argf(c, "rq:wip:%s", job->queue);
        nr_redis_argf(c, "%lld", now + WIP_GRACE_S);
        nr_redis_arg(c, job->id);
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "LREM");
        arg_intake(c, job->queue, rq->worker);
        nr_redis_arg(c, "1");
        nr_redis_arg(c, job->id);
        rc = transaction(ri, "marking the job started", &b);
        nr_redis_batch_clear(&b);
    }
    if (rc == NR_OK)
        job->in_intake = false;
    return rc;
}

/* The worker hash's fields, all of them (HSET, so a key that expired while
 * we were away is whole again), its TTL and the worker sets. */
static void add_worker_fields(struct rq_i *ri, struct nr_redis_batch *b, const char *ts)
{
    struct nr_redis_cmd *c = nr_redis_batch_add(b);

    nr_redis_arg(c, "HSET");
    nr_redis_argf(c, "rq:worker:%s", ri->pub.worker);
    nr_redis_arg(c, "birth");
    nr_redis_arg(c, ri->birth);
    nr_redis_arg(c, "last_heartbeat");
    nr_redis_arg(c, ts);
    nr_redis_arg(c, "queues");
    nr_redis_arg(c, ri->queues_csv);
    nr_redis_arg(c, "pid");
    nr_redis_argf(c, "%ld", (long)getpid());
    nr_redis_arg(c, "hostname");
    nr_redis_arg(c, ri->hostname);
    nr_redis_arg(c, "state");
    nr_redis_arg(c, ri->current_job ? "busy" : "idle");
    if (ri->current_job) {
        nr_redis_arg(c, "current_job");
        nr_redis_arg(c, ri->current_job);
    } else {
        c = nr_redis_batch_add(b);
        nr_redis_arg(c, "HDEL");
        nr_redis_argf(c, "rq:worker:%s", ri->pub.worker);
        nr_redis_arg(c, "current_job");
    }
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "EXPIRE");
    nr_redis_argf(c, "rq:worker:%s", ri->pub.worker);
    nr_redis_argf(c, "%d", WORKER_TTL_S);
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "SADD");
    nr_redis_arg(c, "rq:workers");
    nr_redis_argf(c, "rq:worker:%s", ri->pub.worker);
    for (size_t i = 0; i < ri->pub.queues.n; i++) {
        c = nr_redis_batch_add(b);
        nr_redis_arg(c, "SADD");
        nr_redis_argf(c, "rq:workers:%s", ri->pub.queues.v[i]);
        nr_redis_argf(c, "rq:worker:%s", ri->pub.worker);
        /* whose intake lists to look at when their worker is gone */
        c = nr_redis_batch_add(b);
        nr_redis_arg(c, "SADD");
        nr_redis_argf(c, "rq:queue:%s:intakes", ri->pub.queues.v[i]);
        nr_redis_arg(c, ri->pub.worker);
    }
}

int nr_rq_heartbeat(struct nr_rq *rq, const struct nr_rq_job *const *jobs, size_t n)
{
    struct rq_i *ri;
    struct nr_redis_batch b = { 0 };
    char ts[NR_ISO_TS_LEN];
    long long now;
    int rc;

    if (rq == NULL || (jobs == NULL && n > 0))
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, &now);
    for (size_t i = 0; i < n; i++) {
        struct nr_redis_cmd *c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "HSET");
        nr_redis_argf(c, "rq:job:%s", jobs[i]->id);
        nr_redis_arg(c, "last_heartbeat");
        nr_redis_arg(c, ts);
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "ZADD");
        nr_redis_argf(c, "rq:wip:%s", jobs[i]->queue);
        nr_redis_arg(c, "XX");
        nr_redis_argf(c, "%lld", now + WIP_GRACE_S);
        nr_redis_arg(c, jobs[i]->id);
    }
    add_worker_fields(ri, &b, ts);
    rc = transaction(ri, "heart-beating", &b);
    nr_redis_batch_clear(&b);
    return rc;
}

/* rq:KIND:ID kept ttl seconds, or for ever (PERSIST) when ttl < 0. */
static void key_keep(struct nr_redis_batch *b, const char *kind, const char *id, long ttl)
{
    struct nr_redis_cmd *c = nr_redis_batch_add(b);

    nr_redis_arg(c, ttl < 0 ? "PERSIST" : "EXPIRE");
    nr_redis_argf(c, "rq:%s:%s", kind, id);
    if (ttl >= 0)
        nr_redis_argf(c, "%ld", ttl);
}

/* The XADD of job's entry in its results stream (rq:results:ID, the newest
 * RESULTS_MAXLEN kept), of result type 1 (finished) or 2 (failed); more
 * fields may be added to the command returned. */
static struct nr_redis_cmd *result_add(struct nr_redis_batch *b, const struct nr_rq_job *job,
                                       const char *type)
{
    struct nr_redis_cmd *c = nr_redis_batch_add(b);

    nr_redis_arg(c, "XADD");
    nr_redis_argf(c, "rq:results:%s", job->id);
    nr_redis_arg(c, "MAXLEN");
    nr_redis_arg(c, "~");
    nr_redis_arg(c, RESULTS_MAXLEN);
    nr_redis_arg(c, "*");
    nr_redis_arg(c, "type");
    nr_redis_arg(c, type);
    return c;
}

/* The results stream kept ttl seconds (< 0: for ever), and job in the
 * registry (rq:finished / rq:failed of its queue) until then. */
static void result_keep(struct nr_redis_batch *b, const struct nr_rq_job *job,
                        const char *registry, long ttl, long long now)
{
    struct nr_redis_cmd *c;

    key_keep(b, "results", job->id, ttl);
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "ZADD");
    nr_redis_argf(c, "rq:%s:%s", registry, job->queue);
    if (ttl < 0)
        nr_redis_arg(c, "+inf");
    else
        nr_redis_argf(c, "%lld", now + ttl);
    nr_redis_arg(c, job->id);
}

int nr_rq_finish(struct nr_rq *rq, const struct nr_rq_job *job)
{
    struct rq_i *ri;
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd *c;
    char ts[NR_ISO_TS_LEN];
    long long now;
    long ttl;
    int rc;

    if (rq == NULL || job == NULL || job->id == NULL || job->queue == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, &now);
    ttl = job->result_ttl;

    if (ttl == 0) {
        /* result_ttl 0: the job is discarded on success */
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "DEL");
        nr_redis_argf(c, "rq:job:%s", job->id);
    } else {
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "HSET");
        nr_redis_argf(c, "rq:job:%s", job->id);
        nr_redis_arg(c, "status");
        nr_redis_arg(c, "finished");
        nr_redis_arg(c, "ended_at");
        nr_redis_arg(c, ts);
        /* run_job returns None: no return_value field */
        result_add(&b, job, "1");
        result_keep(&b, job, "finished", ttl, now);
        if (ttl > 0) {
            c = nr_redis_batch_add(&b);
            nr_redis_arg(c, "EXPIRE");
            nr_redis_argf(c, "rq:job:%s", job->id);
            nr_redis_argf(c, "%ld", ttl);
        }
    }
    add_zrem_wip(&b, job->queue, job->id);
    rc = transaction(ri, "recording the job finished", &b);
    nr_redis_batch_clear(&b);
    return rc;
}

/* base64(zlib(text)), as Result.serialize() writes exc_string.  malloc'd. */
static char *exc_string_of(const char *text, size_t *outlen)
{
    size_t n = strlen(text);
    uLongf zn = compressBound((uLong)n);
    unsigned char *z = nr_malloc(zn);
    char *b64;
    int len;

    if (compress2(z, &zn, (const Bytef *)text, (uLong)n, Z_DEFAULT_COMPRESSION) != Z_OK) {
        /* cannot happen with a compressBound() buffer; an empty text then */
        zn = compressBound(0);
        compress2(z, &zn, (const Bytef *)"", 0, Z_DEFAULT_COMPRESSION);
    }
    b64 = nr_malloc(4 * ((zn + 2) / 3) + 1);
    len = EVP_EncodeBlock((unsigned char *)b64, z, (int)zn);
    free(z);
    *outlen = len > 0 ? (size_t)len : 0;
    b64[*outlen] = '\0';
    return b64;
}

/* The failure set for job under member (its wip entry). */
static void add_failure(struct nr_redis_batch *b, const struct nr_rq_job *job, const char *member,
                        const char *reason)
{
    char ts[NR_ISO_TS_LEN];
    long long now;
    long ttl = job->failure_ttl;
    struct nr_redis_cmd *c;
    size_t elen;
    char *exc;

    now_ts(ts, &now);
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "HSET");
    nr_redis_argf(c, "rq:job:%s", job->id);
    nr_redis_arg(c, "status");
    nr_redis_arg(c, "failed");
    nr_redis_arg(c, "ended_at");
    nr_redis_argf(c, "%s", ts);   /* ts dies with this frame: copy */

    exc = exc_string_of(reason && reason[0] ? reason : "job failed", &elen);
    c = result_add(b, job, "2");
    nr_redis_arg(c, "exc_string");
    nr_redis_arg_own(c, exc, elen);
    result_keep(b, job, "failed", ttl, now);
    key_keep(b, "job", job->id, ttl);
    add_zrem_wip(b, job->queue, member);
}

/* The requeue set: retries_left - 1, back on its queue (RQ's Job.retry
 * without intervals). */
static void add_requeue(struct nr_redis_batch *b, const struct nr_rq_job *job, const char *member)
{
    char ts[NR_ISO_TS_LEN];
    struct nr_redis_cmd *c;

    now_ts(ts, NULL);
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "HSET");
    nr_redis_argf(c, "rq:job:%s", job->id);
    nr_redis_arg(c, "status");
    nr_redis_arg(c, "queued");
    nr_redis_arg(c, "retries_left");
    nr_redis_argf(c, "%ld", job->retries_left - 1);
    nr_redis_arg(c, "enqueued_at");
    nr_redis_argf(c, "%s", ts);   /* ts dies with this frame: copy */
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "SADD");
    nr_redis_arg(c, "rq:queues");
    nr_redis_argf(c, "rq:queue:%s", job->queue);
    c = nr_redis_batch_add(b);
    nr_redis_arg(c, "RPUSH");
    nr_redis_argf(c, "rq:queue:%s", job->queue);
    nr_redis_arg(c, job->id);
    add_zrem_wip(b, job->queue, member);
}

int nr_rq_fail(struct nr_rq *rq, const struct nr_rq_job *job, const char *reason,
               bool may_retry, bool *requeued)
{
    struct nr_redis_batch b = { 0 };
    bool retry;
    int rc;

    if (rq == NULL || job == NULL || job->id == NULL || job->queue == NULL)
        return NR_EINVAL;
    retry = may_retry && job->retries_left > 0;
    if (retry)
        add_requeue(&b, job, job->id);
    else
        add_failure(&b, job, job->id, reason);
    add_lrem_intake(&b, rq, job);
    rc = transaction(ri_of(rq), retry ? "requeueing the job" : "recording the job failed", &b);
    nr_redis_batch_clear(&b);
    if (rc == NR_OK && requeued != NULL)
        *requeued = retry;
    return rc;
}

int nr_rq_release(struct nr_rq *rq, const struct nr_rq_job *job)
{
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd *c;
    int rc;

    if (rq == NULL || job == NULL || job->id == NULL || job->queue == NULL)
        return NR_EINVAL;
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "HSET");
    nr_redis_argf(c, "rq:job:%s", job->id);
    nr_redis_arg(c, "status");
    nr_redis_arg(c, "queued");
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "LPUSH");
    nr_redis_argf(c, "rq:queue:%s", job->queue);
    nr_redis_arg(c, job->id);
    add_zrem_wip(&b, job->queue, job->id);
    add_lrem_intake(&b, rq, job);
    rc = transaction(ri_of(rq), "handing the job back", &b);
    nr_redis_batch_clear(&b);
    return rc;
}

/* ----------------------------------------------------------------- worker */

int nr_rq_worker_register(struct nr_rq *rq)
{
    struct rq_i *ri;
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd *c;
    char ts[NR_ISO_TS_LEN];
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, NULL);
    memcpy(ri->birth, ts, sizeof(ts));
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "DEL");      /* a previous life under the same name */
    nr_redis_argf(c, "rq:worker:%s", rq->worker);
    add_worker_fields(ri, &b, ts);
    rc = transaction(ri, "registering the worker", &b);
    nr_redis_batch_clear(&b);
    return rc;
}

int nr_rq_worker_state(struct nr_rq *rq, const char *job_id)
{
    struct rq_i *ri;
    struct nr_redis_cmd c = { 0 };
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    free(ri->current_job);
    ri->current_job = job_id ? nr_strdup(job_id) : NULL;

    if (job_id != NULL) {
        nr_redis_arg(&c, "HSET");
        nr_redis_argf(&c, "rq:worker:%s", rq->worker);
        nr_redis_arg(&c, "state");
        nr_redis_arg(&c, "busy");
        nr_redis_arg(&c, "current_job");
        nr_redis_arg(&c, job_id);
        rc = simple(ri, "setting the worker busy", &c);
    } else {
        struct nr_redis_batch b = { 0 };
        struct nr_redis_cmd *bc = nr_redis_batch_add(&b);
        nr_redis_arg(bc, "HSET");
        nr_redis_argf(bc, "rq:worker:%s", rq->worker);
        nr_redis_arg(bc, "state");
        nr_redis_arg(bc, "idle");
        bc = nr_redis_batch_add(&b);
        nr_redis_arg(bc, "HDEL");
        nr_redis_argf(bc, "rq:worker:%s", rq->worker);
        nr_redis_arg(bc, "current_job");
        rc = transaction(ri, "setting the worker idle", &b);
        nr_redis_batch_clear(&b);
    }
    nr_redis_cmd_clear(&c);
    return rc;
}

int nr_rq_worker_death(struct nr_rq *rq)
{
    struct rq_i *ri;
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd *c;
    char ts[NR_ISO_TS_LEN];
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, NULL);
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "SREM");
    nr_redis_arg(c, "rq:workers");
    nr_redis_argf(c, "rq:worker:%s", rq->worker);
    for (size_t i = 0; i < rq->queues.n; i++) {
        c = nr_redis_batch_add(&b);
        nr_redis_arg(c, "SREM");
        nr_redis_argf(c, "rq:workers:%s", rq->queues.v[i]);
        nr_redis_argf(c, "rq:worker:%s", rq->worker);
    }
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "HSET");
    nr_redis_argf(c, "rq:worker:%s", rq->worker);
    nr_redis_arg(c, "death");
    nr_redis_arg(c, ts);
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "EXPIRE");
    nr_redis_argf(c, "rq:worker:%s", rq->worker);
    nr_redis_argf(c, "%d", DEATH_TTL_S);
    rc = transaction(ri, "registering the worker's death", &b);
    nr_redis_batch_clear(&b);
    return rc;
}

int nr_rq_suspended(struct nr_rq *rq)
{
    struct nr_redis_cmd c = { 0 };
    redisReply *r;
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    nr_redis_arg(&c, "EXISTS");
    nr_redis_arg(&c, "rq:suspended");
    r = command(ri_of(rq), COMMAND_TIMEOUT_MS, "EXISTS rq:suspended", &c);
    if (r == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_INTEGER)
        rc = r->integer > 0;
    else
        rc = reply_refused(ri_of(rq), "EXISTS rq:suspended", r);
    freeReplyObject(r);
    return rc;
}

/* ---------------------------------------------------------------- cleanup */

/* One command returning an integer or nil; *out = -1 for nil. */
static int int_reply(struct rq_i *ri, const char *what, struct nr_redis_cmd *c, long long *out)
{
    redisReply *r = command(ri, COMMAND_TIMEOUT_MS, what, c);
    int rc = NR_OK;

    if (r == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_INTEGER)
        *out = r->integer;
    else if (r->type == REDIS_REPLY_NIL)
        *out = -1;
    else if (r->type == REDIS_REPLY_STRING) {    /* ZSCORE: a number as text */
        char buf[64];
        size_t n = r->len < sizeof(buf) - 1 ? r->len : sizeof(buf) - 1;
        memcpy(buf, r->str, n);
        buf[n] = '\0';
        if (strcmp(buf, "inf") == 0 || strcmp(buf, "+inf") == 0)
            *out = LLONG_MAX;
        else
            *out = (long long)strtod(buf, NULL);
    } else
        rc = reply_refused(ri, what, r);
    freeReplyObject(r);
    return rc;
}

/* The job id of a wip member: the member itself, or for python-rq 2.x's
 * "<id>:<execution>" members, the part before the last ':' when only that
 * names a job.  malloc'd. */
static char *member_job_id(struct rq_i *ri, const char *member)
{
    const char *colon = strrchr(member, ':');
    struct nr_redis_cmd c = { 0 };
    long long n = 0;

    if (colon == NULL || colon == member)
        return nr_strdup(member);
    nr_redis_arg(&c, "EXISTS");
    nr_redis_argf(&c, "rq:job:%s", member);
    if (int_reply(ri, "EXISTS", &c, &n) < 0 || n > 0) {
        nr_redis_cmd_clear(&c);
        return nr_strdup(member);
    }
    nr_redis_cmd_clear(&c);
    return nr_strndup(member, (size_t)(colon - member));
}

/* Handle one expired member under WATCH.  0 when it was handled or needs
 * nothing; NR_NOTFOUND when a race aborted it; NR_EINVAL / NR_EIO. */
static int cleanup_one(struct rq_i *ri, const char *queue, const char *member,
                       size_t *failed, size_t *requeued, struct nr_rq_died *died)
{
    struct nr_rq_job job = { 0 };
    struct nr_redis_cmd c = { 0 };
    struct nr_redis_batch b = { 0 };
    char *id = member_job_id(ri, member);
    long long score = 0, now;
    int rc;

    if (ri->pub.err) {
        free(id);
        return NR_EIO;
    }
    now = (long long)time(NULL);
    nr_redis_arg(&c, "WATCH");
    nr_redis_argf(&c, "rq:job:%s", id);
    nr_redis_argf(&c, "rq:wip:%s", queue);
    rc = simple(ri, "WATCH", &c);
    nr_redis_cmd_clear(&c);
    if (rc < 0)
        goto out;

    nr_redis_arg(&c, "ZSCORE");
    nr_redis_argf(&c, "rq:wip:%s", queue);
    nr_redis_arg(&c, member);
    rc = int_reply(ri, "ZSCORE", &c, &score);
    nr_redis_cmd_clear(&c);
    if (rc < 0)
        goto unwatch;
    if (score < 0 || score > now) {
        rc = NR_OK;             /* gone, or heart-beaten since: not abandoned */
        goto unwatch;
    }

    rc = job_load(ri, id, queue, &job);
    if (rc < 0)
        goto unwatch;
    if (rc == NR_NOTFOUND || job.status == NULL || strcmp(job.status, "started") != 0) {
        /* gone or already final: only the registry entry goes */
        add_zrem_wip(&b, queue, member);
        rc = transaction(ri, "removing a stale wip entry", &b);
    } else if (job.retries_left > 0) {
        add_requeue(&b, &job, member);
        rc = transaction(ri, "requeueing an abandoned job", &b);
        if (rc == NR_OK && requeued)
            (*requeued)++;
    } else {
        add_failure(&b, &job, member, ABANDONED_REASON);
        rc = transaction(ri, "failing an abandoned job", &b);
        if (rc == NR_OK && failed)
            (*failed)++;
        long long jid;
        char *why = NULL;
        if (rc == NR_OK && died && nr_rq_job_check(&job, &jid, &why) == 0) {
            died->job_ids = nr_realloc(died->job_ids, (died->n + 1) * sizeof(*died->job_ids));
            died->job_ids[died->n++] = jid;
        }
        free(why);
    }
    nr_rq_job_clear(&job);
    nr_redis_batch_clear(&b);
    goto out;       /* EXEC (or its abort) ended the WATCH */

unwatch:
    if (!ri->pub.err) {
        nr_redis_arg(&c, "UNWATCH");
        if (simple(ri, "UNWATCH", &c) < 0 && rc == NR_OK)
            rc = NR_EIO;
        nr_redis_cmd_clear(&c);
    }
out:
    free(id);
    return rc;
}

int nr_rq_cleanup(struct nr_rq *rq, const char *queue, size_t *failed, size_t *requeued,
                  struct nr_rq_died *died)
{
    struct rq_i *ri;
    struct nr_redis_cmd c = { 0 };
    redisReply *r;
    char **members = NULL;
    size_t n = 0;
    int rc = NR_OK;

    if (rq == NULL || queue == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    nr_redis_arg(&c, "ZRANGEBYSCORE");
    nr_redis_argf(&c, "rq:wip:%s", queue);
    nr_redis_arg(&c, "0");
    nr_redis_argf(&c, "%lld", (long long)time(NULL));
    nr_redis_arg(&c, "LIMIT");
    nr_redis_arg(&c, "0");
    nr_redis_argf(&c, "%d", CLEANUP_BATCH);
    r = command(ri, COMMAND_TIMEOUT_MS, "ZRANGEBYSCORE", &c);
    nr_redis_cmd_clear(&c);
    if (r == NULL)
        return NR_EIO;
    if (r->type != REDIS_REPLY_ARRAY) {
        rc = reply_refused(ri, "ZRANGEBYSCORE of the wip registry", r);
        freeReplyObject(r);
        return rc;
    }
    members = nr_calloc(r->elements + 1, sizeof(*members));
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            members[n++] = nr_strndup(r->element[i]->str, r->element[i]->len);
    freeReplyObject(r);

    for (size_t i = 0; i < n && rc != NR_EIO; i++) {
        int one = NR_NOTFOUND;
        for (int attempt = 0; attempt < CLEANUP_ATTEMPTS && one == NR_NOTFOUND; attempt++)
            one = cleanup_one(ri, queue, members[i], failed, requeued, died);
        if (one == NR_EIO)
            rc = NR_EIO;
        else if (one == NR_EINVAL && rc == NR_OK)
            rc = NR_EINVAL;     /* errstr names it; the others go on */
    }
    for (size_t i = 0; i < n; i++)
        free(members[i]);
    free(members);
    return rc;
}
