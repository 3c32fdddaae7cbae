// SPDX-License-Identifier: BSD-3-Clause
// RPC services: a method table served on packet streams (include/mcl/rpc.h).
//
// Every request of a served channel comes to on_request() on the stream's driving thread. It
// finds the method by id (the request's type), reads the envelope, sheds expired work, decodes
// and checks the arguments, and runs the handler with a call object. A call is answered once:
// `state` goes from OPEN to ANSWERED (the user's reply) or CANCELLED (the library's, when the
// caller cancels a deferred call) by one atomic exchange, and whoever wins sends the reply.
//
// A call's memory: one reference held by the packet stream's request handle (dropped by its
// release hook, after the reply and after any cancel callback on it has returned), one by the
// user while a deferred call is unanswered. The service's memory: one reference by its owner,
// one per live call (so deferred answers after mcl_rpc_service_free() are safe).
#include "rpc_int.h"

#include "../core/hist.h"
#include "../core/internal.h"
#include "../core/u64map.h"
#include "../pstream/pstream_int.h"
#include "../pstream/pwire.h" // mcl__utf8_ok

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEF_MAX_ARGS = 1 << 20, DEF_CLOSE_MS = 5000 };

typedef struct rmethod {
    mcl__rinfo ri;           // what the description says of it (ids, names, schemas)
    mcl_rpc_handler handler; // (the built-in methods' take the service as user)
    void *user;
    pthread_mutex_t mu; // the counters
    mcl_rpc_method_stats st;
    mcl__hist hist; // latency, ns
} rmethod;

struct mcl_rpc_service {
    atomic_int refs;
    char *name, *doc;
    size_t max_args;
    mcl_reactor *reactor;
    mcl_pstream_options stream_opt;
    pthread_mutex_t mu; // frozen, the servers, the streams served
    atomic_bool frozen; // serving: the table no longer changes
    rmethod **m;        // sorted by id
    size_t n;
    mcl__u64map by_id;
    uint8_t *desc; // the encoded description (made when frozen)
    size_t desc_len;
    mcl_pstream_server **srv;
    size_t nsrv;
    struct served {
        mcl_pstream *ps;
        uint32_t channel;
    } * served;
    size_t nserved;
    char *url;
    atomic_uint_fast64_t unknown, malformed; // calls of no method; calls not readable
};

enum { OPEN = 0, ANSWERED = 1, CANCELLED = 2 };

struct mcl_rpc_req {
    atomic_int refs;
    atomic_int state;
    atomic_bool user_ref;      // a deferred call's user holds a reference
    bool deferred, in_handler; // on the driving thread, during the handler
    mcl_rpc_service *svc;
    rmethod *m;
    mcl_pstream *ps;
    mcl_pstream_request *rq;
    mcl_value *args, *result;
    int64_t t0, deadline; // CLOCK_MONOTONIC ns; INT64_MAX: no deadline
    int64_t budget_ns;    // what the caller gave it
};

// --- lifetime --------------------------------------------------------------------------------

static void
method_free(rmethod *m)
{
    if (m == NULL)
        return;
    mcl__rinfo_fini(&m->ri);
    pthread_mutex_destroy(&m->mu);
    mcl__free(m);
}

static void
svc_unref(mcl_rpc_service *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->n; i++)
        method_free(s->m[i]);
    mcl__free(s->m);
    mcl__u64map_fini(&s->by_id);
    mcl__free(s->desc);
    mcl__free(s->srv);
    mcl__free(s->served);
    mcl__free(s->url);
    mcl__free(s->name);
    mcl__free(s->doc);
    pthread_mutex_destroy(&s->mu);
    mcl__free(s);
}

static void
call_unref(mcl_rpc_req *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    mcl_value_free(c->args);
    mcl_value_free(c->result);
    mcl_rpc_service *s = c->svc;
    mcl_pstream_unref(c->ps);
    mcl__free(c);
    svc_unref(s);
}

// The request handle is gone (under the stream's lock: touch nothing of the stream).
static void
call_rq_released(void *arg)
{
    call_unref(arg);
}

// --- building the service ------------------------------------------------------------------

