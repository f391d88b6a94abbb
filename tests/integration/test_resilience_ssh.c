/*
 * test_resilience_ssh.c - credentials, retries, the circuit breaker and
 * per-device-type timeouts, end to end: the worker binary takes
 * config_backup jobs from the native queue and backs up devsim devices
 * (real SSH on loopback), with credential passwords encrypted by Debian's
 * python3-cryptography exactly as NetRaven's API stores them.
 *
 *   credential_fallback_and_no_secret_anywhere
 *       first credential refused, second accepted: COMPLETED_SUCCESS, both
 *       tries as connection rows (credential id, username), both
 *       success_rate values as NetRaven computes them, the details naming
 *       the credential that worked; then every sink (logs, stdout, the log
 *       file, Redis pub/sub, job_results, device_configurations) scanned
 *       for passwords, tokens and the master key.
 *   no_credentials_and_master_keys
 *       no credential shares a tag: COMPLETED_NO_CREDENTIALS; the database
 *       refusing the resolution, a wrong master key and no master key:
 *       FAILED_CREDENTIAL_RESOLUTION with the reason, and for the keys a
 *       clear error at start naming the credential ids.
 *   retries_by_class
 *       refused twice then served: success on the third attempt, the
 *       attempts in the details, the backoff from the heap; a device that
 *       disconnects mid-output: retried, then given up; a refused login:
 *       not retried, logged as non-retriable.
 *   circuit_breaker_across_runs
 *       a dead device trips its breaker; the next run fails fast without
 *       connecting; after reset_timeout one trial (fails: open again); a
 *       device that came back closes its breaker.
 *   device_type_timeouts
 *       worker.device_types.juniper_junos.command_timeout applies to the
 *       Junos device only.
 *
 * devsim runs once for the suite (unchecked fixture), every device on its
 * own loopback address (devices.ip_address is unique) and one port.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

#define PW      "Rs-Login.7qXw!2"       /* the devices' login password */
#define BAD_PW  "Rs-Stale.4kLm#9"       /* a credential the devices refuse */
#define ES      "Rs-Enable.8zPv$5"      /* the devices' enable secret */
#define MASTER  "rs-master-key-5d1c9e"
#define MASTER2 "rs-other-master-0b77f2"

struct tdev {
    const char *name;
    const char *type;
    const char *extra;      /* inventory fields; NULL: not served (dead) */
};

static const struct tdev devs[] = {
    { "good", "cisco_ios", "" },
    { "flaky", "cisco_ios", "faults: {refuse_times: 2}" },
    { "disc", "cisco_ios", "faults: [disconnect_mid_output]" },
    { "reject", "cisco_ios", "faults: [reject_auth]" },
    { "revive", "cisco_ios", "faults: {refuse_times: 2}" },
    { "dead", "cisco_ios", NULL },
    { "ioshang", "cisco_ios", "faults: [hang_mid_output]" },
    { "junoshang", "juniper_junos", "faults: [hang_mid_output]" },
    { "junos", "juniper_junos", "" },
};

#define NDEVS (sizeof(devs) / sizeof(devs[0]))

static struct nrt_proc devsim;
static char *suite_dir;
static int dev_port;
static int net;                 /* 127.<net>.0.<1 + index> */

static PGconn *db;
static struct nrt_proc *running;
static char *tokens[3];         /* PW, BAD_PW under MASTER; PW under MASTER2 */

/* ---- devsim ------------------------------------------------------------ */

static int dev_index(const char *name)
{
    for (size_t i = 0; i < NDEVS; i++)
        if (strcmp(devs[i].name, name) == 0)
            return (int)i;
    ck_abort_msg("no test device %s", name);
    return -1;
}

static void dev_addr(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "127.%d.0.%d", net, 1 + dev_index(name));
}

