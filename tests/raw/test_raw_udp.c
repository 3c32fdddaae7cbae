// Raw broadcaster and listener over real sockets: IPv4 on loopback (ttl 0) and IPv6 on the
// sandbox's veth pair. Run inside scripts/netns.sh (ctest does, through scripts/test.sh).
#define _GNU_SOURCE
#include "harness.h"
#include "transport/udp/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int group_counter;

// A fresh group per test and a kernel-chosen port: tests never hear each other.
static void
make_url(char *buf, size_t len, const char *extra)
{
    snprintf(buf, len, "udp://239.255.77.%d:0?iface=lo&ttl=0%s", ++group_counter, extra);
}

// Opens a listener on url (port 0) and a broadcaster on the listener's effective URL.
static void
pair(const char *url, const char *const *topics, size_t ntopics, mcl_raw_listener **l,
     mcl_raw_broadcaster **b, const char *btopic)
{
    mcl_connection *c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(l, c, topics, ntopics));
    mcl_connection_free(c);
    CU_ASSERT(mcl_connection_port(mcl_raw_listener_connection(*l)) != 0);
    MCLT_OK(mcl_raw_broadcaster_open(b, mcl_raw_listener_connection(*l), btopic));
}

static int
suite_init(void)
{
    if (!mclt_in_netns())
        fprintf(stderr, "note: not in the sandbox namespace; using loopback with ttl=0\n");
    mcl_connection *c = NULL;
    mcl_raw_listener *l = NULL;
    if (mcl_connection_parse(&c, "udp://239.255.77.250:0?iface=lo&ttl=0", NULL, 0) != MCL_OK)
        return 1;
    mcl_err rv = mcl_raw_listener_open(&l, c, NULL, 0);
    mcl_connection_free(c);
    mcl_raw_listener_free(l);
    if (rv != MCL_OK) {
        fprintf(stderr, "multicast on lo is unavailable here (%s): run scripts/netns.sh\n",
                mcl_err_name(rv));
        return MCLT_SKIP;
    }
    return 0;
}

static void
check_roundtrip(const char *url, int family)
{
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, "default/topic");
    int64_t before = (int64_t)time(NULL);
    MCLT_OK(mcl_raw_broadcaster_publish(b, "t", "hello", 5));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "", 0));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_STRING_EQUAL(m->topic, "t");
    CU_ASSERT_EQUAL(m->topic_len, 1);
    CU_ASSERT_EQUAL_FATAL(m->len, 5);
    CU_ASSERT(memcmp(m->payload, "hello", 5) == 0);
    CU_ASSERT_EQUAL(m->seq, 0);
    CU_ASSERT_EQUAL(m->publisher, mcl_raw_broadcaster_id(b));
    CU_ASSERT_EQUAL(m->sender_family, family);
    CU_ASSERT(m->sender_port != 0);
    CU_ASSERT(m->recv_realtime_ns / 1000000000 >= before - 1);
    CU_ASSERT(m->recv_realtime_ns / 1000000000 <= (int64_t)time(NULL) + 1);
    CU_ASSERT(m->recv_mono_ns > 0);
    char sender[64];
    MCLT_OK(mcl_raw_msg_sender(m, sender, sizeof(sender)));
    CU_ASSERT(strlen(sender) > 3);
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_STRING_EQUAL(m->topic, "default/topic");
    CU_ASSERT_EQUAL(m->len, 0);
    CU_ASSERT_EQUAL(m->seq, 1);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 2);
    CU_ASSERT_EQUAL(st.bytes, 5);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT(st.rcvbuf > 0);
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, 2);
    CU_ASSERT_EQUAL(bs.datagrams, 2);
    // Nothing more: a short receive times out.
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 20), MCL_ETIMEDOUT);
    CU_ASSERT_PTR_NULL(m);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_roundtrip_ipv4(void)
{
    char url[128];
    make_url(url, sizeof(url), "");
    check_roundtrip(url, 4);
}

static void
test_roundtrip_ipv6(void)
{
    const char *ifc = getenv("MCL_NETNS_IFACE6");
    if (ifc == NULL) {
        fprintf(stderr, "(skipped: no IPv6 test interface; run in scripts/netns.sh) ");
        return;
    }
    char url[128];
    snprintf(url, sizeof(url), "udp://[ff15::4d43:%d]:0?iface=%s", ++group_counter, ifc);
    check_roundtrip(url, 6);
    // Also by interface address instead of name.
    snprintf(url, sizeof(url), "udp://[ff15::4d43:%d]:0?iface=fd6d:636c::1", ++group_counter);
    check_roundtrip(url, 6);
}

