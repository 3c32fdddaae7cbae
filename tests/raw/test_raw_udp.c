// SPDX-License-Identifier: BSD-3-Clause
// Raw broadcaster and listener over real sockets: IPv4 on loopback (ttl 0) and IPv6 on the
// sandbox's veth pair, the shared cases of raw_cases.c and the UDP-only ones. Run inside
// scripts/netns.sh (ctest does, through scripts/test.sh).
#define _GNU_SOURCE
#include "raw_cases.h"
#include "transport/transport.h"
#include "transport/udp/udp.h"

#include <arpa/inet.h>
#include <linux/sock_diag.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

static int group_counter;

// A fresh group per test and a kernel-chosen port: tests never hear each other.
void
rawt_make_url(char *buf, size_t len, const char *extra)
{
    snprintf(buf, len, "udp://239.255.77.%d:0?iface=lo&ttl=0%s", ++group_counter, extra);
}

const char *const rawt_bigbuf = "&rcvbuf=16M";

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
    rawt_pair(url, NULL, 0, &l, &b, "default/topic");
    CU_ASSERT(mcl_connection_port(mcl_raw_listener_connection(l)) != 0); // the bound port
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
    rawt_make_url(url, sizeof(url), "");
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

static void
test_unusable_endpoints(void)
{
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    char longtopic[MCL_TOPIC_MAX + 2];
    memset(longtopic, 'a', sizeof(longtopic) - 1);
    longtopic[sizeof(longtopic) - 1] = '\0';
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

// --- hostile input ------------------------------------------------------------------------------

static void
test_garbage_datagrams_are_counted(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, NULL);
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
    rawt_make_url(url, sizeof(url), "&rcvbuf=4k");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, NULL);
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
    rawt_make_url(url, sizeof(url), "&batch=1000000&dgram=1200");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "f");
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

// recv waits inside the socket read (one recvmmsg with SO_RCVTIMEO, no poll): its timeouts
// still hold, short and longer than one wait (250 ms), 0 does not wait, and a datagram that
// comes while it waits ends the wait at once.
typedef struct late_pub {
    mcl_raw_broadcaster *b;
    int delay_ms;
} late_pub;

static void *
publish_late(void *arg)
{
    late_pub *lp = arg;
    struct timespec ts = {0, (long)lp->delay_ms * 1000000};
    nanosleep(&ts, NULL); // (the delay is what is tested: recv must wait through it)
    MCLT_OK(mcl_raw_broadcaster_publish(lp->b, NULL, "late", 4));
    return NULL;
}

static void
test_recv_waits_in_the_read(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "&heartbeat=0");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "w");
    const mcl_raw_msg *m;
    const int timeouts[] = {0, 40, 600};
    for (size_t i = 0; i < 3; i++) {
        int64_t t0 = mclt_now_ms();
        MCLT_ERR(mcl_raw_listener_recv(l, &m, timeouts[i]), MCL_ETIMEDOUT);
        int64_t took = mclt_now_ms() - t0;
        CU_ASSERT(took >= timeouts[i]);
        CU_ASSERT(took < timeouts[i] + 180); // (one 250 ms wait too many would show)
    }
    late_pub lp = {b, 100};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, publish_late, &lp) == 0);
    int64_t t0 = mclt_now_ms();
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    int64_t took = mclt_now_ms() - t0;
    CU_ASSERT_EQUAL(m->len, 4);
    CU_ASSERT(took >= 90 && took < 2000);
    pthread_join(t, NULL);
    // Whoever holds the descriptor may make it non-blocking (an event loop polling it): the
    // waiting read then comes back at once, and recv must wait in poll instead, not spin.
    int fd = -1;
    MCLT_OK(mcl_raw_listener_fd(l, &fd));
    CU_ASSERT_FATAL(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    t0 = mclt_now_ms();
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 400), MCL_ETIMEDOUT);
    took = mclt_now_ms() - t0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    double cpu_ms = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
    CU_ASSERT(took >= 400 && took < 400 + 180);
    CU_ASSERT(cpu_ms < 100); // (a spinning recv burns the whole 400 ms)
    lp.delay_ms = 50;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, publish_late, &lp) == 0);
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000)); // and still wakes for a datagram
    CU_ASSERT_EQUAL(m->len, 4);
    pthread_join(t, NULL);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// The udp transport's reads, below the listener: a waiting read that waited for its datagram
// asks for one only the next time, and goes back to whole batches as soon as datagrams queue
// up; rx_read_into reads into the caller's buffer (too small a one: cut short, counted).
typedef struct late_send {
    const mcl__bcast_ops *ops;
    mcl__tx *tx;
} late_send;

static void
send_one(const mcl__bcast_ops *ops, mcl__tx *tx, const char *text)
{
    struct iovec iov = {(void *)text, strlen(text)};
    mcl__frame f = {.iov = &iov, .niov = 1};
    unsigned sent = 0;
    char why[128];
    MCLT_OK(ops->tx_send(tx, &f, 1, &sent, why, sizeof(why)));
    CU_ASSERT_EQUAL(sent, 1);
}

static void *
send_late(void *arg)
{
    late_send *ls = arg;
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL); // (the read must be waiting when it comes)
    send_one(ls->ops, ls->tx, "late");
    return NULL;
}

