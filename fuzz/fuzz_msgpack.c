// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the msgpack decoder of lib/msg (mcl__msgpack_to_value, under mcl_msg_decode,
// mcl_value_decode and every RPC call), against msgpack-c's own unpacker as the reference.
// The input is one msgpack object from a stranger. The two must agree: whatever msgpack-c reads
// in full that is a valid mcl value (no extension types but valid typed arrays, checked here on
// their own from docs/wire-format.md; map keys that are strings or binary without NUL and not
// repeated, containers nested at most 32 deep) is decoded, to the same
// value, when it is within the decoding bounds (at most MCL_DECODE_MAX_VALUES values, a tree
// costing at most 8 x the input + 1 MiB, counted here from msgpack-c's objects); anything else
// is refused; and what is decoded encodes to bytes that decode to it again, of the length the
// encoder's own measure (mcl__val_measure, which its budget check uses) predicts. Also
// mcl_value_scan_map(), the tree-less reader of a map's fields, against the decoder (check_scan).
#include "msg/msg_int.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
be16(const uint8_t *p)
{
    return (uint64_t)p[0] << 8 | p[1];
}

static uint64_t
be32(const uint8_t *p)
{
    return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
}

// Whether the bytes are one msgpack object whose lengths fit what remains, whose container
// counts are plausible (an element takes at least a byte) and whose nesting is bounded: what
// msgpack-c can be asked to read without reserving gigabytes for a 5-byte input.
// clang-format off
static bool
plausible(const uint8_t *p, size_t len)
{
    size_t off = 0;
    uint64_t pending[MCL__MAX_NESTING + 1]; // objects still to read at each depth
    int depth = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (off >= len)
            return false;
        uint8_t c = p[off++];
        uint64_t skip = 0, count = 0; // bytes to skip; elements of a new container
        size_t left = len - off;
#define NEED(n)                                                                                    \
    do {                                                                                           \
        if (left < (n))                                                                            \
            return false;                                                                          \
    } while (0)
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        } else if ((c & 0xf0) == 0x80) {
            count = 2 * (uint64_t)(c & 0x0f);
        } else if ((c & 0xf0) == 0x90) {
            count = c & 0x0f;
        } else if ((c & 0xe0) == 0xa0) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: NEED(1); skip = 1 + (uint64_t)p[off]; break;
            case 0xc5: case 0xda: NEED(2); skip = 2 + (uint64_t)be16(p + off); break;
            case 0xc6: case 0xdb: NEED(4); skip = 4 + (uint64_t)be32(p + off); break;
            case 0xc7: NEED(1); skip = 2 + (uint64_t)p[off]; break;
            case 0xc8: NEED(2); skip = 3 + (uint64_t)be16(p + off); break;
            case 0xc9: NEED(4); skip = 5 + (uint64_t)be32(p + off); break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: NEED(2); count = be16(p + off); skip = 2; break;
            case 0xdd: NEED(4); count = be32(p + off); skip = 4; break;
            case 0xde: NEED(2); count = 2 * (uint64_t)be16(p + off); skip = 2; break;
            case 0xdf: NEED(4); count = 2 * (uint64_t)be32(p + off); skip = 4; break;
            default: return false; // 0xc1 is never used
            }
        }
#undef NEED
        if (skip > left)
            return false;
        off += (size_t)skip;
        if (count > 0) {
            if (count > len - off || depth == MCL__MAX_NESTING)
                return false;
            pending[++depth] = count;
        }
    }
    return off == len;
}
// clang-format on

__extension__ typedef unsigned __int128 u128; // (gcc and clang)

