/*
 * queue.c - the native job queue on a Redis Stream, over one hiredis
 * connection.
 *
 * The connection runs in blocking mode with a read/write timeout, so no
 * call waits forever: ordinary commands get COMMAND_TIMEOUT_MS on top of
 * queue.block_ms, and the two blocking commands (XREADGROUP ... BLOCK and
 * BLPOP) raise it for their own call to their block time plus
 * BLOCKING_MARGIN_MS.  A hiredis context is unusable after any I/O error or
 * timeout, hence the rule that once q->err is set every call refuses until
 * nr_queue_reset() has reconnected.
 *
 * Every command is sent with redisCommandArgv()/redisAppendCommandArgv() and
 * explicit lengths, so payloads and names are binary safe.
 *
 * The password from scheduler.redis_url never enters errstr: messages name
 * the server as host:port (or the socket path), never the URL, and as a last
 * guard any occurrence of the password is masked before errstr is final.
 */
#include "netraven/queue.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define CONNECT_TIMEOUT_MS   5000
#define COMMAND_TIMEOUT_MS   5000   /* on top of queue.block_ms */
#define BLOCKING_MARGIN_MS   5000   /* beyond the server-side block time */
#define DONE_KEY_PREFIX      "netraven:jobs:done:"
#define DONE_TTL_S           "3600"
#define DEAD_STREAM_MAXLEN   "100000"   /* approximate (~) trim of the dead-letter stream */
#define MAX_ARGS             14
#define WAIT_MAX_S           ((double)(INT_MAX - BLOCKING_MARGIN_MS) / 1000.0 - 1.0)

#define DEFAULT_STREAM       "netraven:jobs"
#define DEFAULT_GROUP        "netraven-workers"
#define DEFAULT_DEAD_STREAM  "netraven:jobs:dead"

/* Where scheduler.redis_url points. */
struct target {
    bool  is_unix;
    char *host;         /* TCP host, or the socket path when is_unix */
    int   port;
    char *user;         /* NULL: no user name (plain AUTH <password>) */
    char *password;     /* NULL: no AUTH */
    int   db;
};

/* The public struct first, so that struct nr_queue * converts to and from
 * struct queue_i * (C11 6.7.2.1p15). */
struct queue_i {
    struct nr_queue pub;
    struct target   t;
    bool            target_ok;
    char            where[96];      /* "host:port" / "unix:/path", for messages */
    int             timeout_ms;     /* the context's current timeout, 0 before set */
    /* The pending scan runs once per nr_queue_connect(), not per reset:
     * after a reset the entries handed out before it may still be running
     * in this process, and handing them out again would run them twice. */
    bool            pending_done;   /* own pending entries all re-read */
    char           *pending_after;  /* last pending id handed out, NULL: from 0 */
    char           *claim_cursor;   /* XAUTOCLAIM's next start, NULL: "0-0" */
};

/* One command of a pipeline. */
struct cmd {
    int         argc;
    const char *argv[MAX_ARGS];
    size_t      len[MAX_ARGS];
};

static struct queue_i *qi_of(struct nr_queue *q) { return (struct queue_i *)q; }

static void cmd_add(struct cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

static void cmd_str(struct cmd *c, const char *s) { cmd_add(c, s, strlen(s)); }

static const char *cfg_str(const char *v, const char *dflt)
{
    return v != NULL && v[0] != '\0' ? v : dflt;
}

static const char *stream_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.stream, DEFAULT_STREAM);
}

static const char *group_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.group, DEFAULT_GROUP);
}

static const char *dead_stream_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.dead_stream, DEFAULT_DEAD_STREAM);
}

static int base_timeout_ms(const struct queue_i *qi)
{
    int block = qi->pub.cfg->queue.block_ms;

    if (block < 0 || block > INT_MAX - COMMAND_TIMEOUT_MS)
        block = 0;
    return COMMAND_TIMEOUT_MS + block;
}

/* ------------------------------------------------------------------ errors */

/* Replace every occurrence of the password in errstr by "****", in one
 * left-to-right pass (so a password that occurs in "****" cannot loop). */
