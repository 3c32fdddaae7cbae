// SPDX-License-Identifier: BSD-3-Clause
// Packet streams over plain stream sockets (tcp:// and unix://, lib/transport/sock): many
// peers, bursts that are coalesced into few writes and still arrive whole and in order, a
// lone message after a burst, refused dials, socket files (stale, live, foreign), a peer that
// goes away, and strangers' bytes on the socket.
#include "harness.h"

#include <mcl/connection.h>
#include <mcl/pstream.h>
#include <mcl/raw.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static char tmpdir[128];

static int
setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mcl-pssock-XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int
teardown(void)
{
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
echo(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    MCLT_OK(mcl_pstream_reply(rq, MCL_PSTREAM_OK, mcl_pstream_request_flags(rq), p, n, NULL));
}

// One-way messages: each carries its index; the receiver checks order and content.
typedef struct inbox {
    atomic_uint next; // the index expected next
    atomic_uint bad;
} inbox;

static void
on_msg(mcl_pstream *ps, uint32_t channel, uint32_t type, uint32_t flags, const void *payload,
       size_t len, void *user)
{
    (void)ps;
    (void)channel;
    (void)type;
    inbox *in = user;
    unsigned want = atomic_load(&in->next);
    if (flags != want || !mclt_pattern_ok(payload, len, flags) || len != (flags * 13u) % 3000u)
        atomic_fetch_add(&in->bad, 1);
    atomic_store(&in->next, want + 1);
}

static inbox server_inbox;
static char last_peer[128]; // of the connection accepted last

static void
accept_echo(mcl_pstream_server *s, mcl_pstream *ps, void *user)
{
    (void)s;
    (void)user;
    snprintf(last_peer, sizeof(last_peer), "%s", mcl_pstream_peer(ps));
    MCLT_OK(mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL));
    MCLT_OK(mcl_pstream_handle_messages(ps, 7, on_msg, &server_inbox));
}

typedef struct tally {
    atomic_int ok, bad;
} tally;

static void
check_answer(const mcl_pstream_result *r, void *user)
{
    tally *t = user;
    unsigned i = r->flags;
    size_t want = (i * 37u) % 8192u + (i % 50 == 0 ? 300000u : 0u);
    bool good = r->status == MCL_PSTREAM_OK && r->len == want &&
                mclt_pattern_ok(r->payload, r->len, i);
    atomic_fetch_add(good ? &t->ok : &t->bad, 1);
}

static bool
tally_reached(void *arg)
{
    void **a = arg;
    tally *t = a[0];
    return atomic_load(&t->ok) + atomic_load(&t->bad) >= *(int *)a[1];
}

// PEERS peers, each with EACH requests in flight at once (some of 300 KiB: many reads and
// writes each), every answer checked byte for byte.
static void
many_peers(const char *url)
{
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, url, NULL, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    const char *bound = mcl_pstream_server_url(srv);
    if (strncmp(url, "tcp://", 6) == 0)
        CU_ASSERT(strstr(bound, ":0") == NULL); // the port the kernel chose, in the URL
    enum { PEERS = 8, EACH = 200 };
    mcl_pstream *c[PEERS];
    tally t = {0};
    for (int p = 0; p < PEERS; p++) {
        MCLT_OK(mcl_pstream_dial(&c[p], bound, NULL));
        MCLT_OK(mcl_pstream_start(c[p]));
    }
    for (unsigned i = 0; i < EACH; i++)
        for (int p = 0; p < PEERS; p++) {
            size_t n = (i * 37u) % 8192u + (i % 50 == 0 ? 300000u : 0u);
            uint8_t *b = mclt_pattern(n, i);
            MCLT_OK(mcl_pstream_submit(c[p], (uint32_t)p % 3, 1, i, b, n, 20000, check_answer,
                                       &t, NULL));
            free(b);
        }
    int want = PEERS * EACH;
    void *arg[2] = {&t, &want};
    CU_ASSERT(mclt_wait_until(tally_reached, arg, 30000));
    // The server knows who its peers are: an address and port, or a process and user.
    char me[64];
    if (strncmp(url, "tcp://", 6) == 0)
        snprintf(me, sizeof(me), "tcp://127.0.0.1:");
    else
        snprintf(me, sizeof(me), "unix:pid=%d,uid=%u", (int)getpid(), (unsigned)getuid());
    CU_ASSERT(strncmp(last_peer, me, strlen(me)) == 0);
    if (strncmp(url, "tcp://", 6) == 0) {
        CU_ASSERT_STRING_EQUAL(mcl_pstream_peer(c[0]), bound);
    } else {
        CU_ASSERT(strncmp(mcl_pstream_peer(c[0]), me, strlen(me)) == 0);
    }
    CU_ASSERT_EQUAL(atomic_load(&t.ok), want);
    CU_ASSERT_EQUAL(atomic_load(&t.bad), 0);
    CU_ASSERT_EQUAL(mcl_pstream_server_connections(srv), PEERS);
    for (int p = 0; p < PEERS; p++) {
        MCLT_OK(mcl_pstream_close(c[p], 5000));
        CU_ASSERT_STRING_EQUAL(mcl_pstream_end_reason(c[p]), "");
        mcl_pstream_free(c[p]);
    }
    mcl_pstream_server_free(srv, 2000);
}

