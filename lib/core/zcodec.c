// SPDX-License-Identifier: BSD-3-Clause
// zstd and lz4 behind lib/core/zcodec.h.
#include "zcodec.h"

#include "internal.h"

#include <limits.h>
#include <string.h>

#if MCL_HAVE_ZSTD
#include <zstd.h>
#endif
#if MCL_HAVE_LZ4
#include <lz4.h>
#include <lz4hc.h>
#endif

struct mcl__zctx {
#if MCL_HAVE_ZSTD
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
#endif
#if MCL_HAVE_LZ4
    void *lz4_state;   // LZ4_sizeofState() bytes
    void *lz4hc_state; // LZ4_sizeofStateHC() bytes
#endif
    int unused;
};

bool
mcl__z_built(int codec)
{
    switch (codec) {
    case MCL__Z_NONE:
        return true;
    case MCL__Z_ZSTD:
        return MCL_HAVE_ZSTD != 0;
    case MCL__Z_LZ4:
    case MCL__Z_LZ4HC:
        return MCL_HAVE_LZ4 != 0;
    default:
        return false;
    }
}

const char *
mcl__z_name(int codec)
{
    static const char *const names[MCL__Z_NCODECS] = {"none", "zstd", "lz4", "lz4hc"};
    return codec >= 0 && codec < MCL__Z_NCODECS ? names[codec] : "?";
}

int
mcl__z_parse(const char *s, size_t n)
{
    for (int c = 0; c < MCL__Z_NCODECS; c++)
        if (strlen(mcl__z_name(c)) == n && memcmp(mcl__z_name(c), s, n) == 0)
            return c;
    return -1;
}

size_t
mcl__z_bound(int codec, size_t n)
{
    switch (codec) {
    case MCL__Z_NONE:
        return n;
#if MCL_HAVE_ZSTD
    case MCL__Z_ZSTD: {
        size_t b = ZSTD_compressBound(n);
        return ZSTD_isError(b) ? 0 : b;
    }
#endif
#if MCL_HAVE_LZ4
    case MCL__Z_LZ4:
    case MCL__Z_LZ4HC:
        return n > LZ4_MAX_INPUT_SIZE ? 0 : (size_t)LZ4_compressBound((int)n);
#endif
    default:
        return 0;
    }
}

mcl__zctx *
mcl__zctx_new(void)
{
    return mcl__zalloc(sizeof(mcl__zctx));
}

void
mcl__zctx_free(mcl__zctx *z)
{
    if (z == NULL)
        return;
#if MCL_HAVE_ZSTD
    ZSTD_freeCCtx(z->cctx);
    ZSTD_freeDCtx(z->dctx);
#endif
#if MCL_HAVE_LZ4
    mcl__free(z->lz4_state);
    mcl__free(z->lz4hc_state);
#endif
    mcl__free(z);
}

size_t
mcl__z_compress(mcl__zctx *z, int codec, int level, const void *src, size_t n, void *dst,
                size_t cap)
{
    (void)z, (void)level, (void)src, (void)n, (void)dst, (void)cap;
    switch (codec) {
#if MCL_HAVE_ZSTD
    case MCL__Z_ZSTD: {
        if (z->cctx == NULL && (z->cctx = ZSTD_createCCtx()) == NULL)
            return 0;
        if (level <= 0)
            level = MCL__Z_ZSTD_DEFAULT_LEVEL;
        if (level > MCL__Z_ZSTD_MAX_LEVEL)
            level = MCL__Z_ZSTD_MAX_LEVEL;
        size_t r = ZSTD_compressCCtx(z->cctx, dst, cap, src, n, level);
        return ZSTD_isError(r) ? 0 : r;
    }
#endif
#if MCL_HAVE_LZ4
    case MCL__Z_LZ4: {
        if (n > LZ4_MAX_INPUT_SIZE)
            return 0;
        if (z->lz4_state == NULL && (z->lz4_state = mcl__alloc((size_t)LZ4_sizeofState())) == NULL)
            return 0;
        int accel = level < 1 ? 1 : level > MCL__Z_LZ4_MAX_ACCEL ? MCL__Z_LZ4_MAX_ACCEL : level;
        int r = LZ4_compress_fast_extState(z->lz4_state, src, dst, (int)n,
                                           cap > INT_MAX ? INT_MAX : (int)cap, accel);
        return r > 0 ? (size_t)r : 0;
    }
    case MCL__Z_LZ4HC: {
        if (n > LZ4_MAX_INPUT_SIZE)
            return 0;
        if (z->lz4hc_state == NULL &&
            (z->lz4hc_state = mcl__alloc((size_t)LZ4_sizeofStateHC())) == NULL)
            return 0;
        int lv = level <= 0 ? MCL__Z_LZ4HC_DEFAULT_LEVEL
                 : level > MCL__Z_LZ4HC_MAX_LEVEL ? MCL__Z_LZ4HC_MAX_LEVEL
                                                  : level;
        int r = LZ4_compress_HC_extStateHC(z->lz4hc_state, src, dst, (int)n,
                                           cap > INT_MAX ? INT_MAX : (int)cap, lv);
        return r > 0 ? (size_t)r : 0;
    }
#endif
    default:
        return 0;
    }
}

