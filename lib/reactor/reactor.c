// SPDX-License-Identifier: BSD-3-Clause
// The reactor: epoll (or poll) loop, timer heap with O(log n) cancellation, posted functions,
// listener integration. One mutex guards the state; callbacks run without it.
#define _GNU_SOURCE
#include <mcl/reactor.h>

#include "../core/internal.h"
#include "../core/u64map.h"
#include "../core/source.h"
#include "../msg/msg_int.h"
#include "../queued/queued_int.h"
#include "../raw/listener_int.h"
#include "reactor_int.h"

#include <limits.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { K_FD = 1, K_TIMER, K_LISTENER };
enum { TICK_MS = 250, MAX_EVENTS = 64 };

typedef struct fdh {
    mcl_handle id;
    int fd, events;
    mcl_fd_cb cb;
    void *user;
} fdh;

typedef struct timer {
    mcl__heap_node hn; // due (ns, CLOCK_MONOTONIC), order (scheduling order, breaks ties); first
    mcl_handle id;
    int64_t period; // ns, 0: once
    uint64_t group;
    mcl_timer_cb cb;
    void *user;
    void (*dispose)(void *user); // called if the reactor is freed with the timer pending
} timer;

typedef struct lis { // an event source (a listener of any kind)
    mcl_handle id;
    const mcl__source_ops *ops;
    void *l;
    mcl_handle fd_h;
} lis;

typedef struct post {
    struct post *next;
    mcl_reactor_fn fn;
    void *arg;
    void (*dispose)(void *arg); // called if the reactor is freed before it runs
} post;

typedef struct slot {
    uint64_t id; // 0: empty; UINT64_MAX: deleted
    int kind;
    void *obj;
} slot;

struct mcl_reactor {
    pthread_mutex_t lock;
    bool use_poll;
    int epfd, wake_fd;
    // id -> object (open addressing)
    slot *tab;
    size_t tab_cap, tab_used, tab_live;
    mcl_handle next_id;
    // fd handlers (for the poll backend and fd uniqueness)
    fdh **fds;
    size_t nfds, cap_fds;
    // timer heap
    mcl__heap timers;
    uint64_t order;
    // posted functions (FIFO)
    post *qhead, *qtail;
    // listeners and their housekeeping tick
    lis **lis;
    size_t nlis, cap_lis;
    mcl_handle tick;
    // The handle whose callback runs now: a remove() from another thread waits for it to end.
    mcl_handle busy;
    pthread_cond_t idle;
    // running state
    bool running;
    bool starting;    // start() created the thread, which has not entered run() yet
    atomic_bool stop; // the loop returns (reset when it does)
    atomic_bool quit; // the reactor is being freed: its own thread must not (keep) run
    pthread_t loop_thread;
    bool has_thread;
    pthread_t thread;
};

// --- id table ----------------------------------------------------------------------------------

static size_t
h64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static mcl_err
tab_grow(mcl_reactor *r)
{
    // Mostly deleted entries (ids are never reused): rebuild at the same size, do not grow.
    size_t nc = r->tab_cap == 0 ? 64 : r->tab_live * 4 < r->tab_cap ? r->tab_cap : r->tab_cap * 2;
    while (r->tab_live * 2 >= nc)
        nc *= 2;
    slot *nt = mcl__zalloc(nc * sizeof(*nt));
    if (nt == NULL)
        return MCL_ENOMEM;
    for (size_t i = 0; i < r->tab_cap; i++) {
        slot s = r->tab[i];
        if (s.id == 0 || s.id == UINT64_MAX)
            continue;
        size_t j = h64(s.id) & (nc - 1);
        while (nt[j].id != 0)
            j = (j + 1) & (nc - 1);
        nt[j] = s;
    }
    mcl__free(r->tab);
    r->tab = nt;
    r->tab_cap = nc;
    r->tab_used = r->tab_live;
    return MCL_OK;
}

static mcl_err
tab_put(mcl_reactor *r, uint64_t id, int kind, void *obj)
{
    if ((r->tab_used + 1) * 2 > r->tab_cap && tab_grow(r) != MCL_OK)
        return MCL_ENOMEM;
    size_t j = h64(id) & (r->tab_cap - 1);
    while (r->tab[j].id != 0 && r->tab[j].id != UINT64_MAX)
        j = (j + 1) & (r->tab_cap - 1);
    if (r->tab[j].id == 0)
        r->tab_used++;
    r->tab[j] = (slot){id, kind, obj};
    r->tab_live++;
    return MCL_OK;
}

