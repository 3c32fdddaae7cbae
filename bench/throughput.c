// SPDX-License-Identifier: BSD-3-Clause
// One-way throughput and loss: a sender process pinned to one core, a receiver pinned to the
// other, on one multicast group; mcl's raw broadcaster/listener, or raw UDP syscalls (one
// datagram per message, the kernel's limit) for comparison. Prints one key=value line.
//
//   mcl-bench-throughput [--raw] [-u URL] [-s SIZE] [-n COUNT] [-t TOPIC] [--timeout SEC]
//
// With a zmq+ URL (e.g. zmq+tcp://127.0.0.1:0?hwm=1000) the sender's broadcaster binds (port 0:
// a free port, passed to the receiver through a pipe), the receiver's listener connects, and the
// sender waits for the subscription before it starts, as bench/peers.c does for raw libzmq: same
// direction (XPUB binds, SUB connects), lossless (XPUB_NODROP), HWM from `hwm=`, same pinning,
// same timing (the receiver's first to last message). The broadcaster stays open until the
// receiver is done, so nothing depends on linger.
//
// Bounded: COUNT messages, and the receiver gives up after 1 s without traffic or SEC seconds;
// the sender is killed by SIGALRM after SEC + 30 s.
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    sched_setaffinity(0, sizeof(set), &set);
}

typedef struct result {
    unsigned long long received, lost, kernel_drops;
    double first, last;
    double cpu_first, cpu_last; // the receiver's CPU time (user + system) at first and last
    double rq_first, rq_last;   // its time spent runnable but waiting for a CPU (schedstat)
} result;

// This process's time spent on a run queue waiting for a CPU, in seconds (0 if unknown).
static double
runq_s(void)
{
    FILE *f = fopen("/proc/self/schedstat", "r");
    unsigned long long run = 0, wait = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2)
        wait = 0;
    fclose(f);
    return (double)wait / 1e9;
}

// This process's CPU time so far, in seconds.
static double
cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// --- raw UDP ---------------------------------------------------------------------------------

static int
raw_socket(const char *group, int port, int recv, size_t rcvbuf)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return -1;
    struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("lo")};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, group, &a.sin_addr);
    if (recv) {
        int one = 1, sz = (int)rcvbuf;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0)
            return -1;
        mr.imr_multiaddr = a.sin_addr;
        if (setsockopt(s, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0)
            return -1;
        struct timeval tv = {0, 200000};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    } else {
        unsigned char ttl = 0;
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
        setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
            return -1;
    }
    return s;
}

static void
raw_receive(int s, unsigned long long count, double timeout, result *r)
{
    enum { B = 16 };
    static uint8_t buf[B][65536];
    struct mmsghdr mm[B];
    struct iovec iov[B];
    unsigned long long next = 0;
    double start = now_s(), idle_since = start;
    while (r->received < count) {
        for (int i = 0; i < B; i++) {
            iov[i] = (struct iovec){buf[i], sizeof(buf[i])};
            mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
        }
        int n = recvmmsg(s, mm, B, MSG_WAITFORONE, NULL);
        double t = now_s();
        if (n <= 0) {
            if ((r->received > 0 && t - idle_since > 1.0) || t - start > timeout)
                break;
            continue;
        }
        idle_since = t;
        if (r->received == 0) {
            r->first = t;
            r->cpu_first = cpu_s();
            r->rq_first = runq_s();
        }
        r->last = t;
        for (int i = 0; i < n; i++) {
            unsigned long long seq;
            memcpy(&seq, buf[i], sizeof(seq));
            if (seq > next)
                r->lost += seq - next;
            next = seq + 1;
            r->received++;
        }
    }
    r->cpu_last = cpu_s(); // (waiting after the last message costs no CPU)
    r->rq_last = runq_s();
}

static int
raw_send(int s, size_t size, unsigned long long count)
{
    uint8_t *p = calloc(1, size < 8 ? 8 : size);
    if (p == NULL)
        return -1;
    for (unsigned long long i = 0; i < count; i++) {
        memcpy(p, &i, sizeof(i));
        while (send(s, p, size, 0) < 0)
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                free(p);
                return -1;
            }
    }
    free(p);
    return 0;
}

// --- mcl -------------------------------------------------------------------------------------

static void
mcl_receive(mcl_raw_listener *l, unsigned long long count, double timeout, result *r)
{
    double start = now_s(), idle_since = start;
    while (r->received < count) {
        const mcl_raw_msg *m;
        mcl_err rv = mcl_raw_listener_recv(l, &m, 200);
        // The clocks are read as often as raw_receive reads them: once per batch the socket
        // gave (a message that is still pending() came with the one before it), not per message
        // (CLOCK_PROCESS_CPUTIME_ID costs about 1 us: per message it halved the zmq rate).
        if (rv == MCL_OK && r->received > 0 && mcl_raw_listener_pending(l)) {
            r->received++;
            continue;
        }
        double t = now_s();
        if (rv != MCL_OK) {
            if ((r->received > 0 && t - idle_since > 1.0) || t - start > timeout)
                break;
            continue;
        }
        idle_since = t;
        if (r->received == 0) {
            r->first = t;
            r->cpu_first = cpu_s();
            r->rq_first = runq_s();
        }
        r->last = t;
        r->received++;
    }
    r->cpu_last = cpu_s(); // (waiting after the last message costs no CPU)
    r->rq_last = runq_s();
    mcl_listener_stats st;
    mcl_raw_listener_stats(l, &st);
    r->lost = st.lost;
    r->kernel_drops = st.kernel_drops;
}

