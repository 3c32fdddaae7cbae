// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/stream.h
 * Byte and entity streams with credit flow control, read-ahead, seek and follow, over a
 * packet-stream connection (docs/streams.md).
 *
 * A *streamer* wraps a data source (an in-memory buffer, a file, a value iterator, a log, or
 * your own mcl_stream_source_ops) and is offered under a name on a packet-stream connection;
 * a *peer* opens that name and reads and/or writes through an mcl_stream handle. A byte
 * stream counts bytes; an entity stream counts elements, each one msgpack value. A streamer
 * serves one peer: every open gets its own (mcl_stream_server makes one per open).
 *
 * Flow control: the data side pushes only within the credit its reader granted, on two axes
 * (units in the context, pushes in the context), both absolute and cumulative, so a lost,
 * duplicated or reordered credit message cannot stall or overrun a stream; credit is re-sent
 * on an idle heartbeat. A reader therefore never holds more than its window plus one push.
 *
 * Contexts: every read or write start, seek and truncate opens a new context with a new id;
 * pushes and credit of an older context are dropped, so nothing read before a seek is
 * delivered after it. A context error (a seek outside the data: MCL_ERANGE; a source error:
 * MCL_ESTATE with mcl_stream_error()) ends that context only: seek elsewhere and go on. A
 * stream failure (a protocol violation, the connection's end) ends the stream: every call says
 * MCL_ECLOSED, mcl_stream_error() says why.
 *
 * Threads: a stream and its streamers are driven by the reactor that drives their packet
 * stream; observers and source operations run there, never with a lock held. The blocking
 * calls (recv, read, send, write, tell, truncate, close) may be called from any other thread,
 * one reader and one writer at a time; from the reactor's thread they say MCL_ESTATE. Every
 * blocking call has a timeout.
 */
#ifndef MCL_STREAM_H
#define MCL_STREAM_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/pstream.h>
#include <mcl/reactor.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mcl_stream mcl_stream;
typedef struct mcl_stream_server mcl_stream_server;

/** The packet-stream channel streams use unless told otherwise ('ST'). */
#define MCL_STREAM_CHANNEL 0x5354u
/** An unknown or unbounded end. */
#define MCL_STREAM_NOEND UINT64_MAX

/** What a stream counts. */
typedef enum mcl_stream_kind {
    MCL_STREAM_BYTES = 1,    /**< bytes */
    MCL_STREAM_ENTITIES = 2, /**< elements, one msgpack value each */
} mcl_stream_kind;

/** Mode bits: what a source allows. */
enum {
    MCL_STREAM_READABLE = 0x0001,
    MCL_STREAM_WRITABLE = 0x0002,
    MCL_STREAM_SEEK_FWD = 0x0004,  /**< seek forward */
    MCL_STREAM_SEEK_BACK = 0x0008, /**< seek back */
    MCL_STREAM_BOUNDED_START = 0x0010,
    MCL_STREAM_BOUNDED_END = 0x0020, /**< the end is known (else unbounded: an iterator) */
    MCL_STREAM_MOVABLE_END = 0x0040, /**< the end moves (writes, a file still growing) */
    MCL_STREAM_TRUNCATE = 0x0080,    /**< truncate after a position */
    MCL_STREAM_SEEK_TIME = 0x0100,   /**< seek by time (logs) */
};

/** Where a seek counts from. */
typedef enum mcl_stream_whence {
    MCL_STREAM_ABS = 1,        /**< an absolute position */
    MCL_STREAM_FROM_START = 2, /**< from the start */
    MCL_STREAM_FROM_END = 3,   /**< from the end (offset <= 0) */
    MCL_STREAM_FROM_HERE = 4,  /**< from the reader's position, resolved locally */
    MCL_STREAM_AT_TIME = 5,    /**< the first element at or after a time (ns; SEEK_TIME) */
} mcl_stream_whence;

/** End-of-stream policy of read contexts. */
typedef enum mcl_stream_eos {
    MCL_STREAM_EOS_STOP = 0,   /**< a read at the end says MCL_EEOF */
    MCL_STREAM_EOS_FOLLOW = 1, /**< a read at the end waits for more (tail -f) */
} mcl_stream_eos;

/** Observer events (edge-triggered). */
enum {
    MCL_STREAM_CAN_READ = 0x01,  /**< data (or end-of-stream) became available */
    MCL_STREAM_CAN_WRITE = 0x02, /**< write credit went from none to some */
    MCL_STREAM_CLOSED = 0x04,    /**< the close handshake completed */
    MCL_STREAM_CTX_ERROR = 0x08, /**< the current context failed (seek elsewhere) */
    MCL_STREAM_FAILED = 0x10,    /**< the stream failed */
};

/** One element of an entity stream, or one run of bytes. */
typedef struct mcl_stream_elem {
    const void *data;
    size_t len;
} mcl_stream_elem;

/** Options of a peer; all-zero means the defaults. */
typedef struct mcl_stream_options {
    uint32_t channel;      /**< packet-stream channel (0: MCL_STREAM_CHANNEL) */
    unsigned require_mode; /**< mode bits the source must have: the open fails otherwise */
    bool no_readahead;     /**< credit only for what recv() asks (default: read ahead) */
    uint64_t window;       /**< read-ahead, in units (0: 4 MiB of bytes, or 4096 elements) */
    uint32_t max_pushes;   /**< pushes in flight (0: 16) */
    size_t max_push;       /**< largest push's data, in bytes (0: 256 KiB; at least 256); an
                                element needs its length + 4; the packet adds 32 + 24 */
    mcl_stream_eos eos;    /**< policy of the read contexts started (mcl_stream_set_eos()) */
    int timeout_ms;        /**< open, and blocking calls given 0 (0: 10000) */
    int heartbeat_ms;      /**< re-send credit when nothing came for this long (0: 250) */
    const char *params;    /**< text for the server's resolver (NULL: none), e.g. a filter */
} mcl_stream_options;

/** Counters of a stream (either side); fields are only ever appended. */
typedef struct mcl_stream_counters {
    uint64_t units_received, units_sent; /**< bytes or elements */
    uint64_t pushes_received, pushes_sent;
    uint64_t limits_sent, limits_received; /**< credit messages (heartbeats included) */
    uint64_t stale_dropped; /**< pushes or credit of an older context, or an older credit */
    uint64_t contexts;      /**< contexts opened */
    uint64_t buffered;      /**< units received, not yet read (now) */
    uint64_t buffered_bytes;
} mcl_stream_counters;

/**
 * Open the stream @p name at a location @p loc: a packet-stream URL then "/NAME"
 * (zmq+tcp://HOST:PORT/NAME, zmq+ipc:///path/sock/NAME is ambiguous: use @p name), or the URL
 * alone with @p name. The stream dials its own connection and drives it on its own reactor
 * thread. Blocks for the handshake (at most timeout_ms).
 * @retval MCL_OK @retval MCL_EURL @retval MCL_ENOENT (no such stream) @retval MCL_EPERM (the
 * source lacks a required mode) @retval MCL_EALREADY (that streamer has its peer) @retval
 * MCL_ETIMEDOUT @retval MCL_EUNREACH @retval MCL_ECLOSED @retval MCL_EPROTO @retval MCL_ENOMEM
 * Ownership: the caller owns *sp; mcl_stream_free().
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_open(mcl_stream **sp, const char *loc, const char *name,
                                const mcl_stream_options *options);

/**
 * Open the stream @p name on a connection you have, driven by @p r (mcl_pstream_attach(ps,
 * r)), which must be running while the stream lives (its functions run there). The stream holds
 * a reference on @p ps (mcl_pstream_ref()): if the connection ends or is freed first, the stream
 * fails (MCL_ECLOSED). Not from @p r's thread (it blocks for the handshake).
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_open_over(mcl_stream **sp, mcl_pstream *ps, mcl_reactor *r,
                                     const char *name, const mcl_stream_options *options);

/** Split a location "URL/NAME" into its URL and name (both NUL-terminated, truncated to
 * their sizes): MCL_EURL when there is no name. @since 0.3 */
MCL_API mcl_err mcl_stream_split_location(const char *loc, char *url, size_t urlsize, char *name,
                                          size_t namesize);

/** The source's kind, mode bits, and its description (key=value lines; owned by @p s). @since
 * 0.3 */
MCL_API mcl_stream_kind mcl_stream_kind_of(const mcl_stream *s);
MCL_API unsigned mcl_stream_mode(const mcl_stream *s);
MCL_API const char *mcl_stream_info(const mcl_stream *s);

/**
 * Read 1..@p max bytes (byte streams) into @p buf, waiting at most @p timeout_ms (0: the
 * default; -1: forever) for the first. A read with no context starts one here.
 * @param[out] got  bytes read.
 * @retval MCL_OK (@p got >= 1) @retval MCL_EEOF (the end, with EOS_STOP) @retval MCL_ETIMEDOUT
 * @retval MCL_ERANGE (the context's position is outside the data: seek elsewhere)
 * @retval MCL_ESTATE (a context error, or a call from the reactor's thread) @retval MCL_ENOTSUP
 * (not readable, or an entity stream) @retval MCL_ECLOSED (failed or closed) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_recv(mcl_stream *s, void *buf, size_t max, size_t *got, int timeout_ms);

/**
 * Read 1..@p max elements (entity streams). Each out[i] points into the stream's buffer and
 * stays valid until the next recv, read, seek or free of @p s. As mcl_stream_recv().
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_recv_elems(mcl_stream *s, mcl_stream_elem *out, size_t max, size_t *got,
                                      int timeout_ms);

/**
 * Read exactly @p n bytes, or fewer at the end (MCL_OK with *got < n; MCL_EEOF when none at
 * all). @p timeout_ms bounds the whole call.
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_read(mcl_stream *s, void *buf, size_t n, size_t *got, int timeout_ms);

/**
 * Send bytes (byte streams) or elements (entity streams: each elems[i] one msgpack value)
 * within the write credit: it may take part of what it is given and says how much in
 * *accepted (units). It waits at most @p timeout_ms for credit for the first unit. A send with
 * no write context starts one at the position of the last seek (else at the end).
 * "Accepted" means sent, not stored: mcl_stream_flush() waits until the source has it.
 * @retval MCL_OK (*accepted >= 1) @retval MCL_ETIMEDOUT @retval MCL_ERANGE @retval MCL_ESTATE
 * @retval MCL_ENOTSUP (not writable) @retval MCL_EMSGSIZE (an element larger than max_push)
 * @retval MCL_ECLOSED @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_send(mcl_stream *s, const void *data, size_t len, size_t *accepted,
                                int timeout_ms);
MCL_API mcl_err mcl_stream_send_elems(mcl_stream *s, const mcl_stream_elem *elems, size_t n,
                                      size_t *accepted, int timeout_ms);
/** Send everything (loops on mcl_stream_send()), at most @p timeout_ms in all. @since 0.3 */
MCL_API mcl_err mcl_stream_write(mcl_stream *s, const void *data, size_t len, int timeout_ms);
/** Wait until the source has taken every unit sent so far (its write credit covers them).
 * @since 0.3 */
MCL_API mcl_err mcl_stream_flush(mcl_stream *s, int timeout_ms);

/**
 * Seek: the next context starts at the position given (FROM_HERE resolved against the
 * reader's position). Reading: a new read context starts at once (read-ahead resumes there);
 * what was buffered is dropped. Does not wait: a position outside the data shows as MCL_ERANGE
 * from the next recv (or mcl_stream_tell()).
 * @retval MCL_OK @retval MCL_ENOTSUP (the mode has no such seek) @retval MCL_ECLOSED
 * @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_seek(mcl_stream *s, mcl_stream_whence whence, int64_t offset);

/** The end-of-stream policy of the read contexts started from now on (a seek to here
 * applies it now). @since 0.3 */
MCL_API mcl_err mcl_stream_set_eos(mcl_stream *s, mcl_stream_eos eos);

/**
 * The absolute position of the next unit recv() returns (reading) or send() writes, and the
 * data's start and end (MCL_STREAM_NOEND: unknown or unbounded), waiting at most
 * @p timeout_ms for the streamer to say where a new context starts. Any out pointer may be NULL.
 * @retval MCL_OK @retval MCL_ETIMEDOUT @retval MCL_ERANGE @retval MCL_ESTATE @retval MCL_ECLOSED
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_tell(mcl_stream *s, uint64_t *pos, uint64_t *start, uint64_t *end,
                                int timeout_ms);

/** Truncate the data at the write position (TRUNCATE mode), waiting for the streamer.
 * @since 0.3 */
MCL_API mcl_err mcl_stream_truncate(mcl_stream *s, int timeout_ms);

/**
 * Observe @p events (MCL_STREAM_CAN_READ, ...): @p cb runs on the reactor's thread, with no
 * lock held, each time one of them happens (edge-triggered: CAN_READ when data arrives for an
 * empty buffer, CAN_WRITE when credit comes after none). One observer per stream; NULL removes.
 * @since 0.3
 */
typedef void (*mcl_stream_observer)(mcl_stream *s, unsigned events, void *user);
MCL_API mcl_err mcl_stream_observe(mcl_stream *s, unsigned events, mcl_stream_observer cb,
                                   void *user);

/** Why the context or the stream failed ("" when neither); owned by @p s, valid until its next
 * call. @since 0.3 */
MCL_API const char *mcl_stream_error(mcl_stream *s);
/** Counters (thread-safe). @since 0.3 */
MCL_API mcl_err mcl_stream_stats(const mcl_stream *s, mcl_stream_counters *c);

/**
 * Orderly close: close, then wait for the streamer's closed (it has closed its source), at
 * most @p timeout_ms (0: the default). The handle stays valid until mcl_stream_free().
 * @retval MCL_OK @retval MCL_ETIMEDOUT @retval MCL_ECLOSED (failed before) @retval MCL_ESTATE
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_close(mcl_stream *s, int timeout_ms);
/** Release (fails the stream at once if still open); NULL-safe. Not from its observer. @since
 * 0.3 */
MCL_API void mcl_stream_free(mcl_stream *s);

/* --- the data side ------------------------------------------------------------------------- */

/**
 * Where a source's read puts what it reads: call mcl_stream_sink_put() once per element
 * (entity streams) or for any run of bytes (byte streams).
 */
typedef struct mcl_stream_sink mcl_stream_sink;
/**
 * Append one element or run of bytes (copied). @retval MCL_OK @retval MCL_EMSGSIZE (no room in
 * this push: return, and the rest comes in the next read; a single element larger than a push
 * fails the context) @retval MCL_ENOMEM
 */
MCL_API mcl_err mcl_stream_sink_put(mcl_stream_sink *k, const void *data, size_t len);
/** What @p k still takes: bytes (byte streams: also units), or the bytes an element may have
 * (entity streams: 0 when no element fits, or the unit budget is used up). @since 0.3 */
MCL_API size_t mcl_stream_sink_room(const mcl_stream_sink *k);

/**
 * A data source. Every operation runs on the reactor's thread, one at a time. Optional
 * operations may be NULL (the mode must not promise them).
 */
typedef struct mcl_stream_source_ops {
    mcl_stream_kind kind;
    /** The mode (MCL_STREAM_* bits); called once, at open. */
    unsigned (*mode)(void *self);
    /** The data's start and end now (end: MCL_STREAM_NOEND when unbounded or unknown). */
    void (*bounds)(void *self, uint64_t *start, uint64_t *end);
    /** Read from @p pos at most @p max units into @p k (byte sources: at most
     * mcl_stream_sink_room() bytes). MCL_OK with nothing put: at the end for now (follow polls
     * again; before the end that bounds() says, a context error, never a false end);
     * MCL_ERANGE: @p pos is outside the data; another error: a context error. */
    mcl_err (*read)(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k);
    /** Write @p n units at @p pos (byte streams: one run, elems[0]; entity streams: @p n
     * elements); all or an error. */
    mcl_err (*write)(void *self, uint64_t pos, const mcl_stream_elem *elems, size_t n);
    /** Drop everything from @p pos on. */
    mcl_err (*truncate)(void *self, uint64_t pos);
    /** The position of the first unit at or after @p time_ns (SEEK_TIME). */
    mcl_err (*seek_time)(void *self, int64_t time_ns, uint64_t *pos);
    /** A description (key=value lines), copied at open; NULL: none. */
    const char *(*info)(void *self);
    /** Release the source (the stream closed or failed). */
    void (*close)(void *self);
} mcl_stream_source_ops;

/** A source: its operations and their state. */
typedef struct mcl_stream_source {
    const mcl_stream_source_ops *ops;
    void *self;
} mcl_stream_source;

/** An in-memory source: a copy of @p data (bytes), readable and seekable; with @p writable
 * also writable, truncatable, its end movable. @since 0.3 */
MCL_API mcl_err mcl_stream_source_memory(mcl_stream_source *src, const void *data, size_t len,
                                         bool writable);
/** An in-memory entity source: a copy of @p n elements (each one msgpack value). @since 0.3 */
MCL_API mcl_err mcl_stream_source_elems(mcl_stream_source *src, const mcl_stream_elem *elems,
                                        size_t n, bool writable);
/** A file (bytes): read, seek; with @p writable (opened read-write, created if missing) write
 * and truncate; its end moves (a file that grows can be followed). @since 0.3 */
MCL_API mcl_err mcl_stream_source_file(mcl_stream_source *src, const char *path, bool writable);
/**
 * A value iterator (entity stream, read-only, unbounded, no seek): @p next puts the next
 * element(s) into @p k and returns MCL_OK, MCL_EEOF at the end, or an error. @p done (may be
 * NULL) releases @p user at close.
 * @since 0.3
 */
typedef mcl_err (*mcl_stream_next_fn)(void *user, mcl_stream_sink *k);
MCL_API mcl_err mcl_stream_source_iterator(mcl_stream_source *src, mcl_stream_next_fn next,
                                           void (*done)(void *user), void *user);

/**
 * What a server does when a peer opens @p name with @p params: fill @p src (MCL_OK), or say
 * MCL_ENOENT (no such stream), MCL_EPERM, MCL_EALREADY... (the peer's open fails with it).
 * On the reactor's thread.
 */
typedef mcl_err (*mcl_stream_resolve_fn)(void *user, const char *name, const char *params,
                                         mcl_stream_source *src);
/** The names a server lists (mcl_stream_list()): call @p add for each, with an optional
 * description (key=value lines). */
typedef void (*mcl_stream_list_fn)(void *user,
                                   void (*add)(void *ctx, const char *name, const char *info),
                                   void *ctx);

/** Server options; all-zero means the defaults. */
typedef struct mcl_stream_server_options {
    uint32_t channel;     /**< 0: MCL_STREAM_CHANNEL */
    uint64_t max_window;  /**< clamp on a peer's read-ahead, in bytes (0: 16 MiB) */
    uint32_t max_pushes;  /**< clamp on pushes in flight (0: 64) */
    size_t max_push;      /**< clamp on a push's data bytes (0: 1 MiB) */
    unsigned max_streams; /**< streams open at once per connection (0: 64) */
    int follow_ms;        /**< how often a following context polls its source (0: 50) */
    int heartbeat_ms;     /**< re-send write credit when idle (0: 250) */
} mcl_stream_server_options;

/**
 * A stream server: serves sources by name on packet-stream connections (mcl_stream_serve())
 * or on a URL of its own (mcl_stream_server_listen()). Each open calls @p resolve for a new
 * source, owned by that stream until it closes.
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_server_new(mcl_stream_server **sp, mcl_stream_resolve_fn resolve,
                                      mcl_stream_list_fn list, void *user,
                                      const mcl_stream_server_options *options);
/**
 * Offer one source under @p name: the first peer that opens it gets it, later ones are
 * refused (MCL_EALREADY at their open). The server owns @p src from now on (also on error).
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_server_offer(mcl_stream_server *srv, const char *name,
                                        const mcl_stream_source *src);
/** Serve on @p ps, driven by @p r (mcl_pstream_attach()), which must be running. Until the
 * connection ends or the server is freed; holds a reference on @p ps meanwhile. One server per
 * (connection, channel): another says MCL_EALREADY. @since 0.3 */
MCL_API mcl_err mcl_stream_serve(mcl_stream_server *srv, mcl_pstream *ps, mcl_reactor *r);
/** Listen on @p url (mcl_pstream_server_open()) and serve every connection, on a reactor
 * thread of the server's own. mcl_stream_server_url() says where. @since 0.3 */
MCL_API mcl_err mcl_stream_server_listen(mcl_stream_server *srv, const char *url);
MCL_API const char *mcl_stream_server_url(const mcl_stream_server *srv);
/** Streams open now. @since 0.3 */
MCL_API size_t mcl_stream_server_streams(const mcl_stream_server *srv);
/** Fail every stream, stop listening, close every source and release; NULL-safe. Not from the
 * reactor's thread. @since 0.3 */
MCL_API void mcl_stream_server_free(mcl_stream_server *srv);

/**
 * List the names a server offers (its list function), with their descriptions: @p cb is
 * called once per name, on the calling thread. At most @p timeout_ms.
 * @since 0.3
 */
MCL_API mcl_err mcl_stream_list(const char *url, void (*cb)(void *user, const char *name,
                                                            const char *info),
                                void *user, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
