// SPDX-License-Identifier: BSD-3-Clause
// Raw listener over any transport: datagrams read through the transport's rx_read (a batch at
// a time), the receive engine (rx.c), and delivery either to the caller (recv), to callbacks
// on the caller's thread (dispatch), or on our own thread.
#define _GNU_SOURCE
#include "../core/internal.h"
#include "../core/subs.h"
#include "../transport/transport.h"
#include "auth.h"
#include "listener_int.h"
#include "rx.h"
#include "tseq.h"
#include "topics.h"
#include "wire.h"

#include <mcl/raw.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
    BATCH = 16,         // datagrams read at once
    READS = 8,          // reads that deliver nothing before the caller gets control back
    IDLE_POLL_MS = 250, // the listener thread wakes at least this often to expire partials
    READ_WAIT_MIN_MS = 10, // recv waits in the read (rx_read_wait) only this long or longer
};

struct mcl_raw_listener {
    pid_t owner; // the process that opened it (mcl__inherited)
    struct mcl_connection conn; // with the bound port
    const mcl__bcast_ops *ops;
    unsigned caps;
    mcl__rxs *rxs;
    mcl__tseq *tseq; // PUBFILTER: the next topic number expected per (publisher, topic)
    mcl__topics *topics; // per-topic statistics of what is delivered (topics.c)
    atomic_uint_fast64_t auth_failures;
    bool open;
    mcl__rx rx;
    bool rx_ready;
    mcl__auth_rx auth; // the AUTH trailers (with conn.keys, or none: MAC-only ones unverified)
    bool auth_ready;
    bool in_dgram;   // the engine holds a datagram with records left
    mcl_raw_msg cur; // what mcl_raw_listener_recv() returned last
    mcl__dgram batch[BATCH]; // the last read, valid until the next
    uint8_t *into;      // mcl__raw_listener_recv_into: reads go there, one datagram each
    uint8_t *scratch;   // (rx_into_cap bytes) where a datagram read there that is not plain goes
    bool into_copied;   // the last datagram read there went to scratch
    unsigned batch_n, batch_i;
    uint64_t kdrops;    // the transport's drop total, as last reported
    unsigned want;   // datagrams to read at most in the next read (0: a full batch)
    int block_ms;    // the next read may wait this long for a datagram (0: not; recv sets it)
    bool read_waited;  // that read found nothing in its time (read_batch says so)
    bool buffered_only; // next_message delivers only from what is already read (no read)
    bool no_read_wait; // a waiting read came back at once (the socket was made non-blocking
                       // by whoever holds its fd): recv polls instead, from then on
    mcl__subs subs;
    bool subs_ready;
    // Listener thread.
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int wake_fd;
    // Presence callback (mcl_raw_listener_on_presence), set from any thread.
    pthread_mutex_t pres_lock;
    bool pres_lock_ready;
    mcl_presence_cb pres_cb;
    void *pres_user;
    unsigned since_presence; // messages delivered since presence was last looked at
};

extern const char mcl__hb_topic[]; // broadcaster.c: the topic of heartbeat frames (zmq)

// Delivers the presence events waiting, on this (the receiving) thread, no lock held.
static void
presence_deliver(mcl_raw_listener *l)
{
    l->since_presence = 0;
    mcl__rx_presence_check(&l->rx, mcl__mono_ns());
    mcl_publisher_stats ps;
    bool alive;
    while (mcl__rx_presence_event(&l->rx, &ps, &alive)) {
        pthread_mutex_lock(&l->pres_lock);
        mcl_presence_cb cb = l->pres_cb;
        void *user = l->pres_user;
        pthread_mutex_unlock(&l->pres_lock);
        if (cb != NULL)
            cb(l, &ps, alive, user);
    }
}

// After each message delivered: presence is looked at every 256 (and whenever reading idles).
static inline void
presence_tick(mcl_raw_listener *l)
{
    if (++l->since_presence >= 256)
        presence_deliver(l);
}

mcl_err
mcl_raw_listener_on_presence(mcl_raw_listener *l, mcl_presence_cb cb, void *user)
{
    if (l == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&l->pres_lock);
    l->pres_cb = cb;
    l->pres_user = user;
    pthread_mutex_unlock(&l->pres_lock);
    return MCL_OK;
}

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
    if (conn == NULL || fd < 0 || !(conn->tp->caps & MCL__TP_FORK_FD))
        return MCL_EINVAL;
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

