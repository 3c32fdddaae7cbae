// SPDX-License-Identifier: BSD-3-Clause
// Raw broadcaster over any transport: numbering, the datagram (wire format v1), fragmentation
// where the transport caps datagrams (MCL__TP_FRAGMENT), batching with its mcl-batcher thread,
// and per-topic numbers where the transport filters by topic (MCL__TP_PUBFILTER). Datagrams
// leave through the transport's tx_send, one call per datagram or train of fragments, paced
// by token buckets when the URL asks for it (rate=, msgrate=).
#define _GNU_SOURCE
#include "../core/internal.h"
#include "../core/zcodec.h"
#include "../transport/transport.h"
#include "auth.h"
#include "broadcaster_int.h"
#include "heartbeat.h"
#include "tseq.h"
#include "wire.h"

#include <mcl/raw.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

enum {
    TRAIN = 32,       // fragments handed to the transport per tx_send
    INFO_EVERY = 256, // publishes between two looks at the subscription count
    WHY_MAX = 160,
    HB_TOPICS = 256, // topics a broadcaster remembers for its heartbeats (more: counted only)
    HB_MAX = 4096,   // bytes of a heartbeat datagram at most (the topic list rotates)
};

// Coalescing: the longest a message waits in the batch for the datagrams before it to drain
// (the mcl-batcher thread then sends it all the same).
#define COALESCE_HOLD_NS 100000

// The topic of heartbeat frames on transports that filter by topic (zmq): not a topic anyone
// publishes (0xff is no UTF-8 lead byte); listeners subscribe to it besides their filter.
const char mcl__hb_topic[] = "\xffmcl.hb";

// A token bucket (rate=, msgrate=): `rate` tokens a second, at most `burst` saved up; a take
// larger than the burst waits for a full bucket and leaves it in debt. Under `lock`.
typedef struct bc_pace {
    double rate, burst, tokens;
    int64_t t_ns; // last refill (CLOCK_MONOTONIC)
} bc_pace;

typedef struct bc_topic {
    char *name;
    uint16_t tl;
    uint64_t count; // messages published on it
} bc_topic;

#define ZBUF_KEEP ((size_t)4 << 20) // a compression buffer up to this size is kept

struct mcl_raw_broadcaster {
    pid_t owner; // the process that opened it (mcl__inherited)
    struct mcl_connection conn; // with the bound port
    const mcl__bcast_ops *ops;
    unsigned caps;
    mcl__tx *tx;
    char *topic;
    size_t topic_len;
    uint64_t id;
    mcl__tseq *tseq;      // PUBFILTER: per (publisher, topic) message numbers, under `lock`
    uint64_t batch_tseq;  // PUBFILTER: the topic number of the batch's first record
    unsigned since_info;  // publishes since tx_info was last asked; under `lock`
    atomic_int_fast64_t subscribers; // SUBCOUNT: listeners subscribed
    atomic_uint_fast64_t auth_failures;
    atomic_uint_fast64_t peers_dropped; // the transport's count, as last seen
    atomic_uint_fast64_t auth_reported; // auth_failures when a wait_for_subscribers last failed
    atomic_bool open;
    uint64_t seq; // the next message's number; under `lock`
    // Written only with `lock` held (ctr_add, ctr_sub: a load and a store, no atomic
    // read-modify-write per message), read from any thread without it.
    atomic_uint_fast64_t n_messages, n_bytes, n_datagrams, n_errors;
    // `lock` makes "take a sequence number, send the message" one step, so concurrent
    // publishers put their messages on the wire in sequence order (a listener would
    // otherwise count the later-sent, lower number as reordered).
    // Batching (conn.batch_us > 0): records accumulate in `batch` under `lock`; the
    // "mcl-batcher" thread sends a batch batch_us after its first record.
    // Coalescing (the transport's lim.coalesce, without batch=): the same batch, but a message
    // waits in it only while datagrams sent before it have not drained (tx_backlog > 0); see
    // coalesce_locked(). The mcl-batcher thread, started at the first message held, bounds
    // the wait to COALESCE_HOLD_NS.
    bool batching;
    bool coalesce;
    bool lock_init, cv_init;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint8_t *batch;
    size_t batch_len; // bytes used, header included
    size_t batch_cap; // the largest batch datagram the transport takes
    char batch_topic[MCL_TOPIC_MAX + 1]; // PUBFILTER: the one topic of the batch (datagrams
    size_t batch_tl;                     // are filtered by their topic)
    uint16_t batch_n;     // records
    uint64_t batch_bytes; // their payload bytes
    mcl_err batch_err;    // first failed batch send not yet returned by flush or close
    mcl_err why_code;     // a send failure to report to the log once `lock` is released
    char why[WHY_MAX];
    int64_t batch_t0; // when the first record went in (CLOCK_MONOTONIC ns)
    bool flusher_stop;
    bool has_flusher;
    pthread_t flusher;
    // Heartbeats: the topics published (under `lock`), and whether the heartbeat thread knows b.
    bc_topic *topics;
    size_t ntopics, topics_cap, topic_last, topic_first;
    uint64_t topics_more; // messages on topics beyond HB_TOPICS
    bool hb_on;
    atomic_uint_fast64_t n_heartbeats;
    // Authentication (conn.keys.n > 0, lib/raw/auth.h): every datagram sealed under `lock`;
    // `dgram` is the room a datagram has before its trailer.
    size_t dgram;
    bool keyed;
    mcl__auth_tx auth;
    uint8_t *seal; // encrypted mode: the datagram being sealed
    size_t seal_cap;
    // Pacing: bytes of datagrams (rate=) and messages (msgrate=); rate 0: off. `pacing` is
    // set while a publisher sleeps for its turn, or compresses, with `lock` held (heartbeats
    // skip a round then).
    bc_pace pace_bytes, pace_msgs;
    atomic_bool pacing;
    atomic_uint_fast64_t n_paced; // sleeps for pacing
    // Compression (conn.zcodec != 0, compress=): messages of at least conn.zmin bytes are
    // compressed under `lock` into zbuf (envelope first) and sent alone with MCL__WIRE_F_ZIP
    // when that makes them smaller; zbuf keeps the largest size needed up to ZBUF_KEEP.
    struct mcl__zctx *zctx;
    uint8_t *zbuf;
    size_t zcap;
    atomic_uint_fast64_t n_zmsgs, n_zbefore, n_zafter;
};