static void
test_iface_by_address_ipv4(void)
{
    char url[128];
    snprintf(url, sizeof(url), "udp://239.255.77.%d:0?iface=127.0.0.1&ttl=0", ++group_counter);
    check_roundtrip(url, 4);
}

// Publishes topics A..E then a sentinel; returns what arrived before the sentinel.
static size_t
filter_run(const char *const *topics, size_t ntopics, const char *sentinel_topic,
           char got[][16], size_t cap)
{
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, topics, ntopics, &l, &b, NULL);
    const char *all[] = {"topic A", "topic B", "topic C", "topic D", "topic E"};
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, all[i], all[i], strlen(all[i])));
    MCLT_OK(mcl_raw_broadcaster_publish(b, sentinel_topic, "end", 3));
    size_t n = 0;
    for (;;) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        if (m->len == 3 && memcmp(m->payload, "end", 3) == 0)
            break;
        CU_ASSERT_FATAL(n < cap);
        // The payload is the topic it was sent on.
        CU_ASSERT_EQUAL(m->len, m->topic_len);
        CU_ASSERT(memcmp(m->payload, m->topic, m->len) == 0);
        snprintf(got[n++], 16, "%s", m->topic);
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.filtered, 5 - n);
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    return n;
}

static void
test_mcl_one_topic_of_five(void)
{
    const char *topics[] = {"topic C"};
    char got[8][16];
    size_t n = filter_run(topics, 1, "topic C", got, 8);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(got[0], "topic C");
}

static void
test_mcl_three_topics_in_order(void)
{
    const char *topics[] = {"topic A", "topic C", "topic E"};
    char got[8][16];
    size_t n = filter_run(topics, 3, "topic E", got, 8);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(got[0], "topic A");
    CU_ASSERT_STRING_EQUAL(got[1], "topic C");
    CU_ASSERT_STRING_EQUAL(got[2], "topic E");
}

static void
test_prefix_filter(void)
{
    const char *topics[] = {"topic *"}; // prefix "topic "
    char got[8][16];
    size_t n = filter_run(topics, 1, "topic Z", got, 8);
    CU_ASSERT_EQUAL(n, 5);
}

static uint8_t *
pattern(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)mclt_rand(&seed);
    return p;
}

