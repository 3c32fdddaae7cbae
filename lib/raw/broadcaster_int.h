// SPDX-License-Identifier: BSD-3-Clause
// What tests may ask a raw broadcaster (broadcaster.c) beyond mcl/raw.h. Internal.
#ifndef MCL__BROADCASTER_INT_H
#define MCL__BROADCASTER_INT_H

#include <mcl/raw.h>

#include <stdint.h>

// How many times a publish (or the batcher) slept for rate= or msgrate= since b opened.
uint64_t mcl__bcast_paced_waits(const mcl_raw_broadcaster *b);

#endif