static bool devsim_try(int port)
{
    char *inv = NULL, *state = NULL, addr[32];
    FILE *f;

    dev_port = port;
    if (asprintf(&inv, "%s/inventory-%d.yaml", suite_dir, port) < 0 ||
        asprintf(&state, "%s/devsim", suite_dir) < 0)
        abort();
    f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  port: %d\n  accounts: [{username: admin, password: \"%s\"}]\n"
               "  enable_secret: \"%s\"\n  config_kb: 4\ndevices:\n", port, PW, ES);
    for (size_t i = 0; i < NDEVS; i++) {
        if (devs[i].extra == NULL)
            continue;
        dev_addr(devs[i].name, addr, sizeof(addr));
        fprintf(f, "  - {name: %s, hostname: rs-%s, type: %s, listen: %s%s%s}\n", devs[i].name,
                devs[i].name, devs[i].type, addr, devs[i].extra[0] ? ", " : "", devs[i].extra);
    }
    fclose(f);
    bool ready = nrt_devsim_start(&devsim, inv, state);
    free(inv);
    free(state);
    return ready;
}

static void suite_start(void)
{
    const char *pw[] = { PW, BAD_PW };

    suite_dir = nrt_tmpdir("rs");
    net = 100 + (int)(getpid() % 100);
    for (int attempt = 0; attempt < 8; attempt++)
        if (devsim_try(10000 + (int)((getpid() * 7907u + (unsigned)attempt * 104723u) % 22000)))
            goto started;
    ck_abort_msg("devsim did not start");
started:
    nrt_fernet_tokens(MASTER, NULL, pw, 2, tokens);
    nrt_fernet_tokens(MASTER2, NULL, pw, 1, tokens + 2);
}

static void suite_stop(void)
{
    nrt_proc_stop(&devsim, 2);
    nrt_proc_clear(&devsim);
    for (size_t i = 0; i < 3; i++)
        free(tokens[i]);
    free(suite_dir);
}

/* ---- per test ------------------------------------------------------------ */

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
}

static void teardown(void)
{
    if (running)
        nrt_proc_stop(running, 5);
    running = NULL;
    PQfinish(db);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long add_tag(const char *name)
{
    return nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('%s', 'device') RETURNING id",
                       name);
}

static long long add_device(const char *name, long long tag)
{
    char addr[32];
    long long id;

    dev_addr(name, addr, sizeof(addr));
    id = nrt_sql_int(db, "INSERT INTO devices (hostname, ip_address, device_type, port) "
                         "VALUES ('rs-%s', '%s', '%s', %d) RETURNING id",
                     name, addr, devs[dev_index(name)].type, dev_port);
    PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)", id, tag));
    return id;
}

/* rate: SQL text for success_rate ("NULL", "0.5"). */
static long long add_cred(const char *user, const char *password, int prio, const char *rate,
                          long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO credentials (username, password, priority, success_rate, is_system) "
        "VALUES ('%s', '%s', %d, %s, false) RETURNING id", user, password, prio, rate);
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", id, tag));
    return id;
}

static long long add_job(const char *name, long long tag)
{
    long long id = nrt_sql_int(db,
        "INSERT INTO jobs (name, job_type, status, is_enabled, schedule_type) "
        "VALUES ('%s', 'config_backup', 'PENDING', true, 'onetime') RETURNING id", name);
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", id, tag));
    return id;
}

/* Start the worker with the suite's settings plus extra ("K=V", NULL-ended). */
static void start_worker(struct nrt_proc *w, const char *tag, char *const extra[])
{
    char *dir = nrt_tmpdir(tag), *env[32], *spool = NULL;
    size_t n = 0;

    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s", dir) < 0)
        abort();
    env[n++] = spool;
    env[n++] = "NETRAVEN_SSH__ENABLE_SECRET=" ES;
    env[n++] = "NETRAVEN_WORKER__CONNECTION_TIMEOUT=3";
    env[n++] = "NETRAVEN_WORKER__COMMAND_TIMEOUT=3";
    env[n++] = "NETRAVEN_WORKER__THREAD_POOL_SIZE=8";
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    nrt_proc_start(w, argv, env);
    running = w;
    free(spool);
    free(dir);
}

static void stop_worker_ok(struct nrt_proc *w)
{
    nrt_proc_stop(w, 30);
    running = NULL;
    ck_assert_msg(WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0,
                  "worker did not exit 0 on SIGTERM (status %d)", w->status);
}

/* Enqueue with the CLI, wait for the final status; returns its output. */
static char *enqueue_wait(long long job)
{
    char id[32];

    snprintf(id, sizeof(id), "%lld", job);
    char *argv[] = { (char *)nrt_worker_bin(), "enqueue", id, "--wait", "--timeout", "90", NULL };
    struct nrt_proc p;
    nrt_proc_start(&p, argv, NULL);
    ck_assert_msg(nrt_proc_wait(&p, 120), "enqueue --wait did not return");
    char *out = nrt_proc_stdout(&p);
    ck_assert_msg(WIFEXITED(p.status), "enqueue crashed: %s", out);
    nrt_proc_clear(&p);
    return out;
}

