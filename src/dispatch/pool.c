/*
 * pool.c - the dispatcher's fixed thread pool with a bounded FIFO and a
 * timer heap for delayed tasks (see pool.h for the design).
 *
 * One mutex guards the FIFO and the heap.  Idle threads wait on
 * `work`; a thread waits with a deadline when the heap is not empty, so the
 * earliest delayed task is moved to the FIFO when it falls due by whichever
 * thread wakes first.  Submitters wait on `space` while the FIFO is full.
 */
#include "netraven/pool.h"

#include <pthread.h>
#include <stdlib.h>

struct task {
    nr_task_fn fn;
    void      *arg;
};

struct delayed {
    uint64_t    due_ns;
    uint64_t    seq;        /* FIFO order among equal deadlines */
    struct task t;
};

struct nr_pool {
    pthread_mutex_t mu;
    pthread_cond_t  work;
    pthread_cond_t  space;

    struct task *ring;
    size_t       cap, head, len;

    struct delayed *heap;   /* min-heap on (due_ns, seq) */
    size_t          hlen, hcap;
    uint64_t        seq;

    pthread_t *threads;
    size_t     nthreads;
    bool       closing;
};

static bool delayed_before(const struct delayed *a, const struct delayed *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_push(struct nr_pool *p, struct delayed d)
{
    if (p->hlen == p->hcap) {
        p->hcap = p->hcap ? p->hcap * 2 : 64;
        p->heap = nr_realloc(p->heap, p->hcap * sizeof(*p->heap));
    }
    size_t i = p->hlen++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!delayed_before(&d, &p->heap[up]))
            break;
        p->heap[i] = p->heap[up];
        i = up;
    }
    p->heap[i] = d;
}

static struct delayed heap_pop(struct nr_pool *p)
{
    struct delayed top = p->heap[0];
    struct delayed last = p->heap[--p->hlen];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct delayed *best = &last;
        if (l < p->hlen && delayed_before(&p->heap[l], best)) {
            m = l;
            best = &p->heap[l];
        }
        if (r < p->hlen && delayed_before(&p->heap[r], best))
            m = r;
        if (m == i)
            break;
        p->heap[i] = p->heap[m];
        i = m;
    }
    if (p->hlen > 0)
        p->heap[i] = last;
    return top;
}

static void ring_push(struct nr_pool *p, struct task t)
{
    p->ring[(p->head + p->len) % p->cap] = t;
    p->len++;
}

/* Move due delayed tasks into the FIFO while it has room.  Locked. */
static void promote_due(struct nr_pool *p, uint64_t now)
{
    while (p->hlen > 0 && p->len < p->cap && (p->heap[0].due_ns <= now || p->closing))
        ring_push(p, heap_pop(p).t);
}

static void *pool_main(void *arg)
{
    struct nr_pool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        promote_due(p, nr_mono_ns());
        if (p->len > 0) {
            struct task t = p->ring[p->head];
            p->head = (p->head + 1) % p->cap;
            p->len--;
            pthread_cond_signal(&p->space);
            if (p->len > 0 || p->hlen > 0)
                pthread_cond_signal(&p->work);
            pthread_mutex_unlock(&p->mu);
            t.fn(t.arg);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->closing && p->hlen == 0)
            break;
        if (p->hlen > 0) {
            struct timespec ts;
            nr_mono_timespec(p->heap[0].due_ns, &ts);
            pthread_cond_timedwait(&p->work, &p->mu, &ts);
        } else {
            pthread_cond_wait(&p->work, &p->mu);
        }
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct nr_pool *nr_pool_new(size_t nthreads, size_t queue_cap)
{
    struct nr_pool *p = nr_calloc(1, sizeof(*p));
    pthread_condattr_t ca;

    if (nthreads == 0)
        nthreads = 1;
    if (queue_cap == 0)
        queue_cap = 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, &ca);
    pthread_cond_init(&p->space, &ca);
    pthread_condattr_destroy(&ca);
    p->cap = queue_cap;
    p->ring = nr_calloc(queue_cap, sizeof(*p->ring));
    p->threads = nr_calloc(nthreads, sizeof(*p->threads));

    for (; p->nthreads < nthreads; p->nthreads++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        /* device tasks run libssh and probes: 256 KiB of stack is plenty and
         * keeps hundreds of threads cheap */
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int rc = pthread_create(&p->threads[p->nthreads], &attr, pool_main, p);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            pthread_setname_np(p->threads[p->nthreads], "nr-pool");
        if (rc != 0) {
            nr_pool_free(p);
            return NULL;
        }
    }
    return p;
}

static int submit(struct nr_pool *p, nr_task_fn fn, void *arg, bool wait)
{
    pthread_mutex_lock(&p->mu);
    while (wait && p->len == p->cap && !p->closing)
        pthread_cond_wait(&p->space, &p->mu);
    if (!p->closing && p->len == p->cap) {
        pthread_mutex_unlock(&p->mu);
        return NR_EFULL;
    }
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        return NR_ECLOSED;
    }
    ring_push(p, (struct task){ fn, arg });
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return NR_OK;
}

int nr_pool_submit(struct nr_pool *p, nr_task_fn fn, void *arg)
{
    return submit(p, fn, arg, true);
}

int nr_pool_try_submit(struct nr_pool *p, nr_task_fn fn, void *arg)
{
    return submit(p, fn, arg, false);
}

int nr_pool_submit_after(struct nr_pool *p, double delay_s, nr_task_fn fn, void *arg)
{
    if (delay_s <= 0)
        return nr_pool_submit(p, fn, arg);

    uint64_t due = nr_mono_ns() + (uint64_t)(delay_s * 1e9);

    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        return NR_ECLOSED;
    }
    heap_push(p, (struct delayed){ due, p->seq++, { fn, arg } });
    /* wake a thread so that it waits for the new, maybe earlier, deadline */
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return NR_OK;
}

size_t nr_pool_threads(const struct nr_pool *p)
{
    return p->nthreads;
}

void nr_pool_free(struct nr_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->space);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->space);
    free(p->ring);
    free(p->heap);
    free(p->threads);
    free(p);
}