// Bytes the socket's receive queue holds (SO_MEMINFO).
static uint32_t
rmem_of(int fd)
{
    uint32_t mi[SK_MEMINFO_VARS] = {0};
    socklen_t len = sizeof(mi);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len) != 0)
        return 0;
    return mi[SK_MEMINFO_RMEM_ALLOC];
}

static bool
rmem_reaches(void *arg)
{
    const uint32_t *a = arg; // {fd, bytes}
    return rmem_of((int)a[0]) >= a[1];
}

static void
test_udp_reads_lone_and_into(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, url, NULL, 0));
    const mcl__bcast_ops *ops = c->tp->bcast;
    mcl__rxs *rx;
    mcl__rx_opened o = {0};
    MCLT_OK(ops->rx_open(&rx, c, NULL, 0, -1, &o));
    char turl[160];
    snprintf(turl, sizeof(turl), "udp://239.255.77.%d:%u?iface=lo&ttl=0", group_counter,
             (unsigned)o.bound_port);
    mcl_connection *tc;
    MCLT_OK(mcl_connection_parse(&tc, turl, NULL, 0));
    mcl__tx *tx;
    mcl__tx_limits lim = {0};
    MCLT_OK(ops->tx_open(&tx, tc, &lim));
    mcl__dgram d[16];
    unsigned n = 0;
    uint64_t drops = 0;
    // Two batches first (the slots grow while batches come full).
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 16; i++)
            send_one(ops, tx, "burst");
        unsigned got = 0;
        while (got < 16 && ops->rx_read_wait(rx, d, 16, &n, &drops, 2000) == MCL_OK)
            got += n;
        CU_ASSERT_EQUAL(got, 16);
    }
    late_send ls = {ops, tx};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, send_late, &ls) == 0);
    MCLT_OK(ops->rx_read_wait(rx, d, 16, &n, &drops, 2000));
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(n, 1);
    // Now five wait (in the socket: loopback delivery may lag the send under load): the next
    // waiting read asks for one, the one after for the rest.
    int fd = ops->rx_fd(rx);
    send_one(ops, tx, "queued");
    CU_ASSERT_FATAL(mclt_wait_until(rmem_reaches, (uint32_t[]){(uint32_t)fd, 1}, 5000));
    uint32_t one = rmem_of(fd);
    for (int i = 0; i < 4; i++)
        send_one(ops, tx, "queued");
    CU_ASSERT_FATAL(mclt_wait_until(rmem_reaches, (uint32_t[]){(uint32_t)fd, 5 * one}, 5000));
    MCLT_OK(ops->rx_read_wait(rx, d, 16, &n, &drops, 2000));
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(d[0].len == 6 && memcmp(d[0].data, "queued", 6) == 0);
    MCLT_OK(ops->rx_read_wait(rx, d, 16, &n, &drops, 2000));
    CU_ASSERT_EQUAL(n, 4);
    // Into the caller's buffer.
    CU_ASSERT_FATAL(ops->rx_read_into != NULL);
    CU_ASSERT(ops->rx_into_cap >= 65507);
    static uint8_t buf[65536];
    send_one(ops, tx, "into");
    MCLT_OK(ops->rx_read_into(rx, buf, sizeof(buf), d, &drops, 2000));
    CU_ASSERT(d[0].data == buf && d[0].len == 4 && memcmp(buf, "into", 4) == 0);
    CU_ASSERT_EQUAL(d[0].meta.family, 4);
    send_one(ops, tx, "too long");
    MCLT_OK(ops->rx_read_into(rx, buf, 4, d, &drops, 2000));
    CU_ASSERT_PTR_NULL(d[0].data); // (cut short: never passed on as a datagram)
    MCLT_ERR(ops->rx_read_into(rx, buf, sizeof(buf), d, &drops, 0), MCL_EAGAIN);
    // The slots are intact after reads into other buffers.
    send_one(ops, tx, "slot");
    MCLT_OK(ops->rx_read_wait(rx, d, 16, &n, &drops, 2000));
    CU_ASSERT(n == 1 && d[0].data != buf && d[0].len == 4 && memcmp(d[0].data, "slot", 4) == 0);
    ops->tx_close(tx);
    ops->rx_close(rx);
    mcl_connection_free(tc);
    mcl_connection_free(c);
}

static CU_TestInfo tests[] = {
    {"udp_reads_lone_and_into", test_udp_reads_lone_and_into},
    {"recv_waits_in_the_read", test_recv_waits_in_the_read},
    {"batch_send_failures_are_reported", test_batch_send_failures_are_reported},
    {"roundtrip_ipv4", test_roundtrip_ipv4},
    {"roundtrip_ipv6", test_roundtrip_ipv6},
    {"iface_by_address_ipv4", test_iface_by_address_ipv4},
    {"unusable_endpoints", test_unusable_endpoints},
    {"garbage_datagrams_are_counted", test_garbage_datagrams_are_counted},
    {"kernel_drops_and_gaps_are_counted", test_kernel_drops_and_gaps_are_counted},
    RAWT_CASES,
    CU_TEST_INFO_NULL};
MCLT_SUITE("raw_udp", suite_init, NULL, tests);
