// SPDX-License-Identifier: BSD-3-Clause
// RPC encoders, decoders and the schema check: pure functions on bytes and values, no I/O.
// Everything decoded here comes from strangers (fuzz/fuzz_rpc.c).
#include "rpc_int.h"

#include "../core/internal.h"
#include "../msg/msg_int.h"
#include "../pstream/pwire.h" // mcl__utf8_ok

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void say(char *errbuf, size_t errlen, const char *fmt, ...) MCL__PRINTF(3, 4);
static void
say(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

// --- names and kinds -------------------------------------------------------------------------

static bool
ident_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

bool
mcl__rpc_name_ok(const char *name)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > MCL__RPC_MAX_NAME)
        return false;
    bool first = true;
    for (const char *p = name; *p; p++) {
        if (*p == '.') {
            if (first)
                return false; // empty segment
            first = true;
            continue;
        }
        if (!ident_char(*p, first))
            return false;
        first = false;
    }
    return !first; // not ending in '.'
}

bool
mcl__rpc_field_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    return n > 0 && n <= MCL__RPC_MAX_NAME && mcl__utf8_ok((const uint8_t *)name, n);
}

static bool
kind_ok(mcl_type want, const mcl_value *v)
{
    mcl_type have = mcl_value_type(v);
    return want == MCL_TYPE_ANY || want == have || (want == MCL_TYPE_FLOAT && have == MCL_TYPE_INT);
}

static bool
type_from_name(const char *s, mcl_type *t)
{
    for (int k = MCL_TYPE_ANY; k <= MCL_TYPE_NDARRAY; k++) {
        if (strcmp(s, mcl_type_name((mcl_type)k)) == 0) {
            *t = (mcl_type)k;
            return true;
        }
    }
    return false;
}

// --- schemas ---------------------------------------------------------------------------------

void
mcl__rschema_free(mcl__rschema *s)
{
    for (size_t i = 0; i < s->n; i++) {
        mcl__free((char *)s->f[i].name);
        mcl__free((char *)s->f[i].def);
        mcl__free((char *)s->f[i].doc);
        if (s->def != NULL)
            mcl_value_free(s->def[i]);
    }
    mcl__free(s->f);
    mcl__free(s->def);
    *s = (mcl__rschema){0};
}

static char *
dup_or_empty(const char *s)
{
    return mcl__strdup(s != NULL ? s : "");
}

mcl_err
mcl__rschema_copy(mcl__rschema *s, const mcl_rpc_field *src, size_t n, char *errbuf, size_t errlen)
{
    *s = (mcl__rschema){0};
    if (n == 0)
        return MCL_OK;
    if (src == NULL)
        return MCL_EINVAL;
    if (n > MCL__RPC_MAX_FIELDS) {
        say(errbuf, errlen, "%zu fields (at most %d)", n, MCL__RPC_MAX_FIELDS);
        return MCL_EINVAL;
    }
    s->f = mcl__zalloc(n * sizeof(*s->f));
    s->def = mcl__zalloc(n * sizeof(*s->def));
    if (s->f == NULL || s->def == NULL) {
        mcl__rschema_free(s);
        return MCL_ENOMEM;
    }
    mcl_err rv = MCL_OK;
    for (size_t i = 0; i < n && rv == MCL_OK; i++) {
        const mcl_rpc_field *f = &src[i];
        if (!mcl__rpc_field_name_ok(f->name)) {
            say(errbuf, errlen, "field %zu: a name must be 1..%d bytes of UTF-8", i,
                MCL__RPC_MAX_NAME);
            rv = MCL_EINVAL;
            break;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(src[j].name, f->name) == 0) {
                say(errbuf, errlen, "field '%s' is declared twice", f->name);
                rv = MCL_EINVAL;
            }
        }
        if (rv != MCL_OK)
            break;
        if (f->type < MCL_TYPE_ANY || f->type > MCL_TYPE_NDARRAY) {
            say(errbuf, errlen, "field '%s': no such kind (%d)", f->name, (int)f->type);
            rv = MCL_EINVAL;
            break;
        }
        if (f->def != NULL) {
            if (!f->optional) {
                say(errbuf, errlen, "field '%s': a default needs an optional field", f->name);
                rv = MCL_EINVAL;
                break;
            }
            char why[160];
            if (mcl_value_from_json(&s->def[i], f->def, strlen(f->def), why, sizeof(why)) !=
                MCL_OK) {
                say(errbuf, errlen, "field '%s': its default is not JSON (%s)", f->name, why);
                rv = MCL_EINVAL;
                break;
            }
            if (!kind_ok(f->type, s->def[i])) {
                say(errbuf, errlen, "field '%s': its default is a %s, not a %s", f->name,
                    mcl_type_name(mcl_value_type(s->def[i])), mcl_type_name(f->type));
                rv = MCL_EINVAL;
                break;
            }
        }
        s->f[i].name = mcl__strdup(f->name);
        s->f[i].doc = dup_or_empty(f->doc);
        s->f[i].def = f->def != NULL ? mcl__strdup(f->def) : NULL;
        s->f[i].type = f->type;
        s->f[i].optional = f->optional;
        s->n = i + 1;
        if (s->f[i].name == NULL || s->f[i].doc == NULL || (f->def != NULL && s->f[i].def == NULL))
            rv = MCL_ENOMEM;
    }
    if (rv != MCL_OK) {
        s->n = n; // free what was made (zeroed slots are NULL)
        mcl__rschema_free(s);
    }
    return rv;
}

