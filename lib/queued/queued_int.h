// Queued listener internals shared with the tests: the shared-memory header and the sequence
// tracking that carries loss accounting across receiver restarts.
#ifndef MCL__QUEUED_INT_H
#define MCL__QUEUED_INT_H

#include <mcl/raw.h>

#include "../core/source.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { MCL__QUEUED_PUBTAB = 4096 }; // publishers tracked across receiver restarts
#define MCL__QUEUED_SEQ_JUMP ((uint64_t)1 << 32) // as the receive engine: larger jumps restart

// Shared between this process and the receiver; the ring follows it in the same mapping.
typedef struct mcl__queued_shared {
    _Atomic uint32_t stats_seq; // seqlock over `cur` (odd while the receiver writes)
    mcl_listener_stats cur;     // the current receiver's counters
    _Atomic uint64_t ring_drops, ring_oversize, restart_lost;
    uint32_t generation; // which receiver this is (set before each fork)
    struct {
        uint64_t pub, last;
        uint32_t gen;
    } pubs[MCL__QUEUED_PUBTAB]; // written by the receiver only
} mcl__queued_shared;

typedef struct mcl__queued_child {
    mcl__queued_shared *sh;
    uint32_t gen;
} mcl__queued_child;

// Records that (pub, seq) was handled (written to the ring, dropped and counted, or filtered):
// sequence tracking that survives receiver restarts, so that messages lost in a dead
// receiver's hands show up as gaps when the next receiver first hears that publisher.
static inline void
mcl__queued_track(mcl__queued_child *c, uint64_t pub, uint64_t seq)
{
    size_t h = (size_t)(pub * 0x9e3779b97f4a7c15ULL >> 52) % MCL__QUEUED_PUBTAB;
    for (size_t k = 0; k < MCL__QUEUED_PUBTAB; k++) {
        size_t i = (h + k) % MCL__QUEUED_PUBTAB;
        if (c->sh->pubs[i].pub == 0) {
            c->sh->pubs[i].pub = pub;
            c->sh->pubs[i].last = seq;
            c->sh->pubs[i].gen = c->gen;
            return;
        }
        if (c->sh->pubs[i].pub != pub)
            continue;
        if (c->sh->pubs[i].gen != c->gen) { // first sighting by this receiver
            uint64_t last = c->sh->pubs[i].last;
            if (seq > last + 1 && seq - last < MCL__QUEUED_SEQ_JUMP)
                atomic_fetch_add(&c->sh->restart_lost, seq - last - 1);
            c->sh->pubs[i].gen = c->gen;
            c->sh->pubs[i].last = seq;
        } else if (seq > c->sh->pubs[i].last) {
            c->sh->pubs[i].last = seq;
        }
        return;
    }
}

// The queued listener as an event source (mcl_reactor_add_queued_listener()).
extern const mcl__source_ops mcl__queued_listener_source;

#endif
