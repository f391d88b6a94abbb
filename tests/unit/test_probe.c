/*
 * test_probe.c - the reachability probes against loopback only.
 *
 * Targets are 127.0.0.0/8 (all local on Linux) and ::1.  Cases that need a
 * network state the host does not have (ICMP echo ignored, ping sockets
 * allowed or not, no route) run in a child process inside a new network
 * namespace, where those sysctls are private; where namespaces cannot be
 * created (no CAP_SYS_ADMIN) those cases say so on stderr and pass.
 */
#include <check.h>
#include "ck_skip.h"
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "netraven/probe.h"

/* ------------------------------------------------------------------ */
/* fixtures */

/* A TCP listener on addr (v4 or v6 literal), ephemeral port unless *port
 * is set.  Returns the fd; *port gets the port.  -1 if it cannot bind. */
static int listener_on(const char *addr, int backlog, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)*port);
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
            return -1;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)*port);
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
            return -1;
        len = sizeof(*s4);
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
        (backlog >= 0 && listen(fd, backlog) < 0) ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                          : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int listener(const char *addr, int *port)
{
    *port = 0;
    return listener_on(addr, 128, port);
}

/* A port that is bound but not listening: SYNs to it get RST, and nobody
 * else can take it while fd is open. */
static int closed_port(const char *addr, int *port)
{
    *port = 0;
    return listener_on(addr, -1, port);
}

static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

/* Whether ICMP echo must work here: root, or a group inside
 * net.ipv4.ping_group_range. */
static bool icmp_should_answer(void)
{
    unsigned long lo = 1, hi = 0;
    gid_t groups[256];
    int n;
    FILE *f;

    if (geteuid() == 0)
        return true;
    f = fopen("/proc/sys/net/ipv4/ping_group_range", "r");
    if (f == NULL)
        return false;
    if (fscanf(f, "%lu %lu", &lo, &hi) != 2)
        lo = 1, hi = 0;
    fclose(f);
    if (getegid() >= lo && getegid() <= hi)
        return true;
    n = getgroups(NR_ARRAY_LEN(groups), groups);
    for (int i = 0; i < n; i++)
        if (groups[i] >= lo && groups[i] <= hi)
            return true;
    return false;
}

static void assert_icmp_answered(const struct nr_probe_result *r)
{
    ck_assert_int_eq(r->kind, NR_PROBE_ICMP);
    ck_assert_int_eq(r->port, 0);
    if (icmp_should_answer() || r->status != NR_PROBE_UNAVAILABLE) {
        ck_assert_msg(r->status == NR_PROBE_OK, "icmp status %s: %s",
                      nr_probe_status_name(r->status), r->detail);
        ck_assert(r->latency_ms >= 0);
        ck_assert_msg(strncmp(r->detail, "echo reply", 10) == 0, "%s", r->detail);
    } else {
        ck_assert_msg(strstr(r->detail, "CAP_NET_RAW") &&
                      strstr(r->detail, "ping_group_range"), "%s", r->detail);
        ck_assert(r->latency_ms < 0);
    }
}