static void run_expect(long long job, const char *status)
{
    char *out = enqueue_wait(job), *st;

    ck_assert_msg(strstr(out, status) != NULL, "job %lld: enqueue printed: %s (want %s)", job,
                  out, status);
    free(out);
    st = nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
    ck_assert_str_eq(st, status);
    free(st);
}

/* The newest result of a device in a job; caller decrefs. */
static json_t *details_of(long long job, long long dev, char **status)
{
    PGresult *r = nrt_sql(db, "SELECT details::text, status FROM job_results WHERE job_id = "
                              "%lld AND device_id = %lld ORDER BY id DESC LIMIT 1", job, dev);
    json_t *d;

    ck_assert_msg(PQntuples(r) == 1, "no result for device %lld in job %lld", dev, job);
    d = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    ck_assert_ptr_nonnull(d);
    if (status)
        *status = strdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    return d;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- secrets ---------------------------------------------------------------- */

static void assert_no_secret(const char *what, const char *text)
{
    const char *plain[] = { PW, BAD_PW, ES, MASTER, MASTER2 };

    ck_assert_msg(text != NULL, "%s: nothing to scan", what);
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        ck_assert_msg(strstr(text, plain[i]) == NULL, "%s holds the secret '%s'", what,
                      plain[i]);
    for (size_t i = 0; i < 3; i++) {
        char piece[25];

        /* the whole token, and any 24 characters of its ciphertext */
        ck_assert_msg(strstr(text, tokens[i]) == NULL, "%s holds token %zu", what, i);
        snprintf(piece, sizeof(piece), "%s", tokens[i] + 40);
        ck_assert_msg(strstr(text, piece) == NULL, "%s holds part of token %zu", what, i);
    }
}

static void assert_no_secret_sql(const char *what, const char *query)
{
    char *text = nrt_sql_str(db, "%s", query);

    assert_no_secret(what, text ? text : "");
    free(text);
}

/* Every message published on the test Redis (PSUBSCRIBE *), collected by a
 * thread until stopped. */
struct sub {
    pthread_t       th;
    redisContext   *rc;
    atomic_bool     stop;
    pthread_mutex_t mu;
    char           *text;
    size_t          len, cap, messages;
};

static void sub_append(struct sub *s, const char *p, size_t n)
{
    pthread_mutex_lock(&s->mu);
    if (s->len + n + 2 > s->cap) {
        s->cap = (s->len + n + 2) * 2;
        s->text = realloc(s->text, s->cap);
    }
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len++] = '\n';
    s->text[s->len] = '\0';
    pthread_mutex_unlock(&s->mu);
}

static void *sub_main(void *arg)
{
    struct sub *s = arg;
    struct pollfd pfd = { .fd = s->rc->fd, .events = POLLIN };

    while (!atomic_load(&s->stop)) {
        void *reply = NULL;

        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (redisBufferRead(s->rc) != REDIS_OK)
            break;
        while (redisGetReplyFromReader(s->rc, &reply) == REDIS_OK && reply != NULL) {
            redisReply *r = reply;

            /* pmessage, pattern, channel, payload */
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
                r->element[3]->type == REDIS_REPLY_STRING) {
                sub_append(s, r->element[2]->str, r->element[2]->len);
                sub_append(s, r->element[3]->str, r->element[3]->len);
                pthread_mutex_lock(&s->mu);
                s->messages++;
                pthread_mutex_unlock(&s->mu);
            }
            freeReplyObject(r);
            reply = NULL;
        }
    }
    return NULL;
}

static void sub_start(struct sub *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->rc = nrt_redis();
    redisReply *r = redisCommand(s->rc, "PSUBSCRIBE *");
    ck_assert_msg(r != NULL && r->type == REDIS_REPLY_ARRAY, "PSUBSCRIBE failed");
    freeReplyObject(r);
    ck_assert_int_eq(pthread_create(&s->th, NULL, sub_main, s), 0);
}

static void sub_stop(struct sub *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    redisFree(s->rc);
    pthread_mutex_destroy(&s->mu);
}

/* ---- tests ------------------------------------------------------------------- */

