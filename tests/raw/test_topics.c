// SPDX-License-Identifier: BSD-3-Clause
// Per-topic statistics of raw listeners (lib/raw/topics.c, docs/topics.md): the engine with
// message timestamps the test chooses (rates, periods, jitter, a stopped topic, caps and
// eviction, loss and duplicates), the type-name peek on hostile msgpack, and the listener API
// over inproc:// (and zmq+inproc:// for loss per topic): rows, pairs of two broadcasters,
// types, caps, decay in real time, every delivery path. No sockets (ctest label unit).
#include "core/internal.h"
#include "harness.h"
#include "raw/topics.h"
#include "raw/wire.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if MCL_HAVE_ZMQ
#include <zmq.h>
#endif

#define NS 1000000000LL
#define MS 1000000LL

static const uint8_t typed_imu[] = {0x82, 0xa4, 'n', 'a',  'm', 'e', 0xa3,
                                    'I',  'm',  'u', 0xa1, 'x', 0x01};

// One synthetic delivered message.
static void
feed(mcl__topics *t, const char *topic, uint64_t pub, uint64_t seq, int64_t mono,
     const void *payload, size_t len)
{
    mcl_raw_msg m = {.topic = topic,
                     .topic_len = strlen(topic),
                     .payload = payload,
                     .len = len,
                     .publisher = pub,
                     .seq = seq,
                     .recv_mono_ns = mono,
                     .recv_realtime_ns = mono + 1000 * NS};
    mcl__topics_count(t, &m, false); // the short path where it applies, as in a listener
}

// mcl__topics_rows() after a publish (what a listener does once it has delivered what it
// read).
static size_t
rows_of(mcl__topics *t, int64_t now, bool pairs, const char *topic, mcl_topic_stats *out,
        size_t cap)
{
    mcl__topics_publish(t);
    return mcl__topics_rows(t, now, pairs, topic, out, cap);
}

// The row of one topic (per-topic rows), as of now.
static bool
row_of(mcl__topics *t, int64_t now, const char *topic, mcl_topic_stats *out)
{
    static mcl_topic_stats rows[64];
    size_t n = rows_of(t, now, false, NULL, rows, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(rows[i].topic, topic) == 0) {
            *out = rows[i];
            return true;
        }
    return false;
}

static mcl__topics *
new_topics(void)
{
    mcl__topics *t = mcl__topics_new();
    CU_ASSERT_FATAL(t != NULL);
    return t;
}

// Two topics at 100 Hz and 10 Hz for 10 s of message time: rates, periods, bandwidth and
// history exact to the bucket; then the fast one stops and its rate decays to 0.
static void
test_engine_rates(void)
{
    mcl__topics *t = new_topics();
    uint8_t buf[256] = {0};
    const int64_t t0 = 1000 * NS + 300 * MS; // not on a second boundary
    uint64_t seq = 0;
    for (int64_t i = 0; i < 1000; i++) { // a: 100 Hz, 64 B
        int64_t ts = t0 + i * 10 * MS;
        feed(t, "a", 1, seq++, ts, buf, 64);
        if (i % 10 == 0)
            feed(t, "b", 1, seq++, ts, buf, 200); // b: 10 Hz, 200 B
    }
    int64_t end = t0 + 999 * 10 * MS;
    int64_t now = end + 5 * MS;
    mcl_topic_stats a = {0}, b = {0};
    CU_ASSERT_FATAL(row_of(t, now, "a", &a) && row_of(t, now, "b", &b));
    CU_ASSERT_EQUAL(a.messages, 1000);
    CU_ASSERT_EQUAL(b.messages, 100);
    CU_ASSERT(fabs(a.rate_hz - 100) < 2);
    CU_ASSERT(fabs(b.rate_hz - 10) < 0.5);
    CU_ASSERT(fabs(a.period_ms - 10) < 0.01);
    CU_ASSERT(fabs(b.period_ms - 100) < 0.1);
    CU_ASSERT(a.jitter_ms < 0.01);
    CU_ASSERT(fabs(a.bandwidth_bps - 6400) < 130);
    CU_ASSERT(fabs(b.bandwidth_bps - 2000) < 100);
    CU_ASSERT_EQUAL(a.bytes, 64000);
    CU_ASSERT_EQUAL(a.publishers, 1);
    CU_ASSERT_EQUAL(a.first_seen_ns, t0 + 1000 * NS);
    CU_ASSERT_EQUAL(a.last_seen_ns, end + 1000 * NS);
    // History: the 16 whole seconds before now's; the stream covered seconds 1000..1010.
    // Seconds 1001..1009 are whole at 100 messages (1010 is the current one).
    for (int k = 0; k < 16; k++) {
        int64_t s = now / NS - 16 + k;
        uint32_t want = s >= 1001 && s <= 1009 ? 100 : s == 1000 ? 70 : 0;
        CU_ASSERT_EQUAL(a.rate_history[k], want);
    }
    // Stopped: 2.5 s later the window still holds ~2.5 s of it; after the window nothing.
    CU_ASSERT_FATAL(row_of(t, end + 2500 * MS, "a", &a));
    CU_ASSERT(a.rate_hz > 20 && a.rate_hz < 80);
    CU_ASSERT_FATAL(row_of(t, end + 6100 * MS, "a", &a));
    CU_ASSERT_EQUAL(a.rate_hz, 0);
    CU_ASSERT_EQUAL(a.bandwidth_bps, 0);
    CU_ASSERT_EQUAL(a.period_ms, 0);
    CU_ASSERT_EQUAL(a.messages, 1000); // the totals stay
    // Much later (the ring wrapped): still 0, history empty.
    CU_ASSERT_FATAL(row_of(t, end + 100 * NS, "a", &a));
    CU_ASSERT_EQUAL(a.rate_hz, 0);
    for (int k = 0; k < 16; k++)
        CU_ASSERT_EQUAL(a.rate_history[k], 0);
    mcl__topics_free(t);
}

