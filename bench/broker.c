// SPDX-License-Identifier: BSD-3-Clause
// The channel broker (include/mcl/broker.h) against the brokers people would otherwise use:
// nats-server (core NATS, libnats), Mosquitto (MQTT QoS 0, libmosquitto) and, brokerless, raw
// libzmq XPUB -> SUB. Each case is one run of this program; every line it prints is
// "broker case=CASE impl=IMPL key=value ..." (scripts/bench.sh makes the tables).
//
//   mcl-bench-broker fanout mcl|nats|mosq|xpub URL N SECONDS
//       1 writer -> 4 readers, 64-byte messages, N messages or SECONDS, whichever ends first:
//       deliveries/s summed over the readers. mcl: readers BLOCK (lossless), writer put_wait;
//       it reports as impl=mcl over tcp:// or unix://, impl=mclz over zmq+tcp://.
//       nats: core NATS, unlimited client pending limits, drops counted. mosq: QoS 0.
//       xpub: XPUB (ZMQ_XPUB_NODROP, HWM 1000) in a forked child pinned to CPU 0 (the broker's
//       core in the brokered rows), SUB sockets here (URL is ignored).
//   mcl-bench-broker paused URL N SECONDS
//       3 BLOCK readers alone, then the same 3 with a fourth (RING, buffer 100, window 16) whose
//       callback sleeps until the end: the 3 readers' deliveries/s each time, back to back.
//   mcl-bench-broker decimate URL N
//       a BLOCK reader with every=10: offered N, delivered (expected floor(N/10) +- 1).
//   mcl-bench-broker rpc URL NATS_URL N
//       round trips through the broker (a responder client serving "echo.ping" with
//       mcl_broker_serve_rpc, a caller with mcl_broker_rpc_client + mcl_rpc_call) and, in the
//       same run, NATS request-reply (natsConnection_Request) through nats-server ("-": none).
//   mcl-bench-broker gating URL ROUNDS
//       per round: subscribe, wait active, unsubscribe; the time from calling unsubscribe to
//       mcl_broker_writer_active() false; then 1000 puts, which must all be refused
//       (MCL_EAGAIN, refused_inactive) while the broker's channel counter `offered` stays put.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/broker.h>
#include <mcl/rpc.h>
#include <mcl/value.h>

#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MCL_BENCH_ZMQ
#include <zmq.h>
#endif
#ifdef MCL_BENCH_NATS
#include <nats/nats.h>
#endif
#ifdef MCL_BENCH_MOSQ
#include <mosquitto.h>
#endif

enum { READERS = 4, MSG = 64 };

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#ifdef MCL_BENCH_ZMQ
static void
pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}
#endif

// --- counting readers, and the wait for the end -----------------------------------------------

typedef struct counter {
    atomic_ulong n;
    atomic_int hold; // paused reader: its callback sleeps while this is set
} counter;

static unsigned long
sum(counter *c, int k)
{
    unsigned long s = 0;
    for (int i = 0; i < k; i++)
        s += atomic_load_explicit(&c[i].n, memory_order_relaxed);
    return s;
}

