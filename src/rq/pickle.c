/*
 * pickle.c - the RQ job's `data`: zlib, then a small pickle reader.
 *
 * The reader is a stack machine over a whitelist of opcodes
 * (docs/python-rq.md §3.2, plus BINPUT / LONG_BINPUT, which protocols 2 and 3
 * use where 4 and 5 use MEMOIZE).  It builds plain values only: None, bool,
 * int, float, str, bytes, tuple, list, dict.  Every opcode that would look
 * up, import or call anything (GLOBAL, STACK_GLOBAL, REDUCE, NEWOBJ, BUILD,
 * INST, OBJ, EXT*, PERSID, ...) is refused by name before anything else
 * happens.
 *
 * Values live in an arena freed in one go when the read ends: the memo
 * shares values by reference (a dict memoized while empty is the same
 * dict SETITEM fills later), and a hostile pickle can make a list contain
 * itself, which an arena frees without reference counting.  No walk
 * over the result recurses, so cycles cannot loop either.
 *
 * Strings point into the input buffer (no copies); the input outlives the
 * arena.
 *
 * Dicts: SETITEM and SETITEMS only append (key, value) pairs; repeated keys
 * are merged once, when the read has ended (dicts_merge()), as Python's
 * dict would have them: a key keeps the place of its first insertion and
 * takes its last value.  Nothing reads a dict before then, and a lookup
 * per insertion made a dict of n keys cost n^2 / 2 key comparisons (4 to
 * 11 s for 32,760 keys).  The merge sorts: O(n log n) comparisons whatever
 * the keys, with no hash that chosen keys could make collide.  Strings are
 * first given a class number (equal contents, equal class) by one sort of
 * all of them, so that comparing two keys is O(1) however long they are;
 * a comparison during that sort costs at most the shorter string, so the
 * whole merge is bounded by the input size times log n.
 *
 * Frames (protocol 4+): a FRAME opcode announces that the next n bytes
 * form a frame.  As in CPython's Unpickler, a read may not run past the
 * end of the current frame (the framer never splits an opcode), a FRAME
 * may not start before the current frame is used up, and once a frame is
 * used up reads continue outside any frame (large strings are written
 * unframed between two frames).
 */
#include "netraven/rq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/* Caps.  A run_job call pickles to about 55 bytes; these leave room for
 * what RQ may reasonably carry and bound what a hostile payload costs. */
#define PK_MAX_INPUT   (4u << 20)   /* bytes after inflating */
#define PK_MAX_STR     (1u << 20)   /* one str or bytes */
#define PK_MAX_STACK   1024         /* values on the stack at once */
#define PK_MAX_MARKS   64           /* open MARKs: the nesting depth */
#define PK_MAX_MEMO    4096         /* memo slots */
#define PK_MAX_VALUES  65536        /* values built in all */
#define PK_MAX_ITEMS   65536        /* items in one container */

#define JOB_ID_MAX     2147483647LL /* jobs.id is a PostgreSQL integer */

enum pk_kind { PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES,
               PK_TUPLE, PK_LIST, PK_DICT };

static const char *const kind_names[] = {
    [PK_NONE] = "None", [PK_BOOL] = "bool", [PK_INT] = "int", [PK_FLOAT] = "float",
    [PK_STR] = "str", [PK_BYTES] = "bytes", [PK_TUPLE] = "tuple", [PK_LIST] = "list",
    [PK_DICT] = "dict",
};

struct pk_val {
    enum pk_kind kind;
    union {
        long long i;                    /* PK_BOOL, PK_INT */
        double    d;                    /* PK_FLOAT */
        struct {                        /* PK_STR, PK_BYTES: into the input */
            const unsigned char *p;
            size_t               n;
            size_t               cls;   /* equal contents, equal cls (dicts_merge) */
        } s;
        struct {                        /* PK_TUPLE, PK_LIST; PK_DICT as k,v,k,v */
            struct pk_val **v;
            size_t          n, cap;
        } seq;
    } u;
};

struct pk {
    const unsigned char *buf;
    size_t               len, pos;
    size_t               frame_end;     /* 0: not inside a frame */
    size_t               op_pos;        /* offset of the opcode being read */

    struct pk_val      **stack;
    size_t               sp;
    size_t               marks[PK_MAX_MARKS];
    size_t               nmarks;
    struct pk_val      **memo;
    size_t               memo_len;      /* slots in use (highest index + 1) */

    struct pk_val      **arena;         /* every value built, for freeing */
    size_t               narena, arena_cap;

    char                *reason;        /* set on the first failure */
};

/* ----------------------------------------------------------------- errors */

static int fail(struct pk *pk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct pk *pk, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    if (pk->reason != NULL)
        return NR_EINVAL;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    pk->reason = nr_strdup(buf);
    return NR_EINVAL;
}

