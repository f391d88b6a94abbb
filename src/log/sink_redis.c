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
 * pipelines the PUBLISH commands of a batch, NR_REDIS_PIPELINE records at a
 * time.
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
#define NR_REDIS_COMMAND_MS     2000

struct redis_state {
    redisContext       *c;
    struct nr_redis_url t;
    char               *masked;     /* URL without password, for messages */
    bool                url_ok;
    struct nr_backoff   bo;         /* the next connect; said: the outage */
    bool                said_connected;
    struct nr_sbuf      json;
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

/* Publish recs[0..n) in one pipeline.  Returns how many were published;
 * on a connection error the connection is dropped. */
static size_t publish(struct redis_state *st, struct nr_log_rec **recs, size_t n)
{
    size_t sent = 0, ok = 0;
    char channel[48];

    for (size_t i = 0; i < n; i++) {
        nr_sbuf_reset(&st->json);
        nr_log_rec_json(&st->json, recs[i], &st->tc);
        if (recs[i]->job_id) {
            snprintf(channel, sizeof(channel), "session-logs:%lld", recs[i]->job_id);
            append_publish(st->c, channel, &st->json);
            sent++;
        }
        append_publish(st->c, nr_log_set.channel_prefix, &st->json);
        sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(st->c, (void **)&rep) != REDIS_OK) {
            size_t recs_ok = 0, need = 0;
            set_error(st, "PUBLISH", st->c->errstr);
            report_trouble(st);
            drop_conn(st);
            /* a record counts as published once all its commands were answered */
            for (; recs_ok < n; recs_ok++) {
                need += recs[recs_ok]->job_id ? 2 : 1;
                if (need > ok)
                    break;
            }
            return recs_ok;
        }
        freeReplyObject(rep);
        ok++;
    }
    return n;
}

static void handle_batch(struct redis_state *st, struct nr_log_rec **recs, size_t n)
{
    size_t done = 0;

    if (st->c == NULL && st->url_ok && !nr_logq_stopping(&nr_log_q_redis) &&
        nr_backoff_due(&st->bo))
        redis_connect(st);
    while (done < n && st->c) {
        size_t k = n - done < NR_REDIS_PIPELINE ? n - done : NR_REDIS_PIPELINE;
        size_t p = publish(st, recs + done, k);
        atomic_fetch_add(&nr_log_redis_published, p);
        if (p < k) {
            atomic_fetch_add(&nr_log_redis_lost, k - p);
            for (size_t i = done + p; i < done + k; i++)
                nr_log_count_drop(recs[i]->job_id, 1);
            done += k;
            break;
        }
        done += k;
    }
    if (done < n) {
        atomic_fetch_add(&nr_log_redis_lost, n - done);
        for (size_t i = done; i < n; i++)
            nr_log_count_drop(recs[i]->job_id, 1);
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
        for (size_t i = 0; i < n; i++)
            nr_log_rec_unref(batch[i]);
        nr_logq_done(&nr_log_q_redis, n);
    }

    if (st.c)
        redisFree(st.c);
    nr_redis_url_clear(&st.t);
    free(st.masked);
    nr_sbuf_free(&st.json);
    return NULL;
}
