/* failure.c - the failure classes (failure.def) and a failure's JSON (failure.h). */
#include "netraven/failure.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct nr_failure_def nr_failures[NR_FAILURE_COUNT] = {
#define NR_FAILURE(id, name, retried, breaker) \
    [NR_FAILURE_##id] = { #id, name, retried, NR_BREAKER_##breaker },
#include "netraven/failure.def"
#undef NR_FAILURE
};

const char *nr_failure_name(enum nr_failure_class cls)
{
    return (unsigned)cls < NR_FAILURE_COUNT ? nr_failures[cls].name : "unknown";
}

bool nr_failure_retried(enum nr_failure_class cls)
{
    return (unsigned)cls < NR_FAILURE_COUNT && nr_failures[cls].retried;
}

enum nr_breaker_outcome nr_failure_breaker(enum nr_failure_class cls)
{
    return (unsigned)cls < NR_FAILURE_COUNT ? nr_failures[cls].breaker : NR_BREAKER_NO_OUTCOME;
}

void nr_failure_set(struct nr_failure *f, enum nr_failure_class cls, const char *stage,
                    const char *fmt, ...)
{
    va_list ap;

    f->cls = cls;
    f->stage = stage;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    va_end(ap);
}

void nr_failure_details(json_t *d, const struct nr_failure *f)
{
    json_t *msg = json_string(f->message);

    if (msg == NULL) {      /* not UTF-8 (a device's or a library's words) */
        char copy[sizeof(f->message)];

        memcpy(copy, f->message, sizeof(copy));
        copy[sizeof(copy) - 1] = '\0';
        nr_utf8_scrub(copy, strlen(copy));
        msg = json_string(copy);
    }
    json_object_set_new(d, "error", msg ? msg : json_null());
    if (f->cls == NR_FAILURE_NONE)
        return;
    json_object_set_new(d, "class", json_string(nr_failure_name(f->cls)));
    if (f->stage)
        json_object_set_new(d, "stage", json_string(f->stage));
}
