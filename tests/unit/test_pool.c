/* test_pool.c - the dispatcher pool: order, concurrency, back-pressure,
 * delayed tasks that hold no thread, and release. */
#include <check.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "netraven/pool.h"

static atomic_int counter;

static void count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counter, 1);
}

struct order {
    pthread_mutex_t mu;
    int seen[64];
    int n;
};

struct order_arg {
    struct order *o;
    int id;
};

static void order_task(void *arg)
{
    struct order_arg *a = arg;
    pthread_mutex_lock(&a->o->mu);
    a->o->seen[a->o->n++] = a->id;
    pthread_mutex_unlock(&a->o->mu);
}

static int order_count(struct order *o)
{
    pthread_mutex_lock(&o->mu);
    int n = o->n;
    pthread_mutex_unlock(&o->mu);
    return n;
}

START_TEST(fifo_order_single_thread)
{
    struct order o = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct order_arg args[32];
    struct nr_pool *p = nr_pool_new(1, 64);

    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 32; i++) {
        args[i] = (struct order_arg){ &o, i };
        ck_assert_int_eq(nr_pool_submit(p, order_task, &args[i]), 0);
    }
    nr_pool_free(p);
    ck_assert_int_eq(o.n, 32);
    for (int i = 0; i < 32; i++)
        ck_assert_int_eq(o.seen[i], i);
}
END_TEST

START_TEST(every_task_runs)
{
    struct nr_pool *p = nr_pool_new(8, 16);
    atomic_store(&counter, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(nr_pool_submit(p, count_task, NULL), 0);
    ck_assert_uint_eq(nr_pool_threads(p), 8);
    nr_pool_free(p);
    ck_assert_int_eq(atomic_load(&counter), 10000);
}
END_TEST

static sem_t gate;

static atomic_int started;

static void gated_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&started, 1);
    sem_wait(&gate);
    atomic_fetch_add(&counter, 1);
}

/* Wait (up to 10 s) until n gated tasks have started on pool threads. */
static void wait_started(int n)
{
    for (int i = 0; i < 1000 && atomic_load(&started) < n; i++)
        nr_sleep_s(0.01);
    ck_assert_int_eq(atomic_load(&started), n);
}

struct submitter {
    struct nr_pool *p;
    atomic_int done;
};

static void *submit_one(void *arg)
{
    struct submitter *s = arg;
    nr_pool_submit(s->p, count_task, NULL);
    atomic_store(&s->done, 1);
    return NULL;
}

START_TEST(full_queue_blocks_submitter)
{
    struct nr_pool *p = nr_pool_new(1, 2);
    struct submitter s = { .p = p };
    pthread_t th;

    atomic_store(&counter, 0);
    atomic_store(&started, 0);
    sem_init(&gate, 0, 0);
    ck_assert_int_eq(nr_pool_submit(p, gated_task, NULL), 0);   /* running, blocked */
    wait_started(1);
    ck_assert_int_eq(nr_pool_submit(p, gated_task, NULL), 0);   /* queued 1/2 */
    ck_assert_int_eq(nr_pool_submit(p, gated_task, NULL), 0);   /* queued 2/2 */
    pthread_create(&th, NULL, submit_one, &s);
    nr_sleep_s(0.2);
    ck_assert_int_eq(atomic_load(&s.done), 0);                  /* still waiting */
    sem_post(&gate);
    sem_post(&gate);
    sem_post(&gate);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&s.done), 1);
    nr_pool_free(p);
    ck_assert_int_eq(atomic_load(&counter), 4);
    sem_destroy(&gate);
}
END_TEST

/* try_submit never waits: a full queue is NR_EFULL, and nothing queued. */
START_TEST(try_submit_says_full)
{
    struct nr_pool *p = nr_pool_new(1, 2);

    atomic_store(&counter, 0);
    atomic_store(&started, 0);
    sem_init(&gate, 0, 0);
    ck_assert_int_eq(nr_pool_try_submit(p, gated_task, NULL), 0);   /* running, blocked */
    wait_started(1);
    ck_assert_int_eq(nr_pool_try_submit(p, gated_task, NULL), 0);   /* queued 1/2 */
    ck_assert_int_eq(nr_pool_try_submit(p, gated_task, NULL), 0);   /* queued 2/2 */
    ck_assert_int_eq(nr_pool_try_submit(p, gated_task, NULL), NR_EFULL);
    ck_assert_int_eq(nr_pool_try_submit(p, gated_task, NULL), NR_EFULL);
    sem_post(&gate);                                                /* one ends, one starts */
    for (int i = 0; i < 100 && nr_pool_try_submit(p, gated_task, NULL) == NR_EFULL; i++)
        nr_sleep_s(0.01);
    for (int i = 0; i < 3; i++)
        sem_post(&gate);
    nr_pool_free(p);
    ck_assert_int_eq(atomic_load(&counter), 4);
    sem_destroy(&gate);
}
END_TEST

struct stamp {
    uint64_t at;
};

static void stamp_task(void *arg)
{
    ((struct stamp *)arg)->at = nr_mono_ns();
}

START_TEST(delayed_task_holds_no_thread)
{
    struct nr_pool *p = nr_pool_new(1, 8);
    struct stamp late = { 0 }, early = { 0 };
    uint64_t t0 = nr_mono_ns();

    ck_assert_int_eq(nr_pool_submit_after(p, 0.3, stamp_task, &late), 0);
    ck_assert_int_eq(nr_pool_submit(p, stamp_task, &early), 0);
    nr_sleep_s(0.1);
    /* the only thread was free to run the immediate task */
    ck_assert_uint_ne(early.at, 0);
    ck_assert_uint_eq(late.at, 0);
    nr_sleep_s(0.4);
    ck_assert_uint_ne(late.at, 0);
    ck_assert_uint_ge(late.at - t0, 300000000ull);
    nr_pool_free(p);
}
END_TEST

START_TEST(delayed_order_by_deadline)
{
    struct order o = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct order_arg args[5];
    const double delays[5] = { 0.25, 0.05, 0.15, 0.10, 0.20 };
    /* one thread: the order seen is the order dispatched, which two
     * threads recording side by side on a loaded machine could swap */
    struct nr_pool *p = nr_pool_new(1, 8);

    for (int i = 0; i < 5; i++) {
        args[i] = (struct order_arg){ &o, i };
        ck_assert_int_eq(nr_pool_submit_after(p, delays[i], order_task, &args[i]), 0);
    }
    for (int waited = 0; waited < 100 && order_count(&o) < 5; waited++)
        nr_sleep_s(0.05);
    ck_assert_int_eq(order_count(&o), 5);
    const int want[5] = { 1, 3, 2, 4, 0 };
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(o.seen[i], want[i]);
    nr_pool_free(p);
}
END_TEST

START_TEST(free_runs_pending_delayed_tasks)
{
    struct nr_pool *p = nr_pool_new(2, 8);
    atomic_store(&counter, 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(nr_pool_submit_after(p, 30.0, count_task, NULL), 0);
    uint64_t t0 = nr_mono_ns();
    nr_pool_free(p);
    ck_assert_int_eq(atomic_load(&counter), 5);
    ck_assert_uint_lt(nr_mono_ns() - t0, 5000000000ull);
    nr_pool_free(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, fifo_order_single_thread);
    tcase_add_test(tc, every_task_runs);
    tcase_add_test(tc, full_queue_blocks_submitter);
    tcase_add_test(tc, try_submit_says_full);
    tcase_add_test(tc, delayed_task_holds_no_thread);
    tcase_add_test(tc, delayed_order_by_deadline);
    tcase_add_test(tc, free_runs_pending_delayed_tasks);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
