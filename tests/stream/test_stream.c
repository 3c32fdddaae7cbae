// SPDX-License-Identifier: BSD-3-Clause
// Streams end to end over in-process packet streams: reading with and without read-ahead,
// seeks (no stale data after one, bad positions answered), follow, writes, truncation, the
// built-in sources, credit faults (drop, duplicate, reorder), protocol violations from a fake
// other side, handshake refusals, observers, close, and the connection's end.
#define _GNU_SOURCE
#include "harness.h"
#include "stream/stream_int.h"
#include "stream/swire.h"

#include <mcl/stream.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int url_seq;

// A server listening on a fresh inproc:// name, offering `src` as "s".
static mcl_stream_server *
server_with(const mcl_stream_source *src, const mcl_stream_server_options *o, char *url,
            size_t ulen)
{
    mcl_stream_server *srv;
    MCLT_OK(mcl_stream_server_new(&srv, NULL, NULL, NULL, o));
    if (src != NULL)
        MCLT_OK(mcl_stream_server_offer(srv, "s", src));
    snprintf(url, ulen, "inproc://stream-test-%d-%d", (int)getpid(), ++url_seq);
    MCLT_OK(mcl_stream_server_listen(srv, url));
    return srv;
}

static mcl_stream *
open_s(const char *url, const mcl_stream_options *o)
{
    char loc[256];
    snprintf(loc, sizeof(loc), "%s/s", url);
    mcl_stream *s;
    MCLT_OK(mcl_stream_open(&s, loc, NULL, o));
    return s;
}

static void
read_all_bytes(mcl_stream *s, uint8_t *out, size_t n)
{
    size_t got;
    MCLT_OK(mcl_stream_read(s, out, n, &got, 10000));
    CU_ASSERT_EQUAL_FATAL(got, n);
}

static bool
no_streams(void *srv)
{
    return mcl_stream_server_streams(srv) == 0;
}

// --- tests ---------------------------------------------------------------------------------------

static void
test_read_bytes_to_the_end(void)
{
    size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *data = mclt_pattern(n, 1);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, data, n, false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream *s = open_s(url, NULL);
    CU_ASSERT_EQUAL(mcl_stream_kind_of(s), MCL_STREAM_BYTES);
    CU_ASSERT(mcl_stream_mode(s) & MCL_STREAM_READABLE);
    CU_ASSERT(!(mcl_stream_mode(s) & MCL_STREAM_WRITABLE));
    uint8_t *got = malloc(n + 10);
    size_t k;
    MCLT_OK(mcl_stream_read(s, got, n + 10, &k, 10000)); // fewer at the end: OK
    CU_ASSERT_EQUAL(k, n);
    CU_ASSERT(mclt_pattern_ok(got, n, 1));
    MCLT_ERR(mcl_stream_recv(s, got, 10, &k, 1000), MCL_EEOF);
    CU_ASSERT_EQUAL(k, 0);
    uint64_t pos, st, en;
    MCLT_OK(mcl_stream_tell(s, &pos, &st, &en, 1000));
    CU_ASSERT_EQUAL(pos, n);
    CU_ASSERT_EQUAL(st, 0);
    CU_ASSERT_EQUAL(en, n);
    // Not writable; not an entity stream.
    MCLT_ERR(mcl_stream_send(s, "x", 1, &k, 100), MCL_ENOTSUP);
    mcl_stream_elem e[1];
    MCLT_ERR(mcl_stream_recv_elems(s, e, 1, &k, 100), MCL_ENOTSUP);
    // The close handshake: the streamer closes its source.
    MCLT_OK(mcl_stream_close(s, 5000));
    CU_ASSERT(mclt_wait_until(no_streams, srv, 5000));
    mcl_stream_free(s);
    // A streamer serves one peer: the offer is taken.
    char loc[160];
    snprintf(loc, sizeof(loc), "%s/s", url);
    MCLT_ERR(mcl_stream_open(&s, loc, NULL, NULL), MCL_EALREADY);
    MCLT_ERR(mcl_stream_open(&s, url, "nothing", NULL), MCL_ENOENT);
    mcl_stream_server_free(srv);
    free(got);
    free(data);
}

// The reader holds at most its window plus one push, with read-ahead, whatever the data.
static void
test_readahead_is_bounded(void)
{
    size_t n = 8 * 1024 * 1024;
    uint8_t *data = mclt_pattern(n, 2);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, data, n, false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    // The window binds before the pushes do (8 x 16 KiB > 64 KiB).
    mcl_stream_options o = {.window = 64 * 1024, .max_push = 16 * 1024, .max_pushes = 8};
    mcl_stream *s = open_s(url, &o);
    uint8_t b[1];
    size_t k;
    MCLT_OK(mcl_stream_recv(s, b, 1, &k, 5000)); // starts the context
    // Wait until the streamer has filled the window, then check it stops there.
    mcl_stream_counters c;
    int64_t until = mclt_now_ms() + 5000;
    do
        MCLT_OK(mcl_stream_stats(s, &c));
    while (c.units_received < o.window && mclt_now_ms() < until);
    CU_ASSERT(c.units_received >= o.window);
    int64_t settle = mclt_now_ms() + 300; // a paused reader: nothing more comes in meanwhile
    while (mclt_now_ms() < settle)
        MCLT_OK(mcl_stream_stats(s, &c));
    CU_ASSERT(c.units_received <= 1 + o.window);
    CU_ASSERT(c.buffered_bytes <= o.window + o.max_push);
    CU_ASSERT(c.pushes_received <= 1 + (o.window + o.max_push - 1) / (o.max_push - 32) + 1);
    // And everything arrives when it reads on.
    uint8_t *got = malloc(n);
    got[0] = b[0];
    read_all_bytes(s, got + 1, n - 1);
    CU_ASSERT(mclt_pattern_ok(got, n, 2));
    MCLT_OK(mcl_stream_stats(s, &c));
    CU_ASSERT(c.limits_sent > 10); // credit went out as the reader went on
    CU_ASSERT(c.limits_sent < 2 * n / o.window + 10); // ... about every half window, not per recv
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    free(got);
    free(data);
}

