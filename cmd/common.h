// SPDX-License-Identifier: BSD-3-Clause
// Helpers shared by the mcl-* tools (public API only).
#ifndef MCL_CMD_COMMON_H
#define MCL_CMD_COMMON_H

#include <mcl/mcl.h>

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// Exit codes of every tool (each --help states them in its "Exit status:" section):
//   EXIT_OK      0  success (for tools that run until stopped: stopped by SIGINT/SIGTERM)
//   EXIT_RUNTIME 1  a runtime failure: the network (an interface, an address, a host that
//                   does not resolve, no listener or service in time), an I/O error during the
//                   run (an unwritable output), a timeout, sends the kernel refused
//   EXIT_USAGE   2  the command line or its input is wrong: a usage error (an unknown option,
//                   a bad value, a malformed URL), a missing or unreadable input file (-f, -c,
//                   key files named by a URL, a log to replay: the same status from every tool),
//                   a file that is not a log, a malformed config, an output file that exists
//                   (without --force)
// Tools add codes of their own only above these (mcl-call: 10 + an RPC status).
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

// Help text (--help, also -h; cmake/help2man.sh makes each man page from it): a "Usage: PROG
// ..." line (more synopsis lines indented under it), a one-line description ending with '.',
// then paragraphs separated by blank lines; a line "Heading:" starts a subsection; option lines
// are "  -x, --long ARG   text" (two or more spaces before the text, continuations indented
// deeper); the last section is TOOL_HELP_EXIT (the codes above, in the same words everywhere),
// with the tool's own meaning of success and, where it has them, more lines.
#define TOOL_HELP_EXIT_WITH(ok, more)                                                              \
    "Exit status:\n"                                                                               \
    "  0  " ok "\n"                                                                                \
    "  1  runtime failure: network, I/O error during the run, timeout, refused sends\n" more       \
    "  2  wrong command line or input: usage error, missing or unreadable file (also a key\n"     \
    "     file named by a URL), a file that is not a log, malformed config, an output\n"           \
    "     file that exists (without --force)\n"
#define TOOL_HELP_EXIT TOOL_HELP_EXIT_WITH("success", "")

// getopt_long() for the tools: -h is --help (it returns the value of the "help" entry of
// longopts), and an unknown option, or one without its value, is reported in one line
// ("PROG: unknown option '--x' (PROG --help lists the options)"); then it returns '?' (the
// caller exits EXIT_USAGE without printing more). Otherwise as getopt_long().
struct option;
int tool_getopt(const char *prog, int argc, char **argv, const char *shortopts,
                const struct option *longopts);
// --version: "PROG VERSION" (mcl_version(): the library's version) on stdout.
void tool_version(const char *prog);

// Set by SIGINT/SIGTERM/SIGHUP once tool_signals() is installed.
extern volatile sig_atomic_t tool_stop;
void tool_signals(void);
// A stop function for mcl_log_reader_set_stop(): true once tool_stop is set.
bool tool_reader_stop(void *arg);

