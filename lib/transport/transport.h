// SPDX-License-Identifier: BSD-3-Clause
// The contract between the layers above (lib/raw today; the packet stream next) and a
// transport. Internal, never installed.
//
// A transport is one const descriptor per URL scheme (struct mcl__tport), listed in
// registry.c, the only list. It owns everything about its scheme: the URL grammar and its
// options, the canonical form, sockets, and its framing, encoded *and* decoded here. It never
// includes lib/raw or anything above, and never calls back up: it moves bytes that the layer
// above has encoded (wire format v1 datagrams, docs/wire-format.md) without looking inside.
//
// Rules for every op: it returns mcl_err and leaves a half-opened handle closable; close is
// NULL-safe and never fails; what an op needs from the connection it copies before returning.
// An op marked optional may be NULL (the caller then answers MCL_ENOTSUP or does without).
// Capability bits (caps) tell the layers above what a transport does, so that nothing above
// it ever compares scheme names.
#ifndef MCL__TRANSPORT_H
#define MCL__TRANSPORT_H

#include "connection_int.h"

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum {
    // Datagrams are at most conn->dgram bytes: lib/raw fragments larger messages, and the
    // URL takes dgram=, expire= and partmem= (udp, inproc).
    MCL__TP_FRAGMENT = 1u << 0,
    // The sender filters by topic prefix for each listener (zmq): a listener sees only some
    // of a publisher's sequence numbers, so every datagram holds records of one topic and
    // carries the number of its first record on that topic (mcl__frame.tseq); lib/raw counts
    // loss per (publisher, topic) from it. Never together with MCL__TP_FRAGMENT.
    MCL__TP_PUBFILTER = 1u << 1,
    // tx_info counts the listeners subscribed: wait_for_subscribers works (zmq, inproc).
    MCL__TP_SUBCOUNT = 1u << 2,
    // A receiving socket opened here keeps working in a forked child: rx_open may adopt a
    // descriptor that rx_fd of another handle returned (udp). The queued listener's
    // receivers then share the parent's socket, and nothing is lost while one restarts.
    MCL__TP_FORK_FD = 1u << 3,
    // Reachable from another process (udp, zmq+tcp, zmq+ipc): a queued listener's receiver
    // process can open its own socket on it.
    MCL__TP_XPROCESS = 1u << 4,
    // rx_fd is edge-triggered (ZMQ_FD): rx_pending tells whether a datagram waits, and a
    // reader must read until nothing is left before it waits on the fd again.
    MCL__TP_EDGE_FD = 1u << 5,
};

// What is known of a datagram's arrival.
typedef struct mcl__meta {
    int64_t real_ns;  // CLOCK_REALTIME when it arrived (the kernel's stamp where there is one)
    int64_t mono_ns;  // the same moment on CLOCK_MONOTONIC
    int family;       // the sender's address family: 4, 6, or 0 when unknown
    uint8_t addr[16]; // its address (4 bytes used for IPv4)
    uint16_t port;    // its port
} mcl__meta;

// One datagram to send, in pieces (lib/raw's header and the caller's payload).
typedef struct mcl__frame {
    const struct iovec *iov;
    unsigned niov;
    // MCL__TP_PUBFILTER only: the topic of every record in it, and the per-(publisher, topic)
    // number of its first record.
    const char *topic;
    size_t tl;
    uint64_t tseq;
    // The transport drops it (MCL_EAGAIN) rather than wait for room (heartbeats: a peer that
    // does not read must not hold the process's heartbeat thread).
    bool nowait;
} mcl__frame;

// One datagram received, the transport's own framing removed. Valid until the next rx_read
// or rx_close of the same handle.
typedef struct mcl__dgram {
    const uint8_t *data; // NULL: something arrived that is not a datagram (counted malformed)
    size_t len;
    mcl__meta meta;
    // MCL__TP_PUBFILTER: the frame's topic and the number of its first record on that topic.
    bool has_tseq;
    const char *topic;
    size_t tl;
    uint64_t tseq;
} mcl__dgram;

typedef struct mcl__tx_limits {
    size_t batch_max;    // the largest datagram a batch may fill
    uint16_t bound_port; // a bind to port 0: the port the kernel chose (0: nothing to learn)
    // The transport counts the datagrams it was handed and has not yet passed on (tx_backlog)
    // and asks lib/raw to coalesce: while some wait, later messages are packed into one
    // datagram instead of following one by one (zmq's `coalesce=`, on by default).
    bool coalesce;
} mcl__tx_limits;

typedef struct mcl__tx_info {
    int64_t subscribers;    // MCL__TP_SUBCOUNT: listeners subscribed now
    uint64_t auth_failures; // failed handshakes since open (wrong or missing keys)
    uint64_t peers_dropped; // subscribers the transport disconnected since open (zmq)
} mcl__tx_info;

