// SPDX-License-Identifier: BSD-3-Clause
// Receive engine. See rx.h. Everything here runs on the receiving thread except the readers
// (mcl__rx_stats, mcl__rx_publishers), which take rx->lock; the receiving thread takes it
// around every update of counters or of the publisher table.
#include "rx.h"

#include "../core/internal.h"
#include "../core/zcodec.h"

#include <string.h>

enum {
    WIN_BITS = 1024,      // sequence window per publisher for duplicates and reordering
    WIN_WORDS = WIN_BITS / 64,
    PUB_BUCKETS = 256,
    PUB_MAX = 4096,       // publishers tracked; the least recently heard is forgotten beyond
    PART_BUCKETS = 256,
    PART_MAX = 4096,      // partial messages held at once
};
#define ZBUF_KEEP MCL__RX_ZBUF_KEEP
// Forgery-proof tracking (docs/security.md):
// - a message more than the window ahead of the highest number is delivered but does not move
//   the window until a second one confirms it (a number above it, within the window of it):
//   one forged datagram cannot make later genuine messages look old;
// - a confirmed jump counts as loss at most what the publisher could have sent meanwhile, at
//   MAX_RATE messages per ns since it was last heard; beyond that it is counted as a resync;
// - a publisher id is bound to the address its first datagram came from: datagrams of the same
//   id from elsewhere are suspect and dropped, until the bound address has been quiet for
//   REBIND_NS (a publisher that really moved is followed then);
// - the table keeps confirmed publishers before unconfirmed ones when it is full.
#define MAX_RATE_PER_US 10u
// Outliers remembered per publisher, and for how long: while the list is full, a further one
// is dropped (suspect), so none is ever forgotten and then delivered again within OUTLIER_NS.
#define OUTLIERS 4
#define OUTLIER_NS ((int64_t)1000000000)
#define REBIND_NS ((int64_t)2000000000)

struct mcl__rx_pat {
    char *s;
    size_t len;
    bool prefix;
};

struct mcl__rx_pub {
    struct mcl__rx_pub *next;
    struct mcl__rx_pub *pnewer, *polder; // the unconfirmed, oldest first (rx->prob_*)
    uint64_t id;
    bool started;
    bool confirmed; // a second message in sequence came: not evicted before unconfirmed ones
    // Messages delivered beyond the window, waiting for a confirmation (OUTLIERS at most,
    // the oldest replaced); each is marked received once the window reaches it.
    uint64_t outl[OUTLIERS];
    int64_t outl_ns[OUTLIERS]; // when each came
    unsigned noutl;
    uint64_t highest;
    int64_t highest_mono; // when the window last moved
    uint64_t first;
    uint64_t win[WIN_WORDS];
    mcl_publisher_stats st;
};

// Queues a presence event (under rx->lock); beyond the queue's room it is dropped.
static void
presence_event(mcl__rx *rx, uint64_t id, bool alive)
{
    if (rx->nev < sizeof(rx->ev) / sizeof(rx->ev[0])) {
        rx->ev[rx->nev].id = id;
        rx->ev[rx->nev].alive = alive;
        rx->nev++;
    }
}

struct mcl__rx_part {
    struct mcl__rx_part *hnext;
    struct mcl__rx_part *older, *newer;
    uint64_t pub, seq;
    uint32_t total, count, fsize, got;
    int64_t created_ns;
    uint16_t topic_len;
    char *topic;
    uint64_t *bits;
    uint8_t *buf;
    size_t mem; // bytes accounted against partmem
    bool zip;   // its datagrams say it is compressed (part of its shape)
};

static inline size_t
pub_hash(uint64_t id)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)id;
}

static inline size_t
part_hash(uint64_t pub, uint64_t seq)
{
    return pub_hash(pub ^ (seq * 0x9e3779b97f4a7c15ULL));
}

bool
mcl__rx_match(const mcl__rx *rx, const char *topic, size_t len)
{
    if (rx->all_topics)
        return true;
    for (size_t i = 0; i < rx->npats; i++) {
        const struct mcl__rx_pat *p = &rx->pats[i];
        if (p->prefix) {
            if (len >= p->len && memcmp(topic, p->s, p->len) == 0)
                return true;
        } else if (len == p->len && memcmp(topic, p->s, len) == 0) {
            return true;
        }
    }
    return false;
}

mcl_err
mcl__rx_init(mcl__rx *rx, const mcl__rx_cfg *cfg, const char *const *topics, size_t ntopics)
{
    memset(rx, 0, sizeof(*rx));
    rx->cfg = *cfg;
    if (pthread_mutex_init(&rx->lock, NULL) != 0)
        return MCL_ESYS;
    rx->pub_tab = mcl__zalloc(PUB_BUCKETS * sizeof(*rx->pub_tab));
    rx->part_tab = mcl__zalloc(PART_BUCKETS * sizeof(*rx->part_tab));
    if (rx->pub_tab == NULL || rx->part_tab == NULL)
        goto nomem;
    rx->all_topics = topics == NULL || ntopics == 0;
    if (!rx->all_topics) {
        rx->pats = mcl__zalloc(ntopics * sizeof(*rx->pats));
        if (rx->pats == NULL)
            goto nomem;
        for (size_t i = 0; i < ntopics; i++) {
            const char *t = topics[i];
            size_t n = strlen(t);
            bool prefix = n > 0 && t[n - 1] == '*';
            if (prefix)
                n--;
            if (prefix && n == 0)
                rx->all_topics = true;
            rx->pats[i].s = mcl__alloc(n + 1);
            if (rx->pats[i].s == NULL)
                goto nomem;
            memcpy(rx->pats[i].s, t, n);
            rx->pats[i].s[n] = '\0';
            rx->pats[i].len = n;
            rx->pats[i].prefix = prefix;
            rx->npats = i + 1;
        }
    }
    return MCL_OK;
nomem:
    mcl__rx_fini(rx);
    return MCL_ENOMEM;
}

static void
part_free(struct mcl__rx_part *p)
{
    if (p == NULL)
        return;
    mcl__free(p->topic);
    mcl__free(p->bits);
    mcl__free(p->buf);
    mcl__free(p);
}