// The counters above that `lock` serialises: every writer holds it, so a plain load and store
// (relaxed atomics, for the readers that do not take it) replace a locked read-modify-write.
static inline void
ctr_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void
ctr_sub(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

static mcl_err batch_flush_locked(mcl_raw_broadcaster *b);
static mcl_err tx_send_sealed(mcl_raw_broadcaster *b, const mcl__frame *f, unsigned n,
                              unsigned *done, char *why, size_t whylen);
static void unlock_and_log(mcl_raw_broadcaster *b);

// Counts a message on its topic, for heartbeats. Called with b->lock held; never fails (a
// topic that finds no room is counted in topics_more).
static void note_topic_slow_locked(mcl_raw_broadcaster *b, const char *topic, size_t tl);

static inline void
note_topic_locked(mcl_raw_broadcaster *b, const char *topic, size_t tl)
{
    if (!b->hb_on)
        return;
    bc_topic *t = b->ntopics > 0 ? &b->topics[b->topic_last] : NULL;
    if (t != NULL && t->tl == tl && mcl__same_short(t->name, topic, tl)) { // (no call)
        t->count++;
        return;
    }
    note_topic_slow_locked(b, topic, tl);
}

// note_topic_locked for a topic other than the last one.
static void
note_topic_slow_locked(mcl_raw_broadcaster *b, const char *topic, size_t tl)
{
    for (size_t i = 0; i < b->ntopics; i++)
        if (b->topics[i].tl == tl && memcmp(b->topics[i].name, topic, tl) == 0) {
            b->topics[i].count++;
            b->topic_last = i;
            return;
        }
    char *name = b->ntopics < HB_TOPICS ? mcl__alloc(tl + 1) : NULL;
    if (name != NULL && b->ntopics == b->topics_cap) {
        size_t nc = b->topics_cap ? b->topics_cap * 2 : 8;
        bc_topic *nt = mcl__realloc(b->topics, nc * sizeof(*nt));
        if (nt == NULL) {
            mcl__free(name);
            name = NULL;
        } else {
            b->topics = nt;
            b->topics_cap = nc;
        }
    }
    if (name == NULL) {
        b->topics_more++;
        return;
    }
    memcpy(name, topic, tl);
    name[tl] = '\0';
    b->topics[b->ntopics] = (bc_topic){name, (uint16_t)tl, 1};
    b->topic_last = b->ntopics++;
}

void
mcl__bcast_heartbeat(mcl_raw_broadcaster *b, bool bye)
{
    uint8_t buf[HB_MAX];
    const char *host, *prog;
    uint32_t pid;
    mcl__hb_identity(&host, &prog, &pid);
    // A paced publisher may sleep with the lock held, and a compressing one work with it for
    // long (zstd:19 on a large message): this thread serves every broadcaster of the process,
    // so it does not wait (the publisher's own datagrams say it is alive).
    if (pthread_mutex_trylock(&b->lock) != 0) {
        if (atomic_load_explicit(&b->pacing, memory_order_relaxed) && !bye)
            return;
        pthread_mutex_lock(&b->lock);
    }
    if (b->tx == NULL) {
        pthread_mutex_unlock(&b->lock);
        return;
    }
    if (b->batching) // what waits is numbered already: it goes before the count that says so
        (void)batch_flush_locked(b);
    mcl__wire_hb hb = {.next_seq = b->seq,
                       .interval_ms = b->conn.heartbeat_ms,
                       .pid = pid,
                       .flags = bye ? MCL__WIRE_HB_BYE : 0,
                       .host = (const uint8_t *)host,
                       .host_len = (uint8_t)strlen(host),
                       .prog = (const uint8_t *)prog,
                       .prog_len = (uint8_t)strlen(prog)};
    const char *names[HB_TOPICS];
    uint16_t tls[HB_TOPICS];
    uint64_t counts[HB_TOPICS];
    for (size_t i = 0; i < b->ntopics; i++) {
        names[i] = b->topics[i].name;
        tls[i] = b->topics[i].tl;
        counts[i] = b->topics[i].count;
    }
    size_t cap = b->dgram > 0 && b->dgram < HB_MAX ? b->dgram : HB_MAX;
    size_t n = mcl__wire_put_hb(buf, cap, b->id, &hb, names, tls, counts, b->ntopics,
                                b->topic_first);
    if (n > 0) {
        size_t listed = mcl__get_be16(buf + MCL__WIRE_HDR + 20);
        if (b->ntopics > 0)
            b->topic_first = (b->topic_first + listed) % b->ntopics; // the rest next time
        struct iovec iov = {buf, n};
        mcl__frame f = {.iov = &iov, .niov = 1, .nowait = true};
        if (b->caps & MCL__TP_PUBFILTER) {
            f.topic = mcl__hb_topic;
            f.tl = sizeof(mcl__hb_topic) - 1;
        }
        char why[WHY_MAX];
        unsigned done = 0;
        if (tx_send_sealed(b, &f, 1, &done, why, sizeof(why)) == MCL_OK && done == 1)
            atomic_fetch_add_explicit(&b->n_heartbeats, 1, memory_order_relaxed);
    }
    unlock_and_log(b);
}

// Releases b->lock, then reports a send failure seen under it (the application's log
// handler never runs with the lock held, so it may publish on this broadcaster).
static void
unlock_and_log(mcl_raw_broadcaster *b)
{
    char why[WHY_MAX];
    mcl_err code = b->why_code;
    bool have = b->why[0] != '\0';
    if (have) {
        memcpy(why, b->why, sizeof(why));
        b->why[0] = '\0';
    }
    pthread_mutex_unlock(&b->lock);
    if (have)
        (void)mcl__fail(code, NULL, 0, "broadcaster", "%s: %s", b->conn.url, why);
}

// Hands f[0..n) to the transport, each sealed with the group key when there is one (a MAC
// trailer as one more iovec; encrypted: through b->seal, one datagram per call). Called with
// b->lock held (the counter of the trailers is under it).
static mcl_err
tx_send_sealed(mcl_raw_broadcaster *b, const mcl__frame *f, unsigned n, unsigned *done,
               char *why, size_t whylen)
{
    if (!b->keyed)
        return b->ops->tx_send(b->tx, f, n, done, why, whylen);
    int64_t now = mcl__real_ns();
    *done = 0;
    for (unsigned s = 0; s < n;) {
        struct iovec iov[TRAIN * 4];
        mcl__frame fr[TRAIN];
        uint8_t tr[TRAIN][MCL__AUTH_TRAILER];
        unsigned k = 0, used = 0;
        if (!b->auth.encrypt) {
            for (; s < n && k < TRAIN && used + f[s].niov + 1 <= TRAIN * 4; s++, k++) {
                fr[k] = f[s];
                memcpy(iov + used, f[s].iov, f[s].niov * sizeof(*iov));
                ((uint8_t *)iov[used].iov_base)[4] |= MCL__WIRE_F_AUTH; // (our own header)
                mcl__auth_mac(&b->auth, iov + used, f[s].niov, now, tr[k]);
                iov[used + f[s].niov] = (struct iovec){tr[k], MCL__AUTH_TRAILER};
                fr[k].iov = iov + used;
                fr[k].niov = f[s].niov + 1;
                used += f[s].niov + 1;
            }
        } else {
            size_t len = 0;
            for (unsigned i = 0; i < f[s].niov; i++)
                len += f[s].iov[i].iov_len;
            if (b->seal_cap < len + MCL__AUTH_TRAILER) {
                uint8_t *nb = mcl__realloc(b->seal, len + MCL__AUTH_TRAILER);
                if (nb == NULL)
                    return MCL_ENOMEM;
                b->seal = nb;
                b->seal_cap = len + MCL__AUTH_TRAILER;
            }
            size_t off = 0;
            for (unsigned i = 0; i < f[s].niov; i++) {
                memcpy(b->seal + off, f[s].iov[i].iov_base, f[s].iov[i].iov_len);
                off += f[s].iov[i].iov_len;
            }
            iov[0] = (struct iovec){b->seal, mcl__auth_seal(&b->auth, b->seal, len, now)};
            fr[0] = f[s];
            fr[0].iov = iov;
            fr[0].niov = 1;
            k = 1;
            s++;
        }
        unsigned d = 0;
        mcl_err rv = b->ops->tx_send(b->tx, fr, k, &d, why, whylen);
        *done += d;
        if (rv != MCL_OK || d < k)
            return rv;
    }
    return MCL_OK;
}

// Starts a bucket full: `burst` is 10 ms at the rate, at least `min_burst` tokens.
static void
pace_init(bc_pace *p, uint64_t rate, double min_burst)
{
    p->rate = (double)rate;
    p->burst = p->rate / 100 > min_burst ? p->rate / 100 : min_burst;
    p->tokens = p->burst;
    p->t_ns = mcl__mono_ns();
}

static void
pace_refill(bc_pace *p)
{
    int64_t now = mcl__mono_ns();
    p->tokens += (double)(now - p->t_ns) * 1e-9 * p->rate;
    if (p->tokens > p->burst)
        p->tokens = p->burst;
    p->t_ns = now;
}

// Takes n tokens, first sleeping (never spinning) until the bucket holds min(n, burst).
// Called with b->lock held.
static void
pace_take_locked(mcl_raw_broadcaster *b, bc_pace *p, double n)
{
    double need = n < p->burst ? n : p->burst;
    for (pace_refill(p); p->tokens < need; pace_refill(p)) {
        int64_t due = p->t_ns + (int64_t)((need - p->tokens) / p->rate * 1e9) + 1;
        struct timespec ts = {.tv_sec = (time_t)(due / 1000000000),
                              .tv_nsec = (long)(due % 1000000000)};
        atomic_store_explicit(&b->pacing, true, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->n_paced, 1, memory_order_relaxed);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        atomic_store_explicit(&b->pacing, false, memory_order_relaxed);
    }
    p->tokens -= n;
}

static size_t
frame_bytes(const mcl__frame *f)
{
    size_t len = 0;
    for (unsigned i = 0; i < f->niov; i++)
        len += f->iov[i].iov_len;
    return len;
}

// rate=: how many of f[0..n) may leave now, at least one, after waiting for the first (so
// that a train of fragments is spread at the rate). Called with b->lock held.
static unsigned
pace_frames_locked(mcl_raw_broadcaster *b, const mcl__frame *f, unsigned n)
{
    bc_pace *p = &b->pace_bytes;
    pace_take_locked(b, p, (double)frame_bytes(&f[0]));
    unsigned k = 1;
    for (; k < n; k++) {
        double len = (double)frame_bytes(&f[k]);
        if (p->tokens < len)
            break;
        p->tokens -= len;
    }
    return k;
}

// Hands f[0..n) to the transport (paced: as the bucket allows). Called with b->lock held.
// Counts what left; a failure's reason is kept for unlock_and_log(). *sent (may be NULL) =
// datagrams that left. (Inline: every publish goes through it.)
static inline __attribute__((always_inline)) mcl_err
send_frames_locked(mcl_raw_broadcaster *b, const mcl__frame *f, unsigned n, unsigned *sent)
{
    char why[WHY_MAX];
    why[0] = '\0'; // (not = "": that would clear all of it on every send)
    unsigned done = 0;
    mcl_err rv = MCL_OK;
    if (b->pace_bytes.rate == 0) {
        rv = tx_send_sealed(b, f, n, &done, why, sizeof(why));
    } else {
        while (done < n && rv == MCL_OK) {
            unsigned k = pace_frames_locked(b, f + done, n - done), d = 0;
            rv = tx_send_sealed(b, f + done, k, &d, why, sizeof(why));
            done += d;
            if (d < k)
                break;
        }
    }
    ctr_add(&b->n_datagrams, done);
    if (rv != MCL_OK && why[0] != '\0' && b->why[0] == '\0') {
        memcpy(b->why, why, sizeof(why));
        b->why_code = rv;
    }
    if (sent != NULL)
        *sent = done;
    return rv;
}

// The per-topic counter for PUBFILTER transports (NULL when out of memory).
static uint64_t *
tseq_of(mcl_raw_broadcaster *b, uint64_t publisher, const char *topic, size_t tl)
{
    bool created;
    return mcl__tseq_slot(b->tseq, publisher, topic, tl, &created);
}

// Reads the transport's subscriber count and failed handshakes, waiting up to wait_ms.
static void
refresh_info(mcl_raw_broadcaster *b, int wait_ms)
{
    if (b->ops->tx_info == NULL)
        return;
    mcl__tx_info in = {0};
    b->ops->tx_info(b->tx, wait_ms, &in);
    atomic_store_explicit(&b->subscribers, in.subscribers, memory_order_relaxed);
    atomic_store_explicit(&b->auth_failures, in.auth_failures, memory_order_relaxed);
    atomic_store_explicit(&b->peers_dropped, in.peers_dropped, memory_order_relaxed);
}

// Takes turns for asking the transport about subscribers: true every INFO_EVERY publishes.
// Called with b->lock held; the caller asks after unlocking (finish_locked()).
static bool
info_due_locked(mcl_raw_broadcaster *b)
{
    if (b->ops->tx_info == NULL || ++b->since_info < INFO_EVERY)
        return false;
    b->since_info = 0;
    return true;
}

// Ends a publish: unlocks, logs a send failure, and asks for news of subscribers when due
// (tx_info may log, so it runs with no lock of ours held).
static void
finish_locked(mcl_raw_broadcaster *b, bool info)
{
    unlock_and_log(b);
    if (info)
        refresh_info(b, 0);
}

// Drops the pending batch after a failed send: its records move from `messages` to `errors`,
// and the failure is kept in batch_err for the next flush or close. Called with b->lock held.
static void
batch_drop_locked(mcl_raw_broadcaster *b, mcl_err rv)
{
    ctr_add(&b->n_errors, b->batch_n);
    ctr_sub(&b->n_messages, b->batch_n);
    ctr_sub(&b->n_bytes, b->batch_bytes);
    if (b->batch_err == MCL_OK)
        b->batch_err = rv;
    b->batch_n = 0;
    b->batch_bytes = 0;
    b->batch_len = MCL__WIRE_HDR;
}

// Sends the pending batch. Called with b->lock held. A failure drops it (batch_drop_locked),
// except when coalescing and a lossless queue stayed full (MCL_ETIMEDOUT, MCL_EAGAIN: it went
// to no one): then the batch stays, to be sent later, as a message that waits in a full
// lossless queue would.
static mcl_err
batch_flush_locked(mcl_raw_broadcaster *b)
{
    if (b->batch_n == 0)
        return MCL_OK;
    mcl__put_be16(b->batch + 6, b->batch_n); // the record count in the datagram header
    struct iovec iov = {b->batch, b->batch_len};
    mcl__frame f = {.iov = &iov, .niov = 1, .topic = b->batch_topic, .tl = b->batch_tl,
                    .tseq = b->batch_tseq};
    mcl_err rv = send_frames_locked(b, &f, 1, NULL);
    if (rv != MCL_OK && b->coalesce && (rv == MCL_ETIMEDOUT || rv == MCL_EAGAIN))
        return rv;
    if (rv != MCL_OK) {
        batch_drop_locked(b, rv);
        return rv;
    }
    b->batch_n = 0;
    b->batch_bytes = 0;
    b->batch_len = MCL__WIRE_HDR;
    return rv;
}

// The first batch failure since the last call (MCL_OK if none), and forgets it.
static mcl_err
take_batch_err_locked(mcl_raw_broadcaster *b)
{
    mcl_err rv = b->batch_err;
    b->batch_err = MCL_OK;
    return rv;
}

static void *
flusher_thread(void *arg)
{
    mcl_raw_broadcaster *b = arg;
    if (b->coalesce) // short waits: the default timer slack (50 us) would lengthen them by half
        (void)prctl(PR_SET_TIMERSLACK, 5000UL, 0UL, 0UL, 0UL);
    pthread_mutex_lock(&b->lock);
    while (!b->flusher_stop) {
        if (b->batch_n == 0) {
            pthread_cond_wait(&b->cv, &b->lock);
            continue;
        }
        int64_t due = b->batch_t0 + (b->coalesce ? COALESCE_HOLD_NS
                                                  : (int64_t)b->conn.batch_us * 1000);
        int64_t now = mcl__mono_ns();
        if (now >= due) {
            // Kept in batch_err, counted in errors; or (coalescing, a full lossless queue)
            // still held: tried again after another hold time.
            if (batch_flush_locked(b) != MCL_OK && b->batch_n > 0)
                b->batch_t0 = mcl__mono_ns();
            if (b->why[0] != '\0') {
                unlock_and_log(b);
                pthread_mutex_lock(&b->lock);
            }
            continue;
        }
        struct timespec ts; // the condition variable uses CLOCK_MONOTONIC (see open)
        ts.tv_sec = (time_t)(due / 1000000000);
        ts.tv_nsec = (long)(due % 1000000000);
        pthread_cond_timedwait(&b->cv, &b->lock, &ts);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

// Starts the mcl-batcher thread. Called with b->lock held, or before the broadcaster is shared.
static mcl_err
start_flusher_locked(mcl_raw_broadcaster *b)
{
    int e = pthread_create(&b->flusher, NULL, flusher_thread, b);
    if (e != 0)
        return mcl__sys_err(e);
    pthread_setname_np(b->flusher, "mcl-batcher");
    b->has_flusher = true;
    return MCL_OK;
}

// Ends the mcl-batcher thread (what it has not sent stays in the batch).
static void
stop_flusher(mcl_raw_broadcaster *b)
{
    pthread_mutex_lock(&b->lock);
    b->flusher_stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->flusher, NULL);
    b->has_flusher = false;
}

mcl_err
mcl_raw_broadcaster_flush(mcl_raw_broadcaster *b)
{
    if (b == NULL)
        return MCL_EINVAL;
    if (!atomic_load(&b->open))
        return MCL_ECLOSED;
    if (!b->batching)
        return MCL_OK;
    pthread_mutex_lock(&b->lock);
    (void)batch_flush_locked(b);
    mcl_err rv = take_batch_err_locked(b);
    unlock_and_log(b);
    return rv;
}

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
    if (conn->tp->bcast == NULL)
        return mcl__fail(MCL_ENOTSUP, NULL, 0, "broadcaster", "%s: %s:// has no broadcasters (it carries packet "
                         "streams only: calls, streams, the broker); publish on udp:// or zmq+",
                         conn->url, conn->tp->scheme);
    if ((b = mcl__zalloc(sizeof(*b))) == NULL)
        return MCL_ENOMEM;
    b->conn = *conn;
    b->ops = conn->tp->bcast;
    b->caps = conn->tp->caps;
    b->topic_len = tl;
    if ((b->topic = mcl__strdup(topic)) == NULL) {
        rv = MCL_ENOMEM;
        goto out;
    }
    if ((rv = mcl__random_u64(&b->id)) != MCL_OK)
        goto out;
    if ((b->caps & MCL__TP_PUBFILTER) && (b->tseq = mcl__tseq_new()) == NULL) {
        rv = MCL_ENOMEM;
        goto out;
    }
    b->dgram = b->conn.dgram;
    if (b->conn.keys.n > 0) {
        b->keyed = true;
        b->auth = (mcl__auth_tx){.key = &b->conn.keys.k[0], .encrypt = b->conn.encrypt,
                                 .signer = b->id};
        if (b->dgram > 0)
            b->dgram -= MCL__AUTH_TRAILER;
    }
    mcl__tx_limits lim = {0};
    if ((rv = b->ops->tx_open(&b->tx, &b->conn, &lim)) != MCL_OK)
        goto out;
    if (lim.bound_port != 0 && lim.bound_port != b->conn.port) {
        b->conn.port = lim.bound_port;
        mcl__connection_canon(&b->conn);
    }
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        rv = MCL_ESYS;
        goto out;
    }
    b->lock_init = true;
    if (b->conn.rate > 0) // a burst holds at least one datagram of the largest size
        pace_init(&b->pace_bytes, b->conn.rate, 65536);
    if (b->conn.msgrate > 0)
        pace_init(&b->pace_msgs, b->conn.msgrate, 1);
    if (b->conn.batch_us > 0 || lim.coalesce) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        b->cv_init = pthread_cond_init(&b->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        b->batch_cap = lim.batch_max - (b->keyed ? MCL__AUTH_TRAILER : 0);
        if (!b->cv_init || (b->batch = mcl__alloc(b->batch_cap)) == NULL) {
            rv = b->cv_init ? MCL_ENOMEM : MCL_ESYS;
            goto out;
        }
        b->batching = true;
        b->coalesce = b->conn.batch_us == 0; // (the thread starts with the first message held)
        b->batch_len = mcl__wire_put_hdr(b->batch, 0, 0, b->id);
        if (!b->coalesce && (rv = start_flusher_locked(b)) != MCL_OK)
            goto out;
    }
    atomic_store(&b->open, true);
    b->owner = getpid();
    if (b->conn.heartbeat_ms > 0) {
        b->hb_on = true;
        if ((rv = mcl__hb_add(b, b->conn.heartbeat_ms)) != MCL_OK) {
            b->hb_on = false;
            goto out;
        }
    }
    *bp = b;
    b = NULL;
out:
    mcl_raw_broadcaster_free(b);
    return rv;
}

