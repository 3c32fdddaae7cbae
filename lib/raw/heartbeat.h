// SPDX-License-Identifier: BSD-3-Clause
// Heartbeats of broadcasters (docs/wire-format.md, heartbeats): the process-wide thread that
// sends them, and the identity they carry. Internal.
#ifndef MCL__HEARTBEAT_H
#define MCL__HEARTBEAT_H

#include "wire.h"

#include <mcl/raw.h>

#include <stdbool.h>
#include <stdint.h>

// Sends b's heartbeat now (broadcaster.c); bye: its last, as it closes.
void mcl__bcast_heartbeat(mcl_raw_broadcaster *b, bool bye);

// Registers b for a heartbeat every every_ms (the thread starts with the first).
mcl_err mcl__hb_add(mcl_raw_broadcaster *b, uint32_t every_ms);
// Unregisters b; returns once no heartbeat of b is being sent (the thread ends with the last).
void mcl__hb_remove(mcl_raw_broadcaster *b);

// This process's host name, program name (both printable, at most 64 bytes) and id.
void mcl__hb_identity(const char **host, const char **program, uint32_t *pid);

#endif
