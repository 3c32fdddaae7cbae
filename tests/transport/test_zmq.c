// SPDX-License-Identifier: BSD-3-Clause
// The ZeroMQ transport: round trips over tcp, ipc and inproc through the same raw API as UDP,
// topic filters, lossless and dropping publishers under a stalled subscriber, the
// edge-triggered fd, waiting for subscribers, CURVE with right and wrong keys, forwarding.
#define _GNU_SOURCE
#include "harness.h"
#include "transport/zmq/zmq_int.h"

#include "raw/wire.h"

#include <mcl/log.h>
#include <mcl/message.h>
#include <mcl/queued.h>
#include <mcl/reactor.h>
#include <zmq.h>

#ifndef ZMQ_METADATA
#define ZMQ_METADATA 95
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[128];
static int counter;

// A broadcaster that binds (port 0 for tcp) and a listener that connects to its effective URL
// with `lopts` appended, once the broadcaster knows about the listener's subscription.
static void
zpair(const char *kind, const char *bopts, const char *lopts, const char *const *topics,
      size_t ntopics, mcl_raw_broadcaster **b, mcl_raw_listener **l)
{
    char url[512];
    if (strcmp(kind, "tcp") == 0)
        snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0%s", bopts);
    else if (strcmp(kind, "ipc") == 0)
        snprintf(url, sizeof(url), "zmq+ipc://%s/s%d%s", tmpdir, ++counter, bopts);
    else
        snprintf(url, sizeof(url), "zmq+inproc://t%d%s", ++counter, bopts);
    mcl_connection *c = mclt_parse(url);
    MCLT_OK(mcl_raw_broadcaster_open(b, c, "t"));
    mcl_connection_free(c);
    const char *eff = mcl_connection_url(mcl_raw_broadcaster_connection(*b));
    CU_ASSERT_FATAL(strstr(eff, ":0") == NULL || strcmp(kind, "tcp") != 0);
    // The listener connects to the same address with its own options.
    char lurl[512];
    snprintf(lurl, sizeof(lurl), "%.*s%s", (int)strcspn(eff, "?"), eff, lopts);
    c = mclt_parse(lurl);
    MCLT_OK(mcl_raw_listener_open(l, c, topics, ntopics));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(*b, 1, 5000));
}

static void
round_trip(const char *kind)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair(kind, "", "", NULL, 0, &b, &l);
    const size_t sizes[] = {0, 1, 64, 1000, 65536, 1 << 20, 3 << 20};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    uint8_t *buf = malloc(3 << 20);
    CU_ASSERT_FATAL(buf != NULL);
    for (size_t i = 0; i < (size_t)(3 << 20); i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < n; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, i % 2 ? "odd" : NULL, buf, sizes[i]));
    for (size_t i = 0; i < n; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        CU_ASSERT_EQUAL(m->len, sizes[i]);
        CU_ASSERT_EQUAL(m->seq, i);
        CU_ASSERT_EQUAL(m->publisher, mcl_raw_broadcaster_id(b));
        CU_ASSERT_STRING_EQUAL(m->topic, i % 2 ? "odd" : "t");
        CU_ASSERT(m->len == 0 || memcmp(m->payload, buf, m->len) == 0);
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, n);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.malformed, 0);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, n);
    CU_ASSERT_EQUAL(bs.subscribers, 1);
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 0), MCL_ETIMEDOUT);
    free(buf);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

static void
test_round_trip_tcp(void)
{
    round_trip("tcp");
}
static void
test_round_trip_ipc(void)
{
    round_trip("ipc");
}
static void
test_round_trip_inproc(void)
{
    round_trip("inproc");
}

// zmq+tcp over IPv6 loopback.
static void
test_round_trip_tcp6(void)
{
    mcl_connection *c = mclt_parse("zmq+tcp://[::1]:0");
    mcl_raw_broadcaster *b;
    mcl_err rv = mcl_raw_broadcaster_open(&b, c, "six");
    mcl_connection_free(c);
    if (rv != MCL_OK) {
        fprintf(stderr, "\n  no IPv6 loopback here (%s): skipped ", mcl_err_name(rv));
        return;
    }
    const char *eff = mcl_connection_url(mcl_raw_broadcaster_connection(b));
    CU_ASSERT(strncmp(eff, "zmq+tcp://[::1]:", 16) == 0 && strstr(eff, ":0") == NULL);
    c = mclt_parse(eff);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "v6", 2));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 2 && strcmp(m->topic, "six") == 0);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// Listener binds, several broadcasters connect (a collector).
static void
test_listener_binds(void)
{
    mcl_raw_listener *l;
    mcl_connection *c = mclt_parse("zmq+tcp://127.0.0.1:0?mode=bind");
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    const char *eff = mcl_raw_listener_url(l);
    CU_ASSERT(strstr(eff, ":0?") == NULL);
    char burl[256];
    snprintf(burl, sizeof(burl), "%.*s?mode=connect", (int)strcspn(eff, "?"), eff);
    mcl_raw_broadcaster *b[3];
    for (int i = 0; i < 3; i++) {
        c = mclt_parse(burl);
        MCLT_OK(mcl_raw_broadcaster_open(&b[i], c, "x"));
        mcl_connection_free(c);
        // A binding socket takes in new connections when it is used, so the listener must be
        // serviced (recv here; its thread or dispatch in an application) for its subscription
        // to reach the broadcaster.
        int64_t deadline = mclt_now_ms() + 5000;
        const mcl_raw_msg *m;
        while (mcl_raw_broadcaster_wait_for_subscribers(b[i], 1, 10) != MCL_OK &&
               mclt_now_ms() < deadline)
            CU_ASSERT(mcl_raw_listener_recv(l, &m, 0) == MCL_ETIMEDOUT);
        MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b[i], 1, 0));
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 10; k++)
            MCLT_OK(mcl_raw_broadcaster_publish(b[i], NULL, &k, sizeof(k)));
    int per[3] = {0};
    for (int got = 0; got < 30; got++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        for (int i = 0; i < 3; i++)
            if (m->publisher == mcl_raw_broadcaster_id(b[i])) {
                CU_ASSERT_EQUAL(m->seq, (uint64_t)per[i]);
                per[i]++;
            }
    }
    CU_ASSERT(per[0] == 10 && per[1] == 10 && per[2] == 10);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.publishers, 3);
    for (int i = 0; i < 3; i++)
        mcl_raw_broadcaster_free(b[i]);
    mcl_raw_listener_free(l);
}

static void
test_topic_filter(void)
{
    const char *topics[] = {"imu", "cam/*", ""};
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("tcp", "", "", topics, 3, &b, &l);
    const char *sent[] = {"imu", "imu2", "cam/left", "camx", "", "gps", "im", "cam/", "imu"};
    const char *want[] = {"imu", "cam/left", "", "cam/", "imu"};
    for (size_t i = 0; i < sizeof(sent) / sizeof(sent[0]); i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, sent[i], "x", 1));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "end", "x", 1)); // not subscribed either
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        CU_ASSERT_STRING_EQUAL(m->topic, want[i]);
    }
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 100), MCL_ETIMEDOUT);
    // The publisher filtered the other topics out: gaps in its numbers are not losses.
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.messages, 5);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// Lossless (the default): with the listener stalled, publish blocks, then times out after
// `timeout`, and what did go out arrives complete: no gap, no loss.
static void
test_lossless_blocks_then_times_out(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("ipc", "?hwm=20&timeout=200", "?hwm=20", NULL, 0, &b, &l);
    uint64_t sent = 0;
    mcl_err rv = MCL_OK;
    int64_t t0 = mclt_now_ms();
    char payload[1000] = {0};
    while (sent < 1000000 &&
           (rv = mcl_raw_broadcaster_publish(b, NULL, payload, sizeof(payload))) == MCL_OK)
        sent++;
    int64_t took = mclt_now_ms() - t0;
    CU_ASSERT_EQUAL(rv, MCL_ETIMEDOUT);
    CU_ASSERT(sent < 1000000);
    CU_ASSERT(took >= 190); // it blocked for the timeout before giving up
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, sent);
    CU_ASSERT_EQUAL(bs.errors, 1);
    // Now drain: every message sent arrives, in order; then one more goes through.
    for (uint64_t i = 0; i < sent; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        CU_ASSERT_EQUAL(m->seq, i);
    }
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "z", 1));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->seq == sent); // the refused message used no sequence number
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.messages, sent + 1);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// drop=1: publish never blocks; what the stalled listener missed is counted as lost. The
// listener takes one of two topics: the publisher filters the other one out, and those
// messages are not counted as lost (loss is counted per topic).
static void
test_drop_mode_counts_loss(void)
{
    const char *topics[] = {"x"};
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    // (heartbeats every 20 ms: one confirms the jump the marker shows, below)
    zpair("ipc", "?hwm=20&drop=1&heartbeat=20", "?hwm=20", topics, 1, &b, &l);
    char payload[1000] = {0};
    const uint64_t n = 5000;
    for (uint64_t i = 0; i < n; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, "x", payload, sizeof(payload)));
        MCLT_OK(mcl_raw_broadcaster_publish(b, "y", payload, sizeof(payload)));
    }
    // Drain what arrived, then a marker shows the gap before it. A gap of more than 1024 is
    // believed once confirmed (docs/security.md): here by the next heartbeat.
    uint64_t got = 0;
    const mcl_raw_msg *m;
    while (mcl_raw_listener_recv(l, &m, 200) == MCL_OK)
        got++;
    CU_ASSERT(got < n);
    MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "end", 3));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->seq == 2 * n);
    mcl_listener_stats st;
    int64_t t0 = mclt_now_ms();
    do {
        (void)mcl_raw_listener_recv(l, &m, 20);
        MCLT_OK(mcl_raw_listener_stats(l, &st));
    } while (st.messages + st.lost < n + 1 && mclt_now_ms() - t0 < 5000);
    CU_ASSERT_EQUAL(st.messages, got + 1);
    CU_ASSERT_EQUAL(st.messages + st.lost, n + 1);
    mcl_publisher_stats ps;
    size_t np;
    MCLT_OK(mcl_raw_listener_publishers(l, &ps, 1, &np));
    CU_ASSERT(np == 1 && ps.lost == st.lost);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

