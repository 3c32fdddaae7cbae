// SPDX-License-Identifier: BSD-3-Clause
// mcl-replay: publish recorded messages again with their original timing.
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sys/prctl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "mcl-replay";
// A record this much older than the latest before it is a clock step back (smaller ones are
// records of several connections a little out of order, replayed at their times).
#define STEP_BACK_NS 100000000LL
static volatile sig_atomic_t resumed;

static void
on_cont(int sig)
{
    (void)sig;
    resumed = 1;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-replay [OPTION]... LOG...\n"
            "Publish the messages of logs (mcl or Python MCL; files, split series or directories,\n"
            "merged in time order) with their recorded timing, on their recorded topics. A LOG\n"
            "may also be a remote log, zmq+tcp://HOST:PORT/NAME (mcl-log --serve), read alone:\n"
            "its server applies the filters.\n"
            "\n"
            "  -u, --url URL      where to publish (default: $MCL_URL, else %s)\n"
            "  -s, --speed X      replay X times faster (default 1; 0.5 is half speed)\n"
            "      --start SEC    begin SEC seconds after the log's first message (the first\n"
            "                     of the topics given with -t)\n"
            "      --end SEC      stop SEC seconds after that first message\n"
            "  -t, --topic T[,T]  only these topics ('imu/*' matches a prefix)\n"
            "  -l, --loop         start again at the end, until interrupted\n"
            "  -q, --quiet        no progress line and no summary\n"
            "      --subscribers N\n"
            "                     zmq: wait for N listeners first (default 1; 0: don't)\n"
            "      --wait SEC     how long to wait for them (default 10)\n"
            "  -h, --help         this text\n"
            "      --version      version\n"
            "\n"
            "Sending is paced against the start time, so errors do not accumulate; after a pause\n"
            "(Ctrl-Z, then fg) it continues from where it was. When stderr is a terminal, a\n"
            "progress line shows, once a second, the messages sent of the total (when the log\n"
            "could be counted in half a second; a remote log: when its server counted it), the\n"
            "percentage, where the replay is (seconds after the log's first message) of where it\n"
            "ends, the time elapsed and the time left at this speed; never when stderr is a pipe\n"
            "or a file. At the end, a summary with the timing error (actual - scheduled send\n"
            "time). When -t, --start and --end select no message, it says so, with the time span\n"
            "of the log's messages, and exits 1.\n"
            "Clock steps: records are replayed in the order of the log (a file's order; several\n"
            "logs merged by time). When a record's time is more than 0.1 s before the latest\n"
            "before it (the recorder's clock was stepped back), a warning names the record and\n"
            "the step, and the replay goes on as if no time had passed there: it is paced by\n"
            "the time between records, clamped at 0 (logs store no monotonic time). --start and\n"
            "--end count on that timeline, so a step never hides records from them (a remote\n"
            "log: its server selects by recorded times).\n"
            "A record above the connection's maxmsg stops the replay; the error names the\n"
            "limit and the URL that raises it.\n"
            "\n" TOOL_HELP_EXIT_WITH("success", "     (also: nothing to replay)\n"),
            MCL_DEFAULT_URL);
}

// Says why nothing is selected, in the terms of --start/--end: seconds after the first
// record (of the topics given).
static void
nothing_selected(tool_log *in, const char *name, double start, double end, char **topics,
                 size_t ntopics)
{
    int64_t first, last;
    bool known;
    char tl[256] = "", at[40], span[400];
    for (size_t i = 0, n = 0; i < ntopics && n < sizeof(tl); i++)
        n += (size_t)snprintf(tl + n, sizeof(tl) - n, "%s%s", i ? "," : "", topics[i]);
    if (!tool_log_span(in, false, &first, &last, &known)) {
        tool_err(prog, "%s has no records: nothing to replay", name);
        return;
    }
    int64_t tf, tl_ns;
    bool tk;
    bool on_topics = ntopics > 0 && tool_log_span(in, true, &tf, &tl_ns, &tk);
    if (on_topics) { // --start/--end count from the first record on the topics
        first = tf;
        last = tl_ns;
        known = tk;
    }
    tool_format_time(first, at, sizeof(at));
    if (known)
        snprintf(span, sizeof(span),
                 "its records%s%s span 0.0 to %.1f s (seconds after its first record%s, %s)",
                 on_topics ? " on " : "", on_topics ? tl : "", (double)(last - first) / 1e9,
                 on_topics ? " on them" : "", at);
    else
        snprintf(span, sizeof(span), "its records%s%s start at %s (its end is not known)",
                 on_topics ? " on " : "", on_topics ? tl : "", at);
    if (ntopics > 0 && !on_topics)
        tool_err(prog, "-t %s matches no record of %s: %s: nothing to replay", tl, name, span);
    else if (start > 0 && known && start * 1e9 > (double)(last - first))
        tool_err(prog, "--start %g is past the end of %s: %s: nothing to replay", start, name, span);
    else if (end > 0)
        tool_err(prog, "--start %g --end %g select no record of %s: %s: nothing to replay", start,
                 end, name, span);
    else
        tool_err(prog, "--start %g selects no record of %s: %s: nothing to replay", start, name,
                 span);
}

