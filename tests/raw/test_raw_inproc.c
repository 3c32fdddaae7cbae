// SPDX-License-Identifier: BSD-3-Clause
// The raw broadcaster and listener over inproc://, the in-process fake network: the shared
// cases of raw_cases.c on a clean network, then with injected loss, duplication and
// reordering on many seeds: every message is delivered whole or counted lost, never twice,
// and the counters add up. No sockets (ctest label unit).
#define _GNU_SOURCE
#include "raw_cases.h"

#include <mcl/queued.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>

static int group_counter;

void
rawt_make_url(char *buf, size_t len, const char *extra)
{
    // A fresh group per test; extra is "&key=value...", its first '&' becomes the '?'.
    snprintf(buf, len, "inproc://raw-%d%s%s", ++group_counter, extra[0] ? "?" : "",
             extra[0] == '&' ? extra + 1 : extra);
}

const char *const rawt_bigbuf = "";

static void
test_roundtrip(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "default/topic");
    int64_t before = (int64_t)time(NULL);
    MCLT_OK(mcl_raw_broadcaster_publish(b, "t", "hello", 5));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "", 0));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l, &m, 0)); // delivery is synchronous: no wait needed
    CU_ASSERT_STRING_EQUAL(m->topic, "t");
    CU_ASSERT_EQUAL_FATAL(m->len, 5);
    CU_ASSERT(memcmp(m->payload, "hello", 5) == 0);
    CU_ASSERT_EQUAL(m->seq, 0);
    CU_ASSERT_EQUAL(m->publisher, mcl_raw_broadcaster_id(b));
    CU_ASSERT_EQUAL(m->sender_family, 0); // no address inside a process
    CU_ASSERT(m->recv_realtime_ns / 1000000000 >= before - 1);
    CU_ASSERT(m->recv_mono_ns > 0);
    char sender[8];
    MCLT_OK(mcl_raw_msg_sender(m, sender, sizeof(sender)));
    CU_ASSERT_STRING_EQUAL(sender, "?");
    MCLT_OK(mcl_raw_listener_recv(l, &m, 0));
    CU_ASSERT_STRING_EQUAL(m->topic, "default/topic");
    CU_ASSERT_EQUAL(m->seq, 1);
    MCLT_ERR(mcl_raw_listener_recv(l, &m, 20), MCL_ETIMEDOUT);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 2);
    CU_ASSERT_EQUAL(st.datagrams, 2);
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.rcvbuf, (size_t)64 << 20); // the queue
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.messages, 2);
    CU_ASSERT_EQUAL(bs.datagrams, 2);
    CU_ASSERT_STRING_EQUAL(mcl_connection_scheme(mcl_raw_listener_connection(l)), "inproc");
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_groups_are_separate(void)
{
    char u1[128], u2[128];
    rawt_make_url(u1, sizeof(u1), "");
    rawt_make_url(u2, sizeof(u2), "");
    mcl_raw_listener *l1, *l2;
    mcl_raw_broadcaster *b1, *b2;
    rawt_pair(u1, NULL, 0, &l1, &b1, "a");
    rawt_pair(u2, NULL, 0, &l2, &b2, "b");
    MCLT_OK(mcl_raw_broadcaster_publish(b1, NULL, "1", 1));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_raw_listener_recv(l1, &m, 0));
    CU_ASSERT_STRING_EQUAL(m->topic, "a");
    MCLT_ERR(mcl_raw_listener_recv(l2, &m, 0), MCL_ETIMEDOUT);
    // Nobody listening: a publish succeeds and goes nowhere, as on a network.
    mcl_raw_listener_free(l1);
    MCLT_OK(mcl_raw_broadcaster_publish(b1, NULL, "2", 1));
    mcl_raw_broadcaster_free(b1);
    mcl_raw_broadcaster_free(b2);
    mcl_raw_listener_free(l2);
}

static void
test_subscribers_are_counted(void)
{
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "s"));
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 0), MCL_ETIMEDOUT);
    mcl_raw_listener *l[2];
    for (int i = 0; i < 2; i++)
        MCLT_OK(mcl_raw_listener_open(&l[i], c, NULL, 0));
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 1000));
    mcl_broadcaster_stats bs;
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.subscribers, 2);
    mcl_raw_listener_free(l[0]);
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 2, 0), MCL_ETIMEDOUT);
    MCLT_OK(mcl_raw_broadcaster_stats(b, &bs));
    CU_ASSERT_EQUAL(bs.subscribers, 1);
    mcl_raw_listener_free(l[1]);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(c);
}

static double
cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *
join_later(void *arg)
{
    mcl_raw_listener *l = NULL;
    MCLT_OK(mcl_raw_listener_open(&l, arg, NULL, 0));
    return l;
}

