// SPDX-License-Identifier: BSD-3-Clause
// Queued listener: a forked receiver process writes messages into a shared-memory ring, this
// process drains it. See include/mcl/queued.h and docs/ARCHITECTURE.md.
#define _GNU_SOURCE
#include <mcl/queued.h>

#include "../core/internal.h"
#include "../core/subs.h"
#include "../raw/listener_int.h"
#include "../transport/transport.h"
#include "queued_int.h"
#include "ring.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEF_RING ((size_t)64 << 20)
#define MIN_RING ((size_t)64 << 10)
enum {
    REC_MSG = 1,        // ring record kind
    REC_BODY_HDR = 64,  // fixed part of a message record (see put_record)
    STATS_EVERY = 256,  // the receiver publishes its counters this often (and when idle)
    IDLE_MS = 200,      // the receiver and the callback thread wake at least this often
    READY_WAIT_MS = 2000, // how long starting a receiver waits for it to read
    DIRECT_MIN = 4096,    // messages from this size on are read straight into the ring
    DIRECT_PAUSE = 16,    // messages copied before trying again after a miss
    RESTART_GAP_MS = 100 // at most one restart per this many milliseconds
};

struct mcl_queued_listener {
    pid_t owner; // the process that opened it (mcl__inherited)
    bool pin;          // the receiver runs on rcpus only (options->receiver_cpus)
    bool pin_or_fail;  // the receiver being forked exits when it cannot be pinned (the first)
    cpu_set_t rcpus;
    struct mcl_connection conn; // with the bound port
    const mcl_msgtype *type;
    char **topics;
    size_t ntopics;
    mcl_queued_options opt;
    // MCL__TP_FORK_FD transports: the receiving socket, opened here and shared by every
    // receiver (datagrams wait in it while one restarts); sock is its descriptor.
    mcl__rxs *rxs;
    int sock;
    bool open;
    // Shared memory.
    void *map;
    size_t map_len;
    mcl__queued_shared *sh;
    mcl__ring ring;
    // Descriptors: receiver -> consumer wake-ups, thread stop, receiver death, user's fd, and
    // (no_thread) a timer for a restart that has to wait.
    int efd, wake_fd, pidfd, epfd, tfd;
    // Receiver (guarded by `lock` for readers on other threads).
    pthread_mutex_t lock;
    pid_t pid;
    bool alive;
    int64_t last_start_ns;
    bool restart_pending;
    // Callback thread.
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_cond_t started_cv;
    bool started;
    mcl_err start_rv;
    mcl__subs raw_subs, msg_subs;
    // Counters kept here (base_* under `lock`: folded from finished receivers and opens).
    atomic_uint_fast64_t delivered, undecodable, restarts, deaths;
    mcl_listener_stats base;
    uint64_t sock_kdrops; // kernel drops of the current socket, as its receivers reported them
    uint64_t base_ring_drops, base_ring_oversize, base_restart_lost, high_water;
    uint64_t base_ring_direct;
    // recv(): the record handed out last.
    bool holding;
    mcl_raw_msg cur;
};

static int
pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

// --- the receiver process --------------------------------------------------------------------

// Filtered and oversize messages are handled as soon as they are accounted; delivered ones only
// once they are in the ring (child_main).
static void
child_seq_hook(void *ctx, uint64_t pub, uint64_t seq, bool delivered)
{
    if (!delivered)
        mcl__queued_track(ctx, pub, seq);
}

static void
child_publish_stats(mcl__queued_shared *sh, mcl_raw_listener *l)
{
    mcl_listener_stats st;
    mcl_raw_listener_stats(l, &st);
    atomic_fetch_add_explicit(&sh->stats_seq, 1, memory_order_acq_rel); // odd: writing
    memcpy(&sh->cur, &st, sizeof(st));
    atomic_fetch_add_explicit(&sh->stats_seq, 1, memory_order_release); // even: done
}

// The fixed part of a message record: the message's fields, topic_len, payload length, and
// where the payload starts (payload_off, from the body's start). The topic and its NUL follow
// the fixed part; the payload follows them (put_record), or further on: where the datagram
// that carried it was read into the ring (put_in_place).
static void
put_fixed(uint8_t *p, const mcl_raw_msg *m, uint32_t payload_off)
{
    uint32_t tl = (uint32_t)m->topic_len, pl = (uint32_t)m->len;
    uint8_t fam = (uint8_t)m->sender_family;
    memcpy(p, &m->publisher, 8);
    memcpy(p + 8, &m->seq, 8);
    memcpy(p + 16, &m->recv_realtime_ns, 8);
    memcpy(p + 24, &m->recv_mono_ns, 8);
    memcpy(p + 32, &tl, 4);
    memcpy(p + 36, &pl, 4);
    p[40] = fam;
    p[41] = 0;
    memcpy(p + 42, &m->sender_port, 2);
    memcpy(p + 44, m->sender_addr, 16);
    memcpy(p + 60, &payload_off, 4);
    // (memmove: the topic is the listener's copy, the payload may be anywhere, also in the
    // ring past this record when the datagram was read there but not used in place)
    memmove(p + REC_BODY_HDR, m->topic, m->topic_len);
    p[REC_BODY_HDR + m->topic_len] = '\0';
}

// The datagram was read into the reserved record at rec (its body), and the message's payload
// lies in it past where the topic goes: only the fixed part and the topic are written.
static bool
payload_in_place(const uint8_t *rec, size_t reserved, const mcl_raw_msg *m)
{
    const uint8_t *pl = m->payload;
    return m->len > 0 && pl >= rec + REC_BODY_HDR + m->topic_len + 1 &&
           pl + m->len <= rec + reserved;
}

static bool
put_in_place(mcl__ring *ring, uint8_t *rec, const mcl_raw_msg *m)
{
    uint32_t off = (uint32_t)((const uint8_t *)m->payload - rec);
    put_fixed(rec, m, off);
    mcl__ring_shrink(ring, off + m->len);
    return mcl__ring_commit(ring);
}

