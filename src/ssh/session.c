/*
 * session.c - one SSH session to a device (libssh client API): TCP connect
 * with a deadline, handshake, host key policy, authentication, a shell on a
 * PTY, bytes in and out, and the session stream (docs/netraven.md §4.2,
 * "session").
 *
 * The TCP connection is made here (non-blocking connect and poll) rather
 * than by libssh, so that refused, unreachable and timed-out connects are
 * told apart by errno, and TCP_NODELAY is set: a CLI exchange is small
 * writes waiting for answers.  The socket is handed to libssh with
 * SSH_OPTIONS_FD; from ssh_connect() on, libssh owns it (see close_ssh).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h>    /* TCP_NODELAY, and TCP_INFO's tcpi_data_segs_in */
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "netraven/knownhosts.h"
#include "netraven/log.h"
#include "netraven/metrics.h"
#include "netraven/secret.h"
#include "netraven/ssh.h"

#define MASK                "********"
#define MAX_SECRETS         4
#define STREAM_LINE_MAX     4096    /* a longer unfinished line is sent anyway */
#define STREAM_KEEP         64      /* ... minus this much, for keywords split there */
#define KBDINT_ROUNDS       8
#define PTY_COLS            511
#define PTY_ROWS            24

/* libssh 0.10's default lists (kex.c), to which the legacy ones are
 * appended when ssh.allow_legacy_kex is set. */
#define BASE_KEX  "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256," \
                  "ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group18-sha512," \
                  "diffie-hellman-group16-sha512,diffie-hellman-group-exchange-sha256," \
                  "diffie-hellman-group14-sha256"
#define BASE_MACS "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com," \
                  "hmac-sha2-256,hmac-sha2-512"
#define BASE_HOSTKEYS "ssh-ed25519,ecdsa-sha2-nistp521,ecdsa-sha2-nistp384," \
                      "ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"

struct nr_ssh_i {
    ssh_session  sess;
    ssh_channel  chan;
    int          fd;            /* ours until ssh_connect(), then libssh's */
    bool         fd_given;
    bool         tcp_up;        /* a TCP connection was made: log the disconnect */
    struct nr_redaction red;    /* the stream's line redaction (patterns) */
    const char  *secrets[MAX_SECRETS];
    size_t       nsecrets;

    /* session stream (only when session records are enabled) */
    bool         stream;
    char        *rx;            /* received, not yet forwarded (an unfinished line) */
    size_t       rx_len, rx_cap;
    bool         rx_drop_rest;  /* the unfinished line went out redacted: drop its rest */
    bool         echo_pending;  /* a secret was typed: mask the device's echo line */
    bool         echo_content;
};

/* What each failure is to the dispatcher (failure.def, which names it);
 * a protocol failure at connect is the handshake itself, which asking
 * again does not change, later it is a session lost. */
static const enum nr_failure_class fail_classes[NR_SSH_FAIL_COUNT] = {
    [NR_SSH_OK] = NR_FAILURE_NONE,
    [NR_SSH_REFUSED] = NR_FAILURE_REFUSED,
    [NR_SSH_UNREACHABLE] = NR_FAILURE_UNREACHABLE,
    [NR_SSH_TIMEOUT] = NR_FAILURE_TIMEOUT,
    [NR_SSH_AUTH] = NR_FAILURE_AUTH,
    [NR_SSH_HOSTKEY] = NR_FAILURE_HOST_KEY,
    [NR_SSH_PROTOCOL] = NR_FAILURE_LOST,
    [NR_SSH_OUTPUT_CAP] = NR_FAILURE_OUTPUT_CAP,
};

static const char *const stage_names[NR_SSH_STAGE_COUNT] = {
    [NR_SSH_STAGE_CONNECT] = "connect",
    [NR_SSH_STAGE_AUTH] = "auth",
    [NR_SSH_STAGE_SHELL] = "shell",
    [NR_SSH_STAGE_PROMPT] = "prompt",
    [NR_SSH_STAGE_ENABLE] = "enable",
    [NR_SSH_STAGE_COMMAND] = "command",
};

static enum nr_failure_class fail_class(enum nr_ssh_fail f, enum nr_ssh_stage st)
{
    if ((unsigned)f >= NR_SSH_FAIL_COUNT)
        return NR_FAILURE_HANDSHAKE;    /* never set so; not worth asking again */
    if (f == NR_SSH_PROTOCOL && st == NR_SSH_STAGE_CONNECT)
        return NR_FAILURE_HANDSHAKE;
    return fail_classes[f];
}

const char *nr_ssh_fail_name(enum nr_ssh_fail f)
{
    return (unsigned)f < NR_SSH_FAIL_COUNT ? nr_failure_name(fail_classes[f]) : "unknown";
}

const char *nr_ssh_stage_name(enum nr_ssh_stage s)
{
    return (unsigned)s < NR_SSH_STAGE_COUNT ? stage_names[s] : "unknown";
}

void nr_ssh_failure(const struct nr_ssh *s, struct nr_failure *f)
{
    if (s->err == NR_SSH_OK)
        nr_failure_set(f, NR_FAILURE_NONE, NULL, "%s", "");
    else
        nr_failure_set(f, fail_class(s->err, s->stage), nr_ssh_stage_name(s->stage), "%s",
                       s->errstr);
}

/* libssh's global state, once per process. */
static pthread_once_t libssh_once = PTHREAD_ONCE_INIT;

