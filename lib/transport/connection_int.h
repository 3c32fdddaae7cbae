// SPDX-License-Identifier: BSD-3-Clause
// The layout of mcl_connection, visible to the library only: the transport it names, the
// options every transport shares, its canonical URL, and the transport's own options as an
// opaque block that only that transport reads. Still a value: copy it with `=`.
#ifndef MCL__CONNECTION_INT_H
#define MCL__CONNECTION_INT_H

#include <mcl/connection.h>

#include "../core/gkey.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#define MCL__URL_MAX 640
// Room for the largest transport's options (zmq: three key paths); the standing test
// tests/transport/test_registry.c checks every transport's opts_size against it.
#define MCL__TP_OPTS_MAX 1152

// Defaults of the generic options (canonical forms leave them out).
#define MCL__DEF_MAXMSG ((size_t)64 << 20)
#define MCL__DEF_PARTMEM ((size_t)256 << 20)
#define MCL__DEF_DGRAM ((size_t)65000)
#define MCL__DEF_EXPIRE_MS 2000u
#define MCL__DEF_HEARTBEAT_MS 1000u
#define MCL__DEF_SILENT 3u
#define MCL__DEF_SKEW_S 60u
#define MCL__DEF_ZMIN ((size_t)512) // compress_min=
#define MCL__KEY_PATH_MAX 256
#define MCL__MIN_DGRAM ((size_t)1200)
// rate= and msgrate= bounds (0 = unpaced, the default).
#define MCL__MIN_RATE ((uint64_t)1 << 10)
#define MCL__MAX_RATE ((uint64_t)1 << 40)
#define MCL__MAX_MSGRATE 10000000u
#define MCL__MAX_DGRAM ((size_t)65527) // 65535 - 8 (UDP over IPv6; IPv4 is 20 bytes less)

struct mcl__tport;

struct mcl_connection {
    const struct mcl__tport *tp; // the transport (lib/transport/transport.h)
    uint16_t port;      // udp and zmq+tcp: the port (0: chosen by the kernel at bind); else 0
    size_t maxmsg;      // largest message sent or accepted
    size_t dgram;       // transports with MCL__TP_FRAGMENT: largest datagram; 0 otherwise
    uint32_t expire_ms; // partial messages are dropped after this
    size_t partmem;     // cap on memory held by partial messages
    uint32_t batch_us;  // broadcasters: pack small messages for up to this long (0: off)
    uint64_t rate;      // broadcasters: datagram bytes per second at most (0: unpaced)
    uint32_t msgrate;   // broadcasters: messages per second at most (0: unpaced)
    uint32_t heartbeat_ms; // broadcasters: announce themselves this often (0: never)
    // Broadcasters: compress= (lib/core/zcodec.h codec, 0: off) at zlevel (0: the codec's
    // default), for messages of at least zmin bytes.
    uint8_t zcodec;
    int zlevel;
    size_t zmin;
    uint32_t silent_after; // listeners: a publisher that misses this many heartbeats is silent
    // Authenticated datagrams (key=FILE; lib/raw/auth.c): the group keys read from the file at
    // parse time (keys.n == 0: none), encrypt=1, and the accepted clock difference skew= in s.
    mcl__gkeys keys;
    bool encrypt;
    uint32_t skew_s;
    char key_path[MCL__KEY_PATH_MAX];
    char url[MCL__URL_MAX]; // canonical
    alignas(max_align_t) unsigned char opts[MCL__TP_OPTS_MAX]; // the transport's own struct
};

// Rebuilds conn->url from the fields (after a bind learns its port).
void mcl__connection_canon(struct mcl_connection *conn);

struct mcl__canon;
// The broadcast options every transport with broadcasters prints the same way (heartbeat=,
// silent=), when they differ from their defaults.
void mcl__canon_bcast_opts(struct mcl__canon *k, const struct mcl_connection *c);

#endif
