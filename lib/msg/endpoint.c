// SPDX-License-Identifier: BSD-3-Clause
// Message broadcaster and listener: typed checks and msgpack on top of the raw endpoints.
#include "msg_int.h"

#include "../core/internal.h"
#include "../core/subs.h"
#include "../raw/listener_int.h"

#include <stdatomic.h>
#include <string.h>

struct mcl_msg_broadcaster {
    const mcl_msgtype *type;
    mcl_raw_broadcaster *raw;
};

mcl_err
mcl_msg_broadcaster_open(mcl_msg_broadcaster **bp, const mcl_msgtype *type,
                         const mcl_connection *conn, const char *topic)
{
    if (bp != NULL)
        *bp = NULL;
    if (bp == NULL || type == NULL)
        return MCL_EINVAL;
    if (conn == NULL && (conn = mcl_msgtype_connection(type)) == NULL)
        return mcl__fail(MCL_EINVAL, NULL, 0, "message",
                         "type '%s' has no connection: give one to open a broadcaster",
                         mcl_msgtype_name(type));
    mcl_msg_broadcaster *b = mcl__zalloc(sizeof(*b));
    if (b == NULL)
        return MCL_ENOMEM;
    b->type = type;
    mcl_err rv = mcl_raw_broadcaster_open(&b->raw, conn, topic ? topic : mcl_msgtype_topic(type));
    if (rv != MCL_OK) {
        mcl__free(b);
        return rv;
    }
    *bp = b;
    return MCL_OK;
}

mcl_err
mcl_msg_broadcaster_publish(mcl_msg_broadcaster *b, const mcl_msg *msg, const char *topic)
{
    if (b == NULL || msg == NULL)
        return MCL_EINVAL;
    if (!mcl_raw_broadcaster_is_open(b->raw))
        return MCL_ECLOSED;
    mcl_err rv = mcl_msg_check(msg, b->type, NULL, 0); // the log callback hears why
    if (rv != MCL_OK)
        return rv;
    void *buf;
    size_t len;
    if ((rv = mcl_msg_encode(msg, &buf, &len)) != MCL_OK)
        return rv;
    rv = mcl_raw_broadcaster_publish(b->raw, topic, buf, len);
    mcl_free(buf);
    return rv;
}

mcl_err
mcl_msg_broadcaster_close(mcl_msg_broadcaster *b)
{
    return b ? mcl_raw_broadcaster_close(b->raw) : MCL_EINVAL;
}

bool
mcl_msg_broadcaster_is_open(const mcl_msg_broadcaster *b)
{
    return b != NULL && mcl_raw_broadcaster_is_open(b->raw);
}

void
mcl_msg_broadcaster_free(mcl_msg_broadcaster *b)
{
    if (b == NULL)
        return;
    mcl_raw_broadcaster_free(b->raw);
    mcl__free(b);
}

mcl_raw_broadcaster *
mcl_msg_broadcaster_raw(mcl_msg_broadcaster *b)
{
    return b ? b->raw : NULL;
}

// --- listener --------------------------------------------------------------------------------

struct mcl_msg_listener {
    const mcl_msgtype *type;
    mcl_raw_listener *raw;
    mcl__subs subs;
    bool subs_ready;
    atomic_uint_fast64_t delivered, undecodable;
    mcl_msg *cur; // what recv returned last
};

// Decodes a payload; counts and logs what cannot be decoded.
static mcl_msg *
decode(mcl_msg_listener *l, const mcl_raw_msg *raw)
{
    mcl_msg *m = NULL;
    char why[256];
    mcl_err rv = mcl_msg_decode(&m, raw->payload, raw->len, l->type, why, sizeof(why));
    if (rv != MCL_OK) {
        atomic_fetch_add_explicit(&l->undecodable, 1, memory_order_relaxed);
        if (mcl__log_enabled(MCL_LOG_DEBUG))
            mcl__log(MCL_LOG_DEBUG, "message",
                     "skipped a %zu-byte payload on '%s' from %016llx seq %llu: %s", raw->len,
                     raw->topic, (unsigned long long)raw->publisher,
                     (unsigned long long)raw->seq, why[0] ? why : mcl_strerror(rv));
        return NULL;
    }
    return m;
}

typedef struct call_arg {
    const mcl_msg *msg;
    const mcl_raw_msg *raw;
} call_arg;

static void
invoke_msg(mcl__fn fn, void *user, void *arg)
{
    const call_arg *a = arg;
    ((mcl_msg_cb)fn)(a->msg, a->raw, user);
}

static void
on_raw(const mcl_raw_msg *raw, void *user)
{
    mcl_msg_listener *l = user;
    mcl_msg *m = decode(l, raw);
    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&l->delivered, 1, memory_order_relaxed);
    call_arg a = {m, raw};
    mcl__subs_call(&l->subs, invoke_msg, &a);
    mcl_msg_free(m);
}

mcl_err
mcl_msg_listener_open(mcl_msg_listener **lp, const mcl_msgtype *type, const mcl_connection *conn,
                      const char *const *topics, size_t ntopics)
{
    if (lp != NULL)
        *lp = NULL;
    if (lp == NULL)
        return MCL_EINVAL;
    if (conn == NULL && (type == NULL || (conn = mcl_msgtype_connection(type)) == NULL))
        return mcl__fail(MCL_EINVAL, NULL, 0, "message", "a message listener needs a connection");
    mcl_msg_listener *l = mcl__zalloc(sizeof(*l));
    if (l == NULL)
        return MCL_ENOMEM;
    l->type = type;
    mcl_err rv = mcl__subs_init(&l->subs, l);
    if (rv == MCL_OK) {
        l->subs_ready = true;
        rv = mcl_raw_listener_open(&l->raw, conn, topics, ntopics);
    }
    if (rv == MCL_OK)
        rv = mcl_raw_listener_subscribe(l->raw, on_raw, l);
    if (rv != MCL_OK) {
        mcl_msg_listener_free(l);
        return rv;
    }
    *lp = l;
    return MCL_OK;
}

