// SPDX-License-Identifier: BSD-3-Clause
// Streams (docs/streams.md): the peer (mcl_stream) and the data side (streamers, kept by a
// server), on one packet-stream channel.
//
// Threads. Everything that arrives (messages, OPEN and LIST requests) and every timer runs on
// the reactor that drives the packet stream. A "mux" is the one message handler of a (stream,
// channel): it dispatches to the peers and to the server binding on that connection. Muxes,
// peers and bindings are added and removed on the reactor thread (mcl_reactor_call()), so
// dispatch never meets a half-removed object. A peer's state is shared with the user's
// threads under its lock; a streamer's is touched by the reactor thread only.
//
// Sends happen under the peer's lock (the packet stream takes its own lock inside, and never
// calls back with it held), so a peer's messages leave in the order it decided them.
#define _GNU_SOURCE
#include "stream_int.h"

#include "../core/internal.h"
#include "../core/u64map.h"
#include "../pstream/pstream_int.h"
#include "swire.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_HEARTBEAT_MS 250
#define DEFAULT_WINDOW_BYTES (4u << 20)
#define DEFAULT_WINDOW_ELEMS 4096u
#define DEFAULT_PUSHES 16u
#define DEFAULT_PUSH (256u << 10)
#define PUMP_BURST 64 // pushes per turn of the reactor, then the others get a turn
#define PBUF_POOL 4   // push buffers a peer keeps for reuse

typedef struct mux mux;
typedef struct binding binding;
typedef struct streamer streamer;

// --- faults (tests) ------------------------------------------------------------------------------

typedef struct faulter {
    mcl__stream_faults f;
    uint64_t rng;
    uint8_t held[64]; // a credit message held back, sent after the next
    size_t held_len;
    int held_type;
    uint32_t held_sid;
} faulter;

static unsigned
roll(faulter *fz)
{
    uint64_t x = fz->rng; // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    fz->rng = x;
    return (unsigned)((x * 0x2545F4914F6CDD1DULL) >> 33) % 100;
}

static void
faults_set(faulter *fz, const mcl__stream_faults *f)
{
    memset(fz, 0, sizeof(*fz));
    if (f == NULL)
        return;
    fz->f = *f;
    uint64_t z = f->seed + 0x9E3779B97F4A7C15ULL; // splitmix64: never 0
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    fz->rng = (z ^ (z >> 31)) | 1;
}

static bool
faults_on(const faulter *fz)
{
    return fz->f.drop || fz->f.dup || fz->f.reorder;
}

// Sends a credit message through the faults: dropped, duplicated, or held back until the next.
static void
send_credit(mcl_pstream *ps, uint32_t channel, faulter *fz, int type, const uint8_t *m,
            size_t len)
{
    if (!faults_on(fz)) {
        (void)mcl__pstream_send2(ps, channel, (uint32_t)type, 0, m, len, NULL, 0);
        return;
    }
    unsigned r = roll(fz);
    if (r < fz->f.drop)
        return;
    r -= fz->f.drop;
    if (r < fz->f.dup) {
        (void)mcl__pstream_send2(ps, channel, (uint32_t)type, 0, m, len, NULL, 0);
        (void)mcl__pstream_send2(ps, channel, (uint32_t)type, 0, m, len, NULL, 0);
        return;
    }
    r -= fz->f.dup;
    if (r < fz->f.reorder && fz->held_len == 0 && len <= sizeof(fz->held)) {
        memcpy(fz->held, m, len);
        fz->held_len = len;
        fz->held_type = type;
        return;
    }
    (void)mcl__pstream_send2(ps, channel, (uint32_t)type, 0, m, len, NULL, 0);
    if (fz->held_len) {
        (void)mcl__pstream_send2(ps, channel, (uint32_t)fz->held_type, 0, fz->held, fz->held_len,
                                 NULL, 0);
        fz->held_len = 0;
    }
}

static void
faults_flush(mcl_pstream *ps, uint32_t channel, faulter *fz)
{
    if (fz->held_len) {
        (void)mcl__pstream_send2(ps, channel, (uint32_t)fz->held_type, 0, fz->held, fz->held_len,
                                 NULL, 0);
        fz->held_len = 0;
    }
}

// --- muxes ---------------------------------------------------------------------------------------

