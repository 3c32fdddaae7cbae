// SPDX-License-Identifier: BSD-3-Clause
// The udp:// grammar (include/mcl/connection.h): group, port, the UDP options, the canonical
// form, and the public getters of UDP fields.
#include "udp.h"

#include "../../core/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

enum {
    DEF_TTL = 1,
    MAX_DGRAM4 = 65507, // 65535 - 20 (IPv4) - 8 (UDP)
};

static mcl__udp_opts *
opts(struct mcl_connection *c)
{
    return (mcl__udp_opts *)mcl__tport_opts(c);
}

static void
udp_defaults(struct mcl_connection *c)
{
    mcl__udp_opts *u = opts(c);
    u->ttl = DEF_TTL;
    u->loop = true;
    u->rcvbuf = MCL__DEF_RCVBUF;
}

static bool
iface_ok(const char *v, size_t n)
{
    if (n == 0 || n >= MCL__IFACE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && strchr("._-:@", v[i]) == NULL)
            return false;
    return true;
}

// GROUP[:PORT][/] up to the options.
static mcl_err
udp_parse_addr(struct mcl_connection *c, const char *url, const char *p, const char **qp,
               char *errbuf, size_t errlen)
{
    mcl__udp_opts *u = opts(c);
    char host[INET6_ADDRSTRLEN + MCL__IFACE_MAX + 2];
    const char *hend;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL)
            return MCL__URL_FAIL("%s: '[' without ']' around the IPv6 address", url);
        size_t hl = (size_t)(close - p - 1);
        if (hl == 0 || hl >= sizeof(host))
            return MCL__URL_FAIL("%s: bad IPv6 address length", url);
        memcpy(host, p + 1, hl);
        host[hl] = '\0';
        u->family = 6;
        hend = close + 1;
    } else {
        const char *c1 = strchr(p, ':');
        const char *qm = strchr(p, '?');
        if (c1 != NULL && (qm == NULL || c1 < qm) && strchr(c1 + 1, ':') != NULL &&
            (qm == NULL || strchr(c1 + 1, ':') < qm))
            return MCL__URL_FAIL("%s: an IPv6 address must be written in brackets, e.g. "
                                 "udp://[ff15::1]:26000",
                                 url);
        hend = p;
        while (*hend != '\0' && *hend != ':' && *hend != '?' && *hend != '/')
            hend++;
        size_t hl = (size_t)(hend - p);
        if (hl == 0)
            return MCL__URL_FAIL("%s: missing group address", url);
        if (hl >= sizeof(host))
            return MCL__URL_FAIL("%s: group address too long", url);
        memcpy(host, p, hl);
        host[hl] = '\0';
        u->family = 4;
    }

    if (u->family == 6) {
        char *zone = strchr(host, '%');
        if (zone != NULL) {
            *zone++ = '\0';
            if (!iface_ok(zone, strlen(zone)))
                return MCL__URL_FAIL("%s: '%s' after '%%' is not an interface name", url, zone);
            snprintf(u->iface, sizeof(u->iface), "%s", zone);
        }
        if (inet_pton(AF_INET6, host, &u->group6) != 1)
            return MCL__URL_FAIL("%s: '%s' is not an IPv6 address", url, host);
        if (u->group6.s6_addr[0] != 0xff)
            return MCL__URL_FAIL("%s: %s is not a multicast address (IPv6 multicast is ff00::/8)",
                                 url, host);
        inet_ntop(AF_INET6, &u->group6, u->group, sizeof(u->group));
    } else {
        // inet_pton accepts only the four-part dotted form: no hostnames, no shorthand.
        if (inet_pton(AF_INET, host, &u->group4) != 1) {
            if (strchr(host, ':') != NULL)
                return MCL__URL_FAIL("%s: an IPv6 address must be written in brackets", url);
            return MCL__URL_FAIL("%s: '%s' is not a numeric IPv4 address (host names are not "
                                 "resolved)",
                                 url, host);
        }
        uint32_t a = ntohl(u->group4.s_addr);
        if ((a >> 28) != 0xe)
            return MCL__URL_FAIL("%s: %s is not a multicast address (IPv4 multicast is "
                                 "224.0.0.0/4)",
                                 url, host);
        inet_ntop(AF_INET, &u->group4, u->group, sizeof(u->group));
    }

    const char *q = hend;
    c->port = MCL_DEFAULT_PORT;
    if (*q == ':') {
        const char *pe = q + 1;
        while (*pe != '\0' && *pe != '?' && *pe != '/')
            pe++;
        uint64_t port;
        if (!mcl__url_uint(q + 1, (size_t)(pe - q - 1), 65535, &port))
            return MCL__URL_FAIL("%s: port '%.*s' is not an integer 0..65535", url,
                                 (int)(pe - q - 1), q + 1);
        c->port = (uint16_t)port;
        q = pe;
    }
    if (*q == '/')
        q++; // tolerate "udp://group:port/?opts"
    if (*q != '\0' && *q != '?')
        return MCL__URL_FAIL("%s: unexpected '%s' after the address", url, q);
    *qp = q;
    return MCL_OK;
}

