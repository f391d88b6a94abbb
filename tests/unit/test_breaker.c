/* test_breaker.c - the per-device circuit breaker: the threshold, open
 * refusals and their countdown, one trial when half-open (success closes,
 * failure re-opens, a trial handed back goes to the next caller), what
 * resets the count, the bound of the map, and many threads at once. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "netraven/breaker.h"

/* One attempt: acquire, then record outcome if allowed.  Returns the
 * verdict; *tr the transition (UNCHANGED when refused). */
static enum nr_breaker_verdict attempt(struct nr_breaker *b, long long dev, double now,
                                       enum nr_breaker_outcome o, enum nr_breaker_transition *tr)
{
    enum nr_breaker_verdict v = nr_breaker_acquire(b, dev, now, NULL);

    *tr = NR_BREAKER_UNCHANGED;
    if (v != NR_BREAKER_REJECT)
        *tr = nr_breaker_record(b, dev, v == NR_BREAKER_TRIAL, o, now, NULL);
    return v;
}

START_TEST(opens_at_the_threshold)
{
    struct nr_breaker *b = nr_breaker_new(3, 10.0, 100);
    struct nr_breaker_info info;
    enum nr_breaker_transition tr;

    /* an unknown device is closed and not tracked */
    ck_assert_int_eq(nr_breaker_peek(b, 7, 0, &info), NR_NOTFOUND);
    ck_assert_int_eq(nr_breaker_acquire(b, 7, 0, &info), NR_BREAKER_ALLOW);
    ck_assert_int_eq(info.state, NR_BREAKER_CLOSED);
    ck_assert(info.tracked);

    for (int i = 1; i <= 2; i++) {
        ck_assert_int_eq(attempt(b, 7, i, NR_BREAKER_FAILED, &tr), NR_BREAKER_ALLOW);
        ck_assert_int_eq(tr, NR_BREAKER_UNCHANGED);
        ck_assert_int_eq(nr_breaker_peek(b, 7, i, &info), 0);
        ck_assert_int_eq(info.state, NR_BREAKER_CLOSED);
        ck_assert_int_eq(info.failures, i);
    }
    ck_assert_int_eq(attempt(b, 7, 3, NR_BREAKER_FAILED, &tr), NR_BREAKER_ALLOW);
    ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);

    /* open: refused with the time left, no state change */
    ck_assert_int_eq(nr_breaker_acquire(b, 7, 4.5, &info), NR_BREAKER_REJECT);
    ck_assert_int_eq(info.state, NR_BREAKER_OPEN);
    ck_assert_int_eq(info.failures, 3);
    ck_assert_double_eq_tol(info.retry_in, 8.5, 1e-9);
    ck_assert_int_eq(nr_breaker_acquire(b, 7, 12.999, &info), NR_BREAKER_REJECT);
    ck_assert_double_eq_tol(info.retry_in, 0.001, 1e-9);

    /* other devices are not affected */
    ck_assert_int_eq(nr_breaker_acquire(b, 8, 5, NULL), NR_BREAKER_ALLOW);
    ck_assert_uint_eq(nr_breaker_size(b), 1);
    nr_breaker_free(b);
    nr_breaker_free(NULL);
}
END_TEST

START_TEST(threshold_one_and_bad_arguments)
{
    struct nr_breaker *b = nr_breaker_new(0, 1.0, 0);      /* taken as 1 and 1 */
    enum nr_breaker_transition tr;

    attempt(b, 1, 0, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);
    ck_assert_int_eq(nr_breaker_acquire(b, 1, 0.5, NULL), NR_BREAKER_REJECT);
    nr_breaker_free(b);
}
END_TEST

