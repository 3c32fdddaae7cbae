// SPDX-License-Identifier: BSD-3-Clause
// Reactor: timers (order, cancel, delay, reset, groups, cancel inside callbacks), posting from
// many threads, stop from another thread, fd handlers (removal during dispatch), the poll
// backend, promises, the logger, and 1000 listeners on one reactor.
#define _GNU_SOURCE
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

static char order[64];
static int norder;

static void
rec(char c)
{
    if (norder < 63)
        order[norder++] = c;
    order[norder] = '\0';
}

static void
on_timer_char(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)r;
    (void)h;
    rec((char)(uintptr_t)user);
}

static void
on_stop(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)h;
    (void)user;
    mcl_reactor_stop(r);
}

static void
test_timer_order(void)
{
    norder = 0;
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_handle h;
    MCLT_OK(mcl_reactor_timer(r, 30, 0, 0, on_timer_char, (void *)'c', &h));
    MCLT_OK(mcl_reactor_timer(r, 10, 0, 0, on_timer_char, (void *)'a', &h));
    MCLT_OK(mcl_reactor_timer(r, 20, 0, 0, on_timer_char, (void *)'b', &h));
    MCLT_OK(mcl_reactor_timer(r, 10, 0, 0, on_timer_char, (void *)'A', &h)); // tie: after 'a'
    MCLT_OK(mcl_reactor_timer(r, 0, 0, 0, on_timer_char, (void *)'0', &h));
    MCLT_OK(mcl_reactor_timer(r, 50, 0, 0, on_stop, NULL, &h));
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 6);
    int64_t t0 = mclt_now_ms();
    MCLT_OK(mcl_reactor_run(r));
    CU_ASSERT(mclt_now_ms() - t0 >= 50); // never early
    CU_ASSERT_STRING_EQUAL(order, "0aAbc");
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 0);
    mcl_reactor_free(r);
}

static mcl_handle victim, periodic;
static int periodic_runs;

static void
on_cancel_victim(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)h;
    (void)user;
    rec('k');
    CU_ASSERT_EQUAL(mcl_reactor_remove(r, victim), MCL_OK); // due at the same time: not run
}

static void
on_periodic(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)user;
    rec('p');
    if (++periodic_runs == 3)
        CU_ASSERT_EQUAL(mcl_reactor_remove(r, h), MCL_OK); // cancels itself
}

static void
test_timer_cancel_delay_reset_groups(void)
{
    norder = 0;
    periodic_runs = 0;
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_handle h, later, moved, keep, g1, g2, g3;
    MCLT_OK(mcl_reactor_timer(r, 100, 0, 0, on_cancel_victim, NULL, &h));
    MCLT_OK(mcl_reactor_timer(r, 100, 0, 0, on_timer_char, (void *)'V', &victim));
    MCLT_OK(mcl_reactor_timer(r, 50, 0, 0, on_timer_char, (void *)'X', &h));
    MCLT_OK(mcl_reactor_remove(r, h)); // cancelled before running
    MCLT_ERR(mcl_reactor_remove(r, h), MCL_ENOENT);
    MCLT_OK(mcl_reactor_timer(r, 150, 0, 0, on_timer_char, (void *)'D', &later));
    MCLT_OK(mcl_reactor_timer_delay(r, later, 400)); // now at 550
    MCLT_OK(mcl_reactor_timer(r, 800, 0, 0, on_timer_char, (void *)'R', &moved));
    MCLT_OK(mcl_reactor_timer_reset(r, moved, 300)); // now at 300
    MCLT_OK(mcl_reactor_timer(r, 450, 0, 0, on_timer_char, (void *)'E', &keep));
    MCLT_ERR(mcl_reactor_timer_reset_if_earlier(r, keep, 600), MCL_EALREADY);
    MCLT_OK(mcl_reactor_timer_reset_if_earlier(r, keep, 400)); // now at 400
    MCLT_OK(mcl_reactor_timer(r, 200, 0, 7, on_timer_char, (void *)'G', &g1));
    MCLT_OK(mcl_reactor_timer(r, 250, 0, 7, on_timer_char, (void *)'G', &g2));
    MCLT_OK(mcl_reactor_timer(r, 260, 0, 8, on_timer_char, (void *)'H', &g3));
    CU_ASSERT_EQUAL(mcl_reactor_cancel_group(r, 7), 2);
    CU_ASSERT_EQUAL(mcl_reactor_cancel_group(r, 7), 0);
    MCLT_OK(mcl_reactor_timer(r, 10, 120, 0, on_periodic, NULL, &periodic)); // 10, 130, 250
    MCLT_OK(mcl_reactor_timer(r, 800, 0, 0, on_stop, NULL, &h));
    MCLT_OK(mcl_reactor_run(r));
    // p@10 k@100 (V cancelled) p@130 p@250 H@260 R@300 E@400 D@550 (milliseconds: wide
    // enough that the time taken to schedule them, even under valgrind, cannot reorder them)
    if (strcmp(order, "pkppHRED") != 0)
        fprintf(stderr, "\n  timers ran in the order %s ", order);
    CU_ASSERT_STRING_EQUAL(order, "pkppHRED");
    CU_ASSERT_EQUAL(periodic_runs, 3);
    MCLT_ERR(mcl_reactor_timer_delay(r, later, 1), MCL_ENOENT); // fired: gone
    mcl_reactor_free(r);
}

