/*
 * config.c - the worker's configuration: the key table built from
 * keys.def, one loader that walks it (defaults, YAML files, environment),
 * typed validation, printing with secrets masked, and the names of log
 * levels and types.
 *
 * Every source goes through the same apply(): the defaults in keys.def are
 * parsed as text like a YAML scalar or an environment variable, so a bad
 * default fails the unit test instead of hiding.
 */
#include "netraven/config.h"
#include "netraven/redis.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

/* ------------------------------------------------------------------ */
/* Names                                                                */

/* A name accepted for an ENUM or ROUTE key.  Synonyms are accepted on
 * input but never printed nor offered in error messages. */
struct choice {
    const char *name;
    unsigned    value;
    bool        synonym;
};

/* Indexed by enum nr_log_level for the canonical names. */
static const struct choice level_choices[] = {
    { "debug",    NR_LOG_DEBUG,    false },
    { "info",     NR_LOG_INFO,     false },
    { "warning",  NR_LOG_WARNING,  false },
    { "error",    NR_LOG_ERROR,    false },
    { "critical", NR_LOG_CRITICAL, false },
    { "warn",     NR_LOG_WARNING,  true  },  /* Python's logging takes it */
    { NULL, 0, false }
};

static const struct choice format_choices[] = {
    { "human", NR_LOG_FORMAT_HUMAN, false },
    { "json",  NR_LOG_FORMAT_JSON,  false },
    { NULL, 0, false }
};

static const struct choice hostkey_choices[] = {
    { "accept-new", NR_HOSTKEY_ACCEPT_NEW, false },
    { "strict",     NR_HOSTKEY_STRICT,     false },
    { "off",        NR_HOSTKEY_OFF,        false },
    { NULL, 0, false }
};

static const struct choice sink_choices[] = {
    { "stdout", NR_SINK_STDOUT, false },
    { "file",   NR_SINK_FILE,   false },
    { "db",     NR_SINK_DB,     false },
    { "redis",  NR_SINK_REDIS,  false },
    { NULL, 0, false }
};

static const char *const type_names[NR_LOG_TYPE_COUNT] = {
    [NR_LOG_JOB]        = "job",
    [NR_LOG_CONNECTION] = "connection",
    [NR_LOG_SESSION]    = "session",
    [NR_LOG_SYSTEM]     = "system",
};

static int choice_parse(const struct choice *c, const char *s, unsigned *out)
{
    for (; c->name != NULL; c++) {
        if (strcasecmp(c->name, s) == 0) {
            *out = c->value;
            return 0;
        }
    }
    return NR_EINVAL;
}

static const char *choice_name(const struct choice *c, unsigned v)
{
    for (; c->name != NULL; c++)
        if (!c->synonym && c->value == v)
            return c->name;
    return "unknown";
}

const char *nr_log_level_name(enum nr_log_level l)
{
    return choice_name(level_choices, (unsigned)l);
}

const char *nr_log_type_name(enum nr_log_type t)
{
    return (unsigned)t < NR_LOG_TYPE_COUNT ? type_names[t] : "unknown";
}

int nr_log_level_parse(const char *s, enum nr_log_level *out)
{
    unsigned v;

    if (s == NULL || choice_parse(level_choices, s, &v) < 0)
        return NR_EINVAL;
    *out = (enum nr_log_level)v;
    return 0;
}

/* ------------------------------------------------------------------ */
/* A small string builder                                               */

struct sbuf {
    char  *p;
    size_t len, cap;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
    if (n > PTRDIFF_MAX)        /* no string is this long; -O3 asks */
        abort();
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = nr_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s)
{
    sb_addn(b, s, strlen(s));
}

/* The built string, owned by the caller; "" when nothing was added. */
static char *sb_take(struct sbuf *b)
{
    char *p = b->p ? b->p : nr_strdup("");

    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                 */

/* Mask the value of every libpq "password=" parameter in s (a URL query
 * or a keyword/value conninfo string), appending the result to b. */
static void mask_password_params(struct sbuf *b, const char *s)
{
    static const char kw[] = "password=";
    const size_t kwlen = sizeof(kw) - 1;
    const char *p = s;

    while (*p) {
        bool at_param = p == s || p[-1] == '?' || p[-1] == '&' ||
                        p[-1] == ';' || isspace((unsigned char)p[-1]);
        if (!at_param || strncasecmp(p, kw, kwlen) != 0) {
            sb_addn(b, p, 1);
            p++;
            continue;
        }
        sb_addn(b, p, kwlen);
        p += kwlen;
        if (*p == '\'') {
            /* a quoted conninfo value: skip to the closing quote */
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p == '\'')
                p++;
        } else {
            while (*p && *p != '&' && *p != '#' && !isspace((unsigned char)*p))
                p++;
        }
        sb_adds(b, "****");
    }
}

char *nr_config_worker_name(const struct nr_config *cfg, const char *name)
{
    char host[256];

    if (name != NULL && name[0] != '\0')
        return nr_strdup(name);
    if (cfg != NULL && cfg->worker.consumer_name != NULL && cfg->worker.consumer_name[0] != '\0')
        return nr_strdup(cfg->worker.consumer_name);
    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "unknown");
    host[sizeof(host) - 1] = '\0';
    return nr_asprintf("%s:%ld", host, (long)getpid());
}

