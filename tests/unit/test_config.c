/*
 * test_config.c - the config module: defaults, file merge, environment
 * overrides, validation messages, masking, names.
 *
 * Each test writes its YAML into a fresh mkdtemp directory and passes its
 * own environment, so the process environment never leaks in.
 */
#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netraven/config.h"

static char dir[PATH_MAX];

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/nr_config_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write dir/name. */
static void put(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Load from `where` with the environment given as NULL-terminated
 * "NAME=value" strings. */
static int load_env(struct nr_config *c, const char *where, char **err, ...)
{
    char *envp[32];
    size_t n = 0;
    va_list ap;

    va_start(ap, err);
    for (char *s; (s = va_arg(ap, char *)) != NULL && n < 31;)
        envp[n++] = s;
    va_end(ap);
    envp[n] = NULL;
    *err = NULL;
    return nr_config_load(c, where, envp, err);
}

#define LOAD(c, err, ...) load_env((c), dir, (err), __VA_ARGS__, (char *)NULL)

/* Load expecting failure; returns the message (caller frees) and checks
 * that the config was left cleared. */
static char *load_fail(const char *where, ...)
{
    char *envp[32];
    size_t n = 0;
    va_list ap;
    struct nr_config c;
    char *err = NULL;
    static const struct nr_config zero;

    va_start(ap, where);
    for (char *s; (s = va_arg(ap, char *)) != NULL && n < 31;)
        envp[n++] = s;
    va_end(ap);
    envp[n] = NULL;
    memset(&c, 0x5a, sizeof c);
    ck_assert_int_lt(nr_config_load(&c, where, envp, &err), 0);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(memcmp(&c, &zero, sizeof c) == 0, "cfg not cleared after failure");
    return err;
}

#define LOAD_FAIL(...) load_fail(dir, __VA_ARGS__, (char *)NULL)

static void assert_err(char *err, const char *want)
{
    ck_assert_str_eq(err, want);
    free(err);
}

/* An expected message "<dir>/<rest>". */
static char *in_dir(const char *rest)
{
    static char buf[PATH_MAX + 512];
    snprintf(buf, sizeof buf, "%s/%s", dir, rest);
    return buf;
}

static char *print_to_string(const struct nr_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    ck_assert_ptr_nonnull(f);
    nr_config_print(c, f);
    fclose(f);
    return buf;
}

/* ------------------------------------------------------------------ */

/* worker.device_types.<type>.{connection,command}_timeout: one pair of keys
 * per row of the device-type table, unset by default (the worker-wide
 * values apply), set from YAML and the environment, validated, printed,
 * and a name the table does not know refused. */
START_TEST(test_device_types)
{
    static const char *const names[] = {
#define NR_DEVTYPE(name, ...) #name,
#define NR_DEVTYPE_FALLBACK(name, ...)
#include "netraven/devtypes.def"
#undef NR_DEVTYPE_FALLBACK
#undef NR_DEVTYPE
    };
    struct nr_config c;
    char *err, *out, want[160];
    double conn, cmd;

    ck_assert_uint_eq(NR_ARRAY_LEN(names), NR_DEVTYPE_COUNT);
    put("default.yaml", "worker:\n  connection_timeout: 7\n  command_timeout: 20\n"
                        "  device_types:\n"
                        "    juniper_junos: {connection_timeout: 30, command_timeout: 120}\n"
                        "    paloalto_panos:\n      command_timeout: 90\n"
                        "    cisco_ios: {connection_timeout: null}\n");
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_WORKER__DEVICE_TYPES__JUNIPER_JUNOS__COMMAND_TIMEOUT=150",
                          "NETRAVEN_WORKER__DEVICE_TYPES__LINUX__CONNECTION_TIMEOUT=2.5"), 0);
    nr_config_device_timeouts(&c, NR_DEVTYPE_juniper_junos, &conn, &cmd);
    ck_assert_double_eq(conn, 30);
    ck_assert_double_eq(cmd, 150);                  /* the environment wins */
    nr_config_device_timeouts(&c, NR_DEVTYPE_paloalto_panos, &conn, &cmd);
    ck_assert_double_eq(conn, 7);                   /* unset: worker.connection_timeout */
    ck_assert_double_eq(cmd, 90);
    nr_config_device_timeouts(&c, NR_DEVTYPE_linux, &conn, NULL);
    ck_assert_double_eq(conn, 2.5);
    nr_config_device_timeouts(&c, NR_DEVTYPE_cisco_ios, &conn, &cmd);
    ck_assert_double_eq(conn, 7);
    ck_assert_double_eq(cmd, 20);
    /* the "default" row and nonsense ids get the worker-wide values */
    nr_config_device_timeouts(&c, NR_DEVTYPE_COUNT, &conn, &cmd);
    ck_assert(conn == 7 && cmd == 20);
    nr_config_device_timeouts(&c, -1, NULL, &cmd);
    ck_assert_double_eq(cmd, 20);

    out = print_to_string(&c);
    for (size_t i = 0; i < NR_ARRAY_LEN(names); i++) {
        snprintf(want, sizeof want, "\nworker.device_types.%s.connection_timeout: ", names[i]);
        ck_assert_msg(strstr(out, want), "%s not printed", want + 1);
        snprintf(want, sizeof want, "\nworker.device_types.%s.command_timeout: ", names[i]);
        ck_assert_msg(strstr(out, want), "%s not printed", want + 1);
    }
    ck_assert_ptr_nonnull(strstr(out, "\nworker.device_types.juniper_junos.command_timeout: 150\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.device_types.cisco_ios.connection_timeout: null\n"));
    ck_assert_ptr_null(strstr(out, "worker.device_types.default."));
    free(out);
    nr_config_clear(&c);

    /* bounds, type, and names the table does not know */
    put("default.yaml", "worker:\n  device_types:\n    cisco_xr:\n      command_timeout: 0\n");
    assert_err(LOAD_FAIL(NULL), in_dir("default.yaml:4: worker.device_types.cisco_xr."
                                       "command_timeout: 0 is below the minimum 0.1"));
    put("default.yaml", "worker:\n  device_types:\n    cisco_xr:\n      command_timeout: slow\n");
    assert_err(LOAD_FAIL(NULL), in_dir("default.yaml:4: worker.device_types.cisco_xr."
                                       "command_timeout: \"slow\" is not a number"));
    put("default.yaml", "worker:\n  device_types:\n    juniper:\n      command_timeout: 60\n");
    err = LOAD_FAIL(NULL);
    ck_assert_msg(strstr(err, "default.yaml:4: worker.device_types.juniper.command_timeout: "
                              "not a key") != NULL, "%s", err);
    free(err);
    put("default.yaml", "");
    err = LOAD_FAIL("NETRAVEN_WORKER__DEVICE_TYPES__JUNOS__TIMEOUT=3");
    ck_assert_msg(strstr(err, "NETRAVEN_WORKER__DEVICE_TYPES__JUNOS__TIMEOUT: "
                              "worker.device_types.junos.timeout: not a key") != NULL, "%s", err);
    free(err);
    /* an empty variable unsets it again */
    put("default.yaml", "worker:\n  device_types:\n    cisco_asa: {command_timeout: 45}\n");
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_WORKER__DEVICE_TYPES__CISCO_ASA__COMMAND_TIMEOUT="), 0);
    nr_config_device_timeouts(&c, NR_DEVTYPE_cisco_asa, NULL, &cmd);
    ck_assert_double_eq(cmd, 30);
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_defaults)
{
    struct nr_config c;
    char *err;

    put("default.yaml", "");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_ptr_null(err);

    ck_assert_str_eq(c.env, "dev");
    ck_assert_str_eq(c.config_dir, dir);
    ck_assert_str_eq(c.database.url, "postgresql://netraven:netraven@localhost:5432/netraven");
    ck_assert_str_eq(c.scheduler.redis_url, "redis://localhost:6379/0");
    ck_assert_int_eq(c.worker.thread_pool_size, 5);
    ck_assert_int_eq(c.worker.max_concurrent_jobs, 4);
    ck_assert_int_eq(c.worker.task_queue_size, 4096);
    ck_assert_double_eq(c.worker.connection_timeout, 10);
    ck_assert_double_eq(c.worker.command_timeout, 30);
    ck_assert_int_eq(c.worker.retry_attempts, 2);
    ck_assert_double_eq(c.worker.retry_backoff, 1.0);
    ck_assert_int_eq(c.worker.max_credential_attempts, 3);
    ck_assert_int_eq(c.worker.max_output_bytes, 8388608);
    ck_assert_int_eq(c.worker.claim_idle_seconds, 60);
    ck_assert_int_eq(c.worker.max_deliveries, 5);
    ck_assert_int_eq(c.worker.shutdown_grace_seconds, 30);
    ck_assert_str_eq(c.worker.spool_dir, "/var/lib/netraven/spool");
    ck_assert_str_eq(c.worker.consumer_name, "");
    ck_assert_uint_eq(c.worker.rq_queues.n, 3);
    ck_assert_str_eq(c.worker.rq_queues.v[0], "default");
    ck_assert_str_eq(c.worker.rq_queues.v[1], "high");
    ck_assert_str_eq(c.worker.rq_queues.v[2], "low");
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 3);
    ck_assert_str_eq(c.worker.redaction_patterns.v[0], "password");
    ck_assert_str_eq(c.worker.redaction_patterns.v[1], "secret");
    ck_assert_str_eq(c.worker.redaction_patterns.v[2], "community");
    ck_assert_str_eq(c.worker.redaction_marker, "[REDACTED LINE] ({kind})");
    ck_assert_int_eq(c.worker.circuit_breaker.failure_threshold, 5);
    ck_assert_double_eq(c.worker.circuit_breaker.reset_timeout, 60);

    ck_assert_str_eq(c.queue.stream, "netraven:jobs");
    ck_assert_str_eq(c.queue.group, "netraven-workers");
    ck_assert_str_eq(c.queue.dead_stream, "netraven:jobs:dead");
    ck_assert_int_eq(c.queue.block_ms, 500);

    ck_assert_int_eq(c.logging.level, NR_LOG_INFO);
    ck_assert_int_eq(c.logging.db_level, NR_LOG_INFO);
    ck_assert_int_eq(c.logging.format, NR_LOG_FORMAT_HUMAN);
    ck_assert_ptr_null(c.logging.file);
    ck_assert_int_eq(c.logging.queue_size, 262144);
    ck_assert_int_eq(c.logging.db_batch_size, 2000);
    ck_assert(c.logging.redis.enabled);
    ck_assert_str_eq(c.logging.redis.channel_prefix, "netraven-logs");
    ck_assert_int_eq(c.logging.redis.queue_size, 65536);
    ck_assert_int_eq(c.logging.redis.queue_bytes, 8388608);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_JOB], NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_DB);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_CONNECTION], NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_DB);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_SESSION], NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_REDIS);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_SYSTEM], NR_SINK_STDOUT | NR_SINK_FILE);

    ck_assert(!c.ssh.allow_legacy_kex);
    ck_assert_str_eq(c.ssh.legacy_kex, "diffie-hellman-group14-sha1,diffie-hellman-group1-sha1");
    ck_assert_str_eq(c.ssh.legacy_macs, "hmac-sha1");
    ck_assert_int_eq(c.ssh.host_key_policy, NR_HOSTKEY_ACCEPT_NEW);
    ck_assert_str_eq(c.ssh.known_hosts, "");
    ck_assert_ptr_null(c.ssh.enable_secret);
    ck_assert_ptr_null(c.security.encryption_key);
    ck_assert_str_eq(c.security.encryption_salt, "netraven_salt");

    nr_config_clear(&c);
    ck_assert_ptr_null(c.database.url);
    ck_assert_ptr_null(c.worker.rq_queues.v);
    ck_assert_uint_eq(c.worker.rq_queues.n, 0);
    ck_assert_ptr_null(c.env);
    nr_config_clear(&c);            /* twice is fine */
    nr_config_clear(NULL);
}
END_TEST

