/* test_metrics.c - the Prometheus text rendering (every family with HELP
 * and TYPE, label values escaped, histograms cumulative with +Inf equal to
 * the count, unknown values left out), the hooks that feed it (job
 * statuses and failure classes by name, the breaker gauge through the
 * breaker itself), metrics.listen validation, and the HTTP endpoint on a
 * loopback port (200 for /metrics, 404, 405) with PostgreSQL and Redis
 * absent (both reported down). */
#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netraven/breaker.h"
#include "netraven/metrics.h"

/* The value of the sample line that starts with `series ` (exactly), or
 * NAN when there is none. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

static char *render(const struct nr_metrics_snapshot *s)
{
    size_t len = 0;
    char *t = nr_metrics_render(s, &len);

    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(len, strlen(t));
    ck_assert(len > 0 && t[len - 1] == '\n');
    return t;
}

START_TEST(every_family_has_help_and_type_and_lines_are_well_formed)
{
    static const char *const families[][2] = {
        { "jobs_total", "counter" }, { "device_tasks_total", "counter" },
        { "backup_duration_seconds", "histogram" }, { "sessions_in_flight", "gauge" },
        { "queue_depth", "gauge" }, { "queue_oldest_age_seconds", "gauge" },
        { "log_rows_written_total", "counter" }, { "log_rows_spooled_total", "counter" },
        { "log_rows_dropped_total", "counter" }, { "session_events_dropped_total", "counter" },
        { "breakers_open", "gauge" }, { "postgres_up", "gauge" }, { "redis_up", "gauge" },
    };
    struct nr_metrics_snapshot s;
    char want[160];

    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.pg_up, -1);
    ck_assert_int_eq(s.redis_up, -1);
    char *t = render(&s);
    for (size_t i = 0; i < NR_ARRAY_LEN(families); i++) {
        snprintf(want, sizeof(want), "# HELP netraven_worker_%s ", families[i][0]);
        ck_assert_msg(strstr(t, want), "no HELP for %s", families[i][0]);
        snprintf(want, sizeof(want), "# TYPE netraven_worker_%s %s\n", families[i][0],
                 families[i][1]);
        ck_assert_msg(strstr(t, want), "no TYPE for %s", families[i][0]);
    }
    /* every other line is one sample: name[{labels}] value */
    int samples = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        ck_assert_msg(strncmp(line, "netraven_worker_", 16) == 0, "line: %s", line);
        char *sp = strrchr(line, ' '), *end;
        ck_assert_ptr_nonnull(sp);
        strtod(sp + 1, &end);
        ck_assert_msg(*end == '\0' && end > sp + 1, "no value: %s", line);
        samples++;
    }
    /* 9 statuses, 10 task series, 2 x 15 histogram lines, 1 gauge, the log
     * 3 + 1 + 3, drops, breakers; no queue and no up samples unprobed */
    ck_assert_int_eq(samples, 9 + 10 + 30 + 1 + 7 + 1 + 1);
    free(t);
}
END_TEST

