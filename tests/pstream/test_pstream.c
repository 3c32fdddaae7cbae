// SPDX-License-Identifier: BSD-3-Clause
// Packet streams, behaviour by behaviour, with no network: socketpairs (one end a stream, the
// other a stream or a hand-driven peer that writes and reads packets byte by byte) and inproc
// pairs with faults. Each test breaks when the behaviour it names breaks.
#define _GNU_SOURCE
#include "harness.h"
#include "pstream/pwire.h"

#include <mcl/pstream.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// --- a hand-driven peer: packets written and read by the test itself -----------------------------

typedef struct raw_end {
    int fd;    // the test's end
    int mine;  // the stream's end
    int codec; // MCL__PS_CS, or 0: native
    uint8_t buf[1 << 20];
    size_t have, used;
} raw_end;

static void
raw_send(raw_end *r, const mcl__pkt *k)
{
    uint8_t hdr[MCL__PW_HDR_MAX], body[70000], frame[70016];
    struct iovec iov[4];
    unsigned n;
    MCLT_OK(mcl__pkt_encode(r->codec ? r->codec : MCL__PS_NATIVE, k, hdr, iov, &n));
    size_t blen = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(body + blen, iov[i].iov_base, iov[i].iov_len);
        blen += iov[i].iov_len;
    }
    size_t hl = 4;
    if (r->codec == MCL__PS_CS) {
        hl = mcl__bsuint_put(frame, blen);
    } else {
        frame[0] = (uint8_t)(blen >> 24);
        frame[1] = (uint8_t)(blen >> 16);
        frame[2] = (uint8_t)(blen >> 8);
        frame[3] = (uint8_t)blen;
    }
    memcpy(frame + hl, body, blen);
    CU_ASSERT_EQUAL_FATAL(write(r->fd, frame, hl + blen), (ssize_t)(hl + blen));
}

static void
raw_bytes(raw_end *r, const void *p, size_t n)
{
    CU_ASSERT_EQUAL_FATAL(write(r->fd, p, n), (ssize_t)n);
}

// The next packet the stream sent (skipping pings, which it sends on its own), within ms.
static bool
raw_recv_any(raw_end *r, mcl__pkt *k, int ms, bool skip_pings)
{
    int64_t end = mclt_now_ms() + ms;
    for (;;) {
        if (r->used > 0) {
            memmove(r->buf, r->buf + r->used, r->have - r->used);
            r->have -= r->used;
            r->used = 0;
        }
        size_t len = 0, hl = 0;
        bool have_len = false;
        if (r->codec == MCL__PS_CS) {
            uint64_t v = 0;
            have_len = r->have > 0 && mcl__bsuint_get(r->buf, r->have, &v, &hl) == MCL_OK;
            len = (size_t)v;
        } else if (r->have >= 4) {
            len = (size_t)r->buf[0] << 24 | (size_t)r->buf[1] << 16 | (size_t)r->buf[2] << 8 |
                  r->buf[3];
            hl = 4;
            have_len = true;
        }
        if (have_len) {
            if (r->have >= hl + len) {
                char why[128];
                MCLT_OK(mcl__pkt_decode(r->codec ? r->codec : MCL__PS_NATIVE, r->buf + hl, len, k,
                                        why, sizeof(why)));
                r->used = hl + len;
                if (skip_pings && (k->kind == MCL__PK_PING || k->kind == MCL__PK_PONG))
                    continue;
                return true;
            }
        }
        int left = (int)(end - mclt_now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            return false;
        ssize_t n = read(r->fd, r->buf + r->have, sizeof(r->buf) - r->have);
        if (n <= 0)
            return false;
        r->have += (size_t)n;
    }
}

static bool
raw_recv(raw_end *r, mcl__pkt *k, int ms)
{
    return raw_recv_any(r, k, ms, true);
}

// A stream on one end of a socketpair, and the other end raw.
static mcl_pstream *
stream_and_raw(raw_end *r, const mcl_pstream_options *o)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    memset(r, 0, sizeof(*r));
    r->fd = sv[1];
    r->mine = sv[0];
    mcl_pstream *ps;
    MCLT_OK(mcl_pstream_open_fd(&ps, sv[0], sv[0], o));
    return ps;
}

// After mcl_pstream_free(): close both ends (the stream never closes what it was given).
static void
raw_close(raw_end *r)
{
    CU_ASSERT(close(r->fd) == 0);
    CU_ASSERT(close(r->mine) == 0);
}

static bool
not_open(void *arg)
{
    return !mcl_pstream_is_open(arg);
}

// Whether a counter of a stream has reached a value.
typedef struct counter_is {
    mcl_pstream *ps;
    size_t off;
    uint64_t want;
} counter_is;

static bool
counter_reached(void *arg)
{
    counter_is *c = arg;
    mcl_pstream_counters st;
    if (mcl_pstream_stats(c->ps, &st) != MCL_OK)
        return false;
    uint64_t v;
    memcpy(&v, (const char *)&st + c->off, sizeof(v));
    return v >= c->want;
}

// Dispatches ps until cond holds (bounded).
typedef struct drive {
    mcl_pstream *ps;
    bool (*cond)(void *);
    void *arg;
} drive;

static bool
drive_cond(void *a)
{
    drive *d = a;
    mcl_pstream_dispatch(d->ps);
    return d->cond(d->arg);
}

static bool
drive_until(mcl_pstream *ps, bool (*cond)(void *), void *arg, int ms)
{
    drive d = {ps, cond, arg};
    return mclt_wait_until(drive_cond, &d, ms);
}

// --- handlers and completions --------------------------------------------------------------------

static void
echo(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    MCLT_OK(mcl_pstream_reply(rq, MCL_PSTREAM_OK, mcl_pstream_request_flags(rq), p, n, NULL));
}

// Requests held for a later answer.
typedef struct held {
    pthread_mutex_t lock;
    mcl_pstream_request *rq[2048];
    atomic_int n;
    atomic_int cancelled;
} held;

static void
hold(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    held *h = user;
    pthread_mutex_lock(&h->lock);
    int i = atomic_load(&h->n);
    CU_ASSERT_FATAL(i < 2048);
    h->rq[i] = rq;
    atomic_store(&h->n, i + 1);
    pthread_mutex_unlock(&h->lock);
}

static bool
held_at_least(void *arg)
{
    held *h = ((void **)arg)[0];
    return atomic_load(&h->n) >= *(int *)((void **)arg)[1];
}

// Completions, recorded.
typedef struct done_log {
    pthread_mutex_t lock;
    atomic_int n;
    int status[4096];
    uint64_t id[4096];
    char first_msg[128];
    char payload[4096][16];
} done_log;

static void
on_done(const mcl_pstream_result *r, void *user)
{
    done_log *d = user;
    pthread_mutex_lock(&d->lock);
    int i = atomic_load(&d->n);
    if (i < 4096) {
        d->status[i] = r->status;
        d->id[i] = r->id;
        size_t n = r->len < 15 ? r->len : 15;
        memcpy(d->payload[i], r->payload ? r->payload : "", n);
        d->payload[i][n] = '\0';
        if (i == 0)
            snprintf(d->first_msg, sizeof(d->first_msg), "%s", r->message);
    }
    atomic_store(&d->n, i + 1);
    pthread_mutex_unlock(&d->lock);
}

static bool
done_at_least(void *arg)
{
    done_log *d = ((void **)arg)[0];
    return atomic_load(&d->n) >= *(int *)((void **)arg)[1];
}

