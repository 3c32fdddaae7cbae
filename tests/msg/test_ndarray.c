// SPDX-License-Identifier: BSD-3-Clause
// Typed n-dimensional arrays (MCL_TYPE_NDARRAY): building and reading, the msgpack ext form
// (byte-exact against docs/wire-format.md's test vectors), hostile encodings, JSON both ways.
#include "harness.h"
#include "msg/msg_int.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mcl_dtype all_dtypes[] = {
    MCL_DTYPE_INT8,   MCL_DTYPE_INT16,  MCL_DTYPE_INT32,   MCL_DTYPE_INT64,
    MCL_DTYPE_UINT8,  MCL_DTYPE_UINT16, MCL_DTYPE_UINT32,  MCL_DTYPE_UINT64,
    MCL_DTYPE_FLOAT32, MCL_DTYPE_FLOAT64, MCL_DTYPE_BOOL,
};
#define NDT (sizeof(all_dtypes) / sizeof(all_dtypes[0]))

static void
test_dtypes(void)
{
    static const char *const names[] = {"int8",   "int16",  "int32",   "int64",
                                        "uint8",  "uint16", "uint32",  "uint64",
                                        "float32", "float64", "bool"};
    static const size_t sizes[] = {1, 2, 4, 8, 1, 2, 4, 8, 4, 8, 1};
    for (size_t i = 0; i < NDT; i++) {
        CU_ASSERT_EQUAL((int)all_dtypes[i], (int)i + 1); // the wire codes
        CU_ASSERT_STRING_EQUAL(mcl_dtype_name(all_dtypes[i]), names[i]);
        CU_ASSERT_EQUAL(mcl_dtype_size(all_dtypes[i]), sizes[i]);
        mcl_dtype d;
        MCLT_OK(mcl_dtype_from_name(names[i], &d));
        CU_ASSERT_EQUAL(d, all_dtypes[i]);
    }
    mcl_dtype d;
    CU_ASSERT_STRING_EQUAL(mcl_dtype_name((mcl_dtype)0), "?");
    CU_ASSERT_STRING_EQUAL(mcl_dtype_name((mcl_dtype)12), "?");
    CU_ASSERT_STRING_EQUAL(mcl_dtype_name((mcl_dtype)-1), "?");
    CU_ASSERT_EQUAL(mcl_dtype_size((mcl_dtype)12), 0);
    MCLT_ERR(mcl_dtype_from_name("float16", &d), MCL_ENOENT);
    MCLT_ERR(mcl_dtype_from_name(NULL, &d), MCL_EINVAL);
    CU_ASSERT_STRING_EQUAL(mcl_type_name(MCL_TYPE_NDARRAY), "ndarray");
}

// Fills n bytes with a pattern that differs per byte (and makes every float finite or not as
// it falls: the codec and equality are bitwise).
static void
pattern(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = 0x9e3779b9u * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static mcl_msg *
roundtrip_msg(const mcl_msg *m)
{
    void *buf;
    size_t len;
    MCLT_OK(mcl_msg_encode(m, &buf, &len));
    mcl__dcost c;
    mcl__val_measure(mcl_msg_fields(m), &c);
    CU_ASSERT_EQUAL(c.packed, len); // the encoder's own measure is exact
    mcl_msg *back = NULL;
    char err[256];
    MCLT_OK(mcl_msg_decode(&back, buf, len, NULL, err, sizeof(err)));
    mcl_free(buf);
    return back;
}

// Every dtype, with several shapes (0-d, empty, 1-d, 2-d, 8-d): C -> msgpack -> C.
static void
test_roundtrip_every_dtype(void)
{
    static const struct {
        size_t ndim;
        uint64_t shape[MCL_NDARRAY_MAX_NDIM];
    } shapes[] = {
        {0, {0}},          {1, {0}},         {1, {1}},  {1, {37}},
        {2, {3, 5}},       {2, {4, 0}},      {3, {0, 2, 3}},
        {8, {1, 2, 1, 3, 1, 2, 1, 2}},
    };
    for (size_t d = 0; d < NDT; d++)
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            mcl_dtype dt = all_dtypes[d];
            size_t n = 1;
            for (size_t k = 0; k < shapes[s].ndim; k++)
                n *= shapes[s].shape[k];
            size_t nb = n * mcl_dtype_size(dt);
            uint8_t *data = malloc(nb + 1);
            pattern(data, nb, (unsigned)(d * 16 + s));
            mcl_msg *m;
            MCLT_OK(mcl_msg_new(&m, NULL));
            MCLT_OK(mcl_msg_set_ndarray(m, "a", dt, shapes[s].ndim, shapes[s].shape, data));
            mcl_msg *back = roundtrip_msg(m);
            CU_ASSERT_PTR_NOT_NULL_FATAL(back);
            mcl_dtype bdt;
            size_t bndim, bnb;
            const uint64_t *bshape;
            const void *bdata;
            MCLT_OK(mcl_msg_get_ndarray(back, "a", &bdt, &bndim, &bshape, &bdata, &bnb));
            CU_ASSERT_EQUAL(bdt, dt);
            CU_ASSERT_EQUAL(bndim, shapes[s].ndim);
            CU_ASSERT_EQUAL(bnb, nb);
            CU_ASSERT(bndim == 0 || memcmp(bshape, shapes[s].shape, bndim * 8) == 0);
            CU_ASSERT(nb == 0 ? bdata == NULL : memcmp(bdata, data, nb) == 0);
            CU_ASSERT(nb == 0 || ((uintptr_t)bdata & 15) == 0); // aligned for any dtype
            CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(back)));
            mcl_msg_free(back);
            mcl_msg_free(m);
            free(data);
        }
}

