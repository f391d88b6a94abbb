/*
 * conn.c - struct nr_redis of redis.h: one connection, and the one way the
 * worker sends commands on it (single, pipelined, MULTI/EXEC).
 *
 * Every command goes with redisCommandArgv()/redisAppendCommandArgv() and
 * explicit lengths, so keys and values are binary safe.  The socket runs in
 * blocking mode with a read/write timeout, so no call waits forever; a
 * blocking command raises the timeout for its own call.  A hiredis context
 * is unusable after any I/O error or timeout, hence r->err: once set,
 * every call refuses until nr_redis_reconnect().
 *
 * Messages: a failure of the connection names the server ("redis at
 * host:port: XREADGROUP failed: ..."), since that is what is wrong; a
 * refusal names the command and the server's words ("redis: LMOVE from
 * queue q refused: WRONGTYPE ...").  Never the URL, and as a last guard the
 * password is masked in them.
 */
#include "netraven/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

/* ---------------------------------------------------------------- commands */

void nr_redis_arg_n(struct nr_redis_cmd *c, const char *s, size_t n)
{
    if (c->argc >= NR_REDIS_MAX_ARGS)
        abort();    /* a programming error: every caller's count is bounded */
    c->argv[c->argc] = s;
    c->len[c->argc] = n;
    c->argc++;
}

void nr_redis_arg(struct nr_redis_cmd *c, const char *s)
{
    nr_redis_arg_n(c, s, strlen(s));
}

void nr_redis_arg_own(struct nr_redis_cmd *c, char *s, size_t n)
{
    if (c->nowned >= NR_REDIS_MAX_OWNED)
        abort();
    c->owned[c->nowned++] = s;
    nr_redis_arg_n(c, s, n);
}

void nr_redis_argf(struct nr_redis_cmd *c, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        fputs("netraven-worker: out of memory\n", stderr);
        abort();
    }
    nr_redis_arg_own(c, s, (size_t)n);
}

void nr_redis_cmd_clear(struct nr_redis_cmd *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    memset(c, 0, sizeof(*c));
}

struct nr_redis_cmd *nr_redis_batch_add(struct nr_redis_batch *b)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 8;
        b->c = nr_realloc(b->c, b->cap * sizeof(*b->c));
    }
    memset(&b->c[b->n], 0, sizeof(b->c[b->n]));
    return &b->c[b->n++];
}

void nr_redis_batch_clear(struct nr_redis_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n; i++)
        nr_redis_cmd_clear(&b->c[i]);
    free(b->c);
    memset(b, 0, sizeof(*b));
}

bool nr_redis_is_error(const struct redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);

    return r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= n &&
           memcmp(r->str, prefix, n) == 0;
}

/* ------------------------------------------------------------------ errors */

/* errstr = the formatted text, control characters as '?', the password
 * masked ("****") in one left-to-right pass. */
