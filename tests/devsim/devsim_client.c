/*
 * devsim_client.c - a small libssh client for testing devsim.
 *
 * Two modes:
 *
 *   devsim-client [conn] script STEP...
 *     Logs in, opens a shell (or --exec CMD), runs the steps in order and
 *     writes everything received to the transcript (-o FILE).  Steps:
 *       expect:TEXT   wait for TEXT in what arrives after the last match
 *       send:TEXT     send TEXT           line:TEXT  send TEXT and "\n"
 *       sleep:MS      read for MS ms      quiet:MS   fail if anything arrives in MS ms
 *       eof           wait for the server to close the channel or connection
 *       save:FILE     write what arrived between the last two expects' matches
 *                     (a command's output: "expect:CMD" "expect:\nPROMPT" "save:F");
 *                     append:FILE  the same, appended
 *     TEXT takes \r \n \t \\ \xHH escapes.
 *     Exit: 0 ok, 2 auth failed, 3 expect timed out, 4 connect failed or
 *     the connection closed under an expect, 5 quiet broken, 6 no eof,
 *     1 usage or other errors.  Timings go to stderr.
 *
 *   devsim-client [conn] bench -n SESSIONS -c CONCURRENCY [-N DEVICES]
 *                 [--vary-address] [--cmd CMD]... [--min-bytes N] [--devsim-pid PID]
 *     Each session logs in to port + (i % DEVICES) (or, with --vary-address,
 *     to address HOST + (i % DEVICES) on port), waits for the prompt,
 *     runs the commands (waiting for the prompt after each), checks the
 *     last output's size, and exits.  Prints one summary line.
 *
 *   conn: -H HOST (127.0.0.1) -p PORT -u USER -P PASSWORD [--kbdint]
 *         [-t TIMEOUT_MS per step, default 10000] [-o TRANSCRIPT]
 *         [-b BANNER_FILE] [--exec CMD] [--no-pty]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libssh/libssh.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct conn_opts {
    const char *host, *user, *password, *transcript, *banner_file, *exec;
    int port;
    bool kbdint, no_pty;
    int timeout_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct buf {
    char  *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            fprintf(stderr, "devsim-client: out of memory\n");
            exit(1);
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Connect and log in (host: o->host unless given).  Returns the session,
 * or NULL with *why set: 2 auth failed, 4 connect failed. */
static ssh_session login_at(const struct conn_opts *o, const char *host, int port, int *why,
                            uint64_t *connect_ms)
{
    ssh_session s = ssh_new();
    long timeout_s = o->timeout_ms / 1000 > 0 ? o->timeout_ms / 1000 : 1;
    bool no = false;
    int verbosity = SSH_LOG_NOLOG, rc, nodelay = 1;
    uint64_t t0 = now_ms();

    *why = 4;
    if (s == NULL)
        return NULL;
    ssh_options_set(s, SSH_OPTIONS_HOST, host ? host : o->host);
    ssh_options_set(s, SSH_OPTIONS_PORT, &port);
    ssh_options_set(s, SSH_OPTIONS_USER, o->user);
    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout_s);
    ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verbosity);
    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
    ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay);
    if (ssh_connect(s) != SSH_OK) {
        fprintf(stderr, "devsim-client: connect %s:%d: %s\n", host ? host : o->host, port,
                ssh_get_error(s));
        ssh_free(s);
        return NULL;
    }
    if (connect_ms)
        *connect_ms = now_ms() - t0;
    /* Host keys are devsim's own; nothing to verify in a test. */
    if (o->kbdint) {
        rc = ssh_userauth_kbdint(s, NULL, NULL);
        while (rc == SSH_AUTH_INFO) {
            int n = ssh_userauth_kbdint_getnprompts(s);

            for (int i = 0; i < n; i++)
                ssh_userauth_kbdint_setanswer(s, (unsigned)i, o->password);
            rc = ssh_userauth_kbdint(s, NULL, NULL);
        }
    } else {
        rc = ssh_userauth_password(s, NULL, o->password);
    }
    if (rc != SSH_AUTH_SUCCESS) {
        *why = rc == SSH_AUTH_ERROR ? 4 : 2;
        fprintf(stderr, "devsim-client: authentication failed: %s\n", ssh_get_error(s));
        ssh_disconnect(s);
        ssh_free(s);
        return NULL;
    }
    *why = 0;
    return s;
}

