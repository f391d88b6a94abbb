/*
 * probe.h - reachability probes: ICMP echo and TCP connect, without
 * spawning any program.
 *
 * nr_probe_reachability() runs the three probes of a device (ICMP echo,
 * TCP 22, TCP 443) at once on non-blocking sockets in the calling thread
 * and returns when all have answered or timeout_s has passed.
 *
 * ICMP uses an unprivileged ICMP datagram socket where the kernel allows it
 * (net.ipv4.ping_group_range), else a raw socket (root / CAP_NET_RAW);
 * where neither can be opened the ICMP probe's status is
 * NR_PROBE_UNAVAILABLE and its detail says why.
 */
#ifndef NR_PROBE_H
#define NR_PROBE_H

#include "netraven/common.h"

enum nr_probe_kind { NR_PROBE_ICMP = 0, NR_PROBE_TCP };

enum nr_probe_status {
    NR_PROBE_OK = 0,         /* answered (echo reply, or TCP connected) */
    NR_PROBE_REFUSED,        /* TCP RST */
    NR_PROBE_TIMEOUT,        /* no answer within the timeout */
    NR_PROBE_UNREACHABLE,    /* ICMP error / EHOSTUNREACH / ENETUNREACH */
    NR_PROBE_ERROR,          /* bad address, socket error */
    NR_PROBE_UNAVAILABLE,    /* ICMP could not be attempted on this host */
};

struct nr_probe_result {
    enum nr_probe_kind   kind;
    int                  port;        /* 0 for ICMP */
    enum nr_probe_status status;
    double               latency_ms;  /* time to the answer; -1 when none */
    char                 detail[128]; /* human text: "echo reply", "connection refused", ... */
};

#define NR_REACH_PROBES 3

/* Probe ip (IPv4 or IPv6 literal, or a host name resolved with
 * getaddrinfo).  Fills out[0] ICMP, out[1] TCP 22, out[2] TCP 443.
 * Returns the number of probes that answered (status OK), 0..3. */
int nr_probe_reachability(const char *ip, double timeout_s,
                          struct nr_probe_result out[NR_REACH_PROBES]);

/* The probes' generic form, all at once: an ICMP echo first when icmp is
 * true, then a TCP connect to each of tcp_ports in order; out (the caller's
 * array) receives icmp + nports results in that order.  Returns how many
 * answered. */
int nr_probe_run(const char *ip, double timeout_s, const int *tcp_ports,
                 size_t nports, bool icmp, struct nr_probe_result *out);

const char *nr_probe_status_name(enum nr_probe_status s);   /* "ok", "refused", ... */

#endif /* NR_PROBE_H */
