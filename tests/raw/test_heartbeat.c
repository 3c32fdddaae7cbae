// SPDX-License-Identifier: BSD-3-Clause
// Heartbeats (docs/wire-format.md): the test vector byte for byte, the decoder against hostile
// heartbeats, the engine's use of them (loss at the end of a stream, late messages after all,
// forged claims not believed, goodbye and silence as presence events), and broadcasters and
// listeners end to end on inproc:// (names, pid, host; presence callbacks) and zmq+tcp://
// with a topic filter.
#define _GNU_SOURCE
#include "harness.h"
#include "core/internal.h"
#include "raw/rx.h"
#include "raw/wire.h"

#include <mcl/raw.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mcl__rx_cfg cfg = {.maxmsg = 1 << 20, .expire_ns = 2000000000, .partmem = 1 << 24};

// The vector of docs/wire-format.md: publisher 0102030405060708, next seq 100, every 1000 ms,
// pid 4660, host "h1", program "sim", topics imu (90 messages) and gps (10).
static const uint8_t vector[] = {
    0x4d, 0x43, 0x4c, 0x01, 0x04, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, // header: flags 04 (HB), count 1
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64, // next_seq 100
    0x00, 0x00, 0x03, 0xe8,                         // interval 1000
    0x00, 0x00, 0x12, 0x34,                         // pid 4660
    0x00, 0x00,                                     // flags
    0x02, 0x03,                                     // host_len 2, program_len 3
    0x00, 0x02, 0x00, 0x02,                         // 2 topics listed of 2
    0x68, 0x31, 0x73, 0x69, 0x6d,                   // "h1" "sim"
    0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5a, 0x69, 0x6d, 0x75, // imu 90
    0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x67, 0x70, 0x73, // gps 10
};

static size_t
put_vector(uint8_t *buf, size_t cap, uint64_t pub, uint64_t next, uint16_t flags)
{
    const char *topics[] = {"imu", "gps"};
    uint16_t tls[] = {3, 3};
    uint64_t counts[] = {90, 10};
    mcl__wire_hb hb = {.next_seq = next, .interval_ms = 1000, .pid = 0x1234, .flags = flags,
                       .host = (const uint8_t *)"h1", .host_len = 2,
                       .prog = (const uint8_t *)"sim", .prog_len = 3};
    return mcl__wire_put_hb(buf, cap, pub, &hb, topics, tls, counts, 2, 0);
}

static void
test_vector(void)
{
    uint8_t buf[256];
    size_t n = put_vector(buf, sizeof(buf), 0x0102030405060708ull, 100, 0);
    CU_ASSERT_EQUAL_FATAL(n, sizeof(vector));
    CU_ASSERT(memcmp(buf, vector, n) == 0);
    mcl__wire_hdr h;
    MCLT_OK(mcl__wire_check(&h, vector, sizeof(vector)));
    CU_ASSERT_EQUAL(h.flags, MCL__WIRE_F_HB);
    mcl__wire_hb hb;
    mcl__wire_hb_get(vector, sizeof(vector), &hb);
    CU_ASSERT_EQUAL(hb.next_seq, 100);
    CU_ASSERT_EQUAL(hb.interval_ms, 1000);
    CU_ASSERT_EQUAL(hb.pid, 0x1234);
    CU_ASSERT(hb.host_len == 2 && memcmp(hb.host, "h1", 2) == 0);
    CU_ASSERT(hb.prog_len == 3 && memcmp(hb.prog, "sim", 3) == 0);
    CU_ASSERT_EQUAL(hb.ntopics, 2);
    size_t off = 0;
    const uint8_t *t;
    uint16_t tl;
    uint64_t c;
    mcl__wire_hb_topic(hb.topics, &off, &t, &tl, &c);
    CU_ASSERT(tl == 3 && memcmp(t, "imu", 3) == 0 && c == 90);
    mcl__wire_hb_topic(hb.topics, &off, &t, &tl, &c);
    CU_ASSERT(tl == 3 && memcmp(t, "gps", 3) == 0 && c == 10);
    // Too small for both topics: one listed, the total says two; too small for the fixed part: 0.
    n = put_vector(buf, sizeof(vector) - 1, 1, 100, 0);
    MCLT_OK(mcl__wire_check(&h, buf, n));
    mcl__wire_hb_get(buf, n, &hb);
    CU_ASSERT(hb.ntopics == 1 && hb.topics_total == 2);
    CU_ASSERT_EQUAL(put_vector(buf, 20, 1, 100, 0), 0);
}