mcl_err
mcl__rpc_check(const mcl_rpc_field *f, size_t n, bool open, const mcl_value *v, const char **field,
               char *errbuf, size_t errlen)
{
    if (field != NULL)
        *field = "";
    if (v != NULL && mcl_value_type(v) != MCL_TYPE_MAP) { // (NULL: no arguments, an empty map)
        say(errbuf, errlen, "the arguments are a %s, not a map", mcl_type_name(mcl_value_type(v)));
        return MCL_ETYPE;
    }
    size_t m = mcl_value_count(v);
    for (size_t i = 0; i < m; i++) {
        const char *key;
        const mcl_value *x = mcl_value_entry(v, i, &key);
        size_t j = 0;
        while (j < n && strcmp(f[j].name, key) != 0)
            j++;
        if (j == n) {
            if (open)
                continue;
            if (field != NULL)
                *field = key;
            say(errbuf, errlen, "field '%s' is not in the schema", key);
            return MCL_ETYPE;
        }
        if (!kind_ok(f[j].type, x)) {
            if (field != NULL)
                *field = f[j].name;
            say(errbuf, errlen, "field '%s': expected %s, got %s", f[j].name,
                mcl_type_name(f[j].type), mcl_type_name(mcl_value_type(x)));
            return MCL_ETYPE;
        }
    }
    for (size_t j = 0; j < n; j++) {
        if (!f[j].optional && mcl_value_find(v, f[j].name) == NULL) {
            if (field != NULL)
                *field = f[j].name;
            say(errbuf, errlen, "field '%s' is missing (a %s)", f[j].name,
                mcl_type_name(f[j].type));
            return MCL_EMISSING;
        }
    }
    return MCL_OK;
}

mcl_err
mcl__rschema_describe(const mcl__rschema *s, mcl_value *arr)
{
    for (size_t i = 0; i < s->n; i++) {
        mcl_value *e;
        mcl_err rv = mcl_value_push_map(arr, &e);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "name", s->f[i].name);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "type", mcl_type_name(s->f[i].type));
        if (rv == MCL_OK && s->f[i].optional)
            rv = mcl_value_put_bool(e, "optional", true);
        if (rv == MCL_OK && s->def[i] != NULL)
            rv = mcl_value_put_copy(e, "default", s->def[i]);
        if (rv == MCL_OK && s->f[i].doc[0] != '\0')
            rv = mcl_value_put_str(e, "doc", s->f[i].doc);
        if (rv != MCL_OK)
            return rv;
    }
    return MCL_OK;
}

// --- output buffer ---------------------------------------------------------------------------

void
mcl__rbuf_init(mcl__rbuf *b, size_t limit)
{
    b->p = b->small;
    b->n = 0;
    b->cap = sizeof(b->small);
    b->err = MCL_OK;
    b->limit = limit ? limit : SIZE_MAX;
}

void
mcl__rbuf_fini(mcl__rbuf *b)
{
    if (b->p != b->small)
        mcl__free(b->p);
    b->p = b->small;
    b->n = 0;
}

