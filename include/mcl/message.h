// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/message.h
 * Messages: typed records serialised as msgpack maps, as in Python MCL.
 *
 * A message is a map of named fields (mcl/value.h) plus two reserved keys:
 * - "name": the message type's name; read-only once set (MCL_EREADONLY).
 * - "timestamp": seconds since the epoch as a double; set when the message is created and by
 *   mcl_msg_update() unless the update carries its own timestamp. Setting other fields does not
 *   touch it.
 *
 * A message type (mcl_msgtype) declares a name, mandatory fields (each optionally with the
 * kind of value it must hold), and optionally a connection URL and a default topic. Types live
 * in a process-wide registry, in definition order.
 *
 * On the wire (and in logs) a message is the msgpack encoding of its map; decoding accepts any
 * msgpack map with string keys, including those written by Python MCL.
 *
 * Threads: the type registry is thread-safe. A message is used by one thread at a time.
 */
#ifndef MCL_MESSAGE_H
#define MCL_MESSAGE_H

#include <mcl/connection.h>
#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/raw.h>
#include <mcl/value.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Message types                                                                              */
/* ------------------------------------------------------------------------------------------ */

/** A mandatory field: its name and the kind of value it must hold (MCL_TYPE_ANY: any). */
typedef struct mcl_field {
    const char *name;
    mcl_type type;
} mcl_field;

typedef struct mcl_msgtype mcl_msgtype;

/**
 * Declare a message type and add it to the registry.
 * @param[out] typep   receives the type (NULL on failure). It stays valid for the life of the
 *                     process, also after mcl_msgtype_remove() (which only forgets the name).
 * @param[in]  name    non-empty, at most 255 bytes, unique in the registry.
 * @param[in]  fields  mandatory fields (@p nfields of them; may be NULL when 0). Names must be
 *                     non-empty, distinct, and not "name" or "timestamp" (always present).
 * @param[in]  url     optional connection URL (NULL: none; broadcasters then need one given
 *                     explicitly). No two registered types may have equal connections.
 * @param[in]  topic   optional default topic (NULL: none).
 * @param[out] errbuf  optional: one line naming the problem on failure.
 * @retval MCL_OK
 * @retval MCL_EINVAL  empty or too long name, bad or reserved or duplicated field, NULL args.
 * @retval MCL_EEXIST  the name, or an equal connection, is already registered.
 * @retval MCL_EURL    @p url is not a valid connection URL.
 * @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msgtype_define(const mcl_msgtype **typep, const char *name,
                                   const mcl_field *fields, size_t nfields, const char *url,
                                   const char *topic, char *errbuf, size_t errlen);

/**
 * Remove the type named @p name from the registry (its pointer stays valid).
 * @retval MCL_OK @retval MCL_ENOENT (no such type) @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_msgtype_remove(const char *name);

/** Look a registered type up by name. @retval MCL_OK @retval MCL_ENOENT @retval MCL_EINVAL @since 0.1 */
MCL_API mcl_err mcl_msgtype_find(const mcl_msgtype **typep, const char *name);

/**
 * List registered types in definition order: those named in @p exclude are skipped, then, when
 * @p include is non-empty, only those named in it are kept.
 * @param[out] out  up to @p cap types.
 * @return the number of types that match (may exceed @p cap).
 * @since 0.1
 */
MCL_API size_t mcl_msgtype_list(const mcl_msgtype **out, size_t cap, const char *const *include,
                                size_t ninclude, const char *const *exclude, size_t nexclude);

/** Name of the type. @since 0.1 */
MCL_API const char *mcl_msgtype_name(const mcl_msgtype *type);
/** Number of mandatory fields. @since 0.1 */
MCL_API size_t mcl_msgtype_nfields(const mcl_msgtype *type);
/** Mandatory field @p i (NULL when out of range). Owned by the type. @since 0.1 */
MCL_API const mcl_field *mcl_msgtype_field(const mcl_msgtype *type, size_t i);
/** The type's connection, or NULL. Owned by the type. @since 0.1 */
MCL_API const mcl_connection *mcl_msgtype_connection(const mcl_msgtype *type);
/** The type's default topic, or "" . Owned by the type. @since 0.1 */
MCL_API const char *mcl_msgtype_topic(const mcl_msgtype *type);

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct mcl_msg mcl_msg;