static void
test_hostile(void)
{
    mcl__wire_hdr h;
    uint8_t b[sizeof(vector) + 8];
    for (size_t n = 0; n < sizeof(vector); n++) // every truncation
        CU_ASSERT_NOT_EQUAL(mcl__wire_check(&h, vector, n), MCL_OK);
    memcpy(b, vector, sizeof(vector));
    b[sizeof(vector)] = 0;
    CU_ASSERT_EQUAL(mcl__wire_check(&h, b, sizeof(vector) + 1), MCL_EPROTO); // trailing byte
    struct {
        size_t at;
        uint8_t v;
    } bad[] = {
        {4, 0x05},  // HB with FRAG
        {7, 0x02},  // count 2
        {16 + 8, 0}, {16 + 9, 0}, {16 + 10, 0}, {16 + 11, 0}, // interval 0
        {16 + 17, 0x02},                  // an unknown heartbeat flag
        {16 + 18, 200},                   // host longer than the record
        {16 + 18, 64},                    // host over the limit
        {16 + 21, 3},                     // 3 listed of 2
        {16 + 24, 0x07},                  // a control byte in the host name
        {16 + 29, 0x04},                  // a topic longer than what follows
        {16 + 39, 0x00},                  // a NUL inside a topic
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(b, vector, sizeof(vector));
        if (bad[i].at == 16 + 8) // (the four bytes of the interval together)
            memset(b + 16 + 8, 0, 4);
        else if (bad[i].at > 16 + 8 && bad[i].at <= 16 + 11)
            continue;
        else
            b[bad[i].at] = bad[i].v;
        CU_ASSERT_EQUAL(mcl__wire_check(&h, b, sizeof(vector)), MCL_EPROTO);
    }
    // Random bytes behind a valid heartbeat header never read outside the buffer (ASan).
    uint64_t rng = 7;
    for (int k = 0; k < 20000; k++) {
        size_t n = 16 + mclt_rand(&rng) % 80;
        memcpy(b, vector, 16);
        for (size_t i = 16; i < n && i < sizeof(b); i++)
            b[i] = (uint8_t)mclt_rand(&rng);
        if (mcl__wire_check(&h, b, n) == MCL_OK && (h.flags & MCL__WIRE_F_HB)) {
            mcl__wire_hb hb;
            mcl__wire_hb_get(b, n, &hb);
            size_t off = 0;
            for (unsigned i = 0; i < hb.ntopics; i++) {
                const uint8_t *t;
                uint16_t tl;
                uint64_t c;
                mcl__wire_hb_topic(hb.topics, &off, &t, &tl, &c);
                CU_ASSERT(t + tl <= b + n);
            }
        }
    }
}

// --- the engine --------------------------------------------------------------------------------

static int64_t now_ns = 1000000000;

static void
feed(mcl__rx *rx, const uint8_t *d, size_t n, unsigned *delivered)
{
    mcl__rx_meta meta = {.real_ns = now_ns, .mono_ns = now_ns, .family = 4, .port = 1};
    if (mcl__rx_begin(rx, d, n, &meta) != MCL_OK)
        return;
    mcl_raw_msg m;
    while (mcl__rx_next(rx, &m))
        ++*delivered;
}

static void
feed_msg(mcl__rx *rx, uint64_t pub, uint64_t seq, unsigned *delivered)
{
    uint8_t b[64];
    size_t n = mcl__wire_put_hdr(b, 0, 1, pub);
    n += mcl__wire_put_rec(b + n, seq, "imu", 3, 2);
    memcpy(b + n, "hi", 2);
    feed(rx, b, n + 2, delivered);
}