// Without read-ahead, the streamer sends only what recv() asks for.
static void
test_without_readahead(void)
{
    uint8_t *data = mclt_pattern(100000, 3);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, data, 100000, false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.no_readahead = true};
    mcl_stream *s = open_s(url, &o);
    uint8_t got[100000];
    size_t k, have = 0;
    for (int i = 0; i < 20; i++) {
        MCLT_OK(mcl_stream_recv(s, got + have, 100, &k, 5000));
        CU_ASSERT(k >= 1 && k <= 100);
        have += k;
        mcl_stream_counters c;
        MCLT_OK(mcl_stream_stats(s, &c));
        CU_ASSERT(c.units_received <= (uint64_t)(i + 1) * 100); // never more than asked
    }
    read_all_bytes(s, got + have, sizeof(got) - have);
    CU_ASSERT(mclt_pattern_ok(got, sizeof(got), 3));
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    free(data);
}

// Byte i of the pattern "position": data[i] = f(i), so any stale byte shows.
static uint8_t
at(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static uint8_t *
positional(size_t n)
{
    uint8_t *d = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = at(i);
    return d;
}

static bool
from(const uint8_t *p, size_t n, uint64_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != at(pos + i))
            return false;
    return true;
}

static void
test_seeks(void)
{
    size_t n = 2 * 1024 * 1024;
    uint8_t *data = positional(n);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, data, n, false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.window = 64 * 1024, .max_push = 8192};
    mcl_stream *s = open_s(url, &o);
    uint8_t b[4096];
    size_t k;
    uint64_t pos;
    MCLT_OK(mcl_stream_recv(s, b, 10, &k, 5000));
    CU_ASSERT(from(b, k, 0));
    // Each seek: the next bytes are those at the new position, never read-ahead of the old.
    struct {
        mcl_stream_whence w;
        int64_t off;
        uint64_t want;
    } seeks[] = {
        {MCL_STREAM_ABS, 1000000, 1000000},
        {MCL_STREAM_FROM_START, 5, 5},
        {MCL_STREAM_FROM_END, -100, n - 100},
        {MCL_STREAM_ABS, 77777, 77777},
        {MCL_STREAM_FROM_HERE, 1000, 77777 + 100 + 1000},
        {MCL_STREAM_FROM_HERE, -500, 77777 + 100 + 1000 + 100 - 500},
    };
    for (size_t i = 0; i < sizeof(seeks) / sizeof(seeks[0]); i++) {
        MCLT_OK(mcl_stream_seek(s, seeks[i].w, seeks[i].off));
        MCLT_OK(mcl_stream_tell(s, &pos, NULL, NULL, 5000));
        CU_ASSERT_EQUAL(pos, seeks[i].want);
        size_t want = 100;
        MCLT_OK(mcl_stream_read(s, b, want, &k, 5000));
        CU_ASSERT_EQUAL(k, want);
        CU_ASSERT(from(b, k, seeks[i].want));
    }
    // At the end: EOF; a seek back reads again.
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_END, 0));
    MCLT_ERR(mcl_stream_recv(s, b, 10, &k, 5000), MCL_EEOF);
    // Outside the data: a context error at once, not a hang; then a good seek goes on.
    int64_t t0 = mclt_now_ms();
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, (int64_t)n + 1));
    MCLT_ERR(mcl_stream_recv(s, b, 10, &k, 5000), MCL_ERANGE);
    CU_ASSERT(mclt_now_ms() - t0 < 2000);
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_stream_error(s), "no such position"));
    MCLT_ERR(mcl_stream_tell(s, &pos, NULL, NULL, 1000), MCL_ERANGE);
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 42));
    MCLT_OK(mcl_stream_read(s, b, 50, &k, 5000));
    CU_ASSERT(from(b, 50, 42));
    // Many seeks while read-ahead is in flight: still never a stale byte.
    uint64_t rng = 7;
    for (int i = 0; i < 200; i++) {
        uint64_t p = mclt_rand(&rng) % (n - 4096);
        MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, (int64_t)p));
        if (i % 3 == 0) { // a second seek before anything of the first was read
            MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, (int64_t)(p + 1)));
            p++;
        }
        MCLT_OK(mcl_stream_recv(s, b, sizeof(b), &k, 5000));
        CU_ASSERT(k >= 1);
        CU_ASSERT_FATAL(from(b, k, p));
    }
    mcl_stream_counters c;
    MCLT_OK(mcl_stream_stats(s, &c));
    CU_ASSERT(c.contexts >= 200);
    MCLT_ERR(mcl_stream_seek(s, MCL_STREAM_AT_TIME, 5), MCL_ENOTSUP); // no SEEK_TIME
    MCLT_ERR(mcl_stream_seek(s, MCL_STREAM_ABS, -1), MCL_EINVAL);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    free(data);
}

static void
test_entities(void)
{
    enum { N = 5000 };
    mcl_stream_elem *e = calloc(N, sizeof(*e));
    char (*txt)[32] = calloc(N, 32);
    for (int i = 0; i < N; i++) {
        // One msgpack value each: a str of "element i".
        int l = snprintf(txt[i] + 1, 31, "element %d", i);
        txt[i][0] = (char)(0xa0 | l);
        e[i] = (mcl_stream_elem){txt[i], (size_t)l + 1};
    }
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_elems(&src, e, N, false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.window = 100, .max_push = 1024};
    mcl_stream *s = open_s(url, &o);
    CU_ASSERT_EQUAL(mcl_stream_kind_of(s), MCL_STREAM_ENTITIES);
    int next = 0;
    mcl_stream_elem out[64];
    size_t k;
    mcl_err rv;
    while ((rv = mcl_stream_recv_elems(s, out, 64, &k, 5000)) == MCL_OK) {
        for (size_t i = 0; i < k; i++, next++) {
            CU_ASSERT_EQUAL_FATAL(out[i].len, e[next].len);
            CU_ASSERT_FATAL(memcmp(out[i].data, e[next].data, out[i].len) == 0);
        }
    }
    CU_ASSERT_EQUAL(rv, MCL_EEOF);
    CU_ASSERT_EQUAL(next, N);
    // Seek by element.
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 4321));
    MCLT_OK(mcl_stream_recv_elems(s, out, 1, &k, 5000));
    CU_ASSERT(k == 1 && out[0].len == e[4321].len && memcmp(out[0].data, e[4321].data, k) == 0);
    uint8_t b[4];
    MCLT_ERR(mcl_stream_recv(s, b, 4, &k, 100), MCL_ENOTSUP);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    free(e);
    free(txt);
}

