/*
 * payload.c - parsing and validation of native queue payloads.
 *
 * Pure: no I/O, no globals.  The payload comes from a Redis Stream entry
 * that anyone with access to Redis can write, so every byte is treated as
 * hostile: size and list lengths are capped before anything is allocated
 * for them, and every rejection names the field and what was wrong, so the
 * reason can go to the dead-letter stream as it is.
 *
 * Choices (documented in the tests too):
 *  - duplicate keys are refused (JSON_REJECT_DUPLICATES): Python's json keeps
 *    the last, other parsers the first; a payload that two readers would
 *    read differently is not run.
 *  - unknown keys are ignored, so producers may add fields.
 *  - an optional field that is JSON null is treated as absent (Python's
 *    json.dumps writes None as null).
 *  - device_ids must not be empty and must not repeat an id; job_type and
 *    run_id must be non-empty and free of control characters; commands must
 *    be non-empty single lines without control characters (a ^Z or ESC sent
 *    to a device CLI steers it rather than running a command).
 */
#include "netraven/queue.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_MAX_BYTES   (1024u * 1024u)
#define DEVICE_IDS_MAX      100000u
#define JOB_TYPE_MAX        64u
#define RUN_ID_MAX          128u
#define COMMANDS_MAX        256u
#define COMMAND_MAX         4096u
#define SHOWN_VALUE_MAX     48u     /* how much of a bad value a reason quotes */

/* Copy s into a new string, with bytes that are not printable ASCII written
 * as \xNN: jansson quotes the offending input in its messages, and a reason
 * ends up in logs and in the dead-letter stream. */
static char *printable(const char *s)
{
    size_t n = strlen(s);
    char *out = nr_malloc(n * 4 + 1);
    char *o = out;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f) {
            *o++ = (char)*p;
        } else {
            snprintf(o, 5, "\\x%02x", *p);
            o += 4;
        }
    }
    *o = '\0';
    return out;
}

/* The value as compact JSON, ASCII only, cut at SHOWN_VALUE_MAX. */
static char *show(const json_t *v)
{
    char *dump = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII);
    char *out;

    if (dump == NULL)
        return nr_strdup("(unprintable value)");
    if (strlen(dump) > SHOWN_VALUE_MAX)
        out = nr_asprintf("%.*s...", (int)SHOWN_VALUE_MAX, dump);
    else
        out = nr_strdup(dump);
    free(dump);
    return out;
}

static int fail(char **reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **reason, const char *fmt, ...)
{
    if (reason != NULL) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
            s = NULL;
        va_end(ap);
        *reason = s ? s : nr_strdup("payload is invalid");
    }
    return NR_EINVAL;
}

/* "must be X, got V" for the value v of field name. */
static int fail_value(char **reason, const char *name, const char *want, const json_t *v)
{
    char *shown = show(v);
    int rc = fail(reason, "%s must be %s, got %s", name, want, shown);
    free(shown);
    return rc;
}

static int fail_json(char **reason, const json_error_t *e)
{
    const char *what;
    char *text = printable(e->text);
    int rc;

    switch (json_error_code(e)) {
    case json_error_duplicate_key:
        what = "payload has a duplicate key";
        break;
    case json_error_numeric_overflow:
        what = "payload has a number out of range";
        break;
    default:
        what = "payload is not valid JSON";
        break;
    }
    if (e->line > 0)
        rc = fail(reason, "%s: %s (line %d, column %d)", what, text, e->line, e->column);
    else
        rc = fail(reason, "%s: %s", what, text);
    free(text);
    return rc;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a number";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    }
    return "something else";
}

static bool positive_int(const json_t *v, long long *out)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return false;
    *out = (long long)json_integer_value(v);
    return true;
}

/* Offset of the first ASCII control character in s[0..len), or -1. */
static long control_at(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return (long)i;
    return -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int parse_device_ids(const json_t *v, struct nr_payload *p, char **reason)
{
    size_t n, i;
    long long *sorted;

    if (!json_is_array(v))
        return fail_value(reason, "device_ids", "an array of positive integers", v);
    n = json_array_size(v);
    if (n == 0)
        return fail(reason, "device_ids is empty; leave it out to run on the job's devices");
    if (n > DEVICE_IDS_MAX)
        return fail(reason, "device_ids has %zu entries, more than the limit of %u",
                    n, DEVICE_IDS_MAX);

    p->device_ids = nr_malloc(n * sizeof(*p->device_ids));
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!positive_int(e, &p->device_ids[i])) {
            char name[48];
            snprintf(name, sizeof(name), "device_ids[%zu]", i);
            return fail_value(reason, name, "a positive integer", e);
        }
    }
    p->n_device_ids = n;

    /* A device run twice in one job would race with itself. */
    sorted = nr_malloc(n * sizeof(*sorted));
    memcpy(sorted, p->device_ids, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_ll);
    for (i = 1; i < n; i++) {
        if (sorted[i] == sorted[i - 1]) {
            long long dup = sorted[i];
            free(sorted);
            return fail(reason, "device_ids lists device %lld more than once", dup);
        }
    }
    free(sorted);
    return NR_OK;
}

