// SPDX-License-Identifier: BSD-3-Clause
// The lab of docs/broker.md: a DAQ node writes one channel ("AnalogInput1") through a channel
// broker (mcl-broker) to consumers that each want something else of it: a lossless recorder,
// an analyser that keeps up as it can (a small ring, slow), a display at about 1 Hz. Each
// consumer's buffer, overrun policy and decimation live at the broker, so the writer never
// slows down for a lossy reader, and nothing is sent to a reader that would not keep it.
//
//   broker_lab writer URL CHANNEL RATE_HZ SECONDS [--keep] [--lifetime-ms MS] [--name NAME]
//       create CHANNEL, then put a counter frame at RATE_HZ for SECONDS while the writer is
//       active (somebody reads); prints how many it put and how many were refused.
//       --keep: the channel stays after the writer leaves (readers drain what the broker
//       holds for them); --lifetime-ms: a temporary channel, removed once unused that long
//   broker_lab reader URL CHANNEL --policy ring|drop_new|block|error --buffer N
//                     [--every N] [--max-rate R] [--slow-ms MS] [--name NAME] SECONDS
//       read CHANNEL for SECONDS (sleeping MS in each callback: a slow reader); prints how
//       many frames came, the gaps in their sequence numbers, and the rate
//   broker_lab call URL METHOD ['{"json": "arguments"}']
//       call one of the broker's control methods (broker.stats, broker.channels,
//       broker.clients, ...; METHOD --list: their names) and print the result as JSON
//
// Try: mcl-broker -u zmq+tcp://127.0.0.1:5800 &
//      ./broker_lab writer zmq+tcp://127.0.0.1:5800 AnalogInput1 200 5 &
//      ./broker_lab reader zmq+tcp://127.0.0.1:5800 AnalogInput1 --policy block --buffer 1000 5
// (scripts/broker_lab.sh runs the whole lab.)
#include <mcl/broker.h>
#include <mcl/rpc.h>
#include <mcl/value.h>
#include <mcl/version.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;
static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Sleeps until monotonic time t (ns), or until a signal.
static void
sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000), .tv_nsec = (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
        ;
}

static bool
parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

