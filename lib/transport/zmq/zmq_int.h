// SPDX-License-Identifier: BSD-3-Clause
// The ZeroMQ transport's internals, shared by its files (zmq.c: context, sockets, framing and
// the broadcast ops; zcurve.c: keys, CURVE, the ZAP handler and the handshake monitor;
// zmq_url.c: the zmq+ grammar). Only lib/transport/zmq includes <zmq.h> (and this header).
//
// Framing: a ZeroMQ message is one frame
//
//     TOPIC '\0' TSEQ DATAGRAM
//
// DATAGRAM is what lib/raw encoded (wire format v1), carried as opaque bytes; TOPIC is the
// topic of every record in it, so that ZeroMQ can filter by prefix on the publisher's side,
// and TSEQ (a big-endian u64) is the per-(publisher, topic) number of its first record, from
// which lib/raw counts loss per topic (docs/zmq.md).
#ifndef MCL__ZMQ_INT_H
#define MCL__ZMQ_INT_H

#include "../transport.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <zmq.h>

#define MCL__ZADDR_MAX 256
#define MCL__KEYPATH_MAX 256
enum { MCL__ZMQ_TCP = 1, MCL__ZMQ_IPC = 2, MCL__ZMQ_INPROC = 3 };
enum { MCL__ZMODE_DEFAULT = 0, MCL__ZMODE_BIND = 1, MCL__ZMODE_CONNECT = 2 };

// The largest batch frame's datagram (batch=): records packed into one frame.
#define MCL__ZMQ_BATCH_MAX ((size_t)65536)
// Frames a listener reads at once.
#define MCL__ZMQ_RX_BATCH 16

typedef struct mcl__zmq_opts {
    int kind;                     // MCL__ZMQ_TCP, _IPC, _INPROC
    char addr[MCL__ZADDR_MAX];    // tcp: host (no brackets) or "*"; ipc: path; inproc: name
    int mode;                     // MCL__ZMODE_*: default = broadcasters bind, listeners connect
    int hwm;                      // high-water mark in messages (0: libzmq's default, 1000)
    bool drop;                    // drop for slow subscribers instead of blocking (lossless)
    int timeout_ms;               // lossless publish: give up after this long (-1: never)
    int stall_ms;                 // lossless: a subscriber that takes nothing this long while
                                  // a publish waits for it is disconnected (-1: never)
    int linger_ms;                // what close waits for unsent messages
    bool coalesce;                // broadcasters: pack messages while earlier frames wait
    char curve_key[MCL__KEYPATH_MAX];     // our key pair file (mcl-keygen), "" = none
    char curve_server[MCL__KEYPATH_MAX];  // the server's public key: hex text or a file
    char curve_clients[MCL__KEYPATH_MAX]; // server: file of the client keys allowed, "" = any
} mcl__zmq_opts;

static inline const mcl__zmq_opts *
mcl__zmq_opts_of(const struct mcl_connection *c)
{
    return (const mcl__zmq_opts *)mcl__tport_copts(c);
}

// The peers whose failed handshakes a socket remembers (each logged once), and how long.
#define MCL__ZMQ_FAILED_PEERS 16
#define MCL__ZMQ_FAILED_FORGET_S 60
typedef struct mcl__zfailed {
    char addr[128];  // the event's address ("" = a free slot)
    int why;         // the reason (zcurve.c's FAIL_*)
    int64_t last_ns; // the latest failure
} mcl__zfailed;

// One libzmq socket: a listener's SUB, or an XPUB that the broadcasters of this process bound
// to the same endpoint share.
typedef struct mcl__zsock {
    void *s;   // XPUB or SUB
    void *mon; // PAIR connected to the socket's monitor (NULL if it could not be set up)
    // `lock` serialises the sharing broadcasters' use of an XPUB.
    pthread_mutex_t lock;
    bool lock_init;
    unsigned refs;                // under the context lock
    char ep[MCL__ZADDR_MAX + 32]; // the endpoint it is bound to ("" = not shared)
    struct mcl__zsock *next;      // in the shared list, under the context lock
    int64_t subscribers;          // under lock
    uint64_t auth_failures;       // under lock
    // An XPUB, under lock: the distinct prefixes subscribed and their bytes (from libzmq's
    // notices), the hellos counted (their ids), the peers disconnected (stalled, or over the
    // subscription cap), and a line to log about it (logged by tx_info, not under the lock).
    int64_t nsubs, subs_bytes;
    uint64_t *hellos;
    size_t nhellos, hellos_cap;
    uint64_t peers_dropped;
    int64_t cap_grace_ns;         // after a drop for the cap: the prefixes are not gone yet
    char drop_line[MCL__URL_MAX + 256];
    uint64_t drop_skipped;
    int64_t drop_log_after_ns;
    bool bound;                   // bound (peers are found by the local address) or connected
    int kind;                     // MCL__ZMQ_TCP, _IPC, _INPROC
    uint16_t lport;               // bound tcp: the port
    char lpath[MCL__ZADDR_MAX];   // bound ipc: the path
    uint8_t hello_id[8];          // a SUB: its hello (also in its ZMTP metadata)
    bool zap_registered;          // its ZAP domain ("mcl-<address>") lists the allowed keys
    // Failed handshakes are logged once per peer (address and reason), not every retry: the
    // peers remembered (forgotten after MCL__ZMQ_FAILED_FORGET_S without a failure, or, on a
    // connecting socket, at a handshake that succeeds). When all the slots are taken, the
    // least recently failing peer gives its slot, and such lines are limited to one a second.
    mcl__zfailed failed[MCL__ZMQ_FAILED_PEERS];
    int64_t log_after_ns;         // (for that overflow)
    bool connects;                // the monitor counts a server that hangs up mid-handshake
    char url[MCL__URL_MAX];
} mcl__zsock;

