// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the packet codecs (lib/pstream/pwire.c). The first byte picks the codec (even:
// native, odd: cs.packetstream), the rest is one packet without its framing. Whatever decodes
// must encode to bytes that decode to the same packet (and, for the native format, to the same
// bytes: it has one encoding); nothing may read outside the input.
#include "pstream/pwire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same(const mcl__pkt *a, const mcl__pkt *b)
{
    if (a->kind != b->kind || a->status != b->status || a->channel != b->channel ||
        a->tag != b->tag || a->type != b->type || a->flags != b->flags || a->msglen != b->msglen ||
        a->len != b->len || (a->msglen > 0 && memcmp(a->msg, b->msg, a->msglen) != 0) ||
        (a->len > 0 && memcmp(a->payload, b->payload, a->len) != 0))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int codec = (data[0] & 1) ? MCL__PS_CS : MCL__PS_NATIVE;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    // A copy of exactly n bytes, so that a read past the end is caught by the sanitizer.
    uint8_t *in = malloc(n ? n : 1);
    if (in == NULL)
        return 0;
    memcpy(in, p, n);
    mcl__pkt k;
    char why[128];
    if (mcl__pkt_decode(codec, in, n, &k, why, sizeof(why)) != MCL_OK) {
        if (why[0] == '\0' || memchr(why, '\0', sizeof(why)) == NULL)
            abort(); // a refusal always says why
        free(in);
        return 0;
    }
    uint8_t hdr[MCL__PW_HDR_MAX];
    struct iovec iov[4];
    unsigned niov;
    if (mcl__pkt_encode(codec, &k, hdr, iov, &niov) != MCL_OK)
        abort(); // what decodes can be said again
    size_t len = 0;
    for (unsigned i = 0; i < niov; i++)
        len += iov[i].iov_len;
    uint8_t *out = malloc(len ? len : 1);
    if (out == NULL)
        abort();
    size_t off = 0;
    for (unsigned i = 0; i < niov; i++) {
        memcpy(out + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    if (codec == MCL__PS_NATIVE && (len != n || memcmp(out, in, n) != 0))
        abort();
    mcl__pkt k2;
    if (mcl__pkt_decode(codec, out, len, &k2, why, sizeof(why)) != MCL_OK)
        abort();
    same(&k, &k2);
    free(out);
    free(in);
    // The varint reader on the same bytes.
    uint64_t v;
    size_t used;
    if (mcl__bsuint_get(p, n, &v, &used) == MCL_OK && (used == 0 || used > n || used > 16))
        abort();
    return 0;
}
