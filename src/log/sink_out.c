/*
 * sink_out.c - the "out" thread: stdout (always) and the optional log file.
 *
 * One thread owns both, so a record reaches them in the same order and a
 * slow terminal or disk never blocks an emitter.  Per batch it formats every
 * record once (human or JSON lines), writes the stdout part with one fwrite
 * and flushes, then writes the file part with write(2).
 *
 * File (logging.file): parent folders are created if missing; the file is
 * opened for append.  If it cannot be opened or a write fails, the thread
 * closes it, warns exactly once (SYS_LOG_FILE_FAILED, to stdout only, at any
 * level) and goes on with stdout alone.
 *
 * The thread's own notices (file failure, reopen, drop counts) do not go
 * through its queue, where they could be dropped when it is full: it keeps
 * them in a small local list and writes them after the batch at hand.  It tries the file again only when
 * nr_log_reopen() asks (SIGHUP); a successful reopen says so
 * (SYS_LOG_REOPENED) and re-arms the warning.
 *
 * nr_log_reopen() runs in a signal handler and can only set a flag, not
 * signal a condition variable; so this thread waits for records with a
 * short timeout (NR_OUT_TICK_S) and looks at the flag on every wakeup.  The
 * same tick reports drops of every sink queue (SYS_LOG_DROPPED, at most
 * once per NR_DROP_REPORT_S).
 */
#include "log_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NR_OUT_TICK_S      0.25
#define NR_DROP_REPORT_S   1.0
#define NR_OUT_NOTICES     8

struct out_state {
    int            fd;          /* the log file, -1 when closed */
    bool           warned;      /* failure reported; quiet until a reopen works */
    struct nr_sbuf out;         /* this batch's stdout text */
    struct nr_sbuf file;        /* this batch's file text */
    struct nr_sbuf line;
    struct nr_ts_cache tc;
    char          *prefix[NR_EV_COUNT];  /* " INFO    job        dispatcher  [" */
    uint64_t       reported[3]; /* drops already reported, per queue */
    uint64_t       last_report_ns;
    struct nr_log_rec *notices[NR_OUT_NOTICES];   /* own records, not yet written */
    size_t         nnotices;
};

/* Keep one of the thread's own records for writing after the current
 * batch.  force: exactly these sinks, whatever the routing says; else the
 * event's routed stdout/file sinks. */
static void notice(struct out_state *st, enum nr_event ev, const struct nr_kv *kv,
                   size_t nkv, unsigned force)
{
    unsigned sinks = force ? force : nr_log_sinks(ev) & (NR_SINK_STDOUT | NR_SINK_FILE);

    if (sinks == 0)
        return;
    if (st->nnotices == NR_OUT_NOTICES) {
        atomic_fetch_add(&nr_log_q_out.dropped, 1);
        return;
    }
    st->notices[st->nnotices++] = nr_log_rec_new(ev, 0, 0, kv, nkv, sinks);
}

/* ------------------------------------------------------------- the file */

/* mkdir -p of path's parent folders; errors surface when open() fails. */
static void make_parents(const char *path)
{
    char *dir = nr_strdup(path), *slash = strrchr(dir, '/');

    if (slash != NULL && slash != dir) {
        *slash = '\0';
        (void)nr_mkdir_p(dir, 0755);
    }
    free(dir);
}

static void file_failed(struct out_state *st, const char *what, int err)
{
    char msg[256];

    atomic_fetch_add(&nr_log_file_errors, 1);
    if (st->fd >= 0) {
        close(st->fd);
        st->fd = -1;
    }
    if (st->warned)
        return;
    st->warned = true;
    snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
    notice(st, NR_EV_SYS_LOG_FILE_FAILED,
           (const struct nr_kv[]){ NR_S("path", nr_log_set.file), NR_S("error", msg) },
           2, NR_SINK_STDOUT);
}

static bool file_open(struct out_state *st)
{
    int fd;

    make_parents(nr_log_set.file);
    fd = open(nr_log_set.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        file_failed(st, "open", errno);
        return false;
    }
    st->fd = fd;
    return true;
}

static void file_reopen(struct out_state *st)
{
    if (nr_log_set.file == NULL)
        return;
    if (st->fd >= 0) {
        close(st->fd);
        st->fd = -1;
    }
    if (file_open(st)) {
        st->warned = false;
        notice(st, NR_EV_SYS_LOG_REOPENED,
               (const struct nr_kv[]){ NR_S("path", nr_log_set.file) }, 1, 0);
    }
}