typedef struct counter_it {
    int n, limit;
    atomic_bool done;
} counter_it;

static mcl_err
it_next(void *user, mcl_stream_sink *k)
{
    counter_it *c = user;
    if (c->limit && c->n >= c->limit)
        return MCL_EEOF;
    uint8_t v[5] = {0xce, (uint8_t)(c->n >> 24), (uint8_t)(c->n >> 16), (uint8_t)(c->n >> 8),
                    (uint8_t)c->n}; // msgpack uint32
    c->n++;
    return mcl_stream_sink_put(k, v, sizeof(v));
}

static void
it_done(void *user)
{
    counter_it *c = user;
    atomic_store(&c->done, true);
}

static bool
it_is_done(void *user)
{
    return atomic_load(&((counter_it *)user)->done);
}

static void
test_iterator_source(void)
{
    counter_it c = {.limit = 0};
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_iterator(&src, it_next, it_done, &c));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.require_mode = MCL_STREAM_READABLE};
    mcl_stream *s = open_s(url, &o);
    CU_ASSERT(!(mcl_stream_mode(s) & (MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK)));
    MCLT_ERR(mcl_stream_seek(s, MCL_STREAM_ABS, 0), MCL_ENOTSUP);
    uint32_t want = 0;
    mcl_stream_elem out[256];
    size_t k;
    while (want < 20000) {
        MCLT_OK(mcl_stream_recv_elems(s, out, 256, &k, 5000));
        for (size_t i = 0; i < k; i++, want++) {
            const uint8_t *p = out[i].data;
            CU_ASSERT_FATAL(out[i].len == 5 && p[0] == 0xce);
            CU_ASSERT_FATAL(((uint32_t)p[1] << 24 | p[2] << 16 | p[3] << 8 | p[4]) == want);
        }
    }
    uint64_t st, en;
    MCLT_OK(mcl_stream_tell(s, NULL, &st, &en, 1000));
    CU_ASSERT_EQUAL(en, MCL_STREAM_NOEND); // unbounded
    MCLT_OK(mcl_stream_close(s, 5000));
    CU_ASSERT(mclt_wait_until(it_is_done, &c, 5000)); // the source was released
    mcl_stream_free(s);
    // A bounded iterator ends with EOF.
    counter_it c2 = {.limit = 1000};
    MCLT_OK(mcl_stream_source_iterator(&src, it_next, it_done, &c2));
    MCLT_OK(mcl_stream_server_offer(srv, "t", &src));
    MCLT_OK(mcl_stream_open(&s, url, "t", NULL));
    size_t total = 0;
    mcl_err rv;
    while ((rv = mcl_stream_recv_elems(s, out, 256, &k, 5000)) == MCL_OK)
        total += k;
    CU_ASSERT_EQUAL(rv, MCL_EEOF);
    CU_ASSERT_EQUAL(total, 1000);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
}

static void
test_handshake_refusals(void)
{
    uint8_t d[10] = {0};
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, d, sizeof(d), false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.require_mode = MCL_STREAM_WRITABLE};
    mcl_stream *s;
    char loc[160];
    snprintf(loc, sizeof(loc), "%s/s", url);
    MCLT_ERR(mcl_stream_open(&s, loc, NULL, &o), MCL_EPERM);
    CU_ASSERT_PTR_NULL(s);
    MCLT_ERR(mcl_stream_open(&s, "inproc://nobody-here-at-all/x", NULL, NULL), MCL_EUNREACH);
    MCLT_ERR(mcl_stream_open(&s, "inproc://noname", NULL, NULL), MCL_EURL);
    char u[64], n[64];
    MCLT_OK(mcl_stream_split_location("zmq+tcp://h:5700/drive", u, sizeof(u), n, sizeof(n)));
    CU_ASSERT_STRING_EQUAL(u, "zmq+tcp://h:5700");
    CU_ASSERT_STRING_EQUAL(n, "drive");
    MCLT_OK(mcl_stream_split_location("zmq+ipc:///tmp/a/sock/drive", u, sizeof(u), n, sizeof(n)));
    CU_ASSERT_STRING_EQUAL(u, "zmq+ipc:///tmp/a/sock");
    CU_ASSERT_STRING_EQUAL(n, "drive");
    MCLT_ERR(mcl_stream_split_location("zmq+tcp://h:5700/", u, sizeof(u), n, sizeof(n)), MCL_EURL);
    MCLT_ERR(mcl_stream_split_location("drive.mcllog", u, sizeof(u), n, sizeof(n)), MCL_EURL);
    mcl_stream_server_free(srv);
}

// A growing file is followed: reads at the end wait for more instead of ending.
static void
test_follow_a_growing_file(void)
{
    char path[] = "/tmp/mcl-stream-follow-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(write(fd, "hello ", 6) == 6);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_file(&src, path, false));
    char url[128];
    mcl_stream_server_options so = {.follow_ms = 10};
    mcl_stream_server *srv = server_with(&src, &so, url, sizeof(url));
    mcl_stream_options o = {.eos = MCL_STREAM_EOS_FOLLOW};
    mcl_stream *s = open_s(url, &o);
    char b[64];
    size_t k;
    MCLT_OK(mcl_stream_read(s, b, 6, &k, 5000));
    CU_ASSERT(k == 6 && memcmp(b, "hello ", 6) == 0);
    MCLT_ERR(mcl_stream_recv(s, b, sizeof(b), &k, 200), MCL_ETIMEDOUT); // waits, no EOF
    CU_ASSERT(write(fd, "world", 5) == 5);
    MCLT_OK(mcl_stream_read(s, b, 5, &k, 5000));
    CU_ASSERT(k == 5 && memcmp(b, "world", 5) == 0);
    // Switch to stop-at-the-end: a seek to here applies it.
    MCLT_OK(mcl_stream_set_eos(s, MCL_STREAM_EOS_STOP));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_HERE, 0));
    MCLT_ERR(mcl_stream_recv(s, b, sizeof(b), &k, 5000), MCL_EEOF);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    close(fd);
    unlink(path);
}

