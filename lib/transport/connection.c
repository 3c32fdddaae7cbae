// URL parsing for connections. Strict: anything not understood is an error that names the part.
#define _GNU_SOURCE
#include "connection_int.h"
#include "../core/internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    DEF_TTL = 1,
    DEF_DGRAM = 65000,
    MIN_DGRAM = 1200,
    MAX_DGRAM4 = 65507, // 65535 - 20 (IPv4) - 8 (UDP)
    MAX_DGRAM6 = 65527, // 65535 - 8 (UDP); the IPv6 header is not in the payload length
    DEF_EXPIRE_MS = 2000,
    DEF_LINGER_MS = 1000,
    IPC_PATH_MAX = 107, // sun_path less the NUL
};
#define DEF_MAXMSG ((size_t)64 << 20)
#define DEF_PARTMEM ((size_t)256 << 20)
#define MAX_MAXMSG ((size_t)UINT32_MAX)

static void
conn_defaults(struct mcl_connection *c)
{
    memset(c, 0, sizeof(*c));
    c->ttl = DEF_TTL;
    c->loop = true;
    c->rcvbuf = MCL__DEF_RCVBUF;
    c->sndbuf = 0;
    c->maxmsg = DEF_MAXMSG;
    c->dgram = DEF_DGRAM;
    c->expire_ms = DEF_EXPIRE_MS;
    c->partmem = DEF_PARTMEM;
    c->ztimeout_ms = -1;
    c->linger_ms = DEF_LINGER_MS;
}

// Parses a decimal unsigned integer that must consume all of [s, s+n). No sign, no spaces.
static bool
parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

// SIZE = digits with an optional k/K, m/M, g/G suffix (powers of 1024).
static bool
parse_size(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    unsigned shift = 0;
    if (n > 0) {
        switch (s[n - 1]) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
    }
    uint64_t v;
    if (!parse_uint(s, shift ? n - 1 : n, UINT64_MAX >> 30, &v))
        return false;
    v <<= shift;
    if (v > max)
        return false;
    *out = v;
    return true;
}

#define URL_FAIL(...) mcl__fail(MCL_EURL, errbuf, errlen, "url", __VA_ARGS__)

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

