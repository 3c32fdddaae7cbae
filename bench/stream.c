// SPDX-License-Identifier: BSD-3-Clause
// Streams (include/mcl/stream.h) against their raw peers, one case per run (scripts/bench.sh
// runs them side by side, `ONLY=stream`, and prints the tables): a byte stream read in
// CHUNK-byte pieces, an entity stream of SIZE-byte elements, and a reader that pauses while
// both sides' memory is watched.
//
//   mcl-bench-stream bytes tcp|dealer|mcl|mcl-mem CHUNK MB SECONDS [WINDOW MAX_PUSH PUSHES HWM]
//   mcl-bench-stream elems dealer|push|mcl|mcl-ops SIZE N SECONDS [BATCH WINDOW MAX_PUSH
//                    PUSHES HWM]
//   mcl-bench-stream paused MB PAUSE_MS
//   mcl-bench-stream mklog PATH MB SIZE
//
// bytes: MB megabytes (10^6) one way, or what SECONDS allow, counted by the receiver from its
//   first read on (MB/s: 10^6 bytes/s). Sizes take K and M suffixes (KiB, MiB).
//   tcp: a sender thread write()s CHUNK-byte blocks, a receiver thread read()s them into a
//   CHUNK-byte buffer, one tcp connection on 127.0.0.1.
//   dealer: raw libzmq, a DEALER sender thread zmq_send()s CHUNK-byte messages to a ROUTER that
//   zmq_msg_recv()s them (no copy out); one context (one I/O thread, as mcl's); SNDHWM = RCVHWM
//   = HWM messages (default 64: 4 MiB of 64 KiB, the stream's default read-ahead).
//   mcl: a stream server (mcl_stream_server_listen on zmq+tcp://127.0.0.1:0, its own reactor
//   thread) whose source is mcl_stream_source_ops of ours that synthesise the data in
//   CHUNK-byte runs (the run that reaches the end of a push is halved until it fits, so pushes
//   are full); mcl-mem: mcl_stream_source_memory() of MB bytes (at most 1024). The reader
//   mcl_stream_open()s "URL/bytes" (its own connection and reactor thread) and calls
//   mcl_stream_recv() with a CHUNK-byte buffer. WINDOW, MAX_PUSH, PUSHES: mcl_stream_options'
//   window, max_push and max_pushes (0: the library's defaults, 4 MiB, 256 KiB, 16; the
//   server's clamps are raised to whatever is asked).
// elems: N elements (or what SECONDS allow), each one msgpack bin of SIZE bytes in all.
//   dealer / push: raw libzmq DEALER -> ROUTER / PUSH -> PULL of SIZE-byte messages, HWM
//   (default 4096, the stream's default read-ahead of elements) on both ends. mcl: a
//   mcl_stream_source_iterator() whose next() puts one element; mcl-ops: source ops of ours
//   that put elements until the push is full. The reader calls mcl_stream_recv_elems() with
//   BATCH (default 256) and checks each element's length.
// paused: three processes (forked before any thread): a stream server; a reader that opens a
//   synthesised MB-megabyte byte stream with the default options, reads one 64 KiB chunk,
//   then sleeps PAUSE_MS, sampling its VmRSS and mcl_stream_stats() every 500 ms, and the
//   server's VmRSS and CPU time; halfway through the pause a third process opens a second
//   stream on the same server and reads PROBE_MB from it (the streamer is not held up by the
//   paused reader). Then the reader reads on for at most RESUME_S, checking every byte.
// mklog: a log of MB megabytes of records with SIZE-byte payloads on four topics, 1 ms apart,
//   for the remote-against-local reading of a recording (scripts/bench.sh times mcl-dump -f on
//   the file and on mcl-log --serve's stream of it).
// Output: one line of key=value pairs (bytes and elems: the process's minor page faults while
// it received, minflt, and malloc=tuned when GLIBC_TUNABLES is set); exit status 1 on a failure.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/mcl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef MCL_BENCH_ZMQ
#include <zmq.h>
#endif

enum {
    RECV_TIMEOUT_MS = 5000, // a blocking receive that waits longer than this fails the run
    PROBE_MB = 256,
    MEM_MAX_MB = 1024,
    RESUME_S = 5,
};
// The library's documented defaults (include/mcl/stream.h), for the paused reader's bound.
#define DEF_WINDOW_BYTES ((uint64_t)4 << 20)
#define DEF_MAX_PUSH ((uint64_t)256 << 10)

static uint64_t
parse_size(const char *s)
{
    char *end;
    uint64_t v = strtoull(s, &end, 10);
    if (*end == 'K' || *end == 'k')
        v <<= 10;
    else if (*end == 'M' || *end == 'm')
        v <<= 20;
    return v;
}