static void
test_write_read_back_truncate(void)
{
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, NULL, 0, true));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream_options o = {.window = 32 * 1024, .max_push = 4096};
    mcl_stream *s = open_s(url, &o);
    CU_ASSERT(mcl_stream_mode(s) & MCL_STREAM_WRITABLE);
    size_t n = 1000000;
    uint8_t *data = mclt_pattern(n, 9);
    MCLT_OK(mcl_stream_write(s, data, n, 10000));
    MCLT_OK(mcl_stream_flush(s, 5000));
    uint64_t pos, st, en;
    MCLT_OK(mcl_stream_tell(s, &pos, NULL, NULL, 1000));
    CU_ASSERT_EQUAL(pos, n);
    // Read it back from the start.
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_START, 0));
    uint8_t *got = malloc(n);
    read_all_bytes(s, got, n);
    CU_ASSERT(mclt_pattern_ok(got, n, 9));
    size_t k;
    MCLT_ERR(mcl_stream_recv(s, got, 1, &k, 2000), MCL_EEOF);
    // Overwrite in the middle, truncate after it: the data is what we made it.
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 10));
    MCLT_OK(mcl_stream_write(s, "XYZ", 3, 5000));
    MCLT_OK(mcl_stream_truncate(s, 5000));
    MCLT_OK(mcl_stream_tell(s, &pos, &st, &en, 1000));
    CU_ASSERT_EQUAL(pos, 13);
    CU_ASSERT_EQUAL(en, 13);
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_START, 0));
    uint8_t b[20];
    MCLT_OK(mcl_stream_read(s, b, sizeof(b), &k, 5000));
    CU_ASSERT_EQUAL(k, 13);
    CU_ASSERT(memcmp(b, data, 10) == 0 && memcmp(b + 10, "XYZ", 3) == 0);
    // After reading, a send writes where the reader is (not at the streamer's read-ahead).
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 2));
    MCLT_OK(mcl_stream_read(s, b, 3, &k, 5000));
    MCLT_OK(mcl_stream_write(s, "!!", 2, 5000));
    MCLT_OK(mcl_stream_flush(s, 5000));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_FROM_START, 0));
    MCLT_OK(mcl_stream_read(s, b, 13, &k, 5000));
    CU_ASSERT(memcmp(b, data, 5) == 0 && memcmp(b + 5, "!!", 2) == 0);
    // And a read after a write reads on where the writer stopped.
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 3));
    MCLT_OK(mcl_stream_write(s, "ab", 2, 5000));
    MCLT_OK(mcl_stream_read(s, b, 3, &k, 5000));
    CU_ASSERT(k == 3 && memcmp(b, "!!", 2) == 0 && b[2] == data[7]);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
    free(got);
    free(data);
}

static void
test_write_entities_and_a_file(void)
{
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_elems(&src, NULL, 0, true));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream *s = open_s(url, NULL);
    mcl_stream_elem e[300];
    uint8_t v[300][2];
    for (int i = 0; i < 300; i++) {
        v[i][0] = 0xcc; // msgpack uint8
        v[i][1] = (uint8_t)i;
        e[i] = (mcl_stream_elem){v[i], 2};
    }
    size_t done = 0, k;
    while (done < 300) {
        MCLT_OK(mcl_stream_send_elems(s, e + done, 300 - done, &k, 5000));
        CU_ASSERT(k >= 1);
        done += k;
    }
    MCLT_OK(mcl_stream_flush(s, 5000));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 250));
    mcl_stream_elem out[100];
    MCLT_OK(mcl_stream_recv_elems(s, out, 100, &k, 5000));
    CU_ASSERT(k >= 1 && out[0].len == 2 && ((const uint8_t *)out[0].data)[1] == 250);
    mcl_stream_elem empty = {v, 0};
    MCLT_ERR(mcl_stream_send_elems(s, &empty, 1, &k, 100), MCL_EINVAL);
    mcl_stream_free(s);
    // A file, written through the stream.
    char path[] = "/tmp/mcl-stream-file-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    MCLT_OK(mcl_stream_source_file(&src, path, true));
    MCLT_OK(mcl_stream_server_offer(srv, "f", &src));
    MCLT_OK(mcl_stream_open(&s, url, "f", NULL));
    uint8_t *data = mclt_pattern(300000, 4);
    MCLT_OK(mcl_stream_write(s, data, 300000, 5000));
    MCLT_OK(mcl_stream_flush(s, 5000));
    MCLT_OK(mcl_stream_close(s, 5000));
    mcl_stream_free(s);
    fd = open(path, O_RDONLY);
    uint8_t *back = malloc(300001);
    CU_ASSERT(read(fd, back, 300001) == 300000);
    CU_ASSERT(mclt_pattern_ok(back, 300000, 4));
    close(fd);
    unlink(path);
    mcl_stream_server_free(srv);
    free(back);
    free(data);
}

// 10 % of the credit messages of both sides dropped, duplicated or reordered: no stall,
// nothing lost or duplicated, no stale byte after a seek.
static void
test_credit_faults(void)
{
    for (uint64_t seed = 1; seed <= 4; seed++) {
        size_t n = 1024 * 1024;
        uint8_t *data = positional(n);
        mcl_stream_source src;
        MCLT_OK(mcl_stream_source_memory(&src, data, n, true));
        char url[128];
        mcl_stream_server_options so = {.heartbeat_ms = 20};
        mcl_stream_server *srv = server_with(&src, &so, url, sizeof(url));
        mcl__stream_faults f = {.drop = 10, .dup = 10, .reorder = 10, .seed = seed};
        mcl__stream_server_set_faults(srv, &f);
        mcl_stream_options o = {.window = 8192, .max_push = 1024, .max_pushes = 4,
                                .heartbeat_ms = 20};
        mcl_stream *s = open_s(url, &o);
        mcl__stream_set_faults(s, &f);
        uint8_t *got = malloc(n);
        int64_t t0 = mclt_now_ms();
        read_all_bytes(s, got, n);
        CU_ASSERT(from(got, n, 0));
        for (int i = 0; i < 30; i++) {
            uint64_t p = (uint64_t)(i * 33331) % (n - 2000);
            MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, (int64_t)p));
            size_t k;
            MCLT_OK(mcl_stream_read(s, got, 2000, &k, 5000));
            CU_ASSERT_EQUAL(k, 2000);
            CU_ASSERT_FATAL(from(got, k, p));
        }
        // Writes under faulty write credit.
        MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 0));
        uint8_t *w = mclt_pattern(200000, seed);
        MCLT_OK(mcl_stream_write(s, w, 200000, 10000));
        MCLT_OK(mcl_stream_flush(s, 10000));
        MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 0));
        read_all_bytes(s, got, 200000);
        CU_ASSERT(mclt_pattern_ok(got, 200000, seed));
        CU_ASSERT(from(got + 0, 0, 0));
        mcl_stream_counters c;
        MCLT_OK(mcl_stream_stats(s, &c));
        CU_ASSERT(c.limits_sent > 100);
        CU_ASSERT(mclt_now_ms() - t0 < 30000);
        mcl_stream_free(s);
        mcl_stream_server_free(srv);
        free(w);
        free(got);
        free(data);
    }
}

