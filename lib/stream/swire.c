// SPDX-License-Identifier: BSD-3-Clause
// The stream layer's messages: encode and decode, byte by byte (docs/streams.md). Pure.
#include "swire.h"

#include "../core/internal.h"
#include "../pstream/pwire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static mcl_err fail(char *why, size_t whylen, const char *fmt, ...) MCL__PRINTF(3, 4);
static mcl_err
fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return MCL_EPROTO;
}
#define FAIL(...) fail(why, whylen, __VA_ARGS__)

static const char *
type_name(int t)
{
    switch (t) {
    case MCL__SM_READ: return "READ";
    case MCL__SM_WRITE: return "WRITE";
    case MCL__SM_LIMIT: return "LIMIT";
    case MCL__SM_WLIMIT: return "WLIMIT";
    case MCL__SM_PUSH: return "PUSH";
    case MCL__SM_WPUSH: return "WPUSH";
    case MCL__SM_POS: return "POS";
    case MCL__SM_CTXERR: return "CTXERR";
    case MCL__SM_TRUNC: return "TRUNC";
    case MCL__SM_CLOSE: return "CLOSE";
    case MCL__SM_CLOSED: return "CLOSED";
    case MCL__SM_FAIL: return "FAIL";
    case MCL__SM_SFAIL: return "SFAIL";
    default: return "?";
    }
}

// The fixed size of each one-way message (PUSH, WPUSH, CTXERR and FAIL: their header).
static size_t
fixed_size(int t)
{
    switch (t) {
    case MCL__SM_READ: return 36;
    case MCL__SM_WRITE: return 20;
    case MCL__SM_LIMIT: return 28;
    case MCL__SM_WLIMIT: return 36;
    case MCL__SM_PUSH:
    case MCL__SM_WPUSH: return MCL__SW_PUSH_HDR;
    case MCL__SM_POS: return 32;
    case MCL__SM_CTXERR:
    case MCL__SM_FAIL:
    case MCL__SM_SFAIL: return 12;
    case MCL__SM_TRUNC: return 16;
    case MCL__SM_CLOSE:
    case MCL__SM_CLOSED: return 8;
    default: return 0;
    }
}

static bool
text_ok(const uint8_t *p, size_t n)
{
    return n <= MCL__SW_TEXT_MAX && mcl__utf8_ok(p, n);
}

const uint8_t *
mcl__spush_elem(const uint8_t *data, size_t *off, size_t *len)
{
    *len = mcl__get_be32(data + *off);
    const uint8_t *e = data + *off + 4;
    *off += 4 + *len;
    return e;
}

