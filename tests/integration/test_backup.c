/*
 * test_backup.c - config_backup end to end (issue 3): the worker binary,
 * devsim (real SSH on loopback), PostgreSQL and Redis.
 *
 * devsim serves one device per device type plus a few faulty ones, each on
 * its own 127.x address (devices.ip_address is unique).  The test inserts
 * the devices, a tag, two credentials whose passwords are Fernet tokens made
 * by Debian's python3-cryptography with NetRaven's key derivation, and a
 * config_backup job; it runs the job with `netraven-worker enqueue N --wait`
 * against a worker started with logging.level debug and a log file, while
 * a hiredis subscriber (its own thread) records session-logs:<job> and the
 * netraven-logs channel.  Then it checks:
 *
 *   - one snapshot per device type with the type's content, data_hash the
 *     sha256 of config_data, metadata with job_id and hostname, redacted;
 *   - devices.last_seen, credentials bookkeeping;
 *   - the connection life cycle rows in `logs`, in order, per device;
 *   - each fault device: a failure result with its class and stage, within
 *     its timeout; the job COMPLETED_PARTIAL_FAILURE;
 *   - a second run: every success deduplicated, no new snapshot; after
 *     devsim's SIGUSR1 (new config revision) a run of the good devices only
 *     (--device): new snapshots;
 *   - the session stream on Redis: the record shape, one device's chunks in
 *     order (the stored config can be read off them, line by line);
 *   - no password, enable secret, Fernet token or master key in any sink:
 *     `logs`, stdout (debug), stderr, the log file, every Redis message,
 *     job_results, device_configurations.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

/* Debian's interpreter: it has python3-cryptography; the one on PATH may not. */

/* Secrets: distinctive, and free of characters that JSON or SQL escape, so
 * that a plain substring search finds them in every sink. */
#define PW      "e2eLogin-Pw.7qKz"          /* login password of every device */
#define PW2     "e2eSpare-Pw.3vR9"          /* a second credential: refused everywhere */
#define ES      "e2eEnable-Sec.x81L"        /* enable secret of every device */
#define ES_BAD  "e2eOther-Sec.m40T"         /* enable secret of "badenable" */
#define MASTER  "e2e-master-key.Zt6pW2"     /* security.encryption_key */
#define TMO     "5"                         /* connection and command timeout, s */
#define TMO_MS  5000.0
/* a failure that waits for no timeout ends well under one, whatever a
 * loaded machine (ASan, the whole suite at once) makes of its logins */
#define FAST_MS (TMO_MS - 500)

#define N_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

struct bdev {
    const char *name;       /* devsim name and hostname: "bk-" name */
    const char *type;
    const char *yaml;       /* extra inventory fields; NULL: not served by devsim */
    const char *marker1;    /* content of the type's config (hostname excluded) */
    const char *marker2;
    const char *config_cmd;
    /* faulty devices: the failure expected, and the time allowed for it */
    const char *cls, *stage;
    double      max_ms;
    long long   id;         /* devices.id, set by the test */
    char        ip[32];
};

#define GOOD(n, t, m1, m2, cmd) \
    { .name = n, .type = t, .yaml = "", .marker1 = m1, .marker2 = m2, .config_cmd = cmd }
#define FAULT(n, y, c, s, ms) \
    { .name = n, .type = "cisco_ios", .yaml = y, .cls = c, .stage = s, .max_ms = ms }

static struct bdev devs[] = {
    GOOD("ios", "cisco_ios", "Building configuration...", "\nend", "show running-config"),
    GOOD("xe", "cisco_xe", "Building configuration...", "boot-start-marker",
         "show running-config"),
    GOOD("nxos", "cisco_nxos", "feature ospf", "vrf context management", "show running-config"),
    GOOD("xr", "cisco_xr", "!! IOS XR Configuration", "interface MgmtEth0/RSP0/CPU0/0",
         "show running-config"),
    GOOD("eos", "arista_eos", "spanning-tree mode mstp", "service routing protocols model",
         "show running-config"),
    GOOD("junos", "juniper_junos", "set system domain-name lab.example.net",
         "set system login user admin class super-user", "show configuration | display set"),
    GOOD("asa", "cisco_asa", "ASA Version", ": end", "show running-config"),
    GOOD("panos", "paloalto_panos", "deviceconfig {", "mgt-config {", "show config running"),
    GOOD("linux", "linux", "[system]", "domain = lab.example.net",
         "cat /etc/network/interfaces"),
    FAULT("reject", "faults: [reject_auth]", "auth", "auth", FAST_MS),
    /* a hang ends at one timeout: under two, whatever the login before it
     * cost a loaded machine (a timer restarted or run twice takes two) */
    FAULT("hang", "faults: [hang_after_auth]", "timeout", "prompt", 2 * TMO_MS - 100),
    FAULT("hangmid", "faults: [hang_mid_output]", "timeout", "command", 2 * TMO_MS - 100),
    FAULT("disc", "faults: [disconnect_mid_output]", "protocol", "command", FAST_MS),
    /* its enable secret is not ssh.enable_secret */
    FAULT("badenable", "enable_secret: \"" ES_BAD "\"", "auth", "enable", FAST_MS),
    /* not served by devsim: the port refuses */
    FAULT("nolisten", NULL, "refused", "connect", FAST_MS),
};
#define N_TYPES 9       /* devs[0..N_TYPES) succeed */