/* Opcode names, for messages: every opcode of pickle protocols 0-5. */
static const char *op_name(unsigned op)
{
    switch (op) {
    case 0x28: return "MARK";            case 0x2e: return "STOP";
    case 0x30: return "POP";             case 0x31: return "POP_MARK";
    case 0x32: return "DUP";             case 0x46: return "FLOAT";
    case 0x49: return "INT";             case 0x4a: return "BININT";
    case 0x4b: return "BININT1";         case 0x4c: return "LONG";
    case 0x4d: return "BININT2";         case 0x4e: return "NONE";
    case 0x50: return "PERSID";          case 0x51: return "BINPERSID";
    case 0x52: return "REDUCE";          case 0x53: return "STRING";
    case 0x54: return "BINSTRING";       case 0x55: return "SHORT_BINSTRING";
    case 0x56: return "UNICODE";         case 0x58: return "BINUNICODE";
    case 0x61: return "APPEND";          case 0x62: return "BUILD";
    case 0x63: return "GLOBAL";          case 0x64: return "DICT";
    case 0x7d: return "EMPTY_DICT";      case 0x65: return "APPENDS";
    case 0x67: return "GET";             case 0x68: return "BINGET";
    case 0x69: return "INST";            case 0x6a: return "LONG_BINGET";
    case 0x6c: return "LIST";            case 0x5d: return "EMPTY_LIST";
    case 0x6f: return "OBJ";             case 0x70: return "PUT";
    case 0x71: return "BINPUT";          case 0x72: return "LONG_BINPUT";
    case 0x73: return "SETITEM";         case 0x74: return "TUPLE";
    case 0x29: return "EMPTY_TUPLE";     case 0x75: return "SETITEMS";
    case 0x47: return "BINFLOAT";        case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";          case 0x82: return "EXT1";
    case 0x83: return "EXT2";            case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";          case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";          case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";        case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";           case 0x42: return "BINBYTES";
    case 0x43: return "SHORT_BINBYTES";  case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";     case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";       case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";       case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";           case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";     case 0x98: return "READONLY_BUFFER";
    default:   return "unknown";
    }
}

/* ----------------------------------------------------------------- values */

static struct pk_val *val_new(struct pk *pk, enum pk_kind kind)
{
    struct pk_val *v;

    if (pk->narena >= PK_MAX_VALUES) {
        fail(pk, "pickle builds more than %d values", PK_MAX_VALUES);
        return NULL;
    }
    if (pk->narena == pk->arena_cap) {
        pk->arena_cap = pk->arena_cap ? pk->arena_cap * 2 : 16;
        pk->arena = nr_realloc(pk->arena, pk->arena_cap * sizeof(*pk->arena));
    }
    v = nr_calloc(1, sizeof(*v));
    v->kind = kind;
    pk->arena[pk->narena++] = v;
    return v;
}

static int seq_push(struct pk *pk, struct pk_val *c, struct pk_val *item)
{
    if (c->u.seq.n >= PK_MAX_ITEMS)
        return fail(pk, "a pickled %s holds more than %d items", kind_names[c->kind],
                    PK_MAX_ITEMS);
    if (c->u.seq.n == c->u.seq.cap) {
        c->u.seq.cap = c->u.seq.cap ? c->u.seq.cap * 2 : 4;
        c->u.seq.v = nr_realloc(c->u.seq.v, c->u.seq.cap * sizeof(*c->u.seq.v));
    }
    c->u.seq.v[c->u.seq.n++] = item;
    return NR_OK;
}

static bool str_eq(const struct pk_val *v, const char *s)
{
    size_t n = strlen(s);
    return v->kind == PK_STR && v->u.s.n == n && memcmp(v->u.s.p, s, n) == 0;
}

/* d[k] = v, appended: dicts_merge() merges repeated keys when the read
 * ends.  Only hashable kinds may be keys. */
static int dict_set(struct pk *pk, struct pk_val *d, struct pk_val *k, struct pk_val *v)
{
    if (k->kind == PK_LIST || k->kind == PK_DICT)
        return fail(pk, "a pickled dict has a %s as a key", kind_names[k->kind]);
    if (seq_push(pk, d, k) < 0 || seq_push(pk, d, v) < 0)
        return NR_EINVAL;
    return NR_OK;
}

/* Three-way comparisons for qsort(). */
#define CMP3(a, b) (((a) > (b)) - ((a) < (b)))

/* Strings and bytes by kind, then contents. */
static int str_cmp(const void *pa, const void *pb)
{
    const struct pk_val *a = *(struct pk_val *const *)pa, *b = *(struct pk_val *const *)pb;
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c;

    if (a->kind != b->kind)
        return CMP3(a->kind, b->kind);
    if (a->u.s.p != b->u.s.p && n > 0 && (c = memcmp(a->u.s.p, b->u.s.p, n)) != 0)
        return c;
    return CMP3(a->u.s.n, b->u.s.n);
}

/* Key order, the equality of Python's dict for what this reader builds:
 * None, bools and ints by value, str and bytes by contents (their class),
 * floats and tuples by identity (as before: a job never has them as keys).
 * A bool and an int are different kinds, hence different keys. */
static int key_cmp(const struct pk_val *a, const struct pk_val *b)
{
    if (a->kind != b->kind)
        return CMP3(a->kind, b->kind);
    switch (a->kind) {
    case PK_NONE:  return 0;
    case PK_BOOL:
    case PK_INT:   return CMP3(a->u.i, b->u.i);
    case PK_STR:
    case PK_BYTES: return CMP3(a->u.s.cls, b->u.s.cls);
    default:       return CMP3((uintptr_t)a, (uintptr_t)b);
    }
}

