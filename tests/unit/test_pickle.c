/*
 * test_pickle.c - the RQ job data reader: nr_rq_data_decode() and
 * nr_rq_pickle_decode().
 *
 * Fixtures come from Debian's python3 (/usr/bin/python3, its pickle and
 * zlib), run once per process: every fixture below is an expression whose
 * bytes the script prints as hex.  Hostile pickles that Python would never
 * write (a bare REDUCE, frames that lie) are spelled out as bytes.
 *
 * Checked: the exact bytes docs/python-rq.md §3.1 gives for run_job(5);
 * protocols 2 to 5; every integer opcode (BININT1/2, BININT for negatives,
 * LONG1 up to 8 bytes); kwargs; the memo (MEMOIZE, BINPUT, BINGET,
 * LONG_BINGET); frames, including strings over 64 KiB written between frames;
 * rejection of every opcode that imports or calls (named in the reason), of
 * truncated data, trailing bytes and wrong shapes; the caps; zlib and raw
 * input; and that a failure never writes *job_id and always gives a printable
 * reason.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "netraven/rq.h"

#define PY "/usr/bin/python3"
#define FN "netraven.worker.runner.run_job"

/* ------------------------------------------------------------ fixtures */

struct fixture {
    const char    *name;
    const char    *expr;      /* Python expression giving bytes */
    unsigned char *bytes;
    size_t         len;
};

/* In the expressions: F is the function name, P(obj, proto) pickles, Z
 * compresses, C(args, kwargs, proto) pickles the RQ 4-tuple of F. */
#define FX(n, e) { .name = (n), .expr = (e) }

static struct fixture fixtures[] = {
    FX("p5_job5",        "C((5,), {}, 5)"),
    FX("p4_job5",        "C((5,), {}, 4)"),
    FX("p3_job5",        "C((5,), {}, 3)"),
    FX("p2_job5",        "C((5,), {}, 2)"),
    FX("z_p5_job5",      "Z(C((5,), {}, 5))"),
    FX("z_p2_job5",      "Z(C((5,), {}, 2))"),
    FX("p5_bin2",        "C((300,), {}, 5)"),
    FX("p5_binint",      "C((70000,), {}, 5)"),
    FX("p2_int32max",    "C((2**31 - 1,), {}, 2)"),
    FX("p5_long1",       "C((2**31,), {}, 5)"),
    FX("p5_long1_big",   "C((2**62,), {}, 5)"),
    FX("p5_long1_9b",    "C((2**63,), {}, 5)"),
    FX("p5_neg",         "C((-5,), {}, 5)"),
    FX("p3_neg",         "C((-70000,), {}, 3)"),
    FX("p5_zero",        "C((0,), {}, 5)"),
    FX("p5_kw",          "C((), {\"job_id\": 7}, 5)"),
    FX("p2_kw",          "C((), {\"job_id\": 7}, 2)"),
    FX("p5_list_args",   "P((F, None, [9], {}), 5)"),
    FX("p5_other_fn",    "P((\"os.system\", None, (\"id\",), {}), 5)"),
    FX("p5_fn_prefix",   "P((F + \"x\", None, (5,), {}), 5)"),
    FX("p5_memo_str",    "C((F,), {}, 5)"),
    FX("p2_memo_str",    "C((F,), {}, 2)"),
    FX("p5_two_args",    "C((5, 6), {}, 5)"),
    FX("p5_both",        "C((5,), {\"job_id\": 5}, 5)"),
    FX("p5_other_kw",    "C((), {\"jobid\": 5}, 5)"),
    FX("p5_extra_kw",    "C((5,), {\"db\": None}, 5)"),
    FX("p5_no_args",     "C((), {}, 5)"),
    FX("p5_bool",        "C((True,), {}, 5)"),
    FX("p5_float",       "C((5.0,), {}, 5)"),
    FX("p5_strid",       "C((\"5\",), {}, 5)"),
    FX("p5_none",        "C((None,), {}, 5)"),
    FX("p5_bytes",       "C((b\"5\",), {}, 5)"),
    FX("p5_3tuple",      "P((F, None, (5,)), 5)"),
    FX("p5_5tuple",      "P((F, None, (5,), {}, None), 5)"),
    FX("p5_list_top",    "P([F, None, (5,), {}], 5)"),
    FX("p5_inst",        "P((F, 1, (5,), {}), 5)"),
    FX("p5_args_dict",   "P((F, None, {}, {}), 5)"),
    FX("p5_kw_list",     "P((F, None, (5,), []), 5)"),
    FX("p5_kw_intkey",   "P((F, None, (), {1: 5}), 5)"),
    FX("p5_fn_bytes",    "P((F.encode(), None, (5,), {}), 5)"),
    FX("p5_top_int",     "P(5, 5)"),
    FX("p5_big_fn",      "P((\"x\" * 70000, None, (5,), {}), 5)"),
    FX("p4_big_kw",      "C((), {\"k\" * 70000: 5}, 4)"),
    FX("p5_big_mid",     "P((F, None, (5,), {}) if False else (F, None, (\"y\" * 100000,), {}), 5)"),
    FX("p5_uuid",        "C((uuid.UUID(int=5),), {}, 5)"),
    FX("p2_uuid",        "C((uuid.UUID(int=5),), {}, 2)"),
    FX("p5_datetime",    "C((datetime.datetime(2020, 1, 1),), {}, 5)"),
    FX("p5_set",         "C(({5},), {}, 5)"),
    FX("p5_optional",    "C(([True, False, 1.5, b\"ab\", [1, 2]],), {}, 5)"),
    FX("p1_job5",        "C((5,), {}, 1)"),
    FX("p0_job5",        "C((5,), {}, 0)"),
    FX("z_hello",        "Z(b\"hello\")"),
    FX("bomb",           "Z(b\"\\x80\\x05\" + b\"N\" * (5 << 20))"),
};

