/*
 * test_fleet.c - real fleets (issue 8): one config backup per row of the
 * device-type table, through the worker binary against devsim's profile of
 * that platform, and one device per shape that real sessions show (escape
 * sequences around prompts, bracketed paste, "\r\r\n", pagers erased by
 * backspaces or carriage returns, a log line after a pager, a pager in the
 * middle of a line, banners with '#' and '>' lines, blanks in prompts, a
 * lone "> " prompt, a log line in the middle of the output), and a device
 * that prints the login password, the enable secret and a community.
 *
 * The oracle is devsim itself: `devsim --print-config NAME` prints what the
 * device prints for its configuration command(s), without what changes by
 * itself.  For every device the stored snapshot must equal that text line
 * for line, except lines that hold a secret or a redaction keyword, which
 * must read "[REDACTED LINE] (<kind>)"; its data_hash is its sha256; a
 * second run stores nothing new although devsim's volatile lines changed.
 * Then no password, enable secret or community is in any table, the
 * worker's stdout, its log file or anything published on Redis.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

#define DEVSIM  NR_BUILD_ROOT "/tools/devsim/devsim"

/* Secrets free of redaction keywords and of characters JSON or SQL escape,
 * so that a substring search finds them anywhere. */
#define PW      "fleetLogin-Pw.4xQe"
#define ES      "fleetEnable-Sec.9gTz"
#define MASTER  "fleet-master-key.Hr2wQ"
#define TMO     "4"

#define N_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

struct fdev {
    const char *name;       /* devsim name and hostname: "fl-" name */
    const char *db_type;    /* devices.device_type */
    const char *sim_type;   /* devsim's device_type */
    const char *yaml;       /* extra inventory fields */
    long long   id;
    char        ip[32];
};

#define TYPE(t)         { .name = t, .db_type = t, .sim_type = t, .yaml = "" }
#define SHAPE(n, t, y)  { .name = n, .db_type = t, .sim_type = t, .yaml = y }

static struct fdev devs[] = {
    /* every row of the table NetRaven's users can pick, and its neighbours */
    TYPE("cisco_ios"), TYPE("cisco_xe"), TYPE("cisco_nxos"), TYPE("cisco_asa"),
    TYPE("cisco_xr"), TYPE("juniper_junos"), TYPE("arista_eos"), TYPE("hp_comware"),
    TYPE("hp_procurve"), TYPE("huawei"), TYPE("fortinet"), TYPE("paloalto_panos"),
    TYPE("f5_tmsh"), TYPE("linux"), TYPE("dell_os10"), TYPE("dell_os6"), TYPE("dell_os9"),
    TYPE("aruba_aoscx"), TYPE("aruba_os"), TYPE("mikrotik_routeros"),
    TYPE("ruckus_fastiron"), TYPE("extreme_exos"), TYPE("vyos"), TYPE("cumulus_linux"),
    TYPE("ciena_saos"), TYPE("sonicwall_sshd"), TYPE("checkpoint_gaia"), TYPE("cisco_ftd"),
    TYPE("cisco_wlc"),
    /* a name NetRaven or Netmiko uses for a row */
    { .name = "brocade", .db_type = "brocade_fastiron", .sim_type = "ruckus_fastiron",
      .yaml = "" },
    /* what real sessions print */
    SHAPE("ansi", "cisco_ios", "ansi_prompt: true"),
    SHAPE("paste", "linux", "bracketed_paste: true"),
    SHAPE("crcrlf", "arista_eos", "line_end: crcrlf"),
    /* pagers the worker must answer: the paging-off command is ignored */
    SHAPE("pglog", "cisco_ios", "pager_sticky: true, pager_log: true"),
    SHAPE("pgmid", "cisco_ios", "pager_sticky: true, pager_midline: true"),
    SHAPE("pgbs", "cisco_nxos", "pager_sticky: true, pager_erase: bs"),
    SHAPE("pgcr", "cisco_ios", "pager_sticky: true, pager_erase: cr"),
    SHAPE("pgansi", "huawei", "pager_sticky: true"),
    SHAPE("pghp", "hp_procurve", "pager_sticky: true"),
    SHAPE("pgjunos", "juniper_junos", "pager_sticky: true"),
    SHAPE("pgnxlog", "cisco_nxos", "pager_sticky: true, pager_log: true"),
    /* no paging-off command: the pager is answered */
    SHAPE("pgfg", "fortinet", "pager: true"),
    SHAPE("pgftd", "cisco_ftd", "pager: true"),
    SHAPE("banner", "cisco_ios",
          "banner: \"#####################\\nrouter#\\nswitch>\\nadmin@fw> \\n# no prompt >\\n"
          "#####################\\n\""),
    SHAPE("blank", "cisco_ios", "prompt: \"%h > \", priv_prompt: \"%h # \""),
    SHAPE("node", "checkpoint_gaia", "prompt: \"(%h) [standalone: master] > \""),
    SHAPE("asynclog", "cisco_ios", "async_log: true"),
    SHAPE("leak", "cisco_ios", "leak_secrets: true"),
};