// --- posting from many threads ------------------------------------------------------------------

enum { POSTERS = 4, POSTS = 20000 };
static atomic_int post_count;
static int last_seen[POSTERS];
static atomic_bool post_order_ok;
static mcl_reactor *R;

static void
on_post(mcl_reactor *r, void *arg)
{
    (void)r;
    uintptr_t v = (uintptr_t)arg;
    int t = (int)(v >> 32), i = (int)(v & 0xffffffff);
    if (i != last_seen[t] + 1) // runs on the reactor thread only: no race on last_seen
        atomic_store(&post_order_ok, false);
    last_seen[t] = i;
    atomic_fetch_add(&post_count, 1);
}

static void *
poster(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    for (int i = 0; i < POSTS; i++)
        while (mcl_reactor_post(R, on_post, (void *)(t << 32 | (uintptr_t)i)) != MCL_OK)
            ;
    return NULL;
}

static bool
all_posted(void *arg)
{
    (void)arg;
    return atomic_load(&post_count) == POSTERS * POSTS;
}

static atomic_bool when_running;
static void
mark_running(mcl_reactor *r, void *arg)
{
    (void)arg;
    CU_ASSERT(mcl_reactor_in_loop(r));
    atomic_store(&when_running, true);
}
static bool
is_running(void *arg)
{
    (void)arg;
    return atomic_load(&when_running);
}

static pthread_t reactor_tid;
static void
where(mcl_reactor *r, void *arg)
{
    CU_ASSERT(mcl_reactor_in_loop(r));
    *(pthread_t *)arg = pthread_self();
}

static void
test_posts_from_many_threads_and_stop(void)
{
    atomic_store(&post_count, 0);
    atomic_store(&post_order_ok, true);
    for (int i = 0; i < POSTERS; i++)
        last_seen[i] = -1;
    MCLT_OK(mcl_reactor_new(&R, NULL));
    atomic_store(&when_running, false);
    MCLT_OK(mcl_reactor_post(R, mark_running, NULL)); // "call when running": waits for the loop
    CU_ASSERT_FALSE(atomic_load(&when_running));
    MCLT_OK(mcl_reactor_start(R));
    MCLT_ERR(mcl_reactor_start(R), MCL_ESTATE);
    CU_ASSERT(mclt_wait_until(is_running, NULL, 10000));
    pthread_t th[POSTERS];
    for (uintptr_t t = 0; t < POSTERS; t++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[t], NULL, poster, (void *)t), 0);
    for (int t = 0; t < POSTERS; t++)
        pthread_join(th[t], NULL);
    CU_ASSERT(mclt_wait_until(all_posted, NULL, 20000));
    CU_ASSERT(atomic_load(&post_order_ok)); // each exactly once, in each thread's order
    MCLT_OK(mcl_reactor_call(R, where, &reactor_tid)); // runs there, and waits
    CU_ASSERT_FALSE(pthread_equal(reactor_tid, pthread_self()));
    MCLT_OK(mcl_reactor_stop(R)); // from another thread
    mcl_reactor_free(R);          // joins
    CU_ASSERT_EQUAL(atomic_load(&post_count), POSTERS * POSTS);
    R = NULL;
}