struct mux {
    mux *next;
    mcl_pstream *ps;
    uint32_t channel;
    mcl_reactor *r;
    mcl__u64map peers; // sid -> mcl_stream (reactor thread only)
    binding *srv;      // the streamer side on this connection, or NULL
    uint32_t next_sid;
    unsigned users; // peers registered + the binding
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static mux *g_muxes;

static void on_message(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                       const void *payload, size_t len, void *user);

// The mux of (ps, channel), made if needed. On the reactor thread.
static mcl_err
mux_get(mcl_pstream *ps, uint32_t channel, mcl_reactor *r, mux **out)
{
    pthread_mutex_lock(&g_lock);
    mux *m = g_muxes;
    while (m != NULL && !(m->ps == ps && m->channel == channel))
        m = m->next;
    mcl_err rv = MCL_OK;
    if (m == NULL) {
        m = mcl__zalloc(sizeof(*m));
        if (m == NULL) {
            rv = MCL_ENOMEM;
        } else {
            m->ps = ps;
            m->channel = channel;
            m->r = r;
            mcl__u64map_init(&m->peers);
            if ((rv = mcl_pstream_handle_messages(ps, channel, on_message, m)) != MCL_OK) {
                mcl__free(m);
                m = NULL;
            } else {
                m->next = g_muxes;
                g_muxes = m;
            }
        }
    } else if (m->r != r) {
        rv = MCL_EINVAL; // one connection, one driving reactor
    }
    pthread_mutex_unlock(&g_lock);
    *out = rv == MCL_OK ? m : NULL;
    return rv;
}

// Drops a user of m; the last one removes it. On the reactor thread.
static void
mux_put(mux *m)
{
    if (--m->users > 0)
        return;
    pthread_mutex_lock(&g_lock);
    for (mux **pp = &g_muxes; *pp != NULL; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    pthread_mutex_unlock(&g_lock);
    (void)mcl_pstream_handle_messages(m->ps, m->channel, NULL, NULL);
    mcl__u64map_fini(&m->peers);
    mcl__free(m);
}

// --- the peer ------------------------------------------------------------------------------------

enum { ST_OPENING, ST_OPEN, ST_CLOSING, ST_CLOSED, ST_FAILED };
enum { DIR_NONE, DIR_READ, DIR_WRITE };

typedef struct pbuf {
    struct pbuf *next;
    uint32_t n, i; // units, units read
    size_t cap;    // bytes of data it holds at most (pooled buffers are reused)
    size_t len;
    size_t off; // bytes: read offset; entities: offset of element i
    uint8_t data[];
} pbuf;

struct mcl_stream {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    mux *mx;
    mcl_pstream *ps;
    mcl_reactor *r;
    uint32_t channel, sid;
    bool own; // mcl_stream_open(): the connection and the reactor are the stream's
    int state;
    bool registered;
    mcl_stream_options o;
    mcl_stream_kind kind;
    unsigned mode;
    char *info;
    uint64_t window;
    uint32_t max_pushes, max_push;
    uint64_t dstart, dend;
    // Contexts.
    uint32_t next_ctx, ctx;
    int dir;
    bool pos_known;
    uint64_t cstart;
    mcl_err ctx_err; // MCL_OK, MCL_ERANGE (invalid position) or MCL_ESTATE (general)
    char err[256];
    bool seek_pending;
    int sk_whence;
    int64_t sk_off;
    int cx_whence; // where the current context was asked to start
    int64_t cx_off;
    mcl_stream_eos eos;
    uint64_t last_pos; // the position where the last context ended up (known)
    bool last_pos_known;
    // Reading.
    uint64_t rx_units, rx_pushes, consumed, pushes_done, ul, pl;
    uint32_t lseq;
    bool eos_seen, rx_since_tick;
    pbuf *head, *tail, *lent;
    pbuf *pool; // push buffers kept for reuse (at most PBUF_POOL): no allocation per push
    unsigned npool;
    // Writing.
    uint64_t w_sent, w_pushes, wul, wpl, wdone;
    uint32_t wlseq;
    bool wlimit_seen;
    // Observer.
    mcl_stream_observer obs;
    void *obs_user;
    unsigned obs_events;
    mcl_handle hb;
    faulter fz;
    mcl_stream_counters c;
    uint8_t *wbuf; // entity pushes being framed
    size_t wbuf_cap;
};

static int
timeout_of(const mcl_stream *s, int ms)
{
    return ms == 0 ? s->o.timeout_ms : ms;
}

static void
deadline_of(int ms, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

// Waits on the stream's condition until the deadline (ms < 0: forever). false: timed out.
static bool
wait_until(mcl_stream *s, int ms, const struct timespec *dl)
{
    if (ms < 0)
        return pthread_cond_wait(&s->cv, &s->lock) == 0 || true;
    return pthread_cond_timedwait(&s->cv, &s->lock, dl) != ETIMEDOUT;
}

// A buffer for a push of len bytes: a pooled one of about that size, or a new one. Reusing
// them matters: buffers of this size come from mmap, and a fresh one per push spends more
// time in page faults than in copying.
static pbuf *
pbuf_get(mcl_stream *s, size_t len)
{
    for (pbuf **pp = &s->pool; *pp != NULL; pp = &(*pp)->next) {
        pbuf *b = *pp;
        if (b->cap >= len && b->cap <= 2 * len + 65536) {
            *pp = b->next;
            s->npool--;
            return b;
        }
    }
    pbuf *b = mcl__alloc(sizeof(*b) + len);
    if (b != NULL)
        b->cap = len;
    return b;
}

static void
pbuf_put(mcl_stream *s, pbuf *b)
{
    if (b == NULL)
        return;
    if (s->npool >= PBUF_POOL) { // full: the smallest goes
        pbuf **small = &s->pool;
        for (pbuf **pp = &s->pool; *pp != NULL; pp = &(*pp)->next)
            if ((*pp)->cap < (*small)->cap)
                small = pp;
        if ((*small)->cap >= b->cap) {
            mcl__free(b);
            return;
        }
        pbuf *x = *small;
        *small = x->next;
        mcl__free(x);
        s->npool--;
    }
    b->next = s->pool;
    s->pool = b;
    s->npool++;
}

static void
buf_drop(mcl_stream *s)
{
    for (pbuf *b = s->head, *n; b != NULL; b = n) {
        n = b->next;
        pbuf_put(s, b);
    }
    s->head = s->tail = NULL;
    pbuf_put(s, s->lent);
    s->lent = NULL;
    s->c.buffered = s->c.buffered_bytes = 0;
}

static void
send_msg(mcl_stream *s, const mcl__smsg *m, const void *text, size_t tlen)
{
    uint8_t hdr[64];
    size_t n = mcl__smsg_encode(m, hdr);
    (void)mcl__pstream_send2(s->ps, s->channel, (uint32_t)m->type, 0, hdr, n, text, tlen);
}

// Fails the stream (held lock): tells the streamer unless it told us.
static void
fail_locked(mcl_stream *s, bool tell, unsigned *ev, const char *fmt, ...) MCL__PRINTF(4, 5);
static void
fail_locked(mcl_stream *s, bool tell, unsigned *ev, const char *fmt, ...)
{
    if (s->state == ST_FAILED || s->state == ST_CLOSED)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    if (tell) {
        mcl__smsg m = {.type = MCL__SM_FAIL, .sid = s->sid};
        size_t tl = strlen(s->err);
        m.textlen = tl;
        send_msg(s, &m, s->err, tl);
    }
    s->state = ST_FAILED;
    buf_drop(s);
    if (ev != NULL)
        *ev |= MCL_STREAM_FAILED;
    pthread_cond_broadcast(&s->cv);
}

static void
send_limit_locked(mcl_stream *s)
{
    mcl__smsg m = {.type = MCL__SM_LIMIT,
                   .sid = s->sid,
                   .ctx = s->ctx,
                   .lseq = s->lseq,
                   .ulimit = s->ul,
                   .plimit = s->pl};
    uint8_t hdr[64];
    size_t n = mcl__smsg_encode(&m, hdr);
    send_credit(s->ps, s->channel, &s->fz, MCL__SM_LIMIT, hdr, n);
    s->c.limits_sent++;
}

// Raises the read credit when the reader has used about half of it (read-ahead), or to what
// recv() asks for (want > 0, without read-ahead).
static void
credit_locked(mcl_stream *s, uint64_t want)
{
    if (s->dir != DIR_READ || s->eos_seen || s->ctx_err != MCL_OK || s->state != ST_OPEN)
        return;
    uint64_t nul, npl = s->pushes_done + s->max_pushes;
    if (s->o.no_readahead) {
        if (want == 0 || s->consumed + want <= s->ul)
            return;
        nul = s->consumed + want;
    } else {
        nul = s->consumed + s->window;
        uint64_t su = s->window / 2 ? s->window / 2 : 1;
        uint64_t sp = s->max_pushes / 2 ? s->max_pushes / 2 : 1;
        if (nul < s->ul + su && npl < s->pl + sp)
            return;
    }
    if (nul < s->ul)
        nul = s->ul;
    if (npl < s->pl)
        npl = s->pl;
    s->ul = nul;
    s->pl = npl;
    s->lseq++;
    send_limit_locked(s);
}

// Starts a read or write context (held lock) at the pending seek, or where the last one was.
static void
start_ctx_locked(mcl_stream *s, int dir)
{
    int whence = MCL_STREAM_FROM_START;
    int64_t off = 0;
    if (s->seek_pending) {
        whence = s->sk_whence;
        off = s->sk_off;
    } else if (s->last_pos_known) {
        whence = MCL_STREAM_ABS;
        off = (int64_t)s->last_pos;
    } else if (dir == DIR_WRITE) {
        whence = MCL_STREAM_FROM_END;
    }
    s->seek_pending = false;
    s->cx_whence = whence;
    s->cx_off = off;
    buf_drop(s);
    s->ctx = ++s->next_ctx;
    s->dir = dir;
    s->pos_known = false;
    s->ctx_err = MCL_OK;
    s->err[0] = '\0';
    s->rx_units = s->rx_pushes = s->consumed = s->pushes_done = 0;
    s->eos_seen = false;
    s->lseq = 0;
    s->w_sent = s->w_pushes = s->wul = s->wpl = s->wdone = 0;
    s->wlseq = 0;
    s->wlimit_seen = false;
    s->c.contexts++;
    mcl__smsg m = {.sid = s->sid, .ctx = s->ctx, .whence = (uint8_t)whence, .offset = off};
    if (dir == DIR_READ) {
        m.type = MCL__SM_READ;
        m.eos = (uint8_t)s->eos;
        s->ul = s->o.no_readahead ? 0 : s->window;
        s->pl = s->max_pushes;
        m.ulimit = s->ul;
        m.plimit = s->pl;
    } else {
        m.type = MCL__SM_WRITE;
        s->ul = s->pl = 0;
    }
    send_msg(s, &m, NULL, 0);
}

// The position of the next unit of the current context (held lock), if known.
static bool
here_locked(const mcl_stream *s, uint64_t *pos)
{
    if (s->ctx == 0 || !s->pos_known || s->ctx_err != MCL_OK)
        return false;
    *pos = s->cstart + (s->dir == DIR_READ ? s->consumed : s->w_sent);
    return true;
}

// Starts a context of direction dir (held lock). Without a pending seek, switching direction
// goes on where this side is (the reader's position, not where the streamer's read-ahead got
// to; the writer's); before that is known, where the current context was asked to start.
static void
switch_locked(mcl_stream *s, int dir)
{
    uint64_t here;
    if (!s->seek_pending && s->ctx != 0 && s->ctx_err == MCL_OK) {
        if (here_locked(s, &here)) {
            s->last_pos = here;
            s->last_pos_known = true;
        } else {
            s->seek_pending = true;
            s->sk_whence = s->cx_whence;
            s->sk_off = s->cx_off;
        }
    }
    start_ctx_locked(s, dir);
}

static void
run_observer(mcl_stream *s, unsigned ev)
{
    pthread_mutex_lock(&s->lock);
    mcl_stream_observer cb = s->obs;
    void *u = s->obs_user;
    ev &= s->obs_events;
    pthread_mutex_unlock(&s->lock);
    if (cb != NULL && ev != 0)
        cb(s, ev, u);
}

// A message for a peer (reactor thread).
static void
peer_message(mcl_stream *s, const mcl__smsg *m)
{
    unsigned ev = 0;
    pthread_mutex_lock(&s->lock);
    if (s->state != ST_OPEN && s->state != ST_CLOSING) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    bool stale = m->ctx < s->ctx || (m->ctx == s->ctx && s->ctx_err != MCL_OK);
    switch (m->type) {
    case MCL__SM_POS:
        if (m->ctx > s->next_ctx) {
            fail_locked(s, true, &ev, "a position for context %u, never opened", m->ctx);
        } else if (!stale && m->ctx == s->ctx) {
            s->pos_known = true;
            s->cstart = m->pos;
            s->dstart = m->start;
            s->dend = m->end;
            pthread_cond_broadcast(&s->cv);
        } else {
            s->c.stale_dropped++;
        }
        break;
    case MCL__SM_CTXERR:
        if (m->ctx > s->next_ctx) {
            fail_locked(s, true, &ev, "an error for context %u, never opened", m->ctx);
        } else if (!stale && m->ctx == s->ctx) {
            s->ctx_err = m->code == MCL__SW_INVALID_POS ? MCL_ERANGE : MCL_ESTATE;
            snprintf(s->err, sizeof(s->err), "%.*s", (int)m->textlen, (const char *)m->text);
            ev |= MCL_STREAM_CTX_ERROR; // (what came before it stays readable)
            pthread_cond_broadcast(&s->cv);
        }
        break;
    case MCL__SM_PUSH:
        if (m->ctx > s->next_ctx) {
            fail_locked(s, true, &ev, "a push for context %u, never opened", m->ctx);
            break;
        }
        if (stale || s->dir != DIR_READ) {
            s->c.stale_dropped++;
            break;
        }
        if (!s->pos_known) {
            fail_locked(s, true, &ev, "a push before its context's position");
        } else if (s->eos_seen) {
            fail_locked(s, true, &ev, "a push after end-of-stream");
        } else if (m->pushno != s->rx_pushes + 1 || m->poff != s->rx_units) {
            fail_locked(s, true, &ev, "push %llu at %llu, expected push %llu at %llu",
                        (unsigned long long)m->pushno, (unsigned long long)m->poff,
                        (unsigned long long)s->rx_pushes + 1, (unsigned long long)s->rx_units);
        } else if (m->pushno > s->pl || s->rx_units + m->nunits > s->ul) {
            fail_locked(s, true, &ev, "a push beyond credit (%llu units, %llu pushes granted)",
                        (unsigned long long)s->ul, (unsigned long long)s->pl);
        } else if (m->len > s->max_push) {
            fail_locked(s, true, &ev, "a push of %zu bytes (at most %u)", m->len,
                        (unsigned)s->max_push);
        } else {
            s->rx_pushes++;
            s->rx_units += m->nunits;
            s->rx_since_tick = true;
            s->c.pushes_received++;
            s->c.units_received += m->nunits;
            if (m->flags & MCL__SW_EOS)
                s->eos_seen = true;
            bool was_empty = s->head == NULL;
            if (m->nunits > 0) {
                pbuf *b = pbuf_get(s, m->len);
                if (b == NULL) {
                    fail_locked(s, true, &ev, "out of memory for a push");
                    break;
                }
                b->next = NULL;
                b->n = m->nunits;
                b->i = 0;
                b->len = m->len;
                b->off = 0;
                memcpy(b->data, m->data, m->len);
                if (s->tail)
                    s->tail->next = b;
                else
                    s->head = b;
                s->tail = b;
                s->c.buffered += m->nunits;
                s->c.buffered_bytes += m->len;
            } else {
                s->pushes_done++; // an empty end-of-stream push
            }
            if (was_empty)
                ev |= MCL_STREAM_CAN_READ;
            pthread_cond_broadcast(&s->cv);
        }
        break;
    case MCL__SM_WLIMIT:
        s->c.limits_received++;
        if (m->ctx > s->next_ctx) {
            fail_locked(s, true, &ev, "write credit for context %u, never opened", m->ctx);
        } else if (stale || m->ctx != s->ctx || s->dir != DIR_WRITE ||
                   (s->wlimit_seen && m->lseq <= s->wlseq)) {
            s->c.stale_dropped++;
        } else if (m->ulimit < s->wul || m->plimit < s->wpl || m->done < s->wdone) {
            fail_locked(s, true, &ev, "write credit that decreases");
        } else if (m->done > s->w_sent) {
            fail_locked(s, true, &ev, "%llu units written, %llu sent",
                        (unsigned long long)m->done, (unsigned long long)s->w_sent);
        } else {
            bool none = s->wul <= s->w_sent || s->wpl <= s->w_pushes;
            s->wlimit_seen = true;
            s->wlseq = m->lseq;
            s->wul = m->ulimit;
            s->wpl = m->plimit;
            s->wdone = m->done;
            if (none && s->wul > s->w_sent && s->wpl > s->w_pushes)
                ev |= MCL_STREAM_CAN_WRITE;
            pthread_cond_broadcast(&s->cv);
        }
        break;
    case MCL__SM_CLOSED:
        if (s->state == ST_CLOSING) {
            s->state = ST_CLOSED;
            ev |= MCL_STREAM_CLOSED;
        } else {
            fail_locked(s, false, &ev, "the streamer closed the stream");
        }
        pthread_cond_broadcast(&s->cv);
        break;
    case MCL__SM_SFAIL:
        fail_locked(s, false, &ev, "the streamer failed the stream: %.*s", (int)m->textlen,
                    (const char *)m->text);
        break;
    default:
        fail_locked(s, true, &ev, "a message of type %d for the peer", m->type);
        break;
    }
    pthread_mutex_unlock(&s->lock);
    if (ev)
        run_observer(s, ev);
}

// Heartbeat: re-send the credit when nothing came for a tick; flush a held-back credit.
static void
peer_tick(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    mcl_stream *s = user;
    pthread_mutex_lock(&s->lock);
    if (s->state == ST_OPEN) {
        faults_flush(s->ps, s->channel, &s->fz);
        if (s->dir == DIR_READ && !s->eos_seen && s->ctx_err == MCL_OK && !s->rx_since_tick &&
            s->lseq > 0)
            send_limit_locked(s);
        s->rx_since_tick = false;
    }
    bool dead = !mcl_pstream_is_open(s->ps) && s->state != ST_FAILED && s->state != ST_CLOSED;
    unsigned ev = 0;
    if (dead)
        fail_locked(s, false, &ev, "the connection ended: %s", mcl_pstream_end_reason(s->ps));
    pthread_mutex_unlock(&s->lock);
    if (ev)
        run_observer(s, ev);
}

// --- registration (on the reactor thread) --------------------------------------------------------

typedef struct reg_arg {
    mcl_stream *s;
    mcl_err rv;
} reg_arg;

static void
peer_register(mcl_reactor *r, void *arg)
{
    reg_arg *a = arg;
    mcl_stream *s = a->s;
    mux *m;
    a->rv = mux_get(s->ps, s->channel, r, &m);
    if (a->rv != MCL_OK)
        return;
    uint32_t sid = ++m->next_sid;
    while (sid == 0 || mcl__u64map_get(&m->peers, sid) != NULL)
        sid = ++m->next_sid;
    m->users++;
    if ((a->rv = mcl__u64map_put(&m->peers, sid, s)) != MCL_OK) {
        mux_put(m);
        return;
    }
    if ((a->rv = mcl_reactor_timer(r, s->o.heartbeat_ms, s->o.heartbeat_ms, 0, peer_tick, s,
                                   &s->hb)) != MCL_OK) {
        mcl__u64map_del(&m->peers, sid);
        mux_put(m);
        return;
    }
    s->mx = m;
    s->sid = sid;
    s->registered = true;
}

static void
peer_unregister(mcl_reactor *r, void *arg)
{
    mcl_stream *s = arg;
    if (!s->registered)
        return;
    (void)mcl_reactor_remove(r, s->hb);
    mcl__u64map_del(&s->mx->peers, s->sid);
    mux_put(s->mx);
    s->registered = false;
}

// --- opening -------------------------------------------------------------------------------------

static mcl_err
status_err(mcl_pstream_status st)
{
    switch (st) {
    case MCL_PSTREAM_OK: return MCL_OK;
    case MCL_PSTREAM_NOT_FOUND:
    case MCL_PSTREAM_UNIMPLEMENTED: return MCL_ENOENT;
    case MCL_PSTREAM_PERMISSION_DENIED:
    case MCL_PSTREAM_FAILED_PRECONDITION: return MCL_EPERM;
    case MCL_PSTREAM_ALREADY_EXISTS: return MCL_EALREADY;
    case MCL_PSTREAM_INVALID_ARGUMENT: return MCL_EINVAL;
    case MCL_PSTREAM_DEADLINE_EXCEEDED: return MCL_ETIMEDOUT;
    case MCL_PSTREAM_RESOURCE_EXHAUSTED: return MCL_EAGAIN;
    case MCL_PSTREAM_DISCONNECTED: return MCL_ECLOSED;
    case MCL_PSTREAM_PROTOCOL_ERROR: return MCL_EPROTO;
    default: return MCL_ESTATE;
    }
}

static mcl_pstream_status
err_status(mcl_err e)
{
    switch (e) {
    case MCL_ENOENT: return MCL_PSTREAM_NOT_FOUND;
    case MCL_EPERM: return MCL_PSTREAM_PERMISSION_DENIED;
    case MCL_EALREADY: return MCL_PSTREAM_ALREADY_EXISTS;
    case MCL_EINVAL:
    case MCL_EURL: return MCL_PSTREAM_INVALID_ARGUMENT;
    case MCL_EAGAIN:
    case MCL_ENOMEM: return MCL_PSTREAM_RESOURCE_EXHAUSTED;
    default: return MCL_PSTREAM_INTERNAL;
    }
}

static void
peer_free_mem(mcl_stream *s)
{
    mcl_pstream_unref(s->ps); // NULL-safe
    buf_drop(s);
    for (pbuf *b = s->pool, *n; b != NULL; b = n) {
        n = b->next;
        mcl__free(b);
    }
    mcl__free(s->info);
    mcl__free(s->wbuf);
    mcl__free((void *)(uintptr_t)s->o.params);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cv);
    mcl__free(s);
}

static mcl_err
resolve_options(mcl_stream_options *o, const mcl_stream_options *in)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->timeout_ms < -1 || o->heartbeat_ms < 0 || (o->eos != MCL_STREAM_EOS_STOP &&
                                                      o->eos != MCL_STREAM_EOS_FOLLOW))
        return MCL_EINVAL;
    if (o->channel == 0)
        o->channel = MCL_STREAM_CHANNEL;
    if (o->timeout_ms == 0)
        o->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (o->heartbeat_ms == 0)
        o->heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    if (o->max_pushes == 0)
        o->max_pushes = DEFAULT_PUSHES;
    if (o->max_push == 0)
        o->max_push = DEFAULT_PUSH;
    if (o->max_push < 256 || o->max_push > UINT32_MAX)
        return MCL_EINVAL;
    o->params = NULL;
    if (in != NULL && in->params != NULL) {
        if (strlen(in->params) > MCL__SW_TEXT_MAX)
            return MCL_EINVAL;
        if ((o->params = mcl__strdup(in->params)) == NULL)
            return MCL_ENOMEM;
    }
    return MCL_OK;
}

