/*
 * metrics.c - Prometheus counters and their HTTP endpoint (metrics.h).
 *
 * Every number lives in one static atomic; hooks add with relaxed order
 * (a scrape needs no ordering between counters, only no torn values).
 * The scrape path runs on libmicrohttpd's single internal thread: it is
 * the only user of the server's Redis connection, so that connection
 * needs no lock.  That connection is a plain nr_redis (redis.h), not the
 * stream intake's nr_queue: a scrape only reads, and never creates the
 * stream or its consumer group.
 */
#include "netraven/metrics.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netraven/redis.h"
#include "netraven/run.h"

#define PREFIX "netraven_worker_"

/* Redis and PostgreSQL answer a scrape within these, or count as down. */
#define REDIS_TIMEOUT_MS  1000
#define PG_TIMEOUT_S      "2"           /* libpq's connect_timeout; 2 is its minimum */
#define STREAM_LAG_CAP    100000        /* entries counted when Redis gives no lag */
#define MAX_CONNECTIONS   16
#define CONN_TIMEOUT_S    10

const char *const nr_metrics_job_status_names[NR_METRICS_JOB_STATUSES] = {
    NR_STATUS_SUCCESS, NR_STATUS_PARTIAL_FAILURE, NR_STATUS_FAILURE, NR_STATUS_NO_DEVICES,
    NR_STATUS_NO_CREDENTIALS, NR_STATUS_FAILED_UNEXPECTED, NR_STATUS_FAILED_DISPATCHER,
    NR_STATUS_FAILED_CREDENTIALS, "other",
};

/* details.class as the handlers write it (nr_ssh_fail_name, "circuit
 * open" from the dispatcher), and the label value it is counted under. */
static const struct {
    const char *cls, *label;
} task_classes[NR_METRICS_TASK_CLASSES] = {
    { NULL, "none" },
    { "refused", "refused" },
    { "unreachable", "unreachable" },
    { "timeout", "timeout" },
    { "auth", "auth" },
    { "host key", "host_key" },
    { "protocol", "protocol" },
    { "output cap", "output_cap" },
    { "circuit open", "circuit_open" },
    { NULL, "other" },
};

const char *const nr_metrics_task_class_names[NR_METRICS_TASK_CLASSES] = {
    "none", "refused", "unreachable", "timeout", "auth", "host_key", "protocol",
    "output_cap", "circuit_open", "other",
};

/* From a quick session to a large configuration over a slow link. */
const double nr_metrics_backup_bounds[NR_METRICS_BUCKETS - 1] = {
    0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600,
};

static atomic_llong        values[NR_M_COUNT];
static atomic_uint_fast64_t jobs[NR_METRICS_JOB_STATUSES];
static atomic_uint_fast64_t tasks_ok;
static atomic_uint_fast64_t tasks_failed[NR_METRICS_TASK_CLASSES];
static atomic_uint_fast64_t backup_buckets[2][NR_METRICS_BUCKETS];
static atomic_uint_fast64_t backup_sum_us[2];   /* microseconds: an integer add stays lock-free */

/* ------------------------------------------------------------------ hooks */

void nr_metrics_add(enum nr_metric m, long long delta)
{
    if ((unsigned)m < NR_M_COUNT)
        atomic_fetch_add_explicit(&values[m], delta, memory_order_relaxed);
}

void nr_metrics_job_done(const char *status)
{
    size_t i = 0;

    while (i < NR_METRICS_JOB_STATUSES - 1 &&
           (status == NULL || strcmp(status, nr_metrics_job_status_names[i]) != 0))
        i++;
    atomic_fetch_add_explicit(&jobs[i], 1, memory_order_relaxed);
}

void nr_metrics_device_task(bool success, const char *cls)
{
    size_t i = 1;

    if (success) {
        atomic_fetch_add_explicit(&tasks_ok, 1, memory_order_relaxed);
        return;
    }
    while (i < NR_METRICS_TASK_CLASSES - 1 &&
           (cls == NULL || strcmp(cls, task_classes[i].cls) != 0))
        i++;
    atomic_fetch_add_explicit(&tasks_failed[i], 1, memory_order_relaxed);
}