mcl_err
mcl__raw_check_topics(const char *component, const char *const *topics, size_t ntopics)
{
    for (size_t i = 0; i < ntopics; i++) {
        size_t n = topics[i] ? strlen(topics[i]) : 0;
        bool prefix = n > 0 && topics[i][n - 1] == '*';
        if (topics[i] == NULL || n > MCL_TOPIC_MAX + (prefix ? 1 : 0))
            return mcl__fail(MCL_EINVAL, NULL, 0, component, "topic filter entry %zu is %s", i,
                             topics[i] == NULL ? "NULL" : "too long");
    }
    return MCL_OK;
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
    if ((rv = mcl__raw_check_topics("listener", topics, ntopics)) != MCL_OK)
        return rv;
    if (conn->tp->bcast == NULL)
        return mcl__fail(MCL_ENOTSUP, NULL, 0, "listener", "%s: %s:// has no listeners (it carries packet "
                         "streams only: calls, streams, the broker); listen on udp:// or zmq+",
                         conn->url, conn->tp->scheme);
    if ((l = mcl__zalloc(sizeof(*l))) == NULL)
        return MCL_ENOMEM;
    l->wake_fd = -1;
    l->conn = *conn;
    l->ops = conn->tp->bcast;
    l->caps = conn->tp->caps;
    if (pthread_mutex_init(&l->pres_lock, NULL) != 0) {
        mcl__free(l);
        return MCL_ESYS;
    }
    l->pres_lock_ready = true;
    if (mcl__subs_init(&l->subs, l) != MCL_OK) {
        pthread_mutex_destroy(&l->pres_lock);
        mcl__free(l);
        return MCL_ESYS;
    }
    l->subs_ready = true;
    if ((l->topics = mcl__topics_new()) == NULL) {
        rv = MCL_ENOMEM;
        goto out;
    }
    mcl__rx_cfg cfg = {.maxmsg = conn->maxmsg,
                       .expire_ns = (int64_t)conn->expire_ms * 1000000,
                       .partmem = conn->partmem};
    if ((rv = mcl__rx_init(&l->rx, &cfg, topics, ntopics)) != MCL_OK)
        goto out;
    l->rx_ready = true;
    mcl__auth_rx_init(&l->auth, &l->conn.keys, l->conn.skew_s);
    l->auth_ready = true;
    l->rx.silent_after = conn->silent_after;
    if (l->caps & MCL__TP_PUBFILTER) {
        l->rx.gaps_uncounted = true; // loss is counted per topic (see tseq.h)
        if ((l->tseq = mcl__tseq_new()) == NULL) {
            rv = MCL_ENOMEM;
            goto out;
        }
    }
    mcl__rx_opened opened = {0};
    // A transport that filters by topic also passes heartbeats, which have a topic of their own.
    const char **with_hb = NULL;
    if ((l->caps & MCL__TP_PUBFILTER) && ntopics > 0) {
        if ((with_hb = mcl__alloc((ntopics + 1) * sizeof(*with_hb))) == NULL) {
            rv = MCL_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < ntopics; i++)
            with_hb[i] = topics[i];
        with_hb[ntopics] = mcl__hb_topic;
    }
    rv = l->ops->rx_open(&l->rxs, &l->conn, with_hb ? with_hb : (const char **)topics,
                         with_hb ? ntopics + 1 : ntopics, adopt_fd, &opened);
    mcl__free(with_hb);
    if (rv != MCL_OK)
        goto out;
    mcl__rx_set_rcvbuf(&l->rx, opened.rcvbuf);
    if (opened.bound_port != 0 && opened.bound_port != l->conn.port) {
        l->conn.port = opened.bound_port;
        mcl__connection_canon(&l->conn);
    }
    l->open = true;
    l->owner = getpid();
    *lp = l;
    l = NULL;
out:
    mcl_raw_listener_free(l);
    return rv;
}

