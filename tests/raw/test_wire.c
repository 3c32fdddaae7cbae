// SPDX-License-Identifier: BSD-3-Clause
// Wire format v1: the byte-level test vectors of docs/wire-format.md, and every way a datagram
// can be malformed.
#include "harness.h"
#include "raw/wire.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t vec1[] = {0x4d, 0x43, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02,
                               0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x00,
                               0x00, 0x00, 0x00, 0x05, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02,
                               0x69, 0x6d, 0x75, 0x68, 0x69};
static const uint8_t vec2[] = {0x4d, 0x43, 0x4c, 0x01, 0x01, 0x00, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44,
                               0x55, 0x66, 0x77, 0x88, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
                               0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00,
                               0x00, 0x08, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x69, 0x6a};
static const uint8_t vec3[] = {0x4d, 0x43, 0x4c, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
                               0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
                               0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x61, 0x78, 0x00, 0x00, 0x00, 0x00,
                               0x00, 0x00, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x62};

static void
test_vector1_unfragmented(void)
{
    uint8_t b[64];
    size_t n = mcl__wire_put_hdr(b, 0, 1, 0x0102030405060708ULL);
    n += mcl__wire_put_rec(b + n, 5, "imu", 3, 2);
    memcpy(b + n, "hi", 2);
    n += 2;
    CU_ASSERT_EQUAL_FATAL(n, sizeof(vec1));
    CU_ASSERT(memcmp(b, vec1, n) == 0);

    mcl__wire_hdr h;
    MCLT_OK(mcl__wire_check(&h, vec1, sizeof(vec1)));
    CU_ASSERT_EQUAL(h.flags, 0);
    CU_ASSERT_EQUAL(h.count, 1);
    CU_ASSERT_EQUAL(h.publisher, 0x0102030405060708ULL);
    size_t off = MCL__WIRE_HDR;
    mcl__wire_rec r;
    mcl__wire_next(vec1, &off, false, &r);
    CU_ASSERT_EQUAL(off, sizeof(vec1));
    CU_ASSERT_EQUAL(r.seq, 5);
    CU_ASSERT_EQUAL(r.topic_len, 3);
    CU_ASSERT(memcmp(r.topic, "imu", 3) == 0);
    CU_ASSERT_EQUAL(r.len, 2);
    CU_ASSERT(memcmp(r.payload, "hi", 2) == 0);
    CU_ASSERT_FALSE(r.frag);
}

static void
test_vector2_fragment(void)
{
    uint8_t b[64];
    size_t n = mcl__wire_put_hdr(b, MCL__WIRE_F_FRAG, 1, 0x1122334455667788ULL);
    n += mcl__wire_put_frag(b + n, 0x100000001ULL, "", 0, 2, 10, 8, 2, 3);
    memcpy(b + n, "ij", 2);
    n += 2;
    CU_ASSERT_EQUAL_FATAL(n, sizeof(vec2));
    CU_ASSERT(memcmp(b, vec2, n) == 0);

    mcl__wire_hdr h;
    MCLT_OK(mcl__wire_check(&h, vec2, sizeof(vec2)));
    CU_ASSERT_EQUAL(h.flags, MCL__WIRE_F_FRAG);
    size_t off = MCL__WIRE_HDR;
    mcl__wire_rec r;
    mcl__wire_next(vec2, &off, true, &r);
    CU_ASSERT_EQUAL(off, sizeof(vec2));
    CU_ASSERT_EQUAL(r.seq, 0x100000001ULL);
    CU_ASSERT_EQUAL(r.topic_len, 0);
    CU_ASSERT_EQUAL(r.total, 10);
    CU_ASSERT_EQUAL(r.offset, 8);
    CU_ASSERT_EQUAL(r.index, 2);
    CU_ASSERT_EQUAL(r.count, 3);
    CU_ASSERT_EQUAL(r.fsize, 4);
    CU_ASSERT_EQUAL(r.len, 2);
    CU_ASSERT(memcmp(r.payload, "ij", 2) == 0);
}

