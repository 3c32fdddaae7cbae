// SPDX-License-Identifier: BSD-3-Clause
#include "ring.h"

#include <string.h>

#define KIND_PAD 0xffffffffu

static inline uint64_t
align8(uint64_t n)
{
    return (n + (MCL__RING_ALIGN - 1)) & ~(uint64_t)(MCL__RING_ALIGN - 1);
}

size_t
mcl__ring_bytes(size_t capacity)
{
    return sizeof(mcl__ring_shm) + (size_t)align8(capacity);
}

void
mcl__ring_init(void *mem, size_t capacity)
{
    mcl__ring_shm *s = mem;
    atomic_store(&s->head, 0);
    atomic_store(&s->tail, 0);
    s->capacity = align8(capacity);
    atomic_store(&s->high_water, 0);
    atomic_store(&s->waiting, 0);
}

void
mcl__ring_attach(mcl__ring *r, void *mem)
{
    memset(r, 0, sizeof(*r));
    r->shm = mem;
    r->data = (uint8_t *)mem + sizeof(mcl__ring_shm);
    r->cap = r->shm->capacity;
}

size_t
mcl__ring_max_body(const mcl__ring *r)
{
    // A record may need the whole ring after a PAD, so half of it is the safe limit.
    return (size_t)(r->cap / 2 - MCL__RING_REC_HDR);
}

static inline void
put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static inline uint32_t
get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

void *
mcl__ring_reserve(mcl__ring *r, size_t len, uint32_t kind)
{
    if (len > mcl__ring_max_body(r))
        return NULL;
    uint64_t size = align8(MCL__RING_REC_HDR + len);
    uint64_t head = atomic_load_explicit(&r->shm->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->shm->tail, memory_order_acquire);
    uint64_t off = head % r->cap;
    uint64_t pad = off + size > r->cap ? r->cap - off : 0;
    if (head + pad + size - tail > r->cap)
        return NULL; // full: the caller counts a drop
    if (pad > 0) {
        // The rest of the buffer is a PAD record (at least 8 bytes: everything is aligned).
        put_u32(r->data + off, (uint32_t)pad);
        put_u32(r->data + off + 4, KIND_PAD);
        off = 0;
    }
    r->res_pos = head + pad;
    r->res_size = size;
    uint8_t *rec = r->data + off;
    put_u32(rec, (uint32_t)size);
    put_u32(rec + 4, kind);
    return rec + MCL__RING_REC_HDR;
}

void
mcl__ring_shrink(mcl__ring *r, size_t len)
{
    uint64_t size = align8(MCL__RING_REC_HDR + len);
    if (size >= r->res_size)
        return;
    r->res_size = size;
    put_u32(r->data + r->res_pos % r->cap, (uint32_t)size);
}

bool
mcl__ring_commit(mcl__ring *r)
{
    uint64_t head = r->res_pos + r->res_size;
    atomic_store_explicit(&r->shm->head, head, memory_order_seq_cst);
    uint64_t used = head - atomic_load_explicit(&r->shm->tail, memory_order_relaxed);
    if (used > atomic_load_explicit(&r->shm->high_water, memory_order_relaxed))
        atomic_store_explicit(&r->shm->high_water, used, memory_order_relaxed);
    // seq_cst store of head, then load of waiting: pairs with mcl__ring_prepare_wait().
    return atomic_exchange_explicit(&r->shm->waiting, 0, memory_order_seq_cst) != 0;
}

const void *
mcl__ring_peek(mcl__ring *r, uint32_t *kind, size_t *len)
{
    uint64_t tail = atomic_load_explicit(&r->shm->tail, memory_order_relaxed);
    for (;;) {
        uint64_t head = atomic_load_explicit(&r->shm->head, memory_order_acquire);
        if (tail == head)
            return NULL;
        const uint8_t *rec = r->data + tail % r->cap;
        uint32_t size = get_u32(rec);
        uint32_t k = get_u32(rec + 4);
        if (k == KIND_PAD) {
            tail += size;
            atomic_store_explicit(&r->shm->tail, tail, memory_order_release);
            continue;
        }
        r->cur_size = size;
        *kind = k;
        *len = size - MCL__RING_REC_HDR; // the producer's length, rounded up to 8
        return rec + MCL__RING_REC_HDR;
    }
}

void
mcl__ring_release(mcl__ring *r)
{
    uint64_t tail = atomic_load_explicit(&r->shm->tail, memory_order_relaxed);
    atomic_store_explicit(&r->shm->tail, tail + r->cur_size, memory_order_release);
    r->cur_size = 0;
}

bool
mcl__ring_prepare_wait(mcl__ring *r)
{
    atomic_store_explicit(&r->shm->waiting, 1, memory_order_seq_cst);
    uint64_t head = atomic_load_explicit(&r->shm->head, memory_order_seq_cst);
    uint64_t tail = atomic_load_explicit(&r->shm->tail, memory_order_relaxed);
    if (head != tail) {
        atomic_store_explicit(&r->shm->waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void
mcl__ring_cancel_wait(mcl__ring *r)
{
    atomic_store_explicit(&r->shm->waiting, 0, memory_order_relaxed);
}

uint64_t
mcl__ring_used(const mcl__ring *r)
{
    return atomic_load_explicit(&r->shm->head, memory_order_acquire) -
           atomic_load_explicit(&r->shm->tail, memory_order_acquire);
}
