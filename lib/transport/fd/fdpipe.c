// SPDX-License-Identifier: BSD-3-Clause
// Byte-stream pipes over descriptors the caller owns (see transport.h): packets framed by a
// length in front, read in chunks of up to 64 KiB and handed out from the read buffer, written
// with one writev per packet and buffered (bounded) when the kernel takes only part.
#define _GNU_SOURCE
#include "../transport.h"

#include "../../core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum {
    CHUNK = 65536, // bytes a read asks for at least
    // Coalescing: a packet sent within this long of the one before waits in the output buffer
    // for the packet stream's next flush (its driver is told to write at once), so that a
    // burst leaves in few writes; a lone packet is written at once. Up to COALESCE_MAX bytes.
    COALESCE_NS = 20000,
    COALESCE_MAX = 65536,
    HDR_MAX = 16,  // longest length prefix accepted (a BSUInt may have leading 0x80 octets)
    MAX_IOV = 64,
};

struct mcl__pipe {
    int rfd, wfd;
    int rflags, wflags; // their flags before the pipe made them non-blocking
    bool wsock;         // wfd is a socket: send(MSG_NOSIGNAL) instead of blocking SIGPIPE
    int framing;
    bool owned; // mcl__fdpipe_adopt: the descriptor is the pipe's, closed at close
    bool coalesce;        // (adopted sockets) packets sent in quick succession share a write
    int64_t last_send_ns; // when send was called last (coalesce)
    uint8_t *in;
    size_t in_cap, in_start, in_end, consumed; // consumed: the packet handed out last
    bool eof;
    bool drained; // the last read took less than it asked: the kernel had no more then
    uint8_t *out;
    size_t out_cap, out_start, out_end, out_max;
};

static mcl_err
set_nonblock(int fd, int *old)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        int e = errno;
        return mcl__fail(e == EBADF ? MCL_EINVAL : mcl__sys_err(e), NULL, 0, "pstream",
                         "descriptor %d: fcntl: %s", fd, strerror(e));
    }
    *old = fl;
    return MCL_OK;
}

mcl_err
mcl__fdpipe_open(mcl__pipe **pp, int rfd, int wfd, int framing, size_t outbuf)
{
    *pp = NULL;
    if (rfd < 0 || wfd < 0 || (framing != MCL__FRAME_U32 && framing != MCL__FRAME_BSUINT))
        return MCL_EINVAL;
    mcl__pipe *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return MCL_ENOMEM;
    p->rfd = rfd;
    p->wfd = wfd;
    p->framing = framing;
    p->out_max = outbuf > 0 ? outbuf : (size_t)1 << 20;
    mcl_err rv = set_nonblock(rfd, &p->rflags);
    if (rv == MCL_OK && wfd != rfd && (rv = set_nonblock(wfd, &p->wflags)) != MCL_OK)
        (void)fcntl(rfd, F_SETFL, p->rflags);
    if (rv != MCL_OK) {
        mcl__free(p);
        return rv;
    }
    if (wfd == rfd)
        p->wflags = p->rflags;
    struct stat st;
    p->wsock = fstat(wfd, &st) == 0 && S_ISSOCK(st.st_mode);
    *pp = p;
    return MCL_OK;
}

mcl_err
mcl__fdpipe_adopt(mcl__pipe **pp, int fd, size_t outbuf)
{
    mcl_err rv = mcl__fdpipe_open(pp, fd, fd, MCL__FRAME_U32, outbuf);
    if (rv == MCL_OK)
        (*pp)->owned = (*pp)->coalesce = true;
    return rv;
}

// writev that never raises SIGPIPE (the peer's end may be gone: that is an error, not a kill).
static ssize_t
write_nosig(mcl__pipe *p, const struct iovec *iov, int niov)
{
    if (p->wsock) {
        struct msghdr m = {.msg_iov = (struct iovec *)(uintptr_t)iov, .msg_iovlen = (size_t)niov};
        return sendmsg(p->wfd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = writev(p->wfd, iov, niov);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

static size_t
put_len(int framing, uint8_t *h, size_t len)
{
    if (framing == MCL__FRAME_U32) {
        mcl__put_be32(h, (uint32_t)len);
        return 4;
    }
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)(len & 0x7f);
        len >>= 7;
    } while (len > 0);
    for (size_t i = 0; i < n; i++) // most significant group first, all but the last with 0x80
        h[i] = (uint8_t)(tmp[n - 1 - i] | (i + 1 < n ? 0x80 : 0));
    return n;
}

// The length prefix at p[0..n): MCL_OK with *len and *hl, MCL_EAGAIN when more bytes are
// needed, MCL_EPROTO when it is too long.
static mcl_err
get_len(int framing, const uint8_t *p, size_t n, uint64_t *len, size_t *hl)
{
    if (framing == MCL__FRAME_U32) {
        if (n < 4)
            return MCL_EAGAIN;
        *len = mcl__get_be32(p);
        *hl = 4;
        return MCL_OK;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < HDR_MAX; i++) {
        if (v > (UINT64_MAX >> 7))
            return MCL_EPROTO;
        v = v << 7 | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) {
            *len = v;
            *hl = i + 1;
            return MCL_OK;
        }
    }
    return n >= HDR_MAX ? MCL_EPROTO : MCL_EAGAIN;
}

