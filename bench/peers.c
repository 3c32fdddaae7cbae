// SPDX-License-Identifier: BSD-3-Clause
// Peers measured in the same run as mcl: one-way throughput of raw libzmq PUB/SUB over tcp
// (XPUB with ZMQ_XPUB_NODROP: lossless) and of LCM's udpm provider, and round trips (64 B
// and 1 KiB ping-pong) for raw UDP multicast, mcl and LCM. Built when libzmq / LCM are there.
//
//   mcl-bench-peers zmq  SIZE COUNT
//   mcl-bench-peers lcm  SIZE COUNT
//   mcl-bench-peers rtt  raw|mcl|mclzmq|lcm SIZE COUNT
//   mcl-bench-peers drain SIZE COUNT
//
// rtt mclzmq: mcl over zmq+tcp on 127.0.0.1 (each side's broadcaster binds, its listener
// connects to the other's), so one message at a time: the lone-message latency.
// drain: the queued listener's target without mcl: a bare C receiver on core 0 reads COUNT
// datagrams of SIZE bytes, one `recv` each, straight into a 256 MiB shared ring made resident
// beforehand, from a socket with rcvbuf=4M that a sender on core 1 fills at full rate (the
// multicast group on lo, as the queued bench). What it loses is what the kernel and the
// machine leave to any receiver doing the least a receiver can do.
// Prints one key=value line. Run inside scripts/netns.sh; sender on core 1, receiver on core 0.
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef MCL_BENCH_ZMQ
#include <zmq.h>
#endif
#ifdef MCL_BENCH_LCM
#include <lcm/lcm.h>
#endif

static int64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    sched_setaffinity(0, sizeof(set), &set);
}

#if defined(MCL_BENCH_ZMQ) || defined(MCL_BENCH_LCM)
static void
report(const char *impl, size_t size, long sent, long got, long gaps, int64_t first, int64_t last)
{
    double span = (double)(last - first) / 1e9;
    double rate = span > 0 && got > 1 ? (double)(got - 1) / span : 0;
    printf("impl=%s size=%zu sent=%ld received=%ld lost=%ld loss_pct=%.4f msgs_per_s=%.0f "
           "MB_per_s=%.1f\n",
           impl, size, sent, got, gaps, 100.0 * (double)(sent - got) / (double)sent, rate,
           rate * (double)size / 1e6);
}
#endif

// --- ZeroMQ ------------------------------------------------------------------------------------
#ifdef MCL_BENCH_ZMQ
static int
zmq_bench(size_t size, long count)
{
    const char *ep = "tcp://127.0.0.1:27591";
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) { // publisher, core 1
        pin(1);
        void *ctx = zmq_ctx_new();
        void *pub = zmq_socket(ctx, ZMQ_XPUB);
        int one = 1, hwm = 1000;
        zmq_setsockopt(pub, ZMQ_XPUB_NODROP, &one, sizeof(one));
        zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        if (zmq_bind(pub, ep) != 0)
            _exit(1);
        char sub[64];
        if (zmq_recv(pub, sub, sizeof(sub), 0) < 0) // the subscription: no slow joiner
            _exit(1);
        char *p = calloc(1, size < 8 ? 8 : size);
        for (long i = 0; i < count; i++) {
            memcpy(p, &i, sizeof(i));
            while (zmq_send(pub, p, size, 0) < 0)
                ;
        }
        char c;
        if (read(ready[0], &c, 1) != 1) // wait until the subscriber is done
            _exit(1);
        zmq_close(pub);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    pin(0);
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int hwm = 1000;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    int timeout = 2000;
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    zmq_connect(sub, ep);
    char *buf = malloc(size + 16);
    long got = 0, next = 0, gaps = 0;
    int64_t first = 0, last = 0;
    while (got < count) {
        int n = zmq_recv(sub, buf, size + 16, 0);
        if (n < 0)
            break;
        last = mono_ns();
        if (got == 0)
            first = last;
        long seq;
        memcpy(&seq, buf, sizeof(seq));
        if (seq > next)
            gaps += seq - next;
        next = seq + 1;
        got++;
    }
    if (write(ready[1], "x", 1) != 1)
        return 1;
    waitpid(pid, NULL, 0);
    report("zmq-tcp-xpub-nodrop", size, count, got, gaps, first, last);
    free(buf);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return 0;
}
#endif

// --- LCM ---------------------------------------------------------------------------------------
#ifdef MCL_BENCH_LCM
static const char *lcm_url = "udpm://239.255.93.1:27593?ttl=0";
static long lcm_got, lcm_next, lcm_gaps;
static int64_t lcm_first, lcm_last;

