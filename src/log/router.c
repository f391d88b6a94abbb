/*
 * router.c - the front half of the log module: the routing table, record
 * rendering, the bounded sink queues, flush and shutdown.
 *
 * Routing (computed once in nr_log_init, one word per event):
 *   route(type) = logging.routes[type], or nr_log_default_route(type) when
 *                 the config left it 0; stdout is always added.  The
 *                 default routes name the file for every type
 *                 (docs/netraven.md §4.2: the file is an extra destination
 *                 for all four types); a route set in
 *                 the config that leaves "file" out is obeyed.
 *   A sink is only available when it can work: FILE needs logging.file,
 *   DB needs database.url, REDIS needs logging.redis.enabled and
 *   logging.redis.host or scheduler.redis_url.
 *   Thresholds: stdout/file need level >= logging.level, except session
 *   events, which reach stdout/file only when logging.level is debug; DB
 *   needs level >= logging.db_level; Redis takes session events at any
 *   level (other types routed there follow logging.level).
 *
 * An emit reads one word of that table; a zero word returns before anything
 * is formatted.
 */
#include "log_i.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#define NR_LOG_OUT_SINKS            (NR_SINK_STDOUT | NR_SINK_FILE)

struct nr_log_settings nr_log_set;
struct nr_logq nr_log_q_out;
struct nr_logq nr_log_q_db;
struct nr_logq nr_log_q_redis;

atomic_uint_fast64_t nr_log_db_written;
atomic_uint_fast64_t nr_log_db_lost;
atomic_uint_fast64_t nr_log_db_spooled;
atomic_uint_fast64_t nr_log_db_recovered;
atomic_uint_fast64_t nr_log_db_found;
atomic_uint_fast64_t nr_log_redis_published;
atomic_uint_fast64_t nr_log_redis_lost;
atomic_uint_fast64_t nr_log_file_errors;
atomic_int nr_log_reopen_req;

static _Atomic unsigned nr_route_tab[NR_EV_COUNT];
static atomic_uint_fast64_t nr_emitted[NR_LOG_TYPE_COUNT];
static pthread_t nr_th_out, nr_th_db, nr_th_redis;
static atomic_bool nr_log_started;

/* ================================================================ buffers */

void nr_sbuf_init_stack(struct nr_sbuf *b, char *buf, size_t size)
{
    b->p = buf;
    b->cap = size;
    b->len = 0;
    b->onstack = true;
    buf[0] = '\0';
}

void nr_sbuf_reserve(struct nr_sbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;
    char *p;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (b->onstack) {
        p = nr_malloc(cap);
        memcpy(p, b->p, b->len + 1);
        b->onstack = false;
    } else {
        p = nr_realloc(b->p, cap);
        if (b->p == NULL)
            p[0] = '\0';
    }
    b->p = p;
    b->cap = cap;
}

