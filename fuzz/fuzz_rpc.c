// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the RPC layer (lib/rpc) reading what strangers send. The first byte (mod 3) picks
// the mode, the rest is the data:
//
//   0  The pure decoders (lib/rpc/rwire.c). The data is a call envelope: its arguments are
//      decoded, checked against a schema of every kind (an optional field with a default too),
//      and must survive an encode/decode round trip unchanged (and encode to the same bytes the
//      second time); the whole data is also read as a service description, which, if it
//      decodes, must hold what the decoder promises and describe itself again to the same thing.
//   1  A real service (mcl_rpc_service_serve() on one end of a socketpair) called by a plain
//      packet stream whose requests carry the data; both streams are driven on this thread.
//      Every request completes exactly once; the service's refusals are the ones its rules
//      predict; every deferred call is answered; nothing leaks.
//   2  A client (mcl_rpc_client_over()) whose "service" is a plain stream that answers
//      rpc.describe, and then the calls, with the data. Opening fails cleanly or succeeds; if it
//      succeeds, calls by name, by id and asynchronous ones end exactly once.
//
// Mode 1's data: requests of [sel][ctl][len][len bytes of payload] (len 255: the rest), at most
// MAX_REQ: sel picks the method id (ids[], below); ctl bits 0-1: 0 the payload as it is, 1..3 an
// envelope header in front (budget: none, 0, 40 ms; an empty payload becomes an empty map);
// bits 2-3: the request's deadline (the default 50 ms, 10 ms, 100 ms, none: then it is also
// cancelled); bit 4: cancel it; bit 5: channel 1 (which the service does not serve).
// Mode 2's data: [describe status][describe length, 2 bytes][the description][call status][sel]
// [the calls' reply payload: the rest]; sel picks the method called, bit 7 cancels the
// asynchronous call, bit 6 frees the client while it is in flight.
#include "core/internal.h"
#include "rpc/rpc_int.h"

#include <mcl/rpc.h>

#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// --- mode 0: the decoders --------------------------------------------------------------------

static const mcl_rpc_field kinds_schema[] = {
    {"a", MCL_TYPE_FLOAT, false, NULL, "required; an int does too"},
    {"n", MCL_TYPE_INT, true, "7", "optional, with a default"},
    {"s", MCL_TYPE_STR, true, NULL, NULL},
    {"b", MCL_TYPE_BIN, true, NULL, NULL},
    {"l", MCL_TYPE_ARRAY, true, "[1, \"x\", {\"$bin\": \"AAE=\"}]", NULL},
    {"m", MCL_TYPE_MAP, true, NULL, NULL},
    {"ok", MCL_TYPE_BOOL, true, "false", NULL},
    {"z", MCL_TYPE_NIL, true, NULL, NULL},
    {"x", MCL_TYPE_ANY, true, NULL, NULL},
};
enum { NKINDS = sizeof(kinds_schema) / sizeof(kinds_schema[0]) };

// Encodes v as an envelope: it decodes to the same budget and the same value, and says the same
// bytes again; a limit below its size refuses it, one at its size does not.
static void
round_trip(const mcl_value *v, uint32_t budget)
{
    mcl__rbuf b;
    mcl__rbuf_init(&b, 0);
    mcl_err rv = mcl__renv_encode(&b, budget, v);
    if (rv == MCL_ENOMEM) {
        mcl__rbuf_fini(&b);
        return;
    }
    if (rv != MCL_OK || b.n <= MCL__RPC_HDR)
        abort(); // what was decoded can be said again (the nesting limits agree)
    uint32_t budget2;
    const void *ap;
    size_t alen;
    char why[256];
    if (mcl__renv_decode(b.p, b.n, &budget2, &ap, &alen, why, sizeof(why)) != MCL_OK ||
        budget2 != budget || alen != b.n - MCL__RPC_HDR)
        abort();
    mcl_value *w;
    rv = mcl__rpc_decode_map(ap, alen, &w, why, sizeof(why));
    if (rv == MCL_ENOMEM) {
        mcl__rbuf_fini(&b);
        return;
    }
    if (rv != MCL_OK || !mcl_value_equal(v, w) || !mcl_value_equal(w, v))
        abort();
    mcl__rbuf b2;
    mcl__rbuf_init(&b2, 0);
    if (mcl__renv_encode(&b2, budget, w) == MCL_OK && (b2.n != b.n || memcmp(b2.p, b.p, b.n) != 0))
        abort(); // one encoding once decoded
    mcl__rbuf_fini(&b2);
    mcl__rbuf_init(&b2, b.n - 1);
    rv = mcl__renv_encode(&b2, budget, w);
    if (rv != MCL_EMSGSIZE && rv != MCL_ENOMEM)
        abort();
    mcl__rbuf_fini(&b2);
    mcl__rbuf_init(&b2, b.n);
    rv = mcl__renv_encode(&b2, budget, w);
    if (rv == MCL_OK && (b2.n != b.n || memcmp(b2.p, b.p, b.n) != 0))
        abort();
    if (rv != MCL_OK && rv != MCL_ENOMEM)
        abort();
    mcl__rbuf_fini(&b2);
    mcl_value_free(w);
    mcl__rbuf_fini(&b);
}

