// SPDX-License-Identifier: BSD-3-Clause
// Authenticated multicast (docs/security.md, docs/wire-format.md "Authentication"): key files
// (good and hostile), the construction against its specification and the documented test
// vector, tampering, replays and stale captures refused, and broadcasters and listeners end to
// end on inproc:// with keys, without, with the wrong one, encrypted, and rotating keys.
#define _GNU_SOURCE
#include "harness.h"
#include "core/gkey.h"
#include "core/internal.h"
#include "raw/auth.h"
#include "raw/wire.h"

#include <mcl/raw.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char key_a[128], key_b[128], key_ab[128], key_ba[128];

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static const char hex_a[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char hex_b[] = "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff";

static int
init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/mcl-auth-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    char t[512];
    snprintf(key_a, sizeof(key_a), "%s/a.gkey", dir);
    snprintf(t, sizeof(t), "# test key A\nkey = %s\n", hex_a);
    write_text(key_a, t);
    snprintf(key_b, sizeof(key_b), "%s/b.gkey", dir);
    snprintf(t, sizeof(t), "key = %s\n", hex_b);
    write_text(key_b, t);
    snprintf(key_ab, sizeof(key_ab), "%s/ab.gkey", dir);
    snprintf(t, sizeof(t), "key = %s\n\n  key=%s  \r\n", hex_a, hex_b);
    write_text(key_ab, t);
    snprintf(key_ba, sizeof(key_ba), "%s/ba.gkey", dir);
    snprintf(t, sizeof(t), "key = %s\nkey = %s\n", hex_b, hex_a);
    write_text(key_ba, t);
    return 0;
}

static int
cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}

// --- key files -------------------------------------------------------------------------------

