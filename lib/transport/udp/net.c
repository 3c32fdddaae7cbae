// SPDX-License-Identifier: BSD-3-Clause
#define _GNU_SOURCE
// Socket set-up for UDP multicast: the only code that touches multicast socket options.
#include "udp.h"

#include "../../core/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

// Interface of a connection: index (0 = let the kernel choose) and, for IPv4, its address.
typedef struct iface_info {
    unsigned index;
    struct in_addr addr4; // INADDR_ANY when unknown
} iface_info;

static mcl_err
resolve_iface(const struct mcl_connection *c, iface_info *ii)
{
    const mcl__udp_opts *u = mcl__udp_opts_of(c);
    memset(ii, 0, sizeof(*ii));
    ii->addr4.s_addr = htonl(INADDR_ANY);
    if (u->iface[0] == '\0')
        return MCL_OK;
    struct in_addr a4;
    struct in6_addr a6;
    bool is4 = inet_pton(AF_INET, u->iface, &a4) == 1;
    bool is6 = !is4 && inet_pton(AF_INET6, u->iface, &a6) == 1;
    if (!is4 && !is6) {
        ii->index = if_nametoindex(u->iface);
        if (ii->index == 0)
            return mcl__fail(MCL_ENODEV, NULL, 0, "udp", "%s: no interface named '%s'", c->url,
                             u->iface);
        if (u->family == 4) { // find its IPv4 address, if it has one (not required)
            struct ifaddrs *ifs = NULL;
            if (getifaddrs(&ifs) == 0) {
                for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next)
                    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
                        strcmp(i->ifa_name, u->iface) == 0) {
                        ii->addr4 = ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
                        break;
                    }
                freeifaddrs(ifs);
            }
        }
        return MCL_OK;
    }
    if ((is4 && u->family != 4) || (is6 && u->family != 6))
        return mcl__fail(MCL_ENODEV, NULL, 0, "udp",
                         "%s: iface address %s is not of the group's address family", c->url,
                         u->iface);
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0) {
        int e = errno;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "getifaddrs: %s", strerror(e));
    }
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        if (is4 && i->ifa_addr->sa_family == AF_INET &&
            ((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr.s_addr == a4.s_addr) {
            ii->index = if_nametoindex(i->ifa_name);
            ii->addr4 = a4;
            break;
        }
        if (is6 && i->ifa_addr->sa_family == AF_INET6 &&
            memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, &a6,
                   sizeof(a6)) == 0) {
            ii->index = if_nametoindex(i->ifa_name);
            break;
        }
    }
    freeifaddrs(ifs);
    if (ii->index == 0)
        return mcl__fail(MCL_ENODEV, NULL, 0, "udp", "%s: no interface has the address %s",
                         c->url, u->iface);
    return MCL_OK;
}

static socklen_t
group_sockaddr(const struct mcl_connection *c, struct sockaddr_storage *ss, uint16_t port,
               unsigned ifindex)
{
    const mcl__udp_opts *u = mcl__udp_opts_of(c);
    memset(ss, 0, sizeof(*ss));
    if (u->family == 4) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons(port);
        s->sin_addr = u->group4;
        return sizeof(*s);
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    s->sin6_addr = u->group6;
    s->sin6_scope_id = ifindex;
    return sizeof(*s);
}

// setsockopt that logs the failing option by name and maps errno.
static mcl_err
sockopt(int fd, int level, int name, const void *v, socklen_t len, const char *what,
        const struct mcl_connection *c)
{
    if (setsockopt(fd, level, name, v, len) == 0)
        return MCL_OK;
    int e = errno;
    return mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "%s: setsockopt(%s): %s", c->url, what,
                     strerror(e));
}

static mcl_err
new_socket(const struct mcl_connection *c, int *fdp)
{
    const mcl__udp_opts *u = mcl__udp_opts_of(c);
    int fd = socket(u->family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0) {
        int e = errno;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "%s: socket: %s", c->url, strerror(e));
    }
    *fdp = fd;
    return MCL_OK;
}

