// SPDX-License-Identifier: BSD-3-Clause
// RPC clients: the service's description, arguments checked before sending, calls on a
// packet stream (include/mcl/rpc.h). A call is a packet-stream request of type = method id;
// its deadline, cancel and transaction id are the stream's (every completion path frees the
// id there), this file adds the envelope, the schema check and the result's decoding.
#include "rpc_int.h"

#include "../core/internal.h"
#include "../pstream/pstream_int.h"
#include "../reactor/reactor_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEF_TIMEOUT_MS = 20000, DEF_DESCRIBE_MS = 5000, DEF_CLOSE_MS = 5000 };

struct mcl_rpc_client {
    mcl_pstream *ps;
    bool own; // dialled by the client (else the caller's: a reference)
    uint32_t channel;
    int timeout_ms;
    mcl__rdesc d;
    const mcl__rinfo **by_name; // sorted by name
    atomic_uint_fast64_t calls, refused, ok, errors, timeouts, cancelled, disconnected, in_flight;
    atomic_int refs; // the owner's, and one per call in flight (a stream of the caller's may
                     // complete them after mcl_rpc_client_free())
};

static _Thread_local char last_error[512];

const char *
mcl_rpc_last_error(void)
{
    return last_error;
}

const char *
mcl_rpc_status_name(mcl_rpc_status st)
{
    return mcl_pstream_status_name(st);
}

// --- description -----------------------------------------------------------------------------

static int
cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const mcl__rinfo *const *)a)->name, (*(const mcl__rinfo *const *)b)->name);
}

static int
key_by_name(const void *key, const void *b)
{
    return strcmp(key, (*(const mcl__rinfo *const *)b)->name);
}

static int
key_by_id(const void *key, const void *b)
{
    uint32_t x = *(const uint32_t *)key, y = ((const mcl__rinfo *)b)->info.id;
    return x < y ? -1 : x > y;
}

static mcl_err
fetch_description(mcl_rpc_client *c, int ms, const char *where, char *errbuf, size_t errlen)
{
    uint8_t env[MCL__RPC_HDR + 1] = {MCL__RPC_VERSION, 0, 0, 0, 0, 0, 0, 0, 0x80};
    mcl__put_be32(env + 4, (uint32_t)ms);
    mcl_pstream_result *r = NULL;
    mcl_err rv =
        mcl_pstream_call(c->ps, c->channel, MCL_RPC_ID_DESCRIBE, 0, env, sizeof(env), ms, &r);
    if (rv != MCL_OK)
        return mcl__fail(rv, errbuf, errlen, "rpc", "%s: the description call failed: %s", where,
                         mcl_strerror(rv));
    switch (r->status) {
    case MCL_PSTREAM_OK:
        rv = mcl__rdesc_decode(&c->d, r->payload, r->len, errbuf, errlen);
        break;
    case MCL_PSTREAM_DEADLINE_EXCEEDED:
        rv = mcl__fail(MCL_ETIMEDOUT, errbuf, errlen, "rpc", "%s: no service answered within %d ms",
                       where, ms);
        break;
    case MCL_PSTREAM_UNIMPLEMENTED:
        rv = mcl__fail(MCL_EPROTO, errbuf, errlen, "rpc",
                       "%s: the peer is not an mcl RPC service (it has no rpc.describe)", where);
        break;
    case MCL_PSTREAM_DISCONNECTED:
    case MCL_PSTREAM_NO_MORE_REQUESTS:
        rv = mcl__fail(MCL_ECLOSED, errbuf, errlen, "rpc", "%s: %s%s%s", where,
                       mcl_pstream_status_text(r->status), r->message[0] ? ": " : "", r->message);
        break;
    default:
        rv = mcl__fail(MCL_EPROTO, errbuf, errlen, "rpc", "%s: rpc.describe said %s%s%s", where,
                       mcl_pstream_status_name(r->status), r->message[0] ? ": " : "", r->message);
    }
    mcl_pstream_result_free(r);
    if (rv != MCL_OK)
        return rv;
    if ((c->by_name = mcl__alloc((c->d.n ? c->d.n : 1) * sizeof(*c->by_name))) == NULL)
        return MCL_ENOMEM;
    for (size_t i = 0; i < c->d.n; i++)
        c->by_name[i] = &c->d.m[i];
    qsort(c->by_name, c->d.n, sizeof(*c->by_name), cmp_by_name);
    return MCL_OK;
}

