// SPDX-License-Identifier: BSD-3-Clause
// Logs as streams: the element codec, params, the log source driven through its operations
// (positions, seeks back and forward, time seeks, filters, follow, carry-over of what does not
// fit a push), reader refresh, the log server's resolver (path escapes) and list, and the
// whole thing over an in-process stream connection.
#define _GNU_SOURCE
#include "harness.h"

#include <mcl/logstream.h>

#include "core/internal.h"
#include "stream/stream_int.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Record i of the test logs: topic "t<i%3>", payload of i%200 bytes (i+k), publisher 0xabc,
// sequence i, time t0 + (i / dup) * 1 ms (dup records share each time).
static const char *const topic_names[] = {"t0", "t1/a", "t2/b"};

static mcl_raw_msg
rec_i(int i, int dup, int64_t t0, uint8_t *buf)
{
    size_t len = (size_t)(i % 200);
    for (size_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(i + (int)k);
    mcl_raw_msg m = {.topic = topic_names[i % 3],
                     .topic_len = strlen(topic_names[i % 3]),
                     .payload = len ? buf : NULL,
                     .len = len,
                     .publisher = 0xabc,
                     .seq = (uint64_t)i,
                     .recv_realtime_ns = t0 + (int64_t)(i / dup) * 1000000};
    return m;
}

static void
write_recs(mcl_log_writer *w, int from, int to, int dup, int64_t t0)
{
    uint8_t buf[256];
    for (int i = from; i < to; i++) {
        mcl_raw_msg m = rec_i(i, dup, t0, buf);
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
}

static void
write_log(const char *path, int n, int dup, const mcl_log_writer_options *o)
{
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, path, o));
    write_recs(w, 0, n, dup, 1000000000);
    MCLT_OK(mcl_log_writer_close(w));
}

// Checks that element e is record i (as rec_i() makes it).
static bool
is_rec(const void *e, size_t len, int i, int dup, int64_t t0)
{
    mcl_raw_msg m;
    uint8_t buf[256];
    if (mcl_log_elem_decode(e, len, &m) != MCL_OK)
        return false;
    mcl_raw_msg want = rec_i(i, dup, t0, buf);
    return m.recv_realtime_ns == want.recv_realtime_ns && m.topic_len == want.topic_len &&
           memcmp(m.topic, want.topic, m.topic_len) == 0 && m.seq == want.seq &&
           m.publisher == want.publisher && m.len == want.len &&
           (m.len == 0 || memcmp(m.payload, want.payload, m.len) == 0);
}

// The elements in a sink: their count, and element k at out[k]/lens[k] (at most max).
static size_t
sink_elems(const mcl_stream_sink *k, const uint8_t **out, size_t *lens, size_t max)
{
    size_t n = 0;
    for (size_t at = 0; at + 4 <= k->len && n < max; n++) {
        size_t l = (size_t)k->buf[at] << 24 | (size_t)k->buf[at + 1] << 16 |
                   (size_t)k->buf[at + 2] << 8 | k->buf[at + 3];
        out[n] = k->buf + at + 4;
        lens[n] = l;
        at += 4 + l;
    }
    return n;
}

// One read of src at pos (at most max units, bytes budget): the seqs read into seqs[].
static mcl_err
read_seqs(mcl_stream_source *src, uint64_t pos, uint64_t max, size_t bytes, uint64_t *seqs,
          size_t *n)
{
    mcl_stream_sink k;
    mcl__sink_init(&k, MCL_STREAM_ENTITIES, bytes, max);
    mcl_err rv = src->ops->read(src->self, pos, max, &k);
    static const uint8_t *e[8192];
    static size_t l[8192];
    *n = sink_elems(&k, e, l, 8192);
    CU_ASSERT_EQUAL(*n, k.units);
    for (size_t i = 0; i < *n; i++) {
        mcl_raw_msg m;
        if (mcl_log_elem_decode(e[i], l[i], &m) != MCL_OK) {
            CU_FAIL("element does not decode");
            seqs[i] = UINT64_MAX;
        } else {
            seqs[i] = m.seq;
        }
    }
    mcl__sink_fini(&k);
    return rv;
}

// --- elements ----------------------------------------------------------------------------------

static void
test_elem_roundtrip(void)
{
    static uint8_t pay[70000];
    for (size_t i = 0; i < sizeof(pay); i++)
        pay[i] = (uint8_t)(i * 7);
    char longtopic[MCL_TOPIC_MAX + 1];
    memset(longtopic, 'x', MCL_TOPIC_MAX);
    longtopic[MCL_TOPIC_MAX] = '\0';
    const int64_t times[] = {0,   1,    127,    128,       -1,        -32,
                             -33, -129, -40000, INT64_MIN, INT64_MAX, 1764630000123456789LL};
    const uint64_t nums[] = {
        0, 127, 128, 255, 256, 65535, 65536, 0xffffffffu, 0x100000000ULL, UINT64_MAX};
    const size_t tlens[] = {0, 1, 31, 32, 255, 256, MCL_TOPIC_MAX};
    const size_t plens[] = {0, 1, 255, 256, 65535, 65536, sizeof(pay)};
    uint8_t *buf = malloc(sizeof(pay) + 2048);
    CU_ASSERT_FATAL(buf != NULL);
    int cases = 0;
    for (size_t a = 0; a < sizeof(times) / sizeof(times[0]); a++)
        for (size_t b = 0; b < sizeof(nums) / sizeof(nums[0]); b++)
            for (size_t c = 0; c < sizeof(tlens) / sizeof(tlens[0]); c++) {
                size_t pl = plens[(a + b + c) % (sizeof(plens) / sizeof(plens[0]))];
                mcl_raw_msg m = {.topic = longtopic + MCL_TOPIC_MAX - tlens[c],
                                 .topic_len = tlens[c],
                                 .payload = pl ? pay : NULL,
                                 .len = pl,
                                 .publisher = nums[b],
                                 .seq = nums[(b + 3) % (sizeof(nums) / sizeof(nums[0]))],
                                 .recv_realtime_ns = times[a]};
                size_t len, need;
                MCLT_ERR(mcl_log_elem_encode(&m, NULL, 0, &need), MCL_EMSGSIZE);
                MCLT_ERR(mcl_log_elem_encode(&m, buf, need - 1, &len), MCL_EMSGSIZE);
                CU_ASSERT_EQUAL(len, need);
                MCLT_OK(mcl_log_elem_encode(&m, buf, sizeof(pay) + 2048, &len));
                CU_ASSERT_EQUAL(len, need);
                mcl_raw_msg d;
                MCLT_OK(mcl_log_elem_decode(buf, len, &d));
                CU_ASSERT_EQUAL(d.recv_realtime_ns, m.recv_realtime_ns);
                CU_ASSERT_EQUAL(d.publisher, m.publisher);
                CU_ASSERT_EQUAL(d.seq, m.seq);
                CU_ASSERT_EQUAL(d.topic_len, m.topic_len);
                CU_ASSERT(m.topic_len == 0 || memcmp(d.topic, m.topic, m.topic_len) == 0);
                CU_ASSERT_EQUAL(d.len, m.len);
                CU_ASSERT(m.len == 0 || memcmp(d.payload, pay, m.len) == 0);
                CU_ASSERT((const uint8_t *)d.topic >= buf && (const uint8_t *)d.topic <= buf + len);
                cases++;
            }
    CU_ASSERT(cases > 500);
    // Encoding refuses what decoding would refuse.
    size_t len;
    mcl_raw_msg bad = {.topic = longtopic, .topic_len = MCL_TOPIC_MAX + 1};
    MCLT_ERR(mcl_log_elem_encode(&bad, buf, 4096, &len), MCL_EINVAL);
    mcl_raw_msg nul = {.topic = "a\0b", .topic_len = 3};
    MCLT_ERR(mcl_log_elem_encode(&nul, buf, 4096, &len), MCL_EINVAL);
    MCLT_ERR(mcl_log_elem_encode(NULL, buf, 4096, &len), MCL_EINVAL);
    free(buf);
}

