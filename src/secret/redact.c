/* redact.c - replace the lines of device output that carry a keyword or
 * one of the session's secrets.
 *
 * One pass: each line is found with memchr, checked for the secrets and
 * searched for the patterns, and unredacted lines are copied in runs (one
 * memcpy per run of kept lines, not per line).  The patterns are indexed
 * by their first byte (folded to lower case) once per call, so a position
 * in the text costs one table look-up unless some pattern could start
 * there.  Each secret is searched for in the whole text with memmem, once
 * from the start and then from just after each occurrence, never again
 * from each line: the next occurrence is remembered until the lines reach
 * it, which keeps the cost linear however many lines lie between two. */
#include "netraven/secret.h"

#include <stdlib.h>
#include <string.h>

#include "netraven/config.h"

#define KIND_FIELD     "{kind}"
#define KIND_FIELD_LEN (sizeof(KIND_FIELD) - 1)

static inline unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ---- the redaction's contents ---------------------------------------------- */

void nr_redaction_init(struct nr_redaction *r, const struct nr_config *cfg)
{
    memset(r, 0, sizeof(*r));
    r->marker = NR_REDACTION_MARKER_DEFAULT;
    if (cfg == NULL)
        return;
    r->patterns = &cfg->worker.redaction_patterns;
    if (cfg->worker.redaction_marker != NULL && cfg->worker.redaction_marker[0] != '\0')
        r->marker = cfg->worker.redaction_marker;
}

void nr_redaction_add_secret(struct nr_redaction *r, const char *secret, const char *kind)
{
    if (secret == NULL || secret[0] == '\0' || r->nsecrets >= NR_REDACT_MAX_SECRETS)
        return;
    for (size_t k = 0; k < r->nsecrets; k++)
        if (strcmp(r->secrets[k], secret) == 0)
            return;
    r->secrets[r->nsecrets] = secret;
    r->kinds[r->nsecrets] = kind ? kind : "secret";
    r->nsecrets++;
}

/* ---- patterns ------------------------------------------------------------- */

/* Chains for up to this many patterns live in the matcher itself; more
 * (a long configured list) take one allocation. */
#define MATCHER_INLINE 32

struct matcher_ent {
    int    next;                      /* next pattern with the same first byte */
    size_t len;
};

struct matcher {
    int                   head[256];  /* first pattern starting with byte, -1 none */
    struct matcher_ent   *ent;        /* one per configured pattern */
    const char *const    *pat;        /* the configured patterns, borrowed */
    size_t                minlen;     /* shortest pattern; 0 when there are none */
    struct matcher_ent    ent_in[MATCHER_INLINE];
};

/* Built for each text to redact: no copy of the patterns (bytes are folded
 * as they are compared) and no allocation unless there are more than
 * MATCHER_INLINE of them. */
static void matcher_init(struct matcher *m, const struct nr_strlist *patterns)
{
    size_t n = patterns ? patterns->n : 0;

    for (int c = 0; c < 256; c++)
        m->head[c] = -1;
    m->minlen = 0;
    m->pat = n ? (const char *const *)patterns->v : NULL;
    m->ent = n > MATCHER_INLINE ? nr_calloc(n, sizeof(*m->ent)) : m->ent_in;
    /* insert in reverse so that each chain keeps the configured order */
    for (size_t i = n; i-- > 0;) {
        const char *p = m->pat[i];
        size_t len = p ? strlen(p) : 0;
        unsigned char f;

        m->ent[i].len = len;
        if (len == 0)
            continue;
        f = fold((unsigned char)p[0]);
        m->ent[i].next = m->head[f];
        m->head[f] = (int)i;
        if (m->minlen == 0 || len < m->minlen)
            m->minlen = len;
    }
}

static void matcher_clear(struct matcher *m)
{
    if (m->ent != m->ent_in)
        free(m->ent);
}

/* The index of the leftmost pattern in [s, e) (at one position, the first
 * configured), or -1. */
static int matcher_find(const struct matcher *m, const unsigned char *s,
                        const unsigned char *e)
{
    size_t len = (size_t)(e - s);

    if (m->minlen == 0 || len < m->minlen)
        return -1;
    for (const unsigned char *p = s, *last = e - m->minlen; p <= last; p++) {
        for (int k = m->head[fold(*p)]; k >= 0; k = m->ent[k].next) {
            size_t pl = m->ent[k].len;
            const unsigned char *q = (const unsigned char *)m->pat[k];
            size_t j = 1;

            if ((size_t)(e - p) < pl)
                continue;
            while (j < pl && fold(p[j]) == fold(q[j]))
                j++;
            if (j == pl)
                return k;
        }
    }
    return -1;
}

/* ---- output ----------------------------------------------------------------- */

struct obuf {
    char  *b;
    size_t len, cap;
};

static void obuf_add(struct obuf *o, const void *p, size_t n)
{
    if (o->cap - o->len < n + 1) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap - o->len < n + 1)
            cap *= 2;
        o->b = nr_realloc(o->b, cap);
        o->cap = cap;
    }
    if (n == 0)
        return;
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

/* The marker with every "{kind}" replaced by kind.  A line break in either
 * becomes a blank: a redacted line stays one line. */
