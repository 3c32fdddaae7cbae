// SPDX-License-Identifier: BSD-3-Clause
// Packet stream servers: a listening pipe endpoint that turns every peer into a connection and
// drives them all from one epoll descriptor (the endpoint's, a wake-up, and each connection's
// own epoll descriptor, nested), so that one thread, reactor or caller loop serves them all.
#define _GNU_SOURCE
#include "pstream_int.h"

#include "../core/internal.h"
#include "../core/source.h"
#include "../reactor/reactor_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { D_NONE, D_THREAD, D_REACTOR };

struct mcl_pstream_server {
    pthread_mutex_t lock; // guards conns/nconns against readers on other threads
    const mcl__pipe_ops *ops;
    mcl__pserver *ep;
    mcl_pstream_options opt;
    size_t max_packet;
    char url[MCL__URL_MAX];
    mcl_pstream_accept_cb cb;
    void *user;
    mcl_pstream **conns; // changed only by the driving thread (and free)
    size_t nconns, cap;
    int epfd, wake;
    atomic_bool wsig;
    int driver;
    pthread_t thread;
    atomic_bool stop;
    mcl_reactor *reactor;
    mcl_handle rh;
    atomic_bool dispatching;
    pthread_t dispatcher;
    bool accepting;
    int64_t drop_logged_ns; // new connections dropped: logged at most once a second
    unsigned long drops;
};

enum { MAX_CONNS = 4096 }; // connections at once: more (a peer with ever new identities) are
                           // closed at once

// Counts a dropped connection; logs (without locks held) at most once a second.
static void
dropped(mcl_pstream_server *s, mcl_err why)
{
    s->drops++;
    int64_t now = mcl__mono_ns();
    if (now - s->drop_logged_ns < 1000000000)
        return;
    s->drop_logged_ns = now;
    mcl__log(MCL_LOG_ERROR, "pstream", "%s: %lu new connection(s) dropped (last: %s)", s->url,
             s->drops, mcl_strerror(why));
    s->drops = 0;
}

static mcl_err
add_conn(mcl_pstream_server *s, mcl_pstream *c)
{
    pthread_mutex_lock(&s->lock);
    if (s->nconns == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        mcl_pstream **n = mcl__realloc(s->conns, nc * sizeof(*n));
        if (n == NULL) {
            pthread_mutex_unlock(&s->lock);
            return MCL_ENOMEM;
        }
        s->conns = n;
        s->cap = nc;
    }
    s->conns[s->nconns++] = c;
    pthread_mutex_unlock(&s->lock);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    (void)epoll_ctl(s->epfd, EPOLL_CTL_ADD, mcl__pstream_epfd(c), &ev);
    return MCL_OK;
}

static void
remove_conn(mcl_pstream_server *s, size_t i)
{
    mcl_pstream *c = s->conns[i];
    (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, mcl__pstream_epfd(c), NULL);
    pthread_mutex_lock(&s->lock);
    s->conns[i] = s->conns[--s->nconns];
    pthread_mutex_unlock(&s->lock);
    mcl__pstream_release(c);
}

static void
accept_all(mcl_pstream_server *s)
{
    for (;;) {
        mcl__pipe *pipe;
        if (s->ops->accept(s->ep, &pipe) != MCL_OK)
            return;
        mcl_pstream *c = NULL;
        mcl_err rv = s->nconns >= MAX_CONNS
                         ? MCL_EAGAIN
                         : mcl__pstream_accepted(&c, s, s->ops, pipe, s->url, &s->opt,
                                                 s->max_packet);
        if (rv == MCL_OK && (rv = add_conn(s, c)) != MCL_OK)
            mcl__pstream_release(c);
        if (rv != MCL_OK) {
            if (c == NULL)
                s->ops->close(pipe);
            dropped(s, rv);
            continue;
        }
        if (!s->accepting)
            mcl__pstream_begin_close(c, 0); // the server is closing: no new work
        else if (s->cb != NULL)
            s->cb(s, c, s->user);
    }
}