// Wait until readers [0, k) got `want` in all, the deadline passes, or nothing came for 1 s.
// Returns the time of the last progress seen (ns).
static uint64_t
wait_done(counter *c, int k, unsigned long want, uint64_t deadline)
{
    unsigned long last = sum(c, k);
    uint64_t t_last = now_ns();
    for (;;) {
        unsigned long s = sum(c, k);
        uint64_t t = now_ns();
        if (s != last) {
            last = s;
            t_last = t;
        }
        if (s >= want || t > deadline || t - t_last > 1000000000ull)
            return t_last;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

static void
report_fanout(const char *cas, const char *impl, unsigned long offered, int k, counter *c,
              uint64_t t0, uint64_t t1, const char *extra)
{
    unsigned long got = sum(c, k);
    double s = (double)(t1 - t0) / 1e9;
    printf("broker case=%s impl=%s size=%d readers=%d offered=%lu delivered=%lu lost=%lu "
           "secs=%.3f dps=%.0f%s%s\n",
           cas, impl, MSG, k, offered, got, offered * (unsigned long)k - got, s,
           s > 0 ? (double)got / s : 0.0, extra != NULL ? " " : "", extra != NULL ? extra : "");
    fflush(stdout);
}

// --- mcl ---------------------------------------------------------------------------------------

// The row a broker URL reports under: "mcl" over tcp:// or unix://, "mclz" over zmq+.
static const char *
impl_of(const char *url)
{
    return strncmp(url, "zmq+", 4) == 0 ? "mclz" : "mcl";
}

static mcl_broker_client *
connect_c(const char *url, const char *name)
{
    mcl_broker_client *c;
    mcl_broker_client_options o = {.name = name};
    mcl_err rv = mcl_broker_connect(&c, url, &o);
    if (rv != MCL_OK) {
        fprintf(stderr, "mcl-bench-broker: connect %s: %s\n", url, mcl_strerror(rv));
        exit(1);
    }
    return c;
}

static void
on_frame(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
         void *user)
{
    (void)c, (void)sub, (void)seq, (void)data, (void)len;
    counter *k = user;
    atomic_fetch_add_explicit(&k->n, 1, memory_order_relaxed);
    // A paused reader: sleep (bounded by whoever clears hold) so that nothing is acknowledged.
    while (atomic_load(&k->hold))
        sleep_ms(1);
}

static void
wait_active(mcl_broker_client *w, uint32_t wid, bool want)
{
    uint64_t end = now_ns() + 5000000000ull;
    while (mcl_broker_writer_active(w, wid) != want)
        if (now_ns() > end)
            die("the writer's activity did not change");
}

// A unique channel name per run, so that runs against one broker do not meet.
static void
chan_name(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "bench.%s.%ld.%llu", what, (long)getpid(),
             (unsigned long long)(now_ns() % 1000000007ull));
}

// Put up to n frames within `secs`; returns how many went.
static unsigned long
mcl_write(mcl_broker_client *w, uint32_t wid, unsigned long n, double secs)
{
    char buf[MSG];
    memset(buf, 'x', sizeof(buf));
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    unsigned long i;
    for (i = 0; i < n; i++) {
        if ((i & 255) == 0 && now_ns() > end)
            break;
        mcl_err rv = mcl_broker_put_wait(w, wid, buf, sizeof(buf), 2000);
        if (rv != MCL_OK) {
            fprintf(stderr, "mcl-bench-broker: put: %s\n", mcl_strerror(rv));
            break;
        }
    }
    return i;
}

// k readers with options ro[i] on a fresh channel; returns the rate of readers [0, measured).
static void
mcl_fanout(const char *cas, const char *url, int k, int measured,
           const mcl_broker_reader_options *ro, unsigned long n, double secs, const char *impl)
{
    char ch[96];
    chan_name(ch, sizeof(ch), cas);
    mcl_broker_client *w = connect_c(url, "bench-writer"), *r[READERS];
    counter c[READERS];
    uint32_t sub[READERS], wid;
    if (mcl_broker_create(w, ch, NULL) != MCL_OK)
        die("create");
    for (int i = 0; i < k; i++) {
        atomic_init(&c[i].n, 0);
        atomic_init(&c[i].hold, i >= measured); // readers past `measured` are paused
        r[i] = connect_c(url, "bench-reader");
        if (mcl_broker_subscribe(r[i], ch, &ro[i], on_frame, &c[i], &sub[i]) != MCL_OK)
            die("subscribe");
    }
    if (mcl_broker_writer(w, ch, NULL, NULL, NULL, &wid) != MCL_OK)
        die("writer");
    wait_active(w, wid, true);
    uint64_t t0 = now_ns();
    unsigned long sent = mcl_write(w, wid, n, secs);
    uint64_t t1 = wait_done(c, measured, sent * (unsigned long)measured, t0 + (uint64_t)((secs + 2) * 1e9));
    char extra[64] = "";
    if (measured < k)
        snprintf(extra, sizeof(extra), "paused=%d paused_got=%lu", k - measured,
                 sum(c + measured, k - measured));
    report_fanout(cas, impl, sent, measured, c, t0, t1, extra[0] ? extra : NULL);
    for (int i = 0; i < k; i++)
        atomic_store(&c[i].hold, 0);
    for (int i = 0; i < k; i++)
        mcl_broker_client_free(r[i]);
    mcl_broker_client_free(w);
}

static void
case_fanout_mcl(const char *url, unsigned long n, double secs)
{
    mcl_broker_reader_options ro[READERS];
    for (int i = 0; i < READERS; i++)
        ro[i] = (mcl_broker_reader_options){.buffer = 1024, .policy = MCL_BROKER_BLOCK};
    mcl_fanout("fanout", url, READERS, READERS, ro, n, secs, impl_of(url));
}

static void
case_paused(const char *url, unsigned long n, double secs)
{
    mcl_broker_reader_options ro[READERS];
    for (int i = 0; i < READERS; i++)
        ro[i] = (mcl_broker_reader_options){.buffer = 1024, .policy = MCL_BROKER_BLOCK};
    ro[3] = (mcl_broker_reader_options){.buffer = 100, .policy = MCL_BROKER_RING, .window = 16};
    mcl_fanout("paused", url, 3, 3, ro, n, secs, "without");
    mcl_fanout("paused", url, 4, 3, ro, n, secs, "with");
}

static void
case_decimate(const char *url, unsigned long n)
{
    char ch[96];
    chan_name(ch, sizeof(ch), "decimate");
    mcl_broker_client *w = connect_c(url, "bench-writer"), *r = connect_c(url, "bench-reader");
    counter c[1];
    atomic_init(&c[0].n, 0);
    atomic_init(&c[0].hold, 0);
    uint32_t sub, wid;
    mcl_broker_reader_options ro = {.buffer = 1024, .policy = MCL_BROKER_BLOCK, .every = 10};
    if (mcl_broker_create(w, ch, NULL) != MCL_OK ||
        mcl_broker_subscribe(r, ch, &ro, on_frame, c, &sub) != MCL_OK ||
        mcl_broker_writer(w, ch, NULL, NULL, NULL, &wid) != MCL_OK)
        die("decimate setup");
    wait_active(w, wid, true);
    uint64_t t0 = now_ns();
    unsigned long sent = mcl_write(w, wid, n, 20);
    unsigned long want = sent / 10;
    (void)wait_done(c, 1, want + 1, t0 + 25000000000ull); // +1: would show an extra one
    sleep_ms(200);                                          // (and anything late)
    unsigned long got = sum(c, 1);
    long diff = (long)got - (long)want;
    printf("broker case=decimate impl=mcl every=10 offered=%lu delivered=%lu expected=%lu "
           "diff=%ld ok=%d\n",
           sent, got, want, diff, diff >= -1 && diff <= 1);
    mcl_broker_client_free(r);
    mcl_broker_client_free(w);
}

// --- brokered RPC ------------------------------------------------------------------------------

static void
h_echo(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    const void *d = NULL;
    size_t len = 0;
    (void)mcl_value_get_bin(mcl_value_find(args, "d"), &d, &len);
    (void)mcl_value_put_bin(mcl_rpc_req_result(rq), "d", d, len);
    (void)mcl_rpc_reply(rq);
}

typedef struct rpcb {
    mcl_rpc_client *rc;
    mcl_value *args;
#ifdef MCL_BENCH_NATS
    natsConnection *nc;
#endif
} rpcb;

static void
once_mcl(void *arg)
{
    rpcb *b = arg;
    mcl_rpc_result *r;
    if (mcl_rpc_call(b->rc, "echo.ping", b->args, 5000, &r) != MCL_OK ||
        r->status != MCL_PSTREAM_OK)
        die("brokered call failed");
    mcl_rpc_result_free(r);
}

#ifdef MCL_BENCH_NATS
static void
nats_echo(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *user)
{
    (void)sub, (void)user;
    if (natsMsg_GetReply(m) != NULL)
        (void)natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m),
                                     natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
}