char *nr_config_mask_url(const char *url)
{
    struct sbuf b = { 0 };
    const char *rest = url;
    const char *sep;

    if (url == NULL)
        return NULL;
    /* Redis URLs: the redis module's reading (redis-py's), so that what is
     * masked is what the worker and NetRaven's API send as a password */
    if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0 ||
        strncmp(url, "unix://", 7) == 0)
        return nr_redis_url_mask(url);
    sep = strstr(url, "://");
    if (sep != NULL) {
        const char *auth = sep + 3;
        /* The last '@' ends the user info: a password that was not
         * percent-encoded may hold '@', '/' or '?', and masking a little
         * too much is the safe side. */
        const char *at = strrchr(auth, '@');
        if (at != NULL) {
            size_t ulen = (size_t)(at - auth), c = 0;

            while (c < ulen && auth[c] != ':')
                c++;
            if (c < ulen) {             /* user:password: keep "user:" */
                sb_addn(&b, url, (size_t)(auth - url) + c + 1);
                sb_adds(&b, "****");
                rest = at;
            }
        }
    }
    mask_password_params(&b, rest);
    return sb_take(&b);
}

char *nr_config_libpq_url(const char *url)
{
    const char *sep, *plus;

    if (url == NULL)
        return NULL;
    /* SQLAlchemy's "postgresql+psycopg2://" names a Python driver; libpq
     * knows only the scheme before the '+'. */
    sep = strstr(url, "://");
    plus = sep ? memchr(url, '+', (size_t)(sep - url)) : NULL;
    if (plus == NULL)
        return nr_strdup(url);
    return nr_asprintf("%.*s%s", (int)(plus - url), url, sep);
}

/* Validators of the check column: NULL when v is fine, else the reason,
 * worded to follow the (masked) value in an error message. */
