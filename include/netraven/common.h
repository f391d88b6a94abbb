/*
 * common.h - what every module of netraven-worker shares: return codes,
 * allocation that never returns NULL, clocks and small string helpers.
 *
 * Return convention (STYLE 7): functions return 0 on success and a negative
 * NR_E* code on failure; "not found" is NR_NOTFOUND (positive), not an error.
 * Output parameters are written only on success.
 */
#ifndef NR_COMMON_H
#define NR_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NR_OK        0
#define NR_NOTFOUND  1     /* the thing asked for does not exist */
#define NR_ERR      (-1)   /* generic failure; the object's errstr says why */
#define NR_EINVAL   (-2)   /* bad input */
#define NR_EIO      (-3)   /* a server or the OS failed; may be retried */
#define NR_EFULL    (-4)   /* a bounded queue is full */
#define NR_ECLOSED  (-5)   /* the object is shutting down */
#define NR_ETIMEOUT (-6)

#define NR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: on out-of-memory these print one line to stderr and abort,
 * as redis's zmalloc does; a daemon that cannot allocate cannot keep its
 * promises anyway.  Never return NULL (nr_strdup(NULL) returns NULL). */
void *nr_malloc(size_t n);
void *nr_calloc(size_t nmemb, size_t n);
void *nr_realloc(void *p, size_t n);
char *nr_strdup(const char *s);
char *nr_strndup(const char *s, size_t n);
/* printf into a new string; never NULL. */
char *nr_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock, for timeouts and durations. */
uint64_t nr_mono_ns(void);
static inline double nr_mono_ms(void) { return (double)nr_mono_ns() / 1e6; }
/* The monotonic time mono_ns, and the time seconds from now (capped at
 * 10^7 s; <= 0: now), as the absolute timespec of pthread_cond_timedwait on
 * a condition variable made with CLOCK_MONOTONIC. */
void nr_mono_timespec(uint64_t mono_ns, struct timespec *ts);
void nr_mono_deadline(double seconds, struct timespec *ts);

/* Wall clock as ISO 8601 UTC with microseconds and a 'Z', e.g.
 * 2026-11-23T18:07:01.123456Z.  buf must hold NR_ISO_TS_LEN bytes. */
#define NR_ISO_TS_LEN 28
void nr_iso_ts(const struct timespec *ts, char buf[NR_ISO_TS_LEN]);

/* Whether the comma-separated list holds the name of len bytes. */
bool nr_list_has(const char *list, const char *name, size_t len);

/* Sleep for seconds, resuming after signals. */
void nr_sleep_s(double seconds);

/* mkdir -p: create path and any missing parents with mode.  0, or -1 with
 * errno set by the mkdir that failed. */
int nr_mkdir_p(const char *path, unsigned mode);

/* Case-insensitive substring search (ASCII). */
const char *nr_strcasestr(const char *hay, const char *needle);

/* The same over memory: needle (m bytes) in hay (n bytes, which may hold
 * NUL bytes); NULL when absent or m is 0. */
const char *nr_memcasemem(const char *hay, size_t n, const char *needle, size_t m);

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available), 0 when
 * it is not one (overlong forms, surrogates, beyond U+10FFFF) or is NUL. */
size_t nr_utf8_seq(const unsigned char *s, size_t n);

/* Make s (len bytes) valid UTF-8 text in place: every byte of an invalid
 * sequence, and every NUL, becomes '?'.  Returns how many bytes changed. */
size_t nr_utf8_scrub(char *s, size_t len);

/* A growable list of owned strings, for config lists and the like. */
struct nr_strlist {
    char   **v;
    size_t   n;
};
void nr_strlist_push(struct nr_strlist *l, const char *s);
void nr_strlist_clear(struct nr_strlist *l);           /* frees the strings */
void nr_strlist_copy(struct nr_strlist *dst, const struct nr_strlist *src);

#endif /* NR_COMMON_H */