static void
test_large_payloads_intact(void)
{
    // MCL's sizes (exactly its MTU, and 5.555 times it), and 1 MiB.
    size_t sizes[] = {60000, 333300, 1 << 20};
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, "big");
    for (size_t k = 0; k < 3; k++) {
        uint8_t *p = pattern(sizes[k], k + 100);
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizes[k]));
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        CU_ASSERT_EQUAL_FATAL(m->len, sizes[k]);
        CU_ASSERT(memcmp(m->payload, p, sizes[k]) == 0);
        CU_ASSERT_EQUAL(m->seq, k);
        free(p);
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 3);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.partial_count, 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_close_semantics_and_errors(void)
{
    char url[128];
    make_url(url, sizeof(url), "&maxmsg=1000");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, NULL);
    CU_ASSERT(mcl_raw_broadcaster_is_open(b));
    MCLT_ERR(mcl_raw_broadcaster_publish(b, NULL, "x", 1001), MCL_EMSGSIZE);
    char longtopic[MCL_TOPIC_MAX + 2];
    memset(longtopic, 'a', sizeof(longtopic) - 1);
    longtopic[sizeof(longtopic) - 1] = '\0';
    MCLT_ERR(mcl_raw_broadcaster_publish(b, longtopic, "x", 1), MCL_EINVAL);
    MCLT_ERR(mcl_raw_broadcaster_publish(b, NULL, NULL, 1), MCL_EINVAL);
    MCLT_ERR(mcl_raw_broadcaster_publish(NULL, NULL, "x", 1), MCL_EINVAL);
    MCLT_OK(mcl_raw_broadcaster_close(b));
    CU_ASSERT_FALSE(mcl_raw_broadcaster_is_open(b));
    MCLT_ERR(mcl_raw_broadcaster_close(b), MCL_ECLOSED);
    MCLT_ERR(mcl_raw_broadcaster_publish(b, NULL, "x", 1), MCL_ECLOSED);

    CU_ASSERT(mcl_raw_listener_is_open(l));
    MCLT_OK(mcl_raw_listener_close(l));
    CU_ASSERT_FALSE(mcl_raw_listener_is_open(l));
    MCLT_ERR(mcl_raw_listener_close(l), MCL_ECLOSED);
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 0), MCL_ECLOSED);
    int fd;
    MCLT_ERR(mcl_raw_listener_fd(l, &fd), MCL_ECLOSED);
    MCLT_ERR(mcl_raw_listener_dispatch(l, 0, NULL), MCL_ECLOSED);
    MCLT_ERR(mcl_raw_listener_start(l), MCL_ECLOSED);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(NULL);
    mcl_raw_listener_free(NULL);

    // Bad arguments and unusable endpoints fail at open with clear codes.
    mcl_connection *c = mclt_parse("udp://239.255.77.200:26000?iface=no-such-if0");
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, NULL), MCL_ENODEV);
    CU_ASSERT_PTR_NULL(b);
    MCLT_ERR(mcl_raw_listener_open(&l, c, NULL, 0), MCL_ENODEV);
    CU_ASSERT_PTR_NULL(l);
    mcl_connection_free(c);
    c = mclt_parse("udp://239.255.77.200:0?iface=lo");
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, NULL), MCL_EINVAL); // port 0 is for listeners
    MCLT_ERR(mcl_raw_broadcaster_open(&b, c, longtopic), MCL_EINVAL);
    MCLT_ERR(mcl_raw_broadcaster_open(&b, NULL, NULL), MCL_EINVAL);
    const char *bad_topics[] = {"ok", NULL};
    MCLT_ERR(mcl_raw_listener_open(&l, c, bad_topics, 2), MCL_EINVAL);
    mcl_connection_free(c);
    // MCL: an invalid URL fails before anything opens.
    MCLT_ERR(mcl_connection_parse(&c, "udp://this::is::invalid", NULL, 0), MCL_EURL);
    MCLT_ERR(mcl_connection_parse(&c, "bad_url", NULL, 0), MCL_EURL);
}

// --- two publishers interleaving large messages ----------------------------------------------

typedef struct pubjob {
    mcl_raw_broadcaster *b;
    uint64_t tag;
    int count;
    size_t len;
} pubjob;

static void *
publisher_thread(void *arg)
{
    pubjob *j = arg;
    for (int i = 0; i < j->count; i++) {
        uint8_t *p = pattern(j->len, j->tag << 16 | (uint64_t)i);
        p[0] = (uint8_t)j->tag;
        p[1] = (uint8_t)i;
        mcl_err rv = mcl_raw_broadcaster_publish(j->b, "same", p, j->len);
        free(p);
        if (rv != MCL_OK)
            return (void *)1;
    }
    return NULL;
}

static void
test_two_publishers_interleaving_large_messages(void)
{
    // Two broadcasters, plus two threads sharing a third one, all sending 200 kB messages on
    // one topic at once. Every message arrives intact, nothing is lost or mixed.
    char url[128];
    make_url(url, sizeof(url), "&rcvbuf=16M");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b1;
    pair(url, NULL, 0, &l, &b1, NULL);
    mcl_raw_broadcaster *b2, *b3;
    MCLT_OK(mcl_raw_broadcaster_open(&b2, mcl_raw_listener_connection(l), NULL));
    MCLT_OK(mcl_raw_broadcaster_open(&b3, mcl_raw_listener_connection(l), NULL));
    enum { PER = 8, LEN = 200000 };
    pubjob jobs[4] = {{b1, 1, PER, LEN}, {b2, 2, PER, LEN}, {b3, 3, PER, LEN}, {b3, 4, PER, LEN}};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, publisher_thread, &jobs[i]), 0);
    int seen[5][PER] = {{0}};
    for (int k = 0; k < 4 * PER; k++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 10000));
        CU_ASSERT_EQUAL_FATAL(m->len, LEN);
        const uint8_t *p = m->payload;
        unsigned tag = p[0], i = p[1];
        CU_ASSERT_FATAL(tag >= 1 && tag <= 4 && i < PER);
        uint8_t *want = pattern(LEN, (uint64_t)tag << 16 | i);
        CU_ASSERT(memcmp(p + 2, want + 2, LEN - 2) == 0);
        free(want);
        seen[tag][i]++;
    }
    for (int t = 1; t <= 4; t++) {
        void *r;
        pthread_join(th[t - 1], &r);
        CU_ASSERT_PTR_NULL(r);
        for (int i = 0; i < PER; i++)
            CU_ASSERT_EQUAL(seen[t][i], 1);
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.malformed, 0);
    CU_ASSERT_EQUAL(st.reordered, 0);
    CU_ASSERT_EQUAL(st.publishers, 3);
    mcl_raw_broadcaster_free(b1);
    mcl_raw_broadcaster_free(b2);
    mcl_raw_broadcaster_free(b3);
    mcl_raw_listener_free(l);
}

