/*
 * rq.h - python-rq intake: netraven-worker as an RQ worker.
 *
 * NetRaven's API and scheduler enqueue `netraven.worker.runner.run_job(
 * job_id)` with python-rq (docs/netraven.md §8), and its scheduler also
 * enqueues its retention job, `netraven.scheduler.job_definitions.
 * prune_old_device_configs(retain_count)`.  This module takes those jobs
 * from the RQ queues (worker.rq_queues, in order), runs run_job through the
 * runner (source NR_RUN_SOURCE_RQ) and the retention job on a thread of
 * its own (prune.c), and records each outcome with the write set of
 * docs/python-rq.md §4-§6, so that RQ's own API (Job.fetch, the registries,
 * Worker.all) and `rq info` see them as they would see a Python worker's.
 *
 * Three layers, each usable alone (the tests use all three):
 *   pickle.c  the job's `data`: zlib, then a pickle reader that accepts only
 *             the opcodes such a call produces and executes nothing;
 *   rq.c      the protocol on one Redis connection: take, start, heartbeat,
 *             finish / fail / requeue, worker registration, cleanup of
 *             abandoned jobs;
 *   intake.c  the intake thread that drives the two with the runner;
 *   prune.c   the retention job (rq_i.h), driven by the intake.
 *
 * DESIGN
 *   One thread, "rq-intake", started by nr_rq_intake_new(), owns one Redis
 *   connection (a struct nr_rq over a struct nr_redis of redis.h, so that
 *   scheduler.redis_url, AUTH, SELECT, commands and transactions are
 *   handled in one place; it does not touch the stream's group) and uses
 *   it for everything RQ: no other thread touches it.  The loop:
 *     1. collect this intake's completions (nr_runner_collect, source RQ)
 *        and write each outcome (finish / fail / requeue) in one MULTI;
 *     2. every HEARTBEAT_S (15 s; docs/python-rq.md §4.3 asks for <= 30 s):
 *        push the wip deadline of every job it holds and refresh the worker
 *        key (TTL 480 s); every CLEANUP_S (60 s, and once at start): fail or
 *        requeue jobs abandoned by dead workers;
 *     3. when the runner has a free slot: take a job (an atomic move from
 *        the first non-empty queue into this worker's intake list, see
 *        "Taking" below; when all are empty, a blocking move on the first
 *        queue for 1 s while runs are in flight or several queues are
 *        served, so completions are written and the other queues looked
 *        at promptly, else 2 s, so a stop is seen soon: all far below the
 *        worker key's TTL; before each, `rq suspend` is honoured), decode
 *        and check the job, mark it started, submit it; else wait on the
 *        runner's completion condition for up to 1 s;
 *     4. fail the runs that outlive their job's RQ `timeout` (see
 *        "Timeouts" below).
 *   The runner's slots are shared with the native stream intake (its own
 *   thread, queue.h), so a submit may find the slot taken: the job,
 *   already marked started, is then held (and heart-beaten) until a slot
 *   frees.
 *   A retention call takes no runner slot: it runs on the "rq-prune"
 *   thread (its own PostgreSQL connection), one at a time; the intake
 *   polls it every 0.2 s while it runs and heart-beats its job meanwhile.
 *   A Redis failure closes the connection; the loop reconnects with backoff
 *   (backoff.h: 0.5 s doubling to 10 s, said once per outage), waiting on
 *   the intake's stop condition meanwhile, and keeps completions it could
 *   not write until then.  Runs go on meanwhile; they never wait on Redis.  A command Redis
 *   refuses on a connection that stays up (say WRONGTYPE: someone wrote
 *   `SET rq:queue:low x`) is retried after its own backoff (0.5 s doubling
 *   to 10 s), is logged once when it starts failing and once when it
 *   works again, and holds up nothing else: the take from one queue is
 *   refused alone, the other queues are served meanwhile.
 *
 * Taking (a job is never lost between its queue and its start):
 *   a job moves (LMOVE / BLMOVE, atomic) from rq:queue:<q> to the tail of
 *   rq:queue:<q>:intake:<worker>, this worker's intake list for that
 *   queue, and leaves it in the Start MULTI, or in the failure MULTI of a
 *   job that cannot run, or when it is handed back.  python-rq 2.x does
 *   the same with one list per queue, rq:queue:<q>:intermediate (its
 *   Queue.lmove(), only for workers of a single queue, cleaned by
 *   IntermediateQueue.cleanup(), which fails what stayed there a minute);
 *   a list per worker is what lets the entries of one dead worker be put
 *   back without touching those of live ones, and this worker serves
 *   several queues.  Each worker's name is in the set rq:queue:<q>:intakes
 *   (written with its registration and every heartbeat).  What an intake
 *   list holds goes back to the front of its queue, in order
 *   (nr_rq_recover()): this worker's own at start and after every
 *   reconnect (but for the jobs it holds: it still starts or fails
 *   those), and those of workers whose key rq:worker:<w> has expired
 *   (480 s without a heartbeat), at every cleanup.  Marking a job started checks,
 *   under WATCH, that it is still in the intake list: a worker taken for
 *   dead that comes back never starts a job that was put back meanwhile.
 *
 * Timeouts: a run_job or retention call still running past the job's
 *   `timeout` (the hash field; 180 s, RQ's default, when empty; -1: none)
 *   fails in RQ with "JobTimeoutException: job timed out after N s", as a
 *   Python worker reports it, and is never retried (the run goes on: a
 *   retry would run the same NetRaven job twice at once).  Runs cannot be
 *   killed: a run_job run is abandoned, as the shutdown path abandons runs
 *   past the grace time (its runner slot stays taken until it ends, it
 *   still records its own outcome in NetRaven's database, and nothing of
 *   it is written to RQ); a retention call stops before its next device.
 *
 * Outcome mapping (NetRaven's run_job returns normally after any run it
 * recorded, whatever the job's status; it raises when the database fails):
 *   NR_RUN_RECORDED      RQ success, no return value (the call returns None),
 *                        whatever the final status (COMPLETED_FAILURE is a
 *                        job-level outcome, recorded in NetRaven's DB).
 *   NR_RUN_REJECTED      RQ failure with the reason (the job id is not in
 *                        the DB); never retried: a retry cannot help.
 *   NR_RUN_NOT_RECORDED  RQ failure with the reason (PostgreSQL refused a
 *                        write of the run), as when Python's run_job raises;
 *                        requeued instead when the job has retries_left > 0,
 *                        as RQ does.  (While PostgreSQL is unreachable the
 *                        runner waits for it: the RQ job stays started and
 *                        heart-beaten meanwhile, never failed.)
 *   prune_old_device_configs: RQ success when every device was done; RQ
 *                        failure with the database's error, as when the
 *                        Python job raises (requeued while retries_left >
 *                        0); stopped past the grace time: handed back.
 *   A job whose data does not decode, or that needs an RQ feature this
 *   module does not implement (dependents, callbacks, repeats, retry
 *   intervals), fails before it starts, with the reason, never retried.
 *
 * Caller's steps (the daemon, src/main.c; the stream intake of queue.h
 * has the same shape):
 *   in = nr_rq_intake_new(&cfg, runner, name);    after nr_runner_new()
 *   ... on SIGTERM/SIGINT:
 *   nr_rq_intake_stop(in);                        stop taking RQ jobs now
 *   nr_rq_intake_free(in);                        the grace wait; before
 *                                                 nr_runner_free()
 */