mcl_err
mcl_stream_open_over(mcl_stream **sp, mcl_pstream *ps, mcl_reactor *r, const char *name,
                     const mcl_stream_options *options)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL || ps == NULL || r == NULL || name == NULL || name[0] == '\0' ||
        strlen(name) > MCL__SW_TEXT_MAX)
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(r))
        return MCL_ESTATE;
    mcl_stream *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    mcl_err rv = resolve_options(&s->o, options);
    if (rv != MCL_OK) {
        peer_free_mem(s);
        return rv;
    }
    s->ps = ps;
    mcl_pstream_ref(ps); // (dropped by peer_free_mem)
    s->r = r;
    s->channel = s->o.channel;
    s->eos = s->o.eos;
    s->state = ST_OPENING;
    reg_arg ra = {.s = s};
    if ((rv = mcl_reactor_call(r, peer_register, &ra)) != MCL_OK || (rv = ra.rv) != MCL_OK) {
        peer_free_mem(s);
        return rv;
    }
    // The window asked for: 0 means the default of the kind, which the answer tells; ask for
    // bytes' default and let an entity source scale it (see the server's clamp).
    mcl__sopen q = {.sid = s->sid,
                    .mode = s->o.require_mode,
                    .window = s->o.window ? s->o.window : 0,
                    .max_pushes = s->o.max_pushes,
                    .max_push = (uint32_t)s->o.max_push,
                    .name = (const uint8_t *)name,
                    .namelen = strlen(name),
                    .params = (const uint8_t *)s->o.params,
                    .paramslen = s->o.params ? strlen(s->o.params) : 0};
    if (q.window == 0)
        q.window = UINT64_MAX; // "the default": the server picks per kind
    uint8_t req[2 * MCL__SW_TEXT_MAX + 64];
    size_t qn = mcl__sopen_encode_req(&q, req, sizeof(req));
    mcl_pstream_result *res = NULL;
    rv = mcl_pstream_call(ps, s->channel, MCL__SM_OPEN, 0, req, qn, s->o.timeout_ms, &res);
    if (rv == MCL_OK && res->status != MCL_PSTREAM_OK) {
        rv = status_err(res->status);
        snprintf(s->err, sizeof(s->err), "%s", res->message);
        mcl__fail(rv, NULL, 0, "stream", "open %s: %s%s%s", name,
                  mcl_pstream_status_name(res->status), res->message[0] ? ": " : "",
                  res->message);
    } else if (rv == MCL_OK) {
        mcl__sopen a;
        char why[128];
        if (mcl__sopen_decode_ans(res->payload, res->len, &a, why, sizeof(why)) != MCL_OK ||
            a.sid != s->sid || (a.mode & s->o.require_mode) != s->o.require_mode) {
            rv = mcl__fail(MCL_EPROTO, NULL, 0, "stream", "open %s: a bad answer: %s", name,
                           why);
        } else if ((s->info = mcl__alloc(a.infolen + 1)) == NULL) {
            rv = MCL_ENOMEM;
        } else {
            memcpy(s->info, a.info, a.infolen);
            s->info[a.infolen] = '\0';
            s->kind = (mcl_stream_kind)a.kind;
            s->mode = a.mode;
            // Clamped by the server; never more than asked.
            s->window = a.window;
            if (s->o.window && s->window > s->o.window)
                s->window = s->o.window;
            s->max_pushes = a.max_pushes < s->o.max_pushes ? a.max_pushes : s->o.max_pushes;
            s->max_push = a.max_push < s->o.max_push ? a.max_push : (uint32_t)s->o.max_push;
            s->dstart = a.start;
            s->dend = a.end;
        }
    }
    mcl_pstream_result_free(res);
    if (rv != MCL_OK) {
        (void)mcl_reactor_call(r, peer_unregister, s);
        peer_free_mem(s);
        return rv;
    }
    pthread_mutex_lock(&s->lock);
    s->state = ST_OPEN;
    pthread_mutex_unlock(&s->lock);
    *sp = s;
    return MCL_OK;
}

mcl_err
mcl_stream_split_location(const char *loc, char *url, size_t urlsize, char *name, size_t namesize)
{
    if (loc == NULL || url == NULL || name == NULL || urlsize == 0 || namesize == 0)
        return MCL_EINVAL;
    const char *sch = strstr(loc, "://");
    if (sch == NULL)
        return MCL_EURL;
    const char *auth = sch + 3;
    const char *slash = strchr(auth, '/');
    if (strncmp(loc, "zmq+ipc://", 10) == 0 || strncmp(loc, "unix://", 7) == 0 ||
        strncmp(loc, "fd:", 3) == 0)
        slash = strrchr(auth, '/'); // a socket path: the last part is the name
    if (slash == NULL || slash[1] == '\0' || slash == auth)
        return MCL_EURL;
    size_t ul = (size_t)(slash - loc);
    if (ul >= urlsize || strlen(slash + 1) >= namesize)
        return MCL_EINVAL;
    memcpy(url, loc, ul);
    url[ul] = '\0';
    strcpy(name, slash + 1);
    return MCL_OK;
}

mcl_err
mcl_stream_open(mcl_stream **sp, const char *loc, const char *name,
                const mcl_stream_options *options)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL || loc == NULL)
        return MCL_EINVAL;
    char url[MCL__URL_MAX], nm[MCL__SW_TEXT_MAX + 1];
    if (name == NULL) {
        mcl_err rv = mcl_stream_split_location(loc, url, sizeof(url), nm, sizeof(nm));
        if (rv != MCL_OK)
            return mcl__fail(rv, NULL, 0, "stream", "%s: not URL/NAME", loc);
        name = nm;
    } else {
        if (strlen(loc) >= sizeof(url))
            return MCL_EURL;
        strcpy(url, loc);
    }
    mcl_reactor *r = NULL;
    mcl_pstream *ps = NULL;
    mcl_pstream_options po = {.timeout_ms = options && options->timeout_ms > 0 ? options->timeout_ms
                                                                              : 0};
    mcl_err rv = mcl_reactor_new(&r, NULL);
    if (rv == MCL_OK)
        rv = mcl_pstream_dial(&ps, url, &po);
    if (rv == MCL_OK)
        rv = mcl_pstream_attach(ps, r);
    if (rv == MCL_OK)
        rv = mcl_reactor_start(r);
    if (rv == MCL_OK)
        rv = mcl_stream_open_over(sp, ps, r, name, options);
    if (rv != MCL_OK) {
        mcl_pstream_free(ps);
        mcl_reactor_free(r);
        return rv;
    }
    (*sp)->own = true;
    return MCL_OK;
}

mcl_stream_kind
mcl_stream_kind_of(const mcl_stream *s)
{
    return s ? s->kind : (mcl_stream_kind)0;
}

unsigned
mcl_stream_mode(const mcl_stream *s)
{
    return s ? s->mode : 0;
}

const char *
mcl_stream_info(const mcl_stream *s)
{
    return s && s->info ? s->info : "";
}

// --- reading -------------------------------------------------------------------------------------

// Why a call cannot go on (held lock), or MCL_OK.
static mcl_err
state_err(const mcl_stream *s)
{
    return s->state == ST_OPEN ? MCL_OK : MCL_ECLOSED;
}

// Waits for something to read in a read context (held lock). MCL_OK: the buffer has data.
static mcl_err
wait_readable(mcl_stream *s, size_t want, int ms)
{
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    for (;;) {
        mcl_err rv = state_err(s);
        if (rv != MCL_OK)
            return rv;
        if (s->dir != DIR_READ || s->seek_pending)
            switch_locked(s, DIR_READ);
        if (s->head != NULL) // what came before a context error is read first
            return MCL_OK;
        if (s->ctx_err != MCL_OK)
            return s->ctx_err;
        if (s->eos_seen)
            return MCL_EEOF;
        credit_locked(s, want); // without read-ahead: ask for what is wanted
        if (!wait_until(s, ms, &dl))
            return MCL_ETIMEDOUT;
    }
}

// The head push is used up: drop it (keep it lent when elements point into it).
static void
consumed_push_locked(mcl_stream *s, bool lend)
{
    pbuf *b = s->head;
    s->head = b->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->pushes_done++;
    s->c.buffered_bytes -= b->len;
    if (lend) {
        pbuf_put(s, s->lent);
        s->lent = b;
    } else {
        pbuf_put(s, b);
    }
}

