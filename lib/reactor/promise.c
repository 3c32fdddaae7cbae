// SPDX-License-Identifier: BSD-3-Clause
// Promises: a result that settles once; its one callback, canceller and timeout run on the
// reactor thread. Reference counted: the creator's reference, plus one for each pending
// callback, timer or all-of that refers to it.
#include <mcl/reactor.h>

#include "../core/internal.h"
#include "reactor_int.h"

#include <pthread.h>
#include <stdatomic.h>

struct mcl_promise {
    mcl_reactor *r;
    atomic_int refs;
    pthread_mutex_t lock;
    bool settled;
    mcl_err status;
    void *value;
    mcl_promise_cb cb;
    void *cb_user;
    bool cb_posted;
    mcl_canceller_fn canceller;
    void *canceller_user;
    void (*canceller_free)(void *user); // the user data belongs to the promise (internal)
    mcl_handle timer;
    void (*value_free)(void *value); // the value belongs to the promise (internal resolve)
};

mcl_err
mcl_promise_new(mcl_promise **pp, mcl_reactor *r)
{
    if (pp != NULL)
        *pp = NULL;
    if (pp == NULL || r == NULL)
        return MCL_EINVAL;
    mcl_promise *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return MCL_ENOMEM;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        mcl__free(p);
        return MCL_ESYS;
    }
    p->r = r;
    atomic_store(&p->refs, 1);
    *pp = p;
    return MCL_OK;
}

void
mcl_promise_ref(mcl_promise *p)
{
    if (p != NULL)
        atomic_fetch_add(&p->refs, 1);
}

void
mcl_promise_unref(mcl_promise *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    if (p->value_free != NULL)
        p->value_free(p->value);
    if (p->canceller_free != NULL)
        p->canceller_free(p->canceller_user);
    pthread_mutex_destroy(&p->lock);
    mcl__free(p);
}

// A post or timer holding a reference is dropped unrun (its reactor is being freed).
static void
dispose_ref(void *arg)
{
    mcl_promise_unref(arg);
}

static void
run_cb(mcl_reactor *r, void *arg)
{
    (void)r;
    mcl_promise *p = arg;
    pthread_mutex_lock(&p->lock);
    mcl_promise_cb cb = p->cb;
    void *user = p->cb_user;
    mcl_err st = p->status;
    void *v = p->value;
    pthread_mutex_unlock(&p->lock);
    cb(p, st, v, user);
    mcl_promise_unref(p); // the reference taken when this was posted
}

static void
run_canceller(mcl_reactor *r, void *arg)
{
    (void)r;
    mcl_promise *p = arg;
    pthread_mutex_lock(&p->lock);
    mcl_canceller_fn fn = p->canceller;
    void *user = p->canceller_user;
    pthread_mutex_unlock(&p->lock);
    fn(p, user);
    mcl_promise_unref(p);
}

// Posts the callback once both a result and a callback exist. Called with p->lock held.
static void
maybe_post_locked(mcl_promise *p)
{
    if (!p->settled || p->cb == NULL || p->cb_posted)
        return;
    p->cb_posted = true;
    atomic_fetch_add(&p->refs, 1);
    if (mcl__reactor_post_disposable(p->r, run_cb, p, dispose_ref) != MCL_OK) {
        atomic_fetch_sub(&p->refs, 1);
        mcl__log(MCL_LOG_ERROR, "promise", "out of memory: a promise callback is lost");
    }
}

static mcl_err
settle(mcl_promise *p, mcl_err status, void *value, bool cancel, void (*value_free)(void *))
{
    if (p == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&p->lock);
    if (p->settled) {
        pthread_mutex_unlock(&p->lock);
        return MCL_EALREADY;
    }
    p->settled = true;
    p->status = status;
    p->value = value;
    p->value_free = value_free;
    mcl_handle timer = p->timer;
    p->timer = 0;
    if (cancel && p->canceller != NULL) { // the canceller runs before the callback (FIFO)
        atomic_fetch_add(&p->refs, 1);
        if (mcl__reactor_post_disposable(p->r, run_canceller, p, dispose_ref) != MCL_OK)
            atomic_fetch_sub(&p->refs, 1);
    }
    maybe_post_locked(p);
    pthread_mutex_unlock(&p->lock);
    if (timer != 0 && mcl_reactor_remove(p->r, timer) == MCL_OK)
        mcl_promise_unref(p); // the timer's reference
    return MCL_OK;
}

mcl_err
mcl_promise_resolve(mcl_promise *p, void *value)
{
    return settle(p, MCL_OK, value, false, NULL);
}

mcl_err
mcl__promise_resolve_owned(mcl_promise *p, void *value, void (*value_free)(void *value))
{
    mcl_err rv = settle(p, MCL_OK, value, false, value_free);
    if (rv != MCL_OK && value_free != NULL)
        value_free(value); // settled before: nobody will see it
    return rv;
}

mcl_err
mcl_promise_fail(mcl_promise *p, mcl_err status)
{
    return settle(p, status == MCL_OK ? MCL_ESTATE : status, NULL, false, NULL);
}

mcl_err
mcl_promise_cancel(mcl_promise *p)
{
    return settle(p, MCL_ECANCELED, NULL, true, NULL);
}