// --- a fake other side, for protocol violations ---------------------------------------------------

typedef struct fake {
    mcl_pstream *ps;
    mcl_reactor *r;
    uint32_t sid;
    int rx_types[64];
    int nrx;
    pthread_mutex_t lock;
    char fail_text[256];
} fake;

static void
fake_msg(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
         size_t len, void *user)
{
    (void)ps;
    (void)channel;
    (void)flags;
    fake *f = user;
    pthread_mutex_lock(&f->lock);
    if (f->nrx < 64)
        f->rx_types[f->nrx++] = (int)type;
    if ((type == MCL__SM_FAIL || type == MCL__SM_SFAIL) && len >= 12)
        snprintf(f->fail_text, sizeof(f->fail_text), "%.*s", (int)(len - 12),
                 (const char *)payload + 12);
    pthread_mutex_unlock(&f->lock);
}

static void
fake_open(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    fake *f = user;
    size_t len;
    const void *p = mcl_pstream_request_payload(rq, &len);
    mcl__sopen q;
    char why[128];
    CU_ASSERT_FATAL(mcl__sopen_decode_req(p, len, &q, why, sizeof(why)) == MCL_OK);
    f->sid = q.sid;
    mcl__sopen a = {.sid = q.sid, .kind = MCL_STREAM_BYTES, .mode = MCL_STREAM_READABLE | MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK,
                    .window = q.window, .max_pushes = 4, .max_push = 4096, .start = 0, .end = 100000};
    uint8_t ans[128];
    size_t an = mcl__sopen_encode_ans(&a, ans, sizeof(ans));
    (void)mcl_pstream_reply(rq, MCL_PSTREAM_OK, 0, ans, an, NULL);
}

static bool
fake_got_fail(void *user)
{
    fake *f = user;
    pthread_mutex_lock(&f->lock);
    bool yes = f->fail_text[0] != '\0';
    pthread_mutex_unlock(&f->lock);
    return yes;
}

static void
fake_pair(fake *f, mcl_pstream **mine, mcl_reactor **r)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    int sv[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    MCLT_OK(mcl_pstream_open_fd(&f->ps, sv[0], sv[0], NULL));
    MCLT_OK(mcl_pstream_open_fd(mine, sv[1], sv[1], NULL));
    MCLT_OK(mcl_pstream_handle_messages(f->ps, MCL_STREAM_CHANNEL, fake_msg, f));
    MCLT_OK(mcl_pstream_handle(f->ps, MCL_STREAM_CHANNEL, MCL__SM_OPEN, fake_open, f));
    MCLT_OK(mcl_pstream_start(f->ps));
    MCLT_OK(mcl_reactor_new(r, NULL));
    MCLT_OK(mcl_pstream_attach(*mine, *r));
    MCLT_OK(mcl_reactor_start(*r));
}

static void
fake_free(fake *f, mcl_pstream *mine, mcl_reactor *r)
{
    int a, b;
    CU_ASSERT(sscanf(mcl_pstream_url(f->ps), "fd:%d,%d", &a, &b) == 2);
    int c, d;
    CU_ASSERT(sscanf(mcl_pstream_url(mine), "fd:%d,%d", &c, &d) == 2);
    mcl_pstream_free(mine);
    mcl_reactor_free(r);
    mcl_pstream_free(f->ps);
    close(a);
    close(c);
}

static void
fake_send(fake *f, int type, const mcl__smsg *m, const void *data, size_t len)
{
    uint8_t hdr[64];
    size_t n = mcl__smsg_encode(m, hdr);
    uint8_t buf[8192];
    memcpy(buf, hdr, n);
    if (len)
        memcpy(buf + n, data, len);
    MCLT_OK(mcl_pstream_send(f->ps, MCL_STREAM_CHANNEL, (uint32_t)type, 0, buf, n + len));
}

// A fake streamer breaking the protocol: the peer fails the stream with a clear reason.
static void
test_peer_refuses_violations(void)
{
    struct {
        const char *says;
        int what;
    } cases[] = {
        {"beyond credit", 0}, {"never opened", 1}, {"push after end-of-stream", 2},
        {"expected push", 3}, {"a push of", 4},    {"malformed", 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake f;
        mcl_pstream *mine;
        mcl_reactor *r;
        fake_pair(&f, &mine, &r);
        mcl_stream *s;
        mcl_stream_options o = {.window = cases[i].what == 4 ? 100000 : 1000, .max_push = 4096};
        MCLT_OK(mcl_stream_open_over(&s, mine, r, "x", &o));
        MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 0));
        uint8_t b[8];
        size_t k;
        (void)mcl_stream_recv(s, b, 1, &k, 50); // starts context 1
        mcl__smsg pos = {.type = MCL__SM_POS, .sid = f.sid, .ctx = 1, .pos = 0, .end = 100000};
        fake_send(&f, MCL__SM_POS, &pos, NULL, 0);
        uint8_t data[4096] = {0};
        mcl__smsg p = {.type = MCL__SM_PUSH, .sid = f.sid, .ctx = 1, .pushno = 1, .nunits = 10};
        switch (cases[i].what) {
        case 0: p.nunits = 1001; fake_send(&f, MCL__SM_PUSH, &p, data, 1001); break;
        case 1: p.ctx = 9; fake_send(&f, MCL__SM_PUSH, &p, data, 10); break;
        case 2:
            p.flags = MCL__SW_EOS;
            fake_send(&f, MCL__SM_PUSH, &p, data, 10);
            p.flags = 0, p.pushno = 2, p.poff = 10;
            fake_send(&f, MCL__SM_PUSH, &p, data, 10);
            break;
        case 3: p.pushno = 2; fake_send(&f, MCL__SM_PUSH, &p, data, 10); break;
        case 4: { // within credit (window 100000), beyond the push size agreed (4096)
            static uint8_t big[5000];
            p.nunits = 5000;
            uint8_t hdr[64];
            size_t hn = mcl__smsg_encode(&p, hdr);
            static uint8_t pk[5100];
            memcpy(pk, hdr, hn);
            memcpy(pk + hn, big, 5000);
            MCLT_OK(mcl_pstream_send(f.ps, MCL_STREAM_CHANNEL, MCL__SM_PUSH, 0, pk, hn + 5000));
            break;
        }
        default: {
            uint8_t junk[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0}; // a push cut short
            junk[3] = (uint8_t)f.sid;
            MCLT_OK(mcl_pstream_send(f.ps, MCL_STREAM_CHANNEL, MCL__SM_PUSH, 0, junk, 9));
            break;
        }
        }
        {
            bool failed = mclt_wait_until(fake_got_fail, &f, 5000);
            if (!failed)
                fprintf(stderr, "\n  case %zu: no FAIL (stream: '%s')\n", i, mcl_stream_error(s));
            CU_ASSERT_FATAL(failed);
            MCLT_ERR(mcl_stream_recv(s, b, 1, &k, 1000), MCL_ECLOSED);
            if (strstr(mcl_stream_error(s), cases[i].says) == NULL)
                fprintf(stderr, "\n  case %zu: '%s' (expected '%s')\n", i, mcl_stream_error(s),
                        cases[i].says);
            CU_ASSERT_PTR_NOT_NULL(strstr(mcl_stream_error(s), cases[i].says));
        }
        mcl_stream_free(s);
        fake_free(&f, mine, r);
    }
}

