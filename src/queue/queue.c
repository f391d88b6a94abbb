/*
 * queue.c - the native job queue on a Redis Stream, over one connection of
 * the redis module (struct nr_redis: connect, AUTH, SELECT, commands and
 * transactions).
 *
 * Ordinary commands get COMMAND_TIMEOUT_MS on top of queue.block_ms as the
 * socket timeout, and the two blocking commands (XREADGROUP ... BLOCK and
 * BLPOP) raise it for their own call to their block time plus
 * BLOCKING_MARGIN_MS, so no call waits forever.
 *
 * The queue's rule: any failure, a command the server refused included,
 * sets q->err, and every call refuses until nr_queue_reset() has
 * reconnected; the intake loop resets on every error.
 *
 * No helper frees a reply it is given: whoever received a reply frees it,
 * on every path.  The password from scheduler.redis_url never enters
 * errstr: messages name the server as host:port (or the socket path),
 * never the URL, and as a last guard the password is masked.
 */
#include "netraven/queue.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "netraven/redis.h"

#define COMMAND_TIMEOUT_MS   5000   /* on top of queue.block_ms */
#define BLOCKING_MARGIN_MS   5000   /* beyond the server-side block time */
#define DONE_KEY_PREFIX      "netraven:jobs:done:"
#define DONE_TTL_S           "3600"
#define DEAD_STREAM_MAXLEN   "100000"   /* approximate (~) trim of the dead-letter stream */
#define TOUCH_IDS            8          /* entry ids per XCLAIM */
#define WAIT_MAX_S           ((double)(INT_MAX - BLOCKING_MARGIN_MS) / 1000.0 - 1.0)

/* The public struct first, so that struct nr_queue * converts to and from
 * struct queue_i * (C11 6.7.2.1p15). */
struct queue_i {
    struct nr_queue pub;
    /* The pending scan runs once per nr_queue_connect(), not per reset:
     * after a reset the entries handed out before it may still be running
     * in this process, and handing them out again would run them twice. */
    bool            pending_done;   /* own pending entries all re-read */
    char           *pending_after;  /* last pending id handed out, NULL: from 0 */
    char           *claim_cursor;   /* XAUTOCLAIM's next start, NULL: "0-0" */
};

static struct queue_i *qi_of(struct nr_queue *q) { return (struct queue_i *)q; }

/* A configuration that was not loaded gets keys.def's defaults. */
static const char *cfg_str(const char *v, const char *dflt)
{
    return v != NULL && v[0] != '\0' ? v : dflt;
}

static const char *stream_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.stream, nr_config_default()->queue.stream);
}

static const char *group_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.group, nr_config_default()->queue.group);
}

static const char *dead_stream_of(const struct queue_i *qi)
{
    return cfg_str(qi->pub.cfg->queue.dead_stream,
                   nr_config_default()->queue.dead_stream);
}

static int base_timeout_ms(const struct queue_i *qi)
{
    int block = qi->pub.cfg->queue.block_ms;

    if (block < 0 || block > INT_MAX - COMMAND_TIMEOUT_MS)
        block = 0;
    return COMMAND_TIMEOUT_MS + block;
}

static const char *where_of(const struct queue_i *qi)
{
    return qi->pub.conn ? qi->pub.conn->where : "(unknown)";
}

/* ------------------------------------------------------------------ errors */

/* Replace every occurrence of the password in errstr by "****", in one
 * left-to-right pass (so a password that occurs in "****" cannot loop). */
