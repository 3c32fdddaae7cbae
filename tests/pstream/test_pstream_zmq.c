// SPDX-License-Identifier: BSD-3-Clause
// Packet streams over zmq+ pipes: a ROUTER server with many DEALER peers over tcp and ipc,
// descriptors that never miss a wake-up, an unroutable peer, and CURVE.
#include "harness.h"

#include <mcl/log.h>
#include <mcl/pstream.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[128];

static int
setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mcl-pszmq-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
teardown(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
echo(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    MCLT_OK(mcl_pstream_reply(rq, MCL_PSTREAM_OK, mcl_pstream_request_flags(rq), p, n, NULL));
}

static void
accept_echo(mcl_pstream_server *s, mcl_pstream *ps, void *user)
{
    (void)s;
    (void)user;
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
}

// Payload of request i: i repeated, (i * 37) % 8192 bytes.
static size_t
size_of(unsigned i)
{
    return (i * 37u) % 8192u;
}

static void
fill(uint8_t *b, unsigned i)
{
    for (size_t k = 0; k < size_of(i); k++)
        b[k] = (uint8_t)(i + k);
}

typedef struct tally {
    atomic_int ok, bad;
} tally;

static void
check_answer(const mcl_pstream_result *r, void *user)
{
    tally *t = user;
    unsigned i = r->flags;
    uint8_t want[8192];
    fill(want, i);
    bool good = r->status == MCL_PSTREAM_OK && r->len == size_of(i) &&
                (r->len == 0 || memcmp(r->payload, want, r->len) == 0);
    atomic_fetch_add(good ? &t->ok : &t->bad, 1);
}

static bool
tally_reached(void *arg)
{
    void **a = arg;
    tally *t = a[0];
    return atomic_load(&t->ok) + atomic_load(&t->bad) >= *(int *)a[1];
}

static void
many_peers(const char *url)
{
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, url, NULL, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    const char *bound = mcl_pstream_server_url(srv);
    enum { PEERS = 16, EACH = 300 };
    mcl_pstream *c[PEERS];
    tally t = {0};
    for (int p = 0; p < PEERS; p++) {
        MCLT_OK(mcl_pstream_dial(&c[p], bound, NULL));
        MCLT_OK(mcl_pstream_start(c[p]));
    }
    uint8_t buf[8192];
    for (unsigned i = 0; i < EACH; i++)
        for (int p = 0; p < PEERS; p++) {
            fill(buf, i);
            MCLT_OK(mcl_pstream_submit(c[p], (uint32_t)p % 3, 1, i, buf, size_of(i), 10000,
                                       check_answer, &t, NULL));
        }
    int want = PEERS * EACH;
    void *arg[2] = {&t, &want};
    CU_ASSERT(mclt_wait_until(tally_reached, arg, 20000));
    CU_ASSERT_EQUAL(atomic_load(&t.ok), want);
    CU_ASSERT_EQUAL(atomic_load(&t.bad), 0);
    CU_ASSERT_EQUAL(mcl_pstream_server_connections(srv), PEERS);
    for (int p = 0; p < PEERS; p++) {
        mcl_pstream_counters st;
        MCLT_OK(mcl_pstream_stats(c[p], &st));
        CU_ASSERT_EQUAL(st.requests_sent, EACH);
        CU_ASSERT_EQUAL(st.responses_received, EACH);
        CU_ASSERT_EQUAL(st.in_flight, 0);
        CU_ASSERT_EQUAL(st.unknown_responses, 0);
        MCLT_OK(mcl_pstream_close(c[p], 5000)); // orderly, over zmq too
        CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(c[p]), "");
        mcl_pstream_free(c[p]);
    }
    mcl_pstream_server_free(srv, 2000);
}

static void
test_many_peers_tcp(void)
{
    many_peers("zmq+tcp://127.0.0.1:0");
}

static void
test_many_peers_ipc(void)
{
    char url[256];
    snprintf(url, sizeof(url), "zmq+ipc://%s/ps.sock", tmpdir);
    many_peers(url);
}