static void
on_lcm(const lcm_recv_buf_t *rbuf, const char *channel, void *user)
{
    (void)channel;
    (void)user;
    lcm_last = mono_ns();
    if (lcm_got == 0)
        lcm_first = lcm_last;
    long seq = 0;
    if (rbuf->data_size >= sizeof(seq))
        memcpy(&seq, rbuf->data, sizeof(seq));
    if (seq > lcm_next)
        lcm_gaps += seq - lcm_next;
    lcm_next = seq + 1;
    lcm_got++;
}

static int
lcm_bench(size_t size, long count)
{
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pin(0);
    lcm_t *l = lcm_create(lcm_url);
    if (l == NULL)
        return 1;
    lcm_subscribe(l, "BENCH", on_lcm, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        lcm_t *s = lcm_create(lcm_url);
        char c;
        if (s == NULL || read(ready[0], &c, 1) != 1)
            _exit(1);
        char *p = calloc(1, size < 8 ? 8 : size);
        for (long i = 0; i < count; i++) {
            memcpy(p, &i, sizeof(i));
            lcm_publish(s, "BENCH", p, (unsigned)size);
        }
        _exit(0);
    }
    if (write(ready[1], "g", 1) != 1)
        return 1;
    int fd = lcm_get_fileno(l);
    int64_t idle = mono_ns();
    while (lcm_got < count && mono_ns() - idle < 2000000000LL) {
        struct timeval tv = {0, 200000};
        fd_set fs;
        FD_ZERO(&fs);
        FD_SET(fd, &fs);
        if (select(fd + 1, &fs, NULL, NULL, &tv) > 0) {
            lcm_handle(l);
            idle = mono_ns();
        }
    }
    waitpid(pid, NULL, 0);
    report("lcm-udpm", size, count, lcm_got, lcm_gaps, lcm_first, lcm_last);
    lcm_destroy(l);
    return 0;
}
#endif

// --- round trips -------------------------------------------------------------------------------

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

// Ping on group A, pong on group B (multicast both ways), one message in flight.
static int
raw_sock(const char *group, int port, bool recv)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, group, &a.sin_addr);
    struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("lo")};
    if (recv) {
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        bind(s, (struct sockaddr *)&a, sizeof(a));
        mr.imr_multiaddr = a.sin_addr;
        setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
    } else {
        unsigned char ttl = 0;
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
        connect(s, (struct sockaddr *)&a, sizeof(a));
    }
    return s;
}

// The mcl URLs of the round trip, with MCL_BENCH_OPTS appended (e.g. "&key=FILE").
static mcl_err
rtt_url(mcl_connection **c, const char *base)
{
    char url[700];
    const char *extra = getenv("MCL_BENCH_OPTS");
    snprintf(url, sizeof(url), "%s%s", base, extra ? extra : "");
    return mcl_connection_parse(c, url, NULL, 0);
}

