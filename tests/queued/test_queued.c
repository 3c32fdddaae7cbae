// SPDX-License-Identifier: BSD-3-Clause
// Queued listener over real sockets (run inside scripts/netns.sh): MCL's QueuedListener
// behaviours, the receiver process's life (kill -9, restart, gaps, no zombie), slow callbacks.
#define _GNU_SOURCE
#include "harness.h"

#include <sched.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int group;

static mcl_connection *
fresh(const char *extra)
{
    char url[768];
    snprintf(url, sizeof(url), "udp://239.255.80.%d:0?iface=lo&ttl=0%s", ++group, extra);
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, url, NULL, 0));
    return c;
}

static mcl_raw_broadcaster *
broadcaster_for(const mcl_queued_listener *ql)
{
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, mcl_queued_listener_url(ql), NULL, 0));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "q"));
    mcl_connection_free(c);
    return b;
}

// A broadcaster to ql's group with extra options appended to its URL.
static mcl_raw_broadcaster *
broadcaster_with(const mcl_queued_listener *ql, const char *extra)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", mcl_queued_listener_url(ql), extra);
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, url, NULL, 0));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, "q"));
    mcl_connection_free(c);
    return b;
}

static mcl_queued_stats
stats(const mcl_queued_listener *ql)
{
    mcl_queued_stats st;
    MCLT_OK(mcl_queued_listener_stats(ql, &st));
    return st;
}

static bool
reaped(int pid)
{
    // Not our child any more (reaped), and gone from /proc: no zombie left.
    errno = 0;
    bool not_child = waitpid(pid, NULL, WNOHANG) < 0 && errno == ECHILD;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d", pid);
    return not_child && access(path, F_OK) != 0;
}

static bool
named_mcl_recv(void *arg)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", *(int *)arg);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(comm, sizeof(comm), f) != NULL && strcmp(comm, "mcl-recv\n") == 0;
    fclose(f);
    return ok;
}

// kB of shared memory a process has mapped in (RssShmem of /proc/PID/status), -1 if unknown.
static long
rss_shmem_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "RssShmem: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

// When open returns, the receiver reads with the whole ring mapped in (no page fault per
// 4 KiB on its first lap while the socket fills); lazy_ring leaves that to the first lap.
static void
test_ring_resident_when_open_returns(void)
{
    for (int lazy = 0; lazy < 2; lazy++) {
        mcl_connection *c = fresh("");
        mcl_queued_options o = {.ring_size = (size_t)16 << 20, .lazy_ring = lazy};
        mcl_queued_listener *ql;
        MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
        int pid = stats(ql).receiver_pid;
        CU_ASSERT_FATAL(pid > 0);
        long kb = rss_shmem_kb(pid), mine = rss_shmem_kb(getpid());
        CU_ASSERT_FATAL(kb >= 0 && mine >= 0);
        if (lazy) {
            CU_ASSERT(kb < 4 * 1024);
        } else {
            CU_ASSERT(kb >= 16 * 1024);
            CU_ASSERT(mine >= 16 * 1024);
        }
        mcl_queued_listener_free(ql);
        mcl_connection_free(c);
    }
}

static void
test_mcl_open_close_semantics(void)
{
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    CU_ASSERT(mcl_queued_listener_is_open(ql));
    MCLT_ERR(mcl_queued_listener_open(ql), MCL_EALREADY);
    mcl_queued_stats st = stats(ql);
    CU_ASSERT(st.receiver_pid > 0);
    CU_ASSERT(st.receiver_alive);
    // The receiver is recognisable (it names itself first thing after the fork).
    CU_ASSERT(mclt_wait_until(named_mcl_recv, &st.receiver_pid, 5000));
    int pid = st.receiver_pid;
    MCLT_OK(mcl_queued_listener_close(ql));
    CU_ASSERT_FALSE(mcl_queued_listener_is_open(ql));
    MCLT_ERR(mcl_queued_listener_close(ql), MCL_ECLOSED);
    CU_ASSERT(reaped(pid));
    CU_ASSERT_EQUAL(stats(ql).receiver_pid, 0);
    // Reopen after close works, on the same port.
    MCLT_OK(mcl_queued_listener_open(ql));
    CU_ASSERT(mcl_queued_listener_is_open(ql));
    MCLT_OK(mcl_queued_listener_close(ql));
    mcl_queued_listener_free(ql);

    // open_init=False: not open until asked.
    mcl_queued_options o = {.defer_open = true};
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    CU_ASSERT_FALSE(mcl_queued_listener_is_open(ql));
    CU_ASSERT_EQUAL(stats(ql).receiver_pid, 0);
    MCLT_OK(mcl_queued_listener_open(ql));
    CU_ASSERT(mcl_queued_listener_is_open(ql));
    mcl_queued_listener_free(ql); // free closes
    mcl_connection_free(c);

    // A bad endpoint fails at creation, even when opening is deferred.
    MCLT_OK(mcl_connection_parse(&c, "udp://239.255.80.250:0?iface=nonexistent0", NULL, 0));
    MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_ENODEV);
    CU_ASSERT_PTR_NULL(ql);
    mcl_connection_free(c);
}