static void hex_to_bytes(struct fixture *f, const char *hex)
{
    size_t n = strlen(hex) / 2;

    f->bytes = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(f->bytes);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)       /* no assertion per byte */
            ck_abort_msg("fixture %s: bad hex at byte %zu", f->name, i);
        f->bytes[i] = (unsigned char)v;
    }
    f->len = n;
}

/* One python3 run prints "name hex" per fixture. */
static void load_fixtures(void)
{
    char path[] = "/tmp/nr_test_pickle_XXXXXX";
    int fd = mkstemp(path);
    FILE *f, *p;
    char *line = NULL, cmd[256];
    size_t cap = 0;
    ssize_t n;

    if (fixtures[0].bytes != NULL)
        return;
    ck_assert_int_ge(fd, 0);
    f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("import pickle, zlib, uuid, datetime, sys\n"
          "F = '" FN "'\n"
          "def P(o, p): return pickle.dumps(o, protocol=p)\n"
          "def Z(b): return zlib.compress(b)\n"
          "def C(a, k, p): return P((F, None, a, k), p)\n"
          "fx = [\n", f);
    for (size_t i = 0; i < NR_ARRAY_LEN(fixtures); i++)
        fprintf(f, "  ('%s', lambda: %s),\n", fixtures[i].name, fixtures[i].expr);
    fputs("]\n"
          "for name, fn in fx:\n"
          "    sys.stdout.write(name + ' ' + fn().hex() + '\\n')\n", f);
    fclose(f);

    snprintf(cmd, sizeof(cmd), PY " %s", path);
    p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "cannot run " PY);
    while ((n = getline(&line, &cap, p)) > 0) {
        char *sp = strchr(line, ' ');
        if (sp == NULL)
            continue;
        *sp = '\0';
        if (line[n - 1] == '\n')
            line[n - 1] = '\0';
        for (size_t i = 0; i < NR_ARRAY_LEN(fixtures); i++)
            if (strcmp(fixtures[i].name, line) == 0)
                hex_to_bytes(&fixtures[i], sp + 1);
    }
    free(line);
    ck_assert_msg(pclose(p) == 0, PY " failed to write the fixtures");
    unlink(path);
    for (size_t i = 0; i < NR_ARRAY_LEN(fixtures); i++)
        ck_assert_msg(fixtures[i].bytes != NULL, "fixture %s missing", fixtures[i].name);
}

static const struct fixture *fx(const char *name)
{
    load_fixtures();
    for (size_t i = 0; i < NR_ARRAY_LEN(fixtures); i++)
        if (strcmp(fixtures[i].name, name) == 0)
            return &fixtures[i];
    ck_abort_msg("no fixture %s", name);
    return NULL;
}

/* ---------------------------------------------------------------- checks */

static long long ok_n(const void *buf, size_t len)
{
    long long id = -1;
    char *reason = NULL;
    int rc = nr_rq_data_decode(buf, len, &id, &reason);

    ck_assert_msg(rc == 0, "expected acceptance, got %d: %s", rc, reason ? reason : "-");
    ck_assert_ptr_null(reason);
    return id;
}

static long long ok(const char *name)
{
    const struct fixture *f = fx(name);
    return ok_n(f->bytes, f->len);
}

/* Refused with a reason containing want; *job_id untouched; printable. */
static void bad_n(const void *buf, size_t len, const char *want)
{
    long long id = 0x5a5a;
    char *reason = NULL;
    int rc = nr_rq_data_decode(buf, len, &id, &reason);

    ck_assert_msg(rc == NR_EINVAL, "expected refusal (\"%s\"), got %d (job_id %lld)", want, rc, id);
    ck_assert_int_eq(id, 0x5a5a);
    ck_assert_ptr_nonnull(reason);
    ck_assert_msg(strstr(reason, want) != NULL, "reason \"%s\" lacks \"%s\"", reason, want);
    ck_assert_msg(strlen(reason) < 400, "reason too long: %zu", strlen(reason));
    /* checked byte by byte without an assertion each: a passing Check
     * assertion is a write to its pipe, and this runs for every refusal */
    for (const unsigned char *c = (const unsigned char *)reason; *c; c++)
        if (*c < 0x20 || *c >= 0x7f)
            ck_abort_msg("reason has byte 0x%02x: %s", *c, reason);
    free(reason);
}

