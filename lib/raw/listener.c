// Raw listener: socket reading (recvmmsg batches), the receive engine, and delivery either to
// the caller (recv), to callbacks on the caller's thread (dispatch), or on our own thread.
#define _GNU_SOURCE
#include "../transport/connection_int.h"
#include "../core/internal.h"
#include "../transport/udp/net.h"
#include "rx.h"
#include "listener_int.h"
#include "../transport/zmq/zmq.h"
#include "../core/subs.h"

#include <mcl/raw.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    BATCH = 16,        // datagrams per recvmmsg
    SLOT = 65536,      // largest UDP payload fits
    CTL = 128,         // control buffer per datagram (timestamp, drop counter)
    IDLE_POLL_MS = 250 // the listener thread wakes at least this often to expire partials
};

struct mcl_raw_listener {
    struct mcl_connection conn; // with the bound port
    int fd;
    mcl__zsock *z; // zmq connections: the SUB socket (fd is then -1)
    mcl__tseq *tseq; // zmq: the next topic number expected per (publisher, topic)
    int zfd;         // zmq: ZMQ_FD, read once at open
    int64_t real_off; // zmq: CLOCK_REALTIME - CLOCK_MONOTONIC, re-read every 1024 messages
    unsigned real_age;
    atomic_uint_fast64_t auth_failures;
    bool open;
    mcl__rx rx;
    bool rx_ready;
    bool in_dgram; // the engine holds a datagram with records left
    mcl_raw_msg cur; // what mcl_raw_listener_recv() returned last
    // recvmmsg batch.
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage addr[BATCH];
    uint8_t ctl[BATCH][CTL];
    uint8_t *bufs;    // nslots receive slots of SLOT bytes
    unsigned nslots;  // grows from 1 to BATCH while batches come full (1000 idle listeners
    bool grow;        // then cost 64 KiB each, not 1 MiB)
    unsigned batch_n, batch_i;
    uint64_t kdrops;      // kernel drops, accumulated
    uint32_t kdrops_last; // last SO_RXQ_OVFL value
    unsigned want; // datagrams to read at most in the next recvmmsg (0: a full batch)
    int64_t batch_real, batch_mono;
    mcl__subs subs;
    bool subs_ready;
    // Listener thread.
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int wake_fd;
};


mcl_err
mcl_raw_msg_sender(const mcl_raw_msg *m, char *buf, size_t len)
{
    if (m == NULL || buf == NULL || len == 0)
        return MCL_EINVAL;
    char a[INET6_ADDRSTRLEN];
    int n;
    if (m->sender_family == 4 && inet_ntop(AF_INET, m->sender_addr, a, sizeof(a)))
        n = snprintf(buf, len, "%s:%u", a, (unsigned)m->sender_port);
    else if (m->sender_family == 6 && inet_ntop(AF_INET6, m->sender_addr, a, sizeof(a)))
        n = snprintf(buf, len, "[%s]:%u", a, (unsigned)m->sender_port);
    else
        n = snprintf(buf, len, "?");
    return n < 0 || (size_t)n >= len ? MCL_EINVAL : MCL_OK;
}

mcl_err
mcl_raw_msg_dup(mcl_raw_msg **copyp, const mcl_raw_msg *m)
{
    if (copyp != NULL)
        *copyp = NULL;
    if (copyp == NULL || m == NULL)
        return MCL_EINVAL;
    mcl_raw_msg *c = mcl__alloc(sizeof(*c) + m->topic_len + 1 + m->len);
    if (c == NULL)
        return MCL_ENOMEM;
    *c = *m;
    char *t = (char *)(c + 1);
    memcpy(t, m->topic, m->topic_len);
    t[m->topic_len] = '\0';
    c->topic = t;
    if (m->len > 0)
        memcpy(t + m->topic_len + 1, m->payload, m->len);
    c->payload = m->len > 0 ? t + m->topic_len + 1 : NULL;
    *copyp = c;
    return MCL_OK;
}