static void mask_password(struct queue_i *qi)
{
    const char *pw = qi->t.password;
    char out[sizeof(qi->pub.errstr)];
    size_t plen, o = 0;

    if (pw == NULL || (plen = strlen(pw)) == 0 || strstr(qi->pub.errstr, pw) == NULL)
        return;
    for (const char *p = qi->pub.errstr; *p && o + 1 < sizeof(out);) {
        if (strncmp(p, pw, plen) == 0) {
            for (int k = 0; k < 4 && o + 1 < sizeof(out); k++)
                out[o++] = '*';
            p += plen;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    memcpy(qi->pub.errstr, out, o + 1);
}

static void set_err(struct queue_i *qi, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct queue_i *qi, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(qi->pub.errstr, sizeof(qi->pub.errstr), fmt, ap);
    va_end(ap);
    for (char *p = qi->pub.errstr; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
            *p = '?';
    mask_password(qi);
    qi->pub.err = NR_EIO;
}

/* The context failed (I/O, EOF, protocol): record why, naming the command. */
static void conn_err(struct queue_i *qi, const char *what)
{
    redisContext *rc = qi->pub.rc;
    const char *why = rc && rc->errstr[0] ? rc->errstr : "unknown error";

    if (rc && rc->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable") != NULL)
        set_err(qi, "redis at %s: %s timed out after %d ms", qi->where, what, qi->timeout_ms);
    else
        set_err(qi, "redis at %s: %s failed: %s", qi->where, what, why);
}

/* The server answered with an error reply (or something unexpected).
 * Frees r. */
static void reply_err(struct queue_i *qi, const char *what, redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        set_err(qi, "redis at %s: %s failed: %.*s", qi->where, what,
                (int)(r->len > 160 ? 160 : r->len), r->str);
    else
        set_err(qi, "redis at %s: %s returned an unexpected reply (type %d)",
                qi->where, what, r ? r->type : -1);
    freeReplyObject(r);
}

static bool is_error(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, prefix, n) == 0;
}

/* --------------------------------------------------------------- commands */

static struct timeval tv_of_ms(long long ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static int set_timeout(struct queue_i *qi, int ms)
{
    if (qi->timeout_ms == ms)
        return NR_OK;
    if (redisSetTimeout(qi->pub.rc, tv_of_ms(ms)) != REDIS_OK) {
        conn_err(qi, "setting the socket timeout");
        return NR_EIO;
    }
    qi->timeout_ms = ms;
    return NR_OK;
}

/* May the connection be used?  Sets err if there is none. */
static bool usable(struct queue_i *qi)
{
    if (qi->pub.err)
        return false;
    if (qi->pub.rc == NULL) {
        set_err(qi, "redis at %s: not connected", qi->where);
        return false;
    }
    return true;
}

/* Send one command and read its reply with the given timeout.  NULL (err
 * set) when the connection failed; otherwise the reply, which may be an
 * error reply, for the caller to free. */
static redisReply *command(struct queue_i *qi, int timeout_ms, const char *what,
                           struct cmd *c)
{
    redisReply *r;

    if (!usable(qi) || set_timeout(qi, timeout_ms) < 0)
        return NULL;
    r = redisCommandArgv(qi->pub.rc, c->argc, c->argv, c->len);
    if (r == NULL)
        conn_err(qi, what);
    return r;
}

/* Run cmds inside MULTI/EXEC, pipelined.  Returns 0 when every command of
 * the transaction succeeded, else NR_EIO with err set.  All replies are
 * read even after a failure, so the connection stays in step. */
static int transaction(struct queue_i *qi, const char *what, struct cmd *cmds, int n)
{
    struct cmd multi = { 1, { "MULTI" }, { 5 } };
    struct cmd exec = { 1, { "EXEC" }, { 4 } };
    redisContext *rc;
    redisReply *r = NULL;
    int i, rcode = NR_OK;

    if (!usable(qi) || set_timeout(qi, base_timeout_ms(qi)) < 0)
        return NR_EIO;
    rc = qi->pub.rc;
    /* Appending only fails when hiredis cannot allocate. */
    if (redisAppendCommandArgv(rc, multi.argc, multi.argv, multi.len) != REDIS_OK)
        goto oom;
    for (i = 0; i < n; i++)
        if (redisAppendCommandArgv(rc, cmds[i].argc, cmds[i].argv, cmds[i].len) != REDIS_OK)
            goto oom;
    if (redisAppendCommandArgv(rc, exec.argc, exec.argv, exec.len) != REDIS_OK)
        goto oom;

    /* MULTI -> +OK, each command -> +QUEUED (or an error), EXEC -> results */
    for (i = 0; i < n + 2; i++) {
        if (redisGetReply(rc, (void **)&r) != REDIS_OK || r == NULL) {
            conn_err(qi, what);
            return NR_EIO;
        }
        if (i < n + 1) {
            if (r->type == REDIS_REPLY_ERROR && rcode == NR_OK) {
                reply_err(qi, what, r);
                rcode = NR_EIO;
            } else {
                freeReplyObject(r);
            }
            continue;
        }
        /* EXEC */
        if (rcode == NR_OK) {
            if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n) {
                reply_err(qi, what, r);
                return NR_EIO;
            }
            for (size_t k = 0; k < r->elements; k++) {
                if (r->element[k]->type == REDIS_REPLY_ERROR) {
                    set_err(qi, "redis at %s: %.*s failed while %s: %.*s", qi->where,
                            (int)cmds[k].len[0], cmds[k].argv[0], what,
                            (int)(r->element[k]->len > 160 ? 160 : r->element[k]->len),
                            r->element[k]->str);
                    rcode = NR_EIO;
                    break;
                }
            }
        }
        freeReplyObject(r);
    }
    return rcode;

oom:
    /* Part of the pipeline may sit in the output buffer: the connection
     * is out of step and must be reset. */
    set_err(qi, "redis at %s: %s: out of memory building the command", qi->where, what);
    return NR_EIO;
}

/* ------------------------------------------------------------- URL parsing */

static void target_clear(struct target *t)
{
    free(t->host);
    free(t->user);
    free(t->password);
    memset(t, 0, sizeof(*t));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX-decode s[0..n) into a new string; NULL if an escape is malformed or
 * decodes to NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = nr_malloc(n + 1), *o = out;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

static bool parse_uint(const char *s, size_t n, long max, long *out)
{
    long v = 0;

    if (n == 0 || n > 10)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* user:password@ in s[0..n), into t; the messages never quote it. */
static int parse_userinfo(const char *s, size_t n, struct target *t, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    size_t ulen = colon ? (size_t)(colon - s) : n;

    if (ulen > 0 && (t->user = pct_decode(s, ulen)) == NULL) {
        snprintf(err, errlen, "scheduler.redis_url: the user name has a bad %%-escape");
        return -1;
    }
    if (colon != NULL) {
        size_t plen = n - ulen - 1;
        if (plen > 0 && (t->password = pct_decode(colon + 1, plen)) == NULL) {
            snprintf(err, errlen, "scheduler.redis_url: the password has a bad %%-escape");
            return -1;
        }
    }
    return 0;
}

/* ?db=N (other parameters are ignored, as redis-py ignores what it does
 * not know). */
static int parse_query(const char *q, struct target *t, bool have_db, char *err, size_t errlen)
{
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);
        long v;

        if (n >= 3 && memcmp(q, "db=", 3) == 0 && !have_db) {
            if (!parse_uint(q + 3, n - 3, INT_MAX, &v)) {
                snprintf(err, errlen, "scheduler.redis_url: the db= parameter is not a database number");
                return -1;
            }
            t->db = (int)v;
        }
        q = end ? end + 1 : NULL;
    }
    return 0;
}

/*
 * redis://[[user]:password@]host[:port][/db][?db=N]
 * unix://[[user]:password@]/path/to/socket[?db=N]
 *
 * Messages never quote the URL or a piece of it: in a mistyped URL any
 * piece may be part of the password.
 */
static int parse_url(const char *url, struct target *t, char *err, size_t errlen)
{
    const char *p, *auth_end, *at, *hp, *query;
    long v;

    memset(t, 0, sizeof(*t));
    t->port = 6379;
    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "scheduler.redis_url is not set");
        return -1;
    }
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
    } else if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        t->is_unix = true;
    } else if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen, "scheduler.redis_url: TLS (rediss://) is not supported");
        return -1;
    } else {
        snprintf(err, errlen, "scheduler.redis_url must start with redis:// or unix://");
        return -1;
    }

    /* userinfo ends at the last '@' before the path (a raw '@' may sit in
     * an unescaped password) */
    auth_end = p + strcspn(p, t->is_unix ? "?" : "/?");
    at = NULL;
    for (const char *s = p; s < auth_end; s++)
        if (*s == '@')
            at = s;
    if (t->is_unix && at == NULL)
        auth_end = p;   /* unix:///path: nothing before the path */
    if (at != NULL) {
        if (parse_userinfo(p, (size_t)(at - p), t, err, errlen) < 0)
            goto fail;
        p = at + 1;
    }

    query = strchr(p, '?');
    if (t->is_unix) {
        size_t n = query ? (size_t)(query - p) : strlen(p);
        if (n == 0 || p[0] != '/') {
            snprintf(err, errlen, "scheduler.redis_url: unix:// needs an absolute socket path");
            goto fail;
        }
        t->host = nr_strndup(p, n);
        if (parse_query(query ? query + 1 : NULL, t, false, err, errlen) < 0)
            goto fail;
        return 0;
    }

    /* host[:port] */
    hp = p;
    auth_end = p + strcspn(p, "/?");
    /* An '@' further on means a password with a raw '/' or '?': what looks
     * like the host or port would be part of it. */
    if (strchr(auth_end, '@') != NULL) {
        snprintf(err, errlen, "scheduler.redis_url: '@' after the host; %%-escape '/', '?' and "
                 "'@' in the user name and password (%%2F, %%3F, %%40)");
        goto fail;
    }
    if (*hp == '[') {
        const char *close = memchr(hp, ']', (size_t)(auth_end - hp));
        if (close == NULL) {
            snprintf(err, errlen, "scheduler.redis_url: '[' without ']' in the host");
            goto fail;
        }
        t->host = nr_strndup(hp + 1, (size_t)(close - hp - 1));
        p = close + 1;
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        const char *hend = colon ? colon : auth_end;
        t->host = nr_strndup(hp, (size_t)(hend - hp));
        p = hend;
    }
    if (t->host[0] == '\0') {
        free(t->host);
        t->host = nr_strdup("localhost");   /* as redis-py */
    }
    if (p < auth_end && *p == ':') {
        size_t n = (size_t)(auth_end - p - 1);
        if (!parse_uint(p + 1, n, 65535, &v) || v == 0) {
            snprintf(err, errlen, "scheduler.redis_url: the port is not a number from 1 to 65535");
            goto fail;
        }
        t->port = (int)v;
    } else if (p < auth_end) {
        snprintf(err, errlen, "scheduler.redis_url: unexpected text after the host");
        goto fail;
    }
    p = auth_end;

    /* [/db] */
    bool have_db = false;
    if (*p == '/') {
        size_t n = strcspn(p + 1, "?");
        if (n > 0) {
            if (!parse_uint(p + 1, n, INT_MAX, &v)) {
                snprintf(err, errlen, "scheduler.redis_url: the path is not a database number");
                goto fail;
            }
            t->db = (int)v;
            have_db = true;
        }
        p += 1 + n;
    }
    if (*p == '?' && parse_query(p + 1, t, have_db, err, errlen) < 0)
        goto fail;
    return 0;

