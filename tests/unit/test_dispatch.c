/* test_dispatch.c - the failure classes (failure.def: names, retries, what
 * the breaker records; a failed SSH session's class) and a device's task
 * on a real pool: retries of the retried classes only, details.attempts,
 * every attempt's logins, the breaker opening and refusing, and the
 * retries stopped by the breaker or by the worker shutting down. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/breaker.h"
#include "netraven/dispatch.h"
#include "netraven/failure.h"
#include "netraven/pool.h"
#include "netraven/ssh.h"

/* ---- the table ---------------------------------------------------------- */

/* What each class meant before it was a table row: the names NetRaven's UI
 * and the metrics read, and the policy of the failure kinds they had. */
static const struct {
    enum nr_failure_class   cls;
    const char             *name;
    bool                    retried;
    enum nr_breaker_outcome breaker;
} expected[] = {
    { NR_FAILURE_NONE, "ok", false, NR_BREAKER_NO_OUTCOME },
    { NR_FAILURE_REFUSED, "refused", true, NR_BREAKER_FAILED },
    { NR_FAILURE_UNREACHABLE, "unreachable", true, NR_BREAKER_FAILED },
    { NR_FAILURE_TIMEOUT, "timeout", true, NR_BREAKER_FAILED },
    { NR_FAILURE_LOST, "protocol", true, NR_BREAKER_FAILED },
    { NR_FAILURE_AUTH, "auth", false, NR_BREAKER_ANSWERED },
    { NR_FAILURE_HOST_KEY, "host key", false, NR_BREAKER_ANSWERED },
    { NR_FAILURE_HANDSHAKE, "protocol", false, NR_BREAKER_ANSWERED },
    { NR_FAILURE_OUTPUT_CAP, "output cap", false, NR_BREAKER_ANSWERED },
    { NR_FAILURE_NO_CREDENTIALS, "auth", false, NR_BREAKER_NO_OUTCOME },
    { NR_FAILURE_INPUT, "input", false, NR_BREAKER_NO_OUTCOME },
    { NR_FAILURE_INTERNAL, "protocol", false, NR_BREAKER_NO_OUTCOME },
    { NR_FAILURE_CIRCUIT_OPEN, "circuit open", false, NR_BREAKER_NO_OUTCOME },
};

START_TEST(table_rows)
{
    ck_assert_uint_eq(NR_ARRAY_LEN(expected), NR_FAILURE_COUNT);
    for (size_t i = 0; i < NR_ARRAY_LEN(expected); i++) {
        enum nr_failure_class c = expected[i].cls;

        ck_assert_ptr_nonnull(nr_failures[c].id);
        ck_assert_str_eq(nr_failure_name(c), expected[i].name);
        ck_assert_msg(nr_failure_retried(c) == expected[i].retried, "%s", nr_failures[c].id);
        ck_assert_int_eq(nr_failure_breaker(c), expected[i].breaker);
        /* what the breaker counts as a connection failure is what is
         * retried, and the other way round */
        ck_assert(nr_failure_retried(c) == (nr_failure_breaker(c) == NR_BREAKER_FAILED));
    }
    ck_assert_str_eq(nr_failure_name(NR_FAILURE_COUNT), "unknown");
    ck_assert_str_eq(nr_failure_name((enum nr_failure_class)-1), "unknown");
    ck_assert(!nr_failure_retried(NR_FAILURE_COUNT));
    ck_assert_int_eq(nr_failure_breaker(NR_FAILURE_COUNT), NR_BREAKER_NO_OUTCOME);
}
END_TEST

