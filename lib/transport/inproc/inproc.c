// SPDX-License-Identifier: BSD-3-Clause
// The inproc:// transport: broadcasters and listeners of one process that name the same group
// exchange datagrams through memory, with no socket and no library. Every listener has a
// bounded queue and an eventfd (readable while it has something to read); a send copies the
// datagram once and queues a reference to it for every listener. Faults come from the
// listener's URL and are drawn from a seeded generator per listener, the same numbers for
// every datagram whatever happens, so a test that sends from one thread sees the same losses
// and copies on every run, and the same reordering when it reads after sending (a reader that
// finds its queue empty releases what is held back early):
//
//   drop=P     each datagram is lost on the way to this listener with probability P
//   dup=P      each datagram that arrives arrives twice with probability P
//   reorder=P  with probability P a datagram is held back behind 1..depth later ones (it is
//              released early when the listener finds nothing else to read)
//   depth=N    most datagrams held back at once (1..64, default 4)
//   seed=S     the generator's seed (default 1)
//   queue=SIZE the listener's queue in bytes (default 64M; at most 65,536 datagrams); what does
//              not fit is dropped and counted in the listener's kernel_drops, as a full socket
//              buffer would be
//
// The layers above cannot tell it from a network: it is the fake network they are tested on.
#define _GNU_SOURCE
#include "inproc_int.h"

#include "../../core/internal.h"
#include "../../core/url.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_DEPTH = 64,
    DEF_DEPTH = 4,
    BATCH = 16,              // datagrams a read takes at most
    QSLOTS_MIN = 64,         // queue slots (pointers) at first; doubled as needed up to
    QSLOTS_MAX = 1 << 16,    // this many datagrams
};
#define NAME_MAX_ MCL__INPROC_NAME_MAX
#define DEF_QUEUE ((size_t)64 << 20)
#define DEF_SEED 1u

static inproc_opts *
opts(struct mcl_connection *c)
{
    return (inproc_opts *)mcl__tport_opts(c);
}

static const inproc_opts *
copts(const struct mcl_connection *c)
{
    return (const inproc_opts *)mcl__tport_copts(c);
}

// --- the grammar -------------------------------------------------------------------------------

static void
inproc_defaults(struct mcl_connection *c)
{
    inproc_opts *o = opts(c);
    o->depth = DEF_DEPTH;
    o->seed = DEF_SEED;
    o->queue = DEF_QUEUE;
    o->pipeq = MCL__INPROC_DEF_PIPEQ;
}