fail:
    target_clear(t);
    return -1;
}

/* -------------------------------------------------------------- connection */

/* The group starts at the beginning of the stream ("0", not "$"): entries
 * queued before any worker ever started are jobs too, and must run. */
static int create_group(struct queue_i *qi)
{
    struct cmd c = { 0 };
    redisReply *r;

    cmd_str(&c, "XGROUP");
    cmd_str(&c, "CREATE");
    cmd_str(&c, stream_of(qi));
    cmd_str(&c, group_of(qi));
    cmd_str(&c, "0");
    cmd_str(&c, "MKSTREAM");
    if ((r = command(qi, base_timeout_ms(qi), "XGROUP CREATE", &c)) == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_ERROR && !is_error(r, "BUSYGROUP")) {
        reply_err(qi, "XGROUP CREATE", r);
        return NR_EIO;
    }
    freeReplyObject(r);
    return NR_OK;
}

static int authenticate(struct queue_i *qi)
{
    struct cmd c = { 0 };
    redisReply *r;

    if (qi->t.password == NULL)
        return NR_OK;
    cmd_str(&c, "AUTH");
    if (qi->t.user != NULL)
        cmd_str(&c, qi->t.user);
    cmd_str(&c, qi->t.password);
    if ((r = command(qi, base_timeout_ms(qi), "AUTH", &c)) == NULL)
        return NR_EIO;
    /* Redis before 6 knows only AUTH <password>; old URLs carry a dummy
     * user name ("redis://h:pw@host"). */
    if (qi->t.user != NULL && is_error(r, "ERR wrong number of arguments")) {
        freeReplyObject(r);
        c.argc = 0;
        cmd_str(&c, "AUTH");
        cmd_str(&c, qi->t.password);
        if ((r = command(qi, base_timeout_ms(qi), "AUTH", &c)) == NULL)
            return NR_EIO;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        reply_err(qi, "AUTH", r);
        return NR_EIO;
    }
    freeReplyObject(r);
    return NR_OK;
}

