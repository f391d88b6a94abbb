/* retry.c - backoff delays with jitter (retry.h). */
#include "netraven/retry.h"

/* splitmix64: a good 64-bit generator in three lines, state one word. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t nr_retry_seed(uint64_t x)
{
    uint64_t s = x;

    return next(&s);
}

double nr_retry_delay(double base_s, unsigned n, uint64_t *rng)
{
    double d = base_s > 0 ? base_s : 0;
    double u = (double)(next(rng) >> 11) * 0x1.0p-53;      /* [0, 1) */

    for (unsigned i = 0; i < n && d < NR_RETRY_MAX_DELAY; i++)
        d *= 2;
    if (d > NR_RETRY_MAX_DELAY)
        d = NR_RETRY_MAX_DELAY;
    d += d * NR_RETRY_JITTER * u;
    return d < NR_RETRY_MIN_DELAY ? NR_RETRY_MIN_DELAY : d;
}