static void
once_nats(void *arg)
{
    rpcb *b = arg;
    static const char d[MSG] = {0};
    natsMsg *reply = NULL;
    if (natsConnection_Request(&reply, b->nc, "bench.echo", d, MSG, 5000) != NATS_OK)
        die("nats request failed");
    natsMsg_Destroy(reply);
}

static natsConnection *
nats_conn(const char *url, bool send_asap)
{
    natsConnection *nc = NULL;
    natsOptions *o = NULL;
    // SendAsap: publishes go out at once rather than through the flusher thread (NATS's own
    // advice for latency; without it a request-reply waits ~1 ms on that thread).
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetURL(o, url);
    if (s == NATS_OK && send_asap)
        s = natsOptions_SetSendAsap(o, true);
    if (s == NATS_OK)
        s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        fprintf(stderr, "mcl-bench-broker: nats %s: %s\n", url, natsStatus_GetText(s));
        exit(1);
    }
    return nc;
}
#endif

static void
case_rpc(const char *url, const char *nats_url, size_t n)
{
    uint64_t *lat = malloc(n * sizeof(*lat));
    if (lat == NULL)
        die("out of memory");
    rpcb b = {0};
    mcl_broker_client *resp = connect_c(url, "bench-responder"), *caller = connect_c(url, "bench-caller");
    mcl_rpc_service *svc;
    static const mcl_rpc_field df[] = {{"d", MCL_TYPE_BIN, false, NULL, NULL}};
    const mcl_rpc_method m[] = {{1, "echo.ping", "returns d", df, 1, df, 1, 0, h_echo, NULL}};
    char svcname[64];
    snprintf(svcname, sizeof(svcname), "echo%ld", (long)getpid());
    if (mcl_rpc_service_new(&svc, "echo", NULL, NULL) != MCL_OK ||
        mcl_rpc_service_add(svc, m, 1, NULL, 0) != MCL_OK ||
        mcl_broker_serve_rpc(resp, svcname, svc) != MCL_OK ||
        mcl_broker_rpc_client(caller, svcname, &b.rc) != MCL_OK)
        die("brokered rpc setup");
    static const char d[MSG] = {0};
    if (mcl_value_new(&b.args, MCL_TYPE_MAP) != MCL_OK ||
        mcl_value_put_bin(b.args, "d", d, sizeof(d)) != MCL_OK)
        die("arguments");
    rtt_loop(n, lat, once_mcl, &b);
    report_rtt("broker", impl_of(url), MSG, lat, n, NULL);
    fflush(stdout);
    mcl_value_free(b.args);
    mcl_rpc_client_free(b.rc, 1000);
    mcl_broker_client_free(caller);
    mcl_broker_client_free(resp);
    mcl_rpc_service_free(svc, 1000);
#ifdef MCL_BENCH_NATS
    if (strcmp(nats_url, "-") != 0) {
        natsConnection *rs = nats_conn(nats_url, true);
        natsSubscription *sub;
        if (natsConnection_Subscribe(&sub, rs, "bench.echo", nats_echo, NULL) != NATS_OK ||
            natsConnection_Flush(rs) != NATS_OK)
            die("nats subscribe");
        b.nc = nats_conn(nats_url, true);
        rtt_loop(n, lat, once_nats, &b);
        report_rtt("broker", "nats", MSG, lat, n, NULL);
        natsSubscription_Destroy(sub);
        natsConnection_Destroy(b.nc);
        natsConnection_Destroy(rs);
    }
#else
    if (strcmp(nats_url, "-") != 0)
        printf("broker case=rtt impl=nats n/a=not-built\n");
#endif
    free(lat);
}

