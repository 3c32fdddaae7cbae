// SPDX-License-Identifier: BSD-3-Clause
// Per-topic statistics of a raw listener (docs/topics.md, topics.h).
//
// Two chained hash tables: topic rows keyed by the topic's bytes, pair rows keyed by
// (publisher, topic row). Each row holds cumulative counters and a ring of one-second buckets
// (count, bytes, inter-arrival sum and sum of squares), from which a reader computes the
// windowed figures at the moment it asks. Rows are allocated when a topic or pair is first
// seen and never on later messages; the tables double when they fill (also only then).
#include "topics.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum {
    HIST = 16,         // mcl_topic_stats.rate_history
    PEEK_ENTRIES = 32, // map entries looked at for "name"
    PEEK_STEPS = 1024, // msgpack headers read at most per look (bounds its time)
    DEF_WINDOW_S = 5,
    DEF_MAX_TOPICS = 1024,
    DEF_MAX_PAIRS = 4096,
    MAX_CAP = 1 << 20,
    MIN_BUCKETS = 16,
};
#define NS MCL__TOPICS_NS

// ---- type peek ------------------------------------------------------------------------------

// The big-endian number of k bytes at p[*off], if they are there.
static bool
get_len(const uint8_t *p, size_t n, size_t *off, unsigned k, uint64_t *v)
{
    if (n - *off < k)
        return false;
    uint64_t x = 0;
    for (unsigned i = 0; i < k; i++)
        x = x << 8 | p[*off + i];
    *off += k;
    *v = x;
    return true;
}

// clang-format off
// Reads one object's header at p[*off] (*off < n or not: checked) and moves past everything
// but its elements; *children: the objects a container holds (maps: keys and values).
static bool
skip_head(const uint8_t *p, size_t n, size_t *off, uint64_t *children)
{
    if (*off >= n)
        return false;
    uint8_t b = p[(*off)++];
    uint64_t skip = 0, v = 0;
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return true; // fixint, nil, bool
    if (b <= 0x8f) {
        *children = 2u * (b & 0x0fu);
        return true;
    }
    if (b <= 0x9f) {
        *children = b & 0x0fu;
        return true;
    }
    if (b <= 0xbf) {
        skip = b & 0x1fu;
    } else {
        switch (b) {
        case 0xc4: case 0xd9: // bin8, str8
            if (!get_len(p, n, off, 1, &skip))
                return false;
            break;
        case 0xc5: case 0xda:
            if (!get_len(p, n, off, 2, &skip))
                return false;
            break;
        case 0xc6: case 0xdb:
            if (!get_len(p, n, off, 4, &skip))
                return false;
            break;
        case 0xc7: case 0xc8: case 0xc9: // ext8/16/32: length, type byte, data
            if (!get_len(p, n, off, b == 0xc7 ? 1u : b == 0xc8 ? 2u : 4u, &v))
                return false;
            skip = v + 1;
            break;
        case 0xca: skip = 4; break;
        case 0xcb: skip = 8; break;
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xd4: skip = 2; break; // fixext: type byte and 1..16 bytes
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xdc: case 0xdd: case 0xde: case 0xdf:
            if (!get_len(p, n, off, (b == 0xdc || b == 0xde) ? 2u : 4u, &v))
                return false;
            *children = b >= 0xde ? 2 * v : v;
            return true;
        default: // 0xc1: never used
            return false;
        }
    }
    if (n - *off < skip)
        return false;
    *off += (size_t)skip;
    return true;
}

// clang-format on

// Skips one whole object without recursion: a count of objects still to skip, each of which
// takes at least a byte (so a declared count larger than what remains is refused at once).
static bool
skip_obj(const uint8_t *p, size_t n, size_t *off, unsigned *steps)
{
    uint64_t pending = 1;
    while (pending > 0) {
        uint64_t ch;
        if (++*steps > PEEK_STEPS || !skip_head(p, n, off, &ch))
            return false;
        pending = pending - 1 + ch;
        if (pending > n - *off)
            return false;
    }
    return true;
}