static atomic_int raw_count, msg_count;
static char last_payload[64];

static void
on_raw(const mcl_raw_msg *m, void *u)
{
    (void)u;
    if (m->len < sizeof(last_payload)) {
        memcpy(last_payload, m->payload, m->len);
        last_payload[m->len] = '\0';
    }
    atomic_fetch_add(&raw_count, 1);
}

static void
on_msg(const mcl_msg *m, const mcl_raw_msg *raw, void *u)
{
    (void)u;
    (void)raw;
    int64_t a;
    if (mcl_msg_get_int(m, "A", &a) == MCL_OK && a == 1)
        atomic_fetch_add(&msg_count, 1);
}

static bool
counts_reach(void *arg)
{
    int *want = arg;
    return atomic_load(&raw_count) >= want[0] && atomic_load(&msg_count) >= want[1];
}

static void
test_delivers_raw_and_messages(void)
{
    atomic_store(&raw_count, 0);
    atomic_store(&msg_count, 0);
    const mcl_field ab[] = {{"A", MCL_TYPE_INT}, {"B", MCL_TYPE_INT}};
    const mcl_msgtype *t;
    MCLT_OK(mcl_msgtype_define(&t, "QMsg", ab, 2, NULL, NULL, NULL, 0));
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, t, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_raw, NULL));
    MCLT_ERR(mcl_queued_listener_subscribe(ql, on_raw, NULL), MCL_EALREADY);
    MCLT_OK(mcl_queued_listener_subscribe_msg(ql, on_msg, NULL));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "test", 4));
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, t));
    MCLT_OK(mcl_msg_set_int(m, "A", 1));
    MCLT_OK(mcl_msg_set_int(m, "B", 2));
    void *buf;
    size_t len;
    MCLT_OK(mcl_msg_encode(m, &buf, &len));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, buf, len));
    mcl_free(buf);
    mcl_msg_free(m);
    int want[2] = {2, 1};
    CU_ASSERT_FATAL(mclt_wait_until(counts_reach, want, 5000));
    mcl_queued_stats st = stats(ql);
    CU_ASSERT_EQUAL(st.delivered, 2);
    CU_ASSERT_EQUAL(st.undecodable, 1); // "test" is not a message
    CU_ASSERT_EQUAL(st.ring_drops, 0);
    CU_ASSERT(st.ring_high_water > 0);
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
    MCLT_OK(mcl_msgtype_remove("QMsg"));
}

// The receiver's counters that came after the first ones (heartbeats, compression) reach
// the queued listener's stats too: a compressed message, and the publisher's heartbeats.
static bool
compressed_counted(void *arg)
{
    mcl_queued_stats st = stats(arg);
    return st.receiver.compressed == 1 && st.receiver.heartbeats >= 1;
}

static void
test_stats_carry_every_counter(void)
{
    atomic_store(&raw_count, 0);
    mcl_connection *c = fresh("&heartbeat=50");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_raw, NULL));
    mcl_connection *bc;
    char url[300];
    snprintf(url, sizeof(url), "%s&compress=lz4", mcl_queued_listener_url(ql));
    MCLT_OK(mcl_connection_parse(&bc, url, NULL, 0));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, bc, "q"));
    static uint8_t text[20000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t)("abcdefgh"[i % 8]);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, text, sizeof(text)));
    CU_ASSERT(mclt_wait_until(compressed_counted, ql, 5000));
    mcl_queued_stats st = stats(ql);
    CU_ASSERT_EQUAL(st.receiver.compressed, 1);
    CU_ASSERT(st.receiver.compressed_bytes > 0 && st.receiver.compressed_bytes < 2000);
    CU_ASSERT_EQUAL(st.receiver.undecompressed, 0);
    CU_ASSERT_EQUAL(st.delivered, 1);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(bc);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static void
test_no_thread_fd_dispatch_recv(void)
{
    atomic_store(&raw_count, 0);
    mcl_connection *c = fresh("");
    mcl_queued_options o = {.no_thread = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_raw, NULL));
    int fd;
    MCLT_OK(mcl_queued_listener_fd(ql, &fd));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    int64_t end = mclt_now_ms() + 5000;
    while (atomic_load(&raw_count) < 10 && mclt_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            size_t n;
            MCLT_OK(mcl_queued_listener_dispatch(ql, 3, &n)); // 3 at a time: fd stays readable
            CU_ASSERT(n <= 3);
        }
    }
    CU_ASSERT_EQUAL(atomic_load(&raw_count), 10);
    // recv on the caller's thread.
    MCLT_OK(mcl_raw_broadcaster_publish(b, "r", "one", 3));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "r", "two", 3));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_queued_listener_recv(ql, &m, 5000));
    CU_ASSERT_STRING_EQUAL(m->topic, "r");
    CU_ASSERT(m->len == 3 && memcmp(m->payload, "one", 3) == 0);
    CU_ASSERT_EQUAL(m->seq, 10);
    CU_ASSERT(m->recv_realtime_ns > 0);
    MCLT_OK(mcl_queued_listener_recv(ql, &m, 5000));
    CU_ASSERT(m->len == 3 && memcmp(m->payload, "two", 3) == 0);
    MCLT_ERR(mcl_queued_listener_recv(ql, &m, 20), MCL_ETIMEDOUT);
    CU_ASSERT_EQUAL(atomic_load(&raw_count), 10); // recv calls no callback
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