// A fake peer breaking the protocol: the streamer fails the stream (SFAIL) and closes its
// source.
typedef struct fakepeer {
    pthread_mutex_t lock;
    char text[256];
    int pushes;
} fakepeer;

static void
fp_msg(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
       size_t len, void *user)
{
    (void)ps;
    (void)channel;
    (void)flags;
    fakepeer *f = user;
    pthread_mutex_lock(&f->lock);
    if (type == MCL__SM_PUSH)
        f->pushes++;
    if (type == MCL__SM_SFAIL && len >= 12)
        snprintf(f->text, sizeof(f->text), "%.*s", (int)(len - 12), (const char *)payload + 12);
    pthread_mutex_unlock(&f->lock);
}

static bool
fp_failed(void *user)
{
    fakepeer *f = user;
    pthread_mutex_lock(&f->lock);
    bool y = f->text[0] != '\0';
    pthread_mutex_unlock(&f->lock);
    return y;
}

static void
test_streamer_refuses_violations(void)
{
    struct {
        const char *says;
        int what;
    } cases[] = {{"decreases", 0}, {"never opened", 1}, {"opened after", 2},
                 {"beyond credit", 3}, {"malformed", 4}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t d[100000] = {0};
        mcl_stream_source src;
        MCLT_OK(mcl_stream_source_memory(&src, d, sizeof(d), true));
        mcl_stream_server *srv;
        MCLT_OK(mcl_stream_server_new(&srv, NULL, NULL, NULL, NULL));
        MCLT_OK(mcl_stream_server_offer(srv, "s", &src));
        int sv[2];
        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        mcl_pstream *theirs, *mine;
        MCLT_OK(mcl_pstream_open_fd(&theirs, sv[0], sv[0], NULL));
        MCLT_OK(mcl_pstream_open_fd(&mine, sv[1], sv[1], NULL));
        mcl_reactor *r;
        MCLT_OK(mcl_reactor_new(&r, NULL));
        MCLT_OK(mcl_pstream_attach(theirs, r));
        MCLT_OK(mcl_reactor_start(r));
        MCLT_OK(mcl_stream_serve(srv, theirs, r));
        fakepeer fp = {.lock = PTHREAD_MUTEX_INITIALIZER};
        MCLT_OK(mcl_pstream_handle_messages(mine, MCL_STREAM_CHANNEL, fp_msg, &fp));
        MCLT_OK(mcl_pstream_start(mine));
        mcl__sopen q = {.sid = 5, .window = 1000, .max_pushes = 4, .max_push = 4096,
                        .name = (const uint8_t *)"s", .namelen = 1};
        uint8_t req[128];
        size_t qn = mcl__sopen_encode_req(&q, req, sizeof(req));
        mcl_pstream_result *res;
        MCLT_OK(mcl_pstream_call(mine, MCL_STREAM_CHANNEL, MCL__SM_OPEN, 0, req, qn, 5000, &res));
        CU_ASSERT_EQUAL_FATAL(res->status, MCL_PSTREAM_OK);
        mcl_pstream_result_free(res);
        CU_ASSERT_EQUAL(mcl_stream_server_streams(srv), 1);
        uint8_t buf[256];
        mcl__smsg m = {.type = MCL__SM_READ, .sid = 5, .ctx = 1, .whence = MCL_STREAM_ABS,
                       .ulimit = 100, .plimit = 2};
        size_t n = mcl__smsg_encode(&m, buf);
        MCLT_OK(mcl_pstream_send(mine, MCL_STREAM_CHANNEL, MCL__SM_READ, 0, buf, n));
        switch (cases[i].what) {
        case 0:
            m = (mcl__smsg){.type = MCL__SM_LIMIT, .sid = 5, .ctx = 1, .lseq = 1, .ulimit = 50,
                            .plimit = 2};
            break;
        case 1:
            m = (mcl__smsg){.type = MCL__SM_LIMIT, .sid = 5, .ctx = 7, .lseq = 1, .ulimit = 500,
                            .plimit = 9};
            break;
        case 2:
            m = (mcl__smsg){.type = MCL__SM_READ, .sid = 5, .ctx = 1, .whence = MCL_STREAM_ABS};
            break;
        case 3: {
            m = (mcl__smsg){.type = MCL__SM_WRITE, .sid = 5, .ctx = 2, .whence = MCL_STREAM_ABS};
            n = mcl__smsg_encode(&m, buf);
            MCLT_OK(mcl_pstream_send(mine, MCL_STREAM_CHANNEL, MCL__SM_WRITE, 0, buf, n));
            static uint8_t big[2000];
            m = (mcl__smsg){.type = MCL__SM_WPUSH, .sid = 5, .ctx = 2, .pushno = 1,
                            .nunits = 1001};
            uint8_t pk[2100];
            n = mcl__smsg_encode(&m, pk);
            memcpy(pk + n, big, 1001);
            MCLT_OK(mcl_pstream_send(mine, MCL_STREAM_CHANNEL, MCL__SM_WPUSH, 0, pk, n + 1001));
            m.type = 0;
            break;
        }
        default: {
            uint8_t junk[9] = {0, 0, 0, 5, 0, 0, 0, 1, 0};
            MCLT_OK(mcl_pstream_send(mine, MCL_STREAM_CHANNEL, MCL__SM_LIMIT, 0, junk, 9));
            m.type = 0;
            break;
        }
        }
        if (m.type != 0) {
            n = mcl__smsg_encode(&m, buf);
            MCLT_OK(mcl_pstream_send(mine, MCL_STREAM_CHANNEL, (uint32_t)m.type, 0, buf, n));
        }
        CU_ASSERT_FATAL(mclt_wait_until(fp_failed, &fp, 5000));
        if (strstr(fp.text, cases[i].says) == NULL)
            fprintf(stderr, "\n  case %zu: '%s' (expected '%s')\n", i, fp.text, cases[i].says);
        CU_ASSERT_PTR_NOT_NULL(strstr(fp.text, cases[i].says));
        CU_ASSERT(mclt_wait_until(no_streams, srv, 5000)); // the source was closed
        pthread_mutex_lock(&fp.lock);
        CU_ASSERT(fp.pushes <= 2); // never beyond the credit (100 units, 2 pushes)
        pthread_mutex_unlock(&fp.lock);
        mcl_stream_server_free(srv);
        mcl_pstream_free(mine);
        mcl_pstream_free(theirs);
        mcl_reactor_free(r);
        close(sv[0]);
        close(sv[1]);
    }
}