static bool
declared(const mcl_rpc_field *f, size_t n, const char *name, size_t *at)
{
    for (size_t j = 0; j < n; j++)
        if (strcmp(f[j].name, name) == 0) {
            *at = j;
            return true;
        }
    return false;
}

// The schema check says why it refuses, names a field that explains it, and with the defaults
// filled in (as the service does) a map it accepted is still accepted.
static void
check_args(const mcl__rschema *s, const mcl_value *args)
{
    mcl_err closed = MCL_OK;
    for (int open = 0; open < 2; open++) {
        const char *field = NULL;
        char why[256] = "";
        mcl_err rv = mcl__rpc_check(s->f, s->n, open, args, &field, why, sizeof(why));
        mcl_rpc_method_info mi = {.id = 1,
                                  .name = "fuzz",
                                  .doc = "",
                                  .args = s->f,
                                  .nargs = s->n,
                                  .flags = open ? MCL_RPC_OPEN_ARGS : 0};
        const char *field2 = NULL;
        if (mcl_rpc_check(&mi, args, &field2, NULL, 0) != rv || field == NULL || field2 == NULL ||
            strcmp(field, field2) != 0)
            abort(); // the public check is the same check
        size_t at = 0;
        if (rv == MCL_OK) {
            if (field[0] != '\0')
                abort();
        } else if (rv == MCL_EMISSING) {
            if (why[0] == '\0' || !declared(s->f, s->n, field, &at) || s->f[at].optional ||
                mcl_value_find(args, field) != NULL)
                abort();
        } else if (rv == MCL_ETYPE) {
            if (why[0] == '\0' || field[0] == '\0' || (open && !declared(s->f, s->n, field, &at)))
                abort();
        } else {
            abort();
        }
        if (open == 0)
            closed = rv;
        else if (closed == MCL_OK && rv != MCL_OK)
            abort(); // open arguments accept more, never less
        if (rv != MCL_OK)
            continue;
        mcl_value *full;
        if (mcl_value_dup(&full, args) != MCL_OK)
            continue;
        for (size_t i = 0; i < s->n; i++)
            if (s->def[i] != NULL && mcl_value_find(full, s->f[i].name) == NULL)
                (void)mcl_value_put_copy(full, s->f[i].name, s->def[i]);
        if (mcl__rpc_check(s->f, s->n, open, full, NULL, NULL, 0) != MCL_OK)
            abort(); // a default is of its field's kind
        mcl_value_free(full);
    }
}

static void
same_schema(const mcl__rschema *a, const mcl__rschema *b)
{
    if (a->n != b->n)
        abort();
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->f[i].name, b->f[i].name) != 0 || a->f[i].type != b->f[i].type ||
            a->f[i].optional != b->f[i].optional || strcmp(a->f[i].doc, b->f[i].doc) != 0 ||
            (a->def[i] == NULL) != (b->def[i] == NULL) ||
            (a->f[i].def == NULL) != (a->def[i] == NULL) || !mcl_value_equal(a->def[i], b->def[i]))
            abort();
    }
}

// What the description decoder promises of what it accepts.
static void
check_schema(const mcl__rschema *s)
{
    if (s->n > MCL__RPC_MAX_FIELDS)
        abort();
    for (size_t i = 0; i < s->n; i++) {
        const mcl_rpc_field *f = &s->f[i];
        if (!mcl__rpc_field_name_ok(f->name) || f->type < MCL_TYPE_ANY || f->type > MCL_TYPE_NDARRAY ||
            f->doc == NULL || (f->def != NULL && !f->optional))
            abort();
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->f[j].name, f->name) == 0)
                abort();
    }
}

static void
check_desc(const mcl__rdesc *d)
{
    if (d->service == NULL || d->doc == NULL || d->n > MCL__RPC_MAX_METHODS ||
        (d->n > 0 && d->m == NULL))
        abort();
    for (size_t i = 0; i < d->n; i++) {
        const mcl__rinfo *m = &d->m[i];
        if (m->info.id == 0 || (i > 0 && m->info.id <= d->m[i - 1].info.id) ||
            !mcl__rpc_name_ok(m->name) || m->info.name != m->name || m->info.doc != m->doc ||
            m->info.args != m->args.f || m->info.nargs != m->args.n ||
            m->info.result != m->result.f || m->info.nresult != m->result.n ||
            (m->info.flags & ~(unsigned)(MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT)) != 0)
            abort();
        check_schema(&m->args);
        check_schema(&m->result);
        if (d->n <= 256)
            for (size_t j = 0; j < i; j++)
                if (strcmp(d->m[j].name, m->name) == 0)
                    abort();
    }
}

