// SPDX-License-Identifier: BSD-3-Clause
// mcl-sim: simulated sensor traffic: the demo's publisher and a load generator.
#define _GNU_SOURCE
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "mcl-sim";

// Kinds of simulated sensor: the message type each publishes and how it fills it.
typedef enum kind { K_IMU, K_GNSS, K_WHEELS, K_CAMERA, K_LIDAR, K_BLOB, K_COUNT } kind;
static const char *const kind_names[K_COUNT] = {"imu", "gnss", "wheels", "camera", "lidar", "blob"};
static const char *const type_names[K_COUNT] = {"Imu",         "GnssFix",   "WheelSpeeds",
                                                "CameraFrame", "LidarScan", "Blob"};

typedef struct stream {
    char name[64];
    char topic[MCL_TOPIC_MAX + 1];
    double rate;   // Hz
    size_t size;   // target payload size in bytes (0: the natural size)
    kind kind;
    mcl_msg_broadcaster *b;
    uint64_t sent, bytes;
    uint64_t errors; // publish calls that failed (and a failed close)
    uint64_t unsent; // the broadcaster's count of messages the kernel refused
    int64_t next_ns; // when the next message is due
    uint64_t k;      // messages scheduled so far
} stream;

static const char default_config[] = "# built-in scenario: NAME = RATE_HZ, SIZE_BYTES[, TYPE[, TOPIC]]\n"
                                     "imu    = 100, 0,      imu,    imu\n"
                                     "gnss   = 10,  0,      gnss,   gnss\n"
                                     "wheels = 50,  0,      wheels, wheels\n"
                                     "camera = 5,   131072, camera, camera/front\n"
                                     "lidar  = 10,  61440,  lidar,  lidar/top\n";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-sim [OPTION]...\n"
            "Publish simulated sensor messages (a vehicle driving in circles) until stopped.\n"
            "\n"
            "  -u, --url URL        connection (default: $MCL_URL, else %s)\n"
            "  -c, --config FILE    streams to simulate, one per line (default: built in)\n"
            "  -d, --duration SEC   stop after SEC seconds (default: until Ctrl-C)\n"
            "  -s, --speed X        multiply every rate by X (default 1)\n"
            "  -l, --list           print the streams and exit\n"
            "  -q, --quiet          no status line, no summary at exit\n"
            "  -v, --verbose        library debug messages on stderr\n"
            "      --subscribers N  zmq: wait for N listeners first (default 1; 0: don't)\n"
            "      --wait SEC       how long to wait for them (default 10)\n"
            "  -h, --help           this text\n"
            "      --version        version\n"
            "\n"
            "Config lines: NAME = RATE_HZ, SIZE_BYTES[, TYPE[, TOPIC]]   ('#' starts a comment)\n"
            "  TYPE is imu, gnss, wheels, camera, lidar or blob (default: NAME if it is one of\n"
            "  these, else blob); TOPIC defaults to NAME. SIZE_BYTES 0 keeps the natural size;\n"
            "  otherwise a binary \"data\" field brings the message to about that size.\n"
            "  camera and lidar carry typed arrays sized by SIZE_BYTES instead of \"data\":\n"
            "  camera a mono8 frame uint8[HEIGHT,WIDTH] (width 640, the rows that fit;\n"
            "  0: 640 x 480), lidar ranges float32[N] (the beams that fit, angle_step\n"
            "  2 pi / N; 0: 360); built in: uint8[204,640] and float32[15328]. Other\n"
            "  fields: camera width, height, encoding, exposure_ms; lidar angle_min,\n"
            "  angle_step.\n"
            "\n"
            "Built-in scenario:\n%s"
            "When stderr is a terminal, a status line shows, once a second, the time (of the\n"
            "duration, and the time left), the messages and megabytes sent and the rate; never\n"
            "when stderr is a pipe or a file.\n"
            "The summary shows per stream the messages sent, `errors' (publish calls that\n"
            "failed) and `unsent' (messages the kernel refused, also from batches).\n"
            "A stream whose SIZE_BYTES is above the connection's maxmsg is refused at start.\n"
            "\n" TOOL_HELP_EXIT_WITH("success", "     (any publish error or unsent message)\n"),
            MCL_DEFAULT_URL, default_config);
}

