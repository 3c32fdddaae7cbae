// SPDX-License-Identifier: BSD-3-Clause
// Broker clients (include/mcl/broker.h): control calls through an RPC client on the client's
// connection, the data plane as one-way messages, all driven by the client's own reactor.
//
// A subscription or writer is put into its table by the RPC completion itself, on the reactor
// thread, before any later message of the connection is read: the broker sends the answer
// before the first frame, and the connection keeps order, so no frame finds its id unknown.
#define _GNU_SOURCE
#include <mcl/broker.h>
#include <mcl/pstream.h>
#include <mcl/reactor.h>
#include <mcl/rpc.h>

#include "../core/internal.h"
#include "../core/u64map.h"
#include "../pstream/pstream_int.h"
#include "bwire.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct csub {
    uint32_t id;
    void (*on_end)(mcl_broker_client *c, uint32_t sub, uint64_t seq, void *user);
    mcl_broker_data_cb cb;
    void *user;
    uint32_t window;
    uint64_t taken, acked;
    mcl_broker_counts n;
} csub;

typedef struct cwr {
    uint32_t id;
    mcl_broker_active_cb cb;
    void *user;
    bool active;
    uint64_t limit, put;
    mcl_broker_counts n;
} cwr;

struct mcl_broker_client {
    mcl_reactor *r;
    mcl_pstream *ps;
    mcl_rpc_client *rpc;
    mcl_broker_client_options o;
    char name[64];
    pthread_mutex_t lock; // the tables and counters (the reactor and callers)
    pthread_cond_t cv;    // credit for put_wait
    mcl__u64map subs, wrs;
    mcl_handle tick;
    size_t max_frame; // the broker's, from broker.hello (0: not said: no check here)
};

// --- calls ---------------------------------------------------------------------------------------

// A call in progress: done() runs on the reactor thread, then the caller wakes.
typedef struct waitcall {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool done;
    mcl_rpc_status st;
    char msg[256];
    mcl_value *value;
    void (*hook)(mcl_broker_client *c, const mcl_value *v, void *arg); // on OK, on the reactor
    void *arg;
    mcl_broker_client *c;
} waitcall;

static void
on_call_done(const mcl_rpc_result *r, void *user)
{
    waitcall *w = user;
    if (r->status == MCL_PSTREAM_OK && w->hook != NULL)
        w->hook(w->c, r->value, w->arg);
    mcl_value *v = NULL;
    if (r->value != NULL)
        (void)mcl_value_dup(&v, r->value);
    pthread_mutex_lock(&w->lock);
    w->st = r->status;
    snprintf(w->msg, sizeof(w->msg), "%s", r->message);
    w->value = v;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
}

static mcl_err
status_err(mcl_rpc_status st)
{
    switch (st) {
    case MCL_PSTREAM_OK: return MCL_OK;
    case MCL_PSTREAM_NOT_FOUND: return MCL_ENOENT;
    case MCL_PSTREAM_ALREADY_EXISTS: return MCL_EEXIST;
    case MCL_PSTREAM_PERMISSION_DENIED: return MCL_EPERM;
    case MCL_PSTREAM_INVALID_ARGUMENT: return MCL_EINVAL;
    case MCL_PSTREAM_RESOURCE_EXHAUSTED: return MCL_EAGAIN;
    case MCL_PSTREAM_DEADLINE_EXCEEDED: return MCL_ETIMEDOUT;
    default: return MCL_ECLOSED;
    }
}

// Calls method with args (consumed), waiting; the result map into *out (NULL: dropped).
static mcl_err
call(mcl_broker_client *c, const char *method, mcl_value *args,
     void (*hook)(mcl_broker_client *, const mcl_value *, void *), void *arg, mcl_value **out)
{
    if (out != NULL)
        *out = NULL;
    if (mcl_reactor_in_loop(c->r)) {
        mcl_value_free(args);
        return MCL_ESTATE;
    }
    const mcl_rpc_method_info *m = mcl_rpc_client_method(c->rpc, method);
    if (m == NULL) {
        mcl_value_free(args);
        return MCL_EPROTO; // not an mcl broker
    }
    waitcall w = {.hook = hook, .arg = arg, .c = c};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cv, NULL);
    mcl_err rv = mcl_rpc_submit(c->rpc, m, args, c->o.timeout_ms, on_call_done, &w, NULL);
    mcl_value_free(args);
    if (rv == MCL_OK) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.lock); // (the call's deadline ends it)
        pthread_mutex_unlock(&w.lock);
        rv = status_err(w.st);
        if (rv != MCL_OK && rv != MCL_ECLOSED)
            mcl__log(MCL_LOG_DEBUG, "broker", "%s: %s: %s", method, mcl_rpc_status_name(w.st),
                     w.msg);
        if (out != NULL)
            *out = w.value;
        else
            mcl_value_free(w.value);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cv);
    return rv;
}

