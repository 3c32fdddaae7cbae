// SPDX-License-Identifier: BSD-3-Clause
// The receive engine through its seam (no sockets): fragmentation and reassembly with injected
// loss, reordering and duplication; sequence accounting; topic filters; expiry and memory caps.
#include "harness.h"
#include "raw/rx.h"
#include "raw/wire.h"
#include "core/internal.h"
#include "core/zcodec.h"

#include <stdlib.h>
#include <string.h>

typedef struct dg {
    uint8_t *b;
    size_t n;
} dg;

typedef struct sink {
    mcl_raw_msg *m[4096];
    size_t n;
} sink;

static const mcl__rx_cfg default_cfg = {
    .maxmsg = 64u << 20, .expire_ns = 2000000000, .partmem = 256u << 20};

// Encodes one message as the broadcaster does; returns the number of datagrams.
static size_t
encode(dg *out, size_t cap, uint64_t pub, uint64_t seq, const char *topic, const uint8_t *p,
       size_t len, size_t dgram)
{
    size_t tl = strlen(topic);
    uint32_t count;
    size_t f;
    mcl__wire_plan(dgram, tl, len, &count, &f);
    CU_ASSERT_FATAL(count <= cap);
    for (uint32_t i = 0; i < count; i++) {
        size_t off = count == 1 ? 0 : (size_t)i * f;
        size_t fl = count == 1 ? len : (len - off < f ? len - off : f);
        out[i].b = malloc(MCL__WIRE_HDR + MCL__WIRE_FRAGREC + tl + fl);
        CU_ASSERT_PTR_NOT_NULL_FATAL(out[i].b);
        size_t n;
        if (count == 1) {
            n = mcl__wire_put_hdr(out[i].b, 0, 1, pub);
            n += mcl__wire_put_rec(out[i].b + n, seq, topic, (uint16_t)tl, (uint32_t)len);
        } else {
            n = mcl__wire_put_hdr(out[i].b, MCL__WIRE_F_FRAG, 1, pub);
            n += mcl__wire_put_frag(out[i].b + n, seq, topic, (uint16_t)tl, (uint32_t)fl,
                                    (uint32_t)len, (uint32_t)off, i, count);
        }
        if (fl > 0)
            memcpy(out[i].b + n, p + off, fl);
        out[i].n = n + fl;
    }
    return count;
}

static void
free_dgs(dg *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i].b);
}

static int64_t fake_now = 1000000000; // the engine only sees the times we give it

// Feeds one datagram from UDP port `port` of 0.0.0.0, collecting what it delivers.
static void
feed_from(mcl__rx *rx, const dg *d, uint16_t port, sink *s)
{
    mcl__rx_meta meta = {.real_ns = fake_now, .mono_ns = fake_now, .family = 4, .port = port};
    if (mcl__rx_begin(rx, d->b, d->n, &meta) != MCL_OK)
        return;
    mcl_raw_msg m;
    while (mcl__rx_next(rx, &m)) {
        CU_ASSERT_FATAL(s->n < 4096);
        MCLT_OK(mcl_raw_msg_dup(&s->m[s->n++], &m));
    }
}

static void
feed(mcl__rx *rx, const dg *d, sink *s)
{
    feed_from(rx, d, 1, s);
}

static void
sink_clear(sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        mcl_raw_msg_free(s->m[i]);
    s->n = 0;
}


static mcl_listener_stats
stats(mcl__rx *rx)
{
    mcl_listener_stats st;
    mcl__rx_stats(rx, &st);
    return st;
}

static sink S;
static dg D[4096];

static void
test_sizes_roundtrip(void)
{
    // Sizes around every boundary: empty, one datagram exactly, one byte more, an exact
    // multiple of the fragment size (no empty trailing fragment), MCL's 60000 and 333300.
    size_t dgram = 65000, f = 65000 - 46 - 3;
    size_t sizes[] = {0, 1, 100, 65000 - 30 - 3, 65000 - 29 - 3, f * 2, f * 2 + 1, 60000, 333300,
                      1 << 20};
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *p = mclt_pattern(sizes[k], k + 1);
        size_t n = encode(D, 4096, 77, k, "abc", p, sizes[k], dgram);
        if (sizes[k] == f * 2)
            CU_ASSERT_EQUAL(n, 2);
        for (size_t i = 0; i < n; i++)
            feed(&rx, &D[i], &S);
        CU_ASSERT_EQUAL_FATAL(S.n, 1);
        CU_ASSERT_EQUAL(S.m[0]->len, sizes[k]);
        CU_ASSERT(sizes[k] == 0 || memcmp(S.m[0]->payload, p, sizes[k]) == 0);
        CU_ASSERT_STRING_EQUAL(S.m[0]->topic, "abc");
        CU_ASSERT_EQUAL(S.m[0]->seq, k);
        CU_ASSERT_EQUAL(S.m[0]->publisher, 77);
        sink_clear(&S);
        free_dgs(D, n);
        free(p);
    }
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.messages, sizeof(sizes) / sizeof(sizes[0]));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    CU_ASSERT_EQUAL(st.partial_bytes, 0);
    mcl__rx_fini(&rx);
}

static void
shuffle(dg *d, size_t n, uint64_t *s)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = mclt_rand(s) % i;
        dg t = d[i - 1];
        d[i - 1] = d[j];
        d[j] = t;
    }
}

static void
test_reordered_and_duplicated_fragments(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint64_t s = 99;
    size_t len = 200000;
    uint8_t *p = mclt_pattern(len, 5);
    size_t n = encode(D, 4096, 1, 0, "", p, len, 1200); // ~170 fragments
    CU_ASSERT(n > 100);
    shuffle(D, n, &s);
    for (size_t i = 0; i < n; i++) {
        feed(&rx, &D[i], &S);
        if (i % 3 == 0)
            feed(&rx, &D[i], &S); // every third fragment twice
    }
    feed(&rx, &D[0], &S); // and one after completion
    CU_ASSERT_EQUAL_FATAL(S.n, 1);
    CU_ASSERT_EQUAL(S.m[0]->len, len);
    CU_ASSERT(memcmp(S.m[0]->payload, p, len) == 0);
    CU_ASSERT_STRING_EQUAL(S.m[0]->topic, "");
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.duplicates, (n + 2) / 3 + 1);
    CU_ASSERT_EQUAL(st.messages, 1);
    sink_clear(&S);
    free_dgs(D, n);
    free(p);
    mcl__rx_fini(&rx);
}