static void
test_key_files(void)
{
    mcl__gkeys k;
    char err[256];
    MCLT_OK(mcl__gkeys_load(&k, key_ab, err, sizeof(err)));
    CU_ASSERT_EQUAL(k.n, 2);
    CU_ASSERT_NOT_EQUAL(k.k[0].id, k.k[1].id);
    mcl__gkeys kb;
    MCLT_OK(mcl__gkeys_load(&kb, key_b, err, sizeof(err)));
    CU_ASSERT_EQUAL(kb.k[0].id, k.k[1].id);
    CU_ASSERT(memcmp(kb.k[0].mac, k.k[1].mac, 32) == 0);
    // Hostile or wrong files: each refused at once with a message that says what is wrong.
    struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"", "no 'key"},
        {"# only a comment\n", "no 'key"},
        {"key = 0011\n", "64 hex digits"},
        {"key = zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "not one"},
        {"public = abc\n", "expected 'key"},
        {"key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "expected"},
    };
    char path[160];
    snprintf(path, sizeof(path), "%s/bad.gkey", dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_text(path, bad[i].text);
        CU_ASSERT_EQUAL(mcl__gkeys_load(&k, path, err, sizeof(err)), MCL_EAUTH);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].says));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    }
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 9; i++)
        fprintf(f, "key = %s\n", hex_a);
    fclose(f);
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, path, err, sizeof(err)), MCL_EAUTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 8"));
    // Not regular files: a device, a FIFO (no writer: must not block), a directory.
    int64_t t0 = mclt_now_ms();
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, "/dev/zero", err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
    char fifo[160];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, fifo, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, dir, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT(mclt_now_ms() - t0 < 1000);
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, "/nonexistent/k", err, sizeof(err)), MCL_ENOENT);
    // Too large for a key file.
    f = fopen(path, "w");
    for (int i = 0; i < 70000; i++)
        fputc('#', f);
    fclose(f);
    CU_ASSERT_EQUAL(mcl__gkeys_load(&k, path, err, sizeof(err)), MCL_EMSGSIZE);
    // Through URLs: the error names the URL and the file.
    mcl_connection *c = NULL;
    char url[256];
    snprintf(url, sizeof(url), "udp://239.255.0.1:5000?key=%s", fifo);
    CU_ASSERT_EQUAL(mcl_connection_parse(&c, url, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a regular file"));
    CU_ASSERT_EQUAL(mcl_connection_parse(&c, "udp://239.255.0.1:5000?encrypt=1", err, sizeof(err)),
                    MCL_EURL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs key="));
    snprintf(url, sizeof(url), "tcp://127.0.0.1:5000?key=%s", key_a);
    CU_ASSERT_EQUAL(mcl_connection_parse(&c, url, err, sizeof(err)), MCL_EURL);
    snprintf(url, sizeof(url), "inproc://x?key=%s&encrypt=1&skew=5", key_a);
    MCLT_OK(mcl_connection_parse(&c, url, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_connection_url(c), "key="));
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_connection_url(c), "encrypt=1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_connection_url(c), "skew=5"));
    mcl_connection_free(c);
}

// --- the construction ------------------------------------------------------------------------

// The datagram of the test vector: publisher 0102030405060708, one record seq 5, topic "t",
// payload "hi".
static size_t
vector_dgram(uint8_t *b)
{
    size_t n = mcl__wire_put_hdr(b, MCL__WIRE_F_AUTH, 1, 0x0102030405060708ULL);
    n += mcl__wire_put_rec(b + n, 5, "t", 1, 2);
    memcpy(b + n, "hi", 2);
    return n + 2;
}

static void
to_hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void
test_construction_and_vector(void)
{
    mcl__gkeys k;
    char err[256];
    MCLT_OK(mcl__gkeys_load(&k, key_a, err, sizeof(err)));
    // The key id and subkeys as docs/wire-format.md defines them.
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    uint8_t in[16 + 32], h[32], mac[32];
    memcpy(in, "mcl group key id", 16);
    memcpy(in + 16, raw, 32);
    crypto_generichash(h, 32, in, sizeof(in), NULL, 0);
    CU_ASSERT_EQUAL(k.k[0].id, mcl__get_be32(h));
    crypto_generichash(mac, 32, (const uint8_t *)"mcl mac", 7, raw, 32);
    CU_ASSERT(memcmp(mac, k.k[0].mac, 32) == 0);
    // The trailer: key id, signer, counter, time, then BLAKE2b-128 of all before the tag.
    uint8_t b[256];
    size_t n = vector_dgram(b);
    mcl__auth_tx tx = {.key = &k.k[0], .signer = 0x0102030405060708ULL, .counter = 0};
    struct iovec iov = {b, n};
    uint8_t tr[MCL__AUTH_TRAILER];
    mcl__auth_mac(&tx, &iov, 1, 1700000000000000000LL, tr);
    CU_ASSERT_EQUAL(mcl__get_be32(tr), k.k[0].id);
    CU_ASSERT_EQUAL(mcl__get_be64(tr + 4), 0x0102030405060708ULL);
    CU_ASSERT_EQUAL(mcl__get_be64(tr + 12), 1);
    CU_ASSERT_EQUAL(mcl__get_be64(tr + 20), 1700000000000000000ULL);
    memcpy(b + n, tr, sizeof(tr));
    uint8_t nonce[24] = {0}, otk[32], tag[16];
    memcpy(nonce, tr + 4, 8);       // signer || 8 zero bytes || counter
    memcpy(nonce + 16, tr + 12, 8);
    crypto_stream_xchacha20(otk, 32, nonce, mac);
    crypto_onetimeauth_poly1305(tag, b, n + 28, otk);
    CU_ASSERT(memcmp(tag, tr + 28, 16) == 0);
    // The vector of docs/wire-format.md (key 00 01 .. 1f).
    char hx[2 * (64 + MCL__AUTH_TRAILER) + 1];
    to_hex(hx, b, n + MCL__AUTH_TRAILER);
    static const char want[] = "4d434c01020000010102030405060708"       // header, AUTH
                               "0000000000000005000100000002746869"     // record: seq 5, "t", "hi"
                               "428f3658" "0102030405060708"            // key id, signer
                               "0000000000000001" "17979cfe362a0000"    // counter, time
                               "6a79e13cb4a2e31055068ca79605a588";      // tag
    if (strcmp(hx, want) != 0)
        printf("\n    vector: %s\n", hx);
    CU_ASSERT_STRING_EQUAL(hx, want);
    // Encrypted: what the specification says opens it (XChaCha20-Poly1305, the same nonce,
    // additional data = header || trailer bytes 0-27).
    n = vector_dgram(b);
    b[4] = 0;
    mcl__auth_tx etx = {.key = &k.k[0], .encrypt = true, .signer = 0x0102030405060708ULL};
    size_t sl = mcl__auth_seal(&etx, b, n, 1700000000000000000LL);
    CU_ASSERT_EQUAL(sl, n + MCL__AUTH_TRAILER);
    CU_ASSERT_EQUAL(b[4], MCL__WIRE_F_AUTH | 0x08);
    uint8_t enc[32], ad[16 + 28], plain[64];
    crypto_generichash(enc, 32, (const uint8_t *)"mcl enc", 7, raw, 32);
    memcpy(ad, b, 16);
    memcpy(ad + 16, b + n, 28);
    memset(nonce, 0, sizeof(nonce));
    memcpy(nonce, b + n + 4, 8);
    memcpy(nonce + 16, b + n + 12, 8);
    CU_ASSERT_EQUAL(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                        plain, NULL, b + 16, n - 16, b + n + 28, ad, sizeof(ad), nonce, enc),
                    0);
    CU_ASSERT(memcmp(plain + n - 16 - 2, "hi", 2) == 0);
}

// Seals the vector datagram with key k (MAC or encrypted) as signer s, counter after c, at t.
static size_t
sealed(uint8_t *b, const mcl__gkey *k, bool enc, uint64_t signer, uint64_t *counter, int64_t t)
{
    size_t n = vector_dgram(b);
    mcl__auth_tx tx = {.key = k, .encrypt = enc, .signer = signer, .counter = *counter};
    if (enc) {
        b[4] = 0;
        n = mcl__auth_seal(&tx, b, n, t);
    } else {
        struct iovec iov = {b, n};
        mcl__auth_mac(&tx, &iov, 1, t, b + n);
        n += MCL__AUTH_TRAILER;
    }
    *counter = tx.counter;
    return n;
}

static void
test_tamper_replay_stale(void)
{
    mcl__gkeys k, none = {0};
    char err[256];
    MCLT_OK(mcl__gkeys_load(&k, key_a, err, sizeof(err)));
    int64_t now = 1700000000000000000LL;
    for (int enc = 0; enc <= 1; enc++) {
        mcl__auth_rx a;
        mcl__auth_rx_init(&a, &k, 60);
        uint8_t b[256], c[256];
        uint64_t ctr = 0;
        size_t n = sealed(b, &k.k[0], enc, 77, &ctr, now);
        // Every single-bit change anywhere is refused.
        for (size_t i = 0; i < n; i++) {
            for (int bit = 0; bit < 8; bit++) {
                memcpy(c, b, n);
                c[i] ^= (uint8_t)(1u << bit);
                const uint8_t *out;
                size_t ol;
                int r = mcl__auth_open(&a, c, n, now, &out, &ol);
                CU_ASSERT(r == MCL__AUTH_REJECTED || r == MCL__AUTH_PASS);
                if (r == MCL__AUTH_PASS) // only bits the decoder refuses anyway
                    CU_FAIL("a changed datagram passed");
            }
        }
        CU_ASSERT_EQUAL(a.replayed, 0);
        // The genuine one passes once; its replay is refused.
        const uint8_t *out;
        size_t ol;
        CU_ASSERT_EQUAL(mcl__auth_open(&a, b, n, now, &out, &ol), MCL__AUTH_PASS);
        CU_ASSERT_EQUAL(ol, n - MCL__AUTH_TRAILER);
        mcl__wire_hdr h;
        MCLT_OK(mcl__wire_check(&h, out, ol));
        size_t off = MCL__WIRE_HDR;
        mcl__wire_rec r;
        mcl__wire_next(out, &off, false, &r);
        CU_ASSERT(r.len == 2 && memcmp(r.payload, "hi", 2) == 0);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, b, n, now, &out, &ol), MCL__AUTH_REPLAYED);
        // Out of order within the window passes once each; far behind it does not.
        uint8_t d[8][256];
        size_t dn[8];
        for (int i = 0; i < 8; i++)
            dn[i] = sealed(d[i], &k.k[0], enc, 77, &ctr, now);
        for (int i = 7; i >= 0; i--)
            CU_ASSERT_EQUAL(mcl__auth_open(&a, d[i], dn[i], now, &out, &ol), MCL__AUTH_PASS);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, d[3], dn[3], now, &out, &ol), MCL__AUTH_REPLAYED);
        uint64_t far = ctr + 5000;
        size_t fn = sealed(c, &k.k[0], enc, 77, &far, now);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, c, fn, now, &out, &ol), MCL__AUTH_PASS);
        uint64_t old = ctr + 10;
        fn = sealed(c, &k.k[0], enc, 77, &old, now);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, c, fn, now, &out, &ol), MCL__AUTH_REPLAYED);
        // A capture of an earlier run (another signer, stamped 2 minutes ago) is refused,
        // and so is one from the future.
        uint64_t c2 = 0;
        fn = sealed(c, &k.k[0], enc, 99, &c2, now - 120000000000LL);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, c, fn, now, &out, &ol), MCL__AUTH_REPLAYED);
        fn = sealed(c, &k.k[0], enc, 98, &c2, now + 120000000000LL);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, c, fn, now, &out, &ol), MCL__AUTH_REPLAYED);
        CU_ASSERT_EQUAL(a.replayed, 5);
        // No trailer at all: refused by a listener with a key.
        size_t pn = vector_dgram(c);
        c[4] = 0;
        CU_ASSERT_EQUAL(mcl__auth_open(&a, c, pn, now, &out, &ol), MCL__AUTH_REJECTED);
        mcl__auth_rx_fini(&a);
        // Without a key: a MAC-only datagram passes unverified, an encrypted one cannot.
        mcl__auth_rx_init(&a, &none, 60);
        CU_ASSERT_EQUAL(mcl__auth_open(&a, b, n, now, &out, &ol),
                        enc ? MCL__AUTH_REJECTED : MCL__AUTH_PASS);
        mcl__auth_rx_fini(&a);
    }
}