static mcl_err
parse_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
             const char *val, size_t vlen, bool *seen_dgram, char *errbuf, size_t errlen)
{
    uint64_t v;
#define KEY_IS(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
    bool udp_only = KEY_IS("ttl") || KEY_IS("loop") || KEY_IS("iface") || KEY_IS("rcvbuf") ||
                    KEY_IS("sndbuf") || KEY_IS("dgram") || KEY_IS("expire") ||
                    KEY_IS("partmem");
    bool zmq_only = KEY_IS("mode") || KEY_IS("hwm") || KEY_IS("drop") || KEY_IS("timeout") ||
                    KEY_IS("linger") || KEY_IS("curve") || KEY_IS("curve_server") ||
                    KEY_IS("curve_clients");
    if (udp_only && c->transport != MCL__TP_UDP)
        return URL_FAIL("%s: option '%.*s' applies to udp:// connections only", url, (int)klen,
                        key);
    if (zmq_only && c->transport != MCL__TP_ZMQ)
        return URL_FAIL("%s: option '%.*s' applies to zmq+ connections only", url, (int)klen,
                        key);
    if (KEY_IS("mode")) {
        if (vlen == 4 && memcmp(val, "bind", 4) == 0)
            c->zmode = MCL__ZMODE_BIND;
        else if (vlen == 7 && memcmp(val, "connect", 7) == 0)
            c->zmode = MCL__ZMODE_CONNECT;
        else
            return URL_FAIL("%s: mode '%.*s' must be bind or connect", url, (int)vlen, val);
    } else if (KEY_IS("hwm")) {
        if (!parse_uint(val, vlen, 100000000, &v))
            return URL_FAIL("%s: hwm '%.*s' is not a number of messages 0..100000000", url,
                            (int)vlen, val);
        c->hwm = (int)v;
    } else if (KEY_IS("drop")) {
        if (vlen != 1 || (val[0] != '0' && val[0] != '1'))
            return URL_FAIL("%s: drop '%.*s' must be 0 or 1", url, (int)vlen, val);
        c->zdrop = val[0] == '1';
    } else if (KEY_IS("timeout")) {
        if (vlen == 3 && memcmp(val, "inf", 3) == 0)
            c->ztimeout_ms = -1;
        else if (parse_uint(val, vlen, 3600000, &v))
            c->ztimeout_ms = (int)v;
        else
            return URL_FAIL("%s: timeout '%.*s' is not a number of milliseconds 0..3600000 or "
                            "inf",
                            url, (int)vlen, val);
    } else if (KEY_IS("linger")) {
        if (!parse_uint(val, vlen, 3600000, &v))
            return URL_FAIL("%s: linger '%.*s' is not a number of milliseconds 0..3600000", url,
                            (int)vlen, val);
        c->linger_ms = (int)v;
    } else if (KEY_IS("curve") || KEY_IS("curve_server") || KEY_IS("curve_clients")) {
        char *dst = KEY_IS("curve") ? c->curve_key
                    : KEY_IS("curve_server") ? c->curve_server
                                             : c->curve_clients;
        if (vlen == 0 || vlen >= MCL__KEYPATH_MAX)
            return URL_FAIL("%s: %.*s needs a key file or key (1..%d characters)", url,
                            (int)klen, key, MCL__KEYPATH_MAX - 1);
        memcpy(dst, val, vlen);
        dst[vlen] = '\0';
    } else if (KEY_IS("ttl")) {
        if (!parse_uint(val, vlen, 255, &v))
            return URL_FAIL("%s: ttl '%.*s' is not an integer 0..255", url, (int)vlen, val);
        c->ttl = (int)v;
    } else if (KEY_IS("loop")) {
        if (vlen == 1 && (val[0] == '0' || val[0] == '1'))
            c->loop = val[0] == '1';
        else if ((vlen == 4 && memcmp(val, "true", 4) == 0) ||
                 (vlen == 5 && memcmp(val, "false", 5) == 0))
            c->loop = val[0] == 't';
        else
            return URL_FAIL("%s: loop '%.*s' must be 0 or 1", url, (int)vlen, val);
    } else if (KEY_IS("iface")) {
        if (!iface_ok(val, vlen))
            return URL_FAIL("%s: iface '%.*s' is not an interface name or address (1..%d of "
                            "letters, digits and ._-:@)",
                            url, (int)vlen, val, MCL__IFACE_MAX - 1);
        if (c->iface[0] != '\0')
            return URL_FAIL("%s: the interface is given twice (iface= and %%zone)", url);
        memcpy(c->iface, val, vlen);
        c->iface[vlen] = '\0';
    } else if (KEY_IS("rcvbuf") || KEY_IS("sndbuf")) {
        if (!parse_size(val, vlen, (uint64_t)1 << 31, &v))
            return URL_FAIL("%s: %.*s '%.*s' is not a size up to 2G", url, (int)klen, key,
                            (int)vlen, val);
        if (key[0] == 'r')
            c->rcvbuf = (size_t)v;
        else
            c->sndbuf = (size_t)v;
    } else if (KEY_IS("maxmsg")) {
        if (!parse_size(val, vlen, MAX_MAXMSG, &v) || v == 0)
            return URL_FAIL("%s: maxmsg '%.*s' is not a size 1..4G-1", url, (int)vlen, val);
        c->maxmsg = (size_t)v;
    } else if (KEY_IS("dgram")) {
        if (!parse_size(val, vlen, MAX_DGRAM6, &v) || v < MIN_DGRAM)
            return URL_FAIL("%s: dgram '%.*s' is not a size %d..%d", url, (int)vlen, val,
                            MIN_DGRAM, MAX_DGRAM6);
        c->dgram = (size_t)v;
        *seen_dgram = true;
    } else if (KEY_IS("expire")) {
        if (!parse_uint(val, vlen, 3600000, &v) || v == 0)
            return URL_FAIL("%s: expire '%.*s' is not a number of milliseconds 1..3600000", url,
                            (int)vlen, val);
        c->expire_ms = (uint32_t)v;
    } else if (KEY_IS("batch")) {
        if (!parse_uint(val, vlen, 1000000, &v))
            return URL_FAIL("%s: batch '%.*s' is not a number of microseconds 0..1000000", url,
                            (int)vlen, val);
        c->batch_us = (uint32_t)v;
    } else if (KEY_IS("partmem")) {
        if (!parse_size(val, vlen, (uint64_t)1 << 40, &v) || v == 0)
            return URL_FAIL("%s: partmem '%.*s' is not a size", url, (int)vlen, val);
        c->partmem = (size_t)v;
    } else {
        if (c->transport == MCL__TP_ZMQ)
            return URL_FAIL("%s: unknown option '%.*s' (known for zmq+: mode, hwm, drop, "
                            "timeout, linger, maxmsg, batch, curve, curve_server, "
                            "curve_clients)",
                            url, (int)klen, key);
        return URL_FAIL("%s: unknown option '%.*s' (known: ttl, iface, loop, rcvbuf, sndbuf, "
                        "maxmsg, dgram, expire, partmem, batch)",
                        url, (int)klen, key);
    }
#undef KEY_IS
    return MCL_OK;
}

