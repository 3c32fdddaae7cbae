// SPDX-License-Identifier: BSD-3-Clause
// Per (publisher, topic) counters: see tseq.h. An open-addressing table keyed by both, with a
// one-entry cache (a broadcaster or a burst of frames asks for the same pair again).
#include "tseq.h"

#include "../core/internal.h"

#include <string.h>

typedef mcl__tseq_entry tseq_entry;

enum { TSEQ_MAX = 65536 };

mcl__tseq *
mcl__tseq_new(void)
{
    return mcl__zalloc(sizeof(mcl__tseq));
}

static void
tseq_clear(mcl__tseq *t)
{
    for (size_t i = 0; i < t->cap; i++)
        mcl__free(t->e[i].topic);
    mcl__free(t->e);
    t->e = NULL;
    t->cap = t->n = 0;
    t->last = NULL;
}

void
mcl__tseq_free(mcl__tseq *t)
{
    if (t == NULL)
        return;
    tseq_clear(t);
    mcl__free(t);
}

static uint64_t
tseq_hash(uint64_t pub, const char *topic, size_t tl)
{
    uint64_t h = pub ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ (uint8_t)topic[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

uint64_t *
mcl__tseq_find(mcl__tseq *t, uint64_t pub, const char *topic, size_t tl, bool *created)
{
    *created = false;
    if (t->n >= TSEQ_MAX) // forget all: the next message of each pair starts it afresh
        tseq_clear(t);
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        tseq_entry *ne = mcl__zalloc(ncap * sizeof(*ne));
        if (ne == NULL)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (t->e[i].topic == NULL)
                continue;
            size_t j = (size_t)t->e[i].hash & (ncap - 1);
            while (ne[j].topic != NULL)
                j = (j + 1) & (ncap - 1);
            ne[j] = t->e[i];
        }
        mcl__free(t->e);
        t->e = ne;
        t->cap = ncap;
        t->last = NULL; // it pointed into the old array
    }
    uint64_t h = tseq_hash(pub, topic, tl);
    size_t j = (size_t)h & (t->cap - 1);
    for (; t->e[j].topic != NULL; j = (j + 1) & (t->cap - 1)) {
        tseq_entry *e = &t->e[j];
        if (e->hash == h && e->pub == pub && e->tl == tl && memcmp(e->topic, topic, tl) == 0) {
            t->last = e;
            return &e->value;
        }
    }
    char *copy = mcl__alloc(tl + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, topic, tl);
    copy[tl] = '\0';
    t->e[j] = (tseq_entry){.pub = pub, .hash = h, .topic = copy, .tl = tl, .value = 0};
    t->n++;
    t->last = &t->e[j];
    *created = true;
    return &t->e[j].value;
}

