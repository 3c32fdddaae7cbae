// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/raw.h
 * Raw broadcasters and listeners: topic + bytes over a connection.
 *
 * A broadcaster has a random 64-bit publisher id and numbers its messages 0, 1, 2, ...; over
 * UDP a message larger than one datagram is split into fragments (sent with one sendmmsg per
 * train) and reassembled by listeners. Over ZeroMQ (zmq+ URLs, docs/zmq.md) every message is
 * one frame with the same envelope; topic filters are applied by the publisher, and loss is
 * counted per (publisher, topic). Over inproc:// (include/mcl/connection.h) broadcasters and
 * listeners of one process share datagrams through memory, fragmented as over UDP, with the
 * faults their URLs ask for. Listeners count what they cannot deliver: sequence gaps
 * (lost), duplicates, reordering, malformed datagrams, expired partial messages, and datagrams
 * the kernel dropped because the receive buffer was full.
 *
 * Threads: a broadcaster may publish from several threads at once. A listener is used by one
 * thread at a time, except that mcl_raw_listener_stats(), mcl_raw_listener_publishers(),
 * mcl_raw_listener_subscribe(), mcl_raw_listener_unsubscribe() and the per-topic statistics
 * (mcl_raw_listener_topics() and the functions after it) may be called from any thread
 * (also while the listener thread runs, and from inside a callback).
 *
 * Lifetime: *_open() allocates and opens; *_close() releases the socket (and stops the listener
 * thread) but keeps the handle, so a second close reports MCL_ECLOSED and a publish after close
 * reports MCL_ECLOSED; *_free() closes if needed and releases the handle.
 *
 * fork(): a child inherits copies of the parent's broadcasters and listeners (and queued
 * listeners, mcl/queued.h), whose threads, sockets, group memberships and publisher identity
 * stay the parent's. In the child such a handle may only be closed and freed, which touches
 * nothing of the parent's: no thread is signalled or joined, nothing is sent (no goodbye
 * heartbeat, no pending batch), no socket option is changed, no lock of the parent's threads is
 * waited for; only the child's memory and its copies of udp descriptors are released (the
 * socket and its memberships stay with the parent's descriptor; with zmq the copies stay open
 * until the child exits or execs: they are close-on-exec). Any other use of an inherited handle in the child is
 * undefined. The child may open handles of its own, which work as in any process (udp, inproc;
 * zmq after a new context, made for it).
 */
#ifndef MCL_RAW_H
#define MCL_RAW_H

#include <mcl/connection.h>
#include <mcl/err.h>
#include <mcl/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Wait forever in mcl_raw_listener_recv(). */
#define MCL_WAIT_FOREVER (-1)

typedef struct mcl_raw_broadcaster mcl_raw_broadcaster;
typedef struct mcl_raw_listener mcl_raw_listener;

/**
 * One received message, as seen by a callback or returned by mcl_raw_listener_recv().
 * The library fills it; fields are only ever appended in later versions (never allocate one).
 * Ownership: borrowed; valid during the callback, or until the next recv/dispatch/close on
 * the same listener. Copy what you keep (mcl_raw_msg_dup()).
 */
typedef struct mcl_raw_msg {
    const char *topic;        /**< NUL-terminated; "" when published without a topic. */
    size_t topic_len;         /**< strlen(topic). */
    const void *payload;      /**< the bytes (not NUL-terminated; may be NULL when len is 0). */
    size_t len;               /**< payload length. */
    uint64_t publisher;       /**< random id of the sending broadcaster. */
    uint64_t seq;             /**< that broadcaster's sequence number (0, 1, 2, ...). */
    int64_t recv_realtime_ns; /**< receive time, CLOCK_REALTIME (kernel timestamp when available). */
    int64_t recv_mono_ns;     /**< receive time, CLOCK_MONOTONIC. */
    int sender_family;        /**< 4 or 6 (0 if unknown). */
    uint8_t sender_addr[16];  /**< sender address: 4 bytes (IPv4) or 16 (IPv6), network order. */
    uint16_t sender_port;     /**< sender UDP port. */
} mcl_raw_msg;