static void
feed_hb(mcl__rx *rx, uint64_t pub, uint64_t next, uint16_t flags)
{
    uint8_t b[256];
    size_t n = put_vector(b, sizeof(b), pub, next, flags);
    unsigned d = 0;
    feed(rx, b, n, &d);
    CU_ASSERT_EQUAL(d, 0); // never delivered as a message
}

static mcl_listener_stats
stats(mcl__rx *rx)
{
    mcl_listener_stats st;
    mcl__rx_stats(rx, &st);
    return st;
}

static void
test_engine_loss_at_end(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    unsigned got = 0;
    // Nothing received yet: a heartbeat claims no loss (we cannot know what we should have had).
    feed_hb(&rx, 7, 50, 0);
    CU_ASSERT_EQUAL(stats(&rx).lost, 0);
    for (uint64_t s = 0; s < 90; s++)
        feed_msg(&rx, 7, s, &got);
    CU_ASSERT_EQUAL(got, 90);
    CU_ASSERT_EQUAL(stats(&rx).lost, 0); // the last 10 of 100 never came: invisible so far
    feed_hb(&rx, 7, 100, 0);
    mcl_listener_stats st = stats(&rx);
    CU_ASSERT_EQUAL(st.lost, 10);
    CU_ASSERT_EQUAL(st.lost_at_end, 10);
    CU_ASSERT_EQUAL(st.heartbeats, 2);
    CU_ASSERT_EQUAL(st.messages, 90);
    feed_hb(&rx, 7, 100, 0); // said again: not counted again
    CU_ASSERT_EQUAL(stats(&rx).lost, 10);
    // One of them comes after all: delivered, late, and no longer lost.
    feed_msg(&rx, 7, 95, &got);
    CU_ASSERT_EQUAL(got, 91);
    CU_ASSERT_EQUAL(stats(&rx).lost, 9);
    CU_ASSERT_EQUAL(stats(&rx).reordered, 1);
    // A forged claim far ahead is not believed: the genuine next message is not "old".
    feed_hb(&rx, 7, (uint64_t)1 << 40, 0);
    CU_ASSERT_EQUAL(stats(&rx).lost, 9);
    feed_msg(&rx, 7, 100, &got);
    CU_ASSERT_EQUAL(got, 92);
    CU_ASSERT_EQUAL(stats(&rx).duplicates, 0);
    // The publisher's details, from its heartbeats.
    mcl_publisher_stats ps[4];
    CU_ASSERT_EQUAL(mcl__rx_publishers(&rx, ps, 4), 1);
    CU_ASSERT_STRING_EQUAL(ps[0].host, "h1");
    CU_ASSERT_STRING_EQUAL(ps[0].program, "sim");
    CU_ASSERT_EQUAL(ps[0].pid, 0x1234);
    CU_ASSERT_EQUAL(ps[0].heartbeat_ms, 1000);
    CU_ASSERT_EQUAL(ps[0].topics, 2);
    CU_ASSERT_EQUAL(ps[0].lost, 9);
    mcl__rx_fini(&rx);
}