START_TEST(an_answer_resets_the_count)
{
    struct nr_breaker *b = nr_breaker_new(3, 10.0, 100);
    struct nr_breaker_info info;
    enum nr_breaker_transition tr;

    attempt(b, 1, 0, NR_BREAKER_FAILED, &tr);
    attempt(b, 1, 1, NR_BREAKER_FAILED, &tr);
    /* a refused login is an answer: the device is reachable */
    attempt(b, 1, 2, NR_BREAKER_ANSWERED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_UNCHANGED);
    ck_assert_int_eq(nr_breaker_peek(b, 1, 2, &info), NR_NOTFOUND);
    ck_assert_uint_eq(nr_breaker_size(b), 0);
    /* the count starts again: not consecutive */
    attempt(b, 1, 3, NR_BREAKER_FAILED, &tr);
    attempt(b, 1, 4, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_UNCHANGED);
    /* an attempt that never tested the device changes nothing */
    attempt(b, 1, 5, NR_BREAKER_NO_OUTCOME, &tr);
    ck_assert_int_eq(nr_breaker_peek(b, 1, 5, &info), 0);
    ck_assert_int_eq(info.failures, 2);
    attempt(b, 1, 6, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);
    nr_breaker_free(b);
}
END_TEST

START_TEST(half_open_lets_one_trial_through)
{
    struct nr_breaker *b = nr_breaker_new(2, 5.0, 100);
    struct nr_breaker_info info;
    enum nr_breaker_transition tr;

    attempt(b, 3, 0, NR_BREAKER_FAILED, &tr);
    attempt(b, 3, 1, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);           /* opened at t=1 */

    /* reset_timeout passed: exactly one caller gets the trial */
    ck_assert_int_eq(nr_breaker_acquire(b, 3, 6.0, &info), NR_BREAKER_TRIAL);
    ck_assert_int_eq(info.state, NR_BREAKER_HALF_OPEN);
    ck_assert_int_eq(nr_breaker_acquire(b, 3, 6.1, &info), NR_BREAKER_REJECT);
    ck_assert_int_eq(info.state, NR_BREAKER_HALF_OPEN);
    ck_assert_double_eq(info.retry_in, 0);
    /* the trial fails: open again, for a whole reset_timeout from now */
    tr = nr_breaker_record(b, 3, true, NR_BREAKER_FAILED, 7.0, &info);
    ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);
    ck_assert_int_eq(info.state, NR_BREAKER_OPEN);
    ck_assert_int_eq(nr_breaker_acquire(b, 3, 11.9, &info), NR_BREAKER_REJECT);
    ck_assert_double_eq_tol(info.retry_in, 0.1, 1e-9);

    /* next trial succeeds: closed, forgotten */
    ck_assert_int_eq(nr_breaker_acquire(b, 3, 12.0, NULL), NR_BREAKER_TRIAL);
    tr = nr_breaker_record(b, 3, true, NR_BREAKER_ANSWERED, 12.1, &info);
    ck_assert_int_eq(tr, NR_BREAKER_TO_CLOSED);
    ck_assert_int_eq(info.state, NR_BREAKER_CLOSED);
    ck_assert_int_eq(nr_breaker_acquire(b, 3, 12.2, NULL), NR_BREAKER_ALLOW);
    ck_assert_uint_eq(nr_breaker_size(b), 0);
    /* and needs the full threshold to open again */
    attempt(b, 3, 13, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(tr, NR_BREAKER_UNCHANGED);
    nr_breaker_free(b);
}
END_TEST

START_TEST(trial_handed_back_and_stale_reports)
{
    struct nr_breaker *b = nr_breaker_new(1, 1.0, 100);
    enum nr_breaker_transition tr;

    attempt(b, 9, 0, NR_BREAKER_FAILED, &tr);
    ck_assert_int_eq(nr_breaker_acquire(b, 9, 1.5, NULL), NR_BREAKER_TRIAL);
    /* a trial that never tested the device goes to the next caller */
    ck_assert_int_eq(nr_breaker_record(b, 9, true, NR_BREAKER_NO_OUTCOME, 1.6, NULL),
                     NR_BREAKER_UNCHANGED);
    ck_assert_int_eq(nr_breaker_acquire(b, 9, 1.7, NULL), NR_BREAKER_TRIAL);
    ck_assert_int_eq(nr_breaker_acquire(b, 9, 1.8, NULL), NR_BREAKER_REJECT);
    /* an attempt that started before it opened and fails now: no change */
    ck_assert_int_eq(nr_breaker_record(b, 9, false, NR_BREAKER_FAILED, 1.9, NULL),
                     NR_BREAKER_UNCHANGED);
    ck_assert_int_eq(nr_breaker_acquire(b, 9, 1.95, NULL), NR_BREAKER_REJECT);
    /* ... but if it got an answer, the device is back */
    ck_assert_int_eq(nr_breaker_record(b, 9, false, NR_BREAKER_ANSWERED, 2.0, NULL),
                     NR_BREAKER_TO_CLOSED);
    ck_assert_int_eq(nr_breaker_acquire(b, 9, 2.1, NULL), NR_BREAKER_ALLOW);

    /* a stale failure while open does not push the reset time back */
    attempt(b, 10, 0, NR_BREAKER_FAILED, &tr);
    nr_breaker_record(b, 10, false, NR_BREAKER_FAILED, 0.9, NULL);
    ck_assert_int_eq(nr_breaker_acquire(b, 10, 1.0, NULL), NR_BREAKER_TRIAL);
    nr_breaker_free(b);
}
END_TEST