static void
append(char *buf, size_t cap, size_t *len, const char *fmt, ...) MCL__PRINTF(4, 5);

#include <stdarg.h>
static void
append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
}

static void
append_size(char *buf, size_t cap, size_t *len, char sep, const char *key, size_t v)
{
    if (v != 0 && v % ((size_t)1 << 30) == 0)
        append(buf, cap, len, "%c%s=%zuG", sep, key, v >> 30);
    else if (v != 0 && v % ((size_t)1 << 20) == 0)
        append(buf, cap, len, "%c%s=%zuM", sep, key, v >> 20);
    else if (v != 0 && v % 1024 == 0)
        append(buf, cap, len, "%c%s=%zuk", sep, key, v >> 10);
    else
        append(buf, cap, len, "%c%s=%zu", sep, key, v);
}

static void
canon_zmq(struct mcl_connection *c)
{
    size_t n = 0;
    char *b = c->url;
    size_t cap = sizeof(c->url);
    if (c->zkind == MCL__ZMQ_TCP && strchr(c->zaddr, ':') != NULL)
        append(b, cap, &n, "zmq+tcp://[%s]:%u", c->zaddr, (unsigned)c->port);
    else if (c->zkind == MCL__ZMQ_TCP)
        append(b, cap, &n, "zmq+tcp://%s:%u", c->zaddr, (unsigned)c->port);
    else
        append(b, cap, &n, "zmq+%s://%s", c->zkind == MCL__ZMQ_IPC ? "ipc" : "inproc", c->zaddr);
    char sep = '?';
    if (c->zmode != MCL__ZMODE_DEFAULT) {
        append(b, cap, &n, "%cmode=%s", sep, c->zmode == MCL__ZMODE_BIND ? "bind" : "connect");
        sep = '&';
    }
    if (c->hwm != 0) {
        append(b, cap, &n, "%chwm=%d", sep, c->hwm);
        sep = '&';
    }
    if (c->zdrop) {
        append(b, cap, &n, "%cdrop=1", sep);
        sep = '&';
    }
    if (c->ztimeout_ms >= 0) {
        append(b, cap, &n, "%ctimeout=%d", sep, c->ztimeout_ms);
        sep = '&';
    }
    if (c->linger_ms != DEF_LINGER_MS) {
        append(b, cap, &n, "%clinger=%d", sep, c->linger_ms);
        sep = '&';
    }
    if (c->maxmsg != DEF_MAXMSG) {
        append_size(b, cap, &n, sep, "maxmsg", c->maxmsg);
        sep = '&';
    }
    if (c->batch_us != 0) {
        append(b, cap, &n, "%cbatch=%u", sep, (unsigned)c->batch_us);
        sep = '&';
    }
    if (c->curve_key[0] != '\0') {
        append(b, cap, &n, "%ccurve=%s", sep, c->curve_key);
        sep = '&';
    }
    if (c->curve_server[0] != '\0') {
        append(b, cap, &n, "%ccurve_server=%s", sep, c->curve_server);
        sep = '&';
    }
    if (c->curve_clients[0] != '\0')
        append(b, cap, &n, "%ccurve_clients=%s", sep, c->curve_clients);
}

