// SPDX-License-Identifier: BSD-3-Clause
// Value tree internals (shared by message.c, codec.c, json.c).
#ifndef MCL__VALUE_INT_H
#define MCL__VALUE_INT_H

#include <mcl/value.h>

typedef struct mcl__kv {
    char *key;
    size_t klen;
    struct mcl_value *val;
} mcl__kv;

struct mcl_value {
    mcl_type type;
    bool is_u;  // MCL_TYPE_INT: stored in u (non-negative), else in i
    bool root;  // made by mcl_value_new/_dup/_decode/_from_json: mcl_value_free() releases it
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        struct {
            char *p; // NUL-terminated copy (also for BIN, for convenience)
            size_t n;
        } s;
        struct {
            struct mcl_value **v;
            size_t n, cap;
        } a;
        struct {
            mcl__kv *kv;
            size_t n, cap;
        } m;
        struct {
            // One block: ndim uint64 dims, padded to 16 bytes, then the data (so the data is
            // as aligned as malloc's blocks). Never NULL.
            uint64_t *blk;
            size_t nbytes; // of data
            uint8_t dtype, ndim;
        } nd;
    };
};

// --- typed arrays (value.c) ---
// Where a typed array's data starts in its block, and the block's size.
static inline size_t
mcl__nd_off(size_t ndim)
{
    return ((ndim + 1) & ~(size_t)1) * sizeof(uint64_t);
}
static inline uint8_t *
mcl__nd_data(const struct mcl_value *v)
{
    return (uint8_t *)v->nd.blk + mcl__nd_off(v->nd.ndim);
}
// The bytes of data of a (dtype, ndim, shape): MCL_EINVAL for a bad dtype or ndim,
// MCL_ERANGE for a dim or a size above MCL_NDARRAY_MAX_BYTES (never overflows).
mcl_err mcl__nd_nbytes(unsigned dtype, size_t ndim, const uint64_t *shape, size_t *nbytes);
// A typed array with its shape set and its data uninitialised (NULL when out of memory; the
// arguments must have passed mcl__nd_nbytes).
mcl_value *mcl__val_nd(unsigned dtype, size_t ndim, const uint64_t *shape, size_t nbytes);

// The wire form (docs/wire-format.md "Typed arrays"): the payload of a msgpack ext of type
// MCL_NDARRAY_EXT_TYPE is an 8-byte header (version 1, dtype, ndim, five zero bytes), ndim
// little-endian uint64 dims, then the little-endian data: 8 * (1 + ndim) + nbytes bytes.
enum { MCL__ND_VERSION = 1, MCL__ND_HDR = 8 };
typedef struct mcl__ndhdr {
    uint8_t dtype, ndim;
    uint64_t shape[MCL_NDARRAY_MAX_NDIM];
    size_t nbytes;
    const uint8_t *data; // into the payload
} mcl__ndhdr;
// Checks an ext payload of len bytes; true and *h filled when it is a valid typed array.
bool mcl__nd_parse(const uint8_t *p, size_t len, mcl__ndhdr *h);
// The payload length of v's wire form, and its header and dims written to out (which has
// room for 8 * (1 + MCL_NDARRAY_MAX_NDIM) bytes); returns the bytes written.
size_t mcl__nd_ext_len(const struct mcl_value *v);
size_t mcl__nd_write_hdr(const struct mcl_value *v, uint8_t *out);
// Copies n elements of esize bytes from the little-endian wire to host order (or back: the
// same swap), one memcpy on a little-endian host.
void mcl__nd_copy_le(void *dst, const void *src, size_t nbytes, size_t esize);
// The length of a msgpack ext header for a payload of n bytes (fixext 1/2/4/8/16, ext 8/16/32).
static inline uint64_t
mcl__mp_ext_hdr(uint64_t n)
{
    if (n == 1 || n == 2 || n == 4 || n == 8 || n == 16)
        return 2;
    return n <= 0xff ? 3 : n <= 0xffff ? 4 : 6;
}

// Deepest nesting of containers (arrays and maps) in a message, the top-level map included:
// msgpack-c's decoder stops at 32 (MSGPACK_EMBED_STACK_SIZE), so encoding, decoding and JSON
// all keep to it and no message can be published that nobody could decode.
enum { MCL__MAX_NESTING = 32 };

// The decoding budget (mcl/value.h: MCL_DECODE_MAX_VALUES, MCL_DECODE_MEM_FACTOR,
// MCL_DECODE_MEM_SLACK). What a tree costs is what the decoder allocates for it, each
// allocation counted as glibc's malloc lays it out on 64-bit (n + 8 bytes rounded up to 16, at
// least 32): a node per value; a string's or binary's bytes (+ NUL); an array's pointers; a
// map's entries, each key (+ NUL), and for more than 16 entries the duplicate check's pointers.
// Containers are reserved exactly (the count is known), so nothing is counted twice.
typedef struct mcl__dcost {
    uint64_t values; // every value, containers and the top included (keys are not values)
    uint64_t bytes;  // memory, as above
    uint64_t packed; // the msgpack encoding's length (measured trees only)
} mcl__dcost;

static inline uint64_t
mcl__alloc_cost(uint64_t n)
{
    uint64_t c = n > UINT64_MAX / 2 ? UINT64_MAX / 2 : (n + 8 + 15) & ~(uint64_t)15;
    return c < 32 ? 32 : c;
}
// What one value costs itself (its node and own buffer; not its children, but a container's
// slots and a map's keys are the caller's to add): for STR/BIN n is the length, for
// ARRAY/MAP the count, for NDARRAY the size of its block (mcl__nd_off(ndim) + nbytes).
uint64_t mcl__val_cost(mcl_type type, uint64_t n);
// The budget for len bytes of msgpack, saturating.
uint64_t mcl__decode_budget(uint64_t len);
// MCL_OK if c fits the budget of len bytes, else MCL_EDECODE with the reason in why.
mcl_err mcl__decode_check(const mcl__dcost *c, uint64_t len, char *why, size_t whylen);
// What decoding v's msgpack encoding would cost, and its length (c is zeroed first).
void mcl__val_measure(const mcl_value *v, mcl__dcost *c);

// Appends to a map without looking for an equal key (the caller guarantees uniqueness).
mcl_err mcl__val_append(mcl_value *map, const char *key, size_t klen, mcl_value *child);
// Whether a map has two equal keys (n log n).
bool mcl__val_has_dup_keys(const mcl_value *map);

// Allocates a value of a kind (containers empty, scalars zero).
mcl_value *mcl__val_new(mcl_type type);
void mcl__val_free(mcl_value *v);
mcl_value *mcl__val_copy(const mcl_value *v);
// Takes ownership of child (freed on failure).
mcl_err mcl__val_push(mcl_value *arr, mcl_value *child);
mcl_err mcl__val_put(mcl_value *map, const char *key, size_t klen, mcl_value *child);
// Removes key from a map; false if absent.
bool mcl__val_remove(mcl_value *map, const char *key);
mcl_value *mcl__val_findn(const mcl_value *map, const char *key, size_t klen);
mcl_value *mcl__val_str(const char *s, size_t n, mcl_type type); // STR or BIN

#endif