START_TEST(set_and_details)
{
    struct nr_failure f = { 0 };
    char big[1000];
    json_t *d = json_object();

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    nr_failure_set(&f, NR_FAILURE_TIMEOUT, "prompt", "%s", big);
    ck_assert_int_eq(f.cls, NR_FAILURE_TIMEOUT);
    ck_assert_str_eq(f.stage, "prompt");
    ck_assert_uint_eq(strlen(f.message), NR_FAILURE_MSGLEN - 1);

    /* a classified failure: error, class, stage; keys already there replaced */
    json_object_set_new(d, "class", json_string("stale"));
    nr_failure_set(&f, NR_FAILURE_HOST_KEY, "connect", "host key of %s changed", "r1");
    nr_failure_details(d, &f);
    ck_assert_str_eq(json_string_value(json_object_get(d, "error")), "host key of r1 changed");
    ck_assert_str_eq(json_string_value(json_object_get(d, "class")), "host key");
    ck_assert_str_eq(json_string_value(json_object_get(d, "stage")), "connect");
    ck_assert_uint_eq(json_object_size(d), 3);
    json_decref(d);

    /* not classified: the error alone; bytes that are not UTF-8 become '?' */
    d = json_object();
    nr_failure_set(&f, NR_FAILURE_NONE, "connect", "bad \xff byte");
    nr_failure_details(d, &f);
    ck_assert_str_eq(json_string_value(json_object_get(d, "error")), "bad ? byte");
    ck_assert_uint_eq(json_object_size(d), 1);
    json_decref(d);

    /* the dispatcher's own: circuit open at the dispatch stage */
    d = json_object();
    nr_failure_set(&f, NR_FAILURE_CIRCUIT_OPEN, "dispatch", "circuit open");
    nr_failure_details(d, &f);
    char *text = json_dumps(d, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"error\":\"circuit open\",\"class\":\"circuit open\","
                           "\"stage\":\"dispatch\"}");
    free(text);
    json_decref(d);
}
END_TEST

/* A failed session's class: the names of the session's log records, the
 * stage's name, errstr; a protocol failure at connect is the handshake
 * (not retried), later a session lost (retried). */
START_TEST(from_ssh)
{
    struct nr_ssh s;
    struct nr_failure f;

    memset(&s, 0, sizeof(s));
    nr_ssh_failure(&s, &f);
    ck_assert_int_eq(f.cls, NR_FAILURE_NONE);
    ck_assert_ptr_null(f.stage);
    ck_assert_str_eq(f.message, "");
    ck_assert_str_eq(nr_ssh_fail_name(NR_SSH_OK), nr_failure_name(NR_FAILURE_NONE));

    for (int e = NR_SSH_OK + 1; e < NR_SSH_FAIL_COUNT; e++)
        for (int st = 0; st < NR_SSH_STAGE_COUNT; st++) {
            memset(&s, 0, sizeof(s));
            s.err = (enum nr_ssh_fail)e;
            s.stage = (enum nr_ssh_stage)st;
            snprintf(s.errstr, sizeof(s.errstr), "failure %d at %d", e, st);
            memset(&f, 0xa5, sizeof(f));
            nr_ssh_failure(&s, &f);
            ck_assert_str_eq(nr_failure_name(f.cls), nr_ssh_fail_name(s.err));
            ck_assert_str_eq(f.stage, nr_ssh_stage_name(s.stage));
            ck_assert_str_eq(f.message, s.errstr);
            if (e == NR_SSH_PROTOCOL)
                ck_assert_int_eq(f.cls, st == NR_SSH_STAGE_CONNECT ? NR_FAILURE_HANDSHAKE
                                                                   : NR_FAILURE_LOST);
        }
    /* the kinds of old: unreachable connections and timeouts retried, the
     * device's refusals and what it would say again not */
    struct { enum nr_ssh_fail e; enum nr_ssh_stage st; bool retried; } kinds[] = {
        { NR_SSH_REFUSED, NR_SSH_STAGE_CONNECT, true },
        { NR_SSH_UNREACHABLE, NR_SSH_STAGE_CONNECT, true },
        { NR_SSH_TIMEOUT, NR_SSH_STAGE_COMMAND, true },
        { NR_SSH_PROTOCOL, NR_SSH_STAGE_COMMAND, true },
        { NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT, false },
        { NR_SSH_AUTH, NR_SSH_STAGE_AUTH, false },
        { NR_SSH_AUTH, NR_SSH_STAGE_ENABLE, false },
        { NR_SSH_HOSTKEY, NR_SSH_STAGE_CONNECT, false },
        { NR_SSH_OUTPUT_CAP, NR_SSH_STAGE_COMMAND, false },
    };
    for (size_t i = 0; i < NR_ARRAY_LEN(kinds); i++) {
        memset(&s, 0, sizeof(s));
        s.err = kinds[i].e;
        s.stage = kinds[i].st;
        nr_ssh_failure(&s, &f);
        ck_assert_msg(nr_failure_retried(f.cls) == kinds[i].retried, "case %zu", i);
    }
}
END_TEST

