// SPDX-License-Identifier: BSD-3-Clause
#include "wire.h"

#include "../core/internal.h"

#include <string.h>

static bool
check_frag_geometry(uint32_t total, uint32_t offset, uint32_t index, uint32_t count,
                    uint32_t len, uint32_t *fsize)
{
    // Fragments tile the message exactly: every piece but the last has the sender's fragment
    // size F, piece i starts at i*F, and count = ceil(total / F). Each piece alone determines F,
    // so a receiver checks the geometry without trusting any one length.
    if (count < 2 || index >= count || len == 0 || total < count)
        return false;
    if ((uint64_t)offset + len > total)
        return false;
    uint64_t f;
    if (index + 1 < count) {
        f = len;
        if ((uint64_t)index * f != offset)
            return false;
    } else {
        if (offset % (count - 1) != 0)
            return false;
        f = offset / (count - 1);
        if (f == 0 || len > f || (uint64_t)offset + len != total)
            return false;
    }
    if (!((uint64_t)(count - 1) * f < total && total <= (uint64_t)count * f))
        return false;
    *fsize = (uint32_t)f;
    return true;
}

// Whether s[0..n) holds a NUL byte (topics are short: no call for most, see mcl__nul_at).
static inline bool
has_nul(const uint8_t *s, size_t n)
{
    return mcl__nul_at(s, n) != n;
}

static bool
name_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return false; // (names are shown on terminals: no control bytes)
    return true;
}

// A heartbeat record: every length against the datagram, names printable, topics as for
// records, and nothing after the last topic.
static mcl_err
check_hb(const uint8_t *p, size_t len)
{
    size_t off = MCL__WIRE_HDR;
    if (len - off < MCL__WIRE_HB_FIXED)
        return MCL_EPROTO;
    const uint8_t *r = p + off;
    uint32_t interval = mcl__get_be32(r + 8);
    uint16_t flags = mcl__get_be16(r + 16);
    uint8_t hl = r[18], pl = r[19];
    uint16_t n = mcl__get_be16(r + 20), total = mcl__get_be16(r + 22);
    if (interval == 0 || interval > 3600000 || (flags & ~MCL__WIRE_HB_BYE) != 0 ||
        hl > MCL__WIRE_HB_NAME_MAX || pl > MCL__WIRE_HB_NAME_MAX || n > total)
        return MCL_EPROTO;
    off += MCL__WIRE_HB_FIXED;
    if (len - off < (size_t)hl + pl || !name_ok(p + off, hl) || !name_ok(p + off + hl, pl))
        return MCL_EPROTO;
    off += (size_t)hl + pl;
    for (unsigned i = 0; i < n; i++) {
        if (len - off < MCL__WIRE_HB_TOPIC_REC)
            return MCL_EPROTO;
        uint16_t tl = mcl__get_be16(p + off);
        if (tl > 1024 || len - off - MCL__WIRE_HB_TOPIC_REC < tl ||
            memchr(p + off + MCL__WIRE_HB_TOPIC_REC, 0, tl) != NULL)
            return MCL_EPROTO;
        off += MCL__WIRE_HB_TOPIC_REC + tl;
    }
    return off == len ? MCL_OK : MCL_EPROTO;
}

mcl_err
mcl__wire_check(mcl__wire_hdr *h, const uint8_t *p, size_t len)
{
    if (len < MCL__WIRE_HDR || mcl__get_be32(p) != MCL__WIRE_MAGIC)
        return MCL_EPROTO;
    // AUTH: the caller has checked and removed the trailer (lib/raw/auth.c); the flag says
    // nothing more about the records.
    h->flags = p[4] & (uint8_t)~MCL__WIRE_F_AUTH;
    if (p[5] != 0)
        return MCL_EPROTO;
    h->count = mcl__get_be16(p + 6);
    h->publisher = mcl__get_be64(p + 8);
    if (h->flags & ~MCL__WIRE_F_KNOWN)
        return MCL_EPROTO;
    if (h->count == 0)
        return MCL_EPROTO;
    if (h->flags & MCL__WIRE_F_HB)
        return h->flags == MCL__WIRE_F_HB && h->count == 1 ? check_hb(p, len) : MCL_EPROTO;
    bool frag = (h->flags & MCL__WIRE_F_FRAG) != 0;
    if (frag && h->count != 1)
        return MCL_EPROTO;
    size_t off = MCL__WIRE_HDR;
    for (unsigned i = 0; i < h->count; i++) {
        size_t rh = frag ? MCL__WIRE_FRAGREC : MCL__WIRE_REC;
        if (len - off < rh)
            return MCL_EPROTO;
        const uint8_t *r = p + off;
        uint16_t tl = mcl__get_be16(r + 8);
        uint32_t pl = mcl__get_be32(r + 10);
        if (tl > 1024)
            return MCL_EPROTO;
        if ((uint64_t)len - off - rh < (uint64_t)tl + pl)
            return MCL_EPROTO;
        if (has_nul(r + rh, tl)) // topics are C strings on delivery
            return MCL_EPROTO;
        // A compressed message holds at least its envelope.
        if ((h->flags & MCL__WIRE_F_ZIP) && (frag ? mcl__get_be32(r + 14) : pl) < MCL__WIRE_ZENV)
            return MCL_EPROTO;
        if (frag) {
            uint32_t fsize;
            if (!check_frag_geometry(mcl__get_be32(r + 14), mcl__get_be32(r + 18),
                                     mcl__get_be32(r + 22), mcl__get_be32(r + 26), pl, &fsize))
                return MCL_EPROTO;
        }
        off += rh + tl + pl;
    }
    if (off != len) // trailing bytes are not allowed in v1 (no trailer flag implemented)
        return MCL_EPROTO;
    return MCL_OK;
}