static void
test_engine_presence(void)
{
    mcl__rx rx;
    MCLT_OK(mcl__rx_init(&rx, &cfg, NULL, 0));
    rx.silent_after = 3;
    mcl_publisher_stats p;
    bool alive;
    unsigned got = 0;
    feed_msg(&rx, 1, 0, &got); // a publisher without heartbeats: appears, never goes silent
    feed_hb(&rx, 2, 0, 0);     // one with heartbeats every 1000 ms
    CU_ASSERT(mcl__rx_presence_event(&rx, &p, &alive) && alive && p.publisher == 1);
    CU_ASSERT(mcl__rx_presence_event(&rx, &p, &alive) && alive && p.publisher == 2);
    CU_ASSERT(!mcl__rx_presence_event(&rx, &p, &alive));
    mcl__rx_presence_check(&rx, now_ns + 2900000000ll); // 2.9 periods: not yet
    CU_ASSERT(!mcl__rx_presence_event(&rx, &p, &alive));
    mcl__rx_presence_check(&rx, now_ns + 3100000000ll); // 3.1 periods: silent
    CU_ASSERT(mcl__rx_presence_event(&rx, &p, &alive) && !alive && p.publisher == 2 && p.silent);
    CU_ASSERT(!mcl__rx_presence_event(&rx, &p, &alive)); // once; the other never
    now_ns += 3200000000ll;
    feed_hb(&rx, 2, 0, 0); // back
    CU_ASSERT(mcl__rx_presence_event(&rx, &p, &alive) && alive && p.publisher == 2 && !p.silent);
    feed_hb(&rx, 2, 0, MCL__WIRE_HB_BYE); // goodbye: silent at once
    CU_ASSERT(mcl__rx_presence_event(&rx, &p, &alive) && !alive && p.silent);
    CU_ASSERT(!mcl__rx_presence_event(&rx, &p, &alive));
    mcl__rx_fini(&rx);
}

// --- end to end --------------------------------------------------------------------------------

typedef struct presence_log {
    pthread_mutex_t lock;
    int appeared, silent;
    mcl_publisher_stats last;
} presence_log;

static void
on_presence(mcl_raw_listener *l, const mcl_publisher_stats *p, bool alive, void *user)
{
    (void)l;
    presence_log *pl = user;
    pthread_mutex_lock(&pl->lock);
    if (alive)
        pl->appeared++;
    else
        pl->silent++;
    pl->last = *p;
    pthread_mutex_unlock(&pl->lock);
}

static bool
went_silent(void *arg)
{
    presence_log *pl = arg;
    pthread_mutex_lock(&pl->lock);
    bool y = pl->silent > 0;
    pthread_mutex_unlock(&pl->lock);
    return y;
}

typedef struct named {
    mcl_raw_listener *l;
    uint64_t id;
} named;

static bool
has_name(void *arg)
{
    named *n = arg;
    mcl_publisher_stats ps[8];
    size_t k = 0;
    if (mcl_raw_listener_publishers(n->l, ps, 8, &k) != MCL_OK)
        return false;
    for (size_t i = 0; i < k && i < 8; i++)
        if (ps[i].publisher == n->id && ps[i].program[0] != '\0' && ps[i].topics >= 1)
            return true; // (a heartbeat after its first message: it lists the topic)
    return false;
}

static void
end_to_end(const char *burl, const char *lurl, const char *const *topics, size_t ntopics)
{
    mcl_connection *bc = mclt_parse(burl);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, bc, "imu"));
    mcl_connection *lc = mclt_parse(lurl != NULL ? lurl : mcl_connection_url(
                                                               mcl_raw_broadcaster_connection(b)));
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, lc, topics, ntopics));
    presence_log pl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_raw_listener_on_presence(l, on_presence, &pl));
    MCLT_OK(mcl_raw_listener_start(l));
    (void)mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000); // (zmq; udp/inproc: at once)
    for (int i = 0; i < 20; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    named n = {l, mcl_raw_broadcaster_id(b)};
    CU_ASSERT(mclt_wait_until(has_name, &n, 5000)); // a heartbeat every 50 ms
    mcl_publisher_stats ps[8];
    size_t k = 0;
    MCLT_OK(mcl_raw_listener_publishers(l, ps, 8, &k));
    CU_ASSERT_FATAL(k >= 1);
    CU_ASSERT_STRING_EQUAL(ps[0].program, program_invocation_short_name);
    CU_ASSERT_EQUAL(ps[0].pid, (uint32_t)getpid());
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    CU_ASSERT(strncmp(ps[0].host, host, 63) == 0);
    CU_ASSERT_EQUAL(ps[0].heartbeat_ms, 50);
    CU_ASSERT(ps[0].topics >= 1);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT(st.heartbeats >= 1);
    CU_ASSERT_EQUAL(st.malformed, 0);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT(bs.heartbeats >= 1);
    CU_ASSERT_EQUAL(bs.messages, 20);
    // It closes: its goodbye makes it silent at once (not after 3 periods).
    int64_t t0 = mclt_now_ms();
    mcl_raw_broadcaster_free(b);
    CU_ASSERT(mclt_wait_until(went_silent, &pl, 5000));
    CU_ASSERT(mclt_now_ms() - t0 < 1000);
    pthread_mutex_lock(&pl.lock);
    CU_ASSERT(pl.appeared >= 1);
    CU_ASSERT(pl.last.silent);
    pthread_mutex_unlock(&pl.lock);
    mcl_raw_listener_free(l);
    mcl_connection_free(lc);
    mcl_connection_free(bc);
}

