// SPDX-License-Identifier: BSD-3-Clause
// RPC (include/mcl/rpc.h) against raw libzmq REQ/REP, one case per run (scripts/bench.sh runs
// them side by side, `ONLY=rpc`, and prints the table): round trips with one call in flight on
// the success path and on the two error paths the service decides, and a long run of
// asynchronous calls with timeouts and cancels that watches transaction ids and memory.
//
//   mcl-bench-rpc rtt  reqrep|call|call-thread|ok|unimpl|invalid N
//   mcl-bench-rpc soak N [WINDOW [TIMEOUT_MS]]
//
// The service ("bench", its own "mcl-pstream" server thread) listens on
// zmq+tcp://127.0.0.1:0. Its method bench.calc takes {"a": float, "b": float, "tag": str}
// (ARGS_BYTES = 64 bytes of msgpack with a 35-byte tag) and returns {"sum": a + b};
// bench.hold defers every call and never answers it itself.
//
// reqrep: raw libzmq REQ -> REP echo thread over tcp, ARGS_BYTES-byte messages (bench/common.c,
//   the same code as `mcl-bench-pstream rtt reqrep`).
// call: blocking mcl_rpc_call("bench.calc") on a client over a stream the calling thread
//   drives (mcl_pstream_dial + mcl_rpc_client_over, nothing started: the same driving as
//   `mcl-bench-pstream rtt mcl`), the result's "sum" checked.
// call-thread: the same on mcl_rpc_client_open()'s client (its stream on a thread of its own).
// ok / unimpl / invalid: mcl_rpc_submit, one in flight, the calling thread dispatching the
//   client stream (poll on mcl_pstream_fd) until the callback: bench.calc (OK); a hand-made
//   method info of an id the service does not have, MCL_RPC_OPEN_ARGS (UNIMPLEMENTED from the
//   service); bench.calc's id with no schema, MCL_RPC_OPEN_ARGS, and "b" a string (the client
//   does not refuse it; INVALID_ARGUMENT from the service, field "b"). Same argument size.
// soak: N asynchronous calls, WINDOW (64) in flight, caller-driven as above: call i with
//   i % 20 == 3 goes to bench.hold with a TIMEOUT_MS (5) deadline (DEADLINE_EXCEEDED), with
//   i % 20 == 13 to bench.hold without one and is cancelled with mcl_rpc_cancel() 16 submits
//   later (CANCELLED); the rest to bench.calc (OK). The service learns of both and answers the
//   held calls (CANCELLED); its handler lets go of them once they are (mcl_rpc_reply() says
//   MCL_ECANCELED), as the API asks of deferred calls. At the end: every status counted, the
//   client's in_flight and its stream's in_flight 0, bench.hold's in_progress 0, VmRSS at 10 %,
//   50 % and 100 % of the calls. Fails past SOAK_LIMIT_S seconds.
// Output: one line of key=value pairs; exit status 1 when a check fails.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/mcl.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MCL_BENCH_ZMQ
#include <zmq.h>
#endif

enum { M_CALC = 1, M_HOLD = 2, M_NONE = 999, ARGS_BYTES = 64, SOAK_LIMIT_S = 300 };

static const char TAG[] = "0123456789abcdefghijklmnopqrstuvwxy"; // 35 bytes: 64-byte arguments

// --- the service -------------------------------------------------------------------------------

static void
h_calc(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    double a = 0, b = 0;
    mcl_value_get_double(mcl_value_find(args, "a"), &a);
    mcl_value_get_double(mcl_value_find(args, "b"), &b);
    mcl_value_put_double(mcl_rpc_req_result(rq), "sum", a + b);
    (void)mcl_rpc_reply(rq);
}

// bench.hold's deferred calls, until the library has answered them (cancel or deadline).
static struct {
    pthread_mutex_t mu;
    mcl_rpc_req **v;
    size_t n, cap;
    uint64_t held, released, not_cancelled;
} hold = {.mu = PTHREAD_MUTEX_INITIALIZER};

// Lets go of the held calls that the library has answered (all: every one).
static void
hold_sweep_locked(bool all)
{
    size_t k = 0;
    for (size_t i = 0; i < hold.n; i++) {
        if (all || mcl_rpc_req_cancelled(hold.v[i])) {
            if (mcl_rpc_reply(hold.v[i]) != MCL_ECANCELED) // answered by us: it had not been
                hold.not_cancelled++;
            hold.released++;
        } else {
            hold.v[k++] = hold.v[i];
        }
    }
    hold.n = k;
}

