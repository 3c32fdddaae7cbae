// SPDX-License-Identifier: BSD-3-Clause
// Packet stream against its peers, one case per run (scripts/bench.sh runs them side by side
// and prints the table): round trips with one request in flight, requests per second with a
// window in flight, and a long run that watches memory.
//
//   mcl-bench-pstream rtt  dealer|reqrep|mcl|sp-raw|sp-mcl SIZE N
//   mcl-bench-pstream win  dealer|mcl|nng|sp-mcl SIZE N WINDOW
//   mcl-bench-pstream soak N
//
// dealer: raw libzmq DEALER client, ROUTER echo server thread; reqrep: raw REQ/REP; mcl: a
// packet stream over zmq+tcp (a server thread, the client driven by the calling thread);
// nng: nng 1.5 req0/rep0 with WINDOW contexts on each side; sp-raw: write/read ping-pong on a
// socketpair between two threads; sp-mcl: a packet stream on each end of a socketpair. All
// tcp is on 127.0.0.1 (scripts/bench.sh runs it in a private network namespace).
// Output: one line of key=value pairs.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/mcl.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef MCL_BENCH_ZMQ
#include <zmq.h> // (the socket types for run_zmq())
#endif
#ifdef MCL_BENCH_NNG
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#endif

static void
report_win(const char *impl, size_t size, size_t n, unsigned w, uint64_t ns)
{
    printf("pstream case=win impl=%s size=%zu n=%zu window=%u rps=%.0f\n", impl, size, n, w,
           (double)n * 1e9 / (double)ns);
}

// --- mcl -----------------------------------------------------------------------------------------

static void
echo(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    (void)mcl_pstream_reply(rq, MCL_PSTREAM_OK, 0, p, n, NULL);
}

static void
on_accept(mcl_pstream_server *s, mcl_pstream *ps, void *user)
{
    (void)s;
    (void)user;
    (void)mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL);
}

static void
count_done(const mcl_pstream_result *r, void *user)
{
    if (r->status != MCL_PSTREAM_OK)
        die("a request failed");
    (*(size_t *)user)++;
}

// A client on c: N round trips (lat) or N requests with a window in flight (lat NULL).
static uint64_t
mcl_client(mcl_pstream *c, size_t size, size_t n, unsigned window, uint64_t *lat)
{
    uint8_t *buf = calloc(1, size + 1);
    if (lat != NULL) {
        for (size_t i = 0; i < n + RTT_WARMUP; i++) {
            uint64_t t = now_ns();
            mcl_pstream_result *r;
            if (mcl_pstream_call(c, 0, 1, 0, buf, size, 5000, &r) != MCL_OK ||
                r->status != MCL_PSTREAM_OK || r->len != size)
                die("call failed");
            mcl_pstream_result_free(r);
            if (i >= RTT_WARMUP)
                lat[i - RTT_WARMUP] = now_ns() - t;
        }
        free(buf);
        return 0;
    }
    struct pollfd p = {.fd = -1, .events = POLLIN};
    mcl_pstream_fd(c, &p.fd);
    size_t sent = 0, done = 0;
    uint64_t t0 = now_ns();
    while (done < n) {
        while (sent < n && sent - done < window) {
            mcl_err rv = mcl_pstream_submit(c, 0, 1, 0, buf, size, 10000, count_done, &done, NULL);
            if (rv == MCL_EAGAIN)
                break;
            if (rv != MCL_OK)
                die("submit failed");
            sent++;
        }
        (void)poll(&p, 1, 1000);
        mcl_pstream_dispatch(c);
    }
    uint64_t dt = now_ns() - t0;
    free(buf);
    return dt;
}

static uint64_t
run_mcl_zmq(size_t size, size_t n, unsigned window, uint64_t *lat)
{
    mcl_pstream_server *srv;
    if (mcl_pstream_server_open(&srv, "zmq+tcp://127.0.0.1:0", NULL, on_accept, NULL) != MCL_OK ||
        mcl_pstream_server_start(srv) != MCL_OK)
        die("server");
    mcl_pstream *c;
    if (mcl_pstream_dial(&c, mcl_pstream_server_url(srv), NULL) != MCL_OK)
        die("dial");
    uint64_t dt = mcl_client(c, size, n, window, lat);
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 1000);
    return dt;
}

// A stream on each end of a socketpair: a for the caller, b echoing on its own thread.
static void
sp_streams(int sv[2], mcl_pstream **a, mcl_pstream **b)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    if (mcl_pstream_open_fd(a, sv[0], sv[0], NULL) != MCL_OK ||
        mcl_pstream_open_fd(b, sv[1], sv[1], NULL) != MCL_OK)
        die("open_fd");
    mcl_pstream_handle(*b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL);
    mcl_pstream_start(*b);
}