START_TEST(test_shipped_files)
{
    struct nr_config c;
    char *err, *url;
    const char *root = NR_SOURCE_ROOT "/config";

    ck_assert_int_eq(load_env(&c, root, &err, (char *)NULL), 0);
    ck_assert_str_eq(c.env, "dev");
    ck_assert_int_eq(c.worker.thread_pool_size, 5);
    ck_assert_int_eq(c.logging.level, NR_LOG_INFO);
    ck_assert_int_eq(c.logging.format, NR_LOG_FORMAT_HUMAN);
    /* communities are redacted in every environment */
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 3);
    ck_assert_str_eq(c.worker.redaction_patterns.v[2], "community");
    ck_assert_str_eq(c.worker.redaction_marker, "[REDACTED LINE] ({kind})");
    ck_assert_ptr_null(c.logging.file);
    ck_assert_str_eq(c.ssh.legacy_kex, "diffie-hellman-group14-sha1,diffie-hellman-group1-sha1");
    url = nr_config_libpq_url(c.database.url);
    ck_assert_str_eq(url, "postgresql://netraven:netraven@localhost:5432/netraven");
    free(url);
    nr_config_clear(&c);

    ck_assert_int_eq(load_env(&c, root, &err, "NETRAVEN_ENV=PROD", (char *)NULL), 0);
    ck_assert_str_eq(c.env, "prod");
    ck_assert_int_eq(c.worker.thread_pool_size, 10);
    ck_assert_int_eq(c.logging.format, NR_LOG_FORMAT_JSON);
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 3);
    ck_assert_str_eq(c.worker.redaction_patterns.v[2], "community");
    ck_assert_str_eq(c.scheduler.redis_url, "redis://redis:6379/0");
    nr_config_clear(&c);

    /* NETRAVEN_CONFIG_DIR when no directory is passed */
    {
        char var[PATH_MAX + 32];
        snprintf(var, sizeof var, "NETRAVEN_CONFIG_DIR=%s", root);
        ck_assert_int_eq(load_env(&c, NULL, &err, var, (char *)NULL), 0);
        ck_assert_str_eq(c.config_dir, root);
        nr_config_clear(&c);
    }
}
END_TEST