mcl_err
mcl__smsg_decode(int type, const uint8_t *p, size_t n, bool entities, mcl__smsg *m, char *why,
                 size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    memset(m, 0, sizeof(*m));
    size_t fix = fixed_size(type);
    if (fix == 0)
        return FAIL("unknown stream message type %d", type);
    const char *tn = type_name(type);
    bool var = type == MCL__SM_PUSH || type == MCL__SM_WPUSH || type == MCL__SM_CTXERR ||
               type == MCL__SM_FAIL || type == MCL__SM_SFAIL;
    if (n < fix || (!var && n != fix))
        return FAIL("a %s message of %zu bytes (expected %s%zu)", tn, n, var ? "at least " : "",
                    fix);
    m->type = type;
    m->sid = mcl__get_be32(p);
    m->ctx = mcl__get_be32(p + 4);
    const uint8_t *b = p + 8;
    switch (type) {
    case MCL__SM_READ:
    case MCL__SM_WRITE:
        m->whence = b[0];
        m->eos = b[1];
        if (m->whence < 1 || m->whence > 5 || m->whence == 4)
            return FAIL("%s: whence %u", tn, m->whence);
        if (m->eos > 1 || (type == MCL__SM_WRITE && m->eos != 0) || mcl__get_be16(b + 2) != 0)
            return FAIL("%s: bad end-of-stream policy or reserved bytes", tn);
        m->offset = (int64_t)mcl__get_be64(b + 4);
        if (type == MCL__SM_READ) {
            m->ulimit = mcl__get_be64(b + 12);
            m->plimit = mcl__get_be64(b + 20);
        }
        if (m->ctx == 0)
            return FAIL("%s: context 0", tn);
        break;
    case MCL__SM_LIMIT:
    case MCL__SM_WLIMIT:
        m->lseq = mcl__get_be32(b);
        m->ulimit = mcl__get_be64(b + 4);
        m->plimit = mcl__get_be64(b + 12);
        if (type == MCL__SM_WLIMIT) {
            m->done = mcl__get_be64(b + 20);
            if (m->done > m->ulimit)
                return FAIL("WLIMIT: %llu units written beyond the limit %llu",
                            (unsigned long long)m->done, (unsigned long long)m->ulimit);
        }
        break;
    case MCL__SM_PUSH:
    case MCL__SM_WPUSH:
        m->flags = b[0];
        if ((m->flags & ~MCL__SW_EOS) != 0 || b[1] != 0 || mcl__get_be16(b + 2) != 0)
            return FAIL("%s: flags 0x%02x or reserved bytes set", tn, m->flags);
        if (type == MCL__SM_WPUSH && m->flags != 0)
            return FAIL("WPUSH: end-of-stream flag");
        m->nunits = mcl__get_be32(b + 4);
        m->pushno = mcl__get_be64(b + 8);
        m->poff = mcl__get_be64(b + 16);
        m->data = p + fix;
        m->len = n - fix;
        if (m->nunits == 0 && !(m->flags & MCL__SW_EOS))
            return FAIL("%s: an empty push without end-of-stream", tn);
        if (!entities) {
            if (m->nunits != m->len)
                return FAIL("%s: %u bytes said, %zu carried", tn, (unsigned)m->nunits, m->len);
        } else {
            size_t off = 0;
            for (uint32_t i = 0; i < m->nunits; i++) {
                if (m->len - off < 4)
                    return FAIL("%s: element %u of %u cut short", tn, (unsigned)i,
                                (unsigned)m->nunits);
                uint32_t el = mcl__get_be32(m->data + off);
                if (el == 0 || el > m->len - off - 4)
                    return FAIL("%s: element %u of %u bytes in %zu left", tn, (unsigned)i,
                                (unsigned)el, m->len - off - 4);
                off += 4 + (size_t)el;
            }
            if (off != m->len)
                return FAIL("%s: %zu bytes after its %u elements", tn, m->len - off,
                            (unsigned)m->nunits);
        }
        break;
    case MCL__SM_POS:
        m->pos = mcl__get_be64(b);
        m->start = mcl__get_be64(b + 8);
        m->end = mcl__get_be64(b + 16);
        if (m->start > m->pos || m->pos > m->end)
            return FAIL("POS: position %llu outside [%llu, %llu]", (unsigned long long)m->pos,
                        (unsigned long long)m->start, (unsigned long long)m->end);
        break;
    case MCL__SM_CTXERR:
    case MCL__SM_FAIL:
    case MCL__SM_SFAIL:
        m->code = mcl__get_be16(b);
        m->textlen = mcl__get_be16(b + 2);
        m->text = b + 4;
        if (m->textlen != n - fix || !text_ok(m->text, m->textlen))
            return FAIL("%s: a text of %zu bytes said, %zu carried, or not UTF-8", tn,
                        m->textlen, n - fix);
        if (type == MCL__SM_CTXERR && m->code != MCL__SW_GENERAL && m->code != MCL__SW_INVALID_POS)
            return FAIL("CTXERR: code %u", (unsigned)m->code);
        if (type != MCL__SM_CTXERR && m->code != 0)
            return FAIL("%s: code %u", tn, (unsigned)m->code);
        break;
    case MCL__SM_TRUNC:
        m->pos = mcl__get_be64(b);
        if (m->ctx == 0)
            return FAIL("TRUNC: context 0");
        break;
    default: // CLOSE, CLOSED
        if (m->ctx != 0)
            return FAIL("%s: context %u", tn, (unsigned)m->ctx);
        break;
    }
    return MCL_OK;
}