void nr_sbuf_put(struct nr_sbuf *b, const char *s, size_t n)
{
    nr_sbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void nr_sbuf_puts(struct nr_sbuf *b, const char *s)
{
    nr_sbuf_put(b, s, strlen(s));
}

void nr_sbuf_putc(struct nr_sbuf *b, char c)
{
    nr_sbuf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

void nr_sbuf_printf(struct nr_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    nr_sbuf_reserve(b, 64);
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        nr_sbuf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void json_strn(struct nr_sbuf *b, const char *s, size_t n);

/* A JSON string written as jansson writes it (\b and \f by name, other
 * control characters as \u00XX in upper case), so that text built here and
 * text built by jansson (the DB writer's, the tests') read the same. */
void nr_sbuf_json_str(struct nr_sbuf *b, const char *s)
{
    json_strn(b, s, strlen(s));
}

/* The same for s[0..n), which holds no NUL. */
static void json_strn(struct nr_sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    const unsigned char *run = p;

    nr_sbuf_reserve(b, n + 2);
    nr_sbuf_putc(b, '"');
    for (;; p++) {
        unsigned char c = p < end ? *p : '\0';
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        nr_sbuf_put(b, (const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        switch (c) {
        case '"':  nr_sbuf_put(b, "\\\"", 2); break;
        case '\\': nr_sbuf_put(b, "\\\\", 2); break;
        case '\b': nr_sbuf_put(b, "\\b", 2); break;
        case '\f': nr_sbuf_put(b, "\\f", 2); break;
        case '\n': nr_sbuf_put(b, "\\n", 2); break;
        case '\r': nr_sbuf_put(b, "\\r", 2); break;
        case '\t': nr_sbuf_put(b, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            nr_sbuf_put(b, u, 6);
        }
        }
        run = p + 1;
    }
    nr_sbuf_putc(b, '"');
}

void nr_sbuf_free(struct nr_sbuf *b)
{
    if (!b->onstack)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->onstack = false;
}

/* ================================================================= UTF-8 */

bool nr_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t k;
        if (p[i] >= 0x01 && p[i] < 0x80) {
            i++;
            continue;
        }
        k = nr_utf8_seq(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

char *nr_utf8_sanitize(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    struct nr_sbuf b = { 0 };
    size_t i = 0;

    nr_sbuf_reserve(&b, n);
    while (i < n) {
        size_t run = i, k;

        /* a run of ASCII goes in one copy */
        while (run < n && p[run] >= 0x01 && p[run] < 0x80)
            run++;
        if (run > i) {
            nr_sbuf_put(&b, s + i, run - i);
            i = run;
            continue;
        }
        k = nr_utf8_seq(p + i, n - i);
        if (k == 0) {
            nr_sbuf_put(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            nr_sbuf_put(&b, s + i, k);
            i += k;
        }
    }
    return b.p;
}

/* ================================================================= queues */

int nr_logq_init(struct nr_logq *q, size_t cap)
{
    pthread_condattr_t ca;

    memset(q, 0, sizeof(*q));
    if (cap == 0)
        cap = 1;
    if (pthread_condattr_init(&ca) != 0)
        return NR_ERR;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->wake, &ca);
    pthread_cond_init(&q->done_cv, &ca);
    pthread_cond_init(&q->room, &ca);
    pthread_condattr_destroy(&ca);
    q->v = nr_calloc(cap, sizeof(*q->v));
    q->spare = nr_calloc(cap, sizeof(*q->spare));
    q->cap = cap;
    return NR_OK;
}

void nr_logq_destroy(struct nr_logq *q)
{
    if (q->v == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        nr_log_rec_unref(q->v[i]);
    free(q->v);
    free(q->spare);
    q->v = q->spare = NULL;
    q->n = 0;
    pthread_cond_destroy(&q->wake);
    pthread_cond_destroy(&q->done_cv);
    pthread_cond_destroy(&q->room);
    pthread_mutex_destroy(&q->mu);
    q->running = false;
}

void nr_logq_bound_bytes(struct nr_logq *q, size_t max_bytes, double wait_s)
{
    pthread_mutex_lock(&q->mu);
    q->max_bytes = max_bytes;
    q->room_wait_s = wait_s;
    pthread_mutex_unlock(&q->mu);
}

void nr_logq_linger(struct nr_logq *q, double seconds)
{
    pthread_mutex_lock(&q->mu);
    q->linger_ns = seconds > 0 ? (uint64_t)(seconds * 1e9) : 0;
    pthread_mutex_unlock(&q->mu);
}

void nr_logq_release(struct nr_logq *q, size_t bytes)
{
    if (bytes == 0)
        return;
    pthread_mutex_lock(&q->mu);
    q->bytes = bytes < q->bytes ? q->bytes - bytes : 0;
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->mu);
}

/* Is there room for size more bytes?  Waits for it up to room_wait_s.
 * Locked. */
static bool logq_room(struct nr_logq *q, size_t size)
{
    struct timespec dl;
    bool timed = false;

    while (!q->stop && q->bytes > 0 && q->bytes + size > q->max_bytes) {
        if (!q->hurry) {
            /* a lingering consumer takes what is queued now */
            q->hurry = true;
            pthread_cond_signal(&q->wake);
        }
        if (!timed) {
            nr_mono_deadline(q->room_wait_s, &dl);
            timed = true;
        }
        if (pthread_cond_timedwait(&q->room, &q->mu, &dl) == ETIMEDOUT)
            return q->bytes == 0 || q->bytes + size <= q->max_bytes;
    }
    return true;
}

bool nr_logq_push(struct nr_logq *q, struct nr_log_rec *r)
{
    size_t size = nr_log_rec_size(r);
    bool first;

    pthread_mutex_lock(&q->mu);
    if ((q->max_bytes && !logq_room(q, size)) || q->stop || q->n == q->cap) {
        atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
        pthread_mutex_unlock(&q->mu);
        return false;
    }
    if (q->max_bytes)
        q->bytes += size;
    q->v[q->n++] = r;
    first = q->n == 1 || q->n == q->high;
    atomic_fetch_add_explicit(&q->pushed, 1, memory_order_relaxed);
    pthread_mutex_unlock(&q->mu);
    /* The consumer sleeps on an empty queue, or (nr_logq_nap, or lingering
     * in nr_logq_take) until the queue reaches its high-water mark. */
    if (first)
        pthread_cond_signal(&q->wake);
    return true;
}

size_t nr_logq_take(struct nr_logq *q, struct nr_log_rec ***batch, double timeout_s)
{
    struct timespec dl;
    struct nr_log_rec **t;
    size_t n;

    pthread_mutex_lock(&q->mu);
    if (timeout_s >= 0)
        nr_mono_deadline(timeout_s, &dl);
    while (q->n == 0 && !q->stop) {
        if (timeout_s < 0)
            pthread_cond_wait(&q->wake, &q->mu);
        else if (pthread_cond_timedwait(&q->wake, &q->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (q->n > 0 && q->linger_ns > 0) {
        uint64_t now = nr_mono_ns();

        if (now < q->next_take_ns) {
            nr_mono_deadline((double)(q->next_take_ns - now) / 1e9, &dl);
            q->high = q->cap / 2 > 1 ? q->cap / 2 : 1;
            while (!q->stop && !q->hurry && q->n < q->high)
                if (pthread_cond_timedwait(&q->wake, &q->mu, &dl) == ETIMEDOUT)
                    break;
            q->high = 0;
        }
        q->next_take_ns = nr_mono_ns() + q->linger_ns;
    }
    q->hurry = false;
    n = q->n;
    t = q->v;
    q->v = q->spare;
    q->spare = t;
    q->n = 0;
    pthread_mutex_unlock(&q->mu);
    *batch = t;
    return n;
}

void nr_logq_done(struct nr_logq *q, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&q->mu);
    atomic_fetch_add_explicit(&q->done, n, memory_order_relaxed);
    pthread_cond_broadcast(&q->done_cv);
    pthread_mutex_unlock(&q->mu);
}

bool nr_logq_nap(struct nr_logq *q, double seconds, size_t high)
{
    struct timespec dl;
    bool stop;

    nr_mono_deadline(seconds, &dl);
    pthread_mutex_lock(&q->mu);
    q->high = high;
    while (!q->stop && (high == 0 || q->n < high))
        if (pthread_cond_timedwait(&q->wake, &q->mu, &dl) == ETIMEDOUT)
            break;
    q->high = 0;
    stop = q->stop;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

size_t nr_logq_len(struct nr_logq *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

bool nr_logq_stopping(struct nr_logq *q)
{
    bool stop;

    pthread_mutex_lock(&q->mu);
    stop = q->stop;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

static void logq_stop(struct nr_logq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_broadcast(&q->wake);
    pthread_cond_broadcast(&q->room);
    pthread_mutex_unlock(&q->mu);
}

/* Wait until q->done reaches target or the monotonic deadline passes. */
static bool logq_wait_done(struct nr_logq *q, uint64_t target, const struct timespec *dl)
{
    bool ok;

    pthread_mutex_lock(&q->mu);
    while (atomic_load_explicit(&q->done, memory_order_relaxed) < target)
        if (pthread_cond_timedwait(&q->done_cv, &q->mu, dl) == ETIMEDOUT)
            break;
    ok = atomic_load_explicit(&q->done, memory_order_relaxed) >= target;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

/* ================================================================ records */

void nr_log_rec_unref(struct nr_log_rec *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        free(r);
}

static const char *const nr_level_upper[NR_LOG_LEVEL_COUNT] = {
    "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL",
};

const char *nr_log_level_upper(enum nr_log_level l)
{
    return (unsigned)l < NR_LOG_LEVEL_COUNT ? nr_level_upper[l] : "?";
}

size_t nr_fmt_ll(char *buf, long long v)
{
    char tmp[24];
    size_t n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

void nr_ts_format(struct nr_ts_cache *c, const struct timespec *ts, char out[NR_ISO_TS_LEN])
{
    long us = (long)(ts->tv_nsec / 1000) % 1000000L;

    if (!c->valid || c->sec != ts->tv_sec) {
        struct tm tm;
        time_t sec = ts->tv_sec;
        gmtime_r(&sec, &tm);
        strftime(c->head, sizeof(c->head), "%Y-%m-%dT%H:%M:%S", &tm);
        c->sec = ts->tv_sec;
        c->valid = true;
    }
    memcpy(out, c->head, 19);
    out[19] = '.';
    for (int i = 25; i >= 20; i--) {
        out[i] = (char)('0' + us % 10);
        us /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
}

/* What every record's JSON starts with, up to the message's value:
 * {"timestamp":...,"source":"...","message": */
static void json_head(struct nr_sbuf *b, const struct nr_log_rec *r, struct nr_ts_cache *tc)
{
    const struct nr_event_def *e = &nr_events[r->ev];
    struct nr_ts_cache local = { 0 };
    char ts[NR_ISO_TS_LEN];

    nr_ts_format(tc ? tc : &local, &r->ts, ts);
    nr_sbuf_reserve(b, 160);
    nr_sbuf_puts(b, "{\"timestamp\":\"");
    nr_sbuf_puts(b, ts);
    nr_sbuf_puts(b, "\",\"log_type\":\"");
    nr_sbuf_puts(b, nr_log_type_name(e->type));
    nr_sbuf_puts(b, "\",\"level\":\"");
    nr_sbuf_puts(b, nr_log_level_upper(e->level));
    nr_sbuf_puts(b, "\",\"job_id\":");
    nr_sbuf_reserve(b, 24);
    if (r->job_id)
        b->len += nr_fmt_ll(b->p + b->len, r->job_id);
    else
        nr_sbuf_puts(b, "null");
    nr_sbuf_puts(b, ",\"device_id\":");
    nr_sbuf_reserve(b, 24);
    if (r->device_id)
        b->len += nr_fmt_ll(b->p + b->len, r->device_id);
    else
        nr_sbuf_puts(b, "null");
    nr_sbuf_puts(b, ",\"source\":");
    nr_sbuf_json_str(b, e->source);
    nr_sbuf_puts(b, ",\"message\":");
}

void nr_log_rec_json(struct nr_sbuf *b, const struct nr_log_rec *r, struct nr_ts_cache *tc)
{
    nr_sbuf_reserve(b, 160 + r->msg_len + r->meta_len);
    json_head(b, r, tc);
    nr_sbuf_json_str(b, r->msg);
    nr_sbuf_puts(b, ",\"meta\":");
    nr_sbuf_put(b, r->meta, r->meta_len);
    nr_sbuf_putc(b, '}');
}

/* ============================================================== rendering */

static const struct nr_kv *kv_find(const struct nr_kv *kv, size_t nkv,
                                   const char *name, size_t len, size_t *idx)
{
    /* The last of duplicate keys wins, as in meta. */
    for (size_t i = nkv; i-- > 0;) {
        if (kv[i].key && strncmp(kv[i].key, name, len) == 0 && kv[i].key[len] == '\0') {
            *idx = i;
            return &kv[i];
        }
    }
    return NULL;
}

static void put_value(struct nr_sbuf *b, const struct nr_kv *k, const char *s)
{
    switch (k->kind) {
    case NR_KV_STR:
    case NR_KV_JSON:
        nr_sbuf_puts(b, s ? s : (k->kind == NR_KV_JSON ? "null" : ""));
        break;
    case NR_KV_INT:
        nr_sbuf_printf(b, "%lld", k->v.i);
        break;
    case NR_KV_DBL:
        nr_sbuf_printf(b, "%g", k->v.d);
        break;
    case NR_KV_BOOL:
        nr_sbuf_puts(b, k->v.i ? "true" : "false");
        break;
    case NR_KV_NONE:
        break;
    }
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_';
}

/* Render tmpl into b.  sv[i] is the (UTF-8 clean) text of kv[i] when it is
 * a string or JSON kind. */
static void render(struct nr_sbuf *b, const char *tmpl, long long job_id,
                   long long device_id, const struct nr_kv *kv, size_t nkv,
                   const char *const *sv)
{
    const char *p = tmpl;

    while (*p) {
        const char *open = strchr(p, '{');
        const char *q;
        size_t idx;
        const struct nr_kv *k;

        if (open == NULL) {
            nr_sbuf_puts(b, p);
            return;
        }
        nr_sbuf_put(b, p, (size_t)(open - p));
        for (q = open + 1; is_name_char(*q); q++)
            ;
        if (*q != '}' || q == open + 1) {
            nr_sbuf_putc(b, '{');
            p = open + 1;
            continue;
        }
        k = kv_find(kv, nkv, open + 1, (size_t)(q - open - 1), &idx);
        if (k)
            put_value(b, k, sv[idx]);
        else if (q - open - 1 == 6 && strncmp(open + 1, "job_id", 6) == 0)
            nr_sbuf_printf(b, "%lld", job_id);
        else if (q - open - 1 == 9 && strncmp(open + 1, "device_id", 9) == 0)
            nr_sbuf_printf(b, "%lld", device_id);
        else
            nr_sbuf_put(b, open, (size_t)(q - open + 1));
        p = q + 1;
    }
}

/* Text values made UTF-8 clean: sv[i] points at the caller's string, or at
 * a sanitized copy (then owned[i] is set). */
#define NR_KV_INLINE 16

struct kv_text {
    const char  *inl[NR_KV_INLINE];
    bool         inl_owned[NR_KV_INLINE];
    const char **sv;
    bool        *owned;
    size_t       n;
};

static void kv_text_init(struct kv_text *t, const struct nr_kv *kv, size_t nkv)
{
    if (nkv <= NR_KV_INLINE) {
        t->sv = t->inl;
        t->owned = t->inl_owned;
    } else {
        t->sv = nr_calloc(nkv, sizeof(*t->sv));
        t->owned = nr_calloc(nkv, sizeof(*t->owned));
    }
    t->n = nkv;
    for (size_t i = 0; i < nkv; i++) {
        const char *s = kv[i].kind == NR_KV_STR || kv[i].kind == NR_KV_JSON ? kv[i].v.s : NULL;
        t->owned[i] = false;
        t->sv[i] = s;
        if (s) {
            size_t len = strlen(s);
            if (!nr_utf8_valid(s, len)) {
                t->sv[i] = nr_utf8_sanitize(s, len);
                t->owned[i] = true;
            }
        }
    }
}

static void kv_text_clear(struct kv_text *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->owned[i])
            free((char *)t->sv[i]);
    if (t->sv != t->inl) {
        free(t->sv);
        free(t->owned);
    }
}

char *nr_log_render(const char *tmpl, long long job_id, long long device_id,
                    const struct nr_kv *kv, size_t nkv)
{
    struct nr_sbuf b = { 0 };
    struct kv_text t;

    kv_text_init(&t, kv, nkv);
    nr_sbuf_reserve(&b, strlen(tmpl) + 32);
    render(&b, tmpl, job_id, device_id, kv, nkv, t.sv);
    kv_text_clear(&t);
    return b.p;
}

/* A double as jansson writes it: 17 significant digits, always a '.' or an
 * exponent, the exponent without '+' or leading zeros; not finite: null. */
static void meta_real(struct nr_sbuf *b, double d)
{
    char buf[40], *e;
    int n;

    if (!isfinite(d)) {
        nr_sbuf_puts(b, "null");
        return;
    }
    n = snprintf(buf, sizeof(buf) - 2, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof(buf) - 2)
        n = (int)strlen(buf);
    if (strpbrk(buf, ".e") == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    e = strchr(buf, 'e');
    if (e) {
        char *src = e + 1, *dst = e + 1;

        if (*src == '-')
            *dst++ = *src++;
        else if (*src == '+')
            src++;
        while (*src == '0' && src[1] != '\0')
            src++;
        memmove(dst, src, strlen(src) + 1);
    }
    nr_sbuf_puts(b, buf);
}

/* A value of the JSON kind: parsed and written compact (text that is not
 * JSON after all is kept as a string). */
static void meta_embedded(struct nr_sbuf *b, const char *text)
{
    json_t *v;
    char *dump;

    if (text == NULL) {
        nr_sbuf_puts(b, "null");
        return;
    }
    v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        nr_sbuf_json_str(b, text);
        return;
    }
    dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    nr_sbuf_puts(b, dump ? dump : "null");
    free(dump);
    json_decref(v);
}

/*
 * The meta object, written straight into b: every kv in order, JSON kinds
 * embedded as values.  A key given twice appears once, where it first
 * appears, with its last value (what an object built key by key holds).
 */
static void build_meta(struct nr_sbuf *b, const struct nr_kv *kv, size_t nkv,
                       const char *const *sv)
{
    bool first = true;

    nr_sbuf_putc(b, '{');
    for (size_t i = 0; i < nkv; i++) {
        size_t j = i;
        bool seen = false;

        if (kv[i].key == NULL || kv[i].kind == NR_KV_NONE)
            continue;
        for (size_t k = 0; k < i && !seen; k++)
            seen = kv[k].key && kv[k].kind != NR_KV_NONE && strcmp(kv[k].key, kv[i].key) == 0;
        if (seen)
            continue;
        for (size_t k = i + 1; k < nkv; k++)
            if (kv[k].key && kv[k].kind != NR_KV_NONE && strcmp(kv[k].key, kv[i].key) == 0)
                j = k;
        if (!first)
            nr_sbuf_putc(b, ',');
        first = false;
        nr_sbuf_json_str(b, kv[j].key);
        nr_sbuf_putc(b, ':');
        switch (kv[j].kind) {
        case NR_KV_STR:
            if (sv[j])
                nr_sbuf_json_str(b, sv[j]);
            else
                nr_sbuf_puts(b, "null");
            break;
        case NR_KV_INT:
            nr_sbuf_reserve(b, 24);
            b->len += nr_fmt_ll(b->p + b->len, kv[j].v.i);
            b->p[b->len] = '\0';
            break;
        case NR_KV_DBL:
            meta_real(b, kv[j].v.d);
            break;
        case NR_KV_BOOL:
            nr_sbuf_puts(b, kv[j].v.i ? "true" : "false");
            break;
        case NR_KV_JSON:
            meta_embedded(b, sv[j]);
            break;
        case NR_KV_NONE:
            break;
        }
    }
    nr_sbuf_putc(b, '}');
}

static _Thread_local long nr_tid_cache;

static long nr_gettid(void)
{
    if (nr_tid_cache == 0)
        nr_tid_cache = (long)syscall(SYS_gettid);
    return nr_tid_cache;
}

/* A record whose message is the rendered template, or, when text is given,
 * text, the rendered template then becoming the record's head.  With like
 * (the raw session record it is made from), its time and thread are
 * like's, and it is not counted again. */
static struct nr_log_rec *rec_build(enum nr_event ev, long long job_id, long long device_id,
                                    const struct nr_kv *kv, size_t nkv, unsigned sinks,
                                    const char *text, size_t text_len,
                                    const struct nr_log_rec *like)
{
    const struct nr_event_def *e = &nr_events[ev];
    char msgbuf[1024], metabuf[1024];
    struct nr_sbuf msg, meta;
    struct kv_text t;
    struct nr_log_rec *r;
    struct timespec ts;
    size_t meta_len;

    if (like)
        ts = like->ts;
    else
        clock_gettime(CLOCK_REALTIME, &ts);
    kv_text_init(&t, kv, nkv);

    nr_sbuf_init_stack(&msg, msgbuf, sizeof(msgbuf));
    render(&msg, e->tmpl, job_id, device_id, kv, nkv, t.sv);
    nr_sbuf_init_stack(&meta, metabuf, sizeof(metabuf));
    build_meta(&meta, kv, nkv, t.sv);
    meta_len = meta.len;
    kv_text_clear(&t);

    r = nr_malloc(sizeof(*r) + msg.len + 1 + meta_len + 1 + (text ? text_len + 1 : 0));
    r->ev = ev;
    r->sinks = sinks;
    r->job_id = job_id;
    r->device_id = device_id;
    r->ts = ts;
    r->tid = like ? like->tid : nr_gettid();
    r->parts = 1;
    r->raw = false;
    r->meta = r->data;
    r->meta_len = meta_len;
    memcpy(r->meta, meta.p, meta_len);
    r->meta[meta_len] = '\0';
    r->msg = r->meta + meta_len + 1;
    if (text) {
        r->msg_len = text_len;
        memcpy(r->msg, text, text_len);
        r->msg[text_len] = '\0';
        r->head = r->msg + text_len + 1;
        r->head_len = msg.len;
        memcpy(r->head, msg.p, msg.len + 1);
    } else {
        r->msg_len = msg.len;
        memcpy(r->msg, msg.p, msg.len + 1);
        r->head = NULL;
        r->head_len = 0;
    }
    nr_sbuf_free(&meta);
    nr_sbuf_free(&msg);
    atomic_init(&r->refs, 1);
    if (like == NULL)
        atomic_fetch_add_explicit(&nr_emitted[e->type], 1, memory_order_relaxed);
    return r;
}

struct nr_log_rec *nr_log_rec_new(enum nr_event ev, long long job_id, long long device_id,
                                  const struct nr_kv *kv, size_t nkv, unsigned sinks)
{
    return rec_build(ev, job_id, device_id, kv, nkv, sinks, NULL, 0, NULL);
}

/* ------------------------------------------------- session drops per job */

#define NR_DROP_SLOTS 256
#define NR_DROP_PROBE 16

static pthread_mutex_t drop_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    long long job_id;           /* 0: free */
    uint64_t  n;
} drop_tab[NR_DROP_SLOTS];

void nr_log_count_drop(long long job_id, uint64_t n)
{
    size_t home = (size_t)((unsigned long long)job_id * 0x9E3779B97F4A7C15ull >> 56) % NR_DROP_SLOTS;
    size_t slot = home;

    nr_metrics_add(NR_M_SESSION_EVENTS_DROPPED, (long long)n);
    if (job_id <= 0 || n == 0)
        return;
    pthread_mutex_lock(&drop_mu);
    for (size_t i = 0; i < NR_DROP_PROBE; i++) {
        size_t k = (home + i) % NR_DROP_SLOTS;
        if (drop_tab[k].job_id == job_id || drop_tab[k].job_id == 0) {
            slot = k;
            break;
        }
    }
    if (drop_tab[slot].job_id != job_id) {     /* free, or full: reuse home */
        drop_tab[slot].job_id = job_id;
        drop_tab[slot].n = 0;
    }
    drop_tab[slot].n += n;
    pthread_mutex_unlock(&drop_mu);
}

uint64_t nr_log_session_drops_take(long long job_id)
{
    size_t home = (size_t)((unsigned long long)job_id * 0x9E3779B97F4A7C15ull >> 56) % NR_DROP_SLOTS;
    uint64_t n = 0;

    if (job_id <= 0)
        return 0;
    pthread_mutex_lock(&drop_mu);
    for (size_t i = 0; i < NR_DROP_PROBE; i++) {
        size_t k = (home + i) % NR_DROP_SLOTS;
        if (drop_tab[k].job_id == job_id) {
            n = drop_tab[k].n;
            drop_tab[k].job_id = 0;
            drop_tab[k].n = 0;
            break;
        }
    }
    pthread_mutex_unlock(&drop_mu);
    return n;
}

/* Queue r to its sinks (r->sinks); the caller's reference goes with it. */
static void route(struct nr_log_rec *r)
{
    unsigned sinks = r->sinks;
    unsigned targets = !!(sinks & NR_LOG_OUT_SINKS) + !!(sinks & NR_SINK_DB) +
                       !!(sinks & NR_SINK_REDIS);

    /* One reference per queue, taken before the first push can be consumed. */
    atomic_store_explicit(&r->refs, targets, memory_order_relaxed);

    if ((sinks & NR_LOG_OUT_SINKS) && !nr_logq_push(&nr_log_q_out, r))
        nr_log_rec_unref(r);
    if ((sinks & NR_SINK_DB) && !nr_logq_push(&nr_log_q_db, r))
        nr_log_rec_unref(r);
    if ((sinks & NR_SINK_REDIS) && !nr_logq_push(&nr_log_q_redis, r)) {
        /* the queue counted one; a raw record stands for parts */
        atomic_fetch_add(&nr_log_redis_lost, r->parts - 1);
        nr_log_count_drop(r->job_id, r->parts);
        nr_log_rec_unref(r);
    }
}

static void emit_to(enum nr_event ev, long long job_id, long long device_id,
                    const struct nr_kv *kv, size_t nkv, unsigned sinks)
{
    route(rec_build(ev, job_id, device_id, kv, nkv, sinks, NULL, 0, NULL));
}

/* ================================================================ routing */

unsigned nr_log_default_route(enum nr_log_type t)
{
    switch (t) {
    case NR_LOG_JOB:
    case NR_LOG_CONNECTION:
        return NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_DB;
    case NR_LOG_SESSION:
        return NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_REDIS;
    case NR_LOG_SYSTEM:
    default:
        return NR_SINK_STDOUT | NR_SINK_FILE;
    }
}

static unsigned route_event(const struct nr_config *cfg, const struct nr_event_def *e,
                            unsigned avail)
{
    unsigned route = (unsigned)e->type < NR_LOG_TYPE_COUNT ? cfg->logging.routes[e->type] : 0;
    bool session = e->type == NR_LOG_SESSION;
    unsigned s = 0;

    if (route == 0)
        route = nr_log_default_route(e->type);
    route |= NR_SINK_STDOUT;
    route &= avail;

    if (session ? cfg->logging.level == NR_LOG_DEBUG : e->level >= cfg->logging.level)
        s |= route & NR_LOG_OUT_SINKS;
    if ((route & NR_SINK_DB) && e->level >= cfg->logging.db_level)
        s |= NR_SINK_DB;
    if ((route & NR_SINK_REDIS) && (session || e->level >= cfg->logging.level))
        s |= NR_SINK_REDIS;
    return s;
}

unsigned nr_log_sinks(enum nr_event ev)
{
    if ((unsigned)ev >= NR_EV_COUNT)
        return 0;
    return atomic_load_explicit(&nr_route_tab[ev], memory_order_relaxed);
}

bool nr_log_enabled(enum nr_event ev)
{
    return nr_log_sinks(ev) != 0;
}

void nr_log_emit(enum nr_event ev, long long job_id, long long device_id,
                 const struct nr_kv *kv, size_t nkv)
{
    unsigned sinks = nr_log_sinks(ev);

    if (sinks)
        emit_to(ev, job_id, device_id, kv, nkv, sinks);
}

void nr_log_emit_mask(enum nr_event ev, long long job_id, long long device_id,
                      const struct nr_kv *kv, size_t nkv, unsigned mask,
                      unsigned force)
{
    unsigned sinks;

    if ((unsigned)ev >= NR_EV_COUNT || !nr_log_started)
        return;
    sinks = force ? force : nr_log_sinks(ev) & mask;
    if (sinks)
        emit_to(ev, job_id, device_id, kv, nkv, sinks);
}

/* ------------------------------------------------------- session records */

size_t nr_log_session_chunk(const char *data, size_t len)
{
    size_t max = len < NR_LOG_SESSION_BYTES ? len : NR_LOG_SESSION_BYTES;
    size_t lines = 0, last_nl = 0, cut;

    for (size_t i = 0; i < max; i++) {
        if (data[i] != '\n')
            continue;
        last_nl = i + 1;
        if (++lines == NR_LOG_SESSION_LINES)
            return last_nl;
    }
    if (len <= NR_LOG_SESSION_BYTES)
        return len;
    if (last_nl)                /* whole lines; the rest goes in the next record */
        return last_nl;
    /* One line longer than a record: cut it, not inside a UTF-8 sequence
     * (a continuation byte is 10xxxxxx; a sequence has at most 3). */
    cut = NR_LOG_SESSION_BYTES;
    for (int k = 0; k < 3 && ((unsigned char)data[cut] & 0xC0) == 0x80; k++)
        cut--;
    return cut;
}

/* Length of the terminal escape sequence at p (p[0] is ESC), at most n:
 * CSI "ESC [ params final", OSC "ESC ] ... BEL or ESC \", else two bytes. */
static size_t escape_len(const char *p, size_t n)
{
    size_t i;

    if (n < 2)
        return n;
    if (p[1] == '[') {
        for (i = 2; i < n; i++)
            if ((unsigned char)p[i] >= 0x40 && (unsigned char)p[i] <= 0x7E)
                return i + 1;
        return n;
    }
    if (p[1] == ']') {
        for (i = 2; i < n; i++) {
            if (p[i] == '\a')
                return i + 1;
            if (p[i] == '\x1b' && i + 1 < n && p[i + 1] == '\\')
                return i + 2;
        }
        return n;
    }
    return 2;
}

/* Append the message of clean[0..n) (valid UTF-8, no NUL) to b, which is
 * empty: lines joined by '\n', "> " before each when sent, control bytes
 * and escape sequences left out, a backspace erasing on its own line. */
static void session_text(struct nr_sbuf *b, bool sent, const char *clean, size_t n)
{
    size_t i = 0;
    bool first = true;

    nr_sbuf_reserve(b, n + (sent ? 2 * NR_LOG_SESSION_LINES + 2 : 0));
    while (i < n) {
        size_t start;

        if (!first)
            nr_sbuf_putc(b, '\n');
        first = false;
        if (sent)
            nr_sbuf_put(b, "> ", 2);
        start = b->len;
        for (; i < n && clean[i] != '\n'; i++) {
            unsigned char c = (unsigned char)clean[i];

            if (c == 0x1b) {
                i += escape_len(clean + i, n - i) - 1;
            } else if (c == '\b') {
                while (b->len > start && ((unsigned char)b->p[b->len - 1] & 0xC0) == 0x80)
                    b->len--;
                if (b->len > start)
                    b->len--;
                b->p[b->len] = '\0';
            } else if ((c >= 0x20 && c != 0x7f) || c == '\t') {
                nr_sbuf_putc(b, (char)c);
            }
        }
        i++;                    /* past the '\n' (or the end) */
    }
}

char *nr_log_session_text(const char *direction, const char *data, size_t len)
{
    struct nr_sbuf b = { 0 };
    char *clean = nr_utf8_sanitize(data ? data : "", data ? len : 0);

    nr_sbuf_reserve(&b, 0);
    session_text(&b, direction && strcmp(direction, "sent") == 0, clean, strlen(clean));
    free(clean);
    return b.p;
}

/*
 * The emitter queues the data as it is, in one raw record; the sinks' own
 * threads cut and render it (nr_log_session_each).  A queued session holds
 * its bytes once, not as text, meta and head of every record, and the
 * device's thread does not render what only the publisher reads.
 */
void nr_log_session(long long job_id, long long device_id,
                    const char *direction, const char *data, size_t len)
{
    unsigned sinks = nr_log_sinks(NR_EV_SESSION_DATA);
    const char *dir = direction ? direction : "?";
    size_t dlen = strlen(dir), parts = 0;
    struct nr_log_rec *r;

    if (sinks == 0)
        return;
    if (data == NULL) {
        data = "";
        len = 0;
    }
    for (size_t off = 0, n; off < len || parts == 0; off += n, parts++)
        n = nr_log_session_chunk(data + off, len - off);   /* one even for no data */

    r = nr_malloc(sizeof(*r) + len + 1 + dlen + 1);
    r->ev = NR_EV_SESSION_DATA;
    r->sinks = sinks;
    r->job_id = job_id;
    r->device_id = device_id;
    clock_gettime(CLOCK_REALTIME, &r->ts);
    r->tid = nr_gettid();
    r->raw = true;
    r->parts = parts;
    r->msg = r->data;
    r->msg_len = len;
    memcpy(r->msg, data, len);
    r->msg[len] = '\0';
    r->meta = r->msg + len + 1;
    r->meta_len = dlen;
    memcpy(r->meta, dir, dlen + 1);
    r->head = NULL;
    r->head_len = 0;
    atomic_init(&r->refs, 1);
    atomic_fetch_add_explicit(&nr_emitted[NR_LOG_SESSION], parts, memory_order_relaxed);
    route(r);
}

void nr_log_session_each(const struct nr_log_rec *r,
                         void (*fn)(const struct nr_log_rec *rec, void *arg), void *arg)
{
    const char *data = r->msg;
    size_t len = r->msg_len;
    bool sent = strcmp(r->meta, "sent") == 0;
    char textbuf[2 * NR_LOG_SESSION_BYTES];
    struct nr_sbuf text;

    if (!r->raw) {
        fn(r, arg);
        return;
    }
    nr_sbuf_init_stack(&text, textbuf, sizeof(textbuf));
    do {        /* one record even for no data */
        size_t n = nr_log_session_chunk(data, len);
        char *clean = nr_utf8_sanitize(data, n);
        const struct nr_kv kv[] = {
            NR_S("direction", r->meta),
            NR_I("bytes", n),
            NR_S("data", clean),
        };
        struct nr_log_rec *one;

        nr_sbuf_reset(&text);
        session_text(&text, sent, clean, strlen(clean));
        one = rec_build(NR_EV_SESSION_DATA, r->job_id, r->device_id, kv, NR_ARRAY_LEN(kv),
                        r->sinks, text.p, text.len, r);
        fn(one, arg);
        free(one);
        free(clean);
        data += n;
        len -= n;
    } while (len > 0);
    nr_sbuf_free(&text);
}

/* True when s[0..n) is valid UTF-8 without NUL, which nr_utf8_sanitize
 * would copy unchanged. */
static bool utf8_clean(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t k;

        if (p[i] >= 0x01 && p[i] < 0x80) {
            i++;
            continue;
        }
        if (p[i] == 0 || (k = nr_utf8_seq(p + i, n - i)) == 0)
            return false;
        i += k;
    }
    return true;
}

/*
 * What nr_log_rec_json writes for each record nr_log_session_each makes of
 * r, written straight into json: the part before the message once, then
 * per record the message and the meta, with no record built and, for
 * clean UTF-8 (nearly always), no copy of the data made.
 */
void nr_log_session_json_each(const struct nr_log_rec *r, struct nr_sbuf *json,
                              struct nr_ts_cache *tc,
                              void (*fn)(const struct nr_sbuf *json, void *arg), void *arg)
{
    const char *data = r->msg;
    size_t len = r->msg_len, head;
    bool sent = strcmp(r->meta, "sent") == 0;
    char textbuf[2 * NR_LOG_SESSION_BYTES];
    struct nr_sbuf text;

    nr_sbuf_reset(json);
    json_head(json, r, tc);
    head = json->len;

    nr_sbuf_init_stack(&text, textbuf, sizeof(textbuf));
    do {        /* one record even for no data */
        size_t n = nr_log_session_chunk(data, len), clen = n;
        char *copy = NULL;
        const char *clean = data;

        if (!utf8_clean(data, n)) {
            clean = copy = nr_utf8_sanitize(data, n);
            clen = strlen(copy);
        }
        nr_sbuf_reset(&text);
        session_text(&text, sent, clean, clen);
        json->len = head;
        json_strn(json, text.p, text.len);
        nr_sbuf_puts(json, ",\"meta\":{\"direction\":");
        nr_sbuf_json_str(json, r->meta);
        nr_sbuf_puts(json, ",\"bytes\":");
        nr_sbuf_reserve(json, 24);
        json->len += nr_fmt_ll(json->p + json->len, (long long)n);
        nr_sbuf_puts(json, ",\"data\":");
        json_strn(json, clean, clen);
        nr_sbuf_puts(json, "}}");
        fn(json, arg);
        free(copy);
        data += n;
        len -= n;
    } while (len > 0);
    nr_sbuf_free(&text);
}

void nr_log_reopen(void)
{
    atomic_store(&nr_log_reopen_req, 1);
}

/* ============================================================= life cycle */

void nr_log_block_signals(void)
{
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

static void settings_clear(struct nr_log_settings *s)
{
    free(s->file);
    free(s->db_url);
    free(s->redis_url);
    free(s->redis_host);
    free(s->redis_password);
    free(s->channel_prefix);
    free(s->spool_dir);
    memset(s, 0, sizeof(*s));
}

static void counters_reset(void)
{
    for (int t = 0; t < NR_LOG_TYPE_COUNT; t++)
        atomic_store(&nr_emitted[t], 0);
    atomic_store(&nr_log_db_written, 0);
    atomic_store(&nr_log_db_lost, 0);
    atomic_store(&nr_log_db_spooled, 0);
    atomic_store(&nr_log_db_recovered, 0);
    atomic_store(&nr_log_db_found, 0);
    atomic_store(&nr_log_redis_published, 0);
    atomic_store(&nr_log_redis_lost, 0);
    atomic_store(&nr_log_file_errors, 0);
    atomic_store(&nr_log_reopen_req, 0);
    for (int i = 0; i < 3; i++) {
        struct nr_logq *q = i == 0 ? &nr_log_q_out : i == 1 ? &nr_log_q_db : &nr_log_q_redis;
        atomic_store(&q->pushed, 0);
        atomic_store(&q->done, 0);
        atomic_store(&q->dropped, 0);
    }
}

static void table_clear(void)
{
    for (int i = 0; i < NR_EV_COUNT; i++)
        atomic_store_explicit(&nr_route_tab[i], 0, memory_order_relaxed);
}

static void stop_join(struct nr_logq *q, pthread_t th)
{
    if (!q->running)
        return;
    logq_stop(q);
    pthread_join(th, NULL);
    q->running = false;
}

static void teardown(void)
{
    /* db and redis may still report into the out queue: stop them first. */
    stop_join(&nr_log_q_redis, nr_th_redis);
    stop_join(&nr_log_q_db, nr_th_db);
    nr_spool_clear(&nr_log_spool);      /* after the only thread using it */
    nr_log_started = false;
    stop_join(&nr_log_q_out, nr_th_out);
    table_clear();
    nr_logq_destroy(&nr_log_q_redis);
    nr_logq_destroy(&nr_log_q_db);
    nr_logq_destroy(&nr_log_q_out);
    settings_clear(&nr_log_set);
}

static int start_sink(struct nr_logq *q, pthread_t *th, void *(*fn)(void *), size_t cap,
                      size_t max_bytes, const char *name)
{
    if (nr_logq_init(q, cap) < 0)
        return NR_ERR;
    if (max_bytes)
        nr_logq_bound_bytes(q, max_bytes, NR_LOG_ROOM_WAIT_S);
    nr_logq_linger(q, NR_LOG_LINGER_S);
    if (pthread_create(th, NULL, fn, NULL) != 0)
        return NR_ERR;
    pthread_setname_np(*th, name);
    q->running = true;
    return NR_OK;
}

int nr_log_init(const struct nr_config *cfg)
{
    const struct nr_log_settings zero = { 0 };
    const struct nr_config *dflt = nr_config_default();
    unsigned tab[NR_EV_COUNT];
    unsigned avail = NR_SINK_STDOUT, used = 0;
    size_t qcap, rcap, rbytes;

    if (nr_log_started)
        return NR_ERR;
    counters_reset();
    nr_log_set = zero;
    nr_log_set.format = cfg->logging.format;
    if (cfg->logging.file && cfg->logging.file[0]) {
        nr_log_set.file = nr_strdup(cfg->logging.file);
        avail |= NR_SINK_FILE;
    }
    if (cfg->database.url && cfg->database.url[0]) {
        nr_log_set.db_url = nr_strdup(cfg->database.url);
        avail |= NR_SINK_DB;
    }
    /* The publisher goes where NetRaven's API subscribes: logging.redis.*
     * when a host is set, else the queues' Redis. */
    if (cfg->logging.redis.enabled && cfg->logging.redis.host && cfg->logging.redis.host[0]) {
        nr_log_set.redis_host = nr_strdup(cfg->logging.redis.host);
        nr_log_set.redis_port = cfg->logging.redis.port > 0 ? cfg->logging.redis.port
                                                            : dflt->logging.redis.port;
        nr_log_set.redis_db = cfg->logging.redis.db;
        if (cfg->logging.redis.password && cfg->logging.redis.password[0])
            nr_log_set.redis_password = nr_strdup(cfg->logging.redis.password);
        avail |= NR_SINK_REDIS;
    } else if (cfg->logging.redis.enabled && cfg->scheduler.redis_url &&
               cfg->scheduler.redis_url[0]) {
        nr_log_set.redis_url = nr_strdup(cfg->scheduler.redis_url);
        avail |= NR_SINK_REDIS;
    }
    nr_log_set.channel_prefix = nr_strdup(cfg->logging.redis.channel_prefix &&
                                          cfg->logging.redis.channel_prefix[0]
                                          ? cfg->logging.redis.channel_prefix
                                          : dflt->logging.redis.channel_prefix);
    if (cfg->worker.spool_dir && cfg->worker.spool_dir[0])
        nr_log_set.spool_dir = nr_strdup(cfg->worker.spool_dir);
    /* a configuration that was not loaded gets keys.def's defaults */
    nr_log_set.db_batch_size = cfg->logging.db_batch_size > 0
                               ? cfg->logging.db_batch_size : dflt->logging.db_batch_size;
    qcap = (size_t)(cfg->logging.queue_size > 0 ? cfg->logging.queue_size
                                                : dflt->logging.queue_size);
    rcap = (size_t)(cfg->logging.redis.queue_size > 0 ? cfg->logging.redis.queue_size
                                                      : dflt->logging.redis.queue_size);
    rbytes = (size_t)(cfg->logging.redis.queue_bytes > 0 ? cfg->logging.redis.queue_bytes
                                                        : dflt->logging.redis.queue_bytes);

    for (int i = 0; i < NR_EV_COUNT; i++) {
        tab[i] = route_event(cfg, &nr_events[i], avail);
        used |= tab[i];
    }

    /* Rows an earlier run left in the spool are part of what
     * nr_log_flush() waits for, so they are counted before the db thread
     * (which reports what it found) starts.  An error here is reported by
     * that thread; spooling is tried again when it is needed. */
    nr_spool_init(&nr_log_spool, (used & NR_SINK_DB) ? nr_log_set.spool_dir : NULL);
    atomic_store(&nr_log_db_found, nr_log_spool.rows);
    atomic_store(&nr_log_db_spooled, nr_log_spool.rows);

    /* The table is live before the threads start: they emit too. */
    for (int i = 0; i < NR_EV_COUNT; i++)
        atomic_store_explicit(&nr_route_tab[i], tab[i], memory_order_relaxed);
    nr_log_started = true;

    if (start_sink(&nr_log_q_out, &nr_th_out, nr_log_out_main, qcap, 0, "log-out") < 0 ||
        ((used & NR_SINK_DB) &&
         start_sink(&nr_log_q_db, &nr_th_db, nr_log_db_main, qcap, 0, "log-db") < 0) ||
        ((used & NR_SINK_REDIS) &&
         start_sink(&nr_log_q_redis, &nr_th_redis, nr_log_redis_main, rcap, rbytes,
                    "log-redis") < 0)) {
        teardown();
        return NR_ERR;
    }
    return NR_OK;
}

int nr_log_flush(double timeout_s)
{
    struct nr_logq *qs[3] = { &nr_log_q_db, &nr_log_q_redis, &nr_log_q_out };
    uint64_t target[3] = { 0, 0, 0 };
    struct timespec dl;
    int rc = NR_OK;

    if (!nr_log_started)
        return NR_OK;
    for (int i = 0; i < 3; i++) {
        if (!qs[i]->running)
            continue;
        pthread_mutex_lock(&qs[i]->mu);
        target[i] = atomic_load_explicit(&qs[i]->pushed, memory_order_relaxed);
        pthread_mutex_unlock(&qs[i]->mu);
    }
    /* the db sink also finishes the rows found in the spool at start */
    target[0] += atomic_load(&nr_log_db_found);
    nr_mono_deadline(timeout_s, &dl);
    for (int i = 0; i < 3; i++)
        if (qs[i]->running && !logq_wait_done(qs[i], target[i], &dl))
            rc = NR_ETIMEOUT;
    return rc;
}

/* Callers stop emitting first (the worker's threads are joined before
 * this): the queues are freed here, and an emit racing with that would
 * touch freed locks.  The sink threads' own reports are ordered by
 * teardown(). */
void nr_log_shutdown(void)
{
    if (!nr_log_started)
        return;
    nr_log_flush(NR_LOG_SHUTDOWN_DB_WAIT_S);
    teardown();
}

void nr_log_get_stats(struct nr_log_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int t = 0; t < NR_LOG_TYPE_COUNT; t++)
        out->emitted[t] = atomic_load(&nr_emitted[t]);
    out->db_routed = atomic_load(&nr_log_q_db.pushed);
    out->db_written = atomic_load(&nr_log_db_written);
    out->db_dropped = atomic_load(&nr_log_q_db.dropped) + atomic_load(&nr_log_db_lost);
    out->db_spooled = atomic_load(&nr_log_db_spooled);
    out->db_recovered = atomic_load(&nr_log_db_recovered);
    out->out_written = atomic_load(&nr_log_q_out.done);
    out->out_dropped = atomic_load(&nr_log_q_out.dropped);
    out->redis_published = atomic_load(&nr_log_redis_published);
    out->redis_dropped = atomic_load(&nr_log_q_redis.dropped) + atomic_load(&nr_log_redis_lost);
    out->file_errors = atomic_load(&nr_log_file_errors);
}