// A topic first seen inside the window: its rate from the time since its first message.
// Jitter: intervals alternating 8 and 12 ms have a mean of 10 and a deviation of 2 ms.
static void
test_engine_start_and_jitter(void)
{
    mcl__topics *t = new_topics();
    int64_t ts = 50 * NS + 900 * MS;
    for (int i = 0; i < 51; i++) {
        feed(t, "j", 7, (uint64_t)i, ts, NULL, 0);
        ts += i % 2 ? 12 * MS : 8 * MS;
    }
    // 51 messages over 0.5 s; asked 0.5 ms after the last.
    int64_t last = 50 * NS + 900 * MS + 25 * 20 * MS;
    mcl_topic_stats j = {0};
    CU_ASSERT_FATAL(row_of(t, last + MS / 2, "j", &j));
    CU_ASSERT(fabs(j.rate_hz - 100) < 2);
    CU_ASSERT(fabs(j.period_ms - 10) < 0.01);
    CU_ASSERT(fabs(j.jitter_ms - 2) < 0.01);
    CU_ASSERT_EQUAL(j.size_max, 0);
    // One message: a rate of 0, no period.
    feed(t, "one", 7, 100, last, NULL, 0);
    mcl_topic_stats o = {0};
    CU_ASSERT_FATAL(row_of(t, last + 10 * MS, "one", &o));
    CU_ASSERT_EQUAL(o.rate_hz, 0);
    CU_ASSERT_EQUAL(o.period_ms, 0);
    CU_ASSERT_EQUAL(o.messages, 1);
    // A pause longer than the window is no inter-arrival time.
    feed(t, "j", 7, 200, last + 60 * NS, NULL, 0);
    feed(t, "j", 7, 201, last + 60 * NS + 20 * MS, NULL, 0);
    CU_ASSERT_FATAL(row_of(t, last + 60 * NS + 21 * MS, "j", &j));
    CU_ASSERT(fabs(j.period_ms - 20) < 0.01);
    mcl__topics_free(t);
}

// Sizes, pairs of two publishers, the type and "(mixed)", reordering, loss and duplicates.
static void
test_engine_pairs_sizes_types(void)
{
    mcl__topics *t = new_topics();
    uint8_t big[300] = {0x80}; // an empty map: untyped
    int64_t ts = 10 * NS;
    feed(t, "imu", 2, 0, ts, typed_imu, sizeof(typed_imu));
    feed(t, "imu", 1, 0, ts + MS, typed_imu, sizeof(typed_imu));
    feed(t, "imu", 2, 2, ts + 2 * MS, typed_imu, sizeof(typed_imu));
    feed(t, "imu", 2, 1, ts + 3 * MS, typed_imu, sizeof(typed_imu)); // late
    feed(t, "cam", 1, 1, ts + 4 * MS, big, 10);
    feed(t, "cam", 1, 2, ts + 5 * MS, big, 300);
    feed(t, "cam", 1, 3, ts + 6 * MS, typed_imu, sizeof(typed_imu)); // not looked at (3rd)
    mcl_topic_stats rows[8];
    CU_ASSERT_EQUAL_FATAL(rows_of(t, ts + 7 * MS, false, NULL, rows, 8), 2);
    CU_ASSERT_STRING_EQUAL(rows[0].topic, "cam"); // sorted
    CU_ASSERT_STRING_EQUAL(rows[1].topic, "imu");
    CU_ASSERT_EQUAL(rows[0].size_min, 10);
    CU_ASSERT_EQUAL(rows[0].size_max, 300);
    CU_ASSERT(fabs(rows[0].size_mean - (10 + 300 + sizeof(typed_imu)) / 3.0) < 1e-9);
    CU_ASSERT_STRING_EQUAL(rows[0].type, "");
    CU_ASSERT_STRING_EQUAL(rows[1].type, "Imu");
    CU_ASSERT_EQUAL(rows[1].publishers, 2);
    CU_ASSERT_EQUAL(rows[1].publisher, 0);
    CU_ASSERT_EQUAL(rows[1].reordered, 1);
    // Pairs: every topic's, then one topic's, sorted by topic then publisher.
    CU_ASSERT_EQUAL_FATAL(rows_of(t, ts + 7 * MS, true, NULL, rows, 8), 3);
    CU_ASSERT(strcmp(rows[0].topic, "cam") == 0 && rows[0].publisher == 1);
    CU_ASSERT(strcmp(rows[1].topic, "imu") == 0 && rows[1].publisher == 1);
    CU_ASSERT(strcmp(rows[2].topic, "imu") == 0 && rows[2].publisher == 2);
    CU_ASSERT_EQUAL(rows[2].messages, 3);
    CU_ASSERT_EQUAL(rows[2].reordered, 1);
    CU_ASSERT_EQUAL(rows[1].reordered, 0);
    CU_ASSERT_EQUAL(rows[2].publishers, 1);
    CU_ASSERT_STRING_EQUAL(rows[2].type, "Imu");
    CU_ASSERT_EQUAL(rows_of(t, ts, true, "imu", rows, 1), 2); // count beyond cap
    CU_ASSERT_EQUAL(rows[0].publisher, 1);
    CU_ASSERT_EQUAL(rows_of(t, ts, true, "nope", rows, 8), 0);
    CU_ASSERT_EQUAL(rows_of(t, ts, false, NULL, NULL, 0), 2);
    // The type looked at again on the 64th message differs: "(mixed)".
    for (int i = 0; i < 64; i++)
        feed(t, "cam", 1, 4 + (uint64_t)i, ts + 10 * MS, typed_imu, sizeof(typed_imu));
    mcl_topic_stats c = {0};
    CU_ASSERT_FATAL(row_of(t, ts + 10 * MS, "cam", &c));
    CU_ASSERT_STRING_EQUAL(c.type, "(mixed)");
    // Loss and duplicates of a datagram of one (publisher, topic) (zmq): on that pair only.
    mcl__topics_dgram(t, 2, "imu", 3, 5, 100);
    mcl__topics_dgram_end(t, 101, false); // more read behind it: attributed, published later
    mcl__topics_dgram(t, 2, "imu", 3, 0, 101);
    mcl__topics_dgram_end(t, 101, false); // none in this one
    mcl__topics_dgram(t, 2, "imu", 3, 0, 101);
    mcl__topics_dgram_end(t, 102, true);
    mcl__topics_dgram(t, 9, "imu", 3, 5, 100); // no such pair: nothing
    mcl__topics_dgram_end(t, 150, true);
    mcl__topics_dgram_end(t, 170, true); // no datagram: nothing
    mcl__topics_lost(t, 1, "imu", 3, 4);
    CU_ASSERT_EQUAL_FATAL(rows_of(t, ts, true, "imu", rows, 8), 2);
    CU_ASSERT(rows[0].lost == 4 && rows[0].duplicates == 0);
    CU_ASSERT(rows[1].lost == 5 && rows[1].duplicates == 2);
    CU_ASSERT_FATAL(row_of(t, ts, "imu", &c));
    CU_ASSERT(c.lost == 9 && c.duplicates == 2);
    mcl__topics_free(t);
}