// --- kill -9 of the receiver during traffic ----------------------------------------------------

enum { KILL_N = 30000 };
static atomic_int seen_count;
static unsigned char seen[KILL_N];

static void
on_seq(const mcl_raw_msg *m, void *u)
{
    (void)u;
    if (m->seq < KILL_N && !seen[m->seq]) {
        seen[m->seq] = 1;
        atomic_fetch_add(&seen_count, 1);
    }
}

typedef struct sender {
    mcl_raw_broadcaster *b;
    atomic_int sent;
} sender;

static void *
send_thread(void *arg)
{
    sender *s = arg;
    uint8_t p[64] = {0};
    for (int i = 0; i < KILL_N; i++) {
        if (mcl_raw_broadcaster_publish(s->b, NULL, p, sizeof(p)) != MCL_OK)
            break;
        atomic_store(&s->sent, i + 1);
        if (i % 100 == 99) { // about 100k messages/s: the kill lands mid-stream
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static bool
some_seen(void *arg)
{
    return atomic_load(&seen_count) >= *(int *)arg;
}

static bool
restarted(void *arg)
{
    mcl_queued_stats st = stats(arg);
    return st.restarts >= 1 && st.receiver_alive;
}

static void
test_kill_receiver_restart_and_gaps(void)
{
    memset(seen, 0, sizeof(seen));
    atomic_store(&seen_count, 0);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_seq, NULL));
    sender s = {.b = broadcaster_for(ql)};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, send_thread, &s), 0);
    int want = 3000;
    CU_ASSERT_FATAL(mclt_wait_until(some_seen, &want, 20000));
    int pid = stats(ql).receiver_pid;
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    CU_ASSERT(mclt_wait_until(restarted, ql, 10000));
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(atomic_load(&s.sent), KILL_N);
    // One last message after the others, so that a loss at the end is a gap too.
    MCLT_OK(mcl_raw_broadcaster_publish(s.b, NULL, "end", 3));
    int64_t end = mclt_now_ms() + 20000;
    while (mclt_now_ms() < end) {
        mcl_queued_stats st = stats(ql);
        if (st.delivered + st.receiver.lost + st.ring_drops >= KILL_N + 1)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    mcl_queued_stats st = stats(ql);
    fprintf(stderr, "\n  killed receiver %d: delivered %llu, lost %llu (across restart %llu), "
                    "ring drops %llu, restarts %llu ",
            pid, (unsigned long long)st.delivered, (unsigned long long)st.receiver.lost,
            (unsigned long long)st.restart_lost, (unsigned long long)st.ring_drops,
            (unsigned long long)st.restarts);
    CU_ASSERT(st.receiver_deaths >= 1);
    CU_ASSERT(st.restarts >= 1);
    CU_ASSERT(reaped(pid));
    // Every message is accounted for: delivered once, or counted as lost or dropped.
    CU_ASSERT_EQUAL(st.delivered, (uint64_t)atomic_load(&seen_count) + 1);
    CU_ASSERT_EQUAL(st.delivered + st.receiver.lost + st.ring_drops, KILL_N + 1);
    mcl_raw_broadcaster_free(s.b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static bool
delivered_at_least(void *arg)
{
    mcl_queued_stats st;
    mcl_queued_listener_stats(((void **)arg)[0], &st);
    return st.delivered >= *(uint64_t *)((void **)arg)[1];
}

static bool
all_accounted(void *arg)
{
    mcl_queued_stats st;
    mcl_queued_listener_stats(((void **)arg)[0], &st);
    return st.delivered + st.receiver.lost >= *(uint64_t *)((void **)arg)[1];
}

static void
test_stopped_receiver_kernel_drops_across_restart(void)
{
    // The receiver is stopped (SIGSTOP) while 300 messages arrive at a tiny socket buffer: the
    // kernel drops most. It is then killed and replaced; the new receiver reads what the socket
    // kept, and every message is accounted for: delivered, or lost (gaps) = kernel drops.
    mcl_connection *c = fresh("&rcvbuf=4k");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    static uint8_t p[1000];
    uint64_t want = 0;
    void *arg[2] = {ql, &want};
    for (int i = 0; i < 100; i++) { // one at a time: the tiny buffer must not overflow yet
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
        want = (uint64_t)i + 1;
        CU_ASSERT_FATAL(mclt_wait_until(delivered_at_least, arg, 10000));
    }
    int pid = stats(ql).receiver_pid;
    CU_ASSERT_EQUAL_FATAL(kill(pid, SIGSTOP), 0);
    for (int i = 0; i < 300; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    CU_ASSERT_FATAL(mclt_wait_until(restarted, ql, 10000));
    // Paced again (each waits for its delivery), so these are not dropped as well.
    for (int i = 0; i < 100; i++) {
        want = stats(ql).delivered + 1;
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
        CU_ASSERT_FATAL(mclt_wait_until(delivered_at_least, arg, 10000));
    }
    want = 500;
    CU_ASSERT(mclt_wait_until(all_accounted, arg, 10000));
    mcl_queued_stats st = stats(ql);
    if (st.delivered + st.receiver.lost != 500 || st.receiver.lost != st.receiver.kernel_drops)
        fprintf(stderr, "\n  delivered %llu lost %llu kernel %llu restart_lost %llu ",
                (unsigned long long)st.delivered, (unsigned long long)st.receiver.lost,
                (unsigned long long)st.receiver.kernel_drops,
                (unsigned long long)st.restart_lost);
    CU_ASSERT(st.receiver.kernel_drops > 0);
    CU_ASSERT_EQUAL(st.delivered + st.receiver.lost, 500);
    // What the stopped receiver had read from the socket but not yet put in the ring when it
    // was killed (SIGSTOP lands at a moment of its choosing, also just after a read: at most
    // one read's worth) is lost across the restart; every other gap is a kernel drop.
    CU_ASSERT_EQUAL(st.receiver.lost, st.receiver.kernel_drops + st.restart_lost);
    CU_ASSERT(st.restart_lost <= 16);
    CU_ASSERT(reaped(pid));
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static void
test_no_restart_reports_death(void)
{
    mcl_connection *c = fresh("");
    mcl_queued_options o = {.no_restart = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    int pid = stats(ql).receiver_pid;
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    int64_t end = mclt_now_ms() + 10000;
    while (stats(ql).receiver_alive && mclt_now_ms() < end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    mcl_queued_stats st = stats(ql);
    CU_ASSERT_FALSE(st.receiver_alive);
    CU_ASSERT_EQUAL(st.receiver_deaths, 1);
    CU_ASSERT_EQUAL(st.restarts, 0);
    CU_ASSERT(reaped(pid));
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

// --- slow callbacks ------------------------------------------------------------------------------

enum { SLOW_N = 20000 };
static atomic_int slow_count;

static void
on_slow(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    if (atomic_fetch_add(&slow_count, 1) % 1000 == 999) {
        struct timespec ts = {0, 20000000}; // the behaviour under test: a 20 ms stall
        nanosleep(&ts, NULL);
    }
}

static bool
slow_done(void *arg)
{
    (void)arg;
    return atomic_load(&slow_count) >= SLOW_N;
}

static void
test_slow_callback_loses_nothing(void)
{
    // Full-rate 64-byte messages into a callback that stalls 20 ms every 1000 messages: the
    // receiver keeps reading, the ring absorbs the backlog, nothing is lost. (bench/queued.c
    // shows a plain threaded listener losing in the same situation.)
    atomic_store(&slow_count, 0);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_slow, NULL));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    uint8_t p[64] = {0};
    for (int i = 0; i < SLOW_N; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)));
    CU_ASSERT(mclt_wait_until(slow_done, NULL, 30000));
    mcl_queued_stats st = stats(ql);
    if (st.delivered != SLOW_N)
        fprintf(stderr, "\n  delivered %llu, kernel drops %llu, ring drops %llu, lost %llu, "
                        "high water %llu ",
                (unsigned long long)st.delivered, (unsigned long long)st.receiver.kernel_drops,
                (unsigned long long)st.ring_drops, (unsigned long long)st.receiver.lost,
                (unsigned long long)st.ring_high_water);
    CU_ASSERT_EQUAL(st.delivered, SLOW_N);
    CU_ASSERT_EQUAL(st.ring_drops, 0);
    CU_ASSERT_EQUAL(st.receiver.kernel_drops, 0);
    CU_ASSERT_EQUAL(st.receiver.lost, 0);
    CU_ASSERT(st.ring_high_water > 64 * 100); // the ring did hold a backlog
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

// --- straight into the ring ---------------------------------------------------------------------

enum { DIRECT_BIG = 16384, DIRECT_FRAG = 150000, DIRECT_N = 119 };
// kinds: 0 big (16 KiB), 1 small (100 B), 2 frag (150 kB, fragmented), 3 zip (16 KiB,
// compressed by the publisher), 4 empty (no payload)
static atomic_int direct_count, direct_bad;
static int direct_next[5]; // per topic kind: the index expected next (callback thread only)

// Payload i of a topic kind: its index, then bytes that depend on both (any misplaced or stale
// byte shows).
static void
direct_fill(uint8_t *p, size_t len, uint32_t i, int kind)
{
    memcpy(p, &i, 4);
    for (size_t k = 4; k < len; k++)
        p[k] = kind == 3 ? (uint8_t)'z' : (uint8_t)(i * 31 + k * 7 + (size_t)kind);
}

static int
direct_kind(const char *topic)
{
    return strcmp(topic, "big") == 0 ? 0 : strcmp(topic, "small") == 0 ? 1
           : strcmp(topic, "frag") == 0 ? 2 : strcmp(topic, "zip") == 0 ? 3
           : strcmp(topic, "empty") == 0 ? 4 : -1;
}

static size_t
direct_len(int kind)
{
    return kind == 0 || kind == 3 ? DIRECT_BIG : kind == 1 ? 100 : kind == 2 ? DIRECT_FRAG : 0;
}

static void
on_direct(const mcl_raw_msg *m, void *u)
{
    (void)u;
    int kind = direct_kind(m->topic);
    static uint8_t want[DIRECT_FRAG];
    uint32_t i;
    if (kind < 0 || m->len != direct_len(kind) || m->topic_len != strlen(m->topic)) {
        atomic_fetch_add(&direct_bad, 1);
    } else if (kind == 4) {
        direct_next[kind]++;
    } else {
        memcpy(&i, m->payload, 4);
        direct_fill(want, m->len, i, kind);
        if (i != (uint32_t)direct_next[kind] || memcmp(want, m->payload, m->len) != 0)
            atomic_fetch_add(&direct_bad, 1);
        direct_next[kind] = (int)i + 1;
    }
    atomic_fetch_add(&direct_count, 1);
}

static bool
direct_done(void *arg)
{
    return atomic_load(&direct_count) >= *(int *)arg;
}

static bool
five_compressed(void *arg)
{
    return stats(arg).receiver.compressed == 5;
}

// Runs of large messages, batched small ones, fragmented and compressed ones: every message
// arrives whole, in order per topic, whether or not its datagram was read straight into the
// ring; returns how many were.
static uint64_t
direct_run(bool no_direct, const char *extra)
{
    atomic_store(&direct_count, 0);
    atomic_store(&direct_bad, 0);
    memset(direct_next, 0, sizeof(direct_next));
    mcl_connection *c = fresh(extra);
    mcl_queued_options o = {.no_direct = no_direct};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_direct, NULL));
    // Large ones alone, compressed ones from a broadcaster of their own, small ones batched
    // (one datagram of several records per run).
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    mcl_raw_broadcaster *bz = broadcaster_with(ql, "&compress=zstd");
    mcl_raw_broadcaster *bb = broadcaster_with(ql, "&batch=1000000");
    static uint8_t p[DIRECT_FRAG];
    uint32_t n[5] = {0};
    const struct { int kind, count; } plan[] = {{0, 20}, {1, 10}, {0, 20}, {2, 3}, {0, 20},
                                                {3, 5},  {1, 20}, {0, 20}, {4, 1}};
    static const char *const names[] = {"big", "small", "frag", "zip", "empty"};
    int total = 0;
    for (size_t r = 0; r < sizeof(plan) / sizeof(plan[0]); r++)
        for (int k = 0; k < plan[r].count; k++, total++) {
            int kind = plan[r].kind;
            direct_fill(p, direct_len(kind), n[kind]++, kind);
            mcl_raw_broadcaster *to = kind == 3 ? bz : kind == 1 ? bb : b;
            MCLT_OK(mcl_raw_broadcaster_publish(to, names[kind], p, direct_len(kind)));
            if (kind == 1 && k + 1 == plan[r].count)
                MCLT_OK(mcl_raw_broadcaster_flush(bb));
        }
    CU_ASSERT_EQUAL(total, DIRECT_N);
    int want = DIRECT_N;
    CU_ASSERT(mclt_wait_until(direct_done, &want, 10000));
    CU_ASSERT(mclt_wait_until(five_compressed, ql, 5000)); // (the receiver's counters lag)
    mcl_queued_stats st = stats(ql);
    CU_ASSERT_EQUAL(atomic_load(&direct_count), DIRECT_N);
    CU_ASSERT_EQUAL(atomic_load(&direct_bad), 0);
    CU_ASSERT_EQUAL(direct_next[4], 1);
    CU_ASSERT_EQUAL(st.delivered, DIRECT_N);
    CU_ASSERT_EQUAL(st.receiver.lost, 0);
    CU_ASSERT_EQUAL(st.receiver.compressed, 5);
    if (st.ring_direct > 80)
        fprintf(stderr, "\n  ring_direct %llu ", (unsigned long long)st.ring_direct);
    CU_ASSERT(st.ring_direct <= 80); // only the plain 16 KiB ones
    mcl_raw_broadcaster_free(bb);
    mcl_raw_broadcaster_free(bz);
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
    return st.ring_direct;
}

static void
test_large_messages_read_into_the_ring(void)
{
    // Of each run of 20 large messages, the first is copied (the one before it was small), and
    // so are the ones a batch read took along (up to 15: a receiver that falls behind, as
    // under valgrind, reads many at once) and, after a batch of small ones was read into the
    // ring and moved out, the rest of a 16-message pause; the others are read in place.
    // At least 4 of each run then, whatever the timing (a fast receiver: nearly all).
    enum { DIRECT_AT_LEAST = 4 * (20 - 1 - 15) };
    uint64_t direct = direct_run(false, "");
    CU_ASSERT(direct >= DIRECT_AT_LEAST);
    CU_ASSERT_EQUAL(direct_run(true, ""), 0);
    // Signed datagrams are verified where they lie; encrypted ones are opened into a buffer of
    // the listener's, and copied from there.
    const char *key = mclt_tmppath("direct.gkey");
    FILE *f = fopen(key, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("key = 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", f);
    fclose(f);
    char extra[600];
    snprintf(extra, sizeof(extra), "&key=%s", key);
    CU_ASSERT(direct_run(false, extra) >= DIRECT_AT_LEAST);
    snprintf(extra, sizeof(extra), "&key=%s&encrypt=1", key);
    CU_ASSERT_EQUAL(direct_run(false, extra), 0);
    unlink(key);
}

// The receiver runs on the CPUs asked for, wherever the opening thread runs; lists that are not
// CPU lists, or name no CPU the receiver may use, are refused at new.
static void
test_receiver_cpus(void)
{
    cpu_set_t mine;
    CU_ASSERT_FATAL(sched_getaffinity(0, sizeof(mine), &mine) == 0);
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &mine))
            last = c;
    char want[32];
    snprintf(want, sizeof(want), "%d", last);
    mcl_connection *c = fresh("");
    mcl_queued_options o = {.receiver_cpus = want};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    int pid = stats(ql).receiver_pid;
    cpu_set_t got;
    CU_ASSERT_FATAL(sched_getaffinity(pid, sizeof(got), &got) == 0);
    CU_ASSERT_EQUAL(CPU_COUNT(&got), 1);
    CU_ASSERT(CPU_ISSET(last, &got));
    // (and it still receives)
    atomic_store(&raw_count, 0);
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_raw, NULL));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "pinned", 6));
    int n[2] = {1, 0};
    CU_ASSERT(mclt_wait_until(counts_reach, n, 5000));
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    // A list of two, and the whole set as a range.
    char list[64];
    snprintf(list, sizeof(list), "%d,%d-%d", last, last, last);
    o.receiver_cpus = list;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    mcl_queued_listener_free(ql);
    o.receiver_cpus = "";
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    mcl_queued_listener_free(ql);
    char beyond[32];
    snprintf(beyond, sizeof(beyond), "%d", CPU_SETSIZE);
    const char *bad[] = {"x", "1-0", "0,", ",0", "-1", "0-", "0 ", "0;1", beyond,
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o.receiver_cpus = bad[i];
        MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_EINVAL);
        CU_ASSERT_PTR_NULL(ql);
    }
    // A CPU no machine here has (configured CPUs are numbered below the count): the receiver
    // may run on none of the list, which the open reports.
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    if (conf > 0 && conf < CPU_SETSIZE) {
        snprintf(want, sizeof(want), "%d", CPU_SETSIZE - 1);
        o.receiver_cpus = want;
        MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o), MCL_EINVAL);
        CU_ASSERT_PTR_NULL(ql);
        snprintf(list, sizeof(list), "%d,%d", last, CPU_SETSIZE - 1); // (one of them will do)
        o.receiver_cpus = list;
        MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
        mcl_queued_listener_free(ql);
    }
    // The calling thread's own affinity does not limit the receiver: a thread pinned to its
    // first CPU opens a listener whose receiver runs on its last.
    int first = -1;
    for (int k = 0; k < CPU_SETSIZE && first < 0; k++)
        if (CPU_ISSET(k, &mine))
            first = k;
    if (first != last) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(first, &one);
        CU_ASSERT_FATAL(pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0);
        snprintf(want, sizeof(want), "%d", last);
        o.receiver_cpus = want;
        mcl_err rv = mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o);
        CU_ASSERT_FATAL(pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine) == 0);
        MCLT_OK(rv);
        if (rv == MCL_OK) {
            CU_ASSERT_FATAL(sched_getaffinity(stats(ql).receiver_pid, sizeof(got), &got) == 0);
            CU_ASSERT_EQUAL(CPU_COUNT(&got), 1);
            CU_ASSERT(CPU_ISSET(last, &got));
            mcl_queued_listener_free(ql);
        }
    }
    mcl_connection_free(c);
}

