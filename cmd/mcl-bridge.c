// mcl-bridge: forward messages between two connections (multicast islands, ZeroMQ links), in
// one or both directions, keeping each message's original publisher id and sequence number.
//
// Loop prevention: the bridge learns on which side each publisher lives (the side it was first
// heard on). A message heard on the other side (its own forwarded copy, looped back by
// multicast, or one that came around a ring of bridges) is never forwarded again.
//
// Each direction runs on its own listener thread, so a direction blocked by a full lossless
// zmq peer never stops the other one (two bridges forwarding both ways to each other could
// otherwise wait for each other for ever).
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "mcl-bridge";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-bridge [OPTION]... A B\n"
            "Forward messages between two connections, in both directions (default) or one.\n"
            "\n"
            "A side is one URL, used to listen and to publish (udp:// groups), or IN,OUT: listen\n"
            "on IN and publish on OUT (ZeroMQ links, which are one-way: a zmq broadcaster binds\n"
            "by default and a zmq listener connects).\n"
            "\n"
            "  -1, --one-way        forward A -> B only\n"
            "  -t, --topic T[,T]    only these topics; 'imu/*' matches a prefix (repeatable)\n"
            "      --stats SEC      print statistics every SEC seconds (also on SIGUSR1, and\n"
            "                       always at exit)\n"
            "  -q, --quiet          no statistics at exit, no subscriber notices\n"
            "  -v, --verbose        library debug messages on stderr\n"
            "      --help           this text\n"
            "      --version        version\n"
            "\n"
            "Messages keep their publisher id and sequence number: a message that arrives by two\n"
            "paths is a duplicate, dropped by listeners, and multicast listeners beyond the bridge\n"
            "count gaps per original publisher. (zmq listeners count loss per topic on their own\n"
            "link; loss before the bridge shows in the bridge's statistics.) The bridge never\n"
            "forwards a message back to the side its publisher lives on, so two bridges (or a\n"
            "bridge and multicast loopback) do not make loops. Each direction has its own thread.\n"
            "Example, two multicast islands joined over TCP (hosts 10.0.0.1 and 10.0.0.2):\n"
            "  on 10.0.0.1: mcl-bridge udp://239.255.26.1 zmq+tcp://10.0.0.2:5602,zmq+tcp://10.0.0.1:5601\n"
            "  on 10.0.0.2: mcl-bridge udp://239.255.26.1 zmq+tcp://10.0.0.1:5601,zmq+tcp://10.0.0.2:5602\n"
            "Exit status: 0 stopped by a signal, 1 runtime failure, 2 usage error.\n");
}

// --- publisher -> side table (open addressing, grows) -----------------------------------------

typedef struct pub_entry {
    uint64_t id;
    uint8_t side; // 1 = A, 2 = B; 0 = empty
} pub_entry;

typedef struct pub_table {
    pub_entry *e;
    size_t cap, n;
} pub_table;

static size_t
slot_of(uint64_t id, size_t cap)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id & (cap - 1);
}

// The side publisher id lives on: learned now if unknown. 0 when out of memory.
static int
pub_side(pub_table *t, uint64_t id, int side)
{
    if (t->n * 2 >= t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 256;
        pub_entry *ne = calloc(ncap, sizeof(*ne));
        if (ne == NULL)
            return 0;
        for (size_t i = 0; i < t->cap; i++)
            if (t->e[i].side != 0) {
                size_t j = slot_of(t->e[i].id, ncap);
                while (ne[j].side != 0)
                    j = (j + 1) & (ncap - 1);
                ne[j] = t->e[i];
            }
        free(t->e);
        t->e = ne;
        t->cap = ncap;
    }
    size_t j = slot_of(id, t->cap);
    while (t->e[j].side != 0) {
        if (t->e[j].id == id)
            return t->e[j].side;
        j = (j + 1) & (t->cap - 1);
    }
    t->e[j] = (pub_entry){id, (uint8_t)side};
    t->n++;
    return side;
}

// --- the bridge -----------------------------------------------------------------------------

typedef struct direction {
    int from;                    // 1 = A, 2 = B
    mcl_raw_listener *l;         // listens on the `from` side
    mcl_raw_broadcaster *b;      // publishes on the other side
    atomic_uint_fast64_t forwarded, looped, failed, bytes; // read by the main thread
    bool counts_subscribers;     // its output counts listeners (zmq); main thread only
    uint64_t last_subscribers;   // main thread only
    mcl_err last_err;            // its listener thread only
} direction;

static pthread_mutex_t pubs_lock = PTHREAD_MUTEX_INITIALIZER;
static pub_table pubs;
static atomic_bool out_of_memory;

