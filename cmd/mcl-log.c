// SPDX-License-Identifier: BSD-3-Clause
// mcl-log: record what is published on one or more connections into a log file (or parts).
#define _GNU_SOURCE
#include "common.h"

#include <getopt.h>
#include <poll.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "mcl-log";
static volatile sig_atomic_t want_summary;

static void
on_usr1(int sig)
{
    (void)sig;
    want_summary = 1;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-log [OPTION]... -o PATH [--serve URL [--root DIR]]\n"
            "       mcl-log --serve URL --root DIR\n"
            "Record the messages on one or more connections into a log (docs/log-format.md).\n"
            "Reception runs in a separate process (a queued listener), so disk stalls drop nothing.\n"
            "With --serve, also serve the recording as a remote log (mcl-dump -f URL/NAME, mcl-replay\n"
            "URL/NAME), and with --root every log under DIR; without -o, only serve until SIGINT.\n"
            "\n"
            "  -o, --output PATH     the log file; with a split rule, PATH_000.mcllog, PATH_001...;\n"
            "                        an existing directory: a new log named after the time in it\n"
            "  -u, --url URL         a connection to record (repeatable; default: $MCL_URL, else\n"
            "                        %s)\n"
            "  -t, --topic T[,T]     only these topics ('imu/*' matches a prefix)\n"
            "      --split-size MB   start a new part after MB megabytes (10^6 bytes)\n"
            "      --split-time SEC  ... after SEC seconds\n"
            "      --split-count N   ... after N messages\n"
            "      --duration SEC    stop after SEC seconds (default: at SIGINT or SIGTERM)\n"
            "      --flush-ms MS     write to the kernel at least every MS ms (default 100): a kill -9\n"
            "                        loses at most that much\n"
            "      --compress[=CODEC[:LEVEL]]\n"
            "                        write records in compressed blocks (a version 2 log, which\n"
            "                        mcl 0.3 and older cannot read): CODEC zstd (the default;\n"
            "                        LEVEL 1..19, default 3), lz4 (LEVEL: acceleration, default\n"
            "                        1) or lz4hc (lz4 blocks, smaller, slower to write, read as\n"
            "                        fast; LEVEL 1..12, default 9); a block is written when it\n"
            "                        holds --block-size of records\n"
            "                        and at every flush, so a kill -9 still loses at most\n"
            "                        --flush-ms (a longer one compresses slow traffic better)\n"
            "      --block-size B    with --compress: B bytes of records per block before\n"
            "                        compression (default 1M, 4K to 16M)\n"
            "      --ring SIZE       receive ring size (default 1G: absorbs bursts faster than the\n"
            "                        disk; memory is used only as far as a burst fills it)\n"
            "      --serve URL       serve logs on URL (zmq+tcp://HOST:PORT; port 0: any): the\n"
            "                        recording as NAME, the basename of PATH, followed live; a\n"
            "                        slow reader never slows the recording down\n"
            "      --root DIR        with --serve: also serve every log under DIR by its path\n"
            "                        relative to DIR (mcl-dump --list URL lists them)\n"
            "  -f, --force           overwrite existing files\n"
            "  -q, --quiet           no status line, no summary (nor the locations served)\n"
            "  -v, --verbose         library debug messages\n"
            "  -h, --help            this text\n"
            "      --version         version\n"
            "\n"
            "When stderr is a terminal, a status line shows, once a second, the current file (or\n"
            "part), the time recording, messages and megabytes written, the rates over the last\n"
            "second, and what the listeners counted: lost (sequence gaps), kernel drops, ring\n"
            "drops (ring full or message too large for it) and malformed datagrams; never when\n"
            "stderr is a pipe or a file.\n"
            "A summary (messages, bytes, parts, losses seen as sequence gaps, ring and kernel drops)\n"
            "is printed to stderr at exit and on SIGUSR1; with --serve, the locations served at\n"
            "start (unless -q). A receive buffer the kernel capped below the rcvbuf asked for\n"
            "(net.core.rmem_max) is reported once.\n"
            "\n" TOOL_HELP_EXIT_WITH("success", "     (also: an output that cannot be created or written)\n"),
            MCL_DEFAULT_URL);
}

