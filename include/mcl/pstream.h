// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/pstream.h
 * Packet streams: many requests and their responses, multiplexed over one ordered,
 * reliable, bidirectional connection, in both directions at once.
 *
 * Either side may make requests, answer them, or both. A request has a channel (a real
 * multiplex id: 0 unless you use more), a type, flags and a payload; it is answered by exactly
 * one response with a status (mcl_pstream_status), flags and a payload. Requests run
 * concurrently: their responses come back in any order, matched by (channel, tag); requests
 * on one channel from one side reach the handlers in the order they were sent. Every request
 * has a deadline (a default, or its own) and can be cancelled; every request completes exactly
 * once, with its response or with a local status (CANCELLED, DEADLINE_EXCEEDED, DISCONNECTED,
 * ...). The format is in docs/pstream-format.md.
 *
 * Connections: a URL (zmq+tcp://HOST:PORT and zmq+ipc://PATH: a DEALER dials, a ROUTER
 * server accepts many peers; inproc://NAME: in-process pairs, with faults for tests), or two
 * descriptors the caller owns (a socketpair, a TCP or Unix socket, a child's stdin and
 * stdout), over which packets are length-framed. With MCL_PSTREAM_CS, the stream speaks the
 * wire format of Python's cs.packetstream over descriptors, byte for byte.
 *
 * Ending: a side that sends "end of requests" (ERQ) makes no more requests; the other side
 * refuses any that come after it (NO_MORE_REQUESTS) and answers those in flight. EOF says a
 * side sends nothing more. mcl_pstream_close() does it in order: ERQ, wait for the handlers in
 * progress (bounded), flush, EOF, wait for the peer's EOF (bounded). A received EOF, a dead
 * peer (nothing heard for idle_ms; pings keep a quiet link alive) and a protocol violation
 * complete every pending request at once (DISCONNECTED or PROTOCOL_ERROR).
 *
 * Threads: a stream is driven by one thread, which runs every callback: the stream's own
 * ("mcl-pstream", mcl_pstream_start()), a reactor's (mcl_pstream_attach()), or the caller's
 * inside mcl_pstream_dispatch() when it polls mcl_pstream_fd(). Every other function may be
 * called from any thread, also from callbacks (except the blocking ones, which say so).
 * Callbacks never run with a library lock held.
 *
 * Lifetime: mcl_pstream_free() ends the connection at once (pending requests complete with
 * DISCONNECTED on the calling thread) and releases the handle. Request handles given to
 * handlers stay valid until they are replied to, also after the stream is freed.
 */
#ifndef MCL_PSTREAM_H
#define MCL_PSTREAM_H

#include <mcl/connection.h>
#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/reactor.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mcl_pstream mcl_pstream;
typedef struct mcl_pstream_server mcl_pstream_server;
typedef struct mcl_pstream_request mcl_pstream_request;

/**
 * Status of a response, or of a request that ended without one. 0..16 are gRPC's codes (so
 * RPC layers can use them as they are); 20 and up are the packet stream's own.
 */
#define MCL_PSTREAM_STATUS_MAP(X)                                                                  \
    X(OK, 0, "ok")                                                                                 \
    X(CANCELLED, 1, "cancelled")                                                                   \
    X(UNKNOWN, 2, "unknown error")                                                                 \
    X(INVALID_ARGUMENT, 3, "invalid argument")                                                     \
    X(DEADLINE_EXCEEDED, 4, "deadline exceeded")                                                   \
    X(NOT_FOUND, 5, "not found")                                                                   \
    X(ALREADY_EXISTS, 6, "already exists")                                                         \
    X(PERMISSION_DENIED, 7, "permission denied")                                                   \
    X(RESOURCE_EXHAUSTED, 8, "resource exhausted (too many requests in progress)")                 \
    X(FAILED_PRECONDITION, 9, "failed precondition")                                               \
    X(ABORTED, 10, "aborted")                                                                      \
    X(OUT_OF_RANGE, 11, "out of range")                                                            \
    X(UNIMPLEMENTED, 12, "no handler for this request")                                            \
    X(INTERNAL, 13, "internal error (the handler failed)")                                         \
    X(UNAVAILABLE, 14, "unavailable")                                                              \
    X(DATA_LOSS, 15, "data loss")                                                                  \
    X(UNAUTHENTICATED, 16, "unauthenticated")                                                      \
    X(TAG_IN_USE, 20, "a request with this channel and tag is in progress")                        \
    X(NO_MORE_REQUESTS, 21, "the peer accepts no more requests (it sent end-of-requests)")         \
    X(DISCONNECTED, 22, "the connection ended (EOF, dead peer, or closed)")                        \
    X(PROTOCOL_ERROR, 23, "the connection failed: a packet broke the protocol")                    \
    X(REJECTED, 24, "rejected by the peer (cs.packetstream: not ok)")

/** Response statuses; see MCL_PSTREAM_STATUS_MAP. A peer may send other values. */
typedef enum mcl_pstream_status {
#define MCL_PSTREAM_STATUS_ENUM_(name, val, text) MCL_PSTREAM_##name = val,
    MCL_PSTREAM_STATUS_MAP(MCL_PSTREAM_STATUS_ENUM_)
#undef MCL_PSTREAM_STATUS_ENUM_
} mcl_pstream_status;

/** Name ("DEADLINE_EXCEEDED") and text of a status; static, never NULL. @since 0.2 */
MCL_API const char *mcl_pstream_status_name(mcl_pstream_status st);
MCL_API const char *mcl_pstream_status_text(mcl_pstream_status st);

/** Wire formats. */
enum {
    MCL_PSTREAM_NATIVE = 0, /**< the native format (docs/pstream-format.md) */
    MCL_PSTREAM_CS = 1,     /**< Python cs.packetstream's, over descriptors only */
};

/** Any channel or any type, for mcl_pstream_handle(). */
#define MCL_PSTREAM_ANY UINT32_MAX

/** Options; all-zero means the defaults. */
typedef struct mcl_pstream_options {
    int codec;             /**< MCL_PSTREAM_NATIVE or MCL_PSTREAM_CS */
    int timeout_ms;        /**< a request's default deadline (0: 20000) */
    size_t max_packet;     /**< largest packet sent or accepted (0: the URL's maxmsg, 64 MiB;
                                descriptors: 64 MiB); at most maxmsg + 24 on a URL (more is
                                cut to that), and below 4 GiB (more: MCL_EINVAL) */
    size_t send_queue;     /**< bytes that may wait to be sent (0: 8 MiB); beyond, a submit
                                says MCL_EAGAIN and a blocking call waits */
    unsigned max_incoming; /**< the peer's requests in progress at once (0: 4096); more are
                                answered RESOURCE_EXHAUSTED */
    int ping_ms;           /**< ping a quiet link this often (0: 2000; -1: never) */
    int idle_ms;           /**< the peer is dead after this long without a packet (0: 10000;
                                -1: never); cs: never */
    int close_ms;          /**< what mcl_pstream_close() waits at most (0: 5000) */
    int spin_us;           /**< a blocking call (mcl_pstream_call(), mcl_rpc_call()) polls for
                                its answer this long before it sleeps (0: 50; -1: never): at
                                most that much CPU per call, for a wake-up that costs less than
                                a sleeping thread's (on virtual machines above all). @since 0.3 */
} mcl_pstream_options;

/** Counters of one connection; fields are only ever appended. */
typedef struct mcl_pstream_counters {
    uint64_t requests_sent;     /**< requests this side made */
    uint64_t requests_received; /**< requests the peer made (refused ones included) */
    uint64_t responses_sent;
    uint64_t responses_received;
    uint64_t unknown_responses; /**< responses for no request in flight: counted, dropped */
    uint64_t late_responses;    /**< responses for a request that timed out or was cancelled */
    uint64_t cancels_sent;      /**< cancel packets sent (cancelled or timed-out requests) */
    uint64_t cancels_received;
    uint64_t timeouts;        /**< requests of this side that passed their deadline */
    uint64_t refused;         /**< peer requests refused (tag in use, no handler, after ERQ,
                                   too many) */
    uint64_t protocol_errors; /**< packets that broke the protocol (the connection fails) */
    uint64_t bytes_sent, bytes_received; /**< packets, framing not counted */
    uint64_t in_flight;   /**< requests of this side waiting for their response now */
    uint64_t in_progress; /**< requests of the peer being handled now */
    uint64_t send_queued; /**< bytes waiting to be sent now */
    uint64_t messages_sent;      /**< one-way messages (mcl_pstream_send()). @since 0.3 */
    uint64_t messages_received;  /**< @since 0.3 */
    uint64_t unhandled_messages; /**< received with no handler for their channel:
                                      counted, dropped. @since 0.3 */
} mcl_pstream_counters;

/** How a request ended: its response, or a local status. */
typedef struct mcl_pstream_result {
    mcl_pstream_status status; /**< OK, the peer's status, or CANCELLED, DEADLINE_EXCEEDED,
                                    DISCONNECTED, PROTOCOL_ERROR (local) */
    uint32_t channel, tag, flags;
    const void *payload; /**< the response's payload (NULL when len is 0); no alignment
                              promised */
    size_t len;
    const char *message; /**< the status message, NUL-terminated ("" when none) */
    uint64_t id;         /**< the request's handle (mcl_pstream_submit()) */
    bool local;          /**< the status was decided on this side (cancel, deadline, the
                              connection's end), not sent by the peer. @since 0.3 */
} mcl_pstream_result;

/**
 * Called exactly once when a request completes, on the stream's driving thread.
 * @p r is borrowed: valid during the call (copy what you keep).
 */
typedef void (*mcl_pstream_done_cb)(const mcl_pstream_result *r, void *user);

/**
 * A request of the peer, on the driving thread. @p rq stays valid until mcl_pstream_reply();
 * its payload only until the handler returns (copy it to answer later).
 */
typedef void (*mcl_pstream_handler)(mcl_pstream *ps, mcl_pstream_request *rq, void *user);

/** The peer cancelled @p rq (its deadline passed, or it gave up), on the driving thread. */
typedef void (*mcl_pstream_cancel_cb)(mcl_pstream_request *rq, void *user);

/** The connection ended (@p why: DISCONNECTED, PROTOCOL_ERROR, or OK after an orderly close). */
typedef void (*mcl_pstream_closed_cb)(mcl_pstream *ps, mcl_pstream_status why, void *user);

/**
 * Dial a packet-stream server at @p url.
 * @retval MCL_OK @retval MCL_EURL (bad URL, or a scheme without packet streams: udp://)
 * @retval MCL_EUNREACH (inproc: nobody listens) @retval MCL_EINVAL @retval MCL_ENOMEM
 * @retval MCL_ESYS (and the errors of the transport's sockets)
 * Ownership: the caller owns *psp; mcl_pstream_free().
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_dial(mcl_pstream **psp, const char *url,
                                 const mcl_pstream_options *options);

/**
 * A packet stream over descriptors the caller owns: @p rfd to read, @p wfd to write (the
 * same one for a socket). They are made non-blocking while the stream lives, get their flags
 * back at free, and are never closed.
 * @retval MCL_OK @retval MCL_EINVAL (bad descriptor or options) @retval MCL_ENOMEM @retval MCL_ESYS
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_open_fd(mcl_pstream **psp, int rfd, int wfd,
                                    const mcl_pstream_options *options);

/**
 * Register @p fn for requests of @p type on @p channel (either may be MCL_PSTREAM_ANY). The
 * most specific registration wins: (channel, type), then (channel, any), then (any, type),
 * then (any, any); with none, the request is answered UNIMPLEMENTED. NULL @p fn removes.
 * From any thread; a request being handled keeps the handler it found.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_handle(mcl_pstream *ps, uint32_t channel, uint32_t type,
                                   mcl_pstream_handler fn, void *user);

/**
 * A one-way message of the peer (mcl_pstream_send()), on the driving thread. @p payload (no
 * alignment promised; NULL when @p len is 0) is borrowed for the call.
 */
typedef void (*mcl_pstream_message_cb)(mcl_pstream *ps, uint32_t channel, uint32_t type,
                                       uint32_t flags, const void *payload, size_t len,
                                       void *user);

/**
 * Register @p fn for the one-way messages of @p channel (MCL_PSTREAM_ANY: of channels with no
 * handler of their own). Messages with no handler are counted (unhandled_messages) and
 * dropped. NULL @p fn removes. From any thread.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_pstream_handle_messages(mcl_pstream *ps, uint32_t channel,
                                            mcl_pstream_message_cb fn, void *user);

/**
 * Send a one-way message: no response, no deadline, no tag; messages of one side reach the
 * peer in order, interleaved with its requests and responses as sent. Allowed until this side
 * sends EOF (after end-of-requests too). Native codec only.
 * @retval MCL_OK (sent or queued) @retval MCL_EAGAIN (the send queue is full: nothing sent)
 * @retval MCL_ESTATE (EOF sent) @retval MCL_ECLOSED @retval MCL_EMSGSIZE (beyond max_packet)
 * @retval MCL_ENOTSUP (MCL_PSTREAM_CS) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_pstream_send(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                                 const void *payload, size_t len);

/** Accessors of a peer's request (valid until it is replied to; the payload, with no
 * alignment promised, until its handler returns). @since 0.2 */
MCL_API uint32_t mcl_pstream_request_channel(const mcl_pstream_request *rq);
MCL_API uint32_t mcl_pstream_request_tag(const mcl_pstream_request *rq);
MCL_API uint32_t mcl_pstream_request_type(const mcl_pstream_request *rq);
MCL_API uint32_t mcl_pstream_request_flags(const mcl_pstream_request *rq);
MCL_API const void *mcl_pstream_request_payload(const mcl_pstream_request *rq, size_t *len);
/** Whether the peer cancelled it. Thread-safe. @since 0.2 */
MCL_API bool mcl_pstream_request_cancelled(const mcl_pstream_request *rq);
/** Call @p cb when the peer cancels it (at once, on this thread, if it has). @since 0.2 */
MCL_API mcl_err mcl_pstream_request_on_cancel(mcl_pstream_request *rq, mcl_pstream_cancel_cb cb,
                                              void *user);

/**
 * Answer @p rq, exactly once, from any thread (inside its handler or later). @p message is an
 * optional UTF-8 status message (NULL: none). The reply is sent even if the peer cancelled (it
 * then ends the cancelled request), and dropped if the connection has ended. @p rq is
 * released, whatever the result.
 * @retval MCL_OK (sent or queued) @retval MCL_ECLOSED (the connection ended: nothing sent)
 * @retval MCL_EINVAL (NULL, or a message that is not UTF-8 text or is longer than 65535: the
 * peer gets INTERNAL instead) @retval MCL_EMSGSIZE (larger than max_packet: the peer gets
 * RESOURCE_EXHAUSTED) @retval MCL_ENOMEM (no memory to queue it: the connection ends)
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_reply(mcl_pstream_request *rq, mcl_pstream_status status,
                                  uint32_t flags, const void *payload, size_t len,
                                  const char *message);

/**
 * Make a request. @p timeout_ms: its deadline (0: the default; -1: none). @p cb is called
 * exactly once when it completes (NULL: fire and forget, the response is dropped).
 * @param[out] id  optional: its handle, for mcl_pstream_cancel() (never 0).
 * @retval MCL_OK (queued; @p cb will be called)
 * @retval MCL_EAGAIN (the send queue is full: nothing was sent, @p cb will not be called)
 * @retval MCL_ESTATE (this side sent end-of-requests, or the stream is closing) @retval MCL_ECLOSED
 * @retval MCL_EMSGSIZE (larger than max_packet) @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_submit(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                                   const void *payload, size_t len, int timeout_ms,
                                   mcl_pstream_done_cb cb, void *user, uint64_t *id);

/**
 * As mcl_pstream_submit(), and settle @p p with the result: it resolves with an
 * mcl_pstream_result (any status), which belongs to the promise (valid until its last
 * reference goes). Cancelling @p p cancels the request. The promise's reactor should drive the
 * stream, so that callbacks run on one thread.
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_submit_promise(mcl_pstream *ps, uint32_t channel, uint32_t type,
                                           uint32_t flags, const void *payload, size_t len,
                                           int timeout_ms, mcl_promise *p);

/**
 * Make a request and wait for its result (at most @p timeout_ms, 0: the default). When the
 * send queue is full it waits for room within the same time. Not from the driving thread
 * (MCL_ESTATE); a stream that nothing drives is driven by the calling thread meanwhile.
 * @param[out] out  receives the result: the caller frees it with mcl_pstream_result_free().
 * @retval MCL_OK (*out set, whatever its status) @retval MCL_ETIMEDOUT (no room in the send
 * queue in time: nothing was sent) @retval MCL_ESTATE @retval MCL_ECLOSED @retval MCL_EINVAL
 * @retval MCL_EMSGSIZE @retval MCL_ENOMEM
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_call(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                                 const void *payload, size_t len, int timeout_ms,
                                 mcl_pstream_result **out);
/** Release a result from mcl_pstream_call(); NULL-safe. @since 0.2 */
MCL_API void mcl_pstream_result_free(mcl_pstream_result *r);

/**
 * Cancel request @p id: a cancel packet goes to the peer (not with MCL_PSTREAM_CS, which has
 * none), and the request completes at once with CANCELLED (its callback runs on the driving
 * thread). A response that comes later is dropped (late_responses). After a cancel the
 * caller may assume only that the callback runs once: the peer may have acted already.
 * @retval MCL_OK @retval MCL_ENOENT (no such request in flight: completed already)
 * @retval MCL_EINVAL
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_cancel(mcl_pstream *ps, uint64_t id);

/** Send end-of-requests: no more requests from this side (submits say MCL_ESTATE). @since 0.2 */
MCL_API mcl_err mcl_pstream_end_requests(mcl_pstream *ps);

/** Be told when the connection ends (on the driving thread). @since 0.2 */
MCL_API mcl_err mcl_pstream_on_closed(mcl_pstream *ps, mcl_pstream_closed_cb cb, void *user);

/**
 * Orderly close: end-of-requests, wait for the local handlers in progress, flush, EOF, and
 * wait for the peer's EOF, in all at most @p timeout_ms (0: close_ms), driving the stream if
 * nothing else does. Whatever is still pending after that completes with DISCONNECTED. Not from
 * the driving thread (MCL_ESTATE: use mcl_pstream_shutdown()). Never closes descriptors the
 * caller supplied.
 * @retval MCL_OK (both sides said EOF) @retval MCL_ETIMEDOUT (closed anyway) @retval MCL_ESTATE
 * @retval MCL_ECLOSED (closed before) @retval MCL_EINVAL
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_close(mcl_pstream *ps, int timeout_ms);

/** Start the orderly close without waiting (its end: the closed callback). From any thread,
 * callbacks included. @since 0.2 */
MCL_API mcl_err mcl_pstream_shutdown(mcl_pstream *ps);

/** Whether the connection is still up (not ended by close, EOF, a dead peer or an error). @since
 * 0.2 */
MCL_API bool mcl_pstream_is_open(const mcl_pstream *ps);

/** Why the connection ended: "" while open and after an orderly close, else a status and a
 * reason ("DISCONNECTED: the peer closed the connection"). Owned by @p ps, unchanged once
 * ended; thread-safe. @since 0.2 */
MCL_API const char *mcl_pstream_end_reason(const mcl_pstream *ps);

/** End the connection at once (if not ended) and release the handle; NULL-safe. Not from the
 * driving thread's callbacks. @since 0.2 */
MCL_API void mcl_pstream_free(mcl_pstream *ps);

/**
 * Keep @p ps's memory beyond its end, for a server's connection used from other threads (the
 * server frees its connections when they end, after their closed callback). Once it has ended
 * every function on it stays safe and says MCL_ECLOSED (a blocking call: at once). Each
 * mcl_pstream_ref() needs one mcl_pstream_unref(), from any thread. @since 0.2
 */
MCL_API void mcl_pstream_ref(mcl_pstream *ps);
MCL_API void mcl_pstream_unref(mcl_pstream *ps);

/** Drive the stream on a thread of its own named "mcl-pstream" (until free).
 * @retval MCL_OK @retval MCL_EALREADY (driven already) @retval MCL_ESYS @since 0.2 */
MCL_API mcl_err mcl_pstream_start(mcl_pstream *ps);

/** Drive the stream from @p r (its thread runs the callbacks), until free or detach.
 * @retval MCL_OK @retval MCL_EALREADY @retval MCL_EINVAL @retval MCL_ENOMEM @since 0.2 */
MCL_API mcl_err mcl_pstream_attach(mcl_pstream *ps, mcl_reactor *r);

/**
 * The descriptor to poll (readable) for mcl_pstream_dispatch(), for the caller's own loop.
 * @retval MCL_OK @retval MCL_EINVAL
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_fd(const mcl_pstream *ps, int *fd);

/**
 * Do what is due without blocking: read packets, run handlers and completions, send what
 * waits, fire deadlines and pings. Callbacks run on the calling thread.
 * @retval MCL_OK (also when the connection has ended) @retval MCL_ESTATE (another thread drives
 * it, or called from one of its callbacks) @retval MCL_EINVAL
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_dispatch(mcl_pstream *ps);

/** Read the counters (thread-safe). @retval MCL_OK @retval MCL_EINVAL @since 0.2 */
MCL_API mcl_err mcl_pstream_stats(const mcl_pstream *ps, mcl_pstream_counters *st);

/** The URL dialled or accepted on ("" for descriptors). Owned by @p ps. @since 0.2 */
MCL_API const char *mcl_pstream_url(const mcl_pstream *ps);
/** The peer's address where the transport knows it, fixed at connection: "tcp://IP:PORT" (tcp://),
 * "unix:pid=P,uid=U" (unix://, and descriptors that are Unix sockets: the peer's credentials),
 * else "" (zmq+, inproc, pipes). Owned by @p ps. @since 0.3 */
MCL_API const char *mcl_pstream_peer(const mcl_pstream *ps);

/**
 * A new connection accepted by a server, on the server's driving thread: register handlers
 * (and keep @p ps if you want to make requests on it). @p ps belongs to the server, which frees
 * it when the connection ends (after its closed callback), or at mcl_pstream_server_free()
 * (then with no closed callback). To use it from another thread, hold it with
 * mcl_pstream_ref() (here) and let go with mcl_pstream_unref().
 */
typedef void (*mcl_pstream_accept_cb)(mcl_pstream_server *srv, mcl_pstream *ps, void *user);

/**
 * Listen at @p url (zmq+tcp://HOST:PORT, zmq+ipc://PATH, inproc://NAME; port 0 binds a free
 * one: mcl_pstream_server_url() says which). Every peer that connects is one connection, given
 * to @p cb. The server drives its connections (their callbacks run where the server's do).
 * @retval MCL_OK @retval MCL_EURL @retval MCL_EADDRINUSE @retval MCL_EINVAL @retval MCL_ENOMEM
 * @retval MCL_ESYS
 * Ownership: the caller owns *sp; mcl_pstream_server_free().
 * @since 0.2
 */
MCL_API mcl_err mcl_pstream_server_open(mcl_pstream_server **sp, const char *url,
                                        const mcl_pstream_options *options,
                                        mcl_pstream_accept_cb cb, void *user);
/** The URL it listens on, with the port chosen. @since 0.2 */
MCL_API const char *mcl_pstream_server_url(const mcl_pstream_server *s);
/** Connections open now. @since 0.2 */
MCL_API size_t mcl_pstream_server_connections(const mcl_pstream_server *s);
/** Drive it on its own thread "mcl-pstream", from a reactor, or through fd + dispatch, as for a
 * stream. @since 0.2 */
MCL_API mcl_err mcl_pstream_server_start(mcl_pstream_server *s);
MCL_API mcl_err mcl_pstream_server_attach(mcl_pstream_server *s, mcl_reactor *r);
MCL_API mcl_err mcl_pstream_server_fd(const mcl_pstream_server *s, int *fd);
MCL_API mcl_err mcl_pstream_server_dispatch(mcl_pstream_server *s);
/** Stop accepting, end every connection (orderly, at most @p timeout_ms, 0: close_ms), and
 * release; NULL-safe. Not from its callbacks. @since 0.2 */
MCL_API void mcl_pstream_server_free(mcl_pstream_server *s, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