static bool
ring_handled(void *arg)
{
    mcl_queued_stats st;
    mcl_queued_listener_stats(arg, &st);
    return st.ring_oversize == 1 && st.receiver.messages == 101;
}

static void
test_oversize_and_full_ring(void)
{
    atomic_store(&raw_count, 0);
    mcl_connection *c = fresh("");
    mcl_queued_options o = {.ring_size = 64 * 1024, .no_thread = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    static uint8_t big[40000];
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, big, sizeof(big))); // > half the ring
    // Nobody drains (no thread): 100 x 1 KiB fill the 64 KiB ring, the rest are dropped.
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, big, 1024));
    // The receiver has handled all 101 once the counters add up (60 records fill the ring).
    CU_ASSERT(mclt_wait_until(ring_handled, ql, 10000));
    size_t n = 0;
    MCLT_OK(mcl_queued_listener_dispatch(ql, 0, &n));
    mcl_queued_stats st = stats(ql);
    size_t total = n;
    CU_ASSERT_EQUAL(st.ring_oversize, 1);
    CU_ASSERT(st.ring_drops > 0);
    CU_ASSERT_EQUAL(st.delivered + st.ring_drops, 100);
    CU_ASSERT(st.ring_high_water <= 64 * 1024);
    CU_ASSERT_EQUAL(total, st.delivered);
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static void
test_recv_keeps_fd_level_triggered(void)
{
    // After recv() returns a message or times out, a later message makes the fd readable.
    mcl_connection *c = fresh("");
    mcl_queued_options o = {.no_thread = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, &o));
    int fd;
    MCLT_OK(mcl_queued_listener_fd(ql, &fd));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "1", 1));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CU_ASSERT(poll(&p, 1, 5000) == 1);
    const mcl_raw_msg *m;
    MCLT_OK(mcl_queued_listener_recv(ql, &m, 0));
    MCLT_ERR(mcl_queued_listener_recv(ql, &m, 0), MCL_ETIMEDOUT);
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "2", 1));
    CU_ASSERT(poll(&p, 1, 5000) == 1);
    MCLT_OK(mcl_queued_listener_recv(ql, &m, 0));
    CU_ASSERT(m->len == 1 && ((const char *)m->payload)[0] == '2');
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static atomic_int close_count;
static void
on_slow2(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    atomic_fetch_add(&close_count, 1);
    struct timespec ts = {0, 2000000}; // a slow consumer: 2 ms per message
    nanosleep(&ts, NULL);
}