typedef struct rec_ctx {
    mcl_log_writer *w;
    volatile sig_atomic_t failed;
} rec_ctx;

static void
on_msg(const mcl_raw_msg *m, void *user)
{
    rec_ctx *c = user;
    if (mcl_log_writer_write(c->w, m) != MCL_OK)
        c->failed = 1; // reported by the main loop (the library logged the reason)
}

static void
summary(mcl_queued_listener **ql, const char **urls, int nurls, mcl_log_writer *w, double secs)
{
    uint64_t recs = 0, bytes = 0;
    unsigned parts = 0;
    mcl_log_writer_counts(w, &recs, &bytes, &parts);
    // (after a failed write, the counts are of what reached the files)
    fprintf(stderr, "%s: %.1f s: %" PRIu64 " messages, %" PRIu64 " bytes, %u part%s\n", prog, secs,
            recs, bytes, parts, parts == 1 ? "" : "s");
    for (int i = 0; i < nurls; i++) {
        mcl_queued_stats st;
        if (ql[i] == NULL || mcl_queued_listener_stats(ql[i], &st) != MCL_OK)
            continue;
        fprintf(stderr,
                "  %s: received %" PRIu64 ", lost %" PRIu64 ", ring drops %" PRIu64
                ", kernel drops %" PRIu64 ", oversize %" PRIu64 ", ring high water %" PRIu64
                " of %zu, receiver restarts %" PRIu64 "\n",
                urls[i] ? urls[i] : mcl_queued_listener_url(ql[i]), st.delivered, st.receiver.lost,
                st.ring_drops, st.receiver.kernel_drops, st.ring_oversize, st.ring_high_water,
                st.ring_size, st.restarts);
    }
}

// The status line's last sample, for the rates over the last second.
typedef struct rec_sample {
    uint64_t recs, bytes;
    int64_t t_ns;
} rec_sample;

// One status line: the current file (part), time, counts, rates and the listeners' losses.
static void
status_line(tool_status *st, mcl_queued_listener **ql, int nurls, mcl_log_writer *w,
            const char *out, bool split, double secs, rec_sample *prev)
{
    uint64_t recs = 0, bytes = 0, lost = 0, kdrops = 0, rdrops = 0, malformed = 0;
    unsigned parts = 0;
    mcl_log_writer_counts(w, &recs, &bytes, &parts);
    for (int i = 0; i < nurls; i++) {
        mcl_queued_stats qs;
        if (ql[i] == NULL || mcl_queued_listener_stats(ql[i], &qs) != MCL_OK)
            continue;
        lost += qs.receiver.lost;
        kdrops += qs.receiver.kernel_drops;
        rdrops += qs.ring_drops + qs.ring_oversize;
        malformed += qs.receiver.malformed;
    }
    int64_t now = tool_mono_ns();
    double dt = (double)(now - prev->t_ns) / 1e9;
    double mps = dt > 0 && prev->t_ns > 0 ? (double)(recs - prev->recs) / dt : 0;
    double bps = dt > 0 && prev->t_ns > 0 ? (double)(bytes - prev->bytes) / dt : 0;
    *prev = (rec_sample){recs, bytes, now};
    const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    char name[300], el[32];
    if (split)
        snprintf(name, sizeof(name), "%s_%03u.mcllog", base, parts > 0 ? parts - 1 : 0);
    else
        snprintf(name, sizeof(name), "%s", base);
    tool_format_duration(secs, el, sizeof(el));
    tool_status_show(st,
                     "%s: %s: %s, %" PRIu64 " msgs, %.1f MB, %.0f msg/s, %.2f MB/s, lost %" PRIu64
                     ", kernel drops %" PRIu64 ", ring drops %" PRIu64 ", malformed %" PRIu64,
                     prog, name, el, recs, (double)bytes / 1e6, mps, bps / 1e6, lost, kdrops,
                     rdrops, malformed);
}

