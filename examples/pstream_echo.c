// SPDX-License-Identifier: BSD-3-Clause
// A packet-stream echo server and a client that checks it.
//
//   pstream_echo serve URL              answer every request with its own payload and flags
//   pstream_echo serve --stdio          the same over stdin/stdout (as when run by ssh)
//   pstream_echo call URL N             N requests of 0 B to 100 KiB; checks every answer
//   pstream_echo call --stdio N         the same over stdin/stdout
//
// Options (before the URL): --cs-compat (the Python cs.packetstream wire format; --stdio only),
// --window W (requests in flight at once, call; default 64), --max-size BYTES (largest request,
// call; default 102400), --timeout MS (per request, call; default 20000).
// URLs: zmq+tcp://HOST:PORT (port 0: any; the server prints the one it took), zmq+ipc://PATH.
// Two programs in a shell, joined by two pipes:
//   mkfifo /tmp/q && pstream_echo serve --stdio </tmp/q | pstream_echo call --stdio 1000 >/tmp/q
// The server stops at SIGINT or SIGTERM (or, with --stdio, when the peer ends the stream) and
// prints what it served on stderr. The client exits 0 when every answer matched.
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_ullong served, served_bytes, conns;

static void
echo(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    atomic_fetch_add(&served, 1);
    atomic_fetch_add(&served_bytes, n);
    mcl_err rv = mcl_pstream_reply(rq, MCL_PSTREAM_OK, mcl_pstream_request_flags(rq), p, n, NULL);
    if (rv != MCL_OK && rv != MCL_ECLOSED)
        fprintf(stderr, "pstream_echo: reply: %s\n", mcl_strerror(rv));
}

static void
on_accept(mcl_pstream_server *srv, mcl_pstream *ps, void *user)
{
    (void)srv;
    (void)user;
    atomic_fetch_add(&conns, 1);
    (void)mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL);
}

static void
print_served(void)
{
    fprintf(stderr, "pstream_echo: served %llu requests (%llu bytes) on %llu connection(s)\n",
            (unsigned long long)atomic_load(&served),
            (unsigned long long)atomic_load(&served_bytes),
            (unsigned long long)atomic_load(&conns));
}

static int
serve_url(const char *url, const mcl_pstream_options *o)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); // before any thread starts: sigwait below takes them
    mcl_pstream_server *srv;
    mcl_err rv = mcl_pstream_server_open(&srv, url, o, on_accept, NULL);
    if (rv == MCL_OK && (rv = mcl_pstream_server_start(srv)) != MCL_OK)
        mcl_pstream_server_free(srv, 0);
    if (rv != MCL_OK) {
        fprintf(stderr, "pstream_echo: cannot serve %s: %s\n", url, mcl_strerror(rv));
        return 1;
    }
    printf("listening on %s\n", mcl_pstream_server_url(srv));
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    mcl_pstream_server_free(srv, 2000);
    print_served();
    return 0;
}

// Drives ps from this thread until it ends.
static void
drive(mcl_pstream *ps, int ms)
{
    struct pollfd p = {.fd = -1, .events = POLLIN};
    (void)mcl_pstream_fd(ps, &p.fd);
    (void)poll(&p, 1, ms);
    (void)mcl_pstream_dispatch(ps);
}

static int
serve_stdio(const mcl_pstream_options *o)
{
    mcl_pstream *ps;
    mcl_err rv = mcl_pstream_open_fd(&ps, 0, 1, o);
    if (rv != MCL_OK) {
        fprintf(stderr, "pstream_echo: stdin/stdout: %s\n", mcl_strerror(rv));
        return 1;
    }
    atomic_store(&conns, 1);
    (void)mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, echo, NULL);
    while (mcl_pstream_is_open(ps))
        drive(ps, 1000);
    mcl_pstream_free(ps);
    print_served();
    return 0;
}

// --- call ----------------------------------------------------------------------------------------

typedef struct caller {
    size_t n, max_size;
    unsigned long long ok, bad, done;
    uint8_t *pattern;  // payload of request i: pattern + (i % 251), size_of(i) bytes
    uint64_t *sent_ns; // per request, for the latencies
    uint64_t *lat_ns;
    size_t nlat;
    char first_error[256];
} caller;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Request 0 is empty, request 1 is max_size, the others spread over [0, max_size].
static size_t
size_of(const caller *c, size_t i)
{
    if (i == 0)
        return 0;
    if (i == 1)
        return c->max_size;
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    return (size_t)((x >> 33) % (c->max_size + 1));
}