static mcl_err
fd_send(mcl__pipe *p, const struct iovec *iov, unsigned niov, char *why, size_t whylen)
{
    if (niov + 1 > MAX_IOV)
        return MCL_EINVAL;
    uint8_t hdr[10];
    size_t len = 0;
    for (unsigned i = 0; i < niov; i++)
        len += iov[i].iov_len;
    size_t hl = put_len(p->framing, hdr, len), total = hl + len;
    size_t queued = p->out_end - p->out_start;
    size_t done = 0;
    bool hold = false;
    if (p->coalesce) {
        int64_t now = mcl__mono_ns();
        hold = now - p->last_send_ns < COALESCE_NS && queued + total <= COALESCE_MAX;
        p->last_send_ns = now;
    }
    if (queued > 0 && queued + total > p->out_max)
        return MCL_EAGAIN;
    if (queued == 0 && !hold) { // straight to the kernel; buffer only what it leaves
        struct iovec v[MAX_IOV];
        v[0] = (struct iovec){hdr, hl};
        memcpy(v + 1, iov, niov * sizeof(*iov));
        ssize_t n;
        do {
            n = write_nosig(p, v, (int)niov + 1);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int e = errno;
            snprintf(why, whylen, "write: %s", strerror(e));
            return e == EPIPE || e == ECONNRESET ? MCL_ECLOSED : mcl__sys_err(e);
        }
        done = n > 0 ? (size_t)n : 0;
        if (done == total)
            return MCL_OK;
        p->out_start = p->out_end = 0;
    }
    size_t need = p->out_end + (total - done);
    if (need > p->out_cap) {
        if (p->out_start > 0) { // compact first
            memmove(p->out, p->out + p->out_start, p->out_end - p->out_start);
            p->out_end -= p->out_start;
            p->out_start = 0;
            need = p->out_end + (total - done);
        }
        if (need > p->out_cap) {
            uint8_t *no = mcl__realloc(p->out, need);
            if (no == NULL) {
                snprintf(why, whylen, "out of memory for %zu bytes of output", need);
                return done > 0 ? MCL_EPROTO
                                : MCL_ENOMEM; // half a packet out: the stream is broken
            }
            p->out = no;
            p->out_cap = need;
        }
    }
    // Copy what the kernel did not take: the rest of the header, then of each piece.
    size_t skip = done;
    const uint8_t *src[MAX_IOV];
    size_t slen[MAX_IOV];
    src[0] = hdr;
    slen[0] = hl;
    for (unsigned i = 0; i < niov; i++) {
        src[i + 1] = iov[i].iov_base;
        slen[i + 1] = iov[i].iov_len;
    }
    for (unsigned i = 0; i <= niov; i++) {
        if (skip >= slen[i]) {
            skip -= slen[i];
            continue;
        }
        memcpy(p->out + p->out_end, src[i] + skip, slen[i] - skip);
        p->out_end += slen[i] - skip;
        skip = 0;
    }
    return MCL_OK;
}

static mcl_err
fd_flush(mcl__pipe *p, char *why, size_t whylen)
{
    while (p->out_end > p->out_start) {
        struct iovec v = {p->out + p->out_start, p->out_end - p->out_start};
        ssize_t n = write_nosig(p, &v, 1);
        if (n < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return MCL_EAGAIN;
            snprintf(why, whylen, "write: %s", strerror(e));
            return e == EPIPE || e == ECONNRESET ? MCL_ECLOSED : mcl__sys_err(e);
        }
        p->out_start += (size_t)n;
    }
    p->out_start = p->out_end = 0;
    if (p->out_cap > ((size_t)1 << 20)) { // give back what a burst took
        mcl__free(p->out);
        p->out = NULL;
        p->out_cap = 0;
    }
    return MCL_OK;
}

// Nothing more to read for now: give back what a burst took. MCL_EAGAIN.
static mcl_err
in_idle(mcl__pipe *p)
{
    if (p->in_start == p->in_end && p->in_cap > 4 * CHUNK) {
        mcl__free(p->in);
        p->in = NULL;
        p->in_cap = p->in_start = p->in_end = 0;
    }
    return MCL_EAGAIN;
}