START_TEST(test_merge_default_and_env_file)
{
    struct nr_config c;
    char *err;

    put("default.yaml",
        "worker:\n"
        "  thread_pool_size: 7\n"
        "  connection_timeout: 12.5\n"
        "  spool_dir: /srv/spool\n"
        "  redaction:\n"
        "    patterns: [password, secret]\n"
        "logging:\n"
        "  level: warning\n"
        "worker.retry_attempts: 6\n");          /* a dotted key works too */
    put("staging.yaml",
        "worker:\n"
        "  thread_pool_size: 9\n"
        "  redaction:\n"
        "    patterns:\n"
        "      - enable secret\n"
        "      - ~\n"
        "      - snmp-server community\n"
        "logging:\n"
        "  level: ERROR\n"
        "  routes:\n"
        "    job: file, db\n"          /* stdout is added */
        "    session: []\n");
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_ENV=staging"), 0);
    ck_assert_str_eq(c.env, "staging");
    ck_assert_int_eq(c.worker.thread_pool_size, 9);          /* staging wins */
    ck_assert_double_eq(c.worker.connection_timeout, 12.5);  /* default.yaml kept */
    ck_assert_str_eq(c.worker.spool_dir, "/srv/spool");
    ck_assert_double_eq(c.worker.command_timeout, 30);       /* built-in default */
    ck_assert_int_eq(c.worker.retry_attempts, 6);
    /* lists are replaced, not appended; null items are dropped */
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 2);
    ck_assert_str_eq(c.worker.redaction_patterns.v[0], "enable secret");
    ck_assert_str_eq(c.worker.redaction_patterns.v[1], "snmp-server community");
    ck_assert_int_eq(c.logging.level, NR_LOG_ERROR);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_JOB], NR_SINK_STDOUT | NR_SINK_FILE | NR_SINK_DB);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_SESSION], NR_SINK_STDOUT);
    nr_config_clear(&c);

    /* dev.yaml is not read when the env is staging, and vice versa */
    put("dev.yaml", "worker:\n  thread_pool_size: 3\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_int_eq(c.worker.thread_pool_size, 3);
    ck_assert_int_eq(c.logging.level, NR_LOG_WARNING);
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_env_overrides)
{
    struct nr_config c;
    char *err;

    put("default.yaml",
        "worker:\n  thread_pool_size: 7\n"
        "security:\n  encryption_key: from-file\n");
    put("dev.yaml", "worker:\n  retry_attempts: 4\n");
    ck_assert_int_eq(LOAD(&c, &err,
        "NETRAVEN_WORKER__THREAD_POOL_SIZE=12",
        "NETRAVEN_WORKER__CIRCUIT_BREAKER__FAILURE_THRESHOLD= 8 ",
        "NETRAVEN_WORKER__RETRY_BACKOFF=0.25",
        "NETRAVEN_WORKER__MAX_OUTPUT_BYTES=1048576",
        "NETRAVEN_WORKER__RQ_QUEUES=high, default",
        "NETRAVEN_WORKER__REDACTION__PATTERNS=[\"password\", 'community', secret,]",
        "NETRAVEN_LOGGING__LEVEL=WARN",
        "NETRAVEN_LOGGING__DB_LEVEL=Debug",
        "NETRAVEN_LOGGING__FORMAT=json",
        "NETRAVEN_LOGGING__FILE=/var/log/netraven/worker.log",
        "NETRAVEN_LOGGING__REDIS__ENABLED=off",
        "NETRAVEN_LOGGING__ROUTES__SYSTEM=db,redis",
        "NETRAVEN_LOGGING__ROUTES__CONNECTION=[\"stdout\"]",
        "NETRAVEN_SSH__ALLOW_LEGACY_KEX=yes",
        "NETRAVEN_SSH__LEGACY_MACS=[\"hmac-sha1\", \"hmac-md5\"]",
        "NETRAVEN_SSH__HOST_KEY_POLICY=strict",
        "NETRAVEN_DATABASE__URL=postgresql+psycopg2://u:p@db:5433/nr",
        "NETRAVEN_ENCRYPTION_KEY=alias-key",
        "NETRAVEN_SOMETHING__ELSE=ignored",
        "NETRAVEN_API__JWT_SECRET=ignored too",
        "OTHER_VAR=1",
        "NETRAVEN_ENV=dev"), 0);
    ck_assert_int_eq(c.worker.thread_pool_size, 12);
    ck_assert_int_eq(c.worker.retry_attempts, 4);
    ck_assert_int_eq(c.worker.circuit_breaker.failure_threshold, 8);
    ck_assert_double_eq(c.worker.retry_backoff, 0.25);
    ck_assert_int_eq(c.worker.max_output_bytes, 1048576);
    ck_assert_uint_eq(c.worker.rq_queues.n, 2);
    ck_assert_str_eq(c.worker.rq_queues.v[0], "high");
    ck_assert_str_eq(c.worker.rq_queues.v[1], "default");
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 3);
    ck_assert_str_eq(c.worker.redaction_patterns.v[0], "password");
    ck_assert_str_eq(c.worker.redaction_patterns.v[1], "community");
    ck_assert_str_eq(c.worker.redaction_patterns.v[2], "secret");
    ck_assert_int_eq(c.logging.level, NR_LOG_WARNING);
    ck_assert_int_eq(c.logging.db_level, NR_LOG_DEBUG);
    ck_assert_int_eq(c.logging.format, NR_LOG_FORMAT_JSON);
    ck_assert_str_eq(c.logging.file, "/var/log/netraven/worker.log");
    ck_assert(!c.logging.redis.enabled);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_SYSTEM], NR_SINK_STDOUT | NR_SINK_DB | NR_SINK_REDIS);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_CONNECTION], NR_SINK_STDOUT);
    ck_assert(c.ssh.allow_legacy_kex);
    ck_assert_str_eq(c.ssh.legacy_macs, "hmac-sha1,hmac-md5");
    ck_assert_int_eq(c.ssh.host_key_policy, NR_HOSTKEY_STRICT);
    ck_assert_str_eq(c.database.url, "postgresql+psycopg2://u:p@db:5433/nr");
    ck_assert_str_eq(c.security.encryption_key, "alias-key");
    nr_config_clear(&c);

    /* the canonical variable wins over the alias, in either order */
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_SECURITY__ENCRYPTION_KEY=canonical",
                          "NETRAVEN_ENCRYPTION_KEY=alias"), 0);
    ck_assert_str_eq(c.security.encryption_key, "canonical");
    nr_config_clear(&c);
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_ENCRYPTION_KEY=alias",
                          "NETRAVEN_SECURITY__ENCRYPTION_KEY=canonical"), 0);
    ck_assert_str_eq(c.security.encryption_key, "canonical");
    nr_config_clear(&c);

    /* an empty variable unsets an optional key and empties a list */
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_SECURITY__ENCRYPTION_KEY=",
                          "NETRAVEN_WORKER__REDACTION__PATTERNS=",
                          "NETRAVEN_LOGGING__ROUTES__JOB="), 0);
    ck_assert_ptr_null(c.security.encryption_key);
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 0);
    ck_assert_uint_eq(c.logging.routes[NR_LOG_JOB], NR_SINK_STDOUT);
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_libpq_url)
{
    static const struct { const char *in, *out; } cases[] = {
        { "postgresql+psycopg2://netraven:netraven@postgres:5432/netraven",
          "postgresql://netraven:netraven@postgres:5432/netraven" },
        { "postgresql+asyncpg://u@h/db", "postgresql://u@h/db" },
        { "postgres+psycopg2://u:p@h/db?sslmode=require", "postgres://u:p@h/db?sslmode=require" },
        { "postgres://u:p@h/db", "postgres://u:p@h/db" },
        { "postgresql://u:p+q@h/db", "postgresql://u:p+q@h/db" },   /* '+' after the scheme stays */
        { "host=h dbname=d", "host=h dbname=d" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = nr_config_libpq_url(cases[i].in);
        ck_assert_str_eq(s, cases[i].out);
        free(s);
    }
    ck_assert_ptr_null(nr_config_libpq_url(NULL));
}
END_TEST

START_TEST(test_mask_url)
{
    static const struct { const char *in, *out; } cases[] = {
        { "postgresql+psycopg2://netraven:hunter2@db:5432/netraven",
          "postgresql+psycopg2://netraven:****@db:5432/netraven" },
        { "redis://:s3cret@redis:6379/0", "redis://:****@redis:6379/0" },
        { "redis://redis:6379/0", "redis://redis:6379/0" },
        /* a bare userinfo is a user name to redis-py, as to the worker
         * (src/redis/url.c): shown; a password is masked wherever it is */
        { "redis://netraven@redis:6379/0", "redis://netraven@redis:6379/0" },
        { "rediss://u:s3cret@redis:6380", "rediss://u:****@redis:6380" },
        { "redis://redis:6379/0?password=s3cret", "redis://redis:6379/0?password=****" },
        { "postgresql://user@h/db", "postgresql://user@h/db" },
        /* a password with unencoded '@' and '/' is masked whole */
        { "postgresql://u:p@ss/w0rd@h/db", "postgresql://u:****@h/db" },
        { "postgresql://u@h/db?sslmode=require&password=hunter2&x=1",
          "postgresql://u@h/db?sslmode=require&password=****&x=1" },
        { "host=h password=hunter2 dbname=d", "host=h password=**** dbname=d" },
        { "host=h password='hun ter2' dbname=d", "host=h password=**** dbname=d" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = nr_config_mask_url(cases[i].in);
        ck_assert_str_eq(s, cases[i].out);
        free(s);
    }
    ck_assert_ptr_null(nr_config_mask_url(NULL));
}
END_TEST

START_TEST(test_print_masks_secrets)
{
    static const char *const keys[] = {
        "database.url", "scheduler.redis_url", "worker.thread_pool_size",
        "worker.max_concurrent_jobs", "worker.task_queue_size",
        "worker.connection_timeout", "worker.command_timeout",
        "worker.retry_attempts", "worker.retry_backoff",
        "worker.max_credential_attempts", "worker.max_output_bytes",
        "worker.claim_idle_seconds", "worker.max_deliveries", "worker.shutdown_grace_seconds",
        "worker.spool_dir", "worker.consumer_name", "worker.rq_queues",
        "worker.redaction.patterns", "worker.redaction.marker",
        "worker.circuit_breaker.failure_threshold",
        "worker.circuit_breaker.reset_timeout", "worker.circuit_breaker.max_devices",
        "queue.stream", "queue.group",
        "queue.dead_stream", "queue.block_ms", "logging.level",
        "logging.db_level", "logging.format", "logging.file",
        "logging.queue_size", "logging.db_batch_size", "logging.redis.enabled",
        "logging.redis.channel_prefix", "logging.redis.queue_size", "logging.redis.queue_bytes",
        "logging.redis.host", "logging.redis.port", "logging.redis.db",
        "logging.redis.password", "logging.routes.job", "logging.routes.connection",
        "logging.routes.session", "logging.routes.system",
        "ssh.allow_legacy_kex", "ssh.legacy_kex", "ssh.legacy_macs",
        "ssh.host_key_policy", "ssh.known_hosts", "ssh.enable_secret",
        "security.encryption_key", "security.encryption_salt",
        "metrics.listen",
    };
    struct nr_config c;
    char *err, *out;
    size_t lines = 0;

    put("default.yaml", "ssh:\n  enable_secret: \"En@ble-S3cret\"\n");
    ck_assert_int_eq(LOAD(&c, &err,
        "NETRAVEN_ENCRYPTION_KEY=MasterKey-0xDEADBEEF",
        "NETRAVEN_DATABASE__URL=postgresql+psycopg2://netraven:DbPassw0rd@db:5432/netraven",
        "NETRAVEN_SCHEDULER__REDIS_URL=redis://:RedisPassw0rd@redis:6379/0",
        "NETRAVEN_LOGGING__REDIS__PASSWORD=LogRedisPassw0rd",
        "NETRAVEN_WORKER__COMMAND_TIMEOUT=0.3"), 0);
    out = print_to_string(&c);
    ck_assert_ptr_null(strstr(out, "LogRedisPassw0rd"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.redis.password: \"********\"\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.redis.host: null\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.redis.port: 6379\n"));
    ck_assert_str_eq(c.logging.redis.password, "LogRedisPassw0rd");

    ck_assert_ptr_null(strstr(out, "MasterKey"));
    ck_assert_ptr_null(strstr(out, "DEADBEEF"));
    ck_assert_ptr_null(strstr(out, "S3cret"));
    ck_assert_ptr_null(strstr(out, "DbPassw0rd"));
    ck_assert_ptr_null(strstr(out, "RedisPassw0rd"));
    ck_assert_ptr_nonnull(strstr(out, "\nsecurity.encryption_key: \"********\"\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nssh.enable_secret: \"********\"\n"));
    ck_assert_ptr_nonnull(strstr(out,
        "\ndatabase.url: postgresql+psycopg2://netraven:****@db:5432/netraven\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nscheduler.redis_url: redis://:****@redis:6379/0\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.thread_pool_size: 5\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.retry_backoff: 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.connection_timeout: 10\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.command_timeout: 0.3\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.circuit_breaker.reset_timeout: 60\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.rq_queues: [default, high, low]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nworker.consumer_name: \"\"\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nqueue.stream: netraven:jobs\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.file: null\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.level: info\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nlogging.routes.session: [stdout, file, redis]\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nssh.host_key_policy: accept-new\n"));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n%s: ", keys[i]);
        ck_assert_msg(strstr(out, want) != NULL, "%s not printed", keys[i]);
    }
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    /* 2 comment lines, and two timeouts and keep_volatile per device type */
    ck_assert_uint_eq(lines, 2 + sizeof keys / sizeof keys[0] + 3 * NR_DEVTYPE_COUNT);
    free(out);
    nr_config_clear(&c);

    /* unset secrets print as null */
    put("default.yaml", "");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    out = print_to_string(&c);
    ck_assert_ptr_nonnull(strstr(out, "\nsecurity.encryption_key: null\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nssh.enable_secret: null\n"));
    free(out);
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_errors_env)
{
    put("default.yaml", "");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE=abc"),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: \"abc\" is not an integer");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE=0"),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: 0 is below the minimum 1");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE=5000"),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: 5000 is above the maximum 1024");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE=99999999999999999999999"),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: "
        "99999999999999999999999 is above the maximum 1024");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE=5.0"),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: \"5.0\" is not an integer");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__THREAD_POOL_SIZE="),
        "NETRAVEN_WORKER__THREAD_POOL_SIZE: worker.thread_pool_size: has no value");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__RETRY_BACKOFF=-0.5"),
        "NETRAVEN_WORKER__RETRY_BACKOFF: worker.retry_backoff: -0.5 is below the minimum 0");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__CONNECTION_TIMEOUT=0.01"),
        "NETRAVEN_WORKER__CONNECTION_TIMEOUT: worker.connection_timeout: 0.01 is below the minimum 0.1");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__COMMAND_TIMEOUT=86400.5"),
        "NETRAVEN_WORKER__COMMAND_TIMEOUT: worker.command_timeout: 86400.5 is above the maximum 86400");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__COMMAND_TIMEOUT=nan"),
        "NETRAVEN_WORKER__COMMAND_TIMEOUT: worker.command_timeout: \"nan\" is not a number");
    assert_err(LOAD_FAIL("NETRAVEN_LOGGING__REDIS__ENABLED=maybe"),
        "NETRAVEN_LOGGING__REDIS__ENABLED: logging.redis.enabled: \"maybe\" is not a boolean "
        "(true/false, yes/no, on/off, 1/0)");
    assert_err(LOAD_FAIL("NETRAVEN_LOGGING__LEVEL=verbose"),
        "NETRAVEN_LOGGING__LEVEL: logging.level: \"verbose\" is not one of "
        "debug, info, warning, error, critical");
    assert_err(LOAD_FAIL("NETRAVEN_SSH__HOST_KEY_POLICY=yolo"),
        "NETRAVEN_SSH__HOST_KEY_POLICY: ssh.host_key_policy: \"yolo\" is not one of "
        "accept-new, strict, off");
    assert_err(LOAD_FAIL("NETRAVEN_LOGGING__ROUTES__JOB=stdout,kafka"),
        "NETRAVEN_LOGGING__ROUTES__JOB: logging.routes.job: \"kafka\" is not a sink "
        "(stdout, file, db, redis)");
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__RQ_QUEUES=[]"),
        "NETRAVEN_WORKER__RQ_QUEUES: worker.rq_queues: needs at least 1 item(s)");
    assert_err(LOAD_FAIL("NETRAVEN_QUEUE__STREAM="),
        "NETRAVEN_QUEUE__STREAM: queue.stream: must not be empty");
    assert_err(LOAD_FAIL("NETRAVEN_SCHEDULER__REDIS_URL=http://x"),
        "NETRAVEN_SCHEDULER__REDIS_URL: scheduler.redis_url: \"http://x\" is not a Redis URL "
        "(redis://[:password@]host:port/db)");
    assert_err(LOAD_FAIL("NETRAVEN_ENV=../etc"),
        "NETRAVEN_ENV: \"../etc\" is not an environment name (letters, digits, '-' and '_')");
    /* a redaction marker replaces one line with one line */
    assert_err(LOAD_FAIL("NETRAVEN_WORKER__REDACTION__MARKER="),
        "NETRAVEN_WORKER__REDACTION__MARKER: worker.redaction.marker: must not be empty");
    {
        char *e = LOAD_FAIL("NETRAVEN_WORKER__REDACTION__MARKER=[REDACTED]\r\n({kind})");
        ck_assert_msg(strstr(e, "NETRAVEN_WORKER__REDACTION__MARKER: worker.redaction.marker: ")
                      == e && strstr(e, "is not a single line") != NULL, "%s", e);
        free(e);
    }

    /* a URL's password never reaches the message */
    assert_err(LOAD_FAIL("NETRAVEN_DATABASE__URL=mysql://root:TopSecret@db/nr"),
        "NETRAVEN_DATABASE__URL: database.url: \"mysql://root:****@db/nr\" is not a PostgreSQL URL "
        "(postgresql://user:password@host:port/dbname)");
    assert_err(LOAD_FAIL("NETRAVEN_DATABASE__URL=TopSecret"),
        "NETRAVEN_DATABASE__URL: database.url: the value is not a PostgreSQL URL "
        "(postgresql://user:password@host:port/dbname)");
}
END_TEST

