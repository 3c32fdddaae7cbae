// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: CURVE key files from a stranger (curve=, curve_server=, curve_clients=: the text
// that lib/transport/zmq/zcurve.c reads through mcl__read_small_file and parses with
// mcl__zmq_parse_keys). The input is the file's bytes, from an exact-size copy (a read past its
// end is caught by ASan), parsed as each of the three kinds of key file.
//
// A success must hold what it says: a pair file two 40-character Z85 keys, a public file its
// public key, a client file at least zero keys that are all 32 bytes. A failure must say why
// and leave nothing allocated. Built without ZeroMQ, the target does nothing.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#if MCL_HAVE_ZMQ
#include "transport/zmq/zmq_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size > 0 ? size : 1);
    if (buf == NULL)
        return 0;
    if (size > 0)
        memcpy(buf, data, size);
    const int kinds[] = {MCL__ZKEYS_PAIR, MCL__ZKEYS_PUBLIC, MCL__ZKEYS_CLIENTS};
    for (int i = 0; i < 3; i++) {
        mcl__zkeys k;
        mcl_err rv = mcl__zmq_parse_keys(buf, size, kinds[i], &k);
        if (rv == MCL_OK) {
            if (kinds[i] != MCL__ZKEYS_CLIENTS && strlen(k.pub) != 40)
                abort();
            if (kinds[i] == MCL__ZKEYS_PAIR && strlen(k.sec) != 40)
                abort();
            if (kinds[i] == MCL__ZKEYS_CLIENTS && (k.nkeys > 0) != (k.keys != NULL))
                abort();
        } else if (rv == MCL_EAUTH) {
            if (k.why == NULL || k.why[0] == '\0' || k.keys != NULL || k.nkeys != 0)
                abort();
        } else if (rv != MCL_ENOMEM) {
            abort();
        }
        mcl__zmq_keys_fini(&k);
    }
    free(buf);
    return 0;
}
#else
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}
#endif