// A str at p[*off]: its bytes. False (and *off unchanged) when it is not one or is cut short.
static bool
read_str(const uint8_t *p, size_t n, size_t *off, const uint8_t **s, size_t *len)
{
    size_t o = *off;
    if (o >= n)
        return false;
    uint8_t b = p[o++];
    uint64_t l;
    if (b >= 0xa0 && b <= 0xbf)
        l = b & 0x1fu;
    else if (b < 0xd9 || b > 0xdb || !get_len(p, n, &o, b == 0xd9 ? 1u : b == 0xda ? 2u : 4u, &l))
        return false;
    if (n - o < l)
        return false;
    *s = p + o;
    *len = (size_t)l;
    *off = o + (size_t)l;
    return true;
}

// The "name" string of a msgpack map, pointing into p.
static bool
peek_name(const uint8_t *p, size_t n, const uint8_t **name, size_t *len)
{
    size_t off = 1;
    uint64_t entries;
    if (n == 0)
        return false;
    if (p[0] >= 0x80 && p[0] <= 0x8f)
        entries = p[0] & 0x0fu;
    else if (p[0] != 0xde && p[0] != 0xdf)
        return false;
    else if (!get_len(p, n, &off, p[0] == 0xde ? 2u : 4u, &entries))
        return false;
    unsigned steps = 0;
    for (uint64_t i = 0; i < entries && i < PEEK_ENTRIES; i++) {
        const uint8_t *k;
        size_t kl;
        if (read_str(p, n, &off, &k, &kl)) {
            // "name" that is no str, or holds a NUL (no C string, so no type's name): untyped.
            if (kl == 4 && memcmp(k, "name", 4) == 0)
                return read_str(p, n, &off, name, len) && memchr(*name, 0, *len) == NULL;
        } else if (!skip_obj(p, n, &off, &steps)) {
            return false;
        }
        if (!skip_obj(p, n, &off, &steps))
            return false;
    }
    return false;
}

size_t
mcl__type_peek(const void *p, size_t n, char *out, size_t outsz)
{
    const uint8_t *s;
    size_t len = 0;
    if (out == NULL || outsz == 0)
        return 0;
    if (p == NULL || !peek_name(p, n, &s, &len))
        len = 0;
    if (len > outsz - 1)
        len = outsz - 1;
    if (len > 0)
        memcpy(out, s, len);
    out[len] = '\0';
    return len;
}

// ---- rows -----------------------------------------------------------------------------------

