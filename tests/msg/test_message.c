// SPDX-License-Identifier: BSD-3-Clause
// Message types, messages, msgpack and JSON: Python MCL's message behaviours (research note
// §8.2) and what MCL lacked (field kinds, decode errors that are reported, not fatal).
#include "harness.h"
#include "core/internal.h"
#include "msg/msg_int.h"

static mcl_value *
mcl__msg_root_for_test(mcl_msg *m)
{
    // Setting 60,000 keys one by one looks for an existing key each time (quadratic): append
    // to the root directly, so that the test measures decoding.
    return mcl__msg_root(m);
}

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void
clear_registry(void)
{
    const mcl_msgtype *all[64];
    size_t n = mcl_msgtype_list(all, 64, NULL, 0, NULL, 0);
    for (size_t i = 0; i < n && i < 64; i++)
        MCLT_OK(mcl_msgtype_remove(mcl_msgtype_name(all[i])));
}

static const mcl_field AB[] = {{"A", MCL_TYPE_ANY}, {"B", MCL_TYPE_ANY}};

static void
test_define_errors(void)
{
    clear_registry();
    const mcl_msgtype *t;
    char err[256];
    const mcl_field reserved[] = {{"name", MCL_TYPE_ANY}};
    const mcl_field reserved2[] = {{"timestamp", MCL_TYPE_FLOAT}};
    const mcl_field dup[] = {{"A", MCL_TYPE_ANY}, {"B", MCL_TYPE_ANY}, {"A", MCL_TYPE_INT}};
    const mcl_field empty[] = {{"", MCL_TYPE_ANY}};
    const mcl_field null[] = {{NULL, MCL_TYPE_ANY}};
    const mcl_field badkind[] = {{"A", (mcl_type)99}};
    MCLT_ERR(mcl_msgtype_define(&t, "", AB, 2, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    MCLT_ERR(mcl_msgtype_define(&t, NULL, AB, 2, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    MCLT_ERR(mcl_msgtype_define(&t, "R", reserved, 1, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "reserved"));
    MCLT_ERR(mcl_msgtype_define(&t, "R", reserved2, 1, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    MCLT_ERR(mcl_msgtype_define(&t, "D", dup, 3, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'A' is declared twice"));
    MCLT_ERR(mcl_msgtype_define(&t, "E", empty, 1, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    MCLT_ERR(mcl_msgtype_define(&t, "E", null, 1, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    MCLT_ERR(mcl_msgtype_define(&t, "K", badkind, 1, NULL, NULL, err, sizeof(err)), MCL_EINVAL);
    MCLT_ERR(mcl_msgtype_define(&t, "U", AB, 2, "this::is::invalid", NULL, err, sizeof(err)),
             MCL_EURL);
    CU_ASSERT_EQUAL(mcl_msgtype_list(NULL, 0, NULL, 0, NULL, 0), 0); // nothing was added

    MCLT_OK(mcl_msgtype_define(&t, "A", AB, 2, "udp://239.255.1.1:26000", "imu", NULL, 0));
    CU_ASSERT_STRING_EQUAL(mcl_msgtype_name(t), "A");
    CU_ASSERT_EQUAL(mcl_msgtype_nfields(t), 2);
    CU_ASSERT_STRING_EQUAL(mcl_msgtype_field(t, 1)->name, "B");
    CU_ASSERT_PTR_NULL(mcl_msgtype_field(t, 2));
    CU_ASSERT_STRING_EQUAL(mcl_msgtype_topic(t), "imu");
    CU_ASSERT_STRING_EQUAL(mcl_connection_url(mcl_msgtype_connection(t)), "udp://239.255.1.1:26000");
    // Same name again; another name on an equal connection (written differently).
    MCLT_ERR(mcl_msgtype_define(&t, "A", AB, 2, NULL, NULL, err, sizeof(err)), MCL_EEXIST);
    MCLT_ERR(mcl_msgtype_define(&t, "B", AB, 2, "udp://239.255.1.1?ttl=1", NULL, err, sizeof(err)),
             MCL_EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already uses the connection"));
    clear_registry();
}

static void
test_registry_order_filters_remove(void)
{
    clear_registry();
    const mcl_msgtype *a, *b, *c, *out[8];
    MCLT_OK(mcl_msgtype_define(&a, "A", AB, 2, NULL, NULL, NULL, 0));
    MCLT_OK(mcl_msgtype_define(&b, "B", AB, 2, NULL, NULL, NULL, 0));
    MCLT_OK(mcl_msgtype_define(&c, "C", NULL, 0, NULL, NULL, NULL, 0));
    CU_ASSERT_EQUAL(mcl_msgtype_list(out, 8, NULL, 0, NULL, 0), 3);
    CU_ASSERT(out[0] == a && out[1] == b && out[2] == c);
    const char *inc_a[] = {"A"}, *inc_ab[] = {"A", "B"}, *exc_a[] = {"A"}, *exc_bc[] = {"B", "C"};
    CU_ASSERT_EQUAL(mcl_msgtype_list(out, 8, inc_a, 1, NULL, 0), 1);
    CU_ASSERT(out[0] == a);
    CU_ASSERT_EQUAL(mcl_msgtype_list(out, 8, inc_ab, 2, NULL, 0), 2);
    CU_ASSERT_EQUAL(mcl_msgtype_list(out, 8, NULL, 0, exc_bc, 2), 1);
    CU_ASSERT(out[0] == a);
    CU_ASSERT_EQUAL(mcl_msgtype_list(out, 8, inc_ab, 2, exc_a, 1), 1);
    CU_ASSERT(out[0] == b);
    const mcl_msgtype *f;
    MCLT_OK(mcl_msgtype_find(&f, "B"));
    CU_ASSERT(f == b);
    MCLT_ERR(mcl_msgtype_find(&f, "D"), MCL_ENOENT);
    CU_ASSERT_PTR_NULL(f);
    MCLT_ERR(mcl_msgtype_remove("D"), MCL_ENOENT);
    CU_ASSERT_EQUAL(mcl_msgtype_list(NULL, 0, NULL, 0, NULL, 0), 3);
    MCLT_OK(mcl_msgtype_remove("A"));
    MCLT_OK(mcl_msgtype_remove("B"));
    MCLT_OK(mcl_msgtype_remove("C"));
    CU_ASSERT_EQUAL(mcl_msgtype_list(NULL, 0, NULL, 0, NULL, 0), 0);
    // A removed type stays usable, and its name can be defined again.
    CU_ASSERT_STRING_EQUAL(mcl_msgtype_name(a), "A");
    MCLT_OK(mcl_msgtype_define(&f, "A", NULL, 0, NULL, NULL, NULL, 0));
    CU_ASSERT(f != a);
    clear_registry();
}

static void
test_new_message_and_reserved_keys(void)
{
    clear_registry();
    const mcl_msgtype *t;
    MCLT_OK(mcl_msgtype_define(&t, "UnitTestMessageA", AB, 2, NULL, NULL, NULL, 0));
    double before = (double)mcl__real_ns() / 1e9;
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, t));
    CU_ASSERT_STRING_EQUAL(mcl_msg_name(m), "UnitTestMessageA");
    double ts = mcl_msg_timestamp(m);
    CU_ASSERT(ts >= before - 1 && ts <= before + 5);
    CU_ASSERT_EQUAL(mcl_value_type(mcl_msg_get(m, "A")), MCL_TYPE_NIL);
    CU_ASSERT_PTR_NOT_NULL(mcl_msg_get(m, "B"));
    CU_ASSERT_EQUAL(mcl_value_count(mcl_msg_fields(m)), 4);
    // "name" is read-only.
    MCLT_ERR(mcl_msg_set_str(m, "name", "Other"), MCL_EREADONLY);
    MCLT_ERR(mcl_msg_set_nil(m, "name"), MCL_EREADONLY);
    MCLT_ERR(mcl_msg_remove(m, "name"), MCL_EREADONLY);
    mcl_msg *other;
    MCLT_OK(mcl_msg_new(&other, NULL));
    CU_ASSERT_PTR_NULL(mcl_msg_name(other));
    MCLT_ERR(mcl_msg_set_int(other, "name", 5), MCL_ETYPE);
    MCLT_OK(mcl_msg_set_str(other, "name", "Other"));
    MCLT_ERR(mcl_msg_update(m, other), MCL_EREADONLY);
    CU_ASSERT_STRING_EQUAL(mcl_msg_name(m), "UnitTestMessageA");
    mcl_msg_free(other);
    // Setting a field does not touch the timestamp; update does (unless it brings one).
    MCLT_OK(mcl_msg_set_double(m, "timestamp", 1.5));
    MCLT_OK(mcl_msg_set_int(m, "A", 1));
    CU_ASSERT_EQUAL(mcl_msg_timestamp(m), 1.5);
    mcl_msg *u;
    MCLT_OK(mcl_msg_new(&u, NULL));
    MCLT_OK(mcl_msg_remove(u, "timestamp"));
    MCLT_OK(mcl_msg_set_int(u, "B", 2));
    MCLT_OK(mcl_msg_set_str(u, "extra", "kept"));
    MCLT_OK(mcl_msg_update(m, u));
    CU_ASSERT(mcl_msg_timestamp(m) >= ts);
    int64_t i;
    MCLT_OK(mcl_msg_get_int(m, "B", &i));
    CU_ASSERT_EQUAL(i, 2);
    const char *s;
    MCLT_OK(mcl_msg_get_str(m, "extra", &s, NULL));
    CU_ASSERT_STRING_EQUAL(s, "kept");
    MCLT_OK(mcl_msg_set_double(u, "timestamp", 0)); // an update may set an explicit timestamp
    MCLT_OK(mcl_msg_update(m, u));
    CU_ASSERT_EQUAL(mcl_msg_timestamp(m), 0);
    mcl_msg_free(u);
    // Typed reads report absence and kind.
    MCLT_ERR(mcl_msg_get_int(m, "missing", &i), MCL_ENOENT);
    MCLT_ERR(mcl_msg_get_str(m, "B", &s, NULL), MCL_ETYPE);
    double d;
    MCLT_OK(mcl_msg_get_double(m, "B", &d)); // integers read as doubles
    CU_ASSERT_EQUAL(d, 2.0);
    mcl_msg_free(m);
    clear_registry();
}

// Builds a message holding every kind of value, nested.
static mcl_msg *
every_kind(void)
{
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, NULL));
    MCLT_OK(mcl_msg_set_str(m, "name", "Every"));
    MCLT_OK(mcl_msg_set_nil(m, "nil"));
    MCLT_OK(mcl_msg_set_bool(m, "t", true));
    MCLT_OK(mcl_msg_set_bool(m, "f", false));
    MCLT_OK(mcl_msg_set_int(m, "neg", -5));
    MCLT_OK(mcl_msg_set_int(m, "min", INT64_MIN));
    MCLT_OK(mcl_msg_set_uint(m, "max", UINT64_MAX));
    MCLT_OK(mcl_msg_set_int(m, "zero", 0));
    MCLT_OK(mcl_msg_set_double(m, "pi", 3.141592653589793));
    MCLT_OK(mcl_msg_set_double(m, "tiny", 5e-324));
    MCLT_OK(mcl_msg_set_str(m, "text", "h\xc3\xa9llo"));
    MCLT_OK(mcl_msg_set_strn(m, "nul", "a\0b", 3));
    MCLT_OK(mcl_msg_set_bin(m, "bin", "\x00\xff\x10", 3));
    MCLT_OK(mcl_msg_set_bin(m, "empty", NULL, 0));
    mcl_value *arr, *inner, *map;
    MCLT_OK(mcl_msg_set_array(m, "arr", &arr));
    MCLT_OK(mcl_value_push_int(arr, 1));
    MCLT_OK(mcl_value_push_str(arr, "two"));
    MCLT_OK(mcl_value_push_array(arr, &inner));
    MCLT_OK(mcl_value_push_double(inner, 3.5));
    MCLT_OK(mcl_value_push_nil(inner));
    MCLT_OK(mcl_value_push_map(arr, &map));
    MCLT_OK(mcl_value_put_bool(map, "deep", true));
    MCLT_OK(mcl_value_put_bin(map, "raw", "xyz", 3));
    MCLT_OK(mcl_msg_set_map(m, "map", &map));
    MCLT_OK(mcl_value_put_uint(map, "u", 7));
    MCLT_OK(mcl_value_put_array(map, "list", &inner));
    MCLT_OK(mcl_value_push_bool(inner, false));
    return m;
}

static void
test_msgpack_roundtrip_every_kind(void)
{
    mcl_msg *m = every_kind(), *d;
    void *buf;
    size_t len;
    MCLT_OK(mcl_msg_encode(m, &buf, &len));
    CU_ASSERT(len > 50);
    MCLT_OK(mcl_msg_decode(&d, buf, len, NULL, NULL, 0));
    CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(d)));
    CU_ASSERT_EQUAL(mcl_msg_timestamp(m), mcl_msg_timestamp(d)); // bit-identical
    uint64_t u;
    MCLT_OK(mcl_msg_get_uint(d, "max", &u));
    CU_ASSERT_EQUAL(u, UINT64_MAX);
    int64_t i;
    MCLT_ERR(mcl_msg_get_int(d, "max", &i), MCL_ERANGE);
    MCLT_ERR(mcl_msg_get_uint(d, "neg", &u), MCL_ERANGE);
    MCLT_OK(mcl_msg_get_int(d, "min", &i));
    CU_ASSERT_EQUAL(i, INT64_MIN);
    const char *s;
    size_t sl;
    MCLT_OK(mcl_msg_get_str(d, "nul", &s, &sl));
    CU_ASSERT_EQUAL(sl, 3);
    CU_ASSERT(memcmp(s, "a\0b", 3) == 0);
    const void *b;
    MCLT_OK(mcl_msg_get_bin(d, "bin", &b, &sl));
    CU_ASSERT_EQUAL(sl, 3);
    const mcl_value *arr = mcl_msg_get(d, "arr");
    CU_ASSERT_EQUAL(mcl_value_count(arr), 4);
    const mcl_value *deep = mcl_value_find(mcl_value_item(arr, 3), "deep");
    bool bv = false;
    MCLT_OK(mcl_value_get_bool(deep, &bv));
    CU_ASSERT(bv);
    // Field order is kept.
    const char *k;
    mcl_value_entry(mcl_msg_fields(d), 0, &k);
    CU_ASSERT_STRING_EQUAL(k, "timestamp");
    mcl_value_entry(mcl_msg_fields(d), 1, &k);
    CU_ASSERT_STRING_EQUAL(k, "name");
    // A copy is equal and independent.
    mcl_msg *c;
    MCLT_OK(mcl_msg_dup(&c, d));
    MCLT_OK(mcl_msg_set_int(c, "neg", 6));
    CU_ASSERT_FALSE(mcl_value_equal(mcl_msg_fields(c), mcl_msg_fields(d)));
    mcl_msg_free(c);
    mcl_free(buf);
    mcl_msg_free(d);
    mcl_msg_free(m);
}

static size_t
unhex(const char *h, uint8_t *out)
{
    size_t n = strlen(h) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void
test_python_mcl_payloads(void)
{
    // Two records of ACFR's sample logs (UnitTestMessageA.log, UnitTestMessageB.log), written by
    // Python MCL with msgpack-python 0.4: strings in the raw family, float64 values.
    clear_registry();
    const mcl_field data[] = {{"data", MCL_TYPE_FLOAT}};
    const mcl_msgtype *ta;
    MCLT_OK(mcl_msgtype_define(&ta, "UnitTestMessageA", data, 1, NULL, NULL, NULL, 0));
    uint8_t b[128];
    size_t n = unhex("83a974696d657374616d70cb3fb47ae147ae147ba464617461cb3fb47ae147ae147ba46e61"
                     "6d65b0556e6974546573744d65737361676541",
                     b);
    mcl_msg *m;
    MCLT_OK(mcl_msg_decode(&m, b, n, ta, NULL, 0));
    CU_ASSERT_STRING_EQUAL(mcl_msg_name(m), "UnitTestMessageA");
    CU_ASSERT_DOUBLE_EQUAL(mcl_msg_timestamp(m), 0.08, 1e-12);
    double d;
    MCLT_OK(mcl_msg_get_double(m, "data", &d));
    CU_ASSERT_DOUBLE_EQUAL(d, 0.08, 1e-12);
    MCLT_OK(mcl_msg_check(m, ta, NULL, 0));
    // Re-encoding gives the same bytes (same key order and encodings).
    void *enc;
    size_t elen;
    MCLT_OK(mcl_msg_encode(m, &enc, &elen));
    CU_ASSERT_EQUAL(elen, n);
    CU_ASSERT(memcmp(enc, b, n) == 0);
    mcl_free(enc);
    mcl_msg_free(m);
    n = unhex("83a974696d657374616d70cb3fc999999999999aa464617461cb3fc999999999999aa46e616d65b055"
              "6e6974546573744d65737361676542",
              b);
    MCLT_OK(mcl_msg_decode(&m, b, n, NULL, NULL, 0));
    CU_ASSERT_STRING_EQUAL(mcl_msg_name(m), "UnitTestMessageB");
    char err[200];
    MCLT_ERR(mcl_msg_check(m, ta, err, sizeof(err)), MCL_ETYPE); // a B is not an A
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a 'UnitTestMessageA'"));
    mcl_msg_free(m);
    clear_registry();
}

static void
test_decode_errors(void)
{
    clear_registry();
    const mcl_msgtype *t;
    MCLT_OK(mcl_msgtype_define(&t, "T", AB, 2, NULL, NULL, NULL, 0));
    mcl_msg *m = (mcl_msg *)(uintptr_t)1;
    char err[256];
    static const uint8_t array[] = {0x92, 0x01, 0x02};
    MCLT_ERR(mcl_msg_decode(&m, array, sizeof(array), NULL, err, sizeof(err)), MCL_ENOTMAP);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "array"));
    static const uint8_t only_a[] = {0x81, 0xa1, 'A', 0x01};
    MCLT_OK(mcl_msg_decode(&m, only_a, sizeof(only_a), NULL, NULL, 0));
    mcl_msg_free(m);
    MCLT_ERR(mcl_msg_decode(&m, only_a, sizeof(only_a), t, err, sizeof(err)), MCL_EMISSING);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "B"));
    struct {
        const char *what;
        uint8_t b[16];
        size_t n;
    } bad[] = {
        {"empty", {0}, 0},
        {"reserved byte c1", {0xc1}, 1},
        {"truncated map", {0x82, 0xa1, 'A'}, 3},
        {"truncated str", {0x81, 0xa5, 'A'}, 3},
        {"trailing byte", {0x80, 0x00}, 2},
        {"array32 of 4G items", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5},
        {"map32 of 4G entries", {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01}, 6},
        {"str32 of 4 GB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
        {"integer key", {0x81, 0x01, 0x02}, 3},
        {"ext type", {0x81, 0xa1, 'e', 0xd4, 0x01, 0x02}, 6},
        {"NUL in key", {0x81, 0xa2, 'a', 0x00, 0x01}, 5},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mcl_err rv = mcl_msg_decode(&m, bad[i].b, bad[i].n, NULL, NULL, 0);
        if (rv != MCL_EDECODE)
            fprintf(stderr, "\n  %s: %s\n", bad[i].what, mcl_err_name(rv));
        CU_ASSERT_EQUAL(rv, MCL_EDECODE);
        CU_ASSERT_PTR_NULL(m);
    }
    // Nesting deeper than 32 levels is refused (no unbounded recursion).
    uint8_t deep[200];
    size_t n = 0;
    deep[n++] = 0x81;
    deep[n++] = 0xa1;
    deep[n++] = 'k';
    for (int i = 0; i < 100; i++)
        deep[n++] = 0x91;
    deep[n++] = 0xc0;
    MCLT_ERR(mcl_msg_decode(&m, deep, n, NULL, NULL, 0), MCL_EDECODE);
    // Random bytes never crash and never decode into a non-map.
    uint64_t seed = 3;
    uint8_t r[64];
    for (int k = 0; k < 100000; k++) {
        size_t len = (size_t)(mclt_rand(&seed) % sizeof(r));
        for (size_t i = 0; i < len; i++)
            r[i] = (uint8_t)mclt_rand(&seed);
        if (k % 2 && len > 0)
            r[0] = (uint8_t)(0x80 | (r[0] & 0x0f)); // a fixmap header
        mcl_err rv = mcl_msg_decode(&m, r, len, NULL, NULL, 0);
        CU_ASSERT(rv == MCL_OK || rv == MCL_EDECODE || rv == MCL_ENOTMAP);
        if (rv == MCL_OK)
            CU_ASSERT_EQUAL(mcl_value_type(mcl_msg_fields(m)), MCL_TYPE_MAP);
        mcl_msg_free(m);
    }
    clear_registry();
}

static void
test_check_kinds(void)
{
    clear_registry();
    const mcl_field f[] = {{"x", MCL_TYPE_FLOAT}, {"n", MCL_TYPE_INT}, {"s", MCL_TYPE_STR},
                           {"any", MCL_TYPE_ANY}};
    const mcl_msgtype *t;
    MCLT_OK(mcl_msgtype_define(&t, "Kinds", f, 4, NULL, NULL, NULL, 0));
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, t));
    MCLT_OK(mcl_msg_check(m, t, NULL, 0)); // nil means "not set yet"
    MCLT_OK(mcl_msg_set_int(m, "x", 3)); // an integer where a float is declared
    MCLT_OK(mcl_msg_set_int(m, "n", 3));
    MCLT_OK(mcl_msg_set_str(m, "s", "ok"));
    MCLT_OK(mcl_msg_set_bin(m, "any", "b", 1));
    MCLT_OK(mcl_msg_check(m, t, NULL, 0));
    char err[200];
    MCLT_OK(mcl_msg_set_double(m, "n", 3.5));
    MCLT_ERR(mcl_msg_check(m, t, err, sizeof(err)), MCL_ETYPE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'n' holds float, declared int"));
    MCLT_OK(mcl_msg_set_int(m, "n", 3));
    MCLT_OK(mcl_msg_remove(m, "s"));
    MCLT_ERR(mcl_msg_check(m, t, err, sizeof(err)), MCL_EMISSING);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "s"));
    mcl_msg_free(m);
    clear_registry();
}

static void
test_value_misuse(void)
{
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, NULL));
    mcl_value *arr;
    MCLT_OK(mcl_msg_set_array(m, "a", &arr));
    MCLT_ERR(mcl_value_put_int(arr, "k", 1), MCL_EINVAL); // not a map
    MCLT_ERR(mcl_value_push_int(NULL, 1), MCL_EINVAL);
    MCLT_ERR(mcl_value_push_str(arr, NULL), MCL_EINVAL);
    MCLT_ERR(mcl_msg_set_str(m, NULL, "x"), MCL_EINVAL);
    bool b;
    MCLT_ERR(mcl_value_get_bool(arr, &b), MCL_ETYPE);
    CU_ASSERT_PTR_NULL(mcl_value_item(arr, 0));
    CU_ASSERT_EQUAL(mcl_value_type(NULL), MCL_TYPE_NIL);
    CU_ASSERT_STRING_EQUAL(mcl_type_name(MCL_TYPE_BIN), "bin");
    // Replacing a key keeps its position.
    MCLT_OK(mcl_msg_set_int(m, "z", 1));
    MCLT_OK(mcl_msg_set_str(m, "a", "now a string"));
    const char *k;
    mcl_value_entry(mcl_msg_fields(m), 1, &k);
    CU_ASSERT_STRING_EQUAL(k, "a");
    mcl_msg_free(m);
    mcl_msg_free(NULL);
}