static void bad(const char *name, const char *want)
{
    const struct fixture *f = fx(name);
    bad_n(f->bytes, f->len, want);
}

/* A raw pickle spelled in hex (spaces ignored), then refused with want or
 * (want NULL) accepted with job_id. */
static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        unsigned v;
        if (*p == ' ') {
            p++;
            continue;
        }
        if (sscanf(p, "%2x", &v) != 1 || n >= cap)
            ck_abort_msg("bad hex at \"%.8s\" (byte %zu of at most %zu)", p, n, cap);
        out[n++] = (unsigned char)v;
        p += 2;
    }
    return n;
}

/* The function name as hex, for hand-written pickles. */
#define FNHEX "6e6574726176656e2e776f726b65722e72756e6e65722e72756e5f6a6f62"

static void hex_bad(const char *hex, const char *want)
{
    unsigned char buf[512];
    size_t n = unhex(hex, buf, sizeof(buf));
    bad_n(buf, n, want);
}

static long long hex_ok(const char *hex)
{
    unsigned char buf[512];
    size_t n = unhex(hex, buf, sizeof(buf));
    return ok_n(buf, n);
}

/* ------------------------------------------------------------- accepted */

/* docs/python-rq.md §3.1: the exact pickle of run_job(5), raw and
 * compressed in C. */
START_TEST(test_rq_md_bytes)
{
    static const char hex[] = "80 05 95 2c 00 00 00 00 00 00 00 28 8c 1e" FNHEX
                              "94 4e 4b 05 85 94 7d 94 74 94 2e";
    unsigned char raw[128], z[256];
    size_t n = unhex(hex, raw, sizeof(raw));
    uLongf zn = sizeof(z);
    long long id = 0;
    char *reason = NULL;

    ck_assert_uint_eq(n, 55);
    ck_assert_int_eq(hex_ok(hex), 5);
    ck_assert_int_eq(compress2(z, &zn, raw, n, Z_DEFAULT_COMPRESSION), Z_OK);
    ck_assert_uint_eq(z[0], 0x78);
    ck_assert_int_eq(ok_n(z, zn), 5);
    /* the raw-pickle entry point */
    ck_assert_int_eq(nr_rq_pickle_decode(raw, n, &id, &reason), 0);
    ck_assert_int_eq(id, 5);
    ck_assert_ptr_null(reason);
    /* Python writes the same bytes */
    ck_assert_uint_eq(fx("p5_job5")->len, n);
    ck_assert_mem_eq(fx("p5_job5")->bytes, raw, n);
}
END_TEST

START_TEST(test_protocols)
{
    ck_assert_int_eq(ok("p5_job5"), 5);
    ck_assert_int_eq(ok("p4_job5"), 5);
    ck_assert_int_eq(ok("p3_job5"), 5);     /* BINUNICODE + BINPUT */
    ck_assert_int_eq(ok("p2_job5"), 5);
    ck_assert_int_eq(ok("z_p5_job5"), 5);
    ck_assert_int_eq(ok("z_p2_job5"), 5);
    /* protocols 0 and 1 have no PROTO opcode */
    bad("p1_job5", "not a pickle of protocol 2 or later");
    bad("p0_job5", "not a pickle of protocol 2 or later");
    hex_bad("80 06 4e 2e", "pickle protocol 6 is not supported");
    hex_bad("80 01 4e 2e", "pickle protocol 1 is not supported");
    hex_bad("80 05 80 05 4e 2e", "PROTO repeated");
}
END_TEST

