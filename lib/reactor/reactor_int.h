// SPDX-License-Identifier: BSD-3-Clause
// Reactor entry points for the library's own layers (promises): posts and timers whose
// argument holds a resource, released by `dispose` if the reactor is freed before they run.
#ifndef MCL__REACTOR_INT_H
#define MCL__REACTOR_INT_H

#include <mcl/reactor.h>

#include "../core/source.h"

mcl_err mcl__reactor_post_disposable(mcl_reactor *r, mcl_reactor_fn fn, void *arg,
                                     void (*dispose)(void *arg));
mcl_err mcl__reactor_timer_disposable(mcl_reactor *r, int64_t delay_ms, mcl_timer_cb cb,
                                      void *user, void (*dispose)(void *user), mcl_handle *h);

// Registers an event source (its fd, dispatched when readable and every 250 ms): how the
// layers above attach themselves without the reactor knowing their types. Errors as
// mcl_reactor_add_raw_listener(); the handle goes to mcl_reactor_remove().
mcl_err mcl__reactor_add_source(mcl_reactor *r, const mcl__source_ops *ops, void *obj,
                                mcl_handle *h);

// Resolves p with a value that belongs to the promise: value_free(value) runs when its last
// reference goes (or at once, if p had settled before: then MCL_EALREADY).
mcl_err mcl__promise_resolve_owned(mcl_promise *p, void *value, void (*value_free)(void *value));

// mcl_promise_set_canceller() with user data that belongs to the promise: user_free(user) runs
// when its last reference goes (or when another canceller replaces it), cancelled or not.
mcl_err mcl__promise_set_canceller_owned(mcl_promise *p, mcl_canceller_fn fn, void *user,
                                         void (*user_free)(void *user));

#endif
