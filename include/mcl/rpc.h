// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/rpc.h
 * Remote procedure calls on packet streams (mcl/pstream.h): services of methods with stable
 * numeric ids and dotted names, argument and result schemas that the service publishes,
 * arguments checked by the caller before anything is sent (and again by the service), a
 * deadline on every call that travels with it, cancellation, and a status on every reply.
 *
 * A **service** is a table of methods (mcl_rpc_method): each has an id (1..MCL_RPC_ID_MAX,
 * chosen by you, never by the order of registration), a name ("calc.add": dotted names group
 * methods), a schema for its arguments and one for its result (mcl_rpc_field), a handler and a
 * description. It serves on any packet-stream URL (mcl_rpc_service_listen()) or on streams you
 * already have (mcl_rpc_service_serve()). Two methods are built in: "rpc.describe" (the
 * service's methods, ids, schemas and descriptions) and "rpc.stats" (per method: calls, errors,
 * timeouts, cancels, latency p50/p99).
 *
 * A **client** (mcl_rpc_client_open()) fetches the description once, then calls by name or
 * by id, blocking (mcl_rpc_call()) or asynchronously (mcl_rpc_submit(), with a callback or a
 * promise), many calls in flight at once.
 *
 * Arguments and results are maps (mcl/value.h: build them with mcl_value_new(MCL_TYPE_MAP)
 * and mcl_value_put_*(), or from JSON with mcl_value_from_json()). Schema rules: every field
 * that is not optional must be present; no field that is not declared may be (unless the
 * method has MCL_RPC_OPEN_ARGS); a field holds its declared kind (MCL_TYPE_ANY: any; an
 * integer is accepted where a float is declared); an absent optional field with a default
 * gets it before the handler runs. A refusal names the field and the problem
 * ("field 'b': expected float, got str").
 *
 * Every call completes exactly once, with a status (mcl_rpc_status): the handler's, or one
 * decided on the caller's side (mcl_rpc_result.local): refused before sending, its deadline
 * passed, cancelled, the connection lost. The call's transaction id is released on every
 * path. docs/rpc.md has the concepts, the wire format and an example.
 *
 * Threads: service handlers run on the thread that drives the stream (the service's own
 * "mcl-pstream" thread, or the reactor given in the options); a handler may defer its reply
 * and answer later from any thread. Client callbacks run on the client stream's driving
 * thread. Every other function may be called from any thread; the blocking ones not from a
 * driving thread (MCL_ESTATE). No callback runs with a library lock held.
 */
#ifndef MCL_RPC_H
#define MCL_RPC_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/pstream.h>
#include <mcl/reactor.h>
#include <mcl/value.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Status of a call: the packet stream's (gRPC's codes 0..16, then the stream's own), used as
 * they are. What each means for a call:
 * - OK: the result is there.
 * - CANCELLED: mcl_rpc_cancel() (local), or the service's handler gave up.
 * - DEADLINE_EXCEEDED: the deadline passed before the reply (local), or the call reached the
 *   service with no time left (remote).
 * - INVALID_ARGUMENT: the arguments do not match the schema: refused before sending (local) or
 *   by the service; mcl_rpc_result.field names the field. A handler may use it too.
 * - UNIMPLEMENTED: no such method (by name: local; by id: the service says so).
 * - RESOURCE_EXHAUSTED: arguments larger than the service accepts, or too many calls at once.
 * - INTERNAL: the handler failed, replied nothing, or returned a result that breaks its schema;
 *   or the reply could not be read (local).
 * - NO_MORE_REQUESTS: the service is shutting down (it sent end-of-requests).
 * - DISCONNECTED, PROTOCOL_ERROR: the connection was lost, or broke the protocol (local).
 * - the others: as a handler uses them (NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE, ...).
 */
typedef mcl_pstream_status mcl_rpc_status;

/** Name ("INVALID_ARGUMENT") of a status; static, never NULL. @since 0.3 */
MCL_API const char *mcl_rpc_status_name(mcl_rpc_status st);

/** Largest method id of your own; ids above are the built-in methods'. */
#define MCL_RPC_ID_MAX 0xFFFFFEFFu
/** Ids of the built-in methods. */
#define MCL_RPC_ID_DESCRIBE 0xFFFFFF01u
#define MCL_RPC_ID_STATS 0xFFFFFF02u