static void
test_shared_broadcaster_sends_in_sequence_order(void)
{
    // Two threads publish small messages through one broadcaster as fast as they can: the
    // listener sees every sequence number once and in order (no message overtakes the one
    // numbered before it between numbering and sending).
    char url[128];
    make_url(url, sizeof(url), "&rcvbuf=16M");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, NULL);
    enum { PER = 3000, LEN = 16 };
    pubjob jobs[2] = {{b, 1, PER, LEN}, {b, 2, PER, LEN}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, publisher_thread, &jobs[i]), 0);
    uint64_t last = 0;
    int got = 0, out_of_order = 0;
    for (; got < 2 * PER; got++) {
        const mcl_raw_msg *m;
        if (mcl_raw_listener_recv(l, &m, 10000) != MCL_OK)
            break;
        if (got > 0 && m->seq != last + 1)
            out_of_order++;
        last = m->seq;
    }
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        CU_ASSERT_PTR_NULL(r);
    }
    CU_ASSERT_EQUAL(got, 2 * PER);
    CU_ASSERT_EQUAL(out_of_order, 0);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.reordered, 0);
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// --- callbacks on the listener thread ---------------------------------------------------------

typedef struct cbstate {
    mcl_raw_listener *l;
    atomic_int calls[6];
    char order[64];
    atomic_int norder;
    atomic_int close_rv;
} cbstate;

static cbstate CB;

static void
record(int who)
{
    int i = atomic_fetch_add(&CB.norder, 1);
    if (i < 63)
        CB.order[i] = (char)('0' + who);
    atomic_fetch_add(&CB.calls[who], 1);
}

static void cb5(const mcl_raw_msg *m, void *u);

static void
cb1(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    record(1);
}

static void
cb2(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    record(2);
}

static void
cb3_once(const mcl_raw_msg *m, void *u)
{
    (void)m;
    record(3);
    CU_ASSERT_EQUAL(mcl_raw_listener_unsubscribe(CB.l, cb3_once, u), MCL_OK);
}

static void
cb4_adds_cb5(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    record(4);
    mcl_err rv = mcl_raw_listener_subscribe(CB.l, cb5, NULL);
    CU_ASSERT(rv == MCL_OK || rv == MCL_EALREADY);
    // Closing or stopping from inside a callback is refused, not a deadlock.
    atomic_store(&CB.close_rv, (int)mcl_raw_listener_close(CB.l));
    CU_ASSERT_EQUAL(mcl_raw_listener_stop(CB.l), MCL_ESTATE);
}

static void
cb5(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    record(5);
}

static bool
got_calls(void *arg)
{
    return atomic_load(&CB.calls[1]) >= *(int *)arg;
}

