// SPDX-License-Identifier: BSD-3-Clause
// The udp:// transport (UDP multicast, IPv4 and IPv6): its options, its socket set-up, and
// the send-failure seam for tests. Internal to lib/transport/udp and the tests.
#ifndef MCL__UDP_H
#define MCL__UDP_H

#include "../transport.h"

#include <netinet/in.h>
#include <stdbool.h>

#define MCL__IFACE_MAX 64
// Large enough that a receiver absorbs a burst of ~60 messages of 1 MiB sent at loopback
// speed (measured: bench/throughput.c); unprivileged processes are capped at rmem_max.
#define MCL__DEF_RCVBUF ((size_t)64 << 20)

typedef struct mcl__udp_opts {
    int family;                   // 4 or 6
    char group[INET6_ADDRSTRLEN]; // text, no brackets
    struct in_addr group4;
    struct in6_addr group6;
    int ttl;
    bool loop;
    char iface[MCL__IFACE_MAX]; // "" = routing table
    size_t rcvbuf;
    size_t sndbuf;
} mcl__udp_opts;

extern const mcl__tport mcl__udp_tport;

static inline const mcl__udp_opts *
mcl__udp_opts_of(const struct mcl_connection *c)
{
    return (const mcl__udp_opts *)mcl__tport_copts(c);
}

// Opens a connected sending socket for conn. On failure *fdp is -1 and the log says why.
mcl_err mcl__udp_open_send(const struct mcl_connection *conn, int *fdp);

// Opens a bound, joined, non-blocking receiving socket for conn. *port receives the bound port
// and *rcvbuf the effective receive buffer size.
mcl_err mcl__udp_open_recv(const struct mcl_connection *conn, int *fdp, uint16_t *port,
                           size_t *rcvbuf);

// Test seam for broadcasters: the n-th sendmmsg call from now on (0 = the next one) fails once
// with errno e, as if the kernel had refused it; n < 0 disables.
void mcl__send_fail_after(long n, int e);

#endif