static void libssh_init(void)
{
    ssh_init();
}

/* ---- clocks -------------------------------------------------------------- */

static uint64_t deadline_after(double seconds)
{
    if (!(seconds > 0))
        seconds = nr_config_default()->worker.connection_timeout;
    return nr_mono_ns() + (uint64_t)(seconds * 1e9);
}

/* Milliseconds until deadline, rounded up; 0 once it passed. */
static int ms_left(uint64_t deadline)
{
    uint64_t now = nr_mono_ns(), ms;

    if (now >= deadline)
        return 0;
    ms = (deadline - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Bound the next blocking libssh calls by deadline (at least 1 ms: a zero
 * timeout would mean libssh's default). */
static void set_ssh_timeout(struct nr_ssh *s, uint64_t deadline)
{
    int ms = ms_left(deadline);
    long sec, usec;

    if (ms < 1)
        ms = 1;
    sec = ms / 1000;
    usec = (long)(ms % 1000) * 1000;
    ssh_options_set(s->i->sess, SSH_OPTIONS_TIMEOUT, &sec);
    ssh_options_set(s->i->sess, SSH_OPTIONS_TIMEOUT_USEC, &usec);
}

/* The target's own timeout (its device type's), else the worker's. */
static double connect_timeout(const struct nr_ssh *s)
{
    if (s->t.connect_timeout > 0)
        return s->t.connect_timeout;
    return s->cfg && s->cfg->worker.connection_timeout > 0
               ? s->cfg->worker.connection_timeout
               : nr_config_default()->worker.connection_timeout;
}

/* ---- failures ------------------------------------------------------------ */

int nr_ssh_fail(struct nr_ssh *s, enum nr_ssh_fail f, enum nr_ssh_stage st,
                const char *fmt, ...)
{
    va_list ap;

    if (s->err == NR_SSH_OK) {
        s->err = f;
        s->stage = st;
        va_start(ap, fmt);
        vsnprintf(s->errstr, sizeof(s->errstr), fmt, ap);
        va_end(ap);
        NR_LOG(NR_EV_CONN_FAILED, s->t.job_id, s->t.device_id,
               NR_S("device_name", s->t.device_name), NR_S("host", s->t.host),
               NR_I("port", s->t.port), NR_S("class", nr_ssh_fail_name(f)),
               NR_S("stage", nr_ssh_stage_name(st)), NR_S("error", s->errstr));
    }
    return s->err == NR_SSH_TIMEOUT ? NR_ETIMEOUT : NR_ERR;
}

/* A libssh call failed at stage st: a timeout if the stage's deadline has
 * passed, else a protocol failure with libssh's message. */
static int fail_libssh(struct nr_ssh *s, enum nr_ssh_stage st, uint64_t deadline,
                       const char *what)
{
    const char *e = s->i->sess ? ssh_get_error(s->i->sess) : "";

    if (nr_mono_ns() >= deadline || nr_strcasestr(e, "timeout"))
        return nr_ssh_fail(s, NR_SSH_TIMEOUT, st, "%s: no answer within the %s timeout",
                           what, nr_ssh_stage_name(st));
    return nr_ssh_fail(s, NR_SSH_PROTOCOL, st, "%s: %s", what, e && *e ? e : "failed");
}

static bool has_pattern(const struct nr_ssh *s, const char *p, size_t n)
{
    const struct nr_strlist *pat = &s->cfg->worker.redaction_patterns;

    for (size_t i = 0; i < pat->n; i++)
        if (pat->v[i] && pat->v[i][0] && nr_memcasemem(p, n, pat->v[i], strlen(pat->v[i])))
            return true;
    return false;
}

/* Replace every occurrence of a secret in *buf by MASK (reallocating). */
static void mask_secrets(const struct nr_ssh *s, char **buf, size_t *len)
{
    for (size_t k = 0; k < s->i->nsecrets; k++) {
        const char *sec = s->i->secrets[k];
        size_t m = strlen(sec), n = *len, o = 0;
        const char *hit;
        char *out;

        if (m == 0 || !memmem(*buf, n, sec, m))
            continue;
        out = nr_malloc(n * (sizeof(MASK) - 1) + 1);   /* m >= 1: enough */
        for (size_t i = 0; i < n;) {
            hit = memmem(*buf + i, n - i, sec, m);
            if (hit == NULL) {
                memcpy(out + o, *buf + i, n - i);
                o += n - i;
                break;
            }
            memcpy(out + o, *buf + i, (size_t)(hit - (*buf + i)));
            o += (size_t)(hit - (*buf + i));
            memcpy(out + o, MASK, sizeof(MASK) - 1);
            o += sizeof(MASK) - 1;
            i = (size_t)(hit - *buf) + m;
        }
        out[o] = '\0';
        free(*buf);
        *buf = out;
        *len = o;
    }
}

/* Forward data as one session record: line-wise redaction, then secrets. */
static void emit(struct nr_ssh *s, const char *dir, const char *data, size_t n)
{
    char *red;
    size_t rlen;

    if (n == 0)
        return;
    if (nr_redact(data, n, &s->i->red, &red, &rlen, NULL) < 0)
        return;
    mask_secrets(s, &red, &rlen);
    nr_log_session(s->t.job_id, s->t.device_id, dir, red, rlen);
    free(red);
}

static void rx_append(struct nr_ssh_i *i, const char *p, size_t n)
{
    if (i->rx_len + n + 1 > i->rx_cap) {
        i->rx_cap = (i->rx_len + n + 1) * 2;
        i->rx = nr_realloc(i->rx, i->rx_cap);
    }
    memcpy(i->rx + i->rx_len, p, n);
    i->rx_len += n;
}

static void rx_consume(struct nr_ssh_i *i, size_t n)
{
    memmove(i->rx, i->rx + n, i->rx_len - n);
    i->rx_len -= n;
}

size_t nr_ssh_safe_cut(const char *buf, size_t len, const char *const *secrets, size_t nsecrets,
                       size_t keep)
{
    size_t cut;
    bool moved;

    for (size_t k = 0; k < nsecrets; k++)
        if (strlen(secrets[k]) > keep)
            keep = strlen(secrets[k]);
    if (len <= keep)
        return 0;
    cut = len - keep;
    do {            /* moving the cut for one secret may expose another */
        moved = false;
        for (size_t k = 0; k < nsecrets; k++) {
            size_t m = strlen(secrets[k]);
            size_t from = cut >= m ? cut - m + 1 : 0;
            const char *hit;

            if (m == 0 || from >= cut)
                continue;
            /* an occurrence starting in (cut - m, cut) ends past the cut */
            hit = memmem(buf + from, len - from, secrets[k], m);
            if (hit != NULL && (size_t)(hit - buf) < cut) {
                cut = (size_t)(hit - buf);
                moved = true;
            }
        }
    } while (moved && cut > 0);
    return cut;
}

/* Forward the complete lines held; with force, the unfinished one too
 * (the device is waiting for input: it is a prompt). */
static void rx_forward(struct nr_ssh *s, bool force)
{
    struct nr_ssh_i *i = s->i;
    const char *nl;

    if (i->rx_drop_rest) {
        nl = memchr(i->rx, '\n', i->rx_len);
        if (nl == NULL) {
            i->rx_len = 0;
            return;
        }
        rx_consume(i, (size_t)(nl - i->rx));
        i->rx_drop_rest = false;
    }
    nl = i->rx_len ? memrchr(i->rx, '\n', i->rx_len) : NULL;
    if (nl) {
        size_t n = (size_t)(nl - i->rx) + 1;

        emit(s, "received", i->rx, n);
        rx_consume(i, n);
    }
    if (i->rx_len == 0 || (!force && i->rx_len <= STREAM_LINE_MAX))
        return;
    if (has_pattern(s, i->rx, i->rx_len)) {
        nr_log_session(s->t.job_id, s->t.device_id, "received", NR_REDACTED_LINE,
                       sizeof(NR_REDACTED_LINE) - 1);
        i->rx_drop_rest = true;
        i->rx_len = 0;
    } else {
        size_t n = force ? i->rx_len
                         : nr_ssh_safe_cut(i->rx, i->rx_len, i->secrets, i->nsecrets, STREAM_KEEP);

        emit(s, "received", i->rx, n);
        rx_consume(i, n);
    }
}

static void stream_rx(struct nr_ssh *s, const char *p, size_t n)
{
    struct nr_ssh_i *i = s->i;

    /* The line after a typed secret is held, then forwarded masked. */
    while (n > 0 && i->echo_pending) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;

        for (size_t j = 0; j < k; j++)
            if (p[j] != '\r')
                i->echo_content = true;
        if (nl == NULL)
            return;
        if (i->echo_content)
            rx_append(i, MASK "\r\n", sizeof(MASK) + 1);
        else
            rx_append(i, "\r\n", 2);
        i->echo_pending = i->echo_content = false;
        p += k + 1;
        n -= k + 1;
    }
    rx_append(i, p, n);
    rx_forward(s, false);
}

static void stream_flush(struct nr_ssh *s)
{
    struct nr_ssh_i *i = s->i;

    if (!i->stream)
        return;
    if (i->echo_pending && i->echo_content)
        rx_append(i, MASK, sizeof(MASK) - 1);
    i->echo_pending = i->echo_content = false;
    rx_forward(s, true);
}

static void stream_tx(struct nr_ssh *s, const char *p, size_t n, unsigned flags)
{
    struct nr_ssh_i *i = s->i;

    if (!i->stream)
        return;
    stream_flush(s);
    if (flags & NR_SSH_SECRET) {
        bool nl = n > 0 && p[n - 1] == '\n';

        nr_log_session(s->t.job_id, s->t.device_id, "sent", nl ? MASK "\n" : MASK,
                       sizeof(MASK) - 1 + (nl ? 1 : 0));
        i->echo_pending = true;
        i->echo_content = false;
        return;
    }
    emit(s, "sent", p, n);
}

/* ---- connect ------------------------------------------------------------- */

static enum nr_ssh_fail errno_class(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return NR_SSH_REFUSED;
    case ETIMEDOUT:
        return NR_SSH_TIMEOUT;
    default:
        return NR_SSH_UNREACHABLE;
    }
}

/* Wait for a non-blocking connect; 0 connected, else an errno
 * (ETIMEDOUT at the deadline). */
static int connect_wait(int fd, uint64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = POLLOUT };
    socklen_t len = sizeof(int);
    int rc, err = 0;

    for (;;) {
        rc = poll(&pfd, 1, ms_left(deadline));
        if (rc > 0)
            break;
        if (rc == 0)
            return ETIMEDOUT;
        if (errno != EINTR)
            return errno;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}

static int tcp_connect(struct nr_ssh *s, uint64_t deadline)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    int rc, last = EHOSTUNREACH;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", s->t.port);
    rc = getaddrinfo(s->t.host, port, &hints, &res);
    if (rc != 0)
        return nr_ssh_fail(s, NR_SSH_UNREACHABLE, NR_SSH_STAGE_CONNECT,
                           "cannot resolve %s: %s", s->t.host, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;

        if (fd < 0) {
            last = errno;
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            last = 0;
        else
            last = errno == EINPROGRESS ? connect_wait(fd, deadline) : errno;
        if (last == 0) {
            s->i->fd = fd;
            s->i->tcp_up = true;
            break;
        }
        close(fd);
        if (last == ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    if (last == 0)
        return 0;
    if (last == ETIMEDOUT)
        return nr_ssh_fail(s, NR_SSH_TIMEOUT, NR_SSH_STAGE_CONNECT,
                           "TCP connect to %s:%d timed out after %.3gs", s->t.host, s->t.port,
                           connect_timeout(s));
    return nr_ssh_fail(s, errno_class(last), NR_SSH_STAGE_CONNECT, "TCP connect to %s:%d: %s",
                       s->t.host, s->t.port, strerror(last));
}

/*
 * The folder libssh names its per-user files after.  Left unset, libssh
 * looks the user's home up (getpwuid: /etc/passwd, or a directory service
 * where NSS has one) on every connect, only to name ~/.ssh, which no
 * session reads: no ssh_config, no identity files, known_hosts our own
 * (in this folder unless ssh.known_hosts names another file).
 */
static const char *ssh_dir(const struct nr_config *cfg)
{
    return cfg->worker.spool_dir && cfg->worker.spool_dir[0] ? cfg->worker.spool_dir : ".";
}

static char *known_hosts_path(const struct nr_config *cfg)
{
    if (cfg->ssh.known_hosts && cfg->ssh.known_hosts[0])
        return nr_strdup(cfg->ssh.known_hosts);
    return nr_asprintf("%s/known_hosts", ssh_dir(cfg));
}

/* Appends the name of len bytes to the comma list of used bytes. */
static size_t list_add(char *list, size_t used, const char *name, size_t len)
{
    if (used)
        list[used++] = ',';
    memcpy(list + used, name, len);
    used += len;
    list[used] = '\0';
    return used;
}

/*
 * The host key algorithms to offer: those of the keys known for the device
 * first (as libssh orders them when it reads known_hosts itself), then the
 * rest of the list.  libssh is given /dev/null as its known_hosts, so that
 * no session reads the file; the keys come from the table (knownhosts.h).
 */
static char *host_key_algorithms(struct nr_ssh *s, struct nr_known_hosts *kh)
{
    const char *all = s->cfg->ssh.allow_legacy_kex ? BASE_HOSTKEYS ",ssh-rsa" : BASE_HOSTKEYS;
    char types[256], *out = nr_malloc(strlen(all) + 2), *p, *save = NULL;
    size_t used = 0;

    out[0] = '\0';
    if (kh && nr_known_hosts_types(kh, s->t.host, s->t.port, types, sizeof(types)) > 0) {
        /* a known type, then every algorithm of all that signs with it */
        for (p = strtok_r(types, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            bool rsa = strcmp(p, "ssh-rsa") == 0;
            const char *a = all;

            while (*a) {
                size_t len = strcspn(a, ",");
                bool take = rsa ? (len >= 7 && (strncmp(a, "rsa-sha2-", 9) == 0 ||
                                                (len == 7 && strncmp(a, "ssh-rsa", 7) == 0)))
                                : (strlen(p) == len && strncmp(a, p, len) == 0);

                if (take && !nr_list_has(out, a, len))
                    used = list_add(out, used, a, len);
                a += len + (a[len] == ',');
            }
        }
    }
    for (const char *a = all; *a;) {
        size_t len = strcspn(a, ",");

        if (!nr_list_has(out, a, len))
            used = list_add(out, used, a, len);
        a += len + (a[len] == ',');
    }
    return out;
}

static int set_options(struct nr_ssh *s, struct nr_known_hosts *kh)
{
    const struct nr_config *cfg = s->cfg;
    ssh_session ss = s->i->sess;
    int verbosity = SSH_LOG_NOLOG, fd = s->i->fd, rc = 0;
    bool no = false;
    unsigned port = (unsigned)s->t.port;
    char *hostkeys;

    if (ssh_options_set(ss, SSH_OPTIONS_HOST, s->t.host) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_FD, &fd) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_LOG_VERBOSITY, &verbosity) < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(ss, SSH_OPTIONS_SSH_DIR, ssh_dir(cfg)) < 0 ||
        (s->t.username && ssh_options_set(ss, SSH_OPTIONS_USER, s->t.username) < 0))
        return nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT, "SSH options: %s",
                           ssh_get_error(ss));
    hostkeys = host_key_algorithms(s, kh);
    if (ssh_options_set(ss, SSH_OPTIONS_HOSTKEYS, hostkeys) < 0)
        rc = nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT, "SSH host key algorithms: %s",
                         ssh_get_error(ss));
    free(hostkeys);
    if (rc == 0 && cfg->ssh.allow_legacy_kex) {
        char *kex = nr_asprintf("%s%s%s", BASE_KEX, cfg->ssh.legacy_kex && *cfg->ssh.legacy_kex
                                                        ? "," : "",
                                cfg->ssh.legacy_kex ? cfg->ssh.legacy_kex : "");
        char *macs = nr_asprintf("%s%s%s", BASE_MACS,
                                 cfg->ssh.legacy_macs && *cfg->ssh.legacy_macs ? "," : "",
                                 cfg->ssh.legacy_macs ? cfg->ssh.legacy_macs : "");

        /* Old devices that speak SHA-1 key exchange also sign with ssh-rsa
         * (in the host key list above). */
        if (ssh_options_set(ss, SSH_OPTIONS_KEY_EXCHANGE, kex) < 0 ||
            ssh_options_set(ss, SSH_OPTIONS_HMAC_C_S, macs) < 0 ||
            ssh_options_set(ss, SSH_OPTIONS_HMAC_S_C, macs) < 0)
            rc = nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT,
                             "legacy algorithms (ssh.legacy_kex / ssh.legacy_macs): %s",
                             ssh_get_error(ss));
        free(kex);
        free(macs);
    }
    return rc;
}