void
mcl_raw_msg_free(mcl_raw_msg *m)
{
    mcl__free(m);
}

static mcl_err open_common(mcl_raw_listener **lp, const mcl_connection *conn,
                           const char *const *topics, size_t ntopics, int adopt_fd);

mcl_err
mcl_raw_listener_open(mcl_raw_listener **lp, const mcl_connection *conn,
                      const char *const *topics, size_t ntopics)
{
    return open_common(lp, conn, topics, ntopics, -1);
}

mcl_err
mcl__raw_listener_open_fd(mcl_raw_listener **lp, const mcl_connection *conn,
                          const char *const *topics, size_t ntopics, int fd)
{
    return open_common(lp, conn, topics, ntopics, fd);
}

void
mcl__raw_listener_set_seq_hook(mcl_raw_listener *l,
                               void (*fn)(void *ctx, uint64_t publisher, uint64_t seq,
                                          bool delivered),
                               void *ctx)
{
    l->rx.seq_hook = fn;
    l->rx.seq_ctx = ctx;
}

static mcl_err
open_common(mcl_raw_listener **lp, const mcl_connection *conn, const char *const *topics,
            size_t ntopics, int adopt_fd)
{
    mcl_raw_listener *l = NULL;
    mcl_err rv;
    if (lp != NULL)
        *lp = NULL;
    if (lp == NULL || conn == NULL || (topics == NULL && ntopics > 0))
        return MCL_EINVAL;
    for (size_t i = 0; i < ntopics; i++) {
        size_t n = topics[i] ? strlen(topics[i]) : 0;
        bool prefix = n > 0 && topics[i][n - 1] == '*';
        if (topics[i] == NULL || n > MCL_TOPIC_MAX + (prefix ? 1 : 0))
            return mcl__fail(MCL_EINVAL, NULL, 0, "listener", "topic filter entry %zu is %s", i,
                             topics[i] == NULL ? "NULL" : "too long");
    }
    if ((l = mcl__zalloc(sizeof(*l))) == NULL)
        return MCL_ENOMEM;
    l->fd = -1;
    l->wake_fd = -1;
    l->conn = *conn;
    if (mcl__subs_init(&l->subs, l) != MCL_OK) {
        mcl__free(l);
        return MCL_ESYS;
    }
    l->subs_ready = true;
    mcl__rx_cfg cfg = {.maxmsg = conn->maxmsg,
                       .expire_ns = (int64_t)conn->expire_ms * 1000000,
                       .partmem = conn->partmem};
    if ((rv = mcl__rx_init(&l->rx, &cfg, topics, ntopics)) != MCL_OK)
        goto out;
    l->rx_ready = true;
    if (conn->transport == MCL__TP_ZMQ) {
        if (adopt_fd >= 0) {
            rv = MCL_EINVAL;
            goto out;
        }
        l->rx.gaps_uncounted = true; // loss is counted per topic (see mcl__tseq)
        if ((l->tseq = mcl__tseq_new()) == NULL) {
            rv = MCL_ENOMEM;
            goto out;
        }
        if ((rv = mcl__zmq_open(&l->conn, false, &l->z)) != MCL_OK ||
            (rv = mcl__zmq_subscribe(l->z, topics, ntopics)) != MCL_OK)
            goto out;
        if ((l->zfd = mcl__zmq_fd(l->z)) < 0) {
            rv = mcl__fail(MCL_ESYS, NULL, 0, "listener", "%s: no ZMQ_FD", l->conn.url);
            goto out;
        }
        l->open = true;
        *lp = l;
        l = NULL;
        goto out;
    }
    if ((l->bufs = mcl__alloc(SLOT)) == NULL) {
        rv = MCL_ENOMEM;
        goto out;
    }
    l->nslots = 1;
    for (unsigned i = 0; i < BATCH; i++) {
        l->iov[i] = (struct iovec){l->bufs, SLOT}; // re-pointed by slots_grow()
        l->mm[i].msg_hdr.msg_iov = &l->iov[i];
        l->mm[i].msg_hdr.msg_iovlen = 1;
    }
    size_t rcvbuf = 0;
    uint16_t port = 0;
    if (adopt_fd >= 0) {
        // A socket opened by mcl__udp_open_recv() elsewhere (the queued listener's parent).
        if ((l->fd = fcntl(adopt_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            rv = mcl__sys_err(errno);
            goto out;
        }
        int eff = 0;
        socklen_t el = sizeof(eff);
        if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &eff, &el) == 0)
            rcvbuf = (size_t)eff / 2;
        port = l->conn.port;
    } else if ((rv = mcl__udp_open_recv(&l->conn, &l->fd, &port, &rcvbuf)) != MCL_OK) {
        goto out;
    }
    mcl__rx_set_rcvbuf(&l->rx, rcvbuf);
    if (port != l->conn.port) {
        l->conn.port = port;
        mcl__connection_canon(&l->conn);
    }
    l->open = true;
    *lp = l;
    l = NULL;
out:
    mcl_raw_listener_free(l);
    return rv;
}