void
mcl__rbuf_write(mcl__rbuf *b, const void *p, size_t n)
{
    if (b->err != MCL_OK)
        return;
    if (n > b->limit - b->n) {
        b->err = MCL_EMSGSIZE;
        return;
    }
    if (b->n + n > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = b->p == b->small ? mcl__alloc(cap) : mcl__realloc(b->p, cap);
        if (q == NULL) {
            b->err = MCL_ENOMEM;
            return;
        }
        if (b->p == b->small)
            memcpy(q, b->small, b->n);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static int
rbuf_sink(void *data, const char *buf, size_t len)
{
    mcl__rbuf *b = data;
    mcl__rbuf_write(b, buf, len);
    return b->err != MCL_OK ? -1 : 0;
}

mcl_err
mcl__rbuf_pack(mcl__rbuf *b, const mcl_value *v)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, rbuf_sink);
    mcl_err rv = mcl__val_pack(&pk, v);
    return rv == MCL_ENOMEM && b->err != MCL_OK ? b->err : rv; // (the sink says which)
}

// --- envelope --------------------------------------------------------------------------------

mcl_err
mcl__renv_encode(mcl__rbuf *b, uint32_t budget_ms, const mcl_value *args)
{
    uint8_t h[MCL__RPC_HDR] = {MCL__RPC_VERSION, 0, 0, 0};
    mcl__put_be32(h + 4, budget_ms);
    mcl__rbuf_write(b, h, sizeof(h));
    if (args == NULL) {
        uint8_t empty = 0x80; // an empty map
        mcl__rbuf_write(b, &empty, 1);
        return b->err;
    }
    return mcl__rbuf_pack(b, args);
}

mcl_err
mcl__renv_decode(const void *p, size_t len, uint32_t *budget_ms, const void **args,
                 size_t *args_len, char *errbuf, size_t errlen)
{
    const uint8_t *q = p;
    if (len < MCL__RPC_HDR) {
        say(errbuf, errlen, "malformed call: %zu bytes, shorter than its %d-byte header", len,
            MCL__RPC_HDR);
        return MCL_EPROTO;
    }
    if (q[0] != MCL__RPC_VERSION) {
        say(errbuf, errlen, "malformed call: envelope version %u (this service speaks %d)", q[0],
            MCL__RPC_VERSION);
        return MCL_EPROTO;
    }
    if (q[1] != 0 || q[2] != 0 || q[3] != 0) {
        say(errbuf, errlen, "malformed call: reserved header bytes are not 0");
        return MCL_EPROTO;
    }
    *budget_ms = mcl__get_be32(q + 4);
    *args = q + MCL__RPC_HDR;
    *args_len = len - MCL__RPC_HDR;
    return MCL_OK;
}

mcl_err
mcl__rpc_decode_map(const void *p, size_t len, mcl_value **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    mcl_value *v = NULL;
    mcl_err rv = mcl__msgpack_to_value(p, len, &v);
    if (rv == MCL_EDECODE) {
        say(errbuf, errlen, "%zu bytes are not one msgpack object with string map keys", len);
        return rv;
    }
    if (rv != MCL_OK)
        return rv;
    if (v->type != MCL_TYPE_MAP) {
        say(errbuf, errlen, "a msgpack %s, not a map", mcl_type_name(v->type));
        mcl__val_free(v);
        return MCL_ENOTMAP;
    }
    v->root = true;
    *out = v;
    return MCL_OK;
}

// --- descriptions ----------------------------------------------------------------------------

void
mcl__rinfo_link(mcl__rinfo *m, uint32_t id, unsigned flags)
{
    m->info = (mcl_rpc_method_info){.id = id,
                                    .name = m->name,
                                    .doc = m->doc,
                                    .args = m->args.f,
                                    .nargs = m->args.n,
                                    .result = m->result.f,
                                    .nresult = m->result.n,
                                    .flags = flags};
}

void
mcl__rinfo_fini(mcl__rinfo *m)
{
    mcl__free(m->name);
    mcl__free(m->doc);
    mcl__rschema_free(&m->args);
    mcl__rschema_free(&m->result);
    *m = (mcl__rinfo){0};
}

mcl_err
mcl__rinfo_describe(const mcl__rinfo *m, mcl_value *methods)
{
    mcl_value *e, *a, *r;
    mcl_err rv = mcl_value_push_map(methods, &e);
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(e, "id", m->info.id);
    if (rv == MCL_OK)
        rv = mcl_value_put_str(e, "name", m->name);
    if (rv == MCL_OK && m->doc[0] != '\0')
        rv = mcl_value_put_str(e, "doc", m->doc);
    if (rv == MCL_OK && m->info.flags != 0)
        rv = mcl_value_put_uint(e, "flags", m->info.flags);
    if (rv == MCL_OK && (rv = mcl_value_put_array(e, "args", &a)) == MCL_OK)
        rv = mcl__rschema_describe(&m->args, a);
    if (rv == MCL_OK && (rv = mcl_value_put_array(e, "result", &r)) == MCL_OK)
        rv = mcl__rschema_describe(&m->result, r);
    return rv;
}