static void
test_put_errors(void)
{
    mcl_value *map, *arr;
    MCLT_OK(mcl_value_new(&map, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_new(&arr, MCL_TYPE_ARRAY));
    const uint64_t two[] = {2, 3};
    const float f[6] = {0};
    void *w = (void *)1;
    MCLT_ERR(mcl_value_put_ndarray(map, "a", (mcl_dtype)0, 1, two, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", (mcl_dtype)12, 1, two, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_FLOAT32, 9,
                                   (const uint64_t[9]){1, 1, 1, 1, 1, 1, 1, 1, 1}, f),
             MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_FLOAT32, 2, NULL, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_FLOAT32, 2, two, NULL), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(NULL, "a", MCL_DTYPE_FLOAT32, 2, two, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(map, NULL, MCL_DTYPE_FLOAT32, 2, two, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_put_ndarray(arr, "a", MCL_DTYPE_FLOAT32, 2, two, f), MCL_EINVAL);
    MCLT_ERR(mcl_value_push_ndarray(map, MCL_DTYPE_FLOAT32, 2, two, f), MCL_EINVAL);
    // Products that overflow 64 bits, or pass the bound, and a dim above it next to a 0.
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_UINT8, 2,
                                   (const uint64_t[]){1ull << 32, 1ull << 32}, f),
             MCL_ERANGE);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_UINT8, 3,
                                   (const uint64_t[]){1ull << 22, 1ull << 22, 1ull << 22}, f),
             MCL_ERANGE);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_UINT8, 2,
                                   (const uint64_t[]){UINT64_MAX, 0}, NULL),
             MCL_ERANGE);
    MCLT_ERR(mcl_value_put_ndarray(map, "a", MCL_DTYPE_UINT8, 2,
                                   (const uint64_t[]){0, UINT64_MAX}, NULL),
             MCL_ERANGE); // (empty, but no dim may pass the bound)
    MCLT_ERR(mcl_value_put_ndarray_uninit(map, "a", MCL_DTYPE_FLOAT64, 1,
                                          (const uint64_t[]){MCL_NDARRAY_MAX_BYTES / 8 + 1}, &w),
             MCL_ERANGE);
    CU_ASSERT_PTR_NULL(w);
    MCLT_ERR(mcl_value_put_ndarray_uninit(map, "a", MCL_DTYPE_FLOAT64, 1, two, NULL), MCL_EINVAL);
    CU_ASSERT_EQUAL(mcl_value_count(map), 0); // nothing was added
    // The bound itself is allowed (uninit: nothing to copy). 1 GiB of address space only.
    MCLT_OK(mcl_value_put_ndarray_uninit(map, "big", MCL_DTYPE_FLOAT64, 1,
                                         (const uint64_t[]){MCL_NDARRAY_MAX_BYTES / 8}, &w));
    CU_ASSERT_PTR_NOT_NULL(w);
    MCLT_OK(mcl_value_put_nil(map, "big")); // (replaced: freed)
    // Reads of other kinds.
    mcl_dtype dt = MCL_DTYPE_INT8;
    size_t nd = 7;
    const void *data = f;
    MCLT_ERR(mcl_value_get_ndarray(mcl_value_find(map, "big"), &dt, &nd, NULL, &data, NULL),
             MCL_ETYPE);
    CU_ASSERT_EQUAL(nd, 0);
    CU_ASSERT_PTR_NULL(data);
    MCLT_ERR(mcl_value_get_ndarray(NULL, NULL, NULL, NULL, NULL, NULL), MCL_EINVAL);
    mcl_value_free(map);
    mcl_value_free(arr);

    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, NULL));
    MCLT_ERR(mcl_msg_set_ndarray(m, "name", MCL_DTYPE_UINT8, 0, NULL, "x"), MCL_ETYPE);
    MCLT_ERR(mcl_msg_get_ndarray(m, "absent", NULL, NULL, NULL, NULL, NULL), MCL_ENOENT);
    mcl_msg_free(m);
}