// Minor page faults of the process so far (every thread).
static long
minflt(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

// What a receiver counted: units after its first read, the time they took, and the page
// faults of the process in between (tally_end() after the last read).
typedef struct tally {
    uint64_t units, first;
    uint64_t t0, t1;
    long f0, f1;
} tally;

static void
tally_add(tally *t, uint64_t n)
{
    uint64_t now = now_ns();
    if (t->t0 == 0) {
        t->t0 = now;
        t->first = n;
        t->f0 = minflt();
    }
    t->units += n;
    t->t1 = now;
}

static void
tally_end(tally *t)
{
    t->f1 = t->t0 != 0 ? minflt() : 0;
}

static double
tally_rate(const tally *t)
{
    if (t->t1 <= t->t0)
        return 0;
    return (double)(t->units - t->first) * 1e9 / (double)(t->t1 - t->t0);
}

// "tuned" when glibc's malloc was given tunables (GLIBC_TUNABLES; bench.sh's diagnostic rows
// keep freed memory instead of trimming it), else "default".
static const char *
malloc_label(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    return t != NULL && t[0] != '\0' ? "tuned" : "default";
}

// --- synthesised data ----------------------------------------------------------------------------

// The byte at position p of every synthesised byte stream: pat[p % PAT_LEN].
enum { PAT_LEN = 1 << 16 };
static uint8_t pat[PAT_LEN];

static void
pat_init(void)
{
    for (size_t i = 0; i < PAT_LEN; i++)
        pat[i] = (uint8_t)(i * 7 + (i >> 8));
}

// Bytes [0, end) in runs of at most chunk bytes (a run never crosses a PAT_LEN boundary).
typedef struct synth {
    uint64_t end;
    size_t chunk;
} synth;

static unsigned
synth_mode(void *self)
{
    (void)self;
    return MCL_STREAM_READABLE | MCL_STREAM_BOUNDED_START | MCL_STREAM_BOUNDED_END;
}

static void
synth_bounds(void *self, uint64_t *start, uint64_t *end)
{
    *start = 0;
    *end = ((synth *)self)->end;
}

static mcl_err
synth_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    synth *y = self;
    if (pos > y->end)
        return MCL_ERANGE;
    // Bounded by the credit (max) and by the push: the sink refuses a run that does not fit
    // (MCL_EMSGSIZE) and does not say how much would, so the run that reaches the end of the
    // push is halved until it fits. (A byte source that put nothing would end the stream:
    // an empty read is the end.)
    while (pos < y->end && max > 0) {
        size_t off = (size_t)(pos % PAT_LEN), n = y->chunk;
        if (n > PAT_LEN - off)
            n = PAT_LEN - off;
        if (n > y->end - pos)
            n = (size_t)(y->end - pos);
        if (n > max)
            n = (size_t)max;
        mcl_err rv;
        while ((rv = mcl_stream_sink_put(k, pat + off, n)) == MCL_EMSGSIZE && n > 1)
            n /= 2;
        if (rv == MCL_EMSGSIZE)
            break; // the push is full
        if (rv != MCL_OK)
            return rv;
        pos += n;
        max -= n;
    }
    return MCL_OK;
}

static void
synth_close(void *self)
{
    free(self);
}

static const mcl_stream_source_ops synth_ops = {
    .kind = MCL_STREAM_BYTES,
    .mode = synth_mode,
    .bounds = synth_bounds,
    .read = synth_read,
    .close = synth_close,
};

// Elements: each a msgpack bin 16 of size bytes in all (3 of header).
typedef struct elemsrc {
    uint64_t n, pos;
    size_t size;
    uint8_t *elem;
} elemsrc;

static uint8_t *
elem_make(size_t size)
{
    if (size < 4 || size > 65535 + 3)
        die("element size: 4 .. 65538");
    uint8_t *e = malloc(size);
    if (e == NULL)
        die("out of memory");
    e[0] = 0xc5;
    e[1] = (uint8_t)((size - 3) >> 8);
    e[2] = (uint8_t)(size - 3);
    for (size_t i = 3; i < size; i++)
        e[i] = (uint8_t)i;
    return e;
}

static unsigned
elems_mode(void *self)
{
    (void)self;
    return MCL_STREAM_READABLE | MCL_STREAM_BOUNDED_START | MCL_STREAM_BOUNDED_END;
}

static void
elems_bounds(void *self, uint64_t *start, uint64_t *end)
{
    *start = 0;
    *end = ((elemsrc *)self)->n;
}

static mcl_err
elems_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    elemsrc *x = self;
    if (pos > x->n)
        return MCL_ERANGE;
    for (uint64_t i = 0; i < max && pos + i < x->n; i++) {
        mcl_err rv = mcl_stream_sink_put(k, x->elem, x->size);
        if (rv == MCL_EMSGSIZE)
            break;
        if (rv != MCL_OK)
            return rv;
    }
    return MCL_OK;
}