// Unlinks a partial from the hash chain and the age list, and uncounts its memory.
static void
part_unlink(mcl__rx *rx, struct mcl__rx_part *p)
{
    struct mcl__rx_part **pp = &rx->part_tab[part_hash(p->pub, p->seq) % PART_BUCKETS];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    if (p->older)
        p->older->newer = p->newer;
    else
        rx->oldest = p->newer;
    if (p->newer)
        p->newer->older = p->older;
    else
        rx->newest = p->older;
    rx->nparts--;
    rx->part_bytes -= p->mem;
    pthread_mutex_lock(&rx->lock);
    rx->st.partial_count = rx->nparts;
    rx->st.partial_bytes = rx->part_bytes;
    pthread_mutex_unlock(&rx->lock);
}

void
mcl__rx_clear_partials(mcl__rx *rx)
{
    while (rx->oldest != NULL) {
        struct mcl__rx_part *p = rx->oldest;
        part_unlink(rx, p);
        part_free(p);
    }
    part_free(rx->done);
    rx->done = NULL;
}

void
mcl__rx_fini(mcl__rx *rx)
{
    if (rx->part_tab != NULL)
        mcl__rx_clear_partials(rx);
    mcl__free(rx->part_tab);
    if (rx->pub_tab != NULL) {
        for (size_t i = 0; i < PUB_BUCKETS; i++) {
            struct mcl__rx_pub *p = rx->pub_tab[i];
            while (p != NULL) {
                struct mcl__rx_pub *n = p->next;
                mcl__free(p);
                p = n;
            }
        }
    }
    mcl__free(rx->pub_tab);
    mcl__zctx_free(rx->zctx);
    mcl__free(rx->zbuf);
    for (size_t i = 0; i < rx->npats; i++)
        mcl__free(rx->pats[i].s);
    mcl__free(rx->pats);
    pthread_mutex_destroy(&rx->lock);
    memset(rx, 0, sizeof(*rx));
}

// --- publishers ------------------------------------------------------------------------------

static void
prob_unlink(mcl__rx *rx, struct mcl__rx_pub *p)
{
    if (p->polder)
        p->polder->pnewer = p->pnewer;
    else if (rx->prob_oldest == p)
        rx->prob_oldest = p->pnewer;
    if (p->pnewer)
        p->pnewer->polder = p->polder;
    else if (rx->prob_newest == p)
        rx->prob_newest = p->polder;
    p->pnewer = p->polder = NULL;
}

static void pub_touch(mcl__rx *rx, struct mcl__rx_pub *p);

// Records the arrival begin deferred (rx->touch), under rx->lock.
static inline void
touch_flush_locked(mcl__rx *rx)
{
    if (rx->touch != NULL) {
        pub_touch(rx, rx->touch);
        rx->touch = NULL;
    }
}

static void
touch_flush(mcl__rx *rx)
{
    if (rx->touch != NULL) {
        pthread_mutex_lock(&rx->lock);
        touch_flush_locked(rx);
        pthread_mutex_unlock(&rx->lock);
    }
}

// Makes room: the oldest unconfirmed publisher goes first (a flood of forged ids, each heard
// once, only ever replaces its own kind), else the least recently heard.
static void
pub_forget_one(mcl__rx *rx)
{
    struct mcl__rx_pub *victim = rx->prob_oldest;
    if (victim == NULL) {
        for (size_t i = 0; i < PUB_BUCKETS; i++)
            for (struct mcl__rx_pub *p = rx->pub_tab[i]; p != NULL; p = p->next)
                if (victim == NULL || p->st.last_mono_ns < victim->st.last_mono_ns)
                    victim = p;
    }
    if (victim == NULL)
        return;
    if (victim == rx->touch)
        touch_flush_locked(rx);
    if (victim == rx->last_pub)
        rx->last_pub = NULL;
    struct mcl__rx_pub **pp = &rx->pub_tab[pub_hash(victim->id) % PUB_BUCKETS];
    while (*pp != victim)
        pp = &(*pp)->next;
    *pp = victim->next;
    if (!victim->confirmed)
        prob_unlink(rx, victim);
    mcl__free(victim);
    rx->npubs--;
    rx->st.publishers = rx->npubs;
}

static void
pub_confirm(mcl__rx *rx, struct mcl__rx_pub *p)
{
    if (!p->confirmed) {
        p->confirmed = true;
        prob_unlink(rx, p);
    }
}

// Finds or creates the publisher of the current datagram. Called with rx->lock held.
// NULL only when out of memory.
static struct mcl__rx_pub *
pub_get(mcl__rx *rx, uint64_t id)
{
    if (rx->last_pub != NULL && rx->last_pub->id == id)
        return rx->last_pub;
    struct mcl__rx_pub **head = &rx->pub_tab[pub_hash(id) % PUB_BUCKETS];
    for (struct mcl__rx_pub *p = *head; p != NULL; p = p->next)
        if (p->id == id)
            return rx->last_pub = p;
    if (rx->npubs >= PUB_MAX)
        pub_forget_one(rx);
    struct mcl__rx_pub *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->id = id;
    p->st.publisher = id;
    p->next = *head;
    *head = p;
    p->polder = rx->prob_newest;
    if (rx->prob_newest)
        rx->prob_newest->pnewer = p;
    else
        rx->prob_oldest = p;
    rx->prob_newest = p;
    rx->npubs++;
    rx->st.publishers = rx->npubs;
    return rx->last_pub = p;
}

static inline bool
win_get(const struct mcl__rx_pub *p, uint64_t seq)
{
    return (p->win[(seq / 64) % WIN_WORDS] >> (seq % 64)) & 1u;
}

static inline void
win_set(struct mcl__rx_pub *p, uint64_t seq)
{
    p->win[(seq / 64) % WIN_WORDS] |= (uint64_t)1 << (seq % 64);
}

static inline void
win_clear(struct mcl__rx_pub *p, uint64_t seq)
{
    p->win[(seq / 64) % WIN_WORDS] &= ~((uint64_t)1 << (seq % 64));
}

// Whether the message seq of p was already received (or is too old to tell).
static bool
pub_seen(const struct mcl__rx_pub *p, uint64_t seq)
{
    if (!p->started || seq > p->highest)
        return false;
    uint64_t back = p->highest - seq;
    if (back >= WIN_BITS)
        return true;
    return win_get(p, seq);
}