// Describes d again as a service does (make_description in lib/rpc/service.c, with the same
// mcl__rinfo_describe): it must decode
// to the same description.
static void
redescribe(const mcl__rdesc *d)
{
    mcl_value *v, *ms;
    if (mcl_value_new(&v, MCL_TYPE_MAP) != MCL_OK)
        return;
    mcl_err rv = mcl_value_put_uint(v, "protocol", 1);
    if (rv == MCL_OK)
        rv = mcl_value_put_str(v, "service", d->service);
    if (rv == MCL_OK && d->doc[0] != '\0')
        rv = mcl_value_put_str(v, "doc", d->doc);
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(v, "max_args", d->max_args);
    if (rv == MCL_OK)
        rv = mcl_value_put_array(v, "methods", &ms);
    for (size_t i = 0; i < d->n && rv == MCL_OK; i++)
        rv = mcl__rinfo_describe(&d->m[i], ms);
    void *buf = NULL;
    size_t len = 0;
    if (rv == MCL_OK)
        rv = mcl_value_encode(v, &buf, &len);
    mcl_value_free(v);
    if (rv == MCL_ENOMEM)
        return;
    if (rv != MCL_OK)
        abort(); // (ERANGE: a default nested too deeply to be said again)
    mcl__rdesc d2;
    char why[256] = "";
    rv = mcl__rdesc_decode(&d2, buf, len, why, sizeof(why));
    mcl_free(buf);
    if (rv == MCL_ENOMEM)
        return;
    if (rv != MCL_OK)
        abort(); // what a decoder accepted, described again, is accepted
    if (strcmp(d2.service, d->service) != 0 || strcmp(d2.doc, d->doc) != 0 ||
        d2.max_args != d->max_args || d2.n != d->n)
        abort();
    for (size_t i = 0; i < d->n; i++) {
        const mcl__rinfo *x = &d->m[i], *y = &d2.m[i];
        if (x->info.id != y->info.id || strcmp(x->name, y->name) != 0 ||
            strcmp(x->doc, y->doc) != 0 || x->info.flags != y->info.flags)
            abort();
        same_schema(&x->args, &y->args);
        same_schema(&x->result, &y->result);
    }
    mcl__rdesc_free(&d2);
}

static void
mode_decoders(const uint8_t *in, size_t n)
{
    mcl__rschema s;
    char why[256] = "";
    if (mcl__rschema_copy(&s, kinds_schema, NKINDS, why, sizeof(why)) != MCL_OK)
        abort();
    uint32_t budget;
    const void *ap = NULL;
    size_t alen = 0;
    mcl_value *args = NULL;
    mcl_err rv = mcl__renv_decode(in, n, &budget, &ap, &alen, why, sizeof(why));
    if (rv == MCL_OK) {
        if ((const uint8_t *)ap != in + MCL__RPC_HDR || alen != n - MCL__RPC_HDR)
            abort();
        why[0] = '\0';
        rv = mcl__rpc_decode_map(ap, alen, &args, why, sizeof(why));
        if (rv == MCL_OK) {
            if (args == NULL || mcl_value_type(args) != MCL_TYPE_MAP)
                abort();
            check_args(&s, args);
            round_trip(args, budget);
        } else if ((rv != MCL_EDECODE && rv != MCL_ENOTMAP && rv != MCL_ENOMEM) || args != NULL ||
                   (rv != MCL_ENOMEM && why[0] == '\0')) {
            abort();
        }
    } else if (rv != MCL_EPROTO || why[0] == '\0') {
        abort(); // a refusal always says why
    }
    // The whole data as a map (a result, a refusal's details) and as a description.
    mcl_value *whole = NULL;
    if (mcl__rpc_decode_map(in, n, &whole, NULL, 0) == MCL_OK)
        round_trip(whole, MCL__RPC_NO_BUDGET);
    mcl_value_free(whole);
    mcl__rdesc d;
    why[0] = '\0';
    rv = mcl__rdesc_decode(&d, in, n, why, sizeof(why));
    if (rv == MCL_OK) {
        check_desc(&d);
        redescribe(&d);
        for (size_t i = 0; i < d.n && args != NULL; i++) // a stranger's schemas check as well
            (void)mcl__rpc_check(d.m[i].info.args, d.m[i].info.nargs,
                                 d.m[i].info.flags & MCL_RPC_OPEN_ARGS, args, NULL, NULL, 0);
    } else if ((rv != MCL_EPROTO && rv != MCL_ENOMEM) || (rv == MCL_EPROTO && why[0] == '\0') ||
               d.n != 0 || d.m != NULL || d.service != NULL) {
        abort();
    }
    mcl__rdesc_free(&d);
    mcl__rdesc_free(&d); // (free leaves it empty: twice is safe)
    mcl_value_free(args);
    mcl__rschema_free(&s);
}