// --- gating ------------------------------------------------------------------------------------

// The broker's `offered` counter of channel ch (broker.stats).
static long long
offered_of(mcl_broker_client *c, const char *ch)
{
    mcl_value *a;
    mcl_rpc_result *r;
    long long got = -1;
    if (mcl_value_new(&a, MCL_TYPE_MAP) != MCL_OK || mcl_value_put_str(a, "name", ch) != MCL_OK ||
        mcl_rpc_call(mcl_broker_rpc(c), "broker.stats", a, 5000, &r) != MCL_OK)
        die("broker.stats");
    if (r->status == MCL_PSTREAM_OK) {
        const mcl_value *chs = mcl_value_find(r->value, "channels");
        for (size_t i = 0; chs != NULL && i < mcl_value_count(chs); i++) {
            const mcl_value *e = mcl_value_item(chs, i);
            const char *nm = NULL;
            size_t nl = 0;
            if (mcl_value_get_str(mcl_value_find(e, "name"), &nm, &nl) == MCL_OK && nm != NULL &&
                nl == strlen(ch) && memcmp(nm, ch, nl) == 0) {
                uint64_t v = 0;
                (void)mcl_value_get_uint(mcl_value_find(e, "offered"), &v);
                got = (long long)v;
            }
        }
    }
    mcl_rpc_result_free(r);
    mcl_value_free(a);
    return got;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
case_gating(const char *url, int rounds)
{
    enum { PUTS = 1000 };
    char ch[96];
    chan_name(ch, sizeof(ch), "gating");
    mcl_broker_client *w = connect_c(url, "bench-writer"), *r = connect_c(url, "bench-reader");
    uint32_t wid, sub;
    counter c[1];
    atomic_init(&c[0].n, 0);
    atomic_init(&c[0].hold, 0);
    if (mcl_broker_create(w, ch, NULL) != MCL_OK ||
        mcl_broker_writer(w, ch, NULL, NULL, NULL, &wid) != MCL_OK)
        die("gating setup");
    uint64_t *lat = calloc((size_t)rounds, sizeof(*lat));
    if (lat == NULL)
        die("out of memory");
    char buf[MSG] = {0};
    unsigned long refused = 0, not_again = 0;
    long long leaked = 0;
    int inactive_first = 0;
    for (int i = 0; i < rounds; i++) {
        if (mcl_broker_subscribe(r, ch, NULL, on_frame, c, &sub) != MCL_OK)
            die("subscribe");
        wait_active(w, wid, true);
        if (mcl_broker_put_wait(w, wid, buf, sizeof(buf), 2000) != MCL_OK)
            die("put while active");
        uint64_t t0 = now_ns();
        if (mcl_broker_unsubscribe(r, sub) != MCL_OK)
            die("unsubscribe");
        // Was the writer told before unsubscribe returned (the broker sends INACTIVE first)?
        inactive_first += !mcl_broker_writer_active(w, wid);
        wait_active(w, wid, false);
        lat[i] = now_ns() - t0; // from the unsubscribe call
        long long before = offered_of(r, ch);
        mcl_broker_counts k0, k1;
        (void)mcl_broker_counts_of(w, wid, &k0);
        for (int j = 0; j < PUTS; j++)
            if (mcl_broker_put(w, wid, buf, sizeof(buf)) != MCL_EAGAIN)
                not_again++;
        (void)mcl_broker_counts_of(w, wid, &k1);
        refused += (unsigned long)(k1.refused_inactive - k0.refused_inactive);
        sleep_ms(20); // anything sent would have reached the broker by now
        leaked += offered_of(r, ch) - before;
    }
    qsort(lat, (size_t)rounds, sizeof(*lat), cmp_u64);
    printf("broker case=gating impl=mcl rounds=%d inactive_p50_us=%.1f inactive_max_us=%.1f "
           "inactive_by_unsubscribe_return=%d puts=%d refused_inactive=%lu not_eagain=%lu broker_offered_while_inactive=%lld "
           "ok=%d\n",
           rounds, (double)lat[rounds / 2] / 1e3, (double)lat[rounds - 1] / 1e3,
           inactive_first, rounds * PUTS, refused, not_again, leaked,
           refused == (unsigned long)rounds * PUTS && not_again == 0 && leaked == 0);
    free(lat);
    mcl_broker_client_free(r);
    mcl_broker_client_free(w);
}

// --- peers -------------------------------------------------------------------------------------

#ifdef MCL_BENCH_NATS
static void
nats_count(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *user)
{
    (void)nc, (void)sub;
    atomic_fetch_add_explicit(&((counter *)user)->n, 1, memory_order_relaxed);
    natsMsg_Destroy(m);
}

static void
case_fanout_nats(const char *url, unsigned long n, double secs)
{
    natsConnection *pub = nats_conn(url, false), *sc[READERS];
    natsSubscription *sub[READERS];
    counter c[READERS];
    for (int i = 0; i < READERS; i++) {
        atomic_init(&c[i].n, 0);
        sc[i] = nats_conn(url, false);
        if (natsConnection_Subscribe(&sub[i], sc[i], "bench.fan", nats_count, &c[i]) != NATS_OK ||
            natsSubscription_SetPendingLimits(sub[i], -1, -1) != NATS_OK ||
            natsConnection_Flush(sc[i]) != NATS_OK)
            die("nats subscribe");
    }
    char buf[MSG];
    memset(buf, 'x', sizeof(buf));
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    unsigned long i;
    for (i = 0; i < n; i++) {
        if ((i & 255) == 0 && now_ns() > end)
            break;
        if (natsConnection_Publish(pub, "bench.fan", buf, sizeof(buf)) != NATS_OK)
            break;
    }
    (void)natsConnection_Flush(pub);
    uint64_t t1 = wait_done(c, READERS, i * READERS, t0 + (uint64_t)((secs + 2) * 1e9));
    int64_t dropped = 0;
    for (int k = 0; k < READERS; k++) {
        int64_t d = 0;
        (void)natsSubscription_GetDropped(sub[k], &d);
        dropped += d;
    }
    char extra[64];
    snprintf(extra, sizeof(extra), "client_dropped=%lld", (long long)dropped);
    report_fanout("fanout", "nats", i, READERS, c, t0, t1, extra);
    for (int k = 0; k < READERS; k++) {
        natsSubscription_Destroy(sub[k]);
        natsConnection_Destroy(sc[k]);
    }
    natsConnection_Destroy(pub);
}
#endif

#ifdef MCL_BENCH_MOSQ
static atomic_int mosq_subscribed;

static void
mosq_on_msg(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
    (void)m, (void)msg;
    atomic_fetch_add_explicit(&((counter *)user)->n, 1, memory_order_relaxed);
}

static void
mosq_on_sub(struct mosquitto *m, void *user, int mid, int n, const int *qos)
{
    (void)m, (void)user, (void)mid, (void)n, (void)qos;
    atomic_fetch_add(&mosq_subscribed, 1);
}

// URL: HOST:PORT
static struct mosquitto *
mosq_conn(const char *url, void *user)
{
    char host[64];
    int port = 1883;
    if (sscanf(url, "%63[^:]:%d", host, &port) < 1)
        die("mosquitto URL (HOST:PORT)");
    struct mosquitto *m = mosquitto_new(NULL, true, user);
    if (m == NULL || mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS)
        die("mosquitto connect");
    return m;
}

static void
case_fanout_mosq(const char *url, unsigned long n, double secs)
{
    mosquitto_lib_init();
    struct mosquitto *pub = mosq_conn(url, NULL), *sc[READERS];
    counter c[READERS];
    for (int i = 0; i < READERS; i++) {
        atomic_init(&c[i].n, 0);
        sc[i] = mosq_conn(url, &c[i]);
        mosquitto_message_callback_set(sc[i], mosq_on_msg);
        mosquitto_subscribe_callback_set(sc[i], mosq_on_sub);
        if (mosquitto_subscribe(sc[i], NULL, "bench/fan", 0) != MOSQ_ERR_SUCCESS ||
            mosquitto_loop_start(sc[i]) != MOSQ_ERR_SUCCESS)
            die("mosquitto subscribe");
    }
    if (mosquitto_loop_start(pub) != MOSQ_ERR_SUCCESS)
        die("mosquitto loop");
    uint64_t until = now_ns() + 5000000000ull;
    while (atomic_load(&mosq_subscribed) < READERS && now_ns() < until)
        sleep_ms(1);
    char buf[MSG];
    memset(buf, 'x', sizeof(buf));
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(secs * 1e9);
    unsigned long i;
    for (i = 0; i < n; i++) {
        if ((i & 255) == 0 && now_ns() > end)
            break;
        if (mosquitto_publish(pub, NULL, "bench/fan", sizeof(buf), buf, 0, false) !=
            MOSQ_ERR_SUCCESS)
            break;
    }
    uint64_t t1 = wait_done(c, READERS, i * READERS, t0 + (uint64_t)((secs + 2) * 1e9));
    report_fanout("fanout", "mosq", i, READERS, c, t0, t1, "qos=0");
    for (int k = 0; k < READERS; k++) {
        mosquitto_disconnect(sc[k]);
        mosquitto_loop_stop(sc[k], true);
        mosquitto_destroy(sc[k]);
    }
    mosquitto_disconnect(pub);
    mosquitto_loop_stop(pub, true);
    mosquitto_destroy(pub);
    mosquitto_lib_cleanup();
}
#endif

#ifdef MCL_BENCH_ZMQ
// The XPUB side, in a child pinned to CPU 0: waits for READERS subscriptions, sends n (or for
// secs), then an empty end message per reader; the count sent goes back on the pipe.
static void
xpub_child(int port, unsigned long n, double secs, int wfd)
{
    pin(0);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_XPUB);
    int hwm = 1000, one = 1, to = 5000;
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof(one));
    zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &one, sizeof(one)); // every reader's subscription
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof(to));
    if (zmq_bind(s, ep) != 0)
        _exit(1);
    char sb[8];
    for (int k = 0; k < READERS;)
        if (zmq_recv(s, sb, sizeof(sb), 0) < 0)
            _exit(1);
        else if (sb[0] == 1)
            k++;
    char buf[MSG];
    memset(buf, 'x', sizeof(buf));
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    unsigned long i;
    for (i = 0; i < n; i++) {
        if ((i & 255) == 0 && now_ns() > end)
            break;
        while (zmq_send(s, buf, sizeof(buf), 0) < 0)
            if (zmq_errno() != EAGAIN)
                _exit(1);
    }
    if (write(wfd, &i, sizeof(i)) != (ssize_t)sizeof(i))
        _exit(1);
    int linger = 2000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