// Starts serving logs on url: the recording `out` (NULL: none) under its basename, and those
// under root (NULL: none). Returns NULL, after saying why, when it cannot (*ec: the exit code).
static mcl_log_server *
start_server(const char *url, const char *root, const char *out, bool quiet, int *ec)
{
    mcl_log_server *srv;
    *ec = EXIT_RUNTIME;
    mcl_err rv = mcl_log_server_new(&srv, root);
    if (rv != MCL_OK) {
        tool_err(prog, "--root %s: %s", root,
                 rv == MCL_ENOENT ? "not a directory" : mcl_strerror(rv));
        *ec = rv == MCL_ENOENT ? EXIT_USAGE : EXIT_RUNTIME;
        return NULL;
    }
    const char *name = NULL;
    if (out != NULL) {
        name = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
        if ((rv = mcl_log_server_add(srv, name, out)) != MCL_OK) {
            tool_err(prog, "cannot serve %s: %s", out, mcl_strerror(rv));
            mcl_log_server_free(srv);
            return NULL;
        }
    }
    if ((rv = mcl_log_server_listen(srv, url, NULL)) != MCL_OK) {
        tool_err(prog, "cannot serve on %s: %s", url, mcl_strerror(rv));
        *ec = rv == MCL_EURL ? EXIT_USAGE : EXIT_RUNTIME;
        mcl_log_server_free(srv);
        return NULL;
    }
    const char *at = mcl_log_server_url(srv);
    if (!quiet && name != NULL)
        tool_err(prog, "serving %s/%s", at, name);
    if (!quiet && root != NULL)
        tool_err(prog, "serving the logs under %s on %s", root, at);
    return srv;
}

