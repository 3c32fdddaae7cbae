// Raw broadcaster: one datagram per message, or a train of fragments sent with sendmmsg.
#define _GNU_SOURCE
#include "../core/connection_int.h"
#include "../core/internal.h"
#include "net.h"
#include "wire.h"

#include <mcl/raw.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { TRAIN = 32 }; // fragments per sendmmsg call

struct mcl_raw_broadcaster {
    struct mcl_connection conn;
    char *topic;
    size_t topic_len;
    uint64_t id;
    int fd;
    atomic_bool open;
    atomic_uint_fast64_t seq;
    atomic_uint_fast64_t n_messages, n_bytes, n_datagrams, n_errors;
};

mcl_err
mcl_raw_broadcaster_open(mcl_raw_broadcaster **bp, const mcl_connection *conn, const char *topic)
{
    mcl_raw_broadcaster *b = NULL;
    mcl_err rv;
    if (bp != NULL)
        *bp = NULL;
    if (bp == NULL || conn == NULL)
        return MCL_EINVAL;
    if (topic == NULL)
        topic = "";
    size_t tl = strlen(topic);
    if (tl > MCL_TOPIC_MAX)
        return mcl__fail(MCL_EINVAL, NULL, 0, "broadcaster", "topic longer than %d bytes",
                         MCL_TOPIC_MAX);
    if ((b = mcl__zalloc(sizeof(*b))) == NULL)
        return MCL_ENOMEM;
    b->fd = -1;
    b->conn = *conn;
    b->topic_len = tl;
    if ((b->topic = mcl__strdup(topic)) == NULL) {
        rv = MCL_ENOMEM;
        goto out;
    }
    if ((rv = mcl__random_u64(&b->id)) != MCL_OK)
        goto out;
    if ((rv = mcl__udp_open_send(&b->conn, &b->fd)) != MCL_OK)
        goto out;
    atomic_store(&b->open, true);
    *bp = b;
    b = NULL;
out:
    mcl_raw_broadcaster_free(b);
    return rv;
}

// Sends all of mm[0..n), retrying partial sends and transient buffer shortages.
static mcl_err
send_all(mcl_raw_broadcaster *b, struct mmsghdr *mm, unsigned n)
{
    unsigned done = 0;
    int spins = 0;
    while (done < n) {
        int r = sendmmsg(b->fd, mm + done, n - done, 0);
        if (r > 0) {
            done += (unsigned)r;
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
        atomic_fetch_add_explicit(&b->n_datagrams, done, memory_order_relaxed);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "broadcaster", "%s: sendmmsg: %s",
                         b->conn.url, strerror(e));
    }
    atomic_fetch_add_explicit(&b->n_datagrams, n, memory_order_relaxed);
    return MCL_OK;
}