static done_log *
new_log(void)
{
    done_log *d = calloc(1, sizeof(*d));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

// Two streams on a socketpair: a (the caller's, driven by the test or its own thread) and b.
static void
stream_pair(mcl_pstream **a, mcl_pstream **b, const mcl_pstream_options *o)
{
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    MCLT_OK(mcl_pstream_open_fd(a, sv[0], sv[0], o));
    MCLT_OK(mcl_pstream_open_fd(b, sv[1], sv[1], o));
}

static int
fd_of(mcl_pstream *ps)
{
    int a, b;
    CU_ASSERT_FATAL(sscanf(mcl_pstream_url(ps), "fd:%d,%d", &a, &b) == 2);
    return a;
}

// Free a socketpair's streams, then close the descriptors they never owned.
static void
pair_free(mcl_pstream *a, mcl_pstream *b)
{
    int fa = fd_of(a), fb = fd_of(b);
    mcl_pstream_free(a);
    mcl_pstream_free(b);
    CU_ASSERT(close(fa) == 0);
    CU_ASSERT(close(fb) == 0);
}

// --- tests ---------------------------------------------------------------------------------------

typedef struct msg_log {
    pthread_mutex_t lock;
    unsigned n;
    uint32_t channel[8], type[8], flags[8];
    size_t len[8];
    bool pattern_ok[8];
} msg_log;

static void
on_message(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
           size_t len, void *user)
{
    (void)ps;
    msg_log *m = user;
    pthread_mutex_lock(&m->lock);
    if (m->n < 8) {
        m->channel[m->n] = channel;
        m->type[m->n] = type;
        m->flags[m->n] = flags;
        m->len[m->n] = len;
        m->pattern_ok[m->n] = mclt_pattern_ok(payload, len, type);
    }
    m->n++;
    pthread_mutex_unlock(&m->lock);
}

static bool
msgs_at_least(void *user)
{
    msg_log *m = user;
    pthread_mutex_lock(&m->lock);
    unsigned n = m->n;
    pthread_mutex_unlock(&m->lock);
    return n >= 3;
}

static void
test_one_way_messages(void)
{
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    msg_log m = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_pstream_handle_messages(b, 4, on_message, &m));
    MCLT_OK(mcl_pstream_start(b));
    size_t sizes[] = {0, 10, 70000, 5};
    uint32_t chans[] = {4, 4, 4, 9}; // channel 9 has no handler
    for (unsigned i = 0; i < 4; i++) {
        uint8_t *p = mclt_pattern(sizes[i], i);
        MCLT_OK(mcl_pstream_send(a, chans[i], i, 100 + i, p, sizes[i]));
        free(p);
    }
    // A request after them still works, and comes after them (one order per side).
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    mcl_pstream_result *r;
    MCLT_OK(mcl_pstream_call(a, 0, 5, 0, "x", 1, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    mcl_pstream_result_free(r);
    CU_ASSERT_FATAL(mclt_wait_until(msgs_at_least, &m, 5000));
    pthread_mutex_lock(&m.lock);
    CU_ASSERT_EQUAL(m.n, 3);
    for (unsigned i = 0; i < 3 && i < m.n; i++) {
        CU_ASSERT_EQUAL(m.channel[i], 4);
        CU_ASSERT_EQUAL(m.type[i], i);
        CU_ASSERT_EQUAL(m.flags[i], 100 + i);
        CU_ASSERT_EQUAL(m.len[i], sizes[i]);
        CU_ASSERT(m.pattern_ok[i]);
    }
    pthread_mutex_unlock(&m.lock);
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(a, &st));
    CU_ASSERT_EQUAL(st.messages_sent, 4);
    CU_ASSERT_EQUAL(st.requests_sent, 1);
    MCLT_OK(mcl_pstream_stats(b, &st));
    CU_ASSERT_EQUAL(st.messages_received, 4);
    CU_ASSERT_EQUAL(st.unhandled_messages, 1);
    CU_ASSERT_EQUAL(st.responses_sent, 1); // a message is never answered
    // Too large, bad arguments.
    MCLT_ERR(mcl_pstream_send(a, 4, 0, 0, NULL, 3), MCL_EINVAL);
    pair_free(a, b);
    // cs.packetstream has no one-way messages.
    mcl_pstream_options cs = {.codec = MCL_PSTREAM_CS};
    stream_pair(&a, &b, &cs);
    MCLT_ERR(mcl_pstream_send(a, 0, 0, 0, "x", 1), MCL_ENOTSUP);
    pair_free(a, b);
}

static void
test_calls_over_a_socketpair(void)
{
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_start(b));
    MCLT_ERR(mcl_pstream_start(b), MCL_EALREADY);
    // Every size from empty to 100 KiB comes back whole.
    size_t sizes[] = {0, 1, 63, 64, 65535, 65536, 100 * 1024};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = mclt_pattern(sizes[i], i);
        mcl_pstream_result *r;
        MCLT_OK(mcl_pstream_call(a, 0, 5, (uint32_t)i, p, sizes[i], 5000, &r));
        CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
        CU_ASSERT_EQUAL(r->flags, i);
        CU_ASSERT_EQUAL_FATAL(r->len, sizes[i]);
        CU_ASSERT(mclt_pattern_ok(r->payload, r->len, i));
        CU_ASSERT_STRING_EQUAL(r->message, "");
        mcl_pstream_result_free(r);
        free(p);
    }
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(a, &st));
    CU_ASSERT_EQUAL(st.requests_sent, 7);
    CU_ASSERT_EQUAL(st.responses_received, 7);
    CU_ASSERT_EQUAL(st.in_flight, 0);
    MCLT_OK(mcl_pstream_stats(b, &st));
    CU_ASSERT_EQUAL(st.requests_received, 7);
    CU_ASSERT_EQUAL(st.responses_sent, 7);
    CU_ASSERT_EQUAL(st.in_progress, 0);
    pair_free(a, b);
}

static void
test_both_sides_call(void)
{
    // Either side is client and server at once, over one connection.
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_handle(a, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_start(a));
    MCLT_OK(mcl_pstream_start(b));
    mcl_pstream_result *r;
    MCLT_OK(mcl_pstream_call(a, 0, 1, 0, "from a", 6, 5000, &r));
    CU_ASSERT(r->len == 6 && memcmp(r->payload, "from a", 6) == 0);
    mcl_pstream_result_free(r);
    MCLT_OK(mcl_pstream_call(b, 0, 1, 0, "from b", 6, 5000, &r));
    CU_ASSERT(r->len == 6 && memcmp(r->payload, "from b", 6) == 0);
    mcl_pstream_result_free(r);
    pair_free(a, b);
}

typedef struct order_rec {
    atomic_int n;
    uint32_t seen[1000];
} order_rec;

static void
record_order(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    order_rec *o = user;
    size_t n;
    const void *v = mcl_pstream_request_payload(rq, &n); // (no alignment promised)
    int i = atomic_fetch_add(&o->n, 1);
    if (i < 1000 && n == 4)
        memcpy(&o->seen[i], v, 4);
    MCLT_OK(mcl_pstream_reply(rq, MCL_PSTREAM_OK, 0, NULL, 0, NULL));
}

static void
test_out_of_order_answers_and_send_order(void)
{
    // 200 requests answered in reverse order from another thread: each completion gets its
    // own answer (matched by tag). Requests on one channel reach the handler in send order.
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    order_rec ord = {0};
    MCLT_OK(mcl_pstream_handle(b, 1, MCL_PSTREAM_ANY, hold, &h));
    MCLT_OK(mcl_pstream_handle(b, 7, MCL_PSTREAM_ANY, record_order, &ord));
    MCLT_OK(mcl_pstream_start(b));
    done_log *d = new_log();
    enum { N = 200 };
    uint64_t ids[N];
    for (int i = 0; i < N; i++) {
        char p[16];
        int len = snprintf(p, sizeof(p), "req %d", i);
        MCLT_OK(mcl_pstream_submit(a, 1, 3, 0, p, (size_t)len, 10000, on_done, d, &ids[i]));
        uint32_t v = (uint32_t)i;
        MCLT_OK(mcl_pstream_submit(a, 7, 3, 0, &v, sizeof(v), 10000, NULL, NULL, NULL));
    }
    int want = N;
    void *hw[2] = {&h, &want};
    CU_ASSERT_FATAL(drive_until(a, held_at_least, hw, 10000));
    for (int i = N - 1; i >= 0; i--) { // answer with the request's own payload, last first
        size_t n;
        const void *p = mcl_pstream_request_payload(h.rq[i], &n);
        CU_ASSERT_PTR_NULL(p); // only during the handler
        char ans[16];
        int len = snprintf(ans, sizeof(ans), "ans %d", i);
        MCLT_OK(mcl_pstream_reply(h.rq[i], MCL_PSTREAM_OK, (uint32_t)i, ans, (size_t)len, NULL));
    }
    void *dw[2] = {d, &want};
    CU_ASSERT_FATAL(drive_until(a, done_at_least, dw, 10000));
    for (int i = 0; i < N; i++) { // completion i answered request (N - 1 - i)
        int req = -1;
        for (int k = 0; k < N; k++)
            if (ids[k] == d->id[i])
                req = k;
        CU_ASSERT_FATAL(req >= 0);
        char want_p[16];
        snprintf(want_p, sizeof(want_p), "ans %d", req);
        CU_ASSERT_STRING_EQUAL(d->payload[i], want_p);
        CU_ASSERT_EQUAL(d->status[i], MCL_PSTREAM_OK);
    }
    CU_ASSERT_EQUAL(d->id[0], ids[N - 1]); // the last request was answered first
    CU_ASSERT_EQUAL(atomic_load(&ord.n), N);
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(ord.seen[i], (uint32_t)i);
    pair_free(a, b);
    free(d);
}