// The writable form: filled in place after the call, encoded as filled.
static void
test_uninit_and_push(void)
{
    mcl_value *root, *arr;
    MCLT_OK(mcl_value_new(&root, MCL_TYPE_MAP));
    float *p;
    MCLT_OK(mcl_value_put_ndarray_uninit(root, "f", MCL_DTYPE_FLOAT32, 2,
                                         (const uint64_t[]){2, 2}, (void **)&p));
    for (int i = 0; i < 4; i++)
        p[i] = (float)i + 0.5f;
    MCLT_OK(mcl_value_put_array(root, "list", &arr));
    MCLT_OK(mcl_value_push_ndarray(arr, MCL_DTYPE_INT16, 1, (const uint64_t[]){2},
                                   (const int16_t[]){-300, 300}));
    void *q = (void *)1;
    MCLT_OK(mcl_value_push_ndarray_uninit(arr, MCL_DTYPE_UINT8, 1, (const uint64_t[]){0}, &q));
    CU_ASSERT_PTR_NULL(q); // empty: no storage to fill
    void *buf;
    size_t len;
    MCLT_OK(mcl_value_encode(root, &buf, &len));
    mcl_value *back;
    MCLT_OK(mcl_value_decode(&back, buf, len, NULL, 0));
    mcl_free(buf);
    const void *d;
    size_t nb;
    MCLT_OK(mcl_value_get_ndarray(mcl_value_find(back, "f"), NULL, NULL, NULL, &d, &nb));
    CU_ASSERT_EQUAL(nb, 16);
    CU_ASSERT(memcmp(d, (const float[]){0.5f, 1.5f, 2.5f, 3.5f}, 16) == 0);
    CU_ASSERT(mcl_value_equal(root, back));
    CU_ASSERT_EQUAL(mcl_value_count(mcl_value_find(back, "f")), 0); // not a container
    // Copies are equal; one byte changed is not; nor another shape of the same bytes.
    mcl_value *c;
    MCLT_OK(mcl_value_dup(&c, root));
    CU_ASSERT(mcl_value_equal(c, root));
    p[3] = -0.0f;
    CU_ASSERT(!mcl_value_equal(c, root));
    MCLT_OK(mcl_value_put_ndarray(c, "f", MCL_DTYPE_FLOAT32, 1, (const uint64_t[]){4},
                                  (const float[]){0.5f, 1.5f, 2.5f, 3.5f}));
    CU_ASSERT(!mcl_value_equal(c, back));
    MCLT_OK(mcl_value_put_ndarray(c, "f", MCL_DTYPE_FLOAT32, 2, (const uint64_t[]){4, 1},
                                  (const float[]){0.5f, 1.5f, 2.5f, 3.5f}));
    CU_ASSERT(!mcl_value_equal(c, back)); // same bytes, same ndim, another shape
    MCLT_OK(mcl_value_put_ndarray(c, "f", MCL_DTYPE_FLOAT32, 2, (const uint64_t[]){2, 2},
                                  (const float[]){0.5f, 1.5f, 2.5f, 3.5f}));
    CU_ASSERT(mcl_value_equal(mcl_value_find(c, "f"), mcl_value_find(back, "f")));
    mcl_value_free(c);
    mcl_value_free(back);
    mcl_value_free(root);
    // A standalone typed array, as mcl_value_new() makes it.
    mcl_value *e;
    MCLT_OK(mcl_value_new(&e, MCL_TYPE_NDARRAY));
    mcl_dtype dt;
    size_t ndim;
    const uint64_t *shape;
    MCLT_OK(mcl_value_get_ndarray(e, &dt, &ndim, &shape, &d, &nb));
    CU_ASSERT(dt == MCL_DTYPE_UINT8 && ndim == 1 && shape[0] == 0 && d == NULL && nb == 0);
    mcl_value_free(e);
}

