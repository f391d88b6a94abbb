/*
 * test_redis_url.c - the one Redis URL reading (src/redis/url.c), which
 * must be redis-py's (redis.connection.parse_url: urllib's urlparse, then
 * unquote): what NetRaven's API makes of the same scheduler.redis_url.
 * The expected values below are what redis-py 5 gives for each URL; where
 * this parser refuses instead, the case says why.  No server: the AUTH
 * fallback for Redis before 6 is played by a scripted peer on loopback.
 * Also the connection's command layer (redis.h, struct nr_redis): the
 * command and batch builders, and a scripted peer's refusals, aborted
 * transactions and hang-up, so that "refused" and "I/O failed" are told
 * apart.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "netraven/redis.h"

#define N_ARRAY(a) (sizeof(a) / sizeof((a)[0]))

struct want {
    const char *url;
    const char *host;       /* NULL: a unix socket */
    int         port;
    const char *path;
    int         db;
    const char *user, *password;    /* NULL: absent */
};

static void str_is(const char *url, const char *what, const char *got, const char *want)
{
    if (want == NULL)
        ck_assert_msg(got == NULL, "%s: %s is \"%s\", want none", url, what, got);
    else
        ck_assert_msg(got != NULL && strcmp(got, want) == 0, "%s: %s is \"%s\", want \"%s\"",
                      url, what, got ? got : "(none)", want);
}

START_TEST(reads_as_redis_py)
{
    static const struct want cases[] = {
        { "redis://localhost", "localhost", 6379, NULL, 0, NULL, NULL },
        { "redis://", "localhost", 6379, NULL, 0, NULL, NULL },
        { "redis://h:6380/2", "h", 6380, NULL, 2, NULL, NULL },
        /* a lone "x@" is a user name, not a password (the defect) */
        { "redis://x@host", "host", 6379, NULL, 0, "x", NULL },
        { "redis://:pw@host:1/0", "host", 1, NULL, 0, NULL, "pw" },
        { "redis://u:pw@host", "host", 6379, NULL, 0, "u", "pw" },
        { "redis://u:@host", "host", 6379, NULL, 0, "u", NULL },
        { "redis://:@host", "host", 6379, NULL, 0, NULL, NULL },
        /* the last '@' ends the user info, the first ':' splits it */
        { "redis://u:p@ss:w@host", "host", 6379, NULL, 0, "u", "p@ss:w" },
        { "redis://nrt:p%40ss%3Aw%25rd@h/9", "h", 6379, NULL, 9, "nrt", "p@ss:w%rd" },
        /* an escape that is not one stays as written (urllib's unquote) */
        { "redis://:hunter22%zz@127.0.0.1/", "127.0.0.1", 6379, NULL, 0, NULL, "hunter22%zz" },
        { "redis://:a%2@h", "h", 6379, NULL, 0, NULL, "a%2" },
        /* host: lower-cased, brackets for IPv6, port after them */
        { "redis://RedisHost:7000", "redishost", 7000, NULL, 0, NULL, NULL },
        { "redis://[::1]:6390/3", "::1", 6390, NULL, 3, NULL, NULL },
        { "redis://[::1]", "::1", 6379, NULL, 0, NULL, NULL },
        { "redis://h:/1", "h", 6379, NULL, 1, NULL, NULL },     /* empty port: default */
        /* db: ?db= first, then the path with its '/' removed */
        { "redis://h/1?db=5", "h", 6379, NULL, 5, NULL, NULL },
        { "redis://h?db=7", "h", 6379, NULL, 7, NULL, NULL },
        { "redis://h/?db=%2B3", "h", 6379, NULL, 3, NULL, NULL },
        { "redis://h/1/2", "h", 6379, NULL, 12, NULL, NULL },
        { "redis://h/", "h", 6379, NULL, 0, NULL, NULL },
        { "redis://h/0#frag", "h", 6379, NULL, 0, NULL, NULL },
        { "redis://h?db=1&db=2", "h", 6379, NULL, 1, NULL, NULL },   /* first wins */
        { "redis://h?db=", "h", 6379, NULL, 0, NULL, NULL },         /* blank: skipped */
        /* query credentials where the user info has none; decoded twice */
        { "redis://h?password=a%2540b&username=bob", "h", 6379, NULL, 0, "bob", "a@b" },
        { "redis://u:pw@h?password=other", "h", 6379, NULL, 0, "u", "pw" },
        { "redis://h?password=a+b", "h", 6379, NULL, 0, NULL, "a b" },
        { "redis://?host=qh&port=6400", "qh", 6400, NULL, 0, NULL, NULL },
        { "redis://h\t:6381", "h", 6381, NULL, 0, NULL, NULL },     /* tabs dropped */
        /* unix sockets: the path; db only from the query */
        { "unix:///run/redis.sock", NULL, 0, "/run/redis.sock", 0, NULL, NULL },
        { "unix://:pw@/run/r.sock?db=4", NULL, 0, "/run/r.sock", 4, NULL, "pw" },
        { "unix://u@/tmp/a%20b.sock", NULL, 0, "/tmp/a b.sock", 0, "u", NULL },
        { "unix://?path=/tmp/q.sock", NULL, 0, "/tmp/q.sock", 0, NULL, NULL },
    };

    for (size_t i = 0; i < N_ARRAY(cases); i++) {
        const struct want *w = &cases[i];
        struct nr_redis_url u;
        char err[256] = "";

        memset(&u, 0x5a, sizeof(u));
        ck_assert_msg(nr_redis_url_parse(w->url, "scheduler.redis_url", &u, err, sizeof(err)) == 0,
                      "%s: refused: %s", w->url, err);
        str_is(w->url, "host", u.host, w->host);
        str_is(w->url, "path", u.path, w->path);
        if (w->host != NULL)
            ck_assert_msg(u.port == w->port, "%s: port %d, want %d", w->url, u.port, w->port);
        ck_assert_msg(u.db == w->db, "%s: db %d, want %d", w->url, u.db, w->db);
        str_is(w->url, "user", u.user, w->user);
        str_is(w->url, "password", u.password, w->password);
        nr_redis_url_clear(&u);
        ck_assert_ptr_null(u.host);         /* cleared for reuse */
        ck_assert_ptr_null(u.password);
    }
    nr_redis_url_clear(NULL);
}
END_TEST

