/*
 * knownhosts.c - the known_hosts file in memory (knownhosts.h).
 */
#include "netraven/knownhosts.h"
#include "netraven/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NAME_MAX_LEN  300           /* "[" host "]:" port, lower-cased */
#define SHA1_LEN      20

struct key {
    char       *type;
    char       *b64;
    struct key *next;
};

/* One exact host name and its keys, in the order of the file. */
struct name {
    char        *name;
    uint64_t     hash;
    struct key  *keys, **tail;
    struct name *next;
};

/* A line whose hosts need matching: a hashed name or a pattern list. */
struct slow {
    bool           hashed;
    char          *patterns;                /* pattern list, lower-cased */
    unsigned char  salt[64], mac[SHA1_LEN];
    size_t         saltlen;
    struct key     k;
    struct slow   *next;
};

struct nr_known_hosts {
    pthread_rwlock_t       lk;
    char                  *path;
    struct name          **buckets;
    size_t                 mask, count;
    struct slow           *slow, **slow_tail;
    /* identity of the file as last read; present false: it did not exist */
    bool                   read_once, present, ends_nl;
    dev_t                  dev;
    ino_t                  ino;
    off_t                  size;
    struct timespec        mtime;
    size_t                 skipped;
    unsigned               reads;
    struct nr_known_hosts *next_open;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nr_known_hosts *registry;

/* ---- the table ----------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static struct name *find_name(const struct nr_known_hosts *kh, const char *name, uint64_t h)
{
    for (struct name *n = kh->buckets[h & kh->mask]; n; n = n->next)
        if (n->hash == h && strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void grow(struct nr_known_hosts *kh)
{
    size_t nb = (kh->mask + 1) * 2;
    struct name **b = nr_calloc(nb, sizeof(*b));

    for (size_t i = 0; i <= kh->mask; i++)
        for (struct name *n = kh->buckets[i], *next; n; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    free(kh->buckets);
    kh->buckets = b;
    kh->mask = nb - 1;
}

/* name is lower-cased already. */
static void add_name_key(struct nr_known_hosts *kh, const char *name, const char *type,
                         const char *b64)
{
    uint64_t h = fnv1a(name);
    struct name *n = find_name(kh, name, h);
    struct key *k;

    if (n == NULL) {
        if (kh->count + 1 > (kh->mask + 1) * 2)
            grow(kh);
        n = nr_calloc(1, sizeof(*n));
        n->name = nr_strdup(name);
        n->hash = h;
        n->tail = &n->keys;
        n->next = kh->buckets[h & kh->mask];
        kh->buckets[h & kh->mask] = n;
        kh->count++;
    }
    k = nr_calloc(1, sizeof(*k));
    k->type = nr_strdup(type);
    k->b64 = nr_strdup(b64);
    *n->tail = k;
    n->tail = &k->next;
}

static void clear(struct nr_known_hosts *kh)
{
    for (size_t i = 0; kh->buckets && i <= kh->mask; i++)
        for (struct name *n = kh->buckets[i], *nn; n; n = nn) {
            nn = n->next;
            for (struct key *k = n->keys, *nk; k; k = nk) {
                nk = k->next;
                free(k->type);
                free(k->b64);
                free(k);
            }
            free(n->name);
            free(n);
        }
    free(kh->buckets);
    kh->mask = 63;
    kh->buckets = nr_calloc(kh->mask + 1, sizeof(*kh->buckets));
    kh->count = 0;
    for (struct slow *s = kh->slow, *ns; s; s = ns) {
        ns = s->next;
        free(s->patterns);
        free(s->k.type);
        free(s->k.b64);
        free(s);
    }
    kh->slow = NULL;
    kh->slow_tail = &kh->slow;
    kh->skipped = 0;
}

/* ---- reading the file ---------------------------------------------------- */

/* Decoded length of standard base64 src (len bytes) into out (cap bytes),
 * or -1 when it is not base64 or does not fit. */
static long b64_decode(const char *src, size_t len, unsigned char *out, size_t cap)
{
    unsigned char buf[128];
    int n;
    size_t pad = 0;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(buf))
        return -1;
    n = EVP_DecodeBlock(buf, (const unsigned char *)src, (int)len);
    if (n < 0)
        return -1;
    while (pad < 2 && len > pad && src[len - 1 - pad] == '=')
        pad++;
    if ((size_t)n < pad || (size_t)n - pad > cap)
        return -1;
    memcpy(out, buf, (size_t)n - pad);
    return (long)((size_t)n - pad);
}

