// SPDX-License-Identifier: BSD-3-Clause
// Per-topic statistics of a raw listener (docs/topics.md): counters per topic and per
// (publisher, topic), one-second buckets for the windowed figures, bounded tables. Internal.
//
// Threads: the update functions (count, dgram, dgram_end, lost, publish) run on the one
// thread that receives for the listener at a time; they look rows up and update their `live`
// counters without the lock (only that thread writes those), and take it to create or evict
// rows and to publish (copy live counters to the ones readers see). The readers (rows,
// untracked) and set_options take the lock and may run on any thread.
#ifndef MCL_RAW_TOPICS_H
#define MCL_RAW_TOPICS_H

#include <mcl/raw.h>

#include "../core/internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct mcl__topics mcl__topics;

// The layout, here so that the short path of mcl__topics_count() is inlined where messages
// are delivered (listener.c): no call, no saved registers for the usual message.
enum {
    MCL__TOPICS_NB = 17,            // buckets: 16 whole seconds of history plus the current one
    MCL__TOPICS_TYPE_SZ = 64,       // mcl_topic_stats.type
    MCL__TOPICS_PEEK_EVERY = 64,    // a topic's type is looked at on its first message, every 64th
    MCL__TOPICS_PUBLISH_EVERY = 64, // slow-path messages counted at most before a publish
};
#define MCL__TOPICS_NS 1000000000LL

typedef struct mcl__tp_bucket {
    uint32_t n;    // messages in this second
    uint32_t gaps; // inter-arrival times ending in this second
    uint64_t bytes;
    uint64_t gsum; // their sum (ns)
    double gsq;    // and sum of squares (ns^2)
} mcl__tp_bucket;

// What a topic row and a pair row both count.
typedef struct mcl__tp_core {
    uint64_t messages, bytes, size_min, size_max;
    uint64_t lost, dups, reordered;
    int64_t first_real, last_real, first_mono, last_mono;
    int64_t sec;     // the second (monotonic ns / 1e9) that b[cur] counts
    int64_t sec_end; // its end: a later message moves the ring on
    unsigned cur;
    bool typed; // type[] holds what the first look found
    bool mixed; // a later look found something else
    uint8_t type_len;
    char type[MCL__TOPICS_TYPE_SZ];
    mcl__tp_bucket b[MCL__TOPICS_NB];
} mcl__tp_core;

// A row's counters twice: `live`, which the receiving thread updates without any lock, and
// `shown`, a copy of it that readers take under the lock. The receiving thread publishes
// (copies live to shown for every row changed since) whenever it has delivered everything it
// had read: one lock per read, not per message.
typedef struct mcl__tp_stats {
    mcl__tp_core live;
    mcl__tp_core shown;
    struct mcl__tp_stats *dnext; // the list of rows changed since the last publish
    bool dirty;
    // Changed since the last publish other than by mcl__topics_count()'s short path (which
    // changes the fixed fields and b[cur] only): the publish copies the whole row, else only
    // those.
    bool whole;
} mcl__tp_stats;

struct mcl__tp_prow;

typedef struct mcl__tp_trow {
    struct mcl__tp_trow *next; // hash chain
    uint64_t hash;
    struct mcl__tp_prow *pairs;     // this topic's pair rows (doubly linked through tnext/tprev)
    struct mcl__tp_prow *last_pair; // the pair of the last message (most topics have one publisher)
    uint32_t npairs;
    // Every message of this topic so far went to its one pair row, which therefore counts
    // for the topic too (s is unused): one row updated per message instead of two. Ends, with
    // the pair's counters copied into s, when a second pair, an untracked pair or the pair's
    // eviction makes the two differ.
    bool solo;
    mcl__tp_stats s;
    size_t tl;
    char name[]; // tl + 1 bytes
} mcl__tp_trow;

typedef struct mcl__tp_prow {
    struct mcl__tp_prow *next; // hash chain
    struct mcl__tp_prow *tnext, *tprev;
    mcl__tp_trow *t;
    uint64_t publisher;
    uint64_t highest; // the highest sequence number delivered
    mcl__tp_stats s;
} mcl__tp_prow;

struct mcl__topics {
    // Guards the tables' structure (rows created and evicted by the receiving thread), the
    // `shown` counters, the options and `untracked` against readers. The receiving thread
    // reads the structure and writes `live` counters without it (only that thread writes them).
    pthread_mutex_t lock;
    int64_t window_ns;
    size_t max_topics, max_pairs;
    mcl__tp_trow **ttab;
    size_t tbuckets, ntopics; // tbuckets: a power of two
    mcl__tp_prow **ptab;
    size_t pbuckets, npairs;
    int64_t tscan_after; // a full topic table finds no row to evict before this (mono ns)
    int64_t pscan_after;
    uint64_t untracked;
    // The receiving thread's alone.
    int64_t live_window_ns;   // window_ns as of the last publish
    mcl__tp_trow *last_topic; // the row of the last message
    mcl__tp_prow *fast;       // the pair of the last message when its topic is solo: the next
                              // message of that pair takes the short path (count)
    mcl__tp_stats *dirty;     // rows changed since the last publish
    unsigned pending;         // messages since then
    mcl__tp_prow *dg_pair;    // mcl__topics_dgram(): the pair of the datagram being read
    uint64_t dg_dups;         // the duplicate total when it began
};

// A table with the default options; NULL when out of memory.
mcl__topics *mcl__topics_new(void);
// NULL-safe.
void mcl__topics_free(mcl__topics *t);