// docs/wire-format.md, "Typed arrays": the test vectors, byte for byte both ways.
static const uint8_t vec_f32[] = {
    0x81, 0xa1, 0x76,                               // {"v":
    0xc7, 0x18, 0x6e,                               // ext 8, 24 bytes, type 110
    0x01, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // v1, float32, ndim 1, reserved
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // dim 2
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0, // 1.0, -2.5
};
static const uint8_t vec_i8[] = {
    0x81, 0xa1, 0x6d,                               // {"m":
    0xc7, 0x1e, 0x6e,                               // ext 8, 30 bytes, type 110
    0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // v1, int8, ndim 2
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 2
    0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // x 3
    0x01, 0x02, 0x03, 0xff, 0xfe, 0xfd,             // [[1, 2, 3], [-1, -2, -3]]
};
static const uint8_t vec_empty[] = {
    0x81, 0xa1, 0x65,                               // {"e":
    0xd8, 0x6e,                                     // fixext 16, type 110
    0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // v1, uint8, ndim 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // dim 0: no data
};
static const uint8_t vec_bool0d[] = {
    0x81, 0xa1, 0x62,                               // {"b":
    0xc7, 0x09, 0x6e,                               // ext 8, 9 bytes, type 110
    0x01, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // v1, bool, ndim 0
    0x01,                                           // true
};

static void
check_vector(const mcl_value *v, const uint8_t *want, size_t wlen)
{
    void *buf;
    size_t len;
    MCLT_OK(mcl_value_encode(v, &buf, &len));
    CU_ASSERT_EQUAL(len, wlen);
    CU_ASSERT(len == wlen && memcmp(buf, want, wlen) == 0);
    mcl_free(buf);
    mcl_value *back;
    MCLT_OK(mcl_value_decode(&back, want, wlen, NULL, 0));
    CU_ASSERT(mcl_value_equal(back, v));
    mcl_value_free(back);
}

static void
test_vectors(void)
{
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_ndarray(v, "v", MCL_DTYPE_FLOAT32, 1, (const uint64_t[]){2},
                                  (const float[]){1.0f, -2.5f}));
    check_vector(v, vec_f32, sizeof(vec_f32));
    mcl_value_free(v);
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_ndarray(v, "m", MCL_DTYPE_INT8, 2, (const uint64_t[]){2, 3},
                                  (const int8_t[]){1, 2, 3, -1, -2, -3}));
    check_vector(v, vec_i8, sizeof(vec_i8));
    mcl_value_free(v);
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_ndarray(v, "e", MCL_DTYPE_UINT8, 1, (const uint64_t[]){0}, NULL));
    check_vector(v, vec_empty, sizeof(vec_empty));
    mcl_value_free(v);
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_ndarray(v, "b", MCL_DTYPE_BOOL, 0, NULL, (const uint8_t[]){1}));
    check_vector(v, vec_bool0d, sizeof(vec_bool0d));
    mcl_value_free(v);
}

static mcl_err
decode(const uint8_t *p, size_t n)
{
    mcl_value *v = NULL;
    mcl_err rv = mcl_value_decode(&v, p, n, NULL, 0);
    CU_ASSERT(rv == MCL_OK || v == NULL);
    mcl_value_free(v);
    return rv;
}

// vec_f32 with byte i set to x.
static mcl_err
decode_with(size_t i, uint8_t x)
{
    uint8_t b[sizeof(vec_f32)];
    memcpy(b, vec_f32, sizeof(b));
    b[i] = x;
    return decode(b, sizeof(b));
}