static void
elems_close(void *self)
{
    elemsrc *x = self;
    free(x->elem);
    free(x);
}

static const mcl_stream_source_ops elems_ops = {
    .kind = MCL_STREAM_ENTITIES,
    .mode = elems_mode,
    .bounds = elems_bounds,
    .read = elems_read,
    .close = elems_close,
};

// The iterator's next(): one element per call, MCL_EEOF after n.
static mcl_err
iter_next(void *user, mcl_stream_sink *k)
{
    elemsrc *x = user;
    if (x->pos >= x->n)
        return MCL_EEOF;
    x->pos++;
    return mcl_stream_sink_put(k, x->elem, x->size);
}

static void
iter_done(void *user)
{
    elems_close(user);
}

// --- the mcl server ------------------------------------------------------------------------------

typedef struct srvcfg {
    uint64_t bytes; // "bytes" and "probe": synthesised; "mem": a memory source of this many
    uint64_t probe_bytes;
    size_t chunk;
    uint64_t nelems;
    size_t esize;
} srvcfg;

static mcl_err
resolve(void *user, const char *name, const char *params, mcl_stream_source *src)
{
    (void)params;
    srvcfg *c = user;
    if (strcmp(name, "bytes") == 0 || strcmp(name, "probe") == 0) {
        synth *y = calloc(1, sizeof(*y));
        if (y == NULL)
            return MCL_ENOMEM;
        y->end = name[0] == 'b' ? c->bytes : c->probe_bytes;
        y->chunk = c->chunk;
        src->ops = &synth_ops;
        src->self = y;
        return MCL_OK;
    }
    if (strcmp(name, "mem") == 0) {
        uint8_t *d = malloc(c->bytes);
        if (d == NULL)
            return MCL_ENOMEM;
        for (uint64_t p = 0; p < c->bytes; p += PAT_LEN)
            memcpy(d + p, pat, c->bytes - p < PAT_LEN ? (size_t)(c->bytes - p) : PAT_LEN);
        mcl_err rv = mcl_stream_source_memory(src, d, c->bytes, false); // (a copy)
        free(d);
        return rv;
    }
    if (strcmp(name, "elems") == 0 || strcmp(name, "iter") == 0) {
        elemsrc *x = calloc(1, sizeof(*x));
        if (x == NULL)
            return MCL_ENOMEM;
        x->n = c->nelems;
        x->size = c->esize;
        x->elem = elem_make(c->esize);
        if (name[0] == 'i')
            return mcl_stream_source_iterator(src, iter_next, iter_done, x);
        src->ops = &elems_ops;
        src->self = x;
        return MCL_OK;
    }
    return MCL_ENOENT;
}

static mcl_stream_server *
server_start(srvcfg *c, const mcl_stream_options *o)
{
    // The clamps are raised to what the peer asks for, so that the peer's options decide.
    mcl_stream_server_options so = {0};
    if (o != NULL) {
        so.max_window = o->window > (16u << 20) ? o->window : 0;
        so.max_push = o->max_push > (1u << 20) ? o->max_push : 0;
        so.max_pushes = o->max_pushes > 64 ? o->max_pushes : 0;
    }
    mcl_stream_server *srv;
    if (mcl_stream_server_new(&srv, resolve, NULL, c, &so) != MCL_OK)
        die("mcl_stream_server_new");
    mcl_err rv = mcl_stream_server_listen(srv, "zmq+tcp://127.0.0.1:0");
    if (rv != MCL_OK) {
        fprintf(stderr, "mcl-bench-stream: listen: %s\n", mcl_strerror(rv));
        exit(1);
    }
    return srv;
}

static mcl_stream *
stream_open(mcl_stream_server *srv, const char *url, const char *name, const mcl_stream_options *o)
{
    char loc[512];
    snprintf(loc, sizeof(loc), "%s/%s", srv != NULL ? mcl_stream_server_url(srv) : url, name);
    mcl_stream *s;
    mcl_err rv = mcl_stream_open(&s, loc, NULL, o);
    if (rv != MCL_OK) {
        fprintf(stderr, "mcl-bench-stream: open %s: %s\n", loc, mcl_strerror(rv));
        exit(1);
    }
    return s;
}

// Closes the stream, frees the server while the stream's connection is still up, then the
// stream. (The other order races: mcl_stream_server_free() picks a binding under the server's
// lock and removes it on the reactor's thread, where the binding's heartbeat may have removed
// it already because the connection ended; that hangs or corrupts the heap, 1 run in ~10.)
static void
teardown(mcl_stream *s, mcl_stream_server *srv)
{
    (void)mcl_stream_close(s, 2000);
    mcl_stream_server_free(srv);
    mcl_stream_free(s);
}