static mcl_err
inproc_parse_addr(struct mcl_connection *c, const char *url, const char *rest, const char **qp,
                  char *errbuf, size_t errlen)
{
    inproc_opts *o = opts(c);
    const char *q = strchr(rest, '?');
    size_t n = q ? (size_t)(q - rest) : strlen(rest);
    *qp = rest + n;
    if (n == 0)
        return MCL__URL_FAIL("%s: missing group name (inproc://NAME)", url);
    if (n >= NAME_MAX_)
        return MCL__URL_FAIL("%s: group name longer than %d bytes", url, NAME_MAX_ - 1);
    for (size_t i = 0; i < n; i++) {
        char ch = rest[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("._-/", ch) != NULL;
        if (!ok)
            return MCL__URL_FAIL("%s: '%c' in the group name (letters, digits and ._-/ only)",
                                 url, ch);
    }
    memcpy(o->name, rest, n);
    o->name[n] = '\0';
    c->port = 0;
    return MCL_OK;
}

static mcl_err
inproc_parse_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
                    const char *val, size_t vlen, char *errbuf, size_t errlen)
{
    inproc_opts *o = opts(c);
    uint64_t v;
    if (MCL__KEY_IS("drop") || MCL__KEY_IS("dup") || MCL__KEY_IS("reorder")) {
        uint32_t *dst = MCL__KEY_IS("drop") ? &o->drop : MCL__KEY_IS("dup") ? &o->dup : &o->reorder;
        if (!mcl__url_ppm(val, vlen, dst))
            return MCL__URL_FAIL("%s: %.*s '%.*s' is not a probability 0..1 (at most six "
                                 "decimals, e.g. 0.05)",
                                 url, (int)klen, key, (int)vlen, val);
    } else if (MCL__KEY_IS("depth")) {
        if (!mcl__url_uint(val, vlen, MAX_DEPTH, &v) || v == 0)
            return MCL__URL_FAIL("%s: depth '%.*s' is not a number of datagrams 1..%d", url,
                                 (int)vlen, val, MAX_DEPTH);
        o->depth = (unsigned)v;
    } else if (MCL__KEY_IS("seed")) {
        if (!mcl__url_uint(val, vlen, UINT64_MAX, &v))
            return MCL__URL_FAIL("%s: seed '%.*s' is not an unsigned integer", url, (int)vlen,
                                 val);
        o->seed = v;
    } else if (MCL__KEY_IS("queue") || MCL__KEY_IS("pipeq")) {
        if (!mcl__url_size(val, vlen, (uint64_t)1 << 40, &v) || v < 65536)
            return MCL__URL_FAIL("%s: %.*s '%.*s' is not a size of at least 64k", url, (int)klen,
                                 key, (int)vlen, val);
        if (key[0] == 'q')
            o->queue = (size_t)v;
        else
            o->pipeq = (size_t)v;
    } else { // stall, cut
        if (!mcl__url_uint(val, vlen, UINT64_MAX, &v) || v == 0)
            return MCL__URL_FAIL("%s: %.*s '%.*s' is not a number of packets (1 or more)", url,
                                 (int)klen, key, (int)vlen, val);
        if (key[0] == 's')
            o->stall = v;
        else
            o->cut = v;
    }
    return MCL_OK;
}

static void
inproc_canon(struct mcl_connection *c)
{
    const inproc_opts *o = opts(c);
    mcl__canon k;
    mcl__canon_start(&k, c->url, sizeof(c->url));
    mcl__canon_text(&k, "inproc://%s", o->name);
    if (o->drop != 0)
        mcl__canon_ppm(&k, "drop", o->drop);
    if (o->dup != 0)
        mcl__canon_ppm(&k, "dup", o->dup);
    if (o->reorder != 0)
        mcl__canon_ppm(&k, "reorder", o->reorder);
    if (o->depth != DEF_DEPTH)
        mcl__canon_opt(&k, "depth=%u", o->depth);
    if (o->seed != DEF_SEED)
        mcl__canon_opt(&k, "seed=%llu", (unsigned long long)o->seed);
    if (o->queue != DEF_QUEUE)
        mcl__canon_size(&k, "queue", o->queue);
    if (o->pipeq != MCL__INPROC_DEF_PIPEQ)
        mcl__canon_size(&k, "pipeq", o->pipeq);
    if (o->stall != 0)
        mcl__canon_opt(&k, "stall=%llu", (unsigned long long)o->stall);
    if (o->cut != 0)
        mcl__canon_opt(&k, "cut=%llu", (unsigned long long)o->cut);
    if (c->maxmsg != MCL__DEF_MAXMSG)
        mcl__canon_size(&k, "maxmsg", c->maxmsg);
    if (c->dgram != MCL__DEF_DGRAM)
        mcl__canon_size(&k, "dgram", c->dgram);
    if (c->expire_ms != MCL__DEF_EXPIRE_MS)
        mcl__canon_opt(&k, "expire=%u", (unsigned)c->expire_ms);
    if (c->partmem != MCL__DEF_PARTMEM)
        mcl__canon_size(&k, "partmem", c->partmem);
    if (c->batch_us != 0)
        mcl__canon_opt(&k, "batch=%u", (unsigned)c->batch_us);
    mcl__canon_bcast_opts(&k, c);
}

// --- groups ------------------------------------------------------------------------------------

// One datagram, shared by the queues it is in (and the reads that handed it out).
typedef struct pkt {
    atomic_uint refs;
    size_t len;
    int64_t real_ns, mono_ns; // when it was sent
    uint8_t data[];
} pkt;

