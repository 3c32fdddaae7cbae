// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the datagram decoder of lib/raw/wire.c and, behind it, the receive engine of
// lib/raw/rx.c (validation, topic filter, reassembly, sequence tracking), both pure functions
// of the bytes. The first byte configures the engine (bits 0-1: topic filter, 2-3: maxmsg and
// partmem, 4: sequence gaps uncounted, 5-7: milliseconds between datagrams; partial messages
// expire after 3 ms); the rest is up to 32 datagrams, each a 2-byte big-endian length and that
// many bytes (the last one cut at the end of the input).
//
// Every datagram is decoded from an exact-size copy (a read past its end is caught by ASan).
// What mcl__wire_check accepts must decode record by record inside the datagram, ending at its
// end, with the geometry the format promises, and must encode (mcl__wire_put_*) to the same
// bytes, which decode to the same header and records. The engine must agree with the decoder
// on every datagram, deliver only what the datagrams hold (an unfragmented record in place; a
// reassembled message equal to its fragments, the first one of each index winning), pass only
// topics the filter admits, never deliver one (publisher, seq) twice (while a publisher's
// numbers are all the same or not: nothing restarts tracking),
// keep partial messages under partmem, count what it delivers, and free everything.
// A compressed message (flag ZIP) is delivered only as what its envelope decodes to, checked
// here with a decoder of our own for unfragmented ones (fragmented: within the limits).
// A heartbeat (flag HB) must decode inside the datagram, its topics ending at its end, encode
// again to the same bytes, and deliver nothing.
#include "core/internal.h"
#include "core/zcodec.h"
#include "raw/rx.h"
#include "raw/wire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_DG = 32 };
#define SEQ_SPAN UINT64_MAX // (tracking never restarts: every publisher is steady)

typedef struct dgram {
    uint8_t *b;
    size_t n;
    mcl_err rv;
    mcl__wire_hdr h;
    mcl__wire_rec *recs; // h.count of them when rv is MCL_OK
} dgram;

typedef struct pubspan {
    uint64_t id, lo, hi;
} pubspan;

static const char *const filter_imu[] = {"imu"};
static const char *const filter_ab[] = {"a*", "b"};
static const char *const filter_all[] = {"*"};

static bool
admitted(unsigned filter, const char *t, size_t n)
{
    switch (filter) {
    case 1:
        return n == 3 && memcmp(t, "imu", 3) == 0;
    case 2:
        return (n >= 1 && t[0] == 'a') || (n == 1 && t[0] == 'b');
    default:
        return true;
    }
}

// Decodes every record of an accepted datagram and checks it against the format.
static void
decode_all(dgram *d)
{
    bool frag = (d->h.flags & MCL__WIRE_F_FRAG) != 0;
    if (d->h.count == 0 || (frag && d->h.count != 1) || (d->h.flags & ~MCL__WIRE_F_KNOWN))
        abort();
    d->recs = malloc(d->h.count * sizeof(*d->recs));
    if (d->recs == NULL)
        abort();
    size_t off = MCL__WIRE_HDR;
    for (unsigned i = 0; i < d->h.count; i++) {
        mcl__wire_rec *r = &d->recs[i];
        size_t start = off;
        mcl__wire_next(d->b, &off, frag, r);
        size_t rh = frag ? MCL__WIRE_FRAGREC : MCL__WIRE_REC;
        if (off <= start || off > d->n || off - start != rh + r->topic_len + (size_t)r->len)
            abort();
        if (r->topic != d->b + start + rh || r->payload != r->topic + r->topic_len)
            abort();
        if (r->topic_len > MCL_TOPIC_MAX || memchr(r->topic, 0, r->topic_len) != NULL)
            abort();
        if (r->frag != frag)
            abort();
        if (!frag) {
            if (r->total != r->len || r->offset != 0 || r->index != 0 || r->count != 1)
                abort();
            continue;
        }
        // Fragments tile the message: F bytes at index * F for all but the last, which ends
        // the message with 1..F bytes; count = ceil(total / F).
        uint64_t f = r->fsize;
        if (r->count < 2 || r->index >= r->count || r->len == 0 || f == 0 ||
            (uint64_t)r->offset != r->index * f || (uint64_t)r->offset + r->len > r->total ||
            (r->index + 1 < r->count && r->len != f) ||
            (r->index + 1 == r->count &&
             ((uint64_t)r->offset + r->len != r->total || r->len > f)) ||
            (uint64_t)(r->count - 1) * f >= r->total || r->total > (uint64_t)r->count * f)
            abort();
    }
    if (off != d->n)
        abort();
}

