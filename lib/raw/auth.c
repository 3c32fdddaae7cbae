// SPDX-License-Identifier: BSD-3-Clause
// Authenticated datagrams: see auth.h.
#include "auth.h"

#include "../core/internal.h"
#include "wire.h"

#include <sodium.h>
#include <string.h>

enum {
    SIGNERS_MAX = 4096, // signers remembered (only ever ones with a valid tag)
    WIN = 1024,         // replay window in datagrams, per signer
};

struct signer {
    uint64_t highest; // highest counter accepted
    uint64_t bits[WIN / 64];
    int64_t last_ns; // when it was last accepted (for eviction)
    uint32_t key_id; // the key its subkeys are of
    mcl__auth_sub sub;
};

static void
put_trailer_head(uint8_t *t, const mcl__auth_tx *a, int64_t real_ns)
{
    mcl__put_be32(t, a->key->id);
    mcl__put_be64(t + 4, a->signer);
    mcl__put_be64(t + 12, a->counter);
    mcl__put_be64(t + 20, (uint64_t)real_ns);
}

// XChaCha20 with nonce = signer || 8 zero bytes || counter is ChaCha20 (IETF, nonce 4 zero bytes
// || counter) under HChaCha20(key, signer || 8 zero bytes): that subkey depends on the signer
// only, so both ends compute it once per signer.
void
mcl__auth_subkeys(mcl__auth_sub *s, const mcl__gkey *k, uint64_t signer)
{
    uint8_t in[16] = {0};
    mcl__put_be64(in, signer);
    crypto_core_hchacha20(s->mac, in, k->mac, NULL);
    crypto_core_hchacha20(s->enc, in, k->enc, NULL);
}

static void
nonce12(uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint64_t counter)
{
    memset(n, 0, 4);
    mcl__put_be64(n + 4, counter);
}

// The datagram's one-time Poly1305 key: the first 32 bytes of its key stream.
static void
one_time_key(uint8_t otk[32], const mcl__auth_sub *s, uint64_t counter)
{
    uint8_t n[crypto_stream_chacha20_ietf_NONCEBYTES];
    nonce12(n, counter);
    crypto_stream_chacha20_ietf(otk, 32, n, s->mac);
}

static void
tx_ready(mcl__auth_tx *a)
{
    if (!a->sub_ready) {
        mcl__auth_subkeys(&a->sub, a->key, a->signer);
        a->sub_ready = true;
    }
}

void
mcl__auth_mac(mcl__auth_tx *a, const struct iovec *iov, unsigned niov, int64_t real_ns,
              uint8_t trailer[MCL__AUTH_TRAILER])
{
    tx_ready(a);
    a->counter++;
    put_trailer_head(trailer, a, real_ns);
    uint8_t otk[32];
    one_time_key(otk, &a->sub, a->counter);
    crypto_onetimeauth_poly1305_state st;
    crypto_onetimeauth_poly1305_init(&st, otk);
    for (unsigned i = 0; i < niov; i++)
        crypto_onetimeauth_poly1305_update(&st, iov[i].iov_base, iov[i].iov_len);
    crypto_onetimeauth_poly1305_update(&st, trailer, MCL__AUTH_TRAILER - MCL__AUTH_TAG);
    crypto_onetimeauth_poly1305_final(&st, trailer + MCL__AUTH_TRAILER - MCL__AUTH_TAG);
    sodium_memzero(otk, sizeof(otk));
}

// The additional data of an encrypted datagram: its header and the trailer's first 28 bytes.
static void
ad_of(uint8_t ad[MCL__WIRE_HDR + 28], const uint8_t *hdr, const uint8_t *trailer)
{
    memcpy(ad, hdr, MCL__WIRE_HDR);
    memcpy(ad + MCL__WIRE_HDR, trailer, 28);
}

