// SPDX-License-Identifier: BSD-3-Clause
// Reactor costs: dispatch per posted function and per fd event, timer schedule and cancel
// (1M timers), and one reactor thread serving 100 listeners that receive together.
// Prints key=value lines. Run inside scripts/netns.sh (the listener part sends multicast).
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { POSTS = 1000000, FD_EVENTS = 200000, TIMERS = 1000000, LISTENERS = 100, PER_LISTENER = 2000 };

static long count;
static void
on_post(mcl_reactor *r, void *arg)
{
    (void)arg;
    if (++count == POSTS)
        mcl_reactor_stop(r);
}

static int efd;
static void
on_fd(mcl_reactor *r, int fd, int events, void *user)
{
    (void)events;
    (void)user;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) != sizeof(v))
        return;
    if (++count == FD_EVENTS) {
        mcl_reactor_stop(r);
        return;
    }
    v = 1;
    if (write(efd, &v, sizeof(v)) != sizeof(v)) // the next event: one per loop iteration
        mcl_reactor_stop(r);
}

static void
on_timer(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)r;
    (void)h;
    (void)user;
}

static atomic_long received;
static void
on_msg(const mcl_raw_msg *m, void *user)
{
    (void)m;
    (void)user;
    atomic_fetch_add(&received, 1);
}

int
main(void)
{
    mcl_reactor *r;
    if (mcl_reactor_new(&r, NULL) != MCL_OK)
        return 1;
    // Posted functions: enqueue (with its allocation) plus dispatch.
    double t0 = now_s();
    for (long i = 0; i < POSTS; i++)
        if (mcl_reactor_post(r, on_post, NULL) != MCL_OK)
            return 1;
    mcl_reactor_run(r);
    double post_ns = (now_s() - t0) * 1e9 / POSTS;
    // fd events: an eventfd made readable again by each callback.
    count = 0;
    efd = eventfd(1, EFD_NONBLOCK);
    mcl_handle h;
    mcl_reactor_add_fd(r, efd, MCL_EV_READ, on_fd, NULL, &h);
    t0 = now_s();
    mcl_reactor_run(r);
    double fd_ns = (now_s() - t0) * 1e9 / FD_EVENTS;
    mcl_reactor_remove(r, h);
    close(efd);
    // Timers: schedule 1M (random deadlines in the next hour), then cancel them all.
    mcl_handle *hs = malloc(TIMERS * sizeof(*hs));
    if (hs == NULL)
        return 1;
    uint64_t seed = 1;
    t0 = now_s();
    for (long i = 0; i < TIMERS; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        mcl_reactor_timer(r, (int64_t)(seed >> 40) % 3600000 + 1000, 0, 0, on_timer, NULL, &hs[i]);
    }
    double sched_ns = (now_s() - t0) * 1e9 / TIMERS;
    t0 = now_s();
    for (long i = 0; i < TIMERS; i++)
        mcl_reactor_remove(r, hs[(i * 7919) % TIMERS]); // a scattered order
    double cancel_ns = (now_s() - t0) * 1e9 / TIMERS;
    free(hs);
    printf("reactor post_and_dispatch_ns=%.0f fd_event_ns=%.0f timer_schedule_ns=%.0f "
           "timer_cancel_ns=%.0f timers=%d left=%zu\n",
           post_ns, fd_ns, sched_ns, cancel_ns, TIMERS, mcl_reactor_timers(r));
    // 100 listeners on one reactor thread; 100 sender processes publish together.
    mcl_raw_listener *ls[LISTENERS];
    mcl_connection *conns[LISTENERS];
    for (int i = 0; i < LISTENERS; i++) {
        char url[96];
        snprintf(url, sizeof(url), "udp://239.255.92.%d:0?iface=lo&ttl=0", i + 1);
        if (mcl_connection_parse(&conns[i], url, NULL, 0) != MCL_OK ||
            mcl_raw_listener_open(&ls[i], conns[i], NULL, 0) != MCL_OK ||
            mcl_raw_listener_subscribe(ls[i], on_msg, NULL) != MCL_OK ||
            mcl_reactor_add_raw_listener(r, ls[i], NULL) != MCL_OK)
            return 1;
    }
    mcl_reactor_start(r);
    pid_t pids[LISTENERS];
    t0 = now_s();
    for (int i = 0; i < LISTENERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            mcl_connection *c;
            mcl_raw_broadcaster *b;
            if (mcl_connection_parse(&c, mcl_raw_listener_url(ls[i]), NULL, 0) != MCL_OK ||
                mcl_raw_broadcaster_open(&b, c, "t") != MCL_OK)
                _exit(1);
            uint8_t p[64] = {0};
            for (int k = 0; k < PER_LISTENER; k++)
                if (mcl_raw_broadcaster_publish(b, NULL, p, sizeof(p)) != MCL_OK)
                    _exit(1);
            _exit(0);
        }
    }
    for (int i = 0; i < LISTENERS; i++)
        waitpid(pids[i], NULL, 0);
    double deadline = now_s() + 10;
    while (atomic_load(&received) < (long)LISTENERS * PER_LISTENER && now_s() < deadline) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    double secs = now_s() - t0;
    uint64_t lost = 0, kdrops = 0;
    mcl_reactor_free(r);
    for (int i = 0; i < LISTENERS; i++) {
        mcl_listener_stats st;
        mcl_raw_listener_stats(ls[i], &st);
        lost += st.lost;
        kdrops += st.kernel_drops;
        mcl_raw_listener_free(ls[i]);
        mcl_connection_free(conns[i]);
    }
    long want = (long)LISTENERS * PER_LISTENER;
    printf("listeners=%d sent=%ld received=%ld lost=%llu kernel_drops=%llu msgs_per_s=%.0f\n",
           LISTENERS, want, atomic_load(&received), (unsigned long long)lost,
           (unsigned long long)kdrops, (double)atomic_load(&received) / secs);
    return 0;
}