static ssh_session login(const struct conn_opts *o, int port, int *why, uint64_t *connect_ms)
{
    return login_at(o, NULL, port, why, connect_ms);
}

static ssh_channel open_shell(ssh_session s, const struct conn_opts *o)
{
    ssh_channel ch = ssh_channel_new(s);

    if (ch == NULL || ssh_channel_open_session(ch) != SSH_OK)
        goto fail;
    if (!o->no_pty && ssh_channel_request_pty_size(ch, "vt100", 200, 24) != SSH_OK)
        goto fail;
    if (o->exec ? ssh_channel_request_exec(ch, o->exec) != SSH_OK
                : ssh_channel_request_shell(ch) != SSH_OK)
        goto fail;
    return ch;
fail:
    fprintf(stderr, "devsim-client: channel: %s\n", ssh_get_error(s));
    if (ch)
        ssh_channel_free(ch);
    return NULL;
}

/* Read what arrives within ms into b.  Returns bytes read, or -1 if the
 * channel reached EOF / closed / failed (data read before that is kept). */
static long read_for(ssh_channel ch, struct buf *b, int ms)
{
    char tmp[16384];
    long total = 0;
    uint64_t end = now_ms() + (uint64_t)ms;

    for (;;) {
        uint64_t now = now_ms();
        int left = now >= end ? 0 : (int)(end - now);
        int n = ssh_channel_read_timeout(ch, tmp, sizeof tmp, 0, left > 0 ? left : 1);

        if (n > 0) {
            buf_add(b, tmp, (size_t)n);
            total += n;
            if (ssh_channel_poll(ch, 0) <= 0)
                return total;   /* drained what was there */
            continue;
        }
        if (n < 0 || ssh_channel_is_eof(ch) || !ssh_channel_is_open(ch))
            return -1;
        if (left == 0)
            return total;
    }
}

static void unescape(const char *in, struct buf *out)
{
    for (const char *p = in; *p; p++) {
        char c = *p;

        if (c == '\\' && p[1]) {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'x': {
                unsigned v = 0;

                for (int k = 0; k < 2 && p[1]; k++) {
                    char h = *++p;

                    v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
                }
                c = (char)v;
                break;
            }
            default: c = *p; break;
            }
        }
        buf_add(out, &c, 1);
    }
}

static void save(const char *path, const struct buf *b)
{
    FILE *f;

    if (path == NULL)
        return;
    f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "devsim-client: %s: %s\n", path, strerror(errno));
        return;
    }
    if (b->len)
        fwrite(b->p, 1, b->len, f);
    fclose(f);
}

