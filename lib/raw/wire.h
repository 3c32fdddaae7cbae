// SPDX-License-Identifier: BSD-3-Clause
// Wire format v1 (docs/wire-format.md is the specification; keep the two in step).
// Everything is big-endian and encoded/decoded byte by byte.
#ifndef MCL__WIRE_H
#define MCL__WIRE_H

#include <mcl/err.h>

#include "../core/internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCL__WIRE_MAGIC 0x4D434C01u // 'M' 'C' 'L' and version 1
enum {
    MCL__WIRE_HDR = 16,    // datagram header
    MCL__WIRE_REC = 14,    // header of an unfragmented record
    MCL__WIRE_FRAGREC = 30 // header of a fragment record
};
#define MCL__WIRE_F_FRAG 0x01u // the datagram holds exactly one fragment record
#define MCL__WIRE_F_AUTH 0x02u // an authentication trailer ends the datagram (auth.h)
#define MCL__WIRE_F_HB 0x04u   // the datagram holds exactly one heartbeat record
#define MCL__WIRE_F_ZIP 0x10u // each record's message is a compressed envelope (below)
#define MCL__WIRE_F_KNOWN (MCL__WIRE_F_FRAG | MCL__WIRE_F_HB | MCL__WIRE_F_ZIP)

// The envelope of a compressed message (MCL__WIRE_F_ZIP): u8 codec (lib/core/zcodec.h,
// 1 zstd, 2 lz4), u8 reserved (0), u32 the message's length before compression, then the
// codec's stream. Of a fragmented message, the whole reassembled message is the envelope.
enum { MCL__WIRE_ZENV = 6 };
static inline void
mcl__wire_put_zenv(uint8_t *p, uint8_t codec, uint32_t orig)
{
    p[0] = codec;
    p[1] = 0;
    p[2] = (uint8_t)(orig >> 24);
    p[3] = (uint8_t)(orig >> 16);
    p[4] = (uint8_t)(orig >> 8);
    p[5] = (uint8_t)orig;
}

// Heartbeats (docs/wire-format.md): a fixed part, host and program names, then topics.
enum {
    MCL__WIRE_HB_FIXED = 24, // next_seq, interval, pid, flags, host_len, prog_len, n, total
    MCL__WIRE_HB_NAME_MAX = 63, // (so that a name and its NUL fit 64 bytes)
    MCL__WIRE_HB_TOPIC_REC = 10, // u16 topic_len + u64 count, then the topic
};
#define MCL__WIRE_HB_BYE 0x0001u // the publisher is closing: nothing follows this heartbeat

typedef struct mcl__wire_hb {
    uint64_t next_seq;    // the number its next message will get (= messages it numbered)
    uint32_t interval_ms; // its heartbeat period
    uint32_t pid;
    uint16_t flags;       // MCL__WIRE_HB_BYE
    const uint8_t *host, *prog;
    uint8_t host_len, prog_len;
    uint16_t ntopics;      // topics listed in this heartbeat
    uint16_t topics_total; // topics it has published (the list rotates when they do not fit)
    const uint8_t *topics; // ntopics records: u16 len, u64 count, topic
} mcl__wire_hb;

// Decodes the heartbeat of a datagram that mcl__wire_check() accepted with MCL__WIRE_F_HB.
void mcl__wire_hb_get(const uint8_t *p, size_t len, mcl__wire_hb *hb);
// The next topic of hb->topics at *off: its name and the messages published on it.
void mcl__wire_hb_topic(const uint8_t *topics, size_t *off, const uint8_t **topic,
                        uint16_t *tl, uint64_t *count);
// Writes a heartbeat datagram (header included) into p[0..cap): the fixed part and names,
// then as many of the n topics as fit, starting at topic `first` and wrapping; returns its
// length (0 when not even the fixed part fits).
size_t mcl__wire_put_hb(uint8_t *p, size_t cap, uint64_t publisher, const mcl__wire_hb *hb,
                        const char *const *topics, const uint16_t *tls, const uint64_t *counts,
                        size_t n, size_t first);