#ifndef NR_RQ_H
#define NR_RQ_H

#include "netraven/common.h"
#include "netraven/config.h"

struct nr_runner;
struct nr_redis;
struct redisContext;

/*
 * The functions an RQ job may call: the function table (pickle.c), one row
 * per call NetRaven enqueues.  Each takes one integer parameter.
 *   run_job(job_id)                    the API's "run now" and the
 *                                      scheduler's interval, cron and
 *                                      one-time jobs: a run, by the runner;
 *   prune_old_device_configs(retain_count=10)
 *                                      the scheduler's retention job: every
 *                                      device keeps its retain_count newest
 *                                      snapshots (prune.c, a thread of the
 *                                      intake's own, not a runner slot).
 * Whatever the job's meta holds (rq-scheduler keeps interval, repeat,
 * cron_string there to re-schedule the job itself) is not read.
 */
#define NR_RQ_FUNC        "netraven.worker.runner.run_job"
#define NR_RQ_FUNC_PRUNE  "netraven.scheduler.job_definitions.prune_old_device_configs"

enum nr_rq_func {
    NR_RQ_RUN_JOB = 0,
    NR_RQ_PRUNE_CONFIGS,
    NR_RQ_FUNC_COUNT
};

struct nr_rq_func_def {
    const char *name;       /* the dotted path the pickled call names */
    const char *param;      /* its one parameter, also as a keyword */
    bool        required;   /* else dflt when the call passes nothing */
    long long   dflt, min, max;
    const char *range;      /* why max, for messages */
};