mcl_err
mcl__z_plausible(int codec, const void *src, size_t n, size_t orig)
{
    (void)src;
    if (codec == MCL__Z_LZ4HC || !mcl__z_built(codec)) // (stored and decoded as lz4)
        return MCL_ENOTSUP;
    switch (codec) {
    case MCL__Z_NONE:
        return n == orig ? MCL_OK : MCL_EDECODE;
#if MCL_HAVE_ZSTD
    case MCL__Z_ZSTD: {
        unsigned long long cs = ZSTD_getFrameContentSize(src, n);
        return cs == (unsigned long long)orig ? MCL_OK : MCL_EDECODE;
    }
#endif
#if MCL_HAVE_LZ4
    case MCL__Z_LZ4:
        return n > 0 && orig / 255 <= n ? MCL_OK : MCL_EDECODE;
#endif
    default:
        return MCL_ENOTSUP;
    }
}

mcl_err
mcl__z_decompress(mcl__zctx *z, int codec, const void *src, size_t n, void *dst, size_t orig)
{
    (void)z, (void)src, (void)n, (void)dst, (void)orig;
    if (codec == MCL__Z_LZ4HC || !mcl__z_built(codec)) // (stored and decoded as lz4)
        return MCL_ENOTSUP;
    switch (codec) {
    case MCL__Z_NONE:
        if (n != orig)
            return MCL_EDECODE;
        if (n > 0)
            memcpy(dst, src, n);
        return MCL_OK;
#if MCL_HAVE_ZSTD
    case MCL__Z_ZSTD: {
        if (z->dctx == NULL) {
            if ((z->dctx = ZSTD_createDCtx()) == NULL)
                return MCL_ENOMEM;
            // One-shot decoding writes straight into dst and needs no window buffer; the
            // bound still caps what a frame may ask for should zstd ever buffer.
            (void)ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, 27);
        }
        if (n == 0)
            return MCL_EDECODE;
        size_t r = ZSTD_decompressDCtx(z->dctx, dst, orig, src, n);
        if (ZSTD_isError(r) || r != orig)
            return MCL_EDECODE;
        return MCL_OK;
    }
#endif
#if MCL_HAVE_LZ4
    case MCL__Z_LZ4: {
        if (n == 0 || n > LZ4_MAX_INPUT_SIZE || orig > LZ4_MAX_INPUT_SIZE)
            return MCL_EDECODE;
        if (orig == 0) // lz4 encodes nothing as one zero byte
            return n == 1 && ((const unsigned char *)src)[0] == 0 ? MCL_OK : MCL_EDECODE;
        int r = LZ4_decompress_safe(src, dst, (int)n, (int)orig);
        return r >= 0 && (size_t)r == orig ? MCL_OK : MCL_EDECODE;
    }
#endif
    default:
        return MCL_ENOTSUP;
    }
}
