// SPDX-License-Identifier: BSD-3-Clause
// Authenticated (and optionally encrypted) datagrams: the AUTH trailer of wire format v1
// (docs/wire-format.md "Authentication", docs/security.md). Pure computation on buffers.
//
// A datagram with MCL__WIRE_F_AUTH ends with a 44-byte trailer:
//   key_id u32 | signer u64 | counter u64 | time_ns i64 | tag 16 bytes
// The nonce of a datagram is signer || 8 zero bytes || counter (24 bytes).
// MAC only: tag = Poly1305 of every byte before the tag (the header with the AUTH flag set, the
// records, the first 28 bytes of the trailer) under a one-time key: the first 32 bytes of the
// XChaCha20 key stream of the MAC subkey under the nonce.
// Encrypted (MCL__WIRE_F_ENC as well): the records are XChaCha20-Poly1305 (IETF) ciphertext
// under the encryption subkey and the nonce, additional data = header || the first 28 trailer
// bytes; tag = its Poly1305 tag.
// `signer` is the id of the broadcaster that sealed it (its own publisher id, or a bridge's),
// `counter` numbers the datagrams it sealed from 1, `time_ns` is its CLOCK_REALTIME.
#ifndef MCL__AUTH_H
#define MCL__AUTH_H

#include "../core/gkey.h"
#include "../core/u64map.h"

#include <sys/uio.h>

#define MCL__WIRE_F_ENC 0x08u // with AUTH: the records are encrypted
enum { MCL__AUTH_TRAILER = 44, MCL__AUTH_TAG = 16 };

// --- sending ---

// A signer's subkeys (HChaCha20 of the MAC and encryption subkeys under signer || 8 zero
// bytes): computed once per signer.
typedef struct mcl__auth_sub {
    uint8_t mac[32], enc[32];
} mcl__auth_sub;
void mcl__auth_subkeys(mcl__auth_sub *s, const mcl__gkey *k, uint64_t signer);

typedef struct mcl__auth_tx {
    const mcl__gkey *key; // signs (the first key of the file)
    bool encrypt;
    uint64_t signer;
    uint64_t counter; // the last one used
    bool sub_ready;   // (sub computed on first use)
    mcl__auth_sub sub;
} mcl__auth_tx;

// MAC mode: the trailer for the datagram iov[0..niov) (iov[0] starts with the 16-byte header,
// whose flag byte the caller has already or'ed with MCL__WIRE_F_AUTH).
void mcl__auth_mac(mcl__auth_tx *a, const struct iovec *iov, unsigned niov, int64_t real_ns,
                   uint8_t trailer[MCL__AUTH_TRAILER]);

// Encrypted mode: buf[0..len) is a whole datagram (header first); sets AUTH|ENC in its header,
// encrypts the records in place and appends the trailer at buf + len (room for
// MCL__AUTH_TRAILER more bytes is the caller's). Returns the new length.
size_t mcl__auth_seal(mcl__auth_tx *a, uint8_t *buf, size_t len, int64_t real_ns);

// --- receiving ---

typedef struct mcl__auth_rx {
    const mcl__gkeys *keys; // n == 0: no key (MAC-only datagrams pass unverified)
    int64_t skew_ns;
    mcl__u64map signers; // signer -> struct signer window (only after a valid tag)
    size_t nsigners;
    uint8_t *buf; // decrypted datagram (encrypted mode), cap bytes
    size_t cap;
    uint64_t rejected; // failed authentication (no trailer, unknown key, bad tag, no key)
    uint64_t replayed; // valid tag, but seen before, older than the window, or out of time
    uint64_t evicted;  // signers forgotten to respect the table's bound
} mcl__auth_rx;

void mcl__auth_rx_init(mcl__auth_rx *a, const mcl__gkeys *keys, uint32_t skew_s);
void mcl__auth_rx_fini(mcl__auth_rx *a);

enum { MCL__AUTH_PASS, MCL__AUTH_REJECTED, MCL__AUTH_REPLAYED, MCL__AUTH_NOMEM };

// Checks a received datagram. PASS: *out/*outlen is the datagram to decode without its trailer
// (borrowed from dg, or from a->buf until the next call); else it is to be dropped (counted in
// a->rejected / a->replayed). A listener with keys refuses datagrams without the AUTH flag.
int mcl__auth_open(mcl__auth_rx *a, const uint8_t *dg, size_t len, int64_t now_real_ns,
                   const uint8_t **out, size_t *outlen);

#endif