// Caps: beyond them messages are counted in untracked; a full table evicts only rows not
// seen within the window, and only when a new row needs the room.
static void
test_engine_caps(void)
{
    mcl__topics *t = new_topics();
    mcl_topic_stats_options o = {.window_ms = 2000, .max_topics = 2, .max_pairs = 3};
    MCLT_OK(mcl__topics_set_options(t, &o));
    int64_t ts = 100 * NS;
    feed(t, "a", 1, 0, ts, NULL, 0);
    feed(t, "b", 1, 1, ts, NULL, 0);
    feed(t, "c", 1, 2, ts + MS, NULL, 0); // full: both seen within the window
    feed(t, "c", 1, 3, ts + 1500 * MS, NULL, 0);
    feed(t, "a", 1, 4, ts + 1600 * MS, NULL, 0); // a stays fresh
    CU_ASSERT_EQUAL(mcl__topics_untracked(t), 2);
    feed(t, "c", 1, 5, ts + 3 * NS, NULL, 0); // b is stale now (a is not): b goes, c comes
    mcl_topic_stats rows[4];
    CU_ASSERT_EQUAL_FATAL(rows_of(t, ts + 3 * NS, false, NULL, rows, 4), 2);
    CU_ASSERT_STRING_EQUAL(rows[0].topic, "a");
    CU_ASSERT_EQUAL(rows[0].messages, 2);
    CU_ASSERT_STRING_EQUAL(rows[1].topic, "c");
    CU_ASSERT_EQUAL(rows[1].messages, 1);
    CU_ASSERT_EQUAL(mcl__topics_untracked(t), 2);
    CU_ASSERT_EQUAL(rows_of(t, ts, true, NULL, NULL, 0), 2); // b's pair went with it
    // Pairs: 3 at most; the topic row still counts a message whose pair is not tracked.
    feed(t, "a", 2, 0, ts + 3 * NS, NULL, 0);
    feed(t, "a", 3, 0, ts + 3 * NS, NULL, 0);
    CU_ASSERT_EQUAL(mcl__topics_untracked(t), 3);
    CU_ASSERT_FATAL(row_of(t, ts + 3 * NS, "a", &rows[0]));
    CU_ASSERT_EQUAL(rows[0].messages, 4);
    CU_ASSERT_EQUAL(rows[0].publishers, 2);
    // Bad options are refused and change nothing.
    mcl_topic_stats_options bad[] = {{.window_ms = 500},
                                     {.window_ms = 17000},
                                     {.window_ms = -1},
                                     {.max_topics = (size_t)1 << 21}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        MCLT_ERR(mcl__topics_set_options(t, &bad[i]), MCL_EINVAL);
    MCLT_ERR(mcl__topics_set_options(t, NULL), MCL_EINVAL);
    // A flood of new topics at the cap: each is untracked, none evicts a live row.
    for (int i = 0; i < 10000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "f%d", i);
        feed(t, name, 1, 100 + (uint64_t)i, ts + 3 * NS + i, NULL, 0);
    }
    CU_ASSERT_EQUAL(mcl__topics_untracked(t), 10003);
    CU_ASSERT_EQUAL(rows_of(t, ts, false, NULL, NULL, 0), 2);
    mcl__topics_free(t);
}

// What is counted reaches readers at a publish: when the caller says so (it has delivered
// all it read), and for messages off the short path (here: a topic of two publishers) at
// the 64th since the last publish.
// The row of "p" as readers see it now (no publish first).
static bool
shown_row(mcl__topics *t, mcl_topic_stats *out)
{
    return mcl__topics_rows(t, 3 * NS, false, NULL, out, 1) == 1 && strcmp(out->topic, "p") == 0;
}

static void
test_engine_publish(void)
{
    mcl__topics *t = new_topics();
    mcl_raw_msg m = {.topic = "p", .topic_len = 1, .publisher = 5, .recv_mono_ns = 3 * NS};
    mcl_topic_stats r = {0};
    for (int i = 0; i < 100; i++) {
        m.seq = (uint64_t)i;
        mcl__topics_count(t, &m, false);
    }
    CU_ASSERT_FATAL(shown_row(t, &r)); // the row exists at once ...
    CU_ASSERT_EQUAL(r.messages, 0);    // ... its counts at the publish
    mcl__topics_publish(t);
    CU_ASSERT_FATAL(shown_row(t, &r));
    CU_ASSERT_EQUAL(r.messages, 100);
    m.seq = 100;
    mcl__topics_count(t, &m, true);
    CU_ASSERT_FATAL(shown_row(t, &r));
    CU_ASSERT_EQUAL(r.messages, 101);
    m.seq = 101;
    mcl__topics_count(t, &m, false);
    mcl__topics_dgram_end(t, 0, true);
    CU_ASSERT_FATAL(shown_row(t, &r));
    CU_ASSERT_EQUAL(r.messages, 102);
    // Two publishers: every message takes the long path.
    mcl_raw_msg m2 = m;
    m2.publisher = 6;
    for (int i = 0; i < 63; i++) {
        mcl_raw_msg *x = i % 2 ? &m : &m2;
        x->seq++;
        mcl__topics_count(t, x, false);
    }
    CU_ASSERT_FATAL(shown_row(t, &r));
    CU_ASSERT_EQUAL(r.messages, 102);
    m.seq++;
    mcl__topics_count(t, &m, false); // the 64th
    CU_ASSERT_FATAL(shown_row(t, &r));
    CU_ASSERT_EQUAL(r.messages, 166);
    CU_ASSERT_EQUAL(r.publishers, 2);
    mcl__topics_free(t);
}