static PGconn *db;
static struct nrt_proc devsim, worker;
static bool devsim_up, worker_up;
static char *suite_dir;
static int dev_port;

/* ---- devsim ----------------------------------------------------------------- */

static bool devsim_try(unsigned net, int port)
{
    char *inv, *state;
    FILE *f;

    dev_port = port;
    for (size_t i = 0; i < N_ARRAY(devs); i++)
        snprintf(devs[i].ip, sizeof(devs[i].ip), "127.%u.%u.%zu", 60 + net / 200, net % 200,
                 i + 1);
    if (asprintf(&inv, "%s/inventory.yaml", suite_dir) < 0 ||
        asprintf(&state, "%s/devsim", suite_dir) < 0)
        abort();
    f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  port: %d\n"
               "  accounts: [{username: admin, password: \"%s\"}]\n"
               "  enable_secret: \"%s\"\n  config_kb: 6\n  latency_ms: 2\n"
               "devices:\n", port, PW, ES);
    for (size_t i = 0; i < N_ARRAY(devs); i++)
        if (devs[i].yaml)
            fprintf(f, "  - {name: bk-%s, type: %s, listen: %s%s%s}\n", devs[i].name,
                    devs[i].type, devs[i].ip, devs[i].yaml[0] ? ", " : "", devs[i].yaml);
    fclose(f);

    bool ready = nrt_devsim_start(&devsim, inv, state);
    free(inv);
    free(state);
    return ready;
}

static void devsim_start(void)
{
    unsigned seed = (unsigned)getpid() * 7919u;

    suite_dir = nrt_tmpdir("backup");
    /* Ports below the ephemeral range, an address block of our own: devsim
     * exits when a socket is taken, and another pair is tried. */
    for (unsigned attempt = 0; attempt < 8; attempt++, seed += 104729u)
        if (devsim_try(seed % 4000, 10000 + (int)(seed % 22000))) {
            devsim_up = true;
            return;
        }
    ck_abort_msg("devsim did not start (built at %s?)", NR_BUILD_ROOT "/tools/devsim/devsim");
}

/* ---- Fernet tokens, made the way NetRaven's API makes them -------------------- */

static char *tokens[2];

static void make_tokens(void)
{
    const char *pw[] = { PW, PW2 };

    nrt_fernet_tokens(MASTER, NULL, pw, 2, tokens);
}

/* ---- Redis subscriber ------------------------------------------------------------ */

#define SENTINEL "{\"e2e\":\"end of the test's messages\"}"

struct sub {
    redisContext *c;
    pthread_t     th;
    char        **channel, **payload;   /* what arrived, in order */
    size_t        n, cap;
    bool          got_sentinel;
    char          error[128];
};

/* Reads until the sentinel (published by the test on netraven-logs once the
 * worker has exited, so that everything the worker published is before it)
 * or an error (the context's read timeout). */
static void *sub_main(void *arg)
{
    struct sub *s = arg;

    for (;;) {
        redisReply *r = NULL;

        if (redisGetReply(s->c, (void **)&r) != REDIS_OK) {
            snprintf(s->error, sizeof(s->error), "%s", s->c->errstr);
            return NULL;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->str &&
            strcmp(r->element[0]->str, "message") == 0) {
            if (strcmp(r->element[2]->str, SENTINEL) == 0) {
                s->got_sentinel = true;
                freeReplyObject(r);
                return NULL;
            }
            if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 1024;
                s->channel = realloc(s->channel, s->cap * sizeof(char *));
                s->payload = realloc(s->payload, s->cap * sizeof(char *));
            }
            s->channel[s->n] = strdup(r->element[1]->str);
            s->payload[s->n] = strndup(r->element[2]->str, r->element[2]->len);
            s->n++;
        }
        freeReplyObject(r);
    }
}

static void sub_start(struct sub *s, long long job)
{
    struct timeval tv = { 120, 0 };
    redisReply *r;

    memset(s, 0, sizeof(*s));
    s->c = nrt_redis();
    redisSetTimeout(s->c, tv);
    r = redisCommand(s->c, "SUBSCRIBE session-logs:%lld netraven-logs", job);
    ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY, "SUBSCRIBE failed");
    freeReplyObject(r);
    ck_assert_int_eq(redisGetReply(s->c, (void **)&r), REDIS_OK);   /* the second channel */
    freeReplyObject(r);
    ck_assert_int_eq(pthread_create(&s->th, NULL, sub_main, s), 0);
}

