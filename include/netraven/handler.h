/*
 * handler.h - job type handlers: what is done to one device.
 *
 * The registry is one table (src/handlers/registry.c): job type name ->
 * function.  A handler runs on a pool thread, gets the device and the run's
 * context, and fills a result; it never touches the pool and never writes
 * job_results (the run does).  It logs through the event catalog with the
 * job and device ids of its context.
 */
#ifndef NR_HANDLER_H
#define NR_HANDLER_H

#include <jansson.h>

#include "netraven/common.h"
#include "netraven/config.h"
#include "netraven/queue.h"
#include "netraven/store.h"

struct nr_handler_ctx {
    const struct nr_config  *cfg;
    const struct nr_job     *job;
    const struct nr_device  *device;
    const struct nr_payload *payload;   /* the queue message: commands, ... */
};

struct nr_result {
    bool    success;
    json_t *details;        /* a JSON object the handler fills; owned here */
};

typedef void (*nr_handler_fn)(const struct nr_handler_ctx *ctx, struct nr_result *out);

struct nr_handler_def {
    const char    *job_type;    /* "reachability" */
    const char    *name;        /* "reachability_handler", for the job log */
    nr_handler_fn  fn;
};

/* The handler of a job type, or NULL when none is registered. */
const struct nr_handler_def *nr_handler_find(const char *job_type);

/* The registry, for the README and tests; *n set to its length. */
const struct nr_handler_def *nr_handler_table(size_t *n);

/* Handlers. */
void nr_handler_reachability(const struct nr_handler_ctx *ctx, struct nr_result *out);

#endif /* NR_HANDLER_H */