// --- mode 1: a service ---------------------------------------------------------------------------

enum { MAX_REQ = 8, MAX_ARGS = 200 };
enum { M_ADD = 1, M_ECHO = 2, M_WAIT = 3, M_BADRES = 4, M_KINDS = 5, M_NOREPLY = 6 };
static const uint32_t ids[] = {M_ADD,
                               M_ECHO,
                               M_WAIT,
                               M_BADRES,
                               M_KINDS,
                               M_NOREPLY,
                               MCL_RPC_ID_DESCRIBE,
                               MCL_RPC_ID_STATS,
                               0,
                               77,
                               MCL_RPC_ID_MAX,
                               0xFFFFFF03u};
enum { NIDS = sizeof(ids) / sizeof(ids[0]) };

// Deferred calls the loop answers (later) or leaves for the caller to cancel (left).
static struct {
    mcl_rpc_req *rq;
    bool later;
} held[MAX_REQ];
static int nheld;
static int completions[MAX_REQ];
static int expected[MAX_REQ]; // the status the service must answer with (-1: not predicted)

static void
h_add(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    double a = 0, b = 0, scale = 0;
    if (mcl_value_get_double(mcl_value_find(args, "a"), &a) != MCL_OK ||
        mcl_value_get_double(mcl_value_find(args, "b"), &b) != MCL_OK ||
        mcl_value_get_double(mcl_value_find(args, "scale"), &scale) != MCL_OK)
        abort(); // checked, defaults filled in
    (void)mcl_value_put_double(mcl_rpc_req_result(rq), "sum", (a + b) * scale);
    (void)mcl_rpc_reply(rq);
}

static void
h_echo(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    mcl_value *res = mcl_rpc_req_result(rq);
    for (size_t i = 0; i < mcl_value_count(args); i++) {
        const char *k;
        const mcl_value *v = mcl_value_entry(args, i, &k);
        (void)mcl_value_put_copy(res, k, v);
    }
    (void)mcl_value_put_copy(res, "all", args); // one level deeper: may be too deep to send
    (void)mcl_rpc_reply(rq);
}

// "tag" says what to do: 0 defer and answer at once, 1 answer later (the default), 2 leave it
// to be cancelled, 3 fail, 4 return without answering, 5 defer twice, answer later.
static void
h_wait(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    int64_t tag = 0;
    if (mcl_value_get_int(mcl_value_find(args, "tag"), &tag) != MCL_OK)
        tag = 0; // (a big unsigned one)
    unsigned how = (unsigned)(tag < 0 ? -(tag + 1) : tag) % 6;
    if (mcl_rpc_req_method_id(rq) != M_WAIT || strcmp(mcl_rpc_req_method_name(rq), "wait") != 0 ||
        mcl_rpc_req_stream(rq) == NULL || mcl_rpc_req_cancelled(rq))
        abort();
    (void)mcl_rpc_req_remaining_ms(rq);
    switch (how) {
    case 3:
        (void)mcl_rpc_fail(rq, MCL_PSTREAM_NOT_FOUND, "nothing with tag %lld", (long long)tag);
        return;
    case 4:
        return; // the service answers INTERNAL for it
    default:
        break;
    }
    if (mcl_rpc_defer(rq) != MCL_OK)
        abort();
    if (how == 5 && mcl_rpc_defer(rq) != MCL_EALREADY)
        abort();
    if (how == 0) {
        mcl_err rv = mcl_rpc_reply(rq);
        if (rv != MCL_OK && rv != MCL_ECLOSED)
            abort();
        return;
    }
    if (nheld >= MAX_REQ)
        abort(); // one per request at most
    held[nheld].rq = rq;
    held[nheld].later = how != 2;
    nheld++;
}

static void
h_badres(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)args;
    (void)user;
    (void)mcl_value_put_str(mcl_rpc_req_result(rq), "sum", "not a number");
    mcl_err rv = mcl_rpc_reply(rq);
    if (rv != MCL_ETYPE && rv != MCL_ECLOSED)
        abort();
    if (mcl_rpc_reply(rq) != MCL_EALREADY) // answered: a second answer is refused
        abort();
}

static void
h_kinds(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    if (mcl_value_find(args, "l") == NULL || mcl_value_find(args, "ok") == NULL)
        abort(); // the defaults
    (void)mcl_value_put_uint(mcl_rpc_req_result(rq), "fields", mcl_value_count(args));
    (void)mcl_rpc_reply(rq);
}