static void
client_release(mcl_rpc_client *c)
{
    mcl__rdesc_free(&c->d);
    mcl__free(c->by_name);
    mcl__free(c);
}

static void
client_unref(mcl_rpc_client *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        client_release(c);
}

static mcl_err
client_init(mcl_rpc_client **cp, mcl_rpc_client *c, const mcl_rpc_client_options *o,
            const char *where, char *errbuf, size_t errlen)
{
    c->channel = o != NULL ? o->channel : 0;
    c->timeout_ms = o != NULL && o->timeout_ms != 0 ? o->timeout_ms : DEF_TIMEOUT_MS;
    int ms = o != NULL && o->describe_ms > 0 ? o->describe_ms : DEF_DESCRIBE_MS;
    mcl_err rv = fetch_description(c, ms, where, errbuf, errlen);
    if (rv == MCL_OK)
        *cp = c;
    return rv;
}

mcl_err
mcl_rpc_client_open(mcl_rpc_client **cp, const char *url, const mcl_rpc_client_options *o,
                    char *errbuf, size_t errlen)
{
    if (cp != NULL)
        *cp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (cp == NULL || url == NULL || (o != NULL && o->timeout_ms < -1))
        return MCL_EINVAL;
    mcl_rpc_client *c = mcl__zalloc(sizeof(*c));
    if (c == NULL)
        return MCL_ENOMEM;
    atomic_init(&c->refs, 1);
    c->own = true;
    mcl_err rv = mcl_pstream_dial(&c->ps, url, o != NULL ? &o->stream : NULL);
    if (rv != MCL_OK) {
        mcl__free(c);
        return mcl__fail(rv, errbuf, errlen, "rpc", "%s: %s", url, mcl_strerror(rv));
    }
    rv = o != NULL && o->reactor != NULL ? mcl_pstream_attach(c->ps, o->reactor)
                                         : mcl_pstream_start(c->ps);
    if (rv != MCL_OK)
        mcl__fail(rv, errbuf, errlen, "rpc", "%s: cannot drive the stream: %s", url,
                  mcl_strerror(rv));
    else
        rv = client_init(cp, c, o, url, errbuf, errlen);
    if (rv != MCL_OK) {
        mcl_pstream_free(c->ps);
        client_release(c);
    }
    return rv;
}

mcl_err
mcl_rpc_client_over(mcl_rpc_client **cp, mcl_pstream *ps, const mcl_rpc_client_options *o,
                    char *errbuf, size_t errlen)
{
    if (cp != NULL)
        *cp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (cp == NULL || ps == NULL || (o != NULL && o->timeout_ms < -1))
        return MCL_EINVAL;
    mcl_rpc_client *c = mcl__zalloc(sizeof(*c));
    if (c == NULL)
        return MCL_ENOMEM;
    atomic_init(&c->refs, 1);
    c->ps = ps;
    mcl_pstream_ref(ps);
    mcl_err rv = client_init(cp, c, o, mcl_pstream_url(ps)[0] ? mcl_pstream_url(ps) : "stream",
                             errbuf, errlen);
    if (rv != MCL_OK) {
        mcl_pstream_unref(ps);
        client_release(c);
    }
    return rv;
}

void
mcl_rpc_client_free(mcl_rpc_client *c, int timeout_ms)
{
    if (c == NULL)
        return;
    if (c->own) {
        (void)mcl_pstream_close(c->ps, timeout_ms > 0 ? timeout_ms : DEF_CLOSE_MS);
        mcl_pstream_free(c->ps);
    } else {
        mcl_pstream_unref(c->ps);
    }
    client_unref(c);
}

const char *
mcl_rpc_client_service_name(const mcl_rpc_client *c)
{
    return c ? c->d.service : "";
}

const char *
mcl_rpc_client_service_doc(const mcl_rpc_client *c)
{
    return c ? c->d.doc : "";
}

size_t
mcl_rpc_client_nmethods(const mcl_rpc_client *c)
{
    return c ? c->d.n : 0;
}

const mcl_rpc_method_info *
mcl_rpc_client_method_at(const mcl_rpc_client *c, size_t i)
{
    return c && i < c->d.n ? &c->d.m[i].info : NULL;
}

