/*
 * test_ssh.c - the SSH handlers and the CLI engine against devsim (a real
 * libssh server on loopback): a backup of every device type with the
 * right command and redaction, pagers left on, enable, every fault of
 * devsim ending in the right class within its timeout, host key policies,
 * the command handler, credential fallback, the output cap, and no
 * password or enable secret anywhere in what the log module writes.
 *
 * devsim is started once (unchecked fixture) with one device per type and
 * per fault; each test loads the configuration from config/ with its own
 * overrides, sends the log module's stdout (debug, JSON lines) to a file,
 * calls the handlers directly, then scans that file for secrets.
 */
#include <check.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <openssl/evp.h>

#include "harness.h"
#include "netraven/config.h"
#include "netraven/handler.h"
#include "netraven/log.h"
#include "netraven/queue.h"
#include "netraven/ssh.h"

#define PW      "Pw-9f3kQz!x"       /* login password of every device */
#define ES      "En-Secr3t!y"       /* enable secret of every device */
#define TMO     "2"                 /* connection and command timeouts, seconds */
#define TMO_S   2.0

struct tdev {
    const char *name;       /* devsim name; the device's hostname is "h-" name */
    const char *type;
    const char *yaml;       /* extra inventory fields */
    const char *prompt;     /* the device's privileged prompt, for the checks */
};


/* text less its redacted lines ("[REDACTED LINE] (kind)" names the keyword
 * it hid), so that what is left can be searched for keywords (malloc'd) */
static char *unmarked(const char *text)
{
    size_t n = strlen(text), o = 0;
    char *out = malloc(n + 1);

    for (const char *l = text; *l;) {
        size_t len = strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n');

        if (strncmp(l, "[REDACTED LINE]", 15) != 0) {
            memcpy(out + o, l, len);
            o += len;
        }
        l += len;
    }
    out[o] = '\0';
    return out;
}

static const struct tdev devs[] = {
    { "ios", "cisco_ios", "", "h-ios#" },
    { "xe", "cisco_xe", "", "h-xe#" },
    { "nxos", "cisco_nxos", "", "h-nxos#" },
    { "xr", "cisco_xr", "", "RP/0/RSP0/CPU0:h-xr#" },
    { "eos", "arista_eos", "", "h-eos#" },
    { "junos", "juniper_junos", "", "admin@h-junos>" },
    { "asa", "cisco_asa", "", "h-asa#" },
    { "panos", "paloalto_panos", "", "admin@h-panos>" },
    { "linux", "linux", "", "admin@h-linux:~$" },
    /* same hostname as "linux" (same config), pager on */
    { "linuxpg", "linux", "hostname: h-linux, pager: true, page_lines: 10", NULL },
    /* enable secret = login password: used when ssh.enable_secret is unset */
    { "iospw", "cisco_ios", "enable_secret: \"" PW "\"", NULL },
    { "reject", "cisco_ios", "faults: [reject_auth]", NULL },
    { "hang", "cisco_ios", "faults: [hang_after_auth]", NULL },
    { "hangmid", "cisco_ios", "faults: [hang_mid_output]", NULL },
    { "disc", "cisco_ios", "faults: [disconnect_mid_output]", NULL },
    { "garbage", "cisco_ios", "faults: [garbage]", NULL },
    { "banner", "cisco_ios", "faults: [banner_prompts]", NULL },
    { "kbd", "cisco_ios", "faults: [kbdint_only]", NULL },
    { "trickle", "cisco_ios", "config_kb: 1, trickle_ms: 1", NULL },
    { "refuse", "cisco_ios", "faults: [refuse_times=1000000]", NULL },
    { "slowban", "cisco_ios", "faults: [delay_banner_ms=30000]", NULL },
    { "hk", "cisco_ios", "host_key: per-device", NULL },
    { "both", "cisco_ios", "host_key: both", NULL },         /* ed25519 and rsa */
    /* an old box: SHA-1 key exchange and MAC only */
    { "legacy", "cisco_ios", "kex: diffie-hellman-group14-sha1, macs: hmac-sha1, "
                             "ciphers: aes128-ctr", NULL },
    { "lat50", "cisco_ios", "latency_ms: 50, config_kb: 20", NULL },
    { "lat200", "cisco_ios", "latency_ms: 200, config_kb: 20", NULL },
    { "nolisten", "cisco_ios", NULL, NULL },     /* not served: port refuses */
};

/* ---- devsim (parent process, once) ------------------------------------- */

static struct nrt_proc devsim;
static int base_port;
static char *suite_dir;

static int port_of(const char *name)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(devs); i++)
        if (strcmp(devs[i].name, name) == 0)
            return base_port + (int)i;
    ck_abort_msg("no test device %s", name);
    return 0;
}

static const struct tdev *tdev_of(const char *name)
{
    return &devs[port_of(name) - base_port];
}

static bool devsim_try(int base)
{
    char *inv, *state;
    FILE *f;

    base_port = base;
    if (asprintf(&inv, "%s/inventory-%d.yaml", suite_dir, base) < 0 ||
        asprintf(&state, "%s/devsim", suite_dir) < 0)
        abort();
    f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "defaults:\n  listen: 127.0.0.1\n"
               "  accounts: [{username: admin, password: \"%s\"}]\n"
               "  enable_secret: \"%s\"\n  config_kb: 4\n  latency_ms: 2\n"
               "devices:\n", PW, ES);
    for (size_t i = 0; i < NR_ARRAY_LEN(devs); i++) {
        if (devs[i].yaml == NULL)
            continue;
        fprintf(f, "  - {name: %s, hostname: h-%s, type: %s, port: %d%s%s}\n", devs[i].name,
                devs[i].name, devs[i].type, base + (int)i, devs[i].yaml[0] ? ", " : "",
                devs[i].yaml);
    }
    fclose(f);
    bool ready = nrt_devsim_start(&devsim, inv, state);
    free(inv);
    free(state);
    return ready;
}