static mcl_value *
args_new(void)
{
    mcl_value *v = NULL;
    (void)mcl_value_new(&v, MCL_TYPE_MAP);
    return v;
}

static uint64_t
get_uint(const mcl_value *v, const char *key)
{
    uint64_t u = 0;
    const mcl_value *x = mcl_value_find(v, key);
    if (x != NULL)
        (void)mcl_value_get_uint(x, &u);
    return u;
}

// --- the data plane (reactor thread) -------------------------------------------------------------

static void
send_ack(mcl_broker_client *c, csub *s)
{
    mcl__bmsg m = {.type = MCL__BM_ACK, .id = s->id, .num = s->taken};
    uint8_t h[16];
    size_t hn = mcl__bmsg_encode(&m, h);
    if (mcl__pstream_send2(c->ps, MCL_BROKER_DATA_CHANNEL, MCL__BM_ACK, 0, h, hn, NULL, 0) ==
        MCL_OK)
        s->acked = s->taken;
}

// The callbacks have taken n more frames (or marks) of subscription id (held lock, after them:
// the subscription may have ended meanwhile); acknowledged every quarter window.
static void
took(mcl_broker_client *c, uint32_t id, uint64_t n)
{
    csub *s = mcl__u64map_get(&c->subs, id);
    if (s == NULL)
        return;
    s->taken += n;
    if (s->taken - s->acked >= (s->window / 4 ? s->window / 4 : 1))
        send_ack(c, s);
}

static void
on_data(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
        size_t len, void *user)
{
    (void)ps;
    (void)channel;
    (void)flags;
    mcl_broker_client *c = user;
    mcl__bmsg m;
    if (mcl__bmsg_decode((int)type, payload, len, &m, NULL, 0) != MCL_OK)
        return;
    pthread_mutex_lock(&c->lock);
    switch (type) {
    case MCL__BM_DELIVER: {
        csub *s = mcl__u64map_get(&c->subs, m.id);
        if (s == NULL)
            break;
        mcl_broker_data_cb cb = s->cb;
        void *u = s->user;
        s->n.frames++;
        s->n.bytes += m.len;
        pthread_mutex_unlock(&c->lock);
        cb(c, m.id, m.num, m.len ? m.data : NULL, m.len, u);
        pthread_mutex_lock(&c->lock);
        took(c, m.id, 1);
        break;
    }
    case MCL__BM_DELIVERN: {
        csub *s = mcl__u64map_get(&c->subs, m.id);
        if (s == NULL)
            break;
        mcl_broker_data_cb cb = s->cb;
        void *u = s->user;
        s->n.frames += m.num;
        s->n.bytes += m.len - 12 * (size_t)m.num;
        pthread_mutex_unlock(&c->lock);
        size_t off = 0;
        for (uint64_t i = 0; i < m.num; i++) {
            uint64_t seq;
            size_t fl;
            const uint8_t *f = mcl__bmsg_next(m.data, &off, &seq, &fl);
            cb(c, m.id, seq, fl ? f : NULL, fl, u);
        }
        pthread_mutex_lock(&c->lock);
        took(c, m.id, m.num);
        break;
    }
    case MCL__BM_MARK: {
        csub *s = mcl__u64map_get(&c->subs, m.id);
        if (s == NULL)
            break;
        void (*fn)(mcl_broker_client *, uint32_t, uint64_t, void *) = s->on_end;
        void *u = s->user;
        if (fn != NULL) {
            pthread_mutex_unlock(&c->lock);
            fn(c, m.id, m.num, u);
            pthread_mutex_lock(&c->lock);
        }
        took(c, m.id, 1); // a mark counts in the window
        break;
    }
    case MCL__BM_ACTIVE:
    case MCL__BM_CREDIT: {
        cwr *w = mcl__u64map_get(&c->wrs, m.id);
        if (w == NULL)
            break;
        if (type == MCL__BM_CREDIT) {
            if (m.num > w->limit)
                w->limit = m.num;
            pthread_cond_broadcast(&c->cv);
            break;
        }
        bool changed = w->active != (m.flag != 0);
        w->active = m.flag != 0;
        mcl_broker_active_cb cb = w->cb;
        void *u = w->user;
        pthread_cond_broadcast(&c->cv);
        if (changed && cb != NULL) {
            pthread_mutex_unlock(&c->lock);
            cb(c, m.id, m.flag != 0, u);
            pthread_mutex_lock(&c->lock);
        }
        break;
    }
    case MCL__BM_ENDED: {
        void *gone = m.flag == MCL__BE_SUB ? mcl__u64map_del(&c->subs, m.id)
                                           : mcl__u64map_del(&c->wrs, m.id);
        mcl__free(gone);
        pthread_cond_broadcast(&c->cv);
        if (gone != NULL && c->o.ended != NULL) {
            char why[1025];
            snprintf(why, sizeof(why), "%.*s", (int)m.len, (const char *)m.data);
            pthread_mutex_unlock(&c->lock);
            c->o.ended(c, m.id, why, c->o.user);
            pthread_mutex_lock(&c->lock);
        }
        break;
    }
    default:
        break;
    }
    pthread_mutex_unlock(&c->lock);
}