/**
 * Format the sender of @p msg as "ADDR:PORT" or "[ADDR]:PORT" into @p buf.
 * @retval MCL_OK @retval MCL_EINVAL (NULL argument, or @p len too small)
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_msg_sender(const mcl_raw_msg *msg, char *buf, size_t len);

/**
 * Copy a message (topic and payload included) into one allocation.
 * Ownership: the caller owns *copyp and releases it with mcl_raw_msg_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_msg_dup(mcl_raw_msg **copyp, const mcl_raw_msg *msg);

/** Release a copy made by mcl_raw_msg_dup(); NULL-safe. @since 0.1 */
MCL_API void mcl_raw_msg_free(mcl_raw_msg *msg);

/* ------------------------------------------------------------------------------------------ */
/* Broadcaster                                                                                */
/* ------------------------------------------------------------------------------------------ */

/** Counters of a broadcaster (cumulative since open). Fields are only ever appended. */
typedef struct mcl_broadcaster_stats {
    uint64_t messages;  /**< messages sent, or queued in a batch still to be sent. */
    uint64_t bytes;     /**< their payload bytes. */
    uint64_t datagrams; /**< datagrams sent (fragments count one each). */
    uint64_t errors;    /**< messages whose send failed after validation: failed publish
                             calls, plus every record of a batch whose datagram the kernel
                             refused (those publish calls had already returned MCL_OK; the
                             records move from `messages` to `errors`). */
    uint64_t subscribers;   /**< zmq, inproc: listeners connected and subscribed, as last seen
                                 (read every 256 publishes and by wait_for_subscribers);
                                 udp: 0. */
    uint64_t auth_failures; /**< zmq: handshakes that failed (wrong or missing CURVE key, or
                                 CURVE on one side only; a client retries every 100 ms). Each
                                 failing peer is also logged, once (docs/zmq.md). */
    uint64_t heartbeats;    /**< heartbeats sent (connection option heartbeat=; not counted in
                                 `datagrams`). @since 0.3 */
    uint64_t peers_dropped; /**< zmq: subscribers disconnected by the broadcaster (one that
                                 took nothing for `stall` ms while a lossless publish waited,
                                 or whose subscriptions passed the cap); each is also logged.
                                 As last seen, like `subscribers`. @since 0.3 */
    uint64_t compressed;     /**< of `messages`: those sent compressed (connection option
                                  `compress=`: at least `compress_min` bytes, and smaller
                                  compressed). @since 0.4 */
    uint64_t compressed_in;  /**< their bytes before compression. @since 0.4 */
    uint64_t compressed_out; /**< their bytes as sent (each with its 6-byte envelope, without
                                  mcl's datagram headers). @since 0.4 */
} mcl_broadcaster_stats;

