// SPDX-License-Identifier: BSD-3-Clause
// The channel broker (docs/broker.md). Everything runs on the broker's reactor thread: the
// packet-stream server's connections, the RPC service's handlers (control), the data-plane
// messages and the timers; only the counts behind mcl_broker_channels()/_clients() are read
// from other threads (under `lock`).
//
// A frame is stored once (reference-counted) however many readers hold it. A reader's buffer
// is a ring of frame references; what the credit of its window allows is sent at once, the rest
// waits there under the reader's overrun policy. Writers put within credit; a BLOCK reader
// whose buffer is full withholds credit from every writer of its channel until it drains.
#define _GNU_SOURCE
#include <mcl/broker.h>
#include <mcl/connection.h>
#include <mcl/pstream.h>
#include <mcl/raw.h>
#include <mcl/reactor.h>
#include <mcl/rpc.h>

#include "../core/internal.h"
#include "../core/u64map.h"
#include "../pstream/pstream_int.h"
#include "bwire.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NAME_MAX_ 255
#define KEY_MAX 255

// A connection's share of the memory bound (docs/broker.md, Limits): output waiting for it,
// and the largest packet it may send (a put, a control call, a relayed call or answer).
#define CONN_QUEUE ((size_t)4 << 20)
#define CONN_PACKET ((size_t)4 << 20)

typedef struct frame {
    unsigned refs;
    bool mark; // an end-of-transfer mark: never decimated or dropped by a policy
    uint64_t seq;
    size_t len;
    uint8_t data[];
} frame;

typedef struct conn conn;
typedef struct chan chan;

typedef struct reader {
    struct reader *next; // in its channel
    conn *c;
    chan *ch;
    uint32_t id;
    mcl_broker_policy policy;
    uint32_t cap, every, window;
    double rate;
    int64_t next_ok_ns;
    frame **q; // ring: qcap slots, n from head
    uint32_t qcap, head, n;
    size_t qbytes; // bytes of the frames in the ring
    uint64_t sent, acked;
    uint64_t offered, delivered, dropped, decimated, bytes;
    uint32_t high_water;
    bool stalled; // the connection's send queue was full
    bool dirty;   // frames came since the last pump: pumped by the flush after this round
    struct reader *dirty_next; // the broker's list of dirty readers
    mcl_raw_broadcaster *out; // a bridge out: frames republished there (c is NULL)
} reader;

typedef struct writer {
    struct writer *next; // in its channel
    conn *c;
    chan *ch;
    uint32_t id;
    uint64_t accepted, limit;
    uint64_t over_credit;
} writer;

struct chan {
    chan *next;
    char name[NAME_MAX_ + 1];
    bool priv, multi, keep;
    char key[KEY_MAX + 1];
    int lifetime_ms;
    int64_t idle_since;
    conn *owner;
    reader *readers;
    unsigned nreaders;
    writer *writers;
    unsigned nwriters;
    uint64_t seq, offered, dropped, bytes, unread, over_credit;
    bool blocked;
};

struct conn {
    conn *next;
    mcl_pstream *ps;
    uint32_t id;
    char name[64];
    bool gone;
};

// A client's RPC service offered to the others under a name: requests on its relay channel, from
// any other client, are forwarded to it on the same channel and its answers back.
typedef struct relsvc {
    struct relsvc *next;
    char name[NAME_MAX_ + 1];
    uint32_t channel;
    conn *c;
} relsvc;

// A bridge in: a listener whose messages feed a channel.
typedef struct bridge_in {
    struct bridge_in *next;
    mcl_broker *b;
    char chan[NAME_MAX_ + 1];
    mcl_raw_listener *l;
    mcl_handle h;
} bridge_in;

struct mcl_broker {
    mcl_broker_options o;
    bridge_in *bins;
    uint64_t *out_ids; // the publisher ids of the bridges out (never removed before the end)
    size_t nout_ids;
    relsvc *svcs;
    uint32_t next_relay;
    uint64_t relayed, no_responder;
    mcl_reactor *r;
    mcl_pstream_server *psrv;
    mcl_rpc_service *svc;
    chan *chans;
    conn *conns;
    mcl__u64map readers, writers; // id -> reader, writer
    uint32_t next_id;
    mcl_handle tick, stats_t;
    chan *stats;  // the statistics channel (the broker writes it)
    chan *events; // the events channel: channels made and removed (the broker writes it)
    bool stopping; // (no events while everything goes)
    bool retry_armed;
    mcl_handle retry;
    uint8_t *batch; // a DELIVERN being built
    size_t batch_cap;
    bool flush_posted; // a flush of dirty readers is posted
    struct reader *dirty; // readers to pump at the flush (each once)
    pthread_mutex_t lock; // the two counts below
    size_t nchans, nconns;
    uint64_t temporary_removed;
};

// --- helpers -------------------------------------------------------------------------------------

static int64_t
now_ns(void)
{
    return mcl__mono_ns();
}

static void
counts(mcl_broker *b, int dch, int dconn)
{
    pthread_mutex_lock(&b->lock);
    b->nchans = (size_t)((long)b->nchans + dch);
    b->nconns = (size_t)((long)b->nconns + dconn);
    pthread_mutex_unlock(&b->lock);
}

static void
frame_unref(frame *f)
{
    if (f != NULL && --f->refs == 0)
        mcl__free(f);
}

static void
send_msg(conn *c, const mcl__bmsg *m, const void *data, size_t len)
{
    uint8_t h[16];
    size_t hn = mcl__bmsg_encode(m, h);
    (void)mcl__pstream_send2(c->ps, MCL_BROKER_DATA_CHANNEL, (uint32_t)m->type, 0, h, hn, data,
                             len);
}

static void
send_ended(conn *c, uint32_t id, int what, const char *why)
{
    mcl__bmsg m = {.type = MCL__BM_ENDED, .id = id, .flag = (uint8_t)what};
    send_msg(c, &m, why, strlen(why));
}

static uint32_t
new_id(mcl_broker *b)
{
    uint32_t id;
    do
        id = ++b->next_id;
    while (id == 0 || mcl__u64map_get(&b->readers, id) || mcl__u64map_get(&b->writers, id));
    return id;
}

static chan *
find_chan(mcl_broker *b, const char *name)
{
    for (chan *ch = b->chans; ch != NULL; ch = ch->next)
        if (strcmp(ch->name, name) == 0)
            return ch;
    return NULL;
}

static conn *
conn_of(mcl_broker *b, mcl_pstream *ps)
{
    for (conn *c = b->conns; c != NULL; c = c->next)
        if (c->ps == ps && !c->gone)
            return c;
    return NULL;
}

// --- writers: gating and credit ------------------------------------------------------------------

static void
tell_active(chan *ch)
{
    for (writer *w = ch->writers; w != NULL; w = w->next) {
        mcl__bmsg m = {.type = MCL__BM_ACTIVE, .id = w->id, .flag = ch->nreaders > 0};
        send_msg(w->c, &m, NULL, 0);
    }
}

static void
grant(mcl_broker *b, writer *w, bool force)
{
    if (w->ch->blocked)
        return;
    uint64_t lim = w->accepted + b->o.writer_credit;
    uint64_t step = b->o.writer_credit / 2 ? b->o.writer_credit / 2 : 1;
    if (lim > w->limit && (force || lim >= w->limit + step)) {
        w->limit = lim;
        mcl__bmsg m = {.type = MCL__BM_CREDIT, .id = w->id, .num = lim};
        send_msg(w->c, &m, NULL, 0);
    }
}

static bool q_full(const mcl_broker *b, const reader *r, size_t more);

// Whether a BLOCK reader of ch has a full buffer; when that ends, the writers get credit.
static void
update_blocked(mcl_broker *b, chan *ch)
{
    bool blocked = false;
    for (reader *r = ch->readers; r != NULL && !blocked; r = r->next)
        blocked = r->policy == MCL_BROKER_BLOCK && q_full(b, r, 0);
    bool was = ch->blocked;
    ch->blocked = blocked;
    if (was && !blocked)
        for (writer *w = ch->writers; w != NULL; w = w->next)
            grant(b, w, true);
}

