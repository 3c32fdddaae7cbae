// SPDX-License-Identifier: BSD-3-Clause
// Hash map and deadline heap: see u64map.h.
#include "u64map.h"

#include "internal.h"

#include <string.h>

static inline size_t
slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

void
mcl__u64map_init(mcl__u64map *m)
{
    memset(m, 0, sizeof(*m));
}

void
mcl__u64map_fini(mcl__u64map *m)
{
    mcl__free(m->keys);
    mcl__free(m->vals);
    memset(m, 0, sizeof(*m));
}

void *
mcl__u64map_get(const mcl__u64map *m, uint64_t key)
{
    if (m->n == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->keys[i] == key)
            return m->vals[i];
    }
}

static mcl_err
resize(mcl__u64map *m, size_t ncap)
{
    uint64_t *nk = mcl__alloc(ncap * sizeof(*nk));
    void **nv = mcl__zalloc(ncap * sizeof(*nv));
    if (nk == NULL || nv == NULL) {
        mcl__free(nk);
        mcl__free(nv);
        return MCL_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->vals[i] == NULL)
            continue;
        size_t j = slot_of(m->keys[i], ncap);
        while (nv[j] != NULL)
            j = (j + 1) & (ncap - 1);
        nk[j] = m->keys[i];
        nv[j] = m->vals[i];
    }
    mcl__free(m->keys);
    mcl__free(m->vals);
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    return MCL_OK;
}

mcl_err
mcl__u64map_put(mcl__u64map *m, uint64_t key, void *val)
{
    if (m->cap == 0 || (m->n + 1) * 4 > m->cap * 3) { // load at most 3/4
        mcl_err rv = resize(m, m->cap ? m->cap * 2 : 16);
        if (rv != MCL_OK)
            return rv;
    }
    size_t i = slot_of(key, m->cap);
    for (; m->vals[i] != NULL; i = (i + 1) & (m->cap - 1))
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return MCL_OK;
        }
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return MCL_OK;
}

void *
mcl__u64map_del(mcl__u64map *m, uint64_t key)
{
    if (m->n == 0)
        return NULL;
    size_t mask = m->cap - 1, i = slot_of(key, m->cap);
    for (;; i = (i + 1) & mask) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->keys[i] == key)
            break;
    }
    void *val = m->vals[i];
    // Backward shift: pull later entries of the probe run into the hole where they belong.
    for (size_t j = (i + 1) & mask; m->vals[j] != NULL; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        // j may move to i if its home is not in the cyclic interval (i, j].
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        m->keys[i] = m->keys[j];
        m->vals[i] = m->vals[j];
        i = j;
    }
    m->vals[i] = NULL;
    m->n--;
    // Shrink when mostly empty, so that a burst does not keep its memory for ever.
    if (m->cap > 64 && m->n * 8 < m->cap)
        (void)resize(m, m->cap / 2); // out of memory: keep the larger table
    return val;
}

void
mcl__u64map_each(const mcl__u64map *m, void (*fn)(uint64_t key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] != NULL)
            fn(m->keys[i], m->vals[i], arg);
}

// --- heap ----------------------------------------------------------------------------------------

void
mcl__heap_init(mcl__heap *h)
{
    memset(h, 0, sizeof(*h));
}

void
mcl__heap_fini(mcl__heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->a[i]->index = 0;
    mcl__free(h->a);
    memset(h, 0, sizeof(*h));
}

static bool
before(const mcl__heap_node *a, const mcl__heap_node *b)
{
    return a->due < b->due || (a->due == b->due && a->order < b->order);
}

static void
place(mcl__heap *h, size_t i, mcl__heap_node *x)
{
    h->a[i] = x;
    x->index = i + 1;
}

static void
sift_up(mcl__heap *h, size_t i)
{
    mcl__heap_node *x = h->a[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(x, h->a[p]))
            break;
        place(h, i, h->a[p]);
        i = p;
    }
    place(h, i, x);
}

static void
sift_down(mcl__heap *h, size_t i)
{
    mcl__heap_node *x = h->a[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->a[c + 1], h->a[c]))
            c++;
        if (!before(h->a[c], x))
            break;
        place(h, i, h->a[c]);
        i = c;
    }
    place(h, i, x);
}

mcl_err
mcl__heap_push(mcl__heap *h, mcl__heap_node *x)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        mcl__heap_node **na = mcl__realloc(h->a, nc * sizeof(*na));
        if (na == NULL)
            return MCL_ENOMEM;
        h->a = na;
        h->cap = nc;
    }
    h->a[h->n] = x;
    sift_up(h, h->n++);
    return MCL_OK;
}

void
mcl__heap_remove(mcl__heap *h, mcl__heap_node *x)
{
    if (x->index == 0)
        return;
    size_t i = x->index - 1;
    x->index = 0;
    mcl__heap_node *last = h->a[--h->n];
    if (i == h->n)
        return;
    h->a[i] = last;
    last->index = i + 1;
    mcl__heap_fix(h, last);
    if (h->cap > 64 && h->n * 8 < h->cap) { // give a burst's memory back
        mcl__heap_node **na = mcl__realloc(h->a, (h->cap / 2) * sizeof(*na));
        if (na != NULL) {
            h->a = na;
            h->cap /= 2;
        }
    }
}

void
mcl__heap_fix(mcl__heap *h, mcl__heap_node *x)
{
    size_t i = x->index - 1;
    if (i > 0 && before(x, h->a[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