// The same row as readers see it whether the engine publishes after every message (a round
// trip's listener: each message is the last one read) or once at the end: every publish
// copies what the short path changed (the current second's bucket with the counts), across
// second boundaries, a type look every 64th message and a second publisher's arrival.
static void
expect_same_row(const mcl_topic_stats *a, const mcl_topic_stats *b)
{
    CU_ASSERT_EQUAL(a->messages, b->messages);
    CU_ASSERT_EQUAL(a->bytes, b->bytes);
    CU_ASSERT_EQUAL(a->publishers, b->publishers);
    CU_ASSERT_DOUBLE_EQUAL(a->rate_hz, b->rate_hz, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a->bandwidth_bps, b->bandwidth_bps, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a->period_ms, b->period_ms, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a->jitter_ms, b->jitter_ms, 1e-9);
    CU_ASSERT_EQUAL(a->size_min, b->size_min);
    CU_ASSERT_EQUAL(a->size_max, b->size_max);
    CU_ASSERT_EQUAL(a->last_seen_ns, b->last_seen_ns);
    CU_ASSERT_EQUAL(memcmp(a->rate_history, b->rate_history, sizeof(a->rate_history)), 0);
    CU_ASSERT_STRING_EQUAL(a->type, b->type);
}

static void
test_engine_publish_every_message(void)
{
    mcl__topics *each = new_topics(), *once = new_topics();
    uint8_t payload[300] = {0};
    memcpy(payload, typed_imu, sizeof(typed_imu));
    int64_t mono = 5 * NS + 10 * MS;
    for (uint64_t i = 0; i < 600; i++) {
        // 200 Hz with a jitter, sizes that vary; a second publisher from message 400 on
        mono += 5 * MS + (int64_t)(i % 7) * 100000;
        uint64_t pub = i >= 400 && i % 3 == 0 ? 8 : 7;
        mcl_raw_msg m = {.topic = "imu",
                         .topic_len = 3,
                         .payload = payload,
                         .len = 100 + (size_t)(i % 50) * 4,
                         .publisher = pub,
                         .seq = i,
                         .recv_mono_ns = mono,
                         .recv_realtime_ns = mono + 1000 * NS};
        mcl__topics_count(each, &m, true);
        mcl__topics_count(once, &m, false);
        if (i % 97 == 0 || i == 599) { // (and compared along the way)
            mcl__topics_publish(once);
            mcl_topic_stats a, b;
            CU_ASSERT_FATAL(mcl__topics_rows(each, mono, false, NULL, &a, 1) == 1);
            CU_ASSERT_FATAL(mcl__topics_rows(once, mono, false, NULL, &b, 1) == 1);
            CU_ASSERT_EQUAL(a.messages, i + 1);
            expect_same_row(&a, &b);
            mcl_topic_stats pa[2], pb[2];
            size_t na = mcl__topics_rows(each, mono, true, "imu", pa, 2);
            CU_ASSERT_EQUAL_FATAL(na, mcl__topics_rows(once, mono, true, "imu", pb, 2));
            for (size_t k = 0; k < na && k < 2; k++)
                expect_same_row(&pa[k], &pb[k]);
        }
    }
    mcl__topics_free(each);
    mcl__topics_free(once);
}

// Many topics and pairs: the tables grow, and rows stay sorted and complete.
static void
test_engine_many(void)
{
    mcl__topics *t = new_topics();
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%04d", 999 - i);
        feed(t, name, (uint64_t)(i % 3 + 1), (uint64_t)i, NS + i, NULL, (size_t)i);
        feed(t, name, 77, (uint64_t)i, NS + i, NULL, (size_t)i);
    }
    static mcl_topic_stats rows[1000];
    CU_ASSERT_EQUAL_FATAL(rows_of(t, 2 * NS, false, NULL, rows, 1000), 1000);
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%04d", i);
        CU_ASSERT_STRING_EQUAL(rows[i].topic, name);
        CU_ASSERT_EQUAL(rows[i].messages, 2);
        CU_ASSERT_EQUAL(rows[i].publishers, 2);
    }
    CU_ASSERT_EQUAL(mcl__topics_untracked(t), 0);
    CU_ASSERT_EQUAL(rows_of(t, 2 * NS, true, NULL, NULL, 0), 2000);
    mcl__topics_free(t);
    mcl__topics_free(NULL);
}

// ---- type peek ------------------------------------------------------------------------------

static size_t
peek(const uint8_t *p, size_t n, char *out)
{
    // A heap copy of exactly n bytes, so ASan sees any read beyond them.
    uint8_t *c = malloc(n ? n : 1);
    CU_ASSERT_FATAL(c != NULL);
    memcpy(c, p, n);
    size_t r = mcl__type_peek(c, n, out, 64);
    free(c);
    return r;
}

