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
 * Errors: a connection failure (I/O, timeout, EOF) sets rq->err and every
 * later call refuses until nr_rq_reset(); a command the server refuses
 * (say WRONGTYPE on a key someone else wrote) returns NR_EINVAL with
 * rq->errstr saying why and leaves the connection usable.
 */
#include "netraven/rq.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "netraven/queue.h"

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
#define MAX_ARGS             (MAX_QUEUES + 8)
#define MAX_OWNED            8
#define CLEANUP_BATCH        100        /* ids per ZRANGEBYSCORE */
#define CLEANUP_ATTEMPTS     3          /* per id, when WATCH fires */
#define ABANDONED_REASON     "worker died (abandoned job)"
#define START_ATTEMPTS       3          /* when WATCH of the intake list fires */
#define RECOVER_MAX          100000     /* ids moved back per list and call */

/* The public struct first, so that pointers convert both ways. */
struct rq_i {
    struct nr_rq            pub;
    const struct nr_config *cfg;
    int                     timeout_ms;     /* the socket's, 0 = unknown */
    char                    birth[NR_ISO_TS_LEN];
    char                    hostname[256];
    char                   *queues_csv;     /* "default,high,low" */
    char                   *current_job;    /* NULL: idle */
};

static struct rq_i *ri_of(struct nr_rq *rq) { return (struct rq_i *)rq; }

struct cmd;
static int int_reply(struct rq_i *ri, const char *what, struct cmd *c, long long *out);

/* ---------------------------------------------------------------- commands */

struct cmd {
    int         argc;
    const char *argv[MAX_ARGS];
    size_t      len[MAX_ARGS];
    char       *owned[MAX_OWNED];
    int         nowned;
};

/* A list of commands for one MULTI. */
struct batch {
    struct cmd *c;
    size_t      n, cap;
};

static void arg_n(struct cmd *c, const char *s, size_t n)
{
    if (c->argc >= MAX_ARGS)
        abort();    /* a programming error: every caller's count is fixed */
    c->argv[c->argc] = s;
    c->len[c->argc] = n;
    c->argc++;
}

static void arg(struct cmd *c, const char *s) { arg_n(c, s, strlen(s)); }

static void argf(struct cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argf(struct cmd *c, const char *fmt, ...)
{
    va_list ap;
    char *s;

    if (c->nowned >= MAX_OWNED)
        abort();
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (s == NULL) {
        fputs("netraven-worker: out of memory\n", stderr);
        abort();
    }
    c->owned[c->nowned++] = s;
    arg(c, s);
}

/* An owned copy of s[0..n) as an argument. */
static void arg_own(struct cmd *c, char *s, size_t n)
{
    if (c->nowned >= MAX_OWNED)
        abort();
    c->owned[c->nowned++] = s;
    arg_n(c, s, n);
}

static void cmd_clear(struct cmd *c)
{
    for (int i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    memset(c, 0, sizeof(*c));
}

static struct cmd *batch_add(struct batch *b)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->c = nr_realloc(b->c, b->cap * sizeof(*b->c));
    }
    memset(&b->c[b->n], 0, sizeof(b->c[b->n]));
    return &b->c[b->n++];
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        cmd_clear(&b->c[i]);
    free(b->c);
    memset(b, 0, sizeof(*b));
}

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

