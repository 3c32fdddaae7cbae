// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the broker's data-plane messages (lib/broker/bwire.c). The first byte is the
// packet-stream type of the message (MCL__BM_PUT..MCL__BM_DELIVERN; anything else must be
// refused), the rest is the message. Whatever decodes must point inside the input and encode
// back to the same bytes; a refusal always says why; nothing may read outside the input.
#include "broker/bwire.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int type = data[0];
    size_t n = size - 1;
    uint8_t *in = malloc(n ? n : 1); // an exact-size copy: ASan sees any read past it
    if (in == NULL)
        abort();
    memcpy(in, data + 1, n);
    mcl__bmsg m;
    char why[128];
    mcl_err rv = mcl__bmsg_decode(type, in, n, &m, why, sizeof(why));
    if (mcl__bmsg_decode(type, in, n, &m, NULL, 0) != rv)
        abort();
    if (rv != MCL_OK) {
        if (rv != MCL_EPROTO || why[0] == '\0')
            abort();
    } else {
        if (m.type != type || (type < MCL__BM_PUT || type > MCL__BM_DELIVERN))
            abort();
        if (m.len > 0 && (m.data < in || m.data + m.len > in + n))
            abort();
        if (type == MCL__BM_DELIVERN) { // its frames walk to its end, inside it
            size_t off = 0;
            for (uint64_t i = 0; i < m.num; i++) {
                uint64_t seq;
                size_t fl;
                const uint8_t *f = mcl__bmsg_next(m.data, &off, &seq, &fl);
                if (f < m.data || f + fl > m.data + m.len)
                    abort();
            }
            if (off != m.len)
                abort();
        }
        uint8_t h[16];
        size_t hn = mcl__bmsg_encode(&m, h);
        if (hn + m.len != n || memcmp(h, in, hn) != 0 ||
            (m.len > 0 && memcmp(m.data, in + hn, m.len) != 0))
            abort(); // one encoding per message
    }
    free(in);
    return 0;
}
