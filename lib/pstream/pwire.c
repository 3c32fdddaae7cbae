// SPDX-License-Identifier: BSD-3-Clause
// Packet codecs: see pwire.h and docs/pstream-format.md.
#include "pwire.h"

#include "../core/internal.h"

#include <stdio.h>
#include <string.h>

#define FAIL(...) (snprintf(why, whylen, __VA_ARGS__), MCL_EPROTO)

size_t
mcl__bsuint_put(uint8_t *p, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)(v & 0x7f);
        v >>= 7;
    } while (v > 0);
    for (size_t i = 0; i < n; i++) // most significant group first; 0x80 on all but the last
        p[i] = (uint8_t)(tmp[n - 1 - i] | (i + 1 < n ? 0x80 : 0));
    return n;
}

mcl_err
mcl__bsuint_get(const uint8_t *p, size_t n, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && i < 16; i++) {
        if (x > (UINT64_MAX >> 7))
            return MCL_EPROTO;
        x = x << 7 | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) {
            *v = x;
            *used = i + 1;
            return MCL_OK;
        }
    }
    return n >= 16 ? MCL_EPROTO : MCL_EAGAIN;
}

bool
mcl__utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t k;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        // Shortest forms only, no surrogates, nothing above U+10FFFF.
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += k + 1;
    }
    return true;
}

// --- native --------------------------------------------------------------------------------------

static mcl_err
native_decode(const uint8_t *p, size_t n, mcl__pkt *k, char *why, size_t whylen)
{
    if (n < MCL__PW_HDR)
        return FAIL("a packet of %zu bytes (the header alone is %d)", n, MCL__PW_HDR);
    if (p[0] != MCL__PW_VERSION)
        return FAIL("packet format version %u (this is version %d)", p[0], MCL__PW_VERSION);
    memset(k, 0, sizeof(*k));
    k->kind = p[1];
    k->status = mcl__get_be16(p + 2);
    k->channel = mcl__get_be32(p + 4);
    k->tag = mcl__get_be32(p + 8);
    k->type = mcl__get_be32(p + 12);
    k->flags = mcl__get_be32(p + 16);
    k->msglen = mcl__get_be16(p + 20);
    if (mcl__get_be16(p + 22) != 0)
        return FAIL("reserved bytes are not zero");
    if (k->msglen > n - MCL__PW_HDR)
        return FAIL("a status message of %zu bytes in a packet of %zu", k->msglen, n);
    k->msg = p + MCL__PW_HDR;
    k->payload = p + MCL__PW_HDR + k->msglen;
    k->len = n - MCL__PW_HDR - k->msglen;
    bool has_status = k->status != 0 || k->msglen != 0;
    switch (k->kind) {
    case MCL__PK_REQUEST:
        if (has_status)
            return FAIL("a request with a status");
        break;
    case MCL__PK_RESPONSE:
        if (k->type != 0)
            return FAIL("a response with a request type");
        if (!mcl__utf8_ok(k->msg, k->msglen))
            return FAIL("a status message that is not UTF-8 text");
        break;
    case MCL__PK_MESSAGE:
        if (has_status || k->tag != 0)
            return FAIL("a message with a status or a tag");
        break;
    case MCL__PK_CANCEL:
        if (has_status || k->type != 0 || k->flags != 0 || k->len != 0)
            return FAIL("a cancel with fields other than channel and tag");
        break;
    case MCL__PK_ERQ:
    case MCL__PK_EOF:
        if (has_status || k->channel != 0 || k->tag != 0 || k->type != 0 || k->flags != 0 ||
            k->len != 0)
            return FAIL("an %s packet with fields set", k->kind == MCL__PK_ERQ ? "ERQ" : "EOF");
        break;
    case MCL__PK_PING:
    case MCL__PK_PONG:
        if (has_status || k->channel != 0 || k->type != 0 || k->flags != 0 ||
            k->len > MCL__PW_PING_MAX)
            return FAIL("a %s with fields set or %zu bytes",
                        k->kind == MCL__PK_PING ? "ping" : "pong", k->len);
        break;
    default:
        return FAIL("unknown packet kind %d", k->kind);
    }
    return MCL_OK;
}

static mcl_err
native_encode(const mcl__pkt *k, uint8_t *h, struct iovec *iov, unsigned *niov)
{
    if (k->msglen > 65535)
        return MCL_EINVAL;
    h[0] = MCL__PW_VERSION;
    h[1] = (uint8_t)k->kind;
    mcl__put_be16(h + 2, k->status);
    mcl__put_be32(h + 4, k->channel);
    mcl__put_be32(h + 8, k->tag);
    mcl__put_be32(h + 12, k->type);
    mcl__put_be32(h + 16, k->flags);
    mcl__put_be16(h + 20, (uint16_t)k->msglen);
    mcl__put_be16(h + 22, 0);
    unsigned n = 0;
    iov[n++] = (struct iovec){h, MCL__PW_HDR};
    if (k->msglen > 0)
        iov[n++] = (struct iovec){(void *)(uintptr_t)k->msg, k->msglen};
    if (k->prelen > 0)
        iov[n++] = (struct iovec){(void *)(uintptr_t)k->pre, k->prelen};
    if (k->len > 0)
        iov[n++] = (struct iovec){(void *)(uintptr_t)k->payload, k->len};
    *niov = n;
    return MCL_OK;
}

// --- cs.packetstream -----------------------------------------------------------------------------

