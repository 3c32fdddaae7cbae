// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: compressed payloads from a stranger (compress= messages, compressed log blocks)
// through lib/core/zcodec.c. Input: byte 0 picks the codec (mod 3: none, zstd, lz4), bytes 1-3
// the decompressed size the envelope claims (big-endian, at most 16 MiB - 1, then capped at
// 1 MiB here), the rest the compressed bytes (from an exact-size copy, so a read past their end
// is caught by ASan). The output buffer is exactly the claimed size, so a write past it is
// caught too. A success must re-compress and decompress to the same bytes.
#include "core/zcodec.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    int codec = data[0] % 3;
    size_t orig = ((size_t)data[1] << 16) | ((size_t)data[2] << 8) | data[3];
    if (orig > (1u << 20))
        orig = 1u << 20;
    size_t n = size - 4;
    uint8_t *in = malloc(n ? n : 1), *out = malloc(orig ? orig : 1);
    mcl__zctx *z = mcl__zctx_new();
    if (in == NULL || out == NULL || z == NULL)
        goto done;
    memcpy(in, data + 4, n);
    if (mcl__z_decompress(z, codec, in, n, out, orig) == MCL_OK) {
        size_t cap = mcl__z_bound(codec, orig);
        uint8_t *re = malloc(cap ? cap : 1), *back = malloc(orig ? orig : 1);
        if (re != NULL && back != NULL) {
            size_t zl = codec == MCL__Z_NONE ? 0 : mcl__z_compress(z, codec, 0, out, orig, re, cap);
            if (codec != MCL__Z_NONE &&
                (zl == 0 || mcl__z_decompress(z, codec, re, zl, back, orig) != MCL_OK ||
                 (orig > 0 && memcmp(back, out, orig) != 0)))
                abort();
        }
        free(re);
        free(back);
    }
done:
    mcl__zctx_free(z);
    free(in);
    free(out);
    return 0;
}
