/*
 * config.h - the worker's one typed configuration.
 *
 * Sources, in order, each overriding the one before (docs/netraven.md §6.1):
 *   1. the defaults in the key table (src/config/keys.def),
 *   2. <config_dir>/default.yaml,
 *   3. <config_dir>/<env>.yaml, env from NETRAVEN_ENV (default "dev"),
 *   4. environment variables NETRAVEN_A__B__C setting key a.b.c
 *      (lower-cased; "__" nests), plus the aliases listed in keys.def
 *      (NETRAVEN_ENCRYPTION_KEY for security.encryption_key).
 * config_dir comes from --config-dir, else NETRAVEN_CONFIG_DIR, else
 * "./config".
 *
 * Keys the table does not know are ignored (NetRaven's files carry keys for
 * its API and UI); a known key with a bad value, or a YAML syntax error, is
 * refused with a message that names the file and line or the variable, and
 * the key.
 *
 * Caller's steps:
 *   struct nr_config cfg;
 *   char *err = NULL;
 *   if (nr_config_load(&cfg, dir, NULL, &err) < 0) { print err; free(err); }
 *   ... use cfg (read-only once threads start) ...
 *   nr_config_clear(&cfg);
 */
#ifndef NR_CONFIG_H
#define NR_CONFIG_H

#include <stdio.h>

#include "netraven/common.h"

enum nr_log_level {
    NR_LOG_DEBUG = 0,
    NR_LOG_INFO,
    NR_LOG_WARNING,
    NR_LOG_ERROR,
    NR_LOG_CRITICAL,
    NR_LOG_LEVEL_COUNT
};

enum nr_log_type {
    NR_LOG_JOB = 0,
    NR_LOG_CONNECTION,
    NR_LOG_SESSION,
    NR_LOG_SYSTEM,
    NR_LOG_TYPE_COUNT
};

/* Log destinations, as a bit set. stdout is always part of a route. */
enum nr_sink {
    NR_SINK_STDOUT = 1u << 0,
    NR_SINK_FILE   = 1u << 1,
    NR_SINK_DB     = 1u << 2,
    NR_SINK_REDIS  = 1u << 3,
};

enum nr_log_format { NR_LOG_FORMAT_HUMAN = 0, NR_LOG_FORMAT_JSON };

enum nr_host_key_policy {
    NR_HOSTKEY_ACCEPT_NEW = 0,
    NR_HOSTKEY_STRICT,
    NR_HOSTKEY_OFF,
};

/* The device types of netraven/devtypes.def that have timeouts of their
 * own (worker.device_types.<name>.*); the "default" row has none. */
enum nr_devtype_id {
#define NR_DEVTYPE(name, ...) \
    NR_DEVTYPE_##name,
#define NR_DEVTYPE_FALLBACK(name, ...)
#include "netraven/devtypes.def"
#undef NR_DEVTYPE_FALLBACK
#undef NR_DEVTYPE
    NR_DEVTYPE_COUNT
};

/* Per device-type overrides of worker.connection_timeout and
 * worker.command_timeout; NAN (YAML null, the default) means "not set". */
struct nr_devtype_timeouts {
    double connection_timeout;
    double command_timeout;
    bool   keep_volatile;           /* store volatile lines (default: removed) */
};

struct nr_config {
    char *env;                      /* "dev", "prod", ... */
    char *config_dir;

    struct {
        char *url;                  /* database.url; may carry +psycopg2; SENSITIVE (password) */
    } database;

    struct {
        char *redis_url;            /* scheduler.redis_url, redis://[:pw@]host:port[/db] */
    } scheduler;

    struct {
        int    thread_pool_size;    /* device threads shared by all runs */
        int    max_concurrent_jobs; /* runs in flight at once */
        int    task_queue_size;     /* bound of the pool's task queue */
        double connection_timeout;  /* seconds, per connect attempt / probe */
        double command_timeout;     /* seconds, per command */
        int    retry_attempts;
        double retry_backoff;       /* seconds, base of base * 2^n */
        int    max_credential_attempts;
        long   max_output_bytes;
        int    claim_idle_seconds;
        int    max_deliveries;      /* stream deliveries before the dead stream */
        int    shutdown_grace_seconds;
        char  *spool_dir;
        char  *consumer_name;       /* stream consumer / RQ worker name; default host:pid */
        struct nr_strlist rq_queues;
        struct nr_strlist redaction_patterns;   /* worker.redaction.patterns */
        char  *redaction_marker;    /* worker.redaction.marker, "{kind}" filled in */
        struct {
            int    failure_threshold;
            double reset_timeout;   /* seconds */
            int    max_devices;     /* devices tracked at once (bound of its map) */
        } circuit_breaker;
        /* worker.device_types.<name>.{connection,command}_timeout, keep_volatile */
        struct nr_devtype_timeouts device_types[NR_DEVTYPE_COUNT];
    } worker;