static int delivered_count;
static void
count_cb(const mcl_raw_msg *m, void *user)
{
    (void)m;
    (void)user;
    delivered_count++;
}

// ZMQ_FD is edge-triggered. dispatch(max 0) drains, so waiting on the fd afterwards is safe;
// Polls the listener's fd until pending() says a message waits, or deadline (ms) passes.
static bool
pending_by(mcl_raw_listener *l, int fd, int64_t deadline)
{
    while (!mcl_raw_listener_pending(l) && mclt_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, 50);
    }
    return mcl_raw_listener_pending(l);
}

// dispatch(max 1) leaves messages that the fd will not announce again, and pending() says so.
static void
test_edge_triggered_fd(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("tcp", "", "", NULL, 0, &b, &l);
    MCLT_OK(mcl_raw_listener_subscribe(l, count_cb, NULL));
    int fd;
    MCLT_OK(mcl_raw_listener_fd(l, &fd));
    delivered_count = 0;
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    // Wait until all five are in the socket's queue.
    int64_t deadline = mclt_now_ms() + 5000;
    CU_ASSERT_FATAL(pending_by(l, fd, deadline));
    size_t d = 0;
    // Take one at a time: the rest waits, and pending() (not the fd) tells.
    while (delivered_count < 5 && mclt_now_ms() < deadline) {
        if (!mcl_raw_listener_pending(l)) {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 50);
            continue;
        }
        MCLT_OK(mcl_raw_listener_dispatch(l, 1, &d));
    }
    CU_ASSERT_EQUAL(delivered_count, 5);
    // After dispatch(1) the fd is armed again only once pending() has said false (the
    // documented check before waiting; without it the burst below is never announced).
    CU_ASSERT(!mcl_raw_listener_pending(l));
    // A burst handled the documented way: poll the fd, dispatch(0), poll again. Nothing may
    // be left behind with the fd silent.
    delivered_count = 0;
    const int burst = 2000;
    int published = 0;
    deadline = mclt_now_ms() + 10000;
    while (delivered_count < burst && mclt_now_ms() < deadline) {
        for (int k = 0; k < 100 && published < burst; k++, published++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &published, sizeof(published)));
        // Only the fd wakes us: were an edge lost, the last frames would stay unread after the
        // final publish and the count below would fall short. (pending() right after
        // dispatch(0) may be true: frames keep arriving, and then the fd signals again.)
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) > 0)
            MCLT_OK(mcl_raw_listener_dispatch(l, 0, &d));
    }
    CU_ASSERT_EQUAL(delivered_count, burst);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// pending() reads a frame ahead (cheaper than asking libzmq for ZMQ_EVENTS): that frame comes
// back first, in order, from the next recv, none is lost or repeated, and a listener freed with
// one held ahead releases it (the sanitizer builds would see the leak). The publisher's
// last-heard time, recorded with the first record's accounting rather than under a lock of
// its own (rx.c), is each delivered message's arrival time.
static void
test_pending_reads_ahead(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("tcp", "?coalesce=0", "", NULL, 0, &b, &l);
    int fd;
    MCLT_OK(mcl_raw_listener_fd(l, &fd));
    CU_ASSERT(!mcl_raw_listener_pending(l));
    for (uint64_t round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
        CU_ASSERT_FATAL(pending_by(l, fd, mclt_now_ms() + 5000));
        CU_ASSERT(mcl_raw_listener_pending(l)); // (asked again: still the same frame)
        for (uint64_t i = 0; i < 3; i++) {
            const mcl_raw_msg *m;
            // The first without waiting: it was read ahead. The others may still be on the way.
            MCLT_OK(mcl_raw_listener_recv(l, &m, i == 0 ? 0 : 5000));
            if (m == NULL)
                break;
            CU_ASSERT_EQUAL(m->seq, round * 3 + i);
            mcl_publisher_stats ps;
            size_t np = 0;
            MCLT_OK(mcl_raw_listener_publishers(l, &ps, 1, &np));
            CU_ASSERT(np == 1 && ps.last_mono_ns == m->recv_mono_ns);
            CU_ASSERT(np == 1 && ps.messages == round * 3 + i + 1);
        }
    }
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 0), MCL_ETIMEDOUT);
    CU_ASSERT(!mcl_raw_listener_pending(l));
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 9);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    // One more, read ahead and never taken: freed with the listener.
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    CU_ASSERT(pending_by(l, fd, mclt_now_ms() + 5000));
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

static bool
subscribers_are(void *arg)
{
    void **a = arg;
    mcl_broadcaster_stats st;
    // wait_for_subscribers with 0 returns at once and reads the notices.
    mcl_raw_broadcaster_wait_for_subscribers(a[0], 0, 0);
    mcl_raw_broadcaster_stats(a[0], &st);
    return st.subscribers == (uint64_t)(uintptr_t)a[1];
}

static void
test_wait_for_subscribers(void)
{
    mcl_connection *c = mclt_parse("zmq+tcp://127.0.0.1:0");
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, NULL));
    mcl_connection_free(c);
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 50), MCL_ETIMEDOUT);
    c = mclt_parse(mcl_connection_url(mcl_raw_broadcaster_connection(b)));
    const char *t1[] = {"a", "b", "c*"};
    mcl_raw_listener *l1, *l2;
    MCLT_OK(mcl_raw_listener_open(&l1, c, t1, 3)); // three subscriptions, one subscriber
    MCLT_OK(mcl_raw_listener_open(&l2, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 5000));
    mcl_broadcaster_stats st;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &st));
    CU_ASSERT_EQUAL(st.subscribers, 2);
    mcl_raw_listener_free(l1);
    void *arg[2] = {b, (void *)(uintptr_t)1};
    CU_ASSERT(mclt_wait_until(subscribers_are, arg, 5000));
    mcl_raw_listener_free(l2);
    arg[1] = (void *)(uintptr_t)0;
    CU_ASSERT(mclt_wait_until(subscribers_are, arg, 5000));
    // UDP has nothing to wait for.
    mcl_raw_broadcaster *u;
    c = mclt_parse("udp://239.255.78.1:26001?iface=lo&ttl=0");
    MCLT_OK(mcl_raw_broadcaster_open(&u, c, NULL));
    mcl_connection_free(c);
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(u, 1, 10), MCL_ENOTSUP);
    mcl_raw_broadcaster_free(u);
    mcl_raw_broadcaster_free(b);
}

static atomic_int logged_auth;
static void
log_sink(mcl_log_level level, const char *component, const char *text, void *user)
{
    (void)user;
    if (level == MCL_LOG_ERROR && strcmp(component, "zmq") == 0 &&
        strstr(text, "handshake") != NULL)
        atomic_fetch_add(&logged_auth, 1);
}