typedef struct mcl__rx_opened {
    uint16_t bound_port; // the port bound (0: nothing to learn)
    size_t rcvbuf;       // the effective receive buffer or queue, in bytes (0: unknown)
} mcl__rx_opened;

typedef struct mcl__rx_idle {
    bool has_kernel_drops;
    uint64_t kernel_drops;  // total datagrams the transport dropped before they were read
    uint64_t auth_failures; // failed handshakes since the previous call
} mcl__rx_idle;

typedef struct mcl__tx mcl__tx;   // a transport's sending handle
typedef struct mcl__rxs mcl__rxs; // a transport's receiving handle

// Broadcasters and listeners: one-to-many datagrams.
typedef struct mcl__bcast_ops {
    // Opens a sending handle. lim->batch_max must be set; lim->bound_port when a bind chose it.
    mcl_err (*tx_open)(mcl__tx **txp, const struct mcl_connection *c, mcl__tx_limits *lim);
    // Sends f[0..nf) in order. Safe from several threads at once. *sent = datagrams that left
    // (always set). On failure nothing is logged (the caller holds its lock, and the log
    // handler may publish): the transport writes a short reason into why ("" when the code
    // says it all, e.g. MCL_ETIMEDOUT from a full lossless queue), and the caller logs it.
    mcl_err (*tx_send)(mcl__tx *tx, const mcl__frame *f, unsigned nf, unsigned *sent, char *why,
                       size_t whylen);
    // MCL__TP_SUBCOUNT (else NULL): waits up to wait_ms (0: not at all) for news of
    // subscribers, then reports. Safe from several threads at once. Called with no lock of the
    // caller held; it may log, but not while it holds a lock of its own.
    void (*tx_info)(mcl__tx *tx, int wait_ms, mcl__tx_info *out);
    // With lim->coalesce (else may be NULL): datagrams this handle sent that the transport has
    // not yet passed on (zmq: frames libzmq's I/O thread has not taken from the queue of every
    // subscriber). 0 means what was sent has drained. Cheap (an atomic load); any thread.
    uint64_t (*tx_backlog)(const mcl__tx *tx);
    void (*tx_close)(mcl__tx *tx);
    // Optional: a forked child lets go of a handle its parent opened (lib/raw's inherited
    // objects). Frees the memory and closes this process's copies of descriptors, with no
    // protocol action: nothing is sent, and what the handle shares with the parent (a socket,
    // its group memberships) stays the parent's. NULL: the handle is left alone, its memory
    // and descriptor copies held until the child exits (zmq, whose context is the parent's).
    void (*tx_forget)(mcl__tx *tx);

    // Opens a receiving handle. The transport may pre-filter by topics (each an exact topic,
    // or a prefix ending in '*'); the receive engine above still checks every topic exactly.
    // adopt_fd >= 0 (MCL__TP_FORK_FD only): use a duplicate of that descriptor instead of a
    // new socket.
    mcl_err (*rx_open)(mcl__rxs **rxp, const struct mcl_connection *c, const char *const *topics,
                       size_t ntopics, int adopt_fd, mcl__rx_opened *out);
    // Optional: checks, without keeping anything open, what a receiver in another process
    // would open (bad key files and addresses fail here). Only without MCL__TP_FORK_FD.
    mcl_err (*rx_probe)(const struct mcl_connection *c);
    // Reads up to max datagrams without blocking (at least one when it returns MCL_OK);
    // MCL_EAGAIN when none waits. Where the transport counts its own drops it sets
    // *kernel_drops to their running total (else leaves it). One thread at a time.
    mcl_err (*rx_read)(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *n,
                       uint64_t *kernel_drops);
    // Optional: as rx_read, but waits up to timeout_ms (> 0, or -1: forever) for the first
    // datagram in the same call (one system call where poll + read would take two or three);
    // MCL_EAGAIN when none came in time (or at once, when the descriptor was made
    // non-blocking behind the transport's back: the caller then polls), MCL_EINTR when a
    // signal interrupted the wait.
    mcl_err (*rx_read_wait)(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *n,
                            uint64_t *kernel_drops, int timeout_ms);
    // Optional: as rx_read_wait (timeout_ms 0: no wait), but reads one datagram into the
    // caller's buf[0..cap) instead of the transport's own slot (the queued listener's receiver
    // reads straight into its ring). cap must be at least rx_into_cap, else a large datagram
    // is cut short (counted malformed, out->data NULL). out->data points into buf.
    mcl_err (*rx_read_into)(mcl__rxs *rx, uint8_t *buf, size_t cap, mcl__dgram *out,
                            uint64_t *kernel_drops, int timeout_ms);
    size_t rx_into_cap; // with rx_read_into: the largest datagram it may read
    // The descriptor to poll for input (level-triggered unless MCL__TP_EDGE_FD).
    int (*rx_fd)(const mcl__rxs *rx);
    // MCL__TP_EDGE_FD (else NULL): whether a datagram can be read now.
    bool (*rx_pending)(mcl__rxs *rx);
    // Optional: waits up to timeout_ms (-1: forever) for input or for extra_fd (may be -1);
    // <0 on error (errno set). NULL: poll() on rx_fd.
    int (*rx_wait)(mcl__rxs *rx, int extra_fd, int timeout_ms);
    // Optional: called when rx_read found nothing; reports what the transport counted.
    void (*rx_idle)(mcl__rxs *rx, mcl__rx_idle *out);
    void (*rx_close)(mcl__rxs *rx);
    // Optional: as tx_forget, for a receiving handle.
    void (*rx_forget)(mcl__rxs *rx);
} mcl__bcast_ops;

