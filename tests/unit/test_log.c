/*
 * test_log.c - the log module without servers: catalog, router table,
 * template rendering, stdout (human and JSON) and the file sink.
 *
 * Tests that start the module capture stdout by pointing fd 1 at a file in
 * a scratch folder; Check runs each test in its own child process, so the
 * module's process-wide state starts fresh every time.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "netraven/log.h"
#include "../../src/log/log_i.h"   /* raw session records */

/* ---------------------------------------------------------------- helpers */

static char scratch[256];
static int saved_stdout = -1;

static void scratch_setup(void)
{
    const char *base = getenv("NR_TEST_SCRATCH");
    snprintf(scratch, sizeof(scratch), "%s/nr-log-XXXXXX", base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void scratch_teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", scratch);
}

static char *path_in(const char *name)
{
    return nr_asprintf("%s/%s", scratch, name);
}

/* fd 1 -> path until capture_end(). */
static void capture_begin(const char *path)
{
    int fd;

    fflush(stdout);
    saved_stdout = fcntl(1, F_DUPFD_CLOEXEC, 3);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 1);
    close(fd);
}

static void capture_end(void)
{
    fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
    saved_stdout = -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = nr_malloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* A config as the loader would leave it, built by hand. */
static void cfg_base(struct nr_config *c)
{
    memset(c, 0, sizeof(*c));
    c->logging.level = NR_LOG_INFO;
    c->logging.db_level = NR_LOG_INFO;
    c->logging.format = NR_LOG_FORMAT_HUMAN;
    c->logging.queue_size = 1024;
    c->logging.db_batch_size = 100;
    c->logging.redis.queue_size = 256;
}

/* A database nobody listens on: the DB sink exists but never connects
 * unless records reach it. */
static char dead_db[] = "postgresql://nr:secret@127.0.0.1:1/none";
static char dead_redis[] = "redis://127.0.0.1:1/0";

/* ---------------------------------------------------------------- catalog */

/* The worker-side rows of the logging audit and their log type
 * (docs/netraven.md §4.4). */
static const struct { int row; enum nr_log_type type; } audit_rows[] = {
    { 2, NR_LOG_JOB }, { 3, NR_LOG_JOB }, { 4, NR_LOG_JOB }, { 5, NR_LOG_JOB },
    { 6, NR_LOG_JOB }, { 7, NR_LOG_JOB }, { 8, NR_LOG_JOB }, { 9, NR_LOG_JOB },
    { 11, NR_LOG_CONNECTION }, { 12, NR_LOG_CONNECTION },
    { 13, NR_LOG_JOB }, { 14, NR_LOG_JOB }, { 15, NR_LOG_JOB }, { 16, NR_LOG_JOB },
    { 17, NR_LOG_JOB }, { 18, NR_LOG_JOB },
    { 79, NR_LOG_JOB }, { 80, NR_LOG_JOB }, { 81, NR_LOG_JOB }, { 82, NR_LOG_JOB },
    { 83, NR_LOG_JOB }, { 84, NR_LOG_JOB }, { 85, NR_LOG_JOB }, { 86, NR_LOG_JOB },
    { 87, NR_LOG_JOB }, { 88, NR_LOG_JOB }, { 89, NR_LOG_JOB },
    { 91, NR_LOG_JOB }, { 92, NR_LOG_JOB }, { 93, NR_LOG_JOB },
    /* audit 100: Netmiko session log, the session type (docs/netraven.md
     * §4.2) */
    { 100, NR_LOG_SESSION },
};

START_TEST(catalog_covers_audit)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(audit_rows); i++) {
        int found = 0;
        for (int e = 0; e < NR_EV_COUNT; e++) {
            if (nr_events[e].audit != audit_rows[i].row)
                continue;
            found++;
            ck_assert_msg(nr_events[e].type == audit_rows[i].type,
                          "audit row %d: event %s has type %d, audit says %d",
                          audit_rows[i].row, nr_events[e].name, nr_events[e].type,
                          audit_rows[i].type);
        }
        ck_assert_msg(found > 0, "audit row %d has no event", audit_rows[i].row);
    }
}
END_TEST

START_TEST(catalog_rows_well_formed)
{
    for (int e = 0; e < NR_EV_COUNT; e++) {
        const struct nr_event_def *d = &nr_events[e];
        ck_assert_ptr_nonnull(d->name);
        ck_assert_ptr_nonnull(d->tmpl);
        ck_assert_ptr_nonnull(d->source);
        ck_assert_msg(strlen(d->source) > 0 && strlen(d->source) <= 64, "%s source", d->name);
        ck_assert_int_lt(d->type, NR_LOG_TYPE_COUNT);
        ck_assert_int_lt(d->level, NR_LOG_LEVEL_COUNT);
        for (int f = 0; f < e; f++)
            ck_assert_msg(strcmp(nr_events[f].name, d->name) != 0, "duplicate %s", d->name);
    }
}
END_TEST

/* Every {name} is a lower snake_case key, and braces always pair. */
START_TEST(catalog_template_keys)
{
    for (int e = 0; e < NR_EV_COUNT; e++) {
        const char *t = nr_events[e].tmpl;
        for (const char *p = t; *p; p++) {
            const char *q;
            ck_assert_msg(*p != '}', "%s: stray '}' in \"%s\"", nr_events[e].name, t);
            if (*p != '{')
                continue;
            q = p + 1;
            ck_assert_msg(*q >= 'a' && *q <= 'z', "%s: key must start lower-case: %s",
                          nr_events[e].name, t);
            while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '_')
                q++;
            ck_assert_msg(*q == '}', "%s: bad key in \"%s\"", nr_events[e].name, t);
            p = q;
        }
    }
}
END_TEST

/* Rendering every template with a value for each of its keys leaves no
 * {name} behind. */
START_TEST(catalog_templates_render)
{
    for (int e = 0; e < NR_EV_COUNT; e++) {
        const char *t = nr_events[e].tmpl;
        struct nr_kv kv[16];
        char keys[16][64];
        size_t n = 0;
        char *out;

        for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{')) {
            const char *q = strchr(p, '}');
            size_t len = (size_t)(q - p - 1);
            ck_assert_uint_lt(n, 16);
            memcpy(keys[n], p + 1, len);
            keys[n][len] = '\0';
            kv[n] = NR_S(keys[n], "V");
            n++;
        }
        out = nr_log_render(t, 12, 34, kv, n);
        ck_assert_msg(strchr(out, '{') == NULL, "%s rendered as \"%s\"", nr_events[e].name, out);
        free(out);
    }
}
END_TEST

START_TEST(render_values)
{
    struct nr_kv kv[] = {
        NR_S("job_name", "core backup"), NR_I("device_count", 3), NR_D("rate", 62.5),
        NR_B("ok", 1), NR_J("detail", "{\"a\":[1,2]}"),
    };
    char *s;

    s = nr_log_render("Job '{job_name}' will process {device_count} devices", 5, 0, kv, 5);
    ck_assert_str_eq(s, "Job 'core backup' will process 3 devices");
    free(s);
    s = nr_log_render("{rate}% {ok} {detail} job {job_id} dev {device_id}", 7, 9, kv, 5);
    ck_assert_str_eq(s, "62.5% true {\"a\":[1,2]} job 7 dev 9");
    free(s);
    s = nr_log_render("keep {unknown} and { braces } {", 1, 2, kv, 5);
    ck_assert_str_eq(s, "keep {unknown} and { braces } {");
    free(s);
    s = nr_log_render("no keys", 0, 0, NULL, 0);
    ck_assert_str_eq(s, "no keys");
    free(s);
    /* a kv named job_id wins over the record's id */
    s = nr_log_render("job {job_id}", 7, 0, (struct nr_kv[]){ NR_I("job_id", 99) }, 1);
    ck_assert_str_eq(s, "job 99");
    free(s);
    /* invalid UTF-8 in a value comes out clean */
    s = nr_log_render("{x}", 0, 0, (struct nr_kv[]){ NR_S("x", "a\xff" "b") }, 1);
    ck_assert_str_eq(s, "a\xEF\xBF\xBD" "b");
    free(s);
}
END_TEST

