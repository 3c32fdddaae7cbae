// SPDX-License-Identifier: BSD-3-Clause
// mcl-pub: publish messages (a string, a file, stdin lines, or N generated payloads).
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *prog = "mcl-pub";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-pub [OPTION]... [MESSAGE]\n"
            "Publish raw messages on an mcl connection.\n"
            "\n"
            "What to publish (one of):\n"
            "  MESSAGE                 this string (repeated COUNT times)\n"
            "  -f, --file FILE         the contents of FILE as one message ('-' = all of stdin)\n"
            "  -l, --lines             each line of stdin as one message (newline removed)\n"
            "  -s, --size SIZE         generated payloads of SIZE bytes (k/M/G suffixes)\n"
            "  -j, --json OBJECT       this JSON object as a message (msgpack map)\n"
            "      --json-lines        each line of stdin as a JSON object message\n"
            "\n"
            "Options:\n"
            "  -u, --url URL           connection (default: $MCL_URL, else %s)\n"
            "  -t, --topic TOPIC       topic (default: none)\n"
            "  -n, --count N           messages to publish (default 1; 10 with --size)\n"
            "  -r, --rate HZ           messages per second, 0 = as fast as possible (default 0\n"
            "                          for a MESSAGE or FILE, 10 with --size)\n"
            "      --rate-mb N         pace the datagrams at N MB/s (10^6 bytes/s; fractions\n"
            "                          allowed, 0.01..1000000; 0 = unpaced): the connection's\n"
            "                          rate= option (mcl/connection.h), which spreads a large\n"
            "                          message's fragments so a slow listener keeps up\n"
            "      --compress CODEC    compress messages of 512 bytes and more: zstd[:1..19],\n"
            "                          lz4[:ACCELERATION], lz4hc[:1..12] or none (the\n"
            "                          connection's compress= option; every listener\n"
            "                          decompresses)\n"
            "  -q, --quiet             no progress line and no summary on stderr\n"
            "      --subscribers N     zmq: wait for N listeners first (default 1; 0: don't)\n"
            "      --wait SEC          how long to wait for them (default 10)\n"
            "  -v, --verbose           library debug messages on stderr\n"
            "  -h, --help              this text\n"
            "      --version           version\n"
            "\n"
            "Generated payloads start with the message index as 8 bytes (big-endian), then bytes\n"
            "(index + i) mod 256. JSON messages get a \"timestamp\" (now) unless they have one;\n"
            "binary and other values JSON lacks are written as in docs/json.md ({\"$bin\": ...}).\n"
            "A JSON line that does not parse is reported with its line number and skipped.\n"
            "When stderr is a terminal and COUNT messages take longer than a second, a progress\n"
            "line shows, once a second, the messages sent of COUNT, the percentage, the rate and\n"
            "the time left (not for --lines and --json-lines; never when stderr is a pipe or a\n"
            "file). A message above the connection's maxmsg (64M by default) is refused before\n"
            "anything is sent (-f, -s) or when its line comes; the error names the limit and the\n"
            "URL that raises it.\n"
            "\n" TOOL_HELP_EXIT_WITH("success", "     (also: a JSON line that did not parse, skipped)\n"),
            MCL_DEFAULT_URL);
}

static void
fill_payload(uint8_t *p, size_t len, uint64_t index)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(index + i);
    for (size_t i = 0; i < 8 && i < len; i++)
        p[i] = (uint8_t)(index >> (56 - 8 * i));
}

// Parses a JSON object into msgpack bytes; adds "timestamp" (now) when it has none.
static int
json_payload(const char *text, size_t len, const char *where, uint8_t **buf, size_t *blen)
{
    mcl_msg *m;
    char err[256];
    mcl_err rv = mcl_msg_from_json(&m, text, len, err, sizeof(err));
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", where, err[0] ? err : mcl_strerror(rv));
        return -1;
    }
    if (mcl_msg_get(m, "timestamp") == NULL) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rv = mcl_msg_set_double(m, "timestamp", (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    }
    void *enc = NULL;
    if (rv == MCL_OK)
        rv = mcl_msg_encode(m, &enc, blen);
    mcl_msg_free(m);
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", where, mcl_strerror(rv));
        return -1;
    }
    *buf = enc;
    return 0;
}