static const char *check_pg_url(const char *v)
{
    size_t n = strcspn(v, "+:");
    const char *p = v + n;

    if (!((n == 10 && strncmp(v, "postgresql", n) == 0) ||
          (n == 8 && strncmp(v, "postgres", n) == 0)))
        goto bad;
    if (*p == '+') {
        size_t d = strspn(p + 1, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (d == 0)
            goto bad;
        p += 1 + d;
    }
    if (strncmp(p, "://", 3) == 0)
        return NULL;
bad:
    return "is not a PostgreSQL URL (postgresql://user:password@host:port/dbname)";
}

/* A redaction marker replaces one line: it must not make two. */
static const char *check_single_line(const char *v)
{
    return strpbrk(v, "\r\n") ? "is not a single line" : NULL;
}

static const char *check_redis_url(const char *v)
{
    if (strncmp(v, "redis://", 8) == 0 || strncmp(v, "rediss://", 9) == 0 ||
        strncmp(v, "unix://", 7) == 0)
        return NULL;
    return "is not a Redis URL (redis://[:password@]host:port/db)";
}

/* "host:port", ":port" or "[v6]:port", port 1-65535; "" is off. */
static const char *check_listen(const char *v)
{
    const char *colon = strrchr(v, ':'), *p;

    if (*v == '\0')
        return NULL;
    if (colon == NULL || (v[0] == '[' && (colon == v || colon[-1] != ']')) ||
        (v[0] != '[' && memchr(v, ':', (size_t)(colon - v)) != NULL))
        return "is not host:port, :port or [address]:port";
    for (p = colon + 1; *p >= '0' && *p <= '9'; p++)
        ;
    if (p == colon + 1 || *p != '\0' || p - colon > 6 || atol(colon + 1) < 1 ||
        atol(colon + 1) > 65535)
        return "has no port from 1 to 65535";
    return NULL;
}

/* ------------------------------------------------------------------ */
/* The key table                                                        */

enum ctype { CT_INT, CT_LONG, CT_DOUBLE, CT_BOOL, CT_STRING, CT_STRLIST,
             CT_ENUM, CT_ROUTE, CT_UINT /* only for the type check */ };

#define NR_CK_SENSITIVE 0x01u
#define NR_CK_URL       0x02u
#define NR_CK_OPTIONAL  0x04u
#define NR_CK_JOIN      0x08u
#define NR_CK_FILEMAP   0x10u

struct key {
    const char          *name;
    enum ctype           type;
    size_t               off;
    const char          *def;
    double               min, max;
    unsigned             flags;
    const struct choice *choices;
    const char        *(*check)(const char *v);
    const char          *alias;
};

#define NR_CONFIG_KEY(k, t, f, d, lo, hi, fl, ch, ck, al) \
    { k, CT_##t, offsetof(struct nr_config, f), d, lo, hi, fl, ch, ck, al },
static const struct key keys[] = {
#include "keys.def"
};
#undef NR_CONFIG_KEY

/* A row whose type does not match its field's C type would write the wrong
 * number of bytes, so each row is checked at compile time.  Enums of
 * non-negative values are unsigned int under GCC and Clang, as are routes. */
#define FIELD_CTYPE(f) _Generic(((struct nr_config *)0)->f, \
    int: CT_INT, long: CT_LONG, double: CT_DOUBLE, bool: CT_BOOL,  \
    char *: CT_STRING, struct nr_strlist: CT_STRLIST,              \
    unsigned int: CT_UINT, default: -1)
#define TYPE_MATCHES(t, f) \
    (FIELD_CTYPE(f) == CT_##t || \
     (FIELD_CTYPE(f) == CT_UINT && (CT_##t == CT_ENUM || CT_##t == CT_ROUTE)))
#define NR_CONFIG_KEY(k, t, f, d, lo, hi, fl, ch, ck, al) \
    _Static_assert(TYPE_MATCHES(t, f), "keys.def: " k ": field is not of type " #t);
#include "keys.def"
#undef NR_CONFIG_KEY

static const struct key *key_find(const char *name)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* Namespaces that only netraven-worker reads: a name below one of them
 * that the table does not know is a mistake (a misspelt device type), not
 * a key of another NetRaven service, so it is refused rather than ignored. */
static const char *const owned_prefixes[] = { "worker.device_types." };

/* NULL if name may be ignored; else why it is refused (static text). */
static const char *owned_unknown(const char *name)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(owned_prefixes); i++)
        if (strncmp(name, owned_prefixes[i], strlen(owned_prefixes[i])) == 0)
            return "not a key: worker.device_types takes <device type>.connection_timeout, "
                   "<device type>.command_timeout and <device type>.keep_volatile for the "
                   "types of the device-type table (cisco_ios, juniper_junos, fortinet, ...; "
                   "see check-config)";
    return NULL;
}

static const struct key *key_find_alias(const char *var)
{
    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++)
        if (keys[i].alias != NULL && strcmp(keys[i].alias, var) == 0)
            return &keys[i];
    return NULL;
}

static void *field(struct nr_config *cfg, const struct key *k)
{
    return (char *)cfg + k->off;
}

static const void *cfield(const struct nr_config *cfg, const struct key *k)
{
    return (const char *)cfg + k->off;
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/* Where a value came from: a file and line, a variable, or keys.def. */
struct origin {
    const char   *file;
    unsigned long line;
    const char   *var;
};

static char *origin_text(const struct origin *o)
{
    if (o->var != NULL)
        return nr_strdup(o->var);
    if (o->file != NULL)
        return nr_asprintf("%s:%lu", o->file, o->line);
    return nr_strdup("keys.def default");
}

/* Set *errstr to "<origin>: <key>: <message>" and return NR_EINVAL. */
static int fail(char **errstr, const struct origin *o, const struct key *k,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char **errstr, const struct origin *o, const struct key *k,
                const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL, *where;

    if (errstr == NULL)
        return NR_EINVAL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    where = origin_text(o);
    *errstr = nr_asprintf("%s: %s: %s", where, k->name, msg ? msg : "invalid value");
    free(where);
    free(msg);
    return NR_EINVAL;
}

/* A value as it may appear in an error message: quoted, shortened, with
 * control characters replaced; secrets never, URLs with the password
 * masked (and not at all when they do not even look like a URL, since
 * then nothing tells where a password would be). */
static char *show(const struct key *k, const char *text)
{
    enum { SHOW_MAX = 80 };
    struct sbuf b = { 0 };
    char *masked = NULL;
    size_t n;

    if (k->flags & NR_CK_SENSITIVE)
        return nr_strdup("the value");
    if (k->flags & NR_CK_URL) {
        if (strstr(text, "://") == NULL)
            return nr_strdup("the value");
        masked = nr_config_mask_url(text);
        text = masked;
    }
    sb_adds(&b, "\"");
    for (n = 0; text[n] && n < SHOW_MAX; n++) {
        char c = iscntrl((unsigned char)text[n]) ? '?' : text[n];
        sb_addn(&b, &c, 1);
    }
    sb_adds(&b, text[n] ? "...\"" : "\"");
    free(masked);
    return sb_take(&b);
}

/* The accepted names of a choice table, for messages: "a, b, c". */
static char *choice_list(const struct choice *c)
{
    struct sbuf b = { 0 };

    for (; c->name != NULL; c++) {
        if (c->synonym)
            continue;
        if (b.len)
            sb_adds(&b, ", ");
        sb_adds(&b, c->name);
    }
    return sb_take(&b);
}

/* ------------------------------------------------------------------ */
/* Parsing values                                                       */

/* A value from any source.  Exactly one of text and list is set. */
struct val {
    const char              *text;
    const struct nr_strlist *list;    /* a YAML sequence of scalars */
    bool                     null;    /* YAML null, or an empty variable */
};

static char *trimmed(const char *s)
{
    const char *e;

    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    return nr_strndup(s, (size_t)(e - s));
}

/* Split the list forms accepted from variables and scalars: "a, b" and
 * "[a, 'b', \"c\"]".  Items are trimmed; empty items are dropped, since an
 * empty redaction pattern would match every line. */
static void split_list(const char *s, struct nr_strlist *out)
{
    char *t = trimmed(s);
    char *p = t;
    size_t n = strlen(t);
    struct sbuf item = { 0 };

    if (n >= 2 && t[0] == '[' && t[n - 1] == ']') {
        t[n - 1] = '\0';
        p = t + 1;
    }
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            for (; *p && *p != q; p++) {
                if (q == '"' && *p == '\\' && p[1])
                    p++;
                sb_addn(&item, p, 1);
            }
            if (*p == q)
                p++;
            while (*p && *p != ',')     /* junk after the closing quote */
                p++;
        } else {
            const char *e = p + strcspn(p, ",");
            const char *end = e;
            while (end > p && isspace((unsigned char)end[-1]))
                end--;
            sb_addn(&item, p, (size_t)(end - p));
            p = (char *)e;
        }
        if (item.len)
            nr_strlist_push(out, item.p);
        item.len = 0;
        if (*p == ',')
            p++;
    }
    free(item.p);
    free(t);
}

/* The items of v as a list: a YAML sequence, else the text split. */
static void val_items(const struct val *v, struct nr_strlist *out)
{
    if (v->list != NULL) {
        for (size_t i = 0; i < v->list->n; i++) {
            char *t = trimmed(v->list->v[i]);
            if (*t)
                nr_strlist_push(out, t);
            free(t);
        }
    } else if (!v->null) {
        split_list(v->text, out);
    }
}

static bool parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[]  = { "false", "no", "off", "0" };
    char *t = trimmed(text);
    bool ok = false;

    for (size_t i = 0; i < NR_ARRAY_LEN(yes) && !ok; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = true;
            ok = true;
        } else if (strcasecmp(t, no[i]) == 0) {
            *out = false;
            ok = true;
        }
    }
    free(t);
    return ok;
}