static void sub_finish(struct sub *s)
{
    redisContext *pub = nrt_redis();
    redisReply *r = redisCommand(pub, "PUBLISH netraven-logs %s", SENTINEL);

    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "PUBLISH failed");
    freeReplyObject(r);
    redisFree(pub);
    pthread_join(s->th, NULL);
    ck_assert_msg(s->got_sentinel, "the subscriber stopped early: %s", s->error);
    redisFree(s->c);
    s->c = NULL;
}

static void sub_clear(struct sub *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->channel[i]);
        free(s->payload[i]);
    }
    free(s->channel);
    free(s->payload);
}

/* ---- worker ------------------------------------------------------------------------ */

static char *log_file;

static void worker_start(void)
{
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    char *spool = NULL, *file = NULL;

    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s/spool", suite_dir) < 0 ||
        asprintf(&log_file, "%s/log/worker.log", suite_dir) < 0 ||
        asprintf(&file, "NETRAVEN_LOGGING__FILE=%s", log_file) < 0)
        abort();
    char *extra[] = {
        "NETRAVEN_ENV=dev",
        "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER,
        "NETRAVEN_SSH__ENABLE_SECRET=" ES,
        "NETRAVEN_LOGGING__LEVEL=debug",
        "NETRAVEN_WORKER__THREAD_POOL_SIZE=16",
        "NETRAVEN_WORKER__CONNECTION_TIMEOUT=" TMO,
        "NETRAVEN_WORKER__COMMAND_TIMEOUT=" TMO,
        /* one attempt per device, so that the fault timings are the
         * handler's own */
        "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
        spool, file, NULL,
    };
    nrt_proc_start(&worker, argv, extra);
    worker_up = true;
    free(spool);
    free(file);
}

static void worker_stop_ok(void)
{
    nrt_proc_stop(&worker, 30);
    worker_up = false;
    ck_assert_msg(WIFEXITED(worker.status) && WEXITSTATUS(worker.status) == 0,
                  "worker did not exit 0 on SIGTERM (status %d)", worker.status);
}

/* enqueue JOB [--device ID...] --wait; returns what it printed. */
static char *enqueue_wait(long long job, const long long *ids, size_t nids)
{
    char *argv[32], idbuf[16][24], jobbuf[24];
    size_t n = 0;
    struct nrt_proc p;

    snprintf(jobbuf, sizeof(jobbuf), "%lld", job);
    argv[n++] = (char *)nrt_worker_bin();
    argv[n++] = "enqueue";
    argv[n++] = jobbuf;
    for (size_t i = 0; i < nids && i < 16; i++) {
        snprintf(idbuf[i], sizeof(idbuf[i]), "%lld", ids[i]);
        argv[n++] = "--device";
        argv[n++] = idbuf[i];
    }
    argv[n++] = "--wait";
    argv[n++] = "--timeout";
    argv[n++] = "50";
    argv[n] = NULL;
    nrt_proc_start(&p, argv, NULL);
    ck_assert_msg(nrt_proc_wait(&p, 60), "enqueue --wait did not return");
    ck_assert_msg(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "enqueue failed");
    char *out = nrt_proc_stdout(&p);
    nrt_proc_clear(&p);
    return out;
}

/* ---- fixtures ---------------------------------------------------------------------- */

static void setup(void)
{
    db = nrt_pg();
    nrt_db_reset(db);
    nrt_redis_reset();
}

static void teardown(void)
{
    if (worker_up)
        nrt_proc_stop(&worker, 5);
    worker_up = false;
    if (devsim_up) {
        nrt_proc_stop(&devsim, 2);
        nrt_proc_clear(&devsim);
    }
    devsim_up = false;
    PQfinish(db);
    free(suite_dir);
    suite_dir = NULL;
    for (size_t i = 0; i < N_ARRAY(tokens); i++) {
        free(tokens[i]);
        tokens[i] = NULL;
    }
}

/* ---- checks ------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void assert_no_secret(const char *what, const char *text)
{
    const char *secrets[] = { PW, PW2, ES, ES_BAD, MASTER, tokens[0], tokens[1] };

    ck_assert_msg(text != NULL, "%s: nothing to scan", what);
    for (size_t i = 0; i < N_ARRAY(secrets); i++)
        ck_assert_msg(strstr(text, secrets[i]) == NULL, "%s holds the secret '%s'", what,
                      secrets[i]);
}

/* Lines of devsim's configs that redaction must remove wherever the config
 * goes (stored snapshot, session stream, stdout, file). */
