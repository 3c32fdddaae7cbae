// SPDX-License-Identifier: BSD-3-Clause
// The udp:// broadcast ops: sendmmsg trains with retry on the send side; recvmmsg batches with
// the kernel's receive timestamps and drop counter on the receive side.
#define _GNU_SOURCE
#include "udp.h"

#include "../../core/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    BATCH = 16,   // datagrams per recvmmsg
    SLOT = 65536, // largest UDP payload fits
    CTL = 128,    // control buffer per datagram (timestamp, drop counter)
    TRAIN = 32,   // datagrams per sendmmsg
};

// --- send ----------------------------------------------------------------------------------------

struct mcl__tx {
    int fd;
    char url[MCL__URL_MAX];
};

static atomic_long send_fail_countdown = -1;
static atomic_int send_fail_errno;

void
mcl__send_fail_after(long n, int e)
{
    atomic_store(&send_fail_errno, e);
    atomic_store(&send_fail_countdown, n);
}

static bool
send_should_fail(int *e)
{
    if (MCL__LIKELY(atomic_load_explicit(&send_fail_countdown, memory_order_relaxed) < 0))
        return false;
    if (atomic_fetch_sub(&send_fail_countdown, 1) != 0)
        return false;
    *e = atomic_load(&send_fail_errno);
    return true;
}

static mcl_err
udp_tx_open(mcl__tx **txp, const struct mcl_connection *c, mcl__tx_limits *lim)
{
    *txp = NULL;
    mcl__tx *tx = mcl__zalloc(sizeof(*tx));
    if (tx == NULL)
        return MCL_ENOMEM;
    snprintf(tx->url, sizeof(tx->url), "%s", c->url);
    mcl_err rv = mcl__udp_open_send(c, &tx->fd);
    if (rv != MCL_OK) {
        mcl__free(tx);
        return rv;
    }
    lim->batch_max = c->dgram;
    *txp = tx;
    return MCL_OK;
}

// Sends all of f[0..nf), retrying partial sends and transient buffer shortages.
static mcl_err
udp_tx_send(mcl__tx *tx, const mcl__frame *f, unsigned nf, unsigned *sent, char *why,
            size_t whylen)
{
    struct mmsghdr mm[TRAIN];
    unsigned done = 0;
    int spins = 0;
    *sent = 0;
    while (done < nf) {
        unsigned n = nf - done < TRAIN ? nf - done : TRAIN;
        for (unsigned i = 0; i < n; i++) {
            struct msghdr *h = &mm[i].msg_hdr;
            h->msg_name = NULL; // connected: no address
            h->msg_namelen = 0;
            h->msg_iov = (struct iovec *)(uintptr_t)f[done + i].iov;
            h->msg_iovlen = f[done + i].niov;
            h->msg_control = NULL;
            h->msg_controllen = 0;
            h->msg_flags = 0;
        }
        int seam_e;
        int r = send_should_fail(&seam_e) ? (errno = seam_e, -1) : sendmmsg(tx->fd, mm, n, 0);
        if (r > 0) {
            done += (unsigned)r;
            *sent = done;
            spins = 0;
            continue;
        }
        int e = r < 0 ? errno : EIO;
        if (e == EINTR)
            continue;
        // The kernel ran out of buffers for a moment (loopback under load): let the
        // receivers run, then retry, but not forever.
        if ((e == ENOBUFS || e == EAGAIN) && spins++ < 1000) {
            sched_yield();
            continue;
        }
        snprintf(why, whylen, "sendmmsg: %s", strerror(e));
        return mcl__sys_err(e);
    }
    return MCL_OK;
}

static void
udp_tx_close(mcl__tx *tx)
{
    if (tx == NULL)
        return;
    if (tx->fd >= 0)
        close(tx->fd);
    mcl__free(tx);
}

// --- receive -------------------------------------------------------------------------------------

struct mcl__rxs {
    int fd;
    char url[MCL__URL_MAX];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    struct sockaddr_storage addr[BATCH];
    uint8_t ctl[BATCH][CTL];
    uint8_t *bufs;   // nslots receive slots of SLOT bytes
    unsigned nslots; // grows from 1 to BATCH while batches come full (1000 idle listeners
    bool grow;       // then cost 64 KiB each, not 1 MiB)
    uint64_t kdrops;      // kernel drops, accumulated
    uint32_t kdrops_last; // last SO_RXQ_OVFL value
    int rcvtimeo_ms;      // SO_RCVTIMEO as last set (0: never set, no timeout)
    bool lone;            // the last waiting read waited for its one datagram
};