// --- bytes ---------------------------------------------------------------------------------------

static void
bytes_mcl(bool mem, size_t chunk, uint64_t total, uint64_t deadline, const mcl_stream_options *o,
          tally *t, mcl_stream_counters *c)
{
    srvcfg cfg = {.bytes = total, .chunk = chunk};
    mcl_stream_server *srv = server_start(&cfg, o);
    mcl_stream *s = stream_open(srv, NULL, mem ? "mem" : "bytes", o);
    uint8_t *buf = malloc(chunk);
    while (t->units < total && now_ns() < deadline) {
        size_t got;
        mcl_err rv = mcl_stream_recv(s, buf, chunk, &got, RECV_TIMEOUT_MS);
        if (rv == MCL_EEOF) {
            fprintf(stderr, "mcl-bench-stream: the stream ended at %llu of %llu bytes\n",
                    (unsigned long long)t->units, (unsigned long long)total);
            exit(1);
        }
        if (rv != MCL_OK) {
            fprintf(stderr, "mcl-bench-stream: recv: %s: %s\n", mcl_strerror(rv),
                    mcl_stream_error(s));
            exit(1);
        }
        tally_add(t, got);
    }
    tally_end(t);
    mcl_stream_stats(s, c);
    teardown(s, srv);
    free(buf);
}

typedef struct sender {
    int fd;
    size_t chunk;
    uint64_t total, deadline;
    void *zs;         // a libzmq socket (dealer / push cases)
    atomic_bool done; // the receiver has stopped: the socket may close (zmq cases)
} sender;

static void *
tcp_send(void *arg)
{
    sender *x = arg;
    uint8_t *buf = malloc(x->chunk);
    for (size_t i = 0; i < x->chunk; i++)
        buf[i] = pat[i % PAT_LEN];
    uint64_t sent = 0;
    while (sent < x->total && now_ns() < x->deadline) {
        size_t off = 0;
        while (off < x->chunk) {
            ssize_t r = write(x->fd, buf + off, x->chunk - off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                goto out; // the receiver has stopped
            off += (size_t)r;
        }
        sent += x->chunk;
    }
out:
    shutdown(x->fd, SHUT_WR);
    free(buf);
    return NULL;
}

static void
bytes_tcp(size_t chunk, uint64_t total, uint64_t deadline, tally *t)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &al) != 0)
        die("tcp listen");
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("tcp connect");
    int r = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (r < 0)
        die("tcp accept");
    close(l);
    sender x = {.fd = c, .chunk = chunk, .total = total, .deadline = deadline};
    pthread_t th;
    pthread_create(&th, NULL, tcp_send, &x);
    uint8_t *buf = malloc(chunk);
    while (t->units < total && now_ns() < deadline) {
        ssize_t n = read(r, buf, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        tally_add(t, (uint64_t)n);
    }
    tally_end(t);
    shutdown(r, SHUT_RDWR); // a sender still writing fails now
    pthread_join(th, NULL);
    close(r);
    close(c);
    free(buf);
}

#ifdef MCL_BENCH_ZMQ
static void *
zmq_sender(void *arg)
{
    sender *x = arg;
    uint8_t *buf = malloc(x->chunk);
    for (size_t i = 0; i < x->chunk; i++)
        buf[i] = pat[i % PAT_LEN];
    // Bounded by count and time; a blocked send ends with ETERM at zmq_ctx_shutdown().
    for (uint64_t sent = 0; sent < x->total && now_ns() < x->deadline; sent++)
        if (zmq_send(x->zs, buf, x->chunk, 0) < 0)
            break;
    // Closing now would drop what is still queued (LINGER 0): wait for the receiver.
    struct timespec ms = {0, 1000000L};
    for (int i = 0; i < 30000 && !atomic_load(&x->done); i++)
        nanosleep(&ms, NULL);
    zmq_close(x->zs);
    free(buf);
    return NULL;
}