// Doubles the receive slots. Only between batches: nothing of the last batch is in use then
// (what recv handed out is valid until the next call, which is this one).
static void
slots_grow(mcl_raw_listener *l)
{
    l->grow = false;
    unsigned n = l->nslots * 2 > BATCH ? BATCH : l->nslots * 2;
    uint8_t *b = mcl__realloc(l->bufs, (size_t)n * SLOT);
    if (b == NULL)
        return; // keep going with fewer slots
    l->bufs = b;
    l->nslots = n;
    for (unsigned i = 0; i < n; i++)
        l->iov[i].iov_base = b + (size_t)i * SLOT;
}

// Reads a batch without blocking. MCL_OK with batch_n > 0, MCL_EAGAIN when nothing is queued.
static mcl_err
read_batch(mcl_raw_listener *l)
{
    if (l->grow)
        slots_grow(l);
    for (unsigned i = 0; i < BATCH; i++) {
        struct msghdr *h = &l->mm[i].msg_hdr;
        h->msg_name = &l->addr[i];
        h->msg_namelen = sizeof(l->addr[i]);
        h->msg_control = l->ctl[i];
        h->msg_controllen = CTL;
        h->msg_flags = 0;
    }
    int n;
    do {
        n = recvmmsg(l->fd, l->mm, l->want > 0 && l->want < l->nslots ? l->want : l->nslots,
                     MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return MCL_EAGAIN;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "%s: recvmmsg: %s", l->conn.url,
                         strerror(e));
    }
    l->batch_n = (unsigned)n;
    l->batch_i = 0;
    if ((unsigned)n == l->nslots && l->nslots < BATCH)
        l->grow = true; // the socket had more: read more at a time from now on
    l->batch_mono = mcl__mono_ns();
    l->batch_real = mcl__real_ns();
    mcl__rx_count_datagrams(&l->rx, (uint64_t)n);
    return n > 0 ? MCL_OK : MCL_EAGAIN;
}

// The kernel reports drops with the next datagram it delivers (SO_RXQ_OVFL), so drops at the
// end of a burst would stay invisible; when the socket is idle, ask for the total instead.
static void
refresh_kernel_drops(mcl_raw_listener *l)
{
#ifdef SO_MEMINFO
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mi);
    if (getsockopt(l->fd, SOL_SOCKET, SO_MEMINFO, mi, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        uint32_t drops = mi[SK_MEMINFO_DROPS];
        l->kdrops += (uint32_t)(drops - l->kdrops_last);
        l->kdrops_last = drops;
        mcl__rx_set_kernel_drops(&l->rx, l->kdrops);
    }
#else
    (void)l;
#endif
}