// Makes everything counted so far visible to readers (one lock; nothing when nothing changed).
void mcl__topics_publish(mcl__topics *t);
// mcl__topics_count() for every message its short path does not take.
void mcl__topics_count_slow(mcl__topics *t, const mcl_raw_msg *m, bool publish);

// Counts one delivered message (its recv_mono_ns places it in the one-second buckets). What
// is counted reaches readers at a publish: when `publish` is true (the caller has delivered
// everything it had read, which happens at least once per read of up to 16 datagrams), and
// on the slow path every 64 messages.
static inline void
mcl__topics_count(mcl__topics *t, const mcl_raw_msg *m, bool publish)
{
#ifdef MCL__TOPICS_OFF // a build for measuring what the statistics cost (docs/topics.md)
    (void)t;
    (void)m;
    (void)publish;
    return;
#endif
    // The short path, for the usual case: the next message of the same publisher on the same
    // topic (with no other publisher), in order, in the same second, not due for a look at
    // its type. The same as core_add() there, and the row marked changed (after a publish,
    // e.g. a round trip's every message, it was not).
    mcl__tp_prow *p = t->fast;
    if (MCL__LIKELY(p != NULL)) {
        mcl__tp_core *c = &p->s.live;
        const mcl__tp_trow *r = p->t;
        int64_t ts = m->recv_mono_ns;
        size_t len = m->len;
        if (MCL__LIKELY(m->publisher == p->publisher && m->topic_len == r->tl &&
                        ts >= c->last_mono && ts < c->sec_end && m->seq > p->highest &&
                        (c->messages & (MCL__TOPICS_PEEK_EVERY - 1)) != 0 &&
                        mcl__same_short(m->topic, r->name, r->tl))) {
            if (!p->s.dirty) { // (as mark() in topics.c, for a change the publish copies in part)
                p->s.dirty = true;
                p->s.whole = false;
                p->s.dnext = t->dirty;
                t->dirty = &p->s;
            }
            // (0 <= dt < 1 s: an inter-arrival time within any window)
            int64_t dt = ts - c->last_mono;
            mcl__tp_bucket *b = &c->b[c->cur];
            b->gaps++;
            b->gsum += (uint64_t)dt;
            b->gsq += (double)dt * (double)dt;
            b->n++;
            b->bytes += len;
            c->messages++;
            c->bytes += len;
            if (len < c->size_min)
                c->size_min = len;
            if (len > c->size_max)
                c->size_max = len;
            c->last_mono = ts;
            c->last_real = m->recv_realtime_ns;
            p->highest = m->seq;
            if (MCL__UNLIKELY(publish))
                mcl__topics_publish(t);
            return;
        }
    }
    mcl__topics_count_slow(t, m, publish);
}

// MCL__TP_PUBFILTER transports, at the start of a datagram of one (publisher, topic):
// `lost` messages were found missing on that topic (tseq), and `dups_total` is the listener's
// duplicate total now. mcl__topics_dgram_end(), when the datagram is used up, attributes the
// duplicates counted meanwhile to that (publisher, topic), and publishes when `publish` is
// true (nothing read is left to deliver). dgram_end is cheap after a datagram that had no
// dgram call.
void mcl__topics_dgram(mcl__topics *t, uint64_t publisher, const char *topic, size_t tl,
                       uint64_t lost, uint64_t dups_total);
void mcl__topics_dgram_end_slow(mcl__topics *t, uint64_t dups_total, bool publish);
static inline void
mcl__topics_dgram_end(mcl__topics *t, uint64_t dups_total, bool publish)
{
    // The usual datagram: no duplicate among its records, more read behind it (no call).
    if (MCL__LIKELY(!publish && (t->dg_pair == NULL || dups_total <= t->dg_dups))) {
        t->dg_pair = NULL;
        return;
    }
    mcl__topics_dgram_end_slow(t, dups_total, publish);
}
// n messages of (publisher, topic) found missing another way (e.g. a heartbeat's topic
// counts at the end of a stream); nothing when that pair has no row.
void mcl__topics_lost(mcl__topics *t, uint64_t publisher, const char *topic, size_t tl, uint64_t n);

// mcl_raw_listener_topic_options(): 0 in a field keeps its default; MCL_EINVAL for a window
// outside 1..16 s or a cap above 1 << 20.
mcl_err mcl__topics_set_options(mcl__topics *t, const mcl_topic_stats_options *o);

// Per-topic rows (pairs false; `topic` ignored) or pair rows (of `topic`, NULL: of every
// topic), as of the monotonic time now_ns, sorted; returns how many rows match.
size_t mcl__topics_rows(mcl__topics *t, int64_t now_ns, bool pairs, const char *topic,
                        mcl_topic_stats *out, size_t cap);

uint64_t mcl__topics_untracked(mcl__topics *t);

// Find the type name of an mcl typed message: if @p p (n bytes) is a msgpack map (fixmap,
// map16, map32) with a "name" key (among its first 32 entries) whose value is a str without
// a NUL byte, copy
// that string (truncated to outsz - 1 bytes, NUL-terminated) into @p out and return the
// bytes copied; otherwise set out to "" (when outsz > 0) and return 0. Never reads outside p[0..n), never recurses (values are skipped with a counter of objects
// still to skip), and takes at most a fixed number of steps whatever n is.
size_t mcl__type_peek(const void *p, size_t n, char *out, size_t outsz);

#endif
