// Internal entry points of the raw listener for the layers built on it.
#ifndef MCL_LISTENER_INT_H
#define MCL_LISTENER_INT_H

#include <mcl/raw.h>

// Opens a listener on a socket already bound and joined (a duplicate of fd is used).
mcl_err mcl__raw_listener_open_fd(mcl_raw_listener **lp, const mcl_connection *conn,
                                  const char *const *topics, size_t ntopics, int fd);

// Calls fn for every complete, non-duplicate message's (publisher, seq) and whether it will be
// delivered (false: filtered or oversize), on the receiving thread. fn must be quick and must
// not call back into the listener.
void mcl__raw_listener_set_seq_hook(mcl_raw_listener *l,
                                    void (*fn)(void *ctx, uint64_t publisher, uint64_t seq,
                                               bool delivered),
                                    void *ctx);

// Whether the listener thread runs (then only it may receive).
bool mcl__raw_listener_running(const mcl_raw_listener *l);

#endif
