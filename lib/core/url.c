// SPDX-License-Identifier: BSD-3-Clause
// URL pieces shared by every transport's grammar (see url.h).
#include "url.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool
mcl__url_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

bool
mcl__url_size(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    unsigned shift = 0;
    if (n > 0) {
        switch (s[n - 1]) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            break;
        }
    }
    uint64_t v;
    if (!mcl__url_uint(s, shift ? n - 1 : n, UINT64_MAX >> 30, &v))
        return false;
    v <<= shift;
    if (v > max)
        return false;
    *out = v;
    return true;
}

bool
mcl__url_ppm(const char *s, size_t n, uint32_t *out)
{
    const char *dot = memchr(s, '.', n);
    size_t il = dot ? (size_t)(dot - s) : n;
    uint64_t whole;
    if (!mcl__url_uint(s, il, 1, &whole))
        return false;
    uint64_t frac = 0;
    if (dot != NULL) {
        size_t fl = n - il - 1;
        if (fl == 0 || fl > 6 || !mcl__url_uint(dot + 1, fl, 999999, &frac))
            return false;
        for (size_t i = fl; i < 6; i++)
            frac *= 10;
    }
    uint64_t v = whole * 1000000 + frac;
    if (v > 1000000)
        return false;
    *out = (uint32_t)v;
    return true;
}

mcl_err
mcl__url_options(const char *url, const char *q, mcl__url_opt_fn fn, void *ctx, char *errbuf,
                 size_t errlen)
{
    if (*q != '?')
        return MCL_OK;
    q++;
    const char *opts = q;
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        const char *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (eq == NULL || eq == q)
            return MCL__URL_FAIL("%s: option '%.*s' is not KEY=VALUE", url, (int)(end - q), q);
        size_t kl = (size_t)(eq - q);
        for (const char *o = opts; o < q;) {
            const char *oe = strchr(o, '=');
            if (oe != NULL && (size_t)(oe - o) == kl && memcmp(o, q, kl) == 0)
                return MCL__URL_FAIL("%s: option '%.*s' is given twice", url, (int)kl, q);
            const char *na = strchr(o, '&');
            o = na ? na + 1 : q;
        }
        mcl_err rv = fn(ctx, q, kl, eq + 1, (size_t)(end - eq - 1), errbuf, errlen);
        if (rv != MCL_OK)
            return rv;
        q = amp ? amp + 1 : end;
    }
    return MCL_OK;
}

__attribute__((format(printf, 2, 0))) static void
vappend(mcl__canon *k, const char *fmt, va_list ap)
{
    if (k->len >= k->cap)
        return;
    int n = vsnprintf(k->buf + k->len, k->cap - k->len, fmt, ap);
    if (n > 0)
        k->len += (size_t)n;
}

void
mcl__canon_start(mcl__canon *k, char *buf, size_t cap)
{
    k->buf = buf;
    k->cap = cap;
    k->len = 0;
    k->sep = '?';
    if (cap > 0)
        buf[0] = '\0';
}

void
mcl__canon_text(mcl__canon *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(k, fmt, ap);
    va_end(ap);
}

void
mcl__canon_opt(mcl__canon *k, const char *fmt, ...)
{
    mcl__canon_text(k, "%c", k->sep);
    k->sep = '&';
    va_list ap;
    va_start(ap, fmt);
    vappend(k, fmt, ap);
    va_end(ap);
}

void
mcl__canon_size(mcl__canon *k, const char *key, size_t v)
{
    if (v != 0 && v % ((size_t)1 << 30) == 0)
        mcl__canon_opt(k, "%s=%zuG", key, v >> 30);
    else if (v != 0 && v % ((size_t)1 << 20) == 0)
        mcl__canon_opt(k, "%s=%zuM", key, v >> 20);
    else if (v != 0 && v % 1024 == 0)
        mcl__canon_opt(k, "%s=%zuk", key, v >> 10);
    else
        mcl__canon_opt(k, "%s=%zu", key, v);
}

void
mcl__canon_ppm(mcl__canon *k, const char *key, uint32_t ppm)
{
    if (ppm % 1000000 == 0) {
        mcl__canon_opt(k, "%s=%u", key, (unsigned)(ppm / 1000000));
        return;
    }
    char frac[8];
    snprintf(frac, sizeof(frac), "%06u", (unsigned)(ppm % 1000000));
    size_t n = strlen(frac);
    while (n > 1 && frac[n - 1] == '0')
        frac[--n] = '\0';
    mcl__canon_opt(k, "%s=%u.%s", key, (unsigned)(ppm / 1000000), frac);
}