static mcl_err
method_new(rmethod **mp, const mcl_rpc_method *src, char *errbuf, size_t errlen)
{
    rmethod *m = mcl__zalloc(sizeof(*m));
    if (m == NULL)
        return MCL_ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    char why[200] = "";
    mcl_err rv = mcl__rschema_copy(&m->ri.args, src->args, src->nargs, why, sizeof(why));
    if (rv == MCL_EINVAL)
        mcl__fail(rv, errbuf, errlen, "rpc", "method '%s': arguments: %s", src->name, why);
    if (rv == MCL_OK && (rv = mcl__rschema_copy(&m->ri.result, src->result, src->nresult, why,
                                                sizeof(why))) == MCL_EINVAL)
        mcl__fail(rv, errbuf, errlen, "rpc", "method '%s': result: %s", src->name, why);
    m->ri.name = mcl__strdup(src->name);
    m->ri.doc = mcl__strdup(src->doc != NULL ? src->doc : "");
    if (rv == MCL_OK && (m->ri.name == NULL || m->ri.doc == NULL))
        rv = MCL_ENOMEM;
    if (rv != MCL_OK) {
        method_free(m);
        return rv;
    }
    m->handler = src->handler;
    m->user = src->user;
    mcl__rinfo_link(&m->ri, src->id, src->flags);
    *mp = m;
    return MCL_OK;
}

static void builtin_describe(mcl_rpc_req *c, const mcl_value *args, void *user);
static void builtin_stats(mcl_rpc_req *c, const mcl_value *args, void *user);

static const mcl_rpc_field stats_args[] = {
    {"method", MCL_TYPE_STR, true, NULL, "only this method (default: all)"}};
static const mcl_rpc_field stats_result[] = {
    {"methods", MCL_TYPE_ARRAY, false, NULL,
     "per method: id, name, calls, ok, errors, invalid, timeouts, cancelled, in_progress, "
     "p50_us, p99_us, max_us"},
    {"unknown", MCL_TYPE_INT, false, NULL, "calls of methods the service does not have"},
    {"malformed", MCL_TYPE_INT, false, NULL, "calls that could not be read"}};
static const mcl_rpc_field describe_result[] = {
    {"protocol", MCL_TYPE_INT, false, NULL, "1"},
    {"service", MCL_TYPE_STR, false, NULL, NULL},
    {"doc", MCL_TYPE_STR, true, NULL, NULL},
    {"max_args", MCL_TYPE_INT, false, NULL, "largest encoded arguments accepted, bytes"},
    {"methods", MCL_TYPE_ARRAY, false, NULL, "id, name, doc, flags, args, result"}};

static const mcl_rpc_method builtins[] = {
    {MCL_RPC_ID_DESCRIBE, "rpc.describe", "the service's methods, with ids, schemas and docs", NULL,
     0, describe_result, sizeof(describe_result) / sizeof(describe_result[0]), 0, builtin_describe,
     NULL},
    {MCL_RPC_ID_STATS, "rpc.stats", "per-method counters and latency (arrival to reply)",
     stats_args, 1, stats_result, sizeof(stats_result) / sizeof(stats_result[0]), 0, builtin_stats,
     NULL},
};

static int
cmp_method(const void *a, const void *b)
{
    uint32_t x = (*(rmethod *const *)a)->ri.info.id, y = (*(rmethod *const *)b)->ri.info.id;
    return x < y ? -1 : x > y;
}

// Adds methods (checked by the caller) to the table: all or none.
static mcl_err
table_add(mcl_rpc_service *s, rmethod **add, size_t n)
{
    rmethod **nm = mcl__realloc(s->m, (s->n + n) * sizeof(*nm));
    if (nm == NULL)
        return MCL_ENOMEM;
    s->m = nm;
    for (size_t i = 0; i < n; i++) {
        if (mcl__u64map_put(&s->by_id, add[i]->ri.info.id, add[i]) != MCL_OK) {
            for (size_t j = 0; j < i; j++)
                mcl__u64map_del(&s->by_id, add[j]->ri.info.id);
            return MCL_ENOMEM;
        }
    }
    memcpy(s->m + s->n, add, n * sizeof(*add));
    s->n += n;
    qsort(s->m, s->n, sizeof(*s->m), cmp_method);
    return MCL_OK;
}

static bool
name_taken(const mcl_rpc_service *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->m[i]->ri.name, name) == 0)
            return true;
    return false;
}

mcl_err
mcl_rpc_service_new(mcl_rpc_service **sp, const char *name, const char *doc,
                    const mcl_rpc_service_options *o)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL || (name != NULL && !mcl__rpc_field_name_ok(name)) ||
        (doc != NULL && strlen(doc) > MCL__RPC_MAX_DOC))
        return MCL_EINVAL;
    mcl_rpc_service *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->mu, NULL);
    mcl__u64map_init(&s->by_id);
    s->name = mcl__strdup(name != NULL ? name : "service");
    s->doc = mcl__strdup(doc != NULL ? doc : "");
    s->url = mcl__strdup("");
    s->max_args = o != NULL && o->max_args > 0 ? o->max_args : DEF_MAX_ARGS;
    if (o != NULL) {
        s->reactor = o->reactor;
        s->stream_opt = o->stream;
    }
    rmethod *b[2] = {NULL, NULL};
    mcl_err rv = s->name && s->doc && s->url ? MCL_OK : MCL_ENOMEM;
    for (size_t i = 0; i < 2 && rv == MCL_OK; i++)
        rv = method_new(&b[i], &builtins[i], NULL, 0);
    if (rv == MCL_OK)
        rv = table_add(s, b, 2);
    if (rv != MCL_OK) {
        method_free(b[0]);
        method_free(b[1]);
        svc_unref(s);
        return rv;
    }
    for (size_t i = 0; i < 2; i++)
        s->m[i]->user = s;
    *sp = s;
    return MCL_OK;
}

