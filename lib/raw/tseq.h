// SPDX-License-Identifier: BSD-3-Clause
// Per (publisher, topic) message numbers, for transports that filter by topic on the sending
// side (MCL__TP_PUBFILTER, zmq): a listener there sees only some of a publisher's sequence
// numbers and cannot tell a filtered message from a lost one. Every datagram therefore also
// carries the number of its first record on its topic (TSEQ); a broadcaster keeps the next
// number to give per (publisher, topic), a listener the next number it expects, and counts
// a jump as loss of that topic.
#ifndef MCL__TSEQ_H
#define MCL__TSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/internal.h" // mcl__same_short

typedef struct mcl__tseq_entry {
    uint64_t pub;
    uint64_t hash;
    char *topic; // NULL: empty slot
    size_t tl;
    uint64_t value;
} mcl__tseq_entry;

// (The layout is here for the inline cache check of mcl__tseq_slot; only tseq.c changes it.)
typedef struct mcl__tseq {
    mcl__tseq_entry *e;
    size_t cap, n;
    mcl__tseq_entry *last; // the entry of the previous call (usually asked again)
} mcl__tseq;

mcl__tseq *mcl__tseq_new(void);
void mcl__tseq_free(mcl__tseq *t);
// mcl__tseq_slot without its one-entry cache.
uint64_t *mcl__tseq_find(mcl__tseq *t, uint64_t publisher, const char *topic, size_t tl,
                         bool *created);

// The counter of (publisher, topic), 0 when new (*created is then true). NULL when out of
// memory. Valid until the next call. The table forgets everything at 65536 entries. The pair
// of the previous call (a broadcaster or a burst of frames asks for the same one again) is
// answered inline.
static inline uint64_t *
mcl__tseq_slot(mcl__tseq *t, uint64_t publisher, const char *topic, size_t tl, bool *created)
{
    mcl__tseq_entry *l = t->last;
    if (l != NULL && l->pub == publisher && l->tl == tl &&
        mcl__same_short(l->topic, topic, tl)) {
        *created = false;
        return &l->value;
    }
    return mcl__tseq_find(t, publisher, topic, tl, created);
}

#endif