static bool
one_delivered(void *arg)
{
    (void)arg;
    return atomic_load(&close_count) > 0;
}

static void
test_close_drops_the_backlog(void)
{
    // close() with thousands of messages queued for a slow callback returns without delivering
    // them all (it drops what is queued, as documented).
    atomic_store(&close_count, 0);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_slow2, NULL));
    mcl_raw_broadcaster *b = broadcaster_for(ql);
    for (int i = 0; i < 3000; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "x", 1));
    CU_ASSERT(mclt_wait_until(one_delivered, NULL, 5000));
    MCLT_OK(mcl_queued_listener_close(ql));
    CU_ASSERT(atomic_load(&close_count) < 3000);
    mcl_raw_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
}

static void
test_receiver_hygiene_and_bad_topics(void)
{
    // The receiver holds no descriptor of the application but its socket and eventfd.
    int pipefd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pipefd), 0);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    int pid = stats(ql).receiver_pid;
    CU_ASSERT(mclt_wait_until(named_mcl_recv, &pid, 5000));
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (e->d_name[0] != '.' && atoi(e->d_name) < 1000) // valgrind keeps its own above
            n++;
    closedir(d);
    CU_ASSERT(n <= 6); // stdin, stdout, stderr, the socket (and its listener copy), the eventfd
    mcl_queued_listener_free(ql);
    close(pipefd[0]);
    close(pipefd[1]);
    // A topic filter the receiver would refuse is refused here, not by a crashing receiver.
    char longtopic[MCL_TOPIC_MAX + 2];
    memset(longtopic, 't', sizeof(longtopic) - 1);
    longtopic[sizeof(longtopic) - 1] = '\0';
    const char *topics[] = {longtopic};
    MCLT_ERR(mcl_queued_listener_new(&ql, c, NULL, topics, 1, NULL), MCL_EINVAL);
    mcl_connection_free(c);
}