static void
ack_each(uint64_t key, void *val, void *arg)
{
    (void)key;
    csub *s = val;
    if (s->taken > s->acked)
        send_ack(arg, s);
}

// What the acknowledgement steps left unacknowledged goes out on this tick.
static void
on_tick(mcl_reactor *r, mcl_handle t, void *user)
{
    (void)r;
    (void)t;
    mcl_broker_client *c = user;
    pthread_mutex_lock(&c->lock);
    mcl__u64map_each(&c->subs, ack_each, c);
    pthread_cond_broadcast(&c->cv); // (put_wait notices a connection's end)
    pthread_mutex_unlock(&c->lock);
}

// --- the client ----------------------------------------------------------------------------------

static void
hello_hook(mcl_broker_client *c, const mcl_value *v, void *arg)
{
    (void)arg;
    uint64_t mf = get_uint(v, "max_frame");
    pthread_mutex_lock(&c->lock);
    c->max_frame = mf > SIZE_MAX ? SIZE_MAX : (size_t)mf;
    pthread_mutex_unlock(&c->lock);
}

mcl_err
mcl_broker_connect(mcl_broker_client **cp, const char *url, const mcl_broker_client_options *o)
{
    if (cp != NULL)
        *cp = NULL;
    if (cp == NULL || url == NULL)
        return MCL_EINVAL;
    mcl_broker_client *c = mcl__zalloc(sizeof(*c));
    if (c == NULL)
        return MCL_ENOMEM;
    if (o != NULL)
        c->o = *o;
    snprintf(c->name, sizeof(c->name), "%s", c->o.name ? c->o.name : "client");
    c->o.name = NULL;
    if (c->o.timeout_ms <= 0)
        c->o.timeout_ms = 5000;
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    mcl__u64map_init(&c->subs);
    mcl__u64map_init(&c->wrs);
    mcl_pstream_options po = {.ping_ms = 1000, .timeout_ms = c->o.timeout_ms, .spin_us = -1};
    mcl_err rv = mcl_reactor_new(&c->r, NULL);
    if (rv == MCL_OK)
        rv = mcl_pstream_dial(&c->ps, url, &po);
    if (rv == MCL_OK)
        rv = mcl_pstream_handle_messages(c->ps, MCL_BROKER_DATA_CHANNEL, on_data, c);
    if (rv == MCL_OK)
        rv = mcl_pstream_attach(c->ps, c->r);
    if (rv == MCL_OK)
        rv = mcl_reactor_timer(c->r, 10, 10, 0, on_tick, c, &c->tick);
    if (rv == MCL_OK)
        rv = mcl_reactor_start(c->r);
    if (rv == MCL_OK) {
        mcl_rpc_client_options ro = {.timeout_ms = c->o.timeout_ms,
                                     .describe_ms = c->o.timeout_ms,
                                     .channel = MCL_BROKER_RPC_CHANNEL,
                                     .reactor = c->r};
        rv = mcl_rpc_client_over(&c->rpc, c->ps, &ro, NULL, 0);
    }
    if (rv == MCL_OK) {
        mcl_value *a = args_new();
        rv = a == NULL ? MCL_ENOMEM : mcl_value_put_str(a, "name", c->name);
        rv = rv == MCL_OK ? call(c, "broker.hello", a, hello_hook, NULL, NULL)
                          : (mcl_value_free(a), rv);
    }
    if (rv != MCL_OK) {
        mcl_broker_client_free(c);
        return rv;
    }
    *cp = c;
    return MCL_OK;
}

