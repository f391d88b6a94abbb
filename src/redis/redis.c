/*
 * redis.c - the one connect of redis.h: socket, timeouts, AUTH, SELECT.
 *
 * The stream queue (and through it the python-rq protocol) and the live
 * log publisher open their connections here, so that they log in the same
 * way redis-py does for NetRaven's API: AUTH with the user name when there
 * is one, then, if the server is older than Redis 6 (it answers "wrong
 * number of arguments" to a two-argument AUTH), AUTH with the password
 * alone.
 *
 * Messages name the server as host:port or unix:path, never the URL, and
 * as a last guard the password is masked in them.
 */
#include "netraven/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

static struct timeval tv_ms(int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    return tv;
}

/* err = the formatted text, control characters as '?', secret as "****". */
static int fail(char *err, size_t errlen, const char *secret, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, const char *secret, const char *fmt, ...)
{
    char buf[512], *o = err;
    size_t slen = secret ? strlen(secret) : 0;
    va_list ap;

    if (err == NULL || errlen == 0)
        return NR_EIO;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    for (const char *p = buf; *p && (size_t)(o - err) + 1 < errlen;) {
        if (slen > 0 && strncmp(p, secret, slen) == 0) {
            for (int k = 0; k < 4 && (size_t)(o - err) + 1 < errlen; k++)
                *o++ = '*';
            p += slen;
            continue;
        }
        *o++ = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        p++;
    }
    *o = '\0';
    return NR_EIO;
}

/* The reply's text for a message, at most 160 bytes of it. */
#define REPLY_FMT "%.*s"
#define REPLY_ARG(r) (int)((r)->len > 160 ? 160 : (r)->len), (r)->str

static bool is_error(const redisReply *r, const char *prefix)
{
    size_t n = strlen(prefix);
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= n &&
           strncasecmp(r->str, prefix, n) == 0;
}

static bool is_ok(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
}

static redisReply *cmd(redisContext *c, int argc, const char **argv)
{
    size_t len[3];

    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    return redisCommandArgv(c, argc, argv, len);
}

static int authenticate(redisContext *c, const struct nr_redis_url *u, const char *where,
                        char *err, size_t errlen)
{
    const char *pw = u->password ? u->password : "";
    const char *argv[3] = { "AUTH" };
    redisReply *r;
    int argc = 1, rc = 0;

    if (u->user == NULL && u->password == NULL)
        return 0;
    if (u->user != NULL)
        argv[argc++] = u->user;
    argv[argc++] = pw;
    r = cmd(c, argc, argv);
    if (u->user != NULL && is_error(r, "ERR wrong number of arguments")) {
        /* a server older than Redis 6: a password is all it takes */
        freeReplyObject(r);
        argv[1] = pw;
        r = cmd(c, 2, argv);
    }
    if (r == NULL)
        rc = fail(err, errlen, u->password, "redis at %s: AUTH failed: %s", where,
                  c->errstr[0] ? c->errstr : "connection lost");
    else if (r->type == REDIS_REPLY_ERROR)
        rc = fail(err, errlen, u->password, "redis at %s: AUTH failed: " REPLY_FMT, where,
                  REPLY_ARG(r));
    else if (!is_ok(r))
        rc = fail(err, errlen, u->password, "redis at %s: AUTH failed: an unexpected reply "
                  "(type %d)", where, r->type);
    freeReplyObject(r);
    return rc;
}

static int select_db(redisContext *c, const struct nr_redis_url *u, const char *where,
                     char *err, size_t errlen)
{
    char db[16];
    const char *argv[2] = { "SELECT", db };
    redisReply *r;
    int rc = 0;

    if (u->db == 0)
        return 0;
    snprintf(db, sizeof(db), "%d", u->db);
    r = cmd(c, 2, argv);
    if (r == NULL)
        rc = fail(err, errlen, u->password, "redis at %s: SELECT failed: %s", where,
                  c->errstr[0] ? c->errstr : "connection lost");
    else if (r->type == REDIS_REPLY_ERROR)
        rc = fail(err, errlen, u->password, "redis at %s: SELECT failed: " REPLY_FMT, where,
                  REPLY_ARG(r));
    else if (!is_ok(r))
        rc = fail(err, errlen, u->password, "redis at %s: SELECT failed: an unexpected reply "
                  "(type %d)", where, r->type);
    freeReplyObject(r);
    return rc;
}

int nr_redis_connect(const struct nr_redis_url *u, int command_timeout_ms,
                     struct redisContext **out, char *err, size_t errlen)
{
    struct timeval ctv = tv_ms(NR_REDIS_CONNECT_TIMEOUT_MS);
    char where[128];
    redisContext *c;

    if (u == NULL || (u->path == NULL && u->host == NULL))
        return fail(err, errlen, NULL, "redis: no server to connect to");
    nr_redis_url_where(u, where, sizeof(where));
    c = u->path ? redisConnectUnixWithTimeout(u->path, ctv)
                : redisConnectWithTimeout(u->host, u->port, ctv);
    if (c == NULL)
        return fail(err, errlen, NULL, "redis at %s: cannot allocate a connection", where);
    if (c->err) {
        fail(err, errlen, u->password, "cannot connect to redis at %s: %s", where, c->errstr);
        redisFree(c);
        return NR_EIO;
    }
    if (u->path == NULL)
        redisEnableKeepAlive(c);
    if (command_timeout_ms > 0 && redisSetTimeout(c, tv_ms(command_timeout_ms)) != REDIS_OK) {
        fail(err, errlen, u->password, "redis at %s: setting the socket timeout failed: %s",
             where, c->errstr);
        redisFree(c);
        return NR_EIO;
    }
    if (authenticate(c, u, where, err, errlen) < 0 || select_db(c, u, where, err, errlen) < 0) {
        redisFree(c);
        return NR_EIO;
    }
    *out = c;
    return 0;
}