// --- JSON --------------------------------------------------------------------------------------

static void
test_json_roundtrip_and_tags(void)
{
    mcl_msg *m = every_kind(), *back;
    MCLT_OK(mcl_msg_set_double(m, "nan", NAN));
    MCLT_OK(mcl_msg_set_double(m, "inf", -INFINITY));
    MCLT_OK(mcl_msg_set_str(m, "latin1", "caf\xe9")); // not UTF-8
    mcl_value *fake;
    MCLT_OK(mcl_msg_set_map(m, "looks_like_tag", &fake));
    MCLT_OK(mcl_value_put_int(fake, "$bin", 5));
    char *json;
    MCLT_OK(mcl_msg_to_json(m, MCL_JSON_COMPACT, &json));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"max\":{\"$uint\":\"18446744073709551615\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"bin\":{\"$bin\":\"AP8Q\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"empty\":{\"$bin\":\"\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"nan\":{\"$float\":\"nan\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"inf\":{\"$float\":\"-inf\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"latin1\":{\"$str\":\"Y2Fm6Q==\"}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"looks_like_tag\":{\"$map\":{\"$bin\":5}}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"text\":\"h\xc3\xa9llo\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"nul\":\"a\\u0000b\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"min\":-9223372036854775808"));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"pi\":3.141592653589793"));
    CU_ASSERT(strchr(json, '\n') == NULL);
    MCLT_OK(mcl_msg_from_json(&back, json, strlen(json), NULL, 0));
    CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(back)));
    mcl_free(json);
    MCLT_OK(mcl_msg_to_json(m, MCL_JSON_INDENT | MCL_JSON_SORT, &json));
    CU_ASSERT(strchr(json, '\n') != NULL);
    mcl_free(json);
    mcl_msg_free(back);
    mcl_msg_free(m);
}