static void
h_hold(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)args;
    (void)user;
    if (mcl_rpc_defer(rq) != MCL_OK)
        die("defer");
    pthread_mutex_lock(&hold.mu);
    if (hold.n == hold.cap) {
        hold.cap = hold.cap ? hold.cap * 2 : 256;
        if ((hold.v = realloc(hold.v, hold.cap * sizeof(*hold.v))) == NULL)
            die("out of memory");
    }
    hold.v[hold.n++] = rq;
    if (++hold.held % 64 == 0)
        hold_sweep_locked(false);
    pthread_mutex_unlock(&hold.mu);
}

static const mcl_rpc_field calc_args[] = {
    {"a", MCL_TYPE_FLOAT, false, NULL, "first"},
    {"b", MCL_TYPE_FLOAT, false, NULL, "second"},
    {"tag", MCL_TYPE_STR, false, NULL, "carried along"},
};
static const mcl_rpc_field calc_result[] = {{"sum", MCL_TYPE_FLOAT, false, NULL, "a + b"}};
static const mcl_rpc_method methods[] = {
    {M_CALC, "bench.calc", "a + b", calc_args, 3, calc_result, 1, 0, h_calc, NULL},
    {M_HOLD, "bench.hold", "deferred, never answered by itself", NULL, 0, NULL, 0,
     MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT, h_hold, NULL},
};

static mcl_rpc_service *
service_open(void)
{
    mcl_rpc_service *s;
    char why[256];
    if (mcl_rpc_service_new(&s, "bench", NULL, NULL) != MCL_OK ||
        mcl_rpc_service_add(s, methods, 2, why, sizeof(why)) != MCL_OK ||
        mcl_rpc_service_listen(s, "zmq+tcp://127.0.0.1:0") != MCL_OK)
        die("service");
    return s;
}

// --- the client --------------------------------------------------------------------------------

typedef struct bench {
    mcl_rpc_service *svc;
    mcl_pstream *ps; // the client's stream (ours when the calling thread drives it)
    mcl_rpc_client *cli;
    struct pollfd pfd;
    mcl_value *args;
    const mcl_rpc_method_info *m; // what the calls use
    mcl_rpc_status want;          // the status they must end with
    size_t done;                  // callbacks run
    mcl_rpc_status last;
} bench;

// {"a": 1.5, "b": 2.25 or "notfloat", "tag": TAG}: ARGS_BYTES bytes of msgpack either way.
static mcl_value *
make_args(bool bad_b)
{
    mcl_value *a;
    if (mcl_value_new(&a, MCL_TYPE_MAP) != MCL_OK || mcl_value_put_double(a, "a", 1.5) != MCL_OK ||
        (bad_b ? mcl_value_put_str(a, "b", "notfloat") : mcl_value_put_double(a, "b", 2.25)) !=
            MCL_OK ||
        mcl_value_put_str(a, "tag", TAG) != MCL_OK)
        die("arguments");
    void *buf;
    size_t len;
    if (mcl_value_encode(a, &buf, &len) != MCL_OK)
        die("encode");
    mcl_free(buf);
    if (len != ARGS_BYTES)
        die("the arguments are not ARGS_BYTES bytes");
    return a;
}

// thread: the client's stream on a thread of its own; else the calling thread drives it.
static void
bench_open(bench *b, bool thread)
{
    memset(b, 0, sizeof(*b));
    b->svc = service_open();
    const char *url = mcl_rpc_service_url(b->svc);
    char why[256];
    mcl_err rv;
    if (thread) {
        rv = mcl_rpc_client_open(&b->cli, url, NULL, why, sizeof(why));
        b->ps = mcl_rpc_client_stream(b->cli);
    } else {
        if (mcl_pstream_dial(&b->ps, url, NULL) != MCL_OK)
            die("dial");
        rv = mcl_rpc_client_over(&b->cli, b->ps, NULL, why, sizeof(why));
    }
    if (rv != MCL_OK) {
        fprintf(stderr, "mcl-bench-rpc: client: %s\n", why);
        exit(1);
    }
    b->pfd = (struct pollfd){.fd = -1, .events = POLLIN};
    mcl_pstream_fd(b->ps, &b->pfd.fd);
}

static void
bench_close(bench *b, bool thread)
{
    mcl_value_free(b->args);
    mcl_rpc_client_free(b->cli, 1000);
    if (!thread)
        mcl_pstream_free(b->ps);
    mcl_rpc_service_free(b->svc, 1000);
}

// One round of the caller's loop: wait (at most ms) for the stream, then do what is due.
static void
drive(bench *b, int ms)
{
    (void)poll(&b->pfd, 1, ms);
    mcl_pstream_dispatch(b->ps);
}

static void
once_call(void *arg)
{
    bench *b = arg;
    mcl_rpc_result *r;
    double sum = 0;
    if (mcl_rpc_call(b->cli, "bench.calc", b->args, 5000, &r) != MCL_OK ||
        r->status != MCL_PSTREAM_OK ||
        mcl_value_get_double(mcl_value_find(r->value, "sum"), &sum) != MCL_OK || sum != 3.75)
        die("call failed");
    mcl_rpc_result_free(r);
}

