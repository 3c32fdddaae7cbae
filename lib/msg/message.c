// SPDX-License-Identifier: BSD-3-Clause
// Messages (a map with the reserved keys "name" and "timestamp"), the type registry, and the
// msgpack codec (msgpack-c, behind a structural pre-check so no length is trusted).
#define _GNU_SOURCE
#include "msg_int.h"

#include "../core/internal.h"

#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_NAME "name"
#define KEY_TIMESTAMP "timestamp"

// --- registry --------------------------------------------------------------------------------

struct mcl_msgtype {
    char *name;
    mcl_field *fields;
    size_t nfields;
    mcl_connection *conn;
    char *topic;
    struct mcl_msgtype *next_removed;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mcl_msgtype **reg;
static size_t reg_n, reg_cap;
static struct mcl_msgtype *removed; // kept alive: pointers handed out stay valid

static void
type_free(struct mcl_msgtype *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nfields; i++)
        mcl__free((char *)(uintptr_t)t->fields[i].name);
    mcl__free(t->fields);
    mcl__free(t->name);
    mcl__free(t->topic);
    mcl_connection_free(t->conn);
    mcl__free(t);
}

#define DEF_FAIL(code, ...) mcl__fail(code, errbuf, errlen, "msgtype", __VA_ARGS__)

mcl_err
mcl_msgtype_define(const mcl_msgtype **typep, const char *name, const mcl_field *fields,
                   size_t nfields, const char *url, const char *topic, char *errbuf,
                   size_t errlen)
{
    if (typep != NULL)
        *typep = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (typep == NULL || name == NULL || (fields == NULL && nfields > 0))
        return DEF_FAIL(MCL_EINVAL, "NULL argument");
    size_t nl = strlen(name);
    if (nl == 0 || nl > 255)
        return DEF_FAIL(MCL_EINVAL, "a message type needs a name of 1..255 bytes");
    for (size_t i = 0; i < nfields; i++) {
        const char *f = fields[i].name;
        if (f == NULL || f[0] == '\0')
            return DEF_FAIL(MCL_EINVAL, "%s: field %zu has no name", name, i);
        if (strcmp(f, KEY_NAME) == 0 || strcmp(f, KEY_TIMESTAMP) == 0)
            return DEF_FAIL(MCL_EINVAL, "%s: '%s' is reserved (every message has it)", name, f);
        if (fields[i].type < MCL_TYPE_ANY || fields[i].type > MCL_TYPE_NDARRAY)
            return DEF_FAIL(MCL_EINVAL, "%s: field '%s' has an unknown type", name, f);
        for (size_t j = 0; j < i; j++)
            if (strcmp(f, fields[j].name) == 0)
                return DEF_FAIL(MCL_EINVAL, "%s: field '%s' is declared twice", name, f);
    }
    if (topic != NULL && strlen(topic) > MCL_TOPIC_MAX)
        return DEF_FAIL(MCL_EINVAL, "%s: topic longer than %d bytes", name, MCL_TOPIC_MAX);

    struct mcl_msgtype *t = mcl__zalloc(sizeof(*t));
    if (t == NULL)
        return DEF_FAIL(MCL_ENOMEM, "out of memory");
    mcl_err rv = MCL_OK;
    if (url != NULL && (rv = mcl_connection_parse(&t->conn, url, errbuf, errlen)) != MCL_OK) {
        type_free(t);
        return rv;
    }
    t->name = mcl__strdup(name);
    t->topic = mcl__strdup(topic ? topic : "");
    t->fields = mcl__zalloc((nfields ? nfields : 1) * sizeof(*t->fields));
    if (t->name == NULL || t->topic == NULL || t->fields == NULL) {
        type_free(t);
        return DEF_FAIL(MCL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nfields; i++) {
        t->fields[i].type = fields[i].type;
        if ((t->fields[i].name = mcl__strdup(fields[i].name)) == NULL) {
            t->nfields = i;
            type_free(t);
            return DEF_FAIL(MCL_ENOMEM, "out of memory");
        }
        t->nfields = i + 1;
    }

    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n && rv == MCL_OK; i++) {
        if (strcmp(reg[i]->name, name) == 0)
            rv = DEF_FAIL(MCL_EEXIST, "a message type named '%s' already exists", name);
        else if (t->conn != NULL && reg[i]->conn != NULL &&
                 mcl_connection_equal(t->conn, reg[i]->conn))
            rv = DEF_FAIL(MCL_EEXIST, "%s: type '%s' already uses the connection %s", name,
                          reg[i]->name, mcl_connection_url(t->conn));
    }
    if (rv == MCL_OK && reg_n == reg_cap) {
        size_t nc = reg_cap ? reg_cap * 2 : 16;
        struct mcl_msgtype **nr = mcl__realloc(reg, nc * sizeof(*nr));
        if (nr == NULL)
            rv = DEF_FAIL(MCL_ENOMEM, "out of memory");
        else {
            reg = nr;
            reg_cap = nc;
        }
    }
    if (rv == MCL_OK)
        reg[reg_n++] = t;
    pthread_mutex_unlock(&reg_lock);
    if (rv != MCL_OK) {
        type_free(t);
        return rv;
    }
    *typep = t;
    return MCL_OK;
}

mcl_err
mcl_msgtype_remove(const char *name)
{
    if (name == NULL)
        return MCL_EINVAL;
    mcl_err rv = MCL_ENOENT;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++)
        if (strcmp(reg[i]->name, name) == 0) {
            struct mcl_msgtype *t = reg[i];
            memmove(&reg[i], &reg[i + 1], (reg_n - i - 1) * sizeof(*reg));
            reg_n--;
            t->next_removed = removed;
            removed = t;
            rv = MCL_OK;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return rv;
}

mcl_err
mcl_msgtype_find(const mcl_msgtype **typep, const char *name)
{
    if (typep != NULL)
        *typep = NULL;
    if (typep == NULL || name == NULL)
        return MCL_EINVAL;
    mcl_err rv = MCL_ENOENT;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++)
        if (strcmp(reg[i]->name, name) == 0) {
            *typep = reg[i];
            rv = MCL_OK;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return rv;
}

static bool
in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] != NULL && strcmp(list[i], name) == 0)
            return true;
    return false;
}

size_t
mcl_msgtype_list(const mcl_msgtype **out, size_t cap, const char *const *include, size_t ninc,
                 const char *const *exclude, size_t nexc)
{
    size_t n = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (exclude != NULL && in_list(reg[i]->name, exclude, nexc))
            continue;
        if (include != NULL && ninc > 0 && !in_list(reg[i]->name, include, ninc))
            continue;
        if (out != NULL && n < cap)
            out[n] = reg[i];
        n++;
    }
    pthread_mutex_unlock(&reg_lock);
    return n;
}