/**
 * Open a broadcaster on @p conn.
 * @param[out] bp     receives the broadcaster; NULL on failure.
 * @param[in]  conn   the connection (copied; may be freed after the call). Its port must not be 0.
 * @param[in]  topic  default topic for mcl_raw_broadcaster_publish() with a NULL topic; NULL or
 *                    "" means no topic. Copied.
 * @retval MCL_OK
 * @retval MCL_EINVAL  NULL @p bp or @p conn, port 0, or a topic longer than MCL_TOPIC_MAX.
 * @retval MCL_ENODEV  the interface does not exist or has no usable address.
 * @retval MCL_ENOMEM, MCL_ESYS, MCL_EPERM  socket creation or configuration failed (the log
 *                    callback says which call).
 * Ownership: the caller owns *bp; release it with mcl_raw_broadcaster_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_broadcaster_open(mcl_raw_broadcaster **bp, const mcl_connection *conn,
                                         const char *topic);

/**
 * Publish @p len bytes at @p data on @p topic (NULL: the default topic).
 * UDP: messages larger than one datagram are fragmented; blocks only while the socket's send
 * buffer is full. zmq (lossless, the default): blocks while a subscriber's queue is full, for
 * at most the connection's `timeout`; then MCL_ETIMEDOUT (MCL_EAGAIN with timeout=0), the
 * message went to no one and used no sequence number. zmq with drop=1: never blocks. Thread-safe: several threads may publish at once; they take turns, so
 * messages leave in sequence-number order and fragments of concurrent messages never mix.
 * On a batching connection a message that fits one datagram is queued and the call returns
 * MCL_OK; a later send failure of its batch is counted in the `errors` statistic, and the
 * next mcl_raw_broadcaster_flush() or mcl_raw_broadcaster_close() returns the first such
 * failure since the previous one did.
 * zmq coalescing (`coalesce=1`, the default without `batch=`): a message that finds every
 * frame sent before it taken by libzmq's I/O thread goes out at once as its own frame; one
 * published while earlier frames still wait is held and packed with those that follow into
 * one frame, sent when they have drained (by the next publish), when it is full or the topic
 * changes, on flush, close, a heartbeat or forward, and at the latest 100 us after the first
 * of them (by the broadcaster's mcl-batcher thread). Held messages keep their numbers and
 * order. When sending held messages finds a lossless queue still full after `timeout`, the
 * publish that tried fails as an unbatched one would (its own message is not taken and uses
 * no number) and the held messages stay held; any other failure to send them is counted in
 * `errors` and returned by the publish that tried, or (from the mcl-batcher thread) by the
 * next publish, flush or close.
 * @retval MCL_OK
 * @retval MCL_EINVAL    NULL @p b, NULL @p data with @p len > 0, or a bad topic (too long).
 * @retval MCL_EMSGSIZE  @p len exceeds the connection's maxmsg.
 * @retval MCL_ECLOSED   the broadcaster was closed.
 * @retval MCL_ETIMEDOUT, MCL_EAGAIN  zmq: a subscriber stayed full (see above).
 * @retval MCL_ENOMEM, MCL_ENODEV, MCL_ESYS  the kernel refused the datagrams (for a
 *                       fragmented message, some fragments may have left).
 * Ownership: @p data and @p topic are only read during the call.
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_broadcaster_publish(mcl_raw_broadcaster *b, const char *topic,
                                            const void *data, size_t len);

/**
 * Republish a received message with its original publisher id and sequence number (what a
 * bridge does: listeners on the far side then count loss and duplicates per original
 * publisher, and a message that arrives twice, by two paths, is recognised as a duplicate).
 * The message's topic is used as is (not the broadcaster's default). On a batching connection
 * what waits is sent first and the forwarded message goes out alone (a datagram carries one
 * publisher id). Errors and thread-safety as mcl_raw_broadcaster_publish(); the broadcaster's
 * own sequence is not affected.
 * Ownership: @p msg is only read during the call.
 * @since 0.2
 */
MCL_API mcl_err mcl_raw_broadcaster_forward(mcl_raw_broadcaster *b, const mcl_raw_msg *msg);

/**
 * Wait until at least @p count listeners are connected and subscribed to a zmq broadcaster
 * (ZeroMQ's "slow joiner": messages published before a listener's subscription has arrived
 * are not delivered to it), or open on an inproc:// group. Every listener counts once,
 * whatever its topic filter.
 * @param timeout_ms  how long to wait (MCL_WAIT_FOREVER: no limit).
 * @retval MCL_OK         that many subscribers (or more) are known.
 * @retval MCL_ETIMEDOUT  fewer after @p timeout_ms.
 * @retval MCL_EAUTH      fewer after @p timeout_ms, and handshakes failed since the
 *                        broadcaster opened or the previous call that failed (a wrong or
 *                        missing CURVE key on one side, or a client not in curve_clients; the
 *                        log callback named each failing peer once as it failed: this
 *                        return itself is logged at debug level only).
 * @retval MCL_ENOTSUP    a udp:// broadcaster (multicast has no subscriptions; logged at
 *                        debug level only, so tools may ask to find out).
 * @retval MCL_ECLOSED @retval MCL_EINVAL
 * Thread-safe (publishers on other threads are delayed by at most 20 ms at a time).
 * @since 0.2
 */
MCL_API mcl_err mcl_raw_broadcaster_wait_for_subscribers(mcl_raw_broadcaster *b, size_t count,
                                                         int timeout_ms);

