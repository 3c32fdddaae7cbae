// SPDX-License-Identifier: BSD-3-Clause
// JSON output of floats: the shortest text that reads back bit-identical ("0.1", not
// "0.10000000000000001"), still recognisable as a float ("1.0"), and nothing else touched.
#include "harness.h"
#include "msg/msg_int.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The JSON of [d] (compact).
static char *
json_of(double d)
{
    mcl_value *a;
    MCLT_OK(mcl_value_new(&a, MCL_TYPE_ARRAY));
    MCLT_OK(mcl_value_push_double(a, d));
    char *js = NULL;
    MCLT_OK(mcl_value_to_json(a, MCL_JSON_COMPACT, &js));
    mcl_value_free(a);
    return js;
}

static void
expect(double d, const char *want)
{
    char *js = json_of(d);
    char full[64];
    snprintf(full, sizeof(full), "[%s]", want);
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    if (strcmp(js, full) != 0)
        fprintf(stderr, "%.17g: got %s, want %s\n", d, js, full);
    CU_ASSERT_STRING_EQUAL(js, full);
    mcl_free(js);
}

static void
test_exact_strings(void)
{
    expect(0.1, "0.1");
    expect(0.19977440861791, "0.19977440861791"); // jansson alone: 0.19977440861790999
    expect(1e300, "1e300");
    expect(5e-324, "5e-324"); // the smallest subnormal: one digit is enough
    expect(-0.0, "-0.0");
    expect(0.0, "0.0");
    expect(1.0, "1.0");
    expect(-2.0, "-2.0");
    expect(100.0, "100.0");
    expect(1e16, "1e16");
    expect(123456789012345678.0, "1.2345678901234568e17");
    expect(0.30000000000000004, "0.30000000000000004"); // 0.1 + 0.2: 17 digits needed
    expect(1.0 / 3.0, "0.3333333333333333");            // 16
    expect(3.141592653589793, "3.141592653589793");
    expect(1e-7, "1e-7");
    expect(1.5e-5, "1.5e-5");
    expect(DBL_MAX, "1.7976931348623157e308");
    expect(DBL_MIN, "2.2250738585072014e-308");
    expect(-DBL_TRUE_MIN * 3, "-1.5e-323");
    expect(1e-320, "1e-320");
    // Non-finite values keep their tags.
    char *js = json_of(NAN);
    CU_ASSERT_STRING_EQUAL(js, "[{\"$float\":\"nan\"}]");
    mcl_free(js);
    js = json_of(-INFINITY);
    CU_ASSERT_STRING_EQUAL(js, "[{\"$float\":\"-inf\"}]");
    mcl_free(js);
}

// Only reals change: integers, strings that look like numbers, keys, and the layout of an
// indented text stay as jansson wrote them.
static void
test_only_reals_change(void)
{
    mcl_value *m;
    MCLT_OK(mcl_value_new(&m, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_double(m, "0.10000000000000001", 0.1));
    MCLT_OK(mcl_value_put_str(m, "s", "0.10000000000000001 \"1.50\" \\\" 2e+05"));
    MCLT_OK(mcl_value_put_int(m, "i", -9223372036854775807LL - 1));
    MCLT_OK(mcl_value_put_uint(m, "u", 18446744073709551615ULL));
    MCLT_OK(mcl_value_put_double(m, "e", 2e5));
    char *js;
    MCLT_OK(mcl_value_to_json(m, MCL_JSON_COMPACT, &js));
    CU_ASSERT_STRING_EQUAL(js, "{\"0.10000000000000001\":0.1,"
                               "\"s\":\"0.10000000000000001 \\\"1.50\\\" \\\\\\\" 2e+05\","
                               "\"i\":-9223372036854775808,"
                               "\"u\":{\"$uint\":\"18446744073709551615\"},\"e\":200000.0}");
    mcl_free(js);
    MCLT_OK(mcl_value_to_json(m, MCL_JSON_INDENT | MCL_JSON_SORT, &js));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\n  \"0.10000000000000001\": 0.1,\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(js, "\n  \"e\": 200000.0,\n"));
    mcl_free(js);
    mcl_value_free(m);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t
next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

// The fewest significant digits (1..17) with which %.*g reads back as d.
static int
fewest_digits(double d)
{
    char buf[40];
    for (int p = 1; p < 17; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, d);
        double back = strtod(buf, NULL);
        if (memcmp(&back, &d, sizeof(d)) == 0)
            return p;
    }
    return 17;
}