const char *
mcl_msgtype_name(const mcl_msgtype *t)
{
    return t ? t->name : "";
}
size_t
mcl_msgtype_nfields(const mcl_msgtype *t)
{
    return t ? t->nfields : 0;
}
const mcl_field *
mcl_msgtype_field(const mcl_msgtype *t, size_t i)
{
    return t && i < t->nfields ? &t->fields[i] : NULL;
}
const mcl_connection *
mcl_msgtype_connection(const mcl_msgtype *t)
{
    return t ? t->conn : NULL;
}
const char *
mcl_msgtype_topic(const mcl_msgtype *t)
{
    return t ? t->topic : "";
}

// --- messages --------------------------------------------------------------------------------

struct mcl_msg {
    mcl_value *root;
};

mcl_msg *
mcl__msg_wrap(mcl_value *root)
{
    mcl_msg *m = mcl__alloc(sizeof(*m));
    if (m == NULL) {
        mcl__val_free(root);
        return NULL;
    }
    m->root = root;
    return m;
}

mcl_value *
mcl__msg_root(mcl_msg *m)
{
    return m->root;
}

static double
now_s(void)
{
    return (double)mcl__real_ns() / 1e9;
}

mcl_err
mcl_msg_new(mcl_msg **mp, const mcl_msgtype *t)
{
    if (mp != NULL)
        *mp = NULL;
    if (mp == NULL)
        return MCL_EINVAL;
    mcl_value *root = mcl__val_new(MCL_TYPE_MAP);
    mcl_msg *m = mcl__msg_wrap(root);
    if (root == NULL || m == NULL) {
        mcl__free(m);
        return MCL_ENOMEM;
    }
    mcl_err rv = MCL_OK;
    if (t != NULL) {
        rv = mcl_value_put_str(root, KEY_NAME, t->name);
        for (size_t i = 0; i < t->nfields && rv == MCL_OK; i++)
            rv = mcl_value_put_nil(root, t->fields[i].name);
    }
    if (rv == MCL_OK)
        rv = mcl_value_put_double(root, KEY_TIMESTAMP, now_s());
    if (rv != MCL_OK) {
        mcl_msg_free(m);
        return rv;
    }
    *mp = m;
    return MCL_OK;
}

void
mcl_msg_free(mcl_msg *m)
{
    if (m == NULL)
        return;
    mcl__val_free(m->root);
    mcl__free(m);
}

void
mcl_free(void *p)
{
    free(p); // buffers come from malloc (ours, or msgpack-c's and jansson's, which use malloc)
}

mcl_err
mcl_msg_dup(mcl_msg **cp, const mcl_msg *m)
{
    if (cp != NULL)
        *cp = NULL;
    if (cp == NULL || m == NULL)
        return MCL_EINVAL;
    mcl_value *root = mcl__val_copy(m->root);
    if (root == NULL)
        return MCL_ENOMEM;
    if ((*cp = mcl__msg_wrap(root)) == NULL)
        return MCL_ENOMEM;
    return MCL_OK;
}

const char *
mcl_msg_name(const mcl_msg *m)
{
    const char *s;
    if (m == NULL || mcl_value_get_str(mcl_value_find(m->root, KEY_NAME), &s, NULL) != MCL_OK)
        return NULL;
    return s;
}

double
mcl_msg_timestamp(const mcl_msg *m)
{
    double d;
    if (m == NULL ||
        mcl_value_get_double(mcl_value_find(m->root, KEY_TIMESTAMP), &d) != MCL_OK)
        return NAN;
    return d;
}

const mcl_value *
mcl_msg_fields(const mcl_msg *m)
{
    return m ? m->root : NULL;
}

const mcl_value *
mcl_msg_get(const mcl_msg *m, const char *key)
{
    return m ? mcl_value_find(m->root, key) : NULL;
}

#define GET(m, key, call)                                                                          \
    do {                                                                                           \
        if ((m) == NULL || (key) == NULL)                                                          \
            return MCL_EINVAL;                                                                     \
        const mcl_value *v_ = mcl_value_find((m)->root, key);                                      \
        if (v_ == NULL)                                                                            \
            return MCL_ENOENT;                                                                     \
        return call;                                                                               \
    } while (0)

mcl_err
mcl_msg_get_bool(const mcl_msg *m, const char *key, bool *out)
{
    GET(m, key, mcl_value_get_bool(v_, out));
}
mcl_err
mcl_msg_get_int(const mcl_msg *m, const char *key, int64_t *out)
{
    GET(m, key, mcl_value_get_int(v_, out));
}
mcl_err
mcl_msg_get_uint(const mcl_msg *m, const char *key, uint64_t *out)
{
    GET(m, key, mcl_value_get_uint(v_, out));
}
mcl_err
mcl_msg_get_double(const mcl_msg *m, const char *key, double *out)
{
    GET(m, key, mcl_value_get_double(v_, out));
}
mcl_err
mcl_msg_get_str(const mcl_msg *m, const char *key, const char **s, size_t *len)
{
    GET(m, key, mcl_value_get_str(v_, s, len));
}
mcl_err
mcl_msg_get_bin(const mcl_msg *m, const char *key, const void **d, size_t *len)
{
    GET(m, key, mcl_value_get_bin(v_, d, len));
}

// "name" may be set once (to a string), never changed.
static mcl_err
writable(const mcl_msg *m, const char *key, mcl_type newtype)
{
    if (m == NULL || key == NULL)
        return MCL_EINVAL;
    if (strcmp(key, KEY_NAME) == 0) {
        if (mcl_value_find(m->root, KEY_NAME) != NULL)
            return MCL_EREADONLY;
        if (newtype != MCL_TYPE_STR)
            return MCL_ETYPE;
    }
    return MCL_OK;
}

#define SET(m, key, type, call)                                                                    \
    do {                                                                                           \
        mcl_err rv_ = writable(m, key, type);                                                      \
        if (rv_ != MCL_OK)                                                                         \
            return rv_;                                                                            \
        return call;                                                                               \
    } while (0)

