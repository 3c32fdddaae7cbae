// SPDX-License-Identifier: BSD-3-Clause
// mcl-bridge: forward messages between two connections (multicast islands, ZeroMQ links), in
// one or both directions, keeping each message's original publisher id and sequence number.
//
// Loop prevention: each direction remembers which message numbers it carried to its output
// side, per publisher (a table of at most `--publishers` publishers, each with a window of its
// last WIN_BITS numbers; the least recently forwarded is forgotten first, and a publisher
// nothing was forwarded of for `--forget` seconds is forgotten). A message heard on a side is
// not forwarded when the other direction itself put that very (publisher, number) on that
// side: its own copy coming back by multicast loopback or around another bridge. Nothing else
// is suppressed: which side a publisher "lives" on is never learned, so a datagram forged on
// one island (carrying the id of a publisher of the other island) can make the bridge hold
// back only the exact numbers the forgery carried, which the forgery's island already has.
// Beyond that, a message that reaches a listener of the bridge twice (by two paths) is
// dropped by the listener itself as a duplicate, so every (publisher, number) crosses each
// direction at most once.
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

enum {
    WIN_BITS = 1024, // message numbers remembered per publisher (as listeners' window)
    WIN_WORDS = WIN_BITS / 64,
    DEF_PUBLISHERS = 4096, // --publishers: publishers remembered per direction
    MAX_PUBLISHERS = 1000000,
};
#define DEF_FORGET_S 30.0 // --forget: seconds after which a publisher is forgotten

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-bridge [OPTION]... A B\n"
            "Forward messages between two connections, in both directions (default) or one.\n"
            "\n"
            "A side is one URL, used to listen and to publish (udp:// groups), or IN,OUT: listen\n"
            "on IN and publish on OUT (ZeroMQ links, which are one-way: a zmq broadcaster binds\n"
            "by default and a zmq listener connects). URL options pass through unchanged.\n"
            "\n"
            "  -1, --one-way        forward A -> B only\n"
            "  -t, --topic T[,T]    only these topics; 'imu/*' matches a prefix (repeatable)\n"
            "      --stats SEC      print statistics every SEC seconds (also on SIGUSR1, and\n"
            "                       always at exit)\n"
            "      --publishers N   publishers remembered per direction for loop prevention\n"
            "                       (default %d; beyond it the least recently forwarded is\n"
            "                       forgotten)\n"
            "      --forget SEC     forget a publisher nothing was forwarded of for SEC seconds\n"
            "                       (default %g)\n"
            "  -q, --quiet          no statistics at exit, no subscriber notices\n"
            "  -v, --verbose        library debug messages on stderr\n"
            "  -h, --help           this text\n"
            "      --version        version\n"
            "\n"
            "Messages keep their publisher id and sequence number: a message that arrives by two\n"
            "paths is a duplicate, dropped by listeners, and multicast listeners beyond the bridge\n"
            "count gaps per original publisher. (zmq listeners count loss per topic on their own\n"
            "link; loss before the bridge shows in the bridge's statistics.) Loops: the bridge\n"
            "does not forward a message it put on that side itself (the same publisher and\n"
            "number, among the last %d numbers of each publisher it forwarded there), so its\n"
            "own copies coming back by multicast loopback or through a second bridge stop\n"
            "there ('loops suppressed'); nothing else is held back. Every message heard is\n"
            "forwarded, suppressed as a loop, or counted as failed. Each direction has its own\n"
            "thread.\n"
            "\n"
            "What it verifies: nothing about who sent a message. Without keys anyone on an island\n"
            "can inject messages, under any publisher id and number, and the bridge forwards them\n"
            "like the real ones; a forged message can make listeners (the bridge's own too) drop\n"
            "the real message of that number as a duplicate, or the real ones while the forger\n"
            "keeps sending (listeners follow a publisher from the address first heard), but it\n"
            "does not make the bridge hold back that publisher's traffic. With keys on the\n"
            "udp:// URLs (key=) the listeners accept only authenticated datagrams, so the bridge\n"
            "forwards only those, signed with the output's own key; a zmq link is\n"
            "authenticated by CURVE (curve_clients=).\n"
            "\n"
            "Example, two multicast islands joined over TCP (hosts 10.0.0.1 and 10.0.0.2):\n"
            "  on 10.0.0.1: mcl-bridge udp://239.255.26.1 zmq+tcp://10.0.0.2:5602,zmq+tcp://10.0.0.1:5601\n"
            "  on 10.0.0.2: mcl-bridge udp://239.255.26.1 zmq+tcp://10.0.0.1:5601,zmq+tcp://10.0.0.2:5602\n"
            "\n" TOOL_HELP_EXIT_WITH("stopped by SIGINT or SIGTERM", ""),
            DEF_PUBLISHERS, DEF_FORGET_S, WIN_BITS);
}

