/*
 * failure.h - what went wrong in a device task, typed: its class (one row
 * of failure.def: name, retried or not, what the circuit breaker records),
 * the stage it happened at, and the message.
 *
 * Handlers and the dispatcher set a failure where it happens
 * (nr_failure_set, or nr_ssh_failure for a failed session); the JSON of a
 * result is written from it (nr_failure_details), and the dispatcher's
 * policy reads the class, never a name out of JSON.
 *
 * Caller's steps:
 *   struct nr_failure f = { 0 };                       no failure
 *   nr_failure_set(&f, NR_FAILURE_INPUT, "input", "the job carries no %s", "commands");
 *   nr_failure_details(details, &f);       details.error / class / stage
 *   if (nr_failure_retried(f.cls)) ...     the dispatcher
 */
#ifndef NR_FAILURE_H
#define NR_FAILURE_H

#include <jansson.h>

#include "netraven/breaker.h"
#include "netraven/common.h"

enum nr_failure_class {
#define NR_FAILURE(id, name, retried, breaker) NR_FAILURE_##id,
#include "netraven/failure.def"
#undef NR_FAILURE
    NR_FAILURE_COUNT
};

/* One row of failure.def. */
struct nr_failure_def {
    const char              *id;        /* "TIMEOUT" */
    const char              *name;      /* "timeout" */
    bool                     retried;
    enum nr_breaker_outcome  breaker;
};

/* The table, indexed by enum nr_failure_class. */
extern const struct nr_failure_def nr_failures[NR_FAILURE_COUNT];

/* Bytes of a message, with its NUL; longer ones are cut. */
#define NR_FAILURE_MSGLEN 384

struct nr_failure {
    enum nr_failure_class cls;      /* NR_FAILURE_NONE: none, or not classified */
    const char           *stage;    /* static: "connect", "auth", ..., "dispatch";
                                     * NULL: none */
    char                  message[NR_FAILURE_MSGLEN];  /* "": none; never a secret */
};

/* The class's name (failure.def); "unknown" out of range.  Never NULL. */
const char *nr_failure_name(enum nr_failure_class cls);

/* Does the dispatcher try again after this class?  false out of range. */
bool nr_failure_retried(enum nr_failure_class cls);

/* What the breaker records for an attempt that failed so; NO_OUTCOME out
 * of range.  (An attempt that worked is ANSWERED: not a class.) */
enum nr_breaker_outcome nr_failure_breaker(enum nr_failure_class cls);

/* Set *f: class, stage (static storage, or NULL) and the message from
 * fmt (cut at NR_FAILURE_MSGLEN - 1 bytes). */
void nr_failure_set(struct nr_failure *f, enum nr_failure_class cls, const char *stage,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Write the failure into a result's details: "error" (the message; bytes
 * that are not UTF-8 become '?'), then "class" and "stage" when it is
 * classified (cls != NONE) and they are set.  Keys already there are
 * replaced.
 */
void nr_failure_details(json_t *d, const struct nr_failure *f);

#endif /* NR_FAILURE_H */