// Feeds the next datagram of the batch to the engine. False when the batch is used up.
static bool
feed_next(mcl_raw_listener *l)
{
    while (l->batch_i < l->batch_n) {
        unsigned i = l->batch_i++;
        struct msghdr *h = &l->mm[i].msg_hdr;
        mcl__rx_meta meta = {.real_ns = l->batch_real, .mono_ns = l->batch_mono};
        uint32_t drops = 0;
        bool have_drops = false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
            if (c->cmsg_level != SOL_SOCKET)
                continue;
            if (c->cmsg_type == SO_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                int64_t k = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
                // The datagram waited (batch_real - k) in the queue; date it back on both clocks.
                if (k > 0 && k <= l->batch_real) {
                    meta.mono_ns = l->batch_mono - (l->batch_real - k);
                    meta.real_ns = k;
                }
            } else if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
                memcpy(&drops, CMSG_DATA(c), sizeof(drops));
                have_drops = true;
            }
        }
        if (have_drops) {
            // A 32-bit counter since the socket opened: accumulate its increments mod 2^32.
            l->kdrops += (uint32_t)(drops - l->kdrops_last);
            l->kdrops_last = drops;
            mcl__rx_set_kernel_drops(&l->rx, l->kdrops);
        }
        const struct sockaddr_storage *a = &l->addr[i];
        if (a->ss_family == AF_INET) {
            const struct sockaddr_in *s = (const struct sockaddr_in *)a;
            meta.family = 4;
            memcpy(meta.addr, &s->sin_addr, 4);
            meta.port = ntohs(s->sin_port);
        } else if (a->ss_family == AF_INET6) {
            const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
            meta.family = 6;
            memcpy(meta.addr, &s->sin6_addr, 16);
            meta.port = ntohs(s->sin6_port);
        }
        if (h->msg_flags & MSG_TRUNC) { // cannot happen with 64 KiB slots; count, never trust
            mcl__rx_begin(&l->rx, NULL, 0, &meta);
            continue;
        }
        if (mcl__rx_begin(&l->rx, l->iov[i].iov_base, l->mm[i].msg_len, &meta) == MCL_OK) {
            l->in_dgram = true;
            return true;
        }
    }
    return false;
}

// zmq: one ZeroMQ message is one datagram, behind its topic prefix. MCL_EINTR after many
// messages that delivered nothing: more may be queued (ZMQ_FD will not say so), the caller
// just gets a chance to look at its clock and calls again.
static mcl_err
next_message_zmq(mcl_raw_listener *l, mcl_raw_msg *m)
{
    for (unsigned reads = 0;;) {
        if (l->in_dgram) {
            if (mcl__rx_next(&l->rx, m))
                return MCL_OK;
            l->in_dgram = false;
        }
        if (reads++ == 64)
            return MCL_EINTR;
        const uint8_t *d;
        size_t n;
        mcl_err rv = mcl__zmq_recv(l->z, &d, &n);
        if (rv != MCL_OK) {
            if (rv == MCL_EAGAIN) {
                uint64_t af = mcl__zmq_auth_failures(l->z);
                if (af > 0)
                    atomic_fetch_add_explicit(&l->auth_failures, af, memory_order_relaxed);
                mcl__rx_expire(&l->rx, mcl__mono_ns());
            }
            return rv;
        }
        mcl__rx_meta meta = {.mono_ns = mcl__mono_ns()};
        if (l->real_age-- == 0) { // one clock read per message; the offset moves only with
            l->real_off = mcl__real_ns() - meta.mono_ns; // adjustments of the real-time clock
            l->real_age = 1023;
        }
        meta.real_ns = meta.mono_ns + l->real_off;
        const uint8_t *nul = d != NULL ? memchr(d, 0, n < MCL_TOPIC_MAX + 1 ? n : MCL_TOPIC_MAX + 1)
                                       : NULL;
        if (nul == NULL) { // not our framing: counted as malformed
            mcl__rx_begin_counted(&l->rx, NULL, 0, &meta);
            continue;
        }
        size_t skip = (size_t)(nul - d) + 1;
        if (n - skip < 8) {
            mcl__rx_begin_counted(&l->rx, NULL, 0, &meta);
            continue;
        }
        uint64_t tseq = mcl__get_be64(d + skip);
        if (mcl__rx_begin_counted(&l->rx, d + skip + 8, n - skip - 8, &meta) != MCL_OK)
            continue;
        l->in_dgram = true;
        // Loss per (publisher, topic): the frame's first record should be the next number.
        bool created;
        uint64_t *next = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher, (const char *)d,
                                        (size_t)(nul - d), &created);
        if (next != NULL && (created || tseq >= *next)) {
            if (!created && tseq > *next)
                mcl__rx_add_lost(&l->rx, l->rx.hdr.publisher, tseq - *next);
            *next = tseq + l->rx.hdr.count;
        }
    }
}