enum { SEQ_NEW, SEQ_LATE, SEQ_DUP, SEQ_SUSPECT };

// The window moved: outliers it reached are marked received (they were delivered), and
// leave the list, as do those it passed by (older than the window: duplicates from now on).
static void
outliers_settle(struct mcl__rx_pub *p)
{
    unsigned n = 0;
    for (unsigned k = 0; k < p->noutl; k++) {
        uint64_t o = p->outl[k];
        if (o > p->highest) { // still beyond, or within the window ahead of the highest
            p->outl_ns[n] = p->outl_ns[k]; // (stays: a later move marks it)
            p->outl[n++] = o;
        } else if (p->highest - o < WIN_BITS) {
            win_set(p, o);
        }
    }
    p->noutl = n;
}

static void
pub_restart(struct mcl__rx_pub *p, uint64_t seq, int64_t now)
{
    memset(p->win, 0, sizeof(p->win));
    p->started = true;
    p->first = p->highest = seq;
    p->highest_mono = now;
    p->st.first_seq = p->st.last_seq = seq;
    win_set(p, seq);
}

// Records the arrival of a complete message. Called with rx->lock held. `undelivered` says
// the message is known not to have been delivered before (a reassembly just completed), so
// being older than the window does not make it a duplicate.
// Moves p's window to `to`, more than the window ahead (a verified or confirmed jump): the
// numbers skipped are lost; `bounded`: at most what the publisher can have sent since its
// window last moved (MAX_RATE_PER_US), the rest a resync (logged). Called with rx->lock held.
static void
pub_jump(mcl__rx *rx, struct mcl__rx_pub *p, uint64_t to, bool bounded)
{
    uint64_t gap = to - p->highest - 1, l = gap;
    if (bounded) {
        int64_t quiet = rx->meta.mono_ns - p->highest_mono;
        uint64_t could = quiet > 0 ? (uint64_t)quiet / 1000 * MAX_RATE_PER_US : 0;
        if (could < WIN_BITS)
            could = WIN_BITS;
        if (gap > could) {
            l = could;
            mcl__log(MCL_LOG_INFO, "listener",
                     "publisher %016llx jumped from seq %llu to %llu, more than it can have "
                     "sent: %llu counted as lost, tracking resumes there",
                     (unsigned long long)p->id, (unsigned long long)p->highest,
                     (unsigned long long)to, (unsigned long long)could);
        }
    }
    if (!rx->gaps_uncounted) {
        p->st.lost += l;
        rx->st.lost += l;
    }
    memset(p->win, 0, sizeof(p->win));
    p->highest = to;
    p->highest_mono = rx->meta.mono_ns;
    p->st.last_seq = to;
    win_set(p, to);
    outliers_settle(p);
}

static int
pub_mark(mcl__rx *rx, struct mcl__rx_pub *p, uint64_t seq, bool undelivered)
{
    // The usual case first: the next number, no outlier waiting. What the general path below
    // does for it (no gap, the window's next bit set, the publisher confirmed).
    if (MCL__LIKELY(p->started && p->noutl == 0 && p->highest != UINT64_MAX &&
                    seq == p->highest + 1)) {
        pub_confirm(rx, p);
        p->highest = seq;
        p->highest_mono = rx->meta.mono_ns;
        p->st.last_seq = seq;
        win_set(p, seq);
        return SEQ_NEW;
    }
    if (!p->started) {
        pub_restart(p, seq, rx->meta.mono_ns);
        return SEQ_NEW;
    }
    if (seq > p->highest && seq - p->highest > WIN_BITS && rx->authed) {
        pub_jump(rx, p, seq, false); // verified: the publisher's own numbers
        return SEQ_NEW;
    }
    if (seq > p->highest && seq - p->highest > WIN_BITS) {
        // Beyond the window: delivered, but the window moves only once a second message
        // confirms the jump.
        unsigned k = 0;
        for (; k < p->noutl; k++) {
            if (seq == p->outl[k])
                return SEQ_DUP;
            if (seq > p->outl[k] && seq - p->outl[k] <= WIN_BITS)
                break;
        }
        if (k == p->noutl) {
            // Those unconfirmed for OUTLIER_NS are forgotten (their numbers were forged, or
            // the publisher went quiet after one message), then this one takes a place.
            unsigned n = 0;
            for (unsigned j = 0; j < p->noutl; j++)
                if (rx->meta.mono_ns - p->outl_ns[j] < OUTLIER_NS) {
                    p->outl_ns[n] = p->outl_ns[j];
                    p->outl[n++] = p->outl[j];
                }
            p->noutl = n;
            if (p->noutl == OUTLIERS)
                return SEQ_SUSPECT;
            p->outl_ns[p->noutl] = rx->meta.mono_ns;
            p->outl[p->noutl++] = seq;
            return SEQ_NEW;
        }
        // Confirmed: jump to the candidate, then take seq as usual.
        pub_jump(rx, p, p->outl[k], true);
    }
    if (seq > p->highest) {
        for (unsigned k = 0; k < p->noutl; k++)
            if (p->outl[k] == seq)
                return SEQ_DUP; // delivered as an outlier already
        uint64_t gap = seq - p->highest - 1;
        if (seq - p->highest == 1)
            pub_confirm(rx, p);
        if (!rx->gaps_uncounted) {
            p->st.lost += gap;
            rx->st.lost += gap;
        }
        if (seq - p->highest >= WIN_BITS) {
            memset(p->win, 0, sizeof(p->win));
        } else {
            // (counted, not compared: seq may be UINT64_MAX, which s <= seq never passes)
            for (uint64_t k = 1, n = seq - p->highest; k <= n; k++)
                win_clear(p, p->highest + k);
        }
        p->highest = seq;
        p->highest_mono = rx->meta.mono_ns;
        p->st.last_seq = seq;
        win_set(p, seq);
        if (p->noutl > 0)
            outliers_settle(p);
        return SEQ_NEW;
    }
    uint64_t back = p->highest - seq;
    if (back >= WIN_BITS) {
        if (!undelivered)
            return SEQ_DUP; // too old to tell: never deliver twice
    } else {
        if (win_get(p, seq))
            return SEQ_DUP;
        win_set(p, seq);
    }
    p->st.reordered++;
    rx->st.reordered++;
    if (rx->gaps_uncounted) {
        if (seq < p->first) {
            p->first = seq;
            p->st.first_seq = seq;
        }
    } else if (seq > p->first) { // it had been counted as lost
        if (p->st.lost > 0)
            p->st.lost--;
        if (rx->st.lost > 0)
            rx->st.lost--;
    } else {
        // Earlier than anything seen so far: the numbers between it and the old first are
        // now known gaps (and are uncounted again if they turn up).
        uint64_t gap = p->first - seq - 1;
        p->st.lost += gap;
        rx->st.lost += gap;
        p->first = seq;
        p->st.first_seq = seq;
    }
    return SEQ_LATE;
}

