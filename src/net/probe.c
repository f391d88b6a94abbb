/*
 * probe.c - reachability probes: ICMP echo and TCP connect on non-blocking
 * sockets, all of one call waited for together with ppoll() in the calling
 * thread.
 *
 * DESIGN
 *   nr_probe_run() resolves the address once, opens one socket per probe,
 *   starts them all (connect() / first echo request), then loops on ppoll()
 *   until every probe has an outcome or the deadline passes.  No thread, no
 *   child process, no lock: the only process-wide state is an atomic counter
 *   that makes ICMP identifiers and payload cookies unique, so any number of
 *   threads may probe at once without serialising on anything but the
 *   kernel.
 *
 *   ICMP, in order of preference:
 *     1. a "ping socket", socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)
 *        (IPPROTO_ICMPV6 for v6), allowed when net.ipv4.ping_group_range
 *        covers our group.  The kernel picks the echo identifier, computes
 *        the checksum and hands us only replies to that identifier.
 *     2. a raw socket (root / CAP_NET_RAW).  Every raw ICMP socket of the
 *        host sees every ICMP packet, so we narrow what reaches ours in the
 *        kernel - connect() to the target (only its packets) and ICMP_FILTER
 *        (only echo replies and errors) - and then match identifier,
 *        sequence number and a 64-bit cookie in the payload ourselves.
 *     3. neither: status NR_PROBE_UNAVAILABLE, and the detail says what
 *        would make it work.
 *   An echo request is repeated every NR_ICMP_INTERVAL_S (up to
 *   NR_ICMP_MAX_ECHO of them) so that one lost packet does not make a live
 *   device look dead; the latency is that of the request that was answered.
 *
 *   TCP: a non-blocking connect(); the outcome is read with SO_ERROR once
 *   the socket polls writable (or in error).  A connected socket is closed
 *   with an abortive close (SO_LINGER 0: RST instead of FIN) so that
 *   probing thousands of devices leaves no TIME_WAIT sockets behind.
 */
#include "netraven/probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ICMP_FILTER of <linux/icmp.h>, which cannot be included together with
 * <netinet/ip_icmp.h> (both define struct icmphdr). */
#define NR_SOL_RAW_ICMP_FILTER 1
struct nr_icmp_filter {
    uint32_t data;              /* bit t set: drop ICMP type t */
};

#define NR_ICMP_INTERVAL_S  1.0
#define NR_ICMP_MAX_ECHO    8
#define NR_ICMP_PAYLOAD     32      /* bytes after the 8-byte header */
#define NR_ICMP_RECV_BURST  32      /* datagrams read per wakeup, at most */

/* The one piece of process-wide state: makes identifiers and cookies
 * unique across the threads of this process. */
static atomic_uint_fast64_t probe_counter;

enum icmp_mode { ICMP_NONE = 0, ICMP_DGRAM, ICMP_RAW };

/* One probe under way. */
struct probe {
    struct nr_probe_result *res;
    int             fd;             /* -1 once done */
    uint64_t        started_ns;     /* TCP: connect(); ICMP: first request */
    /* ICMP only */
    enum icmp_mode  mode;
    uint16_t        ident;          /* raw: ours; dgram: the kernel's */
    uint16_t        seq0;           /* sequence number of the first request */
    unsigned        nsent;
    uint64_t        sent_ns[NR_ICMP_MAX_ECHO];
    uint64_t        cookie;
};

/* The target, resolved once. */
struct target {
    struct sockaddr_storage ss;
    socklen_t               len;
    int                     family;
};

const char *nr_probe_status_name(enum nr_probe_status s)
{
    switch (s) {
    case NR_PROBE_OK:          return "ok";
    case NR_PROBE_REFUSED:     return "refused";
    case NR_PROBE_TIMEOUT:     return "timeout";
    case NR_PROBE_UNREACHABLE: return "unreachable";
    case NR_PROBE_ERROR:       return "error";
    case NR_PROBE_UNAVAILABLE: return "unavailable";
    }
    return "unknown";
}

/* ------------------------------------------------------------------ */
/* small helpers */

