/*
 * breaker.c - per-device circuit breakers in one bounded map (breaker.h).
 *
 * The map is a fixed array of buckets (a power of two, about a quarter of
 * max_devices) with chained entries; entries are allocated when a device
 * first fails and freed when it answers again, so the memory follows the
 * devices that are failing, never the fleet.
 */
#include "netraven/breaker.h"
#include "netraven/metrics.h"

#include <pthread.h>
#include <stdlib.h>

struct entry {
    long long             id;
    enum nr_breaker_state state;
    int                   failures;
    bool                  trial_taken;   /* half-open: the trial is under way */
    double                opened_at;
    double                last_failure;
    struct entry         *next;
};

struct nr_breaker {
    pthread_mutex_t mu;
    int             threshold;
    double          reset_s;
    size_t          max;
    struct entry  **buckets;
    size_t          mask;
    size_t          size;
    uint64_t        untracked;
};

static size_t slot(const struct nr_breaker *b, long long id)
{
    uint64_t x = (uint64_t)id + 0x9e3779b97f4a7c15ull;     /* splitmix64 finaliser */

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (size_t)(x ^ (x >> 31)) & b->mask;
}

struct nr_breaker *nr_breaker_new(int threshold, double reset_s, size_t max_devices)
{
    struct nr_breaker *b = nr_calloc(1, sizeof(*b));
    size_t nb = 64;

    if (max_devices == 0)
        max_devices = 1;
    while (nb < max_devices / 4 && nb < ((size_t)1 << 20))
        nb <<= 1;
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold > 0 ? threshold : 1;
    b->reset_s = reset_s > 0 ? reset_s : 0;
    b->max = max_devices;
    b->buckets = nr_calloc(nb, sizeof(*b->buckets));
    b->mask = nb - 1;
    return b;
}

void nr_breaker_free(struct nr_breaker *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i <= b->mask; i++)
        for (struct entry *e = b->buckets[i], *next; e; e = next) {
            next = e->next;
            nr_metrics_add(NR_M_BREAKERS_OPEN, -(e->state != NR_BREAKER_CLOSED));
            free(e);
        }
    pthread_mutex_destroy(&b->mu);
    free(b->buckets);
    free(b);
}

/* The entry of id, and the link that points at it (for unlinking). */
static struct entry *find(struct nr_breaker *b, long long id, struct entry ***link)
{
    struct entry **l = &b->buckets[slot(b, id)];

    for (; *l; l = &(*l)->next)
        if ((*l)->id == id)
            break;
    if (link)
        *link = l;
    return *l;
}

static void unlink_entry(struct nr_breaker *b, struct entry **link)
{
    struct entry *e = *link;

    *link = e->next;
    free(e);
    b->size--;
}

/* Make room for one entry: evict the closed entry whose last failure is
 * oldest.  false when every entry is open or half-open.  Locked. */
static bool evict_one(struct nr_breaker *b)
{
    struct entry **victim = NULL;

    for (size_t i = 0; i <= b->mask; i++)
        for (struct entry **l = &b->buckets[i]; *l; l = &(*l)->next)
            if ((*l)->state == NR_BREAKER_CLOSED &&
                (victim == NULL || (*l)->last_failure < (*victim)->last_failure))
                victim = l;
    if (victim == NULL)
        return false;
    unlink_entry(b, victim);
    return true;
}

static void fill_info(const struct nr_breaker *b, const struct entry *e, double now,
                      struct nr_breaker_info *info)
{
    if (info == NULL)
        return;
    info->tracked = true;
    if (e == NULL) {
        info->state = NR_BREAKER_CLOSED;
        info->failures = 0;
        info->retry_in = 0;
        return;
    }
    info->state = e->state;
    info->failures = e->failures;
    info->retry_in = 0;
    if (e->state == NR_BREAKER_OPEN) {
        double left = e->opened_at + b->reset_s - now;
        info->retry_in = left > 0 ? left : 0;
    }
}

enum nr_breaker_verdict nr_breaker_acquire(struct nr_breaker *b, long long device_id, double now,
                                           struct nr_breaker_info *info)
{
    enum nr_breaker_verdict v = NR_BREAKER_ALLOW;
    struct entry *e;