/**
 * Send now what a batching broadcaster (connection option `batch=`) holds. Messages published
 * to a batching broadcaster wait, packed into one datagram with each keeping its own sequence
 * number, until the datagram is full, `batch` microseconds after the first of them, this call,
 * or close; a message that must be fragmented first sends what waits. A coalescing zmq
 * broadcaster (see mcl_raw_broadcaster_publish()) sends what it holds; a lossless queue still
 * full after `timeout` returns MCL_ETIMEDOUT (MCL_EAGAIN with timeout=0) and keeps it held.
 * Without batching this does nothing. Thread-safe.
 * @retval MCL_OK @retval MCL_ECLOSED @retval MCL_EINVAL
 * @retval MCL_ETIMEDOUT, MCL_EAGAIN  coalescing zmq: held messages did not fit (see above).
 * @retval MCL_ENOMEM, MCL_ENODEV, MCL_ESYS  this batch, or one sent earlier (when full or by the
 *         timer) since the previous flush/close, could not be sent; its records are counted in
 *         `errors`.
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_broadcaster_flush(mcl_raw_broadcaster *b);

/**
 * Close the socket (after sending what a batching broadcaster holds); the handle stays valid
 * for queries and free.
 * @retval MCL_OK       it was open and is now closed.
 * @retval MCL_ECLOSED  it was already closed.
 * @retval MCL_ENOMEM, MCL_ENODEV, MCL_ESYS  a batch since the previous flush, or the last one,
 *                      could not be sent (its records are counted in `errors`); the
 *                      broadcaster is closed all the same.
 * @retval MCL_EINVAL   @p b is NULL.
 * Not to be called while another thread publishes on @p b.
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_broadcaster_close(mcl_raw_broadcaster *b);

/** Whether @p b is open. @since 0.1 */
MCL_API bool mcl_raw_broadcaster_is_open(const mcl_raw_broadcaster *b);

/** Close if open and release; NULL-safe. @since 0.1 */
MCL_API void mcl_raw_broadcaster_free(mcl_raw_broadcaster *b);

/** The publisher id carried by every datagram of @p b. @since 0.1 */
MCL_API uint64_t mcl_raw_broadcaster_id(const mcl_raw_broadcaster *b);

/** The default topic ("" when none). Owned by @p b. @since 0.1 */
MCL_API const char *mcl_raw_broadcaster_topic(const mcl_raw_broadcaster *b);

/** The connection of @p b. Owned by @p b. @since 0.1 */
MCL_API const mcl_connection *mcl_raw_broadcaster_connection(const mcl_raw_broadcaster *b);

/** Read the counters (thread-safe). @retval MCL_OK @retval MCL_EINVAL @since 0.1 */
MCL_API mcl_err mcl_raw_broadcaster_stats(const mcl_raw_broadcaster *b,
                                          mcl_broadcaster_stats *st);

/* ------------------------------------------------------------------------------------------ */
/* Listener                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/**
 * A subscriber callback. Runs on the listener thread (mcl_raw_listener_start()) or on the
 * thread that calls mcl_raw_listener_dispatch(), with no library lock held. It may subscribe
 * and unsubscribe (itself included) and read stats; it must not close, free or stop the
 * listener (those return MCL_ESTATE from inside a callback).
 */
typedef void (*mcl_raw_cb)(const mcl_raw_msg *msg, void *user);

/** Listener counters (cumulative since open). Fields are only ever appended. */
typedef struct mcl_listener_stats {
    uint64_t messages;      /**< messages delivered (they passed the topic filter). */
    uint64_t bytes;         /**< payload bytes delivered. */
    uint64_t filtered;      /**< complete messages skipped by the topic filter. */
    uint64_t lost;          /**< messages missing from publishers' sequences (gaps). */
    uint64_t duplicates;    /**< datagrams repeating a message or fragment already received. */
    uint64_t reordered;     /**< messages that arrived after a later one of the same publisher. */
    uint64_t datagrams;     /**< datagrams read from the socket. */
    uint64_t malformed;     /**< datagrams rejected by the decoder (foreign, truncated, bad). */
    uint64_t expired;       /**< partial messages dropped after the `expire` timeout. */
    uint64_t evicted;       /**< partial messages dropped to respect the `partmem` cap. */
    uint64_t oversize;      /**< messages dropped because they exceed `maxmsg` or `partmem`. */
    uint64_t kernel_drops;  /**< datagrams the kernel dropped (receive buffer full); inproc:
                                 datagrams that did not fit the listener's queue. */
    uint64_t partial_count; /**< partial messages held now. */
    uint64_t partial_bytes; /**< memory held by partial messages now. */
    uint64_t publishers;    /**< publishers tracked now. */
    size_t rcvbuf;          /**< effective socket receive buffer in bytes (0 for zmq; inproc:
                                 the queue). */
    uint64_t auth_failures; /**< zmq: handshakes that failed (wrong or missing CURVE key, or
                                 CURVE on one side only; a client retries every 100 ms). Each
                                 failing peer is also logged, once (docs/zmq.md). */
    uint64_t heartbeats;    /**< heartbeats received (never delivered as messages). @since 0.3 */
    uint64_t lost_at_end;   /**< of `lost`: messages a heartbeat said were sent that never came
                                 (loss after a publisher's last received message). @since 0.3 */
    uint64_t auth_rejected; /**< datagrams dropped because they failed authentication: no
                                 trailer on a listener with `key=`, an unknown key, a wrong tag,
                                 or encrypted for a listener without the key (docs/security.md).
                                 @since 0.4 */
    uint64_t replayed;      /**< authenticated datagrams dropped as replays: seen before, older
                                 than the signer's window, or stamped more than `skew` away
                                 from this host's clock. @since 0.4 */
    uint64_t suspect;       /**< datagrams dropped as probably forged by the sequence tracking,
                                 with or without keys: a publisher id from another address than
                                 its own, or fragments contradicting a message that completed
                                 (docs/security.md). @since 0.4 */
    uint64_t compressed;    /**< of `messages`: those that came compressed (a broadcaster's
                                 `compress=`, docs/wire-format.md); `bytes` counts them as
                                 delivered, decompressed. @since 0.4 */
    uint64_t compressed_bytes; /**< those messages' bytes as they came (envelopes included):
                                 with `bytes`, the ratio achieved. @since 0.4 */
    uint64_t undecompressed; /**< compressed messages dropped because they could not be
                                 opened: an unknown codec or one this build lacks, a stream that
                                 does not decode to exactly the size it states (truncated,
                                 corrupted, a decompression bomb), or no memory for it. Their
                                 numbers are not marked received (they count as lost if nothing
                                 else comes). A message stating more than `maxmsg` is counted
                                 in `oversize` instead, never allocated. @since 0.4 */
} mcl_listener_stats;

