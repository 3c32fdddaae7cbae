// SPDX-License-Identifier: BSD-3-Clause
// Plain threaded listener vs queued listener: loss with a callback that stalls, and the latency
// the receiver process and ring add. A sender process (pinned to core 1) publishes COUNT
// messages carrying their send time; this process receives with one of the two listeners.
//
//   mcl-bench-queued --impl plain|queued [-u URL] [-s SIZE] [-n COUNT] [-r RATE]
//                    [--stall-every N --stall-ms MS] [--ring BYTES] [--copy]
//                    [--receiver-cpus LIST]
// (--copy: the receiver copies every message into the ring, none is read straight into it;
// --receiver-cpus: where the queued receiver runs, e.g. 0, away from the sender's core 1)
// Prints one key=value line. Bounded: COUNT messages, 2 s of silence, or 60 s.
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned long long count = 100000;
static unsigned stall_every, stall_ms;
static atomic_ullong got;
static int64_t *lat; // per message, ns
static atomic_llong last_ns;

static void
on_msg(const mcl_raw_msg *m, void *u)
{
    (void)u;
    int64_t now = mono_ns();
    unsigned long long i = atomic_fetch_add(&got, 1);
    if (m->len >= 8 && i < count) {
        int64_t sent;
        memcpy(&sent, m->payload, 8);
        lat[i] = now - sent;
    }
    atomic_store(&last_ns, now);
    if (stall_every && i % stall_every == stall_every - 1) {
        struct timespec ts = {stall_ms / 1000, (long)(stall_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void
sender(const mcl_connection *c, size_t size, double rate, int go_fd)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1 % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    sched_setaffinity(0, sizeof(set), &set);
    mcl_raw_broadcaster *b;
    if (mcl_raw_broadcaster_open(&b, c, "bench") != MCL_OK)
        _exit(1);
    char go;
    if (read(go_fd, &go, 1) != 1)
        _exit(1);
    uint8_t *p = calloc(1, size < 8 ? 8 : size);
    if (p == NULL)
        _exit(1);
    int64_t start = mono_ns();
    for (unsigned long long i = 0; i < count; i++) {
        if (rate > 0) {
            int64_t due = start + (int64_t)((double)i * 1e9 / rate);
            while (mono_ns() < due)
                ;
        }
        int64_t now = mono_ns();
        memcpy(p, &now, 8);
        if (mcl_raw_broadcaster_publish(b, NULL, p, size) != MCL_OK)
            _exit(1);
    }
    _exit(0);
}

int
main(int argc, char **argv)
{
    const char *url = "udp://239.255.91.1:26091?iface=lo&ttl=0", *impl = "queued";
    size_t size = 64;
    double rate = 0;
    mcl_queued_options qo = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--impl") && i + 1 < argc)
            impl = argv[++i];
        else if (!strcmp(argv[i], "-u") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (!strcmp(argv[i], "--stall-every") && i + 1 < argc)
            stall_every = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ring") && i + 1 < argc)
            qo.ring_size = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--copy"))
            qo.no_direct = true;
        else if (!strcmp(argv[i], "--receiver-cpus") && i + 1 < argc)
            qo.receiver_cpus = argv[++i];
        else if (!strcmp(argv[i], "--stall-ms") && i + 1 < argc)
            stall_ms = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --impl plain|queued [-u URL] [-s SIZE] [-n COUNT] [-r "
                            "RATE] [--stall-every N --stall-ms MS] [--ring BYTES] [--copy] [--receiver-cpus LIST]\n",
                    argv[0]);
            return 2;
        }
    }
    bool queued = strcmp(impl, "queued") == 0;
    mcl_connection *c;
    char err[256];
    if (mcl_connection_parse(&c, url, err, sizeof(err)) != MCL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    lat = calloc(count, sizeof(*lat));
    if (lat == NULL)
        return 1;
    mcl_raw_listener *l = NULL;
    mcl_queued_listener *ql = NULL;
    if (queued) {
        if (mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &qo) != MCL_OK ||
            mcl_queued_listener_subscribe(ql, on_msg, NULL) != MCL_OK)
            return 1;
    } else if (mcl_raw_listener_open(&l, c, NULL, 0) != MCL_OK ||
               mcl_raw_listener_subscribe(l, on_msg, NULL) != MCL_OK ||
               mcl_raw_listener_start(l) != MCL_OK) {
        return 1;
    }
    int go[2];
    if (pipe(go) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0)
        sender(c, size, rate, go[0]);
    atomic_store(&last_ns, mono_ns());
    if (write(go[1], "g", 1) != 1)
        return 1;
    int64_t start = mono_ns();
    while (atomic_load(&got) < count && mono_ns() - atomic_load(&last_ns) < 2000000000LL &&
           mono_ns() - start < 60000000000LL) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    int st;
    waitpid(pid, &st, 0);
    unsigned long long n = atomic_load(&got);
    unsigned long long kdrops = 0, ring_drops = 0, lost = 0, direct = 0;
    if (queued) {
        mcl_queued_stats qs;
        mcl_queued_listener_close(ql); // folds the receiver's final counters
        mcl_queued_listener_stats(ql, &qs);
        kdrops = qs.receiver.kernel_drops;
        ring_drops = qs.ring_drops;
        direct = qs.ring_direct;
        lost = qs.receiver.lost;
        mcl_queued_listener_free(ql);
    } else {
        mcl_listener_stats ls;
        mcl_raw_listener_stop(l);
        mcl_raw_listener_stats(l, &ls);
        kdrops = ls.kernel_drops;
        lost = ls.lost;
        mcl_raw_listener_free(l);
    }
    size_t k = n < count ? (size_t)n : (size_t)count;
    qsort(lat, k, sizeof(*lat), cmp64);
    double p50 = k ? (double)lat[k / 2] / 1000 : 0, p99 = k ? (double)lat[k * 99 / 100] / 1000 : 0;
    printf("impl=%s size=%zu rate=%.0f stall=%u/%ums sent=%llu delivered=%llu loss_pct=%.4f "
           "lost=%llu kernel_drops=%llu ring_drops=%llu ring_direct=%llu lat_p50_us=%.1f "
           "lat_p99_us=%.1f\n",
           impl, size, rate, stall_ms, stall_every, count, n,
           100.0 * (double)(count - (n < count ? n : count)) / (double)count, lost, kdrops,
           ring_drops, direct, p50, p99);
    free(lat);
    mcl_connection_free(c);
    return 0;
}
