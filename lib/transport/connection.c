// SPDX-License-Identifier: BSD-3-Clause
// The URL front door: finds the transport for the scheme in the registry, lets it parse its
// address and its own options, parses the options every transport shares, and keeps the
// canonical form. Strict: anything not understood is an error that names the part.
#include "connection_int.h"
#include "transport.h"

#include "../core/internal.h"
#include "../core/url.h"
#include "../core/zcodec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MAXMSG ((size_t)UINT32_MAX)

void
mcl__connection_canon(struct mcl_connection *c)
{
    c->tp->canon(c);
}

static bool
key_in(const char *const *keys, const char *key, size_t klen)
{
    for (; keys != NULL && *keys != NULL; keys++)
        if (strlen(*keys) == klen && memcmp(*keys, key, klen) == 0)
            return true;
    return false;
}

static bool
generic_key(const char *key, size_t klen, bool *frag_only)
{
    static const char *const all[] = {"maxmsg", "batch", "heartbeat", "silent", "key",
                                      "encrypt", "skew", "rate", "msgrate", "compress",
                                      "compress_min", NULL};
    static const char *const frag[] = {"dgram", "expire", "partmem", NULL};
    *frag_only = key_in(frag, key, klen);
    return *frag_only || key_in(all, key, klen);
}

// "option 'ttl' applies to udp:// connections only": the key belongs to other transports.
static mcl_err
misplaced_option(const struct mcl_connection *c, const char *url, const char *key, size_t klen,
                 char *errbuf, size_t errlen)
{
    bool frag_only;
    bool generic = generic_key(key, klen, &frag_only);
    char who[96];
    size_t n = 0, found = 0;
    who[0] = '\0';
    const char *last = NULL;
    for (size_t i = 0; i < mcl__tport_count(); i++) {
        const mcl__tport *t = mcl__tport_at(i);
        bool takes = key_in(t->keys, key, klen) || (generic && (t->caps & MCL__TP_FRAGMENT));
        if (!takes || t == c->tp || (last != NULL && strcmp(last, t->family) == 0))
            continue;
        int w = snprintf(who + n, n < sizeof(who) ? sizeof(who) - n : 0, "%s%s",
                         found ? " and " : "", t->family);
        if (w > 0)
            n += (size_t)w;
        found++;
        last = t->family;
    }
    if (found > 0)
        return MCL__URL_FAIL("%s: option '%.*s' applies to %s connections only", url, (int)klen,
                             key, who);
    return MCL__URL_FAIL("%s: unknown option '%.*s' (%s)", url, (int)klen, key, c->tp->known);
}

