// SPDX-License-Identifier: BSD-3-Clause
// Group keys for authenticated multicast (docs/security.md, docs/wire-format.md "AUTH").
// A key file (made by `mcl-keygen --group`) holds one or more lines `key = <64 hex digits>`;
// the first key signs what a broadcaster sends, every key is accepted by listeners (rotation).
// Only keys derived from the file are kept: one for the MAC, one for encryption, and a 32-bit
// id that tells a receiver which key signed a datagram.
#ifndef MCL__GKEY_H
#define MCL__GKEY_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCL__GKEY_MAX 8                // keys in one file at most
#define MCL__GKEY_FILE_MAX (64u << 10) // bytes of a key file at most

typedef struct mcl__gkey {
    uint32_t id;     // BLAKE2b("mcl group key id", key), first 4 bytes, big-endian
    uint8_t mac[32]; // BLAKE2b-256 keyed by the key, of "mcl mac"
    uint8_t enc[32]; // BLAKE2b-256 keyed by the key, of "mcl enc"
} mcl__gkey;

typedef struct mcl__gkeys {
    unsigned n; // 0: no key (unauthenticated)
    mcl__gkey k[MCL__GKEY_MAX];
} mcl__gkeys;

// Parses key-file text buf[0..len) (need not be NUL-terminated). Lines: blank, '#' comments,
// or `key = HEX64`. MCL_EAUTH with a message in errbuf (line number and what is wrong) for
// anything else, for no key, or for more than MCL__GKEY_MAX keys. Pure: no file access.
mcl_err mcl__gkeys_parse(mcl__gkeys *out, const char *buf, size_t len, char *errbuf,
                         size_t errlen);

// Reads and parses the key file at path (bounded: mcl__read_small_file). Errors name the file
// and say what is wrong (not a regular file, too large, no such file, bad line).
mcl_err mcl__gkeys_load(mcl__gkeys *out, const char *path, char *errbuf, size_t errlen);

// Derives a key's id and subkeys from its 32 raw bytes.
void mcl__gkey_derive(mcl__gkey *k, const uint8_t raw[32]);

// Wipes keys (sodium_memzero).
void mcl__gkeys_wipe(mcl__gkeys *k);

// libsodium is initialised (once per process; thread-safe). MCL_ESYS when it cannot be.
mcl_err mcl__sodium_init(void);

#endif