mcl_err
mcl__udp_open_send(const struct mcl_connection *c, int *fdp)
{
    const mcl__udp_opts *u = mcl__udp_opts_of(c);
    *fdp = -1;
    if (c->port == 0)
        return mcl__fail(MCL_EINVAL, NULL, 0, "udp", "%s: a broadcaster needs a port (not 0)",
                         c->url);
    iface_info ii;
    mcl_err rv = resolve_iface(c, &ii);
    int fd = -1;
    if (rv != MCL_OK || (rv = new_socket(c, &fd)) != MCL_OK)
        return rv;
    int loop = u->loop ? 1 : 0;
    int ttl = u->ttl;
    if (u->family == 4) {
        unsigned char ttl8 = (unsigned char)ttl, loop8 = (unsigned char)loop;
        if ((rv = sockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl8, sizeof(ttl8),
                          "IP_MULTICAST_TTL", c)) != MCL_OK ||
            (rv = sockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop8, sizeof(loop8),
                          "IP_MULTICAST_LOOP", c)) != MCL_OK)
            goto fail;
        if (ii.index != 0 || ii.addr4.s_addr != htonl(INADDR_ANY)) {
            struct ip_mreqn m = {.imr_address = ii.addr4, .imr_ifindex = (int)ii.index};
            if ((rv = sockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof(m), "IP_MULTICAST_IF",
                              c)) != MCL_OK)
                goto fail;
        }
    } else {
        if ((rv = sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &ttl, sizeof(ttl),
                          "IPV6_MULTICAST_HOPS", c)) != MCL_OK ||
            (rv = sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof(loop),
                          "IPV6_MULTICAST_LOOP", c)) != MCL_OK)
            goto fail;
        if (ii.index != 0) {
            int idx = (int)ii.index;
            if ((rv = sockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx),
                              "IPV6_MULTICAST_IF", c)) != MCL_OK)
                goto fail;
        }
    }
    if (u->sndbuf > 0) {
        int sz = u->sndbuf > INT32_MAX / 2 ? INT32_MAX / 2 : (int)u->sndbuf;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) != 0 &&
            (rv = sockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz), "SO_SNDBUF", c)) != MCL_OK)
            goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = group_sockaddr(c, &ss, c->port, ii.index);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "%s: connect: %s%s", c->url, strerror(e),
                       e != ENETUNREACH ? ""
                       : ii.index == 0  ? " (no multicast route: give iface=)"
                                        : " (no route to the group on that interface: it may be "
                                          "down, or have no multicast route for the group's "
                                          "family)");
        goto fail;
    }
    *fdp = fd;
    return MCL_OK;
fail:
    close(fd);
    return rv;
}

mcl_err
mcl__udp_open_recv(const struct mcl_connection *c, int *fdp, uint16_t *port, size_t *rcvbuf)
{
    const mcl__udp_opts *u = mcl__udp_opts_of(c);
    *fdp = -1;
    iface_info ii;
    mcl_err rv = resolve_iface(c, &ii);
    int fd = -1;
    if (rv != MCL_OK || (rv = new_socket(c, &fd)) != MCL_OK)
        return rv;
    int one = 1, zero = 0;
    // Port 0 asks the kernel for a port of our own: with SO_REUSEADDR already set it may hand
    // out a port that another such socket uses, and the two would hear each other's traffic.
    // So the flag comes after bind then (later listeners may still share the port on purpose).
    if (c->port != 0 &&
        (rv = sockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one), "SO_REUSEADDR", c)) !=
            MCL_OK)
        goto fail;
    // Receive timestamps and the kernel's drop counter with every datagram (best effort).
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof(one));
    if (u->rcvbuf > 0) {
        int sz = u->rcvbuf > INT32_MAX / 2 ? INT32_MAX / 2 : (int)u->rcvbuf;
        // SO_RCVBUFFORCE passes rmem_max for privileged processes; otherwise the kernel caps
        // SO_RCVBUF at rmem_max, and we report the effective size.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    int eff = 0;
    socklen_t el = sizeof(eff);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &eff, &el) == 0) {
        // Linux reports twice the usable size (it reserves half for bookkeeping).
        *rcvbuf = (size_t)eff / 2;
        if (u->rcvbuf > 0 && *rcvbuf < u->rcvbuf)
            // Only a warning when the user asked for this size; the default is a wish.
            mcl__log(u->rcvbuf == MCL__DEF_RCVBUF ? MCL_LOG_INFO : MCL_LOG_WARN, "udp",
                     "%s: receive buffer is %zu bytes, not the %zu requested (raise "
                     "net.core.rmem_max, or run with CAP_NET_ADMIN)",
                     c->url, *rcvbuf, u->rcvbuf);
    }
    struct sockaddr_storage ss;
    socklen_t sl = group_sockaddr(c, &ss, c->port, ii.index);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "%s: bind: %s", c->url, strerror(e));
        goto fail;
    }
    if (c->port == 0 &&
        (rv = sockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one), "SO_REUSEADDR", c)) !=
            MCL_OK)
        goto fail;
    if (u->family == 4) {
        (void)setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
        struct ip_mreqn m = {.imr_multiaddr = u->group4,
                             .imr_address = ii.addr4,
                             .imr_ifindex = (int)ii.index};
        if ((rv = sockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof(m), "IP_ADD_MEMBERSHIP",
                          c)) != MCL_OK) {
            if (rv == MCL_ESYS || rv == MCL_EINVAL)
                rv = MCL_ENODEV;
            goto fail;
        }
    } else {
#ifdef IPV6_MULTICAST_ALL
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero));
#endif
        struct ipv6_mreq m = {.ipv6mr_multiaddr = u->group6, .ipv6mr_interface = ii.index};
        if ((rv = sockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &m, sizeof(m),
                          "IPV6_ADD_MEMBERSHIP", c)) != MCL_OK) {
            if (rv == MCL_ESYS || rv == MCL_EINVAL)
                rv = MCL_ENODEV;
            goto fail;
        }
    }
    // Blocking mode: reads that must not wait say MSG_DONTWAIT, and a listener waiting for its
    // next datagram does it in the read itself (udp.c read_some: SO_RCVTIMEO).
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &bl) != 0) {
        int e = errno;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "udp", "getsockname: %s", strerror(e));
        goto fail;
    }
    *port = ntohs(u->family == 4 ? ((struct sockaddr_in *)&bound)->sin_port
                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *fdp = fd;
    return MCL_OK;
fail:
    close(fd);
    return rv;
}