static void
test_curve(void)
{
    char spub[41], opub[41];
    mclt_write_curve_keys(tmpdir, "server", spub);
    mclt_write_curve_keys(tmpdir, "other", opub);
    char url[512];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/server.key", tmpdir);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "secret"));
    mcl_connection_free(c);
    uint16_t port = mcl_connection_port(mcl_raw_broadcaster_connection(b));

    // Right key (file), and right key given as text: both receive.
    mcl_raw_listener *good, *good2;
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/server.pub", port, tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&good, c, NULL, 0));
    mcl_connection_free(c);
    uint8_t bin[32];
    char hex[65];
    CU_ASSERT_FATAL(zmq_z85_decode(bin, spub) != NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", bin[i]);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s", port, hex);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&good2, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 5000));

    // Wrong server key, and no CURVE at all: refused, reported.
    mcl_log_set_handler(log_sink, NULL, MCL_LOG_ERROR);
    atomic_store(&logged_auth, 0);
    mcl_raw_listener *wrong, *plain;
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/other.pub", port, tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&wrong, c, NULL, 0));
    mcl_connection_free(c);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u", port);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&plain, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 3, 3000), MCL_EAUTH);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT(bs.auth_failures >= 2);
    CU_ASSERT_EQUAL(bs.subscribers, 2);
    CU_ASSERT(atomic_load(&logged_auth) >= 2);

    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "hello", 5));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(good, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 5 && memcmp(m->payload, "hello", 5) == 0);
    MCLT_OK(mcl_raw_listener_recv(good2, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 5);
    MCLT_ERR(mcl_raw_listener_recv(wrong, &m, 100), MCL_ETIMEDOUT);
    MCLT_ERR(mcl_raw_listener_recv(plain, &m, 100), MCL_ETIMEDOUT);
    mcl_listener_stats ls;
    MCLT_OK(mcl_raw_listener_stats(plain, &ls));
    CU_ASSERT_EQUAL(ls.messages, 0);
    mcl_log_set_handler(NULL, NULL, MCL_LOG_ERROR);
    mcl_raw_listener_free(wrong);
    mcl_raw_listener_free(plain);
    mcl_raw_listener_free(good);
    mcl_raw_listener_free(good2);
    mcl_raw_broadcaster_free(b);

    // A key file that does not exist, or is not a key file, is an open error that says so.
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/none.key", tmpdir);
    c = mclt_parse(url);
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, NULL), MCL_ENOENT);
    mcl_connection_free(c);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/server.pub", tmpdir);
    c = mclt_parse(url);
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, NULL), MCL_EAUTH); // no secret in it
    mcl_connection_free(c);
}

// The log line about a failed handshake is written while a publish asks for news of
// subscribers (every 256 publishes); it comes with no lock held, so a log handler may publish
// on that very broadcaster (it would deadlock under the broadcaster's or the socket's lock).
static mcl_raw_broadcaster *log_bc;
static atomic_int log_published, log_publish_failed;
static void
publishing_sink(mcl_log_level level, const char *component, const char *text, void *user)
{
    (void)user;
    if (level != MCL_LOG_ERROR || strcmp(component, "zmq") != 0 || !strstr(text, "handshake"))
        return;
    if (mcl_raw_broadcaster_publish(log_bc, NULL, "from the log", 12) == MCL_OK)
        atomic_fetch_add(&log_published, 1);
    else
        atomic_fetch_add(&log_publish_failed, 1);
}

static void
test_log_handler_may_publish(void)
{
    char spub[41], opub[41];
    mclt_write_curve_keys(tmpdir, "server2", spub);
    mclt_write_curve_keys(tmpdir, "other2", opub);
    char url[512];
    for (int batched = 0; batched < 2; batched++) {
        snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/server2.key%s", tmpdir,
                 batched ? "&batch=100" : "");
        mcl_connection *c = mclt_parse(url);
        MCLT_OK(mcl_raw_broadcaster_open(&log_bc, c, "t"));
        mcl_connection_free(c);
        uint16_t port = mcl_connection_port(mcl_raw_broadcaster_connection(log_bc));
        atomic_store(&log_published, 0);
        atomic_store(&log_publish_failed, 0);
        mcl_log_set_handler(publishing_sink, NULL, MCL_LOG_ERROR);
        mcl_raw_listener *wrong;
        snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/other2.pub", port,
                 tmpdir);
        c = mclt_parse(url);
        MCLT_OK(mcl_raw_listener_open(&wrong, c, NULL, 0));
        mcl_connection_free(c);
        // Publish until the failed handshake has been logged (bounded in count and time).
        int64_t end = mclt_now_ms() + 10000;
        for (long i = 0; i < 10000000 && atomic_load(&log_published) == 0 &&
                         atomic_load(&log_publish_failed) == 0 && mclt_now_ms() < end;
             i++)
            MCLT_OK(mcl_raw_broadcaster_publish(log_bc, NULL, "x", 1));
        mcl_log_set_handler(NULL, NULL, MCL_LOG_ERROR);
        CU_ASSERT_EQUAL(atomic_load(&log_published), 1);
        CU_ASSERT_EQUAL(atomic_load(&log_publish_failed), 0);
        mcl_raw_listener_free(wrong);
        mcl_raw_broadcaster_free(log_bc);
    }
}

// curve_clients=: the server accepts only the client keys listed (a ZAP handler); others are
// refused, and both sides count and log it.
static void
test_curve_clients(void)
{
    char spub[41], apub[41], mpub[41];
    mclt_write_curve_keys(tmpdir, "srv2", spub);
    mclt_write_curve_keys(tmpdir, "alice", apub);
    mclt_write_curve_keys(tmpdir, "mallory", mpub);
    char path[256];
    snprintf(path, sizeof(path), "%s/allowed", tmpdir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "# who may subscribe\npublic = %s\n", apub);
    fclose(f);
    char url[768];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/srv2.key&curve_clients=%s", tmpdir,
             path);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, NULL));
    mcl_connection_free(c);
    uint16_t port = mcl_connection_port(mcl_raw_broadcaster_connection(b));
    mcl_raw_listener *alice, *mallory, *anon;
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/srv2.pub&curve=%s/alice.key",
             port, tmpdir, tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&alice, c, NULL, 0));
    mcl_connection_free(c);
    snprintf(url, sizeof(url),
             "zmq+tcp://127.0.0.1:%u?curve_server=%s/srv2.pub&curve=%s/mallory.key", port, tmpdir,
             tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&mallory, c, NULL, 0));
    mcl_connection_free(c);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/srv2.pub", port, tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&anon, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 3000), MCL_EAUTH);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "for alice", 9));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(alice, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 9);
    MCLT_ERR(mcl_raw_listener_recv(mallory, &m, 200), MCL_ETIMEDOUT);
    MCLT_ERR(mcl_raw_listener_recv(anon, &m, 200), MCL_ETIMEDOUT);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(mallory, &st));
    CU_ASSERT(st.auth_failures >= 1); // the refused client knows why
    CU_ASSERT_EQUAL(st.messages, 0);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT(bs.auth_failures >= 2);
    CU_ASSERT_EQUAL(bs.subscribers, 1);
    mcl_raw_listener_free(alice);
    mcl_raw_listener_free(mallory);
    mcl_raw_listener_free(anon);
    mcl_raw_broadcaster_free(b);
    // A client list on a client, or a bad list, is refused.
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:1?curve_server=%s/srv2.pub&curve_clients=%s",
             tmpdir, path);
    mcl_connection *bad = NULL;
    MCLT_ERR(mcl_connection_parse(&bad, url, NULL, 0), MCL_EURL);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/srv2.key&curve_clients=%s/srv2.key",
             tmpdir, tmpdir);
    c = mclt_parse(url);
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, NULL), MCL_EAUTH); // a secret line is not a key
    mcl_connection_free(c);
}

// A wrong CURVE key is counted on both sides, the side that binds and the side that connects
// (whose server just hangs up), and logged once per peer however often the client retries
// (every 100 ms); the broadcaster's waits that end with failed handshakes add no lines.
static atomic_int once_bound, once_connecting, once_other;
static void
once_sink(mcl_log_level level, const char *component, const char *text, void *user)
{
    (void)level;
    (void)user;
    if (strcmp(component, "zmq") == 0 && strstr(text, "handshake with a peer on") != NULL)
        atomic_fetch_add(&once_bound, 1);
    else if (strcmp(component, "zmq") == 0 && strstr(text, "handshake with the server at"))
        atomic_fetch_add(&once_connecting, 1);
    else if (strstr(text, "handshake") != NULL)
        atomic_fetch_add(&once_other, 1);
}

typedef struct once_pair {
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    uint64_t want;
} once_pair;

