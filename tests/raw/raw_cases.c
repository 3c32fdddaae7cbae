// SPDX-License-Identifier: BSD-3-Clause
// Raw broadcaster/listener cases shared by the transports' raw suites (raw_cases.h).
#define _GNU_SOURCE
#include "raw_cases.h"
#include "raw/broadcaster_int.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
rawt_pair(const char *url, const char *const *topics, size_t ntopics, mcl_raw_listener **l,
          mcl_raw_broadcaster **b, const char *btopic)
{
    mcl_connection *c = mclt_parse(url);
    MCLT_OK(mcl_raw_listener_open(l, c, topics, ntopics));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_open(b, mcl_raw_listener_connection(*l), btopic));
}

// Publishes topics A..E then a sentinel; returns what arrived before the sentinel.
static size_t
filter_run(const char *const *topics, size_t ntopics, const char *sentinel_topic,
           char got[][16], size_t cap)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, topics, ntopics, &l, &b, NULL);
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

void
rawt_mcl_one_topic_of_five(void)
{
    const char *topics[] = {"topic C"};
    char got[8][16];
    size_t n = filter_run(topics, 1, "topic C", got, 8);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(got[0], "topic C");
}

void
rawt_mcl_three_topics_in_order(void)
{
    const char *topics[] = {"topic A", "topic C", "topic E"};
    char got[8][16];
    size_t n = filter_run(topics, 3, "topic E", got, 8);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(got[0], "topic A");
    CU_ASSERT_STRING_EQUAL(got[1], "topic C");
    CU_ASSERT_STRING_EQUAL(got[2], "topic E");
}

void
rawt_prefix_filter(void)
{
    const char *topics[] = {"topic *"}; // prefix "topic "
    char got[8][16];
    size_t n = filter_run(topics, 1, "topic Z", got, 8);
    CU_ASSERT_EQUAL(n, 5);
}


void
rawt_large_payloads_intact(void)
{
    // MCL's sizes (exactly its MTU, and 5.555 times it), and 1 MiB.
    size_t sizes[] = {60000, 333300, 1 << 20};
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "big");
    for (size_t k = 0; k < 3; k++) {
        uint8_t *p = mclt_pattern(sizes[k], k + 100);
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

void
rawt_close_semantics_and_errors(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "&maxmsg=1000");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, NULL);
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
        uint8_t *p = mclt_pattern(j->len, j->tag << 16 | (uint64_t)i);
        p[0] = (uint8_t)j->tag;
        p[1] = (uint8_t)i;
        mcl_err rv = mcl_raw_broadcaster_publish(j->b, "same", p, j->len);
        free(p);
        if (rv != MCL_OK)
            return (void *)1;
    }
    return NULL;
}

void
rawt_two_publishers_interleaving_large_messages(void)
{
    // Two broadcasters, plus two threads sharing a third one, all sending 200 kB messages on
    // one topic at once. Every message arrives intact, nothing is lost or mixed.
    char url[128];
    rawt_make_url(url, sizeof(url), rawt_bigbuf);
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b1;
    rawt_pair(url, NULL, 0, &l, &b1, NULL);
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
        uint8_t *want = mclt_pattern(LEN, (uint64_t)tag << 16 | i);
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

void
rawt_shared_broadcaster_sends_in_sequence_order(void)
{
    // Two threads publish small messages through one broadcaster as fast as they can: the
    // listener sees every sequence number once and in order (no message overtakes the one
    // numbered before it between numbering and sending).
    char url[128];
    rawt_make_url(url, sizeof(url), rawt_bigbuf);
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, NULL);
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

void
rawt_listener_thread_callbacks(void)
{
    memset(&CB, 0, sizeof(CB));
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &CB.l, &b, "cb");
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

void
rawt_fd_and_dispatch(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "poll");
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

void
rawt_many_listeners_one_group(void)
{
    // Several listeners on one group and port (SO_REUSEADDR) each get every message.
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l[4];
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l[0], &b, NULL);
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

void
rawt_batching(void)
{
    // batch=1 s: nothing goes out by time during the test; flush, full datagrams and close do.
    char url[128];
    rawt_make_url(url, sizeof(url), "&batch=1000000&dgram=1200");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "b");
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
    rawt_make_url(url, sizeof(url), "&batch=2000");
    rawt_pair(url, NULL, 0, &l, &b, "t");
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "soon", 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL(m->len, 4);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// --- compression (compress=) ------------------------------------------------------------------

static uint8_t *
camera_frame(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i / 256 + (i % 16 == 0 ? mclt_rand(&s) & 3 : 0));
    return p;
}