// --- readers -------------------------------------------------------------------------------------

static void arm_retry(mcl_broker *b);

static frame *
q_pop(reader *r)
{
    frame *f = r->q[r->head];
    r->head = (r->head + 1) % r->qcap;
    r->n--;
    r->qbytes -= f->len;
    return f;
}

// Drops the oldest frame that is not a mark (marks pass through); false when there is none.
static bool
q_drop_oldest_data(reader *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        uint32_t at = (r->head + i) % r->qcap;
        frame *f = r->q[at];
        if (f->mark)
            continue;
        for (uint32_t k = i; k > 0; k--) // close the gap: the marks before it move up one
            r->q[(r->head + k) % r->qcap] = r->q[(r->head + k - 1) % r->qcap];
        r->head = (r->head + 1) % r->qcap;
        r->n--;
        r->qbytes -= f->len;
        frame_unref(f);
        return true;
    }
    return false;
}

// Whether the reader's buffer is full: its frames, or its bytes (max_reader_bytes).
static bool
q_full(const mcl_broker *b, const reader *r, size_t more)
{
    return r->n >= r->cap || r->qbytes + more > b->o.max_reader_bytes;
}

static bool
q_push(reader *r, frame *f)
{
    if (r->n == r->qcap) {
        uint32_t ncap = r->qcap ? r->qcap * 2 : 16;
        frame **nq = mcl__alloc(ncap * sizeof(*nq));
        if (nq == NULL)
            return false;
        for (uint32_t i = 0; i < r->n; i++)
            nq[i] = r->q[(r->head + i) % r->qcap];
        mcl__free(r->q);
        r->q = nq;
        r->qcap = ncap;
        r->head = 0;
    }
    r->q[(r->head + r->n) % r->qcap] = f;
    r->n++;
    r->qbytes += f->len;
    f->refs++;
    if (r->n > r->high_water)
        r->high_water = r->n;
    return true;
}

// Sends what the reader's window allows.
static void
pump(mcl_broker *b, reader *r)
{
    bool was_full = r->policy == MCL_BROKER_BLOCK && q_full(b, r, 0);
    while (r->out != NULL && r->n > 0) { // a bridge: republished at once
        frame *f = q_pop(r);
        if (f->mark) { // (a multicast group has no transfers)
            frame_unref(f);
            continue;
        }
        if (mcl_raw_broadcaster_publish(r->out, r->ch->name, f->data, f->len) == MCL_OK) {
            r->delivered++;
            r->bytes += f->len;
        } else {
            r->dropped++; // (the bridge's network refused it: counted)
        }
        frame_unref(f);
    }
    while (r->n > 0 && r->sent - r->acked < r->window) {
        // Consecutive data frames go in one DELIVERN (up to 64 KiB or 256 frames): one
        // message, one wake-up of the reader, instead of one per frame.
        uint32_t k = 0;
        size_t bytes = 0;
        while (k < r->n && r->sent + k - r->acked < r->window && k < 256) {
            frame *f = r->q[(r->head + k) % r->qcap];
            if (f->mark || (k > 0 && bytes + 12 + f->len > 65536))
                break;
            bytes += 12 + f->len;
            k++;
        }
        frame *f0 = r->q[r->head];
        mcl_err rv;
        if (k >= 2) {
            if (bytes > b->batch_cap) {
                uint8_t *nb = mcl__realloc(b->batch, bytes);
                if (nb == NULL)
                    k = 1; // (no memory for a batch: one at a time)
                else {
                    b->batch = nb;
                    b->batch_cap = bytes;
                }
            }
        }
        if (k >= 2) {
            size_t o = 0;
            for (uint32_t i = 0; i < k; i++) {
                frame *f = r->q[(r->head + i) % r->qcap];
                mcl__put_be64(b->batch + o, f->seq);
                mcl__put_be32(b->batch + o + 8, (uint32_t)f->len);
                if (f->len)
                    memcpy(b->batch + o + 12, f->data, f->len);
                o += 12 + f->len;
            }
            mcl__bmsg m = {.type = MCL__BM_DELIVERN, .id = r->id, .num = k};
            uint8_t h[16];
            size_t hn = mcl__bmsg_encode(&m, h);
            rv = mcl__pstream_send2(r->c->ps, MCL_BROKER_DATA_CHANNEL, MCL__BM_DELIVERN, 0, h, hn,
                                    b->batch, o);
        } else {
            k = 1;
            mcl__bmsg m = {.type = f0->mark ? MCL__BM_MARK : MCL__BM_DELIVER, .id = r->id,
                           .num = f0->seq};
            uint8_t h[16];
            size_t hn = mcl__bmsg_encode(&m, h);
            rv = mcl__pstream_send2(r->c->ps, MCL_BROKER_DATA_CHANNEL, (uint32_t)m.type, 0, h, hn,
                                    f0->data, f0->len);
        }
        if (rv == MCL_EAGAIN) {
            r->stalled = true;
            arm_retry(b);
            break;
        }
        for (uint32_t i = 0; i < k; i++) {
            frame *f = q_pop(r);
            if (rv == MCL_OK) {
                r->sent++;
                r->delivered++;
                r->bytes += f->len;
            }
            frame_unref(f);
        }
    }
    if (was_full && !q_full(b, r, 0))
        update_blocked(b, r->ch);
}

static void reader_remove(mcl_broker *b, reader *r, const char *ended);

// Readers that got frames are pumped once the messages that arrived together are handled, so
// that consecutive frames leave in one DELIVERN.
static void
on_flush(mcl_reactor *rr, void *arg)
{
    (void)rr;
    mcl_broker *b = arg;
    b->flush_posted = false;
    for (reader *r; (r = b->dirty) != NULL;) { // (only the readers that got frames)
        b->dirty = r->dirty_next;
        r->dirty = false;
        pump(b, r);
    }
}

static void
mark_dirty(mcl_broker *b, reader *r)
{
    if (r->out != NULL) { // a bridge: at once
        pump(b, r);
        return;
    }
    if (!r->dirty) {
        r->dirty = true;
        r->dirty_next = b->dirty;
        b->dirty = r;
    }
    if (!b->flush_posted) {
        if (mcl_reactor_post(b->r, on_flush, b) == MCL_OK)
            b->flush_posted = true;
        else
            pump(b, r); // (no memory to post: now)
    }
}

// Offers frame f to reader r: decimation, then the buffer and its policy.
static void
offer(mcl_broker *b, reader *r, frame *f, int64_t now)
{
    if (f->mark) { // passes through: no decimation, no policy
        if (!q_push(r, f))
            r->dropped++;
        mark_dirty(b, r);
        return;
    }
    r->offered++;
    if (r->every > 1 && (r->offered - 1) % r->every != 0) {
        r->decimated++;
        return;
    }
    if (r->rate > 0) {
        if (now < r->next_ok_ns) {
            r->decimated++;
            return;
        }
        int64_t gap = (int64_t)(1e9 / r->rate);
        r->next_ok_ns = (r->next_ok_ns == 0 || now - r->next_ok_ns > gap) ? now + gap
                                                                            : r->next_ok_ns + gap;
    }
    if (q_full(b, r, f->len)) {
        switch (r->policy) {
        case MCL_BROKER_RING:
            while (r->n > 0 && q_full(b, r, f->len) && q_drop_oldest_data(r)) {
                r->dropped++;
                r->ch->dropped++;
            }
            break;
        case MCL_BROKER_DROP_NEW:
            r->dropped++;
            r->ch->dropped++;
            return;
        case MCL_BROKER_ERROR:
            r->dropped++;
            r->ch->dropped++;
            reader_remove(b, r, "its buffer overran (policy error)");
            return;
        case MCL_BROKER_BLOCK:
            break; // frames already credited: held beyond the buffer, never dropped
        }
    }
    if (!q_push(r, f)) {
        r->dropped++; // (out of memory: counted)
        r->ch->dropped++;
        return;
    }
    if (r->policy == MCL_BROKER_BLOCK && q_full(b, r, 0))
        r->ch->blocked = true;
    mark_dirty(b, r);
}