static bool valid_b64(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");

    return n > 0 && s[n] == '\0';
}

/* "|1|salt|mac" into a slow entry; false if it is not one. */
static bool parse_hashed(const char *tok, struct slow *s)
{
    const char *salt = tok + 3, *bar = strchr(salt, '|');
    long n;

    if (strncmp(tok, "|1|", 3) != 0 || bar == NULL)
        return false;
    n = b64_decode(salt, (size_t)(bar - salt), s->salt, sizeof(s->salt));
    if (n <= 0)
        return false;
    s->saltlen = (size_t)n;
    return b64_decode(bar + 1, strlen(bar + 1), s->mac, sizeof(s->mac)) == SHA1_LEN;
}

static void add_slow(struct nr_known_hosts *kh, struct slow *s, const char *type,
                     const char *b64)
{
    struct slow *c = nr_malloc(sizeof(*c));

    *c = *s;
    c->k.type = nr_strdup(type);
    c->k.b64 = nr_strdup(b64);
    c->k.next = NULL;
    c->next = NULL;
    *kh->slow_tail = c;
    kh->slow_tail = &c->next;
}

/* One line of the file (modified in place); false if it was skipped as
 * malformed (comments, blanks and markers are not). */
static bool parse_line(struct nr_known_hosts *kh, char *line)
{
    char *save = NULL, *save2 = NULL, *hosts, *type, *b64, *tok;

    line += strspn(line, " \t");
    if (*line == '\0' || *line == '\n' || *line == '#' || *line == '@')
        return true;
    hosts = strtok_r(line, " \t\r\n", &save);
    type = strtok_r(NULL, " \t\r\n", &save);
    b64 = strtok_r(NULL, " \t\r\n", &save);
    if (hosts == NULL || type == NULL || b64 == NULL || !valid_b64(b64))
        return false;
    if (strpbrk(hosts, "*?!") != NULL) {
        /* OpenSSH reads the list as a whole: a negation excludes. */
        struct slow s = { .hashed = false };

        s.patterns = nr_strdup(hosts);
        lower(s.patterns);
        add_slow(kh, &s, type, b64);
        return true;
    }
    for (tok = strtok_r(hosts, ",", &save2); tok; tok = strtok_r(NULL, ",", &save2)) {
        if (tok[0] == '|') {
            struct slow s = { .hashed = true };

            if (!parse_hashed(tok, &s))
                return false;
            add_slow(kh, &s, type, b64);
            continue;
        }
        lower(tok);
        add_name_key(kh, tok, type, b64);
    }
    return true;
}

/* Reads the file again into the table (write lock held). */
static void reload(struct nr_known_hosts *kh)
{
    FILE *f = fopen(kh->path, "re");
    struct stat st;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    clear(kh);
    kh->reads++;
    kh->read_once = true;
    kh->present = false;
    kh->ends_nl = true;
    if (f == NULL)
        return;
    if (fstat(fileno(f), &st) == 0) {
        kh->present = true;
        kh->dev = st.st_dev;
        kh->ino = st.st_ino;
        kh->size = st.st_size;
        kh->mtime = st.st_mtim;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        kh->ends_nl = line[n - 1] == '\n';
        if (!parse_line(kh, line))
            kh->skipped++;
    }
    free(line);
    fclose(f);
}

/* Whether the file is still the one read last (rc and st: stat()'s). */
static bool unchanged(const struct nr_known_hosts *kh, int rc, const struct stat *st)
{
    if (!kh->read_once)
        return false;
    if (rc != 0)
        return !kh->present;
    return kh->present && st->st_dev == kh->dev && st->st_ino == kh->ino &&
           st->st_size == kh->size && st->st_mtim.tv_sec == kh->mtime.tv_sec &&
           st->st_mtim.tv_nsec == kh->mtime.tv_nsec;
}

/* Takes the write lock, the table brought up to date with the file. */
static void lock_write_fresh(struct nr_known_hosts *kh)
{
    struct stat st;
    int rc;

    pthread_rwlock_wrlock(&kh->lk);
    rc = stat(kh->path, &st);
    if (!unchanged(kh, rc, &st))
        reload(kh);
}

/*
 * Takes the lock for reading, the table brought up to date with the file
 * first (one stat() when nothing changed).  Returns with the read lock
 * held, or the write lock when it had to read the file (*write set).
 */