static int select_db(struct queue_i *qi)
{
    struct cmd c = { 0 };
    char db[16];
    redisReply *r;

    if (qi->t.db == 0)
        return NR_OK;
    snprintf(db, sizeof(db), "%d", qi->t.db);
    cmd_str(&c, "SELECT");
    cmd_str(&c, db);
    if ((r = command(qi, base_timeout_ms(qi), "SELECT", &c)) == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_ERROR) {
        reply_err(qi, "SELECT", r);
        return NR_EIO;
    }
    freeReplyObject(r);
    return NR_OK;
}

static void disconnect(struct queue_i *qi)
{
    if (qi->pub.rc != NULL)
        redisFree(qi->pub.rc);
    qi->pub.rc = NULL;
    qi->timeout_ms = 0;
}

static int do_connect(struct queue_i *qi)
{
    struct timeval tv = tv_of_ms(CONNECT_TIMEOUT_MS);
    redisContext *rc;

    disconnect(qi);
    qi->pub.err = 0;
    qi->pub.errstr[0] = '\0';
    if (!qi->target_ok) {
        char msg[sizeof(qi->pub.errstr)];
        target_clear(&qi->t);
        if (parse_url(qi->pub.cfg->scheduler.redis_url, &qi->t, msg, sizeof(msg)) < 0) {
            set_err(qi, "%s", msg);
            return NR_EIO;
        }
        qi->target_ok = true;
        if (qi->t.is_unix)
            snprintf(qi->where, sizeof(qi->where), "unix:%s", qi->t.host);
        else if (strchr(qi->t.host, ':') != NULL)
            snprintf(qi->where, sizeof(qi->where), "[%s]:%d", qi->t.host, qi->t.port);
        else
            snprintf(qi->where, sizeof(qi->where), "%s:%d", qi->t.host, qi->t.port);
    }

    if (qi->t.is_unix)
        rc = redisConnectUnixWithTimeout(qi->t.host, tv);
    else
        rc = redisConnectWithTimeout(qi->t.host, qi->t.port, tv);
    if (rc == NULL) {
        set_err(qi, "redis at %s: cannot allocate a connection", qi->where);
        return NR_EIO;
    }
    if (rc->err) {
        set_err(qi, "cannot connect to redis at %s: %s", qi->where, rc->errstr);
        redisFree(rc);
        return NR_EIO;
    }
    qi->pub.rc = rc;
    if (!qi->t.is_unix)
        redisEnableKeepAlive(rc);

    if (authenticate(qi) < 0 || select_db(qi) < 0 || create_group(qi) < 0) {
        disconnect(qi);
        return NR_EIO;
    }
    return NR_OK;
}