static void
test_inproc(void)
{
    end_to_end("inproc://hb?heartbeat=50", NULL, NULL, 0);
}

static void
test_zmq_topic_filter(void)
{
    mcl_connection *c = NULL;
    if (mcl_connection_parse(&c, "zmq+tcp://127.0.0.1:0", NULL, 0) != MCL_OK)
        return; // (a build without libzmq)
    mcl_connection_free(c);
    // Bind a free port first, so that the listener knows where to connect.
    mcl_connection *bc = mclt_parse("zmq+tcp://127.0.0.1:0?heartbeat=50");
    mcl_raw_broadcaster *probe;
    MCLT_OK(mcl_raw_broadcaster_open(&probe, bc, "imu"));
    char url[256];
    snprintf(url, sizeof(url), "%s", mcl_connection_url(mcl_raw_broadcaster_connection(probe)));
    mcl_raw_broadcaster_free(probe);
    mcl_connection_free(bc);
    const char *topics[] = {"imu"}; // heartbeats have a topic of their own: they pass too
    end_to_end(url, url, topics, 1);
}

// A publisher killed outright (no goodbye) is silent after `silent` (3) missed heartbeats.
static void
test_killed_publisher(void)
{
    const char *url = "udp://239.255.77.7:26077?iface=lo&ttl=0&heartbeat=50";
    mcl_connection *c = mclt_parse(url);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    presence_log pl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_raw_listener_on_presence(l, on_presence, &pl));
    MCLT_OK(mcl_raw_listener_start(l));
    int up[2];
    CU_ASSERT_FATAL(pipe(up) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) { // the publisher: a message, its id to the parent, then heartbeats only
        mcl_raw_broadcaster *b;
        if (mcl_raw_broadcaster_open(&b, c, "t") != MCL_OK)
            _exit(3);
        uint64_t id = mcl_raw_broadcaster_id(b);
        (void)mcl_raw_broadcaster_publish(b, NULL, "x", 1);
        if (write(up[1], &id, sizeof(id)) != sizeof(id))
            _exit(4);
        for (;;)
            pause();
    }
    close(up[1]);
    uint64_t id = 0;
    CU_ASSERT_FATAL(read(up[0], &id, sizeof(id)) == sizeof(id));
    close(up[0]);
    named n = {l, id};
    CU_ASSERT(mclt_wait_until(has_name, &n, 5000));
    CU_ASSERT(!went_silent(&pl)); // heartbeats keep it alive while it lives
    kill(pid, SIGKILL);
    int64_t t0 = mclt_now_ms();
    waitpid(pid, NULL, 0);
    CU_ASSERT(mclt_wait_until(went_silent, &pl, 5000));
    int64_t took = mclt_now_ms() - t0;
    CU_ASSERT(took >= 100);  // not before 3 periods of 50 ms (less what had passed of one)
    CU_ASSERT(took < 1500); // and soon after them
    pthread_mutex_lock(&pl.lock);
    CU_ASSERT_EQUAL(pl.last.publisher, id);
    CU_ASSERT_STRING_EQUAL(pl.last.program, program_invocation_short_name);
    pthread_mutex_unlock(&pl.lock);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
}