static slot *
tab_find(const mcl_reactor *r, uint64_t id)
{
    if (r->tab_cap == 0 || id == 0 || id == UINT64_MAX)
        return NULL;
    size_t j = h64(id) & (r->tab_cap - 1);
    while (r->tab[j].id != 0) {
        if (r->tab[j].id == id)
            return &r->tab[j];
        j = (j + 1) & (r->tab_cap - 1);
    }
    return NULL;
}

static void
tab_del(mcl_reactor *r, slot *s)
{
    s->id = UINT64_MAX;
    s->obj = NULL;
    r->tab_live--;
}

// --- timer heap (lib/core/u64map.h) ------------------------------------------------------------

static timer *
top_timer(const mcl_reactor *r)
{
    return (timer *)mcl__heap_top(&r->timers); // (hn is the first member)
}

// --- basics ------------------------------------------------------------------------------------

static void
wake(mcl_reactor *r)
{
    uint64_t one = 1;
    ssize_t w = write(r->wake_fd, &one, sizeof(one));
    (void)w; // the counter cannot overflow in practice; the loop wakes at its next timer anyway
}

bool
mcl_reactor_in_loop(const mcl_reactor *r)
{
    return r != NULL && r->running && pthread_equal(r->loop_thread, pthread_self());
}

mcl_err
mcl_reactor_new(mcl_reactor **rp, const mcl_reactor_options *opt)
{
    if (rp != NULL)
        *rp = NULL;
    if (rp == NULL)
        return MCL_EINVAL;
    mcl_reactor *r = mcl__zalloc(sizeof(*r));
    if (r == NULL)
        return MCL_ENOMEM;
    r->epfd = r->wake_fd = -1;
    r->use_poll = opt != NULL && opt->use_poll;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        mcl__free(r);
        return MCL_ESYS;
    }
    if (pthread_cond_init(&r->idle, NULL) != 0) {
        pthread_mutex_destroy(&r->lock);
        mcl__free(r);
        return MCL_ESYS;
    }
    mcl_err rv = MCL_OK;
    r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->wake_fd < 0)
        rv = mcl__sys_err(errno);
    if (rv == MCL_OK && !r->use_poll) {
        r->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (r->epfd < 0) {
            r->use_poll = true; // the fallback
        } else {
            struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
            if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->wake_fd, &ev) != 0)
                rv = mcl__sys_err(errno);
        }
    }
    if (rv == MCL_OK)
        rv = tab_grow(r);
    if (rv != MCL_OK) {
        mcl_reactor_free(r);
        return rv;
    }
    *rp = r;
    return MCL_OK;
}

// --- posting -----------------------------------------------------------------------------------

mcl_err
mcl_reactor_post(mcl_reactor *r, mcl_reactor_fn fn, void *arg)
{
    return mcl__reactor_post_disposable(r, fn, arg, NULL);
}

mcl_err
mcl__reactor_post_disposable(mcl_reactor *r, mcl_reactor_fn fn, void *arg,
                             void (*dispose)(void *arg))
{
    if (r == NULL || fn == NULL)
        return MCL_EINVAL;
    post *p = mcl__alloc(sizeof(*p));
    if (p == NULL)
        return MCL_ENOMEM;
    *p = (post){NULL, fn, arg, dispose};
    pthread_mutex_lock(&r->lock);
    if (r->qtail)
        r->qtail->next = p;
    else
        r->qhead = p;
    r->qtail = p;
    pthread_mutex_unlock(&r->lock);
    wake(r);
    return MCL_OK;
}

typedef struct call_ctx {
    mcl_reactor_fn fn;
    void *arg;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool done;
    mcl_err rv;
} call_ctx;

static void
call_cancel(void *arg) // the reactor was freed first: the caller must not wait forever
{
    call_ctx *c = arg;
    pthread_mutex_lock(&c->m);
    c->rv = MCL_ECANCELED;
    c->done = true;
    pthread_cond_signal(&c->c);
    pthread_mutex_unlock(&c->m);
}