// Map keys that are not UTF-8 become '?' in JSON, and keys that collapse alike get their own
// "?N" suffixes: no value vanishes.
static void
test_json_keys_not_utf8(void)
{
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_int(v, "\xff", 1));
    MCLT_OK(mcl_value_put_int(v, "\xfe", 2));
    MCLT_OK(mcl_value_put_int(v, "??1", 3)); // (already the name the second would get)
    MCLT_OK(mcl_value_put_int(v, "\xfd", 4));
    char *json;
    MCLT_OK(mcl_value_to_json(v, MCL_JSON_COMPACT, &json));
    mcl_value *back;
    MCLT_OK(mcl_value_from_json(&back, json, strlen(json), NULL, 0));
    CU_ASSERT_EQUAL(mcl_value_count(back), 4);
    int64_t sum = 0;
    for (size_t i = 0; i < mcl_value_count(back); i++) {
        int64_t x = 0;
        mcl_value_get_int(mcl_value_entry(back, i, NULL), &x);
        sum += x;
    }
    CU_ASSERT_EQUAL(sum, 1 + 2 + 3 + 4);
    mcl_free(json);
    mcl_value_free(back);
    mcl_value_free(v);
}

static void
test_json_errors(void)
{
    mcl_msg *m;
    char err[256];
    const char *t1 = "{\"a\": 1,\n \"b\": }";
    MCLT_ERR(mcl_msg_from_json(&m, t1, strlen(t1), err, sizeof(err)), MCL_EDECODE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 2"));
    CU_ASSERT_PTR_NULL(m);
    MCLT_ERR(mcl_msg_from_json(&m, "[1,2]", 5, err, sizeof(err)), MCL_ENOTMAP);
    MCLT_ERR(mcl_msg_from_json(&m, "42", 2, err, sizeof(err)), MCL_ENOTMAP);
    MCLT_ERR(mcl_msg_from_json(&m, "{\"$bin\":\"AA==\"}", 15, err, sizeof(err)), MCL_ENOTMAP);
    const char *dup = "{\"a\":1,\"a\":2}";
    MCLT_ERR(mcl_msg_from_json(&m, dup, strlen(dup), err, sizeof(err)), MCL_EDECODE);
    const char *badtags[] = {"{\"x\":{\"$bin\":\"!!!!\"}}", "{\"x\":{\"$bin\":5}}",
                             "{\"x\":{\"$float\":\"huge\"}}", "{\"x\":{\"$uint\":\"-1\"}}",
                             "{\"x\":{\"$uint\":\"18446744073709551616\"}}",
                             "{\"x\":{\"$map\":[]}}", "{\"x\":{\"$bin\":\"QR==\"}}",
                             "{\"x\":{\"$bin\":\"QUF=\"}}"}; // (padding bits not 0)
    for (size_t i = 0; i < sizeof(badtags) / sizeof(badtags[0]); i++)
        MCLT_ERR(mcl_msg_from_json(&m, badtags[i], strlen(badtags[i]), err, sizeof(err)),
                 MCL_EDECODE);
    // A two-key object is an ordinary map even if a key looks like a tag.
    const char *two = "{\"x\":{\"$bin\":1,\"y\":2}}";
    MCLT_OK(mcl_msg_from_json(&m, two, strlen(two), NULL, 0));
    CU_ASSERT_EQUAL(mcl_value_count(mcl_msg_get(m, "x")), 2);
    mcl_msg_free(m);
    // JSON from_json adds nothing: no timestamp appears.
    MCLT_OK(mcl_msg_from_json(&m, "{}", 2, NULL, 0));
    CU_ASSERT(isnan(mcl_msg_timestamp(m)));
    mcl_msg_free(m);
}

static void
test_nesting_limit_and_duplicates(void)
{
    // 32 nested containers (the top map included) go through msgpack and JSON; 33 never do.
    for (int levels = 32; levels <= 33; levels++) {
        mcl_msg *m;
        MCLT_OK(mcl_msg_new(&m, NULL));
        mcl_value *v;
        MCLT_OK(mcl_msg_set_array(m, "a", &v));
        for (int i = 2; i < levels; i++)
            MCLT_OK(mcl_value_push_array(v, &v));
        void *buf = NULL;
        size_t len = 0;
        char *json = NULL;
        if (levels == 32) {
            MCLT_OK(mcl_msg_encode(m, &buf, &len));
            mcl_msg *d;
            MCLT_OK(mcl_msg_decode(&d, buf, len, NULL, NULL, 0));
            CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(d)));
            mcl_msg_free(d);
            MCLT_OK(mcl_msg_to_json(m, 0, &json));
            MCLT_OK(mcl_msg_from_json(&d, json, strlen(json), NULL, 0));
            mcl_msg_free(d);
            // One level more, written by hand, is refused by both decoders.
            uint8_t *deeper = malloc(len + 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(deeper);
            size_t at = len - 1; // the innermost empty array (0x90) becomes [[]]
            memcpy(deeper, buf, len);
            CU_ASSERT_EQUAL(deeper[at], 0x90);
            deeper[at] = 0x91;
            deeper[len] = 0x90;
            MCLT_ERR(mcl_msg_decode(&d, deeper, len + 1, NULL, NULL, 0), MCL_EDECODE);
            free(deeper);
            char *j2 = malloc(strlen(json) + 3);
            CU_ASSERT_PTR_NOT_NULL_FATAL(j2);
            char *inner = strstr(json, "[]");
            CU_ASSERT_PTR_NOT_NULL_FATAL(inner);
            size_t pre = (size_t)(inner - json);
            memcpy(j2, json, pre);
            strcpy(j2 + pre, "[[]]");
            strcat(j2, inner + 2);
            MCLT_ERR(mcl_msg_from_json(&d, j2, strlen(j2), NULL, 0), MCL_EDECODE);
            free(j2);
            mcl_free(json);
            mcl_free(buf);
        } else {
            MCLT_ERR(mcl_msg_encode(m, &buf, &len), MCL_ERANGE);
            CU_ASSERT_PTR_NULL(buf);
        }
        mcl_msg_free(m);
    }
    // A msgpack map with a repeated key is not a message.
    static const uint8_t dup[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};
    mcl_msg *d;
    MCLT_ERR(mcl_msg_decode(&d, dup, sizeof(dup), NULL, NULL, 0), MCL_EDECODE);
}

