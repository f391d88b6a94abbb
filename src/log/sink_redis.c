/*
 * sink_redis.c - the "redis" thread: live records (session events) to
 * Redis pub/sub for the UI (docs/netraven.md §4.2, §5).
 *
 * Each record is published as one JSON object (timestamp, log_type, level,
 * job_id, device_id, source, message, meta) to `session-logs:{job_id}`
 * (when it has a job) and to logging.redis.channel_prefix (the API's live
 * stream).  The thread owns one hiredis connection to the Redis NetRaven's
 * API subscribes on: logging.redis.host / port / db / password when host is
 * set (NetRaven's own keys, which may name another Redis than the queues'),
 * else scheduler.redis_url, read and connected to by the redis module
 * (redis.h: redis-py's reading, AUTH and SELECT as the queue does); it
 * pipelines the PUBLISH commands of a batch, NR_REDIS_PIPELINE queued records
 * at a time.  A session's data is queued raw (one record for what one read
 * or write carried) and cut into its records here.  Before each pipeline
 * it asks Redis who listens (listeners()): a record goes only to the
 * channels someone subscribes to, and is not rendered at all when nobody
 * does, as Redis would drop it.  The queue holds at most
 * logging.redis.queue_bytes of records; an emitter past it waits a moment
 * for room (NR_LOG_ROOM_WAIT_S), then its record is dropped and counted.
 *
 * These records are droppable: while Redis is away, records are dropped
 * and counted (redis_dropped) instead of waiting, and the thread tries to
 * connect again only after a backoff (backoff.h: 0.5 s doubling to 10 s),
 * so that a dead server costs one connect timeout per backoff period, never
 * a wait for an emitter.  SYS_REDIS_UNAVAILABLE is said once per outage.
 */
#include "log_i.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "netraven/backoff.h"
#include "netraven/redis.h"

#define NR_REDIS_BACKOFF_MIN_S  0.5
#define NR_REDIS_BACKOFF_MAX_S  10.0
#define NR_REDIS_PIPELINE       256
#define NR_REDIS_PIPELINE_BYTES (256 * 1024)    /* ... or this much to send */
#define NR_REDIS_JOBS_ASKED     32      /* job channels asked about per pipeline */
#define NR_REDIS_COMMAND_MS     2000

struct redis_state {
    redisContext       *c;
    struct nr_redis_url t;
    char               *masked;     /* URL without password, for messages */
    bool                url_ok;
    struct nr_backoff   bo;         /* the next connect; said: the outage */
    bool                said_connected;
    struct nr_sbuf      json;
    size_t              appended;   /* commands in the pipeline */
    size_t              bytes;      /* ... and their messages' bytes */
    /* Who listens, asked before each pipeline (listeners()): */
    bool                patterns;   /* some pattern subscription: send all */
    bool                stream;     /* channel_prefix has subscribers */
    long long           jobs[NR_REDIS_JOBS_ASKED];  /* job channels asked */
    bool                heard[NR_REDIS_JOBS_ASKED]; /* ... with subscribers */
    size_t              njobs;
    struct nr_ts_cache  tc;
    char                error[256];
};

/* --------------------------------------------------------------- target */

/* The target from logging.redis.host / port / db / password, and how
 * messages name it (a URL with the password masked). */
static void target_from_keys(struct redis_state *st)
{
    const char *h = nr_log_set.redis_host;
    bool v6 = strchr(h, ':') != NULL;

    /* NetRaven's own keys name no user and no socket: the same struct as
     * a URL would give, for the same connect */
    memset(&st->t, 0, sizeof(st->t));
    st->t.host = nr_strdup(h);
    st->t.port = nr_log_set.redis_port;
    st->t.db = nr_log_set.redis_db;
    if (nr_log_set.redis_password)
        st->t.password = nr_strdup(nr_log_set.redis_password);
    st->masked = nr_asprintf("redis://%s%s%s%s:%d/%d", st->t.password ? ":****@" : "",
                             v6 ? "[" : "", h, v6 ? "]" : "", st->t.port, st->t.db);
    st->url_ok = true;
}

/* ---------------------------------------------------------- connection */

static void set_error(struct redis_state *st, const char *what, const char *why)
{
    snprintf(st->error, sizeof(st->error), "%s: %s", what, why && *why ? why : "unknown error");
}

static void report_trouble(struct redis_state *st)
{
    char delay[32];

    if (!nr_backoff_say(&st->bo))
        return;
    st->said_connected = false;
    snprintf(delay, sizeof(delay), "%g", nr_backoff_delay(&st->bo));
    nr_log_emit_mask(NR_EV_SYS_REDIS_UNAVAILABLE, 0, 0,
                     (const struct nr_kv[]){ NR_S("error", st->error),
                                             NR_S("delay_s", delay),
                                             NR_S("url", st->masked) },
                     3, ~(unsigned)NR_SINK_REDIS, 0);
}

static void drop_conn(struct redis_state *st)
{
    if (st->c)
        redisFree(st->c);
    st->c = NULL;
    nr_backoff_fail(&st->bo);
}