static int
rtt_bench(const char *impl, size_t size, long count)
{
    long warm = 1000;
    int64_t *rt = malloc((size_t)count * sizeof(*rt));
    char *p = calloc(1, size + 64);
    int ready[2];
    if (rt == NULL || p == NULL || pipe(ready) != 0)
        return 1;
    bool raw = !strcmp(impl, "raw"), mclz = !strcmp(impl, "mclzmq");
    bool mcl = !strcmp(impl, "mcl") || mclz;
    const char *url_ping = mclz ? "zmq+tcp://127.0.0.1:27601?hwm=1000"
                                : "udp://239.255.94.3:27596?iface=lo&ttl=0";
    const char *url_pong = mclz ? "zmq+tcp://127.0.0.1:27602?hwm=1000"
                                : "udp://239.255.94.4:27597?iface=lo&ttl=0";
    pid_t pid = fork();
    if (pid == 0) { // the echo side, core 0
        pin(0);
        if (raw) {
            int in = raw_sock("239.255.94.1", 27594, true), out = raw_sock("239.255.94.2", 27595, false);
            if (write(ready[1], "r", 1) != 1)
                _exit(1);
            for (long i = 0; i < count + warm; i++) {
                ssize_t n = recv(in, p, size + 64, 0);
                if (n <= 0 || send(out, p, (size_t)n, 0) < 0)
                    _exit(1);
            }
        } else if (mcl) {
            mcl_connection *ci, *co;
            mcl_raw_listener *l;
            mcl_raw_broadcaster *b;
            if (rtt_url(&ci, url_ping) || rtt_url(&co, url_pong) ||
                mcl_raw_listener_open(&l, ci, NULL, 0) || mcl_raw_broadcaster_open(&b, co, "pong"))
                _exit(1);
            if (write(ready[1], "r", 1) != 1)
                _exit(1);
            if (mclz && mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000) != MCL_OK)
                _exit(1); // (zmq: the pinger's listener has subscribed)
            for (long i = 0; i < count + warm; i++) {
                const mcl_raw_msg *m;
                mcl_err e = mcl_raw_listener_recv(l, &m, 5000);
                if (e == MCL_OK)
                    e = mcl_raw_broadcaster_publish(b, NULL, m->payload, m->len);
                if (e != MCL_OK) {
                    fprintf(stderr, "echo: %s after %ld\n", mcl_err_name(e), i);
                    _exit(1);
                }
            }
            mcl_raw_broadcaster_free(b); // (zmq: the last pong may still be in libzmq's queue)
            mcl_raw_listener_free(l);
        }
#ifdef MCL_BENCH_LCM
        else {
            lcm_t *l = lcm_create("udpm://239.255.94.5:27598?ttl=0");
            lcm_t *o = lcm_create("udpm://239.255.94.6:27599?ttl=0");
            if (l == NULL || o == NULL)
                _exit(1);
            static lcm_t *echo_to;
            echo_to = o;
            void on_ping(const lcm_recv_buf_t *rb, const char *ch, void *u);
            lcm_subscribe(l, "PING", on_ping, &echo_to);
            if (write(ready[1], "r", 1) != 1)
                _exit(1);
            for (long i = 0; i < count + warm; i++)
                if (lcm_handle(l) != 0)
                    _exit(1);
        }
#endif
        _exit(0);
    }
    pin(1);
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 1;
    int64_t t;
    if (raw) {
        int out = raw_sock("239.255.94.1", 27594, false), in = raw_sock("239.255.94.2", 27595, true);
        struct timeval tv = {5, 0};
        setsockopt(in, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        for (long i = 0; i < count + warm; i++) {
            t = mono_ns();
            if (send(out, p, size, 0) < 0 || recv(in, p, size + 64, 0) <= 0)
                return 1;
            if (i >= warm)
                rt[i - warm] = mono_ns() - t;
        }
    } else if (mcl) {
        mcl_connection *ci, *co;
        mcl_raw_listener *l;
        mcl_raw_broadcaster *b;
        if (rtt_url(&co, url_ping) || rtt_url(&ci, url_pong) ||
            mcl_raw_listener_open(&l, ci, NULL, 0) || mcl_raw_broadcaster_open(&b, co, "ping"))
            return 1;
        if (mclz && mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000) != MCL_OK)
            return 1;
        for (long i = 0; i < count + warm; i++) {
            const mcl_raw_msg *m;
            t = mono_ns();
            mcl_err e = mcl_raw_broadcaster_publish(b, NULL, p, size);
            if (e == MCL_OK)
                e = mcl_raw_listener_recv(l, &m, 5000);
            if (e != MCL_OK) {
                fprintf(stderr, "ping: %s after %ld\n", mcl_err_name(e), i);
                return 1;
            }
            if (i >= warm)
                rt[i - warm] = mono_ns() - t;
        }
    }
#ifdef MCL_BENCH_LCM
    else {
        lcm_t *o = lcm_create("udpm://239.255.94.5:27598?ttl=0");
        lcm_t *in = lcm_create("udpm://239.255.94.6:27599?ttl=0");
        void on_pong(const lcm_recv_buf_t *rb, const char *ch, void *u);
        lcm_subscribe(in, "PONG", on_pong, NULL);
        for (long i = 0; i < count + warm; i++) {
            t = mono_ns();
            lcm_publish(o, "PING", p, (unsigned)size);
            if (lcm_handle(in) != 0)
                return 1;
            if (i >= warm)
                rt[i - warm] = mono_ns() - t;
        }
    }
#endif
    waitpid(pid, NULL, 0);
    qsort(rt, (size_t)count, sizeof(*rt), cmp64);
    printf("rtt impl=%s size=%zu count=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f\n", impl, size,
           count, (double)rt[count / 2] / 1000, (double)rt[count * 99 / 100] / 1000,
           (double)rt[count * 999 / 1000] / 1000);
    return 0;
}

#ifdef MCL_BENCH_LCM
void on_ping(const lcm_recv_buf_t *rb, const char *ch, void *u);
void
on_ping(const lcm_recv_buf_t *rb, const char *ch, void *u)
{
    (void)ch;
    lcm_publish(*(lcm_t **)u, "PONG", rb->data, rb->data_size);
}
void on_pong(const lcm_recv_buf_t *rb, const char *ch, void *u);
void
on_pong(const lcm_recv_buf_t *rb, const char *ch, void *u)
{
    (void)rb;
    (void)ch;
    (void)u;
}
#endif