// --- end to end ------------------------------------------------------------------------------

static int group;

// Publishes n messages "m<i>" on a broadcaster of bq and counts what a listener of lq gets.
static void
roundtrip(const char *bq, const char *lq, int n, int *got, mcl_listener_stats *st)
{
    char url[512];
    ++group;
    snprintf(url, sizeof(url), "inproc://auth%d%s%s", group, bq[0] ? "?" : "", bq);
    mcl_connection *c = mclt_parse(url);
    snprintf(url, sizeof(url), "inproc://auth%d%s%s", group, lq[0] ? "?" : "", lq);
    mcl_connection *d = mclt_parse(url);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, d, NULL, 0));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "t"));
    char msg[32];
    for (int i = 0; i < n; i++) {
        int len = snprintf(msg, sizeof(msg), "m%d", i);
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, msg, (size_t)len));
    }
    uint8_t *big = mclt_pattern(300000, 5); // fragmented
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, big, 300000));
    *got = 0;
    const mcl_raw_msg *m;
    while (mcl_raw_listener_recv(l, &m, 300) == MCL_OK) {
        bool ok = m->len == 300000 ? mclt_pattern_ok(m->payload, m->len, 5)
                                   : m->len >= 2 && ((const char *)m->payload)[0] == 'm';
        CU_ASSERT(ok);
        ++*got;
    }
    free(big);
    MCLT_OK(mcl_raw_listener_stats(l, st));
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
    mcl_connection_free(d);
}

