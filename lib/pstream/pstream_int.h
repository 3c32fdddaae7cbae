// SPDX-License-Identifier: BSD-3-Clause
// The packet stream's internals shared by its files: the connection (pstream.c) and the
// server that accepts and drives connections (pserver.c).
#ifndef MCL__PSTREAM_INT_H
#define MCL__PSTREAM_INT_H

#include <mcl/pstream.h>

#include "../transport/transport.h"

// Fills in the defaults of in (NULL: all defaults); url_max: the URL's maxmsg (0: none).
// MCL_EINVAL for values out of range.
mcl_err mcl__pstream_resolve_options(mcl_pstream_options *o, const mcl_pstream_options *in,
                                     size_t url_max);

// A connection over a pipe the server accepted: driven by the server (its callbacks run where
// the server's do), freed by the server when it has ended.
mcl_err mcl__pstream_accepted(mcl_pstream **psp, mcl_pstream_server *srv, const mcl__pipe_ops *ops,
                              mcl__pipe *pipe, const char *url, const mcl_pstream_options *o,
                              size_t max_packet);
// The server's side of a connection: its epoll fd, whether it has ended (and told its closed
// callback: the server may free it), and whether it waits to write with no descriptor that
// says when (zmq ROUTER peers: the server's socket says it).
int mcl__pstream_epfd(const mcl_pstream *ps);
bool mcl__pstream_finished(mcl_pstream *ps);
bool mcl__pstream_wants_retry(mcl_pstream *ps);
// Dispatch by the server (its driving thread): as mcl_pstream_dispatch().
void mcl__pstream_server_dispatch(mcl_pstream *ps);
// Starts an orderly close of a connection (the server's free).
void mcl__pstream_begin_close(mcl_pstream *ps, int timeout_ms);
// Whether the calling thread drives the server (its connections' callbacks run there).
bool mcl__pstream_server_driving(const mcl_pstream_server *s);
// Frees a connection the server owns (it has ended, or the server is being freed).
void mcl__pstream_release(mcl_pstream *ps);
// Whether the calling thread drives ps (runs its callbacks): blocking calls are refused there.
bool mcl__pstream_on_driver(mcl_pstream *ps);
// Calls fn(user) once, when the handle of rq is released: after its reply, and after any
// cancel callback still running on it has returned. fn runs under the stream's lock and must
// not call the stream. From rq's handler (the driving thread), before it replies.
void mcl__pstream_request_on_release(mcl_pstream_request *rq, void (*fn)(void *), void *user);

// A one-way message whose payload is pre then payload (sent as one, without joining them
// first): as mcl_pstream_send().
mcl_err mcl__pstream_send2(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                           const void *pre, size_t prelen, const void *payload, size_t len);
// Bytes the send queue takes now before a send says MCL_EAGAIN (a send to an empty queue
// may go straight to the pipe whatever its size).
size_t mcl__pstream_send_room(mcl_pstream *ps);

#endif