START_TEST(test_errors_secret_not_echoed)
{
    char *big = malloc(5001), *var, *err;

    memset(big, 'K', 5000);
    big[5000] = '\0';
    memcpy(big, "SeKrEt", 6);
    var = malloc(5100);
    snprintf(var, 5100, "NETRAVEN_SECURITY__ENCRYPTION_KEY=%s", big);
    put("default.yaml", "");
    err = LOAD_FAIL(var);
    ck_assert_str_eq(err, "NETRAVEN_SECURITY__ENCRYPTION_KEY: security.encryption_key: "
                          "the value is longer than 4096 characters");
    free(err);

    put("default.yaml", "ssh:\n  enable_secret: [SeKrEt]\n");
    err = LOAD_FAIL(NULL);
    ck_assert_ptr_null(strstr(err, "SeKrEt"));
    ck_assert_str_eq(err, in_dir("default.yaml:2: ssh.enable_secret: "
                                 "expected a single value, found a list"));
    free(err);
    free(var);
    free(big);
}
END_TEST

START_TEST(test_errors_yaml)
{
    put("default.yaml", "worker:\n  thread_pool_size: 4\n");
    put("dev.yaml",
        "# dev\n"
        "worker:\n"
        "  thread_pool_size: abc\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:3: worker.thread_pool_size: \"abc\" is not an integer"));

    put("dev.yaml", "worker:\n\n  thread_pool_size: 0\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:3: worker.thread_pool_size: 0 is below the minimum 1"));

    put("dev.yaml", "worker:\n  thread_pool_size:\n    nested: 1\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:2: worker.thread_pool_size: expected a value, found a mapping"));

    put("dev.yaml", "worker:\n  thread_pool_size: [1, 2]\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:2: worker.thread_pool_size: expected a single value, found a list"));

    put("dev.yaml", "worker:\n  rq_queues:\n    - default\n    - {a: 1}\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:2: worker.rq_queues: list items must be single values"));

    put("dev.yaml", "logging:\n  level: ~\n");
    assert_err(LOAD_FAIL(NULL), in_dir("dev.yaml:2: logging.level: has no value"));

    put("dev.yaml", "- just\n- a list\n");
    assert_err(LOAD_FAIL(NULL), in_dir("dev.yaml:1: the top level is not a mapping of keys"));

    put("dev.yaml", "worker:\n  thread_pool_size: 4\n---\nworker: {}\n");
    assert_err(LOAD_FAIL(NULL),
        in_dir("dev.yaml:4: a second YAML document; the file must hold one"));

    put("dev.yaml", "a: *nowhere\n");
    {
        char *err = LOAD_FAIL(NULL);
        ck_assert_msg(strncmp(err, in_dir("dev.yaml:1:"), strlen(in_dir("dev.yaml:1:"))) == 0,
                      "%s", err);
        ck_assert_ptr_nonnull(strstr(err, "undefined alias"));
        free(err);
    }
}
END_TEST