// --- fds ---------------------------------------------------------------------------------------

static int efd_a, efd_b;
static mcl_handle ha, hb;
static int a_calls, b_calls;

static void
on_a(mcl_reactor *r, int fd, int events, void *user)
{
    (void)user;
    CU_ASSERT(events & MCL_EV_READ);
    uint64_t v;
    CU_ASSERT_EQUAL(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    a_calls++;
    // Both fds are readable in this round: removing b now means b is not called.
    CU_ASSERT_EQUAL(mcl_reactor_remove(r, hb), MCL_OK);
    CU_ASSERT_EQUAL(mcl_reactor_remove(r, ha), MCL_OK); // and itself
    mcl_reactor_stop(r);
}

static void
on_b(mcl_reactor *r, int fd, int events, void *user)
{
    (void)events;
    (void)user;
    uint64_t v;
    CU_ASSERT_EQUAL(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
    b_calls++;
    CU_ASSERT_EQUAL(mcl_reactor_remove(r, ha), MCL_OK);
    CU_ASSERT_EQUAL(mcl_reactor_remove(r, hb), MCL_OK);
    mcl_reactor_stop(r);
}

static void
fd_removal_round(bool use_poll)
{
    a_calls = b_calls = 0;
    mcl_reactor_options o = {.use_poll = use_poll};
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, &o));
    efd_a = eventfd(1, EFD_NONBLOCK);
    efd_b = eventfd(1, EFD_NONBLOCK);
    MCLT_OK(mcl_reactor_add_fd(r, efd_a, MCL_EV_READ, on_a, NULL, &ha));
    MCLT_OK(mcl_reactor_add_fd(r, efd_b, MCL_EV_READ, on_b, NULL, &hb));
    MCLT_ERR(mcl_reactor_add_fd(r, efd_a, MCL_EV_READ, on_a, NULL, NULL), MCL_EEXIST);
    mcl_handle guard;
    MCLT_OK(mcl_reactor_timer(r, 5000, 0, 0, on_stop, NULL, &guard)); // bound the test
    MCLT_OK(mcl_reactor_run(r));
    CU_ASSERT_EQUAL(a_calls + b_calls, 1); // whichever ran first removed the other
    close(efd_a);
    close(efd_b);
    mcl_reactor_free(r);
}

static int pipe_w_events;
static void
on_pipe(mcl_reactor *r, int fd, int events, void *user)
{
    (void)fd;
    (void)user;
    pipe_w_events |= events;
    if (events & MCL_EV_HUP)
        mcl_reactor_stop(r);
}

static void
close_writer(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)r;
    (void)h;
    close(*(int *)user);
}

static void
test_fd_handlers_epoll_and_poll(void)
{
    fd_removal_round(false);
    fd_removal_round(true);
    // Hang-up is reported even when only reading is asked for; write interest via modify.
    for (int k = 0; k < 2; k++) {
        pipe_w_events = 0;
        int p[2];
        CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
        mcl_reactor_options o = {.use_poll = k == 1};
        mcl_reactor *r;
        MCLT_OK(mcl_reactor_new(&r, &o));
        mcl_handle h, t;
        MCLT_OK(mcl_reactor_add_fd(r, p[0], 0, on_pipe, NULL, &h));
        MCLT_OK(mcl_reactor_modify_fd(r, h, MCL_EV_READ));
        MCLT_OK(mcl_reactor_timer(r, 10, 0, 0, close_writer, &p[1], &t));
        MCLT_OK(mcl_reactor_timer(r, 5000, 0, 0, on_stop, NULL, &t));
        MCLT_OK(mcl_reactor_run(r));
        CU_ASSERT(pipe_w_events & MCL_EV_HUP);
        close(p[0]);
        mcl_reactor_free(r);
    }
}