static uint64_t
hash_topic(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t
hash_pair(uint64_t publisher, const mcl__tp_trow *t)
{
    uint64_t h = (publisher ^ t->hash) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

mcl__topics *
mcl__topics_new(void)
{
    mcl__topics *t = mcl__zalloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    t->window_ns = t->live_window_ns = DEF_WINDOW_S * NS;
    t->max_topics = DEF_MAX_TOPICS;
    t->max_pairs = DEF_MAX_PAIRS;
    t->tbuckets = t->pbuckets = MIN_BUCKETS;
    t->ttab = mcl__zalloc(t->tbuckets * sizeof(*t->ttab));
    t->ptab = mcl__zalloc(t->pbuckets * sizeof(*t->ptab));
    if (t->ttab == NULL || t->ptab == NULL || pthread_mutex_init(&t->lock, NULL) != 0) {
        mcl__free(t->ttab);
        mcl__free(t->ptab);
        mcl__free(t);
        return NULL;
    }
    return t;
}

void
mcl__topics_free(mcl__topics *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->pbuckets; i++)
        for (mcl__tp_prow *p = t->ptab[i], *nx; p != NULL; p = nx) {
            nx = p->next;
            mcl__free(p);
        }
    for (size_t i = 0; i < t->tbuckets; i++)
        for (mcl__tp_trow *r = t->ttab[i], *nx; r != NULL; r = nx) {
            nx = r->next;
            mcl__free(r);
        }
    mcl__free(t->ttab);
    mcl__free(t->ptab);
    pthread_mutex_destroy(&t->lock);
    mcl__free(t);
}

// Copies what changed to what readers see (under the lock).
static void
publish_locked(mcl__topics *t)
{
    for (mcl__tp_stats *s = t->dirty, *nx; s != NULL; s = nx) {
        nx = s->dnext;
        if (s->whole) {
            s->shown = s->live;
        } else { // (the short path's changes only: the fixed fields and the current bucket)
            memcpy(&s->shown, &s->live, offsetof(mcl__tp_core, b));
            s->shown.b[s->live.cur] = s->live.b[s->live.cur];
        }
        s->dnext = NULL;
        s->dirty = false;
        s->whole = false;
    }
    t->dirty = NULL;
    t->pending = 0;
    t->live_window_ns = t->window_ns;
}

void
mcl__topics_publish(mcl__topics *t)
{
    if (t == NULL || (t->dirty == NULL && t->pending == 0))
        return;
    pthread_mutex_lock(&t->lock);
    publish_locked(t);
    pthread_mutex_unlock(&t->lock);
}

static inline void
mark(mcl__topics *t, mcl__tp_stats *s)
{
    s->whole = true;
    if (!s->dirty) {
        s->dirty = true;
        s->dnext = t->dirty;
        t->dirty = s;
    }
}

static mcl__tp_trow *
topic_find(const mcl__topics *t, const char *topic, size_t tl, uint64_t h)
{
    for (mcl__tp_trow *r = t->ttab[h & (t->tbuckets - 1)]; r != NULL; r = r->next)
        if (r->hash == h && r->tl == tl && memcmp(r->name, topic, tl) == 0)
            return r;
    return NULL;
}

static mcl__tp_prow *
pair_find(const mcl__topics *t, const mcl__tp_trow *r, uint64_t publisher)
{
    if (r->last_pair != NULL && r->last_pair->publisher == publisher)
        return r->last_pair;
    for (mcl__tp_prow *p = t->ptab[hash_pair(publisher, r) & (t->pbuckets - 1)]; p != NULL;
         p = p->next)
        if (p->publisher == publisher && p->t == r)
            return p;
    return NULL;
}

// Doubles a table when it holds more rows than buckets (under the lock). On failure the
// chains just grow longer.
static void
grow_topics(mcl__topics *t)
{
    size_t nb = t->tbuckets * 2;
    mcl__tp_trow **tab = mcl__zalloc(nb * sizeof(*tab));
    if (tab == NULL)
        return;
    for (size_t i = 0; i < t->tbuckets; i++)
        for (mcl__tp_trow *r = t->ttab[i], *nx; r != NULL; r = nx) {
            nx = r->next;
            r->next = tab[r->hash & (nb - 1)];
            tab[r->hash & (nb - 1)] = r;
        }
    mcl__free(t->ttab);
    t->ttab = tab;
    t->tbuckets = nb;
}

static void
grow_pairs(mcl__topics *t)
{
    size_t nb = t->pbuckets * 2;
    mcl__tp_prow **tab = mcl__zalloc(nb * sizeof(*tab));
    if (tab == NULL)
        return;
    for (size_t i = 0; i < t->pbuckets; i++)
        for (mcl__tp_prow *p = t->ptab[i], *nx; p != NULL; p = nx) {
            nx = p->next;
            size_t k = hash_pair(p->publisher, p->t) & (nb - 1);
            p->next = tab[k];
            tab[k] = p;
        }
    mcl__free(t->ptab);
    t->ptab = tab;
    t->pbuckets = nb;
}

// The topic's own counters from here on (under the lock).
static void
unsolo(mcl__tp_trow *r)
{
    if (r->npairs == 1) {
        r->s.live = r->pairs->s.live;
        r->s.shown = r->pairs->s.shown;
    }
    r->solo = false;
}

// The counters of a topic row.
static mcl__tp_core *
topic_live(mcl__tp_trow *r)
{
    return r->solo && r->npairs == 1 ? &r->pairs->s.live : &r->s.live;
}

static const mcl__tp_core *
topic_shown(const mcl__tp_trow *r)
{
    return r->solo && r->npairs == 1 ? &r->pairs->s.shown : &r->s.shown;
}

// Removes a pair row from both lists and frees it (under the lock, after a publish: no row
// is dirty).
static void
pair_drop(mcl__topics *t, mcl__tp_prow *p)
{
    if (p->t->solo)
        unsolo(p->t);
    mcl__tp_prow **pp = &t->ptab[hash_pair(p->publisher, p->t) & (t->pbuckets - 1)];
    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    if (p->tprev != NULL)
        p->tprev->tnext = p->tnext;
    else
        p->t->pairs = p->tnext;
    if (p->tnext != NULL)
        p->tnext->tprev = p->tprev;
    if (p->t->last_pair == p)
        p->t->last_pair = NULL;
    p->t->npairs--;
    if (t->dg_pair == p)
        t->dg_pair = NULL;
    if (t->fast == p)
        t->fast = NULL;
    t->npairs--;
    mcl__free(p);
}

// A full topic table: drops every row not seen within the window before `now` (and its
// pairs). Scans again only once a row can have become stale.
static void
evict_topics(mcl__topics *t, int64_t now)
{
    if (now < t->tscan_after)
        return;
    publish_locked(t);
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < t->tbuckets; i++)
        for (mcl__tp_trow **rp = &t->ttab[i]; *rp != NULL;) {
            mcl__tp_trow *r = *rp;
            int64_t last = topic_live(r)->last_mono;
            if (now - last <= t->window_ns) {
                if (last + t->window_ns < next)
                    next = last + t->window_ns;
                rp = &r->next;
                continue;
            }
            while (r->pairs != NULL)
                pair_drop(t, r->pairs);
            *rp = r->next;
            if (t->last_topic == r)
                t->last_topic = NULL;
            t->ntopics--;
            mcl__free(r);
        }
    t->tscan_after = next == INT64_MAX ? 0 : next + 1;
}

