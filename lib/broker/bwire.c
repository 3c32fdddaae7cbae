// SPDX-License-Identifier: BSD-3-Clause
// The broker's data-plane messages: encode and decode (docs/broker.md). Pure.
#include "bwire.h"

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

mcl_err
mcl__bmsg_decode(int type, const uint8_t *p, size_t n, mcl__bmsg *m, char *why, size_t whylen)
{
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    memset(m, 0, sizeof(*m));
    m->type = type;
    if (n < 4)
        return fail(why, whylen, "a broker message of %zu bytes", n);
    m->id = mcl__get_be32(p);
    switch (type) {
    case MCL__BM_PUT:
        m->data = p + 4;
        m->len = n - 4;
        return MCL_OK;
    case MCL__BM_END:
        if (n != 4)
            return fail(why, whylen, "an END message of %zu bytes", n);
        return MCL_OK;
    case MCL__BM_DELIVER:
    case MCL__BM_ACK:
    case MCL__BM_CREDIT:
    case MCL__BM_MARK:
        if (n < 12 || (type != MCL__BM_DELIVER && n != 12))
            return fail(why, whylen, "a broker message of type %d with %zu bytes", type, n);
        m->num = mcl__get_be64(p + 4);
        m->data = p + 12;
        m->len = n - 12;
        return MCL_OK;
    case MCL__BM_DELIVERN: {
        if (n < 8)
            return fail(why, whylen, "a DELIVERN message of %zu bytes", n);
        m->num = mcl__get_be32(p + 4);
        m->data = p + 8;
        m->len = n - 8;
        size_t off = 0;
        for (uint64_t i = 0; i < m->num; i++) {
            if (m->len - off < 12)
                return fail(why, whylen, "DELIVERN: frame %llu of %llu cut short",
                            (unsigned long long)i, (unsigned long long)m->num);
            uint32_t fl = mcl__get_be32(m->data + off + 8);
            if (fl > m->len - off - 12)
                return fail(why, whylen, "DELIVERN: frame %llu of %u bytes in %zu",
                            (unsigned long long)i, (unsigned)fl, m->len - off - 12);
            off += 12 + (size_t)fl;
        }
        if (m->num == 0 || off != m->len)
            return fail(why, whylen, "DELIVERN: %llu frames, %zu bytes after them",
                        (unsigned long long)m->num, m->len - off);
        return MCL_OK;
    }
    case MCL__BM_ACTIVE:
        if (n != 5 || p[4] > 1)
            return fail(why, whylen, "an ACTIVE message of %zu bytes or flag %u", n,
                        n > 4 ? p[4] : 0);
        m->flag = p[4];
        return MCL_OK;
    case MCL__BM_ENDED:
        if (n < 5 || (p[4] != MCL__BE_SUB && p[4] != MCL__BE_WRITER) || n - 5 > 1024 ||
            !mcl__utf8_ok(p + 5, n - 5))
            return fail(why, whylen, "an ENDED message that is malformed (%zu bytes)", n);
        m->flag = p[4];
        m->data = p + 5;
        m->len = n - 5;
        return MCL_OK;
    default:
        return fail(why, whylen, "unknown broker message type %d", type);
    }
}

const uint8_t *
mcl__bmsg_next(const uint8_t *data, size_t *off, uint64_t *seq, size_t *len)
{
    *seq = mcl__get_be64(data + *off);
    *len = mcl__get_be32(data + *off + 8);
    const uint8_t *f = data + *off + 12;
    *off += 12 + *len;
    return f;
}

size_t
mcl__bmsg_encode(const mcl__bmsg *m, uint8_t *h)
{
    mcl__put_be32(h, m->id);
    switch (m->type) {
    case MCL__BM_DELIVER:
    case MCL__BM_ACK:
    case MCL__BM_CREDIT:
    case MCL__BM_MARK:
        mcl__put_be64(h + 4, m->num);
        return 12;
    case MCL__BM_ACTIVE:
    case MCL__BM_ENDED:
        h[4] = m->flag;
        return 5;
    case MCL__BM_DELIVERN:
        mcl__put_be32(h + 4, (uint32_t)m->num);
        return 8;
    default:
        return 4;
    }
}