// Hostile typed arrays: each refused (MCL_EDECODE), never trusted.
static void
test_hostile(void)
{
    MCLT_OK(decode(vec_f32, sizeof(vec_f32)));
    enum { EXT = 3, TYPE = 5, P = 6 }; // offsets in vec_f32: the ext header, its type, payload
    MCLT_ERR(decode_with(TYPE, 0x05), MCL_EDECODE);     // another extension type
    MCLT_ERR(decode_with(TYPE, 0xff), MCL_EDECODE);     // -1: msgpack's timestamp
    MCLT_ERR(decode_with(P + 0, 0x02), MCL_EDECODE);    // version 2
    MCLT_ERR(decode_with(P + 0, 0x00), MCL_EDECODE);    // version 0
    MCLT_ERR(decode_with(P + 1, 0x00), MCL_EDECODE);    // dtype 0
    MCLT_ERR(decode_with(P + 1, 0x0c), MCL_EDECODE);    // dtype 12
    MCLT_ERR(decode_with(P + 1, 0x01), MCL_EDECODE);    // int8: 2 bytes of data, not 8
    MCLT_OK(decode_with(P + 1, 0x03));                  // int32: also 2 x 4 bytes
    MCLT_ERR(decode_with(P + 2, 0x09), MCL_EDECODE);    // ndim 9
    MCLT_ERR(decode_with(P + 2, 0x02), MCL_EDECODE);    // ndim 2: dims 2 x (bytes of data)
    MCLT_ERR(decode_with(P + 2, 0xff), MCL_EDECODE);    // ndim 255
    for (size_t r = 3; r < 8; r++)
        MCLT_ERR(decode_with(P + r, 0x01), MCL_EDECODE); // reserved bytes
    MCLT_ERR(decode_with(P + 8, 0x03), MCL_EDECODE);    // dim 3: 12 bytes wanted, 8 there
    MCLT_ERR(decode_with(P + 8, 0x01), MCL_EDECODE);    // dim 1: 4 bytes wanted
    MCLT_ERR(decode_with(P + 15, 0x80), MCL_EDECODE);   // dim 2^63 + 2
    MCLT_ERR(decode_with(EXT + 1, 0x17), MCL_EDECODE);  // ext one byte shorter: length off
    MCLT_ERR(decode_with(EXT + 1, 0x19), MCL_EDECODE);  // longer than the buffer
    // Dims whose product wraps around 64 bits to what the data holds: (2^63 + 1) x 2 = 2 (mod
    // 2^64) float32, 8 bytes. A decoder that multiplied would accept it; the product is never
    // trusted.
    {
        uint8_t b[6 + 8 + 16 + 8] = {0x81, 0xa1, 0x76, 0xc7, 8 + 16 + 8, 0x6e,
                                     0x01, 0x09, 0x02, 0, 0, 0, 0, 0};
        b[14] = 1, b[21] = 0x80; // dim 0: 2^63 + 1
        b[22] = 2;               // dim 1: 2
        MCLT_ERR(decode(b, sizeof(b)), MCL_EDECODE);
        b[21] = 0;               // 1 x 2: the same bytes are fine
        MCLT_OK(decode(b, sizeof(b)));
    }
    // Every truncation, and every extension form's length byte off by one.
    for (size_t n = 0; n < sizeof(vec_f32); n++)
        MCLT_ERR(decode(vec_f32, n), MCL_EDECODE);
    uint8_t more[sizeof(vec_f32) + 1];
    memcpy(more, vec_f32, sizeof(vec_f32));
    more[sizeof(vec_f32)] = 0;
    MCLT_ERR(decode(more, sizeof(more)), MCL_EDECODE); // trailing byte
    more[EXT + 1] = 0x19;
    MCLT_ERR(decode(more, sizeof(more)), MCL_EDECODE); // one byte of data too many
    // The same array in the other ext forms (ext 16, ext 32) decodes alike; fixext 8 with an
    // 8-byte payload is a header with no dims for a 1-element 0-d array: too short.
    uint8_t e16[sizeof(vec_f32) + 1], e32[sizeof(vec_f32) + 3];
    memcpy(e16, vec_f32, 3);
    e16[3] = 0xc8, e16[4] = 0, e16[5] = 24, e16[6] = 0x6e;
    memcpy(e16 + 7, vec_f32 + P, sizeof(vec_f32) - P);
    MCLT_OK(decode(e16, sizeof(e16)));
    memcpy(e32, vec_f32, 3);
    e32[3] = 0xc9, e32[4] = 0, e32[5] = 0, e32[6] = 0, e32[7] = 24, e32[8] = 0x6e;
    memcpy(e32 + 9, vec_f32 + P, sizeof(vec_f32) - P);
    MCLT_OK(decode(e32, sizeof(e32)));
    e32[7] = 0xff, e32[6] = 0xff, e32[5] = 0xff, e32[4] = 0xff;
    MCLT_ERR(decode(e32, sizeof(e32)), MCL_EDECODE); // 4 GiB claimed
    static const uint8_t fix8[] = {0xd7, 0x6e, 0x01, 0x09, 0x00, 0, 0, 0, 0, 0};
    MCLT_ERR(decode(fix8, sizeof(fix8)), MCL_EDECODE);
    static const uint8_t fix8_u8[] = {0xd7, 0x6e, 0x01, 0x05, 0x00, 0, 0, 0, 0, 0};
    MCLT_ERR(decode(fix8_u8, sizeof(fix8_u8)), MCL_EDECODE); // no room for the element
    // As a map key: refused, as every key that is not a string.
    static const uint8_t key[] = {0x81, 0xc7, 0x09, 0x6e, 0x01, 0x0b, 0, 0, 0, 0, 0, 0, 1, 0xc0};
    MCLT_ERR(decode(key, sizeof(key)), MCL_EDECODE);
}