static void
evict_pairs(mcl__topics *t, int64_t now)
{
    if (now < t->pscan_after)
        return;
    publish_locked(t);
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < t->pbuckets; i++)
        for (mcl__tp_prow *p = t->ptab[i], *nx; p != NULL; p = nx) {
            nx = p->next;
            if (now - p->s.live.last_mono > t->window_ns)
                pair_drop(t, p);
            else if (p->s.live.last_mono + t->window_ns < next)
                next = p->s.live.last_mono + t->window_ns;
        }
    t->pscan_after = next == INT64_MAX ? 0 : next + 1;
}

static mcl__tp_trow *
topic_new(mcl__topics *t, const char *topic, size_t tl, uint64_t h, int64_t now)
{
    if (t->ntopics >= t->max_topics) {
        evict_topics(t, now);
        if (t->ntopics >= t->max_topics)
            return NULL;
    }
    mcl__tp_trow *r = mcl__zalloc(sizeof(*r) + tl + 1);
    if (r == NULL)
        return NULL;
    r->hash = h;
    r->solo = true;
    r->tl = tl;
    memcpy(r->name, topic, tl);
    r->name[tl] = '\0';
    if (t->ntopics >= t->tbuckets)
        grow_topics(t);
    mcl__tp_trow **b = &t->ttab[h & (t->tbuckets - 1)];
    r->next = *b;
    *b = r;
    t->ntopics++;
    return r;
}

static mcl__tp_prow *
pair_new(mcl__topics *t, mcl__tp_trow *r, uint64_t publisher, int64_t now)
{
    if (t->npairs >= t->max_pairs) {
        evict_pairs(t, now);
        if (t->npairs >= t->max_pairs)
            return NULL;
    }
    mcl__tp_prow *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->t = r;
    p->publisher = publisher;
    if (t->npairs >= t->pbuckets)
        grow_pairs(t);
    mcl__tp_prow **b = &t->ptab[hash_pair(publisher, r) & (t->pbuckets - 1)];
    p->next = *b;
    *b = p;
    p->tnext = r->pairs;
    if (r->pairs != NULL)
        r->pairs->tprev = p;
    r->pairs = p;
    r->npairs++;
    t->npairs++;
    return p;
}