/* The negotiated algorithms and the fingerprint of key, the server's. */
static void describe(struct nr_ssh *s, ssh_key key)
{
    ssh_session ss = s->i->sess;
    const char *kex = ssh_get_kex_algo(ss);
    const char *cin = ssh_get_cipher_in(ss), *cout = ssh_get_cipher_out(ss);
    const char *hin = ssh_get_hmac_in(ss), *hout = ssh_get_hmac_out(ss);
    unsigned char *hash = NULL;
    size_t hlen = 0;

    snprintf(s->kex, sizeof(s->kex), "%s", kex ? kex : "?");
    if (cin && cout && strcmp(cin, cout) != 0)
        snprintf(s->cipher, sizeof(s->cipher), "%s/%s", cin, cout);
    else
        snprintf(s->cipher, sizeof(s->cipher), "%s", cin ? cin : "?");
    if (hin && hout && strcmp(hin, hout) != 0)
        snprintf(s->hmac, sizeof(s->hmac), "%s/%s", hin, hout);
    else
        snprintf(s->hmac, sizeof(s->hmac), "%s", hin ? hin : "?");
    snprintf(s->fingerprint, sizeof(s->fingerprint), "?");
    if (key && ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) == 0) {
        char *fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);

        if (fp)
            snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", fp);
        ssh_string_free_char(fp);
        ssh_clean_pubkey_hash(&hash);
    }
}

