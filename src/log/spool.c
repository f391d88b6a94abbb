/*
 * spool.c - the DB sink's spool: job and connection rows that PostgreSQL
 * could not take yet, in an append-only file under worker.spool_dir, so
 * that a long outage neither fills memory nor loses rows, and rows held at
 * shutdown reach PostgreSQL after the next start.  Only the "db" thread
 * uses it (nr_log_init opens it before that thread starts, teardown closes
 * it after the thread ended); nothing here is locked.
 *
 * File: <spool_dir>/logs.spool, owned by one process at a time through an
 * exclusive flock(2).  A second worker sharing the folder takes the first
 * free of logs.1.spool ... logs.7.spool instead; a file is read back by
 * whichever process next takes its name.
 *
 *   [0, 4096)     header, two 64-byte slots at offsets 0 and 512 written in
 *                 turn; the valid slot (magic, CRC) with the higher seq wins,
 *                 so a torn header write leaves the previous one in force:
 *                   0 "NRSPOOL1"   8 seq   16 epoch   24 head
 *                  32 pending_xid  40 pending_end     48 crc32 of [0, 48)
 *                 (integers little-endian, 64-bit but the CRC)
 *   [4096, ...)   records, oldest first, each
 *                   u32 len, u32 crc32(epoch as 8 LE bytes, payload), payload
 *                 payload = the row's text fields, each NUL-terminated:
 *                   timestamp, log_type, level, job_id, device_id, source,
 *                   message, meta   (an id is "" when it is NULL)
 *
 * head is the offset of the oldest row not known to be committed; rows
 * before it are done.  Appending writes the records at the end and
 * fdatasync()s them before the caller frees its copies.  When every row is
 * committed the file is truncated to its header and the epoch goes up: a
 * record of an older epoch (left behind when a crash lost the truncation)
 * fails its CRC and ends the data, as does a record torn by a crash while
 * it was appended.
 *
 * pending_xid / pending_end: written (and synced) just before the DB sink
 * sends the COMMIT of rows [head, pending_end).  If the process dies before
 * it learns the outcome, the next start asks PostgreSQL (txid_status) and
 * skips those rows if that transaction committed.
 */
#include "log_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#define NR_SPOOL_MAGIC      "NRSPOOL1"
#define NR_SPOOL_DATA       4096u           /* first record */
#define NR_SPOOL_SLOT       512u            /* header slot stride */
#define NR_SPOOL_HDR        64u
#define NR_SPOOL_SLOTS      8               /* file names tried */
#define NR_SPOOL_FIELDS     8
#define NR_SPOOL_REC_MAX    (256u << 20)    /* sanity bound of one record */
#define NR_SPOOL_READ       (1u << 20)      /* bytes per read */

struct nr_spool nr_log_spool = { .fd = -1 };

/* ---------------------------------------------------------------- bytes */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t rec_crc(uint64_t epoch, const void *payload, size_t len)
{
    unsigned char e[8];
    uLong c = crc32(0L, Z_NULL, 0);

    put64(e, epoch);
    c = crc32(c, e, 8);
    /* zlib takes uInt lengths; records are far below 4 GiB */
    c = crc32(c, payload, (uInt)len);
    return (uint32_t)c;
}

static void set_err(struct nr_spool *sp, const char *what, int err)
{
    snprintf(sp->error, sizeof(sp->error), "%s %s: %s", what, sp->path ? sp->path : sp->dir,
             strerror(err));
}