static void
test_peek(void)
{
    char out[64];
    CU_ASSERT_EQUAL(peek(typed_imu, sizeof(typed_imu), out), 3);
    CU_ASSERT_STRING_EQUAL(out, "Imu");
    // Every truncation of a typed map: no name unless the name string is whole.
    for (size_t n = 0; n < sizeof(typed_imu); n++) {
        strcpy(out, "junk");
        size_t r = peek(typed_imu, n, out);
        CU_ASSERT_EQUAL(r, n >= 10 ? 3u : 0u);
        CU_ASSERT_STRING_EQUAL(out, n >= 10 ? "Imu" : "");
    }
    // "name" after values of every kind (skipped), in a map16.
    // clang-format off
    const uint8_t after[] = {0xde, 0x00, 0x0b,
                             0xa1, 'a', 0xcb, 1, 2, 3, 4, 5, 6, 7, 8,       // float64
                             0xa1, 'b', 0xc4, 0x02, 9, 9,                   // bin8
                             0xa1, 'c', 0x92, 0x81, 0xa1, 'k', 0xc0, 0xc3,  // [ {k: nil}, true ]
                             0xa1, 'd', 0xd6, 0x01, 1, 2, 3, 4,             // fixext4
                             0xa1, 'e', 0xc7, 0x01, 0x05, 0xff,             // ext8
                             0xa1, 'f', 0xd9, 0x04, 'n', 'a', 'm', 'e',     // str8 "name" as a value
                             0xcc, 0x07, 0xa0,                              // key 7 (not a str)
                             0xa1, 'g', 0xdc, 0x00, 0x02, 0xe0, 0x7f,       // array16
                             0xa1, 'h', 0xd3, 0, 0, 0, 0, 0, 0, 0, 1,       // int64
                             0xa1, 'i', 0xdb, 0, 0, 0, 1, 'z',              // str32
                             0xd9, 0x04, 'n', 'a', 'm', 'e', 0xda, 0x00, 0x05, 'G', 'n', 's', 's', '!'};
    // clang-format on
    CU_ASSERT_EQUAL(peek(after, sizeof(after), out), 5);
    CU_ASSERT_STRING_EQUAL(out, "Gnss!");
    for (size_t n = 0; n < sizeof(after); n++) {
        CU_ASSERT_EQUAL(peek(after, n, out), 0);
        CU_ASSERT_STRING_EQUAL(out, "");
    }
    // A real typed message of lib/msg's encoder.
    mcl_value *v;
    MCLT_OK(mcl_value_new(&v, MCL_TYPE_MAP));
    MCLT_OK(mcl_value_put_double(v, "speed", 1.5));
    MCLT_OK(mcl_value_put_str(v, "name", "WheelSpeeds"));
    void *enc;
    size_t elen;
    MCLT_OK(mcl_value_encode(v, &enc, &elen));
    CU_ASSERT_EQUAL(peek(enc, elen, out), 11);
    CU_ASSERT_STRING_EQUAL(out, "WheelSpeeds");
    mcl_free(enc);
    mcl_value_free(v);
    // Not typed: not a map, "name" not a str or holding a NUL, name beyond the 32nd entry.
    const uint8_t arr[] = {0x91, 0xa4, 'n', 'a', 'm', 'e'};
    const uint8_t nonstr[] = {0x81, 0xa4, 'n', 'a', 'm', 'e', 0x05};
    const uint8_t nul[] = {0x81, 0xa4, 'n', 'a', 'm', 'e', 0xa3, 'I', 0, 'u'};
    CU_ASSERT_EQUAL(peek(arr, sizeof(arr), out), 0);
    CU_ASSERT_EQUAL(peek(nonstr, sizeof(nonstr), out), 0);
    CU_ASSERT_EQUAL(peek(nul, sizeof(nul), out), 0); // no C string: no type's name
    uint8_t late[3 + 33 * 2 + 7];
    size_t k = 0;
    late[k++] = 0xde;
    late[k++] = 0;
    late[k++] = 34;
    for (int i = 0; i < 33; i++) {
        late[k++] = 0x01; // key 1 (an int)
        late[k++] = 0xc0;
    }
    memcpy(late + k, "\xa4name\xa1x", 7);
    CU_ASSERT_EQUAL(peek(late, sizeof(late), out), 0);
    late[2] = 33;
    memmove(late + 3, late + 5, sizeof(late) - 5); // 32 entries before it: the 33rd is too late
    CU_ASSERT_EQUAL(peek(late, sizeof(late) - 2, out), 0);
    memmove(late + 3, late + 5, sizeof(late) - 7); // 31 before it: the 32nd is looked at
    CU_ASSERT_EQUAL(peek(late, sizeof(late) - 4, out), 1);
    CU_ASSERT_STRING_EQUAL(out, "x");
    // Huge declared lengths: map32, array32, str32, bin32, ext32 of 4 G in a few bytes.
    const uint8_t huge[][12] = {
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a'},
        {0x81, 0xa1, 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
        {0x81, 0xa1, 'a', 0xdf, 0xff, 0xff, 0xff, 0xff, 0x01},
        {0x82, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'},
        {0x82, 0xa1, 'a', 0xc6, 0xff, 0xff, 0xff, 0xfe, 'x'},
        {0x82, 0xa1, 'a', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'x'},
        {0x81, 0xa4, 'n', 'a', 'm', 'e', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'},
        {0x81, 0xdb, 0xff, 0xff, 0xff, 0xff, 'n', 'a', 'm', 'e'},
        {0x81, 0xc1, 0xc1},
    };
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        CU_ASSERT_EQUAL(peek(huge[i], sizeof(huge[i]), out), 0);
        CU_ASSERT_STRING_EQUAL(out, "");
    }
    // Deep nesting (a value of 100,000 nested arrays) before "name": refused within the step
    // limit, without recursion; then a long flat array likewise.
    size_t dn = 100000;
    uint8_t *deep = malloc(dn + 16);
    CU_ASSERT_FATAL(deep != NULL);
    deep[0] = 0x82;
    deep[1] = 0xa1;
    deep[2] = 'a';
    memset(deep + 3, 0x91, dn - 4);
    deep[dn - 1] = 0xc0;
    memcpy(deep + dn, "\xa4name\xa1y", 7);
    CU_ASSERT_EQUAL(peek(deep, dn + 7, out), 0);
    memset(deep + 3, 0xc0, dn - 4); // now a's value is one nil and the rest junk
    deep[3] = 0xdd;
    deep[4] = 0;
    deep[5] = 0x01;
    deep[6] = 0x86;
    deep[7] = 0x9b; // an array of 99,995 nils
    CU_ASSERT_EQUAL(peek(deep, dn + 7, out), 0);
    // ... and a short one is skipped.
    deep[6] = 0x00;
    deep[7] = 0x10; // 65552 elements: more than the step limit too
    CU_ASSERT_EQUAL(peek(deep, dn + 7, out), 0);
    deep[5] = 0x00;
    deep[6] = 0x00;
    deep[7] = 0x05; // 5 nils, then "name": "y" right after
    memcpy(deep + 8, "\xc0\xc0\xc0\xc0\xc0\xa4name\xa1y", 12);
    CU_ASSERT_EQUAL(peek(deep, 20, out), 1);
    CU_ASSERT_STRING_EQUAL(out, "y");
    free(deep);
    // A long name is cut to the buffer.
    uint8_t longname[2 + 5 + 2 + 200];
    memcpy(longname, "\x81\xa4name\xd9\xc8", 8);
    memset(longname + 8, 'L', 200);
    char small[8];
    CU_ASSERT_EQUAL(mcl__type_peek(longname, 208, small, sizeof(small)), 7);
    CU_ASSERT_STRING_EQUAL(small, "LLLLLLL");
    CU_ASSERT_EQUAL(mcl__type_peek(NULL, 5, small, sizeof(small)), 0);
    CU_ASSERT_EQUAL(mcl__type_peek(longname, 208, NULL, 0), 0);
}

// ---- the listener API over inproc:// ----------------------------------------------------------

static int group;

static mcl_raw_listener *
open_listener(char *url, size_t len)
{
    snprintf(url, len, "inproc://topics-%d", ++group);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    return l;
}

static mcl_raw_broadcaster *
open_broadcaster(const mcl_raw_listener *l)
{
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, mcl_raw_listener_connection(l), NULL));
    return b;
}