// A typed array as docs/wire-format.md specifies it, checked here without lib/msg's code: ext
// type 110, version 1, dtype 1..11, ndim <= 8, five zero bytes, ndim LE uint64 dims each at
// most 2^30, data of exactly product x element size bytes (at most 2^30), the product taken
// in 128 bits and saturated. *block: what its value's block takes (mcl__val_cost's n).
static bool
nd_valid(const msgpack_object *o, uint64_t *block)
{
    static const unsigned esize[12] = {0, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 1};
    const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
    uint64_t n = o->via.ext.size;
    if (o->via.ext.type != 110 || n < 8 || p[0] != 1 || p[1] < 1 || p[1] > 11 || p[2] > 8)
        return false;
    for (int i = 3; i < 8; i++)
        if (p[i] != 0)
            return false;
    unsigned ndim = p[2];
    if (n < 8 + 8 * (uint64_t)ndim)
        return false;
    u128 prod = 1;
    for (unsigned k = 0; k < ndim; k++) {
        uint64_t d = 0;
        for (int b = 7; b >= 0; b--)
            d = d << 8 | p[8 + 8 * k + (unsigned)b];
        if (d > (1u << 30))
            return false;
        prod *= d;
        if (prod > ((u128)1 << 40))
            prod = (u128)1 << 40;
    }
    u128 bytes = prod * esize[p[1]];
    if (bytes > (1u << 30) || bytes != n - 8 - 8 * (uint64_t)ndim)
        return false;
    *block = ((ndim + 1u) & ~1u) * 8u + (uint64_t)bytes;
    return true;
}

// Whether o is a valid mcl value (depth: of o, the top at 0).
static bool
acceptable(const msgpack_object *o, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= MCL__MAX_NESTING)
            return false;
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!acceptable(&o->via.array.ptr[i], depth + 1))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (depth >= MCL__MAX_NESTING)
            return false;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR && k->type != MSGPACK_OBJECT_BIN)
                return false;
            const char *kp = k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : k->via.bin.ptr;
            uint32_t kn = k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size;
            if (kn > 0 && memchr(kp, 0, kn) != NULL)
                return false;
            for (uint32_t j = 0; j < i; j++) {
                const msgpack_object *k2 = &o->via.map.ptr[j].key;
                const char *p2 = k2->type == MSGPACK_OBJECT_STR ? k2->via.str.ptr : k2->via.bin.ptr;
                uint32_t n2 = k2->type == MSGPACK_OBJECT_STR ? k2->via.str.size : k2->via.bin.size;
                if (n2 == kn && (kn == 0 || memcmp(p2, kp, kn) == 0))
                    return false; // repeated
            }
            if (!acceptable(&o->via.map.ptr[i].val, depth + 1))
                return false;
        }
        return true;
    case MSGPACK_OBJECT_EXT: {
        uint64_t block;
        return nd_valid(o, &block);
    }
    default:
        return true;
    }
}

// What the decoder's tree for o costs (mcl/value.h's bounds), added to c.
static void
cost(const msgpack_object *o, mcl__dcost *c)
{
    c->values++;
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        c->bytes += mcl__val_cost(MCL_TYPE_STR, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        c->bytes += mcl__val_cost(MCL_TYPE_BIN, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        c->bytes += mcl__val_cost(MCL_TYPE_ARRAY, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++)
            cost(&o->via.array.ptr[i], c);
        break;
    case MSGPACK_OBJECT_MAP:
        c->bytes += mcl__val_cost(MCL_TYPE_MAP, o->via.map.size);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            c->bytes += mcl__alloc_cost(
                (k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size) + 1);
            cost(&o->via.map.ptr[i].val, c);
        }
        break;
    case MSGPACK_OBJECT_EXT: {
        uint64_t block = 0;
        (void)nd_valid(o, &block);
        c->bytes += mcl__val_cost(MCL_TYPE_NDARRAY, block);
        break;
    }
    default:
        c->bytes += mcl__val_cost(MCL_TYPE_NIL, 0);
        break;
    }
}