static char *default_consumer(void)
{
    char host[256];

    if (gethostname(host, sizeof(host)) != 0)
        strcpy(host, "unknown");
    host[sizeof(host) - 1] = '\0';
    return nr_asprintf("%s:%ld", host, (long)getpid());
}

struct nr_queue *nr_queue_connect(const struct nr_config *cfg, const char *consumer)
{
    struct queue_i *qi = nr_calloc(1, sizeof(*qi));
    static const struct nr_config empty;

    qi->pub.cfg = cfg ? cfg : &empty;
    snprintf(qi->where, sizeof(qi->where), "(unknown)");
    if (consumer != NULL && consumer[0] != '\0')
        qi->pub.consumer = nr_strdup(consumer);
    else if (cfg != NULL && cfg->worker.consumer_name && cfg->worker.consumer_name[0])
        qi->pub.consumer = nr_strdup(cfg->worker.consumer_name);
    else
        qi->pub.consumer = default_consumer();
    do_connect(qi);
    return &qi->pub;
}

int nr_queue_reset(struct nr_queue *q)
{
    if (q == NULL)
        return NR_EINVAL;
    return do_connect(qi_of(q));
}

void nr_queue_free(struct nr_queue *q)
{
    struct queue_i *qi;

    if (q == NULL)
        return;
    qi = qi_of(q);
    disconnect(qi);
    target_clear(&qi->t);
    free(qi->pending_after);
    free(qi->claim_cursor);
    free(qi->pub.consumer);
    free(qi);
}

/* -------------------------------------------------------------------- read */

void nr_queue_msg_clear(struct nr_queue_msg *m)
{
    if (m == NULL)
        return;
    free(m->entry_id);
    free(m->payload);
    memset(m, 0, sizeof(*m));
}

static bool is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* One entry [id, fields] of an XREADGROUP reply into m.  fields is nil for
 * an entry deleted while pending, and may lack "payload"; both give a NULL
 * payload. */
static bool entry_of(const redisReply *e, struct nr_queue_msg *m)
{
    const redisReply *fields;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !is_str(e->element[0]))
        return false;
    memset(m, 0, sizeof(*m));
    m->entry_id = nr_strndup(e->element[0]->str, e->element[0]->len);
    fields = e->element[1];
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return true;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (is_str(k) && k->len == 7 && memcmp(k->str, "payload", 7) == 0 && is_str(v)) {
            m->payload = nr_malloc(v->len + 1);
            memcpy(m->payload, v->str, v->len);
            m->payload[v->len] = '\0';
            m->payload_len = v->len;
            break;
        }
    }
    return true;
}