static void mask_password(struct queue_i *qi)
{
    const struct nr_redis *conn = qi->pub.conn;
    const char *pw = conn && conn->url_ok ? conn->url.password : NULL;
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

/* The connection failed (the redis module says why). */
static void conn_err(struct queue_i *qi)
{
    set_err(qi, "%s", qi->pub.conn->errstr);
}

/* The server answered with an error reply (or something unexpected).
 * Like every helper here it leaves r to the caller, who frees it: a helper
 * that freed its argument made callers that free their replies on every
 * path free this one twice. */
static void reply_err(struct queue_i *qi, const char *what, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        set_err(qi, "redis at %s: %s failed: %.*s", where_of(qi), what,
                (int)(r->len > 160 ? 160 : r->len), r->str);
    else
        set_err(qi, "redis at %s: %s returned an unexpected reply (type %d)",
                where_of(qi), what, r ? r->type : -1);
}

/* --------------------------------------------------------------- commands */

/* May the connection be used?  Sets err if there is none. */
static bool usable(struct queue_i *qi)
{
    if (qi->pub.err)
        return false;
    if (qi->pub.conn == NULL || qi->pub.conn->rc == NULL) {
        set_err(qi, "redis at %s: not connected", where_of(qi));
        return false;
    }
    return true;
}

/* Send one command and read its reply with the given timeout.  NULL (err
 * set) when the connection failed; otherwise the reply, which may be an
 * error reply, for the caller to free. */
static redisReply *command(struct queue_i *qi, int timeout_ms, const char *what,
                           const struct nr_redis_cmd *c)
{
    redisReply *r;

    if (!usable(qi))
        return NULL;
    r = nr_redis_command(qi->pub.conn, timeout_ms, what, c);
    if (r == NULL)
        conn_err(qi);
    return r;
}

/* Run cmds[0..n) inside MULTI/EXEC.  Returns 0 when every command of the
 * transaction succeeded, else NR_EIO with err set (a refusal too: the
 * queue's rule). */
static int transaction(struct queue_i *qi, const char *what, struct nr_redis_cmd *cmds, int n)
{
    const struct nr_redis_batch b = { cmds, (size_t)n, (size_t)n };
    const struct nr_redis *conn = qi->pub.conn;
    int rc;

    if (!usable(qi))
        return NR_EIO;
    rc = nr_redis_transaction(qi->pub.conn, what, &b);
    if (rc == NR_OK)
        return NR_OK;
    if (rc == NR_EIO)
        conn_err(qi);
    else if (rc == NR_NOTFOUND)     /* EXEC nil: the queue WATCHes nothing */
        set_err(qi, "redis at %s: %s returned an unexpected reply (type %d)", where_of(qi),
                what, REDIS_REPLY_NIL);
    else if (conn->refused_cmd[0] != '\0')
        set_err(qi, "redis at %s: %s failed while %s: %s", where_of(qi), conn->refused_cmd,
                what, conn->reply);
    else if (conn->reply[0] != '\0')
        set_err(qi, "redis at %s: %s failed: %s", where_of(qi), what, conn->reply);
    else
        conn_err(qi);       /* an unexpected reply: the module's words */
    return NR_EIO;
}

/* -------------------------------------------------------------- connection */

/* The group starts at the beginning of the stream ("0", not "$"): entries
 * queued before any worker ever started are jobs too, and must run.  The
 * stream intake's connection makes it (nr_queue_connect, and again when
 * XREADGROUP finds it gone); readers that only look, such as the metrics
 * scrape, open a plain nr_redis and never create it. */
static int create_group(struct queue_i *qi)
{
    struct nr_redis_cmd c = { 0 };
    redisReply *r;

    nr_redis_arg(&c, "XGROUP");
    nr_redis_arg(&c, "CREATE");
    nr_redis_arg(&c, stream_of(qi));
    nr_redis_arg(&c, group_of(qi));
    nr_redis_arg(&c, "0");
    nr_redis_arg(&c, "MKSTREAM");
    if ((r = command(qi, base_timeout_ms(qi), "XGROUP CREATE", &c)) == NULL)
        return NR_EIO;
    if (r->type == REDIS_REPLY_ERROR && !nr_redis_is_error(r, "BUSYGROUP")) {
        reply_err(qi, "XGROUP CREATE", r);
        freeReplyObject(r);
        return NR_EIO;
    }
    freeReplyObject(r);
    return NR_OK;
}

/* Connect (the redis module: timeouts, AUTH, SELECT), then the group. */
static int do_connect(struct queue_i *qi)
{
    qi->pub.err = 0;
    qi->pub.errstr[0] = '\0';
    if (qi->pub.conn == NULL)
        qi->pub.conn = nr_redis_new(qi->pub.cfg->scheduler.redis_url, "scheduler.redis_url",
                                    base_timeout_ms(qi));
    else
        nr_redis_reconnect(qi->pub.conn);
    if (qi->pub.conn->err) {
        conn_err(qi);
        return NR_EIO;
    }
    return create_group(qi);
}

struct nr_queue *nr_queue_connect(const struct nr_config *cfg, const char *consumer)
{
    struct queue_i *qi = nr_calloc(1, sizeof(*qi));
    static const struct nr_config empty;

    qi->pub.cfg = cfg ? cfg : &empty;
    qi->pub.consumer = nr_config_worker_name(cfg, consumer);
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
    nr_redis_free(qi->pub.conn);
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

static void clear_msgs(struct nr_queue_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nr_queue_msg_clear(&msgs[i]);
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
            clear_msgs(msgs, got);
            goto bad;
        }
        got++;
    }
    *n = got;
    return NR_OK;

bad:
    set_err(qi, "redis at %s: XREADGROUP returned a reply of an unexpected shape", where_of(qi));
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
        struct nr_redis_cmd c = { 0 };
        redisReply *r;
        int rc;

        nr_redis_arg(&c, "XREADGROUP");
        nr_redis_arg(&c, "GROUP");
        nr_redis_arg(&c, group_of(qi));
        nr_redis_arg(&c, qi->pub.consumer);
        if (block_ms >= 0) {
            nr_redis_arg(&c, "BLOCK");
            nr_redis_arg(&c, block);
        }
        nr_redis_arg(&c, "COUNT");
        nr_redis_arg(&c, count);
        nr_redis_arg(&c, "STREAMS");
        nr_redis_arg(&c, stream_of(qi));
        nr_redis_arg(&c, id);
        if ((r = command(qi, timeout, "XREADGROUP", &c)) == NULL)
            return NR_EIO;
        /* The stream or the group went away (FLUSHDB, a restart without
         * persistence, an operator): make the group again, once. */
        if (attempt == 0 && (nr_redis_is_error(r, "NOGROUP") || nr_redis_is_error(r, "UNBLOCKED"))) {
            freeReplyObject(r);
            if (create_group(qi) < 0)
                return NR_EIO;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            reply_err(qi, "XREADGROUP", r);
            freeReplyObject(r);
            return NR_EIO;
        }
        rc = entries_of(qi, r, msgs, max, n);
        freeReplyObject(r);
        return rc;
    }
}