// Prints "PROG: message" to stderr, one line. A warning the library logged on this thread just
// before (the detail of the failure the tool reports: tool_log_to_stderr()) is folded into the
// line, in parentheses, without what the message already says.
void tool_err(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Routes the library's messages to stderr ("PROG: warn: COMPONENT: text"). verbose: every
// message, at once (debug and up). Otherwise warnings and errors only, and one error is one
// line: a warning is held for half a second, so that the tool's own line for the failure that
// caused it (tool_err() on the same thread) carries it instead; one not claimed by then (a
// warning about something that goes on) is printed as it is, as is every error-level message.
// What is held at exit is printed then.
void tool_log_to_stderr(const char *prog, bool verbose);

// After opening a listener: when the kernel granted less receive buffer (granted, from the
// listener's statistics) than the connection asked for (mcl_connection_rcvbuf()), says so in
// one line (what was granted, what was asked, how to raise it: sysctl net.core.rmem_max, or
// ask less with rcvbuf=), once, without -v (the library's own line about it is dropped).
void tool_check_rcvbuf(const char *prog, const mcl_connection *conn, size_t granted);

// Says "PROG: WHAT URL: why" for an open (listener, broadcaster, server) that failed with rv
// and returns the exit code: EXIT_USAGE for a malformed URL (MCL_EURL, MCL_EINVAL) or a key
// file it names that cannot be read (curve=, curve_server=, curve_clients=, key=), else
// EXIT_RUNTIME.
int tool_open_error(const char *prog, const char *what, const char *url, mcl_err rv);
// The exit code alone, for a tool that words the error itself.
int tool_open_status(const char *url, mcl_err rv);

// url with the parameter KEY=VALUE: one that it has replaced, else added ('?' or '&'). For
// messages that say which URL would raise a limit.
void tool_url_with(const char *url, const char *key, const char *value, char *buf, size_t len);

// Says "PROG: WHAT is 70.0 MiB, above the connection's maxmsg (64 MiB): raise it with -u
// 'URL&maxmsg=70M'" (say_size false: WHAT says the size itself; len 0: not known, only larger).
void tool_too_large(const char *prog, const mcl_connection *conn, const char *what, uint64_t len,
                    bool say_size);

// A size for people: "70.0 MB" (10^6) when si, else "64 MiB" / "1.5 KiB" / "100 bytes".
void tool_format_size(uint64_t bytes, bool si, char *buf, size_t len);

// Number parsers: whole string, range-checked. SIZE accepts k/M/G suffixes (powers of 1024).
bool tool_parse_u64(const char *s, uint64_t max, uint64_t *out);
bool tool_parse_size(const char *s, uint64_t max, uint64_t *out);
bool tool_parse_double(const char *s, double min, double max, double *out);

// Opens the connection from -u URL (NULL: MCL_URL, then the default); reports errors: EXIT_USAGE
// for a malformed URL or a key file it names that cannot be read (key=), else EXIT_RUNTIME.
int tool_connection(const char *prog, const char *url, mcl_connection **conn);

// Appends the comma-separated entries of arg to a string list (empty entries kept: "" is the
// empty topic). Returns -1 when out of memory. tool_free_list() releases the list.
int tool_add_list(char ***list, size_t *n, const char *arg);
// -t TOPICS: appends them (tool_add_list) and checks each against MCL_TOPIC_MAX (a filter
// entry ending in '*' may be one byte longer). Says what is wrong; returns EXIT_OK,
// EXIT_USAGE or EXIT_RUNTIME (out of memory).
int tool_add_topics(const char *prog, char ***list, size_t *n, const char *arg);

// Length of the valid UTF-8 sequence at p[0..n) (1..4: no overlong forms, surrogates or values
// above U+10FFFF), or 0 if invalid; *cp (may be NULL) gets its code point.
size_t tool_utf8_len(const uint8_t *p, size_t n, uint32_t *cp);
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
// A duration for people: "12.3 s" under a minute, else "4:05" (m:ss) or "1:02:03" (h:mm:ss).
void tool_format_duration(double seconds, char *buf, size_t len);

// A one-line status (progress) on stderr, only when stderr is a terminal: each show rewrites
// the line in place ('\r', the text cut to the terminal's width, then clear to its end; with
// TERM=dumb, spaces), tool_status_due() says when a show is due (at most about once a second),
// and tool_status_end() ends a line that was shown with a newline, so that what follows starts
// on a line of its own. Nothing is ever written when stderr is not a terminal (a pipe, a file):
// no '\r', no escape. tool_err() and the library's messages (tool_log_to_stderr()) clear a line
// that is shown before they print; the next show draws it again. One status at a time per
// process; shows come from one thread.
typedef struct tool_status {
    bool on;         // stderr is a terminal and the tool was not asked to be quiet
    bool ever;       // a line was shown (then tool_status_end() writes the newline)
    int64_t next_ns; // when the next show is due (CLOCK_MONOTONIC)
    int len;         // the width of the line shown last (TERM=dumb: what spaces clear)
    bool dumb;       // TERM is unset or "dumb": no escape sequences
} tool_status;
enum { TOOL_STATUS_PERIOD_MS = 1000 };
// enable: the tool wants a status (not -q); it is on only if stderr is also a terminal. The
// first show is due after TOOL_STATUS_PERIOD_MS (a short job shows nothing).
void tool_status_init(tool_status *s, bool enable);
// Whether s is on and a show is due.
bool tool_status_due(const tool_status *s);
// Draws the line now (when s is on), and makes the next one due a period later.
void tool_status_show(tool_status *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Ends a line that was shown with a newline (it stays on the screen); then s is off.
void tool_status_end(tool_status *s);
// Clears the line shown now, if any (before other output to stderr).
void tool_status_clear(void);

// A log to read (mcl-dump -f, mcl-replay): local logs (files, split series, directories:
// mcl_log_reader) or one remote log, a location with "://" ("zmq+tcp://HOST:PORT/NAME": a log
// server's entity stream of records, mcl/logstream.h). Filters travel to the server as params.
typedef struct tool_log tool_log;
typedef struct tool_log_options {
    char **topics; // topic filter (NULL: all)
    size_t ntopics;
    double start_s, end_s; // seconds after the log's first record (0: from the start / to the end)
    bool follow;           // at the end, wait for more (a log still being recorded)
    bool empty_ok;         // filters that select no record open (tool_log_empty() says so)
                           // instead of failing when --start/--end have no first record
} tool_log_options;
// Whether path names a remote log.
bool tool_log_is_remote(const char *path);
// Opens the logs; returns EXIT_OK, or an exit code after saying why (EXIT_USAGE: no such log, or
// one that cannot be read; "FILE: not an mcl or Python MCL log" for a file that is no log).
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
// Whether the filters (topics, --start/--end) selected no record at open (never when
// following).
bool tool_log_empty(const tool_log *l);
// The times of the first and last records (ns) of the log after the topic filter (topics
// true) or of all its records, before --start/--end; false when there are none. *last_known is
// false when the end could not be found: a remote log whose server did not count it (over
// 16 MiB), or a local search that took longer than about a second. Local logs: another
// reader, a binary search by time (mcl_log_reader_seek()); remote: the server's info (a
// second stream without the topic filter, when asked for all the records).
bool tool_log_span(tool_log *l, bool topics, int64_t *first, int64_t *last, bool *last_known);
// The number of records that pass every filter: a local log is counted by another reader for
// at most budget_ms, a remote one as its server counted it at open; false when not known.
bool tool_log_count(tool_log *l, int budget_ms, uint64_t *n);
// Records skipped as damaged (remote: as the server counted them at open).
uint64_t tool_log_corrupt(const tool_log *l, uint64_t *bytes);
// Bytes at the end of a local log that form no complete record (mcl_log_reader_tail()).
uint64_t tool_log_tail(const tool_log *l);
const char *tool_log_error(tool_log *l);
void tool_log_close(tool_log *l);

#endif