// A heartbeat: its fields and topics inside the datagram, ending at its end, and the same
// bytes when encoded again from them.
static void
check_heartbeat(const dgram *d)
{
    mcl__wire_hb hb;
    mcl__wire_hb_get(d->b, d->n, &hb);
    if (hb.host_len > MCL__WIRE_HB_NAME_MAX || hb.prog_len > MCL__WIRE_HB_NAME_MAX ||
        hb.ntopics > hb.topics_total || hb.interval_ms == 0 || d->h.count != 1)
        abort();
    const char *names[256];
    uint16_t tls[256];
    uint64_t counts[256];
    size_t off = 0;
    for (unsigned i = 0; i < hb.ntopics; i++) {
        const uint8_t *t;
        mcl__wire_hb_topic(hb.topics, &off, &t, &tls[i < 256 ? i : 255], &counts[i < 256 ? i : 255]);
        if (t < d->b || t + tls[i < 256 ? i : 255] > d->b + d->n)
            abort();
        if (i < 256)
            names[i] = (const char *)t;
    }
    if (hb.topics + off != d->b + d->n)
        abort();
    if (hb.ntopics > 256 || hb.ntopics != hb.topics_total)
        return; // (the list of a rotating heartbeat is not re-encoded here)
    uint8_t *out = malloc(d->n);
    if (out == NULL)
        abort();
    size_t n = mcl__wire_put_hb(out, d->n, d->h.publisher, &hb, names, tls, counts, hb.ntopics, 0);
    if (n > 4)
        out[4] |= d->b[4] & MCL__WIRE_F_AUTH; // (the decoder leaves AUTH to the caller)
    if (n != d->n || memcmp(out, d->b, n) != 0)
        abort();
    free(out);
}

// Says the datagram again from its decoded fields: the same bytes, which decode the same.
static void
reencode(const dgram *d)
{
    bool frag = (d->h.flags & MCL__WIRE_F_FRAG) != 0;
    uint8_t *out = malloc(d->n);
    if (out == NULL)
        abort();
    // (the decoder reports the flags without AUTH: its trailer is the caller's business)
    size_t n = mcl__wire_put_hdr(out, d->h.flags | (d->b[4] & MCL__WIRE_F_AUTH), d->h.count,
                                 d->h.publisher);
    for (unsigned i = 0; i < d->h.count; i++) {
        const mcl__wire_rec *r = &d->recs[i];
        size_t need = (frag ? MCL__WIRE_FRAGREC : MCL__WIRE_REC) + r->topic_len + (size_t)r->len;
        if (need > d->n - n)
            abort();
        if (frag)
            n += mcl__wire_put_frag(out + n, r->seq, (const char *)r->topic, r->topic_len, r->len,
                                    r->total, r->offset, r->index, r->count);
        else
            n += mcl__wire_put_rec(out + n, r->seq, (const char *)r->topic, r->topic_len, r->len);
        if (r->len > 0)
            memcpy(out + n, r->payload, r->len);
        n += r->len;
    }
    if (n != d->n || memcmp(out, d->b, n) != 0)
        abort(); // one encoding: every byte of a v1 datagram is a field
    mcl__wire_hdr h;
    if (mcl__wire_check(&h, out, n) != MCL_OK || h.flags != d->h.flags || h.count != d->h.count ||
        h.publisher != d->h.publisher)
        abort();
    size_t off = MCL__WIRE_HDR;
    for (unsigned i = 0; i < h.count; i++) {
        mcl__wire_rec r;
        mcl__wire_next(out, &off, frag, &r);
        const mcl__wire_rec *o = &d->recs[i];
        if (r.seq != o->seq || r.topic_len != o->topic_len || r.len != o->len ||
            r.total != o->total || r.offset != o->offset || r.index != o->index ||
            r.count != o->count || r.fsize != o->fsize ||
            memcmp(r.topic, o->topic, r.topic_len) != 0 ||
            (r.len > 0 && memcmp(r.payload, o->payload, r.len) != 0))
            abort();
    }
    free(out);
}

// Whether the publisher's numbers in this input stay within SEQ_SPAN of each other.
static bool
steady(const pubspan *ps, size_t nps, uint64_t id)
{
    for (size_t i = 0; i < nps; i++)
        if (ps[i].id == id)
            return ps[i].hi - ps[i].lo <= SEQ_SPAN;
    abort(); // every delivered publisher was seen in a datagram
}

