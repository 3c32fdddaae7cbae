// SPDX-License-Identifier: BSD-3-Clause
// zmq+ pipes for the packet stream: a dial is a DEALER that connects, a server a ROUTER that
// binds (ROUTER_MANDATORY on: a packet for a peer that is gone is an error, not silently
// dropped), both with ZMTP heartbeats. One packet is one single-part message; a ROUTER peer is
// known by its routing id, and each id that sends is one pipe. The ROUTER's socket is shared
// by its pipes: whoever reads it (the server's accept, or a pipe's recv) hands every message
// to its pipe's queue and signals that pipe's eventfd; `lock` guards the socket and the queues.
#define _GNU_SOURCE
#include "zmq_int.h"

#include "../../core/internal.h"
#include "../../core/u64map.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
    HB_IVL_MS = 1000,     // ZMTP PING interval
    HB_TIMEOUT_MS = 5000, // a silent connection is dropped (and a DEALER reconnects)
    ID_MAX = 256,         // routing ids libzmq makes are 5 bytes; a peer may set up to 255
    PUMP = 64,            // messages a read of the shared socket hands out at most
    BACKLOG = 1024,       // new peers waiting to be accepted
};
#define PEER_QUEUE_MAX ((size_t)64 << 20) // a peer's unread packets; beyond, its pipe fails
                                          // (one peer must not stop the shared socket)

struct mcl__pserver;

struct mcl__pipe {
    // A dial: its own DEALER.
    mcl__zsock *z;
    int zfd; // ZMQ_FD
    // A ROUTER peer: its id, its queue, and an eventfd readable while the queue has packets
    // (or the server is gone).
    struct mcl__pserver *srv;
    struct mcl__pipe *hnext; // in the server's table, same hash
    uint8_t id[ID_MAX];
    size_t idlen;
    uint64_t hash;
    zmq_msg_t *ring; // the packets waiting: a ring of rcap (a power of two), rn from rhead
    size_t rcap, rhead, rn;
    size_t qbytes;
    int efd;
    bool sig;
    bool overflow; // sent more than PEER_QUEUE_MAX that was not read: its pipe has failed
    // The packet handed out last.
    zmq_msg_t cur;
    bool have_cur;
};

struct mcl__pserver {
    mcl__zsock *z; // the ROUTER; its lock guards everything below
    int zfd;
    int epfd, wake; // server_fd: ZMQ_FD and a wake-up (when a read stopped with more waiting)
    bool wsig;
    mcl__u64map peers; // hash of id -> first pipe of that hash (chained through hnext)
    mcl__pipe *pending[BACKLOG];
    size_t npending;
    // The socket was read until EAGAIN (ZMQ_FD re-armed) and nothing was sent on it since:
    // a peer's empty queue need not read it again, and nobody need ask ZMQ_EVENTS (each such
    // question costs libzmq a poll and a getpid).
    bool dry;
};

static uint64_t
id_hash(const uint8_t *id, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ id[i]) * 0x100000001b3ULL;
    return h;
}

static void
sig_set(int fd, bool *flag)
{
    if (*flag)
        return;
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w;
    *flag = true;
}

static void
sig_clear(int fd, bool *flag)
{
    if (!*flag)
        return;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    *flag = false;
}

// Options every pipe socket gets: heartbeats, the largest packet, no linger beyond the URL's.
static mcl_err
pipe_socket(const struct mcl_connection *c, int type, mcl__zsock **zp, void **ctx)
{
    mcl_err rv = mcl__zmq_zsock_new(c, type, zp, ctx);
    if (rv != MCL_OK)
        return rv;
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    int ivl = HB_IVL_MS, tmo = HB_TIMEOUT_MS, ttl = HB_TIMEOUT_MS, one = 1, hwm = o->hwm;
    int64_t max = (int64_t)c->maxmsg + 64;
    void *s = (*zp)->s;
    if (zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &tmo, sizeof(tmo)) != 0 ||
        zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &ttl, sizeof(ttl)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0 ||
        (hwm > 0 && (zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
                     zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0)) ||
        (type == ZMQ_ROUTER && zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one)) != 0)) {
        int e = errno;
        mcl__zmq_zsock_close(*zp);
        *zp = NULL;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "%s: zmq_setsockopt: %s", c->url,
                         zmq_strerror(e));
    }
    const mcl__zmq_opts *ko = o;
    if (ko->curve_key[0] != '\0' || ko->curve_server[0] != '\0')
        mcl__zmq_setup_monitor(*zp, *ctx, false);
    return MCL_OK;
}

