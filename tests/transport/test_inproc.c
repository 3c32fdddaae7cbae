// SPDX-License-Identifier: BSD-3-Clause
// The inproc:// transport on its own, through its ops table: opaque datagrams, the eventfd,
// bounded queues, each fault at the datagram level, and several threads at once.
#define _GNU_SOURCE
#include "harness.h"
#include "transport/transport.h"

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct end {
    mcl_connection *c;
    const mcl__bcast_ops *ops;
    mcl__tx *tx;
    mcl__rxs *rx;
} end;

static void
open_rx(end *e, const char *url)
{
    memset(e, 0, sizeof(*e));
    e->c = mclt_parse(url);
    e->ops = e->c->tp->bcast;
    mcl__rx_opened o = {0};
    MCLT_OK(e->ops->rx_open(&e->rx, e->c, NULL, 0, -1, &o));
    CU_ASSERT(o.rcvbuf > 0);
}

static void
open_tx(end *e, const char *url)
{
    memset(e, 0, sizeof(*e));
    e->c = mclt_parse(url);
    e->ops = e->c->tp->bcast;
    mcl__tx_limits lim = {0};
    MCLT_OK(e->ops->tx_open(&e->tx, e->c, &lim));
    CU_ASSERT_EQUAL(lim.batch_max, mcl_connection_dgram(e->c));
}

static void
close_end(end *e)
{
    if (e->tx != NULL)
        e->ops->tx_close(e->tx);
    if (e->rx != NULL)
        e->ops->rx_close(e->rx);
    mcl_connection_free(e->c);
}

