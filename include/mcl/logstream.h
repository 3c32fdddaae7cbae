// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/logstream.h
 * Logs as seekable remote streams (docs/log-format.md, "Remote logs").
 *
 * A *log source* is an entity stream (mcl/stream.h) whose elements are a log's records in
 * reader order, after the reader's topic and time filters: element i is record i. Each element
 * is one msgpack array [time_ns (int), topic (str), publisher (uint), seq (uint), payload
 * (bin)]. It seeks forward, back and by time, and follows a log still being recorded (its end
 * moves).
 *
 * A *log server* serves a directory of logs (and/or named log files, such as the recording a
 * recorder is writing) by name on a packet-stream URL: a peer opens
 * "zmq+tcp://HOST:PORT/NAME" with mcl_stream_open(), optionally with params
 * ("topic=imu*&topic=gps&start=NS&end=NS", see mcl_log_params_format()), and reads records;
 * mcl_stream_list() lists what is served.
 */
#ifndef MCL_LOGSTREAM_H
#define MCL_LOGSTREAM_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/logfile.h>
#include <mcl/raw.h>
#include <mcl/stream.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- elements ------------------------------------------------------------------------------- */

/**
 * Encode the record @p m as one element: the msgpack array [recv_realtime_ns, topic,
 * publisher, seq, payload] (shortest forms; topic as str, payload as bin).
 * @param[out] buf   Receives the element (may be NULL when @p size is 0).
 * @param[out] len   The element's length; on MCL_EMSGSIZE the length it needs.
 * @retval MCL_OK @retval MCL_EMSGSIZE (@p size is too small: nothing written)
 * @retval MCL_EINVAL (NULL argument, topic longer than MCL_TOPIC_MAX or holding a NUL byte)
 * @since 0.3
 */
MCL_API mcl_err mcl_log_elem_encode(const mcl_raw_msg *m, void *buf, size_t size, size_t *len);

/**
 * Decode one element, in place: out->topic and out->payload point into @p data (the topic is
 * NOT NUL-terminated: use out->topic_len). Everything else in @p out is 0. The element comes
 * from the network: anything but exactly one such array (any int form for the time, a
 * non-negative int for publisher and seq, a topic of at most MCL_TOPIC_MAX bytes without NUL,
 * a bin payload, no byte after it) is refused.
 * @retval MCL_OK @retval MCL_EDECODE (malformed; *out is zeroed) @retval MCL_EINVAL (NULL)
 * @since 0.3
 */
MCL_API mcl_err mcl_log_elem_decode(const void *data, size_t len, mcl_raw_msg *out);

/* --- params ---------------------------------------------------------------------------------- */

/**
 * Format reader filters as log-stream params: "topic=T&...&start=NS&end=NS" (topics as given,
 * '*' suffixes included, bytes other than letters, digits and - . _ ~ / * : + as %XX; start and
 * end only when not 0). Only topics, start_ns and end_ns of @p o are used (NULL: no filter,
 * "").
 * @param[out] len  The text's length (without NUL); on MCL_EMSGSIZE the size it needs minus 1.
 * @retval MCL_OK @retval MCL_EMSGSIZE (@p size too small) @retval MCL_EINVAL
 * @since 0.3
 */
MCL_API mcl_err mcl_log_params_format(const mcl_log_reader_options *o, char *buf, size_t size,
                                      size_t *len);

/** Parsed params: reader options (opaque; mcl_log_params_options()). */
typedef struct mcl_log_params mcl_log_params;

/**
 * Parse log-stream params (the text comes from the network: strictly). Grammar: empty, or
 * ITEM ('&' ITEM)*, ITEM = "topic=" VALUE | "start=" NS | "end=" NS; VALUE in %XX escapes
 * (decoded: at most MCL_TOPIC_MAX bytes plus a final '*', no NUL); NS decimal digits, at most
 * INT64_MAX; start and end at most once each, end >= start when both are given; at most 256
 * topics and 4096 bytes in all. NULL means empty.
 * @retval MCL_OK @retval MCL_EINVAL (anything else) @retval MCL_ENOMEM
 * Ownership: the caller owns *pp; mcl_log_params_free().
 * @since 0.3
 */
MCL_API mcl_err mcl_log_params_parse(mcl_log_params **pp, const char *params);
/** The reader options (borrowed from @p p). @since 0.3 */
MCL_API const mcl_log_reader_options *mcl_log_params_options(const mcl_log_params *p);
/** Release; NULL-safe. @since 0.3 */
MCL_API void mcl_log_params_free(mcl_log_params *p);

/* --- the log source -------------------------------------------------------------------------- */