/* Parse a reply to XREADGROUP ... STREAMS <one stream> into msgs. */
static int entries_of(struct queue_i *qi, const redisReply *r, struct nr_queue_msg *msgs,
                      size_t max, size_t *n)
{
    const redisReply *entries;
    size_t got = 0;

    if (r->type == REDIS_REPLY_NIL) {
        *n = 0;
        return NR_OK;
    }
    if (r->type != REDIS_REPLY_ARRAY)
        goto bad;
    if (r->elements == 0) {
        *n = 0;
        return NR_OK;
    }
    /* [[stream, [entry, ...]]] */
    if (r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements < 2)
        goto bad;
    entries = r->element[0]->element[1];
    if (entries->type == REDIS_REPLY_NIL) {
        *n = 0;
        return NR_OK;
    }
    if (entries->type != REDIS_REPLY_ARRAY)
        goto bad;
    for (size_t i = 0; i < entries->elements && got < max; i++) {
        if (!entry_of(entries->element[i], &msgs[got])) {
            for (size_t k = 0; k < got; k++)
                nr_queue_msg_clear(&msgs[k]);
            goto bad;
        }
        got++;
    }
    *n = got;
    return NR_OK;

bad:
    set_err(qi, "redis at %s: XREADGROUP returned a reply of an unexpected shape", qi->where);
    return NR_EIO;
}

/* XREADGROUP from id ("0"/an id: own pending entries after it; ">": new
 * ones).  block_ms < 0: no BLOCK. */
static int xreadgroup(struct queue_i *qi, const char *id, int block_ms,
                      struct nr_queue_msg *msgs, size_t max, size_t *n)
{
    char count[24], block[16];
    int timeout = base_timeout_ms(qi);

    snprintf(count, sizeof(count), "%zu", max);
    snprintf(block, sizeof(block), "%d", block_ms);
    if (block_ms >= 0 && block_ms + BLOCKING_MARGIN_MS > timeout)
        timeout = block_ms + BLOCKING_MARGIN_MS;

    for (int attempt = 0;; attempt++) {
        struct cmd c = { 0 };
        redisReply *r;
        int rc;

        cmd_str(&c, "XREADGROUP");
        cmd_str(&c, "GROUP");
        cmd_str(&c, group_of(qi));
        cmd_str(&c, qi->pub.consumer);
        if (block_ms >= 0) {
            cmd_str(&c, "BLOCK");
            cmd_str(&c, block);
        }
        cmd_str(&c, "COUNT");
        cmd_str(&c, count);
        cmd_str(&c, "STREAMS");
        cmd_str(&c, stream_of(qi));
        cmd_str(&c, id);
        if ((r = command(qi, timeout, "XREADGROUP", &c)) == NULL)
            return NR_EIO;
        /* The stream or the group went away (FLUSHDB, a restart without
         * persistence, an operator): make the group again, once. */
        if (attempt == 0 && (is_error(r, "NOGROUP") || is_error(r, "UNBLOCKED"))) {
            freeReplyObject(r);
            if (create_group(qi) < 0)
                return NR_EIO;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            reply_err(qi, "XREADGROUP", r);
            return NR_EIO;
        }
        rc = entries_of(qi, r, msgs, max, n);
        freeReplyObject(r);
        return rc;
    }
}

int nr_queue_read(struct nr_queue *q, struct nr_queue_msg *msgs, size_t max,
                  int block_ms, size_t *n)
{
    struct queue_i *qi;
    size_t got = 0;
    int rc;

    if (q == NULL || n == NULL || (msgs == NULL && max > 0))
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    if (max == 0) {
        *n = 0;
        return NR_OK;
    }

    /* After a (re)connect, first hand out again what this consumer was
     * given before and never acknowledged, in id order, max at a time. */
    if (!qi->pending_done) {
        rc = xreadgroup(qi, qi->pending_after ? qi->pending_after : "0", -1, msgs, max, &got);
        if (rc < 0)
            return rc;
        if (got > 0) {
            free(qi->pending_after);
            qi->pending_after = nr_strdup(msgs[got - 1].entry_id);
            if (got < max)
                qi->pending_done = true;
            *n = got;
            return NR_OK;
        }
        qi->pending_done = true;
        free(qi->pending_after);
        qi->pending_after = NULL;
    }

    /* BLOCK 0 would mean forever to Redis; 0 here means do not block. */
    if (block_ms > INT_MAX - BLOCKING_MARGIN_MS)
        block_ms = INT_MAX - BLOCKING_MARGIN_MS;
    rc = xreadgroup(qi, ">", block_ms > 0 ? block_ms : -1, msgs, max, &got);
    if (rc < 0)
        return rc;
    *n = got;
    return NR_OK;
}

/* --------------------------------------------------------- claim and touch */