static void
on_one(const mcl_rpc_result *r, void *user)
{
    bench *b = user;
    b->last = r->status;
    b->done++;
}

static void
once_submit(void *arg)
{
    bench *b = arg;
    size_t before = b->done;
    if (mcl_rpc_submit(b->cli, b->m, b->args, 5000, on_one, b, NULL) != MCL_OK)
        die("submit failed");
    while (b->done == before)
        drive(b, 1000);
    if (b->last != b->want || b->done != before + 1) {
        fprintf(stderr, "mcl-bench-rpc: got %s, not %s\n", mcl_rpc_status_name(b->last),
                mcl_rpc_status_name(b->want));
        exit(1);
    }
}

static void
rtt(const char *impl, size_t n)
{
    uint64_t *lat = calloc(n, sizeof(*lat));
    if (lat == NULL)
        die("out of memory");
#ifdef MCL_BENCH_ZMQ
    if (strcmp(impl, "reqrep") == 0) {
        run_zmq(ZMQ_REP, ZMQ_REQ, ARGS_BYTES, n, 1, lat);
        report_rtt("rpc", impl, ARGS_BYTES, lat, n, NULL);
        free(lat);
        return;
    }
#endif
    bool thread = strcmp(impl, "call-thread") == 0;
    mcl_rpc_method_info none = {.id = M_NONE, .name = "bench.none", .doc = "",
                                .flags = MCL_RPC_OPEN_ARGS},
                        loose = {.id = M_CALC, .name = "bench.calc", .doc = "",
                                 .flags = MCL_RPC_OPEN_ARGS};
    bench b;
    bench_open(&b, thread);
    b.args = make_args(strcmp(impl, "invalid") == 0);
    if (thread || strcmp(impl, "call") == 0) {
        rtt_loop(n, lat, once_call, &b);
    } else {
        if (strcmp(impl, "ok") == 0) {
            b.m = mcl_rpc_client_method(b.cli, "bench.calc");
            b.want = MCL_PSTREAM_OK;
        } else if (strcmp(impl, "unimpl") == 0) {
            b.m = &none;
            b.want = MCL_PSTREAM_UNIMPLEMENTED;
        } else if (strcmp(impl, "invalid") == 0) {
            b.m = &loose;
            b.want = MCL_PSTREAM_INVALID_ARGUMENT;
        } else {
            printf("rpc case=rtt impl=%s n/a=1\n", impl);
            bench_close(&b, thread);
            free(lat);
            return;
        }
        rtt_loop(n, lat, once_submit, &b);
    }
    mcl_rpc_client_counters cc;
    mcl_rpc_client_stats(b.cli, &cc);
    char extra[128];
    snprintf(extra, sizeof(extra), "status=%s in_flight=%llu",
             mcl_rpc_status_name(b.m != NULL ? b.want : MCL_PSTREAM_OK),
             (unsigned long long)cc.in_flight);
    report_rtt("rpc", impl, ARGS_BYTES, lat, n, extra);
    bench_close(&b, thread);
    free(lat);
}

// --- soak --------------------------------------------------------------------------------------

typedef struct soak_counts {
    size_t done, ok, timeouts, cancels, other;
} soak_counts;

static void
on_soak(const mcl_rpc_result *r, void *user)
{
    soak_counts *s = user;
    if (r->status == MCL_PSTREAM_OK)
        s->ok++;
    else if (r->status == MCL_PSTREAM_DEADLINE_EXCEEDED && r->local)
        s->timeouts++;
    else if (r->status == MCL_PSTREAM_CANCELLED && r->local)
        s->cancels++;
    else
        s->other++;
    s->done++;
}

enum { CANCEL_LAG = 16 };