/* An optional string field of at most max bytes; *out NULL when absent. */
static int parse_string(const json_t *root, const char *name, size_t max,
                        char **out, char **reason)
{
    const json_t *v = json_object_get(root, name);
    size_t len;

    if (v == NULL || json_is_null(v))
        return NR_OK;
    if (!json_is_string(v))
        return fail_value(reason, name, "a string", v);
    len = json_string_length(v);
    if (len == 0)
        return fail(reason, "%s must not be empty", name);
    if (len > max)
        return fail(reason, "%s is %zu bytes long, more than the limit of %zu",
                    name, len, max);
    if (control_at(json_string_value(v), len) >= 0)
        return fail(reason, "%s must not contain control characters", name);
    *out = nr_strndup(json_string_value(v), len);
    return NR_OK;
}

static int parse_commands(const json_t *v, struct nr_payload *p, char **reason)
{
    size_t n, i;

    if (!json_is_array(v))
        return fail_value(reason, "commands", "an array of strings", v);
    n = json_array_size(v);
    if (n > COMMANDS_MAX)
        return fail(reason, "commands has %zu entries, more than the limit of %u",
                    n, COMMANDS_MAX);
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        const char *s;
        size_t len;
        long at;

        if (!json_is_string(e)) {
            char name[32];
            snprintf(name, sizeof(name), "commands[%zu]", i);
            return fail_value(reason, name, "a string", e);
        }
        s = json_string_value(e);
        len = json_string_length(e);
        if (len == 0)
            return fail(reason, "commands[%zu] is empty", i);
        if (len > COMMAND_MAX)
            return fail(reason, "commands[%zu] is %zu bytes long, more than the limit of %u",
                        i, len, COMMAND_MAX);
        if (memchr(s, '\n', len) != NULL || memchr(s, '\r', len) != NULL)
            return fail(reason, "commands[%zu] must be a single line (it contains a line break)", i);
        /* a ^C, ^Z or ESC would steer the device's CLI, not run a command */
        if ((at = control_at(s, len)) >= 0)
            return fail(reason, "commands[%zu] must not contain control characters "
                        "(byte 0x%02x at offset %ld)", i, (unsigned char)s[at], at);
        nr_strlist_push(&p->commands, s);
    }
    return NR_OK;
}

static int parse_object(const json_t *root, struct nr_payload *p, char **reason)
{
    const json_t *v;
    int rc;

    v = json_object_get(root, "job_id");
    if (v == NULL)
        return fail(reason, "job_id is missing");
    if (!positive_int(v, &p->job_id))
        return fail_value(reason, "job_id", "a positive integer", v);

    v = json_object_get(root, "device_ids");
    if (v != NULL && !json_is_null(v) && (rc = parse_device_ids(v, p, reason)) < 0)
        return rc;
    if ((rc = parse_string(root, "job_type", JOB_TYPE_MAX, &p->job_type, reason)) < 0)
        return rc;
    if ((rc = parse_string(root, "run_id", RUN_ID_MAX, &p->run_id, reason)) < 0)
        return rc;
    v = json_object_get(root, "commands");
    if (v != NULL && !json_is_null(v) && (rc = parse_commands(v, p, reason)) < 0)
        return rc;
    return NR_OK;
}

int nr_payload_parse(const char *json, size_t len, struct nr_payload *out, char **reason)
{
    struct nr_payload p;
    json_error_t jerr;
    json_t *root;
    const char *nul;
    int rc;

    if (json == NULL)
        return fail(reason, "payload is missing (the entry has no \"payload\" field)");
    if (len > PAYLOAD_MAX_BYTES)
        return fail(reason, "payload is %zu bytes, more than the limit of %u bytes",
                    len, PAYLOAD_MAX_BYTES);
    /* jansson would report a raw NUL as an early end of input. */
    nul = memchr(json, '\0', len);
    if (nul != NULL)
        return fail(reason, "payload is not valid JSON: it contains a NUL byte at offset %zu",
                    (size_t)(nul - json));

    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail_json(reason, &jerr);
    if (!json_is_object(root)) {
        rc = fail(reason, "payload must be a JSON object, got %s", json_kind(root));
        json_decref(root);
        return rc;
    }

    memset(&p, 0, sizeof(p));
    rc = parse_object(root, &p, reason);
    json_decref(root);
    if (rc < 0) {
        nr_payload_clear(&p);
        return rc;
    }
    *out = p;
    return NR_OK;
}

void nr_payload_clear(struct nr_payload *p)
{
    if (p == NULL)
        return;
    free(p->device_ids);
    free(p->job_type);
    free(p->run_id);
    nr_strlist_clear(&p->commands);
    memset(p, 0, sizeof(*p));
}
