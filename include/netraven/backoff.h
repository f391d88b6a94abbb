/*
 * backoff.h - waiting before trying a server again: the one rule of every
 * reconnect (Redis for both intakes and the log publisher, PostgreSQL for
 * the runs and the log writer) and of every command a server refuses.
 *
 * A struct nr_backoff follows one outage.  Its first failure waits min_s,
 * each further failure twice the wait before, up to max_s; a success starts
 * over.  It also remembers whether the outage was said, so that the caller
 * logs an outage once, not once per attempt, and says when it ended.
 *
 * The wait is spent on a condition variable (CLOCK_MONOTONIC), not in
 * sleeps: a struct nr_backoff_stop is a stop request that wakes every
 * thread waiting on it, so a shutdown never waits out a backoff.
 *
 * Caller's steps (a connection kept up by one thread):
 *   struct nr_backoff b;  nr_backoff_init(&b, 0.5, 10);
 *   for (;;) {
 *       if (connect() == 0) {
 *           if (nr_backoff_ok(&b)) log "back";
 *           ...
 *           continue;
 *       }
 *       double delay = nr_backoff_fail(&b);
 *       if (nr_backoff_say(&b)) log "away, next try in <delay> s";
 *       if (nr_backoff_wait(&b, stop)) break;       stop requested
 *   }
 * or, in a loop that does other work meanwhile, nr_backoff_due(&b) before
 * each attempt.  A struct nr_backoff belongs to one thread; a struct
 * nr_backoff_stop is shared.
 */
#ifndef NR_BACKOFF_H
#define NR_BACKOFF_H

#include <pthread.h>
#include <stdatomic.h>

#include "netraven/common.h"

struct nr_backoff {
    double   min_s, max_s;  /* the first wait, and the cap */
    double   next_s;        /* what the next failure waits; below min_s: min_s */
    uint64_t retry_ns;      /* mono time before which no attempt is made; 0: now */
    bool     said;          /* the outage was said since the last success */
};

/* For a backoff in static or automatic storage: the same as
 * nr_backoff_init(). */
#define NR_BACKOFF_INIT(min, max) { .min_s = (min), .max_s = (max), .next_s = (min) }

/* Start at min_s (> 0), doubling up to max_s (>= min_s); no outage. */
void nr_backoff_init(struct nr_backoff *b, double min_s, double max_s);

/* A failure: returns the seconds to wait before the next attempt (min_s
 * the first time, then doubling up to max_s), and sets the time before
 * which nr_backoff_due() says no. */
double nr_backoff_fail(struct nr_backoff *b);

/* The wait the next failure will be given, for a message written before
 * nr_backoff_fail() (the outage is said at its first sign). */
double nr_backoff_delay(const struct nr_backoff *b);

/* Once per outage: true at the first call since nr_backoff_init() or the
 * last success, false after that.  The caller says the outage when true. */
bool nr_backoff_say(struct nr_backoff *b);

/* A success: the next failure waits min_s again and is a new outage.
 * Returns true when it ends an outage that was said (the caller then says
 * it is over), false otherwise. */
bool nr_backoff_ok(struct nr_backoff *b);

/* May the next attempt be made now? */
bool nr_backoff_due(const struct nr_backoff *b);

/* Seconds until then; 0 when due. */
double nr_backoff_left(const struct nr_backoff *b);

/* ------------------------------------------------------------ the stop */

struct nr_backoff_stop {
    pthread_mutex_t mu;
    pthread_cond_t  cv;         /* CLOCK_MONOTONIC */
    atomic_bool     requested;  /* readable without the lock */
    uint64_t        at_ns;      /* mono time of the first request; 0 before */
};

/* Initialise caller memory (not requested).  Release with _clear(), after
 * every waiter has returned. */
void nr_backoff_stop_init(struct nr_backoff_stop *s);
void nr_backoff_stop_clear(struct nr_backoff_stop *s);

/* Request the stop and wake every waiter; later requests change nothing
 * (nor the time of the first).  Not async-signal-safe. */
void nr_backoff_stop_request(struct nr_backoff_stop *s);

/* Has it been requested?  s may be NULL (never). */
bool nr_backoff_stop_requested(const struct nr_backoff_stop *s);

/* Mono time of the first request, 0 when none was made. */
uint64_t nr_backoff_stop_at(struct nr_backoff_stop *s);

/* Wait seconds, or until a stop is requested: returns true when stopped
 * (at once if it already was), false when the time ran out.  s may be
 * NULL: a plain sleep that returns false. */
bool nr_backoff_sleep(struct nr_backoff_stop *s, double seconds);

/* Wait until b's next attempt is due, or a stop; nr_backoff_sleep()'s
 * return. */
bool nr_backoff_wait(const struct nr_backoff *b, struct nr_backoff_stop *s);

#endif /* NR_BACKOFF_H */