// Services both sides a little; true once each has counted `want` failed handshakes.
static bool
once_counted(void *arg)
{
    once_pair *p = arg;
    const mcl_raw_msg *m;
    mcl_err rv = mcl_raw_broadcaster_wait_for_subscribers(p->b, 1, 20);
    CU_ASSERT(rv == MCL_EAUTH || rv == MCL_ETIMEDOUT);
    CU_ASSERT_EQUAL(mcl_raw_listener_recv(p->l, &m, 20), MCL_ETIMEDOUT);
    mcl_broadcaster_stats bs;
    mcl_listener_stats ls;
    MCLT_OK(mcl_raw_broadcaster_stats(p->b, &bs));
    MCLT_OK(mcl_raw_listener_stats(p->l, &ls));
    return bs.auth_failures >= p->want && ls.auth_failures >= p->want;
}

static void
test_curve_failures_counted_and_logged_once(void)
{
    char spub[41], opub[41];
    mclt_write_curve_keys(tmpdir, "once_srv", spub);
    mclt_write_curve_keys(tmpdir, "once_other", opub);
    for (int listener_binds = 0; listener_binds < 2; listener_binds++) {
        char url[512];
        once_pair p = {.want = 15}; // about 1.5 s of retries: longer than any rate limit
        mcl_connection *c;
        if (!listener_binds) { // the usual way: the broadcaster is the server
            snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/once_srv.key", tmpdir);
            c = mclt_parse(url);
            MCLT_OK(mcl_raw_broadcaster_open(&p.b, c, NULL));
            mcl_connection_free(c);
            snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/once_other.pub",
                     mcl_connection_port(mcl_raw_broadcaster_connection(p.b)), tmpdir);
            c = mclt_parse(url);
            MCLT_OK(mcl_raw_listener_open(&p.l, c, NULL, 0));
            mcl_connection_free(c);
        } else { // a collector: the listener binds and is the server
            snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?mode=bind&curve=%s/once_srv.key",
                     tmpdir);
            c = mclt_parse(url);
            MCLT_OK(mcl_raw_listener_open(&p.l, c, NULL, 0));
            mcl_connection_free(c);
            snprintf(url, sizeof(url),
                     "zmq+tcp://127.0.0.1:%u?mode=connect&curve_server=%s/once_other.pub",
                     mcl_connection_port(mcl_raw_listener_connection(p.l)), tmpdir);
            c = mclt_parse(url);
            MCLT_OK(mcl_raw_broadcaster_open(&p.b, c, NULL));
            mcl_connection_free(c);
        }
        atomic_store(&once_bound, 0);
        atomic_store(&once_connecting, 0);
        atomic_store(&once_other, 0);
        mcl_log_set_handler(once_sink, NULL, MCL_LOG_WARN);
        CU_ASSERT(mclt_wait_until(once_counted, &p, 10000));
        mcl_log_set_handler(NULL, NULL, MCL_LOG_ERROR);
        mcl_broadcaster_stats bs;
        mcl_listener_stats ls;
        MCLT_OK(mcl_raw_broadcaster_stats(p.b, &bs));
        MCLT_OK(mcl_raw_listener_stats(p.l, &ls));
        CU_ASSERT(bs.auth_failures >= p.want);
        CU_ASSERT(ls.auth_failures >= p.want);
        CU_ASSERT_EQUAL(bs.subscribers, 0);
        CU_ASSERT_EQUAL(ls.messages, 0);
        // One line on each side, for all those retries; nothing else about them.
        CU_ASSERT_EQUAL(atomic_load(&once_bound), 1);
        CU_ASSERT_EQUAL(atomic_load(&once_connecting), 1);
        CU_ASSERT_EQUAL(atomic_load(&once_other), 0);
        if (atomic_load(&once_bound) != 1 || atomic_load(&once_connecting) != 1 ||
            atomic_load(&once_other) != 0)
            fprintf(stderr, "listener_binds=%d: %d lines (bound), %d (connecting), %d other\n",
                    listener_binds, atomic_load(&once_bound), atomic_load(&once_connecting),
                    atomic_load(&once_other));
        mcl_raw_listener_free(p.l);
        mcl_raw_broadcaster_free(p.b);
    }
}

// Connections that close before any handshake (port scans, health checks) are not key
// failures, and they do not disturb the other connections (the handshake monitor is only on
// CURVE sockets, only for key failures, and its queue never blocks libzmq's I/O thread).
static void
test_port_scan_is_not_an_auth_failure(void)
{
    char pub[41];
    mclt_write_curve_keys(tmpdir, "scan", pub);
    char url[512];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/scan.key", tmpdir);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, NULL));
    mcl_connection_free(c);
    uint16_t port = mcl_connection_port(mcl_raw_broadcaster_connection(b));
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/scan.pub", port, tmpdir);
    c = mclt_parse(url);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int scans = 0;
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            break;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            scans++;
        close(fd);
    }
    CU_ASSERT(scans > 150);
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
    for (int i = 0; i < 10; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
    }
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 200), MCL_ETIMEDOUT);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.auth_failures, 0);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// A batch frame may exceed a listener's maxmsg; each record is still within it.
static void
test_batch_frame_larger_than_maxmsg(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("ipc", "?maxmsg=1k&batch=500000", "?maxmsg=1k", NULL, 0, &b, &l);
    char payload[900] = {0};
    for (int i = 0; i < 50; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, payload, sizeof(payload)));
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.datagrams, 1); // all 50 in one frame of 46 KB
    for (int i = 0; i < 50; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        CU_ASSERT_EQUAL(m->seq, (uint64_t)i);
    }
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// Forwarding keeps the original publisher id and sequence (what mcl-bridge relies on).
static void
test_forward_keeps_identity(void)
{
    mcl_raw_broadcaster *b, *fwd;
    mcl_raw_listener *l, *far;
    zpair("inproc", "", "", NULL, 0, &b, &l);
    zpair("tcp", "", "", NULL, 0, &fwd, &far);
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, "orig", &i, sizeof(i)));
    for (int i = 0; i < 3; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        MCLT_OK(mcl_raw_broadcaster_forward(fwd, m));
    }
    for (int i = 0; i < 3; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(far, &m, 5000));
        if (m == NULL)
            break;
        CU_ASSERT_EQUAL(m->publisher, mcl_raw_broadcaster_id(b));
        CU_ASSERT_EQUAL(m->seq, (uint64_t)i);
        CU_ASSERT_STRING_EQUAL(m->topic, "orig");
    }
    // The forwarder's own numbering is untouched.
    MCLT_OK(mcl_raw_broadcaster_publish(fwd, NULL, "own", 3));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(far, &m, 5000));
    CU_ASSERT(m != NULL && m->publisher == mcl_raw_broadcaster_id(fwd) && m->seq == 0);
    mcl_raw_listener_free(l);
    mcl_raw_listener_free(far);
    mcl_raw_broadcaster_free(b);
    mcl_raw_broadcaster_free(fwd);
}

// Foreign traffic on the socket (not our framing) is counted as malformed, never delivered,
// and the listener keeps going.
static void
test_foreign_frames_are_counted(void)
{
    mcl_connection *c = mclt_parse("zmq+tcp://127.0.0.1:0?mode=bind");
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    char ep[256];
    const char *eff = mcl_raw_listener_url(l);
    snprintf(ep, sizeof(ep), "tcp://%.*s", (int)strcspn(eff + 10, "?"), eff + 10);
    void *ctx = zmq_ctx_new();
    void *pub = zmq_socket(ctx, ZMQ_XPUB);
    CU_ASSERT_FATAL(pub != NULL && zmq_connect(pub, ep) == 0);
    char sub[64];
    const mcl_raw_msg *m;
    int64_t deadline = mclt_now_ms() + 5000;
    int got = -1; // the listener's subscription arrives once the listener is used
    while (got <= 0 && mclt_now_ms() < deadline) {
        CU_ASSERT(mcl_raw_listener_recv(l, &m, 10) == MCL_ETIMEDOUT);
        got = zmq_recv(pub, sub, sizeof(sub), ZMQ_DONTWAIT);
    }
    CU_ASSERT_FATAL(got > 0);
    uint8_t frame[256];
    // No NUL after a topic; a NUL then too short for the topic number; a NUL, a number, then
    // garbage; a truncated record; two frames. (A frame: TOPIC NUL TSEQ(8) DATAGRAM.)
    CU_ASSERT(zmq_send(pub, "garbage without a nul", 21, 0) == 21);
    CU_ASSERT(zmq_send(pub, "t\0short", 8, 0) == 8);
    CU_ASSERT(zmq_send(pub, "t\0\0\0\0\0\0\0\0\0MCLxgarbage", 22, 0) == 22);
    size_t n = 3 + 8;
    memcpy(frame, "ok", 3);
    memset(frame + 3, 0, 8);
    n += mcl__wire_put_hdr(frame + n, 0, 1, 42);
    n += mcl__wire_put_rec(frame + n, 0, "ok", 2, 100); // claims 100 bytes, has 4
    memcpy(frame + n, "good", 4);
    CU_ASSERT(zmq_send(pub, frame, n + 4, 0) == (int)(n + 4));
    CU_ASSERT(zmq_send(pub, "a", 1, ZMQ_SNDMORE) == 1);
    CU_ASSERT(zmq_send(pub, "b", 1, 0) == 1);
    // Then a good one.
    n = 3 + 8;
    n += mcl__wire_put_hdr(frame + n, 0, 1, 42);
    n += mcl__wire_put_rec(frame + n, 1, "ok", 2, 4);
    memcpy(frame + n, "good", 4);
    CU_ASSERT(zmq_send(pub, frame, n + 4, 0) == (int)(n + 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->publisher == 42 && m->seq == 1 && m->len == 4);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.malformed, 5);
    CU_ASSERT_EQUAL(st.messages, 1);
    int zero = 0;
    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(pub);
    zmq_ctx_term(ctx);
    mcl_raw_listener_free(l);
}

