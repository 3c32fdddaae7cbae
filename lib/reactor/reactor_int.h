// Reactor entry points for the library's own layers (promises): posts and timers whose
// argument holds a resource, released by `dispose` if the reactor is freed before they run.
#ifndef MCL__REACTOR_INT_H
#define MCL__REACTOR_INT_H

#include <mcl/reactor.h>

mcl_err mcl__reactor_post_disposable(mcl_reactor *r, mcl_reactor_fn fn, void *arg,
                                     void (*dispose)(void *arg));
mcl_err mcl__reactor_timer_disposable(mcl_reactor *r, int64_t delay_ms, mcl_timer_cb cb,
                                      void *user, void (*dispose)(void *user), mcl_handle *h);

#endif