static void
test_listener_thread_callbacks(void)
{
    memset(&CB, 0, sizeof(CB));
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &CB.l, &b, "cb");
    MCLT_OK(mcl_raw_listener_subscribe(CB.l, cb1, NULL));
    MCLT_ERR(mcl_raw_listener_subscribe(CB.l, cb1, NULL), MCL_EALREADY);
    MCLT_OK(mcl_raw_listener_subscribe(CB.l, cb1, &CB)); // same function, other user data
    MCLT_OK(mcl_raw_listener_unsubscribe(CB.l, cb1, &CB));
    MCLT_ERR(mcl_raw_listener_unsubscribe(CB.l, cb1, &CB), MCL_ENOENT);
    MCLT_OK(mcl_raw_listener_subscribe(CB.l, cb2, NULL));
    MCLT_OK(mcl_raw_listener_subscribe(CB.l, cb3_once, NULL));
    MCLT_OK(mcl_raw_listener_subscribe(CB.l, cb4_adds_cb5, NULL));
    CU_ASSERT_EQUAL(mcl_raw_listener_subscriptions(CB.l), 4);
    MCLT_OK(mcl_raw_listener_start(CB.l));
    MCLT_ERR(mcl_raw_listener_start(CB.l), MCL_EALREADY);
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_raw_listener_recv(CB.l, &m, 0), MCL_ESTATE); // the thread owns receiving
    MCLT_ERR(mcl_raw_listener_dispatch(CB.l, 0, NULL), MCL_ESTATE);
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "m", 1));
    int want = 3;
    CU_ASSERT_FATAL(mclt_wait_until(got_calls, &want, 5000));
    MCLT_OK(mcl_raw_listener_stop(CB.l));
    MCLT_ERR(mcl_raw_listener_stop(CB.l), MCL_ESTATE);
    // Message 1: 1 2 3 4 (5 subscribed during it, so not called); messages 2 and 3: 1 2 4 5.
    CU_ASSERT_EQUAL(atomic_load(&CB.norder), 12);
    CU_ASSERT_NSTRING_EQUAL(CB.order, "123412451245", 12);
    CU_ASSERT_EQUAL(atomic_load(&CB.calls[3]), 1);
    CU_ASSERT_EQUAL(atomic_load(&CB.close_rv), MCL_ESTATE);
    CU_ASSERT(mcl_raw_listener_is_open(CB.l));
    // After stop, the caller's thread may receive again.
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "after", 5));
    MCLT_OK(mcl_raw_listener_recv(CB.l, &m, 5000));
    CU_ASSERT_EQUAL(m->len, 5);
    // Restart, then close with the thread running: close stops it.
    MCLT_OK(mcl_raw_listener_start(CB.l));
    MCLT_OK(mcl_raw_listener_close(CB.l));
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(CB.l);
}

// --- fd + dispatch on the caller's thread ------------------------------------------------------

static pthread_t dispatch_thread;
static int dispatch_calls;
static void
on_dispatch(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    CU_ASSERT(pthread_equal(pthread_self(), dispatch_thread));
    dispatch_calls++;
}

static void
test_fd_and_dispatch(void)
{
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, "poll");
    MCLT_OK(mcl_raw_listener_subscribe(l, on_dispatch, NULL));
    dispatch_thread = pthread_self();
    dispatch_calls = 0;
    int fd;
    MCLT_OK(mcl_raw_listener_fd(l, &fd));
    CU_ASSERT(fd >= 0);
    size_t n;
    MCLT_OK(mcl_raw_listener_dispatch(l, 0, &n)); // nothing yet: returns at once
    CU_ASSERT_EQUAL(n, 0);
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "d", 1));
    int64_t end = mclt_now_ms() + 5000;
    while (dispatch_calls < 10 && mclt_now_ms() < end) {
        CU_ASSERT_FALSE(mcl_raw_listener_pending(l)); // dispatch read only what it delivered
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            MCLT_OK(mcl_raw_listener_dispatch(l, 4, &n)); // at most 4 per call
            CU_ASSERT(n <= 4);
        }
    }
    CU_ASSERT_EQUAL(dispatch_calls, 10);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// --- hostile input ------------------------------------------------------------------------------