START_TEST(map_is_bounded)
{
    struct nr_breaker *b = nr_breaker_new(2, 60.0, 16);
    struct nr_breaker_info info;
    enum nr_breaker_transition tr;

    /* 16 devices open */
    for (long long d = 1; d <= 16; d++) {
        attempt(b, d, (double)d, NR_BREAKER_FAILED, &tr);
        attempt(b, d, (double)d, NR_BREAKER_FAILED, &tr);
        ck_assert_int_eq(tr, NR_BREAKER_TO_OPEN);
    }
    ck_assert_uint_eq(nr_breaker_size(b), 16);
    /* full of open breakers: a new device is not tracked, and counted */
    tr = nr_breaker_record(b, 100, false, NR_BREAKER_FAILED, 20, &info);
    ck_assert_int_eq(tr, NR_BREAKER_UNCHANGED);
    ck_assert(!info.tracked);
    ck_assert_uint_eq(nr_breaker_untracked(b), 1);
    ck_assert_int_eq(nr_breaker_peek(b, 100, 20, &info), NR_NOTFOUND);
    ck_assert_uint_eq(nr_breaker_size(b), 16);

    /* close two of them; then closed devices with failures are evicted
     * oldest failure first, open ones never */
    for (long long d = 1; d <= 2; d++) {
        ck_assert_int_eq(nr_breaker_acquire(b, d, 100, NULL), NR_BREAKER_TRIAL);
        nr_breaker_record(b, d, true, NR_BREAKER_ANSWERED, 100, NULL);
    }
    ck_assert_uint_eq(nr_breaker_size(b), 14);
    nr_breaker_record(b, 200, false, NR_BREAKER_FAILED, 101, NULL);   /* closed, 1 failure */
    nr_breaker_record(b, 201, false, NR_BREAKER_FAILED, 102, NULL);
    ck_assert_uint_eq(nr_breaker_size(b), 16);
    nr_breaker_record(b, 202, false, NR_BREAKER_FAILED, 103, NULL);   /* evicts 200 */
    ck_assert_uint_eq(nr_breaker_size(b), 16);
    ck_assert_int_eq(nr_breaker_peek(b, 200, 103, &info), NR_NOTFOUND);
    ck_assert_int_eq(nr_breaker_peek(b, 201, 103, &info), 0);
    ck_assert_int_eq(nr_breaker_peek(b, 202, 103, &info), 0);
    for (long long d = 3; d <= 16; d++) {
        ck_assert_int_eq(nr_breaker_peek(b, d, 103, &info), 0);
        ck_assert_int_eq(info.state, NR_BREAKER_OPEN);
    }
    ck_assert_uint_eq(nr_breaker_untracked(b), 1);
    nr_breaker_free(b);
}
END_TEST

START_TEST(state_names)
{
    ck_assert_str_eq(nr_breaker_state_name(NR_BREAKER_CLOSED), "closed");
    ck_assert_str_eq(nr_breaker_state_name(NR_BREAKER_OPEN), "open");
    ck_assert_str_eq(nr_breaker_state_name(NR_BREAKER_HALF_OPEN), "half-open");
}
END_TEST

/* ---- many threads ------------------------------------------------------ */