void
mcl__connection_canon(struct mcl_connection *c)
{
    if (c->transport == MCL__TP_ZMQ) {
        canon_zmq(c);
        return;
    }
    size_t n = 0;
    char *b = c->url;
    size_t cap = sizeof(c->url);
    if (c->family == 6)
        append(b, cap, &n, "udp://[%s]:%u", c->group, (unsigned)c->port);
    else
        append(b, cap, &n, "udp://%s:%u", c->group, (unsigned)c->port);
    char sep = '?';
    if (c->iface[0] != '\0') {
        append(b, cap, &n, "%ciface=%s", sep, c->iface);
        sep = '&';
    }
    if (c->ttl != DEF_TTL) {
        append(b, cap, &n, "%cttl=%d", sep, c->ttl);
        sep = '&';
    }
    if (!c->loop) {
        append(b, cap, &n, "%cloop=0", sep);
        sep = '&';
    }
#define OPT_SIZE(field, key, def)                                                                  \
    if (c->field != (def)) {                                                                       \
        append_size(b, cap, &n, sep, key, c->field);                                               \
        sep = '&';                                                                                 \
    }
    OPT_SIZE(rcvbuf, "rcvbuf", MCL__DEF_RCVBUF)
    OPT_SIZE(sndbuf, "sndbuf", (size_t)0)
    OPT_SIZE(maxmsg, "maxmsg", DEF_MAXMSG)
    OPT_SIZE(dgram, "dgram", (size_t)DEF_DGRAM)
#undef OPT_SIZE
    if (c->expire_ms != DEF_EXPIRE_MS) {
        append(b, cap, &n, "%cexpire=%u", sep, (unsigned)c->expire_ms);
        sep = '&';
    }
    if (c->partmem != DEF_PARTMEM) {
        append_size(b, cap, &n, sep, "partmem", c->partmem);
        sep = '&';
    }
    if (c->batch_us != 0)
        append(b, cap, &n, "%cbatch=%u", sep, (unsigned)c->batch_us);
}

// Parses "?KEY=VALUE&..." at q (or nothing when *q is NUL).
static mcl_err
parse_options(struct mcl_connection *c, const char *url, const char *q, bool *seen_dgram,
              char *errbuf, size_t errlen)
{
    if (*q == '?') {
        q++;
        const char *opts = q;
        while (*q != '\0') {
            const char *amp = strchr(q, '&');
            const char *end = amp ? amp : q + strlen(q);
            const char *eq = memchr(q, '=', (size_t)(end - q));
            if (eq == NULL || eq == q)
                return URL_FAIL("%s: option '%.*s' is not KEY=VALUE", url, (int)(end - q), q);
            // The same option twice is an error, not "the last one wins".
            size_t kl = (size_t)(eq - q);
            for (const char *o = opts; o < q;) {
                const char *oe = strchr(o, '=');
                if (oe != NULL && (size_t)(oe - o) == kl && memcmp(o, q, kl) == 0)
                    return URL_FAIL("%s: option '%.*s' is given twice", url, (int)kl, q);
                const char *na = strchr(o, '&');
                o = na ? na + 1 : q;
            }
            mcl_err rv = parse_option(c, url, q, (size_t)(eq - q), eq + 1, (size_t)(end - eq - 1),
                                      seen_dgram, errbuf, errlen);
            if (rv != MCL_OK)
                return rv;
            q = amp ? amp + 1 : end;
        }
    }
    return MCL_OK;
}

static bool
zhost_ok(const char *h, size_t n)
{
    if (n == 0 || n >= MCL__ZADDR_MAX)
        return false;
    if (n == 1 && h[0] == '*')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return true;
}