static void file_write(struct out_state *st, const char *p, size_t n)
{
    while (n > 0 && st->fd >= 0) {
        ssize_t w = write(st->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            file_failed(st, "write", errno);
            return;
        }
        if (w == 0) {
            file_failed(st, "write", EIO);
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* ----------------------------------------------------------- formatting */

/* One record per line: line breaks inside a message become spaces. */
static void put_oneline(struct nr_sbuf *b, const char *s, size_t n)
{
    const char *run = s;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '\r') {
            nr_sbuf_put(b, run, (size_t)(s + i - run));
            nr_sbuf_putc(b, ' ');
            run = s + i + 1;
        }
    }
    nr_sbuf_put(b, run, (size_t)(s + n - run));
}

/* 2026-11-23T18:07:01.123456Z INFO    job        dispatcher  [job=5 device=3 tid=1234] message */
static void format_human(struct out_state *st, struct nr_sbuf *b, const struct nr_log_rec *r)
{
    const struct nr_event_def *e = &nr_events[r->ev];
    char ts[NR_ISO_TS_LEN];

    if (st->prefix[r->ev] == NULL)
        st->prefix[r->ev] = nr_asprintf(" %-7s %-10s %-11s [", nr_log_level_upper(e->level),
                                        nr_log_type_name(e->type), e->source);
    nr_ts_format(&st->tc, &r->ts, ts);
    nr_sbuf_reserve(b, 160 + r->msg_len + r->head_len);
    nr_sbuf_put(b, ts, NR_ISO_TS_LEN - 1);
    nr_sbuf_puts(b, st->prefix[r->ev]);
    if (r->job_id) {
        nr_sbuf_put(b, "job=", 4);
        b->len += nr_fmt_ll(b->p + b->len, r->job_id);
        nr_sbuf_putc(b, ' ');
    }
    if (r->device_id) {
        nr_sbuf_put(b, "device=", 7);
        b->len += nr_fmt_ll(b->p + b->len, r->device_id);
        nr_sbuf_putc(b, ' ');
    }
    nr_sbuf_put(b, "tid=", 4);
    b->len += nr_fmt_ll(b->p + b->len, r->tid);
    nr_sbuf_put(b, "] ", 2);
    if (r->head) {      /* "Session log: sent 20 bytes: > show version" */
        nr_sbuf_put(b, r->head, r->head_len);
        if (r->msg_len)
            nr_sbuf_put(b, ": ", 2);
    }
    put_oneline(b, r->msg, r->msg_len);
    nr_sbuf_putc(b, '\n');
}

static void format_line(struct out_state *st, struct nr_sbuf *b, const struct nr_log_rec *r)
{
    nr_sbuf_reset(b);
    if (nr_log_set.format == NR_LOG_FORMAT_JSON) {
        nr_log_rec_json(b, r, &st->tc);
        nr_sbuf_putc(b, '\n');
    } else {
        format_human(st, b, r);
    }
}

/* ------------------------------------------------------------- the loop */

static void report_drops(struct out_state *st)
{
    static const char *const names[3] = { "stdout", "db", "redis" };
    struct nr_logq *qs[3] = { &nr_log_q_out, &nr_log_q_db, &nr_log_q_redis };
    uint64_t now = nr_mono_ns();

    if (now - st->last_report_ns < (uint64_t)(NR_DROP_REPORT_S * 1e9))
        return;
    for (int i = 0; i < 3; i++) {
        uint64_t d;
        if (!atomic_load(&qs[i]->running))
            continue;
        d = atomic_load(&qs[i]->dropped);
        if (d <= st->reported[i])
            continue;
        notice(st, NR_EV_SYS_LOG_DROPPED,
               (const struct nr_kv[]){ NR_I("count", d - st->reported[i]),
                                       NR_S("sink", names[i]) },
               2, 0);
        st->reported[i] = d;
        st->last_report_ns = now;
    }
}

static void put_line(const struct nr_log_rec *r, void *arg)
{
    struct out_state *st = arg;

    format_line(st, &st->line, r);
    if (r->sinks & NR_SINK_STDOUT)
        nr_sbuf_put(&st->out, st->line.p, st->line.len);
    if ((r->sinks & NR_SINK_FILE) && st->fd >= 0)
        nr_sbuf_put(&st->file, st->line.p, st->line.len);
}

static void write_batch(struct out_state *st, struct nr_log_rec **batch, size_t n)
{
    nr_sbuf_reset(&st->out);
    nr_sbuf_reset(&st->file);
    for (size_t i = 0; i < n; i++)
        nr_log_session_each(batch[i], put_line, st);
    if (st->out.len) {
        fwrite(st->out.p, 1, st->out.len, stdout);
        fflush(stdout);
    }
    if (st->file.len)
        file_write(st, st->file.p, st->file.len);
}

/* Write the thread's own records; writing them may add one more notice
 * (a file failure), hence the loop, bounded by the list's size. */
static void write_notices(struct out_state *st)
{
    while (st->nnotices > 0) {
        struct nr_log_rec *list[NR_OUT_NOTICES];
        size_t n = st->nnotices;

        memcpy(list, st->notices, n * sizeof(*list));
        st->nnotices = 0;
        write_batch(st, list, n);
        for (size_t i = 0; i < n; i++)
            nr_log_rec_unref(list[i]);
    }
}

void *nr_log_out_main(void *arg)
{
    struct out_state st = { .fd = -1 };

    /* The file is opened before the first batch, so a failure notice is
     * written before any record. */
    struct nr_log_rec **batch;

    (void)arg;
    nr_log_block_signals();
    if (nr_log_set.file)
        file_open(&st);

    for (;;) {
        size_t n = nr_logq_take(&nr_log_q_out, &batch, NR_OUT_TICK_S);

        if (atomic_exchange(&nr_log_reopen_req, 0))
            file_reopen(&st);
        write_notices(&st);
        if (n == 0) {
            if (nr_logq_stopping(&nr_log_q_out))
                break;
            report_drops(&st);
            write_notices(&st);
            continue;
        }
        write_batch(&st, batch, n);
        for (size_t i = 0; i < n; i++)
            nr_log_rec_unref(batch[i]);
        report_drops(&st);
        write_notices(&st);
        nr_logq_done(&nr_log_q_out, n);
    }
    write_notices(&st);

    if (st.fd >= 0)
        close(st.fd);
    nr_sbuf_free(&st.out);
    nr_sbuf_free(&st.file);
    nr_sbuf_free(&st.line);
    for (int i = 0; i < NR_EV_COUNT; i++)
        free(st.prefix[i]);
    return NULL;
}