void
rawt_compressed(void)
{
    // (option, whether a 100-byte message is compressed too)
    const struct {
        const char *opts;
        bool small_too;
    } cases[] = {{"&compress=zstd", false},
                 {"&compress=lz4", false},
                 {"&compress=lz4hc:4", false},
                 {"&compress=zstd:9&compress_min=64&batch=1000000", true}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char url[160];
        rawt_make_url(url, sizeof(url), cases[c].opts);
        mcl_raw_listener *l;
        mcl_raw_broadcaster *b;
        rawt_pair(url, NULL, 0, &l, &b, "cam");
        CU_ASSERT(strstr(mcl_connection_url(mcl_raw_broadcaster_connection(b)), "compress=") !=
                  NULL);
        // Small and compressible, compressible in one datagram, fragmented, incompressible.
        size_t sizes[] = {100, 4096, 1 << 20, 4096};
        uint8_t *p[4];
        p[0] = calloc(1, 100);
        p[1] = camera_frame(4096, 1);
        p[2] = camera_frame(1 << 20, 2);
        p[3] = mclt_pattern(4096, 3);
        for (size_t k = 0; k < 4; k++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p[k], sizes[k]));
        MCLT_OK(mcl_raw_broadcaster_flush(b));
        uint64_t bytes = 0;
        for (size_t k = 0; k < 4; k++) {
            const mcl_raw_msg *m;
            MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
            CU_ASSERT_EQUAL(m->seq, k);
            CU_ASSERT_EQUAL_FATAL(m->len, sizes[k]);
            CU_ASSERT(memcmp(m->payload, p[k], sizes[k]) == 0);
            bytes += sizes[k];
        }
        mcl_broadcaster_stats bs;
        MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
        uint64_t nz = cases[c].small_too ? 3 : 2;
        CU_ASSERT_EQUAL(bs.compressed, nz);
        CU_ASSERT_EQUAL(bs.compressed_in, (cases[c].small_too ? 100 : 0) + 4096 + (1 << 20));
        CU_ASSERT(bs.compressed_out < bs.compressed_in / 4);
        CU_ASSERT_EQUAL(bs.bytes, bytes); // (what the user published)
        mcl_listener_stats st;
        MCLT_OK(mcl_raw_listener_stats(l, &st));
        CU_ASSERT_EQUAL(st.messages, 4);
        CU_ASSERT_EQUAL(st.bytes, bytes);
        CU_ASSERT_EQUAL(st.compressed, nz);
        CU_ASSERT_EQUAL(st.compressed_bytes, bs.compressed_out);
        CU_ASSERT_EQUAL(st.undecompressed, 0);
        CU_ASSERT_EQUAL(st.lost, 0);
        for (size_t k = 0; k < 4; k++)
            free(p[k]);
        mcl_raw_broadcaster_free(b);
        mcl_raw_listener_free(l);
    }
    // Options refused with a reason.
    const char *bad[] = {"&compress=gzip", "&compress=zstd:20", "&compress=zstd:0",
                         "&compress=lz4:x", "&compress_min=-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char url[160], err[256] = "";
        rawt_make_url(url, sizeof(url), bad[i]);
        mcl_connection *conn = NULL;
        CU_ASSERT_EQUAL(mcl_connection_parse(&conn, url, err, sizeof(err)), MCL_EURL);
        CU_ASSERT(strstr(err, "compress") != NULL);
        mcl_connection_free(conn);
    }
}

// --- pacing (rate=, msgrate=) -----------------------------------------------------------------

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
rawt_rate_paces_fragments(void)
{
    // 256 KiB/s, burst 64 KiB (the floor; 10 ms would be 2.6 KiB): one message of 192 KiB
    // (four fragments) takes at least (192 - 64) / 256 s = 0.5 s, paced inside the one call.
    // Only a lower bound: a slow machine takes longer, never less.
    char url[128];
    rawt_make_url(url, sizeof(url), "&rate=256k");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "paced");
    size_t len = 192 * 1024;
    uint8_t *p = mclt_pattern(len, 7);
    double t0 = mono_s();
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, len));
    double took = mono_s() - t0;
    if (took < 0.499)
        fprintf(stderr, "\n  192 KiB at rate=256k took %.3f s (at least 0.5 expected)\n", took);
    CU_ASSERT(took >= 0.499);
    CU_ASSERT(mcl__bcast_paced_waits(b) > 0);
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT_EQUAL_FATAL(m->len, len);
    CU_ASSERT(memcmp(m->payload, p, len) == 0);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.datagrams, 4);
    free(p);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

void
rawt_msgrate_paces_messages(void)
{
    // 50 messages/s with a burst of one: eleven publishes take at least 10 / 50 = 0.2 s.
    char url[128];
    rawt_make_url(url, sizeof(url), "&msgrate=50");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "paced");
    double t0 = mono_s();
    for (int i = 0; i < 11; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "tick", 4));
    double took = mono_s() - t0;
    if (took < 0.199)
        fprintf(stderr, "\n  11 messages at msgrate=50 took %.3f s (at least 0.2 expected)\n",
                took);
    CU_ASSERT(took >= 0.199);
    const mcl_raw_msg *m;
    for (uint64_t i = 0; i < 11; i++) {
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        CU_ASSERT_EQUAL(m->seq, i);
    }
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

void
rawt_unpaced_never_waits(void)
{
    // Without rate= or msgrate= (or with 0, the same) a publish never sleeps for pacing, however
    // much it sends; and the canonical URL says nothing about pacing.
    const char *extra[] = {"", "&rate=0&msgrate=0"};
    for (size_t k = 0; k < 2; k++) {
        char url[128];
        rawt_make_url(url, sizeof(url), extra[k]);
        mcl_raw_listener *l;
        mcl_raw_broadcaster *b;
        rawt_pair(url, NULL, 0, &l, &b, "free");
        const char *canon = mcl_connection_url(mcl_raw_broadcaster_connection(b));
        CU_ASSERT_PTR_NULL(strstr(canon, "rate="));
        // 16 MiB, more than the burst of any rate up to 1.6 GB/s: a rate applied anyway that is
        // slower than this machine sends would sleep.
        size_t len = 1 << 20;
        uint8_t *p = mclt_pattern(len, 3);
        for (int i = 0; i < 16; i++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, len));
        for (int i = 0; i < 200; i++)
            MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
        CU_ASSERT_EQUAL(mcl__bcast_paced_waits(b), 0);
        const mcl_raw_msg *m;
        MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
        CU_ASSERT_EQUAL(m->len, len);
        free(p);
        mcl_raw_broadcaster_free(b);
        mcl_raw_listener_free(l);
    }
}