/** A field of an argument or result schema. */
typedef struct mcl_rpc_field {
    const char *name; /**< non-empty, at most 255 bytes, distinct in its schema */
    mcl_type type;    /**< the kind it holds (MCL_TYPE_ANY: any) */
    bool optional;    /**< may be absent */
    const char *def;  /**< optional fields: the default as JSON text ("0.5", "\"x\"", "[]"), of
                           the declared kind; NULL: none (the field is then simply absent) */
    const char *doc;  /**< a short description (NULL: none) */
} mcl_rpc_field;

typedef struct mcl_rpc_service mcl_rpc_service;
typedef struct mcl_rpc_req mcl_rpc_req;

/**
 * A call of a method, on the stream's driving thread. @p args is the argument map, checked
 * against the schema, with defaults filled in; it and @p call are owned by the library, valid
 * until the call is answered. The handler answers with mcl_rpc_reply() or mcl_rpc_fail()
 * before it returns, or calls mcl_rpc_defer() and answers later from any thread. A handler
 * that returns without doing either is answered INTERNAL for it.
 */
typedef void (*mcl_rpc_handler)(mcl_rpc_req *call, const mcl_value *args, void *user);

/** Method flags. */
enum {
    MCL_RPC_OPEN_ARGS = 1,   /**< accept argument fields the schema does not declare */
    MCL_RPC_OPEN_RESULT = 2, /**< the result may hold fields its schema does not declare */
};

/** A method (mcl_rpc_service_add() copies it, strings and schemas included). */
typedef struct mcl_rpc_method {
    uint32_t id;      /**< 1..MCL_RPC_ID_MAX, stable: part of the service's interface */
    const char *name; /**< segments of [A-Za-z_][A-Za-z0-9_]* joined by '.', at most 255
                           bytes; "rpc." is reserved */
    const char *doc;  /**< a short description (NULL: none) */
    const mcl_rpc_field *args;
    size_t nargs;
    const mcl_rpc_field *result;
    size_t nresult;
    unsigned flags; /**< MCL_RPC_OPEN_ARGS, MCL_RPC_OPEN_RESULT */
    mcl_rpc_handler handler;
    void *user;
} mcl_rpc_method;

/** Service options; all-zero means the defaults. */
typedef struct mcl_rpc_service_options {
    size_t max_args;            /**< largest encoded arguments accepted (0: 1 MiB); published,
                                  so clients refuse larger ones before sending */
    mcl_reactor *reactor;       /**< drive listening servers from this reactor (NULL: a thread
                                  of their own) */
    mcl_pstream_options stream; /**< for the servers mcl_rpc_service_listen() opens */
} mcl_rpc_service_options;

/**
 * A new service named @p name (NULL: "service") with description @p doc (NULL: none).
 * Ownership: the caller owns *sp; mcl_rpc_service_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_service_new(mcl_rpc_service **sp, const char *name, const char *doc,
                                    const mcl_rpc_service_options *options);

/**
 * Add @p n methods, all or none, before the service first serves (after: MCL_ESTATE).
 * @param[out] errbuf  optional: one line naming the method and the problem.
 * @retval MCL_OK
 * @retval MCL_EEXIST (an id or a name used already, also twice within @p methods)
 * @retval MCL_EINVAL (a bad id, name, schema or default; no handler) @retval MCL_ESTATE
 * @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_service_add(mcl_rpc_service *s, const mcl_rpc_method *methods, size_t n,
                                    char *errbuf, size_t errlen);

/**
 * Serve at @p url (zmq+tcp://HOST:PORT, zmq+ipc://PATH, inproc://NAME; port 0: a free one,
 * see mcl_rpc_service_url()). May be called more than once (several URLs).
 * @retval MCL_OK and the errors of mcl_pstream_server_open() and _start()/_attach()
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_service_listen(mcl_rpc_service *s, const char *url);

/** The URL of the first listening server, with its port; "" when none. Owned by @p s. @since 0.3 */
MCL_API const char *mcl_rpc_service_url(const mcl_rpc_service *s);

/**
 * Serve the requests of channel @p channel of a stream you have (descriptors, a server's
 * accept callback, a dialled connection whose peer makes the calls). The service keeps a
 * reference to @p ps until it is freed; end or free your streams (or let their server go)
 * before mcl_rpc_service_free(), so that no request is still arriving.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_service_serve(mcl_rpc_service *s, mcl_pstream *ps, uint32_t channel);
/** Stop serving @p ps's @p channel and drop the reference (streams that have ended are also
 * let go by the next mcl_rpc_service_serve()). @retval MCL_OK @retval MCL_ENOENT @since 0.3 */
