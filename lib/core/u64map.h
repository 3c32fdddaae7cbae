// SPDX-License-Identifier: BSD-3-Clause
// A hash map from 64-bit keys to pointers (open addressing, linear probing, deletion by
// backward shift: no tombstones, so a table that churns through millions of keys stays as
// small as what it holds), and a min-heap of deadlines whose entries know their place, so any
// entry is removed in O(log n). Both are single-threaded: the owner locks. Internal.
#ifndef MCL__U64MAP_H
#define MCL__U64MAP_H

#include <mcl/err.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mcl__u64map {
    uint64_t *keys;
    void **vals; // NULL: empty slot (so values are never NULL)
    size_t cap;  // a power of two, or 0
    size_t n;
} mcl__u64map;

void mcl__u64map_init(mcl__u64map *m);
void mcl__u64map_fini(mcl__u64map *m);
// The value of key, or NULL.
void *mcl__u64map_get(const mcl__u64map *m, uint64_t key);
// Inserts or replaces (val must not be NULL). MCL_ENOMEM leaves the map as it was.
mcl_err mcl__u64map_put(mcl__u64map *m, uint64_t key, void *val);
// Removes key; returns its value (NULL if absent).
void *mcl__u64map_del(mcl__u64map *m, uint64_t key);
// Calls fn for every entry (the map must not change meanwhile).
void mcl__u64map_each(const mcl__u64map *m, void (*fn)(uint64_t key, void *val, void *arg),
                      void *arg);

// An entry of a deadline heap: embed it in the object that has the deadline. Entries with the
// same due come out in the order of `order` (the owner numbers them, or leaves 0).
typedef struct mcl__heap_node {
    int64_t due;    // CLOCK_MONOTONIC ns
    uint64_t order; // breaks ties
    size_t index;   // its place + 1; 0 when not in a heap
} mcl__heap_node;

typedef struct mcl__heap {
    mcl__heap_node **a;
    size_t n, cap;
} mcl__heap;

void mcl__heap_init(mcl__heap *h);
void mcl__heap_fini(mcl__heap *h);
// Adds x (not in a heap yet) with x->due set. MCL_ENOMEM leaves the heap as it was.
mcl_err mcl__heap_push(mcl__heap *h, mcl__heap_node *x);
// Removes x if it is in the heap.
void mcl__heap_remove(mcl__heap *h, mcl__heap_node *x);
// Puts x (in the heap) back in its place after its due or order changed.
void mcl__heap_fix(mcl__heap *h, mcl__heap_node *x);
// The earliest entry, or NULL.
static inline mcl__heap_node *
mcl__heap_top(const mcl__heap *h)
{
    return h->n > 0 ? h->a[0] : NULL;
}

#endif