// Raw libzmq one way: stype (ZMQ_ROUTER or ZMQ_PULL) binds and receives, ctype (ZMQ_DEALER or
// ZMQ_PUSH) connects and sends n messages of size bytes; t counts messages (units = 1 each) or
// bytes.
static void
zmq_oneway(int stype, int ctype, size_t size, uint64_t n, uint64_t deadline, int hwm, bool bytes,
           tally *t)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, stype), *c = zmq_socket(ctx, ctype);
    int zero = 0, tmo = RECV_TIMEOUT_MS;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(c, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    char ep[256];
    size_t el = sizeof(ep);
    if (zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &el) != 0 || zmq_connect(c, ep) != 0)
        die("zmq bind/connect");
    sender x = {.chunk = size, .total = n, .deadline = deadline, .zs = c};
    pthread_t th;
    pthread_create(&th, NULL, zmq_sender, &x);
    zmq_msg_t id, m;
    zmq_msg_init(&id);
    zmq_msg_init(&m);
    for (uint64_t i = 0; i < n && now_ns() < deadline; i++) {
        if (stype == ZMQ_ROUTER && zmq_msg_recv(&id, s, 0) < 0)
            break;
        int r = zmq_msg_recv(&m, s, 0);
        if (r < 0)
            break;
        if ((size_t)r != size)
            die("zmq: a message of another size");
        tally_add(t, bytes ? (uint64_t)r : 1);
    }
    tally_end(t);
    zmq_msg_close(&id);
    zmq_msg_close(&m);
    atomic_store(&x.done, true);
    zmq_close(s);
    zmq_ctx_shutdown(ctx); // the sender's blocked send ends with ETERM
    pthread_join(th, NULL);
    zmq_ctx_term(ctx);
}
#endif

static void
opts_from(mcl_stream_options *o, int argc, char **argv, int first)
{
    memset(o, 0, sizeof(*o));
    if (argc > first)
        o->window = parse_size(argv[first]);
    if (argc > first + 1)
        o->max_push = (size_t)parse_size(argv[first + 1]);
    if (argc > first + 2)
        o->max_pushes = (uint32_t)strtoul(argv[first + 2], NULL, 10);
}

static int
run_bytes(int argc, char **argv)
{
    if (argc < 6)
        die("usage: bytes tcp|dealer|mcl|mcl-mem CHUNK MB SECONDS [WINDOW MAX_PUSH PUSHES HWM]");
    const char *impl = argv[2];
    size_t chunk = (size_t)parse_size(argv[3]);
    uint64_t total = strtoull(argv[4], NULL, 10) * 1000000u;
    double secs = strtod(argv[5], NULL);
    mcl_stream_options o;
    opts_from(&o, argc, argv, 6);
    int hwm = argc > 9 ? atoi(argv[9]) : 64;
    if (chunk == 0 || chunk > (16u << 20) || total == 0 || secs <= 0)
        die("CHUNK 1..16M, MB and SECONDS > 0");
    uint64_t deadline = now_ns() + (uint64_t)(secs * 1e9);
    tally t = {0};
    mcl_stream_counters c = {0};
    char extra[256] = "";
    if (strcmp(impl, "tcp") == 0) {
        bytes_tcp(chunk, total, deadline, &t);
    } else if (strcmp(impl, "mcl") == 0 || strcmp(impl, "mcl-mem") == 0) {
        bool mem = impl[3] == '-';
        if (mem && total > (uint64_t)MEM_MAX_MB * 1000000u)
            total = (uint64_t)MEM_MAX_MB * 1000000u;
        bytes_mcl(mem, chunk, total, deadline, &o, &t, &c);
        snprintf(extra, sizeof(extra),
                 " window=%llu max_push=%zu pushes=%u pushes_received=%llu limits_sent=%llu",
                 (unsigned long long)o.window, o.max_push, o.max_pushes,
                 (unsigned long long)c.pushes_received, (unsigned long long)c.limits_sent);
#ifdef MCL_BENCH_ZMQ
    } else if (strcmp(impl, "dealer") == 0) {
        zmq_oneway(ZMQ_ROUTER, ZMQ_DEALER, chunk, total / chunk, deadline, hwm, true, &t);
        snprintf(extra, sizeof(extra), " hwm=%d", hwm);
#endif
    } else {
        printf("stream case=bytes impl=%s n/a=1\n", impl);
        return 0;
    }
    printf("stream case=bytes impl=%s chunk=%zu bytes=%llu secs=%.3f mbps=%.1f malloc=%s "
           "minflt=%ld%s\n",
           impl, chunk, (unsigned long long)t.units, (double)(t.t1 - t.t0) / 1e9,
           tally_rate(&t) / 1e6, malloc_label(), t.f1 - t.f0, extra);
    return 0;
}

// --- elements ------------------------------------------------------------------------------------