START_TEST(test_integers)
{
    ck_assert_int_eq(ok("p5_bin2"), 300);               /* BININT2 */
    ck_assert_int_eq(ok("p5_binint"), 70000);           /* BININT */
    ck_assert_int_eq(ok("p2_int32max"), 2147483647);
    bad("p5_long1", "job_id 2147483648 is out of range");        /* LONG1, 5 bytes */
    bad("p5_long1_big", "job_id 4611686018427387904 is out of range");
    bad("p5_long1_9b", "has 9 bytes (at most 8 allowed)");
    bad("p5_neg", "job_id must be a positive integer, not -5");  /* BININT */
    bad("p3_neg", "not -70000");
    bad("p5_zero", "not 0");
    /* LONG1 by hand: 5, 255 (a 0x00 sign byte), -5, 0 bytes = 0, 8 bytes */
    ck_assert_int_eq(hex_ok("80 05 28 8c 1e" FNHEX "4e 8a 01 05 85 7d 74 2e"), 5);
    ck_assert_int_eq(hex_ok("80 05 28 8c 1e" FNHEX "4e 8a 02 ff 00 85 7d 74 2e"), 255);
    hex_bad("80 05 28 8c 1e" FNHEX "4e 8a 01 fb 85 7d 74 2e", "not -5");
    hex_bad("80 05 28 8c 1e" FNHEX "4e 8a 00 85 7d 74 2e", "not 0");
    hex_bad("80 05 28 8c 1e" FNHEX "4e 8a 08 ff ff ff ff ff ff ff ff 85 7d 74 2e", "not -1");
    hex_bad("80 05 28 8c 1e" FNHEX "4e 8a 08 ff ff ff ff ff ff ff 7f 85 7d 74 2e",
            "job_id 9223372036854775807 is out of range");
    /* BININT with the sign bit: -1 */
    hex_bad("80 05 28 8c 1e" FNHEX "4e 4a ff ff ff ff 85 7d 74 2e", "not -1");
}
END_TEST

START_TEST(test_kwargs_and_lists)
{
    ck_assert_int_eq(ok("p5_kw"), 7);
    ck_assert_int_eq(ok("p2_kw"), 7);
    ck_assert_int_eq(ok("p5_list_args"), 9);    /* EMPTY_LIST, APPEND */
}
END_TEST

/* The memo: BINGET / LONG_BINGET resolve to what MEMOIZE / BINPUT stored. */
START_TEST(test_memo)
{
    /* the function name reused as the argument (BINGET 0 / BINPUT) */
    bad("p5_memo_str", "job_id must be a positive integer, not a str");
    bad("p2_memo_str", "job_id must be a positive integer, not a str");
    /* {"job_id": 8} then, through the memoized key, {"job_id": 9} */
    ck_assert_int_eq(hex_ok("80 05 28 8c 1e" FNHEX "94 4e 29 7d 94 8c 06 6a6f625f6964 94"
                            "4b 08 73 68 02 4b 09 73 74 2e"), 9);
    ck_assert_int_eq(hex_ok("80 05 28 8c 1e" FNHEX "94 4e 29 7d 94 8c 06 6a6f625f6964 94"
                            "4b 08 73 6a 02 00 00 00 4b 09 73 74 2e"), 9);
    /* BINPUT at a chosen slot, LONG_BINPUT, then BINGET of both */
    ck_assert_int_eq(hex_ok("80 02 28 8c 1e" FNHEX "71 07 4e 29 7d 8c 06 6a6f625f6964"
                            "72 00 01 00 00 4b 08 73 6a 00 01 00 00 4b 0a 73 74 2e"), 10);
    /* a memo slot never written */
    hex_bad("80 05 68 03 2e", "memo index 3 at offset 2 was never stored");
    hex_bad("80 05 6a 00 00 01 00 2e", "memo index 65536 at offset 2 was never stored");
    /* MEMOIZE of nothing; a memo index past the cap */
    hex_bad("80 05 94 2e", "needs a value on the stack");
    hex_bad("80 02 4e 72 00 00 10 00 2e", "memo index 1048576 is beyond 4096");
    /* a list holding itself (memo cycle) is freed without looping */
    hex_bad("80 05 5d 94 68 00 61 2e", "job data is a pickled list");
}
END_TEST

/* Frames: at opcode boundaries, strings >= 64 KiB between two frames. */
START_TEST(test_frames)
{
    /* the 70000-byte name is read across frames and reaches the name check */
    bad("p5_big_fn", "job function 'xxxxxxxx");
    bad("p5_big_fn", "...' is not allowed");
    bad("p4_big_kw", "got an unexpected keyword argument 'kkkk");
    bad("p5_big_mid", "job_id must be a positive integer, not a str");
    /* the pickle of docs/python-rq.md §3.1 in frames: the first one ends
     * right after the opcode 0x8c, whose length byte and string follow
     * outside any frame (a used-up frame lets reads go on unframed, as
     * CPython's does) */
    ck_assert_int_eq(hex_ok("80 05 95 02 00 00 00 00 00 00 00 28 8c"
                            "1e" FNHEX "94 4e 4b 05 85 94 7d 94 74 94 2e"), 5);
    /* two frames back to back */
    ck_assert_int_eq(hex_ok("80 05 95 21 00 00 00 00 00 00 00 28 8c 1e" FNHEX
                            "95 0b 00 00 00 00 00 00 00 94 4e 4b 05 85 94 7d 94 74 94 2e"), 5);
    /* unframed opcodes before and after a frame */
    ck_assert_int_eq(hex_ok("80 05 28 95 20 00 00 00 00 00 00 00 8c 1e" FNHEX
                            "4e 4b 05 85 7d 74 2e"), 5);
    /* a frame longer than what is left */
    hex_bad("80 05 95 ff 00 00 00 00 00 00 00 4e 2e", "is 255 bytes long but only 2 remain");
    /* an opcode whose argument starts inside its frame and ends outside */
    hex_bad("80 05 95 03 00 00 00 00 00 00 00 28 4d 05 00 8c 1e" FNHEX "4e 29 7d 74 2e",
            "pickle opcode 0x4d (BININT2) at offset 12 runs past the end of its frame");
    /* a FRAME before the current frame is used up */
    hex_bad("80 05 95 0b 00 00 00 00 00 00 00 28 95 01 00 00 00 00 00 00 00 4e 2e",
            "starts before the previous frame ends");
    /* a truncated FRAME header */
    hex_bad("80 05 95 02 00", "truncated");
}
END_TEST