// Topic numbers (PUBFILTER): a jump of more than TSEQ_JUMP is a candidate until a second
// datagram (or a heartbeat) confirms it; a confirmed jump counts at most TSEQ_LOSS_MAX lost.
#define TSEQ_JUMP 1024u
#define TSEQ_LOSS_MAX ((uint64_t)1 << 24)
#define TSEQ_CAND_SALT 0x6d636c2d63616e64ULL // the slots of a candidate jump: other keys
#define TSEQ_CAND_SALT2 0x6d636c2d6e657874ULL

// A heartbeat over a transport that filters by topic: for each topic it lists that this
// listener takes and has numbers for, what it says was sent beyond the next number expected
// is lost (within a window: a forged claim cannot make genuine messages look old).
static void
topic_ends(mcl_raw_listener *l)
{
    const mcl__wire_hb *hb = &l->rx.hb;
    size_t off = 0;
    for (unsigned i = 0; i < hb->ntopics; i++) {
        const uint8_t *t;
        uint16_t tl;
        uint64_t count;
        mcl__wire_hb_topic(hb->topics, &off, &t, &tl, &count);
        if (!mcl__rx_match(&l->rx, (const char *)t, tl))
            continue;
        bool created;
        uint64_t *next = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher, (const char *)t, tl,
                                        &created);
        if (next == NULL || created) { // (nothing received on it yet: nothing to claim)
            if (next != NULL)
                *next = count;
            continue;
        }
        uint64_t want = *next;
        if (count > want && count - want > 1024) {
            // Beyond the window: believed only as the confirmation of a candidate jump (it
            // says it sent past the candidate, within the window of it).
            uint64_t c = 0, cnext = 0;
            uint64_t *cp = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher ^ TSEQ_CAND_SALT,
                                          (const char *)t, tl, &created);
            if (cp != NULL && !created)
                c = *cp;
            uint64_t *cn = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher ^ TSEQ_CAND_SALT2,
                                          (const char *)t, tl, &created);
            if (cn != NULL && !created)
                cnext = *cn;
            if (c == 0 || cnext < c || count < cnext || count - cnext > 1024)
                continue;
            uint64_t before = c - 1 - want, after = count - cnext;
            if (before > TSEQ_LOSS_MAX)
                before = TSEQ_LOSS_MAX;
            if (before > 0)
                mcl__rx_add_lost(&l->rx, l->rx.hdr.publisher, before);
            if (after > 0)
                mcl__rx_add_lost_at_end(&l->rx, l->rx.hdr.publisher, after);
            if (before + after > 0)
                mcl__topics_lost(l->topics, l->rx.hdr.publisher, (const char *)t, tl,
                                 before + after);
            if ((cp = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher ^ TSEQ_CAND_SALT,
                                     (const char *)t, tl, &created)) != NULL)
                *cp = 0;
            if ((next = mcl__tseq_slot(l->tseq, l->rx.hdr.publisher, (const char *)t, tl,
                                       &created)) != NULL)
                *next = count;
            continue;
        }
        if (count > *next && count - *next <= 1024) {
            mcl__rx_add_lost_at_end(&l->rx, l->rx.hdr.publisher, count - *next);
            mcl__topics_lost(l->topics, l->rx.hdr.publisher, (const char *)t, tl, count - *next);
            *next = count;
        }
    }
}