MCL_API mcl_err mcl_rpc_service_unserve(mcl_rpc_service *s, mcl_pstream *ps, uint32_t channel);

/** Per-method counters of a service (the "rpc.stats" method gives the same). */
typedef struct mcl_rpc_method_stats {
    uint64_t calls;     /**< calls that reached the handler, or were refused for it */
    uint64_t ok;        /**< answered OK */
    uint64_t errors;    /**< answered with another status (refusals included) */
    uint64_t invalid;   /**< of which: arguments refused by the schema */
    uint64_t timeouts;  /**< arrived with no time left, or answered after their deadline */
    uint64_t cancelled; /**< cancelled by the caller while in progress */
    uint64_t in_progress;
    double p50_us, p99_us, max_us; /**< from arrival to reply, answered calls (0: none yet) */
} mcl_rpc_method_stats;

/**
 * Counters of method @p id (a built-in one included). Thread-safe.
 * @retval MCL_OK @retval MCL_ENOENT (no such method) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_service_stats(const mcl_rpc_service *s, uint32_t id,
                                      mcl_rpc_method_stats *st);

/**
 * Stop serving: the listening servers close their connections in order (callers then get
 * NO_MORE_REQUESTS for new calls; calls in progress are answered, within @p timeout_ms, 0: 5 s),
 * and the service is released. Deferred calls still unanswered stay valid: answering them
 * later is safe (and sends nothing). NULL-safe. Not from a handler.
 * @since 0.3
 */
MCL_API void mcl_rpc_service_free(mcl_rpc_service *s, int timeout_ms);

/* --- inside a handler ------------------------------------------------------------------------ */

/** The result map to fill before mcl_rpc_reply() (owned by the call). @since 0.3 */
MCL_API mcl_value *mcl_rpc_req_result(mcl_rpc_req *call);

/**
 * Answer OK with the result map, checked against the result schema first (a mismatch answers
 * INTERNAL instead and returns MCL_ETYPE). Exactly one of mcl_rpc_reply() or mcl_rpc_fail() per
 * call; the call is released, whatever the result (unless it came from the handler without
 * mcl_rpc_defer(): then it lives until the handler returns).
 * @retval MCL_OK @retval MCL_ETYPE @retval MCL_ECANCELED (answered already: the caller
 * cancelled, nothing sent) @retval MCL_ECLOSED (the connection ended) @retval MCL_EALREADY
 * (answered twice inside the handler; a deferred call must not be touched after its answer)
 * @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_reply(mcl_rpc_req *call);

/**
 * Answer with status @p st (not OK) and a message (printf format; NULL: the status's text).
 * Return codes as mcl_rpc_reply().
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_fail(mcl_rpc_req *call, mcl_rpc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Keep the call to answer after the handler returns, from any thread. Every deferred call must
 * be answered once (its memory lives until then), and not touched after its answer. When the
 * caller cancels it (as the caller does when its deadline passes), the library answers it at
 * once (CANCELLED); the later answer then returns MCL_ECANCELED and sends nothing. When the
 * connection ends, mcl_rpc_req_cancelled() says so, and the answer returns MCL_ECLOSED.
 * @retval MCL_OK @retval MCL_EALREADY (deferred or answered already) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_defer(mcl_rpc_req *call);

/** Whether the call is no longer wanted: the caller cancelled it (or gave up at its deadline),
 * or the connection ended. Thread-safe. @since 0.3 */
MCL_API bool mcl_rpc_req_cancelled(const mcl_rpc_req *call);
/** Milliseconds left before the caller's deadline (0: passed; -1: the call has none). @since 0.3 */
MCL_API int64_t mcl_rpc_req_remaining_ms(const mcl_rpc_req *call);
/** The method's id and name. @since 0.3 */
MCL_API uint32_t mcl_rpc_req_method_id(const mcl_rpc_req *call);
MCL_API const char *mcl_rpc_req_method_name(const mcl_rpc_req *call);
/** The connection the call came on (for who is calling: mcl_pstream_url()). @since 0.3 */
MCL_API mcl_pstream *mcl_rpc_req_stream(const mcl_rpc_req *call);