struct mcl__rxs;

typedef struct group {
    struct group *next; // in `groups`, under groups_lock
    unsigned refs;      // handles on it, under groups_lock
    // `lock` guards the listener list and every listener's queue and fault state; a send
    // holds it while it queues a datagram for every listener, so each listener sees one
    // sender's datagrams in the order they were sent.
    pthread_mutex_t lock;
    pthread_cond_t changed; // a listener joined or left (CLOCK_MONOTONIC)
    struct mcl__rxs *rxs;
    size_t nrx;
    char name[NAME_MAX_];
} group;

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static group *groups;

static mcl_err
group_get(const char *name, group **gp)
{
    pthread_mutex_lock(&groups_lock);
    group *g = groups;
    while (g != NULL && strcmp(g->name, name) != 0)
        g = g->next;
    if (g == NULL) {
        g = mcl__zalloc(sizeof(*g));
        if (g == NULL) {
            pthread_mutex_unlock(&groups_lock);
            return MCL_ENOMEM;
        }
        pthread_condattr_t ca;
        bool cv = false, mx = pthread_mutex_init(&g->lock, NULL) == 0;
        if (mx && pthread_condattr_init(&ca) == 0) {
            cv = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&g->changed, &ca) == 0;
            pthread_condattr_destroy(&ca);
        }
        if (!cv) {
            pthread_mutex_unlock(&groups_lock);
            if (mx)
                pthread_mutex_destroy(&g->lock);
            mcl__free(g);
            return MCL_ESYS;
        }
        snprintf(g->name, sizeof(g->name), "%s", name);
        g->next = groups;
        groups = g;
    }
    g->refs++;
    pthread_mutex_unlock(&groups_lock);
    *gp = g;
    return MCL_OK;
}