/* A string whose first byte is the last byte of a frame: refused, never
 * read across the boundary. */
START_TEST(test_frame_split_opcode)
{
    hex_bad("80 05 95 04 00 00 00 00 00 00 00 28 8c 1e 6e 95 1d 00 00 00 00 00 00 00"
            "6574726176656e2e776f726b65722e72756e6e65722e72756e5f6a6f62"
            "94 4e 4b 05 85 94 7d 94 74 94 2e",
            "pickle opcode 0x8c (SHORT_BINUNICODE) at offset 12 runs past the end of its frame");
}
END_TEST

START_TEST(test_optional_opcodes)
{
    /* NEWTRUE, NEWFALSE, BINFLOAT, SHORT_BINBYTES, EMPTY_LIST, APPENDS:
     * read, then the one argument is a list, not an int */
    bad("p5_optional", "job_id must be a positive integer, not a list");
    bad("p5_bool", "not a bool");
    bad("p5_float", "not a float");
    bad("p5_strid", "not a str");
    bad("p5_none", "not a None");
    bad("p5_bytes", "not a bytes");
}
END_TEST


/* Dicts are built in O(n log n), not O(n^2).  The worst case the caps
 * allow: 32,760 distinct keys (the value cap), each a 120-byte str that
 * differs from the others only in its last bytes, so that comparing two
 * keys costs a long memcmp (4 MB of pickle, the input cap).  A reader that
 * looks each key up with a scan takes seconds on it (4 s here, 4-11 s for
 * the job); Python takes milliseconds.  Checked twice: a bound on
 * the time, and the growth from 4,095 to 32,760 keys (x64 for a quadratic
 * reader, about x8 for this one), which does not depend on the machine.
 * Python writes a dict in SETITEMS batches of 1,000 pairs, beyond the
 * stack cap, so these are written here: (F, None, ({k: v ...},), {}) with
 * a SETITEM per key, or SETITEMS batches of 500 pairs. */
static unsigned char *wide_dict(unsigned nkeys, bool batched, size_t *len)
{
    static const char head[] = "80 05 28 8c 1e" FNHEX "4e 7d";
    size_t cap = (size_t)nkeys * 126 + 4096;
    unsigned char *buf = malloc(cap), *p;

    ck_assert_ptr_nonnull(buf);
    p = buf + unhex(head, buf, cap);
    for (unsigned i = 0; i < nkeys; i++) {
        if (batched && i % 500 == 0)
            *p++ = 0x28;                                    /* MARK */
        *p++ = 0x8c;                                        /* SHORT_BINUNICODE */
        *p++ = 120;
        memset(p, 'k', 116);
        snprintf((char *)p + 116, 5, "%04x", i);
        p += 120;
        *p++ = 0x4b;                                        /* BININT1 */
        *p++ = (unsigned char)(i & 0x7f);
        if (!batched)
            *p++ = 0x73;                                    /* SETITEM */
        else if (i % 500 == 499 || i == nkeys - 1)
            *p++ = 0x75;                                    /* SETITEMS */
    }
    memcpy(p, "\x85\x7d\x74\x2e", 4);                         /* TUPLE1 {} TUPLE STOP */
    *len = (size_t)(p + 4 - buf);
    ck_assert_uint_le(*len, cap);
    return buf;
}

/* The fastest of three decodes, each refused with want: the thread's CPU
 * time, which other processes on a loaded machine do not stretch. */
static double decode_seconds(const unsigned char *buf, size_t len, const char *want)
{
    double best = 1e9;

    for (int i = 0; i < 3; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        bad_n(buf, len, want);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (s < best)
            best = s;
        if (s > 2.0)
            break;      /* quadratic: no need to see it again */
    }
    return best;
}