size_t
mcl__smsg_encode(const mcl__smsg *m, uint8_t *buf)
{
    size_t fix = fixed_size(m->type);
    memset(buf, 0, fix);
    mcl__put_be32(buf, m->sid);
    mcl__put_be32(buf + 4, m->ctx);
    uint8_t *b = buf + 8;
    switch (m->type) {
    case MCL__SM_READ:
    case MCL__SM_WRITE:
        b[0] = m->whence;
        b[1] = m->eos;
        mcl__put_be64(b + 4, (uint64_t)m->offset);
        if (m->type == MCL__SM_READ) {
            mcl__put_be64(b + 12, m->ulimit);
            mcl__put_be64(b + 20, m->plimit);
        }
        break;
    case MCL__SM_LIMIT:
    case MCL__SM_WLIMIT:
        mcl__put_be32(b, m->lseq);
        mcl__put_be64(b + 4, m->ulimit);
        mcl__put_be64(b + 12, m->plimit);
        if (m->type == MCL__SM_WLIMIT)
            mcl__put_be64(b + 20, m->done);
        break;
    case MCL__SM_PUSH:
    case MCL__SM_WPUSH:
        b[0] = m->flags;
        mcl__put_be32(b + 4, m->nunits);
        mcl__put_be64(b + 8, m->pushno);
        mcl__put_be64(b + 16, m->poff);
        break;
    case MCL__SM_POS:
        mcl__put_be64(b, m->pos);
        mcl__put_be64(b + 8, m->start);
        mcl__put_be64(b + 16, m->end);
        break;
    case MCL__SM_CTXERR:
    case MCL__SM_FAIL:
    case MCL__SM_SFAIL:
        mcl__put_be16(b, m->code);
        mcl__put_be16(b + 2, (uint16_t)m->textlen);
        break;
    case MCL__SM_TRUNC:
        mcl__put_be64(b, m->pos);
        break;
    default:
        break;
    }
    return fix;
}

// --- OPEN ---------------------------------------------------------------------------------------

static mcl_err
get_text(const uint8_t *p, size_t n, size_t *off, const uint8_t **t, size_t *tl, size_t max,
         const char *what, char *why, size_t whylen)
{
    if (n - *off < 2)
        return FAIL("OPEN: cut short before its %s", what);
    *tl = mcl__get_be16(p + *off);
    *off += 2;
    if (*tl > n - *off)
        return FAIL("OPEN: %s of %zu bytes in %zu", what, *tl, n - *off);
    *t = p + *off;
    if (*tl > max || !mcl__utf8_ok(*t, *tl))
        return FAIL("OPEN: its %s is not UTF-8 text of at most %zu bytes", what, max);
    *off += *tl;
    return MCL_OK;
}

mcl_err
mcl__sopen_decode_req(const uint8_t *p, size_t n, mcl__sopen *o, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    memset(o, 0, sizeof(*o));
    if (n < 24)
        return FAIL("OPEN: %zu bytes", n);
    o->sid = mcl__get_be32(p);
    o->mode = mcl__get_be16(p + 4);
    if (mcl__get_be16(p + 6) != 0)
        return FAIL("OPEN: reserved bytes set");
    o->window = mcl__get_be64(p + 8);
    o->max_pushes = mcl__get_be32(p + 16);
    o->max_push = mcl__get_be32(p + 20);
    size_t off = 24;
    mcl_err rv = get_text(p, n, &off, &o->name, &o->namelen, MCL__SW_TEXT_MAX, "name", why, whylen);
    if (rv == MCL_OK)
        rv = get_text(p, n, &off, &o->params, &o->paramslen, MCL__SW_TEXT_MAX, "params", why,
                      whylen);
    if (rv != MCL_OK)
        return rv;
    if (off != n)
        return FAIL("OPEN: %zu bytes after its fields", n - off);
    if (o->sid == 0 || o->namelen == 0 || o->window == 0 || o->max_pushes == 0 || o->max_push == 0)
        return FAIL("OPEN: stream id, name, window, pushes or push size 0");
    return MCL_OK;
}