static void
group_put(group *g)
{
    if (g == NULL)
        return;
    pthread_mutex_lock(&groups_lock);
    if (--g->refs > 0) {
        pthread_mutex_unlock(&groups_lock);
        return;
    }
    for (group **pp = &groups; *pp != NULL; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    pthread_mutex_unlock(&groups_lock);
    pthread_cond_destroy(&g->changed);
    pthread_mutex_destroy(&g->lock);
    mcl__free(g);
}

static void
pkt_unref(pkt *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
        mcl__free(p);
}

// --- listeners ---------------------------------------------------------------------------------

struct mcl__rxs {
    group *g;
    struct mcl__rxs *next; // in g->rxs
    int efd;
    // Under g->lock:
    pkt **q; // ring of qcap slots (a power of two)
    size_t qcap, qhead, qn, qbytes, qmax;
    uint64_t overflow; // datagrams dropped for a full queue
    bool signalled;    // efd holds a wake-up not yet read
    uint32_t drop, dup, reorder;
    unsigned depth;
    uint64_t rng;
    struct {
        pkt *p;
        unsigned left; // datagrams still to pass it
    } held[MAX_DEPTH];
    unsigned nheld;
    // The reader's own: what the last read handed out.
    pkt *out[BATCH];
    unsigned nout;
};

static uint64_t
next_rand(mcl__rxs *rx)
{
    // xorshift64*: small, fast, and the same sequence everywhere for a seed.
    uint64_t x = rx->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rx->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

// Whether a draw r of the generator falls under ppm parts per million.
static bool
chance(uint64_t r, uint32_t ppm)
{
    return ppm >= 1000000 || r % 1000000 < ppm;
}

// Makes efd readable (once until the reader resets it). Called with g->lock held.
static void
signal_locked(mcl__rxs *rx)
{
    if (rx->signalled)
        return;
    uint64_t one = 1;
    ssize_t w = write(rx->efd, &one, sizeof(one));
    (void)w; // an eventfd write of 1 cannot fail while the counter is small
    rx->signalled = true;
}

static bool
grow_locked(mcl__rxs *rx)
{
    if (rx->qcap >= QSLOTS_MAX)
        return false;
    size_t ncap = rx->qcap ? rx->qcap * 2 : QSLOTS_MIN;
    pkt **nq = mcl__alloc(ncap * sizeof(*nq));
    if (nq == NULL)
        return false;
    for (size_t i = 0; i < rx->qn; i++)
        nq[i] = rx->q[(rx->qhead + i) & (rx->qcap - 1)];
    mcl__free(rx->q);
    rx->q = nq;
    rx->qcap = ncap;
    rx->qhead = 0;
    return true;
}

// Queues p (a reference of its own), or counts it as dropped for a full queue.
static void
enqueue_locked(mcl__rxs *rx, pkt *p)
{
    if (rx->qbytes + p->len > rx->qmax || (rx->qn == rx->qcap && !grow_locked(rx))) {
        rx->overflow++;
        return;
    }
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    rx->q[(rx->qhead + rx->qn) & (rx->qcap - 1)] = p;
    rx->qn++;
    rx->qbytes += p->len;
    signal_locked(rx);
}

// Queues p, or holds it back (reorder=); releases the held datagrams that p passes. Every
// staging draws the same two numbers whatever is held now, so what the generator decides for
// a datagram depends only on its place in the stream, never on when the reader reads.
static void
stage_locked(mcl__rxs *rx, pkt *p)
{
    uint64_t r_hold = next_rand(rx), r_dist = next_rand(rx);
    pkt *ready[MAX_DEPTH];
    unsigned nready = 0, keep = 0;
    for (unsigned i = 0; i < rx->nheld; i++) {
        if (--rx->held[i].left == 0)
            ready[nready++] = rx->held[i].p;
        else
            rx->held[keep++] = rx->held[i];
    }
    rx->nheld = keep;
    if (rx->nheld < rx->depth && chance(r_hold, rx->reorder)) {
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
        rx->held[rx->nheld].p = p;
        rx->held[rx->nheld].left = 1 + (unsigned)(r_dist % rx->depth);
        rx->nheld++;
        signal_locked(rx); // the reader releases it early if nothing else comes
    } else {
        enqueue_locked(rx, p);
    }
    for (unsigned i = 0; i < nready; i++) {
        enqueue_locked(rx, ready[i]);
        pkt_unref(ready[i]);
    }
}

static void
deliver_locked(mcl__rxs *rx, pkt *p)
{
    uint64_t r_drop = next_rand(rx), r_dup = next_rand(rx);
    if (chance(r_drop, rx->drop))
        return;
    stage_locked(rx, p);
    if (chance(r_dup, rx->dup))
        stage_locked(rx, p);
}

static void
release_held_locked(mcl__rxs *rx)
{
    for (unsigned i = 0; i < rx->nheld; i++) {
        enqueue_locked(rx, rx->held[i].p);
        pkt_unref(rx->held[i].p);
    }
    rx->nheld = 0;
}

static void
release_out(mcl__rxs *rx)
{
    for (unsigned i = 0; i < rx->nout; i++)
        pkt_unref(rx->out[i]);
    rx->nout = 0;
}

static void inproc_rx_close(mcl__rxs *rx);

static mcl_err
inproc_rx_open(mcl__rxs **rxp, const struct mcl_connection *c, const char *const *topics,
               size_t ntopics, int adopt_fd, mcl__rx_opened *out)
{
    (void)topics; // every datagram of the group is queued; the receive engine filters
    (void)ntopics;
    *rxp = NULL;
    if (adopt_fd >= 0)
        return MCL_EINVAL;
    const inproc_opts *o = copts(c);
    mcl__rxs *rx = mcl__zalloc(sizeof(*rx));
    if (rx == NULL)
        return MCL_ENOMEM;
    rx->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rx->efd < 0) {
        int e = errno;
        mcl__free(rx);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "inproc", "%s: eventfd: %s", c->url,
                         strerror(e));
    }
    rx->qmax = o->queue;
    rx->drop = o->drop;
    rx->dup = o->dup;
    rx->reorder = o->reorder;
    rx->depth = o->depth;
    // splitmix64 of the seed: a state that is never 0, and seeds 1 and 2 far apart.
    uint64_t z = o->seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    rx->rng = (z ^ (z >> 31)) | 1;
    mcl_err rv = group_get(o->name, &rx->g);
    if (rv != MCL_OK) {
        inproc_rx_close(rx);
        return rv;
    }
    pthread_mutex_lock(&rx->g->lock);
    rx->next = rx->g->rxs;
    rx->g->rxs = rx;
    rx->g->nrx++;
    pthread_cond_broadcast(&rx->g->changed);
    pthread_mutex_unlock(&rx->g->lock);
    out->rcvbuf = rx->qmax;
    *rxp = rx;
    return MCL_OK;
}