static void devsim_start(void)
{
    suite_dir = nrt_tmpdir("ssh");
    /* Ports below the ephemeral range (32768 on), where only listeners can
     * collide: devsim exits when one of its ports is taken, and another
     * range is tried. */
    for (int attempt = 0; attempt < 8; attempt++)
        if (devsim_try(10000 + (int)((getpid() * 7919u + (unsigned)attempt * 104729u) % 22000)))
            return;
    ck_abort_msg("devsim did not start (built at %s?)", NR_BUILD_ROOT "/tools/devsim/devsim");
}

static void devsim_stop(void)
{
    nrt_proc_stop(&devsim, 2);
    nrt_proc_clear(&devsim);
    free(suite_dir);
}

/* ---- per test: configuration and log capture ---------------------------- */

static struct nr_config cfg;
static char *test_dir, *capture_path;
static int saved_stdout = -1;

static void test_begin(const char *tag, char *const extra[])
{
    char *env[24], *err = NULL;
    size_t n = 0;

    test_dir = nrt_tmpdir(tag);
    env[n++] = "NETRAVEN_ENV=dev";
    env[n++] = "NETRAVEN_WORKER__CONNECTION_TIMEOUT=" TMO;
    env[n++] = "NETRAVEN_WORKER__COMMAND_TIMEOUT=" TMO;
    env[n++] = "NETRAVEN_SSH__ENABLE_SECRET=" ES;
    env[n++] = "NETRAVEN_LOGGING__LEVEL=debug";
    env[n++] = "NETRAVEN_LOGGING__FORMAT=json";
    env[n++] = "NETRAVEN_LOGGING__REDIS__ENABLED=false";
    if (asprintf(&env[n++], "NETRAVEN_WORKER__SPOOL_DIR=%s", test_dir) < 0)
        abort();
    for (size_t k = 0; extra && extra[k]; k++)
        env[n++] = extra[k];
    env[n] = NULL;
    ck_assert_msg(nr_config_load(&cfg, NR_SOURCE_ROOT "/config", env, &err) == 0, "config: %s",
                  err);
    free(env[7]);
    free(cfg.database.url);                 /* no DB sink in these tests */
    cfg.database.url = NULL;

    if (asprintf(&capture_path, "%s/stdout.jsonl", test_dir) < 0)
        abort();
    fflush(stdout);
    saved_stdout = dup(1);
    {
        int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        ck_assert_int_ge(fd, 0);
        dup2(fd, 1);
        close(fd);
    }
    ck_assert_int_eq(nr_log_init(&cfg), 0);
}

static void assert_no_secret(const char *what, const char *text)
{
    if (text == NULL)
        return;
    ck_assert_msg(strstr(text, PW) == NULL, "the password appears in %s", what);
    ck_assert_msg(strstr(text, ES) == NULL, "the enable secret appears in %s", what);
}

/* Stops logging, restores stdout; returns what was logged (caller frees),
 * after checking it holds no secret. */
static char *test_end(void)
{
    char *text;

    nr_log_flush(5);
    nr_log_shutdown();
    fflush(stdout);
    dup2(saved_stdout, 1);
    close(saved_stdout);
    text = nrt_read_file(capture_path);
    ck_assert_ptr_nonnull(text);
    assert_no_secret("the log output", text);
    nr_config_clear(&cfg);
    free(capture_path);
    free(test_dir);
    return text;
}

/* ---- running handlers ----------------------------------------------------- */

struct run {
    struct nr_result res;
    double ms;
    const char *cls, *stage;    /* from details; NULL on success */
};

static struct nr_credential cred_ok = { .id = 1, .username = "admin", .password = PW };

static void run_handler(nr_handler_fn fn, const char *name, const struct nr_credential *creds,
                        size_t ncreds, const struct nr_payload *payload, struct run *r)
{
    const struct tdev *td = tdev_of(name);
    char host[80];
    struct nr_device dev = { .id = port_of(name) - base_port + 1, .ip_address = "127.0.0.1",
                             .port = port_of(name), .device_type = (char *)td->type,
                             .hostname = host };
    struct nr_job job = { .id = 42, .name = "ssh-test" };
    struct nr_handler_ctx ctx = { .cfg = &cfg, .job = &job, .device = &dev, .payload = payload,
                                  .creds = creds, .ncreds = ncreds };
    char *dump;
    double t0;

    snprintf(host, sizeof(host), "h-%s", name);
    memset(r, 0, sizeof(*r));
    t0 = nr_mono_ms();
    fn(&ctx, &r->res);
    r->ms = nr_mono_ms() - t0;
    ck_assert_ptr_nonnull(r->res.details);
    dump = json_dumps(r->res.details, 0);
    assert_no_secret("the details", dump);
    assert_no_secret("the config", r->res.config);
    if (!r->res.success) {
        r->cls = json_string_value(json_object_get(r->res.details, "class"));
        r->stage = json_string_value(json_object_get(r->res.details, "stage"));
        ck_assert_ptr_nonnull(r->cls);
        ck_assert_ptr_nonnull(r->stage);
        ck_assert_ptr_nonnull(json_string_value(json_object_get(r->res.details, "error")));
        ck_assert_ptr_null(r->res.config);
        ck_assert(!r->res.device_seen);
    }
    fprintf(stderr, "  %-8s %-9s %8.1f ms  %s\n", name, r->res.success ? "ok" : "failed", r->ms,
            r->res.success ? "" : dump);
    free(dump);
}