// --- what a direction forwarded: per publisher, the numbers carried ---------------------------
//
// A fixed pool of entries (allocated once: no allocation while forwarding), a chained hash by
// publisher id, and a list from the most to the least recently forwarded. Each table has its
// own lock: the direction that forwards writes it, the other direction reads it.

#define NIL UINT32_MAX

typedef struct fwd_pub {
    uint64_t id;
    uint64_t highest;           // the highest number forwarded
    uint64_t win[WIN_WORDS];    // bit (n % WIN_BITS): n forwarded, for highest - WIN_BITS < n
    int64_t last_ns;            // when a message of it was last forwarded (CLOCK_MONOTONIC)
    uint32_t hnext, prev, next; // hash chain; recency list (prev: more recent)
} fwd_pub;

typedef struct fwd_table {
    pthread_mutex_t lock;
    fwd_pub *e;       // cap entries
    uint32_t *bucket; // nbuckets chain heads
    uint32_t cap, nbuckets, n;
    uint32_t head, tail, free; // most recent, least recent; free list (through next)
    int64_t forget_ns;
    uint64_t evicted, expired; // forgotten for room, forgotten for silence
} fwd_table;

static uint32_t
fwd_hash(const fwd_table *t, uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (uint32_t)(id & (t->nbuckets - 1));
}

static bool
fwd_init(fwd_table *t, uint32_t cap, double forget_s)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    t->cap = cap;
    t->nbuckets = 1;
    while (t->nbuckets < 2 * cap)
        t->nbuckets *= 2;
    t->forget_ns = (int64_t)(forget_s * 1e9);
    t->e = calloc(cap, sizeof(*t->e));
    t->bucket = malloc(t->nbuckets * sizeof(*t->bucket));
    if (t->e == NULL || t->bucket == NULL)
        return false;
    for (uint32_t i = 0; i < t->nbuckets; i++)
        t->bucket[i] = NIL;
    for (uint32_t i = 0; i < cap; i++)
        t->e[i].next = i + 1 < cap ? i + 1 : NIL;
    t->free = 0;
    t->head = t->tail = NIL;
    return true;
}

static void
fwd_fini(fwd_table *t)
{
    free(t->e);
    free(t->bucket);
    pthread_mutex_destroy(&t->lock);
}

static uint32_t
fwd_find(const fwd_table *t, uint64_t id)
{
    for (uint32_t i = t->bucket[fwd_hash(t, id)]; i != NIL; i = t->e[i].hnext)
        if (t->e[i].id == id)
            return i;
    return NIL;
}

static void
list_unlink(fwd_table *t, uint32_t i)
{
    fwd_pub *p = &t->e[i];
    if (p->prev != NIL)
        t->e[p->prev].next = p->next;
    else
        t->head = p->next;
    if (p->next != NIL)
        t->e[p->next].prev = p->prev;
    else
        t->tail = p->prev;
}

static void
list_push(fwd_table *t, uint32_t i)
{
    fwd_pub *p = &t->e[i];
    p->prev = NIL;
    p->next = t->head;
    if (t->head != NIL)
        t->e[t->head].prev = i;
    t->head = i;
    if (t->tail == NIL)
        t->tail = i;
}

// Forgets entry i (unlinks it from its chain and the recency list, returns it to the pool).
static void
fwd_drop(fwd_table *t, uint32_t i)
{
    uint32_t *pp = &t->bucket[fwd_hash(t, t->e[i].id)];
    while (*pp != i)
        pp = &t->e[*pp].hnext;
    *pp = t->e[i].hnext;
    list_unlink(t, i);
    t->e[i].next = t->free;
    t->free = i;
    t->n--;
}

// Forgets the publishers nothing was forwarded of since before now - forget. Lock held.
static void
fwd_expire_locked(fwd_table *t, int64_t now)
{
    while (t->tail != NIL && now - t->e[t->tail].last_ns > t->forget_ns) {
        fwd_drop(t, t->tail);
        t->expired++;
    }
}

static void
fwd_expire(fwd_table *t, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    fwd_expire_locked(t, now);
    pthread_mutex_unlock(&t->lock);
}

static inline void
win_set(fwd_pub *p, uint64_t n)
{
    p->win[(n / 64) % WIN_WORDS] |= (uint64_t)1 << (n % 64);
}