static void
test_big_map_decodes(void)
{
    // 60,000 fields: decoded in n log n (a linear search per key took seconds).
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, NULL));
    char key[32];
    for (int i = 0; i < 60000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        mcl_value *iv = mcl__val_new(MCL_TYPE_FLOAT); // (small ints: beyond the budget)
        CU_ASSERT_PTR_NOT_NULL_FATAL(iv);
        iv->d = i;
        MCLT_OK(mcl__val_append(mcl__msg_root_for_test(m), key, strlen(key), iv));
    }
    void *buf;
    size_t len;
    MCLT_OK(mcl_msg_encode(m, &buf, &len));
    mcl_msg *d;
    int64_t t0 = mclt_now_ms();
    MCLT_OK(mcl_msg_decode(&d, buf, len, NULL, NULL, 0));
    fprintf(stderr, "(%lld ms) ", (long long)(mclt_now_ms() - t0));
    double v;
    MCLT_OK(mcl_msg_get_double(d, "k59999", &v));
    CU_ASSERT_EQUAL(v, 59999);
    CU_ASSERT_EQUAL(mcl_value_count(mcl_msg_fields(d)), 60001);
    mcl_free(buf);
    mcl_msg_free(d);
    mcl_msg_free(m);
}


// --- bounded decoding (issue 18) -------------------------------------------------------------