static void
test_handler_choice(void)
{
    // (channel, type), then (channel, any), then (any, type), then (any, any); none: UNIMPLEMENTED.
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_start(b));
    mcl_pstream_result *r;
    MCLT_OK(mcl_pstream_call(a, 0, 1, 0, NULL, 0, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_UNIMPLEMENTED);
    CU_ASSERT_STRING_EQUAL(r->message, "no request handler");
    mcl_pstream_result_free(r);
    static int tags[4] = {1, 2, 3, 4};
    void (*fns[4])(mcl_pstream *, mcl_pstream_request *, void *);
    (void)fns;
    MCLT_OK(mcl_pstream_handle(b, 5, 9, echo, NULL));
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, NULL));
    (void)tags;
    MCLT_OK(mcl_pstream_call(a, 5, 9, 0, "x", 1, 5000, &r)); // the specific one answers
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    mcl_pstream_result_free(r);
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, NULL, NULL)); // removed
    MCLT_OK(mcl_pstream_call(a, 5, 8, 0, "x", 1, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_UNIMPLEMENTED);
    mcl_pstream_result_free(r);
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, 8, echo, NULL));
    MCLT_OK(mcl_pstream_call(a, 5, 8, 0, "x", 1, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    mcl_pstream_result_free(r);
    pair_free(a, b);
}

static void
test_tag_in_use_is_refused(void)
{
    raw_end *r = calloc(1, sizeof(*r));
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mcl_pstream *ps = stream_and_raw(r, NULL);
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, &h));
    MCLT_OK(mcl_pstream_start(ps));
    mcl__pkt q = {.kind = MCL__PK_REQUEST, .channel = 4, .tag = 77, .type = 1};
    raw_send(r, &q);
    raw_send(r, &q); // the same (channel, tag) while the first is in progress
    mcl__pkt k;
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.kind, MCL__PK_RESPONSE);
    CU_ASSERT_EQUAL(k.status, MCL_PSTREAM_TAG_IN_USE);
    CU_ASSERT_EQUAL(k.channel, 4);
    CU_ASSERT_EQUAL(k.tag, 77);
    CU_ASSERT(k.msglen > 0 && memmem(k.msg, k.msglen, "tag already in use", 18) != NULL);
    // The first still gets its own answer; then the tag may be used again.
    CU_ASSERT_EQUAL(atomic_load(&h.n), 1);
    MCLT_OK(mcl_pstream_reply(h.rq[0], MCL_PSTREAM_OK, 3, "first", 5, NULL));
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.status == MCL_PSTREAM_OK && k.tag == 77 && k.flags == 3 && k.len == 5);
    raw_send(r, &q);
    int want = 2;
    void *hw[2] = {&h, &want};
    CU_ASSERT(mclt_wait_until(held_at_least, hw, 5000));
    MCLT_OK(mcl_pstream_reply(h.rq[1], MCL_PSTREAM_OK, 0, NULL, 0, NULL));
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(ps, &st));
    CU_ASSERT_EQUAL(st.requests_received, 3);
    CU_ASSERT_EQUAL(st.refused, 1);
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
}

static bool
stats_unknown(void *arg)
{
    mcl_pstream_counters st;
    mcl_pstream_stats(arg, &st);
    return st.unknown_responses == 1;
}

static void
test_unknown_response_is_counted(void)
{
    raw_end *r = calloc(1, sizeof(*r));
    mcl_pstream *ps = stream_and_raw(r, NULL);
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_start(ps));
    mcl__pkt resp = {.kind = MCL__PK_RESPONSE,
                     .channel = 0,
                     .tag = 999,
                     .payload = (const uint8_t *)"?",
                     .len = 1};
    raw_send(r, &resp);
    CU_ASSERT(mclt_wait_until(stats_unknown, ps, 5000));
    // The connection carries on.
    mcl__pkt q = {
        .kind = MCL__PK_REQUEST, .tag = 1, .type = 2, .payload = (const uint8_t *)"ok", .len = 2};
    raw_send(r, &q);
    mcl__pkt k;
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_RESPONSE && k.status == 0 && k.tag == 1 && k.len == 2);
    CU_ASSERT(mcl_pstream_is_open(ps));
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
}

static void
test_end_of_requests(void)
{
    // The peer says ERQ: its requests after that are refused with a status; what was in flight
    // before still completes. This side's own submits after its ERQ say MCL_ESTATE.
    raw_end *r = calloc(1, sizeof(*r));
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mcl_pstream *ps = stream_and_raw(r, NULL);
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, &h));
    MCLT_OK(mcl_pstream_start(ps));
    mcl__pkt q = {.kind = MCL__PK_REQUEST, .tag = 1, .type = 1};
    raw_send(r, &q);
    mcl__pkt erq = {.kind = MCL__PK_ERQ};
    raw_send(r, &erq);
    q.tag = 2;
    raw_send(r, &q);
    mcl__pkt k;
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.tag, 2);
    CU_ASSERT_EQUAL(k.status, MCL_PSTREAM_NO_MORE_REQUESTS);
    CU_ASSERT_EQUAL(atomic_load(&h.n), 1);
    MCLT_OK(mcl_pstream_reply(h.rq[0], MCL_PSTREAM_OK, 0, "late", 4, NULL)); // still answered
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.tag == 1 && k.status == MCL_PSTREAM_OK && k.len == 4);
    // This side ends its requests: the peer sees ERQ, and submits are refused here.
    done_log *d = new_log();
    uint64_t id;
    MCLT_OK(mcl_pstream_submit(ps, 0, 1, 0, NULL, 0, 5000, on_done, d, &id)); // before: fine
    MCLT_OK(mcl_pstream_end_requests(ps));
    MCLT_ERR(mcl_pstream_submit(ps, 0, 1, 0, NULL, 0, 5000, on_done, d, &id), MCL_ESTATE);
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.kind, MCL__PK_REQUEST);
    uint32_t rtag = k.tag;
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.kind, MCL__PK_ERQ);
    mcl__pkt ans = {.kind = MCL__PK_RESPONSE, .tag = rtag};
    raw_send(r, &ans); // the request made before its ERQ completes
    int want = 1;
    void *dw[2] = {d, &want};
    CU_ASSERT(mclt_wait_until(done_at_least, dw, 5000));
    CU_ASSERT_EQUAL(d->status[0], MCL_PSTREAM_OK);
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
    free(d);
}