static int
read_all(FILE *f, uint8_t **buf, size_t *len, size_t max)
{
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    if (b == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1) {
                free(b);
                errno = EFBIG;
                return -1;
            }
            cap *= 2;
            uint8_t *nb = realloc(b, cap);
            if (nb == NULL) {
                free(b);
                return -1;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f) || n > max) {
        free(b);
        errno = ferror(f) ? EIO : EFBIG;
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

// "mcl-pub: 1200/2000 msgs (60.0 %), 1000 msg/s, elapsed 1.2 s, left 0.8 s"
static void
show_progress(tool_status *st, uint64_t done, uint64_t count, int64_t start, double rate)
{
    double secs = (double)(tool_mono_ns() - start) / 1e9;
    double mps = secs > 0 ? (double)done / secs : 0;
    // Paced: what is left at the rate asked for; else at the rate so far.
    double r = rate > 0 ? rate : mps;
    char el[32], left[32];
    tool_format_duration(secs, el, sizeof(el));
    tool_format_duration(r > 0 ? (double)(count - done) / r : 0, left, sizeof(left));
    tool_status_show(st, "%s: %llu/%llu msgs (%.1f %%), %.0f msg/s, elapsed %s, left %s", prog,
                     (unsigned long long)done, (unsigned long long)count,
                     done >= count ? 100.0 : floor((double)done / (double)count * 1000) / 10, mps,
                     el, left);
}

int
main(int argc, char **argv)
{
    const char *url = NULL, *topic = NULL, *file = NULL, *message = NULL, *json = NULL;
    bool json_lines = false;
    bool lines = false, quiet = false, verbose = false, have_size = false, have_n = false,
         have_rate = false;
    uint64_t count = 1, size = 0;
    double rate = 0, rate_mb = -1;
    const char *compress = NULL;
    tool_wait wait = TOOL_WAIT_INIT;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},   {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'}, {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},  {"file", required_argument, NULL, 'f'},
        {"lines", no_argument, NULL, 'l'},       {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},     {"help", no_argument, NULL, 'H'},
        {"version", no_argument, NULL, 'V'},     {"json", required_argument, NULL, 'j'},
        {"json-lines", no_argument, NULL, 'J'},  {"rate-mb", required_argument, NULL, 'M'},
        {"compress", required_argument, NULL, 'Z'}, TOOL_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "u:t:n:s:r:f:lqvj:", opts)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 't':
            topic = optarg;
            if (strlen(topic) > MCL_TOPIC_MAX) {
                tool_err(prog, "topic longer than %d bytes", MCL_TOPIC_MAX);
                return EXIT_USAGE;
            }
            break;
        case 'n':
            if (!tool_parse_u64(optarg, UINT64_MAX, &count)) {
                tool_err(prog, "invalid count '%s' (a whole number)", optarg);
                return EXIT_USAGE;
            }
            have_n = true;
            break;
        case 's':
            if (!tool_parse_size(optarg, (uint64_t)UINT32_MAX, &size)) {
                tool_err(prog, "invalid size '%s' (bytes, with k/M/G suffixes)", optarg);
                return EXIT_USAGE;
            }
            have_size = true;
            break;
        case 'r':
            if (!tool_parse_double(optarg, 0, 1e9, &rate) || (rate > 0 && rate < 0.001)) {
                tool_err(prog, "invalid rate '%s' (0.001..1e9 Hz, 0 = as fast as possible)",
                         optarg);
                return EXIT_USAGE;
            }
            have_rate = true;
            break;
        case 'M':
            if (!tool_parse_double(optarg, 0, 1e6, &rate_mb) || (rate_mb > 0 && rate_mb < 0.01)) {
                tool_err(prog, "invalid --rate-mb '%s' (0.01..1000000 MB/s, 0 = unpaced)",
                         optarg);
                return EXIT_USAGE;
            }
            break;
        case 'Z':
            compress = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'l':
            lines = true;
            break;
        case 'j':
            json = optarg;
            break;
        case 'J':
            json_lines = true;
            break;
        case TOOL_OPT_SUBSCRIBERS:
        case TOOL_OPT_WAIT:
            if (!tool_wait_option(prog, c, optarg, &wait))
                return EXIT_USAGE;
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'H':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            tool_version(prog);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        message = argv[optind++];
    if (optind < argc) {
        tool_err(prog, "unexpected argument '%s' (quote a message that has spaces)", argv[optind]);
        return EXIT_USAGE;
    }
    int sources = (message != NULL) + (file != NULL) + lines + have_size + (json != NULL) +
                  json_lines;
    if (sources != 1) {
        tool_err(prog, "give exactly one of MESSAGE, --file, --lines, --size, --json or "
                       "--json-lines (mcl-pub --help)");
        return EXIT_USAGE;
    }
    if (have_size && !have_n)
        count = 10;
    if (have_size && !have_rate)
        rate = 10;
    tool_log_to_stderr(prog, verbose);
    tool_signals();

    mcl_connection *conn = NULL;
    int ec = tool_connection(prog, url, &conn);
    if (ec != EXIT_OK)
        return ec;
    if (rate_mb >= 0) { // the URL's rate=, replaced
        char val[32], with[1200];
        snprintf(val, sizeof(val), "%.0f", rate_mb * 1e6);
        tool_url_with(mcl_connection_url(conn), "rate", val, with, sizeof(with));
        mcl_connection_free(conn);
        conn = NULL;
        if ((ec = tool_connection(prog, with, &conn)) != EXIT_OK)
            return ec;
    }
    if (compress != NULL) { // the URL's compress=, replaced (the parser judges the value)
        char with[1200];
        tool_url_with(mcl_connection_url(conn), "compress", compress, with, sizeof(with));
        mcl_connection_free(conn);
        conn = NULL;
        if ((ec = tool_connection(prog, with, &conn)) != EXIT_OK)
            return ec;
    }
    if (have_size && size > mcl_connection_maxmsg(conn)) {
        char what[64];
        snprintf(what, sizeof(what), "--size %llu", (unsigned long long)size);
        tool_too_large(prog, conn, what, size, false);
        mcl_connection_free(conn);
        return EXIT_USAGE;
    }
    uint8_t *payload = NULL;
    size_t plen = 0;
    if (file != NULL) {
        bool is_stdin = strcmp(file, "-") == 0;
        FILE *f = is_stdin ? stdin : fopen(file, "rb");
        struct stat st;
        // A file known to be too large is refused before it is read.
        if (f != NULL && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
            (uint64_t)st.st_size > mcl_connection_maxmsg(conn)) {
            tool_too_large(prog, conn, is_stdin ? "stdin" : file, (uint64_t)st.st_size, true);
            if (!is_stdin)
                fclose(f);
            mcl_connection_free(conn);
            return EXIT_USAGE;
        }
        int e = f == NULL ? errno : read_all(f, &payload, &plen, mcl_connection_maxmsg(conn)) != 0 ? errno : 0;
        if (f != NULL && !is_stdin)
            fclose(f);
        if (e != 0) {
            if (e == EFBIG) // (a pipe: how large it is shows only now)
                tool_too_large(prog, conn, is_stdin ? "stdin" : file, 0, true);
            else
                tool_err(prog, "%s: %s", is_stdin ? "stdin" : file, strerror(e));
            mcl_connection_free(conn);
            // The input is wrong (missing, unreadable, a directory, too large); an I/O error
            // while reading it is a runtime failure.
            return e == EIO || e == ENOMEM ? EXIT_RUNTIME : EXIT_USAGE;
        }
    } else if (message != NULL) {
        plen = strlen(message);
        payload = malloc(plen + 1);
        if (payload != NULL)
            memcpy(payload, message, plen + 1);
    } else if (have_size) {
        plen = (size_t)size;
        payload = malloc(plen + 1);
    } else if (json != NULL) {
        if (json_payload(json, strlen(json), "--json", &payload, &plen) != 0) {
            mcl_connection_free(conn);
            return EXIT_USAGE;
        }
    }
    if (json_lines)
        lines = true;
    if (payload == NULL && !lines) {
        tool_err(prog, "out of memory");
        mcl_connection_free(conn);
        return EXIT_RUNTIME;
    }

    mcl_raw_broadcaster *b = NULL;
    mcl_err rv = mcl_raw_broadcaster_open(&b, conn, topic);
    if (rv != MCL_OK) {
        ec = tool_open_error(prog, "cannot open", mcl_connection_url(conn), rv);
        free(payload);
        mcl_connection_free(conn);
        return ec;
    }
    if (!tool_wait_subscribers(prog, b, &wait)) {
        mcl_raw_broadcaster_free(b);
        free(payload);
        mcl_connection_free(conn);
        return EXIT_RUNTIME;
    }

    int status = EXIT_OK;
    uint64_t lineno = 0, bad_lines = 0;
    int64_t start = tool_mono_ns();
    tool_status st;
    tool_status_init(&st, !quiet && !lines && count > 1);
    uint64_t done = 0; // messages published
    int64_t period = rate > 0 ? (int64_t)(1e9 / rate) : 0;
    char *line = NULL;
    size_t linecap = 0;
    int64_t next = start; // when the next message may leave
    for (uint64_t i = 0; !tool_stop && (lines || i < count); i++) {
        if (period > 0 && !lines && i > 0)
            tool_sleep_until(next);
        if (tool_stop)
            break;
        const void *p = payload;
        size_t n = plen;
        if (lines) {
            ssize_t r = getline(&line, &linecap, stdin);
            if (r < 0)
                break;
            if (r > 0 && line[r - 1] == '\n')
                r--;
            p = line;
            n = (size_t)r;
            lineno++;
            if (json_lines) {
                char where[48];
                snprintf(where, sizeof(where), "stdin line %llu", (unsigned long long)lineno);
                free(payload);
                payload = NULL;
                if (json_payload(line, n, where, &payload, &plen) != 0) {
                    bad_lines++;
                    i--; // a skipped line does not count as a message
                    continue;
                }
                p = payload;
                n = plen;
            }
        } else if (have_size) {
            fill_payload(payload, plen, i);
        }
        if (period > 0 && lines) {
            // A line goes out on schedule, or when it arrives if it is late: a pause in the
            // input never turns into a burst afterwards.
            int64_t arrived = tool_mono_ns();
            if (next < arrived)
                next = arrived;
            tool_sleep_until(next);
            if (tool_stop)
                break;
        }
        rv = mcl_raw_broadcaster_publish(b, NULL, p, n);
        if (rv == MCL_EMSGSIZE && lines) { // (the others were checked before)
            char where[48];
            snprintf(where, sizeof(where), "stdin line %llu", (unsigned long long)lineno);
            tool_too_large(prog, conn, where, n, true);
            status = EXIT_USAGE;
            break;
        }
        if (rv != MCL_OK) {
            tool_err(prog, "publish failed: %s", mcl_strerror(rv));
            status = EXIT_RUNTIME;
            break;
        }
        if (period > 0)
            next = lines ? next + period : start + (int64_t)(i + 1) * period;
        done = i + 1;
        // (At full speed the clock is read every 256 messages only.)
        if (st.on && (period > 0 || (done & 255) == 0) && tool_status_due(&st))
            show_progress(&st, done, count, start, rate);
    }
    if (st.ever)
        show_progress(&st, done, count, start, rate);
    tool_status_end(&st);
    if (bad_lines > 0 && status == EXIT_OK)
        status = EXIT_RUNTIME;
    // Close first: on a batching connection it sends what still waits, and reports a batch
    // that failed to leave. The summary then counts what the kernel took.
    mcl_broadcaster_stats bs;
    if (!tool_close_broadcaster(prog, b, rv != MCL_OK, &bs))
        status = EXIT_RUNTIME;
    uint64_t sent = bs.messages, bytes = bs.bytes;
    double secs = (double)(tool_mono_ns() - start) / 1e9;
    if (!quiet)
        fprintf(stderr, "%s: published %llu messages (%llu bytes) in %.3f s: %.0f msg/s, %.1f MB/s\n",
                prog, (unsigned long long)sent, (unsigned long long)bytes, secs,
                secs > 0 ? (double)sent / secs : 0.0, secs > 0 ? (double)bytes / secs / 1e6 : 0.0);
    if (!quiet && bs.compressed > 0)
        fprintf(stderr, "%s: compressed %llu of them: %llu bytes sent as %llu (%.1f%%)\n", prog,
                (unsigned long long)bs.compressed, (unsigned long long)bs.compressed_in,
                (unsigned long long)bs.compressed_out,
                100.0 * (double)bs.compressed_out / (double)bs.compressed_in);
    free(line);
    free(payload);
    mcl_raw_broadcaster_free(b);
    mcl_connection_free(conn);
    return status;
}