// --- a bare receiver draining a socket ---------------------------------------------------------

static int
drain_bench(size_t size, long count)
{
    if (size == 0 || size > 65507 || count <= 0)
        return 2;
    int r = raw_sock("239.255.94.9", 27611, true);
    int rb = 4 << 20; // as rcvbuf=4M: SO_RCVBUFFORCE when privileged, SO_RCVBUF (capped) if not
    if (setsockopt(r, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb)) != 0)
        setsockopt(r, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
    struct timeval tv = {0, 300000}; // 300 ms of silence ends the run
    setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t ring_len = (size_t)256 << 20, slot = (size + 63) & ~(size_t)63;
    uint8_t *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ring == MAP_FAILED)
        return 1;
    for (size_t i = 0; i < ring_len; i += 4096) // resident, as the queued receiver's ring
        ring[i] = 0;
    int ready[2];
    if (pipe(ready) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        int s = raw_sock("239.255.94.9", 27611, false);
        char *p = calloc(1, size), c;
        if (p == NULL || read(ready[0], &c, 1) != 1)
            _exit(1);
        long tries = 0; // (ENOBUFS: the sender's own buffer full; tried again, a bounded number
                        // of times)
        for (long i = 0; i < count;) {
            if (send(s, p, size, 0) >= 0)
                i++;
            else if ((errno != ENOBUFS && errno != EAGAIN) || ++tries > 1000000)
                _exit(1);
        }
        _exit(0);
    }
    pin(0);
    if (write(ready[1], "g", 1) != 1)
        return 1;
    long got = 0;
    size_t off = 0;
    int64_t first = 0, end = 0;
    while (got < count) {
        if (off + slot > ring_len)
            off = 0;
        ssize_t n = recv(r, ring + off, slot, 0);
        if (n < 0)
            break; // (the silence after the last one that came)
        end = mono_ns();
        if (first == 0)
            first = end;
        got++;
        off += slot;
    }
    waitpid(pid, NULL, 0);
    double span = (double)(end - first) / 1e9;
    printf("impl=raw-udp-drain size=%zu sent=%ld received=%ld lost=%ld loss_pct=%.4f "
           "msgs_per_s=%.0f\n",
           size, count, got, count - got, 100.0 * (double)(count - got) / (double)count,
           span > 0 ? (double)(got - 1) / span : 0);
    munmap(ring, ring_len);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "drain"))
        return drain_bench(strtoul(argv[2], NULL, 0), atol(argv[3]));
    if (argc >= 4 && !strcmp(argv[1], "zmq")) {
#ifdef MCL_BENCH_ZMQ
        return zmq_bench(strtoul(argv[2], NULL, 0), atol(argv[3]));
#else
        printf("impl=zmq n/a=1\n");
        return 0;
#endif
    }
    if (argc >= 4 && !strcmp(argv[1], "lcmpub")) { // a publisher only (for lcm-logger)
#ifdef MCL_BENCH_LCM
        lcm_t *s = lcm_create(lcm_url);
        size_t size = strtoul(argv[2], NULL, 0);
        long count = atol(argv[3]);
        char *p = calloc(1, size < 8 ? 8 : size);
        if (s == NULL || p == NULL)
            return 1;
        for (long i = 0; i < count; i++) {
            memcpy(p, &i, sizeof(i));
            lcm_publish(s, "BENCH", p, (unsigned)size);
        }
        lcm_destroy(s);
        free(p);
        return 0;
#else
        return 0;
#endif
    }
    if (argc >= 4 && !strcmp(argv[1], "lcm")) {
#ifdef MCL_BENCH_LCM
        return lcm_bench(strtoul(argv[2], NULL, 0), atol(argv[3]));
#else
        printf("impl=lcm n/a=1\n");
        return 0;
#endif
    }
    if (argc >= 5 && !strcmp(argv[1], "rtt")) {
#ifndef MCL_BENCH_LCM
        if (!strcmp(argv[2], "lcm")) {
            printf("rtt impl=lcm n/a=1\n");
            return 0;
        }
#endif
        return rtt_bench(argv[2], strtoul(argv[3], NULL, 0), atol(argv[4]));
    }
    fprintf(stderr,
            "usage: %s zmq|lcm|drain SIZE COUNT | rtt raw|mcl|mclzmq|lcm SIZE COUNT\n",
            argv[0]);
    return 2;
}