/* ---- a device's task -------------------------------------------------------- */

#define MAX_STEPS 8

/* A device's script: the class of each attempt in turn (NONE: success);
 * past the end, the last one again. */
struct script {
    enum nr_failure_class steps[MAX_STEPS];
    size_t                nsteps;
    atomic_int            calls;
    atomic_int            wrong_creds;  /* calls without the device's credentials */
    bool                  no_details;   /* the handler forgets its details */
};

static struct script scripts[8];

static void scripted(const struct nr_handler_ctx *ctx, struct nr_result *out)
{
    struct script *s = &scripts[ctx->device->id];
    int n = atomic_fetch_add(&s->calls, 1);
    enum nr_failure_class c = s->steps[(size_t)n < s->nsteps ? (size_t)n : s->nsteps - 1];

    /* no assertion here: this is a pool thread; the test checks the count */
    if (ctx->ncreds != (ctx->device->id % 2 ? 0u : 1u) ||
        (ctx->ncreds == 1 && ctx->creds->id != 5))
        atomic_fetch_add(&s->wrong_creds, 1);
    if (s->no_details)
        return;
    out->details = json_object();
    out->attempts[0].cred_id = 100 + n;
    out->attempts[0].success = c == NR_FAILURE_NONE;
    out->nattempts = 1;
    out->success = c == NR_FAILURE_NONE;
    if (!out->success) {
        nr_failure_set(&out->failure, c, "connect", "attempt %d failed", n + 1);
        nr_failure_details(out->details, &out->failure);
    }
}

static const struct nr_handler_def guarded_def = { "test", "test_handler", scripted, false, true };
static const struct nr_handler_def plain_def = { "test", "test_handler", scripted, false, false };

struct fixture {
    struct nr_config   cfg;
    struct nr_pool    *pool;
    struct nr_breaker *breaker;
    struct nr_backoff_stop closing;
    struct nr_job      job;
    struct nr_device   devs[8];
    struct nr_dispatch d;

    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             done;
    int             foreign;        /* done called with a task not ours */
};

static struct fixture fx;

static void on_done(struct nr_dispatch_task *t)
{
    pthread_mutex_lock(&fx.mu);
    fx.foreign += t->arg != &fx;
    fx.done++;
    pthread_cond_signal(&fx.cv);
    pthread_mutex_unlock(&fx.mu);
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    nr_backoff_stop_init(&fx.closing);
    memset(scripts, 0, sizeof(scripts));
    fx.cfg.worker.retry_attempts = 2;
    fx.cfg.worker.retry_backoff = 0;         /* the floor: a millisecond in the heap */
    fx.cfg.worker.circuit_breaker.failure_threshold = 3;
    fx.cfg.worker.circuit_breaker.reset_timeout = 60;
    fx.cfg.worker.circuit_breaker.max_devices = 16;
    fx.pool = nr_pool_new(2, 16);
    ck_assert_ptr_nonnull(fx.pool);
    fx.breaker = nr_breaker_new(3, 60, 16);
    fx.job.id = 9;
    fx.job.name = "unit";
    for (int i = 0; i < 8; i++) {
        fx.devs[i].id = i;
        fx.devs[i].hostname = "dev";
    }
    pthread_mutex_init(&fx.mu, NULL);
    pthread_cond_init(&fx.cv, NULL);
    fx.d = (struct nr_dispatch){
        .cfg = &fx.cfg, .pool = fx.pool, .breaker = fx.breaker, .closing = &fx.closing,
        .handler = &guarded_def, .job = &fx.job, .done = on_done,
    };
}

