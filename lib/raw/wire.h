// Wire format v1 (docs/wire-format.md is the specification; keep the two in step).
// Everything is big-endian and encoded/decoded byte by byte.
#ifndef MCL__WIRE_H
#define MCL__WIRE_H

#include <mcl/err.h>

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
#define MCL__WIRE_F_AUTH 0x02u // reserved: an authentication trailer ends the datagram
#define MCL__WIRE_F_KNOWN (MCL__WIRE_F_FRAG)

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
} mcl__wire_rec;

// Validates a whole datagram (header and every record, all lengths against the buffer) and fills
// the header. MCL_EPROTO for anything malformed or foreign, MCL_ENOTSUP for a v1 datagram that
// uses a flag this receiver does not implement. Never reads outside [p, p+len).
mcl_err mcl__wire_check(mcl__wire_hdr *h, const uint8_t *p, size_t len);

// Decodes the record at *off (after a successful mcl__wire_check of the same datagram) and
// advances *off past it.
void mcl__wire_next(const uint8_t *p, size_t *off, bool frag, mcl__wire_rec *r);

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