// Pipes: ordered, reliable, bidirectional connections that carry whole packets (the packet
// stream's transport). A server endpoint accepts any number of peers, one pipe each; a dial
// makes one pipe. A pipe never loses, reorders or resends a packet while it is up; when the
// peer is gone it says MCL_ECLOSED. Every op on a pipe or a server is called by one thread at
// a time (the packet stream serialises them); ops on different pipes may run in parallel,
// also when they share a socket (a zmq ROUTER): the transport locks what they share.
typedef struct mcl__pipe mcl__pipe;
typedef struct mcl__pserver mcl__pserver;

typedef struct mcl__pipe_ops {
    // A server endpoint. *bound_port: the port a bind to port 0 chose (0: nothing to learn).
    mcl_err (*listen)(mcl__pserver **sp, const struct mcl_connection *c, uint16_t *bound_port);
    // Readable (level-triggered) when accept may have a pipe, or the server has work to do.
    int (*server_fd)(const mcl__pserver *s);
    // A new peer's pipe, MCL_EAGAIN when none. Also does the server's housekeeping (zmq: reads
    // the shared socket and hands packets to their pipes).
    mcl_err (*accept)(mcl__pserver *s, mcl__pipe **pp);
    void (*server_close)(mcl__pserver *s); // its pipes must be closed first
    // One pipe to a server. The peer may not exist yet: packets wait (bounded) until it does.
    mcl_err (*dial)(mcl__pipe **pp, const struct mcl_connection *c);
    // Sends one whole packet, or takes none of it: MCL_EAGAIN when the pipe is full (its
    // wfd says when to try again), MCL_ECLOSED when the peer is gone, MCL_EHOSTUNREACH when the
    // transport cannot route to it. Never logs (the caller may hold its lock); why says more.
    mcl_err (*send)(mcl__pipe *p, const struct iovec *iov, unsigned niov, char *why,
                    size_t whylen);
    // Writes what a send left buffered. MCL_OK: nothing left; MCL_EAGAIN: wait for wfd.
    mcl_err (*flush)(mcl__pipe *p, char *why, size_t whylen);
    // One packet without blocking, borrowed until the next recv or close; MCL_EAGAIN when none
    // waits; MCL_ECLOSED at the peer's end; MCL_EPROTO when the framing is broken or a packet
    // is larger than max (nothing more can be read then).
    mcl_err (*recv)(mcl__pipe *p, const uint8_t **data, size_t *len, size_t max, char *why,
                    size_t whylen);
    // The descriptor that is readable (level-triggered) while recv has something to do.
    int (*rfd)(const mcl__pipe *p);
    // When send said MCL_EAGAIN or flush has work: the descriptor and poll events (POLLOUT or
    // POLLIN) that say it can go on; -1 when readiness comes through rfd (then retry on it).
    int (*wfd)(const mcl__pipe *p, short *events);
    // Whether flush has bytes to write. flush and want_flush are NULL for a pipe whose send
    // takes a whole packet or none (then nothing is ever left to flush).
    bool (*want_flush)(const mcl__pipe *p);
    // With flush: the bytes it holds (the caller counts them against its own output limit).
    size_t (*held)(const mcl__pipe *p);
    // Optional, for an rfd that only signals changes (ZMQ_FD): whether recv has a packet now.
    // A reader that stops before MCL_EAGAIN asks, and comes back without waiting when true;
    // so does a sender outside the reader's loop after each send (on zmq a send may swallow
    // the descriptor's signal), and at the end of each round of its own.
    bool (*pending)(mcl__pipe *p);
    void (*close)(mcl__pipe *p); // never closes descriptors the caller supplied
    // Optional: the peer's address, for people ("tcp://IP:PORT", "unix:pid=P,uid=U").
    void (*peer)(const mcl__pipe *p, char *buf, size_t n);
    // Whether accept has work only when server_fd is readable (a listening socket); false:
    // the server calls it every round (zmq: it also reads the shared socket).
    bool accept_when_ready;
} mcl__pipe_ops;

