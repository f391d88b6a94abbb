/*
 * test_payload.c - nr_payload_parse: every accepted form, every rejection
 * with its reason, and hostile input (binary garbage, NULs, deep nesting,
 * huge numbers, huge payloads).
 *
 * Documented choices checked here:
 *  - duplicate keys are rejected ("payload has a duplicate key: ...");
 *  - unknown keys are ignored;
 *  - JSON null in an optional field means the field is absent;
 *  - device_ids may not be empty or repeat an id; job_type and run_id must
 *    be non-empty without control characters; commands must be non-empty
 *    single lines without control characters.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/queue.h"

/* Parse s (its strlen) and expect success. */
static struct nr_payload ok(const char *s)
{
    struct nr_payload p;
    char *reason = NULL;
    int rc = nr_payload_parse(s, strlen(s), &p, &reason);

    ck_assert_msg(rc == 0, "expected %s to be accepted, got %d: %s", s, rc,
                  reason ? reason : "(no reason)");
    ck_assert_ptr_null(reason);
    return p;
}

/* Every byte of reason is printable ASCII.  Checked without an assertion
 * per byte: a passing Check assertion is a write to its pipe, and this
 * runs for every refusal, random inputs included. */
static void assert_printable(const char *reason)
{
    for (const unsigned char *c = (const unsigned char *)reason; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            ck_abort_msg("reason has byte 0x%02x: %s", *c, reason);
}

/* Parse buf[0..len) and expect NR_EINVAL with a reason containing want.
 * Also checks that *out is left alone and that the reason is printable. */
static void bad_n(const char *buf, size_t len, const char *want)
{
    struct nr_payload p;
    char *reason = NULL;
    int rc;

    memset(&p, 0x5a, sizeof(p));
    rc = nr_payload_parse(buf, len, &p, &reason);
    ck_assert_msg(rc == NR_EINVAL, "expected %.*s to be refused (\"%s\"), got %d",
                  buf ? (int)strnlen(buf, len < 80 ? len : 80) : 6, buf ? buf : "(null)", want, rc);
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strstr(reason, want) != NULL, "reason \"%s\" lacks \"%s\"", reason, want);
    assert_printable(reason);
    for (size_t i = 0; i < sizeof(p); i++)
        if (((unsigned char *)&p)[i] != 0x5a)
            ck_abort_msg("out was written on failure (byte %zu)", i);
    free(reason);
}

static void bad(const char *s, const char *want)
{
    bad_n(s, s ? strlen(s) : 0, want);
}