static int check_host_key(struct nr_ssh *s, ssh_key key, struct nr_known_hosts *kh,
                          const char *known_hosts)
{
    enum nr_host_key_policy policy = s->cfg->ssh.host_key_policy;
    enum nr_kh_state state;
    bool stored = false;
    char err[NR_SSH_ERRLEN] = "";
    char *b64 = NULL;
    const char *type;

    if (policy == NR_HOSTKEY_OFF)
        return 0;
    if (key == NULL || (type = ssh_key_type_to_char(ssh_key_type(key))) == NULL ||
        ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
        return nr_ssh_fail(s, NR_SSH_HOSTKEY, NR_SSH_STAGE_CONNECT,
                           "cannot check the host key of %s:%d against %s: %s", s->t.host,
                           s->t.port, known_hosts, "the server's key cannot be read");
    state = nr_known_hosts_check(kh, s->t.host, s->t.port, type, b64,
                                 policy == NR_HOSTKEY_ACCEPT_NEW, &stored, err, sizeof(err));
    ssh_string_free_char(b64);

    switch (state) {
    case NR_KH_OK:
        return 0;
    case NR_KH_CHANGED:
    case NR_KH_OTHER:
        return nr_ssh_fail(s, NR_SSH_HOSTKEY, NR_SSH_STAGE_CONNECT,
                           "host key of %s:%d changed (now %s; %s holds another%s); if the "
                           "device was replaced, remove its line from that file",
                           s->t.host, s->t.port, s->fingerprint, known_hosts,
                           state == NR_KH_OTHER ? " of another type" : "");
    case NR_KH_UNKNOWN:
    default:
        if (policy == NR_HOSTKEY_STRICT)
            return nr_ssh_fail(s, NR_SSH_HOSTKEY, NR_SSH_STAGE_CONNECT,
                               "host key of %s:%d (%s) is not in %s and ssh.host_key_policy "
                               "is strict", s->t.host, s->t.port, s->fingerprint, known_hosts);
        if (stored)
            NR_LOG(NR_EV_CONN_HOST_KEY_LEARNED, s->t.job_id, s->t.device_id,
                   NR_S("device_name", s->t.device_name), NR_S("host", s->t.host),
                   NR_I("port", s->t.port), NR_S("known_hosts", known_hosts),
                   NR_S("fingerprint", s->fingerprint));
        else
            NR_LOG(NR_EV_CONN_HOST_KEY_NOT_STORED, s->t.job_id, s->t.device_id,
                   NR_S("device_name", s->t.device_name), NR_S("host", s->t.host),
                   NR_I("port", s->t.port), NR_S("known_hosts", known_hosts),
                   NR_S("error", err));
        return 0;
    }
}

/* Segments with data the peer has sent on fd (TCP_INFO; its FIN alone
 * carries none), or -1 when the kernel does not say (before Linux 4.6). */
static long long tcp_data_segs_in(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof(ti.tcpi_data_segs_in))
        return -1;
    return (long long)ti.tcpi_data_segs_in;
}

