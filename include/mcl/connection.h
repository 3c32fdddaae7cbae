// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/connection.h
 * Connections: where messages go, described by a URL.
 *
 * Grammar, UDP multicast:
 *
 *     udp://GROUP[:PORT][?OPTION=VALUE[&OPTION=VALUE...]]
 *     GROUP = dotted IPv4 multicast address (224.0.0.0/4), or
 *             [IPv6 multicast address (ff00::/8), optionally with %IFACE]
 *     PORT  = 0..65535, default 26000 (0: a listener binds a kernel-chosen port)
 *
 * Options (unknown options are errors):
 *
 * | option   | value                         | default | meaning                                   |
 * |----------|-------------------------------|---------|-------------------------------------------|
 * | ttl      | 0..255                        | 1       | multicast hops; 0 keeps traffic on the host |
 * | iface    | interface name or its address | (route) | interface to send on and to join on       |
 * | loop     | 0 or 1                        | 1       | deliver to listeners on the sending host  |
 * | rcvbuf   | SIZE (0 = system default)     | 64M     | socket receive buffer requested (capped by net.core.rmem_max without CAP_NET_ADMIN) |
 * | sndbuf   | SIZE (0 = system default)     | 0       | socket send buffer requested              |
 * | maxmsg   | SIZE, 1..4G-1                 | 64M     | largest message sent or accepted          |
 * | dgram    | SIZE, 1200..65507 (v6: 65527) | 65000   | largest datagram sent (fragment size)     |
 * | expire   | milliseconds, 1..3600000      | 2000    | partial messages are dropped after this   |
 * | partmem  | SIZE                          | 256M    | memory cap for partial messages           |
 * | batch    | microseconds, 0..1000000      | 0 (off) | broadcasters pack small messages into one datagram, sent when full, after this long, or on mcl_raw_broadcaster_flush() |
 * | rate     | bytes per second, SIZE 1k..1T, or 0 | 0 (unpaced) | broadcasters: pacing. A token bucket of the datagrams' bytes (mcl's headers and payload, no IP/UDP headers), refilled continuously, holding at most a burst of 10 ms at the rate (at least 64 KiB, one datagram of the largest size); every datagram, fragments included, waits for its tokens, so a large message is spread at the rate (K bytes take at least (K - burst) / rate seconds). The wait sleeps on the monotonic clock inside the publish call (and in the batcher thread for batches); heartbeats are not paced. e.g. rate=200M |
 * | msgrate  | messages per second, 1..10000000, or 0 | 0 (unpaced) | broadcasters: pacing by messages, a token bucket as for `rate` with a burst of 10 ms at the rate (at least 1 message); each publish waits for its turn. Both may be given: each message then waits for both |
 * | heartbeat| milliseconds, 10..3600000, or 0 | 1000  | broadcasters announce themselves this often (docs/wire-format.md, heartbeats); 0: never (listeners older than 0.3 count heartbeats as malformed) |
 * | silent   | missed heartbeats, 1..1000    | 3       | listeners: a publisher not heard for this many of its heartbeat periods is reported silent |
 * | key      | group key file (`mcl-keygen --group NAME`) | (none) | authenticated datagrams (docs/security.md): broadcasters sign every datagram with the file's first key; listeners accept only datagrams signed with one of its keys (up to 8: rotation), refuse replays and captures stamped more than `skew` away, and count the rest (auth_rejected, replayed). Read when the URL is parsed: a regular file of at most 64 KiB |
 * | encrypt  | 0 or 1 (needs key)            | 0       | broadcasters also encrypt the records (XChaCha20-Poly1305); listeners with the key read both kinds |
 * | skew     | seconds, 1..86400             | 60      | listeners with a key: refuse datagrams stamped further than this from their own clock |
 * | compress | zstd, zstd:LEVEL (1..19), lz4, lz4:ACCELERATION (1..65537), lz4hc, lz4hc:LEVEL (1..12), none | none | broadcasters compress each message of at least `compress_min` bytes (zstd default level 3; lz4: larger accelerations are faster and compress less; lz4hc: lz4's high-compression mode, default level 9, much slower to compress, sent as lz4 and opened as fast) and send it compressed when that makes it smaller, alone in its datagram (or fragments), flagged (docs/wire-format.md, compressed messages). Every listener since 0.4 decompresses whatever it receives, whatever its own URL says, after checking the stated size against its `maxmsg` (larger: counted as oversize, never allocated); a stream that does not decode to exactly that size is counted (`undecompressed`) and dropped. Listeners older than 0.4 count compressed datagrams as malformed. Compression runs in the publishing thread, under the broadcaster's lock. A codec this build lacks is refused (MCL_ENOTSUP) |
 * | compress_min | SIZE                      | 512     | broadcasters with `compress`: smaller messages are sent as they are |
 *
 * SIZE is a byte count with an optional suffix k, M or G (powers of 1024).
 *
 * ZeroMQ (docs/zmq.md):
 *
 *     zmq+tcp://HOST:PORT[?...]   HOST = name, IPv4, [IPv6] or *; PORT 0 or * = any (bind only)
 *     zmq+ipc://PATH[?...]        Unix socket path, at most 107 bytes
 *     zmq+inproc://NAME[?...]     within this process
 *
 * | option       | value                   | default   | meaning                              |
 * |--------------|-------------------------|-----------|--------------------------------------|
 * | mode         | bind or connect         | broadcasters bind, listeners connect | which side binds |
 * | hwm          | messages                | 1000      | queue limit per connection           |
 * | drop         | 0 or 1                  | 0         | 0: lossless, publish blocks while a subscriber is full; 1: drop for it |
 * | timeout      | milliseconds, or inf    | inf       | lossless publish gives up after this (MCL_ETIMEDOUT) |
 * | stall        | milliseconds, or inf    | 5000      | lossless, binding tcp/ipc: a subscriber that takes nothing this long while a publish waits for it is disconnected (stats peers_dropped, logged) |
 * | linger       | milliseconds            | 1000      | how long closing waits for unsent messages |
 * | maxmsg       | SIZE                    | 64M       | largest message                      |
 * | batch        | microseconds            | 0 (off)   | pack messages of one topic into one frame |
 * | rate, msgrate | as for udp://          | 0 (unpaced) | a frame is one message: `rate` paces whole messages (one larger than the burst waits for a full bucket and leaves it in debt) |
 * | coalesce     | 0 or 1                  | 1         | broadcasters without batch=: a message published while frames sent before it still wait in libzmq's queue is packed with those that follow into one frame (a lone message leaves at once, alone; what is held leaves when they drain, on flush, close, or after 100 us at most); 0: one frame per message |
 * | heartbeat, silent | as for udp://      |           | heartbeats travel as frames of their own topic |
 * | key, encrypt, skew | as for udp://     |           | frames are signed (and encrypted) as datagrams are; independent of CURVE |
 * | compress, compress_min | as for udp:// |         | a compressed message is its own frame (never coalesced or batched with others) |
 * | curve        | key file (mcl-keygen)   |           | our key pair; alone: this side is the CURVE server |
 * | curve_server | key file or 64 hex digits |         | the server's public key: this side is a CURVE client |
 * | curve_clients| file of public keys      | any       | server: only these clients may connect |
 *
 * Key files must be regular files (at most 64 KiB; a client list 1 MiB): anything else fails
 * the open with MCL_EINVAL at once. A listener's host must resolve when it opens (MCL_ENOENT).
 *
 * UDP options on a zmq URL (and zmq options on a udp URL) are errors; zmq+epgm and zmq+pgm are
 * refused (OpenPGM prints to stdout and has aborted subscribers here; docs/zmq.md). A build
 * without libzmq (MCL_WITH_ZMQ=OFF) refuses zmq+ URLs and says so.
 *
 * Packet streams over plain sockets (request/response, streams, RPC and the broker; no
 * broadcasters or listeners: publish on udp:// or zmq+; docs/transports.md):
 *
 *     tcp://HOST:PORT[?...]       HOST = name, IPv4, [IPv6] or * (listen); PORT 0 or * = any
 *     unix://PATH[?...]           Unix socket path, at most 107 bytes
 *
 * | option  | value                 | default | meaning                                   |
 * |---------|-----------------------|---------|-------------------------------------------|
 * | timeout | milliseconds 1..3600000 | 5000  | how long a dial may take to connect       |
 * | maxmsg  | SIZE                  | 64M     | largest packet                             |
 *
 * In-process, with faults for tests (no socket, no library; the fake network the layers
 * above are tested on):
 *
 *     inproc://NAME[?...]         NAME = 1..127 of letters, digits and ._-/
 *
 * Every broadcaster and listener of this process on the same NAME is in one group: a publish
 * reaches every listener of the group, as multicast does, through a bounded queue per
 * listener. Messages are fragmented at `dgram` as over UDP. The fault options take effect on
 * the listener whose URL has them (a broadcaster accepts and ignores them, so one URL serves
 * both ends), each datagram drawn from a generator seeded by `seed`: a test that publishes
 * from one thread sees the same faults on every run.
 *
 * | option   | value                      | default | meaning                                  |
 * |----------|----------------------------|---------|------------------------------------------|
 * | drop     | probability 0..1 (e.g. 0.1)| 0       | a datagram is lost on the way to this listener |
 * | dup      | probability 0..1           | 0       | a datagram arrives twice                 |
 * | reorder  | probability 0..1           | 0       | a datagram is held back behind 1..depth later ones (released early when nothing else waits) |
 * | depth    | 1..64                      | 4       | most datagrams held back at once         |
 * | seed     | unsigned integer           | 1       | the fault generator's seed               |
 * | queue    | SIZE, at least 64k         | 64M     | the listener's queue (at most 65,536 datagrams); what does not fit is dropped and counted in kernel_drops |
 * | maxmsg, dgram, expire, partmem, batch, rate, msgrate, heartbeat, silent, key, encrypt, skew, compress, compress_min | as for udp:// | | |
 *
 * A probability has at most six decimals. drop and dup are reproducible by seed whenever one
 * thread publishes; reorder too when the listener reads after the sends (a listener that
 * finds its queue empty releases what is held back at once). Held back behind later
 * datagrams, a batch datagram of many records can arrive more than 1024 messages late; the
 * listener then cannot tell it from a copy and drops its records as duplicates (the receive
 * engine's sequence window), as it would on a network. inproc:// is not reachable from
 * another process, so a queued listener (mcl/queued.h) refuses it.
 *
 * The default connection (mcl_connection_default()) is the URL in the environment variable
 * MCL_URL or else MCL_DEFAULT_URL, which keeps every datagram on this host (loopback, ttl 0)
 * and works both on an ordinary host and in a network namespace that has only `lo`.
 *
 * A connection is an immutable value: once parsed it may be shared between threads and used
 * by any number of broadcasters and listeners, which copy what they need.
 */
#ifndef MCL_CONNECTION_H
#define MCL_CONNECTION_H

#include <mcl/err.h>
#include <mcl/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The built-in default: host-local IPv4 multicast on the loopback interface. */
#define MCL_DEFAULT_URL "udp://239.255.26.1:26000?iface=lo&ttl=0"
/** Default port when a URL names none (the Python MCL's port). */
#define MCL_DEFAULT_PORT 26000
/** Longest topic, in bytes. */
#define MCL_TOPIC_MAX 1024

/** A parsed connection (opaque, immutable). */
typedef struct mcl_connection mcl_connection;

/**
 * Parse @p url into a connection.
 * @param[out] connp   receives the connection; set to NULL on failure.
 * @param[in]  url     the URL (see the grammar above).
 * @param[out] errbuf  optional (may be NULL): on failure, one line that names the problem,
 *                     e.g. "udp://10.0.0.1:26000: 10.0.0.1 is not a multicast address".
 * @param      errlen  size of @p errbuf.
 * @retval MCL_OK      *connp is set.
 * @retval MCL_EURL    the URL is malformed, names a scheme this build lacks, is not
 *                     multicast, has a bad port or an unknown or invalid option (errbuf says
 *                     which).
 * @retval MCL_EINVAL  @p connp or @p url is NULL.
 * @retval MCL_ENOMEM  out of memory.
 * Ownership: the caller owns *connp and releases it with mcl_connection_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_connection_parse(mcl_connection **connp, const char *url, char *errbuf,
                                     size_t errlen);

/**
 * The default connection: MCL_URL from the environment if set and non-empty, else
 * MCL_DEFAULT_URL. Errors as mcl_connection_parse() (a bad MCL_URL is reported, not ignored).
 * @since 0.1
 */
MCL_API mcl_err mcl_connection_default(mcl_connection **connp, char *errbuf, size_t errlen);

/** Copy a connection. @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM @since 0.1 */
MCL_API mcl_err mcl_connection_dup(mcl_connection **connp, const mcl_connection *conn);

/** Release a connection; NULL-safe. @since 0.1 */
MCL_API void mcl_connection_free(mcl_connection *conn);

/**
 * Canonical URL of @p conn: scheme, group, port, then the options that differ from their
 * defaults in a fixed order. Two connections with the same canonical URL are equal.
 * Ownership: belongs to @p conn; valid until it is freed.
 * @since 0.1
 */
MCL_API const char *mcl_connection_url(const mcl_connection *conn);

/** True when both connections describe the same endpoint and options. @since 0.1 */
MCL_API bool mcl_connection_equal(const mcl_connection *a, const mcl_connection *b);

/**
 * The transport: "udp", "zmq+tcp", "zmq+ipc", "zmq+inproc", "inproc", "tcp" or "unix"
 * (static text).
 * @since 0.2
 */
MCL_API const char *mcl_connection_scheme(const mcl_connection *conn);

/**
 * Make a CURVE key pair for zmq connections (what mcl-keygen writes to files).
 * @param[out] public_z85  40 Z85 characters and a NUL.
 * @param[out] secret_z85  40 Z85 characters and a NUL; keep it secret.
 * @retval MCL_OK @retval MCL_EINVAL (NULL argument)
 * @retval MCL_ENOTSUP  libzmq was built without CURVE (libsodium), or mcl without libzmq.
 * @since 0.2
 */
MCL_API mcl_err mcl_curve_keypair(char public_z85[41], char secret_z85[41]);

/**
 * Write the 32-byte key in @p z85 (40 characters) as 64 lowercase hex digits and a NUL into
 * @p hex: the form a key takes inside a URL (Z85 uses characters that URLs reserve).
 * @retval MCL_OK @retval MCL_EINVAL (NULL argument, or not a Z85 key)
 * @retval MCL_ENOTSUP  mcl was built without libzmq.
 * @since 0.2
 */
MCL_API mcl_err mcl_curve_key_hex(const char *z85, char hex[65]);

/** Address family: 4 or 6 (0 for zmq and inproc connections). @since 0.1 */
MCL_API int mcl_connection_family(const mcl_connection *conn);
/** Group address as text (no brackets); "" for zmq and inproc. Owned by @p conn. @since 0.1 */
MCL_API const char *mcl_connection_group(const mcl_connection *conn);
/** Port (0 = chosen by the kernel when a listener binds; zmq+tcp: the TCP port; 0 for ipc
 * and inproc, and for inproc://). @since 0.1 */
MCL_API uint16_t mcl_connection_port(const mcl_connection *conn);
/** Multicast TTL / hop limit (0 for zmq and inproc). @since 0.1 */
MCL_API int mcl_connection_ttl(const mcl_connection *conn);
/** Interface as given (name or address), or "" when the routing table chooses. @since 0.1 */
MCL_API const char *mcl_connection_iface(const mcl_connection *conn);
/** Whether datagrams are looped back to listeners on the sending host. @since 0.1 */
MCL_API bool mcl_connection_loop(const mcl_connection *conn);
/** Requested receive buffer in bytes (0 = system default). @since 0.1 */
MCL_API size_t mcl_connection_rcvbuf(const mcl_connection *conn);
/** Largest message in bytes. @since 0.1 */
MCL_API size_t mcl_connection_maxmsg(const mcl_connection *conn);
/** Broadcasters' heartbeat period in ms (`heartbeat=`, default 1000; 0: none). @since 0.3 */
MCL_API uint32_t mcl_connection_heartbeat_ms(const mcl_connection *conn);
/** Largest datagram in bytes (0 for zmq, which does not fragment). @since 0.1 */
MCL_API size_t mcl_connection_dgram(const mcl_connection *conn);

#ifdef __cplusplus
}
#endif
#endif