static size_t
drain(mcl_raw_listener *l)
{
    size_t n = 0;
    const mcl_raw_msg *m;
    while (mcl_raw_listener_recv(l, &m, 0) == MCL_OK)
        n++;
    return n;
}

static bool
topic_row(mcl_raw_listener *l, const char *topic, mcl_topic_stats *out)
{
    static mcl_topic_stats rows[16];
    size_t n = mcl_raw_listener_topics(l, rows, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (strcmp(rows[i].topic, topic) == 0) {
            *out = rows[i];
            return true;
        }
    return false;
}

static int cb_count;
static void
on_msg(const mcl_raw_msg *m, void *user)
{
    (void)m;
    (void)user;
    cb_count++;
}

// Two broadcasters; topics, pairs, types, sizes; counted on recv and on dispatch alike.
static void
test_listener_rows(void)
{
    char url[64];
    mcl_raw_listener *l = open_listener(url, sizeof(url));
    mcl_raw_broadcaster *b1 = open_broadcaster(l), *b2 = open_broadcaster(l);
    uint8_t raw[100] = {1, 2, 3};
    for (int i = 0; i < 10; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b1, "imu", typed_imu, sizeof(typed_imu)));
        MCLT_OK(mcl_raw_broadcaster_publish(b2, "imu", typed_imu, sizeof(typed_imu)));
        MCLT_OK(mcl_raw_broadcaster_publish(b1, "raw", raw, (size_t)(10 + i * 10)));
    }
    MCLT_OK(mcl_raw_broadcaster_publish(b2, NULL, "", 0)); // no topic
    CU_ASSERT_EQUAL(drain(l), 31);
    // Five more through callbacks (dispatch).
    MCLT_OK(mcl_raw_listener_subscribe(l, on_msg, NULL));
    for (int i = 0; i < 5; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b2, "raw", raw, 1));
    cb_count = 0;
    MCLT_OK(mcl_raw_listener_dispatch(l, 0, NULL));
    CU_ASSERT_EQUAL(cb_count, 5);
    mcl_topic_stats rows[8];
    CU_ASSERT_EQUAL_FATAL(mcl_raw_listener_topics(l, rows, 8), 3);
    CU_ASSERT_STRING_EQUAL(rows[0].topic, "");
    CU_ASSERT_STRING_EQUAL(rows[1].topic, "imu");
    CU_ASSERT_STRING_EQUAL(rows[2].topic, "raw");
    CU_ASSERT_EQUAL(rows[0].messages, 1);
    CU_ASSERT_EQUAL(rows[1].messages, 20);
    CU_ASSERT_EQUAL(rows[1].publishers, 2);
    CU_ASSERT_STRING_EQUAL(rows[1].type, "Imu");
    CU_ASSERT_EQUAL(rows[1].size_min, sizeof(typed_imu));
    CU_ASSERT_EQUAL(rows[2].messages, 15);
    CU_ASSERT_EQUAL(rows[2].publishers, 2);
    CU_ASSERT_EQUAL(rows[2].size_min, 1);
    CU_ASSERT_EQUAL(rows[2].size_max, 100);
    CU_ASSERT(fabs(rows[2].size_mean - (550 + 5) / 15.0) < 1e-9);
    CU_ASSERT_EQUAL(rows[2].bytes, 555);
    CU_ASSERT_STRING_EQUAL(rows[2].type, "");
    CU_ASSERT(rows[2].last_seen_ns >= rows[2].first_seen_ns && rows[2].first_seen_ns > 0);
    CU_ASSERT(rows[1].rate_hz > 0);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, rows[0].messages + rows[1].messages + rows[2].messages);
    // Pairs of "imu": one per broadcaster, sorted by publisher id.
    CU_ASSERT_EQUAL_FATAL(mcl_raw_listener_topic_publishers(l, "imu", rows, 8), 2);
    uint64_t lo = mcl_raw_broadcaster_id(b1), hi = mcl_raw_broadcaster_id(b2);
    if (lo > hi) {
        uint64_t x = lo;
        lo = hi;
        hi = x;
    }
    CU_ASSERT(rows[0].publisher == lo && rows[1].publisher == hi);
    CU_ASSERT(rows[0].messages == 10 && rows[1].messages == 10 && rows[0].publishers == 1);
    CU_ASSERT_EQUAL(mcl_raw_listener_topic_publishers(l, NULL, rows, 8), 5);
    CU_ASSERT_EQUAL(mcl_raw_listener_topics_untracked(l), 0);
    // Statistics stay readable after close.
    MCLT_OK(mcl_raw_listener_close(l));
    CU_ASSERT_EQUAL(mcl_raw_listener_topics(l, NULL, 0), 3);
    CU_ASSERT_EQUAL(mcl_raw_listener_topics(NULL, rows, 8), 0);
    CU_ASSERT_EQUAL(mcl_raw_listener_topic_publishers(NULL, NULL, rows, 8), 0);
    CU_ASSERT_EQUAL(mcl_raw_listener_topics_untracked(NULL), 0);
    MCLT_ERR(mcl_raw_listener_topic_options(NULL, &(mcl_topic_stats_options){0}), MCL_EINVAL);
    mcl_raw_broadcaster_free(b1);
    mcl_raw_broadcaster_free(b2);
    mcl_raw_listener_free(l);
}