// zmq+KIND://ADDRESS[?options]; kind points after "zmq+", rest after "://".
static mcl_err
parse_zmq(struct mcl_connection *c, const char *url, const char *kind, size_t klen,
          const char *rest, char *errbuf, size_t errlen)
{
    c->transport = MCL__TP_ZMQ;
    c->family = 0;
    c->ttl = 0;
    c->loop = false;
    c->rcvbuf = 0;
    c->dgram = 0;
    if (klen == 3 && memcmp(kind, "tcp", 3) == 0)
        c->zkind = MCL__ZMQ_TCP;
    else if (klen == 3 && memcmp(kind, "ipc", 3) == 0)
        c->zkind = MCL__ZMQ_IPC;
    else if (klen == 6 && memcmp(kind, "inproc", 6) == 0)
        c->zkind = MCL__ZMQ_INPROC;
    else if ((klen == 4 && memcmp(kind, "epgm", 4) == 0) ||
             (klen == 3 && memcmp(kind, "pgm", 3) == 0) ||
             (klen == 4 && memcmp(kind, "norm", 4) == 0))
        return URL_FAIL("%s: zmq+%.*s is not supported: Debian's libzmq/OpenPGM writes warnings "
                        "to stdout and has aborted subscribers on this machine (docs/zmq.md); use "
                        "udp:// for multicast and mcl-bridge to join islands over zmq+tcp",
                        url, (int)klen, kind);
    else
        return URL_FAIL("%s: unknown ZeroMQ transport '%.*s' (supported: zmq+tcp, zmq+ipc, "
                        "zmq+inproc)",
                        url, (int)klen, kind);
    const char *q = strchr(rest, '?');
    const char *aend = q ? q : rest + strlen(rest);
    size_t alen = (size_t)(aend - rest);
    if (c->zkind == MCL__ZMQ_TCP) {
        const char *h = rest, *he;
        if (*h == '[') {
            const char *close = memchr(h, ']', alen);
            if (close == NULL)
                return URL_FAIL("%s: '[' without ']' around the IPv6 address", url);
            h++;
            he = close;
            struct in6_addr a6;
            char tmp[INET6_ADDRSTRLEN];
            size_t hl = (size_t)(he - h);
            if (hl == 0 || hl >= sizeof(tmp))
                return URL_FAIL("%s: bad IPv6 address", url);
            memcpy(tmp, h, hl);
            tmp[hl] = '\0';
            if (inet_pton(AF_INET6, tmp, &a6) != 1)
                return URL_FAIL("%s: '%s' is not an IPv6 address", url, tmp);
            inet_ntop(AF_INET6, &a6, c->zaddr, sizeof(c->zaddr));
            he++;
        } else {
            he = memchr(h, ':', alen);
            if (he == NULL)
                return URL_FAIL("%s: missing port (zmq+tcp://HOST:PORT; port 0 or * binds a "
                                "free port)",
                                url);
            if (!zhost_ok(h, (size_t)(he - h)))
                return URL_FAIL("%s: '%.*s' is not a host name, IPv4 address or *", url,
                                (int)(he - h), h);
            memcpy(c->zaddr, h, (size_t)(he - h));
            c->zaddr[he - h] = '\0';
        }
        if (he >= aend || *he != ':')
            return URL_FAIL("%s: missing port (zmq+tcp://HOST:PORT)", url);
        const char *ps = he + 1;
        size_t pl = (size_t)(aend - ps);
        if (pl > 0 && ps[pl - 1] == '/')
            pl--; // tolerate "zmq+tcp://host:port/?opts"
        uint64_t port;
        if (pl == 1 && ps[0] == '*')
            port = 0;
        else if (!parse_uint(ps, pl, 65535, &port))
            return URL_FAIL("%s: port '%.*s' is not an integer 0..65535", url, (int)pl, ps);
        c->port = (uint16_t)port;
    } else {
        if (alen == 0)
            return URL_FAIL("%s: missing %s", url,
                            c->zkind == MCL__ZMQ_IPC ? "socket path" : "endpoint name");
        if (alen >= MCL__ZADDR_MAX || (c->zkind == MCL__ZMQ_IPC && alen > IPC_PATH_MAX))
            return URL_FAIL("%s: address longer than %d bytes", url,
                            c->zkind == MCL__ZMQ_IPC ? IPC_PATH_MAX : MCL__ZADDR_MAX - 1);
        memcpy(c->zaddr, rest, alen);
        c->zaddr[alen] = '\0';
        c->port = 0;
    }
    bool seen_dgram = false;
    mcl_err rv = parse_options(c, url, q ? q : aend, &seen_dgram, errbuf, errlen);
    if (rv != MCL_OK)
        return rv;
    if (c->curve_clients[0] != '\0' && (c->curve_key[0] == '\0' || c->curve_server[0] != '\0'))
        return URL_FAIL("%s: curve_clients is for the CURVE server: the side with curve= and no "
                        "curve_server=",
                        url);
    if ((c->curve_key[0] != '\0' || c->curve_server[0] != '\0') && c->zkind == MCL__ZMQ_INPROC)
        return URL_FAIL("%s: CURVE is for zmq+tcp and zmq+ipc (inproc never leaves the "
                        "process)",
                        url);
    mcl__connection_canon(c);
    return MCL_OK;
}