static void
h_noreply(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)rq;
    (void)args;
    (void)user;
}

static const mcl_rpc_field add_args[] = {
    {"a", MCL_TYPE_FLOAT, false, NULL, "first"},
    {"b", MCL_TYPE_FLOAT, false, NULL, "second"},
    {"scale", MCL_TYPE_FLOAT, true, "1", "multiplies the sum"},
};
static const mcl_rpc_field add_result[] = {{"sum", MCL_TYPE_FLOAT, false, NULL, NULL}};
static const mcl_rpc_field wait_args[] = {{"tag", MCL_TYPE_INT, true, "1", "what to do"}};
static const mcl_rpc_field kinds_result[] = {{"fields", MCL_TYPE_INT, false, NULL, NULL}};

static const mcl_rpc_method methods[] = {
    {M_ADD, "calc.add", "a + b, scaled", add_args, 3, add_result, 1, 0, h_add, NULL},
    {M_ECHO, "util.echo", "returns its arguments", NULL, 0, NULL, 0,
     MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT, h_echo, NULL},
    {M_WAIT, "wait", "deferred", wait_args, 1, NULL, 0, MCL_RPC_OPEN_RESULT, h_wait, NULL},
    {M_BADRES, "bad.result", "breaks its result schema", NULL, 0, add_result, 1, 0, h_badres, NULL},
    {M_KINDS, "kinds", "every kind of field", kinds_schema, NKINDS, kinds_result, 1, 0, h_kinds,
     NULL},
    {M_NOREPLY, "no.reply", "returns without answering", NULL, 0, NULL, 0, MCL_RPC_OPEN_ARGS,
     h_noreply, NULL},
};
enum { NMETHODS = sizeof(methods) / sizeof(methods[0]) };

static const mcl_rpc_method *
method_of(uint32_t id)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (methods[i].id == id)
            return &methods[i];
    return NULL;
}

// The status the service answers a request with, by its rules (on_request in service.c), or
// -1 when it depends on more than the request.
static int
predict(uint32_t channel, uint32_t id, const uint8_t *p, size_t len)
{
    if (channel != 0)
        return MCL_PSTREAM_UNIMPLEMENTED; // no handler on that channel
    const mcl_rpc_method *m = method_of(id);
    if (m == NULL && id != MCL_RPC_ID_DESCRIBE && id != MCL_RPC_ID_STATS)
        return MCL_PSTREAM_UNIMPLEMENTED;
    uint32_t budget;
    const void *ap;
    size_t alen;
    if (mcl__renv_decode(p, len, &budget, &ap, &alen, NULL, 0) != MCL_OK)
        return MCL_PSTREAM_INVALID_ARGUMENT;
    if (budget == 0)
        return MCL_PSTREAM_DEADLINE_EXCEEDED;
    if (alen > MAX_ARGS)
        return MCL_PSTREAM_RESOURCE_EXHAUSTED;
    mcl_value *args;
    mcl_err rv = mcl__rpc_decode_map(ap, alen, &args, NULL, 0);
    if (rv == MCL_ENOMEM)
        return -1;
    if (rv != MCL_OK)
        return MCL_PSTREAM_INVALID_ARGUMENT;
    int st = -1;
    if (m != NULL) {
        if (mcl__rpc_check(m->args, m->nargs, m->flags & MCL_RPC_OPEN_ARGS, args, NULL, NULL, 0) !=
            MCL_OK)
            st = MCL_PSTREAM_INVALID_ARGUMENT;
        else if (id == M_ADD || id == M_KINDS)
            st = MCL_PSTREAM_OK;
        else if (id == M_BADRES || id == M_NOREPLY)
            st = MCL_PSTREAM_INTERNAL;
    } else if (id == MCL_RPC_ID_DESCRIBE) {
        st = mcl_value_count(args) == 0 ? MCL_PSTREAM_OK : MCL_PSTREAM_INVALID_ARGUMENT;
    } else if (mcl_value_count(args) > 0 &&
               (mcl_value_count(args) > 1 ||
                mcl_value_type(mcl_value_find(args, "method")) != MCL_TYPE_STR)) {
        st = MCL_PSTREAM_INVALID_ARGUMENT; // rpc.stats takes one optional string
    }
    mcl_value_free(args);
    return st;
}