static void
pub_touch(mcl__rx *rx, struct mcl__rx_pub *p)
{
    p->st.last_mono_ns = rx->meta.mono_ns;
    p->st.family = rx->meta.family;
    memcpy(p->st.addr, rx->meta.addr, sizeof(p->st.addr));
    p->st.port = rx->meta.port;
}

// --- partial messages ------------------------------------------------------------------------

// The partial message (pub, seq) of the record's shape, or (r NULL) of any shape.
static struct mcl__rx_part *
part_find(mcl__rx *rx, uint64_t pub, uint64_t seq, const mcl__wire_rec *r)
{
    for (struct mcl__rx_part *p = rx->part_tab[part_hash(pub, seq) % PART_BUCKETS]; p != NULL;
         p = p->hnext)
        if (p->pub == pub && p->seq == seq &&
            (r == NULL ||
             (p->total == r->total && p->count == r->count && p->fsize == r->fsize &&
              p->zip == r->zip && p->topic_len == r->topic_len && memcmp(p->topic, r->topic, r->topic_len) == 0)))
            return p;
    return NULL;
}

// Partial messages under (pub, seq) (shapes competing for one number).
static unsigned
part_count(mcl__rx *rx, uint64_t pub, uint64_t seq)
{
    unsigned n = 0;
    for (struct mcl__rx_part *p = rx->part_tab[part_hash(pub, seq) % PART_BUCKETS]; p != NULL;
         p = p->hnext)
        n += p->pub == pub && p->seq == seq;
    return n;
}

// Drops every partial message under (pub, seq); returns how many.
static unsigned
part_drop_all(mcl__rx *rx, uint64_t pub, uint64_t seq)
{
    unsigned n = 0;
    struct mcl__rx_part *p;
    while ((p = part_find(rx, pub, seq, NULL)) != NULL) {
        part_unlink(rx, p);
        part_free(p);
        n++;
    }
    return n;
}

static void
count(mcl__rx *rx, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&rx->lock);
    *field += n;
    pthread_mutex_unlock(&rx->lock);
}

// What a fragmented message claims to be (its length, fragments, fragment size and topic):
// fragments of one message all agree, so a forged fragment that disagrees is kept apart.
static uint32_t
shape_of(uint32_t total, uint32_t count, uint32_t fsize, bool zip, const uint8_t *topic, size_t tl)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    uint32_t v[4] = {total, count, fsize, zip};
    const uint8_t *b = (const uint8_t *)v;
    for (size_t i = 0; i < sizeof(v); i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ topic[i]) * 0x100000001b3ULL;
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t
rec_shape(const mcl__wire_rec *r)
{
    return shape_of(r->total, r->count, r->fsize, r->zip, r->topic, r->topic_len);
}

static uint32_t
part_shape(const struct mcl__rx_part *p)
{
    return shape_of(p->total, p->count, p->fsize, p->zip, (const uint8_t *)p->topic,
                    p->topic_len);
}

// Remembers a message whose fragments are to be ignored: a dropped partial (TOMB_DROPPED), or
// one skipped whole at its first fragment (TOMB_FILTERED, TOMB_OVERSIZE: its number is then
// marked as received, and a genuine message of another shape under that number still
// completes: see mcl__rx_next).
enum { TOMB_DROPPED = 1, TOMB_FILTERED, TOMB_OVERSIZE };

static void
tomb_put(mcl__rx *rx, uint64_t pub, uint64_t seq, uint32_t shape, uint8_t kind)
{
    rx->tombs[rx->tomb_next].pub = pub;
    rx->tombs[rx->tomb_next].seq = seq;
    rx->tombs[rx->tomb_next].shape = shape;
    rx->tombs[rx->tomb_next].kind = kind;
    rx->tomb_next = (rx->tomb_next + 1) % MCL__RX_TOMBS;
}

static void
tomb_add(mcl__rx *rx, const struct mcl__rx_part *p)
{
    tomb_put(rx, p->pub, p->seq, part_shape(p), TOMB_DROPPED);
}

// The kind of the tomb of (pub, seq): of that shape (same) or of another one (!same); 0: none.
static uint8_t
tomb_find(const mcl__rx *rx, uint64_t pub, uint64_t seq, uint32_t shape, bool same)
{
    for (size_t i = 0; i < MCL__RX_TOMBS; i++)
        if (rx->tombs[i].kind != 0 && rx->tombs[i].seq == seq && rx->tombs[i].pub == pub &&
            (rx->tombs[i].shape == shape) == same)
            return rx->tombs[i].kind;
    return 0;
}

// Drops the oldest partial (memory cap or count cap).
static void
part_evict_oldest(mcl__rx *rx)
{
    struct mcl__rx_part *p = rx->oldest;
    part_unlink(rx, p);
    tomb_add(rx, p);
    part_free(p);
    count(rx, &rx->st.evicted, 1);
}

void
mcl__rx_expire(mcl__rx *rx, int64_t now)
{
    while (rx->oldest != NULL && now - rx->oldest->created_ns >= rx->cfg.expire_ns) {
        struct mcl__rx_part *p = rx->oldest;
        part_unlink(rx, p);
        tomb_add(rx, p);
        part_free(p);
        count(rx, &rx->st.expired, 1);
    }
}