static void
test_vector3_two_records(void)
{
    uint8_t b[64];
    size_t n = mcl__wire_put_hdr(b, 0, 2, 1);
    n += mcl__wire_put_rec(b + n, 7, "a", 1, 1);
    b[n++] = 'x';
    n += mcl__wire_put_rec(b + n, 8, "b", 1, 0);
    CU_ASSERT_EQUAL_FATAL(n, sizeof(vec3));
    CU_ASSERT(memcmp(b, vec3, n) == 0);
    mcl__wire_hdr h;
    MCLT_OK(mcl__wire_check(&h, vec3, sizeof(vec3)));
    CU_ASSERT_EQUAL(h.count, 2);
    size_t off = MCL__WIRE_HDR;
    mcl__wire_rec r;
    mcl__wire_next(vec3, &off, false, &r);
    CU_ASSERT_EQUAL(r.seq, 7);
    CU_ASSERT_EQUAL(r.len, 1);
    CU_ASSERT_EQUAL(r.payload[0], 'x');
    mcl__wire_next(vec3, &off, false, &r);
    CU_ASSERT_EQUAL(r.seq, 8);
    CU_ASSERT_EQUAL(r.topic[0], 'b');
    CU_ASSERT_EQUAL(r.len, 0);
    CU_ASSERT_EQUAL(off, sizeof(vec3));
}

// Copies v, applies one change, and checks the result is rejected with code.
static void
expect_bad(const uint8_t *v, size_t n, size_t at, uint8_t val, mcl_err code)
{
    uint8_t b[128];
    memcpy(b, v, n);
    b[at] = val;
    mcl__wire_hdr h;
    mcl_err rv = mcl__wire_check(&h, b, n);
    if (rv != code)
        fprintf(stderr, "\n  byte %zu = 0x%02x: %s, expected %s\n", at, val, mcl_err_name(rv),
                mcl_err_name(code));
    CU_ASSERT_EQUAL(rv, code);
}

static void
test_malformed_headers(void)
{
    expect_bad(vec1, sizeof(vec1), 0, 'X', MCL_EPROTO);  // magic
    expect_bad(vec1, sizeof(vec1), 3, 0x02, MCL_EPROTO); // version 2
    expect_bad(vec1, sizeof(vec1), 3, 0x00, MCL_EPROTO); // version 0
    expect_bad(vec1, sizeof(vec1), 4, 0x80, MCL_EPROTO); // unknown flag
    expect_bad(vec1, sizeof(vec1), 4, 0x04, MCL_EPROTO); // unknown flag
    expect_bad(vec1, sizeof(vec1), 4, 0x08, MCL_EPROTO); // ENC never reaches the decoder
    expect_bad(vec1, sizeof(vec1), 5, 0x01, MCL_EPROTO); // reserved byte
    expect_bad(vec1, sizeof(vec1), 7, 0x00, MCL_EPROTO); // zero records
    expect_bad(vec1, sizeof(vec1), 7, 0x02, MCL_EPROTO); // more records than bytes
    expect_bad(vec1, sizeof(vec1), 25, 0x04, MCL_EPROTO); // topic runs past the end
    expect_bad(vec1, sizeof(vec1), 25, 0x00, MCL_EPROTO); // topic shorter: trailing bytes
    expect_bad(vec1, sizeof(vec1), 26, 0x80, MCL_EPROTO); // huge payload length
    expect_bad(vec1, sizeof(vec1), 29, 0x03, MCL_EPROTO); // payload past the end
    expect_bad(vec1, sizeof(vec1), 29, 0x01, MCL_EPROTO); // trailing byte
    expect_bad(vec1, sizeof(vec1), 31, 0x00, MCL_EPROTO); // NUL inside the topic
    expect_bad(vec1, sizeof(vec1), 24, 0x04, MCL_EPROTO); // topic_len 1027 > 1024
    expect_bad(vec3, sizeof(vec3), 4, 0x01, MCL_EPROTO);  // FRAG with two records
    // Every truncation of every vector is rejected.
    const uint8_t *vs[] = {vec1, vec2, vec3};
    size_t ns[] = {sizeof(vec1), sizeof(vec2), sizeof(vec3)};
    for (int k = 0; k < 3; k++)
        for (size_t n = 0; n < ns[k]; n++) {
            mcl__wire_hdr h;
            CU_ASSERT_EQUAL(mcl__wire_check(&h, vs[k], n), MCL_EPROTO);
        }
}