static void
reader_remove(mcl_broker *b, reader *r, const char *ended)
{
    chan *ch = r->ch;
    if (r->dirty) // (off the flush's list)
        for (reader **pp = &b->dirty; *pp != NULL; pp = &(*pp)->dirty_next)
            if (*pp == r) {
                *pp = r->dirty_next;
                break;
            }
    for (reader **pp = &ch->readers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    ch->nreaders--;
    mcl__u64map_del(&b->readers, r->id);
    if (ended != NULL && r->c != NULL && !r->c->gone)
        send_ended(r->c, r->id, MCL__BE_SUB, ended);
    while (r->n > 0)
        frame_unref(q_pop(r));
    mcl_raw_broadcaster_free(r->out);
    mcl__free(r->q);
    mcl__free(r);
    if (ch->nreaders == 0)
        tell_active(ch);
    update_blocked(b, ch);
}

static void
writer_remove(mcl_broker *b, writer *w, const char *ended)
{
    chan *ch = w->ch;
    for (writer **pp = &ch->writers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    ch->nwriters--;
    mcl__u64map_del(&b->writers, w->id);
    if (ended != NULL && !w->c->gone)
        send_ended(w->c, w->id, MCL__BE_WRITER, ended);
    mcl__free(w);
}

static void publish(mcl_broker *b, chan *ch, const void *data, size_t len);

// An event on the events channel (while someone reads it): a msgpack map {time_ns, event
// ("created", "adopted", "removed"), channel, private, temporary, client, reason}.
static void
announce(mcl_broker *b, const char *event, const chan *ch, const char *client, const char *why)
{
    chan *ev = b->events;
    if (ev == NULL || ev->nreaders == 0 || ch == ev || ch == b->stats)
        return;
    mcl_value *v = NULL;
    if (mcl_value_new(&v, MCL_TYPE_MAP) != MCL_OK)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    (void)mcl_value_put_int(v, "time_ns", (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    (void)mcl_value_put_str(v, "event", event);
    (void)mcl_value_put_str(v, "channel", ch->name);
    (void)mcl_value_put_bool(v, "private", ch->priv);
    (void)mcl_value_put_int(v, "lifetime_ms", ch->lifetime_ms);
    (void)mcl_value_put_str(v, "client", client != NULL ? client : "");
    (void)mcl_value_put_str(v, "reason", why != NULL ? why : "");
    void *buf = NULL;
    size_t len = 0;
    if (mcl_value_encode(v, &buf, &len) == MCL_OK) {
        ev->offered++;
        ev->bytes += len;
        publish(b, ev, buf, len);
    }
    mcl_free(buf);
    mcl_value_free(v);
}

static void
chan_remove(mcl_broker *b, chan *ch, const char *why)
{
    if (!b->stopping)
        announce(b, "removed", ch, ch->owner != NULL ? ch->owner->name : NULL, why);
    while (ch->readers != NULL)
        reader_remove(b, ch->readers, why);
    while (ch->writers != NULL)
        writer_remove(b, ch->writers, why);
    for (chan **pp = &b->chans; *pp != NULL; pp = &(*pp)->next)
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    mcl__free(ch);
    counts(b, -1, 0);
}

// A connection's send queue was full: pump the stalled readers again shortly.
static void
on_retry(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    mcl_broker *b = user;
    b->retry_armed = false;
    for (chan *ch = b->chans; ch != NULL; ch = ch->next)
        for (reader *rd = ch->readers; rd != NULL; rd = rd->next)
            if (rd->stalled) {
                rd->stalled = false;
                pump(b, rd);
            }
}

static void
arm_retry(mcl_broker *b)
{
    if (!b->retry_armed &&
        mcl_reactor_timer(b->r, 2, 0, 0, on_retry, b, &b->retry) == MCL_OK)
        b->retry_armed = true;
}

// --- the data plane ------------------------------------------------------------------------------

// One frame into channel ch: stored once, offered to every reader.
static void
publish(mcl_broker *b, chan *ch, const void *data, size_t len)
{
    frame *f = mcl__alloc(sizeof(*f) + len);
    if (f == NULL) {
        ch->dropped++;
        return;
    }
    f->refs = 1;
    f->mark = false;
    f->seq = ++ch->seq;
    f->len = len;
    if (len)
        memcpy(f->data, data, len);
    int64_t now = now_ns();
    for (reader *r = ch->readers, *next; r != NULL; r = next) {
        next = r->next; // (an ERROR overrun removes r)
        offer(b, r, f, now);
    }
    frame_unref(f);
}

// A frame a writer or a bridge puts into ch: counted, and published when someone reads.
static void
channel_put(mcl_broker *b, chan *ch, const void *data, size_t len)
{
    ch->offered++;
    ch->bytes += len;
    if (ch->nreaders == 0) {
        ch->unread++; // (in flight while the writer was told inactive, or from a bridge)
        return;
    }
    publish(b, ch, data, len);
}

static void
on_end(mcl_broker *b, conn *c, const mcl__bmsg *m)
{
    writer *w = mcl__u64map_get(&b->writers, m->id);
    if (w == NULL || w->c != c)
        return;
    chan *ch = w->ch;
    frame *f = mcl__zalloc(sizeof(*f));
    if (f == NULL) {
        ch->dropped++;
        return;
    }
    f->refs = 1;
    f->mark = true;
    f->seq = ch->seq; // the seq of the transfer's last frame
    for (reader *r = ch->readers; r != NULL; r = r->next)
        offer(b, r, f, 0);
    frame_unref(f);
}

static void
on_put(mcl_broker *b, conn *c, const mcl__bmsg *m)
{
    writer *w = mcl__u64map_get(&b->writers, m->id);
    if (w == NULL || w->c != c)
        return; // a writer closed meanwhile, or a stranger's id: dropped
    chan *ch = w->ch;
    if (w->accepted >= w->limit || m->len > b->o.max_frame) {
        w->over_credit++; // beyond its credit (or too large): dropped, counted
        ch->over_credit++;
        return;
    }
    w->accepted++;
    channel_put(b, ch, m->data, m->len);
    grant(b, w, false);
}

static void
on_data(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
        size_t len, void *user)
{
    (void)channel;
    (void)flags;
    mcl_broker *b = user;
    conn *c = conn_of(b, ps);
    if (c == NULL)
        return;
    mcl__bmsg m;
    if (mcl__bmsg_decode((int)type, payload, len, &m, NULL, 0) != MCL_OK)
        return; // garbage: dropped (the packet stream counts it as a message)
    if (type == MCL__BM_PUT) {
        on_put(b, c, &m);
    } else if (type == MCL__BM_END) {
        on_end(b, c, &m);
    } else if (type == MCL__BM_ACK) {
        reader *r = mcl__u64map_get(&b->readers, m.id);
        if (r != NULL && r->c == c && m.num > r->acked && m.num <= r->sent) {
            r->acked = m.num;
            pump(b, r);
        }
    }
}

// --- client-to-client RPC ------------------------------------------------------------------------

#define RELAY_BASE 0x10000u // relay channels: RELAY_BASE + n

typedef struct relay {
    mcl_pstream_request *rq; // the caller's request (answered once, by relay_done)
    mcl_pstream *to;         // the responder's connection
    uint64_t fid;            // the forwarded request
} relay;

static relsvc *
svc_by_channel(mcl_broker *b, uint32_t ch)
{
    for (relsvc *v = b->svcs; v != NULL; v = v->next)
        if (v->channel == ch)
            return v;
    return NULL;
}

static relsvc *
svc_by_name(mcl_broker *b, const char *name)
{
    for (relsvc *v = b->svcs; v != NULL; v = v->next)
        if (strcmp(v->name, name) == 0)
            return v;
    return NULL;
}

static void
relay_done(const mcl_pstream_result *r, void *user)
{
    relay *x = user;
    if (r->local) // the responder's connection ended, or the forward was cancelled
        (void)mcl_pstream_reply(x->rq, r->status == MCL_PSTREAM_CANCELLED ? MCL_PSTREAM_CANCELLED
                                                                          : MCL_PSTREAM_UNAVAILABLE,
                                0, NULL, 0,
                                r->status == MCL_PSTREAM_CANCELLED
                                    ? "cancelled"
                                    : "no responder: the responder disconnected");
    else
        (void)mcl_pstream_reply(x->rq, r->status, r->flags, r->payload, r->len,
                                r->message[0] ? r->message : NULL);
    mcl_pstream_unref(x->to);
    mcl__free(x);
}

static void
relay_cancel(mcl_pstream_request *rq, void *user)
{
    (void)rq;
    relay *x = user;
    (void)mcl_pstream_cancel(x->to, x->fid); // (its completion answers the caller)
}

// A request on a channel no handler of the broker's own takes: a relay channel, or nothing.
static void
on_relay(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    mcl_broker *b = user;
    relsvc *v = svc_by_channel(b, mcl_pstream_request_channel(rq));
    if (v == NULL) {
        b->no_responder++;
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_UNAVAILABLE, 0, NULL, 0,
                                "no responder on this channel");
        return;
    }
    relay *x = mcl__zalloc(sizeof(*x));
    if (x == NULL) {
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, 0, NULL, 0, "out of memory");
        return;
    }
    x->rq = rq;
    x->to = v->c->ps;
    mcl_pstream_ref(x->to);
    size_t len;
    const void *p = mcl_pstream_request_payload(rq, &len);
    mcl_err rv = mcl_pstream_submit(x->to, v->channel, mcl_pstream_request_type(rq),
                                    mcl_pstream_request_flags(rq), p, len, 600000, relay_done, x,
                                    &x->fid);
    if (rv != MCL_OK) {
        mcl_pstream_unref(x->to);
        mcl__free(x);
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_UNAVAILABLE, 0, NULL, 0,
                                "no responder: its connection does not take requests");
        return;
    }
    b->relayed++;
    (void)mcl_pstream_request_on_cancel(rq, relay_cancel, x);
}

// --- connections ---------------------------------------------------------------------------------

static void
conn_remove(mcl_broker *b, conn *c)
{
    c->gone = true;
    for (relsvc **pp = &b->svcs; *pp != NULL;) {
        relsvc *v = *pp;
        if (v->c == c) {
            *pp = v->next;
            mcl__free(v);
        } else {
            pp = &v->next;
        }
    }
    for (chan *ch = b->chans, *nch; ch != NULL; ch = nch) {
        nch = ch->next;
        for (reader *r = ch->readers, *n; r != NULL; r = n) {
            n = r->next;
            if (r->c == c)
                reader_remove(b, r, NULL);
        }
        for (writer *w = ch->writers, *n; w != NULL; w = n) {
            n = w->next;
            if (w->c == c)
                writer_remove(b, w, NULL);
        }
        if (ch->owner == c) {
            if (ch->keep)
                ch->owner = NULL;
            else
                chan_remove(b, ch, "its creator disconnected");
        }
    }
    for (conn **pp = &b->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    (void)mcl_rpc_service_unserve(b->svc, c->ps, MCL_BROKER_RPC_CHANNEL);
    (void)mcl_pstream_handle_messages(c->ps, MCL_BROKER_DATA_CHANNEL, NULL, NULL);
    (void)mcl_pstream_handle(c->ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, NULL, NULL);
    mcl_pstream_unref(c->ps);
    mcl__free(c);
    counts(b, 0, -1);
}

static void
on_closed(mcl_pstream *ps, mcl_pstream_status why, void *user)
{
    (void)why;
    mcl_broker *b = user;
    conn *c = conn_of(b, ps);
    if (c != NULL)
        conn_remove(b, c);
}

static void
on_accept(mcl_pstream_server *srv, mcl_pstream *ps, void *user)
{
    (void)srv;
    mcl_broker *b = user;
    pthread_mutex_lock(&b->lock);
    bool full = b->nconns >= b->o.max_clients;
    pthread_mutex_unlock(&b->lock);
    conn *c = full ? NULL : mcl__zalloc(sizeof(*c));
    if (c == NULL) {
        (void)mcl_pstream_shutdown(ps);
        return;
    }
    c->ps = ps;
    c->id = new_id(b);
    snprintf(c->name, sizeof(c->name), "client");
    mcl_pstream_ref(ps);
    if (mcl_rpc_service_serve(b->svc, ps, MCL_BROKER_RPC_CHANNEL) != MCL_OK ||
        mcl_pstream_handle_messages(ps, MCL_BROKER_DATA_CHANNEL, on_data, b) != MCL_OK ||
        mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, on_relay, b) != MCL_OK ||
        mcl_pstream_on_closed(ps, on_closed, b) != MCL_OK) {
        (void)mcl_rpc_service_unserve(b->svc, ps, MCL_BROKER_RPC_CHANNEL);
        mcl_pstream_unref(ps);
        mcl__free(c);
        (void)mcl_pstream_shutdown(ps);
        return;
    }
    c->next = b->conns;
    b->conns = c;
    counts(b, 0, 1);
}

// Temporary channels nobody uses for their lifetime go.
static void
on_tick(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    mcl_broker *b = user;
    int64_t now = now_ns();
    for (chan *ch = b->chans, *n; ch != NULL; ch = n) {
        n = ch->next;
        if (ch->lifetime_ms <= 0)
            continue;
        if (ch->nreaders > 0 || ch->nwriters > 0) {
            ch->idle_since = 0;
        } else if (ch->idle_since == 0) {
            ch->idle_since = now;
        } else if (now - ch->idle_since >= (int64_t)ch->lifetime_ms * 1000000) {
            mcl__log(MCL_LOG_INFO, "broker", "temporary channel %s removed (unused for %d ms)",
                     ch->name, ch->lifetime_ms);
            b->temporary_removed++;
            chan_remove(b, ch, "its lifetime ended");
        }
    }
}

// --- control (RPC) -------------------------------------------------------------------------------

static const char *
arg_str(const mcl_value *args, const char *key, const char *def)
{
    const mcl_value *v = mcl_value_find(args, key);
    const char *s;
    size_t n;
    if (v == NULL || mcl_value_get_str(v, &s, &n) != MCL_OK || strlen(s) != n)
        return def;
    return s;
}

static int64_t
arg_int(const mcl_value *args, const char *key, int64_t def)
{
    const mcl_value *v = mcl_value_find(args, key);
    int64_t i;
    return v != NULL && mcl_value_get_int(v, &i) == MCL_OK ? i : def;
}

static bool
arg_bool(const mcl_value *args, const char *key)
{
    const mcl_value *v = mcl_value_find(args, key);
    bool x = false;
    return v != NULL && mcl_value_get_bool(v, &x) == MCL_OK && x;
}

static double
arg_double(const mcl_value *args, const char *key)
{
    const mcl_value *v = mcl_value_find(args, key);
    double d = 0;
    int64_t i;
    if (v != NULL && mcl_value_get_double(v, &d) != MCL_OK && mcl_value_get_int(v, &i) == MCL_OK)
        d = (double)i;
    return d;
}

static bool
name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NAME_MAX_)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20)
            return false;
    return true;
}

