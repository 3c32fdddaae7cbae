// Receive engine. See rx.h. Everything here runs on the receiving thread except the readers
// (mcl__rx_stats, mcl__rx_publishers), which take rx->lock; the receiving thread takes it
// around every update of counters or of the publisher table.
#include "rx.h"

#include "../core/internal.h"

#include <string.h>

enum {
    WIN_BITS = 1024,      // sequence window per publisher for duplicates and reordering
    WIN_WORDS = WIN_BITS / 64,
    PUB_BUCKETS = 256,
    PUB_MAX = 4096,       // publishers tracked; the least recently heard is forgotten beyond
    PART_BUCKETS = 256,
    PART_MAX = 4096,      // partial messages held at once
};
// A jump of the sequence number larger than this (either way) is not a gap but a publisher
// whose numbering restarted, or a forged datagram: tracking restarts at the new number,
// so no datagram can make later genuine messages look old.
#define SEQ_RESET ((uint64_t)1 << 32)

struct mcl__rx_pat {
    char *s;
    size_t len;
    bool prefix;
};

struct mcl__rx_pub {
    struct mcl__rx_pub *next;
    uint64_t id;
    bool started;
    uint64_t highest;
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
    for (size_t i = 0; i < rx->npats; i++)
        mcl__free(rx->pats[i].s);
    mcl__free(rx->pats);
    pthread_mutex_destroy(&rx->lock);
    memset(rx, 0, sizeof(*rx));
}

// --- publishers ------------------------------------------------------------------------------

static void
pub_forget_stalest(mcl__rx *rx)
{
    struct mcl__rx_pub **victim = NULL;
    for (size_t i = 0; i < PUB_BUCKETS; i++)
        for (struct mcl__rx_pub **pp = &rx->pub_tab[i]; *pp != NULL; pp = &(*pp)->next)
            if (victim == NULL || (*pp)->st.last_mono_ns < (*victim)->st.last_mono_ns)
                victim = pp;
    if (victim != NULL) {
        struct mcl__rx_pub *p = *victim;
        *victim = p->next;
        mcl__free(p);
        rx->npubs--;
    }
}