// Broadcasters opened and closed from several threads at once: the heartbeat thread ends with
// the last and starts with the next, and no close waits for a thread that another open kept
// alive (a bounded churn; a deadlock shows as the suite's timeout).
static void *
churn(void *arg)
{
    const mcl_connection *c = arg;
    for (int i = 0; i < 150; i++) {
        mcl_raw_broadcaster *b;
        if (mcl_raw_broadcaster_open(&b, c, "t") != MCL_OK)
            return (void *)1;
        (void)mcl_raw_broadcaster_publish(b, NULL, "x", 1);
        mcl_raw_broadcaster_free(b);
    }
    return NULL;
}

static void
test_thread_churn(void)
{
    mcl_connection *c = mclt_parse("inproc://hbchurn?heartbeat=10");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, churn, c) == 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        CU_ASSERT_PTR_NULL(r);
    }
    mcl_connection_free(c);
}

static void
test_off(void)
{
    // heartbeat=0: none sent, so a listener of an older version sees nothing it cannot read.
    mcl_connection *c = mclt_parse("inproc://hboff?heartbeat=0");
    CU_ASSERT_EQUAL(mcl_connection_heartbeat_ms(c), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_connection_url(c), "heartbeat=0"));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "t"));
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    mcl_raw_broadcaster_free(b);
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 2000));
    CU_ASSERT_EQUAL(mcl_raw_listener_recv(l, &m, 200), MCL_ETIMEDOUT); // (no goodbye either)
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.heartbeats, 0);
    CU_ASSERT_EQUAL(st.datagrams, 1);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
    mcl_connection *d = NULL;
    char err[256];
    CU_ASSERT_EQUAL(mcl_connection_parse(&d, "inproc://x?heartbeat=5", err, sizeof(err)), MCL_EURL);
    CU_ASSERT_EQUAL(mcl_connection_parse(&d, "inproc://x?silent=0", err, sizeof(err)), MCL_EURL);
}


// fork() while the heartbeat thread waits: the child has no such thread, and the condition
// variable it waited on must not carry the parent's waiters into the child (a broadcaster the
// child opens and closes would wait for them forever). Each round's child opens, publishes
// and closes its own broadcaster, closes the inherited one, and exits; SIGALRM ends a hung one.
static void
test_fork_child(void)
{
    mcl_connection *c = mclt_parse("udp://239.255.77.8:26078?iface=lo&ttl=0&heartbeat=10");
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "t"));
    int hung = 0, failed = 0;
    for (int round = 0; round < 40 && hung == 0; round++) { // (a hang costs 5 s: one is enough)
        fflush(NULL);
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            alarm(5);
            for (int k = 0; k < 3; k++) {
                mcl_raw_broadcaster *mine;
                if (mcl_raw_broadcaster_open(&mine, c, "child") != MCL_OK)
                    _exit(3);
                if (mcl_raw_broadcaster_publish(mine, NULL, "x", 1) != MCL_OK)
                    _exit(4);
                if (mcl_raw_broadcaster_close(mine) != MCL_OK)
                    _exit(5);
                mcl_raw_broadcaster_free(mine);
            }
            mcl_raw_broadcaster_free(b); // the parent's: released, nothing waited for
            _exit(0);
        }
        int st = 0;
        CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
            hung++;
        else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            failed++;
        if (round % 8 == 0) { // also while it sends, now and then
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "p", 1));
            usleep(3000);
        }
    }
    CU_ASSERT_EQUAL(hung, 0);
    CU_ASSERT_EQUAL(failed, 0);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(c);
}

static CU_TestInfo tests[] = {{"vector", test_vector},
                              {"hostile", test_hostile},
                              {"engine_loss_at_end", test_engine_loss_at_end},
                              {"engine_presence", test_engine_presence},
                              {"inproc", test_inproc},
                              {"zmq_topic_filter", test_zmq_topic_filter},
                              {"killed_publisher", test_killed_publisher},
                              {"thread_churn", test_thread_churn},
                              {"off", test_off},
                              {"fork_child", test_fork_child},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("raw_heartbeat", NULL, NULL, tests);