/* The table, indexed by enum nr_rq_func; *n its length. */
const struct nr_rq_func_def *nr_rq_func_table(size_t *n);

/* A decoded call: which function, and its argument (job_id or
 * retain_count), within the row's bounds. */
struct nr_rq_call {
    enum nr_rq_func func;
    long long       arg;
};

/* ------------------------------------------------------------ pickle.c */

/*
 * Decode an RQ job's `data` field: a zlib stream (if it does not inflate,
 * the bytes are read as a raw pickle) holding a pickle of the 4-tuple
 * (func_name, None, args, kwargs).  Accepted: protocols 2 to 5; the opcodes
 * listed in docs/python-rq.md §3.2, plus BINPUT / LONG_BINPUT (protocols 2
 * and 3 memoize with them).  Any other opcode is refused by name ("pickle
 * opcode 0x93 (STACK_GLOBAL) is not allowed"); nothing is ever imported or
 * called.  Lengths, nesting, memo and value counts are capped.  The call must
 * then name a function of the table with at most its one parameter
 * (positional, or by its keyword), a positive integer within the row's
 * bounds; a call without it takes the default where the row has one.
 *
 * Returns 0 and sets *call; or NR_EINVAL with *reason a malloc'd,
 * printable ASCII text naming what was wrong (caller frees); *call is
 * then untouched.  Pure: no I/O, thread-safe.
 */
int nr_rq_data_decode_call(const void *data, size_t len, struct nr_rq_call *call,
                           char **reason);

/* The same for a raw pickle (no zlib step). */
int nr_rq_pickle_decode_call(const void *pickle, size_t len, struct nr_rq_call *call,
                             char **reason);

/* The same, for run_job only: 0 and *job_id, or NR_EINVAL (a call of
 * another function of the table too, with a reason that says so). */
int nr_rq_data_decode(const void *data, size_t len, long long *job_id, char **reason);
int nr_rq_pickle_decode(const void *pickle, size_t len, long long *job_id, char **reason);

/* ---------------------------------------------------------------- rq.c */

/* One Redis connection speaking RQ, as worker `worker`.  Not thread-safe.
 * Like hiredis's context: once err is set, every call refuses with NR_EIO
 * until nr_rq_reset() has reconnected. */
struct nr_rq {
    struct nr_redis    *conn;       /* the connection (redis.h), owned */
    char               *worker;     /* RQ worker name */
    struct nr_strlist   queues;     /* queue names, in order */
    int                 err;        /* 0 or NR_EIO */
    char                errstr[256];
};

/* A job as read from rq:job:<id>.  Strings are owned; absent fields are
 * NULL.  Cleared by nr_rq_job_clear(). */
struct nr_rq_job {
    char   *id;
    char   *queue;              /* the queue it was taken from */
    char   *origin;
    char   *status;
    char   *data;               /* binary; data_len bytes */
    size_t  data_len;
    long    result_ttl;         /* result_ttl, else 500; -1 = forever */
    long    failure_ttl;        /* failure_ttl, else 31536000; -1 = forever */
    long    retries_left;       /* 0 when absent */
    long    timeout;            /* seconds; the field, else 180 (RQ's
                                   default); 0: none (-1 in RQ) */
    char   *retry_intervals;    /* JSON list, e.g. "[0]" */
    char   *worker_name;        /* the worker that started it, if any */
    bool    in_intake;          /* in this worker's intake list: set by the
                                   take, cleared by nr_rq_start() */
    /* features this module does not implement */
    bool    has_callbacks;      /* success/failure/stopped callback set */
    long    repeats_left;       /* 0 when absent */
    bool    has_dependents;     /* rq:job:<id>:dependents exists */
};

void nr_rq_job_clear(struct nr_rq_job *job);