// The process's peak resident memory since the last peak_reset(), in bytes above what was
// resident then; -1 where Linux cannot reset the peak (then the memory checks are skipped).
static long long rss_base = -1;

static long long
status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long long kb = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kb = strtoll(line + n + 1, NULL, 10);
    fclose(f);
    return kb;
}

static void
peak_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    rss_base = -1;
    if (f == NULL)
        return;
    bool ok = fputs("5", f) >= 0; // 5: reset the peak resident set size (VmHWM) to now
    ok = fclose(f) == 0 && ok;
    if (ok)
        rss_base = status_kb("VmRSS");
}

static long long
peak_growth(void)
{
    long long hwm = status_kb("VmHWM");
    return rss_base < 0 || hwm < 0 ? -1 : (hwm - rss_base) * 1024;
}

#if defined(__SANITIZE_ADDRESS__)
#define MEM_SLOP 4 // ASan's redzones and quarantine: real memory is a few times glibc's
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_SLOP 4
#endif
#endif
#ifndef MEM_SLOP
#define MEM_SLOP 1
#endif

// A message {"name": "Nil", "data": [n elements, each the `elem` bytes]} in msgpack.
static uint8_t *
array_msg(uint32_t n, const uint8_t *elem, size_t elen, size_t *lenp)
{
    static const uint8_t head[] = {0x82, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'N', 'i', 'l',
                                   0xa4, 'd', 'a', 't', 'a', 0xdd};
    size_t len = sizeof(head) + 4 + (size_t)n * elen;
    uint8_t *b = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    memcpy(b, head, sizeof(head));
    mcl__put_be32(b + sizeof(head), n);
    for (size_t i = 0; i < n; i++)
        memcpy(b + sizeof(head) + 4 + i * elen, elem, elen);
    *lenp = len;
    return b;
}