// Broadcasters of one process on the same bound endpoint share its socket (as UDP
// broadcasters share a group); each keeps its own publisher id and sequence.
static void
test_broadcasters_share_an_endpoint(void)
{
    mcl_raw_broadcaster *b1, *b2, *b3;
    mcl_raw_listener *l;
    zpair("ipc", "", "", NULL, 0, &b1, &l);
    const char *url = mcl_connection_url(mcl_raw_broadcaster_connection(b1));
    mcl_connection *c = mclt_parse(url);
    MCLT_OK(mcl_raw_broadcaster_open(&b2, c, "two"));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b2, 1, 5000));
    char other[512];
    snprintf(other, sizeof(other), "%s?hwm=5", url);
    c = mclt_parse(other);
    MCLT_ERR(mcl_raw_broadcaster_open(&b3, c, NULL), MCL_EADDRINUSE);
    mcl_connection_free(c);
    for (int i = 0; i < 5; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b1, NULL, "1", 1));
        MCLT_OK(mcl_raw_broadcaster_publish(b2, NULL, "2", 1));
    }
    mcl_raw_broadcaster_free(b1); // b2 keeps the socket open
    MCLT_OK(mcl_raw_broadcaster_publish(b2, NULL, "2", 1));
    uint64_t n1 = 0, n2 = 0;
    for (int i = 0; i < 11; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            break;
        if (m->publisher == mcl_raw_broadcaster_id(b2)) {
            CU_ASSERT_EQUAL(m->seq, n2);
            CU_ASSERT_STRING_EQUAL(m->topic, "two");
            n2++;
        } else {
            CU_ASSERT_EQUAL(m->seq, n1);
            n1++;
        }
    }
    CU_ASSERT(n1 == 5 && n2 == 6);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_broadcaster_free(b2);
    mcl_raw_listener_free(l);
}

// batch= on zmq: records of one topic share a frame; a topic change, a message too large
// for a frame, flush and close end a frame. Filtering and numbering are unchanged.
static void
test_batching(void)
{
    const char *topics[] = {"a"};
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l, *all;
    zpair("tcp", "?batch=1000000", "", topics, 1, &b, &l);
    const char *eff = mcl_connection_url(mcl_raw_broadcaster_connection(b));
    char url[256];
    snprintf(url, sizeof(url), "%.*s", (int)strcspn(eff, "?"), eff);
    mcl_connection *c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&all, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 5000));
    static uint8_t big[200000];
    uint64_t n = 0;
    for (int i = 0; i < 3000; i++, n++) {
        const char *t = i % 1000 == 999 ? "b" : "a";
        MCLT_OK(mcl_raw_broadcaster_publish(b, t, &i, sizeof(i)));
        if (i == 1500) {
            MCLT_OK(mcl_raw_broadcaster_publish(b, "a", big, sizeof(big)));
            n++;
        }
    }
    // Nothing forces the last frame out but flush (the timer is 1 s away).
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, n);
    CU_ASSERT(bs.datagrams < n / 10); // packed
    uint64_t got_a = 0, got_all = 0;
    uint64_t last = UINT64_MAX;
    while (mcl_raw_listener_recv(all, &m, 2000) == MCL_OK) {
        CU_ASSERT(last == UINT64_MAX || m->seq == last + 1);
        last = m->seq;
        got_all++;
        if (got_all == n)
            break;
    }
    CU_ASSERT_EQUAL(got_all, n);
    while (got_a < n - 3 && mcl_raw_listener_recv(l, &m, 2000) == MCL_OK) {
        CU_ASSERT_STRING_EQUAL(m->topic, "a");
        got_a++;
    }
    CU_ASSERT_EQUAL(got_a, n - 3);
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 50), MCL_ETIMEDOUT);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    MCLT_OK(mcl_raw_listener_stats(all, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    // Close sends what waits.
    MCLT_OK(mcl_raw_broadcaster_publish(b, "a", "tail", 4));
    MCLT_OK(mcl_raw_broadcaster_close(b));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 4);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_raw_listener_free(all);
}

// The frames a broadcaster has sent (its `datagrams` statistic).
static uint64_t
frames_of(mcl_raw_broadcaster *b)
{
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    return bs.datagrams;
}

static bool
frames_reach(void *arg)
{
    void **a = arg;
    return frames_of(a[0]) >= *(uint64_t *)a[1];
}

// Reads n messages and checks that they are seq first, first + 1, ... (nothing lost or
// reordered), with the payload each was published with (its own number).
static void
read_in_order(mcl_raw_listener *l, uint64_t first, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m == NULL)
            return;
        CU_ASSERT_EQUAL(m->seq, first + i);
        uint64_t v = UINT64_MAX;
        if (m->len == sizeof(v))
            memcpy(&v, m->payload, sizeof(v));
        CU_ASSERT_EQUAL(v, first + i);
    }
}

// Coalescing (on by default): over zmq+inproc a frame drains only when the listener reads
// it, so a listener that does not read is a slow peer whatever the machine's speed. The first
// message goes out alone before publish returns; those that follow while it waits are packed
// (into few frames: the mcl-batcher thread may send one every 100 us), and the listener gets
// every message in order, each with its own number, none lost.
static void
test_coalescing_under_load(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("inproc", "", "", NULL, 0, &b, &l);
    const uint64_t n = 1000;
    for (uint64_t i = 0; i < n; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
        if (i == 0)
            CU_ASSERT_EQUAL(frames_of(b), 1); // the lone first message: its own frame, now
    }
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    uint64_t frames = frames_of(b);
    CU_ASSERT(frames >= 2 && frames <= n / 4);
    read_in_order(l, 0, n);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, n);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.datagrams, frames);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, n);
    CU_ASSERT_EQUAL(bs.errors, 0);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// compress= over zmq: compressed messages interleaved with small coalesced ones arrive in
// order, whole, on tcp and inproc, counted on both sides.
static void
test_compressed_with_coalescing(void)
{
    const char *kinds[] = {"inproc", "tcp"};
    for (size_t k = 0; k < 2; k++) {
        mcl_raw_broadcaster *b;
        mcl_raw_listener *l;
        zpair(kinds[k], "?compress=lz4&compress_min=1k", "", NULL, 0, &b, &l);
        static uint8_t big[200000];
        for (size_t i = 0; i < sizeof(big); i++)
            big[i] = (uint8_t)(i / 1000);
        const uint64_t n = 300;
        for (uint64_t i = 0; i < n; i++) {
            if (i % 50 == 25) {
                memcpy(big, &i, sizeof(i));
                MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, big, sizeof(big)));
            } else {
                MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
            }
        }
        MCLT_OK(mcl_raw_broadcaster_flush(b));
        for (uint64_t i = 0; i < n; i++) {
            const mcl_raw_msg *m;
            MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
            CU_ASSERT_EQUAL_FATAL(m->seq, i);
            uint64_t v;
            memcpy(&v, m->payload, sizeof(v));
            CU_ASSERT_EQUAL(v, i);
            CU_ASSERT_EQUAL(m->len, i % 50 == 25 ? sizeof(big) : sizeof(i));
            if (m->len == sizeof(big))
                CU_ASSERT(memcmp((const uint8_t *)m->payload + 8, big + 8, sizeof(big) - 8) == 0);
        }
        mcl_listener_stats st;
        MCLT_OK(mcl_raw_listener_stats(l, &st));
        mcl_broadcaster_stats bs;
        MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
        CU_ASSERT_EQUAL(st.messages, n);
        CU_ASSERT_EQUAL(st.lost, 0);
        CU_ASSERT_EQUAL(st.compressed, n / 50);
        CU_ASSERT_EQUAL(bs.compressed, n / 50);
        CU_ASSERT_EQUAL(st.compressed_bytes, bs.compressed_out);
        CU_ASSERT(bs.compressed_out * 20 < bs.compressed_in);
        mcl_raw_listener_free(l);
        mcl_raw_broadcaster_free(b);
    }
}