static void
test_death_seen_when_sigchld_ignored(void)
{
    // With SIGCHLD ignored the kernel reaps the receiver itself; the death is still noticed.
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGCHLD, &ign, &old);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    int pid = stats(ql).receiver_pid;
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    CU_ASSERT(mclt_wait_until(restarted, ql, 10000));
    CU_ASSERT_EQUAL(stats(ql).receiver_deaths, 1);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
    sigaction(SIGCHLD, &old, NULL);
}


// fork() with listeners and a broadcaster open: the child may close and free what it inherited,
// and that touches nothing of the parent's. Its queued listener's receiver is not killed, its
// raw listener keeps its socket and group, its publisher says no goodbye, and its threads go on.
static atomic_int plain_count, goodbyes;

static void
on_plain(const mcl_raw_msg *m, void *u)
{
    (void)m;
    (void)u;
    atomic_fetch_add(&plain_count, 1);
}

static void
on_gone(mcl_raw_listener *l, const mcl_publisher_stats *p, bool alive, void *u)
{
    (void)l;
    (void)p;
    (void)u;
    if (!alive)
        atomic_fetch_add(&goodbyes, 1);
}

static bool
both_reach(void *arg)
{
    int want = *(int *)arg;
    return atomic_load(&raw_count) >= want && atomic_load(&plain_count) >= want;
}