static PGconn *db;
static struct nrt_proc devsim, worker;
static bool devsim_up, worker_up;
static char *suite_dir, *inventory, *log_file;

/* ---- devsim ------------------------------------------------------------------ */

static bool devsim_try(unsigned net, int port)
{
    char *state;
    FILE *f;

    for (size_t i = 0; i < N_ARRAY(devs); i++)
        snprintf(devs[i].ip, sizeof(devs[i].ip), "127.%u.%u.%zu", 80 + net / 200, net % 200,
                 i + 1);
    free(inventory);
    if (asprintf(&inventory, "%s/inventory.yaml", suite_dir) < 0 ||
        asprintf(&state, "%s/devsim", suite_dir) < 0)
        abort();
    f = fopen(inventory, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  port: %d\n"
               "  accounts: [{username: admin, password: \"%s\"}]\n"
               "  enable_secret: \"%s\"\n  config_kb: 6\n  latency_ms: 2\n"
               "devices:\n", port, PW, ES);
    for (size_t i = 0; i < N_ARRAY(devs); i++)
        fprintf(f, "  - {name: fl-%s, type: %s, listen: %s%s%s}\n", devs[i].name,
                devs[i].sim_type, devs[i].ip, devs[i].yaml[0] ? ", " : "", devs[i].yaml);
    fclose(f);
    bool ready = nrt_devsim_start(&devsim, inventory, state);
    free(state);
    return ready;
}

static int dev_port;

static void devsim_start(void)
{
    unsigned seed = (unsigned)getpid() * 7919u;

    suite_dir = nrt_tmpdir("fleet");
    for (unsigned attempt = 0; attempt < 8; attempt++, seed += 104729u) {
        dev_port = 10000 + (int)(seed % 22000);
        if (devsim_try(seed % 4000, dev_port)) {
            devsim_up = true;
            return;
        }
    }
    ck_abort_msg("devsim did not start (built at %s?)", DEVSIM);
}

/* What devsim says device fl-NAME prints for its configuration. */
static char *devsim_config(const char *name)
{
    char *cmd, *out = NULL;
    size_t cap = 0, len = 0, n;
    char buf[8192];
    FILE *p;

    if (asprintf(&cmd, "%s -i %s --print-config fl-%s", DEVSIM, inventory, name) < 0)
        abort();
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) {
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            out = realloc(out, cap);
        }
        memcpy(out + len, buf, n);
        len += n;
    }
    ck_assert_msg(pclose(p) == 0, "'%s' failed", cmd);
    ck_assert_msg(len > 0, "'%s' printed nothing", cmd);
    out[len] = '\0';
    free(cmd);
    return out;
}

/* ---- the credential, as NetRaven's API stores it ------------------------------ */

static char *token;

static void make_token(void)
{
    const char *pw = PW;

    nrt_fernet_tokens(MASTER, NULL, &pw, 1, &token);
}

/* ---- Redis: everything published while the jobs run ---------------------------- */

#define SENTINEL "{\"fleet\":\"end\"}"

struct sub {
    redisContext *c;
    pthread_t     th;
    char         *all;          /* every payload, one after the other */
    size_t        len, cap;
    bool          done;
};

