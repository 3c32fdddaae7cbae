// SPDX-License-Identifier: BSD-3-Clause
// lib/core/zcodec.c: round trips of both codecs, and hostile input (lying sizes, truncated and
// corrupted streams, trailing bytes, bombs) refused without writing past the stated size.
#include "harness.h"

#include "core/internal.h"
#include "core/zcodec.h"

#include <stdlib.h>
#include <string.h>

// A camera-like frame: smooth gradients with a little noise (compressible, not trivially).
static uint8_t *
frame(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i / 64) + (i % 16 == 0 ? mclt_rand(&s) & 3 : 0));
    return p;
}

static const int codecs[] = {MCL__Z_ZSTD, MCL__Z_LZ4};

static void
test_names(void)
{
    CU_ASSERT_EQUAL(mcl__z_parse("zstd", 4), MCL__Z_ZSTD);
    CU_ASSERT_EQUAL(mcl__z_parse("lz4", 3), MCL__Z_LZ4);
    CU_ASSERT_EQUAL(mcl__z_parse("none", 4), MCL__Z_NONE);
    CU_ASSERT_EQUAL(mcl__z_parse("zst", 3), -1);
    CU_ASSERT_EQUAL(mcl__z_parse("gzip", 4), -1);
    CU_ASSERT_STRING_EQUAL(mcl__z_name(MCL__Z_LZ4), "lz4");
    CU_ASSERT_STRING_EQUAL(mcl__z_name(7), "?");
    CU_ASSERT_FALSE(mcl__z_built(7));
    CU_ASSERT_TRUE(mcl__z_built(MCL__Z_NONE));
}

static void
test_round_trip(void)
{
    mcl__zctx *z = mcl__zctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    size_t sizes[] = {0, 1, 100, 4096, 1 << 20};
    const int all[] = {MCL__Z_ZSTD, MCL__Z_LZ4, MCL__Z_LZ4HC};
    for (size_t c = 0; c < 3; c++) {
        if (!mcl__z_built(all[c]))
            continue;
        const int codec = all[c];
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            size_t n = sizes[k];
            uint8_t *src = frame(n ? n : 1, n);
            size_t cap = mcl__z_bound(codec, n);
            CU_ASSERT_FATAL(cap >= n);
            uint8_t *dst = malloc(cap), *back = malloc(n + 16);
            CU_ASSERT_FATAL(dst != NULL && back != NULL);
            size_t zl = mcl__z_compress(z, codec, 0, src, n, dst, cap);
            CU_ASSERT_FATAL(zl > 0);
            if (n >= 4096)
                CU_ASSERT(zl < n / 2); // the frame does compress
            memset(back, 0xAA, n + 16);
            MCLT_OK(mcl__z_decompress(z, mcl__z_stored(codec), dst, zl, back, n));
            CU_ASSERT(n == 0 || memcmp(back, src, n) == 0);
            for (size_t i = 0; i < 16; i++) // nothing written past the stated size
                CU_ASSERT_EQUAL(back[n + i], 0xAA);
            // Too small a destination for the compressed form: 0, not a partial result.
            if (n >= 4096)
                CU_ASSERT_EQUAL(mcl__z_compress(z, codec, 0, src, n, dst, zl / 2), 0);
            free(src);
            free(dst);
            free(back);
        }
    }
    // lz4hc writes lz4 blocks: stored and decoded as lz4, never as a codec of its own.
    CU_ASSERT_EQUAL(mcl__z_stored(MCL__Z_LZ4HC), MCL__Z_LZ4);
    CU_ASSERT_EQUAL(mcl__z_stored(MCL__Z_ZSTD), MCL__Z_ZSTD);
    CU_ASSERT_EQUAL(mcl__z_decompress(z, MCL__Z_LZ4HC, "x", 1, (uint8_t[1]){0}, 1), MCL_ENOTSUP);
    mcl__zctx_free(z);
}