/* XPENDING's delivery count of each entry into msgs[i].deliveries (0 when
 * the entry is pending no more: acknowledged meanwhile).  One command per
 * entry: only entries read again after a restart or claimed come here, and
 * they are few.  0, or NR_EIO with err set. */
static int read_deliveries(struct queue_i *qi, struct nr_queue_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct nr_redis_cmd c = { 0 };
        const redisReply *e;
        redisReply *r;

        nr_redis_arg(&c, "XPENDING");
        nr_redis_arg(&c, stream_of(qi));
        nr_redis_arg(&c, group_of(qi));
        nr_redis_arg(&c, msgs[i].entry_id);
        nr_redis_arg(&c, msgs[i].entry_id);
        nr_redis_arg(&c, "1");
        if ((r = command(qi, base_timeout_ms(qi), "XPENDING", &c)) == NULL)
            return NR_EIO;
        if (r->type != REDIS_REPLY_ARRAY) {
            reply_err(qi, "XPENDING", r);
            freeReplyObject(r);
            return NR_EIO;
        }
        /* [[id, consumer, idle-ms, delivery-count]] or [] */
        msgs[i].deliveries = 0;
        e = r->elements == 1 ? r->element[0] : NULL;
        if (e != NULL && e->type == REDIS_REPLY_ARRAY && e->elements >= 4 &&
            e->element[3]->type == REDIS_REPLY_INTEGER)
            msgs[i].deliveries = e->element[3]->integer;
        freeReplyObject(r);
    }
    return NR_OK;
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
        /* Reading them again counted as a delivery: a poison entry that
         * kills the worker comes back here after each restart under the
         * same name (a container's host:pid does not change). */
        if (got > 0 && read_deliveries(qi, msgs, got) < 0) {
            clear_msgs(msgs, got);
            return NR_EIO;
        }
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
    for (size_t i = 0; i < got; i++)
        msgs[i].deliveries = 1;
    *n = got;
    return NR_OK;
}

/* --------------------------------------------------------- claim and touch */