static char *
trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

// Parses the config text; on error prints "SOURCE:LINE: problem" and returns -1.
static int
parse_config(const char *src, const char *text, stream **out, size_t *n)
{
    char *copy = strdup(text);
    if (copy == NULL)
        return -1;
    stream *v = NULL;
    size_t cnt = 0;
    int lineno = 0, rc = 0;
    char *rest = copy;
    for (char *line = strsep(&rest, "\n"); line != NULL; line = strsep(&rest, "\n")) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *l = trim(line);
        if (*l == '\0')
            continue;
#define BAD(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "%s: %s:%d: ", prog, src, lineno);                                         \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        rc = -1;                                                                                   \
        goto out;                                                                                  \
    } while (0)
        char *eq = strchr(l, '=');
        if (eq == NULL)
            BAD("expected 'NAME = RATE_HZ, SIZE_BYTES[, TYPE[, TOPIC]]'");
        *eq = '\0';
        char *name = trim(l);
        if (*name == '\0' || strlen(name) >= 64)
            BAD("a stream needs a name of 1..63 characters");
        for (char *p = name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '/' && *p != '.')
                BAD("stream name '%s' has an invalid character '%c'", name, *p);
        char *fields[5] = {0};
        int nf = 0;
        char *frest = eq + 1;
        for (char *f = strsep(&frest, ","); f != NULL; f = strsep(&frest, ",")) {
            if (nf == 4)
                BAD("too many fields (at most RATE_HZ, SIZE_BYTES, TYPE, TOPIC)");
            fields[nf++] = trim(f);
        }
        if (nf < 2)
            BAD("'%s' needs at least a rate and a size", name);
        stream s;
        memset(&s, 0, sizeof(s));
        snprintf(s.name, sizeof(s.name), "%s", name);
        if (!tool_parse_double(fields[0], 0.001, 100000, &s.rate))
            BAD("rate '%s' is not a number of Hz in 0.001..100000", fields[0]);
        uint64_t size;
        if (!tool_parse_size(fields[1], (uint64_t)1 << 30, &size))
            BAD("size '%s' is not a byte count up to 1G (k/M suffixes allowed)", fields[1]);
        s.size = (size_t)size;
        const char *k = nf >= 3 && fields[2][0] ? fields[2] : NULL;
        s.kind = K_BLOB;
        if (k == NULL) {
            for (int i = 0; i < K_COUNT; i++)
                if (strcmp(name, kind_names[i]) == 0)
                    s.kind = (kind)i;
        } else {
            int found = -1;
            for (int i = 0; i < K_COUNT; i++)
                if (strcmp(k, kind_names[i]) == 0)
                    found = i;
            if (found < 0)
                BAD("unknown type '%s' (imu, gnss, wheels, camera, lidar, blob)", k);
            s.kind = (kind)found;
        }
        const char *topic = nf >= 4 && fields[3][0] ? fields[3] : name;
        if (strlen(topic) > MCL_TOPIC_MAX)
            BAD("topic longer than %d bytes", MCL_TOPIC_MAX);
        snprintf(s.topic, sizeof(s.topic), "%s", topic);
        for (size_t i = 0; i < cnt; i++)
            if (strcmp(v[i].name, s.name) == 0)
                BAD("stream '%s' is defined twice", s.name);
        stream *nv = realloc(v, (cnt + 1) * sizeof(*v));
        if (nv == NULL)
            BAD("out of memory");
        v = nv;
        v[cnt++] = s;
#undef BAD
    }
    if (cnt == 0) {
        fprintf(stderr, "%s: %s: no streams defined\n", prog, src);
        rc = -1;
    }
out:
    free(copy);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

// --- the simulated vehicle ---------------------------------------------------------------------

typedef struct vehicle {
    double t;              // seconds since start
    double speed, heading; // m/s, rad
    double x, y;           // metres from the origin
    double yaw_rate, accel_lat;
} vehicle;