mcl_err
mcl_rpc_service_add(mcl_rpc_service *s, const mcl_rpc_method *ms, size_t n, char *errbuf,
                    size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (s == NULL || (ms == NULL && n > 0))
        return MCL_EINVAL;
    pthread_mutex_lock(&s->mu);
    mcl_err rv = MCL_OK;
    if (atomic_load(&s->frozen))
        rv = mcl__fail(MCL_ESTATE, errbuf, errlen, "rpc",
                       "the service serves already: its "
                       "methods are fixed");
    else if (s->n + n > MCL__RPC_MAX_METHODS)
        rv = mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc", "at most %d methods",
                       MCL__RPC_MAX_METHODS);
    for (size_t i = 0; i < n && rv == MCL_OK; i++) {
        const mcl_rpc_method *m = &ms[i];
        if (m->id == 0 || m->id > MCL_RPC_ID_MAX)
            rv = mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc", "method %zu: id %u is outside 1..%u",
                           i, (unsigned)m->id, (unsigned)MCL_RPC_ID_MAX);
        else if (!mcl__rpc_name_ok(m->name))
            rv =
                mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc",
                          "method %u: the name must be identifiers joined by '.'", (unsigned)m->id);
        else if (strncmp(m->name, "rpc.", 4) == 0)
            rv = mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc",
                           "method '%s': names starting 'rpc.' are reserved", m->name);
        else if (m->handler == NULL)
            rv =
                mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc", "method '%s' has no handler", m->name);
        else if ((m->doc != NULL && strlen(m->doc) > MCL__RPC_MAX_DOC) ||
                 (m->flags & ~(unsigned)(MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT)))
            rv = mcl__fail(MCL_EINVAL, errbuf, errlen, "rpc",
                           "method '%s': unknown flags, or a description over %d bytes", m->name,
                           MCL__RPC_MAX_DOC);
        else if (mcl__u64map_get(&s->by_id, m->id) != NULL || name_taken(s, m->name))
            rv = mcl__fail(MCL_EEXIST, errbuf, errlen, "rpc",
                           "method '%s' (id %u): the id or the name is taken", m->name,
                           (unsigned)m->id);
        for (size_t j = 0; j < i && rv == MCL_OK; j++)
            if (ms[j].id == m->id || strcmp(ms[j].name, m->name) == 0)
                rv = mcl__fail(MCL_EEXIST, errbuf, errlen, "rpc",
                               "methods '%s' and '%s' share an id or a name", ms[j].name, m->name);
    }
    rmethod **made = NULL;
    if (rv == MCL_OK && n > 0 && (made = mcl__zalloc(n * sizeof(*made))) == NULL)
        rv = MCL_ENOMEM;
    for (size_t i = 0; i < n && rv == MCL_OK; i++)
        rv = method_new(&made[i], &ms[i], errbuf, errlen);
    if (rv == MCL_OK && n > 0)
        rv = table_add(s, made, n);
    if (rv != MCL_OK && made != NULL)
        for (size_t i = 0; i < n; i++)
            method_free(made[i]);
    mcl__free(made);
    pthread_mutex_unlock(&s->mu);
    return rv;
}

// The description, encoded once when the service starts serving.
static mcl_err
make_description(mcl_rpc_service *s)
{
    mcl_value *d, *ms;
    mcl_err rv = mcl_value_new(&d, MCL_TYPE_MAP);
    if (rv != MCL_OK)
        return rv;
    rv = mcl_value_put_uint(d, "protocol", 1);
    if (rv == MCL_OK)
        rv = mcl_value_put_str(d, "service", s->name);
    if (rv == MCL_OK && s->doc[0] != '\0')
        rv = mcl_value_put_str(d, "doc", s->doc);
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(d, "max_args", s->max_args);
    if (rv == MCL_OK)
        rv = mcl_value_put_array(d, "methods", &ms);
    for (size_t i = 0; i < s->n && rv == MCL_OK; i++)
        rv = mcl__rinfo_describe(&s->m[i]->ri, ms);
    void *buf = NULL;
    size_t len = 0;
    if (rv == MCL_OK)
        rv = mcl_value_encode(d, &buf, &len);
    mcl_value_free(d);
    if (rv == MCL_OK) {
        s->desc = buf;
        s->desc_len = len;
    }
    return rv;
}