static void teardown(void)
{
    nr_pool_free(fx.pool);
    nr_breaker_free(fx.breaker);
    nr_backoff_stop_clear(&fx.closing);
    pthread_mutex_destroy(&fx.mu);
    pthread_cond_destroy(&fx.cv);
}

static void script(int dev, size_t n, const enum nr_failure_class *steps)
{
    memcpy(scripts[dev].steps, steps, n * sizeof(*steps));
    scripts[dev].nsteps = n;
}

/* Run one task on device dev to its end; t gets the final result. */
static void run(int dev, struct nr_dispatch_task *t)
{
    static const struct nr_credential cred = { .id = 5, .username = "u", .password = "p" };

    pthread_mutex_lock(&fx.mu);
    fx.done = 0;
    pthread_mutex_unlock(&fx.mu);
    nr_dispatch_task_init(t, &fx.d, &fx.devs[dev], dev % 2 ? NULL : &cred, dev % 2 ? 0 : 1);
    t->arg = &fx;
    ck_assert_int_eq(nr_dispatch_submit(t), 0);
    pthread_mutex_lock(&fx.mu);
    while (fx.done == 0)
        pthread_cond_wait(&fx.cv, &fx.mu);
    ck_assert_int_eq(fx.done, 1);
    ck_assert_int_eq(fx.foreign, 0);
    pthread_mutex_unlock(&fx.mu);
    ck_assert_ptr_nonnull(t->res.details);
    ck_assert_int_eq(atomic_load(&scripts[dev].wrong_creds), 0);
}

static const char *attempt_str(const struct nr_dispatch_task *t, size_t i, const char *key)
{
    json_t *a = json_array_get(json_object_get(t->res.details, "attempts"), i);

    ck_assert_ptr_nonnull(a);
    return json_string_value(json_object_get(a, key));
}

static size_t nattempts(const struct nr_dispatch_task *t)
{
    return json_array_size(json_object_get(t->res.details, "attempts"));
}

static json_int_t retries(const struct nr_dispatch_task *t)
{
    return json_integer_value(json_object_get(t->res.details, "retries"));
}

START_TEST(retried_until_it_works)
{
    static const enum nr_failure_class steps[] = {
        NR_FAILURE_TIMEOUT, NR_FAILURE_REFUSED, NR_FAILURE_NONE,
    };
    struct nr_dispatch_task t;

    script(2, NR_ARRAY_LEN(steps), steps);
    run(2, &t);
    ck_assert(t.res.success);
    ck_assert_int_eq(atomic_load(&scripts[2].calls), 3);
    ck_assert_uint_eq(nattempts(&t), 3);
    ck_assert_int_eq(retries(&t), 2);
    ck_assert_str_eq(attempt_str(&t, 0, "class"), "timeout");
    ck_assert_str_eq(attempt_str(&t, 0, "stage"), "connect");
    ck_assert_str_eq(attempt_str(&t, 0, "error"), "attempt 1 failed");
    ck_assert_str_eq(attempt_str(&t, 1, "class"), "refused");
    ck_assert_str_eq(attempt_str(&t, 2, "class"), "ok");
    ck_assert_ptr_null(attempt_str(&t, 2, "error"));
    for (size_t i = 0; i < 2; i++) {
        json_t *a = json_array_get(json_object_get(t.res.details, "attempts"), i);
        ck_assert(json_real_value(json_object_get(a, "retry_in_s")) >= 0.001);
    }
    /* every attempt's logins, in order, for the credential bookkeeping */
    ck_assert_uint_eq(t.res.nattempts, 3);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(t.res.attempts[i].cred_id, 100 + (long long)i);
        ck_assert(t.res.attempts[i].success == (i == 2));
    }
    ck_assert_ptr_null(json_object_get(t.res.details, "retry_stopped"));
    nr_dispatch_task_clear(&t);
    ck_assert_ptr_null(t.res.details);
}
END_TEST