// Counts a publish's result (a message and its bytes, or an error). Called with b->lock held.
static mcl_err
count_result(mcl_raw_broadcaster *b, mcl_err rv, size_t len)
{
    if (rv != MCL_OK) {
        ctr_add(&b->n_errors, 1);
        return rv;
    }
    ctr_add(&b->n_messages, 1);
    ctr_add(&b->n_bytes, len);
    return MCL_OK;
}

// Sends one message as a datagram or a train of fragments, with the given publisher id and
// sequence number. Called with b->lock held. *sent = datagrams that left.
static mcl_err
send_unbatched_locked(mcl_raw_broadcaster *b, uint64_t id, uint64_t seq, const char *topic,
                      size_t tl, const void *data, size_t len, uint8_t flags, unsigned *sent)
{
    uint32_t count = 1;
    size_t fsize = 0;
    // (what fits one datagram is one record: no call for the plan)
    if ((b->caps & MCL__TP_FRAGMENT) && MCL__WIRE_HDR + MCL__WIRE_REC + tl + len > b->dgram)
        mcl__wire_plan(b->dgram, tl, len, &count, &fsize);
    *sent = 0;
    if (count == 1) {
        uint8_t hdr[MCL__WIRE_HDR + MCL__WIRE_REC + MCL_TOPIC_MAX];
        size_t hl = mcl__wire_put_hdr(hdr, flags, 1, id);
        hl += mcl__wire_put_rec(hdr + hl, seq, topic, (uint16_t)tl, (uint32_t)len);
        struct iovec iov[2] = {{hdr, hl}, {(void *)(uintptr_t)data, len}};
        mcl__frame f = {.iov = iov, .niov = len ? 2 : 1, .topic = topic, .tl = tl};
        uint64_t *ctr = NULL;
        if (b->caps & MCL__TP_PUBFILTER) {
            if ((ctr = tseq_of(b, id, topic, tl)) == NULL)
                return MCL_ENOMEM;
            f.tseq = *ctr;
        }
        mcl_err rv = send_frames_locked(b, &f, 1, sent);
        if (rv == MCL_OK && ctr != NULL)
            ++*ctr; // a refused message used no number
        return rv;
    }
    // One heap block per fragmented message holds the headers of a train; the payload is
    // sent from the caller's buffer without copying.
    size_t hsz = MCL__WIRE_HDR + MCL__WIRE_FRAGREC + tl;
    unsigned train = count < TRAIN ? count : TRAIN;
    uint8_t *hdrs = mcl__alloc(train * hsz);
    struct iovec *iov = mcl__alloc(train * 2 * sizeof(*iov));
    mcl__frame *fr = mcl__zalloc(train * sizeof(*fr));
    mcl_err rv = MCL_OK;
    if (hdrs == NULL || iov == NULL || fr == NULL) {
        rv = MCL_ENOMEM;
    } else {
        const uint8_t *p = data;
        for (uint32_t i = 0; i < count && rv == MCL_OK;) {
            unsigned n = 0;
            for (; n < train && i < count; n++, i++) {
                size_t off = (size_t)i * fsize;
                size_t fl = len - off < fsize ? len - off : fsize;
                uint8_t *h = hdrs + n * hsz;
                size_t hl = mcl__wire_put_hdr(h, MCL__WIRE_F_FRAG | flags, 1, id);
                hl += mcl__wire_put_frag(h + hl, seq, topic, (uint16_t)tl, (uint32_t)fl,
                                         (uint32_t)len, (uint32_t)off, i, count);
                iov[2 * n] = (struct iovec){h, hl};
                iov[2 * n + 1] = (struct iovec){(void *)(uintptr_t)(p + off), fl};
                fr[n] = (mcl__frame){.iov = &iov[2 * n], .niov = 2, .topic = topic, .tl = tl};
            }
            unsigned done = 0;
            rv = send_frames_locked(b, fr, n, &done);
            *sent += done;
        }
    }
    mcl__free(hdrs);
    mcl__free(iov);
    mcl__free(fr);
    return rv;
}