/** Per-publisher counters, as seen by one listener. Fields are only ever appended. */
typedef struct mcl_publisher_stats {
    uint64_t publisher;      /**< the publisher id. */
    uint64_t messages;       /**< messages received from it (filtered ones included). */
    uint64_t bytes;          /**< payload bytes of those messages. */
    uint64_t lost;           /**< gaps in its sequence. */
    uint64_t duplicates;     /**< repeated datagrams. */
    uint64_t reordered;      /**< late messages. */
    uint64_t first_seq;      /**< first sequence number seen. */
    uint64_t last_seq;       /**< highest sequence number seen. */
    int64_t last_mono_ns;    /**< when it was last heard from (CLOCK_MONOTONIC). */
    int family;              /**< 4 or 6. */
    uint8_t addr[16];        /**< its address (network order). */
    uint16_t port;           /**< its UDP port. */
    /* From its heartbeats (connection option heartbeat=, docs/wire-format.md), @since 0.3: */
    char host[64];           /**< its host name ("" until a heartbeat is heard) */
    char program[64];        /**< its program name ("" until a heartbeat is heard) */
    uint32_t pid;            /**< its process id (0: unknown) */
    uint32_t heartbeat_ms;   /**< its heartbeat period (0: no heartbeat heard) */
    uint64_t heartbeats;     /**< heartbeats received from it */
    bool silent;             /**< it said goodbye (closed), or nothing came from it for the
                                  listener's `silent` (default 3) heartbeat periods */
    uint32_t topics;         /**< topics it says it has published */
    int64_t last_heartbeat_mono_ns; /**< when its last heartbeat came (CLOCK_MONOTONIC) */
} mcl_publisher_stats;

/**
 * Open a listener on @p conn that delivers the topics in @p topics.
 * @param[out] lp       receives the listener; NULL on failure.
 * @param[in]  conn     the connection (copied). Port 0 binds a kernel-chosen port; read it
 *                      back with mcl_raw_listener_url().
 * @param[in]  topics   topic filter: NULL or @p ntopics 0 delivers every topic. Otherwise an
 *                      entry is an exact topic ("imu"), a prefix pattern ending in '*'
 *                      ("imu/" followed by a star matches "imu/accel"; a lone star matches all), or "" for messages
 *                      published without a topic. Copied.
 * @retval MCL_OK
 * @retval MCL_EINVAL    NULL @p lp or @p conn, or a bad topic entry (NULL, too long).
 * @retval MCL_ENODEV    the interface does not exist, or the group cannot be joined on it.
 * @retval MCL_EADDRINUSE, MCL_ENOMEM, MCL_EPERM, MCL_ESYS  socket set-up failed (the log
 *                       callback says which call).
 * A receive buffer smaller than the connection's `rcvbuf` is not an error: the effective size
 * is in mcl_listener_stats.rcvbuf and a warning is logged.
 * Ownership: the caller owns *lp; release it with mcl_raw_listener_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_open(mcl_raw_listener **lp, const mcl_connection *conn,
                                      const char *const *topics, size_t ntopics);

/**
 * Stop the listener thread (if started), close the socket and drop partial messages. The
 * handle stays valid for stats and free.
 * @retval MCL_OK @retval MCL_ECLOSED (already closed) @retval MCL_EINVAL
 * @retval MCL_ESTATE  called from inside one of this listener's callbacks.
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_close(mcl_raw_listener *l);

/** Whether @p l is open. @since 0.1 */
MCL_API bool mcl_raw_listener_is_open(const mcl_raw_listener *l);