// A message that finds what was sent before it drained is not held: it is its own frame
// before publish returns (no timing involved: the frame counter says so).
static void
test_coalescing_lone_message_not_delayed(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("inproc", "", "", NULL, 0, &b, &l);
    for (uint64_t i = 0; i < 20; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
        CU_ASSERT_EQUAL(frames_of(b), i + 1);
        read_in_order(l, i, 1);
        // A read that finds nothing releases the frame read before (libzmq frees it then).
        const mcl_raw_msg *m;
        MCLT_ERR(mcl_raw_listener_recv(l, &m, 0), MCL_ETIMEDOUT);
    }
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// What is held leaves on flush, on close, and by itself (the mcl-batcher thread) when
// nothing else sends it; order and numbers are kept across topics, a message too large for
// a batch frame, and filtering listeners.
static void
test_coalescing_flush_close_and_timer(void)
{
    const char *topics[] = {"a"};
    mcl_raw_broadcaster *b;
    mcl_raw_listener *la;
    zpair("tcp", "", "", topics, 1, &b, &la);
    // First over tcp, filtered to "a": topics change and a message too large for a batch
    // frame comes between, in a burst; every "a" arrives, in order, with its own number.
    static uint8_t big[100000];
    uint64_t seq = 0;
    for (int i = 0; i < 300; i++) {
        if (i == 150) {
            MCLT_OK(mcl_raw_broadcaster_publish(b, "a", big, sizeof(big)));
            seq++;
        }
        MCLT_OK(mcl_raw_broadcaster_publish(b, i % 7 == 6 ? "b" : "a", &seq, sizeof(seq)));
        seq++;
    }
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    uint64_t got = 0, last = UINT64_MAX;
    const mcl_raw_msg *m;
    while (got < 300 - 42 + 1 && mcl_raw_listener_recv(la, &m, 5000) == MCL_OK) {
        CU_ASSERT_STRING_EQUAL(m->topic, "a");
        CU_ASSERT(last == UINT64_MAX || m->seq > last);
        if (m->len == sizeof(uint64_t)) {
            uint64_t v;
            memcpy(&v, m->payload, sizeof(v));
            CU_ASSERT_EQUAL(v, m->seq);
        }
        last = m->seq;
        got++;
    }
    CU_ASSERT_EQUAL(got, 300 - 42 + 1);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(la, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_listener_free(la);
    mcl_raw_broadcaster_free(b);

    // Then over zmq+inproc, where frames drain only when read; without heartbeats, which
    // would send what is held too.
    mcl_raw_listener *l;
    zpair("inproc", "?heartbeat=0", "", NULL, 0, &b, &l);
    uint64_t v = 0;
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &v, sizeof(v))); // alone
    for (v = 1; v < 4; v++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &v, sizeof(v))); // held
    // On a quick machine the three leave in one frame; on a loaded one (ASan, a busy core)
    // the 100 us timer may send some of them before the next is published, so frame counts
    // are bounded, not exact. That each step sent everything it held is proved by the
    // listener reading all nine, in order, at the end.
    CU_ASSERT(frames_of(b) <= 4);
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    uint64_t f = frames_of(b); // flush sent what was held
    CU_ASSERT(f >= 2 && f <= 4);
    // Held again (the frames are not read yet); nothing but the mcl-batcher sends them now.
    for (; v < 6; v++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &v, sizeof(v)));
    uint64_t want = f + 1;
    void *arg[2] = {b, &want};
    CU_ASSERT(mclt_wait_until(frames_reach, arg, 5000));
    CU_ASSERT(frames_of(b) <= f + 2);
    // Held once more; close sends them before the socket closes.
    uint64_t g = frames_of(b);
    for (; v < 9; v++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &v, sizeof(v)));
    MCLT_OK(mcl_raw_broadcaster_close(b));
    CU_ASSERT(frames_of(b) >= g + 1 && frames_of(b) <= g + 3);
    read_in_order(l, 0, 9);
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 9);
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// coalesce=0: one frame per message, however slow the peer.
static void
test_coalesce_off(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("inproc", "?coalesce=0", "", NULL, 0, &b, &l);
    CU_ASSERT(strstr(mcl_connection_url(mcl_raw_broadcaster_connection(b)), "coalesce=0") !=
              NULL);
    for (uint64_t i = 0; i < 200; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
        CU_ASSERT_EQUAL(frames_of(b), i + 1);
    }
    read_in_order(l, 0, 200);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

static atomic_int reactor_got;
static void
reactor_cb(const mcl_raw_msg *m, void *user)
{
    (void)m;
    (void)user;
    atomic_fetch_add(&reactor_got, 1);
}

static bool
reactor_done(void *arg)
{
    return atomic_load(&reactor_got) >= *(int *)arg;
}

// A zmq listener on the reactor's own thread: its ZMQ_FD in epoll, drained on each wake-up.
static void
test_reactor(void)
{
    mcl_raw_broadcaster *b;
    mcl_raw_listener *l;
    zpair("tcp", "", "", NULL, 0, &b, &l);
    MCLT_OK(mcl_raw_listener_subscribe(l, reactor_cb, NULL));
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_handle h;
    MCLT_OK(mcl_reactor_add_raw_listener(r, l, &h));
    MCLT_OK(mcl_reactor_start(r));
    atomic_store(&reactor_got, 0);
    int want = 0;
    for (int burst = 0; burst < 20; burst++) {
        for (int i = 0; i < 100; i++, want++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
        CU_ASSERT_FATAL(mclt_wait_until(reactor_done, &want, 5000));
    }
    CU_ASSERT_EQUAL(atomic_load(&reactor_got), 2000);
    MCLT_OK(mcl_reactor_stop(r));
    mcl_reactor_free(r);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// Typed messages over zmq: a type registered with a zmq URL, a message broadcaster and a
// message listener, decoding on arrival.
static void
test_messages(void)
{
    const mcl_field f[] = {{"speed", MCL_TYPE_FLOAT}, {"gear", MCL_TYPE_INT}};
    const mcl_msgtype *t;
    char url[256];
    snprintf(url, sizeof(url), "zmq+ipc://%s/msgs", tmpdir);
    MCLT_OK(mcl_msgtype_define(&t, "ZmqCar", f, 2, url, "car", NULL, 0));
    mcl_msg_broadcaster *b;
    MCLT_OK(mcl_msg_broadcaster_open(&b, t, NULL, NULL));
    mcl_msg_listener *l;
    MCLT_OK(mcl_msg_listener_open(&l, t, NULL, NULL, 0));
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(mcl_msg_broadcaster_raw(b), 1, 5000));
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, t));
    MCLT_OK(mcl_msg_set_double(m, "speed", 12.5));
    MCLT_OK(mcl_msg_set_int(m, "gear", 3));
    MCLT_OK(mcl_msg_broadcaster_publish(b, m, NULL));
    const mcl_msg *got;
    const mcl_raw_msg *raw;
    MCLT_OK(mcl_msg_listener_recv(l, &got, &raw, 5000));
    if (got != NULL) {
        CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(got)));
        CU_ASSERT_STRING_EQUAL(raw->topic, "car");
    }
    mcl_msg_free(m);
    mcl_msg_listener_free(l);
    mcl_msg_broadcaster_free(b);
    MCLT_OK(mcl_msgtype_remove("ZmqCar"));
}

static bool
queued_has_subscriber(void *arg)
{
    return mcl_raw_broadcaster_wait_for_subscribers(arg, 1, 0) == MCL_OK;
}