static uint64_t rng = 0x2545f4914f6cdd1dULL;
static double
noise(double amplitude)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return amplitude * ((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void
vehicle_at(vehicle *v, double t)
{
    // A 100 m radius circle at a speed that varies between 8 and 12 m/s.
    const double r = 100.0;
    v->t = t;
    v->speed = 10.0 + 2.0 * sin(t / 7.0);
    double angle = (10.0 * t - 14.0 * cos(t / 7.0) + 14.0) / r; // integral of speed / r
    v->heading = fmod(angle + M_PI / 2, 2 * M_PI);
    v->x = r * cos(angle);
    v->y = r * sin(angle);
    v->yaw_rate = v->speed / r;
    v->accel_lat = v->speed * v->speed / r;
}

// Adds a binary "data" field so the encoded message is about `target` bytes.
static mcl_err
pad_to(mcl_msg *m, size_t target, uint64_t k)
{
    void *buf;
    size_t len;
    mcl_err rv = mcl_msg_set_bin(m, "data", NULL, 0);
    if (rv == MCL_OK)
        rv = mcl_msg_encode(m, &buf, &len);
    if (rv != MCL_OK)
        return rv;
    mcl_free(buf);
    if (target <= len + 4)
        return MCL_OK;
    size_t n = target - len - 4; // bin header grows from 1 to at most 5 bytes
    uint8_t *d = malloc(n);
    if (d == NULL)
        return MCL_ENOMEM;
    for (size_t i = 0; i < n; i++) // a moving gradient, so frames differ
        d[i] = (uint8_t)((i % 640) + (i / 640) + k * 3);
    rv = mcl_msg_set_bin(m, "data", d, n);
    free(d);
    return rv;
}

// Camera and lidar carry their data as typed arrays (mcl/value.h) that take the stream's
// SIZE_BYTES, less about this much for the other fields, so their shape stays the same for
// every message of a stream (a log reads them as one (N, *shape) column).
enum { ARRAY_OVERHEAD = 128, CAMERA_WIDTH = 640, CAMERA_HEIGHT = 480, LIDAR_BEAMS = 360 };

// The frame of a camera stream: uint8[height, width] (mono8); SIZE_BYTES 0: 640 x 480.
static void
camera_shape(const stream *s, uint64_t shape[2])
{
    shape[1] = CAMERA_WIDTH;
    shape[0] = CAMERA_HEIGHT;
    if (s->size > 0) {
        size_t avail = s->size > ARRAY_OVERHEAD + 1 ? s->size - ARRAY_OVERHEAD : 1;
        if (avail < CAMERA_WIDTH)
            shape[1] = avail;
        shape[0] = avail / shape[1];
    }
}

// The beams of a lidar stream: float32[n]; SIZE_BYTES 0: 360 (one per degree).
static uint64_t
lidar_beams(const stream *s)
{
    if (s->size == 0)
        return LIDAR_BEAMS;
    size_t avail = s->size > ARRAY_OVERHEAD + 4 ? s->size - ARRAY_OVERHEAD : 4;
    return avail / 4;
}

static mcl_err
fill(mcl_msg *m, const stream *s, const vehicle *v)
{
    mcl_err rv = mcl_msg_set_uint(m, "seq", s->k);
    switch (s->kind) {
    case K_IMU:
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "ax", noise(0.05) + 0.2 * cos(v->t / 7.0));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "ay", v->accel_lat + noise(0.05));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "az", 9.81 + noise(0.03));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "gx", noise(0.002));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "gy", noise(0.002));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "gz", v->yaw_rate + noise(0.002));
        break;
    case K_GNSS: {
        // Around the ACFR, Sydney; 1 degree of latitude is about 111 km.
        double lat = -33.8888 + v->y / 111320.0;
        double lon = 151.1943 + v->x / (111320.0 * cos(-33.8888 * M_PI / 180));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "lat", lat + noise(2e-6));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "lon", lon + noise(2e-6));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "alt", 42.0 + noise(0.5));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "speed", v->speed + noise(0.05));
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "heading", v->heading * 180 / M_PI);
        if (rv == MCL_OK)
            rv = mcl_msg_set_int(m, "fix", 3);
        if (rv == MCL_OK)
            rv = mcl_msg_set_int(m, "sats", 9 + (int64_t)(s->k / 50 % 4));
        break;
    }
    case K_WHEELS: {
        double w = 0.8 * v->yaw_rate; // half track times yaw rate
        const char *names[] = {"fl", "fr", "rl", "rr"};
        double sp[] = {v->speed - w, v->speed + w, v->speed - w, v->speed + w};
        for (int i = 0; i < 4 && rv == MCL_OK; i++)
            rv = mcl_msg_set_double(m, names[i], sp[i] + noise(0.02));
        break;
    }
    case K_CAMERA: {
        uint64_t shape[2];
        void *px = NULL;
        camera_shape(s, shape);
        if (rv == MCL_OK)
            rv = mcl_msg_set_int(m, "width", (int64_t)shape[1]);
        if (rv == MCL_OK)
            rv = mcl_msg_set_int(m, "height", (int64_t)shape[0]);
        if (rv == MCL_OK)
            rv = mcl_msg_set_str(m, "encoding", "mono8");
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "exposure_ms", 8.0 + 2.0 * sin(v->t));
        if (rv == MCL_OK) // filled in place: a gradient that moves, so frames differ
            rv = mcl_msg_set_ndarray_uninit(m, "frame", MCL_DTYPE_UINT8, 2, shape, &px);
        uint8_t *row = px;
        for (uint64_t y = 0; rv == MCL_OK && row != NULL && y < shape[0]; y++, row += shape[1])
            for (uint64_t x = 0; x < shape[1]; x++)
                row[x] = (uint8_t)(x + y + s->k * 3);
        break;
    }
    case K_LIDAR: {
        uint64_t n = lidar_beams(s);
        double step = 2 * M_PI / (double)n;
        void *p = NULL;
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "angle_min", -M_PI);
        if (rv == MCL_OK)
            rv = mcl_msg_set_double(m, "angle_step", step);
        if (rv == MCL_OK)
            rv = mcl_msg_set_ndarray_uninit(m, "ranges", MCL_DTYPE_FLOAT32, 1, &n, &p);
        float *ranges = p;
        for (uint64_t i = 0; rv == MCL_OK && i < n; i++) { // walls of a 60 m square arena
            double a = -M_PI + step * (double)i;
            ranges[i] = (float)(30.0 / fmax(fabs(cos(a)), fabs(sin(a))) + noise(0.02));
        }
        break;
    }
    case K_BLOB:
    case K_COUNT:
        break;
    }
    if (rv == MCL_OK && s->size > 0 && s->kind != K_CAMERA && s->kind != K_LIDAR)
        rv = pad_to(m, s->size, s->k);
    return rv;
}