// Appends a message to the batch (which has room for it, and holds its topic or nothing)
// and counts it (for heartbeats too if `note`). Called with b->lock held. MCL_ENOMEM: not
// taken (no number used).
static mcl_err
batch_add_locked(mcl_raw_broadcaster *b, const char *topic, size_t tl, const void *data,
                 size_t len, bool note)
{
    if (b->caps & MCL__TP_PUBFILTER) {
        uint64_t *ctr = tseq_of(b, b->id, topic, tl);
        if (ctr == NULL)
            return MCL_ENOMEM;
        if (b->batch_n == 0)
            b->batch_tseq = *ctr;
        ++*ctr;
    }
    if (b->batch_n == 0) {
        memcpy(b->batch_topic, topic, tl);
        b->batch_tl = tl;
    }
    uint64_t seq = b->seq++;
    size_t off = b->batch_len;
    off += mcl__wire_put_rec(b->batch + off, seq, topic, (uint16_t)tl, (uint32_t)len);
    if (len > 0)
        memcpy(b->batch + off, data, len);
    b->batch_len = off + len;
    b->batch_bytes += len;
    if (b->batch_n++ == 0) {
        b->batch_t0 = mcl__mono_ns();
        pthread_cond_signal(&b->cv);
    }
    if (note)
        note_topic_locked(b, topic, tl);
    // Counted under the lock, so that a failed flush never subtracts first.
    ctr_add(&b->n_messages, 1);
    ctr_add(&b->n_bytes, len);
    return MCL_OK;
}

