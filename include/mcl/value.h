// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/value.h
 * Values: the tree of nil, booleans, integers, doubles, strings, binary, arrays, maps and typed
 * n-dimensional arrays that a message holds (the msgpack data model, with string map keys, plus
 * one msgpack extension type for typed arrays: docs/wire-format.md "Typed arrays").
 *
 * Values live inside a message (mcl/message.h) and are reached through pointers that the
 * message owns. A pointer stays valid until that value is replaced or removed, or the message
 * is freed; growing a container does not move the values already in it.
 *
 * Threads: a message and its values are used by one thread at a time.
 */
#ifndef MCL_VALUE_H
#define MCL_VALUE_H

#include <mcl/err.h>
#include <mcl/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Kinds of value. MCL_TYPE_ANY is only used in field declarations ("any kind"). */
typedef enum mcl_type {
    MCL_TYPE_ANY = 0,
    MCL_TYPE_NIL,
    MCL_TYPE_BOOL,
    MCL_TYPE_INT,   /**< signed or unsigned 64-bit integer */
    MCL_TYPE_FLOAT, /**< double */
    MCL_TYPE_STR,   /**< UTF-8 expected (not enforced), may contain NUL */
    MCL_TYPE_BIN,   /**< bytes */
    MCL_TYPE_ARRAY,
    MCL_TYPE_MAP, /**< string keys, in insertion order */
    MCL_TYPE_NDARRAY, /**< typed n-dimensional array (mcl_dtype, shape, contiguous data); @since 0.4 */
} mcl_type;

typedef struct mcl_value mcl_value;

/** "nil", "bool", "int", "float", "str", "bin", "array", "map", "ndarray", "any"; static text.
 * @since 0.1 */
MCL_API const char *mcl_type_name(mcl_type type);

/** Kind of @p v (MCL_TYPE_NIL for NULL). @since 0.1 */
MCL_API mcl_type mcl_value_type(const mcl_value *v);

/**
 * Typed reads. Each returns MCL_OK and sets the out-parameter, MCL_EINVAL for NULL arguments,
 * MCL_ETYPE when @p v is of another kind, and for integers MCL_ERANGE when the value does not
 * fit. mcl_value_get_double() also accepts integers (converted). Strings and binary are
 * borrowed from the value (strings are NUL-terminated; *len excludes the NUL).
 * @since 0.1
 */
MCL_API mcl_err mcl_value_get_bool(const mcl_value *v, bool *out);
MCL_API mcl_err mcl_value_get_int(const mcl_value *v, int64_t *out);
MCL_API mcl_err mcl_value_get_uint(const mcl_value *v, uint64_t *out);
MCL_API mcl_err mcl_value_get_double(const mcl_value *v, double *out);
MCL_API mcl_err mcl_value_get_str(const mcl_value *v, const char **s, size_t *len);
MCL_API mcl_err mcl_value_get_bin(const mcl_value *v, const void **data, size_t *len);

/* --- typed n-dimensional arrays ------------------------------------------------------------- */

/**
 * Element types of typed arrays (MCL_TYPE_NDARRAY). The numbers are the wire's dtype codes
 * (docs/wire-format.md "Typed arrays") and never change; new types are appended.
 * @since 0.4
 */
typedef enum mcl_dtype {
    MCL_DTYPE_INT8 = 1,
    MCL_DTYPE_INT16 = 2,
    MCL_DTYPE_INT32 = 3,
    MCL_DTYPE_INT64 = 4,
    MCL_DTYPE_UINT8 = 5,
    MCL_DTYPE_UINT16 = 6,
    MCL_DTYPE_UINT32 = 7,
    MCL_DTYPE_UINT64 = 8,
    MCL_DTYPE_FLOAT32 = 9,  /**< IEEE 754 binary32 */
    MCL_DTYPE_FLOAT64 = 10, /**< IEEE 754 binary64 */
    MCL_DTYPE_BOOL = 11,    /**< one byte: 0 false, 1 true (other bytes are kept as they are) */
} mcl_dtype;

/** Bounds of typed arrays. @since 0.4 */
enum {
    MCL_NDARRAY_MAX_NDIM = 8,           /**< dimensions at most (0: a single element) */
    MCL_NDARRAY_MAX_BYTES = 1073741824, /**< bytes of data at most (1 GiB); also every dim */
    MCL_NDARRAY_EXT_TYPE = 110,         /**< the msgpack extension type number ('n') */
};

/** "int8" ... "uint64", "float32", "float64", "bool" (numpy's names); "?" for a number that is
 * no dtype. Static text. @since 0.4 */