/* --- clients --------------------------------------------------------------------------------- */

typedef struct mcl_rpc_client mcl_rpc_client;

/** What a client knows of a method, from the service's description. Owned by the client. */
typedef struct mcl_rpc_method_info {
    uint32_t id;
    const char *name;
    const char *doc;           /**< "" when none */
    const mcl_rpc_field *args; /**< defaults as JSON text; docs "" when none */
    size_t nargs;
    const mcl_rpc_field *result;
    size_t nresult;
    unsigned flags; /**< MCL_RPC_OPEN_ARGS, MCL_RPC_OPEN_RESULT */
} mcl_rpc_method_info;

/** How a call ended. Borrowed in callbacks; from mcl_rpc_call(): mcl_rpc_result_free(). */
typedef struct mcl_rpc_result {
    mcl_rpc_status status;
    bool local;             /**< decided on this side, not by the service */
    const char *message;    /**< the status message ("" when none), NUL-terminated */
    const char *field;      /**< INVALID_ARGUMENT: the field refused ("" when none) */
    const mcl_value *value; /**< OK: the result map; otherwise NULL */
    uint32_t method;        /**< the method's id */
    uint64_t call_id;       /**< as mcl_rpc_submit() gave it (0 for a call refused locally) */
    int64_t latency_ns;     /**< from the call to its end */
} mcl_rpc_result;

/** Called exactly once per submitted call, on the client stream's driving thread. */
typedef void (*mcl_rpc_done_cb)(const mcl_rpc_result *r, void *user);

/** Client options; all-zero means the defaults. */
typedef struct mcl_rpc_client_options {
    int timeout_ms;       /**< a call's default deadline (0: 20000) */
    int describe_ms;      /**< how long opening waits for the description (0: 5000) */
    uint32_t channel;     /**< the service's channel on the stream (0) */
    mcl_reactor *reactor; /**< drive the stream from this reactor (NULL: a thread of its own) */
    mcl_pstream_options stream;
} mcl_rpc_client_options;

/**
 * Connect to the service at @p url and fetch its description (waiting at most describe_ms).
 * @param[out] errbuf  optional: why it failed ("no service answers at ...", the status).
 * @retval MCL_OK @retval MCL_ETIMEDOUT (no description in time) @retval MCL_EPROTO (the peer
 * is not an mcl service, or its description is malformed) @retval MCL_ECLOSED (the connection
 * ended) @retval the errors of mcl_pstream_dial()
 * Ownership: the caller owns *cp; mcl_rpc_client_free().
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_client_open(mcl_rpc_client **cp, const char *url,
                                    const mcl_rpc_client_options *options, char *errbuf,
                                    size_t errlen);

/**
 * A client on a stream you have and drive (options->reactor, timeout_ms, describe_ms and
 * channel are used; stream is not). The client keeps a reference to @p ps. Blocking: not from
 * the stream's driving thread.
 * Return codes as mcl_rpc_client_open().
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_client_over(mcl_rpc_client **cp, mcl_pstream *ps,
                                    const mcl_rpc_client_options *options, char *errbuf,
                                    size_t errlen);

/** The service's name and description ("" when none). Owned by @p c. @since 0.3 */
MCL_API const char *mcl_rpc_client_service_name(const mcl_rpc_client *c);
MCL_API const char *mcl_rpc_client_service_doc(const mcl_rpc_client *c);
/** The service's methods (built-in ones included), in id order. @since 0.3 */
MCL_API size_t mcl_rpc_client_nmethods(const mcl_rpc_client *c);
MCL_API const mcl_rpc_method_info *mcl_rpc_client_method_at(const mcl_rpc_client *c, size_t i);
/** A method by name or by id; NULL when the service has none. @since 0.3 */
MCL_API const mcl_rpc_method_info *mcl_rpc_client_method(const mcl_rpc_client *c, const char *name);
MCL_API const mcl_rpc_method_info *mcl_rpc_client_method_by_id(const mcl_rpc_client *c,
                                                               uint32_t id);
/** The largest encoded arguments the service accepts. @since 0.3 */
MCL_API size_t mcl_rpc_client_max_args(const mcl_rpc_client *c);
/** The client's stream (for its counters, mcl_pstream_stats()). Owned by @p c. @since 0.3 */
MCL_API mcl_pstream *mcl_rpc_client_stream(const mcl_rpc_client *c);

