// SPDX-License-Identifier: BSD-3-Clause
// Pieces every URL grammar shares: numbers and sizes, the "?KEY=VALUE&..." splitter, and a
// builder for canonical forms. Transports use them to parse and print their own options, so
// that every scheme reads and writes options the same way. Internal, never installed.
#ifndef MCL__URL_H
#define MCL__URL_H

#include "internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// A failure inside a URL parser: MCL_EURL with the detail in errbuf (or the log).
#define MCL__URL_FAIL(...) mcl__fail(MCL_EURL, errbuf, errlen, "url", __VA_ARGS__)
// In an option parser (key, klen in scope): whether the key is the literal k.
#define MCL__KEY_IS(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)

// A decimal unsigned integer that must consume all of [s, s+n): no sign, no spaces, <= max.
bool mcl__url_uint(const char *s, size_t n, uint64_t max, uint64_t *out);

// SIZE = digits with an optional k/K, m/M, g/G suffix (powers of 1024), <= max.
bool mcl__url_size(const char *s, size_t n, uint64_t max, uint64_t *out);

// A probability written as a decimal fraction 0..1 with at most six decimals ("0.05", "1"),
// in parts per million.
bool mcl__url_ppm(const char *s, size_t n, uint32_t *out);

// Calls fn for every KEY=VALUE of "?KEY=VALUE&..." at q (nothing when *q is NUL); stops at
// the first error fn returns. Refuses an option without '=' or without a key, and the same
// key twice ("the last one wins" hides mistakes). url is for messages only.
typedef mcl_err (*mcl__url_opt_fn)(void *ctx, const char *key, size_t klen, const char *val,
                                   size_t vlen, char *errbuf, size_t errlen);
mcl_err mcl__url_options(const char *url, const char *q, mcl__url_opt_fn fn, void *ctx,
                         char *errbuf, size_t errlen);

// A canonical URL being written: text is cut at cap (never overflows); options get '?' before
// the first and '&' before the others.
typedef struct mcl__canon {
    char *buf;
    size_t cap, len;
    char sep;
} mcl__canon;

void mcl__canon_start(mcl__canon *k, char *buf, size_t cap);
void mcl__canon_text(mcl__canon *k, const char *fmt, ...) MCL__PRINTF(2, 3);
// "KEY=VALUE" as the next option.
void mcl__canon_opt(mcl__canon *k, const char *fmt, ...) MCL__PRINTF(2, 3);
// "KEY=SIZE" with the largest exact suffix (G, M, k).
void mcl__canon_size(mcl__canon *k, const char *key, size_t v);
// "KEY=0.25" from parts per million, trailing zeros left out.
void mcl__canon_ppm(mcl__canon *k, const char *key, uint32_t ppm);

#endif
