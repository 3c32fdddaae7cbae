// SPDX-License-Identifier: BSD-3-Clause
// The broker's data plane (docs/broker.md): one-way packet-stream messages on
// MCL_BROKER_DATA_CHANNEL, the packet stream's type saying which. All integers big-endian.
// Pure: decoders never read outside [p, p+n).
#ifndef MCL__BWIRE_H
#define MCL__BWIRE_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MCL__BM_PUT = 1,     // client -> broker: u32 wid, frame
    MCL__BM_DELIVER = 2, // broker -> client: u32 sub, u64 seq, frame
    MCL__BM_ACK = 3,     // client -> broker: u32 sub, u64 taken (cumulative)
    MCL__BM_ACTIVE = 4,  // broker -> client: u32 wid, u8 active (0/1)
    MCL__BM_CREDIT = 5,  // broker -> client: u32 wid, u64 limit (cumulative frames)
    MCL__BM_ENDED = 6,   // broker -> client: u32 id, u8 what (1 subscription, 2 writer), text
    MCL__BM_END = 7,     // client -> broker: u32 wid: the end of a transfer (a mark)
    MCL__BM_MARK = 8,    // broker -> client: u32 sub, u64 seq: the end of a transfer
    MCL__BM_DELIVERN = 9, // broker -> client: u32 sub, u32 n, n x (u64 seq, u32 len, frame)
};

// Walks the frames of a DELIVERN (validated by mcl__bmsg_decode): the next one at *off.
const uint8_t *mcl__bmsg_next(const uint8_t *data, size_t *off, uint64_t *seq, size_t *len);

enum { MCL__BE_SUB = 1, MCL__BE_WRITER = 2 };

typedef struct mcl__bmsg {
    int type;
    uint32_t id;  // wid or sub
    uint64_t num; // seq, taken, limit
    uint8_t flag; // active, what
    const uint8_t *data; // frame or text
    size_t len;
} mcl__bmsg;

// Decodes a message of packet-stream type `type`; MCL_EPROTO with the reason.
mcl_err mcl__bmsg_decode(int type, const uint8_t *p, size_t n, mcl__bmsg *m, char *why,
                         size_t whylen);
// Encodes m's header (all but data) into h (at least 16 bytes): its length.
size_t mcl__bmsg_encode(const mcl__bmsg *m, uint8_t *h);

#endif