MCL_API const char *mcl_dtype_name(mcl_dtype dtype);
/** Bytes per element (1, 2, 4 or 8), 0 for a number that is no dtype. @since 0.4 */
MCL_API size_t mcl_dtype_size(mcl_dtype dtype);
/** The dtype named @p name (as mcl_dtype_name() writes it).
 * @retval MCL_OK @retval MCL_ENOENT (no such name) @retval MCL_EINVAL (NULL) @since 0.4 */
MCL_API mcl_err mcl_dtype_from_name(const char *name, mcl_dtype *out);

/**
 * Building typed arrays: set @p key of map @p map (replacing an entry as the put functions do),
 * or append to array @p arr, a typed array of @p dtype with @p ndim dimensions of sizes
 * @p shape[0..ndim-1] (row-major: the last index varies fastest) and the elements at @p data
 * (product(shape) * mcl_dtype_size(dtype) bytes, in the host's byte order), copied with one
 * memcpy. ndim 0 is one element (shape may then be NULL); a dim of 0 makes an empty array
 * (data may then be NULL). The data is kept 16-byte aligned. In memory the elements are in
 * the host's order; the wire is little-endian (a big-endian host swaps when encoding and
 * decoding).
 * The _uninit forms copy nothing: *data receives the array's own storage (contents
 * unspecified, NULL for an empty array) for the caller to fill in place; it stays valid and
 * writable until the value is replaced or removed or its message or root is freed.
 * Ownership: @p shape and @p data are read during the call only; the array belongs to @p map
 * or @p arr.
 * @retval MCL_OK
 * @retval MCL_EINVAL  NULL container or key, @p arr / @p map of another kind, @p dtype not a
 *                     dtype, @p ndim above MCL_NDARRAY_MAX_NDIM, @p shape or @p data NULL
 *                     where needed
 * @retval MCL_ERANGE  a dim above MCL_NDARRAY_MAX_BYTES, or data of more than
 *                     MCL_NDARRAY_MAX_BYTES bytes (the product is computed without overflow)
 * @retval MCL_ENOMEM
 * On failure nothing is changed and *data is NULL.
 * @since 0.4
 */
MCL_API mcl_err mcl_value_put_ndarray(mcl_value *map, const char *key, mcl_dtype dtype,
                                      size_t ndim, const uint64_t *shape, const void *data);
MCL_API mcl_err mcl_value_push_ndarray(mcl_value *arr, mcl_dtype dtype, size_t ndim,
                                       const uint64_t *shape, const void *data);
MCL_API mcl_err mcl_value_put_ndarray_uninit(mcl_value *map, const char *key, mcl_dtype dtype,
                                             size_t ndim, const uint64_t *shape, void **data);
MCL_API mcl_err mcl_value_push_ndarray_uninit(mcl_value *arr, mcl_dtype dtype, size_t ndim,
                                              const uint64_t *shape, void **data);

/**
 * Read a typed array: its dtype, number of dimensions, shape (*shape: ndim sizes, borrowed),
 * its contiguous row-major elements (*data: borrowed, 16-byte aligned, host byte order; NULL
 * for an empty array) and their length in bytes (product(shape) * mcl_dtype_size(dtype)).
 * Any out-parameter but @p v may be NULL. The pointers stay valid while the value does.
 * @retval MCL_OK @retval MCL_EINVAL (@p v NULL) @retval MCL_ETYPE (not a typed array)
 * @since 0.4
 */
MCL_API mcl_err mcl_value_get_ndarray(const mcl_value *v, mcl_dtype *dtype, size_t *ndim,
                                      const uint64_t **shape, const void **data, size_t *nbytes);

/** Whether an integer value is stored unsigned above INT64_MAX. @since 0.1 */
MCL_API bool mcl_value_is_big_uint(const mcl_value *v);

/** Number of items of an array or entries of a map (0 for other kinds, typed arrays included:
 * their element count is nbytes / mcl_dtype_size()). @since 0.1 */
MCL_API size_t mcl_value_count(const mcl_value *v);

/** Array item @p i, or NULL (not an array, or out of range). @since 0.1 */
MCL_API const mcl_value *mcl_value_item(const mcl_value *v, size_t i);

/** Map entry @p i with its key (borrowed, NUL-terminated), or NULL. @since 0.1 */
MCL_API const mcl_value *mcl_value_entry(const mcl_value *v, size_t i, const char **key);

/** The value for @p key in a map, or NULL. @since 0.1 */
MCL_API const mcl_value *mcl_value_find(const mcl_value *v, const char *key);

/** Deep equality (same kinds and contents, map entries in any order; typed arrays: same dtype,
 * shape and bytes, so NaNs of one bit pattern are equal and 0.0 differs from -0.0). @since 0.1 */
MCL_API bool mcl_value_equal(const mcl_value *a, const mcl_value *b);