// Fixes the table (the first serve): the description is made now.
static mcl_err
freeze_locked(mcl_rpc_service *s)
{
    if (atomic_load(&s->frozen))
        return MCL_OK;
    mcl_err rv = make_description(s);
    if (rv == MCL_OK)
        atomic_store(&s->frozen, true);
    return rv;
}

// --- answering -------------------------------------------------------------------------------

static void
count_answer(mcl_rpc_req *c, mcl_rpc_status st, bool by_cancel)
{
    int64_t now = mcl__mono_ns();
    rmethod *m = c->m;
    pthread_mutex_lock(&m->mu);
    m->st.in_progress--;
    if (by_cancel) {
        // The caller's deadline fires before the service's (the budget left the caller before
        // the call arrived here), so a cancel in the last fifth of the budget (at least 5 ms,
        // at most 1 s) is the caller giving up at its deadline.
        int64_t slack = c->budget_ns / 5;
        slack = slack < 5000000 ? 5000000 : slack > 1000000000 ? 1000000000 : slack;
        if (c->deadline != INT64_MAX && now >= c->deadline - slack)
            m->st.timeouts++;
        else
            m->st.cancelled++;
    } else {
        if (st == MCL_PSTREAM_OK)
            m->st.ok++;
        else
            m->st.errors++;
        if (now > c->deadline)
            m->st.timeouts++;
        mcl__hist_add(&m->hist, (uint64_t)(now - c->t0));
    }
    pthread_mutex_unlock(&m->mu);
}

// A status message as valid UTF-8, which the stream requires (it answers INTERNAL instead of
// a message that is not): a caller's field names are any bytes, and a message cut to its buffer
// may end inside a character. Bytes that start no valid character become '?' (in buf).
static const char *
clean_msg(const char *msg, char *buf, size_t cap)
{
    size_t n = msg != NULL ? strlen(msg) : 0;
    if (msg == NULL || (n < cap && mcl__utf8_ok((const uint8_t *)msg, n)))
        return msg;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)msg[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xe0) == 0xc0 ? 2
                   : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4
                                        : 1;
        if (k <= n - i && mcl__utf8_ok((const uint8_t *)msg + i, k)) {
            memcpy(buf + i, msg + i, k);
            i += k;
        } else {
            buf[i++] = '?';
        }
    }
    buf[n] = '\0';
    return buf;
}

// Sends the answer if the call is still open (as `how`: ANSWERED or CANCELLED).
static mcl_err
answer(mcl_rpc_req *c, int how, mcl_rpc_status st, const void *payload, size_t len, const char *msg)
{
    char clean[1024];
    msg = clean_msg(msg, clean, sizeof(clean));
    int expect = OPEN;
    if (!atomic_compare_exchange_strong(&c->state, &expect, how))
        return expect == CANCELLED ? MCL_ECANCELED : MCL_EALREADY;
    count_answer(c, st, how == CANCELLED);
    mcl_err rv = mcl_pstream_reply(c->rq, st, 0, payload, len, msg);
    c->rq = NULL;
    return rv;
}

// The details of a refusal: {"field": name}.
static void
field_details(mcl__rbuf *b, const char *field)
{
    size_t n = strlen(field);
    uint8_t hdr[] = {0x81, 0xa5, 'f', 'i', 'e', 'l', 'd'};
    mcl__rbuf_write(b, hdr, sizeof(hdr));
    uint8_t sh[5];
    size_t k;
    if (n < 32) {
        sh[0] = (uint8_t)(0xa0 | n);
        k = 1;
    } else if (n < 256) {
        sh[0] = 0xd9;
        sh[1] = (uint8_t)n;
        k = 2;
    } else {
        sh[0] = 0xda;
        mcl__put_be16(sh + 1, (uint16_t)(n > 65535 ? 65535 : n));
        n = n > 65535 ? 65535 : n;
        k = 3;
    }
    mcl__rbuf_write(b, sh, k);
    mcl__rbuf_write(b, field, n);
}

mcl_value *
mcl_rpc_req_result(mcl_rpc_req *c)
{
    if (c == NULL)
        return NULL;
    if (c->result == NULL)
        (void)mcl_value_new(&c->result, MCL_TYPE_MAP); // (NULL when out of memory: put says EINVAL)
    return c->result;
}