mcl_err
mcl_msg_set_nil(mcl_msg *m, const char *key)
{
    SET(m, key, MCL_TYPE_NIL, mcl_value_put_nil(m->root, key));
}
mcl_err
mcl_msg_set_bool(mcl_msg *m, const char *key, bool b)
{
    SET(m, key, MCL_TYPE_BOOL, mcl_value_put_bool(m->root, key, b));
}
mcl_err
mcl_msg_set_int(mcl_msg *m, const char *key, int64_t i)
{
    SET(m, key, MCL_TYPE_INT, mcl_value_put_int(m->root, key, i));
}
mcl_err
mcl_msg_set_uint(mcl_msg *m, const char *key, uint64_t u)
{
    SET(m, key, MCL_TYPE_INT, mcl_value_put_uint(m->root, key, u));
}
mcl_err
mcl_msg_set_double(mcl_msg *m, const char *key, double d)
{
    SET(m, key, MCL_TYPE_FLOAT, mcl_value_put_double(m->root, key, d));
}
mcl_err
mcl_msg_set_str(mcl_msg *m, const char *key, const char *s)
{
    SET(m, key, MCL_TYPE_STR, mcl_value_put_str(m->root, key, s));
}
mcl_err
mcl_msg_set_strn(mcl_msg *m, const char *key, const char *s, size_t len)
{
    SET(m, key, MCL_TYPE_STR, mcl_value_put_strn(m->root, key, s, len));
}
mcl_err
mcl_msg_set_bin(mcl_msg *m, const char *key, const void *d, size_t len)
{
    SET(m, key, MCL_TYPE_BIN, mcl_value_put_bin(m->root, key, d, len));
}
mcl_err
mcl_msg_set_array(mcl_msg *m, const char *key, mcl_value **arr)
{
    SET(m, key, MCL_TYPE_ARRAY, mcl_value_put_array(m->root, key, arr));
}
mcl_err
mcl_msg_set_map(mcl_msg *m, const char *key, mcl_value **map)
{
    SET(m, key, MCL_TYPE_MAP, mcl_value_put_map(m->root, key, map));
}
mcl_err
mcl_msg_set_value(mcl_msg *m, const char *key, const mcl_value *v)
{
    SET(m, key, mcl_value_type(v), mcl_value_put_copy(m->root, key, v));
}

mcl_err
mcl_msg_set_ndarray(mcl_msg *m, const char *key, mcl_dtype dtype, size_t ndim,
                    const uint64_t *shape, const void *data)
{
    SET(m, key, MCL_TYPE_NDARRAY, mcl_value_put_ndarray(m->root, key, dtype, ndim, shape, data));
}
mcl_err
mcl_msg_set_ndarray_uninit(mcl_msg *m, const char *key, mcl_dtype dtype, size_t ndim,
                           const uint64_t *shape, void **data)
{
    if (data != NULL)
        *data = NULL;
    SET(m, key, MCL_TYPE_NDARRAY,
        mcl_value_put_ndarray_uninit(m->root, key, dtype, ndim, shape, data));
}
mcl_err
mcl_msg_get_ndarray(const mcl_msg *m, const char *key, mcl_dtype *dtype, size_t *ndim,
                    const uint64_t **shape, const void **data, size_t *nbytes)
{
    if (m == NULL || key == NULL || mcl_value_find(m->root, key) == NULL) {
        mcl_err rv = mcl_value_get_ndarray(NULL, dtype, ndim, shape, data, nbytes); // resets
        return m == NULL || key == NULL ? rv : MCL_ENOENT;
    }
    return mcl_value_get_ndarray(mcl_value_find(m->root, key), dtype, ndim, shape, data, nbytes);
}

mcl_err
mcl_msg_remove(mcl_msg *m, const char *key)
{
    if (m == NULL || key == NULL)
        return MCL_EINVAL;
    if (strcmp(key, KEY_NAME) == 0 && mcl_value_find(m->root, KEY_NAME) != NULL)
        return MCL_EREADONLY;
    return mcl__val_remove(m->root, key) ? MCL_OK : MCL_ENOENT;
}

mcl_err
mcl_msg_update(mcl_msg *m, const mcl_msg *src)
{
    if (m == NULL || src == NULL)
        return MCL_EINVAL;
    const mcl_value *sn = mcl_value_find(src->root, KEY_NAME);
    const mcl_value *mn = mcl_value_find(m->root, KEY_NAME);
    if (sn != NULL && mn != NULL && !mcl_value_equal(sn, mn))
        return MCL_EREADONLY;
    if (sn != NULL && mn == NULL && sn->type != MCL_TYPE_STR)
        return MCL_ETYPE;
    // Build the result on a copy so that a failure leaves m unchanged.
    mcl_value *root = mcl__val_copy(m->root);
    if (root == NULL)
        return MCL_ENOMEM;
    mcl_err rv = MCL_OK;
    for (size_t i = 0; i < src->root->m.n && rv == MCL_OK; i++) {
        const mcl__kv *kv = &src->root->m.kv[i];
        rv = mcl__val_put(root, kv->key, kv->klen, mcl__val_copy(kv->val));
    }
    if (rv == MCL_OK && mcl_value_find(src->root, KEY_TIMESTAMP) == NULL)
        rv = mcl_value_put_double(root, KEY_TIMESTAMP, now_s());
    if (rv != MCL_OK) {
        mcl__val_free(root);
        return rv;
    }
    mcl__val_free(m->root);
    m->root = root;
    return MCL_OK;
}

static bool
kind_ok(mcl_type want, const mcl_value *v)
{
    if (want == MCL_TYPE_ANY || v->type == MCL_TYPE_NIL || v->type == want)
        return true;
    return want == MCL_TYPE_FLOAT && v->type == MCL_TYPE_INT;
}

static mcl_err
check_mandatory(const mcl_value *root, const mcl_msgtype *t, char *errbuf, size_t errlen)
{
    char missing[256] = "";
    size_t ml = 0;
    bool any = false;
    for (size_t i = 0; i < t->nfields; i++)
        if (mcl_value_find(root, t->fields[i].name) == NULL) {
            any = true;
            if (ml < sizeof(missing)) {
                int n = snprintf(missing + ml, sizeof(missing) - ml, "%s%s", ml ? ", " : "",
                                 t->fields[i].name);
                if (n > 0)
                    ml += (size_t)n;
            }
        }
    if (any)
        return mcl__fail(MCL_EMISSING, errbuf, errlen, "message",
                         "'%s' is missing the mandatory fields: %s", t->name, missing);
    return MCL_OK;
}