mcl_err
mcl_msg_listener_recv(mcl_msg_listener *l, const mcl_msg **msgp, const mcl_raw_msg **rawp,
                      int timeout_ms)
{
    if (msgp != NULL)
        *msgp = NULL;
    if (rawp != NULL)
        *rawp = NULL;
    if (l == NULL || msgp == NULL)
        return MCL_EINVAL;
    mcl_msg_free(l->cur);
    l->cur = NULL;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : mcl__mono_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int wait = timeout_ms;
        if (timeout_ms >= 0) {
            int64_t left = deadline - mcl__mono_ns();
            wait = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        const mcl_raw_msg *raw;
        mcl_err rv = mcl_raw_listener_recv(l->raw, &raw, wait);
        if (rv != MCL_OK)
            return rv;
        mcl_msg *m = decode(l, raw);
        if (m == NULL)
            continue; // counted; keep going until the deadline
        atomic_fetch_add_explicit(&l->delivered, 1, memory_order_relaxed);
        l->cur = m;
        *msgp = m;
        if (rawp != NULL)
            *rawp = raw;
        return MCL_OK;
    }
}

mcl_err
mcl_msg_listener_subscribe(mcl_msg_listener *l, mcl_msg_cb cb, void *user)
{
    if (l == NULL || cb == NULL)
        return MCL_EINVAL;
    return mcl__subs_add(&l->subs, (mcl__fn)cb, user);
}

mcl_err
mcl_msg_listener_unsubscribe(mcl_msg_listener *l, mcl_msg_cb cb, void *user)
{
    if (l == NULL || cb == NULL)
        return MCL_EINVAL;
    return mcl__subs_remove(&l->subs, (mcl__fn)cb, user);
}

size_t
mcl_msg_listener_subscriptions(const mcl_msg_listener *l)
{
    return l ? mcl__subs_count((mcl__subs *)(uintptr_t)&l->subs) : 0;
}

mcl_err
mcl_msg_listener_start(mcl_msg_listener *l)
{
    return l ? mcl_raw_listener_start(l->raw) : MCL_EINVAL;
}

mcl_err
mcl_msg_listener_stop(mcl_msg_listener *l)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(l))
        return MCL_ESTATE;
    return mcl_raw_listener_stop(l->raw);
}

mcl_err
mcl_msg_listener_fd(const mcl_msg_listener *l, int *fd)
{
    return l ? mcl_raw_listener_fd(l->raw, fd) : MCL_EINVAL;
}

bool
mcl_msg_listener_pending(const mcl_msg_listener *l)
{
    return l != NULL && mcl_raw_listener_pending(l->raw);
}

mcl_err
mcl_msg_listener_dispatch(mcl_msg_listener *l, size_t max, size_t *delivered)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(l))
        return MCL_ESTATE;
    return mcl_raw_listener_dispatch(l->raw, max, delivered);
}

mcl_err
mcl_msg_listener_close(mcl_msg_listener *l)
{
    if (l == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(l))
        return MCL_ESTATE;
    mcl_err rv = mcl_raw_listener_close(l->raw);
    if (rv == MCL_OK) {
        mcl_msg_free(l->cur);
        l->cur = NULL;
    }
    return rv;
}

bool
mcl_msg_listener_is_open(const mcl_msg_listener *l)
{
    return l != NULL && mcl_raw_listener_is_open(l->raw);
}

void
mcl_msg_listener_free(mcl_msg_listener *l)
{
    if (l == NULL || mcl__subs_running(l))
        return;
    mcl_raw_listener_free(l->raw);
    mcl_msg_free(l->cur);
    if (l->subs_ready)
        mcl__subs_fini(&l->subs, false);
    mcl__free(l);
}

const char *
mcl_msg_listener_url(const mcl_msg_listener *l)
{
    return l ? mcl_raw_listener_url(l->raw) : "";
}

mcl_err
mcl_msg_listener_stats(const mcl_msg_listener *l, mcl_msg_stats *st)
{
    if (l == NULL || st == NULL)
        return MCL_EINVAL;
    mcl_err rv = mcl_raw_listener_stats(l->raw, &st->raw);
    st->messages = atomic_load_explicit(&l->delivered, memory_order_relaxed);
    st->undecodable = atomic_load_explicit(&l->undecodable, memory_order_relaxed);
    return rv;
}

mcl_raw_listener *
mcl_msg_listener_raw(mcl_msg_listener *l)
{
    return l ? l->raw : NULL;
}

static mcl_err
source_fd(const void *obj, int *fd)
{
    const mcl_msg_listener *l = obj;
    return mcl__raw_listener_source.fd(l->raw, fd); // MCL_ESTATE while its thread runs
}

static void
source_dispatch(void *obj)
{
    (void)mcl_msg_listener_dispatch(obj, 0, NULL);
}

const mcl__source_ops mcl__msg_listener_source = {.fd = source_fd, .dispatch = source_dispatch};