/* Connect to scheduler.redis_url as worker `worker` (NULL or "": host:pid)
 * consuming `queues` (NULL or empty: worker.rq_queues).  Never NULL; check
 * rq->err.  Free with nr_rq_free(). */
struct nr_rq *nr_rq_connect(const struct nr_config *cfg, const char *worker,
                            const struct nr_strlist *queues);
/* Reconnect after err: 0 or NR_EIO. */
int  nr_rq_reset(struct nr_rq *rq);
void nr_rq_free(struct nr_rq *rq);

/*
 * Take the next job of queue number qi (in rq->queues): LMOVE (timeout_s
 * 0) or BLMOVE waiting up to timeout_s (1..60) from rq:queue:<q> to the
 * tail of rq:queue:<q>:intake:<worker> (see "Taking" above), then HGETALL
 * rq:job:<id> and EXISTS of its dependents key.  Returns 0 with *job
 * filled (caller clears it; the id stays in the intake list until
 * nr_rq_start(), nr_rq_fail() or nr_rq_release()); NR_NOTFOUND when
 * nothing came, or the id had no job hash (a deleted job: skipped, as RQ
 * skips it, and out of the intake list); NR_EINVAL when Redis refused the
 * move (rq->errstr says why: say WRONGTYPE on the queue key; the
 * connection stays usable); NR_EIO.
 */
int nr_rq_take_from(struct nr_rq *rq, size_t qi, int timeout_s, struct nr_rq_job *job);

/* The same over every queue, in order, waiting up to timeout_s (1..60):
 * each queue is tried at once, then a blocking move waits on the first
 * (for 1 s at a time when there are several, then all are tried again).
 * Stops at the first refusal (NR_EINVAL). */
int nr_rq_take(struct nr_rq *rq, int timeout_s, struct nr_rq_job *job);

/*
 * Put back what intake lists of queue hold (jobs taken, never started):
 * each id moves (LMOVE, atomic: two workers recovering the same list never
 * duplicate an id) from the tail of the list to the front of its queue, so
 * the queue's order is kept.  The lists: this worker's own when own is
 * true, but for the ids of keep (may be NULL: jobs it took and still
 * holds, after a reconnect; those go back by one MULTI each under WATCH of
 * the list), and those of every worker of rq:queue:<q>:intakes whose key
 * rq:worker:<w> no longer exists; a dead worker whose list is then empty
 * leaves the set.  *moved (may be NULL) counts the ids moved.  0,
 * NR_EINVAL (refused; errstr) or NR_EIO.
 */
int nr_rq_recover(struct nr_rq *rq, const char *queue, bool own,
                  const struct nr_strlist *keep, size_t *moved);

/* Is the job something this worker can run?  Decodes its data and checks
 * for unimplemented features.  0 with *call, or NR_EINVAL with *reason
 * (malloc'd).  Pure. */
int nr_rq_job_check_call(const struct nr_rq_job *job, struct nr_rq_call *call, char **reason);

/* The same for run_job only: 0 with *job_id; a job calling another
 * function of the table is NR_EINVAL too. */
int nr_rq_job_check(const struct nr_rq_job *job, long long *job_id, char **reason);

/* Start MULTI: status started, started_at, last_heartbeat, worker_name;
 * PERSIST the job; ZADD rq:wip:<q> now+90; LREM from the intake list, all
 * under WATCH of the intake list once LPOS found the id in it.  0;
 * NR_NOTFOUND when the id is no longer in this worker's intake list
 * (another worker put it back: the job must not run here), nothing
 * written; NR_EINVAL (refused) or NR_EIO.  Retried after NR_EIO, it
 * returns 0 when the first call did commit (the job is started by this
 * worker and in rq:wip:<q>). */
int nr_rq_start(struct nr_rq *rq, struct nr_rq_job *job);

/* Heartbeat for the jobs held (n may be 0): last_heartbeat and ZADD XX of
 * the wip deadline of each, and the worker key's last_heartbeat and TTL.
 * 0 or NR_EIO. */
int nr_rq_heartbeat(struct nr_rq *rq, const struct nr_rq_job *const *jobs, size_t n);

/* Success MULTI (status finished, an empty type-1 result, the finished
 * registry; result_ttl -1 and 0 as docs/python-rq.md §5.1 says).
 * 0 or NR_EIO. */