static void *sub_main(void *arg)
{
    struct sub *s = arg;
    redisReply *r;

    while (redisGetReply(s->c, (void **)&r) == REDIS_OK) {
        /* "pmessage", pattern, channel, payload */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 && r->element[3]->str) {
            const redisReply *m = r->element[3];

            if (strcmp(m->str, SENTINEL) == 0) {
                s->done = true;
                freeReplyObject(r);
                break;
            }
            size_t n = m->len;
            if (s->len + n + 2 > s->cap) {
                s->cap = 2 * (s->len + n + 2);
                s->all = realloc(s->all, s->cap);
            }
            memcpy(s->all + s->len, m->str, n);
            s->len += n;
            s->all[s->len++] = '\n';
            s->all[s->len] = '\0';
        }
        freeReplyObject(r);
    }
    return NULL;
}

static void sub_start(struct sub *s)
{
    struct timeval tv = { 120, 0 };
    redisReply *r;

    memset(s, 0, sizeof(*s));
    s->c = nrt_redis();
    redisSetTimeout(s->c, tv);
    r = redisCommand(s->c, "PSUBSCRIBE *");
    ck_assert_msg(r && r->type == REDIS_REPLY_ARRAY, "PSUBSCRIBE failed");
    freeReplyObject(r);
    ck_assert_int_eq(pthread_create(&s->th, NULL, sub_main, s), 0);
}

static void sub_finish(struct sub *s)
{
    redisContext *pub = nrt_redis();
    redisReply *r = redisCommand(pub, "PUBLISH fleet-end %s", SENTINEL);

    ck_assert_msg(r && r->type == REDIS_REPLY_INTEGER && r->integer >= 1, "PUBLISH failed");
    freeReplyObject(r);
    redisFree(pub);
    pthread_join(s->th, NULL);
    ck_assert_msg(s->done, "the subscriber stopped early");
    ck_assert_msg(s->len > 0, "nothing was published");
    redisFree(s->c);
}

/* ---- worker ---------------------------------------------------------------------- */

/* The worker, with one more NETRAVEN_* setting (or NULL). */
static void worker_start(const char *setting)
{
    char *argv[] = { (char *)nrt_worker_bin(), "run", NULL };
    char *spool = NULL, *file = NULL;

    free(log_file);
    if (asprintf(&spool, "NETRAVEN_WORKER__SPOOL_DIR=%s/spool", suite_dir) < 0 ||
        asprintf(&log_file, "%s/log/worker.log", suite_dir) < 0 ||
        asprintf(&file, "NETRAVEN_LOGGING__FILE=%s", log_file) < 0)
        abort();
    char *extra[] = {
        "NETRAVEN_ENV=dev",
        "NETRAVEN_SECURITY__ENCRYPTION_KEY=" MASTER,
        "NETRAVEN_SSH__ENABLE_SECRET=" ES,
        "NETRAVEN_LOGGING__LEVEL=debug",
        "NETRAVEN_WORKER__THREAD_POOL_SIZE=24",
        "NETRAVEN_WORKER__CONNECTION_TIMEOUT=" TMO,
        "NETRAVEN_WORKER__COMMAND_TIMEOUT=" TMO,
        "NETRAVEN_WORKER__RETRY_ATTEMPTS=0",
        spool, file, (char *)setting, NULL,
    };
    nrt_proc_start(&worker, argv, extra);
    worker_up = true;
    free(spool);
    free(file);
}

static char *enqueue_wait(long long job)
{
    char jobbuf[24];
    char *argv[] = { (char *)nrt_worker_bin(), "enqueue", jobbuf, "--wait", "--timeout", "100",
                     NULL };
    struct nrt_proc p;

    snprintf(jobbuf, sizeof(jobbuf), "%lld", job);
    nrt_proc_start(&p, argv, NULL);
    ck_assert_msg(nrt_proc_wait(&p, 120), "enqueue --wait did not return");
    ck_assert_msg(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "enqueue failed");
    char *out = nrt_proc_stdout(&p);
    nrt_proc_clear(&p);
    return out;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- fixtures -------------------------------------------------------------------- */

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
    free(inventory);
    free(log_file);
    free(token);
    suite_dir = inventory = log_file = token = NULL;
}

/* ---- the oracle -------------------------------------------------------------------- */

/* The kind a stored line must name, or NULL when it is kept as printed:
 * the session's secrets first, then the leftmost redaction keyword. */
static const char *kind_of(const char *line)
{
    static const char *const words[] = { "password", "secret", "community" };
    const char *kind = NULL, *first = NULL;

    if (strstr(line, PW))
        return "login password";
    if (strstr(line, ES))
        return "enable secret";
    if (strstr(line, " ENC "))             /* FortiOS: encrypted, new at each display */
        return "encrypted value";
    for (size_t i = 0; i < N_ARRAY(words); i++) {
        const char *h = strcasestr(line, words[i]);

        if (h && (first == NULL || h < first)) {
            first = h;
            kind = words[i];
        }
    }
    return kind;
}