static void
sp_free(int sv[2], mcl_pstream *a, mcl_pstream *b)
{
    mcl_pstream_free(a);
    mcl_pstream_free(b);
    close(sv[0]);
    close(sv[1]);
}

static uint64_t
run_mcl_sp(size_t size, size_t n, unsigned window, uint64_t *lat)
{
    int sv[2];
    mcl_pstream *a, *b;
    sp_streams(sv, &a, &b);
    uint64_t dt = mcl_client(a, size, n, window, lat);
    sp_free(sv, a, b);
    return dt;
}

static void
soak(size_t n)
{
    int sv[2];
    mcl_pstream *a, *b;
    sp_streams(sv, &a, &b);
    (void)mcl_client(a, 16, 200000, 64, NULL); // warm: tables and buffers at their size
    long before = rss_kb();
    uint64_t dt = mcl_client(a, 16, n, 64, NULL);
    long after = rss_kb();
    mcl_pstream_counters sa, sb;
    mcl_pstream_stats(a, &sa);
    mcl_pstream_stats(b, &sb);
    printf("pstream case=soak impl=sp-mcl n=%zu rps=%.0f rss_before_kb=%ld rss_after_kb=%ld "
           "in_flight=%llu in_progress=%llu sent=%llu answered=%llu\n",
           n, (double)n * 1e9 / (double)dt, before, after, (unsigned long long)sa.in_flight,
           (unsigned long long)sb.in_progress, (unsigned long long)sa.requests_sent,
           (unsigned long long)sa.responses_received);
    sp_free(sv, a, b);
}

// --- socketpair ping-pong ------------------------------------------------------------------------

typedef struct sp_peer {
    int fd;
    size_t size, n;
} sp_peer;

static void
full_io(int fd, void *p, size_t n, bool wr)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r =
            wr ? write(fd, (char *)p + done, n - done) : read(fd, (char *)p + done, n - done);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            die("socketpair io");
        }
        done += (size_t)r;
    }
}

static void *
sp_echo(void *arg)
{
    sp_peer *p = arg;
    char *buf = malloc(p->size + 1);
    for (size_t i = 0; i < p->n; i++) {
        full_io(p->fd, buf, p->size, false);
        full_io(p->fd, buf, p->size, true);
    }
    free(buf);
    return NULL;
}

static void
rtt_sp_raw(size_t size, size_t n, uint64_t *lat)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        die("socketpair");
    sp_peer peer = {sv[1], size, n + RTT_WARMUP};
    pthread_t th;
    pthread_create(&th, NULL, sp_echo, &peer);
    char *buf = calloc(1, size + 1);
    for (size_t i = 0; i < n + RTT_WARMUP; i++) {
        uint64_t t = now_ns();
        full_io(sv[0], buf, size, true);
        full_io(sv[0], buf, size, false);
        if (i >= RTT_WARMUP)
            lat[i - RTT_WARMUP] = now_ns() - t;
    }
    pthread_join(th, NULL);
    free(buf);
    close(sv[0]);
    close(sv[1]);
}

// (raw libzmq: run_zmq() in bench/common.c)

// --- nng -----------------------------------------------------------------------------------------

#ifdef MCL_BENCH_NNG
typedef struct nwork {
    nng_aio *aio;
    nng_ctx ctx;
    int state; // 0: receiving / sending, per side
    struct nbench *b;
} nwork;

typedef struct nbench {
    size_t size, n;
    atomic_size_t sent, done;
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool finished;
} nbench;

static void
srv_cb(void *arg)
{
    nwork *w = arg;
    if (nng_aio_result(w->aio) != 0)
        return;          // closed
    if (w->state == 0) { // received: answer with the same message
        nng_msg *m = nng_aio_get_msg(w->aio);
        nng_aio_set_msg(w->aio, m);
        w->state = 1;
        nng_ctx_send(w->ctx, w->aio);
    } else {
        w->state = 0;
        nng_ctx_recv(w->ctx, w->aio);
    }
}

static void
cli_send(nwork *w)
{
    nng_msg *m;
    nng_msg_alloc(&m, w->b->size);
    nng_aio_set_msg(w->aio, m);
    w->state = 1;
    nng_ctx_send(w->ctx, w->aio);
}