static mcl_err next_message_udp(mcl_raw_listener *l, mcl_raw_msg *m);

// The next message from what is already read, or from one non-blocking read.
// MCL_OK with *m filled, MCL_EAGAIN when nothing is available now, MCL_EINTR when the caller
// should check its clock and call again, or a socket error.
static mcl_err
next_message(mcl_raw_listener *l, mcl_raw_msg *m)
{
    return l->z != NULL ? next_message_zmq(l, m) : next_message_udp(l, m);
}

static mcl_err
next_message_udp(mcl_raw_listener *l, mcl_raw_msg *m)
{
    // Bounded, so that a flood of datagrams that deliver nothing (filtered, malformed) still
    // lets the caller look at its deadline or stop flag.
    for (unsigned reads = 0;;) {
        if (l->in_dgram) {
            if (mcl__rx_next(&l->rx, m))
                return MCL_OK;
            l->in_dgram = false;
        }
        if (feed_next(l))
            continue;
        if (reads++ == 8)
            return MCL_EAGAIN;
        mcl_err rv = read_batch(l);
        if (rv != MCL_OK) {
            mcl__rx_expire(&l->rx, mcl__mono_ns());
            if (rv == MCL_EAGAIN)
                refresh_kernel_drops(l);
            return rv;
        }
        mcl__rx_expire(&l->rx, l->batch_mono);
    }
}

