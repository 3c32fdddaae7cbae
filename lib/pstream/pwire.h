// SPDX-License-Identifier: BSD-3-Clause
// The packet stream's packets on the wire: the native format (docs/pstream-format.md) and the
// format of Python's cs.packetstream (../shared/research/cs-packetstream-wire.md), decoded and
// encoded byte by byte. Pure: no I/O, no allocation, so the fuzz target and the tests drive it
// directly. Decoders never read outside [p, p+n) and check every field.
#ifndef MCL__PWIRE_H
#define MCL__PWIRE_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum {
    MCL__PS_NATIVE = 1, // the native format
    MCL__PS_CS = 2,     // Python cs.packetstream
};

enum {
    MCL__PK_REQUEST = 1,
    MCL__PK_RESPONSE = 2,
    MCL__PK_CANCEL = 3,
    MCL__PK_ERQ = 4, // end of requests: the sender makes no more requests
    MCL__PK_EOF = 5, // the sender sends nothing more
    MCL__PK_PING = 6,
    MCL__PK_PONG = 7,
    MCL__PK_MESSAGE = 8, // one-way: no response (native only)
};

#define MCL__PW_VERSION 1
#define MCL__PW_HDR 24      // the native header
#define MCL__PW_HDR_MAX 32  // room for any header (a cs header is at most 25 bytes)
#define MCL__PW_PING_MAX 64 // payload of a ping (echoed by the pong)

// Response statuses on the wire (the values of mcl_pstream_status).
enum {
    MCL__PST_OK = 0,
    MCL__PST_REJECTED = 24, // cs.packetstream: "not ok", the reason in the message
};

typedef struct mcl__pkt {
    int kind;
    uint16_t status; // responses
    uint32_t channel, tag;
    uint32_t type; // requests
    uint32_t flags;
    const uint8_t *msg; // responses: the status message (UTF-8), msglen bytes (not terminated)
    size_t msglen;
    const uint8_t *pre; // sending only: bytes sent before the payload, as part of it
    size_t prelen;
    const uint8_t *payload;
    size_t len;
} mcl__pkt;

// Decodes one packet (framing already removed). MCL_EPROTO with the reason in why for anything
// malformed, unknown or inconsistent; then *k is undefined.
mcl_err mcl__pkt_decode(int codec, const uint8_t *p, size_t n, mcl__pkt *k, char *why,
                        size_t whylen);

// The pieces of packet k: its header (written into hdr, MCL__PW_HDR_MAX bytes), then the
// message, the prefix and the payload (pointing into k). *niov is 1 to 4. MCL_ENOTSUP for what the codec
// cannot say (cs.packetstream has no cancel, no ping and no message), MCL_EINVAL for a message longer than
// 65535 bytes.
mcl_err mcl__pkt_encode(int codec, const mcl__pkt *k, uint8_t *hdr, struct iovec *iov,
                        unsigned *niov);

// Big-endian base-128 varints (cs.packetstream's BSUInt): writes the minimal form, returns its
// length (at most 10). Decoding accepts non-minimal forms up to 16 bytes and values up to
// UINT64_MAX: MCL_OK with *used, MCL_EAGAIN when p ends inside it, MCL_EPROTO when too long.
size_t mcl__bsuint_put(uint8_t *p, uint64_t v);
mcl_err mcl__bsuint_get(const uint8_t *p, size_t n, uint64_t *v, size_t *used);

// Whether [p, p+n) is UTF-8 without NUL (status messages from strangers are shown as text).
bool mcl__utf8_ok(const uint8_t *p, size_t n);

#endif