// "mcl-sim: 12.0 s of 60.0 s (20.0 %), left 48.0 s, 2040 msgs, 12.3 MB, 170 msg/s"
static void
show_status(tool_status *st, const stream *s, size_t ns, int64_t start, double duration)
{
    uint64_t msgs = 0, bytes = 0;
    for (size_t i = 0; i < ns; i++) {
        mcl_broadcaster_stats bs = {0};
        if (s[i].b != NULL)
            mcl_raw_broadcaster_stats(mcl_msg_broadcaster_raw(s[i].b), &bs);
        msgs += bs.messages;
        bytes += bs.bytes;
    }
    double secs = (double)(tool_mono_ns() - start) / 1e9;
    if (duration > 0 && secs > duration)
        secs = duration;
    char el[32], of[32], left[32], head[128];
    tool_format_duration(secs, el, sizeof(el));
    if (duration > 0) {
        tool_format_duration(duration, of, sizeof(of));
        tool_format_duration(duration - secs, left, sizeof(left));
        snprintf(head, sizeof(head), "%s of %s (%.1f %%), left %s", el, of,
                 floor(secs / duration * 1000) / 10, left);
    } else {
        snprintf(head, sizeof(head), "%s", el);
    }
    tool_status_show(st, "%s: %s, %llu msgs, %.1f MB, %.0f msg/s", prog, head,
                     (unsigned long long)msgs, (double)bytes / 1e6,
                     secs > 0 ? (double)msgs / secs : 0.0);
}