static void
test_elem_decode_refuses(void)
{
    uint8_t good[64];
    mcl_raw_msg m = {.topic = "imu",
                     .topic_len = 3,
                     .payload = "\x01\x02",
                     .len = 2,
                     .publisher = 300,
                     .seq = 70000,
                     .recv_realtime_ns = -5};
    size_t len;
    MCLT_OK(mcl_log_elem_encode(&m, good, sizeof(good), &len));
    mcl_raw_msg d;
    MCLT_OK(mcl_log_elem_decode(good, len, &d));
    for (size_t n = 0; n < len; n++) // every truncation
        MCLT_ERR(mcl_log_elem_decode(good, n, &d), MCL_EDECODE);
    CU_ASSERT_EQUAL(d.topic, NULL); // zeroed on failure
    uint8_t extra[65];
    memcpy(extra, good, len);
    extra[len] = 0xc0;
    MCLT_ERR(mcl_log_elem_decode(extra, len + 1, &d), MCL_EDECODE); // a byte after it
    MCLT_ERR(mcl_log_elem_decode(NULL, 0, &d), MCL_EDECODE);
    MCLT_ERR(mcl_log_elem_decode(good, len, NULL), MCL_EINVAL);
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } cases[] = {
        {"array of 4", "\x94\x01\xa1t\x02\x03", 6},
        {"array of 6", "\x96\x01\xa1t\x02\x03\xc4\x00\xc0", 9},
        {"a map", "\x85\x01\xa1t\x02\x03\xc4\x00\xc0\xc0\xc0\xc0", 12},
        {"nil", "\xc0", 1},
        {"time as float", "\x95\xcb\x00\x00\x00\x00\x00\x00\x00\x00\xa1t\x02\x03\xc4\x00", 16},
        {"time as str",
         "\x95\xa1"
         "1\xa1t\x02\x03\xc4\x00",
         9},
        {"time > INT64_MAX", "\x95\xcf\x80\x00\x00\x00\x00\x00\x00\x00\xa1t\x02\x03\xc4\x00", 16},
        {"topic as bin", "\x95\x01\xc4\x01t\x02\x03\xc4\x00", 9},
        {"topic with NUL", "\x95\x01\xa3t\x00x\x02\x03\xc4\x00", 10},
        {"topic as int", "\x95\x01\x05\x02\x03\xc4\x00", 7},
        {"negative publisher", "\x95\x01\xa1t\xff\x03\xc4\x00", 8},
        {"negative seq (int8)", "\x95\x01\xa1t\x02\xd0\x80\xc4\x00", 9},
        {"publisher as nil", "\x95\x01\xa1t\xc0\x03\xc4\x00", 8},
        {"payload as str", "\x95\x01\xa1t\x02\x03\xa2hi", 8},
        {"payload as nil", "\x95\x01\xa1t\x02\x03\xc0", 7},
        {"payload longer than the data", "\x95\x01\xa1t\x02\x03\xc4\x05hi", 9},
        {"payload bin32 huge", "\x95\x01\xa1t\x02\x03\xc6\xff\xff\xff\xffhi", 12},
        {"str16 of 1025", "\x95\x01\xda\x04\x01", 5},
        {"array16 of 4", "\xdc\x00\x04\x01\xa1t\x02\x03", 8},
        {"reserved byte", "\x95\xc1\xa1t\x02\x03\xc4\x00", 8},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mcl_err rv = mcl_log_elem_decode(cases[i].bytes, cases[i].len, &d);
        if (rv != MCL_EDECODE)
            fprintf(stderr, "\n  accepted: %s\n", cases[i].what);
        CU_ASSERT_EQUAL(rv, MCL_EDECODE);
    }
    // A topic of exactly MCL_TOPIC_MAX bytes is fine, one more is not.
    static uint8_t big[MCL_TOPIC_MAX + 16];
    size_t n = 0;
    big[n++] = 0x95;
    big[n++] = 0x01;
    big[n++] = 0xda;
    big[n++] = MCL_TOPIC_MAX >> 8;
    big[n++] = MCL_TOPIC_MAX & 0xff;
    memset(big + n, 'a', MCL_TOPIC_MAX);
    n += MCL_TOPIC_MAX;
    big[n++] = 0x02;
    big[n++] = 0x03;
    big[n++] = 0xc4;
    big[n++] = 0x00;
    MCLT_OK(mcl_log_elem_decode(big, n, &d));
    CU_ASSERT_EQUAL(d.topic_len, MCL_TOPIC_MAX);
    // Longer (non-shortest) forms that other msgpack encoders write are read.
    static const char longform[] = "\xdd\x00\x00\x00\x05\xd3\xff\xff\xff\xff\xff\xff\xff\xfe"
                                   "\xdb\x00\x00\x00\x01t\xcf\x00\x00\x00\x00\x00\x00\x00\x07"
                                   "\xd2\x00\x00\x00\x09\xc5\x00\x01z";
    MCLT_OK(mcl_log_elem_decode(longform, sizeof(longform) - 1, &d));
    CU_ASSERT_EQUAL(d.recv_realtime_ns, -2);
    CU_ASSERT_EQUAL(d.publisher, 7);
    CU_ASSERT_EQUAL(d.seq, 9);
    CU_ASSERT_EQUAL(d.len, 1);
    CU_ASSERT_EQUAL(d.topic_len, 1);
}

// --- params ------------------------------------------------------------------------------------