/** Close if open and release; NULL-safe. Must not be called from one of its callbacks. @since 0.1 */
MCL_API void mcl_raw_listener_free(mcl_raw_listener *l);

/**
 * The effective connection: as opened, with the port the socket is bound to.
 * Owned by @p l. @since 0.1
 */
MCL_API const mcl_connection *mcl_raw_listener_connection(const mcl_raw_listener *l);

/** Canonical URL of mcl_raw_listener_connection(). Owned by @p l. @since 0.1 */
MCL_API const char *mcl_raw_listener_url(const mcl_raw_listener *l);

/**
 * Receive the next message on the caller's thread, waiting up to @p timeout_ms
 * (0 polls, MCL_WAIT_FOREVER blocks). Subscribed callbacks are not called.
 * @param[out] msgp  receives a borrowed message, valid until the next recv, dispatch or close
 *                   on @p l; set to NULL on failure.
 * @retval MCL_OK         *msgp is set.
 * @retval MCL_ETIMEDOUT  nothing arrived in time.
 * @retval MCL_ECLOSED    @p l is closed.
 * @retval MCL_ESTATE     the listener thread is running.
 * @retval MCL_EINVAL     NULL argument.
 * @retval MCL_ESYS       the socket failed.
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_recv(mcl_raw_listener *l, const mcl_raw_msg **msgp,
                                      int timeout_ms);

/**
 * The socket file descriptor, for the caller's poll/epoll loop: when it is readable, call
 * mcl_raw_listener_dispatch(). On inproc:// it is an eventfd, readable while datagrams wait.
 * On zmq connections this is ZMQ_FD, which is edge-triggered:
 * dispatch with max 0 reads until libzmq has nothing left; after a dispatch with a limit,
 * mcl_raw_listener_pending() says whether messages wait (they must be taken before waiting
 * on the fd again: the fd is armed again only once pending() has returned false). The fd
 * belongs to @p l (do not read from or close it). The listener may hold datagrams it has
 * already read (recv reads up to 16 at a time; a datagram may carry several messages): before
 * waiting on the fd again, call dispatch/recv until mcl_raw_listener_pending() is false.
 * dispatch with max 0 reads until nothing waits, so the fd is armed when it returns: what
 * arrives afterwards makes it readable (pending() may already be true by then).
 * @retval MCL_OK @retval MCL_ECLOSED @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_fd(const mcl_raw_listener *l, int *fd);

/**
 * Whether messages already read from the socket wait in @p l (see mcl_raw_listener_fd()).
 * @since 0.1
 */
MCL_API bool mcl_raw_listener_pending(const mcl_raw_listener *l);

/**
 * Read what is available now, without blocking, and call the subscribed callbacks on the
 * calling thread for up to @p max messages (0: no limit other than what is queued).
 * Also expires old partial messages.
 * @param[out] delivered  optional: the number of messages delivered.
 * @retval MCL_OK (also when nothing was available) @retval MCL_ECLOSED
 * @retval MCL_ESTATE (listener thread running, or called from a callback) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_dispatch(mcl_raw_listener *l, size_t max, size_t *delivered);

/**
 * Subscribe @p cb with @p user. Callbacks run in subscription order.
 * Thread-safe; allowed from inside a callback (the new callback sees the next message).
 * @retval MCL_OK @retval MCL_EALREADY (the same cb and user are subscribed)
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_subscribe(mcl_raw_listener *l, mcl_raw_cb cb, void *user);

/**
 * Unsubscribe @p cb with @p user. Once this returns, @p cb is not called again, except by a
 * call already running on another thread (close the listener to wait for those).
 * Thread-safe; allowed from inside a callback.
 * @retval MCL_OK @retval MCL_ENOENT (not subscribed) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_unsubscribe(mcl_raw_listener *l, mcl_raw_cb cb, void *user);

/** Number of subscribed callbacks (thread-safe). @since 0.1 */
MCL_API size_t mcl_raw_listener_subscriptions(const mcl_raw_listener *l);