static void
print_result(const char *impl, size_t size, unsigned long long count, const result *r,
             double send_s, unsigned long long datagrams)
{
    double span = r->last - r->first;
    double rate = span > 0 ? (double)(r->received - 1) / span : 0;
    unsigned long long missing = count - r->received;
    // rx_cpu_pct: how much of its core the receiver used from its first to its last message
    // (100: it never waited, so the sender was the faster one); rx_runq_ms: how long it was
    // runnable but another task had its core (/proc/self/schedstat), until it stopped reading.
    printf("impl=%s size=%zu sent=%llu received=%llu lost=%llu loss_pct=%.4f msgs_per_s=%.0f "
           "MB_per_s=%.1f send_s=%.3f kernel_drops=%llu rx_cpu_pct=%.0f rx_runq_ms=%.0f "
           "datagrams=%llu\n",
            impl, size, count, r->received, r->lost, 100.0 * (double)missing / (double)count, rate,
            rate * (double)size / 1e6, send_s, r->kernel_drops,
            span > 0 ? 100.0 * (r->cpu_last - r->cpu_first) / span : 0,
            r->rq_last > r->rq_first ? 1000 * (r->rq_last - r->rq_first) : 0, datagrams);
}

// --- mcl over ZeroMQ -------------------------------------------------------------------------

