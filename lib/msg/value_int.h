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
    };
};

// Deepest nesting of containers (arrays and maps) in a message, the top-level map included:
// msgpack-c's decoder stops at 32 (MSGPACK_EMBED_STACK_SIZE), so encoding, decoding and JSON
// all keep to it and no message can be published that nobody could decode.
enum { MCL__MAX_NESTING = 32 };

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