START_TEST(test_wide_dict)
{
    static const char want[] = "job_id must be a positive integer, not a dict";

    for (int batched = 0; batched < 2; batched++) {
        size_t len, small_len;
        unsigned char *buf = wide_dict(32760, batched, &len);
        unsigned char *small = wide_dict(4095, batched, &small_len), *z;
        uLongf zn = compressBound(len);
        double s, s_small;

        /* read to the end: the dict is whole, then refused as an argument */
        s = decode_seconds(buf, len, want);
        ck_assert_msg(s < 2.0, "a 32,760-key dict took %.2f s to decode", s);
        s_small = decode_seconds(small, small_len, want);
        /* 8 times the keys: about 8 times as long when linear, 64 when
         * quadratic; the bound sits between, clear of cache effects */
        ck_assert_msg(s < 24 * s_small + 0.01, "8 times the keys took %.1f times as long "
                      "(%.4f s, %.4f s)", s / s_small, s, s_small);
        /* and as RQ stores it, compressed */
        z = malloc(zn);
        ck_assert_int_eq(compress2(z, &zn, buf, len, Z_DEFAULT_COMPRESSION), Z_OK);
        s = decode_seconds(z, zn, want);
        ck_assert_msg(s < 2.0, "a 32,760-key dict took %.2f s to decode (zlib)", s);
        free(z);
        free(small);
        free(buf);
    }
}
END_TEST

/* A key set again keeps its place and takes the last value, as in
 * Python; here 30,000 times over (SETITEM and SETITEMS), through the memo. */
START_TEST(test_dict_repeated_keys)
{
    /* (F, None, (), {"job_id": 8 ... 8, 9}) */
    static const char head[] = "80 05 28 8c 1e" FNHEX "4e 29 7d 94 8c 06 6a6f625f6964 94 4b 08 73";
    unsigned char *buf = malloc(400000), *p;
    size_t n = unhex(head, buf, 400000);
    struct timespec t0, t1;
    double s;

    p = buf + n;
    for (int i = 0; i < 20000; i++) {           /* BINGET 1, BININT1 8, SETITEM */
        memcpy(p, "\x68\x01\x4b\x08\x73", 5);
        p += 5;
    }
    for (int k = 0; k < 20; k++) {              /* MARK, 500 pairs, SETITEMS */
        *p++ = 0x28;
        for (int i = 0; i < 500; i++) {
            memcpy(p, "\x68\x01\x4b", 3);
            p[3] = (unsigned char)(k == 19 && i == 499 ? 9 : 8);
            p += 4;
        }
        *p++ = 0x75;
    }
    memcpy(p, "\x74\x2e", 2);                    /* TUPLE, STOP */
    p += 2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(ok_n(buf, (size_t)(p - buf)), 9);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(s < 2.0, "30,000 repeated keys took %.2f s", s);
    /* two keys, one of them repeated: the repeat does not count twice */
    hex_bad("80 05 28 8c 1e" FNHEX "4e 29 7d 28 8c 06 6a6f625f6964 4b 01 8c 01 78 4b 02"
            "8c 06 6a6f625f6964 4b 03 75 74 2e", "got 0 positional and 2 keyword arguments");
    free(buf);
}
END_TEST

/* ---------------------------------------------------------- rejections */

START_TEST(test_forbidden_opcodes)
{
    bad("p5_uuid", "pickle opcode 0x93 (STACK_GLOBAL) is not allowed");
    bad("p2_uuid", "pickle opcode 0x63 (GLOBAL) is not allowed");
    bad("p5_datetime", "(STACK_GLOBAL) is not allowed");
    bad("p5_set", "pickle opcode 0x8f (EMPTY_SET) is not allowed");
    hex_bad("80 02 4e 29 52 2e", "pickle opcode 0x52 (REDUCE) is not allowed");
    hex_bad("80 02 4e 29 81 2e", "pickle opcode 0x81 (NEWOBJ) is not allowed");
    hex_bad("80 02 4e 7d 62 2e", "pickle opcode 0x62 (BUILD) is not allowed");
    hex_bad("80 04 4e 29 7d 92 2e", "pickle opcode 0x92 (NEWOBJ_EX) is not allowed");
    hex_bad("80 02 28 69 6f 73 0a 73 79 73 74 65 6d 0a 2e", "0x69 (INST) is not allowed");
    hex_bad("80 02 28 6f 2e", "0x6f (OBJ) is not allowed");
    hex_bad("80 02 82 01 2e", "0x82 (EXT1) is not allowed");
    hex_bad("80 02 4e 51 2e", "0x51 (BINPERSID) is not allowed");
    hex_bad("80 02 4e 30 4e 2e", "0x30 (POP) is not allowed");
    hex_bad("80 02 4e 32 2e", "0x32 (DUP) is not allowed");
    hex_bad("80 02 ff 2e", "pickle opcode 0xff (unknown) is not allowed");
    /* the classic: cos\nsystem\n(S'id'\ntR. behind a PROTO */
    hex_bad("80 02 63 6f 73 0a 73 79 73 74 65 6d 0a 28 53 27 69 64 27 0a 74 52 2e",
            "0x63 (GLOBAL) is not allowed");
    /* and without one */
    hex_bad("63 6f 73 0a 73 79 73 74 65 6d 0a 28 53 27 69 64 27 0a 74 52 2e",
            "is neither a zlib stream");
}
END_TEST