static void
test_eof_completes_every_pending_request(void)
{
    // 1,000 requests pending; the peer says EOF: 1,000 completions with DISCONNECTED, at once.
    raw_end *r = calloc(1, sizeof(*r));
    mcl_pstream *ps = stream_and_raw(r, NULL); // driven by this thread (dispatch)
    done_log *d = new_log();
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        MCLT_OK(mcl_pstream_submit(ps, (uint32_t)(i % 3), 1, 0, "x", 1, 60000, on_done, d, NULL));
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(ps, &st));
    CU_ASSERT_EQUAL(st.in_flight, N);
    mcl__pkt eof = {.kind = MCL__PK_EOF};
    raw_send(r, &eof);
    struct pollfd p = {.fd = -1, .events = POLLIN};
    MCLT_OK(mcl_pstream_fd(ps, &p.fd));
    CU_ASSERT_FATAL(poll(&p, 1, 5000) == 1);
    MCLT_OK(mcl_pstream_dispatch(ps)); // one loop iteration
    CU_ASSERT_EQUAL(atomic_load(&d->n), N);
    int disc = 0;
    for (int i = 0; i < N; i++)
        disc += d->status[i] == MCL_PSTREAM_DISCONNECTED;
    CU_ASSERT_EQUAL(disc, N);
    CU_ASSERT_STRING_EQUAL(d->first_msg, "the peer sent EOF");
    MCLT_OK(mcl_pstream_stats(ps, &st));
    CU_ASSERT_EQUAL(st.in_flight, 0);
    // And it answers with its own ERQ and EOF (the reference waits for the peer's EOF), after
    // the requests the kernel did not take yet (a Unix socket counts each small write at
    // several hundred bytes), which a driver thread now writes as the test reads.
    MCLT_OK(mcl_pstream_start(ps));
    mcl__pkt k;
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.kind, MCL__PK_REQUEST); // (the 1,000 requests went out first)
    int reqs = 1;
    while (raw_recv(r, &k, 5000) && k.kind == MCL__PK_REQUEST)
        reqs++;
    CU_ASSERT_EQUAL(reqs, N);
    CU_ASSERT_EQUAL(k.kind, MCL__PK_ERQ);
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT_EQUAL(k.kind, MCL__PK_EOF);
    CU_ASSERT(mclt_wait_until(not_open, ps, 5000));
    MCLT_ERR(mcl_pstream_submit(ps, 0, 1, 0, NULL, 0, 0, NULL, NULL, NULL), MCL_ECLOSED);
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
    free(d);
}

static void
test_dead_peer_is_noticed(void)
{
    // The server answers the first packet (the client's ping), then goes silent (stall=2): the
    // client's idle timeout ends the connection and completes what was pending.
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://dead-peer?stall=1", NULL, NULL, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream_options o = {.ping_ms = 50, .idle_ms = 300};
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, "inproc://dead-peer", &o));
    done_log *d = new_log();
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_pstream_submit(c, 0, 1, 0, NULL, 0, 60000, on_done, d, NULL));
    int64_t t0 = mclt_now_ms();
    CU_ASSERT_FATAL(drive_until(c, not_open, c, 5000));
    int64_t took = mclt_now_ms() - t0;
    CU_ASSERT(took >= 250 && took < 2000);
    int want = 10;
    void *dw[2] = {d, &want};
    CU_ASSERT(drive_until(c, done_at_least, dw, 1000));
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(d->status[i], MCL_PSTREAM_DISCONNECTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(d->first_msg, "nothing heard from the peer"));
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 100);
    free(d);
}

typedef struct slow_ctx {
    mcl_pstream_request *rq;
    pthread_t th;
    atomic_bool started;
} slow_ctx;

static void *
reply_soon(void *arg)
{
    slow_ctx *s = arg;
    // The peer's close has to wait for this reply: nothing to wait for here but the close's
    // own progress, which the test checks from outside.
    for (int i = 0; i < 3; i++)
        sched_yield();
    MCLT_OK(mcl_pstream_reply(s->rq, MCL_PSTREAM_OK, 0, "done", 4, NULL));
    return NULL;
}

static void
slow_handler(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    slow_ctx *s = user;
    s->rq = rq;
    atomic_store(&s->started, true);
}

static bool
slow_started(void *arg)
{
    return atomic_load(&((slow_ctx *)arg)->started);
}

static void
test_orderly_close(void)
{
    // b closes while its handler is still working on a's request: ERQ first, then the answer,
    // then EOF; a's request completes with the answer, both end cleanly, and the descriptors the
    // caller gave stay open with their flags as they were.
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    int fl0 = fcntl(sv[0], F_GETFL), fl1 = fcntl(sv[1], F_GETFL);
    mcl_pstream *a, *b;
    MCLT_OK(mcl_pstream_open_fd(&a, sv[0], sv[0], NULL));
    MCLT_OK(mcl_pstream_open_fd(&b, sv[1], sv[1], NULL));
    slow_ctx s = {0};
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, slow_handler, &s));
    MCLT_OK(mcl_pstream_start(a));
    done_log *d = new_log();
    MCLT_OK(mcl_pstream_submit(a, 0, 1, 0, NULL, 0, 10000, on_done, d, NULL));
    CU_ASSERT_FATAL(drive_until(b, slow_started, &s, 5000));
    CU_ASSERT_EQUAL_FATAL(pthread_create(&s.th, NULL, reply_soon, &s), 0);
    MCLT_OK(mcl_pstream_close(b, 5000)); // drives b until both EOFs
    pthread_join(s.th, NULL);
    int want = 1;
    void *dw[2] = {d, &want};
    CU_ASSERT(mclt_wait_until(done_at_least, dw, 5000));
    CU_ASSERT_EQUAL(d->status[0], MCL_PSTREAM_OK);
    CU_ASSERT_STRING_EQUAL(d->payload[0], "done");
    CU_ASSERT(mclt_wait_until(not_open, a, 5000)); // a answered with its own EOF
    CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(a), "");
    CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(b), "");
    MCLT_ERR(mcl_pstream_close(b, 100), MCL_ECLOSED);
    mcl_pstream_free(a);
    mcl_pstream_free(b);
    CU_ASSERT_EQUAL(fcntl(sv[0], F_GETFL), fl0); // open, and as they were
    CU_ASSERT_EQUAL(fcntl(sv[1], F_GETFL), fl1);
    CU_ASSERT_EQUAL(write(sv[0], "x", 1), 1);
    char c;
    CU_ASSERT_EQUAL(read(sv[1], &c, 1), 1);
    close(sv[0]);
    close(sv[1]);
    free(d);
}

static void
test_send_queue_pushes_back(void)
{
    // A server that reads nothing (never driven) behind an inproc pair of 64 KiB: the client's
    // own queue (64 KiB) fills too, then submits say MCL_EAGAIN and a blocking call times out;
    // memory stays bounded.
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://pushback?pipeq=64k", NULL, NULL, NULL));
    mcl_pstream_options o = {.send_queue = 65536, .ping_ms = -1, .idle_ms = -1};
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, "inproc://pushback?pipeq=64k", &o));
    static uint8_t p[1000];
    int ok = 0;
    mcl_err rv = MCL_OK;
    for (int i = 0; i < 10000 && rv == MCL_OK; i++)
        if ((rv = mcl_pstream_submit(c, 0, 1, 0, p, sizeof(p), -1, NULL, NULL, NULL)) == MCL_OK)
            ok++;
    CU_ASSERT_EQUAL(rv, MCL_EAGAIN);
    CU_ASSERT(ok > 100 && ok < 200); // ~64 KiB in the pair and ~64 KiB queued
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(c, &st));
    CU_ASSERT(st.send_queued <= 65536);
    mcl_pstream_result *r;
    int64_t t0 = mclt_now_ms();
    MCLT_ERR(mcl_pstream_call(c, 0, 1, 0, p, sizeof(p), 200, &r), MCL_ETIMEDOUT);
    CU_ASSERT(mclt_now_ms() - t0 >= 190);
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 100);
}