static mcl_err
parse_into(struct mcl_connection *c, const char *url, char *errbuf, size_t errlen)
{
    conn_defaults(c);
    size_t ulen = strlen(url);
    if (ulen == 0)
        return URL_FAIL("empty URL (expected udp://GROUP:PORT)");
    if (ulen >= MCL__URL_MAX - 64)
        return URL_FAIL("URL is too long (%zu bytes)", ulen);
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return URL_FAIL("%s: invalid character at offset %zu", url, i);

    const char *p = strstr(url, "://");
    if (p == NULL)
        return URL_FAIL("%s: missing scheme (expected udp://GROUP:PORT)", url);
    size_t slen = (size_t)(p - url);
    if (!(slen == 3 && memcmp(url, "udp", 3) == 0)) {
        if (slen > 4 && memcmp(url, "zmq+", 4) == 0)
            return parse_zmq(c, url, url + 4, slen - 4, p + 3, errbuf, errlen);
        return URL_FAIL("%s: unknown scheme '%.*s' (supported: udp, zmq+tcp, zmq+ipc, "
                        "zmq+inproc)",
                        url, (int)slen, url);
    }
    p += 3;

    // Host part.
    char host[INET6_ADDRSTRLEN + MCL__IFACE_MAX + 2];
    const char *hend;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL)
            return URL_FAIL("%s: '[' without ']' around the IPv6 address", url);
        size_t hl = (size_t)(close - p - 1);
        if (hl == 0 || hl >= sizeof(host))
            return URL_FAIL("%s: bad IPv6 address length", url);
        memcpy(host, p + 1, hl);
        host[hl] = '\0';
        c->family = 6;
        hend = close + 1;
    } else {
        const char *c1 = strchr(p, ':');
        const char *qm = strchr(p, '?');
        if (c1 != NULL && (qm == NULL || c1 < qm) && strchr(c1 + 1, ':') != NULL &&
            (qm == NULL || strchr(c1 + 1, ':') < qm))
            return URL_FAIL("%s: an IPv6 address must be written in brackets, e.g. "
                            "udp://[ff15::1]:26000",
                            url);
        hend = p;
        while (*hend != '\0' && *hend != ':' && *hend != '?' && *hend != '/')
            hend++;
        size_t hl = (size_t)(hend - p);
        if (hl == 0)
            return URL_FAIL("%s: missing group address", url);
        if (hl >= sizeof(host))
            return URL_FAIL("%s: group address too long", url);
        memcpy(host, p, hl);
        host[hl] = '\0';
        c->family = 4;
    }

    if (c->family == 6) {
        char *zone = strchr(host, '%');
        if (zone != NULL) {
            *zone++ = '\0';
            if (!iface_ok(zone, strlen(zone)))
                return URL_FAIL("%s: '%s' after '%%' is not an interface name", url, zone);
            snprintf(c->iface, sizeof(c->iface), "%s", zone);
        }
        if (inet_pton(AF_INET6, host, &c->group6) != 1)
            return URL_FAIL("%s: '%s' is not an IPv6 address", url, host);
        if (c->group6.s6_addr[0] != 0xff)
            return URL_FAIL("%s: %s is not a multicast address (IPv6 multicast is ff00::/8)", url,
                            host);
        inet_ntop(AF_INET6, &c->group6, c->group, sizeof(c->group));
    } else {
        // inet_pton accepts only the four-part dotted form: no hostnames, no shorthand.
        if (inet_pton(AF_INET, host, &c->group4) != 1) {
            if (strchr(host, ':') != NULL)
                return URL_FAIL("%s: an IPv6 address must be written in brackets", url);
            return URL_FAIL("%s: '%s' is not a numeric IPv4 address (host names are not "
                            "resolved)",
                            url, host);
        }
        uint32_t a = ntohl(c->group4.s_addr);
        if ((a >> 28) != 0xe)
            return URL_FAIL("%s: %s is not a multicast address (IPv4 multicast is 224.0.0.0/4)",
                            url, host);
        inet_ntop(AF_INET, &c->group4, c->group, sizeof(c->group));
    }

    // Port.
    const char *q = hend;
    c->port = MCL_DEFAULT_PORT;
    if (*q == ':') {
        const char *pe = q + 1;
        while (*pe != '\0' && *pe != '?' && *pe != '/')
            pe++;
        uint64_t port;
        if (!parse_uint(q + 1, (size_t)(pe - q - 1), 65535, &port))
            return URL_FAIL("%s: port '%.*s' is not an integer 0..65535", url,
                            (int)(pe - q - 1), q + 1);
        c->port = (uint16_t)port;
        q = pe;
    }
    if (*q == '/')
        q++; // tolerate "udp://group:port/?opts"
    if (*q != '\0' && *q != '?')
        return URL_FAIL("%s: unexpected '%s' after the address", url, q);

    // Options.
    bool seen_dgram = false;
    mcl_err orv = parse_options(c, url, q, &seen_dgram, errbuf, errlen);
    if (orv != MCL_OK)
        return orv;
    size_t maxd = c->family == 6 ? MAX_DGRAM6 : MAX_DGRAM4;
    if (c->dgram > maxd) {
        if (seen_dgram)
            return URL_FAIL("%s: dgram %zu exceeds the IPv%d limit of %zu", url, c->dgram,
                            c->family, maxd);
        c->dgram = maxd;
    }
    mcl__connection_canon(c);
    return MCL_OK;
}