static void
test_params(void)
{
    mcl_log_params *p;
    MCLT_OK(mcl_log_params_parse(&p, "topic=imu/*&topic=gps&start=5&end=99"));
    const mcl_log_reader_options *o = mcl_log_params_options(p);
    CU_ASSERT_EQUAL(o->ntopics, 2);
    CU_ASSERT_STRING_EQUAL(o->topics[0], "imu/*");
    CU_ASSERT_STRING_EQUAL(o->topics[1], "gps");
    CU_ASSERT_EQUAL(o->start_ns, 5);
    CU_ASSERT_EQUAL(o->end_ns, 99);
    mcl_log_params_free(p);
    MCLT_OK(mcl_log_params_parse(&p, NULL));
    CU_ASSERT_EQUAL(mcl_log_params_options(p)->ntopics, 0);
    mcl_log_params_free(p);
    MCLT_OK(mcl_log_params_parse(&p, ""));
    mcl_log_params_free(p);
    MCLT_OK(mcl_log_params_parse(&p, "topic=")); // the empty topic
    CU_ASSERT_STRING_EQUAL(mcl_log_params_options(p)->topics[0], "");
    mcl_log_params_free(p);
    MCLT_OK(mcl_log_params_parse(&p, "topic=a%20b%26c%3D%25&end=9223372036854775807"));
    CU_ASSERT_STRING_EQUAL(mcl_log_params_options(p)->topics[0], "a b&c=%");
    CU_ASSERT_EQUAL(mcl_log_params_options(p)->end_ns, INT64_MAX);
    mcl_log_params_free(p);

    // Format, then parse: the same filters (odd bytes escaped).
    const char *topics[] = {"imu/*", "a b&c=%\xc3\xa9", "", "x?y#z"};
    mcl_log_reader_options fo = {.topics = topics, .ntopics = 4, .start_ns = 17, .end_ns = 1234};
    char buf[256];
    size_t len;
    MCLT_OK(mcl_log_params_format(&fo, buf, sizeof(buf), &len));
    CU_ASSERT_EQUAL(len, strlen(buf));
    CU_ASSERT_STRING_EQUAL(buf, "topic=imu/*&topic=a%20b%26c%3D%25%C3%A9&topic=&topic=x%3Fy%23z"
                                "&start=17&end=1234");
    MCLT_OK(mcl_log_params_parse(&p, buf));
    o = mcl_log_params_options(p);
    CU_ASSERT_EQUAL(o->ntopics, 4);
    for (size_t i = 0; i < 4 && i < o->ntopics; i++)
        CU_ASSERT_STRING_EQUAL(o->topics[i], topics[i]);
    CU_ASSERT_EQUAL(o->start_ns, 17);
    CU_ASSERT_EQUAL(o->end_ns, 1234);
    mcl_log_params_free(p);
    size_t need;
    MCLT_ERR(mcl_log_params_format(&fo, buf, 10, &need), MCL_EMSGSIZE);
    CU_ASSERT_EQUAL(need, len);
    CU_ASSERT_EQUAL(strlen(buf), 9); // truncated, still terminated
    MCLT_OK(mcl_log_params_format(NULL, buf, sizeof(buf), &len));
    CU_ASSERT_STRING_EQUAL(buf, "");

    // Hostile params: each refused with MCL_EINVAL, nothing leaks or crashes.
    static const char *const bad[] = {
        "topic",                      // no '='
        "=x",                         // no key
        "topics=a",                   // unknown key
        "Topic=a",                    // keys are case-sensitive
        "topic=a&",                   // trailing '&'
        "&topic=a",                   // leading '&'
        "topic=a&&topic=b",           // empty item
        "topic=a b",                  // a raw space
        "topic=a=b",                  // a raw '='
        "topic=a\x01",                // a control byte
        "topic=\xc3\xa9",             // raw non-ASCII (must be escaped)
        "topic=%",                    // truncated escape
        "topic=%4",                   // truncated escape
        "topic=%zz",                  // not hex
        "topic=%00",                  // NUL
        "start=",                     // empty number
        "start=-1",                   // negative
        "start=+1",                   // sign
        "start=1x",                   // junk
        "start=9223372036854775808",  // > INT64_MAX
        "start=18446744073709551616", // > UINT64_MAX
        "start=00000000000000000001", // 20 digits
        "start=1&start=2",            // twice
        "end=1&end=1",                // twice
        "start=10&end=9",             // end before start
        "start=0x10",                 // hex
        " topic=a",                   // leading space
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mcl_err rv = mcl_log_params_parse(&p, bad[i]);
        if (rv != MCL_EINVAL)
            fprintf(stderr, "\n  accepted params: '%s'\n", bad[i]);
        CU_ASSERT_EQUAL(rv, MCL_EINVAL);
        CU_ASSERT_EQUAL(p, NULL);
    }
    // Limits: topic length, topic count, total length.
    char *s = malloc(8192);
    CU_ASSERT_FATAL(s != NULL);
    int n = snprintf(s, 8192, "topic=");
    memset(s + n, 'a', MCL_TOPIC_MAX);
    s[n + MCL_TOPIC_MAX] = '\0';
    MCLT_OK(mcl_log_params_parse(&p, s));
    mcl_log_params_free(p);
    strcat(s, "*"); // a prefix pattern may have one more
    MCLT_OK(mcl_log_params_parse(&p, s));
    mcl_log_params_free(p);
    s[n + MCL_TOPIC_MAX] = 'a';
    s[n + MCL_TOPIC_MAX + 1] = '\0';
    MCLT_ERR(mcl_log_params_parse(&p, s), MCL_EINVAL);
    s[0] = '\0';
    for (int i = 0; i < 256; i++)
        strcat(s, i ? "&topic=x" : "topic=x");
    MCLT_OK(mcl_log_params_parse(&p, s));
    CU_ASSERT_EQUAL(mcl_log_params_options(p)->ntopics, 256);
    mcl_log_params_free(p);
    strcat(s, "&topic=x");
    MCLT_ERR(mcl_log_params_parse(&p, s), MCL_EINVAL);
    memset(s, 'a', 8191);
    memcpy(s, "topic=", 6);
    s[4097] = '\0';
    MCLT_ERR(mcl_log_params_parse(&p, s), MCL_EINVAL);
    free(s);
    // Allocation failures at every step: refused cleanly.
    for (long k = 0; k < 8; k++) {
        mcl__alloc_fail_after(k);
        mcl_err rv = mcl_log_params_parse(&p, "topic=a&topic=b&start=1");
        mcl__alloc_fail_after(-1);
        CU_ASSERT(rv == MCL_OK || rv == MCL_ENOMEM);
        mcl_log_params_free(p);
    }
}

// --- the source ----------------------------------------------------------------------------------