// One round: accept, then every connection that has something to do, then reap the ended.
static void
dispatch_once(mcl_pstream_server *s)
{
    if (atomic_exchange(&s->wsig, false)) {
        uint64_t v;
        ssize_t r = read(s->wake, &v, sizeof(v));
        (void)r;
    }
    struct epoll_event ev[64];
    int n = epoll_wait(s->epfd, ev, 64, 0);
    bool ready = !s->ops->accept_when_ready;
    for (int i = 0; i < n && !ready; i++)
        ready = ev[i].data.ptr == NULL; // the server's descriptor (or the wake-up)
    if (ready)
        accept_all(s);
    for (int i = 0; i < n; i++)
        if (ev[i].data.ptr != NULL)
            mcl__pstream_server_dispatch(ev[i].data.ptr);
    for (size_t i = 0; i < s->nconns; i++) // output waiting for the shared socket (zmq ROUTER)
        if (mcl__pstream_wants_retry(s->conns[i]))
            mcl__pstream_server_dispatch(s->conns[i]);
    for (size_t i = 0; i < s->nconns;) {
        if (mcl__pstream_finished(s->conns[i]))
            remove_conn(s, i);
        else
            i++;
    }
    if (n == 64) { // more may be ready: come back (the descriptor stays readable anyway)
        atomic_store(&s->wsig, true);
        uint64_t one = 1;
        ssize_t w = write(s->wake, &one, sizeof(one));
        (void)w;
    }
}

static bool
enter(mcl_pstream_server *s)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&s->dispatching, &expected, true))
        return false;
    s->dispatcher = pthread_self();
    return true;
}

static void
leave(mcl_pstream_server *s)
{
    atomic_store(&s->dispatching, false);
}

mcl_err
mcl_pstream_server_dispatch(mcl_pstream_server *s)
{
    if (s == NULL)
        return MCL_EINVAL;
    if ((s->driver == D_THREAD && !pthread_equal(s->thread, pthread_self())) ||
        (s->driver == D_REACTOR && !mcl_reactor_in_loop(s->reactor)) || !enter(s))
        return MCL_ESTATE;
    dispatch_once(s);
    leave(s);
    return MCL_OK;
}

static void *
server_thread(void *arg)
{
    mcl_pstream_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->epfd, .events = POLLIN};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            break;
        if (atomic_load(&s->stop))
            break;
        if (enter(s)) {
            dispatch_once(s);
            leave(s);
        }
    }
    return NULL;
}

mcl_err
mcl_pstream_server_open(mcl_pstream_server **sp, const char *url,
                        const mcl_pstream_options *options, mcl_pstream_accept_cb cb, void *user)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL || url == NULL)
        return MCL_EINVAL;
    mcl_connection *c = NULL;
    char err[256];
    mcl_err rv = mcl_connection_parse(&c, url, err, sizeof(err));
    if (rv != MCL_OK)
        return rv;
    mcl_pstream_server *s = mcl__zalloc(sizeof(*s));
    if (s == NULL) {
        mcl_connection_free(c);
        return MCL_ENOMEM;
    }
    s->epfd = s->wake = -1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        mcl__free(s);
        mcl_connection_free(c);
        return MCL_ESYS;
    }
    if ((rv = mcl__pstream_resolve_options(&s->opt, options, c->maxmsg)) != MCL_OK)
        goto fail;
    if (s->opt.codec != MCL_PSTREAM_NATIVE || c->tp->pipe == NULL || c->tp->pipe->listen == NULL) {
        rv = mcl__fail(MCL_EURL, NULL, 0, "pstream", "%s: %s", c->url,
                       s->opt.codec != MCL_PSTREAM_NATIVE
                           ? "the cs.packetstream format goes over descriptors only"
                           : "this transport has no packet-stream servers (use tcp, unix, zmq+tcp, "
                             "zmq+ipc or inproc)");
        goto fail;
    }
    s->ops = c->tp->pipe;
    s->max_packet = s->opt.max_packet;
    s->cb = cb;
    s->user = user;
    s->accepting = true;
    uint16_t port = 0;
    if ((rv = s->ops->listen(&s->ep, c, &port)) != MCL_OK)
        goto fail;
    if (port != 0 && port != c->port) {
        c->port = port;
        mcl__connection_canon(c);
    }
    snprintf(s->url, sizeof(s->url), "%s", c->url);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (s->epfd < 0 || s->wake < 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->ops->server_fd(s->ep), &ev) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake, &ev) != 0) {
        int e = errno;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "pstream", "%s: descriptors: %s", c->url,
                       strerror(e));
        goto fail;
    }
    mcl_connection_free(c);
    *sp = s;
    return MCL_OK;
fail:
    if (s->ep != NULL)
        s->ops->server_close(s->ep);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->wake >= 0)
        close(s->wake);
    pthread_mutex_destroy(&s->lock);
    mcl__free(s);
    mcl_connection_free(c);
    return rv;
}