typedef struct mcl__wire_hdr {
    uint8_t flags;
    uint16_t count;     // records in the datagram
    uint64_t publisher; // random id of the sending broadcaster
} mcl__wire_hdr;

typedef struct mcl__wire_rec {
    uint64_t seq;
    const uint8_t *topic; // not NUL-terminated
    uint16_t topic_len;
    const uint8_t *payload;
    uint32_t len; // bytes of payload in this record
    bool frag;
    uint32_t total;  // fragment: length of the whole message
    uint32_t offset; // fragment: where this piece goes
    uint32_t index;  // fragment: 0-based index
    uint32_t count;  // fragment: number of fragments (>= 2)
    uint32_t fsize;  // fragment: the sender's fragment size (derived, every piece but the last)
    bool zip;        // the datagram's MCL__WIRE_F_ZIP (set by the receive engine)
} mcl__wire_rec;

// Validates a whole datagram (header and every record, all lengths against the buffer) and fills
// the header (its flags without MCL__WIRE_F_AUTH: an authenticated datagram comes here with
// its trailer already checked and cut off, lib/raw/auth.c). MCL_EPROTO for anything malformed
// or foreign (an unknown flag included). Never reads outside [p, p+len).
mcl_err mcl__wire_check(mcl__wire_hdr *h, const uint8_t *p, size_t len);

// Whether the datagram's header says it holds one unfragmented, uncompressed record and no
// heartbeat (a peek: nothing else is checked; mcl__wire_check still judges it).
static inline bool
mcl__wire_one_plain(const uint8_t *p, size_t len)
{
    return len >= MCL__WIRE_HDR && p[6] == 0 && p[7] == 1 &&
           !(p[4] & (MCL__WIRE_F_FRAG | MCL__WIRE_F_HB | MCL__WIRE_F_ZIP));
}

// Decodes the record at *off (after a successful mcl__wire_check of the same datagram) and
// advances *off past it. (Inline: the receive engine calls it for every record.)
static inline void
mcl__wire_next(const uint8_t *p, size_t *off, bool frag, mcl__wire_rec *r)
{
    const uint8_t *b = p + *off;
    r->seq = mcl__get_be64(b);
    r->topic_len = mcl__get_be16(b + 8);
    r->len = mcl__get_be32(b + 10);
    r->frag = frag;
    size_t rh = MCL__WIRE_REC;
    if (frag) {
        r->total = mcl__get_be32(b + 14);
        r->offset = mcl__get_be32(b + 18);
        r->index = mcl__get_be32(b + 22);
        r->count = mcl__get_be32(b + 26);
        r->fsize = r->index + 1 < r->count ? r->len : r->offset / (r->count - 1);
        rh = MCL__WIRE_FRAGREC;
    } else {
        r->total = r->len;
        r->offset = 0;
        r->index = 0;
        r->count = 1;
        r->fsize = r->len;
    }
    r->topic = b + rh;
    r->payload = b + rh + r->topic_len;
    *off += rh + r->topic_len + r->len;
}

// Encoders: write the header bytes (for records: header and topic; the payload follows
// separately, e.g. in its own iovec). Return the number of bytes written.
size_t mcl__wire_put_hdr(uint8_t *p, uint8_t flags, uint16_t count, uint64_t publisher);
size_t mcl__wire_put_rec(uint8_t *p, uint64_t seq, const char *topic, uint16_t topic_len,
                         uint32_t len);
size_t mcl__wire_put_frag(uint8_t *p, uint64_t seq, const char *topic, uint16_t topic_len,
                          uint32_t len, uint32_t total, uint32_t offset, uint32_t index,
                          uint32_t count);

// Fragment plan for a message: how many fragments of what size for a datagram limit. A message
// fits unfragmented when *count is 1.
void mcl__wire_plan(size_t dgram, size_t topic_len, size_t len, uint32_t *count, size_t *fsize);

#endif
