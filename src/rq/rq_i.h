/*
 * rq_i.h - what the files of the rq module share and nobody else uses:
 * the scheduler's retention job on a thread of its own (prune.c), driven
 * by the intake thread (intake.c).
 *
 * NetRaven's prune_old_device_configs(retain_count) is not a job run: it
 * has no jobs row and no devices to dispatch, so it takes no runner slot.
 * It may take minutes on a large database, so it does not run on the
 * intake thread either, which must keep heart-beating.  The intake runs at
 * most one at a time.
 *
 * Caller's steps (the intake thread):
 *   p = nr_rq_prune_start(db_url, retain_count, rq_job_id);
 *   ... while (!nr_rq_prune_done(p)) heart-beat, take other jobs ...
 *   read p's outcome; nr_rq_prune_free(p);
 * and to give one up (shutdown past the grace time):
 *   nr_rq_prune_abandon(p);       never waits: the thread stops before its
 *                                 next device and frees p itself, so a
 *                                 statement waiting on a lock cannot hold
 *                                 up the exit
 */
#ifndef NR_RQ_I_H
#define NR_RQ_I_H

#include <pthread.h>
#include <stdatomic.h>

#include "netraven/rq.h"

struct nr_rq_prune {
    pthread_t    thread;
    char        *db_url;
    char        *rq_job;
    long long    keep;          /* retain_count */
    atomic_bool  cancel;
    atomic_int   state;         /* PRUNE_RUNNING, _DONE (the fields below
                                   are final) or _ABANDONED (prune.c) */

    int          rc;            /* NR_OK, NR_ERR (reason says why) or
                                   NR_ECLOSED (cancelled between devices) */
    char        *reason;        /* owned */
    long long    devices;       /* devices seen */
    long long    pruned;        /* of those, devices that lost snapshots */
    long long    deleted;       /* snapshots deleted */
};

/* Start the thread.  Returns the job, or NULL if the thread could not be
 * created.  db_url and rq_job are copied. */
struct nr_rq_prune *nr_rq_prune_start(const char *db_url, long long keep, const char *rq_job);

/* Has the thread finished (its outcome final)?  Never blocks. */
bool nr_rq_prune_done(struct nr_rq_prune *p);

/* Join and free a finished one (nr_rq_prune_done() said so).  NULL ok. */
void nr_rq_prune_free(struct nr_rq_prune *p);

/* Give it up, finished or not: returns at once, and p is no longer the
 * caller's.  NULL ok. */
void nr_rq_prune_abandon(struct nr_rq_prune *p);

#endif /* NR_RQ_I_H */
