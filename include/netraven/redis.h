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
 * Caller's steps:
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

#endif /* NR_REDIS_H */