mcl_err
mcl_msg_check(const mcl_msg *m, const mcl_msgtype *t, char *errbuf, size_t errlen)
{
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (m == NULL || t == NULL)
        return MCL_EINVAL;
    const char *name = mcl_msg_name(m);
    if (name == NULL || strcmp(name, t->name) != 0)
        return mcl__fail(MCL_ETYPE, errbuf, errlen, "message",
                         "message named '%s' is not a '%s'", name ? name : "(none)", t->name);
    mcl_err rv = check_mandatory(m->root, t, errbuf, errlen);
    if (rv != MCL_OK)
        return rv;
    for (size_t i = 0; i < t->nfields; i++) {
        const mcl_value *v = mcl_value_find(m->root, t->fields[i].name);
        if (!kind_ok(t->fields[i].type, v))
            return mcl__fail(MCL_ETYPE, errbuf, errlen, "message",
                             "'%s' field '%s' holds %s, declared %s", t->name, t->fields[i].name,
                             mcl_type_name(v->type), mcl_type_name(t->fields[i].type));
    }
    return MCL_OK;
}

// --- msgpack encoding ------------------------------------------------------------------------

// A typed array as an ext of type MCL_NDARRAY_EXT_TYPE (docs/wire-format.md): the header and
// dims, then the data straight from the value (one copy into the packer's buffer; a
// big-endian host swaps each element into a scratch copy first).
static int
pack_nd(msgpack_packer *pk, const mcl_value *v)
{
    uint8_t hdr[MCL__ND_HDR + 8 * MCL_NDARRAY_MAX_NDIM];
    size_t hl = mcl__nd_write_hdr(v, hdr);
    if (msgpack_pack_ext(pk, mcl__nd_ext_len(v), (int8_t)MCL_NDARRAY_EXT_TYPE) != 0 ||
        msgpack_pack_ext_body(pk, hdr, hl) != 0)
        return -1;
    if (v->nd.nbytes == 0)
        return 0;
    size_t es = mcl_dtype_size((mcl_dtype)v->nd.dtype);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    if (es > 1) {
        void *le = mcl__alloc(v->nd.nbytes);
        if (le == NULL)
            return -1;
        mcl__nd_copy_le(le, mcl__nd_data(v), v->nd.nbytes, es);
        int r = msgpack_pack_ext_body(pk, le, v->nd.nbytes);
        mcl__free(le);
        return r != 0 ? -1 : 0;
    }
#endif
    (void)es;
    return msgpack_pack_ext_body(pk, mcl__nd_data(v), v->nd.nbytes) != 0 ? -1 : 0;
}

static int
pack(msgpack_packer *pk, const mcl_value *v, int depth)
{
    if ((v->type == MCL_TYPE_ARRAY || v->type == MCL_TYPE_MAP) && depth >= MCL__MAX_NESTING)
        return 1; // too deep for any decoder
    switch (v->type) {
    case MCL_TYPE_NIL:
    case MCL_TYPE_ANY:
        return msgpack_pack_nil(pk);
    case MCL_TYPE_BOOL:
        return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case MCL_TYPE_INT:
        return v->is_u ? msgpack_pack_uint64(pk, v->u) : msgpack_pack_int64(pk, v->i);
    case MCL_TYPE_FLOAT:
        return msgpack_pack_double(pk, v->d);
    case MCL_TYPE_STR:
        if (v->s.n > UINT32_MAX)
            return -1;
        return msgpack_pack_str(pk, v->s.n) != 0 || msgpack_pack_str_body(pk, v->s.p, v->s.n) != 0
                   ? -1
                   : 0;
    case MCL_TYPE_BIN:
        if (v->s.n > UINT32_MAX)
            return -1;
        return msgpack_pack_bin(pk, v->s.n) != 0 || msgpack_pack_bin_body(pk, v->s.p, v->s.n) != 0
                   ? -1
                   : 0;
    case MCL_TYPE_ARRAY:
        if (msgpack_pack_array(pk, v->a.n) != 0)
            return -1;
        for (size_t i = 0; i < v->a.n; i++) {
            int r = pack(pk, v->a.v[i], depth + 1);
            if (r != 0)
                return r;
        }
        return 0;
    case MCL_TYPE_MAP:
        if (msgpack_pack_map(pk, v->m.n) != 0)
            return -1;
        for (size_t i = 0; i < v->m.n; i++) {
            if (msgpack_pack_str(pk, v->m.kv[i].klen) != 0 ||
                msgpack_pack_str_body(pk, v->m.kv[i].key, v->m.kv[i].klen) != 0)
                return -1;
            int r = pack(pk, v->m.kv[i].val, depth + 1);
            if (r != 0)
                return r;
        }
        return 0;
    case MCL_TYPE_NDARRAY:
        return pack_nd(pk, v);
    }
    return -1;
}

mcl_err
mcl__val_pack(msgpack_packer *pk, const mcl_value *v)
{
    // What nobody could decode is not packed (like nesting deeper than any decoder reads).
    mcl__dcost cost;
    char why[160];
    mcl__val_measure(v, &cost);
    if (mcl__decode_check(&cost, cost.packed, why, sizeof(why)) != MCL_OK)
        return mcl__fail(MCL_EMSGSIZE, NULL, 0, "message", "%llu bytes of msgpack that no one "
                         "could decode: %s", (unsigned long long)cost.packed, why);
    int pr = pack(pk, v, 0);
    if (pr == 0)
        return MCL_OK;
    return pr > 0 ? mcl__fail(MCL_ERANGE, NULL, 0, "message", "containers nested deeper than %d levels",
                              MCL__MAX_NESTING)
                  : MCL_ENOMEM;
}

mcl_err
mcl_msg_encode(const mcl_msg *m, void **bufp, size_t *lenp)
{
    return mcl_value_encode(m != NULL ? m->root : NULL, bufp, lenp);
}

static mcl_err encode_value(const mcl_value *v, void **bufp, size_t *lenp);

mcl_err
mcl_value_encode(const mcl_value *v, void **bufp, size_t *lenp)
{
    if (bufp != NULL)
        *bufp = NULL;
    if (lenp != NULL)
        *lenp = 0;
    if (v == NULL || bufp == NULL || lenp == NULL)
        return MCL_EINVAL;
    return encode_value(v, bufp, lenp);
}

static mcl_err
encode_value(const mcl_value *v, void **bufp, size_t *lenp)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    mcl_err rv = mcl__val_pack(&pk, v);
    if (rv != MCL_OK) {
        msgpack_sbuffer_destroy(&sb);
        return rv;
    }
    *lenp = sb.size;
    *bufp = msgpack_sbuffer_release(&sb);
    if (*bufp == NULL) { // an empty map still has one byte; release only fails on no data
        *lenp = 0;
        return MCL_ENOMEM;
    }
    return MCL_OK;
}

// --- msgpack decoding ------------------------------------------------------------------------