const char *
mcl_pstream_server_url(const mcl_pstream_server *s)
{
    return s ? s->url : "";
}

size_t
mcl_pstream_server_connections(const mcl_pstream_server *s)
{
    if (s == NULL)
        return 0;
    mcl_pstream_server *m = (mcl_pstream_server *)(uintptr_t)s;
    pthread_mutex_lock(&m->lock);
    size_t n = m->nconns;
    pthread_mutex_unlock(&m->lock);
    return n;
}

mcl_err
mcl_pstream_server_start(mcl_pstream_server *s)
{
    if (s == NULL)
        return MCL_EINVAL;
    if (s->driver != D_NONE)
        return MCL_EALREADY;
    s->driver = D_THREAD;
    int e = pthread_create(&s->thread, NULL, server_thread, s);
    if (e != 0) {
        s->driver = D_NONE;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "pstream", "pthread_create: %s", strerror(e));
    }
    pthread_setname_np(s->thread, "mcl-pstream");
    return MCL_OK;
}

static mcl_err
source_fd(const void *obj, int *fd)
{
    *fd = ((const mcl_pstream_server *)obj)->epfd;
    return MCL_OK;
}

static void
source_dispatch(void *obj)
{
    mcl_pstream_server *s = obj;
    if (enter(s)) {
        dispatch_once(s);
        leave(s);
    }
}

static const mcl__source_ops server_source = {.fd = source_fd, .dispatch = source_dispatch};

mcl_err
mcl_pstream_server_attach(mcl_pstream_server *s, mcl_reactor *r)
{
    if (s == NULL || r == NULL)
        return MCL_EINVAL;
    if (s->driver != D_NONE)
        return MCL_EALREADY;
    s->driver = D_REACTOR;
    s->reactor = r;
    mcl_err rv = mcl__reactor_add_source(r, &server_source, s, &s->rh);
    if (rv != MCL_OK) {
        s->driver = D_NONE;
        s->reactor = NULL;
    }
    return rv;
}

mcl_err
mcl_pstream_server_fd(const mcl_pstream_server *s, int *fd)
{
    if (fd != NULL)
        *fd = -1;
    if (s == NULL || fd == NULL)
        return MCL_EINVAL;
    *fd = s->epfd;
    return MCL_OK;
}

bool
mcl__pstream_server_driving(const mcl_pstream_server *s)
{
    pthread_t me = pthread_self();
    if (atomic_load(&s->dispatching) && pthread_equal(s->dispatcher, me))
        return true;
    if (s->driver == D_THREAD && pthread_equal(s->thread, me))
        return true;
    return s->driver == D_REACTOR && mcl_reactor_in_loop(s->reactor);
}

void
mcl_pstream_server_free(mcl_pstream_server *s, int timeout_ms)
{
    if (s == NULL)
        return;
    if (s->driver == D_THREAD) {
        atomic_store(&s->stop, true);
        atomic_store(&s->wsig, true);
        uint64_t one = 1;
        ssize_t w = write(s->wake, &one, sizeof(one));
        (void)w;
        pthread_join(s->thread, NULL);
    } else if (s->driver == D_REACTOR) {
        (void)mcl_reactor_remove(s->reactor, s->rh); // waits for a dispatch in progress
    }
    s->driver = D_NONE;
    while (!enter(s)) { // a caller's dispatch on another thread: let it finish
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    // Orderly: every connection closes (ERQ, handlers, EOF), driven from here, in bounded time.
    s->accepting = false;
    int ms = timeout_ms > 0 ? timeout_ms : s->opt.close_ms > 0 ? s->opt.close_ms : 5000;
    for (size_t i = 0; i < s->nconns; i++)
        mcl__pstream_begin_close(s->conns[i], ms);
    int64_t end = mcl__mono_ns() + (int64_t)ms * 1000000;
    while (s->nconns > 0 && mcl__mono_ns() < end) {
        dispatch_once(s);
        if (s->nconns == 0)
            break;
        struct pollfd p = {.fd = s->epfd, .events = POLLIN};
        (void)poll(&p, 1, 10);
    }
    while (s->nconns > 0) // what did not finish in time ends now
        remove_conn(s, s->nconns - 1);
    leave(s);
    s->ops->server_close(s->ep);
    close(s->epfd);
    close(s->wake);
    mcl__free(s->conns);
    pthread_mutex_destroy(&s->lock);
    mcl__free(s);
}