static int run_script(const struct conn_opts *o, int nsteps, char **steps)
{
    struct buf t = {0};
    size_t mark = 0, prev_end = 0, last_start = 0;
    uint64_t t0 = now_ms(), cms = 0;
    int why = 0, rc = 0;
    ssh_session s = login(o, o->port, &why, &cms);
    ssh_channel ch;

    if (s == NULL) {
        save(o->transcript, &t);
        return why;
    }
    fprintf(stderr, "devsim-client: connected in %llu ms, logged in at %llu ms\n",
            (unsigned long long)cms, (unsigned long long)(now_ms() - t0));
    if (o->banner_file) {
        char *banner = ssh_get_issue_banner(s);
        struct buf bb = {0};

        if (banner) {
            buf_add(&bb, banner, strlen(banner));
            ssh_string_free_char(banner);
        }
        save(o->banner_file, &bb);
        free(bb.p);
    }
    ch = open_shell(s, o);
    if (ch == NULL) {
        ssh_disconnect(s);
        ssh_free(s);
        return 4;
    }
    for (int i = 0; i < nsteps && rc == 0; i++) {
        const char *st = steps[i];
        struct buf arg = {0};
        uint64_t ts = now_ms();

        if (strncmp(st, "expect:", 7) == 0) {
            unescape(st + 7, &arg);
            for (;;) {
                char *hit = t.len ? memmem(t.p + mark, t.len - mark, arg.p, arg.len) : NULL;
                uint64_t now = now_ms();

                if (hit) {
                    prev_end = mark;
                    last_start = (size_t)(hit - t.p);
                    mark = (size_t)(hit - t.p) + arg.len;
                    fprintf(stderr, "devsim-client: step %d %s: %llu ms\n", i + 1, st,
                            (unsigned long long)(now - ts));
                    break;
                }
                if (now - ts >= (uint64_t)o->timeout_ms) {
                    fprintf(stderr, "devsim-client: step %d %s: timed out\n", i + 1, st);
                    rc = 3;
                    break;
                }
                if (read_for(ch, &t, (int)(o->timeout_ms - (now - ts))) < 0) {
                    hit = t.len ? memmem(t.p + mark, t.len - mark, arg.p, arg.len) : NULL;
                    if (hit)
                        continue;
                    fprintf(stderr, "devsim-client: step %d %s: connection closed\n", i + 1, st);
                    rc = 4;
                    break;
                }
            }
        } else if (strncmp(st, "send:", 5) == 0 || strncmp(st, "line:", 5) == 0) {
            unescape(st + 5, &arg);
            if (st[0] == 'l')
                buf_add(&arg, "\n", 1);
            if (ssh_channel_write(ch, arg.p, (uint32_t)arg.len) != (int)arg.len) {
                fprintf(stderr, "devsim-client: step %d: write failed\n", i + 1);
                rc = 4;
            }
        } else if (strncmp(st, "sleep:", 6) == 0) {
            read_for(ch, &t, atoi(st + 6));
        } else if (strncmp(st, "quiet:", 6) == 0) {
            size_t before = t.len;
            long n = read_for(ch, &t, atoi(st + 6));

            if (n != 0 || t.len != before) {
                fprintf(stderr, "devsim-client: step %d %s: %s\n", i + 1, st,
                        n < 0 ? "connection closed" : "data arrived");
                rc = 5;
            }
        } else if (strncmp(st, "save:", 5) == 0 || strncmp(st, "append:", 7) == 0) {
            bool app = st[0] == 'a';
            const char *path = st + (app ? 7 : 5);
            FILE *f = fopen(path, app ? "ab" : "wb");

            if (f == NULL) {
                fprintf(stderr, "devsim-client: %s: %s\n", path, strerror(errno));
                rc = 1;
            } else {
                if (last_start > prev_end)
                    fwrite(t.p + prev_end, 1, last_start - prev_end, f);
                fclose(f);
            }
        } else if (strcmp(st, "eof") == 0) {
            for (;;) {
                if (read_for(ch, &t, 200) < 0) {
                    fprintf(stderr, "devsim-client: step %d eof: %llu ms\n", i + 1,
                            (unsigned long long)(now_ms() - ts));
                    break;
                }
                if (now_ms() - ts >= (uint64_t)o->timeout_ms) {
                    fprintf(stderr, "devsim-client: step %d eof: timed out\n", i + 1);
                    rc = 6;
                    break;
                }
            }
        } else {
            fprintf(stderr, "devsim-client: unknown step %s\n", st);
            rc = 1;
        }
        free(arg.p);
    }
    if (o->exec && rc == 0) {
        int status = ssh_channel_get_exit_status(ch);

        fprintf(stderr, "devsim-client: exit status %d\n", status);
    }
    save(o->transcript, &t);
    free(t.p);
    ssh_channel_free(ch);
    ssh_disconnect(s);
    ssh_free(s);
    return rc;
}

/* ---- bench ----------------------------------------------------------- */

struct bench {
    const struct conn_opts *o;
    int sessions, ndevices;
    bool vary_address;          /* device i: HOST + i, same port */
    const char **cmds;
    int ncmds;
    long min_bytes;
    atomic_int next;
    atomic_int ok, failed;
    atomic_llong bytes;
    uint64_t *lat;              /* ms per session, 0 for failures */
};

static bool ends_with_prompt(const struct buf *b, size_t from, const char *prompt)
{
    size_t pl = strlen(prompt);

    return b->len >= from + pl + 1 && memcmp(b->p + b->len - pl, prompt, pl) == 0 &&
           b->p[b->len - pl - 1] == '\n';
}