static void
elems_mcl(bool iter, size_t size, uint64_t n, uint64_t deadline, size_t batch,
          const mcl_stream_options *o, tally *t, mcl_stream_counters *c)
{
    srvcfg cfg = {.nelems = n, .esize = size};
    mcl_stream_server *srv = server_start(&cfg, o);
    mcl_stream *s = stream_open(srv, NULL, iter ? "iter" : "elems", o);
    mcl_stream_elem *out = calloc(batch, sizeof(*out));
    while (t->units < n && now_ns() < deadline) {
        size_t got;
        mcl_err rv = mcl_stream_recv_elems(s, out, batch, &got, RECV_TIMEOUT_MS);
        if (rv == MCL_EEOF) {
            fprintf(stderr, "mcl-bench-stream: the stream ended at %llu of %llu elements\n",
                    (unsigned long long)t->units, (unsigned long long)n);
            exit(1);
        }
        if (rv != MCL_OK) {
            fprintf(stderr, "mcl-bench-stream: recv_elems: %s: %s\n", mcl_strerror(rv),
                    mcl_stream_error(s));
            exit(1);
        }
        for (size_t i = 0; i < got; i++)
            if (out[i].len != size || ((const uint8_t *)out[i].data)[0] != 0xc5)
                die("an element of another size");
        tally_add(t, got);
    }
    tally_end(t);
    mcl_stream_stats(s, c);
    teardown(s, srv);
    free(out);
}

static int
run_elems(int argc, char **argv)
{
    if (argc < 6)
        die("usage: elems dealer|push|mcl|mcl-ops SIZE N SECONDS [BATCH WINDOW MAX_PUSH PUSHES "
            "HWM]");
    const char *impl = argv[2];
    size_t size = (size_t)parse_size(argv[3]);
    uint64_t n = strtoull(argv[4], NULL, 10);
    double secs = strtod(argv[5], NULL);
    size_t batch = argc > 6 ? (size_t)strtoul(argv[6], NULL, 10) : 256;
    mcl_stream_options o;
    opts_from(&o, argc, argv, 7);
    int hwm = argc > 10 ? atoi(argv[10]) : 4096;
    if (n == 0 || secs <= 0 || batch == 0)
        die("N, SECONDS and BATCH > 0");
    uint64_t deadline = now_ns() + (uint64_t)(secs * 1e9);
    tally t = {0};
    mcl_stream_counters c = {0};
    char extra[256] = "";
    if (strcmp(impl, "mcl") == 0 || strcmp(impl, "mcl-ops") == 0) {
        elems_mcl(impl[3] == '\0', size, n, deadline, batch, &o, &t, &c);
        snprintf(extra, sizeof(extra),
                 " batch=%zu window=%llu max_push=%zu pushes=%u pushes_received=%llu "
                 "limits_sent=%llu",
                 batch, (unsigned long long)o.window, o.max_push, o.max_pushes,
                 (unsigned long long)c.pushes_received, (unsigned long long)c.limits_sent);
#ifdef MCL_BENCH_ZMQ
    } else if (strcmp(impl, "dealer") == 0 || strcmp(impl, "push") == 0) {
        bool d = impl[0] == 'd';
        zmq_oneway(d ? ZMQ_ROUTER : ZMQ_PULL, d ? ZMQ_DEALER : ZMQ_PUSH, size, n, deadline, hwm,
                   false, &t);
        snprintf(extra, sizeof(extra), " hwm=%d", hwm);
#endif
    } else {
        printf("stream case=elems impl=%s n/a=1\n", impl);
        return 0;
    }
    printf("stream case=elems impl=%s size=%zu n=%llu secs=%.3f eps=%.0f mbps=%.1f malloc=%s "
           "minflt=%ld%s\n",
           impl, size, (unsigned long long)t.units, (double)(t.t1 - t.t0) / 1e9, tally_rate(&t),
           tally_rate(&t) * (double)size / 1e6, malloc_label(), t.f1 - t.f0, extra);
    return 0;
}

// --- a paused reader -----------------------------------------------------------------------------

// What the server process answers to a sample request.
typedef struct srv_sample {
    long rss_kb;
    double cpu_ms; // user + system, all its threads
} srv_sample;

static double
cpu_ms(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static void
full_write(int fd, const void *p, size_t n)
{
    if (write(fd, p, n) != (ssize_t)n)
        die("pipe write");
}

static bool
full_read(int fd, void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)p + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        done += (size_t)r;
    }
    return true;
}

// The server process: listens, says where on out, then answers one srv_sample per byte read
// from in until 'q' or the pipe's end.
static void
paused_server(int in, int out, uint64_t bytes)
{
    alarm(120); // a bound on the whole run, whatever the parent does
    pat_init();
    srvcfg cfg = {.bytes = bytes, .probe_bytes = (uint64_t)PROBE_MB * 1000000u, .chunk = 65536};
    mcl_stream_server *srv = server_start(&cfg, NULL);
    char url[256];
    snprintf(url, sizeof(url), "%s", mcl_stream_server_url(srv));
    full_write(out, url, sizeof(url));
    char cmd;
    while (full_read(in, &cmd, 1) && cmd != 'q') {
        srv_sample s = {rss_kb(), cpu_ms()};
        full_write(out, &s, sizeof(s));
    }
    // Not mcl_stream_server_free(): its peers' connections have ended, and freeing then races
    // with the heartbeat that removes their bindings (see teardown()). The exit releases all.
    _exit(0);
}

