// SPDX-License-Identifier: BSD-3-Clause
// The receive engine: datagram validation, topic filter, reassembly, per-publisher sequence
// tracking and counters. Pure computation on byte buffers (no sockets), so tests can feed it
// datagrams with injected loss, reordering and duplication.
#ifndef MCL__RX_H
#define MCL__RX_H

#include <mcl/raw.h>

#include "../transport/transport.h"
#include "wire.h"

#include <pthread.h>

typedef struct mcl__rx_cfg {
    size_t maxmsg;     // larger messages are counted as oversize and dropped
    int64_t expire_ns; // partial messages older than this are dropped
    size_t partmem;    // cap on memory held by partial messages
} mcl__rx_cfg;

// What is known of a datagram's arrival (from the transport).
typedef mcl__meta mcl__rx_meta;

struct mcl__rx_pub;
struct mcl__rx_part;
struct mcl__rx_pat;

#define MCL__RX_TOMBS 256

typedef struct mcl__rx {
    mcl__rx_cfg cfg;
    // Topic filter.
    bool all_topics;
    struct mcl__rx_pat *pats;
    size_t npats;
    // Current datagram.
    const uint8_t *dg;
    size_t dg_len;
    size_t off;
    unsigned left; // records left
    mcl__wire_hdr hdr;
    mcl__rx_meta meta;
    struct mcl__rx_pub *cur_pub;
    // The publisher found last (most datagrams come from the one before): begin looks there
    // first. NULL once that publisher is forgotten.
    struct mcl__rx_pub *last_pub;
    // The current datagram's publisher when all its begin had to record was the arrival time
    // (pub_touch): recorded under the lock of the first record's accounting (or when the
    // datagram is used up, or the next begins) instead of under a lock of its own.
    struct mcl__rx_pub *touch;
    struct mcl__rx_part *done; // completed message handed out; freed on the next call
    char topic[MCL_TOPIC_MAX + 1];
    // Publishers (hash chains) and partial messages (hash chains + FIFO by age).
    struct mcl__rx_pub **pub_tab;
    size_t npubs;
    struct mcl__rx_pub *prob_oldest, *prob_newest; // unconfirmed publishers, oldest first
    struct mcl__rx_part **part_tab;
    struct mcl__rx_part *oldest, *newest;
    size_t nparts;
    size_t part_bytes;
    struct {
        uint64_t pub, seq;
        uint32_t shape; // of the message (rx.c shape_of)
        uint8_t kind;   // 0: unused; rx.c TOMB_*
    } tombs[MCL__RX_TOMBS]; // recently dropped or skipped fragmented messages
    size_t tomb_next;
    // Counters; `lock` guards them and the publisher table against readers on other threads.
    pthread_mutex_t lock;
    mcl_listener_stats st;
    // Optional: told of every complete message's (publisher, seq) that is not a duplicate, and
    // whether it is delivered (false: filtered or oversize).
    void (*seq_hook)(void *ctx, uint64_t publisher, uint64_t seq, bool delivered);
    void *seq_ctx;
    // Heartbeats: the listener's `silent` option, the current datagram's heartbeat (when it is
    // one: rx_next delivers nothing from it), and presence events waiting for delivery.
    uint32_t silent_after;
    bool is_hb;
    mcl__wire_hb hb;
    struct {
        uint64_t id;
        bool alive;
    } ev[64];
    unsigned nev;
    int64_t next_presence_check;
    // Sequence gaps are not losses here (set for MCL__TP_PUBFILTER transports: the publisher
    // filters by topic, so a listener sees only some of a publisher's numbers; loss is counted
    // per topic instead, through mcl__rx_add_lost()).
    bool gaps_uncounted;
    // The current datagram was verified with a group key (set by the caller before begin):
    // a jump of its numbers needs no confirmation, and a publisher id may change address.
    bool authed;
    // Compressed messages (MCL__WIRE_F_ZIP): the codec state (made on first use) and the
    // buffer the current one was opened into (at most maxmsg; one above ZBUF_KEEP is freed on
    // the next call, so a burst of large claims holds no memory after it).
    struct mcl__zctx *zctx;
    uint8_t *zbuf;
    size_t zcap;
} mcl__rx;

mcl_err mcl__rx_init(mcl__rx *rx, const mcl__rx_cfg *cfg, const char *const *topics,
                     size_t ntopics);
void mcl__rx_fini(mcl__rx *rx);

// Starts on one datagram (the buffer must stay valid until mcl__rx_next() returns false or the
// next begin). A malformed datagram is counted and MCL_EPROTO/MCL_ENOTSUP returned.
mcl_err mcl__rx_begin(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta);

// As mcl__rx_begin(), and counts the datagram as read (one lock, not two).
mcl_err mcl__rx_begin_counted(mcl__rx *rx, const uint8_t *dg, size_t len,
                              const mcl__rx_meta *meta);

#define MCL__RX_ZBUF_KEEP ((size_t)4 << 20) // a decompression buffer up to this size is kept

bool mcl__rx_next_slow(mcl__rx *rx, mcl_raw_msg *msg);

// The next deliverable message of the current datagram. The message borrows from the datagram
// or from the engine, until the next begin/next/fini call. A datagram used up with nothing
// left to release or record (the usual one after its last record) is answered inline.
static inline bool
mcl__rx_next(mcl__rx *rx, mcl_raw_msg *msg)
{
    if (rx->left == 0 && rx->done == NULL && rx->touch == NULL && rx->zcap <= MCL__RX_ZBUF_KEEP)
        return false;
    return mcl__rx_next_slow(rx, msg);
}

// Drops partial messages older than the expiry time.
void mcl__rx_expire(mcl__rx *rx, int64_t now_mono_ns);

// Whether partial messages wait (only then has mcl__rx_expire anything to do: a caller
// without them need not read the clock for it).
static inline bool
mcl__rx_has_partials(const mcl__rx *rx)
{
    return rx->oldest != NULL;
}

// Drops every partial message (on close) without counting them as expired.
void mcl__rx_clear_partials(mcl__rx *rx);

void mcl__rx_set_kernel_drops(mcl__rx *rx, uint64_t total);
// Counts n messages of publisher as lost (in the totals and in its per-publisher counters).
void mcl__rx_add_lost(mcl__rx *rx, uint64_t publisher, uint64_t n);
// The same, for messages a heartbeat says were sent after the last one received.
void mcl__rx_add_lost_at_end(mcl__rx *rx, uint64_t publisher, uint64_t n);
void mcl__rx_set_rcvbuf(mcl__rx *rx, size_t rcvbuf);
void mcl__rx_count_datagrams(mcl__rx *rx, uint64_t n);
// Counts a datagram that failed authentication (replayed: a valid one seen before or stale).
void mcl__rx_count_auth(mcl__rx *rx, bool replayed);

// Readers, safe from any thread.
void mcl__rx_stats(mcl__rx *rx, mcl_listener_stats *st);
size_t mcl__rx_publishers(mcl__rx *rx, mcl_publisher_stats *out, size_t cap);

// Presence (under the engine's lock): publishers whose silence is due are marked silent
// (an event each); at most every 100 ms.
void mcl__rx_presence_check(mcl__rx *rx, int64_t now_mono_ns);
// The next presence event: true with *alive and a snapshot of the publisher.
bool mcl__rx_presence_event(mcl__rx *rx, mcl_publisher_stats *p, bool *alive);

// True when the topic passes the filter.
bool mcl__rx_match(const mcl__rx *rx, const char *topic, size_t len);

#endif
