// SPDX-License-Identifier: BSD-3-Clause
// Packet stream connections (include/mcl/pstream.h, docs/pstream-format.md).
//
// State lives under one mutex (`lock`), pipe I/O included (a zmq socket belongs to one thread
// at a time; the mutex hands it over). Every callback runs on the driving thread with the lock
// released: dispatch reads one packet, decides under the lock, unlocks, calls, and locks again.
// Completions that other threads cause (cancel, close) are queued for the driving thread, which
// is woken through an eventfd. What the driver waits on is one epoll descriptor holding the
// pipe's descriptors, that eventfd, and a timerfd set to the earliest deadline, ping or idle
// check, so any loop (a thread of ours, a reactor, the caller's poll) drives it the same way.
#define _GNU_SOURCE
#include "pstream_int.h"
#include "pwire.h"

#include "../core/internal.h"
#include "../core/source.h"
#include "../core/u64map.h"
#include "../reactor/reactor_int.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum {
    DEF_TIMEOUT_MS = 20000,
    DEF_PING_MS = 2000,
    DEF_IDLE_MS = 10000,
    DEF_CLOSE_MS = 5000,
    DEF_SPIN_US = 50, // a blocking call looks for its answer this long before it sleeps
    DEF_MAX_INCOMING = 4096,
    ZOMBIE_MS = 60000, // a cancelled request's tag waits this long at most for the peer's answer
    RETRY_MS = 10,     // output waiting with no descriptor that says when: look again this soon
    BATCH = 64,        // packets one dispatch reads before it looks at its timers again
    WHY = 160,
};
#define DEF_SEND_QUEUE ((size_t)8 << 20)
#define DEF_MAX_PACKET ((size_t)64 << 20)

enum { EP_RFD = 1, EP_WAKE, EP_TIMER, EP_WFD };
enum { D_NONE, D_THREAD, D_REACTOR, D_SERVER };

// A request of this side. In flight it is in out_by_id, out_by_key and (with a deadline) the
// heap. Completed locally (cancel, deadline) it becomes a zombie: only in out_by_key and the
// heap, holding its tag until the peer answers (or ZOMBIE_MS pass). A completion waiting for
// the driving thread is `queued` in the done list (the node is in here: no allocation on any
// completion path); `orphan` means no table holds it: it is freed once delivered.
typedef struct ps_out {
    mcl__heap_node hn; // first member: a heap node is an out
    uint64_t id;
    uint32_t channel, tag;
    bool has_deadline, zombie, queued, orphan;
    struct ps_out *dnext;
    mcl_pstream_status dst;
    char dmsg[64];
    mcl_pstream_done_cb cb;
    void *user;
    mcl_promise *promise;
    struct call_wait *waiter;
} ps_out;

// A blocking call's result slot.
typedef struct call_wait {
    atomic_bool done;
    mcl_pstream_result *res;
    mcl_err err; // MCL_ENOMEM when the copy failed
} call_wait;

// A packet waiting to be sent.
typedef struct qpkt {
    struct qpkt *next;
    size_t len;
    uint8_t data[];
} qpkt;

typedef struct handler {
    uint32_t channel, type;
    mcl_pstream_handler fn;
    void *user;
} handler;

typedef struct msg_handler {
    uint32_t channel;
    mcl_pstream_message_cb fn;
    void *user;
} msg_handler;

struct mcl_pstream_request {
    mcl_pstream *ps;
    atomic_int refs; // the handle's, and the driver's while its handler runs
    uint32_t channel, tag, type, flags;
    const void *payload; // during its handler only
    size_t len;
    atomic_bool cancelled;
    bool in_table;                   // under ps->lock: still the peer's request in progress
    mcl_pstream_cancel_cb cancel_cb; // under ps->lock
    void *cancel_user;
    bool cancel_pending; // cancelled before on_cancel was set: call it at once then
    void (*release)(void *); // mcl__pstream_request_on_release(): called as it is released
    void *release_user;
};

struct mcl_pstream {
    pthread_mutex_t lock;
    pthread_cond_t cv; // blocking calls and closes: a result, room in the queue, the end
    atomic_int refs;   // the owner's, plus one per request handle not yet replied to
    int codec;
    mcl_pstream_options opt;
    size_t max_packet;
    const mcl__pipe_ops *ops;
    mcl__pipe *pipe;
    char url[MCL__URL_MAX];
    char peer[128]; // the peer's address, as the pipe knows it ("" when it does not)
    mcl_pstream_server *server; // it owns and drives this connection (accepted)
    // Ending.
    bool erq_sent, eof_sent, peer_erq, peer_eof, closing, ended;
    mcl_pstream_status end_why;
    bool closed_told; // the closed callback ran (or nothing was registered)
    bool end_logged;
    bool sending_for_call; // submit() on behalf of mcl_pstream_call()
    // The pipe failed under a send: the driver ends the connection at its next round (not
    // the sender, who may hold a request record that ending would complete under it).
    bool broken;
    char broken_why[WHY];
    bool peer_closed; // read ECLOSED after the peer's EOF: nothing more to read
    uint32_t rfd_ev;  // the events registered for rfd_cur
    int wfd_sep;      // a write descriptor registered apart from rfd_cur, or -1
    uint32_t wsep_ev;
    uint64_t sends; // packets handed to the pipe
    // Free lists (under lock): requests of both sides reuse their memory instead of a
    // malloc/free pair each (at most POOL_MAX of each kind are kept).
    void *rq_pool, *out_pool;
    unsigned rq_pooled, out_pooled;
    char end_text[192]; // why it ended (not OK); written once, before `ended` is set
    int64_t close_due;
    mcl_pstream_closed_cb closed_cb;
    void *closed_user;
    // This side's requests.
    mcl__u64map out_by_id, out_by_key; // id -> ps_out; (channel << 32 | tag) -> ps_out
    mcl__heap deadlines;
    uint32_t next_tag;
    uint64_t next_id;
    // The peer's requests in progress: (channel << 32 | tag) -> mcl_pstream_request.
    mcl__u64map in_by_key;
    handler *handlers;
    size_t nhandlers;
    msg_handler *mhandlers; // one-way messages, by channel
    size_t nmhandlers;
    // Output.
    qpkt *qhead, *qtail;
    size_t qbytes;
    // Completions for the driving thread.
    ps_out *dhead, *dtail;
    // Liveness.
    int64_t last_rx, last_tx;
    uint32_t ping_seq;
    // Descriptors.
    int epfd, wake, tfd;
    bool wake_sig;
    int64_t timer_due; // when the timerfd fires (INT64_MAX: not armed); only ever moved earlier
    int wfd_cur;       // the write descriptor asked for (it may be rfd_cur), -1 none
    int rfd_cur;
    // Driving.
    int driver;
    pthread_t thread;
    atomic_bool stop;
    mcl_reactor *reactor;
    mcl_handle rh;
    bool dispatching;
    pthread_t dispatcher;
    mcl_pstream_counters st;
};

static const char *const status_names[] = {
#define N_(name, val, text) [val] = #name,
    MCL_PSTREAM_STATUS_MAP(N_)
#undef N_
};
static const char *const status_texts[] = {
#define T_(name, val, text) [val] = text,
    MCL_PSTREAM_STATUS_MAP(T_)
#undef T_
};

const char *
mcl_pstream_status_name(mcl_pstream_status st)
{
    unsigned i = (unsigned)st;
    return i < sizeof(status_names) / sizeof(status_names[0]) && status_names[i] ? status_names[i]
                                                                                 : "STATUS?";
}

const char *
mcl_pstream_status_text(mcl_pstream_status st)
{
    unsigned i = (unsigned)st;
    return i < sizeof(status_texts) / sizeof(status_texts[0]) && status_texts[i] ? status_texts[i]
                                                                                 : "unknown status";
}

static inline uint64_t
key_of(uint32_t channel, uint32_t tag)
{
    return (uint64_t)channel << 32 | tag;
}

static void ps_unref(mcl_pstream *ps);

enum { POOL_MAX = 64 };

static void *
pool_get(void **head, unsigned *n, size_t size)
{
    void *p = *head;
    if (p == NULL)
        return mcl__zalloc(size);
    memcpy(head, p, sizeof(void *));
    (*n)--;
    memset(p, 0, size);
    return p;
}

static void
pool_put(void **head, unsigned *n, void *p)
{
    if (*n >= POOL_MAX) {
        mcl__free(p);
        return;
    }
    memcpy(p, head, sizeof(void *));
    *head = p;
    (*n)++;
}

static void
pool_free(void **head)
{
    for (void *p = *head, *next; p != NULL; p = next) {
        memcpy(&next, p, sizeof(void *));
        mcl__free(p);
    }
    *head = NULL;
}

// --- descriptors ---------------------------------------------------------------------------------

static void
wake_locked(mcl_pstream *ps)
{
    if (ps->wake_sig || ps->wake < 0)
        return;
    uint64_t one = 1;
    ssize_t w = write(ps->wake, &one, sizeof(one));
    (void)w;
    ps->wake_sig = true;
}

static void
drain_fd(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r; // EAGAIN: nothing was signalled
}

static void
epoll_set(mcl_pstream *ps, int op, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    (void)epoll_ctl(ps->epfd, op, fd, &ev);
}

// Whether the pipe holds part of a packet the kernel did not take (never on pipes whose send
// takes a whole packet or none).
static bool
want_flush(const mcl_pstream *ps)
{
    return ps->ops->want_flush != NULL && ps->ops->want_flush(ps->pipe);
}

// Output waiting: the queue's packets and what the pipe holds (a write the kernel took in
// part, packets being coalesced).
static size_t
out_bytes(const mcl_pstream *ps)
{
    size_t held = ps->pipe != NULL && ps->ops->held != NULL ? ps->ops->held(ps->pipe) : 0;
    return ps->qbytes + held;
}

// Whether this side stops reading for now: after the peer's EOF and its close, or while the
// output waiting for a peer that does not read passes send_queue (what a peer's requests make
// this side say, refusals and pongs included, then waits: memory stays bounded, and a peer that
// never reads is declared dead by idle_ms).
static bool
read_paused(const mcl_pstream *ps)
{
    return ps->peer_closed || out_bytes(ps) > ps->opt.send_queue;
}

