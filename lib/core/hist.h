// SPDX-License-Identifier: BSD-3-Clause
// A latency histogram of fixed size (about 2 KiB): 8 buckets per power of two, so a quantile
// is within 1/16 of the true value, from 1 ns to the largest uint64. Single-threaded: the
// owner locks. Internal.
#ifndef MCL__HIST_H
#define MCL__HIST_H

#include <stdint.h>

enum { MCL__HIST_BUCKETS = 16 + 60 * 8 };

typedef struct mcl__hist {
    uint64_t n, max;
    uint32_t b[MCL__HIST_BUCKETS]; // (a bucket saturates at UINT32_MAX rather than wrapping)
} mcl__hist;

void mcl__hist_add(mcl__hist *h, uint64_t v);
// The q-quantile (0 < q <= 1) of what was added: the middle of its bucket; 0 when empty.
uint64_t mcl__hist_quantile(const mcl__hist *h, double q);

#endif