static bool
put_record(mcl__ring *ring, mcl__queued_shared *sh, const mcl_raw_msg *m)
{
    size_t body = REC_BODY_HDR + m->topic_len + 1 + m->len;
    if (body > mcl__ring_max_body(ring)) {
        atomic_fetch_add_explicit(&sh->ring_oversize, 1, memory_order_relaxed);
        return false;
    }
    uint8_t *p = mcl__ring_reserve(ring, body, REC_MSG);
    if (p == NULL) {
        atomic_fetch_add_explicit(&sh->ring_drops, 1, memory_order_relaxed);
        return false;
    }
    uint32_t off = (uint32_t)(REC_BODY_HDR + m->topic_len + 1);
    put_fixed(p, m, off);
    if (m->len > 0)
        memmove(p + off, m->payload, m->len);
    return mcl__ring_commit(ring);
}

static void
read_record(const uint8_t *p, mcl_raw_msg *m)
{
    uint32_t tl, pl, off;
    memcpy(&m->publisher, p, 8);
    memcpy(&m->seq, p + 8, 8);
    memcpy(&m->recv_realtime_ns, p + 16, 8);
    memcpy(&m->recv_mono_ns, p + 24, 8);
    memcpy(&tl, p + 32, 4);
    memcpy(&pl, p + 36, 4);
    m->sender_family = p[40];
    memcpy(&m->sender_port, p + 42, 2);
    memcpy(m->sender_addr, p + 44, 16);
    memcpy(&off, p + 60, 4);
    m->topic = (const char *)p + REC_BODY_HDR;
    m->topic_len = tl;
    m->len = pl;
    m->payload = pl > 0 ? p + off : NULL;
}

// The receiver keeps only what it needs: without exec, O_CLOEXEC does nothing, so every other
// descriptor of the application (pipes, sockets, other listeners' fds) is closed, and signal
// handlers and the mask go back to their defaults.
static void
child_hygiene(int keep1, int keep2)
{
    int a = keep1 < keep2 ? keep1 : keep2, b = keep1 < keep2 ? keep2 : keep1;
    if (a > 3)
        syscall(SYS_close_range, 3u, (unsigned)a - 1, 0u);
    if (b > a + 1)
        syscall(SYS_close_range, (unsigned)a + 1, (unsigned)b - 1, 0u);
    syscall(SYS_close_range, (unsigned)b + 1, ~0u, 0u);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
    // Signals meant for the application (Ctrl-C, a hang-up, `kill -USR1 $(pidof app)`, which
    // also finds us: we carry its command line) must not kill the receiver.
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

// Makes the ring's pages resident now, before the receiver runs: a first lap through a fresh
// mapping costs the receiver a page fault (and a zeroed page) per 4 KiB it writes, which at
// 16 KiB full rate made it lose 70 % of the messages to the socket (docs/performance.md).
// MADV_POPULATE_WRITE (Linux 5.14) does it in one call. Where the kernel lacks it (EINVAL),
// the parent, whose mapping is still fresh, writes a byte per page, and a receiver, whose
// mapping is live (a restart: records wait in the ring, the tables are in use), only reads one
// (the page is mapped; its first write then costs a cheap write-protect fault, not a new page).
// Any other failure (ENOMEM on this MAP_NORESERVE mapping) leaves the pages to come as
// written, as with lazy_ring.
static void
prefault(void *map, size_t len, bool fresh)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
    if (madvise(map, len, MADV_POPULATE_WRITE) == 0 || errno != EINVAL)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    size_t step = pg > 0 ? (size_t)pg : 4096;
    volatile uint8_t *p = map;
    uint8_t sink = 0;
    for (size_t i = 0; i < len; i += step) {
        if (fresh)
            p[i] = 0;
        else
            sink ^= p[i];
    }
    (void)sink;
}

