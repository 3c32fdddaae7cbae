// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/broker.h
 * A channel broker (docs/broker.md): clients on packet-stream connections create channels,
 * write to them and read from them; the broker keeps a buffer per reader with its own overrun
 * policy, decimates per reader before sending, and tells writers whether anyone reads.
 *
 * Control calls are RPC methods of the broker (service "mcl.broker" on channel
 * MCL_BROKER_RPC_CHANNEL of each connection: `mcl-call --channel 0x4243 URL --list` shows
 * them); data travels
 * as one-way packet-stream messages on MCL_BROKER_DATA_CHANNEL, forwarded without re-encoding.
 *
 * Flow control: a writer may send only within the credit the broker grants it (frames,
 * absolute and cumulative); a reader acknowledges what its callbacks have taken, and the
 * broker keeps at most `window` frames in flight to it. What a reader has not yet been sent
 * waits in its buffer at the broker (`buffer` frames), where its policy decides what happens
 * when the buffer is full: RING (drop the oldest), DROP_NEW (drop the frame that came), BLOCK
 * (writers get no more credit until there is room: nothing is lost, writers wait), ERROR (the
 * subscription ends with an error). Every drop is counted per reader and per channel.
 *
 * Writer gating: a writer starts inactive and is told ACTIVE when its channel gets its first
 * reader and INACTIVE when the last one leaves or dies (its connection's heartbeat); a put on
 * an inactive writer is refused (MCL_EAGAIN) and never reaches the broker.
 *
 * Threads: a broker runs on a reactor thread of its own. A client dials its own connection and
 * runs on a reactor thread of its own: data and active callbacks run there, one at a time, with
 * no lock held; every other function may be called from any thread (the blocking ones not from
 * the callbacks: MCL_ESTATE).
 */
#ifndef MCL_BROKER_H
#define MCL_BROKER_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/rpc.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The packet-stream channels of a broker connection ('BC', 'BD'). */
#define MCL_BROKER_RPC_CHANNEL 0x4243u
#define MCL_BROKER_DATA_CHANNEL 0x4244u
/** The statistics channel every broker has and writes: while someone reads it, one msgpack map
 * every stats_ms (time_ns, clients, relayed, no_responder, temporary_removed, and channels: per
 * channel its counters and reader_stats: per reader sub, client, policy, buffer, offered, sent,
 * dropped, decimated, depth, high_water, bytes, in_flight). Read it like any channel (a reader
 * with max_rate or every decimates it). Nobody writes or deletes it. */
#define MCL_BROKER_STATS_CHANNEL "mcl.broker.stats"
/** The events channel, written by the broker: one msgpack map per event while someone reads
 * it: {time_ns, event, channel, private, lifetime_ms, client, reason}; event "created",
 * "adopted" (a kept channel whose creator left, created again by a client that now owns it)
 * or "removed" (deleted by its owner, its creator disconnected, or its lifetime ended: the
 * reason says which). Names and flags only, never keys. Nobody writes or deletes it.
 * @since 0.3 */
#define MCL_BROKER_EVENTS_CHANNEL "mcl.broker.events"

typedef struct mcl_broker mcl_broker;
typedef struct mcl_broker_client mcl_broker_client;

/** Broker options; all-zero means the defaults. */
typedef struct mcl_broker_options {
    unsigned max_channels;  /**< channels at once (0: 1024) */
    unsigned max_clients;   /**< connections at once (0: 256) */
    uint32_t max_buffer;    /**< largest reader buffer, in frames (0: 65536) */
    uint32_t max_window;    /**< frames in flight to a reader (0: 256) */
    uint32_t writer_credit; /**< frames a writer may have unaccepted (0: 256) */
    size_t max_frame;       /**< largest frame (0: 1 MiB) */
    int heartbeat_ms;       /**< a client silent this long is dead (0: 3000) */
    int stats_ms;           /**< the statistics channel's period (0: 1000) */
    size_t max_reader_bytes; /**< a reader's buffer is full at this many bytes too, whatever
                                  its frames (0: 64 MiB). Over its idle use, the broker's
                                  memory stays below the readers' buffers (each at most this),
                                  plus each BLOCK channel's writers' credit, plus 8 MiB per
                                  connection (its output and a packet being read; 4 MiB each,
                                  or max_frame + 64 if larger), plus about 1 KiB per channel,
                                  reader and client (docs/broker.md, Limits). */
} mcl_broker_options;

/**
 * A broker listening on @p url (tcp://HOST:PORT, port 0: any; unix://PATH; or zmq+tcp://,
 * zmq+ipc:// for CURVE), on a reactor thread of its own.
 * @retval MCL_OK @retval MCL_EURL @retval MCL_EADDRINUSE @retval MCL_EINVAL @retval MCL_ENOMEM
 * @retval MCL_ESYS
 * Ownership: the caller owns *bp; mcl_broker_free().
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_open(mcl_broker **bp, const char *url, const mcl_broker_options *o);
/** The URL it listens on (the port chosen). @since 0.3 */
MCL_API const char *mcl_broker_url(const mcl_broker *b);
/** Channels and connections now. @since 0.3 */
MCL_API size_t mcl_broker_channels(const mcl_broker *b);
MCL_API size_t mcl_broker_clients(const mcl_broker *b);
/**
 * Bridges between channels and the multicast (or any mcl) network, so the broker and the other
 * tools meet. Out: every frame of @p channel is republished on @p url with the channel's name as
 * its topic (a reader at the broker with a ring of 1000 frames; it keeps the channel's writers
 * active). In: every message received on @p url is a frame of @p channel (a multicast sender
 * cannot be held back: frames offered while nobody reads are counted as unread). The channel is
 * made (public, kept, multi-writer) if it does not exist. Until the broker is freed.
 * @retval MCL_OK @retval MCL_EURL @retval MCL_EINVAL @retval MCL_ENOMEM (and the errors of
 * opening a broadcaster or a listener)
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_bridge_out(mcl_broker *b, const char *channel, const char *url);
MCL_API mcl_err mcl_broker_bridge_in(mcl_broker *b, const char *url, const char *channel);

/** Stop, end every connection and release; NULL-safe. @since 0.3 */
MCL_API void mcl_broker_free(mcl_broker *b);

/* --- clients ------------------------------------------------------------------------------ */

/** Channel options of mcl_broker_create(); all-zero: public, one writer, no lifetime. */
typedef struct mcl_broker_channel_options {
    bool private_;          /**< not listed; reading and writing need @c key */
    const char *key;        /**< the key (private channels; NULL: none, then private_ is
                                 refused) */
    bool multi_writer;      /**< more than one writer (else the second is refused) */
    int lifetime_ms;        /**< a temporary channel: removed once nobody has read or written
                                 it for this long (0: never) */
    bool keep;              /**< keep it when its creator disconnects (else removed then) */
} mcl_broker_channel_options;

/** Overrun policies of a reader's buffer at the broker. */
typedef enum mcl_broker_policy {
    MCL_BROKER_RING = 0,     /**< drop the oldest */
    MCL_BROKER_DROP_NEW = 1, /**< drop the frame that came */
    MCL_BROKER_BLOCK = 2,    /**< hold the writers back (no credit) until there is room */
    MCL_BROKER_ERROR = 3,    /**< end the subscription with an error */
} mcl_broker_policy;

/** Reader options of mcl_broker_subscribe(); all-zero: 100 frames, RING, every frame. */
typedef struct mcl_broker_reader_options {
    uint32_t buffer;          /**< frames the broker buffers for this reader (0: 100) */
    mcl_broker_policy policy; /**< what a full buffer does */
    uint32_t every;           /**< deliver 1 of every N frames offered (0, 1: all) */
    double max_rate;          /**< deliver at most this many per second (0: no limit) */
    const char *key;          /**< a private channel's key */
    void (*on_end)(mcl_broker_client *c, uint32_t sub, uint64_t seq, void *user);
                              /**< a writer ended a transfer (mcl_broker_end_transfer()) after
                                   the channel's frame @p seq; marks are never decimated or
                                   dropped by a policy (NULL: not told); the subscribe's user */
    uint32_t window;          /**< frames in flight to this reader before it acknowledges (0:
                                   the broker's max_window; more is cut to it): a small window
                                   makes the buffer and its policy act sooner */
} mcl_broker_reader_options;

/** A frame for a reader: @p seq is the channel's number of the frame (frames it did not get,
 * dropped or decimated, show as gaps). @p data is borrowed for the call. */
typedef void (*mcl_broker_data_cb)(mcl_broker_client *c, uint32_t sub, uint64_t seq,
                                   const void *data, size_t len, void *user);
/** A subscription or a writer ended by the broker (its channel was deleted, or an ERROR
 * overrun): @p why says why. */
typedef void (*mcl_broker_ended_cb)(mcl_broker_client *c, uint32_t id, const char *why,
                                    void *user);
/** A writer became active (a reader exists) or inactive. */
typedef void (*mcl_broker_active_cb)(mcl_broker_client *c, uint32_t wid, bool active, void *user);

/** Client options; all-zero means the defaults. */
typedef struct mcl_broker_client_options {
    const char *name;     /**< shown in the broker's client list (NULL: "client") */
    int timeout_ms;       /**< control calls (0: 5000) */
    mcl_broker_ended_cb ended; /**< subscriptions and writers the broker ended */
    void *user;
} mcl_broker_client_options;

/**
 * Connect to the broker at @p url.
 * @retval MCL_OK @retval MCL_EURL @retval MCL_EUNREACH @retval MCL_ETIMEDOUT @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_connect(mcl_broker_client **cp, const char *url,
                                   const mcl_broker_client_options *o);

/**
 * Create channel @p name (1..255 bytes of UTF-8). This client owns it: only it deletes it.
 * @retval MCL_OK @retval MCL_EEXIST (the name is taken) @retval MCL_EINVAL @retval MCL_EAGAIN
 * (too many channels) @retval MCL_ETIMEDOUT @retval MCL_ECLOSED
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_create(mcl_broker_client *c, const char *name,
                                  const mcl_broker_channel_options *o);
/** Delete a channel this client created: its readers and writers are ended (ended callback).
 * @retval MCL_OK @retval MCL_ENOENT @retval MCL_EPERM (not the owner) @since 0.3 */
MCL_API mcl_err mcl_broker_delete(mcl_broker_client *c, const char *name);

/**
 * Read channel @p name: @p cb gets every frame the broker sends this reader (after its
 * decimation and overrun policy).
 * @param[out] sub  the subscription's id.
 * @retval MCL_OK @retval MCL_ENOENT @retval MCL_EPERM (wrong key) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_subscribe(mcl_broker_client *c, const char *name,
                                     const mcl_broker_reader_options *o, mcl_broker_data_cb cb,
                                     void *user, uint32_t *sub);
/** End a subscription: no callback for it after this returns. Not from a callback
 * (MCL_ESTATE). @since 0.3 */
MCL_API mcl_err mcl_broker_unsubscribe(mcl_broker_client *c, uint32_t sub);

/**
 * Write channel @p name. The writer starts inactive; @p cb (may be NULL) hears when it changes.
 * @retval MCL_OK @retval MCL_ENOENT @retval MCL_EPERM (wrong key) @retval MCL_EALREADY (a
 * single-writer channel has its writer)
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_writer(mcl_broker_client *c, const char *name, const char *key,
                                  mcl_broker_active_cb cb, void *user, uint32_t *wid);
/**
 * Put a frame. Does not block: MCL_EAGAIN when the writer is inactive (nobody reads: dropped
 * here, counted) or has no credit (the broker holds it back: try again).
 * @retval MCL_OK @retval MCL_EAGAIN @retval MCL_ENOENT (no such writer) @retval MCL_EMSGSIZE
 * @retval MCL_ECLOSED
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_put(mcl_broker_client *c, uint32_t wid, const void *data, size_t len);
/** As mcl_broker_put(), but waits at most @p timeout_ms (0: the client's timeout) for credit
 * (not for activity): MCL_ETIMEDOUT when none came. @since 0.3 */
MCL_API mcl_err mcl_broker_put_wait(mcl_broker_client *c, uint32_t wid, const void *data,
                                    size_t len, int timeout_ms);
/** Mark the end of a transfer: every reader of the channel is told (its on_end), in order with
 * the frames, whatever its decimation or policy. Needs no credit; an inactive writer's mark
 * goes nowhere (MCL_EAGAIN). @since 0.3 */
MCL_API mcl_err mcl_broker_end_transfer(mcl_broker_client *c, uint32_t wid);
/** Whether the writer is active now. @since 0.3 */
MCL_API bool mcl_broker_writer_active(mcl_broker_client *c, uint32_t wid);
/** Stop writing. @since 0.3 */
MCL_API mcl_err mcl_broker_writer_close(mcl_broker_client *c, uint32_t wid);

/** Counters of a client's reader or writer (thread-safe). */
typedef struct mcl_broker_counts {
    uint64_t frames; /**< delivered to the callback (reader) or put (writer) */
    uint64_t bytes;
    uint64_t refused_inactive; /**< writer: puts refused while inactive */
    uint64_t refused_credit;   /**< writer: puts refused for want of credit */
} mcl_broker_counts;
MCL_API mcl_err mcl_broker_counts_of(mcl_broker_client *c, uint32_t id, mcl_broker_counts *out);

/** The client's RPC client (its connection's control channel), for the broker's other
 * methods (broker.channels, broker.stats, broker.clients); owned by @p c. @since 0.3 */
MCL_API mcl_rpc_client *mcl_broker_rpc(mcl_broker_client *c);

/**
 * Offer @p svc to the broker's other clients under @p name: their calls reach it through the
 * broker (on a relay channel of this client's connection), its answers go back. @p svc must
 * outlive this client's connection, or be freed after mcl_broker_client_free().
 * @retval MCL_OK @retval MCL_EALREADY (another client serves that name) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_serve_rpc(mcl_broker_client *c, const char *name, mcl_rpc_service *svc);

/**
 * An RPC client of the service another client offers as @p name, through the broker: its
 * description, schemas checked before sending, deadlines and cancels work as on a direct
 * connection. A call whose responder disconnects ends at once with UNAVAILABLE ("no
 * responder"). The caller frees *out (mcl_rpc_client_free()) before mcl_broker_client_free().
 * @retval MCL_OK @retval MCL_ENOENT (nobody serves @p name: no responder) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_broker_rpc_client(mcl_broker_client *c, const char *name,
                                      mcl_rpc_client **out);

/** Disconnect and release; NULL-safe. Not from a callback. @since 0.3 */
MCL_API void mcl_broker_client_free(mcl_broker_client *c);

#ifdef __cplusplus
}
#endif
#endif