enum { MAX_DEPTH = MCL__MAX_NESTING };

// A decoder straight from the bytes into a value tree, in two passes. The first (mp_scan)
// walks the bytes without allocating: every length is checked against what remains, a
// container's count must be plausible (each element takes at least one byte), nesting is
// bounded, map keys are strings or binary without NUL, and the values are counted and what
// their tree will cost (mcl__val_cost) is added up; a payload with more than
// MCL_DECODE_MAX_VALUES values, or needing more than its budget (mcl__decode_budget: 8 bytes of
// memory per byte of payload, plus 16 MiB), is refused before anything is allocated. The second
// (mp_value) builds the tree, reserving every container exactly, so it costs what was counted.
typedef struct mp_in {
    const uint8_t *p;
    size_t len, off;
} mp_in;

static bool
mp_take(mp_in *in, size_t n, const uint8_t **out)
{
    if (n > in->len - in->off)
        return false;
    *out = in->p + in->off;
    in->off += n;
    return true;
}

static bool
mp_uint(mp_in *in, unsigned bytes, uint64_t *v)
{
    const uint8_t *q;
    if (!mp_take(in, bytes, &q))
        return false;
    uint64_t x = 0;
    for (unsigned i = 0; i < bytes; i++)
        x = x << 8 | q[i];
    *v = x;
    return true;
}

static mcl_err mp_value(mp_in *in, mcl_value **out, int depth);



static mcl_value *
mp_int_value(bool is_u, uint64_t u, int64_t i)
{
    mcl_value *v = mcl__val_new(MCL_TYPE_INT);
    if (v != NULL) {
        v->is_u = is_u;
        if (is_u)
            v->u = u;
        else
            v->i = i;
    }
    return v;
}

// A signed integer of 1..8 bytes: non-negative values are stored unsigned (as msgpack-c does).
static mcl_value *
mp_signed(uint64_t raw, unsigned bytes)
{
    int64_t x;
    if (bytes == 8) {
        x = (int64_t)raw; // (two's complement on every platform we build for)
    } else {
        uint64_t sign = (uint64_t)1 << (bytes * 8 - 1);
        x = (int64_t)(raw ^ sign) - (int64_t)sign;
    }
    return x >= 0 ? mp_int_value(true, (uint64_t)x, 0) : mp_int_value(false, 0, x);
}

// A string or binary of n bytes (a map key included).
static mcl_err
mp_bytes(mp_in *in, uint64_t n, const uint8_t **out)
{
    return n <= in->len - in->off && mp_take(in, (size_t)n, out) ? MCL_OK : MCL_EDECODE;
}

// The length of a str or bin header at c (false: not a str or bin).
static bool
mp_strlen(mp_in *in, uint8_t c, uint64_t *n, bool *bin, bool *ok)
{
    *bin = false;
    *ok = true;
    if ((c & 0xe0) == 0xa0) {
        *n = c & 0x1f;
        return true;
    }
    switch (c) {
    case 0xc4: case 0xc5: case 0xc6:
        *bin = true;
        *ok = mp_uint(in, 1u << (c - 0xc4), n);
        return true;
    case 0xd9: case 0xda: case 0xdb:
        *ok = mp_uint(in, 1u << (c - 0xd9), n);
        return true;
    default:
        return false;
    }
}

// A msgpack ext at header byte c (fixext 1..16, ext 8/16/32): whether it is one, and then
// whether it is a valid typed array (the only extension mcl reads; any other is refused), with
// its header in *h. The input is consumed up to the end of the ext.
static bool
mp_ext(mp_in *in, uint8_t c, bool *ok, mcl__ndhdr *h)
{
    uint64_t n;
    *ok = false;
    if (c >= 0xd4 && c <= 0xd8) {
        n = 1u << (c - 0xd4);
    } else if (c >= 0xc7 && c <= 0xc9) {
        if (!mp_uint(in, 1u << (c - 0xc7), &n))
            return true;
    } else {
        return false;
    }
    const uint8_t *tp, *p;
    if (!mp_take(in, 1, &tp) || mp_bytes(in, n, &p) != MCL_OK)
        return true; // truncated
    *ok = (int8_t)*tp == MCL_NDARRAY_EXT_TYPE && mcl__nd_parse(p, (size_t)n, h);
    return true;
}

// What mcl_value_scan_map() asks of the first pass: the scalars of some top-level keys.
typedef struct mp_capture {
    const char *const *keys;
    size_t nkeys;
    mcl_scalar *out;
} mp_capture;

// Which of the keys asked for a top-level key is (-1: none).
static long
mp_wanted(const mp_capture *cap, const uint8_t *key, uint64_t n)
{
    for (size_t k = 0; k < cap->nkeys; k++)
        if (cap->keys[k] != NULL && strncmp(cap->keys[k], (const char *)key, (size_t)n) == 0 &&
            cap->keys[k][n] == '\0')
            return (long)k;
    return -1;
}

// The value of a scalar whose header byte is c and whose bytes after it are q (n: the length of
// a string, the count of a container).
static void
mp_capture_value(mcl_scalar *o, uint8_t c, mcl_type t, const uint8_t *q, uint64_t n)
{
    uint64_t u = 0;
    unsigned w = 0;
    *o = (mcl_scalar){.type = t};
    if (t == MCL_TYPE_STR || t == MCL_TYPE_BIN) {
        o->str = (const char *)q;
        o->len = (size_t)n;
        return;
    }
    if (t == MCL_TYPE_ARRAY || t == MCL_TYPE_MAP || t == MCL_TYPE_NDARRAY) {
        o->len = (size_t)n; // (a typed array: its element count)
        return;
    }
    if (c == 0xc0 || c == 0xc2 || c == 0xc3) {
        o->type = c == 0xc0 ? MCL_TYPE_NIL : MCL_TYPE_BOOL;
        o->b = c == 0xc3;
        return;
    }
    if (c <= 0x7f || c >= 0xe0) {
        o->type = MCL_TYPE_INT;
        o->i = (int8_t)c;
        return;
    }
    if (c == 0xca || c == 0xcb)
        w = c == 0xca ? 4 : 8;
    else if (c >= 0xcc && c <= 0xcf)
        w = 1u << (c - 0xcc);
    else // 0xd0..0xd3
        w = 1u << (c - 0xd0);
    for (unsigned i = 0; i < w; i++)
        u = u << 8 | q[i];
    if (c == 0xca || c == 0xcb) {
        o->type = MCL_TYPE_FLOAT;
        if (c == 0xca) {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, sizeof f);
            o->d = f;
        } else {
            memcpy(&o->d, &u, sizeof o->d);
        }
        return;
    }
    o->type = MCL_TYPE_INT;
    if (c >= 0xcc && c <= 0xcf) {
        o->big_uint = u > INT64_MAX;
        if (o->big_uint)
            o->u = u;
        else
            o->i = (int64_t)u;
    } else if (w == 8) {
        o->i = (int64_t)u;
    } else {
        uint64_t sign = (uint64_t)1 << (w * 8 - 1);
        o->i = (int64_t)(u ^ sign) - (int64_t)sign;
    }
}

