// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/reactor.h
 * Reactor: one event loop (epoll, or poll as a fallback) for file descriptors, timers, functions
 * posted from other threads, promises, and every kind of mcl listener.
 *
 * Threads: every function here may be called from any thread. Callbacks run on the reactor's
 * thread (the one in mcl_reactor_run(), or "mcl-reactor" after mcl_reactor_start()), one at a
 * time, with no lock held; a callback may call any reactor function, including removing its
 * own or another handler, cancelling timers, and stopping the reactor.
 *
 * Order guarantees: functions posted from one thread run in the order they were posted; a
 * timer never runs before its deadline; timers due together run in deadline order, then in
 * the order they were scheduled; fd callbacks of one iteration run before the timers and posted
 * functions gathered after them.
 */
#ifndef MCL_REACTOR_H
#define MCL_REACTOR_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/message.h>
#include <mcl/queued.h>
#include <mcl/raw.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mcl_reactor mcl_reactor;

/** A handle for an fd handler, a timer or a registered listener: non-zero, never reused. */
typedef uint64_t mcl_handle;

/** Events of an fd handler (level-triggered). */
enum {
    MCL_EV_READ = 1,  /**< readable */
    MCL_EV_WRITE = 2, /**< writable */
    MCL_EV_ERROR = 4, /**< error condition (always reported) */
    MCL_EV_HUP = 8,   /**< hang-up (always reported) */
};

/** Options; all-zero means the defaults. */
typedef struct mcl_reactor_options {
    bool use_poll; /**< poll(2) instead of epoll (also chosen when epoll is unavailable) */
} mcl_reactor_options;

/**
 * Create a reactor (not running).
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM @retval MCL_ESYS (eventfd, epoll)
 * Ownership: the caller owns *rp; mcl_reactor_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_new(mcl_reactor **rp, const mcl_reactor_options *options);

/**
 * Stop (if running: also a run() on another thread, which this waits for), join its own
 * thread (if started), drop what is left (posted functions are not run; mcl_reactor_call()
 * waiters return MCL_ECANCELED), and release. Must not be called from a reactor callback.
 * NULL-safe.
 * @since 0.1
 */
MCL_API void mcl_reactor_free(mcl_reactor *r);

/**
 * Run the loop on the calling thread until mcl_reactor_stop().
 * @retval MCL_OK (stopped) @retval MCL_ESTATE (already running) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_run(mcl_reactor *r);

/** Run the loop on a new thread named "mcl-reactor". @retval MCL_OK @retval MCL_ESTATE @retval MCL_ESYS @since 0.1 */
MCL_API mcl_err mcl_reactor_start(mcl_reactor *r);

/**
 * Ask the loop to return after the callback in progress. Does not wait (mcl_reactor_free()
 * joins the reactor's own thread). A reactor can be run again after it stopped.
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_stop(mcl_reactor *r);

/** Whether the calling thread is the reactor's thread (inside run). @since 0.1 */
MCL_API bool mcl_reactor_in_loop(const mcl_reactor *r);

/* --- functions from any thread ------------------------------------------------------------ */

typedef void (*mcl_reactor_fn)(mcl_reactor *r, void *arg);

/**
 * Run @p fn(r, arg) on the reactor thread, soon (also before the loop starts: it then runs once
 * the loop runs, which is how "call when running" is done). Functions posted from one thread
 * run in posting order, each exactly once; if the reactor is freed first they never run.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_post(mcl_reactor *r, mcl_reactor_fn fn, void *arg);

/**
 * Run @p fn on the reactor thread and wait until it has returned (directly, when called on the
 * reactor thread). The reactor must be running, or run by another thread meanwhile.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_call(mcl_reactor *r, mcl_reactor_fn fn, void *arg);

/* --- file descriptors ---------------------------------------------------------------------- */

typedef void (*mcl_fd_cb)(mcl_reactor *r, int fd, int events, void *user);

/**
 * Watch @p fd for @p events (MCL_EV_READ and/or MCL_EV_WRITE; errors and hang-ups are always
 * reported). One handler per fd.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_EEXIST (fd watched already) @retval MCL_ENOMEM
 * @retval MCL_ESYS
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_add_fd(mcl_reactor *r, int fd, int events, mcl_fd_cb cb, void *user,
                                   mcl_handle *h);
/** Change the events of a handler. @retval MCL_OK @retval MCL_ENOENT @since 0.1 */
MCL_API mcl_err mcl_reactor_modify_fd(mcl_reactor *r, mcl_handle h, int events);

/* --- timers ------------------------------------------------------------------------------- */

typedef void (*mcl_timer_cb)(mcl_reactor *r, mcl_handle timer, void *user);