static mcl_err
recv_check(mcl_stream *s, mcl_stream_kind kind)
{
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    if (!(s->mode & MCL_STREAM_READABLE) || s->kind != kind)
        return MCL_ENOTSUP;
    return MCL_OK;
}

mcl_err
mcl_stream_recv(mcl_stream *s, void *buf, size_t max, size_t *got, int timeout_ms)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL || buf == NULL || max == 0 || got == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    mcl_err rv = recv_check(s, MCL_STREAM_BYTES);
    if (rv != MCL_OK)
        return rv;
    pthread_mutex_lock(&s->lock);
    rv = wait_readable(s, max, timeout_of(s, timeout_ms));
    size_t n = 0;
    while (rv == MCL_OK && s->head != NULL && n < max) {
        pbuf *b = s->head;
        size_t k = b->len - b->off;
        if (k > max - n)
            k = max - n;
        memcpy((uint8_t *)buf + n, b->data + b->off, k);
        b->off += k;
        b->i += (uint32_t)k;
        n += k;
        if (b->off == b->len)
            consumed_push_locked(s, false);
    }
    if (n > 0) {
        s->consumed += n;
        s->c.buffered -= n;
        credit_locked(s, 0);
    }
    pthread_mutex_unlock(&s->lock);
    *got = n;
    return rv;
}

mcl_err
mcl_stream_recv_elems(mcl_stream *s, mcl_stream_elem *out, size_t max, size_t *got,
                      int timeout_ms)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL || out == NULL || max == 0 || got == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    mcl_err rv = recv_check(s, MCL_STREAM_ENTITIES);
    if (rv != MCL_OK)
        return rv;
    pthread_mutex_lock(&s->lock);
    pbuf_put(s, s->lent); // the elements handed out last are no longer borrowed
    s->lent = NULL;
    rv = wait_readable(s, max, timeout_of(s, timeout_ms));
    size_t n = 0;
    if (rv == MCL_OK) { // from the head push only, so that they all point into one buffer
        pbuf *b = s->head;
        while (n < max && b->i < b->n) {
            size_t el;
            const uint8_t *e = mcl__spush_elem(b->data, &b->off, &el);
            out[n].data = e;
            out[n].len = el;
            n++;
            b->i++;
        }
        if (b->i == b->n) // (else the caller's elements point into the head, which stays)
            consumed_push_locked(s, true);
        s->consumed += n;
        s->c.buffered -= n;
        credit_locked(s, 0);
    }
    pthread_mutex_unlock(&s->lock);
    *got = n;
    return rv;
}