/* ---------------------------------------------------------------- router */

START_TEST(router_default_routes)
{
    ck_assert_uint_eq(nr_log_default_route(NR_LOG_JOB) & (NR_SINK_STDOUT | NR_SINK_DB),
                      NR_SINK_STDOUT | NR_SINK_DB);
    ck_assert_uint_eq(nr_log_default_route(NR_LOG_JOB) & NR_SINK_REDIS, 0);
    ck_assert_uint_eq(nr_log_default_route(NR_LOG_CONNECTION) & (NR_SINK_STDOUT | NR_SINK_DB),
                      NR_SINK_STDOUT | NR_SINK_DB);
    ck_assert_uint_eq(nr_log_default_route(NR_LOG_SESSION) & (NR_SINK_STDOUT | NR_SINK_REDIS | NR_SINK_DB),
                      NR_SINK_STDOUT | NR_SINK_REDIS);
    ck_assert_uint_eq(nr_log_default_route(NR_LOG_SYSTEM) & (NR_SINK_DB | NR_SINK_REDIS), 0);
    for (int t = 0; t < NR_LOG_TYPE_COUNT; t++)
        ck_assert(nr_log_default_route(t) & NR_SINK_STDOUT);
}
END_TEST

START_TEST(router_table_defaults)
{
    struct nr_config c;

    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), 0);     /* before init */
    cfg_base(&c);
    c.database.url = dead_db;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), NR_SINK_STDOUT | NR_SINK_DB);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_CONN_CONNECTING), NR_SINK_STDOUT | NR_SINK_DB);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SYS_STARTING), NR_SINK_STDOUT);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_HANDLE_DEVICE), 0);   /* debug < info */
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), 0);    /* no redis, not debug */
    ck_assert(!nr_log_enabled(NR_EV_SESSION_DATA));
    ck_assert(nr_log_enabled(NR_EV_JOB_FAILED));
    nr_log_shutdown();
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), 0);     /* after release */
    ck_assert(!nr_log_enabled(NR_EV_JOB_STARTED));
}
END_TEST

START_TEST(router_file_default)
{
    struct nr_config c;
    char *file = path_in("a/b/worker.log");
    char *out = path_in("stdout");

    cfg_base(&c);
    c.logging.file = file;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int e = 0; e < NR_EV_COUNT; e++) {
        unsigned s = nr_log_sinks(e);
        ck_assert_msg(!!(s & NR_SINK_STDOUT) == !!(s & NR_SINK_FILE), "%s", nr_events[e].name);
        ck_assert_uint_eq(s & NR_SINK_DB, 0);                  /* no database.url */
    }
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SYS_STARTING), NR_SINK_STDOUT | NR_SINK_FILE);
    nr_log_shutdown();

    /* a route from the config that leaves the file out is obeyed */
    c.logging.level = NR_LOG_DEBUG;
    c.logging.routes[NR_LOG_SESSION] = NR_SINK_STDOUT | NR_SINK_REDIS;
    c.logging.routes[NR_LOG_JOB] = NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_DB;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), NR_SINK_STDOUT);   /* no redis url */
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), NR_SINK_STDOUT | NR_SINK_FILE);
    nr_log_shutdown();
    capture_end();
    free(file);
    free(out);
}
END_TEST

/* routes as YAML would set them (logging.routes.job: [stdout] ...). */
START_TEST(router_overrides)
{
    struct nr_config c;

    cfg_base(&c);
    c.database.url = dead_db;
    c.logging.routes[NR_LOG_JOB] = NR_SINK_STDOUT;                  /* job: stdout only */
    c.logging.routes[NR_LOG_CONNECTION] = NR_SINK_DB;               /* no stdout named */
    c.logging.routes[NR_LOG_SYSTEM] = NR_SINK_STDOUT | NR_SINK_DB;  /* system to the DB too */
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), NR_SINK_STDOUT);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_CONN_CONNECTING), NR_SINK_STDOUT | NR_SINK_DB);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SYS_STARTING), NR_SINK_STDOUT | NR_SINK_DB);
    /* stdout is always part of every route */
    for (int e = 0; e < NR_EV_COUNT; e++)
        if (nr_events[e].type != NR_LOG_SESSION && nr_events[e].level >= NR_LOG_INFO)
            ck_assert_msg(nr_log_sinks(e) & NR_SINK_STDOUT, "%s", nr_events[e].name);
    nr_log_shutdown();
}
END_TEST

START_TEST(router_thresholds)
{
    struct nr_config c;

    cfg_base(&c);
    c.database.url = dead_db;
    c.logging.level = NR_LOG_WARNING;
    c.logging.db_level = NR_LOG_ERROR;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), 0);                         /* info */
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_NO_DEVICES), NR_SINK_STDOUT);         /* warning */
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_FAILED), NR_SINK_STDOUT | NR_SINK_DB); /* error */
    nr_log_shutdown();

    cfg_base(&c);
    c.database.url = dead_db;
    c.logging.level = NR_LOG_ERROR;
    c.logging.db_level = NR_LOG_DEBUG;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_HANDLE_DEVICE), NR_SINK_DB);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_JOB_STARTED), NR_SINK_DB);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SYS_STARTING), 0);
    nr_log_shutdown();
}
END_TEST

START_TEST(router_session_rule)
{
    struct nr_config c;

    /* debug: stdout and Redis */
    cfg_base(&c);
    c.logging.level = NR_LOG_DEBUG;
    c.logging.redis.enabled = true;
    c.scheduler.redis_url = dead_redis;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), NR_SINK_STDOUT | NR_SINK_REDIS);
    nr_log_shutdown();

    /* info: Redis only; never the DB */
    cfg_base(&c);
    c.database.url = dead_db;
    c.logging.db_level = NR_LOG_DEBUG;
    c.logging.redis.enabled = true;
    c.scheduler.redis_url = dead_redis;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), NR_SINK_REDIS);
    nr_log_shutdown();

    /* Redis disabled, info: nothing, and nr_log_session is a no-op */
    cfg_base(&c);
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert(!nr_log_enabled(NR_EV_SESSION_DATA));
    nr_log_session(1, 2, "rx", "abc", 3);
    nr_log_shutdown();
    {
        struct nr_log_stats st;
        nr_log_get_stats(&st);
        ck_assert_uint_eq(st.emitted[NR_LOG_SESSION], 0);
    }
}
END_TEST

/* logging.redis.host names the publisher's Redis; scheduler.redis_url is
 * then not needed. */