static int
serve_only(const char *url, const char *root, double duration, bool quiet, bool verbose)
{
    tool_log_to_stderr(prog, verbose);
    tool_signals();
    int ec;
    mcl_log_server *srv = start_server(url, root, NULL, quiet, &ec);
    if (srv == NULL)
        return ec;
    int64_t end = duration > 0 ? tool_mono_ns() + (int64_t)(duration * 1e9) : INT64_MAX;
    while (!tool_stop && tool_mono_ns() < end) {
        int64_t wake = tool_mono_ns() + 200000000; // wake for signals
        tool_sleep_until(wake < end ? wake : end);
    }
    mcl_log_server_free(srv);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    const char *out = NULL;
    const char *urls[16];
    int nurls = 0;
    char **topics = NULL;
    size_t ntopics = 0;
    bool quiet = false, verbose = false;
    double duration = 0;
    mcl_log_writer_options wo = {0};
    // A deep ring: bursts faster than the disk (4 GB/s on loopback) wait in memory instead of
    // being dropped. MAP_NORESERVE: only what a burst uses is ever touched.
    mcl_queued_options qo = {.ring_size = (size_t)1 << 30};
    enum { O_SIZE = 256, O_TIME, O_COUNT, O_DUR, O_FLUSH, O_RING, O_HELP, O_VERSION, O_SERVE, O_ROOT,
           O_COMPRESS, O_BLOCK };
    const char *serve = NULL, *root = NULL;
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},   {"url", required_argument, NULL, 'u'},
        {"topic", required_argument, NULL, 't'},    {"split-size", required_argument, NULL, O_SIZE},
        {"split-time", required_argument, NULL, O_TIME}, {"split-count", required_argument, NULL, O_COUNT},
        {"duration", required_argument, NULL, O_DUR}, {"flush-ms", required_argument, NULL, O_FLUSH},
        {"ring", required_argument, NULL, O_RING},   {"force", no_argument, NULL, 'f'},
        {"compress", optional_argument, NULL, O_COMPRESS}, {"block-size", required_argument, NULL, O_BLOCK},
        {"serve", required_argument, NULL, O_SERVE}, {"root", required_argument, NULL, O_ROOT},
        {"quiet", no_argument, NULL, 'q'},           {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, O_HELP},         {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    int c;
    double d;
    uint64_t u;
    while ((c = tool_getopt(prog, argc, argv, "o:u:t:fqv", opts)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'u':
            if (nurls == 16) {
                tool_err(prog, "at most 16 connections");
                return EXIT_USAGE;
            }
            urls[nurls++] = optarg;
            break;
        case 't':
            if (tool_add_list(&topics, &ntopics, optarg) != 0) {
                tool_err(prog, "out of memory");
                return EXIT_RUNTIME;
            }
            break;
        case O_SIZE:
            if (!tool_parse_double(optarg, 0.001, 1e9, &d)) {
                tool_err(prog, "invalid --split-size '%s' (megabytes)", optarg);
                return EXIT_USAGE;
            }
            wo.split_bytes = (uint64_t)(d * 1e6);
            break;
        case O_TIME:
            if (!tool_parse_double(optarg, 0.001, 1e9, &wo.split_seconds)) {
                tool_err(prog, "invalid --split-time '%s' (seconds)", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_COUNT:
            if (!tool_parse_u64(optarg, UINT64_MAX, &wo.split_count) || wo.split_count == 0) {
                tool_err(prog, "invalid --split-count '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_DUR:
            if (!tool_parse_double(optarg, 0.001, 1e9, &duration)) {
                tool_err(prog, "invalid --duration '%s' (seconds)", optarg);
                return EXIT_USAGE;
            }
            break;
        case O_FLUSH:
            if (!tool_parse_u64(optarg, 3600000, &u) || u == 0) {
                tool_err(prog, "invalid --flush-ms '%s'", optarg);
                return EXIT_USAGE;
            }
            wo.flush_ms = (int)u;
            break;
        case O_RING:
            if (!tool_parse_size(optarg, (uint64_t)1 << 40, &u) || u == 0) {
                tool_err(prog, "invalid --ring '%s'", optarg);
                return EXIT_USAGE;
            }
            qo.ring_size = (size_t)u;
            break;
        case O_COMPRESS: {
            const char *a = optarg ? optarg : "zstd", *colon = strchr(a, ':');
            size_t nl = colon ? (size_t)(colon - a) : strlen(a);
            wo.compress = nl == 4 && strncmp(a, "zstd", 4) == 0    ? MCL_LOG_COMPRESS_ZSTD
                          : nl == 3 && strncmp(a, "lz4", 3) == 0   ? MCL_LOG_COMPRESS_LZ4
                          : nl == 5 && strncmp(a, "lz4hc", 5) == 0 ? MCL_LOG_COMPRESS_LZ4HC
                                                                   : MCL_LOG_COMPRESS_NONE;
            uint64_t lv = 0;
            uint64_t top = wo.compress == MCL_LOG_COMPRESS_ZSTD    ? 19
                           : wo.compress == MCL_LOG_COMPRESS_LZ4HC ? 12
                                                                   : 65537;
            if (wo.compress == MCL_LOG_COMPRESS_NONE ||
                (colon != NULL && (!tool_parse_u64(colon + 1, top, &lv) || lv == 0))) {
                tool_err(prog, "invalid --compress '%s' (zstd, lz4 or lz4hc, then :LEVEL)", a);
                return EXIT_USAGE;
            }
            wo.compress_level = (int)lv;
            break;
        }
        case O_BLOCK:
            if (!tool_parse_size(optarg, (uint64_t)16 << 20, &u) || u < 4096) {
                tool_err(prog, "invalid --block-size '%s' (4K to 16M)", optarg);
                return EXIT_USAGE;
            }
            wo.block_bytes = (size_t)u;
            break;
        case 'f':
            wo.overwrite = true;
            break;
        case O_SERVE:
            serve = optarg;
            break;
        case O_ROOT:
            root = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
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
    if (wo.block_bytes != 0 && wo.compress == MCL_LOG_COMPRESS_NONE) {
        tool_err(prog, "--block-size is for compressed logs: give --compress too");
        return EXIT_USAGE;
    }
    if ((out == NULL && (serve == NULL || root == NULL)) || optind < argc ||
        (root != NULL && serve == NULL)) {
        if (optind < argc)
            tool_err(prog, "unexpected argument '%s'", argv[optind]);
        else if (root != NULL && serve == NULL)
            tool_err(prog, "--root serves logs: give the URL with --serve URL");
        else
            tool_err(prog, "give the output with -o PATH (or serve logs with --serve URL --root DIR)");
        return EXIT_USAGE;
    }
    if (out == NULL)
        return serve_only(serve, root, duration, quiet, verbose);
    if (nurls == 0)
        urls[nurls++] = NULL; // the default connection
    tool_log_to_stderr(prog, verbose);
    tool_signals();
    struct sigaction sa = {.sa_handler = on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGXFSZ, SIG_IGN); // a file size limit (ulimit -f): a write error, reported, not a kill

    mcl_connection *conns[16] = {0};
    for (int i = 0; i < nurls; i++) {
        int ec = tool_connection(prog, urls[i], &conns[i]);
        if (ec != EXIT_OK) {
            for (int k = 0; k < i; k++)
                mcl_connection_free(conns[k]);
            return ec;
        }
    }
    char meta[4096];
    size_t ml = (size_t)snprintf(meta, sizeof(meta), "tool=mcl-log %s\n", mcl_version());
    for (int i = 0; i < nurls && ml < sizeof(meta); i++)
        ml += (size_t)snprintf(meta + ml, sizeof(meta) - ml, "url=%s\n", mcl_connection_url(conns[i]));
    for (size_t i = 0; i < ntopics && ml < sizeof(meta); i++)
        ml += (size_t)snprintf(meta + ml, sizeof(meta) - ml, "topic=%s\n", topics[i]);
    wo.metadata = meta;
    // -o DIR: a new log named after the start time inside it.
    char dirpath[4096];
    struct stat ost;
    if (stat(out, &ost) == 0 && S_ISDIR(ost.st_mode)) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(dirpath, sizeof(dirpath), "%s/mcl-%s%s", out, stamp,
                 wo.split_bytes || wo.split_count || wo.split_seconds > 0 ? "" : ".mcllog");
        out = dirpath;
    }
    // Serving: the server first (a bad --serve or --root leaves no empty recording behind), on
    // its own reactor thread; a slow reader costs the recorder nothing (credit). Then the log,
    // its header flushed at once (a reader that opens it now sees a log).
    mcl_log_server *srv = NULL;
    int sec = EXIT_RUNTIME;
    if (serve != NULL && (srv = start_server(serve, root, out, quiet, &sec)) == NULL) {
        for (int i = 0; i < nurls; i++)
            mcl_connection_free(conns[i]);
        tool_free_list(topics, ntopics);
        return sec;
    }
    rec_ctx ctx = {0};
    mcl_err rv = mcl_log_writer_open(&ctx.w, out, &wo);
    if (rv == MCL_OK && srv != NULL)
        rv = mcl_log_writer_flush(ctx.w, false);
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s%s", out, mcl_strerror(rv),
                 rv == MCL_EEXIST ? " (use --force to overwrite)" : "");
        mcl_log_server_free(srv);
        mcl_log_writer_close(ctx.w);
        for (int i = 0; i < nurls; i++)
            mcl_connection_free(conns[i]);
        tool_free_list(topics, ntopics);
        return rv == MCL_EEXIST ? EXIT_USAGE : EXIT_RUNTIME;
    }
    mcl_queued_listener *ql[16] = {0};
    int status = EXIT_OK;
    for (int i = 0; i < nurls && status == EXIT_OK; i++) {
        mcl_queued_options o = qo;
        o.defer_open = true;
        o.no_thread = true; // drained here, so nothing received is dropped at exit
        rv = mcl_queued_listener_new(&ql[i], conns[i], NULL, (const char *const *)topics, ntopics, &o);
        if (rv == MCL_OK)
            rv = mcl_queued_listener_subscribe(ql[i], on_msg, &ctx);
        if (rv == MCL_OK)
            rv = mcl_queued_listener_open(ql[i]);
        if (rv != MCL_OK)
            status = tool_open_error(prog, "cannot listen on", mcl_connection_url(conns[i]), rv);
    }
    bool rcvbuf_said[16] = {0}; // (the receiver process tells its buffer once it has opened)
    if (status == EXIT_OK && verbose)
        for (int i = 0; i < nurls; i++)
            tool_err(prog, "listening on %s", mcl_queued_listener_url(ql[i]));
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double secs = 0;
    struct pollfd pfd[16];
    for (int i = 0; i < nurls && status == EXIT_OK; i++) {
        pfd[i].events = POLLIN;
        mcl_queued_listener_fd(ql[i], &pfd[i].fd);
    }
    bool split = wo.split_bytes || wo.split_count || wo.split_seconds > 0;
    tool_status st;
    rec_sample sample = {0};
    tool_status_init(&st, !quiet && status == EXIT_OK);
    status_line(&st, ql, nurls, ctx.w, out, split, 0, &sample); // recording: say so at once
    while (status == EXIT_OK && !tool_stop) {
        if (poll(pfd, (nfds_t)nurls, 50) > 0)
            for (int i = 0; i < nurls; i++)
                if (pfd[i].revents)
                    mcl_queued_listener_dispatch(ql[i], 0, NULL);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        secs = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (ctx.failed) {
            tool_err(prog, "%s: writing failed: stopping", out); // (with the library's reason)
            status = EXIT_RUNTIME;
        }
        for (int i = 0; i < nurls && secs < 10; i++) {
            mcl_queued_stats qs;
            if (!rcvbuf_said[i] && mcl_queued_listener_stats(ql[i], &qs) == MCL_OK &&
                qs.receiver.rcvbuf > 0) {
                rcvbuf_said[i] = true;
                tool_check_rcvbuf(prog, conns[i], qs.receiver.rcvbuf);
            }
        }
        if (want_summary) {
            want_summary = 0;
            tool_status_clear(); // (drawn again when due)
            summary(ql, urls, nurls, ctx.w, secs);
        }
        if (duration > 0 && secs >= duration)
            break;
        if (tool_status_due(&st))
            status_line(&st, ql, nurls, ctx.w, out, split, secs, &sample);
    }
    // Write what the receivers have queued, then close them.
    for (int i = 0; i < nurls; i++) {
        size_t n = 1;
        while (ql[i] != NULL && status == EXIT_OK && n > 0)
            if (mcl_queued_listener_dispatch(ql[i], 0, &n) != MCL_OK)
                break;
        if (ql[i] != NULL)
            mcl_queued_listener_close(ql[i]);
    }
    if (st.ever) // the final counts, then the summary on a line of its own
        status_line(&st, ql, nurls, ctx.w, out, split, secs, &sample);
    tool_status_end(&st);
    if (!quiet)
        summary(ql, urls, nurls, ctx.w, secs);
    for (int i = 0; i < nurls; i++) {
        mcl_queued_listener_free(ql[i]);
        mcl_connection_free(conns[i]);
    }
    mcl_log_server_free(srv); // (its readers end before the recording is closed)
    if (mcl_log_writer_close(ctx.w) != MCL_OK && status == EXIT_OK) {
        tool_err(prog, "%s: closing failed", out);
        status = EXIT_RUNTIME;
    }
    tool_free_list(topics, ntopics);
    return status;
}