struct pair_ref {
    const struct pk_val *key;
    size_t               i;         /* pair index: insertion order */
};

/* By key, then insertion order: a total order, so qsort's lack of
 * stability does not matter. */
static int pair_cmp(const void *pa, const void *pb)
{
    const struct pair_ref *a = pa, *b = pb;
    int c = key_cmp(a->key, b->key);

    return c != 0 ? c : CMP3(a->i, b->i);
}

/* Merge the repeated keys of one dict: each key at its first place, with
 * its last value. */
static void dict_merge(struct pk_val *d)
{
    struct pk_val **v = d->u.seq.v;
    size_t n = d->u.seq.n / 2, out = 0, g, e;
    struct pair_ref *r;

    if (n < 2)
        return;
    r = nr_malloc(n * sizeof(*r));
    for (size_t i = 0; i < n; i++)
        r[i] = (struct pair_ref){ .key = v[2 * i], .i = i };
    qsort(r, n, sizeof(*r), pair_cmp);
    for (g = 0; g < n; g = e) {
        for (e = g + 1; e < n && key_cmp(r[g].key, r[e].key) == 0; e++)
            v[2 * r[e].i] = NULL;                   /* a repeat: dropped */
        v[2 * r[g].i + 1] = v[2 * r[e - 1].i + 1];  /* the last value wins */
    }
    free(r);
    for (size_t i = 0; i < n; i++)
        if (v[2 * i] != NULL) {
            v[2 * out] = v[2 * i];
            v[2 * out + 1] = v[2 * i + 1];
            out++;
        }
    d->u.seq.n = 2 * out;
}

/* Merge the repeated keys of every dict built (see the top of the file). */
static void dicts_merge(struct pk *pk)
{
    struct pk_val **strs;
    size_t ns = 0;

    strs = nr_malloc((pk->narena + 1) * sizeof(*strs));
    for (size_t i = 0; i < pk->narena; i++)
        if (pk->arena[i]->kind == PK_STR || pk->arena[i]->kind == PK_BYTES)
            strs[ns++] = pk->arena[i];
    qsort(strs, ns, sizeof(*strs), str_cmp);
    for (size_t i = 0; i < ns; i++)
        strs[i]->u.s.cls = i > 0 && str_cmp(&strs[i - 1], &strs[i]) == 0 ? strs[i - 1]->u.s.cls
                                                                          : i;
    free(strs);
    for (size_t i = 0; i < pk->narena; i++)
        if (pk->arena[i]->kind == PK_DICT)
            dict_merge(pk->arena[i]);
}

/* ------------------------------------------------------------------ input */

/* n bytes at the read position, honouring frames; NULL on failure. */
static const unsigned char *take(struct pk *pk, size_t n)
{
    const unsigned char *p;

    if (pk->frame_end != 0) {
        if (pk->pos == pk->frame_end) {
            pk->frame_end = 0;      /* the frame is used up: read outside */
        } else if (n > pk->frame_end - pk->pos) {
            fail(pk, "pickle opcode 0x%02x (%s) at offset %zu runs past the end of its frame",
                 pk->buf[pk->op_pos], op_name(pk->buf[pk->op_pos]), pk->op_pos);
            return NULL;
        }
    }
    if (n > pk->len - pk->pos) {
        fail(pk, "pickle is truncated at offset %zu", pk->len);
        return NULL;
    }
    p = pk->buf + pk->pos;
    pk->pos += n;
    return p;
}

static uint64_t le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* --------------------------------------------------------------- the stack */

static int push(struct pk *pk, struct pk_val *v)
{
    if (v == NULL)
        return NR_EINVAL;
    if (pk->sp >= PK_MAX_STACK)
        return fail(pk, "pickle stack grows beyond %d values", PK_MAX_STACK);
    pk->stack[pk->sp++] = v;
    return NR_OK;
}

/* The bottom of the current stack frame: above the innermost MARK. */
static size_t base(const struct pk *pk)
{
    return pk->nmarks ? pk->marks[pk->nmarks - 1] : 0;
}

static struct pk_val *pop(struct pk *pk)
{
    if (pk->sp <= base(pk)) {
        fail(pk, "pickle opcode 0x%02x (%s) at offset %zu pops an empty stack",
             pk->buf[pk->op_pos], op_name(pk->buf[pk->op_pos]), pk->op_pos);
        return NULL;
    }
    return pk->stack[--pk->sp];
}

static struct pk_val *top(struct pk *pk)
{
    if (pk->sp <= base(pk)) {
        fail(pk, "pickle opcode 0x%02x (%s) at offset %zu needs a value on the stack",
             pk->buf[pk->op_pos], op_name(pk->buf[pk->op_pos]), pk->op_pos);
        return NULL;
    }
    return pk->stack[pk->sp - 1];
}

/* Close the innermost MARK: *first is the index of the first value above
 * it; the caller consumes values [first, sp) and sets sp = first. */