START_TEST(not_retried)
{
    static const enum nr_failure_class classes[] = {
        NR_FAILURE_AUTH, NR_FAILURE_HOST_KEY, NR_FAILURE_HANDSHAKE, NR_FAILURE_OUTPUT_CAP,
        NR_FAILURE_NO_CREDENTIALS, NR_FAILURE_INPUT, NR_FAILURE_INTERNAL,
    };

    for (size_t i = 0; i < NR_ARRAY_LEN(classes); i++) {
        struct nr_dispatch_task t;

        atomic_store(&scripts[4].calls, 0);
        script(4, 1, &classes[i]);
        run(4, &t);
        ck_assert(!t.res.success);
        ck_assert_int_eq(t.res.failure.cls, classes[i]);
        ck_assert_int_eq(atomic_load(&scripts[4].calls), 1);
        ck_assert_uint_eq(nattempts(&t), 1);
        ck_assert_int_eq(retries(&t), 0);
        ck_assert_str_eq(attempt_str(&t, 0, "class"), nr_failure_name(classes[i]));
        ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "class")),
                         nr_failure_name(classes[i]));
        nr_dispatch_task_clear(&t);
    }
    /* none of them counted as a connection failure */
    struct nr_breaker_info bi;
    ck_assert_int_eq(nr_breaker_peek(fx.breaker, 4, 0, &bi), NR_NOTFOUND);
}
END_TEST

START_TEST(retries_spent)
{
    static const enum nr_failure_class lost = NR_FAILURE_LOST;
    struct nr_dispatch_task t;

    fx.cfg.worker.circuit_breaker.failure_threshold = 10;
    nr_breaker_free(fx.breaker);
    fx.breaker = fx.d.breaker = nr_breaker_new(10, 60, 16);
    script(1, 1, &lost);
    run(1, &t);
    ck_assert(!t.res.success);
    ck_assert_int_eq(atomic_load(&scripts[1].calls), 3);       /* 1 + retry_attempts */
    ck_assert_uint_eq(nattempts(&t), 3);
    ck_assert_int_eq(retries(&t), 2);
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "class")), "protocol");
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "error")),
                     "attempt 3 failed");
    /* spent is not stopped; the last attempt has no wait */
    ck_assert_ptr_null(json_object_get(t.res.details, "retry_stopped"));
    ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(t.res.details, "attempts"),
                                                      2), "retry_in_s"));
    nr_dispatch_task_clear(&t);
}
END_TEST

START_TEST(breaker_opens_then_refuses)
{
    static const enum nr_failure_class refused = NR_FAILURE_REFUSED;
    struct nr_breaker_info bi;
    struct nr_dispatch_task t;

    fx.cfg.worker.retry_attempts = 5;
    script(6, 1, &refused);
    run(6, &t);
    ck_assert_int_eq(atomic_load(&scripts[6].calls), 3);       /* the threshold */
    ck_assert_uint_eq(nattempts(&t), 3);
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "retry_stopped")),
                     "the circuit breaker opened");
    ck_assert_int_eq(nr_breaker_peek(fx.breaker, 6, nr_mono_ns() / 1e9, &bi), 0);
    ck_assert_int_eq(bi.state, NR_BREAKER_OPEN);
    nr_dispatch_task_clear(&t);

    /* the next task of the device: refused at once, the handler not run */
    run(6, &t);
    ck_assert_int_eq(atomic_load(&scripts[6].calls), 3);
    ck_assert(!t.res.success);
    ck_assert_int_eq(t.res.failure.cls, NR_FAILURE_CIRCUIT_OPEN);
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "class")), "circuit open");
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "stage")), "dispatch");
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "circuit")), "open");
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "hostname")), "dev");
    ck_assert_int_eq(json_integer_value(json_object_get(t.res.details, "consecutive_failures")),
                     3);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(t.res.details, "error")),
                                 "circuit open"));
    ck_assert_uint_eq(nattempts(&t), 1);
    ck_assert_str_eq(attempt_str(&t, 0, "class"), "circuit open");
    ck_assert_int_eq(retries(&t), 0);
    nr_dispatch_task_clear(&t);
}
END_TEST

