/* registry.c - the job type -> handler table (docs/netraven.md §3.3). */
#include <string.h>

#include "netraven/handler.h"

/* Reachability is not guarded: it is the probe of a device's health, so a
 * breaker must not answer for it and its probes carry their own timeouts. */
static const struct nr_handler_def handlers[] = {
    { "reachability", "reachability_handler", nr_handler_reachability, false, false },
    { "config_backup", "config_backup_handler", nr_handler_config_backup, true, true },
    { "backup", "config_backup_handler", nr_handler_config_backup, true, true },
    { "command", "command_handler", nr_handler_command, true, true },
};

const struct nr_handler_def *nr_handler_find(const char *job_type)
{
    if (job_type == NULL)
        return NULL;
    for (size_t i = 0; i < NR_ARRAY_LEN(handlers); i++)
        if (strcmp(handlers[i].job_type, job_type) == 0)
            return &handlers[i];
    return NULL;
}

const struct nr_handler_def *nr_handler_table(size_t *n)
{
    *n = NR_ARRAY_LEN(handlers);
    return handlers;
}