/**
 * Call @p cb after @p delay_ms (CLOCK_MONOTONIC), and then every @p period_ms if that is > 0.
 * @p group (0: none) lets mcl_reactor_cancel_group() cancel many timers at once.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_timer(mcl_reactor *r, int64_t delay_ms, int64_t period_ms,
                                  uint64_t group, mcl_timer_cb cb, void *user, mcl_handle *h);

/** Push a timer's deadline @p ms later. @retval MCL_OK @retval MCL_ENOENT (fired or cancelled) @since 0.1 */
MCL_API mcl_err mcl_reactor_timer_delay(mcl_reactor *r, mcl_handle h, int64_t ms);
/** Set a timer's deadline to @p ms from now. @retval MCL_OK @retval MCL_ENOENT @since 0.1 */
MCL_API mcl_err mcl_reactor_timer_reset(mcl_reactor *r, mcl_handle h, int64_t ms);
/**
 * Move a timer's deadline to @p ms from now only if that is earlier than its deadline.
 * @retval MCL_OK @retval MCL_EALREADY (the deadline was earlier already) @retval MCL_ENOENT
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_timer_reset_if_earlier(mcl_reactor *r, mcl_handle h, int64_t ms);
/** Cancel every timer of @p group (non-zero); returns how many were cancelled. @since 0.1 */
MCL_API size_t mcl_reactor_cancel_group(mcl_reactor *r, uint64_t group);
/** Number of timers scheduled. @since 0.1 */
MCL_API size_t mcl_reactor_timers(const mcl_reactor *r);

/* --- removing anything --------------------------------------------------------------------- */

/**
 * Remove an fd handler, cancel a timer (O(log n)), or unregister a listener. Once this returns
 * its callback is not called again (on the reactor thread: from the next event on).
 * @retval MCL_OK @retval MCL_ENOENT (unknown, already fired or removed)
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_remove(mcl_reactor *r, mcl_handle h);

/* --- listeners ----------------------------------------------------------------------------- */

/**
 * Serve a listener from the reactor: its fd is watched, its callbacks run on the reactor thread
 * (through its dispatch), and it is dispatched at least every 250 ms (expiry of partial
 * messages, kernel drop counts, receiver restarts). The listener must not run its own thread
 * (queued listeners: open with `no_thread`). Remove before closing the listener.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ESTATE (it runs its own thread) @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_reactor_add_raw_listener(mcl_reactor *r, mcl_raw_listener *l, mcl_handle *h);
MCL_API mcl_err mcl_reactor_add_msg_listener(mcl_reactor *r, mcl_msg_listener *l, mcl_handle *h);
MCL_API mcl_err mcl_reactor_add_queued_listener(mcl_reactor *r, mcl_queued_listener *l,
                                                mcl_handle *h);

/* --- promises ------------------------------------------------------------------------------ */

typedef struct mcl_promise mcl_promise;

/** Called once, on the reactor thread, when the promise settles (MCL_OK: resolved). */
typedef void (*mcl_promise_cb)(mcl_promise *p, mcl_err status, void *value, void *user);
/** Called once, on the reactor thread, when a pending promise is cancelled. */
typedef void (*mcl_canceller_fn)(mcl_promise *p, void *user);

/**
 * A pending result bound to @p r. The caller holds one reference (mcl_promise_unref()).
 * A promise must not be settled after its reactor is freed (freeing the reactor drops the
 * references its pending callbacks and timers held).
 * @since 0.1
 */
MCL_API mcl_err mcl_promise_new(mcl_promise **pp, mcl_reactor *r);
MCL_API void mcl_promise_ref(mcl_promise *p);
MCL_API void mcl_promise_unref(mcl_promise *p);

/**
 * Settle with a value (resolve) or an error status (fail). The first settlement wins.
 * From any thread. @retval MCL_OK @retval MCL_EALREADY (settled before) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_promise_resolve(mcl_promise *p, void *value);
MCL_API mcl_err mcl_promise_fail(mcl_promise *p, mcl_err status);

/**
 * Set the one callback. If already settled, it is called soon (posted).
 * @retval MCL_OK @retval MCL_EALREADY (a callback is set) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_promise_then(mcl_promise *p, mcl_promise_cb cb, void *user);

/** Set the hook called if the promise is cancelled while pending. @since 0.1 */
MCL_API mcl_err mcl_promise_set_canceller(mcl_promise *p, mcl_canceller_fn fn, void *user);

/**
 * Cancel: a pending promise fails with MCL_ECANCELED and its canceller runs.
 * @retval MCL_OK @retval MCL_EALREADY (settled before)
 * @since 0.1
 */
MCL_API mcl_err mcl_promise_cancel(mcl_promise *p);

/** Fail with MCL_ETIMEDOUT unless settled within @p ms (a reactor timer). @since 0.1 */
MCL_API mcl_err mcl_promise_timeout(mcl_promise *p, int64_t ms);

/** Whether settled; with @p status and @p value when it is (either may be NULL). @since 0.1 */
MCL_API bool mcl_promise_settled(const mcl_promise *p, mcl_err *status, void **value);

/**
 * A promise that resolves (value NULL) when all of @p n promises resolved, or fails with the
 * status of the first that fails (the others are left alone). n == 0 resolves at once.
 * It takes the callback slot of every input, and a reference on each until it settles.
 * @retval MCL_OK @retval MCL_EALREADY (an input has a callback already) @retval MCL_EINVAL
 * @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_promise_all(mcl_promise **pp, mcl_reactor *r, mcl_promise *const *ps,
                                size_t n);

#ifdef __cplusplus
}
#endif
#endif