// Moves the ring on to the second of `mono`.
static void
advance(mcl__tp_core *c, int64_t mono)
{
    int64_t s = mono / NS;
    int64_t steps = s - c->sec;
    if (steps >= MCL__TOPICS_NB) {
        memset(c->b, 0, sizeof(c->b));
        c->cur = 0;
    } else {
        for (int64_t k = 0; k < steps; k++) {
            c->cur = c->cur + 1 == MCL__TOPICS_NB ? 0 : c->cur + 1;
            memset(&c->b[c->cur], 0, sizeof(c->b[0]));
        }
    }
    c->sec = s;
    c->sec_end = (s + 1) * NS;
}

static void
core_add(mcl__tp_core *c, const mcl_raw_msg *m, int64_t window_ns)
{
    int64_t t = m->recv_mono_ns < 0 ? 0 : m->recv_mono_ns;
    uint64_t len = m->len;
    if (MCL__UNLIKELY(c->messages == 0)) {
        c->first_real = m->recv_realtime_ns;
        c->first_mono = t;
        c->size_min = c->size_max = len;
        c->sec = t / NS;
        c->sec_end = (c->sec + 1) * NS;
    } else {
        if (MCL__UNLIKELY(t >= c->sec_end))
            advance(c, t);
        int64_t dt = t - c->last_mono;
        // A gap longer than the window is a pause, not an inter-arrival time; a negative one
        // (stamps of different datagrams out of order) is no measurement.
        if (MCL__LIKELY(dt >= 0 && dt <= window_ns)) {
            mcl__tp_bucket *b = &c->b[c->cur];
            b->gaps++;
            b->gsum += (uint64_t)dt;
            b->gsq += (double)dt * (double)dt;
        }
        if (len < c->size_min)
            c->size_min = len;
        if (len > c->size_max)
            c->size_max = len;
    }
    mcl__tp_bucket *b = &c->b[c->cur];
    b->n++;
    b->bytes += len;
    c->messages++;
    c->bytes += len;
    if (t > c->last_mono)
        c->last_mono = t;
    c->last_real = m->recv_realtime_ns;
}

static void
core_type(mcl__tp_core *c, const uint8_t *name, size_t len)
{
    if (len > MCL__TOPICS_TYPE_SZ - 1)
        len = MCL__TOPICS_TYPE_SZ - 1;
    if (!c->typed) {
        if (len > 0)
            memcpy(c->type, name, len);
        c->type[len] = '\0';
        c->type_len = (uint8_t)len;
        c->typed = true;
    } else if (!c->mixed && (len != c->type_len || (len > 0 && memcmp(c->type, name, len) != 0))) {
        c->mixed = true;
    }
}