static void assert_redacted(const char *what, const char *text)
{
    const char *lines[] = { "secret 5 $", "password 7 ", "encrypted-password \"",
                            "admin_password = ", "enable password " };

    for (size_t i = 0; i < N_ARRAY(lines); i++)
        ck_assert_msg(strstr(text, lines[i]) == NULL, "%s holds a line with '%s'", what,
                      lines[i]);
}

static void assert_no_secret_sql(const char *what, const char *query)
{
    char *text = nrt_sql_str(db, "%s", query);

    assert_no_secret(what, text ? text : "");
    free(text);
}

/* The connection rows of one device in one job, after id `after`, ordered:
 * the life cycle steps appear in this order. */
static void check_life_cycle(long long job, const struct bdev *d, long long after)
{
    static const char *const steps[] = { "Connecting to '", "Connected to '",
                                         "Authenticating to '", "Authenticated to '",
                                         "Sent command '", "Command '", "Disconnected from '" };
    PGresult *r = nrt_sql(db,
        "SELECT message, meta::text, timestamp FROM logs WHERE job_id = %lld AND "
        "device_id = %lld AND log_type = 'connection' AND id > %lld ORDER BY id",
        job, d->id, after);
    size_t step = 0;
    char sent[256];
    bool connected_meta = false;

    char done[256];
    bool sent_config = false, done_config = false;

    snprintf(sent, sizeof(sent), "Sent command '%s' to 'bk-%s'", d->config_cmd, d->name);
    snprintf(done, sizeof(done), "Command '%s' on 'bk-%s' finished: ", d->config_cmd, d->name);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *m = PQgetvalue(r, i, 0);

        if (strcmp(m, sent) == 0)
            sent_config = true;
        if (sent_config && strncmp(m, done, strlen(done)) == 0)
            done_config = true;
        if (step < N_ARRAY(steps) && strncmp(m, steps[step], strlen(steps[step])) == 0) {
            if (step == 1) {
                json_t *meta = json_loads(PQgetvalue(r, i, 1), 0, NULL);
                const char *kex = json_string_value(json_object_get(meta, "kex"));
                const char *cipher = json_string_value(json_object_get(meta, "cipher"));
                const char *fp = json_string_value(json_object_get(meta, "fingerprint"));

                ck_assert_msg(kex && *kex && cipher && *cipher && fp &&
                              strncmp(fp, "SHA256:", 7) == 0,
                              "%s: connected row without kex/cipher/fingerprint: %s", d->name,
                              PQgetvalue(r, i, 1));
                connected_meta = true;
                json_decref(meta);
            }
            step++;
        }
    }
    ck_assert_msg(step == N_ARRAY(steps), "%s: connection life cycle stops before '%s' "
                  "(%d rows)", d->name, step < N_ARRAY(steps) ? steps[step] : "", PQntuples(r));
    ck_assert(connected_meta);
    ck_assert_msg(sent_config, "%s: no row '%s'", d->name, sent);
    ck_assert_msg(done_config, "%s: no row '%s...' after it", d->name, done);
    ck_assert_msg(strncmp(PQgetvalue(r, PQntuples(r) - 1, 0), "Disconnected from '", 19) == 0,
                  "%s: the last connection row is '%s'", d->name,
                  PQgetvalue(r, PQntuples(r) - 1, 0));
    PQclear(r);
    /* in the order of their ids, the timestamps never go back */
    ck_assert_int_eq(nrt_sql_int(db,
        "SELECT count(*) FROM (SELECT timestamp < lag(timestamp) OVER (ORDER BY id) AS back "
        "FROM logs WHERE job_id = %lld AND device_id = %lld AND log_type = 'connection' "
        "AND id > %lld) s WHERE back", job, d->id, after), 0);
}

/* Results of `job` after result id `after`, one per device: the device's
 * result details (caller decrefs), NULL if none. */
static json_t *result_details(long long job, long long dev, long long after, char **status)
{
    PGresult *r = nrt_sql(db, "SELECT details::text, status FROM job_results WHERE job_id = "
                              "%lld AND device_id = %lld AND id > %lld", job, dev, after);
    json_t *d = NULL;

    ck_assert_msg(PQntuples(r) == 1, "device %lld: %d results, want 1", dev, PQntuples(r));
    d = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    ck_assert_ptr_nonnull(d);
    *status = strdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    return d;
}

/* The session records of one device on session-logs:<job>, checked for
 * shape and order; the device's stored config must be readable off the
 * received chunks that follow the config command, line by line. */