typedef struct obs_log {
    atomic_uint events;
    atomic_int calls;
} obs_log;

static void
on_events(mcl_stream *s, unsigned ev, void *user)
{
    (void)s;
    obs_log *l = user;
    atomic_fetch_or(&l->events, ev);
    atomic_fetch_add(&l->calls, 1);
}

static bool
saw_read(void *user)
{
    return atomic_load(&((obs_log *)user)->events) & MCL_STREAM_CAN_READ;
}

static bool
saw_ctx_error(void *user)
{
    return atomic_load(&((obs_log *)user)->events) & MCL_STREAM_CTX_ERROR;
}

static bool
saw_failed(void *user)
{
    return atomic_load(&((obs_log *)user)->events) & MCL_STREAM_FAILED;
}

static void
test_observers_and_the_end(void)
{
    uint8_t d[1000];
    memset(d, 7, sizeof(d));
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, d, sizeof(d), false));
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream *s = open_s(url, NULL);
    obs_log l = {0};
    MCLT_OK(mcl_stream_observe(s, MCL_STREAM_CAN_READ | MCL_STREAM_CTX_ERROR | MCL_STREAM_FAILED,
                               on_events, &l));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 0)); // not reading yet: remembered
    uint64_t pos;
    MCLT_OK(mcl_stream_tell(s, &pos, NULL, NULL, 5000)); // starts the read context
    CU_ASSERT(mclt_wait_until(saw_read, &l, 5000));
    MCLT_OK(mcl_stream_seek(s, MCL_STREAM_ABS, 5000));
    CU_ASSERT(mclt_wait_until(saw_ctx_error, &l, 5000));
    // The server goes away: the reader hears it at once rather than at its timeout.
    mcl_stream_server_free(srv);
    CU_ASSERT(mclt_wait_until(saw_failed, &l, 5000));
    uint8_t b[4];
    size_t k;
    int64_t t0 = mclt_now_ms();
    MCLT_ERR(mcl_stream_recv(s, b, 4, &k, 8000), MCL_ECLOSED);
    CU_ASSERT(mclt_now_ms() - t0 < 2000);
    CU_ASSERT(mcl_stream_error(s)[0] != '\0');
    mcl_stream_free(s);
}

typedef struct names {
    int n;
    bool saw_a;
} names;

static void
on_name(void *user, const char *name, const char *info)
{
    names *ns = user;
    ns->n++;
    if (strcmp(name, "a") == 0 && strstr(info, "offered=1"))
        ns->saw_a = true;
}

static mcl_err
resolve_echo(void *user, const char *name, const char *params, mcl_stream_source *src)
{
    (void)user;
    if (strcmp(name, "params") != 0)
        return MCL_ENOENT;
    return mcl_stream_source_memory(src, params, strlen(params), false);
}

static void
list_two(void *user, void (*add)(void *ctx, const char *name, const char *info), void *ctx)
{
    (void)user;
    add(ctx, "params", "kind=bytes");
}

static void
test_resolver_params_and_list(void)
{
    mcl_stream_server *srv;
    MCLT_OK(mcl_stream_server_new(&srv, resolve_echo, list_two, NULL, NULL));
    uint8_t d[3] = {1, 2, 3};
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, d, 3, false));
    MCLT_OK(mcl_stream_server_offer(srv, "a", &src));
    MCLT_OK(mcl_stream_source_memory(&src, d, 3, false));
    MCLT_ERR(mcl_stream_server_offer(srv, "a", &src), MCL_EEXIST);
    char url[128];
    snprintf(url, sizeof(url), "inproc://stream-list-%d", (int)getpid());
    MCLT_OK(mcl_stream_server_listen(srv, url));
    names ns = {0};
    MCLT_OK(mcl_stream_list(url, on_name, &ns, 5000));
    CU_ASSERT_EQUAL(ns.n, 2);
    CU_ASSERT(ns.saw_a);
    mcl_stream_options o = {.params = "topic=imu/*&start=5"};
    mcl_stream *s;
    MCLT_OK(mcl_stream_open(&s, url, "params", &o));
    char b[64];
    size_t k;
    MCLT_OK(mcl_stream_read(s, b, sizeof(b), &k, 5000));
    CU_ASSERT(k == strlen(o.params) && memcmp(b, o.params, k) == 0);
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
}