// The loss a datagram's topic number shows (PUBFILTER), and the next number expected moved on.
// A number more than TSEQ_JUMP ahead moves nothing until a second datagram confirms it (a
// forged frame cannot make later genuine ones look old or claim 2^64 losses), and a confirmed
// jump counts at most TSEQ_LOSS_MAX as lost (docs/security.md).
static uint64_t
tseq_gap(mcl_raw_listener *l, const mcl__dgram *d)
{
    uint64_t pub = l->rx.hdr.publisher, count = l->rx.hdr.count;
    bool created;
    uint64_t *next = mcl__tseq_slot(l->tseq, pub, d->topic, d->tl, &created);
    if (next == NULL)
        return 0;
    if (created) {
        *next = d->tseq + count;
        return 0;
    }
    if (d->tseq < *next)
        return 0; // (a duplicate or a late one: the engine judges its records)
    uint64_t gap = d->tseq - *next;
    if (gap > TSEQ_JUMP && !l->rx.authed) {
        uint64_t want = *next;
        // The candidate: its first number + 1 (0: none), and the number after it.
        uint64_t *cand = mcl__tseq_slot(l->tseq, pub ^ TSEQ_CAND_SALT, d->topic, d->tl, &created);
        if (cand == NULL)
            return 0;
        uint64_t c = created ? 0 : *cand;
        if (c == 0 || d->tseq <= c - 1 || d->tseq - (c - 1) > TSEQ_JUMP) {
            *cand = d->tseq + 1;
            uint64_t *cn = mcl__tseq_slot(l->tseq, pub ^ TSEQ_CAND_SALT2, d->topic, d->tl, &created);
            if (cn != NULL)
                *cn = d->tseq + count;
            return 0;
        }
        *cand = 0;
        uint64_t *cn = mcl__tseq_slot(l->tseq, pub ^ TSEQ_CAND_SALT2, d->topic, d->tl, &created);
        uint64_t cnext = cn != NULL && !created ? *cn : c;
        next = mcl__tseq_slot(l->tseq, pub, d->topic, d->tl, &created); // (moved)
        if (next == NULL)
            return 0;
        // Lost: before the candidate, and between it and this one.
        gap = (c - 1 - want) + (d->tseq > cnext ? d->tseq - cnext : 0);
        if (gap > TSEQ_LOSS_MAX) {
            mcl__log(MCL_LOG_INFO, "listener",
                     "publisher %016llx topic %.*s jumped by %llu messages: counting %llu",
                     (unsigned long long)pub, (int)d->tl, d->topic, (unsigned long long)gap,
                     (unsigned long long)TSEQ_LOSS_MAX);
            gap = TSEQ_LOSS_MAX;
        }
    }
    if (gap > 0)
        mcl__rx_add_lost(&l->rx, pub, gap);
    *next = d->tseq + count;
    return gap;
}

// The AUTH trailer of d checked (and cut off, or the datagram opened): false when it is
// refused (counted). Out of line: its set-up stays off the usual datagram's path.
static __attribute__((noinline)) bool
auth_open(mcl_raw_listener *l, const mcl__dgram *d, const uint8_t **data, size_t *len)
{
    int a = mcl__auth_open(&l->auth, d->data, d->len, d->meta.real_ns, data, len);
    if (a != MCL__AUTH_PASS) {
        mcl__rx_count_auth(&l->rx, a == MCL__AUTH_REPLAYED);
        return false;
    }
    return true;
}

// Feeds the next datagram of the batch to the engine. False when the batch is used up.
static bool
feed_next(mcl_raw_listener *l)
{
    while (l->batch_i < l->batch_n) {
        const mcl__dgram *d = &l->batch[l->batch_i++];
        if (d->data == NULL) { // not a datagram: counted as malformed
            mcl__rx_begin(&l->rx, NULL, 0, &d->meta);
            continue;
        }
        const uint8_t *data = d->data;
        size_t len = d->len;
        // No key and no trailer: mcl__auth_open would pass it as it is (the usual case,
        // answered without the call).
        if (l->auth.keys->n != 0 || (len >= MCL__WIRE_HDR && (data[4] & MCL__WIRE_F_AUTH))) {
            if (!auth_open(l, d, &data, &len))
                continue;
        }
        // (verified by a key: its numbers are the publisher's own, no confirmation needed)
        l->rx.authed = l->conn.keys.n > 0;
        if (mcl__rx_begin(&l->rx, data, len, &d->meta) != MCL_OK)
            continue;
        l->in_dgram = true;
        if (l->rx.is_hb) {
            if (d->has_tseq)
                topic_ends(l);
            continue; // (nothing in it to deliver)
        }
        if (d->has_tseq) {
            // Loss per (publisher, topic): the datagram's first record should be the next
            // number on its topic.
            uint64_t gap = tseq_gap(l, d);
            // The same loss, and the datagram's duplicates, per topic (this thread alone
            // writes the counters it reads here).
            mcl__topics_dgram(l->topics, l->rx.hdr.publisher, d->topic, d->tl, gap,
                              l->rx.st.duplicates);
        }
        return true;
    }
    return false;
}

// A datagram read into the caller's buffer (recv_into) stays there only when it is one plain
// record, which the engine is done with once it has delivered it: anything else (several
// records, a fragment, a heartbeat, a compressed record) could still be needed by the engine
// after the call returns, so it moves to the listener's own buffer now.
static void
keep_if_plain(mcl_raw_listener *l, mcl__dgram *d)
{
    if (d->data == NULL || mcl__wire_one_plain(d->data, d->len))
        return;
    memcpy(l->scratch, d->data, d->len);
    d->data = l->scratch;
    l->into_copied = true;
}