static int
read_file(const char *path, char **text)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b != NULL) {
        if (n + 1 >= cap) {
            char *nb = cap < (1 << 20) ? realloc(b, cap *= 2) : NULL;
            if (nb == NULL) {
                free(b);
                b = NULL;
                errno = EFBIG;
                break;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (b == NULL)
        return -1;
    b[n] = '\0';
    *text = b;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *url = NULL, *config = NULL;
    double duration = 0, speed = 1;
    bool list = false, quiet = false, verbose = false;
    enum { OPT_HELP = 256, OPT_VERSION };
    tool_wait wait = TOOL_WAIT_INIT;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},      {"config", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'}, {"speed", required_argument, NULL, 's'},
        {"list", no_argument, NULL, 'l'},           {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION}, TOOL_WAIT_LONGOPTS,
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "u:c:d:s:lqv", opts)) != -1) {
        switch (c) {
        case TOOL_OPT_SUBSCRIBERS:
        case TOOL_OPT_WAIT:
            if (!tool_wait_option(prog, c, optarg, &wait))
                return EXIT_USAGE;
            break;
        case 'u':
            url = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'd':
            if (!tool_parse_double(optarg, 0.001, 1e7, &duration)) {
                tool_err(prog, "invalid duration '%s' (seconds > 0)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 's':
            if (!tool_parse_double(optarg, 0.001, 1000, &speed)) {
                tool_err(prog, "invalid speed '%s' (0.001..1000)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'l':
            list = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'v':
            verbose = true;
            break;
        case OPT_HELP:
            usage(stdout);
            return EXIT_OK;
        case OPT_VERSION:
            tool_version(prog);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        tool_err(prog, "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    char *text = NULL;
    if (config != NULL && read_file(config, &text) != 0) {
        tool_err(prog, "%s: %s", config, strerror(errno));
        return EXIT_USAGE;
    }
    stream *st = NULL;
    size_t ns = 0;
    int prc = parse_config(config ? config : "built-in", config ? text : default_config, &st, &ns);
    free(text);
    if (prc != 0)
        return EXIT_USAGE;
    if (list) {
        printf("%-16s %10s %10s  %-8s %-12s %s\n", "stream", "rate_hz", "size_B", "type",
               "message", "topic");
        for (size_t i = 0; i < ns; i++)
            printf("%-16s %10g %10zu  %-8s %-12s %s\n", st[i].name, st[i].rate * speed,
                   st[i].size, kind_names[st[i].kind], type_names[st[i].kind], st[i].topic);
        free(st);
        return EXIT_OK;
    }
    tool_log_to_stderr(prog, verbose);
    tool_signals();
    mcl_connection *conn = NULL;
    int ec = tool_connection(prog, url, &conn);
    if (ec != EXIT_OK) {
        free(st);
        return ec;
    }
    for (size_t i = 0; i < ns; i++)
        if (st[i].size > mcl_connection_maxmsg(conn)) {
            char what[160];
            snprintf(what, sizeof(what), "%s: stream %s's SIZE_BYTES %zu", config ? config : "built-in",
                     st[i].name, st[i].size);
            tool_too_large(prog, conn, what, st[i].size, false);
            free(st);
            mcl_connection_free(conn);
            return EXIT_USAGE;
        }
    // One message type per kind in use, one broadcaster (one publisher id) per stream.
    const mcl_msgtype *types[K_COUNT] = {0};
    int status = EXIT_OK;
    for (size_t i = 0; i < ns && status == EXIT_OK; i++) {
        kind k = st[i].kind;
        if (types[k] == NULL && mcl_msgtype_define(&types[k], type_names[k], NULL, 0, NULL, NULL,
                                                   NULL, 0) != MCL_OK) {
            tool_err(prog, "cannot define message type %s", type_names[k]);
            status = EXIT_RUNTIME;
            break;
        }
        mcl_err rv = mcl_msg_broadcaster_open(&st[i].b, types[k], conn, st[i].topic);
        if (rv != MCL_OK)
            status = tool_open_error(prog, "cannot open", mcl_connection_url(conn), rv);
    }
    bool opened = status == EXIT_OK; // (else the error is all there is to say)
    // Every stream's broadcaster shares the connection (zmq: one socket), so one wait will do.
    if (status == EXIT_OK && ns > 0 &&
        !tool_wait_subscribers(prog, mcl_msg_broadcaster_raw(st[0].b), &wait))
        status = EXIT_RUNTIME;
    int64_t start = tool_mono_ns();
    int64_t end = duration > 0 ? start + (int64_t)(duration * 1e9) : INT64_MAX;
    for (size_t i = 0; i < ns; i++)
        st[i].next_ns = start;
    tool_status line;
    tool_status_init(&line, !quiet && status == EXIT_OK);
    while (status == EXIT_OK && !tool_stop) {
        size_t due = 0;
        for (size_t i = 1; i < ns; i++)
            if (st[i].next_ns < st[due].next_ns)
                due = i;
        int64_t t = st[due].next_ns;
        if (tool_status_due(&line))
            show_status(&line, st, ns, start, duration);
        if (line.on && line.next_ns < t && line.next_ns < end) {
            tool_sleep_until(line.next_ns); // slow streams: the line goes on meanwhile
            continue;
        }
        if (t >= end || tool_mono_ns() >= end) // a late schedule never runs past the duration
            break;
        tool_sleep_until(t);
        if (tool_stop)
            break;
        stream *s = &st[due];
        vehicle v;
        vehicle_at(&v, (double)(t - start) / 1e9);
        mcl_msg *m = NULL;
        mcl_err rv = mcl_msg_new(&m, types[s->kind]);
        if (rv == MCL_OK)
            rv = fill(m, s, &v);
        if (rv == MCL_OK)
            rv = mcl_msg_broadcaster_publish(s->b, m, NULL);
        if (rv == MCL_OK) {
            s->sent++;
        } else {
            s->errors++;
            if (rv == MCL_EMSGSIZE) { // (padded to about SIZE_BYTES: the overhead went above)
                char what[160];
                snprintf(what, sizeof(what), "stream %s: a message", s->name);
                tool_too_large(prog, conn, what, 0, true);
            } else if (rv == MCL_ENOMEM || s->errors == 1) {
                tool_err(prog, "%s: publish failed: %s", s->name, mcl_strerror(rv));
            }
            if (rv == MCL_ENOMEM || rv == MCL_EMSGSIZE) {
                status = EXIT_RUNTIME;
            }
        }
        mcl_msg_free(m);
        // Paced against the start, so that delays never accumulate.
        s->k++;
        s->next_ns = start + (int64_t)((double)s->k * 1e9 / (s->rate * speed));
    }
    if (line.ever)
        show_status(&line, st, ns, start, duration);
    tool_status_end(&line);
    double secs = (double)(tool_mono_ns() - start) / 1e9;
    for (size_t i = 0; i < ns; i++) {
        // Close first: on a batching connection it sends what still waits, and reports a
        // batch that failed to leave.
        mcl_err rv = st[i].b != NULL ? mcl_msg_broadcaster_close(st[i].b) : MCL_OK;
        if (rv != MCL_OK) {
            tool_err(prog, "%s: sending failed: %s", st[i].name, mcl_strerror(rv));
            st[i].errors++;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        mcl_broadcaster_stats bs = {0};
        if (st[i].b == NULL)
            continue;
        mcl_raw_broadcaster_stats(mcl_msg_broadcaster_raw(st[i].b), &bs);
        st[i].sent = bs.messages; // without the records of batches the kernel refused
        st[i].bytes = bs.bytes;
        st[i].unsent = bs.errors;
    }
    if (!quiet && opened) {
        fprintf(stderr, "%s: %.2f s on %s\n", prog, secs, mcl_connection_url(conn));
        fprintf(stderr, "%-16s %10s %12s %10s %8s %8s\n", "stream", "messages", "bytes", "msg/s",
                "errors", "unsent");
        for (size_t i = 0; i < ns; i++)
            fprintf(stderr, "%-16s %10llu %12llu %10.1f %8llu %8llu\n", st[i].name,
                    (unsigned long long)st[i].sent, (unsigned long long)st[i].bytes,
                    secs > 0 ? (double)st[i].sent / secs : 0.0,
                    (unsigned long long)st[i].errors, (unsigned long long)st[i].unsent);
    }
    for (size_t i = 0; i < ns; i++) {
        if ((st[i].errors > 0 || st[i].unsent > 0) && status == EXIT_OK)
            status = EXIT_RUNTIME;
        mcl_msg_broadcaster_free(st[i].b);
    }
    free(st);
    mcl_connection_free(conn);
    return status;
}