static void
call_tramp(mcl_reactor *r, void *arg)
{
    call_ctx *c = arg;
    c->fn(r, c->arg);
    pthread_mutex_lock(&c->m);
    c->done = true;
    pthread_cond_signal(&c->c);
    pthread_mutex_unlock(&c->m);
}

mcl_err
mcl_reactor_call(mcl_reactor *r, mcl_reactor_fn fn, void *arg)
{
    if (r == NULL || fn == NULL)
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(r)) {
        fn(r, arg);
        return MCL_OK;
    }
    call_ctx c = {.fn = fn, .arg = arg, .done = false, .rv = MCL_OK};
    pthread_mutex_init(&c.m, NULL);
    pthread_cond_init(&c.c, NULL);
    mcl_err rv = mcl__reactor_post_disposable(r, call_tramp, &c, call_cancel);
    if (rv == MCL_OK) {
        pthread_mutex_lock(&c.m);
        while (!c.done)
            pthread_cond_wait(&c.c, &c.m);
        rv = c.rv;
        pthread_mutex_unlock(&c.m);
    }
    pthread_cond_destroy(&c.c);
    pthread_mutex_destroy(&c.m);
    return rv;
}

// --- fd handlers -------------------------------------------------------------------------------

static uint32_t
to_epoll(int events)
{
    return (events & MCL_EV_READ ? EPOLLIN : 0u) | (events & MCL_EV_WRITE ? EPOLLOUT : 0u);
}

mcl_err
mcl_reactor_add_fd(mcl_reactor *r, int fd, int events, mcl_fd_cb cb, void *user, mcl_handle *h)
{
    if (h != NULL)
        *h = 0;
    if (r == NULL || fd < 0 || cb == NULL || (events & ~(MCL_EV_READ | MCL_EV_WRITE)))
        return MCL_EINVAL;
    if (r->use_poll) { // refuse what epoll refuses, instead of spinning on POLLNVAL later
        struct stat st;
        if (fcntl(fd, F_GETFD) < 0 || fstat(fd, &st) != 0 || S_ISREG(st.st_mode) ||
            S_ISDIR(st.st_mode))
            return MCL_EINVAL;
    }
    fdh *f = mcl__alloc(sizeof(*f));
    if (f == NULL)
        return MCL_ENOMEM;
    mcl_err rv = MCL_OK;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->nfds; i++)
        if (r->fds[i]->fd == fd) {
            rv = MCL_EEXIST;
            goto out;
        }
    if (r->nfds == r->cap_fds) {
        size_t nc = r->cap_fds ? r->cap_fds * 2 : 16;
        fdh **nf = mcl__realloc(r->fds, nc * sizeof(*nf));
        if (nf == NULL) {
            rv = MCL_ENOMEM;
            goto out;
        }
        r->fds = nf;
        r->cap_fds = nc;
    }
    *f = (fdh){++r->next_id, fd, events, cb, user};
    if (!r->use_poll) {
        struct epoll_event ev = {.events = to_epoll(events), .data.u64 = f->id};
        if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            rv = mcl__sys_err(errno);
            goto out;
        }
    }
    if ((rv = tab_put(r, f->id, K_FD, f)) != MCL_OK) {
        if (!r->use_poll)
            epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL);
        goto out;
    }
    r->fds[r->nfds++] = f;
    if (h != NULL)
        *h = f->id;
    f = NULL;
out:
    pthread_mutex_unlock(&r->lock);
    mcl__free(f);
    if (rv == MCL_OK)
        wake(r); // the poll backend rebuilds its set
    return rv;
}

mcl_err
mcl_reactor_modify_fd(mcl_reactor *r, mcl_handle h, int events)
{
    if (r == NULL || (events & ~(MCL_EV_READ | MCL_EV_WRITE)))
        return MCL_EINVAL;
    mcl_err rv = MCL_ENOENT;
    pthread_mutex_lock(&r->lock);
    slot *s = tab_find(r, h);
    if (s != NULL && s->kind == K_FD) {
        fdh *f = s->obj;
        f->events = events;
        rv = MCL_OK;
        if (!r->use_poll) {
            struct epoll_event ev = {.events = to_epoll(events), .data.u64 = f->id};
            if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, f->fd, &ev) != 0)
                rv = mcl__sys_err(errno);
        }
    }
    pthread_mutex_unlock(&r->lock);
    wake(r);
    return rv;
}