static void lock_fresh(struct nr_known_hosts *kh, bool *write)
{
    struct stat st;
    int rc = stat(kh->path, &st);

    *write = false;
    pthread_rwlock_rdlock(&kh->lk);
    if (unchanged(kh, rc, &st))
        return;
    pthread_rwlock_unlock(&kh->lk);
    lock_write_fresh(kh);
    *write = true;
}

/* ---- lookups ------------------------------------------------------------- */

/* "host" for port 22, "[host]:port" otherwise, lower-cased. */
static bool host_name(const char *host, int port, char *out, size_t outlen)
{
    int n = port == 22 || port <= 0 ? snprintf(out, outlen, "%s", host)
                                    : snprintf(out, outlen, "[%s]:%d", host, port);

    if (n < 0 || (size_t)n >= outlen)
        return false;
    lower(out);
    return true;
}

static bool match_patterns(const char *list, const char *name)
{
    bool yes = false;
    const char *p = list;

    while (*p) {
        size_t len = strcspn(p, ",");
        char pat[NAME_MAX_LEN];
        bool neg = *p == '!';

        if (len - neg < sizeof(pat)) {
            memcpy(pat, p + neg, len - neg);
            pat[len - neg] = '\0';
            if (fnmatch(pat, name, 0) == 0) {
                if (neg)
                    return false;
                yes = true;
            }
        }
        p += len + (p[len] == ',');
    }
    return yes;
}

static bool match_hashed(const struct slow *s, const char *name)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (HMAC(EVP_sha1(), s->salt, (int)s->saltlen, (const unsigned char *)name, strlen(name),
             mac, &len) == NULL || len != SHA1_LEN)
        return false;
    return memcmp(mac, s->mac, SHA1_LEN) == 0;
}

static bool slow_matches(const struct slow *s, const char *name)
{
    return s->hashed ? match_hashed(s, name) : match_patterns(s->patterns, name);
}

struct verdict {
    bool ok, same_type, any;
};

static void judge(struct verdict *v, const struct key *k, const char *type, const char *b64)
{
    v->any = true;
    if (strcmp(k->type, type) != 0)
        return;
    v->same_type = true;
    if (strcmp(k->b64, b64) == 0)
        v->ok = true;
}

static enum nr_kh_state lookup(const struct nr_known_hosts *kh, const char *name,
                               const char *type, const char *b64)
{
    struct verdict v = { false, false, false };
    const struct name *n = find_name(kh, name, fnv1a(name));

    for (const struct key *k = n ? n->keys : NULL; k; k = k->next)
        judge(&v, k, type, b64);
    for (const struct slow *s = kh->slow; s && !v.ok; s = s->next)
        if (slow_matches(s, name))
            judge(&v, &s->k, type, b64);
    return v.ok ? NR_KH_OK : v.same_type ? NR_KH_CHANGED : v.any ? NR_KH_OTHER
                                                                  : NR_KH_UNKNOWN;
}

/* ---- storing ------------------------------------------------------------- */

/* mkdir -p of the folder of path. */
static void make_folder(const char *path)
{
    char *dir = nr_strdup(path), *slash = strrchr(dir, '/');

    if (slash && slash != dir) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++)
            if (*p == '/') {
                *p = '\0';
                (void)mkdir(dir, 0700);
                *p = '/';
            }
        (void)mkdir(dir, 0700);
    }
    free(dir);
}