int nr_queue_claim(struct nr_queue *q, long idle_ms, struct nr_queue_msg *msgs,
                   size_t max, size_t *n)
{
    struct queue_i *qi;
    struct cmd c = { 0 };
    char idle[24], count[24];
    redisReply *r;
    size_t got = 0;

    if (q == NULL || n == NULL || (msgs == NULL && max > 0) || idle_ms < 0)
        return NR_EINVAL;
    qi = qi_of(q);
    if (max == 0) {
        *n = 0;
        return NR_OK;
    }
    snprintf(idle, sizeof(idle), "%ld", idle_ms);
    snprintf(count, sizeof(count), "%zu", max);
    cmd_str(&c, "XAUTOCLAIM");
    cmd_str(&c, stream_of(qi));
    cmd_str(&c, group_of(qi));
    cmd_str(&c, qi->pub.consumer);
    cmd_str(&c, idle);
    cmd_str(&c, qi->claim_cursor ? qi->claim_cursor : "0-0");
    cmd_str(&c, "COUNT");
    cmd_str(&c, count);
    if ((r = command(qi, base_timeout_ms(qi), "XAUTOCLAIM", &c)) == NULL)
        return NR_EIO;
    if (is_error(r, "NOGROUP")) {           /* nothing to claim yet */
        freeReplyObject(r);
        *n = 0;
        return NR_OK;
    }
    /* [next-start, [entry, ...], [deleted-id, ...]] (Redis 7) */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0]) ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        if (r->type == REDIS_REPLY_ERROR)
            reply_err(qi, "XAUTOCLAIM", r);
        else
            set_err(qi, "redis at %s: XAUTOCLAIM returned a reply of an unexpected shape", qi->where);
        freeReplyObject(r);
        return NR_EIO;
    }
    free(qi->claim_cursor);
    qi->claim_cursor = nr_strndup(r->element[0]->str, r->element[0]->len);
    const redisReply *entries = r->element[1];
    for (size_t i = 0; i < entries->elements && got < max; i++) {
        /* an entry deleted from the stream comes back as nil in Redis 7.0 */
        if (entries->element[i]->type == REDIS_REPLY_NIL)
            continue;
        if (!entry_of(entries->element[i], &msgs[got])) {
            for (size_t k = 0; k < got; k++)
                nr_queue_msg_clear(&msgs[k]);
            set_err(qi, "redis at %s: XAUTOCLAIM returned an entry of an unexpected shape", qi->where);
            freeReplyObject(r);
            return NR_EIO;
        }
        got++;
    }
    freeReplyObject(r);
    *n = got;
    return NR_OK;
}

int nr_queue_touch(struct nr_queue *q, char *const *entry_ids, size_t n)
{
    struct queue_i *qi;
    const size_t fixed = 6, per = MAX_ARGS - fixed;

    if (q == NULL || (entry_ids == NULL && n > 0))
        return NR_EINVAL;
    qi = qi_of(q);
    for (size_t i = 0; i < n; i += per) {
        struct cmd c = { 0 };
        redisReply *r;

        cmd_str(&c, "XCLAIM");
        cmd_str(&c, stream_of(qi));
        cmd_str(&c, group_of(qi));
        cmd_str(&c, qi->pub.consumer);
        cmd_str(&c, "0");
        for (size_t k = i; k < n && k < i + per; k++)
            cmd_str(&c, entry_ids[k]);
        cmd_str(&c, "JUSTID");
        if ((r = command(qi, base_timeout_ms(qi), "XCLAIM", &c)) == NULL)
            return NR_EIO;
        if (r->type == REDIS_REPLY_ERROR && !is_error(r, "NOGROUP")) {
            reply_err(qi, "XCLAIM", r);
            freeReplyObject(r);
            return NR_EIO;
        }
        freeReplyObject(r);
    }
    return NR_OK;
}

/* ------------------------------------------------------------ ack and dead */