/* Text that reads back as d, short for the usual values: "10", "0.1",
 * "1.5" rather than "10.000000"; 17 digits only when 15 do not suffice. */
static void fmt_double(char buf[32], double d)
{
    snprintf(buf, 32, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, 32, "%.17g", d);
}

/* A number's text in a bounds message.  It passed the number syntax check,
 * so it holds no secret; only a SENSITIVE key's value is withheld. */
static const char *num_text(const struct key *k, const char *t)
{
    return (k->flags & NR_CK_SENSITIVE) ? "the value" : t;
}

static int apply_integer(struct nr_config *cfg, const struct key *k,
                         const struct val *v, const struct origin *o, char **errstr)
{
    char *t = trimmed(v->text);
    const char *digits = t + (t[0] == '+' || t[0] == '-');
    long long n;
    int rc = 0;

    if (*digits == '\0' || digits[strspn(digits, "0123456789")] != '\0') {
        char *s = show(k, v->text);
        rc = fail(errstr, o, k, "%s is not an integer", s);
        free(s);
        goto out;
    }
    errno = 0;
    n = strtoll(t, NULL, 10);
    if ((errno == ERANGE && t[0] == '-') || (errno != ERANGE && (double)n < k->min)) {
        rc = fail(errstr, o, k, "%s is below the minimum %lld",
                  num_text(k, t), (long long)k->min);
        goto out;
    }
    if (errno == ERANGE || (double)n > k->max) {
        rc = fail(errstr, o, k, "%s is above the maximum %lld",
                  num_text(k, t), (long long)k->max);
        goto out;
    }
    if (k->type == CT_INT)
        *(int *)field(cfg, k) = (int)n;
    else
        *(long *)field(cfg, k) = (long)n;
out:
    free(t);
    return rc;
}

static int apply_double(struct nr_config *cfg, const struct key *k,
                        const struct val *v, const struct origin *o, char **errstr)
{
    char *t = trimmed(v->text);
    char *end = NULL;
    char bound[32];
    double d = 0;
    int rc = 0;

    /* only plain decimal notation: no hex floats, inf or nan */
    if (*t && t[strspn(t, "0123456789+-.eE")] == '\0') {
        errno = 0;
        d = strtod(t, &end);
    }
    if (end == NULL || end == t || *end != '\0' || errno == ERANGE || !isfinite(d)) {
        char *s = show(k, v->text);
        rc = fail(errstr, o, k, "%s is not a number", s);
        free(s);
    } else if (d < k->min) {
        fmt_double(bound, k->min);
        rc = fail(errstr, o, k, "%s is below the minimum %s", num_text(k, t), bound);
    } else if (d > k->max) {
        fmt_double(bound, k->max);
        rc = fail(errstr, o, k, "%s is above the maximum %s", num_text(k, t), bound);
    } else {
        *(double *)field(cfg, k) = d;
    }
    free(t);
    return rc;
}

static char *join(const struct nr_strlist *l, const char *sep)
{
    struct sbuf b = { 0 };

    for (size_t i = 0; i < l->n; i++) {
        if (i)
            sb_adds(&b, sep);
        sb_adds(&b, l->v[i]);
    }
    return sb_take(&b);
}

static int apply_string(struct nr_config *cfg, const struct key *k,
                        const struct val *v, const struct origin *o, char **errstr)
{
    char **dst = field(cfg, k);
    char *s = NULL;
    const char *why;
    size_t len;

    if (v->list != NULL) {
        s = join(v->list, ",");
    } else if (!v->null) {
        const char *p = v->text;
        while (isspace((unsigned char)*p))
            p++;
        if ((k->flags & NR_CK_JOIN) && *p == '[') {
            /* NETRAVEN_SSH__LEGACY_KEX='["a", "b"]' means the list */
            struct nr_strlist l = { 0 };
            split_list(p, &l);
            s = join(&l, ",");
            nr_strlist_clear(&l);
        } else {
            s = nr_strdup(v->text);
        }
    }

    if ((s == NULL || *s == '\0') && (k->flags & NR_CK_OPTIONAL)) {
        free(s);
        free(*dst);
        *dst = NULL;
        return 0;
    }
    if (s == NULL)
        s = nr_strdup("");
    len = strlen(s);
    if ((double)len < k->min) {
        free(s);
        return fail(errstr, o, k, "must not be empty");
    }
    if ((double)len > k->max) {
        char *sh = show(k, s);
        int rc = fail(errstr, o, k, "%s is longer than %lld characters",
                      sh, (long long)k->max);
        free(sh);
        free(s);
        return rc;
    }
    if (k->check != NULL && (why = k->check(s)) != NULL) {
        char *sh = show(k, s);
        int rc = fail(errstr, o, k, "%s %s", sh, why);
        free(sh);
        free(s);
        return rc;
    }
    free(*dst);
    *dst = s;
    return 0;
}

static int apply_strlist(struct nr_config *cfg, const struct key *k,
                         const struct val *v, const struct origin *o, char **errstr)
{
    struct nr_strlist *dst = field(cfg, k);
    struct nr_strlist l = { 0 };

    val_items(v, &l);
    if ((double)l.n < k->min) {
        nr_strlist_clear(&l);
        return fail(errstr, o, k, "needs at least %lld item(s)", (long long)k->min);
    }
    if ((double)l.n > k->max) {
        size_t n = l.n;
        nr_strlist_clear(&l);
        return fail(errstr, o, k, "has %zu items, more than the maximum %lld",
                    n, (long long)k->max);
    }
    nr_strlist_clear(dst);
    *dst = l;
    return 0;
}