/*
 * ssh_connect() failed: say why, in the class the dispatcher acts on.
 * libssh reports "disconnected" alike for a peer that closed at once and
 * for one that sent something else than an SSH version (an HTTP reply,
 * noise, a line too long for a banner) and then closed.  The first is
 * `refused` (retried, and the breaker counts it as nothing listening);
 * the second answered, and not in SSH: `protocol`, which asking again does
 * not change.  watch is a descriptor of the same socket, kept by us, whose
 * TCP_INFO tells the two apart.
 */
static int handshake_failed(struct nr_ssh *s, uint64_t deadline, int watch)
{
    ssh_session ss = s->i->sess;
    long long got;

    if (nr_mono_ns() >= deadline || nr_strcasestr(ssh_get_error(ss), "timeout"))
        return nr_ssh_fail(s, NR_SSH_TIMEOUT, NR_SSH_STAGE_CONNECT,
                           "SSH handshake with %s:%d: no answer within %.3gs",
                           s->t.host, s->t.port, connect_timeout(s));
    if (ssh_get_serverbanner(ss) != NULL)
        return nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT,
                           "SSH handshake with %s:%d: %s", s->t.host, s->t.port,
                           ssh_get_error(ss));
    got = tcp_data_segs_in(watch);
    if (got > 0)
        return nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT,
                           "%s:%d is not an SSH server: it sent something else than an SSH "
                           "version line (%s)", s->t.host, s->t.port, ssh_get_error(ss));
    return nr_ssh_fail(s, NR_SSH_REFUSED, NR_SSH_STAGE_CONNECT,
                       "%s:%d closed the connection before the SSH banner (%s)",
                       s->t.host, s->t.port, ssh_get_error(ss));
}