    struct {
        char *stream;               /* queue.stream, default netraven:jobs */
        char *group;                /* queue.group, default netraven-workers */
        char *dead_stream;          /* queue.dead_stream, default netraven:jobs:dead */
        int   block_ms;             /* queue.block_ms, XREADGROUP BLOCK */
    } queue;

    struct {
        enum nr_log_level  level;       /* threshold for stdout and file */
        enum nr_log_level  db_level;    /* threshold for the DB sink */
        enum nr_log_format format;
        char              *file;        /* NULL: no file sink */
        unsigned           routes[NR_LOG_TYPE_COUNT];  /* nr_sink bits per type */
        int                queue_size;  /* bound of each sink queue */
        int                db_batch_size;
        struct {
            bool  enabled;
            char *channel_prefix;   /* default netraven-logs */
            int   queue_size;
            int   queue_bytes;      /* bytes of session data queued, at most */
            /* Where the API's live stream subscribes (NetRaven's
             * logging.redis.host/port/db/password); host NULL: the
             * publisher uses scheduler.redis_url. */
            char *host;
            int   port;             /* default 6379 */
            int   db;               /* default 0 */
            char *password;         /* SENSITIVE; NULL: no AUTH */
        } redis;
    } logging;

    struct {
        bool  allow_legacy_kex;
        char *legacy_kex;
        char *legacy_macs;
        enum nr_host_key_policy host_key_policy;
        char *known_hosts;
        char *enable_secret;        /* SENSITIVE */
    } ssh;

    struct {
        char *encryption_key;       /* SENSITIVE */
        char *encryption_salt;
    } security;

    struct {
        char *listen;               /* metrics.listen, "host:port"; "": no metrics server */
    } metrics;
};

/*
 * Load the configuration.  config_dir may be NULL (then NETRAVEN_CONFIG_DIR
 * or ./config).  envp is the environment to read overrides from; NULL means
 * the process environment (tests pass their own).
 * Returns 0 and fills *cfg, or a negative code with *errstr set to a
 * malloc'd message naming file:line or variable, and the key (caller frees);
 * on failure *cfg is left cleared.
 */
int nr_config_load(struct nr_config *cfg, const char *config_dir,
                   char *const *envp, char **errstr);

/*
 * The connect and command timeouts (seconds) for a device type: its
 * worker.device_types.<name>.* value where set, else worker.connection_timeout
 * / worker.command_timeout.  id is a struct nr_devtype's id; NR_DEVTYPE_COUNT
 * (the "default" row) or any other value out of range gets the worker-wide
 * values.  Either output may be NULL.
 */
void nr_config_device_timeouts(const struct nr_config *cfg, int id, double *connect_s,
                               double *command_s);

/*
 * The defaults of src/config/keys.def alone (no file, no environment):
 * what a module falls back to when handed a configuration that was not
 * loaded (a zeroed struct, in tests and benchmarks), so that keys.def stays
 * the only source of defaults.  Built once, thread-safe; never freed.
 */
const struct nr_config *nr_config_default(void);

/* Free everything cfg owns; cfg may then be loaded again. */
void nr_config_clear(struct nr_config *cfg);

/* Print the effective configuration as YAML-ish "key: value" lines, one
 * per table key, with SENSITIVE values (and the password of URLs) masked. */
void nr_config_print(const struct nr_config *cfg, FILE *out);

/* The libpq connection string for database.url: the SQLAlchemy driver
 * suffix ("postgresql+psycopg2://") removed.  Returns a malloc'd string. */
char *nr_config_libpq_url(const char *url);

/* A URL with its password replaced by "****", for logs.  malloc'd. */
char *nr_config_mask_url(const char *url);

/*
 * The worker's name: its consumer in the stream's group and its RQ worker
 * name.  name when set, else worker.consumer_name when set, else
 * "<hostname>:<pid>" ("unknown" when the host name cannot be read).  The
 * daemon computes it once and hands it to both intakes; the connections
 * use this same rule when given none.  cfg and name may be NULL.  Returns
 * a malloc'd string (caller frees).
 */
char *nr_config_worker_name(const struct nr_config *cfg, const char *name);

/* Names, for the log module and check-config. */
const char *nr_log_level_name(enum nr_log_level l);   /* "info" */
const char *nr_log_type_name(enum nr_log_type t);     /* "job" */
int nr_log_level_parse(const char *s, enum nr_log_level *out);  /* case-insensitive; 0 or NR_EINVAL */

#endif /* NR_CONFIG_H */