START_TEST(test_truncated)
{
    const struct fixture *f = fx("p5_job5");
    const struct fixture *b = fx("p5_big_fn");

    /* every prefix is refused; in protocol 5 the frame header says so */
    for (size_t n = 0; n < f->len; n++)
        bad_n(f->bytes, n, n == 0 ? "no data" : "");
    bad_n(f->bytes, f->len - 1, "is 44 bytes long but only 43 remain");
    f = fx("p2_job5");
    for (size_t n = 0; n < f->len; n++)
        bad_n(f->bytes, n, n == 0 ? "no data" : "");
    bad_n(f->bytes, f->len - 1, "truncated");
    bad_n(f->bytes, 20, "truncated");
    bad_n(b->bytes, b->len - 30, "truncated");
    /* a compressed pickle cut short is not zlib, and not a pickle either */
    f = fx("z_p5_job5");
    bad_n(f->bytes, f->len - 4, "neither a zlib stream");
}
END_TEST

START_TEST(test_trailing)
{
    const struct fixture *f = fx("p2_job5");
    unsigned char buf[256];

    memcpy(buf, f->bytes, f->len);
    buf[f->len] = 0x2e;
    bad_n(buf, f->len + 1, "1 bytes after STOP");
    memcpy(buf + f->len, "\0\0\0", 3);
    bad_n(buf, f->len + 3, "3 bytes after STOP");
    /* more than one value left, an open MARK, nothing at all */
    hex_bad("80 05 4e 4e 2e", "ends with 2 values on the stack, not 1");
    hex_bad("80 05 28 4e 2e", "open MARK");
    hex_bad("80 05 2e", "ends with 0 values");
}
END_TEST

START_TEST(test_shapes)
{
    bad("p5_3tuple", "tuple of 3 items, not (func_name, None, args, kwargs)");
    bad("p5_5tuple", "tuple of 5 items");
    bad("p5_list_top", "job data is a pickled list, not the tuple");
    bad("p5_top_int", "job data is a pickled int");
    bad("p5_inst", "job has an instance (a int), not None");
    bad("p5_args_dict", "job args is a dict, not a tuple or list");
    bad("p5_kw_list", "job kwargs is a list, not a dict");
    bad("p5_kw_intkey", "job kwargs has a int key");
    bad("p5_fn_bytes", "job function name is a bytes, not a str");
    bad("p5_other_fn", "job function 'os.system' is not allowed (only " FN ")");
    bad("p5_fn_prefix", "job function '" FN "x' is not allowed");
    bad("p5_two_args", "takes exactly one argument, job_id; got 2 positional and 0 keyword");
    bad("p5_both", "got 1 positional and 1 keyword");
    bad("p5_no_args", "got 0 positional and 0 keyword");
    bad("p5_extra_kw", "got 1 positional and 1 keyword");
    bad("p5_other_kw", "unexpected keyword argument 'jobid'");
    /* SETITEM / APPEND on the wrong kind, SETITEMS with an odd count */
    hex_bad("80 05 29 4e 4e 73 2e", "SETITEM at offset 5 applies to a tuple, not a dict");
    hex_bad("80 05 7d 4e 61 2e", "APPEND at offset 4 applies to a dict, not a list");
    hex_bad("80 05 7d 28 4e 75 2e", "odd number of values");
    hex_bad("80 05 28 4e 4e 75 2e", "no dict below its MARK");
    hex_bad("80 05 5d 28 4e 4e 75 2e", "applies to a list, not a dict");
    hex_bad("80 05 7d 5d 4e 73 2e", "has a list as a key");
    hex_bad("80 05 73 2e", "pops an empty stack");
    hex_bad("80 05 86 2e", "TUPLE2) at offset 2 needs 2 values");
    hex_bad("80 05 74 2e", "TUPLE) at offset 2 has no MARK");
    /* values below a MARK are out of reach of TUPLE1 */
    hex_bad("80 05 4e 28 85 2e", "needs 1 values");
}
END_TEST