static int ssh_handshake(struct nr_ssh *s, uint64_t deadline)
{
    struct nr_ssh_i *i = s->i;
    char *known_hosts = known_hosts_path(s->cfg);
    struct nr_known_hosts *kh = s->cfg->ssh.host_key_policy == NR_HOSTKEY_OFF
                                    ? NULL : nr_known_hosts_open(known_hosts);
    int rc;

    i->sess = ssh_new();
    if (i->sess == NULL) {
        free(known_hosts);
        return nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT, "cannot create a session");
    }
    rc = set_options(s, kh);
    if (rc == 0) {
        /* a descriptor of our own on the socket, for handshake_failed() */
        int watch = fcntl(i->fd, F_DUPFD_CLOEXEC, 0);

        set_ssh_timeout(s, deadline);
        i->fd_given = true;     /* libssh closes it from now on */
        if (ssh_connect(i->sess) != SSH_OK)
            rc = handshake_failed(s, deadline, watch);
        if (watch >= 0)
            close(watch);
    }
    if (rc == 0) {
        ssh_key key = NULL;

        if (ssh_get_server_publickey(i->sess, &key) != SSH_OK)
            key = NULL;
        describe(s, key);
        rc = check_host_key(s, key, kh, known_hosts);
        ssh_key_free(key);
    }
    if (rc == 0)
        NR_LOG(NR_EV_CONN_CONNECTED, s->t.job_id, s->t.device_id,
               NR_S("device_name", s->t.device_name), NR_S("host", s->t.host),
               NR_I("port", s->t.port), NR_S("kex", s->kex), NR_S("cipher", s->cipher),
               NR_S("hmac", s->hmac), NR_S("fingerprint", s->fingerprint),
               NR_S("server", ssh_get_serverbanner(i->sess)));
    free(known_hosts);
    return rc;
}

/* ---- authentication ------------------------------------------------------ */

static void log_authenticating(struct nr_ssh *s, const char *method)
{
    NR_LOG(NR_EV_CONN_AUTHENTICATING, s->t.job_id, s->t.device_id,
           NR_S("device_name", s->t.device_name), NR_S("username", s->t.username),
           NR_I("credential_id", s->t.credential_id), NR_S("method", method));
}

/* Keyboard-interactive: prompts that echo and do not mention a password
 * get the username, every other prompt the password. */
static int auth_kbdint(struct nr_ssh *s)
{
    ssh_session ss = s->i->sess;
    const char *pw = s->t.password ? s->t.password : "";
    int rc = ssh_userauth_kbdint(ss, NULL, NULL);

    for (int round = 0; rc == SSH_AUTH_INFO && round < KBDINT_ROUNDS; round++) {
        int n = ssh_userauth_kbdint_getnprompts(ss);

        for (int k = 0; k < n; k++) {
            char echo = 0;
            const char *prompt = ssh_userauth_kbdint_getprompt(ss, (unsigned)k, &echo);
            const char *answer = pw;

            if (echo && prompt && !nr_strcasestr(prompt, "pass") && s->t.username)
                answer = s->t.username;
            if (ssh_userauth_kbdint_setanswer(ss, (unsigned)k, answer) < 0)
                return SSH_AUTH_ERROR;
        }
        rc = ssh_userauth_kbdint(ss, NULL, NULL);
    }
    return rc == SSH_AUTH_INFO ? SSH_AUTH_DENIED : rc;
}

