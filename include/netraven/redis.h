/*
 * redis.h - one reading of a Redis URL, and one way to open a connection.
 *
 * scheduler.redis_url is also read by NetRaven's API, with redis-py
 * (Redis.from_url, connection.parse_url).  The worker reads it the same way
 * in one place, so that the stream queue, the python-rq protocol, the live
 * log publisher and the config masker cannot disagree on what a URL means:
 *
 *   redis://[[user][:password]@]host[:port][/db][?db=N&username=U&password=P]
 *   unix://[[user][:password]@]/path/to/socket[?db=N&username=U&password=P]
 *
 * As redis-py (urllib's urlparse, then unquote):
 *   - the user info ends at the last '@' of the network location and is
 *     split at its first ':': the user name before it, the password after.
 *     A lone "x@" is the user name x, with no password ("redis://x@host"
 *     sends AUTH x ""), and ":pw@" is a password with no user name;
 *     empty parts count as absent;
 *   - %XX escapes are decoded, and a '%' that starts no valid escape is
 *     kept as it is ("pw%zz" is the password "pw%zz"); query values are
 *     decoded twice ('+' is a space in them), as redis-py does;
 *   - the host is lower-cased, "localhost" when absent; the port 6379 when
 *     absent; an IPv6 host is written in brackets;
 *   - the database is ?db=N, else the path's number (/N), else 0;
 *     username= and password= in the query count only where the user info
 *     has none;
 *   - unix:// takes the socket path from the URL's path.
 * Where redis-py would quietly use something the URL's writer cannot have
 * meant, this parser refuses instead, with a message naming the part (and
 * never quoting the URL, which may hold a password): port 0, a path that
 * is not a database number, a host in a unix:// URL, an '@' after the
 * host (a password with a raw '/' or '?'), a %00 escape.  rediss:// (TLS)
 * is refused: the worker has no TLS client.
 *
 * On top of that, one connection object (struct nr_redis, conn.c) with
 * one way to send commands, pipelines and MULTI/EXEC transactions, which
 * the stream queue, the python-rq protocol and the metrics scrape use
 * (the live log publisher opens its connection with nr_redis_connect()):
 *
 *   struct nr_redis *r = nr_redis_new(url, "scheduler.redis_url", 5000);
 *   if (r->err) ... r->errstr says why; nr_redis_reconnect(r) later ...
 *   struct nr_redis_cmd c = { 0 };
 *   nr_redis_arg(&c, "LLEN"); nr_redis_argf(&c, "rq:queue:%s", q);
 *   reply = nr_redis_command(r, 0, "LLEN", &c);  nr_redis_cmd_clear(&c);
 *   if (reply == NULL) ... I/O failed: r->err is set, reconnect ...
 *   else if (reply->type == REDIS_REPLY_ERROR) nr_redis_refused(r, "LLEN", reply);
 *   freeReplyObject(reply);  ...  nr_redis_free(r);
 *
 * Two kinds of failure, never confused:
 *   - "I/O failed" (NR_EIO): the socket broke, timed out, or the protocol
 *     went out of step.  hiredis cannot use such a context again, so
 *     r->err is set and every call refuses with NR_EIO until
 *     nr_redis_reconnect();
 *   - "server refused" (NR_EINVAL, or an error reply handed to the
 *     caller): the server answered with an error (WRONGTYPE on a key
 *     someone else wrote, say).  The connection is fine and stays usable;
 *     r->errstr says what was refused.  Whether a refusal is fatal to the
 *     caller's own object is the caller's rule.
 * No function here frees what it is given: a reply handed out is the
 * caller's to free, on every path, and a command or batch is cleared by
 * whoever built it.
 *
 * Parse and connect alone (url.c, redis.c):
 *   struct nr_redis_url u;
 *   char err[256];
 *   redisContext *c;
 *   if (nr_redis_url_parse(url, "scheduler.redis_url", &u, err, sizeof(err)) < 0)
 *       ... err says why ...
 *   if (nr_redis_connect(&u, command_timeout_ms, &c, err, sizeof(err)) < 0)
 *       ... err says why; nothing to free but u ...
 *   ... commands on c ...; redisFree(c); nr_redis_url_clear(&u);
 */