// Called with the lock held.
static void
remove_fd_locked(mcl_reactor *r, slot *s)
{
    fdh *f = s->obj;
    if (!r->use_poll)
        epoll_ctl(r->epfd, EPOLL_CTL_DEL, f->fd, NULL);
    for (size_t i = 0; i < r->nfds; i++)
        if (r->fds[i] == f) {
            r->fds[i] = r->fds[--r->nfds];
            break;
        }
    tab_del(r, s);
    mcl__free(f);
}

// --- timers ------------------------------------------------------------------------------------

#define MAX_MS ((int64_t)1000000000000) // 31 years: keeps every deadline in int64 nanoseconds

static mcl_err timer_add(mcl_reactor *r, int64_t delay_ms, int64_t period_ms, uint64_t group,
                         mcl_timer_cb cb, void *user, void (*dispose)(void *), mcl_handle *h);

mcl_err
mcl_reactor_timer(mcl_reactor *r, int64_t delay_ms, int64_t period_ms, uint64_t group,
                  mcl_timer_cb cb, void *user, mcl_handle *h)
{
    return timer_add(r, delay_ms, period_ms, group, cb, user, NULL, h);
}

mcl_err
mcl__reactor_timer_disposable(mcl_reactor *r, int64_t delay_ms, mcl_timer_cb cb, void *user,
                              void (*dispose)(void *user), mcl_handle *h)
{
    return timer_add(r, delay_ms, 0, 0, cb, user, dispose, h);
}

static mcl_err
timer_add(mcl_reactor *r, int64_t delay_ms, int64_t period_ms, uint64_t group, mcl_timer_cb cb,
          void *user, void (*dispose)(void *), mcl_handle *h)
{
    if (h != NULL)
        *h = 0;
    if (r == NULL || cb == NULL || delay_ms < 0 || period_ms < 0 || delay_ms > MAX_MS ||
        period_ms > MAX_MS)
        return MCL_EINVAL;
    timer *t = mcl__alloc(sizeof(*t));
    if (t == NULL)
        return MCL_ENOMEM;
    int64_t now = mcl__mono_ns();
    pthread_mutex_lock(&r->lock);
    *t = (timer){.hn = {.due = now + delay_ms * 1000000, .order = ++r->order},
                 .id = ++r->next_id,
                 .period = period_ms * 1000000,
                 .group = group,
                 .cb = cb,
                 .user = user,
                 .dispose = dispose};
    mcl_err rv = tab_put(r, t->id, K_TIMER, t);
    if (rv == MCL_OK && (rv = mcl__heap_push(&r->timers, &t->hn)) != MCL_OK)
        tab_del(r, tab_find(r, t->id));
    bool first = rv == MCL_OK && top_timer(r) == t;
    if (rv == MCL_OK && h != NULL)
        *h = t->id;
    pthread_mutex_unlock(&r->lock);
    if (rv != MCL_OK)
        mcl__free(t);
    else if (first && !mcl_reactor_in_loop(r))
        wake(r); // the loop may be sleeping past the new deadline
    return rv;
}