static void set_errstr(struct nr_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_errstr(struct nr_redis *r, const char *fmt, ...)
{
    const char *pw = r->url_ok ? r->url.password : NULL;
    size_t plen = pw ? strlen(pw) : 0, o = 0;
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (const char *p = buf; *p && o + 1 < sizeof(r->errstr);) {
        if (plen > 0 && strncmp(p, pw, plen) == 0) {
            for (int k = 0; k < 4 && o + 1 < sizeof(r->errstr); k++)
                r->errstr[o++] = '*';
            p += plen;
            continue;
        }
        r->errstr[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        p++;
    }
    r->errstr[o] = '\0';
}

/* The context failed (I/O, EOF, protocol): record why, naming what. */
static int io_fail(struct nr_redis *r, const char *what)
{
    const redisContext *rc = r->rc;
    const char *why = rc && rc->errstr[0] ? rc->errstr : "connection lost";

    if (rc && rc->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable") != NULL)
        set_errstr(r, "redis at %s: %s timed out after %d ms", r->where, what, r->timeout_ms);
    else
        set_errstr(r, "redis at %s: %s failed: %s", r->where, what, why);
    r->err = NR_EIO;
    return NR_EIO;
}

static void keep_reply(struct nr_redis *r, const redisReply *reply)
{
    size_t n = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && reply->str != NULL) {
        n = reply->len > NR_REDIS_REPLY_MAX ? NR_REDIS_REPLY_MAX : reply->len;
        memcpy(r->reply, reply->str, n);
    }
    r->reply[n] = '\0';
}

int nr_redis_refused(struct nr_redis *r, const char *what, const struct redisReply *reply)
{
    keep_reply(r, reply);
    r->refused_cmd[0] = '\0';
    if (r->reply[0] != '\0')
        set_errstr(r, "redis: %s refused: %s", what, r->reply);
    else
        set_errstr(r, "redis: %s returned an unexpected reply (type %d)", what,
                   reply ? reply->type : -1);
    return NR_EINVAL;
}

/* ------------------------------------------------------------- connection */

static void disconnect(struct nr_redis *r)
{
    if (r->rc != NULL)
        redisFree(r->rc);
    r->rc = NULL;
    r->timeout_ms = 0;
}

struct nr_redis *nr_redis_new(const char *url, const char *name, int command_ms)
{
    struct nr_redis *r = nr_calloc(1, sizeof(*r));

    r->url_text = nr_strdup(url);
    r->name = nr_strdup(name ? name : "redis URL");
    r->command_ms = command_ms > 0 ? command_ms : 5000;
    snprintf(r->where, sizeof(r->where), "(unknown)");
    nr_redis_reconnect(r);
    return r;
}

int nr_redis_reconnect(struct nr_redis *r)
{
    char msg[sizeof(r->errstr)];

    if (r == NULL)
        return NR_EINVAL;
    disconnect(r);
    r->err = 0;
    r->errstr[0] = r->reply[0] = r->refused_cmd[0] = '\0';
    if (!r->url_ok) {
        nr_redis_url_clear(&r->url);
        if (nr_redis_url_parse(r->url_text, r->name, &r->url, msg, sizeof(msg)) < 0) {
            set_errstr(r, "%s", msg);
            r->err = NR_EIO;
            return NR_EIO;
        }
        r->url_ok = true;
        nr_redis_url_where(&r->url, r->where, sizeof(r->where));
    }
    if (nr_redis_connect(&r->url, r->command_ms, &r->rc, msg, sizeof(msg)) < 0) {
        r->rc = NULL;
        set_errstr(r, "%s", msg);
        r->err = NR_EIO;
        return NR_EIO;
    }
    r->timeout_ms = r->command_ms;
    return NR_OK;
}

void nr_redis_free(struct nr_redis *r)
{
    if (r == NULL)
        return;
    disconnect(r);
    nr_redis_url_clear(&r->url);
    free(r->url_text);
    free(r->name);
    free(r);
}

/* May a command be sent?  Sets err when there is no connection. */
static bool usable(struct nr_redis *r)
{
    if (r->err)
        return false;
    if (r->rc == NULL) {
        set_errstr(r, "redis at %s: not connected", r->where);
        r->err = NR_EIO;
        return false;
    }
    return true;
}

static int set_timeout(struct nr_redis *r, int ms)
{
    struct timeval tv;

    if (ms <= 0)
        ms = r->command_ms;
    if (r->timeout_ms == ms)
        return NR_OK;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    if (redisSetTimeout(r->rc, tv) != REDIS_OK)
        return io_fail(r, "setting the socket timeout");
    r->timeout_ms = ms;
    return NR_OK;
}

/* Part of a pipeline may sit in hiredis's output buffer: the connection
 * is out of step and must be made again. */
static int oom(struct nr_redis *r, const char *what)
{
    set_errstr(r, "redis at %s: %s: out of memory building the command", r->where, what);
    r->err = NR_EIO;
    return NR_EIO;
}

/* --------------------------------------------------------------- sending */

struct redisReply *nr_redis_command(struct nr_redis *r, int timeout_ms, const char *what,
                                    const struct nr_redis_cmd *c)
{
    redisReply *reply;

    if (!usable(r) || set_timeout(r, timeout_ms) < 0)
        return NULL;
    /* hiredis only reads argv; its prototype lacks the inner const */
    reply = redisCommandArgv(r->rc, c->argc, (const char **)c->argv, c->len);
    if (reply == NULL)
        io_fail(r, what);
    return reply;
}

int nr_redis_simple(struct nr_redis *r, const char *what, const struct nr_redis_cmd *c)
{
    redisReply *reply = nr_redis_command(r, 0, what, c);
    int rc = NR_OK;

    if (reply == NULL)
        return NR_EIO;
    if (reply->type == REDIS_REPLY_ERROR)
        rc = nr_redis_refused(r, what, reply);
    freeReplyObject(reply);
    return rc;
}

int nr_redis_pipeline(struct nr_redis *r, int timeout_ms, const char *what,
                      const struct nr_redis_batch *b, struct redisReply **replies)
{
    size_t i;

    if (!usable(r) || set_timeout(r, timeout_ms) < 0)
        return NR_EIO;
    for (i = 0; i < b->n; i++)
        if (redisAppendCommandArgv(r->rc, b->c[i].argc, b->c[i].argv, b->c[i].len) != REDIS_OK)
            return oom(r, what);
    for (i = 0; i < b->n; i++) {
        void *reply = NULL;

        if (redisGetReply(r->rc, &reply) != REDIS_OK || reply == NULL) {
            while (i-- > 0) {
                freeReplyObject(replies[i]);
                replies[i] = NULL;
            }
            return io_fail(r, what);
        }
        replies[i] = reply;
    }
    return NR_OK;
}

/* EXEC's array: the first command whose result is an error is refused. */
static int exec_result(struct nr_redis *r, const char *what, const struct nr_redis_batch *b,
                       const redisReply *exec)
{
    if (exec->type == REDIS_REPLY_NIL)
        return NR_NOTFOUND;
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != b->n)
        return nr_redis_refused(r, what, exec);
    for (size_t k = 0; k < exec->elements; k++) {
        const redisReply *e = exec->element[k];
        int clen;

        if (e->type != REDIS_REPLY_ERROR)
            continue;
        keep_reply(r, e);
        clen = b->c[k].len[0] < sizeof(r->refused_cmd) ? (int)b->c[k].len[0]
                                                       : (int)sizeof(r->refused_cmd) - 1;
        snprintf(r->refused_cmd, sizeof(r->refused_cmd), "%.*s", clen, b->c[k].argv[0]);
        set_errstr(r, "redis: %s refused while %s: %s", r->refused_cmd, what, r->reply);
        return NR_EINVAL;
    }
    return NR_OK;
}

int nr_redis_transaction(struct nr_redis *r, const char *what, const struct nr_redis_batch *b)
{
    static const char *multi[] = { "MULTI" }, *exec[] = { "EXEC" };
    static const size_t multi_len[] = { 5 }, exec_len[] = { 4 };
    int rcode = NR_OK;

    if (!usable(r) || set_timeout(r, 0) < 0)
        return NR_EIO;
    if (redisAppendCommandArgv(r->rc, 1, multi, multi_len) != REDIS_OK)
        return oom(r, what);
    for (size_t i = 0; i < b->n; i++)
        if (redisAppendCommandArgv(r->rc, b->c[i].argc, b->c[i].argv, b->c[i].len) != REDIS_OK)
            return oom(r, what);
    if (redisAppendCommandArgv(r->rc, 1, exec, exec_len) != REDIS_OK)
        return oom(r, what);

    /* MULTI -> +OK, each command -> +QUEUED (or an error), EXEC -> results */
    for (size_t i = 0; i < b->n + 2; i++) {
        void *v = NULL;
        redisReply *reply;

        if (redisGetReply(r->rc, &v) != REDIS_OK || v == NULL)
            return io_fail(r, what);
        reply = v;
        if (i < b->n + 1) {
            if (reply->type == REDIS_REPLY_ERROR && rcode == NR_OK)
                rcode = nr_redis_refused(r, what, reply);
        } else if (rcode == NR_OK) {
            rcode = exec_result(r, what, b, reply);
        }
        freeReplyObject(reply);
    }
    return rcode;
}