size_t
mcl__wire_put_hdr(uint8_t *p, uint8_t flags, uint16_t count, uint64_t publisher)
{
    mcl__put_be32(p, MCL__WIRE_MAGIC);
    p[4] = flags;
    p[5] = 0;
    mcl__put_be16(p + 6, count);
    mcl__put_be64(p + 8, publisher);
    return MCL__WIRE_HDR;
}

size_t
mcl__wire_put_rec(uint8_t *p, uint64_t seq, const char *topic, uint16_t topic_len, uint32_t len)
{
    mcl__put_be64(p, seq);
    mcl__put_be16(p + 8, topic_len);
    mcl__put_be32(p + 10, len);
    mcl__copy_short(p + MCL__WIRE_REC, topic, topic_len);
    return MCL__WIRE_REC + (size_t)topic_len;
}

size_t
mcl__wire_put_frag(uint8_t *p, uint64_t seq, const char *topic, uint16_t topic_len, uint32_t len,
                   uint32_t total, uint32_t offset, uint32_t index, uint32_t count)
{
    mcl__put_be64(p, seq);
    mcl__put_be16(p + 8, topic_len);
    mcl__put_be32(p + 10, len);
    mcl__put_be32(p + 14, total);
    mcl__put_be32(p + 18, offset);
    mcl__put_be32(p + 22, index);
    mcl__put_be32(p + 26, count);
    if (topic_len > 0)
        memcpy(p + MCL__WIRE_FRAGREC, topic, topic_len);
    return MCL__WIRE_FRAGREC + (size_t)topic_len;
}

void
mcl__wire_plan(size_t dgram, size_t topic_len, size_t len, uint32_t *count, size_t *fsize)
{
    if (MCL__WIRE_HDR + MCL__WIRE_REC + topic_len + len <= dgram) {
        *count = 1;
        *fsize = len;
        return;
    }
    size_t f = dgram - MCL__WIRE_HDR - MCL__WIRE_FRAGREC - topic_len;
    *fsize = f;
    *count = (uint32_t)((len + f - 1) / f); // no empty trailing fragment on exact multiples
}

void
mcl__wire_hb_get(const uint8_t *p, size_t len, mcl__wire_hb *hb)
{
    (void)len;
    const uint8_t *r = p + MCL__WIRE_HDR;
    hb->next_seq = mcl__get_be64(r);
    hb->interval_ms = mcl__get_be32(r + 8);
    hb->pid = mcl__get_be32(r + 12);
    hb->flags = mcl__get_be16(r + 16);
    hb->host_len = r[18];
    hb->prog_len = r[19];
    hb->ntopics = mcl__get_be16(r + 20);
    hb->topics_total = mcl__get_be16(r + 22);
    hb->host = r + MCL__WIRE_HB_FIXED;
    hb->prog = hb->host + hb->host_len;
    hb->topics = hb->prog + hb->prog_len;
}

void
mcl__wire_hb_topic(const uint8_t *topics, size_t *off, const uint8_t **topic, uint16_t *tl,
                   uint64_t *count)
{
    const uint8_t *b = topics + *off;
    *tl = mcl__get_be16(b);
    *count = mcl__get_be64(b + 2);
    *topic = b + MCL__WIRE_HB_TOPIC_REC;
    *off += MCL__WIRE_HB_TOPIC_REC + *tl;
}

size_t
mcl__wire_put_hb(uint8_t *p, size_t cap, uint64_t publisher, const mcl__wire_hb *hb,
                 const char *const *topics, const uint16_t *tls, const uint64_t *counts,
                 size_t n, size_t first)
{
    size_t hl = hb->host_len, pl = hb->prog_len;
    size_t need = MCL__WIRE_HDR + MCL__WIRE_HB_FIXED + hl + pl;
    if (cap < need)
        return 0;
    mcl__wire_put_hdr(p, MCL__WIRE_F_HB, 1, publisher);
    uint8_t *r = p + MCL__WIRE_HDR;
    mcl__put_be64(r, hb->next_seq);
    mcl__put_be32(r + 8, hb->interval_ms);
    mcl__put_be32(r + 12, hb->pid);
    mcl__put_be16(r + 16, hb->flags);
    r[18] = (uint8_t)hl;
    r[19] = (uint8_t)pl;
    memcpy(r + MCL__WIRE_HB_FIXED, hb->host, hl);
    memcpy(r + MCL__WIRE_HB_FIXED + hl, hb->prog, pl);
    size_t off = need;
    uint16_t listed = 0;
    for (size_t k = 0; k < n && listed < UINT16_MAX; k++) {
        size_t i = (first + k) % n;
        if (cap - off < MCL__WIRE_HB_TOPIC_REC + (size_t)tls[i])
            break;
        mcl__put_be16(p + off, tls[i]);
        mcl__put_be64(p + off + 2, counts[i]);
        memcpy(p + off + MCL__WIRE_HB_TOPIC_REC, topics[i], tls[i]);
        off += MCL__WIRE_HB_TOPIC_REC + tls[i];
        listed++;
    }
    mcl__put_be16(r + 20, listed);
    mcl__put_be16(r + 22, (uint16_t)(n > UINT16_MAX ? UINT16_MAX : n));
    return off;
}