static inline bool
win_get(const fwd_pub *p, uint64_t n)
{
    return (p->win[(n / 64) % WIN_WORDS] >> (n % 64)) & 1u;
}

// Records that message `seq` of publisher `id` is being forwarded.
static void
fwd_note(fwd_table *t, uint64_t id, uint64_t seq, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    fwd_expire_locked(t, now);
    uint32_t i = fwd_find(t, id);
    if (i == NIL) {
        if (t->free == NIL) { // full: the least recently forwarded goes
            fwd_drop(t, t->tail);
            t->evicted++;
        }
        i = t->free;
        t->free = t->e[i].next;
        fwd_pub *p = &t->e[i];
        memset(p->win, 0, sizeof(p->win));
        p->id = id;
        p->highest = seq;
        uint32_t *b = &t->bucket[fwd_hash(t, id)];
        p->hnext = *b;
        *b = i;
        t->n++;
    } else {
        list_unlink(t, i);
    }
    fwd_pub *p = &t->e[i];
    if (seq > p->highest) {
        if (seq - p->highest >= WIN_BITS) {
            memset(p->win, 0, sizeof(p->win));
        } else {
            // (counted, not compared: seq may be UINT64_MAX)
            for (uint64_t k = 1, n = seq - p->highest; k <= n; k++) {
                uint64_t s = p->highest + k;
                p->win[(s / 64) % WIN_WORDS] &= ~((uint64_t)1 << (s % 64));
            }
        }
        p->highest = seq;
    } else if (p->highest - seq >= WIN_BITS) {
        // Far behind: the window starts again here, so one datagram with a number far ahead
        // (a forgery, or a publisher's restart) does not leave the genuine numbers that
        // follow unremembered, and their copies unrecognised.
        memset(p->win, 0, sizeof(p->win));
        p->highest = seq;
    }
    win_set(p, seq);
    p->last_ns = now;
    list_push(t, i);
    pthread_mutex_unlock(&t->lock);
}

// Whether message `seq` of publisher `id` was forwarded (and is still remembered).
static bool
fwd_sent(fwd_table *t, uint64_t id, uint64_t seq, int64_t now)
{
    pthread_mutex_lock(&t->lock);
    uint32_t i = fwd_find(t, id);
    bool sent = false;
    if (i != NIL) {
        const fwd_pub *p = &t->e[i];
        sent = now - p->last_ns <= t->forget_ns && seq <= p->highest &&
               p->highest - seq < WIN_BITS && win_get(p, seq);
    }
    pthread_mutex_unlock(&t->lock);
    return sent;
}

// --- the bridge -----------------------------------------------------------------------------

typedef struct direction {
    int from;                  // 1 = A, 2 = B
    mcl_raw_listener *l;       // listens on the `from` side
    mcl_raw_broadcaster *b;    // publishes on the other side
    fwd_table sent;            // what b put on the other side (two-way bridges only)
    fwd_table *back;           // what the other direction put on the `from` side (or NULL)
    atomic_uint_fast64_t forwarded, looped, failed, bytes; // read by the main thread
    bool counts_subscribers;   // its output counts listeners (zmq); main thread only
    uint64_t last_subscribers; // main thread only
    mcl_err last_err;          // its listener thread only
} direction;

static void
on_message(const mcl_raw_msg *m, void *user)
{
    direction *d = user;
    int64_t now = tool_mono_ns();
    if (d->back != NULL && fwd_sent(d->back, m->publisher, m->seq, now)) {
        atomic_fetch_add(&d->looped, 1); // the other direction put this very message here
        return;
    }
    // Noted before it leaves: its copy may come back (multicast loopback) before forward()
    // returns, to the other direction's thread. (One way, nothing is heard on that side.)
    if (d->back != NULL)
        fwd_note(&d->sent, m->publisher, m->seq, now);
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
print_stats(direction *d, size_t nd)
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
    uint32_t n[2] = {0, 0};
    uint64_t evicted = 0, expired = 0;
    int64_t now = tool_mono_ns();
    for (size_t i = 0; i < nd; i++) {
        fwd_table *t = &d[i].sent;
        pthread_mutex_lock(&t->lock);
        fwd_expire_locked(t, now);
        n[i] = t->n;
        evicted += t->evicted;
        expired += t->expired;
        pthread_mutex_unlock(&t->lock);
    }
    fprintf(stderr,
            "%s: publishers remembered: A -> B %u, B -> A %u (at most %u each, forgotten after "
            "%g s); forgotten %llu for room, %llu silent\n",
            prog, n[0], n[1], d[0].sent.cap, (double)d[0].sent.forget_ns / 1e9,
            (unsigned long long)evicted, (unsigned long long)expired);
}

