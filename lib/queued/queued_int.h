// SPDX-License-Identifier: BSD-3-Clause
// Queued listener internals shared with the tests: the shared-memory header and the sequence
// tracking that carries loss accounting across receiver restarts.
#ifndef MCL__QUEUED_INT_H
#define MCL__QUEUED_INT_H

#include <mcl/raw.h>

#include "../core/source.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum { MCL__QUEUED_PUBTAB = 4096 };              // publishers tracked across receiver restarts
#define MCL__QUEUED_SEQ_JUMP ((uint64_t)1 << 32) // as the receive engine: larger jumps restart

// Shared between this process and the receiver; the ring follows it in the same mapping.
typedef struct mcl__queued_shared {
    _Atomic uint32_t stats_seq; // seqlock over `cur` (odd while the receiver writes)
    mcl_listener_stats cur;     // the current receiver's counters
    _Atomic uint64_t ring_drops, ring_oversize, restart_lost;
    _Atomic uint64_t ring_direct; // messages read straight into the ring
    uint32_t generation; // which receiver this is (set before each fork)
    _Atomic uint32_t ready; // the generation of the receiver that is reading (start_receiver)
    _Atomic int32_t pin_errno; // the first receiver could not be pinned (receiver_cpus): errno
    // The message the receiver is handling now (pub 0: none): it is put in the ring (or
    // counted as dropped) and then tracked, and a receiver killed between the two would leave
    // a delivered message looking lost to the next one. mcl__queued_settle() decides it.
    _Atomic uint64_t inflight_pub;
    uint64_t inflight_seq, inflight_head, inflight_drops;
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

// The receiver is about to put (pub, seq) in the ring whose head is at `head` (drops: the ring
// drop counters now).
static inline void
mcl__queued_inflight(mcl__queued_shared *sh, uint64_t pub, uint64_t seq, uint64_t head)
{
    sh->inflight_seq = seq;
    sh->inflight_head = head;
    sh->inflight_drops = atomic_load_explicit(&sh->ring_drops, memory_order_relaxed) +
                         atomic_load_explicit(&sh->ring_oversize, memory_order_relaxed);
    atomic_store_explicit(&sh->inflight_pub, pub, memory_order_release);
}

static inline void
mcl__queued_inflight_done(mcl__queued_shared *sh)
{
    atomic_store_explicit(&sh->inflight_pub, 0, memory_order_release);
}

// After a receiver died, before the next one starts: the message it was handling counts as
// handled (tracked) if it reached the ring (the ring's head moved past `inflight_head`) or was
// counted as dropped; otherwise it was lost in the dead receiver's hands and is left a gap.
static inline void
mcl__queued_settle(mcl__queued_shared *sh, uint64_t ring_head)
{
    uint64_t pub = atomic_load_explicit(&sh->inflight_pub, memory_order_acquire);
    if (pub == 0)
        return;
    uint64_t drops = atomic_load_explicit(&sh->ring_drops, memory_order_relaxed) +
                     atomic_load_explicit(&sh->ring_oversize, memory_order_relaxed);
    if (ring_head > sh->inflight_head || drops > sh->inflight_drops) {
        mcl__queued_child dead = {sh, sh->generation};
        mcl__queued_track(&dead, pub, sh->inflight_seq);
    }
    atomic_store_explicit(&sh->inflight_pub, 0, memory_order_relaxed);
}

// The queued listener as an event source (mcl_reactor_add_queued_listener()).
extern const mcl__source_ops mcl__queued_listener_source;

#endif