static _Noreturn void
child_main(mcl_queued_listener *ql, pid_t parent)
{
    mcl__log_forked_child();
    child_hygiene(ql->sock >= 0 ? ql->sock : ql->efd, ql->efd);
    // PR_SET_PDEATHSIG follows the thread that forked: set only when that is the listener's own
    // long-lived thread. Otherwise (no_thread) the receiver notices a new parent when idle.
    if (!ql->opt.no_thread)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) // the parent died before the line above
        _exit(0);
    prctl(PR_SET_NAME, "mcl-recv");
    // The kernel decides which of the CPUs asked for the receiver may use (those of the cpuset,
    // online; the forking thread's own affinity does not limit it). The first receiver that
    // may use none of them tells open, which fails; a restart after a CPU went offline runs
    // where it is.
    if (ql->pin && sched_setaffinity(0, sizeof(ql->rcpus), &ql->rcpus) != 0 && ql->pin_or_fail) {
        atomic_store_explicit(&ql->sh->pin_errno, errno ? errno : EINVAL, memory_order_relaxed);
        atomic_store_explicit(&ql->sh->ready, ql->sh->generation, memory_order_release);
        _exit(5);
    }
    // The receiver must win the CPU against the application's callbacks; privileged processes
    // may raise its priority, others keep the default (EPERM is fine).
    (void)setpriority(PRIO_PROCESS, 0, -10);
    mcl_raw_listener *l = NULL;
    // MCL__TP_FORK_FD (udp): the parent's socket (datagrams wait in it while a receiver
    // restarts). Otherwise (zmq) the receiver opens its own socket, in a context of its own
    // (libzmq's do not survive fork).
    mcl_err orv = ql->sock >= 0 ? mcl__raw_listener_open_fd(&l, &ql->conn,
                                                            (const char *const *)ql->topics,
                                                            ql->ntopics, ql->sock)
                                : mcl_raw_listener_open(&l, &ql->conn,
                                                        (const char *const *)ql->topics,
                                                        ql->ntopics);
    if (orv != MCL_OK)
        _exit(3);
    mcl__queued_child ctx = {ql->sh, ql->sh->generation};
    // Restart losses are found as sequence gaps; a publisher that filters by topic
    // (MCL__TP_PUBFILTER) leaves gaps of its own, so such a receiver with a topic filter does
    // not track them.
    bool track = !(ql->conn.tp->caps & MCL__TP_PUBFILTER) || ql->ntopics == 0;
    if (track)
        mcl__raw_listener_set_seq_hook(l, child_seq_hook, &ctx);
    // A forked process gets no page-table entries for shared memory: without this, it would
    // take a (minor) fault per 4 KiB of the ring on its first lap, while the socket fills.
    if (!ql->opt.lazy_ring)
        prefault(ql->map, ql->map_len, false);
    atomic_store_explicit(&ql->sh->ready, ctx.gen, memory_order_release);
    mcl__ring ring;
    mcl__ring_attach(&ring, (uint8_t *)ql->map + ((sizeof(mcl__queued_shared) + 63) & ~(size_t)63));
    // Large messages are read straight into the ring (direct_body: a record with room for the
    // largest datagram), saving a copy of each; small ones in batches (one system call for
    // many), copied. Which one comes next is guessed from the last message.
    size_t into_cap = mcl__raw_listener_into_cap(l);
    size_t direct_body = REC_BODY_HDR + into_cap;
    bool can_direct =
        into_cap > 0 && !ql->opt.no_direct && direct_body <= mcl__ring_max_body(&ring);
    bool try_direct = false;
    unsigned direct_pause = 0;
    unsigned since_stats = 0, since_wake = 0;
    bool wake = false; // the consumer asked to be woken and has not been yet
    uint64_t one = 1;
    for (;;) {
        // Wake the consumer once per burst, not once per message: while datagrams keep
        // coming, read on (polling), and signal when the socket is empty or every 64 records.
        const mcl_raw_msg *m;
        uint8_t *rec = try_direct ? mcl__ring_reserve(&ring, direct_body, REC_MSG) : NULL;
        bool copied = false;
        mcl_err rv = rec != NULL
                         ? mcl__raw_listener_recv_into(l, rec + REC_BODY_HDR, into_cap, &m,
                                                       wake ? 0 : IDLE_MS, &copied)
                         : mcl_raw_listener_recv(l, &m, wake ? 0 : IDLE_MS);
        if (rv == MCL_OK) {
            if (track)
                mcl__queued_inflight(ql->sh, m->publisher, m->seq,
                                     atomic_load_explicit(&ring.shm->head, memory_order_relaxed));
            bool in_place = rec != NULL && payload_in_place(rec, direct_body, m);
            if (in_place) {
                wake |= put_in_place(&ring, rec, m);
                atomic_fetch_add_explicit(&ql->sh->ring_direct, 1, memory_order_relaxed);
            } else {
                wake |= put_record(&ring, ql->sh, m);
            }
            // A large message next, guessed from this one (a fragmented one is too large);
            // after a datagram that was read there but had to be copied after all (compressed,
            // a batch), not for a few messages.
            if (copied && m->len <= into_cap)
                direct_pause = DIRECT_PAUSE;
            else if (direct_pause > 0)
                direct_pause--;
            try_direct = can_direct && direct_pause == 0 && m->len >= DIRECT_MIN &&
                         m->len <= into_cap;
            if (track) {
                mcl__queued_track(&ctx, m->publisher, m->seq);
                mcl__queued_inflight_done(ql->sh);
            }
            if (wake && ++since_wake >= 64) {
                ssize_t w = write(ql->efd, &one, sizeof(one));
                (void)w; // an eventfd write cannot fail here (the counter cannot overflow)
                wake = false;
                since_wake = 0;
            }
            if (++since_stats < STATS_EVERY)
                continue;
        } else if (rv == MCL_ENOMEM && rec != NULL) {
            can_direct = try_direct = false; // (no buffer for other datagrams: copy, as before)
            continue;
        } else if (rv != MCL_ETIMEDOUT && rv != MCL_EAGAIN && rv != MCL_EINTR) {
            _exit(4);
        }
        if (wake) {
            ssize_t w = write(ql->efd, &one, sizeof(one));
            (void)w;
            wake = false;
            since_wake = 0;
        }
        since_stats = 0;
        child_publish_stats(ql->sh, l);
        if (getppid() != parent)
            _exit(0);
    }
}

// --- this process ----------------------------------------------------------------------------

// Parses a CPU list as taskset -c takes it ("3", "0,2-5") into set: MCL_EINVAL for anything
// else or a CPU beyond CPU_SETSIZE. (Whether the receiver may run on them is the kernel's to
// say, in the receiver: child_main.)
static mcl_err
parse_cpus(const char *s, cpu_set_t *set)
{
    CPU_ZERO(set);
    const char *p = s;
    for (;;) {
        unsigned long lo, hi;
        char *end;
        if (*p < '0' || *p > '9')
            return MCL_EINVAL;
        lo = hi = strtoul(p, &end, 10);
        p = end;
        if (*p == '-') {
            if (p[1] < '0' || p[1] > '9')
                return MCL_EINVAL;
            hi = strtoul(p + 1, &end, 10);
            p = end;
        }
        if (lo > hi || hi >= CPU_SETSIZE)
            return MCL_EINVAL;
        for (unsigned long c = lo; c <= hi; c++)
            CPU_SET((int)c, set);
        if (*p == '\0')
            return MCL_OK;
        if (*p++ != ',')
            return MCL_EINVAL;
    }
}

static mcl_listener_stats
read_cur(const mcl__queued_shared *sh)
{
    mcl_listener_stats st;
    // Bounded: a receiver killed in the middle of an update leaves the count odd for good, and
    // then the last copy is as good as it gets.
    for (int tries = 0;; tries++) {
        uint32_t s1 = atomic_load_explicit(&sh->stats_seq, memory_order_acquire);
        if ((s1 & 1) && tries < 10000)
            continue;
        memcpy(&st, (const void *)&sh->cur, sizeof(st));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sh->stats_seq, memory_order_relaxed) == s1 || tries >= 10000)
            return st;
    }
}