mcl_err
mcl_promise_then(mcl_promise *p, mcl_promise_cb cb, void *user)
{
    if (p == NULL || cb == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&p->lock);
    mcl_err rv = MCL_OK;
    if (p->cb != NULL) {
        rv = MCL_EALREADY;
    } else {
        p->cb = cb;
        p->cb_user = user;
        maybe_post_locked(p);
    }
    pthread_mutex_unlock(&p->lock);
    return rv;
}

static mcl_err
set_canceller(mcl_promise *p, mcl_canceller_fn fn, void *user, void (*user_free)(void *))
{
    if (p == NULL || fn == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&p->lock);
    void (*old_free)(void *) = p->canceller_free;
    void *old = p->canceller_user;
    p->canceller = fn;
    p->canceller_user = user;
    p->canceller_free = user_free;
    pthread_mutex_unlock(&p->lock);
    if (old_free != NULL)
        old_free(old);
    return MCL_OK;
}

mcl_err
mcl_promise_set_canceller(mcl_promise *p, mcl_canceller_fn fn, void *user)
{
    return set_canceller(p, fn, user, NULL);
}

mcl_err
mcl__promise_set_canceller_owned(mcl_promise *p, mcl_canceller_fn fn, void *user,
                                 void (*user_free)(void *user))
{
    return set_canceller(p, fn, user, user_free);
}

static void
on_timeout(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)r;
    mcl_promise *p = user;
    pthread_mutex_lock(&p->lock);
    bool mine = p->timer == h; // settle() may have cleared it (and found the timer gone)
    if (mine)
        p->timer = 0;
    pthread_mutex_unlock(&p->lock);
    if (mine)
        settle(p, MCL_ETIMEDOUT, NULL, false, NULL);
    mcl_promise_unref(p); // the timer's reference, whoever settled
}

mcl_err
mcl_promise_timeout(mcl_promise *p, int64_t ms)
{
    if (p == NULL || ms < 0)
        return MCL_EINVAL;
    pthread_mutex_lock(&p->lock);
    if (p->settled || p->timer != 0) {
        pthread_mutex_unlock(&p->lock);
        return MCL_EALREADY;
    }
    atomic_fetch_add(&p->refs, 1);
    mcl_err rv = mcl__reactor_timer_disposable(p->r, ms, on_timeout, p, dispose_ref, &p->timer);
    if (rv != MCL_OK)
        atomic_fetch_sub(&p->refs, 1);
    pthread_mutex_unlock(&p->lock);
    return rv;
}

bool
mcl_promise_settled(const mcl_promise *cp, mcl_err *status, void **value)
{
    mcl_promise *p = (mcl_promise *)(uintptr_t)cp;
    if (p == NULL)
        return false;
    pthread_mutex_lock(&p->lock);
    bool s = p->settled;
    if (s && status != NULL)
        *status = p->status;
    if (s && value != NULL)
        *value = p->value;
    pthread_mutex_unlock(&p->lock);
    return s;
}

// --- all-of ------------------------------------------------------------------------------------

typedef struct all_ctx {
    mcl_promise *result;
    atomic_size_t left;
} all_ctx;

static void
on_one(mcl_promise *p, mcl_err status, void *value, void *user)
{
    (void)value;
    all_ctx *c = user;
    mcl_promise_unref(p); // the reference all-of took on this input
    if (status != MCL_OK)
        mcl_promise_fail(c->result, status); // the first failure wins; later ones are ignored
    if (atomic_fetch_sub(&c->left, 1) == 1) {
        mcl_promise_resolve(c->result, NULL); // no-op if it failed
        mcl_promise_unref(c->result);
        mcl__free(c);
    }
}

mcl_err
mcl_promise_all(mcl_promise **pp, mcl_reactor *r, mcl_promise *const *ps, size_t n)
{
    if (pp != NULL)
        *pp = NULL;
    if (pp == NULL || r == NULL || (ps == NULL && n > 0))
        return MCL_EINVAL;
    mcl_promise *res;
    mcl_err rv = mcl_promise_new(&res, r);
    if (rv != MCL_OK)
        return rv;
    if (n == 0) {
        mcl_promise_resolve(res, NULL);
        *pp = res;
        return MCL_OK;
    }
    for (size_t i = 0; i < n; i++) { // each input's one callback slot must be free
        pthread_mutex_lock(&ps[i]->lock);
        bool taken = ps[i]->cb != NULL;
        pthread_mutex_unlock(&ps[i]->lock);
        if (taken) {
            mcl_promise_unref(res);
            return MCL_EALREADY;
        }
    }
    all_ctx *c = mcl__alloc(sizeof(*c));
    if (c == NULL) {
        mcl_promise_unref(res);
        return MCL_ENOMEM;
    }
    c->result = res;
    mcl_promise_ref(res); // the context's
    atomic_store(&c->left, n);
    for (size_t i = 0; i < n; i++) {
        mcl_promise_ref(ps[i]); // kept until its result arrives
        if (mcl_promise_then(ps[i], on_one, c) != MCL_OK) {
            // Taken meanwhile by another thread: this input cannot be watched; count it as a
            // failure so that the result still settles (on_one posts nothing to user code).
            mcl_promise_fail(res, MCL_EALREADY);
            on_one(ps[i], MCL_EALREADY, NULL, c);
        }
    }
    *pp = res;
    return MCL_OK;
}