static void
test_protocol_violation_fails_the_connection(void)
{
    // Garbage, a packet of an unknown kind, a packet larger than the largest: each ends the
    // connection with PROTOCOL_ERROR, completes what was pending, and crashes nothing.
    const char *what[] = {"bad version", "unknown kind", "too large", "cut length"};
    for (int c = 0; c < 4; c++) {
        raw_end *r = calloc(1, sizeof(*r));
        mcl_pstream_options o = {.max_packet = 4096};
        mcl_pstream *ps = stream_and_raw(r, &o);
        done_log *d = new_log();
        MCLT_OK(mcl_pstream_submit(ps, 0, 1, 0, NULL, 0, 60000, on_done, d, NULL));
        uint8_t bad[64] = {0, 0, 0, 24};
        if (c == 0) {
            bad[4] = 9; // version 9
            raw_bytes(r, bad, 28);
        } else if (c == 1) {
            bad[4] = 1;
            bad[5] = 42;
            raw_bytes(r, bad, 28);
        } else if (c == 2) {
            uint8_t big[4] = {0, 0, 0x20, 0}; // 8 KiB announced
            raw_bytes(r, big, 4);
        } else {
            raw_bytes(r, bad, 3); // the stream ends inside a length
            shutdown(r->fd, SHUT_WR);
        }
        CU_ASSERT(drive_until(ps, not_open, ps, 5000));
        MCLT_OK(mcl_pstream_dispatch(ps));
        CU_ASSERT_EQUAL(atomic_load(&d->n), 1);
        CU_ASSERT_EQUAL(d->status[0], MCL_PSTREAM_PROTOCOL_ERROR);
        mcl_pstream_counters st;
        MCLT_OK(mcl_pstream_stats(ps, &st));
        CU_ASSERT_EQUAL(st.protocol_errors, 1);
        CU_ASSERT_NSTRING_EQUAL(mcl_pstream_end_reason(ps), "PROTOCOL_ERROR: ", 16);
        if (d->status[0] != MCL_PSTREAM_PROTOCOL_ERROR)
            fprintf(stderr, "\n  %s: %s %s\n", what[c], mcl_pstream_status_name(d->status[0]),
                    d->first_msg);
        mcl_pstream_free(ps);
        raw_close(r);
        free(r);
        free(d);
    }
}

static void
on_cancelled(mcl_pstream_request *rq, void *user)
{
    (void)rq;
    atomic_fetch_add(&((held *)user)->cancelled, 1);
}

static void
hold_and_watch(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    hold(ps, rq, user);
    MCLT_OK(mcl_pstream_request_on_cancel(rq, on_cancelled, user));
}

static bool
cancelled_at_least(void *arg)
{
    held *h = ((void **)arg)[0];
    return atomic_load(&h->cancelled) >= *(int *)((void **)arg)[1];
}

static bool
late_one(void *arg)
{
    mcl_pstream_counters st;
    mcl_pstream_stats(arg, &st);
    return st.late_responses == 1;
}

static void
test_cancel_and_deadline(void)
{
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold_and_watch, &h));
    MCLT_OK(mcl_pstream_start(b));
    done_log *d = new_log();
    uint64_t id;
    MCLT_OK(mcl_pstream_submit(a, 0, 1, 0, NULL, 0, 60000, on_done, d, &id));
    int want = 1;
    void *hw[2] = {&h, &want};
    CU_ASSERT_FATAL(drive_until(a, held_at_least, hw, 5000));
    // Cancel: completes at once with CANCELLED; the handler hears of it.
    MCLT_OK(mcl_pstream_cancel(a, id));
    MCLT_ERR(mcl_pstream_cancel(a, id), MCL_ENOENT);
    MCLT_OK(mcl_pstream_dispatch(a));
    CU_ASSERT_EQUAL(atomic_load(&d->n), 1);
    CU_ASSERT_EQUAL(d->status[0], MCL_PSTREAM_CANCELLED);
    void *cw[2] = {&h, &want};
    CU_ASSERT(mclt_wait_until(cancelled_at_least, cw, 5000));
    CU_ASSERT(mcl_pstream_request_cancelled(h.rq[0]));
    // Its late answer is dropped (counted), and frees the tag.
    MCLT_OK(mcl_pstream_reply(h.rq[0], MCL_PSTREAM_CANCELLED, 0, NULL, 0, NULL));
    CU_ASSERT(drive_until(a, late_one, a, 5000));
    // A deadline: 100 ms, never answered: DEADLINE_EXCEEDED, soon after, and the handler hears.
    int64_t t0 = mclt_now_ms();
    MCLT_OK(mcl_pstream_submit(a, 0, 1, 0, NULL, 0, 100, on_done, d, &id));
    want = 2;
    void *dw[2] = {d, &want};
    CU_ASSERT_FATAL(drive_until(a, done_at_least, dw, 5000));
    int64_t took = mclt_now_ms() - t0;
    CU_ASSERT_EQUAL(d->status[1], MCL_PSTREAM_DEADLINE_EXCEEDED);
    CU_ASSERT(took >= 99 && took < 1000);
    CU_ASSERT(mclt_wait_until(cancelled_at_least, cw, 5000));
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(a, &st));
    CU_ASSERT_EQUAL(st.timeouts, 1);
    CU_ASSERT_EQUAL(st.cancels_sent, 2);
    CU_ASSERT_EQUAL(st.in_flight, 0);
    MCLT_OK(mcl_pstream_reply(h.rq[1], MCL_PSTREAM_CANCELLED, 0, NULL, 0, NULL));
    pair_free(a, b);
    free(d);
}

static void
test_counters_add_up(void)
{
    // A mixed run: answered, refused, cancelled, timed out; every counter agrees with what
    // happened, and nothing stays in flight.
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_handle(b, 0, 1, echo, NULL));
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_pstream_handle(b, 0, 2, hold, &h));
    MCLT_OK(mcl_pstream_start(b));
    done_log *d = new_log();
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_pstream_submit(a, 0, 1, 0, "12345678", 8, 5000, on_done, d, NULL));
    for (int i = 0; i < 10; i++)
        MCLT_OK(mcl_pstream_submit(a, 0, 9, 0, NULL, 0, 5000, on_done, d, NULL)); // no handler
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_pstream_submit(a, 0, 2, 0, NULL, 0, 50, on_done, d, NULL)); // time out
    int want = 115;
    void *dw[2] = {d, &want};
    CU_ASSERT_FATAL(drive_until(a, done_at_least, dw, 5000));
    int ok = 0, unimpl = 0, late = 0;
    for (int i = 0; i < 115; i++) {
        ok += d->status[i] == MCL_PSTREAM_OK;
        unimpl += d->status[i] == MCL_PSTREAM_UNIMPLEMENTED;
        late += d->status[i] == MCL_PSTREAM_DEADLINE_EXCEEDED;
    }
    CU_ASSERT_EQUAL(ok, 100);
    CU_ASSERT_EQUAL(unimpl, 10);
    CU_ASSERT_EQUAL(late, 5);
    counter_is bc = {b, offsetof(mcl_pstream_counters, cancels_received), 5};
    CU_ASSERT(mclt_wait_until(counter_reached, &bc, 5000)); // b reads the cancels on its thread
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_pstream_reply(h.rq[i], MCL_PSTREAM_CANCELLED, 0, NULL, 0, NULL));
    counter_is ac = {a, offsetof(mcl_pstream_counters, late_responses), 5};
    CU_ASSERT(drive_until(a, counter_reached, &ac, 5000)); // the answers after the cancels
    mcl_pstream_counters sa, sb;
    MCLT_OK(mcl_pstream_stats(a, &sa));
    MCLT_OK(mcl_pstream_stats(b, &sb));
    CU_ASSERT_EQUAL(sa.requests_sent, 115);
    CU_ASSERT_EQUAL(sa.responses_received, 110);
    CU_ASSERT_EQUAL(sa.late_responses, 5);
    CU_ASSERT_EQUAL(sa.unknown_responses, 0);
    CU_ASSERT_EQUAL(sa.timeouts, 5);
    CU_ASSERT_EQUAL(sa.cancels_sent, 5);
    CU_ASSERT_EQUAL(sa.in_flight, 0);
    CU_ASSERT_EQUAL(sb.requests_received, 115);
    CU_ASSERT_EQUAL(sb.refused, 10);
    CU_ASSERT_EQUAL(sb.cancels_received, 5);
    CU_ASSERT_EQUAL(sb.responses_sent, 115);
    CU_ASSERT_EQUAL(sb.in_progress, 0);
    CU_ASSERT(sa.bytes_sent > 115 * 24 && sa.bytes_received > 0);
    pair_free(a, b);
    free(d);
}

static void
on_promise(mcl_promise *p, mcl_err st, void *value, void *user)
{
    (void)p;
    CU_ASSERT_EQUAL(st, MCL_OK);
    const mcl_pstream_result *r = value;
    CU_ASSERT(r != NULL && r->status == MCL_PSTREAM_OK && r->len == 5 &&
              memcmp(r->payload, "hello", 5) == 0);
    atomic_store((atomic_bool *)user, true);
}