static void
test_source_positions(void)
{
    const char *path = mclt_tmppath("pos.mcllog");
    write_log(path, 5000, 1, NULL);
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    CU_ASSERT_EQUAL(src.ops->kind, MCL_STREAM_ENTITIES);
    unsigned mode = src.ops->mode(src.self);
    CU_ASSERT_EQUAL(mode, MCL_STREAM_READABLE | MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK |
                              MCL_STREAM_SEEK_TIME | MCL_STREAM_BOUNDED_START |
                              MCL_STREAM_MOVABLE_END);
    const char *info = src.ops->info(src.self);
    CU_ASSERT_PTR_NOT_NULL_FATAL(info);
    CU_ASSERT(strstr(info, "first_ns=1000000000\n") != NULL);
    CU_ASSERT(strstr(info, "last_ns=5999000000\n") != NULL);
    CU_ASSERT(strstr(info, "records=5000\n") != NULL); // small: counted at open
    CU_ASSERT(strstr(info, "files=1\n") != NULL);
    CU_ASSERT(strstr(info, "corrupt=0\n") != NULL);
    uint64_t start, end;
    src.ops->bounds(src.self, &start, &end);
    CU_ASSERT_EQUAL(start, 0);
    CU_ASSERT_EQUAL(end, 5000);

    // Everything in order, in reads of 97: each element is its record.
    mcl_stream_sink k;
    mcl__sink_init(&k, MCL_STREAM_ENTITIES, 1 << 20, 97);
    int next = 0;
    for (int reads = 0; next < 5000 && reads < 200; reads++) {
        mcl__sink_reset(&k, 1 << 20, 97);
        MCLT_OK(src.ops->read(src.self, (uint64_t)next, 97, &k));
        const uint8_t *e[97];
        size_t l[97];
        size_t n = sink_elems(&k, e, l, 97);
        CU_ASSERT(n > 0);
        for (size_t i = 0; i < n; i++)
            CU_ASSERT(is_rec(e[i], l[i], next + (int)i, 1, 1000000000));
        next += (int)n;
    }
    CU_ASSERT_EQUAL(next, 5000);
    mcl__sink_reset(&k, 1 << 20, 97);
    MCLT_OK(src.ops->read(src.self, 5000, 97, &k)); // at the end: nothing, no error
    CU_ASSERT_EQUAL(k.units, 0);
    mcl__sink_fini(&k);

    // Seeks back, forward, far and near: always the record at that index.
    static uint64_t seqs[8192];
    size_t n;
    const uint64_t at[] = {10, 4999, 0, 3000, 3001, 2047, 2048, 1023, 1024, 4500, 17, 4096};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        MCLT_OK(read_seqs(&src, at[i], 3, 1 << 20, seqs, &n));
        CU_ASSERT_EQUAL(n, at[i] + 3 <= 5000 ? 3 : 5000 - at[i]);
        for (size_t j = 0; j < n; j++)
            CU_ASSERT_EQUAL(seqs[j], at[i] + j);
    }
    // Beyond the end: MCL_ERANGE; then back in range.
    MCLT_ERR(read_seqs(&src, 5001, 3, 1 << 20, seqs, &n), MCL_ERANGE);
    CU_ASSERT_EQUAL(n, 0);
    MCLT_OK(read_seqs(&src, 42, 1, 1 << 20, seqs, &n));
    CU_ASSERT(n == 1 && seqs[0] == 42);
    src.ops->close(src.self);
}