// Registers the interest in reading (unless paused) and in writing (while output waits) with
// the epoll descriptor, changing only what changed. Called with the lock held.
static void
arm_write_locked(mcl_pstream *ps)
{
    bool live = !ps->ended && ps->pipe != NULL;
    bool want = live && (ps->qhead != NULL || want_flush(ps));
    int fd = -1;
    short evs = 0;
    if (want)
        fd = ps->ops->wfd(ps->pipe, &evs);
    uint32_t wev = (evs & POLLOUT) ? EPOLLOUT : EPOLLIN;
    if (!live)
        return;
    uint32_t rev = read_paused(ps) ? 0 : EPOLLIN;
    if (fd >= 0 && fd == ps->rfd_cur)
        rev |= wev;
    if (rev != ps->rfd_ev) {
        epoll_set(ps, EPOLL_CTL_MOD, ps->rfd_cur, rev, EP_RFD);
        ps->rfd_ev = rev;
    }
    int sep = fd >= 0 && fd != ps->rfd_cur ? fd : -1;
    if (sep != ps->wfd_sep) {
        if (ps->wfd_sep >= 0)
            (void)epoll_ctl(ps->epfd, EPOLL_CTL_DEL, ps->wfd_sep, NULL);
        if (sep >= 0)
            epoll_set(ps, EPOLL_CTL_ADD, sep, wev, EP_WFD);
        ps->wfd_sep = sep;
        ps->wsep_ev = wev;
    } else if (sep >= 0 && wev != ps->wsep_ev) {
        epoll_set(ps, EPOLL_CTL_MOD, sep, wev, EP_WFD);
        ps->wsep_ev = wev;
    }
    ps->wfd_cur = fd;
}

static void
arm_timer_locked(mcl_pstream *ps, int64_t now)
{
    int64_t due = INT64_MAX;
    mcl__heap_node *top = mcl__heap_top(&ps->deadlines);
    if (top != NULL)
        due = top->due;
    if (!ps->ended && ps->codec == MCL__PS_NATIVE) {
        if (ps->opt.ping_ms > 0) {
            int64_t p = ps->last_tx + (int64_t)ps->opt.ping_ms * 1000000;
            due = p < due ? p : due;
        }
        if (ps->opt.idle_ms > 0) {
            int64_t i = ps->last_rx + (int64_t)ps->opt.idle_ms * 1000000;
            due = i < due ? i : due;
        }
    }
    if (!ps->ended && ps->closing && ps->close_due < due)
        due = ps->close_due;
    if (!ps->ended && ps->qhead != NULL && ps->wfd_cur < 0) { // nothing will say when: poll
        int64_t r = now + (int64_t)RETRY_MS * 1000000;
        due = r < due ? r : due;
    }
    // Lazy: a timer armed for earlier fires, and the dispatch it causes arms the next due. So a
    // deadline or ping moving later (every request, every packet sent) costs no system call.
    if (due >= ps->timer_due)
        return;
    ps->timer_due = due;
    struct itimerspec its = {{0, 0}, {0, 0}}; // all zero: disarmed
    int flags = 0;
    if (due != INT64_MAX && due <= now) {
        its.it_value.tv_nsec = 1; // due already: at once (relative; 0 would disarm)
    } else if (due != INT64_MAX) {
        its.it_value.tv_sec = (time_t)(due / 1000000000);
        its.it_value.tv_nsec = (long)(due % 1000000000);
        flags = TFD_TIMER_ABSTIME;
    }
    (void)timerfd_settime(ps->tfd, flags, &its, NULL);
}

// A request handle's last reference is gone (under ps->lock): its release hook runs, then it
// goes back to the pool.
static void
rq_put(mcl_pstream *ps, mcl_pstream_request *rq)
{
    if (rq->release != NULL) {
        void (*fn)(void *) = rq->release;
        rq->release = NULL;
        fn(rq->release_user);
    }
    pool_put(&ps->rq_pool, &ps->rq_pooled, rq);
}

void
mcl__pstream_request_on_release(mcl_pstream_request *rq, void (*fn)(void *), void *user)
{
    rq->release = fn;
    rq->release_user = user;
}

// --- results -------------------------------------------------------------------------------------

static mcl_pstream_result *
result_copy(const mcl_pstream_result *r)
{
    size_t ml = strlen(r->message);
    mcl_pstream_result *c = mcl__alloc(sizeof(*c) + r->len + ml + 1);
    if (c == NULL)
        return NULL;
    *c = *r;
    char *m = (char *)(c + 1);
    memcpy(m, r->message, ml + 1);
    c->message = m;
    if (r->len > 0) {
        memcpy(m + ml + 1, r->payload, r->len);
        c->payload = m + ml + 1;
    } else {
        c->payload = NULL;
    }
    return c;
}

void
mcl_pstream_result_free(mcl_pstream_result *r)
{
    mcl__free(r);
}

static void
result_free_void(void *r)
{
    mcl__free(r);
}

// Runs the callback of an out (out of the in-flight tables). Called WITHOUT the lock: the
// callbacks are the user's. Frees nothing.
static void
deliver(mcl_pstream *ps, ps_out *o, const mcl_pstream_result *r)
{
    if (o->waiter != NULL) {
        mcl_pstream_result *c = result_copy(r);
        pthread_mutex_lock(&ps->lock);
        o->waiter->res = c;
        o->waiter->err = c == NULL ? MCL_ENOMEM : MCL_OK;
        o->waiter->done = true;
        o->waiter = NULL;
        pthread_cond_broadcast(&ps->cv);
        pthread_mutex_unlock(&ps->lock);
    } else if (o->promise != NULL) {
        mcl_pstream_result *c = result_copy(r);
        if (c != NULL)
            (void)mcl__promise_resolve_owned(o->promise, c, result_free_void);
        else
            (void)mcl_promise_fail(o->promise, MCL_ENOMEM);
        mcl_promise_unref(o->promise);
        o->promise = NULL;
    } else if (o->cb != NULL) {
        o->cb(r, o->user);
    }
    o->cb = NULL;
}

// --- output --------------------------------------------------------------------------------------

static void end_locked(mcl_pstream *ps, mcl_pstream_status why, const char *text);

// A send failed: the connection is over, and ends at the driver's next round.
static void
pipe_failed_locked(mcl_pstream *ps, const char *why)
{
    if (!ps->broken) {
        ps->broken = true;
        snprintf(ps->broken_why, sizeof(ps->broken_why), "%s", why);
    }
    wake_locked(ps);
}

// In the driver: a failed send ends the connection now. Whether it has ended.
static bool
end_if_broken_locked(mcl_pstream *ps)
{
    if (ps->broken && !ps->ended)
        end_locked(ps, MCL_PSTREAM_DISCONNECTED, ps->broken_why);
    return ps->ended;
}

// Writes what waits. Called with the lock held; a broken pipe ends the connection (later).
static void
flush_locked(mcl_pstream *ps)
{
    char why[WHY] = "";
    bool was_full = out_bytes(ps) > ps->opt.send_queue;
    while (!ps->ended && !ps->broken && ps->pipe != NULL) {
        mcl_err rv = MCL_OK;
        if (want_flush(ps))
            rv = ps->ops->flush(ps->pipe, why, sizeof(why));
        if (rv == MCL_OK && ps->qhead != NULL) {
            qpkt *q = ps->qhead;
            struct iovec iov = {q->data, q->len};
            rv = ps->ops->send(ps->pipe, &iov, 1, why, sizeof(why));
            if (rv == MCL_OK) {
                ps->qhead = q->next;
                if (ps->qhead == NULL)
                    ps->qtail = NULL;
                ps->qbytes -= q->len;
                ps->st.bytes_sent += q->len;
                ps->sends++;
                ps->last_tx = mcl__coarse_ns();
                mcl__free(q);
                continue;
            }
        }
        if (rv == MCL_EAGAIN || (rv == MCL_OK && ps->qhead == NULL))
            break;
        pipe_failed_locked(ps, why[0] ? why : mcl_strerror(rv));
    }
    if (was_full && out_bytes(ps) <= ps->opt.send_queue)
        pthread_cond_broadcast(&ps->cv); // room for blocked callers
    arm_write_locked(ps);
}

// After a send outside dispatch: on a pipe whose rfd signals only changes (ZMQ_FD), the send
// may have taken in a packet without the descriptor saying so again; look, and wake the driver.
static void
sent_check_locked(mcl_pstream *ps)
{
    if (ps->dispatching || ps->ops->pending == NULL)
        return; // (a dispatch asks once at its end)
    if (ps->driver == D_NONE && !ps->sending_for_call)
        wake_locked(ps); // the caller's loop dispatches at once, and asks then: one eventfd
                         // write per burst of submits instead of a question per packet
    else if (ps->ops->pending(ps->pipe)) // (a blocking call is about to wait: ask now)
        wake_locked(ps);
}