size_t
mcl__auth_seal(mcl__auth_tx *a, uint8_t *buf, size_t len, int64_t real_ns)
{
    tx_ready(a);
    a->counter++;
    buf[4] |= MCL__WIRE_F_AUTH | MCL__WIRE_F_ENC;
    uint8_t *t = buf + len;
    put_trailer_head(t, a, real_ns);
    uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], ad[MCL__WIRE_HDR + 28];
    nonce12(n, a->counter);
    ad_of(ad, buf, t);
    unsigned long long taglen;
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(buf + MCL__WIRE_HDR, t + 28, &taglen,
                                                       buf + MCL__WIRE_HDR, len - MCL__WIRE_HDR,
                                                       ad, sizeof(ad), NULL, n, a->sub.enc);
    return len + MCL__AUTH_TRAILER;
}

void
mcl__auth_rx_init(mcl__auth_rx *a, const mcl__gkeys *keys, uint32_t skew_s)
{
    memset(a, 0, sizeof(*a));
    a->keys = keys;
    a->skew_ns = (int64_t)skew_s * 1000000000;
    mcl__u64map_init(&a->signers);
}

static void
free_signer(uint64_t key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    sodium_memzero(val, sizeof(struct signer));
    mcl__free(val);
}

void
mcl__auth_rx_fini(mcl__auth_rx *a)
{
    mcl__u64map_each(&a->signers, free_signer, NULL);
    mcl__u64map_fini(&a->signers);
    mcl__free(a->buf);
    memset(a, 0, sizeof(*a));
}

struct stalest {
    uint64_t id;
    int64_t t;
    bool any;
};

static void
find_stalest(uint64_t key, void *val, void *arg)
{
    struct stalest *s = arg;
    const struct signer *g = val;
    if (!s->any || g->last_ns < s->t) {
        s->id = key;
        s->t = g->last_ns;
        s->any = true;
    }
}

// Whether counter c of signer g was accepted already (or is too old to tell).
static bool
seen(const struct signer *g, uint64_t c)
{
    if (c > g->highest)
        return false;
    if (g->highest - c >= WIN)
        return true;
    return (g->bits[(c / 64) % (WIN / 64)] >> (c % 64)) & 1u;
}

static void
accept(struct signer *g, uint64_t c)
{
    if (c > g->highest) {
        if (c - g->highest >= WIN) {
            memset(g->bits, 0, sizeof(g->bits));
        } else {
            for (uint64_t k = g->highest + 1; k != c; k++)
                g->bits[(k / 64) % (WIN / 64)] &= ~((uint64_t)1 << (k % 64));
        }
        g->highest = c;
    }
    g->bits[(c / 64) % (WIN / 64)] |= (uint64_t)1 << (c % 64);
}

static const mcl__gkey *
key_by_id(const mcl__gkeys *keys, uint32_t id)
{
    for (unsigned i = 0; i < keys->n; i++)
        if (keys->k[i].id == id)
            return &keys->k[i];
    return NULL;
}