static void set_detail(struct nr_probe_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_detail(struct nr_probe_result *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

static void finish(struct probe *p, enum nr_probe_status st, uint64_t now_ns)
{
    p->res->status = st;
    if (st == NR_PROBE_OK)
        p->res->latency_ms = (double)(now_ns - p->started_ns) / 1e6;
    if (p->fd >= 0) {
        close(p->fd);
        p->fd = -1;
    }
}

/* Map a socket errno to a status and a detail; used for connect(),
 * SO_ERROR, send() and recv() failures. */
static void finish_errno(struct probe *p, int err, const char *what)
{
    char buf[96];
    const char *msg = strerror_r(err, buf, sizeof(buf));   /* GNU variant */
    enum nr_probe_status st;

    switch (err) {
    case ECONNREFUSED:
        st = NR_PROBE_REFUSED;
        msg = "connection refused";
        break;
    case ETIMEDOUT:
        st = NR_PROBE_TIMEOUT;
        break;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENONET:
    case EACCES:            /* a "prohibit" route or a local firewall */
    case EPERM:
        st = NR_PROBE_UNREACHABLE;
        break;
    default:
        st = NR_PROBE_ERROR;
        break;
    }
    if (what != NULL && st == NR_PROBE_ERROR)
        set_detail(p->res, "%s: %s", what, msg);
    else
        set_detail(p->res, "%s", msg);
    finish(p, st, 0);
}

/* RFC 1071 Internet checksum. */
static uint16_t inet_cksum(const void *data, size_t len)
{
    const uint8_t *b = data;
    uint32_t sum = 0;

    for (; len > 1; b += 2, len -= 2)
        sum += (uint32_t)b[0] << 8 | b[1];
    if (len)
        sum += (uint32_t)b[0] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

static uint64_t next_unique(void)
{
    /* splitmix64 of (counter, pid): distinct per call in this process,
     * and unlikely to collide with another process's cookies. */
    uint64_t z = atomic_fetch_add_explicit(&probe_counter, 1, memory_order_relaxed);
    z += (uint64_t)getpid() << 32;
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------ */
/* resolution */

/* ::ffff:a.b.c.d is probed as a.b.c.d: ICMPv6 cannot reach it. */
static void unmap_v4(struct target *t)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&t->ss;

    if (t->family != AF_INET6)
        return;
    memcpy(&s6, &t->ss, sizeof(s6));
    if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
        return;
    memset(&t->ss, 0, sizeof(t->ss));
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
    t->len = sizeof(*s4);
    t->family = AF_INET;
}

static int resolve(const char *host, struct target *t, char *err, size_t errlen)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&t->ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->ss;
    struct addrinfo hints, *ai = NULL;
    int rc;

    memset(t, 0, sizeof(*t));
    if (host == NULL || host[0] == '\0') {
        snprintf(err, errlen, "no address");
        return -1;
    }
    /* The common case, a literal, without getaddrinfo's allocations. */
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        t->len = sizeof(*s4);
        t->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        t->len = sizeof(*s6);
        t->family = AF_INET6;
        unmap_v4(t);
        return 0;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST;        /* "fe80::1%eth0", "127.1" */
    rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc == EAI_NONAME) {
        hints.ai_flags = AI_ADDRCONFIG;
        rc = getaddrinfo(host, NULL, &hints, &ai);
    }
    if (rc != 0) {
        char ebuf[96];
        snprintf(err, errlen, "cannot resolve '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror_r(errno, ebuf, sizeof(ebuf))
                                  : gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            a->ai_addrlen <= sizeof(t->ss)) {
            memcpy(&t->ss, a->ai_addr, a->ai_addrlen);
            t->len = a->ai_addrlen;
            t->family = a->ai_family;
            break;
        }
    }
    freeaddrinfo(ai);
    unmap_v4(t);
    if (t->family == 0) {
        snprintf(err, errlen, "cannot resolve '%s': no IPv4 or IPv6 address", host);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* TCP */

static void tcp_start(struct probe *p, const struct target *t)
{
    struct sockaddr_storage ss = t->ss;
    int fd;

    if (p->res->port <= 0 || p->res->port > 65535) {
        set_detail(p->res, "bad port %d", p->res->port);
        finish(p, NR_PROBE_ERROR, 0);
        return;
    }
    if (t->family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)p->res->port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)p->res->port);

    fd = socket(t->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        finish_errno(p, errno, "socket");
        return;
    }
    p->fd = fd;
    p->started_ns = nr_mono_ns();
    if (connect(fd, (struct sockaddr *)&ss, t->len) == 0) {
        set_detail(p->res, "connected");
        finish(p, NR_PROBE_OK, nr_mono_ns());
        return;
    }
    if (errno != EINPROGRESS)
        finish_errno(p, errno, "connect");
}

static void tcp_event(struct probe *p, short revents, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
        return;
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        finish_errno(p, err, "connect");
        return;
    }
    /* Abortive close: RST, no TIME_WAIT left on our side. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    (void)setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    set_detail(p->res, "connected");
    finish(p, NR_PROBE_OK, now);
}

/* ------------------------------------------------------------------ */
/* ICMP */

static const char *icmp4_unreach_text(int type, int code)
{
    if (type == ICMP_TIME_EXCEEDED)
        return "time to live exceeded";
    switch (code) {
    case ICMP_NET_UNREACH:   return "destination net unreachable";
    case ICMP_HOST_UNREACH:  return "destination host unreachable";
    case ICMP_PROT_UNREACH:  return "destination protocol unreachable";
    case ICMP_PORT_UNREACH:  return "destination port unreachable";
    case ICMP_NET_ANO:
    case ICMP_HOST_ANO:
    case ICMP_PKT_FILTERED:  return "communication administratively prohibited";
    default:                 return "destination unreachable";
    }
}

static const char *icmp6_unreach_text(int type, int code)
{
    if (type == ICMP6_TIME_EXCEEDED)
        return "hop limit exceeded";
    switch (code) {
    case ICMP6_DST_UNREACH_NOROUTE: return "no route to destination";
    case ICMP6_DST_UNREACH_ADMIN:   return "communication administratively prohibited";
    case ICMP6_DST_UNREACH_ADDR:    return "destination address unreachable";
    case ICMP6_DST_UNREACH_NOPORT:  return "destination port unreachable";
    default:                        return "destination unreachable";
    }
}

/* Open the ICMP socket: ping socket, else raw, else UNAVAILABLE.
 * Returns the fd, or -1 with the probe finished. */
static int icmp_open(struct probe *p, int family)
{
    int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    int flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    int fd, err;

    fd = socket(family, SOCK_DGRAM | flags, proto);
    if (fd >= 0) {
        p->mode = ICMP_DGRAM;
        return fd;
    }
    err = errno;
    if (err != EACCES && err != EPERM && err != EPROTONOSUPPORT &&
        err != ESOCKTNOSUPPORT && err != EPROTOTYPE) {
        finish_errno(p, err, "icmp socket");
        return -1;
    }
    fd = socket(family, SOCK_RAW | flags, proto);
    if (fd >= 0) {
        p->mode = ICMP_RAW;
        return fd;
    }
    err = errno;
    if (err == EACCES || err == EPERM) {
        set_detail(p->res, "ICMP needs CAP_NET_RAW or net.ipv4.ping_group_range"
                           " covering the worker's group");
        finish(p, NR_PROBE_UNAVAILABLE, 0);
    } else {
        finish_errno(p, err, "icmp raw socket");
    }
    return -1;
}

/* Keep only echo replies and errors on a raw socket: the kernel drops the
 * rest (notably every echo request the host itself receives). */
static void icmp_raw_filter(int fd, int family)
{
    if (family == AF_INET) {
        struct nr_icmp_filter f;
        f.data = ~((1u << ICMP_ECHOREPLY) | (1u << ICMP_DEST_UNREACH) |
                   (1u << ICMP_TIME_EXCEEDED));
        (void)setsockopt(fd, SOL_RAW, NR_SOL_RAW_ICMP_FILTER, &f, sizeof(f));
    } else {
        struct icmp6_filter f;
        ICMP6_FILTER_SETBLOCKALL(&f);
        ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
        ICMP6_FILTER_SETPASS(ICMP6_DST_UNREACH, &f);
        ICMP6_FILTER_SETPASS(ICMP6_TIME_EXCEEDED, &f);
        (void)setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
    }
}

/* Send echo request number p->nsent.  On failure the probe is finished. */
static void icmp_send(struct probe *p, int family)
{
    uint8_t pkt[8 + NR_ICMP_PAYLOAD];
    uint16_t seq = (uint16_t)(p->seq0 + p->nsent);
    uint64_t now;

    memset(pkt, 0, sizeof(pkt));
    pkt[0] = family == AF_INET ? ICMP_ECHO : ICMP6_ECHO_REQUEST;
    pkt[1] = 0;
    /* identifier: the kernel overwrites it on a ping socket */
    pkt[4] = (uint8_t)(p->ident >> 8);
    pkt[5] = (uint8_t)p->ident;
    pkt[6] = (uint8_t)(seq >> 8);
    pkt[7] = (uint8_t)seq;
    memcpy(pkt + 8, &p->cookie, sizeof(p->cookie));
    for (size_t i = 8 + sizeof(p->cookie); i < sizeof(pkt); i++)
        pkt[i] = (uint8_t)i;
    /* The kernel computes ICMPv6 checksums (pseudo-header) and those of
     * ping sockets; only raw IPv4 needs ours. */
    if (family == AF_INET && p->mode == ICMP_RAW) {
        uint16_t ck = inet_cksum(pkt, sizeof(pkt));
        memcpy(pkt + 2, &ck, 2);
    }

    now = nr_mono_ns();
    if (send(p->fd, pkt, sizeof(pkt), MSG_NOSIGNAL) < 0) {
        int err = errno;
        if ((err == EAGAIN || err == ENOBUFS) && p->nsent > 0)
            return;     /* a repeat could not go out; the next may */
        finish_errno(p, err, "send echo request");
        return;
    }
    if (p->nsent == 0)
        p->started_ns = now;
    p->sent_ns[p->nsent++] = now;
}

static void icmp_start(struct probe *p, const struct target *t)
{
    int fd = icmp_open(p, t->family);

    if (fd < 0)
        return;
    p->fd = fd;
    if (p->mode == ICMP_RAW)
        icmp_raw_filter(fd, t->family);
    /* connect(): the kernel then delivers only the target's packets and
     * reports its ICMP errors on the socket. */
    if (connect(fd, (const struct sockaddr *)&t->ss, t->len) < 0) {
        finish_errno(p, errno, "icmp connect");
        return;
    }
    /* A raw socket receives every ICMP packet of the host from socket()
     * until the filter and connect() above take effect; on a busy host
     * that can fill its receive buffer, and the reply would then be
     * dropped.  Nothing of ours can be queued yet: discard it all. */
    if (p->mode == ICMP_RAW) {
        uint8_t junk[64];
        while (recv(fd, junk, sizeof(junk), MSG_DONTWAIT | MSG_TRUNC) >= 0 ||
               errno == EINTR)
            ;
    }
    p->cookie = next_unique();
    p->ident = (uint16_t)(p->cookie >> 48);
    p->seq0 = (uint16_t)(p->cookie >> 32);
    icmp_send(p, t->family);
}

static bool same_host(const struct sockaddr_storage *a, const struct target *t)
{
    if (a->ss_family != t->family)
        return false;
    if (t->family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&t->ss)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)&t->ss)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* Sequence number -> index of our request, or -1 if not one of ours. */