/**
 * Create a message: "timestamp" is now; with a @p type, "name" is the type's name and every
 * mandatory field is nil.
 * Ownership: the caller owns *msgp; mcl_msg_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_new(mcl_msg **msgp, const mcl_msgtype *type);

/** Release a message; NULL-safe. @since 0.1 */
MCL_API void mcl_msg_free(mcl_msg *msg);

/** Deep copy. @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM @since 0.1 */
MCL_API mcl_err mcl_msg_dup(mcl_msg **copyp, const mcl_msg *msg);

/** The "name" field, or NULL when absent or not a string. Owned by @p msg. @since 0.1 */
MCL_API const char *mcl_msg_name(const mcl_msg *msg);

/** The "timestamp" field as a double, or NaN when absent or not a number. @since 0.1 */
MCL_API double mcl_msg_timestamp(const mcl_msg *msg);

/** All fields, as a map value (read-only view). Owned by @p msg. @since 0.1 */
MCL_API const mcl_value *mcl_msg_fields(const mcl_msg *msg);

/** The value of field @p key, or NULL. Owned by @p msg. @since 0.1 */
MCL_API const mcl_value *mcl_msg_get(const mcl_msg *msg, const char *key);

/**
 * Typed reads of a field: as mcl_value_get_*(), plus MCL_ENOENT when the field is absent.
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_get_bool(const mcl_msg *msg, const char *key, bool *out);
MCL_API mcl_err mcl_msg_get_int(const mcl_msg *msg, const char *key, int64_t *out);
MCL_API mcl_err mcl_msg_get_uint(const mcl_msg *msg, const char *key, uint64_t *out);
MCL_API mcl_err mcl_msg_get_double(const mcl_msg *msg, const char *key, double *out);
MCL_API mcl_err mcl_msg_get_str(const mcl_msg *msg, const char *key, const char **s, size_t *len);
MCL_API mcl_err mcl_msg_get_bin(const mcl_msg *msg, const char *key, const void **data,
                                size_t *len);

/**
 * Set field @p key (copied), replacing any value it had. The _array/_map forms set an empty
 * container and return it for filling with mcl_value_push_*() / mcl_value_put_*().
 * @retval MCL_OK
 * @retval MCL_EREADONLY  @p key is "name" and the message already has a name.
 * @retval MCL_EINVAL     NULL arguments.
 * @retval MCL_ENOMEM
 * Setting "name" on a message without one is allowed (a string only: MCL_ETYPE otherwise).
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_set_nil(mcl_msg *msg, const char *key);
MCL_API mcl_err mcl_msg_set_bool(mcl_msg *msg, const char *key, bool b);
MCL_API mcl_err mcl_msg_set_int(mcl_msg *msg, const char *key, int64_t i);
MCL_API mcl_err mcl_msg_set_uint(mcl_msg *msg, const char *key, uint64_t u);
MCL_API mcl_err mcl_msg_set_double(mcl_msg *msg, const char *key, double d);
MCL_API mcl_err mcl_msg_set_str(mcl_msg *msg, const char *key, const char *s);
MCL_API mcl_err mcl_msg_set_strn(mcl_msg *msg, const char *key, const char *s, size_t len);
MCL_API mcl_err mcl_msg_set_bin(mcl_msg *msg, const char *key, const void *data, size_t len);
MCL_API mcl_err mcl_msg_set_array(mcl_msg *msg, const char *key, mcl_value **arr);
MCL_API mcl_err mcl_msg_set_map(mcl_msg *msg, const char *key, mcl_value **map);
MCL_API mcl_err mcl_msg_set_value(mcl_msg *msg, const char *key, const mcl_value *v);

/**
 * Typed arrays as fields: mcl_value_put_ndarray() / _put_ndarray_uninit() on the message's
 * map (same arguments, codes and lifetimes; "name" cannot be one: MCL_ETYPE or
 * MCL_EREADONLY), and mcl_value_get_ndarray() of the field (MCL_ENOENT when absent).
 * @since 0.4
 */
MCL_API mcl_err mcl_msg_set_ndarray(mcl_msg *msg, const char *key, mcl_dtype dtype, size_t ndim,
                                    const uint64_t *shape, const void *data);
MCL_API mcl_err mcl_msg_set_ndarray_uninit(mcl_msg *msg, const char *key, mcl_dtype dtype,
                                           size_t ndim, const uint64_t *shape, void **data);
MCL_API mcl_err mcl_msg_get_ndarray(const mcl_msg *msg, const char *key, mcl_dtype *dtype,
                                    size_t *ndim, const uint64_t **shape, const void **data,
                                    size_t *nbytes);