// Finds or creates the publisher of the current datagram. Called with rx->lock held.
// NULL only when out of memory.
static struct mcl__rx_pub *
pub_get(mcl__rx *rx, uint64_t id)
{
    struct mcl__rx_pub **head = &rx->pub_tab[pub_hash(id) % PUB_BUCKETS];
    for (struct mcl__rx_pub *p = *head; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    if (rx->npubs >= PUB_MAX)
        pub_forget_stalest(rx);
    struct mcl__rx_pub *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->id = id;
    p->st.publisher = id;
    p->next = *head;
    *head = p;
    rx->npubs++;
    rx->st.publishers = rx->npubs;
    return p;
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
    if (back >= SEQ_RESET)
        return false; // will restart tracking when it completes
    if (back >= WIN_BITS)
        return true;
    return win_get(p, seq);
}

enum { SEQ_NEW, SEQ_LATE, SEQ_DUP };

static void
pub_restart(struct mcl__rx_pub *p, uint64_t seq)
{
    memset(p->win, 0, sizeof(p->win));
    p->started = true;
    p->first = p->highest = seq;
    p->st.first_seq = p->st.last_seq = seq;
    win_set(p, seq);
}

// Records the arrival of a complete message. Called with rx->lock held. `undelivered` says
// the message is known not to have been delivered before (a reassembly just completed), so
// being older than the window does not make it a duplicate.
static int
pub_mark(mcl__rx *rx, struct mcl__rx_pub *p, uint64_t seq, bool undelivered)
{
    if (!p->started) {
        pub_restart(p, seq);
        return SEQ_NEW;
    }
    if (seq > p->highest) {
        uint64_t gap = seq - p->highest - 1;
        if (gap >= SEQ_RESET) {
            mcl__log(MCL_LOG_INFO, "listener",
                     "publisher %016llx jumped from seq %llu to %llu: tracking restarts",
                     (unsigned long long)p->id, (unsigned long long)p->highest,
                     (unsigned long long)seq);
            pub_restart(p, seq);
            return SEQ_NEW;
        }
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
        p->st.last_seq = seq;
        win_set(p, seq);
        return SEQ_NEW;
    }
    uint64_t back = p->highest - seq;
    if (back >= SEQ_RESET) {
        pub_restart(p, seq);
        return SEQ_NEW;
    }
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

static struct mcl__rx_part *
part_find(mcl__rx *rx, uint64_t pub, uint64_t seq)
{
    for (struct mcl__rx_part *p = rx->part_tab[part_hash(pub, seq) % PART_BUCKETS]; p != NULL;
         p = p->hnext)
        if (p->pub == pub && p->seq == seq)
            return p;
    return NULL;
}

static void
count(mcl__rx *rx, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&rx->lock);
    *field += n;
    pthread_mutex_unlock(&rx->lock);
}

// Remembers a dropped partial message so that its late fragments are ignored instead of
// starting (and again dropping) a new reassembly.
static void
tomb_add(mcl__rx *rx, const struct mcl__rx_part *p)
{
    rx->tombs[rx->tomb_next].pub = p->pub;
    rx->tombs[rx->tomb_next].seq = p->seq;
    rx->tombs[rx->tomb_next].used = true;
    rx->tomb_next = (rx->tomb_next + 1) % MCL__RX_TOMBS;
}

static bool
tomb_has(const mcl__rx *rx, uint64_t pub, uint64_t seq)
{
    for (size_t i = 0; i < MCL__RX_TOMBS; i++)
        if (rx->tombs[i].used && rx->tombs[i].seq == seq && rx->tombs[i].pub == pub)
            return true;
    return false;
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

static mcl_err begin(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta,
                     uint64_t ndatagrams);

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

static mcl_err
begin(mcl__rx *rx, const uint8_t *dg, size_t len, const mcl__rx_meta *meta, uint64_t ndatagrams)
{
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
    pthread_mutex_lock(&rx->lock);
    rx->st.datagrams += ndatagrams;
    rx->cur_pub = pub_get(rx, rx->hdr.publisher);
    if (rx->cur_pub != NULL) {
        struct mcl__rx_pub *p = rx->cur_pub;
        bool fresh = p->st.last_mono_ns == 0;
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
    if (!rx->gaps_uncounted && p->started && hb->next_seq > 0) {
        uint64_t last = hb->next_seq - 1;
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

// Accounts a complete message (unfragmented, reassembled, filtered or oversize).
// Returns true when it is to be delivered.
static bool
account(mcl__rx *rx, uint64_t seq, size_t len, bool deliver, uint64_t *why, bool undelivered)
{
    struct mcl__rx_pub *p = rx->cur_pub;
    pthread_mutex_lock(&rx->lock);
    int s = pub_mark(rx, p, seq, undelivered);
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
mcl__rx_next(mcl__rx *rx, mcl_raw_msg *msg)
{
    part_free(rx->done);
    rx->done = NULL;
    bool frag = (rx->hdr.flags & MCL__WIRE_F_FRAG) != 0;
    while (rx->left > 0) {
        mcl__wire_rec r;
        mcl__wire_next(rx->dg, &rx->off, frag, &r);
        rx->left--;
        bool match = mcl__rx_match(rx, (const char *)r.topic, r.topic_len);
        bool fits = r.total <= rx->cfg.maxmsg && (!frag || r.total <= rx->cfg.partmem);
        if (!frag) {
            // This number unfragmented settles it: a reassembly of the same number under way
            // must not complete later and deliver it again (completed beyond the window, a
            // reassembly counts as never delivered). Its fragments still to come are seen.
            struct mcl__rx_part *stale;
            if (rx->nparts > 0 && (stale = part_find(rx, rx->hdr.publisher, r.seq)) != NULL) {
                part_unlink(rx, stale);
                part_free(stale);
            }
            uint64_t *why = !fits ? &rx->st.oversize : &rx->st.filtered;
            if (!account(rx, r.seq, r.len, match && fits, why, false))
                continue;
            memcpy(rx->topic, r.topic, r.topic_len);
            rx->topic[r.topic_len] = '\0';
            fill_msg(rx, msg, rx->topic, r.topic_len, r.len ? r.payload : NULL, r.len, r.seq);
            return true;
        }

        // A fragment.
        struct mcl__rx_part *p = part_find(rx, rx->hdr.publisher, r.seq);
        if (p == NULL) {
            pthread_mutex_lock(&rx->lock);
            bool seen = pub_seen(rx->cur_pub, r.seq);
            if (seen && match && fits) { // a fragment of a message already delivered
                rx->cur_pub->st.duplicates++;
                rx->st.duplicates++;
            }
            pthread_mutex_unlock(&rx->lock);
            if (seen || tomb_has(rx, rx->hdr.publisher, r.seq))
                continue;
            if (!match || !fits) {
                // Skipped whole at its first fragment: account it now; the other fragments
                // then find the sequence number seen and are dropped quietly.
                account(rx, r.seq, r.total, false, !fits ? &rx->st.oversize : &rx->st.filtered,
                        false);
                continue;
            }
            p = part_new(rx, &r);
            if (p == NULL) {
                mcl__log(MCL_LOG_WARN, "listener", "out of memory for a %u-byte message",
                         (unsigned)r.total);
                continue; // counted as lost when later messages arrive
            }
        } else if (p->total != r.total || p->count != r.count || p->fsize != r.fsize ||
                   p->topic_len != r.topic_len || memcmp(p->topic, r.topic, r.topic_len) != 0) {
            count(rx, &rx->st.malformed, 1); // contradicts the fragments already held
            continue;
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
        if (!account(rx, p->seq, p->total, true, &rx->st.filtered, true)) {
            part_free(p);
            continue;
        }
        rx->done = p;
        fill_msg(rx, msg, p->topic, p->topic_len, p->buf, p->total, p->seq);
        return true;
    }
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