static bool
parse_u32(const char *s, uint32_t min, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

// What the broker ended (a deleted channel, an ERROR overrun): the main loop stops.
static atomic_bool ended;
static char ended_why[256];

static void
on_ended(mcl_broker_client *c, uint32_t id, const char *why, void *user)
{
    (void)c;
    (void)user;
    snprintf(ended_why, sizeof(ended_why), "%u: %s", (unsigned)id, why);
    atomic_store(&ended, true);
}

// --- the writer: the DAQ node --------------------------------------------------------------------

static void
on_active(mcl_broker_client *c, uint32_t wid, bool active, void *user)
{
    (void)c;
    (void)wid;
    (void)user;
    printf("writer %s\n", active ? "active" : "inactive"); // (stdio locks: safe from here)
    fflush(stdout);
}

static int
writer(const char *url, const char *channel, double rate, double secs,
       const mcl_broker_channel_options *cho, const char *name)
{
    mcl_broker_client_options co = {.name = name, .ended = on_ended};
    mcl_broker_client *c;
    mcl_err rv = mcl_broker_connect(&c, url, &co);
    if (rv != MCL_OK) {
        fprintf(stderr, "broker_lab: %s: %s\n", url, mcl_strerror(rv));
        return 1;
    }
    // With keep, the channel outlives this writer, so that readers still get what the broker
    // holds for them after the writer has gone.
    rv = mcl_broker_create(c, channel, cho);
    if (rv != MCL_OK && rv != MCL_EEXIST) {
        fprintf(stderr, "broker_lab: cannot create %s: %s\n", channel, mcl_strerror(rv));
        mcl_broker_client_free(c);
        return 1;
    }
    uint32_t wid;
    if ((rv = mcl_broker_writer(c, channel, NULL, on_active, NULL, &wid)) != MCL_OK) {
        fprintf(stderr, "broker_lab: cannot write %s: %s\n", channel, mcl_strerror(rv));
        mcl_broker_client_free(c);
        return 1;
    }
    printf("writing %s at %g Hz for %g s\n", channel, rate, secs);
    fflush(stdout);

    // One frame per tick: the tick's number and the time it was made. A tick whose put is
    // refused (nobody reads; no credit in time) is not sent: the counter in the frames shows
    // the ticks lost at the writer, the broker's sequence numbers what readers did not get.
    int64_t period = (int64_t)(1e9 / rate), t0 = now_ns(), end = t0 + (int64_t)(secs * 1e9);
    int wait_ms = (int)(period / 1000000) > 0 ? (int)(period / 1000000) : 1;
    uint64_t tick = 0, put = 0, failed = 0;
    for (int64_t next = t0; !stop && !atomic_load(&ended) && next < end; next += period) {
        sleep_until(next);
        uint8_t frame[16];
        put_be64(frame, tick++);
        put_be64(frame + 8, (uint64_t)now_ns());
        // Waits for credit (a BLOCK reader's buffer full: the broker holds writers back) at
        // most one period (then MCL_ETIMEDOUT); an inactive writer is refused at once
        // (MCL_EAGAIN), and nothing is sent. The client counts both kinds of refusal.
        rv = mcl_broker_put_wait(c, wid, frame, sizeof(frame), wait_ms);
        if (rv == MCL_OK)
            put++;
        else if (rv != MCL_EAGAIN && rv != MCL_ETIMEDOUT && failed++ == 0)
            fprintf(stderr, "broker_lab: put: %s\n", mcl_strerror(rv));
        if (now_ns() > next + 1000000000) // a second behind (stopped, swapped): start afresh
            next = now_ns();
    }
    mcl_broker_counts k = {0};
    (void)mcl_broker_counts_of(c, wid, &k);
    double took = (double)(now_ns() - t0) / 1e9;
    printf("writer: %" PRIu64 " ticks in %.1f s: put %" PRIu64 ", refused %" PRIu64
           " inactive, %" PRIu64 " for credit%s%s\n",
           tick, took, put, k.refused_inactive, k.refused_credit,
           atomic_load(&ended) ? "; ended by the broker: " : "",
           atomic_load(&ended) ? ended_why : "");
    fflush(stdout);
    (void)mcl_broker_writer_close(c, wid);
    mcl_broker_client_free(c);
    return failed == 0 ? 0 : 1;
}

// --- a reader: recorder, analyser or display ---------------------------------------------------

typedef struct reader_state {
    int slow_ms;
    // Written by the client's thread in the callback, read by the main thread at the end
    // (after mcl_broker_client_free(): no callback runs any more).
    atomic_uint_fast64_t received, gaps, missed, bytes;
    atomic_bool done; // the reader's time is up
    uint64_t first_seq, last_seq;
    int64_t first_ns, last_ns; // when the first and the last frame came
    bool any;
    int64_t lat_sum_ns; // over the lat_n frames that were broker_lab's
    uint64_t lat_n;
} reader_state;

static void
on_frame(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len, void *user)
{
    (void)c;
    (void)sub;
    reader_state *s = user;
    if (atomic_load(&s->done)) // the time is up: what still arrives is not counted
        return;
    if (s->any && seq > s->last_seq + 1) { // dropped at the broker, or decimated
        atomic_fetch_add(&s->gaps, 1);
        atomic_fetch_add(&s->missed, seq - s->last_seq - 1);
    }
    int64_t now = now_ns();
    if (!s->any) {
        s->first_seq = seq;
        s->first_ns = now;
    }
    s->any = true;
    s->last_seq = seq;
    s->last_ns = now;
    if (len == 16) { // the tick's number, then when the writer made it
        s->lat_sum_ns += now - (int64_t)get_be64((const uint8_t *)data + 8);
        s->lat_n++;
    }
    atomic_fetch_add(&s->bytes, len);
    atomic_fetch_add(&s->received, 1);
    // A slow consumer: its buffer at the broker fills, and its policy acts. (Only until its
    // time is up, above: unsubscribing waits behind the callbacks of the frames already sent,
    // up to the broker's window of them, and those then go quickly.)
    if (s->slow_ms > 0) {
        struct timespec ts = {.tv_sec = s->slow_ms / 1000,
                              .tv_nsec = (s->slow_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static bool
parse_policy(const char *s, mcl_broker_policy *p)
{
    static const struct {
        const char *name;
        mcl_broker_policy p;
    } names[] = {{"ring", MCL_BROKER_RING},
                 {"drop_new", MCL_BROKER_DROP_NEW},
                 {"block", MCL_BROKER_BLOCK},
                 {"error", MCL_BROKER_ERROR}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(s, names[i].name) == 0) {
            *p = names[i].p;
            return true;
        }
    return false;
}

static int
reader(const char *url, const char *channel, const mcl_broker_reader_options *ro, int slow_ms,
       double secs, const char *name)
{
    mcl_broker_client_options co = {.name = name, .ended = on_ended};
    mcl_broker_client *c;
    mcl_err rv = mcl_broker_connect(&c, url, &co);
    if (rv != MCL_OK) {
        fprintf(stderr, "broker_lab: %s: %s\n", url, mcl_strerror(rv));
        return 1;
    }
    static reader_state s; // (static: its counters are atomics, zero-initialised)
    s.slow_ms = slow_ms;
    // The channel may not exist yet (its writer is starting): try again for up to 5 s.
    uint32_t sub;
    int64_t deadline = now_ns() + 5000000000LL;
    while ((rv = mcl_broker_subscribe(c, channel, ro, on_frame, &s, &sub)) == MCL_ENOENT && !stop &&
           now_ns() < deadline)
        sleep_until(now_ns() + 50000000);
    if (rv != MCL_OK) {
        fprintf(stderr, "broker_lab: cannot read %s: %s\n", channel, mcl_strerror(rv));
        mcl_broker_client_free(c);
        return 1;
    }
    printf("reading %s as %s\n", channel, name);
    fflush(stdout);
    int64_t t0 = now_ns(), end = t0 + (int64_t)(secs * 1e9);
    while (!stop && !atomic_load(&ended) && now_ns() < end) {
        int64_t wake = now_ns() + 100000000; // wake for signals and the broker's ending
        sleep_until(wake < end ? wake : end);
    }
    atomic_store(&s.done, true); // (a callback running now may still count its frame)
    double took = (double)(now_ns() - t0) / 1e9;
    bool was_ended = atomic_load(&ended);
    if (!was_ended)
        (void)mcl_broker_unsubscribe(c, sub);
    mcl_broker_client_free(c); // no callback runs after this: the counts are final
    uint64_t n = atomic_load(&s.received), gaps = atomic_load(&s.gaps),
             missed = atomic_load(&s.missed);
    // The rate while frames came (the first to the last), not over the whole run: a reader
    // that outlives its writer is not slower for it.
    double span = n > 1 ? (double)(s.last_ns - s.first_ns) / 1e9 : 0;
    printf("%s: received %" PRIu64 " frames in %.1f s, %" PRIu64 " gaps (%" PRIu64
           " frames not delivered), %.1f frames/s",
           name, n, took, gaps, missed, span > 0 ? (double)(n - 1) / span : 0.0);
    if (s.any)
        printf(", seq %" PRIu64 "..%" PRIu64, s.first_seq, s.last_seq);
    if (s.lat_n > 0)
        printf(", mean latency %.2f ms", (double)s.lat_sum_ns / (double)s.lat_n / 1e6);
    if (was_ended)
        printf("; ended by the broker: %s", ended_why);
    printf("\n");
    fflush(stdout);
    return 0;
}

// --- control calls: the broker's RPC service --------------------------------------------------

// The broker's control methods are an ordinary RPC service ("mcl.broker") on the broker
// connection's channel MCL_BROKER_RPC_CHANNEL: any RPC client that selects that channel calls
// them.
static int
call(const char *url, const char *method, const char *json)
{
    mcl_value *args = NULL;
    char why[256];
    if (json != NULL &&
        mcl_value_from_json(&args, json, strlen(json), why, sizeof(why)) != MCL_OK) {
        fprintf(stderr, "broker_lab: the arguments are not JSON: %s\n", why);
        return 2;
    }
    mcl_rpc_client_options o = {.channel = MCL_BROKER_RPC_CHANNEL, .timeout_ms = 5000};
    mcl_rpc_client *c;
    if (mcl_rpc_client_open(&c, url, &o, why, sizeof(why)) != MCL_OK) {
        fprintf(stderr, "broker_lab: %s\n", why);
        mcl_value_free(args);
        return 1;
    }
    int ec = 0;
    if (strcmp(method, "--list") == 0) {
        printf("service %s\n", mcl_rpc_client_service_name(c));
        for (size_t i = 0; i < mcl_rpc_client_nmethods(c); i++) {
            const mcl_rpc_method_info *m = mcl_rpc_client_method_at(c, i);
            printf("%10u  %s: %s\n", (unsigned)m->id, m->name, m->doc);
        }
    } else {
        mcl_rpc_result *r = NULL;
        char *js = NULL;
        if (mcl_rpc_call(c, method, args, 5000, &r) != MCL_OK) {
            fprintf(stderr, "broker_lab: %s: the call failed\n", method);
            ec = 1;
        } else if (r->status != MCL_PSTREAM_OK) {
            fprintf(stderr, "broker_lab: %s: %s: %s\n", method, mcl_rpc_status_name(r->status),
                    r->message);
            ec = 1;
        } else if (mcl_value_to_json(r->value, MCL_JSON_INDENT, &js) == MCL_OK) {
            printf("%s\n", js);
            mcl_free(js);
        }
        mcl_rpc_result_free(r);
    }
    fflush(stdout);
    mcl_rpc_client_free(c, 1000);
    mcl_value_free(args);
    return ec;
}

// --- main --------------------------------------------------------------------------------------

static int
usage(void)
{
    fprintf(stderr,
            "usage: broker_lab writer URL CHANNEL RATE_HZ SECONDS [--keep] [--lifetime-ms MS]\n"
            "                  [--name NAME]\n"
            "       broker_lab reader URL CHANNEL --policy ring|drop_new|block|error --buffer N\n"
            "                  [--every N] [--max-rate R] [--slow-ms MS] [--name NAME] SECONDS\n"
            "       broker_lab call URL METHOD|--list ['{\"json\": \"arguments\"}']\n"
            "(mcl %s)\n",
            mcl_version());
    return 2;
}

int
main(int argc, char **argv)
{
    if (argc < 4)
        return usage();
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const char *role = argv[1], *url = argv[2], *channel = argv[3];
    if (strcmp(role, "call") == 0)
        return argc <= 5 ? call(url, argv[3], argc == 5 ? argv[4] : NULL) : usage();
    const char *pos[2] = {NULL, NULL}; // positional arguments after CHANNEL
    int npos = 0;
    const char *name = NULL, *policy = NULL;
    mcl_broker_channel_options cho = {0};
    uint32_t every = 0, buffer = 0, slow = 0, life = 0;
    bool have_buffer = false;
    double max_rate = 0;
    bool is_writer = strcmp(role, "writer") == 0;
    if (!is_writer && strcmp(role, "reader") != 0)
        return usage();
    for (int i = 4; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--keep") == 0 && is_writer) {
            cho.keep = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (npos == 2)
                return usage();
            pos[npos++] = a;
            continue;
        }
        if (v == NULL)
            return usage();
        if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "--lifetime-ms") == 0 && is_writer)
            ok = parse_u32(v, 1, &life) && life <= INT32_MAX;
        else if (is_writer)
            ok = false;
        else if (strcmp(a, "--policy") == 0)
            policy = v;
        else if (strcmp(a, "--buffer") == 0)
            ok = have_buffer = parse_u32(v, 1, &buffer);
        else if (strcmp(a, "--every") == 0)
            ok = parse_u32(v, 1, &every);
        else if (strcmp(a, "--max-rate") == 0)
            ok = parse_double(v, 0.001, 1e9, &max_rate);
        else if (strcmp(a, "--slow-ms") == 0)
            ok = parse_u32(v, 0, &slow) && slow <= 60000;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "broker_lab: invalid %s '%s'\n", a, v);
            return usage();
        }
        i++;
    }
    double secs;
    if (is_writer) {
        double rate;
        if (npos != 2 || !parse_double(pos[0], 0.001, 1e6, &rate) ||
            !parse_double(pos[1], 0.001, 1e6, &secs))
            return usage();
        cho.lifetime_ms = (int)life;
        return writer(url, channel, rate, secs, &cho, name ? name : "lab-writer");
    }
    mcl_broker_reader_options ro = {.buffer = buffer, .every = every, .max_rate = max_rate};
    if (npos != 1 || policy == NULL || !have_buffer || !parse_policy(policy, &ro.policy) ||
        !parse_double(pos[0], 0.001, 1e6, &secs))
        return usage();
    return reader(url, channel, &ro, (int)slow, secs, name ? name : "lab-reader");
}