void nr_metrics_backup_observe(bool success, double seconds)
{
    size_t b = 0;

    if (!(seconds >= 0))
        seconds = 0;
    while (b < NR_METRICS_BUCKETS - 1 && seconds > nr_metrics_backup_bounds[b])
        b++;
    atomic_fetch_add_explicit(&backup_buckets[success][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&backup_sum_us[success], (uint64_t)llround(seconds * 1e6),
                              memory_order_relaxed);
}

/* -------------------------------------------------------------- rendering */

void nr_metrics_snapshot_take(struct nr_metrics_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < NR_METRICS_JOB_STATUSES; i++)
        s->jobs[i] = atomic_load_explicit(&jobs[i], memory_order_relaxed);
    s->tasks_ok = atomic_load_explicit(&tasks_ok, memory_order_relaxed);
    for (size_t i = 1; i < NR_METRICS_TASK_CLASSES; i++)
        s->tasks_failed[i] = atomic_load_explicit(&tasks_failed[i], memory_order_relaxed);
    for (int k = 0; k < 2; k++) {
        for (size_t b = 0; b < NR_METRICS_BUCKETS; b++)
            s->backup[k].buckets[b] = atomic_load_explicit(&backup_buckets[k][b],
                                                           memory_order_relaxed);
        s->backup[k].sum_s = (double)atomic_load_explicit(&backup_sum_us[k],
                                                          memory_order_relaxed) / 1e6;
    }
    for (int m = 0; m < NR_M_COUNT; m++)
        s->values[m] = atomic_load_explicit(&values[m], memory_order_relaxed);
    nr_log_get_stats(&s->log);
    s->pg_up = s->redis_up = -1;
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks (backslash, quote, newline). */
static void label_value(FILE *f, const char *v)
{
    fputc('"', f);
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f), fputc(*v, f);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
    fputc('"', f);
}

static void queue_samples(FILE *f, const struct nr_metrics_snapshot *s, bool age)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        const struct nr_metrics_queue *q = &s->queues[i];

        if (age && isnan(q->oldest_age_s))
            continue;
        fputs(age ? PREFIX "queue_oldest_age_seconds{kind=" : PREFIX "queue_depth{kind=", f);
        label_value(f, q->kind);
        fputs(",queue=", f);
        label_value(f, q->name);
        if (age)
            fprintf(f, "} %.3f\n", q->oldest_age_s);
        else
            fprintf(f, "} %lld\n", q->depth);
    }
}

static void backup_histogram(FILE *f, const struct nr_metrics_snapshot *s)
{
    static const char *const outcome[2] = { "failure", "success" };

    family(f, "backup_duration_seconds", "histogram",
           "Duration of config_backup attempts, connect to disconnect, in seconds.");
    for (int k = 1; k >= 0; k--) {
        uint64_t cum = 0;

        for (size_t b = 0; b < NR_METRICS_BUCKETS; b++) {
            cum += s->backup[k].buckets[b];
            if (b < NR_METRICS_BUCKETS - 1)
                fprintf(f, PREFIX "backup_duration_seconds_bucket{outcome=\"%s\",le=\"%g\"} "
                        "%llu\n", outcome[k], nr_metrics_backup_bounds[b], (unsigned long long)cum);
            else
                fprintf(f, PREFIX "backup_duration_seconds_bucket{outcome=\"%s\",le=\"+Inf\"} "
                        "%llu\n", outcome[k], (unsigned long long)cum);
        }
        fprintf(f, PREFIX "backup_duration_seconds_sum{outcome=\"%s\"} %.6f\n", outcome[k],
                s->backup[k].sum_s);
        /* the count is the +Inf bucket, read once: the two always agree */
        fprintf(f, PREFIX "backup_duration_seconds_count{outcome=\"%s\"} %llu\n", outcome[k],
                (unsigned long long)cum);
    }
}

static void up_gauge(FILE *f, const char *name, const char *help, int v)
{
    family(f, name, "gauge", help);
    if (v >= 0)
        fprintf(f, PREFIX "%s %d\n", name, v ? 1 : 0);
}

