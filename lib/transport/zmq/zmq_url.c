// SPDX-License-Identifier: BSD-3-Clause
// The zmq+ grammar (include/mcl/connection.h, docs/zmq.md): zmq+tcp://HOST:PORT,
// zmq+ipc://PATH and zmq+inproc://NAME, their options, canonical forms, and the three
// descriptors (one per scheme: they share everything but their capabilities).
#include "zmq_int.h"

#include "../../core/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

enum {
    DEF_LINGER_MS = 1000,
    DEF_STALL_MS = 5000,
    IPC_PATH_MAX = 107, // sun_path less the NUL
};

extern const mcl__tport mcl__zmq_tcp_tport, mcl__zmq_ipc_tport, mcl__zmq_inproc_tport;

static mcl__zmq_opts *
opts(struct mcl_connection *c)
{
    return (mcl__zmq_opts *)mcl__tport_opts(c);
}

static void
zmq_defaults(struct mcl_connection *c)
{
    mcl__zmq_opts *o = opts(c);
    o->kind = c->tp == &mcl__zmq_tcp_tport   ? MCL__ZMQ_TCP
              : c->tp == &mcl__zmq_ipc_tport ? MCL__ZMQ_IPC
                                             : MCL__ZMQ_INPROC;
    o->timeout_ms = -1;
    o->stall_ms = DEF_STALL_MS;
    o->linger_ms = DEF_LINGER_MS;
    o->coalesce = true;
}

static bool
host_ok(const char *h, size_t n)
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

static mcl_err
zmq_parse_addr(struct mcl_connection *c, const char *url, const char *rest, const char **qp,
               char *errbuf, size_t errlen)
{
    mcl__zmq_opts *o = opts(c);
    const char *q = strchr(rest, '?');
    const char *aend = q ? q : rest + strlen(rest);
    size_t alen = (size_t)(aend - rest);
    *qp = aend;
    c->port = 0;
    if (o->kind != MCL__ZMQ_TCP) {
        if (alen == 0)
            return MCL__URL_FAIL("%s: missing %s", url,
                                 o->kind == MCL__ZMQ_IPC ? "socket path" : "endpoint name");
        if (alen >= MCL__ZADDR_MAX || (o->kind == MCL__ZMQ_IPC && alen > IPC_PATH_MAX))
            return MCL__URL_FAIL("%s: address longer than %d bytes", url,
                                 o->kind == MCL__ZMQ_IPC ? IPC_PATH_MAX : MCL__ZADDR_MAX - 1);
        memcpy(o->addr, rest, alen);
        o->addr[alen] = '\0';
        return MCL_OK;
    }
    const char *h = rest, *he;
    if (*h == '[') {
        const char *close = memchr(h, ']', alen);
        if (close == NULL)
            return MCL__URL_FAIL("%s: '[' without ']' around the IPv6 address", url);
        h++;
        he = close;
        struct in6_addr a6;
        char tmp[INET6_ADDRSTRLEN];
        size_t hl = (size_t)(he - h);
        if (hl == 0 || hl >= sizeof(tmp))
            return MCL__URL_FAIL("%s: bad IPv6 address", url);
        memcpy(tmp, h, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return MCL__URL_FAIL("%s: '%s' is not an IPv6 address", url, tmp);
        inet_ntop(AF_INET6, &a6, o->addr, sizeof(o->addr));
        he++;
    } else {
        he = memchr(h, ':', alen);
        if (he == NULL)
            return MCL__URL_FAIL("%s: missing port (zmq+tcp://HOST:PORT; port 0 or * binds a "
                                 "free port)",
                                 url);
        if (!host_ok(h, (size_t)(he - h)))
            return MCL__URL_FAIL("%s: '%.*s' is not a host name, IPv4 address or *", url,
                                 (int)(he - h), h);
        memcpy(o->addr, h, (size_t)(he - h));
        o->addr[he - h] = '\0';
    }
    if (he >= aend || *he != ':')
        return MCL__URL_FAIL("%s: missing port (zmq+tcp://HOST:PORT)", url);
    const char *ps = he + 1;
    size_t pl = (size_t)(aend - ps);
    if (pl > 0 && ps[pl - 1] == '/')
        pl--; // tolerate "zmq+tcp://host:port/?opts"
    uint64_t port;
    if (pl == 1 && ps[0] == '*')
        port = 0;
    else if (!mcl__url_uint(ps, pl, 65535, &port))
        return MCL__URL_FAIL("%s: port '%.*s' is not an integer 0..65535", url, (int)pl, ps);
    c->port = (uint16_t)port;
    return MCL_OK;
}

static mcl_err
zmq_parse_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
                 const char *val, size_t vlen, char *errbuf, size_t errlen)
{
    mcl__zmq_opts *o = opts(c);
    uint64_t v;
    if (MCL__KEY_IS("mode")) {
        if (vlen == 4 && memcmp(val, "bind", 4) == 0)
            o->mode = MCL__ZMODE_BIND;
        else if (vlen == 7 && memcmp(val, "connect", 7) == 0)
            o->mode = MCL__ZMODE_CONNECT;
        else
            return MCL__URL_FAIL("%s: mode '%.*s' must be bind or connect", url, (int)vlen, val);
    } else if (MCL__KEY_IS("hwm")) {
        if (!mcl__url_uint(val, vlen, 100000000, &v))
            return MCL__URL_FAIL("%s: hwm '%.*s' is not a number of messages 0..100000000", url,
                                 (int)vlen, val);
        o->hwm = (int)v;
    } else if (MCL__KEY_IS("drop")) {
        if (vlen != 1 || (val[0] != '0' && val[0] != '1'))
            return MCL__URL_FAIL("%s: drop '%.*s' must be 0 or 1", url, (int)vlen, val);
        o->drop = val[0] == '1';
    } else if (MCL__KEY_IS("timeout")) {
        if (vlen == 3 && memcmp(val, "inf", 3) == 0)
            o->timeout_ms = -1;
        else if (mcl__url_uint(val, vlen, 3600000, &v))
            o->timeout_ms = (int)v;
        else
            return MCL__URL_FAIL("%s: timeout '%.*s' is not a number of milliseconds "
                                 "0..3600000 or inf",
                                 url, (int)vlen, val);
    } else if (MCL__KEY_IS("stall")) {
        if (vlen == 3 && memcmp(val, "inf", 3) == 0)
            o->stall_ms = -1;
        else if (mcl__url_uint(val, vlen, 3600000, &v) && v > 0)
            o->stall_ms = (int)v;
        else
            return MCL__URL_FAIL("%s: stall '%.*s' is not a number of milliseconds "
                                 "1..3600000 or inf",
                                 url, (int)vlen, val);
    } else if (MCL__KEY_IS("coalesce")) {
        if (vlen != 1 || (val[0] != '0' && val[0] != '1'))
            return MCL__URL_FAIL("%s: coalesce '%.*s' must be 0 or 1", url, (int)vlen, val);
        o->coalesce = val[0] == '1';
    } else if (MCL__KEY_IS("linger")) {
        if (!mcl__url_uint(val, vlen, 3600000, &v))
            return MCL__URL_FAIL("%s: linger '%.*s' is not a number of milliseconds 0..3600000",
                                 url, (int)vlen, val);
        o->linger_ms = (int)v;
    } else { // curve, curve_server, curve_clients
        char *dst = MCL__KEY_IS("curve")          ? o->curve_key
                    : MCL__KEY_IS("curve_server") ? o->curve_server
                                             : o->curve_clients;
        if (vlen == 0 || vlen >= MCL__KEYPATH_MAX)
            return MCL__URL_FAIL("%s: %.*s needs a key file or key (1..%d characters)", url,
                                 (int)klen, key, MCL__KEYPATH_MAX - 1);
        memcpy(dst, val, vlen);
        dst[vlen] = '\0';
    }
    return MCL_OK;
}

