// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/queued.h
 * Queued listener: reception in a separate process, so slow callbacks never make the kernel
 * drop datagrams.
 *
 * Opening forks a receiver process ("mcl-recv") that reads the socket (recvmmsg), reassembles,
 * filters topics, stamps the receive time and appends each complete message to a ring in
 * shared memory; it never waits for the consumer (a full ring drops and counts). In this
 * process a callback thread ("mcl-queued") drains the ring and calls the subscribed callbacks,
 * or, with `no_thread`, the application drains it through an fd and dispatch/recv.
 *
 * The socket belongs to this process and outlives receivers: if the receiver dies it is
 * noticed at once (pidfd), reaped, reported in the counters and (unless `no_restart`) started
 * again; datagrams that arrive meanwhile wait in the socket, and messages lost in the
 * receiver's hands show up as sequence gaps (`lost`, `restart_lost`). The receiver dies with
 * this process: at once through PR_SET_PDEATHSIG when it was forked by the callback thread,
 * and within 200 ms (it checks its parent when idle) in `no_thread` mode, where the forking
 * thread is the application's and may end before the listener. The receiver keeps no other
 * descriptor of the application and resets its signal handlers. Closing kills and reaps it:
 * no zombie, and nothing named is left behind (the ring is anonymous shared memory); messages
 * still queued are dropped, not delivered.
 *
 * Threads: as mcl/raw.h (a handle is used by one thread at a time; stats and subscriptions
 * from any thread). fork() with threads: the receiver only uses async-signal-safe calls and
 * memory allocation, which glibc keeps usable in a forked child. An application's fork(): as
 * mcl/raw.h says; closing an inherited queued listener in the child leaves the parent's receiver
 * process, ring and callback thread alone.
 */
#ifndef MCL_QUEUED_H
#define MCL_QUEUED_H

#include <mcl/connection.h>
#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/message.h>
#include <mcl/raw.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Options; all-zero means the defaults. */
typedef struct mcl_queued_options {
    size_t ring_size; /**< ring bytes; 0: 64 MiB. Messages larger than half of it are counted
                           in `ring_oversize` and dropped. */
    bool defer_open;  /**< true: mcl_queued_listener_new() does not open (MCL's open_init=False) */
    bool no_thread;   /**< true: no callback thread; drain with fd + dispatch, or recv */
    bool no_restart;  /**< true: a dead receiver is reported, not restarted */
    bool lazy_ring;   /**< true: the ring's memory is not made resident at open (by default
                           it is, `ring_size` bytes of RSS from the start: a receiver writing
                           into fresh pages takes a page fault per 4 KiB and, at full rate
                           with large messages, falls behind the socket). @since 0.4 */
    bool no_direct;   /**< true: the receiver copies every message into the ring. By default,
                           over udp, it reads a datagram straight into the ring while messages
                           of 4 KiB or more come in one datagram each (one copy fewer; smaller
                           ones are read in batches, then copied), counted in `ring_direct`.
                           @since 0.4 */
    const char *receiver_cpus; /**< the CPUs the receiver process may run on, as `taskset -c`
                           takes them ("2", "0,2-3"); NULL or "": wherever the scheduler puts
                           it. Keeps it off cores busy with other work (a sender, the callbacks),
                           where it would wait for the CPU while the socket overflows. The
                           opening thread's own affinity does not limit it: the kernel runs the
                           receiver on those of the list its cpuset allows and that are online.
                           MCL_EINVAL from mcl_queued_listener_new() / _open() for a string that
                           is not such a list or names no CPU the receiver may use (a receiver
                           restarted after its CPUs went offline runs where it is). Read during
                           mcl_queued_listener_new() only. @since 0.4 */
} mcl_queued_options;

/** Counters, cumulative over opens and receiver restarts. Fields are only ever appended. */
typedef struct mcl_queued_stats {
    mcl_listener_stats receiver; /**< the receivers' counters (messages = queued + dropped); its
                                      `lost` includes `restart_lost`. Refreshed every 256
                                      messages and when idle. */
    uint64_t delivered;       /**< messages handed to callbacks or recv. */
    uint64_t ring_drops;      /**< messages dropped because the ring was full. */
    uint64_t ring_oversize;   /**< messages dropped because they exceed half the ring. */
    uint64_t restart_lost;    /**< sequence gaps seen across receiver restarts. */
    uint64_t restarts;        /**< receivers that died and were replaced. */
    uint64_t receiver_deaths; /**< receivers that died (restarted or not). */
    uint64_t ring_high_water; /**< most bytes ever waiting in the ring. */
    size_t ring_size;         /**< ring capacity in bytes. */
    uint64_t undecodable;     /**< payloads that message callbacks could not get (not a map). */
    int receiver_pid;         /**< the receiver process, 0 when none. */
    bool receiver_alive;      /**< false after a death that was not (yet) restarted. */
    uint64_t ring_direct;     /**< messages the receiver read straight into the ring, not
                                   copied there (of `delivered` and the ones waiting).
                                   @since 0.4 */
} mcl_queued_stats;