typedef struct xsub {
    void *s;
    counter *c;
    uint64_t deadline;
} xsub;

static void *
xsub_main(void *arg)
{
    xsub *x = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (now_ns() < x->deadline) {
        if (zmq_msg_recv(&m, x->s, 0) < 0)
            continue; // RCVTIMEO: look at the deadline
        atomic_fetch_add_explicit(&x->c->n, 1, memory_order_relaxed);
    }
    zmq_msg_close(&m);
    return NULL;
}

static void
case_fanout_xpub(unsigned long n, double secs)
{
    int port = 27000 + (int)(getpid() % 2000), pfd[2];
    if (pipe(pfd) != 0)
        die("pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(pfd[0]);
        xpub_child(port, n, secs, pfd[1]);
    }
    close(pfd[1]);
    void *ctx = zmq_ctx_new();
    counter c[READERS];
    xsub x[READERS];
    pthread_t th[READERS];
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", port);
    uint64_t deadline = now_ns() + (uint64_t)((secs + 8) * 1e9);
    for (int i = 0; i < READERS; i++) {
        int hwm = 1000, to = 100;
        atomic_init(&c[i].n, 0);
        x[i] = (xsub){zmq_socket(ctx, ZMQ_SUB), &c[i], deadline};
        zmq_setsockopt(x[i].s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(x[i].s, ZMQ_RCVTIMEO, &to, sizeof(to));
        zmq_setsockopt(x[i].s, ZMQ_SUBSCRIBE, "", 0);
        zmq_connect(x[i].s, ep); // retried by libzmq until the child binds
    }
    uint64_t t0 = now_ns();
    // The clock starts when the first message arrives (the child's subscriptions wait is
    // not part of it): spin on the counters.
    while (sum(c, READERS) == 0 && now_ns() < deadline) {
        for (int i = 0; i < READERS; i++) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, x[i].s, ZMQ_DONTWAIT) >= 0) {
                atomic_fetch_add(&c[i].n, 1);
                t0 = now_ns();
            }
            zmq_msg_close(&m);
        }
    }
    for (int i = 0; i < READERS; i++)
        pthread_create(&th[i], NULL, xsub_main, &x[i]);
    unsigned long sent = 0;
    if (read(pfd[0], &sent, sizeof(sent)) != (ssize_t)sizeof(sent))
        die("the XPUB child failed");
    uint64_t t1 = wait_done(c, READERS, sent * READERS, t0 + (uint64_t)((secs + 2) * 1e9));
    report_fanout("fanout", "xpub", sent, READERS, c, t0, t1, "hwm=1000 nodrop=1");
    for (int i = 0; i < READERS; i++)
        x[i].deadline = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(th[i], NULL);
        zmq_close(x[i].s);
    }
    zmq_ctx_term(ctx);
    int st;
    waitpid(pid, &st, 0);
}
#endif

