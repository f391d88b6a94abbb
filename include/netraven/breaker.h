/*
 * breaker.h - a circuit breaker per device, shared by every run of the
 * process: after failure_threshold consecutive connection failures of a
 * device, its tasks fail at once without a connection attempt ("circuit
 * open") for reset_timeout seconds; then one trial connection is let
 * through (half-open): if the device answers the breaker closes, if not it
 * opens again for another reset_timeout.
 *
 * What counts (the breaker column of failure.def, applied by src/dispatch/dispatch.c):
 *   FAILED     the device could not be reached or dropped the session:
 *              refused, unreachable, any timeout, connection lost.  Each
 *              such connection attempt counts, retries included.
 *   ANSWERED   the device answered: a success, but also a refused login
 *              or enable, a changed host key, an algorithm mismatch, an
 *              output over the cap.  The breaker measures reachability, so
 *              these reset the count and close a half-open breaker;
 *              authentication failures are the credential fallback's
 *              business and must not lock a device out of its next
 *              credential or its next run.
 *   NO_OUTCOME the attempt never tested the device (bad input); a trial
 *              that ends so is handed back for the next caller.
 *
 * DESIGN
 *   One mutex over a chained hash map keyed by device id; calls are a few
 *   instructions under it and never block otherwise.  Only devices with
 *   something to remember are in the map (a failure count, open or
 *   half-open); a device that answers while closed leaves it.  The map
 *   holds at most max_devices: when it is full a closed device is evicted
 *   (the one whose last failure is oldest); when every tracked device is
 *   open, the new one is not tracked (its failures do not count) and the
 *   miss is counted (nr_breaker_untracked) for the caller to report.
 *   Times are seconds on a monotonic clock, passed in by the caller, so
 *   that tests drive them.
 *
 * Caller's steps (a pool thread, around each connection attempt):
 *   struct nr_breaker *b = nr_breaker_new(5, 60.0, 100000);    once
 *   v = nr_breaker_acquire(b, device_id, now, &info);
 *   if (v == NR_BREAKER_REJECT) ... fail fast: info.retry_in ...
 *   ... connect (v == NR_BREAKER_TRIAL: this is the one trial) ...
 *   tr = nr_breaker_record(b, device_id, v == NR_BREAKER_TRIAL, outcome, now, &info);
 *   ... log tr (opened, closed) ...
 *   nr_breaker_free(b);                                          at exit
 */
#ifndef NR_BREAKER_H
#define NR_BREAKER_H

#include "netraven/common.h"

struct nr_breaker;

enum nr_breaker_state {
    NR_BREAKER_CLOSED = 0,      /* connections go ahead */
    NR_BREAKER_OPEN,            /* connections are refused until the reset timeout */
    NR_BREAKER_HALF_OPEN,       /* one trial connection is under way or may go */
};

enum nr_breaker_verdict {
    NR_BREAKER_ALLOW = 0,       /* closed: connect */
    NR_BREAKER_TRIAL,           /* it half-opened and this caller holds the one trial */
    NR_BREAKER_REJECT,          /* open, or half-open with the trial taken: do not connect */
};

enum nr_breaker_outcome {
    NR_BREAKER_ANSWERED = 0,
    NR_BREAKER_FAILED,
    NR_BREAKER_NO_OUTCOME,
};

enum nr_breaker_transition {
    NR_BREAKER_UNCHANGED = 0,
    NR_BREAKER_TO_OPEN,         /* threshold reached, or the trial failed */
    NR_BREAKER_TO_CLOSED,       /* it was open or half-open and the device answered */
};

/* What the breaker says about a device after a call. */
struct nr_breaker_info {
    enum nr_breaker_state state;
    int    failures;            /* consecutive failures counted */
    double retry_in;            /* open: seconds until a trial may go; 0 otherwise */
    bool   tracked;             /* false: the map was full, the device is not tracked */
};

/* A breaker map.  threshold >= 1 (smaller is taken as 1), reset_s > 0,
 * max_devices >= 1.  Never NULL. */
struct nr_breaker *nr_breaker_new(int threshold, double reset_s, size_t max_devices);

/* Free the map.  NULL ok. */
void nr_breaker_free(struct nr_breaker *b);

/*
 * May device_id be connected to now?  Closed (or not tracked): ALLOW.
 * Open and reset_s have passed since it opened: it becomes half-open and
 * this caller gets the TRIAL.  Open before that, or half-open with the
 * trial taken: REJECT, with info->retry_in.  info may be NULL.
 */
enum nr_breaker_verdict nr_breaker_acquire(struct nr_breaker *b, long long device_id, double now,
                                           struct nr_breaker_info *info);

/*
 * Report the outcome of an attempt that acquire allowed (trial: it was
 * the TRIAL).  FAILED adds one consecutive failure: at the threshold a
 * closed breaker opens, and a failed trial opens it again, both returning
 * TO_OPEN.  ANSWERED resets the count and closes an open or half-open
 * breaker (TO_CLOSED).  NO_OUTCOME changes nothing but hands a trial
 * back.  info may be NULL.
 */
enum nr_breaker_transition nr_breaker_record(struct nr_breaker *b, long long device_id,
                                             bool trial, enum nr_breaker_outcome outcome,
                                             double now, struct nr_breaker_info *info);

/* The state of a device without changing it (for tests and reports):
 * 0 with *info filled, or NR_NOTFOUND when the device is not tracked
 * (closed, no failures). */
int nr_breaker_peek(struct nr_breaker *b, long long device_id, double now,
                    struct nr_breaker_info *info);

/* Devices tracked now; failures of devices that could not be tracked
 * since the start (the map was full of open breakers). */
size_t   nr_breaker_size(struct nr_breaker *b);
uint64_t nr_breaker_untracked(struct nr_breaker *b);

/* "closed", "open", "half-open". */
const char *nr_breaker_state_name(enum nr_breaker_state s);

#endif /* NR_BREAKER_H */