// The receiver: reads the broadcaster's effective URL from url_fd, connects, says ready, counts.
static void
zmq_receiver(int url_fd, int ready_fd, int res_fd, unsigned long long count, double timeout)
{
    pin(0);
    char url[1024];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof(url) - 1 && (k = read(url_fd, url + n, sizeof(url) - 1 - n)) > 0)
        n += (size_t)k;
    url[n] = '\0';
    if (n == 0 || n == sizeof(url) - 1)
        _exit(1); // the sender failed to open (or the URL does not fit)
    mcl_connection *c = NULL;
    mcl_raw_listener *l = NULL;
    char err[256];
    if (mcl_connection_parse(&c, url, err, sizeof(err)) != MCL_OK) {
        fprintf(stderr, "receiver: %s\n", err);
        _exit(1);
    }
    if (mcl_raw_listener_open(&l, c, NULL, 0) != MCL_OK) {
        fprintf(stderr, "receiver: cannot open a listener on %s\n", url);
        _exit(1);
    }
    char ok = 1;
    if (write(ready_fd, &ok, 1) != 1)
        _exit(1);
    result r = {0};
    mcl_receive(l, count, timeout, &r);
    if (write(res_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(1);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
    _exit(0);
}

// Forks before the sender opens anything of libzmq (a context does not survive fork()).
static int
zmq_run(const mcl_connection *c, const char *impl, const char *topic, size_t size,
        unsigned long long count, double timeout)
{
    int urlp[2], ready[2], res[2];
    if (pipe(urlp) != 0 || pipe(ready) != 0 || pipe(res) != 0)
        return 1;
    pid_t child = fork();
    if (child < 0)
        return 1;
    if (child == 0) {
        close(urlp[1]);
        close(ready[0]);
        close(res[0]);
        zmq_receiver(urlp[0], ready[1], res[1], count, timeout); // never returns
        _exit(1);
    }
    close(urlp[0]);
    close(ready[1]);
    close(res[1]);
    pin(1); // before the broadcaster's context starts its I/O thread, which inherits the mask
    mcl_raw_broadcaster *b = NULL;
    uint8_t *p = calloc(1, size ? size : 1);
    int rc = 1;
    double t0 = 0, send_s = 0;
    if (p == NULL || mcl_raw_broadcaster_open(&b, c, topic) != MCL_OK) {
        fprintf(stderr, "sender: cannot open a broadcaster on %s\n", mcl_connection_url(c));
        goto out;
    }
    const char *url = mcl_connection_url(mcl_raw_broadcaster_connection(b));
    size_t ul = strlen(url);
    if (write(urlp[1], url, ul) != (ssize_t)ul)
        goto out;
    close(urlp[1]);
    urlp[1] = -1;
    char ok;
    if (read(ready[0], &ok, 1) != 1) {
        fprintf(stderr, "receiver failed to start\n");
        goto out;
    }
    if (mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000) != MCL_OK) {
        fprintf(stderr, "sender: no subscriber within 5 s\n");
        goto out;
    }
    t0 = now_s();
    rc = 0;
    for (unsigned long long i = 0; i < count && rc == 0; i++) {
        memcpy(p, &i, size < 8 ? size : 8);
        rc = mcl_raw_broadcaster_publish(b, NULL, p, size) != MCL_OK;
    }
    send_s = now_s() - t0;
out:;
    mcl_broadcaster_stats bst = {0};
    if (b != NULL)
        mcl_raw_broadcaster_stats(b, &bst); // datagrams: frames (fewer than messages: coalesced)
    result r = {0};
    ssize_t got = -1;
    if (rc == 0) // the receiver is done (or gave up) before the broadcaster closes
        got = read(res[0], &r, sizeof(r));
    if (urlp[1] >= 0)
        close(urlp[1]); // a receiver still waiting for the URL gives up
    mcl_raw_broadcaster_free(b);
    free(p);
    if (rc != 0)
        kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    if (rc != 0 || got != (ssize_t)sizeof(r)) {
        fprintf(stderr, "run failed\n");
        return 1;
    }
    print_result(impl, size, count, &r, send_s, (unsigned long long)bst.datagrams);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *url = "udp://239.255.90.1:26090?iface=lo&ttl=0";
    const char *topic = "bench";
    size_t size = 64;
    unsigned long long count = 100000;
    double timeout = 30;
    int raw = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--raw") == 0)
            raw = 1;
        else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            size = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout = atof(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--raw] [-u URL] [-s SIZE] [-n COUNT] [-t TOPIC] [--timeout SEC]\n",
                    argv[0]);
            return 2;
        }
    }
    if (count == 0 || timeout <= 0) {
        fprintf(stderr, "COUNT and SEC must be positive\n");
        return 2;
    }
    alarm((unsigned)timeout + 30); // the whole run is bounded, whatever blocks
    int zmq = strncmp(url, "zmq+", 4) == 0;
    if (raw && (zmq || size > 65000)) {
        printf("impl=raw size=%zu n/a=1\n", size);
        return 0;
    }
    if (zmq && strstr(url, "mode=") != NULL) {
        fprintf(stderr, "zmq: the sender binds and the receiver connects; drop mode=\n");
        return 2;
    }
    mcl_connection *c = NULL;
    char err[256];
    if (mcl_connection_parse(&c, url, err, sizeof(err)) != MCL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (zmq) {
        // "zmq+tcp://..." -> "mcl-zmq-tcp"
        char impl[32];
        size_t kl = strcspn(url + 4, ":");
        snprintf(impl, sizeof(impl), "mcl-zmq-%.*s", (int)(kl < 16 ? kl : 16), url + 4);
        int rc = zmq_run(c, impl, topic, size, count, timeout);
        mcl_connection_free(c);
        return rc;
    }
    int ready[2], res[2];
    if (pipe(ready) != 0 || pipe(res) != 0)
        return 1;
    pid_t child = fork();
    if (child == 0) { // receiver, core 0
        pin(0);
        result r = {0};
        int s = -1;
        mcl_raw_listener *l = NULL;
        if (raw)
            s = raw_socket(mcl_connection_group(c), mcl_connection_port(c), 1,
                           mcl_connection_rcvbuf(c));
        else if (mcl_raw_listener_open(&l, c, NULL, 0) != MCL_OK)
            _exit(1);
        if (raw && s < 0)
            _exit(1);
        char ok = 1;
        if (write(ready[1], &ok, 1) != 1)
            _exit(1);
        if (raw)
            raw_receive(s, count, timeout, &r);
        else
            mcl_receive(l, count, timeout, &r);
        if (write(res[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
            _exit(1);
        mcl_raw_listener_free(l);
        _exit(0);
    }
    pin(1);
    char ok;
    if (read(ready[0], &ok, 1) != 1) {
        fprintf(stderr, "receiver failed to start\n");
        return 1;
    }
    double t0 = now_s();
    int rc = 0;
    unsigned long long datagrams = count;
    if (raw) {
        int s = raw_socket(mcl_connection_group(c), mcl_connection_port(c), 0, 0);
        rc = s < 0 || raw_send(s, size, count) != 0;
        close(s);
    } else {
        mcl_raw_broadcaster *b;
        uint8_t *p = calloc(1, size ? size : 1);
        if (p == NULL || mcl_raw_broadcaster_open(&b, c, topic) != MCL_OK)
            return 1;
        for (unsigned long long i = 0; i < count && rc == 0; i++) {
            memcpy(p, &i, size < 8 ? size : 8);
            rc = mcl_raw_broadcaster_publish(b, NULL, p, size) != MCL_OK;
        }
        mcl_broadcaster_stats bst = {0};
        mcl_raw_broadcaster_stats(b, &bst);
        datagrams = bst.datagrams;
        mcl_raw_broadcaster_free(b);
        free(p);
    }
    double send_s = now_s() - t0;
    result r = {0};
    ssize_t got = read(res[0], &r, sizeof(r));
    int st = 0;
    waitpid(child, &st, 0);
    if (rc != 0 || got != (ssize_t)sizeof(r)) {
        fprintf(stderr, "run failed\n");
        return 1;
    }
    print_result(raw ? "raw-udp" : "mcl", size, count, &r, send_s, datagrams);
    mcl_connection_free(c);
    return 0;
}