static void check_session_stream(const struct sub *s, long long job, const struct bdev *d)
{
    char channel[64], *config, sent_cmd[256];
    size_t k = 0, seen_sent = 0, seen_recv = 0;
    struct { char *p; size_t n, cap; } rx = { NULL, 0, 0 };
    bool after_cmd = false, secret_masked = false;
    char last_ts[64] = "";

    snprintf(channel, sizeof(channel), "session-logs:%lld", job);
    snprintf(sent_cmd, sizeof(sent_cmd), "%s\n", d->config_cmd);
    for (size_t i = 0; i < s->n; i++) {
        json_t *o, *meta;
        const char *dir, *data, *ts;

        if (strcmp(s->channel[i], channel) != 0)
            continue;
        o = json_loads(s->payload[i], 0, NULL);
        ck_assert_msg(json_is_object(o), "not a JSON object on %s: %s", channel, s->payload[i]);
        ck_assert_msg(json_integer_value(json_object_get(o, "job_id")) == job,
                      "a record of another job on %s", channel);
        if (json_integer_value(json_object_get(o, "device_id")) != d->id ||
            strcmp(json_string_value(json_object_get(o, "log_type")), "session") != 0) {
            json_decref(o);
            continue;
        }
        k++;
        ts = json_string_value(json_object_get(o, "timestamp"));
        ck_assert_msg(ts && strlen(ts) >= 20 && ts[10] == 'T' && ts[strlen(ts) - 1] == 'Z',
                      "timestamp %s", ts ? ts : "(none)");
        ck_assert_msg(strcmp(last_ts, ts) <= 0, "timestamps go back: %s after %s", ts, last_ts);
        snprintf(last_ts, sizeof(last_ts), "%s", ts);
        ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "DEBUG");
        ck_assert_str_eq(json_string_value(json_object_get(o, "source")), "session");
        ck_assert_ptr_nonnull(json_string_value(json_object_get(o, "message")));
        meta = json_object_get(o, "meta");
        ck_assert(json_is_object(meta));
        dir = json_string_value(json_object_get(meta, "direction"));
        data = json_string_value(json_object_get(meta, "data"));
        if (dir == NULL || data == NULL) {        /* prompt / pager records */
            json_decref(o);
            continue;
        }
        if (strcmp(dir, "sent") == 0) {
            seen_sent++;
            if (strcmp(data, "********\n") == 0)
                secret_masked = true;
            after_cmd = strcmp(data, sent_cmd) == 0;
            if (after_cmd)
                rx.n = 0;
        } else {
            ck_assert_str_eq(dir, "received");
            seen_recv++;
            if (after_cmd) {
                size_t m = strlen(data);

                if (rx.n + m + 1 > rx.cap) {
                    rx.cap = 2 * (rx.n + m + 1);
                    rx.p = realloc(rx.p, rx.cap);
                }
                for (size_t j = 0; j < m; j++)
                    if (data[j] != '\r')
                        rx.p[rx.n++] = data[j];
                rx.p[rx.n] = '\0';
            }
        }
        json_decref(o);
    }
    ck_assert_msg(k > 4 && seen_sent >= 2 && seen_recv >= 2,
                  "%s: %zu session records (%zu sent, %zu received)", d->name, k, seen_sent,
                  seen_recv);
    ck_assert_msg(rx.n > 0, "%s: nothing received after '%s' was sent", d->name,
                  d->config_cmd);
    if (strcmp(d->type, "cisco_ios") == 0)
        ck_assert_msg(secret_masked, "%s: the enable secret was not sent masked", d->name);

    /* The stored config, line by line, in the same order in what was
     * received after the command. */
    config = nrt_sql_str(db, "SELECT config_data FROM device_configurations WHERE "
                             "device_id = %lld ORDER BY id DESC LIMIT 1", d->id);
    ck_assert_ptr_nonnull(config);
    const char *pos = rx.p;
    size_t lines = 0;
    for (char *line = config; *line;) {
        size_t len = strcspn(line, "\n");
        char *want = strndup(line, len);
        const char *hit = NULL;

        for (const char *h = pos; (h = strstr(h, want)) != NULL; h++)
            if ((h == rx.p || h[-1] == '\n') && (h[len] == '\n' || h[len] == '\0')) {
                hit = h;
                break;
            }
        ck_assert_msg(hit != NULL, "%s: config line %zu '%s' is not in the session stream "
                      "(in order)", d->name, lines + 1, want);
        pos = hit + len;
        free(want);
        lines++;
        line += len + (line[len] == '\n');
    }
    ck_assert_uint_gt(lines, 50);
    free(config);
    free(rx.p);
}

/* ---- the test ------------------------------------------------------------------------- */