/* The stored text against devsim's: line for line.  Returns the number of
 * redacted lines of each kind in counts[0..3) (login password, enable
 * secret, community). */
static void compare(const struct fdev *d, const char *want, const char *got, size_t counts[3])
{
    const char *a = want, *b = got;
    size_t line = 0;

    while (*a || *b) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        char *wl = strndup(a, la), *gl = strndup(b, lb);
        const char *kind = kind_of(wl);

        line++;
        ck_assert_msg(*a && *b, "fl-%s: line %zu: %s", d->name, line,
                      *a ? "the snapshot ends early" : "the snapshot has more lines");
        if (kind) {
            char marker[64];

            snprintf(marker, sizeof marker, "[REDACTED LINE] (%s)", kind);
            ck_assert_msg(strcmp(gl, marker) == 0, "fl-%s: line %zu should read '%s', "
                          "reads '%s'", d->name, line, marker, gl);
            counts[0] += strcmp(kind, "login password") == 0;
            counts[1] += strcmp(kind, "enable secret") == 0;
            counts[2] += strcmp(kind, "community") == 0;
        } else {
            ck_assert_msg(strcmp(wl, gl) == 0, "fl-%s: line %zu is '%s', the device printed "
                          "'%s'", d->name, line, gl, wl);
        }
        free(wl);
        free(gl);
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
}

static void assert_clean(const char *what, const char *text, const char *community)
{
    ck_assert_msg(text != NULL, "%s: nothing to scan", what);
    ck_assert_msg(strstr(text, PW) == NULL, "%s holds the login password", what);
    ck_assert_msg(strstr(text, ES) == NULL, "%s holds the enable secret", what);
    ck_assert_msg(strstr(text, MASTER) == NULL, "%s holds the master key", what);
    ck_assert_msg(strstr(text, token) == NULL, "%s holds the credential's token", what);
    if (community)
        ck_assert_msg(strstr(text, community) == NULL, "%s holds the community '%s'", what,
                      community);
}

/* The community string of the leaking device: the word after "community". */
static char *community_of(const char *config)
{
    const char *h = strcasestr(config, "community");

    ck_assert_msg(h != NULL, "fl-leak prints no community");
    h += strlen("community");
    while (*h == ' ' || *h == '"')
        h++;
    size_t n = strcspn(h, " \"\n");
    ck_assert_uint_ge(n, 4);
    return strndup(h, n);
}

/* ---- the test ----------------------------------------------------------------------- */