#ifndef NR_REDIS_H
#define NR_REDIS_H

#include "netraven/common.h"

struct redisContext;
struct redisReply;

#define NR_REDIS_DEFAULT_PORT        6379
#define NR_REDIS_CONNECT_TIMEOUT_MS  5000   /* TCP or socket connect, every caller */

/* Where a URL points and how to log in.  Every string is malloc'd (or
 * NULL) and freed by nr_redis_url_clear(). */
struct nr_redis_url {
    char *host;         /* TCP host; NULL for a unix:// URL */
    int   port;         /* TCP port, 1-65535 */
    char *path;         /* the socket of a unix:// URL; NULL for TCP */
    int   db;           /* 0 and up */
    char *user;         /* NULL: none (AUTH <password> alone) */
    char *password;     /* NULL: none; with user NULL as well, no AUTH */
};

/* Parse url (pure, no I/O).  name is the setting, for messages
 * ("scheduler.redis_url").  Returns 0 with *out filled, or NR_EINVAL with
 * err saying why (never quoting any part of the URL) and *out untouched. */
int  nr_redis_url_parse(const char *url, const char *name, struct nr_redis_url *out,
                        char *err, size_t errlen);
/* Free what u holds and zero it; NULL is fine. */
void nr_redis_url_clear(struct nr_redis_url *u);

/* "host:port", "[v6]:port" or "unix:/path": how messages name the server. */
void nr_redis_url_where(const struct nr_redis_url *u, char *buf, size_t len);

/* url with its password masked ("****"), where the parse above finds one:
 * in the user info and in password= query parameters.  A user name is not
 * masked.  A URL too broken to parse has its whole user info masked.
 * malloc'd; NULL for NULL. */
char *nr_redis_url_mask(const char *url);

/*
 * Connect to u: within NR_REDIS_CONNECT_TIMEOUT_MS, TCP keepalive on, then
 * command_timeout_ms (> 0) as the socket's read/write timeout; AUTH when u
 * has a user or a password (AUTH user password, and AUTH password alone
 * when a server older than Redis 6 answers "wrong number of arguments",
 * as redis-py does); SELECT when db is not 0.  Returns 0 with *out a ready
 * connection the caller frees with redisFree(); or NR_EIO with err saying
 * why ("cannot connect to redis at host:port: ...", "redis at host:port:
 * AUTH failed: ...", "... SELECT failed: ..."; no password in it) and
 * nothing to free.
 */
int  nr_redis_connect(const struct nr_redis_url *u, int command_timeout_ms,
                      struct redisContext **out, char *err, size_t errlen);

/* ------------------------------------------------------------ connection */

/* Arguments of one command; binary safe (explicit lengths). */
#define NR_REDIS_MAX_ARGS   72
#define NR_REDIS_MAX_OWNED  8

struct nr_redis_cmd {
    int         argc;
    const char *argv[NR_REDIS_MAX_ARGS];
    size_t      len[NR_REDIS_MAX_ARGS];
    char       *owned[NR_REDIS_MAX_OWNED];     /* what argf/arg_own made */
    int         nowned;
};

/* A list of commands, for a pipeline or one MULTI/EXEC. */
struct nr_redis_batch {
    struct nr_redis_cmd *c;
    size_t               n, cap;
};

/* Add an argument.  The cmd keeps the pointer: s must outlive the call
 * that sends it.  More than NR_REDIS_MAX_ARGS arguments (or
 * NR_REDIS_MAX_OWNED owned ones) is a programming error: abort(). */