int nr_queue_ack(struct nr_queue *q, const char *entry_id, const char *final_status)
{
    struct queue_i *qi;
    struct cmd cmds[3];
    char *key;
    int n = 0, rc;

    if (q == NULL || entry_id == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    memset(cmds, 0, sizeof(cmds));
    key = nr_asprintf(DONE_KEY_PREFIX "%s", entry_id);

    cmd_str(&cmds[n], "XACK");
    cmd_str(&cmds[n], stream_of(qi));
    cmd_str(&cmds[n], group_of(qi));
    cmd_str(&cmds[n], entry_id);
    n++;
    if (final_status != NULL) {
        cmd_str(&cmds[n], "RPUSH");
        cmd_str(&cmds[n], key);
        cmd_str(&cmds[n], final_status);
        n++;
        cmd_str(&cmds[n], "EXPIRE");
        cmd_str(&cmds[n], key);
        cmd_str(&cmds[n], DONE_TTL_S);
        n++;
    }
    rc = transaction(qi, "acknowledging", cmds, n);
    free(key);
    return rc;
}

int nr_queue_dead(struct nr_queue *q, const struct nr_queue_msg *m, const char *reason)
{
    struct queue_i *qi;
    struct cmd cmds[2];

    if (q == NULL || m == NULL || m->entry_id == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    memset(cmds, 0, sizeof(cmds));

    cmd_str(&cmds[0], "XADD");
    cmd_str(&cmds[0], dead_stream_of(qi));
    cmd_str(&cmds[0], "MAXLEN");
    cmd_str(&cmds[0], "~");
    cmd_str(&cmds[0], DEAD_STREAM_MAXLEN);
    cmd_str(&cmds[0], "*");
    cmd_str(&cmds[0], "payload");
    if (m->payload != NULL)
        cmd_add(&cmds[0], m->payload, m->payload_len);
    else
        cmd_add(&cmds[0], "", 0);
    cmd_str(&cmds[0], "reason");
    cmd_str(&cmds[0], reason ? reason : "");
    cmd_str(&cmds[0], "entry_id");
    cmd_str(&cmds[0], m->entry_id);
    cmd_str(&cmds[0], "consumer");
    cmd_str(&cmds[0], qi->pub.consumer);

    cmd_str(&cmds[1], "XACK");
    cmd_str(&cmds[1], stream_of(qi));
    cmd_str(&cmds[1], group_of(qi));
    cmd_str(&cmds[1], m->entry_id);
    return transaction(qi, "dead-lettering", cmds, 2);
}

/* ------------------------------------------------------- enqueue and wait */

int nr_queue_enqueue(struct nr_queue *q, const char *payload_json, char **id_out)
{
    struct queue_i *qi;
    struct cmd c = { 0 };
    redisReply *r;

    if (q == NULL || payload_json == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    cmd_str(&c, "XADD");
    cmd_str(&c, stream_of(qi));
    cmd_str(&c, "*");
    cmd_str(&c, "payload");
    cmd_str(&c, payload_json);
    if ((r = command(qi, base_timeout_ms(qi), "XADD", &c)) == NULL)
        return NR_EIO;
    if (r->type != REDIS_REPLY_STRING) {
        reply_err(qi, "XADD", r);
        return NR_EIO;
    }
    if (id_out != NULL)
        *id_out = nr_strndup(r->str, r->len);
    freeReplyObject(r);
    return NR_OK;
}

int nr_queue_wait_done(struct nr_queue *q, const char *entry_id, double timeout_s,
                       char **status)
{
    struct queue_i *qi;
    struct cmd c = { 0 };
    redisReply *r, *v;
    char *key, secs[32];
    long long ms;
    bool blocking;

    if (q == NULL || entry_id == NULL || status == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    /* Clamp (NaN too) to what the socket timeout, an int of ms, can cover
     * with its margin: about 24 days. */
    if (!(timeout_s <= WAIT_MAX_S))
        timeout_s = WAIT_MAX_S;
    ms = timeout_s > 0 ? (long long)(timeout_s * 1000.0 + 0.5) : 0;
    blocking = ms > 0;      /* BLPOP 0 would wait forever: use LPOP */
    key = nr_asprintf(DONE_KEY_PREFIX "%s", entry_id);

    if (blocking) {
        /* Sub-second timeouts need Redis 6; fall back to whole seconds when
         * the server refuses a fraction. */
        snprintf(secs, sizeof(secs), "%lld.%03lld", ms / 1000, ms % 1000);
        for (int attempt = 0;; attempt++) {
            c.argc = 0;
            cmd_str(&c, "BLPOP");
            cmd_str(&c, key);
            cmd_str(&c, secs);
            r = command(qi, (int)(ms + BLOCKING_MARGIN_MS), "BLPOP", &c);
            if (r == NULL || attempt > 0 || !is_error(r, "ERR timeout"))
                break;
            freeReplyObject(r);
            snprintf(secs, sizeof(secs), "%lld", (ms + 999) / 1000);
        }
    } else {
        cmd_str(&c, "LPOP");
        cmd_str(&c, key);
        r = command(qi, base_timeout_ms(qi), "LPOP", &c);
    }
    free(key);
    if (r == NULL)
        return NR_EIO;

    if (r->type == REDIS_REPLY_NIL) {
        freeReplyObject(r);
        return NR_ETIMEOUT;
    }
    v = NULL;
    if (blocking && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && is_str(r->element[1]))
        v = r->element[1];
    else if (!blocking && is_str(r))
        v = r;
    if (v == NULL) {
        reply_err(qi, blocking ? "BLPOP" : "LPOP", r);
        return NR_EIO;
    }
    *status = nr_strndup(v->str, v->len);
    freeReplyObject(r);
    return NR_OK;
}