// Sends the batch for a publish, which returns the failure (a dropped batch's records are
// counted in `errors`, and nothing is kept for flush or close). Called with b->lock held.
static mcl_err
coalesce_flush_locked(mcl_raw_broadcaster *b)
{
    mcl_err rv = batch_flush_locked(b);
    if (rv != MCL_OK)
        b->batch_err = MCL_OK; // (returned now)
    return rv;
}

// Opportunistic batching (coalescing). A message that finds nothing held and every datagram
// sent before it drained (the transport's tx_backlog is 0) goes out at once, alone: false,
// the caller sends it. Otherwise it is packed into the batch (true, *rv its result), which
// leaves as one datagram when the next publish finds the backlog drained (with that message
// in it), when it is full or the topic changes, on flush, close, a heartbeat or a forward,
// and at the latest COALESCE_HOLD_NS after its first record (the mcl-batcher thread). So a
// lone message is never delayed, and a publisher faster than its datagrams drain sends
// fewer, larger ones. When a send of held messages finds a lossless queue full for the
// connection's timeout, the publish that made it fails as an unbatched one would (this
// message is not taken and uses no number) and the held messages stay held; any other
// failure drops them (counted in `errors`), returned by the publish that made it or, from
// the mcl-batcher thread, by the next publish, flush or close. Called with b->lock held.
static bool
coalesce_locked(mcl_raw_broadcaster *b, const char *topic, size_t tl, const void *data,
                size_t len, mcl_err *rv)
{
    *rv = MCL_OK;
    if (b->batch_err != MCL_OK) { // the mcl-batcher thread failed: say so, take nothing
        *rv = count_result(b, take_batch_err_locked(b), len);
        return true;
    }
    size_t rec = MCL__WIRE_REC + tl + len;
    bool big = MCL__WIRE_HDR + rec > b->batch_cap;
    bool busy = !big && b->ops->tx_backlog(b->tx) > 0;
    if (b->batch_n == 0 && !busy)
        return false;
    if (big || b->batch_len + rec > b->batch_cap || b->batch_n == UINT16_MAX ||
        ((b->caps & MCL__TP_PUBFILTER) &&
         (tl != b->batch_tl || memcmp(topic, b->batch_topic, tl) != 0))) {
        if ((*rv = coalesce_flush_locked(b)) != MCL_OK) {
            *rv = count_result(b, *rv, len);
            return true;
        }
        if (big)
            return false; // alone, after what waited
        busy = true; // (what just left has not drained yet)
    }
    // What to put back if this message's send fails with the held ones kept.
    size_t len0 = b->batch_len;
    uint64_t bytes0 = b->batch_bytes;
    if ((*rv = batch_add_locked(b, topic, tl, data, len, false)) != MCL_OK) {
        *rv = count_result(b, *rv, len);
        return true;
    }
    if (busy && !b->has_flusher && start_flusher_locked(b) != MCL_OK)
        busy = false; // no thread to bound the wait: no wait
    if (!busy && (*rv = coalesce_flush_locked(b)) != MCL_OK) {
        // This message was the batch's last record: its numbers are free again.
        b->seq--;
        if (b->caps & MCL__TP_PUBFILTER) {
            uint64_t *ctr = tseq_of(b, b->id, topic, tl);
            if (ctr != NULL)
                --*ctr;
        }
        if (b->batch_n > 0) { // kept (a full lossless queue): all but this message
            b->batch_n--;
            b->batch_len = len0;
            b->batch_bytes = bytes0;
            ctr_sub(&b->n_messages, 1);
            ctr_sub(&b->n_bytes, len);
        } else { // dropped with the others, which batch_drop_locked counted (and this one)
            ctr_sub(&b->n_errors, 1);
        }
        *rv = count_result(b, *rv, len);
        return true;
    }
    note_topic_locked(b, topic, tl);
    return true;
}