// Whether value v is what o says.
static bool
same(const mcl_value *v, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return v->type == MCL_TYPE_NIL;
    case MSGPACK_OBJECT_BOOLEAN:
        return v->type == MCL_TYPE_BOOL && v->b == o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return v->type == MCL_TYPE_INT && v->is_u && v->u == o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return v->type == MCL_TYPE_INT && !v->is_u && v->i == o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v->type == MCL_TYPE_FLOAT && memcmp(&v->d, &o->via.f64, sizeof(double)) == 0;
    case MSGPACK_OBJECT_STR:
        return v->type == MCL_TYPE_STR && v->s.n == o->via.str.size &&
               (v->s.n == 0 || memcmp(v->s.p, o->via.str.ptr, v->s.n) == 0);
    case MSGPACK_OBJECT_BIN:
        return v->type == MCL_TYPE_BIN && v->s.n == o->via.bin.size &&
               (v->s.n == 0 || memcmp(v->s.p, o->via.bin.ptr, v->s.n) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (v->type != MCL_TYPE_ARRAY || v->a.n != o->via.array.size)
            return false;
        for (size_t i = 0; i < v->a.n; i++)
            if (!same(v->a.v[i], &o->via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        if (v->type != MCL_TYPE_MAP || v->m.n != o->via.map.size)
            return false;
        for (size_t i = 0; i < v->m.n; i++) { // in the order of the bytes
            const msgpack_object *k = &o->via.map.ptr[i].key;
            const char *kp = k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : k->via.bin.ptr;
            uint32_t kn = k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size;
            if (v->m.kv[i].klen != kn || (kn > 0 && memcmp(v->m.kv[i].key, kp, kn) != 0) ||
                !same(v->m.kv[i].val, &o->via.map.ptr[i].val))
                return false;
        }
        return true;
    case MSGPACK_OBJECT_EXT: { // (valid: acceptable() said so) dtype, shape, data as sent
        const uint8_t *p = (const uint8_t *)o->via.ext.ptr;
        mcl_dtype dt;
        size_t ndim, nbytes;
        const uint64_t *shape;
        const void *data;
        if (mcl_value_get_ndarray(v, &dt, &ndim, &shape, &data, &nbytes) != MCL_OK ||
            (unsigned)dt != p[1] || ndim != p[2] || nbytes != o->via.ext.size - 8 - 8 * ndim)
            return false;
        for (size_t k = 0; k < ndim; k++) {
            uint64_t d = 0;
            for (int b = 7; b >= 0; b--)
                d = d << 8 | p[8 + 8 * k + (unsigned)b];
            if (shape[k] != d)
                return false;
        }
        return nbytes == 0 || memcmp(data, p + 8 + 8 * ndim, nbytes) == 0; // (a LE host)
    }
    default:
        return false;
    }
}

// mcl_value_scan_map() on the same bytes: refused when the decoder refuses them (a repeated key
// not asked for aside, the documented difference), ENOTMAP for a valid non-map, and for a map
// the scalars of the keys asked for (some fixed, the map's first three) exactly as decoded.
static void
check_scan(const uint8_t *p, size_t size, const mcl_value *v, mcl_err rv)
{
    const char *keys[8] = {"name", "timestamp", "a", "", "data"};
    size_t nkeys = 5;
    for (size_t i = 0; v != NULL && i < 3 && i < mcl_value_count(v); i++) {
        const char *key = NULL;
        if (mcl_value_type(v) != MCL_TYPE_MAP || mcl_value_entry(v, i, &key) == NULL)
            continue;
        bool seen = false; // (a key asked for twice fills only its first out[])
        for (size_t k = 0; k < nkeys; k++)
            seen = seen || strcmp(keys[k], key) == 0;
        if (!seen)
            keys[nkeys++] = key;
    }
    mcl_scalar out[8];
    mcl_err sv = mcl_value_scan_map(p, size, keys, nkeys, out);
    if (rv == MCL_ENOMEM)
        return;
    if (rv != MCL_OK) { // (OK or ENOTMAP only for a repeated key, which the scan does not see)
        if (sv != MCL_EDECODE && sv != MCL_OK && sv != MCL_ENOTMAP)
            abort();
        return;
    }
    if (mcl_value_type(v) != MCL_TYPE_MAP) {
        if (sv != MCL_ENOTMAP)
            abort();
        return;
    }
    if (sv != MCL_OK)
        abort(); // refused what decodes
    for (size_t k = 0; k < nkeys; k++) {
        const mcl_value *f = mcl_value_find(v, keys[k]);
        const mcl_scalar *o = &out[k];
        if (f == NULL) {
            if (o->type != MCL_TYPE_ANY)
                abort();
            continue;
        }
        if (o->type != mcl_value_type(f))
            abort();
        int64_t i = 0;
        uint64_t u = 0;
        double d = 0;
        bool b = false;
        const char *str = NULL;
        const void *bin = NULL;
        size_t n = 0;
        switch (o->type) {
        case MCL_TYPE_BOOL:
            mcl_value_get_bool(f, &b);
            if (o->b != b)
                abort();
            break;
        case MCL_TYPE_INT:
            if (o->big_uint != mcl_value_is_big_uint(f))
                abort();
            if (o->big_uint ? (mcl_value_get_uint(f, &u), o->u != u)
                            : (mcl_value_get_int(f, &i), o->i != i))
                abort();
            break;
        case MCL_TYPE_FLOAT:
            mcl_value_get_double(f, &d);
            if (memcmp(&o->d, &d, sizeof d) != 0)
                abort();
            break;
        case MCL_TYPE_STR:
            mcl_value_get_str(f, &str, &n);
            if (o->len != n || (n > 0 && memcmp(o->str, str, n) != 0) ||
                (n > 0 && (o->str < (const char *)p || o->str + n > (const char *)p + size)))
                abort();
            break;
        case MCL_TYPE_BIN:
            mcl_value_get_bin(f, &bin, &n);
            if (o->len != n || (n > 0 && memcmp(o->str, bin, n) != 0))
                abort();
            break;
        case MCL_TYPE_NDARRAY: {
            size_t nb;
            mcl_dtype dt;
            mcl_value_get_ndarray(f, &dt, NULL, NULL, NULL, &nb);
            if (o->len != nb / mcl_dtype_size(dt))
                abort(); // its element count
            break;
        }
        default:
            if (o->len != mcl_value_count(f))
                abort();
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    // A copy of exactly size bytes, so that a read past the end is caught by the sanitizer.
    uint8_t *p = malloc(size ? size : 1);
    if (p == NULL)
        return 0;
    memcpy(p, data, size);
    mcl_value *v = NULL;
    mcl_err rv = mcl__msgpack_to_value(p, size, &v);
    if (rv != MCL_OK && rv != MCL_EDECODE && rv != MCL_ENOMEM)
        abort();
    check_scan(p, size, v, rv);
    if (size == 0 || !plausible(p, size)) { // never a valid value: refused, msgpack-c not asked
        if (rv == MCL_OK)
            abort();
        free(p);
        return 0;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)p, size, &off);
    bool ref_ok = r == MSGPACK_UNPACK_SUCCESS && off == size && acceptable(&u.data, 0);
    if (ref_ok) { // and within the decoding bounds
        mcl__dcost c = {0, 0, 0};
        char why[160];
        cost(&u.data, &c);
        ref_ok = mcl__decode_check(&c, size, why, sizeof(why)) == MCL_OK;
    }
    if (rv == MCL_OK && !ref_ok && r != MSGPACK_UNPACK_NOMEM_ERROR)
        abort(); // accepted what is not a valid value
    if (rv == MCL_EDECODE && ref_ok)
        abort(); // refused a valid value
    if (rv == MCL_OK && ref_ok && !same(v, &u.data))
        abort(); // decoded to something else
    msgpack_unpacked_destroy(&u);
    if (rv == MCL_OK) { // and it encodes to bytes that decode to it again
        void *buf;
        size_t len;
        mcl_err er = mcl_value_encode(v, &buf, &len);
        if (er != MCL_OK && er != MCL_ENOMEM)
            abort();
        if (er == MCL_OK) {
            mcl__dcost m;
            mcl__val_measure(v, &m);
            if (m.packed != len)
                abort(); // the encoder's measure (its budget check) is not what it packs
            mcl_value *back = NULL;
            mcl_err dr = mcl__msgpack_to_value(buf, len, &back);
            if (dr != MCL_OK && dr != MCL_ENOMEM)
                abort();
            if (dr == MCL_OK && !mcl_value_equal(v, back))
                abort();
            if (back != NULL)
                mcl__val_free(back);
            mcl_free(buf);
        }
        mcl__val_free(v);
    }
    free(p);
    return 0;
}