/**
 * Start the listener thread ("mcl-listener"), which receives and calls the subscribed
 * callbacks until mcl_raw_listener_stop() or close.
 * @retval MCL_OK @retval MCL_EALREADY (running) @retval MCL_ECLOSED @retval MCL_EINVAL
 * @retval MCL_ESYS (the thread could not be created)
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_start(mcl_raw_listener *l);

/**
 * Stop the listener thread and wait for it; callbacks do not run once this returns.
 * @retval MCL_OK @retval MCL_ESTATE (not running, or called from a callback) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_stop(mcl_raw_listener *l);

/** Read the counters (thread-safe). @retval MCL_OK @retval MCL_EINVAL @since 0.1 */
MCL_API mcl_err mcl_raw_listener_stats(const mcl_raw_listener *l, mcl_listener_stats *st);

/**
 * Copy per-publisher counters into @p out (up to @p cap entries), most recently heard first.
 * @param[out] n  the number of publishers tracked (may exceed @p cap).
 * Thread-safe. @retval MCL_OK @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_raw_listener_publishers(const mcl_raw_listener *l, mcl_publisher_stats *out,
                                            size_t cap, size_t *n);

/**
 * Presence: told when a publisher appears (its first datagram or heartbeat, or its first after
 * it was silent: @p alive true) and when it goes silent (it said goodbye as it closed, or
 * nothing came from it for the connection's `silent` heartbeat periods, default 3: @p alive
 * false). Publishers that send no heartbeats (heartbeat=0, or older than 0.3) appear but never
 * go silent. @p p is a snapshot, valid during the call.
 * Runs on the thread that receives: the listener thread, or the caller of
 * mcl_raw_listener_dispatch() or mcl_raw_listener_recv(), with no library lock held; silence
 * is noticed within about 100 ms of being due while that thread runs (the listener thread
 * wakes at least every 250 ms). At most 64 events wait between two chances to deliver them;
 * more are dropped (the publisher table still says the truth).
 * @param cb  NULL: no more presence callbacks.
 * @retval MCL_OK @retval MCL_EINVAL
 * @since 0.3
 */
typedef void (*mcl_presence_cb)(mcl_raw_listener *l, const mcl_publisher_stats *p, bool alive,
                                void *user);
MCL_API mcl_err mcl_raw_listener_on_presence(mcl_raw_listener *l, mcl_presence_cb cb, void *user);

/**
 * The type name of a payload that is an mcl typed message (a msgpack map with a "name" string
 * among its first 32 entries; mcl/message.h), as the per-topic statistics find it: copied into
 * @p out (NUL-terminated, cut to @p outsz - 1 bytes). Bounded work on any bytes; a name with a
 * NUL in it is none.
 * @return its length, 0 when the payload is no typed message (then @p out is "").
 * @since 0.3
 */
MCL_API size_t mcl_raw_type_name(const void *payload, size_t len, char *out, size_t outsz);

/* -- Per-topic statistics (docs/topics.md) ------------------------------------------------- */

/**
 * Per-topic counters of one listener, or of one (publisher, topic) pair. Every message the
 * listener delivers (it passed the topic filter; to callbacks, on the listener thread or by
 * mcl_raw_listener_recv()) is counted, by its receive time (recv_mono_ns). A message is seen
 * by readers once the listener has delivered everything it had read with it (messages packed
 * in one read are counted together), so a callback may not yet see its own message.
 *
 * Windowed figures (rate_hz, bandwidth_bps, period_ms, jitter_ms) come from one-second
 * buckets: the last W whole seconds plus the current partial one (W = window_ms / 1000), or,
 * for a row first seen inside that span, the time since its first message. A topic that
 * stops decays to 0 within W + 1 seconds. Gaps longer than the window are pauses, not
 * inter-arrival times.
 *
 * Loss: over transports that filter by topic at the publisher (zmq+), a gap in a
 * (publisher, topic) numbering is loss of that topic, and the duplicates of a datagram (one
 * topic each) are that topic's; over udp:// and inproc:// a publisher's gap cannot be told
 * apart by topic: `lost` and `duplicates` stay 0 there (the listener's and publisher's
 * counters have them). `reordered` counts, on every transport, messages that arrived after a
 * later one of the same publisher on the same topic.
 *
 * `type` is looked at on the first message of a row and every 64th; names longer than 63
 * bytes are cut. Fields are only ever appended (docs/topics.md).
 * @since 0.3
 */