START_TEST(hooks_count_by_name)
{
    struct nr_metrics_snapshot a, b;

    nr_metrics_snapshot_take(&a);
    nr_metrics_job_done("COMPLETED_SUCCESS");
    nr_metrics_job_done("COMPLETED_SUCCESS");
    nr_metrics_job_done("FAILED_CREDENTIAL_RESOLUTION");
    nr_metrics_job_done("SOMETHING_NEW");
    nr_metrics_job_done(NULL);
    nr_metrics_device_task(true, "timeout");        /* a success has no class */
    nr_metrics_device_task(false, "host key");
    nr_metrics_device_task(false, "circuit open");
    nr_metrics_device_task(false, NULL);
    nr_metrics_device_task(false, "weird");
    nr_metrics_add(NR_M_SESSIONS_IN_FLIGHT, 3);
    nr_metrics_add(NR_M_SESSIONS_IN_FLIGHT, -1);
    nr_metrics_add(NR_M_SESSION_EVENTS_DROPPED, 7);
    nr_metrics_add(NR_M_COUNT, 1);                   /* out of range: ignored */
    nr_metrics_snapshot_take(&b);

    ck_assert_uint_eq(b.jobs[0] - a.jobs[0], 2);
    ck_assert_str_eq(nr_metrics_job_status_names[7], "FAILED_CREDENTIAL_RESOLUTION");
    ck_assert_uint_eq(b.jobs[7] - a.jobs[7], 1);
    ck_assert_uint_eq(b.jobs[8] - a.jobs[8], 2);     /* "other" */
    ck_assert_uint_eq(b.tasks_ok - a.tasks_ok, 1);
    ck_assert_uint_eq(b.tasks_failed[5] - a.tasks_failed[5], 1);
    ck_assert_str_eq(nr_metrics_task_class_names[5], "host_key");
    ck_assert_uint_eq(b.tasks_failed[8] - a.tasks_failed[8], 1);
    ck_assert_uint_eq(b.tasks_failed[9] - a.tasks_failed[9], 2);
    ck_assert_uint_eq(b.tasks_failed[3] - a.tasks_failed[3], 0);
    ck_assert_int_eq(b.values[NR_M_SESSIONS_IN_FLIGHT] - a.values[NR_M_SESSIONS_IN_FLIGHT], 2);
    ck_assert_int_eq(b.values[NR_M_SESSION_EVENTS_DROPPED] -
                     a.values[NR_M_SESSION_EVENTS_DROPPED], 7);

    char *t = render(&b);
    ck_assert(sample(t, "netraven_worker_jobs_total{status=\"COMPLETED_SUCCESS\"}") ==
              (double)b.jobs[0]);
    ck_assert(sample(t, "netraven_worker_device_tasks_total{outcome=\"failure\","
                        "class=\"circuit_open\"}") == (double)b.tasks_failed[8]);
    ck_assert(sample(t, "netraven_worker_sessions_in_flight") ==
              (double)b.values[NR_M_SESSIONS_IN_FLIGHT]);
    free(t);
    nr_metrics_add(NR_M_SESSIONS_IN_FLIGHT, -2);
}
END_TEST

START_TEST(histogram_is_cumulative_and_le_inclusive)
{
    struct nr_metrics_snapshot a, b;

    nr_metrics_snapshot_take(&a);
    nr_metrics_backup_observe(true, 0.1);
    nr_metrics_backup_observe(true, 0.25);           /* on the bound: in le="0.25" */
    nr_metrics_backup_observe(true, 3);
    nr_metrics_backup_observe(true, 700);            /* past the last bound */
    nr_metrics_backup_observe(false, -1);            /* a clock oddity counts as 0 */
    nr_metrics_snapshot_take(&b);
    ck_assert_int_eq(a.backup[1].buckets[0], 0);     /* the suite runs in a fresh process */

    char *t = render(&b);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"success\","
                        "le=\"0.25\"}") == 2);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"success\","
                        "le=\"2\"}") == 2);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"success\","
                        "le=\"5\"}") == 3);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"success\","
                        "le=\"600\"}") == 3);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"success\","
                        "le=\"+Inf\"}") == 4);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_count{outcome=\"success\"}") == 4);
    ck_assert(fabs(sample(t, "netraven_worker_backup_duration_seconds_sum{outcome=\"success\"}")
                   - 703.35) < 1e-6);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_bucket{outcome=\"failure\","
                        "le=\"0.25\"}") == 1);
    ck_assert(sample(t, "netraven_worker_backup_duration_seconds_sum{outcome=\"failure\"}") == 0);
    free(t);
}
END_TEST