const mcl_rpc_method_info *
mcl_rpc_client_method(const mcl_rpc_client *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    const mcl__rinfo *const *r =
        bsearch(name, c->by_name, c->d.n, sizeof(*c->by_name), key_by_name);
    return r ? &(*r)->info : NULL;
}

const mcl_rpc_method_info *
mcl_rpc_client_method_by_id(const mcl_rpc_client *c, uint32_t id)
{
    if (c == NULL)
        return NULL;
    const mcl__rinfo *r = bsearch(&id, c->d.m, c->d.n, sizeof(*c->d.m), key_by_id);
    return r ? &r->info : NULL;
}

size_t
mcl_rpc_client_max_args(const mcl_rpc_client *c)
{
    return c ? (size_t)c->d.max_args : 0;
}

mcl_pstream *
mcl_rpc_client_stream(const mcl_rpc_client *c)
{
    return c ? c->ps : NULL;
}

mcl_err
mcl_rpc_client_stats(const mcl_rpc_client *c, mcl_rpc_client_counters *st)
{
    if (c == NULL || st == NULL)
        return MCL_EINVAL;
    mcl_rpc_client *w = (mcl_rpc_client *)c; // (atomics: loads only)
    *st = (mcl_rpc_client_counters){.calls = atomic_load(&w->calls),
                                    .refused = atomic_load(&w->refused),
                                    .ok = atomic_load(&w->ok),
                                    .errors = atomic_load(&w->errors),
                                    .timeouts = atomic_load(&w->timeouts),
                                    .cancelled = atomic_load(&w->cancelled),
                                    .disconnected = atomic_load(&w->disconnected),
                                    .in_flight = atomic_load(&w->in_flight)};
    return MCL_OK;
}

mcl_err
mcl_rpc_check(const mcl_rpc_method_info *m, const mcl_value *args, const char **field, char *errbuf,
              size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (field != NULL)
        *field = "";
    if (m == NULL)
        return MCL_EINVAL;
    return mcl__rpc_check(m->args, m->nargs, m->flags & MCL_RPC_OPEN_ARGS, args, field, errbuf,
                          errlen);
}

// --- calls -----------------------------------------------------------------------------------

// Encodes a call of m after checking its arguments; refusals go to *st/*msg/*field.
static mcl_err
prepare(mcl_rpc_client *c, const mcl_rpc_method_info *m, const mcl_value *args, int timeout_ms,
        mcl__rbuf *b, char *msg, size_t msglen, const char **field)
{
    mcl_err rv =
        mcl__rpc_check(m->args, m->nargs, m->flags & MCL_RPC_OPEN_ARGS, args, field, msg, msglen);
    if (rv != MCL_OK)
        return rv;
    int ms = timeout_ms == 0 ? c->timeout_ms : timeout_ms;
    uint32_t budget = ms < 0 ? MCL__RPC_NO_BUDGET : (uint32_t)ms;
    mcl__rbuf_init(b, c->d.max_args > 0 ? (size_t)c->d.max_args + MCL__RPC_HDR : 0);
    rv = mcl__renv_encode(b, budget, args);
    if (rv == MCL_EMSGSIZE)
        snprintf(msg, msglen, "the arguments are larger than the %zu bytes the service takes",
                 (size_t)c->d.max_args);
    else if (rv == MCL_ERANGE)
        snprintf(msg, msglen, "the arguments are nested too deeply");
    if (rv != MCL_OK)
        mcl__rbuf_fini(b);
    return rv;
}

// A result in one allocation: the public part first.
typedef struct result_block {
    mcl_rpc_result pub;
    mcl_value *value;
    char text[]; // message, then field
} result_block;

static result_block *
block_new(mcl_rpc_status st, bool local, const char *msg, const char *field, mcl_value *value,
          uint32_t method, uint64_t call_id, int64_t latency)
{
    size_t ml = strlen(msg), fl = strlen(field);
    result_block *r = mcl__alloc(sizeof(*r) + ml + fl + 2);
    if (r == NULL) {
        mcl_value_free(value);
        return NULL;
    }
    memcpy(r->text, msg, ml + 1);
    memcpy(r->text + ml + 1, field, fl + 1);
    r->value = value;
    r->pub = (mcl_rpc_result){.status = st,
                              .local = local,
                              .message = r->text,
                              .field = r->text + ml + 1,
                              .value = value,
                              .method = method,
                              .call_id = call_id,
                              .latency_ns = latency};
    return r;
}

