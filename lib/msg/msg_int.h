// SPDX-License-Identifier: BSD-3-Clause
// Message internals shared by the message modules.
#ifndef MCL__MSG_INT_H
#define MCL__MSG_INT_H

#include <mcl/message.h>

#include "../core/source.h"
#include "value_int.h"

// Wraps a map value as a message (takes ownership; frees it on failure).
mcl_msg *mcl__msg_wrap(mcl_value *root);
mcl_value *mcl__msg_root(mcl_msg *m);
// Decodes one msgpack object (checked structurally, and against the decoding budget, first).
// MCL_EDECODE on anything malformed or beyond the budget; then why (NUL-terminated, whylen >
// 0) says how the budget was exceeded, or is empty for malformed bytes.
mcl_err mcl__msgpack_decode(const void *buf, size_t len, mcl_value **out, char *why,
                            size_t whylen);
// The same without the reason.
mcl_err mcl__msgpack_to_value(const void *buf, size_t len, mcl_value **out);

// Packs v (depth-checked: MCL_ERANGE beyond MCL__MAX_NESTING; MCL_EMSGSIZE if the decoding
// budget would refuse what it packs to) with msgpack-c's packer.
struct msgpack_packer;
mcl_err mcl__val_pack(struct msgpack_packer *pk, const mcl_value *v);

// json.c: the shortest text of the finite double d that reads back bit-identical, as JSON
// output writes it ("0.1", "1.0", "1e300", "5e-324", "-0.0"); NUL-terminated, returns its
// length (at most 24).
#define MCL__JSON_REAL_MAX 32
size_t mcl__json_real(double d, char buf[MCL__JSON_REAL_MAX]);

// The message listener as an event source (mcl_reactor_add_msg_listener()).
extern const mcl__source_ops mcl__msg_listener_source;

#endif