// The first pass (above). On MCL_EDECODE, why says what is wrong when it is the budget. With
// cap, also the scalars of the top-level keys it asks for (the root must then be a map).
// clang-format off
static mcl_err
mp_scan(const uint8_t *p, size_t len, mcl__dcost *cost, char *why, size_t whylen,
        const mp_capture *cap)
{
    uint64_t pending[MAX_DEPTH + 1]; // elements still to read at each level (maps: entries)
    bool inmap[MAX_DEPTH + 1];
    uint64_t budget = mcl__decode_budget(len);
    mp_in in = {p, len, 0};
    int level = 0;
    *cost = (mcl__dcost){0, 0, 0};
    pending[0] = 1;
    inmap[0] = false;
    while (level >= 0) {
        if (pending[level] == 0) {
            level--;
            continue;
        }
        pending[level]--;
        const uint8_t *q, *vq = NULL;
        uint64_t n = 0;
        bool bin, ok;
        long want = -1;
        mcl__ndhdr nd;
        if (inmap[level]) { // a key: a string or binary without NUL
            const uint8_t *key;
            if (!mp_take(&in, 1, &q) || !mp_strlen(&in, *q, &n, &bin, &ok) || !ok ||
                mp_bytes(&in, n, &key) != MCL_OK || memchr(key, 0, (size_t)n) != NULL)
                return MCL_EDECODE;
            cost->bytes += mcl__alloc_cost(n + 1);
            if (cap != NULL && level == 1 && (want = mp_wanted(cap, key, n)) >= 0 &&
                cap->out[want].type != MCL_TYPE_ANY)
                return MCL_EDECODE; // a repeated key (mp_value refuses it too)
        }
        if (!mp_take(&in, 1, &q))
            return MCL_EDECODE;
        uint8_t c = *q;
        mcl_type t = MCL_TYPE_NIL;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            n = 0;
        } else if ((c & 0xe0) == 0x80) { // fixmap, fixarray
            t = (c & 0xf0) == 0x80 ? MCL_TYPE_MAP : MCL_TYPE_ARRAY;
            n = c & 0x0f;
        } else if (mp_strlen(&in, c, &n, &bin, &ok)) {
            if (!ok || mp_bytes(&in, n, &vq) != MCL_OK)
                return MCL_EDECODE;
            t = bin ? MCL_TYPE_BIN : MCL_TYPE_STR;
        } else if (mp_ext(&in, c, &ok, &nd)) {
            if (!ok)
                return MCL_EDECODE;
            t = MCL_TYPE_NDARRAY;
            n = mcl__nd_off(nd.ndim) + nd.nbytes; // its block, for the cost
        } else {
            unsigned skip;
            switch (c) {
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xdc: case 0xdd:
                t = MCL_TYPE_ARRAY;
                skip = 0;
                if (!mp_uint(&in, 2u << (c - 0xdc), &n))
                    return MCL_EDECODE;
                break;
            case 0xde: case 0xdf:
                t = MCL_TYPE_MAP;
                skip = 0;
                if (!mp_uint(&in, 2u << (c - 0xde), &n))
                    return MCL_EDECODE;
                break;
            default: // other extension types have no meaning here; 0xc1 is never used
                return MCL_EDECODE;
            }
            if (skip > 0 && !mp_take(&in, skip, &vq))
                return MCL_EDECODE;
        }
        if (want >= 0)
            mp_capture_value(&cap->out[want], c, t, vq,
                             t == MCL_TYPE_NDARRAY ? nd.nbytes / mcl_dtype_size((mcl_dtype)nd.dtype)
                                                   : n);
        cost->values++;
        cost->bytes += mcl__val_cost(t, n);
        if (cost->values > MCL_DECODE_MAX_VALUES || cost->bytes > budget)
            return mcl__decode_check(cost, len, why, whylen);
        if (t == MCL_TYPE_ARRAY || t == MCL_TYPE_MAP) {
            if (level >= MAX_DEPTH || n > (in.len - in.off) / (t == MCL_TYPE_MAP ? 2 : 1))
                return MCL_EDECODE;
            if (n > 0) {
                level++;
                pending[level] = n;
                inmap[level] = t == MCL_TYPE_MAP;
            }
        }
    }
    return in.off == len ? MCL_OK : MCL_EDECODE; // (trailing bytes)
}
// clang-format on

static mcl_err
mp_container(mp_in *in, bool map, uint64_t count, mcl_value **out, int depth)
{
    if (depth >= MAX_DEPTH || count > (in->len - in->off) / (map ? 2 : 1))
        return MCL_EDECODE;
    mcl_value *v = mcl__val_new(map ? MCL_TYPE_MAP : MCL_TYPE_ARRAY);
    if (v == NULL)
        return MCL_ENOMEM;
    mcl_err rv = MCL_OK;
    if (count > 0) {
        // Reserved exactly: mp_scan has seen every element and counted this in the budget.
        size_t want = (size_t)count;
        if (map) {
            v->m.kv = mcl__alloc(want * sizeof(*v->m.kv));
            v->m.cap = want;
        } else {
            v->a.v = mcl__alloc(want * sizeof(*v->a.v));
            v->a.cap = want;
        }
        if ((map ? (void *)v->m.kv : (void *)v->a.v) == NULL) {
            v->m.cap = v->a.cap = 0;
            rv = MCL_ENOMEM;
        }
    }
    for (uint64_t i = 0; i < count && rv == MCL_OK; i++) {
        const uint8_t *key = (const uint8_t *)"";
        uint64_t klen = 0;
        if (map) {
            const uint8_t *c;
            bool bin, ok;
            if (!mp_take(in, 1, &c) || !mp_strlen(in, *c, &klen, &bin, &ok) || !ok ||
                mp_bytes(in, klen, &key) != MCL_OK || memchr(key, 0, (size_t)klen) != NULL) {
                rv = MCL_EDECODE; // keys are strings (or binary) without NUL
                break;
            }
        }
        mcl_value *item = NULL;
        if ((rv = mp_value(in, &item, depth + 1)) != MCL_OK)
            break;
        // A map's entries are appended unchecked (a search per key would make big maps
        // quadratic) and checked once below: a map with a repeated key is not valid.
        rv = map ? mcl__val_append(v, (const char *)key, (size_t)klen, item) : mcl__val_push(v, item);
    }
    if (rv == MCL_OK && map && mcl__val_has_dup_keys(v))
        rv = MCL_EDECODE;
    if (rv != MCL_OK) {
        mcl__val_free(v);
        return rv;
    }
    *out = v;
    return MCL_OK;
}

