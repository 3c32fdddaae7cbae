// SPDX-License-Identifier: BSD-3-Clause
// Subscription lists shared by every listener kind: callbacks run in subscription order, no
// lock is held during a call, subscribe/unsubscribe work from inside a callback, and an
// unsubscribe from another thread waits until a call of that subscription in progress ends.
#ifndef MCL__SUBS_H
#define MCL__SUBS_H

#include <mcl/err.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*mcl__fn)(void); // any callback type, cast back by the invoker

typedef struct mcl__sub {
    mcl__fn fn;
    void *user;
    uint64_t id; // increasing: subscription order
} mcl__sub;

typedef struct mcl__subs {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    mcl__sub *v;
    size_t n, cap;
    uint64_t next_id;
    uint64_t busy_id;          // the subscription being called now (0: none)
    const void *owner;         // the listener, to recognise calls from its own callbacks
} mcl__subs;

mcl_err mcl__subs_init(mcl__subs *s, const void *owner);
// inherited: in a forked child (mcl__inherited), where the condition variable is not destroyed.
void mcl__subs_fini(mcl__subs *s, bool inherited);
mcl_err mcl__subs_add(mcl__subs *s, mcl__fn fn, void *user);    // MCL_EALREADY if present
mcl_err mcl__subs_remove(mcl__subs *s, mcl__fn fn, void *user); // MCL_ENOENT if absent
size_t mcl__subs_count(mcl__subs *s);

// Calls invoke(fn, user, arg) for each subscription that existed when the call started.
void mcl__subs_call(mcl__subs *s, void (*invoke)(mcl__fn fn, void *user, void *arg), void *arg);

// Whether the calling thread is inside a callback of owner (then close/stop must refuse).
bool mcl__subs_running(const void *owner);

#endif