// A log bigger than what is counted at open: the end is unknown until a read reaches it.
static void
test_source_big_log(void)
{
    const char *path = mclt_tmppath("big.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, path, NULL));
    static uint8_t pay[4096];
    for (int i = 0; i < 4200; i++) { // ~17 MiB
        mcl_raw_msg m = {.topic = "big",
                         .topic_len = 3,
                         .payload = pay,
                         .len = sizeof(pay),
                         .seq = (uint64_t)i,
                         .recv_realtime_ns = 1000 + i};
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    const char *info = src.ops->info(src.self);
    CU_ASSERT(strstr(info, "first_ns=1000\n") != NULL);
    CU_ASSERT(strstr(info, "records=") == NULL);
    CU_ASSERT(strstr(info, "last_ns=") == NULL);
    uint64_t start, end;
    src.ops->bounds(src.self, &start, &end);
    CU_ASSERT_EQUAL(end, MCL_STREAM_NOEND);
    uint64_t pos;
    MCLT_OK(src.ops->seek_time(src.self, 1000 + 4100, &pos)); // counts its way there
    CU_ASSERT_EQUAL(pos, 4100);
    static uint64_t seqs[128];
    size_t n;
    MCLT_OK(read_seqs(&src, 4100, 128, 1 << 22, seqs, &n));
    CU_ASSERT_EQUAL(n, 100);
    CU_ASSERT(n > 0 && seqs[0] == 4100 && seqs[n - 1] == 4199);
    src.ops->bounds(src.self, &start, &end);
    CU_ASSERT_EQUAL(end, 4200);                               // known once reached
    MCLT_OK(src.ops->seek_time(src.self, 1000 + 2000, &pos)); // back: from a mark
    CU_ASSERT_EQUAL(pos, 2000);
    MCLT_OK(read_seqs(&src, 2000, 2, 1 << 22, seqs, &n));
    CU_ASSERT(n == 2 && seqs[0] == 2000 && seqs[1] == 2001);
    src.ops->close(src.self);
}

static void
test_source_seek_time(void)
{
    // Each time three times: records 3t, 3t+1, 3t+2 at t0 + t ms.
    const char *path = mclt_tmppath("dup.mcllog");
    write_log(path, 3000, 3, NULL);
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    uint64_t pos;
    static uint64_t seqs[16];
    size_t n;
    const int ts[] = {0, 1, 500, 999, 341, 342, 7, 999, 0, 600};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        MCLT_OK(src.ops->seek_time(src.self, 1000000000 + (int64_t)ts[i] * 1000000, &pos));
        CU_ASSERT_EQUAL(pos, (uint64_t)ts[i] * 3); // the first of the three
        MCLT_OK(read_seqs(&src, pos, 4, 1 << 20, seqs, &n));
        CU_ASSERT_EQUAL(n, ts[i] == 999 ? 3 : 4);
        CU_ASSERT(n > 0 && seqs[0] == pos);
        // Between two times: the first record of the later one.
        MCLT_OK(src.ops->seek_time(src.self, 1000000000 + (int64_t)ts[i] * 1000000 - 1, &pos));
        CU_ASSERT_EQUAL(pos, (uint64_t)ts[i] * 3);
    }
    MCLT_OK(src.ops->seek_time(src.self, INT64_MIN, &pos));
    CU_ASSERT_EQUAL(pos, 0);
    MCLT_OK(src.ops->seek_time(src.self, 1000000000 + 1000 * 1000000LL, &pos)); // after the last
    CU_ASSERT_EQUAL(pos, 3000);
    // A read right after a time seek continues at the record found; then a seek back by index.
    MCLT_OK(src.ops->seek_time(src.self, 1000000000 + 100 * 1000000LL, &pos));
    MCLT_OK(read_seqs(&src, 300, 2, 1 << 20, seqs, &n));
    CU_ASSERT(n == 2 && seqs[0] == 300 && seqs[1] == 301);
    MCLT_OK(read_seqs(&src, 5, 1, 1 << 20, seqs, &n));
    CU_ASSERT(n == 1 && seqs[0] == 5);
    src.ops->close(src.self);

    // Times out of order (records of several connections): the first record in reader order
    // at or after the time, and its true index.
    const char *oo = mclt_tmppath("disorder.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, oo, NULL));
    const int64_t t[] = {10, 5, 20, 15, 30, 25, 25, 40};
    for (int i = 0; i < 8; i++) {
        mcl_raw_msg m = {
            .topic = "x", .topic_len = 1, .seq = (uint64_t)i, .recv_realtime_ns = t[i]};
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
    const char *op[] = {oo};
    MCLT_OK(mcl_log_source_open(&src, op, 1, NULL));
    const struct {
        int64_t t;
        uint64_t pos;
    } want[] = {{12, 2}, {5, 0}, {16, 2}, {21, 4}, {26, 4}, {31, 7}, {0, 0}, {41, 8}, {11, 2}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        MCLT_OK(src.ops->seek_time(src.self, want[i].t, &pos));
        CU_ASSERT_EQUAL(pos, want[i].pos);
        if (want[i].pos < 8) {
            MCLT_OK(read_seqs(&src, pos, 1, 1 << 20, seqs, &n));
            CU_ASSERT(n == 1 && seqs[0] == want[i].pos);
        }
    }
    src.ops->close(src.self);
}

static void
test_source_filters(void)
{
    const char *path = mclt_tmppath("filt.mcllog");
    write_log(path, 900, 1, NULL);
    // Topics t1/a and t2/b (every record but i%3 == 0), from record 300 to 599 by time.
    const char *topics[] = {"t1/*", "t2/b"};
    mcl_log_reader_options o = {.topics = topics,
                                .ntopics = 2,
                                .start_ns = 1000000000 + 300 * 1000000LL,
                                .end_ns = 1000000000 + 599 * 1000000LL};
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, &o));
    CU_ASSERT(strstr(src.ops->info(src.self), "records=200\n") != NULL);
    CU_ASSERT(strstr(src.ops->info(src.self), "first_ns=1301000000\n") != NULL);
    static uint64_t seqs[512];
    size_t n;
    MCLT_OK(read_seqs(&src, 0, 512, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 200);
    // Index i is the i-th record that passes: 301, 302, 304, 305, ...
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(seqs[i], 300 + (i / 2) * 3 + 1 + (i % 2));
    MCLT_OK(read_seqs(&src, 101, 1, 1 << 20, seqs, &n));
    CU_ASSERT(n == 1 && seqs[0] == 300 + 50 * 3 + 2);
    uint64_t pos;
    MCLT_OK(src.ops->seek_time(src.self, 1000000000 + 450 * 1000000LL, &pos)); // 450: t0, left out
    CU_ASSERT_EQUAL(pos, 100);
    src.ops->close(src.self);
}

// Records that do not fit the push come in the next read; one larger than any push fails the
// read (and fits a larger push later).
static void
test_source_carry_over(void)
{
    const char *path = mclt_tmppath("carry.mcllog");
    write_log(path, 300, 1, NULL);
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    static uint64_t seqs[512];
    uint64_t next = 0;
    int reads = 0;
    while (next < 300 && reads < 1000) {
        size_t n;
        MCLT_OK(read_seqs(&src, next, 100, 700, seqs, &n)); // room for a few records
        CU_ASSERT(n >= 1);
        for (size_t i = 0; i < n; i++)
            CU_ASSERT_EQUAL(seqs[i], next + i);
        next += n;
        reads++;
    }
    CU_ASSERT_EQUAL(next, 300);
    CU_ASSERT(reads > 30); // the budget did cut reads short
    // Record 199 (199 payload bytes) does not fit a 150-byte push at all.
    size_t n;
    MCLT_ERR(read_seqs(&src, 199, 10, 150, seqs, &n), MCL_EMSGSIZE);
    CU_ASSERT_EQUAL(n, 0);
    MCLT_OK(read_seqs(&src, 199, 2, 1000, seqs, &n));
    CU_ASSERT(n == 2 && seqs[0] == 199 && seqs[1] == 200);
    // A unit budget of 1: one at a time, none lost.
    for (uint64_t i = 0; i < 20; i++) {
        MCLT_OK(read_seqs(&src, 250 + i, 1, 1 << 20, seqs, &n));
        CU_ASSERT(n == 1 && seqs[0] == 250 + i);
    }
    src.ops->close(src.self);
}

// A log still being written: read to its end, more written, read again (follow). Also a file
// that was empty when opened, and a split series that gets new parts.
static void
test_source_follow(void)
{
    const char *path = mclt_tmppath("live.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, path, NULL));
    // Nothing flushed yet: the file is empty (a recording that just started).
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    CU_ASSERT(strstr(src.ops->info(src.self), "records=0\n") != NULL);
    static uint64_t seqs[512];
    size_t n;
    MCLT_OK(read_seqs(&src, 0, 100, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 0);
    write_recs(w, 0, 10, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    MCLT_OK(read_seqs(&src, 0, 100, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT(n == 10 && seqs[9] == 9);
    MCLT_OK(read_seqs(&src, 10, 100, 1 << 20, seqs, &n)); // at the end for now
    CU_ASSERT_EQUAL(n, 0);
    uint64_t start, end;
    src.ops->bounds(src.self, &start, &end);
    CU_ASSERT_EQUAL(end, 10);
    write_recs(w, 10, 25, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    MCLT_OK(read_seqs(&src, 10, 100, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 15);
    CU_ASSERT(n == 15 && seqs[0] == 10 && seqs[14] == 24);
    // A time seek to the future is the end; records written later are found there.
    uint64_t pos;
    MCLT_OK(src.ops->seek_time(src.self, 1000000000 + 30 * 1000000LL, &pos));
    CU_ASSERT_EQUAL(pos, 25);
    write_recs(w, 25, 40, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    MCLT_OK(src.ops->seek_time(src.self, 1000000000 + 30 * 1000000LL, &pos));
    CU_ASSERT_EQUAL(pos, 30);
    MCLT_OK(read_seqs(&src, 0, 100, 1 << 20, seqs, &n)); // and from the start again
    CU_ASSERT_EQUAL(n, 40);
    MCLT_OK(mcl_log_writer_close(w));
    src.ops->close(src.self);

    // A split series: parts of 10 records; new parts are picked up.
    mcl_log_writer_options so = {.split_count = 10};
    const char *series = mclt_tmppath("liveseries");
    MCLT_OK(mcl_log_writer_open(&w, series, &so));
    write_recs(w, 0, 15, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    const char *sp[] = {series};
    MCLT_OK(mcl_log_source_open(&src, sp, 1, NULL));
    MCLT_OK(read_seqs(&src, 0, 100, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 15);
    write_recs(w, 15, 47, 1, 1000000000); // parts 002..004
    MCLT_OK(mcl_log_writer_flush(w, false));
    MCLT_OK(read_seqs(&src, 15, 100, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 32);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(seqs[i], 15 + i);
    MCLT_OK(mcl_log_writer_close(w));
    MCLT_OK(read_seqs(&src, 3, 100, 1 << 20, seqs, &n)); // back into an earlier part
    CU_ASSERT(n == 44 && seqs[0] == 3);
    src.ops->close(src.self);
}

// mcl_log_reader_refresh() on its own: torn tails, headers written in pieces, garbage growth.
static void
test_reader_refresh(void)
{
    // A finished log copied into a file piece by piece: each refresh reads exactly the records
    // complete so far, never damage.
    const char *src_path = mclt_tmppath("whole.mcllog");
    write_log(src_path, 200, 1, NULL);
    int fd = open(src_path, O_RDONLY);
    CU_ASSERT_FATAL(fd >= 0);
    static uint8_t whole[1 << 16];
    ssize_t total = read(fd, whole, sizeof(whole));
    close(fd);
    CU_ASSERT_FATAL(total > 1000);
    const char *grow = mclt_tmppath("grow.mcllog");
    fd = open(grow, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, whole, 5) == 5); // part of the magic only
    mcl_log_reader *r;
    const char *gp[] = {grow};
    MCLT_OK(mcl_log_reader_open(&r, gp, 1, NULL)); // a header still being written: empty
    const mcl_raw_msg *m;
    MCLT_ERR(mcl_log_reader_next(r, &m), MCL_ENOENT);
    size_t at = 5;
    int got = 0;
    uint64_t step = 1;
    while (at < (size_t)total) {
        size_t k = (size_t)(mclt_rand(&step) % 97) + 1;
        if (at + k > (size_t)total)
            k = (size_t)total - at;
        CU_ASSERT(write(fd, whole + at, k) == (ssize_t)k);
        at += k;
        MCLT_OK(mcl_log_reader_refresh(r));
        while (mcl_log_reader_next(r, &m) == MCL_OK) {
            CU_ASSERT_EQUAL(m->seq, (uint64_t)got);
            got++;
        }
    }
    CU_ASSERT_EQUAL(got, 200);
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, NULL), 0);
    // Garbage appended: counted as damage, nothing more returned, nothing crashes.
    CU_ASSERT(write(fd, "MRECgarbage-garbage-garbage-garbage-garbage-garbage-garbage", 59) == 59);
    MCLT_OK(mcl_log_reader_refresh(r));
    MCLT_ERR(mcl_log_reader_next(r, &m), MCL_ENOENT);
    // The same record again after a reset and refresh: all 200.
    MCLT_OK(mcl_log_reader_reset(r));
    got = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        got++;
    CU_ASSERT_EQUAL(got, 200);
    // Truncated under the reader (a file rewritten): no crash; reads what is there.
    CU_ASSERT(ftruncate(fd, 100) == 0);
    MCLT_OK(mcl_log_reader_refresh(r));
    MCLT_OK(mcl_log_reader_reset(r));
    got = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        got++;
    CU_ASSERT(got < 5);
    close(fd);
    mcl_log_reader_close(r);

    // Refreshed with a record handed out (its source's look-ahead): the file is mapped again
    // under it; the record still reads right, and reading goes on without loss or repeats.
    const char *mid = mclt_tmppath("mid.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mid, NULL));
    write_recs(w, 0, 10, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    const char *mp[] = {mid};
    MCLT_OK(mcl_log_reader_open(&r, mp, 1, NULL));
    MCLT_OK(mcl_log_reader_next(r, &m));
    MCLT_OK(mcl_log_reader_next(r, &m));
    CU_ASSERT_EQUAL(m->seq, 1);
    write_recs(w, 10, 400, 1, 1000000000); // (well past a page: a new mapping)
    MCLT_OK(mcl_log_writer_flush(w, false));
    MCLT_OK(mcl_log_reader_refresh(r));
    CU_ASSERT(m->len == 1 && ((const uint8_t *)m->payload)[0] == 1); // relocated
    CU_ASSERT_STRING_EQUAL(m->topic, "t1/a");
    got = 2;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        CU_ASSERT_EQUAL(m->seq, (uint64_t)got);
        got++;
    }
    CU_ASSERT_EQUAL(got, 400);
    MCLT_OK(mcl_log_writer_close(w));
    // ... and a file cut through the record handed out: dropped, no crash, the end.
    MCLT_OK(mcl_log_reader_reset(r));
    for (int i = 0; i < 300; i++)
        MCLT_OK(mcl_log_reader_next(r, &m));
    struct stat st;
    CU_ASSERT(stat(mid, &st) == 0);
    CU_ASSERT(truncate(mid, st.st_size / 2) == 0); // records 0..~250 stay
    MCLT_OK(mcl_log_reader_refresh(r));
    MCLT_ERR(mcl_log_reader_next(r, &m), MCL_ENOENT);
    MCLT_OK(mcl_log_reader_reset(r));
    got = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        got++;
    CU_ASSERT(got > 150 && got < 300);
    mcl_log_reader_close(r);

    // A file that grows into something that is not a log: skipped, never read.
    const char *junk = mclt_tmppath("junk-grow.mcllog");
    fd = open(junk, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const char *jp[] = {junk};
    MCLT_OK(mcl_log_reader_open(&r, jp, 1, NULL));
    CU_ASSERT(write(fd, "this is not a log\n", 18) == 18);
    MCLT_OK(mcl_log_reader_refresh(r));
    MCLT_ERR(mcl_log_reader_next(r, &m), MCL_ENOENT);
    close(fd);
    mcl_log_reader_close(r);
    MCLT_ERR(mcl_log_reader_refresh(NULL), MCL_EINVAL);
}

// A damaged log through the source: damage counted, intact records served.
static void
test_source_damaged(void)
{
    const char *path = mclt_tmppath("damaged.mcllog");
    write_log(path, 100, 1, NULL);
    int fd = open(path, O_RDWR);
    CU_ASSERT_FATAL(fd >= 0);
    struct stat st;
    fstat(fd, &st);
    CU_ASSERT(pwrite(fd, "XXXXXXXXXXXX", 12, st.st_size / 2) == 12);
    close(fd);
    mcl_stream_source src;
    const char *paths[] = {path};
    MCLT_OK(mcl_log_source_open(&src, paths, 1, NULL));
    int want = 0; // what the reader makes of it
    mcl_log_reader *r;
    const mcl_raw_msg *m;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        want++;
    mcl_log_reader_close(r);
    CU_ASSERT(want >= 97 && want < 100);
    char line[32];
    snprintf(line, sizeof(line), "records=%d\n", want);
    CU_ASSERT(strstr(src.ops->info(src.self), line) != NULL);
    CU_ASSERT(strstr(src.ops->info(src.self), "corrupt=1\n") != NULL);
    static uint64_t seqs[128];
    size_t n;
    MCLT_OK(read_seqs(&src, 0, 128, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, (size_t)want);
    src.ops->close(src.self);
    // Not a log at all.
    const char *junk = mclt_tmppath("notalog.mcllog");
    FILE *f = fopen(junk, "w");
    fputs("hello\n", f);
    fclose(f);
    const char *jp[] = {junk};
    MCLT_ERR(mcl_log_source_open(&src, jp, 1, NULL), MCL_EPROTO);
    const char *none[] = {mclt_tmppath("none.mcllog")};
    MCLT_ERR(mcl_log_source_open(&src, none, 1, NULL), MCL_ENOENT);
    MCLT_ERR(mcl_log_source_open(NULL, paths, 1, NULL), MCL_EINVAL);
    MCLT_ERR(mcl_log_source_open(&src, paths, 0, NULL), MCL_EINVAL);
}

// --- the server ----------------------------------------------------------------------------------

typedef struct listing {
    char names[64][128];
    char infos[64][256];
    int n;
} listing;

static void
on_list(void *ctx, const char *name, const char *info)
{
    listing *l = ctx;
    if (l->n < 64) {
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
        snprintf(l->infos[l->n], sizeof(l->infos[0]), "%s", info ? info : "");
        l->n++;
    }
}

static int
listed(const listing *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return i;
    return -1;
}

// The root for the server tests: root/a.mcllog (30 records), root/ser_000.. (a series of 25),
// root/sub/b.mcllog (7), root/.hidden.mcllog, root/notes.txt, root/bad.mcllog (not a log),
// root/escape.mcllog -> a log outside the root, root/subdir-link -> a directory outside.
static const char *
make_root(void)
{
    static char root[512];
    snprintf(root, sizeof(root), "%s", mclt_tmppath("root"));
    mkdir(root, 0755);
    mkdir(mclt_tmppath("root/sub"), 0755);
    mkdir(mclt_tmppath("outside"), 0755);
    write_log(mclt_tmppath("root/a.mcllog"), 30, 1, NULL);
    mcl_log_writer_options so = {.split_count = 10};
    write_log(mclt_tmppath("root/ser"), 25, 1, &so);
    write_log(mclt_tmppath("root/sub/b.mcllog"), 7, 1, NULL);
    write_log(mclt_tmppath("root/.hidden.mcllog"), 3, 1, NULL);
    write_log(mclt_tmppath("outside/secret.mcllog"), 5, 1, NULL);
    FILE *f = fopen(mclt_tmppath("root/notes.txt"), "w");
    fputs("notes\n", f);
    fclose(f);
    f = fopen(mclt_tmppath("root/bad.mcllog"), "w");
    fputs("not a log\n", f);
    fclose(f);
    CU_ASSERT(symlink(mclt_tmppath("outside/secret.mcllog"), mclt_tmppath("root/escape.mcllog")) == 0);
    CU_ASSERT(symlink(mclt_tmppath("outside"), mclt_tmppath("root/subdir-link")) == 0);
    return root;
}

static void
test_server_resolve_and_list(void)
{
    const char *root = make_root();
    mcl_log_server *s;
    MCLT_OK(mcl_log_server_new(&s, root));
    mcl_stream_source src;
    static uint64_t seqs[64];
    size_t n;
    MCLT_OK(mcl_log_server_resolve(s, "a.mcllog", NULL, &src));
    MCLT_OK(read_seqs(&src, 0, 64, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 30);
    src.ops->close(src.self);
    MCLT_OK(mcl_log_server_resolve(s, "ser", "topic=t0&start=1010000000", &src)); // a series
    MCLT_OK(read_seqs(&src, 0, 64, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 5); // 12, 15, 18, 21, 24
    CU_ASSERT(n == 5 && seqs[0] == 12 && seqs[4] == 24);
    src.ops->close(src.self);
    MCLT_OK(mcl_log_server_resolve(s, "sub", NULL, &src)); // a directory
    MCLT_OK(read_seqs(&src, 0, 64, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 7);
    src.ops->close(src.self);
    MCLT_OK(mcl_log_server_resolve(s, "sub/b.mcllog", "", &src));
    src.ops->close(src.self);

    // Names that are refused, or lead outside the root.
    static const char *const perm[] = {
        "/etc/passwd",
        "../outside/secret.mcllog",
        "sub/../../outside/secret.mcllog",
        "..",
        ".",
        "./a.mcllog",
        "sub//b.mcllog",
        "sub/",
        "",
        "a.mcllog\n",
        "escape.mcllog",
        "subdir-link/secret.mcllog",
        "sub/./b.mcllog",
    };
    for (size_t i = 0; i < sizeof(perm) / sizeof(perm[0]); i++) {
        mcl_err rv = mcl_log_server_resolve(s, perm[i], NULL, &src);
        if (rv != MCL_EPERM)
            fprintf(stderr, "\n  '%s': %s\n", perm[i], mcl_err_name(rv));
        CU_ASSERT_EQUAL(rv, MCL_EPERM);
    }
    MCLT_ERR(mcl_log_server_resolve(s, "nothing.mcllog", NULL, &src), MCL_ENOENT);
    MCLT_ERR(mcl_log_server_resolve(s, "sub/nothing", NULL, &src), MCL_ENOENT);
    MCLT_ERR(mcl_log_server_resolve(s, "bad.mcllog", NULL, &src), MCL_EPROTO);
    MCLT_ERR(mcl_log_server_resolve(s, "a.mcllog", "topic=%zz", &src), MCL_EINVAL);
    MCLT_ERR(mcl_log_server_resolve(s, "a.mcllog", "rm=-rf", &src), MCL_EINVAL);
    MCLT_ERR(mcl_log_server_resolve(s, NULL, NULL, &src), MCL_EINVAL);

    // Named logs: exact names, taking precedence over the root.
    MCLT_OK(mcl_log_server_add(s, "live", mclt_tmppath("root/sub/b.mcllog")));
    MCLT_ERR(mcl_log_server_add(s, "live", mclt_tmppath("root/a.mcllog")), MCL_EEXIST);
    MCLT_ERR(mcl_log_server_add(s, "a/b", mclt_tmppath("root/a.mcllog")), MCL_EINVAL);
    MCLT_ERR(mcl_log_server_add(s, "", mclt_tmppath("root/a.mcllog")), MCL_EINVAL);
    MCLT_OK(mcl_log_server_add(s, "a.mcllog", mclt_tmppath("root/sub/b.mcllog")));
    MCLT_OK(mcl_log_server_resolve(s, "live", NULL, &src));
    MCLT_OK(read_seqs(&src, 0, 64, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 7);
    src.ops->close(src.self);
    MCLT_OK(mcl_log_server_resolve(s, "a.mcllog", NULL, &src));
    MCLT_OK(read_seqs(&src, 0, 64, 1 << 20, seqs, &n));
    CU_ASSERT_EQUAL(n, 7);
    src.ops->close(src.self);

    // The list: named logs, then every log under the root (not hidden ones, links, other files).
    listing *l = calloc(1, sizeof(*l));
    CU_ASSERT_FATAL(l != NULL);
    mcl_log_server_list(s, on_list, l);
    CU_ASSERT_EQUAL(l->n, 5); // (the root's a.mcllog is hidden by the named one)
    CU_ASSERT_EQUAL(listed(l, "live"), 0);
    CU_ASSERT_EQUAL(listed(l, "a.mcllog"), 1); // (the named one: 7 records)
    CU_ASSERT(strstr(l->infos[1], "records=7\n") != NULL);
    int i = listed(l, "ser");
    CU_ASSERT(i >= 0 && strstr(l->infos[i], "records=25\n") && strstr(l->infos[i], "files=3\n"));
    i = listed(l, "sub/b.mcllog");
    CU_ASSERT(i >= 0 && strstr(l->infos[i], "first_ns=1000000000\n") &&
              strstr(l->infos[i], "last_ns=1006000000\n"));
    i = listed(l, "bad.mcllog");
    CU_ASSERT(i >= 0 && strstr(l->infos[i], "error=MCL_EPROTO\n"));
    CU_ASSERT(listed(l, ".hidden.mcllog") < 0);
    CU_ASSERT(listed(l, "escape.mcllog") < 0);
    CU_ASSERT(listed(l, "notes.txt") < 0);
    CU_ASSERT(listed(l, "ser_000.mcllog") < 0);
    free(l);
    mcl_log_server_free(s);
    MCLT_ERR(mcl_log_server_new(&s, mclt_tmppath("root/a.mcllog")), MCL_ENOENT);
    CU_ASSERT_EQUAL(s, NULL);
    MCLT_ERR(mcl_log_server_new(&s, mclt_tmppath("nothing")), MCL_ENOENT);
    // Without a root: named logs only.
    MCLT_OK(mcl_log_server_new(&s, NULL));
    MCLT_ERR(mcl_log_server_resolve(s, "a.mcllog", NULL, &src), MCL_ENOENT);
    mcl_log_server_free(s);
    mcl_log_server_free(NULL);
}

// --- end to end, over an in-process connection ----------------------------------------------------

// Receives elements until n have come or nothing comes for ms; checks that element i is record
// first + i*step ... via want_seq(i); returns the count.
static size_t
recv_records(mcl_stream *s, uint64_t *seqs, size_t max, int ms)
{
    size_t n = 0;
    while (n < max) {
        mcl_stream_elem e[64];
        size_t got;
        mcl_err rv = mcl_stream_recv_elems(s, e, max - n < 64 ? max - n : 64, &got, ms);
        if (rv != MCL_OK)
            break;
        for (size_t i = 0; i < got; i++) {
            mcl_raw_msg m;
            if (mcl_log_elem_decode(e[i].data, e[i].len, &m) != MCL_OK) {
                CU_FAIL("element does not decode");
                return n;
            }
            seqs[n++] = m.seq;
        }
    }
    return n;
}

typedef struct names {
    int n;
    bool saw_live, saw_a;
} names;

static void
on_name(void *user, const char *name, const char *info)
{
    names *ns = user;
    ns->n++;
    if (strcmp(name, "live") == 0)
        ns->saw_live = true;
    if (strcmp(name, "a.mcllog") == 0 && strstr(info, "records=30\n") != NULL)
        ns->saw_a = true;
}

static void
test_over_a_connection(void)
{
    static char root[512];
    snprintf(root, sizeof(root), "%s", mclt_tmppath("net"));
    mkdir(root, 0755);
    write_log(mclt_tmppath("net/a.mcllog"), 30, 1, NULL);
    write_log(mclt_tmppath("net/dup.mcllog"), 3000, 3, NULL);
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("net-live.mcllog"), NULL));
    write_recs(w, 0, 5, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    mcl_log_server *srv;
    MCLT_OK(mcl_log_server_new(&srv, root));
    MCLT_OK(mcl_log_server_add(srv, "live", mclt_tmppath("net-live.mcllog")));
    CU_ASSERT_EQUAL(mcl_log_server_url(srv), NULL);
    char url[128];
    snprintf(url, sizeof(url), "inproc://logstream-test-%d", (int)getpid());
    MCLT_OK(mcl_log_server_listen(srv, url, NULL));
    MCLT_ERR(mcl_log_server_listen(srv, url, NULL), MCL_ESTATE);
    MCLT_ERR(mcl_log_server_add(srv, "late", mclt_tmppath("net-live.mcllog")), MCL_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(mcl_log_server_url(srv));
    CU_ASSERT_PTR_NOT_NULL(mcl_log_server_streams(srv));

    names ns = {0};
    MCLT_OK(mcl_stream_list(url, on_name, &ns, 5000));
    CU_ASSERT_EQUAL(ns.n, 3);
    CU_ASSERT(ns.saw_live && ns.saw_a);

    // A whole log, filtered by the server.
    static uint64_t seqs[4096];
    mcl_stream_options o = {.params = "topic=t1/*", .require_mode = MCL_STREAM_SEEK_TIME};
    mcl_stream *s;
    MCLT_OK(mcl_stream_open(&s, url, "a.mcllog", &o));
    CU_ASSERT_EQUAL(mcl_stream_kind_of(s), MCL_STREAM_ENTITIES);
    CU_ASSERT(strstr(mcl_stream_info(s), "records=10\n") != NULL);
    CU_ASSERT(strstr(mcl_stream_info(s), "first_ns=1001000000\n") != NULL);
    size_t n = recv_records(s, seqs, 4096, 5000);
    CU_ASSERT_EQUAL(n, 10);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(seqs[i], 1 + 3 * i);
    mcl_stream_elem e[4];
    size_t got;
    MCLT_ERR(mcl_stream_recv_elems(s, e, 4, &got, 5000), MCL_EEOF);
    MCLT_OK(mcl_stream_close(s, 5000));
    mcl_stream_free(s);

    // Seeks by time and index, with a small read-ahead window.
    mcl_stream_options so = {.window = 16};
    MCLT_OK(mcl_stream_open(&s, url, "dup.mcllog", &so));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_AT_TIME, 1000000000 + 700 * 1000000LL));
    uint64_t pos;
    MCLT_OK(mcl_stream_tell(s, &pos, NULL, NULL, 5000));
    CU_ASSERT_EQUAL(pos, 2100);
    CU_ASSERT_EQUAL(recv_records(s, seqs, 5, 5000), 5);
    CU_ASSERT(seqs[0] == 2100 && seqs[4] == 2104);
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 7));
    CU_ASSERT_EQUAL(recv_records(s, seqs, 2, 5000), 2);
    CU_ASSERT(seqs[0] == 7 && seqs[1] == 8);
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_END, -3)); // counted at open: the end is known
    CU_ASSERT_EQUAL(recv_records(s, seqs, 10, 5000), 3);
    CU_ASSERT(seqs[0] == 2997 && seqs[2] == 2999);
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 3001));
    MCLT_ERR(mcl_stream_recv_elems(s, e, 4, &got, 5000), MCL_ERANGE);
    MCLT_OK(mcl_stream_close(s, 5000));
    mcl_stream_free(s);

    // Following the log being written: records written after the reader started arrive.
    mcl_stream_options fo = {.eos = MCL_STREAM_EOS_FOLLOW};
    MCLT_OK(mcl_stream_open(&s, url, "live", &fo));
    CU_ASSERT_EQUAL(recv_records(s, seqs, 5, 5000), 5);
    MCLT_ERR(mcl_stream_recv_elems(s, e, 4, &got, 100), MCL_ETIMEDOUT); // nothing more yet
    write_recs(w, 5, 50, 1, 1000000000);
    MCLT_OK(mcl_log_writer_flush(w, false));
    n = recv_records(s, seqs, 45, 5000);
    CU_ASSERT_EQUAL(n, 45);
    CU_ASSERT(n == 45 && seqs[0] == 5 && seqs[44] == 49);
    MCLT_OK(mcl_stream_close(s, 5000));
    mcl_stream_free(s);

    // Refusals travel to the opener.
    mcl_stream_options bad = {.params = "topic=%zz"};
    MCLT_ERR(mcl_stream_open(&s, url, "a.mcllog", &bad), MCL_EINVAL);
    MCLT_ERR(mcl_stream_open(&s, url, "../net-live.mcllog", NULL), MCL_EPERM);
    MCLT_ERR(mcl_stream_open(&s, url, "nothing.mcllog", NULL), MCL_ENOENT);
    MCLT_OK(mcl_log_writer_close(w));
    mcl_log_server_free(srv);
}

static CU_TestInfo tests[] = {{"elem_roundtrip", test_elem_roundtrip},
                              {"elem_decode_refuses", test_elem_decode_refuses},
                              {"params", test_params},
                              {"source_positions", test_source_positions},
                              {"source_big_log", test_source_big_log},
                              {"source_seek_time", test_source_seek_time},
                              {"source_filters", test_source_filters},
                              {"source_carry_over", test_source_carry_over},
                              {"source_follow", test_source_follow},
                              {"reader_refresh", test_reader_refresh},
                              {"source_damaged", test_source_damaged},
                              {"server_resolve_and_list", test_server_resolve_and_list},
                              {"over_a_connection", test_over_a_connection},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("log_stream", NULL, NULL, tests);