static mcl_err
get_u32(const uint8_t *p, size_t n, size_t *off, uint32_t *out, const char *what, char *why,
        size_t whylen)
{
    uint64_t v;
    size_t used;
    mcl_err rv = mcl__bsuint_get(p + *off, n - *off, &v, &used);
    if (rv == MCL_EAGAIN)
        return FAIL("the packet ends inside its %s", what);
    if (rv != MCL_OK || v > UINT32_MAX)
        return FAIL("a %s beyond 32 bits", what);
    *out = (uint32_t)v;
    *off += used;
    return MCL_OK;
}

static mcl_err
cs_decode(const uint8_t *p, size_t n, mcl__pkt *k, char *why, size_t whylen)
{
    size_t off = 0;
    memset(k, 0, sizeof(*k));
    uint64_t f;
    size_t used;
    mcl_err rv = get_u32(p, n, &off, &k->tag, "tag", why, whylen);
    if (rv != MCL_OK)
        return rv;
    if ((rv = mcl__bsuint_get(p + off, n - off, &f, &used)) != MCL_OK)
        return FAIL("%s",
                    rv == MCL_EAGAIN ? "the packet ends inside its flags" : "flags beyond 64 bits");
    off += used;
    if ((f & 1) && (rv = get_u32(p, n, &off, &k->channel, "channel", why, whylen)) != MCL_OK)
        return rv;
    bool request = (f & 2) != 0;
    uint64_t pflags = f >> 2;
    if (request) {
        uint32_t rq;
        if ((rv = get_u32(p, n, &off, &rq, "request type", why, whylen)) != MCL_OK)
            return rv;
        k->payload = p + off;
        k->len = n - off;
        if (rq == 0) { // EOF (tag 0) or ERQ (tag 1); anything else is a malformed EOF
            if (k->channel != 0 || pflags != 0 || k->len != 0 || k->tag > 1)
                return FAIL("a malformed EOF packet (tag %u)", (unsigned)k->tag);
            k->kind = k->tag == 0 ? MCL__PK_EOF : MCL__PK_ERQ;
            k->tag = 0;
            return MCL_OK;
        }
        if (pflags > UINT32_MAX)
            return FAIL("request flags beyond 32 bits");
        k->kind = MCL__PK_REQUEST;
        k->type = rq - 1;
        k->flags = (uint32_t)pflags;
        return MCL_OK;
    }
    k->kind = MCL__PK_RESPONSE;
    bool ok = (pflags & 1) != 0;
    uint64_t rflags = pflags >> 1;
    if (rflags > UINT32_MAX)
        return FAIL("response flags beyond 32 bits");
    k->flags = (uint32_t)rflags;
    if (ok) {
        k->payload = p + off;
        k->len = n - off;
    } else { // a rejection: its reason is the payload, UTF-8
        k->status = MCL__PST_REJECTED;
        k->msg = p + off;
        k->msglen = n - off;
        if (!mcl__utf8_ok(k->msg, k->msglen))
            return FAIL("a rejection reason that is not UTF-8 text");
    }
    return MCL_OK;
}

static mcl_err
cs_encode(const mcl__pkt *k, uint8_t *h, struct iovec *iov, unsigned *niov)
{
    size_t n = 0;
    uint64_t has_channel = k->channel != 0;
    unsigned ni = 0;
    switch (k->kind) {
    case MCL__PK_REQUEST:
        n += mcl__bsuint_put(h + n, k->tag);
        n += mcl__bsuint_put(h + n, (uint64_t)k->flags << 2 | 2 | has_channel);
        if (has_channel)
            n += mcl__bsuint_put(h + n, k->channel);
        n += mcl__bsuint_put(h + n, (uint64_t)k->type + 1);
        iov[ni++] = (struct iovec){h, n};
        if (k->len > 0)
            iov[ni++] = (struct iovec){(void *)(uintptr_t)k->payload, k->len};
        break;
    case MCL__PK_RESPONSE: {
        bool ok = k->status == MCL__PST_OK;
        uint64_t pflags = (uint64_t)k->flags << 1 | ok; // (a refusal may carry flags too)
        n += mcl__bsuint_put(h + n, k->tag);
        n += mcl__bsuint_put(h + n, pflags << 2 | has_channel);
        if (has_channel)
            n += mcl__bsuint_put(h + n, k->channel);
        iov[ni++] = (struct iovec){h, n};
        const uint8_t *body = ok ? k->payload : k->msg;
        size_t blen = ok ? k->len : k->msglen;
        if (blen > 0)
            iov[ni++] = (struct iovec){(void *)(uintptr_t)body, blen};
        break;
    }
    case MCL__PK_EOF:
    case MCL__PK_ERQ: // requests of type -1 on channel 0: tag 0 (EOF) or 1 (ERQ)
        h[0] = k->kind == MCL__PK_EOF ? 0 : 1;
        h[1] = 2;
        h[2] = 0;
        iov[ni++] = (struct iovec){h, 3};
        break;
    default:
        return MCL_ENOTSUP; // no cancel and no ping in cs.packetstream
    }
    *niov = ni;
    return MCL_OK;
}

mcl_err
mcl__pkt_decode(int codec, const uint8_t *p, size_t n, mcl__pkt *k, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    return codec == MCL__PS_CS ? cs_decode(p, n, k, why, whylen)
                               : native_decode(p, n, k, why, whylen);
}

mcl_err
mcl__pkt_encode(int codec, const mcl__pkt *k, uint8_t *hdr, struct iovec *iov, unsigned *niov)
{
    return codec == MCL__PS_CS ? cs_encode(k, hdr, iov, niov) : native_encode(k, hdr, iov, niov);
}
