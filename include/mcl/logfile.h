// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/logfile.h
 * Recording and reading logs of messages (format: docs/log-format.md).
 *
 * A log is a file header followed by self-delimiting records (sync marker, length, CRC32C,
 * receive time, publisher, sequence, topic, payload). A reader skips and counts a torn or
 * corrupt record and resynchronises at the next marker; a file still being written reads up to
 * its last complete record, and mcl_log_reader_refresh() goes on with what was written since.
 * Readers also read Python MCL's text `.log` files. Logs served as remote streams:
 * mcl/logstream.h. A writer may store records in compressed blocks (zstd or lz4,
 * mcl_log_writer_options.compress); every reader reads both kinds.
 *
 * Threads: a writer may be written from several threads at once; a reader is used by one
 * thread at a time.
 */
#ifndef MCL_LOGFILE_H
#define MCL_LOGFILE_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/raw.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Compression of a log's records (mcl_log_writer_options.compress). @since 0.4 */
typedef enum mcl_log_compress {
    MCL_LOG_COMPRESS_NONE = 0, /**< plain records (a version 1 file) */
    MCL_LOG_COMPRESS_ZSTD = 1, /**< zstd blocks (a version 2 file) */
    MCL_LOG_COMPRESS_LZ4 = 2,  /**< lz4 blocks (a version 2 file) */
    MCL_LOG_COMPRESS_LZ4HC = 3 /**< lz4 blocks written by lz4's high-compression mode: smaller,
                                    slower to write (tens of MB/s), read as fast as lz4; the
                                    file says lz4 (readers need nothing new) */
} mcl_log_compress;

/** Writer options; all-zero means: one file, no splitting, flushed every 100 ms, uncompressed. */
typedef struct mcl_log_writer_options {
    uint64_t split_bytes;  /**< start a new part after this many bytes (0: never) */
    uint64_t split_count;  /**< ... after this many records (0: never) */
    double split_seconds;  /**< ... when a record comes this long after the part's first (0: never) */
    bool overwrite;        /**< replace existing files instead of refusing (MCL_EEXIST) */
    int flush_ms;          /**< write buffered records to the kernel at least this often; 0: 100 ms.
                                A kill -9 of the process loses at most this much; a power cut may
                                lose what the kernel had not written to disk. */
    const char *metadata;  /**< extra "key=value" lines for the header (NULL: none) */
    /** Records in compressed blocks (docs/log-format.md "Compressed blocks"): collected in
        memory and written as one block when it holds `block_bytes`, at every flush (so a
        kill -9 still loses at most `flush_ms`) and when a part ends. A longer `flush_ms`
        makes larger blocks (better compression) of slow traffic. A record too large for a
        block, or a block that does not get at least a 16th smaller (plain reads faster), is
        written plain. MCL_ENOTSUP from mcl_log_writer_open() when this build lacks the
        codec. @since 0.4 */
    mcl_log_compress compress;
    int compress_level;    /**< zstd: 1..19 (0: 3); lz4: acceleration, 1 and up (0: 1) @since 0.4 */
    size_t block_bytes;    /**< records per block, in bytes before compression (0: 1 MiB; at
                                most 16 MiB) @since 0.4 */
} mcl_log_writer_options;

typedef struct mcl_log_writer mcl_log_writer;

/**
 * Create a log. Without splitting, @p path is the file. With any split rule, the parts are
 * PATH_000.mcllog, PATH_001.mcllog, ...; each finished part is complete and closed.
 * @retval MCL_OK
 * @retval MCL_EEXIST  the file (or the first part) exists and `overwrite` is false.
 * @retval MCL_EINVAL, MCL_EPERM, MCL_ENOENT, MCL_ESYS, MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_log_writer_open(mcl_log_writer **wp, const char *path,
                                    const mcl_log_writer_options *options);

/**
 * Append one message (topic, payload, publisher, sequence and receive time). Thread-safe.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ECLOSED @retval MCL_ESYS (disk full, ...)
 * @since 0.1
 */
MCL_API mcl_err mcl_log_writer_write(mcl_log_writer *w, const mcl_raw_msg *m);

/** Write what is buffered to the kernel (and, with @p sync, to disk). @since 0.1 */
MCL_API mcl_err mcl_log_writer_flush(mcl_log_writer *w, bool sync);

/** Counters: records and bytes written (handed to the file: with compression, a block's
    records count once the block is written, and bytes are its compressed bytes), parts
    started. Thread-safe. @since 0.1 */
MCL_API void mcl_log_writer_counts(const mcl_log_writer *w, uint64_t *records, uint64_t *bytes,
                                   unsigned *parts);

/** Flush, close the current part and release; NULL-safe. @since 0.1 */
MCL_API mcl_err mcl_log_writer_close(mcl_log_writer *w);

/** Reader options; all-zero means everything. */
typedef struct mcl_log_reader_options {
    int64_t start_ns;          /**< skip records before (CLOCK_REALTIME ns; 0: from the start) */
    int64_t end_ns;            /**< stop at records after (0: to the end) */
    const char *const *topics; /**< topic filter, as mcl_raw_listener_open() (NULL: all) */
    size_t ntopics;
} mcl_log_reader_options;