/**
 * Remove field @p key. @retval MCL_OK @retval MCL_ENOENT
 * @retval MCL_EREADONLY ("name") @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_remove(mcl_msg *msg, const char *key);

/**
 * Copy every field of @p src into @p msg (like MCL's update()). "timestamp" becomes now unless
 * @p src has one. Mandatory fields are not enforced.
 * @retval MCL_OK
 * @retval MCL_EREADONLY  @p src has a "name" that differs from @p msg's (nothing is changed).
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_update(mcl_msg *msg, const mcl_msg *src);

/**
 * Check @p msg against @p type: its name is the type's, every mandatory field is present, and
 * each holds its declared kind (nil is accepted for any kind: "not set yet"; an integer is
 * accepted where a float is declared).
 * @retval MCL_OK
 * @retval MCL_ETYPE     wrong name, or a field of the wrong kind (errbuf says which).
 * @retval MCL_EMISSING  a mandatory field is absent (errbuf lists them).
 * @retval MCL_EINVAL
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_check(const mcl_msg *msg, const mcl_msgtype *type, char *errbuf,
                              size_t errlen);

/**
 * Encode as a msgpack map.
 * @param[out] bufp  receives a buffer allocated by the library; release it with mcl_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @retval MCL_ERANGE    containers nested deeper than 32.
 * @retval MCL_EMSGSIZE  no receiver could decode it (the decoding bounds of mcl/value.h).
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_encode(const mcl_msg *msg, void **bufp, size_t *lenp);

/**
 * Decode a msgpack map. With a @p type, its mandatory fields must be present (the name is not
 * checked, as in MCL; use mcl_msg_check() for that).
 * @retval MCL_OK
 * @retval MCL_EDECODE   not valid msgpack, trailing bytes, nesting deeper than 32, a map
 *                       key that is not a string, or beyond the decoding bounds
 *                       (MCL_DECODE_MAX_VALUES, MCL_DECODE_MEM_FACTOR in mcl/value.h).
 * @retval MCL_ENOTMAP   valid msgpack, but not a map.
 * @retval MCL_EMISSING  a mandatory field of @p type is missing.
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_decode(mcl_msg **msgp, const void *buf, size_t len,
                               const mcl_msgtype *type, char *errbuf, size_t errlen);


/* ------------------------------------------------------------------------------------------ */
/* JSON (docs/json.md gives the mapping)                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The flags MCL_JSON_COMPACT, MCL_JSON_INDENT and MCL_JSON_SORT are in mcl/value.h. */

/**
 * Message -> JSON text (UTF-8, NUL-terminated). Values JSON cannot hold are tagged objects:
 * binary {"$bin": "<base64>"}, non-finite doubles {"$float": "nan"|"inf"|"-inf"}, strings that
 * are not valid UTF-8 {"$str": "<base64>"}, integers above INT64_MAX {"$uint": "<decimal>"}.
 * @param[out] jsonp  receives the text; release it with mcl_free().
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_to_json(const mcl_msg *msg, int flags, char **jsonp);

/**
 * JSON object -> message; the tagged objects above become the values they stand for.
 * No field is added (not even a timestamp).
 * @retval MCL_OK
 * @retval MCL_EDECODE  not valid JSON (errbuf gives line and column), a malformed tag, or
 *                      beyond the decoding bounds (as mcl_value_from_json()).
 * @retval MCL_ENOTMAP  valid JSON, but not an object.
 * @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_from_json(mcl_msg **msgp, const char *json, size_t len, char *errbuf,
                                  size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* Message broadcaster and listener                                                           */
/* ------------------------------------------------------------------------------------------ */

typedef struct mcl_msg_broadcaster mcl_msg_broadcaster;
typedef struct mcl_msg_listener mcl_msg_listener;