static mcl_err
generic_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
               const char *val, size_t vlen, char *errbuf, size_t errlen)
{
    uint64_t v;
    if (MCL__KEY_IS("maxmsg")) {
        if (!mcl__url_size(val, vlen, MAX_MAXMSG, &v) || v == 0)
            return MCL__URL_FAIL("%s: maxmsg '%.*s' is not a size 1..4G-1", url, (int)vlen, val);
        c->maxmsg = (size_t)v;
    } else if (MCL__KEY_IS("batch")) {
        if (!mcl__url_uint(val, vlen, 1000000, &v))
            return MCL__URL_FAIL("%s: batch '%.*s' is not a number of microseconds 0..1000000",
                                 url, (int)vlen, val);
        c->batch_us = (uint32_t)v;
    } else if (MCL__KEY_IS("rate")) {
        if (!mcl__url_size(val, vlen, MCL__MAX_RATE, &v) || (v > 0 && v < MCL__MIN_RATE))
            return MCL__URL_FAIL("%s: rate '%.*s' is not bytes per second 1k..1T (k/M/G "
                                 "suffixes), or 0 (unpaced)",
                                 url, (int)vlen, val);
        c->rate = v;
    } else if (MCL__KEY_IS("msgrate")) {
        if (!mcl__url_uint(val, vlen, MCL__MAX_MSGRATE, &v))
            return MCL__URL_FAIL("%s: msgrate '%.*s' is not messages per second 1..%u, or 0 "
                                 "(unpaced)",
                                 url, (int)vlen, val, MCL__MAX_MSGRATE);
        c->msgrate = (uint32_t)v;
    } else if (MCL__KEY_IS("compress")) {
        // CODEC or CODEC:LEVEL (zstd 1..19, lz4's acceleration 1..65537, lz4hc 1..12), none
        size_t nl = 0;
        while (nl < vlen && val[nl] != ':')
            nl++;
        int codec = mcl__z_parse(val, nl);
        uint64_t level = 0;
        int top = codec < 0 ? 0 : mcl__z_max_level(codec);
        bool level_ok = nl == vlen || (top > 0 &&
                                       mcl__url_uint(val + nl + 1, vlen - nl - 1, (uint64_t)top,
                                                     &level) &&
                                       level >= 1);
        if (codec < 0 || !level_ok)
            return MCL__URL_FAIL("%s: compress '%.*s' is not zstd, zstd:LEVEL (1..%d), lz4, "
                                 "lz4:ACCELERATION (1..%d), lz4hc, lz4hc:LEVEL (1..%d) or none",
                                 url, (int)vlen, val, MCL__Z_ZSTD_MAX_LEVEL, MCL__Z_LZ4_MAX_ACCEL,
                                 MCL__Z_LZ4HC_MAX_LEVEL);
        if (!mcl__z_built(codec))
            return mcl__fail(MCL_ENOTSUP, errbuf, errlen, "url",
                             "%s: compress=%s: this build of mcl has no %s (install lib%s-dev "
                             "and rebuild)",
                             url, mcl__z_name(codec), mcl__z_name(codec), mcl__z_name(codec));
        c->zcodec = (uint8_t)codec;
        c->zlevel = (int)level;
    } else if (MCL__KEY_IS("compress_min")) {
        if (!mcl__url_size(val, vlen, MAX_MAXMSG, &v))
            return MCL__URL_FAIL("%s: compress_min '%.*s' is not a size 0..4G-1", url, (int)vlen,
                                 val);
        c->zmin = (size_t)v;
    } else if (MCL__KEY_IS("heartbeat")) {
        if (!mcl__url_uint(val, vlen, 3600000, &v) || (v > 0 && v < 10))
            return MCL__URL_FAIL("%s: heartbeat '%.*s' is not milliseconds 10..3600000, or 0 "
                                 "(no heartbeats)",
                                 url, (int)vlen, val);
        c->heartbeat_ms = (uint32_t)v;
    } else if (MCL__KEY_IS("silent")) {
        if (!mcl__url_uint(val, vlen, 1000, &v) || v == 0)
            return MCL__URL_FAIL("%s: silent '%.*s' is not a number of missed heartbeats 1..1000",
                                 url, (int)vlen, val);
        c->silent_after = (uint32_t)v;
    } else if (MCL__KEY_IS("key")) {
        if (vlen == 0 || vlen >= MCL__KEY_PATH_MAX)
            return MCL__URL_FAIL("%s: key '%.*s' is not a key file path (1..%d bytes)", url,
                                 (int)vlen, val, MCL__KEY_PATH_MAX - 1);
        memcpy(c->key_path, val, vlen);
        c->key_path[vlen] = '\0';
        char why[400];
        mcl_err rv = mcl__gkeys_load(&c->keys, c->key_path, why, sizeof(why));
        if (rv != MCL_OK)
            return mcl__fail(rv, errbuf, errlen, "url", "%s: %s", url, why);
    } else if (MCL__KEY_IS("encrypt")) {
        if (vlen != 1 || (val[0] != '0' && val[0] != '1'))
            return MCL__URL_FAIL("%s: encrypt '%.*s' is not 0 or 1", url, (int)vlen, val);
        c->encrypt = val[0] == '1';
    } else if (MCL__KEY_IS("skew")) {
        if (!mcl__url_uint(val, vlen, 86400, &v) || v == 0)
            return MCL__URL_FAIL("%s: skew '%.*s' is not a number of seconds 1..86400", url,
                                 (int)vlen, val);
        c->skew_s = (uint32_t)v;
    } else if (MCL__KEY_IS("dgram")) {
        if (!mcl__url_size(val, vlen, MCL__MAX_DGRAM, &v) || v < MCL__MIN_DGRAM)
            return MCL__URL_FAIL("%s: dgram '%.*s' is not a size %zu..%zu", url, (int)vlen, val,
                                 MCL__MIN_DGRAM, MCL__MAX_DGRAM);
        c->dgram = (size_t)v;
    } else if (MCL__KEY_IS("expire")) {
        if (!mcl__url_uint(val, vlen, 3600000, &v) || v == 0)
            return MCL__URL_FAIL("%s: expire '%.*s' is not a number of milliseconds 1..3600000",
                                 url, (int)vlen, val);
        c->expire_ms = (uint32_t)v;
    } else { // partmem
        if (!mcl__url_size(val, vlen, (uint64_t)1 << 40, &v) || v == 0)
            return MCL__URL_FAIL("%s: partmem '%.*s' is not a size", url, (int)vlen, val);
        c->partmem = (size_t)v;
    }
    return MCL_OK;
}