/* The server refused something; the connection is fine. */
static int refused(struct rq_i *ri, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refused(struct rq_i *ri, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_errstr(ri, fmt, ap);
    va_end(ap);
    return NR_EINVAL;
}

static redisContext *rc_of(struct rq_i *ri)
{
    return ri->pub.conn ? ri->pub.conn->rc : NULL;
}

static int io_fail(struct rq_i *ri, const char *what)
{
    redisContext *rc = rc_of(ri);
    const char *why = rc && rc->errstr[0] ? rc->errstr : "connection lost";

    if (rc && rc->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable"))
        return conn_fail(ri, "redis: %s timed out after %d ms", what, ri->timeout_ms);
    return conn_fail(ri, "redis: %s failed: %s", what, why);
}

static int reply_refused(struct rq_i *ri, const char *what, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return refused(ri, "redis: %s refused: %.*s", what, (int)(r->len > 160 ? 160 : r->len),
                       r->str);
    return refused(ri, "redis: %s returned an unexpected reply (type %d)", what,
                   r ? r->type : -1);
}

static bool usable(struct rq_i *ri)
{
    if (ri->pub.err)
        return false;
    if (rc_of(ri) == NULL) {
        conn_fail(ri, "redis: not connected");
        return false;
    }
    return true;
}

static int set_timeout(struct rq_i *ri, int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

    if (ri->timeout_ms == ms)
        return NR_OK;
    if (redisSetTimeout(rc_of(ri), tv) != REDIS_OK)
        return io_fail(ri, "setting the socket timeout");
    ri->timeout_ms = ms;
    return NR_OK;
}

/* One command; NULL (err set) if the connection failed, else the reply
 * (maybe an error reply) for the caller to free. */
static redisReply *command(struct rq_i *ri, int timeout_ms, const char *what, struct cmd *c)
{
    redisReply *r;

    if (!usable(ri) || set_timeout(ri, timeout_ms) < 0)
        return NULL;
    r = redisCommandArgv(rc_of(ri), c->argc, c->argv, c->len);
    if (r == NULL)
        io_fail(ri, what);
    return r;
}

/* A simple command whose reply only needs to be non-error. */
static int simple(struct rq_i *ri, const char *what, struct cmd *c)
{
    redisReply *r = command(ri, COMMAND_TIMEOUT_MS, what, c);
    int rc = NR_OK;

    if (r == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_ERROR)
        rc = reply_refused(ri, what, r);
    freeReplyObject(r);
    return rc;
}

/*
 * Run b inside MULTI/EXEC, pipelined.  Returns 0 when EXEC ran every
 * command; NR_NOTFOUND when EXEC was aborted by a WATCH; NR_EINVAL when
 * the server refused a command (EXECABORT, or an error inside EXEC: the
 * other commands did run, as Redis does); NR_EIO when the connection
 * failed.  Every reply is read, so the connection stays in step.
 */
static int transaction(struct rq_i *ri, const char *what, struct batch *b)
{
    static const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    static const size_t multi_len[] = { 5 }, exec_len[] = { 4 };
    redisContext *rc;
    redisReply *r = NULL;
    int rcode = NR_OK;

    if (!usable(ri) || set_timeout(ri, COMMAND_TIMEOUT_MS) < 0)
        return NR_EIO;
    rc = rc_of(ri);
    if (redisAppendCommandArgv(rc, 1, multi, multi_len) != REDIS_OK)
        goto oom;
    for (size_t i = 0; i < b->n; i++)
        if (redisAppendCommandArgv(rc, b->c[i].argc, b->c[i].argv, b->c[i].len) != REDIS_OK)
            goto oom;
    if (redisAppendCommandArgv(rc, 1, exec, exec_len) != REDIS_OK)
        goto oom;

    for (size_t i = 0; i < b->n + 2; i++) {
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL)
            return io_fail(ri, what);
        if (i < b->n + 1) {         /* +OK, then +QUEUED per command */
            if (r->type == REDIS_REPLY_ERROR && rcode == NR_OK)
                rcode = reply_refused(ri, what, r);
            freeReplyObject(r);
            continue;
        }
        if (rcode == NR_OK) {       /* EXEC */
            if (r->type == REDIS_REPLY_NIL) {
                rcode = NR_NOTFOUND;
            } else if (r->type != REDIS_REPLY_ARRAY || r->elements != b->n) {
                rcode = reply_refused(ri, what, r);
            } else {
                for (size_t k = 0; k < r->elements; k++)
                    if (r->element[k]->type == REDIS_REPLY_ERROR) {
                        rcode = refused(ri, "redis: %.*s while %s refused: %.*s",
                                        (int)b->c[k].len[0], b->c[k].argv[0], what,
                                        (int)(r->element[k]->len > 160 ? 160
                                                                       : r->element[k]->len),
                                        r->element[k]->str);
                        break;
                    }
            }
        }
        freeReplyObject(r);
    }
    return rcode;

oom:
    /* part of the pipeline may be buffered: the connection is out of step */
    return conn_fail(ri, "redis: %s: out of memory building the command", what);
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
    ri->timeout_ms = 0;
    ri->pub.err = 0;
    ri->pub.errstr[0] = '\0';
    if (ri->pub.conn == NULL)
        ri->pub.conn = nr_queue_connect(ri->cfg, ri->pub.worker);
    else
        nr_queue_reset(ri->pub.conn);
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
    nr_queue_free(ri->pub.conn);
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
    struct cmd h = { 0 }, e = { 0 };
    struct nr_rq_job j = { 0 };
    redisReply *rh = NULL, *re = NULL;
    redisContext *rc;
    int rcode;

    if (!usable(ri) || set_timeout(ri, COMMAND_TIMEOUT_MS) < 0)
        return NR_EIO;
    rc = rc_of(ri);
    arg(&h, "HGETALL");
    argf(&h, "rq:job:%s", id);
    arg(&e, "EXISTS");
    argf(&e, "rq:job:%s:dependents", id);
    if (redisAppendCommandArgv(rc, h.argc, h.argv, h.len) != REDIS_OK ||
        redisAppendCommandArgv(rc, e.argc, e.argv, e.len) != REDIS_OK) {
        rcode = conn_fail(ri, "redis: HGETALL: out of memory building the command");
        goto out;
    }
    if (redisGetReply(rc, (void **)&rh) != REDIS_OK || rh == NULL ||
        redisGetReply(rc, (void **)&re) != REDIS_OK || re == NULL) {
        rcode = io_fail(ri, "HGETALL");
        goto out;
    }
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
    cmd_clear(&h);
    cmd_clear(&e);
    return rcode;
}

/* ------------------------------------------------------------------- take */

/* The list a job moves to when worker takes it from queue (rq.h, "Taking"). */
static void arg_intake(struct cmd *c, const char *queue, const char *worker)
{
    argf(c, "rq:queue:%s:intake:%s", queue, worker);
}

/* LREM the id from this worker's intake list of queue, outside any MULTI:
 * for ids that will never start.  A failure only leaves the id for the
 * next recovery, which skips it again. */
static void intake_drop(struct rq_i *ri, const char *queue, const char *id, size_t idlen)
{
    struct cmd c = { 0 };
    redisReply *r;

    arg(&c, "LREM");
    arg_intake(&c, queue, ri->pub.worker);
    arg(&c, "1");
    arg_n(&c, id, idlen);
    r = command(ri, COMMAND_TIMEOUT_MS, "LREM", &c);
    freeReplyObject(r);
    cmd_clear(&c);
}

int nr_rq_take_from(struct nr_rq *rq, size_t qi, int timeout_s, struct nr_rq_job *job)
{
    struct rq_i *ri;
    struct cmd c = { 0 };
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
    arg(&c, what);
    argf(&c, "rq:queue:%s", queue);
    arg_intake(&c, queue, rq->worker);
    arg(&c, "LEFT");
    arg(&c, "RIGHT");
    if (timeout_s)
        argf(&c, "%d", timeout_s);
    r = command(ri, timeout_s ? timeout_s * 1000 + BLOCKING_MARGIN_MS : COMMAND_TIMEOUT_MS,
                what, &c);
    cmd_clear(&c);
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
        struct cmd c = { 0 };
        redisReply *r;
        int rc = NR_OK;

        arg(&c, "LMOVE");
        arg_intake(&c, queue, worker);
        argf(&c, "rq:queue:%s", queue);
        arg(&c, "RIGHT");
        arg(&c, "LEFT");
        r = command(ri, COMMAND_TIMEOUT_MS, "LMOVE", &c);
        cmd_clear(&c);
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
        struct cmd c = { 0 };
        struct batch b = { 0 };
        redisReply *r;
        bool *kept;
        size_t n = 0;

        arg(&c, "WATCH");
        arg_intake(&c, queue, ri->pub.worker);
        rc = simple(ri, "WATCH", &c);
        cmd_clear(&c);
        if (rc < 0)
            return rc;
        arg(&c, "LRANGE");
        arg_intake(&c, queue, ri->pub.worker);
        arg(&c, "0");
        argf(&c, "%d", RECOVER_MAX - 1);
        r = command(ri, COMMAND_TIMEOUT_MS, "LRANGE", &c);
        cmd_clear(&c);
        if (r == NULL)
            return NR_EIO;
        if (r->type != REDIS_REPLY_ARRAY) {
            rc = reply_refused(ri, "LRANGE of the intake list", r);
            freeReplyObject(r);
            arg(&c, "UNWATCH");
            simple(ri, "UNWATCH", &c);
            cmd_clear(&c);
            return ri->pub.err ? NR_EIO : rc;
        }
        /* newest first, each to the front: the oldest ends in front */
        kept = nr_calloc(keep->n + 1, sizeof(*kept));
        for (size_t i = r->elements; i-- > 0;) {
            const redisReply *e = r->element[i];
            bool held = false;
            struct cmd *bc;

            if (e->type != REDIS_REPLY_STRING)
                continue;
            for (size_t k = 0; k < keep->n && !held; k++)
                if (!kept[k] && strlen(keep->v[k]) == e->len &&
                    memcmp(keep->v[k], e->str, e->len) == 0)
                    held = kept[k] = true;
            if (held)
                continue;
            bc = batch_add(&b);
            arg(bc, "LREM");
            arg_intake(bc, queue, ri->pub.worker);
            arg(bc, "1");
            arg_own(bc, nr_strndup(e->str, e->len), e->len);
            bc = batch_add(&b);
            arg(bc, "LPUSH");
            argf(bc, "rq:queue:%s", queue);
            arg_own(bc, nr_strndup(e->str, e->len), e->len);
            n++;
        }
        free(kept);
        freeReplyObject(r);
        if (n == 0) {
            arg(&c, "UNWATCH");
            rc = simple(ri, "UNWATCH", &c);
            cmd_clear(&c);
            return rc;
        }
        rc = transaction(ri, "putting back an intake list", &b);
        batch_free(&b);
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
    struct cmd c = { 0 };
    struct batch b = { 0 };
    struct cmd *bc;
    long long len = 0;
    int rc;

    arg(&c, "WATCH");
    arg_intake(&c, queue, worker);
    rc = simple(ri, "WATCH", &c);
    cmd_clear(&c);
    if (rc < 0)
        return rc;
    arg(&c, "LLEN");
    arg_intake(&c, queue, worker);
    rc = int_reply(ri, "LLEN", &c, &len);
    cmd_clear(&c);
    if (rc < 0 || len != 0) {
        if (!ri->pub.err) {
            arg(&c, "UNWATCH");
            simple(ri, "UNWATCH", &c);
            cmd_clear(&c);
        }
        return ri->pub.err ? NR_EIO : rc;
    }
    bc = batch_add(&b);
    arg(bc, "SREM");
    argf(bc, "rq:queue:%s:intakes", queue);
    arg(bc, worker);
    rc = transaction(ri, "forgetting a dead worker's intake list", &b);
    batch_free(&b);
    return rc == NR_NOTFOUND ? NR_OK : rc;
}

int nr_rq_recover(struct nr_rq *rq, const char *queue, bool own,
                  const struct nr_strlist *keep, size_t *moved)
{
    struct rq_i *ri;
    struct cmd c = { 0 };
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

    arg(&c, "SMEMBERS");
    argf(&c, "rq:queue:%s:intakes", queue);
    r = rc < 0 ? NULL : command(ri, COMMAND_TIMEOUT_MS, "SMEMBERS", &c);
    cmd_clear(&c);
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
        arg(&c, "EXISTS");
        argf(&c, "rq:worker:%s", workers[i]);
        rc = int_reply(ri, "EXISTS", &c, &alive);
        cmd_clear(&c);
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

static void add_zrem_wip(struct batch *b, const char *queue, const char *member)
{
    struct cmd *c = batch_add(b);
    arg(c, "ZREM");
    argf(c, "rq:wip:%s", queue);
    arg(c, member);
}

/* Out of this worker's intake list, for a job that never started (one
 * that did is not in it, but the same id may be again: rq-scheduler
 * enqueues a periodic job under one id every time). */
static void add_lrem_intake(struct batch *b, const struct nr_rq *rq, const struct nr_rq_job *job)
{
    struct cmd *c;

    if (!job->in_intake)
        return;
    c = batch_add(b);
    arg(c, "LREM");
    arg_intake(c, job->queue, rq->worker);
    arg(c, "1");
    arg(c, job->id);
}

/* Is id in this worker's intake list of queue?  1 yes, 0 no, or < 0. */
static int in_intake(struct rq_i *ri, const char *queue, const char *id)
{
    struct cmd c = { 0 };
    long long pos = -1;
    int rc;

    arg(&c, "LPOS");
    arg_intake(&c, queue, ri->pub.worker);
    arg(&c, id);
    rc = int_reply(ri, "LPOS", &c, &pos);
    cmd_clear(&c);
    return rc < 0 ? rc : pos >= 0;
}

/* Did an earlier nr_rq_start() of job commit (its reply was lost with the
 * connection)?  1 when the job is started by this worker and in the wip
 * registry, 0 when not, or < 0. */
static int started_here(struct rq_i *ri, const struct nr_rq_job *job)
{
    struct cmd c = { 0 };
    redisReply *r;
    long long score = -1;
    int rc;

    arg(&c, "HMGET");
    argf(&c, "rq:job:%s", job->id);
    arg(&c, "status");
    arg(&c, "worker_name");
    r = command(ri, COMMAND_TIMEOUT_MS, "HMGET", &c);
    cmd_clear(&c);
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
        arg(&c, "ZSCORE");
        argf(&c, "rq:wip:%s", job->queue);
        arg(&c, job->id);
        rc = int_reply(ri, "ZSCORE", &c, &score);
        cmd_clear(&c);
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
        struct batch b = { 0 };
        struct cmd w = { 0 }, *c;

        arg(&w, "WATCH");
        arg_intake(&w, job->queue, rq->worker);
        rc = simple(ri, "WATCH", &w);
        cmd_clear(&w);
        if (rc < 0)
            return rc;
        if ((rc = in_intake(ri, job->queue, job->id)) <= 0) {
            if (!ri->pub.err) {
                arg(&w, "UNWATCH");
                simple(ri, "UNWATCH", &w);
                cmd_clear(&w);
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
        c = batch_add(&b);
        arg(c, "HSET");
        argf(c, "rq:job:%s", job->id);
        arg(c, "status");
        arg(c, "started");
        arg(c, "started_at");
        arg(c, ts);
        arg(c, "last_heartbeat");
        arg(c, ts);
        arg(c, "worker_name");
        arg(c, rq->worker);
        c = batch_add(&b);
        arg(c, "PERSIST");
        argf(c, "rq:job:%s", job->id);
        c = batch_add(&b);
        arg(c, "ZADD");
        argf(c, "rq:wip:%s", job->queue);
        argf(c, "%lld", now + WIP_GRACE_S);
        arg(c, job->id);
        c = batch_add(&b);
        arg(c, "LREM");
        arg_intake(c, job->queue, rq->worker);
        arg(c, "1");
        arg(c, job->id);
        rc = transaction(ri, "marking the job started", &b);
        batch_free(&b);
    }
    if (rc == NR_OK)
        job->in_intake = false;
    return rc;
}

/* The worker hash's fields, all of them (HSET, so a key that expired while
 * we were away is whole again), its TTL and the worker sets. */
static void add_worker_fields(struct rq_i *ri, struct batch *b, const char *ts)
{
    struct cmd *c = batch_add(b);

    arg(c, "HSET");
    argf(c, "rq:worker:%s", ri->pub.worker);
    arg(c, "birth");
    arg(c, ri->birth);
    arg(c, "last_heartbeat");
    arg(c, ts);
    arg(c, "queues");
    arg(c, ri->queues_csv);
    arg(c, "pid");
    argf(c, "%ld", (long)getpid());
    arg(c, "hostname");
    arg(c, ri->hostname);
    arg(c, "state");
    arg(c, ri->current_job ? "busy" : "idle");
    if (ri->current_job) {
        arg(c, "current_job");
        arg(c, ri->current_job);
    } else {
        c = batch_add(b);
        arg(c, "HDEL");
        argf(c, "rq:worker:%s", ri->pub.worker);
        arg(c, "current_job");
    }
    c = batch_add(b);
    arg(c, "EXPIRE");
    argf(c, "rq:worker:%s", ri->pub.worker);
    argf(c, "%d", WORKER_TTL_S);
    c = batch_add(b);
    arg(c, "SADD");
    arg(c, "rq:workers");
    argf(c, "rq:worker:%s", ri->pub.worker);
    for (size_t i = 0; i < ri->pub.queues.n; i++) {
        c = batch_add(b);
        arg(c, "SADD");
        argf(c, "rq:workers:%s", ri->pub.queues.v[i]);
        argf(c, "rq:worker:%s", ri->pub.worker);
        /* whose intake lists to look at when their worker is gone */
        c = batch_add(b);
        arg(c, "SADD");
        argf(c, "rq:queue:%s:intakes", ri->pub.queues.v[i]);
        arg(c, ri->pub.worker);
    }
}

int nr_rq_heartbeat(struct nr_rq *rq, const struct nr_rq_job *const *jobs, size_t n)
{
    struct rq_i *ri;
    struct batch b = { 0 };
    char ts[NR_ISO_TS_LEN];
    long long now;
    int rc;

    if (rq == NULL || (jobs == NULL && n > 0))
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, &now);
    for (size_t i = 0; i < n; i++) {
        struct cmd *c = batch_add(&b);
        arg(c, "HSET");
        argf(c, "rq:job:%s", jobs[i]->id);
        arg(c, "last_heartbeat");
        arg(c, ts);
        c = batch_add(&b);
        arg(c, "ZADD");
        argf(c, "rq:wip:%s", jobs[i]->queue);
        arg(c, "XX");
        argf(c, "%lld", now + WIP_GRACE_S);
        arg(c, jobs[i]->id);
    }
    add_worker_fields(ri, &b, ts);
    rc = transaction(ri, "heart-beating", &b);
    batch_free(&b);
    return rc;
}

int nr_rq_finish(struct nr_rq *rq, const struct nr_rq_job *job)
{
    struct rq_i *ri;
    struct batch b = { 0 };
    struct cmd *c;
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
        c = batch_add(&b);
        arg(c, "DEL");
        argf(c, "rq:job:%s", job->id);
    } else {
        c = batch_add(&b);
        arg(c, "HSET");
        argf(c, "rq:job:%s", job->id);
        arg(c, "status");
        arg(c, "finished");
        arg(c, "ended_at");
        arg(c, ts);
        /* run_job returns None: no return_value field */
        c = batch_add(&b);
        arg(c, "XADD");
        argf(c, "rq:results:%s", job->id);
        arg(c, "MAXLEN");
        arg(c, "~");
        arg(c, RESULTS_MAXLEN);
        arg(c, "*");
        arg(c, "type");
        arg(c, "1");
        c = batch_add(&b);
        if (ttl < 0) {
            arg(c, "PERSIST");
            argf(c, "rq:results:%s", job->id);
        } else {
            arg(c, "EXPIRE");
            argf(c, "rq:results:%s", job->id);
            argf(c, "%ld", ttl);
        }
        c = batch_add(&b);
        arg(c, "ZADD");
        argf(c, "rq:finished:%s", job->queue);
        if (ttl < 0)
            arg(c, "+inf");
        else
            argf(c, "%lld", now + ttl);
        arg(c, job->id);
        if (ttl > 0) {
            c = batch_add(&b);
            arg(c, "EXPIRE");
            argf(c, "rq:job:%s", job->id);
            argf(c, "%ld", ttl);
        }
    }
    add_zrem_wip(&b, job->queue, job->id);
    rc = transaction(ri, "recording the job finished", &b);
    batch_free(&b);
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
static void add_failure(struct batch *b, const struct nr_rq_job *job, const char *member,
                        const char *reason)
{
    char ts[NR_ISO_TS_LEN];
    long long now;
    long ttl = job->failure_ttl;
    struct cmd *c;
    size_t elen;
    char *exc;

    now_ts(ts, &now);
    c = batch_add(b);
    arg(c, "HSET");
    argf(c, "rq:job:%s", job->id);
    arg(c, "status");
    arg(c, "failed");
    arg(c, "ended_at");
    argf(c, "%s", ts);   /* ts dies with this frame: copy */

    exc = exc_string_of(reason && reason[0] ? reason : "job failed", &elen);
    c = batch_add(b);
    arg(c, "XADD");
    argf(c, "rq:results:%s", job->id);
    arg(c, "MAXLEN");
    arg(c, "~");
    arg(c, RESULTS_MAXLEN);
    arg(c, "*");
    arg(c, "type");
    arg(c, "2");
    arg(c, "exc_string");
    arg_own(c, exc, elen);

    c = batch_add(b);
    if (ttl < 0) {
        arg(c, "PERSIST");
        argf(c, "rq:results:%s", job->id);
    } else {
        arg(c, "EXPIRE");
        argf(c, "rq:results:%s", job->id);
        argf(c, "%ld", ttl);
    }
    c = batch_add(b);
    arg(c, "ZADD");
    argf(c, "rq:failed:%s", job->queue);
    if (ttl < 0)
        arg(c, "+inf");
    else
        argf(c, "%lld", now + ttl);
    arg(c, job->id);
    c = batch_add(b);
    if (ttl < 0) {
        arg(c, "PERSIST");
        argf(c, "rq:job:%s", job->id);
    } else {
        arg(c, "EXPIRE");
        argf(c, "rq:job:%s", job->id);
        argf(c, "%ld", ttl);
    }
    add_zrem_wip(b, job->queue, member);
}

/* The requeue set: retries_left - 1, back on its queue (RQ's Job.retry
 * without intervals). */
static void add_requeue(struct batch *b, const struct nr_rq_job *job, const char *member)
{
    char ts[NR_ISO_TS_LEN];
    struct cmd *c;

    now_ts(ts, NULL);
    c = batch_add(b);
    arg(c, "HSET");
    argf(c, "rq:job:%s", job->id);
    arg(c, "status");
    arg(c, "queued");
    arg(c, "retries_left");
    argf(c, "%ld", job->retries_left - 1);
    arg(c, "enqueued_at");
    argf(c, "%s", ts);   /* ts dies with this frame: copy */
    c = batch_add(b);
    arg(c, "SADD");
    arg(c, "rq:queues");
    argf(c, "rq:queue:%s", job->queue);
    c = batch_add(b);
    arg(c, "RPUSH");
    argf(c, "rq:queue:%s", job->queue);
    arg(c, job->id);
    add_zrem_wip(b, job->queue, member);
}

int nr_rq_fail(struct nr_rq *rq, const struct nr_rq_job *job, const char *reason,
               bool may_retry, bool *requeued)
{
    struct batch b = { 0 };
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
    batch_free(&b);
    if (rc == NR_OK && requeued != NULL)
        *requeued = retry;
    return rc;
}

int nr_rq_release(struct nr_rq *rq, const struct nr_rq_job *job)
{
    struct batch b = { 0 };
    struct cmd *c;
    int rc;

    if (rq == NULL || job == NULL || job->id == NULL || job->queue == NULL)
        return NR_EINVAL;
    c = batch_add(&b);
    arg(c, "HSET");
    argf(c, "rq:job:%s", job->id);
    arg(c, "status");
    arg(c, "queued");
    c = batch_add(&b);
    arg(c, "LPUSH");
    argf(c, "rq:queue:%s", job->queue);
    arg(c, job->id);
    add_zrem_wip(&b, job->queue, job->id);
    add_lrem_intake(&b, rq, job);
    rc = transaction(ri_of(rq), "handing the job back", &b);
    batch_free(&b);
    return rc;
}

/* ----------------------------------------------------------------- worker */

int nr_rq_worker_register(struct nr_rq *rq)
{
    struct rq_i *ri;
    struct batch b = { 0 };
    struct cmd *c;
    char ts[NR_ISO_TS_LEN];
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, NULL);
    memcpy(ri->birth, ts, sizeof(ts));
    c = batch_add(&b);
    arg(c, "DEL");      /* a previous life under the same name */
    argf(c, "rq:worker:%s", rq->worker);
    add_worker_fields(ri, &b, ts);
    rc = transaction(ri, "registering the worker", &b);
    batch_free(&b);
    return rc;
}

int nr_rq_worker_state(struct nr_rq *rq, const char *job_id)
{
    struct rq_i *ri;
    struct cmd c = { 0 };
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    free(ri->current_job);
    ri->current_job = job_id ? nr_strdup(job_id) : NULL;

    if (job_id != NULL) {
        arg(&c, "HSET");
        argf(&c, "rq:worker:%s", rq->worker);
        arg(&c, "state");
        arg(&c, "busy");
        arg(&c, "current_job");
        arg(&c, job_id);
        rc = simple(ri, "setting the worker busy", &c);
    } else {
        struct batch b = { 0 };
        struct cmd *bc = batch_add(&b);
        arg(bc, "HSET");
        argf(bc, "rq:worker:%s", rq->worker);
        arg(bc, "state");
        arg(bc, "idle");
        bc = batch_add(&b);
        arg(bc, "HDEL");
        argf(bc, "rq:worker:%s", rq->worker);
        arg(bc, "current_job");
        rc = transaction(ri, "setting the worker idle", &b);
        batch_free(&b);
    }
    cmd_clear(&c);
    return rc;
}

int nr_rq_worker_death(struct nr_rq *rq)
{
    struct rq_i *ri;
    struct batch b = { 0 };
    struct cmd *c;
    char ts[NR_ISO_TS_LEN];
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    now_ts(ts, NULL);
    c = batch_add(&b);
    arg(c, "SREM");
    arg(c, "rq:workers");
    argf(c, "rq:worker:%s", rq->worker);
    for (size_t i = 0; i < rq->queues.n; i++) {
        c = batch_add(&b);
        arg(c, "SREM");
        argf(c, "rq:workers:%s", rq->queues.v[i]);
        argf(c, "rq:worker:%s", rq->worker);
    }
    c = batch_add(&b);
    arg(c, "HSET");
    argf(c, "rq:worker:%s", rq->worker);
    arg(c, "death");
    arg(c, ts);
    c = batch_add(&b);
    arg(c, "EXPIRE");
    argf(c, "rq:worker:%s", rq->worker);
    argf(c, "%d", DEATH_TTL_S);
    rc = transaction(ri, "registering the worker's death", &b);
    batch_free(&b);
    return rc;
}

int nr_rq_suspended(struct nr_rq *rq)
{
    struct cmd c = { 0 };
    redisReply *r;
    int rc;

    if (rq == NULL)
        return NR_EINVAL;
    arg(&c, "EXISTS");
    arg(&c, "rq:suspended");
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
static int int_reply(struct rq_i *ri, const char *what, struct cmd *c, long long *out)
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
    struct cmd c = { 0 };
    long long n = 0;

    if (colon == NULL || colon == member)
        return nr_strdup(member);
    arg(&c, "EXISTS");
    argf(&c, "rq:job:%s", member);
    if (int_reply(ri, "EXISTS", &c, &n) < 0 || n > 0) {
        cmd_clear(&c);
        return nr_strdup(member);
    }
    cmd_clear(&c);
    return nr_strndup(member, (size_t)(colon - member));
}

/* Handle one expired member under WATCH.  0 when it was handled or needs
 * nothing; NR_NOTFOUND when a race aborted it; NR_EINVAL / NR_EIO. */
static int cleanup_one(struct rq_i *ri, const char *queue, const char *member,
                       size_t *failed, size_t *requeued, struct nr_rq_died *died)
{
    struct nr_rq_job job = { 0 };
    struct cmd c = { 0 };
    struct batch b = { 0 };
    char *id = member_job_id(ri, member);
    long long score = 0, now;
    int rc;

    if (ri->pub.err) {
        free(id);
        return NR_EIO;
    }
    now = (long long)time(NULL);
    arg(&c, "WATCH");
    argf(&c, "rq:job:%s", id);
    argf(&c, "rq:wip:%s", queue);
    rc = simple(ri, "WATCH", &c);
    cmd_clear(&c);
    if (rc < 0)
        goto out;

    arg(&c, "ZSCORE");
    argf(&c, "rq:wip:%s", queue);
    arg(&c, member);
    rc = int_reply(ri, "ZSCORE", &c, &score);
    cmd_clear(&c);
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
    batch_free(&b);
    goto out;       /* EXEC (or its abort) ended the WATCH */

unwatch:
    if (!ri->pub.err) {
        arg(&c, "UNWATCH");
        if (simple(ri, "UNWATCH", &c) < 0 && rc == NR_OK)
            rc = NR_EIO;
        cmd_clear(&c);
    }
out:
    free(id);
    return rc;
}

int nr_rq_cleanup(struct nr_rq *rq, const char *queue, size_t *failed, size_t *requeued,
                  struct nr_rq_died *died)
{
    struct rq_i *ri;
    struct cmd c = { 0 };
    redisReply *r;
    char **members = NULL;
    size_t n = 0;
    int rc = NR_OK;

    if (rq == NULL || queue == NULL)
        return NR_EINVAL;
    ri = ri_of(rq);
    arg(&c, "ZRANGEBYSCORE");
    argf(&c, "rq:wip:%s", queue);
    arg(&c, "0");
    argf(&c, "%lld", (long long)time(NULL));
    arg(&c, "LIMIT");
    arg(&c, "0");
    argf(&c, "%d", CLEANUP_BATCH);
    r = command(ri, COMMAND_TIMEOUT_MS, "ZRANGEBYSCORE", &c);
    cmd_clear(&c);
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