char *nr_metrics_render(const struct nr_metrics_snapshot *s, size_t *len)
{
    static const char *const sinks[3] = { "stdout", "db", "redis" };
    const struct nr_log_stats *l = &s->log;
    const uint64_t written[3] = { l->out_written, l->db_written + l->db_recovered,
                                  l->redis_published };
    const uint64_t dropped[3] = { l->out_dropped, l->db_dropped, l->redis_dropped };
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);

    if (f == NULL)
        abort();        /* only out of memory makes it fail: as nr_malloc */

    family(f, "jobs_total", "counter", "Job runs finished, by final status.");
    for (size_t i = 0; i < NR_METRICS_JOB_STATUSES; i++)
        fprintf(f, PREFIX "jobs_total{status=\"%s\"} %llu\n", nr_metrics_job_status_names[i],
                (unsigned long long)s->jobs[i]);

    family(f, "device_tasks_total", "counter",
           "Device results of job runs, by outcome and failure class.");
    fprintf(f, PREFIX "device_tasks_total{outcome=\"success\",class=\"none\"} %llu\n",
            (unsigned long long)s->tasks_ok);
    for (size_t i = 1; i < NR_METRICS_TASK_CLASSES; i++)
        fprintf(f, PREFIX "device_tasks_total{outcome=\"failure\",class=\"%s\"} %llu\n",
                nr_metrics_task_class_names[i], (unsigned long long)s->tasks_failed[i]);

    backup_histogram(f, s);

    family(f, "sessions_in_flight", "gauge", "SSH sessions to devices open now.");
    fprintf(f, PREFIX "sessions_in_flight %lld\n", s->values[NR_M_SESSIONS_IN_FLIGHT]);

    family(f, "queue_depth", "gauge",
           "Queue entries not yet acknowledged (waiting, or running), read from Redis.");
    queue_samples(f, s, false);
    family(f, "queue_oldest_age_seconds", "gauge",
           "Age of the oldest entry not yet acknowledged, in seconds; 0 when the queue is empty.");
    queue_samples(f, s, true);

    family(f, "log_rows_written_total", "counter", "Log records written, by sink.");
    for (int i = 0; i < 3; i++)
        fprintf(f, PREFIX "log_rows_written_total{sink=\"%s\"} %llu\n", sinks[i],
                (unsigned long long)written[i]);
    family(f, "log_rows_spooled_total", "counter",
           "Log rows moved to the disk spool while PostgreSQL was away.");
    fprintf(f, PREFIX "log_rows_spooled_total{sink=\"db\"} %lld\n",
            s->values[NR_M_LOG_DB_SPOOLED]);
    family(f, "log_rows_dropped_total", "counter", "Log records given up, by sink.");
    for (int i = 0; i < 3; i++)
        fprintf(f, PREFIX "log_rows_dropped_total{sink=\"%s\"} %llu\n", sinks[i],
                (unsigned long long)dropped[i]);

    family(f, "session_events_dropped_total", "counter",
           "Session events not published to the live view (queue full or Redis away).");
    fprintf(f, PREFIX "session_events_dropped_total %lld\n",
            s->values[NR_M_SESSION_EVENTS_DROPPED]);

    family(f, "breakers_open", "gauge", "Devices whose circuit breaker is open or half-open.");
    fprintf(f, PREFIX "breakers_open %lld\n", s->values[NR_M_BREAKERS_OPEN]);

    up_gauge(f, "postgres_up", "1 when PostgreSQL at database.url accepts connections.",
             s->pg_up);
    up_gauge(f, "redis_up", "1 when Redis at scheduler.redis_url answers.", s->redis_up);

    fclose(f);
    if (len)
        *len = n;
    return buf;
}

/* ------------------------------------------------------- scrape-time reads */

struct nr_metrics_server {
    const struct nr_config  *cfg;
    struct MHD_Daemon       *mhd;
    struct nr_redis         *r;         /* scrape thread only */
    struct nr_metrics_queue *queues;    /* 1 + worker.rq_queues */
    size_t                   nqueues;
};