typedef struct opt_ctx {
    struct mcl_connection *c;
    const char *url;
} opt_ctx;

static mcl_err
one_option(void *arg, const char *key, size_t klen, const char *val, size_t vlen, char *errbuf,
           size_t errlen)
{
    opt_ctx *o = arg;
    const mcl__tport *tp = o->c->tp;
    if (key_in(tp->keys, key, klen))
        return tp->parse_option(o->c, o->url, key, klen, val, vlen, errbuf, errlen);
    bool frag_only;
    bool bcast_only = MCL__KEY_IS("key") || MCL__KEY_IS("encrypt") || MCL__KEY_IS("skew") ||
                      MCL__KEY_IS("rate") || MCL__KEY_IS("msgrate") ||
                      MCL__KEY_IS("compress") || MCL__KEY_IS("compress_min");
    if (bcast_only && tp->bcast == NULL)
        return MCL__URL_FAIL("%s: option '%.*s' applies to connections with broadcasters (udp, "
                             "inproc, zmq+), not to %s://",
                             o->url, (int)klen, key, tp->scheme);
    if (generic_key(key, klen, &frag_only) && (!frag_only || (tp->caps & MCL__TP_FRAGMENT)))
        return generic_option(o->c, o->url, key, klen, val, vlen, errbuf, errlen);
    return misplaced_option(o->c, o->url, key, klen, errbuf, errlen);
}