static conn *
caller(mcl_broker *b, mcl_rpc_req *call)
{
    conn *c = conn_of(b, mcl_rpc_req_stream(call));
    if (c == NULL)
        (void)mcl_rpc_fail(call, MCL_PSTREAM_FAILED_PRECONDITION, "not a broker connection");
    return c;
}

// A key check that takes the same time whatever the key's first wrong byte.
static bool
key_ok(const chan *ch, const char *key)
{
    if (!ch->priv)
        return true;
    size_t a = strlen(ch->key), k = key ? strlen(key) : 0;
    unsigned diff = (unsigned)(a ^ k);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned)(ch->key[i] ^ (i < k ? key[i] : 0));
    return diff == 0;
}

static void
m_hello(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    snprintf(c->name, sizeof(c->name), "%s", arg_str(args, "name", "client"));
    mcl_value *res = mcl_rpc_req_result(call);
    (void)mcl_value_put_uint(res, "client", c->id);
    (void)mcl_value_put_uint(res, "max_frame", b->o.max_frame);
    (void)mcl_rpc_reply(call);
}

static void
m_create(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    const char *name = arg_str(args, "name", NULL), *key = arg_str(args, "key", "");
    bool priv = arg_bool(args, "private");
    int64_t life = arg_int(args, "lifetime_ms", 0);
    if (!name_ok(name)) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_INVALID_ARGUMENT, "a channel name is 1..255 bytes");
        return;
    }
    if ((priv && key[0] == '\0') || strlen(key) > KEY_MAX || life < 0 || life > INT32_MAX) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_INVALID_ARGUMENT,
                           "a private channel needs a key of 1..255 bytes; lifetime_ms >= 0");
        return;
    }
    chan *old = find_chan(b, name);
    if (old != NULL && old->owner == NULL && old != b->stats && old != b->events &&
        old->priv == priv && (!priv || key_ok(old, key))) {
        // A kept channel whose creator left: a client creating it again (with its key, if
        // private) becomes its owner, and may delete it.
        old->owner = c;
        announce(b, "adopted", old, c->name, NULL);
        (void)mcl_value_put_bool(mcl_rpc_req_result(call), "adopted", true);
        (void)mcl_rpc_reply(call);
        return;
    }
    if (old != NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_ALREADY_EXISTS, "channel %s exists", name);
        return;
    }
    pthread_mutex_lock(&b->lock);
    bool full = b->nchans >= b->o.max_channels;
    pthread_mutex_unlock(&b->lock);
    chan *ch = full ? NULL : mcl__zalloc(sizeof(*ch));
    if (ch == NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_RESOURCE_EXHAUSTED, "%s",
                           full ? "too many channels" : "out of memory");
        return;
    }
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    snprintf(ch->key, sizeof(ch->key), "%s", key);
    ch->priv = priv;
    ch->multi = arg_bool(args, "multi_writer");
    ch->keep = arg_bool(args, "keep");
    ch->lifetime_ms = (int)life;
    ch->owner = c;
    ch->next = b->chans;
    b->chans = ch;
    counts(b, 1, 0);
    announce(b, "created", ch, c->name, NULL);
    (void)mcl_rpc_reply(call);
}