static bool redis_connect(struct redis_state *st)
{
    if (nr_redis_connect(&st->t, NR_REDIS_COMMAND_MS, &st->c, st->error,
                         sizeof(st->error)) < 0) {
        st->c = NULL;
        report_trouble(st);
        drop_conn(st);
        return false;
    }
    nr_backoff_ok(&st->bo);
    if (!st->said_connected) {
        st->said_connected = true;
        nr_log_emit_mask(NR_EV_SYS_REDIS_CONNECTED, 0, 0,
                         (const struct nr_kv[]){ NR_S("url", st->masked) },
                         1, ~(unsigned)NR_SINK_REDIS, 0);
    }
    return true;
}

/* ------------------------------------------------------------ publish */

/* PUBLISH channel message, appended to the pipeline from its pieces
 * (no format string to parse per record). */
static void append_publish(redisContext *c, const char *channel, const struct nr_sbuf *msg)
{
    const char *argv[3] = { "PUBLISH", channel, msg->p };
    size_t argvlen[3] = { 7, strlen(channel), msg->len };

    redisAppendCommandArgv(c, 3, argv, argvlen);
}

/* Does the channel of job_id have a subscriber (or may a pattern match
 * it)?  A job not asked about counts as heard. */
static bool job_heard(const struct redis_state *st, long long job_id)
{
    if (job_id == 0)
        return false;
    if (st->patterns)
        return true;
    for (size_t i = 0; i < st->njobs; i++)
        if (st->jobs[i] == job_id)
            return st->heard[i];
    return true;
}

static bool reply_failed(struct redis_state *st, const char *what, redisReply *rep)
{
    if (rep == NULL) {
        set_error(st, what, st->c->errstr);
        report_trouble(st);
        drop_conn(st);
        return true;
    }
    return false;
}

/*
 * Ask Redis who listens to the channels of recs[0..n): PUBSUB NUMPAT, and
 * PUBSUB NUMSUB of the stream and of the jobs' channels.  A record nobody
 * listens to is not sent at all (Redis would drop it): rendering and
 * sending the session stream costs as much as the rest of the worker
 * together, and most of the time no one has the live view open.  Asked
 * at each pipeline, after the records were queued, so a subscriber that
 * was there when a record was emitted gets it.  Returns false when the
 * connection failed (then dropped).
 */
static bool listeners(struct redis_state *st, struct nr_log_rec **recs, size_t n)
{
    const char *argv[3 + NR_REDIS_JOBS_ASKED];
    size_t lens[3 + NR_REDIS_JOBS_ASKED];
    char names[NR_REDIS_JOBS_ASKED][32];
    redisReply *sub = NULL, *pat = NULL;
    size_t argc = 3;
    bool ok = false;

    st->njobs = 0;
    for (size_t i = 0; i < n && st->njobs < NR_REDIS_JOBS_ASKED; i++) {
        long long j = recs[i]->job_id;
        size_t k = 0;

        while (k < st->njobs && st->jobs[k] != j)
            k++;
        if (j == 0 || k < st->njobs)
            continue;
        st->jobs[st->njobs] = j;
        lens[argc] = (size_t)snprintf(names[st->njobs], sizeof(names[0]), "session-logs:%lld", j);
        argv[argc++] = names[st->njobs++];
    }
    argv[0] = "PUBSUB";
    argv[1] = "NUMSUB";
    argv[2] = nr_log_set.channel_prefix;
    lens[0] = 6;
    lens[1] = 6;
    lens[2] = strlen(argv[2]);
    redisAppendCommandArgv(st->c, (int)argc, argv, lens);
    redisAppendCommand(st->c, "PUBSUB NUMPAT");
    if (redisGetReply(st->c, (void **)&sub) != REDIS_OK)
        sub = NULL;
    if (reply_failed(st, "PUBSUB NUMSUB", sub))
        return false;
    if (redisGetReply(st->c, (void **)&pat) != REDIS_OK)
        pat = NULL;
    if (reply_failed(st, "PUBSUB NUMPAT", pat))
        goto out;
    /* [channel, count, ...] in the order asked; anything else: send all */
    if (sub->type == REDIS_REPLY_ARRAY && sub->elements == 2 * (argc - 2) &&
        pat->type == REDIS_REPLY_INTEGER) {
        st->patterns = pat->integer > 0;
        st->stream = sub->element[1]->type != REDIS_REPLY_INTEGER || sub->element[1]->integer > 0;
        for (size_t k = 0; k < st->njobs; k++) {
            const redisReply *c = sub->element[2 * (k + 1) + 1];
            st->heard[k] = c->type != REDIS_REPLY_INTEGER || c->integer > 0;
        }
    } else {
        st->patterns = st->stream = true;
    }
    ok = true;
out:
    freeReplyObject(sub);
    if (pat)
        freeReplyObject(pat);
    return ok;
}

/* Append the PUBLISH commands of one record's JSON: its job's channel,
 * then the API's stream, where someone listens. */
struct pending {
    struct redis_state *st;
    long long           job_id;
};