static int icmp_seq_index(const struct probe *p, uint16_t seq)
{
    uint16_t k = (uint16_t)(seq - p->seq0);
    return k < p->nsent ? (int)k : -1;
}

/* Look at one received datagram.  Returns true when it settled the probe. */
static bool icmp_input(struct probe *p, const struct target *t,
                       const struct sockaddr_storage *from,
                       const uint8_t *buf, size_t n)
{
    int family = t->family;
    const uint8_t *icmp = buf;
    size_t len = n;
    int type, code, idx;
    uint16_t id, seq;

    /* A raw IPv4 socket gets the IP header too (v6 and ping sockets don't). */
    if (family == AF_INET && p->mode == ICMP_RAW) {
        size_t ihl;
        if (n < 20)
            return false;
        ihl = (size_t)(buf[0] & 0x0f) * 4;
        if ((buf[0] >> 4) != 4 || ihl < 20 || n < ihl || buf[9] != IPPROTO_ICMP)
            return false;
        icmp += ihl;
        len -= ihl;
    }
    if (len < 8)
        return false;
    type = icmp[0];
    code = icmp[1];
    id = (uint16_t)(icmp[4] << 8 | icmp[5]);
    seq = (uint16_t)(icmp[6] << 8 | icmp[7]);

    if (type == (family == AF_INET ? ICMP_ECHOREPLY : ICMP6_ECHO_REPLY)) {
        if (p->mode == ICMP_RAW && id != p->ident)
            return false;
        if (!same_host(from, t))        /* connect() filters too; be sure */
            return false;
        if ((idx = icmp_seq_index(p, seq)) < 0)
            return false;
        if (len < 8 + sizeof(p->cookie) ||
            memcmp(icmp + 8, &p->cookie, sizeof(p->cookie)) != 0)
            return false;
        p->started_ns = p->sent_ns[idx];
        set_detail(p->res, "echo reply%s%s",
                   p->mode == ICMP_RAW ? " (raw socket)" : " (ping socket)",
                   idx > 0 ? ", after a repeated request" : "");
        finish(p, NR_PROBE_OK, nr_mono_ns());
        return true;
    }

    /* An error about one of our requests: the quoted header must be ours.
     * (A ping socket gets these as socket errors instead.) */
    bool is_err = family == AF_INET
        ? (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED)
        : (type == ICMP6_DST_UNREACH || type == ICMP6_TIME_EXCEEDED);
    if (!is_err || p->mode != ICMP_RAW)
        return false;
    const uint8_t *q = icmp + 8;       /* quoted packet */
    size_t qlen = len - 8, qhl;
    if (family == AF_INET) {
        if (qlen < 20)
            return false;
        qhl = (size_t)(q[0] & 0x0f) * 4;
        if (qhl < 20 || qlen < qhl + 8 || q[9] != IPPROTO_ICMP || q[qhl] != ICMP_ECHO)
            return false;
    } else {
        qhl = 40;       /* fixed header; we send no extension headers */
        if (qlen < qhl + 8 || q[6] != IPPROTO_ICMPV6 || q[qhl] != ICMP6_ECHO_REQUEST)
            return false;
    }
    id = (uint16_t)(q[qhl + 4] << 8 | q[qhl + 5]);
    seq = (uint16_t)(q[qhl + 6] << 8 | q[qhl + 7]);
    if (id != p->ident || icmp_seq_index(p, seq) < 0)
        return false;
    set_detail(p->res, "%s", family == AF_INET ? icmp4_unreach_text(type, code)
                                              : icmp6_unreach_text(type, code));
    finish(p, NR_PROBE_UNREACHABLE, 0);
    return true;
}