// A server whose handler answers from another thread, and a client driven by this thread that
// sends while answers arrive: the stream's descriptor must say readable whenever an answer
// waits (ZMQ_FD signals only changes, and a send may swallow one), so each poll below returns
// long before its 3 s; a missed wake-up fails the test instead of slowing it.
typedef struct later {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    mcl_pstream_request *q[256];
    int head, tail;
    bool stop;
} later;

static void
queue_later(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    later *l = user;
    pthread_mutex_lock(&l->lock);
    CU_ASSERT_FATAL(l->tail - l->head < 256);
    l->q[l->tail++ % 256] = rq;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->lock);
}

static void *
replier(void *arg)
{
    later *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (l->head == l->tail && !l->stop)
            pthread_cond_wait(&l->cv, &l->lock);
        if (l->head == l->tail)
            break;
        mcl_pstream_request *rq = l->q[l->head++ % 256];
        pthread_mutex_unlock(&l->lock);
        static const uint8_t answer[48 * 1024];
        (void)mcl_pstream_reply(rq, MCL_PSTREAM_OK, mcl_pstream_request_flags(rq), answer,
                                sizeof(answer), NULL);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

static void
accept_later(mcl_pstream_server *s, mcl_pstream *ps, void *user)
{
    (void)s;
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, queue_later, user));
}

static void
count_done(const mcl_pstream_result *r, void *user)
{
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    (*(int *)user)++;
}

// Calls through a server whose answers come from accept(): returns the polls that timed out.
static int
stalls_with(mcl_pstream_accept_cb accept, void *user)
{
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1}; // no timer may hide a stall
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "zmq+tcp://127.0.0.1:0", &o, accept, user));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, mcl_pstream_server_url(srv), &o));
    struct pollfd p = {.fd = -1, .events = POLLIN};
    MCLT_OK(mcl_pstream_fd(c, &p.fd));
    enum { N = 3000, WINDOW = 64, SIZE = 48 * 1024 }; // sizes that take many reads
    static uint8_t big[SIZE];
    int sent = 0, done = 0, stalls = 0;
    while (done < N && stalls == 0) {
        while (sent < N && sent - done < WINDOW) {
            MCLT_OK(mcl_pstream_submit(c, 0, 1, (uint32_t)sent, big,
                                       ((size_t)sent * 7919) % (SIZE + 1), 10000, count_done, &done,
                                       NULL));
            sent++;
        }
        if (poll(&p, 1, 3000) == 0)
            stalls++; // answers were due and nothing said so
        MCLT_OK(mcl_pstream_dispatch(c));
    }
    CU_ASSERT_EQUAL(done, N);
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 1000);
    return stalls;
}

static void
test_no_missed_wakeups(void)
{
    // Answers from the server's own thread (inside the handler)...
    CU_ASSERT_EQUAL(stalls_with(accept_echo, NULL), 0);
    // ... and from another thread, which sends on the server's shared socket.
    later l = {.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, replier, &l), 0);
    CU_ASSERT_EQUAL(stalls_with(accept_later, &l), 0);
    pthread_mutex_lock(&l.lock);
    l.stop = true;
    pthread_cond_signal(&l.cv);
    pthread_mutex_unlock(&l.lock);
    pthread_join(th, NULL);
}

// A peer that is gone: ROUTER_MANDATORY makes the answer an error (not a silent drop), which
// ends that connection with a reason that says so.
typedef struct held {
    pthread_mutex_t lock;
    mcl_pstream *conn;
    mcl_pstream_request *rq[64];
    atomic_int n;
} held;

static void
hold(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    held *h = user;
    pthread_mutex_lock(&h->lock);
    h->conn = ps;
    int i = atomic_load(&h->n);
    if (i < 64) {
        h->rq[i] = rq;
        atomic_store(&h->n, i + 1);
    }
    pthread_mutex_unlock(&h->lock);
}

static void
accept_hold(mcl_pstream_server *s, mcl_pstream *ps, void *user)
{
    (void)s;
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, user));
}

