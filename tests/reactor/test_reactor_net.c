// SPDX-License-Identifier: BSD-3-Clause
// Listeners served by one reactor thread (run inside scripts/netns.sh): 1000 raw listeners each
// receiving its own message; message and queued listeners; the one-thread rule.
#define _GNU_SOURCE
#include "harness.h"
#include "raw/wire.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { NLIS = 1000 };
static mcl_raw_listener *ls[NLIS];
static atomic_int got[NLIS];
static atomic_int total, wrong;

static void
on_msg(const mcl_raw_msg *m, void *user)
{
    int i = (int)(uintptr_t)user;
    int v = -1;
    if (m->len == sizeof(v))
        memcpy(&v, m->payload, sizeof(v));
    if (v != i)
        atomic_fetch_add(&wrong, 1);
    atomic_fetch_add(&got[i], 1);
    atomic_fetch_add(&total, 1);
}

static bool
all_in(void *arg)
{
    return atomic_load(&total) >= *(int *)arg;
}

static int
suite_init(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

static void
test_thousand_listeners_one_reactor(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    int n = rl.rlim_cur >= NLIS + 64 ? NLIS : (int)rl.rlim_cur - 64;
    if (n < NLIS)
        fprintf(stderr, "(fd limit %llu: %d listeners) ", (unsigned long long)rl.rlim_cur, n);
    atomic_store(&total, 0);
    atomic_store(&wrong, 0);
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, "udp://239.255.81.1:0?iface=lo&ttl=0&rcvbuf=0", NULL, 0));
    for (int i = 0; i < n; i++) {
        atomic_store(&got[i], 0);
        MCLT_OK(mcl_raw_listener_open(&ls[i], c, NULL, 0)); // each on its own port
        MCLT_OK(mcl_raw_listener_subscribe(ls[i], on_msg, (void *)(uintptr_t)i));
        mcl_handle h;
        MCLT_OK(mcl_reactor_add_raw_listener(r, ls[i], &h));
    }
    MCLT_OK(mcl_reactor_start(r));
    // One socket sends each listener its own datagram (wire format v1, seq i).
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    CU_ASSERT_FATAL(s >= 0);
    unsigned char ttl = 0;
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
    struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("lo")};
    setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
    for (int i = 0; i < n; i++) {
        uint8_t b[64];
        size_t len = mcl__wire_put_hdr(b, 0, 1, 0x5eed);
        len += mcl__wire_put_rec(b + len, (uint64_t)i, "r", 1, sizeof(i));
        memcpy(b + len, &i, sizeof(i));
        len += sizeof(i);
        struct sockaddr_in to = {.sin_family = AF_INET,
                                 .sin_port = htons(mcl_connection_port(mcl_raw_listener_connection(ls[i])))};
        inet_pton(AF_INET, "239.255.81.1", &to.sin_addr);
        CU_ASSERT(sendto(s, b, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len);
    }
    close(s);
    CU_ASSERT(mclt_wait_until(all_in, &n, 20000));
    mcl_reactor_free(r); // stops and joins the reactor thread
    CU_ASSERT_EQUAL(atomic_load(&total), n);
    CU_ASSERT_EQUAL(atomic_load(&wrong), 0);
    int missing = 0;
    for (int i = 0; i < n; i++) {
        if (atomic_load(&got[i]) != 1)
            missing++;
        mcl_raw_listener_free(ls[i]);
    }
    CU_ASSERT_EQUAL(missing, 0);
    mcl_connection_free(c);
}

static atomic_int msg_got, q_got;

static void
on_typed(const mcl_msg *m, const mcl_raw_msg *raw, void *user)
{
    (void)raw;
    (void)user;
    if (mcl_msg_name(m) != NULL && strcmp(mcl_msg_name(m), "Ping") == 0)
        atomic_fetch_add(&msg_got, 1);
}

static void
on_queued(const mcl_raw_msg *m, void *user)
{
    (void)m;
    (void)user;
    atomic_fetch_add(&q_got, 1);
}

