// SPDX-License-Identifier: BSD-3-Clause
// Test harness: CUnit plus a few helpers. One test file = one suite = one executable.
#ifndef MCLT_HARNESS_H
#define MCLT_HARNESS_H

#include <CUnit/Basic.h>
#include <mcl/mcl.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

// Asserts a call returned MCL_OK / a given code, printing the names on failure.
#define MCLT_OK(expr) MCLT_ERR(expr, MCL_OK)
#define MCLT_ERR(expr, code)                                                                       \
    do {                                                                                           \
        mcl_err mclt_rv_ = (expr);                                                                 \
        if (mclt_rv_ != (code))                                                                    \
            fprintf(stderr, "\n  %s:%d: %s returned %s, expected %s\n", __FILE__, __LINE__, #expr, \
                    mcl_err_name(mclt_rv_), mcl_err_name(code));                                   \
        CU_ASSERT_EQUAL_FATAL(mclt_rv_, (code));                                                   \
    } while (0)

// Parses url, failing the test (and printing the parser's message) when it is refused.
mcl_connection *mclt_parse(const char *url);

// Polls cond(arg) until it holds or ms milliseconds pass; returns its last value.
bool mclt_wait_until(bool (*cond)(void *), void *arg, int ms);

// Monotonic milliseconds, nanoseconds.
int64_t mclt_now_ms(void);
int64_t mclt_now_ns(void);

// Deterministic pseudo-random numbers for tests (xorshift), seeded per test.
uint64_t mclt_rand(uint64_t *state);

// len bytes from the generator seeded with seed (malloc'd, never NULL; free() it), and the
// check that data holds exactly those bytes: payloads that prove they arrived whole.
uint8_t *mclt_pattern(size_t len, uint64_t seed);
bool mclt_pattern_ok(const void *data, size_t len, uint64_t seed);

// Each test file defines its suite with this; the harness main() registers and runs it.
// init returns 0 to run, MCLT_SKIP to skip the whole suite (exit 77), anything else to fail.
#define MCLT_SKIP 77
typedef struct mclt_suite {
    const char *name;
    int (*init)(void);
    int (*cleanup)(void);
    CU_TestInfo *tests;
} mclt_suite;
extern const mclt_suite mclt_the_suite;
#define MCLT_SUITE(name_, init_, cleanup_, tests_)                                                 \
    const mclt_suite mclt_the_suite = {name_, init_, cleanup_, tests_}

#if MCL_HAVE_ZMQ
// A new CURVE key pair in dir/name.key (public and secret, with a comment line) and
// dir/name.pub (public only); pub receives the public key (Z85).
void mclt_write_curve_keys(const char *dir, const char *name, char pub[41]);
#endif

// A directory of this test process's own under /tmp, made on first use and removed with all it
// holds when the suite ends; and a path in it, made like printf (eight rotating buffers: up to
// eight may be in use at once).
const char *mclt_tmpdir(void);
char *mclt_tmppath(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// True inside the private network namespace made by scripts/netns.sh.
bool mclt_in_netns(void);

#endif
