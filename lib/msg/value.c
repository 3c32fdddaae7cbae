// SPDX-License-Identifier: BSD-3-Clause
#include "value_int.h"

#include "../core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
mcl_type_name(mcl_type t)
{
    switch (t) {
    case MCL_TYPE_ANY:
        return "any";
    case MCL_TYPE_NIL:
        return "nil";
    case MCL_TYPE_BOOL:
        return "bool";
    case MCL_TYPE_INT:
        return "int";
    case MCL_TYPE_FLOAT:
        return "float";
    case MCL_TYPE_STR:
        return "str";
    case MCL_TYPE_BIN:
        return "bin";
    case MCL_TYPE_ARRAY:
        return "array";
    case MCL_TYPE_MAP:
        return "map";
    case MCL_TYPE_NDARRAY:
        return "ndarray";
    }
    return "?";
}

// --- typed arrays ----------------------------------------------------------------------------

static const struct {
    const char *name;
    uint8_t size;
} dtypes[] = {
    [MCL_DTYPE_INT8] = {"int8", 1},       [MCL_DTYPE_INT16] = {"int16", 2},
    [MCL_DTYPE_INT32] = {"int32", 4},     [MCL_DTYPE_INT64] = {"int64", 8},
    [MCL_DTYPE_UINT8] = {"uint8", 1},     [MCL_DTYPE_UINT16] = {"uint16", 2},
    [MCL_DTYPE_UINT32] = {"uint32", 4},   [MCL_DTYPE_UINT64] = {"uint64", 8},
    [MCL_DTYPE_FLOAT32] = {"float32", 4}, [MCL_DTYPE_FLOAT64] = {"float64", 8},
    [MCL_DTYPE_BOOL] = {"bool", 1},
};
enum { NDTYPES = sizeof(dtypes) / sizeof(dtypes[0]) };

const char *
mcl_dtype_name(mcl_dtype t)
{
    return (unsigned)t < NDTYPES && dtypes[t].name != NULL ? dtypes[t].name : "?";
}

size_t
mcl_dtype_size(mcl_dtype t)
{
    return (unsigned)t < NDTYPES ? dtypes[t].size : 0;
}

mcl_err
mcl_dtype_from_name(const char *name, mcl_dtype *out)
{
    if (out != NULL)
        *out = (mcl_dtype)0;
    if (name == NULL || out == NULL)
        return MCL_EINVAL;
    for (unsigned t = 1; t < NDTYPES; t++)
        if (strcmp(name, dtypes[t].name) == 0) {
            *out = (mcl_dtype)t;
            return MCL_OK;
        }
    return MCL_ENOENT;
}

mcl_err
mcl__nd_nbytes(unsigned dtype, size_t ndim, const uint64_t *shape, size_t *nbytes)
{
    *nbytes = 0;
    size_t es = mcl_dtype_size((mcl_dtype)dtype);
    if (es == 0 || ndim > MCL_NDARRAY_MAX_NDIM || (ndim > 0 && shape == NULL))
        return MCL_EINVAL;
    // Every dim is bounded, and the running product stops before it could pass the bound, so
    // nothing overflows whatever the dims (a zero dim anywhere makes the array empty).
    uint64_t n = 1;
    for (size_t k = 0; k < ndim; k++) {
        if (shape[k] > MCL_NDARRAY_MAX_BYTES)
            return MCL_ERANGE;
        if (shape[k] != 0 && n > MCL_NDARRAY_MAX_BYTES / shape[k])
            return MCL_ERANGE;
        n *= shape[k];
    }
    if (n > MCL_NDARRAY_MAX_BYTES / es)
        return MCL_ERANGE;
    *nbytes = (size_t)(n * es);
    return MCL_OK;
}