static bool ipv6_loopback(void)
{
    int port, fd = listener("::1", &port);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* ------------------------------------------------------------------ */
/* network namespace sandbox */

static int child_fd = -1;

/* In the namespace child: report a failure to the parent and exit. */
#define CHILD_CHECK(cond, ...)                                              \
    do {                                                                    \
        if (!(cond)) {                                                      \
            char m_[512];                                                   \
            int l_ = snprintf(m_, sizeof(m_), "%s:%d: %s: ", __FILE__,      \
                              __LINE__, #cond);                             \
            if (l_ > 0 && l_ < (int)sizeof(m_))                             \
                snprintf(m_ + l_, sizeof(m_) - (size_t)l_, __VA_ARGS__);    \
            if (write(child_fd, m_, strlen(m_)) < 0) { /* nothing to do */ } \
            _exit(1);                                                       \
        }                                                                   \
    } while (0)

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    int rc;

    if (f == NULL)
        return -1;
    rc = fputs(text, f) < 0 ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* In the namespace child: set a sysctl, or skip the case (exit 77) where
 * /proc/sys is mounted read-only (a container with CAP_SYS_ADMIN only). */
static void sysctl_set(const char *name, const char *value)
{
    char path[128];

    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", name);
    if (write_file(path, value) == 0)
        return;
    CHILD_CHECK(errno == EROFS || errno == EACCES || errno == EPERM,
                "%s: %s", path, strerror(errno));
    _exit(77);
}

static int lo_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

    if (fd < 0)
        return -1;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/* Run fn in a child inside a fresh network namespace with lo up.  Returns
 * false (after a note on stderr) when namespaces are not available. */
static bool in_netns(void (*fn)(void), const char *name)
{
    int pfd[2], status = 0;
    char msg[600] = "";
    ssize_t n;
    pid_t pid;

    ck_assert_int_eq(pipe(pfd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        child_fd = pfd[1];
        if (unshare(CLONE_NEWNET) < 0)
            _exit(77);
        CHILD_CHECK(lo_up() == 0, "lo up: %s", strerror(errno));
        fn();
        _exit(0);
    }
    close(pfd[1]);
    n = read(pfd[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "%s: child died (status %d)", name, status);
    if (WEXITSTATUS(status) == 77) {
        char why[160];

        snprintf(why, sizeof why, "%s: no network namespace with writable sysctls here", name);
        ck_skip_note(why);
        return false;
    }
    ck_assert_msg(WEXITSTATUS(status) == 0, "%s: %s", name, msg);
    return true;
}

/* ------------------------------------------------------------------ */

START_TEST(test_status_names)
{
    static const struct { enum nr_probe_status s; const char *name; } t[] = {
        { NR_PROBE_OK, "ok" },
        { NR_PROBE_REFUSED, "refused" },
        { NR_PROBE_TIMEOUT, "timeout" },
        { NR_PROBE_UNREACHABLE, "unreachable" },
        { NR_PROBE_ERROR, "error" },
        { NR_PROBE_UNAVAILABLE, "unavailable" },
    };
    for (size_t i = 0; i < NR_ARRAY_LEN(t); i++)
        ck_assert_str_eq(nr_probe_status_name(t[i].s), t[i].name);
    ck_assert_str_eq(nr_probe_status_name((enum nr_probe_status)99), "unknown");
}
END_TEST

START_TEST(test_tcp_ok)
{
    static const char *addrs[] = { "127.0.0.1", "127.1.2.3" };

    for (size_t a = 0; a < NR_ARRAY_LEN(addrs); a++) {
        struct nr_probe_result r;
        int port, lfd = listener(addrs[a], &port);

        ck_assert_msg(lfd >= 0, "listen on %s: %s", addrs[a], strerror(errno));
        ck_assert_int_eq(nr_probe_run(addrs[a], 2.0, &port, 1, false, &r), 1);
        ck_assert_int_eq(r.kind, NR_PROBE_TCP);
        ck_assert_int_eq(r.port, port);
        ck_assert_msg(r.status == NR_PROBE_OK, "%s: %s", addrs[a], r.detail);
        ck_assert_str_eq(r.detail, "connected");
        ck_assert(r.latency_ms >= 0 && r.latency_ms < 2000);
        /* the connection really reached our listener */
        ck_assert(readable(lfd, 1000));
        int c = accept(lfd, NULL, NULL);
        ck_assert_int_ge(c, 0);
        close(c);
        close(lfd);
    }
}
END_TEST

START_TEST(test_tcp_refused)
{
    struct nr_probe_result r;
    int port, fd = closed_port("127.0.0.1", &port);
    double t0;

    ck_assert_int_ge(fd, 0);
    t0 = nr_mono_ms();
    ck_assert_int_eq(nr_probe_run("127.0.0.1", 5.0, &port, 1, false, &r), 0);
    ck_assert_msg(r.status == NR_PROBE_REFUSED, "%s: %s",
                  nr_probe_status_name(r.status), r.detail);
    ck_assert_str_eq(r.detail, "connection refused");
    ck_assert(r.latency_ms < 0);
    ck_assert_msg(nr_mono_ms() - t0 < 1000, "a refusal must not wait for the timeout");
    close(fd);
}
END_TEST

START_TEST(test_icmp_loopback)
{
    static const char *addrs[] = { "127.0.0.1", "127.1.2.3", "127.255.0.9" };

    for (size_t a = 0; a < NR_ARRAY_LEN(addrs); a++) {
        struct nr_probe_result r;
        int n = nr_probe_run(addrs[a], 2.0, NULL, 0, true, &r);

        assert_icmp_answered(&r);
        ck_assert_int_eq(n, r.status == NR_PROBE_OK);
        if (r.status == NR_PROBE_OK)
            ck_assert_msg(r.latency_ms < 100, "%f ms on loopback", r.latency_ms);
    }
}
END_TEST

START_TEST(test_all_at_once)
{
    struct nr_probe_result r[3];
    int op, cp, lfd = listener("127.0.0.1", &op), cfd = closed_port("127.0.0.1", &cp);
    int ports[2] = { op, cp };
    int n;

    ck_assert(lfd >= 0 && cfd >= 0);
    n = nr_probe_run("127.0.0.1", 2.0, ports, 2, true, r);
    assert_icmp_answered(&r[0]);
    ck_assert_int_eq(r[1].kind, NR_PROBE_TCP);
    ck_assert_int_eq(r[1].port, op);
    ck_assert_int_eq(r[1].status, NR_PROBE_OK);
    ck_assert_int_eq(r[2].port, cp);
    ck_assert_int_eq(r[2].status, NR_PROBE_REFUSED);
    ck_assert_int_eq(n, 1 + (r[0].status == NR_PROBE_OK));
    close(lfd);
    close(cfd);
}
END_TEST

START_TEST(test_reachability_layout)
{
    struct nr_probe_result r[NR_REACH_PROBES];
    int n = nr_probe_reachability("127.0.0.1", 1.0, r), ok = 0;

    assert_icmp_answered(&r[0]);
    ck_assert_int_eq(r[1].kind, NR_PROBE_TCP);
    ck_assert_int_eq(r[1].port, 22);
    ck_assert_int_eq(r[2].kind, NR_PROBE_TCP);
    ck_assert_int_eq(r[2].port, 443);
    for (int i = 0; i < NR_REACH_PROBES; i++) {
        /* loopback answers at once, open or closed */
        if (i > 0)
            ck_assert_msg(r[i].status == NR_PROBE_OK || r[i].status == NR_PROBE_REFUSED,
                          "tcp/%d: %s", r[i].port, r[i].detail);
        ok += r[i].status == NR_PROBE_OK;
    }
    ck_assert_int_eq(n, ok);
}
END_TEST

/*
 * A TCP connect that cannot complete, on loopback: a listener with backlog
 * 0 whose one accept-queue slot is taken by a connection nobody accepts.
 * Linux then drops further SYNs (LISTENOVERFLOWS) instead of refusing them,
 * so the probe's connect hangs in SYN_SENT until our timeout.
 */
START_TEST(test_tcp_timeout)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct nr_probe_result r;
    int port = 0, lfd = listener_on("127.0.0.1", 0, &port), filler;
    double t0, elapsed;

    ck_assert_int_ge(lfd, 0);
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_msg(readable(lfd, 1000), "the filler connection is not queued");

    t0 = nr_mono_ms();
    ck_assert_int_eq(nr_probe_run("127.0.0.1", 0.3, &port, 1, false, &r), 0);
    elapsed = nr_mono_ms() - t0;
    ck_assert_msg(r.status == NR_PROBE_TIMEOUT, "%s: %s",
                  nr_probe_status_name(r.status), r.detail);
    ck_assert(r.latency_ms < 0);
    ck_assert_str_eq(r.detail, "no answer within 0.3 s");
    ck_assert_msg(elapsed >= 299 && elapsed < 300 + 150, "elapsed %.1f ms", elapsed);
    close(filler);
    close(lfd);
}
END_TEST

START_TEST(test_bad_input)
{
    struct nr_probe_result r[3];
    int bad[2] = { 0, 70000 };
    int port, lfd = listener("127.0.0.1", &port);

    ck_assert_int_eq(nr_probe_run(NULL, 1.0, bad, 2, true, r), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(r[i].status, NR_PROBE_ERROR);
        ck_assert_str_eq(r[i].detail, "no address");
        ck_assert(r[i].latency_ms < 0);
    }
    ck_assert_int_eq(r[0].kind, NR_PROBE_ICMP);
    ck_assert_int_eq(r[2].port, 70000);
    ck_assert_int_eq(nr_probe_reachability("", 1.0, r), 0);
    ck_assert_str_eq(r[2].detail, "no address");
    /* glibc refuses such a name without asking DNS */
    ck_assert_int_eq(nr_probe_reachability("not a valid host name!", 1.0, r), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(r[i].status, NR_PROBE_ERROR);
        ck_assert_msg(strncmp(r[i].detail, "cannot resolve 'not a valid host name!': ", 41) == 0,
                      "%s", r[i].detail);
    }

    ck_assert_int_eq(nr_probe_run("127.0.0.1", 1.0, bad, 2, false, r), 0);
    ck_assert_int_eq(r[0].status, NR_PROBE_ERROR);
    ck_assert_str_eq(r[0].detail, "bad port 0");
    ck_assert_str_eq(r[1].detail, "bad port 70000");

    /* nothing asked, nothing done */
    r[0].status = NR_PROBE_TIMEOUT;
    ck_assert_int_eq(nr_probe_run("127.0.0.1", 1.0, NULL, 0, false, r), 0);
    ck_assert_int_eq(r[0].status, NR_PROBE_TIMEOUT);

    /* a zero or NaN timeout still probes: loopback answers at once or not */
    ck_assert_int_le(nr_probe_run("127.0.0.1", 0.0, &port, 1, false, r), 1);
    ck_assert(r[0].status == NR_PROBE_OK || r[0].status == NR_PROBE_TIMEOUT);
    ck_assert_int_le(nr_probe_run("127.0.0.1", 0.0 / 0.0, &port, 1, false, r), 1);
    ck_assert(r[0].status == NR_PROBE_OK || r[0].status == NR_PROBE_TIMEOUT);
    close(lfd);
}
END_TEST

/* Names go through getaddrinfo; "localhost" is in /etc/hosts. */
START_TEST(test_host_name)
{
    struct nr_probe_result r;
    int port = 0, lfd, one = 0;
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
    socklen_t len = sizeof(s6);

    /* dual-stack listener: localhost may resolve to ::1 or 127.0.0.1 */
    lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd >= 0 && setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0 &&
        bind(lfd, (struct sockaddr *)&s6, sizeof(s6)) == 0 && listen(lfd, 16) == 0 &&
        getsockname(lfd, (struct sockaddr *)&s6, &len) == 0) {
        port = ntohs(s6.sin6_port);
    } else {
        if (lfd >= 0)
            close(lfd);
        lfd = listener("127.0.0.1", &port);
    }
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(nr_probe_run("localhost", 2.0, &port, 1, false, &r), 1);
    ck_assert_int_eq(r.status, NR_PROBE_OK);

    /* an IPv4-mapped IPv6 literal is probed as IPv4, ICMP included */
    struct nr_probe_result rr[2];
    nr_probe_run("::ffff:127.0.0.1", 2.0, &port, 1, true, rr);
    assert_icmp_answered(&rr[0]);
    ck_assert_int_eq(rr[1].status, NR_PROBE_OK);
    close(lfd);
}
END_TEST

START_TEST(test_ipv6)
{
    struct nr_probe_result r[3];
    int op, cp, lfd, cfd, ports[2];

    if (!ipv6_loopback()) {
        ck_skip_note("test_ipv6: no IPv6 loopback");
        return;
    }
    lfd = listener("::1", &op);
    cfd = closed_port("::1", &cp);
    ck_assert(lfd >= 0 && cfd >= 0);
    ports[0] = op;
    ports[1] = cp;
    nr_probe_run("::1", 2.0, ports, 2, true, r);
    assert_icmp_answered(&r[0]);
    ck_assert_int_eq(r[1].status, NR_PROBE_OK);
    ck_assert_int_eq(r[2].status, NR_PROBE_REFUSED);
    close(lfd);
    close(cfd);
}
END_TEST

/* ---- cases in a network namespace ---- */

static void ns_icmp_timeout(void)
{
    struct nr_probe_result r[2];
    int cp, cfd = closed_port("127.0.0.1", &cp);
    double t0, elapsed;

    CHILD_CHECK(cfd >= 0, "bind");
    sysctl_set("icmp_echo_ignore_all", "1");
    t0 = nr_mono_ms();
    CHILD_CHECK(nr_probe_run("127.0.0.1", 0.3, &cp, 1, true, r) == 0, "answered");
    elapsed = nr_mono_ms() - t0;
    CHILD_CHECK(r[0].status == NR_PROBE_TIMEOUT, "%s: %s",
                nr_probe_status_name(r[0].status), r[0].detail);
    CHILD_CHECK(strcmp(r[0].detail, "no echo reply within 0.3 s (1 request)") == 0,
                "%s", r[0].detail);
    CHILD_CHECK(r[0].latency_ms < 0, "%f", r[0].latency_ms);
    CHILD_CHECK(r[1].status == NR_PROBE_REFUSED, "%s", r[1].detail);
    CHILD_CHECK(elapsed >= 299 && elapsed < 450, "elapsed %.1f ms", elapsed);
    close(cfd);
}

static void *echo_on_later(void *arg)
{
    (void)arg;
    usleep(400 * 1000);
    if (write_file("/proc/sys/net/ipv4/icmp_echo_ignore_all", "0") < 0)
        abort();
    return NULL;
}

/* The first request is ignored; the repeat one second later is answered,
 * and the latency is that of the repeat. */
static void ns_icmp_repeat(void)
{
    struct nr_probe_result r;
    pthread_t th;
    double t0, elapsed;

    sysctl_set("icmp_echo_ignore_all", "1");
    CHILD_CHECK(pthread_create(&th, NULL, echo_on_later, NULL) == 0, "thread");
    t0 = nr_mono_ms();
    CHILD_CHECK(nr_probe_run("127.0.0.1", 3.0, NULL, 0, true, &r) == 1,
                "%s: %s", nr_probe_status_name(r.status), r.detail);
    elapsed = nr_mono_ms() - t0;
    pthread_join(th, NULL);
    CHILD_CHECK(strstr(r.detail, "after a repeated request") != NULL, "%s", r.detail);
    CHILD_CHECK(r.latency_ms >= 0 && r.latency_ms < 100, "latency %f", r.latency_ms);
    CHILD_CHECK(elapsed >= 990 && elapsed < 1500, "elapsed %.1f ms", elapsed);
}

/* ping sockets: allowed for our group -> used, and no raw socket needed */
static void ns_ping_socket(void)
{
    struct nr_probe_result r;

    sysctl_set("ping_group_range", "0 2147483647");
    CHILD_CHECK(nr_probe_run("127.0.0.1", 2.0, NULL, 0, true, &r) == 1, "%s", r.detail);
    CHILD_CHECK(strcmp(r.detail, "echo reply (ping socket)") == 0, "%s", r.detail);
    if (nr_probe_run("::1", 2.0, NULL, 0, true, &r) != 1)
        CHILD_CHECK(r.status == NR_PROBE_ERROR, "%s: %s",    /* v6 disabled */
                    nr_probe_status_name(r.status), r.detail);
    else
        CHILD_CHECK(strcmp(r.detail, "echo reply (ping socket)") == 0, "%s", r.detail);

    /* back to raw */
    sysctl_set("ping_group_range", "1 0");
    CHILD_CHECK(nr_probe_run("127.0.0.1", 2.0, NULL, 0, true, &r) == 1, "%s", r.detail);
    CHILD_CHECK(strcmp(r.detail, "echo reply (raw socket)") == 0, "%s", r.detail);
}

/* No route: both kinds fail at once, as unreachable. */
static void ns_unreachable(void)
{
    struct nr_probe_result r[3];
    double t0 = nr_mono_ms();

    CHILD_CHECK(nr_probe_reachability("10.255.1.1", 2.0, r) == 0, "answered");
    for (int i = 0; i < 3; i++)
        CHILD_CHECK(r[i].status == NR_PROBE_UNREACHABLE, "probe %d: %s: %s", i,
                    nr_probe_status_name(r[i].status), r[i].detail);
    CHILD_CHECK(strcmp(r[1].detail, "Network is unreachable") == 0, "%s", r[1].detail);
    CHILD_CHECK(nr_mono_ms() - t0 < 500, "took %.1f ms", nr_mono_ms() - t0);
}

/* Neither ping sockets nor CAP_NET_RAW: ICMP unavailable, TCP still fine. */
static void ns_unprivileged(void)
{
    struct nr_probe_result r[2];
    int port, lfd = listener("127.0.0.1", &port);

    CHILD_CHECK(lfd >= 0, "listen");
    sysctl_set("ping_group_range", "1 0");
    CHILD_CHECK(setgroups(0, NULL) == 0 && setresgid(65534, 65534, 65534) == 0 &&
                setresuid(65534, 65534, 65534) == 0, "drop privileges: %s", strerror(errno));
    CHILD_CHECK(nr_probe_run("127.0.0.1", 1.0, &port, 1, true, r) == 1, "%s", r[1].detail);
    CHILD_CHECK(r[0].status == NR_PROBE_UNAVAILABLE, "%s: %s",
                nr_probe_status_name(r[0].status), r[0].detail);
    CHILD_CHECK(strstr(r[0].detail, "CAP_NET_RAW") && strstr(r[0].detail, "ping_group_range"),
                "%s", r[0].detail);
    CHILD_CHECK(r[1].status == NR_PROBE_OK, "%s", r[1].detail);
}

START_TEST(test_netns_icmp_timeout) { in_netns(ns_icmp_timeout, "icmp timeout"); }
END_TEST
START_TEST(test_netns_icmp_repeat) { in_netns(ns_icmp_repeat, "icmp repeat"); }
END_TEST
START_TEST(test_netns_ping_socket) { in_netns(ns_ping_socket, "ping socket"); }
END_TEST
START_TEST(test_netns_unreachable) { in_netns(ns_unreachable, "unreachable"); }
END_TEST
START_TEST(test_netns_unprivileged) { in_netns(ns_unprivileged, "unprivileged"); }
END_TEST

/* ---- many threads at once, and the cost of one probe ---- */

#define BENCH_DEVICES 1000
#define BENCH_THREADS 64

struct bench {
    int              port;          /* listened on by even devices */
    atomic_int       next;
    atomic_int       icmp_ok, tcp_ok, refused, bad;
};

static void bench_ip(int i, char *buf, size_t len)
{
    snprintf(buf, len, "127.1.%d.%d", i / 250, i % 250 + 1);
}

static void *bench_thread(void *arg)
{
    struct bench *b = arg;
    int i;

    while ((i = atomic_fetch_add(&b->next, 1)) < BENCH_DEVICES) {
        struct nr_probe_result r[3];
        int ports[2] = { b->port, 443 };
        char ip[32];

        bench_ip(i, ip, sizeof(ip));
        nr_probe_run(ip, 1.0, ports, 2, true, r);
        atomic_fetch_add(&b->icmp_ok, r[0].status == NR_PROBE_OK);
        if (i % 2 == 0)
            atomic_fetch_add(&b->tcp_ok, r[1].status == NR_PROBE_OK);
        else
            atomic_fetch_add(&b->refused, r[1].status == NR_PROBE_REFUSED);
        atomic_fetch_add(&b->bad, r[2].status != NR_PROBE_REFUSED &&
                                  r[2].status != NR_PROBE_OK);
    }
    return NULL;
}

static double cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

/* The benchmark shape: 1,000 devices at 127.1.x.y, half with a
 * listener, 64 threads, three probes each, in under 2 s. */
START_TEST(test_many_threads)
{
    static int lfd[BENCH_DEVICES];
    struct bench b = { .port = 0 };
    pthread_t th[BENCH_THREADS];
    double w0, c0, wall, cpu;
    char ip[32];

    /* one port number for all listeners, taken on the first address */
    lfd[0] = listener("127.1.0.1", &b.port);
    ck_assert_int_ge(lfd[0], 0);
    for (int i = 2; i < BENCH_DEVICES; i += 2) {
        int p = b.port;
        bench_ip(i, ip, sizeof(ip));
        lfd[i] = listener_on(ip, 16, &p);
        ck_assert_msg(lfd[i] >= 0, "listen on %s:%d: %s", ip, b.port, strerror(errno));
    }

    w0 = nr_mono_ms();
    c0 = cpu_ms();
    for (int t = 0; t < BENCH_THREADS; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, bench_thread, &b), 0);
    for (int t = 0; t < BENCH_THREADS; t++)
        pthread_join(th[t], NULL);
    wall = nr_mono_ms() - w0;
    cpu = cpu_ms() - c0;
    fprintf(stderr, "many_threads: %d devices x 3 probes, %d threads: %.1f ms wall, "
            "%.1f ms CPU (%.1f us CPU per probe)\n", BENCH_DEVICES, BENCH_THREADS,
            wall, cpu, cpu * 1e3 / (3 * BENCH_DEVICES));

    if (icmp_should_answer())
        ck_assert_int_eq(atomic_load(&b.icmp_ok), BENCH_DEVICES);
    ck_assert_int_eq(atomic_load(&b.tcp_ok), BENCH_DEVICES / 2);
    ck_assert_int_eq(atomic_load(&b.refused), BENCH_DEVICES / 2);
    ck_assert_int_eq(atomic_load(&b.bad), 0);
    ck_assert_msg(wall < 2000, "%.1f ms", wall);
    for (int i = 0; i < BENCH_DEVICES; i += 2)
        close(lfd[i]);
}
END_TEST

/* CPU per probe, one thread, each kind on its own. */
START_TEST(test_probe_cost)
{
    enum { N = 2000 };
    struct nr_probe_result r;
    int op, cp, lfd = listener("127.0.0.1", &op), cfd = closed_port("127.0.0.1", &cp);
    static const char *names[] = { "icmp", "tcp ok", "tcp refused" };

    ck_assert(lfd >= 0 && cfd >= 0);
    for (int k = 0; k < 3; k++) {
        double c0 = cpu_ms(), w0 = nr_mono_ms(), cpu;
        int ok = 0;

        for (int i = 0; i < N; i++) {
            if (k == 0)
                ok += nr_probe_run("127.0.0.1", 1.0, NULL, 0, true, &r);
            else
                ok += nr_probe_run("127.0.0.1", 1.0, k == 1 ? &op : &cp, 1, false, &r);
            if (k == 1 && (i & 63) == 63) {     /* keep the accept queue short */
                int c;
                while (readable(lfd, 0) && (c = accept(lfd, NULL, NULL)) >= 0)
                    close(c);
            }
        }
        cpu = (cpu_ms() - c0) * 1e3 / N;
        fprintf(stderr, "probe_cost: %-11s %6.1f us CPU, %6.1f us wall per probe\n",
                names[k], cpu, (nr_mono_ms() - w0) * 1e3 / N);
        if (k == 1)
            ck_assert_int_eq(ok, N);
        if (k == 2)
            ck_assert_int_eq(ok, 0);
        ck_assert_msg(cpu < 1000, "%s: %.1f us CPU per probe", names[k], cpu);
    }
    close(lfd);
    close(cfd);
}
END_TEST

/* No descriptor survives a probe, whatever its outcome. */
START_TEST(test_no_fd_leak)
{
    struct nr_probe_result r[3];
    int op, cp, lfd = listener("127.0.0.1", &op), cfd = closed_port("127.0.0.1", &cp);
    int ports[2] = { op, cp };
    int before, after;

    ck_assert(lfd >= 0 && cfd >= 0);
    before = dup(0);
    close(before);
    for (int i = 0; i < 50; i++) {
        nr_probe_run("127.0.0.1", 1.0, ports, 2, true, r);
        nr_probe_run("not a valid host name!", 1.0, ports, 2, true, r);
        nr_probe_run(NULL, 1.0, ports, 2, true, r);
    }
    after = dup(0);
    close(after);
    ck_assert_int_eq(before, after);
    close(lfd);
    close(cfd);
}
END_TEST

static Suite *probe_suite(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("loopback");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_tcp_ok);
    tcase_add_test(tc, test_tcp_refused);
    tcase_add_test(tc, test_icmp_loopback);
    tcase_add_test(tc, test_all_at_once);
    tcase_add_test(tc, test_reachability_layout);
    tcase_add_test(tc, test_tcp_timeout);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_host_name);
    tcase_add_test(tc, test_ipv6);
    tcase_add_test(tc, test_no_fd_leak);
    suite_add_tcase(s, tc);

    tc = tcase_create("netns");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_netns_icmp_timeout);
    tcase_add_test(tc, test_netns_icmp_repeat);
    tcase_add_test(tc, test_netns_ping_socket);
    tcase_add_test(tc, test_netns_unreachable);
    tcase_add_test(tc, test_netns_unprivileged);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_many_threads);
    tcase_add_test(tc, test_probe_cost);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(probe_suite());
    int failed;

    ck_skip_init();
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return ck_skip_exit(failed);
}