static void
test_waiting_for_subscribers_sleeps(void)
{
    // A wait that times out sleeps (it does not spin on the group), and a wait forever ends
    // when a listener joins from another thread.
    char url[128];
    rawt_make_url(url, sizeof(url), "");
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "w"));
    double cpu0 = cpu_seconds();
    int64_t t0 = mclt_now_ms();
    MCLT_ERR(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 400), MCL_ETIMEDOUT);
    double wall = (double)(mclt_now_ms() - t0) / 1e3, cpu = cpu_seconds() - cpu0;
    CU_ASSERT(wall >= 0.39);
    CU_ASSERT(cpu < wall / 4);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, join_later, c), 0);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, MCL_WAIT_FOREVER));
    void *l;
    pthread_join(th, &l);
    CU_ASSERT_PTR_NOT_NULL(l);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(c);
}

static void
test_queue_overflow_is_counted(void)
{
    // A 64 KiB queue that nobody reads: what does not fit is dropped and counted (as the
    // kernel's drops of a full socket buffer), and the next message reveals the gap.
    char url[128];
    rawt_make_url(url, sizeof(url), "&queue=64k");
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
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT(got > 0 && got < N);
    CU_ASSERT_EQUAL(st.kernel_drops, N - got);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "last", 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 0));
    CU_ASSERT_EQUAL(m->seq, N);
    got++;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, got);
    CU_ASSERT_EQUAL(st.messages + st.lost, N + 1);
    CU_ASSERT_EQUAL(st.kernel_drops, st.lost);
    CU_ASSERT_EQUAL(st.rcvbuf, 65536);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_queued_listener_is_refused(void)
{
    // Its receiver runs in another process, which an in-process group cannot reach.
    mcl_connection *c = mclt_parse("inproc://queued");
    mcl_queued_options o = {.no_thread = true};
    mcl_queued_listener *ql;
    MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_ENOTSUP);
    CU_ASSERT_PTR_NULL(ql);
    mcl_connection_free(c);
}

// --- faults -------------------------------------------------------------------------------------

// How a lossy run went, to compare runs.
typedef struct fault_run {
    uint64_t delivered, lost, duplicates, reordered, datagrams, order_hash;
} fault_run;

enum { KIND_SMALL, KIND_FRAGMENTS, KIND_BATCHED };

static size_t
msg_len(int kind, uint64_t i)
{
    // Small messages of varied sizes, or 1..6 fragments of 1200-byte datagrams.
    return kind == KIND_FRAGMENTS ? (size_t)(1 + (i * 2654435761u) % 6000)
                                  : (size_t)((i * 2654435761u) % 300);
}

// Sends N messages through a listener whose link drops, duplicates and reorders 10 % of the
// datagrams each, then checks every invariant the receive engine promises.
static void
lossy_run(int kind, uint64_t seed, const char *faults, fault_run *out)
{
    enum { N_SMALL = 3000, N_FRAG = 600 };
    uint64_t n = kind == KIND_FRAGMENTS ? N_FRAG : N_SMALL;
    char extra[160], url[256];
    snprintf(extra, sizeof(extra), "&%s&seed=%llu%s", faults, (unsigned long long)seed,
             kind == KIND_FRAGMENTS ? "&dgram=1200"
             : kind == KIND_BATCHED ? "&batch=1000000&dgram=1200"
                                    : "");
    rawt_make_url(url, sizeof(url), extra);
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "lossy");
    uint64_t base = seed << 20;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = msg_len(kind, i);
        uint8_t *p = mclt_pattern(len, base ^ i);
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, len));
        free(p);
    }
    MCLT_OK(mcl_raw_broadcaster_flush(b));
    bool *seen = calloc(n, sizeof(*seen));
    CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
    memset(out, 0, sizeof(*out));
    uint64_t lo = UINT64_MAX, hi = 0;
    const mcl_raw_msg *m;
    // Everything sent is queued or held back by now; held datagrams come out when the queue
    // runs dry, so reading until nothing is left sees all that survived.
    while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK) {
        CU_ASSERT_FATAL(m->seq < n);
        CU_ASSERT_FALSE(seen[m->seq]); // never delivered twice
        seen[m->seq] = true;
        CU_ASSERT_EQUAL(m->len, msg_len(kind, m->seq));
        CU_ASSERT(mclt_pattern_ok(m->payload, m->len, base ^ m->seq)); // whole
        out->delivered++;
        out->order_hash = out->order_hash * 1000003 + m->seq;
        lo = m->seq < lo ? m->seq : lo;
        hi = m->seq > hi ? m->seq : hi;
    }
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    mcl_publisher_stats ps;
    size_t np = 0;
    MCLT_OK(mcl_raw_listener_publishers(l, &ps, 1, &np));
    CU_ASSERT_EQUAL_FATAL(np, 1);
    // The counters add up: between the first and the last message heard, every number was
    // delivered once or counted lost.
    uint64_t missing = 0;
    for (uint64_t s = lo; s <= hi; s++)
        missing += !seen[s];
    CU_ASSERT_EQUAL(st.messages, out->delivered);
    CU_ASSERT_EQUAL(ps.messages, out->delivered);
    CU_ASSERT_EQUAL(ps.first_seq, lo);
    CU_ASSERT_EQUAL(ps.last_seq, hi);
    CU_ASSERT_EQUAL(st.lost, missing);
    CU_ASSERT_EQUAL(ps.lost, missing);
    CU_ASSERT_EQUAL(st.messages + st.lost, hi - lo + 1);
    CU_ASSERT_EQUAL(st.malformed, 0);
    CU_ASSERT_EQUAL(st.kernel_drops, 0);
    if (st.lost != missing || st.messages + st.lost != hi - lo + 1)
        fprintf(stderr, "\n  kind %d seed %llu: delivered %llu lost %llu missing %llu span %llu\n",
                kind, (unsigned long long)seed, (unsigned long long)out->delivered,
                (unsigned long long)st.lost, (unsigned long long)missing,
                (unsigned long long)(hi - lo + 1));
    out->lost = st.lost;
    out->duplicates = st.duplicates;
    out->reordered = st.reordered;
    out->datagrams = st.datagrams;
    free(seen);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static const uint64_t seeds[] = {1, 2, 3, 7, 42, 1000, 65537, 123456789, 0xdeadbeef, 31337};