// Byte-stream pipes over descriptors the caller owns (a socketpair, a TCP or Unix socket, or
// a child's stdin and stdout): no URL, so no descriptor in the registry. Packets are framed
// with a length in front: a big-endian u32 (MCL__FRAME_U32), or the BSUInt of Python's
// cs.packetstream (MCL__FRAME_BSUINT). The descriptors are made non-blocking while the pipe
// lives and get their flags back at close, which never closes them. A send that the kernel
// does not take at once waits in the pipe, up to `outbuf` bytes.
enum { MCL__FRAME_U32 = 1, MCL__FRAME_BSUINT = 2 };
mcl_err mcl__fdpipe_open(mcl__pipe **pp, int rfd, int wfd, int framing, size_t outbuf);
extern const mcl__pipe_ops mcl__fd_pipe_ops;
// The same pipe on a stream socket it owns (closed at close), u32 framing: tcp:// and unix://.
mcl_err mcl__fdpipe_adopt(mcl__pipe **pp, int fd, size_t outbuf);
// tcp:// and unix:// servers and dials (sock/sock.c), in mcl__sock_pipe_ops (fdpipe.c).
mcl_err mcl__sock_listen(mcl__pserver **sp, const struct mcl_connection *c, uint16_t *bound_port);
int mcl__sock_server_fd(const mcl__pserver *s);
mcl_err mcl__sock_accept(mcl__pserver *s, mcl__pipe **pp);
void mcl__sock_server_close(mcl__pserver *s);
mcl_err mcl__sock_dial(mcl__pipe **pp, const struct mcl_connection *c);

typedef struct mcl__tport {
    const char *scheme; // "udp", "zmq+tcp", "zmq+ipc", "zmq+inproc", "inproc"
    const char *family; // how messages name the family: "udp://", "zmq+", "inproc://"
    const char *example; // a URL of this scheme, for documentation and the standing test
    unsigned caps;
    size_t opts_size;       // its options struct in mcl_connection.opts (<= MCL__TP_OPTS_MAX)
    const char *const *keys; // the option keys it parses itself, NULL-terminated
    const char *known;      // every option it takes, for "unknown option" messages
    // Sets its options to their defaults (the generic ones are set already).
    void (*defaults)(struct mcl_connection *c);
    // Parses what follows "SCHEME://" up to the options, which *opts is set to ('?...' or "").
    mcl_err (*parse_addr)(struct mcl_connection *c, const char *url, const char *rest,
                          const char **opts, char *errbuf, size_t errlen);
    // Parses one of its keys.
    mcl_err (*parse_option)(struct mcl_connection *c, const char *url, const char *key,
                            size_t klen, const char *val, size_t vlen, char *errbuf,
                            size_t errlen);
    // Optional: checks that need every option (after all are parsed).
    mcl_err (*finish)(struct mcl_connection *c, const char *url, char *errbuf, size_t errlen);
    // Writes c->url.
    void (*canon)(struct mcl_connection *c);
    // Optional: explains a scheme of its family that no transport has (MCL_EURL), or MCL_OK
    // when the scheme is none of its business.
    mcl_err (*claim)(const char *url, const char *scheme, size_t slen, char *errbuf,
                     size_t errlen);
    const mcl__bcast_ops *bcast; // NULL: no broadcasters or listeners
    const mcl__pipe_ops *pipe;   // NULL: no packet streams
} mcl__tport;

// The registry (registry.c): the transport for a scheme, or NULL.
const mcl__tport *mcl__tport_find(const char *scheme, size_t len);
// Every registered transport, for messages and for the standing test: i < mcl__tport_count().
size_t mcl__tport_count(void);
const mcl__tport *mcl__tport_at(size_t i);
// The error for a scheme no transport has: a transport's explanation (claim), else the list
// of schemes this build supports. Always MCL_EURL.
mcl_err mcl__tport_unknown(const char *url, const char *scheme, size_t slen, char *errbuf,
                           size_t errlen);

// The options struct of c's transport (the caller knows which transport it is).
static inline void *
mcl__tport_opts(struct mcl_connection *c)
{
    return c->opts;
}
static inline const void *
mcl__tport_copts(const struct mcl_connection *c)
{
    return c->opts;
}

#endif