int
mcl__auth_open(mcl__auth_rx *a, const uint8_t *dg, size_t len, int64_t now, const uint8_t **out,
               size_t *outlen)
{
    *out = dg;
    *outlen = len;
    // (a header the decoder refuses anyway is its business: counted as malformed)
    bool authed = len >= MCL__WIRE_HDR && (dg[4] & MCL__WIRE_F_AUTH) && dg[5] == 0 &&
                  !(dg[4] & ~(MCL__WIRE_F_KNOWN | MCL__WIRE_F_AUTH | MCL__WIRE_F_ENC)) &&
                  mcl__get_be32(dg) == MCL__WIRE_MAGIC;
    bool enc = authed && (dg[4] & MCL__WIRE_F_ENC);
    if (!authed) {
        if (a->keys->n == 0)
            return MCL__AUTH_PASS; // (the decoder judges it)
        a->rejected++;
        return MCL__AUTH_REJECTED;
    }
    if (len < MCL__WIRE_HDR + MCL__AUTH_TRAILER) {
        if (a->keys->n == 0)
            return MCL__AUTH_PASS; // (no room for a trailer: the decoder refuses it)
        a->rejected++;
        return MCL__AUTH_REJECTED;
    }
    size_t body = len - MCL__AUTH_TRAILER;
    const uint8_t *t = dg + body;
    if (a->keys->n == 0) {
        if (enc) { // cannot be read without the key
            a->rejected++;
            return MCL__AUTH_REJECTED;
        }
        *outlen = body; // unverified: this listener has no key
        return MCL__AUTH_PASS;
    }
    const mcl__gkey *k = key_by_id(a->keys, mcl__get_be32(t));
    if (k == NULL) {
        a->rejected++;
        return MCL__AUTH_REJECTED;
    }
    uint64_t signer = mcl__get_be64(t + 4), counter = mcl__get_be64(t + 12);
    int64_t when = (int64_t)mcl__get_be64(t + 20);
    struct signer *g = mcl__u64map_get(&a->signers, signer);
    // Cheap refusals first (a replay costs no tag check when it is known to be one)... but
    // only counted as replays once the tag is valid: before that it is just a forgery.
    const uint8_t *tag = t + 28;
    mcl__auth_sub fresh;
    const mcl__auth_sub *sub = &fresh;
    if (g != NULL && g->key_id == k->id)
        sub = &g->sub;
    else
        mcl__auth_subkeys(&fresh, k, signer);
    if (!enc) {
        uint8_t otk[32];
        one_time_key(otk, sub, counter);
        int bad = crypto_onetimeauth_poly1305_verify(tag, dg, len - MCL__AUTH_TAG, otk);
        sodium_memzero(otk, sizeof(otk));
        if (bad != 0) {
            a->rejected++;
            return MCL__AUTH_REJECTED;
        }
    } else {
        if (a->cap < body) {
            size_t nc = body < 65536 ? 65536 : body;
            uint8_t *nb = mcl__realloc(a->buf, nc);
            if (nb == NULL)
                return MCL__AUTH_NOMEM;
            a->buf = nb;
            a->cap = nc;
        }
        uint8_t n[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], ad[MCL__WIRE_HDR + 28];
        nonce12(n, counter);
        ad_of(ad, dg, t);
        if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                a->buf + MCL__WIRE_HDR, NULL, dg + MCL__WIRE_HDR, body - MCL__WIRE_HDR, tag, ad,
                sizeof(ad), n, sub->enc) != 0) {
            a->rejected++;
            return MCL__AUTH_REJECTED;
        }
        memcpy(a->buf, dg, MCL__WIRE_HDR);
        a->buf[4] &= (uint8_t) ~(MCL__WIRE_F_AUTH | MCL__WIRE_F_ENC);
        *out = a->buf;
    }
    *outlen = body;
    if (counter == 0 || when < now - a->skew_ns || when > now + a->skew_ns ||
        (g != NULL && seen(g, counter))) {
        a->replayed++;
        return MCL__AUTH_REPLAYED;
    }
    if (g == NULL) {
        if (a->nsigners >= SIGNERS_MAX) {
            struct stalest s = {0};
            mcl__u64map_each(&a->signers, find_stalest, &s);
            if (s.any) {
                mcl__free(mcl__u64map_del(&a->signers, s.id));
                a->nsigners--;
                a->evicted++;
            }
        }
        if ((g = mcl__zalloc(sizeof(*g))) == NULL)
            return MCL__AUTH_NOMEM;
        if (mcl__u64map_put(&a->signers, signer, g) != MCL_OK) {
            mcl__free(g);
            return MCL__AUTH_NOMEM;
        }
        a->nsigners++;
    }
    accept(g, counter);
    g->last_ns = now;
    if (sub == &fresh) { // (new, or signing with another key now)
        g->sub = fresh;
        g->key_id = k->id;
    }
    sodium_memzero(&fresh, sizeof(fresh));
    return MCL__AUTH_PASS;
}
