// SPDX-License-Identifier: BSD-3-Clause
// Internal entry points of the raw listener for the layers built on it.
#ifndef MCL__LISTENER_INT_H
#define MCL__LISTENER_INT_H

#include <mcl/raw.h>

#include "../core/source.h"

// Opens a listener on a socket that another handle opened (a duplicate of fd is used): for
// transports with MCL__TP_FORK_FD only (else MCL_EINVAL), e.g. in a queued listener's receiver.
mcl_err mcl__raw_listener_open_fd(mcl_raw_listener **lp, const mcl_connection *conn,
                                  const char *const *topics, size_t ntopics, int fd);

// Calls fn for every complete, non-duplicate message's (publisher, seq) and whether it will be
// delivered (false: filtered or oversize), on the receiving thread. fn must be quick and must
// not call back into the listener.
void mcl__raw_listener_set_seq_hook(mcl_raw_listener *l,
                                    void (*fn)(void *ctx, uint64_t publisher, uint64_t seq,
                                               bool delivered),
                                    void *ctx);

// Receiving straight into the caller's memory (the queued listener's ring): the size a buffer
// must have, 0 when the transport cannot (no rx_read_into).
size_t mcl__raw_listener_into_cap(const mcl_raw_listener *l);

// As mcl_raw_listener_recv(), but a datagram read by this call goes into buf[0..cap) (cap at
// least mcl__raw_listener_into_cap(), else MCL_EINVAL): a message whose payload then lies in
// buf was not copied. Only a datagram of one plain record (not a fragment, a heartbeat, a
// compressed or a batched datagram) is used from there; any other is copied to a buffer of the
// listener's first, so that nothing buf holds is needed once the call returns (buf may then be
// overwritten, or handed to another process). A message may also come from datagrams read
// before (then its payload is elsewhere). *copied (may be NULL): the last datagram this call
// read into buf was one of those copied (the message came from it, or from one before it).
// MCL_ENOMEM when the listener's buffer cannot be had.
mcl_err mcl__raw_listener_recv_into(mcl_raw_listener *l, uint8_t *buf, size_t cap,
                                    const mcl_raw_msg **msgp, int timeout_ms, bool *copied);

// Checks a topic filter as mcl_raw_listener_open() does (MCL_EINVAL, logged as component).
mcl_err mcl__raw_check_topics(const char *component, const char *const *topics, size_t ntopics);

// Whether the listener thread runs (then only it may receive).
bool mcl__raw_listener_running(const mcl_raw_listener *l);

// The raw listener as an event source (mcl_reactor_add_raw_listener()).
extern const mcl__source_ops mcl__raw_listener_source;

#endif
