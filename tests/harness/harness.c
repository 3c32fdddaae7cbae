// SPDX-License-Identifier: BSD-3-Clause
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t
mclt_now_ms(void)
{
    return mclt_now_ns() / 1000000;
}

int64_t
mclt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

bool
mclt_wait_until(bool (*cond)(void *), void *arg, int ms)
{
    int64_t end = mclt_now_ms() + ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (mclt_now_ms() >= end)
            return cond(arg);
        struct timespec ts = {0, 500000}; // poll the condition every 0.5 ms
        nanosleep(&ts, NULL);
    }
}

uint64_t
mclt_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

bool
mclt_in_netns(void)
{
    const char *v = getenv("MCL_NETNS");
    return v != NULL && strcmp(v, "1") == 0;
}

static char tmpdir[64];

const char *
mclt_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/mcl-%s-XXXXXX", mclt_the_suite.name);
        if (mkdtemp(tmpdir) == NULL) {
            fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
            exit(1);
        }
    }
    return tmpdir;
}

char *
mclt_tmppath(const char *fmt, ...)
{
    static char p[8][512];
    static int k;
    char *b = p[k++ % 8], name[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    snprintf(b, sizeof(p[0]), "%s/%s", mclt_tmpdir(), name);
    return b;
}

int
main(int argc, char **argv)
{
    const mclt_suite *s = &mclt_the_suite;
    if (s->init != NULL) {
        int r = s->init();
        if (r == MCLT_SKIP) {
            printf("suite %s skipped\n", s->name);
            return MCLT_SKIP;
        }
        if (r != 0) {
            fprintf(stderr, "suite %s: set-up failed\n", s->name);
            return 1;
        }
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_SuiteInfo suites[] = {{s->name, NULL, NULL, NULL, NULL, s->tests}, CU_SUITE_INFO_NULL};
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    if (argc > 1) { // run one test by name
        CU_pSuite suite = CU_get_suite(s->name);
        CU_pTest t = suite ? CU_get_test(suite, argv[1]) : NULL;
        if (t == NULL) {
            fprintf(stderr, "no test named %s\n", argv[1]);
            CU_cleanup_registry();
            return 2;
        }
        CU_basic_run_test(suite, t);
    } else {
        CU_basic_run_tests();
    }
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    if (s->cleanup != NULL)
        s->cleanup();
    if (tmpdir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return fails ? 1 : 0;
}

mcl_connection *
mclt_parse(const char *url)
{
    mcl_connection *c = NULL;
    char err[256];
    mcl_err rv = mcl_connection_parse(&c, url, err, sizeof(err));
    if (rv != MCL_OK)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rv, MCL_OK);
    return c;
}

uint8_t *
mclt_pattern(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)mclt_rand(&seed);
    return p;
}

bool
mclt_pattern_ok(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)mclt_rand(&seed))
            return false;
    return true;
}

#if MCL_HAVE_ZMQ
#include "transport/zmq/zmq_int.h"

void
mclt_write_curve_keys(const char *dir, const char *name, char pub[41])
{
    char sec[41], path[256];
    MCLT_OK(mcl__zmq_keypair(pub, sec));
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "# test keys\npublic = %s\nsecret = %s\n", pub, sec);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.pub", dir, name);
    f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "public = %s\n", pub);
    fclose(f);
}
#endif