static void
test_fork_child_leaves_parent_alone(void)
{
    atomic_store(&raw_count, 0);
    atomic_store(&plain_count, 0);
    atomic_store(&goodbyes, 0);
    mcl_connection *c = fresh("");
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL));
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_raw, NULL));
    mcl_connection *bc;
    MCLT_OK(mcl_connection_parse(&bc, mcl_queued_listener_url(ql), NULL, 0));
    mcl_raw_listener *rl;
    MCLT_OK(mcl_raw_listener_open(&rl, bc, NULL, 0));
    MCLT_OK(mcl_raw_listener_subscribe(rl, on_plain, NULL));
    MCLT_OK(mcl_raw_listener_on_presence(rl, on_gone, NULL));
    MCLT_OK(mcl_raw_listener_start(rl));
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, bc, "q"));
    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "one", 3));
    int want = 1;
    CU_ASSERT_FATAL(mclt_wait_until(both_reach, &want, 5000));
    int receiver = stats(ql).receiver_pid;

    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        alarm(10); // a hang fails the test (SIGALRM), not the suite
        int bad = mcl_queued_listener_close(ql) != MCL_OK;
        mcl_queued_listener_free(ql);
        bad |= mcl_raw_listener_close(rl) != MCL_OK;
        mcl_raw_listener_free(rl);
        bad |= mcl_raw_broadcaster_close(b) != MCL_OK;
        mcl_raw_broadcaster_free(b);
        _exit(bad ? 3 : 0);
    }
    int st = 0;
    CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    MCLT_OK(mcl_raw_broadcaster_publish(b, NULL, "two", 3));
    want = 2;
    CU_ASSERT(mclt_wait_until(both_reach, &want, 5000));
    mcl_queued_stats qs = stats(ql);
    CU_ASSERT_EQUAL(qs.receiver_pid, receiver); // the same receiver, never restarted
    CU_ASSERT(qs.receiver_alive);
    CU_ASSERT_EQUAL(qs.restarts, 0);
    CU_ASSERT_EQUAL(qs.receiver_deaths, 0);
    CU_ASSERT_EQUAL(qs.receiver.lost, 0);
    CU_ASSERT_EQUAL(atomic_load(&goodbyes), 0); // the child said no goodbye for the parent
    CU_ASSERT_EQUAL(strcmp(last_payload, "two"), 0);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(rl);
    mcl_queued_listener_free(ql);
    mcl_connection_free(bc);
    mcl_connection_free(c);
}