static void
usage(void)
{
    fprintf(stderr, "usage: mcl-bench-broker fanout mcl|nats|mosq|xpub URL N SECONDS\n"
                    "       mcl-bench-broker paused URL N SECONDS\n"
                    "       mcl-bench-broker decimate URL N\n"
                    "       mcl-bench-broker rpc URL NATS_URL|- N\n"
                    "       mcl-bench-broker gating URL ROUNDS\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3)
        usage();
    const char *cas = argv[1];
    if (strcmp(cas, "fanout") == 0 && argc == 6) {
        const char *impl = argv[2], *url = argv[3];
        unsigned long n = strtoul(argv[4], NULL, 10);
        double secs = atof(argv[5]);
        if (strcmp(impl, "mcl") == 0)
            case_fanout_mcl(url, n, secs);
        else if (strcmp(impl, "nats") == 0) {
#ifdef MCL_BENCH_NATS
            case_fanout_nats(url, n, secs);
#else
            printf("broker case=fanout impl=nats n/a=not-built\n");
#endif
        } else if (strcmp(impl, "mosq") == 0) {
#ifdef MCL_BENCH_MOSQ
            case_fanout_mosq(url, n, secs);
#else
            printf("broker case=fanout impl=mosq n/a=not-built\n");
#endif
        } else if (strcmp(impl, "xpub") == 0) {
#ifdef MCL_BENCH_ZMQ
            case_fanout_xpub(n, secs);
#else
            printf("broker case=fanout impl=xpub n/a=not-built\n");
#endif
        } else
            usage();
    } else if (strcmp(cas, "paused") == 0 && argc == 5)
        case_paused(argv[2], strtoul(argv[3], NULL, 10), atof(argv[4]));
    else if (strcmp(cas, "decimate") == 0 && argc == 4)
        case_decimate(argv[2], strtoul(argv[3], NULL, 10));
    else if (strcmp(cas, "rpc") == 0 && argc == 5)
        case_rpc(argv[2], argv[3], strtoul(argv[4], NULL, 10));
    else if (strcmp(cas, "gating") == 0 && argc == 4) {
        int rounds = atoi(argv[3]);
        case_gating(argv[2], rounds > 0 ? rounds : 1);
    } else
        usage();
    return 0;
}
