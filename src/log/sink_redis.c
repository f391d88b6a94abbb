/*
 * sink_redis.c - the "redis" thread: live records (session events) to
 * Redis pub/sub for the UI (CONTRACT 3).
 *
 * Each record is published as one JSON object (timestamp, log_type, level,
 * job_id, device_id, source, message, meta) to `session-logs:{job_id}`
 * (when it has a job) and to logging.redis.channel_prefix (the API's live
 * stream).  The thread owns one hiredis connection to the Redis NetRaven's
 * API subscribes on: logging.redis.host / port / db / password when host is
 * set (NetRaven's own keys, which may name another Redis than the queues'),
 * else scheduler.redis_url (redis://[user:password@]host[:port][/db]); it
 * pipelines the PUBLISH commands of a batch, NR_REDIS_PIPELINE records at a
 * time.
 *
 * These records are droppable: while Redis is away, records are dropped
 * and counted (redis_dropped) instead of waiting, and the thread tries to
 * connect again only after a backoff (0.5 s doubling to 10 s), so that a
 * dead server costs one connect timeout per backoff period, never a wait
 * for an emitter.  SYS_REDIS_UNAVAILABLE is said once per outage.
 */
#include "log_i.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#define NR_REDIS_BACKOFF_MIN_S  0.5
#define NR_REDIS_BACKOFF_MAX_S  10.0
#define NR_REDIS_PIPELINE       256
#define NR_REDIS_DEFAULT_PORT   6379

struct redis_target {
    char *host;
    int   port;
    char *user;         /* NULL: AUTH with the password alone */
    char *password;     /* NULL: no AUTH */
    int   db;
};

struct redis_state {
    redisContext       *c;
    struct redis_target t;
    char               *masked;     /* URL without password, for messages */
    bool                url_ok;
    double              backoff;
    uint64_t            next_try_ns;
    bool                outage;
    bool                said_connected;
    struct nr_sbuf      json;
    struct nr_ts_cache  tc;
    char                error[256];
};

/* ------------------------------------------------------------------ URL */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

static char *pct_decode(const char *s, size_t n)
{
    char *d = nr_malloc(n + 1), *o = d;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n &&
            hexval((unsigned char)s[i + 1]) >= 0 && hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return d;
}

static void target_clear(struct redis_target *t)
{
    free(t->host);
    free(t->user);
    free(t->password);
    memset(t, 0, sizeof(*t));
}

/* Parse redis://[[user]:password@]host[:port][/db].  Returns 0 or NR_EINVAL
 * (then t is left cleared). */
static int parse_url(const char *url, struct redis_target *t)
{
    const char *p, *end, *at, *host_end, *colon;

    memset(t, 0, sizeof(*t));
    t->port = NR_REDIS_DEFAULT_PORT;
    if (url == NULL || strncmp(url, "redis://", 8) != 0)
        return NR_EINVAL;
    p = url + 8;
    end = p + strcspn(p, "/?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *rat;
        /* the last '@' of the authority separates the user info */
        while ((rat = memchr(at + 1, '@', (size_t)(end - at - 1))) != NULL)
            at = rat;
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (colon > p)
                t->user = pct_decode(p, (size_t)(colon - p));
            t->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        } else if (at > p) {
            /* redis://secret@host: a password alone, as older clients wrote */
            t->password = pct_decode(p, (size_t)(at - p));
        }
        p = at + 1;
    }
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL)
            goto bad;
        t->host = nr_strndup(p + 1, (size_t)(host_end - p - 1));
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(end - p));
        if (host_end == NULL)
            host_end = end;
        t->host = nr_strndup(p, (size_t)(host_end - p));
        p = host_end;
    }
    if (t->host[0] == '\0') {
        free(t->host);
        t->host = nr_strdup("127.0.0.1");
    }
    if (p < end && *p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535)
            goto bad;
        t->port = (int)port;
    } else if (p != end) {
        goto bad;
    }
    if (*end == '/' && end[1] && end[1] != '?' && end[1] != '#') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if ((*e && *e != '?' && *e != '#') || db < 0 || db > 65535)
            goto bad;
        t->db = (int)db;
    }
    return NR_OK;
bad:
    target_clear(t);
    return NR_EINVAL;
}

/* The target from logging.redis.host / port / db / password, and how
 * messages name it (a URL with the password masked). */
static void target_from_keys(struct redis_state *st)
{
    const char *h = nr_log_set.redis_host;
    bool v6 = strchr(h, ':') != NULL;

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

    if (st->outage)
        return;
    st->outage = true;
    st->said_connected = false;
    snprintf(delay, sizeof(delay), "%g", st->backoff);
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
    st->next_try_ns = nr_mono_ns() + (uint64_t)(st->backoff * 1e9);
    st->backoff = st->backoff * 2 > NR_REDIS_BACKOFF_MAX_S ? NR_REDIS_BACKOFF_MAX_S
                                                           : st->backoff * 2;
}

/* Run one setup command; false (error recorded) if it failed. */
static bool setup_cmd(struct redis_state *st, const char *what, redisReply *rep)
{
    bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;

    if (!ok)
        set_error(st, what, rep ? rep->str : st->c->errstr);
    if (rep)
        freeReplyObject(rep);
    return ok;
}

static bool redis_connect(struct redis_state *st)
{
    struct timeval conn_tv = { 1, 0 }, cmd_tv = { 2, 0 };

    st->c = redisConnectWithTimeout(st->t.host, st->t.port, conn_tv);
    if (st->c == NULL || st->c->err) {
        set_error(st, "connect", st->c ? st->c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(st->c, cmd_tv) != REDIS_OK) {
        set_error(st, "connect", st->c->errstr);
        goto fail;
    }
    if (st->t.password) {
        redisReply *rep = st->t.user
            ? redisCommand(st->c, "AUTH %s %s", st->t.user, st->t.password)
            : redisCommand(st->c, "AUTH %s", st->t.password);
        if (!setup_cmd(st, "AUTH", rep))
            goto fail;
    }
    if (st->t.db && !setup_cmd(st, "SELECT", redisCommand(st->c, "SELECT %d", st->t.db)))
        goto fail;
    st->backoff = NR_REDIS_BACKOFF_MIN_S;
    st->outage = false;
    if (!st->said_connected) {
        st->said_connected = true;
        nr_log_emit_mask(NR_EV_SYS_REDIS_CONNECTED, 0, 0,
                         (const struct nr_kv[]){ NR_S("url", st->masked) },
                         1, ~(unsigned)NR_SINK_REDIS, 0);
    }
    return true;
fail:
    report_trouble(st);
    drop_conn(st);
    return false;
}

/* ------------------------------------------------------------ publish */

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
            redisAppendCommand(st->c, "PUBLISH %s %b", channel, st->json.p, st->json.len);
            sent++;
        }
        redisAppendCommand(st->c, "PUBLISH %s %b", nr_log_set.channel_prefix,
                           st->json.p, st->json.len);
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
        nr_mono_ns() >= st->next_try_ns)
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
    st.backoff = NR_REDIS_BACKOFF_MIN_S;
    if (nr_log_set.redis_host) {
        target_from_keys(&st);
    } else {
        st.masked = nr_config_mask_url(nr_log_set.redis_url);
        st.url_ok = parse_url(nr_log_set.redis_url, &st.t) == NR_OK;
    }
    if (!st.url_ok) {
        set_error(&st, "bad scheduler.redis_url", "expected redis://[:password@]host[:port][/db]");
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
    target_clear(&st.t);
    free(st.masked);
    nr_sbuf_free(&st.json);
    return NULL;
}
