// SPDX-License-Identifier: BSD-3-Clause
// The stream layer's internals shared by its files and its tests: the sink a source reads
// into, and the fault seam that tests use to lose, duplicate and reorder credit messages.
#ifndef MCL__STREAM_INT_H
#define MCL__STREAM_INT_H

#include <mcl/stream.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// What one read of a source fills: the push being built. Entities are framed as they go on
// the wire (u32 length, bytes); bytes are raw.
struct mcl_stream_sink {
    mcl_stream_kind kind;
    uint8_t *buf; // the data (after room for the push header)
    size_t len, cap;
    size_t max;         // the data's byte budget (the push's)
    uint64_t units;     // units put
    uint64_t max_units; // the unit budget (credit)
    bool too_big;       // an element larger than a whole push was refused
    bool nomem;
};

// A sink for tests and for tools that read a source directly: budgets max bytes, max_units
// units. mcl__sink_reset() empties it; mcl__sink_fini() releases it.
mcl_err mcl__sink_init(mcl_stream_sink *k, mcl_stream_kind kind, size_t max, uint64_t max_units);
void mcl__sink_reset(mcl_stream_sink *k, size_t max, uint64_t max_units);
void mcl__sink_fini(mcl_stream_sink *k);

// Faults on the credit messages a side sends (the peer's LIMIT, the streamer's WLIMIT): each
// is dropped, duplicated, or held back and sent after the next one (reordered), with these
// percentages, drawn from a generator seeded by seed. Tests only.
typedef struct mcl__stream_faults {
    unsigned drop, dup, reorder; // percent
    uint64_t seed;
} mcl__stream_faults;
void mcl__stream_set_faults(mcl_stream *s, const mcl__stream_faults *f);
void mcl__stream_server_set_faults(mcl_stream_server *srv, const mcl__stream_faults *f);

#endif
