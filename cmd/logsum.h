// SPDX-License-Identifier: BSD-3-Clause
// Log summaries shared by `mcl-stat -f LOG` and `mcl-dump -f LOG --stats` (public API only):
// per-topic counts, rates, types and sizes of the records of a log, and (mcl-stat) a
// `ros2 bag info`-like report with the log's parts, duration, start and end, and damage.
#ifndef MCL_CMD_LOGSUM_H
#define MCL_CMD_LOGSUM_H

#include "common.h"

// At most this many topics are tracked per summary (a hostile log may name millions); the
// records of further topics are counted in logsum_untracked().
enum { LOGSUM_MAX_TOPICS = 65536 };

typedef struct logsum logsum;

// One topic's figures (LOGSUM_MAX_TOPICS bounds how many there are).
typedef struct logsum_topic {
    char *topic;             // NUL-terminated (as recorded; may hold any byte but NUL)
    uint64_t count, bytes;   // records and payload bytes
    uint64_t size_min, size_max;
    int64_t first_ns, last_ns; // recorded receive times (CLOCK_REALTIME)
    char type[64];           // the "name" of typed messages (msgpack maps); "" if none;
                             // "(mixed)" when it varies
    bool typed, untyped;     // seen records with a name / without one
} logsum_topic;

// NULL when out of memory.
logsum *logsum_new(void);
void logsum_free(logsum *s);
// Counts one record. False when out of memory (the record is then not counted).
bool logsum_add(logsum *s, const mcl_raw_msg *m);
// Adds everything b counted to a (topics merged); false when out of memory.
bool logsum_merge(logsum *a, const logsum *b);
uint64_t logsum_records(const logsum *s);
uint64_t logsum_bytes(const logsum *s);
uint64_t logsum_untracked(const logsum *s);
// First and last receive time; false when there are no records.
bool logsum_span(const logsum *s, int64_t *first_ns, int64_t *last_ns);
// The topics, sorted by name; valid until the next add/merge/free.
const logsum_topic *logsum_topics(logsum *s, size_t *n);

// The per-topic table: TOPIC COUNT RATE TYPE SIZE min/mean/max, rates as count over the
// whole log's duration. Fits 80 columns for topics up to about 20 bytes.
void logsum_print_topics(logsum *s, FILE *o);

// The type name of a payload: a msgpack map with a "name" string (as the library's per-topic
// statistics read it). Writes "" when it has none. Never reads outside p[0..n).
void logsum_peek_type(const void *p, size_t n, char *out, size_t outsz);

// Length of the valid, printable UTF-8 sequence of 2..4 bytes at p[0..n) (not a C1 control),
// or 0.
size_t logsum_utf8_seq(const uint8_t *p, size_t n);

// Copies src[0..n) for a terminal or a table: printable text kept (valid UTF-8 when utf8,
// else ASCII), anything else (controls, escape sequences, invalid bytes) as '?'; at most
// `cols` characters, the last one '~' when cut; padded with spaces to `pad` characters when
// pad > 0. Returns the number of characters (columns) written. out has room for
// 4 * cols + pad + 1 bytes.
size_t logsum_safe_text(char *out, const char *src, size_t n, size_t cols, size_t pad, bool utf8);

// `mcl-stat -f`: opens the logs (local files, split series, directories; or one remote log
// "zmq+tcp://HOST:PORT/NAME"), reads every record (topic filter applied) and prints the
// report to o. Returns an exit code (EXIT_USAGE: no such log), after saying why.
int logsum_report(const char *prog, const char *const *paths, int npaths, char **topics,
                  size_t ntopics, FILE *o);

#endif