static void
test_lost_fragment_expires_and_counts_as_lost(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint8_t *p = mclt_pattern(5000, 3);
    for (uint64_t seq = 0; seq < 3; seq++) {
        size_t n = encode(D, 4096, 5, seq, "cam", p, 5000, 1200);
        for (size_t i = 0; i < n; i++)
            if (!(seq == 1 && i == 2)) // drop one fragment of message 1
                feed(&rx, &D[i], &S);
        free_dgs(D, n);
    }
    CU_ASSERT_EQUAL(S.n, 2);
    CU_ASSERT_EQUAL(S.m[0]->seq, 0);
    CU_ASSERT_EQUAL(S.m[1]->seq, 2);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 1);
    CU_ASSERT_EQUAL(st.partial_count, 1);
    CU_ASSERT(st.partial_bytes >= 5000);
    mcl__rx_expire(&rx, fake_now + default_cfg.expire_ns - 1); // not yet
    CU_ASSERT_EQUAL(stats(&rx).partial_count, 1);
    mcl__rx_expire(&rx, fake_now + default_cfg.expire_ns);
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    CU_ASSERT_EQUAL(st.partial_bytes, 0);
    CU_ASSERT_EQUAL(st.expired, 1);
    CU_ASSERT_EQUAL(st.lost, 1);
    sink_clear(&S);
    free(p);
    mcl__rx_fini(&rx);
}

static void
feed_seq(mcl__rx *rx, uint64_t pub, uint64_t seq)
{
    size_t n = encode(D, 4096, pub, seq, "t", (const uint8_t *)"x", 1, 65000);
    feed(rx, &D[0], &S);
    free_dgs(D, n);
}

static void
test_sequence_accounting(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    feed_seq(&rx, 1, 10); // joined late: nothing before 10 counts as lost
    feed_seq(&rx, 1, 11);
    feed_seq(&rx, 1, 12);
    feed_seq(&rx, 1, 15);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 2);
    feed_seq(&rx, 1, 13); // late
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 1);
    CU_ASSERT_EQUAL(st.reordered, 1);
    feed_seq(&rx, 1, 13); // duplicate
    feed_seq(&rx, 1, 15); // duplicate
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.duplicates, 2);
    feed_seq(&rx, 1, 14);
    fake_now += 1000000;    // 1 ms later (it could have sent 10,000 meanwhile)
    feed_seq(&rx, 1, 5000); // a jump beyond the window: delivered, counted once confirmed
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 0);
    feed_seq(&rx, 1, 5000); // (a duplicate of it is still one)
    feed_seq(&rx, 1, 5001); // confirms: 4984 lost
    feed_seq(&rx, 1, 20);   // older than the window: treated as a duplicate
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 4984);
    CU_ASSERT_EQUAL(st.reordered, 2);
    CU_ASSERT_EQUAL(st.duplicates, 4);
    CU_ASSERT_EQUAL(st.messages, 8);
    CU_ASSERT_EQUAL(S.n, 8);
    // A second publisher has its own sequence.
    feed_seq(&rx, 2, 0);
    feed_seq(&rx, 2, 1);
    mcl_publisher_stats ps[4];
    size_t np = mcl__rx_publishers(&rx, ps, 4);
    CU_ASSERT_EQUAL_FATAL(np, 2);
    for (size_t i = 0; i < np; i++) {
        if (ps[i].publisher == 1) {
            CU_ASSERT_EQUAL(ps[i].messages, 8);
            CU_ASSERT_EQUAL(ps[i].lost, 4984);
            CU_ASSERT_EQUAL(ps[i].duplicates, 4);
            CU_ASSERT_EQUAL(ps[i].first_seq, 10);
            CU_ASSERT_EQUAL(ps[i].last_seq, 5001);
        } else {
            CU_ASSERT_EQUAL(ps[i].publisher, 2);
            CU_ASSERT_EQUAL(ps[i].messages, 2);
            CU_ASSERT_EQUAL(ps[i].lost, 0);
        }
    }
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_interleaved_publishers_same_topic(void)
{
    // Two publishers send large messages on one topic with the same size (Python MCL's
    // reassembly key collided exactly here); their fragments arrive interleaved.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    size_t len = 100000;
    uint8_t *pa = mclt_pattern(len, 11), *pb = mclt_pattern(len, 12);
    static dg A[256], B[256], A2[256];
    size_t na = encode(A, 256, 0xA, 0, "img", pa, len, 9000);
    size_t nb = encode(B, 256, 0xB, 0, "img", pb, len, 9000);
    size_t na2 = encode(A2, 256, 0xA, 1, "img", pb, len, 9000); // same publisher, next message
    CU_ASSERT_EQUAL_FATAL(na, nb);
    for (size_t i = 0; i < na; i++) {
        feed(&rx, &A[i], &S);
        feed(&rx, &B[na - 1 - i], &S);
        feed(&rx, &A2[i], &S);
    }
    CU_ASSERT_EQUAL_FATAL(S.n, 3);
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *want = S.m[i]->publisher == 0xB || S.m[i]->seq == 1 ? pb : pa;
        CU_ASSERT_EQUAL(S.m[i]->len, len);
        CU_ASSERT(memcmp(S.m[i]->payload, want, len) == 0);
    }
    CU_ASSERT_EQUAL(stats(&rx).lost, 0);
    free_dgs(A, na);
    free_dgs(B, nb);
    free_dgs(A2, na2);
    free(pa);
    free(pb);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_memory_cap_and_oversize(void)
{
    mcl__rx_cfg cfg = default_cfg;
    cfg.partmem = 350000; // room for three partial 100 kB messages
    cfg.maxmsg = 500000;
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    uint8_t *p = mclt_pattern(600000, 1);
    for (uint64_t seq = 0; seq < 6; seq++) { // only the first fragment of each
        size_t n = encode(D, 4096, 3, seq, "x", p, 100000, 9000);
        feed(&rx, &D[0], &S);
        free_dgs(D, n);
        mcl_listener_stats st = stats(&rx);
        CU_ASSERT(st.partial_bytes <= cfg.partmem);
    }
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.partial_count, 3);
    CU_ASSERT_EQUAL(st.evicted, 3);
    // Larger than partmem (but under maxmsg): dropped at its first fragment, never buffered.
    size_t n = encode(D, 4096, 3, 6, "x", p, 400000, 9000);
    for (size_t i = 0; i < n; i++)
        feed(&rx, &D[i], &S);
    free_dgs(D, n);
    // Larger than maxmsg.
    n = encode(D, 4096, 3, 7, "x", p, 600000, 9000);
    for (size_t i = 0; i < n; i++)
        feed(&rx, &D[i], &S);
    free_dgs(D, n);
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.oversize, 2);
    CU_ASSERT_EQUAL(st.duplicates, 0); // the other fragments of dropped messages are quiet
    CU_ASSERT_EQUAL(S.n, 0);
    // An unfragmented message over maxmsg.
    cfg.maxmsg = 10;
    mcl__rx_fini(&rx);
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    n = encode(D, 4096, 3, 0, "x", p, 11, 9000);
    feed(&rx, &D[0], &S);
    free_dgs(D, n);
    n = encode(D, 4096, 3, 1, "x", p, 10, 9000);
    feed(&rx, &D[0], &S);
    free_dgs(D, n);
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.oversize, 1);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(S.n, 1);
    sink_clear(&S);
    free(p);
    mcl__rx_fini(&rx);
}

