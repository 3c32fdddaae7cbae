// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the stream layer's messages (lib/stream/swire.c). The first byte is the
// packet-stream type of the message (MCL__SM_READ..: a one-way message; MCL__SM_OPEN: an OPEN
// request; MCL__SM_OPEN | 0x80: its answer; MCL__SM_LIST: a LIST answer; anything else is
// decoded as a one-way message of that type, and refused), the low bit of the second says
// whether a push carries entities, the rest is the message. Whatever decodes must point inside
// the input and encode back to the same bytes (every message has one encoding); a push of
// entities must walk element by element to its end; nothing may read outside the input.
#include "stream/swire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { OPEN_ANSWER = MCL__SM_OPEN | 0x80 };

static void
inside(const uint8_t *p, size_t n, const uint8_t *f, size_t fl)
{
    if (fl > 0 && (f < p || fl > n || f > p + n - fl))
        abort();
}

static void
same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (an != bn || (an > 0 && memcmp(a, b, an) != 0))
        abort();
}

static void
one_way(int type, bool entities, const uint8_t *in, size_t n)
{
    mcl__smsg m;
    char why[128];
    mcl_err rv = mcl__smsg_decode(type, in, n, entities, &m, why, sizeof(why));
    if (mcl__smsg_decode(type, in, n, entities, &m, NULL, 0) != rv)
        abort(); // the reason is optional
    if (rv != MCL_OK) {
        if (rv != MCL_EPROTO || why[0] == '\0' || memchr(why, '\0', sizeof(why)) == NULL)
            abort(); // a refusal always says why
        return;
    }
    if (m.type != type)
        abort();
    inside(in, n, m.data, m.len);
    inside(in, n, m.text, m.textlen);
    uint8_t *out = malloc(64 + m.textlen + m.len);
    if (out == NULL)
        abort();
    size_t k = mcl__smsg_encode(&m, out);
    if (k < MCL__SW_HDR || k > 64)
        abort();
    if (m.textlen > 0)
        memcpy(out + k, m.text, m.textlen);
    k += m.textlen;
    if (m.len > 0)
        memcpy(out + k, m.data, m.len);
    k += m.len;
    same_bytes(out, k, in, n);
    free(out);
    if (type == MCL__SM_PUSH || type == MCL__SM_WPUSH) {
        if (!entities) {
            if (m.nunits != m.len)
                abort();
        } else {
            size_t off = 0;
            for (uint32_t i = 0; i < m.nunits; i++) {
                if (m.len - off < 4)
                    abort();
                size_t el;
                const uint8_t *e = mcl__spush_elem(m.data, &off, &el);
                if (el == 0 || off > m.len)
                    abort();
                inside(m.data, m.len, e, el);
            }
            if (off != m.len)
                abort();
        }
    }
}

static void
open_msg(bool answer, const uint8_t *in, size_t n)
{
    mcl__sopen o;
    char why[128];
    mcl_err rv = answer ? mcl__sopen_decode_ans(in, n, &o, why, sizeof(why))
                        : mcl__sopen_decode_req(in, n, &o, why, sizeof(why));
    if (rv != MCL_OK) {
        if (rv != MCL_EPROTO || why[0] == '\0' || memchr(why, '\0', sizeof(why)) == NULL)
            abort();
        return;
    }
    inside(in, n, o.name, o.namelen);
    inside(in, n, o.params, o.paramslen);
    inside(in, n, o.info, o.infolen);
    uint8_t *out = malloc(n);
    if (out == NULL)
        abort();
    // Exactly n bytes of room: what decoded fits where it came from, and not in a byte less.
    size_t k = answer ? mcl__sopen_encode_ans(&o, out, n) : mcl__sopen_encode_req(&o, out, n);
    same_bytes(out, k, in, n);
    if ((answer ? mcl__sopen_encode_ans(&o, out, n - 1) : mcl__sopen_encode_req(&o, out, n - 1)) !=
        0)
        abort();
    free(out);
}

typedef struct relist {
    uint8_t *buf;
    size_t len, cap;
} relist;

// A LIST answer written again from what the decoder delivered.
static void
relist_cb(void *user, const char *name, const char *info)
{
    relist *r = user;
    const char *t[2] = {name, info};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(t[k]);
        if (l > 65535 || r->cap - r->len < 2 + l)
            abort(); // more than the input said
        r->buf[r->len] = (uint8_t)(l >> 8);
        r->buf[r->len + 1] = (uint8_t)l;
        memcpy(r->buf + r->len + 2, t[k], l);
        r->len += 2 + l;
    }
}

static void
list_msg(const uint8_t *in, size_t n)
{
    relist r = {malloc(n ? n : 1), 0, n};
    if (r.buf == NULL)
        abort();
    char why[128];
    mcl_err rv = mcl__slist_decode(in, n, relist_cb, &r, why, sizeof(why));
    if (rv == MCL_OK) {
        same_bytes(r.buf, r.len, in, n);
    } else {
        if (rv != MCL_EPROTO || why[0] == '\0' || memchr(why, '\0', sizeof(why)) == NULL)
            abort();
        if (r.len > n || memcmp(r.buf, in, r.len) != 0)
            abort(); // the entries before the refusal are what the input said
    }
    free(r.buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int type = data[0];
    bool entities = data[1] & 1;
    size_t n = size - 2;
    // A copy of exactly n bytes, so that a read past the end is caught by the sanitizer.
    uint8_t *in = malloc(n ? n : 1);
    if (in == NULL)
        return 0;
    memcpy(in, data + 2, n);
    if (type == MCL__SM_OPEN || type == OPEN_ANSWER)
        open_msg(type == OPEN_ANSWER, in, n);
    else if (type == MCL__SM_LIST)
        list_msg(in, n);
    else
        one_way(type, entities, in, n);
    free(in);
    return 0;
}