enum { NSEEDS = sizeof(seeds) / sizeof(seeds[0]) };
#define FAULTS "drop=0.1&dup=0.1&reorder=0.1"

static void
check_kind(int kind)
{
    for (int i = 0; i < NSEEDS; i++) {
        fault_run r;
        lossy_run(kind, seeds[i], FAULTS, &r);
        // Each fault shows in its counter (10 % of thousands of datagrams, on every seed).
        CU_ASSERT(r.lost > 0);
        CU_ASSERT(r.duplicates > 0);
        if (kind != KIND_BATCHED) // a batch datagram holds records in order
            CU_ASSERT(r.reordered > 0);
        CU_ASSERT(r.delivered > 0);
    }
}

static void
test_faults_small_messages(void)
{
    check_kind(KIND_SMALL);
}

static void
test_faults_fragmented_messages(void)
{
    check_kind(KIND_FRAGMENTS);
}

static void
test_faults_batched_messages(void)
{
    check_kind(KIND_BATCHED);
}

static void
test_faults_are_deterministic(void)
{
    // The same seed gives the same run, datagram for datagram; another seed another run.
    fault_run a, b, c;
    lossy_run(KIND_FRAGMENTS, 99, FAULTS, &a);
    lossy_run(KIND_FRAGMENTS, 99, FAULTS, &b);
    lossy_run(KIND_FRAGMENTS, 100, FAULTS, &c);
    CU_ASSERT_EQUAL(a.delivered, b.delivered);
    CU_ASSERT_EQUAL(a.lost, b.lost);
    CU_ASSERT_EQUAL(a.duplicates, b.duplicates);
    CU_ASSERT_EQUAL(a.reordered, b.reordered);
    CU_ASSERT_EQUAL(a.datagrams, b.datagrams);
    CU_ASSERT_EQUAL(a.order_hash, b.order_hash);
    CU_ASSERT_NOT_EQUAL(a.order_hash, c.order_hash);
}