static mcl_err
inproc_rx_read(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *n, uint64_t *kernel_drops)
{
    release_out(rx);
    if (max > BATCH)
        max = BATCH;
    pthread_mutex_lock(&rx->g->lock);
    if (rx->qn == 0 && rx->nheld > 0)
        release_held_locked(rx); // nothing else to read: what was held back comes now
    unsigned k = 0;
    for (; k < max && rx->qn > 0; k++) {
        pkt *p = rx->q[rx->qhead];
        rx->qhead = (rx->qhead + 1) & (rx->qcap - 1);
        rx->qn--;
        rx->qbytes -= p->len;
        rx->out[k] = p;
    }
    rx->nout = k;
    if (rx->qn == 0 && rx->nheld == 0 && rx->signalled) {
        uint64_t v;
        ssize_t r = read(rx->efd, &v, sizeof(v));
        (void)r;
        rx->signalled = false;
    }
    *kernel_drops = rx->overflow;
    pthread_mutex_unlock(&rx->g->lock);
    for (unsigned i = 0; i < k; i++) {
        const pkt *p = rx->out[i];
        out[i] = (mcl__dgram){.data = p->data,
                              .len = p->len,
                              .meta = {.real_ns = p->real_ns, .mono_ns = p->mono_ns}};
    }
    *n = k;
    return k > 0 ? MCL_OK : MCL_EAGAIN;
}

static int
inproc_rx_fd(const mcl__rxs *rx)
{
    return rx->efd;
}

static void
inproc_rx_close(mcl__rxs *rx)
{
    if (rx == NULL)
        return;
    if (rx->g != NULL) {
        pthread_mutex_lock(&rx->g->lock);
        for (mcl__rxs **pp = &rx->g->rxs; *pp != NULL; pp = &(*pp)->next)
            if (*pp == rx) {
                *pp = rx->next;
                rx->g->nrx--;
                pthread_cond_broadcast(&rx->g->changed);
                break;
            }
        pthread_mutex_unlock(&rx->g->lock);
        group_put(rx->g);
    }
    for (size_t i = 0; i < rx->qn; i++) // no sender can reach it now
        pkt_unref(rx->q[(rx->qhead + i) & (rx->qcap - 1)]);
    for (unsigned i = 0; i < rx->nheld; i++)
        pkt_unref(rx->held[i].p);
    release_out(rx);
    mcl__free(rx->q);
    if (rx->efd >= 0)
        close(rx->efd);
    mcl__free(rx);
}

// --- broadcasters ------------------------------------------------------------------------------

struct mcl__tx {
    group *g;
};

static mcl_err
inproc_tx_open(mcl__tx **txp, const struct mcl_connection *c, mcl__tx_limits *lim)
{
    *txp = NULL;
    mcl__tx *tx = mcl__zalloc(sizeof(*tx));
    if (tx == NULL)
        return MCL_ENOMEM;
    mcl_err rv = group_get(copts(c)->name, &tx->g);
    if (rv != MCL_OK) {
        mcl__free(tx);
        return rv;
    }
    lim->batch_max = c->dgram;
    *txp = tx;
    return MCL_OK;
}