static void
on_message(const mcl_raw_msg *m, void *user)
{
    direction *d = user;
    pthread_mutex_lock(&pubs_lock);
    int side = pub_side(&pubs, m->publisher, d->from);
    pthread_mutex_unlock(&pubs_lock);
    if (side == 0) {
        atomic_store(&out_of_memory, true);
        return;
    }
    if (side != d->from) { // its publisher lives on the side we would send it to
        atomic_fetch_add(&d->looped, 1);
        return;
    }
    mcl_err rv = mcl_raw_broadcaster_forward(d->b, m);
    if (rv == MCL_OK) {
        atomic_fetch_add(&d->forwarded, 1);
        atomic_fetch_add(&d->bytes, m->len);
    } else {
        if (atomic_fetch_add(&d->failed, 1) == 0 || rv != d->last_err)
            tool_err(prog, "forwarding to %s failed: %s",
                     mcl_connection_url(mcl_raw_broadcaster_connection(d->b)), mcl_strerror(rv));
        d->last_err = rv;
    }
}

static volatile sig_atomic_t want_stats;
static void
on_usr1(int sig)
{
    (void)sig;
    want_stats = 1;
}

static void
print_stats(const direction *d, size_t nd)
{
    for (size_t i = 0; i < nd; i++) {
        mcl_listener_stats ls;
        mcl_raw_listener_stats(d[i].l, &ls);
        fprintf(stderr,
                "%s: %c -> %c: forwarded %llu (%llu bytes), loops suppressed %llu, failed %llu; "
                "heard %llu, lost %llu, duplicates %llu, malformed %llu, kernel drops %llu\n",
                prog, d[i].from == 1 ? 'A' : 'B', d[i].from == 1 ? 'B' : 'A',
                (unsigned long long)atomic_load(&d[i].forwarded),
                (unsigned long long)atomic_load(&d[i].bytes),
                (unsigned long long)atomic_load(&d[i].looped),
                (unsigned long long)atomic_load(&d[i].failed),
                (unsigned long long)ls.messages, (unsigned long long)ls.lost,
                (unsigned long long)ls.duplicates, (unsigned long long)ls.malformed,
                (unsigned long long)ls.kernel_drops);
    }
    pthread_mutex_lock(&pubs_lock);
    size_t known = pubs.n;
    pthread_mutex_unlock(&pubs_lock);
    fprintf(stderr, "%s: publishers known: %zu\n", prog, known);
}

// Splits "IN,OUT" (or "URL") into its listen and publish URLs (pointers into buf).
static void
split_side(const char *arg, char *buf, size_t len, const char **in, const char **out)
{
    snprintf(buf, len, "%s", arg);
    char *comma = strchr(buf, ',');
    *in = buf;
    *out = buf;
    if (comma != NULL) {
        *comma = '\0';
        *out = comma + 1;
    }
}

static int
open_direction(direction *d, int from, const char *in, const char *out, char **topics,
               size_t ntopics)
{
    mcl_connection *ci = NULL, *co = NULL;
    int ec = tool_connection(prog, in, &ci);
    if (ec == EXIT_OK)
        ec = tool_connection(prog, out, &co);
    mcl_err rv = MCL_OK;
    if (ec == EXIT_OK && (rv = mcl_raw_broadcaster_open(&d->b, co, NULL)) != MCL_OK) {
        tool_err(prog, "cannot publish on %s: %s", mcl_connection_url(co), mcl_strerror(rv));
        ec = EXIT_RUNTIME;
    }
    if (ec == EXIT_OK && (rv = mcl_raw_listener_open(&d->l, ci, (const char *const *)topics,
                                                     ntopics)) != MCL_OK) {
        tool_err(prog, "cannot listen on %s: %s", mcl_connection_url(ci), mcl_strerror(rv));
        ec = EXIT_RUNTIME;
    }
    if (ec == EXIT_OK && (rv = mcl_raw_listener_subscribe(d->l, on_message, d)) != MCL_OK) {
        tool_err(prog, "subscribe: %s", mcl_strerror(rv));
        ec = EXIT_RUNTIME;
    }
    d->from = from;
    mcl_connection_free(ci);
    mcl_connection_free(co);
    return ec;
}