void
mcl_rpc_result_free(mcl_rpc_result *r)
{
    if (r == NULL)
        return;
    result_block *b = (result_block *)r;
    mcl_value_free(b->value);
    mcl__free(b);
}

static void
result_free_void(void *r)
{
    mcl_rpc_result_free(r);
}

// Turns a stream result into a call's: decodes the result map (OK) or the details of a
// refusal ({"field": name}); a reply that cannot be read is INTERNAL (local).
static void
convert(const mcl_pstream_result *r, mcl_rpc_status *st, bool *local, const char **msg, char *why,
        size_t whylen, mcl_value **value, const char **field, mcl_value **details)
{
    *st = r->status;
    *local = r->local;
    *msg = r->message;
    *value = *details = NULL;
    *field = "";
    if (r->status == MCL_PSTREAM_OK) {
        char d[200];
        if (mcl__rpc_decode_map(r->payload, r->len, value, d, sizeof(d)) != MCL_OK) {
            snprintf(why, whylen, "the service's reply cannot be read: %s", d);
            *st = MCL_PSTREAM_INTERNAL;
            *local = true;
            *msg = why;
        }
    } else if (r->len > 0 &&
               mcl__rpc_decode_map(r->payload, r->len, details, why, whylen) == MCL_OK) {
        size_t n;
        if (mcl_value_get_str(mcl_value_find(*details, "field"), field, &n) != MCL_OK)
            *field = "";
    }
}

static void
count_end(mcl_rpc_client *c, mcl_rpc_status st)
{
    atomic_fetch_sub(&c->in_flight, 1);
    if (st == MCL_PSTREAM_OK)
        atomic_fetch_add(&c->ok, 1);
    else
        atomic_fetch_add(&c->errors, 1);
    if (st == MCL_PSTREAM_DEADLINE_EXCEEDED)
        atomic_fetch_add(&c->timeouts, 1);
    else if (st == MCL_PSTREAM_CANCELLED)
        atomic_fetch_add(&c->cancelled, 1);
    else if (st == MCL_PSTREAM_DISCONNECTED || st == MCL_PSTREAM_PROTOCOL_ERROR)
        atomic_fetch_add(&c->disconnected, 1);
}

// An asynchronous call in flight.
typedef struct pending {
    mcl_rpc_client *c;
    uint32_t method;
    int64_t t0;
    mcl_rpc_done_cb cb;
    void *user;
    mcl_promise *promise;
} pending;

static void
on_done(const mcl_pstream_result *r, void *user)
{
    pending *p = user;
    mcl_rpc_status st;
    bool local;
    const char *msg, *field;
    char why[256];
    mcl_value *value, *details;
    convert(r, &st, &local, &msg, why, sizeof(why), &value, &field, &details);
    int64_t lat = mcl__mono_ns() - p->t0;
    count_end(p->c, st);
    if (p->promise != NULL) {
        result_block *b = block_new(st, local, msg, field, value, p->method, r->id, lat);
        if (b != NULL)
            (void)mcl__promise_resolve_owned(p->promise, &b->pub, result_free_void);
        else
            (void)mcl_promise_fail(p->promise, MCL_ENOMEM);
        mcl_promise_unref(p->promise);
    } else if (p->cb != NULL) {
        mcl_rpc_result res = {.status = st,
                              .local = local,
                              .message = msg,
                              .field = field,
                              .value = value,
                              .method = p->method,
                              .call_id = r->id,
                              .latency_ns = lat};
        p->cb(&res, p->user);
        mcl_value_free(value);
    } else {
        mcl_value_free(value);
    }
    mcl_value_free(details);
    mcl_rpc_client *c = p->c;
    mcl__free(p);
    client_unref(c); // (the last use of the client by this call)
}