int nr_rq_finish(struct nr_rq *rq, const struct nr_rq_job *job);

/* Failure: when may_retry and the job has retries_left > 0, requeue it
 * (retries_left - 1, status queued, RPUSH) and set *requeued; else the
 * failure MULTI with reason as the exception text (type-2 result, the
 * failed registry).  Either takes a job that never started out of the
 * intake list too (job->in_intake).  requeued may be NULL.  0 or NR_EIO. */
int nr_rq_fail(struct nr_rq *rq, const struct nr_rq_job *job, const char *reason,
               bool may_retry, bool *requeued);

/* Hand back a job taken but never run (shutdown): status queued, LPUSH to
 * the front of its queue, out of rq:wip:<q> and (job->in_intake) of the intake list.  Like
 * an enqueue at_front; nothing of the job's own fields changes otherwise.
 * 0 or NR_EIO. */
int nr_rq_release(struct nr_rq *rq, const struct nr_rq_job *job);

/* Worker registration: rq:worker:<w> (birth, last_heartbeat, queues, pid,
 * hostname, state idle; TTL 480), rq:workers, rq:workers:<q> and
 * rq:queue:<q>:intakes. */
int nr_rq_worker_register(struct nr_rq *rq);
/* state busy with current_job (job_id non-NULL), or idle. */
int nr_rq_worker_state(struct nr_rq *rq, const char *job_id);
/* Leave the sets, death <ts>, TTL 60. */
int nr_rq_worker_death(struct nr_rq *rq);

/* Is `rq suspend` in force (rq:suspended exists)?  1 yes, 0 no, NR_EIO. */
int nr_rq_suspended(struct nr_rq *rq);

/*
 * Abandoned jobs of one queue: every id in rq:wip:<queue> whose deadline
 * has passed (its worker stopped heart-beating) and whose job is still
 * `started` is requeued (retries_left > 0, decremented) or failed with
 * "worker died (abandoned job)"; ids whose job is gone or already final
 * are only removed from the registry.  Each id is handled under WATCH of
 * its job and the registry, so two workers cleaning at once never requeue
 * a job twice; an id whose transaction lost a race is left for the next
 * pass.  *failed / *requeued (may be NULL) count what was done.  When died
 * is not NULL, the NetRaven job ids of the jobs failed here (decoded from
 * their call; a call that does not decode is left out) are appended to it,
 * so that the caller can end their `jobs` rows (the caller frees
 * died->job_ids).  0 or NR_EIO.
 */
struct nr_rq_died {
    long long *job_ids;
    size_t     n;
};
int nr_rq_cleanup(struct nr_rq *rq, const char *queue, size_t *failed, size_t *requeued,
                  struct nr_rq_died *died);

/* ------------------------------------------------------------ intake.c */

struct nr_rq_intake;

/*
 * Start the RQ intake thread (see DESIGN).  cfg and runner must outlive
 * nr_rq_intake_free().  consumer is the RQ worker name, copied (NULL or "":
 * nr_config_worker_name()'s).  The thread connects by itself and retries
 * while Redis is away, so this does not fail when Redis is down.  One
 * intake at a time per process: it owns the worker's name in RQ.
 * Returns the intake; NULL if one is already running, an argument is
 * NULL, or the thread could not be created.
 */
struct nr_rq_intake *nr_rq_intake_new(const struct nr_config *cfg, struct nr_runner *runner,
                                      const char *consumer);

/* Stop taking jobs; returns at once (not async-signal-safe: call it from
 * the main thread, not a signal handler).  Again: no-op.  in may be NULL. */
void nr_rq_intake_stop(struct nr_rq_intake *in);

/*
 * Stop if not yet stopped, then: a job taken but not yet handed to the
 * runner goes back to the front of its queue; wait up to
 * worker.shutdown_grace_seconds (counted from the first stop) for this
 * intake's runs in flight, recording each outcome; register the worker's
 * death; join the thread and free the intake.
 * Runs still in flight after the grace time are handed back: their jobs
 * go back to the front of their queue (status queued, out of the started
 * registry) for another worker, and their outcome here is never written.
 * The daemon then exits without waiting for them.  Must be called before
 * nr_runner_free().  in may be NULL.
 */
void nr_rq_intake_free(struct nr_rq_intake *in);

#endif /* NR_RQ_H */