static void
cli_cb(void *arg)
{
    nwork *w = arg;
    nbench *b = w->b;
    if (nng_aio_result(w->aio) != 0)
        return;
    if (w->state == 1) { // sent: wait for the answer
        w->state = 2;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    nng_msg_free(nng_aio_get_msg(w->aio));
    size_t d = atomic_fetch_add(&b->done, 1) + 1;
    if (d == b->n) {
        pthread_mutex_lock(&b->lock);
        b->finished = true;
        pthread_cond_signal(&b->cv);
        pthread_mutex_unlock(&b->lock);
    }
    if (atomic_fetch_add(&b->sent, 1) < b->n)
        cli_send(w);
}

static uint64_t
run_nng(size_t size, size_t n, unsigned window)
{
    nng_socket rep, req;
    if (nng_rep0_open(&rep) != 0 || nng_req0_open(&req) != 0)
        die("nng open");
    nng_listener l;
    int e = nng_listen(rep, "tcp://127.0.0.1:0", &l, 0);
    if (e != 0) {
        fprintf(stderr, "mcl-bench-pstream: nng_listen: %s\n", nng_strerror(e));
        exit(1);
    }
    int port = 0;
    nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nbench b = {
        .size = size, .n = n, .lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    nwork *sw = calloc(window, sizeof(*sw)), *cw = calloc(window, sizeof(*cw));
    for (unsigned i = 0; i < window; i++) {
        sw[i].b = &b;
        nng_aio_alloc(&sw[i].aio, srv_cb, &sw[i]);
        nng_ctx_open(&sw[i].ctx, rep);
        nng_ctx_recv(sw[i].ctx, sw[i].aio);
    }
    if (nng_dial(req, url, NULL, 0) != 0)
        die("nng_dial");
    for (unsigned i = 0; i < window; i++) {
        cw[i].b = &b;
        nng_aio_alloc(&cw[i].aio, cli_cb, &cw[i]);
        nng_ctx_open(&cw[i].ctx, req);
        nng_ctx_setopt_ms(cw[i].ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    }
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < window; i++)
        if (atomic_fetch_add(&b.sent, 1) < n)
            cli_send(&cw[i]);
    pthread_mutex_lock(&b.lock);
    while (!b.finished)
        pthread_cond_wait(&b.cv, &b.lock);
    pthread_mutex_unlock(&b.lock);
    uint64_t dt = now_ns() - t0;
    for (unsigned i = 0; i < window; i++) {
        nng_aio_stop(cw[i].aio);
        nng_aio_stop(sw[i].aio);
    }
    nng_close(req);
    nng_close(rep);
    for (unsigned i = 0; i < window; i++) {
        nng_aio_free(cw[i].aio);
        nng_aio_free(sw[i].aio);
    }
    free(sw);
    free(cw);
    return dt;
}
#endif

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "soak") == 0) {
        soak((size_t)strtoull(argv[2], NULL, 10));
        return 0;
    }
    if (argc < 5)
        die("usage: rtt IMPL SIZE N | win IMPL SIZE N WINDOW | soak N");
    const char *mode = argv[1], *impl = argv[2];
    size_t size = (size_t)strtoull(argv[3], NULL, 10), n = (size_t)strtoull(argv[4], NULL, 10);
    unsigned window = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 1;
    if (strcmp(mode, "rtt") == 0) {
        uint64_t *lat = calloc(n, sizeof(*lat));
        if (strcmp(impl, "mcl") == 0)
            run_mcl_zmq(size, n, 1, lat);
        else if (strcmp(impl, "sp-mcl") == 0)
            run_mcl_sp(size, n, 1, lat);
        else if (strcmp(impl, "sp-raw") == 0)
            rtt_sp_raw(size, n, lat);
#ifdef MCL_BENCH_ZMQ
        else if (strcmp(impl, "dealer") == 0)
            run_zmq(ZMQ_ROUTER, ZMQ_DEALER, size, n, 1, lat);
        else if (strcmp(impl, "reqrep") == 0)
            run_zmq(ZMQ_REP, ZMQ_REQ, size, n, 1, lat);
#endif
        else {
            printf("pstream case=rtt impl=%s n/a=1\n", impl);
            return 0;
        }
        report_rtt("pstream", impl, size, lat, n, NULL);
        free(lat);
        return 0;
    }
    uint64_t dt;
    if (strcmp(impl, "mcl") == 0)
        dt = run_mcl_zmq(size, n, window, NULL);
    else if (strcmp(impl, "sp-mcl") == 0)
        dt = run_mcl_sp(size, n, window, NULL);
#ifdef MCL_BENCH_ZMQ
    else if (strcmp(impl, "dealer") == 0)
        dt = run_zmq(ZMQ_ROUTER, ZMQ_DEALER, size, n, window, NULL);
#endif
#ifdef MCL_BENCH_NNG
    else if (strcmp(impl, "nng") == 0)
        dt = run_nng(size, n, window);
#endif
    else {
        printf("pstream case=win impl=%s n/a=1\n", impl);
        return 0;
    }
    report_win(impl, size, n, window, dt);
    return 0;
}