START_TEST(test_errors_yaml_syntax)
{
    char *err;

    put("default.yaml",
        "worker:\n"
        "  thread_pool_size: 4\n"
        "  bad: [1, 2\n"
        "logging:\n"
        "  level: info\n");
    err = LOAD_FAIL(NULL);
    ck_assert_msg(strncmp(err, in_dir("default.yaml:4:"), strlen(in_dir("default.yaml:4:"))) == 0,
                  "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "YAML syntax error: "));
    free(err);

    put("default.yaml", "worker:\n  thread_pool_size: 4\n   retry: 2\n");
    err = LOAD_FAIL(NULL);
    ck_assert_str_eq(err, in_dir("default.yaml:3:9: YAML syntax error: "
                                 "mapping values are not allowed in this context"));
    free(err);

    put("default.yaml", "a: \"unterminated\n");
    err = LOAD_FAIL(NULL);
    ck_assert_msg(strncmp(err, in_dir("default.yaml:2:"), strlen(in_dir("default.yaml:2:"))) == 0,
                  "%s", err);
    ck_assert_ptr_nonnull(strstr(err, "(while scanning a quoted scalar at line 1)"));
    free(err);

    put("default.yaml", "a: \xff\xfe\n");
    err = LOAD_FAIL(NULL);
    ck_assert_msg(strncmp(err, in_dir("default.yaml: byte"), strlen(in_dir("default.yaml: byte"))) == 0,
                  "%s", err);
    free(err);
}
END_TEST

START_TEST(test_unknown_keys_ignored)
{
    struct nr_config c;
    char *err;

    put("default.yaml",
        "api:\n"
        "  jwt_secret: x\n"
        "  cors: [a, b]\n"
        "  users:\n"
        "    - {name: admin, roles: [admin]}\n"
        "web: ~\n"
        "scheduler:\n"
        "  polling_interval_seconds: 10\n"
        "  max_retries: [nested, {deep: 1}]\n"
        "worker:\n"
        "  thread_pool_size: 6\n"
        "  unknown_knob: 3\n"
        "  redaction: {patterns: [pw], extra: {x: 1}}\n"
        "logging:\n"
        "  redis: {host: redis, port: 6379, password: null}\n"
        "  stdout: {enabled: true, level: DEBUG}\n"
        "? [complex, key]\n"
        ": value\n"
        "toplevel: 1\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_int_eq(c.worker.thread_pool_size, 6);
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 1);
    ck_assert_str_eq(c.worker.redaction_patterns.v[0], "pw");
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_missing_files)
{
    struct nr_config c;
    char *err, want[PATH_MAX + 64];

    /* no <env>.yaml: fine */
    put("default.yaml", "worker:\n  thread_pool_size: 2\n");
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_ENV=nosuchenv"), 0);
    ck_assert_int_eq(c.worker.thread_pool_size, 2);
    ck_assert_str_eq(c.env, "nosuchenv");
    nr_config_clear(&c);

    /* no default.yaml: an error */
    put("dev.yaml", "worker:\n  thread_pool_size: 2\n");
    {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/default.yaml", dir);
        unlink(path);
    }
    assert_err(LOAD_FAIL(NULL),
               in_dir("default.yaml: cannot open: No such file or directory"));

    /* no directory: an error naming it */
    snprintf(want, sizeof want, "config directory %s/nope: No such file or directory", dir);
    {
        char where[PATH_MAX + 8];
        snprintf(where, sizeof where, "%s/nope", dir);
        assert_err(load_fail(where, (char *)NULL), want);
        /* nor from NETRAVEN_CONFIG_DIR */
        char var[PATH_MAX + 32];
        snprintf(var, sizeof var, "NETRAVEN_CONFIG_DIR=%s", where);
        assert_err(load_fail(NULL, var, (char *)NULL), want);
    }
    /* a file where the directory should be */
    {
        char where[PATH_MAX + 16];
        snprintf(where, sizeof where, "%s/dev.yaml", dir);
        snprintf(want, sizeof want, "config directory %s: Not a directory", where);
        assert_err(load_fail(where, (char *)NULL), want);
    }
}
END_TEST

START_TEST(test_nulls_and_netraven_forms)
{
    struct nr_config c;
    char *err;

    put("default.yaml",
        "logging:\n  file: /tmp/x.log\n"
        "security:\n  encryption_key: k\n");
    put("dev.yaml", "logging:\n  file: ~\nsecurity:\n  encryption_key: \"\"\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_ptr_null(c.logging.file);
    ck_assert_ptr_null(c.security.encryption_key);
    nr_config_clear(&c);

    put("dev.yaml", "logging:\n  file:\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_ptr_null(c.logging.file);
    nr_config_clear(&c);

    /* a quoted "null" is text */
    put("dev.yaml", "logging:\n  file: \"null\"\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_str_eq(c.logging.file, "null");
    nr_config_clear(&c);

    /* NetRaven's own layout: logging.file as {enabled, path, ...},
     * legacy algorithms as YAML lists, upper-case level */
    put("dev.yaml",
        "logging:\n"
        "  level: DEBUG\n"
        "  file:\n"
        "    enabled: true\n"
        "    path: /data/logs/worker/worker.log\n"
        "    level: DEBUG\n"
        "    rotation: {when: midnight, backupCount: 7}\n"
        "ssh:\n"
        "  legacy_kex:\n"
        "    - diffie-hellman-group14-sha1\n"
        "  legacy_macs: [hmac-sha1, hmac-md5]\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_int_eq(c.logging.level, NR_LOG_DEBUG);
    ck_assert_str_eq(c.logging.file, "/data/logs/worker/worker.log");
    ck_assert_str_eq(c.ssh.legacy_kex, "diffie-hellman-group14-sha1");
    ck_assert_str_eq(c.ssh.legacy_macs, "hmac-sha1,hmac-md5");
    nr_config_clear(&c);

    put("dev.yaml", "logging:\n  file: {enabled: false, path: /x.log}\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_ptr_null(c.logging.file);
    nr_config_clear(&c);

    put("dev.yaml", "logging:\n  file: {enabled: perhaps, path: /x.log}\n");
    assert_err(LOAD_FAIL(NULL), in_dir("dev.yaml:2: logging.file: enabled is not a boolean"));

    /* the env var still overrides the file */
    put("dev.yaml", "logging:\n  file: {path: /x.log}\n");
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_LOGGING__FILE=/y.log"), 0);
    ck_assert_str_eq(c.logging.file, "/y.log");
    nr_config_clear(&c);
}
END_TEST

START_TEST(test_anchors_and_merge_keys)
{
    struct nr_config c;
    char *err;

    put("default.yaml",
        "x-timeouts: &timeouts\n"
        "  connection_timeout: 20\n"
        "  command_timeout: 40\n"
        "x-patterns: &patterns [password, secret, community]\n"
        "worker:\n"
        "  <<: *timeouts\n"
        "  command_timeout: 45\n"          /* explicit key wins over the merge */
        "  redaction:\n"
        "    patterns: *patterns\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_double_eq(c.worker.connection_timeout, 20);
    ck_assert_double_eq(c.worker.command_timeout, 45);
    ck_assert_uint_eq(c.worker.redaction_patterns.n, 3);
    nr_config_clear(&c);

    /* a self-referencing alias stops at the depth limit */
    put("default.yaml", "a: &a\n  b: *a\n");
    {
        char *e = LOAD_FAIL(NULL);
        ck_assert_ptr_nonnull(strstr(e, "too deeply nested or too many aliases"));
        free(e);
    }
}
END_TEST

START_TEST(test_level_and_type_names)
{
    enum nr_log_level l = NR_LOG_CRITICAL;

    ck_assert_str_eq(nr_log_level_name(NR_LOG_DEBUG), "debug");
    ck_assert_str_eq(nr_log_level_name(NR_LOG_INFO), "info");
    ck_assert_str_eq(nr_log_level_name(NR_LOG_WARNING), "warning");
    ck_assert_str_eq(nr_log_level_name(NR_LOG_ERROR), "error");
    ck_assert_str_eq(nr_log_level_name(NR_LOG_CRITICAL), "critical");
    ck_assert_str_eq(nr_log_type_name(NR_LOG_JOB), "job");
    ck_assert_str_eq(nr_log_type_name(NR_LOG_CONNECTION), "connection");
    ck_assert_str_eq(nr_log_type_name(NR_LOG_SESSION), "session");
    ck_assert_str_eq(nr_log_type_name(NR_LOG_SYSTEM), "system");

    ck_assert_int_eq(nr_log_level_parse("INFO", &l), 0);
    ck_assert_int_eq(l, NR_LOG_INFO);
    ck_assert_int_eq(nr_log_level_parse("warn", &l), 0);
    ck_assert_int_eq(l, NR_LOG_WARNING);
    ck_assert_int_eq(nr_log_level_parse("Critical", &l), 0);
    ck_assert_int_eq(l, NR_LOG_CRITICAL);
    /* on failure the output is untouched */
    ck_assert_int_eq(nr_log_level_parse("loud", &l), NR_EINVAL);
    ck_assert_int_eq(l, NR_LOG_CRITICAL);
    ck_assert_int_eq(nr_log_level_parse(NULL, &l), NR_EINVAL);
}
END_TEST

START_TEST(test_reload)
{
    struct nr_config c;
    char *err;

    put("default.yaml", "worker:\n  rq_queues: [a]\n");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    nr_config_clear(&c);
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_WORKER__RQ_QUEUES=b,c"), 0);
    ck_assert_uint_eq(c.worker.rq_queues.n, 2);
    nr_config_clear(&c);
}
END_TEST

/* keys.def's defaults alone, for configurations that were not loaded: the
 * same values a load with empty files gives. */
START_TEST(test_default_alone)
{
    const struct nr_config *d = nr_config_default();
    struct nr_config c;
    char *err;

    put("default.yaml", "");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_ptr_eq(nr_config_default(), d);      /* built once */
    ck_assert_ptr_null(d->env);                     /* no file, no environment */
    ck_assert_str_eq(d->database.url, c.database.url);
    ck_assert_int_eq(d->logging.queue_size, c.logging.queue_size);
    ck_assert_int_eq(d->logging.redis.queue_size, c.logging.redis.queue_size);
    ck_assert_int_eq(d->logging.db_batch_size, c.logging.db_batch_size);
    ck_assert_int_eq(d->logging.redis.port, c.logging.redis.port);
    ck_assert_str_eq(d->logging.redis.channel_prefix, c.logging.redis.channel_prefix);
    ck_assert_str_eq(d->queue.stream, c.queue.stream);
    ck_assert_str_eq(d->queue.group, c.queue.group);
    ck_assert_str_eq(d->queue.dead_stream, c.queue.dead_stream);
    ck_assert_int_eq(d->worker.shutdown_grace_seconds, c.worker.shutdown_grace_seconds);
    nr_config_clear(&c);
}
END_TEST

/* One rule for the worker's name: given, else worker.consumer_name, else
 * host:pid. */
START_TEST(test_worker_name)
{
    struct nr_config c;
    char *err, *n, want[300], host[256];

    put("default.yaml", "");
    ck_assert_int_eq(LOAD(&c, &err, NULL), 0);
    ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    snprintf(want, sizeof(want), "%s:%ld", host, (long)getpid());
    n = nr_config_worker_name(&c, NULL);
    ck_assert_str_eq(n, want);
    free(n);
    n = nr_config_worker_name(NULL, "");
    ck_assert_str_eq(n, want);
    free(n);
    n = nr_config_worker_name(&c, "given");
    ck_assert_str_eq(n, "given");
    free(n);
    nr_config_clear(&c);
    ck_assert_int_eq(LOAD(&c, &err, "NETRAVEN_WORKER__CONSUMER_NAME=w1"), 0);
    n = nr_config_worker_name(&c, NULL);
    ck_assert_str_eq(n, "w1");
    free(n);
    n = nr_config_worker_name(&c, "given");
    ck_assert_str_eq(n, "given");
    free(n);
    nr_config_clear(&c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_shipped_files);
    tcase_add_test(tc, test_merge_default_and_env_file);
    tcase_add_test(tc, test_env_overrides);
    tcase_add_test(tc, test_libpq_url);
    tcase_add_test(tc, test_mask_url);
    tcase_add_test(tc, test_print_masks_secrets);
    tcase_add_test(tc, test_errors_env);
    tcase_add_test(tc, test_errors_secret_not_echoed);
    tcase_add_test(tc, test_errors_yaml);
    tcase_add_test(tc, test_errors_yaml_syntax);
    tcase_add_test(tc, test_unknown_keys_ignored);
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_nulls_and_netraven_forms);
    tcase_add_test(tc, test_anchors_and_merge_keys);
    tcase_add_test(tc, test_level_and_type_names);
    tcase_add_test(tc, test_reload);
    tcase_add_test(tc, test_device_types);
    tcase_add_test(tc, test_default_alone);
    tcase_add_test(tc, test_worker_name);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
