// ZeroMQ transport: the one place that talks to libzmq.
//
// A zmq connection carries the same envelope as UDP: every ZeroMQ message is one frame
//
//     TOPIC '\0' DATAGRAM
//
// where DATAGRAM is a wire-format v1 datagram with one unfragmented record (publisher id,
// sequence number, topic, payload). The leading topic lets ZeroMQ filter by prefix on the
// publisher's side; the listener's receive engine then checks the topic exactly and counts
// gaps, duplicates and reordering as for UDP.
#ifndef MCL_ZSOCK_H
#define MCL_ZSOCK_H

#include "../connection_int.h"
#include "../../raw/wire.h"

#include <mcl/err.h>
#include <mcl/raw.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mcl__zsock mcl__zsock;

// The largest batch frame's datagram (zmq + batch=): records packed into one frame.
#define MCL__ZMQ_BATCH_MAX ((size_t)65536)

// Bytes a message adds to its payload on a zmq connection.
#define MCL__ZMQ_OVERHEAD(tl) ((tl) + 1 + 8 + MCL__WIRE_HDR + MCL__WIRE_REC + (tl))

// Per (publisher, topic) counters. A zmq publisher filters by topic for its subscribers, so a
// listener sees only some of a publisher's sequence numbers and cannot tell a filtered
// message from a lost one. Every frame therefore also carries the number of the message on
// its topic (TOPIC '\0' TSEQ DATAGRAM, TSEQ a big-endian u64 for the datagram's first record,
// the next ones counting on); listeners count loss per (publisher, topic) from it.
typedef struct mcl__tseq mcl__tseq;
mcl__tseq *mcl__tseq_new(void);
void mcl__tseq_free(mcl__tseq *t);
// The counter of (publisher, topic), 0 when new (*created is then true). NULL when out of
// memory. Valid until the next call. The table forgets everything at 65536 entries.
uint64_t *mcl__tseq_slot(mcl__tseq *t, uint64_t publisher, const char *topic, size_t tl,
                         bool *created);

// Opens a socket for a broadcaster (XPUB) or a listener (SUB) on c and binds or connects it.
// Broadcasters of one process that bind the same endpoint with the same options share one
// socket (reference-counted; different options: MCL_EADDRINUSE).
// A bind to port 0 (or *) stores the port chosen in c (and its canonical URL). The socket
// holds a reference to the process-wide context (a forked child gets its own).
mcl_err mcl__zmq_open(struct mcl_connection *c, bool publisher, mcl__zsock **sockp);
// Closes the socket (pending messages are sent for up to the connection's linger time).
void mcl__zmq_close(mcl__zsock *sock);

// Listener: subscribes the prefixes that cover the topic filter, plus a private "hello"
// prefix that no message matches, which lets a broadcaster count its subscribers.
mcl_err mcl__zmq_subscribe(mcl__zsock *sock, const char *const *topics, size_t ntopics);

// Broadcaster: sends one message (thread-safe). MCL_ETIMEDOUT (or MCL_EAGAIN with timeout=0) when a
// lossless send could not proceed: then nothing was sent to anyone.
mcl_err mcl__zmq_send(mcl__zsock *sock, int timeout_ms, uint64_t publisher, uint64_t seq,
                      uint64_t tseq, const char *topic, size_t tl, const void *data, size_t len);

// Broadcaster: sends a datagram already encoded (a batch of records, all on `topic`) behind
// its topic prefix (thread-safe). Errors as mcl__zmq_send().
mcl_err mcl__zmq_send_frame(mcl__zsock *sock, int timeout_ms, const char *topic, size_t tl,
                            uint64_t tseq, const uint8_t *dgram, size_t len);

// Broadcaster: waits up to wait_ms (0: not at all) for a subscription notice or a monitor
// event, reads what the socket holds, and returns the socket's totals: listeners subscribed
// now, failed handshakes so far. Thread-safe (a bound socket is shared by the broadcasters of
// this process on the same endpoint).
void mcl__zmq_housekeeping(mcl__zsock *sock, int wait_ms, int64_t *subscribers,
                           uint64_t *auth_failures);

// Waits up to timeout_ms (-1: forever) for the socket to become readable (listener) or for a
// subscription notice (broadcaster), or for extra_fd (may be -1). <0 on error.
int mcl__zmq_wait(mcl__zsock *sock, int extra_fd, int timeout_ms);

// Listener: reads one message without blocking. *data/*len stay valid until the next recv or
// close. MCL_EAGAIN when nothing is queued.
mcl_err mcl__zmq_recv(mcl__zsock *sock, const uint8_t **data, size_t *len);

// Whether a message can be read now (ZMQ_EVENTS has POLLIN).
bool mcl__zmq_readable(mcl__zsock *sock);

// ZMQ_FD of the socket (edge-triggered: drain until nothing is readable before waiting).
int mcl__zmq_fd(mcl__zsock *sock);

// Listener: reads the socket's monitor: the number of failed handshakes (wrong or missing CURVE key,
// mechanism mismatch) since the last call; each is logged once.
uint64_t mcl__zmq_auth_failures(mcl__zsock *sock);

// Makes a CURVE key pair (Z85 text, 40 characters and a NUL each).
mcl_err mcl__zmq_keypair(char pub[41], char sec[41]);

#endif