static mcl_err
zmq_finish(struct mcl_connection *c, const char *url, char *errbuf, size_t errlen)
{
    const mcl__zmq_opts *o = opts(c);
    if (o->curve_clients[0] != '\0' && (o->curve_key[0] == '\0' || o->curve_server[0] != '\0'))
        return MCL__URL_FAIL("%s: curve_clients is for the CURVE server: the side with curve= "
                             "and no curve_server=",
                             url);
    if ((o->curve_key[0] != '\0' || o->curve_server[0] != '\0') && o->kind == MCL__ZMQ_INPROC)
        return MCL__URL_FAIL("%s: CURVE is for zmq+tcp and zmq+ipc (inproc never leaves the "
                             "process)",
                             url);
    return MCL_OK;
}

static void
zmq_canon(struct mcl_connection *c)
{
    const mcl__zmq_opts *o = opts(c);
    mcl__canon k;
    mcl__canon_start(&k, c->url, sizeof(c->url));
    if (o->kind == MCL__ZMQ_TCP && strchr(o->addr, ':') != NULL)
        mcl__canon_text(&k, "zmq+tcp://[%s]:%u", o->addr, (unsigned)c->port);
    else if (o->kind == MCL__ZMQ_TCP)
        mcl__canon_text(&k, "zmq+tcp://%s:%u", o->addr, (unsigned)c->port);
    else
        mcl__canon_text(&k, "zmq+%s://%s", o->kind == MCL__ZMQ_IPC ? "ipc" : "inproc", o->addr);
    if (o->mode != MCL__ZMODE_DEFAULT)
        mcl__canon_opt(&k, "mode=%s", o->mode == MCL__ZMODE_BIND ? "bind" : "connect");
    if (o->hwm != 0)
        mcl__canon_opt(&k, "hwm=%d", o->hwm);
    if (o->drop)
        mcl__canon_opt(&k, "drop=1");
    if (o->timeout_ms >= 0)
        mcl__canon_opt(&k, "timeout=%d", o->timeout_ms);
    if (o->stall_ms != DEF_STALL_MS && o->stall_ms < 0)
        mcl__canon_opt(&k, "stall=inf");
    else if (o->stall_ms != DEF_STALL_MS)
        mcl__canon_opt(&k, "stall=%d", o->stall_ms);
    if (o->linger_ms != DEF_LINGER_MS)
        mcl__canon_opt(&k, "linger=%d", o->linger_ms);
    if (c->maxmsg != MCL__DEF_MAXMSG)
        mcl__canon_size(&k, "maxmsg", c->maxmsg);
    if (c->batch_us != 0)
        mcl__canon_opt(&k, "batch=%u", (unsigned)c->batch_us);
    if (!o->coalesce)
        mcl__canon_opt(&k, "coalesce=0");
    mcl__canon_bcast_opts(&k, c);
    if (o->curve_key[0] != '\0')
        mcl__canon_opt(&k, "curve=%s", o->curve_key);
    if (o->curve_server[0] != '\0')
        mcl__canon_opt(&k, "curve_server=%s", o->curve_server);
    if (o->curve_clients[0] != '\0')
        mcl__canon_opt(&k, "curve_clients=%s", o->curve_clients);
}