static int
zfd_of(mcl__zsock *z)
{
    int fd = -1;
    size_t l = sizeof(fd);
    return zmq_getsockopt(z->s, ZMQ_FD, &fd, &l) == 0 ? fd : -1;
}

// Builds one message from the pieces (one copy, which libzmq owns from then on).
// Buffers of large messages, reused: libzmq gives a message of this size a fresh allocation,
// which comes from mmap, so every large send would fault its pages in again (a stream's
// 256 KiB pushes spent a third of their time so). Classes of 64 KiB << c; at most BIG_KEEP
// per class and BIG_BYTES in all are kept; libzmq hands a buffer back (big_release) from its
// I/O thread once it has sent it.
enum { BIG_MIN = 64 * 1024, BIG_CLASSES = 8, BIG_KEEP = 4, BIG_BYTES = 16 << 20 };
static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;
static void *big_pool[BIG_CLASSES][BIG_KEEP];
static int big_n[BIG_CLASSES];
static size_t big_kept;

static int
big_class(size_t len)
{
    for (int c = 0; c < BIG_CLASSES; c++)
        if (len <= ((size_t)BIG_MIN << c))
            return c;
    return -1;
}

static void
big_release(void *data, void *hint)
{
    int c = (int)(intptr_t)hint;
    size_t sz = (size_t)BIG_MIN << c;
    pthread_mutex_lock(&big_lock);
    if (big_n[c] < BIG_KEEP && big_kept + sz <= BIG_BYTES) {
        big_pool[c][big_n[c]++] = data;
        big_kept += sz;
        data = NULL;
    }
    pthread_mutex_unlock(&big_lock);
    mcl__free(data);
}

// A message of len bytes: from the pool when large (false: init it the usual way).
static bool
big_msg(zmq_msg_t *m, size_t len)
{
    int c = len >= BIG_MIN ? big_class(len) : -1;
    if (c < 0)
        return false;
    void *b = NULL;
    pthread_mutex_lock(&big_lock);
    if (big_n[c] > 0) {
        b = big_pool[c][--big_n[c]];
        big_kept -= (size_t)BIG_MIN << c;
    }
    pthread_mutex_unlock(&big_lock);
    if (b == NULL && (b = mcl__alloc((size_t)BIG_MIN << c)) == NULL)
        return false;
    if (zmq_msg_init_data(m, b, len, big_release, (void *)(intptr_t)c) != 0) {
        mcl__free(b);
        return false;
    }
    return true;
}

static mcl_err
msg_of(zmq_msg_t *m, const struct iovec *iov, unsigned niov, char *why, size_t whylen)
{
    size_t len = 0;
    for (unsigned i = 0; i < niov; i++)
        len += iov[i].iov_len;
    if (!big_msg(m, len) && zmq_msg_init_size(m, len) != 0) {
        snprintf(why, whylen, "zmq_msg_init_size(%zu): out of memory", len);
        return MCL_ENOMEM;
    }
    uint8_t *p = zmq_msg_data(m);
    for (unsigned i = 0; i < niov; i++) {
        if (iov[i].iov_len > 0)
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += iov[i].iov_len;
    }
    return MCL_OK;
}

static mcl_err
send_error(int e, const char *what, char *why, size_t whylen)
{
    if (e == EAGAIN)
        return MCL_EAGAIN;
    snprintf(why, whylen, "%s: %s", what, zmq_strerror(e));
    return e == EHOSTUNREACH ? MCL_EUNREACH : e == ETERM ? MCL_ECLOSED : mcl__sys_err(e);
}

static void
drop_cur(mcl__pipe *p)
{
    if (p->have_cur) {
        zmq_msg_close(&p->cur);
        p->have_cur = false;
    }
}