/* One command of string arguments (a NULL ends them).  NULL when I/O
 * failed; else the reply, maybe an error reply, for the caller to free. */
static redisReply *cmd(struct nr_metrics_server *srv, const char *name, ...)
    __attribute__((sentinel));
static redisReply *cmd(struct nr_metrics_server *srv, const char *name, ...)
{
    struct nr_redis_cmd c = { 0 };
    va_list ap;
    redisReply *r;

    va_start(ap, name);
    for (const char *a = name; a != NULL; a = va_arg(ap, const char *))
        nr_redis_arg(&c, a);
    va_end(ap);
    r = nr_redis_command(srv->r, 0, name, &c);
    nr_redis_cmd_clear(&c);
    return r;
}

/* Milliseconds of a stream entry id ("1700000000000-0"). */
static double id_ms(const char *id)
{
    return id ? strtod(id, NULL) : NAN;
}

static double age_s(double now_ms, double then_ms)
{
    if (isnan(then_ms))
        return NAN;
    return now_ms > then_ms ? (now_ms - then_ms) / 1e3 : 0;
}

static const redisReply *field(const redisReply *map, const char *key)
{
    for (size_t i = 0; map && map->type == REDIS_REPLY_ARRAY && i + 1 < map->elements; i += 2)
        if (map->element[i]->type == REDIS_REPLY_STRING && strcmp(map->element[i]->str, key) == 0)
            return map->element[i + 1];
    return NULL;
}

/*
 * The stream: entries not yet acknowledged by the group are the ones
 * delivered and pending (XPENDING) plus those not yet delivered (the
 * group's lag, Redis 7; else counted up to STREAM_LAG_CAP).  The oldest
 * is the older of the first pending entry and the first undelivered one.
 * Returns false on a Redis I/O error.
 */
static bool read_stream(struct nr_metrics_server *srv, double now_ms, struct nr_metrics_queue *out)
{
    const char *stream = srv->cfg->queue.stream, *group = srv->cfg->queue.group;
    redisReply *r = cmd(srv, "XINFO", "GROUPS", stream, NULL);
    const redisReply *g = NULL;
    char *last = NULL, *from, count[16];
    long long pending = 0, lag = -1;
    double oldest = NAN;

    out->depth = 0;
    out->oldest_age_s = 0;
    if (r == NULL)
        return false;
    if (r->type == REDIS_REPLY_ERROR) {     /* no such key: no stream, nothing waits */
        freeReplyObject(r);
        return true;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && g == NULL; i++) {
        const redisReply *name = field(r->element[i], "name");
        if (name && name->type == REDIS_REPLY_STRING && strcmp(name->str, group) == 0)
            g = r->element[i];
    }
    if (g) {
        const redisReply *v = field(g, "pending"), *l = field(g, "lag"),
                         *d = field(g, "last-delivered-id");
        pending = v && v->type == REDIS_REPLY_INTEGER ? v->integer : 0;
        lag = l && l->type == REDIS_REPLY_INTEGER ? l->integer : -1;
        last = d && d->type == REDIS_REPLY_STRING ? nr_strdup(d->str) : NULL;
    }
    freeReplyObject(r);
    if (last == NULL)
        last = nr_strdup("0-0");    /* no group yet: every entry waits */

    if (pending > 0) {
        if ((r = cmd(srv, "XPENDING", stream, group, NULL)) == NULL)
            goto io;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            oldest = id_ms(r->element[1]->str);
        freeReplyObject(r);
    }
    /* the first undelivered entry, and the lag when Redis does not keep it */
    snprintf(count, sizeof(count), "%d", lag < 0 ? STREAM_LAG_CAP : 1);
    from = nr_asprintf("(%s", last);
    r = cmd(srv, "XRANGE", stream, from, "+", "COUNT", count, NULL);
    free(from);
    if (r == NULL)
        goto io;
    if (r->type == REDIS_REPLY_ARRAY) {
        if (lag < 0)
            lag = (long long)r->elements;
        if (r->elements > 0 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements > 0 && r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
            double first = id_ms(r->element[0]->element[0]->str);
            if (isnan(oldest) || first < oldest)
                oldest = first;
        }
    }
    freeReplyObject(r);
    free(last);
    out->depth = pending + (lag > 0 ? lag : 0);
    out->oldest_age_s = out->depth > 0 ? age_s(now_ms, oldest) : 0;
    return true;
io:
    free(last);
    return false;
}

