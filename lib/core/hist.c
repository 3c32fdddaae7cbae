// SPDX-License-Identifier: BSD-3-Clause
// Latency histogram: see hist.h.
#include "hist.h"

static unsigned
bucket_of(uint64_t v)
{
    if (v < 16)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); // 4..63
    unsigned mant = (unsigned)(v >> (e - 3)) & 7u;
    return 16u + (e - 4u) * 8u + mant;
}

// The smallest value of bucket i, and its width.
static void
bucket_range(unsigned i, uint64_t *lo, uint64_t *width)
{
    if (i < 16) {
        *lo = i;
        *width = 1;
        return;
    }
    unsigned e = (i - 16u) / 8u + 4u, mant = (i - 16u) % 8u;
    *width = (uint64_t)1 << (e - 3);
    *lo = ((uint64_t)1 << e) + mant * *width;
}

void
mcl__hist_add(mcl__hist *h, uint64_t v)
{
    unsigned i = bucket_of(v);
    if (h->b[i] != UINT32_MAX)
        h->b[i]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

uint64_t
mcl__hist_quantile(const mcl__hist *h, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < MCL__HIST_BUCKETS; i++)
        total += h->b[i];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total + 0.5);
    if (rank < 1)
        rank = 1;
    if (rank > total)
        rank = total;
    uint64_t seen = 0;
    for (unsigned i = 0; i < MCL__HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, w;
            bucket_range(i, &lo, &w);
            uint64_t mid = lo + w / 2;
            return mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
