// SPDX-License-Identifier: BSD-3-Clause
// Group keys: see gkey.h.
#include "gkey.h"

#include "internal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_rv = -1;

static void
sodium_once_init(void)
{
    sodium_rv = sodium_init(); // 0 done, 1 already done, -1 failure
}

mcl_err
mcl__sodium_init(void)
{
    pthread_once(&sodium_once, sodium_once_init);
    return sodium_rv < 0 ? MCL_ESYS : MCL_OK;
}

static void
subkey(uint8_t out[32], const uint8_t raw[32], const char *label)
{
    crypto_generichash(out, 32, (const unsigned char *)label, strlen(label), raw, 32);
}

void
mcl__gkey_derive(mcl__gkey *k, const uint8_t raw[32])
{
    static const char idlabel[] = "mcl group key id";
    uint8_t in[sizeof(idlabel) - 1 + 32], h[32];
    memcpy(in, idlabel, sizeof(idlabel) - 1);
    memcpy(in + sizeof(idlabel) - 1, raw, 32);
    crypto_generichash(h, sizeof(h), in, sizeof(in), NULL, 0);
    k->id = mcl__get_be32(h);
    subkey(k->mac, raw, "mcl mac");
    subkey(k->enc, raw, "mcl enc");
    sodium_memzero(in, sizeof(in));
}

void
mcl__gkeys_wipe(mcl__gkeys *k)
{
    sodium_memzero(k, sizeof(*k));
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#define FAIL(...) (mcl__gkeys_wipe(out), snprintf(errbuf, errlen, __VA_ARGS__), MCL_EAUTH)

mcl_err
mcl__gkeys_parse(mcl__gkeys *out, const char *buf, size_t len, char *errbuf, size_t errlen)
{
    if (mcl__sodium_init() != MCL_OK)
        return (snprintf(errbuf, errlen, "libsodium cannot be initialised"), MCL_ESYS);
    memset(out, 0, sizeof(*out));
    unsigned lineno = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && buf[e] != '\n')
            e++;
        lineno++;
        size_t a = i, b = e;
        i = e + 1;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
            a++;
        while (b > a && (buf[b - 1] == ' ' || buf[b - 1] == '\t' || buf[b - 1] == '\r'))
            b--;
        if (a == b || buf[a] == '#')
            continue;
        // key = HEX64
        if (b - a < 3 || memcmp(buf + a, "key", 3) != 0)
            return FAIL("line %u: expected 'key = <64 hex digits>'", lineno);
        a += 3;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
            a++;
        if (a == b || buf[a] != '=')
            return FAIL("line %u: expected 'key = <64 hex digits>'", lineno);
        a++;
        while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
            a++;
        if (b - a != 64)
            return FAIL("line %u: a key is 64 hex digits (32 bytes), this one has %zu characters",
                        lineno, b - a);
        uint8_t raw[32];
        for (size_t j = 0; j < 32; j++) {
            int hi = hexval(buf[a + 2 * j]), lo = hexval(buf[a + 2 * j + 1]);
            if (hi < 0 || lo < 0) {
                sodium_memzero(raw, sizeof(raw));
                mcl__gkeys_wipe(out);
                return FAIL("line %u: a key is 64 hex digits; character %zu is not one", lineno,
                            2 * j + (hi < 0 ? 1 : 2));
            }
            raw[j] = (uint8_t)(hi << 4 | lo);
        }
        if (out->n == MCL__GKEY_MAX) {
            sodium_memzero(raw, sizeof(raw));
            mcl__gkeys_wipe(out);
            return FAIL("line %u: more than %d keys", lineno, MCL__GKEY_MAX);
        }
        mcl__gkey_derive(&out->k[out->n++], raw);
        sodium_memzero(raw, sizeof(raw));
    }
    if (out->n == 0)
        return FAIL("no 'key = ...' line (make one with mcl-keygen --group NAME)");
    return MCL_OK;
}

mcl_err
mcl__gkeys_load(mcl__gkeys *out, const char *path, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    char *buf;
    size_t len;
    const char *why;
    mcl_err rv = mcl__read_small_file(path, MCL__GKEY_FILE_MAX, &buf, &len, &why);
    if (rv != MCL_OK) {
        if (rv == MCL_ENOMEM)
            return rv;
        snprintf(errbuf, errlen, "key file %s: %s", path, why);
        return rv;
    }
    char eb[160];
    rv = mcl__gkeys_parse(out, buf, len, eb, sizeof(eb));
    sodium_memzero(buf, len);
    mcl__free(buf);
    if (rv != MCL_OK)
        snprintf(errbuf, errlen, "key file %s: %s", path, eb);
    return rv;
}