// What the progress line shows.
typedef struct progress {
    uint64_t sent, pass_sent; // messages sent in all, in this pass
    uint64_t total;           // messages in a pass (when have_total)
    bool have_total;
    int64_t log0;             // the first record's time (--start and --end count from it)
    int64_t pass_first, pos;  // the times of this pass's first record and of the last sent
    int64_t last;             // the time of the last record in the range (when have_last)
    bool have_last;
    double speed;
    int64_t t_start;          // CLOCK_MONOTONIC at the start
    unsigned pass;            // 1, 2, ... (--loop)
    bool loop;
} progress;

static void
show_progress(tool_status *st, const progress *p)
{
    char buf[400], d[32], e[32];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "%s: ", prog);
    if (p->loop)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "pass %u, ", p->pass);
    double frac = -1;
    if (p->have_total && p->total > 0)
        frac = (double)p->pass_sent / (double)p->total;
    else if (p->have_last && p->pass_sent > 0)
        frac = p->last > p->pass_first
                   ? (double)(p->pos - p->pass_first) / (double)(p->last - p->pass_first)
                   : 1;
    if (p->have_total)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%" PRIu64 "/%" PRIu64 " msgs",
                              p->pass_sent, p->total);
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%" PRIu64 " msgs", p->pass_sent);
    if (frac >= 0) // (99.9 until the very end, never 100.0 too early)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " (%.1f %%)",
                              frac >= 1 ? 100.0 : floor(frac * 1000) / 10);
    tool_format_duration(p->pass_sent ? (double)(p->pos - p->log0) / 1e9 : 0, d, sizeof(d));
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", at %s", d);
    if (p->have_last) {
        tool_format_duration((double)(p->last - p->log0) / 1e9, d, sizeof(d));
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " of %s", d);
    }
    tool_format_duration((double)(tool_mono_ns() - p->t_start) / 1e9, e, sizeof(e));
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, ", elapsed %s", e);
    if (p->have_last) {
        int64_t from = p->pass_sent ? p->pos : p->pass_first;
        tool_format_duration(p->last > from ? (double)(p->last - from) / 1e9 / p->speed : 0, d,
                             sizeof(d));
        snprintf(buf + n, sizeof(buf) - n, ", left %s", d);
    }
    tool_status_show(st, "%s", buf);
}