mcl_err
mcl_stream_read(mcl_stream *s, void *buf, size_t n, size_t *got, int timeout_ms)
{
    if (got != NULL)
        *got = 0;
    if (s == NULL || (buf == NULL && n > 0) || got == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    int ms = timeout_of(s, timeout_ms);
    int64_t end = ms < 0 ? INT64_MAX : mcl__mono_ns() + (int64_t)ms * 1000000;
    size_t have = 0;
    mcl_err rv = MCL_OK;
    while (have < n) {
        int left = ms < 0 ? -1 : (int)((end - mcl__mono_ns()) / 1000000);
        if (ms >= 0 && left <= 0) {
            rv = MCL_ETIMEDOUT;
            break;
        }
        size_t k;
        rv = mcl_stream_recv(s, (uint8_t *)buf + have, n - have, &k, left);
        have += k;
        if (rv != MCL_OK)
            break;
    }
    *got = have;
    if (rv == MCL_EEOF && have > 0)
        rv = MCL_OK;
    return rv;
}

// --- writing -------------------------------------------------------------------------------------

// Waits for write credit (held lock).
static mcl_err
wait_writable(mcl_stream *s, int ms)
{
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    for (;;) {
        mcl_err rv = state_err(s);
        if (rv != MCL_OK)
            return rv;
        if (s->dir != DIR_WRITE || s->seek_pending)
            switch_locked(s, DIR_WRITE);
        if (s->ctx_err != MCL_OK)
            return s->ctx_err;
        if (s->pos_known && s->wul > s->w_sent && s->wpl > s->w_pushes)
            return MCL_OK;
        if (!wait_until(s, ms, &dl))
            return MCL_ETIMEDOUT;
    }
}

static mcl_err
send_common(mcl_stream *s, const mcl_stream_elem *elems, size_t n, const void *bytes,
            size_t len, size_t *accepted, int timeout_ms)
{
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    if (!(s->mode & MCL_STREAM_WRITABLE) ||
        s->kind != (bytes != NULL ? MCL_STREAM_BYTES : MCL_STREAM_ENTITIES))
        return MCL_ENOTSUP;
    size_t room = s->max_push;
    for (size_t i = 0; i < n; i++)
        if (elems[i].len == 0 || elems[i].data == NULL)
            return MCL_EINVAL;
    if (n > 0 && elems[0].len + 4 > room)
        return MCL_EMSGSIZE;
    int ms = timeout_of(s, timeout_ms);
    pthread_mutex_lock(&s->lock);
    mcl_err rv = wait_writable(s, ms);
    if (rv != MCL_OK) {
        pthread_mutex_unlock(&s->lock);
        return rv;
    }
    uint64_t credit = s->wul - s->w_sent;
    mcl__smsg m = {.type = MCL__SM_WPUSH,
                   .sid = s->sid,
                   .ctx = s->ctx,
                   .pushno = s->w_pushes + 1,
                   .poff = s->w_sent};
    const void *data;
    size_t dlen;
    if (bytes != NULL) {
        dlen = len < room ? len : room;
        if (dlen > credit)
            dlen = (size_t)credit;
        data = bytes;
        m.nunits = (uint32_t)dlen;
    } else {
        size_t k = 0, total = 0;
        while (k < n && k < credit && k < UINT32_MAX && total + 4 + elems[k].len <= room)
            total += 4 + elems[k++].len;
        if (total > s->wbuf_cap) {
            uint8_t *w = mcl__realloc(s->wbuf, total);
            if (w == NULL) {
                pthread_mutex_unlock(&s->lock);
                return MCL_ENOMEM;
            }
            s->wbuf = w;
            s->wbuf_cap = total;
        }
        size_t o = 0;
        for (size_t i = 0; i < k; i++) {
            mcl__put_be32(s->wbuf + o, (uint32_t)elems[i].len);
            memcpy(s->wbuf + o + 4, elems[i].data, elems[i].len);
            o += 4 + elems[i].len;
        }
        data = s->wbuf;
        dlen = total;
        m.nunits = (uint32_t)k;
    }
    uint8_t hdr[64];
    size_t hn = mcl__smsg_encode(&m, hdr);
    // A full send queue: wait for it to drain, within the time left.
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    while ((rv = mcl__pstream_send2(s->ps, s->channel, MCL__SM_WPUSH, 0, hdr, hn, data, dlen)) ==
           MCL_EAGAIN) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_nsec += 1000000;
        if (t.tv_nsec >= 1000000000L) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000L;
        }
        if (ms >= 0 && (t.tv_sec > dl.tv_sec || (t.tv_sec == dl.tv_sec && t.tv_nsec > dl.tv_nsec)))
            break;
        (void)pthread_cond_timedwait(&s->cv, &s->lock, &t);
        if (state_err(s) != MCL_OK || s->ctx != m.ctx) {
            rv = state_err(s) != MCL_OK ? MCL_ECLOSED : MCL_ESTATE;
            break;
        }
    }
    if (rv == MCL_OK) {
        s->w_sent += m.nunits;
        s->w_pushes++;
        s->c.units_sent += m.nunits;
        s->c.pushes_sent++;
        *accepted = m.nunits;
    } else if (rv == MCL_EAGAIN) {
        rv = MCL_ETIMEDOUT;
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

mcl_err
mcl_stream_send(mcl_stream *s, const void *data, size_t len, size_t *accepted, int timeout_ms)
{
    if (accepted != NULL)
        *accepted = 0;
    if (s == NULL || data == NULL || len == 0 || accepted == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    return send_common(s, NULL, 0, data, len, accepted, timeout_ms);
}

mcl_err
mcl_stream_send_elems(mcl_stream *s, const mcl_stream_elem *elems, size_t n, size_t *accepted,
                      int timeout_ms)
{
    if (accepted != NULL)
        *accepted = 0;
    if (s == NULL || elems == NULL || n == 0 || accepted == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    return send_common(s, elems, n, NULL, 0, accepted, timeout_ms);
}

mcl_err
mcl_stream_write(mcl_stream *s, const void *data, size_t len, int timeout_ms)
{
    if (s == NULL || (data == NULL && len > 0) || timeout_ms < -1)
        return MCL_EINVAL;
    int ms = timeout_of(s, timeout_ms);
    int64_t end = ms < 0 ? INT64_MAX : mcl__mono_ns() + (int64_t)ms * 1000000;
    size_t off = 0;
    while (off < len) {
        int left = ms < 0 ? -1 : (int)((end - mcl__mono_ns()) / 1000000);
        if (ms >= 0 && left <= 0)
            return MCL_ETIMEDOUT;
        size_t k;
        mcl_err rv = mcl_stream_send(s, (const uint8_t *)data + off, len - off, &k, left);
        if (rv != MCL_OK)
            return rv;
        off += k;
    }
    return MCL_OK;
}

mcl_err
mcl_stream_flush(mcl_stream *s, int timeout_ms)
{
    if (s == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    int ms = timeout_of(s, timeout_ms);
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    pthread_mutex_lock(&s->lock);
    mcl_err rv;
    for (;;) {
        if ((rv = state_err(s)) != MCL_OK)
            break;
        if (s->dir != DIR_WRITE)
            break; // nothing written in this context
        if (s->ctx_err != MCL_OK) {
            rv = s->ctx_err;
            break;
        }
        if (s->wdone >= s->w_sent)
            break;
        if (!wait_until(s, ms, &dl)) {
            rv = MCL_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

// --- seek, tell, truncate ------------------------------------------------------------------------

static mcl_err
tell_locked(mcl_stream *s, int ms)
{
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    for (;;) {
        mcl_err rv = state_err(s);
        if (rv != MCL_OK)
            return rv;
        if (s->ctx == 0 || s->seek_pending)
            start_ctx_locked(s, s->dir == DIR_WRITE || !(s->mode & MCL_STREAM_READABLE)
                                    ? DIR_WRITE
                                    : DIR_READ);
        if (s->ctx_err != MCL_OK)
            return s->ctx_err;
        if (s->pos_known)
            return MCL_OK;
        if (!wait_until(s, ms, &dl))
            return MCL_ETIMEDOUT;
    }
}

mcl_err
mcl_stream_seek(mcl_stream *s, mcl_stream_whence whence, int64_t offset)
{
    if (s == NULL || whence < MCL_STREAM_ABS || whence > MCL_STREAM_AT_TIME)
        return MCL_EINVAL;
    if (whence == MCL_STREAM_AT_TIME ? !(s->mode & MCL_STREAM_SEEK_TIME)
                                     : !(s->mode & (MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK)))
        return MCL_ENOTSUP;
    if ((whence == MCL_STREAM_ABS && offset < 0) || (whence == MCL_STREAM_FROM_START && offset < 0) ||
        (whence == MCL_STREAM_FROM_END && offset > 0))
        return MCL_EINVAL;
    pthread_mutex_lock(&s->lock);
    mcl_err rv = state_err(s);
    if (rv == MCL_OK && whence == MCL_STREAM_FROM_HERE) {
        uint64_t here = 0;
        if (!here_locked(s, &here)) {
            if (mcl_reactor_in_loop(s->r))
                rv = MCL_ESTATE;
            else if ((rv = tell_locked(s, s->o.timeout_ms)) == MCL_OK)
                (void)here_locked(s, &here);
        }
        if (rv == MCL_OK) {
            if ((offset < 0 && (uint64_t)(-(offset + 1)) + 1 > here) ||
                (offset > 0 && here + (uint64_t)offset > INT64_MAX))
                rv = MCL_ERANGE;
            whence = MCL_STREAM_ABS;
            offset = (int64_t)here + offset;
        }
    }
    if (rv == MCL_OK) {
        s->seek_pending = true;
        s->sk_whence = whence;
        s->sk_off = offset;
        s->last_pos_known = false;
        if (s->dir == DIR_READ) // reading: read ahead from the new place at once
            start_ctx_locked(s, DIR_READ);
        else
            s->ctx_err = MCL_OK; // the next context starts over
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

mcl_err
mcl_stream_set_eos(mcl_stream *s, mcl_stream_eos eos)
{
    if (s == NULL || (eos != MCL_STREAM_EOS_STOP && eos != MCL_STREAM_EOS_FOLLOW))
        return MCL_EINVAL;
    pthread_mutex_lock(&s->lock);
    s->eos = eos;
    pthread_mutex_unlock(&s->lock);
    return MCL_OK;
}

mcl_err
mcl_stream_tell(mcl_stream *s, uint64_t *pos, uint64_t *start, uint64_t *end, int timeout_ms)
{
    if (s == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    pthread_mutex_lock(&s->lock);
    mcl_err rv = tell_locked(s, timeout_of(s, timeout_ms));
    if (rv == MCL_OK) {
        uint64_t here = 0;
        (void)here_locked(s, &here);
        if (pos)
            *pos = here;
        if (start)
            *start = s->dstart;
        if (end)
            *end = s->dend;
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

mcl_err
mcl_stream_truncate(mcl_stream *s, int timeout_ms)
{
    if (s == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    if (!(s->mode & MCL_STREAM_TRUNCATE) || !(s->mode & MCL_STREAM_WRITABLE))
        return MCL_ENOTSUP;
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    int ms = timeout_of(s, timeout_ms);
    pthread_mutex_lock(&s->lock);
    mcl_err rv = tell_locked(s, ms);
    uint64_t here = 0;
    if (rv == MCL_OK && here_locked(s, &here)) {
        buf_drop(s);
        s->ctx = ++s->next_ctx;
        s->dir = DIR_WRITE;
        s->pos_known = false;
        s->ctx_err = MCL_OK;
        s->w_sent = s->w_pushes = s->wul = s->wpl = s->wdone = 0;
        s->wlseq = 0;
        s->wlimit_seen = false;
        s->c.contexts++;
        mcl__smsg m = {.type = MCL__SM_TRUNC, .sid = s->sid, .ctx = s->ctx, .pos = here};
        send_msg(s, &m, NULL, 0);
        rv = tell_locked(s, ms);
    }
    pthread_mutex_unlock(&s->lock);
    return rv;
}

// --- observers, errors, counters, closing --------------------------------------------------------

mcl_err
mcl_stream_observe(mcl_stream *s, unsigned events, mcl_stream_observer cb, void *user)
{
    if (s == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&s->lock);
    s->obs = cb;
    s->obs_user = user;
    s->obs_events = cb ? events : 0;
    pthread_mutex_unlock(&s->lock);
    return MCL_OK;
}

const char *
mcl_stream_error(mcl_stream *s)
{
    return s ? s->err : "";
}

mcl_err
mcl_stream_stats(const mcl_stream *cs, mcl_stream_counters *c)
{
    if (cs == NULL || c == NULL)
        return MCL_EINVAL;
    mcl_stream *s = (mcl_stream *)(uintptr_t)cs;
    pthread_mutex_lock(&s->lock);
    *c = s->c;
    pthread_mutex_unlock(&s->lock);
    return MCL_OK;
}

mcl_err
mcl_stream_close(mcl_stream *s, int timeout_ms)
{
    if (s == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(s->r))
        return MCL_ESTATE;
    int ms = timeout_of(s, timeout_ms);
    struct timespec dl;
    if (ms >= 0)
        deadline_of(ms, &dl);
    pthread_mutex_lock(&s->lock);
    mcl_err rv = MCL_OK;
    if (s->state == ST_OPEN) {
        s->state = ST_CLOSING;
        faults_flush(s->ps, s->channel, &s->fz);
        mcl__smsg m = {.type = MCL__SM_CLOSE, .sid = s->sid};
        send_msg(s, &m, NULL, 0);
    }
    while (s->state == ST_CLOSING)
        if (!wait_until(s, ms, &dl)) {
            rv = MCL_ETIMEDOUT;
            break;
        }
    if (rv == MCL_OK && s->state != ST_CLOSED)
        rv = MCL_ECLOSED;
    pthread_mutex_unlock(&s->lock);
    return rv;
}

void
mcl_stream_free(mcl_stream *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->state == ST_OPEN || s->state == ST_CLOSING)
        fail_locked(s, true, NULL, "the peer freed the stream");
    pthread_mutex_unlock(&s->lock);
    (void)mcl_reactor_call(s->r, peer_unregister, s);
    if (s->own) {
        (void)mcl_pstream_close(s->ps, 1000);
        mcl_pstream_free(s->ps);
        mcl_reactor_free(s->r);
    }
    peer_free_mem(s);
}

void
mcl__stream_set_faults(mcl_stream *s, const mcl__stream_faults *f)
{
    pthread_mutex_lock(&s->lock);
    faults_set(&s->fz, f);
    pthread_mutex_unlock(&s->lock);
}

// --- the data side -------------------------------------------------------------------------------

typedef struct offer {
    struct offer *next;
    char *name;
    mcl_stream_source src;
    bool taken;
} offer;

struct mcl_stream_server {
    pthread_mutex_t lock; // offers, bindings list, counts
    mcl_stream_server_options o;
    mcl_stream_resolve_fn resolve;
    mcl_stream_list_fn list;
    void *user;
    offer *offers;
    binding *bindings;
    size_t streams;
    faulter fz_proto; // the faults each new streamer starts with
    // Listening.
    mcl_reactor *r;
    mcl_pstream_server *psrv;
};

struct binding {
    binding *next;
    mcl_stream_server *srv;
    mux *mx;
    mcl_pstream *ps;
    mcl_reactor *r;
    bool ref; // holds a reference on ps (an accepted connection)
    mcl__u64map streamers;
    mcl_handle tick;
};

struct streamer {
    binding *b;
    uint32_t sid;
    mcl_stream_source src;
    mcl_stream_kind kind;
    unsigned mode;
    uint64_t window;
    uint32_t max_pushes, max_push;
    uint32_t ctx;
    int dir;
    uint64_t cstart, lastpos;
    // Reading.
    uint64_t sent, pushes, ul, pl;
    uint32_t lseq;
    int eos;
    bool eos_sent, pending, follow_armed, retry_armed, pump_posted;
    mcl_stream_sink sink;
    // Writing.
    uint64_t wrecv, wpushes, wul, wpl, done_sent;
    uint32_t wlseq;
    bool wrx_since_tick;
    mcl_stream_elem *elems;
    size_t elems_cap;
    faulter fz;
    mcl_handle follow_t, retry_t;
    bool dead; // removed: timers and posts that still come do nothing
    unsigned refs; // the binding's, plus one per pending post or timer
};

static void
server_count(mcl_stream_server *srv, int d)
{
    pthread_mutex_lock(&srv->lock);
    srv->streams = (size_t)((long)srv->streams + d);
    pthread_mutex_unlock(&srv->lock);
}

static void
streamer_unref(streamer *st)
{
    if (--st->refs > 0)
        return;
    mcl__sink_fini(&st->sink);
    mcl__free(st->elems);
    mcl__free(st);
}

// Removes a streamer (reactor thread): its source closes; timers and posts find it dead.
static void
streamer_remove(streamer *st)
{
    if (st->dead)
        return;
    st->dead = true;
    binding *b = st->b;
    mcl__u64map_del(&b->streamers, st->sid);
    if (st->follow_armed)
        (void)mcl_reactor_remove(b->r, st->follow_t);
    if (st->retry_armed)
        (void)mcl_reactor_remove(b->r, st->retry_t);
    if (st->follow_armed)
        streamer_unref(st);
    if (st->retry_armed)
        streamer_unref(st);
    st->follow_armed = st->retry_armed = false;
    if (st->src.ops != NULL && st->src.ops->close != NULL)
        st->src.ops->close(st->src.self);
    st->src.ops = NULL;
    server_count(b->srv, -1);
    streamer_unref(st);
}

static void
st_send(streamer *st, const mcl__smsg *m, const void *data, size_t len)
{
    uint8_t hdr[64];
    size_t n = mcl__smsg_encode(m, hdr);
    (void)mcl__pstream_send2(st->b->ps, st->b->mx->channel, (uint32_t)m->type, 0, hdr, n, data,
                             len);
}

static void st_fail(streamer *st, const char *fmt, ...) MCL__PRINTF(2, 3);
static void
st_fail(streamer *st, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    mcl__log(MCL_LOG_DEBUG, "stream", "stream %u failed: %s", (unsigned)st->sid, text);
    mcl__smsg m = {.type = MCL__SM_SFAIL, .sid = st->sid, .textlen = strlen(text)};
    st_send(st, &m, text, m.textlen);
    streamer_remove(st);
}

static void
st_ctx_error(streamer *st, uint32_t ctx, int code, const char *fmt, ...) MCL__PRINTF(4, 5);
static void
st_ctx_error(streamer *st, uint32_t ctx, int code, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    st->ctx = ctx;
    st->dir = DIR_NONE;
    st->pending = false;
    mcl__smsg m = {.type = MCL__SM_CTXERR,
                   .sid = st->sid,
                   .ctx = ctx,
                   .code = (uint16_t)code,
                   .textlen = strlen(text)};
    st_send(st, &m, text, m.textlen);
}

static void st_pump(streamer *st);

static void
st_pump_later(mcl_reactor *r, void *arg)
{
    (void)r;
    streamer *st = arg;
    st->pump_posted = false;
    if (!st->dead)
        st_pump(st);
    streamer_unref(st);
}

static void
st_timer(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    streamer *st = user;
    if (st->follow_armed && t == st->follow_t)
        st->follow_armed = false;
    else if (st->retry_armed && t == st->retry_t)
        st->retry_armed = false;
    else
        return;
    if (!st->dead)
        st_pump(st);
    streamer_unref(st);
}

static void
st_arm(streamer *st, bool follow, int ms)
{
    bool *armed = follow ? &st->follow_armed : &st->retry_armed;
    if (*armed)
        return;
    mcl_handle *h = follow ? &st->follow_t : &st->retry_t;
    if (mcl_reactor_timer(st->b->r, ms, 0, 0, st_timer, st, h) == MCL_OK) {
        *armed = true;
        st->refs++;
    }
}

// Sends what the credit allows (reactor thread).
static void
st_pump(streamer *st)
{
    mcl_stream_server *srv = st->b->srv;
    for (int burst = 0; burst < PUMP_BURST; burst++) {
        if (st->dead || st->dir != DIR_READ || st->eos_sent)
            return;
        uint64_t au = st->ul - st->sent, ap = st->pl - st->pushes;
        if (!st->pending) {
            if (au == 0 || ap == 0)
                return;
            size_t room = st->max_push;
            mcl__sink_reset(&st->sink, room, au);
            uint64_t pos = st->cstart + st->sent;
            mcl_err rv = st->src.ops->read(st->src.self, pos, au, &st->sink);
            if (rv == MCL_OK && st->sink.too_big)
                rv = MCL_EMSGSIZE;
            if (rv != MCL_OK) {
                if (rv == MCL_ERANGE)
                    st_ctx_error(st, st->ctx, MCL__SW_INVALID_POS, "position %llu is outside the data",
                                 (unsigned long long)pos);
                else if (rv == MCL_EMSGSIZE)
                    st_ctx_error(st, st->ctx, MCL__SW_GENERAL,
                                 "an element at %llu does not fit a push of %u bytes",
                                 (unsigned long long)pos, (unsigned)st->max_push);
                else
                    st_ctx_error(st, st->ctx, MCL__SW_GENERAL, "reading the source: %s",
                                 mcl_strerror(rv));
                return;
            }
            if (st->sink.units == 0) {
                uint64_t s0, e0;
                st->src.ops->bounds(st->src.self, &s0, &e0);
                if (e0 != MCL_STREAM_NOEND && pos < e0) {
                    // Nothing read before the end the source says: never a false end.
                    st_ctx_error(st, st->ctx, MCL__SW_GENERAL,
                                 "the source read nothing at %llu, before its end %llu",
                                 (unsigned long long)pos, (unsigned long long)e0);
                    return;
                }
                if (st->eos == MCL_STREAM_EOS_FOLLOW) {
                    st_arm(st, true, srv->o.follow_ms);
                    return;
                }
            }
            st->pending = true;
        }
        mcl__smsg m = {.type = MCL__SM_PUSH,
                       .sid = st->sid,
                       .ctx = st->ctx,
                       .nunits = (uint32_t)st->sink.units,
                       .pushno = st->pushes + 1,
                       .poff = st->sent};
        if (m.nunits == 0) {
            m.flags = MCL__SW_EOS;
        } else if (st->eos == MCL_STREAM_EOS_STOP) {
            uint64_t s0, e0;
            st->src.ops->bounds(st->src.self, &s0, &e0);
            if (e0 != MCL_STREAM_NOEND && st->cstart + st->sent + m.nunits >= e0)
                m.flags = MCL__SW_EOS; // this push reaches the end
        }
        uint8_t hdr[64];
        size_t hn = mcl__smsg_encode(&m, hdr);
        mcl_err rv = mcl__pstream_send2(st->b->ps, st->b->mx->channel, MCL__SM_PUSH, 0, hdr, hn,
                                        st->sink.buf, st->sink.len);
        if (rv == MCL_EAGAIN) { // the connection's queue is full: come back soon
            st_arm(st, false, 2);
            return;
        }
        if (rv != MCL_OK) {
            streamer_remove(st); // the connection is gone
            return;
        }
        st->pending = false;
        st->sent += m.nunits;
        st->pushes++;
        if (m.flags & MCL__SW_EOS)
            st->eos_sent = true;
    }
    if (!st->pump_posted && mcl_reactor_post(st->b->r, st_pump_later, st) == MCL_OK) {
        st->pump_posted = true;
        st->refs++;
    }
}

static void
st_send_wlimit(streamer *st)
{
    mcl__smsg m = {.type = MCL__SM_WLIMIT,
                   .sid = st->sid,
                   .ctx = st->ctx,
                   .lseq = st->wlseq,
                   .ulimit = st->wul,
                   .plimit = st->wpl,
                   .done = st->wrecv};
    uint8_t hdr[64];
    size_t n = mcl__smsg_encode(&m, hdr);
    send_credit(st->b->ps, st->b->mx->channel, &st->fz, MCL__SM_WLIMIT, hdr, n);
    st->done_sent = st->wrecv;
}

// Where a READ, WRITE or TRUNC wants to be: MCL_OK with *pos, or a context error sent.
static bool
st_resolve(streamer *st, const mcl__smsg *m, uint64_t *pos)
{
    uint64_t s0, e0;
    st->src.ops->bounds(st->src.self, &s0, &e0);
    uint64_t p = 0;
    bool ok = true;
    switch (m->type == MCL__SM_TRUNC ? MCL_STREAM_ABS : m->whence) {
    case MCL_STREAM_ABS:
        p = m->type == MCL__SM_TRUNC ? m->pos : (uint64_t)m->offset;
        ok = m->type == MCL__SM_TRUNC || m->offset >= 0;
        break;
    case MCL_STREAM_FROM_START:
        ok = m->offset >= 0;
        p = s0 + (uint64_t)m->offset;
        break;
    case MCL_STREAM_FROM_END: {
        uint64_t back = m->offset == INT64_MIN ? (uint64_t)INT64_MAX + 1 : (uint64_t)(-m->offset);
        ok = m->offset <= 0 && e0 != MCL_STREAM_NOEND && back <= e0 - s0;
        p = ok ? e0 - back : 0;
        break;
    }
    case MCL_STREAM_AT_TIME:
        if (st->src.ops->seek_time == NULL || !(st->mode & MCL_STREAM_SEEK_TIME)) {
            st_ctx_error(st, m->ctx, MCL__SW_GENERAL, "this source cannot seek by time");
            return false;
        }
        if (st->src.ops->seek_time(st->src.self, m->offset, &p) != MCL_OK)
            ok = false;
        break;
    default:
        ok = false;
    }
    if (ok && p != st->lastpos) {
        unsigned need = p > st->lastpos ? MCL_STREAM_SEEK_FWD : MCL_STREAM_SEEK_BACK;
        if (!(st->mode & need)) {
            st_ctx_error(st, m->ctx, MCL__SW_INVALID_POS, "this source cannot seek %s (to %llu from %llu)",
                         need == MCL_STREAM_SEEK_FWD ? "forward" : "back", (unsigned long long)p,
                         (unsigned long long)st->lastpos);
            return false;
        }
    }
    if (!ok || p < s0 || (e0 != MCL_STREAM_NOEND && p > e0)) {
        char end[32] = "unbounded";
        if (e0 != MCL_STREAM_NOEND)
            snprintf(end, sizeof(end), "%llu", (unsigned long long)e0);
        st_ctx_error(st, m->ctx, MCL__SW_INVALID_POS, "no such position (the data is [%llu, %s])",
                     (unsigned long long)s0, end);
        return false;
    }
    *pos = p;
    return true;
}

static void
st_pos(streamer *st)
{
    uint64_t s0, e0;
    st->src.ops->bounds(st->src.self, &s0, &e0);
    if (st->cstart < s0)
        s0 = st->cstart;
    if (e0 != MCL_STREAM_NOEND && st->cstart > e0)
        e0 = st->cstart;
    mcl__smsg m = {.type = MCL__SM_POS,
                   .sid = st->sid,
                   .ctx = st->ctx,
                   .pos = st->cstart,
                   .start = s0,
                   .end = e0};
    st_send(st, &m, NULL, 0);
}

// Where the context that ends now got to (seek direction checks count from there).
static void
st_leave_ctx(streamer *st)
{
    if (st->dir == DIR_READ)
        st->lastpos = st->cstart + st->sent;
    else if (st->dir == DIR_WRITE)
        st->lastpos = st->cstart + st->wrecv;
    st->pending = false;
}

static void
st_start_write(streamer *st, uint32_t ctx, uint64_t pos)
{
    st->ctx = ctx;
    st->dir = DIR_WRITE;
    st->cstart = pos;
    st->wrecv = st->wpushes = 0;
    st->wul = st->window;
    st->wpl = st->max_pushes;
    st->wlseq = 1;
    st_pos(st);
    st_send_wlimit(st);
}

static void
st_wpush(streamer *st, const mcl__smsg *m)
{
    if (m->pushno != st->wpushes + 1 || m->poff != st->wrecv) {
        st_fail(st, "write push %llu at %llu, expected push %llu at %llu",
                (unsigned long long)m->pushno, (unsigned long long)m->poff,
                (unsigned long long)st->wpushes + 1, (unsigned long long)st->wrecv);
        return;
    }
    if (m->pushno > st->wpl || st->wrecv + m->nunits > st->wul) {
        st_fail(st, "a write push beyond credit (%llu units, %llu pushes granted)",
                (unsigned long long)st->wul, (unsigned long long)st->wpl);
        return;
    }
    if (m->len > st->max_push) {
        st_fail(st, "a write push of %zu bytes (at most %u)", m->len,
                (unsigned)st->max_push);
        return;
    }
    size_t n = st->kind == MCL_STREAM_BYTES ? 1 : m->nunits;
    if (n > st->elems_cap) {
        mcl_stream_elem *e = mcl__realloc(st->elems, n * sizeof(*e));
        if (e == NULL) {
            st_fail(st, "out of memory");
            return;
        }
        st->elems = e;
        st->elems_cap = n;
    }
    if (st->kind == MCL_STREAM_BYTES) {
        st->elems[0] = (mcl_stream_elem){m->data, m->len};
    } else {
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            size_t el;
            const uint8_t *e = mcl__spush_elem(m->data, &off, &el);
            st->elems[i] = (mcl_stream_elem){e, el};
        }
    }
    mcl_err rv = st->src.ops->write(st->src.self, st->cstart + st->wrecv, st->elems, n);
    if (rv != MCL_OK) {
        st_ctx_error(st, st->ctx, rv == MCL_ERANGE ? MCL__SW_INVALID_POS : MCL__SW_GENERAL,
                     "writing the source: %s", mcl_strerror(rv));
        return;
    }
    st->wrecv += m->nunits;
    st->wpushes++;
    st->wrx_since_tick = true;
    uint64_t nul = st->wrecv + st->window, npl = st->wpushes + st->max_pushes;
    uint64_t su = st->window / 2 ? st->window / 2 : 1, sp = st->max_pushes / 2 ? st->max_pushes / 2 : 1;
    if (nul >= st->wul + su || npl >= st->wpl + sp) {
        st->wul = nul > st->wul ? nul : st->wul;
        st->wpl = npl > st->wpl ? npl : st->wpl;
        st->wlseq++;
        st_send_wlimit(st);
    }
}

// A message for a streamer (reactor thread).
static void
st_message(streamer *st, const mcl__smsg *m)
{
    bool opens = m->type == MCL__SM_READ || m->type == MCL__SM_WRITE || m->type == MCL__SM_TRUNC;
    if (opens) {
        if (m->ctx <= st->ctx) {
            st_fail(st, "context %u opened after context %u", (unsigned)m->ctx,
                    (unsigned)st->ctx);
            return;
        }
        st_leave_ctx(st);
        unsigned need = m->type == MCL__SM_READ ? MCL_STREAM_READABLE : MCL_STREAM_WRITABLE;
        if (m->type == MCL__SM_TRUNC)
            need |= MCL_STREAM_TRUNCATE;
        if ((st->mode & need) != need) {
            st_ctx_error(st, m->ctx, MCL__SW_GENERAL, "this source is not %s",
                         m->type == MCL__SM_READ    ? "readable"
                         : m->type == MCL__SM_WRITE ? "writable"
                                                    : "truncatable");
            return;
        }
        uint64_t pos;
        if (!st_resolve(st, m, &pos))
            return;
        if (m->type == MCL__SM_READ) {
            st->ctx = m->ctx;
            st->dir = DIR_READ;
            st->cstart = pos;
            st->sent = st->pushes = 0;
            st->ul = m->ulimit;
            st->pl = m->plimit;
            st->lseq = 0;
            st->eos = m->eos;
            st->eos_sent = false;
            st_pos(st);
            st_pump(st);
        } else if (m->type == MCL__SM_WRITE) {
            st_start_write(st, m->ctx, pos);
        } else {
            mcl_err rv = st->src.ops->truncate(st->src.self, pos);
            if (rv != MCL_OK) {
                st_ctx_error(st, m->ctx, MCL__SW_GENERAL, "truncating: %s", mcl_strerror(rv));
                return;
            }
            st_start_write(st, m->ctx, pos);
        }
        return;
    }
    switch (m->type) {
    case MCL__SM_LIMIT:
        if (m->ctx > st->ctx) {
            st_fail(st, "credit for context %u, never opened", (unsigned)m->ctx);
        } else if (m->ctx < st->ctx || st->dir != DIR_READ || m->lseq <= st->lseq) {
            ; // an older context's, or an older (or repeated) credit: dropped
        } else if (m->ulimit < st->ul || m->plimit < st->pl) {
            st_fail(st, "credit that decreases (%llu units after %llu)",
                    (unsigned long long)m->ulimit, (unsigned long long)st->ul);
        } else {
            st->lseq = m->lseq;
            st->ul = m->ulimit;
            st->pl = m->plimit;
            st_pump(st);
        }
        break;
    case MCL__SM_WPUSH:
        if (m->ctx > st->ctx)
            st_fail(st, "a write push for context %u, never opened", (unsigned)m->ctx);
        else if (m->ctx == st->ctx && st->dir == DIR_WRITE)
            st_wpush(st, m);
        break; // else an older context's: dropped
    case MCL__SM_CLOSE: {
        mcl__smsg a = {.type = MCL__SM_CLOSED, .sid = st->sid};
        st_send(st, &a, NULL, 0);
        streamer_remove(st);
        break;
    }
    case MCL__SM_FAIL:
        streamer_remove(st);
        break;
    default:
        st_fail(st, "a message of type %d for the streamer", m->type);
        break;
    }
}

static void
binding_tick(mcl_reactor *r, mcl_handle t, void *user);

// One-way messages of a connection's channel (reactor thread).
static void
on_message(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
           size_t len, void *user)
{
    (void)ps;
    (void)channel;
    (void)flags;
    mux *mx = user;
    if (len < MCL__SW_HDR)
        return; // (counted by nobody: too short to say whose it is)
    uint32_t sid = mcl__get_be32(payload);
    bool to_peer = type == MCL__SM_WLIMIT || type == MCL__SM_PUSH || type == MCL__SM_POS ||
                   type == MCL__SM_CTXERR || type == MCL__SM_CLOSED || type == MCL__SM_SFAIL;
    mcl__smsg m;
    char why[160];
    if (to_peer) {
        mcl_stream *s = mcl__u64map_get(&mx->peers, sid);
        if (s == NULL)
            return; // a stream gone already
        if (mcl__smsg_decode((int)type, payload, len, s->kind == MCL_STREAM_ENTITIES, &m, why,
                             sizeof(why)) != MCL_OK) {
            unsigned ev = 0;
            pthread_mutex_lock(&s->lock);
            fail_locked(s, true, &ev, "a malformed message: %s", why);
            pthread_mutex_unlock(&s->lock);
            run_observer(s, ev);
            return;
        }
        peer_message(s, &m);
        return;
    }
    binding *b = mx->srv;
    streamer *st = b != NULL ? mcl__u64map_get(&b->streamers, sid) : NULL;
    if (st == NULL)
        return; // closed already (a late credit), or a stranger's: dropped
    if (mcl__smsg_decode((int)type, payload, len, st->kind == MCL_STREAM_ENTITIES, &m, why,
                         sizeof(why)) != MCL_OK) {
        st_fail(st, "a malformed message: %s", why);
        return;
    }
    if (type == MCL__SM_LIMIT || type == MCL__SM_READ || type == MCL__SM_WRITE ||
        type == MCL__SM_WPUSH || type == MCL__SM_TRUNC || type == MCL__SM_CLOSE ||
        type == MCL__SM_FAIL)
        st_message(st, &m);
    else
        st_fail(st, "a message of type %u for the streamer", (unsigned)type);
}

// --- OPEN and LIST (requests, reactor thread) ----------------------------------------------------

static bool
take_offer(mcl_stream_server *srv, const char *name, mcl_stream_source *src, mcl_err *rv)
{
    pthread_mutex_lock(&srv->lock);
    offer *o = srv->offers;
    while (o != NULL && strcmp(o->name, name) != 0)
        o = o->next;
    if (o != NULL) {
        if (o->taken) {
            *rv = MCL_EALREADY;
        } else {
            o->taken = true;
            *src = o->src;
            o->src.ops = NULL;
            *rv = MCL_OK;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    return o != NULL;
}

static void
on_open(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    binding *b = user;
    mcl_stream_server *srv = b->srv;
    size_t len;
    const void *p = mcl_pstream_request_payload(rq, &len);
    mcl__sopen q;
    char why[MCL__SW_TEXT_MAX + 160], name[MCL__SW_TEXT_MAX + 1], params[MCL__SW_TEXT_MAX + 1];
    if (mcl__sopen_decode_req(p, len, &q, why, sizeof(why)) != MCL_OK) {
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_INVALID_ARGUMENT, 0, NULL, 0, why);
        return;
    }
    memcpy(name, q.name, q.namelen);
    name[q.namelen] = '\0';
    memcpy(params, q.params, q.paramslen);
    params[q.paramslen] = '\0';
    if (strlen(name) != q.namelen || strlen(params) != q.paramslen) {
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_INVALID_ARGUMENT, 0, NULL, 0,
                                "a name or params with NUL");
        return;
    }
    if (mcl__u64map_get(&b->streamers, q.sid) != NULL) {
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_ALREADY_EXISTS, 0, NULL, 0,
                                "a stream with this id is open");
        return;
    }
    pthread_mutex_lock(&srv->lock);
    bool full = b->streamers.n >= srv->o.max_streams;
    pthread_mutex_unlock(&srv->lock);
    if (full) {
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, 0, NULL, 0,
                                "too many streams open on this connection");
        return;
    }
    mcl_stream_source src = {0};
    mcl_err rv = MCL_ENOENT;
    if (!take_offer(srv, name, &src, &rv) && srv->resolve != NULL)
        rv = srv->resolve(srv->user, name, params, &src);
    if (rv == MCL_OK && (src.ops == NULL || src.ops->read == NULL || src.ops->bounds == NULL ||
                         src.ops->mode == NULL ||
                         (src.ops->kind != MCL_STREAM_BYTES && src.ops->kind != MCL_STREAM_ENTITIES)))
        rv = MCL_EINVAL;
    if (rv != MCL_OK) {
        if (src.ops != NULL && src.ops->close != NULL)
            src.ops->close(src.self);
        snprintf(why, sizeof(why), "%s: %s", name,
                 rv == MCL_ENOENT ? "no such stream" : mcl_strerror(rv));
        (void)mcl_pstream_reply(rq, err_status(rv), 0, NULL, 0, why);
        return;
    }
    unsigned mode = src.ops->mode(src.self) & 0xffff;
    if ((mode & q.mode) != q.mode || !(mode & (MCL_STREAM_READABLE | MCL_STREAM_WRITABLE))) {
        src.ops->close(src.self);
        snprintf(why, sizeof(why), "%s: the source has mode 0x%x, 0x%x required", name, mode,
                 (unsigned)q.mode);
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_FAILED_PRECONDITION, 0, NULL, 0, why);
        return;
    }
    streamer *st = mcl__zalloc(sizeof(*st));
    if (st == NULL || mcl__u64map_put(&b->streamers, q.sid, st) != MCL_OK) {
        mcl__free(st);
        src.ops->close(src.self);
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, 0, NULL, 0, "out of memory");
        return;
    }
    st->b = b;
    st->sid = q.sid;
    st->src = src;
    st->kind = src.ops->kind;
    st->mode = mode;
    st->refs = 1;
    uint64_t maxw = st->kind == MCL_STREAM_BYTES ? srv->o.max_window : srv->o.max_window / 256;
    uint64_t defw = st->kind == MCL_STREAM_BYTES ? DEFAULT_WINDOW_BYTES : DEFAULT_WINDOW_ELEMS;
    st->window = q.window == UINT64_MAX ? defw : q.window;
    if (st->window > maxw)
        st->window = maxw;
    if (st->window == 0)
        st->window = 1;
    st->max_pushes = q.max_pushes < srv->o.max_pushes ? q.max_pushes : srv->o.max_pushes;
    st->max_push = q.max_push < srv->o.max_push ? q.max_push : (uint32_t)srv->o.max_push;
    if (st->max_push < 256)
        st->max_push = 256;
    pthread_mutex_lock(&srv->lock);
    st->fz = srv->fz_proto;
    srv->fz_proto.rng += 0x9E3779B97F4A7C15ULL; // each streamer its own sequence
    srv->streams++;
    pthread_mutex_unlock(&srv->lock);
    mcl__sink_init(&st->sink, st->kind, st->max_push, 0);
    uint64_t s0, e0;
    src.ops->bounds(src.self, &s0, &e0);
    st->lastpos = s0;
    const char *info = src.ops->info ? src.ops->info(src.self) : NULL;
    mcl__sopen a = {.sid = q.sid,
                    .kind = (uint8_t)st->kind,
                    .mode = mode,
                    .window = st->window,
                    .max_pushes = st->max_pushes,
                    .max_push = st->max_push,
                    .start = s0,
                    .end = e0 < s0 ? s0 : e0,
                    .info = (const uint8_t *)info,
                    .infolen = info ? strlen(info) : 0};
    if (a.infolen > MCL__SW_INFO_MAX)
        a.infolen = MCL__SW_INFO_MAX; // (cut at a byte: may split a UTF-8 character; see below)
    while (a.infolen > 0 && a.infolen < (info ? strlen(info) : 0) &&
           (info[a.infolen] & 0xC0) == 0x80)
        a.infolen--;
    uint8_t ans[MCL__SW_INFO_MAX + 64];
    size_t an = mcl__sopen_encode_ans(&a, ans, sizeof(ans));
    (void)mcl_pstream_reply(rq, MCL_PSTREAM_OK, 0, ans, an, NULL);
}

typedef struct list_ctx {
    uint8_t *buf;
    size_t len, cap;
    bool nomem;
} list_ctx;

static void
list_add(void *ctx, const char *name, const char *info)
{
    list_ctx *c = ctx;
    size_t nl = name ? strlen(name) : 0, il = info ? strlen(info) : 0;
    if (nl == 0 || nl > MCL__SW_TEXT_MAX || il > MCL__SW_INFO_MAX)
        return;
    size_t need = 4 + nl + il;
    if (c->len + need > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        while (cap < c->len + need)
            cap *= 2;
        uint8_t *b = mcl__realloc(c->buf, cap);
        if (b == NULL) {
            c->nomem = true;
            return;
        }
        c->buf = b;
        c->cap = cap;
    }
    mcl__put_be16(c->buf + c->len, (uint16_t)nl);
    memcpy(c->buf + c->len + 2, name, nl);
    c->len += 2 + nl;
    mcl__put_be16(c->buf + c->len, (uint16_t)il);
    if (il)
        memcpy(c->buf + c->len + 2, info, il);
    c->len += 2 + il;
}

static void
on_list(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    binding *b = user;
    mcl_stream_server *srv = b->srv;
    list_ctx c = {0};
    pthread_mutex_lock(&srv->lock);
    for (offer *o = srv->offers; o != NULL; o = o->next)
        if (!o->taken)
            list_add(&c, o->name, "offered=1");
    pthread_mutex_unlock(&srv->lock);
    if (srv->list != NULL)
        srv->list(srv->user, list_add, &c);
    if (c.nomem)
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, 0, NULL, 0, "out of memory");
    else
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_OK, 0, c.buf, c.len, NULL);
    mcl__free(c.buf);
}

// --- bindings ------------------------------------------------------------------------------------

static void
each_streamer_collect(uint64_t key, void *val, void *arg)
{
    (void)key;
    streamer ***pp = arg;
    *(*pp)++ = val;
}

// Removes every streamer of b (telling their peers when tell).
static void
binding_clear(binding *b, bool tell)
{
    size_t n = b->streamers.n;
    if (n == 0)
        return;
    streamer **all = mcl__alloc(n * sizeof(*all)), **p = all;
    if (all == NULL) { // no memory for the list: remove them one at a time
        while (b->streamers.n > 0) {
            streamer *one = NULL, **q = &one;
            for (size_t i = 0; i < b->streamers.cap && one == NULL; i++)
                if (b->streamers.vals[i] != NULL)
                    each_streamer_collect(0, b->streamers.vals[i], &q);
            if (tell)
                st_fail(one, "the server is closing");
            else
                streamer_remove(one);
        }
        return;
    }
    mcl__u64map_each(&b->streamers, each_streamer_collect, &p);
    for (size_t i = 0; i < n; i++) {
        if (tell)
            st_fail(all[i], "the server is closing");
        else
            streamer_remove(all[i]);
    }
    mcl__free(all);
}

static void
binding_remove(binding *b)
{
    binding_clear(b, mcl_pstream_is_open(b->ps));
    (void)mcl_reactor_remove(b->r, b->tick);
    (void)mcl_pstream_handle(b->ps, b->mx->channel, MCL__SM_OPEN, NULL, NULL);
    (void)mcl_pstream_handle(b->ps, b->mx->channel, MCL__SM_LIST, NULL, NULL);
    b->mx->srv = NULL;
    mux_put(b->mx);
    mcl_stream_server *srv = b->srv;
    pthread_mutex_lock(&srv->lock);
    for (binding **pp = &srv->bindings; *pp != NULL; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    pthread_mutex_unlock(&srv->lock);
    mcl__u64map_fini(&b->streamers);
    if (b->ref)
        mcl_pstream_unref(b->ps);
    mcl__free(b);
}

static void
each_tick(uint64_t key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    streamer *st = val;
    faults_flush(st->b->ps, st->b->mx->channel, &st->fz);
    if (st->dir == DIR_WRITE && (!st->wrx_since_tick || st->done_sent != st->wrecv)) {
        if (st->done_sent != st->wrecv)
            st->wlseq++; // news: a new credit message
        st_send_wlimit(st);
    }
    st->wrx_since_tick = false;
}

static void
binding_tick(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    binding *b = user;
    if (!mcl_pstream_is_open(b->ps)) {
        binding_remove(b);
        return;
    }
    mcl__u64map_each(&b->streamers, each_tick, NULL);
}

typedef struct bind_arg {
    mcl_stream_server *srv;
    mcl_pstream *ps;
    bool ref;
    mcl_err rv;
} bind_arg;

static void
binding_add(mcl_reactor *r, void *arg)
{
    bind_arg *a = arg;
    mux *mx;
    if ((a->rv = mux_get(a->ps, a->srv->o.channel, r, &mx)) != MCL_OK)
        return;
    if (mx->srv != NULL) {
        a->rv = MCL_EALREADY;
        if (mx->users == 0)
            mux_put((mx->users++, mx));
        return;
    }
    binding *b = mcl__zalloc(sizeof(*b));
    if (b == NULL) {
        a->rv = MCL_ENOMEM;
        if (mx->users == 0)
            mux_put((mx->users++, mx));
        return;
    }
    b->srv = a->srv;
    b->mx = mx;
    b->ps = a->ps;
    b->r = r;
    mcl__u64map_init(&b->streamers);
    mx->users++;
    mx->srv = b;
    if ((a->rv = mcl_pstream_handle(a->ps, mx->channel, MCL__SM_OPEN, on_open, b)) != MCL_OK ||
        (a->rv = mcl_pstream_handle(a->ps, mx->channel, MCL__SM_LIST, on_list, b)) != MCL_OK ||
        (a->rv = mcl_reactor_timer(r, a->srv->o.heartbeat_ms, a->srv->o.heartbeat_ms, 0,
                                   binding_tick, b, &b->tick)) != MCL_OK) {
        (void)mcl_pstream_handle(a->ps, mx->channel, MCL__SM_OPEN, NULL, NULL);
        (void)mcl_pstream_handle(a->ps, mx->channel, MCL__SM_LIST, NULL, NULL);
        mx->srv = NULL;
        mux_put(mx);
        mcl__u64map_fini(&b->streamers);
        mcl__free(b);
        return;
    }
    b->ref = a->ref;
    pthread_mutex_lock(&a->srv->lock);
    b->next = a->srv->bindings;
    a->srv->bindings = b;
    pthread_mutex_unlock(&a->srv->lock);
}

// --- servers -------------------------------------------------------------------------------------

mcl_err
mcl_stream_server_new(mcl_stream_server **sp, mcl_stream_resolve_fn resolve,
                      mcl_stream_list_fn list, void *user, const mcl_stream_server_options *o)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL)
        return MCL_EINVAL;
    mcl_stream_server *srv = mcl__zalloc(sizeof(*srv));
    if (srv == NULL)
        return MCL_ENOMEM;
    if (o != NULL)
        srv->o = *o;
    if (srv->o.follow_ms < 0 || srv->o.heartbeat_ms < 0) {
        mcl__free(srv);
        return MCL_EINVAL;
    }
    if (srv->o.channel == 0)
        srv->o.channel = MCL_STREAM_CHANNEL;
    if (srv->o.max_window == 0)
        srv->o.max_window = 16u << 20;
    if (srv->o.max_pushes == 0)
        srv->o.max_pushes = 64;
    if (srv->o.max_push == 0)
        srv->o.max_push = 1u << 20;
    if (srv->o.max_push > UINT32_MAX)
        srv->o.max_push = UINT32_MAX;
    if (srv->o.max_streams == 0)
        srv->o.max_streams = 64;
    if (srv->o.follow_ms == 0)
        srv->o.follow_ms = 50;
    if (srv->o.heartbeat_ms == 0)
        srv->o.heartbeat_ms = DEFAULT_HEARTBEAT_MS;
    pthread_mutex_init(&srv->lock, NULL);
    srv->resolve = resolve;
    srv->list = list;
    srv->user = user;
    *sp = srv;
    return MCL_OK;
}

mcl_err
mcl_stream_server_offer(mcl_stream_server *srv, const char *name, const mcl_stream_source *src)
{
    if (src == NULL || src->ops == NULL)
        return MCL_EINVAL;
    if (srv == NULL || name == NULL || name[0] == '\0' || strlen(name) > MCL__SW_TEXT_MAX) {
        if (src->ops->close)
            src->ops->close(src->self);
        return MCL_EINVAL;
    }
    offer *o = mcl__zalloc(sizeof(*o));
    if (o == NULL || (o->name = mcl__strdup(name)) == NULL) {
        mcl__free(o);
        if (src->ops->close)
            src->ops->close(src->self);
        return MCL_ENOMEM;
    }
    o->src = *src;
    pthread_mutex_lock(&srv->lock);
    for (offer *x = srv->offers; x != NULL; x = x->next)
        if (strcmp(x->name, name) == 0) {
            pthread_mutex_unlock(&srv->lock);
            mcl__free(o->name);
            mcl__free(o);
            if (src->ops->close)
                src->ops->close(src->self);
            return MCL_EEXIST;
        }
    o->next = srv->offers;
    srv->offers = o;
    pthread_mutex_unlock(&srv->lock);
    return MCL_OK;
}

static mcl_err
serve(mcl_stream_server *srv, mcl_pstream *ps, mcl_reactor *r, bool ref)
{
    bind_arg a = {.srv = srv, .ps = ps, .ref = ref};
    mcl_err rv = mcl_reactor_call(r, binding_add, &a);
    return rv != MCL_OK ? rv : a.rv;
}

mcl_err
mcl_stream_serve(mcl_stream_server *srv, mcl_pstream *ps, mcl_reactor *r)
{
    if (srv == NULL || ps == NULL || r == NULL)
        return MCL_EINVAL;
    mcl_pstream_ref(ps); // the binding's: its memory stays valid whoever frees it first
    mcl_err rv = serve(srv, ps, r, true);
    if (rv != MCL_OK)
        mcl_pstream_unref(ps);
    return rv;
}

static void
on_accept(mcl_pstream_server *psrv, mcl_pstream *ps, void *user)
{
    (void)psrv;
    mcl_stream_server *srv = user;
    mcl_pstream_ref(ps);
    bind_arg a = {.srv = srv, .ps = ps, .ref = true};
    binding_add(srv->r, &a); // (the server's thread is the reactor's)
    if (a.rv != MCL_OK) {
        mcl__log(MCL_LOG_WARN, "stream", "%s: a connection not served: %s",
                 mcl_pstream_url(ps), mcl_strerror(a.rv));
        mcl_pstream_unref(ps);
        (void)mcl_pstream_shutdown(ps);
    }
}

mcl_err
mcl_stream_server_listen(mcl_stream_server *srv, const char *url)
{
    if (srv == NULL || url == NULL)
        return MCL_EINVAL;
    if (srv->psrv != NULL)
        return MCL_EALREADY;
    mcl_err rv = mcl_reactor_new(&srv->r, NULL);
    if (rv == MCL_OK)
        rv = mcl_pstream_server_open(&srv->psrv, url, NULL, on_accept, srv);
    if (rv == MCL_OK)
        rv = mcl_pstream_server_attach(srv->psrv, srv->r);
    if (rv == MCL_OK)
        rv = mcl_reactor_start(srv->r);
    if (rv != MCL_OK) {
        mcl_pstream_server_free(srv->psrv, 0);
        mcl_reactor_free(srv->r);
        srv->psrv = NULL;
        srv->r = NULL;
    }
    return rv;
}

const char *
mcl_stream_server_url(const mcl_stream_server *srv)
{
    return srv && srv->psrv ? mcl_pstream_server_url(srv->psrv) : "";
}

size_t
mcl_stream_server_streams(const mcl_stream_server *csrv)
{
    if (csrv == NULL)
        return 0;
    mcl_stream_server *srv = (mcl_stream_server *)(uintptr_t)csrv;
    pthread_mutex_lock(&srv->lock);
    size_t n = srv->streams;
    pthread_mutex_unlock(&srv->lock);
    return n;
}

typedef struct unbind_arg {
    mcl_stream_server *srv;
    binding *b;
} unbind_arg;

// On b's reactor: b may have gone meanwhile (its connection ended): only a binding still on
// the server's list is removed.
static void
unbind_one(mcl_reactor *r, void *arg)
{
    (void)r;
    unbind_arg *a = arg;
    pthread_mutex_lock(&a->srv->lock);
    binding *x = a->srv->bindings;
    while (x != NULL && x != a->b)
        x = x->next;
    pthread_mutex_unlock(&a->srv->lock);
    if (x != NULL)
        binding_remove(x);
}

void
mcl_stream_server_free(mcl_stream_server *srv)
{
    if (srv == NULL)
        return;
    // Each binding goes on its own reactor's thread; a listening server stops accepting
    // (and ends its connections) in between, then drops what was accepted meanwhile.
    for (int round = 0; round < 2; round++) {
        for (;;) {
            pthread_mutex_lock(&srv->lock);
            binding *b = srv->bindings;
            mcl_reactor *r = b ? b->r : NULL;
            pthread_mutex_unlock(&srv->lock);
            if (b == NULL)
                break;
            unbind_arg ua = {srv, b};
            if (mcl_reactor_call(r, unbind_one, &ua) != MCL_OK)
                binding_remove(b); // its reactor is not running: nothing else touches it
        }
        if (round == 0 && srv->psrv != NULL)
            mcl_pstream_server_free(srv->psrv, 1000);
    }
    mcl_reactor_free(srv->r);
    for (offer *o = srv->offers, *n; o != NULL; o = n) {
        n = o->next;
        if (o->src.ops != NULL && o->src.ops->close != NULL)
            o->src.ops->close(o->src.self);
        mcl__free(o->name);
        mcl__free(o);
    }
    pthread_mutex_destroy(&srv->lock);
    mcl__free(srv);
}

void
mcl__stream_server_set_faults(mcl_stream_server *srv, const mcl__stream_faults *f)
{
    pthread_mutex_lock(&srv->lock);
    faults_set(&srv->fz_proto, f);
    pthread_mutex_unlock(&srv->lock);
}

// --- listing -------------------------------------------------------------------------------------

mcl_err
mcl_stream_list(const char *url, void (*cb)(void *user, const char *name, const char *info),
                void *user, int timeout_ms)
{
    if (url == NULL || cb == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    mcl_pstream *ps;
    mcl_pstream_options po = {.timeout_ms = timeout_ms > 0 ? timeout_ms : 0};
    mcl_err rv = mcl_pstream_dial(&ps, url, &po);
    if (rv != MCL_OK)
        return rv;
    mcl_pstream_result *res = NULL;
    rv = mcl_pstream_call(ps, MCL_STREAM_CHANNEL, MCL__SM_LIST, 0, NULL, 0,
                          timeout_ms == 0 ? DEFAULT_TIMEOUT_MS : timeout_ms, &res);
    if (rv == MCL_OK && res->status != MCL_PSTREAM_OK) {
        rv = mcl__fail(status_err(res->status), NULL, 0, "stream", "%s: list: %s %s", url,
                       mcl_pstream_status_name(res->status), res->message);
    } else if (rv == MCL_OK) {
        char why[128];
        if (mcl__slist_decode(res->payload, res->len, NULL, NULL, why, sizeof(why)) != MCL_OK)
            rv = mcl__fail(MCL_EPROTO, NULL, 0, "stream", "%s: list: %s", url, why);
        else
            (void)mcl__slist_decode(res->payload, res->len, cb, user, why, sizeof(why));
    }
    mcl_pstream_result_free(res);
    (void)mcl_pstream_close(ps, 500);
    mcl_pstream_free(ps);
    return rv;
}
