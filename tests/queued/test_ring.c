// SPDX-License-Identifier: BSD-3-Clause
// The shared-memory ring on its own: wrap-around with variable sizes, full ring, oversize
// records, and a producer and consumer on two threads.
#include "harness.h"
#include "queued/queued_int.h"
#include "queued/ring.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static void *mem;
static mcl__ring prod, cons;

static void
make(size_t cap)
{
    free(mem);
    mem = calloc(1, mcl__ring_bytes(cap));
    CU_ASSERT_PTR_NOT_NULL_FATAL(mem);
    mcl__ring_init(mem, cap);
    mcl__ring_attach(&prod, mem);
    mcl__ring_attach(&cons, mem);
}

static bool
put(size_t len, uint8_t tag)
{
    uint8_t *p = mcl__ring_reserve(&prod, len, 7);
    if (p == NULL)
        return false;
    memset(p, tag, len);
    mcl__ring_commit(&prod);
    return true;
}

static void
test_wraparound_variable_sizes(void)
{
    make(1024);
    uint64_t s = 1;
    size_t sizes[64];
    int w = 0, r = 0;
    for (int round = 0; round < 5000; round++) {
        // Fill until full, then drain a random number, so records land at every offset.
        for (;;) {
            size_t len = 1 + (size_t)(mclt_rand(&s) % 200);
            if (w - r >= 64 || !put(len, (uint8_t)w))
                break;
            sizes[w % 64] = len;
            w++;
        }
        int take = 1 + (int)(mclt_rand(&s) % (unsigned)(w - r));
        for (int k = 0; k < take; k++) {
            uint32_t kind;
            size_t len;
            const uint8_t *p = mcl__ring_peek(&cons, &kind, &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(p);
            CU_ASSERT_EQUAL(kind, 7);
            CU_ASSERT(len >= sizes[r % 64] && len < sizes[r % 64] + 8);
            for (size_t i = 0; i < sizes[r % 64]; i++)
                if (p[i] != (uint8_t)r) {
                    CU_FAIL("corrupt record");
                    break;
                }
            mcl__ring_release(&cons);
            r++;
        }
        CU_ASSERT(mcl__ring_used(&cons) <= 1024);
    }
    CU_ASSERT(w > 10000);
}

static void
test_full_and_oversize(void)
{
    make(4096);
    CU_ASSERT_EQUAL(mcl__ring_max_body(&prod), 2048 - 8);
    CU_ASSERT_PTR_NULL(mcl__ring_reserve(&prod, 2048, 1)); // more than half: never fits
    CU_ASSERT(put(2040, 1));
    while (put(100, 2))
        ;
    while (put(8, 2)) // the smallest record takes 16 bytes
        ;
    CU_ASSERT_EQUAL(mcl__ring_used(&prod), 4096);
    // Full: nothing more, until the consumer frees space.
    CU_ASSERT_FALSE(put(1, 3));
    uint32_t kind;
    size_t len;
    CU_ASSERT_PTR_NOT_NULL(mcl__ring_peek(&cons, &kind, &len));
    CU_ASSERT_EQUAL(len, 2040);
    mcl__ring_release(&cons);
    CU_ASSERT(put(8, 3));
    // Waiting: no wait while data is there; a commit after prepare_wait asks for a wake-up.
    CU_ASSERT_FALSE(mcl__ring_prepare_wait(&cons));
    while (mcl__ring_peek(&cons, &kind, &len) != NULL)
        mcl__ring_release(&cons);
    CU_ASSERT(mcl__ring_prepare_wait(&cons));
    uint8_t *p = mcl__ring_reserve(&prod, 8, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(mcl__ring_commit(&prod)); // the consumer was waiting: wake it
    CU_ASSERT(mcl__ring_used(&cons) > 0);
    p = mcl__ring_reserve(&prod, 8, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_FALSE(mcl__ring_commit(&prod)); // nobody waits now: no wake-up needed
    CU_ASSERT(atomic_load(&prod.shm->high_water) > 4000);
}

// The consumer's next record is of that kind and length, with byte `at` equal to v.
static void
expect_record(uint32_t want_kind, size_t want_len, size_t at, uint8_t v)
{
    uint32_t kind;
    size_t len;
    const uint8_t *q = mcl__ring_peek(&cons, &kind, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(q);
    CU_ASSERT_EQUAL(kind, want_kind);
    CU_ASSERT_EQUAL(len, want_len);
    CU_ASSERT_EQUAL(q[at], v);
    mcl__ring_release(&cons);
}

// A large reservation shrunk to what was written takes only that room: the consumer sees the
// shrunk length, and the space after it is reused by the next record.
static void
test_shrink_reservation(void)
{
    make(4096);
    uint8_t *p = mcl__ring_reserve(&prod, 2000, 5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memset(p, 0xab, 100);
    mcl__ring_shrink(&prod, 100);
    mcl__ring_shrink(&prod, 3000); // (growing is not shrinking: ignored)
    CU_ASSERT_FALSE(mcl__ring_commit(&prod));
    CU_ASSERT_EQUAL(mcl__ring_used(&prod), 8 + 104);
    // An abandoned reservation (never committed) leaves no trace.
    CU_ASSERT_PTR_NOT_NULL(mcl__ring_reserve(&prod, 1500, 9));
    CU_ASSERT(put(50, 6));
    expect_record(5, 104, 99, 0xab);
    expect_record(7, 56, 0, 6);
    uint32_t kind;
    size_t len;
    CU_ASSERT_PTR_NULL(mcl__ring_peek(&cons, &kind, &len));
    // Shrinking a record that wrapped (a PAD before it) keeps the PAD.
    make(1024);
    CU_ASSERT(put(400, 1));
    CU_ASSERT(put(400, 2));
    mcl__ring_peek(&cons, &kind, &len);
    mcl__ring_release(&cons);
    p = mcl__ring_reserve(&prod, 400, 5); // 816 + 408 > 1024: wraps to the start
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p[0] = 0x5a;
    mcl__ring_shrink(&prod, 16);
    mcl__ring_commit(&prod);
    expect_record(7, 400, 0, 2);
    expect_record(5, 16, 0, 0x5a);
    CU_ASSERT_EQUAL(mcl__ring_used(&cons), 0);
}

enum { STRESS_N = 100000 };

static void *
producer(void *arg)
{
    (void)arg;
    uint64_t s = 99;
    for (uint32_t i = 0; i < STRESS_N;) {
        uint32_t len = 8 + (uint32_t)(mclt_rand(&s) % 300);
        uint8_t *p = mcl__ring_reserve(&prod, len, 1);
        if (p == NULL) {
            s ^= 1;        // retry with another size later; the consumer frees space
            sched_yield(); // (a must under valgrind, which runs one thread at a time)
            continue;
        }
        memcpy(p, &i, 4);
        memcpy(p + 4, &len, 4);
        for (size_t k = 8; k < len; k++)
            p[k] = (uint8_t)(i + k);
        mcl__ring_commit(&prod);
        i++;
    }
    return NULL;
}

static void
test_concurrent_producer_consumer(void)
{
    make(8192);
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, producer, NULL), 0);
    uint32_t next = 0;
    int64_t end = mclt_now_ms() + 60000;
    bool ok = true;
    while (next < STRESS_N && mclt_now_ms() < end) {
        uint32_t kind;
        size_t len;
        const uint8_t *p = mcl__ring_peek(&cons, &kind, &len);
        if (p == NULL) {
            sched_yield();
            continue;
        }
        uint32_t i, plen;
        memcpy(&i, p, 4);
        memcpy(&plen, p + 4, 4);
        if (i != next || kind != 1 || plen > len || len - plen >= 8)
            ok = false;
        for (size_t k = 8; k < plen && k < len; k++)
            if (p[k] != (uint8_t)(i + k))
                ok = false;
        mcl__ring_release(&cons);
        next++;
    }
    pthread_join(th, NULL);
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(next, STRESS_N);
    free(mem);
    mem = NULL;
}

static void
test_restart_gap_tracking(void)
{
    // Receiver 1 handles publisher 7 up to seq 10 and publisher 8 up to 5, then dies. Receiver
    // 2 first hears 7 at 14 (11..13 were lost in between) and 8 at 6 (nothing lost).
    static mcl__queued_shared sh;
    memset(&sh, 0, sizeof(sh));
    mcl__queued_child r1 = {&sh, 1}, r2 = {&sh, 2};
    for (uint64_t s = 0; s <= 10; s++)
        mcl__queued_track(&r1, 7, s);
    for (uint64_t s = 0; s <= 5; s++)
        mcl__queued_track(&r1, 8, s);
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 0);
    mcl__queued_track(&r2, 7, 14);
    mcl__queued_track(&r2, 8, 6);
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 3);
    mcl__queued_track(&r2, 7, 20); // later gaps belong to the receive engine, not to restarts
    mcl__queued_track(&r2, 7, 12); // late arrivals change nothing
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 3);
    // A publisher that restarted its numbering (or a forged jump) is not a loss of 2^40.
    mcl__queued_child r3 = {&sh, 3};
    mcl__queued_track(&r3, 7, (uint64_t)1 << 40);
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 3);
    // Many publishers: hash collisions are probed, not confused.
    for (uint64_t p = 100; p < 1100; p++)
        mcl__queued_track(&r3, p, 1);
    mcl__queued_child r4 = {&sh, 4};
    for (uint64_t p = 100; p < 1100; p++)
        mcl__queued_track(&r4, p, 3);
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 3 + 1000);
}