// The compression buffer is kept between messages up to ZBUF_KEEP bytes only.
static void
zbuf_trim_locked(mcl_raw_broadcaster *b)
{
    if (b->zcap > ZBUF_KEEP) {
        mcl__free(b->zbuf);
        b->zbuf = NULL;
        b->zcap = 0;
    }
}

// compress=: the message in b->zbuf as a compressed envelope, when it has at least
// conn.zmin bytes and compressing makes it smaller (*zlen its length, envelope included);
// false: it goes as it is (too small, incompressible, or no memory: logged once). Called with
// b->lock held.
static bool
compress_locked(mcl_raw_broadcaster *b, const void *data, size_t len, size_t *zlen)
{
    if (b->conn.zcodec == MCL__Z_NONE || len < b->conn.zmin || len < 2 * MCL__WIRE_ZENV ||
        len > UINT32_MAX)
        return false;
    // Worth it only if at least the envelope is saved: the result must fit len - 1.
    size_t need = len - 1;
    if (b->zctx == NULL && (b->zctx = mcl__zctx_new()) == NULL)
        return false;
    if (b->zcap < need) { // (what it held is not needed: no copy)
        mcl__free(b->zbuf);
        b->zcap = 0;
        if ((b->zbuf = mcl__alloc(need)) == NULL)
            return false;
        b->zcap = need;
    }
    atomic_store_explicit(&b->pacing, true, memory_order_relaxed); // (heartbeats: do not wait)
    size_t zl = mcl__z_compress(b->zctx, b->conn.zcodec, b->conn.zlevel, data, len,
                                b->zbuf + MCL__WIRE_ZENV, need - MCL__WIRE_ZENV);
    atomic_store_explicit(&b->pacing, false, memory_order_relaxed);
    if (zl == 0) {
        zbuf_trim_locked(b); // (incompressible: nothing of it is needed)
        return false;
    }
    mcl__wire_put_zenv(b->zbuf, (uint8_t)mcl__z_stored(b->conn.zcodec), (uint32_t)len);
    *zlen = MCL__WIRE_ZENV + zl;
    return true;
}