// --- promises ----------------------------------------------------------------------------------

static int settled_calls, cancel_calls;
static mcl_err settled_status;
static void *settled_value;

static void
on_settled(mcl_promise *p, mcl_err status, void *value, void *user)
{
    (void)p;
    (void)user;
    settled_calls++;
    settled_status = status;
    settled_value = value;
}

static void
on_cancelled(mcl_promise *p, void *user)
{
    (void)p;
    (void)user;
    CU_ASSERT_EQUAL(settled_calls, 0); // the canceller runs before the callback
    cancel_calls++;
}

// Runs the loop until what is posted now, and what that posts in turn, has run (a chain of
// three rounds is enough for promise callbacks that settle other promises).
static int spin_rounds;
static void
stop_after_rounds(mcl_reactor *r, void *arg)
{
    if (--spin_rounds > 0)
        mcl_reactor_post(r, stop_after_rounds, arg);
    else
        mcl_reactor_stop(r);
}

static void
spin(mcl_reactor *r, int64_t ms)
{
    mcl_handle t;
    if (ms > 0) {
        MCLT_OK(mcl_reactor_timer(r, ms, 0, 0, on_stop, NULL, &t));
    } else {
        spin_rounds = 3;
        MCLT_OK(mcl_reactor_post(r, stop_after_rounds, NULL));
    }
    MCLT_OK(mcl_reactor_run(r));
}

static void
test_promises(void)
{
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    int v1 = 1;
    // Fires once, with the first result.
    settled_calls = 0;
    mcl_promise *p;
    MCLT_OK(mcl_promise_new(&p, r));
    MCLT_OK(mcl_promise_then(p, on_settled, NULL));
    MCLT_ERR(mcl_promise_then(p, on_settled, NULL), MCL_EALREADY);
    CU_ASSERT_FALSE(mcl_promise_settled(p, NULL, NULL));
    MCLT_OK(mcl_promise_resolve(p, &v1));
    MCLT_ERR(mcl_promise_resolve(p, NULL), MCL_EALREADY);
    MCLT_ERR(mcl_promise_fail(p, MCL_EPROTO), MCL_EALREADY);
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_OK);
    CU_ASSERT_PTR_EQUAL(settled_value, &v1);
    mcl_promise_unref(p);
    // A callback set after the result still runs.
    settled_calls = 0;
    MCLT_OK(mcl_promise_new(&p, r));
    MCLT_OK(mcl_promise_fail(p, MCL_EPROTO));
    MCLT_OK(mcl_promise_then(p, on_settled, NULL));
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_EPROTO);
    mcl_promise_unref(p);
    // Cancel before the result: canceller, then the callback with MCL_ECANCELED.
    settled_calls = cancel_calls = 0;
    MCLT_OK(mcl_promise_new(&p, r));
    MCLT_OK(mcl_promise_set_canceller(p, on_cancelled, NULL));
    MCLT_OK(mcl_promise_then(p, on_settled, NULL));
    MCLT_OK(mcl_promise_cancel(p));
    MCLT_ERR(mcl_promise_cancel(p), MCL_EALREADY);
    MCLT_ERR(mcl_promise_resolve(p, &v1), MCL_EALREADY);
    spin(r, 0);
    CU_ASSERT_EQUAL(cancel_calls, 1);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_ECANCELED);
    mcl_promise_unref(p);
    // Timeout, then a late result that changes nothing.
    settled_calls = 0;
    MCLT_OK(mcl_promise_new(&p, r));
    MCLT_OK(mcl_promise_then(p, on_settled, NULL));
    MCLT_OK(mcl_promise_timeout(p, 10));
    spin(r, 40);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_ETIMEDOUT);
    MCLT_ERR(mcl_promise_resolve(p, &v1), MCL_EALREADY);
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    mcl_promise_unref(p);
    // A result before the timeout cancels the timer.
    MCLT_OK(mcl_promise_new(&p, r));
    MCLT_OK(mcl_promise_timeout(p, 10000));
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 1);
    MCLT_OK(mcl_promise_resolve(p, NULL));
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 0);
    mcl_promise_unref(p);
    // All-of.
    mcl_promise *ps[3], *all;
    for (int i = 0; i < 3; i++)
        MCLT_OK(mcl_promise_new(&ps[i], r));
    settled_calls = 0;
    MCLT_OK(mcl_promise_all(&all, r, ps, 3));
    MCLT_OK(mcl_promise_then(all, on_settled, NULL));
    MCLT_OK(mcl_promise_resolve(ps[0], NULL));
    MCLT_OK(mcl_promise_resolve(ps[2], NULL));
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 0); // one still pending
    MCLT_OK(mcl_promise_resolve(ps[1], NULL));
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_OK);
    mcl_promise_unref(all);
    for (int i = 0; i < 3; i++) {
        mcl_promise_unref(ps[i]);
        MCLT_OK(mcl_promise_new(&ps[i], r));
    }
    settled_calls = 0;
    MCLT_OK(mcl_promise_all(&all, r, ps, 3));
    MCLT_OK(mcl_promise_then(all, on_settled, NULL));
    MCLT_OK(mcl_promise_fail(ps[1], MCL_ENODEV));
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    CU_ASSERT_EQUAL(settled_status, MCL_ENODEV);
    MCLT_OK(mcl_promise_resolve(ps[0], NULL));
    MCLT_OK(mcl_promise_resolve(ps[2], NULL));
    spin(r, 0);
    CU_ASSERT_EQUAL(settled_calls, 1);
    mcl_promise_unref(all);
    for (int i = 0; i < 3; i++)
        mcl_promise_unref(ps[i]);
    MCLT_OK(mcl_promise_all(&all, r, NULL, 0));
    CU_ASSERT(mcl_promise_settled(all, NULL, NULL));
    mcl_promise_unref(all);
    mcl_reactor_free(r);
}

