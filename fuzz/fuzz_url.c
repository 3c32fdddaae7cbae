// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: connection URLs from a stranger (mcl_connection_parse: lib/transport/connection.c
// and the grammars of udp://, zmq+tcp/ipc/inproc:// and inproc://, on lib/core/url.c). The
// input is the URL (inputs with a NUL byte are skipped: a C string ends there), from an
// exact-size copy (a read past its end is caught by ASan).
//
// A refusal must say why. A connection that parses has a canonical URL (mcl_connection_url)
// that is whole (not cut at its buffer), starts with its scheme, and parses again to a
// connection with the same canonical URL: a fixed point, equal by mcl_connection_equal, with
// the same getters, and the same fields byte for byte (two connections with the same canonical
// URL are equal, so the canonical form must carry every option that was set).
//
// Parsing touches no network: interface names stay text until a socket is opened, and curve=,
// curve_server= and curve_clients= key files are read only when a zmq socket is set up
// (lib/transport/zmq/zcurve.c). A group key (key=FILE) is read at parse time, bounded
// (mcl__read_small_file: regular files only, never blocking, 64 KiB at most), so an input
// naming any path is harmless.
#include <mcl/connection.h>

#include "transport/connection_int.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_getters(const mcl_connection *a, const mcl_connection *b)
{
    if (!mcl_connection_equal(a, b) || !mcl_connection_equal(b, a) ||
        strcmp(mcl_connection_scheme(a), mcl_connection_scheme(b)) != 0 ||
        mcl_connection_family(a) != mcl_connection_family(b) ||
        strcmp(mcl_connection_group(a), mcl_connection_group(b)) != 0 ||
        mcl_connection_port(a) != mcl_connection_port(b) ||
        mcl_connection_ttl(a) != mcl_connection_ttl(b) ||
        strcmp(mcl_connection_iface(a), mcl_connection_iface(b)) != 0 ||
        mcl_connection_loop(a) != mcl_connection_loop(b) ||
        mcl_connection_rcvbuf(a) != mcl_connection_rcvbuf(b) ||
        mcl_connection_maxmsg(a) != mcl_connection_maxmsg(b) ||
        mcl_connection_dgram(a) != mcl_connection_dgram(b))
        abort();
    if (memcmp(a, b, sizeof(struct mcl_connection)) != 0)
        abort(); // the same canonical URL, yet something differs
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size) != NULL)
        return 0;
    char *url = malloc(size + 1);
    if (url == NULL)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';

    mcl_connection *c = NULL;
    char err[512];
    mcl_err rv = mcl_connection_parse(&c, url, err, sizeof(err));
    bool keyfile = strstr(url, "key=") != NULL; // (a group key file that cannot be read)
    free(url);
    if (rv != MCL_OK && rv != MCL_EURL && rv != MCL_ENOMEM &&
        !(keyfile && (rv == MCL_ENOENT || rv == MCL_EINVAL || rv == MCL_EAUTH ||
                      rv == MCL_EMSGSIZE || rv == MCL_EPERM || rv == MCL_ESYS)))
        abort();
    if ((rv == MCL_OK) != (c != NULL))
        abort();
    if (rv != MCL_OK) {
        if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
            abort(); // a refusal always says why
        return 0;
    }

    const char *canon = mcl_connection_url(c);
    size_t clen = strlen(canon);
    const char *scheme = mcl_connection_scheme(c);
    size_t slen = strlen(scheme);
    if (clen == 0 || clen >= MCL__URL_MAX - 1 || strncmp(canon, scheme, slen) != 0 ||
        strncmp(canon + slen, "://", 3) != 0)
        abort(); // cut at the buffer, or not of its own scheme

    mcl_connection *c2 = NULL;
    char err2[512];
    if (mcl_connection_parse(&c2, canon, err2, sizeof(err2)) != MCL_OK)
        abort(); // the canonical form does not parse
    if (strcmp(mcl_connection_url(c2), canon) != 0)
        abort(); // not a fixed point
    same_getters(c, c2);

    mcl_connection *c3 = NULL;
    if (mcl_connection_dup(&c3, c) != MCL_OK)
        abort();
    same_getters(c, c3);

    mcl_connection_free(c3);
    mcl_connection_free(c2);
    mcl_connection_free(c);
    return 0;
}