// Sends one datagram: 4 bytes of number, then its pattern.
static void
send_one(end *t, uint32_t i, size_t len)
{
    uint8_t *p = mclt_pattern(len, i);
    uint8_t num[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    struct iovec iov[2] = {{num, 4}, {p, len}};
    mcl__frame f = {.iov = iov, .niov = 2};
    unsigned sent = 0;
    char why[64] = "";
    MCLT_OK(t->ops->tx_send(t->tx, &f, 1, &sent, why, sizeof(why)));
    CU_ASSERT_EQUAL(sent, 1);
    free(p);
}

// Reads everything there is: the numbers in arrival order (each checked whole), and how many.
static size_t
read_all(end *r, uint32_t *nums, size_t cap, size_t len, uint64_t *drops)
{
    size_t n = 0;
    for (;;) {
        mcl__dgram d[16];
        unsigned k = 0;
        mcl_err rv = r->ops->rx_read(r->rx, d, 16, &k, drops);
        if (rv == MCL_EAGAIN)
            return n;
        CU_ASSERT_EQUAL_FATAL(rv, MCL_OK);
        CU_ASSERT(k >= 1 && k <= 16);
        for (unsigned i = 0; i < k; i++) {
            CU_ASSERT_EQUAL_FATAL(d[i].len, 4 + len);
            uint32_t v = (uint32_t)d[i].data[0] << 24 | (uint32_t)d[i].data[1] << 16 |
                         (uint32_t)d[i].data[2] << 8 | d[i].data[3];
            CU_ASSERT(mclt_pattern_ok(d[i].data + 4, len, v));
            CU_ASSERT_EQUAL(d[i].meta.family, 0);
            CU_ASSERT(d[i].meta.mono_ns > 0);
            CU_ASSERT_FALSE(d[i].has_tseq);
            if (n < cap)
                nums[n] = v;
            n++;
        }
    }
}

static bool
readable(end *r)
{
    struct pollfd p = {.fd = r->ops->rx_fd(r->rx), .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

static void
test_datagrams_are_opaque_and_ordered(void)
{
    end r, t;
    open_rx(&r, "inproc://t-order");
    open_tx(&t, "inproc://t-order");
    CU_ASSERT_FALSE(readable(&r));
    mcl__dgram d[4];
    unsigned k = 99;
    uint64_t drops = 0;
    MCLT_ERR(r.ops->rx_read(r.rx, d, 4, &k, &drops), MCL_EAGAIN);
    CU_ASSERT_EQUAL(k, 0);
    for (uint32_t i = 0; i < 100; i++)
        send_one(&t, i, 50);
    CU_ASSERT(readable(&r)); // level-triggered: readable while anything waits
    // A read takes at most what is asked for, and the fd stays readable while more waits.
    MCLT_OK(r.ops->rx_read(r.rx, d, 4, &k, &drops));
    CU_ASSERT_EQUAL(k, 4);
    CU_ASSERT(readable(&r));
    uint32_t nums[100];
    size_t n = read_all(&r, nums, 100, 50, &drops);
    CU_ASSERT_EQUAL(n, 96);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(nums[i], i + 4);
    CU_ASSERT_FALSE(readable(&r));
    CU_ASSERT_EQUAL(drops, 0);
    // Any bytes at all: the transport never looks inside.
    struct iovec iov = {"\xff\x00junk", 6};
    mcl__frame f = {.iov = &iov, .niov = 1};
    unsigned sent;
    char why[8];
    MCLT_OK(t.ops->tx_send(t.tx, &f, 1, &sent, why, sizeof(why)));
    MCLT_OK(r.ops->rx_read(r.rx, d, 4, &k, &drops));
    CU_ASSERT_EQUAL_FATAL(k, 1);
    CU_ASSERT_EQUAL(d[0].len, 6);
    CU_ASSERT(memcmp(d[0].data, "\xff\x00junk", 6) == 0);
    close_end(&t);
    close_end(&r);
}

static void
test_fan_out_and_subscribers(void)
{
    end r[3], t;
    open_tx(&t, "inproc://t-fan");
    mcl__tx_info in = {0};
    t.ops->tx_info(t.tx, 0, &in);
    CU_ASSERT_EQUAL(in.subscribers, 0);
    for (int i = 0; i < 3; i++)
        open_rx(&r[i], "inproc://t-fan");
    t.ops->tx_info(t.tx, 0, &in);
    CU_ASSERT_EQUAL(in.subscribers, 3);
    for (uint32_t i = 0; i < 10; i++)
        send_one(&t, i, 1000);
    uint64_t drops = 0;
    uint32_t nums[10];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(read_all(&r[i], nums, 10, 1000, &drops), 10);
    // A listener that closes with datagrams queued releases them (ASan/valgrind check).
    send_one(&t, 10, 1000);
    close_end(&r[0]);
    t.ops->tx_info(t.tx, 0, &in);
    CU_ASSERT_EQUAL(in.subscribers, 2);
    close_end(&r[1]);
    close_end(&r[2]);
    close_end(&t);
}

static void
test_queue_is_bounded(void)
{
    end r, t;
    open_rx(&r, "inproc://t-bound?queue=64k");
    open_tx(&t, "inproc://t-bound");
    for (uint32_t i = 0; i < 100; i++) // 100 x 1004 bytes into 64 KiB
        send_one(&t, i, 1000);
    uint64_t drops = 0;
    uint32_t nums[100];
    size_t n = read_all(&r, nums, 100, 1000, &drops);
    CU_ASSERT_EQUAL(n, 65536 / 1004);
    CU_ASSERT_EQUAL(drops, 100 - n);
    for (size_t i = 0; i < n; i++) // the first ones fit; the rest were dropped
        CU_ASSERT_EQUAL(nums[i], i);
    close_end(&t);
    close_end(&r);
}

// The numbers a listener with these faults receives when 0..n-1 are sent.
static size_t
faulty(const char *url, uint32_t n, uint32_t *nums, size_t cap)
{
    end r, t;
    open_rx(&r, url);
    open_tx(&t, url);
    for (uint32_t i = 0; i < n; i++)
        send_one(&t, i, 8);
    uint64_t drops = 0;
    size_t got = read_all(&r, nums, cap, 8, &drops);
    CU_ASSERT_EQUAL(drops, 0);
    close_end(&t);
    close_end(&r);
    return got;
}

static void
test_each_fault(void)
{
    enum { N = 2000 };
    static uint32_t a[2 * N], b[2 * N];
    // drop=1 loses everything, drop=0.3 about 30 %, in order.
    CU_ASSERT_EQUAL(faulty("inproc://f1?drop=1", N, a, 2 * N), 0);
    size_t n = faulty("inproc://f2?drop=0.3&seed=9", N, a, 2 * N);
    CU_ASSERT(n > N * 6 / 10 && n < N * 8 / 10);
    for (size_t i = 1; i < n; i++)
        CU_ASSERT(a[i] > a[i - 1]);
    // dup=1 delivers each twice, back to back.
    n = faulty("inproc://f3?dup=1", N, a, 2 * N);
    CU_ASSERT_EQUAL_FATAL(n, 2 * N);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(a[i], i / 2);
    // reorder=0.5: everything arrives, about half of it late, none later than depth=8
    // datagrams behind its place.
    n = faulty("inproc://f4?reorder=0.5&depth=8&seed=4", N, a, 2 * N);
    CU_ASSERT_EQUAL_FATAL(n, N);
    static bool seen[N];
    memset(seen, 0, sizeof(seen));
    size_t late = 0;
    uint32_t high = 0;
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_FALSE(seen[a[i]]);
        seen[a[i]] = true;
        if (i > 0 && a[i] < high) {
            late++;
            CU_ASSERT(high - a[i] <= 2 * 8 + 1);
        }
        high = a[i] > high ? a[i] : high;
    }
    CU_ASSERT(late > N / 4 && late < N * 3 / 4);
    // depth=1 holds one datagram back by one place: order is kept.
    n = faulty("inproc://f5?reorder=1&depth=1", N, a, 2 * N);
    CU_ASSERT_EQUAL_FATAL(n, N);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(a[i], i);
    // A seed decides everything: the same seed, the same datagrams in the same order.
    const char *u = "inproc://f6?drop=0.1&dup=0.1&reorder=0.1&seed=77";
    n = faulty(u, N, a, 2 * N);
    size_t m = faulty(u, N, b, 2 * N);
    CU_ASSERT_EQUAL_FATAL(n, m);
    CU_ASSERT(memcmp(a, b, n * sizeof(a[0])) == 0);
    m = faulty("inproc://f6?drop=0.1&dup=0.1&reorder=0.1&seed=78", N, b, 2 * N);
    CU_ASSERT(n != m || memcmp(a, b, n * sizeof(a[0])) != 0);
}

static void
test_held_datagrams_wake_the_reader(void)
{
    // Every datagram held back (reorder=1): the fd is readable all the same, and a read
    // releases what is held once nothing else waits, so nothing stays behind.
    end r, t;
    open_rx(&r, "inproc://t-held?reorder=1&depth=4");
    open_tx(&t, "inproc://t-held");
    send_one(&t, 0, 8);
    CU_ASSERT(readable(&r));
    uint64_t drops = 0;
    uint32_t nums[4];
    CU_ASSERT_EQUAL(read_all(&r, nums, 4, 8, &drops), 1);
    CU_ASSERT_EQUAL(nums[0], 0);
    CU_ASSERT_FALSE(readable(&r));
    close_end(&t);
    close_end(&r);
}

// --- several threads --------------------------------------------------------------------------

typedef struct sender {
    end t;
    uint32_t base;
} sender;

enum { PER_THREAD = 20000 };

static void *
send_thread(void *arg)
{
    sender *s = arg;
    for (uint32_t i = 0; i < PER_THREAD; i++)
        send_one(&s->t, s->base + i, 16);
    return NULL;
}

static void
test_threads(void)
{
    // Two senders and this thread reading at once: everything arrives, each sender's
    // datagrams in the order it sent them.
    end r;
    open_rx(&r, "inproc://t-threads");
    sender s[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        open_tx(&s[i].t, "inproc://t-threads");
        s[i].base = (uint32_t)i << 24;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, send_thread, &s[i]), 0);
    }
    uint32_t next[2] = {0, 0};
    int64_t end_ms = mclt_now_ms() + 30000;
    while ((next[0] < PER_THREAD || next[1] < PER_THREAD) && mclt_now_ms() < end_ms) {
        struct pollfd p = {.fd = r.ops->rx_fd(r.rx), .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        mcl__dgram d[16];
        unsigned k;
        uint64_t drops = 0;
        if (r.ops->rx_read(r.rx, d, 16, &k, &drops) != MCL_OK)
            continue;
        for (unsigned i = 0; i < k; i++) {
            uint32_t v = (uint32_t)d[i].data[0] << 24 | (uint32_t)d[i].data[1] << 16 |
                         (uint32_t)d[i].data[2] << 8 | d[i].data[3];
            unsigned who = v >> 24;
            CU_ASSERT_FATAL(who < 2);
            CU_ASSERT_EQUAL(v & 0xffffff, next[who]);
            next[who] = (v & 0xffffff) + 1;
        }
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        close_end(&s[i].t);
        CU_ASSERT_EQUAL(next[i], PER_THREAD);
    }
    close_end(&r);
}

static void
test_refused_uses(void)
{
    end e;
    memset(&e, 0, sizeof(e));
    e.c = mclt_parse("inproc://refused");
    e.ops = e.c->tp->bcast;
    mcl__rx_opened o = {0};
    // No descriptor to adopt: the group lives in this process only.
    MCLT_ERR(e.ops->rx_open(&e.rx, e.c, NULL, 0, 0, &o), MCL_EINVAL);
    CU_ASSERT_PTR_NULL(e.rx);
    CU_ASSERT_FALSE(e.c->tp->caps & (MCL__TP_XPROCESS | MCL__TP_FORK_FD | MCL__TP_PUBFILTER));
    close_end(&e);
}

static CU_TestInfo tests[] = {
    {"datagrams_are_opaque_and_ordered", test_datagrams_are_opaque_and_ordered},
    {"fan_out_and_subscribers", test_fan_out_and_subscribers},
    {"queue_is_bounded", test_queue_is_bounded},
    {"each_fault", test_each_fault},
    {"held_datagrams_wake_the_reader", test_held_datagrams_wake_the_reader},
    {"threads", test_threads},
    {"refused_uses", test_refused_uses},
    CU_TEST_INFO_NULL};
MCLT_SUITE("transport_inproc", NULL, NULL, tests);