/* One session; returns the size of the last command's output, or -1. */
static long bench_one(struct bench *bn, int idx)
{
    const struct conn_opts *o = bn->o;
    int why, port = bn->vary_address ? o->port : o->port + idx % bn->ndevices;
    char host[INET_ADDRSTRLEN];
    struct in_addr a;
    ssh_session s;

    if (bn->vary_address && inet_pton(AF_INET, o->host, &a) == 1) {
        a.s_addr = htonl(ntohl(a.s_addr) + (uint32_t)(idx % bn->ndevices));
        inet_ntop(AF_INET, &a, host, sizeof host);
    } else {
        snprintf(host, sizeof host, "%s", o->host);
    }
    s = login_at(o, host, port, &why, NULL);
    ssh_channel ch;
    struct buf b = {0};
    char prompt[128];
    long last = -1;
    uint64_t start;

    if (s == NULL)
        return -1;
    ch = open_shell(s, o);
    if (ch == NULL)
        goto out;
    /* The prompt: the last line of the greeting, once it ends in # or >. */
    start = now_ms();
    for (;;) {
        char *nl;
        size_t len;

        if (read_for(ch, &b, 200) < 0 || now_ms() - start > (uint64_t)o->timeout_ms) {
            fprintf(stderr, "devsim-client: session %d: no prompt (%zu bytes)\n", idx, b.len);
            goto out;
        }
        len = b.len;
        while (len && b.p[len - 1] == ' ')
            len--;
        if (len && (b.p[len - 1] == '#' || b.p[len - 1] == '>' || b.p[len - 1] == '$')) {
            nl = memrchr(b.p, '\n', b.len);
            snprintf(prompt, sizeof prompt, "%s", nl ? nl + 1 : b.p);
            break;
        }
    }
    for (int c = 0; c < bn->ncmds; c++) {
        size_t from = b.len;

        ssh_channel_write(ch, bn->cmds[c], (uint32_t)strlen(bn->cmds[c]));
        ssh_channel_write(ch, "\n", 1);
        start = now_ms();
        while (!ends_with_prompt(&b, from + strlen(bn->cmds[c]), prompt)) {
            if (read_for(ch, &b, 500) < 0 || now_ms() - start > (uint64_t)o->timeout_ms) {
                fprintf(stderr, "devsim-client: session %d: %s: no prompt after %zu bytes\n",
                        idx, bn->cmds[c], b.len - from);
                goto out;
            }
        }
        last = (long)(b.len - from);
    }
    ssh_channel_write(ch, "exit\n", 5);
    read_for(ch, &b, 50);
out:
    atomic_fetch_add(&bn->bytes, (long long)b.len);
    free(b.p);
    if (ch)
        ssh_channel_free(ch);
    ssh_disconnect(s);
    ssh_free(s);
    return last;
}