START_TEST(credential_fallback_and_no_secret_anywhere)
{
    long long tag = add_tag("lab");
    long long dev = add_device("good", tag);
    /* priority 10 first: a stale password for a user the device does not know */
    long long stale = add_cred("netops", tokens[1], 10, "0.5", tag);
    long long right = add_cred("admin", tokens[0], 20, "NULL", tag);
    long long job = add_job("fallback", tag);
    char *dir = nrt_tmpdir("fallback"), *file = NULL, *file_env = NULL, *text;
    struct sub sub;
    struct nrt_proc w;
    json_t *d, *logins;
    char *status;

    if (asprintf(&file, "%s/worker.log", dir) < 0 ||
        asprintf(&file_env, "NETRAVEN_LOGGING__FILE=%s", file) < 0)
        abort();
    char *extra[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER, "NETRAVEN_LOGGING__LEVEL=debug",
                      file_env, NULL };
    sub_start(&sub);
    start_worker(&w, "fallback", extra);
    ck_assert_msg(nrt_wait_stdout(&w, "Encryption key checked: it opens all 2 encrypted", 1, 15),
                  "no key check at start");

    run_expect(job, "COMPLETED_SUCCESS");

    /* the details name the credential that worked, and both tries */
    d = details_of(job, dev, &status);
    ck_assert_str_eq(status, "success");
    free(status);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "credential_id")), right);
    ck_assert_str_eq(jstr(d, "username"), "admin");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "credentials_tried")), 2);
    logins = json_object_get(d, "logins");
    ck_assert_uint_eq(json_array_size(logins), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(logins, 0),
                                                        "credential_id")), stale);
    ck_assert_str_eq(jstr(json_array_get(logins, 0), "username"), "netops");
    ck_assert_str_eq(jstr(json_array_get(logins, 0), "result"), "refused");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(logins, 1),
                                                        "credential_id")), right);
    ck_assert_str_eq(jstr(json_array_get(logins, 1), "result"), "accepted");
    /* one attempt: the fallback is not a retry */
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 1);
    ck_assert_str_eq(jstr(json_array_get(json_object_get(d, "attempts"), 0), "class"), "ok");
    json_decref(d);

    /* success_rate as NetRaven's credential_metrics.py: 0.5 -> 0.5 * 0.9;
     * NULL -> 1.0 on success; last_used set on both */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM credentials WHERE id = %lld AND "
                                     "success_rate = 0.5::float8 * 0.9::float8 AND "
                                     "success_rate = 0.45::float8 AND "
                                     "last_used > now() - interval '1 minute'", stale), 1);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM credentials WHERE id = %lld AND "
                                     "success_rate = 1.0::float8 AND "
                                     "last_used > now() - interval '1 minute'", right), 1);

    /* each try is a connection life-cycle row with the credential id and
     * username, and the refused one says so */
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND log_type = 'connection' AND meta->>'credential_id' "
                           "= '%lld' AND meta->>'username' = 'netops' AND message LIKE "
                           "'Trying credential %lld (netops) on ''rs-good'': 1 of 2'",
                           job, dev, stale, stale));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'connection' AND meta->>'credential_id' = '%lld' AND "
                           "message LIKE 'Trying credential %lld (admin) on ''rs-good'': 2 of 2'",
                           job, right, right));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'connection' AND meta->>'credential_id' = '%lld' AND "
                           "message LIKE 'Authentication to ''rs-good'' as netops failed%%'",
                           job, stale));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'connection' AND meta->>'credential_id' = '%lld' AND "
                           "message = 'Authenticated to ''rs-good'' as admin'", job, right));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations WHERE "
                                     "device_id = %lld", dev), 1);

    /* let the session records reach Redis, then stop everything */
    ck_assert(nrt_wait_sql(db, "COMPLETED_SUCCESS", 5, "SELECT status FROM jobs WHERE id = %lld",
                           job));
    usleep(500000);
    stop_worker_ok(&w);
    sub_stop(&sub);

    /* every sink, scanned */
    ck_assert_msg(sub.messages > 10, "only %zu messages on Redis", sub.messages);
    ck_assert_ptr_nonnull(strstr(sub.text, "session-logs:"));
    assert_no_secret("Redis pub/sub", sub.text);
    free(sub.text);
    text = nrt_proc_stdout(&w);
    ck_assert_ptr_nonnull(strstr(text, "Trying credential"));
    assert_no_secret("the worker's stdout", text);
    free(text);
    text = nrt_read_file(w.err_path);
    assert_no_secret("the worker's stderr", text ? text : "");
    free(text);
    text = nrt_read_file(file);
    ck_assert_msg(text != NULL && strstr(text, "Trying credential"), "log file %s", file);
    assert_no_secret("the log file", text);
    free(text);
    assert_no_secret_sql("logs", "SELECT string_agg(coalesce(message, '') || ' ' || "
                                 "coalesce(meta::text, ''), E'\\n') FROM logs");
    assert_no_secret_sql("job_results", "SELECT string_agg(details::text, E'\\n') FROM job_results");
    assert_no_secret_sql("device_configurations",
                         "SELECT string_agg(config_data || ' ' || coalesce(config_metadata::text, ''),"
                         " E'\\n') FROM device_configurations");
    nrt_proc_clear(&w);
    free(file);
    free(file_env);
    free(dir);
}
END_TEST