mcl_err
mcl_connection_parse(mcl_connection **connp, const char *url, char *errbuf, size_t errlen)
{
    if (connp != NULL)
        *connp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (connp == NULL || url == NULL)
        return mcl__fail(MCL_EINVAL, errbuf, errlen, "url", "NULL argument");
    struct mcl_connection tmp;
    mcl_err rv = parse_into(&tmp, url, errbuf, errlen);
    if (rv != MCL_OK)
        return rv;
    struct mcl_connection *c = mcl__alloc(sizeof(*c));
    if (c == NULL)
        return mcl__fail(MCL_ENOMEM, errbuf, errlen, "url", "out of memory");
    *c = tmp;
    *connp = c;
    return MCL_OK;
}

mcl_err
mcl_connection_default(mcl_connection **connp, char *errbuf, size_t errlen)
{
    const char *env = getenv("MCL_URL");
    if (env == NULL || env[0] == '\0')
        env = MCL_DEFAULT_URL;
    mcl_err rv = mcl_connection_parse(connp, env, errbuf, errlen);
    if (rv == MCL_EURL && errbuf != NULL && errlen > 0 && env != (const char *)MCL_DEFAULT_URL) {
        char tmp[512];
        snprintf(tmp, sizeof(tmp), "MCL_URL: %s", errbuf);
        snprintf(errbuf, errlen, "%s", tmp);
    }
    return rv;
}

mcl_err
mcl_connection_dup(mcl_connection **connp, const mcl_connection *conn)
{
    if (connp != NULL)
        *connp = NULL;
    if (connp == NULL || conn == NULL)
        return MCL_EINVAL;
    struct mcl_connection *c = mcl__alloc(sizeof(*c));
    if (c == NULL)
        return MCL_ENOMEM;
    *c = *conn;
    *connp = c;
    return MCL_OK;
}

void
mcl_connection_free(mcl_connection *conn)
{
    mcl__free(conn);
}

const char *
mcl_connection_url(const mcl_connection *conn)
{
    return conn ? conn->url : "";
}

bool
mcl_connection_equal(const mcl_connection *a, const mcl_connection *b)
{
    return a != NULL && b != NULL && strcmp(a->url, b->url) == 0;
}

const char *
mcl_connection_scheme(const mcl_connection *conn)
{
    if (conn == NULL || conn->transport == MCL__TP_UDP)
        return "udp";
    return conn->zkind == MCL__ZMQ_TCP   ? "zmq+tcp"
           : conn->zkind == MCL__ZMQ_IPC ? "zmq+ipc"
                                         : "zmq+inproc";
}

int
mcl_connection_family(const mcl_connection *conn)
{
    return conn ? conn->family : 0;
}
const char *
mcl_connection_group(const mcl_connection *conn)
{
    return conn ? conn->group : "";
}
uint16_t
mcl_connection_port(const mcl_connection *conn)
{
    return conn ? conn->port : 0;
}
int
mcl_connection_ttl(const mcl_connection *conn)
{
    return conn ? conn->ttl : 0;
}
const char *
mcl_connection_iface(const mcl_connection *conn)
{
    return conn ? conn->iface : "";
}
bool
mcl_connection_loop(const mcl_connection *conn)
{
    return conn ? conn->loop : false;
}
size_t
mcl_connection_rcvbuf(const mcl_connection *conn)
{
    return conn ? conn->rcvbuf : 0;
}
size_t
mcl_connection_maxmsg(const mcl_connection *conn)
{
    return conn ? conn->maxmsg : 0;
}
size_t
mcl_connection_dgram(const mcl_connection *conn)
{
    return conn ? conn->dgram : 0;
}