// The end of a user's answer: a deferred call lets go of the user's reference (once).
static mcl_err
user_done(mcl_rpc_req *c, mcl_err rv)
{
    if (c->deferred && atomic_exchange(&c->user_ref, false))
        call_unref(c);
    return rv;
}

mcl_err
mcl_rpc_reply(mcl_rpc_req *c)
{
    if (c == NULL)
        return MCL_EINVAL;
    int st = atomic_load(&c->state);
    if (st != OPEN)
        return user_done(c, st == CANCELLED ? MCL_ECANCELED : MCL_EALREADY);
    char why[256];
    const char *field;
    mcl_err rv;
    if (c->result == NULL && mcl_value_new(&c->result, MCL_TYPE_MAP) != MCL_OK) {
        rv = answer(c, ANSWERED, MCL_PSTREAM_INTERNAL, NULL, 0, "out of memory for the result");
        return user_done(c, rv == MCL_OK ? MCL_ENOMEM : rv);
    }
    if (mcl__rpc_check(c->m->ri.result.f, c->m->ri.result.n,
                       c->m->ri.info.flags & MCL_RPC_OPEN_RESULT, c->result, &field, why,
                       sizeof(why)) != MCL_OK) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the handler's result breaks its schema: %s", why);
        rv = answer(c, ANSWERED, MCL_PSTREAM_INTERNAL, NULL, 0, msg);
        return user_done(c, rv == MCL_OK ? MCL_ETYPE : rv);
    }
    mcl__rbuf b;
    mcl__rbuf_init(&b, 0);
    rv = mcl__rbuf_pack(&b, c->result);
    if (rv == MCL_OK)
        rv = answer(c, ANSWERED, MCL_PSTREAM_OK, b.p, b.n, NULL);
    else
        (void)answer(c, ANSWERED, MCL_PSTREAM_INTERNAL, NULL, 0,
                     rv == MCL_ERANGE ? "the result is nested too deeply"
                                      : "out of memory encoding the result");
    mcl__rbuf_fini(&b);
    return user_done(c, rv);
}

// Answers with a failure status, message msg and (optional) the field it is about.
static mcl_err
fail_msg(mcl_rpc_req *c, mcl_rpc_status st, const char *field, const char *msg)
{
    mcl__rbuf b;
    mcl__rbuf_init(&b, 0);
    if (field != NULL && field[0] != '\0')
        field_details(&b, field);
    mcl_err rv =
        answer(c, ANSWERED, st, b.err == MCL_OK ? b.p : NULL, b.err == MCL_OK ? b.n : 0, msg);
    mcl__rbuf_fini(&b);
    return rv;
}

mcl_err
mcl_rpc_fail(mcl_rpc_req *c, mcl_rpc_status st, const char *fmt, ...)
{
    if (c == NULL)
        return MCL_EINVAL;
    if (st == MCL_PSTREAM_OK)
        st = MCL_PSTREAM_UNKNOWN; // a failure is never OK
    char msg[1024];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof(msg), "%s", mcl_pstream_status_text(st));
    }
    return user_done(c, fail_msg(c, st, NULL, msg));
}

// The caller cancelled a deferred call (on the driving thread): answer it now.
static void
on_call_cancel(mcl_pstream_request *rq, void *user)
{
    (void)rq;
    mcl_rpc_req *c = user;
    (void)answer(c, CANCELLED, MCL_PSTREAM_CANCELLED, NULL, 0, "cancelled by the caller");
}

mcl_err
mcl_rpc_defer(mcl_rpc_req *c)
{
    if (c == NULL)
        return MCL_EINVAL;
    if (!c->in_handler || c->deferred || atomic_load(&c->state) != OPEN)
        return MCL_EALREADY;
    c->deferred = true;
    atomic_fetch_add(&c->refs, 1); // the user's, until the answer
    atomic_store(&c->user_ref, true);
    return mcl_pstream_request_on_cancel(c->rq, on_call_cancel, c);
}

bool
mcl_rpc_req_cancelled(const mcl_rpc_req *c)
{
    return c != NULL &&
           (atomic_load(&((mcl_rpc_req *)c)->state) == CANCELLED || !mcl_pstream_is_open(c->ps));
}

int64_t
mcl_rpc_req_remaining_ms(const mcl_rpc_req *c)
{
    if (c == NULL || c->deadline == INT64_MAX)
        return -1;
    int64_t left = c->deadline - mcl__mono_ns();
    return left <= 0 ? 0 : (left + 999999) / 1000000;
}

uint32_t
mcl_rpc_req_method_id(const mcl_rpc_req *c)
{
    return c ? c->m->ri.info.id : 0;
}