START_TEST(queues_log_sinks_and_up_gauges)
{
    struct nr_metrics_queue q[] = {
        { "stream", "netraven:jobs", 3, 12.5 },
        { "rq", "we\"ird\\na\nme", 1, NAN },         /* age unknown: left out */
        { "rq", "low", 0, 0 },
    };
    struct nr_metrics_snapshot s;

    nr_metrics_snapshot_take(&s);
    s.queues = q;
    s.nqueues = NR_ARRAY_LEN(q);
    s.pg_up = 0;
    s.redis_up = 1;
    memset(&s.log, 0, sizeof(s.log));
    s.log.out_written = 11;
    s.log.db_written = 20;
    s.log.db_recovered = 2;
    s.log.redis_published = 5;
    s.log.out_dropped = 1;
    s.log.db_dropped = 4;
    s.log.redis_dropped = 9;
    s.values[NR_M_LOG_DB_SPOOLED] = 6;
    s.values[NR_M_BREAKERS_OPEN] = 2;

    char *t = render(&s);
    ck_assert(sample(t, "netraven_worker_queue_depth{kind=\"stream\",queue=\"netraven:jobs\"}") == 3);
    ck_assert(sample(t, "netraven_worker_queue_oldest_age_seconds{kind=\"stream\","
                        "queue=\"netraven:jobs\"}") == 12.5);
    ck_assert(sample(t, "netraven_worker_queue_depth{kind=\"rq\",queue=\"we\\\"ird\\\\na\\nme\"}")
              == 1);
    ck_assert(strstr(t, "oldest_age_seconds{kind=\"rq\",queue=\"we") == NULL);
    ck_assert(sample(t, "netraven_worker_queue_oldest_age_seconds{kind=\"rq\",queue=\"low\"}") == 0);
    ck_assert(sample(t, "netraven_worker_log_rows_written_total{sink=\"stdout\"}") == 11);
    ck_assert(sample(t, "netraven_worker_log_rows_written_total{sink=\"db\"}") == 22);
    ck_assert(sample(t, "netraven_worker_log_rows_written_total{sink=\"redis\"}") == 5);
    ck_assert(sample(t, "netraven_worker_log_rows_spooled_total{sink=\"db\"}") == 6);
    ck_assert(sample(t, "netraven_worker_log_rows_dropped_total{sink=\"stdout\"}") == 1);
    ck_assert(sample(t, "netraven_worker_log_rows_dropped_total{sink=\"db\"}") == 4);
    ck_assert(sample(t, "netraven_worker_log_rows_dropped_total{sink=\"redis\"}") == 9);
    ck_assert(sample(t, "netraven_worker_breakers_open") == 2);
    ck_assert(sample(t, "netraven_worker_postgres_up") == 0);
    ck_assert(sample(t, "netraven_worker_redis_up") == 1);
    free(t);
}
END_TEST

START_TEST(breaker_gauge_follows_the_breakers)
{
    struct nr_metrics_snapshot s;
    struct nr_breaker *b = nr_breaker_new(2, 10.0, 100);
    long long base;

    nr_metrics_snapshot_take(&s);
    base = s.values[NR_M_BREAKERS_OPEN];
    nr_breaker_record(b, 1, false, NR_BREAKER_FAILED, 0, NULL);
    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.values[NR_M_BREAKERS_OPEN], base);          /* one failure: closed */
    nr_breaker_record(b, 1, false, NR_BREAKER_FAILED, 1, NULL);
    nr_breaker_record(b, 2, false, NR_BREAKER_FAILED, 1, NULL);
    nr_breaker_record(b, 2, false, NR_BREAKER_FAILED, 1, NULL);
    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.values[NR_M_BREAKERS_OPEN], base + 2);
    /* half-open, trial fails: open again, still one */
    ck_assert_int_eq(nr_breaker_acquire(b, 1, 20, NULL), NR_BREAKER_TRIAL);
    nr_breaker_record(b, 1, true, NR_BREAKER_FAILED, 20, NULL);
    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.values[NR_M_BREAKERS_OPEN], base + 2);
    /* answered: closed and gone */
    ck_assert_int_eq(nr_breaker_acquire(b, 1, 40, NULL), NR_BREAKER_TRIAL);
    nr_breaker_record(b, 1, true, NR_BREAKER_ANSWERED, 40, NULL);
    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.values[NR_M_BREAKERS_OPEN], base + 1);
    nr_breaker_free(b);
    nr_metrics_snapshot_take(&s);
    ck_assert_int_eq(s.values[NR_M_BREAKERS_OPEN], base);
}
END_TEST

static int load(struct nr_config *cfg, const char *listen, char **err)
{
    char l[128], *env[] = { l, "NETRAVEN_DATABASE__URL=postgresql://nobody@127.0.0.1:1/none",
                            "NETRAVEN_SCHEDULER__REDIS_URL=redis://127.0.0.1:1/0", NULL };

    snprintf(l, sizeof(l), "NETRAVEN_METRICS__LISTEN=%s", listen);
    return nr_config_load(cfg, NR_SOURCE_ROOT "/config", env, err);
}