static mcl_err
udp_parse_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
                 const char *val, size_t vlen, char *errbuf, size_t errlen)
{
    mcl__udp_opts *u = opts(c);
    uint64_t v;
    if (MCL__KEY_IS("ttl")) {
        if (!mcl__url_uint(val, vlen, 255, &v))
            return MCL__URL_FAIL("%s: ttl '%.*s' is not an integer 0..255", url, (int)vlen, val);
        u->ttl = (int)v;
    } else if (MCL__KEY_IS("loop")) {
        if (vlen == 1 && (val[0] == '0' || val[0] == '1'))
            u->loop = val[0] == '1';
        else if ((vlen == 4 && memcmp(val, "true", 4) == 0) ||
                 (vlen == 5 && memcmp(val, "false", 5) == 0))
            u->loop = val[0] == 't';
        else
            return MCL__URL_FAIL("%s: loop '%.*s' must be 0 or 1", url, (int)vlen, val);
    } else if (MCL__KEY_IS("iface")) {
        if (!iface_ok(val, vlen))
            return MCL__URL_FAIL("%s: iface '%.*s' is not an interface name or address (1..%d "
                                 "of letters, digits and ._-:@)",
                                 url, (int)vlen, val, MCL__IFACE_MAX - 1);
        if (u->iface[0] != '\0')
            return MCL__URL_FAIL("%s: the interface is given twice (iface= and %%zone)", url);
        memcpy(u->iface, val, vlen);
        u->iface[vlen] = '\0';
    } else { // rcvbuf, sndbuf
        if (!mcl__url_size(val, vlen, (uint64_t)1 << 31, &v))
            return MCL__URL_FAIL("%s: %.*s '%.*s' is not a size up to 2G", url, (int)klen, key,
                                 (int)vlen, val);
        if (key[0] == 'r')
            u->rcvbuf = (size_t)v;
        else
            u->sndbuf = (size_t)v;
    }
    return MCL_OK;
}

static mcl_err
udp_finish(struct mcl_connection *c, const char *url, char *errbuf, size_t errlen)
{
    const mcl__udp_opts *u = opts(c);
    size_t maxd = u->family == 6 ? MCL__MAX_DGRAM : MAX_DGRAM4;
    if (c->dgram > maxd)
        return MCL__URL_FAIL("%s: dgram %zu exceeds the IPv%d limit of %zu", url, c->dgram,
                             u->family, maxd);
    return MCL_OK;
}

static void
udp_canon(struct mcl_connection *c)
{
    const mcl__udp_opts *u = opts(c);
    mcl__canon k;
    mcl__canon_start(&k, c->url, sizeof(c->url));
    if (u->family == 6)
        mcl__canon_text(&k, "udp://[%s]:%u", u->group, (unsigned)c->port);
    else
        mcl__canon_text(&k, "udp://%s:%u", u->group, (unsigned)c->port);
    if (u->iface[0] != '\0')
        mcl__canon_opt(&k, "iface=%s", u->iface);
    if (u->ttl != DEF_TTL)
        mcl__canon_opt(&k, "ttl=%d", u->ttl);
    if (!u->loop)
        mcl__canon_opt(&k, "loop=0");
    if (u->rcvbuf != MCL__DEF_RCVBUF)
        mcl__canon_size(&k, "rcvbuf", u->rcvbuf);
    if (u->sndbuf != 0)
        mcl__canon_size(&k, "sndbuf", u->sndbuf);
    if (c->maxmsg != MCL__DEF_MAXMSG)
        mcl__canon_size(&k, "maxmsg", c->maxmsg);
    if (c->dgram != MCL__DEF_DGRAM)
        mcl__canon_size(&k, "dgram", c->dgram);
    if (c->expire_ms != MCL__DEF_EXPIRE_MS)
        mcl__canon_opt(&k, "expire=%u", (unsigned)c->expire_ms);
    if (c->partmem != MCL__DEF_PARTMEM)
        mcl__canon_size(&k, "partmem", c->partmem);
    if (c->batch_us != 0)
        mcl__canon_opt(&k, "batch=%u", (unsigned)c->batch_us);
    mcl__canon_bcast_opts(&k, c);
}

static const char *const udp_keys[] = {"ttl", "loop", "iface", "rcvbuf", "sndbuf", NULL};

extern const mcl__bcast_ops mcl__udp_bcast_ops; // udp.c

const mcl__tport mcl__udp_tport = {
    .scheme = "udp",
    .family = "udp://",
    .example = "udp://239.255.26.9:0?iface=lo&ttl=0",
    .caps = MCL__TP_FRAGMENT | MCL__TP_FORK_FD | MCL__TP_XPROCESS,
    .opts_size = sizeof(mcl__udp_opts),
    .keys = udp_keys,
    .known = "known: ttl, iface, loop, rcvbuf, sndbuf, maxmsg, dgram, expire, partmem, batch, "
             "rate, msgrate, heartbeat, silent, key, encrypt, skew",
    .defaults = udp_defaults,
    .parse_addr = udp_parse_addr,
    .parse_option = udp_parse_option,
    .finish = udp_finish,
    .canon = udp_canon,
    .bcast = &mcl__udp_bcast_ops,
};

// --- public getters of UDP fields (neutral values for other transports) -------------------------

static const mcl__udp_opts *
udp_of(const mcl_connection *conn)
{
    return conn != NULL && conn->tp == &mcl__udp_tport ? mcl__udp_opts_of(conn) : NULL;
}

int
mcl_connection_family(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->family : 0;
}
const char *
mcl_connection_group(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->group : "";
}
int
mcl_connection_ttl(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->ttl : 0;
}
const char *
mcl_connection_iface(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->iface : "";
}
bool
mcl_connection_loop(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->loop : false;
}
size_t
mcl_connection_rcvbuf(const mcl_connection *conn)
{
    const mcl__udp_opts *u = udp_of(conn);
    return u ? u->rcvbuf : 0;
}