START_TEST(router_redis_host)
{
    struct nr_config c;

    cfg_base(&c);
    c.logging.redis.enabled = true;
    c.logging.redis.host = "127.0.0.1";
    c.logging.redis.port = 1;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), NR_SINK_REDIS);
    nr_log_shutdown();

    /* disabled: the host is not enough */
    cfg_base(&c);
    c.logging.redis.host = "127.0.0.1";
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), 0);
    nr_log_shutdown();

    /* an empty host is unset: the queues' Redis, when there is one */
    cfg_base(&c);
    c.logging.redis.enabled = true;
    c.logging.redis.host = "";
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), 0);
    nr_log_shutdown();
    c.scheduler.redis_url = dead_redis;
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_uint_eq(nr_log_sinks(NR_EV_SESSION_DATA), NR_SINK_REDIS);
    nr_log_shutdown();
}
END_TEST

START_TEST(lifecycle_again)
{
    struct nr_config c;
    char *out = path_in("stdout");

    cfg_base(&c);
    capture_begin(out);
    nr_log_shutdown();                      /* before init: harmless */
    ck_assert_int_eq(nr_log_init(&c), 0);
    ck_assert_int_eq(nr_log_init(&c), NR_ERR);  /* once */
    NR_LOG(NR_EV_SYS_STOPPED, 0, 0);
    nr_log_shutdown();
    nr_log_shutdown();
    NR_LOG(NR_EV_SYS_STOPPED, 0, 0);        /* after release: dropped quietly */
    ck_assert_int_eq(nr_log_flush(1), 0);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_SYS_STOPPED, 0, 0);
    nr_log_shutdown();
    capture_end();
    {
        char *text = slurp(out);
        ck_assert_int_eq(count_of(text, "netraven-worker stopped"), 2);
        free(text);
    }
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- stdout */

START_TEST(stdout_human)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *text;

    cfg_base(&c);
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_TASK_SUBMITTED, 5, 3, NR_S("device_name", "r1"), NR_S("job_name", "nightly"));
    NR_LOG(NR_EV_SYS_ERROR, 0, 0, NR_S("what", "multi"), NR_S("error", "line one\nline two"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ck_assert_ptr_nonnull(strstr(text, "Z INFO    job        dispatcher  [job=5 device=3 tid="));
    ck_assert_ptr_nonnull(strstr(text, "] Submitting task for device 'r1' in job 'nightly'\n"));
    ck_assert_ptr_nonnull(strstr(text, "Z ERROR   system     main        [tid="));
    ck_assert_ptr_nonnull(strstr(text, "multi: line one line two\n"));
    ck_assert_int_eq(count_lines(text), 2);
    free(text);
    free(out);
}
END_TEST

static json_t *find_line(const char *text, const char *message_part)
{
    const char *p = text;

    while (*p) {
        const char *nl = strchr(p, '\n');
        json_error_t err;
        json_t *o;

        ck_assert_ptr_nonnull(nl);
        o = json_loadb(p, (size_t)(nl - p), 0, &err);
        ck_assert_msg(o != NULL, "not JSON: %.*s (%s)", (int)(nl - p), p, err.text);
        if (strstr(json_string_value(json_object_get(o, "message")), message_part))
            return o;
        json_decref(o);
        p = nl + 1;
    }
    return NULL;
}

START_TEST(stdout_json)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *text;
    json_t *o, *meta;
    const char *ts;

    cfg_base(&c);
    c.logging.format = NR_LOG_FORMAT_JSON;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_TASKS_DONE, 5, 0, NR_S("job_name", "nightly \"q\""),
           NR_D("success_rate", 66.5), NR_I("succeeded", 2), NR_I("total", 3),
           NR_J("detail", "{\"a\":[1,2]}"), NR_B("partial", 1));
    NR_LOG(NR_EV_CONN_CONNECTING, 5, 3, NR_S("device_name", "r\x01" "1\xff"),
           NR_S("host", "10.0.0.1"), NR_I("port", 22));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ck_assert_int_eq(count_lines(text), 2);
    o = find_line(text, "All device tasks completed");
    ck_assert_ptr_nonnull(o);
    ts = json_string_value(json_object_get(o, "timestamp"));
    ck_assert_ptr_nonnull(ts);
    ck_assert_uint_eq(strlen(ts), 27);
    ck_assert_int_eq(ts[26], 'Z');
    ck_assert_str_eq(json_string_value(json_object_get(o, "log_type")), "job");
    ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "INFO");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "job_id")), 5);
    ck_assert(json_is_null(json_object_get(o, "device_id")));
    ck_assert_str_eq(json_string_value(json_object_get(o, "source")), "dispatcher");
    ck_assert_str_eq(json_string_value(json_object_get(o, "message")),
                     "All device tasks completed for job 'nightly \"q\"'. Success rate: 66.5% (2/3)");
    meta = json_object_get(o, "meta");
    ck_assert(json_is_object(meta));
    ck_assert_str_eq(json_string_value(json_object_get(meta, "job_name")), "nightly \"q\"");
    ck_assert(json_real_value(json_object_get(meta, "success_rate")) == 66.5);
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "total")), 3);
    ck_assert(json_is_true(json_object_get(meta, "partial")));
    ck_assert_int_eq(json_integer_value(json_array_get(
        json_object_get(json_object_get(meta, "detail"), "a"), 1)), 2);
    ck_assert_uint_eq(json_object_size(o), 8);
    json_decref(o);

    o = find_line(text, "Connecting to");
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "log_type")), "connection");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "device_id")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "meta"), "device_name")),
                     "r\x01" "1\xEF\xBF\xBD");
    json_decref(o);
    free(text);
    free(out);
}
END_TEST

/* meta is written without jansson, and reads the same text as jansson
 * writes for the same object built key by key: escapes, integers, doubles
 * (17 digits, ".0", exponents), booleans, embedded JSON, text that is not
 * JSON, NULL strings, and a key given twice (its last value, first place). */
START_TEST(meta_text_as_jansson_writes)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *text, *line, *want, *end;
    json_t *o = json_object();
    const char *tricky = "q\"b\\s/\b\f\n\r\t\x01\x1b\x7f \xc3\xa9";

    cfg_base(&c);
    c.logging.format = NR_LOG_FORMAT_JSON;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_TASKS_DONE, 5, 0, NR_S("job_name", tricky), NR_D("success_rate", 66.5),
           NR_I("succeeded", -9223372036854775807LL - 1), NR_I("total", 3),
           NR_D("a", 806.123), NR_D("b", 3.0), NR_D("c", 1e20), NR_D("d", 1.5e-7),
           NR_D("e", -2.5e300), NR_D("f", 0.1), NR_B("g", 0), NR_J("h", "{\"x\": [1, 2.50]}"),
           NR_J("i", "not json {"), NR_S("j", NULL), NR_J("k", NULL), NR_I("total", 4),
           NR_D("l", 1.0 / 0.0));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    json_object_set_new(o, "job_name", json_string(tricky));
    json_object_set_new(o, "success_rate", json_real(66.5));
    json_object_set_new(o, "succeeded", json_integer(-9223372036854775807LL - 1));
    json_object_set_new(o, "total", json_integer(3));
    json_object_set_new(o, "a", json_real(806.123));
    json_object_set_new(o, "b", json_real(3.0));
    json_object_set_new(o, "c", json_real(1e20));
    json_object_set_new(o, "d", json_real(1.5e-7));
    json_object_set_new(o, "e", json_real(-2.5e300));
    json_object_set_new(o, "f", json_real(0.1));
    json_object_set_new(o, "g", json_false());
    json_object_set_new(o, "h", json_loads("{\"x\": [1, 2.50]}", 0, NULL));
    json_object_set_new(o, "i", json_string("not json {"));
    json_object_set_new(o, "j", json_null());
    json_object_set_new(o, "k", json_null());
    json_object_set_new(o, "total", json_integer(4));
    json_object_set_new(o, "l", json_null());
    want = json_dumps(o, JSON_COMPACT);

    text = slurp(out);
    line = strstr(text, "\"meta\":");
    ck_assert_ptr_nonnull(line);
    line += strlen("\"meta\":");
    end = strchr(line, '\n');
    ck_assert_ptr_nonnull(end);
    ck_assert_int_eq(end[-1], '}');
    end[-1] = '\0';                         /* the record's own closing brace */
    ck_assert_str_eq(line, want);
    free(want);
    json_decref(o);
    free(text);
    free(out);
}
END_TEST