// Other zmq+ schemes: say why they are not here.
static mcl_err
zmq_claim(const char *url, const char *scheme, size_t slen, char *errbuf, size_t errlen)
{
    if (slen <= 4 || memcmp(scheme, "zmq+", 4) != 0)
        return MCL_OK;
    const char *kind = scheme + 4;
    size_t klen = slen - 4;
    if ((klen == 4 && memcmp(kind, "epgm", 4) == 0) || (klen == 3 && memcmp(kind, "pgm", 3) == 0) ||
        (klen == 4 && memcmp(kind, "norm", 4) == 0))
        return MCL__URL_FAIL("%s: zmq+%.*s is not supported: Debian's libzmq/OpenPGM writes "
                             "warnings to stdout and has aborted subscribers on this machine "
                             "(docs/zmq.md); use udp:// for multicast and mcl-bridge to join "
                             "islands over zmq+tcp",
                             url, (int)klen, kind);
    return MCL__URL_FAIL("%s: unknown ZeroMQ transport '%.*s' (supported: zmq+tcp, zmq+ipc, "
                         "zmq+inproc)",
                         url, (int)klen, kind);
}

static const char *const zmq_keys[] = {"mode",   "hwm",    "drop",     "timeout",
                                       "stall",  "linger", "coalesce", "curve",
                                       "curve_server", "curve_clients", NULL};

extern const mcl__bcast_ops mcl__zmq_bcast_ops; // zmq.c
extern const mcl__pipe_ops mcl__zmq_pipe_ops;   // zpipe.c

#define ZMQ_TPORT(scheme_, example_, caps_, claim_)                                                \
    {                                                                                              \
        .scheme = scheme_, .family = "zmq+", .example = example_, .caps = (caps_),                 \
        .opts_size = sizeof(mcl__zmq_opts),                                                        \
        .keys = zmq_keys,                                                                          \
        .known = "known for zmq+: mode, hwm, drop, timeout, stall, linger, coalesce, maxmsg, "     \
                 "batch, rate, msgrate, heartbeat, silent, key, encrypt, skew, curve, "            \
                 "curve_server, curve_clients",                                                    \
        .defaults = zmq_defaults, .parse_addr = zmq_parse_addr,                                    \
        .parse_option = zmq_parse_option, .finish = zmq_finish, .canon = zmq_canon,               \
        .claim = claim_, .bcast = &mcl__zmq_bcast_ops, .pipe = &mcl__zmq_pipe_ops,                 \
    }

enum {
    ZCAPS = MCL__TP_PUBFILTER | MCL__TP_SUBCOUNT | MCL__TP_EDGE_FD,
};
const mcl__tport mcl__zmq_tcp_tport =
    ZMQ_TPORT("zmq+tcp", "zmq+tcp://127.0.0.1:5556", ZCAPS | MCL__TP_XPROCESS, zmq_claim);
const mcl__tport mcl__zmq_ipc_tport =
    ZMQ_TPORT("zmq+ipc", "zmq+ipc:///tmp/mcl.sock", ZCAPS | MCL__TP_XPROCESS,
              NULL);
const mcl__tport mcl__zmq_inproc_tport =
    ZMQ_TPORT("zmq+inproc", "zmq+inproc://bus", ZCAPS, NULL);