const char *
mcl_rpc_req_method_name(const mcl_rpc_req *c)
{
    return c ? c->m->ri.name : "";
}

mcl_pstream *
mcl_rpc_req_stream(const mcl_rpc_req *c)
{
    return c ? c->ps : NULL;
}

// --- requests --------------------------------------------------------------------------------

static void
count_refusal(rmethod *m, bool invalid, bool expired)
{
    pthread_mutex_lock(&m->mu);
    m->st.calls++;
    m->st.errors++;
    if (invalid)
        m->st.invalid++;
    if (expired)
        m->st.timeouts++;
    pthread_mutex_unlock(&m->mu);
}

static void
refuse(mcl_pstream_request *rq, mcl_rpc_status st, const char *field, const char *msg)
{
    char clean[1024];
    msg = clean_msg(msg, clean, sizeof(clean));
    mcl__rbuf b;
    mcl__rbuf_init(&b, 0);
    if (field != NULL && field[0] != '\0')
        field_details(&b, field);
    (void)mcl_pstream_reply(rq, st, 0, b.err == MCL_OK ? b.p : NULL, b.err == MCL_OK ? b.n : 0,
                            msg);
    mcl__rbuf_fini(&b);
}

// Absent optional fields with a default get it.
static mcl_err
fill_defaults(const mcl__rschema *s, mcl_value *args)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->def[i] != NULL && mcl_value_find(args, s->f[i].name) == NULL) {
            mcl_err rv = mcl_value_put_copy(args, s->f[i].name, s->def[i]);
            if (rv != MCL_OK)
                return rv;
        }
    return MCL_OK;
}

static void
on_request(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    mcl_rpc_service *s = user;
    int64_t t0 = mcl__mono_ns();
    uint32_t id = mcl_pstream_request_type(rq);
    rmethod *m = mcl__u64map_get(&s->by_id, id);
    char why[300];
    if (m == NULL) {
        atomic_fetch_add(&s->unknown, 1);
        snprintf(why, sizeof(why), "the service '%s' has no method with id %u", s->name,
                 (unsigned)id);
        refuse(rq, MCL_PSTREAM_UNIMPLEMENTED, NULL, why);
        return;
    }
    size_t len, alen;
    const void *p = mcl_pstream_request_payload(rq, &len), *ap;
    uint32_t budget;
    if (mcl__renv_decode(p, len, &budget, &ap, &alen, why, sizeof(why)) != MCL_OK) {
        atomic_fetch_add(&s->malformed, 1);
        count_refusal(m, false, false);
        refuse(rq, MCL_PSTREAM_INVALID_ARGUMENT, NULL, why);
        return;
    }
    if (budget == 0) {
        count_refusal(m, false, true);
        refuse(rq, MCL_PSTREAM_DEADLINE_EXCEEDED, NULL,
               "the call's deadline passed before it reached the service");
        return;
    }
    if (alen > s->max_args) {
        count_refusal(m, false, false);
        snprintf(why, sizeof(why), "the arguments are %zu bytes; this service takes at most %zu",
                 alen, s->max_args);
        refuse(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, NULL, why);
        return;
    }
    mcl_value *args;
    char dwhy[200];
    mcl_err rv = mcl__rpc_decode_map(ap, alen, &args, dwhy, sizeof(dwhy));
    if (rv != MCL_OK) {
        if (rv == MCL_ENOMEM) {
            count_refusal(m, false, false);
            refuse(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, NULL, "out of memory for the arguments");
            return;
        }
        atomic_fetch_add(&s->malformed, 1);
        count_refusal(m, true, false);
        snprintf(why, sizeof(why), "the arguments are not readable: %s", dwhy);
        refuse(rq, MCL_PSTREAM_INVALID_ARGUMENT, NULL, why);
        return;
    }
    const char *field;
    if (mcl__rpc_check(m->ri.args.f, m->ri.args.n, m->ri.info.flags & MCL_RPC_OPEN_ARGS, args,
                       &field, dwhy, sizeof(dwhy)) != MCL_OK) {
        count_refusal(m, true, false);
        snprintf(why, sizeof(why), "%s: %s", m->ri.name, dwhy);
        refuse(rq, MCL_PSTREAM_INVALID_ARGUMENT, field, why);
        mcl_value_free(args);
        return;
    }
    mcl_rpc_req *c = mcl__zalloc(sizeof(*c));
    if (c == NULL || fill_defaults(&m->ri.args, args) != MCL_OK) {
        mcl__free(c);
        mcl_value_free(args);
        count_refusal(m, false, false);
        refuse(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, NULL, "out of memory for the call");
        return;
    }
    atomic_init(&c->refs, 1); // the request handle's
    atomic_init(&c->state, OPEN);
    atomic_fetch_add(&s->refs, 1);
    c->svc = s;
    c->m = m;
    c->ps = ps;
    mcl_pstream_ref(ps); // (mcl_rpc_req_cancelled() asks it whether it is still open)
    c->rq = rq;
    c->args = args;
    c->t0 = t0;
    c->budget_ns = budget == MCL__RPC_NO_BUDGET ? INT64_MAX : (int64_t)budget * 1000000;
    c->deadline = budget == MCL__RPC_NO_BUDGET ? INT64_MAX : t0 + c->budget_ns;
    mcl__pstream_request_on_release(rq, call_rq_released, c);
    pthread_mutex_lock(&m->mu);
    m->st.calls++;
    m->st.in_progress++;
    pthread_mutex_unlock(&m->mu);
    c->in_handler = true;
    m->handler(c, args, m->user);
    c->in_handler = false;
    if (!c->deferred && atomic_load(&c->state) == OPEN)
        (void)answer(c, ANSWERED, MCL_PSTREAM_INTERNAL, NULL, 0,
                     "the handler returned without replying");
}