/* Appends the line; write lock held.  0 or -1 with err set. */
static int append(struct nr_known_hosts *kh, const char *name, const char *type,
                  const char *b64, char *err, size_t errlen)
{
    char *line = nr_asprintf("%s%s %s %s\n", kh->ends_nl ? "" : "\n", name, type, b64);
    size_t len = strlen(line);
    int fd = open(kh->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ssize_t n;
    struct stat st;

    if (fd < 0 && errno == ENOENT) {
        make_folder(kh->path);
        fd = open(kh->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        if (err)
            snprintf(err, errlen, "cannot open %s: %s", kh->path, strerror(errno));
        free(line);
        return -1;
    }
    n = write(fd, line, len);
    if (n != (ssize_t)len) {
        if (err)
            snprintf(err, errlen, "cannot write %s: %s", kh->path,
                     n < 0 ? strerror(errno) : "short write");
        close(fd);
        free(line);
        return -1;
    }
    /* The file is what was read plus this line, unless someone else wrote
     * too: then it is read again at the next lookup. */
    if (fstat(fd, &st) == 0 && st.st_size == (kh->present ? kh->size : 0) + (off_t)len &&
        (!kh->present || (st.st_dev == kh->dev && st.st_ino == kh->ino))) {
        kh->present = true;
        kh->dev = st.st_dev;
        kh->ino = st.st_ino;
        kh->size = st.st_size;
        kh->mtime = st.st_mtim;
        kh->ends_nl = true;
    } else {
        kh->read_once = false;
    }
    close(fd);
    free(line);
    add_name_key(kh, name, type, b64);
    return 0;
}

/* ---- the API ------------------------------------------------------------- */

struct nr_known_hosts *nr_known_hosts_open(const char *path)
{
    struct nr_known_hosts *kh;

    pthread_mutex_lock(&registry_mu);
    for (kh = registry; kh; kh = kh->next_open)
        if (strcmp(kh->path, path) == 0)
            break;
    if (kh == NULL) {
        kh = nr_calloc(1, sizeof(*kh));
        pthread_rwlock_init(&kh->lk, NULL);
        kh->path = nr_strdup(path);
        clear(kh);
        kh->next_open = registry;
        registry = kh;
    }
    pthread_mutex_unlock(&registry_mu);
    return kh;
}

void nr_known_hosts_close_all(void)
{
    pthread_mutex_lock(&registry_mu);
    while (registry) {
        struct nr_known_hosts *kh = registry;

        registry = kh->next_open;
        clear(kh);
        free(kh->buckets);
        free(kh->path);
        pthread_rwlock_destroy(&kh->lk);
        free(kh);
    }
    pthread_mutex_unlock(&registry_mu);
}

enum nr_kh_state nr_known_hosts_check(struct nr_known_hosts *kh, const char *host, int port,
                                      const char *type, const char *b64, bool learn,
                                      bool *stored, char *err, size_t errlen)
{
    char name[NAME_MAX_LEN];
    enum nr_kh_state st;
    bool write;

    if (stored)
        *stored = false;
    if (err && errlen)
        err[0] = '\0';
    if (!host_name(host, port, name, sizeof(name))) {
        if (err)
            snprintf(err, errlen, "host name too long");
        return NR_KH_UNKNOWN;
    }
    lock_fresh(kh, &write);
    st = lookup(kh, name, type, b64);
    if (st == NR_KH_UNKNOWN && learn) {
        if (!write) {
            pthread_rwlock_unlock(&kh->lk);
            lock_write_fresh(kh);
            st = lookup(kh, name, type, b64);   /* another session may have stored it */
        }
        if (st == NR_KH_UNKNOWN && append(kh, name, type, b64, err, errlen) == 0 && stored)
            *stored = true;
    }
    pthread_rwlock_unlock(&kh->lk);
    return st;
}

/* Appends type to the comma list out (used bytes of outlen) unless it is
 * there already or would not fit; true when appended. */
static bool add_type(char *out, size_t *used, size_t outlen, const char *type)
{
    size_t tl = strlen(type);

    if (nr_list_has(out, type, tl) || *used + (*used > 0) + tl + 1 > outlen)
        return false;
    if (*used)
        out[(*used)++] = ',';
    memcpy(out + *used, type, tl + 1);
    *used += tl;
    return true;
}

size_t nr_known_hosts_types(struct nr_known_hosts *kh, const char *host, int port, char *out,
                            size_t outlen)
{
    char name[NAME_MAX_LEN];
    const struct name *n;
    size_t used = 0, count = 0;
    bool write;

    if (outlen)
        out[0] = '\0';
    if (!host_name(host, port, name, sizeof(name)) || outlen == 0)
        return 0;
    lock_fresh(kh, &write);
    n = find_name(kh, name, fnv1a(name));
    for (const struct key *k = n ? n->keys : NULL; k; k = k->next)
        count += add_type(out, &used, outlen, k->type);
    for (const struct slow *sl = kh->slow; sl; sl = sl->next)
        if (slow_matches(sl, name))
            count += add_type(out, &used, outlen, sl->k.type);
    pthread_rwlock_unlock(&kh->lk);
    return count;
}

size_t nr_known_hosts_skipped(struct nr_known_hosts *kh)
{
    size_t n;
    bool write;

    lock_fresh(kh, &write);
    n = kh->skipped;
    pthread_rwlock_unlock(&kh->lk);
    return n;
}

unsigned nr_known_hosts_reads(struct nr_known_hosts *kh)
{
    unsigned n;

    pthread_rwlock_rdlock(&kh->lk);
    n = kh->reads;
    pthread_rwlock_unlock(&kh->lk);
    return n;
}