static void
test_topic_filter(void)
{
    const char *topics[] = {"imu/*", "gps", ""};
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, topics, 3));
    const char *sent[] = {"imu/accel", "imu", "gps", "gpsx", "", "imu/", "cam"};
    for (uint64_t i = 0; i < 7; i++) {
        size_t n = encode(D, 4096, 1, i, sent[i], (const uint8_t *)"p", 1, 65000);
        feed(&rx, &D[0], &S);
        free_dgs(D, n);
    }
    CU_ASSERT_EQUAL_FATAL(S.n, 4);
    CU_ASSERT_STRING_EQUAL(S.m[0]->topic, "imu/accel");
    CU_ASSERT_STRING_EQUAL(S.m[1]->topic, "gps");
    CU_ASSERT_STRING_EQUAL(S.m[2]->topic, "");
    CU_ASSERT_STRING_EQUAL(S.m[3]->topic, "imu/");
    // A large filtered message is never reassembled, and its fragments are not duplicates.
    uint8_t *p = mclt_pattern(300000, 2);
    size_t n = encode(D, 4096, 1, 7, "cam", p, 300000, 9000);
    for (size_t i = 0; i < n; i++) {
        feed(&rx, &D[i], &S);
        CU_ASSERT_EQUAL(stats(&rx).partial_count, 0);
    }
    free_dgs(D, n);
    feed_seq(&rx, 1, 8); // topic "t": filtered
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.filtered, 5);
    CU_ASSERT_EQUAL(st.messages, 4);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    CU_ASSERT_EQUAL(st.lost, 0); // filtered messages still count in the sequence
    free(p);
    sink_clear(&S);
    mcl__rx_fini(&rx);
    // "*" alone matches everything, including no topic.
    const char *all[] = {"*"};
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, all, 1));
    CU_ASSERT(mcl__rx_match(&rx, "", 0));
    CU_ASSERT(mcl__rx_match(&rx, "anything", 8));
    mcl__rx_fini(&rx);
}