static void icmp_event(struct probe *p, const struct target *t, short revents)
{
    uint8_t buf[1500];

    if (!(revents & (POLLIN | POLLERR | POLLHUP)))
        return;
    for (int i = 0; i < NR_ICMP_RECV_BURST; i++) {
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(p->fd, buf, sizeof(buf), MSG_DONTWAIT,
                             (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* a pending ICMP error reported on the connected socket */
            finish_errno(p, errno, "receive echo reply");
            return;
        }
        if (icmp_input(p, t, &from, buf, (size_t)n))
            return;
    }
}

/* ------------------------------------------------------------------ */

int nr_probe_run(const char *ip, double timeout_s, const int *tcp_ports,
                 size_t nports, bool icmp, struct nr_probe_result *out)
{
    size_t n = nports + (icmp ? 1 : 0);
    struct probe small[4], *pr;
    struct pollfd small_pfd[4], *pfd;
    struct target t;
    char err[sizeof(out->detail)];
    uint64_t deadline, next_echo = UINT64_MAX;
    int answered = 0;

    if (n == 0)
        return 0;
    if (!(timeout_s > 0))           /* also NaN */
        timeout_s = 0;
    if (timeout_s > 86400)
        timeout_s = 86400;
    pr = n <= NR_ARRAY_LEN(small) ? small : nr_calloc(n, sizeof(*pr));
    pfd = n <= NR_ARRAY_LEN(small_pfd) ? small_pfd : nr_calloc(n, sizeof(*pfd));

    for (size_t i = 0; i < n; i++) {
        struct nr_probe_result *r = &out[i];
        bool is_icmp = icmp && i == 0;

        memset(r, 0, sizeof(*r));
        r->kind = is_icmp ? NR_PROBE_ICMP : NR_PROBE_TCP;
        r->port = is_icmp ? 0 : tcp_ports[i - (icmp ? 1 : 0)];
        r->status = NR_PROBE_ERROR;
        r->latency_ms = -1;
        memset(&pr[i], 0, sizeof(pr[i]));
        pr[i].res = r;
        pr[i].fd = -1;
    }

    if (resolve(ip, &t, err, sizeof(err)) < 0) {
        for (size_t i = 0; i < n; i++)
            set_detail(&out[i], "%s", err);
        goto out;
    }

    deadline = nr_mono_ns() + (uint64_t)(timeout_s * 1e9);
    for (size_t i = 0; i < n; i++) {
        if (out[i].kind == NR_PROBE_ICMP) {
            icmp_start(&pr[i], &t);
            if (pr[i].fd >= 0)
                next_echo = pr[i].started_ns + (uint64_t)(NR_ICMP_INTERVAL_S * 1e9);
        } else {
            tcp_start(&pr[i], &t);
        }
    }

    for (;;) {
        size_t live = 0;
        uint64_t now, wake;
        struct timespec ts;

        for (size_t i = 0; i < n; i++) {
            pfd[i].fd = pr[i].fd;       /* negative: ignored by poll */
            pfd[i].events = out[i].kind == NR_PROBE_ICMP ? POLLIN : POLLOUT;
            pfd[i].revents = 0;
            live += pr[i].fd >= 0;
        }
        if (live == 0)
            break;
        now = nr_mono_ns();
        if (now >= deadline)
            break;
        wake = next_echo < deadline ? next_echo : deadline;
        wake = wake > now ? wake - now : 0;
        ts.tv_sec = (time_t)(wake / 1000000000u);
        ts.tv_nsec = (long)(wake % 1000000000u);
        int rc = ppoll(pfd, n, &ts, NULL);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            for (size_t i = 0; i < n; i++)
                if (pr[i].fd >= 0)
                    finish_errno(&pr[i], errno, "poll");
            break;
        }
        now = nr_mono_ns();
        for (size_t i = 0; i < n && rc > 0; i++) {
            if (pfd[i].revents == 0 || pr[i].fd < 0)
                continue;
            if (out[i].kind == NR_PROBE_ICMP)
                icmp_event(&pr[i], &t, pfd[i].revents);
            else
                tcp_event(&pr[i], pfd[i].revents, now);
        }
        /* Repeat the echo request of a probe still waiting. */
        if (icmp && pr[0].fd >= 0 && now >= next_echo) {
            if (pr[0].nsent < NR_ICMP_MAX_ECHO) {
                icmp_send(&pr[0], t.family);
                next_echo = now + (uint64_t)(NR_ICMP_INTERVAL_S * 1e9);
            } else {
                next_echo = UINT64_MAX;
            }
        }
    }

    /* Whatever is still open had no answer in time. */
    for (size_t i = 0; i < n; i++) {
        if (pr[i].fd < 0)
            continue;
        if (out[i].kind == NR_PROBE_ICMP)
            set_detail(&out[i], "no echo reply within %.3g s (%u request%s)",
                       timeout_s, pr[i].nsent, pr[i].nsent == 1 ? "" : "s");
        else
            set_detail(&out[i], "no answer within %.3g s", timeout_s);
        finish(&pr[i], NR_PROBE_TIMEOUT, 0);
    }

out:
    for (size_t i = 0; i < n; i++) {
        if (pr[i].fd >= 0)          /* not reached; kept as the promise */
            close(pr[i].fd);
        answered += out[i].status == NR_PROBE_OK;
    }
    if (pr != small)
        free(pr);
    if (pfd != small_pfd)
        free(pfd);
    return answered;
}

int nr_probe_reachability(const char *ip, double timeout_s,
                          struct nr_probe_result out[NR_REACH_PROBES])
{
    static const int ports[] = { 22, 443 };

    return nr_probe_run(ip, timeout_s, ports, NR_ARRAY_LEN(ports), true, out);
}