/* A refused login is an answer: it resets the count of connection failures. */
START_TEST(an_answer_resets_the_count)
{
    static const enum nr_failure_class steps[] = {
        NR_FAILURE_TIMEOUT, NR_FAILURE_TIMEOUT, NR_FAILURE_AUTH,
    };
    struct nr_breaker_info bi;
    struct nr_dispatch_task t;

    script(0, NR_ARRAY_LEN(steps), steps);
    run(0, &t);
    ck_assert_int_eq(t.res.failure.cls, NR_FAILURE_AUTH);
    ck_assert_uint_eq(nattempts(&t), 3);
    ck_assert_int_eq(nr_breaker_peek(fx.breaker, 0, nr_mono_ns() / 1e9, &bi), NR_NOTFOUND);
    nr_dispatch_task_clear(&t);
}
END_TEST

START_TEST(stopped_by_shutdown)
{
    static const enum nr_failure_class timeout = NR_FAILURE_TIMEOUT;
    struct nr_dispatch_task t;

    nr_backoff_stop_request(&fx.closing);
    script(3, 1, &timeout);
    run(3, &t);
    ck_assert_int_eq(atomic_load(&scripts[3].calls), 1);
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "retry_stopped")),
                     "the worker is shutting down");
    nr_dispatch_task_clear(&t);
}
END_TEST

/* Not guarded (or no breaker): one attempt, whatever its class, and the
 * handler's details as they are. */
START_TEST(unguarded_runs_once)
{
    static const enum nr_failure_class timeout = NR_FAILURE_TIMEOUT;

    for (int k = 0; k < 2; k++) {
        struct nr_dispatch_task t;

        fx.d.handler = k == 0 ? &plain_def : &guarded_def;
        fx.d.breaker = k == 0 ? fx.breaker : NULL;
        atomic_store(&scripts[5].calls, 0);
        script(5, 1, &timeout);
        run(5, &t);
        ck_assert(!t.res.success);
        ck_assert_int_eq(atomic_load(&scripts[5].calls), 1);
        ck_assert_ptr_null(json_object_get(t.res.details, "attempts"));
        ck_assert_ptr_null(json_object_get(t.res.details, "retries"));
        ck_assert_uint_eq(t.res.nattempts, 1);
        nr_dispatch_task_clear(&t);
    }
}
END_TEST

START_TEST(no_details)
{
    static const enum nr_failure_class ok = NR_FAILURE_NONE;
    struct nr_dispatch_task t;

    script(2, 1, &ok);
    scripts[2].no_details = true;
    run(2, &t);
    ck_assert(!t.res.success);
    ck_assert_int_eq(t.res.failure.cls, NR_FAILURE_NONE);
    ck_assert_str_eq(json_string_value(json_object_get(t.res.details, "error")),
                     "handler returned no result details");
    ck_assert_ptr_null(json_object_get(t.res.details, "class"));
    ck_assert_uint_eq(nattempts(&t), 1);
    ck_assert_ptr_null(attempt_str(&t, 0, "class"));
    ck_assert_str_eq(attempt_str(&t, 0, "error"), "handler returned no result details");
    nr_dispatch_task_clear(&t);
}
END_TEST

static Suite *dispatch_suite(void)
{
    Suite *s = suite_create("dispatch");
    TCase *tab = tcase_create("failure");
    TCase *task = tcase_create("task");

    tcase_add_test(tab, table_rows);
    tcase_add_test(tab, set_and_details);
    tcase_add_test(tab, from_ssh);
    suite_add_tcase(s, tab);

    tcase_add_checked_fixture(task, setup, teardown);
    tcase_add_test(task, retried_until_it_works);
    tcase_add_test(task, not_retried);
    tcase_add_test(task, retries_spent);
    tcase_add_test(task, breaker_opens_then_refuses);
    tcase_add_test(task, an_answer_resets_the_count);
    tcase_add_test(task, stopped_by_shutdown);
    tcase_add_test(task, unguarded_runs_once);
    tcase_add_test(task, no_details);
    suite_add_tcase(s, task);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dispatch_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