void
mcl__rdesc_free(mcl__rdesc *d)
{
    for (size_t i = 0; i < d->n; i++)
        mcl__rinfo_fini(&d->m[i]);
    mcl__free(d->m);
    mcl__free(d->service);
    mcl__free(d->doc);
    *d = (mcl__rdesc){0};
}

// A string entry of a map: NULL when absent (if optional) or not a string within limits.
static bool
get_str(const mcl_value *map, const char *key, bool required, size_t max, const char **out)
{
    *out = NULL;
    const mcl_value *v = mcl_value_find(map, key);
    if (v == NULL)
        return !required;
    size_t n;
    if (mcl_value_get_str(v, out, &n) != MCL_OK || n > max || strlen(*out) != n ||
        !mcl__utf8_ok((const uint8_t *)*out, n)) {
        *out = NULL;
        return false;
    }
    return true;
}

static mcl_err
decode_schema(mcl__rschema *s, const mcl_value *arr, const char *what, const char *method,
              char *errbuf, size_t errlen)
{
    *s = (mcl__rschema){0};
    if (arr == NULL)
        return MCL_OK;
    size_t n = mcl_value_count(arr);
    if (mcl_value_type(arr) != MCL_TYPE_ARRAY || n > MCL__RPC_MAX_FIELDS) {
        say(errbuf, errlen, "method '%s': its %s are not an array of at most %d fields", method,
            what, MCL__RPC_MAX_FIELDS);
        return MCL_EPROTO;
    }
    mcl_rpc_field tmp[MCL__RPC_MAX_FIELDS];
    char *defs[MCL__RPC_MAX_FIELDS] = {0};
    mcl_err rv = MCL_OK;
    for (size_t i = 0; i < n && rv == MCL_OK; i++) {
        const mcl_value *e = mcl_value_item(arr, i);
        const char *name, *type, *doc;
        const mcl_value *opt = mcl_value_find(e, "optional"), *def = mcl_value_find(e, "default");
        bool optional = false;
        mcl_type t;
        if (mcl_value_type(e) != MCL_TYPE_MAP ||
            !get_str(e, "name", true, MCL__RPC_MAX_NAME, &name) ||
            !get_str(e, "type", true, 16, &type) || !type_from_name(type, &t) ||
            !get_str(e, "doc", false, MCL__RPC_MAX_DOC, &doc) ||
            (opt != NULL && mcl_value_get_bool(opt, &optional) != MCL_OK)) {
            say(errbuf, errlen, "method '%s': %s field %zu is malformed", method, what, i);
            rv = MCL_EPROTO;
            break;
        }
        if (def != NULL && (rv = mcl_value_to_json(def, MCL_JSON_COMPACT, &defs[i])) != MCL_OK)
            break;
        tmp[i] = (mcl_rpc_field){.name = name,
                                 .type = t,
                                 .optional = optional || def != NULL,
                                 .def = defs[i],
                                 .doc = doc};
    }
    if (rv == MCL_OK) {
        char why[200];
        rv = mcl__rschema_copy(s, tmp, n, why, sizeof(why));
        if (rv == MCL_EINVAL) {
            say(errbuf, errlen, "method '%s': %s: %s", method, what, why);
            rv = MCL_EPROTO;
        }
    }
    for (size_t i = 0; i < n; i++)
        mcl__free(defs[i]);
    return rv;
}

static int
cmp_rinfo(const void *a, const void *b)
{
    uint32_t x = ((const mcl__rinfo *)a)->info.id, y = ((const mcl__rinfo *)b)->info.id;
    return x < y ? -1 : x > y;
}

static mcl_err
decode_method(mcl__rinfo *ri, const mcl_value *e, size_t i, char *errbuf, size_t errlen)
{
    const char *name, *doc;
    uint64_t id, flags = 0;
    const mcl_value *fl = mcl_value_find(e, "flags");
    if (mcl_value_type(e) != MCL_TYPE_MAP || !get_str(e, "name", true, MCL__RPC_MAX_NAME, &name) ||
        !mcl__rpc_name_ok(name) || mcl_value_get_uint(mcl_value_find(e, "id"), &id) != MCL_OK ||
        id == 0 || id > UINT32_MAX || !get_str(e, "doc", false, MCL__RPC_MAX_DOC, &doc) ||
        (fl != NULL && mcl_value_get_uint(fl, &flags) != MCL_OK)) {
        say(errbuf, errlen, "method %zu is malformed (it needs an id, a dotted name)", i);
        return MCL_EPROTO;
    }
    mcl_err rv =
        decode_schema(&ri->args, mcl_value_find(e, "args"), "arguments", name, errbuf, errlen);
    if (rv == MCL_OK)
        rv =
            decode_schema(&ri->result, mcl_value_find(e, "result"), "result", name, errbuf, errlen);
    ri->name = mcl__strdup(name);
    ri->doc = dup_or_empty(doc);
    if (rv == MCL_OK && (ri->name == NULL || ri->doc == NULL))
        rv = MCL_ENOMEM;
    mcl__rinfo_link(ri, (uint32_t)id, (unsigned)flags & (MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT));
    return rv;
}