START_TEST(stdout_session_debug)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *text;
    json_t *o, *meta;

    cfg_base(&c);
    c.logging.level = NR_LOG_DEBUG;
    c.logging.format = NR_LOG_FORMAT_JSON;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(7, 3, "rx", "abc\xff\0def", 8);
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    o = find_line(text, "abc");
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "message")),
                     "abc\xEF\xBF\xBD\xEF\xBF\xBD" "def");
    ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "DEBUG");
    ck_assert_str_eq(json_string_value(json_object_get(o, "log_type")), "session");
    meta = json_object_get(o, "meta");
    ck_assert_str_eq(json_string_value(json_object_get(meta, "direction")), "rx");
    ck_assert_int_eq(json_integer_value(json_object_get(meta, "bytes")), 8);
    ck_assert_str_eq(json_string_value(json_object_get(meta, "data")),
                     "abc\xEF\xBF\xBD\xEF\xBF\xBD" "def");
    json_decref(o);
    free(text);
    free(out);
}
END_TEST

/* ------------------------------------------------------- session records */

/* The message of a session record: what a person reads in the live view. */
START_TEST(session_text_sent_received)
{
    static const struct { const char *dir, *in, *want; } cases[] = {
        /* what the worker typed: "> " before each line */
        { "sent", "show running-config\n", "> show running-config" },
        { "sent", "********\n", "> ********" },
        { "sent", "\n", "> " },
        { "sent", "a\nb\n", "> a\n> b" },
        { "sent", "\b\bx\n", "> x" },                   /* never erases the prefix */
        /* what the device printed: as it reads, without line ends */
        { "received", "hostname r1\r\ninterface Gi0/1\r\n", "hostname r1\ninterface Gi0/1" },
        { "received", "r1#", "r1#" },
        { "received", "\r\n", "" },
        { "received", "\r\n\r\nend\r\n", "\n\nend" },
        { "received", "  > not typed\r\n", "  > not typed" },
        /* a pager prompt the device wipes leaves nothing */
        { "received", " --More-- \b\b\b\b\b\b\b\b\b\b          \b\b\b\b\b\b\b\b\b\b", "" },
        { "received", "\x1b[1mbold\x1b[0m\x1b]0;title\a text\x07\x7f", "bold text" },
        { "received", "caf\xc3\xa9\b!\tx", "caf!\tx" },   /* a backspace erases a character */
        { "received", "a\xff", "a\xEF\xBF\xBD" },
        { "rx", "x\r\n", "x" },
    };

    for (size_t i = 0; i < NR_ARRAY_LEN(cases); i++) {
        char *t = nr_log_session_text(cases[i].dir, cases[i].in, strlen(cases[i].in));
        ck_assert_msg(strcmp(t, cases[i].want) == 0, "case %zu: '%s', want '%s'", i, t,
                      cases[i].want);
        free(t);
    }
}
END_TEST

/* How data is cut into records: whole lines, at most 8 and 1 KiB each. */
START_TEST(session_chunk_lines_and_bytes)
{
    char buf[8192];
    size_t n = 0, off, k, recs;

    ck_assert_uint_eq(nr_log_session_chunk("", 0), 0);
    ck_assert_uint_eq(nr_log_session_chunk("r1#", 3), 3);

    /* 20 short lines: 8, 8, 4 */
    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(buf + n, "line %02d\r\n", i);
    ck_assert_uint_eq(nr_log_session_chunk(buf, n), 8 * 9);
    ck_assert_uint_eq(nr_log_session_chunk(buf + 72, n - 72), 8 * 9);
    ck_assert_uint_eq(nr_log_session_chunk(buf + 144, n - 144), 4 * 9);

    /* lines of 300 bytes: as many whole lines as fit in 1 KiB */
    memset(buf, 'x', 3000);
    for (int i = 1; i <= 10; i++)
        buf[300 * i - 1] = '\n';
    ck_assert_uint_eq(nr_log_session_chunk(buf, 3000), 900);

    /* one line longer than a record: cut at 1 KiB ... */
    memset(buf, 'a', 3000);
    ck_assert_uint_eq(nr_log_session_chunk(buf, 3000), NR_LOG_SESSION_BYTES);
    /* ... but not inside a UTF-8 sequence */
    buf[0] = 'a';
    for (int i = 1; i + 1 < 3000; i += 2) {
        buf[i] = '\xc3';
        buf[i + 1] = '\xa9';
    }
    k = nr_log_session_chunk(buf, 2999);
    ck_assert_uint_eq(k, NR_LOG_SESSION_BYTES - 1);
    ck_assert_int_eq((unsigned char)buf[k], 0xc3);

    /* any data: every record 1..1024 bytes, at most 8 lines, all of it, in order */
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (i * 2654435761u >> 7) % 13 == 0 ? '\n' : (char)('a' + i % 26);
    for (off = 0, recs = 0; off < sizeof(buf); off += k, recs++) {
        int lines = 0;

        k = nr_log_session_chunk(buf + off, sizeof(buf) - off);
        ck_assert_uint_gt(k, 0);
        ck_assert_uint_le(k, NR_LOG_SESSION_BYTES);
        for (size_t j = 0; j < k; j++)
            lines += buf[off + j] == '\n';
        ck_assert_int_le(lines, NR_LOG_SESSION_LINES);
    }
    ck_assert_uint_eq(off, sizeof(buf));
    ck_assert_uint_ge(recs, sizeof(buf) / NR_LOG_SESSION_BYTES);
}
END_TEST

/* A raw session record as nr_log_session queues it. */
static struct nr_log_rec *raw_rec(long long job, long long dev, const char *dir,
                                  const char *data, size_t len)
{
    size_t dlen = strlen(dir);
    struct nr_log_rec *r = calloc(1, sizeof(*r) + len + 1 + dlen + 1);

    ck_assert_ptr_nonnull(r);
    r->ev = NR_EV_SESSION_DATA;
    r->sinks = NR_SINK_REDIS;
    r->job_id = job;
    r->device_id = dev;
    r->ts.tv_sec = 1795000000;
    r->ts.tv_nsec = 123456789;
    r->tid = 4242;
    r->raw = true;
    r->msg = r->data;
    r->msg_len = len;
    memcpy(r->msg, data, len);
    r->meta = r->msg + len + 1;
    r->meta_len = dlen;
    memcpy(r->meta, dir, dlen + 1);
    return r;
}