START_TEST(no_credentials_and_master_keys)
{
    long long lab = add_tag("lab"), other = add_tag("other");
    long long dev = add_device("good", lab);
    long long c1 = add_cred("admin", tokens[0], 10, "NULL", lab);
    long long c2 = add_cred("netops", tokens[1], 20, "NULL", lab);
    long long job = add_job("keys", lab);
    long long orphan_job = add_job("orphans", other);
    struct nrt_proc w;
    json_t *d;
    char *status, *text, want[256];

    (void)c2;
    nrt_sql_int(db, "SELECT %lld", add_device("junos", other));    /* no credential for it */

    /* right key: no credential shares a tag with the job's device */
    char *right[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER, NULL };
    start_worker(&w, "keys", right);
    run_expect(orphan_job, "COMPLETED_NO_CREDENTIALS");
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "level = 'WARNING' AND message = 'No credentials match the devices of "
                           "job ''orphans'''", orphan_job));
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld AND "
                                     "status = 'failure' AND details->>'error' LIKE "
                                     "'no credential shares a tag%%'", orphan_job), 1);

    /* the database refuses the resolution (a statement error, not an
     * outage, which a run waits out): FAILED_CREDENTIAL_RESOLUTION */
    PQclear(nrt_sql(db, "ALTER TABLE credential_tag_association RENAME TO cta_away"));
    run_expect(job, "FAILED_CREDENTIAL_RESOLUTION");
    PQclear(nrt_sql(db, "ALTER TABLE cta_away RENAME TO credential_tag_association"));
    d = details_of(job, dev, NULL);
    ck_assert_msg(strstr(jstr(d, "error"), "credential_tag_association"), "error: %s",
                  jstr(d, "error"));
    json_decref(d);
    /* and with the table back, the same job runs */
    run_expect(job, "COMPLETED_SUCCESS");
    stop_worker_ok(&w);
    nrt_proc_clear(&w);

    /* a wrong master key: a clear error at start naming the ids, and the
     * run fails its resolution with the reason (the worker stopped, so
     * every row of the runs before is in `logs`) */
    long long mark = nrt_sql_int(db, "SELECT coalesce(max(id), 0) FROM logs");
    char *wrong[] = { "NETRAVEN_ENCRYPTION_KEY=" MASTER2, NULL };
    start_worker(&w, "wrongkey", wrong);
    snprintf(want, sizeof(want), "does not open the passwords of 2 of 2 encrypted credentials");
    ck_assert_msg(nrt_wait_stdout(&w, want, 1, 15), "no start-up error about the key");
    snprintf(want, sizeof(want), "credential ids %lld, %lld", c1, c2);
    ck_assert(nrt_wait_stdout(&w, want, 1, 1));
    run_expect(job, "FAILED_CREDENTIAL_RESOLUTION");
    d = details_of(job, dev, &status);
    ck_assert_str_eq(status, "failure");
    free(status);
    snprintf(want, sizeof(want), "credential %lld: cannot decrypt password", c1);
    ck_assert_msg(strstr(jstr(d, "error"), want) && strstr(jstr(d, "error"), "wrong encryption key"),
                  "error: %s", jstr(d, "error"));
    json_decref(d);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "level = 'ERROR' AND message LIKE 'Credential resolution failed for "
                           "job ''keys'': credential %lld: cannot decrypt%%'", job, c1));
    /* nothing was attempted */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "log_type = 'connection' AND id > %lld", job, mark), 0);
    stop_worker_ok(&w);
    text = nrt_proc_stdout(&w);
    /* one error line of the system log, from the credential module */
    ck_assert_msg(strstr(text, "ERROR   system     cred ") != NULL, "stdout: %s", text);
    assert_no_secret("stdout (wrong key)", text);
    free(text);
    nrt_proc_clear(&w);

    /* no master key at all */
    start_worker(&w, "nokey", NULL);
    ck_assert_msg(nrt_wait_stdout(&w, "2 credentials hold encrypted passwords but no encryption key "
                                      "is configured", 1, 15), "no start-up error without a key");
    run_expect(job, "FAILED_CREDENTIAL_RESOLUTION");
    d = details_of(job, dev, NULL);
    ck_assert_msg(strstr(jstr(d, "error"), "no encryption key is configured"), "error: %s",
                  jstr(d, "error"));
    json_decref(d);
    stop_worker_ok(&w);
    text = nrt_proc_stdout(&w);
    assert_no_secret("stdout (no key)", text);
    free(text);
    nrt_proc_clear(&w);
    assert_no_secret_sql("logs", "SELECT string_agg(coalesce(message, '') || ' ' || "
                                 "coalesce(meta::text, ''), E'\\n') FROM logs");
    assert_no_secret_sql("job_results", "SELECT string_agg(details::text, E'\\n') FROM job_results");
}
END_TEST

