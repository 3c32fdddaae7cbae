// SPDX-License-Identifier: BSD-3-Clause
// mcl-broker: run a channel broker (include/mcl/broker.h, docs/broker.md) until SIGINT or
// SIGTERM. Clients create channels on it, write to them and read from them, each reader with
// its own buffer, overrun policy and decimation at the broker.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/broker.h>

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char *prog = "mcl-broker";

#define DEFAULT_BROKER_URL "tcp://127.0.0.1:5800"

static void
usage(FILE *f)
{
    fprintf(
        f,
        "Usage: mcl-broker [OPTION]...\n"
        "Run a channel broker (docs/broker.md) until SIGINT or SIGTERM. Clients create\n"
        "channels, write to them and read from them; the broker keeps a buffer per reader\n"
        "with its own overrun policy (ring, drop_new, block, error) and decimation, and\n"
        "tells writers whether anyone reads. Control calls are RPC methods of the service\n"
        "\"mcl.broker\" on packet-stream channel 0x%04X of each connection.\n"
        "\n"
        "  -u, --url URL           listen on URL (default %s; tcp://HOST:0 picks a\n"
        "                          port; unix://PATH; zmq+tcp:// and zmq+ipc:// too,\n"
        "                          with CURVE, at about half the throughput)\n"
        "      --max-channels N    channels at once (default 1024)\n"
        "      --max-clients N     connections at once (default 256)\n"
        "      --max-buffer N      the largest reader buffer, in frames (default 65536)\n"
        "      --window N          frames in flight to a reader (default 256)\n"
        "      --credit N          frames a writer may have unaccepted (default 256)\n"
        "      --max-frame SIZE    the largest frame (k/M suffixes; default 1M)\n"
        "      --max-reader-bytes SIZE  a reader's buffer is full at this many bytes too\n"
        "                          (default 64M): bounds the broker's memory\n"
        "      --heartbeat-ms MS   a client silent this long is dead (default 3000)\n"
        "      --stats-ms MS       the period of the statistics channel %s\n"
        "                          (default 1000)\n"
        "      --bridge-out CHANNEL=URL  republish every frame of CHANNEL on the mcl\n"
        "                          connection URL (udp://..., zmq+tcp://...), topic CHANNEL\n"
        "      --bridge-in CHANNEL=URL   every message received on URL is a frame of\n"
        "                          CHANNEL (both: repeatable; the channel is made if\n"
        "                          it does not exist)\n"
        "  -q, --quiet             no start line, no summary at exit\n"
        "  -v, --verbose           library debug messages on stderr\n"
        "  -h, --help              this text\n"
        "      --version           version\n"
        "\n"
        "Prints \"mcl-broker: listening on URL\" (the port chosen) to stderr at start and a\n"
        "summary (channels and clients at exit) when it stops (unless -q).\n"
        "Try: mcl-broker -u tcp://127.0.0.1:5800 &\n"
        "     broker_lab writer tcp://127.0.0.1:5800 AnalogInput1 100 5 &\n"
        "     broker_lab reader tcp://127.0.0.1:5800 AnalogInput1 --policy ring --buffer 10 5\n"
        "\n" TOOL_HELP_EXIT_WITH("stopped by SIGINT or SIGTERM", ""),
        MCL_BROKER_RPC_CHANNEL, DEFAULT_BROKER_URL, MCL_BROKER_STATS_CHANNEL);
}

// A --bridge-out or --bridge-in: CHANNEL=URL.
typedef struct bridge {
    char channel[256];
    const char *url;
    bool out;
} bridge;
enum { MAX_BRIDGES = 32 };

// Parses the value of a counting option (1..max); false, after saying why, when invalid.
static bool
count_option(const char *name, const char *arg, uint64_t max, uint64_t *out)
{
    if (!tool_parse_u64(arg, max, out) || *out == 0) {
        tool_err(prog, "invalid --%s '%s' (1..%" PRIu64 ")", name, arg, max);
        return false;
    }
    return true;
}