static void obuf_add_marker(struct obuf *o, const char *marker, const char *kind)
{
    size_t start = o->len;
    const char *p = marker, *f;

    while ((f = strstr(p, KIND_FIELD)) != NULL) {
        obuf_add(o, p, (size_t)(f - p));
        obuf_add(o, kind, strlen(kind));
        p = f + KIND_FIELD_LEN;
    }
    obuf_add(o, p, strlen(p));
    for (size_t i = start; i < o->len; i++)
        if (o->b[i] == '\n' || o->b[i] == '\r')
            o->b[i] = ' ';
}

static const char *marker_of(const struct nr_redaction *r)
{
    return r->marker != NULL && r->marker[0] != '\0' ? r->marker : NR_REDACTION_MARKER_DEFAULT;
}

/* ---- nr_redact ---------------------------------------------------------------- */

/* One secret's search state over the text. */
struct scan {
    const unsigned char *s;
    size_t               m;
    const unsigned char *hit;   /* next occurrence not wholly before the
                                 * current line; NULL: no more */
    const char          *kind;
};

int nr_redact(const char *text, size_t len, const struct nr_redaction *r,
              char **out, size_t *out_len, size_t *nlines_redacted)
{
    const unsigned char *t = (const unsigned char *)text;
    const unsigned char *end = t + len, *line, *keep;
    struct scan sc[NR_REDACT_MAX_SECRETS];
    size_t nsec = 0, live = 0, nred = 0;
    struct matcher m;
    struct obuf o = { 0 };

    if (out == NULL || (text == NULL && len > 0))
        return NR_EINVAL;

    matcher_init(&m, r ? r->patterns : NULL);
    for (size_t k = 0; r != NULL && k < r->nsecrets && k < NR_REDACT_MAX_SECRETS; k++) {
        const char *s = r->secrets[k];

        if (s == NULL || s[0] == '\0')
            continue;
        sc[nsec].s = (const unsigned char *)s;
        sc[nsec].m = strlen(s);
        sc[nsec].hit = len ? memmem(t, len, s, sc[nsec].m) : NULL;
        sc[nsec].kind = r->kinds[k] ? r->kinds[k] : "secret";
        live += sc[nsec].hit != NULL;
        nsec++;
    }
    /* Redaction usually shrinks the text; start at its size plus a little
     * so that the common case never reallocates. */
    o.cap = len + len / 64 + 64;
    o.b = nr_malloc(o.cap);

    keep = t;
    for (line = t; (m.minlen || live) && line < end;) {
        const unsigned char *nl = memchr(line, '\n', (size_t)(end - line));
        const unsigned char *ce = nl ? nl : end;   /* content end */
        const unsigned char *next = nl ? nl + 1 : end;
        const char *kind = NULL;
        int k;

        /* "\r\n" is kept whole; so is a '\r' that ends the text */
        if (ce > line && ce[-1] == '\r')
            ce--;
        for (size_t i = 0; i < nsec; i++) {
            struct scan *c = &sc[i];

            while (c->hit != NULL && c->hit + c->m <= line) {
                const unsigned char *from = c->hit + 1;

                c->hit = memmem(from, (size_t)(end - from), c->s, c->m);
                live -= c->hit == NULL;
            }
            /* it overlaps the line's content (it ends after its start) */
            if (kind == NULL && c->hit != NULL && c->hit < ce)
                kind = c->kind;
        }
        if (kind == NULL && (k = matcher_find(&m, line, ce)) >= 0)
            kind = r->patterns->v[k];
        if (kind != NULL) {
            obuf_add(&o, keep, (size_t)(line - keep));
            obuf_add_marker(&o, marker_of(r), kind);
            obuf_add(&o, ce, (size_t)(next - ce));   /* the ending as it was */
            keep = next;
            nred++;
        }
        line = next;
    }
    obuf_add(&o, keep, (size_t)(end - keep));
    o.b[o.len] = '\0';
    matcher_clear(&m);

    *out = o.b;
    if (out_len != NULL)
        *out_len = o.len;
    if (nlines_redacted != NULL)
        *nlines_redacted = nred;
    return NR_OK;
}

char *nr_redact_line(const char *line, const struct nr_redaction *r)
{
    size_t n = strlen(line);
    const char *kind = NULL;
    struct obuf o = { 0 };

    if (r == NULL)
        return nr_strdup(line);
    for (size_t k = 0; kind == NULL && k < r->nsecrets && k < NR_REDACT_MAX_SECRETS; k++) {
        const char *s = r->secrets[k];

        if (s != NULL && s[0] != '\0' && memmem(line, n, s, strlen(s)) != NULL)
            kind = r->kinds[k] ? r->kinds[k] : "secret";
    }
    if (kind == NULL && r->patterns != NULL && r->patterns->n > 0) {
        struct matcher m;
        int k;

        matcher_init(&m, r->patterns);
        k = matcher_find(&m, (const unsigned char *)line, (const unsigned char *)line + n);
        if (k >= 0)
            kind = r->patterns->v[k];
        matcher_clear(&m);
    }
    if (kind == NULL)
        return nr_strdup(line);
    obuf_add_marker(&o, marker_of(r), kind);
    o.b[o.len] = '\0';
    return o.b;
}