START_TEST(config_backup_end_to_end)
{
    const size_t ndev = N_ARRAY(devs);
    long long tag, job, cred_good, cred_spare, last_result, ids[N_TYPES];
    struct sub sub;
    char *out, *st;
    double t0, run1_s;

    devsim_start();
    make_tokens();

    /* ---- the rows NetRaven's API would have written */
    tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('e2e-backup', 'device') "
                          "RETURNING id");
    for (size_t i = 0; i < ndev; i++) {
        devs[i].id = nrt_sql_int(db,
            "INSERT INTO devices (hostname, ip_address, device_type, port, source) "
            "VALUES ('bk-%s', '%s', '%s', %d, 'local') RETURNING id",
            devs[i].name, devs[i].ip, devs[i].type, dev_port);
        PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)",
                        devs[i].id, tag));
    }
    cred_good = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority, "
                                "description, is_system) VALUES ('admin', '%s', 10, 'e2e', "
                                "false) RETURNING id", tokens[0]);
    cred_spare = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority, "
                                 "description, is_system) VALUES ('admin', '%s', 50, 'spare', "
                                 "false) RETURNING id", tokens[1]);
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld), "
                        "(%lld, %lld)", cred_good, tag, cred_spare, tag));
    job = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, "
                          "schedule_type) VALUES ('e2e-backup', 'config_backup', 'PENDING', "
                          "true, 'onetime') RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));

    sub_start(&sub, job);
    worker_start();

    /* ---- first run */
    t0 = now_s();
    out = enqueue_wait(job, NULL, 0);
    run1_s = now_s() - t0;
    ck_assert_msg(strstr(out, "COMPLETED_PARTIAL_FAILURE") != NULL, "enqueue printed: %s", out);
    free(out);
    fprintf(stderr, "  first run: %.2f s\n", run1_s);
    /* the faults run side by side: the slowest is one timeout */
    /* the run's own time: the CLI's wait around it is the machine's */
    run1_s = (double)nrt_sql_int(db, "SELECT (extract(epoch FROM completed_at - started_at) "
                                     "* 1000)::int FROM jobs WHERE id = %lld", job) / 1000.0;
    ck_assert_msg(run1_s < TMO_MS / 1000 + 8, "the first run took %.1f s", run1_s);
    st = nrt_sql_str(db, "SELECT status FROM jobs WHERE id = %lld", job);
    ck_assert_str_eq(st, "COMPLETED_PARTIAL_FAILURE");
    free(st);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld",
                                 job), (long long)ndev);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld "
                                     "AND job_type = 'config_backup'", job), (long long)ndev);

    /* every device type: one snapshot, its content, its hash, its metadata */
    for (size_t i = 0; i < N_TYPES; i++) {
        const struct bdev *d = &devs[i];
        char *status;
        json_t *det = result_details(job, d->id, 0, &status);

        ck_assert_msg(strcmp(status, "success") == 0, "%s (%s): %s", d->name, d->type,
                      json_dumps(det, 0));
        ck_assert_msg(json_is_false(json_object_get(det, "deduplicated")),
                      "%s: first snapshot deduplicated", d->name);
        ck_assert_str_eq(json_string_value(json_object_get(det, "command")), d->config_cmd);
        ck_assert_int_eq(json_integer_value(json_object_get(det, "credential_id")), cred_good);
        ck_assert_int_gt(json_integer_value(json_object_get(det, "lines_redacted")), 0);
        ck_assert(json_number_value(json_object_get(det, "duration_ms")) > 0);
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations WHERE "
                                         "device_id = %lld", d->id), 1);
        ck_assert_int_eq(nrt_sql_int(db,
            "SELECT count(*) FROM device_configurations WHERE device_id = %lld "
            "AND data_hash = encode(sha256(config_data::bytea), 'hex') "
            "AND data_hash = '%s' "
            "AND config_metadata->>'job_id' = '%lld' AND config_metadata->>'hostname' = 'bk-%s' "
            "AND position('%s' in config_data) > 0 AND position('%s' in config_data) > 0 "
            "AND position('bk-%s' in config_data) > 0 "
            "AND position('[REDACTED LINE]' in config_data) > 0 "
            "AND regexp_replace(config_data, '\\[REDACTED LINE\\] \\([a-z ]+\\)', '', 'g') "
            "    !~* '(password|secret|community)' AND position('secret 5' in config_data) = 0 "
            "AND position(E'\\r' in config_data) = 0",
            d->id, json_string_value(json_object_get(det, "sha256")), job, d->name, d->marker1,
            d->marker2, d->name), 1);
        /* line count kept: each redacted line is a line of its own */
        ck_assert_int_eq(nrt_sql_int(db,
            "SELECT count(*) FROM device_configurations, regexp_split_to_table(config_data, "
            "E'\\n') AS l WHERE device_id = %lld AND l LIKE '[REDACTED LINE] (%%)'", d->id),
            json_integer_value(json_object_get(det, "lines_redacted")));
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM devices WHERE id = %lld AND "
                                         "last_seen > now() - interval '5 minutes'", d->id), 1);
        json_decref(det);
        free(status);
    }

    /* every fault: a failure, its class and stage, within its time */
    for (size_t i = N_TYPES; i < ndev; i++) {
        const struct bdev *d = &devs[i];
        char *status;
        json_t *det = result_details(job, d->id, 0, &status);
        const char *cls = json_string_value(json_object_get(det, "class"));
        const char *stage = json_string_value(json_object_get(det, "stage"));
        double ms = json_number_value(json_object_get(det, "duration_ms"));
        char *text = json_dumps(det, 0);

        ck_assert_msg(strcmp(status, "failure") == 0, "%s: %s", d->name, status);
        ck_assert_msg(cls && stage && strcmp(cls, d->cls) == 0 && strcmp(stage, d->stage) == 0,
                      "%s: %s, want %s at %s", d->name, text, d->cls, d->stage);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(det, "error")));
        ck_assert_msg(ms > 0 && ms < d->max_ms, "%s took %.0f ms (limit %.0f): %s", d->name, ms,
                      d->max_ms, text);
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations WHERE "
                                         "device_id = %lld", d->id), 0);
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM devices WHERE id = %lld AND "
                                         "last_seen IS NULL", d->id), 1);
        fprintf(stderr, "  %-9s %s at %s in %.0f ms\n", d->name, cls, stage, ms);
        free(text);
        json_decref(det);
        free(status);
    }
    /* "reject" refused both credentials; the spare one was never needed elsewhere */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT (details->>'credentials_tried')::int FROM "
                                     "job_results WHERE job_id = %lld AND device_id = %lld",
                                 job, devs[N_TYPES].id), 2);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM credentials WHERE id = %lld AND "
                                     "last_used IS NOT NULL AND success_rate > 0.5", cred_good),
                     1);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM credentials WHERE id = %lld AND "
                                     "last_used IS NOT NULL AND success_rate < 1", cred_spare),
                     1);

    /* connection life cycle in `logs`: one disconnect per device that had a
     * TCP connection (all but nolisten), then each device's rows in order */
    ck_assert_msg(nrt_wait_sql(db, "14", 15, "SELECT count(DISTINCT device_id) FROM logs WHERE "
                               "job_id = %lld AND log_type = 'connection' AND message LIKE "
                               "'Disconnected from %%'", job),
                  "not every device has its 'Disconnected' row");
    for (size_t i = 0; i < N_TYPES; i++)
        check_life_cycle(job, &devs[i], 0);
    for (size_t i = N_TYPES; i < ndev; i++) {
        const struct bdev *d = &devs[i];

        /* one session per credential tried: two for "reject", else one */
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                         "device_id = %lld AND log_type = 'connection' AND "
                                         "message LIKE 'Connecting to %%'", job, d->id),
                         strcmp(d->name, "reject") == 0 ? 2 : 1);
        ck_assert_int_ge(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                         "device_id = %lld AND log_type = 'connection' AND "
                                         "level = 'ERROR' AND meta->>'class' = '%s' AND "
                                         "meta->>'stage' = '%s'", job, d->id, d->cls, d->stage),
                         1);
    }
    ck_assert(nrt_wait_sql(db, "1", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "log_type = 'job' AND message LIKE 'Worker job execution finished%%' "
                           "AND meta->>'status' = 'COMPLETED_PARTIAL_FAILURE'", job));

    /* ---- second run: nothing changed, nothing stored */
    last_result = nrt_sql_int(db, "SELECT max(id) FROM job_results");
    out = enqueue_wait(job, NULL, 0);
    ck_assert_msg(strstr(out, "COMPLETED_PARTIAL_FAILURE") != NULL, "enqueue printed: %s", out);
    free(out);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE id > %lld", 
                                 last_result), (long long)ndev);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE id > %lld AND "
                                     "status = 'success' AND details->'deduplicated' = "
                                     "'true'::jsonb", last_result), N_TYPES);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE id > %lld AND "
                                     "status = 'success'", last_result), N_TYPES);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations"), N_TYPES);
    ck_assert(nrt_wait_sql(db, "9", 15, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                           "message LIKE 'Configuration of %%unchanged%%'", job));

    /* ---- devsim's next config revision, the good devices only: new snapshots */
    ck_assert_int_eq(kill(devsim.pid, SIGUSR1), 0);
    for (size_t i = 0; i < N_TYPES; i++)
        ids[i] = devs[i].id;
    last_result = nrt_sql_int(db, "SELECT max(id) FROM job_results");
    /* SIGUSR1 is handled by devsim's loop: wait until it says so */
    {
        bool bumped = false;

        for (int k = 0; k < 250 && !bumped; k++) {
            char *e = nrt_read_file(devsim.err_path);

            bumped = e && strstr(e, "config revision is now 1");
            free(e);
            if (!bumped)
                usleep(20000);
        }
        ck_assert_msg(bumped, "devsim did not take the new config revision");
    }
    out = enqueue_wait(job, ids, N_TYPES);
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "enqueue printed: %s", out);
    free(out);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE id > %lld AND "
                                     "status = 'success' AND details->'deduplicated' = "
                                     "'false'::jsonb", last_result), N_TYPES);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations"),
                     2 * N_TYPES);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(DISTINCT data_hash) FROM "
                                     "device_configurations"), 2 * N_TYPES);

    /* ---- everything flushed: stop the worker, then read every sink */
    worker_stop_ok();
    sub_finish(&sub);

    /* the session stream: record shape on both channels, one device in order */
    {
        size_t on_job = 0, on_prefix = 0;
        bool streamed[N_ARRAY(devs)] = { false };

        for (size_t i = 0; i < sub.n; i++) {
            json_t *o = json_loads(sub.payload[i], 0, NULL);
            const char *keys[] = { "timestamp", "log_type", "level", "job_id", "device_id",
                                   "source", "message", "meta" };

            ck_assert_msg(json_is_object(o), "not JSON: %s", sub.payload[i]);
            for (size_t k = 0; k < N_ARRAY(keys); k++)
                ck_assert_msg(json_object_get(o, keys[k]) != NULL, "no '%s' in %s", keys[k],
                              sub.payload[i]);
            ck_assert_msg(json_integer_value(json_object_get(o, "job_id")) == job,
                          "a record of another job: %s", sub.payload[i]);
            ck_assert_msg(strcmp(json_string_value(json_object_get(o, "log_type")), "session")
                          == 0, "not a session record: %s", sub.payload[i]);
            if (strncmp(sub.channel[i], "session-logs:", 13) == 0) {
                json_int_t dev = json_integer_value(json_object_get(o, "device_id"));
                size_t k = 0;

                while (k < ndev && devs[k].id != dev)
                    k++;
                ck_assert_msg(k < ndev, "a record without one of the devices: %s",
                              sub.payload[i]);
                streamed[k] = true;
                on_job++;
            } else {
                on_prefix++;
            }
            json_decref(o);
        }
        /* every device that said something in its shell has its stream
         * ("hang" opens one and stays silent) */
        for (size_t k = 0; k < ndev; k++)
            ck_assert_msg(streamed[k] == (devs[k].cls == NULL ||
                                          strcmp(devs[k].stage, "command") == 0 ||
                                          strcmp(devs[k].stage, "enable") == 0),
                          "%s: session records %s", devs[k].name,
                          streamed[k] ? "present" : "missing");
        fprintf(stderr, "  redis: %zu records on session-logs:%lld, %zu on netraven-logs\n",
                on_job, job, on_prefix);
        ck_assert_uint_gt(on_job, 100);
        ck_assert_uint_eq(on_job, on_prefix);
        for (size_t i = 0; i < N_TYPES; i++)
            if (strcmp(devs[i].type, "cisco_ios") == 0 || strcmp(devs[i].type, "juniper_junos")
                == 0 || strcmp(devs[i].type, "linux") == 0)
                check_session_stream(&sub, job, &devs[i]);
    }
    /* session records are not rows */
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE log_type = 'session'"), 0);

    /* ---- no secret anywhere */
    {
        char *so = nrt_proc_stdout(&worker), *se = nrt_read_file(worker.err_path);
        char *lf = nrt_read_file(log_file);

        ck_assert_msg(strstr(so, "Session log: sent") != NULL,
                      "stdout at debug has no session records");
        ck_assert_msg(lf && strstr(lf, "Session log: received") &&
                      strstr(lf, "Connected to 'bk-ios'"), "the log file is incomplete");
        assert_no_secret("the worker's stdout", so);
        assert_no_secret("the worker's stderr", se ? se : "");
        assert_no_secret("the log file", lf);
        assert_redacted("the worker's stdout", so);
        assert_redacted("the log file", lf);
        free(so);
        free(se);
        free(lf);
        for (size_t i = 0; i < sub.n; i++) {
            assert_no_secret("a Redis message", sub.payload[i]);
            assert_redacted("a Redis message", sub.payload[i]);
        }
        assert_no_secret_sql("logs", "SELECT string_agg(coalesce(message, '') || ' ' || "
                                     "coalesce(meta::text, '') || ' ' || coalesce(source, ''), "
                                     "E'\\n') FROM logs");
        assert_no_secret_sql("job_results", "SELECT string_agg(details::text, E'\\n') FROM "
                                            "job_results");
        assert_no_secret_sql("device_configurations",
                             "SELECT string_agg(config_data || config_metadata::text, E'\\n') "
                             "FROM device_configurations");
        {
            char *all = nrt_sql_str(db, "SELECT string_agg(config_data, E'\\n') FROM "
                                        "device_configurations");

            assert_redacted("device_configurations", all);
            free(all);
        }
        ck_assert_int_gt(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld", job),
                         100);
    }
    sub_clear(&sub);
    nrt_proc_clear(&worker);
    free(log_file);
}
END_TEST

static Suite *backup_suite(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("end to end");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    nrt_add_test(tc, config_backup_end_to_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(backup_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