int
main(int argc, char **argv)
{
    bool one_way = false, quiet = false, verbose = false;
    double every = 0;
    char **topics = NULL;
    size_t ntopics = 0;
    enum { O_STATS = 256, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"one-way", no_argument, NULL, '1'},     {"topic", required_argument, NULL, 't'},
        {"stats", required_argument, NULL, O_STATS}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},     {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "1t:qv", opts, NULL)) != -1) {
        switch (c) {
        case '1':
            one_way = true;
            break;
        case 't':
            if (tool_add_list(&topics, &ntopics, optarg) != 0) {
                tool_err(prog, "out of memory");
                return EXIT_RUNTIME;
            }
            break;
        case O_STATS:
            if (!tool_parse_double(optarg, 0.1, 1e6, &every)) {
                tool_err(prog, "invalid --stats '%s' (seconds, 0.1 or more)", optarg);
                tool_free_list(topics, ntopics);
                return EXIT_USAGE;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
            break;
        case O_HELP:
            usage(stdout);
            tool_free_list(topics, ntopics);
            return EXIT_OK;
        case O_VERSION:
            printf("mcl-bridge %s\n", mcl_version());
            tool_free_list(topics, ntopics);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'mcl-bridge --help'.\n");
            tool_free_list(topics, ntopics);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        tool_err(prog, "give two sides, A and B (see --help)");
        tool_free_list(topics, ntopics);
        return EXIT_USAGE;
    }
    tool_log_to_stderr(prog, verbose);
    tool_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);

    char abuf[1024], bbuf[1024];
    const char *a_in, *a_out, *b_in, *b_out;
    split_side(argv[optind], abuf, sizeof(abuf), &a_in, &a_out);
    split_side(argv[optind + 1], bbuf, sizeof(bbuf), &b_in, &b_out);
    direction d[2];
    memset(d, 0, sizeof(d));
    size_t nd = one_way ? 1 : 2;
    int ec = open_direction(&d[0], 1, a_in, b_out, topics, ntopics);
    if (ec == EXIT_OK && nd == 2)
        ec = open_direction(&d[1], 2, b_in, a_out, topics, ntopics);
    tool_free_list(topics, ntopics);

    for (size_t i = 0; ec == EXIT_OK && i < nd; i++) {
        mcl_err rv = mcl_raw_listener_start(d[i].l);
        if (rv != MCL_OK) {
            tool_err(prog, "cannot start listening on %s: %s", mcl_raw_listener_url(d[i].l),
                     mcl_strerror(rv));
            ec = EXIT_RUNTIME;
        }
    }
    // Outputs that count their listeners (zmq) answer; multicast says MCL_ENOTSUP once.
    for (size_t i = 0; i < nd; i++)
        d[i].counts_subscribers =
            mcl_raw_broadcaster_wait_for_subscribers(d[i].b, 0, 0) != MCL_ENOTSUP;
    int64_t next_stats = every > 0 ? tool_mono_ns() + (int64_t)(every * 1e9) : INT64_MAX;
    while (ec == EXIT_OK && !tool_stop && !atomic_load(&out_of_memory)) {
        // The listener threads forward; this one reports. A signal cuts the sleep short.
        struct timespec tick = {0, 250000000};
        nanosleep(&tick, NULL);
        for (size_t i = 0; i < nd; i++) {
            // An output that counts its listeners (zmq): say when they come and go (the
            // slow-joiner window).
            mcl_broadcaster_stats bs;
            const mcl_connection *oc = mcl_raw_broadcaster_connection(d[i].b);
            if (d[i].counts_subscribers &&
                mcl_raw_broadcaster_wait_for_subscribers(d[i].b, 0, 0) == MCL_OK &&
                mcl_raw_broadcaster_stats(d[i].b, &bs) == MCL_OK &&
                bs.subscribers != d[i].last_subscribers) {
                if (!quiet)
                    fprintf(stderr, "%s: %s: %llu subscriber%s\n", prog,
                            mcl_connection_url(oc), (unsigned long long)bs.subscribers,
                            bs.subscribers == 1 ? "" : "s");
                d[i].last_subscribers = bs.subscribers;
            }
        }
        if (want_stats || tool_mono_ns() >= next_stats) {
            want_stats = 0;
            print_stats(d, nd);
            if (every > 0)
                next_stats = tool_mono_ns() + (int64_t)(every * 1e9);
        }
    }
    for (size_t i = 0; i < nd; i++) // callbacks have ended once this returns
        if (d[i].l != NULL)
            (void)mcl_raw_listener_stop(d[i].l); // MCL_ESTATE when it never started
    if (atomic_load(&out_of_memory)) {
        tool_err(prog, "out of memory");
        ec = EXIT_RUNTIME;
    }
    bool opened = d[0].l != NULL && (nd == 1 || d[1].l != NULL);
    if (opened && !quiet)
        print_stats(d, nd);
    for (size_t i = 0; i < nd; i++) {
        mcl_raw_listener_free(d[i].l);
        if (d[i].b != NULL) {
            mcl_broadcaster_stats bs;
            if (!tool_close_broadcaster(prog, d[i].b, atomic_load(&d[i].failed) > 0, &bs))
                ec = EXIT_RUNTIME;
            mcl_raw_broadcaster_free(d[i].b);
        }
    }
    free(pubs.e);
    return ec;
}