mcl_value *
mcl__val_nd(unsigned dtype, size_t ndim, const uint64_t *shape, size_t nbytes)
{
    mcl_value *v = mcl__val_new(MCL_TYPE_NDARRAY);
    if (v == NULL)
        return NULL;
    size_t bl = mcl__nd_off(ndim) + nbytes;
    if ((v->nd.blk = mcl__alloc(bl > 0 ? bl : 1)) == NULL) {
        mcl__free(v);
        return NULL;
    }
    v->nd.dtype = (uint8_t)dtype;
    v->nd.ndim = (uint8_t)ndim;
    v->nd.nbytes = nbytes;
    for (size_t k = 0; k < ndim; k++)
        v->nd.blk[k] = shape[k];
    return v;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ND_BIG_ENDIAN 1
#else
#define ND_BIG_ENDIAN 0
#endif

void
mcl__nd_copy_le(void *dst, const void *src, size_t nbytes, size_t esize)
{
    if (nbytes == 0)
        return;
    if (!ND_BIG_ENDIAN || esize == 1) {
        memcpy(dst, src, nbytes);
        return;
    }
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (size_t i = 0; i < nbytes; i += esize)
        for (size_t b = 0; b < esize; b++)
            d[i + b] = s[i + esize - 1 - b];
}

static uint64_t
get_le64(const uint8_t *p)
{
    uint64_t x = 0;
    for (int i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

bool
mcl__nd_parse(const uint8_t *p, size_t len, mcl__ndhdr *h)
{
    if (len < MCL__ND_HDR || p[0] != MCL__ND_VERSION)
        return false;
    for (size_t i = 3; i < MCL__ND_HDR; i++)
        if (p[i] != 0)
            return false; // reserved
    h->dtype = p[1];
    h->ndim = p[2];
    if (mcl_dtype_size((mcl_dtype)h->dtype) == 0 || h->ndim > MCL_NDARRAY_MAX_NDIM ||
        (len - MCL__ND_HDR) / 8 < h->ndim)
        return false;
    for (size_t k = 0; k < h->ndim; k++)
        h->shape[k] = get_le64(p + MCL__ND_HDR + 8 * k);
    if (mcl__nd_nbytes(h->dtype, h->ndim, h->shape, &h->nbytes) != MCL_OK)
        return false;
    size_t off = MCL__ND_HDR + 8 * (size_t)h->ndim;
    if (len - off != h->nbytes)
        return false; // the data is exactly what the shape says
    h->data = p + off;
    return true;
}

size_t
mcl__nd_ext_len(const mcl_value *v)
{
    return MCL__ND_HDR + 8 * (size_t)v->nd.ndim + v->nd.nbytes;
}

size_t
mcl__nd_write_hdr(const mcl_value *v, uint8_t *out)
{
    memset(out, 0, MCL__ND_HDR);
    out[0] = MCL__ND_VERSION;
    out[1] = v->nd.dtype;
    out[2] = v->nd.ndim;
    size_t o = MCL__ND_HDR;
    for (size_t k = 0; k < v->nd.ndim; k++)
        for (int b = 0; b < 8; b++)
            out[o++] = (uint8_t)(v->nd.blk[k] >> (8 * b));
    return o;
}

mcl_value *
mcl__val_new(mcl_type type)
{
    mcl_value *v = mcl__zalloc(sizeof(*v));
    if (v != NULL)
        v->type = type;
    return v;
}

mcl_value *
mcl__val_str(const char *s, size_t n, mcl_type type)
{
    mcl_value *v = mcl__val_new(type);
    if (v == NULL)
        return NULL;
    v->s.p = mcl__alloc(n + 1);
    if (v->s.p == NULL) {
        mcl__free(v);
        return NULL;
    }
    if (n > 0)
        memcpy(v->s.p, s, n);
    v->s.p[n] = '\0';
    v->s.n = n;
    return v;
}

void
mcl__val_free(mcl_value *v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case MCL_TYPE_STR:
    case MCL_TYPE_BIN:
        mcl__free(v->s.p);
        break;
    case MCL_TYPE_ARRAY:
        for (size_t i = 0; i < v->a.n; i++)
            mcl__val_free(v->a.v[i]);
        mcl__free(v->a.v);
        break;
    case MCL_TYPE_MAP:
        for (size_t i = 0; i < v->m.n; i++) {
            mcl__free(v->m.kv[i].key);
            mcl__val_free(v->m.kv[i].val);
        }
        mcl__free(v->m.kv);
        break;
    case MCL_TYPE_NDARRAY:
        mcl__free(v->nd.blk);
        break;
    default:
        break;
    }
    mcl__free(v);
}

mcl_value *
mcl__val_copy(const mcl_value *v)
{
    if (v == NULL)
        return NULL;
    mcl_value *c;
    switch (v->type) {
    case MCL_TYPE_STR:
    case MCL_TYPE_BIN:
        return mcl__val_str(v->s.p, v->s.n, v->type);
    case MCL_TYPE_ARRAY:
        if ((c = mcl__val_new(MCL_TYPE_ARRAY)) == NULL)
            return NULL;
        for (size_t i = 0; i < v->a.n; i++) {
            mcl_value *item = mcl__val_copy(v->a.v[i]);
            if (item == NULL || mcl__val_push(c, item) != MCL_OK) {
                mcl__val_free(c);
                return NULL;
            }
        }
        return c;
    case MCL_TYPE_MAP:
        if ((c = mcl__val_new(MCL_TYPE_MAP)) == NULL)
            return NULL;
        for (size_t i = 0; i < v->m.n; i++) {
            mcl_value *item = mcl__val_copy(v->m.kv[i].val);
            if (item == NULL ||
                mcl__val_put(c, v->m.kv[i].key, v->m.kv[i].klen, item) != MCL_OK) {
                mcl__val_free(c);
                return NULL;
            }
        }
        return c;
    case MCL_TYPE_NDARRAY:
        if ((c = mcl__val_nd(v->nd.dtype, v->nd.ndim, v->nd.blk, v->nd.nbytes)) != NULL &&
            v->nd.nbytes > 0)
            memcpy(mcl__nd_data(c), mcl__nd_data(v), v->nd.nbytes);
        return c;
    default:
        if ((c = mcl__val_new(v->type)) != NULL) {
            *c = *v;
            c->root = false;
        }
        return c;
    }
}

mcl_err
mcl__val_push(mcl_value *arr, mcl_value *child)
{
    if (arr == NULL || arr->type != MCL_TYPE_ARRAY || child == NULL) {
        mcl__val_free(child);
        return arr == NULL || arr->type != MCL_TYPE_ARRAY ? MCL_EINVAL : MCL_ENOMEM;
    }
    if (arr->a.n == arr->a.cap) {
        size_t nc = arr->a.cap ? arr->a.cap * 2 : 4;
        mcl_value **nv = mcl__realloc(arr->a.v, nc * sizeof(*nv));
        if (nv == NULL) {
            mcl__val_free(child);
            return MCL_ENOMEM;
        }
        arr->a.v = nv;
        arr->a.cap = nc;
    }
    arr->a.v[arr->a.n++] = child;
    return MCL_OK;
}

mcl_value *
mcl__val_findn(const mcl_value *map, const char *key, size_t klen)
{
    if (map == NULL || map->type != MCL_TYPE_MAP || key == NULL)
        return NULL;
    for (size_t i = 0; i < map->m.n; i++)
        if (map->m.kv[i].klen == klen && memcmp(map->m.kv[i].key, key, klen) == 0)
            return map->m.kv[i].val;
    return NULL;
}

static mcl_err
map_append(mcl_value *map, const char *key, size_t klen, mcl_value *child)
{
    if (map->m.n == map->m.cap) {
        size_t nc = map->m.cap ? map->m.cap * 2 : 8;
        mcl__kv *nk = mcl__realloc(map->m.kv, nc * sizeof(*nk));
        if (nk == NULL) {
            mcl__val_free(child);
            return MCL_ENOMEM;
        }
        map->m.kv = nk;
        map->m.cap = nc;
    }
    char *k = mcl__alloc(klen + 1);
    if (k == NULL) {
        mcl__val_free(child);
        return MCL_ENOMEM;
    }
    if (klen > 0)
        memcpy(k, key, klen);
    k[klen] = '\0';
    map->m.kv[map->m.n++] = (mcl__kv){k, klen, child};
    return MCL_OK;
}

mcl_err
mcl__val_append(mcl_value *map, const char *key, size_t klen, mcl_value *child)
{
    if (map == NULL || map->type != MCL_TYPE_MAP || key == NULL) {
        mcl__val_free(child);
        return MCL_EINVAL;
    }
    if (child == NULL)
        return MCL_ENOMEM;
    return map_append(map, key, klen, child);
}

static int
kv_cmp(const void *a, const void *b)
{
    const mcl__kv *x = *(const mcl__kv *const *)a, *y = *(const mcl__kv *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

bool
mcl__val_has_dup_keys(const mcl_value *map)
{
    size_t n = map->m.n;
    if (n < 2)
        return false;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (kv_cmp(&(const mcl__kv *){&map->m.kv[i]}, &(const mcl__kv *){&map->m.kv[j]}) == 0)
                    return true;
        return false;
    }
    const mcl__kv **v = mcl__alloc(n * sizeof(*v));
    if (v == NULL)
        return true; // cannot tell: refuse rather than accept
    for (size_t i = 0; i < n; i++)
        v[i] = &map->m.kv[i];
    qsort(v, n, sizeof(*v), kv_cmp);
    bool dup = false;
    for (size_t i = 1; i < n && !dup; i++)
        dup = kv_cmp(&v[i - 1], &v[i]) == 0;
    mcl__free(v);
    return dup;
}

mcl_err
mcl__val_put(mcl_value *map, const char *key, size_t klen, mcl_value *child)
{
    if (map == NULL || map->type != MCL_TYPE_MAP || key == NULL) {
        mcl__val_free(child);
        return MCL_EINVAL;
    }
    if (child == NULL)
        return MCL_ENOMEM;
    for (size_t i = 0; i < map->m.n; i++)
        if (map->m.kv[i].klen == klen && memcmp(map->m.kv[i].key, key, klen) == 0) {
            mcl__val_free(map->m.kv[i].val);
            map->m.kv[i].val = child;
            return MCL_OK;
        }
    return map_append(map, key, klen, child);
}

bool
mcl__val_remove(mcl_value *map, const char *key)
{
    if (map == NULL || map->type != MCL_TYPE_MAP || key == NULL)
        return false;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->m.n; i++)
        if (map->m.kv[i].klen == klen && memcmp(map->m.kv[i].key, key, klen) == 0) {
            mcl__free(map->m.kv[i].key);
            mcl__val_free(map->m.kv[i].val);
            memmove(&map->m.kv[i], &map->m.kv[i + 1], (map->m.n - i - 1) * sizeof(mcl__kv));
            map->m.n--;
            return true;
        }
    return false;
}

// --- reads -----------------------------------------------------------------------------------

mcl_type
mcl_value_type(const mcl_value *v)
{
    return v ? v->type : MCL_TYPE_NIL;
}

mcl_err
mcl_value_get_bool(const mcl_value *v, bool *out)
{
    if (v == NULL || out == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_BOOL)
        return MCL_ETYPE;
    *out = v->b;
    return MCL_OK;
}

mcl_err
mcl_value_get_int(const mcl_value *v, int64_t *out)
{
    if (v == NULL || out == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_INT)
        return MCL_ETYPE;
    if (v->is_u) {
        if (v->u > (uint64_t)INT64_MAX)
            return MCL_ERANGE;
        *out = (int64_t)v->u;
    } else {
        *out = v->i;
    }
    return MCL_OK;
}

mcl_err
mcl_value_get_uint(const mcl_value *v, uint64_t *out)
{
    if (v == NULL || out == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_INT)
        return MCL_ETYPE;
    if (v->is_u) {
        *out = v->u;
    } else {
        if (v->i < 0)
            return MCL_ERANGE;
        *out = (uint64_t)v->i;
    }
    return MCL_OK;
}

mcl_err
mcl_value_get_double(const mcl_value *v, double *out)
{
    if (v == NULL || out == NULL)
        return MCL_EINVAL;
    if (v->type == MCL_TYPE_FLOAT)
        *out = v->d;
    else if (v->type == MCL_TYPE_INT)
        *out = v->is_u ? (double)v->u : (double)v->i;
    else
        return MCL_ETYPE;
    return MCL_OK;
}

mcl_err
mcl_value_get_str(const mcl_value *v, const char **s, size_t *len)
{
    if (v == NULL || s == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_STR)
        return MCL_ETYPE;
    *s = v->s.p;
    if (len != NULL)
        *len = v->s.n;
    return MCL_OK;
}

mcl_err
mcl_value_get_bin(const mcl_value *v, const void **data, size_t *len)
{
    if (v == NULL || data == NULL || len == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_BIN)
        return MCL_ETYPE;
    *data = v->s.p;
    *len = v->s.n;
    return MCL_OK;
}

bool
mcl_value_is_big_uint(const mcl_value *v)
{
    return v != NULL && v->type == MCL_TYPE_INT && v->is_u && v->u > (uint64_t)INT64_MAX;
}

size_t
mcl_value_count(const mcl_value *v)
{
    if (v == NULL)
        return 0;
    return v->type == MCL_TYPE_ARRAY ? v->a.n : v->type == MCL_TYPE_MAP ? v->m.n : 0;
}

const mcl_value *
mcl_value_item(const mcl_value *v, size_t i)
{
    if (v == NULL || v->type != MCL_TYPE_ARRAY || i >= v->a.n)
        return NULL;
    return v->a.v[i];
}

const mcl_value *
mcl_value_entry(const mcl_value *v, size_t i, const char **key)
{
    if (v == NULL || v->type != MCL_TYPE_MAP || i >= v->m.n)
        return NULL;
    if (key != NULL)
        *key = v->m.kv[i].key;
    return v->m.kv[i].val;
}

const mcl_value *
mcl_value_find(const mcl_value *v, const char *key)
{
    return key ? mcl__val_findn(v, key, strlen(key)) : NULL;
}

static bool
int_equal(const mcl_value *a, const mcl_value *b)
{
    if (a->is_u == b->is_u)
        return a->is_u ? a->u == b->u : a->i == b->i;
    const mcl_value *u = a->is_u ? a : b, *s = a->is_u ? b : a;
    return s->i >= 0 && (uint64_t)s->i == u->u;
}

bool
mcl_value_equal(const mcl_value *a, const mcl_value *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MCL_TYPE_NIL:
    case MCL_TYPE_ANY:
        return true;
    case MCL_TYPE_BOOL:
        return a->b == b->b;
    case MCL_TYPE_INT:
        return int_equal(a, b);
    case MCL_TYPE_FLOAT:
        return a->d == b->d || (isnan(a->d) && isnan(b->d));
    case MCL_TYPE_STR:
    case MCL_TYPE_BIN:
        return a->s.n == b->s.n && memcmp(a->s.p, b->s.p, a->s.n) == 0;
    case MCL_TYPE_ARRAY:
        if (a->a.n != b->a.n)
            return false;
        for (size_t i = 0; i < a->a.n; i++)
            if (!mcl_value_equal(a->a.v[i], b->a.v[i]))
                return false;
        return true;
    case MCL_TYPE_MAP:
        if (a->m.n != b->m.n)
            return false;
        for (size_t i = 0; i < a->m.n; i++) {
            const mcl_value *o = mcl__val_findn(b, a->m.kv[i].key, a->m.kv[i].klen);
            if (o == NULL || !mcl_value_equal(a->m.kv[i].val, o))
                return false;
        }
        return true;
    case MCL_TYPE_NDARRAY:
        return a->nd.dtype == b->nd.dtype && a->nd.ndim == b->nd.ndim &&
               a->nd.nbytes == b->nd.nbytes &&
               memcmp(a->nd.blk, b->nd.blk, a->nd.ndim * sizeof(uint64_t)) == 0 &&
               (a->nd.nbytes == 0 || memcmp(mcl__nd_data(a), mcl__nd_data(b), a->nd.nbytes) == 0);
    }
    return false;
}

// --- building --------------------------------------------------------------------------------

static mcl_value *
scalar(mcl_type t)
{
    return mcl__val_new(t);
}

static mcl_value *
v_bool(bool b)
{
    mcl_value *v = scalar(MCL_TYPE_BOOL);
    if (v)
        v->b = b;
    return v;
}
static mcl_value *
v_int(int64_t i)
{
    mcl_value *v = scalar(MCL_TYPE_INT);
    if (v)
        v->i = i;
    return v;
}
static mcl_value *
v_uint(uint64_t u)
{
    mcl_value *v = scalar(MCL_TYPE_INT);
    if (v) {
        v->is_u = true;
        v->u = u;
    }
    return v;
}
static mcl_value *
v_double(double d)
{
    mcl_value *v = scalar(MCL_TYPE_FLOAT);
    if (v)
        v->d = d;
    return v;
}

static bool
is_array(const mcl_value *v)
{
    return v != NULL && v->type == MCL_TYPE_ARRAY;
}
static bool
is_map(const mcl_value *v)
{
    return v != NULL && v->type == MCL_TYPE_MAP;
}

#define PUSH(arr, make)                                                                            \
    do {                                                                                           \
        if (!is_array(arr))                                                                        \
            return MCL_EINVAL;                                                                     \
        return mcl__val_push(arr, make);                                                           \
    } while (0)

mcl_err
mcl_value_push_nil(mcl_value *arr)
{
    PUSH(arr, scalar(MCL_TYPE_NIL));
}
mcl_err
mcl_value_push_bool(mcl_value *arr, bool b)
{
    PUSH(arr, v_bool(b));
}
mcl_err
mcl_value_push_int(mcl_value *arr, int64_t i)
{
    PUSH(arr, v_int(i));
}
mcl_err
mcl_value_push_uint(mcl_value *arr, uint64_t u)
{
    PUSH(arr, v_uint(u));
}
mcl_err
mcl_value_push_double(mcl_value *arr, double d)
{
    PUSH(arr, v_double(d));
}
mcl_err
mcl_value_push_str(mcl_value *arr, const char *s)
{
    if (s == NULL)
        return MCL_EINVAL;
    PUSH(arr, mcl__val_str(s, strlen(s), MCL_TYPE_STR));
}
mcl_err
mcl_value_push_strn(mcl_value *arr, const char *s, size_t len)
{
    if (s == NULL && len > 0)
        return MCL_EINVAL;
    PUSH(arr, mcl__val_str(s, len, MCL_TYPE_STR));
}
mcl_err
mcl_value_push_bin(mcl_value *arr, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return MCL_EINVAL;
    PUSH(arr, mcl__val_str(data, len, MCL_TYPE_BIN));
}

static mcl_err
push_container(mcl_value *arr, mcl_type t, mcl_value **child)
{
    if (child != NULL)
        *child = NULL;
    if (!is_array(arr) || child == NULL)
        return MCL_EINVAL;
    mcl_value *c = mcl__val_new(t);
    mcl_err rv = mcl__val_push(arr, c);
    if (rv == MCL_OK)
        *child = c;
    return rv;
}
mcl_err
mcl_value_push_array(mcl_value *arr, mcl_value **child)
{
    return push_container(arr, MCL_TYPE_ARRAY, child);
}
mcl_err
mcl_value_push_map(mcl_value *arr, mcl_value **child)
{
    return push_container(arr, MCL_TYPE_MAP, child);
}

#define PUT(map, key, make)                                                                        \
    do {                                                                                           \
        if (!is_map(map) || (key) == NULL)                                                         \
            return MCL_EINVAL;                                                                     \
        return mcl__val_put(map, key, strlen(key), make);                                          \
    } while (0)

mcl_err
mcl_value_put_nil(mcl_value *map, const char *key)
{
    PUT(map, key, scalar(MCL_TYPE_NIL));
}
mcl_err
mcl_value_put_bool(mcl_value *map, const char *key, bool b)
{
    PUT(map, key, v_bool(b));
}
mcl_err
mcl_value_put_int(mcl_value *map, const char *key, int64_t i)
{
    PUT(map, key, v_int(i));
}
mcl_err
mcl_value_put_uint(mcl_value *map, const char *key, uint64_t u)
{
    PUT(map, key, v_uint(u));
}
mcl_err
mcl_value_put_double(mcl_value *map, const char *key, double d)
{
    PUT(map, key, v_double(d));
}
mcl_err
mcl_value_put_str(mcl_value *map, const char *key, const char *s)
{
    if (s == NULL)
        return MCL_EINVAL;
    PUT(map, key, mcl__val_str(s, strlen(s), MCL_TYPE_STR));
}
mcl_err
mcl_value_put_strn(mcl_value *map, const char *key, const char *s, size_t len)
{
    if (s == NULL && len > 0)
        return MCL_EINVAL;
    PUT(map, key, mcl__val_str(s, len, MCL_TYPE_STR));
}
mcl_err
mcl_value_put_bin(mcl_value *map, const char *key, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return MCL_EINVAL;
    PUT(map, key, mcl__val_str(data, len, MCL_TYPE_BIN));
}
mcl_err
mcl_value_put_copy(mcl_value *map, const char *key, const mcl_value *v)
{
    if (v == NULL)
        return MCL_EINVAL;
    PUT(map, key, mcl__val_copy(v));
}

mcl_err
mcl_value_push_copy(mcl_value *arr, const mcl_value *v)
{
    if (v == NULL)
        return MCL_EINVAL;
    PUSH(arr, mcl__val_copy(v));
}

mcl_err
mcl_value_new(mcl_value **vp, mcl_type type)
{
    if (vp != NULL)
        *vp = NULL;
    if (vp == NULL || type <= MCL_TYPE_ANY || type > MCL_TYPE_NDARRAY)
        return MCL_EINVAL;
    mcl_value *v = type == MCL_TYPE_STR || type == MCL_TYPE_BIN ? mcl__val_str("", 0, type)
                   : type == MCL_TYPE_NDARRAY ? mcl__val_nd(MCL_DTYPE_UINT8, 1, &(uint64_t){0}, 0)
                                              : mcl__val_new(type);
    if (v == NULL)
        return MCL_ENOMEM;
    v->root = true;
    *vp = v;
    return MCL_OK;
}

mcl_err
mcl_value_dup(mcl_value **copyp, const mcl_value *v)
{
    if (copyp != NULL)
        *copyp = NULL;
    if (copyp == NULL || v == NULL)
        return MCL_EINVAL;
    if ((*copyp = mcl__val_copy(v)) == NULL)
        return MCL_ENOMEM;
    (*copyp)->root = true;
    return MCL_OK;
}

void
mcl_value_free(mcl_value *v)
{
    if (v != NULL && v->root)
        mcl__val_free(v);
}

static mcl_err
put_container(mcl_value *map, const char *key, mcl_type t, mcl_value **child)
{
    if (child != NULL)
        *child = NULL;
    if (!is_map(map) || key == NULL || child == NULL)
        return MCL_EINVAL;
    mcl_value *c = mcl__val_new(t);
    mcl_err rv = mcl__val_put(map, key, strlen(key), c);
    if (rv == MCL_OK)
        *child = c;
    return rv;
}
mcl_err
mcl_value_put_array(mcl_value *map, const char *key, mcl_value **child)
{
    return put_container(map, key, MCL_TYPE_ARRAY, child);
}
mcl_err
mcl_value_put_map(mcl_value *map, const char *key, mcl_value **child)
{
    return put_container(map, key, MCL_TYPE_MAP, child);
}

// --- the decoding budget ---------------------------------------------------------------------

uint64_t
mcl__val_cost(mcl_type type, uint64_t n)
{
    uint64_t c = mcl__alloc_cost(sizeof(mcl_value));
    switch (type) {
    case MCL_TYPE_STR:
    case MCL_TYPE_BIN:
        return c + mcl__alloc_cost(n + 1);
    case MCL_TYPE_ARRAY:
        return n == 0 ? c : c + mcl__alloc_cost(n * sizeof(mcl_value *));
    case MCL_TYPE_MAP:
        if (n == 0)
            return c;
        c += mcl__alloc_cost(n * sizeof(mcl__kv));
        return n > 16 ? c + mcl__alloc_cost(n * sizeof(mcl__kv *)) : c; // mcl__val_has_dup_keys
    case MCL_TYPE_NDARRAY:
        return c + mcl__alloc_cost(n);
    default:
        return c;
    }
}

uint64_t
mcl__decode_budget(uint64_t len)
{
    if (len > (UINT64_MAX - MCL_DECODE_MEM_SLACK) / MCL_DECODE_MEM_FACTOR)
        return UINT64_MAX;
    return len * MCL_DECODE_MEM_FACTOR + MCL_DECODE_MEM_SLACK;
}

mcl_err
mcl__decode_check(const mcl__dcost *c, uint64_t len, char *why, size_t whylen)
{
    if (c->values > MCL_DECODE_MAX_VALUES) {
        snprintf(why, whylen, "more than %d values (MCL_DECODE_MAX_VALUES)",
                 MCL_DECODE_MAX_VALUES);
        return MCL_EDECODE;
    }
    if (c->bytes > mcl__decode_budget(len)) {
        snprintf(why, whylen,
                 "decoding would take more memory (%llu bytes so far) than its budget of %d x %llu "
                 "+ %d bytes (MCL_DECODE_MEM_FACTOR, MCL_DECODE_MEM_SLACK)",
                 (unsigned long long)c->bytes, MCL_DECODE_MEM_FACTOR, (unsigned long long)len,
                 MCL_DECODE_MEM_SLACK);
        return MCL_EDECODE;
    }
    return MCL_OK;
}

// The length of a msgpack header for a str (fix up to 31), bin (no fix form), array or map
// (fix up to 15) of n, as msgpack-c's packer writes it.
static uint64_t
mp_hdr(mcl_type t, uint64_t n)
{
    uint64_t fix = t == MCL_TYPE_STR ? 31 : t == MCL_TYPE_BIN ? 0 : 15;
    if (t == MCL_TYPE_BIN ? false : n <= fix)
        return 1;
    if ((t == MCL_TYPE_STR || t == MCL_TYPE_BIN) && n <= 0xff)
        return 2;
    return n <= 0xffff ? 3 : 5;
}

static uint64_t
mp_int_len(const mcl_value *v)
{
    if (v->is_u || v->i >= 0) {
        uint64_t u = v->is_u ? v->u : (uint64_t)v->i;
        return u < 128 ? 1 : u <= 0xff ? 2 : u <= 0xffff ? 3 : u <= 0xffffffffu ? 5 : 9;
    }
    int64_t i = v->i;
    return i >= -32 ? 1 : i >= -128 ? 2 : i >= -32768 ? 3 : i >= -2147483648LL ? 5 : 9;
}

static void
measure(const mcl_value *v, mcl__dcost *c, int depth)
{
    c->values++;
    if ((v->type == MCL_TYPE_ARRAY || v->type == MCL_TYPE_MAP) && depth >= MCL__MAX_NESTING)
        return; // the encoder refuses it anyway: do not recurse into what a caller built deeper
    switch (v->type) {
    case MCL_TYPE_INT:
        c->packed += mp_int_len(v);
        c->bytes += mcl__val_cost(v->type, 0);
        return;
    case MCL_TYPE_FLOAT:
        c->packed += 9; // msgpack-c packs every double as float64
        c->bytes += mcl__val_cost(v->type, 0);
        return;
    case MCL_TYPE_STR:
    case MCL_TYPE_BIN:
        c->packed += mp_hdr(v->type, v->s.n) + v->s.n;
        c->bytes += mcl__val_cost(v->type, v->s.n);
        return;
    case MCL_TYPE_ARRAY:
        c->packed += mp_hdr(v->type, v->a.n);
        c->bytes += mcl__val_cost(v->type, v->a.n);
        for (size_t i = 0; i < v->a.n; i++)
            measure(v->a.v[i], c, depth + 1);
        return;
    case MCL_TYPE_NDARRAY: {
        uint64_t pl = mcl__nd_ext_len(v);
        c->packed += mcl__mp_ext_hdr(pl) + pl;
        c->bytes += mcl__val_cost(v->type, mcl__nd_off(v->nd.ndim) + v->nd.nbytes);
        return;
    }
    case MCL_TYPE_MAP:
        c->packed += mp_hdr(v->type, v->m.n);
        c->bytes += mcl__val_cost(v->type, v->m.n);
        for (size_t i = 0; i < v->m.n; i++) {
            c->packed += mp_hdr(MCL_TYPE_STR, v->m.kv[i].klen) + v->m.kv[i].klen;
            c->bytes += mcl__alloc_cost(v->m.kv[i].klen + 1);
            measure(v->m.kv[i].val, c, depth + 1);
        }
        return;
    default: // nil, bool
        c->packed += 1;
        c->bytes += mcl__val_cost(v->type, 0);
        return;
    }
}

void
mcl__val_measure(const mcl_value *v, mcl__dcost *c)
{
    *c = (mcl__dcost){0, 0, 0};
    if (v != NULL)
        measure(v, c, 0);
}

// --- typed arrays: building and reading --------------------------------------------------------

// A new typed array for the put/push functions: checked, with data copied when given.
static mcl_err
nd_make(mcl_dtype dtype, size_t ndim, const uint64_t *shape, const void *data, bool copy,
        mcl_value **out)
{
    size_t nbytes;
    *out = NULL;
    mcl_err rv = mcl__nd_nbytes((unsigned)dtype, ndim, shape, &nbytes);
    if (rv != MCL_OK)
        return rv;
    if (copy && data == NULL && nbytes > 0)
        return MCL_EINVAL;
    if ((*out = mcl__val_nd((unsigned)dtype, ndim, shape, nbytes)) == NULL)
        return MCL_ENOMEM;
    if (copy && nbytes > 0)
        memcpy(mcl__nd_data(*out), data, nbytes);
    return MCL_OK;
}

static mcl_err
nd_add(mcl_value *c, const char *key, mcl_dtype dtype, size_t ndim, const uint64_t *shape,
       const void *src, void **dst)
{
    if (dst != NULL)
        *dst = NULL;
    if (key != NULL ? !is_map(c) : !is_array(c))
        return MCL_EINVAL;
    mcl_value *v;
    mcl_err rv = nd_make(dtype, ndim, shape, src, dst == NULL, &v);
    if (rv != MCL_OK)
        return rv;
    void *data = v->nd.nbytes > 0 ? mcl__nd_data(v) : NULL;
    rv = key != NULL ? mcl__val_put(c, key, strlen(key), v) : mcl__val_push(c, v);
    if (rv == MCL_OK && dst != NULL)
        *dst = data;
    return rv;
}

mcl_err
mcl_value_put_ndarray(mcl_value *map, const char *key, mcl_dtype dtype, size_t ndim,
                      const uint64_t *shape, const void *data)
{
    if (key == NULL)
        return MCL_EINVAL;
    return nd_add(map, key, dtype, ndim, shape, data, NULL);
}

mcl_err
mcl_value_push_ndarray(mcl_value *arr, mcl_dtype dtype, size_t ndim, const uint64_t *shape,
                       const void *data)
{
    return nd_add(arr, NULL, dtype, ndim, shape, data, NULL);
}

mcl_err
mcl_value_put_ndarray_uninit(mcl_value *map, const char *key, mcl_dtype dtype, size_t ndim,
                             const uint64_t *shape, void **data)
{
    if (data != NULL)
        *data = NULL;
    if (key == NULL || data == NULL)
        return MCL_EINVAL;
    return nd_add(map, key, dtype, ndim, shape, NULL, data);
}

mcl_err
mcl_value_push_ndarray_uninit(mcl_value *arr, mcl_dtype dtype, size_t ndim, const uint64_t *shape,
                              void **data)
{
    if (data != NULL)
        *data = NULL;
    if (data == NULL)
        return MCL_EINVAL;
    return nd_add(arr, NULL, dtype, ndim, shape, NULL, data);
}

mcl_err
mcl_value_get_ndarray(const mcl_value *v, mcl_dtype *dtype, size_t *ndim, const uint64_t **shape,
                      const void **data, size_t *nbytes)
{
    if (dtype != NULL)
        *dtype = (mcl_dtype)0;
    if (ndim != NULL)
        *ndim = 0;
    if (shape != NULL)
        *shape = NULL;
    if (data != NULL)
        *data = NULL;
    if (nbytes != NULL)
        *nbytes = 0;
    if (v == NULL)
        return MCL_EINVAL;
    if (v->type != MCL_TYPE_NDARRAY)
        return MCL_ETYPE;
    if (dtype != NULL)
        *dtype = (mcl_dtype)v->nd.dtype;
    if (ndim != NULL)
        *ndim = v->nd.ndim;
    if (shape != NULL)
        *shape = v->nd.blk;
    if (data != NULL)
        *data = v->nd.nbytes > 0 ? mcl__nd_data(v) : NULL;
    if (nbytes != NULL)
        *nbytes = v->nd.nbytes;
    return MCL_OK;
}