static void backup(const char *name, struct run *r)
{
    run_handler(nr_handler_config_backup, name, &cred_ok, 1, NULL, r);
}

static void run_clear(struct run *r)
{
    json_decref(r->res.details);
    free(r->res.config);
    memset(r, 0, sizeof(*r));
}

static const char *dstr(const struct run *r, const char *key)
{
    return json_string_value(json_object_get(r->res.details, key));
}

static long long dint(const struct run *r, const char *key)
{
    return json_integer_value(json_object_get(r->res.details, key));
}

static size_t count_lines(const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k + (n > 0 && s[n - 1] != '\n');
}

/* ---- every device type ----------------------------------------------------- */

static void check_backup(const char *name, const struct run *r, const struct run *raw)
{
    const struct tdev *td = tdev_of(name);
    const struct nr_devtype *type = nr_devtype_find(td->type);
    const char *cfgtext = r->res.config;
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[65];

    ck_assert_msg(r->res.success, "%s: backup failed", name);
    ck_assert(r->res.device_seen);
    ck_assert_ptr_nonnull(cfgtext);
    ck_assert_uint_eq(strlen(cfgtext), r->res.config_len);
    ck_assert_int_eq(dint(r, "bytes"), (long long)r->res.config_len);
    ck_assert_str_eq(dstr(r, "command"), type->config_cmds[0]);
    ck_assert_str_eq(dstr(r, "device_type"), td->type);
    ck_assert_str_eq(dstr(r, "username"), "admin");
    ck_assert_int_eq(dint(r, "credential_id"), 1);
    ck_assert(json_is_number(json_object_get(r->res.details, "duration_ms")));
    /* sha256 of exactly what is stored */
    ck_assert_int_eq(EVP_Digest(cfgtext, r->res.config_len, md, &mdlen, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ck_assert_str_eq(r->res.config_hash, hex);
    /* redaction: keywords gone, marker there, lines counted */
    ck_assert_msg(strstr(cfgtext, "[REDACTED LINE]") != NULL, "%s: nothing redacted", name);
    char *kept = unmarked(cfgtext);
    ck_assert_msg(nr_strcasestr(kept, "password") == NULL, "%s: a password line", name);
    ck_assert_msg(nr_strcasestr(kept, "secret") == NULL, "%s: a secret line", name);
    free(kept);
    ck_assert_int_gt(dint(r, "lines_redacted"), 0);
    /* framing: no echo, no prompt */
    ck_assert_msg(strncmp(cfgtext, type->config_cmds[0], strlen(type->config_cmds[0])) != 0,
                  "%s: the echo was kept", name);
    if (td->prompt)
        ck_assert_msg(strstr(cfgtext, td->prompt) == NULL, "%s: the prompt %s was kept", name,
                      td->prompt);
    ck_assert_msg(strchr(cfgtext, '\r') == NULL, "%s: CR in the config", name);

    /* Against the same config fetched without redaction: line for line. */
    if (raw) {
        const char *a = raw->res.config, *b = cfgtext;
        size_t redacted = 0;

        ck_assert_msg(raw->res.success, "%s: raw backup failed", name);
        ck_assert_uint_eq(count_lines(a, raw->res.config_len), count_lines(b, r->res.config_len));
        while (*a && *b) {
            size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
            char *line = strndup(a, la);
            const char *key = nr_strcasestr(line, "password") ? "password"
                              : nr_strcasestr(line, "secret")   ? "secret"
                              : nr_strcasestr(line, "community") ? "community" : NULL;

            if (key) {
                /* the marker says what the line held (its first keyword) */
                char want[64];
                const char *first = line + strlen(line);

                for (const char *k = "password"; k; k = strcmp(k, "password") == 0 ? "secret"
                                                       : strcmp(k, "secret") == 0 ? "community"
                                                                                  : NULL) {
                    const char *h = nr_strcasestr(line, k);
                    if (h && h < first) {
                        first = h;
                        key = k;
                    }
                }
                snprintf(want, sizeof want, "[REDACTED LINE] (%s)", key);
                ck_assert_msg(lb == strlen(want) && strncmp(b, want, lb) == 0,
                              "%s: line '%s' not redacted as '%s'", name, line, want);
                redacted++;
            } else {
                ck_assert_msg(la == lb && memcmp(a, b, la) == 0, "%s: line '%s' changed", name,
                              line);
            }
            free(line);
            a += la + (a[la] == '\n');
            b += lb + (b[lb] == '\n');
        }
        ck_assert(!*a && !*b);
        ck_assert_int_eq(dint(r, "lines_redacted"), (long long)redacted);
    }
}

START_TEST(every_device_type)
{
    static const char *const types[] = { "ios", "xe", "nxos", "xr", "eos", "junos", "asa",
                                         "panos", "linux" };
    struct nr_strlist keep;
    char *log;

    test_begin("types", NULL);
    for (size_t i = 0; i < NR_ARRAY_LEN(types); i++) {
        struct run r, raw;

        backup(types[i], &r);
        /* the same device without redaction patterns */
        keep = cfg.worker.redaction_patterns;
        memset(&cfg.worker.redaction_patterns, 0, sizeof(keep));
        backup(types[i], &raw);
        cfg.worker.redaction_patterns = keep;
        ck_assert_msg(nr_strcasestr(raw.res.config, "password") ||
                      nr_strcasestr(raw.res.config, "secret"),
                      "%s: devsim's config has no secret lines to redact", types[i]);
        ck_assert_int_eq(dint(&raw, "lines_redacted"), 0);
        check_backup(types[i], &r, &raw);
        run_clear(&r);
        run_clear(&raw);
    }
    log = test_end();
    /* the connection life cycle and the session stream are there */
    ck_assert_ptr_nonnull(strstr(log, "\"log_type\":\"session\""));
    ck_assert_ptr_nonnull(strstr(log, "\"direction\":\"sent\""));
    ck_assert_ptr_nonnull(strstr(log, "\"direction\":\"received\""));
    ck_assert_ptr_nonnull(strstr(log, "Connected to 'h-ios': kex "));
    ck_assert_ptr_nonnull(strstr(log, "SHA256:"));
    ck_assert_ptr_nonnull(strstr(log, "Authenticated to 'h-junos' as admin"));
    ck_assert_ptr_nonnull(strstr(log, "Sent command 'show configuration | display set'"));
    ck_assert_ptr_nonnull(strstr(log, "Disconnected from 'h-panos': session complete"));
    ck_assert_ptr_nonnull(strstr(log, "Privileged mode on 'h-asa'"));
    /* the enable secret went out masked */
    ck_assert_ptr_nonnull(strstr(log, "\"data\":\"********\\n\""));
    /* session lines with a keyword went out redacted */
    ck_assert_ptr_nonnull(strstr(log, "[REDACTED LINE]"));
    free(log);
}
END_TEST

/* ---- pagers --------------------------------------------------------------------- */

/* The config with paging off, then with the pager on (the type's command),
 * in one session: the same bytes. */
static void paged_is_unpaged(const char *name, const char *pager_on)
{
    const struct tdev *td = tdev_of(name);
    const struct nr_devtype *type = nr_devtype_find(td->type);
    char host[80];
    struct nr_ssh_target t = { .host = "127.0.0.1", .port = port_of(name), .device_name = host,
                               .job_id = 42, .device_id = 1, .username = "admin",
                               .password = PW };
    struct nr_cli *c;
    char *a = NULL, *b = NULL, *x = NULL;
    size_t an = 0, bn = 0, xn = 0;

    snprintf(host, sizeof(host), "h-%s", name);
    c = nr_cli_connect(&cfg, &t, type, ES);
    ck_assert_msg(c->ssh->err == NR_SSH_OK, "%s: %s", name, c->ssh->errstr);
    ck_assert(c->privileged);
    ck_assert_str_eq(c->prompt, td->prompt);
    ck_assert_int_eq(nr_cli_run(c, type->config_cmds[0], &a, &an, NULL), 0);
    ck_assert_int_eq(nr_cli_run(c, pager_on, &x, &xn, NULL), 0);
    ck_assert_int_eq(nr_cli_run(c, type->config_cmds[0], &b, &bn, NULL), 0);
    ck_assert_msg(an == bn && memcmp(a, b, an) == 0, "%s: paged output differs", name);
    ck_assert_uint_gt(an, 3000);
    nr_cli_free(c);
    free(a);
    free(b);
    free(x);
}

START_TEST(pager_left_on)
{
    struct run plain, paged;
    char *log;

    test_begin("pager", NULL);
    /* linux has no paging command: its pager is answered */
    backup("linux", &plain);
    backup("linuxpg", &paged);
    check_backup("linuxpg", &paged, NULL);
    ck_assert_str_eq(plain.res.config_hash, paged.res.config_hash);
    run_clear(&plain);
    run_clear(&paged);
    /* pager turned back on: backspace erase (IOS, EOS), CR erase (NX-OS,
     * Junos, ASA, PAN-OS) */
    paged_is_unpaged("ios", "terminal length 20");
    paged_is_unpaged("eos", "terminal length 20");
    paged_is_unpaged("nxos", "terminal length 20");
    paged_is_unpaged("junos", "set cli screen-length 10");
    paged_is_unpaged("asa", "terminal pager 10");
    paged_is_unpaged("panos", "set cli pager on");
    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "Pager prompt of 'h-linuxpg' answered"));
    ck_assert_ptr_nonnull(strstr(log, "Pager prompt of 'h-junos' answered"));
    free(log);
}
END_TEST