// Builds a fragment datagram with the given geometry.
static size_t
frag(uint8_t *b, uint32_t len, uint32_t total, uint32_t offset, uint32_t index, uint32_t count)
{
    size_t n = mcl__wire_put_hdr(b, MCL__WIRE_F_FRAG, 1, 9);
    n += mcl__wire_put_frag(b + n, 1, "t", 1, len, total, offset, index, count);
    memset(b + n, 'z', len);
    return n + len;
}

static void
test_fragment_geometry(void)
{
    uint8_t b[256];
    mcl__wire_hdr h;
    // 10 bytes in fragments of 4: (0,0,4) (1,4,4) (2,8,2) are the only valid pieces.
    CU_ASSERT_EQUAL(mcl__wire_check(&h, b, frag(b, 4, 10, 0, 0, 3)), MCL_OK);
    CU_ASSERT_EQUAL(mcl__wire_check(&h, b, frag(b, 4, 10, 4, 1, 3)), MCL_OK);
    CU_ASSERT_EQUAL(mcl__wire_check(&h, b, frag(b, 2, 10, 8, 2, 3)), MCL_OK);
    // Exact multiple: 8 bytes in fragments of 4 is 2 fragments, the last one full.
    CU_ASSERT_EQUAL(mcl__wire_check(&h, b, frag(b, 4, 8, 4, 1, 2)), MCL_OK);
    struct {
        uint32_t len, total, offset, index, count;
    } bad[] = {
        {4, 10, 0, 0, 1},  // count 1 is not a fragment
        {4, 10, 0, 3, 3},  // index out of range
        {0, 10, 0, 0, 3},  // empty fragment
        {4, 10, 1, 0, 3},  // wrong offset for index 0
        {4, 10, 8, 1, 3},  // wrong offset for index 1
        {2, 10, 7, 2, 3},  // last fragment at a bad offset
        {3, 10, 8, 2, 3},  // last fragment overruns total
        {1, 10, 8, 2, 3},  // last fragment does not reach total
        {4, 20, 0, 0, 3},  // count too small for total and F
        {4, 8, 0, 0, 3},   // count too large: an empty trailing fragment
        {4, 2, 0, 0, 3},   // total smaller than count
        {5, 4, 0, 0, 2},   // fragment longer than total
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = frag(b, bad[i].len, bad[i].total, bad[i].offset, bad[i].index, bad[i].count);
        mcl_err rv = mcl__wire_check(&h, b, n);
        if (rv != MCL_EPROTO)
            fprintf(stderr, "\n  bad geometry case %zu accepted\n", i);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
    }
}

static void
test_plan(void)
{
    uint32_t count;
    size_t f;
    mcl__wire_plan(65000, 0, 100, &count, &f);
    CU_ASSERT_EQUAL(count, 1);
    mcl__wire_plan(65000, 0, 65000 - 30, &count, &f); // exactly fills one datagram
    CU_ASSERT_EQUAL(count, 1);
    mcl__wire_plan(65000, 0, 65000 - 29, &count, &f); // one byte more: fragments
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT_EQUAL(f, 65000 - 46);
    mcl__wire_plan(65000, 10, 2 * (65000 - 56), &count, &f); // exact multiple: no empty piece
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT_EQUAL(f, 65000 - 56);
    mcl__wire_plan(1200, 1024, 1000, &count, &f); // the longest topic still leaves room
    CU_ASSERT(f > 0);
    CU_ASSERT_EQUAL(count, (1000 + f - 1) / f);
}

static void
test_random_garbage_never_crashes(void)
{
    // Random bytes, valid headers with random bodies, and single-byte mutations of the vectors:
    // each is accepted or rejected, and an accepted one decodes inside its buffer (ASan checks).
    uint64_t s = 7;
    uint8_t *b = malloc(2048);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    unsigned accepted = 0;
    for (int i = 0; i < 200000; i++) {
        size_t n = mclt_rand(&s) % 200;
        for (size_t k = 0; k < n; k++)
            b[k] = (uint8_t)mclt_rand(&s);
        int mode = i % 3;
        if (mode == 1 && n >= 16)
            mcl__wire_put_hdr(b, (uint8_t)(mclt_rand(&s) & 1), (uint16_t)(1 + mclt_rand(&s) % 3),
                              1);
        if (mode == 2) {
            const uint8_t *v = (i & 4) ? vec2 : vec1;
            n = (i & 4) ? sizeof(vec2) : sizeof(vec1);
            memcpy(b, v, n);
            b[mclt_rand(&s) % n] = (uint8_t)mclt_rand(&s);
        }
        uint8_t *exact = malloc(n ? n : 1); // exact-size copy so ASan sees any over-read
        CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
        memcpy(exact, b, n);
        mcl__wire_hdr h;
        if (mcl__wire_check(&h, exact, n) == MCL_OK) {
            accepted++;
            size_t off = MCL__WIRE_HDR;
            for (unsigned r = 0; r < h.count; r++) {
                mcl__wire_rec rec;
                mcl__wire_next(exact, &off, (h.flags & MCL__WIRE_F_FRAG) != 0, &rec);
                CU_ASSERT(off <= n);
            }
            CU_ASSERT_EQUAL(off, n);
        }
        free(exact);
    }
    CU_ASSERT(accepted > 0); // the mutations do produce some valid datagrams
    free(b);
}