// A stream that decodes to more than it claims (a bomb: 64 MiB of zeros, said to be 1 KiB),
// to less, truncated, with trailing bytes, or corrupted: refused, nothing past the claim
// written.
static void
test_hostile(void)
{
    mcl__zctx *z = mcl__zctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    size_t big = (size_t)64 << 20;
    uint8_t *zeros = calloc(1, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
    for (size_t c = 0; c < 2; c++) {
        int codec = codecs[c];
        if (!mcl__z_built(codec)) {
            CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, "x", 1, zeros, 1), MCL_ENOTSUP);
            continue;
        }
        size_t cap = mcl__z_bound(codec, big);
        uint8_t *bomb = malloc(cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bomb);
        size_t bl = mcl__z_compress(z, codec, 0, zeros, big, bomb, cap);
        CU_ASSERT_FATAL(bl > 0 && bl < big / 200);
        uint8_t out[1024 + 16];
        memset(out, 0xAA, sizeof out);
        CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, bomb, bl, out, 1024), MCL_EDECODE);
        // The cheap check before sizing a buffer: the true size passes, a lie does not.
        MCLT_OK(mcl__z_plausible(codec, bomb, bl, big));
        if (codec == MCL__Z_ZSTD) // (its frame states its size; lz4 only bounds the ratio)
            CU_ASSERT_EQUAL(mcl__z_plausible(codec, bomb, bl, 1024), MCL_EDECODE);
        CU_ASSERT_EQUAL(mcl__z_plausible(codec, bomb, bl, (size_t)1 << 40), MCL_EDECODE);
        for (size_t i = 1024; i < sizeof out; i++)
            CU_ASSERT_EQUAL(out[i], 0xAA);
        free(bomb);

        uint8_t *src = frame(8192, 3);
        uint8_t dst[16384], back[8192 + 64];
        size_t zl = mcl__z_compress(z, codec, 0, src, 8192, dst, sizeof dst);
        CU_ASSERT_FATAL(zl > 16);
        MCLT_OK(mcl__z_decompress(z, codec, dst, zl, back, 8192));
        // Claims more than the stream holds, or less.
        CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, dst, zl, back, 8192 + 64), MCL_EDECODE);
        CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, dst, zl, back, 8191), MCL_EDECODE);
        // Truncated anywhere.
        for (size_t cut = 0; cut < zl; cut += 1 + zl / 40)
            CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, dst, cut, back, 8192), MCL_EDECODE);
        // Trailing garbage.
        uint8_t tail[16384 + 8];
        memcpy(tail, dst, zl);
        memcpy(tail + zl, "garbage!", 8);
        CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, tail, zl + 8, back, 8192), MCL_EDECODE);
        // Random corruption: whatever it decodes to, never past the stated size, never a
        // crash (the sanitizer and valgrind passes watch the reads).
        uint64_t s = 42;
        for (int round = 0; round < 300; round++) {
            memcpy(tail, dst, zl);
            for (int k = 0; k < 3; k++)
                tail[mclt_rand(&s) % zl] ^= (uint8_t)(1u << (mclt_rand(&s) % 8));
            memset(back + 8192, 0x55, 64);
            (void)mcl__z_decompress(z, codec, tail, zl, back, 8192);
            for (size_t i = 8192; i < sizeof back; i++)
                CU_ASSERT_EQUAL(back[i], 0x55);
        }
        // Empty input is never a valid stream of a non-empty payload.
        CU_ASSERT_EQUAL(mcl__z_decompress(z, codec, dst, 0, back, 10), MCL_EDECODE);
        free(src);
    }
    // Stored: the length must match.
    CU_ASSERT_EQUAL(mcl__z_decompress(z, MCL__Z_NONE, "abc", 3, zeros, 2), MCL_EDECODE);
    MCLT_OK(mcl__z_decompress(z, MCL__Z_NONE, "abc", 3, zeros, 3));
    free(zeros);
    mcl__zctx_free(z);
}

static void
test_alloc_failure(void)
{
    if (!mcl__z_built(MCL__Z_LZ4))
        return;
    mcl__zctx *z = mcl__zctx_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    uint8_t src[256] = {0}, dst[512];
    mcl__alloc_fail_after(0); // the lz4 state is allocated on first use
    CU_ASSERT_EQUAL(mcl__z_compress(z, MCL__Z_LZ4, 0, src, sizeof src, dst, sizeof dst), 0);
    mcl__alloc_fail_after(-1);
    CU_ASSERT(mcl__z_compress(z, MCL__Z_LZ4, 0, src, sizeof src, dst, sizeof dst) > 0);
    mcl__zctx_free(z);
}

static CU_TestInfo tests[] = {{"names", test_names},
                              {"round_trip", test_round_trip},
                              {"hostile", test_hostile},
                              {"alloc_failure", test_alloc_failure},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("core_zcodec", NULL, NULL, tests);
