/*
 * util.c - byte buffer, clock, hashing, PRNG, logging.
 */
#include "devsim.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ds_verbosity;

static int grow(struct ds_buf *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->len + need <= b->cap)
        return 0;
    /* Reclaim consumed space before growing. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + need <= b->cap)
            return 0;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int ds_buf_add(struct ds_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int ds_buf_adds(struct ds_buf *b, const char *s)
{
    return ds_buf_add(b, s, strlen(s));
}

int ds_buf_printf(struct ds_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n + 1) < 0) {
        b->failed = true;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void ds_buf_consume(struct ds_buf *b, size_t n)
{
    if (n >= b->len - b->off) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
}

void ds_buf_reset(struct ds_buf *b)
{
    b->off = b->len = 0;
    b->failed = false;
}

void ds_buf_free(struct ds_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

char *ds_buf_steal(struct ds_buf *b, size_t *len)
{
    char *p;

    if (b->data == NULL && grow(b, 1) < 0)
        return NULL;
    if (b->off > 0)
        memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->data[b->len] = '\0';
    p = b->data;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

void ds_buf_strftime(struct ds_buf *b, const char *fmt, size_t n, int64_t t, unsigned ms)
{
    struct ds_buf f = {0};
    time_t tt = (time_t)t;
    struct tm tm;
    char out[256];
    size_t k;

    gmtime_r(&tt, &tm);
    /* "%q" and "%Q" first: strftime has no milliseconds and no lower-case
     * month (RouterOS's "mar/05/2024"). */
    for (size_t i = 0; i < n; i++) {
        if (fmt[i] == '%' && i + 1 < n && fmt[i + 1] == 'q') {
            ds_buf_printf(&f, "%03u", ms % 1000);
            i++;
        } else if (fmt[i] == '%' && i + 1 < n && fmt[i + 1] == 'Q') {
            char mon[16];
            size_t m = strftime(mon, sizeof mon, "%b", &tm);

            for (size_t j = 0; j < m; j++)
                mon[j] = (char)tolower((unsigned char)mon[j]);
            ds_buf_add(&f, mon, m);
            i++;
        } else if (fmt[i] == '%' && i + 1 < n) {
            ds_buf_add(&f, fmt + i, 2);
            i++;
        } else {
            ds_buf_add(&f, fmt + i, 1);
        }
    }
    ds_buf_add(&f, "", 1);
    k = f.failed ? 0 : strftime(out, sizeof out, f.data, &tm);
    ds_buf_add(b, out, k);
    ds_buf_free(&f);
}

uint64_t ds_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ds_hash64(const char *s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

uint64_t ds_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* level: 0 error (always, even quiet), 1 notice (not with --quiet),
 * 2 per-session detail (--verbose). */
void ds_log(int level, const char *fmt, ...)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    char line[512];
    va_list ap;

    if (level > 0 && ds_verbosity < 0)
        return;
    if (level > 1 && ds_verbosity < 1)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&mu);
    fprintf(stderr, "devsim: %s\n", line);
    pthread_mutex_unlock(&mu);
}