// Sends packet k, or queues a copy. force: past the queue's limit (responses and control
// packets, bounded by max_incoming). Called with the lock held. MCL_EAGAIN: full, nothing
// done; MCL_ECLOSED: the connection has ended.
static mcl_err
send_locked(mcl_pstream *ps, const mcl__pkt *k, bool force)
{
    if (ps->ended || ps->broken || ps->pipe == NULL)
        return MCL_ECLOSED;
    uint8_t hdr[MCL__PW_HDR_MAX];
    struct iovec iov[4];
    unsigned niov = 0;
    mcl_err rv = mcl__pkt_encode(ps->codec, k, hdr, iov, &niov);
    if (rv != MCL_OK)
        return rv;
    size_t len = 0;
    for (unsigned i = 0; i < niov; i++)
        len += iov[i].iov_len;
    if (len > ps->max_packet)
        return MCL_EMSGSIZE;
    char why[WHY] = "";
    // Straight to the pipe unless packets queue; a pipe holding bytes takes more behind
    // them within send_queue (answers and control packets: always), or says EAGAIN.
    if (ps->qhead == NULL &&
        (force || !want_flush(ps) || out_bytes(ps) + len <= ps->opt.send_queue)) {
        rv = ps->ops->send(ps->pipe, iov, niov, why, sizeof(why));
        if (rv == MCL_OK) {
            ps->st.bytes_sent += len;
            ps->sends++;
            ps->last_tx = mcl__coarse_ns();
            sent_check_locked(ps);
            if (want_flush(ps)) { // held back (coalescing), or the kernel took only part
                if (ps->driver == D_NONE && !ps->dispatching)
                    flush_locked(ps); // (nobody may dispatch soon: write what it can now)
                else
                    arm_write_locked(ps); // the driver writes on its next round
            }
            return MCL_OK;
        }
        if (rv != MCL_EAGAIN) {
            pipe_failed_locked(ps, why[0] ? why : mcl_strerror(rv));
            return MCL_ECLOSED;
        }
    }
    if (!force && out_bytes(ps) + len > ps->opt.send_queue)
        return MCL_EAGAIN;
    qpkt *q = mcl__alloc(sizeof(*q) + len);
    if (q == NULL) {
        if (force) // an answer or a control packet the peer waits for: the stream is broken
            pipe_failed_locked(ps, "out of memory for output");
        return MCL_ENOMEM;
    }
    q->next = NULL;
    q->len = len;
    size_t off = 0;
    for (unsigned i = 0; i < niov; i++) {
        memcpy(q->data + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    if (ps->qtail != NULL)
        ps->qtail->next = q;
    else
        ps->qhead = q;
    ps->qtail = q;
    ps->qbytes += len;
    arm_write_locked(ps);
    if (!ps->dispatching && ps->wfd_cur < 0) // nothing will say when: the retry timer will
        arm_timer_locked(ps, mcl__mono_ns());
    return MCL_OK;
}

static void
send_control_locked(mcl_pstream *ps, int kind, uint32_t channel, uint32_t tag, const void *payload,
                    size_t len)
{
    mcl__pkt k = {.kind = kind, .channel = channel, .tag = tag, .payload = payload, .len = len};
    (void)send_locked(ps, &k, true);
}

static mcl_err
send_response_locked(mcl_pstream *ps, uint32_t channel, uint32_t tag, mcl_pstream_status st,
                     uint32_t flags, const void *payload, size_t len, const char *message)
{
    mcl__pkt k = {.kind = MCL__PK_RESPONSE,
                  .status = (uint16_t)st,
                  .channel = channel,
                  .tag = tag,
                  .flags = flags,
                  .payload = payload,
                  .len = len,
                  .msg = (const uint8_t *)message,
                  .msglen = message ? strlen(message) : 0};
    mcl_err rv = send_locked(ps, &k, true);
    if (rv == MCL_OK)
        ps->st.responses_sent++;
    return rv;
}

// --- completion of this side's requests ----------------------------------------------------------

// Frees a zombie (or an out no table holds any more), unless its completion still waits.
static void
drop_out_locked(mcl_pstream *ps, ps_out *o)
{
    (void)ps;
    if (o->queued)
        o->orphan = true; // run_completions_locked frees it after the callback
    else
        pool_put(&ps->out_pool, &ps->out_pooled, o);
}

// Queues o's completion for the driving thread. Called with the lock held; o is out of
// out_by_id and the in-flight count already.
static void
queue_done_locked(mcl_pstream *ps, ps_out *o, mcl_pstream_status st, const char *msg)
{
    o->queued = true;
    o->dst = st;
    snprintf(o->dmsg, sizeof(o->dmsg), "%s", msg ? msg : "");
    o->dnext = NULL;
    if (ps->dtail != NULL)
        ps->dtail->dnext = o;
    else
        ps->dhead = o;
    ps->dtail = o;
    wake_locked(ps);
}

// Completes a request in flight now (cancel, deadline; from any thread): its callback runs on
// the driving thread, and its tag stays reserved (a zombie) until the peer answers it.
static void
complete_later_locked(mcl_pstream *ps, ps_out *o, mcl_pstream_status st, const char *msg)
{
    mcl__heap_remove(&ps->deadlines, &o->hn);
    mcl__u64map_del(&ps->out_by_id, o->id);
    ps->st.in_flight--;
    o->zombie = true;
    o->hn.due = mcl__mono_ns() + (int64_t)ZOMBIE_MS * 1000000;
    if (mcl__heap_push(&ps->deadlines, &o->hn) != MCL_OK) { // no memory: give the tag up now
        mcl__u64map_del(&ps->out_by_key, key_of(o->channel, o->tag));
        o->zombie = false;
        o->orphan = true;
    }
    queue_done_locked(ps, o, st, msg);
}

// Runs the queued completions. Called with the lock held; releases it for each.
static void
run_completions_locked(mcl_pstream *ps)
{
    while (ps->dhead != NULL) {
        ps_out *o = ps->dhead;
        ps->dhead = o->dnext;
        if (ps->dhead == NULL)
            ps->dtail = NULL;
        mcl_pstream_result r = {.status = o->dst,
                                .channel = o->channel,
                                .tag = o->tag,
                                .message = o->dmsg,
                                .id = o->id,
                                .local = true};
        pthread_mutex_unlock(&ps->lock);
        deliver(ps, o, &r);
        pthread_mutex_lock(&ps->lock);
        o->queued = false;
        if (o->orphan)
            pool_put(&ps->out_pool, &ps->out_pooled, o);
    }
}

// Every request of this side completes with st (EOF, the end): none will be answered now.
// Zombies are given up. Called with the lock held.
static void
fail_outs_locked(mcl_pstream *ps, mcl_pstream_status st, const char *msg)
{
    mcl__u64map *m = &ps->out_by_key;
    for (size_t i = 0; i < m->cap; i++) {
        ps_out *o = m->vals[i];
        if (o == NULL)
            continue;
        mcl__heap_remove(&ps->deadlines, &o->hn);
        if (o->zombie) {
            drop_out_locked(ps, o);
            continue;
        }
        o->orphan = true;
        queue_done_locked(ps, o, st, msg);
    }
    mcl__u64map_fini(&ps->out_by_key);
    mcl__u64map_fini(&ps->out_by_id);
    mcl__u64map_init(&ps->out_by_key);
    mcl__u64map_init(&ps->out_by_id);
    ps->st.in_flight = 0;
}

// The connection is over: every request of this side completes, the peer's in progress are
// orphaned (their replies are dropped), output is dropped, the pipe closes. Called with the
// lock held.
static void
end_locked(mcl_pstream *ps, mcl_pstream_status why, const char *text)
{
    if (ps->ended)
        return;
    ps->ended = true;
    ps->end_why = why;
    if (why != MCL_PSTREAM_OK) // (logged once the lock is released: see log_end)
        snprintf(ps->end_text, sizeof(ps->end_text), "%s%s%s", mcl_pstream_status_name(why),
                 text ? ": " : "", text ? text : "");
    fail_outs_locked(ps, why == MCL_PSTREAM_OK ? MCL_PSTREAM_DISCONNECTED : why,
                     text ? text : mcl_pstream_status_text(why));
    // The peer's requests in progress: their handles stay valid; replies go nowhere.
    mcl__u64map *in = &ps->in_by_key;
    for (size_t i = 0; i < in->cap; i++)
        if (in->vals[i] != NULL)
            ((mcl_pstream_request *)in->vals[i])->in_table = false;
    mcl__u64map_fini(in);
    mcl__u64map_init(in);
    ps->st.in_progress = 0;
    for (qpkt *q = ps->qhead, *n; q != NULL; q = n) {
        n = q->next;
        mcl__free(q);
    }
    ps->qhead = ps->qtail = NULL;
    ps->qbytes = 0;
    if (ps->pipe != NULL) {
        (void)epoll_ctl(ps->epfd, EPOLL_CTL_DEL, ps->rfd_cur, NULL);
        if (ps->wfd_sep >= 0)
            (void)epoll_ctl(ps->epfd, EPOLL_CTL_DEL, ps->wfd_sep, NULL);
        ps->wfd_cur = ps->wfd_sep = -1;
        // Closed only when nothing of it is borrowed: not while the driver is in a callback
        // with a payload from it (the driver closes it when it returns).
        if (!ps->dispatching) {
            ps->ops->close(ps->pipe);
            ps->pipe = NULL;
        }
    }
    pthread_cond_broadcast(&ps->cv);
    wake_locked(ps);
}

// --- the peer's requests -------------------------------------------------------------------------

static const handler *
find_handler_locked(const mcl_pstream *ps, uint32_t channel, uint32_t type)
{
    const handler *best = NULL;
    int best_rank = 0;
    for (size_t i = 0; i < ps->nhandlers; i++) {
        const handler *h = &ps->handlers[i];
        bool ch = h->channel == channel, ca = h->channel == MCL_PSTREAM_ANY;
        bool ty = h->type == type, ta = h->type == MCL_PSTREAM_ANY;
        int rank = ch && ty ? 4 : ch && ta ? 3 : ca && ty ? 2 : ca && ta ? 1 : 0;
        if (rank > best_rank) {
            best = h;
            best_rank = rank;
        }
    }
    return best;
}

// Texts of refusals: the cs.packetstream ones where it has them.
static void
refuse_locked(mcl_pstream *ps, const mcl__pkt *k, mcl_pstream_status st, const char *text)
{
    ps->st.refused++;
    (void)send_response_locked(ps, k->channel, k->tag,
                               ps->codec == MCL__PS_CS ? MCL_PSTREAM_REJECTED : st, 0, NULL, 0,
                               text); // (out of memory: the stream is broken, see send_locked)
}

// A request of the peer: refused, or handed to its handler. Called with the lock held; may
// release it to run the handler.
static void
on_request_locked(mcl_pstream *ps, const mcl__pkt *k)
{
    ps->st.requests_received++;
    bool cs = ps->codec == MCL__PS_CS;
    char text[64];
    uint64_t key = key_of(k->channel, k->tag);
    if (ps->peer_erq || ps->closing) {
        refuse_locked(ps, k, MCL_PSTREAM_NO_MORE_REQUESTS,
                      cs             ? "requests no longer allowed"
                      : ps->peer_erq ? "requests after end-of-requests"
                                     : "shutting down");
        return;
    }
    if (mcl__u64map_get(&ps->in_by_key, key) != NULL) {
        snprintf(text, sizeof(text), "channel %u: tag already in use: %u", (unsigned)k->channel,
                 (unsigned)k->tag);
        refuse_locked(ps, k, MCL_PSTREAM_TAG_IN_USE, text);
        return;
    }
    if (cs && k->channel != 0) {
        refuse_locked(ps, k, MCL_PSTREAM_NOT_FOUND, "unknown channel %d");
        return;
    }
    if (ps->st.in_progress >= ps->opt.max_incoming) {
        snprintf(text, sizeof(text), "%u requests in progress already",
                 (unsigned)ps->opt.max_incoming);
        refuse_locked(ps, k, MCL_PSTREAM_RESOURCE_EXHAUSTED, text);
        return;
    }
    const handler *h = find_handler_locked(ps, k->channel, k->type);
    if (h == NULL) {
        refuse_locked(ps, k, MCL_PSTREAM_UNIMPLEMENTED, "no request handler");
        return;
    }
    mcl_pstream_request *rq = pool_get(&ps->rq_pool, &ps->rq_pooled, sizeof(*rq));
    if (rq == NULL || mcl__u64map_put(&ps->in_by_key, key, rq) != MCL_OK) {
        if (rq != NULL)
            rq_put(ps, rq);
        refuse_locked(ps, k, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    rq->ps = ps;
    rq->channel = k->channel;
    rq->tag = k->tag;
    rq->type = k->type;
    rq->flags = k->flags;
    rq->payload = k->len ? k->payload : NULL;
    rq->len = k->len;
    rq->in_table = true;
    atomic_init(&rq->refs, 2);      // the handle's, and this call's
    atomic_fetch_add(&ps->refs, 1); // the handle keeps the stream
    ps->st.in_progress++;
    mcl_pstream_handler fn = h->fn;
    void *user = h->user;
    pthread_mutex_unlock(&ps->lock);
    fn(ps, rq, user);
    pthread_mutex_lock(&ps->lock);
    rq->payload = NULL; // it was the pipe's buffer: gone with the next packet
    rq->len = 0;
    if (atomic_fetch_sub(&rq->refs, 1) == 1) // replied to inside the handler
        rq_put(ps, rq);
}

static void
on_cancel_locked(mcl_pstream *ps, const mcl__pkt *k)
{
    ps->st.cancels_received++;
    mcl_pstream_request *rq = mcl__u64map_get(&ps->in_by_key, key_of(k->channel, k->tag));
    if (rq == NULL || atomic_exchange(&rq->cancelled, true))
        return; // answered already, or cancelled twice
    mcl_pstream_cancel_cb cb = rq->cancel_cb;
    void *user = rq->cancel_user;
    if (cb == NULL) {
        rq->cancel_pending = true;
        return;
    }
    atomic_fetch_add(&rq->refs, 1); // a reply from another thread meanwhile must not free it
    pthread_mutex_unlock(&ps->lock);
    cb(rq, user);
    pthread_mutex_lock(&ps->lock);
    if (atomic_fetch_sub(&rq->refs, 1) == 1)
        rq_put(ps, rq);
}

static void
on_response_locked(mcl_pstream *ps, const mcl__pkt *k)
{
    uint64_t key = key_of(k->channel, k->tag);
    ps_out *o = mcl__u64map_get(&ps->out_by_key, key);
    if (o == NULL) {
        ps->st.unknown_responses++; // (counted, not logged: a stranger could flood the log)
        return;
    }
    mcl__u64map_del(&ps->out_by_key, key);
    mcl__heap_remove(&ps->deadlines, &o->hn);
    if (o->zombie) { // completed already (cancel, deadline): its tag is free again now
        ps->st.late_responses++;
        drop_out_locked(ps, o);
        return;
    }
    mcl__u64map_del(&ps->out_by_id, o->id);
    ps->st.in_flight--;
    ps->st.responses_received++;
    char small[128], *text = NULL;
    if (k->msglen > 0) {
        text = k->msglen < sizeof(small) ? small : mcl__alloc(k->msglen + 1);
        if (text != NULL) {
            memcpy(text, k->msg, k->msglen);
            text[k->msglen] = '\0';
        }
    }
    mcl_pstream_result r = {.status = (mcl_pstream_status)k->status,
                            .channel = k->channel,
                            .tag = k->tag,
                            .flags = k->flags,
                            .payload = k->len ? k->payload : NULL,
                            .len = k->len,
                            .message = text ? text : "",
                            .id = o->id};
    pthread_mutex_unlock(&ps->lock);
    deliver(ps, o, &r);
    if (text != NULL && text != small)
        mcl__free(text);
    pthread_mutex_lock(&ps->lock);
    pool_put(&ps->out_pool, &ps->out_pooled, o);
}

// The peer said EOF: this side's requests will not be answered; its own requests in progress
// still are, then this side says EOF too (cs.packetstream waits for it).
static void
on_eof_locked(mcl_pstream *ps)
{
    ps->peer_eof = true;
    fail_outs_locked(ps, MCL_PSTREAM_DISCONNECTED, "the peer sent EOF");
    if (!ps->closing) {
        ps->closing = true;
        ps->close_due = mcl__mono_ns() + (int64_t)ps->opt.close_ms * 1000000;
    }
}

// A one-way message of the peer: to the handler of its channel (else that of any channel), or
// counted and dropped.
static void
on_message_locked(mcl_pstream *ps, const mcl__pkt *k)
{
    ps->st.messages_received++;
    const msg_handler *h = NULL;
    for (size_t i = 0; i < ps->nmhandlers; i++)
        if (ps->mhandlers[i].channel == k->channel ||
            (h == NULL && ps->mhandlers[i].channel == MCL_PSTREAM_ANY))
            h = &ps->mhandlers[i];
    if (h == NULL) {
        ps->st.unhandled_messages++;
        return;
    }
    mcl_pstream_message_cb fn = h->fn;
    void *user = h->user;
    pthread_mutex_unlock(&ps->lock);
    fn(ps, k->channel, k->type, k->flags, k->len ? k->payload : NULL, k->len, user);
    pthread_mutex_lock(&ps->lock);
}

// One packet from the peer. Called with the lock held (released for callbacks).
static void
on_packet_locked(mcl_pstream *ps, const mcl__pkt *k)
{
    switch (k->kind) {
    case MCL__PK_REQUEST:
        on_request_locked(ps, k);
        break;
    case MCL__PK_RESPONSE:
        on_response_locked(ps, k);
        break;
    case MCL__PK_CANCEL:
        on_cancel_locked(ps, k);
        break;
    case MCL__PK_MESSAGE:
        on_message_locked(ps, k);
        break;
    case MCL__PK_ERQ:
        ps->peer_erq = true;
        break;
    case MCL__PK_EOF:
        on_eof_locked(ps);
        break;
    case MCL__PK_PING:
        send_control_locked(ps, MCL__PK_PONG, 0, k->tag, k->payload, k->len);
        break;
    default: // PONG: its arrival is all that counts
        break;
    }
}

// --- timers and ending ---------------------------------------------------------------------------

static void
fire_timers_locked(mcl_pstream *ps, int64_t now)
{
    mcl__heap_node *top;
    while (!ps->ended && (top = mcl__heap_top(&ps->deadlines)) != NULL && top->due <= now) {
        ps_out *o = (ps_out *)top; // hn is the first member
        if (o->zombie) {           // the peer never answered its cancel: give the tag up
            mcl__heap_remove(&ps->deadlines, &o->hn);
            mcl__u64map_del(&ps->out_by_key, key_of(o->channel, o->tag));
            drop_out_locked(ps, o);
            continue;
        }
        ps->st.timeouts++;
        bool native = ps->codec == MCL__PS_NATIVE;
        if (native) {
            send_control_locked(ps, MCL__PK_CANCEL, o->channel, o->tag, NULL, 0);
            ps->st.cancels_sent++;
        }
        complete_later_locked(ps, o, MCL_PSTREAM_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    if (ps->ended || ps->codec != MCL__PS_NATIVE)
        return;
    if (ps->opt.idle_ms > 0 && now - ps->last_rx >= (int64_t)ps->opt.idle_ms * 1000000) {
        char text[64];
        snprintf(text, sizeof(text), "nothing heard from the peer for %d ms", ps->opt.idle_ms);
        end_locked(ps, MCL_PSTREAM_DISCONNECTED, text);
        return;
    }
    if (ps->opt.ping_ms > 0 && now - ps->last_tx >= (int64_t)ps->opt.ping_ms * 1000000 &&
        !ps->eof_sent) {
        uint8_t stamp[8];
        mcl__put_be64(stamp, (uint64_t)now);
        send_control_locked(ps, MCL__PK_PING, 0, ++ps->ping_seq, stamp, sizeof(stamp));
        ps->last_tx = now; // (also when the send queue held it)
    }
}

// Moves an orderly close forward: ERQ, handlers done and output flushed, EOF, the peer's EOF.
static void
close_progress_locked(mcl_pstream *ps, int64_t now)
{
    if (ps->ended || !ps->closing)
        return;
    if (!ps->erq_sent) {
        send_control_locked(ps, MCL__PK_ERQ, 0, 0, NULL, 0);
        ps->erq_sent = true;
    }
    if (!ps->eof_sent && ps->st.in_progress == 0 && ps->qhead == NULL && !want_flush(ps)) {
        send_control_locked(ps, MCL__PK_EOF, 0, 0, NULL, 0);
        ps->eof_sent = true;
        flush_locked(ps);
    }
    if (ps->eof_sent && ps->peer_eof && ps->qhead == NULL && !want_flush(ps) && !ps->ended) {
        end_locked(ps, MCL_PSTREAM_OK, NULL);
        return;
    }
    if (now >= ps->close_due)
        end_locked(ps, MCL_PSTREAM_DISCONNECTED, "the orderly close took too long");
}

// --- dispatch ------------------------------------------------------------------------------------

// Logs why the connection ended, once, with the lock released (a log handler may call in).
static void
log_end_locked(mcl_pstream *ps)
{
    if (!ps->ended || ps->end_logged)
        return;
    ps->end_logged = true;
    if (ps->end_text[0] == '\0')
        return;
    pthread_mutex_unlock(&ps->lock);
    mcl__log(MCL_LOG_INFO, "pstream", "%s: connection ended: %s", ps->url, ps->end_text);
    pthread_mutex_lock(&ps->lock);
}

static void
tell_closed_locked(mcl_pstream *ps)
{
    log_end_locked(ps);
    if (!ps->ended || ps->closed_told || ps->dhead != NULL)
        return;
    ps->closed_told = true;
    mcl_pstream_closed_cb cb = ps->closed_cb;
    void *user = ps->closed_user;
    mcl_pstream_status why = ps->end_why;
    if (cb == NULL)
        return;
    pthread_mutex_unlock(&ps->lock);
    cb(ps, why, user);
    pthread_mutex_lock(&ps->lock);
}

// The body of every dispatch, with the lock held and `dispatching` set by the caller.
static void
dispatch_locked(mcl_pstream *ps)
{
    if (ps->wake_sig) {
        drain_fd(ps->wake);
        ps->wake_sig = false;
    }
    if (mcl__mono_ns() >= ps->timer_due) { // it fired (or is about to: then it fires once more)
        drain_fd(ps->tfd);
        ps->timer_due = INT64_MAX; // re-armed below
    }
    (void)end_if_broken_locked(ps);
    run_completions_locked(ps);
    bool more = false, dry = false;
    uint64_t sends_at_dry = 0;
    char why[WHY];
    for (unsigned n = 0; !ps->ended && ps->pipe != NULL; n++) {
        if (n == BATCH) {
            more = true;
            break;
        }
        flush_locked(ps);
        if (end_if_broken_locked(ps) || read_paused(ps))
            break;
        const uint8_t *data;
        size_t len;
        why[0] = '\0';
        mcl_err rv = ps->ops->recv(ps->pipe, &data, &len, ps->max_packet, why, sizeof(why));
        if (rv == MCL_EAGAIN) {
            dry = true; // (the pipe's rfd is re-armed: no need to ask `pending` unless we send)
            sends_at_dry = ps->sends;
            break;
        }
        if (rv == MCL_ECLOSED && ps->peer_eof) { // it said EOF, then closed: as it may
            ps->peer_closed = true;
            break;
        }
        if (rv != MCL_OK) {
            if (rv == MCL_EPROTO)
                ps->st.protocol_errors++;
            end_locked(ps, rv == MCL_EPROTO ? MCL_PSTREAM_PROTOCOL_ERROR : MCL_PSTREAM_DISCONNECTED,
                       why[0]              ? why
                       : rv == MCL_ECLOSED ? "the peer closed the connection"
                                           : mcl_strerror(rv));
            break;
        }
        ps->last_rx = mcl__coarse_ns();
        ps->st.bytes_received += len;
        mcl__pkt k;
        if (mcl__pkt_decode(ps->codec, data, len, &k, why, sizeof(why)) != MCL_OK) {
            ps->st.protocol_errors++;
            end_locked(ps, MCL_PSTREAM_PROTOCOL_ERROR, why);
            break;
        }
        if (ps->peer_eof) { // EOF means nothing more: read (a closed or flooding peer must
            ps->st.protocol_errors++; // not make this side spin or buffer), and refuse
            end_locked(ps, MCL_PSTREAM_PROTOCOL_ERROR, "a packet after the peer's EOF");
            break;
        }
        on_packet_locked(ps, &k);
        run_completions_locked(ps);
    }
    int64_t now = mcl__mono_ns();
    fire_timers_locked(ps, now);
    close_progress_locked(ps, now);
    if (!ps->ended)
        flush_locked(ps);
    (void)end_if_broken_locked(ps);
    run_completions_locked(ps);
    if (ps->ended && ps->pipe != NULL) { // ended while a callback had its buffer: close it now
        ps->ops->close(ps->pipe);
        ps->pipe = NULL;
    }
    tell_closed_locked(ps);
    if (more && read_paused(ps))
        more = false; // (the descriptor says when writing can go on)
    if (!more && !ps->ended && ps->pipe != NULL && ps->ops->pending != NULL && !read_paused(ps) &&
        (!dry || ps->sends != sends_at_dry) && ps->ops->pending(ps->pipe))
        more = true; // an rfd that does not say so again: come back
    if (more || ps->dhead != NULL)
        wake_locked(ps);
    if (!ps->ended)
        arm_write_locked(ps);
    arm_timer_locked(ps, now);
}

static bool
on_driver_thread(const mcl_pstream *ps)
{
    pthread_t me = pthread_self();
    if (ps->dispatching && pthread_equal(ps->dispatcher, me))
        return true;
    if (ps->driver == D_THREAD && pthread_equal(ps->thread, me))
        return true;
    if (ps->driver == D_REACTOR && mcl_reactor_in_loop(ps->reactor))
        return true;
    return ps->server != NULL && mcl__pstream_server_driving(ps->server);
}

bool
mcl__pstream_on_driver(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    bool here = on_driver_thread(ps);
    pthread_mutex_unlock(&ps->lock);
    return here;
}

// Dispatches unless another thread does. Returns false then.
static bool
try_dispatch(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    if (ps->dispatching) {
        pthread_mutex_unlock(&ps->lock);
        return false;
    }
    ps->dispatching = true;
    ps->dispatcher = pthread_self();
    dispatch_locked(ps);
    ps->dispatching = false;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->lock);
    return true;
}

mcl_err
mcl_pstream_dispatch(mcl_pstream *ps)
{
    if (ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    bool mine = ps->driver == D_NONE ||
                (ps->driver == D_REACTOR && mcl_reactor_in_loop(ps->reactor)) ||
                (ps->driver == D_THREAD && pthread_equal(ps->thread, pthread_self()));
    pthread_mutex_unlock(&ps->lock);
    if (!mine || ps->server != NULL)
        return MCL_ESTATE;
    return try_dispatch(ps) ? MCL_OK : MCL_ESTATE;
}

void
mcl__pstream_server_dispatch(mcl_pstream *ps)
{
    (void)try_dispatch(ps);
}

// Waits up to ms for the stream's descriptor (a caller that drives it itself).
static void
wait_fd(mcl_pstream *ps, int ms)
{
    // The descriptors themselves rather than the epoll one that holds them: a wake-up through
    // a nested epoll costs a few microseconds more, which a round trip on a socketpair shows.
    struct pollfd p[4];
    nfds_t n = 0;
    pthread_mutex_lock(&ps->lock);
    if (!ps->ended && ps->pipe != NULL) { // what the epoll descriptor holds (arm_write_locked)
        short rev = (short)(((ps->rfd_ev & EPOLLIN) ? POLLIN : 0) |
                            ((ps->rfd_ev & EPOLLOUT) ? POLLOUT : 0));
        if (rev != 0)
            p[n++] = (struct pollfd){.fd = ps->rfd_cur, .events = rev};
        if (ps->wfd_sep >= 0)
            p[n++] = (struct pollfd){.fd = ps->wfd_sep,
                                     .events = (ps->wsep_ev & EPOLLOUT) ? POLLOUT : POLLIN};
    }
    p[n++] = (struct pollfd){.fd = ps->wake, .events = POLLIN};
    p[n++] = (struct pollfd){.fd = ps->tfd, .events = POLLIN};
    pthread_mutex_unlock(&ps->lock);
    while (poll(p, n, ms) < 0 && errno == EINTR)
        ;
}

static void *
driver_thread(void *arg)
{
    mcl_pstream *ps = arg;
    while (!atomic_load(&ps->stop)) {
        struct epoll_event ev[8];
        int n = epoll_wait(ps->epfd, ev, 8, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (atomic_load(&ps->stop))
            break;
        (void)try_dispatch(ps);
    }
    return NULL;
}

// --- construction --------------------------------------------------------------------------------

mcl_err
mcl__pstream_resolve_options(mcl_pstream_options *o, const mcl_pstream_options *in, size_t url_max)
{
    if (in != NULL)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (o->codec != MCL_PSTREAM_NATIVE && o->codec != MCL_PSTREAM_CS)
        return MCL_EINVAL;
    if (o->timeout_ms == 0)
        o->timeout_ms = DEF_TIMEOUT_MS;
    if (o->max_packet == 0)
        o->max_packet = url_max ? url_max : DEF_MAX_PACKET;
    if (o->send_queue == 0)
        o->send_queue = DEF_SEND_QUEUE;
    if (o->max_incoming == 0)
        o->max_incoming = DEF_MAX_INCOMING;
    if (o->ping_ms == 0)
        o->ping_ms = DEF_PING_MS;
    if (o->idle_ms == 0)
        o->idle_ms = DEF_IDLE_MS;
    if (o->close_ms <= 0)
        o->close_ms = DEF_CLOSE_MS;
    if (o->spin_us == 0)
        o->spin_us = DEF_SPIN_US;
    if (o->spin_us < -1 || o->spin_us > 1000000)
        return MCL_EINVAL;
    if (url_max > 0 && o->max_packet > url_max + MCL__PW_HDR)
        o->max_packet = url_max + MCL__PW_HDR; // the transport refuses more (zmq: ZMQ_MAXMSGSIZE)
    if (o->timeout_ms < -1 || o->ping_ms < -1 || o->idle_ms < -1 || o->max_packet < MCL__PW_HDR ||
        o->max_packet > UINT32_MAX) // (the u32 length in front of a packet on a byte stream)
        return MCL_EINVAL;
    return MCL_OK;
}

static void
ps_destroy(mcl_pstream *ps)
{
    if (ps->pipe != NULL)
        ps->ops->close(ps->pipe);
    for (qpkt *q = ps->qhead, *n; q != NULL; q = n) {
        n = q->next;
        mcl__free(q);
    }
    mcl__u64map_fini(&ps->out_by_id);
    mcl__u64map_fini(&ps->out_by_key);
    mcl__u64map_fini(&ps->in_by_key);
    mcl__heap_fini(&ps->deadlines);
    mcl__free(ps->handlers);
    mcl__free(ps->mhandlers);
    pool_free(&ps->rq_pool);
    pool_free(&ps->out_pool);
    if (ps->epfd >= 0)
        close(ps->epfd);
    if (ps->wake >= 0)
        close(ps->wake);
    if (ps->tfd >= 0)
        close(ps->tfd);
    pthread_cond_destroy(&ps->cv);
    pthread_mutex_destroy(&ps->lock);
    mcl__free(ps);
}

static void
ps_unref(mcl_pstream *ps)
{
    if (atomic_fetch_sub(&ps->refs, 1) == 1)
        ps_destroy(ps);
}

static mcl_err
ps_new(mcl_pstream **psp, const mcl__pipe_ops *ops, mcl__pipe *pipe, const char *url, int codec,
       const mcl_pstream_options *o, size_t max_packet)
{
    *psp = NULL;
    mcl_pstream *ps = mcl__zalloc(sizeof(*ps));
    if (ps == NULL)
        return MCL_ENOMEM;
    ps->epfd = ps->wake = ps->tfd = ps->wfd_cur = ps->wfd_sep = -1;
    pthread_condattr_t ca;
    bool cv = false;
    if (pthread_condattr_init(&ca) == 0) {
        cv = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&ps->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cv || pthread_mutex_init(&ps->lock, NULL) != 0) {
        if (cv)
            pthread_cond_destroy(&ps->cv);
        mcl__free(ps);
        return MCL_ESYS;
    }
    atomic_init(&ps->refs, 1);
    ps->opt = *o;
    ps->codec = codec == MCL_PSTREAM_CS ? MCL__PS_CS : MCL__PS_NATIVE;
    if (ps->codec == MCL__PS_CS) {
        ps->opt.ping_ms = -1; // cs.packetstream has no ping: a quiet link is not a dead one
        ps->opt.idle_ms = -1;
        ps->next_tag = 2; // tags 0 and 1 are EOF and ERQ; tags are never reused
    }
    ps->max_packet = max_packet;
    ps->ops = ops;
    ps->pipe = pipe;
    snprintf(ps->url, sizeof(ps->url), "%s", url);
    if (ops->peer != NULL)
        ops->peer(pipe, ps->peer, sizeof(ps->peer));
    mcl__u64map_init(&ps->out_by_id);
    mcl__u64map_init(&ps->out_by_key);
    mcl__u64map_init(&ps->in_by_key);
    mcl__heap_init(&ps->deadlines);
    ps->timer_due = INT64_MAX;
    ps->last_rx = ps->last_tx = mcl__mono_ns();
    ps->epfd = epoll_create1(EPOLL_CLOEXEC);
    ps->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ps->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ps->epfd < 0 || ps->wake < 0 || ps->tfd < 0) {
        int e = errno;
        ps->pipe = NULL; // the caller still owns it
        ps_destroy(ps);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "pstream", "%s: descriptors: %s", url,
                         strerror(e));
    }
    ps->rfd_cur = ops->rfd(pipe);
    ps->rfd_ev = EPOLLIN;
    epoll_set(ps, EPOLL_CTL_ADD, ps->rfd_cur, EPOLLIN, EP_RFD);
    epoll_set(ps, EPOLL_CTL_ADD, ps->wake, EPOLLIN, EP_WAKE);
    epoll_set(ps, EPOLL_CTL_ADD, ps->tfd, EPOLLIN, EP_TIMER);
    pthread_mutex_lock(&ps->lock);
    if (ps->codec == MCL__PS_NATIVE && ps->opt.ping_ms > 0) // the first packet: a server that
        send_control_locked(ps, MCL__PK_PING, 0, ++ps->ping_seq, NULL, 0); // sees nothing else
    arm_timer_locked(ps, mcl__mono_ns());
    pthread_mutex_unlock(&ps->lock);
    *psp = ps;
    return MCL_OK;
}

mcl_err
mcl_pstream_dial(mcl_pstream **psp, const char *url, const mcl_pstream_options *options)
{
    if (psp != NULL)
        *psp = NULL;
    if (psp == NULL || url == NULL)
        return MCL_EINVAL;
    mcl_connection *c = NULL;
    char err[256];
    mcl_err rv = mcl_connection_parse(&c, url, err, sizeof(err));
    if (rv != MCL_OK)
        return rv;
    mcl_pstream_options o;
    if ((rv = mcl__pstream_resolve_options(&o, options, c->maxmsg)) != MCL_OK) {
        mcl_connection_free(c);
        return rv;
    }
    if (o.codec == MCL_PSTREAM_CS || c->tp->pipe == NULL) {
        rv = mcl__fail(MCL_EURL, NULL, 0, "pstream", "%s: %s", c->url,
                       o.codec == MCL_PSTREAM_CS
                           ? "the cs.packetstream format goes over descriptors only"
                           : "this transport has no packet streams (use zmq+tcp, zmq+ipc, "
                             "inproc, or descriptors)");
        mcl_connection_free(c);
        return rv;
    }
    mcl__pipe *pipe;
    if ((rv = c->tp->pipe->dial(&pipe, c)) != MCL_OK) {
        mcl_connection_free(c);
        return rv;
    }
    rv = ps_new(psp, c->tp->pipe, pipe, c->url, o.codec, &o, o.max_packet);
    if (rv != MCL_OK)
        c->tp->pipe->close(pipe);
    mcl_connection_free(c);
    return rv;
}

mcl_err
mcl_pstream_open_fd(mcl_pstream **psp, int rfd, int wfd, const mcl_pstream_options *options)
{
    if (psp != NULL)
        *psp = NULL;
    if (psp == NULL || rfd < 0 || wfd < 0)
        return MCL_EINVAL;
    mcl_pstream_options o;
    mcl_err rv = mcl__pstream_resolve_options(&o, options, 0);
    if (rv != MCL_OK)
        return rv;
    mcl__pipe *pipe;
    int framing = o.codec == MCL_PSTREAM_CS ? MCL__FRAME_BSUINT : MCL__FRAME_U32;
    if ((rv = mcl__fdpipe_open(&pipe, rfd, wfd, framing, (size_t)1 << 20)) != MCL_OK)
        return rv;
    char name[64];
    snprintf(name, sizeof(name), "fd:%d,%d", rfd, wfd);
    rv = ps_new(psp, &mcl__fd_pipe_ops, pipe, name, o.codec, &o, o.max_packet);
    if (rv != MCL_OK)
        mcl__fd_pipe_ops.close(pipe);
    return rv;
}

mcl_err
mcl__pstream_accepted(mcl_pstream **psp, mcl_pstream_server *srv, const mcl__pipe_ops *ops,
                      mcl__pipe *pipe, const char *url, const mcl_pstream_options *o,
                      size_t max_packet)
{
    mcl_err rv = ps_new(psp, ops, pipe, url, o->codec, o, max_packet);
    if (rv == MCL_OK) {
        (*psp)->server = srv;
        (*psp)->driver = D_SERVER;
    }
    return rv;
}

// --- API -----------------------------------------------------------------------------------------

mcl_err
mcl_pstream_handle(mcl_pstream *ps, uint32_t channel, uint32_t type, mcl_pstream_handler fn,
                   void *user)
{
    if (ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    size_t i = 0;
    while (i < ps->nhandlers &&
           !(ps->handlers[i].channel == channel && ps->handlers[i].type == type))
        i++;
    mcl_err rv = MCL_OK;
    if (fn == NULL) {
        if (i < ps->nhandlers)
            ps->handlers[i] = ps->handlers[--ps->nhandlers];
    } else if (i < ps->nhandlers) {
        ps->handlers[i].fn = fn;
        ps->handlers[i].user = user;
    } else {
        handler *nh = mcl__realloc(ps->handlers, (ps->nhandlers + 1) * sizeof(*nh));
        if (nh == NULL) {
            rv = MCL_ENOMEM;
        } else {
            ps->handlers = nh;
            nh[ps->nhandlers++] = (handler){channel, type, fn, user};
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return rv;
}

mcl_err
mcl_pstream_handle_messages(mcl_pstream *ps, uint32_t channel, mcl_pstream_message_cb fn,
                            void *user)
{
    if (ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    size_t i = 0;
    while (i < ps->nmhandlers && ps->mhandlers[i].channel != channel)
        i++;
    mcl_err rv = MCL_OK;
    if (fn == NULL) {
        if (i < ps->nmhandlers)
            ps->mhandlers[i] = ps->mhandlers[--ps->nmhandlers];
    } else if (i < ps->nmhandlers) {
        ps->mhandlers[i].fn = fn;
        ps->mhandlers[i].user = user;
    } else {
        msg_handler *nh = mcl__realloc(ps->mhandlers, (ps->nmhandlers + 1) * sizeof(*nh));
        if (nh == NULL) {
            rv = MCL_ENOMEM;
        } else {
            ps->mhandlers = nh;
            nh[ps->nmhandlers++] = (msg_handler){channel, fn, user};
        }
    }
    pthread_mutex_unlock(&ps->lock);
    return rv;
}

mcl_err
mcl__pstream_send2(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                   const void *pre, size_t prelen, const void *payload, size_t len)
{
    if (ps == NULL || (payload == NULL && len > 0) || (pre == NULL && prelen > 0))
        return MCL_EINVAL;
    if (ps->codec == MCL__PS_CS)
        return MCL_ENOTSUP;
    if (prelen + len + MCL__PW_HDR > ps->max_packet)
        return MCL_EMSGSIZE;
    mcl__pkt k = {.kind = MCL__PK_MESSAGE,
                  .channel = channel,
                  .type = type,
                  .flags = flags,
                  .pre = pre,
                  .prelen = prelen,
                  .payload = payload,
                  .len = len};
    pthread_mutex_lock(&ps->lock);
    mcl_err rv = ps->ended ? MCL_ECLOSED : ps->eof_sent ? MCL_ESTATE : send_locked(ps, &k, false);
    if (rv == MCL_OK)
        ps->st.messages_sent++;
    pthread_mutex_unlock(&ps->lock);
    return rv;
}

mcl_err
mcl_pstream_send(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                 const void *payload, size_t len)
{
    return mcl__pstream_send2(ps, channel, type, flags, NULL, 0, payload, len);
}

size_t
mcl__pstream_send_room(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    size_t out = out_bytes(ps);
    size_t room = out < ps->opt.send_queue ? ps->opt.send_queue - out : 0;
    pthread_mutex_unlock(&ps->lock);
    return room;
}

uint32_t
mcl_pstream_request_channel(const mcl_pstream_request *rq)
{
    return rq ? rq->channel : 0;
}
uint32_t
mcl_pstream_request_tag(const mcl_pstream_request *rq)
{
    return rq ? rq->tag : 0;
}
uint32_t
mcl_pstream_request_type(const mcl_pstream_request *rq)
{
    return rq ? rq->type : 0;
}
uint32_t
mcl_pstream_request_flags(const mcl_pstream_request *rq)
{
    return rq ? rq->flags : 0;
}
const void *
mcl_pstream_request_payload(const mcl_pstream_request *rq, size_t *len)
{
    if (len != NULL)
        *len = rq ? rq->len : 0;
    return rq ? rq->payload : NULL;
}
bool
mcl_pstream_request_cancelled(const mcl_pstream_request *rq)
{
    return rq != NULL && atomic_load(&rq->cancelled);
}

mcl_err
mcl_pstream_request_on_cancel(mcl_pstream_request *rq, mcl_pstream_cancel_cb cb, void *user)
{
    if (rq == NULL || cb == NULL)
        return MCL_EINVAL;
    mcl_pstream *ps = rq->ps;
    pthread_mutex_lock(&ps->lock);
    rq->cancel_cb = cb;
    rq->cancel_user = user;
    bool now = rq->cancel_pending;
    rq->cancel_pending = false;
    pthread_mutex_unlock(&ps->lock);
    if (now)
        cb(rq, user);
    return MCL_OK;
}

mcl_err
mcl_pstream_reply(mcl_pstream_request *rq, mcl_pstream_status status, uint32_t flags,
                  const void *payload, size_t len, const char *message)
{
    if (rq == NULL)
        return MCL_EINVAL;
    mcl_pstream *ps = rq->ps;
    mcl_err rv = MCL_OK;
    if ((payload == NULL && len > 0) ||
        (message != NULL &&
         (strlen(message) > 65535 || !mcl__utf8_ok((const uint8_t *)message, strlen(message))))) {
        rv = MCL_EINVAL; // the request still needs an answer: say so instead
        payload = NULL;
        len = 0;
        status = MCL_PSTREAM_INTERNAL;
        message = "the handler gave a malformed reply";
    }
    pthread_mutex_lock(&ps->lock);
    if (!rq->in_table || ps->ended || ps->broken) {
        if (rv == MCL_OK)
            rv = MCL_ECLOSED;
    } else {
        mcl__u64map_del(&ps->in_by_key, key_of(rq->channel, rq->tag));
        ps->st.in_progress--;
        size_t total = len + MCL__PW_HDR + (message ? strlen(message) : 0);
        mcl_err sr;
        if (total > ps->max_packet) { // too large to send: the peer gets a status instead
            sr = send_response_locked(ps, rq->channel, rq->tag, MCL_PSTREAM_RESOURCE_EXHAUSTED, 0,
                                      NULL, 0, "the response is larger than the largest packet");
            if (rv == MCL_OK)
                rv = MCL_EMSGSIZE;
        } else {
            sr = send_response_locked(ps, rq->channel, rq->tag, status, flags, payload, len,
                                      message);
        }
        if (sr != MCL_OK && rv == MCL_OK) // (the connection ends: the peer learns of it so)
            rv = sr == MCL_ENOMEM ? MCL_ENOMEM : MCL_ECLOSED;
        if (!ps->dispatching)
            wake_locked(ps); // an orderly close may be waiting for this one
    }
    rq->in_table = false;
    if (atomic_fetch_sub(&rq->refs, 1) == 1) // (both references are dropped under the lock)
        rq_put(ps, rq);
    pthread_mutex_unlock(&ps->lock);
    ps_unref(ps);
    return rv;
}

// A request's packet; for_call: a blocking call waits next (see sent_check_locked).
static mcl_err
send_request_locked(mcl_pstream *ps, const mcl__pkt *k, bool for_call)
{
    ps->sending_for_call = for_call;
    mcl_err rv = send_locked(ps, k, false);
    ps->sending_for_call = false;
    return rv;
}

static mcl_err
submit(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
       size_t len, int timeout_ms, mcl_pstream_done_cb cb, void *user, mcl_promise *promise,
       call_wait *waiter, uint64_t *idp)
{
    if (idp != NULL)
        *idp = 0;
    if (ps == NULL || (payload == NULL && len > 0) || timeout_ms < -1)
        return MCL_EINVAL;
    if (ps->codec == MCL__PS_CS && channel != 0)
        return mcl__fail(MCL_EINVAL, NULL, 0, "pstream", "%s: cs.packetstream has channel 0 only",
                         ps->url);
    if (len + MCL__PW_HDR > ps->max_packet)
        return MCL_EMSGSIZE;
    pthread_mutex_lock(&ps->lock);
    mcl_err rv = MCL_OK;
    if (ps->ended)
        rv = MCL_ECLOSED;
    else if (ps->erq_sent || ps->closing || ps->peer_eof)
        rv = MCL_ESTATE;
    if (rv != MCL_OK) {
        pthread_mutex_unlock(&ps->lock);
        return rv;
    }
    ps_out *o = pool_get(&ps->out_pool, &ps->out_pooled, sizeof(*o));
    if (o == NULL) {
        pthread_mutex_unlock(&ps->lock);
        return MCL_ENOMEM;
    }
    // A tag no request of this connection holds (cs: never one used before).
    uint32_t tag = ps->next_tag;
    for (uint64_t tries = 0; mcl__u64map_get(&ps->out_by_key, key_of(channel, tag)) != NULL;
         tries++) {
        if (tries > 1000000 || (ps->codec == MCL__PS_CS && tag == UINT32_MAX)) {
            pool_put(&ps->out_pool, &ps->out_pooled, o);
            pthread_mutex_unlock(&ps->lock);
            return MCL_EAGAIN;
        }
        tag++;
    }
    o->id = ++ps->next_id;
    o->channel = channel;
    o->tag = tag;
    o->cb = cb;
    o->user = user;
    o->promise = promise;
    o->waiter = waiter;
    int ms = timeout_ms == 0 ? ps->opt.timeout_ms : timeout_ms;
    int64_t now = ms > 0 ? mcl__mono_ns() : 0;
    if (ms > 0) {
        o->has_deadline = true;
        o->hn.due = now + (int64_t)ms * 1000000;
    }
    mcl__pkt k = {.kind = MCL__PK_REQUEST,
                  .channel = channel,
                  .tag = tag,
                  .type = type,
                  .flags = flags,
                  .payload = payload,
                  .len = len};
    if (mcl__u64map_put(&ps->out_by_key, key_of(channel, tag), o) != MCL_OK ||
        mcl__u64map_put(&ps->out_by_id, o->id, o) != MCL_OK ||
        (o->has_deadline && mcl__heap_push(&ps->deadlines, &o->hn) != MCL_OK)) {
        rv = MCL_ENOMEM;
    } else if ((rv = send_request_locked(ps, &k, waiter != NULL)) == MCL_OK) {
        ps->next_tag = tag + 1;
        ps->st.requests_sent++;
        ps->st.in_flight++;
        if (o->has_deadline && !ps->dispatching && o->hn.due < ps->timer_due)
            arm_timer_locked(ps, now); // the earliest deadline now
        if (idp != NULL)
            *idp = o->id;
        pthread_mutex_unlock(&ps->lock);
        return MCL_OK;
    }
    mcl__heap_remove(&ps->deadlines, &o->hn);
    mcl__u64map_del(&ps->out_by_id, o->id);
    mcl__u64map_del(&ps->out_by_key, key_of(channel, tag));
    pool_put(&ps->out_pool, &ps->out_pooled, o);
    pthread_mutex_unlock(&ps->lock);
    return rv;
}

mcl_err
mcl_pstream_submit(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                   const void *payload, size_t len, int timeout_ms, mcl_pstream_done_cb cb,
                   void *user, uint64_t *id)
{
    return submit(ps, channel, type, flags, payload, len, timeout_ms, cb, user, NULL, NULL, id);
}

// What a promise's canceller needs: the stream (a reference, so that a cancel after
// mcl_pstream_free() finds an empty table rather than freed memory) and the request.
typedef struct promise_ctx {
    mcl_pstream *ps;
    uint64_t id;
} promise_ctx;

static void
cancel_promise(mcl_promise *p, void *user)
{
    (void)p;
    promise_ctx *c = user;
    (void)mcl_pstream_cancel(c->ps, c->id); // MCL_ENOENT: it completed meanwhile
}

static void
promise_ctx_free(void *user)
{
    promise_ctx *c = user;
    ps_unref(c->ps);
    mcl__free(c);
}

mcl_err
mcl_pstream_submit_promise(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                           const void *payload, size_t len, int timeout_ms, mcl_promise *p)
{
    if (p == NULL)
        return MCL_EINVAL;
    promise_ctx *c = mcl__alloc(sizeof(*c)); // first: after the submit, nothing may fail
    if (c == NULL)
        return MCL_ENOMEM;
    mcl_promise_ref(p); // the request's, until it settles the promise
    mcl_err rv =
        submit(ps, channel, type, flags, payload, len, timeout_ms, NULL, NULL, p, NULL, &c->id);
    if (rv != MCL_OK) {
        mcl_promise_unref(p);
        mcl__free(c);
        return rv;
    }
    atomic_fetch_add(&ps->refs, 1);
    c->ps = ps;
    uint64_t id = c->id;
    (void)mcl__promise_set_canceller_owned(p, cancel_promise, c, promise_ctx_free);
    mcl_err st;
    if (mcl_promise_settled(p, &st, NULL) && st == MCL_ECANCELED) // before it had a canceller
        (void)mcl_pstream_cancel(ps, id);
    return MCL_OK;
}

static mcl_err call_held(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                         const void *payload, size_t len, int timeout_ms, mcl_pstream_result **out);

// Blocking calls and closes hold a reference for as long as they wait: whoever completes them
// (a server reaping a connection, a free on another thread) may drop the stream meanwhile.
mcl_err
mcl_pstream_call(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags,
                 const void *payload, size_t len, int timeout_ms, mcl_pstream_result **out)
{
    if (out != NULL)
        *out = NULL;
    if (ps == NULL)
        return MCL_EINVAL;
    atomic_fetch_add(&ps->refs, 1);
    mcl_err rv = call_held(ps, channel, type, flags, payload, len, timeout_ms, out);
    ps_unref(ps);
    return rv;
}

static mcl_err
call_held(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
          size_t len, int timeout_ms, mcl_pstream_result **out)
{
    if (out != NULL)
        *out = NULL;
    if (ps == NULL || out == NULL || timeout_ms < -1)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    bool driver_here = on_driver_thread(ps);
    bool self_driven = ps->driver == D_NONE;
    pthread_mutex_unlock(&ps->lock);
    if (driver_here)
        return MCL_ESTATE;
    int ms = timeout_ms == 0 ? ps->opt.timeout_ms : timeout_ms;
    int64_t deadline = ms < 0 ? INT64_MAX : mcl__mono_ns() + (int64_t)ms * 1000000;
    call_wait w = {0};
    mcl_err rv;
    for (;;) { // room in the send queue, within the same time
        int left_ms = timeout_ms;
        if (ms >= 0) { // what is left of the deadline (the first try: all of it)
            int64_t left = deadline - mcl__mono_ns();
            left_ms = left <= 0 ? 1 : (int)((left + 999999) / 1000000);
        }
        rv = submit(ps, channel, type, flags, payload, len, left_ms, NULL, NULL, NULL, &w, NULL);
        if (rv != MCL_EAGAIN)
            break;
        int64_t left = deadline - mcl__mono_ns();
        if (left <= 0)
            return MCL_ETIMEDOUT;
        if (self_driven) {
            (void)try_dispatch(ps);
            wait_fd(ps, left > 100000000 ? 100 : (int)(left / 1000000) + 1);
        } else {
            pthread_mutex_lock(&ps->lock);
            struct timespec ts;
            int64_t until = mcl__mono_ns() + (left > 100000000 ? 100000000 : left);
            ts.tv_sec = (time_t)(until / 1000000000);
            ts.tv_nsec = (long)(until % 1000000000);
            pthread_cond_timedwait(&ps->cv, &ps->lock, &ts);
            pthread_mutex_unlock(&ps->lock);
        }
    }
    if (rv != MCL_OK)
        return rv;
    // A blocking call looks for its answer for spin_us before it sleeps: on a virtual machine
    // above all, a sleeping thread (and its idle CPU) takes longer to wake than a round trip
    // on this host takes.
    int64_t spin_until = mcl__mono_ns() + (ps->opt.spin_us > 0 ? ps->opt.spin_us * 1000LL : 0);
    pthread_mutex_lock(&ps->lock);
    while (!w.done) {
        if (self_driven && !ps->dispatching) { // wait, then read: the answer cannot be here yet
            pthread_mutex_unlock(&ps->lock);
            if (mcl__mono_ns() < spin_until)
                wait_fd(ps, 0); // (a moment of polling first, as below)
            else
                wait_fd(ps, 100);
            (void)try_dispatch(ps);
            pthread_mutex_lock(&ps->lock);
        } else {
            // Another thread drives the stream: look for the answer (as above) before sleeping.
            if (mcl__mono_ns() < spin_until) {
                pthread_mutex_unlock(&ps->lock);
                while (!atomic_load_explicit(&w.done, memory_order_acquire) &&
                       mcl__mono_ns() < spin_until)
                    ;
                pthread_mutex_lock(&ps->lock);
                continue;
            }
            struct timespec ts;
            int64_t until = mcl__mono_ns() + 100000000;
            ts.tv_sec = (time_t)(until / 1000000000);
            ts.tv_nsec = (long)(until % 1000000000);
            pthread_cond_timedwait(&ps->cv, &ps->lock, &ts);
        }
    }
    pthread_mutex_unlock(&ps->lock);
    if (w.err != MCL_OK)
        return w.err;
    *out = w.res;
    return MCL_OK;
}

mcl_err
mcl_pstream_cancel(mcl_pstream *ps, uint64_t id)
{
    if (ps == NULL || id == 0)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    ps_out *o = mcl__u64map_get(&ps->out_by_id, id);
    if (o == NULL) {
        pthread_mutex_unlock(&ps->lock);
        return MCL_ENOENT;
    }
    bool native = ps->codec == MCL__PS_NATIVE;
    if (native) {
        send_control_locked(ps, MCL__PK_CANCEL, o->channel, o->tag, NULL, 0);
        ps->st.cancels_sent++;
    }
    // cs: no cancel on the wire; the answer that comes later is dropped (tags never repeat).
    complete_later_locked(ps, o, MCL_PSTREAM_CANCELLED, "cancelled");
    pthread_mutex_unlock(&ps->lock);
    return MCL_OK;
}

mcl_err
mcl_pstream_end_requests(mcl_pstream *ps)
{
    if (ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    mcl_err rv = ps->ended ? MCL_ECLOSED : MCL_OK;
    if (rv == MCL_OK && !ps->erq_sent) {
        send_control_locked(ps, MCL__PK_ERQ, 0, 0, NULL, 0);
        ps->erq_sent = true;
    }
    pthread_mutex_unlock(&ps->lock);
    return rv;
}

mcl_err
mcl_pstream_on_closed(mcl_pstream *ps, mcl_pstream_closed_cb cb, void *user)
{
    if (ps == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    ps->closed_cb = cb;
    ps->closed_user = user;
    pthread_mutex_unlock(&ps->lock);
    return MCL_OK;
}

static mcl_err
begin_close(mcl_pstream *ps, int timeout_ms)
{
    pthread_mutex_lock(&ps->lock);
    if (ps->ended) {
        pthread_mutex_unlock(&ps->lock);
        return MCL_ECLOSED;
    }
    int ms = timeout_ms > 0 ? timeout_ms : ps->opt.close_ms;
    int64_t due = mcl__mono_ns() + (int64_t)ms * 1000000;
    if (!ps->closing || due < ps->close_due)
        ps->close_due = due;
    ps->closing = true;
    wake_locked(ps);
    pthread_mutex_unlock(&ps->lock);
    return MCL_OK;
}

void
mcl__pstream_begin_close(mcl_pstream *ps, int timeout_ms)
{
    (void)begin_close(ps, timeout_ms);
}

mcl_err
mcl_pstream_shutdown(mcl_pstream *ps)
{
    return ps == NULL ? MCL_EINVAL : begin_close(ps, 0);
}

static mcl_err close_held(mcl_pstream *ps, int timeout_ms);

mcl_err
mcl_pstream_close(mcl_pstream *ps, int timeout_ms)
{
    if (ps == NULL)
        return MCL_EINVAL;
    atomic_fetch_add(&ps->refs, 1);
    mcl_err rv = close_held(ps, timeout_ms);
    ps_unref(ps);
    return rv;
}

static mcl_err
close_held(mcl_pstream *ps, int timeout_ms)
{
    pthread_mutex_lock(&ps->lock);
    bool here = on_driver_thread(ps);
    bool self_driven = ps->driver == D_NONE;
    pthread_mutex_unlock(&ps->lock);
    if (here)
        return MCL_ESTATE;
    mcl_err rv = begin_close(ps, timeout_ms);
    if (rv != MCL_OK)
        return rv;
    pthread_mutex_lock(&ps->lock);
    while (!ps->ended) {
        if (self_driven && !ps->dispatching) {
            pthread_mutex_unlock(&ps->lock);
            (void)try_dispatch(ps);
            wait_fd(ps, 50);
            pthread_mutex_lock(&ps->lock);
        } else {
            struct timespec ts;
            int64_t until = mcl__mono_ns() + 50000000;
            ts.tv_sec = (time_t)(until / 1000000000);
            ts.tv_nsec = (long)(until % 1000000000);
            pthread_cond_timedwait(&ps->cv, &ps->lock, &ts);
        }
    }
    rv = ps->end_why == MCL_PSTREAM_OK ? MCL_OK : MCL_ETIMEDOUT;
    pthread_mutex_unlock(&ps->lock);
    if (self_driven)
        (void)try_dispatch(ps); // the completions of what was left, on this thread
    return rv;
}

const char *
mcl_pstream_end_reason(const mcl_pstream *ps)
{
    if (ps == NULL)
        return "";
    mcl_pstream *m = (mcl_pstream *)(uintptr_t)ps;
    pthread_mutex_lock(&m->lock);
    const char *r = m->ended ? m->end_text : ""; // never written again once ended
    pthread_mutex_unlock(&m->lock);
    return r;
}

bool
mcl_pstream_is_open(const mcl_pstream *ps)
{
    if (ps == NULL)
        return false;
    mcl_pstream *m = (mcl_pstream *)(uintptr_t)ps;
    pthread_mutex_lock(&m->lock);
    bool open = !m->ended;
    pthread_mutex_unlock(&m->lock);
    return open;
}

// Stops whatever drives it (not the server: it drives its connections itself).
static void
stop_driver(mcl_pstream *ps)
{
    if (ps->driver == D_THREAD) {
        atomic_store(&ps->stop, true);
        pthread_mutex_lock(&ps->lock);
        wake_locked(ps);
        pthread_mutex_unlock(&ps->lock);
        pthread_join(ps->thread, NULL);
    } else if (ps->driver == D_REACTOR) {
        (void)mcl_reactor_remove(ps->reactor, ps->rh); // waits for a dispatch in progress
    }
    ps->driver = D_NONE;
}

static void
finish(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    while (ps->dispatching) // another thread is inside it: let it finish
        pthread_cond_wait(&ps->cv, &ps->lock);
    end_locked(ps, MCL_PSTREAM_DISCONNECTED, "closed by this side");
    ps->dispatching = true; // the last completions run here, on the freeing thread
    ps->dispatcher = pthread_self();
    run_completions_locked(ps);
    ps->closed_told = true; // (no closed callback from a free)
    if (ps->pipe != NULL) {
        ps->ops->close(ps->pipe);
        ps->pipe = NULL;
    }
    log_end_locked(ps);
    ps->dispatching = false;
    pthread_mutex_unlock(&ps->lock);
}

void
mcl_pstream_free(mcl_pstream *ps)
{
    if (ps == NULL || ps->server != NULL)
        return; // a server's connections are freed by the server
    stop_driver(ps);
    finish(ps);
    ps_unref(ps);
}

void
mcl__pstream_release(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    ps->server = NULL; // (it is going: a user's reference must not reach it through here)
    ps->driver = D_NONE;
    pthread_mutex_unlock(&ps->lock);
    finish(ps);
    ps_unref(ps);
}

void
mcl_pstream_ref(mcl_pstream *ps)
{
    if (ps != NULL)
        atomic_fetch_add(&ps->refs, 1);
}

void
mcl_pstream_unref(mcl_pstream *ps)
{
    if (ps != NULL)
        ps_unref(ps);
}

int
mcl__pstream_epfd(const mcl_pstream *ps)
{
    return ps->epfd;
}

bool
mcl__pstream_finished(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    bool done = ps->ended && ps->closed_told && ps->dhead == NULL;
    pthread_mutex_unlock(&ps->lock);
    return done;
}

bool
mcl__pstream_wants_retry(mcl_pstream *ps)
{
    pthread_mutex_lock(&ps->lock);
    bool w = !ps->ended && ps->qhead != NULL && ps->wfd_cur < 0;
    pthread_mutex_unlock(&ps->lock);
    return w;
}

mcl_err
mcl_pstream_start(mcl_pstream *ps)
{
    if (ps == NULL || ps->server != NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    if (ps->driver != D_NONE) {
        pthread_mutex_unlock(&ps->lock);
        return MCL_EALREADY;
    }
    ps->driver = D_THREAD;
    atomic_store(&ps->stop, false);
    int e = pthread_create(&ps->thread, NULL, driver_thread, ps);
    if (e != 0) {
        ps->driver = D_NONE;
        pthread_mutex_unlock(&ps->lock);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "pstream", "pthread_create: %s", strerror(e));
    }
    pthread_setname_np(ps->thread, "mcl-pstream");
    pthread_mutex_unlock(&ps->lock);
    return MCL_OK;
}

static mcl_err
source_fd(const void *obj, int *fd)
{
    *fd = ((const mcl_pstream *)obj)->epfd;
    return MCL_OK;
}

static void
source_dispatch(void *obj)
{
    (void)try_dispatch(obj);
}

static const mcl__source_ops pstream_source = {.fd = source_fd, .dispatch = source_dispatch};

mcl_err
mcl_pstream_attach(mcl_pstream *ps, mcl_reactor *r)
{
    if (ps == NULL || r == NULL || ps->server != NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&ps->lock);
    if (ps->driver != D_NONE) {
        pthread_mutex_unlock(&ps->lock);
        return MCL_EALREADY;
    }
    ps->driver = D_REACTOR;
    ps->reactor = r;
    pthread_mutex_unlock(&ps->lock);
    mcl_err rv = mcl__reactor_add_source(r, &pstream_source, ps, &ps->rh);
    if (rv != MCL_OK) {
        pthread_mutex_lock(&ps->lock);
        ps->driver = D_NONE;
        ps->reactor = NULL;
        pthread_mutex_unlock(&ps->lock);
    }
    return rv;
}

mcl_err
mcl_pstream_fd(const mcl_pstream *ps, int *fd)
{
    if (fd != NULL)
        *fd = -1;
    if (ps == NULL || fd == NULL)
        return MCL_EINVAL;
    *fd = ps->epfd;
    return MCL_OK;
}

mcl_err
mcl_pstream_stats(const mcl_pstream *ps, mcl_pstream_counters *st)
{
    if (ps == NULL || st == NULL)
        return MCL_EINVAL;
    mcl_pstream *m = (mcl_pstream *)(uintptr_t)ps; // the lock is not the value
    pthread_mutex_lock(&m->lock);
    *st = m->st;
    st->send_queued = out_bytes(m);
    pthread_mutex_unlock(&m->lock);
    return MCL_OK;
}

const char *
mcl_pstream_url(const mcl_pstream *ps)
{
    return ps ? ps->url : "";
}

const char *
mcl_pstream_peer(const mcl_pstream *ps)
{
    return ps ? ps->peer : "";
}