/**
 * Building arrays: append a value to array @p arr. The _array/_map forms append an empty
 * container and return it in @p child (owned by @p arr) for filling.
 * @retval MCL_OK @retval MCL_EINVAL (NULL, or @p arr not an array) @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_value_push_nil(mcl_value *arr);
MCL_API mcl_err mcl_value_push_bool(mcl_value *arr, bool b);
MCL_API mcl_err mcl_value_push_int(mcl_value *arr, int64_t i);
MCL_API mcl_err mcl_value_push_uint(mcl_value *arr, uint64_t u);
MCL_API mcl_err mcl_value_push_double(mcl_value *arr, double d);
MCL_API mcl_err mcl_value_push_str(mcl_value *arr, const char *s);
MCL_API mcl_err mcl_value_push_strn(mcl_value *arr, const char *s, size_t len);
MCL_API mcl_err mcl_value_push_bin(mcl_value *arr, const void *data, size_t len);
MCL_API mcl_err mcl_value_push_array(mcl_value *arr, mcl_value **child);
MCL_API mcl_err mcl_value_push_map(mcl_value *arr, mcl_value **child);

/**
 * Building maps: set @p key (copied) in map @p map, replacing an existing entry in place (its
 * position is kept) or appending a new one. Same return codes as the push functions.
 * @since 0.1
 */
MCL_API mcl_err mcl_value_put_nil(mcl_value *map, const char *key);
MCL_API mcl_err mcl_value_put_bool(mcl_value *map, const char *key, bool b);
MCL_API mcl_err mcl_value_put_int(mcl_value *map, const char *key, int64_t i);
MCL_API mcl_err mcl_value_put_uint(mcl_value *map, const char *key, uint64_t u);
MCL_API mcl_err mcl_value_put_double(mcl_value *map, const char *key, double d);
MCL_API mcl_err mcl_value_put_str(mcl_value *map, const char *key, const char *s);
MCL_API mcl_err mcl_value_put_strn(mcl_value *map, const char *key, const char *s, size_t len);
MCL_API mcl_err mcl_value_put_bin(mcl_value *map, const char *key, const void *data, size_t len);
MCL_API mcl_err mcl_value_put_array(mcl_value *map, const char *key, mcl_value **child);
MCL_API mcl_err mcl_value_put_map(mcl_value *map, const char *key, mcl_value **child);
/** Deep-copies @p v under @p key. @since 0.1 */
MCL_API mcl_err mcl_value_put_copy(mcl_value *map, const char *key, const mcl_value *v);
/** Appends a deep copy of @p v to array @p arr. @since 0.3 */
MCL_API mcl_err mcl_value_push_copy(mcl_value *arr, const mcl_value *v);

/* --- standalone values ----------------------------------------------------------------------- */

/**
 * A value of your own, outside any message (RPC arguments and results, mcl/rpc.h): an empty
 * map or array, or a nil, false, 0, 0.0, "" or empty binary of @p type (not MCL_TYPE_ANY);
 * MCL_TYPE_NDARRAY gives an empty uint8 array of shape [0].
 * Ownership: the caller owns *vp (a "root"); mcl_value_free(). Values inside it belong to it.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_value_new(mcl_value **vp, mcl_type type);
/** Deep copy of any value, as a new root. @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3 */
MCL_API mcl_err mcl_value_dup(mcl_value **copyp, const mcl_value *v);
/** Release a root (from mcl_value_new(), _dup(), _decode() or _from_json()); NULL-safe. A value
 * that is not a root (one inside a message or container) is left alone. @since 0.3 */
MCL_API void mcl_value_free(mcl_value *v);

/**
 * Bounds of decoding, so that a payload from a stranger costs memory in proportion to its size
 * (mcl_value_decode(), mcl_msg_decode() and so every message listener and RPC call, and the
 * JSON readers). A payload of len bytes decodes only if its tree holds at most
 * MCL_DECODE_MAX_VALUES values (every value, containers included; map keys are not values)
 * and takes at most MCL_DECODE_MEM_FACTOR * len + MCL_DECODE_MEM_SLACK bytes of memory,
 * counted as the decoder allocates it (a node of about 48 bytes per value, a string's or
 * binary's bytes, 8 bytes per array element, 24 per map entry and its key, each allocation
 * rounded as glibc's malloc does; a typed array: its node and one block of 8 bytes per dim,
 * rounded to 16, and its data, so it costs about its bytes on the wire);
 * beyond either it is refused as MCL_EDECODE, before anything
 * is allocated, with errbuf saying which bound. Small values are what the budget limits: an
 * array element costs at least 56 bytes, so an array of nils, bools or small integers (1 byte
 * each) decodes up to about 300,000 elements (16 MiB / 56 B), and of doubles (9 bytes) up to
 * the value cap; large numeric arrays belong in a typed array (MCL_TYPE_NDARRAY, about its
 * bytes). Containers nest at most 32 deep (the top included).
 * Encoders refuse what these bounds would refuse (MCL_EMSGSIZE), so what encodes decodes.
 * @since 0.4
 */
