/*
 * prune.c - NetRaven's retention job, prune_old_device_configs(retain_count),
 * as its Python worker runs it (netraven/scheduler/job_definitions.py):
 *
 *   list the devices; a logs row "[Retention] Starting config prune for N
 *   devices (retain_count=K)"; for each device with more than K snapshots,
 *   in its own transaction, delete all but its K newest and write the row
 *   "[Retention] Pruned M configs for device HOST (IDs: [...])"; then
 *   "[Retention] Config prune complete. Total configs deleted: T".  On a
 *   database error: the row "[Retention] Error during config prune: E"
 *   (level ERROR, meta {"error": E}) and the job fails; devices done
 *   before it stay done, as there.
 *
 * The rows are job-less (no job_id, no device_id), log_type 'system',
 * source 'prune_old_device_configs', written to `logs` directly: the
 * Python worker's logger writes them to the database whatever its routing,
 * and the per-device row goes in the transaction of its deletion
 * (nr_store_config_prune), so a row never tells of a deletion that rolled
 * back.  What the worker itself says about it goes to stdout as RQ_*
 * events, like the rest of the intake's lines.
 *
 * Beyond the Python job, on purpose: a retain_count below 1 never reaches
 * here (the function table refuses it), and the statement keeps at least
 * one snapshot anyway, so a device's newest snapshot is never deleted.
 */
#include "rq_i.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "netraven/log.h"
#include "netraven/store.h"

#define PRUNE_SOURCE "prune_old_device_configs"

enum { PRUNE_RUNNING, PRUNE_DONE, PRUNE_ABANDONED };

/* A row as NetRaven's logger writes it; a failure to write it does not fail
 * the job (Python's logger swallows its own database errors too). */
static void prune_log(struct nr_store *s, const char *level, const char *message,
                      const char *meta_json)
{
    (void)nr_store_log_add(s, "system", level, PRUNE_SOURCE, message, meta_json);
}

/* The job failed: record why, and the error row when the database can
 * still take it (after one reconnect if the connection was lost). */
static void prune_fail(struct nr_rq_prune *p, struct nr_store *s)
{
    char *msg;
    json_t *meta;
    char *meta_text;

    p->rc = NR_ERR;
    p->reason = nr_strdup(s->errstr[0] ? s->errstr : "database error");
    if (s->err == NR_EIO && nr_store_reset(s) != 0)
        return;
    msg = nr_asprintf("[Retention] Error during config prune: %s", p->reason);
    meta = json_pack("{s:s}", "error", p->reason);
    meta_text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    prune_log(s, "ERROR", msg, meta_text);
    free(meta_text);
    json_decref(meta);
    free(msg);
}

static void prune_run(struct nr_rq_prune *p)
{
    struct nr_store *s = nr_store_connect(p->db_url);
    struct nr_prune_device *dev = NULL;
    size_t n = 0;
    char *msg;

    if (s->err) {
        prune_fail(p, s);
        goto out;
    }
    if (nr_store_prune_devices(s, &dev, &n) < 0) {
        prune_fail(p, s);
        goto out;
    }
    p->devices = (long long)n;
    msg = nr_asprintf("[Retention] Starting config prune for %zu devices (retain_count=%lld)",
                      n, p->keep);
    prune_log(s, "INFO", msg, NULL);
    free(msg);

    for (size_t i = 0; i < n; i++) {
        long long deleted = 0;
        char *ids = NULL;

        if (dev[i].snapshots <= p->keep)
            continue;
        if (atomic_load(&p->cancel)) {
            p->rc = NR_ECLOSED;
            goto out;
        }
        if (nr_store_config_prune(s, dev[i].id, p->keep, &deleted, &ids) < 0) {
            prune_fail(p, s);
            goto out;
        }
        if (deleted > 0) {
            p->pruned++;
            p->deleted += deleted;
            NR_LOG(NR_EV_RQ_PRUNE_DEVICE, 0, dev[i].id, NR_S("device_name", dev[i].hostname),
                   NR_I("deleted", deleted), NR_I("retain_count", p->keep), NR_S("ids", ids),
                   NR_S("rq_job", p->rq_job));
        }
        free(ids);
    }
    msg = nr_asprintf("[Retention] Config prune complete. Total configs deleted: %lld",
                      p->deleted);
    prune_log(s, "INFO", msg, NULL);
    free(msg);
    p->rc = NR_OK;
out:
    nr_prune_device_array_free(dev, n);
    nr_store_free(s);
}

static void prune_release(struct nr_rq_prune *p)
{
    free(p->db_url);
    free(p->rq_job);
    free(p->reason);
    free(p);
}

static void *prune_main(void *arg)
{
    struct nr_rq_prune *p = arg;
    sigset_t all;

    /* signals belong to the main thread */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    pthread_setname_np(pthread_self(), "rq-prune");
    prune_run(p);
    /* whoever comes second of this thread and nr_rq_prune_abandon frees */
    if (atomic_exchange(&p->state, PRUNE_DONE) == PRUNE_ABANDONED)
        prune_release(p);
    return NULL;
}

struct nr_rq_prune *nr_rq_prune_start(const char *db_url, long long keep, const char *rq_job)
{
    struct nr_rq_prune *p = nr_calloc(1, sizeof(*p));

    p->db_url = nr_strdup(db_url ? db_url : "");
    p->rq_job = nr_strdup(rq_job ? rq_job : "-");
    p->keep = keep;
    atomic_init(&p->cancel, false);
    atomic_init(&p->state, PRUNE_RUNNING);
    if (pthread_create(&p->thread, NULL, prune_main, p) != 0) {
        prune_release(p);
        return NULL;
    }
    return p;
}

bool nr_rq_prune_done(struct nr_rq_prune *p)
{
    return atomic_load(&p->state) == PRUNE_DONE;
}

void nr_rq_prune_free(struct nr_rq_prune *p)
{
    if (p == NULL)
        return;
    pthread_join(p->thread, NULL);      /* done: returns at once */
    prune_release(p);
}

void nr_rq_prune_abandon(struct nr_rq_prune *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->cancel, true);
    pthread_detach(p->thread);
    if (atomic_exchange(&p->state, PRUNE_ABANDONED) == PRUNE_DONE)
        prune_release(p);
}
