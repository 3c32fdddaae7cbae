// SPDX-License-Identifier: BSD-3-Clause
// Per (publisher, topic) message numbers, for transports that filter by topic on the sending
// side (MCL__TP_PUBFILTER, zmq): a listener there sees only some of a publisher's sequence
// numbers and cannot tell a filtered message from a lost one. Every datagram therefore also
// carries the number of its first record on its topic (TSEQ); a broadcaster keeps the next
// number to give per (publisher, topic), a listener the next number it expects, and counts
// a jump as loss of that topic.
#ifndef MCL__TSEQ_H
#define MCL__TSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mcl__tseq mcl__tseq;

mcl__tseq *mcl__tseq_new(void);
void mcl__tseq_free(mcl__tseq *t);
// The counter of (publisher, topic), 0 when new (*created is then true). NULL when out of
// memory. Valid until the next call. The table forgets everything at 65536 entries.
uint64_t *mcl__tseq_slot(mcl__tseq *t, uint64_t publisher, const char *topic, size_t tl,
                         bool *created);

#endif