static bool
flag_set(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

static void
test_reactor_and_promises(void)
{
    // Both streams on one reactor's thread; a request settles a promise.
    mcl_reactor *rx;
    MCLT_OK(mcl_reactor_new(&rx, NULL));
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_attach(a, rx));
    MCLT_OK(mcl_pstream_attach(b, rx));
    MCLT_ERR(mcl_pstream_attach(b, rx), MCL_EALREADY);
    MCLT_ERR(mcl_pstream_dispatch(b), MCL_ESTATE); // the reactor drives it
    MCLT_OK(mcl_reactor_start(rx));
    mcl_promise *p;
    MCLT_OK(mcl_promise_new(&p, rx));
    static atomic_bool got;
    atomic_store(&got, false);
    MCLT_OK(mcl_promise_then(p, on_promise, &got));
    MCLT_OK(mcl_pstream_submit_promise(a, 0, 1, 0, "hello", 5, 5000, p));
    CU_ASSERT(mclt_wait_until(flag_set, &got, 5000));
    mcl_promise_unref(p);
    // A blocking call from another thread works while the reactor drives.
    mcl_pstream_result *r;
    MCLT_OK(mcl_pstream_call(a, 0, 1, 0, "again", 5, 5000, &r));
    CU_ASSERT_EQUAL(r->len, 5);
    mcl_pstream_result_free(r);
    pair_free(a, b);
    mcl_reactor_free(rx);
}

static void
test_many_requests_leave_nothing(void)
{
    // 200,000 requests through a pair, 64 in flight at a time, some cancelled: the tables end
    // empty (the bench runs 10,000,000 and watches memory).
    mcl_pstream *a, *b;
    stream_pair(&a, &b, NULL);
    MCLT_OK(mcl_pstream_handle(b, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_start(b));
    done_log *d = new_log();
    enum { N = 200000 };
    int sent = 0;
    while (sent < N) {
        mcl_pstream_counters st;
        MCLT_OK(mcl_pstream_stats(a, &st));
        if (st.in_flight < 64) {
            uint64_t id;
            if (mcl_pstream_submit(a, 0, 1, 0, "ping", 4, 5000, NULL, NULL, &id) == MCL_OK) {
                sent++;
                if (sent % 1000 == 0)
                    (void)mcl_pstream_cancel(a, id);
            }
        } else {
            struct pollfd p = {.fd = -1, .events = POLLIN};
            mcl_pstream_fd(a, &p.fd);
            (void)poll(&p, 1, 100);
        }
        MCLT_OK(mcl_pstream_dispatch(a));
    }
    mcl_pstream_counters st;
    int64_t end = mclt_now_ms() + 10000;
    do {
        struct pollfd p = {.fd = -1, .events = POLLIN};
        mcl_pstream_fd(a, &p.fd);
        (void)poll(&p, 1, 50);
        MCLT_OK(mcl_pstream_dispatch(a));
        MCLT_OK(mcl_pstream_stats(a, &st));
    } while ((st.in_flight > 0 || st.responses_received + st.late_responses < N) &&
             mclt_now_ms() < end);
    CU_ASSERT_EQUAL(st.in_flight, 0);
    CU_ASSERT_EQUAL(st.requests_sent, N);
    CU_ASSERT_EQUAL(st.responses_received + st.late_responses, N);
    CU_ASSERT_EQUAL(st.cancels_sent, N / 1000);
    pair_free(a, b);
    free(d);
}

static void
test_over_inproc_server(void)
{
    // A server with several clients: each is its own connection, with its own handlers.
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://ps-server", NULL, NULL, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream_server *dup;
    MCLT_ERR(mcl_pstream_server_open(&dup, "inproc://ps-server", NULL, NULL, NULL), MCL_EADDRINUSE);
    mcl_pstream *c[3];
    for (int i = 0; i < 3; i++) {
        MCLT_OK(mcl_pstream_dial(&c[i], "inproc://ps-server", NULL));
        MCLT_OK(mcl_pstream_start(c[i]));
    }
    // No handler was registered by an accept callback: UNIMPLEMENTED, for each of them.
    for (int i = 0; i < 3; i++) {
        mcl_pstream_result *r;
        MCLT_OK(mcl_pstream_call(c[i], 0, 1, 0, NULL, 0, 5000, &r));
        CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_UNIMPLEMENTED);
        mcl_pstream_result_free(r);
    }
    CU_ASSERT_EQUAL(mcl_pstream_server_connections(srv), 3);
    for (int i = 0; i < 3; i++) {
        MCLT_OK(mcl_pstream_close(c[i], 2000));
        mcl_pstream_free(c[i]);
    }
    mcl_pstream *u;
    MCLT_ERR(mcl_pstream_dial(&u, "inproc://nobody-here", NULL), MCL_EUNREACH);
    MCLT_ERR(mcl_pstream_dial(&u, "udp://239.1.2.3:4", NULL), MCL_EURL);
    mcl_pstream_server_free(srv, 1000);
}

// The frame raw_recv just returned, byte for byte.
static bool
last_frame_is(const raw_end *r, const char *bytes, size_t n)
{
    return r->used == n && memcmp(r->buf, bytes, n) == 0;
}

static void
test_cs_compat(void)
{
    // cs.packetstream's behaviour over a byte stream, as the Python reference has it (see
    // ../shared/research/cs-packetstream-wire.md): tags from 2, never reused; no cancel on the
    // wire; channel 0 only, other channels refused with the reference's literal text; "not ok"
    // answers are REJECTED with the reason as the message; ERQ then EOF, as 03 01 02 00 and
    // 03 00 02 00, and the close ends at the peer's EOF.
    raw_end *r = calloc(1, sizeof(*r));
    mcl_pstream_options o = {.codec = MCL_PSTREAM_CS};
    mcl_pstream *ps = stream_and_raw(r, &o);
    r->codec = MCL__PS_CS;
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, 1, echo, NULL));
    MCLT_ERR(mcl_pstream_submit(ps, 1, 5, 0, NULL, 0, 0, NULL, NULL, NULL), MCL_EINVAL);
    done_log *d = new_log();
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_pstream_submit(ps, 0, 5, (uint32_t)i, "q", 1, 60000, on_done, d, &id[i]));
    MCLT_OK(mcl_pstream_start(ps));
    mcl__pkt k;
    for (uint32_t t = 2; t <= 4; t++) {
        CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
        CU_ASSERT(k.kind == MCL__PK_REQUEST && k.tag == t && k.type == 5 && k.channel == 0);
    }
    MCLT_OK(mcl_pstream_cancel(ps, id[1])); // tag 3: given up here, nothing on the wire
    uint64_t id4;
    MCLT_OK(mcl_pstream_submit(ps, 0, 5, 9, NULL, 0, 60000, on_done, d, &id4));
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_REQUEST && k.tag == 5); // not 3 again
    // Answers: tag 2 ok, tag 3 (cancelled: dropped, counted), tag 4 "not ok".
    mcl__pkt a = {
        .kind = MCL__PK_RESPONSE, .tag = 2, .flags = 1, .payload = (const uint8_t *)"a", .len = 1};
    raw_send(r, &a);
    a.tag = 3;
    raw_send(r, &a);
    mcl__pkt no = {.kind = MCL__PK_RESPONSE,
                   .tag = 4,
                   .status = MCL__PST_REJECTED,
                   .msg = (const uint8_t *)"boom",
                   .msglen = 4};
    raw_send(r, &no);
    int want = 3; // cancelled, ok, rejected
    void *dw[2] = {d, &want};
    CU_ASSERT(mclt_wait_until(done_at_least, dw, 5000));
    int ok = -1, rej = -1, can = -1;
    for (int i = 0; i < 3; i++) {
        if (d->status[i] == MCL_PSTREAM_OK)
            ok = i;
        else if (d->status[i] == MCL_PSTREAM_REJECTED)
            rej = i;
        else if (d->status[i] == MCL_PSTREAM_CANCELLED)
            can = i;
    }
    CU_ASSERT(ok >= 0 && rej >= 0 && can >= 0);
    if (ok >= 0)
        CU_ASSERT_STRING_EQUAL(d->payload[ok], "a");
    counter_is late = {ps, offsetof(mcl_pstream_counters, late_responses), 1};
    CU_ASSERT(mclt_wait_until(counter_reached, &late, 5000));
    // The peer's requests: on channel 1 (refused as the reference does), of a type nobody
    // handles, and one that is answered.
    mcl__pkt q = {.kind = MCL__PK_REQUEST, .tag = 7, .channel = 1, .type = 1};
    raw_send(r, &q);
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_RESPONSE && k.tag == 7 && k.channel == 1 &&
              k.status == MCL__PST_REJECTED);
    CU_ASSERT(k.msglen == 18 && memcmp(k.msg, "unknown channel %d", 18) == 0);
    q = (mcl__pkt){.kind = MCL__PK_REQUEST, .tag = 8, .type = 9};
    raw_send(r, &q);
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_RESPONSE && k.tag == 8 && k.status == MCL__PST_REJECTED &&
              k.msglen > 0);
    q = (mcl__pkt){.kind = MCL__PK_REQUEST,
                   .tag = 9,
                   .type = 1,
                   .flags = 6,
                   .payload = (const uint8_t *)"hi",
                   .len = 2};
    raw_send(r, &q);
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_RESPONSE && k.tag == 9 && k.status == MCL__PST_OK && k.flags == 6 &&
              k.len == 2 && memcmp(k.payload, "hi", 2) == 0);
    // Close: ERQ and EOF exactly as the reference writes them; tag 5 may still be answered,
    // and the close ends with the peer's EOF.
    MCLT_OK(mcl_pstream_shutdown(ps));
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_ERQ && last_frame_is(r, "\x03\x01\x02\x00", 4));
    CU_ASSERT_FATAL(raw_recv(r, &k, 5000));
    CU_ASSERT(k.kind == MCL__PK_EOF && last_frame_is(r, "\x03\x00\x02\x00", 4));
    a.tag = 5;
    raw_send(r, &a);
    want = 4;
    CU_ASSERT(mclt_wait_until(done_at_least, dw, 5000));
    CU_ASSERT_TRUE(mcl_pstream_is_open(ps)); // the reference waits for the peer's EOF
    raw_bytes(r, "\x03\x01\x02\x00\x03\x00\x02\x00", 8);
    CU_ASSERT(mclt_wait_until(not_open, ps, 5000));
    CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(ps), "");
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(ps, &st));
    CU_ASSERT_EQUAL(st.requests_sent, 4);
    CU_ASSERT_EQUAL(st.cancels_sent, 0);
    CU_ASSERT_EQUAL(st.requests_received, 3);
    CU_ASSERT_EQUAL(st.refused, 2);
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
    free(d);
}