START_TEST(every_platform_and_shape)
{
    const size_t ndev = N_ARRAY(devs);
    long long tag, job, cred, snaps;
    char *out, *want[N_ARRAY(devs)], *community = NULL;
    size_t leak_counts[3] = { 0, 0, 0 };
    struct sub sub;

    devsim_start();
    make_token();
    tag = nrt_sql_int(db, "INSERT INTO tags (name, type) VALUES ('fleet', 'device') "
                          "RETURNING id");
    for (size_t i = 0; i < ndev; i++) {
        devs[i].id = nrt_sql_int(db,
            "INSERT INTO devices (hostname, ip_address, device_type, port, source) "
            "VALUES ('fl-%s', '%s', '%s', %d, 'local') RETURNING id",
            devs[i].name, devs[i].ip, devs[i].db_type, dev_port);
        PQclear(nrt_sql(db, "INSERT INTO device_tag_association VALUES (%lld, %lld)",
                        devs[i].id, tag));
        want[i] = devsim_config(devs[i].name);
    }
    cred = nrt_sql_int(db, "INSERT INTO credentials (username, password, priority, "
                           "description, is_system) VALUES ('admin', '%s', 10, 'fleet', false) "
                           "RETURNING id", token);
    PQclear(nrt_sql(db, "INSERT INTO credential_tag_association VALUES (%lld, %lld)", cred,
                    tag));
    job = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, "
                          "schedule_type) VALUES ('fleet', 'config_backup', 'PENDING', true, "
                          "'onetime') RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", job, tag));

    sub_start(&sub);
    worker_start(NULL);

    /* ---- first run: every device, a correct snapshot */
    double t0 = now_s();
    out = enqueue_wait(job);
    fprintf(stderr, "  first run: %.2f s\n", now_s() - t0);
    for (size_t i = 0; i < ndev; i++) {
        const struct fdev *d = &devs[i];
        char *st = nrt_sql_str(db, "SELECT status || ' ' || details::text FROM job_results "
                                   "WHERE job_id = %lld AND device_id = %lld", job, d->id);

        ck_assert_msg(st && strncmp(st, "success ", 8) == 0, "fl-%s (%s): %s", d->name,
                      d->db_type, st ? st : "no result");
        free(st);
    }
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "enqueue printed: %s", out);
    free(out);

    for (size_t i = 0; i < ndev; i++) {
        const struct fdev *d = &devs[i];
        size_t counts[3] = { 0, 0, 0 };
        char *got = nrt_sql_str(db, "SELECT config_data FROM device_configurations WHERE "
                                    "device_id = %lld", d->id);

        ck_assert_msg(got != NULL, "fl-%s: no snapshot", d->name);
        compare(d, want[i], got, counts);
        ck_assert_msg(strchr(got, '\r') == NULL && strchr(got, '\x1b') == NULL &&
                      strchr(got, '\b') == NULL, "fl-%s: control bytes stored", d->name);
        ck_assert_msg(strstr(got, "--More--") == NULL && strstr(got, "-- MORE --") == NULL &&
                      strstr(got, "2004h") == NULL, "fl-%s: a pager or escape stored", d->name);
        ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations WHERE "
                                         "device_id = %lld AND data_hash = "
                                         "encode(sha256(convert_to(config_data, 'UTF8')), "
                                         "'hex')", d->id), 1);
        if (strcmp(d->name, "leak") == 0) {
            memcpy(leak_counts, counts, sizeof counts);
            community = community_of(want[i]);
        }
        free(got);
    }
    /* the leaking device: each secret found in its output, each named */
    ck_assert_msg(leak_counts[0] >= 1 && leak_counts[1] >= 1 && leak_counts[2] >= 1,
                  "fl-leak: %zu login password, %zu enable secret, %zu community lines",
                  leak_counts[0], leak_counts[1], leak_counts[2]);
    /* a volatile line was there to remove on the platforms that print them */
    ck_assert_int_gt(nrt_sql_int(db, "SELECT count(*) FROM job_results WHERE job_id = %lld "
                                     "AND (details->>'volatile_lines_removed')::int > 0", job),
                     10);

    /* ---- second run: the volatile lines changed, nothing else: no new snapshot */
    snaps = nrt_sql_int(db, "SELECT count(*) FROM device_configurations");
    ck_assert_int_eq(snaps, (long long)ndev);
    t0 = now_s();
    out = enqueue_wait(job);
    fprintf(stderr, "  second run: %.2f s\n", now_s() - t0);
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "second run: %s", out);
    free(out);
    PGresult *r = nrt_sql(db, "SELECT d.hostname FROM devices d JOIN device_configurations c "
                              "ON c.device_id = d.id GROUP BY d.hostname HAVING count(*) > 1");
    ck_assert_msg(PQntuples(r) == 0, "a second snapshot of %s (and %d more)",
                  PQntuples(r) ? PQgetvalue(r, 0, 0) : "", PQntuples(r) - 1);
    PQclear(r);

    /* ---- a command job whose command line holds the password, on the
     * device that prints it: shown and stored masked */
    long long leak_id = 0;
    for (size_t i = 0; i < ndev; i++)
        if (strcmp(devs[i].name, "leak") == 0)
            leak_id = devs[i].id;
    long long cjob = nrt_sql_int(db, "INSERT INTO jobs (name, job_type, status, is_enabled, "
                                     "schedule_type) VALUES ('fleet-cmd', 'command', 'PENDING', "
                                     "true, 'onetime') RETURNING id");
    PQclear(nrt_sql(db, "INSERT INTO job_tags VALUES (%lld, %lld)", cjob, tag));
    redisContext *rc = nrt_redis();
    char payload[512];
    snprintf(payload, sizeof payload, "{\"job_id\":%lld,\"job_type\":\"command\","
             "\"device_ids\":[%lld],\"commands\":[\"show running-config\","
             "\"show logging | include %s\"]}", cjob, leak_id, PW);
    redisReply *rr = redisCommand(rc, "XADD netraven:jobs * payload %s", payload);
    ck_assert_msg(rr && rr->type == REDIS_REPLY_STRING, "XADD failed");
    freeReplyObject(rr);
    redisFree(rc);
    ck_assert_msg(nrt_wait_sql(db, "t", 60, "SELECT status LIKE 'COMPLETED%%' FROM jobs "
                                            "WHERE id = %lld", cjob), "the command job did not end");
    char *det = nrt_sql_str(db, "SELECT details::text FROM job_results WHERE job_id = %lld",
                            cjob);
    ck_assert_ptr_nonnull(det);
    ck_assert_msg(strstr(det, "[REDACTED LINE] (login password)") != NULL,
                  "the command job's details name no login password: %s", det);
    free(det);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM logs WHERE job_id = %lld AND "
                                     "message LIKE 'Sent command ''[REDACTED LINE] (login "
                                     "password)''%%'", cjob), 1);

    /* ---- the first worker's output */
    nrt_proc_stop(&worker, 30);
    worker_up = false;
    ck_assert_msg(WIFEXITED(worker.status) && WEXITSTATUS(worker.status) == 0,
                  "worker did not exit 0 (status %d)", worker.status);
    {
        char *so = nrt_proc_stdout(&worker);
        assert_clean("stdout", so, community);
        ck_assert_ptr_nonnull(strstr(so, "fl-leak"));
        /* the pager devices were paged, and the worker answered */
        static const char *const paged[] = { "pglog", "pgmid", "pgbs", "pgcr", "pgansi", "pghp",
                                             "pgjunos", "pgnxlog", "pgfg", "pgftd" };
        for (size_t i = 0; i < N_ARRAY(paged); i++) {
            char pw[96];

            snprintf(pw, sizeof pw, "Pager prompt of 'fl-%s' answered", paged[i]);
            ck_assert_msg(strstr(so, pw) != NULL, "fl-%s was never paged", paged[i]);
        }
        ck_assert_ptr_null(strstr(so, "Pager prompt of 'fl-cisco_ios' answered"));
        free(so);
        char *se = nrt_read_file(worker.err_path);
        assert_clean("stderr", se ? se : "", community);
        free(se);
        nrt_proc_clear(&worker);
    }

    /* ---- keep_volatile for one type: its device stores the changed lines,
     * no other device stores anything */
    worker_start("NETRAVEN_WORKER__DEVICE_TYPES__CISCO_ASA__KEEP_VOLATILE=true");
    out = enqueue_wait(job);
    ck_assert_msg(strstr(out, "COMPLETED_SUCCESS") != NULL, "third run: %s", out);
    free(out);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations"),
                     (long long)ndev + 1);
    ck_assert_int_eq(nrt_sql_int(db, "SELECT count(*) FROM device_configurations c JOIN devices "
                                     "d ON d.id = c.device_id WHERE d.hostname = 'fl-cisco_asa' "
                                     "AND position('Cryptochecksum:' in c.config_data) > 0"), 1);
    nrt_proc_stop(&worker, 30);
    worker_up = false;
    ck_assert(WIFEXITED(worker.status) && WEXITSTATUS(worker.status) == 0);

    /* ---- no secret anywhere */
    {
        sub_finish(&sub);
        assert_clean("Redis messages", sub.all, community);
        free(sub.all);

        static const char *const tables[] = { "logs", "job_results", "device_configurations",
                                              "jobs", "devices" };
        for (size_t i = 0; i < N_ARRAY(tables); i++) {
            char *text = nrt_sql_str(db, "SELECT coalesce(string_agg(t::text, E'\\n'), '') "
                                         "FROM %s t", tables[i]);
            assert_clean(tables[i], text, community);
            free(text);
        }
        char *so = nrt_proc_stdout(&worker);
        assert_clean("stdout (second worker)", so, community);
        free(so);
        char *lf = nrt_read_file(log_file);
        assert_clean("the log file", lf, community);
        ck_assert_ptr_nonnull(strstr(lf, "fl-leak"));
        free(lf);
    }
    free(community);
    for (size_t i = 0; i < ndev; i++)
        free(want[i]);
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *tc = tcase_create("fleet");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 400);
    nrt_add_test(tc, every_platform_and_shape);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fleet_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