static int
digits_in(const char *s)
{
    // Significant digits of a decimal: those of the mantissa without leading zeros (and
    // without the trailing ".0" that marks an integral float).
    int n = 0, lead = 1;
    size_t len = strcspn(s, "e");
    if (len >= 2 && s[len - 2] == '.' && s[len - 1] == '0')
        len -= 2;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            continue;
        if (s[i] == '0' && lead)
            continue;
        lead = 0;
        n++;
    }
    // Trailing zeros of an integral mantissa ("100") are not significant either.
    for (size_t i = len; n > 0 && i > 0 && memchr(s, '.', len) == NULL && s[i - 1] == '0'; i--)
        n--;
    return n > 0 ? n : 1;
}

// Random doubles (all bit patterns but NaN and infinities: normals, subnormals, zeros) read
// back bit-identical from the JSON text, each with no more digits than it needs.
static void
test_roundtrip_random(void)
{
    enum { ARRAYS = 40, PER = 500 }; // 20,000 doubles
    double *d = malloc(PER * sizeof(*d));
    CU_ASSERT_FATAL(d != NULL);
    long bad_bits = 0, bad_len = 0;
    for (int a = 0; a < ARRAYS; a++) {
        mcl_value *arr;
        MCLT_OK(mcl_value_new(&arr, MCL_TYPE_ARRAY));
        for (int i = 0; i < PER; i++) {
            uint64_t bits = next_u64();
            if (i % 5 == 1)
                bits &= 0x800fffffffffffffULL; // a subnormal (or a zero)
            memcpy(&d[i], &bits, sizeof(bits));
            if (i % 5 == 2) // a decimal of a few digits, as sensors send them
                d[i] = (double)(int64_t)(bits % 2000001) / 1000.0 - 1000.0;
            else if (i % 5 == 3) // an integral float
                d[i] = (double)(int64_t)(bits >> 40) - (double)(1 << 23);
            else if (!isfinite(d[i]))
                d[i] = (double)(bits >> 11); // a large integral float instead
            MCLT_OK(mcl_value_push_double(arr, d[i]));
        }
        char *js;
        MCLT_OK(mcl_value_to_json(arr, MCL_JSON_COMPACT, &js));
        mcl_value *back;
        MCLT_OK(mcl_value_from_json(&back, js, strlen(js), NULL, 0));
        CU_ASSERT_EQUAL_FATAL(mcl_value_count(back), PER);
        for (int i = 0; i < PER; i++) {
            double got = NAN;
            const mcl_value *it = mcl_value_item(back, (size_t)i);
            CU_ASSERT_EQUAL(mcl_value_type(it), MCL_TYPE_FLOAT); // "1.0", never "1"
            MCLT_OK(mcl_value_get_double(it, &got));
            bad_bits += memcmp(&got, &d[i], sizeof(got)) != 0;
        }
        // Each number, in order: no more digits than the fewest that read back.
        const char *p = js + 1;
        for (int i = 0; i < PER; i++) {
            char tok[40];
            size_t tl = strcspn(p, ",]");
            CU_ASSERT_FATAL(tl < sizeof(tok));
            memcpy(tok, p, tl);
            tok[tl] = '\0';
            if (digits_in(tok) != fewest_digits(d[i])) {
                if (bad_len++ < 5)
                    fprintf(stderr, "%.17g written %s (%d digits, %d needed)\n", d[i], tok,
                            digits_in(tok), fewest_digits(d[i]));
            }
            p += tl + 1;
        }
        mcl_free(js);
        mcl_value_free(back);
        mcl_value_free(arr);
    }
    CU_ASSERT_EQUAL(bad_bits, 0);
    CU_ASSERT_EQUAL(bad_len, 0);
    free(d);
}

// The internal formatter directly: its length, and every form it has.
static void
test_json_real(void)
{
    char buf[MCL__JSON_REAL_MAX];
    CU_ASSERT_EQUAL(mcl__json_real(0.1, buf), 3);
    CU_ASSERT_STRING_EQUAL(buf, "0.1");
    CU_ASSERT_EQUAL(mcl__json_real(-DBL_MIN, buf), strlen("-2.2250738585072014e-308"));
    CU_ASSERT_STRING_EQUAL(buf, "-2.2250738585072014e-308");
    mcl__json_real(1e21, buf);
    CU_ASSERT_STRING_EQUAL(buf, "1e21");
    mcl__json_real(1e-100, buf);
    CU_ASSERT_STRING_EQUAL(buf, "1e-100");
    mcl__json_real(12345.0, buf);
    CU_ASSERT_STRING_EQUAL(buf, "12345.0");
}

static CU_TestInfo tests[] = {
    {"exact_strings", test_exact_strings},
    {"only_reals_change", test_only_reals_change},
    {"roundtrip_random", test_roundtrip_random},
    {"json_real", test_json_real},
    CU_TEST_INFO_NULL,
};

MCLT_SUITE("msg_json", NULL, NULL, tests);