static mcl_err
udp_rx_open(mcl__rxs **rxp, const struct mcl_connection *c, const char *const *topics,
            size_t ntopics, int adopt_fd, mcl__rx_opened *out)
{
    (void)topics; // every datagram of the group arrives; the receive engine filters
    (void)ntopics;
    *rxp = NULL;
    mcl__rxs *rx = mcl__zalloc(sizeof(*rx));
    if (rx == NULL)
        return MCL_ENOMEM;
    rx->fd = -1;
    snprintf(rx->url, sizeof(rx->url), "%s", c->url);
    mcl_err rv = MCL_OK;
    for (unsigned i = 0; i < BATCH; i++) { // the slots come with the first read
        rx->mm[i].msg_hdr.msg_iov = &rx->iov[i];
        rx->mm[i].msg_hdr.msg_iovlen = 1;
    }
    if (adopt_fd >= 0) {
        // A socket opened by another handle (the queued listener's parent), shared.
        if ((rx->fd = fcntl(adopt_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            rv = mcl__sys_err(errno);
            goto fail;
        }
        int eff = 0;
        socklen_t el = sizeof(eff);
        if (getsockopt(rx->fd, SOL_SOCKET, SO_RCVBUF, &eff, &el) == 0)
            out->rcvbuf = (size_t)eff / 2;
        out->bound_port = c->port;
    } else if ((rv = mcl__udp_open_recv(c, &rx->fd, &out->bound_port, &out->rcvbuf)) != MCL_OK) {
        goto fail;
    }
    *rxp = rx;
    return MCL_OK;
fail:
    if (rx->fd >= 0)
        close(rx->fd);
    mcl__free(rx);
    return rv;
}

// Doubles the receive slots (the first read makes one: a socket only shared with a queued
// listener's receivers never reads here). Only between batches: nothing of the last batch is
// in use then (what was handed out is valid until the next read, which is this one).
static void
slots_grow(mcl__rxs *rx)
{
    rx->grow = false;
    unsigned n = rx->nslots == 0 ? 1 : rx->nslots * 2 > BATCH ? BATCH : rx->nslots * 2;
    uint8_t *b = mcl__realloc(rx->bufs, (size_t)n * SLOT);
    if (b == NULL)
        return; // keep going with fewer slots
    rx->bufs = b;
    rx->nslots = n;
    for (unsigned i = 0; i < n; i++)
        rx->iov[i] = (struct iovec){b + (size_t)i * SLOT, SLOT};
}

static void
add_kernel_drops(mcl__rxs *rx, uint32_t drops)
{
    // A 32-bit counter since the socket opened: accumulate its increments mod 2^32.
    rx->kdrops += (uint32_t)(drops - rx->kdrops_last);
    rx->kdrops_last = drops;
}

// One datagram of a batch: its timestamps, sender and the kernel's drop counter.
static void
decode(mcl__rxs *rx, unsigned i, int64_t batch_real, int64_t batch_mono, mcl__dgram *d,
       bool *have_drops)
{
    struct msghdr *h = &rx->mm[i].msg_hdr;
    d->data = NULL;
    d->len = 0;
    d->has_tseq = false;
    d->meta.real_ns = batch_real;
    d->meta.mono_ns = batch_mono;
    d->meta.family = 0;
    d->meta.port = 0;
    memset(d->meta.addr, 0, sizeof(d->meta.addr));
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SO_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            int64_t k = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            // The datagram waited (batch_real - k) in the queue; date it back on both clocks.
            if (k > 0 && k <= batch_real) {
                d->meta.mono_ns = batch_mono - (batch_real - k);
                d->meta.real_ns = k;
            }
        } else if (c->cmsg_type == SO_RXQ_OVFL && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(c), sizeof(drops));
            add_kernel_drops(rx, drops);
            *have_drops = true;
        }
    }
    const struct sockaddr_storage *a = &rx->addr[i];
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        d->meta.family = 4;
        memcpy(d->meta.addr, &s->sin_addr, 4);
        d->meta.port = ntohs(s->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        d->meta.family = 6;
        memcpy(d->meta.addr, &s->sin6_addr, 16);
        d->meta.port = ntohs(s->sin6_port);
    }
    if (!(h->msg_flags & MSG_TRUNC)) { // cannot happen with 64 KiB slots; counted, never trusted
        d->data = rx->iov[i].iov_base;
        d->len = rx->mm[i].msg_len;
    }
}