static int pop_mark(struct pk *pk, size_t *first)
{
    if (pk->nmarks == 0)
        return fail(pk, "pickle opcode 0x%02x (%s) at offset %zu has no MARK",
                    pk->buf[pk->op_pos], op_name(pk->buf[pk->op_pos]), pk->op_pos);
    *first = pk->marks[--pk->nmarks];
    return NR_OK;
}

/* ------------------------------------------------------------------ memo */

static int memo_put(struct pk *pk, uint64_t idx)
{
    struct pk_val *v = top(pk);

    if (v == NULL)
        return NR_EINVAL;
    if (idx >= PK_MAX_MEMO)
        return fail(pk, "pickle memo index %llu is beyond %d", (unsigned long long)idx,
                    PK_MAX_MEMO);
    if (idx >= pk->memo_len) {
        pk->memo = nr_realloc(pk->memo, (size_t)(idx + 1) * sizeof(*pk->memo));
        memset(pk->memo + pk->memo_len, 0, (size_t)(idx + 1 - pk->memo_len) * sizeof(*pk->memo));
        pk->memo_len = (size_t)idx + 1;
    }
    pk->memo[idx] = v;
    return NR_OK;
}

static int memo_get(struct pk *pk, uint64_t idx)
{
    if (idx >= pk->memo_len || pk->memo[idx] == NULL)
        return fail(pk, "pickle memo index %llu at offset %zu was never stored",
                    (unsigned long long)idx, pk->op_pos);
    return push(pk, pk->memo[idx]);
}

/* --------------------------------------------------------------- strings */

/* Strict UTF-8 (nr_utf8_seq: no overlong forms, surrogates or code points
 * beyond U+10FFFF); NUL is a valid character of a Python str. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0, k; i < n; i += k)
        if ((k = s[i] == 0 ? 1 : nr_utf8_seq(s + i, n - i)) == 0)
            return false;
    return true;
}

static int load_str(struct pk *pk, size_t lenbytes, enum pk_kind kind)
{
    const unsigned char *p = take(pk, lenbytes), *s;
    uint64_t n;
    struct pk_val *v;

    if (p == NULL)
        return NR_EINVAL;
    n = le(p, lenbytes);
    if (n > PK_MAX_STR)
        return fail(pk, "pickled %s at offset %zu is %llu bytes long (at most %u allowed)",
                    kind_names[kind], pk->op_pos, (unsigned long long)n, PK_MAX_STR);
    if ((s = take(pk, (size_t)n)) == NULL)
        return NR_EINVAL;
    if (kind == PK_STR && !utf8_valid(s, (size_t)n))
        return fail(pk, "pickled str at offset %zu is not valid UTF-8", pk->op_pos);
    if ((v = val_new(pk, kind)) == NULL)
        return NR_EINVAL;
    v->u.s.p = s;
    v->u.s.n = (size_t)n;
    return push(pk, v);
}

/* ------------------------------------------------------------------ ints */

static int push_int(struct pk *pk, long long i, enum pk_kind kind)
{
    struct pk_val *v = val_new(pk, kind);

    if (v == NULL)
        return NR_EINVAL;
    v->u.i = i;
    return push(pk, v);
}

/* LONG1: n bytes of little-endian two's complement, n <= 8. */
static int load_long1(struct pk *pk)
{
    const unsigned char *p = take(pk, 1);
    uint64_t u;
    size_t n;

    if (p == NULL)
        return NR_EINVAL;
    n = p[0];
    if (n > 8)
        return fail(pk, "pickled int at offset %zu has %zu bytes (at most 8 allowed)",
                    pk->op_pos, n);
    if ((p = take(pk, n)) == NULL)
        return NR_EINVAL;
    u = le(p, n);
    if (n > 0 && n < 8 && (p[n - 1] & 0x80))
        u |= ~(uint64_t)0 << (8 * n);       /* sign-extend */
    return push_int(pk, (long long)u, PK_INT);
}

/* --------------------------------------------------------- containers */

static int build_tuple(struct pk *pk, size_t first)
{
    struct pk_val *t = val_new(pk, PK_TUPLE);

    if (t == NULL)
        return NR_EINVAL;
    for (size_t i = first; i < pk->sp; i++)
        if (seq_push(pk, t, pk->stack[i]) < 0)
            return NR_EINVAL;
    pk->sp = first;
    return push(pk, t);
}

static int load_tuple_n(struct pk *pk, size_t n)
{
    if (pk->sp - base(pk) < n)
        return fail(pk, "pickle opcode 0x%02x (%s) at offset %zu needs %zu values on the stack",
                    pk->buf[pk->op_pos], op_name(pk->buf[pk->op_pos]), pk->op_pos, n);
    return build_tuple(pk, pk->sp - n);
}

static int load_setitems(struct pk *pk, size_t first)
{
    struct pk_val *d;

    if ((pk->sp - first) % 2 != 0)
        return fail(pk, "pickle opcode SETITEMS at offset %zu has an odd number of values",
                    pk->op_pos);
    if (first <= base(pk) || first == 0)
        return fail(pk, "pickle opcode SETITEMS at offset %zu has no dict below its MARK",
                    pk->op_pos);
    d = pk->stack[first - 1];
    if (d->kind != PK_DICT)
        return fail(pk, "pickle opcode SETITEMS at offset %zu applies to a %s, not a dict",
                    pk->op_pos, kind_names[d->kind]);
    for (size_t i = first; i < pk->sp; i += 2)
        if (dict_set(pk, d, pk->stack[i], pk->stack[i + 1]) < 0)
            return NR_EINVAL;
    pk->sp = first;
    return NR_OK;
}

