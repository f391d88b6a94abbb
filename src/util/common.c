/* common.c - allocation, clocks and string helpers shared by all modules. */
#include "netraven/common.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void oom(size_t n)
{
    fprintf(stderr, "netraven-worker: out of memory allocating %zu bytes\n", n);
    abort();
}

void *nr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *nr_calloc(size_t nmemb, size_t n)
{
    void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
    if (p == NULL)
        oom(nmemb * n);
    return p;
}

void *nr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *nr_strdup(const char *s)
{
    return s ? nr_strndup(s, strlen(s)) : NULL;
}

char *nr_strndup(const char *s, size_t n)
{
    char *d = nr_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *nr_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        oom(strlen(fmt));
    va_end(ap);
    return s;
}

uint64_t nr_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool nr_list_has(const char *list, const char *name, size_t len)
{
    while (*list) {
        size_t l = strcspn(list, ",");

        if (l == len && strncmp(list, name, len) == 0)
            return true;
        list += l + (list[l] == ',');
    }
    return false;
}

void nr_mono_timespec(uint64_t mono_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(mono_ns / 1000000000ull);
    ts->tv_nsec = (long)(mono_ns % 1000000000ull);
}

void nr_mono_deadline(double seconds, struct timespec *ts)
{
    if (!(seconds > 0))
        seconds = 0;
    if (seconds > 1e7)
        seconds = 1e7;
    nr_mono_timespec(nr_mono_ns() + (uint64_t)(seconds * 1e9), ts);
}

void nr_iso_ts(const struct timespec *ts, char buf[NR_ISO_TS_LEN])
{
    struct tm tm;
    time_t sec = ts->tv_sec;
    unsigned usec = (unsigned)(ts->tv_nsec / 1000) % 1000000u;

    gmtime_r(&sec, &tm);
    strftime(buf, 20, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + 19, NR_ISO_TS_LEN - 19, ".%06uZ", usec);
}

void nr_sleep_s(double seconds)
{
    struct timespec ts;

    if (seconds <= 0)
        return;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

int nr_mkdir_p(const char *path, unsigned mode)
{
    char *p = nr_strdup(path);
    int rc = 0;

    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, (mode_t)mode) < 0 && errno != EEXIST)
        rc = -1;
    int saved = errno;
    free(p);
    errno = saved;
    return rc;
}

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

const char *nr_memcasemem(const char *hay, size_t n, const char *needle, size_t m)
{
    if (m == 0 || m > n)
        return NULL;
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;

        while (k < m && ascii_lower((unsigned char)hay[i + k]) ==
                            ascii_lower((unsigned char)needle[k]))
            k++;
        if (k == m)
            return hay + i;
    }
    return NULL;
}

const char *nr_strcasestr(const char *hay, const char *needle)
{
    size_t m = strlen(needle);

    return m == 0 ? hay : nr_memcasemem(hay, strlen(hay), needle, m);
}

size_t nr_utf8_seq(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned cp;

    if (s[0] < 0x80)
        return s[0] ? 1 : 0;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

size_t nr_utf8_scrub(char *s, size_t len)
{
    size_t changed = 0;
    unsigned char *p = (unsigned char *)s;

    for (size_t i = 0; i < len;) {
        size_t k;

        if (p[i] >= 0x01 && p[i] < 0x80) {     /* ASCII, the common case */
            i++;
            continue;
        }
        k = nr_utf8_seq(p + i, len - i);
        if (k == 0) {
            p[i++] = '?';
            changed++;
        } else {
            i += k;
        }
    }
    return changed;
}

void nr_strlist_push(struct nr_strlist *l, const char *s)
{
    l->v = nr_realloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = nr_strdup(s);
}

void nr_strlist_clear(struct nr_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void nr_strlist_copy(struct nr_strlist *dst, const struct nr_strlist *src)
{
    nr_strlist_clear(dst);
    for (size_t i = 0; i < src->n; i++)
        nr_strlist_push(dst, src->v[i]);
}
