/*
 * pool.h - the dispatcher's thread pool, shared by every run in flight.
 *
 * DESIGN
 *   thread_pool_size worker threads take tasks from one bounded FIFO
 *   (task_queue_size).  Delayed tasks (retry backoff) wait in a timer heap,
 *   not on a thread: a worker thread moves a task from the heap to the FIFO
 *   when its time comes.  nr_pool_submit() blocks the submitting thread (a
 *   run's coordinator, never a device task) while the FIFO is full; that is
 *   back-pressure, not a drop.
 *
 * Caller's steps:
 *   struct nr_pool *p = nr_pool_new(64, 4096);
 *   nr_pool_submit(p, fn, arg);            fn(arg) runs on a pool thread
 *   nr_pool_submit_after(p, 0.5, fn, arg); runs after 0.5 s
 *   nr_pool_free(p);                       runs what is queued, joins
 */
#ifndef NR_POOL_H
#define NR_POOL_H

#include "netraven/common.h"

struct nr_pool;

typedef void (*nr_task_fn)(void *arg);

/* Start nthreads threads.  NULL if a thread could not be started. */
struct nr_pool *nr_pool_new(size_t nthreads, size_t queue_cap);

/* Queue fn(arg).  0, or NR_ECLOSED once the pool is being freed. */
int nr_pool_submit(struct nr_pool *p, nr_task_fn fn, void *arg);

/* The same without waiting: NR_EFULL when the queue is full. */
int nr_pool_try_submit(struct nr_pool *p, nr_task_fn fn, void *arg);

/* Queue fn(arg) to run no earlier than delay_s from now.  0 or NR_ECLOSED. */
int nr_pool_submit_after(struct nr_pool *p, double delay_s, nr_task_fn fn, void *arg);

size_t nr_pool_threads(const struct nr_pool *p);

/* Run every queued task and every delayed one (at once, without waiting
 * for its time), stop the threads, free.  NULL ok. */
void nr_pool_free(struct nr_pool *p);

#endif /* NR_POOL_H */