/**
 * Open a broadcaster for messages of @p type.
 * @param conn   the connection, or NULL for the type's own (MCL_EINVAL if it has none).
 * @param topic  default topic, or NULL for the type's default topic.
 * Errors and ownership as mcl_raw_broadcaster_open(); release with mcl_msg_broadcaster_free().
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_broadcaster_open(mcl_msg_broadcaster **bp, const mcl_msgtype *type,
                                         const mcl_connection *conn, const char *topic);

/**
 * Check @p msg against the type (mcl_msg_check()), encode it and publish it on @p topic
 * (NULL: the default). Thread-safe as mcl_raw_broadcaster_publish().
 * @retval MCL_OK
 * @retval MCL_ETYPE, MCL_EMISSING  the message is not a valid message of this type; nothing
 *                                  was sent (the log callback says why).
 * @retval other codes as mcl_raw_broadcaster_publish().
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_broadcaster_publish(mcl_msg_broadcaster *b, const mcl_msg *msg,
                                            const char *topic);

/** As mcl_raw_broadcaster_close(). @since 0.1 */
MCL_API mcl_err mcl_msg_broadcaster_close(mcl_msg_broadcaster *b);
/** As mcl_raw_broadcaster_is_open(). @since 0.1 */
MCL_API bool mcl_msg_broadcaster_is_open(const mcl_msg_broadcaster *b);
/** Close if open and release; NULL-safe. @since 0.1 */
MCL_API void mcl_msg_broadcaster_free(mcl_msg_broadcaster *b);
/** The underlying raw broadcaster (for its id and stats). Owned by @p b. @since 0.1 */
MCL_API mcl_raw_broadcaster *mcl_msg_broadcaster_raw(mcl_msg_broadcaster *b);

/**
 * A message callback: @p msg is the decoded message, @p raw the datagram-level details (topic,
 * publisher, sequence, receive time, sender). Both borrowed for the duration of the call
 * (mcl_msg_dup() keeps the message). Same rules as mcl_raw_cb.
 */
typedef void (*mcl_msg_cb)(const mcl_msg *msg, const mcl_raw_msg *raw, void *user);

/** Message listener counters: the raw listener's, plus what could not be delivered. */
typedef struct mcl_msg_stats {
    mcl_listener_stats raw; /**< see mcl_listener_stats (raw.messages counts payloads received) */
    uint64_t messages;      /**< messages decoded and delivered. */
    uint64_t undecodable;   /**< payloads that were not msgpack maps, or lacked mandatory fields. */
} mcl_msg_stats;

/**
 * Open a listener that decodes every payload as a message of @p type (NULL: any map).
 * Undecodable payloads are counted (mcl_msg_stats.undecodable), logged at debug
 * level, and skipped; the listener keeps running.
 * @param conn  the connection, or NULL for the type's own.
 * Other parameters, errors and ownership as mcl_raw_listener_open().
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_listener_open(mcl_msg_listener **lp, const mcl_msgtype *type,
                                      const mcl_connection *conn, const char *const *topics,
                                      size_t ntopics);

/**
 * Receive the next decodable message on the caller's thread.
 * @param[out] msgp  borrowed until the next recv/dispatch/close on @p l.
 * @param[out] rawp  optional: its datagram-level details, same lifetime.
 * Return codes as mcl_raw_listener_recv().
 * @since 0.1
 */
MCL_API mcl_err mcl_msg_listener_recv(mcl_msg_listener *l, const mcl_msg **msgp,
                                      const mcl_raw_msg **rawp, int timeout_ms);

/** As the raw listener's functions of the same names. @since 0.1 */
MCL_API mcl_err mcl_msg_listener_subscribe(mcl_msg_listener *l, mcl_msg_cb cb, void *user);
MCL_API mcl_err mcl_msg_listener_unsubscribe(mcl_msg_listener *l, mcl_msg_cb cb, void *user);
MCL_API size_t mcl_msg_listener_subscriptions(const mcl_msg_listener *l);
MCL_API mcl_err mcl_msg_listener_start(mcl_msg_listener *l);
MCL_API mcl_err mcl_msg_listener_stop(mcl_msg_listener *l);
MCL_API mcl_err mcl_msg_listener_fd(const mcl_msg_listener *l, int *fd);
MCL_API bool mcl_msg_listener_pending(const mcl_msg_listener *l);
MCL_API mcl_err mcl_msg_listener_dispatch(mcl_msg_listener *l, size_t max, size_t *delivered);
MCL_API mcl_err mcl_msg_listener_close(mcl_msg_listener *l);
MCL_API bool mcl_msg_listener_is_open(const mcl_msg_listener *l);
MCL_API void mcl_msg_listener_free(mcl_msg_listener *l);
MCL_API const char *mcl_msg_listener_url(const mcl_msg_listener *l);
/** Counters (thread-safe). @since 0.1 */
MCL_API mcl_err mcl_msg_listener_stats(const mcl_msg_listener *l, mcl_msg_stats *st);
/** The underlying raw listener (for per-publisher stats). Owned by @p l. @since 0.1 */
MCL_API mcl_raw_listener *mcl_msg_listener_raw(mcl_msg_listener *l);

#ifdef __cplusplus
}
#endif
#endif