// The probe process: waits for a byte on in, reads the "probe" stream to its end, writes its
// MB/s (a double) on out.
static void
paused_probe(int in, int out, const char *url)
{
    alarm(120);
    char go;
    if (!full_read(in, &go, 1))
        _exit(1);
    mcl_stream *s = stream_open(NULL, url, "probe", NULL);
    uint8_t *buf = malloc(65536);
    tally t = {0};
    uint64_t deadline = now_ns() + 20ull * 1000000000u;
    while (now_ns() < deadline) {
        size_t got;
        mcl_err rv = mcl_stream_recv(s, buf, 65536, &got, RECV_TIMEOUT_MS);
        if (rv == MCL_EEOF)
            break;
        if (rv != MCL_OK)
            _exit(1);
        tally_add(&t, got);
    }
    double mbps = t.units == (uint64_t)PROBE_MB * 1000000u ? tally_rate(&t) / 1e6 : -1;
    (void)mcl_stream_close(s, 2000);
    mcl_stream_free(s);
    full_write(out, &mbps, sizeof(mbps));
    _exit(0);
}

static srv_sample
srv_ask(int to, int from)
{
    srv_sample s;
    full_write(to, "s", 1);
    if (!full_read(from, &s, sizeof(s)))
        die("the server process went away");
    return s;
}

// Bytes read so far are checked against the pattern; returns false at the first wrong one.
static bool
check_bytes(const uint8_t *b, size_t n, uint64_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat[(pos + i) % PAT_LEN])
            return false;
    return true;
}

static int
run_paused(int argc, char **argv)
{
    if (argc < 4)
        die("usage: paused MB PAUSE_MS");
    uint64_t bytes = strtoull(argv[2], NULL, 10) * 1000000u;
    int pause_ms = atoi(argv[3]);
    if (bytes < (16u << 20) || pause_ms < 1000 || pause_ms > 60000)
        die("MB >= 17, PAUSE_MS 1000..60000");
    int c2s[2], s2c[2], p_in[2], p_out[2];
    if (pipe(c2s) != 0 || pipe(s2c) != 0 || pipe(p_in) != 0 || pipe(p_out) != 0)
        die("pipe");
    fflush(stdout);
    pid_t spid = fork(); // (no thread yet in this process)
    if (spid < 0)
        die("fork");
    if (spid == 0)
        paused_server(c2s[0], s2c[1], bytes);
    char url[256];
    if (!full_read(s2c[0], url, sizeof(url)))
        die("the server process did not start");
    pid_t ppid = fork();
    if (ppid < 0)
        die("fork");
    if (ppid == 0)
        paused_probe(p_in[0], p_out[1], url);
    pat_init();

    long rss0 = rss_kb();
    srv_sample s0 = srv_ask(c2s[1], s2c[0]);
    mcl_stream *s = stream_open(NULL, url, "bytes", NULL);
    uint8_t *buf = malloc(65536);
    size_t got;
    mcl_err rv = mcl_stream_recv(s, buf, 65536, &got, RECV_TIMEOUT_MS);
    if (rv != MCL_OK || !check_bytes(buf, got, 0))
        die("the first chunk");
    uint64_t pos = got;
    // Let the read-ahead fill the window before the first sample.
    struct timespec hundred = {0, 100 * 1000000L};
    nanosleep(&hundred, NULL);
    long rss1 = rss_kb();
    mcl_stream_counters c;
    mcl_stream_stats(s, &c);
    uint64_t buffered1 = c.buffered_bytes, received1 = c.units_received;
    srv_sample s1 = srv_ask(c2s[1], s2c[0]);

    long rss_max = rss1, srv_max_before_probe = s1.rss_kb;
    uint64_t buffered_max = buffered1;
    int slices = pause_ms / 100;
    bool probed = false;
    srv_sample smid = s1;
    for (int i = 1; i <= slices; i++) {
        nanosleep(&hundred, NULL);
        if (i % 5 == 0 || i == slices) {
            long r = rss_kb();
            if (r > rss_max)
                rss_max = r;
            mcl_stream_stats(s, &c);
            if (c.buffered_bytes > buffered_max)
                buffered_max = c.buffered_bytes;
            srv_sample x = srv_ask(c2s[1], s2c[0]);
            if (!probed && x.rss_kb > srv_max_before_probe)
                srv_max_before_probe = x.rss_kb;
            if (!probed)
                smid = x;
        }
        if (!probed && i == slices / 2) {
            full_write(p_in[1], "g", 1); // the probe reads another stream now
            probed = true;
        }
    }
    mcl_stream_stats(s, &c);
    uint64_t received2 = c.units_received;
    srv_sample s2 = srv_ask(c2s[1], s2c[0]);
    double probe_mbps = -1;
    if (!full_read(p_out[0], &probe_mbps, sizeof(probe_mbps)))
        probe_mbps = -1;
    long rss2 = rss_kb();

    // Read on, checking every byte, for at most RESUME_S.
    tally t = {0};
    bool ok = true;
    uint64_t deadline = now_ns() + (uint64_t)RESUME_S * 1000000000u;
    while (pos < bytes && now_ns() < deadline) {
        rv = mcl_stream_recv(s, buf, 65536, &got, RECV_TIMEOUT_MS);
        if (rv == MCL_EEOF)
            break;
        if (rv != MCL_OK)
            die("reading on after the pause");
        if (!check_bytes(buf, got, pos))
            ok = false;
        pos += got;
        tally_add(&t, got);
    }
    mcl_stream_stats(s, &c);
    if (c.buffered_bytes > buffered_max)
        buffered_max = c.buffered_bytes;
    long rss3 = rss_kb();
    (void)mcl_stream_close(s, 2000);
    mcl_stream_free(s);
    full_write(c2s[1], "q", 1);
    int st;
    waitpid(spid, &st, 0);
    waitpid(ppid, &st, 0);
    uint64_t bound = DEF_WINDOW_BYTES + DEF_MAX_PUSH;
    printf("stream case=paused impl=mcl bytes=%llu pause_ms=%d bound_bytes=%llu "
           "buffered_bytes_first=%llu buffered_bytes_max=%llu received_first=%llu "
           "received_pause_end=%llu rss_before_open_kb=%ld rss_first_kb=%ld rss_pause_max_kb=%ld "
           "rss_pause_end_kb=%ld rss_after_kb=%ld srv_rss_before_kb=%ld srv_rss_first_kb=%ld "
           "srv_rss_pause_max_kb=%ld srv_rss_after_probe_kb=%ld srv_cpu_pause_ms=%.1f "
           "probe_mbps=%.1f resume_mbps=%.1f resumed_bytes=%llu verified=%d within_bound=%d\n",
           (unsigned long long)bytes, pause_ms, (unsigned long long)bound,
           (unsigned long long)buffered1, (unsigned long long)buffered_max,
           (unsigned long long)received1, (unsigned long long)received2, rss0, rss1, rss_max, rss2,
           rss3, s0.rss_kb, s1.rss_kb, srv_max_before_probe, s2.rss_kb, smid.cpu_ms - s1.cpu_ms,
           probe_mbps, tally_rate(&t) / 1e6, (unsigned long long)t.units, ok,
           buffered_max <= bound);
    return ok ? 0 : 1;
}