/* ---- enable ----------------------------------------------------------------------- */

START_TEST(enable_flow)
{
    struct run r;
    char *log;

    /* ssh.enable_secret set: used (IOS, EOS and ASA ask for it) */
    test_begin("enable", NULL);
    backup("ios", &r);
    ck_assert(r.res.success);
    run_clear(&r);
    /* a wrong secret: auth at the enable stage, at once */
    free(cfg.ssh.enable_secret);
    cfg.ssh.enable_secret = strdup("not-the-secret");
    backup("ios", &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "auth");
    ck_assert_str_eq(r.stage, "enable");
    ck_assert_double_lt(r.ms, 1500);
    run_clear(&r);
    backup("eos", &r);                      /* EOS: one try, then back to '>' */
    ck_assert_str_eq(r.cls, "auth");
    ck_assert_str_eq(r.stage, "enable");
    run_clear(&r);
    backup("nxos", &r);                     /* starts privileged: no enable */
    ck_assert(r.res.success);
    run_clear(&r);
    free(test_end());

    /* ssh.enable_secret unset: the login password is the secret */
    test_begin("enable-pw", NULL);
    free(cfg.ssh.enable_secret);
    cfg.ssh.enable_secret = NULL;
    backup("iospw", &r);
    check_backup("iospw", &r, NULL);
    run_clear(&r);
    backup("ios", &r);                      /* its secret is not the password */
    ck_assert_str_eq(r.cls, "auth");
    ck_assert_str_eq(r.stage, "enable");
    run_clear(&r);
    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "Privileged mode on 'h-iospw' (prompt h-iospw#)"));
    free(log);
}
END_TEST