static mcl_err
parse_into(struct mcl_connection *c, const char *url, char *errbuf, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    size_t ulen = strlen(url);
    if (ulen == 0)
        return MCL__URL_FAIL("empty URL (expected udp://GROUP:PORT)");
    if (ulen >= MCL__URL_MAX - 64)
        return MCL__URL_FAIL("URL is too long (%zu bytes)", ulen);
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return MCL__URL_FAIL("%s: invalid character at offset %zu", url, i);
    const char *p = strstr(url, "://");
    if (p == NULL)
        return MCL__URL_FAIL("%s: missing scheme (expected udp://GROUP:PORT)", url);
    size_t slen = (size_t)(p - url);
    c->tp = mcl__tport_find(url, slen);
    if (c->tp == NULL)
        return mcl__tport_unknown(url, url, slen, errbuf, errlen);
    c->maxmsg = MCL__DEF_MAXMSG;
    c->dgram = (c->tp->caps & MCL__TP_FRAGMENT) ? MCL__DEF_DGRAM : 0;
    c->expire_ms = MCL__DEF_EXPIRE_MS;
    c->partmem = MCL__DEF_PARTMEM;
    c->heartbeat_ms = MCL__DEF_HEARTBEAT_MS;
    c->silent_after = MCL__DEF_SILENT;
    c->skew_s = MCL__DEF_SKEW_S;
    c->zmin = MCL__DEF_ZMIN;
    c->tp->defaults(c);
    const char *q = NULL;
    mcl_err rv = c->tp->parse_addr(c, url, p + 3, &q, errbuf, errlen);
    if (rv != MCL_OK)
        return rv;
    opt_ctx o = {c, url};
    if ((rv = mcl__url_options(url, q, one_option, &o, errbuf, errlen)) != MCL_OK)
        return rv;
    if (c->tp->finish != NULL && (rv = c->tp->finish(c, url, errbuf, errlen)) != MCL_OK)
        return rv;
    if (c->encrypt && c->keys.n == 0)
        return MCL__URL_FAIL("%s: encrypt=1 needs key=FILE (a group key: mcl-keygen --group NAME)",
                             url);
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
    struct mcl_connection *c = mcl__alloc(sizeof(*c));
    if (c == NULL)
        return mcl__fail(MCL_ENOMEM, errbuf, errlen, "url", "out of memory");
    mcl_err rv = parse_into(c, url, errbuf, errlen);
    if (rv != MCL_OK) {
        mcl__free(c);
        return rv;
    }
    *connp = c;
    return MCL_OK;
}

mcl_err
mcl_connection_default(mcl_connection **connp, char *errbuf, size_t errlen)
{
    const char *env = getenv("MCL_URL");
    bool from_env = env != NULL && env[0] != '\0';
    if (!from_env)
        env = MCL_DEFAULT_URL;
    mcl_err rv = mcl_connection_parse(connp, env, errbuf, errlen);
    if (rv == MCL_EURL && errbuf != NULL && errlen > 0 && from_env) {
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
    if (conn != NULL)
        mcl__gkeys_wipe(&conn->keys);
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
    return conn ? conn->tp->scheme : "udp";
}

uint16_t
mcl_connection_port(const mcl_connection *conn)
{
    return conn ? conn->port : 0;
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

void
mcl__canon_bcast_opts(struct mcl__canon *k, const struct mcl_connection *c)
{
    if (c->rate != 0)
        mcl__canon_size(k, "rate", (size_t)c->rate);
    if (c->msgrate != 0)
        mcl__canon_opt(k, "msgrate=%u", (unsigned)c->msgrate);
    if (c->zcodec != MCL__Z_NONE && c->zlevel != 0)
        mcl__canon_opt(k, "compress=%s:%d", mcl__z_name(c->zcodec), c->zlevel);
    else if (c->zcodec != MCL__Z_NONE)
        mcl__canon_opt(k, "compress=%s", mcl__z_name(c->zcodec));
    if (c->zmin != MCL__DEF_ZMIN)
        mcl__canon_size(k, "compress_min", c->zmin);
    if (c->heartbeat_ms != MCL__DEF_HEARTBEAT_MS)
        mcl__canon_opt(k, "heartbeat=%u", (unsigned)c->heartbeat_ms);
    if (c->silent_after != MCL__DEF_SILENT)
        mcl__canon_opt(k, "silent=%u", (unsigned)c->silent_after);
    if (c->keys.n > 0)
        mcl__canon_opt(k, "key=%s", c->key_path);
    if (c->encrypt)
        mcl__canon_opt(k, "encrypt=1");
    if (c->skew_s != MCL__DEF_SKEW_S)
        mcl__canon_opt(k, "skew=%u", (unsigned)c->skew_s);
}

uint32_t
mcl_connection_heartbeat_ms(const mcl_connection *conn)
{
    return conn ? conn->heartbeat_ms : 0;
}