static struct mcl__rx_part *
part_new(mcl__rx *rx, const mcl__wire_rec *r)
{
    size_t words = ((size_t)r->count + 63) / 64;
    size_t mem = (size_t)r->total + words * 8 + r->topic_len + sizeof(struct mcl__rx_part);
    while (rx->oldest != NULL && (rx->part_bytes + mem > rx->cfg.partmem || rx->nparts >= PART_MAX))
        part_evict_oldest(rx);
    struct mcl__rx_part *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->topic = mcl__alloc((size_t)r->topic_len + 1);
    p->bits = mcl__zalloc(words * 8);
    p->buf = mcl__alloc(r->total);
    if (p->topic == NULL || p->bits == NULL || p->buf == NULL) {
        part_free(p);
        return NULL;
    }
    memcpy(p->topic, r->topic, r->topic_len);
    p->topic[r->topic_len] = '\0';
    p->topic_len = r->topic_len;
    p->pub = rx->hdr.publisher;
    p->seq = r->seq;
    p->total = r->total;
    p->count = r->count;
    p->fsize = r->fsize;
    p->zip = r->zip;
    p->created_ns = rx->meta.mono_ns;
    p->mem = mem;
    struct mcl__rx_part **head = &rx->part_tab[part_hash(p->pub, p->seq) % PART_BUCKETS];
    p->hnext = *head;
    *head = p;
    p->older = rx->newest;
    if (rx->newest)
        rx->newest->newer = p;
    else
        rx->oldest = p;
    rx->newest = p;
    rx->nparts++;
    rx->part_bytes += mem;
    pthread_mutex_lock(&rx->lock);
    rx->st.partial_count = rx->nparts;
    rx->st.partial_bytes = rx->part_bytes;
    pthread_mutex_unlock(&rx->lock);
    return p;
}

// --- datagrams -------------------------------------------------------------------------------

static void heartbeat_locked(mcl__rx *rx, struct mcl__rx_pub *p);

static inline mcl_err begin(mcl__rx *rx, const uint8_t *dg, size_t len,
                            const mcl__rx_meta *meta, uint64_t ndatagrams);

mcl_err
mcl__rx_begin(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta)
{
    return begin(rx, dg, len, meta, 0);
}

mcl_err
mcl__rx_begin_counted(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta)
{
    return begin(rx, dg, len, meta, 1);
}

// Whether p was last heard from where meta says this datagram comes from (then pub_touch
// changes nothing but the time).
static inline bool
same_origin(const struct mcl__rx_pub *p, const mcl__rx_meta *meta)
{
    uint64_t a0, a1, b0, b1;
    _Static_assert(sizeof(p->st.addr) == 16 && sizeof(meta->addr) == 16, "16-byte addresses");
    memcpy(&a0, p->st.addr, 8);
    memcpy(&a1, p->st.addr + 8, 8);
    memcpy(&b0, meta->addr, 8);
    memcpy(&b1, meta->addr + 8, 8);
    return p->st.family == meta->family && p->st.port == meta->port && a0 == b0 && a1 == b1;
}

// (Inline in both its callers: one call per datagram, not two.)
static inline __attribute__((always_inline)) mcl_err
begin(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta, uint64_t ndatagrams)
{
    touch_flush(rx); // (the datagram before's, if it delivered nothing: before meta changes)
    part_free(rx->done);
    rx->done = NULL;
    rx->left = 0;
    mcl_err rv = mcl__wire_check(&rx->hdr, dg, len);
    if (rv != MCL_OK) {
        pthread_mutex_lock(&rx->lock);
        rx->st.malformed++;
        rx->st.datagrams += ndatagrams;
        pthread_mutex_unlock(&rx->lock);
        if (mcl__log_enabled(MCL_LOG_DEBUG))
            mcl__log(MCL_LOG_DEBUG, "listener", "dropped a malformed datagram of %zu bytes", len);
        return rv;
    }
    rx->dg = dg;
    rx->dg_len = len;
    rx->off = MCL__WIRE_HDR;
    rx->left = rx->hdr.count;
    rx->meta = *meta;
    rx->is_hb = (rx->hdr.flags & MCL__WIRE_F_HB) != 0;
    if (rx->is_hb) {
        mcl__wire_hb_get(dg, len, &rx->hb);
        rx->left = 0; // nothing to deliver
    }
    // The usual datagram: of the publisher of the one before, known, not silent, from the
    // address it was heard from, no heartbeat, nothing fragmented: all that is left to record
    // is its arrival, and that waits for the lock its first record takes (account()). Only
    // this thread changes the table and the publishers' counters, so it reads them unlocked.
    struct mcl__rx_pub *lp = rx->last_pub;
    if (lp != NULL && lp->id == rx->hdr.publisher && ndatagrams == 0 && !rx->is_hb &&
        !(rx->hdr.flags & MCL__WIRE_F_FRAG) && lp->st.last_mono_ns != 0 && !lp->st.silent &&
        same_origin(lp, meta)) {
        rx->cur_pub = lp;
        rx->touch = lp;
        return MCL_OK;
    }
    pthread_mutex_lock(&rx->lock);
    rx->st.datagrams += ndatagrams;
    rx->cur_pub = pub_get(rx, rx->hdr.publisher);
    if (rx->cur_pub != NULL) {
        struct mcl__rx_pub *p = rx->cur_pub;
        bool fresh = p->st.last_mono_ns == 0;
        if (!fresh && !rx->authed && meta->family != 0 && p->st.family != 0 &&
            (meta->family != p->st.family || meta->port != p->st.port ||
             memcmp(meta->addr, p->st.addr, sizeof(p->st.addr)) != 0)) {
            // Its id from another address: forged, unless its own address has gone quiet.
            if (meta->mono_ns - p->st.last_mono_ns < REBIND_NS) {
                rx->st.suspect++;
                rx->cur_pub = NULL;
                pthread_mutex_unlock(&rx->lock);
                rx->left = 0;
                rx->is_hb = false;
                return MCL_EPROTO;
            }
            mcl__log(MCL_LOG_INFO, "listener",
                     "publisher %016llx now sends from another address (its own was quiet "
                     "for %lld ms)",
                     (unsigned long long)p->id,
                     (long long)((meta->mono_ns - p->st.last_mono_ns) / 1000000));
        }
        pub_touch(rx, p);
        if (fresh || (p->st.silent && !(rx->is_hb && (rx->hb.flags & MCL__WIRE_HB_BYE)))) {
            p->st.silent = false;
            presence_event(rx, p->id, true);
        }
        if (rx->is_hb)
            heartbeat_locked(rx, p);
    }
    pthread_mutex_unlock(&rx->lock);
    if (rx->cur_pub == NULL) { // out of memory: nothing can be tracked, drop the datagram
        rx->left = 0;
        return MCL_ENOMEM;
    }
    return MCL_OK;
}

