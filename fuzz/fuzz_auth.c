// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: authenticated datagrams and group key files from strangers (lib/raw/auth.c,
// lib/core/gkey.c). The first byte picks what the rest is:
//   0: a key file's text (mcl__gkeys_parse): it parses or is refused with a message; a parsed
//      file has 1..8 keys, and parsing it again gives the same keys;
//   1: a received datagram for a listener with a key (MAC and encrypted forms, replay window,
//      time bound) and for one without: never a read outside the input (exact-size copy), a
//      MAC-only pass only for a datagram whose tag verifies by the specification (recomputed
//      here), and the keyless listener passes at most the bytes before the trailer;
//   2: a datagram body to seal (MAC and encrypted) that must open to the same bytes once and
//      be refused as a replay the second time, and refused after any one byte is changed.
#include "core/gkey.h"
#include "core/internal.h"
#include "raw/auth.h"
#include "raw/wire.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char keytext[] =
    "key = 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
static const int64_t NOW = 1700000000000000000LL;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0] % 3;
    size_t n = size - 1;
    uint8_t *b = malloc(n + MCL__AUTH_TRAILER + 1);
    if (b == NULL)
        abort();
    memcpy(b, data + 1, n);
    mcl__gkeys k, k2, none = {0};
    char err[256];
    if (mode == 0) {
        mcl_err rv = mcl__gkeys_parse(&k, (const char *)b, n, err, sizeof(err));
        if (rv == MCL_OK) {
            if (k.n < 1 || k.n > MCL__GKEY_MAX)
                abort();
            if (mcl__gkeys_parse(&k2, (const char *)b, n, err, sizeof(err)) != MCL_OK ||
                memcmp(&k, &k2, sizeof(k)) != 0)
                abort();
        } else if (rv != MCL_EAUTH || err[0] == '\0') {
            abort();
        }
        free(b);
        return 0;
    }
    if (mcl__gkeys_parse(&k, keytext, sizeof(keytext) - 1, err, sizeof(err)) != MCL_OK)
        abort();
    mcl__auth_rx a;
    const uint8_t *out;
    size_t ol;
    if (mode == 1) {
        mcl__auth_rx_init(&a, &k, 60);
        int r = mcl__auth_open(&a, b, n, NOW, &out, &ol);
        if (r == MCL__AUTH_PASS && !(b[4] & MCL__WIRE_F_ENC)) { // (a seed may be genuine)
            if (n < MCL__WIRE_HDR + MCL__AUTH_TRAILER)
                abort();
            const uint8_t *t = b + n - MCL__AUTH_TRAILER;
            uint8_t nonce[24] = {0}, otk[32], tag[16];
            memcpy(nonce, t + 4, 8); // signer || 8 zero bytes || counter
            memcpy(nonce + 16, t + 12, 8);
            crypto_stream_xchacha20(otk, 32, nonce, k.k[0].mac);
            crypto_onetimeauth_poly1305(tag, b, n - 16, otk);
            if (memcmp(tag, b + n - 16, 16) != 0)
                abort(); // passed without a valid tag
        }
        mcl__auth_rx_fini(&a);
        mcl__auth_rx_init(&a, &none, 60);
        r = mcl__auth_open(&a, b, n, NOW, &out, &ol);
        if (r == MCL__AUTH_PASS && (out != b || ol > n))
            abort();
        mcl__auth_rx_fini(&a);
        free(b);
        return 0;
    }
    // mode 2: a well-formed header in front of the bytes, sealed both ways.
    if (n < MCL__WIRE_HDR) {
        free(b);
        return 0;
    }
    mcl__put_be32(b, MCL__WIRE_MAGIC);
    b[4] &= MCL__WIRE_F_FRAG | MCL__WIRE_F_HB;
    b[5] = 0;
    uint8_t *orig = malloc(n);
    if (orig == NULL)
        abort();
    memcpy(orig, b, n);
    for (int enc = 0; enc <= 1; enc++) {
        memcpy(b, orig, n);
        mcl__auth_tx tx = {.key = &k.k[0], .encrypt = enc, .signer = 42, .counter = 7};
        size_t sl;
        if (enc) {
            sl = mcl__auth_seal(&tx, b, n, NOW);
        } else {
            b[4] |= MCL__WIRE_F_AUTH;
            struct iovec iov = {b, n};
            mcl__auth_mac(&tx, &iov, 1, NOW, b + n);
            sl = n + MCL__AUTH_TRAILER;
        }
        uint8_t *c = malloc(sl); // exact size
        if (c == NULL)
            abort();
        memcpy(c, b, sl);
        mcl__auth_rx_init(&a, &k, 60);
        if (mcl__auth_open(&a, c, sl, NOW, &out, &ol) != MCL__AUTH_PASS || ol != n ||
            memcmp(out + MCL__WIRE_HDR, orig + MCL__WIRE_HDR, n - MCL__WIRE_HDR) != 0 ||
            (out[4] & (uint8_t)~MCL__WIRE_F_AUTH) != orig[4])
            abort();
        if (mcl__auth_open(&a, c, sl, NOW, &out, &ol) != MCL__AUTH_REPLAYED)
            abort();
        mcl__auth_rx_fini(&a);
        size_t at = (size_t)orig[n - 1] % sl;
        c[at] ^= 0x01;
        mcl__auth_rx_init(&a, &k, 60);
        if (mcl__auth_open(&a, c, sl, NOW, &out, &ol) == MCL__AUTH_PASS)
            abort();
        mcl__auth_rx_fini(&a);
        free(c);
    }
    free(orig);
    free(b);
    return 0;
}