static void
accept_hold(mcl_pstream_server *srv, mcl_pstream *ps, void *user)
{
    (void)srv;
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, user));
}

// Replies to every held request (they go nowhere once the connection has ended).
static void
release_held(held *h)
{
    for (int i = 0; i < atomic_load(&h->n); i++)
        (void)mcl_pstream_reply(h->rq[i], MCL_PSTREAM_OK, 0, NULL, 0, NULL);
    atomic_store(&h->n, 0);
}

static void
test_send_failure_completes_once(void)
{
    // The pipe breaks under a send (inproc cut=3: after the client's third packet). The request
    // whose send failed is refused (MCL_ECLOSED, no callback); the three before complete once
    // each with DISCONNECTED; nothing completes twice.
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://cut-under-send", &o, accept_hold, &h));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, "inproc://cut-under-send?cut=3", &o));
    done_log *d = new_log();
    uint64_t id[3];
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_pstream_submit(c, 0, 1, 0, "x", 1, 60000, on_done, d, &id[i]));
    MCLT_ERR(mcl_pstream_submit(c, 0, 1, 0, "x", 1, 60000, on_done, d, NULL), MCL_ECLOSED);
    CU_ASSERT_FATAL(drive_until(c, not_open, c, 5000));
    for (int i = 0; i < 5; i++) // a few more rounds: nothing more may come
        MCLT_OK(mcl_pstream_dispatch(c));
    CU_ASSERT_EQUAL(atomic_load(&d->n), 3);
    for (int i = 0; i < 3 && i < atomic_load(&d->n); i++) {
        CU_ASSERT_EQUAL(d->status[i], MCL_PSTREAM_DISCONNECTED);
        int same = 0; // each of the three, once (in any order)
        for (int j = 0; j < 3; j++)
            same += d->id[j] == id[i];
        CU_ASSERT_EQUAL(same, 1);
    }
    mcl_pstream_result *r;
    MCLT_ERR(mcl_pstream_call(c, 0, 1, 0, NULL, 0, 1000, &r), MCL_ECLOSED);
    CU_ASSERT_PTR_NULL(r);
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 100);
    release_held(&h);
    free(d);
}

static void
test_deadline_whose_cancel_fails(void)
{
    // Requests pass their deadline after the peer stopped reading (shutdown(SHUT_RD): this
    // side's writes fail, its reads do not), so the cancel packet cannot be sent: each request
    // completes once (the first DEADLINE_EXCEEDED), and the driver ends the connection
    // instead of going round for ever.
    raw_end *r = calloc(1, sizeof(*r));
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
    mcl_pstream *ps = stream_and_raw(r, &o);
    done_log *d = new_log();
    for (int i = 0; i < 2; i++)
        MCLT_OK(mcl_pstream_submit(ps, 0, 1, 0, NULL, 0, 30, on_done, d, NULL));
    mcl__pkt k;
    CU_ASSERT(raw_recv(r, &k, 5000) && raw_recv(r, &k, 5000));
    CU_ASSERT_FATAL(shutdown(r->fd, SHUT_RD) == 0);
    int want = 2;
    void *dw[2] = {d, &want};
    CU_ASSERT(drive_until(ps, done_at_least, dw, 5000));
    CU_ASSERT(drive_until(ps, not_open, ps, 5000));
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_pstream_dispatch(ps));
    CU_ASSERT_EQUAL(atomic_load(&d->n), 2);
    CU_ASSERT_EQUAL(d->status[0], MCL_PSTREAM_DEADLINE_EXCEEDED);
    // The second passed its deadline in the same round, or the connection ended first.
    CU_ASSERT(d->status[1] == MCL_PSTREAM_DEADLINE_EXCEEDED ||
              d->status[1] == MCL_PSTREAM_DISCONNECTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_pstream_end_reason(ps), "DISCONNECTED"));
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
    free(d);
}

static void
test_peer_that_never_reads(void)
{
    // A peer floods requests the stream refuses (no handler) and never reads the answers: the
    // stream stops reading once its output passes send_queue (memory stays bounded), and the
    // peer, no longer heard, is declared dead by idle_ms.
    raw_end *r = calloc(1, sizeof(*r));
    mcl_pstream_options o = {.send_queue = 65536, .ping_ms = -1, .idle_ms = 400};
    mcl_pstream *ps = stream_and_raw(r, &o);
    MCLT_OK(mcl_pstream_start(ps));
    CU_ASSERT_FATAL(fcntl(r->fd, F_SETFL, O_NONBLOCK) == 0);
    uint8_t frame[4 + MCL__PW_HDR];
    mcl__pkt q = {.kind = MCL__PK_REQUEST, .type = 9};
    uint8_t hdr[MCL__PW_HDR_MAX];
    struct iovec iov[4];
    unsigned n;
    size_t sent = 0;
    int64_t end = mclt_now_ms() + 10000, quiet_since = mclt_now_ms();
    while (sent < 2000000 && mclt_now_ms() < end && mclt_now_ms() - quiet_since < 200) {
        q.tag = (uint32_t)sent;
        MCLT_OK(mcl__pkt_encode(MCL__PS_NATIVE, &q, hdr, iov, &n));
        frame[0] = frame[1] = frame[2] = 0;
        frame[3] = MCL__PW_HDR;
        memcpy(frame + 4, hdr, MCL__PW_HDR);
        if (write(r->fd, frame, sizeof(frame)) == (ssize_t)sizeof(frame)) {
            sent++;
            quiet_since = mclt_now_ms();
        } else {
            struct pollfd p = {.fd = r->fd, .events = POLLOUT};
            (void)poll(&p, 1, 20);
        }
    }
    CU_ASSERT(sent < 2000000); // it stopped taking them
    mcl_pstream_counters st;
    MCLT_OK(mcl_pstream_stats(ps, &st));
    CU_ASSERT(st.send_queued <= 65536 + 64 * 64); // send_queue, and at most one batch more
    CU_ASSERT(st.requests_received < sent);
    CU_ASSERT(mclt_wait_until(not_open, ps, 5000));
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_pstream_end_reason(ps), "nothing heard"));
    mcl_pstream_free(ps);
    raw_close(r);
    free(r);
}