enum {
    MCL_DECODE_MAX_VALUES = 1048576, /**< values in one decoded tree (2^20) */
    MCL_DECODE_MEM_FACTOR = 8,       /**< bytes of memory per byte of payload */
    MCL_DECODE_MEM_SLACK = 16777216, /**< bytes of memory any payload may take besides (16 MiB) */
};

/**
 * Encode @p v as one msgpack object.
 * @param[out] bufp  a buffer allocated by the library: release it with mcl_free().
 * @retval MCL_OK @retval MCL_ERANGE (containers nested deeper than 32)
 * @retval MCL_EMSGSIZE (the decoding bounds above would refuse the encoding)
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_value_encode(const mcl_value *v, void **bufp, size_t *lenp);
/**
 * Decode one msgpack object (any kind; map keys must be strings) into a new root.
 * Extension types other than typed arrays (MCL_NDARRAY_EXT_TYPE) are refused; a typed array's
 * dtype, ndim, dims and length are checked against its bytes (docs/wire-format.md) and its data
 * is copied (one memcpy) into the tree.
 * @retval MCL_OK @retval MCL_EDECODE (not one valid object, trailing bytes, nesting deeper than
 * 32, a key that is not a string, a malformed typed array, beyond the decoding bounds above)
 * @retval MCL_EINVAL
 * @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_value_decode(mcl_value **vp, const void *buf, size_t len, char *errbuf,
                                 size_t errlen);

/**
 * One top-level entry of a map read by mcl_value_scan_map(): its kind and, for scalars, its
 * value. str and bin point into the scanned buffer (not NUL-terminated: len bytes) and live as
 * long as it does. An integer is in i, or in u with big_uint set when above INT64_MAX; a
 * msgpack float32 is widened to a double. Arrays and maps give only their count (len); a typed
 * array its element count (len).
 * @since 0.4
 */
typedef struct mcl_scalar {
    mcl_type type; /**< MCL_TYPE_ANY: the key is absent */
    bool big_uint; /**< an integer above INT64_MAX, in u */
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    const char *str; /**< MCL_TYPE_STR, MCL_TYPE_BIN */
    size_t len;      /**< bytes of str or bin; count of an array or a map */
} mcl_scalar;

/**
 * The values of some top-level keys of a msgpack map, without building a tree (no allocation):
 * the fast path for reading a few fields of many messages (a log into columns). The whole
 * buffer is checked as mcl_value_decode() checks it, with the same bounds, so a payload is
 * accepted here when it decodes there; the exception is a key repeated in the map (or in a
 * nested map) that is not one asked for, which mcl_value_decode() refuses and this does not
 * look for. out[k] is filled for keys[k] (MCL_TYPE_ANY when absent); on any error every out[k]
 * is MCL_TYPE_ANY. Keys are compared as bytes; a key given twice fills only its first out[k].
 * Thread-safe; nothing kept.
 * @retval MCL_OK
 * @retval MCL_EDECODE (not one valid object, trailing bytes, beyond the decoding bounds, one of
 * @p keys repeated)
 * @retval MCL_ENOTMAP (valid, but not a map) @retval MCL_EINVAL
 * @since 0.4
 */
MCL_API mcl_err mcl_value_scan_map(const void *buf, size_t len, const char *const *keys,
                                   size_t nkeys, mcl_scalar *out);

/** Flags of the JSON functions (mcl_value_to_json(), mcl_msg_to_json()). */
enum {
    MCL_JSON_COMPACT = 0, /**< one line */
    MCL_JSON_INDENT = 1,  /**< indented, several lines */
    MCL_JSON_SORT = 2,    /**< keys sorted (default: insertion order) */
    MCL_JSON_NDARRAY_BASE64 = 4, /**< typed arrays' data as base64 (default: nested lists);
                                      @since 0.4 */
};

/**
 * Any value -> JSON text, with the tagged objects of mcl_msg_to_json() (docs/json.md).
 * @param[out] jsonp  release with mcl_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_value_to_json(const mcl_value *v, int flags, char **jsonp);
/**
 * JSON text (any JSON value) -> a new root; tagged objects become what they stand for. The
 * decoding bounds above apply: a text with more than MCL_DECODE_MAX_VALUES values (counted
 * before it is parsed, so the parser's own memory is bounded too), or whose value's msgpack
 * encoding would be refused, is MCL_EDECODE.
 * @retval MCL_OK @retval MCL_EDECODE (errbuf gives line and column, names the bad tag, or the
 * bound)
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_value_from_json(mcl_value **vp, const char *json, size_t len, char *errbuf,
                                    size_t errlen);

/** Release a buffer allocated by the library (encodings, JSON text). @since 0.1 */
MCL_API void mcl_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