static mcl_err
mp_value(mp_in *in, mcl_value **out, int depth)
{
    const uint8_t *q;
    if (!mp_take(in, 1, &q))
        return MCL_EDECODE;
    uint8_t c = *q;
    mcl_value *v = NULL;
    uint64_t n;
    mcl__ndhdr nd;
    if (c <= 0x7f) {
        v = mp_int_value(true, c, 0);
    } else if (c >= 0xe0) {
        v = mp_int_value(false, 0, (int64_t)c - 256);
    } else if ((c & 0xf0) == 0x80) {
        return mp_container(in, true, c & 0x0f, out, depth);
    } else if ((c & 0xf0) == 0x90) {
        return mp_container(in, false, c & 0x0f, out, depth);
    } else {
        bool bin, ok;
        if (mp_strlen(in, c, &n, &bin, &ok)) {
            const uint8_t *s;
            if (!ok || mp_bytes(in, n, &s) != MCL_OK)
                return MCL_EDECODE;
            v = mcl__val_str((const char *)s, (size_t)n, bin ? MCL_TYPE_BIN : MCL_TYPE_STR);
        } else if (mp_ext(in, c, &ok, &nd)) {
            if (!ok)
                return MCL_EDECODE;
            // Copied (one memcpy on a little-endian host) into the value's own aligned block:
            // the payload is the caller's and at no particular alignment.
            if ((v = mcl__val_nd(nd.dtype, nd.ndim, nd.shape, nd.nbytes)) != NULL)
                mcl__nd_copy_le(mcl__nd_data(v), nd.data, nd.nbytes,
                                mcl_dtype_size((mcl_dtype)nd.dtype));
        } else {
            switch (c) {
            case 0xc0:
                v = mcl__val_new(MCL_TYPE_NIL);
                break;
            case 0xc2:
            case 0xc3:
                if ((v = mcl__val_new(MCL_TYPE_BOOL)) != NULL)
                    v->b = c == 0xc3;
                break;
            case 0xca: { // float32
                if (!mp_uint(in, 4, &n))
                    return MCL_EDECODE;
                uint32_t b32 = (uint32_t)n;
                float f;
                memcpy(&f, &b32, sizeof(f));
                if ((v = mcl__val_new(MCL_TYPE_FLOAT)) != NULL)
                    v->d = f;
                break;
            }
            case 0xcb:
                if (!mp_uint(in, 8, &n))
                    return MCL_EDECODE;
                if ((v = mcl__val_new(MCL_TYPE_FLOAT)) != NULL)
                    memcpy(&v->d, &n, sizeof(v->d));
                break;
            case 0xcc: case 0xcd: case 0xce: case 0xcf:
                if (!mp_uint(in, 1u << (c - 0xcc), &n))
                    return MCL_EDECODE;
                v = mp_int_value(true, n, 0);
                break;
            case 0xd0: case 0xd1: case 0xd2: case 0xd3:
                if (!mp_uint(in, 1u << (c - 0xd0), &n))
                    return MCL_EDECODE;
                v = mp_signed(n, 1u << (c - 0xd0));
                break;
            case 0xdc: case 0xdd:
                if (!mp_uint(in, 2u << (c - 0xdc), &n))
                    return MCL_EDECODE;
                return mp_container(in, false, n, out, depth);
            case 0xde: case 0xdf:
                if (!mp_uint(in, 2u << (c - 0xde), &n))
                    return MCL_EDECODE;
                return mp_container(in, true, n, out, depth);
            default: // other extension types have no meaning here; 0xc1 is never used
                return MCL_EDECODE;
            }
        }
    }
    if (v == NULL)
        return MCL_ENOMEM;
    *out = v;
    return MCL_OK;
}

mcl_err
mcl__msgpack_decode(const void *buf, size_t len, mcl_value **out, char *why, size_t whylen)
{
    *out = NULL;
    if (whylen > 0)
        why[0] = '\0';
    if (len == 0)
        return MCL_EDECODE;
    mcl__dcost cost;
    mcl_err rv = mp_scan(buf, len, &cost, why, whylen, NULL);
    if (rv != MCL_OK)
        return rv;
    mp_in in = {buf, len, 0};
    mcl_value *v = NULL;
    rv = mp_value(&in, &v, 0);
    if (rv == MCL_OK && in.off != len) { // trailing bytes
        mcl__val_free(v);
        rv = MCL_EDECODE;
    }
    if (rv == MCL_OK)
        *out = v;
    return rv;
}

mcl_err
mcl__msgpack_to_value(const void *buf, size_t len, mcl_value **out)
{
    char why[160];
    return mcl__msgpack_decode(buf, len, out, why, sizeof(why));
}

// The text of a refusal: what the budget says, or that the bytes are not a valid object.
static mcl_err
decode_fail(char *errbuf, size_t errlen, const char *component, size_t len, const char *why)
{
    if (why[0] != '\0')
        return mcl__fail(MCL_EDECODE, errbuf, errlen, component, "%zu bytes of msgpack: %s", len,
                         why);
    return mcl__fail(MCL_EDECODE, errbuf, errlen, component,
                     "%zu bytes are not one msgpack object with string map keys", len);
}

