/* backoff.c - the wait before trying a server again (see backoff.h). */
#include "netraven/backoff.h"

#include <errno.h>

static uint64_t s_to_ns(double s)
{
    return s > 0 ? (uint64_t)(s * 1e9) : 0;
}

void nr_backoff_init(struct nr_backoff *b, double min_s, double max_s)
{
    *b = (struct nr_backoff)NR_BACKOFF_INIT(min_s, max_s);
}

double nr_backoff_delay(const struct nr_backoff *b)
{
    double d = b->next_s < b->min_s ? b->min_s : b->next_s;

    return d > b->max_s ? b->max_s : d;
}

double nr_backoff_fail(struct nr_backoff *b)
{
    double d = nr_backoff_delay(b);

    b->next_s = d * 2 > b->max_s ? b->max_s : d * 2;
    b->retry_ns = nr_mono_ns() + s_to_ns(d);
    return d;
}

bool nr_backoff_say(struct nr_backoff *b)
{
    bool first = !b->said;

    b->said = true;
    return first;
}

bool nr_backoff_ok(struct nr_backoff *b)
{
    bool was = b->said;

    b->next_s = b->min_s;
    b->retry_ns = 0;
    b->said = false;
    return was;
}

bool nr_backoff_due(const struct nr_backoff *b)
{
    return b->retry_ns == 0 || nr_mono_ns() >= b->retry_ns;
}

double nr_backoff_left(const struct nr_backoff *b)
{
    uint64_t now = nr_mono_ns();

    return b->retry_ns > now ? (double)(b->retry_ns - now) / 1e9 : 0;
}

/* ------------------------------------------------------------ the stop */

void nr_backoff_stop_init(struct nr_backoff_stop *s)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&s->requested, false);
    s->at_ns = 0;
}

void nr_backoff_stop_clear(struct nr_backoff_stop *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

void nr_backoff_stop_request(struct nr_backoff_stop *s)
{
    pthread_mutex_lock(&s->mu);
    if (!atomic_load(&s->requested)) {
        s->at_ns = nr_mono_ns();
        atomic_store(&s->requested, true);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool nr_backoff_stop_requested(const struct nr_backoff_stop *s)
{
    return s != NULL && atomic_load(&s->requested);
}

uint64_t nr_backoff_stop_at(struct nr_backoff_stop *s)
{
    uint64_t at;

    pthread_mutex_lock(&s->mu);
    at = s->at_ns;
    pthread_mutex_unlock(&s->mu);
    return at;
}

bool nr_backoff_sleep(struct nr_backoff_stop *s, double seconds)
{
    struct timespec ts;
    bool stopped;

    if (s == NULL) {
        nr_sleep_s(seconds);
        return false;
    }
    nr_mono_deadline(seconds, &ts);
    pthread_mutex_lock(&s->mu);
    while (!atomic_load(&s->requested))
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    stopped = atomic_load(&s->requested);
    pthread_mutex_unlock(&s->mu);
    return stopped;
}

bool nr_backoff_wait(const struct nr_backoff *b, struct nr_backoff_stop *s)
{
    return nr_backoff_sleep(s, nr_backoff_left(b));
}