static void
test_many_peers_tcp(void)
{
    many_peers("tcp://127.0.0.1:0");
}

static void
test_many_peers_unix(void)
{
    char url[256];
    snprintf(url, sizeof(url), "unix://%s/ps.sock", tmpdir);
    many_peers(url);
}

static bool
inbox_reached(void *arg)
{
    void **a = arg;
    inbox *in = a[0];
    return atomic_load(&in->next) >= *(unsigned *)a[1];
}

static bool
queue_below_half(void *arg)
{
    mcl_pstream_counters st;
    return mcl_pstream_stats(arg, &st) != MCL_OK || st.send_queued < 512 * 1024;
}

// A burst of one-way messages far faster than one write each (they are coalesced): all
// arrive, whole and in order; then one lone message arrives without any other traffic to
// push it out, under each driver (its own thread, and the caller's dispatch).
static void
burst_then_lone(bool threaded)
{
    memset(&server_inbox, 0, sizeof(server_inbox));
    // No pings (nothing else on the wire to push out what waits) and so no idle limit: the
    // peer says nothing back to one-way messages.
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "tcp://127.0.0.1:0", &o, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, mcl_pstream_server_url(srv), &o));
    if (threaded)
        MCLT_OK(mcl_pstream_start(c));
    enum { N = 10000 };
    unsigned i = 0;
    int64_t end = mclt_now_ms() + 20000;
    while (i < N && mclt_now_ms() < end) {
        size_t n = (i * 13u) % 3000u;
        uint8_t *b = mclt_pattern(n, i);
        mcl_err rv = mcl_pstream_send(c, 7, 1, i, b, n);
        free(b);
        if (rv == MCL_EAGAIN) { // the send queue is full: let it drain
            if (!threaded)
                (void)mcl_pstream_dispatch(c);
            else
                (void)mclt_wait_until(queue_below_half, c, 1000);
            continue;
        }
        MCLT_OK(rv);
        i++;
    }
    CU_ASSERT_EQUAL(i, N);
    unsigned want = N;
    void *arg[2] = {&server_inbox, &want};
    // (the caller's driver: what waits for a writable socket goes when it dispatches)
    for (int k = 0; !threaded && k < 2000 && !inbox_reached(arg); k++) {
        (void)mcl_pstream_dispatch(c);
        (void)mclt_wait_until(inbox_reached, arg, 5);
    }
    CU_ASSERT(mclt_wait_until(inbox_reached, arg, 20000));
    CU_ASSERT_EQUAL(atomic_load(&server_inbox.bad), 0);
    // Three quick sends, then nothing: all arrive with no dispatch and no other traffic.
    uint8_t *b3[3];
    size_t n3[3];
    for (unsigned k = 0; k < 3; k++) {
        n3[k] = ((N + k) * 13u) % 3000u;
        b3[k] = mclt_pattern(n3[k], N + k);
    }
    for (unsigned k = 0; k < 3; k++)
        MCLT_OK(mcl_pstream_send(c, 7, 1, N + k, b3[k], n3[k]));
    for (unsigned k = 0; k < 3; k++)
        free(b3[k]);
    want = N + 3;
    CU_ASSERT(mclt_wait_until(inbox_reached, arg, 5000));
    CU_ASSERT_EQUAL(atomic_load(&server_inbox.bad), 0);
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 2000);
}