/* A string of n copies of c. */
static char *rep(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------ accepted */

START_TEST(test_minimal)
{
    struct nr_payload p = ok("{\"job_id\": 1}");

    ck_assert_int_eq(p.job_id, 1);
    ck_assert_ptr_null(p.device_ids);
    ck_assert_uint_eq(p.n_device_ids, 0);
    ck_assert_ptr_null(p.job_type);
    ck_assert_ptr_null(p.run_id);
    ck_assert_uint_eq(p.commands.n, 0);
    ck_assert_ptr_null(p.commands.v);
    nr_payload_clear(&p);
    /* cleared state is all empty, and clearing again is harmless */
    ck_assert_int_eq(p.job_id, 0);
    ck_assert_ptr_null(p.device_ids);
    nr_payload_clear(&p);
    nr_payload_clear(NULL);
}
END_TEST

START_TEST(test_all_fields)
{
    struct nr_payload p = ok(
        " \n{\"job_id\": 42, \"device_ids\": [3, 1, 2], \"job_type\": \"config_backup\",\n"
        "  \"run_id\": \"r-0001\", \"commands\": [\"show version\", \"show ip int brief\"]}\t");

    ck_assert_int_eq(p.job_id, 42);
    ck_assert_uint_eq(p.n_device_ids, 3);
    ck_assert_int_eq(p.device_ids[0], 3);   /* order kept */
    ck_assert_int_eq(p.device_ids[1], 1);
    ck_assert_int_eq(p.device_ids[2], 2);
    ck_assert_str_eq(p.job_type, "config_backup");
    ck_assert_str_eq(p.run_id, "r-0001");
    ck_assert_uint_eq(p.commands.n, 2);
    ck_assert_str_eq(p.commands.v[0], "show version");
    ck_assert_str_eq(p.commands.v[1], "show ip int brief");
    nr_payload_clear(&p);
}
END_TEST

START_TEST(test_nulls_and_unknown_keys)
{
    /* null optional fields mean absent; unknown keys are ignored, whatever
     * they hold */
    struct nr_payload p = ok(
        "{\"device_ids\": null, \"job_type\": null, \"run_id\": null, \"commands\": null,"
        " \"enqueued_at\": \"2024-01-01T00:00:00Z\", \"extra\": {\"a\": [1, 2.5, true, null]},"
        " \"job_id\": 7}");

    ck_assert_int_eq(p.job_id, 7);
    ck_assert_ptr_null(p.device_ids);
    ck_assert_ptr_null(p.job_type);
    ck_assert_ptr_null(p.run_id);
    ck_assert_uint_eq(p.commands.n, 0);
    nr_payload_clear(&p);

    p = ok("{\"job_id\": 1, \"commands\": []}");
    ck_assert_uint_eq(p.commands.n, 0);
    nr_payload_clear(&p);
}
END_TEST

START_TEST(test_limits_accepted)
{
    struct nr_payload p;
    char *jt = rep('t', 64), *rid = rep('r', 128), *cmd = rep('c', 4096), *s;
    size_t cap, len;

    p = ok("{\"job_id\": 9223372036854775807}");
    ck_assert_int_eq(p.job_id, 9223372036854775807LL);
    nr_payload_clear(&p);

    s = NULL;
    if (asprintf(&s, "{\"job_id\": 1, \"job_type\": \"%s\", \"run_id\": \"%s\", \"commands\": [\"%s\"]}",
                 jt, rid, cmd) < 0)
        ck_abort();
    p = ok(s);
    ck_assert_uint_eq(strlen(p.job_type), 64);
    ck_assert_uint_eq(strlen(p.run_id), 128);
    ck_assert_uint_eq(strlen(p.commands.v[0]), 4096);
    nr_payload_clear(&p);
    free(s);

    /* UTF-8 is fine; lengths are in bytes */
    p = ok("{\"job_id\": 1, \"job_type\": \"r\\u00e9achabilit\\u00e9\", \"commands\": [\"show \xc3\xa9\"]}");
    ck_assert_str_eq(p.job_type, "r\xc3\xa9" "achabilit\xc3\xa9");
    ck_assert_str_eq(p.commands.v[0], "show \xc3\xa9");
    nr_payload_clear(&p);

    /* 256 commands */
    cap = 64 + 256 * 8;
    s = malloc(cap);
    len = (size_t)snprintf(s, cap, "{\"job_id\": 1, \"commands\": [");
    for (int i = 0; i < 256; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"c%d\"", i ? "," : "", i);
    snprintf(s + len, cap - len, "]}");
    p = ok(s);
    ck_assert_uint_eq(p.commands.n, 256);
    ck_assert_str_eq(p.commands.v[255], "c255");
    nr_payload_clear(&p);
    free(s);

    /* 100000 device ids */
    cap = 64 + 100000 * 8;
    s = malloc(cap);
    len = (size_t)snprintf(s, cap, "{\"job_id\": 1, \"device_ids\": [");
    for (int i = 1; i <= 100000; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s%d", i > 1 ? "," : "", i);
    snprintf(s + len, cap - len, "]}");
    p = ok(s);
    ck_assert_uint_eq(p.n_device_ids, 100000);
    ck_assert_int_eq(p.device_ids[99999], 100000);
    nr_payload_clear(&p);
    free(s);

    free(jt);
    free(rid);
    free(cmd);
}
END_TEST

START_TEST(test_exactly_one_mib)
{
    size_t n = 1024 * 1024;
    char *s = rep(' ', n);
    const char *body = "{\"job_id\": 5}";

    memcpy(s, body, strlen(body));     /* the rest is trailing whitespace */
    struct nr_payload p;
    char *reason = NULL;
    ck_assert_int_eq(nr_payload_parse(s, n, &p, &reason), 0);
    ck_assert_int_eq(p.job_id, 5);
    nr_payload_clear(&p);
    free(s);
}
END_TEST

START_TEST(test_not_nul_terminated)
{
    /* len is authoritative: the buffer need not end in NUL */
    char buf[] = { '{', '"', 'j', 'o', 'b', '_', 'i', 'd', '"', ':', '9', '}', 'X', 'Y' };
    struct nr_payload p;
    char *reason = NULL;

    ck_assert_int_eq(nr_payload_parse(buf, 12, &p, &reason), 0);
    ck_assert_int_eq(p.job_id, 9);
    nr_payload_clear(&p);
}
END_TEST

/* ----------------------------------------------------------- rejections */

START_TEST(test_not_json)
{
    bad(NULL, "payload is missing");
    bad("abc", "payload is not valid JSON: '[' or '{' expected near 'abc' (line 1, column 3)");
    bad("", "payload is not valid JSON: '[' or '{' expected near end of file");
    bad("   ", "payload is not valid JSON");
    bad("{\"job_id\": 1", "payload is not valid JSON");
    bad("{\"job_id\": 1} x", "payload is not valid JSON: end of file expected near 'x' (line 1, column 15)");
    bad("{\"job_id\": 1}{}", "end of file expected");
    bad("{'job_id': 1}", "payload is not valid JSON");
    bad("{\"job_id\": 01}", "payload is not valid JSON");
    bad("{\"job_id\": 1,}", "payload is not valid JSON");
    bad("{\"job_id\": NaN}", "payload is not valid JSON");
    bad("\n\n  {\"job_id\": tru}", "(line 3, column");
    /* top-level values that are not objects */
    bad("12", "'[' or '{' expected near '12'");
    bad("\"x\"", "'[' or '{' expected");
    bad("[1]", "payload must be a JSON object, got an array");
    bad("[]", "payload must be a JSON object, got an array");
}
END_TEST

START_TEST(test_job_id)
{
    bad("{}", "job_id is missing");
    bad("{\"jobid\": 1}", "job_id is missing");
    bad("{\"JOB_ID\": 1}", "job_id is missing");
    bad("{\"job_id\": \"12\"}", "job_id must be a positive integer, got \"12\"");
    bad("{\"job_id\": 12.0}", "job_id must be a positive integer, got 12.0");
    bad("{\"job_id\": 12.5}", "job_id must be a positive integer, got 12.5");
    bad("{\"job_id\": 1e3}", "job_id must be a positive integer, got 1000.0");
    bad("{\"job_id\": true}", "job_id must be a positive integer, got true");
    bad("{\"job_id\": false}", "job_id must be a positive integer, got false");
    bad("{\"job_id\": null}", "job_id must be a positive integer, got null");
    bad("{\"job_id\": 0}", "job_id must be a positive integer, got 0");
    bad("{\"job_id\": -0}", "job_id must be a positive integer, got 0");
    bad("{\"job_id\": -5}", "job_id must be a positive integer, got -5");
    bad("{\"job_id\": [1]}", "job_id must be a positive integer, got [1]");
    bad("{\"job_id\": {\"id\": 1}}", "job_id must be a positive integer, got {\"id\":1}");
    /* a long bad value is quoted, but cut short */
    char *big = rep('9', 500), *s = NULL;
    if (asprintf(&s, "{\"job_id\": \"%s\"}", big) < 0)
        ck_abort();
    bad(s, "job_id must be a positive integer, got \"999");
    bad(s, "...");
    free(s);
    free(big);
}
END_TEST

START_TEST(test_huge_numbers)
{
    /* integers beyond 64 bits are refused by the JSON reader itself */
    bad("{\"job_id\": 9223372036854775808}",
        "payload has a number out of range: too big integer near '9223372036854775808'");
    bad("{\"job_id\": 99999999999999999999999999999}", "too big integer");
    bad("{\"job_id\": -99999999999999999999}", "payload has a number out of range: too big negative integer");
    bad("{\"job_id\": 1, \"x\": 1e999}", "payload has a number out of range: real number overflow");
    bad("{\"job_id\": 1, \"device_ids\": [18446744073709551616]}", "too big integer");
    /* underflow to 0.0 is not an error for JSON, but 1e-999 is no job id */
    bad("{\"job_id\": 1e-999}", "job_id must be a positive integer, got 0.0");
}
END_TEST

START_TEST(test_device_ids)
{
    bad("{\"job_id\": 1, \"device_ids\": \"1\"}",
        "device_ids must be an array of positive integers, got \"1\"");
    bad("{\"job_id\": 1, \"device_ids\": 1}", "device_ids must be an array of positive integers, got 1");
    bad("{\"job_id\": 1, \"device_ids\": {\"1\": 1}}", "device_ids must be an array");
    bad("{\"job_id\": 1, \"device_ids\": []}", "device_ids is empty");
    bad("{\"job_id\": 1, \"device_ids\": [1, \"2\"]}", "device_ids[1] must be a positive integer, got \"2\"");
    bad("{\"job_id\": 1, \"device_ids\": [0]}", "device_ids[0] must be a positive integer, got 0");
    bad("{\"job_id\": 1, \"device_ids\": [4, -3]}", "device_ids[1] must be a positive integer, got -3");
    bad("{\"job_id\": 1, \"device_ids\": [2.5]}", "device_ids[0] must be a positive integer, got 2.5");
    bad("{\"job_id\": 1, \"device_ids\": [true]}", "device_ids[0] must be a positive integer, got true");
    bad("{\"job_id\": 1, \"device_ids\": [null]}", "device_ids[0] must be a positive integer, got null");
    bad("{\"job_id\": 1, \"device_ids\": [[1]]}", "device_ids[0] must be a positive integer, got [1]");
    bad("{\"job_id\": 1, \"device_ids\": [3, 1, 3]}", "device_ids lists device 3 more than once");

    /* 100001 entries: refused before any of them is looked at */
    size_t cap = 64 + 100001 * 2, len;
    char *s = malloc(cap);
    len = (size_t)snprintf(s, cap, "{\"job_id\": 1, \"device_ids\": [");
    for (int i = 0; i < 100001; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s1", i ? "," : "");
    snprintf(s + len, cap - len, "]}");
    bad(s, "device_ids has 100001 entries, more than the limit of 100000");
    free(s);
}
END_TEST

START_TEST(test_strings)
{
    char *s = NULL, *long_jt = rep('t', 65), *long_rid = rep('r', 129);

    bad("{\"job_id\": 1, \"job_type\": 5}", "job_type must be a string, got 5");
    bad("{\"job_id\": 1, \"job_type\": [\"a\"]}", "job_type must be a string, got [\"a\"]");
    bad("{\"job_id\": 1, \"job_type\": \"\"}", "job_type must not be empty");
    if (asprintf(&s, "{\"job_id\": 1, \"job_type\": \"%s\"}", long_jt) < 0)
        ck_abort();
    bad(s, "job_type is 65 bytes long, more than the limit of 64");
    free(s);

    bad("{\"job_id\": 1, \"run_id\": 123}", "run_id must be a string, got 123");
    bad("{\"job_id\": 1, \"run_id\": \"\"}", "run_id must not be empty");
    bad("{\"job_id\": 1, \"job_type\": \"a\\u0001\"}", "job_type must not contain control characters");
    bad("{\"job_id\": 1, \"run_id\": \"r\\u001b[2J\"}", "run_id must not contain control characters");
    if (asprintf(&s, "{\"job_id\": 1, \"run_id\": \"%s\"}", long_rid) < 0)
        ck_abort();
    bad(s, "run_id is 129 bytes long, more than the limit of 128");
    free(s);
    free(long_jt);
    free(long_rid);
}
END_TEST

START_TEST(test_commands)
{
    char *s = NULL, *long_cmd = rep('c', 4097);
    size_t cap, len;

    bad("{\"job_id\": 1, \"commands\": \"show run\"}", "commands must be an array of strings, got \"show run\"");
    bad("{\"job_id\": 1, \"commands\": [\"a\", 1]}", "commands[1] must be a string, got 1");
    bad("{\"job_id\": 1, \"commands\": [null]}", "commands[0] must be a string, got null");
    bad("{\"job_id\": 1, \"commands\": [\"\"]}", "commands[0] is empty");
    bad("{\"job_id\": 1, \"commands\": [\"show run\\nreload\"]}", "commands[0] must be a single line");
    bad("{\"job_id\": 1, \"commands\": [\"ok\", \"x\\ry\"]}", "commands[1] must be a single line");
    bad("{\"job_id\": 1, \"commands\": [\"conf t\\u001a\"]}",
        "commands[0] must not contain control characters (byte 0x1a at offset 6)");
    bad("{\"job_id\": 1, \"commands\": [\"show\\trun\"]}", "commands[0] must not contain control characters");
    if (asprintf(&s, "{\"job_id\": 1, \"commands\": [\"%s\"]}", long_cmd) < 0)
        ck_abort();
    bad(s, "commands[0] is 4097 bytes long, more than the limit of 4096");
    free(s);
    free(long_cmd);

    cap = 64 + 257 * 4;
    s = malloc(cap);
    len = (size_t)snprintf(s, cap, "{\"job_id\": 1, \"commands\": [");
    for (int i = 0; i < 257; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"c\"", i ? "," : "");
    snprintf(s + len, cap - len, "]}");
    bad(s, "commands has 257 entries, more than the limit of 256");
    free(s);
}
END_TEST

START_TEST(test_duplicate_keys)
{
    /* Refused: Python's json keeps the last value, others the first; a
     * payload two readers would read differently is not run. */
    bad("{\"job_id\": 1, \"job_id\": 2}",
        "payload has a duplicate key: duplicate object key near '\"job_id\"'");
    bad("{\"job_id\": 1, \"x\": {\"a\": 1, \"a\": 1}}", "duplicate object key");
}
END_TEST

START_TEST(test_nul_bytes)
{
    static const char trailing[] = "{\"job_id\": 1}\0";
    static const char inside[] = "{\"job_id\": 1, \"job_type\": \"a\0b\"}";

    bad_n(trailing, sizeof(trailing) - 1, "payload is not valid JSON: it contains a NUL byte at offset 13");
    bad_n(inside, sizeof(inside) - 1, "NUL byte at offset 28");
    bad_n("\0", 1, "NUL byte at offset 0");
    /* an escaped NUL inside a string is refused by the reader */
    bad("{\"job_id\": 1, \"job_type\": \"a\\u0000b\"}", "\\u0000 is not allowed");
}
END_TEST

START_TEST(test_bad_utf8)
{
    bad("{\"job_id\": 1, \"job_type\": \"\xff\xfe\"}", "payload is not valid JSON: unable to decode byte 0xff");
    bad("\xc3\x28", "unable to decode byte");
    /* lone surrogate escape */
    bad("{\"job_id\": 1, \"job_type\": \"\\ud800\"}", "payload is not valid JSON");
    /* control character inside a string */
    bad("{\"job_id\": 1, \"job_type\": \"a\x01" "b\"}", "payload is not valid JSON");
}
END_TEST

START_TEST(test_too_big)
{
    size_t n = 1024 * 1024 + 1;
    char *s = rep(' ', n);

    memcpy(s, "{\"job_id\": 1}", 13);
    bad_n(s, n, "payload is 1048577 bytes, more than the limit of 1048576 bytes");
    free(s);

    /* a length far beyond the buffer must be refused before it is read */
    bad_n("{}", (size_t)1 << 40, "more than the limit");
}
END_TEST

START_TEST(test_deep_nesting)
{
    size_t depth = 100000;
    char *s = malloc(depth * 2 + 64);
    size_t len = 0;

    /* beyond the reader's depth limit: refused, no stack overflow */
    memset(s, '[', depth);
    bad_n(s, depth, "payload is not valid JSON: maximum parsing depth reached");

    len = (size_t)sprintf(s, "{\"job_id\": 1, \"x\": ");
    for (size_t i = 0; i < 5000; i++)
        s[len++] = '[';
    for (size_t i = 0; i < 5000; i++)
        s[len++] = ']';
    s[len++] = '}';
    bad_n(s, len, "maximum parsing depth reached");

    /* moderate nesting under an unknown key is fine */
    len = (size_t)sprintf(s, "{\"job_id\": 3, \"x\": ");
    for (size_t i = 0; i < 100; i++)
        len += (size_t)sprintf(s + len, "{\"a\":");
    s[len++] = '1';
    for (size_t i = 0; i < 100; i++)
        s[len++] = '}';
    s[len++] = '}';
    s[len] = '\0';
    struct nr_payload p = ok(s);
    ck_assert_int_eq(p.job_id, 3);
    nr_payload_clear(&p);
    free(s);
}
END_TEST

/* xorshift, so the garbage is the same on every run */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (unsigned)(rng_state >> 11);
}

/* Either accepted, or refused with a printable reason; never a crash or a
 * leak (the sanitizer build checks the latter). */
static void any(const char *buf, size_t len)
{
    struct nr_payload p;
    char *reason = NULL;
    int rc = nr_payload_parse(buf, len, &p, &reason);

    if (rc == 0) {
        ck_assert_ptr_null(reason);
        ck_assert_int_gt(p.job_id, 0);
        nr_payload_clear(&p);
        return;
    }
    ck_assert_int_eq(rc, NR_EINVAL);
    ck_assert_ptr_nonnull(reason);
    ck_assert_uint_gt(strlen(reason), 0);
    assert_printable(reason);
    free(reason);
}

START_TEST(test_binary_garbage)
{
    char buf[512];

    for (int round = 0; round < 10000; round++) {
        size_t len = rnd() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)rnd();
        any(buf, len);
    }
}
END_TEST

START_TEST(test_mutations)
{
    static const char base[] =
        "{\"job_id\": 42, \"device_ids\": [3, 1, 2], \"job_type\": \"config_backup\","
        " \"run_id\": \"r-1\", \"commands\": [\"show version\"]}";
    static const char alphabet[] = "{}[]\",:0123456789-.eEtrufalsn \\u\x00\xff\x80";
    char buf[sizeof(base) + 8];
    size_t n = sizeof(base) - 1;

    for (int round = 0; round < 20000; round++) {
        size_t len = n;
        memcpy(buf, base, n);
        for (int k = 1 + (int)(rnd() % 4); k > 0; k--) {
            size_t at = rnd() % len;
            switch (rnd() % 3) {
            case 0:     /* replace */
                buf[at] = alphabet[rnd() % (sizeof(alphabet) - 1)];
                break;
            case 1:     /* delete */
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
                break;
            default:    /* truncate */
                len = at;
                break;
            }
            if (len == 0)
                break;
        }
        any(buf, len);
    }
}
END_TEST

START_TEST(test_reason_optional)
{
    struct nr_payload p;

    /* a NULL reason pointer is allowed; the result code still tells */
    ck_assert_int_eq(nr_payload_parse("nope", 4, &p, NULL), NR_EINVAL);
    ck_assert_int_eq(nr_payload_parse("{\"job_id\": 1}", 13, &p, NULL), 0);
    nr_payload_clear(&p);
}
END_TEST

static Suite *payload_suite(void)
{
    Suite *s = suite_create("payload");
    TCase *acc = tcase_create("accepted");
    TCase *rej = tcase_create("rejected");
    TCase *hostile = tcase_create("hostile");

    tcase_add_test(acc, test_minimal);
    tcase_add_test(acc, test_all_fields);
    tcase_add_test(acc, test_nulls_and_unknown_keys);
    tcase_add_test(acc, test_limits_accepted);
    tcase_add_test(acc, test_exactly_one_mib);
    tcase_add_test(acc, test_not_nul_terminated);
    suite_add_tcase(s, acc);

    tcase_add_test(rej, test_not_json);
    tcase_add_test(rej, test_job_id);
    tcase_add_test(rej, test_huge_numbers);
    tcase_add_test(rej, test_device_ids);
    tcase_add_test(rej, test_strings);
    tcase_add_test(rej, test_commands);
    tcase_add_test(rej, test_duplicate_keys);
    tcase_add_test(rej, test_reason_optional);
    suite_add_tcase(s, rej);

    tcase_set_timeout(hostile, 120);    /* the fuzz loops are slow under ASan */
    tcase_add_test(hostile, test_nul_bytes);
    tcase_add_test(hostile, test_bad_utf8);
    tcase_add_test(hostile, test_too_big);
    tcase_add_test(hostile, test_deep_nesting);
    tcase_add_test(hostile, test_binary_garbage);
    tcase_add_test(hostile, test_mutations);
    suite_add_tcase(s, hostile);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(payload_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);     /* CK_VERBOSITY=verbose lists every test */
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