// After a compressed send (sent: it left): counts it, and gives back a large buffer.
static void
compressed_sent_locked(mcl_raw_broadcaster *b, bool sent, size_t len, size_t zlen)
{
    if (sent) {
        atomic_fetch_add_explicit(&b->n_zmsgs, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->n_zbefore, len, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->n_zafter, zlen, memory_order_relaxed);
    }
    zbuf_trim_locked(b);
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
    size_t rec = MCL__WIRE_REC + tl + len;
    bool pubfilter = (b->caps & MCL__TP_PUBFILTER) != 0;
    pthread_mutex_lock(&b->lock);
    if (b->pace_msgs.rate > 0)
        pace_take_locked(b, &b->pace_msgs, 1);
    bool info = info_due_locked(b);
    size_t zlen = 0;
    bool zipped = b->conn.zcodec != MCL__Z_NONE && compress_locked(b, data, len, &zlen);
    if (zipped) {
        // Alone, after what waits in a batch (a compressed message is at least compress_min
        // bytes: batching would save little).
        // When held messages cannot leave (a full lossless queue), this one is refused as
        // coalescing refuses it: sent now, it would overtake them.
        mcl_err rv = MCL_OK;
        if (b->coalesce)
            rv = coalesce_flush_locked(b);
        else if (b->batching)
            (void)batch_flush_locked(b);
        if (rv != MCL_OK) {
            zbuf_trim_locked(b);
            rv = count_result(b, rv, len);
            finish_locked(b, info);
            return rv;
        }
    } else if (b->coalesce) {
        mcl_err rv;
        if (coalesce_locked(b, topic, tl, data, len, &rv)) {
            finish_locked(b, info);
            return rv;
        }
    } else if (b->batching) {
        if (MCL__WIRE_HDR + rec <= b->batch_cap) {
            // Packed behind the records already waiting; a full datagram goes out first. If
            // that send fails, its records are counted in `errors`; this message is queued
            // all the same, so the call succeeds. A PUBFILTER datagram holds one topic.
            if (b->batch_len + rec > b->batch_cap || b->batch_n == UINT16_MAX ||
                (pubfilter && b->batch_n > 0 &&
                 (tl != b->batch_tl || memcmp(topic, b->batch_topic, tl) != 0)))
                (void)batch_flush_locked(b);
            mcl_err rv = batch_add_locked(b, topic, tl, data, len, true);
            if (rv != MCL_OK)
                rv = count_result(b, rv, len);
            finish_locked(b, info);
            return rv;
        }
        // Keep the order: what waits goes before this one (a failure is counted for those
        // records; this message is still sent and reports its own result).
        (void)batch_flush_locked(b);
    }
    uint64_t seq = b->seq++;
    unsigned sent;
    mcl_err rv = zipped ? send_unbatched_locked(b, b->id, seq, topic, tl, b->zbuf, zlen,
                                                MCL__WIRE_F_ZIP, &sent)
                        : send_unbatched_locked(b, b->id, seq, topic, tl, data, len, 0, &sent);
    if (rv != MCL_OK && sent == 0)
        b->seq--; // nothing left: no listener will see a gap
    else
        note_topic_locked(b, topic, tl);
    if (zipped)
        compressed_sent_locked(b, rv == MCL_OK, len, zlen);
    rv = count_result(b, rv, len);
    finish_locked(b, info);
    return rv;
}

mcl_err
mcl_raw_broadcaster_forward(mcl_raw_broadcaster *b, const mcl_raw_msg *m)
{
    if (b == NULL || m == NULL || (m->payload == NULL && m->len > 0) || m->topic == NULL)
        return MCL_EINVAL;
    if (!atomic_load_explicit(&b->open, memory_order_acquire))
        return MCL_ECLOSED;
    size_t tl = strnlen(m->topic, MCL_TOPIC_MAX + 1);
    if (tl > MCL_TOPIC_MAX)
        return mcl__fail(MCL_EINVAL, NULL, 0, "broadcaster", "topic longer than %d bytes",
                         MCL_TOPIC_MAX);
    if (m->len > b->conn.maxmsg)
        return mcl__fail(MCL_EMSGSIZE, NULL, 0, "broadcaster",
                         "%s: message of %zu bytes exceeds maxmsg=%zu", b->conn.url, m->len,
                         b->conn.maxmsg);
    pthread_mutex_lock(&b->lock);
    if (b->pace_msgs.rate > 0)
        pace_take_locked(b, &b->pace_msgs, 1);
    bool info = info_due_locked(b);
    // A datagram carries one publisher id: what waits in a batch goes first, then this alone.
    if (b->batching)
        (void)batch_flush_locked(b);
    unsigned sent;
    size_t zlen = 0;
    bool zipped = compress_locked(b, m->payload, m->len, &zlen);
    mcl_err rv = send_unbatched_locked(b, m->publisher, m->seq, m->topic, tl,
                                       zipped ? b->zbuf : m->payload, zipped ? zlen : m->len,
                                       zipped ? MCL__WIRE_F_ZIP : 0, &sent);
    if (zipped)
        compressed_sent_locked(b, rv == MCL_OK, m->len, zlen);
    rv = count_result(b, rv, m->len);
    finish_locked(b, info);
    return rv;
}