static int
cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
    const char *url = NULL;
    double speed = 1, start = 0, end = 0;
    bool loop = false, quiet = false;
    char **topics = NULL;
    size_t ntopics = 0;
    enum { O_START = 256, O_END, O_HELP, O_VERSION };
    tool_wait wait = TOOL_WAIT_INIT;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'}, {"speed", required_argument, NULL, 's'},
        {"start", required_argument, NULL, O_START}, {"end", required_argument, NULL, O_END},
        {"topic", required_argument, NULL, 't'}, {"loop", no_argument, NULL, 'l'},
        {"quiet", no_argument, NULL, 'q'}, {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION}, TOOL_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "u:s:t:lq", opts)) != -1) {
        switch (c) {
        case TOOL_OPT_SUBSCRIBERS:
        case TOOL_OPT_WAIT:
            if (!tool_wait_option(prog, c, optarg, &wait))
                return EXIT_USAGE;
            break;
        case 'u':
            url = optarg;
            break;
        case 's':
            if (!tool_parse_double(optarg, 0.001, 1e6, &speed)) {
                tool_err(prog, "invalid speed '%s' (0.001..1e6)", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_START:
        case O_END:
            if (!tool_parse_double(optarg, 0, 1e9, c == O_START ? &start : &end)) {
                tool_err(prog, "invalid %s '%s' (seconds)", c == O_START ? "--start" : "--end", optarg);
                return EXIT_USAGE;
            }
            break;
        case 't':
            if (tool_add_list(&topics, &ntopics, optarg) != 0) {
                tool_err(prog, "out of memory");
                return EXIT_RUNTIME;
            }
            break;
        case 'l':
            loop = true;
            break;
        case 'q':
            quiet = true;
            break;
        case O_HELP:
            usage(stdout);
            return EXIT_OK;
        case O_VERSION:
            tool_version(prog);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        tool_err(prog, "give at least one log (mcl-replay --help)");
        return EXIT_USAGE;
    }
    if (end > 0 && end <= start) {
        tool_err(prog, "--end must come after --start");
        return EXIT_USAGE;
    }
    tool_log_to_stderr(prog, false);
    tool_signals();
    prctl(PR_SET_TIMERSLACK, 1000UL); // wake within ~1 us of the schedule, not the default 50 us
    struct sigaction sa = {.sa_handler = on_cont};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCONT, &sa, NULL);

    // The log (local or remote), filtered by topic and by --start/--end, which count from its
    // first record.
    // A local log is read whole and --start/--end select on the replay timeline (below), which
    // clock steps do not disturb; a remote log's server selects by recorded times.
    bool remote = tool_log_is_remote(argv[optind]);
    tool_log *in;
    tool_log_options lo = {.topics = topics,
                           .ntopics = ntopics,
                           .start_s = remote ? start : 0,
                           .end_s = remote ? end : 0,
                           .empty_ok = true};
    int ec = tool_log_open(prog, &in, (const char *const *)argv + optind, argc - optind, &lo);
    if (ec != EXIT_OK) {
        tool_free_list(topics, ntopics);
        return ec;
    }
    int64_t log0;
    if (tool_log_empty(in) || !tool_log_first_ns(in, &log0)) {
        char name[4200];
        snprintf(name, sizeof(name), "%s%s", argv[optind],
                 argc - optind > 1 ? " (and the other logs)" : "");
        nothing_selected(in, name, start, end, topics, ntopics);
        tool_log_close(in);
        tool_free_list(topics, ntopics);
        return EXIT_RUNTIME;
    }
    int64_t to = end > 0 ? log0 + (int64_t)(end * 1e9) : INT64_MAX;
    int64_t sel_from = !remote && start > 0 ? (int64_t)(start * 1e9) : 0;
    int64_t sel_to = !remote && end > 0 ? (int64_t)(end * 1e9) : INT64_MAX;
    // The progress line's total and end: a count (bounded in time) and the last record's time.
    tool_status st;
    tool_status_init(&st, !quiet);
    progress pr = {.log0 = log0, .speed = speed, .loop = loop};
    if (st.on) {
        int64_t f, l;
        bool known;
        // (a local log with --start/--end: the count would be of all its records)
        pr.have_total = (remote || (start <= 0 && end <= 0)) && tool_log_count(in, 500, &pr.total);
        if (tool_log_span(in, true, &f, &l, &known) && known) {
            pr.have_last = true;
            pr.last = l < to ? l : to;
        }
    }
    mcl_connection *conn = NULL;
    ec = tool_connection(prog, url, &conn);
    if (ec != EXIT_OK) {
        tool_log_close(in);
        return ec;
    }
    mcl_raw_broadcaster *b = NULL;
    mcl_err rv;
    if ((rv = mcl_raw_broadcaster_open(&b, conn, NULL)) != MCL_OK) {
        ec = tool_open_error(prog, "cannot publish on", mcl_connection_url(conn), rv);
        tool_log_close(in);
        mcl_connection_free(conn);
        return ec;
    }
    if (!tool_wait_subscribers(prog, b, &wait)) {
        mcl_raw_broadcaster_free(b);
        tool_log_close(in);
        mcl_connection_free(conn);
        return EXIT_RUNTIME;
    }
    size_t cap = 1 << 16, nerr = 0;
    int64_t *err = malloc(cap * sizeof(*err));
    uint64_t sent = 0, bytes = 0;
    int status = EXIT_OK;
    int64_t t_start = tool_mono_ns();
    pr.t_start = t_start;
    st.next_ns = t_start + TOOL_STATUS_PERIOD_MS * 1000000LL;
    const mcl_raw_msg *m;
    bool again = false;
    unsigned steps = 0; // clock steps back reported
    do {
        if (again && (rv = tool_log_rewind(in)) != MCL_OK) {
            tool_err(prog, "cannot start again: %s", mcl_strerror(rv));
            status = EXIT_RUNTIME;
            break;
        }
        again = true;
        int64_t base = tool_mono_ns(), first = -1;
        uint64_t pass = 0, index = 0;
        // The replay timeline: recorded times, plus what the clock stepped back before them.
        int64_t offset = 0, latest = INT64_MIN;
        pr.pass++;
        pr.pass_sent = 0;
        while (!tool_stop) {
            rv = tool_log_next(in, &m, 200);
            if (rv == MCL_ETIMEDOUT)
                continue; // a remote log's server is slow: wait for it (or for Ctrl-C)
            if (rv == MCL_ENOENT)
                break;
            if (rv != MCL_OK) {
                tool_err(prog, "%s: %s", argv[optind], tool_log_error(in));
                status = EXIT_RUNTIME;
                break;
            }
            index++;
            int64_t t = m->recv_realtime_ns + offset;
            if (latest != INT64_MIN && t < latest - STEP_BACK_NS) {
                if (pr.pass == 1 && steps++ < 10) {
                    char at[40];
                    tool_format_time(m->recv_realtime_ns, at, sizeof(at));
                    tool_err(prog,
                             "%s: record %" PRIu64 " (%s, %.3f s after the log's first) is "
                             "%.3f s before the one before it: the clock stepped back; replaying "
                             "on in the log's order, no time passing there%s",
                             argv[optind], index, at, (double)(latest - log0) / 1e9,
                             (double)(latest - t) / 1e9,
                             steps == 10 ? " (later steps are not reported)" : "");
                }
                offset += latest - t;
                t = latest;
            }
            if (t > latest)
                latest = t;
            if (remote ? m->recv_realtime_ns > to : t - log0 < sel_from || t - log0 > sel_to)
                continue; // (not the end: records of several connections may be out of order)
            pass++;
            if (first < 0)
                pr.pass_first = first = t;
            int64_t due = base + (int64_t)((double)(t - first) / speed);
            if (resumed) { // back from a pause: continue from here, without a burst
                resumed = 0;
                if (tool_mono_ns() > due) {
                    base += tool_mono_ns() - due;
                    due = tool_mono_ns();
                }
            }
            while (st.on && !tool_stop && st.next_ns < due && tool_mono_ns() < due) {
                tool_sleep_until(st.next_ns); // a long gap in the log: the line goes on
                if (tool_status_due(&st))
                    show_progress(&st, &pr);
            }
            tool_sleep_until(due);
            if (tool_stop)
                break;
            rv = mcl_raw_broadcaster_publish(b, m->topic, m->payload, m->len);
            int64_t now = tool_mono_ns();
            if (rv == MCL_EMSGSIZE) {
                char what[MCL_TOPIC_MAX + 64];
                snprintf(what, sizeof(what), "a record of topic '%s'", m->topic);
                tool_too_large(prog, conn, what, m->len, true);
                status = EXIT_RUNTIME;
                break;
            }
            if (rv != MCL_OK) {
                tool_err(prog, "publish failed: %s", mcl_strerror(rv));
                status = EXIT_RUNTIME;
                break;
            }
            if (nerr == cap && err != NULL) {
                int64_t *ne = realloc(err, 2 * cap * sizeof(*err));
                if (ne != NULL) {
                    err = ne;
                    cap *= 2;
                }
            }
            if (err != NULL && nerr < cap)
                err[nerr++] = now - due;
            sent++;
            bytes += m->len;
            pr.sent = sent;
            pr.pass_sent++;
            pr.pos = t;
            if (tool_status_due(&st))
                show_progress(&st, &pr);
        }
        if (pass == 0 && status == EXIT_OK && !tool_stop && !remote) {
            char name[4200]; // --start/--end selected nothing on the timeline
            snprintf(name, sizeof(name), "%s%s", argv[optind],
                     argc - optind > 1 ? " (and the other logs)" : "");
            nothing_selected(in, name, start, end, topics, ntopics);
            status = EXIT_RUNTIME;
        }
        if (pass == 0 || status != EXIT_OK)
            break; // nothing in the range: looping would spin
    } while (loop && !tool_stop && status == EXIT_OK);
    if (st.ever) // where it ended (100 % when it ran through), then the summary below it
        show_progress(&st, &pr);
    tool_status_end(&st);
    // Close first: on a batching connection it sends what still waits, and reports a batch
    // that failed to leave.
    mcl_broadcaster_stats bs;
    if (!tool_close_broadcaster(prog, b, status != EXIT_OK, &bs))
        status = EXIT_RUNTIME;
    double secs = (double)(tool_mono_ns() - t_start) / 1e9;
    if (!quiet) {
        double p50 = 0, p99 = 0;
        if (nerr > 0 && err != NULL) {
            qsort(err, nerr, sizeof(*err), cmp64);
            p50 = (double)err[nerr / 2] / 1000;
            p99 = (double)err[nerr * 99 / 100] / 1000;
        }
        fprintf(stderr,
                "%s: %" PRIu64 " messages (%" PRIu64 " bytes) in %.3f s; send time error p50 %.1f "
                "us, p99 %.1f us; %" PRIu64 " damaged records skipped\n",
                prog, sent, bytes, secs, p50, p99, tool_log_corrupt(in, NULL));
    }
    free(err);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(conn);
    tool_log_close(in);
    tool_free_list(topics, ntopics);
    return status;
}