int nr_queue_claim(struct nr_queue *q, long idle_ms, struct nr_queue_msg *msgs,
                   size_t max, size_t *n)
{
    struct queue_i *qi;
    struct nr_redis_cmd c = { 0 };
    char idle[24], count[24];
    redisReply *r;
    size_t got = 0;

    if (q == NULL || n == NULL || (msgs == NULL && max > 0) || idle_ms < 0)
        return NR_EINVAL;
    qi = qi_of(q);
    /* What this consumer claims becomes its own pending entry, which the
     * re-read of its own pending entries after a connect would hand out a
     * second time: claim only once that re-read is over. */
    if (max == 0 || !qi->pending_done) {
        *n = 0;
        return NR_OK;
    }
    snprintf(idle, sizeof(idle), "%ld", idle_ms);
    snprintf(count, sizeof(count), "%zu", max);
    nr_redis_arg(&c, "XAUTOCLAIM");
    nr_redis_arg(&c, stream_of(qi));
    nr_redis_arg(&c, group_of(qi));
    nr_redis_arg(&c, qi->pub.consumer);
    nr_redis_arg(&c, idle);
    nr_redis_arg(&c, qi->claim_cursor ? qi->claim_cursor : "0-0");
    nr_redis_arg(&c, "COUNT");
    nr_redis_arg(&c, count);
    if ((r = command(qi, base_timeout_ms(qi), "XAUTOCLAIM", &c)) == NULL)
        return NR_EIO;
    if (nr_redis_is_error(r, "NOGROUP")) {           /* nothing to claim yet */
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
            set_err(qi, "redis at %s: XAUTOCLAIM returned a reply of an unexpected shape", where_of(qi));
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
            clear_msgs(msgs, got);
            set_err(qi, "redis at %s: XAUTOCLAIM returned an entry of an unexpected shape", where_of(qi));
            freeReplyObject(r);
            return NR_EIO;
        }
        got++;
    }
    freeReplyObject(r);
    if (read_deliveries(qi, msgs, got) < 0) {
        clear_msgs(msgs, got);
        return NR_EIO;
    }
    *n = got;
    return NR_OK;
}

int nr_queue_touch(struct nr_queue *q, char *const *entry_ids, size_t n)
{
    struct queue_i *qi;
    const size_t per = TOUCH_IDS;

    if (q == NULL || (entry_ids == NULL && n > 0))
        return NR_EINVAL;
    qi = qi_of(q);
    for (size_t i = 0; i < n; i += per) {
        struct nr_redis_cmd c = { 0 };
        redisReply *r;

        nr_redis_arg(&c, "XCLAIM");
        nr_redis_arg(&c, stream_of(qi));
        nr_redis_arg(&c, group_of(qi));
        nr_redis_arg(&c, qi->pub.consumer);
        nr_redis_arg(&c, "0");
        for (size_t k = i; k < n && k < i + per; k++)
            nr_redis_arg(&c, entry_ids[k]);
        nr_redis_arg(&c, "JUSTID");
        if ((r = command(qi, base_timeout_ms(qi), "XCLAIM", &c)) == NULL)
            return NR_EIO;
        if (r->type == REDIS_REPLY_ERROR && !nr_redis_is_error(r, "NOGROUP")) {
            reply_err(qi, "XCLAIM", r);
            freeReplyObject(r);
            return NR_EIO;
        }
        freeReplyObject(r);
    }
    return NR_OK;
}

/* ------------------------------------------------------------ ack and dead */

/*
 * An entry is deleted (XDEL) in the transaction that acknowledges it, so the
 * stream does not keep every job ever run.  XDEL rather than a trim by id
 * (XTRIM MINID) because it is safe with several workers without knowing
 * what they hold: it removes exactly the entry this worker is done with,
 * never one another worker still runs or one not yet delivered, and it
 * cannot race with their reads.  A trim would have to compute the oldest
 * entry that is pending or undelivered across every worker, and a worker
 * whose XPENDING answer was stale would cut entries still wanted.  A second
 * XDEL of the same id (an entry run twice) deletes nothing.  The stream has
 * one consumer group; nothing else reads it.
 */
static void cmd_xdel(struct queue_i *qi, struct nr_redis_cmd *c, const char *entry_id)
{
    nr_redis_arg(c, "XDEL");
    nr_redis_arg(c, stream_of(qi));
    nr_redis_arg(c, entry_id);
}