static bool
held_all(void *arg)
{
    return atomic_load(&((held *)arg)->n) == 64;
}

static void
test_unroutable_peer(void)
{
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "zmq+tcp://127.0.0.1:0", NULL, accept_hold, &h));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
    MCLT_OK(mcl_pstream_dial(&c, mcl_pstream_server_url(srv), &o));
    MCLT_OK(mcl_pstream_start(c));
    for (int i = 0; i < 64; i++)
        MCLT_OK(mcl_pstream_submit(c, 0, 1, 0, NULL, 0, 60000, NULL, NULL, NULL));
    CU_ASSERT_FATAL(mclt_wait_until(held_all, &h, 5000));
    mcl_pstream_free(c); // the DEALER goes; the server's side still holds 64 requests
    // Answer one every 20 ms until the ROUTER has noticed (bounded: 3 s, inside the 5 s
    // heartbeat timeout, so it is the unroutable answer that ends the connection).
    const char *reason = "";
    int i = 0;
    for (int64_t end = mclt_now_ms() + 3000; i < 64 && mclt_now_ms() < end; i++) {
        (void)mcl_pstream_reply(h.rq[i], MCL_PSTREAM_OK, 0, "x", 1, NULL);
        struct pollfd p = {.fd = -1};
        (void)poll(&p, 0, 20);
        reason = mcl_pstream_end_reason(h.conn); // (the server keeps it until it is freed)
        if (reason[0] != '\0')
            break;
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(reason, "nreachable"));
    if (strstr(reason, "nreachable") == NULL)
        fprintf(stderr, "\n  ended with: '%s'\n", reason);
    for (i++; i < 64; i++) // the rest: the connection has ended, so they go nowhere
        MCLT_ERR(mcl_pstream_reply(h.rq[i], MCL_PSTREAM_OK, 0, NULL, 0, NULL), MCL_ECLOSED);
    mcl_pstream_server_free(srv, 1000);
}

static void
test_curve(void)
{
    char spub[41], opub[41];
    mclt_write_curve_keys(tmpdir, "server", spub);
    mclt_write_curve_keys(tmpdir, "other", opub);
    char url[512];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:0?curve=%s/server.key", tmpdir);
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, url, NULL, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    unsigned port;
    CU_ASSERT_FATAL(sscanf(mcl_pstream_server_url(srv), "zmq+tcp://127.0.0.1:%u", &port) == 1);
    // The right server key: calls work, encrypted.
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/server.pub", port, tmpdir);
    mcl_pstream *good;
    MCLT_OK(mcl_pstream_dial(&good, url, NULL));
    MCLT_OK(mcl_pstream_start(good));
    mcl_pstream_result *r;
    MCLT_OK(mcl_pstream_call(good, 0, 1, 7, "secret", 6, 5000, &r));
    CU_ASSERT(r->status == MCL_PSTREAM_OK && r->len == 6 && r->flags == 7);
    mcl_pstream_result_free(r);
    // The wrong one, and none: the handshake fails, nothing is answered.
    for (int i = 0; i < 2; i++) {
        if (i == 0)
            snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?curve_server=%s/other.pub", port,
                     tmpdir);
        else
            snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u", port);
        mcl_pstream *c;
        MCLT_OK(mcl_pstream_dial(&c, url, NULL));
        MCLT_OK(mcl_pstream_start(c));
        MCLT_OK(mcl_pstream_call(c, 0, 1, 0, "x", 1, 300, &r));
        CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_DEADLINE_EXCEEDED);
        mcl_pstream_result_free(r);
        mcl_pstream_free(c);
    }
    mcl_pstream_free(good);
    mcl_pstream_server_free(srv, 1000);
}

static CU_TestInfo tests[] = {{"many_peers_tcp", test_many_peers_tcp},
                              {"many_peers_ipc", test_many_peers_ipc},
                              {"no_missed_wakeups", test_no_missed_wakeups},
                              {"unroutable_peer", test_unroutable_peer},
                              {"curve", test_curve},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("pstream_zmq", setup, teardown, tests);