void nr_redis_arg(struct nr_redis_cmd *c, const char *s);
void nr_redis_arg_n(struct nr_redis_cmd *c, const char *s, size_t n);
/* A formatted argument, owned by c. */
void nr_redis_argf(struct nr_redis_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s (malloc'd, n bytes) as an argument; c takes it over. */
void nr_redis_arg_own(struct nr_redis_cmd *c, char *s, size_t n);
/* Free what c owns and zero it, for reuse. */
void nr_redis_cmd_clear(struct nr_redis_cmd *c);

/* A new, zeroed command at the end of b (valid until the next add). */
struct nr_redis_cmd *nr_redis_batch_add(struct nr_redis_batch *b);
/* Clear every command and free the list; b is empty again. */
void nr_redis_batch_clear(struct nr_redis_batch *b);

/* Does r (may be NULL) an error reply whose text starts with prefix? */
bool nr_redis_is_error(const struct redisReply *r, const char *prefix);

#define NR_REDIS_REPLY_MAX  160     /* bytes of a server's text kept */

/* One connection.  Not thread-safe: one thread owns it.  Like hiredis's
 * context, the constructor returns the object even when it failed. */
struct nr_redis {
    struct redisContext *rc;        /* NULL while not connected */
    int   err;                      /* 0, or NR_EIO until nr_redis_reconnect() */
    char  errstr[256];              /* why the last call failed (I/O or
                                     * refused); never the password */
    /* The last refusal, for callers that word their own messages: the
     * server's text ("" when the reply was of an unexpected type), and in
     * a transaction the command EXEC refused ("" when MULTI, a QUEUED or
     * EXEC itself was refused). */
    char  reply[NR_REDIS_REPLY_MAX + 1];
    char  refused_cmd[32];
    char  where[96];                /* "host:port" / "unix:/path" for messages */
    int   command_ms;               /* the default socket timeout */
    int   timeout_ms;               /* the socket's timeout now, 0: unknown */
    struct nr_redis_url url;        /* parsed once (url_ok) */
    bool  url_ok;
    char *url_text;                 /* to parse again after a failed parse */
    char *name;                     /* the setting, for messages */
};

/*
 * Parse url (name is the setting, for messages) and connect with
 * command_ms (> 0) as the default socket timeout.  Never NULL: check
 * r->err (NR_EIO, errstr saying why: the parse or the connect).  Free with
 * nr_redis_free().
 */
struct nr_redis *nr_redis_new(const char *url, const char *name, int command_ms);
/* Drop the connection (if any) and connect again; clears err.  0, or
 * NR_EIO with errstr set. */
int  nr_redis_reconnect(struct nr_redis *r);
/* Close the connection and free r; NULL is fine. */
void nr_redis_free(struct nr_redis *r);

/* Send c and read its reply, the socket timeout set to timeout_ms first
 * (<= 0: command_ms; blocking commands pass their block time plus a
 * margin).  Returns the reply, which may be an error reply, for the caller
 * to free; NULL when I/O failed (err set, errstr names what). */
struct redisReply *nr_redis_command(struct nr_redis *r, int timeout_ms, const char *what,
                                    const struct nr_redis_cmd *c);

/* A command whose reply only has to be no error: 0, NR_EINVAL (refused:
 * errstr) or NR_EIO. */
int nr_redis_simple(struct nr_redis *r, const char *what, const struct nr_redis_cmd *c);

/* Send b's commands at once and read every reply into replies[0..b->n)
 * (each the caller's to free, error replies included).  0, or NR_EIO with
 * nothing to free. */
int nr_redis_pipeline(struct nr_redis *r, int timeout_ms, const char *what,
                      const struct nr_redis_batch *b, struct redisReply **replies);

/*
 * b inside MULTI/EXEC, pipelined, with command_ms.  Every reply is read,
 * so the connection stays in step.  Returns 0 when EXEC ran every command
 * without an error; NR_NOTFOUND when a WATCH aborted EXEC (nothing ran);
 * NR_EINVAL when the server refused (EXECABORT, or a command inside EXEC
 * failed: the others did run, as Redis does; errstr, reply and
 * refused_cmd say which); NR_EIO when I/O failed.
 */
int nr_redis_transaction(struct nr_redis *r, const char *what, const struct nr_redis_batch *b);

/* Record that the server refused what with reply (an error reply, or one
 * of a type the caller did not expect): errstr, reply, refused_cmd ("").
 * err is not touched.  Does not free reply.  Returns NR_EINVAL. */
int nr_redis_refused(struct nr_redis *r, const char *what, const struct redisReply *reply);

#endif /* NR_REDIS_H */
