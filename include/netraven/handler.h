/*
 * handler.h - job type handlers: what is done to one device.
 *
 * The registry is one table (src/handlers/registry.c): job type name ->
 * function.  A handler runs on a pool thread, gets the device and the run's
 * context, and fills a result; it never touches the pool and never talks
 * to PostgreSQL: the run thread writes job_results, config snapshots and
 * last_seen from the result.  It logs through the event catalog with the
 * job and device ids of its context.
 */
#ifndef NR_HANDLER_H
#define NR_HANDLER_H

#include <jansson.h>

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/failure.h"
#include "netraven/queue.h"
#include "netraven/store.h"

/* A credential resolved for a device (docs/netraven.md §2.3, §7): the
 * password is
 * decrypted, held only in memory, and cleansed when the run ends.  Never
 * log it. */
struct nr_credential {
    long long id;
    char     *username;
    char     *password;         /* plaintext; SECRET */
    int       priority;
};

struct nr_handler_ctx {
    const struct nr_config     *cfg;
    const struct nr_job        *job;
    const struct nr_device     *device;
    const struct nr_payload    *payload;   /* the queue message: commands, ... */
    const struct nr_credential *creds;     /* matching credentials, best first */
    size_t                      ncreds;
};

struct nr_result {
    bool    success;
    json_t *details;        /* a JSON object the handler fills; owned here */
    /* On failure: what failed (failure.h), which the dispatcher's policy
     * reads and details carry as error / class / stage; the SSH handlers
     * classify every failure, NR_FAILURE_NONE is one nobody classified. */
    struct nr_failure failure;

    /* config_backup: the redacted running config and its sha256 (hex).
     * The run thread, not the device thread, writes it to
     * device_configurations unless the device's newest snapshot has the
     * same hash, and sets details.deduplicated. */
    char   *config;         /* malloc'd, owned here; NULL when none */
    size_t  config_len;
    char    config_hash[65];
    bool    device_seen;    /* a session succeeded: devices.last_seen = now() */

    /* Every credential tried, in order: the run records each attempt
     * (credentials.last_used, success_rate). */
    struct nr_cred_attempt {
        long long cred_id;
        bool      success;
    } attempts[16];
    size_t  nattempts;
};

typedef void (*nr_handler_fn)(const struct nr_handler_ctx *ctx, struct nr_result *out);

struct nr_handler_def {
    const char    *job_type;    /* "reachability" */
    const char    *name;        /* "reachability_handler", for the job log */
    nr_handler_fn  fn;
    bool           needs_credentials;   /* the run resolves credentials first */
    bool           guarded;             /* the dispatcher retries its failures
                                         * whose class is retried (failure.def)
                                         * and keeps a circuit breaker per
                                         * device (connection handlers) */
};

/* The handler of a job type, or NULL when none is registered. */
const struct nr_handler_def *nr_handler_find(const char *job_type);

/* The registry, for the README and tests; *n set to its length. */
const struct nr_handler_def *nr_handler_table(size_t *n);

/* Handlers. */
void nr_handler_reachability(const struct nr_handler_ctx *ctx, struct nr_result *out);
/* "config_backup" and "backup": the running config, redacted, with its
 * sha256 in out->config / config_hash (src/handlers/backup.c). */
void nr_handler_config_backup(const struct nr_handler_ctx *ctx, struct nr_result *out);
/* "command": runs ctx->payload->commands, outputs in details.outputs. */
void nr_handler_command(const struct nr_handler_ctx *ctx, struct nr_result *out);

#endif /* NR_HANDLER_H */