static mcl_err
retime(mcl_reactor *r, mcl_handle h, int64_t ms, int how)
{
    if (r == NULL || ms > MAX_MS || ms < (how == 0 ? -MAX_MS : 0))
        return MCL_EINVAL;
    int64_t now = mcl__mono_ns();
    mcl_err rv = MCL_ENOENT;
    pthread_mutex_lock(&r->lock);
    slot *s = tab_find(r, h);
    if (s != NULL && s->kind == K_TIMER) {
        timer *t = s->obj;
        int64_t due = how == 0 ? t->hn.due + ms * 1000000 : now + ms * 1000000;
        if (how == 2 && due >= t->hn.due) {
            rv = MCL_EALREADY;
        } else {
            t->hn.due = due;
            mcl__heap_fix(&r->timers, &t->hn);
            rv = MCL_OK;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (rv == MCL_OK && !mcl_reactor_in_loop(r))
        wake(r);
    return rv;
}

mcl_err
mcl_reactor_timer_delay(mcl_reactor *r, mcl_handle h, int64_t ms)
{
    return retime(r, h, ms, 0);
}

mcl_err
mcl_reactor_timer_reset(mcl_reactor *r, mcl_handle h, int64_t ms)
{
    return retime(r, h, ms, 1);
}

mcl_err
mcl_reactor_timer_reset_if_earlier(mcl_reactor *r, mcl_handle h, int64_t ms)
{
    return retime(r, h, ms, 2);
}

static void
remove_timer_locked(mcl_reactor *r, slot *s)
{
    timer *t = s->obj;
    mcl__heap_remove(&r->timers, &t->hn);
    tab_del(r, s);
    mcl__free(t);
}

size_t
mcl_reactor_cancel_group(mcl_reactor *r, uint64_t group)
{
    if (r == NULL || group == 0)
        return 0;
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->timers.n;) {
        timer *t = (timer *)r->timers.a[i];
        if (t->group == group) {
            remove_timer_locked(r, tab_find(r, t->id));
            n++;
            i = 0; // the heap was reshuffled; groups are cancelled rarely
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

size_t
mcl_reactor_timers(const mcl_reactor *cr)
{
    mcl_reactor *r = (mcl_reactor *)(uintptr_t)cr;
    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->lock);
    size_t n = r->timers.n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

// --- listeners ---------------------------------------------------------------------------------

static void
dispatch_listener(const lis *x)
{
    x->ops->dispatch(x->l);
}

static void
on_listener_fd(mcl_reactor *r, int fd, int events, void *user)
{
    (void)r;
    (void)fd;
    (void)events;
    dispatch_listener(user);
}

// Every TICK_MS: dispatch every listener (expiry, drop counts, receiver restarts).
static void
on_tick(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)user;
    pthread_mutex_lock(&r->lock);
    size_t n = r->nlis;
    lis **copy = n ? mcl__alloc(n * sizeof(*copy)) : NULL;
    mcl_handle *ids = n ? mcl__alloc(n * sizeof(*ids)) : NULL;
    if (copy != NULL && ids != NULL)
        for (size_t i = 0; i < n; i++) {
            copy[i] = r->lis[i];
            ids[i] = r->lis[i]->id;
        }
    else
        n = 0;
    pthread_mutex_unlock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        // A callback may have removed a listener meanwhile: check it is still registered, and
        // mark it busy so that a remove() from another thread waits for this dispatch.
        pthread_mutex_lock(&r->lock);
        slot *s = tab_find(r, ids[i]);
        bool live = s != NULL && s->obj == copy[i];
        if (live)
            r->busy = ids[i];
        pthread_mutex_unlock(&r->lock);
        if (!live)
            continue;
        dispatch_listener(copy[i]);
        pthread_mutex_lock(&r->lock);
        r->busy = h;
        pthread_cond_broadcast(&r->idle);
        pthread_mutex_unlock(&r->lock);
    }
    mcl__free(copy);
    mcl__free(ids);
}

// Registers an event source: its fd, and the tick that dispatches every source.
mcl_err
mcl__reactor_add_source(mcl_reactor *r, const mcl__source_ops *ops, void *l, mcl_handle *h)
{
    if (h != NULL)
        *h = 0;
    int fd;
    if (r == NULL || l == NULL)
        return MCL_EINVAL;
    mcl_err rv = ops->fd(l, &fd);
    if (rv != MCL_OK)
        return rv == MCL_ESTATE ? MCL_ESTATE : MCL_EINVAL;
    lis *x = mcl__zalloc(sizeof(*x));
    if (x == NULL)
        return MCL_ENOMEM;
    x->ops = ops;
    x->l = l;
    rv = mcl_reactor_add_fd(r, fd, MCL_EV_READ, on_listener_fd, x, &x->fd_h);
    if (rv != MCL_OK) {
        mcl__free(x);
        return rv;
    }
    pthread_mutex_lock(&r->lock);
    bool need_tick = r->tick == 0;
    if (r->nlis == r->cap_lis) {
        size_t nc = r->cap_lis ? r->cap_lis * 2 : 16;
        lis **nl = mcl__realloc(r->lis, nc * sizeof(*nl));
        if (nl == NULL)
            rv = MCL_ENOMEM;
        else {
            r->lis = nl;
            r->cap_lis = nc;
        }
    }
    if (rv == MCL_OK) {
        x->id = ++r->next_id;
        rv = tab_put(r, x->id, K_LISTENER, x);
    }
    if (rv == MCL_OK)
        r->lis[r->nlis++] = x;
    pthread_mutex_unlock(&r->lock);
    if (rv != MCL_OK) {
        mcl_reactor_remove(r, x->fd_h);
        mcl__free(x);
        return rv;
    }
    mcl_handle tick = 0;
    if (need_tick && mcl_reactor_timer(r, TICK_MS, TICK_MS, 0, on_tick, NULL, &tick) == MCL_OK) {
        pthread_mutex_lock(&r->lock);
        if (r->tick == 0) {
            r->tick = tick;
            tick = 0;
        }
        pthread_mutex_unlock(&r->lock);
        if (tick != 0) // another thread installed one meanwhile
            mcl_reactor_remove(r, tick);
    }
    if (h != NULL)
        *h = x->id;
    return MCL_OK;
}

// The public entry points: one per listener type, each a source for the same loop.
mcl_err
mcl_reactor_add_raw_listener(mcl_reactor *r, mcl_raw_listener *l, mcl_handle *h)
{
    return mcl__reactor_add_source(r, &mcl__raw_listener_source, l, h);
}

mcl_err
mcl_reactor_add_msg_listener(mcl_reactor *r, mcl_msg_listener *l, mcl_handle *h)
{
    return mcl__reactor_add_source(r, &mcl__msg_listener_source, l, h);
}

mcl_err
mcl_reactor_add_queued_listener(mcl_reactor *r, mcl_queued_listener *l, mcl_handle *h)
{
    return mcl__reactor_add_source(r, &mcl__queued_listener_source, l, h);
}

// --- removal -----------------------------------------------------------------------------------

mcl_err
mcl_reactor_remove(mcl_reactor *r, mcl_handle h)
{
    if (r == NULL)
        return MCL_EINVAL;
    mcl_handle fd_h = 0;
    mcl_err rv = MCL_OK;
    bool in_loop = mcl_reactor_in_loop(r);
    pthread_mutex_lock(&r->lock);
    slot *s = tab_find(r, h);
    if (s != NULL && s->kind == K_LISTENER)
        fd_h = ((lis *)s->obj)->fd_h;
    // From another thread, wait until a running callback of this handle (or, for a listener,
    // of its fd) has returned: afterwards it is never called again, and its data may go.
    while (!in_loop && r->busy != 0 && (r->busy == h || (fd_h != 0 && r->busy == fd_h))) {
        pthread_cond_wait(&r->idle, &r->lock);
        s = tab_find(r, h);
    }
    if (s == NULL) {
        rv = MCL_ENOENT;
    } else if (s->kind == K_FD) {
        remove_fd_locked(r, s);
    } else if (s->kind == K_TIMER) {
        remove_timer_locked(r, s);
    } else {
        lis *x = s->obj;
        for (size_t i = 0; i < r->nlis; i++)
            if (r->lis[i] == x) {
                r->lis[i] = r->lis[--r->nlis];
                break;
            }
        tab_del(r, s);
        slot *fs = tab_find(r, fd_h);
        if (fs != NULL)
            remove_fd_locked(r, fs);
        mcl__free(x);
        if (r->nlis == 0 && r->tick != 0) { // no listener left: no housekeeping either
            slot *ts = tab_find(r, r->tick);
            if (ts != NULL)
                remove_timer_locked(r, ts);
            r->tick = 0;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return rv;
}

// --- the loop ----------------------------------------------------------------------------------

static void set_idle(mcl_reactor *r);

// Runs the timers due at `now` (those that become due while running wait for the next round).
static void
run_timers(mcl_reactor *r)
{
    int64_t now = mcl__mono_ns();
    for (;;) {
        pthread_mutex_lock(&r->lock);
        timer *t = top_timer(r);
        if (t == NULL || t->hn.due > now || atomic_load(&r->stop)) {
            pthread_mutex_unlock(&r->lock);
            return;
        }
        mcl_timer_cb cb = t->cb;
        void *user = t->user;
        mcl_handle id = t->id;
        timer *done = NULL;
        if (t->period > 0) { // reschedule before the call, so the callback may cancel it
            // Missed periods run late, in order; after a stall of over a second the timer skips
            // ahead instead of firing a burst of catch-ups.
            t->hn.due += t->period;
            if (t->hn.due < now - 1000000000)
                t->hn.due = now + t->period;
            t->hn.order = ++r->order;
            mcl__heap_fix(&r->timers, &t->hn);
        } else {
            mcl__heap_remove(&r->timers, &t->hn);
            tab_del(r, tab_find(r, id));
            done = t;
        }
        r->busy = id;
        pthread_mutex_unlock(&r->lock);
        cb(r, id, user);
        mcl__free(done);
        set_idle(r);
    }
}

static void
run_posts(mcl_reactor *r)
{
    pthread_mutex_lock(&r->lock);
    post *p = r->qhead;
    r->qhead = r->qtail = NULL;
    pthread_mutex_unlock(&r->lock);
    while (p != NULL) {
        post *n = p->next;
        p->fn(r, p->arg);
        mcl__free(p);
        p = n;
    }
}

static void
set_idle(mcl_reactor *r)
{
    pthread_mutex_lock(&r->lock);
    r->busy = 0;
    pthread_cond_broadcast(&r->idle);
    pthread_mutex_unlock(&r->lock);
}

static void
fire_fd(mcl_reactor *r, uint64_t id, int events)
{
    pthread_mutex_lock(&r->lock);
    slot *s = tab_find(r, id);
    fdh f = {0};
    bool live = s != NULL && s->kind == K_FD;
    if (live) {
        f = *(fdh *)s->obj;
        r->busy = id;
    }
    pthread_mutex_unlock(&r->lock);
    if (!live) // removed by an earlier callback of this round: skipped
        return;
    f.cb(r, f.fd, events, f.user);
    set_idle(r);
}

static int
from_revents(uint32_t e, bool poll_style)
{
    int ev = 0;
    if (poll_style) {
        ev |= e & POLLIN ? MCL_EV_READ : 0;
        ev |= e & POLLOUT ? MCL_EV_WRITE : 0;
        ev |= e & (POLLERR | POLLNVAL) ? MCL_EV_ERROR : 0;
        ev |= e & POLLHUP ? MCL_EV_HUP : 0;
    } else {
        ev |= e & EPOLLIN ? MCL_EV_READ : 0;
        ev |= e & EPOLLOUT ? MCL_EV_WRITE : 0;
        ev |= e & EPOLLERR ? MCL_EV_ERROR : 0;
        ev |= e & EPOLLHUP ? MCL_EV_HUP : 0;
    }
    return ev;
}

static int
next_timeout(mcl_reactor *r)
{
    pthread_mutex_lock(&r->lock);
    int ms = -1;
    if (r->qhead != NULL)
        ms = 0;
    else if (top_timer(r) != NULL) {
        int64_t left = top_timer(r)->hn.due - mcl__mono_ns();
        int64_t lms = left <= 0 ? 0 : (left + 999999) / 1000000;
        ms = lms > INT_MAX ? INT_MAX : (int)lms; // a timer weeks away: wake, then sleep again
    }
    pthread_mutex_unlock(&r->lock);
    return ms;
}

static void
drain_wake(mcl_reactor *r)
{
    uint64_t v;
    ssize_t n = read(r->wake_fd, &v, sizeof(v));
    (void)n;
}

static void
loop_once_epoll(mcl_reactor *r, int timeout)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(r->epfd, evs, MAX_EVENTS, timeout);
    for (int i = 0; i < n && !atomic_load(&r->stop); i++) {
        if (evs[i].data.u64 == 0)
            drain_wake(r);
        else
            fire_fd(r, evs[i].data.u64, from_revents(evs[i].events, false));
    }
}

static void
loop_once_poll(mcl_reactor *r, int timeout)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->nfds;
    struct pollfd *p = mcl__alloc((n + 1) * sizeof(*p));
    uint64_t *ids = mcl__alloc((n + 1) * sizeof(*ids));
    if (p == NULL || ids == NULL) {
        pthread_mutex_unlock(&r->lock);
        mcl__free(p);
        mcl__free(ids);
        struct pollfd w = {.fd = r->wake_fd, .events = POLLIN};
        poll(&w, 1, timeout < 0 || timeout > 10 ? 10 : timeout); // retry soon
        return;
    }
    p[0] = (struct pollfd){.fd = r->wake_fd, .events = POLLIN};
    for (size_t i = 0; i < n; i++) {
        p[i + 1] = (struct pollfd){.fd = r->fds[i]->fd,
                                   .events = (short)((r->fds[i]->events & MCL_EV_READ ? POLLIN : 0) |
                                                     (r->fds[i]->events & MCL_EV_WRITE ? POLLOUT : 0))};
        ids[i + 1] = r->fds[i]->id;
    }
    pthread_mutex_unlock(&r->lock);
    int k = poll(p, n + 1, timeout);
    if (k > 0 && (p[0].revents & POLLIN))
        drain_wake(r);
    for (size_t i = 1; k > 0 && i <= n && !atomic_load(&r->stop); i++)
        if (p[i].revents)
            fire_fd(r, ids[i], from_revents((uint32_t)p[i].revents, true));
    mcl__free(p);
    mcl__free(ids);
}

mcl_err
mcl_reactor_run(mcl_reactor *r)
{
    if (r == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&r->lock);
    if (r->running) {
        pthread_mutex_unlock(&r->lock);
        return MCL_ESTATE;
    }
    r->running = true;
    r->starting = false;
    r->loop_thread = pthread_self();
    pthread_mutex_unlock(&r->lock);
    while (!atomic_load(&r->stop) && !atomic_load(&r->quit)) {
        int timeout = next_timeout(r);
        if (r->use_poll)
            loop_once_poll(r, timeout);
        else
            loop_once_epoll(r, timeout);
        if (atomic_load(&r->stop))
            break;
        run_timers(r);
        run_posts(r);
    }
    pthread_mutex_lock(&r->lock);
    r->running = false;
    atomic_store(&r->stop, false); // it can run again
    pthread_cond_broadcast(&r->idle); // mcl_reactor_free() may wait for this
    pthread_mutex_unlock(&r->lock);
    return MCL_OK;
}

static void *
reactor_thread(void *arg)
{
    mcl_reactor_run(arg);
    return NULL;
}

mcl_err
mcl_reactor_start(mcl_reactor *r)
{
    if (r == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&r->lock);
    bool busy = r->running || r->starting;
    bool old = r->has_thread && !busy; // a thread that ran and stopped: reap it first
    if (!busy)
        r->starting = true; // a stop() from now on applies to the new thread's run
    pthread_mutex_unlock(&r->lock);
    if (busy)
        return MCL_ESTATE;
    if (old) {
        pthread_join(r->thread, NULL);
        r->has_thread = false;
    }
    int e = pthread_create(&r->thread, NULL, reactor_thread, r);
    if (e != 0) {
        pthread_mutex_lock(&r->lock);
        r->starting = false;
        pthread_mutex_unlock(&r->lock);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "reactor", "pthread_create: %s", strerror(e));
    }
    pthread_setname_np(r->thread, "mcl-reactor");
    r->has_thread = true;
    return MCL_OK;
}

mcl_err
mcl_reactor_stop(mcl_reactor *r)
{
    if (r == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&r->lock);
    if (r->running || r->starting)
        atomic_store(&r->stop, true);
    pthread_mutex_unlock(&r->lock);
    wake(r);
    return MCL_OK;
}

void
mcl_reactor_free(mcl_reactor *r)
{
    if (r == NULL || mcl_reactor_in_loop(r))
        return;
    atomic_store(&r->quit, true); // also if the thread has not entered the loop yet
    wake(r);
    if (r->has_thread)
        pthread_join(r->thread, NULL);
    pthread_mutex_lock(&r->lock); // a run() on another (application) thread: wait for it
    while (r->running)
        pthread_cond_wait(&r->idle, &r->lock);
    pthread_mutex_unlock(&r->lock);
    for (timer *t; (t = top_timer(r)) != NULL;) {
        if (t->dispose != NULL)
            t->dispose(t->user);
        remove_timer_locked(r, tab_find(r, t->id));
    }
    while (r->nfds > 0)
        remove_fd_locked(r, tab_find(r, r->fds[0]->id));
    for (size_t i = 0; i < r->nlis; i++)
        mcl__free(r->lis[i]);
    for (post *p = r->qhead; p != NULL;) {
        post *n = p->next;
        if (p->dispose != NULL)
            p->dispose(p->arg);
        mcl__free(p);
        p = n;
    }
    mcl__free(r->lis);
    mcl__free(r->fds);
    mcl__heap_fini(&r->timers);
    mcl__free(r->tab);
    if (r->epfd >= 0)
        close(r->epfd);
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    pthread_cond_destroy(&r->idle);
    pthread_mutex_destroy(&r->lock);
    mcl__free(r);
}
