// Helpers shared by the mcl-* tools (public API only).
#ifndef MCL_CMD_COMMON_H
#define MCL_CMD_COMMON_H

#include <mcl/mcl.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Exit codes of every tool.
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

// Set by SIGINT/SIGTERM/SIGHUP once tool_signals() is installed.
extern volatile sig_atomic_t tool_stop;
void tool_signals(void);

// Prints "PROG: message" to stderr.
void tool_err(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Routes the library's warnings to stderr (prefix PROG) when verbose.
void tool_log_to_stderr(const char *prog, bool verbose);

// Number parsers: whole string, range-checked. SIZE accepts k/M/G suffixes (powers of 1024).
bool tool_parse_u64(const char *s, uint64_t max, uint64_t *out);
bool tool_parse_size(const char *s, uint64_t max, uint64_t *out);
bool tool_parse_double(const char *s, double min, double max, double *out);

// Opens the connection from -u URL (NULL: MCL_URL, then the default); reports errors.
int tool_connection(const char *prog, const char *url, mcl_connection **conn);

// Appends the comma-separated entries of arg to a string list (empty entries kept: "" is the
// empty topic). Returns -1 when out of memory. tool_free_list() releases the list.
int tool_add_list(char ***list, size_t *n, const char *arg);
void tool_free_list(char **list, size_t n);

// Closes b (sending what a batching connection still holds) and reads its counters into *bs.
// Returns false, after saying so, when the close failed or the kernel refused messages;
// `reported` = a send failure was already reported, so counted refusals alone say nothing more.
bool tool_close_broadcaster(const char *prog, mcl_raw_broadcaster *b, bool reported,
                            mcl_broadcaster_stats *bs);

// The --subscribers/--wait options of the publishing tools: on a zmq connection, a
// broadcaster waits until `want` listeners have subscribed (ZeroMQ delivers nothing to a
// listener before its subscription has arrived). want < 0: 1 for zmq, 0 for udp.
typedef struct tool_wait {
    long want;
    double wait_s;
} tool_wait;
#define TOOL_WAIT_INIT {-1, 10}
enum { TOOL_OPT_SUBSCRIBERS = 0x1000, TOOL_OPT_WAIT };
#define TOOL_WAIT_LONGOPTS                                                                         \
    {"subscribers", required_argument, NULL, TOOL_OPT_SUBSCRIBERS},                                \
        {"wait", required_argument, NULL, TOOL_OPT_WAIT}
// Parses the value of option c (TOOL_OPT_SUBSCRIBERS or TOOL_OPT_WAIT); false, after saying
// why, when it is invalid.
bool tool_wait_option(const char *prog, int c, const char *arg, tool_wait *w);
// Waits as w says; false, after saying why, when the listeners did not come in time (or on
// Ctrl-C).
bool tool_wait_subscribers(const char *prog, mcl_raw_broadcaster *b, const tool_wait *w);

// CLOCK_MONOTONIC in nanoseconds.
int64_t tool_mono_ns(void);
// Sleeps until the monotonic time t (ns); returns early once tool_stop is set.
void tool_sleep_until(int64_t t);

// "2026-11-21T23:59:01.123456Z"
void tool_format_time(int64_t realtime_ns, char *buf, size_t len);

// A log to read (mcl-dump -f, mcl-replay): local logs (files, split series, directories:
// mcl_log_reader) or one remote log, a location with "://" ("zmq+tcp://HOST:PORT/NAME": a log
// server's entity stream of records, mcl/logstream.h). Filters travel to the server as params.
typedef struct tool_log tool_log;
typedef struct tool_log_options {
    char **topics; // topic filter (NULL: all)
    size_t ntopics;
    double start_s, end_s; // seconds after the log's first record (0: from the start / to the end)
    bool follow;           // at the end, wait for more (a log still being recorded)
} tool_log_options;
// Whether path names a remote log.
bool tool_log_is_remote(const char *path);
// Opens the logs; returns EXIT_OK, or an exit code after saying why (EXIT_USAGE: no such log).
int tool_log_open(const char *prog, tool_log **lp, const char *const *paths, int npaths,
                  const tool_log_options *o);
// The next record, borrowed until the next call (its topic NUL-terminated). MCL_ENOENT: the
// end (never when following); MCL_ETIMEDOUT: nothing within timeout_ms (following, or a slow
// server); anything else: failed (tool_log_error() says why).
mcl_err tool_log_next(tool_log *l, const mcl_raw_msg **m, int timeout_ms);
// Back to the first record (after the filters).
mcl_err tool_log_rewind(tool_log *l);
// The time of the log's first record after the topic filter, before --start/--end; false when
// it has none (yet).
bool tool_log_first_ns(const tool_log *l, int64_t *t);
// Records skipped as damaged (remote: as the server counted them at open).
uint64_t tool_log_corrupt(const tool_log *l, uint64_t *bytes);
const char *tool_log_error(tool_log *l);
void tool_log_close(tool_log *l);

#endif