static int load_appends(struct pk *pk, size_t first)
{
    struct pk_val *l;

    if (first <= base(pk) || first == 0)
        return fail(pk, "pickle opcode APPENDS at offset %zu has no list below its MARK",
                    pk->op_pos);
    l = pk->stack[first - 1];
    if (l->kind != PK_LIST)
        return fail(pk, "pickle opcode APPENDS at offset %zu applies to a %s, not a list",
                    pk->op_pos, kind_names[l->kind]);
    for (size_t i = first; i < pk->sp; i++)
        if (seq_push(pk, l, pk->stack[i]) < 0)
            return NR_EINVAL;
    pk->sp = first;
    return NR_OK;
}

/* ------------------------------------------------------------ the machine */

/* Run the opcodes up to STOP; *result is the value STOP returns. */
static int run(struct pk *pk, struct pk_val **result)
{
    const unsigned char *p;
    struct pk_val *v, *k, *d;
    size_t first = 0;
    unsigned op;
    int rc;

    if (pk->len == 0)
        return fail(pk, "pickle is empty");
    if (pk->buf[0] != 0x80)
        return fail(pk, "data is not a pickle of protocol 2 or later (first byte 0x%02x, "
                    "not PROTO)", pk->buf[0]);

    for (;;) {
        pk->op_pos = pk->pos;
        if ((p = take(pk, 1)) == NULL)
            return NR_EINVAL;
        op = p[0];
        rc = NR_OK;
        switch (op) {
        case 0x80:  /* PROTO */
            if (pk->op_pos != 0)
                return fail(pk, "pickle opcode PROTO repeated at offset %zu", pk->op_pos);
            if ((p = take(pk, 1)) == NULL)
                return NR_EINVAL;
            if (p[0] < 2 || p[0] > 5)
                return fail(pk, "pickle protocol %u is not supported (2 to 5 are)", p[0]);
            break;
        case 0x95:  /* FRAME */
            if (pk->frame_end != 0 && pk->pos < pk->frame_end)
                return fail(pk, "pickle opcode FRAME at offset %zu starts before the "
                            "previous frame ends", pk->op_pos);
            pk->frame_end = 0;
            if ((p = take(pk, 8)) == NULL)
                return NR_EINVAL;
            {
                uint64_t n = le(p, 8);
                if (n > pk->len - pk->pos)
                    return fail(pk, "pickle frame at offset %zu is %llu bytes long but only "
                                "%zu remain", pk->op_pos, (unsigned long long)n,
                                pk->len - pk->pos);
                if (n > 0)
                    pk->frame_end = pk->pos + (size_t)n;
            }
            break;
        case 0x2e:  /* STOP */
            if (pk->nmarks != 0)
                return fail(pk, "pickle ends with an open MARK");
            if (pk->sp != 1)
                return fail(pk, "pickle ends with %zu values on the stack, not 1", pk->sp);
            if (pk->pos != pk->len)
                return fail(pk, "pickle has %zu bytes after STOP", pk->len - pk->pos);
            if (pk->frame_end != 0 && pk->pos != pk->frame_end)
                return fail(pk, "pickle ends inside a frame");
            *result = pk->stack[0];
            return NR_OK;
        case 0x28:  /* MARK */
            if (pk->nmarks >= PK_MAX_MARKS)
                return fail(pk, "pickle nests deeper than %d MARKs", PK_MAX_MARKS);
            pk->marks[pk->nmarks++] = pk->sp;
            break;
        case 0x94:  /* MEMOIZE */
            rc = memo_put(pk, pk->memo_len);
            break;
        case 0x71:  /* BINPUT */
            rc = (p = take(pk, 1)) ? memo_put(pk, p[0]) : NR_EINVAL;
            break;
        case 0x72:  /* LONG_BINPUT */
            rc = (p = take(pk, 4)) ? memo_put(pk, le(p, 4)) : NR_EINVAL;
            break;
        case 0x68:  /* BINGET */
            rc = (p = take(pk, 1)) ? memo_get(pk, p[0]) : NR_EINVAL;
            break;
        case 0x6a:  /* LONG_BINGET */
            rc = (p = take(pk, 4)) ? memo_get(pk, le(p, 4)) : NR_EINVAL;
            break;
        case 0x4e:  /* NONE */
            rc = push(pk, val_new(pk, PK_NONE));
            break;
        case 0x88:  /* NEWTRUE */
        case 0x89:  /* NEWFALSE */
            rc = push_int(pk, op == 0x88, PK_BOOL);
            break;
        case 0x4b:  /* BININT1 */
            rc = (p = take(pk, 1)) ? push_int(pk, p[0], PK_INT) : NR_EINVAL;
            break;
        case 0x4d:  /* BININT2 */
            rc = (p = take(pk, 2)) ? push_int(pk, (long long)le(p, 2), PK_INT) : NR_EINVAL;
            break;
        case 0x4a:  /* BININT: 4-byte signed */
            rc = (p = take(pk, 4)) ? push_int(pk, (int32_t)(uint32_t)le(p, 4), PK_INT)
                                   : NR_EINVAL;
            break;
        case 0x8a:  /* LONG1 */
            rc = load_long1(pk);
            break;
        case 0x47:  /* BINFLOAT: 8 bytes big-endian */
            if ((p = take(pk, 8)) == NULL)
                return NR_EINVAL;
            {
                uint64_t u = 0;
                double dv;
                for (int i = 0; i < 8; i++)
                    u = (u << 8) | p[i];
                memcpy(&dv, &u, sizeof(dv));
                if ((v = val_new(pk, PK_FLOAT)) == NULL)
                    return NR_EINVAL;
                v->u.d = dv;
                rc = push(pk, v);
            }
            break;
        case 0x8c:  /* SHORT_BINUNICODE */
            rc = load_str(pk, 1, PK_STR);
            break;
        case 0x58:  /* BINUNICODE */
            rc = load_str(pk, 4, PK_STR);
            break;
        case 0x43:  /* SHORT_BINBYTES */
            rc = load_str(pk, 1, PK_BYTES);
            break;
        case 0x29:  /* EMPTY_TUPLE */
            rc = push(pk, val_new(pk, PK_TUPLE));
            break;
        case 0x85:  /* TUPLE1 */
        case 0x86:  /* TUPLE2 */
        case 0x87:  /* TUPLE3 */
            rc = load_tuple_n(pk, op - 0x84u);
            break;
        case 0x74:  /* TUPLE */
            rc = pop_mark(pk, &first) < 0 ? NR_EINVAL : build_tuple(pk, first);
            break;
        case 0x7d:  /* EMPTY_DICT */
            rc = push(pk, val_new(pk, PK_DICT));
            break;
        case 0x5d:  /* EMPTY_LIST */
            rc = push(pk, val_new(pk, PK_LIST));
            break;
        case 0x73:  /* SETITEM */
            if ((v = pop(pk)) == NULL || (k = pop(pk)) == NULL || (d = top(pk)) == NULL)
                return NR_EINVAL;
            if (d->kind != PK_DICT)
                return fail(pk, "pickle opcode SETITEM at offset %zu applies to a %s, not a dict",
                            pk->op_pos, kind_names[d->kind]);
            rc = dict_set(pk, d, k, v);
            break;
        case 0x75:  /* SETITEMS */
            rc = pop_mark(pk, &first) < 0 ? NR_EINVAL : load_setitems(pk, first);
            break;
        case 0x61:  /* APPEND */
            if ((v = pop(pk)) == NULL || (d = top(pk)) == NULL)
                return NR_EINVAL;
            if (d->kind != PK_LIST)
                return fail(pk, "pickle opcode APPEND at offset %zu applies to a %s, not a list",
                            pk->op_pos, kind_names[d->kind]);
            rc = seq_push(pk, d, v);
            break;
        case 0x65:  /* APPENDS */
            rc = pop_mark(pk, &first) < 0 ? NR_EINVAL : load_appends(pk, first);
            break;
        default:
            return fail(pk, "pickle opcode 0x%02x (%s) is not allowed", op, op_name(op));
        }
        if (rc < 0)
            return NR_EINVAL;
    }
}