/* details.attempts[i]: class, stage. */
static void check_attempt(json_t *d, size_t i, const char *cls, const char *stage)
{
    json_t *a = json_array_get(json_object_get(d, "attempts"), i);

    ck_assert_msg(a != NULL, "no attempt %zu in %s", i, json_dumps(d, 0));
    ck_assert_int_eq(json_integer_value(json_object_get(a, "attempt")), (long long)i + 1);
    ck_assert_msg(strcmp(jstr(a, "class"), cls) == 0, "attempt %zu: class %s, want %s", i,
                  jstr(a, "class"), cls);
    if (stage)
        ck_assert_str_eq(jstr(a, "stage"), stage);
}

START_TEST(retries_by_class)
{
    long long tag = add_tag("lab");
    long long flaky = add_device("flaky", tag);
    long long disc = add_device("disc", tag);
    long long reject = add_device("reject", tag);
    long long job;
    struct nrt_proc w;
    json_t *d, *a;
    double took;
    char *status;

    add_cred("admin", tokens[0], 10, "NULL", tag);
    job = add_job("retries", tag);
    char *extra[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER,
                      "NETRAVEN_WORKER__RETRY_ATTEMPTS=2", "NETRAVEN_WORKER__RETRY_BACKOFF=0.3",
                      "NETRAVEN_WORKER__CIRCUIT_BREAKER__FAILURE_THRESHOLD=10",
                      "NETRAVEN_WORKER__MAX_CREDENTIAL_ATTEMPTS=1", NULL };
    start_worker(&w, "retries", extra);
    run_expect(job, "COMPLETED_PARTIAL_FAILURE");
    /* the run's own time, not the CLI's wait around it */
    took = (double)nrt_sql_int(db, "SELECT (extract(epoch FROM completed_at - started_at) "
                                   "* 1000)::int FROM jobs WHERE id = %lld", job) / 1000.0;

    /* refused twice, then served: the third attempt worked */
    d = details_of(job, flaky, NULL);
    ck_assert_msg(json_is_true(json_object_get(d, "deduplicated")) ||
                  json_is_false(json_object_get(d, "deduplicated")), "no backup: %s",
                  json_dumps(d, 0));
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 3);
    check_attempt(d, 0, "refused", "connect");
    check_attempt(d, 1, "refused", "connect");
    check_attempt(d, 2, "ok", NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "retries")), 2);
    /* backoff 0.3 * 2^n plus up to 20 % */
    a = json_array_get(json_object_get(d, "attempts"), 0);
    ck_assert_msg(json_real_value(json_object_get(a, "retry_in_s")) >= 0.3 &&
                  json_real_value(json_object_get(a, "retry_in_s")) < 0.361, "%s", json_dumps(a, 0));
    a = json_array_get(json_object_get(d, "attempts"), 1);
    ck_assert_msg(json_real_value(json_object_get(a, "retry_in_s")) >= 0.6 &&
                  json_real_value(json_object_get(a, "retry_in_s")) < 0.721, "%s", json_dumps(a, 0));
    ck_assert_ptr_nonnull(strstr(jstr(json_array_get(json_object_get(d, "attempts"), 0), "error"),
                                 "closed the connection"));
    json_decref(d);
    status = nrt_sql_str(db, "SELECT status FROM job_results WHERE job_id = %lld AND "
                             "device_id = %lld", job, flaky);
    ck_assert_str_eq(status, "success");
    free(status);

    /* disconnect mid-output: retried, then given up after 3 attempts */
    d = details_of(job, disc, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 3);
    for (size_t i = 0; i < 3; i++)
        check_attempt(d, i, "protocol", "command");
    ck_assert_str_eq(jstr(d, "class"), "protocol");
    json_decref(d);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND level = 'ERROR' AND message LIKE 'Giving up on "
                           "device ''rs-disc'' in job ''retries'' after 3 attempts%%'", job, disc));

    /* a refused login: not retried, logged as non-retriable (audit 9) */
    d = details_of(job, reject, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 1);
    check_attempt(d, 0, "auth", "auth");
    json_decref(d);
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND log_type = 'job' AND level = 'WARNING' AND "
                           "source = 'dispatcher' AND message LIKE 'Non-retriable error for "
                           "device ''rs-reject'' in job ''retries'': auth at auth: %%'",
                           job, reject));
    ck_assert(nrt_wait_sql(db, "2", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message LIKE 'Retrying device ''rs-flaky''%%'",
                           job, flaky));
    /* the waits overlapped: the backoff of one device held no thread */
    ck_assert_msg(took < 0.9 * 2 + 5, "the run took %.2f s", took);
    fprintf(stderr, "  retries run: %.2f s\n", took);
    stop_worker_ok(&w);
    nrt_proc_clear(&w);
}
END_TEST