static void
svc_done(const mcl_pstream_result *r, void *user)
{
    intptr_t i = (intptr_t)user;
    completions[i]++;
    if (r->message == NULL || (r->len > 0 && r->payload == NULL))
        abort();
    if (r->local)
        return; // cancelled, timed out, or the end
    if (expected[i] >= 0 && (int)r->status != expected[i])
        abort(); // the service broke its own rules
    mcl_value *v = NULL;
    if (r->status == MCL_PSTREAM_OK) {
        if (mcl__rpc_decode_map(r->payload, r->len, &v, NULL, 0) != MCL_OK)
            abort();         // a result is a map
    } else if (r->len > 0) { // the details of a refusal: {"field": name}
        size_t n;
        const char *f;
        if (mcl__rpc_decode_map(r->payload, r->len, &v, NULL, 0) != MCL_OK ||
            mcl_value_get_str(mcl_value_find(v, "field"), &f, &n) != MCL_OK)
            abort();
    }
    mcl_value_free(v);
}

static void
answer_held(bool all)
{
    for (int i = 0; i < nheld;) {
        if (!all && !held[i].later) {
            i++;
            continue;
        }
        mcl_err rv = (nheld + i) % 2 ? mcl_rpc_fail(held[i].rq, MCL_PSTREAM_ABORTED, NULL)
                                     : mcl_rpc_reply(held[i].rq);
        if (rv != MCL_OK && rv != MCL_ECANCELED && rv != MCL_ECLOSED)
            abort();
        held[i] = held[--nheld]; // released: never touched again
    }
}