static int
run_mklog(int argc, char **argv)
{
    if (argc != 5)
        die("usage: mklog PATH MB SIZE");
    uint64_t total = strtoull(argv[3], NULL, 10) * 1000000ull;
    size_t size = (size_t)strtoull(argv[4], NULL, 10);
    if (size == 0 || size > (1u << 20))
        die("mklog: SIZE must be 1..1048576");
    mcl_log_writer_options wo = {.overwrite = true};
    mcl_log_writer *w;
    if (mcl_log_writer_open(&w, argv[2], &wo) != MCL_OK)
        die("mklog: cannot create the log");
    uint8_t *payload = malloc(size);
    if (payload == NULL)
        die("mklog: out of memory");
    for (size_t i = 0; i < size; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    static const char *const topics[] = {"imu", "gps", "camera/left", "lidar"};
    int64_t t0 = 1796000000000000000LL;
    uint64_t n = 0, bytes = 0;
    while (bytes < total) {
        const char *tp = topics[n % 4];
        mcl_raw_msg m = {.topic = tp,
                         .topic_len = strlen(tp),
                         .payload = payload,
                         .len = size,
                         .publisher = 0x1234,
                         .seq = n,
                         .recv_realtime_ns = t0 + (int64_t)n * 1000000};
        if (mcl_log_writer_write(w, &m) != MCL_OK)
            die("mklog: write failed");
        n++;
        bytes += size;
    }
    if (mcl_log_writer_close(w) != MCL_OK)
        die("mklog: close failed");
    free(payload);
    printf("case=mklog records=%llu payload_bytes=%llu\n", (unsigned long long)n,
           (unsigned long long)bytes);
    return 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "mklog") == 0)
        return run_mklog(argc, argv);
    pat_init();
    if (argc >= 2 && strcmp(argv[1], "bytes") == 0)
        return run_bytes(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "elems") == 0)
        return run_elems(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "paused") == 0)
        return run_paused(argc, argv);
    die("usage: bytes ... | elems ... | paused MB PAUSE_MS | mklog PATH MB SIZE (see bench/stream.c)");
}