static int authenticate(struct nr_ssh *s, uint64_t deadline)
{
    ssh_session ss = s->i->sess;
    const char *method = "none";
    char *banner;
    int rc, methods;

    set_ssh_timeout(s, deadline);
    rc = ssh_userauth_none(ss, NULL);
    banner = ssh_get_issue_banner(ss);
    if (banner) {
        if (s->i->stream)
            emit(s, "received", banner, strlen(banner));
        ssh_string_free_char(banner);
    }
    if (rc == SSH_AUTH_ERROR || rc == SSH_AUTH_AGAIN)
        return fail_libssh(s, NR_SSH_STAGE_AUTH, deadline, "authentication");
    if (rc != SSH_AUTH_SUCCESS) {
        methods = ssh_userauth_list(ss, NULL);
        rc = SSH_AUTH_DENIED;
        if (methods & SSH_AUTH_METHOD_PASSWORD) {
            method = "password";
            log_authenticating(s, method);
            set_ssh_timeout(s, deadline);
            rc = ssh_userauth_password(ss, NULL, s->t.password ? s->t.password : "");
        }
        /* As Netmiko (paramiko) does: keyboard-interactive only where the
         * device does not take passwords, so that one wrong password is one
         * failed login in the device's lockout count, not two. */
        if (!(methods & SSH_AUTH_METHOD_PASSWORD) && (methods & SSH_AUTH_METHOD_INTERACTIVE)) {
            method = "keyboard-interactive";
            log_authenticating(s, method);
            set_ssh_timeout(s, deadline);
            rc = auth_kbdint(s);
        }
        if (rc == SSH_AUTH_ERROR || rc == SSH_AUTH_AGAIN)
            return fail_libssh(s, NR_SSH_STAGE_AUTH, deadline, "authentication");
        if (rc != SSH_AUTH_SUCCESS) {
            const char *why = !(methods & (SSH_AUTH_METHOD_PASSWORD |
                                           SSH_AUTH_METHOD_INTERACTIVE))
                                  ? "the device offers neither password nor "
                                    "keyboard-interactive login"
                              : rc == SSH_AUTH_PARTIAL ? "the device wants a further method"
                                                       : "credentials refused";

            NR_LOG(NR_EV_CONN_AUTH_FAILED, s->t.job_id, s->t.device_id,
                   NR_S("device_name", s->t.device_name), NR_S("username", s->t.username),
                   NR_I("credential_id", s->t.credential_id), NR_S("method", method),
                   NR_S("error", why));
            return nr_ssh_fail(s, NR_SSH_AUTH, NR_SSH_STAGE_AUTH, "%s as %s (%s)", why,
                               s->t.username ? s->t.username : "?", method);
        }
    }
    s->auth_method = method;
    NR_LOG(NR_EV_CONN_AUTHENTICATED, s->t.job_id, s->t.device_id,
           NR_S("device_name", s->t.device_name), NR_S("username", s->t.username),
           NR_I("credential_id", s->t.credential_id), NR_S("method", method));
    return 0;
}

static int open_shell(struct nr_ssh *s, uint64_t deadline)
{
    struct nr_ssh_i *i = s->i;

    set_ssh_timeout(s, deadline);
    i->chan = ssh_channel_new(i->sess);
    if (i->chan == NULL)
        return fail_libssh(s, NR_SSH_STAGE_SHELL, deadline, "channel");
    if (ssh_channel_open_session(i->chan) != SSH_OK)
        return fail_libssh(s, NR_SSH_STAGE_SHELL, deadline, "opening a session channel");
    if (ssh_channel_request_pty_size(i->chan, "vt100", PTY_COLS, PTY_ROWS) != SSH_OK)
        return fail_libssh(s, NR_SSH_STAGE_SHELL, deadline, "requesting a PTY");
    if (ssh_channel_request_shell(i->chan) != SSH_OK)
        return fail_libssh(s, NR_SSH_STAGE_SHELL, deadline, "requesting a shell");
    return 0;
}

struct nr_ssh *nr_ssh_connect(const struct nr_config *cfg, const struct nr_ssh_target *t)
{
    struct nr_ssh *s = nr_calloc(1, sizeof(*s));
    double tmo;

    nr_metrics_add(NR_M_SESSIONS_IN_FLIGHT, 1);     /* nr_ssh_free takes it back */
    s->cfg = cfg;
    s->t = *t;
    tmo = connect_timeout(s);
    if (s->t.host == NULL)
        s->t.host = "";
    if (s->t.device_name == NULL || s->t.device_name[0] == '\0')
        s->t.device_name = s->t.host;
    if (s->t.port == 0)
        s->t.port = 22;
    s->i = nr_calloc(1, sizeof(*s->i));
    s->i->fd = -1;
    s->i->stream = nr_log_enabled(NR_EV_SESSION_DATA);
    nr_redaction_init(&s->i->red, cfg);
    nr_ssh_add_secret(s, t->password);
    pthread_once(&libssh_once, libssh_init);