// A message of a topic or pair without a row yet: rows made under the lock (or the message
// counted untracked). False when not even the topic has a row.
static bool
make_rows(mcl__topics *t, const mcl_raw_msg *m, const char *topic, size_t tl, mcl__tp_trow **rp,
          mcl__tp_prow **pp)
{
    bool ok = true;
    pthread_mutex_lock(&t->lock);
    if (*rp == NULL &&
        (*rp = topic_new(t, topic, tl, hash_topic(topic, tl), m->recv_mono_ns)) == NULL) {
        t->untracked++;
        ok = false;
    } else if (*pp == NULL) {
        mcl__tp_trow *r = *rp;
        if (r->solo && r->npairs > 0)
            unsolo(r); // a second publisher
        if ((*pp = pair_new(t, r, m->publisher, m->recv_mono_ns)) == NULL) {
            t->untracked++;
            if (r->solo)
                unsolo(r);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void
mcl__topics_count_slow(mcl__topics *t, const mcl_raw_msg *m, bool publish)
{
    const char *topic = m->topic != NULL ? m->topic : "";
    size_t tl = m->topic != NULL ? m->topic_len : 0;
    // Lookups without the lock: only this thread changes the tables.
    mcl__tp_trow *r = t->last_topic;
    if (r == NULL || r->tl != tl || !mcl__same_short(r->name, topic, tl))
        r = topic_find(t, topic, tl, hash_topic(topic, tl));
    mcl__tp_prow *p = r != NULL ? pair_find(t, r, m->publisher) : NULL;
    // The type, looked at on a topic's first message, a pair's first, and every 64th.
    bool peek = r == NULL || p == NULL || topic_live(r)->messages % MCL__TOPICS_PEEK_EVERY == 0;
    if (MCL__UNLIKELY(p == NULL) && !make_rows(t, m, topic, tl, &r, &p))
        goto out;
    const uint8_t *name = NULL;
    size_t nl = 0;
    if (MCL__UNLIKELY(peek) && (m->payload == NULL || !peek_name(m->payload, m->len, &name, &nl)))
        nl = 0;
    t->last_topic = r;
    if (!r->solo) {
        core_add(&r->s.live, m, t->live_window_ns);
        if (peek)
            core_type(&r->s.live, name, nl);
        mark(t, &r->s);
    }
    if (p != NULL) {
        r->last_pair = p;
        if (MCL__UNLIKELY(p->s.live.messages > 0 && m->seq < p->highest)) {
            // Late on this topic (after a later message of the same publisher on it); a jump
            // back by 2^32 or more is a restart, as the receive engine sees it.
            if (p->highest - m->seq < ((uint64_t)1 << 32)) {
                p->s.live.reordered++;
                if (!r->solo)
                    r->s.live.reordered++;
            } else {
                p->highest = m->seq;
            }
        } else {
            p->highest = m->seq;
        }
        core_add(&p->s.live, m, t->live_window_ns);
        if (peek)
            core_type(&p->s.live, name, nl);
        mark(t, &p->s);
    }
    t->fast = p != NULL && r->solo ? p : NULL;
out:
    if (++t->pending >= MCL__TOPICS_PUBLISH_EVERY || publish)
        mcl__topics_publish(t);
}

// The pair row of (publisher, topic), without the lock (receiving thread only).
static inline mcl__tp_prow *
pair_lookup(const mcl__topics *t, uint64_t publisher, const char *topic, size_t tl)
{
    const mcl__tp_trow *r = t->last_topic;
    if (r == NULL || r->tl != tl || !mcl__same_short(r->name, topic, tl))
        r = topic_find(t, topic, tl, hash_topic(topic, tl));
    return r != NULL ? pair_find(t, r, publisher) : NULL;
}

static void
add_lost(mcl__topics *t, mcl__tp_prow *p, uint64_t lost)
{
    p->s.live.lost += lost;
    mark(t, &p->s);
    if (!p->t->solo) {
        p->t->s.live.lost += lost;
        mark(t, &p->t->s);
    }
}

void
mcl__topics_lost(mcl__topics *t, uint64_t publisher, const char *topic, size_t tl, uint64_t n)
{
    mcl__tp_prow *p;
    if (t != NULL && n > 0 && (p = pair_lookup(t, publisher, topic, tl)) != NULL) {
        add_lost(t, p, n);
        mcl__topics_publish(t);
    }
}

void
mcl__topics_dgram(mcl__topics *t, uint64_t publisher, const char *topic, size_t tl, uint64_t lost,
                  uint64_t dups_total)
{
    mcl__tp_prow *p = pair_lookup(t, publisher, topic, tl);
    t->dg_pair = p; // NULL before the pair's first message: nothing to attribute then
    t->dg_dups = dups_total;
    if (p != NULL && lost > 0)
        add_lost(t, p, lost);
}

void
mcl__topics_dgram_end_slow(mcl__topics *t, uint64_t dups_total, bool publish)
{
    mcl__tp_prow *p = t->dg_pair;
    if (p != NULL) {
        t->dg_pair = NULL;
        if (dups_total > t->dg_dups) {
            p->s.live.dups += dups_total - t->dg_dups;
            mark(t, &p->s);
            if (!p->t->solo) {
                p->t->s.live.dups += dups_total - t->dg_dups;
                mark(t, &p->t->s);
            }
        }
    }
    if (publish)
        mcl__topics_publish(t);
}

mcl_err
mcl__topics_set_options(mcl__topics *t, const mcl_topic_stats_options *o)
{
    if (t == NULL || o == NULL)
        return MCL_EINVAL;
    if (o->window_ms < 0 || (o->window_ms > 0 && (o->window_ms < 1000 || o->window_ms > 16000)) ||
        o->max_topics > MAX_CAP || o->max_pairs > MAX_CAP)
        return MCL_EINVAL;
    pthread_mutex_lock(&t->lock);
    t->window_ns = o->window_ms > 0 ? (int64_t)(o->window_ms / 1000) * NS : DEF_WINDOW_S * NS;
    t->max_topics = o->max_topics > 0 ? o->max_topics : DEF_MAX_TOPICS;
    t->max_pairs = o->max_pairs > 0 ? o->max_pairs : DEF_MAX_PAIRS;
    t->tscan_after = t->pscan_after = 0;
    pthread_mutex_unlock(&t->lock);
    return MCL_OK;
}

uint64_t
mcl__topics_untracked(mcl__topics *t)
{
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint64_t n = t->untracked;
    pthread_mutex_unlock(&t->lock);
    return n;
}

// ---- readers --------------------------------------------------------------------------------

// The bucket of second s, or NULL when the ring no longer (or not yet) holds it.
static const mcl__tp_bucket *
bucket_of(const mcl__tp_core *c, int64_t s)
{
    int64_t back = c->sec - s;
    if (back < 0 || back >= MCL__TOPICS_NB)
        return NULL;
    return &c->b[(c->cur + MCL__TOPICS_NB - (unsigned)back) % MCL__TOPICS_NB];
}

// The window is the last W whole seconds plus the current partial one (W = window / 1 s),
// or, for a row first seen inside it, the time since its first message (which then only
// marks the start: n - 1 messages in that time).
static void
fill(const mcl__tp_core *c, int64_t window_ns, int64_t now, mcl_topic_stats *o)
{
    if (now < 0)
        now = 0;
    int64_t nows = now / NS, w = window_ns / NS;
    uint64_t n = 0, bytes = 0, gaps = 0, gsum = 0;
    double gsq = 0;
    for (int64_t s = nows - w; s <= nows; s++) {
        const mcl__tp_bucket *b = bucket_of(c, s);
        if (b == NULL)
            continue;
        n += b->n;
        bytes += b->bytes;
        gaps += b->gaps;
        gsum += b->gsum;
        gsq += b->gsq;
    }
    for (int k = 0; k < HIST; k++) {
        const mcl__tp_bucket *b = bucket_of(c, nows - HIST + k);
        o->rate_history[k] = b != NULL ? b->n : 0;
    }
    int64_t start = (nows - w) * NS;
    double count = (double)n;
    if (c->first_mono > start) {
        start = c->first_mono;
        count = n > 0 ? (double)(n - 1) : 0;
    }
    double dur = (double)(now - start) / 1e9;
    o->rate_hz = dur > 0 ? count / dur : 0;
    o->bandwidth_bps = n > 0 ? o->rate_hz * (double)bytes / (double)n : 0;
    if (gaps > 0) {
        double mean = (double)gsum / (double)gaps;
        double var = gsq / (double)gaps - mean * mean;
        o->period_ms = mean / 1e6;
        o->jitter_ms = var > 0 ? sqrt(var) / 1e6 : 0;
    } else {
        o->period_ms = o->jitter_ms = 0;
    }
    o->messages = c->messages;
    o->bytes = c->bytes;
    o->size_min = c->size_min;
    o->size_max = c->size_max;
    o->size_mean = c->messages > 0 ? (double)c->bytes / (double)c->messages : 0;
    o->lost = c->lost;
    o->duplicates = c->dups;
    o->reordered = c->reordered;
    o->first_seen_ns = c->first_real;
    o->last_seen_ns = c->last_real;
    if (c->mixed)
        strcpy(o->type, "(mixed)");
    else
        memcpy(o->type, c->type, (size_t)c->type_len + 1);
}

static int
cmp_topic(const void *a, const void *b)
{
    const void *const *pa = a, *const *pb = b;
    const mcl__tp_trow *x = *pa, *y = *pb;
    return strcmp(x->name, y->name);
}

static int
cmp_pair(const void *a, const void *b)
{
    const void *const *pa = a, *const *pb = b;
    const mcl__tp_prow *x = *pa, *y = *pb;
    int c = x->t == y->t ? 0 : strcmp(x->t->name, y->t->name);
    if (c != 0)
        return c;
    return x->publisher < y->publisher ? -1 : x->publisher > y->publisher;
}

static void
fill_topic(const mcl__topics *t, const mcl__tp_trow *r, int64_t now, mcl_topic_stats *o)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->topic, r->name, r->tl + 1);
    o->publishers = r->npairs;
    fill(topic_shown(r), t->window_ns, now, o);
}

static void
fill_pair(const mcl__topics *t, const mcl__tp_prow *p, int64_t now, mcl_topic_stats *o)
{
    memset(o, 0, sizeof(*o));
    memcpy(o->topic, p->t->name, p->t->tl + 1);
    o->publisher = p->publisher;
    o->publishers = 1;
    fill(&p->s.shown, t->window_ns, now, o);
}

size_t
mcl__topics_rows(mcl__topics *t, int64_t now, bool pairs, const char *topic, mcl_topic_stats *out,
                 size_t cap)
{
    if (t == NULL)
        return 0;
    if (out == NULL)
        cap = 0;
    pthread_mutex_lock(&t->lock);
    const mcl__tp_trow *only = NULL;
    size_t total;
    if (!pairs) {
        total = t->ntopics;
    } else if (topic != NULL) {
        size_t tl = strlen(topic);
        only = topic_find(t, topic, tl, hash_topic(topic, tl));
        total = only != NULL ? only->npairs : 0;
    } else {
        total = t->npairs;
    }
    if (cap > 0 && total > 0) {
        // Sorted through an array of row pointers. Out of memory: unsorted, straight from
        // the tables.
        const void **v = mcl__alloc(total * sizeof(*v));
        size_t k = 0;
        if (!pairs) {
            for (size_t i = 0; i < t->tbuckets; i++)
                for (const mcl__tp_trow *r = t->ttab[i]; r != NULL; r = r->next) {
                    if (v != NULL)
                        v[k++] = r;
                    else if (k < cap)
                        fill_topic(t, r, now, &out[k++]);
                }
        } else if (only != NULL) {
            for (const mcl__tp_prow *p = only->pairs; p != NULL; p = p->tnext) {
                if (v != NULL)
                    v[k++] = p;
                else if (k < cap)
                    fill_pair(t, p, now, &out[k++]);
            }
        } else {
            for (size_t i = 0; i < t->pbuckets; i++)
                for (const mcl__tp_prow *p = t->ptab[i]; p != NULL; p = p->next) {
                    if (v != NULL)
                        v[k++] = p;
                    else if (k < cap)
                        fill_pair(t, p, now, &out[k++]);
                }
        }
        if (v != NULL) {
            qsort(v, k, sizeof(*v), pairs ? cmp_pair : cmp_topic);
            for (size_t i = 0; i < k && i < cap; i++) {
                if (pairs)
                    fill_pair(t, v[i], now, &out[i]);
                else
                    fill_topic(t, v[i], now, &out[i]);
            }
            mcl__free(v);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return total;
}

size_t
mcl_raw_type_name(const void *payload, size_t len, char *out, size_t outsz)
{
    if (out != NULL && outsz > 0)
        out[0] = '\0';
    if (payload == NULL || out == NULL || outsz == 0)
        return 0;
    return mcl__type_peek(payload, len, out, outsz);
}
