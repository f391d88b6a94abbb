/*
 * url.c - Redis URLs read as redis-py reads them (redis.h says how), and
 * masked for messages by the same split.
 *
 * Pure: no I/O.  The split (url_split) finds the parts exactly where
 * urllib's urlsplit finds them: the network location ends at the first
 * '/', '?' or '#' after "//"; the fragment starts at the first '#' after
 * it, the query at the first '?' before that; the user info ends at the
 * network location's last '@' and splits at its first ':'.
 */
#include "netraven/redis.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parts of a URL, as spans of the text.  NULL pointers: absent. */
struct url_parts {
    const char *net, *net_end;          /* network location */
    const char *user, *user_end;        /* user info, before its first ':' */
    const char *pass, *pass_end;        /* after it; NULL when no ':' */
    const char *host, *host_end;        /* host info, after the last '@' */
    const char *path, *path_end;
    const char *query, *query_end;      /* after '?', up to '#' */
};

static void url_split(const char *after_scheme, struct url_parts *p)
{
    const char *s = after_scheme, *end, *hash, *q, *at = NULL;

    memset(p, 0, sizeof(*p));
    p->net = s;
    p->net_end = s + strcspn(s, "/?#");
    for (q = p->net; q < p->net_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p->net, ':', (size_t)(at - p->net));

        p->user = p->net;
        p->user_end = colon ? colon : at;
        if (colon != NULL) {
            p->pass = colon + 1;
            p->pass_end = at;
        }
        p->host = at + 1;
    } else {
        p->host = p->net;
    }
    p->host_end = p->net_end;

    end = p->net_end + strlen(p->net_end);
    hash = strchr(p->net_end, '#');
    if (hash != NULL)
        end = hash;
    p->path = p->net_end;
    q = memchr(p->path, '?', (size_t)(end - p->path));
    p->path_end = q ? q : end;
    if (q != NULL) {
        p->query = q + 1;
        p->query_end = end;
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* urllib's unquote of s[0..n), with '+' as a space when plus is set: a
 * '%' that starts no valid escape stays.  NULL when an escape decodes to
 * NUL, which a C string cannot hold. */
static char *unquote(const char *s, size_t n, bool plus)
{
    char *out = nr_malloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        int h, l;

        if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            if (h == 0 && l == 0) {
                free(out);
                return NULL;
            }
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Python's int() of a decimal text (spaces around, a sign, '_' between
 * digits), limited to 0..max; false when it is not one. */
static bool py_int(const char *s, long max, long *out)
{
    long v = 0;
    bool digit = false;

    while (isspace((unsigned char)*s))
        s++;
    if (*s == '+')
        s++;
    for (; *s; s++) {
        if (*s == '_' && digit && isdigit((unsigned char)s[1]))
            continue;
        if (!isdigit((unsigned char)*s))
            break;
        if (v > (max - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
        digit = true;
    }
    while (isspace((unsigned char)*s))
        s++;
    if (!digit || *s != '\0')
        return false;
    *out = v;
    return true;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return NR_EINVAL;
}

void nr_redis_url_clear(struct nr_redis_url *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

/* The query's parameters redis-py acts on.  parse_qs keeps the first value
 * of a name, skips pieces without '=' or with an empty value, and decodes
 * name and value; redis-py decodes the value once more. */
struct query {
    char *db, *user, *password, *host, *port, *path;
};

static void query_clear(struct query *q)
{
    free(q->db);
    free(q->user);
    free(q->password);
    free(q->host);
    free(q->port);
    free(q->path);
}

static int query_parse(const char *s, const char *end, struct query *q, const char *name,
                       char *err, size_t errlen)
{
    while (s != NULL && s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pend - s));
        char *key, *once, *value, **slot = NULL;

        if (eq == NULL) {
            /* skipped by parse_qs; an '@' here means the user info went on
             * past a raw '?' (redis://user:pw?x@host) */
            if (memchr(s, '@', (size_t)(pend - s)) != NULL)
                return fail(err, errlen, "%s: '@' after the host; %%-escape '/', '?' and '@' "
                            "in the user name and password (%%2F, %%3F, %%40)", name);
        } else if (eq + 1 < pend) {
            key = unquote(s, (size_t)(eq - s), true);
            once = unquote(eq + 1, (size_t)(pend - eq - 1), true);
            value = once ? unquote(once, strlen(once), false) : NULL;
            free(once);
            if (key == NULL || value == NULL) {
                free(key);
                free(value);
                return fail(err, errlen, "%s: a query parameter has a %%00 escape", name);
            }
            if (strcmp(key, "db") == 0)
                slot = &q->db;
            else if (strcmp(key, "username") == 0)
                slot = &q->user;
            else if (strcmp(key, "password") == 0)
                slot = &q->password;
            else if (strcmp(key, "host") == 0)
                slot = &q->host;
            else if (strcmp(key, "port") == 0)
                slot = &q->port;
            else if (strcmp(key, "path") == 0)
                slot = &q->path;
            free(key);
            if (slot != NULL && *slot == NULL)
                *slot = value;
            else
                free(value);
        }
        s = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* A decoded user name or password; *out NULL when empty. */
static int userinfo_part(const char *s, const char *e, char **out, const char *name,
                         const char *what, char *err, size_t errlen)
{
    *out = NULL;
    if (s == NULL || s == e)
        return 0;
    if ((*out = unquote(s, (size_t)(e - s), false)) == NULL)
        return fail(err, errlen, "%s: the %s has a %%00 escape", name, what);
    return 0;
}

static int parse_port(const char *s, size_t n, int *port, const char *name, char *err,
                      size_t errlen)
{
    long v = 0;

    if (n == 0 || n > 5)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            goto bad;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        goto bad;
    *port = (int)v;
    return 0;
bad:
    return fail(err, errlen, "%s: the port is not a number from 1 to 65535", name);
}

/* host[:port] or [v6][:port] of a redis:// URL into u. */
static int parse_hostinfo(const struct url_parts *p, const struct query *q,
                          struct nr_redis_url *u, const char *name, char *err, size_t errlen)
{
    const char *h = p->host, *e = p->host_end, *hend, *port = NULL;
    const char *open = memchr(h, '[', (size_t)(e - h));
    char *host;

    if (open != NULL) {
        const char *close = memchr(open, ']', (size_t)(e - open));

        if (close == NULL)
            return fail(err, errlen, "%s: '[' without ']' in the host", name);
        h = open + 1;
        hend = close;
        port = memchr(close, ':', (size_t)(e - close));
    } else {
        port = memchr(h, ':', (size_t)(e - h));
        hend = port ? port : e;
    }
    if (port != NULL && port + 1 < e) {
        if (parse_port(port + 1, (size_t)(e - port - 1), &u->port, name, err, errlen) < 0)
            return NR_EINVAL;
    } else if (q->port != NULL) {
        if (parse_port(q->port, strlen(q->port), &u->port, name, err, errlen) < 0)
            return NR_EINVAL;
    }
    if (hend > h) {
        /* lower-cased up to an IPv6 zone ('%'), then decoded */
        char *low = nr_strndup(h, (size_t)(hend - h));

        for (char *c = low; *c && *c != '%'; c++)
            *c = (char)tolower((unsigned char)*c);
        host = unquote(low, strlen(low), false);
        free(low);
        if (host == NULL)
            return fail(err, errlen, "%s: the host has a %%00 escape", name);
        u->host = host;
    } else {
        u->host = nr_strdup(q->host ? q->host : "localhost");
    }
    return 0;
}

int nr_redis_url_parse(const char *url, const char *name, struct nr_redis_url *out,
                       char *err, size_t errlen)
{
    struct nr_redis_url u = { .port = NR_REDIS_DEFAULT_PORT };
    struct query q = { 0 };
    struct url_parts p;
    char *clean, *o;
    const char *rest;
    bool is_unix;
    long v;
    int rc = NR_EINVAL;

    if (name == NULL)
        name = "the Redis URL";
    if (url == NULL || url[0] == '\0')
        return fail(err, errlen, "%s is not set", name);
    if (strncmp(url, "redis://", 8) == 0) {
        is_unix = false;
    } else if (strncmp(url, "unix://", 7) == 0) {
        is_unix = true;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        return fail(err, errlen, "%s: TLS (rediss://) is not supported", name);
    } else {
        return fail(err, errlen, "%s must start with redis:// or unix://", name);
    }
    /* urlsplit drops tabs and line breaks wherever they are */
    clean = o = nr_malloc(strlen(url) + 1);
    for (const char *c = url; *c; c++)
        if (*c != '\t' && *c != '\r' && *c != '\n')
            *o++ = *c;
    *o = '\0';
    rest = strstr(clean, "://") + 3;
    url_split(rest, &p);

    if ((memchr(p.net, '[', (size_t)(p.net_end - p.net)) != NULL) !=
        (memchr(p.net, ']', (size_t)(p.net_end - p.net)) != NULL)) {
        fail(err, errlen, "%s: '[' without ']' in the host", name);
        goto out;
    }
    if (memchr(p.path, '@', (size_t)(p.path_end - p.path)) != NULL) {
        fail(err, errlen, "%s: '@' after the host; %%-escape '/', '?' and '@' in the user "
             "name and password (%%2F, %%3F, %%40)", name);
        goto out;
    }
    if (query_parse(p.query, p.query_end, &q, name, err, errlen) < 0)
        goto out;
    if (userinfo_part(p.user, p.user_end, &u.user, name, "user name", err, errlen) < 0 ||
        userinfo_part(p.pass, p.pass_end, &u.password, name, "password", err, errlen) < 0)
        goto out;
    if (u.user == NULL && q.user != NULL && q.user[0] != '\0') {
        u.user = q.user;
        q.user = NULL;
    }
    if (u.password == NULL && q.password != NULL && q.password[0] != '\0') {
        u.password = q.password;
        q.password = NULL;
    }

    if (is_unix) {
        char *path = NULL;

        if (p.host < p.host_end) {
            fail(err, errlen, "%s: unix:// takes no host, only an absolute socket path "
                 "(unix:///path/to/socket)", name);
            goto out;
        }
        if (p.path < p.path_end && (path = unquote(p.path, (size_t)(p.path_end - p.path),
                                                   false)) == NULL) {
            fail(err, errlen, "%s: the socket path has a %%00 escape", name);
            goto out;
        }
        if (path == NULL && q.path != NULL) {
            path = q.path;
            q.path = NULL;
        }
        if (path == NULL || path[0] != '/') {
            free(path);
            fail(err, errlen, "%s: unix:// needs an absolute socket path", name);
            goto out;
        }
        u.path = path;
        u.port = 0;
    } else {
        if (parse_hostinfo(&p, &q, &u, name, err, errlen) < 0)
            goto out;
        if (q.db == NULL && p.path < p.path_end) {
            /* redis-py: int(unquote(path).replace("/", "")) */
            char *d = unquote(p.path, (size_t)(p.path_end - p.path), false), *w = d;

            if (d == NULL) {
                fail(err, errlen, "%s: the path has a %%00 escape", name);
                goto out;
            }
            for (const char *c = d; *c; c++)
                if (*c != '/')
                    *w++ = *c;
            *w = '\0';
            if (d[0] != '\0') {
                if (!py_int(d, INT_MAX, &v)) {
                    free(d);
                    fail(err, errlen, "%s: the path is not a database number", name);
                    goto out;
                }
                u.db = (int)v;
            }
            free(d);
        }
    }
    if (q.db != NULL) {
        if (!py_int(q.db, INT_MAX, &v)) {
            fail(err, errlen, "%s: the db= parameter is not a database number", name);
            goto out;
        }
        u.db = (int)v;
    }
    *out = u;
    memset(&u, 0, sizeof(u));
    rc = 0;
out:
    nr_redis_url_clear(&u);
    query_clear(&q);
    free(clean);
    return rc;
}

void nr_redis_url_where(const struct nr_redis_url *u, char *buf, size_t len)
{
    if (u->path != NULL)
        snprintf(buf, len, "unix:%s", u->path);
    else if (u->host != NULL && strchr(u->host, ':') != NULL)
        snprintf(buf, len, "[%s]:%d", u->host, u->port);
    else
        snprintf(buf, len, "%s:%d", u->host ? u->host : "?", u->port);
}

/* Append s[0..n) to the growing string *b (length *len). */
static void put(char **b, size_t *len, const char *s, size_t n)
{
    *b = nr_realloc(*b, *len + n + 1);
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
}

/* Would the URL parse?  rediss:// is judged as redis:// would be: the
 * masker must know its user info all the same. */
static bool parses(const char *url)
{
    struct nr_redis_url u = { 0 };
    char *copy = NULL;
    bool ok;

    if (strncmp(url, "rediss://", 9) == 0)
        url = copy = nr_asprintf("redis://%s", url + 9);
    ok = nr_redis_url_parse(url, NULL, &u, NULL, 0) == 0;
    nr_redis_url_clear(&u);
    free(copy);
    return ok;
}

char *nr_redis_url_mask(const char *url)
{
    struct url_parts p;
    const char *sep, *s, *last_at;
    char *b = NULL;
    size_t len = 0;
    bool ok;

    if (url == NULL)
        return NULL;
    sep = strstr(url, "://");
    if (sep == NULL)
        return nr_strdup(url);
    url_split(sep + 3, &p);
    ok = parses(url);
    last_at = strrchr(sep + 3, '@');
    if (ok && p.pass != NULL && p.pass < p.pass_end) {
        put(&b, &len, url, (size_t)(p.pass - url));
        put(&b, &len, "****", 4);
        s = p.pass_end;
    } else if (!ok && last_at != NULL) {
        /* the parts cannot be trusted (a raw '/' or '?' in a password
         * moves them): everything up to the last '@' may be secret */
        put(&b, &len, url, (size_t)(sep + 3 - url));
        put(&b, &len, "****", 4);
        s = last_at;
    } else {
        s = url;
    }
    /* then every password= value of the query */
    for (const char *start = s; *s;) {
        bool at_param = ok ? p.query != NULL && s >= p.query && s < p.query_end &&
                                 (s == p.query || s[-1] == '&')
                           : s > start && (s[-1] == '?' || s[-1] == '&');

        if (at_param && strncmp(s, "password=", 9) == 0) {
            put(&b, &len, s, 9);
            put(&b, &len, "****", 4);
            s += 9;
            while (*s && *s != '&' && *s != '#')
                s++;
            continue;
        }
        put(&b, &len, s, 1);
        s++;
    }
    return b ? b : nr_strdup("");
}
