// SPDX-License-Identifier: BSD-3-Clause
// Single-producer single-consumer ring of variable-size records in memory shared between two
// processes (or threads). Lock-free: the producer owns `head`, the consumer owns `tail`, both
// are byte counts that only grow; a record is visible once head moves past it.
//
// Record framing: u32 size (bytes, header included, multiple of 8), u32 kind, then the body.
// A record never wraps: when it does not fit before the end, a PAD record fills the rest.
#ifndef MCL__RING_H
#define MCL__RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { MCL__RING_ALIGN = 8, MCL__RING_REC_HDR = 8 };

typedef struct mcl__ring_shm {
    _Alignas(64) _Atomic uint64_t head; // written by the producer
    _Alignas(64) _Atomic uint64_t tail; // written by the consumer
    _Alignas(64) uint64_t capacity;     // bytes of data, a multiple of 8
    _Atomic uint64_t high_water;        // most bytes ever in use (producer)
    _Atomic uint32_t waiting;           // the consumer sleeps until told (see mcl__ring_commit)
} mcl__ring_shm;

typedef struct mcl__ring {
    mcl__ring_shm *shm;
    uint8_t *data;
    uint64_t cap;
    uint64_t res_pos, res_size; // producer: reservation in progress
    uint64_t cur_size;          // consumer: size of the record being read
} mcl__ring;

// Bytes to map for a ring of `capacity` data bytes (rounded up to 8).
size_t mcl__ring_bytes(size_t capacity);
// Initialises the shared header in `mem` (zeroed memory of mcl__ring_bytes()).
void mcl__ring_init(void *mem, size_t capacity);
// Attaches a local view (both sides call it on the same memory).
void mcl__ring_attach(mcl__ring *r, void *mem);
// Largest body that can ever be stored.
size_t mcl__ring_max_body(const mcl__ring *r);

// Producer: room for a record body of `len` bytes, or NULL when the ring is too full now
// (never waits). Then mcl__ring_commit() publishes it; returns true when the consumer asked to
// be woken (the caller then signals it, e.g. with an eventfd).
void *mcl__ring_reserve(mcl__ring *r, size_t len, uint32_t kind);
bool mcl__ring_commit(mcl__ring *r);
// Producer: the reservation in progress holds only len bytes of body (len <= what was
// reserved); what follows is free again once it is committed.
void mcl__ring_shrink(mcl__ring *r, size_t len);

// Consumer: the next record body (and its kind, length), or NULL when empty. The body stays
// valid until mcl__ring_release().
const void *mcl__ring_peek(mcl__ring *r, uint32_t *kind, size_t *len);
void mcl__ring_release(mcl__ring *r);
// Consumer: announce a wait. Returns false when data arrived meanwhile (do not wait then).
bool mcl__ring_prepare_wait(mcl__ring *r);
void mcl__ring_cancel_wait(mcl__ring *r);
uint64_t mcl__ring_used(const mcl__ring *r);

#endif