static void
test_decode_budget_nil_array(void)
{
    // 4 MiB of nils: a valid message whose tree would take 56 bytes per byte (~235 MB) is
    // refused, before anything is allocated, with a text that names the budget.
    static const uint8_t nil = 0xc0;
    size_t len;
    uint8_t *b = array_msg(4u << 20, &nil, 1, &len);
    mcl_msg *m = NULL;
    char err[256] = "";
    peak_reset();
    mcl__alloc_fail_after(0); // the decoder's first allocation would fail: it makes none
    mcl_err rv = mcl_msg_decode(&m, b, len, NULL, err, sizeof(err));
    mcl__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(rv, MCL_EDECODE);
    CU_ASSERT_PTR_NULL(m);
    mcl_msg_free(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "budget of 8 x"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "MCL_DECODE_MEM_FACTOR"));
    mcl_value *v = NULL;
    peak_reset();
    rv = mcl_value_decode(&v, b, len, err, sizeof(err));
    long long grew = peak_growth();
    CU_ASSERT_EQUAL(rv, MCL_EDECODE);
    mcl_value_free(v);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "budget"));
    if (grew >= 0) {
        fprintf(stderr, "(peak +%lld KiB) ", grew / 1024);
        CU_ASSERT(grew < 8 << 20);
    }
    free(b);

    // What the budget allows: 200,000 nils (56 B each: 11.2 MB, under 8 x 200 KB + 16 MiB)
    // decode; 400,000 (22.4 MB, over 8 x 400 KB + 16 MiB) do not.
    b = array_msg(200000, &nil, 1, &len);
    MCLT_OK(mcl_msg_decode(&m, b, len, NULL, err, sizeof(err)));
    CU_ASSERT_EQUAL(mcl_value_count(mcl_msg_get(m, "data")), 200000);
    mcl_msg_free(m);
    free(b);
    b = array_msg(400000, &nil, 1, &len);
    MCLT_ERR(mcl_msg_decode(&m, b, len, NULL, err, sizeof(err)), MCL_EDECODE);
    free(b);

    // ... and the encoder will not make what no one can decode.
    MCLT_OK(mcl_msg_new(&m, NULL));
    mcl_value *arr;
    MCLT_OK(mcl_msg_set_array(m, "data", &arr));
    for (int i = 0; i < 400000; i++)
        MCLT_OK(mcl_value_push_nil(arr));
    void *enc = (void *)1;
    MCLT_ERR(mcl_msg_encode(m, &enc, &len), MCL_EMSGSIZE);
    CU_ASSERT_PTR_NULL(enc);
    mcl_msg_free(m);
}

static void
test_decode_budget_legal_payload(void)
{
    // 2 MiB of doubles (233,016 of them, 9 bytes each, 56 B of tree each: 6.2x) decode, and
    // the peak memory stays in the budget (ASan's allocator gets some slop).
    uint8_t dbl[9] = {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}; // 1.5
    size_t len;
    uint8_t *b = array_msg((2u << 20) / 9, dbl, sizeof(dbl), &len);
    mcl_msg *m = NULL;
    char err[256] = "";
    peak_reset();
    mcl_err rv = mcl_msg_decode(&m, b, len, NULL, err, sizeof(err));
    long long grew = peak_growth();
    MCLT_OK(rv);
    const mcl_value *data = mcl_msg_get(m, "data");
    CU_ASSERT_EQUAL(mcl_value_count(data), (2u << 20) / 9);
    double d = 0;
    MCLT_OK(mcl_value_get_double(mcl_value_item(data, 1000), &d));
    CU_ASSERT_EQUAL(d, 1.5);
    // The accounting says what the tree takes, within its budget.
    mcl__dcost c;
    mcl__val_measure(mcl_msg_fields(m), &c);
    CU_ASSERT_EQUAL(c.packed, len);
    CU_ASSERT(c.bytes <= mcl__decode_budget(len));
    CU_ASSERT(c.bytes >= 56ull * ((2u << 20) / 9));
    if (grew >= 0) {
        fprintf(stderr, "(peak +%lld KiB, counted %llu KiB) ", grew / 1024,
                (unsigned long long)c.bytes / 1024);
        CU_ASSERT(grew <= (long long)mcl__decode_budget(len) * MEM_SLOP);
    }
    // It encodes back to the same bytes.
    void *enc;
    size_t elen;
    MCLT_OK(mcl_msg_encode(m, &enc, &elen));
    CU_ASSERT(elen == len && memcmp(enc, b, len) == 0);
    mcl_free(enc);
    mcl_msg_free(m);
    free(b);
}

static void
test_decode_value_cap(void)
{
    // Doubles are within the memory budget; the count of values is capped anyway: the top map,
    // "name", its string, "data", and MCL_DECODE_MAX_VALUES - 3 doubles is one too many.
    uint8_t dbl[9] = {0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0}; // 2.0
    uint32_t most = MCL_DECODE_MAX_VALUES - 3; // the top, "Nil" and the array are values too
    size_t len;
    uint8_t *b = array_msg(most + 1, dbl, sizeof(dbl), &len);
    mcl_msg *m = NULL;
    char err[256] = "";
    mcl__alloc_fail_after(0);
    mcl_err rv = mcl_msg_decode(&m, b, len, NULL, err, sizeof(err));
    mcl__alloc_fail_after(-1);
    CU_ASSERT_EQUAL(rv, MCL_EDECODE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 1048576 values"));
    free(b);
    b = array_msg(most, dbl, sizeof(dbl), &len);
    MCLT_OK(mcl_msg_decode(&m, b, len, NULL, err, sizeof(err)));
    CU_ASSERT_EQUAL(mcl_value_count(mcl_msg_get(m, "data")), most);
    // One more value cannot be encoded either.
    mcl_value *data = (mcl_value *)(uintptr_t)mcl_msg_get(m, "data");
    MCLT_OK(mcl_value_push_double(data, 1.0));
    void *enc = NULL;
    MCLT_ERR(mcl_msg_encode(m, &enc, &len), MCL_EMSGSIZE);
    mcl_msg_free(m);
    free(b);
}

static void
test_json_bomb_bounded(void)
{
    // 2 million nulls (10 MB of text): refused by counting, before jansson builds anything.
    size_t n = 2000000;
    size_t len = 6 + 5 * n + 1; // {"a":[null,...,null]}
    char *t = malloc(len + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    memcpy(t, "{\"a\":[", 6);
    for (size_t i = 0; i < n; i++)
        memcpy(t + 6 + 5 * i, "null,", 5);
    memcpy(t + len - 2, "]}", 3);
    mcl_msg *m = NULL;
    char err[256] = "";
    peak_reset();
    mcl_err rv = mcl_msg_from_json(&m, t, len, err, sizeof(err));
    long long grew = peak_growth();
    CU_ASSERT_EQUAL(rv, MCL_EDECODE);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 1048576 values"));
    if (grew >= 0) {
        fprintf(stderr, "(peak +%lld KiB) ", grew / 1024);
        CU_ASSERT(grew < 8 << 20);
    }
    // Under the cap but over the budget: 400,000 zeros read as a tree of 22.4 MB, more than
    // their msgpack's budget (8 x 400 KB + 16 MiB): refused too, as a receiver would.
    n = 400000;
    len = 6 + 2 * n + 1; // {"a":[0,0,...,0]}
    for (size_t i = 0; i < n; i++)
        memcpy(t + 6 + 2 * i, "0,", 2);
    memcpy(t + len - 2, "]}", 3);
    MCLT_ERR(mcl_msg_from_json(&m, t, len, err, sizeof(err)), MCL_EDECODE);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "budget"));
    free(t);
    // Tagged values count once: a JSON message is read as the values it holds.
    static const char tagged[] = "{\"b\":{\"$bin\":\"AAE=\"},\"m\":{\"$map\":{\"$uint\":1}},"
                                 "\"u\":{\"$uint\":\"18446744073709551615\"}}";
    MCLT_OK(mcl_msg_from_json(&m, tagged, strlen(tagged), err, sizeof(err)));
    mcl__dcost c;
    mcl__val_measure(mcl_msg_fields(m), &c);
    CU_ASSERT_EQUAL(c.values, 5); // the map, the bin, the map in $map, its 1, the uint
    mcl_msg_free(m);
}