mcl_err
mcl_raw_broadcaster_close(mcl_raw_broadcaster *b)
{
    if (b == NULL)
        return MCL_EINVAL;
    if (!atomic_load(&b->open))
        return MCL_ECLOSED;
    if (mcl__inherited(b->owner)) {
        // A forked child closing its parent's broadcaster: nothing is sent (no goodbye, no
        // batch: the publisher is the parent's), no thread joined; the transport only forgets
        // this process's copy, where it can (tx_forget).
        atomic_store(&b->open, false);
        b->hb_on = b->has_flusher = false;
        if (b->ops->tx_forget != NULL)
            b->ops->tx_forget(b->tx);
        b->tx = NULL;
        return MCL_OK;
    }
    mcl_err rv = MCL_OK;
    if (b->hb_on) { // no more periodic ones; the last says the publisher is leaving
        mcl__hb_remove(b);
        b->hb_on = false;
    }
    if (b->batching) { // what waits is sent before the socket closes
        if (b->has_flusher)
            stop_flusher(b);
        pthread_mutex_lock(&b->lock);
        mcl_err fr = batch_flush_locked(b);
        if (b->batch_n > 0) // (kept by a full lossless queue: nobody will send it now)
            batch_drop_locked(b, fr);
        rv = take_batch_err_locked(b);
        unlock_and_log(b);
    }
    if (b->conn.heartbeat_ms > 0)
        mcl__bcast_heartbeat(b, true);
    atomic_store(&b->open, false);
    b->ops->tx_close(b->tx);
    b->tx = NULL;
    return rv;
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
    if (atomic_load(&b->open))
        mcl_raw_broadcaster_close(b);
    if (b->has_flusher) // a failed open that got as far as the thread
        stop_flusher(b);
    if (b->cv_init && !mcl__inherited(b->owner)) // (the parent's waiting batcher counts in it)
        pthread_cond_destroy(&b->cv);
    if (b->lock_init)
        pthread_mutex_destroy(&b->lock);
    mcl__free(b->batch);
    if (b->tx != NULL) // a failed open
        b->ops->tx_close(b->tx);
    if (b->hb_on) // a failed open after the registration
        mcl__hb_remove(b);
    mcl__tseq_free(b->tseq);
    for (size_t i = 0; i < b->ntopics; i++)
        mcl__free(b->topics[i].name);
    mcl__free(b->topics);
    mcl__free(b->topic);
    mcl__free(b->seal);
    mcl__zctx_free(b->zctx);
    mcl__free(b->zbuf);
    mcl__gkeys_wipe(&b->conn.keys);
    mcl__free(b);
}

uint64_t
mcl__bcast_paced_waits(const mcl_raw_broadcaster *b)
{
    return atomic_load_explicit(&b->n_paced, memory_order_relaxed);
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
    int64_t subs = atomic_load_explicit(&b->subscribers, memory_order_relaxed);
    st->subscribers = subs > 0 ? (uint64_t)subs : 0;
    st->auth_failures = atomic_load_explicit(&b->auth_failures, memory_order_relaxed);
    st->heartbeats = atomic_load_explicit(&b->n_heartbeats, memory_order_relaxed);
    st->peers_dropped = atomic_load_explicit(&b->peers_dropped, memory_order_relaxed);
    st->compressed = atomic_load_explicit(&b->n_zmsgs, memory_order_relaxed);
    st->compressed_in = atomic_load_explicit(&b->n_zbefore, memory_order_relaxed);
    st->compressed_out = atomic_load_explicit(&b->n_zafter, memory_order_relaxed);
    return MCL_OK;
}

mcl_err
mcl_raw_broadcaster_wait_for_subscribers(mcl_raw_broadcaster *b, size_t count, int timeout_ms)
{
    if (b == NULL)
        return MCL_EINVAL;
    if (!atomic_load(&b->open))
        return MCL_ECLOSED;
    if (!(b->caps & MCL__TP_SUBCOUNT)) { // an answer, not a fault: tools ask to find out
        mcl__log(MCL_LOG_DEBUG, "broadcaster",
                 "%s: %s has no subscriptions to wait for (listeners are not counted)",
                 b->conn.url, b->conn.tp->scheme);
        return MCL_ENOTSUP;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mcl__mono_ns() + (int64_t)timeout_ms * 1000000;
    uint64_t since = atomic_load(&b->auth_reported);
    for (int slice = 0;;) {
        refresh_info(b, slice); // the transport's own lock, not the publishers'
        int64_t n = atomic_load(&b->subscribers);
        uint64_t af_total = atomic_load(&b->auth_failures);
        if (n >= 0 && (uint64_t)n >= count)
            return MCL_OK;
        int64_t left = deadline - mcl__mono_ns();
        if (left <= 0) {
            // Failures since open or since the previous wait that ended without its
            // subscribers (each is reported once).
            atomic_store(&b->auth_reported, af_total);
            uint64_t af = af_total - since;
            if (af > 0) {
                // The transport logged each failing peer once, as it failed; a caller that
                // waits in short slices would otherwise get a warning every slice.
                mcl__log(MCL_LOG_DEBUG, "broadcaster",
                         "%s: %lld of %zu subscribers after %d ms; %llu handshakes failed "
                         "(wrong or missing CURVE key?)",
                         b->conn.url, (long long)n, count, timeout_ms, (unsigned long long)af);
                return MCL_EAUTH;
            }
            return MCL_ETIMEDOUT;
        }
        // Short slices: publishers need the transport's lock too.
        slice = left > 20000000 ? 20 : (int)((left + 999999) / 1000000);
    }
}
