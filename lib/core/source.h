// SPDX-License-Identifier: BSD-3-Clause
// An event source that an event loop (lib/reactor) drives without knowing its type: a
// descriptor to watch and a function that handles what is ready. Every listener type exports
// one, and so will the layers above (packet streams, RPC servers). Internal, never installed.
#ifndef MCL__SOURCE_H
#define MCL__SOURCE_H

#include <mcl/err.h>

typedef struct mcl__source_ops {
    // The descriptor to watch for reading. MCL_ESTATE when the object is served by a thread
    // of its own and cannot be driven from outside; other errors: it is not usable (closed).
    mcl_err (*fd)(const void *obj, int *fd);
    // Handles everything that is ready now, without blocking; callbacks run on this thread
    // with no lock of the loop held. Called when the descriptor is readable, and at least
    // every 250 ms (expiry, counters, restarts).
    void (*dispatch)(void *obj);
} mcl__source_ops;

#endif