mcl_err
mcl_raw_broadcaster_publish(mcl_raw_broadcaster *b, const char *topic, const void *data,
                            size_t len)
{
    if (b == NULL || (data == NULL && len > 0))
        return MCL_EINVAL;
    if (!atomic_load_explicit(&b->open, memory_order_acquire))
        return MCL_ECLOSED;
    size_t tl;
    if (topic == NULL) {
        topic = b->topic;
        tl = b->topic_len;
    } else if ((tl = strnlen(topic, MCL_TOPIC_MAX + 1)) > MCL_TOPIC_MAX) {
        return mcl__fail(MCL_EINVAL, NULL, 0, "broadcaster", "topic longer than %d bytes",
                         MCL_TOPIC_MAX);
    }
    if (len > b->conn.maxmsg)
        return mcl__fail(MCL_EMSGSIZE, NULL, 0, "broadcaster",
                         "%s: message of %zu bytes exceeds maxmsg=%zu", b->conn.url, len,
                         b->conn.maxmsg);
    uint32_t count;
    size_t fsize;
    mcl__wire_plan(b->conn.dgram, tl, len, &count, &fsize);
    uint64_t seq = atomic_fetch_add_explicit(&b->seq, 1, memory_order_relaxed);
    mcl_err rv;

    if (count == 1) {
        uint8_t hdr[MCL__WIRE_HDR + MCL__WIRE_REC + MCL_TOPIC_MAX];
        size_t hl = mcl__wire_put_hdr(hdr, 0, 1, b->id);
        hl += mcl__wire_put_rec(hdr + hl, seq, topic, (uint16_t)tl, (uint32_t)len);
        struct iovec iov[2] = {{hdr, hl}, {(void *)(uintptr_t)data, len}};
        struct mmsghdr mm = {.msg_hdr = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1}};
        rv = send_all(b, &mm, 1);
    } else {
        // One heap block per fragmented message holds the headers of a train; the payload is
        // sent from the caller's buffer without copying.
        size_t hsz = MCL__WIRE_HDR + MCL__WIRE_FRAGREC + tl;
        unsigned train = count < TRAIN ? count : TRAIN;
        uint8_t *hdrs = mcl__alloc(train * hsz);
        struct iovec *iov = mcl__alloc(train * 2 * sizeof(*iov));
        struct mmsghdr *mm = mcl__zalloc(train * sizeof(*mm));
        if (hdrs == NULL || iov == NULL || mm == NULL) {
            rv = MCL_ENOMEM;
        } else {
            rv = MCL_OK;
            const uint8_t *p = data;
            for (uint32_t i = 0; i < count && rv == MCL_OK;) {
                unsigned n = 0;
                for (; n < train && i < count; n++, i++) {
                    size_t off = (size_t)i * fsize;
                    size_t fl = len - off < fsize ? len - off : fsize;
                    uint8_t *h = hdrs + n * hsz;
                    size_t hl = mcl__wire_put_hdr(h, MCL__WIRE_F_FRAG, 1, b->id);
                    hl += mcl__wire_put_frag(h + hl, seq, topic, (uint16_t)tl, (uint32_t)fl,
                                             (uint32_t)len, (uint32_t)off, i, count);
                    iov[2 * n] = (struct iovec){h, hl};
                    iov[2 * n + 1] = (struct iovec){(void *)(uintptr_t)(p + off), fl};
                    mm[n].msg_hdr = (struct msghdr){.msg_iov = &iov[2 * n], .msg_iovlen = 2};
                }
                rv = send_all(b, mm, n);
            }
        }
        mcl__free(hdrs);
        mcl__free(iov);
        mcl__free(mm);
    }
    if (rv != MCL_OK) {
        atomic_fetch_add_explicit(&b->n_errors, 1, memory_order_relaxed);
        return rv;
    }
    atomic_fetch_add_explicit(&b->n_messages, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->n_bytes, len, memory_order_relaxed);
    return MCL_OK;
}

mcl_err
mcl_raw_broadcaster_close(mcl_raw_broadcaster *b)
{
    if (b == NULL)
        return MCL_EINVAL;
    if (!atomic_exchange(&b->open, false))
        return MCL_ECLOSED;
    close(b->fd);
    b->fd = -1;
    return MCL_OK;
}

bool
mcl_raw_broadcaster_is_open(const mcl_raw_broadcaster *b)
{
    return b != NULL && atomic_load(&b->open);
}

void
mcl_raw_broadcaster_free(mcl_raw_broadcaster *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0)
        close(b->fd);
    mcl__free(b->topic);
    mcl__free(b);
}

uint64_t
mcl_raw_broadcaster_id(const mcl_raw_broadcaster *b)
{
    return b ? b->id : 0;
}

const char *
mcl_raw_broadcaster_topic(const mcl_raw_broadcaster *b)
{
    return b && b->topic ? b->topic : "";
}

const mcl_connection *
mcl_raw_broadcaster_connection(const mcl_raw_broadcaster *b)
{
    return b ? &b->conn : NULL;
}

mcl_err
mcl_raw_broadcaster_stats(const mcl_raw_broadcaster *b, mcl_broadcaster_stats *st)
{
    if (b == NULL || st == NULL)
        return MCL_EINVAL;
    st->messages = atomic_load_explicit(&b->n_messages, memory_order_relaxed);
    st->bytes = atomic_load_explicit(&b->n_bytes, memory_order_relaxed);
    st->datagrams = atomic_load_explicit(&b->n_datagrams, memory_order_relaxed);
    st->errors = atomic_load_explicit(&b->n_errors, memory_order_relaxed);
    return MCL_OK;
}