static void
mode_service(const uint8_t *in, size_t n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    mcl_pstream_options o = {.timeout_ms = 50,
                             .ping_ms = -1,
                             .idle_ms = -1,
                             .close_ms = 100,
                             .max_packet = 65536,
                             .max_incoming = 16};
    mcl_pstream *sps, *cps;
    if (mcl_pstream_open_fd(&sps, sv[0], sv[0], &o) != MCL_OK ||
        mcl_pstream_open_fd(&cps, sv[1], sv[1], &o) != MCL_OK)
        abort();
    mcl_rpc_service_options so = {.max_args = MAX_ARGS};
    mcl_rpc_service *svc;
    char why[256];
    if (mcl_rpc_service_new(&svc, "fuzz", "a service for strangers", &so) != MCL_OK ||
        mcl_rpc_service_add(svc, methods, NMETHODS, why, sizeof(why)) != MCL_OK ||
        mcl_rpc_service_serve(svc, sps, 0) != MCL_OK)
        abort();
    nheld = 0;
    memset(completions, 0, sizeof(completions));
    uint64_t rid[MAX_REQ] = {0};
    bool cancel[MAX_REQ] = {false}, made[MAX_REQ] = {false};
    int nreq = 0;
    size_t off = 0;
    uint8_t buf[MCL__RPC_HDR + 1 + 60000];
    while (off + 3 <= n && nreq < MAX_REQ) {
        uint8_t sel = in[off], ctl = in[off + 1];
        size_t len = in[off + 2];
        off += 3;
        if (len == 255 || len > n - off)
            len = n - off;
        if (len > 60000)
            len = 60000; // (within max_packet)
        size_t blen = 0;
        if (ctl & 3) {
            static const uint32_t budgets[] = {0, MCL__RPC_NO_BUDGET, 0, 40};
            buf[0] = MCL__RPC_VERSION;
            buf[1] = buf[2] = buf[3] = 0;
            mcl__put_be32(buf + 4, budgets[ctl & 3]);
            blen = MCL__RPC_HDR;
            if (len == 0)
                buf[blen++] = 0x80; // no arguments: an empty map
        }
        memcpy(buf + blen, in + off, len);
        blen += len;
        off += len;
        static const int timeouts[] = {0, 10, 100, -1};
        int tmo = timeouts[(ctl >> 2) & 3];
        int i = nreq++;
        cancel[i] = (ctl & 0x10) || tmo < 0; // (no deadline: cancelled, so that it ends)
        uint32_t channel = (ctl & 0x20) ? 1 : 0, type = ids[sel % NIDS];
        expected[i] = predict(channel, type, buf, blen);
        mcl_err rv = mcl_pstream_submit(cps, channel, type, 0, buf, blen, tmo, svc_done,
                                        (void *)(intptr_t)i, &rid[i]);
        if (rv == MCL_OK)
            made[i] = true;
        else if (rv != MCL_EAGAIN && rv != MCL_ENOMEM && rv != MCL_EMSGSIZE)
            abort();
    }
    int cfd, sfd;
    if (mcl_pstream_fd(cps, &cfd) != MCL_OK || mcl_pstream_fd(sps, &sfd) != MCL_OK)
        abort();
    int64_t end = mcl__mono_ns() + 200 * 1000000LL;
    for (int round = 0; round < 2000; round++) {
        if (mcl_pstream_dispatch(cps) != MCL_OK || mcl_pstream_dispatch(sps) != MCL_OK)
            abort();
        if (round == 1)
            for (int i = 0; i < nreq; i++)
                if (made[i] && cancel[i]) {
                    mcl_err rv = mcl_pstream_cancel(cps, rid[i]);
                    if (rv != MCL_OK && rv != MCL_ENOENT)
                        abort();
                }
        if (round == 2)
            answer_held(false); // from outside the handler, after it returned
        bool all = true;
        for (int i = 0; i < nreq; i++)
            if (made[i] && completions[i] == 0)
                all = false;
        if (all && round > 2)
            break;
        int64_t left = end - mcl__mono_ns();
        if (left <= 0)
            break;
        struct pollfd p[2] = {{.fd = cfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        (void)poll(p, 2, round < 3 ? 0 : left > 10000000 ? 10 : (int)(left / 1000000) + 1);
    }
    mcl_pstream_free(cps); // what is still pending completes now, DISCONNECTED
    mcl_pstream_free(sps);
    mcl_rpc_service_free(svc, 100);
    answer_held(true); // deferred calls outlive their stream and service: answering is safe
    for (int i = 0; i < nreq; i++)
        if (completions[i] != (made[i] ? 1 : 0))
            abort(); // every request completes exactly once
    close(sv[0]);
    close(sv[1]);
}

// --- mode 2: a client --------------------------------------------------------------------------

static struct {
    const uint8_t *desc, *reply;
    size_t dlen, rlen;
    mcl_pstream_status dst, rst;
} peer;

static void
peer_handler(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    if (mcl_pstream_request_type(rq) == MCL_RPC_ID_DESCRIBE)
        (void)mcl_pstream_reply(rq, peer.dst, 0, peer.desc, peer.dlen, NULL);
    else
        (void)mcl_pstream_reply(rq, peer.rst, 0, peer.reply, peer.rlen, "fuzz");
}

static void
check_result(const mcl_rpc_result *r)
{
    if (r == NULL || r->message == NULL || r->field == NULL ||
        (r->status == MCL_PSTREAM_OK) != (r->value != NULL) ||
        (r->value != NULL && mcl_value_type(r->value) != MCL_TYPE_MAP))
        abort(); // OK: a map; anything else: no value
}

static int async_done;

static void
client_done(const mcl_rpc_result *r, void *user)
{
    (void)user;
    check_result(r);
    async_done++;
}

// Arguments that satisfy m's schema: a value of the declared kind for every required field.
static mcl_value *
make_args(const mcl_rpc_method_info *m)
{
    mcl_value *a, *child;
    if (mcl_value_new(&a, MCL_TYPE_MAP) != MCL_OK)
        return NULL;
    for (size_t i = 0; i < m->nargs; i++) {
        const mcl_rpc_field *f = &m->args[i];
        if (f->optional)
            continue;
        switch (f->type) {
        case MCL_TYPE_BOOL:
            (void)mcl_value_put_bool(a, f->name, true);
            break;
        case MCL_TYPE_INT:
            (void)mcl_value_put_int(a, f->name, -3);
            break;
        case MCL_TYPE_FLOAT:
            (void)mcl_value_put_double(a, f->name, 0.5);
            break;
        case MCL_TYPE_STR:
            (void)mcl_value_put_str(a, f->name, "s");
            break;
        case MCL_TYPE_BIN:
            (void)mcl_value_put_bin(a, f->name, "\0", 1);
            break;
        case MCL_TYPE_ARRAY:
            (void)mcl_value_put_array(a, f->name, &child);
            break;
        case MCL_TYPE_MAP:
            (void)mcl_value_put_map(a, f->name, &child);
            break;
        case MCL_TYPE_NDARRAY:
            (void)mcl_value_put_ndarray(a, f->name, MCL_DTYPE_INT16, 1, (const uint64_t[]){2},
                                        (const int16_t[]){-1, 7});
            break;
        default:
            (void)mcl_value_put_nil(a, f->name);
            break;
        }
    }
    return a;
}

static void
mode_client(const uint8_t *in, size_t n)
{
    if (n < 3)
        return;
    peer.dst = (mcl_pstream_status)in[0];
    size_t dlen = (size_t)in[1] << 8 | in[2], off = 3;
    if (dlen > n - off)
        dlen = n - off;
    peer.desc = dlen > 0 ? in + off : NULL;
    peer.dlen = dlen;
    off += dlen;
    peer.rst = off < n ? (mcl_pstream_status)in[off++] : MCL_PSTREAM_OK;
    uint8_t sel = off < n ? in[off++] : 0;
    peer.reply = off < n ? in + off : NULL;
    peer.rlen = n - off;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    mcl_pstream_options o = {.timeout_ms = 200, .ping_ms = -1, .idle_ms = -1, .close_ms = 100};
    mcl_pstream *cps, *pps;
    if (mcl_pstream_open_fd(&cps, sv[0], sv[0], &o) != MCL_OK ||
        mcl_pstream_open_fd(&pps, sv[1], sv[1], &o) != MCL_OK ||
        mcl_pstream_handle(pps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, peer_handler, NULL) != MCL_OK ||
        mcl_pstream_start(pps) != MCL_OK)
        abort();
    // The client's stream is driven by this thread: inside the blocking calls, and below.
    mcl_rpc_client_options co = {.describe_ms = 200, .timeout_ms = 200};
    mcl_rpc_client *c = (mcl_rpc_client *)&co; // (it must be set to NULL on failure)
    char why[512];
    mcl_err rv = mcl_rpc_client_over(&c, cps, &co, why, sizeof(why));
    async_done = 0;
    bool submitted = false;
    if (rv != MCL_OK) {
        if (c != NULL ||
            (rv != MCL_ETIMEDOUT && rv != MCL_EPROTO && rv != MCL_ECLOSED && rv != MCL_ENOMEM) ||
            (rv != MCL_ENOMEM && why[0] == '\0'))
            abort(); // fails cleanly, and says why
    } else {
        size_t nm = mcl_rpc_client_nmethods(c);
        if (mcl_rpc_client_service_name(c) == NULL || mcl_rpc_client_service_doc(c) == NULL ||
            mcl_rpc_client_stream(c) != cps || mcl_rpc_client_method_at(c, nm) != NULL)
            abort();
        (void)mcl_rpc_client_max_args(c);
        for (size_t i = 0; i < nm; i++) {
            const mcl_rpc_method_info *m = mcl_rpc_client_method_at(c, i);
            if (m == NULL || mcl_rpc_client_method(c, m->name) != m ||
                mcl_rpc_client_method_by_id(c, m->id) != m)
                abort();
        }
        const mcl_rpc_method_info *m = nm > 0 ? mcl_rpc_client_method_at(c, sel % nm) : NULL;
        mcl_value *args = m != NULL ? make_args(m) : NULL;
        mcl_rpc_result *r = NULL;
        if (m != NULL) {
            const char *field;
            if (args != NULL && mcl_rpc_check(m, args, &field, NULL, 0) != MCL_OK)
                abort(); // made to fit
            if (mcl_rpc_call(c, m->name, args, 200, &r) == MCL_OK)
                check_result(r);
            mcl_rpc_result_free(r);
            r = NULL;
        }
        // By id (unchecked when the description does not list it), and a name it has not.
        if (mcl_rpc_call(c, "#4242", NULL, 200, &r) == MCL_OK)
            check_result(r);
        mcl_rpc_result_free(r);
        r = NULL;
        if (mcl_rpc_call(c, "no.such.method", NULL, 200, &r) != MCL_OK || r == NULL ||
            (r->status != MCL_PSTREAM_UNIMPLEMENTED &&
             mcl_rpc_client_method(c, "no.such.method") == NULL))
            abort();
        check_result(r);
        mcl_rpc_result_free(r);
        // Asynchronous: answered, or cancelled, exactly once.
        uint64_t id = 0;
        if (m != NULL && mcl_rpc_submit(c, m, args, 200, client_done, NULL, &id) == MCL_OK) {
            submitted = true;
            if (id == 0)
                abort();
            if (sel & 0x80) {
                rv = mcl_rpc_cancel(c, id);
                if (rv != MCL_OK && rv != MCL_ENOENT)
                    abort();
            }
            int fd;
            (void)mcl_pstream_fd(cps, &fd);
            // sel bit 6: free the client with the call in flight (it completes when the stream
            // ends, after the client has gone).
            int64_t end = mcl__mono_ns() + ((sel & 0x40) ? 0 : 400 * 1000000LL);
            while (async_done == 0 && mcl__mono_ns() < end) {
                if (mcl_pstream_dispatch(cps) != MCL_OK)
                    abort();
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (async_done == 0)
                    (void)poll(&p, 1, 10);
            }
            mcl_rpc_client_counters st;
            if (async_done == 1 && (mcl_rpc_client_stats(c, &st) != MCL_OK || st.in_flight != 0))
                abort(); // every call ended: none in flight
        }
        mcl_value_free(args);
        mcl_rpc_client_free(c, 100);
    }
    mcl_pstream_free(cps); // (a call still pending completes here)
    mcl_pstream_free(pps);
    if (async_done != (submitted ? 1 : 0))
        abort();
    close(sv[0]);
    close(sv[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    // A copy of exactly the data, so that a read past its end is caught by the sanitizer.
    size_t n = size - 1;
    uint8_t *in = malloc(n ? n : 1);
    if (in == NULL)
        return 0;
    memcpy(in, data + 1, n);
    switch (data[0] % 3) {
    case 0:
        mode_decoders(in, n);
        break;
    case 1:
        mode_service(in, n);
        break;
    default:
        mode_client(in, n);
        break;
    }
    free(in);
    return 0;
}