// A receiver killed between putting a message in the ring (or dropping it) and tracking it:
// the message counts as handled, so the next receiver sees no gap; one killed before either
// leaves the gap (the message was lost in its hands).
static void
test_restart_inflight_settled(void)
{
    static mcl__queued_shared sh;
    for (int committed = 0; committed < 3; committed++) {
        memset(&sh, 0, sizeof(sh));
        sh.generation = 1;
        mcl__queued_child r1 = {&sh, 1};
        for (uint64_t s = 0; s <= 10; s++)
            mcl__queued_track(&r1, 7, s);
        mcl__queued_inflight(&sh, 7, 11, 4096); // the ring's head was at 4096
        uint64_t head = 4096;
        if (committed == 1)
            head = 4096 + 128; // it reached the ring
        else if (committed == 2)
            atomic_fetch_add(&sh.ring_drops, 1); // the ring was full: counted as dropped
        mcl__queued_settle(&sh, head); // (then the receiver died)
        CU_ASSERT_EQUAL(atomic_load(&sh.inflight_pub), 0);
        sh.generation = 2;
        mcl__queued_child r2 = {&sh, 2};
        mcl__queued_track(&r2, 7, 12);
        CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), committed ? 0 : 1);
    }
    // Nothing in flight: settling changes nothing.
    memset(&sh, 0, sizeof(sh));
    mcl__queued_child r1 = {&sh, 1};
    mcl__queued_track(&r1, 9, 5);
    mcl__queued_inflight(&sh, 9, 6, 0);
    mcl__queued_inflight_done(&sh);
    mcl__queued_settle(&sh, 999);
    mcl__queued_child r2 = {&sh, 2};
    mcl__queued_track(&r2, 9, 7);
    CU_ASSERT_EQUAL(atomic_load(&sh.restart_lost), 1); // 6 was not tracked: a gap
}

static CU_TestInfo tests[] = {
    {"restart_gap_tracking", test_restart_gap_tracking},
    {"restart_inflight_settled", test_restart_inflight_settled},{"wraparound_variable_sizes", test_wraparound_variable_sizes},
                              {"full_and_oversize", test_full_and_oversize},
                              {"shrink_reservation", test_shrink_reservation},
                              {"concurrent_producer_consumer", test_concurrent_producer_consumer},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("queued_ring", NULL, NULL, tests);