// The queued listener over zmq: its receiver process opens its own socket; a killed receiver
// is replaced, and what was published meanwhile is counted (lost or restart_lost), not hidden.
static void
test_queued_listener(void)
{
    // The receiver is forked before any libzmq thread runs in this process (see below), so
    // the listener connects first and the broadcaster binds afterwards (ipc allows that).
    char burl[256];
    snprintf(burl, sizeof(burl), "zmq+ipc://%s/queued", tmpdir);
    mcl_connection *c = mclt_parse(burl);
    mcl_queued_options o = {.no_thread = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "q"));
    mcl_connection_free(c);
    CU_ASSERT_FATAL(mclt_wait_until(queued_has_subscriber, b, 5000));
    for (uint32_t i = 0; i < 1000; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
    for (uint32_t i = 0; i < 1000; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_queued_listener_recv(ql, &m, 5000));
        if (m == NULL)
            break;
        uint32_t v;
        memcpy(&v, m->payload, sizeof(v));
        CU_ASSERT_EQUAL(v, i);
        CU_ASSERT_EQUAL(m->seq, i);
    }
    mcl_queued_stats st;
    MCLT_OK(mcl_queued_listener_stats(ql, &st));
    CU_ASSERT_EQUAL(st.delivered, 1000);
    CU_ASSERT_EQUAL(st.receiver.lost, 0);
    // Kill the receiver; publish while it is gone, then after the new one has subscribed.
    // The broadcaster is closed around the restart and opened again on the same port: the
    // receiver is forked while no libzmq thread runs in this process, because under ASan a
    // fork while another thread allocates can deadlock the child in ASan's allocator (glibc's
    // malloc is fork-safe; this is a test-build limitation).
    CU_ASSERT_FATAL(st.receiver_pid > 0);
    uint64_t got = 0; // delivered after the first 1000
    for (uint32_t i = 1000; i < 1010; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i))); // some may be lost
    mcl_raw_broadcaster_free(b);
    kill(st.receiver_pid, SIGKILL);
    const mcl_raw_msg *m;
    int64_t deadline = mclt_now_ms() + 5000;
    do {
        // lets the listener notice and restart
        got += mcl_queued_listener_recv(ql, &m, 10) == MCL_OK;
        MCLT_OK(mcl_queued_listener_stats(ql, &st));
    } while (st.restarts == 0 && mclt_now_ms() < deadline);
    CU_ASSERT_FATAL(st.restarts == 1);
    c = mclt_parse(burl);
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "q"));
    mcl_connection_free(c);
    deadline = mclt_now_ms() + 5000;
    while (mcl_raw_broadcaster_wait_for_subscribers(b, 1, 10) != MCL_OK && mclt_now_ms() < deadline)
        got += mcl_queued_listener_recv(ql, &m, 0) == MCL_OK;
    uint32_t last = 0;
    // The new broadcaster is a new publisher: its first message arrives with nothing lost.
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &(uint32_t){2000}, sizeof(uint32_t)));
    while (last != 2000 && mcl_queued_listener_recv(ql, &m, 5000) == MCL_OK) {
        memcpy(&last, m->payload, sizeof(last));
        got++;
    }
    CU_ASSERT_EQUAL(last, 2000);
    MCLT_OK(mcl_queued_listener_stats(ql, &st));
    // The first publisher's last 10 were delivered before the kill, or lost with the receiver
    // (a tail loss: no later message of that publisher shows the gap).
    CU_ASSERT(got >= 1 && got <= 11);
    CU_ASSERT_EQUAL(st.delivered, 1000 + got);
    CU_ASSERT_EQUAL(st.restarts, 1);
    mcl_queued_listener_free(ql);

    // inproc cannot reach another process; a bind needs a fixed port.
    c = mclt_parse("zmq+inproc://q");
    MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_ENOTSUP);
    mcl_connection_free(c);
    c = mclt_parse("zmq+tcp://127.0.0.1:0?mode=bind");
    MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_EINVAL);
    mcl_connection_free(c);
    mcl_raw_broadcaster_free(b);
}

static int
suite_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mcl-zmq-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    return 0;
}

static int
suite_cleanup(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : 1;
}


// --- hostile subscribers (issue 18) -------------------------------------------------------------

// A raw libzmq SUB (its own context) on the broadcaster's port that never reconnects. With
// `hello` it imitates a listener's handshake (metadata and hello: what can be faked without
// CURVE) and so counts as one subscriber.
static void *
raw_sub(void **ctxp, uint16_t port, int rcvhwm, bool hello)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0, never = -1;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &never, sizeof(never));
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero)); // every subscription goes out
    if (rcvhwm > 0)
        zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
    uint8_t h[13] = {0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3, 4, 5, 6, 7, (uint8_t)port};
    if (hello) {
        char meta[64] = "X-Mcl-Hello:";
        for (int i = 0; i < 8; i++)
            snprintf(meta + strlen(meta), 3, "%02x", h[5 + i]);
        CU_ASSERT_EQUAL(zmq_setsockopt(s, ZMQ_METADATA, meta, strlen(meta)), 0);
    }
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%u", port);
    CU_ASSERT_EQUAL(zmq_connect(s, ep), 0);
    if (hello)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, h, sizeof(h));
    *ctxp = ctx;
    return s;
}

static void
raw_close(void *ctx, void *s)
{
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

static mcl_raw_broadcaster *
tcp_broadcaster(const char *opts, uint16_t *port)
{
    char url[256];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0%s", opts);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b = NULL;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "t"));
    mcl_connection_free(c);
    *port = b != NULL ? mcl_connection_port(mcl_raw_broadcaster_connection(b)) : 0;
    return b;
}

static mcl_raw_listener *
tcp_listener(uint16_t port, const char *opts)
{
    char url[256];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u%s", port, opts);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_listener *l = NULL;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    return l;
}

// A subscriber that never reads holds a lossless broadcaster for `stall` ms at most: then it
// is disconnected, counted and logged, and a genuine listener gets everything.
static void
test_stalled_subscriber_is_dropped(void)
{
    uint16_t port;
    // timeout=3000: before the bound existed, the publish gave up (or, with inf, hung).
    mcl_raw_broadcaster *b = tcp_broadcaster("?hwm=10&stall=300&timeout=3000", &port);
    CU_ASSERT_FATAL(b != NULL);
    void *rctx, *raw = raw_sub(&rctx, port, 10, true);
    zmq_setsockopt(raw, ZMQ_SUBSCRIBE, "", 0); // everything, and never read
    mcl_raw_listener *l = tcp_listener(port, "");
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 5000));
    char payload[4096] = {0};
    const uint64_t n = 3000;
    uint64_t got = 0;
    int64_t worst = 0;
    for (uint64_t i = 0; i < n; i++) {
        int64_t t0 = mclt_now_ms();
        mcl_err rv = mcl_raw_broadcaster_publish(b, NULL, payload, sizeof(payload));
        int64_t dt = mclt_now_ms() - t0;
        worst = dt > worst ? dt : worst;
        if (rv != MCL_OK) {
            CU_FAIL("publish failed: a stalled subscriber held the broadcaster");
            break;
        }
        const mcl_raw_msg *m;
        while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
            got++;
    }
    const mcl_raw_msg *m;
    while (got < n && mcl_raw_listener_recv(l, &m, 2000) == MCL_OK)
        got++;
    CU_ASSERT(worst < 2000); // one stall (300 ms) and the disconnection
    CU_ASSERT_EQUAL(got, n);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_broadcaster_stats bs;
    (void)mcl_raw_broadcaster_wait_for_subscribers(b, 99, 0);
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.peers_dropped, 1);
    CU_ASSERT_EQUAL(bs.subscribers, 1);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
    raw_close(rctx, raw);
}

// A frame declared huge (100 MB) is refused before it is read (ZMQ_MAXMSGSIZE on the
// broadcaster's XPUB, which receives only subscriptions): memory does not grow while the
// client streams it, the client is disconnected, and a genuine listener is served.
static void
test_huge_frame_is_refused(void)
{
    uint16_t port;
    mcl_raw_broadcaster *b = tcp_broadcaster("", &port);
    CU_ASSERT_FATAL(b != NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    // ZMTP 3.0: greeting (NULL mechanism), READY as a SUB, then one long frame.
    uint8_t g[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    CU_ASSERT_EQUAL(send(fd, g, sizeof(g), MSG_NOSIGNAL), 64);
    uint8_t in[64];
    size_t got = 0;
    while (got < sizeof(in)) {
        ssize_t r = recv(fd, in + got, sizeof(in) - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CU_ASSERT_EQUAL(got, 64);
    uint8_t ready[] = {0x04, 25, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't',
                       '-', 'T', 'y', 'p', 'e', 0, 0, 0, 3, 'S', 'U', 'B'};
    CU_ASSERT_EQUAL(send(fd, ready, sizeof(ready), MSG_NOSIGNAL), (ssize_t)sizeof(ready));
    uint64_t declared = 100u << 20;
    uint8_t hdr[9] = {0x02};
    for (int i = 0; i < 8; i++)
        hdr[1 + i] = (uint8_t)(declared >> (56 - 8 * i));
    long before = rss_kib();
    size_t sent = 0;
    if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) == (ssize_t)sizeof(hdr)) {
        static uint8_t chunk[1 << 16];
        memset(chunk, 1, sizeof(chunk));
        int64_t end = mclt_now_ms() + 3000;
        while (sent < ((size_t)48 << 20) && mclt_now_ms() < end) {
            ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
            if (w <= 0)
                break; // disconnected (or no room for 2 s)
            sent += (size_t)w;
        }
    }
    long grown = rss_kib() - before;
    CU_ASSERT(grown < 24 * 1024); // it took 48 MiB into a 100 MB message before
    CU_ASSERT(sent < ((size_t)48 << 20));
    close(fd);
    mcl_raw_listener *l = tcp_listener(port, "");
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "ok", 2));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

// A client that subscribes thousands of topics is disconnected at the cap and counted.
static void
test_subscription_cap(void)
{
    uint16_t port;
    mcl_raw_broadcaster *b = tcp_broadcaster("", &port);
    CU_ASSERT_FATAL(b != NULL);
    void *rctx, *raw = raw_sub(&rctx, port, 0, false);
    for (int i = 0; i < 6000; i++) {
        char t[32];
        int n = snprintf(t, sizeof(t), "flood/%08d", i);
        zmq_setsockopt(raw, ZMQ_SUBSCRIBE, t, (size_t)n);
    }
    mcl_broadcaster_stats bs = {0};
    int64_t end = mclt_now_ms() + 5000;
    while (bs.peers_dropped == 0 && mclt_now_ms() < end) {
        (void)mcl_raw_broadcaster_wait_for_subscribers(b, 99, 50);
        MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    }
    CU_ASSERT_EQUAL(bs.peers_dropped, 1);
    // A genuine listener still gets in (the flood's prefixes are gone with it).
    mcl_raw_listener *l = tcp_listener(port, "");
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "ok", 2));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
    raw_close(rctx, raw);
}