// A reassembled message of datagram `last` must be its fragments, each index taken from the
// first fragment of that message of the shape of the one that completed it (fragments that
// disagree reassemble apart: the engine's rule).
static void
check_reassembled(const dgram *dg, size_t last, const mcl_raw_msg *m)
{
    const mcl__wire_rec *first = NULL, *done = &dg[last].recs[0];
    uint8_t *ref = NULL, *have = NULL;
    uint32_t got = 0;
    for (size_t j = 0; j <= last; j++) {
        const dgram *d = &dg[j];
        if (d->rv != MCL_OK || !(d->h.flags & MCL__WIRE_F_FRAG) || d->h.publisher != m->publisher ||
            (d->h.flags & MCL__WIRE_F_ZIP) != (dg[last].h.flags & MCL__WIRE_F_ZIP))
            continue;
        const mcl__wire_rec *r = &d->recs[0];
        if (r->seq != m->seq || r->total != done->total || r->count != done->count ||
            r->fsize != done->fsize || r->topic_len != done->topic_len ||
            memcmp(r->topic, done->topic, r->topic_len) != 0)
            continue;
        if (first == NULL) {
            first = r;
            if (m->len != r->total || m->topic_len != r->topic_len ||
                memcmp(m->topic, r->topic, r->topic_len) != 0)
                abort();
            ref = malloc(r->total);
            have = calloc(r->count, 1);
            if (ref == NULL || have == NULL)
                abort();
        } else if (r->total != first->total || r->count != first->count ||
                   r->fsize != first->fsize || r->topic_len != first->topic_len ||
                   memcmp(r->topic, first->topic, r->topic_len) != 0) {
            continue; // contradicts the first: dropped as malformed
        }
        if (have[r->index])
            continue;
        have[r->index] = 1;
        got++;
        memcpy(ref + r->offset, r->payload, r->len);
    }
    if (first == NULL || got != first->count || memcmp(ref, m->payload, m->len) != 0)
        abort();
    free(ref);
    free(have);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned cfgb = data[0];
    unsigned filter = cfgb & 3;
    static const struct {
        size_t maxmsg, partmem;
    } limits[4] = {{1u << 20, 1u << 20}, {16, 4096}, {4096, 512}, {65536, 65536}};
    mcl__rx_cfg cfg = {.maxmsg = limits[(cfgb >> 2) & 3].maxmsg,
                       .partmem = limits[(cfgb >> 2) & 3].partmem,
                       .expire_ns = 3000000};
    int64_t step = (int64_t)(cfgb >> 5) * 1000000;

    // Split the rest into datagrams, each an exact-size copy, and decode them.
    dgram dg[MAX_DG];
    size_t ndg = 0;
    pubspan ps[MAX_DG];
    size_t nps = 0;
    size_t off = 1;
    while (ndg < MAX_DG && size - off >= 2) {
        size_t n = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (n > size - off)
            n = size - off;
        dgram *d = &dg[ndg++];
        memset(d, 0, sizeof(*d));
        d->b = malloc(n ? n : 1);
        if (d->b == NULL)
            abort();
        memcpy(d->b, data + off, n);
        d->n = n;
        off += n;
        d->rv = mcl__wire_check(&d->h, d->b, n);
        if (d->rv != MCL_OK && d->rv != MCL_EPROTO)
            abort();
        if (d->rv != MCL_OK)
            continue;
        bool hb = (d->h.flags & MCL__WIRE_F_HB) != 0;
        if (hb) {
            check_heartbeat(d);
        } else {
            decode_all(d);
            reencode(d);
        }
        size_t k = 0;
        while (k < nps && ps[k].id != d->h.publisher)
            k++;
        if (k == nps)
            ps[nps++] = (pubspan){d->h.publisher, UINT64_MAX, 0};
        if (hb) // (a publisher known from its heartbeats alone: no numbers)
            continue;
        for (unsigned i = 0; i < d->h.count; i++) {
            if (d->recs[i].seq < ps[k].lo)
                ps[k].lo = d->recs[i].seq;
            if (d->recs[i].seq > ps[k].hi)
                ps[k].hi = d->recs[i].seq;
        }
    }

    // The receive engine over the same datagrams.
    static const char *const *filters[4] = {NULL, filter_imu, filter_ab, filter_all};
    static const size_t nfilters[4] = {0, 1, 2, 1};
    mcl__rx rx;
    if (mcl__rx_init(&rx, &cfg, filters[filter], nfilters[filter]) != MCL_OK)
        abort();
    rx.gaps_uncounted = (cfgb & 0x10) != 0;
    struct {
        uint64_t pub, seq;
    } *seen = NULL;
    size_t nseen = 0, capseen = 0;
    uint64_t delivered = 0, bad = 0;
    int64_t now = 1000000000;
    for (size_t i = 0; i < ndg; i++) {
        dgram *d = &dg[i];
        mcl__rx_expire(&rx, now);
        mcl__rx_meta meta = {.real_ns = now, .mono_ns = now, .family = 4, .port = 9};
        mcl_err rv = mcl__rx_begin_counted(&rx, d->b, d->n, &meta);
        if (rv != d->rv)
            abort(); // the engine and the decoder disagree
        if (rv != MCL_OK)
            bad++;
        bool frag = rv == MCL_OK && (d->h.flags & MCL__WIRE_F_FRAG);
        unsigned next = 0, out = 0;
        mcl_raw_msg m;
        while (mcl__rx_next(&rx, &m)) {
            if (rv != MCL_OK || ++out > d->h.count || m.publisher != d->h.publisher)
                abort();
            if (m.topic == NULL || m.topic[m.topic_len] != '\0' || strlen(m.topic) != m.topic_len)
                abort();
            if (!admitted(filter, m.topic, m.topic_len) || m.len > cfg.maxmsg ||
                (frag && m.len > cfg.partmem) || (m.len > 0 && m.payload == NULL))
                abort();
            if (m.recv_mono_ns != now || m.recv_realtime_ns != now || m.sender_port != 9)
                abort();
            bool zip = (d->h.flags & MCL__WIRE_F_ZIP) != 0;
            if (!frag && zip) { // a record of this datagram, opened, after the last delivered
                bool found = false;
                while (!found && next < d->h.count) {
                    const mcl__wire_rec *r = &d->recs[next++];
                    if (r->seq != m.seq || r->topic_len != m.topic_len ||
                        memcmp(r->topic, m.topic, m.topic_len) != 0 || r->len < MCL__WIRE_ZENV)
                        continue;
                    size_t orig = mcl__get_be32(r->payload + 2);
                    if (orig != m.len)
                        continue;
                    uint8_t *opened = malloc(orig ? orig : 1);
                    mcl__zctx *z = mcl__zctx_new();
                    if (opened == NULL || z == NULL)
                        abort();
                    found = mcl__z_decompress(z, r->payload[0], r->payload + MCL__WIRE_ZENV,
                                              r->len - MCL__WIRE_ZENV, opened, orig) == MCL_OK &&
                            (orig == 0 || memcmp(opened, m.payload, orig) == 0);
                    mcl__zctx_free(z);
                    free(opened);
                }
                if (!found)
                    abort();
            } else if (!frag) { // a record of this datagram, in place, after the last delivered
                bool found = false;
                while (!found && next < d->h.count) {
                    const mcl__wire_rec *r = &d->recs[next++];
                    found = r->seq == m.seq && r->len == m.len && r->topic_len == m.topic_len &&
                            memcmp(r->topic, m.topic, m.topic_len) == 0 &&
                            (m.len == 0 || m.payload == (const void *)r->payload);
                }
                if (!found)
                    abort();
            } else if (!zip && steady(ps, nps, m.publisher)) {
                check_reassembled(dg, i, &m);
            }
            // Every byte readable (ASan), and never the same message twice.
            volatile uint8_t sum = 0;
            for (size_t k = 0; k < m.len; k++)
                sum ^= ((const uint8_t *)m.payload)[k];
            (void)sum;
            if (steady(ps, nps, m.publisher)) {
                for (size_t k = 0; k < nseen; k++)
                    if (seen[k].pub == m.publisher && seen[k].seq == m.seq)
                        abort(); // delivered twice
                if (nseen == capseen) {
                    capseen = capseen ? 2 * capseen : 64;
                    void *ns = realloc(seen, capseen * sizeof(*seen));
                    if (ns == NULL)
                        abort();
                    seen = ns;
                }
                seen[nseen].pub = m.publisher;
                seen[nseen].seq = m.seq;
                nseen++;
            }
            delivered++;
        }
        // Partial messages stay under the cap (one alone may exceed it by its bookkeeping).
        if (rx.part_bytes > cfg.partmem && rx.nparts > 1)
            abort();
        now += step;
    }
    mcl_listener_stats st;
    mcl__rx_stats(&rx, &st);
    if (st.messages != delivered || st.datagrams != ndg || st.malformed < bad ||
        st.partial_count != rx.nparts || st.partial_bytes != rx.part_bytes || st.publishers > nps)
        abort();
    mcl_publisher_stats pst[4];
    if (mcl__rx_publishers(&rx, pst, 4) != st.publishers)
        abort();
    mcl__rx_fini(&rx);
    free(seen);
    for (size_t i = 0; i < ndg; i++) {
        free(dg[i].recs);
        free(dg[i].b);
    }
    return 0;
}
