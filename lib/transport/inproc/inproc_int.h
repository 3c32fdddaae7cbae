// SPDX-License-Identifier: BSD-3-Clause
// The inproc:// transport's options, shared by its broadcast groups (inproc.c) and its pipes
// (ipipe.c). Internal to lib/transport/inproc and the tests.
#ifndef MCL__INPROC_INT_H
#define MCL__INPROC_INT_H

#include "../transport.h"

#include <stddef.h>
#include <stdint.h>

#define MCL__INPROC_NAME_MAX 128
#define MCL__INPROC_DEF_PIPEQ ((size_t)8 << 20)

typedef struct inproc_opts {
    char name[MCL__INPROC_NAME_MAX];
    // Broadcast groups: faults on a listener's link (parts per million), held-back depth,
    // the generator's seed, and the listener's queue in bytes.
    uint32_t drop, dup, reorder;
    unsigned depth;
    uint64_t seed;
    size_t queue;
    // Pipes: what one direction of a pair holds (bytes), and faults on what this side sends:
    // after `stall` packets it swallows the rest (a peer that stops answering), after `cut`
    // packets the pair breaks (both ends see MCL_ECLOSED). 0: never.
    size_t pipeq;
    uint64_t stall, cut;
} inproc_opts;

extern const mcl__tport mcl__inproc_tport;
extern const mcl__pipe_ops mcl__inproc_pipe_ops;

#endif