// A heartbeat of p (under rx->lock): who it is, and what it says it sent. Messages numbered
// below its next number that never came are lost: counted here, and uncounted as late if
// they come after all (pub_mark). A claim more than the window ahead of what was received is
// not believed (a forged or restarted publisher must not make genuine messages look old), and
// nothing is claimed for a publisher none of whose messages arrived yet.
static void
heartbeat_locked(mcl__rx *rx, struct mcl__rx_pub *p)
{
    const mcl__wire_hb *hb = &rx->hb;
    rx->st.heartbeats++;
    p->st.heartbeats++;
    p->st.last_heartbeat_mono_ns = rx->meta.mono_ns;
    p->st.heartbeat_ms = hb->interval_ms;
    p->st.pid = hb->pid;
    p->st.topics = hb->topics_total;
    memcpy(p->st.host, hb->host, hb->host_len);
    p->st.host[hb->host_len] = '\0';
    memcpy(p->st.program, hb->prog, hb->prog_len);
    p->st.program[hb->prog_len] = '\0';
    if (p->started && hb->next_seq > 0 && p->noutl > 0) {
        // It says it sent beyond an outlier (within the window of it): the jump was real.
        uint64_t last = hb->next_seq - 1;
        for (unsigned k = 0; k < p->noutl; k++) {
            uint64_t o = p->outl[k];
            if (o > p->highest && last >= o && last - o <= WIN_BITS) {
                pub_jump(rx, p, o, true);
                break;
            }
        }
    }
    if (!rx->gaps_uncounted && p->started && hb->next_seq > 0) {
        uint64_t last = hb->next_seq - 1;
        if (last == p->highest)
            pub_confirm(rx, p); // it says what was received: consistent
        if (last > p->highest && last - p->highest <= WIN_BITS) {
            uint64_t gap = last - p->highest;
            p->st.lost += gap;
            rx->st.lost += gap;
            rx->st.lost_at_end += gap;
            for (uint64_t k = 1; k <= gap; k++)
                win_clear(p, p->highest + k);
            p->highest = last;
            p->st.last_seq = last;
        }
    }
    if ((hb->flags & MCL__WIRE_HB_BYE) && !p->st.silent) {
        p->st.silent = true;
        presence_event(rx, p->id, false);
    }
}

void
mcl__rx_presence_check(mcl__rx *rx, int64_t now)
{
    if (now < rx->next_presence_check)
        return;
    rx->next_presence_check = now + 100000000;
    uint32_t k = rx->silent_after ? rx->silent_after : 3;
    pthread_mutex_lock(&rx->lock);
    touch_flush_locked(rx);
    for (size_t i = 0; i < PUB_BUCKETS; i++)
        for (struct mcl__rx_pub *p = rx->pub_tab[i]; p != NULL; p = p->next)
            if (!p->st.silent && p->st.heartbeat_ms > 0 &&
                now - p->st.last_mono_ns > (int64_t)k * p->st.heartbeat_ms * 1000000) {
                p->st.silent = true;
                presence_event(rx, p->id, false);
            }
    pthread_mutex_unlock(&rx->lock);
}

bool
mcl__rx_presence_event(mcl__rx *rx, mcl_publisher_stats *out, bool *alive)
{
    pthread_mutex_lock(&rx->lock);
    bool got = false;
    while (!got && rx->nev > 0) {
        uint64_t id = rx->ev[0].id;
        *alive = rx->ev[0].alive;
        memmove(rx->ev, rx->ev + 1, --rx->nev * sizeof(rx->ev[0]));
        for (struct mcl__rx_pub *p = rx->pub_tab[pub_hash(id) % PUB_BUCKETS]; p != NULL;
             p = p->next)
            if (p->id == id) {
                *out = p->st;
                got = true; // (a publisher forgotten meanwhile: its event goes too)
                break;
            }
    }
    pthread_mutex_unlock(&rx->lock);
    return got;
}

static void
fill_msg(const mcl__rx *rx, mcl_raw_msg *m, const char *topic, size_t tlen, const void *payload,
         size_t len, uint64_t seq)
{
    m->topic = topic;
    m->topic_len = tlen;
    m->payload = payload;
    m->len = len;
    m->publisher = rx->hdr.publisher;
    m->seq = seq;
    m->recv_realtime_ns = rx->meta.real_ns;
    m->recv_mono_ns = rx->meta.mono_ns;
    m->sender_family = rx->meta.family;
    memcpy(m->sender_addr, rx->meta.addr, sizeof(m->sender_addr));
    m->sender_port = rx->meta.port;
}

// Opens the envelope env[0..n) of a compressed message that is to be delivered, into rx->zbuf:
// MCL_OK with *out, *outlen the message; MCL_EMSGSIZE when it says it is larger than maxmsg
// (an oversize message like any other); MCL_EDECODE when the codec is unknown or not built,
// the stream does not decode to exactly the size it states, or the buffer cannot be had (the
// caller counts it `undecompressed` and drops it unaccounted: it never reached the user). The
// stated size is checked against maxmsg and against the stream's own claim before a buffer
// is sized, so a decompression bomb is refused without allocating.
static mcl_err
unzip(mcl__rx *rx, const uint8_t *env, size_t n, const uint8_t **out, size_t *outlen)
{
    uint8_t codec = env[0];
    size_t orig = mcl__get_be32(env + 2);
    if (env[1] != 0 || codec == MCL__Z_NONE || !mcl__z_built(codec))
        return MCL_EDECODE;
    if (orig > rx->cfg.maxmsg)
        return MCL_EMSGSIZE;
    const uint8_t *z = env + MCL__WIRE_ZENV;
    size_t zl = n - MCL__WIRE_ZENV;
    if (mcl__z_plausible(codec, z, zl, orig) != MCL_OK)
        return MCL_EDECODE;
    if (rx->zctx == NULL && (rx->zctx = mcl__zctx_new()) == NULL)
        return MCL_EDECODE;
    if (orig > rx->zcap || rx->zbuf == NULL) { // (what it held is not needed: no copy)
        size_t cap = orig > 4096 ? orig : 4096;
        mcl__free(rx->zbuf);
        rx->zcap = 0;
        if ((rx->zbuf = mcl__alloc(cap)) == NULL) {
            mcl__log(MCL_LOG_WARN, "listener", "out of memory for a %zu-byte compressed message",
                     orig);
            return MCL_EDECODE;
        }
        rx->zcap = cap;
    }
    if (mcl__z_decompress(rx->zctx, codec, z, zl, rx->zbuf, orig) != MCL_OK)
        return MCL_EDECODE;
    *out = rx->zbuf;
    *outlen = orig;
    return MCL_OK;
}