static int
wait_readable_fd(int fd, int extra_fd, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = extra_fd, .events = POLLIN}};
    int r;
    do {
        r = poll(p, extra_fd >= 0 ? 2 : 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

static int
wait_readable(mcl_raw_listener *l, int extra_fd, int timeout_ms)
{
    if (l->z != NULL)
        return mcl__zmq_wait(l->z, extra_fd, timeout_ms);
    return wait_readable_fd(l->fd, extra_fd, timeout_ms);
}

mcl_err
mcl_raw_listener_recv(mcl_raw_listener *l, const mcl_raw_msg **msgp, int timeout_ms)
{
    if (msgp != NULL)
        *msgp = NULL;
    if (l == NULL || msgp == NULL)
        return MCL_EINVAL;
    if (!l->open)
        return MCL_ECLOSED;
    if (l->running || mcl__subs_running(l))
        return MCL_ESTATE;
    // The deadline is computed only once nothing is ready: a busy receiver reads no clock here.
    int64_t deadline = INT64_MAX;
    bool have_deadline = timeout_ms < 0;
    for (;;) {
        mcl_err rv = next_message(l, &l->cur);
        if (rv == MCL_OK) {
            *msgp = &l->cur;
            return MCL_OK;
        }
        if (!have_deadline) {
            deadline = mcl__mono_ns() + (int64_t)timeout_ms * 1000000;
            have_deadline = true;
        }
        if (rv == MCL_EINTR) {
            if (timeout_ms >= 0 && mcl__mono_ns() >= deadline)
                return MCL_ETIMEDOUT;
            continue;
        }
        if (rv != MCL_EAGAIN)
            return rv;
        int wait_ms;
        if (timeout_ms < 0) {
            wait_ms = IDLE_POLL_MS;
        } else {
            int64_t left = deadline - mcl__mono_ns();
            if (left <= 0)
                return MCL_ETIMEDOUT;
            wait_ms = (int)((left + 999999) / 1000000);
            if (wait_ms > IDLE_POLL_MS)
                wait_ms = IDLE_POLL_MS;
        }
        if (wait_readable(l, -1, wait_ms) < 0) {
            int e = errno;
            return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "poll: %s", strerror(e));
        }
    }
}

bool
mcl__raw_listener_running(const mcl_raw_listener *l)
{
    return l != NULL && l->running;
}

bool
mcl_raw_listener_pending(const mcl_raw_listener *l)
{
    if (l == NULL || !l->open)
        return false;
    if (l->in_dgram && l->rx.left > 0)
        return true;
    // ZMQ_FD is edge-triggered: ask libzmq whether a message waits (not while the listener
    // thread uses the socket: a zmq socket belongs to one thread at a time).
    if (l->z != NULL)
        return !l->running && mcl__zmq_readable(l->z);
    return l->batch_i < l->batch_n;
}

mcl_err
mcl_raw_listener_fd(const mcl_raw_listener *l, int *fd)
{
    if (fd != NULL)
        *fd = -1;
    if (l == NULL || fd == NULL)
        return MCL_EINVAL;
    if (!l->open)
        return MCL_ECLOSED;
    *fd = l->z != NULL ? l->zfd : l->fd;
    return MCL_OK;
}

static void
invoke_raw(mcl__fn fn, void *user, void *arg)
{
    ((mcl_raw_cb)fn)(arg, user);
}

// Calls the subscriptions in order, on this thread, without holding a lock during a call.
static void
deliver(mcl_raw_listener *l, const mcl_raw_msg *m)
{
    mcl__subs_call(&l->subs, invoke_raw, (void *)(uintptr_t)m);
}

mcl_err
mcl_raw_listener_dispatch(mcl_raw_listener *l, size_t max, size_t *delivered)
{
    if (delivered != NULL)
        *delivered = 0;
    if (l == NULL)
        return MCL_EINVAL;
    if (!l->open)
        return MCL_ECLOSED;
    if (l->running || mcl__subs_running(l))
        return MCL_ESTATE;
    size_t n = 0;
    mcl_raw_msg m;
    mcl_err rv = MCL_OK;
    while (max == 0 || n < max) {
        // Read no more datagrams than can be delivered now, so that what is left stays in the
        // socket and the fd stays readable for the caller's poll loop.
        size_t left = max == 0 ? BATCH : max - n;
        l->want = left < BATCH ? (unsigned)left : BATCH;
        rv = next_message(l, &m);
        if (rv == MCL_EINTR)
            continue; // zmq: more may be queued, and an edge-triggered fd must be drained
        if (rv != MCL_OK)
            break;
        deliver(l, &m);
        n++;
    }
    l->want = 0;
    if (delivered != NULL)
        *delivered = n;
    return rv == MCL_EAGAIN || rv == MCL_OK ? MCL_OK : rv;
}

static void *
listener_thread(void *arg)
{
    mcl_raw_listener *l = arg;
    mcl_raw_msg m;
    while (!atomic_load_explicit(&l->stop, memory_order_acquire)) {
        mcl_err rv = next_message(l, &m);
        if (rv == MCL_OK) {
            deliver(l, &m);
            continue;
        }
        if (rv == MCL_EINTR)
            continue;
        if (rv != MCL_EAGAIN) {
            // A socket error: report it and keep serving (it may be transient, e.g. ENOMEM);
            // a stop request still ends the loop at once.
            mcl__log(MCL_LOG_ERROR, "listener", "%s: receive failed: %s", l->conn.url,
                     mcl_strerror(rv));
        }
        wait_readable(l, l->wake_fd, IDLE_POLL_MS);
    }
    return NULL;
}

mcl_err
mcl_raw_listener_start(mcl_raw_listener *l)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (!l->open)
        return MCL_ECLOSED;
    if (l->running)
        return MCL_EALREADY;
    if (l->wake_fd < 0) {
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->wake_fd < 0) {
            int e = errno;
            return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "eventfd: %s", strerror(e));
        }
    }
    atomic_store(&l->stop, false);
    int e = pthread_create(&l->thread, NULL, listener_thread, l);
    if (e != 0)
        return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "pthread_create: %s", strerror(e));
    pthread_setname_np(l->thread, "mcl-listener");
    l->running = true;
    return MCL_OK;
}