/* ---- faults ---------------------------------------------------------------------- */

struct fault_case {
    const char *name;
    const char *cls;        /* NULL: must succeed; "any": success or a clean failure */
    const char *stage;
    double max_s;
};

START_TEST(faults)
{
    static const struct fault_case cases[] = {
        { "reject", "auth", "auth", 1.5 },
        { "hang", "timeout", "prompt", TMO_S + 1.5 },
        { "hangmid", "timeout", "command", TMO_S + 1.5 },
        { "disc", "protocol", "command", 1.5 },
        { "garbage", "any", NULL, 4 * TMO_S + 1.5 },
        { "banner", NULL, NULL, 2 },
        { "kbd", NULL, NULL, 2 },
        { "trickle", NULL, NULL, 20 },
        { "refuse", "refused", "connect", 1 },
        { "nolisten", "refused", "connect", 1 },
        { "slowban", "timeout", "connect", TMO_S + 1.5 },
    };
    char *log;

    test_begin("faults", NULL);
    for (size_t i = 0; i < NR_ARRAY_LEN(cases); i++) {
        const struct fault_case *fc = &cases[i];
        struct run r;

        backup(fc->name, &r);
        ck_assert_msg(r.ms < fc->max_s * 1000, "%s took %.0f ms (limit %.0f)", fc->name, r.ms,
                      fc->max_s * 1000);
        if (fc->cls == NULL) {
            check_backup(fc->name, &r, NULL);
        } else if (strcmp(fc->cls, "any") == 0) {
            if (r.res.success)
                ck_assert_uint_gt(r.res.config_len, 1000);
        } else {
            ck_assert_msg(!r.res.success, "%s: succeeded", fc->name);
            ck_assert_msg(strcmp(r.cls, fc->cls) == 0 && strcmp(r.stage, fc->stage) == 0,
                          "%s: %s at %s, want %s at %s", fc->name, r.cls, r.stage, fc->cls,
                          fc->stage);
        }
        run_clear(&r);
    }
    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "Authenticated to 'h-kbd' as admin\",\"meta\":{"));
    ck_assert_ptr_nonnull(strstr(log, "\"method\":\"keyboard-interactive\""));
    ck_assert_ptr_nonnull(strstr(log, "Connection to 'h-hang' failed (timeout)"));
    ck_assert_ptr_nonnull(strstr(log, "\"class\":\"timeout\",\"stage\":\"prompt\""));
    ck_assert_ptr_nonnull(strstr(log, "Prompt of 'h-banner' is 'h-banner>'"));
    free(log);
}
END_TEST

START_TEST(output_cap)
{
    struct run r;

    test_begin("cap", NULL);
    cfg.worker.max_output_bytes = 2000;
    backup("ios", &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "output cap");
    ck_assert_str_eq(r.stage, "command");
    run_clear(&r);
    free(test_end());
}
END_TEST

/* ---- host keys -------------------------------------------------------------------- */

static void set_known_hosts(const char *path)
{
    free(cfg.ssh.known_hosts);
    cfg.ssh.known_hosts = strdup(path);
}

START_TEST(host_keys)
{
    char *kh1, *kh2, *kh3, *text, *line, *forged, *log, pfx[64];
    struct run r;
    size_t len;

    test_begin("hostkeys", NULL);
    if (asprintf(&kh1, "%s/kh1", test_dir) < 0 || asprintf(&kh2, "%s/kh2", test_dir) < 0 ||
        asprintf(&kh3, "%s/kh3", test_dir) < 0)
        abort();

    /* accept-new (the default): the first key is stored */
    ck_assert_int_eq(cfg.ssh.host_key_policy, NR_HOSTKEY_ACCEPT_NEW);
    set_known_hosts(kh1);
    backup("ios", &r);
    ck_assert(r.res.success);
    run_clear(&r);
    text = nrt_read_file(kh1);
    ck_assert_ptr_nonnull(text);
    snprintf(pfx, sizeof(pfx), "[127.0.0.1]:%d ", port_of("ios"));
    line = strstr(text, pfx);
    ck_assert_msg(line != NULL, "no entry for ios in known_hosts: %s", text);
    len = strcspn(line, "\n");

    /* ... and a device whose key is not the one stored fails: "host key" */
    if (asprintf(&forged, "[127.0.0.1]:%d %.*s\n", port_of("hk"), (int)(len - strlen(pfx)),
                 line + strlen(pfx)) < 0)
        abort();
    nrt_write_file(kh2, forged);
    set_known_hosts(kh2);
    backup("hk", &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "host key");
    ck_assert_str_eq(r.stage, "connect");
    ck_assert_ptr_nonnull(strstr(dstr(&r, "error"), "changed"));
    run_clear(&r);

    /* strict: unknown is refused, known passes */
    cfg.ssh.host_key_policy = NR_HOSTKEY_STRICT;
    set_known_hosts(kh3);
    backup("ios", &r);
    ck_assert_str_eq(r.cls, "host key");
    run_clear(&r);
    ck_assert_ptr_null(nrt_read_file(kh3));         /* nothing learned */
    set_known_hosts(kh1);
    backup("ios", &r);
    ck_assert(r.res.success);
    run_clear(&r);

    /* off: no check */
    cfg.ssh.host_key_policy = NR_HOSTKEY_OFF;
    set_known_hosts(kh2);
    backup("hk", &r);
    ck_assert(r.res.success);
    run_clear(&r);

    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "New host key of 'h-ios'"));
    free(log);
    free(text);
    free(forged);
    free(kh1);
    free(kh2);
    free(kh3);
}
END_TEST

