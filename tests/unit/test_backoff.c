/* test_backoff.c - the one backoff rule: start, doubling, cap, a success
 * that starts over, an outage said once, the time before the next try, and
 * the wait that a stop request ends at once. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include "netraven/backoff.h"

START_TEST(start_grow_cap)
{
    struct nr_backoff b;
    const double want[] = { 0.5, 1, 2, 4, 8, 10, 10, 10 };

    nr_backoff_init(&b, 0.5, 10);
    ck_assert(nr_backoff_due(&b));
    ck_assert_double_eq(nr_backoff_left(&b), 0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        ck_assert_double_eq(nr_backoff_delay(&b), want[i]);
        ck_assert_double_eq(nr_backoff_fail(&b), want[i]);
    }
    /* a success starts over */
    nr_backoff_ok(&b);
    ck_assert(nr_backoff_due(&b));
    ck_assert_double_eq(nr_backoff_fail(&b), 0.5);
    ck_assert_double_eq(nr_backoff_fail(&b), 1);

    /* the static form is the same; a cap below the start caps the start */
    struct nr_backoff s = NR_BACKOFF_INIT(0.5, 5);
    for (int i = 0; i < 4; i++)
        nr_backoff_fail(&s);
    ck_assert_double_eq(nr_backoff_fail(&s), 5);
    struct nr_backoff c = NR_BACKOFF_INIT(3, 2);
    ck_assert_double_eq(nr_backoff_fail(&c), 2);
    ck_assert_double_eq(nr_backoff_fail(&c), 2);
}
END_TEST

START_TEST(said_once_per_outage)
{
    struct nr_backoff b = NR_BACKOFF_INIT(0.5, 10);

    /* a success with no outage ends nothing */
    ck_assert(!nr_backoff_ok(&b));
    nr_backoff_fail(&b);
    ck_assert(nr_backoff_say(&b));
    for (int i = 0; i < 5; i++) {
        nr_backoff_fail(&b);
        ck_assert(!nr_backoff_say(&b));
    }
    ck_assert(nr_backoff_ok(&b));       /* the outage said is over */
    ck_assert(!nr_backoff_ok(&b));
    nr_backoff_fail(&b);
    ck_assert(nr_backoff_say(&b));      /* a new outage is said again */
    ck_assert(!nr_backoff_say(&b));
    /* failures never said end silently */
    struct nr_backoff q = NR_BACKOFF_INIT(0.5, 10);
    nr_backoff_fail(&q);
    ck_assert(!nr_backoff_ok(&q));
}
END_TEST

START_TEST(due_after_the_delay)
{
    struct nr_backoff b = NR_BACKOFF_INIT(0.2, 1);
    uint64_t t0 = nr_mono_ns();

    ck_assert_double_eq(nr_backoff_fail(&b), 0.2);
    ck_assert(!nr_backoff_due(&b));
    double left = nr_backoff_left(&b);
    ck_assert(left > 0.1 && left <= 0.2);
    /* the wait without a stop object sleeps it out */
    ck_assert(!nr_backoff_wait(&b, NULL));
    ck_assert(nr_backoff_due(&b));
    ck_assert_double_eq(nr_backoff_left(&b), 0);
    ck_assert_uint_ge(nr_mono_ns() - t0, 200000000ull);
}
END_TEST

START_TEST(wait_times_out)
{
    struct nr_backoff_stop s;
    struct nr_backoff b = NR_BACKOFF_INIT(0.3, 1);
    uint64_t t0;

    nr_backoff_stop_init(&s);
    ck_assert(!nr_backoff_stop_requested(&s));
    ck_assert(!nr_backoff_stop_requested(NULL));
    ck_assert_uint_eq(nr_backoff_stop_at(&s), 0);
    t0 = nr_mono_ns();
    nr_backoff_fail(&b);
    ck_assert(!nr_backoff_wait(&b, &s));
    ck_assert_uint_ge(nr_mono_ns() - t0, 300000000ull);
    ck_assert_uint_lt(nr_mono_ns() - t0, 2000000000ull);
    ck_assert(nr_backoff_due(&b));
    /* nothing left to wait: returns at once */
    t0 = nr_mono_ns();
    ck_assert(!nr_backoff_wait(&b, &s));
    ck_assert(!nr_backoff_sleep(&s, 0));
    ck_assert_uint_lt(nr_mono_ns() - t0, 100000000ull);
    nr_backoff_stop_clear(&s);
}
END_TEST

struct waiter {
    struct nr_backoff_stop *s;
    bool                    stopped;
    uint64_t                took_ns;
};

static void *wait_long(void *arg)
{
    struct waiter *w = arg;
    uint64_t t0 = nr_mono_ns();

    w->stopped = nr_backoff_sleep(w->s, 60);
    w->took_ns = nr_mono_ns() - t0;
    return NULL;
}

START_TEST(stop_wakes_every_waiter)
{
    struct nr_backoff_stop s;
    struct waiter w[3];
    pthread_t th[3];
    uint64_t before;

    nr_backoff_stop_init(&s);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){ .s = &s };
        ck_assert_int_eq(pthread_create(&th[i], NULL, wait_long, &w[i]), 0);
    }
    nr_sleep_s(0.2);
    before = nr_mono_ns();
    nr_backoff_stop_request(&s);
    ck_assert(nr_backoff_stop_requested(&s));
    uint64_t at = nr_backoff_stop_at(&s);
    ck_assert_uint_ge(at, before);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert(w[i].stopped);
        /* woken, not timed out: well under the 60 s asked */
        ck_assert_uint_lt(w[i].took_ns, 5000000000ull);
    }
    /* a second request keeps the time of the first */
    nr_sleep_s(0.01);
    nr_backoff_stop_request(&s);
    ck_assert_uint_eq(nr_backoff_stop_at(&s), at);
    /* once stopped, a wait returns at once, true */
    uint64_t t0 = nr_mono_ns();
    struct nr_backoff b = NR_BACKOFF_INIT(30, 30);
    nr_backoff_fail(&b);
    ck_assert(nr_backoff_wait(&b, &s));
    ck_assert(nr_backoff_sleep(&s, 30));
    ck_assert_uint_lt(nr_mono_ns() - t0, 100000000ull);
    nr_backoff_stop_clear(&s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("backoff");

    tcase_add_test(tc, start_grow_cap);
    tcase_add_test(tc, said_once_per_outage);
    tcase_add_test(tc, due_after_the_delay);
    tcase_add_test(tc, wait_times_out);
    tcase_add_test(tc, stop_wakes_every_waiter);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