    pthread_mutex_lock(&b->mu);
    e = find(b, device_id, NULL);
    if (e != NULL && e->state == NR_BREAKER_OPEN) {
        if (now - e->opened_at >= b->reset_s) {
            e->state = NR_BREAKER_HALF_OPEN;
            e->trial_taken = true;
            v = NR_BREAKER_TRIAL;
        } else {
            v = NR_BREAKER_REJECT;
        }
    } else if (e != NULL && e->state == NR_BREAKER_HALF_OPEN) {
        if (e->trial_taken) {
            v = NR_BREAKER_REJECT;
        } else {
            e->trial_taken = true;      /* a trial was handed back */
            v = NR_BREAKER_TRIAL;
        }
    }
    fill_info(b, e, now, info);
    pthread_mutex_unlock(&b->mu);
    return v;
}

/* A failure of a device without an entry: add one, making room if need
 * be.  NULL when the map is full of open breakers.  Locked. */
static struct entry *add(struct nr_breaker *b, long long id, struct entry **link)
{
    struct entry *e;

    if (b->size >= b->max) {
        if (!evict_one(b))
            return NULL;
        find(b, id, &link);     /* the eviction may have moved the link */
    }
    e = nr_calloc(1, sizeof(*e));
    e->id = id;
    e->state = NR_BREAKER_CLOSED;
    *link = e;
    b->size++;
    return e;
}

enum nr_breaker_transition nr_breaker_record(struct nr_breaker *b, long long device_id,
                                             bool trial, enum nr_breaker_outcome outcome,
                                             double now, struct nr_breaker_info *info)
{
    enum nr_breaker_transition tr = NR_BREAKER_UNCHANGED;
    struct entry **link, *e;

    pthread_mutex_lock(&b->mu);
    e = find(b, device_id, &link);
    switch (outcome) {
    case NR_BREAKER_NO_OUTCOME:
        if (e != NULL && trial && e->state == NR_BREAKER_HALF_OPEN)
            e->trial_taken = false;
        break;
    case NR_BREAKER_ANSWERED:
        if (e != NULL) {
            nr_metrics_add(NR_M_BREAKERS_OPEN, -(e->state != NR_BREAKER_CLOSED));
            if (e->state != NR_BREAKER_CLOSED)
                tr = NR_BREAKER_TO_CLOSED;
            unlink_entry(b, link);
            e = NULL;
        }
        break;
    case NR_BREAKER_FAILED:
        if (e == NULL && (e = add(b, device_id, link)) == NULL) {
            b->untracked++;
            fill_info(b, NULL, now, info);
            if (info)
                info->tracked = false;
            pthread_mutex_unlock(&b->mu);
            return NR_BREAKER_UNCHANGED;
        }
        e->last_failure = now;
        if (e->state == NR_BREAKER_OPEN)
            break;      /* an attempt that began before it opened: nothing new */
        if (e->state == NR_BREAKER_HALF_OPEN && !trial)
            break;      /* likewise; the trial decides */
        e->failures++;
        if (e->state == NR_BREAKER_HALF_OPEN || e->failures >= b->threshold) {
            nr_metrics_add(NR_M_BREAKERS_OPEN, e->state == NR_BREAKER_CLOSED);
            e->state = NR_BREAKER_OPEN;
            e->opened_at = now;
            e->trial_taken = false;
            tr = NR_BREAKER_TO_OPEN;
        }
        break;
    }
    fill_info(b, e, now, info);
    pthread_mutex_unlock(&b->mu);
    return tr;
}

int nr_breaker_peek(struct nr_breaker *b, long long device_id, double now,
                    struct nr_breaker_info *info)
{
    struct entry *e;

    pthread_mutex_lock(&b->mu);
    e = find(b, device_id, NULL);
    if (e != NULL)
        fill_info(b, e, now, info);
    pthread_mutex_unlock(&b->mu);
    return e != NULL ? 0 : NR_NOTFOUND;
}

size_t nr_breaker_size(struct nr_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    size_t n = b->size;
    pthread_mutex_unlock(&b->mu);
    return n;
}

uint64_t nr_breaker_untracked(struct nr_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->untracked;
    pthread_mutex_unlock(&b->mu);
    return n;
}

const char *nr_breaker_state_name(enum nr_breaker_state s)
{
    switch (s) {
    case NR_BREAKER_CLOSED:
        return "closed";
    case NR_BREAKER_OPEN:
        return "open";
    case NR_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "unknown";
}