mcl_err
mcl_broker_create(mcl_broker_client *c, const char *name, const mcl_broker_channel_options *o)
{
    if (c == NULL || name == NULL)
        return MCL_EINVAL;
    mcl_broker_channel_options d = {0};
    if (o == NULL)
        o = &d;
    mcl_value *a = args_new();
    mcl_err rv = a == NULL ? MCL_ENOMEM : MCL_OK;
    if (rv == MCL_OK)
        rv = mcl_value_put_str(a, "name", name);
    if (rv == MCL_OK)
        rv = mcl_value_put_bool(a, "private", o->private_);
    if (rv == MCL_OK && o->key != NULL)
        rv = mcl_value_put_str(a, "key", o->key);
    if (rv == MCL_OK)
        rv = mcl_value_put_bool(a, "multi_writer", o->multi_writer);
    if (rv == MCL_OK)
        rv = mcl_value_put_int(a, "lifetime_ms", o->lifetime_ms);
    if (rv == MCL_OK)
        rv = mcl_value_put_bool(a, "keep", o->keep);
    if (rv != MCL_OK) {
        mcl_value_free(a);
        return rv;
    }
    return call(c, "broker.create", a, NULL, NULL, NULL);
}

mcl_err
mcl_broker_delete(mcl_broker_client *c, const char *name)
{
    if (c == NULL || name == NULL)
        return MCL_EINVAL;
    mcl_value *a = args_new();
    if (a == NULL || mcl_value_put_str(a, "name", name) != MCL_OK) {
        mcl_value_free(a);
        return MCL_ENOMEM;
    }
    return call(c, "broker.delete", a, NULL, NULL, NULL);
}

// On the reactor, from the subscribe's answer: the table gets the subscription before any frame.
static void
sub_hook(mcl_broker_client *c, const mcl_value *v, void *arg)
{
    csub *s = arg;
    s->id = (uint32_t)get_uint(v, "sub");
    s->window = (uint32_t)get_uint(v, "window");
    pthread_mutex_lock(&c->lock);
    if (mcl__u64map_put(&c->subs, s->id, s) != MCL_OK)
        s->id = 0;
    pthread_mutex_unlock(&c->lock);
}

mcl_err
mcl_broker_subscribe(mcl_broker_client *c, const char *name, const mcl_broker_reader_options *o,
                     mcl_broker_data_cb cb, void *user, uint32_t *sub)
{
    if (sub != NULL)
        *sub = 0;
    if (c == NULL || name == NULL || cb == NULL)
        return MCL_EINVAL;
    mcl_broker_reader_options d = {0};
    if (o == NULL)
        o = &d;
    static const char *const pol[] = {"ring", "drop_new", "block", "error"};
    if ((unsigned)o->policy > MCL_BROKER_ERROR)
        return MCL_EINVAL;
    csub *s = mcl__zalloc(sizeof(*s));
    mcl_value *a = args_new();
    mcl_err rv = s == NULL || a == NULL ? MCL_ENOMEM : MCL_OK;
    if (rv == MCL_OK)
        rv = mcl_value_put_str(a, "name", name);
    if (rv == MCL_OK && o->key != NULL)
        rv = mcl_value_put_str(a, "key", o->key);
    if (rv == MCL_OK)
        rv = mcl_value_put_int(a, "buffer", o->buffer ? o->buffer : 100);
    if (rv == MCL_OK)
        rv = mcl_value_put_str(a, "policy", pol[o->policy]);
    if (rv == MCL_OK)
        rv = mcl_value_put_int(a, "every", o->every ? o->every : 1);
    if (rv == MCL_OK)
        rv = mcl_value_put_double(a, "max_rate", o->max_rate);
    if (rv == MCL_OK && o->window > 0)
        rv = mcl_value_put_int(a, "window", o->window);
    if (rv != MCL_OK) {
        mcl_value_free(a);
        mcl__free(s);
        return rv;
    }
    s->cb = cb;
    s->on_end = o->on_end;
    s->user = user;
    rv = call(c, "broker.subscribe", a, sub_hook, s, NULL);
    if (rv != MCL_OK || s->id == 0) {
        if (rv == MCL_OK) // (no memory for the table: end it at the broker)
            rv = MCL_ENOMEM;
        mcl__free(s);
        return rv;
    }
    if (sub != NULL)
        *sub = s->id;
    return MCL_OK;
}