static void
test_contradicting_fragments_and_garbage(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint8_t *p = mclt_pattern(30000, 9);
    static dg X[64], Y[64];
    size_t nx = encode(X, 64, 4, 0, "a", p, 30000, 9000);
    size_t ny = encode(Y, 64, 4, 0, "a", p, 20000, 9000); // same (pub, seq), other size
    feed(&rx, &X[0], &S);
    feed(&rx, &Y[1], &S); // contradicts what is held: reassembled apart, the partial stays
    uint8_t junk[100];
    memset(junk, 0xab, sizeof(junk));
    dg j = {junk, sizeof(junk)};
    feed(&rx, &j, &S);
    dg empty = {junk, 0};
    feed(&rx, &empty, &S);
    for (size_t i = 1; i < nx; i++)
        feed(&rx, &X[i], &S);
    CU_ASSERT_EQUAL_FATAL(S.n, 1);
    CU_ASSERT_EQUAL(S.m[0]->len, 30000);
    CU_ASSERT(memcmp(S.m[0]->payload, p, 30000) == 0);
    CU_ASSERT_EQUAL(stats(&rx).malformed, 2);
    CU_ASSERT_EQUAL(stats(&rx).suspect, 1); // the rival dropped when X completed
    CU_ASSERT_EQUAL(stats(&rx).partial_count, 0);
    free_dgs(X, nx);
    free_dgs(Y, ny);
    free(p);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_multi_record_datagram(void)
{
    // Batched records (valid v1, produced by later broadcasters) deliver one message each.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint8_t b[256];
    size_t n = mcl__wire_put_hdr(b, 0, 3, 42);
    for (uint64_t s = 0; s < 3; s++) {
        n += mcl__wire_put_rec(b + n, s, "batch", 5, 2);
        b[n++] = 'o';
        b[n++] = (uint8_t)('0' + s);
    }
    dg d = {b, n};
    feed(&rx, &d, &S);
    CU_ASSERT_EQUAL_FATAL(S.n, 3);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(S.m[i]->seq, i);
        CU_ASSERT_EQUAL(((const uint8_t *)S.m[i]->payload)[1], '0' + i);
    }
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_random_loss_reorder_duplication(void)
{
    // 300 messages of random sizes from 3 publishers through a channel that drops 2 %,
    // duplicates 2 % and shuffles within a window: everything delivered is intact, nothing is
    // delivered twice, and delivered + lost (after expiry) accounts for every message.
    mcl__rx rx;
    mcl__rx_cfg cfg = default_cfg;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    uint64_t s = 2024;
    static dg all[8192];
    size_t total = 0;
    size_t msgs = 0;
    for (uint64_t seq = 0; seq < 100; seq++) {
        for (uint64_t pub = 1; pub <= 3; pub++) {
            size_t len = (size_t)(mclt_rand(&s) % 20000);
            uint8_t *p = mclt_pattern(len, pub << 32 | seq);
            total += encode(all + total, 8192 - total, pub, seq, "r", p, len, 1500);
            free(p);
            msgs++;
        }
    }
    // Local shuffle: swap each datagram with one up to 20 places later.
    for (size_t i = 0; i + 1 < total; i++) {
        size_t j = i + mclt_rand(&s) % (total - i < 20 ? total - i : 20);
        dg t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    uint64_t dropped = 0;
    for (size_t i = 0; i < total; i++) {
        unsigned r = (unsigned)(mclt_rand(&s) % 100);
        if (r < 2) {
            dropped++;
            continue;
        }
        feed(&rx, &all[i], &S);
        if (r >= 98)
            feed(&rx, &all[i], &S);
    }
    mcl__rx_expire(&rx, fake_now + cfg.expire_ns);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT(dropped > 0);
    CU_ASSERT_EQUAL(st.messages, S.n);
    CU_ASSERT(S.n < msgs);
    // Every delivered message is intact and unique.
    for (size_t i = 0; i < S.n; i++) {
        uint64_t seed = S.m[i]->publisher << 32 | S.m[i]->seq;
        uint8_t *want = mclt_pattern(S.m[i]->len, seed);
        CU_ASSERT(memcmp(S.m[i]->payload, want, S.m[i]->len) == 0);
        free(want);
        for (size_t j = 0; j < i; j++)
            CU_ASSERT(!(S.m[j]->publisher == S.m[i]->publisher && S.m[j]->seq == S.m[i]->seq));
    }
    // Lost counts gaps before each publisher's highest message; a message lost at the very end
    // of a publisher's sequence is invisible. So: delivered + lost <= sent, and the difference
    // is at most one tail per publisher.
    mcl_publisher_stats ps[3];
    CU_ASSERT_EQUAL(mcl__rx_publishers(&rx, ps, 3), 3);
    uint64_t tails = 0;
    for (int i = 0; i < 3; i++)
        tails += 99 - ps[i].last_seq;
    CU_ASSERT_EQUAL(st.messages + st.lost + tails, msgs);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    free_dgs(all, total);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

// Feeds without copying (so that only the engine allocates); returns the messages delivered.
static size_t
feed_count(mcl__rx *rx, const dg *d)
{
    mcl__rx_meta meta = {.real_ns = fake_now, .mono_ns = fake_now, .family = 4};
    size_t n = 0;
    mcl_raw_msg m;
    if (mcl__rx_begin(rx, d->b, d->n, &meta) == MCL_OK)
        while (mcl__rx_next(rx, &m))
            n++;
    return n;
}

static void
test_allocation_failures(void)
{
    // Each allocation of a reassembly fails in turn: the engine drops the message (counted as
    // lost later), never crashes, and the next message is delivered.
    uint8_t *p = mclt_pattern(20000, 4);
    for (long k = 0; k < 6; k++) {
        mcl__rx rx;
        MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
        size_t n = encode(D, 4096, 8, 0, "f", p, 20000, 9000);
        size_t got = 0;
        mcl__alloc_fail_after(k);
        for (size_t i = 0; i < n; i++)
            got += feed_count(&rx, &D[i]);
        mcl__alloc_fail_after(-1);
        free_dgs(D, n);
        CU_ASSERT(got <= 1);
        n = encode(D, 4096, 8, 1, "f", p, 20000, 9000);
        size_t got2 = 0;
        for (size_t i = 0; i < n; i++)
            got2 += feed_count(&rx, &D[i]);
        free_dgs(D, n);
        CU_ASSERT_EQUAL(got2, 1);
        if (k < 4) // the first allocations belong to the first message's reassembly
            CU_ASSERT_EQUAL(got, 0);
        mcl__rx_fini(&rx);
    }
    free(p);
}

static void
test_hostile_sequence_numbers(void)
{
    // A forged jump far ahead (or back) must not make later genuine messages look old.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    feed_seq(&rx, 1, 0);
    feed_seq(&rx, 1, (uint64_t)1 << 62);
    feed_seq(&rx, 1, 1);
    feed_seq(&rx, 1, 2);
    CU_ASSERT_EQUAL(S.n, 4);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    // The largest sequence number is an ordinary number: repeats are duplicates.
    feed_seq(&rx, 2, UINT64_MAX);
    feed_seq(&rx, 2, UINT64_MAX);
    feed_seq(&rx, 2, UINT64_MAX);
    CU_ASSERT_EQUAL(S.n, 5);
    CU_ASSERT_EQUAL(stats(&rx).duplicates, 2);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}


static void
test_forged_jump_does_not_blackhole(void)
{
    // One forged datagram with the victim's id and a number up to 2^32 ahead used to make
    // every later genuine message a "duplicate" (4,000 sent, 2 delivered, lost 4294967294).
    uint64_t ahead[] = {100000, (uint64_t)1 << 31, ((uint64_t)1 << 32) - 2};
    for (size_t k = 0; k < 3; k++) {
        mcl__rx rx;
        MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
        feed_seq(&rx, 1, 0);
        feed_seq(&rx, 1, 1 + ahead[k]); // forged
        for (uint64_t seq = 1; seq < 4000; seq++)
            feed_seq(&rx, 1, seq);
        CU_ASSERT_EQUAL(S.n, 4001); // (the forged one too: without keys it cannot be told)
        mcl_listener_stats st = stats(&rx);
        CU_ASSERT_EQUAL(st.lost, 0);
        CU_ASSERT_EQUAL(st.duplicates, 0);
        sink_clear(&S);
        mcl__rx_fini(&rx);
    }
}

static void
test_random_numbers_cannot_inflate_lost(void)
{
    // Random sequence numbers on a genuine publisher's id (mcl-log showed lost 757436925505).
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (uint64_t seq = 0; seq < 2000; seq++) {
        feed_seq(&rx, 1, seq);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        feed_seq(&rx, 1, x);
        fake_now += 1000; // 1 µs
    }
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT(S.n >= 2000);
    CU_ASSERT(st.suspect > 0); // (beyond 4 waiting outliers, the rest are dropped)
    // Two forged numbers in a row (once the outliers have been forgotten, after 1 s) do confirm
    // a jump, but the loss it counts is bounded by what the publisher can have sent since its
    // window last moved: 10 per microsecond, here about 1.1 s.
    fake_now += 1100000000;
    feed_seq(&rx, 1, (uint64_t)1 << 40);
    feed_seq(&rx, 1, ((uint64_t)1 << 40) + 1);
    st = stats(&rx);
    CU_ASSERT(st.lost >= 1024 && st.lost <= 11100000);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_publisher_bound_to_its_address(void)
{
    // Forged datagrams with a real id from another address do not replace its messages.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint8_t real = 'R', fake = 'F';
    for (uint64_t seq = 0; seq < 10; seq++) {
        size_t n = encode(D, 4096, 7, seq, "t", &fake, 1, 65000);
        feed_from(&rx, &D[0], 666, &S); // the forger, first each time
        free_dgs(D, n);
        n = encode(D, 4096, 7, seq, "t", &real, 1, 65000);
        feed_from(&rx, &D[0], seq == 0 ? 666 : 1, &S);
        free_dgs(D, n);
        if (seq == 0) { // (the forger got there first: the id is bound to it)
            sink_clear(&S);
            mcl__rx_fini(&rx);
            MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
            n = encode(D, 4096, 7, seq, "t", &real, 1, 65000);
            feed_from(&rx, &D[0], 1, &S);
            free_dgs(D, n);
        }
    }
    CU_ASSERT_EQUAL_FATAL(S.n, 10);
    for (size_t i = 0; i < S.n; i++)
        CU_ASSERT_EQUAL(((const uint8_t *)S.m[i]->payload)[0], 'R');
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.suspect, 9);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    CU_ASSERT_EQUAL(st.lost, 0);
    // A publisher that really moved is followed once its old address has been quiet 2 s.
    fake_now += 2100000000;
    size_t n = encode(D, 4096, 7, 10, "t", &real, 1, 65000);
    feed_from(&rx, &D[0], 2, &S);
    free_dgs(D, n);
    CU_ASSERT_EQUAL(S.n, 11);
    CU_ASSERT_EQUAL(stats(&rx).suspect, 9);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_forged_fragments_cannot_veto(void)
{
    uint8_t *p = mclt_pattern(30000, 3);
    static dg G[64], F[64];
    // A contradicting first fragment (other total) arrives before the genuine ones.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    size_t ng = encode(G, 64, 5, 0, "cam", p, 30000, 9000);
    size_t nf = encode(F, 64, 5, 0, "cam", p, 20000, 9000);
    feed(&rx, &F[0], &S);
    for (size_t i = 0; i < ng; i++)
        feed(&rx, &G[i], &S);
    CU_ASSERT_EQUAL_FATAL(S.n, 1);
    CU_ASSERT_EQUAL(S.m[0]->len, 30000);
    CU_ASSERT(memcmp(S.m[0]->payload, p, 30000) == 0);
    CU_ASSERT_EQUAL(stats(&rx).suspect, 1);
    CU_ASSERT_EQUAL(stats(&rx).partial_count, 0);
    for (size_t i = 1; i < nf; i++) // the rest of the forgery: dropped quietly
        feed(&rx, &F[i], &S);
    CU_ASSERT_EQUAL(S.n, 1);
    sink_clear(&S);
    mcl__rx_fini(&rx);
    free_dgs(F, nf);
    // A false claim that the message is too large (or of a filtered topic) at its first
    // fragment: the genuine message still completes, and the oversize count is undone.
    mcl__rx_cfg small = default_cfg;
    small.maxmsg = 100000;
    MCLT_OK(mcl__rx_init(&rx, &small, NULL, 0));
    uint8_t *big = mclt_pattern(200000, 4);
    nf = encode(F, 64, 5, 0, "cam", big, 200000, 9000);
    feed(&rx, &F[0], &S);
    CU_ASSERT_EQUAL(stats(&rx).oversize, 1);
    for (size_t i = 0; i < ng; i++)
        feed(&rx, &G[i], &S);
    CU_ASSERT_EQUAL_FATAL(S.n, 1);
    CU_ASSERT(memcmp(S.m[0]->payload, p, 30000) == 0);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.oversize, 0);
    CU_ASSERT_EQUAL(st.suspect, 1);
    CU_ASSERT_EQUAL(st.messages, 1);
    sink_clear(&S);
    mcl__rx_fini(&rx);
    free_dgs(F, nf);
    free_dgs(G, ng);
    free(big);
    free(p);
}

static void
test_fake_id_flood_keeps_real_publishers(void)
{
    // 4,096+ fake ids used to evict (and so reset) a slow genuine publisher.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    for (uint64_t seq = 0; seq < 5; seq++)
        feed_seq(&rx, 1, seq);
    fake_now += 1000000;
    for (uint64_t id = 1000; id < 11000; id++) {
        feed_seq(&rx, id, 42);
        fake_now += 1000;
        sink_clear(&S);
    }
    feed_seq(&rx, 1, 5);
    mcl_publisher_stats ps[1];
    CU_ASSERT(mcl__rx_publishers(&rx, ps, 1) <= 4096);
    CU_ASSERT_EQUAL(ps[0].publisher, 1);
    CU_ASSERT_EQUAL(ps[0].messages, 6);
    CU_ASSERT_EQUAL(ps[0].first_seq, 0);
    CU_ASSERT_EQUAL(stats(&rx).lost, 0);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_late_reassembly_older_than_window(void)
{
    // A large message completes after more than 1024 newer small ones (a broadcaster shared
    // by threads): it is delivered, late, not thrown away as a duplicate.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    uint8_t *p = mclt_pattern(3000, 1);
    size_t n = encode(D, 4096, 1, 0, "big", p, 3000, 2000);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    static dg keep;
    keep = D[1];
    feed(&rx, &D[0], &S);
    free(D[0].b);
    for (uint64_t seq = 1; seq <= 1100; seq++)
        feed_seq(&rx, 1, seq);
    feed(&rx, &keep, &S);
    free(keep.b);
    CU_ASSERT_EQUAL_FATAL(S.n, 1101);
    CU_ASSERT_EQUAL(S.m[1100]->seq, 0);
    CU_ASSERT(memcmp(S.m[1100]->payload, p, 3000) == 0);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    CU_ASSERT_EQUAL(st.reordered, 1);
    CU_ASSERT_EQUAL(st.lost, 0);
    free(p);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_late_message_before_first(void)
{
    // Publisher 2 loses 4 messages; publisher 1 is first heard at 10, then 5..9 arrive late:
    // 6..9 were never counted, so nothing is uncounted from publisher 2's real losses.
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    feed_seq(&rx, 2, 0);
    feed_seq(&rx, 2, 5);
    uint64_t late[] = {10, 5, 6, 7, 8, 9};
    for (size_t i = 0; i < 6; i++)
        feed_seq(&rx, 1, late[i]);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 4);
    CU_ASSERT_EQUAL(S.n, 8);
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static void
test_dropped_partials_stay_dropped(void)
{
    // Two 20 kB messages interleaved under a 30 kB cap: the second evicts the first, whose
    // later fragments are then ignored instead of evicting the second in turn.
    mcl__rx_cfg cfg = default_cfg;
    cfg.partmem = 30000;
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    uint8_t *p = mclt_pattern(20000, 3);
    static dg A[16], B[16];
    size_t na = encode(A, 16, 1, 0, "a", p, 20000, 9000);
    size_t nb = encode(B, 16, 2, 0, "b", p, 20000, 9000);
    for (size_t i = 0; i < na; i++) {
        feed(&rx, &A[i], &S);
        feed(&rx, &B[i], &S);
    }
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(S.n, 1);
    CU_ASSERT_EQUAL(st.evicted, 1);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    sink_clear(&S);
    // An expired message whose fragments keep arriving is expired once, not once per fragment.
    mcl__rx_fini(&rx);
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    feed(&rx, &A[0], &S);
    mcl__rx_expire(&rx, fake_now + default_cfg.expire_ns);
    for (size_t i = 1; i < na; i++)
        feed(&rx, &A[i], &S);
    st = stats(&rx);
    CU_ASSERT_EQUAL(st.expired, 1);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    CU_ASSERT_EQUAL(S.n, 0);
    free_dgs(A, na);
    free_dgs(B, nb);
    free(p);
    mcl__rx_fini(&rx);
}

static void
test_huge_fragment_count(void)
{
    // A fragment claiming 2^32-16 fragments of one byte, with limits that let it through: the
    // bookkeeping sizes are computed without overflow (ASan would catch a stray write), or the
    // allocation fails cleanly.
    mcl__rx_cfg cfg = default_cfg;
    cfg.maxmsg = UINT32_MAX;
    cfg.partmem = (size_t)8 << 30;
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    uint8_t b[64];
    uint32_t count = 0xFFFFFFF0u;
    size_t n = mcl__wire_put_hdr(b, MCL__WIRE_F_FRAG, 1, 5);
    n += mcl__wire_put_frag(b + n, 0, "", 0, 1, count, count - 2, count - 2, count);
    b[n++] = 'x';
    dg d = {b, n};
    feed(&rx, &d, &S);
    CU_ASSERT_EQUAL(S.n, 0);
    mcl__rx_fini(&rx);
}

// --- compressed messages (MCL__WIRE_F_ZIP) ----------------------------------------------------

// A camera-like frame: gradients with sparse noise.
static uint8_t *
zframe(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i / 256 + (i % 16 == 0 ? mclt_rand(&s) & 3 : 0));
    return p;
}

// The envelope of p[0..len) compressed with codec, stating `claim` as its size (*envlen).
static uint8_t *
zenvelope(int codec, const uint8_t *p, size_t len, size_t claim, size_t *envlen)
{
    size_t cap = mcl__z_bound(codec, len);
    uint8_t *e = malloc(MCL__WIRE_ZENV + cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    mcl__zctx *z = mcl__zctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    size_t zl = mcl__z_compress(z, codec, 0, p, len, e + MCL__WIRE_ZENV, cap);
    CU_ASSERT_FATAL(zl > 0);
    mcl__zctx_free(z);
    mcl__wire_put_zenv(e, (uint8_t)codec, (uint32_t)claim);
    *envlen = MCL__WIRE_ZENV + zl;
    return e;
}

// Encodes an envelope as the broadcaster sends a compressed message: MCL__WIRE_F_ZIP on
// every datagram.
static size_t
encode_zip(dg *out, size_t cap, uint64_t pub, uint64_t seq, const char *topic,
           const uint8_t *env, size_t envlen, size_t dgram)
{
    size_t n = encode(out, cap, pub, seq, topic, env, envlen, dgram);
    for (size_t i = 0; i < n; i++)
        out[i].b[4] |= MCL__WIRE_F_ZIP;
    return n;
}

static void
test_compressed_roundtrip(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    const size_t sizes[] = {4096, 1 << 20};     // one datagram; fragments
    const int codecs[] = {MCL__Z_ZSTD, MCL__Z_LZ4}; // (each with each)
    uint64_t seq = 0, zbytes = 0, bytes = 0;
    for (size_t c = 0; c < 2; c++) {
        if (!mcl__z_built(codecs[c]))
            continue;
        for (size_t k = 0; k < 2; k++, seq++) {
            uint8_t *p = zframe(sizes[k], seq);
            size_t el;
            uint8_t *env = zenvelope(codecs[c], p, sizes[k], sizes[k], &el);
            CU_ASSERT(el < sizes[k] / 2);
            size_t n = encode_zip(D, 4096, 5, seq, "cam", env, el, 9000);
            CU_ASSERT_EQUAL(n > 1, sizes[k] > 9000);
            for (size_t i = n; i-- > 0;) // (fragments backwards: reassembly before opening)
                feed(&rx, &D[i], &S);
            CU_ASSERT_EQUAL_FATAL(S.n, 1);
            CU_ASSERT_EQUAL_FATAL(S.m[0]->len, sizes[k]);
            CU_ASSERT(memcmp(S.m[0]->payload, p, sizes[k]) == 0);
            CU_ASSERT_EQUAL(S.m[0]->seq, seq);
            zbytes += el;
            bytes += sizes[k];
            sink_clear(&S);
            free_dgs(D, n);
            free(env);
            free(p);
        }
    }
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.compressed, seq);
    CU_ASSERT_EQUAL(st.messages, seq);
    CU_ASSERT_EQUAL(st.compressed_bytes, zbytes);
    CU_ASSERT_EQUAL(st.bytes, bytes);
    CU_ASSERT_EQUAL(st.undecompressed, 0);
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl__rx_fini(&rx);
}

// Sends seq 0 (good), then the hostile envelope as seq 1 (fragmented at dgram), then seq 2
// (good); returns the listener's counters. The two good ones must arrive; the bad one must not,
// and must not be taken as received (it counts as lost).
static mcl_listener_stats
zip_between_good(const mcl__rx_cfg *cfg, const uint8_t *env, size_t el, size_t dgram,
                 bool fail_allocs)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, cfg, NULL, 0));
    uint8_t good[64];
    memset(good, 'g', sizeof good);
    size_t n = encode(D, 4096, 9, 0, "t", good, sizeof good, 65000);
    feed(&rx, &D[0], &S);
    free_dgs(D, n);
    n = encode_zip(D, 4096, 9, 1, "t", env, el, dgram);
    if (fail_allocs)
        mcl__alloc_fail_after(0); // from here on, nothing can be allocated
    for (size_t i = 0; i < n; i++)
        feed(&rx, &D[i], &S);
    mcl__alloc_fail_after(-1);
    free_dgs(D, n);
    n = encode(D, 4096, 9, 2, "t", good, sizeof good, 65000);
    feed(&rx, &D[0], &S);
    free_dgs(D, n);
    CU_ASSERT_EQUAL(S.n, 2);
    for (size_t i = 0; i < S.n; i++)
        CU_ASSERT_EQUAL(S.m[i]->len, sizeof good);
    sink_clear(&S);
    mcl_listener_stats st = stats(&rx);
    mcl__rx_fini(&rx);
    return st;
}

static void
test_compressed_hostile(void)
{
    int codec = mcl__z_built(MCL__Z_ZSTD) ? MCL__Z_ZSTD : MCL__Z_LZ4;
    if (!mcl__z_built(codec))
        return;
    // A bomb: 64 MiB of zeros, stated as 1 KiB (so within maxmsg).
    size_t big = (size_t)64 << 20;
    uint8_t *zeros = calloc(1, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
    size_t el;
    uint8_t *env = zenvelope(codec, zeros, big, 1024, &el);
    mcl_listener_stats st = zip_between_good(&default_cfg, env, el, 65000, false);
    CU_ASSERT_EQUAL(st.undecompressed, 1);
    CU_ASSERT_EQUAL(st.lost, 1);
    CU_ASSERT_EQUAL(st.compressed, 0);
    // Honest, but larger than the listener's maxmsg (1 MiB): oversize, its number received,
    // and never allocated (with every allocation failing, it is still oversize, not an
    // undecompressed message).
    free(env);
    env = zenvelope(codec, zeros, (size_t)2 << 20, (size_t)2 << 20, &el);
    mcl__rx_cfg small = default_cfg;
    small.maxmsg = (size_t)1 << 20;
    st = zip_between_good(&small, env, el, 65000, true);
    CU_ASSERT_EQUAL(st.oversize, 1);
    CU_ASSERT_EQUAL(st.undecompressed, 0);
    CU_ASSERT_EQUAL(st.lost, 0);
    free(env);
    free(zeros);

    uint8_t *p = zframe(100000, 1);
    env = zenvelope(codec, p, 100000, 100000, &el);
    uint8_t *bad = malloc(el + 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    memcpy(bad, env, el);
    // Lying sizes: one byte more or less than the stream holds.
    const long deltas[] = {1, -1};
    for (size_t d = 0; d < 2; d++) {
        mcl__wire_put_zenv(bad, (uint8_t)codec, (uint32_t)(100000 + deltas[d]));
        st = zip_between_good(&default_cfg, bad, el, 65000, false);
        CU_ASSERT_EQUAL(st.undecompressed, 1);
        CU_ASSERT_EQUAL(st.lost, 1);
    }
    // Unknown codec, codec 0 ("stored" is not sent compressed), reserved byte set.
    const uint8_t heads[][2] = {{7, 0}, {0, 0}, {(uint8_t)codec, 1}};
    for (size_t h = 0; h < 3; h++) {
        memcpy(bad, env, el);
        bad[0] = heads[h][0];
        bad[1] = heads[h][1];
        st = zip_between_good(&default_cfg, bad, el, 65000, false);
        CU_ASSERT_EQUAL(st.undecompressed, 1);
    }
    // Truncated streams, and trailing bytes.
    memcpy(bad, env, el);
    st = zip_between_good(&default_cfg, bad, el / 2, 65000, false);
    CU_ASSERT_EQUAL(st.undecompressed, 1);
    memcpy(bad + el, "trailing", 8);
    st = zip_between_good(&default_cfg, bad, el + 8, 65000, false);
    CU_ASSERT_EQUAL(st.undecompressed, 1);
    // Shorter than an envelope: a malformed datagram.
    st = zip_between_good(&default_cfg, bad, MCL__WIRE_ZENV - 1, 65000, false);
    CU_ASSERT_EQUAL(st.malformed, 1);
    CU_ASSERT_EQUAL(st.undecompressed, 0);
    // Fragments of one number, some flagged compressed and some not, are two shapes: the
    // compressed one completes and is delivered; the plain rival is dropped (suspect).
    {
        mcl__rx rx;
        MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
        size_t n = encode_zip(D, 4096, 11, 0, "t", env, el, 1200);
        CU_ASSERT_FATAL(n >= 3 && n < 2048);
        size_t m = encode(D + n, 4096 - n, 11, 0, "t", env, el, 1200);
        CU_ASSERT_EQUAL_FATAL(m, n);
        feed(&rx, &D[n], &S); // a plain fragment first
        for (size_t i = 0; i < n; i++)
            feed(&rx, &D[i], &S);
        CU_ASSERT_EQUAL_FATAL(S.n, 1);
        CU_ASSERT_EQUAL(S.m[0]->len, 100000);
        CU_ASSERT(memcmp(S.m[0]->payload, p, 100000) == 0);
        sink_clear(&S);
        st = stats(&rx);
        CU_ASSERT_EQUAL(st.suspect, 1);
        free_dgs(D, n + m);
        mcl__rx_fini(&rx);
    }
    // A heartbeat cannot be compressed.
    {
        mcl__rx rx;
        MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
        uint8_t hb[256];
        mcl__wire_hb h = {.next_seq = 1, .interval_ms = 1000, .pid = 1,
                          .host = (const uint8_t *)"h", .host_len = 1,
                          .prog = (const uint8_t *)"p", .prog_len = 1};
        size_t hl = mcl__wire_put_hb(hb, sizeof hb, 3, &h, NULL, NULL, NULL, 0, 0);
        CU_ASSERT_FATAL(hl > 0);
        hb[4] |= MCL__WIRE_F_ZIP;
        dg d = {hb, hl};
        feed(&rx, &d, &S);
        CU_ASSERT_EQUAL(stats(&rx).malformed, 1);
        CU_ASSERT_EQUAL(S.n, 0);
        mcl__rx_fini(&rx);
    }
    free(bad);
    free(env);
    free(p);
}

// docs/wire-format.md, compressed messages: the test vector.
static void
test_compressed_vector(void)
{
    static const uint8_t v[] = {
        0x4d, 0x43, 0x4c, 0x01, 0x10, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x11, 0x7a, 0x02, 0x00, 0x00, 0x00, 0x00, 0x20, 0x1f, 0x61, 0x01, 0x00, 0x07,
        0x50, 0x61, 0x61, 0x61, 0x61, 0x61};
    // What mcl writes before the stream is these bytes.
    uint8_t h[64];
    size_t n = mcl__wire_put_hdr(h, MCL__WIRE_F_ZIP, 1, 0x0102030405060708ULL);
    n += mcl__wire_put_rec(h + n, 9, "z", 1, 17);
    mcl__wire_put_zenv(h + n, MCL__Z_LZ4, 32);
    n += MCL__WIRE_ZENV;
    CU_ASSERT_EQUAL_FATAL(n, 37);
    CU_ASSERT(memcmp(h, v, n) == 0);
    if (!mcl__z_built(MCL__Z_LZ4))
        return;
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &default_cfg, NULL, 0));
    dg d = {(uint8_t *)v, sizeof v};
    feed(&rx, &d, &S);
    CU_ASSERT_EQUAL_FATAL(S.n, 1);
    CU_ASSERT_EQUAL_FATAL(S.m[0]->len, 32);
    CU_ASSERT(memcmp(S.m[0]->payload, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32) == 0);
    CU_ASSERT_EQUAL(S.m[0]->seq, 9);
    CU_ASSERT_STRING_EQUAL(S.m[0]->topic, "z");
    sink_clear(&S);
    mcl__rx_fini(&rx);
}

static CU_TestInfo tests[] = {
    {"compressed_vector", test_compressed_vector},
    {"compressed_roundtrip", test_compressed_roundtrip},
    {"compressed_hostile", test_compressed_hostile},
    {"hostile_sequence_numbers", test_hostile_sequence_numbers},
    {"forged_jump_does_not_blackhole", test_forged_jump_does_not_blackhole},
    {"random_numbers_cannot_inflate_lost", test_random_numbers_cannot_inflate_lost},
    {"publisher_bound_to_its_address", test_publisher_bound_to_its_address},
    {"forged_fragments_cannot_veto", test_forged_fragments_cannot_veto},
    {"fake_id_flood_keeps_real_publishers", test_fake_id_flood_keeps_real_publishers},
    {"late_reassembly_older_than_window", test_late_reassembly_older_than_window},
    {"late_message_before_first", test_late_message_before_first},
    {"dropped_partials_stay_dropped", test_dropped_partials_stay_dropped},
    {"huge_fragment_count", test_huge_fragment_count},
    {"sizes_roundtrip", test_sizes_roundtrip},
    {"reordered_and_duplicated_fragments", test_reordered_and_duplicated_fragments},
    {"lost_fragment_expires_and_counts_as_lost", test_lost_fragment_expires_and_counts_as_lost},
    {"sequence_accounting", test_sequence_accounting},
    {"interleaved_publishers_same_topic", test_interleaved_publishers_same_topic},
    {"memory_cap_and_oversize", test_memory_cap_and_oversize},
    {"topic_filter", test_topic_filter},
    {"contradicting_fragments_and_garbage", test_contradicting_fragments_and_garbage},
    {"multi_record_datagram", test_multi_record_datagram},
    {"random_loss_reorder_duplication", test_random_loss_reorder_duplication},
    {"allocation_failures", test_allocation_failures},
    CU_TEST_INFO_NULL};
MCLT_SUITE("raw_rx", NULL, NULL, tests);