int
main(int argc, char **argv)
{
    const char *url = DEFAULT_BROKER_URL;
    bool quiet = false, verbose = false;
    mcl_broker_options bo = {0};
    static bridge bridges[MAX_BRIDGES];
    int nbridges = 0;
    enum {
        O_CHANNELS = 256,
        O_CLIENTS,
        O_BUFFER,
        O_WINDOW,
        O_CREDIT,
        O_FRAME,
        O_HEARTBEAT,
        O_STATS,
        O_BRIDGE_OUT,
        O_BRIDGE_IN,
        O_READER_BYTES,
        O_HELP,
        O_VERSION
    };
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"max-channels", required_argument, NULL, O_CHANNELS},
                                         {"max-clients", required_argument, NULL, O_CLIENTS},
                                         {"max-buffer", required_argument, NULL, O_BUFFER},
                                         {"window", required_argument, NULL, O_WINDOW},
                                         {"credit", required_argument, NULL, O_CREDIT},
                                         {"max-frame", required_argument, NULL, O_FRAME},
                                         {"max-reader-bytes", required_argument, NULL, O_READER_BYTES},
                                         {"heartbeat-ms", required_argument, NULL, O_HEARTBEAT},
                                         {"stats-ms", required_argument, NULL, O_STATS},
                                         {"bridge-out", required_argument, NULL, O_BRIDGE_OUT},
                                         {"bridge-in", required_argument, NULL, O_BRIDGE_IN},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c;
    uint64_t u;
    while ((c = tool_getopt(prog, argc, argv, "u:qv", opts)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case O_CHANNELS:
            if (!count_option("max-channels", optarg, UINT_MAX, &u))
                return EXIT_USAGE;
            bo.max_channels = (unsigned)u;
            break;
        case O_CLIENTS:
            if (!count_option("max-clients", optarg, UINT_MAX, &u))
                return EXIT_USAGE;
            bo.max_clients = (unsigned)u;
            break;
        case O_BUFFER:
            if (!count_option("max-buffer", optarg, UINT32_MAX, &u))
                return EXIT_USAGE;
            bo.max_buffer = (uint32_t)u;
            break;
        case O_WINDOW:
            if (!count_option("window", optarg, UINT32_MAX, &u))
                return EXIT_USAGE;
            bo.max_window = (uint32_t)u;
            break;
        case O_CREDIT:
            if (!count_option("credit", optarg, UINT32_MAX, &u))
                return EXIT_USAGE;
            bo.writer_credit = (uint32_t)u;
            break;
        case O_FRAME:
            if (!tool_parse_size(optarg, (uint64_t)1 << 31, &u) || u == 0) {
                tool_err(prog, "invalid --max-frame '%s' (bytes, k/M suffixes; at most 2G)",
                         optarg);
                return EXIT_USAGE;
            }
            bo.max_frame = (size_t)u;
            break;
        case O_READER_BYTES:
            if (!tool_parse_size(optarg, (uint64_t)1 << 40, &u) || u == 0) {
                tool_err(prog, "invalid --max-reader-bytes '%s' (bytes, k/M/G suffixes)", optarg);
                return EXIT_USAGE;
            }
            bo.max_reader_bytes = (size_t)u;
            break;
        case O_HEARTBEAT:
            if (!count_option("heartbeat-ms", optarg, 3600000, &u))
                return EXIT_USAGE;
            bo.heartbeat_ms = (int)u;
            break;
        case O_STATS:
            if (!count_option("stats-ms", optarg, 3600000, &u))
                return EXIT_USAGE;
            bo.stats_ms = (int)u;
            break;
        case O_BRIDGE_OUT:
        case O_BRIDGE_IN: {
            const char *name = c == O_BRIDGE_OUT ? "bridge-out" : "bridge-in";
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg || eq[1] == '\0' || eq - optarg > 255) {
                tool_err(prog, "invalid --%s '%s' (CHANNEL=URL)", name, optarg);
                return EXIT_USAGE;
            }
            if (nbridges == MAX_BRIDGES) {
                tool_err(prog, "at most %d bridges", MAX_BRIDGES);
                return EXIT_USAGE;
            }
            bridge *br = &bridges[nbridges++];
            memcpy(br->channel, optarg, (size_t)(eq - optarg));
            br->channel[eq - optarg] = '\0';
            br->url = eq + 1;
            br->out = c == O_BRIDGE_OUT;
            break;
        }
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
    if (optind < argc) {
        tool_err(prog, "unexpected argument '%s' (the URL goes with -u URL)", argv[optind]);
        return EXIT_USAGE;
    }
    tool_log_to_stderr(prog, verbose);
    tool_signals();

    mcl_broker *b;
    mcl_err rv = mcl_broker_open(&b, url, &bo);
    if (rv != MCL_OK)
        return tool_open_error(prog, "cannot listen on", url, rv);
    for (int i = 0; i < nbridges; i++) {
        const bridge *br = &bridges[i];
        rv = br->out ? mcl_broker_bridge_out(b, br->channel, br->url)
                     : mcl_broker_bridge_in(b, br->url, br->channel);
        if (rv != MCL_OK) {
            char what[sizeof(br->channel) + 32];
            snprintf(what, sizeof(what), "--bridge-%s %.255s=", br->out ? "out" : "in", br->channel);
            int ec = tool_open_error(prog, what, br->url, rv);
            mcl_broker_free(b);
            return ec;
        }
    }
    if (!quiet) {
        tool_err(prog, "listening on %s", mcl_broker_url(b));
        for (int i = 0; i < nbridges; i++)
            tool_err(prog, "bridging %s %s %s", bridges[i].channel,
                     bridges[i].out ? "out to" : "in from", bridges[i].url);
    }
    int64_t t0 = tool_mono_ns();
    while (!tool_stop) // the broker runs on its own thread; this one only waits for a signal
        tool_sleep_until(tool_mono_ns() + 100000000);
    // Read before freeing: the counts of the moment the signal came.
    size_t channels = mcl_broker_channels(b), clients = mcl_broker_clients(b);
    mcl_broker_free(b);
    if (!quiet)
        tool_err(prog, "stopped after %.1f s: %zu channel%s, %zu client%s at exit",
                 (double)(tool_mono_ns() - t0) / 1e9, channels, channels == 1 ? "" : "s", clients,
                 clients == 1 ? "" : "s");
    return EXIT_OK;
}