static void
test_end_to_end(void)
{
    char ka[200], kb[200], kab[200], kba[200], kae[220];
    snprintf(ka, sizeof(ka), "key=%s", key_a);
    snprintf(kb, sizeof(kb), "key=%s", key_b);
    snprintf(kab, sizeof(kab), "key=%s", key_ab);
    snprintf(kba, sizeof(kba), "key=%s", key_ba);
    snprintf(kae, sizeof(kae), "key=%s&encrypt=1", key_a);
    int got;
    mcl_listener_stats st;
    // Keyed both sides (heartbeats off: their count would depend on timing).
    roundtrip(ka, ka, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    CU_ASSERT_EQUAL(st.auth_rejected, 0);
    CU_ASSERT_EQUAL(st.lost, 0);
    // Encrypted both sides.
    roundtrip(kae, ka, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    CU_ASSERT_EQUAL(st.auth_rejected, 0);
    // A listener without a key reads MAC-only traffic (unverified), not encrypted traffic.
    roundtrip(ka, "", 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    roundtrip(kae, "", 100, &got, &st);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT(st.auth_rejected >= 101);
    // The wrong key, and no key on the sender: nothing delivered, all counted.
    roundtrip(kb, ka, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT(st.auth_rejected >= 101);
    CU_ASSERT_EQUAL(st.publishers, 0); // (forgeries never enter the publisher table)
    roundtrip("", ka, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT(st.auth_rejected >= 101);
    // Rotation: the listener accepts every key of its file; the sender signs with its first.
    roundtrip(kba, kab, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    roundtrip(kab, kab, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    // A network that delivers every datagram twice: the copies are refused as replays.
    char dupq[240];
    snprintf(dupq, sizeof(dupq), "%s&dup=1", ka);
    roundtrip(ka, dupq, 100, &got, &st);
    CU_ASSERT_EQUAL(got, 101);
    CU_ASSERT(st.replayed > 0);
    CU_ASSERT_EQUAL(st.duplicates, 0);
}

static void
test_zmq(void)
{
#if MCL_HAVE_ZMQ
    // Frames over zmq are signed as datagrams are: a keyed listener hears the key holder only.
    char url[400];
    snprintf(url, sizeof(url), "zmq+inproc://authz?key=%s", key_a);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *good;
    MCLT_OK(mcl_raw_broadcaster_open(&good, c, "t"));
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(good, 1, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(good, NULL, "signed", 6));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m->len == 6 && memcmp(m->payload, "signed", 6) == 0);
    mcl_raw_broadcaster_free(good);
    mcl_raw_listener_free(l);
    // The same listener against a broadcaster with another key.
    // (coalesce=0: one frame per message, so each of the ten is rejected on its own)
    snprintf(url, sizeof(url), "zmq+inproc://authz2?key=%s&coalesce=0", key_b);
    c = mclt_parse(url);
    mcl_raw_broadcaster *bad;
    MCLT_OK(mcl_raw_broadcaster_open(&bad, c, "t"));
    mcl_connection_free(c);
    snprintf(url, sizeof(url), "zmq+inproc://authz2?key=%s", key_a);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(bad, 1, 5000));
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(bad, NULL, "forged", 6));
    CU_ASSERT_EQUAL(mcl_raw_listener_recv(l, &m, 300), MCL_ETIMEDOUT);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT(st.auth_rejected >= 10);
    CU_ASSERT_EQUAL(st.messages, 0);
    mcl_raw_broadcaster_free(bad);
    mcl_raw_listener_free(l);
#endif
}

static CU_TestInfo tests[] = {{"key_files", test_key_files},
                              {"zmq", test_zmq},
                              {"construction_and_vector", test_construction_and_vector},
                              {"tamper_replay_stale", test_tamper_replay_stale},
                              {"end_to_end", test_end_to_end},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("raw_auth", init, cleanup, tests);