// --- dial: a DEALER ------------------------------------------------------------------------------

static mcl_err
zp_dial(mcl__pipe **pp, const struct mcl_connection *c)
{
    *pp = NULL;
    mcl__pipe *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return MCL_ENOMEM;
    p->efd = -1;
    void *ctx;
    mcl_err rv = pipe_socket(c, ZMQ_DEALER, &p->z, &ctx);
    if (rv == MCL_OK) {
        char ep[MCL__ZADDR_MAX + 32];
        uint16_t port = 0;
        mcl__zmq_endpoint(c, ep, sizeof(ep));
        rv = mcl__zmq_bind_or_connect(p->z, c, false, ep, &port);
    }
    if (rv == MCL_OK && (p->zfd = zfd_of(p->z)) < 0)
        rv = mcl__fail(MCL_ESYS, NULL, 0, "zmq", "%s: no ZMQ_FD", c->url);
    if (rv != MCL_OK) {
        mcl__zmq_zsock_close(p->z);
        mcl__free(p);
        return rv;
    }
    *pp = p;
    return MCL_OK;
}

// --- a ROUTER server -----------------------------------------------------------------------------

static mcl__pipe *
peer_find(struct mcl__pserver *s, const uint8_t *id, size_t n, uint64_t h)
{
    for (mcl__pipe *p = mcl__u64map_get(&s->peers, h); p != NULL; p = p->hnext)
        if (p->idlen == n && memcmp(p->id, id, n) == 0)
            return p;
    return NULL;
}

static void
peer_unlink(struct mcl__pserver *s, mcl__pipe *p)
{
    mcl__pipe *first = mcl__u64map_get(&s->peers, p->hash);
    if (first == p) {
        if (p->hnext != NULL)
            (void)mcl__u64map_put(&s->peers, p->hash, p->hnext); // replaces: cannot fail
        else
            mcl__u64map_del(&s->peers, p->hash);
    } else {
        for (mcl__pipe *q = first; q != NULL; q = q->hnext)
            if (q->hnext == p) {
                q->hnext = p->hnext;
                break;
            }
    }
    p->hnext = NULL;
}

static void
queue_free(mcl__pipe *p)
{
    for (size_t i = 0; i < p->rn; i++)
        zmq_msg_close(&p->ring[(p->rhead + i) & (p->rcap - 1)]);
    mcl__free(p->ring);
    p->ring = NULL;
    p->rcap = p->rhead = p->rn = 0;
    p->qbytes = 0;
}

// Moves m into p's ring (no allocation per packet: the ring doubles when full); m is left
// empty. MCL_ENOMEM (m untouched).
static mcl_err
queue_push(mcl__pipe *p, zmq_msg_t *m)
{
    if (p->rn == p->rcap) {
        size_t nc = p->rcap ? 2 * p->rcap : 16;
        zmq_msg_t *nr = mcl__alloc(nc * sizeof(*nr));
        if (nr == NULL)
            return MCL_ENOMEM;
        for (size_t i = 0; i < p->rn; i++) { // moved the documented way (no copy of the data)
            zmq_msg_t *o = &p->ring[(p->rhead + i) & (p->rcap - 1)];
            zmq_msg_init(&nr[i]);
            zmq_msg_move(&nr[i], o);
            zmq_msg_close(o);
        }
        mcl__free(p->ring);
        p->ring = nr;
        p->rcap = nc;
        p->rhead = 0;
    }
    zmq_msg_t *slot = &p->ring[(p->rhead + p->rn) & (p->rcap - 1)];
    zmq_msg_init(slot);
    zmq_msg_move(slot, m);
    zmq_msg_close(m);
    p->rn++;
    return MCL_OK;
}