// Reads up to max datagrams: without waiting (timeout_ms 0), or waiting up to timeout_ms
// (-1: forever) for the first one (SO_RCVTIMEO on the socket, which is in blocking mode: every
// read that must not wait says MSG_DONTWAIT). Into the iovecs as they are set.
static mcl_err
read_into_iov(mcl__rxs *rx, mcl__dgram *out, unsigned want, unsigned *nread,
              uint64_t *kernel_drops, int timeout_ms)
{
    for (unsigned i = 0; i < want; i++) {
        struct msghdr *h = &rx->mm[i].msg_hdr;
        h->msg_name = &rx->addr[i];
        h->msg_namelen = sizeof(rx->addr[i]);
        h->msg_control = rx->ctl[i];
        h->msg_controllen = CTL;
        h->msg_flags = 0;
    }
    int n;
    if (timeout_ms != 0 && timeout_ms != rx->rcvtimeo_ms) {
        struct timeval tv = {0, 0}; // (0: no timeout)
        if (timeout_ms > 0)
            tv = (struct timeval){timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        if (setsockopt(rx->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
            timeout_ms = 0; // (cannot bound the wait: do not wait)
        else
            rx->rcvtimeo_ms = timeout_ms;
    }
    int64_t waited_from = 0;
    if (timeout_ms != 0) {
        // A read that had to wait for its datagram finds the queue empty after it, as a rule
        // (a round trip, a sensor at a modest rate): after one such read, the next waiting
        // read asks for one datagram, and spares the kernel the look for a second.
        if (rx->lone)
            want = 1;
        waited_from = mcl__real_ns();
        n = recvmmsg(rx->fd, rx->mm, want, MSG_WAITFORONE, NULL);
        if (n < 0 && errno == EINTR)
            return MCL_EINTR; // (the caller looks at its deadline)
    } else {
        do {
            n = recvmmsg(rx->fd, rx->mm, want, MSG_DONTWAIT, NULL);
        } while (n < 0 && errno == EINTR);
    }
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return MCL_EAGAIN;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "%s: recvmmsg: %s", rx->url,
                         strerror(e));
    }
    if (n == 0)
        return MCL_EAGAIN;
    int64_t mono = mcl__mono_ns(), real = mcl__real_ns();
    bool have_drops = false;
    for (int i = 0; i < n; i++)
        decode(rx, (unsigned)i, real, mono, &out[i], &have_drops);
    // (the kernel's receive time says whether the datagram came while the read waited)
    if (timeout_ms != 0)
        rx->lone = n == 1 && out[0].meta.real_ns > waited_from;
    if (have_drops)
        *kernel_drops = rx->kdrops;
    *nread = (unsigned)n;
    return MCL_OK;
}

// Reads up to max datagrams into the slots, or (into, cap bytes) one datagram there
// (rx_read_into: the slot's iovec points there for this read).
static mcl_err
read_some(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *nread, uint64_t *kernel_drops,
          int timeout_ms, uint8_t *into, size_t cap)
{
    *nread = 0;
    unsigned want = 1;
    if (into == NULL) {
        if (rx->grow || rx->nslots == 0)
            slots_grow(rx);
        if (rx->nslots == 0)
            return mcl__fail(MCL_ENOMEM, NULL, 0, "listener",
                             "%s: no memory for a receive slot", rx->url);
        want = max < rx->nslots ? max : rx->nslots;
    }
    struct iovec slot0 = rx->iov[0];
    if (into != NULL)
        rx->iov[0] = (struct iovec){into, cap};
    mcl_err rv = read_into_iov(rx, out, want, nread, kernel_drops, timeout_ms);
    rx->iov[0] = slot0;
    if (into == NULL && rv == MCL_OK && *nread == rx->nslots && rx->nslots < BATCH)
        rx->grow = true; // the socket had more: read more at a time from now on
    return rv;
}

static mcl_err
udp_rx_read(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *nread, uint64_t *kernel_drops)
{
    return read_some(rx, out, max, nread, kernel_drops, 0, NULL, 0);
}

static mcl_err
udp_rx_read_wait(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *nread,
                 uint64_t *kernel_drops, int timeout_ms)
{
    return read_some(rx, out, max, nread, kernel_drops, timeout_ms, NULL, 0);
}

static mcl_err
udp_rx_read_into(mcl__rxs *rx, uint8_t *buf, size_t cap, mcl__dgram *out,
                 uint64_t *kernel_drops, int timeout_ms)
{
    unsigned n;
    return read_some(rx, out, 1, &n, kernel_drops, timeout_ms, buf, cap);
}

static int
udp_rx_fd(const mcl__rxs *rx)
{
    return rx->fd;
}

// The kernel reports drops with the next datagram it delivers (SO_RXQ_OVFL), so drops at the
// end of a burst would stay invisible; when the socket is idle, ask for the total instead.
static void
udp_rx_idle(mcl__rxs *rx, mcl__rx_idle *out)
{
#ifdef SO_MEMINFO
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mi);
    if (getsockopt(rx->fd, SOL_SOCKET, SO_MEMINFO, mi, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        add_kernel_drops(rx, mi[SK_MEMINFO_DROPS]);
        out->has_kernel_drops = true;
        out->kernel_drops = rx->kdrops;
    }
#else
    (void)rx;
    (void)out;
#endif
}

static void
udp_rx_close(mcl__rxs *rx)
{
    if (rx == NULL)
        return;
    if (rx->fd >= 0)
        close(rx->fd);
    mcl__free(rx->bufs);
    mcl__free(rx);
}

const mcl__bcast_ops mcl__udp_bcast_ops = {
    .tx_open = udp_tx_open,
    .tx_send = udp_tx_send,
    .tx_close = udp_tx_close,
    .tx_forget = udp_tx_close, // (closing sends nothing: closing a copy is forgetting it)
    .rx_open = udp_rx_open,
    .rx_read = udp_rx_read,
    .rx_read_wait = udp_rx_read_wait,
    .rx_read_into = udp_rx_read_into,
    .rx_into_cap = SLOT,
    .rx_fd = udp_rx_fd,
    .rx_idle = udp_rx_idle,
    .rx_close = udp_rx_close,
    .rx_forget = udp_rx_close, // (the membership stays with the parent's descriptor)
};