static void
test_garbage_datagrams_are_counted(void)
{
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, NULL);
    const mcl_connection *c = mcl_raw_listener_connection(l);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);
    unsigned char ttl = 0;
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
    struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("lo")};
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(mcl_connection_port(c))};
    inet_pton(AF_INET, mcl_connection_group(c), &to.sin_addr);
    // Random bytes, a truncated mcl header, an empty datagram, and a Python MCL frame
    // (msgpack [topic, payload]).
    uint64_t seed = 5;
    uint8_t junk[1500];
    int sent = 0;
    for (int i = 0; i < 50; i++) {
        size_t n = (size_t)(mclt_rand(&seed) % sizeof(junk));
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)mclt_rand(&seed);
        if (i % 5 == 0 && n >= 4)
            memcpy(junk, "MCL\x01", 4);
        sent += sendto(s, junk, n, 0, (struct sockaddr *)&to, sizeof(to)) >= 0;
    }
    sent += sendto(s, "", 0, 0, (struct sockaddr *)&to, sizeof(to)) >= 0;
    static const uint8_t pymcl[] = {0x92, 0xc0, 0xa4, 't', 'e', 's', 't'};
    sent += sendto(s, pymcl, sizeof(pymcl), 0, (struct sockaddr *)&to, sizeof(to)) >= 0;
    close(s);
    // The listener survives and still delivers.
    MCLT_OK(mcl_raw_broadcaster_publish(b, "ok", "fine", 4));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_STRING_EQUAL(m->topic, "ok");
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.malformed, (uint64_t)sent);
    CU_ASSERT_EQUAL(st.messages, 1);
    CU_ASSERT_EQUAL(st.datagrams, (uint64_t)sent + 1);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_kernel_drops_and_gaps_are_counted(void)
{
    // A tiny receive buffer that nobody reads: the kernel drops datagrams, the listener
    // reports them (SO_RXQ_OVFL), and the next message reveals the gap in the sequence.
    char url[128];
    make_url(url, sizeof(url), "&rcvbuf=4k");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, NULL);
    uint8_t p[1000] = {0};
    enum { N = 200 };
    for (int i = 0; i < N; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    const mcl_raw_msg *m;
    uint64_t got = 0;
    while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
        got++;
    // Drops at the end of a burst are known before any later datagram reveals them.
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.kernel_drops, N - got);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "last", 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->seq, N);
    got++;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT(got < N);
    CU_ASSERT(st.kernel_drops > 0);
    CU_ASSERT_EQUAL(st.messages, got);
    CU_ASSERT_EQUAL(st.messages + st.lost, N + 1);
    CU_ASSERT_EQUAL(st.kernel_drops, st.lost);
    CU_ASSERT(st.rcvbuf < 64 * 1024);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_many_listeners_one_group(void)
{
    // Several listeners on one group and port (SO_REUSEADDR) each get every message.
    char url[128];
    make_url(url, sizeof(url), "");
    mcl_raw_listener *l[4];
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l[0], &b, NULL);
    for (int i = 1; i < 4; i++)
        MCLT_OK(mcl_raw_listener_open(&l[i], mcl_raw_listener_connection(l[0]), NULL, 0));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "fan", 3));
    for (int i = 0; i < 4; i++) {
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l[i], &m, 5000));
        CU_ASSERT_EQUAL(m->len, 3);
        mcl_raw_listener_free(l[i]);
    }
    mcl_raw_broadcaster_free(b);
}

static void
test_batching(void)
{
    // batch=1 s: nothing goes out by time during the test; flush, full datagrams and close do.
    char url[128];
    make_url(url, sizeof(url), "&batch=1000000&dgram=1200");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, "b");
    uint8_t p[100];
    for (int i = 0; i < 10; i++) {
        memset(p, i, sizeof(p));
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    }
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    const mcl_raw_msg *m;
    for (uint64_t i = 0; i < 10; i++) {
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        CU_ASSERT_EQUAL(m->seq, i);
        CU_ASSERT_EQUAL(m->len, 100);
        CU_ASSERT_EQUAL(((const uint8_t *)m->payload)[99], i);
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.datagrams, 1); // ten messages, one datagram
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.datagrams, 1);
    // 100 more: full 1200-byte datagrams leave by themselves (10 records of 114 bytes each).
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    for (int i = 0; i < 90; i++)
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    // A message that must be fragmented sends what waits first: order is kept.
    static uint8_t big[5000];
    MCLT_OK(mcl_raw_broadcaster_publish(b, "big", big, sizeof(big)));
    for (int i = 0; i < 10; i++) {
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        CU_ASSERT_EQUAL(m->len, 100);
    }
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->len, sizeof(big));
    CU_ASSERT_EQUAL(m->seq, 110);
    // Close sends what waits.
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "last", 4));
    MCLT_OK(mcl_raw_broadcaster_close(b));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->len, 4);
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 112);
    CU_ASSERT_EQUAL(st.lost, 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    // A short batch delay sends by itself.
    make_url(url, sizeof(url), "&batch=2000");
    pair(url, NULL, 0, &l, &b, "t");
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "soon", 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->len, 4);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// --- send failures on a batching broadcaster --------------------------------------------------

typedef struct failstate {
    mcl_raw_broadcaster *b;
    atomic_int warnings;
    atomic_int published_from_log;
} failstate;