// Reads a batch without blocking. MCL_OK with batch_n > 0, MCL_EAGAIN when nothing waits.
static mcl_err
read_batch(mcl_raw_listener *l)
{
    unsigned max = l->want > 0 && l->want < BATCH ? l->want : BATCH;
    uint64_t kd = l->kdrops;
    unsigned n = 0;
    l->batch_n = l->batch_i = 0;
    mcl_err rv;
    if (l->into != NULL) {
        l->into_copied = false;
        rv = l->ops->rx_read_into(l->rxs, l->into, l->ops->rx_into_cap, &l->batch[0], &kd,
                                  l->block_ms);
        if (l->block_ms != 0)
            l->read_waited = rv == MCL_EAGAIN;
        l->block_ms = 0;
        n = rv == MCL_OK ? 1 : 0;
        if (n == 1)
            keep_if_plain(l, &l->batch[0]);
    } else if (l->block_ms != 0 && l->ops->rx_read_wait != NULL) { // waiting in the read itself
        rv = l->ops->rx_read_wait(l->rxs, l->batch, max, &n, &kd, l->block_ms);
        l->block_ms = 0; // (once: the next reads of this call do not wait)
        l->read_waited = rv == MCL_EAGAIN;
    } else {
        rv = l->ops->rx_read(l->rxs, l->batch, max, &n, &kd);
    }
    if (kd != l->kdrops) {
        l->kdrops = kd;
        mcl__rx_set_kernel_drops(&l->rx, kd);
    }
    if (rv != MCL_OK)
        return rv;
    l->batch_n = n;
    mcl__rx_count_datagrams(&l->rx, (uint64_t)n);
    return n > 0 ? MCL_OK : MCL_EAGAIN;
}

// Nothing to read: what the transport counted meanwhile.
static void
idle(mcl_raw_listener *l)
{
    if (l->ops->rx_idle == NULL)
        return;
    mcl__rx_idle in = {0};
    l->ops->rx_idle(l->rxs, &in);
    if (in.has_kernel_drops && in.kernel_drops != l->kdrops) {
        l->kdrops = in.kernel_drops;
        mcl__rx_set_kernel_drops(&l->rx, in.kernel_drops);
    }
    if (in.auth_failures > 0)
        atomic_fetch_add_explicit(&l->auth_failures, in.auth_failures, memory_order_relaxed);
}

// The next message from what is already read, or from non-blocking reads. MCL_OK with *m
// filled, MCL_EAGAIN when nothing is available now, MCL_EINTR when the caller should check its
// clock and call again (more may wait behind an edge-triggered fd), or a transport error.
// Bounded, so that a flood of datagrams that deliver nothing (filtered, malformed) still lets
// the caller look at its deadline or stop flag.
static mcl_err
next_message(mcl_raw_listener *l, mcl_raw_msg *m)
{
    for (unsigned reads = 0;;) {
        if (l->in_dgram) {
            if (mcl__rx_next(&l->rx, m)) {
                // (published to readers once nothing read is left to deliver)
                mcl__topics_count(l->topics, m, l->rx.left == 0 && l->batch_i >= l->batch_n);
                presence_tick(l);
                return MCL_OK;
            }
            l->in_dgram = false;
            mcl__topics_dgram_end(l->topics, l->rx.st.duplicates, l->batch_i >= l->batch_n);
        }
        if (feed_next(l))
            continue;
        if (l->buffered_only)
            return MCL_EAGAIN;
        if (reads++ == READS)
            return (l->caps & MCL__TP_EDGE_FD) ? MCL_EINTR : MCL_EAGAIN;
        mcl_err rv = read_batch(l);
        if (mcl__rx_has_partials(&l->rx)) // (a clock read per read only when it matters)
            mcl__rx_expire(&l->rx, mcl__mono_ns());
        if (rv != MCL_OK) {
            if (rv == MCL_EAGAIN) {
                idle(l);
                presence_deliver(l);
            }
            return rv;
        }
    }
}

