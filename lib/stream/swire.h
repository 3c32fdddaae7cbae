// SPDX-License-Identifier: BSD-3-Clause
// The stream layer's messages (docs/streams.md), carried on one packet-stream channel: OPEN and
// LIST are requests (answered), the rest one-way messages. The packet stream's type field says
// which message; the payload starts with the stream id and the context id. Pure: no I/O, no
// allocation; decoders never read outside [p, p+n) and check every field.
#ifndef MCL__SWIRE_H
#define MCL__SWIRE_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MCL__SM_OPEN = 1, // request: peer -> server
    MCL__SM_LIST = 2, // request: peer -> server
    MCL__SM_READ = 10,   // p -> s: start a read context
    MCL__SM_WRITE = 11,  // p -> s: start a write context
    MCL__SM_LIMIT = 12,  // p -> s: read credit
    MCL__SM_WLIMIT = 13, // s -> p: write credit (and units written)
    MCL__SM_PUSH = 14,   // s -> p: read data
    MCL__SM_WPUSH = 15,  // p -> s: write data
    MCL__SM_POS = 16,    // s -> p: where a context starts, and the data's bounds
    MCL__SM_CTXERR = 17, // s -> p: the context failed
    MCL__SM_TRUNC = 18,  // p -> s: truncate at a position (opens a write context there)
    MCL__SM_CLOSE = 19,  // p -> s
    MCL__SM_CLOSED = 20, // s -> p
    MCL__SM_FAIL = 21,   // p -> s: the stream failed (the peer's side)
    MCL__SM_SFAIL = 22,  // s -> p: the stream failed (the streamer's side)
};

enum {
    MCL__SW_VERSION = 1,
    MCL__SW_HDR = 8,          // sid, ctx
    MCL__SW_PUSH_HDR = 8 + 24, // ... flags(1) 0(3) nunits(4) pushno(8) offset(8)
    MCL__SW_TEXT_MAX = 1024,  // names, params, messages, info: at most this many bytes
    MCL__SW_INFO_MAX = 8192,  // a source's description
};

enum { MCL__SW_EOS = 1 };                           // PUSH flags
enum { MCL__SW_GENERAL = 1, MCL__SW_INVALID_POS = 2 }; // CTXERR codes

typedef struct mcl__smsg {
    int type;
    uint32_t sid, ctx;
    // READ, WRITE: whence, offset, eos; READ: initial credit.
    uint8_t whence, eos;
    int64_t offset;
    // LIMIT, WLIMIT, READ: credit; WLIMIT: done (units the source has).
    uint32_t lseq;
    uint64_t ulimit, plimit, done;
    // PUSH, WPUSH
    uint8_t flags;
    uint32_t nunits;
    uint64_t pushno, poff;
    const uint8_t *data; // bytes, or nunits x (u32 length, bytes)
    size_t len;
    // POS: ctx start, data bounds; TRUNC: the position
    uint64_t pos, start, end;
    // CTXERR, FAIL: code, text
    uint16_t code;
    const uint8_t *text;
    size_t textlen;
} mcl__smsg;

// Decodes the one-way message of packet-stream type `type` (MCL__SM_READ..SFAIL). `entities`
// checks a push's element framing (else its bytes count as nunits). MCL_EPROTO with the reason.
mcl_err mcl__smsg_decode(int type, const uint8_t *p, size_t n, bool entities, mcl__smsg *m,
                         char *why, size_t whylen);
// Encodes m's header (everything but a push's data and a text) into buf (at least 64 bytes):
// returns its length. The text of CTXERR, FAIL and SFAIL follows it, then a push's data.
size_t mcl__smsg_encode(const mcl__smsg *m, uint8_t *buf);

// OPEN request and its answer.
typedef struct mcl__sopen {
    uint32_t sid;
    unsigned mode;  // required (request); the source's (answer)
    uint8_t kind;   // answer
    uint64_t window; // both: read-ahead (the answer: clamped)
    uint32_t max_pushes;
    uint32_t max_push;
    uint64_t start, end; // answer
    const uint8_t *name, *params, *info;
    size_t namelen, paramslen, infolen;
} mcl__sopen;

mcl_err mcl__sopen_decode_req(const uint8_t *p, size_t n, mcl__sopen *o, char *why, size_t whylen);
mcl_err mcl__sopen_decode_ans(const uint8_t *p, size_t n, mcl__sopen *o, char *why, size_t whylen);
// Encodes into buf (cap bytes): the length, or 0 when it does not fit.
size_t mcl__sopen_encode_req(const mcl__sopen *o, uint8_t *buf, size_t cap);
size_t mcl__sopen_encode_ans(const mcl__sopen *o, uint8_t *buf, size_t cap);

// Walks a LIST answer: (u16 name length, name, u16 info length, info)...; calls cb per entry.
mcl_err mcl__slist_decode(const uint8_t *p, size_t n,
                          void (*cb)(void *user, const char *name, const char *info), void *user,
                          char *why, size_t whylen);

// Splits the entities of a push (validated by mcl__smsg_decode): element i at *off.
const uint8_t *mcl__spush_elem(const uint8_t *data, size_t *off, size_t *len);

#endif