static bool
both_in(void *arg)
{
    (void)arg;
    return atomic_load(&msg_got) >= 3 && atomic_load(&q_got) >= 3;
}

static void
test_message_and_queued_listeners(void)
{
    atomic_store(&msg_got, 0);
    atomic_store(&q_got, 0);
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, "udp://239.255.81.2:0?iface=lo&ttl=0", NULL, 0));
    mcl_msg_listener *ml;
    MCLT_OK(mcl_msg_listener_open(&ml, NULL, c, NULL, 0));
    MCLT_OK(mcl_msg_listener_subscribe(ml, on_typed, NULL));
    mcl_connection *bound;
    MCLT_OK(mcl_connection_parse(&bound, mcl_msg_listener_url(ml), NULL, 0));
    mcl_queued_options qo = {.no_thread = true};
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, bound, NULL, NULL, 0, &qo)); // same group and port
    MCLT_OK(mcl_queued_listener_subscribe(ql, on_queued, NULL));
    mcl_handle h1, h2;
    MCLT_OK(mcl_reactor_add_msg_listener(r, ml, &h1));
    MCLT_OK(mcl_reactor_add_queued_listener(r, ql, &h2));
    MCLT_OK(mcl_reactor_start(r));
    const mcl_msgtype *ping;
    MCLT_OK(mcl_msgtype_define(&ping, "Ping", NULL, 0, NULL, NULL, NULL, 0));
    mcl_msg_broadcaster *b;
    MCLT_OK(mcl_msg_broadcaster_open(&b, ping, bound, "ping"));
    for (int i = 0; i < 3; i++) {
        mcl_msg *m;
        MCLT_OK(mcl_msg_new(&m, ping));
        MCLT_OK(mcl_msg_broadcaster_publish(b, m, NULL));
        mcl_msg_free(m);
    }
    CU_ASSERT(mclt_wait_until(both_in, NULL, 10000));
    mcl_reactor_free(r);
    mcl_msg_broadcaster_free(b);
    mcl_queued_listener_free(ql);
    mcl_msg_listener_free(ml);
    mcl_connection_free(bound);
    mcl_connection_free(c);
    MCLT_OK(mcl_msgtype_remove("Ping"));
}

static void
test_listener_with_own_thread_is_refused(void)
{
    mcl_reactor *r;
    MCLT_OK(mcl_reactor_new(&r, NULL));
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, "udp://239.255.81.3:0?iface=lo&ttl=0", NULL, 0));
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    MCLT_OK(mcl_raw_listener_start(l));
    mcl_handle h;
    MCLT_ERR(mcl_reactor_add_raw_listener(r, l, &h), MCL_ESTATE);
    MCLT_OK(mcl_raw_listener_stop(l));
    MCLT_OK(mcl_reactor_add_raw_listener(r, l, &h));
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 1); // the housekeeping tick
    MCLT_OK(mcl_reactor_remove(r, h));
    CU_ASSERT_EQUAL(mcl_reactor_timers(r), 0); // gone with the last listener
    MCLT_ERR(mcl_reactor_remove(r, h), MCL_ENOENT);
    mcl_queued_listener *ql;
    MCLT_OK(mcl_queued_listener_new(&ql, c, NULL, NULL, 0, NULL)); // with its thread
    MCLT_ERR(mcl_reactor_add_queued_listener(r, ql, &h), MCL_ESTATE);
    mcl_queued_listener_free(ql);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
    mcl_reactor_free(r);
}

static CU_TestInfo tests[] = {
    {"thousand_listeners_one_reactor", test_thousand_listeners_one_reactor},
    {"message_and_queued_listeners", test_message_and_queued_listeners},
    {"listener_with_own_thread_is_refused", test_listener_with_own_thread_is_refused},
    CU_TEST_INFO_NULL};
MCLT_SUITE("reactor_net", suite_init, NULL, tests);