static void
m_delete(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    chan *ch = find_chan(b, arg_str(args, "name", ""));
    if (ch == NULL || (ch->priv && ch->owner != c)) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "no such channel");
        return;
    }
    if (ch->owner != c) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_PERMISSION_DENIED, "only its creator deletes %s",
                           ch->name);
        return;
    }
    chan_remove(b, ch, "the channel was deleted");
    (void)mcl_rpc_reply(call);
}

static bool
policy_of(const char *s, mcl_broker_policy *p)
{
    static const char *const names[] = {"ring", "drop_new", "block", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *p = (mcl_broker_policy)i;
            return true;
        }
    return false;
}

// The channel a subscribe or writer call names, with its key checked (a private channel with
// a wrong key looks the same as a missing one to a stranger... but says so to the owner).
static chan *
chan_for(mcl_broker *b, mcl_rpc_req *call, const mcl_value *args)
{
    chan *ch = find_chan(b, arg_str(args, "name", ""));
    if (ch == NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "no such channel");
        return NULL;
    }
    if (!key_ok(ch, arg_str(args, "key", ""))) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_PERMISSION_DENIED, "wrong key for %s", ch->name);
        return NULL;
    }
    return ch;
}

static void
m_subscribe(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    chan *ch = chan_for(b, call, args);
    if (ch == NULL)
        return;
    mcl_broker_policy pol;
    int64_t buf = arg_int(args, "buffer", 100), every = arg_int(args, "every", 1);
    double rate = arg_double(args, "max_rate");
    if (!policy_of(arg_str(args, "policy", "ring"), &pol) || buf < 1 || buf > b->o.max_buffer ||
        every < 1 || every > UINT32_MAX || !(rate >= 0) || rate > 1e9) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_INVALID_ARGUMENT,
                           "policy ring|drop_new|block|error, buffer 1..%u, every >= 1, "
                           "max_rate >= 0",
                           (unsigned)b->o.max_buffer);
        return;
    }
    reader *r = mcl__zalloc(sizeof(*r));
    if (r == NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    r->c = c;
    r->ch = ch;
    r->id = new_id(b);
    r->policy = pol;
    r->cap = (uint32_t)buf;
    r->every = (uint32_t)every;
    r->rate = rate;
    int64_t win = arg_int(args, "window", 0);
    r->window = win > 0 && win < b->o.max_window ? (uint32_t)win : b->o.max_window;
    if (mcl__u64map_put(&b->readers, r->id, r) != MCL_OK) {
        mcl__free(r);
        (void)mcl_rpc_fail(call, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    mcl_value *res = mcl_rpc_req_result(call);
    (void)mcl_value_put_uint(res, "sub", r->id);
    (void)mcl_value_put_uint(res, "window", r->window);
    (void)mcl_rpc_reply(call); // (before any frame, so the client knows the id first)
    r->next = ch->readers;
    ch->readers = r;
    if (++ch->nreaders == 1)
        tell_active(ch);
}

static void
m_unsubscribe(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    reader *r = mcl__u64map_get(&b->readers, (uint64_t)arg_int(args, "sub", 0));
    if (r == NULL || r->c != c) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "no such subscription");
        return;
    }
    reader_remove(b, r, NULL);
    (void)mcl_rpc_reply(call);
}

static void
m_writer(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    chan *ch = chan_for(b, call, args);
    if (ch == NULL)
        return;
    if (ch == b->stats || ch == b->events) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_PERMISSION_DENIED, "the broker writes %s", ch->name);
        return;
    }
    if (!ch->multi && ch->nwriters > 0) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_ALREADY_EXISTS, "%s has its writer", ch->name);
        return;
    }
    writer *w = mcl__zalloc(sizeof(*w));
    if (w == NULL || mcl__u64map_put(&b->writers, (w->id = new_id(b)), w) != MCL_OK) {
        mcl__free(w);
        (void)mcl_rpc_fail(call, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->c = c;
    w->ch = ch;
    w->limit = ch->blocked ? 0 : b->o.writer_credit;
    w->next = ch->writers;
    ch->writers = w;
    ch->nwriters++;
    mcl_value *res = mcl_rpc_req_result(call);
    (void)mcl_value_put_uint(res, "wid", w->id);
    (void)mcl_value_put_bool(res, "active", ch->nreaders > 0);
    (void)mcl_value_put_uint(res, "credit", w->limit);
    (void)mcl_rpc_reply(call);
}

static void
m_writer_close(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    writer *w = mcl__u64map_get(&b->writers, (uint64_t)arg_int(args, "wid", 0));
    if (w == NULL || w->c != c) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "no such writer");
        return;
    }
    writer_remove(b, w, NULL);
    (void)mcl_rpc_reply(call);
}

static void
put_chan(mcl_value *m, const chan *ch, bool readers)
{
    (void)mcl_value_put_str(m, "name", ch->name);
    (void)mcl_value_put_bool(m, "private", ch->priv);
    (void)mcl_value_put_bool(m, "multi_writer", ch->multi);
    (void)mcl_value_put_int(m, "lifetime_ms", ch->lifetime_ms);
    (void)mcl_value_put_uint(m, "readers", ch->nreaders);
    (void)mcl_value_put_uint(m, "writers", ch->nwriters);
    (void)mcl_value_put_uint(m, "offered", ch->offered);
    (void)mcl_value_put_uint(m, "dropped", ch->dropped);
    (void)mcl_value_put_uint(m, "bytes", ch->bytes);
    (void)mcl_value_put_uint(m, "unread", ch->unread);
    (void)mcl_value_put_uint(m, "over_credit", ch->over_credit);
    (void)mcl_value_put_bool(m, "blocked", ch->blocked);
    if (!readers)
        return;
    mcl_value *arr;
    if (mcl_value_put_array(m, "reader_stats", &arr) != MCL_OK)
        return;
    static const char *const pol[] = {"ring", "drop_new", "block", "error"};
    for (const reader *r = ch->readers; r != NULL; r = r->next) {
        mcl_value *e;
        if (mcl_value_push_map(arr, &e) != MCL_OK)
            return;
        (void)mcl_value_put_uint(e, "sub", r->id);
        (void)mcl_value_put_str(e, "client", r->c ? r->c->name : "bridge");
        (void)mcl_value_put_str(e, "policy", pol[r->policy]);
        (void)mcl_value_put_uint(e, "buffer", r->cap);
        (void)mcl_value_put_uint(e, "offered", r->offered);
        (void)mcl_value_put_uint(e, "sent", r->delivered);
        (void)mcl_value_put_uint(e, "dropped", r->dropped);
        (void)mcl_value_put_uint(e, "decimated", r->decimated);
        (void)mcl_value_put_uint(e, "depth", r->n);
        (void)mcl_value_put_uint(e, "high_water", r->high_water);
        (void)mcl_value_put_uint(e, "bytes", r->bytes);
        (void)mcl_value_put_uint(e, "in_flight", r->sent - r->acked);
    }
}