// Counts a compressed message delivered, of zlen bytes on the wire (its envelope included).
static void
count_compressed(mcl__rx *rx, size_t zlen)
{
    pthread_mutex_lock(&rx->lock);
    rx->st.compressed++;
    rx->st.compressed_bytes += zlen;
    pthread_mutex_unlock(&rx->lock);
}

// Accounts a complete message (unfragmented, reassembled, filtered or oversize).
// Returns true when it is to be delivered.
static bool
account(mcl__rx *rx, uint64_t seq, size_t len, bool deliver, uint64_t *why, bool undelivered)
{
    struct mcl__rx_pub *p = rx->cur_pub;
    pthread_mutex_lock(&rx->lock);
    touch_flush_locked(rx);
    int s = pub_mark(rx, p, seq, undelivered);
    if (s == SEQ_SUSPECT) {
        rx->st.suspect++;
        pthread_mutex_unlock(&rx->lock);
        return false;
    }
    if (s == SEQ_DUP) {
        p->st.duplicates++;
        rx->st.duplicates++;
        deliver = false;
    } else {
        p->st.messages++;
        p->st.bytes += len;
        if (deliver) {
            rx->st.messages++;
            rx->st.bytes += len;
        } else {
            (*why)++;
        }
    }
    pthread_mutex_unlock(&rx->lock);
    if (rx->seq_hook != NULL && s != SEQ_DUP)
        rx->seq_hook(rx->seq_ctx, p->id, seq, deliver);
    return deliver;
}

bool
mcl__rx_next_slow(mcl__rx *rx, mcl_raw_msg *msg)
{
    part_free(rx->done);
    rx->done = NULL;
    if (rx->zcap > ZBUF_KEEP) {
        mcl__free(rx->zbuf);
        rx->zbuf = NULL;
        rx->zcap = 0;
    }
    bool frag = (rx->hdr.flags & MCL__WIRE_F_FRAG) != 0;
    bool zip = (rx->hdr.flags & MCL__WIRE_F_ZIP) != 0;
    while (rx->left > 0) {
        mcl__wire_rec r;
        mcl__wire_next(rx->dg, &rx->off, frag, &r);
        r.zip = zip;
        rx->left--;
        bool match = rx->all_topics || mcl__rx_match(rx, (const char *)r.topic, r.topic_len);
        bool fits = r.total <= rx->cfg.maxmsg && (!frag || r.total <= rx->cfg.partmem);
        if (!frag) {
            const uint8_t *payload = r.payload;
            size_t len = r.len;
            if (zip && match && fits) {
                mcl_err zr = unzip(rx, r.payload, r.len, &payload, &len);
                if (zr == MCL_EMSGSIZE) {
                    fits = false;
                } else if (zr != MCL_OK) {
                    count(rx, &rx->st.undecompressed, 1);
                    continue;
                }
            }
            // This number unfragmented settles it: a reassembly of the same number under way
            // must not complete later and deliver it again (completed beyond the window, a
            // reassembly counts as never delivered). Its fragments still to come are seen.
            if (rx->nparts > 0)
                (void)part_drop_all(rx, rx->hdr.publisher, r.seq);
            uint64_t *why = !fits ? &rx->st.oversize : &rx->st.filtered;
            if (!account(rx, r.seq, len, match && fits, why, false))
                continue;
            if (zip)
                count_compressed(rx, r.len);
            mcl__copy_short(rx->topic, r.topic, r.topic_len);
            rx->topic[r.topic_len] = '\0';
            fill_msg(rx, msg, rx->topic, r.topic_len, len ? payload : NULL, len, r.seq);
            return true;
        }

        // A fragment. Fragments that disagree on what the message is (a forged one among
        // them) reassemble apart; the first to complete wins and the others are dropped.
        uint64_t pub = rx->hdr.publisher;
        struct mcl__rx_part *p = rx->nparts > 0 ? part_find(rx, pub, r.seq, &r) : NULL;
        if (p == NULL) {
            uint32_t shape = rec_shape(&r);
            if (tomb_find(rx, pub, r.seq, shape, true) != 0)
                continue; // of a message dropped or skipped already
            // Its number taken by a message skipped whole at its first fragment of another
            // shape: that claim may be forged, so this one reassembles all the same.
            bool contested = tomb_find(rx, pub, r.seq, shape, false) >= TOMB_FILTERED;
            pthread_mutex_lock(&rx->lock);
            bool seen = !contested && pub_seen(rx->cur_pub, r.seq);
            if (seen && match && fits) { // a fragment of a message already delivered
                rx->cur_pub->st.duplicates++;
                rx->st.duplicates++;
            }
            pthread_mutex_unlock(&rx->lock);
            if (seen)
                continue;
            if (!match || !fits) {
                if (contested) { // a second claim to skip that number
                    count(rx, &rx->st.suspect, 1);
                    continue;
                }
                // Skipped whole at its first fragment: account it now; the other fragments
                // of its shape then find its tomb and are dropped quietly.
                account(rx, r.seq, r.total, false, !fits ? &rx->st.oversize : &rx->st.filtered,
                        false);
                tomb_put(rx, pub, r.seq, shape, !fits ? TOMB_OVERSIZE : TOMB_FILTERED);
                continue;
            }
            if (part_count(rx, pub, r.seq) >= 4) { // shapes competing for one number
                count(rx, &rx->st.suspect, 1);
                continue;
            }
            p = part_new(rx, &r);
            if (p == NULL) {
                mcl__log(MCL_LOG_WARN, "listener", "out of memory for a %u-byte message",
                         (unsigned)r.total);
                continue; // counted as lost when later messages arrive
            }
        }
        uint64_t bit = (uint64_t)1 << (r.index % 64);
        if (p->bits[r.index / 64] & bit) {
            pthread_mutex_lock(&rx->lock);
            rx->cur_pub->st.duplicates++;
            rx->st.duplicates++;
            pthread_mutex_unlock(&rx->lock);
            continue;
        }
        p->bits[r.index / 64] |= bit;
        memcpy(p->buf + r.offset, r.payload, r.len);
        if (++p->got < p->count)
            continue;
        part_unlink(rx, p);
        const uint8_t *payload = p->buf;
        size_t len = p->total;
        if (p->zip) {
            mcl_err zr = unzip(rx, p->buf, p->total, &payload, &len);
            if (zr != MCL_OK) {
                // Larger than maxmsg: oversize, its number received; undecodable: dropped
                // unaccounted, as a malformed datagram would be (its rivals stay).
                if (zr == MCL_EMSGSIZE)
                    account(rx, p->seq, p->total, false, &rx->st.oversize, true);
                else
                    count(rx, &rx->st.undecompressed, 1);
                if (zr == MCL_EMSGSIZE)
                    (void)part_drop_all(rx, p->pub, p->seq);
                part_free(p);
                continue;
            }
        }
        unsigned rivals = part_drop_all(rx, p->pub, p->seq);
        uint8_t skipped = tomb_find(rx, p->pub, p->seq, part_shape(p), false);
        if (rivals > 0)
            count(rx, &rx->st.suspect, rivals);
        if (skipped >= TOMB_FILTERED) {
            // Its number was marked by a skip claim of another shape (forged: this message
            // completed): undo that claim's count and deliver.
            pthread_mutex_lock(&rx->lock);
            uint64_t *why = skipped == TOMB_OVERSIZE ? &rx->st.oversize : &rx->st.filtered;
            if (*why > 0)
                (*why)--;
            rx->st.suspect++;
            rx->st.messages++;
            rx->st.bytes += len;
            rx->cur_pub->st.bytes += len;
            pthread_mutex_unlock(&rx->lock);
            for (size_t i = 0; i < MCL__RX_TOMBS; i++) // (settled: no second override)
                if (rx->tombs[i].pub == p->pub && rx->tombs[i].seq == p->seq)
                    rx->tombs[i].kind = TOMB_DROPPED;
            if (rx->seq_hook != NULL)
                rx->seq_hook(rx->seq_ctx, p->pub, p->seq, true);
        } else if (!account(rx, p->seq, len, true, &rx->st.filtered, true)) {
            part_free(p);
            continue;
        }
        if (p->zip)
            count_compressed(rx, p->total);
        rx->done = p;
        fill_msg(rx, msg, p->topic, p->topic_len, payload, len, p->seq);
        return true;
    }
    touch_flush(rx); // (a datagram none of whose records was accounted)
    return false;
}