static mcl_err
inproc_tx_send(mcl__tx *tx, const mcl__frame *f, unsigned nf, unsigned *sent, char *why,
               size_t whylen)
{
    group *g = tx->g;
    *sent = 0;
    int64_t mono = mcl__mono_ns(), real = mcl__real_ns();
    pthread_mutex_lock(&g->lock);
    if (g->nrx == 0) { // nobody listens: gone, as on a network
        pthread_mutex_unlock(&g->lock);
        *sent = nf;
        return MCL_OK;
    }
    for (unsigned i = 0; i < nf; i++) {
        size_t len = 0;
        for (unsigned k = 0; k < f[i].niov; k++)
            len += f[i].iov[k].iov_len;
        pkt *p = mcl__alloc(sizeof(*p) + len);
        if (p == NULL) {
            pthread_mutex_unlock(&g->lock);
            snprintf(why, whylen, "out of memory for a datagram of %zu bytes", len);
            return MCL_ENOMEM;
        }
        atomic_init(&p->refs, 1); // ours until every listener has its own
        p->len = len;
        p->real_ns = real;
        p->mono_ns = mono;
        size_t off = 0;
        for (unsigned k = 0; k < f[i].niov; k++) {
            if (f[i].iov[k].iov_len > 0)
                memcpy(p->data + off, f[i].iov[k].iov_base, f[i].iov[k].iov_len);
            off += f[i].iov[k].iov_len;
        }
        for (mcl__rxs *rx = g->rxs; rx != NULL; rx = rx->next)
            deliver_locked(rx, p);
        pkt_unref(p);
        ++*sent;
    }
    pthread_mutex_unlock(&g->lock);
    return MCL_OK;
}

// The count is exact at once; with wait_ms, waits that long for a listener to join or leave.
static void
inproc_tx_info(mcl__tx *tx, int wait_ms, mcl__tx_info *out)
{
    group *g = tx->g;
    pthread_mutex_lock(&g->lock);
    if (wait_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t due = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)wait_ms * 1000000;
        ts.tv_sec = (time_t)(due / 1000000000);
        ts.tv_nsec = (long)(due % 1000000000);
        size_t before = g->nrx;
        while (g->nrx == before && pthread_cond_timedwait(&g->changed, &g->lock, &ts) == 0)
            ;
    }
    out->subscribers = (int64_t)g->nrx;
    pthread_mutex_unlock(&g->lock);
    out->auth_failures = 0;
}

static void
inproc_tx_close(mcl__tx *tx)
{
    if (tx == NULL)
        return;
    group_put(tx->g);
    mcl__free(tx);
}

static const mcl__bcast_ops inproc_bcast_ops = {
    .tx_open = inproc_tx_open,
    .tx_send = inproc_tx_send,
    .tx_info = inproc_tx_info,
    .tx_close = inproc_tx_close,
    .rx_open = inproc_rx_open,
    .rx_read = inproc_rx_read,
    .rx_fd = inproc_rx_fd,
    .rx_close = inproc_rx_close,
};

static const char *const inproc_keys[] = {"drop", "dup",   "reorder", "depth", "seed",
                                          "queue", "pipeq", "stall",   "cut",   NULL};

const mcl__tport mcl__inproc_tport = {
    .scheme = "inproc",
    .family = "inproc://",
    .example = "inproc://example",
    .caps = MCL__TP_FRAGMENT | MCL__TP_SUBCOUNT,
    .opts_size = sizeof(inproc_opts),
    .keys = inproc_keys,
    .known = "known: drop, dup, reorder, depth, seed, queue, pipeq, stall, cut, maxmsg, dgram, "
             "expire, partmem, batch, rate, msgrate, heartbeat, silent, key, encrypt, skew",
    .defaults = inproc_defaults,
    .parse_addr = inproc_parse_addr,
    .parse_option = inproc_parse_option,
    .canon = inproc_canon,
    .bcast = &inproc_bcast_ops,
    .pipe = &mcl__inproc_pipe_ops,
};