// The same over zmq+tcp on loopback: a byte file read with seeks, and an entity stream, while
// another stream shares the connection's server.
static void
test_over_zmq_tcp(void)
{
#if MCL_HAVE_ZMQ
    size_t n = 4 * 1024 * 1024;
    uint8_t *data = positional(n);
    mcl_stream_source src;
    MCLT_OK(mcl_stream_source_memory(&src, data, n, false));
    mcl_stream_server *srv;
    MCLT_OK(mcl_stream_server_new(&srv, NULL, NULL, NULL, NULL));
    MCLT_OK(mcl_stream_server_offer(srv, "bytes", &src));
    counter_it c = {.limit = 100000};
    MCLT_OK(mcl_stream_source_iterator(&src, it_next, it_done, &c));
    MCLT_OK(mcl_stream_server_offer(srv, "count", &src));
    MCLT_OK(mcl_stream_server_listen(srv, "zmq+tcp://127.0.0.1:0"));
    const char *url = mcl_stream_server_url(srv);
    mcl_stream *a, *b;
    MCLT_OK(mcl_stream_open(&a, url, "bytes", NULL));
    MCLT_OK(mcl_stream_open(&b, url, "count", NULL));
    uint8_t *got = malloc(n);
    read_all_bytes(a, got, n);
    CU_ASSERT(from(got, n, 0));
    MCLT_OK(mcl_stream_seek(a, MCL_STREAM_FROM_END, -1000));
    size_t k;
    MCLT_OK(mcl_stream_read(a, got, 2000, &k, 5000));
    CU_ASSERT(k == 1000 && from(got, k, n - 1000));
    mcl_stream_elem out[512];
    size_t total = 0;
    mcl_err rv;
    while ((rv = mcl_stream_recv_elems(b, out, 512, &k, 5000)) == MCL_OK) {
        for (size_t i = 0; i < k; i++) {
            const uint8_t *p = out[i].data;
            CU_ASSERT_FATAL(((uint32_t)p[1] << 24 | p[2] << 16 | p[3] << 8 | p[4]) == total + i);
        }
        total += k;
    }
    CU_ASSERT_EQUAL(rv, MCL_EEOF);
    CU_ASSERT_EQUAL(total, 100000);
    CU_ASSERT_EQUAL(mcl_stream_server_streams(srv), 2);
    MCLT_OK(mcl_stream_close(a, 5000));
    MCLT_OK(mcl_stream_close(b, 5000));
    mcl_stream_free(a);
    mcl_stream_free(b);
    CU_ASSERT(mclt_wait_until(no_streams, srv, 5000));
    mcl_stream_server_free(srv);
    free(got);
    free(data);
#endif
}

// A source that says it has 100 bytes and reads none: a context error, never a false end.
static unsigned
liar_mode(void *self)
{
    (void)self;
    return MCL_STREAM_READABLE | MCL_STREAM_BOUNDED_END;
}
static void
liar_bounds(void *self, uint64_t *start, uint64_t *end)
{
    (void)self;
    *start = 0;
    *end = 100;
}
static mcl_err
liar_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    (void)self;
    (void)max;
    return pos < 10 ? mcl_stream_sink_put(k, "0123456789" + pos, 10 - pos) : MCL_OK;
}
static const mcl_stream_source_ops liar_ops = {
    .kind = MCL_STREAM_BYTES, .mode = liar_mode, .bounds = liar_bounds, .read = liar_read};

static void
test_no_false_end(void)
{
    mcl_stream_source src = {&liar_ops, NULL};
    char url[128];
    mcl_stream_server *srv = server_with(&src, NULL, url, sizeof(url));
    mcl_stream *s = open_s(url, NULL);
    char b[200];
    size_t k;
    MCLT_OK(mcl_stream_read(s, b, 10, &k, 5000));
    CU_ASSERT(k == 10 && memcmp(b, "0123456789", 10) == 0);
    MCLT_ERR(mcl_stream_recv(s, b, sizeof(b), &k, 5000), MCL_ESTATE);
    CU_ASSERT_PTR_NOT_NULL(strstr(mcl_stream_error(s), "read nothing at 10, before its end 100"));
    mcl_stream_free(s);
    mcl_stream_server_free(srv);
}

// Streams freed before their server, and servers freed under open streams, many times: no
// hang, no double free (the server's teardown meets bindings its reactor removes meanwhile).
static void
test_teardown_orders(void)
{
    for (int i = 0; i < 40; i++) {
        uint8_t *d = mclt_pattern(100000, (uint64_t)i);
        mcl_stream_source src;
        MCLT_OK(mcl_stream_source_memory(&src, d, 100000, false));
        char url[128];
        mcl_stream_server_options so = {.heartbeat_ms = 1 + i % 5};
        mcl_stream_server *srv = server_with(&src, &so, url, sizeof(url));
        mcl_stream *s = open_s(url, NULL);
        uint8_t b[1000];
        size_t k;
        MCLT_OK(mcl_stream_recv(s, b, sizeof(b), &k, 5000));
        if (i % 2 == 0) {
            mcl_stream_free(s);
            mcl_stream_server_free(srv);
        } else {
            mcl_stream_server_free(srv);
            mcl_stream_free(s);
        }
        free(d);
    }
}

static CU_TestInfo tests[] = {
    {"read_bytes_to_the_end", test_read_bytes_to_the_end},
    {"readahead_is_bounded", test_readahead_is_bounded},
    {"without_readahead", test_without_readahead},
    {"seeks", test_seeks},
    {"entities", test_entities},
    {"iterator_source", test_iterator_source},
    {"handshake_refusals", test_handshake_refusals},
    {"follow_a_growing_file", test_follow_a_growing_file},
    {"write_read_back_truncate", test_write_read_back_truncate},
    {"write_entities_and_a_file", test_write_entities_and_a_file},
    {"credit_faults", test_credit_faults},
    {"peer_refuses_violations", test_peer_refuses_violations},
    {"streamer_refuses_violations", test_streamer_refuses_violations},
    {"observers_and_the_end", test_observers_and_the_end},
    {"resolver_params_and_list", test_resolver_params_and_list},
    {"over_zmq_tcp", test_over_zmq_tcp},
    {"no_false_end", test_no_false_end},
    {"teardown_orders", test_teardown_orders},
    CU_TEST_INFO_NULL};
MCLT_SUITE("stream_core", NULL, NULL, tests);