/* ---------------------------------------------------------------- I/O */

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w == 0 ? ENOSPC : errno;
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Read up to len bytes at off; returns the count, or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t r = pread(fd, p + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int sync_fd(int fd)
{
    while (fdatasync(fd) < 0) {
        if (errno != EINTR)
            return errno;
    }
    return 0;
}

/* --------------------------------------------------------------- header */

static int write_header(struct nr_spool *sp, bool sync)
{
    unsigned char h[NR_SPOOL_HDR];
    uint64_t seq = sp->seq + 1;
    int err;

    memset(h, 0, sizeof(h));
    memcpy(h, NR_SPOOL_MAGIC, 8);
    put64(h + 8, seq);
    put64(h + 16, sp->epoch);
    put64(h + 24, sp->head);
    put64(h + 32, (uint64_t)sp->pending_xid);
    put64(h + 40, sp->pending_end);
    put32(h + 48, (uint32_t)crc32(crc32(0L, Z_NULL, 0), h, 48));
    err = pwrite_all(sp->fd, h, sizeof(h), (seq & 1) * NR_SPOOL_SLOT);
    if (err == 0 && sync)
        err = sync_fd(sp->fd);
    if (err) {
        set_err(sp, "cannot write the header of", err);
        return NR_EIO;
    }
    sp->seq = seq;
    return NR_OK;
}

/* The newer valid header slot into sp; false when neither is valid. */
static bool read_header(struct nr_spool *sp)
{
    unsigned char h[NR_SPOOL_SLOT + NR_SPOOL_HDR];
    bool found = false;

    if (pread_full(sp->fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return false;
    for (int s = 0; s < 2; s++) {
        const unsigned char *p = h + s * NR_SPOOL_SLOT;
        uint64_t seq;

        if (memcmp(p, NR_SPOOL_MAGIC, 8) != 0 ||
            get32(p + 48) != (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, 48))
            continue;
        seq = get64(p + 8);
        if (found && seq <= sp->seq)
            continue;
        found = true;
        sp->seq = seq;
        sp->epoch = get64(p + 16);
        sp->head = get64(p + 24);
        sp->pending_xid = (long long)get64(p + 32);
        sp->pending_end = get64(p + 40);
    }
    return found;
}

/* ---------------------------------------------------------------- scan */

/* Validate the record at off (avail bytes of it in buf); returns its total
 * size, 0 when it is incomplete in buf (need says how much it wants), or
 * -1 when it is not a record of this epoch. */
static long long rec_check(const struct nr_spool *sp, const unsigned char *buf, size_t avail,
                           size_t *need)
{
    uint32_t len;

    *need = 8;
    if (avail < 8)
        return 0;
    len = get32(buf);
    if (len == 0 || len > NR_SPOOL_REC_MAX)
        return -1;
    *need = 8 + (size_t)len;
    if (avail < *need)
        return 0;
    if (buf[8 + len - 1] != '\0' || get32(buf + 4) != rec_crc(sp->epoch, buf + 8, len))
        return -1;
    return (long long)*need;
}

/* Walk the records from head: count the rows and find the end of the good
 * data; a torn or stale tail is cut off. */
static int scan(struct nr_spool *sp, uint64_t size)
{
    uint64_t off = sp->head;
    size_t cap = NR_SPOOL_READ;
    unsigned char *buf = nr_malloc(cap);

    sp->rows = 0;
    while (off < size) {
        size_t want = size - off < cap ? (size_t)(size - off) : cap;
        ssize_t got = pread_full(sp->fd, buf, want, off);
        size_t pos = 0, need = 0;
        long long k = 0;

        if (got < 0) {
            free(buf);
            set_err(sp, "cannot read", (int)-got);
            return NR_EIO;
        }
        while ((k = rec_check(sp, buf + pos, (size_t)got - pos, &need)) > 0) {
            pos += (size_t)k;
            sp->rows++;
        }
        off += pos;
        if (k < 0 || (size_t)got < want)
            break;                          /* bad record, or the file shrank */
        if (pos == 0) {
            if (need <= cap || off + need > size)
                break;                      /* a record cut short at the end */
            cap = need;
            buf = nr_realloc(buf, cap);
        }
    }
    free(buf);
    sp->tail = off;
    sp->cut = size - off;
    if (off < size && ftruncate(sp->fd, (off_t)off) < 0) {
        set_err(sp, "cannot cut the torn tail of", errno);
        return NR_EIO;
    }
    return NR_OK;
}

/* --------------------------------------------------------------- files */

static char *slot_path(const char *dir, int slot)
{
    return slot ? nr_asprintf("%s/logs.%d.spool", dir, slot) : nr_asprintf("%s/logs.spool", dir);
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A new, empty spool in the locked file sp->fd. */
static int format_new(struct nr_spool *sp)
{
    sp->seq = 0;
    sp->epoch = 1;
    sp->head = sp->tail = NR_SPOOL_DATA;
    sp->rows = 0;
    sp->pending_xid = 0;
    sp->pending_end = 0;
    if (ftruncate(sp->fd, NR_SPOOL_DATA) < 0) {
        set_err(sp, "cannot size", errno);
        return NR_EIO;
    }
    if (write_header(sp, true) < 0)
        return NR_EIO;
    sync_dir(sp->dir);
    return NR_OK;
}

/* Take the file just opened as fd (locked) as ours: load it, or format it
 * when it is empty.  A file that is not a spool is moved aside. */
static int adopt(struct nr_spool *sp, int fd, char *path)
{
    struct stat st;

    sp->fd = fd;
    sp->path = path;
    if (fstat(fd, &st) < 0) {
        set_err(sp, "cannot stat", errno);
        return NR_EIO;
    }
    if ((uint64_t)st.st_size <= NR_SPOOL_DATA && !read_header(sp))
        return format_new(sp);          /* new, or cut short while created */
    if (!read_header(sp)) {
        char *aside = nr_asprintf("%s.bad", path);
        int rc = rename(path, aside);
        snprintf(sp->error, sizeof(sp->error), "%s is not a log spool; %s", path,
                 rc == 0 ? "moved aside to .bad" : "left as it is");
        free(aside);
        return NR_EINVAL;
    }
    if (sp->head < NR_SPOOL_DATA)
        sp->head = NR_SPOOL_DATA;
    if (sp->head > (uint64_t)st.st_size)
        sp->head = (uint64_t)st.st_size;      /* the truncation came first */
    if (scan(sp, (uint64_t)st.st_size) < 0)
        return NR_EIO;
    if (sp->pending_xid && (sp->pending_end <= sp->head || sp->pending_end > sp->tail)) {
        sp->pending_xid = 0;                  /* not rows we still have */
        sp->pending_end = 0;
    }
    return NR_OK;
}

static void drop_file(struct nr_spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);          /* releases the lock */
    sp->fd = -1;
    free(sp->path);
    sp->path = NULL;
    sp->head = sp->tail = sp->rows = 0;
    sp->pending_xid = 0;
    sp->pending_end = 0;
}

/* Lock and adopt the first free slot; with create, make the file when it
 * does not exist.  Returns NR_OK (sp->fd >= 0), NR_NOTFOUND (no existing
 * file to take, only without create) or an error (sp->error). */
static int take_slot(struct nr_spool *sp, bool create)
{
    int last = NR_NOTFOUND;

    for (int slot = 0; slot < NR_SPOOL_SLOTS; slot++) {
        char *path = slot_path(sp->dir, slot);
        int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
        int rc;

        if (fd < 0) {
            bool absent = errno == ENOENT || errno == ENOTDIR;

            if (!create && absent) {
                free(path);
                continue;               /* nothing left there */
            }
            sp->path = path;
            set_err(sp, "cannot open", errno);
            sp->path = NULL;
            free(path);
            return NR_EIO;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
            close(fd);
            free(path);
            continue;                   /* another worker's */
        }
        rc = adopt(sp, fd, path);
        if (rc == NR_OK && create && sp->rows > 0) {
            /* rows a dead process left: they wait for a start to take them
             * over (nr_spool_init), not for a spool already in use */
            drop_file(sp);
            continue;
        }
        if (rc == NR_OK)
            return NR_OK;
        drop_file(sp);
        if (rc == NR_EIO)
            return rc;
        last = rc;                      /* moved aside: try the name again */
        slot--;
    }
    if (last == NR_NOTFOUND && create) {
        snprintf(sp->error, sizeof(sp->error), "every spool file in %s is in use by another process",
                 sp->dir);
        return NR_EIO;
    }
    return last;
}

/* A spool written by an older worker holds lower-case levels; NetRaven
 * filters logs.level by the upper-case names, so they are written as those. */
static const char *spooled_level(const char *level)
{
    for (int l = 0; l < NR_LOG_LEVEL_COUNT; l++)
        if (strcasecmp(level, nr_log_level_upper((enum nr_log_level)l)) == 0)
            return nr_log_level_upper((enum nr_log_level)l);
    return level;
}

/* ---------------------------------------------------------------- API */

void nr_log_row_of(const struct nr_log_rec *r, struct nr_ts_cache *tc, char ts[NR_ISO_TS_LEN],
                   struct nr_log_row *w)
{
    const struct nr_event_def *e = &nr_events[r->ev];

    nr_ts_format(tc, &r->ts, ts);
    w->ts = ts;
    w->log_type = nr_log_type_name(e->type);
    w->level = nr_log_level_upper(e->level);   /* as NetRaven writes it */
    w->job_id = r->job_id;
    w->device_id = r->device_id;
    w->source = e->source ? e->source : "";
    w->message = r->msg;
    w->meta = r->meta;
}

int nr_spool_init(struct nr_spool *sp, const char *dir)
{
    int rc;

    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    if (dir == NULL || *dir == '\0')
        return NR_OK;
    sp->dir = nr_strdup(dir);
    rc = take_slot(sp, false);
    return rc == NR_NOTFOUND ? NR_OK : rc;
}

void nr_spool_clear(struct nr_spool *sp)
{
    drop_file(sp);
    free(sp->dir);
    free(sp->rbuf);
    free(sp->rowv);
    nr_sbuf_free(&sp->wbuf);
    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
}

static void put_field(struct nr_sbuf *b, const char *s)
{
    nr_sbuf_put(b, s ? s : "", (s ? strlen(s) : 0) + 1);
}

static void put_id(struct nr_sbuf *b, long long id)
{
    char num[24];

    if (id)
        nr_fmt_ll(num, id);
    else
        num[0] = '\0';
    nr_sbuf_put(b, num, strlen(num) + 1);
}

int nr_spool_append(struct nr_spool *sp, struct nr_log_rec *const *recs, size_t n,
                    struct nr_ts_cache *tc)
{
    struct nr_sbuf *b = &sp->wbuf;
    int err;

    if (n == 0)
        return NR_OK;
    if (sp->dir == NULL) {
        snprintf(sp->error, sizeof(sp->error), "no spool folder (worker.spool_dir) is set");
        return NR_EINVAL;
    }
    if (sp->fd < 0) {
        if (nr_mkdir_p(sp->dir, 0750) < 0) {
            set_err(sp, "cannot create", errno);
            return NR_EIO;
        }
        if (take_slot(sp, true) < 0)
            return NR_EIO;
    }
    nr_sbuf_reset(b);
    for (size_t i = 0; i < n; i++) {
        struct nr_log_row w;
        char ts[NR_ISO_TS_LEN];
        size_t at = b->len, len;

        nr_log_row_of(recs[i], tc, ts, &w);
        nr_sbuf_put(b, "\0\0\0\0\0\0\0\0", 8);
        put_field(b, w.ts);
        put_field(b, w.log_type);
        put_field(b, w.level);
        put_id(b, w.job_id);
        put_id(b, w.device_id);
        put_field(b, w.source);
        put_field(b, w.message);
        put_field(b, w.meta);
        len = b->len - at - 8;
        put32((unsigned char *)b->p + at, (uint32_t)len);
        put32((unsigned char *)b->p + at + 4, rec_crc(sp->epoch, b->p + at + 8, len));
    }
    err = pwrite_all(sp->fd, b->p, b->len, sp->tail);
    if (err == 0)
        err = sync_fd(sp->fd);
    if (err) {
        set_err(sp, "cannot write", err);
        /* Leave no half batch behind.  If even that fails, the next append
         * overwrites it, and an open cuts what a crash left there. */
        (void)!ftruncate(sp->fd, (off_t)sp->tail);
        return NR_EIO;
    }
    sp->tail += b->len;
    sp->rows += n;
    nr_metrics_add(NR_M_LOG_DB_SPOOLED, (long long)n);
    return NR_OK;
}

int nr_spool_read(struct nr_spool *sp, size_t max, uint64_t limit,
                  const struct nr_log_row **rows, size_t *n, uint64_t *end)
{
    uint64_t stop = limit ? limit : sp->tail;
    uint64_t off = sp->head;
    size_t want, pos = 0, count = 0;
    ssize_t got;

    if (sp->fd < 0 || sp->rows == 0 || off >= stop) {
        *n = 0;
        *end = off;
        return NR_OK;
    }
    want = stop - off < NR_SPOOL_READ ? (size_t)(stop - off) : NR_SPOOL_READ;
    if (limit)
        want = (size_t)(stop - off);    /* exactly the rows of the pending commit */
    for (;;) {
        size_t need = 0;
        long long k;

        if (sp->rcap < want) {
            sp->rbuf = nr_realloc(sp->rbuf, want);
            sp->rcap = want;
        }
        got = pread_full(sp->fd, sp->rbuf, want, off);
        if (got < 0) {
            set_err(sp, "cannot read", (int)-got);
            return NR_EIO;
        }
        k = rec_check(sp, (unsigned char *)sp->rbuf, (size_t)got, &need);
        if (k > 0)
            break;
        if (k == 0 && (size_t)got == want && need > want && off + need <= stop) {
            want = need;                /* one record larger than a read */
            continue;
        }
        snprintf(sp->error, sizeof(sp->error), "%s: damaged record at offset %llu",
                 sp->path, (unsigned long long)off);
        return NR_EINVAL;
    }
    for (;;) {
        size_t need = 0;
        long long k;
        const char *f, *endp, *fld[NR_SPOOL_FIELDS];
        struct nr_log_row *w;
        int nf;

        if ((!limit && count >= max) || off + pos >= stop)
            break;
        k = rec_check(sp, (unsigned char *)sp->rbuf + pos, (size_t)got - pos, &need);
        if (k <= 0)
            break;              /* the next read starts there */
        if (count == sp->rowcap) {
            sp->rowcap = sp->rowcap ? sp->rowcap * 2 : 256;
            sp->rowv = nr_realloc(sp->rowv, sp->rowcap * sizeof(*sp->rowv));
        }
        w = &sp->rowv[count];
        f = sp->rbuf + pos + 8;
        endp = sp->rbuf + pos + (size_t)k;
        nf = 0;
        for (; nf < NR_SPOOL_FIELDS && f < endp; nf++) {
            fld[nf] = f;
            f += strlen(f) + 1;
        }
        if (nf < NR_SPOOL_FIELDS) {
            snprintf(sp->error, sizeof(sp->error), "%s: record at offset %llu has %d fields",
                     sp->path, (unsigned long long)(off + pos), nf);
            if (count > 0)
                break;
            return NR_EINVAL;
        }
        w->ts = fld[0];
        w->log_type = fld[1];
        w->level = spooled_level(fld[2]);
        w->job_id = strtoll(fld[3], NULL, 10);
        w->device_id = strtoll(fld[4], NULL, 10);
        w->source = fld[5];
        w->message = fld[6];
        w->meta = fld[7];
        pos += (size_t)k;
        count++;
    }
    if (limit && off + pos != stop) {
        snprintf(sp->error, sizeof(sp->error), "%s: rows of the pending commit end at %llu, not %llu",
                 sp->path, (unsigned long long)(off + pos), (unsigned long long)stop);
        return NR_EINVAL;
    }
    *rows = sp->rowv;
    *n = count;
    *end = off + pos;
    return NR_OK;
}

int nr_spool_mark(struct nr_spool *sp, long long xid, uint64_t end)
{
    sp->pending_xid = xid;
    sp->pending_end = end;
    return write_header(sp, true);
}

int nr_spool_consume(struct nr_spool *sp, uint64_t end, uint64_t rows)
{
    sp->head = end;
    sp->rows = rows > sp->rows ? 0 : sp->rows - rows;
    sp->pending_xid = 0;
    sp->pending_end = 0;
    if (sp->head >= sp->tail || sp->rows == 0) {
        /* Every row is done: cut the file first, then say so; a crash
         * between the two leaves a head past the end, read as empty. */
        if (ftruncate(sp->fd, NR_SPOOL_DATA) < 0) {
            /* keep the file as it is: an empty range at its end */
            set_err(sp, "cannot truncate", errno);
            sp->head = sp->tail;
            sp->rows = 0;
            write_header(sp, false);
            return NR_EIO;
        }
        sp->epoch++;
        sp->head = sp->tail = NR_SPOOL_DATA;
        sp->rows = 0;
        return write_header(sp, true);
    }
    /* Not synced: the pending mark still on disk settles it after a crash. */
    return write_header(sp, false);
}

int nr_spool_discard(struct nr_spool *sp)
{
    char *aside;
    int rc;

    if (sp->fd < 0)
        return NR_OK;
    aside = nr_asprintf("%s.bad", sp->path);
    rc = rename(sp->path, aside);
    free(aside);
    drop_file(sp);
    return rc == 0 ? NR_OK : NR_EIO;
}
