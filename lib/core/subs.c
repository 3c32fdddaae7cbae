// SPDX-License-Identifier: BSD-3-Clause
#include "subs.h"

#include "internal.h"

#include <stdatomic.h>
#include <string.h>

// Owners whose callbacks run on this thread, innermost last (a callback may dispatch another
// listener). Fixed depth: deeper nesting is not tracked, which only weakens the misuse checks.
enum { NEST = 8 };
static _Thread_local const void *running[NEST];
static _Thread_local int nrunning;
// How many threads run callbacks now (mcl__subs_call). A thread that runs one raised it
// itself before, so it sees it raised: 0 answers "not on this thread" without the thread-local
// lookup (a call in a shared library) for every recv of a process with no callback running.
static atomic_int ncalling;

bool
mcl__subs_running(const void *owner)
{
    if (atomic_load_explicit(&ncalling, memory_order_relaxed) == 0)
        return false;
    for (int i = 0; i < nrunning && i < NEST; i++)
        if (running[i] == owner)
            return true;
    return false;
}

mcl_err
mcl__subs_init(mcl__subs *s, const void *owner)
{
    memset(s, 0, sizeof(*s));
    s->owner = owner;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return MCL_ESYS;
    if (pthread_cond_init(&s->idle, NULL) != 0) {
        pthread_mutex_destroy(&s->lock);
        return MCL_ESYS;
    }
    return MCL_OK;
}

void
mcl__subs_fini(mcl__subs *s, bool inherited)
{
    mcl__free(s->v);
    if (!inherited) // (in a forked child it may count the parent's waiters: destroy would wait)
        pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof(*s));
}

mcl_err
mcl__subs_add(mcl__subs *s, mcl__fn fn, void *user)
{
    mcl_err rv = MCL_OK;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].fn == fn && s->v[i].user == user) {
            rv = MCL_EALREADY;
            goto out;
        }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 4;
        mcl__sub *nv = mcl__realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL) {
            rv = MCL_ENOMEM;
            goto out;
        }
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = (mcl__sub){fn, user, ++s->next_id};
out:
    pthread_mutex_unlock(&s->lock);
    return rv;
}

mcl_err
mcl__subs_remove(mcl__subs *s, mcl__fn fn, void *user)
{
    mcl_err rv = MCL_ENOENT;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].fn == fn && s->v[i].user == user) {
            uint64_t id = s->v[i].id;
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
            s->n--;
            rv = MCL_OK;
            // From another thread: wait for a call of this subscription to end, so the caller
            // may free `user` once we return. From inside a callback that would deadlock.
            if (!mcl__subs_running(s->owner))
                while (s->busy_id == id)
                    pthread_cond_wait(&s->idle, &s->lock);
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

size_t
mcl__subs_count(mcl__subs *s)
{
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void
mcl__subs_call(mcl__subs *s, void (*invoke)(mcl__fn fn, void *user, void *arg), void *arg)
{
    pthread_mutex_lock(&s->lock);
    uint64_t last_id = s->next_id; // subscriptions made during this call wait for the next one
    pthread_mutex_unlock(&s->lock);
    if (nrunning++ == 0)
        atomic_fetch_add_explicit(&ncalling, 1, memory_order_relaxed);
    if (nrunning <= NEST)
        running[nrunning - 1] = s->owner;
    uint64_t after = 0;
    for (;;) {
        mcl__fn fn = NULL;
        void *user = NULL;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->n; i++) {
            if (s->v[i].id > after && s->v[i].id <= last_id) {
                fn = s->v[i].fn;
                user = s->v[i].user;
                after = s->v[i].id;
                s->busy_id = after;
                break;
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (fn == NULL)
            break;
        invoke(fn, user, arg);
        pthread_mutex_lock(&s->lock);
        s->busy_id = 0;
        pthread_cond_broadcast(&s->idle);
        pthread_mutex_unlock(&s->lock);
    }
    if (--nrunning == 0)
        atomic_fetch_sub_explicit(&ncalling, 1, memory_order_relaxed);
}