static void
stats_add(mcl_listener_stats *d, const mcl_listener_stats *s)
{
    d->messages += s->messages;
    d->bytes += s->bytes;
    d->filtered += s->filtered;
    d->lost += s->lost;
    d->duplicates += s->duplicates;
    d->reordered += s->reordered;
    d->datagrams += s->datagrams;
    d->malformed += s->malformed;
    d->expired += s->expired;
    d->evicted += s->evicted;
    d->oversize += s->oversize;
    d->auth_failures += s->auth_failures;
    d->heartbeats += s->heartbeats;
    d->lost_at_end += s->lost_at_end;
    d->auth_rejected += s->auth_rejected;
    d->replayed += s->replayed;
    d->suspect += s->suspect;
    d->compressed += s->compressed;
    d->compressed_bytes += s->compressed_bytes;
    d->undecompressed += s->undecompressed;
    // kernel_drops is not summed: each receiver reports the socket's own running total. The
    // partial_*, publishers and rcvbuf fields say what is now: the current receiver's.
}

// Folds the counters of a finished receiver into the base. Called with `lock` held.
static void
fold_receiver(mcl_queued_listener *ql)
{
    mcl_listener_stats st = read_cur(ql->sh);
    stats_add(&ql->base, &st);
    if (st.kernel_drops > ql->sock_kdrops)
        ql->sock_kdrops = st.kernel_drops;
    memset(&ql->sh->cur, 0, sizeof(ql->sh->cur));
}

static int64_t
now_ns(void)
{
    return mcl__mono_ns();
}

