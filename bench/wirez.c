// SPDX-License-Identifier: BSD-3-Clause
// mcl-bench-wirez: compress= on the wire. One broadcaster and one listener in this process
// (the listener's own thread receives) on a udp group on loopback (ttl=0); a burst of N
// messages of a camera-like frame or a lidar-like scan, published as fast as the broadcaster
// takes them, with compress=none, lz4 and zstd. Prints one line per case:
//   BENCH case=wirez payload=P codec=C size=S n=N sent_s=.. msgs_per_s=.. mb_per_s=..
//         received=.. lost=.. wire_ratio=.. pub_cpu_us=..
// wire_ratio: bytes sent / bytes published (compressed_out / compressed_in, 1 without);
// pub_cpu_us: the CPU time per message of the one thread that publishes and receives (so
// compression and decompression, both included).
//   mcl-bench-wirez [camera|lidar|all] [N]
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t
clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

// 1 MiB of a 8-bit camera: 1024 x 1024 grey, a smooth scene (gradients and a disc) with sensor
// noise of +-2 levels on every pixel.
static uint8_t *
camera(size_t *len)
{
    size_t w = 1024, h = 1024;
    uint8_t *p = malloc(w * h);
    if (p == NULL)
        exit(1);
    uint64_t s = 88172645463325252ULL;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            double dx = (double)x - 512, dy = (double)y - 400;
            int v = (int)(x / 8 + y / 16) + (dx * dx + dy * dy < 200.0 * 200.0 ? 60 : 0);
            v += (int)(rnd(&s) % 5) - 2;
            p[y * w + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    *len = w * h;
    return p;
}

// 64 KiB of a lidar scan: 16,384 float32 ranges in metres, a room (walls 3..12 m) seen at
// millimetre resolution with 2 cm noise.
static uint8_t *
lidar(size_t *len)
{
    size_t n = 16384;
    float *r = malloc(n * sizeof(float));
    if (r == NULL)
        exit(1);
    uint64_t s = 1234567;
    for (size_t i = 0; i < n; i++) {
        double a = 2 * 3.14159265358979 * (double)i / (double)n;
        double d = 7.5 + 4.5 * cos(2 * a) * sin(3 * a);
        d += ((double)(rnd(&s) % 41) - 20) / 1000.0;
        r[i] = (float)(round(d * 1000) / 1000);
    }
    *len = n * sizeof(float);
    return (uint8_t *)r;
}

static void
run(const char *name, const uint8_t *p, size_t len, const char *codec, int n, int group)
{
    char url[256];
    snprintf(url, sizeof(url), "udp://239.255.92.%d:26095?iface=lo&ttl=0&heartbeat=0%s%s", group,
             strcmp(codec, "none") ? "&compress=" : "", strcmp(codec, "none") ? codec : "");
    mcl_connection *c = NULL;
    char err[256];
    if (mcl_connection_parse(&c, url, err, sizeof(err)) != MCL_OK) {
        fprintf(stderr, "wirez: %s\n", err);
        exit(1);
    }
    mcl_raw_listener *l = NULL;
    mcl_raw_broadcaster *b = NULL;
    if (mcl_raw_listener_open(&l, c, NULL, 0) != MCL_OK ||
        mcl_raw_broadcaster_open(&b, c, "bench") != MCL_OK) {
        fprintf(stderr, "wirez: cannot open %s\n", url);
        exit(1);
    }
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    int got = 0;
    for (int i = 0; i < n; i++) {
        if (mcl_raw_broadcaster_publish(b, NULL, p, len) != MCL_OK)
            exit(1);
        const mcl_raw_msg *m; // read what arrived meanwhile, without waiting
        while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
            got += m->len == len;
    }
    uint64_t c1 = clock_ns(CLOCK_THREAD_CPUTIME_ID), t1 = clock_ns(CLOCK_MONOTONIC);
    // The rest, until nothing came for 300 ms (bounded: at most n more reads).
    const mcl_raw_msg *m;
    for (int i = 0; i < n && got < n && mcl_raw_listener_recv(l, &m, 300) == MCL_OK; i++)
        got += m->len == len;
    mcl_listener_stats st;
    mcl_broadcaster_stats bs;
    mcl_raw_listener_stats(l, &st);
    mcl_raw_broadcaster_stats(b, &bs);
    double secs = (double)(t1 - t0) / 1e9;
    double ratio = bs.compressed_in ? (double)bs.compressed_out / (double)bs.compressed_in : 1.0;
    // The publishing thread also received here; its CPU includes reading (both codecs alike).
    printf("BENCH case=wirez payload=%s codec=%s size=%zu n=%d sent_s=%.3f msgs_per_s=%.0f "
           "mb_per_s=%.1f received=%d lost=%llu wire_ratio=%.3f pub_cpu_us=%.1f\n",
           name, codec, len, n, secs, n / secs, (double)n * (double)len / secs / 1e6, got,
           (unsigned long long)st.lost, ratio, (double)(c1 - c0) / 1e3 / n);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
}

int
main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "all";
    int n = argc > 2 ? atoi(argv[2]) : 200;
    if (n <= 0 || n > 100000) {
        fprintf(stderr, "usage: mcl-bench-wirez [camera|lidar|all] [N 1..100000]\n");
        return 2;
    }
    const char *codecs[] = {"none", "lz4", "zstd:1", "zstd"};
    int group = 1;
    if (!strcmp(which, "camera") || !strcmp(which, "all")) {
        size_t len;
        uint8_t *p = camera(&len);
        for (size_t i = 0; i < 4; i++)
            run("camera", p, len, codecs[i], n, group++);
        free(p);
    }
    if (!strcmp(which, "lidar") || !strcmp(which, "all")) {
        size_t len;
        uint8_t *p = lidar(&len);
        for (size_t i = 0; i < 4; i++)
            run("lidar", p, len, codecs[i], n * 16, group++);
        free(p);
    }
    return 0;
}