// --- built-in methods ------------------------------------------------------------------------

static void
builtin_describe(mcl_rpc_req *c, const mcl_value *args, void *user)
{
    (void)args;
    mcl_rpc_service *s = user;
    (void)answer(c, ANSWERED, MCL_PSTREAM_OK, s->desc, s->desc_len, NULL);
}

static void
read_stats(rmethod *m, mcl_rpc_method_stats *st)
{
    pthread_mutex_lock(&m->mu);
    *st = m->st;
    st->p50_us = (double)mcl__hist_quantile(&m->hist, 0.5) / 1e3;
    st->p99_us = (double)mcl__hist_quantile(&m->hist, 0.99) / 1e3;
    st->max_us = (double)m->hist.max / 1e3;
    pthread_mutex_unlock(&m->mu);
}

static mcl_err
put_stats(mcl_value *arr, rmethod *m)
{
    mcl_rpc_method_stats st;
    read_stats(m, &st);
    mcl_value *e;
    mcl_err rv = mcl_value_push_map(arr, &e);
    const struct {
        const char *k;
        uint64_t v;
    } u[] = {{"id", m->ri.info.id},
             {"calls", st.calls},
             {"ok", st.ok},
             {"errors", st.errors},
             {"invalid", st.invalid},
             {"timeouts", st.timeouts},
             {"cancelled", st.cancelled},
             {"in_progress", st.in_progress}};
    if (rv == MCL_OK)
        rv = mcl_value_put_str(e, "name", m->ri.name);
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]) && rv == MCL_OK; i++)
        rv = mcl_value_put_uint(e, u[i].k, u[i].v);
    if (rv == MCL_OK)
        rv = mcl_value_put_double(e, "p50_us", st.p50_us);
    if (rv == MCL_OK)
        rv = mcl_value_put_double(e, "p99_us", st.p99_us);
    if (rv == MCL_OK)
        rv = mcl_value_put_double(e, "max_us", st.max_us);
    return rv;
}

static void
builtin_stats(mcl_rpc_req *c, const mcl_value *args, void *user)
{
    mcl_rpc_service *s = user;
    const char *only = NULL;
    size_t n;
    (void)mcl_value_get_str(mcl_value_find(args, "method"), &only, &n);
    mcl_value *res = mcl_rpc_req_result(c), *arr;
    mcl_err rv = mcl_value_put_array(res, "methods", &arr);
    bool found = only == NULL;
    for (size_t i = 0; i < s->n && rv == MCL_OK; i++) {
        if (only != NULL && strcmp(only, s->m[i]->ri.name) != 0)
            continue;
        found = true;
        rv = put_stats(arr, s->m[i]);
    }
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(res, "unknown", atomic_load(&s->unknown));
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(res, "malformed", atomic_load(&s->malformed));
    if (!found) {
        char msg[MCL__RPC_MAX_NAME + 64];
        snprintf(msg, sizeof(msg), "no method named '%s'", only);
        (void)fail_msg(c, MCL_PSTREAM_NOT_FOUND, "method", msg);
    } else if (rv != MCL_OK)
        (void)mcl_rpc_fail(c, MCL_PSTREAM_INTERNAL, "out of memory for the statistics");
    else
        (void)mcl_rpc_reply(c);
}

mcl_err
mcl_rpc_service_stats(const mcl_rpc_service *s, uint32_t id, mcl_rpc_method_stats *st)
{
    if (s == NULL || st == NULL)
        return MCL_EINVAL;
    rmethod *m = mcl__u64map_get(&s->by_id, id);
    if (m == NULL)
        return MCL_ENOENT;
    read_stats(m, st);
    return MCL_OK;
}