typedef struct drop_arg {
    mcl_broker_client *c;
    uint32_t id;
    bool writer;
} drop_arg;

static void
drop_entry(mcl_reactor *r, void *arg)
{
    (void)r;
    drop_arg *d = arg;
    pthread_mutex_lock(&d->c->lock);
    mcl__free(d->writer ? mcl__u64map_del(&d->c->wrs, d->id) : mcl__u64map_del(&d->c->subs, d->id));
    pthread_cond_broadcast(&d->c->cv);
    pthread_mutex_unlock(&d->c->lock);
}

mcl_err
mcl_broker_unsubscribe(mcl_broker_client *c, uint32_t sub)
{
    if (c == NULL)
        return MCL_EINVAL;
    mcl_value *a = args_new();
    if (a == NULL || mcl_value_put_uint(a, "sub", sub) != MCL_OK) {
        mcl_value_free(a);
        return MCL_ENOMEM;
    }
    mcl_err rv = call(c, "broker.unsubscribe", a, NULL, NULL, NULL);
    drop_arg d = {c, sub, false}; // (on the reactor: no callback runs after this returns)
    (void)mcl_reactor_call(c->r, drop_entry, &d);
    return rv;
}

static void
writer_hook(mcl_broker_client *c, const mcl_value *v, void *arg)
{
    cwr *w = arg;
    w->id = (uint32_t)get_uint(v, "wid");
    w->limit = get_uint(v, "credit");
    const mcl_value *act = mcl_value_find(v, "active");
    (void)mcl_value_get_bool(act, &w->active);
    pthread_mutex_lock(&c->lock);
    if (mcl__u64map_put(&c->wrs, w->id, w) != MCL_OK)
        w->id = 0;
    pthread_mutex_unlock(&c->lock);
}

mcl_err
mcl_broker_writer(mcl_broker_client *c, const char *name, const char *key,
                  mcl_broker_active_cb cb, void *user, uint32_t *wid)
{
    if (wid != NULL)
        *wid = 0;
    if (c == NULL || name == NULL)
        return MCL_EINVAL;
    cwr *w = mcl__zalloc(sizeof(*w));
    mcl_value *a = args_new();
    mcl_err rv = w == NULL || a == NULL ? MCL_ENOMEM : mcl_value_put_str(a, "name", name);
    if (rv == MCL_OK && key != NULL)
        rv = mcl_value_put_str(a, "key", key);
    if (rv != MCL_OK) {
        mcl_value_free(a);
        mcl__free(w);
        return rv;
    }
    w->cb = cb;
    w->user = user;
    rv = call(c, "broker.writer", a, writer_hook, w, NULL);
    if (rv == MCL_EEXIST)
        rv = MCL_EALREADY; // (a single-writer channel has its writer)
    if (rv != MCL_OK || w->id == 0) {
        mcl__free(w);
        return rv == MCL_OK ? MCL_ENOMEM : rv;
    }
    if (wid != NULL)
        *wid = w->id;
    return MCL_OK;
}