START_TEST(listen_values_are_checked_at_load)
{
    static const char *const good[] = { "", "127.0.0.1:9108", ":9108", "[::1]:9108",
                                        "localhost:65535" };
    static const char *const bad[] = { "9108", "127.0.0.1:", "127.0.0.1:0", "h:65536",
                                       "h:12x", "::1:9108", "[::1:9108", "h:1234567" };
    struct nr_config cfg;
    char *err = NULL;

    for (size_t i = 0; i < NR_ARRAY_LEN(good); i++) {
        ck_assert_msg(load(&cfg, good[i], &err) == 0, "%s refused: %s", good[i], err);
        ck_assert_str_eq(cfg.metrics.listen, good[i]);
        nr_config_clear(&cfg);
    }
    for (size_t i = 0; i < NR_ARRAY_LEN(bad); i++) {
        ck_assert_msg(load(&cfg, bad[i], &err) < 0, "%s accepted", bad[i]);
        ck_assert_msg(strstr(err, "metrics.listen"), "error: %s", err);
        free(err);
        err = NULL;
    }
}
END_TEST

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* One HTTP/1.0 request; the whole answer, malloc'd. */
static char *http(int port, const char *request)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    size_t n = 0, cap = 1 << 16;
    char *buf = calloc(1, cap);
    ssize_t r;

    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    return buf;
}

START_TEST(http_endpoint_serves_metrics)
{
    struct nr_config cfg;
    char listen[64], err[256] = "", *e = NULL;
    int port = free_port();

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    ck_assert_msg(load(&cfg, listen, &e) == 0, "%s", e);
    struct nr_metrics_server *srv = nr_metrics_server_start(&cfg, err, sizeof(err));
    ck_assert_msg(srv != NULL, "%s", err);

    /* the same port again: refused, with the reason */
    char err2[256] = "";
    ck_assert_ptr_null(nr_metrics_server_start(&cfg, err2, sizeof(err2)));
    ck_assert_msg(strstr(err2, listen), "error: %s", err2);

    char *r = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    ck_assert_msg(strncmp(r, "HTTP/1.0 200", 12) == 0 || strncmp(r, "HTTP/1.1 200", 12) == 0,
                  "answer: %.200s", r);
    ck_assert(strstr(r, "text/plain; version=0.0.4"));
    char *body = strstr(r, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    ck_assert(sample(body + 4, "netraven_worker_postgres_up") == 0);   /* port 1: nobody */
    ck_assert(sample(body + 4, "netraven_worker_redis_up") == 0);
    ck_assert(strstr(body, "netraven_worker_queue_depth{") == NULL);   /* unknown: left out */
    free(r);

    r = http(port, "GET /nothing HTTP/1.0\r\n\r\n");
    ck_assert_msg(strstr(r, " 404 "), "answer: %.200s", r);
    free(r);
    r = http(port, "DELETE /metrics HTTP/1.0\r\n\r\n");
    ck_assert_msg(strstr(r, " 405 ") && strstr(r, "GET, HEAD"), "answer: %.200s", r);
    free(r);

    nr_metrics_server_stop(srv);
    nr_metrics_server_stop(NULL);
    /* stopped: the port is closed */
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ne(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);

    /* an address of no interface here */
    nr_config_clear(&cfg);
    ck_assert_int_eq(load(&cfg, "192.0.2.1:9108", &e), 0);
    ck_assert_ptr_null(nr_metrics_server_start(&cfg, err, sizeof(err)));
    ck_assert_msg(strstr(err, "192.0.2.1:9108"), "error: %s", err);
    nr_config_clear(&cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");

    tcase_add_test(tc, every_family_has_help_and_type_and_lines_are_well_formed);
    tcase_add_test(tc, hooks_count_by_name);
    tcase_add_test(tc, histogram_is_cumulative_and_le_inclusive);
    tcase_add_test(tc, queues_log_sinks_and_up_gauges);
    tcase_add_test(tc, breaker_gauge_follows_the_breakers);
    tcase_add_test(tc, listen_values_are_checked_at_load);
    tcase_add_test(tc, http_endpoint_serves_metrics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