static void
soak(size_t n, unsigned window, int timeout_ms)
{
    bench b;
    bench_open(&b, false);
    b.args = make_args(false);
    const mcl_rpc_method_info *calc = mcl_rpc_client_method(b.cli, "bench.calc"),
                              *hm = mcl_rpc_client_method(b.cli, "bench.hold");
    soak_counts sc = {0};
    // Calls to cancel, oldest first: a ring of at most window.
    struct {
        uint64_t id;
        size_t at;
    } *q = calloc(window, sizeof(*q));
    size_t qh = 0, qn = 0, sent = 0, want_timeouts = 0, want_cancels = 0;
    long rss0 = rss_kb(), rss[3] = {0, 0, 0};
    const size_t marks[3] = {n / 10, n / 2, n};
    int mark = 0;
    uint64_t t0 = now_ns(), limit = (uint64_t)SOAK_LIMIT_S * 1000000000u;
    while (sc.done < n) {
        if (now_ns() - t0 > limit) {
            printf("rpc case=soak n=%zu done=%zu FAILED: longer than %d s\n", n, sc.done,
                   SOAK_LIMIT_S);
            exit(1);
        }
        while (sent < n && sent - sc.done < window) {
            mcl_err rv;
            uint64_t id = 0;
            if (sent % 20 == 3)
                rv = mcl_rpc_submit(b.cli, hm, NULL, timeout_ms, on_soak, &sc, &id);
            else if (sent % 20 == 13)
                rv = mcl_rpc_submit(b.cli, hm, NULL, -1, on_soak, &sc, &id);
            else
                rv = mcl_rpc_submit(b.cli, calc, b.args, 5000, on_soak, &sc, &id);
            if (rv == MCL_EAGAIN)
                break;
            if (rv != MCL_OK)
                die("submit failed");
            if (sent % 20 == 3)
                want_timeouts++;
            if (sent % 20 == 13) {
                want_cancels++;
                q[(qh + qn++) % window].id = id;
                q[(qh + qn - 1) % window].at = sent;
            }
            sent++;
        }
        // Cancel what has waited CANCEL_LAG submits (everything once all are sent, or when the
        // window is full, so that held calls never fill it).
        while (qn > 0 && (sent - q[qh].at >= CANCEL_LAG || sent == n || sent - sc.done >= window)) {
            if (mcl_rpc_cancel(b.cli, q[qh].id) != MCL_OK)
                die("cancel: the call had ended");
            qh = (qh + 1) % window;
            qn--;
        }
        drive(&b, 100);
        while (mark < 3 && sc.done >= marks[mark])
            rss[mark++] = rss_kb();
    }
    uint64_t dt = now_ns() - t0;
    mcl_rpc_client_counters cc;
    mcl_pstream_counters pc;
    mcl_rpc_client_stats(b.cli, &cc);
    mcl_pstream_stats(b.ps, &pc);
    // The service's side: every held call answered by the library (bounded wait), then let go.
    mcl_rpc_method_stats hs;
    for (int i = 0; i < 1000; i++) {
        mcl_rpc_service_stats(b.svc, M_HOLD, &hs);
        if (hs.in_progress == 0)
            break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&hold.mu);
    hold_sweep_locked(true);
    uint64_t held = hold.held, released = hold.released, not_cancelled = hold.not_cancelled;
    pthread_mutex_unlock(&hold.mu);
    bool pass = sc.ok == n - want_timeouts - want_cancels && sc.timeouts == want_timeouts &&
                sc.cancels == want_cancels && sc.other == 0 && cc.in_flight == 0 &&
                pc.in_flight == 0 && hs.in_progress == 0 && released == held &&
                not_cancelled == 0 && held == want_timeouts + want_cancels;
    printf("rpc case=soak n=%zu window=%u timeout_ms=%d s=%.1f cps=%.0f ok=%zu timeouts=%zu "
           "cancels=%zu other=%zu client_in_flight=%llu stream_in_flight=%llu "
           "hold_in_progress=%llu held=%llu released=%llu svc_timeouts=%llu svc_cancelled=%llu "
           "rss_start_kb=%ld rss_10pct_kb=%ld rss_50pct_kb=%ld rss_100pct_kb=%ld %s\n",
           n, window, timeout_ms, (double)dt / 1e9, (double)n * 1e9 / (double)dt, sc.ok,
           sc.timeouts, sc.cancels, sc.other, (unsigned long long)cc.in_flight,
           (unsigned long long)pc.in_flight, (unsigned long long)hs.in_progress,
           (unsigned long long)held, (unsigned long long)released,
           (unsigned long long)hs.timeouts, (unsigned long long)hs.cancelled, rss0, rss[0],
           rss[1], rss[2], pass ? "PASS" : "FAILED");
    free(q);
    bench_close(&b, false);
    if (!pass)
        exit(1);
}

int
main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "soak") == 0) {
        unsigned window = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 10) : 64;
        int timeout_ms = argc > 4 ? atoi(argv[4]) : 5;
        if (window == 0 || timeout_ms <= 0)
            die("usage: soak N [WINDOW [TIMEOUT_MS]]");
        soak((size_t)strtoull(argv[2], NULL, 10), window, timeout_ms);
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "rtt") != 0)
        die("usage: rtt reqrep|call|call-thread|ok|unimpl|invalid N | soak N [WINDOW "
            "[TIMEOUT_MS]]");
    size_t n = (size_t)strtoull(argv[3], NULL, 10);
    if (n == 0)
        die("N must be > 0");
    rtt(argv[2], n);
    return 0;
}