// The decoding budget holds: a 16 MiB array decodes from its ~16 MiB, and a scan of the
// fields sees the element count.
static void
test_budget_and_scan(void)
{
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    void *w;
    MCLT_OK(mcl_value_put_ndarray_uninit(v, "big", MCL_DTYPE_FLOAT32, 2,
                                         (const uint64_t[]){1024, 4096}, &w));
    memset(w, 0x3f, 16u << 20);
    MCLT_OK(mcl_value_put_int(v, "n", 3));
    void *buf;
    size_t len;
    MCLT_OK(mcl_value_encode(v, &buf, &len));
    CU_ASSERT_EQUAL(len, 1 + 4 + 6 + 8 + 16 + (16u << 20) + 2 + 1);
    mcl_value *back;
    MCLT_OK(mcl_value_decode(&back, buf, len, NULL, 0));
    CU_ASSERT(mcl_value_equal(v, back));
    const char *keys[] = {"big", "n"};
    mcl_scalar out[2];
    MCLT_OK(mcl_value_scan_map(buf, len, keys, 2, out));
    CU_ASSERT_EQUAL(out[0].type, MCL_TYPE_NDARRAY);
    CU_ASSERT_EQUAL(out[0].len, 1024 * 4096);
    CU_ASSERT(out[1].type == MCL_TYPE_INT && out[1].i == 3);
    mcl_free(buf);
    mcl_value_free(back);
    mcl_value_free(v);
}

static char *
to_json(const mcl_value *v, int flags)
{
    char *js = NULL;
    MCLT_OK(mcl_value_to_json(v, flags, &js));
    return js;
}

static mcl_value *
from_json(const char *js)
{
    mcl_value *v = NULL;
    char err[256];
    mcl_err rv = mcl_value_from_json(&v, js, strlen(js), err, sizeof(err));
    if (rv != MCL_OK)
        fprintf(stderr, "from_json(%s): %s\n", js, err);
    MCLT_OK(rv);
    return v;
}