typedef struct mcl_log_reader mcl_log_reader;

/**
 * Open logs for reading. Each path is a log file (mcl or Python MCL text), the PATH of a split
 * series (PATH_000.mcllog or PATH_000.log, ...), or a directory (every *.mcllog and *.log file
 * in it). Several sources are merged in time order. A file that is empty or holds only the
 * start of a header (a recording being created) opens as an empty log (mcl_log_reader_refresh()
 * reads it once its header is there). Compressed logs read like plain ones.
 * @retval MCL_OK @retval MCL_ENOENT (a path matches nothing) @retval MCL_EPROTO (not a log)
 * @retval MCL_ENOTSUP (a compressed log whose codec this build lacks)
 * @retval MCL_EINVAL @retval MCL_ENOMEM @retval MCL_ESYS
 * @since 0.1
 */
MCL_API mcl_err mcl_log_reader_open(mcl_log_reader **rp, const char *const *paths, size_t npaths,
                                    const mcl_log_reader_options *options);

/**
 * The next record in time order, as a message (recv_realtime_ns is the recorded receive time;
 * recv_mono_ns and the sender are 0). Borrowed until the next call on @p r. The work of one
 * call is linear in the bytes it goes through (damage, records the filters leave out), which
 * can be a whole file: see mcl_log_reader_set_stop().
 * @retval MCL_OK @retval MCL_ENOENT (no more records) @retval MCL_EINVAL
 * @retval MCL_EINTR  the stop function said stop; calling again goes on where it stopped.
 * @retval MCL_ENOMEM  no memory for a compressed block (or the topic's copy): nothing was
 *         skipped, calling again retries. @since 0.4 for blocks
 * @since 0.1
 */
MCL_API mcl_err mcl_log_reader_next(mcl_log_reader *r, const mcl_raw_msg **msgp);

/**
 * Set a function that mcl_log_reader_next() calls about every MiB it goes through without a
 * record to return (damage, filtered records), so that a program can stop reading a huge
 * damaged or crafted file at once (a signal flag: return it). When it returns true,
 * mcl_log_reader_next() returns MCL_EINTR; nothing is lost, the next call goes on. Called on
 * the thread calling mcl_log_reader_next(), never with @p r in an inconsistent state; @p arg is
 * passed as given. NULL (the default): never stop. (The check of one record's CRC is not
 * divided: at most 4 GiB, a fraction of a second.)
 * @retval MCL_OK @retval MCL_EINVAL (@p r is NULL)
 * @since 0.3
 */
MCL_API mcl_err mcl_log_reader_set_stop(mcl_log_reader *r, bool (*stop)(void *arg), void *arg);

/** Go back to the first record. @since 0.1 */
MCL_API mcl_err mcl_log_reader_reset(mcl_log_reader *r);

/** Continue from the first record at or after @p time_ns (binary search on each file). @since 0.1 */
MCL_API mcl_err mcl_log_reader_seek(mcl_log_reader *r, int64_t time_ns);

/**
 * Pick up what was written since the files were opened (or last refreshed): a file whose size
 * changed is mapped again, a file that was still empty (or held only part of its header) is
 * recognised once its header is complete, and a split series gets its new parts (PATH_NNN+1,
 * ...). A source that had reached its end goes on: the next mcl_log_reader_next() returns the
 * records that came since (MCL_ENOENT again when nothing came). Call it after MCL_ENOENT to
 * follow a log being recorded (tail -f), as often as you like: it stats the current file of
 * each source and those after it, nothing else.
 *
 * What is not picked up: new files in a directory given to mcl_log_reader_open(), growth of
 * parts of a series before the one being read (a writer finishes a part before it starts the
 * next). Damage rules are unchanged: a torn tail is the end for now and reads as a record once
 * it is complete; a file that grows into something that is not a log is skipped, never read.
 * The record last returned by mcl_log_reader_next() is invalid after this call (as after any
 * call on @p r).
 * @retval MCL_OK @retval MCL_EINVAL (@p r is NULL)
 * @since 0.3
 */
MCL_API mcl_err mcl_log_reader_refresh(mcl_log_reader *r);

/**
 * Damaged records skipped so far, and in @p bytes the bytes skipped with them (every byte after
 * a file's header is a record read, skipped here, or the tail below; docs/log-format.md).
 * @since 0.1
 */
MCL_API uint64_t mcl_log_reader_corrupt(const mcl_log_reader *r, uint64_t *bytes);

/**
 * Bytes after the last record of the sources that reached their end, not read as records and
 * not counted by mcl_log_reader_corrupt(): a record still being written (a log being recorded
 * always may have one), or in a finished log a torn or damaged end. 0 while no source is at
 * its end. @since 0.3
 */
MCL_API uint64_t mcl_log_reader_tail(const mcl_log_reader *r);

/** Release; NULL-safe. @since 0.1 */
MCL_API void mcl_log_reader_close(mcl_log_reader *r);

#ifdef __cplusplus
}
#endif
#endif