size_t
mcl__sopen_encode_req(const mcl__sopen *o, uint8_t *buf, size_t cap)
{
    size_t need = 24 + 2 + o->namelen + 2 + o->paramslen;
    if (need > cap || o->namelen > 65535 || o->paramslen > 65535)
        return 0;
    memset(buf, 0, 24);
    mcl__put_be32(buf, o->sid);
    mcl__put_be16(buf + 4, (uint16_t)o->mode);
    mcl__put_be64(buf + 8, o->window);
    mcl__put_be32(buf + 16, o->max_pushes);
    mcl__put_be32(buf + 20, o->max_push);
    size_t off = 24;
    mcl__put_be16(buf + off, (uint16_t)o->namelen);
    if (o->namelen)
        memcpy(buf + off + 2, o->name, o->namelen);
    off += 2 + o->namelen;
    mcl__put_be16(buf + off, (uint16_t)o->paramslen);
    if (o->paramslen)
        memcpy(buf + off + 2, o->params, o->paramslen);
    return need;
}

mcl_err
mcl__sopen_decode_ans(const uint8_t *p, size_t n, mcl__sopen *o, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    memset(o, 0, sizeof(*o));
    if (n < 42)
        return FAIL("OPEN answer: %zu bytes", n);
    o->sid = mcl__get_be32(p);
    o->kind = p[4];
    o->mode = mcl__get_be16(p + 6);
    o->window = mcl__get_be64(p + 8);
    o->max_pushes = mcl__get_be32(p + 16);
    o->max_push = mcl__get_be32(p + 20);
    o->start = mcl__get_be64(p + 24);
    o->end = mcl__get_be64(p + 32);
    size_t off = 40;
    mcl_err rv = get_text(p, n, &off, &o->info, &o->infolen, MCL__SW_INFO_MAX, "info", why, whylen);
    if (rv != MCL_OK)
        return rv;
    if (off != n || p[5] != 0)
        return FAIL("OPEN answer: trailing or reserved bytes");
    if (o->sid == 0 || (o->kind != 1 && o->kind != 2) || o->window == 0 || o->max_pushes == 0 ||
        o->max_push < 64 || !(o->mode & 3) || o->start > o->end)
        return FAIL("OPEN answer: stream id, kind %u, limits or mode 0x%x out of range", (unsigned)o->kind,
                    o->mode);
    return MCL_OK;
}

size_t
mcl__sopen_encode_ans(const mcl__sopen *o, uint8_t *buf, size_t cap)
{
    size_t need = 40 + 2 + o->infolen;
    if (need > cap || o->infolen > 65535)
        return 0;
    memset(buf, 0, 40);
    mcl__put_be32(buf, o->sid);
    buf[4] = o->kind;
    mcl__put_be16(buf + 6, (uint16_t)o->mode);
    mcl__put_be64(buf + 8, o->window);
    mcl__put_be32(buf + 16, o->max_pushes);
    mcl__put_be32(buf + 20, o->max_push);
    mcl__put_be64(buf + 24, o->start);
    mcl__put_be64(buf + 32, o->end);
    mcl__put_be16(buf + 40, (uint16_t)o->infolen);
    if (o->infolen)
        memcpy(buf + 42, o->info, o->infolen);
    return need;
}

mcl_err
mcl__slist_decode(const uint8_t *p, size_t n,
                  void (*cb)(void *user, const char *name, const char *info), void *user,
                  char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    size_t off = 0;
    while (off < n) {
        const uint8_t *t[2];
        size_t tl[2];
        for (int k = 0; k < 2; k++) {
            if (n - off < 2)
                return FAIL("LIST: cut short");
            tl[k] = mcl__get_be16(p + off);
            off += 2;
            size_t max = k == 0 ? MCL__SW_TEXT_MAX : MCL__SW_INFO_MAX;
            if (tl[k] > n - off || tl[k] > max || !mcl__utf8_ok(p + off, tl[k]) ||
                (k == 0 && tl[k] == 0))
                return FAIL("LIST: a %s that is not UTF-8 text of 1..%zu bytes",
                            k == 0 ? "name" : "description", max);
            t[k] = p + off;
            off += tl[k];
        }
        if (cb != NULL) {
            char name[MCL__SW_TEXT_MAX + 1], info[MCL__SW_INFO_MAX + 1];
            memcpy(name, t[0], tl[0]);
            name[tl[0]] = '\0';
            memcpy(info, t[1], tl[1]);
            info[tl[1]] = '\0';
            cb(user, name, info);
        }
    }
    return MCL_OK;
}