static CU_TestInfo tests[] = {
    {"recv_keeps_fd_level_triggered", test_recv_keeps_fd_level_triggered},
    {"close_drops_the_backlog", test_close_drops_the_backlog},
    {"receiver_hygiene_and_bad_topics", test_receiver_hygiene_and_bad_topics},
    {"death_seen_when_sigchld_ignored", test_death_seen_when_sigchld_ignored},
    {"mcl_open_close_semantics", test_mcl_open_close_semantics},
    {"ring_resident_when_open_returns", test_ring_resident_when_open_returns},
    {"stats_carry_every_counter", test_stats_carry_every_counter},
    {"delivers_raw_and_messages", test_delivers_raw_and_messages},
    {"no_thread_fd_dispatch_recv", test_no_thread_fd_dispatch_recv},
    {"kill_receiver_restart_and_gaps", test_kill_receiver_restart_and_gaps},
    {"stopped_receiver_kernel_drops_across_restart",
     test_stopped_receiver_kernel_drops_across_restart},
    {"no_restart_reports_death", test_no_restart_reports_death},
    {"slow_callback_loses_nothing", test_slow_callback_loses_nothing},
    {"oversize_and_full_ring", test_oversize_and_full_ring},
    {"large_messages_read_into_the_ring", test_large_messages_read_into_the_ring},
    {"receiver_cpus", test_receiver_cpus},
    {"fork_child_leaves_parent_alone", test_fork_child_leaves_parent_alone},
    CU_TEST_INFO_NULL};
MCLT_SUITE("queued_net", NULL, NULL, tests);