static void
test_burst_then_lone_threaded(void)
{
    burst_then_lone(true);
}

static void
test_burst_then_lone_dispatched(void)
{
    burst_then_lone(false);
}

// A dial to a port nobody listens on fails at once (no silent wait), and says so.
static void
test_refused(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CU_ASSERT_FATAL(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    close(fd); // a port that was free a moment ago: nobody listens there
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    mcl_pstream *c = NULL;
    int64_t t0 = mclt_now_ms();
    MCLT_ERR(mcl_pstream_dial(&c, url, NULL), MCL_ECLOSED);
    CU_ASSERT(mclt_now_ms() - t0 < 2000);
    CU_ASSERT_PTR_NULL(c);
    char path[256];
    snprintf(path, sizeof(path), "unix://%s/nobody.sock", tmpdir);
    MCLT_ERR(mcl_pstream_dial(&c, path, NULL), MCL_ECLOSED);
    // Wildcards and port 0 can be listened on, not dialled.
    MCLT_ERR(mcl_pstream_dial(&c, "tcp://*:5800", NULL), MCL_EURL);
    MCLT_ERR(mcl_pstream_dial(&c, "tcp://127.0.0.1:0", NULL), MCL_EURL);
}

// One call: whether the answer is `want`.
static bool
call_is(mcl_pstream *c, const char *want)
{
    mcl_pstream_result *r = NULL;
    bool ok = mcl_pstream_call(c, 0, 1, 0, want, strlen(want), 5000, &r) == MCL_OK &&
              r->status == MCL_PSTREAM_OK && r->len == strlen(want) &&
              memcmp(r->payload, want, r->len) == 0;
    mcl_pstream_result_free(r);
    return ok;
}

static bool
path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

// Socket files: a stale one (its server gone without removing it) is replaced; a live one
// is not taken over; a file that is not a socket is left alone; close removes the server's
// own file.
static void
test_unix_files(void)
{
    char path[200], url[256];
    snprintf(path, sizeof(path), "%s/stale.sock", tmpdir);
    snprintf(url, sizeof(url), "unix://%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CU_ASSERT_FATAL(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(fd); // the file stays, nobody listens: stale
    mcl_pstream_server *a, *b = NULL;
    MCLT_OK(mcl_pstream_server_open(&a, url, NULL, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(a));
    MCLT_ERR(mcl_pstream_server_open(&b, url, NULL, accept_echo, NULL), MCL_EADDRINUSE);
    CU_ASSERT_PTR_NULL(b);
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, url, NULL));
    CU_ASSERT(call_is(c, "ping"));
    mcl_pstream_free(c);
    CU_ASSERT(path_exists(path)); // the live server's file survived the refused second one
    mcl_pstream_server_free(a, 1000);
    CU_ASSERT(!path_exists(path));
    // A regular file is no socket of ours: refused, and left as it was.
    snprintf(path, sizeof(path), "%s/plain", tmpdir);
    snprintf(url, sizeof(url), "unix://%s", path);
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("data", f);
    fclose(f);
    MCLT_ERR(mcl_pstream_server_open(&b, url, NULL, accept_echo, NULL), MCL_EADDRINUSE);
    struct stat sb;
    CU_ASSERT(stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 4);
}

static bool
ended(void *arg)
{
    return !mcl_pstream_is_open(arg);
}

// The server goes away: the peer sees its connection end (no heartbeat needed).
static void
test_server_gone(void)
{
    mcl_pstream_options o = {.ping_ms = -1, .idle_ms = -1};
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "tcp://127.0.0.1:0", &o, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, mcl_pstream_server_url(srv), &o));
    MCLT_OK(mcl_pstream_start(c));
    CU_ASSERT(call_is(c, "x"));
    mcl_pstream_server_free(srv, 0);
    CU_ASSERT(mclt_wait_until(ended, c, 5000));
    mcl_pstream_free(c);
}