/* Refused, with a message naming the part and never a piece of the URL. */
START_TEST(refuses_with_a_reason)
{
    static const struct { const char *url, *want; } cases[] = {
        { NULL, "scheduler.redis_url is not set" },
        { "", "scheduler.redis_url is not set" },
        { "http://pw:hunter22@host/", "must start with redis:// or unix://" },
        { " redis://h", "must start with redis:// or unix://" },
        { "rediss://:hunter22@host:6380", "TLS (rediss://) is not supported" },
        { "redis://u:hunter22@127.0.0.1:99999/0", "the port is not a number from 1 to 65535" },
        { "redis://u:hunter22@127.0.0.1:abc/0", "the port is not a number" },
        { "redis://u:hunter22@127.0.0.1:+80/0", "the port is not a number" },
        /* redis-py would quietly use 6379, or db 0, or socket /path: */
        { "redis://u:hunter22@127.0.0.1:0/0", "the port is not a number" },
        { "redis://:hunter22@127.0.0.1:6379/x", "the path is not a database number" },
        { "unix://relative/path", "absolute socket path" },
        { "unix://", "absolute socket path" },
        /* redis-py raises on these too */
        { "redis://127.0.0.1:6379?db=-1", "the db= parameter is not a database number" },
        { "redis://h?db=x", "the db= parameter is not a database number" },
        { "redis://[::1:6379/0", "'[' without ']'" },
        /* a raw '/' or '?' in the password */
        { "redis://admin:hunter22/x@127.0.0.1:6379/0", "'@' after the host" },
        { "redis://admin:hunter22?x@127.0.0.1:6379/0", "'@' after the host" },
        { "redis://admin:hunter22", "the port is not a number" },
        { "redis://:hunter22%00@h", "the password has a %00 escape" },
    };

    for (size_t i = 0; i < N_ARRAY(cases); i++) {
        struct nr_redis_url u = { .host = (char *)"untouched" };
        char err[256] = "";

        ck_assert_msg(nr_redis_url_parse(cases[i].url, "scheduler.redis_url", &u, err,
                                         sizeof(err)) == NR_EINVAL,
                      "%s: accepted", cases[i].url ? cases[i].url : "(null)");
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "%s: \"%s\" lacks \"%s\"",
                      cases[i].url ? cases[i].url : "(null)", err, cases[i].want);
        ck_assert_msg(strstr(err, "hunter22") == NULL, "password in \"%s\"", err);
        ck_assert_str_eq(u.host, "untouched");     /* written only on success */
    }
}
END_TEST