// The documented texts, and both forms read back to the same value.
static void
test_json_texts(void)
{
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_ndarray(v, "f", MCL_DTYPE_FLOAT32, 2, (const uint64_t[]){2, 3},
                                  (const float[]){0.1f, 1.0f, -2.5f, INFINITY, -0.0f, 3e38f}));
    MCLT_OK(mcl_value_put_ndarray(v, "u", MCL_DTYPE_UINT64, 1, (const uint64_t[]){2},
                                  (const uint64_t[]){UINT64_MAX, 7}));
    MCLT_OK(mcl_value_put_ndarray(v, "b", MCL_DTYPE_BOOL, 0, NULL, (const uint8_t[]){1}));
    MCLT_OK(mcl_value_put_ndarray(v, "e", MCL_DTYPE_INT16, 2, (const uint64_t[]){2, 0}, NULL));
    char *js = to_json(v, MCL_JSON_COMPACT);
    CU_ASSERT_STRING_EQUAL(
        js, "{\"f\":{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[2,3],"
            "\"data\":[[0.1,1.0,-2.5],[\"inf\",-0.0,3e38]]}},"
            "\"u\":{\"$ndarray\":{\"dtype\":\"uint64\",\"shape\":[2],"
            "\"data\":[\"18446744073709551615\",7]}},"
            "\"b\":{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[],\"data\":true}},"
            "\"e\":{\"$ndarray\":{\"dtype\":\"int16\",\"shape\":[2,0],\"data\":[[],[]]}}}");
    mcl_value *back = from_json(js);
    CU_ASSERT(mcl_value_equal(v, back));
    mcl_value_free(back);
    mcl_free(js);
    js = to_json(v, MCL_JSON_NDARRAY_BASE64);
    CU_ASSERT_STRING_EQUAL(
        js, "{\"f\":{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[2,3],"
            "\"base64\":\"zczMPQAAgD8AACDAAACAfwAAAIDmsWF/\"}},"
            "\"u\":{\"$ndarray\":{\"dtype\":\"uint64\",\"shape\":[2],"
            "\"base64\":\"//////////8HAAAAAAAAAA==\"}},"
            "\"b\":{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[],\"base64\":\"AQ==\"}},"
            "\"e\":{\"$ndarray\":{\"dtype\":\"int16\",\"shape\":[2,0],\"base64\":\"\"}}}");
    back = from_json(js);
    CU_ASSERT(mcl_value_equal(v, back));
    mcl_value_free(back);
    mcl_free(js);
    // A plain map whose only key is "$ndarray" is wrapped, and stays a map.
    mcl_value *m;
    MCLT_OK(mcl_value_new(&m, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_int(m, "$ndarray", 1));
    js = to_json(m, 0);
    CU_ASSERT_STRING_EQUAL(js, "{\"$map\":{\"$ndarray\":1}}");
    back = from_json(js);
    CU_ASSERT(mcl_value_equal(m, back));
    mcl_value_free(back);
    mcl_free(js);
    mcl_value_free(m);
    mcl_value_free(v);
}

// Random bytes as arrays of every dtype through JSON in both forms: both are exact for every
// element (random float bits make NaNs of many payloads, and bools of any byte).
static void
test_json_roundtrip_random(void)
{
    for (int round = 0; round < 40; round++)
        for (size_t d = 0; d < NDT; d++) {
            mcl_dtype dt = all_dtypes[d];
            size_t es = mcl_dtype_size(dt);
            uint64_t shape[3] = {(uint64_t)(round % 3), 3, (uint64_t)(round % 5) + 1};
            size_t ndim = (size_t)round % 4, n = 1;
            for (size_t k = 0; k < ndim; k++)
                n *= shape[k];
            uint8_t *data = malloc(n * es + 1);
            pattern(data, n * es, (unsigned)(round * 16 + (int)d));
            mcl_value *v;
            MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
            MCLT_OK(mcl_value_put_ndarray(v, "a", dt, ndim, shape, data));
            for (int form = 0; form < 2; form++) {
                char *js = to_json(v, form ? MCL_JSON_NDARRAY_BASE64 : MCL_JSON_INDENT);
                mcl_value *back = from_json(js);
                if (!mcl_value_equal(v, back))
                    fprintf(stderr, "not the same after JSON: %s\n", js);
                CU_ASSERT(mcl_value_equal(v, back));
                mcl_value_free(back);
                mcl_free(js);
            }
            mcl_value_free(v);
            free(data);
        }
    // NaNs in the list form: C's NAN is "nan", others carry their bits; bool bytes.
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    uint32_t nan32[3] = {0x7fc00000u, 0xffc00000u, 0x7f800001u};
    uint64_t nan64[2] = {0x7ff8000000000000ull, 0xfff0000000000001ull};
    MCLT_OK(mcl_value_put_ndarray(v, "f", MCL_DTYPE_FLOAT32, 1, (const uint64_t[]){3}, nan32));
    MCLT_OK(mcl_value_put_ndarray(v, "d", MCL_DTYPE_FLOAT64, 1, (const uint64_t[]){2}, nan64));
    MCLT_OK(mcl_value_put_ndarray(v, "b", MCL_DTYPE_BOOL, 1, (const uint64_t[]){3},
                                  (const uint8_t[]){0, 1, 0xfe}));
    char *js = to_json(v, 0);
    CU_ASSERT_STRING_EQUAL(js, "{\"f\":{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[3],"
                               "\"data\":[\"nan\",\"nan:ffc00000\",\"nan:7f800001\"]}},"
                               "\"d\":{\"$ndarray\":{\"dtype\":\"float64\",\"shape\":[2],"
                               "\"data\":[\"nan\",\"nan:fff0000000000001\"]}},"
                               "\"b\":{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[3],"
                               "\"data\":[false,true,254]}}}");
    mcl_value *back = from_json(js);
    CU_ASSERT(mcl_value_equal(v, back));
    mcl_value_free(back);
    mcl_free(js);
    mcl_value_free(v);
}