static void
fail_log(mcl_log_level level, const char *component, const char *message, void *user)
{
    (void)message;
    failstate *f = user;
    if (level < MCL_LOG_WARN || strcmp(component, "broadcaster") != 0)
        return;
    atomic_fetch_add(&f->warnings, 1);
    // The handler runs with no broadcaster lock held: publishing on the same broadcaster from
    // here must not deadlock.
    if (atomic_exchange(&f->published_from_log, 1) == 0)
        CU_ASSERT_EQUAL(mcl_raw_broadcaster_publish(f->b, NULL, "log", 3), MCL_OK);
}

static void
test_batch_send_failures_are_reported(void)
{
    char url[128];
    make_url(url, sizeof(url), "&batch=1000000&dgram=1200");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    pair(url, NULL, 0, &l, &b, "f");
    static failstate f;
    f.b = b;
    mcl_log_set_handler(fail_log, &f, MCL_LOG_WARN);
    uint8_t p[100] = {0};
    mcl_broadcaster_stats bs;

    // Three queued messages: publish succeeds; the flush that fails says so once, and moves
    // them from `messages` to `errors`.
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, 3);
    mcl__send_fail_after(0, ENETDOWN);
    MCLT_ERR(mcl_raw_broadcaster_flush(b), MCL_ENODEV);
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.errors, 3);
    CU_ASSERT_EQUAL(bs.datagrams, 0);
    CU_ASSERT_EQUAL(atomic_load(&f.warnings), 1);
    CU_ASSERT_EQUAL(atomic_load(&f.published_from_log), 1);
    CU_ASSERT_EQUAL(bs.messages, 1); // the one the log handler queued (seq 3)

    // A full datagram that fails to leave while a publish packs the next record: that
    // publish succeeds, and the next flush (here: close) returns the failure.
    mcl__send_fail_after(0, ENETDOWN);
    // 16-byte header, "log" in 18 bytes, ten 115-byte records: 1184 of 1200 bytes. The 11th
    // record (seq 14) no longer fits, so the datagram goes out first, and fails.
    for (int i = 0; i < 11; i++) // seq 4..14
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.errors, 3 + 11); // "log" and seq 4..13
    CU_ASSERT_EQUAL(bs.messages, 1);    // seq 14, waiting
    MCLT_ERR(mcl_raw_broadcaster_close(b), MCL_ENODEV);
    MCLT_ERR(mcl_raw_broadcaster_close(b), MCL_ECLOSED);
    mcl_log_set_handler(NULL, NULL, MCL_LOG_WARN);
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.datagrams, 1);
    CU_ASSERT_EQUAL(bs.messages, 1);
    // Only the last message arrived; the failed ones never left.
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->seq, 14);
    CU_ASSERT_EQUAL(m->len, sizeof(p));
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 0), MCL_ETIMEDOUT);
    mcl__send_fail_after(-1, 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static CU_TestInfo tests[] = {
    {"batching", test_batching},
    {"batch_send_failures_are_reported", test_batch_send_failures_are_reported},
    {"roundtrip_ipv4", test_roundtrip_ipv4},
    {"roundtrip_ipv6", test_roundtrip_ipv6},
    {"iface_by_address_ipv4", test_iface_by_address_ipv4},
    {"mcl_one_topic_of_five", test_mcl_one_topic_of_five},
    {"mcl_three_topics_in_order", test_mcl_three_topics_in_order},
    {"prefix_filter", test_prefix_filter},
    {"large_payloads_intact", test_large_payloads_intact},
    {"close_semantics_and_errors", test_close_semantics_and_errors},
    {"two_publishers_interleaving_large_messages", test_two_publishers_interleaving_large_messages},
    {"shared_broadcaster_sends_in_sequence_order", test_shared_broadcaster_sends_in_sequence_order},
    {"listener_thread_callbacks", test_listener_thread_callbacks},
    {"fd_and_dispatch", test_fd_and_dispatch},
    {"garbage_datagrams_are_counted", test_garbage_datagrams_are_counted},
    {"kernel_drops_and_gaps_are_counted", test_kernel_drops_and_gaps_are_counted},
    {"many_listeners_one_group", test_many_listeners_one_group},
    CU_TEST_INFO_NULL};
MCLT_SUITE("raw_udp", suite_init, NULL, tests);