START_TEST(circuit_breaker_across_runs)
{
    long long tag = add_tag("lab");
    long long dead = add_device("dead", tag);
    long long revive = add_device("revive", tag);
    long long reject = add_device("reject", tag);
    long long jobs[4];
    struct nrt_proc w;
    json_t *d, *a;
    char *status;
    double opened_at;

    add_cred("admin", tokens[0], 10, "NULL", tag);
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof(name), "cb-%d", i + 1);
        jobs[i] = add_job(name, tag);
    }
    char *extra[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER,
                      "NETRAVEN_WORKER__RETRY_ATTEMPTS=1", "NETRAVEN_WORKER__RETRY_BACKOFF=0.1",
                      "NETRAVEN_WORKER__CIRCUIT_BREAKER__FAILURE_THRESHOLD=2",
                      "NETRAVEN_WORKER__CIRCUIT_BREAKER__RESET_TIMEOUT=5",
                      "NETRAVEN_WORKER__MAX_CREDENTIAL_ATTEMPTS=1", NULL };
    start_worker(&w, "breaker", extra);

    /* run 1: dead and revive refuse twice: both breakers open */
    run_expect(jobs[0], "COMPLETED_FAILURE");
    opened_at = now_s();
    d = details_of(jobs[0], dead, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 2);
    check_attempt(d, 0, "refused", "connect");
    check_attempt(d, 1, "refused", "connect");
    json_decref(d);
    ck_assert(nrt_wait_sql(db, "2", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'job' AND source = 'breaker' AND message LIKE 'Circuit "
                           "breaker of device ''rs-%%'' opened in job ''cb-1'' (2 consecutive "
                           "connection failures)%%'", jobs[0]));
    /* refused logins never trip it */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE device_id = %lld AND "
                                     "source = 'breaker'", reject), 0);

    /* run 2, at once: no connection to either, within milliseconds */
    run_expect(jobs[1], "COMPLETED_FAILURE");
    for (int k = 0; k < 2; k++) {
        long long dev = k == 0 ? dead : revive;

        d = details_of(jobs[1], dev, &status);
        ck_assert_str_eq(status, "failure");
        free(status);
        ck_assert_str_eq(jstr(d, "class"), "circuit open");
        ck_assert_str_eq(jstr(d, "circuit"), "open");
        ck_assert_ptr_nonnull(strstr(jstr(d, "error"), "circuit open"));
        ck_assert_double_gt(json_real_value(json_object_get(d, "retry_in_s")), 0.5);
        ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 1);
        a = json_array_get(json_object_get(d, "attempts"), 0);
        ck_assert_msg(json_real_value(json_object_get(a, "ms")) < 20, "refusal took %s",
                      json_dumps(a, 0));
        json_decref(d);
    }
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "log_type = 'connection' AND device_id IN (%lld, %lld)",
                                 jobs[1], dead, revive), 0);
    ck_assert(nrt_wait_sql(db, "2", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "source = 'breaker' AND message LIKE 'Circuit open for device "
                           "''rs-%%'' in job ''cb-2'': no connection attempted%%'", jobs[1]));
    /* the refused login still ran: its breaker never opened */
    d = details_of(jobs[1], reject, NULL);
    ck_assert_str_eq(jstr(d, "class"), "auth");
    json_decref(d);
    fprintf(stderr, "  run 2 (breakers open): %lld ms\n",
            nrt_sql_int(db, "SELECT (extract(epoch FROM completed_at - started_at) * 1000)::int "
                            "FROM jobs WHERE id = %lld", jobs[1]));

    /* run 3, after reset_timeout: one trial each; dead fails (open
     * again), revive answers (closed) */
    while (now_s() - opened_at < 5.3)
        usleep(50000);
    run_expect(jobs[2], "COMPLETED_PARTIAL_FAILURE");
    d = details_of(jobs[2], dead, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(d, "attempts")), 1);   /* no retry */
    check_attempt(d, 0, "refused", "connect");
    ck_assert_str_eq(jstr(d, "retry_stopped"), "the circuit breaker opened");
    json_decref(d);
    d = details_of(jobs[2], revive, &status);
    ck_assert_str_eq(status, "success");
    free(status);
    json_decref(d);
    ck_assert(nrt_wait_sql(db, "2", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message LIKE 'Circuit breaker of device ''rs-%%'' half-open in job "
                           "''cb-3'': one trial connection'", jobs[2]));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message LIKE 'Circuit breaker of device "
                           "''rs-dead'' opened in job ''cb-3'' (the trial connection failed)%%'",
                           jobs[2], dead));
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "device_id = %lld AND message = 'Circuit breaker of device "
                           "''rs-revive'' closed in job ''cb-3'': the device answered'",
                           jobs[2], revive));

    /* run 4, at once: dead still refused, revive served */
    run_expect(jobs[3], "COMPLETED_PARTIAL_FAILURE");
    d = details_of(jobs[3], dead, NULL);
    ck_assert_str_eq(jstr(d, "class"), "circuit open");
    json_decref(d);
    d = details_of(jobs[3], revive, &status);
    ck_assert_str_eq(status, "success");
    free(status);
    json_decref(d);
    stop_worker_ok(&w);
    nrt_proc_clear(&w);
}
END_TEST