static mcl_err
put_locked(mcl_broker_client *c, cwr *w, const void *data, size_t len)
{
    if (!w->active) {
        w->n.refused_inactive++;
        return MCL_EAGAIN;
    }
    if (w->put >= w->limit) {
        w->n.refused_credit++;
        return MCL_EAGAIN;
    }
    if (c->max_frame > 0 && len > c->max_frame)
        return MCL_EMSGSIZE; // (the broker would drop it)
    uint8_t h[16];
    mcl__bmsg m = {.type = MCL__BM_PUT, .id = w->id};
    size_t hn = mcl__bmsg_encode(&m, h);
    mcl_err rv = mcl__pstream_send2(c->ps, MCL_BROKER_DATA_CHANNEL, MCL__BM_PUT, 0, h, hn, data,
                                    len);
    if (rv == MCL_OK) {
        w->put++;
        w->n.frames++;
        w->n.bytes += len;
    }
    return rv;
}

mcl_err
mcl_broker_put(mcl_broker_client *c, uint32_t wid, const void *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0))
        return MCL_EINVAL;
    pthread_mutex_lock(&c->lock);
    cwr *w = mcl__u64map_get(&c->wrs, wid);
    mcl_err rv = w == NULL ? MCL_ENOENT : put_locked(c, w, data, len);
    pthread_mutex_unlock(&c->lock);
    return rv;
}