/**
 * Check @p args (NULL: none) against method @p m's schema without sending anything.
 * @param[out] field  optional: the field refused (a pointer into @p args or @p m; "" if none).
 * @retval MCL_OK @retval MCL_ETYPE (a field of the wrong kind, not declared, or @p args not a
 * map) @retval MCL_EMISSING (a required field is absent) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_check(const mcl_rpc_method_info *m, const mcl_value *args,
                              const char **field, char *errbuf, size_t errlen);

/**
 * Call @p method (a name, or "#ID") with @p args (a map; NULL: none) and wait for the result,
 * at most @p timeout_ms (0: the default; -1: no deadline). Arguments that break the schema are
 * refused before sending: *out then has INVALID_ARGUMENT (or UNIMPLEMENTED for a method the
 * service does not have, RESOURCE_EXHAUSTED for arguments too large) with local set.
 * @param[out] out  the result (any status): mcl_rpc_result_free().
 * @retval MCL_OK (*out set) @retval MCL_ESTATE (from the driving thread) @retval MCL_EINVAL
 * @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_call(mcl_rpc_client *c, const char *method, const mcl_value *args,
                             int timeout_ms, mcl_rpc_result **out);
/** Release a result of mcl_rpc_call(); NULL-safe. @since 0.3 */
MCL_API void mcl_rpc_result_free(mcl_rpc_result *r);

/**
 * Call method @p m without waiting: @p cb is called exactly once when it ends (on the driving
 * thread). Arguments that break the schema are refused here and nothing is sent:
 * mcl_rpc_last_error() then says why, and @p cb is not called.
 * @param[out] call_id  optional: the call's id, for mcl_rpc_cancel() (never 0).
 * @retval MCL_OK @retval MCL_ETYPE, MCL_EMISSING (schema) @retval MCL_EMSGSIZE (arguments too
 * large) @retval MCL_EAGAIN (the send queue is full) @retval MCL_ESTATE (the service is shutting
 * down, or this client closing) @retval MCL_ECLOSED @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_submit(mcl_rpc_client *c, const mcl_rpc_method_info *m,
                               const mcl_value *args, int timeout_ms, mcl_rpc_done_cb cb,
                               void *user, uint64_t *call_id);

/**
 * As mcl_rpc_submit(), settling @p p: it resolves with an mcl_rpc_result (any status), which
 * belongs to the promise. Cancelling @p p cancels the call. Return codes as mcl_rpc_submit().
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_submit_promise(mcl_rpc_client *c, const mcl_rpc_method_info *m,
                                       const mcl_value *args, int timeout_ms, mcl_promise *p);

/**
 * Cancel call @p call_id: the service is told (its handler sees it), and the call completes at
 * once with CANCELLED. The service may have acted already.
 * @retval MCL_OK @retval MCL_ENOENT (it has ended already) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_rpc_cancel(mcl_rpc_client *c, uint64_t call_id);

/** Why the last mcl_rpc_submit() on this thread refused its call (thread-local; "" if none). @since 0.3 */
MCL_API const char *mcl_rpc_last_error(void);

/** Counters of a client. */
typedef struct mcl_rpc_client_counters {
    uint64_t calls;      /**< submitted (sent) */
    uint64_t refused;    /**< refused before sending (schema, size, unknown method) */
    uint64_t ok, errors; /**< completed OK / with another status */
    uint64_t timeouts, cancelled, disconnected;
    uint64_t in_flight; /**< sent, not yet completed: 0 when idle, whatever happened */
} mcl_rpc_client_counters;
/** Read the client's counters (thread-safe). @since 0.3 */
MCL_API mcl_err mcl_rpc_client_stats(const mcl_rpc_client *c, mcl_rpc_client_counters *st);

/**
 * Release the client; NULL-safe; not from a callback. A client that dialled its stream closes it
 * in order (at most @p timeout_ms, 0: 5 s), and calls still in flight complete DISCONNECTED
 * before this returns. A client made with mcl_rpc_client_over() only lets go of the caller's
 * stream: its calls still in flight complete when that stream answers or ends them, possibly
 * after this returns (their callbacks still run, once).
 * @since 0.3
 */
MCL_API void mcl_rpc_client_free(mcl_rpc_client *c, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
