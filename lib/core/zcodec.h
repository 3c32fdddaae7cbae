// SPDX-License-Identifier: BSD-3-Clause
// Compression codecs behind one small interface (zstd and lz4, each built when its library is
// found: MCL_HAVE_ZSTD, MCL_HAVE_LZ4). Used by broadcasters and listeners (compress=,
// docs/wire-format.md "Compressed messages") and by compressed log blocks
// (docs/log-format.md). Never installed.
//
// Decompression is bounded by construction: the caller states the exact decompressed size (taken
// from the envelope and checked against its own limit before any buffer is sized), and a payload
// that would produce more, less, or that is not a well-formed stream of the codec, fails with
// MCL_EDECODE without writing past dst + orig. Nothing here allocates per call beyond the
// context's own state, created on first use.
#ifndef MCL__ZCODEC_H
#define MCL__ZCODEC_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>

enum {
    MCL__Z_NONE = 0, // stored (no compression)
    MCL__Z_ZSTD = 1,
    MCL__Z_LZ4 = 2,
    // A compressor only: lz4's high-compression mode, which writes the same lz4 blocks (stored
    // and decoded as MCL__Z_LZ4, at lz4's decoding speed) smaller and more slowly.
    MCL__Z_LZ4HC = 3,
    MCL__Z_NCODECS = 4
};

#define MCL__Z_ZSTD_DEFAULT_LEVEL 3 // zstd's own default
#define MCL__Z_ZSTD_MAX_LEVEL 19    // above this zstd needs far more memory and time
#define MCL__Z_LZ4_MAX_ACCEL 65537  // lz4's own bound on its acceleration factor
#define MCL__Z_LZ4HC_DEFAULT_LEVEL 9 // lz4hc's own default
#define MCL__Z_LZ4HC_MAX_LEVEL 12

// The codec that data compressed with `codec` is stored and decoded as (MCL__Z_LZ4HC: lz4).
static inline int
mcl__z_stored(int codec)
{
    return codec == MCL__Z_LZ4HC ? MCL__Z_LZ4 : codec;
}

// Whether this build has the codec (MCL__Z_NONE always).
bool mcl__z_built(int codec);
// "zstd", "lz4", "lz4hc", "none"; "?" for anything else.
const char *mcl__z_name(int codec);
// The codec named by s[0..n) ("zstd", "lz4", "none"), or -1.
int mcl__z_parse(const char *s, size_t n);
// The highest level (lz4: acceleration) mcl__z_compress takes for codec; 0: it takes none.
static inline int
mcl__z_max_level(int codec)
{
    return codec == MCL__Z_ZSTD    ? MCL__Z_ZSTD_MAX_LEVEL
           : codec == MCL__Z_LZ4   ? MCL__Z_LZ4_MAX_ACCEL
           : codec == MCL__Z_LZ4HC ? MCL__Z_LZ4HC_MAX_LEVEL
                                   : 0;
}

// The most bytes compressing n bytes can take (0: the codec is not built or n is too large
// for it).
size_t mcl__z_bound(int codec, size_t n);

// Per-user state (compression and decompression contexts); not thread-safe: one per thread or
// per object used under a lock.
typedef struct mcl__zctx mcl__zctx;
// NULL when out of memory.
mcl__zctx *mcl__zctx_new(void);
void mcl__zctx_free(mcl__zctx *z);

// Compresses src[0..n) into dst[0..cap) at `level` (zstd: 1..19, 0 = default; lz4: the
// acceleration factor, 0 or 1 = default, larger is faster and compresses less; lz4hc: 1..12,
// 0 = default 9). Returns the
// compressed length; 0 when the codec is not built, when out of memory, or when the result
// does not fit cap (the caller then sends the data as it is).
size_t mcl__z_compress(mcl__zctx *z, int codec, int level, const void *src, size_t n, void *dst,
                       size_t cap);

// A cheap check, before any buffer is sized, that src[0..n) can be a stream of the codec that
// decodes to `orig` bytes: lz4 cannot expand more than 255-fold, and a zstd frame states its
// content size (mcl writes it), which must be orig. MCL_OK, or MCL_EDECODE / MCL_ENOTSUP.
mcl_err mcl__z_plausible(int codec, const void *src, size_t n, size_t orig);

// Decompresses src[0..n), which must decode to exactly `orig` bytes, into dst[0..orig).
// MCL_OK; MCL_EDECODE when the input is not a complete stream of the codec or its size is not
// orig (a lying size, a truncated stream, trailing garbage, a decompression bomb); MCL_ENOTSUP
// when the codec is not built; MCL_ENOMEM. Never writes outside dst[0..orig).
mcl_err mcl__z_decompress(mcl__zctx *z, int codec, const void *src, size_t n, void *dst,
                          size_t orig);

#endif