mcl_err
mcl_value_decode(mcl_value **vp, const void *buf, size_t len, char *errbuf, size_t errlen)
{
    if (vp != NULL)
        *vp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (vp == NULL || (buf == NULL && len > 0))
        return MCL_EINVAL;
    char why[160];
    mcl_err rv = mcl__msgpack_decode(buf, len, vp, why, sizeof(why));
    if (rv == MCL_EDECODE)
        return decode_fail(errbuf, errlen, "value", len, why);
    if (rv == MCL_OK)
        (*vp)->root = true;
    return rv;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
enum { MP_LITTLE_ENDIAN = 1 };
#else
enum { MP_LITTLE_ENDIAN = 0 };
#endif

// mcl_value_scan_map()'s fast path: a map of at most 4096 entries whose keys are short strings
// (at most 255 bytes) and whose values are scalars (strings and binary of at most 255 bytes),
// the shape of most messages. Such a map is within the decoding bounds whatever it holds (each
// entry's tree costs under 400 bytes, so 4096 of them stay under the 16 MiB any payload may
// take, and under MCL_DECODE_MAX_VALUES), so only the structure is checked. true: valid, and the
// captures are filled; false: another shape or invalid, for mp_scan() to decide.
// clang-format off
static bool
mp_scan_flat(const uint8_t *p, size_t len, const mp_capture *cap, const size_t *klen,
             const uint64_t *kword)
{
    size_t off = 1, count;
    uint8_t c = p[0];
    if ((c & 0xf0) == 0x80)
        count = c & 0x0f;
    else if (c == 0xde && len >= 3)
        count = (size_t)p[1] << 8 | p[2], off = 3;
    else
        return false;
    if (count > 4096)
        return false;
    for (size_t e = 0; e < count; e++) {
        if (off >= len)
            return false;
        size_t n;
        c = p[off++];
        if ((c & 0xe0) == 0xa0) {
            n = c & 0x1f;
        } else if (c == 0xd9 || c == 0xc4) {
            if (off >= len)
                return false;
            n = p[off++];
        } else {
            return false;
        }
        if (n > len - off)
            return false;
        const uint8_t *key = p + off;
        long want = -1;
        if (MP_LITTLE_ENDIAN && n <= 8 && len - off >= 8) { // a short key: one 64-bit word
            uint64_t wd, mask = n == 8 ? ~(uint64_t)0 : ((uint64_t)1 << (8 * n)) - 1;
            memcpy(&wd, key, 8);
            uint64_t z = wd | ~mask; // a NUL in the key's bytes (the rest set to 0xff)
            if (((z - 0x0101010101010101u) & ~z & 0x8080808080808080u) != 0)
                return false;
            wd &= mask;
            for (size_t k = 0; k < cap->nkeys; k++)
                if (klen[k] == n && kword[k] == wd) {
                    want = (long)k;
                    break;
                }
        } else {
            if (memchr(key, 0, n) != NULL)
                return false;
            for (size_t k = 0; k < cap->nkeys; k++)
                if (klen[k] == n && memcmp(cap->keys[k], key, n) == 0) {
                    want = (long)k;
                    break;
                }
        }
        off += n;
        if (off >= len)
            return false;
        c = p[off++];
        mcl_type t = MCL_TYPE_NIL;
        size_t w = 0, sl = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            w = 0;
        } else if ((c & 0xe0) == 0xa0) {
            t = MCL_TYPE_STR;
            sl = c & 0x1f;
        } else if (c == 0xd9 || c == 0xc4) {
            if (off >= len)
                return false;
            t = c == 0xd9 ? MCL_TYPE_STR : MCL_TYPE_BIN;
            sl = p[off++];
        } else {
            switch (c) {
            case 0xca: case 0xce: case 0xd2: w = 4; break;
            case 0xcb: case 0xcf: case 0xd3: w = 8; break;
            case 0xcc: case 0xd0: w = 1; break;
            case 0xcd: case 0xd1: w = 2; break;
            default: return false; // containers, long strings, extension types, 0xc1
            }
        }
        size_t take = w + sl;
        if (take > len - off)
            return false;
        if (want >= 0) {
            if (cap->out[want].type != MCL_TYPE_ANY)
                return false; // repeated: mp_scan() refuses it
            mp_capture_value(&cap->out[want], c, t, p + off, sl);
        }
        off += take;
    }
    return off == len;
}
// clang-format on

mcl_err
mcl_value_scan_map(const void *buf, size_t len, const char *const *keys, size_t nkeys,
                   mcl_scalar *out)
{
    if ((buf == NULL && len > 0) || (nkeys > 0 && (keys == NULL || out == NULL)))
        return MCL_EINVAL;
    for (size_t k = 0; k < nkeys; k++)
        out[k] = (mcl_scalar){.type = MCL_TYPE_ANY};
    if (len == 0)
        return MCL_EDECODE;
    mcl__dcost cost;
    char why[160];
    mp_capture cap = {keys, nkeys, out};
    const uint8_t c = *(const uint8_t *)buf;
    bool map = (c & 0xf0) == 0x80 || c == 0xde || c == 0xdf;
    size_t klen[16];
    uint64_t kword[16]; // a key of at most 8 bytes as a word, zero-padded (else its first 8)
    if (map && nkeys <= 16) {
        bool named = true;
        for (size_t k = 0; k < nkeys && named; k++) {
            if (keys[k] == NULL) {
                named = false;
                break;
            }
            klen[k] = strlen(keys[k]);
            kword[k] = 0;
            memcpy(&kword[k], keys[k], klen[k] < 8 ? klen[k] : 8);
        }
        if (named && mp_scan_flat(buf, len, &cap, klen, kword))
            return MCL_OK;
        for (size_t k = 0; k < nkeys; k++)
            out[k] = (mcl_scalar){.type = MCL_TYPE_ANY};
    }
    mcl_err rv = mp_scan(buf, len, &cost, why, sizeof(why), map ? &cap : NULL);
    if (rv == MCL_OK && !map)
        rv = MCL_ENOTMAP;
    if (rv != MCL_OK)
        for (size_t k = 0; k < nkeys; k++)
            out[k] = (mcl_scalar){.type = MCL_TYPE_ANY};
    return rv;
}

mcl_err
mcl_msg_decode(mcl_msg **mp, const void *buf, size_t len, const mcl_msgtype *t, char *errbuf,
               size_t errlen)
{
    if (mp != NULL)
        *mp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (mp == NULL || (buf == NULL && len > 0))
        return MCL_EINVAL;
    mcl_value *root = NULL;
    char why[160];
    mcl_err rv = mcl__msgpack_decode(buf, len, &root, why, sizeof(why));
    if (rv == MCL_EDECODE)
        return decode_fail(errbuf, errlen, "message", len, why);
    if (rv != MCL_OK)
        return rv;
    if (root->type != MCL_TYPE_MAP) {
        rv = mcl__fail(MCL_ENOTMAP, errbuf, errlen, "message",
                       "the payload is a msgpack %s, not a map", mcl_type_name(root->type));
        mcl__val_free(root);
        return rv;
    }
    if (t != NULL && (rv = check_mandatory(root, t, errbuf, errlen)) != MCL_OK) {
        mcl__val_free(root);
        return rv;
    }
    if ((*mp = mcl__msg_wrap(root)) == NULL)
        return MCL_ENOMEM;
    return MCL_OK;
}
