// SPDX-License-Identifier: BSD-3-Clause
// The one list of built-in transports. Adding a transport is a descriptor in its own folder
// and a line here; nothing above lib/transport changes.
#include "transport.h"

#include "../core/url.h"

#include <stdio.h>
#include <string.h>

extern const mcl__tport mcl__udp_tport;
extern const mcl__tport mcl__inproc_tport;
extern const mcl__tport mcl__tcp_tport, mcl__unix_tport;
#if MCL_HAVE_ZMQ
extern const mcl__tport mcl__zmq_tcp_tport, mcl__zmq_ipc_tport, mcl__zmq_inproc_tport;
#endif

static const mcl__tport *const builtin[] = {
    &mcl__udp_tport,
#if MCL_HAVE_ZMQ
    &mcl__zmq_tcp_tport,
    &mcl__zmq_ipc_tport,
    &mcl__zmq_inproc_tport,
#endif
    &mcl__inproc_tport,
    &mcl__tcp_tport,
    &mcl__unix_tport,
};
enum { NBUILTIN = sizeof(builtin) / sizeof(builtin[0]) };

const mcl__tport *
mcl__tport_find(const char *scheme, size_t len)
{
    for (size_t i = 0; i < NBUILTIN; i++) {
        const char *s = builtin[i]->scheme;
        if (strlen(s) == len && memcmp(s, scheme, len) == 0)
            return builtin[i];
    }
    return NULL;
}

size_t
mcl__tport_count(void)
{
    return NBUILTIN;
}

const mcl__tport *
mcl__tport_at(size_t i)
{
    return i < NBUILTIN ? builtin[i] : NULL;
}

mcl_err
mcl__tport_unknown(const char *url, const char *scheme, size_t slen, char *errbuf,
                   size_t errlen)
{
    for (size_t i = 0; i < NBUILTIN; i++) {
        if (builtin[i]->claim == NULL)
            continue;
        mcl_err rv = builtin[i]->claim(url, scheme, slen, errbuf, errlen);
        if (rv != MCL_OK)
            return rv;
    }
#if !MCL_HAVE_ZMQ
    if (slen > 4 && memcmp(scheme, "zmq+", 4) == 0)
        return MCL__URL_FAIL("%s: this build of mcl has no ZeroMQ transport (configured with "
                             "MCL_WITH_ZMQ=OFF, or libzmq was not found)",
                             url);
#endif
    char list[128];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < NBUILTIN && n < sizeof(list); i++) {
        int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", builtin[i]->scheme);
        if (w > 0)
            n += (size_t)w;
    }
    return MCL__URL_FAIL("%s: unknown scheme '%.*s' (supported: %s)", url, (int)slen, scheme,
                         list);
}