// Which of 0..N-1 arrive through a lossy listener, and its counters, when the listener reads
// after every `every` publishes (0: only at the end).
enum { NREAD = 4000 };
static void
read_every(int every, uint8_t got[NREAD], mcl_listener_stats *st)
{
    memset(got, 0, NREAD);
    char url[128];
    rawt_make_url(url, sizeof(url), "&drop=0.2&dup=0.2&reorder=0.5&depth=2&seed=11");
    mcl_raw_listener *l;
    mcl_raw_broadcaster *b;
    rawt_pair(url, NULL, 0, &l, &b, "c");
    const mcl_raw_msg *m;
    for (int i = 0; i < NREAD; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
        if (every > 0 && i % every == 0)
            while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
                got[m->seq] = 1;
    }
    while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
        got[m->seq] = 1;
    MCLT_OK(mcl_raw_listener_stats(l, st));
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

static void
test_faults_do_not_depend_on_when_the_reader_reads(void)
{
    // A reader that keeps up finds its queue empty and gets what was held back early, so the
    // order changes; which datagrams are lost and which are copied does not (every datagram
    // draws the same numbers whatever is held), so a listener thread sees the same losses
    // on every run.
    static uint8_t a[NREAD], b[NREAD], c[NREAD];
    mcl_listener_stats sa, sb, sc;
    read_every(0, a, &sa);
    read_every(1, b, &sb);
    read_every(7, c, &sc);
    CU_ASSERT(memcmp(a, b, NREAD) == 0);
    CU_ASSERT(memcmp(a, c, NREAD) == 0);
    CU_ASSERT_EQUAL(sa.messages, sb.messages);
    CU_ASSERT_EQUAL(sa.messages, sc.messages);
    CU_ASSERT_EQUAL(sa.duplicates, sb.duplicates);
    CU_ASSERT_EQUAL(sa.datagrams, sc.datagrams);
    CU_ASSERT(sa.messages > 2900 && sa.messages < 3500);
    CU_ASSERT(sa.reordered > sb.reordered); // held back longer when nobody reads
}

static void
test_fault_rates(void)
{
    // Each fault alone, at its rate: drop=0.25 loses about a quarter of 3000 single-datagram
    // messages, dup=0.25 repeats about a quarter, reorder=0.25 makes about a quarter late.
    fault_run r;
    lossy_run(KIND_SMALL, 5, "drop=0.25", &r);
    CU_ASSERT(r.lost > 600 && r.lost < 900);
    CU_ASSERT_EQUAL(r.duplicates, 0);
    CU_ASSERT_EQUAL(r.reordered, 0);
    lossy_run(KIND_SMALL, 5, "dup=0.25", &r);
    CU_ASSERT_EQUAL(r.delivered, 3000);
    CU_ASSERT(r.duplicates > 600 && r.duplicates < 900);
    CU_ASSERT_EQUAL(r.datagrams, 3000 + r.duplicates);
    CU_ASSERT_EQUAL(r.lost, 0);
    lossy_run(KIND_SMALL, 5, "reorder=0.25", &r);
    CU_ASSERT_EQUAL(r.delivered, 3000);
    CU_ASSERT_EQUAL(r.lost, 0); // late, not lost
    CU_ASSERT(r.reordered > 600 && r.reordered < 900);
    // And none: a clean link delivers everything in order.
    lossy_run(KIND_FRAGMENTS, 5, "drop=0", &r);
    CU_ASSERT_EQUAL(r.delivered, 600);
    CU_ASSERT_EQUAL(r.lost + r.duplicates + r.reordered, 0);
}

static void
test_faults_are_per_listener(void)
{
    // One group, a clean listener and a lossy one: the faults of one do not touch the other.
    char url[128], lossy[160];
    rawt_make_url(url, sizeof(url), "");
    snprintf(lossy, sizeof(lossy), "%s?drop=0.5&seed=3", url);
    mcl_connection *cc = mclt_parse(url), *lc = mclt_parse(lossy);
    mcl_raw_listener *clean, *bad;
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_listener_open(&clean, cc, NULL, 0));
    MCLT_OK(mcl_raw_listener_open(&bad, lc, NULL, 0));
    MCLT_OK(mcl_raw_broadcaster_open(&b, cc, "x"));
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, &i, sizeof(i)));
    const mcl_raw_msg *m;
    int got_clean = 0, got_bad = 0;
    while (mcl_raw_listener_recv(clean, &m, 0) == MCL_OK)
        CU_ASSERT_EQUAL(m->seq, (uint64_t)got_clean++);
    while (mcl_raw_listener_recv(bad, &m, 0) == MCL_OK)
        got_bad++;
    CU_ASSERT_EQUAL(got_clean, N);
    CU_ASSERT(got_bad > N / 3 && got_bad < 2 * N / 3);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(bad, &st));
    CU_ASSERT(st.messages + st.lost <= N && st.messages + st.lost >= N - 10);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(clean);
    mcl_raw_listener_free(bad);
    mcl_connection_free(cc);
    mcl_connection_free(lc);
}

static CU_TestInfo tests[] = {{"roundtrip", test_roundtrip},
                              {"groups_are_separate", test_groups_are_separate},
                              {"subscribers_are_counted", test_subscribers_are_counted},
                              {"waiting_for_subscribers_sleeps",
                               test_waiting_for_subscribers_sleeps},
                              {"queue_overflow_is_counted", test_queue_overflow_is_counted},
                              {"queued_listener_is_refused", test_queued_listener_is_refused},
                              RAWT_CASES,
                              {"faults_small_messages", test_faults_small_messages},
                              {"faults_fragmented_messages", test_faults_fragmented_messages},
                              {"faults_batched_messages", test_faults_batched_messages},
                              {"faults_are_deterministic", test_faults_are_deterministic},
                              {"faults_do_not_depend_on_when_the_reader_reads",
                               test_faults_do_not_depend_on_when_the_reader_reads},
                              {"fault_rates", test_fault_rates},
                              {"faults_are_per_listener", test_faults_are_per_listener},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("raw_inproc", NULL, NULL, tests);