// Hellos that a plain subscription makes count nothing; a connection that imitates the
// handshake counts once, whatever number of hellos it sends.
static void
test_fake_hellos_are_not_counted(void)
{
    uint16_t port;
    mcl_raw_broadcaster *b = tcp_broadcaster("", &port);
    CU_ASSERT_FATAL(b != NULL);
    void *c1, *plain = raw_sub(&c1, port, 0, false);
    void *c2, *imit = raw_sub(&c2, port, 0, true);
    for (int i = 0; i < 20; i++) {
        uint8_t h[13] = {0xff, 0xff, 0xff, 0xff, 0, 'f', 'a', 'k', 'e', 0, 0, 0, (uint8_t)i};
        zmq_setsockopt(plain, ZMQ_SUBSCRIBE, h, sizeof(h));
        h[9] = 1;
        zmq_setsockopt(imit, ZMQ_SUBSCRIBE, h, sizeof(h)); // not its own id
    }
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000)); // the imitator, once
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 1000), MCL_ETIMEDOUT);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.subscribers, 1);
    mcl_raw_listener *l = tcp_listener(port, "");
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 5000));
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
    raw_close(c1, plain);
    raw_close(c2, imit);
}

static char captured[4096];
static void
capture_sink(mcl_log_level level, const char *component, const char *text, void *user)
{
    (void)level;
    (void)component;
    (void)user;
    size_t n = strlen(captured);
    snprintf(captured + n, sizeof(captured) - n, "%s\n", text);
}

// Opens a broadcaster on url in a child process; the child's result, or -1 when it did not end
// within ms (a key file that blocks or never ends).
static int
open_in_child(const char *url, int ms)
{
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10); // never outlives the test
        mcl_connection *c = NULL;
        if (mcl_connection_parse(&c, url, NULL, 0) != MCL_OK)
            _exit(100);
        mcl_raw_broadcaster *b = NULL;
        mcl_err rv = mcl_raw_broadcaster_open(&b, c, "t");
        _exit((int)rv);
    }
    int64_t end = mclt_now_ms() + ms;
    int st = 0;
    while (mclt_now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
        poll(NULL, 0, 10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

// Key files that are not regular files fail at once with MCL_EINVAL, saying so.
static void
test_key_file_not_regular(void)
{
    char fifo[256], url[512];
    snprintf(fifo, sizeof(fifo), "%s/key.fifo", tmpdir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(fifo, 0600), 0);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=/dev/zero");
    int zero_rv = open_in_child(url, 2000);
    CU_ASSERT_EQUAL(zero_rv, MCL_EINVAL);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s", fifo);
    CU_ASSERT_EQUAL(open_in_child(url, 2000), MCL_EINVAL);
    char spub[41];
    mclt_write_curve_keys(tmpdir, "srvk", spub);
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/srvk.key&curve_clients=/dev/zero",
             tmpdir);
    CU_ASSERT_EQUAL(open_in_child(url, 2000), MCL_EINVAL);
    // The message says why (in this process, once it is known not to block).
    if (zero_rv != MCL_EINVAL)
        return;
    captured[0] = '\0';
    mcl_log_set_handler(capture_sink, NULL, MCL_LOG_DEBUG);
    mcl_connection *c = mclt_parse("zmq+tcp://127.0.0.1:0?curve=/dev/zero");
    mcl_raw_broadcaster *b = NULL;
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, "t"), MCL_EINVAL);
    mcl_connection_free(c);
    mcl_log_set_handler(NULL, NULL, MCL_LOG_ERROR);
    CU_ASSERT(strstr(captured, "/dev/zero: not a regular file") != NULL);
    unlink(fifo);
}

// A listener on a host that does not resolve, or on an ipc path whose directory does not
// exist, fails at open with a message naming it (libzmq would retry for ever, in silence).
static void
test_unreachable_listener_fails(void)
{
    mcl_connection *c = mclt_parse("zmq+tcp://no-such-host.invalid:5555");
    mcl_raw_listener *l = NULL;
    MCLT_ERR(mcl_raw_listener_open(&l, c, NULL, 0), MCL_ENOENT);
    mcl_connection_free(c);
    char url[256];
    snprintf(url, sizeof(url), "zmq+ipc://%s/no-such-dir/s.sock", tmpdir);
    c = mclt_parse(url);
    MCLT_ERR(mcl_raw_listener_open(&l, c, NULL, 0), MCL_ENOENT);
    mcl_connection_free(c);
    // A socket not made yet in a directory that exists: the broadcaster may come later.
    snprintf(url, sizeof(url), "zmq+ipc://%s/later.sock", tmpdir);
    c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    mcl_raw_listener_free(l);
}

static CU_TestInfo tests[] = {
    {"round_trip_tcp", test_round_trip_tcp},
    {"round_trip_ipc", test_round_trip_ipc},
    {"round_trip_inproc", test_round_trip_inproc},
    {"round_trip_tcp6", test_round_trip_tcp6},
    {"listener_binds", test_listener_binds},
    {"topic_filter", test_topic_filter},
    {"lossless_blocks_then_times_out", test_lossless_blocks_then_times_out},
    {"drop_mode_counts_loss", test_drop_mode_counts_loss},
    {"edge_triggered_fd", test_edge_triggered_fd},
    {"pending_reads_ahead", test_pending_reads_ahead},
    {"wait_for_subscribers", test_wait_for_subscribers},
    {"curve", test_curve},
    {"curve_clients", test_curve_clients},
    {"curve_failures_counted_and_logged_once", test_curve_failures_counted_and_logged_once},
    {"log_handler_may_publish", test_log_handler_may_publish},
    {"port_scan_is_not_an_auth_failure", test_port_scan_is_not_an_auth_failure},
    {"batch_frame_larger_than_maxmsg", test_batch_frame_larger_than_maxmsg},
    {"forward_keeps_identity", test_forward_keeps_identity},
    {"foreign_frames_are_counted", test_foreign_frames_are_counted},
    {"queued_listener", test_queued_listener},
    {"batching", test_batching},
    {"coalescing_under_load", test_coalescing_under_load},
    {"compressed_with_coalescing", test_compressed_with_coalescing},
    {"coalescing_lone_message_not_delayed", test_coalescing_lone_message_not_delayed},
    {"coalescing_flush_close_and_timer", test_coalescing_flush_close_and_timer},
    {"coalesce_off", test_coalesce_off},
    {"messages", test_messages},
    {"reactor", test_reactor},
    {"broadcasters_share_an_endpoint", test_broadcasters_share_an_endpoint},
    {"stalled_subscriber_is_dropped", test_stalled_subscriber_is_dropped},
    {"huge_frame_is_refused", test_huge_frame_is_refused},
    {"subscription_cap", test_subscription_cap},
    {"fake_hellos_are_not_counted", test_fake_hellos_are_not_counted},
    {"key_file_not_regular", test_key_file_not_regular},
    {"unreachable_listener_fails", test_unreachable_listener_fails},
    CU_TEST_INFO_NULL,
};

MCLT_SUITE("transport_zmq", suite_init, suite_cleanup, tests);