static void json_of_record(const struct nr_log_rec *rec, void *arg)
{
    nr_log_rec_json(arg, rec, NULL);
    nr_sbuf_putc(arg, '\n');
}

static void json_as_is(const struct nr_sbuf *json, void *arg)
{
    nr_sbuf_put(arg, json->p, json->len);
    nr_sbuf_putc(arg, '\n');
}

/* The publisher writes each record's JSON straight from the raw data: the
 * same text, record for record, as the records nr_log_session_each makes
 * (what stdout shows at debug) written by nr_log_rec_json. */
START_TEST(session_json_as_records_write_it)
{
    char big[3000], utf[1100];
#define C(dir, lit) { dir, lit, sizeof(lit) - 1 }
    static const struct { const char *dir; const char *data; size_t len; } cases[] = {
        C("sent", "show running-config\n"),
        C("received", ""),
        C("received", "Building configuration...\r\n\r\nhostname \"r1\"\r\n r1#"),
        C("received", "\x1b[7m--More--\x1b[m\b\b\b\b\b\b\b\b        \b\b\b\b\b\b\b\bline\n"),
        C("received", "caf\xc3\xa9 \xff\xfe broken \xe2\x82 end\n"),
        C("received", "nul\0inside\nand \\ back\tslash \x01\x1f\x7f\n"),
        C("tx", "enable\n"),
        C("?", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"),
    };
#undef C
    struct nr_sbuf slow = { 0 }, fast = { 0 }, json = { 0 };
    struct nr_ts_cache tc = { 0 };
    size_t k = 0;

    for (size_t i = 0; i < sizeof(big); i++)    /* lines, then one 1.5 KiB line */
        big[i] = i < 1200 ? (i % 40 == 39 ? '\n' : (char)('a' + i % 26)) : (char)('A' + i % 26);
    for (size_t i = 0; i + 1 < sizeof(utf); i += 2) {  /* 2-byte sequences across 1 KiB */
        utf[i] = (char)0xc3;
        utf[i + 1] = (char)0xa9;
    }
    for (size_t c = 0; c < NR_ARRAY_LEN(cases) + 2; c++) {
        const char *d = c < NR_ARRAY_LEN(cases) ? cases[c].data : c == NR_ARRAY_LEN(cases) ? big : utf;
        size_t n = c < NR_ARRAY_LEN(cases) ? cases[c].len
                   : c == NR_ARRAY_LEN(cases) ? sizeof(big) : sizeof(utf);
        struct nr_log_rec *r = raw_rec(c % 2 ? 7 : 0, c % 3 ? 3 : 0,
                                       c < NR_ARRAY_LEN(cases) ? cases[c].dir : "received", d, n);

        nr_sbuf_reset(&slow);
        nr_sbuf_reset(&fast);
        nr_log_session_each(r, json_of_record, &slow);
        nr_log_session_json_each(r, &json, &tc, json_as_is, &fast);
        ck_assert_msg(slow.len > 0, "case %zu: no record", c);
        ck_assert_msg(strcmp(slow.p, fast.p) == 0, "case %zu:\n%s\nwant\n%s", c, fast.p, slow.p);
        for (const char *q = fast.p; (q = strchr(q, '\n')) != NULL; q++)
            k++;
        free(r);
    }
    ck_assert_uint_ge(k, NR_ARRAY_LEN(cases) + 2 + 1 + 3);     /* long data: several records */
    nr_sbuf_free(&slow);
    nr_sbuf_free(&fast);
    nr_sbuf_free(&json);
}
END_TEST

static double secs_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static struct nr_logq bound_q;

/* Takes what q holds (waiting up to 1 s for it) and releases the batch's
 * bytes, as a sink does once it is done; the count taken. */
static size_t take_release(struct nr_logq *q)
{
    struct nr_log_rec **batch;
    size_t bytes = 0, n = nr_logq_take(q, &batch, 1.0);

    for (size_t i = 0; i < n; i++)
        bytes += nr_log_rec_size(batch[i]);
    nr_logq_release(q, bytes);
    return n;
}

/* The consumer of bound_q: after 50 ms, takes what is queued and
 * releases its bytes. */
static void *drain_later(void *arg)
{
    (void)arg;
    usleep(50 * 1000);
    return (void *)take_release(&bound_q);
}

/* The live view's queue holds at most logging.redis.queue_bytes: an
 * emitter past it waits for the publisher to make room, and is dropped
 * (and counted) when no room comes within the wait. */
START_TEST(live_queue_bytes_bound)
{
    char data[1000], big[5000];
    struct nr_log_rec *r[5];
    struct timespec t0;
    pthread_t th;
    void *taken;
    size_t one;

    memset(data, 'x', sizeof(data));
    memset(big, 'y', sizeof(big));
    for (int i = 0; i < 4; i++)
        r[i] = raw_rec(1, 2, "received", data, sizeof(data));
    r[4] = raw_rec(1, 2, "received", big, sizeof(big));
    one = nr_log_rec_size(r[0]);
    ck_assert_int_eq(nr_logq_init(&bound_q, 64), 0);
    nr_logq_bound_bytes(&bound_q, 2 * one + one / 2, 0.2);

    ck_assert(nr_logq_push(&bound_q, r[0]));
    ck_assert(nr_logq_push(&bound_q, r[1]));
    /* no room and nobody makes it: dropped after the wait */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert(!nr_logq_push(&bound_q, r[2]));
    ck_assert_double_ge(secs_since(&t0), 0.18);
    ck_assert_double_lt(secs_since(&t0), 1.0);
    ck_assert_uint_eq(atomic_load(&bound_q.dropped), 1);
    ck_assert_uint_eq(atomic_load(&bound_q.pushed), 2);

    /* the consumer makes room within the wait: queued */
    ck_assert_int_eq(pthread_create(&th, NULL, drain_later, NULL), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert(nr_logq_push(&bound_q, r[2]));
    ck_assert_double_lt(secs_since(&t0), 0.18);
    pthread_join(th, &taken);
    ck_assert_uint_eq((size_t)taken, 2);
    ck_assert_uint_eq(bound_q.bytes, one);

    /* a record larger than the bound goes when the queue is empty */
    ck_assert(nr_logq_push(&bound_q, r[3]));
    ck_assert_int_eq(pthread_create(&th, NULL, drain_later, NULL), 0);
    pthread_join(th, &taken);
    ck_assert_uint_eq((size_t)taken, 2);
    ck_assert_uint_eq(bound_q.bytes, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert(nr_logq_push(&bound_q, r[4]));
    ck_assert_double_lt(secs_since(&t0), 0.1);
    ck_assert_uint_eq(atomic_load(&bound_q.dropped), 1);

    bound_q.n = 0;      /* the records are this test's, not the queue's */
    nr_logq_destroy(&bound_q);
    for (int i = 0; i < 5; i++)
        free(r[i]);
}
END_TEST

/* The queue of queue_linger and what its emitter thread pushes, 50 ms
 * after the take began. */
static struct nr_logq linger_q;

struct late_push {
    struct nr_log_rec *rec;
    bool               ok;
};

static void *push_later(void *arg)
{
    struct late_push *lp = arg;

    usleep(50 * 1000);
    lp->ok = nr_logq_push(&linger_q, lp->rec);
    return NULL;
}

/* Takes expect records from linger_q while another thread pushes rec 50
 * ms in (that push must be accepted); the seconds the take took. */
static double take_while_pushed(struct nr_log_rec *rec, size_t expect)
{
    struct late_push lp = { .rec = rec };
    struct timespec t0;
    pthread_t th;
    double s;

    ck_assert_int_eq(pthread_create(&th, NULL, push_later, &lp), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_uint_eq(take_release(&linger_q), expect);
    s = secs_since(&t0);
    pthread_join(th, NULL);
    ck_assert(lp.ok);
    return s;
}

/* A busy queue's records gather for the linger after a take and go as one
 * batch; a record after a quiet spell goes at once; half the queue's
 * bound, or an emitter short of room, ends the linger early. */
START_TEST(queue_linger)
{
    char data[1000];
    struct nr_log_rec *r[12];
    struct timespec t0;
    double s;
    size_t one;

    memset(data, 'z', sizeof(data));
    for (int i = 0; i < 12; i++)
        r[i] = raw_rec(1, 2, "sent", data, sizeof(data));
    one = nr_log_rec_size(r[0]);
    ck_assert_int_eq(nr_logq_init(&linger_q, 8), 0);
    nr_logq_linger(&linger_q, 0.3);

    /* quiet: the first record is taken at once */
    ck_assert(nr_logq_push(&linger_q, r[0]));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_uint_eq(take_release(&linger_q), 1);
    ck_assert_double_lt(secs_since(&t0), 0.1);

    /* busy: a record right after a take waits for the linger's end, and
     * one pushed meanwhile goes with it */
    ck_assert(nr_logq_push(&linger_q, r[1]));
    s = take_while_pushed(r[2], 2);
    ck_assert_double_ge(s, 0.25);
    ck_assert_double_lt(s, 1.0);

    /* half the bound (4 of 8) ends a 5 s linger */
    nr_logq_linger(&linger_q, 5.0);
    usleep(350 * 1000);                     /* quiet again */
    ck_assert(nr_logq_push(&linger_q, r[11]));
    ck_assert_uint_eq(take_release(&linger_q), 1);                 /* at once; the next take lingers */
    for (int i = 3; i < 6; i++)
        ck_assert(nr_logq_push(&linger_q, r[i]));
    ck_assert_double_lt(take_while_pushed(r[6], 4), 1.0);

    /* an emitter waiting for room ends it too, and then gets the room */
    nr_logq_bound_bytes(&linger_q, 2 * one + one / 2, 2.0);
    ck_assert(nr_logq_push(&linger_q, r[7]));
    ck_assert(nr_logq_push(&linger_q, r[8]));
    ck_assert_double_lt(take_while_pushed(r[9], 2), 1.0);
    ck_assert_uint_eq(atomic_load(&linger_q.dropped), 0);
    ck_assert_uint_eq(atomic_load(&linger_q.pushed), 11);

    /* no linger: taken at once however recent the last take */
    nr_logq_linger(&linger_q, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_uint_eq(take_release(&linger_q), 1);
    ck_assert(nr_logq_push(&linger_q, r[10]));
    ck_assert_uint_eq(take_release(&linger_q), 1);
    ck_assert_double_lt(secs_since(&t0), 0.5);

    linger_q.n = 0;     /* the records are this test's, not the queue's */
    nr_logq_destroy(&linger_q);
    for (int i = 0; i < 12; i++)
        free(r[i]);
}
END_TEST

/* Levels are NetRaven's upper-case names in every format that carries one
 * (human and JSON lines on stdout, and in the file). */
START_TEST(levels_upper_every_format)
{
    static const char *const want[NR_LOG_LEVEL_COUNT] = {
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL",
    };
    int seen[NR_LOG_LEVEL_COUNT] = { 0 };
    enum nr_event pick[NR_LOG_LEVEL_COUNT];
    char *out = path_in("stdout"), *file = path_in("log/w.log");

    for (int l = 0; l < NR_LOG_LEVEL_COUNT; l++) {
        pick[l] = NR_EV_COUNT;
        for (int e = 0; e < NR_EV_COUNT && pick[l] == NR_EV_COUNT; e++)
            if (nr_events[e].level == (enum nr_log_level)l && nr_events[e].type != NR_LOG_SESSION)
                pick[l] = (enum nr_event)e;
    }
    for (int fmt = 0; fmt < 2; fmt++) {
        struct nr_config c;
        char *text, *ftext;

        cfg_base(&c);
        c.logging.level = NR_LOG_DEBUG;
        c.logging.format = fmt ? NR_LOG_FORMAT_JSON : NR_LOG_FORMAT_HUMAN;
        c.logging.file = file;
        unlink(file);
        capture_begin(out);
        ck_assert_int_eq(nr_log_init(&c), 0);
        for (int l = 0; l < NR_LOG_LEVEL_COUNT; l++)
            if (pick[l] != NR_EV_COUNT)
                nr_log_emit(pick[l], 9, 0, NULL, 0);
        nr_log_session(9, 4, "received", "r1#", 3);
        ck_assert_int_eq(nr_log_flush(5), 0);
        nr_log_shutdown();
        capture_end();
        text = slurp(out);
        ftext = slurp(file);
        ck_assert_ptr_nonnull(ftext);
        ck_assert_str_eq(text, ftext);
        for (const char *p = text; *p;) {
            const char *nl = strchr(p, '\n');
            const char *lv;
            int l;

            ck_assert_ptr_nonnull(nl);
            if (fmt) {
                json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
                ck_assert_ptr_nonnull(o);
                lv = json_string_value(json_object_get(o, "level"));
                ck_assert_ptr_nonnull(lv);
                for (l = 0; l < NR_LOG_LEVEL_COUNT && strcmp(lv, want[l]) != 0; l++)
                    ;
                ck_assert_msg(l < NR_LOG_LEVEL_COUNT, "level '%s'", lv);
                json_decref(o);
            } else {
                /* 2026-11-23T18:24:02.971991Z INFO    job ... */
                lv = p + 28;
                for (l = 0; l < NR_LOG_LEVEL_COUNT; l++)
                    if (strncmp(lv, want[l], strlen(want[l])) == 0 && lv[strlen(want[l])] == ' ')
                        break;
                ck_assert_msg(l < NR_LOG_LEVEL_COUNT, "line '%.*s'", (int)(nl - p), p);
            }
            seen[l]++;
            p = nl + 1;
        }
        free(text);
        free(ftext);
    }
    /* each level of the catalog, twice (human and JSON); the session record is DEBUG */
    for (int l = 0; l < NR_LOG_LEVEL_COUNT; l++)
        ck_assert_int_eq(seen[l], (pick[l] != NR_EV_COUNT ? 2 : 0) + (l == NR_LOG_DEBUG ? 2 : 0));
    ck_assert_int_ge(seen[NR_LOG_WARNING] + seen[NR_LOG_ERROR] + seen[NR_LOG_INFO], 6);
    free(out);
    free(file);
}
END_TEST

/* A command and its output as session records: the text in message, in
 * order, sent and received told apart; the bytes in meta. */
START_TEST(session_records_readable)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char rx[512], *text, *p, data[512] = "";
    size_t n = 0;
    int k = 0;
    static const char *const want[] = {
        "> show running-config",
        "line 00\nline 01\nline 02\nline 03\nline 04\nline 05\nline 06\nline 07",
        "line 08\nline 09\nline 10\nline 11\nline 12\nline 13\nline 14\nline 15",
        "line 16\nline 17\nline 18\nline 19\nr1#",
    };
    static const char *const dirs[] = { "sent", "received", "received", "received" };
    static const int bytes[] = { 20, 72, 72, 39 };

    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(rx + n, "line %02d\r\n", i);
    n += (size_t)sprintf(rx + n, "r1#");

    cfg_base(&c);
    c.logging.level = NR_LOG_DEBUG;
    c.logging.format = NR_LOG_FORMAT_JSON;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(7, 3, "sent", "show running-config\n", 20);
    nr_log_session(7, 3, "received", rx, n);
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    for (p = text; *p; k++) {
        char *nl = strchr(p, '\n');
        json_t *o, *meta;

        ck_assert_ptr_nonnull(nl);
        ck_assert_int_lt(k, (int)NR_ARRAY_LEN(want));
        o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        ck_assert_ptr_nonnull(o);
        ck_assert_str_eq(json_string_value(json_object_get(o, "message")), want[k]);
        ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "DEBUG");
        meta = json_object_get(o, "meta");
        ck_assert_str_eq(json_string_value(json_object_get(meta, "direction")), dirs[k]);
        ck_assert_int_eq(json_integer_value(json_object_get(meta, "bytes")), bytes[k]);
        if (k > 0)
            strcat(data, json_string_value(json_object_get(meta, "data")));
        json_decref(o);
        p = nl + 1;
    }
    ck_assert_int_eq(k, (int)NR_ARRAY_LEN(want));
    ck_assert_str_eq(data, rx);     /* meta.data: the stream, byte for byte */
    free(text);

    /* human format: the catalog's head, then the text on one line */
    c.logging.format = NR_LOG_FORMAT_HUMAN;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(7, 3, "sent", "show running-config\n", 20);
    nr_log_session(7, 3, "received", rx, n);
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();
    text = slurp(out);
    ck_assert_ptr_nonnull(strstr(text, "] Session log: sent 20 bytes: > show running-config\n"));
    ck_assert_ptr_nonnull(strstr(text, "] Session log: received 72 bytes: line 00 line 01 "));
    ck_assert_ptr_nonnull(strstr(text, "line 19 r1#\n"));
    ck_assert_int_eq(count_lines(text), 4);
    free(text);
    free(out);
}
END_TEST

/* A big output is a bounded number of bounded records: never one per byte
 * or per line, and nothing lost or reordered. */
START_TEST(session_records_bounded)
{
    struct nr_config c;
    char *out = path_in("stdout");
    const size_t lines = 4000, lsz = 50, big = 10000;
    size_t n = 0, recs = 0, dlen = 0;
    char *rx = nr_malloc(lines * lsz + big + 1), *text, *data = nr_malloc(lines * lsz + big + 1);

    for (size_t i = 0; i < lines; i++) {
        memset(rx + n, 'a' + (char)(i % 26), lsz - 2);
        memcpy(rx + n, "ln", 2);
        rx[n + lsz - 2] = '\r';
        rx[n + lsz - 1] = '\n';
        n += lsz;
    }
    memset(rx + n, 'z', big);       /* one long unfinished line */
    n += big;
    rx[n] = '\0';

    cfg_base(&c);
    c.logging.level = NR_LOG_DEBUG;
    c.logging.format = NR_LOG_FORMAT_JSON;
    c.logging.queue_size = 4096;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    nr_log_session(8, 2, "received", rx, n);
    ck_assert_int_eq(nr_log_flush(10), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    for (char *p = text; *p; recs++) {
        char *nl = strchr(p, '\n');
        json_t *o;
        const char *m, *d;
        int ml = 0;

        ck_assert_ptr_nonnull(nl);
        o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        ck_assert_ptr_nonnull(o);
        m = json_string_value(json_object_get(o, "message"));
        d = json_string_value(json_object_get(json_object_get(o, "meta"), "data"));
        ck_assert_uint_le(strlen(m), NR_LOG_SESSION_BYTES);
        ck_assert_uint_le(strlen(d), NR_LOG_SESSION_BYTES);
        for (const char *q = m; *q; q++)
            ml += *q == '\n';
        ck_assert_int_lt(ml, NR_LOG_SESSION_LINES);
        ck_assert_ptr_null(strchr(m, '\r'));
        memcpy(data + dlen, d, strlen(d));
        dlen += strlen(d);
        json_decref(o);
        p = nl + 1;
    }
    data[dlen] = '\0';
    ck_assert_uint_eq(dlen, n);
    ck_assert_str_eq(data, rx);
    ck_assert_uint_eq(recs, lines / NR_LOG_SESSION_LINES + (big + NR_LOG_SESSION_BYTES - 1) /
                            NR_LOG_SESSION_BYTES);
    free(text);
    free(rx);
    free(data);
    free(out);
}
END_TEST

/* A queue of 8 and a burst of 5000: what is not written was counted. */
START_TEST(stdout_drops_counted)
{
    struct nr_config c;
    char *out = path_in("stdout");
    struct nr_log_stats st;
    char *text;
    int written;

    cfg_base(&c);
    c.logging.queue_size = 8;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 5000; i++)
        NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "burst"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    nr_log_get_stats(&st);
    capture_end();

    /* every line is a record, and every record not written was counted */
    text = slurp(out);
    written = count_of(text, "Job 'burst' started");
    ck_assert_uint_eq(st.emitted[NR_LOG_JOB], 5000);
    ck_assert_int_gt(written, 0);
    ck_assert_uint_eq((uint64_t)count_lines(text),
                      st.emitted[NR_LOG_JOB] + st.emitted[NR_LOG_SYSTEM] - st.out_dropped);
    free(text);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- file */

START_TEST(file_on)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *file = path_in("deep/er/worker.log");
    char *text, *ftext;

    cfg_base(&c);
    c.logging.file = file;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 50; i++)
        NR_LOG(NR_EV_JOB_DEVICE_COUNT, 9, 0, NR_S("job_name", "filed"), NR_I("device_count", i));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ftext = slurp(file);
    ck_assert_ptr_nonnull(ftext);
    ck_assert_int_eq(count_of(ftext, "Job 'filed' will process"), 50);
    ck_assert_ptr_nonnull(strstr(ftext, "will process 49 devices\n"));
    ck_assert_int_eq(count_of(text, "Job 'filed' will process"), 50);
    ck_assert_int_eq(count_of(text, "Cannot write log file"), 0);
    free(text);
    free(ftext);
    free(file);
    free(out);
}
END_TEST

START_TEST(file_off)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *text;
    struct stat sb;
    char *probe = path_in("worker.log");

    cfg_base(&c);
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_STARTED, 9, 0, NR_S("job_name", "nofile"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ck_assert_int_eq(count_of(text, "Job 'nofile' started"), 1);
    ck_assert_int_ne(stat(probe, &sb), 0);
    {
        struct nr_log_stats st;
        nr_log_get_stats(&st);
        ck_assert_uint_eq(st.file_errors, 0);
    }
    free(text);
    free(out);
    free(probe);
}
END_TEST

static void unwritable_case(const char *file)
{
    struct nr_config c;
    char *out = path_in("stdout");
    struct nr_log_stats st;
    char *text;

    cfg_base(&c);
    c.logging.file = (char *)file;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 20; i++)
        NR_LOG(NR_EV_JOB_STARTED, 9, 0, NR_S("job_name", "stillhere"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    NR_LOG(NR_EV_JOB_STARTED, 9, 0, NR_S("job_name", "stillhere"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_get_stats(&st);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ck_assert_int_eq(count_of(text, "Job 'stillhere' started"), 21);
    ck_assert_int_eq(count_of(text, "Cannot write log file"), 1);
    ck_assert_ptr_nonnull(strstr(text, "WARNING system     log"));
    ck_assert_uint_ge(st.file_errors, 1);
    free(text);
    free(out);
}

START_TEST(file_unwritable_under_regular_file)
{
    char *reg = path_in("plain");
    char *file = path_in("plain/sub/worker.log");
    FILE *f = fopen(reg, "w");

    ck_assert_ptr_nonnull(f);
    fclose(f);
    unwritable_case(file);
    free(reg);
    free(file);
}
END_TEST

START_TEST(file_unwritable_proc)
{
    unwritable_case("/proc/netraven-no-such/worker.log");
}
END_TEST

/* The warning is said even when the level would hide warnings. */
START_TEST(file_warning_at_error_level)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *file = path_in("plain");
    char *bad = path_in("plain/x.log");
    FILE *f = fopen(file, "w");
    char *text;

    ck_assert_ptr_nonnull(f);
    fclose(f);
    cfg_base(&c);
    c.logging.level = NR_LOG_ERROR;
    c.logging.file = bad;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_FAILED, 1, 0, NR_S("job_name", "x"), NR_S("error", "boom"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();
    text = slurp(out);
    ck_assert_int_eq(count_of(text, "Cannot write log file"), 1);
    ck_assert_int_eq(count_of(text, "failed for job 'x': boom"), 1);
    free(text);
    free(out);
    free(file);
    free(bad);
}
END_TEST

START_TEST(file_reopen)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *file = path_in("logs/worker.log");
    char *rotated = path_in("logs/worker.log.1");
    char *a, *b;

    cfg_base(&c);
    c.logging.file = file;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    for (int i = 0; i < 3; i++)
        NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "before"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    ck_assert_int_eq(rename(file, rotated), 0);
    nr_log_reopen();                                /* what SIGHUP does */
    for (int i = 0; i < 2; i++)
        NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "after"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    a = slurp(rotated);
    b = slurp(file);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(count_of(a, "Job 'before'"), 3);
    ck_assert_int_eq(count_of(a, "Job 'after'"), 0);
    ck_assert_int_eq(count_of(b, "Job 'after'"), 2);
    ck_assert_int_eq(count_of(b, "Job 'before'"), 0);
    ck_assert_int_eq(count_of(b, "reopened"), 1);
    free(a);
    free(b);
    free(rotated);
    free(file);
    free(out);
}
END_TEST

/* After a failure the file is tried again only on reopen, and then works. */
START_TEST(file_reopen_after_failure)
{
    struct nr_config c;
    char *out = path_in("stdout");
    char *blocker = path_in("dir");
    char *file = path_in("dir/worker.log");
    FILE *f = fopen(blocker, "w");
    char *text, *ftext;

    ck_assert_ptr_nonnull(f);
    fclose(f);
    cfg_base(&c);
    c.logging.file = file;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "lost-to-file"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    ck_assert_int_eq(unlink(blocker), 0);           /* the way is clear now */
    NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "still-stdout"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_reopen();
    NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "in-file"));
    ck_assert_int_eq(nr_log_flush(5), 0);
    nr_log_shutdown();
    capture_end();

    text = slurp(out);
    ftext = slurp(file);
    ck_assert_ptr_nonnull(ftext);
    ck_assert_int_eq(count_of(text, "Cannot write log file"), 1);
    ck_assert_int_eq(count_of(text, "Job '"), 3);
    ck_assert_int_eq(count_of(ftext, "Job 'in-file'"), 1);
    ck_assert_int_eq(count_of(ftext, "Job 'still-stdout'"), 0);
    free(text);
    free(ftext);
    free(file);
    free(blocker);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- db down */

/* PostgreSQL away: emitters do not wait, flush times out, shutdown counts
 * the rows it could not write and says the DB was unavailable once. */
START_TEST(db_unavailable)
{
    struct nr_config c;
    char *out = path_in("stdout");
    struct nr_log_stats st;
    char *text;
    uint64_t t0;

    cfg_base(&c);
    c.database.url = dead_db;
    capture_begin(out);
    ck_assert_int_eq(nr_log_init(&c), 0);
    t0 = nr_mono_ns();
    for (int i = 0; i < 100; i++)
        NR_LOG(NR_EV_JOB_STARTED, 1, 0, NR_S("job_name", "nodb"));
    ck_assert_uint_lt(nr_mono_ns() - t0, 500000000ull);
    ck_assert_int_eq(nr_log_flush(1.5), NR_ETIMEOUT);
    nr_log_shutdown();
    nr_log_get_stats(&st);
    capture_end();

    ck_assert_uint_eq(st.db_routed, 100);
    ck_assert_uint_eq(st.db_written, 0);
    ck_assert_uint_eq(st.db_dropped, 100);
    text = slurp(out);
    ck_assert_int_eq(count_of(text, "PostgreSQL unavailable"), 1);
    ck_assert_int_eq(count_of(text, "secret"), 0);   /* the URL's password */
    ck_assert_int_eq(count_of(text, "Job 'nodb' started"), 100);
    free(text);
    free(out);
}
END_TEST

/* ---------------------------------------------------------------- suite */

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc;

    tc = tcase_create("catalog");
    tcase_add_test(tc, catalog_covers_audit);
    tcase_add_test(tc, catalog_rows_well_formed);
    tcase_add_test(tc, catalog_template_keys);
    tcase_add_test(tc, catalog_templates_render);
    tcase_add_test(tc, render_values);
    tcase_add_test(tc, session_text_sent_received);
    tcase_add_test(tc, session_chunk_lines_and_bytes);
    tcase_add_test(tc, session_json_as_records_write_it);
    tcase_add_test(tc, live_queue_bytes_bound);
    tcase_add_test(tc, queue_linger);
    suite_add_tcase(s, tc);

    tc = tcase_create("router");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_add_test(tc, router_default_routes);
    tcase_add_test(tc, router_table_defaults);
    tcase_add_test(tc, router_file_default);
    tcase_add_test(tc, router_overrides);
    tcase_add_test(tc, router_thresholds);
    tcase_add_test(tc, router_session_rule);
    tcase_add_test(tc, router_redis_host);
    tcase_add_test(tc, lifecycle_again);
    suite_add_tcase(s, tc);

    tc = tcase_create("stdout");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_add_test(tc, stdout_human);
    tcase_add_test(tc, stdout_json);
    tcase_add_test(tc, meta_text_as_jansson_writes);
    tcase_add_test(tc, stdout_session_debug);
    tcase_add_test(tc, levels_upper_every_format);
    tcase_add_test(tc, session_records_readable);
    tcase_add_test(tc, session_records_bounded);
    tcase_add_test(tc, stdout_drops_counted);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_add_test(tc, file_on);
    tcase_add_test(tc, file_off);
    tcase_add_test(tc, file_unwritable_under_regular_file);
    tcase_add_test(tc, file_unwritable_proc);
    tcase_add_test(tc, file_warning_at_error_level);
    tcase_add_test(tc, file_reopen);
    tcase_add_test(tc, file_reopen_after_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("db_down");
    tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, db_unavailable);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
