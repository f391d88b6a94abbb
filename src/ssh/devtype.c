/*
 * devtype.c - the device-type table (netraven/devtypes.def): lookup by
 * name and alias, and the removal of volatile lines from a configuration.
 *
 * Volatile patterns are fnmatch(3) patterns of whole lines.  Most start
 * with a literal character ("! Last configuration change at *"), so a line
 * is first checked against the set of those first characters: a typical
 * configuration line costs one table look-up, not one fnmatch() per
 * pattern.  A leading bracket expression ("[*.0-9A-Z]...", the syslog
 * shapes) adds the bytes it accepts; a pattern that starts with a
 * wildcard makes every line a candidate.
 */
#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "netraven/ssh.h"

#define NR_CMDS(...)     ((const char *const[]){ __VA_ARGS__, NULL })
#define NR_PAGERS(...)   ((const char *const[]){ __VA_ARGS__, NULL })
#define NR_VOLATILE(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NR_ALIASES(...)  ((const char *const[]){ __VA_ARGS__, NULL })
#define NR_WORDS(...)    ((const char *const[]){ __VA_ARGS__, NULL })

static const struct nr_devtype devtypes[] = {
#define NR_DEVTYPE(tname, ...) { .name = #tname, .id = NR_DEVTYPE_##tname, __VA_ARGS__ },
#define NR_DEVTYPE_FALLBACK(tname, ...) { .name = tname, .id = NR_DEVTYPE_COUNT, __VA_ARGS__ },
#include "netraven/devtypes.def"
#undef NR_DEVTYPE_FALLBACK
#undef NR_DEVTYPE
};

#define NTYPES NR_ARRAY_LEN(devtypes)

static const struct nr_devtype *devtype_exact(const char *name, size_t n)
{
    for (size_t i = 0; i < NTYPES; i++)
        if (strlen(devtypes[i].name) == n && strncmp(devtypes[i].name, name, n) == 0)
            return &devtypes[i];
    for (size_t i = 0; i < NTYPES; i++)
        for (const char *const *a = devtypes[i].aliases; a && *a; a++)
            if (strlen(*a) == n && strncmp(*a, name, n) == 0)
                return &devtypes[i];
    return NULL;
}

const struct nr_devtype *nr_devtype_find(const char *name)
{
    static const char *const suffixes[] = { "_ssh", "_telnet" };
    const struct nr_devtype *t;
    size_t n;

    if (name == NULL)
        return &devtypes[NTYPES - 1];
    n = strlen(name);
    if ((t = devtype_exact(name, n)) != NULL)
        return t;
    for (size_t i = 0; i < NR_ARRAY_LEN(suffixes); i++) {
        size_t m = strlen(suffixes[i]);

        if (n > m && strcmp(name + n - m, suffixes[i]) == 0 &&
            (t = devtype_exact(name, n - m)) != NULL)
            return t;
    }
    return &devtypes[NTYPES - 1];
}

const struct nr_devtype *nr_devtype_table(size_t *n)
{
    *n = NTYPES;
    return devtypes;
}

char *nr_devtype_commands(const struct nr_devtype *type)
{
    size_t n = 1;
    char *s, *p;

    for (const char *const *c = type->config_cmds; *c; c++)
        n += strlen(*c) + 2;
    p = s = nr_malloc(n);
    for (const char *const *c = type->config_cmds; *c; c++) {
        size_t k = strlen(*c);

        if (c != type->config_cmds) {
            memcpy(p, "; ", 2);
            p += 2;
        }
        memcpy(p, *c, k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* ---- volatile lines ----------------------------------------------------------- */

/* Per row: which first bytes can start a volatile line (any byte when a
 * pattern starts with a wildcard or a bracket expression).  Built once. */
struct vol_index {
    unsigned char first[256];   /* 1: some pattern may match a line starting so */
    bool          any;          /* the row has patterns */
};

static struct vol_index vol_index[NTYPES];
static pthread_once_t vol_once = PTHREAD_ONCE_INIT;

/* Mark the bytes a pattern's leading bracket expression ("[*.0-9A-Z]")
 * accepts; false when it is one this does not read (negated, classes like
 * [:digit:], unterminated): then every byte may start a match. */
static bool vol_bracket(unsigned char *first, const char *p)
{
    const unsigned char *s = (const unsigned char *)p + 1;

    if (*s == '!' || *s == '^' || *s == ']')
        return false;
    for (; *s && *s != ']'; s++) {
        if (*s == '[' || *s == '\\')
            return false;
        if (s[1] == '-' && s[2] && s[2] != ']') {
            for (unsigned c = s[0]; c <= s[2]; c++)
                first[c] = 1;
            s += 2;
        } else {
            first[*s] = 1;
        }
    }
    return *s == ']';
}

static void vol_build(void)
{
    for (size_t i = 0; i < NTYPES; i++) {
        struct vol_index *x = &vol_index[i];

        for (const char *const *p = devtypes[i].volatile_lines; p && *p; p++) {
            unsigned char c = (unsigned char)(*p)[0];

            x->any = true;
            if (c == '[' && vol_bracket(x->first, *p))
                continue;
            if (c == '*' || c == '?' || c == '[' || c == '\\' || c == '\0')
                memset(x->first, 1, sizeof(x->first));
            else
                x->first[c] = 1;
        }
    }
}

static bool is_volatile(const struct nr_devtype *type, const char *line)
{
    for (const char *const *p = type->volatile_lines; *p; p++)
        if (fnmatch(*p, line, 0) == 0)
            return true;
    return false;
}

size_t nr_devtype_strip_volatile(const struct nr_devtype *type, char *text, size_t len,
                                 size_t *nremoved)
{
    const struct vol_index *x;
    size_t r = 0, w = 0, removed = 0;

    pthread_once(&vol_once, vol_build);
    x = &vol_index[type - devtypes];
    if (nremoved)
        *nremoved = 0;
    if (!x->any || len == 0)
        return len;
    while (r < len) {
        char *nl = memchr(text + r, '\n', len - r);
        size_t end = nl ? (size_t)(nl - text) : len;       /* content end */
        size_t next = nl ? end + 1 : len;
        size_t ce = end > r && text[end - 1] == '\r' ? end - 1 : end;
        bool drop = false;

        if (x->first[(unsigned char)text[r]]) {
            char saved = text[ce];

            text[ce] = '\0';    /* the line as a string, for fnmatch */
            drop = is_volatile(type, text + r);
            text[ce] = saved;
        }
        if (drop) {
            removed++;
        } else {
            if (w != r)
                memmove(text + w, text + r, next - r);
            w += next - r;
        }
        r = next;
    }
    if (w < len)
        text[w] = '\0';
    if (nremoved)
        *nremoved = removed;
    return w;
}