/* ------------------------------------------------------------- the call */

/* s as a printable quoted excerpt for messages. */
static void excerpt(const struct pk_val *v, char *out, size_t outlen)
{
    size_t o = 0, n = v->u.s.n;

    for (size_t i = 0; i < n && o + 5 < outlen; i++) {
        unsigned char c = v->u.s.p[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (o < n && o + 4 <= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* ----------------------------------------------------- the function table */

static const struct nr_rq_func_def funcs[NR_RQ_FUNC_COUNT] = {
    [NR_RQ_RUN_JOB] = {
        .name = NR_RQ_FUNC, .param = "job_id", .required = true,
        .min = 1, .max = JOB_ID_MAX, .range = "jobs.id is a 32-bit integer",
    },
    [NR_RQ_PRUNE_CONFIGS] = {
        /* NetRaven's default; below 1 Python would delete the newest
         * snapshot too, which the worker never does */
        .name = NR_RQ_FUNC_PRUNE, .param = "retain_count", .required = false,
        .dflt = 10, .min = 1, .max = 2147483647LL, .range = "at most 2147483647",
    },
};

const struct nr_rq_func_def *nr_rq_func_table(size_t *n)
{
    if (n != NULL)
        *n = NR_RQ_FUNC_COUNT;
    return funcs;
}

static int arg_of(struct pk *pk, const struct nr_rq_func_def *f, const struct pk_val *v,
                  long long *arg)
{
    if (v->kind != PK_INT)
        return fail(pk, "%s must be a positive integer, not a %s", f->param, kind_names[v->kind]);
    if (v->u.i < f->min)
        return fail(pk, "%s must be a positive integer, not %lld", f->param, v->u.i);
    if (v->u.i > f->max)
        return fail(pk, "%s %lld is out of range (%s)", f->param, v->u.i, f->range);
    *arg = v->u.i;
    return NR_OK;
}

/* "job function 'x' is not allowed (only A) for NetRaven's job runs, and B
 * for ...": the table's names, in order. */
static int not_allowed(struct pk *pk, const struct pk_val *fn)
{
    static const char *const what[NR_RQ_FUNC_COUNT] = {
        [NR_RQ_RUN_JOB] = "NetRaven's job runs",
        [NR_RQ_PRUNE_CONFIGS] = "the scheduler's retention job",
    };
    char name[96], list[512];
    size_t o = 0;

    excerpt(fn, name, sizeof(name));
    for (size_t i = 0; i < NR_RQ_FUNC_COUNT && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, i == 0 ? "(only %s) for %s" :
                              ", and %s for %s", funcs[i].name, what[i]);
    return fail(pk, "job function '%s' is not allowed %s", name, list);
}

/* The result must be (name, None, args, kwargs) for a name of the table,
 * with its one parameter in args ((arg,) or [arg]) or kwargs ({param: arg}),
 * or in neither when the row has a default. */
static int check_call(struct pk *pk, const struct pk_val *t, struct nr_rq_call *call)
{
    const struct pk_val *fn, *inst, *args, *kw;
    const struct nr_rq_func_def *f = NULL;
    char name[96];
    size_t i;

    if (t->kind != PK_TUPLE)
        return fail(pk, "job data is a pickled %s, not the tuple (func_name, None, args, kwargs)",
                    kind_names[t->kind]);
    if (t->u.seq.n != 4)
        return fail(pk, "job data is a tuple of %zu items, not (func_name, None, args, kwargs)",
                    t->u.seq.n);
    fn = t->u.seq.v[0];
    inst = t->u.seq.v[1];
    args = t->u.seq.v[2];
    kw = t->u.seq.v[3];
    if (fn->kind != PK_STR)
        return fail(pk, "job function name is a %s, not a str", kind_names[fn->kind]);
    if (inst->kind != PK_NONE)
        return fail(pk, "job has an instance (a %s), not None: bound methods are not supported",
                    kind_names[inst->kind]);
    if (args->kind != PK_TUPLE && args->kind != PK_LIST)
        return fail(pk, "job args is a %s, not a tuple or list", kind_names[args->kind]);
    if (kw->kind != PK_DICT)
        return fail(pk, "job kwargs is a %s, not a dict", kind_names[kw->kind]);
    for (i = 0; i < kw->u.seq.n; i += 2)
        if (kw->u.seq.v[i]->kind != PK_STR)
            return fail(pk, "job kwargs has a %s key; keyword names are str",
                        kind_names[kw->u.seq.v[i]->kind]);

    for (i = 0; i < NR_RQ_FUNC_COUNT && f == NULL; i++)
        if (str_eq(fn, funcs[i].name))
            f = &funcs[i];
    if (f == NULL)
        return not_allowed(pk, fn);
    call->func = (enum nr_rq_func)(f - funcs);

    size_t nargs = args->u.seq.n, nkw = kw->u.seq.n / 2;
    if (nargs == 1 && nkw == 0)
        return arg_of(pk, f, args->u.seq.v[0], &call->arg);
    if (nargs == 0 && nkw == 1) {
        if (!str_eq(kw->u.seq.v[0], f->param)) {
            excerpt(kw->u.seq.v[0], name, sizeof(name));
            return fail(pk, "%s got an unexpected keyword argument '%s'", f->name, name);
        }
        return arg_of(pk, f, kw->u.seq.v[1], &call->arg);
    }
    if (nargs == 0 && nkw == 0 && !f->required) {
        call->arg = f->dflt;
        return NR_OK;
    }
    return fail(pk, "%s takes %s one argument, %s; got %zu positional and %zu keyword arguments",
                f->name, f->required ? "exactly" : "at most", f->param, nargs, nkw);
}

static void pk_clear(struct pk *pk)
{
    for (size_t i = 0; i < pk->narena; i++) {
        struct pk_val *v = pk->arena[i];
        if (v->kind == PK_TUPLE || v->kind == PK_LIST || v->kind == PK_DICT)
            free(v->u.seq.v);
        free(v);
    }
    free(pk->arena);
    free(pk->stack);
    free(pk->memo);
}

int nr_rq_pickle_decode_call(const void *pickle, size_t len, struct nr_rq_call *call,
                             char **reason)
{
    struct pk pk = { .buf = pickle, .len = len };
    struct pk_val *result = NULL;
    struct nr_rq_call c = { 0 };
    int rc;

    if (pickle == NULL && len > 0)
        len = 0;
    pk.len = len;
    if (len > PK_MAX_INPUT)
        rc = fail(&pk, "pickle is %zu bytes long (at most %u allowed)", len, PK_MAX_INPUT);
    else {
        pk.stack = nr_malloc(PK_MAX_STACK * sizeof(*pk.stack));
        rc = run(&pk, &result);
        if (rc == NR_OK) {
            dicts_merge(&pk);
            rc = check_call(&pk, result, &c);
        }
    }
    pk_clear(&pk);
    if (rc == NR_OK) {
        *call = c;
        return NR_OK;
    }
    if (reason != NULL)
        *reason = pk.reason ? pk.reason : nr_strdup("pickle rejected");
    else
        free(pk.reason);
    return NR_EINVAL;
}

/* ------------------------------------------------------------------ zlib */

/* Inflate a whole zlib stream, up to PK_MAX_INPUT bytes.  Returns 0 and a
 * malloc'd *out; NR_NOTFOUND when it is not a (complete) zlib stream;
 * NR_EINVAL when it inflates beyond the cap (*zerr says so). */
static int inflate_all(const unsigned char *in, size_t len, unsigned char **out,
                       size_t *outlen, char *zerr, size_t zerrlen)
{
    z_stream zs;
    size_t cap = len * 4 + 256, n = 0;
    unsigned char *buf;
    int zrc;

    if (len < 2 || len > UINT32_MAX)
        return NR_NOTFOUND;
    memset(&zs, 0, sizeof(zs));
    if (inflateInit(&zs) != Z_OK)
        return NR_NOTFOUND;
    if (cap > PK_MAX_INPUT + 1)
        cap = PK_MAX_INPUT + 1;
    buf = nr_malloc(cap);
    zs.next_in = (unsigned char *)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n);
        zrc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (zrc == Z_STREAM_END)
            break;
        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            snprintf(zerr, zerrlen, "%s", zs.msg ? zs.msg : "not a zlib stream");
            goto not_zlib;
        }
        if (n > PK_MAX_INPUT) {
            snprintf(zerr, zerrlen, "job data inflates to more than %u bytes", PK_MAX_INPUT);
            inflateEnd(&zs);
            free(buf);
            return NR_EINVAL;
        }
        if (zs.avail_in == 0 && zs.avail_out > 0) {
            snprintf(zerr, zerrlen, "zlib stream is truncated");
            goto not_zlib;
        }
        if (zs.avail_out == 0) {
            cap = cap * 2 > PK_MAX_INPUT + 1 ? PK_MAX_INPUT + 1 : cap * 2;
            buf = nr_realloc(buf, cap);
        }
    }
    if (n > PK_MAX_INPUT || zs.avail_in != 0) {
        if (n > PK_MAX_INPUT) {
            snprintf(zerr, zerrlen, "job data inflates to more than %u bytes", PK_MAX_INPUT);
            inflateEnd(&zs);
            free(buf);
            return NR_EINVAL;
        }
        snprintf(zerr, zerrlen, "%u bytes follow the zlib stream", zs.avail_in);
        goto not_zlib;
    }
    inflateEnd(&zs);
    *out = buf;
    *outlen = n;
    return NR_OK;

not_zlib:
    inflateEnd(&zs);
    free(buf);
    return NR_NOTFOUND;
}

int nr_rq_data_decode_call(const void *data, size_t len, struct nr_rq_call *call,
                           char **reason)
{
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    char zerr[128] = "";
    int rc;

    if (data == NULL || len == 0) {
        if (reason != NULL)
            *reason = nr_strdup("job has no data");
        return NR_EINVAL;
    }
    rc = inflate_all(data, len, &plain, &plain_len, zerr, sizeof(zerr));
    if (rc == NR_EINVAL) {
        if (reason != NULL)
            *reason = nr_strdup(zerr);
        return NR_EINVAL;
    }
    if (rc == NR_OK) {
        rc = nr_rq_pickle_decode_call(plain, plain_len, call, reason);
        free(plain);
        return rc;
    }

    /* Not zlib: a raw pickle (it starts with PROTO), or neither. */
    char *why = NULL;
    rc = nr_rq_pickle_decode_call(data, len, call, &why);
    if (rc == NR_OK)
        return NR_OK;
    if (reason != NULL) {
        if (((const unsigned char *)data)[0] == 0x80)
            *reason = why, why = NULL;
        else
            *reason = nr_asprintf("job data is neither a zlib stream (zlib: %s) nor a pickle: %s",
                                  zerr[0] ? zerr : "not a zlib stream", why);
    }
    free(why);
    return NR_EINVAL;
}

/* ------------------------------------------------------- run_job only */

static int run_job_only(int rc, const struct nr_rq_call *c, long long *job_id, char **reason)
{
    if (rc != NR_OK)
        return rc;
    if (c->func != NR_RQ_RUN_JOB) {
        if (reason != NULL)
            *reason = nr_asprintf("job calls %s, not " NR_RQ_FUNC, funcs[c->func].name);
        return NR_EINVAL;
    }
    *job_id = c->arg;
    return NR_OK;
}

int nr_rq_pickle_decode(const void *pickle, size_t len, long long *job_id, char **reason)
{
    struct nr_rq_call c;
    return run_job_only(nr_rq_pickle_decode_call(pickle, len, &c, reason), &c, job_id, reason);
}

int nr_rq_data_decode(const void *data, size_t len, long long *job_id, char **reason)
{
    struct nr_rq_call c;
    return run_job_only(nr_rq_data_decode_call(data, len, &c, reason), &c, job_id, reason);
}