static int
wait_readable(mcl_raw_listener *l, int extra_fd, int timeout_ms)
{
    if (l->ops->rx_wait != NULL)
        return l->ops->rx_wait(l->rxs, extra_fd, timeout_ms);
    struct pollfd p[2] = {{.fd = l->ops->rx_fd(l->rxs), .events = POLLIN},
                          {.fd = extra_fd, .events = POLLIN}};
    int r;
    do {
        r = poll(p, extra_fd >= 0 ? 2 : 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

// How long one round of a recv may wait: IDLE_POLL_MS at most, what is left of the timeout
// (rounded up to a millisecond; 0: nothing is left), or IDLE_POLL_MS without one.
static int
wait_slice(int timeout_ms, int64_t deadline, int64_t now)
{
    if (timeout_ms < 0)
        return IDLE_POLL_MS;
    int64_t left = deadline - now;
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > IDLE_POLL_MS ? IDLE_POLL_MS : (int)ms;
}

static mcl_err recv_rounds(mcl_raw_listener *l, const mcl_raw_msg **msgp, int timeout_ms);

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
    if (l->in_dgram || l->batch_i < l->batch_n) {
        // Something is read already: delivered from it first, with no read, no deadline and
        // (udp) none of the clock reads a waiting read needs. When none of it delivers, the
        // rounds below read as before.
        l->block_ms = 0;
        l->buffered_only = true;
        mcl_err rv = next_message(l, &l->cur);
        l->buffered_only = false;
        if (rv == MCL_OK) {
            *msgp = &l->cur;
            return MCL_OK;
        }
    }
    return recv_rounds(l, msgp, timeout_ms);
}

// mcl_raw_listener_recv once nothing already read delivers: reads (waiting in them, or
// polling) until a message, the timeout or an error.
static mcl_err
recv_rounds(mcl_raw_listener *l, const mcl_raw_msg **msgp, int timeout_ms)
{
    // The deadline is computed only once nothing is ready (a busy receiver reads no clock
    // here), or once before a read that may wait.
    int64_t deadline = INT64_MAX;
    bool have_deadline = timeout_ms < 0;
    // A transport that can wait in its read (udp: one recvmmsg instead of a read that finds
    // nothing, a poll and a second read) waits there when nothing is buffered; the deadline is
    // then taken before the first read.
    bool read_waits = l->ops->rx_read_wait != NULL && timeout_ms != 0 && !l->no_read_wait;
    if (read_waits && !have_deadline) {
        deadline = mcl__mono_ns() + (int64_t)timeout_ms * 1000000;
        have_deadline = true;
    }
    for (;;) {
        // This round's read may wait blk ms (a short wait is poll's: precise to well under a
        // millisecond, where the socket's timeout counts in ticks).
        int blk = 0;
        int64_t t_read = 0;
        if (read_waits) {
            t_read = mcl__mono_ns();
            int ms = wait_slice(timeout_ms, deadline, t_read);
            blk = ms >= READ_WAIT_MIN_MS ? ms : 0;
        }
        l->block_ms = blk;
        l->read_waited = false;
        mcl_err rv = next_message(l, &l->cur);
        l->block_ms = 0;
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
        int64_t now = mcl__mono_ns();
        int wait_ms = wait_slice(timeout_ms, deadline, now);
        if (wait_ms == 0)
            return MCL_ETIMEDOUT;
        // A waiting read that got datagrams with nothing to deliver, or that waited (at least
        // half its time): wait again, up to what is left. One that came back at once: the
        // socket no longer waits (its fd made non-blocking by whoever holds it): poll.
        if (blk > 0 && (!l->read_waited || now - t_read >= (int64_t)blk * 500000))
            continue;
        if (blk > 0) {
            l->no_read_wait = true;
            read_waits = false;
        }
        if (wait_readable(l, -1, wait_ms) < 0) {
            int e = errno;
            return mcl__fail(mcl__sys_err(e), NULL, 0, "listener", "poll: %s", strerror(e));
        }
    }
}

size_t
mcl__raw_listener_into_cap(const mcl_raw_listener *l)
{
    return l != NULL && l->ops->rx_read_into != NULL ? l->ops->rx_into_cap : 0;
}

mcl_err
mcl__raw_listener_recv_into(mcl_raw_listener *l, uint8_t *buf, size_t cap,
                            const mcl_raw_msg **msgp, int timeout_ms, bool *copied)
{
    if (copied != NULL)
        *copied = false;
    if (msgp == NULL)
        return MCL_EINVAL;
    *msgp = NULL;
    size_t need = mcl__raw_listener_into_cap(l);
    if (need == 0 || buf == NULL || cap < need)
        return MCL_EINVAL;
    if (l->scratch == NULL && (l->scratch = mcl__alloc(need)) == NULL)
        return MCL_ENOMEM;
    l->into = buf;
    l->into_copied = false;
    mcl_err rv = mcl_raw_listener_recv(l, msgp, timeout_ms);
    l->into = NULL;
    if (copied != NULL)
        *copied = rv == MCL_OK && l->into_copied;
    return rv;
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
    if (l->batch_i < l->batch_n)
        return true;
    // An edge-triggered fd: ask the transport whether a datagram waits (not while the
    // listener thread reads: a zmq socket belongs to one thread at a time).
    if (l->caps & MCL__TP_EDGE_FD)
        return !l->running && l->ops->rx_pending(l->rxs);
    return false;
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
    *fd = l->ops->rx_fd(l->rxs);
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
        // transport and the fd stays readable for the caller's poll loop.
        size_t left = max == 0 ? BATCH : max - n;
        l->want = left < BATCH ? (unsigned)left : BATCH;
        rv = next_message(l, &m);
        if (rv == MCL_EINTR)
            continue; // more may wait, and an edge-triggered fd must be drained
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
    if (mcl__inherited(l->owner)) { // the thread is the parent's (and so is the wake-up fd)
        l->running = false;
        return MCL_OK;
    }
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

static mcl_err
source_fd(const void *obj, int *fd)
{
    const mcl_raw_listener *l = obj;
    mcl_err rv = mcl_raw_listener_fd(l, fd);
    if (rv == MCL_OK && l->running)
        rv = MCL_ESTATE;
    return rv;
}

static void
source_dispatch(void *obj)
{
    (void)mcl_raw_listener_dispatch(obj, 0, NULL);
}

const mcl__source_ops mcl__raw_listener_source = {.fd = source_fd, .dispatch = source_dispatch};

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
    if (!mcl__inherited(l->owner))
        l->ops->rx_close(l->rxs);
    else if (l->ops->rx_forget != NULL) // (a forked child: the socket and membership stay the
        l->ops->rx_forget(l->rxs);      // parent's; only this process's copy goes)
    l->rxs = NULL;
    l->open = false;
    l->in_dgram = false;
    l->batch_n = l->batch_i = 0;
    mcl__rx_clear_partials(&l->rx);
    mcl__topics_publish(l->topics);
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
    if (l->rxs != NULL) // a failed open
        l->ops->rx_close(l->rxs);
    mcl__tseq_free(l->tseq);
    mcl__topics_free(l->topics);
    mcl__free(l->scratch);
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    if (l->rx_ready)
        mcl__rx_fini(&l->rx);
    if (l->auth_ready)
        mcl__auth_rx_fini(&l->auth);
    mcl__gkeys_wipe(&l->conn.keys);
    if (l->subs_ready)
        mcl__subs_fini(&l->subs, mcl__inherited(l->owner));
    if (l->pres_lock_ready)
        pthread_mutex_destroy(&l->pres_lock);
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

// Per-topic statistics (topics.c).

size_t
mcl_raw_listener_topics(mcl_raw_listener *l, mcl_topic_stats *out, size_t cap)
{
    return l != NULL ? mcl__topics_rows(l->topics, mcl__mono_ns(), false, NULL, out, cap) : 0;
}

size_t
mcl_raw_listener_topic_publishers(mcl_raw_listener *l, const char *topic, mcl_topic_stats *out,
                                  size_t cap)
{
    return l != NULL ? mcl__topics_rows(l->topics, mcl__mono_ns(), true, topic, out, cap) : 0;
}

mcl_err
mcl_raw_listener_topic_options(mcl_raw_listener *l, const mcl_topic_stats_options *o)
{
    return l != NULL ? mcl__topics_set_options(l->topics, o) : MCL_EINVAL;
}

uint64_t
mcl_raw_listener_topics_untracked(mcl_raw_listener *l)
{
    return l != NULL ? mcl__topics_untracked(l->topics) : 0;
}