// Splits "IN,OUT" (or "URL") into its listen and publish URLs (pointers into buf). False when
// it does not fit buf (never cut: options such as key files must pass through whole).
static bool
split_side(const char *arg, char *buf, size_t len, const char **in, const char **out)
{
    if (strlen(arg) >= len)
        return false;
    snprintf(buf, len, "%s", arg);
    char *comma = strchr(buf, ',');
    *in = buf;
    *out = buf;
    if (comma != NULL) {
        *comma = '\0';
        *out = comma + 1;
    }
    return true;
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
    if (ec == EXIT_OK && (rv = mcl_raw_broadcaster_open(&d->b, co, NULL)) != MCL_OK)
        ec = tool_open_error(prog, "cannot publish on", mcl_connection_url(co), rv);
    if (ec == EXIT_OK && (rv = mcl_raw_listener_open(&d->l, ci, (const char *const *)topics,
                                                     ntopics)) != MCL_OK)
        ec = tool_open_error(prog, "cannot listen on", mcl_connection_url(ci), rv);
    mcl_listener_stats lst;
    if (ec == EXIT_OK && mcl_raw_listener_stats(d->l, &lst) == MCL_OK)
        tool_check_rcvbuf(prog, ci, lst.rcvbuf);
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
    double every = 0, forget_s = DEF_FORGET_S;
    uint64_t max_pubs = DEF_PUBLISHERS;
    char **topics = NULL;
    size_t ntopics = 0;
    enum { O_STATS = 256, O_HELP, O_VERSION, O_PUBLISHERS, O_FORGET };
    static const struct option opts[] = {
        {"one-way", no_argument, NULL, '1'},     {"topic", required_argument, NULL, 't'},
        {"stats", required_argument, NULL, O_STATS}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},     {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {"publishers", required_argument, NULL, O_PUBLISHERS},
        {"forget", required_argument, NULL, O_FORGET}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "1t:qv", opts)) != -1) {
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
        case O_PUBLISHERS:
            if (!tool_parse_u64(optarg, MAX_PUBLISHERS, &max_pubs) || max_pubs == 0) {
                tool_err(prog, "invalid --publishers '%s' (1 to %d)", optarg, MAX_PUBLISHERS);
                tool_free_list(topics, ntopics);
                return EXIT_USAGE;
            }
            break;
        case O_FORGET:
            if (!tool_parse_double(optarg, 0.1, 1e6, &forget_s)) {
                tool_err(prog, "invalid --forget '%s' (seconds, 0.1 or more)", optarg);
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
            tool_version(prog);
            tool_free_list(topics, ntopics);
            return EXIT_OK;
        default:
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

    char abuf[4096], bbuf[4096];
    const char *a_in, *a_out, *b_in, *b_out;
    if (!split_side(argv[optind], abuf, sizeof(abuf), &a_in, &a_out) ||
        !split_side(argv[optind + 1], bbuf, sizeof(bbuf), &b_in, &b_out)) {
        tool_err(prog, "a side longer than %zu bytes", sizeof(abuf) - 1);
        tool_free_list(topics, ntopics);
        return EXIT_USAGE;
    }
    direction d[2];
    memset(d, 0, sizeof(d));
    size_t nd = one_way ? 1 : 2;
    int ec = EXIT_OK;
    for (size_t i = 0; i < nd; i++)
        if (!fwd_init(&d[i].sent, (uint32_t)max_pubs, forget_s))
            ec = EXIT_RUNTIME;
    if (ec != EXIT_OK)
        tool_err(prog, "out of memory for %llu publishers", (unsigned long long)max_pubs);
    if (nd == 2) {
        d[0].back = &d[1].sent;
        d[1].back = &d[0].sent;
    }
    if (ec == EXIT_OK)
        ec = open_direction(&d[0], 1, a_in, b_out, topics, ntopics);
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
    while (ec == EXIT_OK && !tool_stop) {
        // The listener threads forward; this one reports. A signal cuts the sleep short.
        struct timespec tick = {0, 250000000};
        nanosleep(&tick, NULL);
        for (size_t i = 0; i < nd; i++) {
            fwd_expire(&d[i].sent, tool_mono_ns()); // (also while nothing is forwarded)
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
    for (size_t i = 0; i < nd; i++)
        fwd_fini(&d[i].sent);
    return ec;
}