static void append_json(const struct nr_sbuf *json, void *arg)
{
    const struct pending *pd = arg;
    struct redis_state *st = pd->st;
    char channel[48];

    if (job_heard(st, pd->job_id)) {
        snprintf(channel, sizeof(channel), "session-logs:%lld", pd->job_id);
        append_publish(st->c, channel, json);
        st->appended++;
        st->bytes += json->len;
    }
    if (st->patterns || st->stream) {
        append_publish(st->c, nr_log_set.channel_prefix, json);
        st->appended++;
        st->bytes += json->len;
    }
}

static void append_record(struct redis_state *st, const struct nr_log_rec *r)
{
    struct pending pd = { st, r->job_id };

    if (!st->patterns && !st->stream && !job_heard(st, r->job_id))
        return;
    if (r->raw) {
        nr_log_session_json_each(r, &st->json, &st->tc, append_json, &pd);
        return;
    }
    nr_sbuf_reset(&st->json);
    nr_log_rec_json(&st->json, r, &st->tc);
    append_json(&st->json, &pd);
}

/* Publish the first *taken of recs[0..n) (n <= NR_REDIS_PIPELINE; as
 * many as fit in NR_REDIS_PIPELINE_BYTES, at least one) in one pipeline.
 * Returns how many were published (a raw session record counts once all
 * the records it stands for were answered); on a connection error the
 * connection is dropped. */
static size_t publish(struct redis_state *st, struct nr_log_rec **recs, size_t n,
                      size_t *taken)
{
    size_t upto[NR_REDIS_PIPELINE];     /* commands appended through recs[i] */
    size_t ok = 0, done = 0, m = 0;

    *taken = 0;
    if (!listeners(st, recs, n))
        return 0;
    st->appended = 0;
    st->bytes = 0;
    while (m < n && st->bytes < NR_REDIS_PIPELINE_BYTES) {
        append_record(st, recs[m]);
        upto[m++] = st->appended;
    }
    *taken = m;
    for (; ok < st->appended; ok++) {
        redisReply *rep = NULL;
        if (redisGetReply(st->c, (void **)&rep) != REDIS_OK) {
            set_error(st, "PUBLISH", st->c->errstr);
            report_trouble(st);
            drop_conn(st);
            break;
        }
        freeReplyObject(rep);
    }
    while (done < m && upto[done] <= ok)
        done++;
    return done;
}

static uint64_t parts_of(struct nr_log_rec **recs, size_t n)
{
    uint64_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += recs[i]->parts;
    return k;
}

static void give_up(struct nr_log_rec **recs, size_t n)
{
    atomic_fetch_add(&nr_log_redis_lost, parts_of(recs, n));
    for (size_t i = 0; i < n; i++)
        nr_log_count_drop(recs[i]->job_id, recs[i]->parts);
}

/* recs[0..n) are published or given up: free them and make their room. */
static void finish(struct nr_log_rec **recs, size_t n)
{
    size_t bytes = 0;

    for (size_t i = 0; i < n; i++) {
        bytes += nr_log_rec_size(recs[i]);
        nr_log_rec_unref(recs[i]);
    }
    nr_logq_release(&nr_log_q_redis, bytes);
    nr_logq_done(&nr_log_q_redis, n);
}

/* Publish the batch a pipeline at a time, each finished as soon as it is
 * answered, so that emitters waiting for room go on. */
static void handle_batch(struct redis_state *st, struct nr_log_rec **recs, size_t n)
{
    size_t done = 0;

    if (st->c == NULL && st->url_ok && !nr_logq_stopping(&nr_log_q_redis) &&
        nr_backoff_due(&st->bo))
        redis_connect(st);
    while (done < n && st->c) {
        size_t k = n - done < NR_REDIS_PIPELINE ? n - done : NR_REDIS_PIPELINE;
        size_t p = publish(st, recs + done, k, &k);

        atomic_fetch_add(&nr_log_redis_published, parts_of(recs + done, p));
        if (p < k)
            give_up(recs + done + p, k - p);
        finish(recs + done, k);
        done += k;
    }
    if (done < n) {
        give_up(recs + done, n - done);
        finish(recs + done, n - done);
    }
}

void *nr_log_redis_main(void *arg)
{
    struct redis_state st;
    struct nr_log_rec **batch;

    (void)arg;
    nr_log_block_signals();
    memset(&st, 0, sizeof(st));
    nr_backoff_init(&st.bo, NR_REDIS_BACKOFF_MIN_S, NR_REDIS_BACKOFF_MAX_S);
    if (nr_log_set.redis_host) {
        target_from_keys(&st);
    } else {
        st.masked = nr_config_mask_url(nr_log_set.redis_url);
        st.url_ok = nr_redis_url_parse(nr_log_set.redis_url, "scheduler.redis_url", &st.t,
                                       st.error, sizeof(st.error)) == 0;
        if (!st.url_ok)
            report_trouble(&st);
    }

    for (;;) {
        size_t n = nr_logq_take(&nr_log_q_redis, &batch, -1);

        if (n == 0)
            break;
        handle_batch(&st, batch, n);
    }

    if (st.c)
        redisFree(st.c);
    nr_redis_url_clear(&st.t);
    free(st.masked);
    nr_sbuf_free(&st.json);
    return NULL;
}