/* The host key types known for a device are offered first: a device with
 * ed25519 and rsa keys whose rsa key is the one known passes under strict;
 * a device with ed25519 only, whose known key is rsa, is "another type". */
START_TEST(known_key_type_first)
{
    char *kh, *rsa_path, *line, *after;
    ssh_key priv = NULL, pub = NULL;
    char *b64 = NULL;
    struct run r;

    test_begin("hktype", NULL);
    if (asprintf(&kh, "%s/kh", test_dir) < 0 ||
        asprintf(&rsa_path, "%s/devsim/ssh_host_rsa_key", suite_dir) < 0)
        abort();
    ck_assert_int_eq(ssh_pki_import_privkey_file(rsa_path, NULL, NULL, NULL, &priv), SSH_OK);
    ck_assert_int_eq(ssh_pki_export_privkey_to_pubkey(priv, &pub), SSH_OK);
    ck_assert_int_eq(ssh_pki_export_pubkey_base64(pub, &b64), SSH_OK);
    if (asprintf(&line, "[127.0.0.1]:%d ssh-rsa %s\n[127.0.0.1]:%d ssh-rsa %s\n",
                 port_of("both"), b64, port_of("hk"), b64) < 0)
        abort();
    nrt_write_file(kh, line);
    set_known_hosts(kh);
    cfg.ssh.host_key_policy = NR_HOSTKEY_STRICT;

    backup("both", &r);
    ck_assert_msg(r.res.success, "both: %s", dstr(&r, "error"));
    run_clear(&r);
    backup("hk", &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "host key");
    ck_assert_ptr_nonnull(strstr(dstr(&r, "error"), "of another type"));
    run_clear(&r);
    /* the file is as it was: strict learns nothing */
    after = nrt_read_file(kh);
    ck_assert_str_eq(after, line);
    free(after);

    free(test_end());
    ssh_string_free_char(b64);
    ssh_key_free(pub);
    ssh_key_free(priv);
    free(line);
    free(rsa_path);
    free(kh);
}
END_TEST

/* ---- legacy algorithms ---------------------------------------------------------- */

START_TEST(legacy_algorithms)
{
    struct run r;
    char *log;

    test_begin("legacy", NULL);
    ck_assert(!cfg.ssh.allow_legacy_kex);
    backup("legacy", &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "protocol");
    ck_assert_str_eq(r.stage, "connect");
    run_clear(&r);
    cfg.ssh.allow_legacy_kex = true;        /* ssh.legacy_kex / legacy_macs appended */
    backup("legacy", &r);
    ck_assert(r.res.success);
    run_clear(&r);
    backup("ios", &r);                      /* modern devices still get modern algorithms */
    ck_assert(r.res.success);
    run_clear(&r);
    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "Connected to 'h-legacy': kex diffie-hellman-group14-sha1, "
                                      "cipher aes128-ctr"));
    ck_assert_ptr_nonnull(strstr(log, "\"hmac\":\"hmac-sha1\""));
    ck_assert_ptr_nonnull(strstr(log, "Connected to 'h-ios': kex curve25519-sha256"));
    free(log);
}
END_TEST

/* ---- command handler and credentials ------------------------------------------------ */

