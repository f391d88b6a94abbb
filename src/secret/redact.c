/* redact.c - replace the lines of device output that carry a keyword.
 *
 * One pass: each line is found with memchr, searched for the patterns, and
 * unredacted lines are copied in runs (one memcpy per run of kept lines,
 * not per line).  The patterns are folded to lower case once per call and
 * indexed by their first byte, so a position in the text costs one table
 * look-up unless some pattern could start there. */
#include "netraven/secret.h"

#include <stdlib.h>
#include <string.h>

#define MARK     NR_REDACTED_LINE
#define MARK_LEN (sizeof(MARK) - 1)

static inline unsigned char fold(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

struct matcher {
    int                   head[256];  /* first pattern starting with byte, -1 none */
    int                  *next;       /* next pattern with the same first byte */
    unsigned char       **pat;        /* folded copies */
    size_t               *plen;
    size_t                minlen;     /* shortest pattern; 0 when there are none */
};

static void matcher_init(struct matcher *m, const struct nr_strlist *patterns)
{
    size_t n = patterns ? patterns->n : 0;

    memset(m, 0, sizeof(*m));
    for (int c = 0; c < 256; c++)
        m->head[c] = -1;
    if (n == 0)
        return;
    m->next = nr_calloc(n, sizeof(*m->next));
    m->pat = nr_calloc(n, sizeof(*m->pat));
    m->plen = nr_calloc(n, sizeof(*m->plen));
    /* insert in reverse so that each chain keeps the configured order */
    for (size_t i = n; i-- > 0;) {
        const char *p = patterns->v[i];
        size_t len = p ? strlen(p) : 0;
        unsigned char *f;

        if (len == 0)
            continue;
        f = nr_malloc(len);
        for (size_t j = 0; j < len; j++)
            f[j] = fold((unsigned char)p[j]);
        m->pat[i] = f;
        m->plen[i] = len;
        m->next[i] = m->head[f[0]];
        m->head[f[0]] = (int)i;
        if (m->minlen == 0 || len < m->minlen)
            m->minlen = len;
    }
}

static void matcher_clear(struct matcher *m, const struct nr_strlist *patterns)
{
    size_t n = patterns ? patterns->n : 0;

    for (size_t i = 0; i < n; i++)
        free(m->pat[i]);
    free(m->pat);
    free(m->plen);
    free(m->next);
}

/* True if [s, e) contains a pattern. */
static bool matcher_hit(const struct matcher *m, const unsigned char *s,
                        const unsigned char *e)
{
    size_t len = (size_t)(e - s);

    if (m->minlen == 0 || len < m->minlen)
        return false;
    for (const unsigned char *p = s, *last = e - m->minlen; p <= last; p++) {
        for (int k = m->head[fold(*p)]; k >= 0; k = m->next[k]) {
            size_t pl = m->plen[k];
            const unsigned char *q = m->pat[k];
            size_t j = 1;

            if ((size_t)(e - p) < pl)
                continue;
            while (j < pl && fold(p[j]) == q[j])
                j++;
            if (j == pl)
                return true;
        }
    }
    return false;
}

struct obuf {
    char  *b;
    size_t len, cap;
};

static void obuf_add(struct obuf *o, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (o->cap - o->len < n + 1) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap - o->len < n + 1)
            cap *= 2;
        o->b = nr_realloc(o->b, cap);
        o->cap = cap;
    }
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

int nr_redact(const char *text, size_t len, const struct nr_strlist *patterns,
              char **out, size_t *out_len, size_t *nlines_redacted)
{
    const unsigned char *t = (const unsigned char *)text;
    const unsigned char *end = t + len, *line, *keep;
    struct matcher m;
    struct obuf o = { 0 };
    size_t nred = 0;

    if (out == NULL || (text == NULL && len > 0))
        return NR_EINVAL;

    matcher_init(&m, patterns);
    /* Redaction usually shrinks the text; start at its size plus a little
     * so that the common case never reallocates. */
    o.cap = len + len / 64 + 64;
    o.b = nr_malloc(o.cap);

    keep = t;
    for (line = t; m.minlen && line < end;) {
        const unsigned char *nl = memchr(line, '\n', (size_t)(end - line));
        const unsigned char *ce = nl ? nl : end;   /* content end */
        const unsigned char *next = nl ? nl + 1 : end;

        /* "\r\n" is kept whole; so is a '\r' that ends the text */
        if (ce > line && ce[-1] == '\r')
            ce--;
        if (matcher_hit(&m, line, ce)) {
            obuf_add(&o, keep, (size_t)(line - keep));
            obuf_add(&o, MARK, MARK_LEN);
            obuf_add(&o, ce, (size_t)(next - ce));   /* the ending as it was */
            keep = next;
            nred++;
        }
        line = next;
    }
    obuf_add(&o, keep, (size_t)(end - keep));
    o.b[o.len] = '\0';
    matcher_clear(&m, patterns);

    *out = o.b;
    if (out_len != NULL)
        *out_len = o.len;
    if (nlines_redacted != NULL)
        *nlines_redacted = nred;
    return NR_OK;
}

char *nr_redact_line(const char *line, const struct nr_strlist *patterns)
{
    for (size_t i = 0; patterns != NULL && i < patterns->n; i++)
        if (patterns->v[i][0] != '\0' && nr_strcasestr(line, patterns->v[i]) != NULL)
            return nr_strdup(NR_REDACTED_LINE);
    return nr_strdup(line);
}
