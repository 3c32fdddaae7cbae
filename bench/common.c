// SPDX-License-Identifier: BSD-3-Clause
// Helpers shared by the request/response benchmarks (bench/common.h).
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MCL_BENCH_ZMQ
#include <zmq.h>
#endif

uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
die(const char *what)
{
    fprintf(stderr, "%s: %s\n", program_invocation_short_name, what);
    exit(1);
}

long
rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void
report_rtt(const char *bench, const char *impl, size_t size, uint64_t *lat, size_t n,
           const char *extra)
{
    qsort(lat, n, sizeof(*lat), cmp_u64);
    printf("%s case=rtt impl=%s size=%zu n=%zu p50_us=%.2f p99_us=%.2f p999_us=%.2f%s%s\n", bench,
           impl, size, n, (double)lat[n / 2] / 1e3, (double)lat[n * 99 / 100] / 1e3,
           (double)lat[n * 999 / 1000] / 1e3, extra != NULL && extra[0] ? " " : "",
           extra != NULL ? extra : "");
}

void
rtt_loop(size_t n, uint64_t *lat, void (*once)(void *ctx), void *ctx)
{
    for (size_t i = 0; i < n + RTT_WARMUP; i++) {
        uint64_t t = now_ns();
        once(ctx);
        if (i >= RTT_WARMUP)
            lat[i - RTT_WARMUP] = now_ns() - t;
    }
}

#ifdef MCL_BENCH_ZMQ
typedef struct zsrv {
    void *ctx, *s;
    int type;
} zsrv;

static void *
zmq_echo(void *arg)
{
    zsrv *z = arg;
    zmq_msg_t id, m;
    for (;;) {
        if (z->type == ZMQ_ROUTER) {
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, z->s, 0) < 0)
                break;
        }
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, z->s, 0) < 0)
            break;
        if (z->type == ZMQ_ROUTER && zmq_msg_send(&id, z->s, ZMQ_SNDMORE) < 0)
            break;
        if (zmq_msg_send(&m, z->s, 0) < 0)
            break;
    }
    zmq_close(z->s);
    return NULL;
}

uint64_t
run_zmq(int stype, int ctype, size_t size, size_t n, unsigned window, uint64_t *lat)
{
    zsrv z = {.ctx = zmq_ctx_new(), .type = stype};
    z.s = zmq_socket(z.ctx, stype);
    int zero = 0;
    zmq_setsockopt(z.s, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(z.s, "tcp://127.0.0.1:*") != 0)
        die("zmq_bind");
    char ep[256];
    size_t el = sizeof(ep);
    zmq_getsockopt(z.s, ZMQ_LAST_ENDPOINT, ep, &el);
    pthread_t th;
    pthread_create(&th, NULL, zmq_echo, &z);
    void *c = zmq_socket(z.ctx, ctype);
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(c, ep) != 0)
        die("zmq_connect");
    char *buf = calloc(1, size + 1);
    uint64_t dt = 0;
    if (lat != NULL) {
        for (size_t i = 0; i < n + RTT_WARMUP; i++) {
            uint64_t t = now_ns();
            if (zmq_send(c, buf, size, 0) < 0 || zmq_recv(c, buf, size + 1, 0) < 0)
                die("zmq round trip");
            if (i >= RTT_WARMUP)
                lat[i - RTT_WARMUP] = now_ns() - t;
        }
    } else {
        size_t sent = 0, done = 0;
        uint64_t t0 = now_ns();
        for (; sent < window && sent < n; sent++)
            zmq_send(c, buf, size, 0);
        while (done < n) {
            if (zmq_recv(c, buf, size + 1, 0) < 0)
                die("zmq recv");
            done++;
            if (sent < n) {
                zmq_send(c, buf, size, 0);
                sent++;
            }
        }
        dt = now_ns() - t0;
    }
    zmq_close(c);
    zmq_ctx_shutdown(z.ctx); // the echo thread's recv ends with ETERM
    pthread_join(th, NULL);
    zmq_ctx_term(z.ctx);
    free(buf);
    return dt;
}
#endif
