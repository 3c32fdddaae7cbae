// SPDX-License-Identifier: BSD-3-Clause
// RPC internals shared by the service (service.c), the client (client.c) and the pure
// encoders and decoders (rwire.c, fuzzed by fuzz/fuzz_rpc.c). The format: docs/rpc.md.
#ifndef MCL__RPC_INT_H
#define MCL__RPC_INT_H

#include <mcl/rpc.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The call envelope: the packet stream request's payload is an 8-byte header, then the
// arguments as one msgpack map.
//   0 u8 version (1)   1 u8 flags (0)   2 u16 reserved (0)   4 u32 budget_ms (big-endian):
//   the time the caller still gives the call when it is sent; MCL__RPC_NO_BUDGET: none.
enum { MCL__RPC_HDR = 8, MCL__RPC_VERSION = 1 };
#define MCL__RPC_NO_BUDGET UINT32_MAX

// Limits of what a schema and a description may hold (also for descriptions from strangers).
enum {
    MCL__RPC_MAX_NAME = 255,      // method, field and service names
    MCL__RPC_MAX_DOC = 4096,      // descriptions
    MCL__RPC_MAX_FIELDS = 256,    // per schema
    MCL__RPC_MAX_METHODS = 4096,  // per service
    MCL__RPC_MAX_DESC = 16 << 20, // encoded description
};

// A schema of one's own: fields with owned strings, and their parsed defaults.
typedef struct mcl__rschema {
    mcl_rpc_field *f;
    mcl_value **def; // per field: a root, or NULL
    size_t n;
} mcl__rschema;

// Copies src (n fields) into s, checking names, kinds and defaults (parsed from JSON and
// checked against the kind). errbuf names the field and the problem.
mcl_err mcl__rschema_copy(mcl__rschema *s, const mcl_rpc_field *src, size_t n, char *errbuf,
                          size_t errlen);
void mcl__rschema_free(mcl__rschema *s);

// Checks map v against fields f (open: undeclared fields are allowed). MCL_ETYPE (wrong kind,
// undeclared, v not a map) or MCL_EMISSING; *field (optional) points at the field's name
// (into v or f), errbuf says "field 'x': ...".
mcl_err mcl__rpc_check(const mcl_rpc_field *f, size_t n, bool open, const mcl_value *v,
                       const char **field, char *errbuf, size_t errlen);

// Whether name is a valid method name (dotted identifiers) / field name.
bool mcl__rpc_name_ok(const char *name);
bool mcl__rpc_field_name_ok(const char *name);

// A growing output buffer that starts on the stack (small calls allocate nothing).
typedef struct mcl__rbuf {
    uint8_t *p;
    size_t n, cap;
    mcl_err err; // MCL_OK; MCL_ENOMEM, or MCL_EMSGSIZE (past `limit`): nothing more is written
    size_t limit;
    uint8_t small[256];
} mcl__rbuf;
void mcl__rbuf_init(mcl__rbuf *b, size_t limit);
void mcl__rbuf_fini(mcl__rbuf *b);
// Appends v as msgpack: MCL_OK, MCL_ERANGE (too deep), MCL_EMSGSIZE (past the limit), MCL_ENOMEM.
mcl_err mcl__rbuf_pack(mcl__rbuf *b, const mcl_value *v);
void mcl__rbuf_write(mcl__rbuf *b, const void *p, size_t n);

// The envelope: writes the header (and the arguments: NULL is an empty map).
mcl_err mcl__renv_encode(mcl__rbuf *b, uint32_t budget_ms, const mcl_value *args);
// Reads a header; MCL_EPROTO with errbuf saying what is wrong.
mcl_err mcl__renv_decode(const void *p, size_t len, uint32_t *budget_ms, const void **args,
                         size_t *args_len, char *errbuf, size_t errlen);
// The arguments (or a result): one msgpack map. MCL_EDECODE / MCL_ENOTMAP with errbuf.
mcl_err mcl__rpc_decode_map(const void *p, size_t len, mcl_value **out, char *errbuf,
                            size_t errlen);

// A method of a description, as a client holds it.
typedef struct mcl__rinfo {
    mcl_rpc_method_info info; // strings below, schemas in args/result (defaults as JSON)
    char *name, *doc;
    mcl__rschema args, result;
} mcl__rinfo;

// Points m->info at m's own strings and schemas, with its id and flags.
void mcl__rinfo_link(mcl__rinfo *m, uint32_t id, unsigned flags);
// Releases what m holds (not m).
void mcl__rinfo_fini(mcl__rinfo *m);
// Appends m's entry of a description ({"id", "name", "doc", "flags", "args", "result"}) to
// the array `methods`.
mcl_err mcl__rinfo_describe(const mcl__rinfo *m, mcl_value *methods);

// A decoded description.
typedef struct mcl__rdesc {
    char *service, *doc;
    uint64_t max_args;
    mcl__rinfo *m; // sorted by id
    size_t n;
} mcl__rdesc;

// Decodes a description (from a stranger): every name, kind and id checked, ids and names
// unique. MCL_EPROTO with errbuf on anything malformed.
mcl_err mcl__rdesc_decode(mcl__rdesc *d, const void *p, size_t len, char *errbuf, size_t errlen);
void mcl__rdesc_free(mcl__rdesc *d);

// Description of a schema as a value: an array of {"name", "type", ["optional"], ["default"],
// ["doc"]} (appended to the array arr).
mcl_err mcl__rschema_describe(const mcl__rschema *s, mcl_value *arr);

#endif