// Caps through the API: the third topic is delivered (to the callback) but not tracked.
static void
test_listener_caps(void)
{
    char url[64];
    mcl_raw_listener *l = open_listener(url, sizeof(url));
    mcl_topic_stats_options o = {.max_topics = 2};
    MCLT_OK(mcl_raw_listener_topic_options(l, &o));
    MCLT_ERR(mcl_raw_listener_topic_options(l, &(mcl_topic_stats_options){.window_ms = 999}),
             MCL_EINVAL);
    mcl_raw_broadcaster *b = open_broadcaster(l);
    MCLT_OK(mcl_raw_listener_subscribe(l, on_msg, NULL));
    const char *topics[] = {"a", "b", "c"};
    for (int i = 0; i < 30; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, topics[i % 3], "x", 1));
    cb_count = 0;
    MCLT_OK(mcl_raw_listener_dispatch(l, 0, NULL));
    CU_ASSERT_EQUAL(cb_count, 30);
    CU_ASSERT_EQUAL(mcl_raw_listener_topics(l, NULL, 0), 2);
    CU_ASSERT_EQUAL(mcl_raw_listener_topics_untracked(l), 10);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// Real time: two topics published at about 100 Hz and 25 Hz for 1.2 s (paced by the clock;
// the bounds are generous for a loaded machine), then the fast one stops and its rate decays
// to 0 after the 1 s window.
typedef struct decay_arg {
    mcl_raw_listener *l;
} decay_arg;

static bool
rate_is_zero(void *arg)
{
    mcl_topic_stats s = {0};
    return topic_row(((decay_arg *)arg)->l, "fast", &s) && s.rate_hz == 0;
}

static void
test_listener_real_time_rates(void)
{
    char url[64];
    mcl_raw_listener *l = open_listener(url, sizeof(url));
    MCLT_OK(mcl_raw_listener_topic_options(l, &(mcl_topic_stats_options){.window_ms = 1000}));
    mcl_raw_broadcaster *b = open_broadcaster(l);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int i = 0; i < 120; i++) { // 10 ms apart
        MCLT_OK(mcl_raw_broadcaster_publish(b, "fast", "0123456789", 10));
        if (i % 4 == 0)
            MCLT_OK(mcl_raw_broadcaster_publish(b, "slow", "01234", 5));
        drain(l);
        next.tv_nsec += 10 * MS;
        if (next.tv_nsec >= NS) {
            next.tv_nsec -= NS;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL); // pacing, not waiting
    }
    mcl_topic_stats f = {0}, s = {0};
    CU_ASSERT_FATAL(topic_row(l, "fast", &f) && topic_row(l, "slow", &s));
    CU_ASSERT_EQUAL(f.messages, 120);
    CU_ASSERT_EQUAL(s.messages, 30);
    CU_ASSERT(f.rate_hz > 50 && f.rate_hz < 150);
    CU_ASSERT(s.rate_hz > 12 && s.rate_hz < 40);
    CU_ASSERT(f.rate_hz > 2.5 * s.rate_hz && f.rate_hz < 6 * s.rate_hz);
    CU_ASSERT(f.period_ms > 6 && f.period_ms < 20);
    CU_ASSERT(s.period_ms > 25 && s.period_ms < 80);
    CU_ASSERT(fabs(f.bandwidth_bps - 10 * f.rate_hz) < 1e-6 * f.bandwidth_bps + 1e-9);
    int64_t stop = mclt_now_ms();
    decay_arg a = {l};
    CU_ASSERT(mclt_wait_until(rate_is_zero, &a, 5000));
    int64_t took = mclt_now_ms() - stop;
    CU_ASSERT(took >= 900 && took <= 2600); // 1 s whole plus the partial second
    CU_ASSERT_FATAL(topic_row(l, "fast", &f));
    CU_ASSERT_EQUAL(f.messages, 120);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

// The listener thread delivers while another thread reads the statistics (CUnit is not
// thread-safe: the reader only records what it saw).
static bool reader_went_back;

static void *
reader(void *arg)
{
    mcl_raw_listener *l = arg;
    mcl_topic_stats rows[4];
    uint64_t last = 0;
    for (int i = 0; i < 2000; i++) {
        if (mcl_raw_listener_topics(l, rows, 4) == 1) {
            if (rows[0].messages < last)
                reader_went_back = true;
            last = rows[0].messages;
        }
        mcl_raw_listener_topic_publishers(l, NULL, rows, 4);
    }
    return NULL;
}

typedef struct count_arg {
    mcl_raw_listener *l;
    uint64_t want;
} count_arg;

static bool
counted(void *arg)
{
    count_arg *c = arg;
    mcl_topic_stats s = {0};
    return topic_row(c->l, "th", &s) && s.messages == c->want;
}

static void
test_listener_thread(void)
{
    char url[64];
    mcl_raw_listener *l = open_listener(url, sizeof(url));
    mcl_raw_broadcaster *b = open_broadcaster(l);
    MCLT_OK(mcl_raw_listener_start(l));
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, reader, l) == 0);
    for (int i = 0; i < 20000; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, "th", &i, sizeof(i)));
    pthread_join(th, NULL);
    CU_ASSERT(!reader_went_back);
    count_arg c = {l, 20000};
    CU_ASSERT(mclt_wait_until(counted, &c, 10000));
    MCLT_OK(mcl_raw_listener_stop(l));
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}