// Reads up to PUMP messages from the shared socket into their peers' queues. With s->z->lock
// held. Wakes the server when it stopped with more maybe waiting (ZMQ_FD does not say so again).
static void
pump_locked(struct mcl__pserver *s)
{
    unsigned n = 0;
    for (; n < PUMP; n++) {
        zmq_msg_t idm, m;
        zmq_msg_init(&idm);
        if (zmq_msg_recv(&idm, s->z->s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&idm);
            s->dry = true;
            return; // nothing more (or the socket is gone): ZMQ_FD signals the next
        }
        zmq_msg_init(&m);
        bool ok = zmq_msg_more(&idm) && zmq_msg_recv(&m, s->z->s, ZMQ_DONTWAIT) >= 0;
        if (ok && zmq_msg_more(&m)) { // not one of ours: drop every part
            zmq_msg_t part;
            zmq_msg_init(&part);
            while (zmq_msg_recv(&part, s->z->s, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&part))
                ;
            zmq_msg_close(&part);
            ok = false;
        }
        size_t idn = zmq_msg_size(&idm);
        const uint8_t *id = zmq_msg_data(&idm);
        if (!ok || idn == 0 || idn > ID_MAX) {
            zmq_msg_close(&m);
            zmq_msg_close(&idm);
            continue;
        }
        uint64_t h = id_hash(id, idn);
        mcl__pipe *p = peer_find(s, id, idn, h);
        if (p == NULL && s->npending < BACKLOG) { // a new peer
            p = mcl__zalloc(sizeof(*p));
            if (p != NULL && (p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
                mcl__free(p);
                p = NULL;
            }
            if (p != NULL) {
                p->srv = s;
                memcpy(p->id, id, idn);
                p->idlen = idn;
                p->hash = h;
                p->hnext = mcl__u64map_get(&s->peers, h);
                if (mcl__u64map_put(&s->peers, h, p) != MCL_OK) {
                    close(p->efd);
                    mcl__free(p);
                    p = NULL;
                } else {
                    s->pending[s->npending++] = p;
                }
            }
        }
        zmq_msg_close(&idm);
        size_t msz = zmq_msg_size(&m);
        if (p != NULL && (p->overflow || p->qbytes + msz > PEER_QUEUE_MAX)) {
            if (!p->overflow) { // its stream reads no more (it does not read our answers):
                p->overflow = true; // what it sent is dropped, and its pipe fails
                queue_free(p);
                sig_set(p->efd, &p->sig);
            }
            zmq_msg_close(&m);
            continue;
        }
        if (p == NULL || queue_push(p, &m) != MCL_OK) { // no memory, or too many new peers at
            zmq_msg_close(&m); // once: this packet is lost, and the peer's protocol notices
            continue;          // (its request times out)
        }
        p->qbytes += msz; // (m belongs to the queue now)
        sig_set(p->efd, &p->sig);
    }
    if (n == PUMP)
        sig_set(s->wake, &s->wsig);
}

static mcl_err
zp_listen(mcl__pserver **sp, const struct mcl_connection *c, uint16_t *bound_port)
{
    *sp = NULL;
    struct mcl__pserver *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    s->epfd = s->wake = -1;
    mcl__u64map_init(&s->peers);
    void *ctx;
    mcl_err rv = pipe_socket(c, ZMQ_ROUTER, &s->z, &ctx);
    if (rv == MCL_OK) {
        char ep[MCL__ZADDR_MAX + 32];
        mcl__zmq_endpoint(c, ep, sizeof(ep));
        rv = mcl__zmq_bind_or_connect(s->z, c, true, ep, bound_port);
    }
    if (rv == MCL_OK) {
        s->zfd = zfd_of(s->z);
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        s->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN};
        if (s->zfd < 0 || s->epfd < 0 || s->wake < 0 ||
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->zfd, &ev) != 0 ||
            epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake, &ev) != 0) {
            int e = errno;
            rv = mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "%s: server descriptors: %s", c->url,
                           strerror(e));
        }
    }
    if (rv != MCL_OK) {
        if (s->epfd >= 0)
            close(s->epfd);
        if (s->wake >= 0)
            close(s->wake);
        mcl__zmq_zsock_close(s->z);
        mcl__u64map_fini(&s->peers);
        mcl__free(s);
        return rv;
    }
    *sp = s;
    return MCL_OK;
}

static int
zp_server_fd(const mcl__pserver *s)
{
    return s->epfd;
}