static int apply_enum(struct nr_config *cfg, const struct key *k,
                      const struct val *v, const struct origin *o, char **errstr)
{
    char *t = trimmed(v->text);
    unsigned e;
    int rc = 0;

    if (choice_parse(k->choices, t, &e) == 0) {
        *(unsigned *)field(cfg, k) = e;
    } else {
        char *s = show(k, v->text), *names = choice_list(k->choices);
        rc = fail(errstr, o, k, "%s is not one of %s", s, names);
        free(names);
        free(s);
    }
    free(t);
    return rc;
}

static int apply_route(struct nr_config *cfg, const struct key *k,
                       const struct val *v, const struct origin *o, char **errstr)
{
    struct nr_strlist l = { 0 };
    unsigned bits = NR_SINK_STDOUT;    /* always (docs/netraven.md §4.2) */
    int rc = 0;

    val_items(v, &l);
    for (size_t i = 0; i < l.n; i++) {
        unsigned bit;
        if (choice_parse(k->choices, l.v[i], &bit) < 0) {
            char *s = show(k, l.v[i]), *names = choice_list(k->choices);
            rc = fail(errstr, o, k, "%s is not a sink (%s)", s, names);
            free(names);
            free(s);
            break;
        }
        bits |= bit;
    }
    nr_strlist_clear(&l);
    if (rc == 0)
        *(unsigned *)field(cfg, k) = bits;
    return rc;
}

/* Parse v for key k and store it in cfg; on error cfg's field is left as
 * it was and *errstr says why. */
static int apply(struct nr_config *cfg, const struct key *k,
                 const struct val *v, const struct origin *o, char **errstr)
{
    bool takes_list = k->type == CT_STRLIST || k->type == CT_ROUTE ||
                      (k->type == CT_STRING && (k->flags & NR_CK_JOIN));

    if (v->list != NULL && !takes_list)
        return fail(errstr, o, k, "expected a single value, found a list");
    if (v->null && k->type == CT_DOUBLE && (k->flags & NR_CK_OPTIONAL)) {
        *(double *)field(cfg, k) = NAN;     /* unset */
        return 0;
    }
    if (v->null && (k->type == CT_INT || k->type == CT_LONG ||
                    k->type == CT_DOUBLE || k->type == CT_BOOL ||
                    k->type == CT_ENUM))
        return fail(errstr, o, k, "has no value");

    switch (k->type) {
    case CT_INT:
    case CT_LONG:
        return apply_integer(cfg, k, v, o, errstr);
    case CT_DOUBLE:
        return apply_double(cfg, k, v, o, errstr);
    case CT_BOOL: {
        bool b;
        if (!parse_bool(v->text, &b)) {
            char *s = show(k, v->text);
            int rc = fail(errstr, o, k,
                          "%s is not a boolean (true/false, yes/no, on/off, 1/0)", s);
            free(s);
            return rc;
        }
        *(bool *)field(cfg, k) = b;
        return 0;
    }
    case CT_STRING:
        return apply_string(cfg, k, v, o, errstr);
    case CT_STRLIST:
        return apply_strlist(cfg, k, v, o, errstr);
    case CT_ENUM:
        return apply_enum(cfg, k, v, o, errstr);
    case CT_ROUTE:
        return apply_route(cfg, k, v, o, errstr);
    case CT_UINT:
        break;
    }
    return fail(errstr, o, k, "has a type the loader does not know");
}

static int apply_defaults(struct nr_config *cfg, char **errstr)
{
    const struct origin o = { NULL, 0, NULL };

    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++) {
        struct val v = { .text = keys[i].def ? keys[i].def : "",
                         .null = keys[i].def == NULL };
        int rc = apply(cfg, &keys[i], &v, &o, errstr);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* YAML                                                                 */

/* Aliases can make a small file expand into a huge or cyclic tree. */
#define WALK_MAX_DEPTH 64
#define WALK_MAX_NODES 100000

struct walk {
    struct nr_config *cfg;
    yaml_document_t  *doc;
    const char       *file;
    char            **errstr;
    unsigned long     nodes;
};

static const char *scalar_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* null, ~ and nothing at all are YAML's null; a quoted "null" is text. */
static bool scalar_is_null(const yaml_node_t *n)
{
    const char *s = scalar_text(n);

    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return *s == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int walk_too_big(struct walk *w, const yaml_node_t *n, int depth)
{
    if (++w->nodes <= WALK_MAX_NODES && depth <= WALK_MAX_DEPTH)
        return 0;
    if (w->errstr)
        *w->errstr = nr_asprintf("%s:%lu: too deeply nested or too many aliases",
                                 w->file, (unsigned long)n->start_mark.line + 1);
    return NR_EINVAL;
}

/* NetRaven's own files write logging.file as a mapping
 * {enabled, path, level, format, rotation}; the worker takes the path when
 * enabled is not false, and ignores the rest. */
static int walk_filemap(struct walk *w, const struct key *k, yaml_node_t *n,
                        const struct origin *o)
{
    const char *path = NULL;
    bool enabled = true;

    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
         pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(w->doc, pr->value);
        if (kn == NULL || vn == NULL || kn->type != YAML_SCALAR_NODE)
            continue;
        if (strcmp(scalar_text(kn), "enabled") == 0) {
            if (vn->type != YAML_SCALAR_NODE || !parse_bool(scalar_text(vn), &enabled))
                return fail(w->errstr, o, k, "enabled is not a boolean");
        } else if (strcmp(scalar_text(kn), "path") == 0) {
            if (vn->type != YAML_SCALAR_NODE)
                return fail(w->errstr, o, k, "path is not a single value");
            path = scalar_is_null(vn) ? NULL : scalar_text(vn);
        }
    }
    struct val v = { .text = path ? path : "", .null = !enabled || path == NULL };
    return apply(w->cfg, k, &v, o, w->errstr);
}

static int walk_mapping(struct walk *w, yaml_node_t *n, const char *path, int depth);

static int walk_node(struct walk *w, yaml_node_t *n, const char *path,
                     unsigned long line, int depth)
{
    const struct key *k = key_find(path);
    const struct origin o = { w->file, line, NULL };
    int rc;

    if ((rc = walk_too_big(w, n, depth)) < 0)
        return rc;

    if (k == NULL && n->type != YAML_MAPPING_NODE && owned_unknown(path) != NULL) {
        const struct key unknown = { .name = path };
        return fail(w->errstr, &o, &unknown, "%s", owned_unknown(path));
    }
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        if (k == NULL)
            return 0;           /* a key of another NetRaven service */
        struct val v = { .text = scalar_text(n), .null = scalar_is_null(n) };
        return apply(w->cfg, k, &v, &o, w->errstr);
    }
    case YAML_SEQUENCE_NODE: {
        struct nr_strlist l = { 0 };
        struct val v = { .list = &l };
        if (k == NULL)
            return 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            yaml_node_t *in = yaml_document_get_node(w->doc, *it);
            if (in == NULL || in->type != YAML_SCALAR_NODE) {
                nr_strlist_clear(&l);
                return fail(w->errstr, &o, k, "list items must be single values");
            }
            if (!scalar_is_null(in))
                nr_strlist_push(&l, scalar_text(in));
        }
        rc = apply(w->cfg, k, &v, &o, w->errstr);
        nr_strlist_clear(&l);
        return rc;
    }
    case YAML_MAPPING_NODE:
        if (k != NULL && (k->flags & NR_CK_FILEMAP))
            return walk_filemap(w, k, n, &o);
        if (k != NULL)
            return fail(w->errstr, &o, k, "expected a value, found a mapping");
        return walk_mapping(w, n, path, depth);
    case YAML_NO_NODE:
        break;
    }
    return 0;
}