mcl_err
mcl_raw_listener_stop(mcl_raw_listener *l)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (!l->running || mcl__subs_running(l))
        return MCL_ESTATE;
    atomic_store_explicit(&l->stop, true, memory_order_release);
    uint64_t one = 1;
    ssize_t w = write(l->wake_fd, &one, sizeof(one));
    (void)w; // the thread also wakes within IDLE_POLL_MS
    pthread_join(l->thread, NULL);
    uint64_t drain;
    ssize_t r = read(l->wake_fd, &drain, sizeof(drain));
    (void)r;
    l->running = false;
    return MCL_OK;
}

mcl_err
mcl_raw_listener_close(mcl_raw_listener *l)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(l))
        return MCL_ESTATE;
    if (!l->open)
        return MCL_ECLOSED;
    if (l->running)
        mcl_raw_listener_stop(l);
    if (l->z != NULL) {
        mcl__zmq_close(l->z);
        l->z = NULL;
    } else {
        close(l->fd);
        l->fd = -1;
    }
    l->open = false;
    l->in_dgram = false;
    l->batch_n = l->batch_i = 0;
    mcl__rx_clear_partials(&l->rx);
    return MCL_OK;
}

bool
mcl_raw_listener_is_open(const mcl_raw_listener *l)
{
    return l != NULL && l->open;
}

void
mcl_raw_listener_free(mcl_raw_listener *l)
{
    if (l == NULL || mcl__subs_running(l))
        return;
    if (l->open)
        mcl_raw_listener_close(l);
    if (l->fd >= 0)
        close(l->fd);
    mcl__zmq_close(l->z);
    mcl__tseq_free(l->tseq);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->rx_ready)
        mcl__rx_fini(&l->rx);
    mcl__free(l->bufs);
    if (l->subs_ready)
        mcl__subs_fini(&l->subs);
    mcl__free(l);
}

const mcl_connection *
mcl_raw_listener_connection(const mcl_raw_listener *l)
{
    return l ? &l->conn : NULL;
}

const char *
mcl_raw_listener_url(const mcl_raw_listener *l)
{
    return l ? l->conn.url : "";
}

mcl_err
mcl_raw_listener_subscribe(mcl_raw_listener *l, mcl_raw_cb cb, void *user)
{
    if (l == NULL || cb == NULL)
        return MCL_EINVAL;
    return mcl__subs_add(&l->subs, (mcl__fn)cb, user);
}

mcl_err
mcl_raw_listener_unsubscribe(mcl_raw_listener *l, mcl_raw_cb cb, void *user)
{
    if (l == NULL || cb == NULL)
        return MCL_EINVAL;
    return mcl__subs_remove(&l->subs, (mcl__fn)cb, user);
}

size_t
mcl_raw_listener_subscriptions(const mcl_raw_listener *l)
{
    if (l == NULL)
        return 0;
    return mcl__subs_count((mcl__subs *)(uintptr_t)&l->subs); // the lock is not part of the value
}

mcl_err
mcl_raw_listener_stats(const mcl_raw_listener *l, mcl_listener_stats *st)
{
    if (l == NULL || st == NULL)
        return MCL_EINVAL;
    mcl__rx_stats((mcl__rx *)(uintptr_t)&l->rx, st);
    st->auth_failures = atomic_load_explicit(&l->auth_failures, memory_order_relaxed);
    return MCL_OK;
}

mcl_err
mcl_raw_listener_publishers(const mcl_raw_listener *l, mcl_publisher_stats *out, size_t cap,
                            size_t *n)
{
    if (n != NULL)
        *n = 0;
    if (l == NULL || (out == NULL && cap > 0))
        return MCL_EINVAL;
    size_t k = mcl__rx_publishers((mcl__rx *)(uintptr_t)&l->rx, out, cap);
    if (n != NULL)
        *n = k;
    return MCL_OK;
}