START_TEST(device_type_timeouts)
{
    long long tag = add_tag("lab");
    long long ios = add_device("ioshang", tag);
    long long junos = add_device("junoshang", tag);
    long long ok = add_device("junos", tag);
    long long job;
    struct nrt_proc w;
    json_t *d;
    double ms;

    add_cred("admin", tokens[0], 10, "NULL", tag);
    job = add_job("slow-types", tag);
    char *extra[] = { "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER,
                      "NETRAVEN_WORKER__COMMAND_TIMEOUT=1", "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
                      "NETRAVEN_WORKER__DEVICE_TYPES__JUNIPER_JUNOS__COMMAND_TIMEOUT=3.5", NULL };
    start_worker(&w, "types", extra);
    run_expect(job, "COMPLETED_PARTIAL_FAILURE");

    d = details_of(job, ios, NULL);
    ck_assert_str_eq(jstr(d, "class"), "timeout");
    ck_assert_str_eq(jstr(d, "stage"), "command");
    ms = json_real_value(json_object_get(d, "duration_ms"));
    ck_assert_msg(ms >= 1000 && ms < 3000, "cisco_ios timed out after %.0f ms", ms);
    json_decref(d);
    d = details_of(job, junos, NULL);
    ck_assert_str_eq(jstr(d, "class"), "timeout");
    ck_assert_str_eq(jstr(d, "stage"), "command");
    ms = json_real_value(json_object_get(d, "duration_ms"));
    ck_assert_msg(ms >= 3500 && ms < 6000, "juniper_junos timed out after %.0f ms", ms);
    json_decref(d);
    d = details_of(job, ok, NULL);
    ck_assert_ptr_null(json_object_get(d, "error"));
    json_decref(d);
    stop_worker_ok(&w);
    nrt_proc_clear(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resilience_ssh");
    TCase *tc = tcase_create("devsim");
    SRunner *sr;
    int failed;

    tcase_add_unchecked_fixture(tc, suite_start, suite_stop);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    nrt_add_test(tc, credential_fallback_and_no_secret_anywhere);
    nrt_add_test(tc, no_credentials_and_master_keys);
    nrt_add_test(tc, retries_by_class);
    nrt_add_test(tc, circuit_breaker_across_runs);
    nrt_add_test(tc, device_type_timeouts);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