static mcl_err
submit(mcl_rpc_client *c, const mcl_rpc_method_info *m, const mcl_value *args, int timeout_ms,
       mcl_rpc_done_cb cb, void *user, mcl_promise *promise, uint64_t *call_id)
{
    last_error[0] = '\0';
    if (call_id != NULL)
        *call_id = 0;
    if (c == NULL || m == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    mcl__rbuf b;
    const char *field;
    mcl_err rv = prepare(c, m, args, timeout_ms, &b, last_error, sizeof(last_error), &field);
    if (rv != MCL_OK) {
        atomic_fetch_add(&c->refused, 1);
        return rv;
    }
    pending *p = mcl__alloc(sizeof(*p));
    if (p == NULL) {
        mcl__rbuf_fini(&b);
        return MCL_ENOMEM;
    }
    *p = (pending){c, m->id, mcl__mono_ns(), cb, user, promise};
    uint64_t id = 0;
    atomic_fetch_add(&c->in_flight, 1);
    atomic_fetch_add(&c->calls, 1);
    atomic_fetch_add(&c->refs, 1); // the call's, until on_done()
    if (promise != NULL)
        mcl_promise_ref(promise);
    rv = mcl_pstream_submit(c->ps, c->channel, m->id, 0, b.p, b.n,
                            timeout_ms == 0 ? c->timeout_ms : timeout_ms, on_done, p, &id);
    mcl__rbuf_fini(&b);
    if (rv != MCL_OK) {
        atomic_fetch_sub(&c->in_flight, 1);
        atomic_fetch_sub(&c->calls, 1);
        atomic_fetch_sub(&c->refs, 1); // (never the last: the caller holds the client)
        if (promise != NULL)
            mcl_promise_unref(promise);
        mcl__free(p);
        snprintf(last_error, sizeof(last_error), "the call could not be sent: %s",
                 mcl_strerror(rv));
        return rv;
    }
    if (call_id != NULL)
        *call_id = id;
    return MCL_OK;
}

mcl_err
mcl_rpc_submit(mcl_rpc_client *c, const mcl_rpc_method_info *m, const mcl_value *args,
               int timeout_ms, mcl_rpc_done_cb cb, void *user, uint64_t *call_id)
{
    return submit(c, m, args, timeout_ms, cb, user, NULL, call_id);
}

typedef struct canceller {
    mcl_pstream *ps; // a reference: the promise may outlive the client
    uint64_t id;
} canceller;

static void
cancel_call(mcl_promise *p, void *user)
{
    (void)p;
    canceller *k = user;
    (void)mcl_pstream_cancel(k->ps, k->id);
}

static void
canceller_free(void *user)
{
    canceller *k = user;
    mcl_pstream_unref(k->ps);
    mcl__free(k);
}

mcl_err
mcl_rpc_submit_promise(mcl_rpc_client *c, const mcl_rpc_method_info *m, const mcl_value *args,
                       int timeout_ms, mcl_promise *p)
{
    if (c == NULL || p == NULL)
        return MCL_EINVAL;
    canceller *k = mcl__alloc(sizeof(*k)); // first: after the submit, nothing may fail
    if (k == NULL)
        return MCL_ENOMEM;
    mcl_err rv = submit(c, m, args, timeout_ms, NULL, NULL, p, &k->id);
    if (rv != MCL_OK) {
        mcl__free(k);
        return rv;
    }
    k->ps = c->ps;
    mcl_pstream_ref(k->ps);
    uint64_t id = k->id;
    (void)mcl__promise_set_canceller_owned(p, cancel_call, k, canceller_free);
    mcl_err st;
    if (mcl_promise_settled(p, &st, NULL) && st == MCL_ECANCELED) // before it had a canceller
        (void)mcl_pstream_cancel(c->ps, id);
    return MCL_OK;
}

mcl_err
mcl_rpc_cancel(mcl_rpc_client *c, uint64_t call_id)
{
    if (c == NULL || call_id == 0)
        return MCL_EINVAL;
    return mcl_pstream_cancel(c->ps, call_id);
}

// A result decided here, for mcl_rpc_call().
static mcl_err
local_result(mcl_rpc_result **out, mcl_rpc_status st, const char *msg, const char *field,
             uint32_t method)
{
    result_block *b = block_new(st, true, msg, field ? field : "", NULL, method, 0, 0);
    if (b == NULL)
        return MCL_ENOMEM;
    *out = &b->pub;
    return MCL_OK;
}

mcl_err
mcl_rpc_call(mcl_rpc_client *c, const char *method, const mcl_value *args, int timeout_ms,
             mcl_rpc_result **out)
{
    if (out != NULL)
        *out = NULL;
    if (c == NULL || method == NULL || out == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    if (mcl__pstream_on_driver(c->ps))
        return MCL_ESTATE; // (so that MCL_ESTATE from the stream below means: it is ending)
    const mcl_rpc_method_info *m;
    mcl_rpc_method_info byid; // "#ID" of a method the description does not list: unchecked
    if (method[0] == '#') {
        char *end;
        unsigned long id = strtoul(method + 1, &end, 10);
        if (end == method + 1 || *end != '\0' || id == 0 || id > UINT32_MAX)
            return MCL_EINVAL;
        m = mcl_rpc_client_method_by_id(c, (uint32_t)id);
        if (m == NULL) {
            byid = (mcl_rpc_method_info){
                .id = (uint32_t)id, .name = method, .doc = "", .flags = MCL_RPC_OPEN_ARGS};
            m = &byid;
        }
    } else if ((m = mcl_rpc_client_method(c, method)) == NULL) {
        char msg[MCL__RPC_MAX_NAME + 128];
        snprintf(msg, sizeof(msg), "the service '%s' has no method '%.*s'", c->d.service,
                 MCL__RPC_MAX_NAME, method);
        atomic_fetch_add(&c->refused, 1);
        return local_result(out, MCL_PSTREAM_UNIMPLEMENTED, msg, NULL, 0);
    }
    mcl__rbuf b;
    char msg[512];
    const char *field;
    mcl_err rv = prepare(c, m, args, timeout_ms, &b, msg, sizeof(msg), &field);
    if (rv != MCL_OK) {
        atomic_fetch_add(&c->refused, 1);
        if (rv == MCL_ETYPE || rv == MCL_EMISSING)
            return local_result(out, MCL_PSTREAM_INVALID_ARGUMENT, msg, field, m->id);
        if (rv == MCL_EMSGSIZE)
            return local_result(out, MCL_PSTREAM_RESOURCE_EXHAUSTED, msg, NULL, m->id);
        if (rv == MCL_ERANGE)
            return local_result(out, MCL_PSTREAM_INVALID_ARGUMENT, msg, NULL, m->id);
        return rv;
    }
    int64_t t0 = mcl__mono_ns();
    mcl_pstream_result *r = NULL;
    atomic_fetch_add(&c->in_flight, 1);
    atomic_fetch_add(&c->calls, 1);
    rv = mcl_pstream_call(c->ps, c->channel, m->id, 0, b.p, b.n,
                          timeout_ms == 0 ? c->timeout_ms : timeout_ms, &r);
    mcl__rbuf_fini(&b);
    if (rv != MCL_OK) {
        atomic_fetch_sub(&c->in_flight, 1);
        atomic_fetch_sub(&c->calls, 1);
        if (rv == MCL_ECLOSED) { // the connection had ended: say so as a status
            atomic_fetch_add(&c->refused, 1);
            return local_result(out, MCL_PSTREAM_DISCONNECTED, mcl_pstream_end_reason(c->ps), NULL,
                                m->id);
        }
        if (rv == MCL_ETIMEDOUT) {
            atomic_fetch_add(&c->refused, 1);
            return local_result(out, MCL_PSTREAM_DEADLINE_EXCEEDED,
                                "no room in the send queue before the deadline", NULL, m->id);
        }
        if (rv == MCL_ESTATE) { // (not the driving thread: checked above) the stream is ending
            atomic_fetch_add(&c->refused, 1);
            return local_result(out, MCL_PSTREAM_NO_MORE_REQUESTS,
                                "the connection is closing: no more calls on it", NULL, m->id);
        }
        if (rv == MCL_EMSGSIZE) {
            atomic_fetch_add(&c->refused, 1);
            return local_result(out, MCL_PSTREAM_RESOURCE_EXHAUSTED,
                                "the call is larger than the connection's largest packet", NULL,
                                m->id);
        }
        return rv;
    }
    mcl_rpc_status st;
    bool local;
    const char *rmsg;
    char why[256];
    mcl_value *value, *details;
    convert(r, &st, &local, &rmsg, why, sizeof(why), &value, &field, &details);
    count_end(c, st);
    result_block *res = block_new(st, local, rmsg, field, value, m->id, r->id, mcl__mono_ns() - t0);
    mcl_value_free(details);
    mcl_pstream_result_free(r);
    if (res == NULL)
        return MCL_ENOMEM;
    *out = &res->pub;
    return MCL_OK;
}
