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

// Checks a topic filter as mcl_raw_listener_open() does (MCL_EINVAL, logged as component).
mcl_err mcl__raw_check_topics(const char *component, const char *const *topics, size_t ntopics);

// Whether the listener thread runs (then only it may receive).
bool mcl__raw_listener_running(const mcl_raw_listener *l);

// The raw listener as an event source (mcl_reactor_add_raw_listener()).
extern const mcl__source_ops mcl__raw_listener_source;

#endif