START_TEST(command_handler)
{
    struct nr_payload p = { .job_id = 42 };
    struct nr_payload none = { .job_id = 42 };
    struct run r;
    json_t *outs, *o;

    test_begin("command", NULL);
    nr_strlist_push(&p.commands, "show version");
    nr_strlist_push(&p.commands, "show running-config");
    nr_strlist_push(&p.commands, "show nonsense");
    nr_strlist_push(&p.commands, "show Secret-keys");   /* shown redacted, like a config line */
    run_handler(nr_handler_command, "ios", &cred_ok, 1, &p, &r);
    ck_assert(r.res.success);
    ck_assert(r.res.device_seen);
    ck_assert_ptr_null(r.res.config);
    outs = json_object_get(r.res.details, "outputs");
    ck_assert_uint_eq(json_array_size(outs), 4);
    o = json_array_get(outs, 0);
    ck_assert_str_eq(json_string_value(json_object_get(o, "command")), "show version");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "output")),
                                 "Cisco IOS Software"));
    ck_assert_int_eq(json_integer_value(json_object_get(o, "bytes")),
                     (long long)strlen(json_string_value(json_object_get(o, "output"))));
    ck_assert(json_is_number(json_object_get(o, "ms")));
    o = json_array_get(outs, 1);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "output")),
                                 "[REDACTED LINE]"));
    char *kept = unmarked(json_string_value(json_object_get(o, "output")));
    ck_assert_ptr_null(nr_strcasestr(kept, "secret"));
    free(kept);
    o = json_array_get(outs, 2);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(o, "output")), "Invalid input"));
    o = json_array_get(outs, 3);
    ck_assert_str_eq(json_string_value(json_object_get(o, "command")),
                     "[REDACTED LINE] (secret)");
    run_clear(&r);

    /* a command that outlives its timeout: the outputs so far, and why */
    nr_strlist_clear(&p.commands);
    nr_strlist_push(&p.commands, "show version");
    nr_strlist_push(&p.commands, "show running-config");
    run_handler(nr_handler_command, "hangmid", &cred_ok, 1, &p, &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "timeout");
    ck_assert_str_eq(dstr(&r, "failed_command"), "show running-config");
    ck_assert_uint_eq(json_array_size(json_object_get(r.res.details, "outputs")), 1);
    run_clear(&r);

    run_handler(nr_handler_command, "ios", &cred_ok, 1, &none, &r);
    ck_assert(!r.res.success);
    ck_assert_str_eq(r.cls, "input");
    run_clear(&r);
    nr_strlist_clear(&p.commands);
    free(test_end());
}
END_TEST

START_TEST(credential_fallback)
{
    struct nr_credential creds[] = {
        { .id = 7, .username = "admin", .password = "wrong-one" },
        { .id = 8, .username = "nobody", .password = "wrong-two" },
        { .id = 9, .username = "admin", .password = PW },
    };
    struct run r;

    test_begin("creds", NULL);
    run_handler(nr_handler_config_backup, "ios", creds, 3, NULL, &r);
    ck_assert(r.res.success);
    ck_assert_int_eq(dint(&r, "credential_id"), 9);
    ck_assert_int_eq(dint(&r, "credentials_tried"), 3);
    /* every login answer goes to the run, for credentials.success_rate */
    ck_assert_uint_eq(r.res.nattempts, 3);
    ck_assert_int_eq(r.res.attempts[0].cred_id, 7);
    ck_assert(!r.res.attempts[0].success);
    ck_assert_int_eq(r.res.attempts[1].cred_id, 8);
    ck_assert(!r.res.attempts[1].success);
    ck_assert_int_eq(r.res.attempts[2].cred_id, 9);
    ck_assert(r.res.attempts[2].success);
    run_clear(&r);
    /* worker.max_credential_attempts bounds the loop */
    cfg.worker.max_credential_attempts = 2;
    run_handler(nr_handler_config_backup, "ios", creds, 3, NULL, &r);
    ck_assert_str_eq(r.cls, "auth");
    ck_assert_int_eq(dint(&r, "credentials_tried"), 2);
    ck_assert_uint_eq(r.res.nattempts, 2);
    run_clear(&r);
    /* a timeout does not move on to the next credential */
    run_handler(nr_handler_config_backup, "hang", creds + 2, 1, NULL, &r);
    ck_assert_int_eq(dint(&r, "credentials_tried"), 1);
    ck_assert_uint_eq(r.res.nattempts, 1);        /* it did log in */
    ck_assert(r.res.attempts[0].success);
    run_clear(&r);
    /* a device that never answered says nothing about the credential */
    run_handler(nr_handler_config_backup, "nolisten", creds + 2, 1, NULL, &r);
    ck_assert_uint_eq(r.res.nattempts, 0);
    run_clear(&r);
    /* no credentials at all */
    run_handler(nr_handler_config_backup, "ios", NULL, 0, NULL, &r);
    ck_assert_str_eq(r.cls, "auth");
    run_clear(&r);
    free(test_end());
}
END_TEST

/* ---- round trips ------------------------------------------------------------------ */

/* A backup of an IOS device that needs enable takes four answers: paging
 * off, enable, the secret, the config: at least four times the device's
 * delay, and far less than twice that (no answer is waited for twice).
 * The figure itself (four round trips plus a few ms) is measured by
 * bench/backup.sh part 2, not here: this suite runs beside others, under
 * ASan, on a busy machine. */
START_TEST(round_trips)
{
    char *info[] = { "NETRAVEN_LOGGING__LEVEL=info", NULL };
    struct run r;

    test_begin("latency", info);
    backup("lat50", &r);
    ck_assert(r.res.success);
    ck_assert_double_ge(r.ms, 4 * 50);
    /* at 50 ms a busy machine's own delays (ASan, a suite beside) weigh
     * as much as the answers: the round trips are counted at 200 ms */
    ck_assert_double_lt(r.ms, 8 * 50 + 800);
    fprintf(stderr, "  backup at 50 ms per answer: %.1f ms\n", r.ms);
    run_clear(&r);
    backup("lat200", &r);
    ck_assert(r.res.success);
    ck_assert_double_ge(r.ms, 4 * 200);
    ck_assert_double_lt(r.ms, 8 * 200);
    fprintf(stderr, "  backup at 200 ms per answer: %.1f ms\n", r.ms);
    run_clear(&r);
    free(test_end());
}
END_TEST

/* ---- peers that are not SSH servers ---------------------------------------- */

/* A listener of the test's own on loopback: it takes one connection, sends
 * what it was given (no SSH version line in it), ends its side, and reads
 * until the client gives up. */