// zmq.c: the process-wide context's lock (guards the context, the shared sockets, and the ZAP
// handler's running state).
void mcl__zmq_ctx_lock(void);
void mcl__zmq_ctx_unlock(void);
// A reference to the process-wide context (made by the first, in this process: a forked child
// gets its own), and its release (the last one terminates it).
mcl_err mcl__zmq_ctx_acquire(void **ctx);
void mcl__zmq_ctx_release(void);
// Drops a reference to a socket; the last one closes it (monitor, ZAP domain, context).
void mcl__zmq_zsock_close(mcl__zsock *z);
// A socket of `type` with what every socket of ours gets: linger, IPv6 for tcp, CURVE and the
// ZAP domain; *ctxp: the context it holds a reference to. On failure nothing is left open and
// the error is logged.
mcl_err mcl__zmq_zsock_new(const struct mcl_connection *c, int type, mcl__zsock **zp,
                           void **ctxp);
// The endpoint of c for zmq_bind/zmq_connect (a tcp port 0 binds "*").
void mcl__zmq_endpoint(const struct mcl_connection *c, char *ep, size_t len);
// Binds or connects (a connect needs a host and a port); a bind to tcp port 0 reports the
// port chosen in *bound_port and renames the socket's URL after it.
mcl_err mcl__zmq_bind_or_connect(mcl__zsock *z, const struct mcl_connection *c, bool bind,
                                 const char *ep, uint16_t *bound_port);

// zcurve.c
// Key files, parsed from their text (pure: no file system, no libzmq state; fuzz/fuzz_keyfile.c).
// MCL__ZKEYS_PAIR: "public = Z85" and "secret = Z85" lines, both required (mcl-keygen's .key);
// MCL__ZKEYS_PUBLIC: the same, only "public" required (a .pub file); MCL__ZKEYS_CLIENTS: one
// public key a line ("public = Z85", bare Z85 or 64 hex digits). '#' comments and blank lines
// are skipped; a line is at most 255 bytes. MCL_OK, MCL_ENOMEM, or MCL_EAUTH with k->line (the
// line at fault, 0: the file as a whole) and k->why (static text). k->keys: release with
// mcl__zmq_keys_fini (also after a failure).
enum { MCL__ZKEYS_PAIR = 0, MCL__ZKEYS_PUBLIC = 1, MCL__ZKEYS_CLIENTS = 2 };
typedef struct mcl__zkeys {
    char pub[41], sec[41]; // pair and public files: Z85 text ("" when absent)
    uint8_t (*keys)[32];   // client files: the keys, binary
    size_t nkeys;
    unsigned line;
    const char *why;
} mcl__zkeys;
mcl_err mcl__zmq_parse_keys(const char *buf, size_t len, int kind, mcl__zkeys *k);
void mcl__zmq_keys_fini(mcl__zkeys *k);
// Makes a CURVE key pair (Z85 text, 40 characters and a NUL each).
mcl_err mcl__zmq_keypair(char pub[41], char sec[41]);
// Sets the socket's CURVE options from the URL's keys (nothing when it names none).
mcl_err mcl__zmq_setup_curve(mcl__zsock *z, const mcl__zmq_opts *o);
// A CURVE server with curve_clients=: registers its domain and its allowed keys with the ZAP
// handler, starting the handler (thread mcl-zap) if it does not run. Takes the context lock.
mcl_err mcl__zmq_zap_register(mcl__zsock *z, void *ctx, const mcl__zmq_opts *o);
void mcl__zmq_zap_unregister(mcl__zsock *z);
// With the context lock held: stops the handler if it runs (the last socket has closed).
void mcl__zmq_zap_stop_locked(void);
// With the context lock held, in a forked child: the parent's handler does not exist here.
void mcl__zmq_zap_forget_locked(void);
// Fork handlers: the ZAP handler's table lock is not held across fork().
void mcl__zmq_zap_fork_lock(void);
void mcl__zmq_zap_fork_unlock(void);
// Connects a PAIR to the socket's monitor for failed handshakes (best effort). On a socket
// that connects, a server that closes the connection during the handshake counts too (that
// is all a CURVE client with a wrong server key is told); on one that binds it does not (port
// scans).
void mcl__zmq_setup_monitor(mcl__zsock *z, void *ctx, bool connects);
// Stops the monitor and closes its reader (before the socket closes).
void mcl__zmq_close_monitor(mcl__zsock *z);
// The failed handshakes since the last call (wrong or missing key, mechanism mismatch). The
// line to log about them goes into line ("" when none): one for each peer that failed for the
// first time (z->failed), the others are only counted. The caller logs it with
// mcl__zmq_log_lines() once it holds no lock (a log handler may publish). Only from a thread
// that may use the socket. len: MCL__ZMQ_LOGLINE (lines that do not fit are counted in the
// last one).
#define MCL__ZMQ_LOGLINE_ONE 512
#define MCL__ZMQ_LOGLINE (4 * MCL__ZMQ_LOGLINE_ONE)
uint64_t mcl__zmq_monitor_read(mcl__zsock *z, char *line, size_t len);
// Logs each line of what mcl__zmq_monitor_read() wrote (errors of component "zmq").
void mcl__zmq_log_lines(const char *lines);

#endif