/* Flatten a mapping into dotted keys below path (NULL at the top).  Merge
 * keys ("<<: *anchor") are applied before the mapping's own keys so that
 * those win, as in YAML; unlike YAML's shallow merge, nested mappings of
 * both end up merged key by key, which only matters for keys the worker
 * does not know anyway. */
static int walk_mapping(struct walk *w, yaml_node_t *n, const char *path, int depth)
{
    int rc;

    if ((rc = walk_too_big(w, n, depth)) < 0)
        return rc;
    for (int pass = 0; pass < 2; pass++) {
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
             pr < n->data.mapping.pairs.top; pr++) {
            yaml_node_t *kn = yaml_document_get_node(w->doc, pr->key);
            yaml_node_t *vn = yaml_document_get_node(w->doc, pr->value);
            bool merge;

            if (kn == NULL || vn == NULL || kn->type != YAML_SCALAR_NODE)
                continue;       /* complex keys: nothing the worker reads */
            merge = kn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                    strcmp(scalar_text(kn), "<<") == 0;
            if (pass == 0 && merge) {
                if (vn->type == YAML_MAPPING_NODE) {
                    rc = walk_mapping(w, vn, path, depth + 1);
                } else if (vn->type == YAML_SEQUENCE_NODE) {
                    /* the first mapping listed wins, so it goes last */
                    for (yaml_node_item_t *it = vn->data.sequence.items.top;
                         rc == 0 && it > vn->data.sequence.items.start; it--) {
                        yaml_node_t *m = yaml_document_get_node(w->doc, it[-1]);
                        if (m != NULL && m->type == YAML_MAPPING_NODE)
                            rc = walk_mapping(w, m, path, depth + 1);
                    }
                }
            } else if (pass == 1 && !merge) {
                char *child = path ? nr_asprintf("%s.%s", path, scalar_text(kn))
                                   : nr_strdup(scalar_text(kn));
                rc = walk_node(w, vn, child, (unsigned long)kn->start_mark.line + 1,
                               depth + 1);
                free(child);
            }
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static int yaml_error(const yaml_parser_t *p, const char *file, char **errstr)
{
    const char *problem = p->problem ? p->problem : "unknown problem";

    if (errstr == NULL)
        return NR_EINVAL;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        *errstr = nr_asprintf("%s: out of memory while reading YAML", file);
        break;
    case YAML_READER_ERROR:
        /* the reader works on bytes (bad UTF-8, read errors): no line yet */
        *errstr = nr_asprintf("%s: byte %zu: %s", file, p->problem_offset, problem);
        break;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
    case YAML_COMPOSER_ERROR:
        if (p->context != NULL)
            *errstr = nr_asprintf("%s:%zu:%zu: YAML syntax error: %s (%s at line %zu)",
                                  file, p->problem_mark.line + 1,
                                  p->problem_mark.column + 1, problem,
                                  p->context, p->context_mark.line + 1);
        else
            *errstr = nr_asprintf("%s:%zu:%zu: YAML syntax error: %s",
                                  file, p->problem_mark.line + 1,
                                  p->problem_mark.column + 1, problem);
        break;
    default:
        *errstr = nr_asprintf("%s: cannot read YAML: %s", file, problem);
        break;
    }
    return NR_EINVAL;
}

/* Apply one YAML file.  A missing file is fine unless required. */
static int load_yaml(struct nr_config *cfg, const char *file, bool required,
                     char **errstr)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    yaml_node_t *root;
    FILE *f;
    int rc = 0;

    f = fopen(file, "rb");
    if (f == NULL) {
        if (!required && errno == ENOENT)
            return 0;
        if (errstr)
            *errstr = nr_asprintf("%s: cannot open: %s", file, strerror(errno));
        return NR_EIO;
    }
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        if (errstr)
            *errstr = nr_asprintf("%s: out of memory while reading YAML", file);
        return NR_ERR;
    }
    yaml_parser_set_input_file(&parser, f);

    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(&parser, file, errstr);
        goto out;
    }
    root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        ;                               /* an empty file */
    } else if (root->type == YAML_MAPPING_NODE) {
        struct walk w = { cfg, &doc, file, errstr, 0 };
        rc = walk_mapping(&w, root, NULL, 0);
    } else if (!(root->type == YAML_SCALAR_NODE && scalar_is_null(root))) {
        if (errstr)
            *errstr = nr_asprintf("%s:%lu: the top level is not a mapping of keys",
                                  file, (unsigned long)root->start_mark.line + 1);
        rc = NR_EINVAL;
    }
    if (rc == 0 && root != NULL) {
        /* a second document would be silently ignored otherwise */
        if (!yaml_parser_load(&parser, &next)) {
            rc = yaml_error(&parser, file, errstr);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2 != NULL) {
                if (errstr)
                    *errstr = nr_asprintf("%s:%lu: a second YAML document; "
                                          "the file must hold one",
                                          file, (unsigned long)r2->start_mark.line + 1);
                rc = NR_EINVAL;
            }
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Environment                                                          */

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);

    for (; *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

/* "WORKER__THREAD_POOL_SIZE" -> "worker.thread_pool_size" */
static char *env_to_key(const char *s)
{
    struct sbuf b = { 0 };

    while (*s) {
        if (s[0] == '_' && s[1] == '_') {
            sb_addn(&b, ".", 1);
            s += 2;
        } else {
            char c = (char)tolower((unsigned char)*s++);
            sb_addn(&b, &c, 1);
        }
    }
    return sb_take(&b);
}

static int apply_env(struct nr_config *cfg, char *const *envp, char **errstr)
{
    static const char prefix[] = "NETRAVEN_";
    const size_t plen = sizeof(prefix) - 1;

    /* Aliases first, so that NETRAVEN_SECURITY__ENCRYPTION_KEY wins over
     * NETRAVEN_ENCRYPTION_KEY whatever their order in the environment. */
    for (int pass = 0; pass < 2; pass++) {
        for (char *const *e = envp; *e != NULL; e++) {
            const char *eq = strchr(*e, '=');
            const struct key *k = NULL;
            char *var;
            int rc = 0;

            if (eq == NULL || (size_t)(eq - *e) <= plen ||
                strncmp(*e, prefix, plen) != 0)
                continue;
            var = nr_strndup(*e, (size_t)(eq - *e));
            if (pass == 0) {
                k = key_find_alias(var);
            } else if (strcmp(var, "NETRAVEN_ENV") != 0 &&
                       strcmp(var, "NETRAVEN_CONFIG_DIR") != 0) {
                char *name = env_to_key(var + plen);
                k = key_find(name);
                if (k == NULL && owned_unknown(name) != NULL) {
                    const struct origin o = { NULL, 0, var };
                    const struct key unknown = { .name = name };
                    rc = fail(errstr, &o, &unknown, "%s", owned_unknown(name));
                }
                free(name);
            }
            if (k != NULL) {
                const struct origin o = { NULL, 0, var };
                struct val v = { .text = eq + 1, .null = eq[1] == '\0' };
                rc = apply(cfg, k, &v, &o, errstr);
            }
            free(var);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir);

    return nr_asprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

/* NETRAVEN_ENV, lower-cased as NetRaven does; it names a file, so it must
 * not be able to walk out of the config directory. */
static int env_name(char *const *envp, char **out, char **errstr)
{
    const char *raw = env_get(envp, "NETRAVEN_ENV");
    char *name;

    if (raw == NULL || *raw == '\0')
        raw = "dev";
    name = nr_strdup(raw);
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (strlen(name) > 64 ||
        name[strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-")] != '\0') {
        if (errstr) {
            static const struct key k = { .name = "environment" };
            char *s = show(&k, raw);
            *errstr = nr_asprintf("NETRAVEN_ENV: %s is not an environment name "
                                  "(letters, digits, '-' and '_')", s);
            free(s);
        }
        free(name);
        return NR_EINVAL;
    }
    *out = name;
    return 0;
}

extern char **environ;

int nr_config_load(struct nr_config *cfg, const char *config_dir,
                   char *const *envp, char **errstr)
{
    struct nr_config t;
    struct stat st;
    char *env = NULL, *file = NULL;
    const char *dir;
    int dir_errno = 0;
    int rc;

    memset(&t, 0, sizeof t);
    if (envp == NULL)
        envp = environ;

    if ((rc = apply_defaults(&t, errstr)) < 0)
        goto fail;
    if ((rc = env_name(envp, &env, errstr)) < 0)
        goto fail;

    dir = config_dir;
    if (dir == NULL || *dir == '\0')
        dir = env_get(envp, "NETRAVEN_CONFIG_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "./config";
    if (stat(dir, &st) < 0)
        dir_errno = errno;
    else if (!S_ISDIR(st.st_mode))
        dir_errno = ENOTDIR;
    if (dir_errno != 0) {
        if (errstr)
            *errstr = nr_asprintf("config directory %s: %s", dir, strerror(dir_errno));
        rc = NR_EIO;
        goto fail;
    }

    file = path_join(dir, "default.yaml");
    if ((rc = load_yaml(&t, file, true, errstr)) < 0)
        goto fail;
    free(file);
    file = nr_asprintf("%s.yaml", env);
    {
        char *p = path_join(dir, file);
        free(file);
        file = p;
    }
    if ((rc = load_yaml(&t, file, false, errstr)) < 0)
        goto fail;
    free(file);
    file = NULL;

    if ((rc = apply_env(&t, envp, errstr)) < 0)
        goto fail;

    t.env = env;
    t.config_dir = nr_strdup(dir);
    *cfg = t;
    return 0;

fail:
    free(file);
    free(env);
    nr_config_clear(&t);
    memset(cfg, 0, sizeof *cfg);
    return rc;
}

void nr_config_device_timeouts(const struct nr_config *cfg, int id, double *connect_s,
                               double *command_s)
{
    const struct nr_devtype_timeouts *t =
        id >= 0 && id < NR_DEVTYPE_COUNT ? &cfg->worker.device_types[id] : NULL;

    if (connect_s)
        *connect_s = t && !isnan(t->connection_timeout) ? t->connection_timeout
                                                        : cfg->worker.connection_timeout;
    if (command_s)
        *command_s = t && !isnan(t->command_timeout) ? t->command_timeout
                                                     : cfg->worker.command_timeout;
}

/* keys.def's defaults alone, built once. */
static struct nr_config g_defaults;
static pthread_once_t g_defaults_once = PTHREAD_ONCE_INIT;

static void defaults_build(void)
{
    char *err = NULL;

    /* the unit suite checks that every default validates */
    if (apply_defaults(&g_defaults, &err) < 0) {
        fprintf(stderr, "netraven-worker: keys.def: %s\n", err ? err : "bad default");
        abort();
    }
}

const struct nr_config *nr_config_default(void)
{
    pthread_once(&g_defaults_once, defaults_build);
    return &g_defaults;
}

void nr_config_clear(struct nr_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++) {
        if (keys[i].type == CT_STRING)
            free(*(char **)field(cfg, &keys[i]));
        else if (keys[i].type == CT_STRLIST)
            nr_strlist_clear(field(cfg, &keys[i]));
    }
    free(cfg->env);
    free(cfg->config_dir);
    memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------------ */
/* Printing                                                             */

/* Would s read back as something else, or break the line, if written as
 * a plain YAML scalar? */
static bool needs_quotes(const char *s, bool in_list)
{
    static const char *const special[] = { "null", "~", "true", "false",
                                           "yes", "no", "on", "off" };
    size_t n = strlen(s);

    if (n == 0 || isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@`", s[0]) != NULL)
        return true;
    if (strstr(s, ": ") || strstr(s, " #") || s[n - 1] == ':')
        return true;
    if (in_list && strpbrk(s, ",[]{}") != NULL)
        return true;
    for (const char *p = s; *p; p++)
        if (iscntrl((unsigned char)*p))
            return true;
    for (size_t i = 0; i < NR_ARRAY_LEN(special); i++)
        if (strcasecmp(s, special[i]) == 0)
            return true;
    return false;
}

static void put_scalar(FILE *out, const char *s, bool in_list)
{
    if (s == NULL) {
        fputs("null", out);
        return;
    }
    if (!needs_quotes(s, in_list)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (iscntrl(c))
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void print_value(const struct nr_config *cfg, const struct key *k, FILE *out)
{
    const void *p = cfield(cfg, k);
    char buf[32];

    if (k->flags & NR_CK_SENSITIVE) {
        /* the one place that decides: a secret is never formatted */
        bool set = k->type != CT_STRING || *(char *const *)p != NULL;
        fputs(set ? "\"********\"" : "null", out);
        return;
    }
    switch (k->type) {
    case CT_INT:
        fprintf(out, "%d", *(const int *)p);
        break;
    case CT_LONG:
        fprintf(out, "%ld", *(const long *)p);
        break;
    case CT_DOUBLE:
        if (isnan(*(const double *)p)) {
            fputs("null", out);     /* an optional value left unset */
            break;
        }
        fmt_double(buf, *(const double *)p);
        fputs(buf, out);
        break;
    case CT_BOOL:
        fputs(*(const bool *)p ? "true" : "false", out);
        break;
    case CT_STRING: {
        const char *s = *(char *const *)p;
        if (s != NULL && (k->flags & NR_CK_URL)) {
            char *m = nr_config_mask_url(s);
            put_scalar(out, m, false);
            free(m);
        } else {
            put_scalar(out, s, false);
        }
        break;
    }
    case CT_STRLIST: {
        const struct nr_strlist *l = p;
        fputc('[', out);
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                fputs(", ", out);
            put_scalar(out, l->v[i], true);
        }
        fputc(']', out);
        break;
    }
    case CT_ENUM:
        fputs(choice_name(k->choices, *(const unsigned *)p), out);
        break;
    case CT_ROUTE: {
        unsigned bits = *(const unsigned *)p;
        bool first = true;
        fputc('[', out);
        for (const struct choice *c = k->choices; c->name; c++) {
            if (!c->synonym && (bits & c->value)) {
                fprintf(out, "%s%s", first ? "" : ", ", c->name);
                first = false;
            }
        }
        fputc(']', out);
        break;
    }
    case CT_UINT:
        break;
    }
}

void nr_config_print(const struct nr_config *cfg, FILE *out)
{
    fputs("# env: ", out);
    put_scalar(out, cfg->env, false);
    fputs("\n# config_dir: ", out);
    put_scalar(out, cfg->config_dir, false);
    fputc('\n', out);
    for (size_t i = 0; i < NR_ARRAY_LEN(keys); i++) {
        fprintf(out, "%s: ", keys[i].name);
        print_value(cfg, &keys[i], out);
        fputc('\n', out);
    }
}
