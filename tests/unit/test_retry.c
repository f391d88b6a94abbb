/* test_retry.c - retry delays: base * 2^n plus a jitter within its bounds,
 * spread out rather than constant, the cap, and the floor that keeps every
 * retry in the pool's timer heap. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "netraven/retry.h"

START_TEST(doubling_with_bounded_jitter)
{
    uint64_t rng = nr_retry_seed(12345);

    for (unsigned n = 0; n < 6; n++) {
        double want = 0.5 * (double)(1u << n), lo = INFINITY, hi = 0, sum = 0;

        for (int i = 0; i < 20000; i++) {
            double d = nr_retry_delay(0.5, n, &rng);

            ck_assert_msg(d >= want && d < want * (1 + NR_RETRY_JITTER),
                          "retry %u: %.6f outside [%.3f, %.3f)", n, d, want,
                          want * (1 + NR_RETRY_JITTER));
            lo = fmin(lo, d);
            hi = fmax(hi, d);
            sum += d;
        }
        /* the jitter covers its range and is centred (uniform) */
        ck_assert_double_lt(lo, want * (1 + 0.01 * NR_RETRY_JITTER));
        ck_assert_double_gt(hi, want * (1 + 0.99 * NR_RETRY_JITTER));
        ck_assert_double_eq_tol(sum / 20000, want * (1 + NR_RETRY_JITTER / 2),
                                want * NR_RETRY_JITTER * 0.02);
    }
}
END_TEST

START_TEST(streams_differ)
{
    uint64_t a = nr_retry_seed(1), b = nr_retry_seed(2);
    int same = 0;

    for (int i = 0; i < 100; i++)
        same += nr_retry_delay(1.0, 1, &a) == nr_retry_delay(1.0, 1, &b);
    ck_assert_int_lt(same, 3);
    /* the same seed gives the same delays */
    a = nr_retry_seed(7);
    b = nr_retry_seed(7);
    for (int i = 0; i < 100; i++)
        ck_assert_double_eq(nr_retry_delay(1.0, 2, &a), nr_retry_delay(1.0, 2, &b));
}
END_TEST

START_TEST(cap_and_floor)
{
    uint64_t rng = nr_retry_seed(99);

    for (int i = 0; i < 1000; i++) {
        double d = nr_retry_delay(1.0, 100, &rng);

        ck_assert(d >= NR_RETRY_MAX_DELAY && d < NR_RETRY_MAX_DELAY * (1 + NR_RETRY_JITTER));
        ck_assert_double_eq(nr_retry_delay(0, 3, &rng), NR_RETRY_MIN_DELAY);
        ck_assert_double_eq(nr_retry_delay(-5, 0, &rng), NR_RETRY_MIN_DELAY);
        d = nr_retry_delay(1e-6, 0, &rng);
        ck_assert_double_eq(d, NR_RETRY_MIN_DELAY);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("backoff");

    tcase_add_test(tc, doubling_with_bounded_jitter);
    tcase_add_test(tc, streams_differ);
    tcase_add_test(tc, cap_and_floor);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