static void
test_after_the_peers_eof(void)
{
    // EOF means nothing more. While this side still works on a request of the peer (so it
    // keeps reading after the EOF), a packet after the EOF fails the connection: a peer must
    // not make it read and hold for ever. A peer that says EOF and then shuts its side down is
    // the normal end: the answer and this side's EOF still go out, and the stream ends cleanly.
    for (int c = 0; c < 2; c++) {
        raw_end *r = calloc(1, sizeof(*r));
        mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
        mcl_pstream *ps = stream_and_raw(r, &o);
        held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
        MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, &h));
        MCLT_OK(mcl_pstream_start(ps));
        mcl__pkt q = {.kind = MCL__PK_REQUEST, .tag = 1, .type = 1};
        raw_send(r, &q);
        mcl__pkt eof = {.kind = MCL__PK_EOF};
        raw_send(r, &eof);
        if (c == 0) {
            q.tag = 2;
            raw_send(r, &q);
            CU_ASSERT(mclt_wait_until(not_open, ps, 5000));
            CU_ASSERT_PTR_NOT_NULL(strstr(mcl_pstream_end_reason(ps), "after the peer's EOF"));
        } else {
            shutdown(r->fd, SHUT_WR);
            int want = 1;
            void *hw[2] = {&h, &want};
            CU_ASSERT_FATAL(mclt_wait_until(held_at_least, hw, 5000));
            MCLT_OK(mcl_pstream_reply(h.rq[0], MCL_PSTREAM_OK, 0, "a", 1, NULL));
            atomic_store(&h.n, 0);
            CU_ASSERT(mclt_wait_until(not_open, ps, 5000));
            CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(ps), "");
            mcl__pkt k;
            bool answered = false, saw_eof = false;
            while (raw_recv(r, &k, 1000) && !saw_eof) {
                answered |= k.kind == MCL__PK_RESPONSE && k.tag == 1;
                saw_eof |= k.kind == MCL__PK_EOF;
            }
            CU_ASSERT(answered && saw_eof);
        }
        mcl_pstream_free(ps);
        release_held(&h);
        raw_close(r);
        free(r);
    }
}

typedef struct kept {
    mcl_pstream *conn;
    atomic_bool got;
    held h;
} kept;

static void
accept_keep(mcl_pstream_server *srv, mcl_pstream *ps, void *user)
{
    (void)srv;
    kept *k = user;
    mcl_pstream_ref(ps); // used from the test's thread below
    k->conn = ps;
    atomic_store(&k->got, true);
}

static bool
got_conn(void *arg)
{
    return atomic_load(&((kept *)arg)->got);
}

static void *
call_client(void *arg)
{
    kept *k = arg;
    mcl_pstream_result *r = NULL;
    mcl_err rv = mcl_pstream_call(k->conn, 0, 1, 0, "q", 1, 10000, &r);
    CU_ASSERT(rv == MCL_OK || rv == MCL_ECLOSED);
    if (rv == MCL_OK) {
        CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_DISCONNECTED);
    }
    mcl_pstream_result_free(r);
    return NULL;
}

typedef struct owned_call {
    mcl_pstream *ps;
    mcl_err rv;
    mcl_pstream_status st;
} owned_call;

static void *
call_owned(void *arg)
{
    owned_call *oc = arg;
    mcl_pstream_result *r = NULL;
    oc->rv = mcl_pstream_call(oc->ps, 0, 1, 0, "q", 1, 10000, &r);
    oc->st = r != NULL ? r->status : MCL_PSTREAM_OK;
    mcl_pstream_result_free(r);
    return NULL;
}

static void
test_free_while_a_call_waits(void)
{
    // mcl_pstream_free() on one thread while another waits in mcl_pstream_call(): the call
    // returns DISCONNECTED (the free completes what is pending), on memory that is still there.
    held h = {.lock = PTHREAD_MUTEX_INITIALIZER};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://free-while-call", NULL, accept_hold, &h));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, "inproc://free-while-call", NULL));
    MCLT_OK(mcl_pstream_start(c));
    owned_call oc = {.ps = c};
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, call_owned, &oc), 0);
    int want = 1;
    void *hw[2] = {&h, &want};
    CU_ASSERT(mclt_wait_until(held_at_least, hw, 5000)); // the call waits for its answer
    mcl_pstream_free(c);
    pthread_join(th, NULL);
    CU_ASSERT_EQUAL(oc.rv, MCL_OK);
    CU_ASSERT_EQUAL(oc.st, MCL_PSTREAM_DISCONNECTED);
    mcl_pstream_server_free(srv, 100);
    release_held(&h);
}

static void
test_server_connection_kept(void)
{
    // A server's connection held with mcl_pstream_ref() and called from another thread: the
    // client goes away, the server ends and reaps the connection, and the blocked call returns
    // (DISCONNECTED) on memory that is still there; after it, calls say MCL_ECLOSED.
    kept k = {.h = {.lock = PTHREAD_MUTEX_INITIALIZER}};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "inproc://kept", NULL, accept_keep, &k));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, "inproc://kept", NULL));
    MCLT_OK(mcl_pstream_handle(c, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, hold, &k.h));
    MCLT_OK(mcl_pstream_start(c));
    CU_ASSERT_FATAL(mclt_wait_until(got_conn, &k, 5000));
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, call_client, &k), 0);
    int want = 1;
    void *hw[2] = {&k.h, &want};
    CU_ASSERT(mclt_wait_until(held_at_least, hw, 5000)); // the call is in the client's hands
    mcl_pstream_free(c);
    pthread_join(th, NULL);
    CU_ASSERT(mclt_wait_until(not_open, k.conn, 5000));
    mcl_pstream_result *r;
    MCLT_ERR(mcl_pstream_call(k.conn, 0, 1, 0, NULL, 0, 100, &r), MCL_ECLOSED);
    MCLT_ERR(mcl_pstream_submit(k.conn, 0, 1, 0, NULL, 0, 0, NULL, NULL, NULL), MCL_ECLOSED);
    mcl_pstream_server_free(srv, 100);
    mcl_pstream_unref(k.conn);
    release_held(&k.h);
}

static CU_TestInfo tests[] = {
    {"calls_over_a_socketpair", test_calls_over_a_socketpair},
    {"both_sides_call", test_both_sides_call},
    {"out_of_order_answers_and_send_order", test_out_of_order_answers_and_send_order},
    {"handler_choice", test_handler_choice},
    {"tag_in_use_is_refused", test_tag_in_use_is_refused},
    {"unknown_response_is_counted", test_unknown_response_is_counted},
    {"end_of_requests", test_end_of_requests},
    {"eof_completes_every_pending_request", test_eof_completes_every_pending_request},
    {"dead_peer_is_noticed", test_dead_peer_is_noticed},
    {"orderly_close", test_orderly_close},
    {"send_queue_pushes_back", test_send_queue_pushes_back},
    {"protocol_violation_fails_the_connection", test_protocol_violation_fails_the_connection},
    {"cancel_and_deadline", test_cancel_and_deadline},
    {"counters_add_up", test_counters_add_up},
    {"reactor_and_promises", test_reactor_and_promises},
    {"many_requests_leave_nothing", test_many_requests_leave_nothing},
    {"over_inproc_server", test_over_inproc_server},
    {"cs_compat", test_cs_compat},
    {"send_failure_completes_once", test_send_failure_completes_once},
    {"deadline_whose_cancel_fails", test_deadline_whose_cancel_fails},
    {"peer_that_never_reads", test_peer_that_never_reads},
    {"after_the_peers_eof", test_after_the_peers_eof},
    {"server_connection_kept", test_server_connection_kept},
    {"free_while_a_call_waits", test_free_while_a_call_waits},
    {"one_way_messages", test_one_way_messages},
    CU_TEST_INFO_NULL};
MCLT_SUITE("pstream_core", NULL, NULL, tests);