static mcl_err
zp_accept(mcl__pserver *s, mcl__pipe **pp)
{
    *pp = NULL;
    pthread_mutex_lock(&s->z->lock);
    sig_clear(s->wake, &s->wsig);
    pump_locked(s); // (the server's descriptor said so: read whatever dry says)
    mcl_err rv = MCL_EAGAIN;
    if (s->npending > 0) {
        *pp = s->pending[0];
        memmove(s->pending, s->pending + 1, --s->npending * sizeof(s->pending[0]));
        rv = MCL_OK;
    }
    pthread_mutex_unlock(&s->z->lock);
    return rv;
}

static void
peer_free(mcl__pipe *p)
{
    queue_free(p);
    drop_cur(p);
    if (p->efd >= 0)
        close(p->efd);
    mcl__free(p);
}

static void
forget_peer(uint64_t key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    for (mcl__pipe *p = val; p != NULL; p = p->hnext)
        p->srv = NULL; // its pipe ends report MCL_ECLOSED from now on
}

static void
zp_server_close(mcl__pserver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->z->lock);
    for (size_t i = 0; i < s->npending; i++) { // never accepted: nobody else knows them
        peer_unlink(s, s->pending[i]);
        peer_free(s->pending[i]);
    }
    s->npending = 0;
    mcl__u64map_each(&s->peers, forget_peer, NULL);
    pthread_mutex_unlock(&s->z->lock);
    mcl__zmq_zsock_close(s->z);
    mcl__u64map_fini(&s->peers);
    close(s->epfd);
    close(s->wake);
    mcl__free(s);
}

// --- ends ----------------------------------------------------------------------------------------