START_TEST(test_caps_and_text)
{
    static unsigned char deep[200];
    size_t n = 0;

    /* str longer than the cap (declared 2 MiB) */
    hex_bad("80 05 58 00 00 20 00 61 2e", "is 2097152 bytes long (at most 1048576 allowed)");
    /* invalid UTF-8: a bare continuation byte, an overlong '/', a surrogate */
    hex_bad("80 05 8c 01 80 2e", "not valid UTF-8");
    hex_bad("80 05 8c 02 c0 af 2e", "not valid UTF-8");
    hex_bad("80 05 8c 03 ed a0 80 2e", "not valid UTF-8");
    hex_bad("80 05 8c 04 f4 90 80 80 2e", "not valid UTF-8");
    /* NUL is a character of a str (not a UTF-8 error), shown as '?' */
    hex_bad("80 05 28 8c 01 00 4e 29 7d 74 2e", "job function '?' is not allowed");
    /* valid UTF-8 in the name is shown as '?' in the reason */
    hex_bad("80 05 28 8c 02 c3 a9 4e 29 7d 74 2e", "job function '?\?' is not allowed");
    /* MARK nesting beyond 64 */
    deep[n++] = 0x80;
    deep[n++] = 0x05;
    for (int i = 0; i < 65; i++)
        deep[n++] = 0x28;
    deep[n++] = 0x2e;
    bad_n(deep, n, "nests deeper than 64 MARKs");
    /* a stack beyond 1024 values */
    {
        unsigned char *big = malloc(3000);
        size_t m = 0;
        big[m++] = 0x80;
        big[m++] = 0x05;
        for (int i = 0; i < 1100; i++)
            big[m++] = 0x4e;
        big[m++] = 0x2e;
        bad_n(big, m, "stack grows beyond 1024 values");
        free(big);
    }
    /* a zlib bomb */
    bad("bomb", "inflates to more than 4194304 bytes");
}
END_TEST

START_TEST(test_zlib)
{
    static const unsigned char junk[] = { 0x78, 0x9c, 0x01, 0x02, 0x03, 0x04 };

    /* zlib holding something that is not a pickle */
    bad("z_hello", "not a pickle of protocol 2 or later (first byte 0x68");
    /* a zlib header with garbage after it */
    bad_n(junk, sizeof(junk), "job data is neither a zlib stream (zlib: ");
    /* plain text */
    bad_n("hello", 5, "job data is neither a zlib stream");
    bad_n(NULL, 0, "job has no data");
}
END_TEST

/* Mutate valid pickles byte by byte: never a crash, never a leak (ASan),
 * and a mutated pickle that still decodes gives a positive id. */
START_TEST(test_mutations)
{
    static const char *names[] = { "p5_job5", "p2_job5", "p5_kw", "p5_optional", "z_p5_job5" };
    unsigned seed = 12345;

    for (size_t k = 0; k < NR_ARRAY_LEN(names); k++) {
        const struct fixture *f = fx(names[k]);
        unsigned char *buf = malloc(f->len);
        for (size_t i = 0; i < f->len; i++) {
            for (int v = 0; v < 256; v += 17) {
                long long id = -7;
                char *reason = NULL;
                memcpy(buf, f->bytes, f->len);
                buf[i] = (unsigned char)(buf[i] ^ (v ? v : 0xff));
                int rc = nr_rq_data_decode(buf, f->len, &id, &reason);
                if (rc == 0) {
                    ck_assert_int_gt(id, 0);
                    ck_assert_ptr_null(reason);
                } else {
                    ck_assert_int_eq(rc, NR_EINVAL);
                    ck_assert_ptr_nonnull(reason);
                    ck_assert_int_eq(id, -7);
                    free(reason);
                }
            }
        }
        /* random bytes after a PROTO */
        for (int round = 0; round < 2000; round++) {
            size_t len = 2 + (size_t)(rand_r(&seed) % 64);
            unsigned char r[80];
            long long id;
            char *reason = NULL;
            r[0] = 0x80;
            r[1] = 0x05;
            for (size_t i = 2; i < len; i++)
                r[i] = (unsigned char)rand_r(&seed);
            if (nr_rq_data_decode(r, len, &id, &reason) != 0)
                free(reason);
        }
        free(buf);
    }
}
END_TEST

static Suite *pickle_suite(void)
{
    Suite *s = suite_create("pickle");
    TCase *acc = tcase_create("accepted");
    TCase *rej = tcase_create("rejected");
    TCase *hostile = tcase_create("hostile");

    tcase_add_test(acc, test_rq_md_bytes);
    tcase_add_test(acc, test_protocols);
    tcase_add_test(acc, test_integers);
    tcase_add_test(acc, test_kwargs_and_lists);
    tcase_add_test(acc, test_memo);
    tcase_add_test(acc, test_frames);
    tcase_add_test(acc, test_optional_opcodes);
    tcase_add_test(acc, test_wide_dict);
    tcase_add_test(acc, test_dict_repeated_keys);
    suite_add_tcase(s, acc);

    tcase_add_test(rej, test_frame_split_opcode);
    tcase_add_test(rej, test_forbidden_opcodes);
    tcase_add_test(rej, test_truncated);
    tcase_add_test(rej, test_trailing);
    tcase_add_test(rej, test_shapes);
    tcase_add_test(rej, test_caps_and_text);
    tcase_add_test(rej, test_zlib);
    suite_add_tcase(s, rej);

    tcase_set_timeout(hostile, 120);
    tcase_add_test(hostile, test_mutations);
    suite_add_tcase(s, hostile);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pickle_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