static void *bench_worker(void *arg)
{
    struct bench *bn = arg;
    int i;

    while ((i = atomic_fetch_add(&bn->next, 1)) < bn->sessions) {
        uint64_t t0 = now_ms();
        long n = bench_one(bn, i);

        if (n >= 0 && n < bn->min_bytes)
            fprintf(stderr, "devsim-client: session %d: output %ld bytes, want %ld\n", i, n,
                    bn->min_bytes);
        if (n >= bn->min_bytes) {
            bn->lat[i] = now_ms() - t0;
            if (bn->lat[i] == 0)
                bn->lat[i] = 1;
            atomic_fetch_add(&bn->ok, 1);
        } else {
            atomic_fetch_add(&bn->failed, 1);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* utime + stime of a process in seconds, or -1. */
static double proc_cpu(long pid)
{
    char path[64], line[1024], *p;
    unsigned long ut, st;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return -1;
    }
    fclose(f);
    p = strrchr(line, ')');
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int run_bench(const struct conn_opts *o, int argc, char **argv)
{
    struct bench bn = {.o = o, .sessions = 100, .ndevices = 1};
    int conc = 10;
    long pid = 0;
    const char *cmds[16];
    pthread_t *th;
    uint64_t t0, wall;
    struct rusage ru0, ru1;
    double cpu0 = -1, cpu1 = -1, client_cpu;
    uint64_t *ok;
    size_t nok = 0;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--vary-address") == 0) {
            bn.vary_address = true;
            continue;
        }
        if (v == NULL)
            goto usage;
        if (strcmp(a, "-n") == 0)
            bn.sessions = atoi(v);
        else if (strcmp(a, "-c") == 0)
            conc = atoi(v);
        else if (strcmp(a, "-N") == 0)
            bn.ndevices = atoi(v);
        else if (strcmp(a, "--cmd") == 0 && bn.ncmds < 16)
            cmds[bn.ncmds++] = v;
        else if (strcmp(a, "--min-bytes") == 0)
            bn.min_bytes = atol(v);
        else if (strcmp(a, "--devsim-pid") == 0)
            pid = atol(v);
        else
            goto usage;
        i++;
    }
    if (bn.sessions <= 0 || conc <= 0 || bn.ndevices <= 0)
        goto usage;
    bn.cmds = cmds;
    bn.lat = calloc((size_t)bn.sessions, sizeof *bn.lat);
    th = calloc((size_t)conc, sizeof *th);
    if (bn.lat == NULL || th == NULL) {
        free(bn.lat);
        free(th);
        return 1;
    }
    if (pid)
        cpu0 = proc_cpu(pid);
    getrusage(RUSAGE_SELF, &ru0);
    t0 = now_ms();
    for (int i = 0; i < conc; i++)
        pthread_create(&th[i], NULL, bench_worker, &bn);
    for (int i = 0; i < conc; i++)
        pthread_join(th[i], NULL);
    wall = now_ms() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    if (pid)
        cpu1 = proc_cpu(pid);
    client_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                          ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                          ru0.ru_stime.tv_usec) / 1e6;
    ok = calloc((size_t)bn.sessions, sizeof *ok);
    for (int i = 0; i < bn.sessions; i++)
        if (bn.lat[i])
            ok[nok++] = bn.lat[i];
    qsort(ok, nok, sizeof *ok, cmp_u64);
    printf("bench: sessions=%d concurrency=%d ok=%d failed=%d wall_ms=%llu rate=%.1f/s "
           "session_ms p50=%llu p95=%llu max=%llu bytes=%lld client_cpu_s=%.2f",
           bn.sessions, conc, atomic_load(&bn.ok), atomic_load(&bn.failed),
           (unsigned long long)wall, wall ? 1000.0 * atomic_load(&bn.ok) / (double)wall : 0.0,
           (unsigned long long)(nok ? ok[nok / 2] : 0),
           (unsigned long long)(nok ? ok[nok * 95 / 100] : 0),
           (unsigned long long)(nok ? ok[nok - 1] : 0), (long long)atomic_load(&bn.bytes),
           client_cpu);
    if (pid && cpu0 >= 0 && cpu1 >= 0)
        printf(" devsim_cpu_s=%.2f devsim_cpu_pct=%.0f", cpu1 - cpu0,
               wall ? 100.0 * (cpu1 - cpu0) * 1000.0 / (double)wall : 0.0);
    printf("\n");
    free(ok);
    free(bn.lat);
    free(th);
    return atomic_load(&bn.failed) ? 1 : 0;
usage:
    fprintf(stderr, "devsim-client: bench -n SESSIONS -c CONCURRENCY [-N DEVICES] "
                    "[--vary-address] [--cmd CMD]... [--min-bytes N] [--devsim-pid PID]\n");
    return 1;
}

int main(int argc, char **argv)
{
    struct conn_opts o = {.host = "127.0.0.1", .user = "admin", .password = "admin",
                          .port = 22, .timeout_ms = 10000};
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "script") == 0 || strcmp(a, "bench") == 0)
            break;
        if (strcmp(a, "--kbdint") == 0) {
            o.kbdint = true;
            continue;
        }
        if (strcmp(a, "--no-pty") == 0) {
            o.no_pty = true;
            continue;
        }
        if (v == NULL)
            break;
        if (strcmp(a, "-H") == 0)
            o.host = v;
        else if (strcmp(a, "-p") == 0)
            o.port = atoi(v);
        else if (strcmp(a, "-u") == 0)
            o.user = v;
        else if (strcmp(a, "-P") == 0)
            o.password = v;
        else if (strcmp(a, "-t") == 0)
            o.timeout_ms = atoi(v);
        else if (strcmp(a, "-o") == 0)
            o.transcript = v;
        else if (strcmp(a, "-b") == 0)
            o.banner_file = v;
        else if (strcmp(a, "--exec") == 0)
            o.exec = v;
        else
            break;
        i++;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: devsim-client [-H host] [-p port] [-u user] [-P password] "
                        "[--kbdint] [-t ms] [-o transcript] [-b banner] [--exec CMD] "
                        "[--no-pty] script STEP... | bench ...\n");
        return 1;
    }
    ssh_init();
    if (strcmp(argv[i], "script") == 0)
        i = run_script(&o, argc - i - 1, argv + i + 1);
    else if (strcmp(argv[i], "bench") == 0)
        i = run_bench(&o, argc - i - 1, argv + i + 1);
    else {
        fprintf(stderr, "devsim-client: unknown mode %s\n", argv[i]);
        i = 1;
    }
    ssh_finalize();
    return i;
}