// Strangers' bytes: a length prefix announcing 4 GiB, and a connection that sends half a
// packet and leaves. Each costs that connection only; the server serves the next peer.
static void
test_garbage(void)
{
    mcl_pstream_server *srv;
    MCLT_OK(mcl_pstream_server_open(&srv, "tcp://127.0.0.1:0", NULL, accept_echo, NULL));
    MCLT_OK(mcl_pstream_server_start(srv));
    mcl_connection *conn = mclt_parse(mcl_pstream_server_url(srv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(mcl_connection_port(conn)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    mcl_connection_free(conn);
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xf0, 1, 2, 3};
    static const uint8_t half[] = {0, 0, 0, 100, 1, 2, 3};
    const uint8_t *bad[] = {huge, half};
    for (int k = 0; k < 2; k++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        CU_ASSERT(write(fd, bad[k], 7) == 7);
        if (k == 0) { // the server closes on the impossible length (after what it said)
            char x[256];
            struct timeval tv = {5, 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            ssize_t r;
            size_t total = 0;
            while ((r = read(fd, x, sizeof(x))) > 0 && total < 65536)
                total += (size_t)r;
            CU_ASSERT_EQUAL(r, 0); // its end, not the 5 s timeout
        }
        close(fd);
    }
    mcl_pstream *c;
    MCLT_OK(mcl_pstream_dial(&c, mcl_pstream_server_url(srv), NULL));
    CU_ASSERT(call_is(c, "ok"));
    mcl_pstream_free(c);
    mcl_pstream_server_free(srv, 1000);
}

// URLs: what parses, its canonical form, and what is refused with a reason.
static void
test_urls(void)
{
    struct {
        const char *url, *canon;
    } good[] = {
        {"tcp://127.0.0.1:5800", "tcp://127.0.0.1:5800"},
        {"tcp://*:5800", "tcp://*:5800"},
        {"tcp://[::1]:5800", "tcp://[::1]:5800"},
        {"tcp://localhost:*?timeout=250", "tcp://localhost:0?timeout=250"},
        {"unix:///run/mcl/broker.sock?maxmsg=1M", "unix:///run/mcl/broker.sock?maxmsg=1M"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        mcl_connection *c = mclt_parse(good[i].url);
        CU_ASSERT_STRING_EQUAL(mcl_connection_url(c), good[i].canon);
        mcl_connection_free(c);
    }
    const char *bad[] = {"tcp://127.0.0.1", "tcp://host:99999", "tcp://[::1", "unix://",
                         "tcp://h:1?ttl=0", "tcp://h:1?timeout=0", "tcp://h:1?hwm=5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mcl_connection *c = NULL;
        char err[256] = "";
        CU_ASSERT_EQUAL(mcl_connection_parse(&c, bad[i], err, sizeof(err)), MCL_EURL);
        CU_ASSERT(err[0] != '\0');
        CU_ASSERT_PTR_NULL(c);
    }
    // Packet streams only: a broadcaster there is refused, not half made.
    mcl_connection *c = mclt_parse("tcp://127.0.0.1:5800");
    mcl_raw_broadcaster *b = NULL;
    CU_ASSERT_NOT_EQUAL(mcl_raw_broadcaster_open(&b, c, "t"), MCL_OK);
    CU_ASSERT_PTR_NULL(b);
    mcl_connection_free(c);
}

static CU_TestInfo tests[] = {
    {"many_peers_tcp", test_many_peers_tcp},
    {"many_peers_unix", test_many_peers_unix},
    {"burst_then_lone_threaded", test_burst_then_lone_threaded},
    {"burst_then_lone_dispatched", test_burst_then_lone_dispatched},
    {"refused", test_refused},
    {"unix_files", test_unix_files},
    {"server_gone", test_server_gone},
    {"garbage", test_garbage},
    {"urls", test_urls},
    CU_TEST_INFO_NULL,
};

MCLT_SUITE("pstream_sock", setup, teardown, tests);