static mcl_err
zp_send(mcl__pipe *p, const struct iovec *iov, unsigned niov, char *why, size_t whylen)
{
    zmq_msg_t m;
    mcl_err rv = msg_of(&m, iov, niov, why, whylen);
    if (rv != MCL_OK)
        return rv;
    if (p->z != NULL) { // a DEALER: libzmq's queue, up to the high-water mark
        while (zmq_msg_send(&m, p->z->s, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            zmq_msg_close(&m);
            return send_error(e, "zmq_msg_send", why, whylen);
        }
        return MCL_OK;
    }
    struct mcl__pserver *s = p->srv;
    if (s == NULL) {
        zmq_msg_close(&m);
        return MCL_ECLOSED;
    }
    pthread_mutex_lock(&s->z->lock);
    int r = zmq_send(s->z->s, p->id, p->idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    int e = errno;
    if (r >= 0) {
        while ((r = zmq_msg_send(&m, s->z->s, ZMQ_DONTWAIT)) < 0 && errno == EINTR)
            ;
        e = errno;
    }
    s->dry = false; // a send may have taken in what arrived (see zp_pending)
    pthread_mutex_unlock(&s->z->lock);
    if (r < 0) {
        zmq_msg_close(&m);
        return send_error(e, "zmq_send", why, whylen);
    }
    return MCL_OK;
}

static mcl_err
check_size(mcl__pipe *p, size_t max, const uint8_t **data, size_t *len, char *why, size_t whylen)
{
    size_t n = zmq_msg_size(&p->cur);
    if (n > max) {
        snprintf(why, whylen, "a packet of %zu bytes (at most %zu)", n, max);
        return MCL_EPROTO;
    }
    *data = zmq_msg_data(&p->cur);
    *len = n;
    return MCL_OK;
}

static mcl_err
zp_recv(mcl__pipe *p, const uint8_t **data, size_t *len, size_t max, char *why, size_t whylen)
{
    drop_cur(p);
    if (p->z != NULL) {
        zmq_msg_init(&p->cur);
        for (;;) {
            if (zmq_msg_recv(&p->cur, p->z->s, ZMQ_DONTWAIT) >= 0)
                break;
            int e = errno;
            if (e == EINTR)
                continue;
            zmq_msg_close(&p->cur);
            if (e == EAGAIN)
                return MCL_EAGAIN;
            snprintf(why, whylen, "zmq_msg_recv: %s", zmq_strerror(e));
            return e == ETERM ? MCL_ECLOSED : mcl__sys_err(e);
        }
        p->have_cur = true;
        if (zmq_msg_more(&p->cur)) { // we send single parts: a peer that does not is not ours
            snprintf(why, whylen, "a multi-part message");
            return MCL_EPROTO;
        }
        return check_size(p, max, data, len, why, whylen);
    }
    struct mcl__pserver *s = p->srv;
    if (s == NULL)
        return MCL_ECLOSED;
    pthread_mutex_lock(&s->z->lock);
    if (p->overflow) {
        pthread_mutex_unlock(&s->z->lock);
        snprintf(why, whylen, "the peer sent more than %zu bytes that were not read",
                 PEER_QUEUE_MAX);
        return MCL_ECLOSED;
    }
    if (p->rn == 0 && !s->dry)
        pump_locked(s); // read the shared socket: this pipe's packet may be next
    bool got = p->rn > 0;
    if (got) {
        zmq_msg_init(&p->cur);
        zmq_msg_move(&p->cur, &p->ring[p->rhead]); // ownership moves out
        zmq_msg_close(&p->ring[p->rhead]);
        p->rhead = (p->rhead + 1) & (p->rcap - 1);
        p->rn--;
        p->qbytes -= zmq_msg_size(&p->cur);
    }
    if (p->rn == 0) {
        sig_clear(p->efd, &p->sig);
        if (p->rcap > 1024) { // give back what a burst took
            mcl__free(p->ring);
            p->ring = NULL;
            p->rcap = p->rhead = 0;
        }
    }
    pthread_mutex_unlock(&s->z->lock);
    if (!got)
        return MCL_EAGAIN;
    p->have_cur = true;
    return check_size(p, max, data, len, why, whylen);
}

static int
zp_rfd(const mcl__pipe *p)
{
    return p->z != NULL ? p->zfd : p->efd;
}

static int
zp_wfd(const mcl__pipe *p, short *events)
{
    (void)p;
    *events = 0;
    return -1; // libzmq says through ZMQ_FD (the DEALER's, or the server's) when it can take more
}

static bool
zp_pending(mcl__pipe *p)
{
    if (p->z != NULL) {
        int ev = 0;
        size_t l = sizeof(ev);
        return zmq_getsockopt(p->z->s, ZMQ_EVENTS, &ev, &l) == 0 && (ev & ZMQ_POLLIN) != 0;
    }
    struct mcl__pserver *s = p->srv;
    if (s == NULL)
        return false;
    pthread_mutex_lock(&s->z->lock);
    // A send on the shared socket may have taken in what arrived without ZMQ_FD saying so
    // again: the stream asks after its sends, and what waits is read now.
    int ev = 0;
    size_t el = sizeof(ev);
    if (!s->dry && zmq_getsockopt(s->z->s, ZMQ_EVENTS, &ev, &el) == 0) {
        if (ev & ZMQ_POLLIN)
            pump_locked(s);
        else
            s->dry = true; // (ZMQ_EVENTS processed libzmq's commands: ZMQ_FD is re-armed)
    }
    bool more = p->rn > 0;
    pthread_mutex_unlock(&s->z->lock);
    return more;
}

static void
zp_close(mcl__pipe *p)
{
    if (p == NULL)
        return;
    if (p->z != NULL) {
        drop_cur(p);
        mcl__zmq_zsock_close(p->z);
        mcl__free(p);
        return;
    }
    struct mcl__pserver *s = p->srv;
    if (s != NULL) {
        pthread_mutex_lock(&s->z->lock);
        peer_unlink(s, p);
        pthread_mutex_unlock(&s->z->lock);
    }
    peer_free(p);
}

const mcl__pipe_ops mcl__zmq_pipe_ops = {
    .listen = zp_listen,
    .server_fd = zp_server_fd,
    .accept = zp_accept,
    .server_close = zp_server_close,
    .dial = zp_dial,
    .send = zp_send,
    .recv = zp_recv,
    .rfd = zp_rfd,
    .wfd = zp_wfd,
    .pending = zp_pending,
    .close = zp_close,
};