// --- logger ------------------------------------------------------------------------------------

static int sink_a, sink_b;
static void
count_a(mcl_log_level l, const char *c, const char *m, void *u)
{
    (void)l;
    (void)c;
    (void)m;
    (void)u;
    sink_a++;
}
static void
count_b(mcl_log_level l, const char *c, const char *m, void *u)
{
    (void)l;
    (void)m;
    (void)u;
    CU_ASSERT(strncmp(c, "url", 3) == 0);
    sink_b++;
}

static void
test_logger(void)
{
    mcl_logger *lg;
    MCLT_OK(mcl_logger_new(&lg));
    MCLT_OK(mcl_logger_add_sink(lg, count_a, NULL, MCL_LOG_WARN, NULL));
    MCLT_OK(mcl_logger_add_sink(lg, count_b, NULL, MCL_LOG_DEBUG, "url"));
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    MCLT_OK(mcl_logger_add_file(lg, f, MCL_LOG_INFO, NULL));
    mcl_logger_log(lg, MCL_LOG_DEBUG, "app", "not for a"); // nobody
    mcl_logger_log(lg, MCL_LOG_ERROR, "app", "for a %d", 1);
    CU_ASSERT_EQUAL(sink_a, 1);
    CU_ASSERT_EQUAL(sink_b, 0);
    // The library's records go through it once installed.
    mcl_logger_install(lg);
    mcl_connection *c;
    MCLT_ERR(mcl_connection_parse(&c, "udp://1.2.3.4:5", NULL, 0), MCL_EURL); // a warning
    CU_ASSERT_EQUAL(sink_a, 2);
    CU_ASSERT_EQUAL(sink_b, 1);
    mcl_logger_free(lg); // uninstalls
    MCLT_ERR(mcl_connection_parse(&c, "udp://1.2.3.4:5", NULL, 0), MCL_EURL);
    CU_ASSERT_EQUAL(sink_a, 2);
    rewind(f);
    char line[256] = "";
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof(line), f));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "error app: for a 1"));
    fclose(f);
}