static void
epoll_set(int epfd, int op, int fd)
{
    if (epfd < 0 || fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    (void)epoll_ctl(epfd, op, fd, &ev);
}

// Forks a receiver. Called with `lock` held (or before anyone else can see ql).
// Forks a receiver. wait_ready (the first start, from open): returns once it reads (below);
// a restart (from check_receiver, which dispatch and recv call: they must not block) does not
// wait.
static mcl_err
start_receiver(mcl_queued_listener *ql, bool wait_ready)
{
    ql->sh->generation++;
    memset(&ql->sh->cur, 0, sizeof(ql->sh->cur));
    atomic_store(&ql->sh->stats_seq, 0); // a receiver killed mid-update left it odd
    atomic_store(&ql->sh->pin_errno, 0);
    ql->pin_or_fail = wait_ready;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        return mcl__fail(mcl__sys_err(e), NULL, 0, "queued", "fork: %s", strerror(e));
    }
    if (pid == 0)
        child_main(ql, parent);
    ql->pid = pid;
    ql->alive = true;
    ql->last_start_ns = now_ns();
    ql->pidfd = pidfd_open_(pid);
    epoll_set(ql->epfd, EPOLL_CTL_ADD, ql->pidfd);
    // Until the receiver reads (its ring mapped in, its listener open), datagrams wait in the
    // socket: wait for it, so that traffic that starts when open returns finds it running. At
    // most READY_WAIT_MS; a receiver that dies first is found by check_receiver as usual.
    uint32_t gen = ql->sh->generation;
    int64_t deadline = now_ns() + (int64_t)READY_WAIT_MS * 1000000;
    while (wait_ready && atomic_load_explicit(&ql->sh->ready, memory_order_acquire) != gen &&
           now_ns() < deadline) {
        struct pollfd p = {.fd = ql->pidfd, .events = POLLIN};
        if (ql->pidfd >= 0 && poll(&p, 1, 1) > 0)
            break; // it exited
        if (ql->pidfd < 0) { // (no pidfd: ask whether it exited, without reaping it)
            siginfo_t si;
            memset(&si, 0, sizeof(si));
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
                break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    int pe = atomic_load_explicit(&ql->sh->pin_errno, memory_order_relaxed);
    if (wait_ready && pe != 0) // (reaped by the caller's release_resources)
        return mcl__fail(MCL_EINVAL, NULL, 0, "queued",
                         "receiver_cpus: the receiver may run on none of them (%s)",
                         strerror(pe));
    return MCL_OK;
}

// Reaps the receiver if it died; restarts it unless told not to. Returns true if it died.
static bool
check_receiver(mcl_queued_listener *ql)
{
    pthread_mutex_lock(&ql->lock);
    bool died = false;
    if (ql->pid > 0) {
        int status = 0;
        pid_t r = waitpid(ql->pid, &status, WNOHANG);
        // ECHILD: someone else reaped it (SIGCHLD ignored, or a waitpid(-1) elsewhere): gone.
        if (r == ql->pid || (r < 0 && errno == ECHILD)) {
            died = true;
            atomic_fetch_add(&ql->deaths, 1);
            if (r == ql->pid)
                mcl__log(MCL_LOG_WARN, "queued", "%s: receiver %d %s %d", ql->conn.url,
                         (int)ql->pid,
                         WIFSIGNALED(status) ? "was killed by signal" : "exited with status",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            else
                mcl__log(MCL_LOG_WARN, "queued", "%s: receiver %d is gone (reaped elsewhere)",
                         ql->conn.url, (int)ql->pid);
            fold_receiver(ql);
            // (dead: the ring's head no longer moves, and the table is the parent's until the
            // next fork)
            mcl__queued_settle(ql->sh, atomic_load(&ql->ring.shm->head));
            epoll_set(ql->epfd, EPOLL_CTL_DEL, ql->pidfd);
            if (ql->pidfd >= 0)
                close(ql->pidfd);
            ql->pidfd = -1;
            ql->pid = 0;
            ql->alive = false;
            ql->restart_pending = !ql->opt.no_restart;
        }
    }
    // Restart, but not in a tight loop if receivers keep dying at once.
    if (ql->restart_pending && now_ns() - ql->last_start_ns >= (int64_t)RESTART_GAP_MS * 1000000) {
        ql->restart_pending = false;
        if (start_receiver(ql, false) == MCL_OK)
            atomic_fetch_add(&ql->restarts, 1);
        else
            ql->restart_pending = true;
    }
    pthread_mutex_unlock(&ql->lock);
    return died;
}

typedef struct call_msg {
    const mcl_msg *msg;
    const mcl_raw_msg *raw;
} call_msg;

static void
invoke_raw(mcl__fn fn, void *user, void *arg)
{
    ((mcl_raw_cb)fn)(arg, user);
}

static void
invoke_msg(mcl__fn fn, void *user, void *arg)
{
    const call_msg *c = arg;
    ((mcl_msg_cb)fn)(c->msg, c->raw, user);
}

static void
deliver(mcl_queued_listener *ql, const mcl_raw_msg *m)
{
    atomic_fetch_add_explicit(&ql->delivered, 1, memory_order_relaxed);
    mcl__subs_call(&ql->raw_subs, invoke_raw, (void *)(uintptr_t)m);
    if (mcl__subs_count(&ql->msg_subs) == 0)
        return;
    mcl_msg *msg = NULL;
    if (mcl_msg_decode(&msg, m->payload, m->len, ql->type, NULL, 0) != MCL_OK) {
        atomic_fetch_add_explicit(&ql->undecodable, 1, memory_order_relaxed);
        return;
    }
    call_msg c = {msg, m};
    mcl__subs_call(&ql->msg_subs, invoke_msg, &c);
    mcl_msg_free(msg);
}

// Delivers up to max records (0: all that are there). Returns how many.
static size_t
drain(mcl_queued_listener *ql, size_t max)
{
    size_t n = 0;
    uint32_t kind;
    size_t len;
    const void *rec;
    while ((max == 0 || n < max) && (rec = mcl__ring_peek(&ql->ring, &kind, &len)) != NULL) {
        if (kind == REC_MSG && len >= REC_BODY_HDR) {
            mcl_raw_msg m;
            read_record(rec, &m);
            deliver(ql, &m);
            n++;
        }
        mcl__ring_release(&ql->ring);
    }
    return n;
}

static void
reset_efd(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r; // EAGAIN: nothing was signalled
}

static void *
callback_thread(void *arg)
{
    mcl_queued_listener *ql = arg;
    // The receiver is forked from this thread: PR_SET_PDEATHSIG follows the thread that forked,
    // and this one lives exactly as long as the listener is open.
    pthread_mutex_lock(&ql->lock);
    ql->start_rv = start_receiver(ql, true);
    ql->started = true;
    pthread_cond_broadcast(&ql->started_cv);
    bool ok = ql->start_rv == MCL_OK;
    pthread_mutex_unlock(&ql->lock);
    if (!ok)
        return NULL;
    while (!atomic_load_explicit(&ql->stop, memory_order_acquire)) {
        // In batches, so that close() (which drops what is queued) and receiver deaths are
        // noticed between them even when the callbacks are slow and the ring is full.
        if (drain(ql, 64) > 0) {
            check_receiver(ql);
            continue;
        }
        if (!mcl__ring_prepare_wait(&ql->ring))
            continue;
        struct pollfd p[3] = {{.fd = ql->efd, .events = POLLIN},
                              {.fd = ql->wake_fd, .events = POLLIN},
                              {.fd = ql->pidfd, .events = POLLIN}};
        int timeout = ql->restart_pending ? RESTART_GAP_MS : (ql->pidfd >= 0 ? IDLE_MS * 5 : IDLE_MS);
        int r = poll(p, ql->pidfd >= 0 ? 3 : 2, timeout);
        if (r > 0 && (p[0].revents & POLLIN))
            reset_efd(ql->efd);
        check_receiver(ql); // cheap: waitpid(WNOHANG)
    }
    return NULL;
}

// --- API -------------------------------------------------------------------------------------

static void
free_topics(mcl_queued_listener *ql)
{
    for (size_t i = 0; i < ql->ntopics; i++)
        mcl__free(ql->topics[i]);
    mcl__free(ql->topics);
    ql->topics = NULL;
    ql->ntopics = 0;
}

static mcl_err
open_socket(mcl_queued_listener *ql)
{
    const mcl__tport *tp = ql->conn.tp;
    if (!(tp->caps & MCL__TP_XPROCESS))
        return mcl__fail(MCL_ENOTSUP, NULL, 0, "queued",
                         "%s: a queued listener receives in another process, which %s:// cannot "
                         "reach (use a transport between processes, e.g. udp:// or zmq+ipc://)",
                         ql->conn.url, tp->scheme);
    if (!(tp->caps & MCL__TP_FORK_FD)) {
        // The receiver process opens its own socket (see child_main): try what it will open.
        return tp->bcast->rx_probe != NULL ? tp->bcast->rx_probe(&ql->conn) : MCL_OK;
    }
    mcl__rx_opened opened = {0};
    mcl_err rv = tp->bcast->rx_open(&ql->rxs, &ql->conn, (const char *const *)ql->topics,
                                    ql->ntopics, -1, &opened);
    if (rv != MCL_OK)
        return rv;
    ql->sock = tp->bcast->rx_fd(ql->rxs);
    if (opened.bound_port != 0 && opened.bound_port != ql->conn.port) {
        ql->conn.port = opened.bound_port; // reopening binds the same port again
        mcl__connection_canon(&ql->conn);
    }
    return MCL_OK;
}

mcl_err
mcl_queued_listener_new(mcl_queued_listener **qlp, const mcl_connection *conn,
                        const mcl_msgtype *type, const char *const *topics, size_t ntopics,
                        const mcl_queued_options *options)
{
    if (qlp != NULL)
        *qlp = NULL;
    if (qlp == NULL || (topics == NULL && ntopics > 0))
        return MCL_EINVAL;
    if (conn == NULL && (type == NULL || (conn = mcl_msgtype_connection(type)) == NULL))
        return mcl__fail(MCL_EINVAL, NULL, 0, "queued", "a queued listener needs a connection");
    // As mcl_raw_listener_open(): the receiver must not fail on what was accepted here.
    mcl_err trv = mcl__raw_check_topics("queued", topics, ntopics);
    if (trv != MCL_OK)
        return trv;
    mcl_queued_listener *ql = mcl__zalloc(sizeof(*ql));
    if (ql == NULL)
        return MCL_ENOMEM;
    ql->sock = ql->efd = ql->wake_fd = ql->pidfd = ql->epfd = ql->tfd = -1;
    ql->conn = *conn;
    ql->type = type;
    if (options != NULL)
        ql->opt = *options;
    const char *cpus = ql->opt.receiver_cpus;
    ql->opt.receiver_cpus = NULL; // (the caller's string: not kept)
    if (cpus != NULL && cpus[0] != '\0') {
        if (strlen(cpus) > 1024 || parse_cpus(cpus, &ql->rcpus) != MCL_OK) {
            mcl__free(ql);
            return mcl__fail(MCL_EINVAL, NULL, 0, "queued",
                             "receiver_cpus \"%.64s\": not a list of CPUs (as taskset -c "
                             "takes them)",
                             cpus);
        }
        ql->pin = true;
    }
    if (ql->opt.ring_size == 0)
        ql->opt.ring_size = DEF_RING;
    if (ql->opt.ring_size < MIN_RING)
        ql->opt.ring_size = MIN_RING;
    mcl_err rv = MCL_OK;
    if (pthread_mutex_init(&ql->lock, NULL) != 0 || pthread_cond_init(&ql->started_cv, NULL) != 0 ||
        mcl__subs_init(&ql->raw_subs, ql) != MCL_OK || mcl__subs_init(&ql->msg_subs, ql) != MCL_OK) {
        mcl__free(ql); // nothing else was made yet (init failures here are out-of-resource)
        return MCL_ESYS;
    }
    if (ntopics > 0) {
        if ((ql->topics = mcl__zalloc(ntopics * sizeof(*ql->topics))) == NULL)
            rv = MCL_ENOMEM;
        for (size_t i = 0; rv == MCL_OK && i < ntopics; i++, ql->ntopics++)
            if ((ql->topics[i] = mcl__strdup(topics[i])) == NULL)
                rv = MCL_ENOMEM;
    }
    if (rv == MCL_OK)
        rv = open_socket(ql); // a bad endpoint fails here, even with defer_open
    if (rv == MCL_OK && !ql->opt.defer_open)
        rv = mcl_queued_listener_open(ql);
    if (rv != MCL_OK) {
        mcl_queued_listener_free(ql);
        return rv;
    }
    *qlp = ql;
    return MCL_OK;
}

// This process's descriptors of the listener (also its copies in a forked child) and its
// mapping of the ring.
static void
close_own(mcl_queued_listener *ql)
{
    int *fds[] = {&ql->pidfd, &ql->efd, &ql->wake_fd, &ql->epfd, &ql->tfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
    if (ql->map != NULL)
        munmap(ql->map, ql->map_len);
    ql->map = NULL;
}

static void
release_resources(mcl_queued_listener *ql)
{
    if (ql->pid > 0) {
        // Signal through the pidfd when there is one: never a recycled pid.
        if (ql->pidfd < 0 || syscall(SYS_pidfd_send_signal, ql->pidfd, SIGKILL, NULL, 0) != 0)
            kill(ql->pid, SIGKILL);
        while (waitpid(ql->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pthread_mutex_lock(&ql->lock);
        fold_receiver(ql);
        ql->pid = 0;
        ql->alive = false;
        pthread_mutex_unlock(&ql->lock);
    }
    if (ql->sh != NULL) {
        pthread_mutex_lock(&ql->lock);
        ql->base_ring_drops += atomic_load(&ql->sh->ring_drops);
        ql->base_ring_direct += atomic_load(&ql->sh->ring_direct);
        ql->base_ring_oversize += atomic_load(&ql->sh->ring_oversize);
        ql->base_restart_lost += atomic_load(&ql->sh->restart_lost);
        uint64_t hw = atomic_load(&ql->ring.shm->high_water);
        if (hw > ql->high_water)
            ql->high_water = hw;
        ql->sh = NULL;
        pthread_mutex_unlock(&ql->lock);
    }
    pthread_mutex_lock(&ql->lock);
    ql->base.kernel_drops += ql->sock_kdrops; // the socket closes below: its total is final
    ql->sock_kdrops = 0;
    pthread_mutex_unlock(&ql->lock);
    if (ql->rxs != NULL) {
        ql->conn.tp->bcast->rx_close(ql->rxs);
        ql->rxs = NULL;
        ql->sock = -1;
    }
    close_own(ql);
    ql->holding = false;
    ql->restart_pending = false;
}

mcl_err
mcl_queued_listener_open(mcl_queued_listener *ql)
{
    if (ql == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(ql))
        return MCL_ESTATE;
    if (ql->open)
        return MCL_EALREADY;
    mcl_err rv = MCL_OK;
    if (ql->rxs == NULL && (ql->conn.tp->caps & MCL__TP_FORK_FD) &&
        (rv = open_socket(ql)) != MCL_OK)
        return rv;
    size_t hdr = (sizeof(mcl__queued_shared) + 63) & ~(size_t)63;
    ql->map_len = hdr + mcl__ring_bytes(ql->opt.ring_size);
    ql->map = mmap(NULL, ql->map_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ql->map == MAP_FAILED) {
        int e = errno;
        ql->map = NULL;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "queued", "mmap(%zu): %s", ql->map_len,
                       strerror(e));
        goto fail;
    }
    if (!ql->opt.lazy_ring)
        prefault(ql->map, ql->map_len, true);
    mcl__ring_init((uint8_t *)ql->map + hdr, ql->opt.ring_size);
    mcl__ring_attach(&ql->ring, (uint8_t *)ql->map + hdr);
    pthread_mutex_lock(&ql->lock); // stats() may look from another thread
    ql->sh = ql->map;
    pthread_mutex_unlock(&ql->lock);
    ql->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ql->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ql->efd < 0 || ql->wake_fd < 0) {
        rv = mcl__sys_err(errno);
        goto fail;
    }
    if (ql->opt.no_thread) {
        ql->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (ql->epfd < 0) {
            rv = mcl__sys_err(errno);
            goto fail;
        }
        epoll_set(ql->epfd, EPOLL_CTL_ADD, ql->efd);
        ql->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        epoll_set(ql->epfd, EPOLL_CTL_ADD, ql->tfd);
        pthread_mutex_lock(&ql->lock);
        rv = start_receiver(ql, true);
        pthread_mutex_unlock(&ql->lock);
        if (rv != MCL_OK)
            goto fail;
        mcl__ring_prepare_wait(&ql->ring); // the first message makes the fd readable
    } else {
        atomic_store(&ql->stop, false);
        ql->started = false;
        int e = pthread_create(&ql->thread, NULL, callback_thread, ql);
        if (e != 0) {
            rv = mcl__fail(mcl__sys_err(e), NULL, 0, "queued", "pthread_create: %s", strerror(e));
            goto fail;
        }
        pthread_setname_np(ql->thread, "mcl-queued");
        pthread_mutex_lock(&ql->lock);
        while (!ql->started)
            pthread_cond_wait(&ql->started_cv, &ql->lock);
        rv = ql->start_rv;
        pthread_mutex_unlock(&ql->lock);
        if (rv != MCL_OK) {
            pthread_join(ql->thread, NULL);
            goto fail;
        }
        ql->running = true;
    }
    ql->open = true;
    ql->owner = getpid();
    return MCL_OK;
fail:
    release_resources(ql);
    return rv;
}

// A forked child closing its parent's queued listener: the callback thread, the receiver
// process, the socket and its membership are the parent's. Only the child's copies of the
// descriptors (the socket's too, where the transport can forget it: rx_forget) and of the ring
// mapping are released; no lock is taken (a parent's thread may have held one at the fork).
static void
forget_inherited(mcl_queued_listener *ql)
{
    close_own(ql);
    ql->sh = NULL;
    if (ql->rxs != NULL && ql->conn.tp->bcast->rx_forget != NULL)
        ql->conn.tp->bcast->rx_forget(ql->rxs);
    ql->rxs = NULL;
    ql->sock = -1;
    ql->pid = 0;
    ql->running = ql->open = false;
}

mcl_err
mcl_queued_listener_close(mcl_queued_listener *ql)
{
    if (ql == NULL)
        return MCL_EINVAL;
    if (mcl__subs_running(ql))
        return MCL_ESTATE;
    if (!ql->open)
        return MCL_ECLOSED;
    if (mcl__inherited(ql->owner)) {
        forget_inherited(ql);
        return MCL_OK;
    }
    if (ql->running) {
        atomic_store_explicit(&ql->stop, true, memory_order_release);
        uint64_t one = 1;
        ssize_t w = write(ql->wake_fd, &one, sizeof(one));
        (void)w;
        pthread_join(ql->thread, NULL);
        ql->running = false;
    }
    release_resources(ql);
    ql->open = false;
    return MCL_OK;
}

bool
mcl_queued_listener_is_open(const mcl_queued_listener *ql)
{
    return ql != NULL && ql->open;
}

void
mcl_queued_listener_free(mcl_queued_listener *ql)
{
    if (ql == NULL || mcl__subs_running(ql))
        return;
    if (ql->open)
        mcl_queued_listener_close(ql);
    bool inherited = mcl__inherited(ql->owner);
    if (inherited)
        forget_inherited(ql);
    else
        release_resources(ql);
    free_topics(ql);
    mcl__subs_fini(&ql->raw_subs, inherited);
    mcl__subs_fini(&ql->msg_subs, inherited);
    if (!inherited)
        pthread_cond_destroy(&ql->started_cv);
    pthread_mutex_destroy(&ql->lock);
    mcl__free(ql);
}

mcl_err
mcl_queued_listener_subscribe(mcl_queued_listener *ql, mcl_raw_cb cb, void *user)
{
    return ql && cb ? mcl__subs_add(&ql->raw_subs, (mcl__fn)cb, user) : MCL_EINVAL;
}

mcl_err
mcl_queued_listener_unsubscribe(mcl_queued_listener *ql, mcl_raw_cb cb, void *user)
{
    return ql && cb ? mcl__subs_remove(&ql->raw_subs, (mcl__fn)cb, user) : MCL_EINVAL;
}

mcl_err
mcl_queued_listener_subscribe_msg(mcl_queued_listener *ql, mcl_msg_cb cb, void *user)
{
    return ql && cb ? mcl__subs_add(&ql->msg_subs, (mcl__fn)cb, user) : MCL_EINVAL;
}

mcl_err
mcl_queued_listener_unsubscribe_msg(mcl_queued_listener *ql, mcl_msg_cb cb, void *user)
{
    return ql && cb ? mcl__subs_remove(&ql->msg_subs, (mcl__fn)cb, user) : MCL_EINVAL;
}

mcl_err
mcl_queued_listener_fd(const mcl_queued_listener *ql, int *fd)
{
    if (fd != NULL)
        *fd = -1;
    if (ql == NULL || fd == NULL)
        return MCL_EINVAL;
    if (!ql->open)
        return MCL_ECLOSED;
    if (ql->running)
        return MCL_ESTATE;
    *fd = ql->epfd;
    return MCL_OK;
}

// Common entry of dispatch and recv: release what recv handed out, handle a receiver death.
static mcl_err
user_drain_prologue(mcl_queued_listener *ql)
{
    if (!ql->open)
        return MCL_ECLOSED;
    if (ql->running || mcl__subs_running(ql))
        return MCL_ESTATE;
    if (ql->holding) {
        mcl__ring_release(&ql->ring);
        ql->holding = false;
    }
    reset_efd(ql->efd);
    if (ql->tfd >= 0)
        reset_efd(ql->tfd); // same 8-byte counter read
    check_receiver(ql);
    return MCL_OK;
}

// Leaves the user's fd readable if messages remain, else arms the producer's wake-up; a
// restart that must wait arms the timer in the fd's set (no busy loop meanwhile).
static void
user_drain_epilogue(mcl_queued_listener *ql, bool holding)
{
    if (holding || !mcl__ring_prepare_wait(&ql->ring)) {
        uint64_t one = 1;
        ssize_t w = write(ql->efd, &one, sizeof(one));
        (void)w;
    }
    if (ql->restart_pending && ql->tfd >= 0) {
        int64_t due = ql->last_start_ns + (int64_t)RESTART_GAP_MS * 1000000 - now_ns();
        if (due < 1000000)
            due = 1000000;
        struct itimerspec its = {.it_value = {due / 1000000000, due % 1000000000}};
        timerfd_settime(ql->tfd, 0, &its, NULL);
    }
}

mcl_err
mcl_queued_listener_dispatch(mcl_queued_listener *ql, size_t max, size_t *delivered)
{
    if (delivered != NULL)
        *delivered = 0;
    if (ql == NULL)
        return MCL_EINVAL;
    mcl_err rv = user_drain_prologue(ql);
    if (rv != MCL_OK)
        return rv;
    size_t n = drain(ql, max);
    user_drain_epilogue(ql, false);
    if (delivered != NULL)
        *delivered = n;
    return MCL_OK;
}

mcl_err
mcl_queued_listener_recv(mcl_queued_listener *ql, const mcl_raw_msg **msgp, int timeout_ms)
{
    if (msgp != NULL)
        *msgp = NULL;
    if (ql == NULL || msgp == NULL)
        return MCL_EINVAL;
    mcl_err rv = user_drain_prologue(ql);
    if (rv != MCL_OK)
        return rv;
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        uint32_t kind;
        size_t len;
        const void *rec;
        while ((rec = mcl__ring_peek(&ql->ring, &kind, &len)) != NULL) {
            if (kind == REC_MSG && len >= REC_BODY_HDR) {
                read_record(rec, &ql->cur);
                ql->holding = true; // released by the next call
                atomic_fetch_add_explicit(&ql->delivered, 1, memory_order_relaxed);
                *msgp = &ql->cur;
                user_drain_epilogue(ql, true); // more may follow: keep the fd readable
                return MCL_OK;
            }
            mcl__ring_release(&ql->ring);
        }
        int64_t left = deadline - now_ns();
        if (left <= 0) {
            user_drain_epilogue(ql, false);
            return MCL_ETIMEDOUT;
        }
        if (!mcl__ring_prepare_wait(&ql->ring))
            continue;
        int wait = left > (int64_t)IDLE_MS * 1000000 ? IDLE_MS : (int)((left + 999999) / 1000000);
        struct pollfd p[2] = {{.fd = ql->efd, .events = POLLIN}, {.fd = ql->pidfd, .events = POLLIN}};
        if (poll(p, ql->pidfd >= 0 ? 2 : 1, wait) > 0 && (p[0].revents & POLLIN))
            reset_efd(ql->efd);
        check_receiver(ql);
    }
}

mcl_err
mcl_queued_listener_stats(const mcl_queued_listener *cql, mcl_queued_stats *st)
{
    if (cql == NULL || st == NULL)
        return MCL_EINVAL;
    mcl_queued_listener *ql = (mcl_queued_listener *)(uintptr_t)cql; // the lock is not the value
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&ql->lock);
    st->receiver = ql->base;
    st->ring_drops = ql->base_ring_drops;
    st->ring_direct = ql->base_ring_direct;
    st->ring_oversize = ql->base_ring_oversize;
    st->restart_lost = ql->base_restart_lost;
    st->ring_high_water = ql->high_water;
    if (ql->sh != NULL) {
        mcl_listener_stats cur = read_cur(ql->sh);
        stats_add(&st->receiver, &cur);
        st->receiver.kernel_drops += cur.kernel_drops > ql->sock_kdrops ? cur.kernel_drops
                                                                         : ql->sock_kdrops;
        st->receiver.partial_count = cur.partial_count;
        st->receiver.partial_bytes = cur.partial_bytes;
        st->receiver.publishers = cur.publishers;
        st->receiver.rcvbuf = cur.rcvbuf;
        st->ring_drops += atomic_load(&ql->sh->ring_drops);
        st->ring_direct += atomic_load(&ql->sh->ring_direct);
        st->ring_oversize += atomic_load(&ql->sh->ring_oversize);
        st->restart_lost += atomic_load(&ql->sh->restart_lost);
        uint64_t hw = atomic_load(&ql->ring.shm->high_water);
        if (hw > st->ring_high_water)
            st->ring_high_water = hw;
    }
    st->receiver.lost += st->restart_lost;
    st->receiver_pid = (int)ql->pid;
    st->receiver_alive = ql->pid > 0 && ql->alive;
    pthread_mutex_unlock(&ql->lock);
    st->delivered = atomic_load(&ql->delivered);
    st->undecodable = atomic_load(&ql->undecodable);
    st->restarts = atomic_load(&ql->restarts);
    st->receiver_deaths = atomic_load(&ql->deaths);
    st->ring_size = ql->opt.ring_size;
    return MCL_OK;
}

const char *
mcl_queued_listener_url(const mcl_queued_listener *ql)
{
    return ql ? ql->conn.url : "";
}

static mcl_err
source_fd(const void *obj, int *fd)
{
    return mcl_queued_listener_fd(obj, fd); // MCL_ESTATE while its callback thread runs
}

static void
source_dispatch(void *obj)
{
    (void)mcl_queued_listener_dispatch(obj, 0, NULL);
}

const mcl__source_ops mcl__queued_listener_source = {.fd = source_fd,
                                                     .dispatch = source_dispatch};