typedef struct mcl_queued_listener mcl_queued_listener;

/**
 * Create a queued listener on @p conn (or, when NULL, the connection of @p type) for the topics
 * given (as mcl_raw_listener_open()), and open it unless options->defer_open.
 * @param type  optional: message callbacks get messages checked for its mandatory fields.
 * @retval MCL_OK
 * @retval MCL_EINVAL, MCL_ENODEV, MCL_EADDRINUSE, MCL_EPERM, MCL_ESYS, MCL_ENOMEM
 *         as mcl_raw_listener_open(); the socket is opened here, so a bad endpoint fails at
 *         once even with defer_open. MCL_EINVAL also for a zmq+tcp URL with port 0 (a
 *         restarted receiver must bind the same port).
 * @retval MCL_ENOTSUP  a connection that another process cannot reach (zmq+inproc://,
 *         inproc://): the receiver runs in a process of its own.
 * Ownership: the caller owns *qlp; mcl_queued_listener_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_new(mcl_queued_listener **qlp, const mcl_connection *conn,
                                        const mcl_msgtype *type, const char *const *topics,
                                        size_t ntopics, const mcl_queued_options *options);

/**
 * Start the receiver (and the callback thread).
 * @retval MCL_OK @retval MCL_EALREADY (open) @retval MCL_ESYS, MCL_ENOMEM (fork, mmap)
 * @retval MCL_ESTATE (from inside one of its callbacks)
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_open(mcl_queued_listener *ql);

/**
 * Stop the callback thread, kill and reap the receiver, drop what is still queued. Can be
 * opened again.
 * @retval MCL_OK @retval MCL_ECLOSED (already closed) @retval MCL_ESTATE (from a callback)
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_close(mcl_queued_listener *ql);

/** Whether it is open. @since 0.1 */
MCL_API bool mcl_queued_listener_is_open(const mcl_queued_listener *ql);

/** Close if open and release; NULL-safe. @since 0.1 */
MCL_API void mcl_queued_listener_free(mcl_queued_listener *ql);

/** Raw callbacks: as mcl_raw_listener_subscribe()/_unsubscribe(). @since 0.1 */
MCL_API mcl_err mcl_queued_listener_subscribe(mcl_queued_listener *ql, mcl_raw_cb cb, void *user);
MCL_API mcl_err mcl_queued_listener_unsubscribe(mcl_queued_listener *ql, mcl_raw_cb cb,
                                                void *user);
/**
 * Message callbacks: each payload is decoded (once) for them; those that are not msgpack maps
 * (or lack the type's mandatory fields) are counted in `undecodable` and skipped.
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_subscribe_msg(mcl_queued_listener *ql, mcl_msg_cb cb,
                                                  void *user);
MCL_API mcl_err mcl_queued_listener_unsubscribe_msg(mcl_queued_listener *ql, mcl_msg_cb cb,
                                                    void *user);

/**
 * With `no_thread`: an fd that is readable when messages wait or the receiver needs
 * attention; then call mcl_queued_listener_dispatch(). Owned by @p ql.
 * @retval MCL_OK @retval MCL_ECLOSED @retval MCL_ESTATE (the callback thread runs)
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_fd(const mcl_queued_listener *ql, int *fd);

/**
 * With `no_thread`: deliver up to @p max waiting messages (0: all) to the callbacks on this
 * thread, and handle a receiver death. Never blocks.
 * @retval MCL_OK @retval MCL_ECLOSED @retval MCL_ESTATE (thread running, or from a callback)
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_dispatch(mcl_queued_listener *ql, size_t max,
                                             size_t *delivered);

/**
 * With `no_thread`: the next message, waiting up to @p timeout_ms (MCL_WAIT_FOREVER: no limit).
 * Callbacks are not called.
 * @param[out] msgp  borrowed until the next recv/dispatch/close.
 * @retval MCL_OK @retval MCL_ETIMEDOUT @retval MCL_ECLOSED @retval MCL_ESTATE
 * @since 0.1
 */
MCL_API mcl_err mcl_queued_listener_recv(mcl_queued_listener *ql, const mcl_raw_msg **msgp,
                                         int timeout_ms);

/** Counters (thread-safe). @retval MCL_OK @retval MCL_EINVAL @since 0.1 */
MCL_API mcl_err mcl_queued_listener_stats(const mcl_queued_listener *ql, mcl_queued_stats *st);

/** The effective URL (with the bound port). Owned by @p ql. @since 0.1 */
MCL_API const char *mcl_queued_listener_url(const mcl_queued_listener *ql);

#ifdef __cplusplus
}
#endif
#endif