static int
cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Ids and names are unique (d->m sorted by id).
static mcl_err
check_unique(const mcl__rdesc *d, char *errbuf, size_t errlen)
{
    for (size_t i = 1; i < d->n; i++) {
        if (d->m[i].info.id == d->m[i - 1].info.id) {
            say(errbuf, errlen, "methods '%s' and '%s' share the id %u", d->m[i - 1].name,
                d->m[i].name, (unsigned)d->m[i].info.id);
            return MCL_EPROTO;
        }
    }
    if (d->n < 2)
        return MCL_OK;
    char **names = mcl__alloc(d->n * sizeof(*names));
    if (names == NULL)
        return MCL_ENOMEM;
    for (size_t i = 0; i < d->n; i++)
        names[i] = d->m[i].name;
    qsort(names, d->n, sizeof(*names), cmp_name);
    mcl_err rv = MCL_OK;
    for (size_t i = 1; i < d->n && rv == MCL_OK; i++) {
        if (strcmp(names[i], names[i - 1]) == 0) {
            say(errbuf, errlen, "two methods are named '%s'", names[i]);
            rv = MCL_EPROTO;
        }
    }
    mcl__free(names);
    return rv;
}

mcl_err
mcl__rdesc_decode(mcl__rdesc *d, const void *p, size_t len, char *errbuf, size_t errlen)
{
    *d = (mcl__rdesc){0};
    if (len > MCL__RPC_MAX_DESC) {
        say(errbuf, errlen, "the description is %zu bytes (at most %d)", len, MCL__RPC_MAX_DESC);
        return MCL_EPROTO;
    }
    mcl_value *v;
    char why[160];
    mcl_err rv = mcl__rpc_decode_map(p, len, &v, why, sizeof(why));
    if (rv == MCL_EDECODE || rv == MCL_ENOTMAP) {
        say(errbuf, errlen, "the description is not a msgpack map: %s", why);
        return MCL_EPROTO;
    }
    if (rv != MCL_OK)
        return rv;
    uint64_t proto = 0, max_args = 0;
    const char *service, *doc;
    const mcl_value *ms = mcl_value_find(v, "methods");
    size_t n = mcl_value_count(ms);
    if (mcl_value_get_uint(mcl_value_find(v, "protocol"), &proto) != MCL_OK || proto != 1 ||
        !get_str(v, "service", true, MCL__RPC_MAX_NAME, &service) ||
        !get_str(v, "doc", false, MCL__RPC_MAX_DOC, &doc) ||
        mcl_value_get_uint(mcl_value_find(v, "max_args"), &max_args) != MCL_OK ||
        mcl_value_type(ms) != MCL_TYPE_ARRAY || n > MCL__RPC_MAX_METHODS) {
        say(errbuf, errlen,
            "the description is malformed (it needs protocol 1, a service name, "
            "max_args and at most %d methods)",
            MCL__RPC_MAX_METHODS);
        mcl_value_free(v);
        return MCL_EPROTO;
    }
    d->service = mcl__strdup(service);
    d->doc = dup_or_empty(doc);
    d->max_args = max_args;
    d->m = mcl__zalloc((n ? n : 1) * sizeof(*d->m));
    rv = d->service && d->doc && d->m ? MCL_OK : MCL_ENOMEM;
    for (size_t i = 0; i < n && rv == MCL_OK; i++) {
        rv = decode_method(&d->m[i], mcl_value_item(ms, i), i, errbuf, errlen);
        d->n = i + 1;
    }
    if (rv == MCL_OK) {
        qsort(d->m, d->n, sizeof(*d->m), cmp_rinfo);
        rv = check_unique(d, errbuf, errlen);
    }
    mcl_value_free(v);
    if (rv != MCL_OK)
        mcl__rdesc_free(d);
    return rv;
}