// The statistics channel: while someone reads it, a msgpack map every stats_ms: the time, and
// every channel's counters with its readers' (private channels too: the statistics channel
// is the broker operator's view; names and counts only, never data or keys).
static void
on_stats(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    mcl_broker *b = user;
    if (b->stats == NULL || b->stats->nreaders == 0)
        return;
    mcl_value *v = NULL, *arr;
    if (mcl_value_new(&v, MCL_TYPE_MAP) != MCL_OK)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    (void)mcl_value_put_int(v, "time_ns", (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    (void)mcl_value_put_uint(v, "clients", b->nconns);
    (void)mcl_value_put_uint(v, "relayed", b->relayed);
    (void)mcl_value_put_uint(v, "no_responder", b->no_responder);
    (void)mcl_value_put_uint(v, "temporary_removed", b->temporary_removed);
    if (mcl_value_put_array(v, "channels", &arr) == MCL_OK)
        for (const chan *ch = b->chans; ch != NULL; ch = ch->next) {
            mcl_value *e;
            if (ch != b->stats && ch != b->events && mcl_value_push_map(arr, &e) == MCL_OK)
                put_chan(e, ch, true);
        }
    void *buf = NULL;
    size_t len = 0;
    if (mcl_value_encode(v, &buf, &len) == MCL_OK) {
        b->stats->offered++;
        b->stats->bytes += len;
        publish(b, b->stats, buf, len);
    }
    mcl_free(buf);
    mcl_value_free(v);
}

static void
m_channels(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    (void)args;
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    mcl_value *res = mcl_rpc_req_result(call), *arr;
    if (mcl_value_put_array(res, "channels", &arr) == MCL_OK)
        for (const chan *ch = b->chans; ch != NULL; ch = ch->next) {
            mcl_value *e;
            if ((!ch->priv || ch->owner == c) && mcl_value_push_map(arr, &e) == MCL_OK)
                put_chan(e, ch, false);
        }
    (void)mcl_rpc_reply(call);
}

static void
m_stats(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    const char *name = arg_str(args, "name", "");
    mcl_value *res = mcl_rpc_req_result(call), *arr;
    (void)mcl_value_put_uint(res, "temporary_removed", b->temporary_removed);
    (void)mcl_value_put_uint(res, "relayed", b->relayed);
    (void)mcl_value_put_uint(res, "no_responder", b->no_responder);
    if (mcl_value_put_array(res, "channels", &arr) == MCL_OK)
        for (const chan *ch = b->chans; ch != NULL; ch = ch->next) {
            mcl_value *e;
            if ((name[0] == '\0' || strcmp(name, ch->name) == 0) &&
                (!ch->priv || ch->owner == c || (name[0] && key_ok(ch, arg_str(args, "key", "")))) &&
                mcl_value_push_map(arr, &e) == MCL_OK)
                put_chan(e, ch, true);
        }
    (void)mcl_rpc_reply(call);
}

static void
m_clients(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    (void)args;
    mcl_broker *b = user;
    if (caller(b, call) == NULL)
        return;
    mcl_value *res = mcl_rpc_req_result(call), *arr;
    if (mcl_value_put_array(res, "clients", &arr) == MCL_OK)
        for (const conn *c = b->conns; c != NULL; c = c->next) {
            mcl_value *e;
            if (mcl_value_push_map(arr, &e) == MCL_OK) {
                (void)mcl_value_put_uint(e, "client", c->id);
                (void)mcl_value_put_str(e, "name", c->name);
                (void)mcl_value_put_str(e, "url", mcl_pstream_url(c->ps));
                (void)mcl_value_put_str(e, "peer", mcl_pstream_peer(c->ps));
            }
        }
    (void)mcl_rpc_reply(call);
}

static void
m_register(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    const char *name = arg_str(args, "name", NULL);
    if (!name_ok(name)) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_INVALID_ARGUMENT, "a service name is 1..255 bytes");
        return;
    }
    if (svc_by_name(b, name) != NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_ALREADY_EXISTS, "%s has its responder", name);
        return;
    }
    relsvc *v = mcl__zalloc(sizeof(*v));
    if (v == NULL) {
        (void)mcl_rpc_fail(call, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    snprintf(v->name, sizeof(v->name), "%s", name);
    do
        v->channel = RELAY_BASE + (++b->next_relay & 0xFFFFFFu);
    while (svc_by_channel(b, v->channel) != NULL);
    v->c = c;
    v->next = b->svcs;
    b->svcs = v;
    (void)mcl_value_put_uint(mcl_rpc_req_result(call), "channel", v->channel);
    (void)mcl_rpc_reply(call);
}

static void
m_lookup(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    if (caller(b, call) == NULL)
        return;
    relsvc *v = svc_by_name(b, arg_str(args, "name", ""));
    if (v == NULL) {
        b->no_responder++;
        (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "no responder for %s",
                           arg_str(args, "name", ""));
        return;
    }
    (void)mcl_value_put_uint(mcl_rpc_req_result(call), "channel", v->channel);
    (void)mcl_rpc_reply(call);
}

static void
m_unregister(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    mcl_broker *b = user;
    conn *c = caller(b, call);
    if (c == NULL)
        return;
    const char *name = arg_str(args, "name", "");
    for (relsvc **pp = &b->svcs; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0 && (*pp)->c == c) {
            relsvc *v = *pp;
            *pp = v->next;
            mcl__free(v);
            (void)mcl_rpc_reply(call);
            return;
        }
    (void)mcl_rpc_fail(call, MCL_PSTREAM_NOT_FOUND, "this client has no service %s", name);
}

#define F(n, t, opt, d, doc) {n, t, opt, d, doc}
static const mcl_rpc_field a_hello[] = {F("name", MCL_TYPE_STR, true, "\"client\"", "shown in the client list")};
static const mcl_rpc_field r_hello[] = {
    F("client", MCL_TYPE_INT, false, NULL, "this client's id"),
    F("max_frame", MCL_TYPE_INT, true, "0", "the largest frame this broker takes, in bytes")};
static const mcl_rpc_field a_create[] = {
    F("name", MCL_TYPE_STR, false, NULL, "1..255 bytes"),
    F("private", MCL_TYPE_BOOL, true, "false", "not listed; reading and writing need the key"),
    F("key", MCL_TYPE_STR, true, "\"\"", "a private channel's key"),
    F("multi_writer", MCL_TYPE_BOOL, true, "false", "more than one writer"),
    F("lifetime_ms", MCL_TYPE_INT, true, "0", "removed once unused this long (0: never)"),
    F("keep", MCL_TYPE_BOOL, true, "false", "kept when its creator disconnects")};
static const mcl_rpc_field r_create[] = {
    F("adopted", MCL_TYPE_BOOL, true, "false",
      "the channel existed, kept after its creator left: this client owns it now")};
static const mcl_rpc_field a_name[] = {F("name", MCL_TYPE_STR, false, NULL, "the channel")};
static const mcl_rpc_field a_subscribe[] = {
    F("name", MCL_TYPE_STR, false, NULL, "the channel"),
    F("key", MCL_TYPE_STR, true, "\"\"", "a private channel's key"),
    F("buffer", MCL_TYPE_INT, true, "100", "frames buffered at the broker for this reader"),
    F("policy", MCL_TYPE_STR, true, "\"ring\"", "ring, drop_new, block or error"),
    F("every", MCL_TYPE_INT, true, "1", "deliver 1 of every N frames"),
    F("max_rate", MCL_TYPE_FLOAT, true, "0.0", "at most this many per second (0: no limit)"),
    F("window", MCL_TYPE_INT, true, "0", "frames in flight before an acknowledgement (0: the broker's)")};
static const mcl_rpc_field r_subscribe[] = {
    F("sub", MCL_TYPE_INT, false, NULL, "the subscription's id"),
    F("window", MCL_TYPE_INT, false, NULL, "frames in flight before an acknowledgement")};
static const mcl_rpc_field a_sub[] = {F("sub", MCL_TYPE_INT, false, NULL, "the subscription")};
static const mcl_rpc_field a_writer[] = {F("name", MCL_TYPE_STR, false, NULL, "the channel"),
                                         F("key", MCL_TYPE_STR, true, "\"\"", "a private channel's key")};
static const mcl_rpc_field r_writer[] = {
    F("wid", MCL_TYPE_INT, false, NULL, "the writer's id"),
    F("active", MCL_TYPE_BOOL, false, NULL, "whether anyone reads"),
    F("credit", MCL_TYPE_INT, false, NULL, "frames it may put (cumulative)")};
static const mcl_rpc_field a_wid[] = {F("wid", MCL_TYPE_INT, false, NULL, "the writer")};
static const mcl_rpc_field r_list[] = {F("channels", MCL_TYPE_ARRAY, false, NULL, "one map per channel")};
static const mcl_rpc_field a_stats[] = {F("name", MCL_TYPE_STR, true, "\"\"", "one channel (default: all)"),
                                        F("key", MCL_TYPE_STR, true, "\"\"", "its key, if private")};
static const mcl_rpc_field r_stats[] = {
    F("channels", MCL_TYPE_ARRAY, false, NULL, "per channel, and per reader: offered, sent, dropped, decimated, depth, high_water, bytes"),
    F("temporary_removed", MCL_TYPE_INT, false, NULL, "temporary channels removed so far"),
    F("relayed", MCL_TYPE_INT, false, NULL, "client-to-client calls forwarded"),
    F("no_responder", MCL_TYPE_INT, false, NULL, "calls and lookups that found no responder")};
static const mcl_rpc_field r_clients[] = {F("clients", MCL_TYPE_ARRAY, false, NULL, "id, name, url (the broker's), peer (the client's address, where the transport knows it)")};
static const mcl_rpc_field a_svc[] = {F("name", MCL_TYPE_STR, false, NULL, "the service's name")};
static const mcl_rpc_field r_svc[] = {F("channel", MCL_TYPE_INT, false, NULL, "its relay channel on every client's connection")};
#undef F
#define N(a) a, sizeof(a) / sizeof(a[0])

static mcl_err
add_methods(mcl_broker *b)
{
    const mcl_rpc_method m[] = {
        {1, "broker.hello", "name this client", N(a_hello), N(r_hello), 0, m_hello, b},
        {2, "broker.create", "create a channel (this client owns it)", N(a_create), N(r_create), 0, m_create, b},
        {3, "broker.delete", "delete a channel this client created", N(a_name), NULL, 0, 0, m_delete, b},
        {4, "broker.subscribe", "read a channel through a buffer at the broker", N(a_subscribe), N(r_subscribe), 0, m_subscribe, b},
        {5, "broker.unsubscribe", "stop reading", N(a_sub), NULL, 0, 0, m_unsubscribe, b},
        {6, "broker.writer", "write a channel (starts inactive)", N(a_writer), N(r_writer), 0, m_writer, b},
        {7, "broker.writer_close", "stop writing", N(a_wid), NULL, 0, 0, m_writer_close, b},
        {8, "broker.channels", "the public channels (and this client's own)", NULL, 0, N(r_list), MCL_RPC_OPEN_RESULT, m_channels, b},
        {9, "broker.stats", "counters per channel and per reader", N(a_stats), N(r_stats), MCL_RPC_OPEN_RESULT, m_stats, b},
        {10, "broker.clients", "the connected clients", NULL, 0, N(r_clients), MCL_RPC_OPEN_RESULT, m_clients, b},
        {11, "broker.register", "offer this client's RPC service to the others", N(a_svc), N(r_svc), 0, m_register, b},
        {12, "broker.lookup", "the relay channel of a service (NOT_FOUND: no responder)", N(a_svc), N(r_svc), 0, m_lookup, b},
        {13, "broker.unregister", "withdraw a service of this client", N(a_svc), NULL, 0, 0, m_unregister, b},
    };
    return mcl_rpc_service_add(b->svc, m, sizeof(m) / sizeof(m[0]), NULL, 0);
}
#undef N

// --- bridges -------------------------------------------------------------------------------------

typedef struct bridge_arg {
    mcl_broker *b;
    const char *chan, *url;
    mcl_err rv;
} bridge_arg;

// The channel a bridge uses, made (public, kept, ownerless) if it does not exist.
static chan *
bridge_chan(mcl_broker *b, const char *name)
{
    chan *ch = find_chan(b, name);
    if (ch != NULL || !name_ok(name))
        return ch;
    if ((ch = mcl__zalloc(sizeof(*ch))) == NULL)
        return NULL;
    snprintf(ch->name, sizeof(ch->name), "%s", name);
    ch->keep = true;
    ch->multi = true;
    ch->next = b->chans;
    b->chans = ch;
    counts(b, 1, 0);
    return ch;
}

static void
do_bridge_out(mcl_reactor *rr, void *arg)
{
    (void)rr;
    bridge_arg *a = arg;
    mcl_broker *b = a->b;
    chan *ch = bridge_chan(b, a->chan);
    mcl_connection *cn = NULL;
    reader *r = NULL;
    a->rv = ch == NULL ? MCL_EINVAL : mcl_connection_parse(&cn, a->url, NULL, 0);
    if (a->rv == MCL_OK && (r = mcl__zalloc(sizeof(*r))) == NULL)
        a->rv = MCL_ENOMEM;
    if (a->rv == MCL_OK)
        a->rv = mcl_raw_broadcaster_open(&r->out, cn, NULL);
    mcl_connection_free(cn);
    uint64_t *ids = NULL;
    if (a->rv == MCL_OK &&
        (ids = mcl__realloc(b->out_ids, (b->nout_ids + 1) * sizeof(*ids))) == NULL)
        a->rv = MCL_ENOMEM;
    if (a->rv == MCL_OK) {
        b->out_ids = ids;
        r->ch = ch;
        r->id = new_id(b);
        r->policy = MCL_BROKER_RING;
        r->cap = 1000;
        r->every = 1;
        r->window = 0;
        a->rv = mcl__u64map_put(&b->readers, r->id, r);
    }
    if (a->rv != MCL_OK) {
        if (r != NULL)
            mcl_raw_broadcaster_free(r->out);
        mcl__free(r);
        return;
    }
    b->out_ids[b->nout_ids++] = mcl_raw_broadcaster_id(r->out);
    r->next = ch->readers;
    ch->readers = r;
    if (++ch->nreaders == 1)
        tell_active(ch);
}

static void
on_bridged(const mcl_raw_msg *m, void *user)
{
    bridge_in *bi = user;
    // Not what a bridge out of this broker published (a channel bridged out and in on one
    // group would go round for ever).
    for (size_t i = 0; i < bi->b->nout_ids; i++)
        if (bi->b->out_ids[i] == m->publisher)
            return;
    chan *ch = find_chan(bi->b, bi->chan);
    if (ch == NULL)
        return; // (deleted meanwhile: the bridge feeds nothing)
    channel_put(bi->b, ch, m->payload, m->len);
}

static void
do_bridge_in(mcl_reactor *rr, void *arg)
{
    bridge_arg *a = arg;
    mcl_broker *b = a->b;
    chan *ch = bridge_chan(b, a->chan);
    mcl_connection *cn = NULL;
    bridge_in *bi = NULL;
    a->rv = ch == NULL ? MCL_EINVAL : mcl_connection_parse(&cn, a->url, NULL, 0);
    if (a->rv == MCL_OK && (bi = mcl__zalloc(sizeof(*bi))) == NULL)
        a->rv = MCL_ENOMEM;
    if (a->rv == MCL_OK)
        a->rv = mcl_raw_listener_open(&bi->l, cn, NULL, 0);
    mcl_connection_free(cn);
    if (a->rv == MCL_OK) {
        bi->b = b;
        snprintf(bi->chan, sizeof(bi->chan), "%s", ch->name);
        a->rv = mcl_raw_listener_subscribe(bi->l, on_bridged, bi);
    }
    if (a->rv == MCL_OK)
        a->rv = mcl_reactor_add_raw_listener(rr, bi->l, &bi->h);
    if (a->rv != MCL_OK) {
        if (bi != NULL)
            mcl_raw_listener_free(bi->l);
        mcl__free(bi);
        return;
    }
    bi->next = b->bins;
    b->bins = bi;
}

mcl_err
mcl_broker_bridge_out(mcl_broker *b, const char *channel, const char *url)
{
    if (b == NULL || channel == NULL || url == NULL)
        return MCL_EINVAL;
    bridge_arg a = {b, channel, url, MCL_OK};
    mcl_err rv = mcl_reactor_call(b->r, do_bridge_out, &a);
    return rv != MCL_OK ? rv : a.rv;
}

mcl_err
mcl_broker_bridge_in(mcl_broker *b, const char *url, const char *channel)
{
    if (b == NULL || channel == NULL || url == NULL)
        return MCL_EINVAL;
    bridge_arg a = {b, channel, url, MCL_OK};
    mcl_err rv = mcl_reactor_call(b->r, do_bridge_in, &a);
    return rv != MCL_OK ? rv : a.rv;
}

static void
bridges_free(mcl_broker *b, bool on_reactor)
{
    while (b->bins != NULL) {
        bridge_in *bi = b->bins;
        b->bins = bi->next;
        if (on_reactor)
            (void)mcl_reactor_remove(b->r, bi->h);
        mcl_raw_listener_free(bi->l);
        mcl__free(bi);
    }
}

// --- the broker ----------------------------------------------------------------------------------

mcl_err
mcl_broker_open(mcl_broker **bp, const char *url, const mcl_broker_options *o)
{
    if (bp != NULL)
        *bp = NULL;
    if (bp == NULL || url == NULL)
        return MCL_EINVAL;
    mcl_broker *b = mcl__zalloc(sizeof(*b));
    if (b == NULL)
        return MCL_ENOMEM;
    if (o != NULL)
        b->o = *o;
    if (b->o.heartbeat_ms < 0) {
        mcl__free(b);
        return MCL_EINVAL;
    }
    if (!b->o.max_channels)
        b->o.max_channels = 1024;
    if (!b->o.max_clients)
        b->o.max_clients = 256;
    if (!b->o.max_buffer)
        b->o.max_buffer = 65536;
    if (!b->o.max_window)
        b->o.max_window = 256;
    if (!b->o.writer_credit)
        b->o.writer_credit = 256;
    if (!b->o.max_frame)
        b->o.max_frame = 1u << 20;
    if (!b->o.max_reader_bytes)
        b->o.max_reader_bytes = 64u << 20;
    if (!b->o.heartbeat_ms)
        b->o.heartbeat_ms = 3000;
    if (b->o.stats_ms <= 0)
        b->o.stats_ms = 1000;
    pthread_mutex_init(&b->lock, NULL);
    mcl__u64map_init(&b->readers);
    mcl__u64map_init(&b->writers);
    // Per connection at most CONN_QUEUE bytes wait to be sent (deliveries, answers) and one
    // packet of at most max_packet is read at a time: the per-client part of the memory bound.
    mcl_pstream_options po = {.ping_ms = b->o.heartbeat_ms / 3 ? b->o.heartbeat_ms / 3 : 1,
                              .idle_ms = b->o.heartbeat_ms,
                              .send_queue = CONN_QUEUE,
                              .max_packet = b->o.max_frame + 64 < CONN_PACKET
                                                ? CONN_PACKET
                                                : b->o.max_frame + 64};
    mcl_rpc_service_options so = {0};
    mcl_err rv = mcl_reactor_new(&b->r, NULL);
    if (rv == MCL_OK)
        rv = mcl_rpc_service_new(&b->svc, "mcl.broker", "mcl channel broker", &so);
    if (rv == MCL_OK)
        rv = add_methods(b);
    if (rv == MCL_OK)
        rv = mcl_pstream_server_open(&b->psrv, url, &po, on_accept, b);
    if (rv == MCL_OK)
        rv = mcl_pstream_server_attach(b->psrv, b->r);
    if (rv == MCL_OK)
        rv = mcl_reactor_timer(b->r, 100, 100, 0, on_tick, b, &b->tick);
    if (rv == MCL_OK && ((b->stats = mcl__zalloc(sizeof(*b->stats))) == NULL ||
                         (b->events = mcl__zalloc(sizeof(*b->events))) == NULL)) {
        mcl__free(b->stats);
        b->stats = NULL;
        rv = MCL_ENOMEM;
    }
    if (rv == MCL_OK) {
        // The broker's own channels: no owner, so nobody deletes them; nobody writes them.
        snprintf(b->stats->name, sizeof(b->stats->name), "%s", MCL_BROKER_STATS_CHANNEL);
        snprintf(b->events->name, sizeof(b->events->name), "%s", MCL_BROKER_EVENTS_CHANNEL);
        b->stats->keep = b->events->keep = true;
        b->events->next = b->chans;
        b->stats->next = b->events;
        b->chans = b->stats;
        counts(b, 2, 0);
        rv = mcl_reactor_timer(b->r, b->o.stats_ms, b->o.stats_ms, 0, on_stats, b, &b->stats_t);
    }
    if (rv == MCL_OK)
        rv = mcl_reactor_start(b->r);
    if (rv != MCL_OK) {
        mcl_broker_free(b);
        return rv;
    }
    *bp = b;
    return MCL_OK;
}

const char *
mcl_broker_url(const mcl_broker *b)
{
    return b && b->psrv ? mcl_pstream_server_url(b->psrv) : "";
}

size_t
mcl_broker_channels(const mcl_broker *cb)
{
    if (cb == NULL)
        return 0;
    mcl_broker *b = (mcl_broker *)(uintptr_t)cb;
    pthread_mutex_lock(&b->lock);
    size_t n = b->nchans;
    pthread_mutex_unlock(&b->lock);
    return n;
}

size_t
mcl_broker_clients(const mcl_broker *cb)
{
    if (cb == NULL)
        return 0;
    mcl_broker *b = (mcl_broker *)(uintptr_t)cb;
    pthread_mutex_lock(&b->lock);
    size_t n = b->nconns;
    pthread_mutex_unlock(&b->lock);
    return n;
}

static void
teardown(mcl_reactor *r, void *arg)
{
    (void)r;
    mcl_broker *b = arg;
    b->stopping = true;
    bridges_free(b, true);
    while (b->chans != NULL)
        chan_remove(b, b->chans, "the broker is stopping");
    while (b->conns != NULL)
        conn_remove(b, b->conns);
    if (b->retry_armed)
        (void)mcl_reactor_remove(b->r, b->retry);
    (void)mcl_reactor_remove(b->r, b->tick);
    (void)mcl_reactor_remove(b->r, b->stats_t);
    b->stats = b->events = NULL;
}

void
mcl_broker_free(mcl_broker *b)
{
    if (b == NULL)
        return;
    if (b->r != NULL && b->psrv != NULL)
        (void)mcl_reactor_call(b->r, teardown, b);
    mcl_pstream_server_free(b->psrv, 1000);
    mcl_reactor_free(b->r);
    // What came after the teardown (a connection accepted as the server stopped: it gets no
    // closed callback), on this thread now that no other runs.
    b->stopping = true;
    b->stats = b->events = NULL;
    bridges_free(b, false);
    while (b->chans != NULL)
        chan_remove(b, b->chans, "the broker is stopping");
    while (b->conns != NULL)
        conn_remove(b, b->conns);
    mcl_rpc_service_free(b->svc, 0);
    mcl__u64map_fini(&b->readers);
    mcl__u64map_fini(&b->writers);
    mcl__free(b->batch);
    mcl__free(b->out_ids);
    pthread_mutex_destroy(&b->lock);
    mcl__free(b);
}