int nr_queue_ack(struct nr_queue *q, const char *entry_id, const char *final_status)
{
    struct queue_i *qi;
    struct nr_redis_cmd cmds[4];
    char *key;
    int n = 0, rc;

    if (q == NULL || entry_id == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    memset(cmds, 0, sizeof(cmds));
    key = nr_asprintf(DONE_KEY_PREFIX "%s", entry_id);

    nr_redis_arg(&cmds[n], "XACK");
    nr_redis_arg(&cmds[n], stream_of(qi));
    nr_redis_arg(&cmds[n], group_of(qi));
    nr_redis_arg(&cmds[n], entry_id);
    n++;
    cmd_xdel(qi, &cmds[n++], entry_id);
    if (final_status != NULL) {
        nr_redis_arg(&cmds[n], "RPUSH");
        nr_redis_arg(&cmds[n], key);
        nr_redis_arg(&cmds[n], final_status);
        n++;
        nr_redis_arg(&cmds[n], "EXPIRE");
        nr_redis_arg(&cmds[n], key);
        nr_redis_arg(&cmds[n], DONE_TTL_S);
        n++;
    }
    rc = transaction(qi, "acknowledging", cmds, n);
    free(key);
    return rc;
}

int nr_queue_dead(struct nr_queue *q, const struct nr_queue_msg *m, const char *reason)
{
    struct queue_i *qi;
    struct nr_redis_cmd cmds[3];

    if (q == NULL || m == NULL || m->entry_id == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    if (!usable(qi))
        return NR_EIO;
    memset(cmds, 0, sizeof(cmds));

    nr_redis_arg(&cmds[0], "XADD");
    nr_redis_arg(&cmds[0], dead_stream_of(qi));
    nr_redis_arg(&cmds[0], "MAXLEN");
    nr_redis_arg(&cmds[0], "~");
    nr_redis_arg(&cmds[0], DEAD_STREAM_MAXLEN);
    nr_redis_arg(&cmds[0], "*");
    nr_redis_arg(&cmds[0], "payload");
    if (m->payload != NULL)
        nr_redis_arg_n(&cmds[0], m->payload, m->payload_len);
    else
        nr_redis_arg_n(&cmds[0], "", 0);
    nr_redis_arg(&cmds[0], "reason");
    nr_redis_arg(&cmds[0], reason ? reason : "");
    nr_redis_arg(&cmds[0], "entry_id");
    nr_redis_arg(&cmds[0], m->entry_id);
    nr_redis_arg(&cmds[0], "consumer");
    nr_redis_arg(&cmds[0], qi->pub.consumer);

    nr_redis_arg(&cmds[1], "XACK");
    nr_redis_arg(&cmds[1], stream_of(qi));
    nr_redis_arg(&cmds[1], group_of(qi));
    nr_redis_arg(&cmds[1], m->entry_id);
    cmd_xdel(qi, &cmds[2], m->entry_id);
    return transaction(qi, "dead-lettering", cmds, 3);
}

/* ------------------------------------------------------- enqueue and wait */

int nr_queue_enqueue(struct nr_queue *q, const char *payload_json, char **id_out)
{
    struct queue_i *qi;
    struct nr_redis_cmd c = { 0 };
    redisReply *r;

    if (q == NULL || payload_json == NULL)
        return NR_EINVAL;
    qi = qi_of(q);
    nr_redis_arg(&c, "XADD");
    nr_redis_arg(&c, stream_of(qi));
    nr_redis_arg(&c, "*");
    nr_redis_arg(&c, "payload");
    nr_redis_arg(&c, payload_json);
    if ((r = command(qi, base_timeout_ms(qi), "XADD", &c)) == NULL)
        return NR_EIO;
    if (r->type != REDIS_REPLY_STRING) {
        reply_err(qi, "XADD", r);
        freeReplyObject(r);
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
    struct nr_redis_cmd c = { 0 };
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
            nr_redis_arg(&c, "BLPOP");
            nr_redis_arg(&c, key);
            nr_redis_arg(&c, secs);
            r = command(qi, (int)(ms + BLOCKING_MARGIN_MS), "BLPOP", &c);
            if (r == NULL || attempt > 0 || !nr_redis_is_error(r, "ERR timeout"))
                break;
            freeReplyObject(r);
            snprintf(secs, sizeof(secs), "%lld", (ms + 999) / 1000);
        }
    } else {
        nr_redis_arg(&c, "LPOP");
        nr_redis_arg(&c, key);
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
        freeReplyObject(r);
        return NR_EIO;
    }
    *status = nr_strndup(v->str, v->len);
    freeReplyObject(r);
    return NR_OK;
}