// Malformed "$ndarray" objects: each refused.
static void
test_json_hostile(void)
{
    static const char *const bad[] = {
        "{\"$ndarray\":1}",
        "{\"$ndarray\":{}}",
        "{\"$ndarray\":{\"dtype\":\"float16\",\"shape\":[1],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":1,\"shape\":[1],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[2],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[2],\"data\":[1,2,3]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1,2],\"data\":[1,2]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[2],\"data\":[[1],[2]]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"data\":[128]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"data\":[-129]}}",
        "{\"$ndarray\":{\"dtype\":\"uint8\",\"shape\":[1],\"data\":[-1]}}",
        "{\"$ndarray\":{\"dtype\":\"uint32\",\"shape\":[1],\"data\":[4294967296]}}",
        "{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[1],\"data\":[\"1\"]}}",
        "{\"$ndarray\":{\"dtype\":\"uint64\",\"shape\":[1],\"data\":[\"18446744073709551616\"]}}",
        "{\"$ndarray\":{\"dtype\":\"int32\",\"shape\":[1],\"data\":[1.5]}}",
        "{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[1],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"bool\",\"shape\":[1],\"data\":[256]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[\"nan:7fc00000\"]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[\"nan:3f800000\"]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[\"nan:7FC00001\"]}}",
        "{\"$ndarray\":{\"dtype\":\"float64\",\"shape\":[1],\"data\":[\"nan:7fc00001\"]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[1e39]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[\"NaN\"]}}",
        "{\"$ndarray\":{\"dtype\":\"float32\",\"shape\":[1],\"data\":[null]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[-1],\"data\":[]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1.0],\"data\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data\":1}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[4294967296,4294967296],\"data\":[]}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"data\":[1],\"base64\":\"AQ==\"}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"data\":[1],\"extra\":0}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"x\":[1]}}",
        "{\"$ndarray\":{\"dtype\":\"int16\",\"shape\":[1],\"base64\":\"AQ==\"}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"base64\":\"AQ=\"}}",
        "{\"$ndarray\":{\"dtype\":\"int8\",\"shape\":[1],\"base64\":1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mcl_value *v = (mcl_value *)1;
        char err[256];
        mcl_err rv = mcl_value_from_json(&v, bad[i], strlen(bad[i]), err, sizeof(err));
        if (rv != MCL_EDECODE)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CU_ASSERT_EQUAL(rv, MCL_EDECODE);
        CU_ASSERT_PTR_NULL(v);
    }
}

// A message type may declare a typed array field, and checks it.
static void
test_msgtype_field(void)
{
    const mcl_msgtype *t;
    const mcl_field f[] = {{"scan", MCL_TYPE_NDARRAY}};
    MCLT_OK(mcl_msgtype_define(&t, "nd_test_scan", f, 1, NULL, NULL, NULL, 0));
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, t));
    MCLT_OK(mcl_msg_set_int(m, "scan", 1));
    MCLT_ERR(mcl_msg_check(m, t, NULL, 0), MCL_ETYPE);
    MCLT_OK(mcl_msg_set_ndarray(m, "scan", MCL_DTYPE_FLOAT32, 1, (const uint64_t[]){1},
                                (const float[]){2.0f}));
    MCLT_OK(mcl_msg_check(m, t, NULL, 0));
    mcl_msg_free(m);
    MCLT_OK(mcl_msgtype_remove("nd_test_scan"));
}

static CU_TestInfo tests[] = {
    {"dtypes", test_dtypes},
    {"roundtrip_every_dtype", test_roundtrip_every_dtype},
    {"put_errors", test_put_errors},
    {"uninit_and_push", test_uninit_and_push},
    {"vectors", test_vectors},
    {"hostile", test_hostile},
    {"budget_and_scan", test_budget_and_scan},
    {"json_texts", test_json_texts},
    {"json_roundtrip_random", test_json_roundtrip_random},
    {"json_hostile", test_json_hostile},
    {"msgtype_field", test_msgtype_field},
    CU_TEST_INFO_NULL,
};

MCLT_SUITE("msg_ndarray", NULL, NULL, tests);