/**
 * A log source: opens the logs @p paths with @p o (mcl_log_reader_open()) as an entity stream
 * of their records. Positions are record indices after the filters (0: the first record that
 * passes them). Mode: READABLE, SEEK_FWD, SEEK_BACK, SEEK_TIME, BOUNDED_START, MOVABLE_END; its
 * end is MCL_STREAM_NOEND until a read has reached it (then the records seen), and moves when
 * the files grow (each read at the end calls mcl_log_reader_refresh() once, so a following
 * reader sees new records). A time seek gives the first record, in reader order, at or after
 * the time. Seeking keeps sparse marks of the records read (every 1024), so that seeks that
 * come back are quick; the first seek far into a log reads up to there.
 *
 * info (key=value lines): first_ns= (the first record's time, when there is one), last_ns=
 * and records= (when known: a log of at most 16 MiB is counted at open), files=, corrupt=
 * (records skipped as damaged so far).
 *
 * Indices are stable for one file or one split series (records are only appended). Several
 * sources merged are numbered in time order as they are at open; if more than one of them
 * grows, records appended to one may sort before records already read from another, and
 * indices read before and after differ.
 * @retval MCL_OK @retval as mcl_log_reader_open() @retval MCL_EINVAL @retval MCL_ENOMEM
 * Ownership: the source is owned by whoever gets it (a stream, mcl_stream_server_offer());
 * its close operation releases it.
 * @since 0.3
 */
MCL_API mcl_err mcl_log_source_open(mcl_stream_source *src, const char *const *paths, size_t npaths,
                                    const mcl_log_reader_options *o);

/* --- the log server -------------------------------------------------------------------------- */

typedef struct mcl_log_server mcl_log_server;

/**
 * A log server serving the logs under @p root (NULL: none; only names added with
 * mcl_log_server_add()). A peer's stream name is a path relative to @p root naming a log
 * file, the PATH of a split series (PATH_000.mcllog) or a directory (its logs merged); names
 * that are absolute, hold an empty, "." or ".." component, a control byte, or lead (through
 * symbolic links) outside @p root are refused.
 * @retval MCL_OK @retval MCL_ENOENT (@p root is not a directory) @retval MCL_ENOMEM
 * @retval MCL_EINVAL
 * Ownership: the caller owns *sp; mcl_log_server_free().
 * @since 0.3
 */
MCL_API mcl_err mcl_log_server_new(mcl_log_server **sp, const char *root);

/**
 * Serve the log @p path (a file, series PATH or directory; it may not exist yet) under
 * @p name, which takes precedence over @p root. Before mcl_log_server_listen() only.
 * @retval MCL_OK @retval MCL_EINVAL (empty name, or a name with '/' or control bytes)
 * @retval MCL_EEXIST (the name is taken) @retval MCL_ESTATE (listening) @retval MCL_ENOMEM
 * @since 0.3
 */
MCL_API mcl_err mcl_log_server_add(mcl_log_server *s, const char *name, const char *path);

/**
 * What the server does when a peer opens @p name with @p params: a log source filtered by the
 * params (mcl_log_params_parse()). Usable as an mcl_stream_resolve_fn (its user: @p s) and
 * directly (tests, tools).
 * @retval MCL_OK (@p src filled) @retval MCL_EPERM (a name refused, or leading outside the
 * root) @retval MCL_ENOENT (no such log) @retval MCL_EINVAL (bad params) @retval MCL_EPROTO
 * (not a log) @retval MCL_ENOMEM
 * Thread-safety: after mcl_log_server_add() calls are done, from any thread.
 * @since 0.3
 */
MCL_API mcl_err mcl_log_server_resolve(mcl_log_server *s, const char *name, const char *params,
                                       mcl_stream_source *src);

/**
 * Call @p add for each log served, with its info (as the source's: first_ns=, last_ns= and
 * records= when known, files=, corrupt=): the names added, then the logs under the root (every
 * *.mcllog and *.log file, a split series once by its PATH; depth at most 8, at most 1000
 * entries and 10000 directories; symbolic links, names starting with '.' and root logs hidden
 * by a name added are left out; a log that cannot be read has info "error=MCL_...").
 * Logs are counted through (records=, last_ns=) while that reads at most 64 MiB in all.
 * Usable as an mcl_stream_list_fn (its user: @p s).
 * @since 0.3
 */
MCL_API void mcl_log_server_list(mcl_log_server *s,
                                 void (*add)(void *ctx, const char *name, const char *info),
                                 void *ctx);

/**
 * Listen on @p url (mcl_stream_server_listen(): zmq+tcp://HOST:PORT, port 0 for any) and serve,
 * on the stream server's own reactor thread. @p o: stream-server options (NULL: defaults).
 * @retval MCL_OK @retval MCL_ESTATE (already listening) @retval as mcl_stream_server_new() and
 * mcl_stream_server_listen()
 * @since 0.3
 */
MCL_API mcl_err mcl_log_server_listen(mcl_log_server *s, const char *url,
                                      const mcl_stream_server_options *o);

/** mcl_log_server_new() then mcl_log_server_listen() with the default options. @since 0.3 */
MCL_API mcl_err mcl_log_server_open(mcl_log_server **sp, const char *root, const char *url);

/** Where it listens (the effective URL: the port chosen); NULL before listening. @since 0.3 */
MCL_API const char *mcl_log_server_url(const mcl_log_server *s);

/** The stream server (NULL before listening), e.g. for mcl_stream_server_streams(); owned by
 * @p s. @since 0.3 */
MCL_API mcl_stream_server *mcl_log_server_streams(mcl_log_server *s);

/** Stop serving (every stream fails, every source closes) and release; NULL-safe. Not from the
 * stream server's reactor thread. @since 0.3 */
MCL_API void mcl_log_server_free(mcl_log_server *s);

#ifdef __cplusplus
}
#endif
#endif