    NR_LOG(NR_EV_CONN_CONNECTING, s->t.job_id, s->t.device_id,
           NR_S("device_name", s->t.device_name), NR_S("host", s->t.host),
           NR_I("port", s->t.port));
    s->stage = NR_SSH_STAGE_CONNECT;
    /* Past 65535 getaddrinfo() wraps the port (101599 -> 36063) and the
     * credentials would go there: refuse before any socket exists. */
    if (s->t.port < 0 || s->t.port > 65535) {
        nr_ssh_fail(s, NR_SSH_PROTOCOL, NR_SSH_STAGE_CONNECT,
                    "port %d of %s is outside 1-65535; nothing was connected", s->t.port,
                    s->t.host);
        return s;
    }
    if (tcp_connect(s, deadline_after(tmo)) < 0)
        return s;
    if (ssh_handshake(s, deadline_after(tmo)) < 0)
        return s;
    s->stage = NR_SSH_STAGE_AUTH;
    if (authenticate(s, deadline_after(tmo)) < 0)
        return s;
    s->stage = NR_SSH_STAGE_SHELL;
    if (open_shell(s, deadline_after(tmo)) < 0)
        return s;
    /* Writes (and the close) wait for the window at most this long. */
    set_ssh_timeout(s, deadline_after(tmo));
    return s;
}

void nr_ssh_add_secret(struct nr_ssh *s, const char *secret)
{
    if (secret == NULL || secret[0] == '\0' || s->i->nsecrets == MAX_SECRETS)
        return;
    for (size_t k = 0; k < s->i->nsecrets; k++)
        if (strcmp(s->i->secrets[k], secret) == 0)
            return;
    s->i->secrets[s->i->nsecrets++] = secret;
}

/* ---- I/O ----------------------------------------------------------------- */

int nr_ssh_send(struct nr_ssh *s, const void *data, size_t len, unsigned flags)
{
    const char *p = data;

    if (s->err || s->i->chan == NULL)
        return NR_EIO;
    stream_tx(s, p, len, flags);
    while (len > 0) {
        uint32_t n = len > 32768 ? 32768 : (uint32_t)len;
        int rc = ssh_channel_write(s->i->chan, p, n);

        if (rc == SSH_ERROR || rc < 0) {
            nr_ssh_fail(s, NR_SSH_PROTOCOL, s->stage, "sending to the device: %s",
                        ssh_get_error(s->i->sess));
            return NR_EIO;
        }
        p += rc;
        len -= (size_t)rc;
        s->bytes_out += (uint64_t)rc;
    }
    return 0;
}

int nr_ssh_recv(struct nr_ssh *s, char *buf, size_t cap, uint64_t deadline_ns, size_t *got)
{
    ssh_channel ch = s->i->chan;

    if (s->err || ch == NULL)
        return NR_EIO;
    if (cap > 65536)
        cap = 65536;
    for (;;) {
        int ms = ms_left(deadline_ns);
        int n = ssh_channel_read_timeout(ch, buf, (uint32_t)cap, 0, ms);

        if (n > 0) {
            s->bytes_in += (uint64_t)n;
            if (s->i->stream)
                stream_rx(s, buf, (size_t)n);
            *got = (size_t)n;
            return 0;
        }
        if (n < 0 || !ssh_is_connected(s->i->sess)) {
            const char *e = ssh_get_error(s->i->sess);

            nr_ssh_fail(s, NR_SSH_PROTOCOL, s->stage, "connection lost: %s",
                        e && *e ? e : "disconnected");
            return NR_EIO;
        }
        if (ssh_channel_is_eof(ch) || !ssh_channel_is_open(ch)) {
            nr_ssh_fail(s, NR_SSH_PROTOCOL, s->stage, "the device closed the session");
            return NR_EIO;
        }
        if (ms == 0 || nr_mono_ns() >= deadline_ns)
            return NR_ETIMEOUT;
    }
}

bool nr_ssh_pending(struct nr_ssh *s)
{
    if (s->err || s->i->chan == NULL)
        return false;
    return ssh_channel_poll_timeout(s->i->chan, 0, 0) > 0;
}

/* ---- the end ------------------------------------------------------------- */

void nr_ssh_free(struct nr_ssh *s)
{
    struct nr_ssh_i *i;

    if (s == NULL)
        return;
    nr_metrics_add(NR_M_SESSIONS_IN_FLIGHT, -1);
    i = s->i;
    stream_flush(s);
    if (i->sess) {
        if (i->fd_given) {
            /* Unset the option so that ssh_disconnect() closes the socket it
             * owns (it leaves a socket given by SSH_OPTIONS_FD open); this
             * call reports "invalid argument" by design. */
            ssh_options_set(i->sess, SSH_OPTIONS_FD, NULL);
            ssh_disconnect(i->sess);        /* also frees the channel */
        } else if (i->fd >= 0) {
            close(i->fd);
        }
        ssh_free(i->sess);
    } else if (i->fd >= 0) {
        close(i->fd);
    }
    if (i->tcp_up) {
        char reason[NR_SSH_ERRLEN + 64];

        if (s->err)
            snprintf(reason, sizeof(reason), "%s failure at the %s stage",
                     nr_ssh_fail_name(s->err), nr_ssh_stage_name(s->stage));
        else
            snprintf(reason, sizeof(reason), "session complete");
        NR_LOG(NR_EV_CONN_DISCONNECTED, s->t.job_id, s->t.device_id,
               NR_S("device_name", s->t.device_name), NR_S("reason", reason),
               NR_I("bytes_in", s->bytes_in), NR_I("bytes_out", s->bytes_out));
    }
    free(i->rx);
    free(i);
    free(s);
}