mcl_err
mcl_broker_put_wait(mcl_broker_client *c, uint32_t wid, const void *data, size_t len,
                    int timeout_ms)
{
    if (c == NULL || (data == NULL && len > 0))
        return MCL_EINVAL;
    if (mcl_reactor_in_loop(c->r))
        return MCL_ESTATE;
    struct timespec dl = {0, 0}; // (read from the clock only when it has to wait)
    pthread_mutex_lock(&c->lock);
    mcl_err rv;
    for (;;) {
        cwr *w = mcl__u64map_get(&c->wrs, wid);
        if (w == NULL) {
            rv = MCL_ENOENT;
            break;
        }
        if (w->active && w->put >= w->limit && mcl_pstream_is_open(c->ps)) {
            if (dl.tv_sec == 0) {
                clock_gettime(CLOCK_MONOTONIC, &dl);
                int ms = timeout_ms > 0 ? timeout_ms : c->o.timeout_ms;
                dl.tv_sec += ms / 1000;
                dl.tv_nsec += (long)(ms % 1000) * 1000000L;
                if (dl.tv_nsec >= 1000000000L) {
                    dl.tv_sec++;
                    dl.tv_nsec -= 1000000000L;
                }
            }
            if (pthread_cond_timedwait(&c->cv, &c->lock, &dl) == ETIMEDOUT) {
                w->n.refused_credit++;
                rv = MCL_ETIMEDOUT;
                break;
            }
            continue;
        }
        rv = mcl_pstream_is_open(c->ps) ? put_locked(c, w, data, len) : MCL_ECLOSED;
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return rv;
}

mcl_err
mcl_broker_end_transfer(mcl_broker_client *c, uint32_t wid)
{
    if (c == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&c->lock);
    cwr *w = mcl__u64map_get(&c->wrs, wid);
    mcl_err rv = w == NULL ? MCL_ENOENT : !w->active ? MCL_EAGAIN : MCL_OK;
    if (rv == MCL_OK) {
        uint8_t h[16];
        mcl__bmsg m = {.type = MCL__BM_END, .id = wid};
        size_t hn = mcl__bmsg_encode(&m, h);
        rv = mcl__pstream_send2(c->ps, MCL_BROKER_DATA_CHANNEL, MCL__BM_END, 0, h, hn, NULL, 0);
    }
    pthread_mutex_unlock(&c->lock);
    return rv;
}

bool
mcl_broker_writer_active(mcl_broker_client *c, uint32_t wid)
{
    if (c == NULL)
        return false;
    pthread_mutex_lock(&c->lock);
    cwr *w = mcl__u64map_get(&c->wrs, wid);
    bool a = w != NULL && w->active;
    pthread_mutex_unlock(&c->lock);
    return a;
}

mcl_err
mcl_broker_writer_close(mcl_broker_client *c, uint32_t wid)
{
    if (c == NULL)
        return MCL_EINVAL;
    mcl_value *a = args_new();
    if (a == NULL || mcl_value_put_uint(a, "wid", wid) != MCL_OK) {
        mcl_value_free(a);
        return MCL_ENOMEM;
    }
    mcl_err rv = call(c, "broker.writer_close", a, NULL, NULL, NULL);
    drop_arg d = {c, wid, true};
    (void)mcl_reactor_call(c->r, drop_entry, &d);
    return rv;
}

mcl_err
mcl_broker_counts_of(mcl_broker_client *c, uint32_t id, mcl_broker_counts *out)
{
    if (c == NULL || out == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&c->lock);
    csub *s = mcl__u64map_get(&c->subs, id);
    cwr *w = s ? NULL : mcl__u64map_get(&c->wrs, id);
    mcl_err rv = s ? (*out = s->n, MCL_OK) : w ? (*out = w->n, MCL_OK) : MCL_ENOENT;
    pthread_mutex_unlock(&c->lock);
    return rv;
}

mcl_rpc_client *
mcl_broker_rpc(mcl_broker_client *c)
{
    return c ? c->rpc : NULL;
}

// The relay channel of a service: broker.register (serve) or broker.lookup (call).
static mcl_err
relay_channel(mcl_broker_client *c, const char *method, const char *name, uint32_t *channel)
{
    mcl_value *a = args_new(), *res = NULL;
    if (a == NULL || mcl_value_put_str(a, "name", name) != MCL_OK) {
        mcl_value_free(a);
        return MCL_ENOMEM;
    }
    mcl_err rv = call(c, method, a, NULL, NULL, &res);
    *channel = rv == MCL_OK ? (uint32_t)get_uint(res, "channel") : 0;
    mcl_value_free(res);
    if (rv == MCL_OK && *channel == 0)
        rv = MCL_EPROTO;
    return rv;
}

mcl_err
mcl_broker_serve_rpc(mcl_broker_client *c, const char *name, mcl_rpc_service *svc)
{
    if (c == NULL || name == NULL || svc == NULL)
        return MCL_EINVAL;
    uint32_t ch;
    mcl_err rv = relay_channel(c, "broker.register", name, &ch);
    if (rv == MCL_EEXIST)
        rv = MCL_EALREADY;
    if (rv != MCL_OK)
        return rv;
    rv = mcl_rpc_service_serve(svc, c->ps, ch);
    if (rv != MCL_OK) {
        mcl_value *a = args_new();
        if (a != NULL && mcl_value_put_str(a, "name", name) == MCL_OK)
            (void)call(c, "broker.unregister", a, NULL, NULL, NULL);
        else
            mcl_value_free(a);
    }
    return rv;
}

mcl_err
mcl_broker_rpc_client(mcl_broker_client *c, const char *name, mcl_rpc_client **out)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL || name == NULL || out == NULL)
        return MCL_EINVAL;
    uint32_t ch;
    mcl_err rv = relay_channel(c, "broker.lookup", name, &ch);
    if (rv != MCL_OK)
        return rv;
    mcl_rpc_client_options ro = {.timeout_ms = c->o.timeout_ms,
                                 .describe_ms = c->o.timeout_ms,
                                 .channel = ch,
                                 .reactor = c->r};
    rv = mcl_rpc_client_over(out, c->ps, &ro, NULL, 0);
    return rv == MCL_ECLOSED || rv == MCL_ETIMEDOUT ? MCL_ENOENT : rv;
}

static void
free_each(uint64_t key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    mcl__free(val);
}

void
mcl_broker_client_free(mcl_broker_client *c)
{
    if (c == NULL)
        return;
    // The tick sends acknowledgements through the connection: it stops (and a running tick
    // returns) before the connection goes.
    if (c->r != NULL && c->tick != 0)
        (void)mcl_reactor_remove(c->r, c->tick);
    mcl_rpc_client_free(c->rpc, 500);
    if (c->ps != NULL) {
        (void)mcl_pstream_close(c->ps, 500);
        (void)mcl_pstream_handle_messages(c->ps, MCL_BROKER_DATA_CHANNEL, NULL, NULL);
    }
    mcl_pstream_free(c->ps);
    mcl_reactor_free(c->r);
    mcl__u64map_each(&c->subs, free_each, NULL);
    mcl__u64map_each(&c->wrs, free_each, NULL);
    mcl__u64map_fini(&c->subs);
    mcl__u64map_fini(&c->wrs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cv);
    mcl__free(c);
}