START_TEST(where_names_the_server)
{
    struct nr_redis_url u;
    char buf[64];

    ck_assert_int_eq(nr_redis_url_parse("redis://:pw@h:7/1", NULL, &u, NULL, 0), 0);
    nr_redis_url_where(&u, buf, sizeof(buf));
    ck_assert_str_eq(buf, "h:7");
    nr_redis_url_clear(&u);
    ck_assert_int_eq(nr_redis_url_parse("redis://[fe80::1]:8", NULL, &u, NULL, 0), 0);
    nr_redis_url_where(&u, buf, sizeof(buf));
    ck_assert_str_eq(buf, "[fe80::1]:8");
    nr_redis_url_clear(&u);
    ck_assert_int_eq(nr_redis_url_parse("unix:///s.sock", NULL, &u, NULL, 0), 0);
    nr_redis_url_where(&u, buf, sizeof(buf));
    ck_assert_str_eq(buf, "unix:/s.sock");
    nr_redis_url_clear(&u);
}
END_TEST

/* The masker reads the URL with the same split: passwords go, user names
 * stay (redis://x@host names a user). */
START_TEST(mask_hides_what_the_parser_calls_a_password)
{
    static const struct { const char *in, *out; } cases[] = {
        { "redis://:s3cret@redis:6379/0", "redis://:****@redis:6379/0" },
        { "redis://u:s3cret@redis:6379/0", "redis://u:****@redis:6379/0" },
        { "redis://x@redis:6379/0", "redis://x@redis:6379/0" },
        { "redis://redis:6379/0", "redis://redis:6379/0" },
        { "rediss://u:s3cret@redis:6380", "rediss://u:****@redis:6380" },
        { "unix://:s3cret@/run/r.sock?db=1", "unix://:****@/run/r.sock?db=1" },
        { "redis://h/0?db=1&password=s3cret&x=1", "redis://h/0?db=1&password=****&x=1" },
        { "redis://u:p@ss@h", "redis://u:****@h" },
        /* broken: all of the user info goes */
        { "redis://admin:s3cret/x@h:6379/0", "redis://****@h:6379/0" },
        { "redis://admin:s3cret?x@h:6379/0", "redis://****@h:6379/0" },
        { "redis://u:s3cret@h:99999", "redis://****@h:99999" },
    };

    for (size_t i = 0; i < N_ARRAY(cases); i++) {
        char *m = nr_redis_url_mask(cases[i].in);
        ck_assert_msg(strcmp(m, cases[i].out) == 0, "%s -> %s, want %s", cases[i].in, m,
                      cases[i].out);
        free(m);
    }
    ck_assert_ptr_null(nr_redis_url_mask(NULL));
}
END_TEST

/* ---- the AUTH fallback, against a scripted Redis 5 ---------------------------- */

/* A peer on loopback that answers as a Redis older than 6 does: a
 * two-argument AUTH is "wrong number of arguments", AUTH <password> is OK.
 * It records the commands it got, as RESP text. */
struct old_redis {
    int       lfd, port;
    pthread_t th;
    char      got[512];
};

