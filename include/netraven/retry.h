/*
 * retry.h - how long the dispatcher waits before it tries a device again:
 * exponential backoff with jitter (worker.retry_backoff, docs/netraven.md
 * §7.3: delay = base * 2^n).
 *
 * The wait is spent in the pool's timer heap (nr_pool_submit_after), never
 * on a thread.  The jitter spreads the retries of devices that failed
 * together (a switch that went down takes its neighbours' retries with it)
 * so that they do not all come back in the same millisecond.
 *
 * Caller's steps:
 *   uint64_t rng = nr_retry_seed(device_id ^ nr_mono_ns());    per task
 *   double d = nr_retry_delay(cfg->worker.retry_backoff, n, &rng);  n = 0, 1, ...
 */
#ifndef NR_RETRY_H
#define NR_RETRY_H

#include "netraven/common.h"

#define NR_RETRY_JITTER    0.2      /* up to this fraction of the delay is added */
#define NR_RETRY_MIN_DELAY 0.001    /* seconds: a retry always goes through the timer heap */
#define NR_RETRY_MAX_DELAY 3600.0   /* seconds: the cap of base * 2^n */

/* A generator state from any 64-bit value (0 is fine). */
uint64_t nr_retry_seed(uint64_t x);

/*
 * The delay before retry n (0 for the first retry): d = base_s * 2^n,
 * capped at NR_RETRY_MAX_DELAY, plus a jitter drawn uniformly from
 * [0, NR_RETRY_JITTER * d); never below NR_RETRY_MIN_DELAY (so base_s 0
 * still waits a millisecond, in the heap).  rng is advanced; it belongs
 * to one thread at a time.
 */
double nr_retry_delay(double base_s, unsigned n, uint64_t *rng);

#endif /* NR_RETRY_H */