static bool
can_start(void *arg)
{
    return mcl_reactor_start(arg) == MCL_OK;
}

static int far_fired;
static void
on_far(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)h;
    (void)user;
    far_fired++;
    mcl_reactor_stop(r);
}

static void *
resolver(void *arg)
{
    mcl_promise **ps = arg;
    for (int i = 0; i < 2000; i++)
        mcl_promise_resolve(ps[i], NULL);
    return NULL;
}

static void
test_lifecycle_edges(void)
{
    // A stop right after start is not lost, and the reactor can be started again.
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    for (int i = 0; i < 20; i++) {
        // Starts as soon as the previous thread, stopped right after its start, has ended
        // (a lost stop would keep start() at MCL_ESTATE).
        CU_ASSERT_FATAL(mclt_wait_until(can_start, r, 5000));
        MCLT_OK(mcl_reactor_stop(r));
    }
    mcl_reactor_free(r);
    // A timer 30 days away does not put the loop to sleep past a near one.
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_handle far, near;
    far_fired = 0;
    MCLT_OK(mcl_reactor_timer(r, 30LL * 86400 * 1000, 0, 0, on_far, NULL, &far));
    MCLT_OK(mcl_reactor_timer(r, 10, 0, 0, on_far, NULL, &near));
    MCLT_OK(mcl_reactor_run(r)); // returns once the near one fired
    CU_ASSERT_EQUAL(far_fired, 1);
    MCLT_ERR(mcl_reactor_timer(r, (int64_t)1 << 62, 0, 0, on_far, NULL, &near), MCL_EINVAL);
    MCLT_ERR(mcl_reactor_timer_reset(r, far, -5), MCL_EINVAL);
    mcl_reactor_free(r); // drops the far timer
    // Promises with timeouts racing with results from another thread: none leaks (LSan and
    // valgrind check at exit), each settles exactly once.
    MCLT_OK(mcl_reactor_new(&r, NULL));
    MCLT_OK(mcl_reactor_start(r));
    static mcl_promise *ps[2000];
    for (int i = 0; i < 2000; i++) {
        MCLT_OK(mcl_promise_new(&ps[i], r));
        MCLT_OK(mcl_promise_timeout(ps[i], i % 3));
    }
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, resolver, ps), 0);
    pthread_join(th, NULL);
    for (int i = 0; i < 2000; i++) {
        mcl_err st;
        CU_ASSERT(mcl_promise_settled(ps[i], &st, NULL));
        CU_ASSERT(st == MCL_OK || st == MCL_ETIMEDOUT);
        mcl_promise_unref(ps[i]);
    }
    mcl_reactor_free(r);
    // The poll backend refuses what epoll refuses.
    mcl_reactor_options o = {.use_poll = true};
    MCLT_OK(mcl_reactor_new(&r, &o));
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    mcl_handle h;
    MCLT_ERR(mcl_reactor_add_fd(r, fileno(f), MCL_EV_READ, on_a, NULL, &h), MCL_EINVAL);
    MCLT_ERR(mcl_reactor_add_fd(r, 999, MCL_EV_READ, on_a, NULL, &h), MCL_EINVAL);
    fclose(f);
    mcl_reactor_free(r);
}

static CU_TestInfo tests[] = {
    {"lifecycle_edges", test_lifecycle_edges},
    {"timer_order", test_timer_order},
    {"timer_cancel_delay_reset_groups", test_timer_cancel_delay_reset_groups},
    {"posts_from_many_threads_and_stop", test_posts_from_many_threads_and_stop},
    {"fd_handlers_epoll_and_poll", test_fd_handlers_epoll_and_poll},
    {"promises", test_promises},
    {"logger", test_logger},
    CU_TEST_INFO_NULL};
MCLT_SUITE("reactor_core", NULL, NULL, tests);