typedef struct mcl_topic_stats {
    char topic[MCL_TOPIC_MAX + 1]; /* the topic ("" for messages published without one) */
    uint64_t publisher;      /* mcl_raw_listener_topic_publishers(): the publisher id; 0 in per-topic rows */
    uint32_t publishers;     /* per-topic rows: publishers tracked on this topic now; pair rows: 1 */
    char type[64];           /* the payload's type name when it is an mcl typed message (a msgpack map with a "name" string), else "" ("(mixed)" when it varies) */
    uint64_t messages;       /* delivered since first seen */
    uint64_t bytes;          /* payload bytes delivered since first seen */
    double rate_hz;          /* messages per second over the sliding window */
    double bandwidth_bps;    /* payload bytes per second over the window */
    uint64_t size_min, size_max; /* payload sizes since first seen */
    double size_mean;
    double period_ms;        /* mean inter-arrival time over the window (0: fewer than 2 messages) */
    double jitter_ms;        /* standard deviation of the inter-arrival time over the window */
    uint64_t lost;           /* messages missing, where they can be attributed to this topic (see below) */
    uint64_t duplicates;     /* duplicates attributed to this topic */
    uint64_t reordered;      /* late messages on this topic */
    int64_t first_seen_ns;   /* CLOCK_REALTIME of the first message */
    int64_t last_seen_ns;    /* CLOCK_REALTIME of the last message */
    uint32_t rate_history[16]; /* messages received in each of the last 16 whole seconds, oldest first (for sparklines) */
} mcl_topic_stats;

/**
 * Per-topic rows of @p l: fills out[0..cap) with the rows sorted by topic (strcmp order).
 * @param[out] out  @p cap rows (NULL with cap 0: only count).
 * @return how many topics are tracked (may be > cap); 0 for a NULL @p l.
 * Also after close (until free). Thread-safe: any thread, also inside callbacks.
 * @since 0.3
 */
MCL_API size_t mcl_raw_listener_topics(mcl_raw_listener *l, mcl_topic_stats *out, size_t cap);
/**
 * Rows of the (publisher, topic) pairs of @p topic (NULL: of every topic), sorted by topic
 * then publisher id; each has `publisher` set and `publishers` 1.
 * @return how many pairs match (may be > cap); 0 for a NULL @p l or an unknown topic.
 * Thread-safe, as mcl_raw_listener_topics().
 * @since 0.3
 */
MCL_API size_t mcl_raw_listener_topic_publishers(mcl_raw_listener *l, const char *topic, mcl_topic_stats *out, size_t cap);
/**
 * Options of the per-topic statistics: the window (default 5 s) and the caps on topics
 * (default 1024) and on pairs (default 4096) tracked. Messages of topics or pairs beyond the
 * caps are delivered as usual but not tracked; they are counted in `untracked` (a message
 * whose topic has a row but whose pair has none still counts in the topic row). A full table
 * evicts, when a new row needs room, every row not seen within the window (never one seen
 * within it). Memory: about 1.5 KiB per row (plus the topic's length for topic rows), so at
 * most about 7.5 MiB with the default caps, plus the topics' names (docs/topics.md).
 *
 * A field 0 keeps (or restores) its default. window_ms is rounded down to whole seconds.
 * Call at any time after open, from any thread; the window applies at once to every row
 * read, the caps to rows made from then on.
 * @retval MCL_OK
 * @retval MCL_EINVAL  NULL argument, window_ms outside 1000..16000 (and not 0), or a cap
 *                     above 1048576.
 * @since 0.3
 */
typedef struct mcl_topic_stats_options { int window_ms; size_t max_topics; size_t max_pairs; } mcl_topic_stats_options;
MCL_API mcl_err mcl_raw_listener_topic_options(mcl_raw_listener *l, const mcl_topic_stats_options *o);
/** Messages not tracked because a cap was reached (thread-safe; 0 for NULL). @since 0.3 */
MCL_API uint64_t mcl_raw_listener_topics_untracked(mcl_raw_listener *l);

#ifdef __cplusplus
}
#endif
#endif