static void
on_answer(const mcl_pstream_result *r, void *user)
{
    caller *c = user;
    // The request's index rides in the flags.
    size_t i = r->flags;
    bool good = r->status == MCL_PSTREAM_OK && i < c->n && r->len == size_of(c, i) &&
                (r->len == 0 || memcmp(r->payload, c->pattern + (i % 251), r->len) == 0);
    c->done++;
    if (good) {
        c->ok++;
        if (i < c->n && c->sent_ns[i] != 0)
            c->lat_ns[c->nlat++] = now_ns() - c->sent_ns[i];
    } else {
        c->bad++;
        if (c->first_error[0] == '\0')
            snprintf(c->first_error, sizeof(c->first_error), "request %zu: %s %s (%zu bytes)", i,
                     mcl_pstream_status_name(r->status), r->message, r->len);
    }
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
call(mcl_pstream *ps, size_t n, unsigned window, size_t max_size, int timeout_ms)
{
    caller c = {.n = n, .max_size = max_size};
    c.pattern = malloc(max_size + 251);
    c.sent_ns = calloc(n ? n : 1, sizeof(*c.sent_ns));
    c.lat_ns = calloc(n ? n : 1, sizeof(*c.lat_ns));
    if (c.pattern == NULL || c.sent_ns == NULL || c.lat_ns == NULL) {
        fprintf(stderr, "pstream_echo: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < max_size + 251; i++)
        c.pattern[i] = (uint8_t)(i * 31 + 7);
    uint64_t t0 = now_ns();
    size_t sent = 0;
    while (c.done < n && mcl_pstream_is_open(ps)) {
        while (sent < n && sent - c.done < window) {
            c.sent_ns[sent] = now_ns();
            mcl_err rv = mcl_pstream_submit(ps, 0, 1, (uint32_t)sent, c.pattern + (sent % 251),
                                            size_of(&c, sent), timeout_ms, on_answer, &c, NULL);
            if (rv == MCL_EAGAIN) // the send queue is full: let it drain
                break;
            if (rv != MCL_OK) {
                fprintf(stderr, "pstream_echo: submit: %s\n", mcl_strerror(rv));
                return 1;
            }
            sent++;
        }
        drive(ps, 100);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    mcl_pstream_counters st;
    (void)mcl_pstream_stats(ps, &st);
    mcl_err crv = mcl_pstream_close(ps, 5000);
    qsort(c.lat_ns, c.nlat, sizeof(*c.lat_ns), cmp_u64);
    double p50 = c.nlat ? (double)c.lat_ns[c.nlat / 2] / 1000 : 0;
    double p99 = c.nlat ? (double)c.lat_ns[c.nlat * 99 / 100] / 1000 : 0;
    fprintf(stderr,
            "pstream_echo: %zu requests: %llu ok, %llu bad, %zu unanswered in %.2f s "
            "(%.0f/s; round trip p50 %.0f us, p99 %.0f us with %u in flight)\n"
            "pstream_echo: counters: sent %" PRIu64 " received %" PRIu64 " in flight %" PRIu64
            " timeouts %" PRIu64 " unknown %" PRIu64 " late %" PRIu64 " protocol errors %" PRIu64
            " bytes out %" PRIu64 " in %" PRIu64 "; close: %s\n",
            n, c.ok, c.bad, n - (size_t)c.done, secs, secs > 0 ? (double)c.done / secs : 0, p50,
            p99, window, st.requests_sent, st.responses_received, st.in_flight, st.timeouts,
            st.unknown_responses, st.late_responses, st.protocol_errors, st.bytes_sent,
            st.bytes_received, crv == MCL_OK ? "orderly" : mcl_strerror(crv));
    if (c.first_error[0] != '\0')
        fprintf(stderr, "pstream_echo: first failure: %s\n", c.first_error);
    bool all = c.ok == n && st.in_flight == 0 && st.requests_sent == n &&
               st.responses_received == n && st.unknown_responses == 0;
    free(c.pattern);
    free(c.sent_ns);
    free(c.lat_ns);
    return all ? 0 : 1;
}

static int
usage(void)
{
    fprintf(stderr, "usage: pstream_echo serve [--cs-compat] URL|--stdio\n"
                    "       pstream_echo call [--cs-compat] [--window W] [--max-size BYTES]\n"
                    "                         [--timeout MS] URL|--stdio N\n");
    return 2;
}

int
main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    bool serve = strcmp(argv[1], "serve") == 0;
    if (!serve && strcmp(argv[1], "call") != 0)
        return usage();
    mcl_pstream_options o = {0};
    unsigned window = 64;
    size_t max_size = 102400;
    int timeout_ms = 0;
    int i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i], "--stdio") != 0; i++) {
        if (strcmp(argv[i], "--cs-compat") == 0)
            o.codec = MCL_PSTREAM_CS;
        else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
            window = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--max-size") == 0 && i + 1 < argc)
            max_size = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_ms = atoi(argv[++i]);
        else
            return usage();
    }
    if (i >= argc || window == 0 || max_size > ((size_t)16 << 20))
        return usage();
    const char *where = argv[i++];
    bool stdio = strcmp(where, "--stdio") == 0;
    if (o.codec == MCL_PSTREAM_CS && !stdio) {
        fprintf(stderr, "pstream_echo: --cs-compat speaks over --stdio only\n");
        return 2;
    }
    if (stdio)
        signal(SIGPIPE, SIG_IGN); // a peer that goes away is an error, not a kill
    if (serve)
        return i == argc ? (stdio ? serve_stdio(&o) : serve_url(where, &o)) : usage();
    if (i + 1 != argc)
        return usage();
    char *end;
    errno = 0;
    unsigned long long n = strtoull(argv[i], &end, 10);
    if (errno != 0 || *end != '\0' || n > 100000000ull)
        return usage();
    if (n >= (1ull << 32)) // the index rides in the flags
        return usage();
    mcl_pstream *ps;
    mcl_err rv = stdio ? mcl_pstream_open_fd(&ps, 0, 1, &o) : mcl_pstream_dial(&ps, where, &o);
    if (rv != MCL_OK) {
        fprintf(stderr, "pstream_echo: %s: %s\n", stdio ? "stdin/stdout" : where, mcl_strerror(rv));
        return 1;
    }
    int status = call(ps, (size_t)n, window, max_size, timeout_ms);
    mcl_pstream_free(ps);
    return status;
}