// --- serving ---------------------------------------------------------------------------------

static void
on_accept(mcl_pstream_server *srv, mcl_pstream *ps, void *user)
{
    (void)srv;
    (void)mcl_pstream_handle(ps, 0, MCL_PSTREAM_ANY, on_request, user);
}

mcl_err
mcl_rpc_service_listen(mcl_rpc_service *s, const char *url)
{
    if (s == NULL || url == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&s->mu);
    mcl_err rv = freeze_locked(s);
    mcl_pstream_server **ns = NULL;
    if (rv == MCL_OK && (ns = mcl__realloc(s->srv, (s->nsrv + 1) * sizeof(*ns))) == NULL)
        rv = MCL_ENOMEM;
    if (ns != NULL)
        s->srv = ns;
    mcl_pstream_server *srv = NULL;
    if (rv == MCL_OK)
        rv = mcl_pstream_server_open(&srv, url, &s->stream_opt, on_accept, s);
    if (rv == MCL_OK)
        rv = s->reactor != NULL ? mcl_pstream_server_attach(srv, s->reactor)
                                : mcl_pstream_server_start(srv);
    if (rv == MCL_OK && s->nsrv == 0) {
        char *u = mcl__strdup(mcl_pstream_server_url(srv));
        if (u == NULL) {
            rv = MCL_ENOMEM;
        } else {
            mcl__free(s->url);
            s->url = u;
        }
    }
    if (rv == MCL_OK)
        s->srv[s->nsrv++] = srv;
    else
        mcl_pstream_server_free(srv, 0);
    pthread_mutex_unlock(&s->mu);
    return rv;
}

const char *
mcl_rpc_service_url(const mcl_rpc_service *s)
{
    return s != NULL ? s->url : "";
}

mcl_err
mcl_rpc_service_serve(mcl_rpc_service *s, mcl_pstream *ps, uint32_t channel)
{
    if (s == NULL || ps == NULL || channel == MCL_PSTREAM_ANY)
        return MCL_EINVAL;
    pthread_mutex_lock(&s->mu);
    // Streams that have ended are let go here, so that serving connection after connection
    // keeps only the live ones.
    for (size_t i = 0; i < s->nserved;) {
        if (!mcl_pstream_is_open(s->served[i].ps)) {
            (void)mcl_pstream_handle(s->served[i].ps, s->served[i].channel, MCL_PSTREAM_ANY, NULL,
                                     NULL);
            mcl_pstream_unref(s->served[i].ps);
            s->served[i] = s->served[--s->nserved];
        } else {
            i++;
        }
    }
    mcl_err rv = freeze_locked(s);
    struct served *nsv = NULL;
    if (rv == MCL_OK && (nsv = mcl__realloc(s->served, (s->nserved + 1) * sizeof(*nsv))) == NULL)
        rv = MCL_ENOMEM;
    if (nsv != NULL)
        s->served = nsv;
    if (rv == MCL_OK)
        rv = mcl_pstream_handle(ps, channel, MCL_PSTREAM_ANY, on_request, s);
    if (rv == MCL_OK) {
        mcl_pstream_ref(ps);
        s->served[s->nserved++] = (struct served){ps, channel};
    }
    pthread_mutex_unlock(&s->mu);
    return rv;
}

mcl_err
mcl_rpc_service_unserve(mcl_rpc_service *s, mcl_pstream *ps, uint32_t channel)
{
    if (s == NULL || ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&s->mu);
    mcl_err rv = MCL_ENOENT;
    for (size_t i = 0; i < s->nserved; i++)
        if (s->served[i].ps == ps && s->served[i].channel == channel) {
            (void)mcl_pstream_handle(ps, channel, MCL_PSTREAM_ANY, NULL, NULL);
            mcl_pstream_unref(ps);
            s->served[i] = s->served[--s->nserved];
            rv = MCL_OK;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return rv;
}

void
mcl_rpc_service_free(mcl_rpc_service *s, int timeout_ms)
{
    if (s == NULL)
        return;
    int ms = timeout_ms > 0 ? timeout_ms : DEF_CLOSE_MS;
    for (size_t i = 0; i < s->nsrv; i++)
        mcl_pstream_server_free(s->srv[i], ms);
    s->nsrv = 0;
    for (size_t i = 0; i < s->nserved; i++) {
        (void)mcl_pstream_handle(s->served[i].ps, s->served[i].channel, MCL_PSTREAM_ANY, NULL,
                                 NULL);
        mcl_pstream_unref(s->served[i].ps);
    }
    s->nserved = 0;
    svc_unref(s);
}