#if MCL_HAVE_ZMQ
// Over zmq (the publisher filters by topic) loss is counted per (publisher, topic): a stalled
// listener with drop=1 loses messages of both topics, and the topics' losses add up to the
// listener's. A message forwarded again is a duplicate of its topic.
static void
test_zmq_loss_per_topic(void)
{
    char url[64];
    snprintf(url, sizeof(url), "zmq+inproc://topics-z%d?hwm=20&drop=1", ++group);
    mcl_connection *c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, NULL));
    mcl_connection_free(c);
    snprintf(url, sizeof(url), "zmq+inproc://topics-z%d?hwm=20", group);
    c = mclt_parse(url);
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    MCLT_OK(mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000));
    char payload[1000] = {0};
    const int n = 3000;
    for (int i = 0; i < n; i++) {
        MCLT_OK(mcl_raw_broadcaster_publish(b, "x", payload, sizeof(payload)));
        MCLT_OK(mcl_raw_broadcaster_publish(b, "y", payload, sizeof(payload)));
    }
    const mcl_raw_msg *m;
    while (mcl_raw_listener_recv(l, &m, 200) == MCL_OK) {
    }
    // Markers show the gaps; then one of them again, forwarded: a duplicate of "y".
    // (a gap of more than 1024 counts once a second message confirms it: "end2" for x; for y
    // the forwarded copy, which has the next topic number, does)
    MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "end", 3));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "end2", 4));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "y", "end", 3));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    MCLT_OK(mcl_raw_broadcaster_forward(b, m));
    MCLT_OK(mcl_raw_broadcaster_publish(b, "y", "after", 5));
    MCLT_OK(mcl_raw_listener_recv(l, &m, 5000));
    CU_ASSERT(m != NULL && m->len == 5);
    mcl_listener_stats st;
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    mcl_topic_stats x = {0}, y = {0};
    CU_ASSERT_FATAL(topic_row(l, "x", &x) && topic_row(l, "y", &y));
    CU_ASSERT(st.lost > 0);
    CU_ASSERT(x.lost > 0 && y.lost > 0);
    CU_ASSERT_EQUAL(x.lost + y.lost, st.lost);
    CU_ASSERT_EQUAL(x.messages + x.lost, (uint64_t)n + 2);
    CU_ASSERT_EQUAL(y.messages + y.lost, (uint64_t)n + 2);
    CU_ASSERT_EQUAL(st.duplicates, 1);
    CU_ASSERT_EQUAL(y.duplicates, 1);
    CU_ASSERT_EQUAL(x.duplicates, 0);
    mcl_topic_stats pr = {0};
    CU_ASSERT_EQUAL_FATAL(mcl_raw_listener_topic_publishers(l, "y", &pr, 1), 1);
    CU_ASSERT(pr.lost == y.lost && pr.duplicates == 1);
    mcl_raw_listener_free(l);
    mcl_raw_broadcaster_free(b);
}

static void
test_zmq_forged_topic_number(void)
{
    // One forged frame with a topic number 2^40 ahead used to count 2^40 messages as lost
    // (and a number 2^64 - 4 ahead, 18446744073709551612).
    mcl_raw_listener *l;
    mcl_connection *c = mclt_parse("zmq+tcp://127.0.0.1:0?mode=bind&heartbeat=0");
    MCLT_OK(mcl_raw_listener_open(&l, c, NULL, 0));
    mcl_connection_free(c);
    char url[96];
    snprintf(url, sizeof(url), "zmq+tcp://127.0.0.1:%u?mode=connect&heartbeat=0",
             (unsigned)mcl_connection_port(mcl_raw_listener_connection(l)));
    c = mclt_parse(url);
    mcl_raw_broadcaster *b;
    MCLT_OK(mcl_raw_broadcaster_open(&b, c, NULL));
    mcl_connection_free(c);
    const mcl_raw_msg *m = NULL;
    int64_t t1 = mclt_now_ms();
    do { // (until the connection is up: what is published before is not for anyone)
        MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "first", 5));
    } while (mcl_raw_listener_recv(l, &m, 50) != MCL_OK && mclt_now_ms() - t1 < 5000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    while (mcl_raw_listener_recv(l, &m, 50) == MCL_OK) {
    }
    // The forger: a plain zmq PUB connected to the listener, sending frames in mcl's framing
    // (topic, NUL, topic number, datagram) with the genuine publisher's id.
    void *ctx = zmq_ctx_new();
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u",
             (unsigned)mcl_connection_port(mcl_raw_listener_connection(l)));
    CU_ASSERT_EQUAL_FATAL(zmq_connect(pub, url), 0);
    uint8_t f[2 + 8 + MCL__WIRE_HDR + MCL__WIRE_REC + 1 + 6];
    memcpy(f, "x", 2);
    mcl__put_be64(f + 2, (uint64_t)1 << 40);
    size_t n = 10 + mcl__wire_put_hdr(f + 10, 0, 1, mcl_raw_broadcaster_id(b));
    n += mcl__wire_put_rec(f + n, (uint64_t)1 << 40, "x", 1, 6);
    memcpy(f + n, "forged", 6);
    n += 6;
    mcl_listener_stats st;
    int64_t t0 = mclt_now_ms();
    do { // (until the listener's subscription has reached the forger)
        zmq_send(pub, f, n, 0);
        if (mcl_raw_listener_recv(l, &m, 20) == MCL_OK && m->len == 6)
            break;
    } while (mclt_now_ms() - t0 < 5000);
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(b, "x", "genuine", 7));
    int genuine = 0;
    while (genuine < 100 && mcl_raw_listener_recv(l, &m, 2000) == MCL_OK)
        genuine += m->len == 7;
    CU_ASSERT_EQUAL(genuine, 100);
    MCLT_OK(mcl_raw_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.lost, 0);
    CU_ASSERT_EQUAL(st.duplicates, 0);
    zmq_close(pub);
    zmq_ctx_term(ctx);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
}
#endif

static CU_TestInfo tests[] = {
    {"engine_rates", test_engine_rates},
    {"engine_start_and_jitter", test_engine_start_and_jitter},
    {"engine_pairs_sizes_types", test_engine_pairs_sizes_types},
    {"engine_caps", test_engine_caps},
    {"engine_many", test_engine_many},
    {"engine_publish", test_engine_publish},
    {"engine_publish_every_message", test_engine_publish_every_message},
    {"peek", test_peek},
    {"listener_rows", test_listener_rows},
    {"listener_caps", test_listener_caps},
    {"listener_real_time_rates", test_listener_real_time_rates},
    {"listener_thread", test_listener_thread},
#if MCL_HAVE_ZMQ
    {"zmq_loss_per_topic", test_zmq_loss_per_topic},
    {"zmq_forged_topic_number", test_zmq_forged_topic_number},
#endif
    CU_TEST_INFO_NULL,
};

MCLT_SUITE("raw_topics", NULL, NULL, tests);