static mcl_err
fd_recv(mcl__pipe *p, const uint8_t **data, size_t *len, size_t max, char *why, size_t whylen)
{
    p->in_start += p->consumed; // the packet handed out last is done with
    p->consumed = 0;
    for (;;) {
        size_t have = p->in_end - p->in_start;
        uint64_t plen = 0;
        size_t hl = 0;
        mcl_err lr = have == 0 ? MCL_EAGAIN // (p->in may be NULL)
                               : get_len(p->framing, p->in + p->in_start, have, &plen, &hl);
        if (lr == MCL_EPROTO || (lr == MCL_OK && plen > max)) {
            if (lr == MCL_OK)
                snprintf(why, whylen, "a packet of %llu bytes (at most %zu)",
                         (unsigned long long)plen, max);
            else
                snprintf(why, whylen, "a length prefix longer than %d bytes", HDR_MAX);
            return MCL_EPROTO;
        }
        if (lr == MCL_OK && have >= hl + plen) {
            *data = p->in + p->in_start + hl;
            *len = (size_t)plen;
            p->consumed = hl + (size_t)plen;
            return MCL_OK;
        }
        if (p->drained && !p->eof) { // no read that would say EAGAIN: the level-triggered rfd
            p->drained = false;      // says when more comes (a system call saved per packet)
            return in_idle(p);
        }
        if (p->eof) {
            if (have == 0)
                return MCL_ECLOSED;
            snprintf(why, whylen, "the stream ended inside a packet (%zu bytes of it)", have);
            return MCL_EPROTO;
        }
        // Room for the packet as its bytes arrive: doubling, so that a length announced by a
        // stranger costs memory only in proportion to what it really sends.
        size_t want = HDR_MAX;
        if (lr == MCL_OK) {
            want = hl + (size_t)plen;
            if (want > 2 * have + CHUNK)
                want = 2 * have + CHUNK;
        }
        if (p->in_start > 0 && (p->in_cap - p->in_end < CHUNK || p->in_start == p->in_end)) {
            memmove(p->in, p->in + p->in_start, have);
            p->in_start = 0;
            p->in_end = have;
        }
        size_t need = p->in_start + (want > have ? want : have) + CHUNK;
        if (need > p->in_cap) {
            uint8_t *ni = mcl__realloc(p->in, need);
            if (ni == NULL) {
                snprintf(why, whylen, "out of memory for a read buffer of %zu bytes", need);
                return MCL_ENOMEM;
            }
            p->in = ni;
            p->in_cap = need;
        }
        size_t ask = p->in_cap - p->in_end;
        ssize_t n = read(p->rfd, p->in + p->in_end, ask);
        if (n > 0) {
            p->in_end += (size_t)n;
            p->drained = (size_t)n < ask;
            continue;
        }
        if (n == 0) {
            p->eof = true;
            continue;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return in_idle(p);
        snprintf(why, whylen, "read: %s", strerror(e));
        return e == ECONNRESET ? MCL_ECLOSED : mcl__sys_err(e);
    }
}

static int
fd_rfd(const mcl__pipe *p)
{
    return p->rfd;
}

static int
fd_wfd(const mcl__pipe *p, short *events)
{
    *events = POLLOUT;
    return p->wfd;
}

static bool
fd_want_flush(const mcl__pipe *p)
{
    return p->out_end > p->out_start;
}

static void
fd_peer(const mcl__pipe *p, char *buf, size_t n)
{
    buf[0] = '\0';
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(p->rfd, (struct sockaddr *)&ss, &sl) != 0)
        return; // (not a socket)
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(buf, n, "tcp://%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(buf, n, "tcp://[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(p->rfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            snprintf(buf, n, "unix:pid=%d,uid=%u", (int)cr.pid, (unsigned)cr.uid);
    }
}

static size_t
fd_held(const mcl__pipe *p)
{
    return p->out_end - p->out_start;
}

// Whether a whole packet is buffered (the reader stopped early; the fd may not say so).
static bool
fd_pending(mcl__pipe *p)
{
    size_t start = p->in_start + p->consumed, have = p->in_end - start;
    uint64_t plen;
    size_t hl;
    return have > 0 && get_len(p->framing, p->in + start, have, &plen, &hl) == MCL_OK &&
           have >= hl + plen;
}

static void
fd_close(mcl__pipe *p)
{
    if (p == NULL)
        return;
    if (p->owned) {
        close(p->rfd);
    } else {
        (void)fcntl(p->rfd, F_SETFL, p->rflags); // the caller's descriptors, as they were
        if (p->wfd != p->rfd)
            (void)fcntl(p->wfd, F_SETFL, p->wflags);
    }
    mcl__free(p->in);
    mcl__free(p->out);
    mcl__free(p);
}

const mcl__pipe_ops mcl__fd_pipe_ops = {
    .send = fd_send,
    .flush = fd_flush,
    .recv = fd_recv,
    .rfd = fd_rfd,
    .wfd = fd_wfd,
    .want_flush = fd_want_flush,
    .held = fd_held,
    .peer = fd_peer,
    .pending = fd_pending,
    .close = fd_close,
};

// tcp:// and unix:// (sock/sock.c): the same pipe, on a socket the transport made.
const mcl__pipe_ops mcl__sock_pipe_ops = {
    .listen = mcl__sock_listen,
    .server_fd = mcl__sock_server_fd,
    .accept = mcl__sock_accept,
    .server_close = mcl__sock_server_close,
    .dial = mcl__sock_dial,
    .accept_when_ready = true,
    .send = fd_send,
    .flush = fd_flush,
    .recv = fd_recv,
    .rfd = fd_rfd,
    .wfd = fd_wfd,
    .want_flush = fd_want_flush,
    .held = fd_held,
    .peer = fd_peer,
    .pending = fd_pending,
    .close = fd_close,
};