// The word-at-a-time NUL search and short copy (core/internal.h) against byte loops, for every
// length and NUL position around their word sizes, in exact-size buffers (ASan and valgrind see
// any read past the end), with bytes that fool a careless zero-byte trick (0x01, 0x80, 0xff
// beside the NUL).
static void
test_topic_nul_and_copy(void)
{
    static const uint8_t fill[] = {0x01, 0x80, 0xff, 0x7f, 0x61, 0x81, 0x00};
    for (size_t n = 0; n <= 40; n++) {
        for (size_t pos = 0; pos <= n; pos++) {       // pos == n: no NUL
            for (size_t f = 0; f < sizeof(fill); f++) { // what the other bytes hold
                uint8_t *b = malloc(n ? n : 1);
                CU_ASSERT_PTR_NOT_NULL_FATAL(b);
                for (size_t i = 0; i < n; i++)
                    b[i] = fill[(f + i) % (sizeof(fill) - 1)]; // (no 0 among them)
                if (pos < n)
                    b[pos] = 0;
                if (fill[f] == 0 && pos + 1 < n) // a second NUL after the first
                    b[n - 1] = 0;
                size_t want = n;
                for (size_t i = 0; i < n; i++)
                    if (b[i] == 0) {
                        want = i;
                        break;
                    }
                CU_ASSERT_EQUAL(mcl__nul_at(b, n), want);
                uint8_t d[48];
                memset(d, 0xee, sizeof(d));
                mcl__copy_short(d, b, n);
                CU_ASSERT(n == 0 || memcmp(d, b, n) == 0);
                CU_ASSERT_EQUAL(d[n], 0xee); // nothing written past n
                free(b);
            }
        }
    }
}

// A record whose topic holds a NUL is refused, whatever the topic's length and the NUL's place.
static void
test_topic_with_nul_refused(void)
{
    for (size_t tl = 1; tl <= 40; tl++) {
        for (size_t pos = 0; pos <= tl; pos++) {
            char topic[41];
            for (size_t i = 0; i < tl; i++)
                topic[i] = (char)('a' + i % 26);
            if (pos < tl)
                topic[pos] = '\0';
            size_t n = MCL__WIRE_HDR + MCL__WIRE_REC + tl + 2;
            uint8_t *b = malloc(n);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
            size_t off = mcl__wire_put_hdr(b, 0, 1, 7);
            off += mcl__wire_put_rec(b + off, 1, topic, (uint16_t)tl, 2);
            memcpy(b + off, "hi", 2);
            mcl__wire_hdr h;
            mcl_err rv = mcl__wire_check(&h, b, n);
            CU_ASSERT_EQUAL(rv, pos < tl ? MCL_EPROTO : MCL_OK);
            free(b);
        }
    }
}

static CU_TestInfo tests[] = {{"vector1_unfragmented", test_vector1_unfragmented},
                              {"vector2_fragment", test_vector2_fragment},
                              {"vector3_two_records", test_vector3_two_records},
                              {"malformed_headers", test_malformed_headers},
                              {"fragment_geometry", test_fragment_geometry},
                              {"plan", test_plan},
                              {"random_garbage_never_crashes", test_random_garbage_never_crashes},
                              {"topic_nul_and_copy", test_topic_nul_and_copy},
                              {"topic_with_nul_refused", test_topic_with_nul_refused},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("raw_wire", NULL, NULL, tests);