static void *old_redis_main(void *arg)
{
    struct old_redis *o = arg;
    int fd = accept(o->lfd, NULL, NULL);
    size_t n = 0;

    if (fd < 0)
        return NULL;
    for (int replies = 0; replies < 2 && n + 1 < sizeof(o->got);) {
        ssize_t r = recv(fd, o->got + n, sizeof(o->got) - 1 - n, 0);

        if (r <= 0)
            break;
        n += (size_t)r;
        o->got[n] = '\0';
        /* one command per read is enough for the two small ones here */
        if (replies == 0 && strncmp(o->got, "*3\r\n", 4) == 0) {
            static const char no[] = "-ERR wrong number of arguments for 'auth' command\r\n";

            send(fd, no, sizeof(no) - 1, 0);
            replies++;
        } else if (replies == 1 || strncmp(o->got, "*2\r\n", 4) == 0) {
            send(fd, "+OK\r\n", 5, 0);
            replies = 2;
        }
    }
    close(fd);
    return NULL;
}

START_TEST(auth_falls_back_for_redis_before_6)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    struct old_redis o = { 0 };
    struct nr_redis_url u;
    struct redisContext *c = NULL;
    char url[96], err[256] = "";

    o.lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(o.lfd, 0);
    ck_assert_int_eq(bind(o.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(o.lfd, 1), 0);
    ck_assert_int_eq(getsockname(o.lfd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(pthread_create(&o.th, NULL, old_redis_main, &o), 0);

    snprintf(url, sizeof(url), "redis://h:s3cret@127.0.0.1:%d", ntohs(sa.sin_port));
    ck_assert_int_eq(nr_redis_url_parse(url, NULL, &u, err, sizeof(err)), 0);
    ck_assert_msg(nr_redis_connect(&u, 2000, &c, err, sizeof(err)) == 0, "%s", err);
    redisFree(c);
    pthread_join(o.th, NULL);
    close(o.lfd);
    /* AUTH h s3cret, then AUTH s3cret */
    ck_assert_str_eq(o.got, "*3\r\n$4\r\nAUTH\r\n$1\r\nh\r\n$6\r\ns3cret\r\n"
                            "*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\n");
    nr_redis_url_clear(&u);
}
END_TEST

/* ------------------------------------------------ commands (redis.c's conn) */

START_TEST(cmd_builds_binary_safe_arguments)
{
    struct nr_redis_cmd c = { 0 };
    static const char bin[] = { 'a', '\0', 'b' };

    nr_redis_arg(&c, "HSET");
    nr_redis_argf(&c, "rq:job:%s", "j1");
    nr_redis_arg_n(&c, bin, sizeof(bin));
    nr_redis_arg_own(&c, nr_strdup("owned"), 5);
    ck_assert_int_eq(c.argc, 4);
    ck_assert_int_eq(c.nowned, 2);
    ck_assert_str_eq(c.argv[0], "HSET");
    ck_assert_uint_eq(c.len[0], 4);
    ck_assert_str_eq(c.argv[1], "rq:job:j1");
    ck_assert_uint_eq(c.len[1], 9);
    ck_assert_uint_eq(c.len[2], 3);
    ck_assert_int_eq(memcmp(c.argv[2], bin, 3), 0);
    ck_assert_uint_eq(c.len[3], 5);
    nr_redis_cmd_clear(&c);             /* frees what it owns (LeakSanitizer) */
    ck_assert_int_eq(c.argc, 0);
    ck_assert_int_eq(c.nowned, 0);
    nr_redis_cmd_clear(NULL);
}
END_TEST

START_TEST(batch_grows_and_clears)
{
    struct nr_redis_batch b = { 0 };

    for (int i = 0; i < 20; i++) {
        struct nr_redis_cmd *c = nr_redis_batch_add(&b);
        ck_assert_int_eq(c->argc, 0);
        nr_redis_arg(c, "SET");
        nr_redis_argf(c, "k%d", i);
    }
    ck_assert_uint_eq(b.n, 20);
    ck_assert_uint_ge(b.cap, 20);
    ck_assert_str_eq(b.c[19].argv[1], "k19");
    nr_redis_batch_clear(&b);
    ck_assert_uint_eq(b.n, 0);
    ck_assert_ptr_null(b.c);
    nr_redis_batch_clear(NULL);
}
END_TEST

START_TEST(is_error_and_refused_wording)
{
    redisReply e = { .type = REDIS_REPLY_ERROR, .str = "WRONGTYPE Operation", .len = 19 };
    redisReply i = { .type = REDIS_REPLY_INTEGER, .integer = 3 };
    struct nr_redis *r = nr_redis_new("redis://127.0.0.1:0", "scheduler.redis_url", 1000);

    ck_assert(nr_redis_is_error(&e, "WRONGTYPE"));
    ck_assert(!nr_redis_is_error(&e, "NOGROUP"));
    ck_assert(!nr_redis_is_error(&i, "WRONGTYPE"));
    ck_assert(!nr_redis_is_error(NULL, "WRONGTYPE"));

    /* port 0 is refused by the parse: an error, the object all the same */
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->err, NR_EIO);
    ck_assert_msg(strstr(r->errstr, "scheduler.redis_url") != NULL, "errstr: %s", r->errstr);
    r->err = 0;         /* play a live connection for the wording alone */
    ck_assert_int_eq(nr_redis_refused(r, "LMOVE from queue q", &e), NR_EINVAL);
    ck_assert_int_eq(r->err, 0);                    /* a refusal keeps the connection */
    ck_assert_msg(strstr(r->errstr, "LMOVE from queue q refused: WRONGTYPE Operation") != NULL,
                  "errstr: %s", r->errstr);
    ck_assert_str_eq(r->reply, "WRONGTYPE Operation");
    ck_assert_int_eq(nr_redis_refused(r, "LLEN", &i), NR_EINVAL);
    ck_assert_msg(strstr(r->errstr, "LLEN returned an unexpected reply (type 3)") != NULL,
                  "errstr: %s", r->errstr);
    ck_assert_str_eq(r->reply, "");
    ck_assert_int_eq(i.integer, 3);                 /* not freed: still readable */
    nr_redis_free(r);
    nr_redis_free(NULL);
}
END_TEST

/* A scripted peer: for each step, wait until what it received holds
 * `after`, then send `reply`; after the last step, close. */
struct step {
    const char *after, *reply;
};

struct peer {
    int                lfd;
    pthread_t          th;
    const struct step *steps;
    size_t             n;
};

static void *peer_main(void *arg)
{
    struct peer *p = arg;
    char got[4096];
    size_t len = 0, at = 0;
    int fd = accept(p->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    for (size_t i = 0; i < p->n; i++) {
        while (strstr(got + at, p->steps[i].after) == NULL) {
            ssize_t k = recv(fd, got + len, sizeof(got) - 1 - len, 0);
            if (k <= 0)
                goto out;
            len += (size_t)k;
            got[len] = '\0';
        }
        at = (size_t)(strstr(got + at, p->steps[i].after) - got) + strlen(p->steps[i].after);
        send(fd, p->steps[i].reply, strlen(p->steps[i].reply), 0);
    }
out:
    close(fd);
    return NULL;
}

static int peer_start(struct peer *p, const struct step *steps, size_t n)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);

    p->steps = steps;
    p->n = n;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(p->lfd, 0);
    ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(p->lfd, 1), 0);
    ck_assert_int_eq(getsockname(p->lfd, (struct sockaddr *)&sa, &sl), 0);
    ck_assert_int_eq(pthread_create(&p->th, NULL, peer_main, p), 0);
    return ntohs(sa.sin_port);
}