struct bogus_peer {
    int         lfd, port;
    const char *data;
    size_t      len;
    pthread_t   th;
};

static void *bogus_main(void *arg)
{
    struct bogus_peer *b = arg;
    int fd = accept(b->lfd, NULL, NULL);
    char buf[4096];

    if (fd < 0)
        return NULL;
    for (size_t off = 0; off < b->len;) {
        ssize_t w = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);

        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);      /* then EOF: the client has all there is */
    while (recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    close(fd);
    return NULL;
}

static void bogus_start(struct bogus_peer *b, const char *data, size_t len)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    b->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(b->lfd, 0);
    ck_assert_int_eq(bind(b->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(b->lfd, 4), 0);
    ck_assert_int_eq(getsockname(b->lfd, (struct sockaddr *)&sa, &sl), 0);
    b->port = ntohs(sa.sin_port);
    b->data = data;
    b->len = len;
    ck_assert_int_eq(pthread_create(&b->th, NULL, bogus_main, b), 0);
}

static void bogus_stop(struct bogus_peer *b)
{
    pthread_join(b->th, NULL);
    close(b->lfd);
}

/* A peer that answers with something other than an SSH version (an HTTP
 * reply, binary noise, a 1 MB line) failed the handshake: class protocol
 * at connect, which the dispatcher does not retry and the breaker does not
 * count as "nothing listened".  It was called `refused` (issue 10,
 * defect 7).  A peer that closes at once stays `refused`. */
START_TEST(handshake_garbage_is_protocol)
{
    static const char http[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    static char noise[4096], longline[1024 * 1024 + 2];
    struct { const char *what, *data; size_t len; const char *cls; } cases[] = {
        { "an HTTP reply", http, sizeof(http) - 1, "protocol" },
        { "binary noise", noise, sizeof(noise), "protocol" },
        { "a 1 MB line", longline, sizeof(longline), "protocol" },
        { "nothing (closed at once)", "", 0, "refused" },
    };
    char *log;

    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)((i * 151u + 7u) & 0xff);
    memset(longline, 'x', sizeof(longline));
    longline[sizeof(longline) - 2] = '\r';
    longline[sizeof(longline) - 1] = '\n';

    test_begin("handshake", NULL);
    for (size_t i = 0; i < NR_ARRAY_LEN(cases); i++) {
        struct bogus_peer b;
        struct nr_device dev = { .id = 7, .ip_address = "127.0.0.1", .device_type = "cisco_ios",
                                 .hostname = "h-bogus" };
        struct nr_job job = { .id = 42, .name = "ssh-test" };
        struct nr_handler_ctx ctx = { .cfg = &cfg, .job = &job, .device = &dev,
                                      .creds = &cred_ok, .ncreds = 1 };
        struct nr_result res;
        const char *cls, *stage;
        double t0 = nr_mono_ms(), ms;

        bogus_start(&b, cases[i].data, cases[i].len);
        dev.port = b.port;
        memset(&res, 0, sizeof(res));
        nr_handler_config_backup(&ctx, &res);
        ms = nr_mono_ms() - t0;
        bogus_stop(&b);
        ck_assert_ptr_nonnull(res.details);
        cls = json_string_value(json_object_get(res.details, "class"));
        stage = json_string_value(json_object_get(res.details, "stage"));
        fprintf(stderr, "  %-26s %s at %s: %s\n", cases[i].what, cls, stage,
                json_string_value(json_object_get(res.details, "error")));
        ck_assert(!res.success);
        ck_assert_msg(cls && strcmp(cls, cases[i].cls) == 0, "%s: class %s, want %s",
                      cases[i].what, cls, cases[i].cls);
        ck_assert_msg(stage && strcmp(stage, "connect") == 0, "%s: stage %s", cases[i].what,
                      stage);
        /* protocol at connect is not retried; refused is (nothing listened) */
        ck_assert_int_eq(res.failure.cls, strcmp(cases[i].cls, "protocol") == 0
                                              ? NR_FAILURE_HANDSHAKE : NR_FAILURE_REFUSED);
        ck_assert(nr_failure_retried(res.failure.cls) == (strcmp(cases[i].cls, "protocol") != 0));
        ck_assert_msg(ms < (TMO_S + 1.5) * 1000, "%s took %.0f ms", cases[i].what, ms);
        json_decref(res.details);
        free(res.config);
    }
    log = test_end();
    ck_assert_ptr_nonnull(strstr(log, "Connection to 'h-bogus' failed (protocol)"));
    free(log);
}
END_TEST

static Suite *ssh_suite(void)
{
    Suite *s = suite_create("ssh");
    TCase *tc = tcase_create("devsim");

    tcase_add_unchecked_fixture(tc, devsim_start, devsim_stop);
    tcase_set_timeout(tc, 60);
    nrt_add_test(tc, every_device_type);
    nrt_add_test(tc, pager_left_on);
    nrt_add_test(tc, enable_flow);
    nrt_add_test(tc, faults);
    nrt_add_test(tc, output_cap);
    nrt_add_test(tc, host_keys);
    nrt_add_test(tc, known_key_type_first);
    nrt_add_test(tc, legacy_algorithms);
    nrt_add_test(tc, command_handler);
    nrt_add_test(tc, credential_fallback);
    nrt_add_test(tc, round_trips);
    nrt_add_test(tc, handshake_garbage_is_protocol);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ssh_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