/* "2026-11-23T18:07:01.123456Z" (RQ's enqueued_at) in ms since the epoch. */
static double iso_ms(const char *s)
{
    struct tm tm = { 0 };
    const char *rest;

    if (s == NULL || (rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
        return NAN;
    return (double)timegm(&tm) * 1e3 + (*rest == '.' ? strtod(rest, NULL) * 1e3 : 0);
}

/* An RQ queue: the list's length, and the enqueued_at of its head (RQ
 * pushes at the tail and pops at the head). */
static bool read_rq(struct nr_metrics_server *srv, double now_ms, const char *name,
                    struct nr_metrics_queue *out)
{
    char *key = nr_asprintf("rq:queue:%s", name);
    redisReply *r = cmd(srv, "LLEN", key, NULL), *h;

    out->depth = 0;
    out->oldest_age_s = 0;
    if (r == NULL)
        goto io;
    if (r->type == REDIS_REPLY_INTEGER)
        out->depth = r->integer;
    freeReplyObject(r);
    if (out->depth == 0)
        goto done;
    out->oldest_age_s = NAN;
    if ((r = cmd(srv, "LINDEX", key, "0", NULL)) == NULL)
        goto io;
    if (r->type == REDIS_REPLY_STRING) {
        struct nr_redis_cmd c = { 0 };
        char *job = nr_malloc(r->len + 7);

        memcpy(job, "rq:job:", 7);
        memcpy(job + 7, r->str, r->len);        /* binary safe */
        nr_redis_arg(&c, "HGET");
        nr_redis_arg_own(&c, job, r->len + 7);
        nr_redis_arg(&c, "enqueued_at");
        h = nr_redis_command(srv->r, 0, "HGET", &c);
        nr_redis_cmd_clear(&c);
        if (h == NULL) {
            freeReplyObject(r);
            goto io;
        }
        if (h->type == REDIS_REPLY_STRING)
            out->oldest_age_s = age_s(now_ms, iso_ms(h->str));
        freeReplyObject(h);
    }
    freeReplyObject(r);
done:
    free(key);
    return true;
io:
    free(key);
    return false;
}

/* Every queue, on the server's connection (made or remade here).
 * Returns 1 (Redis answered) or 0; on 0 the connection is dropped. */
static int read_queues(struct nr_metrics_server *srv)
{
    redisReply *r;
    double now_ms;
    bool ok;

    if (srv->r == NULL)
        srv->r = nr_redis_new(srv->cfg->scheduler.redis_url, "scheduler.redis_url",
                              REDIS_TIMEOUT_MS);
    else if (srv->r->err)
        nr_redis_reconnect(srv->r);
    if (srv->r->err)
        goto down;
    /* Redis's clock, as the stream ids and RQ's timestamps are (mostly) its */
    if ((r = cmd(srv, "TIME", NULL)) == NULL)
        goto down;
    ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2;
    now_ms = ok ? strtod(r->element[0]->str, NULL) * 1e3 + strtod(r->element[1]->str, NULL) / 1e3
                : 0;
    freeReplyObject(r);
    if (!ok)
        goto down;
    if (!read_stream(srv, now_ms, &srv->queues[0]))
        goto down;
    for (size_t i = 1; i < srv->nqueues; i++)
        if (!read_rq(srv, now_ms, srv->queues[i].name, &srv->queues[i]))
            goto down;
    return 1;
down:
    nr_redis_free(srv->r);
    srv->r = NULL;
    return 0;
}

static int pg_up(const struct nr_config *cfg)
{
    const char *keys[] = { "connect_timeout", "dbname", NULL };
    const char *vals[] = { PG_TIMEOUT_S, NULL, NULL };
    char *url = nr_config_libpq_url(cfg->database.url);
    PGPing p;

    vals[1] = url;
    p = PQpingParams(keys, vals, 1);
    free(url);
    return p == PQPING_OK;
}

static char *scrape(struct nr_metrics_server *srv, size_t *len)
{
    struct nr_metrics_snapshot s;

    nr_metrics_snapshot_take(&s);
    s.redis_up = read_queues(srv);
    if (s.redis_up) {
        s.queues = srv->queues;
        s.nqueues = srv->nqueues;
    }
    s.pg_up = pg_up(srv->cfg);
    return nr_metrics_render(&s, len);
}

/* ------------------------------------------------------------------ HTTP */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(c, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    struct nr_metrics_server *srv = cls;
    static const char text[] = "text/plain; charset=utf-8";
    size_t len;
    char *body;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, text, nr_strdup("GET or HEAD only\n"), 17);
    if (strcmp(url, "/metrics") == 0) {
        body = scrape(srv, &len);
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
    }
    if (strcmp(url, "/") == 0) {
        body = nr_strdup("netraven-worker: metrics at /metrics\n");
        return reply(c, MHD_HTTP_OK, text, body, strlen(body));
    }
    return reply(c, MHD_HTTP_NOT_FOUND, text, nr_strdup("not found\n"), 10);
}

/* "host:port", ":port", "[v6]:port" into host (malloc'd, NULL for every
 * IPv4 address) and port text (malloc'd).  0 or NR_EINVAL. */
static int split_listen(const char *s, char **host, char **port)
{
    const char *colon = strrchr(s, ':');

    if (colon == NULL || colon[1] == '\0')
        return NR_EINVAL;
    if (s[0] == '[') {
        if (colon == s || colon[-1] != ']')
            return NR_EINVAL;
        *host = nr_strndup(s + 1, (size_t)(colon - s - 2));
    } else {
        *host = colon == s ? NULL : nr_strndup(s, (size_t)(colon - s));
    }
    *port = nr_strdup(colon + 1);
    return 0;
}

struct nr_metrics_server *nr_metrics_server_start(const struct nr_config *cfg,
                                                  char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
    const char *listen = cfg->metrics.listen;
    char *host = NULL, *port = NULL;
    struct nr_metrics_server *srv;
    sigset_t all, old;
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD;
    int rc;

    if (listen == NULL || split_listen(listen, &host, &port) < 0) {
        snprintf(err, errlen, "metrics.listen: expected host:port, :port or [address]:port");
        return NULL;
    }
    hints.ai_family = host ? AF_UNSPEC : AF_INET;
    rc = getaddrinfo(host, port, &hints, &ai);
    free(host);
    if (rc != 0) {
        snprintf(err, errlen, "metrics.listen %s: %s", listen, gai_strerror(rc));
        free(port);
        return NULL;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;

    srv = nr_calloc(1, sizeof(*srv));
    srv->cfg = cfg;
    srv->nqueues = 1 + cfg->worker.rq_queues.n;
    srv->queues = nr_calloc(srv->nqueues, sizeof(*srv->queues));
    srv->queues[0].kind = "stream";
    srv->queues[0].name = cfg->queue.stream;
    for (size_t i = 1; i < srv->nqueues; i++) {
        srv->queues[i].kind = "rq";
        srv->queues[i].name = cfg->worker.rq_queues.v[i - 1];
    }

    /* the thread libmicrohttpd starts inherits this mask: signals are
     * for the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    srv->mhd = MHD_start_daemon(flags, (uint16_t)atoi(port), NULL, NULL, on_request, srv,
                                MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                                MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    freeaddrinfo(ai);
    free(port);
    if (srv->mhd == NULL) {
        snprintf(err, errlen, "metrics.listen %s: cannot listen there (address in use, "
                 "or not an address of this host)", listen);
        free(srv->queues);
        free(srv);
        return NULL;
    }
    return srv;
}

void nr_metrics_server_stop(struct nr_metrics_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->mhd);
    nr_redis_free(srv->r);
    free(srv->queues);
    free(srv);
}