// mcl_value_scan_map(): the scalars of a few top-level keys without a tree, accepting what
// mcl_value_decode() accepts (both the fast path of flat maps and the general one).
// Whether a fixmap of fixstr keys and the scalar kinds of test_scan_map() repeats a key.
static bool
top_key_repeats(const uint8_t *b, size_t len)
{
    const uint8_t *key[16];
    size_t klen[16], off = 1, n;
    if (len == 0 || (b[0] & 0xf0) != 0x80)
        return false;
    n = b[0] & 0x0f;
    for (size_t e = 0; e < n; e++) {
        if (off >= len || (b[off] & 0xe0) != 0xa0)
            return false;
        klen[e] = b[off] & 0x1f;
        key[e] = b + off + 1;
        off += 1 + klen[e];
        if (off >= len)
            return false;
        uint8_t c = b[off++];
        static const struct { uint8_t c, w; } w[] = {{0xcb, 8}, {0xca, 4}, {0xd1, 2},
            {0xcf, 8}, {0xce, 4}, {0xc4, 0}, {0xc0, 0}, {0xc2, 0}, {0xc3, 0}};
        size_t take = 0;
        if ((c & 0xe0) == 0xa0)
            take = c & 0x1f;
        else if (c == 0xc4 && off < len)
            take = 1 + (size_t)b[off];
        else if (c > 0x7f && c < 0xe0) {
            size_t i = 0;
            while (i < sizeof w / sizeof w[0] && w[i].c != c)
                i++;
            if (i == sizeof w / sizeof w[0])
                return false;
            take = w[i].w;
        }
        off += take;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (klen[i] == klen[j] && memcmp(key[i], key[j], klen[i]) == 0)
                return true;
    return false;
}

static void
scan_agrees(const uint8_t *b, size_t len, const char *const *keys, size_t nkeys)
{
    mcl_scalar out[8];
    mcl_value *v = NULL;
    mcl_err dv = mcl_value_decode(&v, b, len, NULL, 0);
    mcl_err sv = mcl_value_scan_map(b, len, keys, nkeys, out);
    if (dv != MCL_OK) {
        // (the one documented difference: a repeated key that was not asked for)
        CU_ASSERT(sv == MCL_EDECODE || (sv == MCL_OK && top_key_repeats(b, len)));
    } else if (mcl_value_type(v) != MCL_TYPE_MAP) {
        CU_ASSERT_EQUAL(sv, MCL_ENOTMAP);
    } else {
        CU_ASSERT_EQUAL(sv, MCL_OK);
    }
    for (size_t k = 0; k < nkeys && (dv == MCL_OK || sv != MCL_OK); k++) {
        const mcl_value *f = sv == MCL_OK ? mcl_value_find(v, keys[k]) : NULL;
        if (f == NULL) {
            CU_ASSERT_EQUAL(out[k].type, MCL_TYPE_ANY);
            continue;
        }
        CU_ASSERT_EQUAL(out[k].type, mcl_value_type(f));
        int64_t i;
        uint64_t u;
        double d;
        bool bo;
        const char *str;
        const void *bin;
        size_t n;
        switch (mcl_value_type(f)) {
        case MCL_TYPE_BOOL:
            mcl_value_get_bool(f, &bo);
            CU_ASSERT_EQUAL(out[k].b, bo);
            break;
        case MCL_TYPE_INT:
            CU_ASSERT_EQUAL(out[k].big_uint, mcl_value_is_big_uint(f));
            if (mcl_value_is_big_uint(f)) {
                mcl_value_get_uint(f, &u);
                CU_ASSERT_EQUAL(out[k].u, u);
            } else {
                mcl_value_get_int(f, &i);
                CU_ASSERT_EQUAL(out[k].i, i);
            }
            break;
        case MCL_TYPE_FLOAT:
            mcl_value_get_double(f, &d);
            CU_ASSERT_EQUAL(memcmp(&out[k].d, &d, sizeof d), 0);
            break;
        case MCL_TYPE_STR:
            mcl_value_get_str(f, &str, &n);
            CU_ASSERT_EQUAL(out[k].len, n);
            CU_ASSERT(out[k].str != NULL && memcmp(out[k].str, str, n) == 0);
            CU_ASSERT(out[k].str >= (const char *)b && out[k].str + n <= (const char *)b + len);
            break;
        case MCL_TYPE_BIN:
            mcl_value_get_bin(f, &bin, &n);
            CU_ASSERT_EQUAL(out[k].len, n);
            CU_ASSERT(out[k].str != NULL && memcmp(out[k].str, bin, n) == 0);
            break;
        default: // containers: their count
            CU_ASSERT_EQUAL(out[k].len, mcl_value_count(f));
        }
    }
    mcl_value_free(v);
}

static void
test_scan_map(void)
{
    // A flat map of every scalar kind, keys short, 8 bytes and long; the last entry ends the
    // buffer (a key word read must not pass it).
    static const uint8_t flat[] = {
        0x8b,                                      // map of 11
        0xa2, 'a', 'x', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, // "ax": 1.5
        0xa2, 'a', 'y', 0xca, 0x3f, 0xc0, 0, 0,             // "ay": 1.5f (float32)
        0xa1, 'n', 0xd1, 0xff, 0x85,                        // "n": -123 (int16)
        0xa1, 'u', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // "u": 2^64-1
        0xa1, 'p', 0xce, 0x80, 0, 0, 0,                     // "p": 2^31 (uint32)
        0xa1, 'f', 0xe0,                                    // "f": -32 (negative fixint)
        0xa2, 'o', 'k', 0xc3,                               // "ok": true
        0xa4, 'n', 'o', 'n', 'e', 0xc0,                     // "none": nil
        0xa8, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 0xa3, 'a', ',', 'b', // 8-byte key: str
        0xa9, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', 0xc4, 2, 0, 1, // long key: bin
        0xa1, 'z', 0x07};                                   // "z": 7, at the very end
    const char *const keys[] = {"ax", "ay", "n", "u", "p", "f", "ok", "none"};
    const char *const keys2[] = {"timestam", "timestamp", "z", "absent", "", "a"};
    scan_agrees(flat, sizeof flat, keys, 8);
    scan_agrees(flat, sizeof flat, keys2, 6);
    const char *const keys4[] = {"timestamp", "timesta"}; // neither is the 8-byte key
    scan_agrees(flat, sizeof flat, keys4, 2);
    static const uint8_t eight[] = {0x81, 0xa8, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 0x01};
    scan_agrees(eight, sizeof eight, keys4, 2); // "timestamp" is not there
    mcl_scalar out[8];
    MCLT_OK(mcl_value_scan_map(flat, sizeof flat, keys, 8, out));
    CU_ASSERT_EQUAL(out[0].type, MCL_TYPE_FLOAT);
    CU_ASSERT_EQUAL(out[0].d, 1.5);
    CU_ASSERT_EQUAL(out[1].d, 1.5);
    CU_ASSERT_EQUAL(out[2].i, -123);
    CU_ASSERT(out[3].big_uint && out[3].u == UINT64_MAX);
    CU_ASSERT(!out[4].big_uint && out[4].i == 2147483648LL);
    CU_ASSERT_EQUAL(out[5].i, -32);
    CU_ASSERT(out[6].type == MCL_TYPE_BOOL && out[6].b);
    CU_ASSERT_EQUAL(out[7].type, MCL_TYPE_NIL);
    // It allocates nothing.
    mcl__alloc_fail_after(0);
    mcl_err rv = mcl_value_scan_map(flat, sizeof flat, keys2, 6, out);
    mcl__alloc_fail_after(-1);
    MCLT_OK(rv);
    CU_ASSERT(out[0].type == MCL_TYPE_STR && out[0].len == 3 && memcmp(out[0].str, "a,b", 3) == 0);
    CU_ASSERT(out[1].type == MCL_TYPE_BIN && out[1].len == 2);
    CU_ASSERT(out[2].type == MCL_TYPE_INT && out[2].i == 7);
    CU_ASSERT_EQUAL(out[3].type, MCL_TYPE_ANY);

    // Every prefix and one byte more are refused, as mcl_value_decode() refuses them; so is
    // every single-byte change that makes it invalid (and what stays valid agrees).
    uint8_t buf[sizeof flat + 1];
    for (size_t n = 0; n <= sizeof flat; n++) {
        memcpy(buf, flat, sizeof flat);
        buf[sizeof flat] = 0xc0;
        scan_agrees(buf, n == sizeof flat ? n + 1 : n, keys, 8);
    }
    for (size_t at = 0; at < sizeof flat; at++)
        for (unsigned x = 0; x < 256; x += 7) {
            memcpy(buf, flat, sizeof flat);
            buf[at] = (uint8_t)x;
            scan_agrees(buf, sizeof flat, keys, 8);
            scan_agrees(buf, sizeof flat, keys2, 6);
        }

    // Other shapes take the general path: nested containers, map16, long strings.
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    mcl_value *child;
    MCLT_OK(mcl_value_put_double(v, "ax", -2.25));
    MCLT_OK(mcl_value_put_array(v, "list", &child));
    MCLT_OK(mcl_value_push_int(child, 1));
    MCLT_OK(mcl_value_push_str(child, "x"));
    MCLT_OK(mcl_value_put_map(v, "sub", &child));
    MCLT_OK(mcl_value_put_int(child, "ax", 99)); // not top level: not "ax"
    char longs[300];
    memset(longs, 's', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    MCLT_OK(mcl_value_put_str(v, "long", longs));
    for (int k = 0; k < 20; k++) { // 24 entries: a map16
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        MCLT_OK(mcl_value_put_int(v, key, k));
    }
    void *enc;
    size_t elen;
    MCLT_OK(mcl_value_encode(v, &enc, &elen));
    mcl_value_free(v);
    const char *const keys3[] = {"ax", "list", "sub", "long", "k19", "k0"};
    scan_agrees(enc, elen, keys3, 6);
    MCLT_OK(mcl_value_scan_map(enc, elen, keys3, 6, out));
    CU_ASSERT_EQUAL(out[0].d, -2.25);
    CU_ASSERT(out[1].type == MCL_TYPE_ARRAY && out[1].len == 2);
    CU_ASSERT(out[2].type == MCL_TYPE_MAP && out[2].len == 1);
    CU_ASSERT(out[3].type == MCL_TYPE_STR && out[3].len == 299);
    CU_ASSERT(out[4].i == 19 && out[5].i == 0);
    for (size_t n = 0; n < elen; n += 3)
        scan_agrees(enc, n, keys3, 6);
    mcl_free(enc);

    // A key asked for twice in the map, a NUL in a key, not a map, misuse.
    static const uint8_t twice[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};
    static const uint8_t nul[] = {0x81, 0xa2, 'a', 0, 0x01};
    static const uint8_t arr[] = {0x92, 0x01, 0x02};
    const char *const ka[] = {"a"};
    MCLT_ERR(mcl_value_scan_map(twice, sizeof twice, ka, 1, out), MCL_EDECODE);
    CU_ASSERT_EQUAL(out[0].type, MCL_TYPE_ANY);
    scan_agrees(twice, sizeof twice, ka, 1);
    scan_agrees(nul, sizeof nul, ka, 1);
    MCLT_ERR(mcl_value_scan_map(arr, sizeof arr, ka, 1, out), MCL_ENOTMAP);
    MCLT_ERR(mcl_value_scan_map(NULL, 3, ka, 1, out), MCL_EINVAL);
    MCLT_ERR(mcl_value_scan_map(flat, sizeof flat, NULL, 1, out), MCL_EINVAL);
    MCLT_ERR(mcl_value_scan_map(flat, sizeof flat, ka, 1, NULL), MCL_EINVAL);
    MCLT_OK(mcl_value_scan_map(flat, sizeof flat, NULL, 0, NULL)); // only checks
    // The decoding bounds hold here too: a map holding 400,000 nils is refused.
    size_t blen;
    uint8_t *big = array_msg(400000, (const uint8_t[]){0xc0}, 1, &blen);
    const char *const kd[] = {"data"};
    MCLT_ERR(mcl_value_scan_map(big, blen, kd, 1, out), MCL_EDECODE);
    free(big);
}

static CU_TestInfo tests[] = {
    {"nesting_limit_and_duplicates", test_nesting_limit_and_duplicates},
    {"big_map_decodes", test_big_map_decodes},
    {"define_errors", test_define_errors},
    {"registry_order_filters_remove", test_registry_order_filters_remove},
    {"new_message_and_reserved_keys", test_new_message_and_reserved_keys},
    {"msgpack_roundtrip_every_kind", test_msgpack_roundtrip_every_kind},
    {"python_mcl_payloads", test_python_mcl_payloads},
    {"decode_errors", test_decode_errors},
    {"check_kinds", test_check_kinds},
    {"value_misuse", test_value_misuse},
    {"json_roundtrip_and_tags", test_json_roundtrip_and_tags},
    {"json_errors", test_json_errors},
    {"json_keys_not_utf8", test_json_keys_not_utf8},
    {"decode_budget_nil_array", test_decode_budget_nil_array},
    {"decode_budget_legal_payload", test_decode_budget_legal_payload},
    {"decode_value_cap", test_decode_value_cap},
    {"json_bomb_bounded", test_json_bomb_bounded},
    {"scan_map", test_scan_map},
    CU_TEST_INFO_NULL};
MCLT_SUITE("msg_message", NULL, NULL, tests);