void
mcl__rx_set_kernel_drops(mcl__rx *rx, uint64_t total)
{
    pthread_mutex_lock(&rx->lock);
    if (total > rx->st.kernel_drops)
        rx->st.kernel_drops = total;
    pthread_mutex_unlock(&rx->lock);
}

void
mcl__rx_set_rcvbuf(mcl__rx *rx, size_t rcvbuf)
{
    pthread_mutex_lock(&rx->lock);
    rx->st.rcvbuf = rcvbuf;
    pthread_mutex_unlock(&rx->lock);
}

void
mcl__rx_add_lost(mcl__rx *rx, uint64_t publisher, uint64_t n)
{
    pthread_mutex_lock(&rx->lock);
    struct mcl__rx_pub *p = pub_get(rx, publisher);
    if (p != NULL)
        p->st.lost += n;
    rx->st.lost += n;
    pthread_mutex_unlock(&rx->lock);
}

void
mcl__rx_add_lost_at_end(mcl__rx *rx, uint64_t publisher, uint64_t n)
{
    pthread_mutex_lock(&rx->lock);
    struct mcl__rx_pub *p = pub_get(rx, publisher);
    if (p != NULL)
        p->st.lost += n;
    rx->st.lost += n;
    rx->st.lost_at_end += n;
    pthread_mutex_unlock(&rx->lock);
}

void
mcl__rx_count_auth(mcl__rx *rx, bool replayed)
{
    count(rx, replayed ? &rx->st.replayed : &rx->st.auth_rejected, 1);
}

void
mcl__rx_count_datagrams(mcl__rx *rx, uint64_t n)
{
    count(rx, &rx->st.datagrams, n);
}

void
mcl__rx_stats(mcl__rx *rx, mcl_listener_stats *st)
{
    pthread_mutex_lock(&rx->lock);
    *st = rx->st;
    pthread_mutex_unlock(&rx->lock);
}

size_t
mcl__rx_publishers(mcl__rx *rx, mcl_publisher_stats *out, size_t cap)
{
    pthread_mutex_lock(&rx->lock);
    size_t n = 0;
    for (size_t i = 0; i < PUB_BUCKETS; i++) {
        for (struct mcl__rx_pub *p = rx->pub_tab[i]; p != NULL; p = p->next) {
            if (n < cap) {
                // Insertion sort, most recently heard first (cap is small in practice).
                size_t j = n;
                while (j > 0 && out[j - 1].last_mono_ns < p->st.last_mono_ns) {
                    out[j] = out[j - 1];
                    j--;
                }
                out[j] = p->st;
            } else if (cap > 0 && out[cap - 1].last_mono_ns < p->st.last_mono_ns) {
                size_t j = cap - 1;
                while (j > 0 && out[j - 1].last_mono_ns < p->st.last_mono_ns) {
                    out[j] = out[j - 1];
                    j--;
                }
                out[j] = p->st;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&rx->lock);
    return n;
}