#define THREADS 16
#define ROUNDS  2000

struct race {
    struct nr_breaker *b;
    pthread_barrier_t  go;
    atomic_int         opened, trials, closed, allowed;
};

/* Every thread fails the same device: the breaker opens exactly once. */
static void *fail_same_device(void *arg)
{
    struct race *r = arg;

    pthread_barrier_wait(&r->go);
    for (int i = 0; i < ROUNDS; i++) {
        enum nr_breaker_verdict v = nr_breaker_acquire(r->b, 42, 1.0, NULL);

        if (v == NR_BREAKER_REJECT)
            continue;
        atomic_fetch_add(&r->allowed, 1);
        if (nr_breaker_record(r->b, 42, v == NR_BREAKER_TRIAL, NR_BREAKER_FAILED, 1.0, NULL) ==
            NR_BREAKER_TO_OPEN)
            atomic_fetch_add(&r->opened, 1);
    }
    return NULL;
}

/* After the reset time, every thread asks at once: one trial. */
static void *ask_after_reset(void *arg)
{
    struct race *r = arg;

    pthread_barrier_wait(&r->go);
    for (int i = 0; i < ROUNDS; i++)
        if (nr_breaker_acquire(r->b, 42, 100.0, NULL) == NR_BREAKER_TRIAL)
            atomic_fetch_add(&r->trials, 1);
    return NULL;
}

/* Many devices at once, each failing and answering in turn. */
static void *churn(void *arg)
{
    struct race *r = arg;
    long long base = 1000 * (long long)atomic_fetch_add(&r->closed, 1);

    pthread_barrier_wait(&r->go);
    for (int i = 0; i < ROUNDS; i++) {
        long long dev = base + i % 50;
        enum nr_breaker_verdict v = nr_breaker_acquire(r->b, dev, 0, NULL);

        if (v != NR_BREAKER_REJECT)
            nr_breaker_record(r->b, dev, v == NR_BREAKER_TRIAL,
                              i % 3 == 2 ? NR_BREAKER_ANSWERED : NR_BREAKER_FAILED, 0, NULL);
    }
    return NULL;
}

static void run_threads(struct race *r, void *(*fn)(void *))
{
    pthread_t th[THREADS];

    pthread_barrier_init(&r->go, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, fn, r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r->go);
}

START_TEST(concurrent_threshold_and_single_trial)
{
    struct race r = { .b = nr_breaker_new(5, 10.0, 1000) };
    struct nr_breaker_info info;

    run_threads(&r, fail_same_device);
    ck_assert_int_eq(atomic_load(&r.opened), 1);
    /* at most threshold + (threads racing between acquire and record) got through */
    ck_assert_int_ge(atomic_load(&r.allowed), 5);
    ck_assert_int_lt(atomic_load(&r.allowed), 5 + THREADS);
    ck_assert_int_eq(nr_breaker_peek(r.b, 42, 1.0, &info), 0);
    ck_assert_int_eq(info.state, NR_BREAKER_OPEN);

    run_threads(&r, ask_after_reset);
    ck_assert_int_eq(atomic_load(&r.trials), 1);
    nr_breaker_free(r.b);
}
END_TEST

START_TEST(concurrent_churn_stays_bounded)
{
    struct race r = { .b = nr_breaker_new(3, 1000.0, 64) };

    run_threads(&r, churn);
    ck_assert_uint_le(nr_breaker_size(r.b), 64);
    nr_breaker_free(r.b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("state machine");
    TCase *tt = tcase_create("threads");

    tcase_add_test(tc, opens_at_the_threshold);
    tcase_add_test(tc, threshold_one_and_bad_arguments);
    tcase_add_test(tc, an_answer_resets_the_count);
    tcase_add_test(tc, half_open_lets_one_trial_through);
    tcase_add_test(tc, trial_handed_back_and_stale_reports);
    tcase_add_test(tc, map_is_bounded);
    tcase_add_test(tc, state_names);
    tcase_set_timeout(tt, 60);
    tcase_add_test(tt, concurrent_threshold_and_single_trial);
    tcase_add_test(tt, concurrent_churn_stays_bounded);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, tt);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