/* A command EXEC refuses is NR_EINVAL with the connection kept (the next
 * command works); EXEC aborted by a WATCH is NR_NOTFOUND; a connection
 * that dies is NR_EIO, and then every call refuses until a reconnect. */
START_TEST(transaction_refused_is_not_io_failed)
{
    static const struct step steps[] = {
        { "EXEC\r\n", "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n-WRONGTYPE Operation\r\n" },
        { "EXEC\r\n", "+OK\r\n+QUEUED\r\n*-1\r\n" },
        { "PING\r\n", "+PONG\r\n" },
        { "EXISTS\r\n", "*0\r\n:0\r\n" },
        { "PING\r\n", "" },       /* then the peer hangs up */
    };
    struct peer p;
    struct nr_redis_batch b = { 0 };
    struct nr_redis_cmd ping = { 0 }, *c;
    redisReply *rep[2], *r;
    char url[64];

    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", peer_start(&p, steps, N_ARRAY(steps)));
    struct nr_redis *conn = nr_redis_new(url, "scheduler.redis_url", 2000);
    ck_assert_msg(conn->err == 0, "%s", conn->errstr);

    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "INCR");
    nr_redis_arg(c, "n");
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "XACK");
    nr_redis_arg(c, "s");
    ck_assert_int_eq(nr_redis_transaction(conn, "acknowledging", &b), NR_EINVAL);
    ck_assert_int_eq(conn->err, 0);
    ck_assert_str_eq(conn->refused_cmd, "XACK");
    ck_assert_str_eq(conn->reply, "WRONGTYPE Operation");
    ck_assert_msg(strstr(conn->errstr, "XACK refused while acknowledging: WRONGTYPE") != NULL,
                  "errstr: %s", conn->errstr);
    nr_redis_batch_clear(&b);

    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "SET");
    ck_assert_int_eq(nr_redis_transaction(conn, "watching", &b), NR_NOTFOUND);
    ck_assert_int_eq(conn->err, 0);
    nr_redis_batch_clear(&b);

    nr_redis_arg(&ping, "PING");
    r = nr_redis_command(conn, 0, "PING", &ping);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);

    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "HGETALL");
    c = nr_redis_batch_add(&b);
    nr_redis_arg(c, "EXISTS");
    ck_assert_int_eq(nr_redis_pipeline(conn, 0, "HGETALL", &b, rep), 0);
    ck_assert_int_eq(rep[0]->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(rep[1]->type, REDIS_REPLY_INTEGER);
    freeReplyObject(rep[0]);
    freeReplyObject(rep[1]);
    nr_redis_batch_clear(&b);

    ck_assert_ptr_null(nr_redis_command(conn, 0, "PING", &ping));
    ck_assert_int_eq(conn->err, NR_EIO);
    ck_assert_msg(strstr(conn->errstr, "PING failed") != NULL, "errstr: %s", conn->errstr);
    ck_assert_msg(strstr(conn->errstr, url + 8) != NULL, "no server named: %s", conn->errstr);
    ck_assert_int_eq(nr_redis_simple(conn, "PING", &ping), NR_EIO);    /* until reconnect */
    pthread_join(p.th, NULL);
    close(p.lfd);
    ck_assert_int_eq(nr_redis_reconnect(conn), NR_EIO);                 /* nobody listens */
    ck_assert_int_eq(conn->err, NR_EIO);
    nr_redis_cmd_clear(&ping);
    nr_redis_free(conn);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_url");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, reads_as_redis_py);
    tcase_add_test(tc, refuses_with_a_reason);
    tcase_add_test(tc, where_names_the_server);
    tcase_add_test(tc, mask_hides_what_the_parser_calls_a_password);
    suite_add_tcase(s, tc);
    tc = tcase_create("connect");
    tcase_add_test(tc, auth_falls_back_for_redis_before_6);
    suite_add_tcase(s, tc);
    tc = tcase_create("commands");
    tcase_add_test(tc, cmd_builds_binary_safe_arguments);
    tcase_add_test(tc, batch_grows_and_clears);
    tcase_add_test(tc, is_error_and_refused_wording);
    tcase_add_test(tc, transaction_refused_is_not_io_failed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
