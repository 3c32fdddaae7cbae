// SPDX-License-Identifier: BSD-3-Clause
// mcl-stat: what is on the bus. A live full-screen monitor of every topic (ncurses), a table
// or JSON Lines for scripts, and summaries of logs (mcl-stat -f LOG).
#define _GNU_SOURCE
#include "common.h"
#include "logsum.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#if MCL_STAT_CURSES
#include <curses.h>
#endif

static const char *prog = "mcl-stat";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-stat [-u URL] [-t TOPICS] [OPTION]...\n"
            "       mcl-stat -f LOG [-t TOPICS]\n"
            "What is on the bus: every topic with its type, publishers, rate, jitter, bandwidth,\n"
            "size, loss and age. On a terminal a live full-screen monitor; otherwise (or with\n"
            "--once) a table after a few seconds; --json for scripts; -f summarises a log.\n"
            "\n"
            "  -u, --url URL        connection (default: $MCL_URL, else %s)\n"
            "  -t, --topic T[,T]    only these topics; 'imu/*' matches a prefix (repeatable)\n"
            "      --once SEC       collect for SEC seconds, print a table and exit (default\n"
            "                       when stdout is not a terminal, for 5 s; with --json: one\n"
            "                       object after SEC seconds)\n"
            "      --json           print one JSON object per interval (JSON Lines): per-topic\n"
            "                       rows with their publishers, and the publishers\n"
            "      --interval SEC   with --json: seconds between objects (default 1)\n"
            "  -n, --count N        with --json: exit after N objects\n"
            "  -f, --file LOG       summarise a log instead (repeatable; files, split series,\n"
            "                       directories, or one remote log zmq+tcp://HOST:PORT/NAME):\n"
            "                       its parts, duration, start and end, damaged records, and\n"
            "                       per topic the count, rate, type and sizes\n"
            "      --ascii          ASCII only (the rate sparkline as .:-=+*#%%)\n"
            "  -v, --verbose        library debug messages on stderr\n"
            "  -h, --help           this text\n"
            "      --version        version\n"
            "\n"
            "Keys of the monitor: q quit, p pause, s sort column (topic, Hz, bandwidth, lost,\n"
            "last seen), r reverse, / filter topics (Enter keeps it, Esc clears it), Enter or\n"
            "Space show the selected topic's publishers, arrows and PageUp/PageDown select.\n"
            "HZ and BW/S are measured over the last 5 s; LAST is the time since the last message.\n"
#if !MCL_STAT_CURSES
            "This mcl-stat was built without ncurses: no full-screen monitor.\n"
#endif
            "\n" TOOL_HELP_EXIT,
            MCL_DEFAULT_URL);
}

// --- snapshots of the listener's statistics --------------------------------------------------

typedef struct snap {
    mcl_topic_stats *t; // per-topic rows
    size_t nt, cap_t;
    mcl_topic_stats *pp; // (publisher, topic) rows, sorted by topic then publisher
    size_t np, cap_p;
    mcl_publisher_stats *pub;
    size_t npub, cap_pub;
    mcl_listener_stats st;
    uint64_t untracked;
    int64_t mono_ns, real_ns;
    double msg_rate, byte_rate; // since the previous snapshot
} snap;

static int64_t
real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Grows *v to hold want entries of size sz; false when out of memory.
static bool
reserve(void **v, size_t *cap, size_t want, size_t sz)
{
    if (want <= *cap)
        return true;
    size_t nc = want + want / 4 + 8;
    void *nv = realloc(*v, nc * sz);
    if (nv == NULL)
        return false;
    *v = nv;
    *cap = nc;
    return true;
}

// Reads everything the UI shows. A count that grows between the two calls is cut to what
// fits (the next snapshot gets the rest). Rates come from the counters s held before.
static bool
take(mcl_raw_listener *l, snap *s)
{
    uint64_t msgs = s->st.messages, bytes = s->st.bytes;
    int64_t then = s->mono_ns;
    size_t n = mcl_raw_listener_topics(l, s->t, s->cap_t);
    if (n > s->cap_t) {
        if (!reserve((void **)&s->t, &s->cap_t, n, sizeof(*s->t)))
            return false;
        n = mcl_raw_listener_topics(l, s->t, s->cap_t);
    }
    s->nt = n < s->cap_t ? n : s->cap_t;
    n = mcl_raw_listener_topic_publishers(l, NULL, s->pp, s->cap_p);
    if (n > s->cap_p) {
        if (!reserve((void **)&s->pp, &s->cap_p, n, sizeof(*s->pp)))
            return false;
        n = mcl_raw_listener_topic_publishers(l, NULL, s->pp, s->cap_p);
    }
    s->np = n < s->cap_p ? n : s->cap_p;
    n = 0;
    mcl_raw_listener_publishers(l, s->pub, s->cap_pub, &n);
    if (n > s->cap_pub) {
        if (!reserve((void **)&s->pub, &s->cap_pub, n, sizeof(*s->pub)))
            return false;
        mcl_raw_listener_publishers(l, s->pub, s->cap_pub, &n);
    }
    s->npub = n < s->cap_pub ? n : s->cap_pub;
    mcl_raw_listener_stats(l, &s->st);
    s->untracked = mcl_raw_listener_topics_untracked(l);
    s->mono_ns = tool_mono_ns();
    s->real_ns = real_ns();
    double dt = (double)(s->mono_ns - then) / 1e9;
    if (dt > 0) {
        s->msg_rate = (double)(s->st.messages - msgs) / dt;
        s->byte_rate = (double)(s->st.bytes - bytes) / dt;
    }
    return true;
}

static void
snap_free(snap *s)
{
    free(s->t);
    free(s->pp);
    free(s->pub);
}

// A publisher's name: PROGRAM[PID]@HOST from its heartbeats, else its id in hex (publishers
// older than heartbeats send none).
static void
pub_name(char *buf, size_t len, uint64_t id, const mcl_publisher_stats *p)
{
    if (p != NULL && p->program[0] != '\0') {
        char pid[16] = "";
        if (p->pid != 0)
            snprintf(pid, sizeof(pid), "[%" PRIu32 "]", p->pid);
        snprintf(buf, len, "%.64s%s%s%.64s", p->program, pid, p->host[0] ? "@" : "", p->host);
    } else {
        snprintf(buf, len, "%016" PRIx64, id);
    }
}

// --- formatting ------------------------------------------------------------------------------

static void
fmt_rate_bytes(char *b, size_t n, double v)
{
    if (!(v >= 0) || !isfinite(v))
        v = 0;
    if (v < 1000)
        snprintf(b, n, "%.0fB/s", v);
    else if (v < 1e6)
        snprintf(b, n, "%.1fkB/s", v / 1e3);
    else if (v < 1e9)
        snprintf(b, n, "%.1fMB/s", v / 1e6);
    else
        snprintf(b, n, "%.2fGB/s", v / 1e9);
}

static void
fmt_size(char *b, size_t n, double v)
{
    if (!(v >= 0) || !isfinite(v))
        v = 0;
    if (v < 10000)
        snprintf(b, n, "%.0fB", v);
    else if (v < 1e7)
        snprintf(b, n, "%.1fk", v / 1e3);
    else
        snprintf(b, n, "%.1fM", v / 1e6);
}

static void
fmt_ms(char *b, size_t n, double ms, bool have)
{
    if (!have || !isfinite(ms) || ms < 0)
        snprintf(b, n, "-");
    else if (ms < 10)
        snprintf(b, n, "%.2fms", ms);
    else if (ms < 1000)
        snprintf(b, n, "%.1fms", ms);
    else
        snprintf(b, n, "%.1fs", ms / 1000);
}

static void
fmt_age(char *b, size_t n, int64_t now, int64_t then)
{
    double s = (double)(now - then) / 1e9;
    if (then == 0)
        snprintf(b, n, "-");
    else if (s < 0)
        snprintf(b, n, "0.0s");
    else if (s < 60)
        snprintf(b, n, "%.1fs", s);
    else if (s < 3600)
        snprintf(b, n, "%.0fm", s / 60);
    else if (s < 86400 * 99)
        snprintf(b, n, "%.0fh", s / 3600);
    else
        snprintf(b, n, "old");
}

// rate_history as 16 characters: eight levels scaled to the busiest second.
static void
sparkline(char *out, const uint32_t h[16], bool utf8)
{
    static const char *const bars[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                        "\u2585", "\u2586", "\u2587", "\u2588"};
    static const char ascii[] = ".:-=+*#%";
    uint32_t max = 0;
    for (int i = 0; i < 16; i++)
        max = h[i] > max ? h[i] : max;
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (h[i] == 0) {
            out[o++] = ' ';
            continue;
        }
        int lv = (int)(((uint64_t)h[i] * 8 - 1) / max); // 1..max -> 0..7
        if (utf8) {
            memcpy(out + o, bars[lv], 3);
            o += 3;
        } else {
            out[o++] = ascii[lv];
        }
    }
    out[o] = '\0';
}

// Column widths of the topic tables (the topic and type columns vary).
typedef struct layout {
    size_t topic, type;
    bool spark, utf8;
} layout;

enum { FIXED_COLS = 55, SPARK_COLS = 17 }; // after the type column; the sparkline and its space

enum sort_col { SORT_TOPIC, SORT_HZ, SORT_BW, SORT_LOST, SORT_LAST, SORT_N };

// One table row into out (room for 4 * (widths) + 64 bytes): NAME TYPE PUBS HZ JITTER BW/S
// SIZE LOST LAST [SPARK]. type NULL: the name spans the TYPE and PUBS columns too (a
// publisher's row).
static void
fmt_row(char *out, const layout *c, const char *name, const char *type, const char *pubs,
        const mcl_topic_stats *t, int64_t now)
{
    char nm[4 * 1100 + 2], ty[4 * 64 + 2] = "", jit[16], bw[16], sz[16], age[16], lost[24];
    if (type == NULL) {
        size_t w = c->topic + 1 + c->type + 1 + 4;
        logsum_safe_text(nm, name, strlen(name), w, w, c->utf8);
    } else {
        logsum_safe_text(nm, name, strlen(name), c->topic, c->topic, c->utf8);
        logsum_safe_text(ty, type, strlen(type), c->type, c->type, c->utf8);
    }
    fmt_ms(jit, sizeof(jit), t->jitter_ms, t->period_ms > 0);
    fmt_rate_bytes(bw, sizeof(bw), t->bandwidth_bps);
    fmt_size(sz, sizeof(sz), t->size_mean);
    fmt_age(age, sizeof(age), now, t->last_seen_ns);
    snprintf(lost, sizeof(lost), "%" PRIu64, t->lost);
    int k = type == NULL
                ? sprintf(out, "%s", nm)
                : sprintf(out, "%s %s %4s", nm, ty, pubs ? pubs : "");
    k += sprintf(out + k, " %8.1f %7s %9s %7s %6s %6s", isfinite(t->rate_hz) ? t->rate_hz : 0.0,
                 jit, bw, sz, lost, age);
    if (c->spark) {
        out[k++] = ' ';
        sparkline(out + k, t->rate_history, c->utf8);
    }
}

// The header row, the sorted column marked with v (descending) or ^ (ascending).
static void
fmt_header(char *out, const layout *c, int sort, bool desc)
{
    static const char *const names[] = {"TOPIC", "TYPE", "PUBS", "HZ", "JITTER", "BW/S",
                                        "SIZE", "LOST", "LAST"};
    static const int sort_of[] = {SORT_TOPIC, -1, -1, SORT_HZ, -1, SORT_BW, -1, SORT_LOST, SORT_LAST};
    static const int width[] = {0, 0, 4, 8, 7, 9, 7, 6, 6};
    size_t o = 0;
    for (int i = 0; i < 9; i++) {
        char h[16];
        snprintf(h, sizeof(h), "%s%s", names[i],
                 sort >= 0 && sort_of[i] == sort ? (desc ? "v" : "^") : "");
        int w = i == 0 ? (int)c->topic : i == 1 ? (int)c->type : width[i];
        if (i > 0)
            out[o++] = ' ';
        if (i < 2) { // left-aligned, cut to the column
            int k = snprintf(out + o, (size_t)w + 1, "%-*s", w, h);
            o += (size_t)(k < w ? k : w);
        } else {
            o += (size_t)sprintf(out + o, "%*s", w, h);
        }
    }
    if (c->spark)
        o += (size_t)sprintf(out + o, " %-16s", "RATE (16 s)");
    out[o] = '\0';
}

// --- sorting and filtering -------------------------------------------------------------------

static int sort_by = SORT_TOPIC;
static bool sort_reverse;

// Whether the column's natural order is descending (busiest, most lost, newest first).
static bool
natural_desc(int col)
{
    return col == SORT_HZ || col == SORT_BW || col == SORT_LOST;
}

static bool
sort_desc(void)
{
    bool d = natural_desc(sort_by);
    if (sort_by == SORT_LAST)
        d = true; // newest (largest last_seen) first
    return sort_reverse ? !d : d;
}

static int
cmp_num(double a, double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static int
cmp_rows(const void *pa, const void *pb)
{
    const mcl_topic_stats *a = *(const mcl_topic_stats *const *)pa;
    const mcl_topic_stats *b = *(const mcl_topic_stats *const *)pb;
    int r = 0;
    switch (sort_by) {
    case SORT_HZ:
        r = cmp_num(a->rate_hz, b->rate_hz);
        break;
    case SORT_BW:
        r = cmp_num(a->bandwidth_bps, b->bandwidth_bps);
        break;
    case SORT_LOST:
        r = cmp_num((double)a->lost, (double)b->lost);
        break;
    case SORT_LAST:
        r = cmp_num((double)a->last_seen_ns, (double)b->last_seen_ns);
        break;
    default:
        break;
    }
    if (r == 0)
        return strcmp(a->topic, b->topic) * (sort_by == SORT_TOPIC && sort_desc() ? -1 : 1);
    return sort_desc() ? -r : r;
}

// The rows to show: topics matching filter (substring, any case), sorted. *rows is grown.
static size_t
select_rows(const snap *s, const char *filter, const mcl_topic_stats ***rows, size_t *cap)
{
    if (!reserve((void **)rows, cap, s->nt ? s->nt : 1, sizeof(**rows)))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < s->nt; i++)
        if (filter[0] == '\0' || strcasestr(s->t[i].topic, filter) != NULL)
            (*rows)[n++] = &s->t[i];
    qsort(*rows, n, sizeof(**rows), cmp_rows);
    return n;
}

static layout
plan(const mcl_topic_stats *const *rows, size_t n, size_t max_topic, bool utf8)
{
    layout c = {.topic = 6, .type = 4, .utf8 = utf8}; // (room for the marker: TOPIC^)
    for (size_t i = 0; i < n; i++) {
        size_t tl = strlen(rows[i]->topic), yl = strlen(rows[i]->type);
        c.topic = tl > c.topic ? tl : c.topic;
        c.type = yl > c.type ? yl : c.type;
    }
    c.type = c.type > 16 ? 16 : c.type;
    c.topic = c.topic > max_topic ? max_topic : c.topic;
    return c;
}

// --- plain text and JSON ---------------------------------------------------------------------

static void
print_table(FILE *o, const char *url, const snap *s, double secs)
{
    const mcl_topic_stats **rows = NULL;
    size_t cap = 0, n = select_rows(s, "", &rows, &cap);
    layout c = plan(rows, n, 40, false);
    char *line = malloc(4 * (c.topic + c.type) + 256);
    if (line == NULL) {
        free(rows);
        return;
    }
    char u[4 * 256 + 1], bw[16];
    logsum_safe_text(u, url, strlen(url), 256, 0, false);
    fmt_rate_bytes(bw, sizeof(bw), (double)s->st.bytes / (secs > 0 ? secs : 1));
    fprintf(o,
            "%s\n%.1f s: %" PRIu64 " messages (%.1f msg/s, %s), lost %" PRIu64
            ", kernel drops %" PRIu64 ", malformed %" PRIu64 "\n",
            u, secs, s->st.messages, secs > 0 ? (double)s->st.messages / secs : 0.0, bw,
            s->st.lost, s->st.kernel_drops, s->st.malformed);
    if (n == 0) {
        fprintf(o, "no messages\n");
    } else {
        fmt_header(line, &c, -1, false);
        fprintf(o, "%s\n", line);
        for (size_t i = 0; i < n; i++) {
            char pubs[16];
            snprintf(pubs, sizeof(pubs), "%" PRIu32, rows[i]->publishers);
            fmt_row(line, &c, rows[i]->topic[0] ? rows[i]->topic : "(none)",
                    rows[i]->type[0] ? rows[i]->type : "-", pubs, rows[i], s->real_ns);
            fprintf(o, "%s\n", line);
        }
    }
    if (s->untracked > 0)
        fprintf(o, "(%" PRIu64 " messages of topics beyond the tracking cap)\n", s->untracked);
    if (s->npub > 0) {
        fprintf(o, "\n%-16s %-26s %10s %7s %6s\n", "PUBLISHER", "PROGRAM[PID]@HOST", "MESSAGES",
                "LOST", "STATE");
        for (size_t i = 0; i < s->npub; i++) {
            const mcl_publisher_stats *p = &s->pub[i];
            char name[160], safe[4 * 26 + 2];
            if (p->program[0] != '\0')
                pub_name(name, sizeof(name), p->publisher, p);
            else
                snprintf(name, sizeof(name), "-");
            logsum_safe_text(safe, name, strlen(name), 26, 26, false);
            fprintf(o, "%016" PRIx64 " %s %10" PRIu64 " %7" PRIu64 " %6s\n", p->publisher, safe,
                    p->messages, p->lost, p->silent ? "silent" : "alive");
        }
    }
    free(line);
    free(rows);
}

// A JSON string: valid UTF-8 kept, invalid bytes as U+FFFD, controls escaped.
static void
json_str(FILE *o, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s);
    fputc('"', o);
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', o);
            fputc(c, o);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(o, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            fputc(c, o);
            i++;
        } else {
            size_t k = logsum_utf8_seq(p + i, n - i);
            if (k == 0) {
                fputs("\\ufffd", o);
                i++;
            } else {
                fwrite(p + i, 1, k, o);
                i += k;
            }
        }
    }
    fputc('"', o);
}

static void
json_num(FILE *o, const char *key, double v)
{
    if (isfinite(v))
        fprintf(o, ",\"%s\":%.6g", key, v);
    else
        fprintf(o, ",\"%s\":null", key);
}

static void
json_time(FILE *o, const char *key, int64_t ns)
{
    char b[64];
    if (ns == 0) {
        fprintf(o, ",\"%s\":null", key);
        return;
    }
    tool_format_time(ns, b, sizeof(b));
    fprintf(o, ",\"%s\":\"%s\"", key, b);
}

static void
json_stats(FILE *o, const mcl_topic_stats *t, int64_t now)
{
    fprintf(o, ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64, t->messages, t->bytes);
    json_num(o, "rate_hz", t->rate_hz);
    json_num(o, "bandwidth_bps", t->bandwidth_bps);
    fprintf(o, ",\"size_min\":%" PRIu64 ",\"size_max\":%" PRIu64, t->size_min, t->size_max);
    json_num(o, "size_mean", t->size_mean);
    json_num(o, "period_ms", t->period_ms);
    json_num(o, "jitter_ms", t->jitter_ms);
    fprintf(o, ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"reordered\":%" PRIu64, t->lost,
            t->duplicates, t->reordered);
    json_time(o, "first_seen", t->first_seen_ns);
    json_time(o, "last_seen", t->last_seen_ns);
    json_num(o, "age_s", t->last_seen_ns ? (double)(now - t->last_seen_ns) / 1e9 : NAN);
    fputs(",\"rate_history\":[", o);
    for (int i = 0; i < 16; i++)
        fprintf(o, "%s%" PRIu32, i ? "," : "", t->rate_history[i]);
    fputc(']', o);
}

static void
print_json(FILE *o, const char *url, const snap *s, double elapsed)
{
    fputs("{\"time\":", o);
    char b[64];
    tool_format_time(s->real_ns, b, sizeof(b));
    fprintf(o, "\"%s\",\"url\":", b);
    json_str(o, url);
    json_num(o, "elapsed_s", elapsed);
    fprintf(o, ",\"totals\":{\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64, s->st.messages,
            s->st.bytes);
    json_num(o, "msg_per_s", s->msg_rate);
    json_num(o, "bytes_per_s", s->byte_rate);
    fprintf(o,
            ",\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"reordered\":%" PRIu64
            ",\"kernel_drops\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"untracked\":%" PRIu64
            ",\"publishers\":%zu,\"topics\":%zu}",
            s->st.lost, s->st.duplicates, s->st.reordered, s->st.kernel_drops, s->st.malformed,
            s->untracked, s->npub, s->nt);
    fputs(",\"topics\":[", o);
    size_t j = 0; // pairs are sorted by topic, as the topics are
    for (size_t i = 0; i < s->nt; i++) {
        const mcl_topic_stats *t = &s->t[i];
        fputs(i ? ",{\"topic\":" : "{\"topic\":", o);
        json_str(o, t->topic);
        fputs(",\"type\":", o);
        json_str(o, t->type);
        fprintf(o, ",\"publishers\":%" PRIu32, t->publishers);
        json_stats(o, t, s->real_ns);
        fputs(",\"by_publisher\":[", o);
        while (j < s->np && strcmp(s->pp[j].topic, t->topic) < 0)
            j++;
        for (bool first = true; j < s->np && strcmp(s->pp[j].topic, t->topic) == 0; j++) {
            const mcl_topic_stats *q = &s->pp[j];
            fprintf(o, "%s{\"publisher\":\"%016" PRIx64 "\",\"type\":", first ? "" : ",",
                    q->publisher);
            json_str(o, q->type);
            json_stats(o, q, s->real_ns);
            fputc('}', o);
            first = false;
        }
        fputs("]}", o);
    }
    fputs("],\"publishers\":[", o);
    for (size_t i = 0; i < s->npub; i++) {
        const mcl_publisher_stats *p = &s->pub[i];
        mcl_raw_msg tmp = {.sender_family = p->family, .sender_port = p->port};
        memcpy(tmp.sender_addr, p->addr, sizeof(tmp.sender_addr));
        char sender[64] = "";
        if (p->family != 0)
            mcl_raw_msg_sender(&tmp, sender, sizeof(sender));
        fprintf(o, "%s{\"publisher\":\"%016" PRIx64 "\",\"host\":", i ? "," : "", p->publisher);
        json_str(o, p->host);
        fputs(",\"program\":", o);
        json_str(o, p->program);
        fprintf(o, ",\"pid\":%" PRIu32 ",\"sender\":", p->pid);
        json_str(o, sender);
        fprintf(o,
                ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lost\":%" PRIu64
                ",\"duplicates\":%" PRIu64 ",\"reordered\":%" PRIu64 ",\"last_seq\":%" PRIu64
                ",\"heartbeat_ms\":%" PRIu32 ",\"heartbeats\":%" PRIu64 ",\"silent\":%s}",
                p->messages, p->bytes, p->lost, p->duplicates, p->reordered, p->last_seq,
                p->heartbeat_ms, p->heartbeats, p->silent ? "true" : "false");
    }
    fputs("]}\n", o);
}

// Waits until the monotonic time t, or a signal.
static void
wait_until(int64_t t)
{
    while (!tool_stop && tool_mono_ns() < t) {
        int64_t step = tool_mono_ns() + 100 * 1000000LL; // (wakes for signals)
        tool_sleep_until(step < t ? step : t);
    }
}

// --- the full-screen monitor -----------------------------------------------------------------

#if MCL_STAT_CURSES

static const char *const sort_names[SORT_N] = {"topic", "Hz", "bandwidth", "lost", "last seen"};

static const mcl_publisher_stats *
find_pub(const snap *s, uint64_t id)
{
    for (size_t i = 0; i < s->npub; i++)
        if (s->pub[i].publisher == id)
            return &s->pub[i];
    return NULL;
}

typedef struct ui {
    mcl_raw_listener *l;
    const char *url;
    snap s;
    bool paused, editing, utf8;
    char filter[65];
    char **expanded; // topics shown with their publishers
    size_t nexpanded;
    char sel_topic[MCL_TOPIC_MAX + 1]; // the selection: a topic, or one of its publishers
    uint64_t sel_pub;                  // 0: the topic row
    size_t sel_index, top;
    const mcl_topic_stats **rows;
    size_t cap_rows;
    char *line;
    size_t line_cap;
} ui;

enum { MAX_EXPANDED = 256 };

static bool
is_expanded(const ui *u, const char *topic)
{
    for (size_t i = 0; i < u->nexpanded; i++)
        if (strcmp(u->expanded[i], topic) == 0)
            return true;
    return false;
}

static void
toggle_expanded(ui *u, const char *topic)
{
    for (size_t i = 0; i < u->nexpanded; i++)
        if (strcmp(u->expanded[i], topic) == 0) {
            free(u->expanded[i]);
            u->expanded[i] = u->expanded[--u->nexpanded];
            return;
        }
    if (u->nexpanded == MAX_EXPANDED)
        return;
    char **ne = realloc(u->expanded, (u->nexpanded + 1) * sizeof(*ne));
    if (ne == NULL)
        return;
    u->expanded = ne;
    if ((u->expanded[u->nexpanded] = strdup(topic)) != NULL)
        u->nexpanded++;
}

// One display row: a topic, or a publisher of an expanded topic.
typedef struct drow {
    const mcl_topic_stats *t;
    bool pub;
} drow;

// Writes s (safe text) at (y, x), cut to the screen; with attribute a.
static void
put(int y, int x, const char *s, attr_t a)
{
    if (y < 0 || y >= LINES || x < 0 || x >= COLS)
        return;
    size_t room = (size_t)(COLS - x), bytes = 0, cols = 0;
    while (s[bytes] != '\0' && cols < room) {
        bytes++;
        while (((uint8_t)s[bytes] & 0xc0) == 0x80) // continuation bytes of one character
            bytes++;
        cols++;
    }
    if (a)
        attron(a);
    mvaddnstr(y, x, s, (int)bytes);
    if (a)
        attroff(a);
}

static bool
ensure_line(ui *u, size_t need)
{
    return reserve((void **)&u->line, &u->line_cap, need, 1);
}

static size_t
build_rows(ui *u, drow **out, size_t *cap)
{
    size_t n = select_rows(&u->s, u->filter, &u->rows, &u->cap_rows);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!reserve((void **)out, cap, k + 1, sizeof(**out)))
            return k;
        (*out)[k++] = (drow){u->rows[i], false};
        if (!is_expanded(u, u->rows[i]->topic))
            continue;
        for (size_t j = 0; j < u->s.np; j++)
            if (strcmp(u->s.pp[j].topic, u->rows[i]->topic) == 0) {
                if (!reserve((void **)out, cap, k + 1, sizeof(**out)))
                    return k;
                (*out)[k++] = (drow){&u->s.pp[j], true};
            }
    }
    return k;
}

static void
draw(ui *u, drow *dr, size_t n)
{
    erase();
    int W = COLS, H = LINES;
    if (W <= 0 || H <= 0)
        return;
    size_t width = (size_t)W > 2000 ? 2000 : (size_t)W;
    if (!ensure_line(u, 4 * (width + 1100) + 512))
        return;
    char *line = u->line;

    // Header: [PAUSED] URL, totals, time.
    char bw[16], clock[16], url[4 * 200 + 1];
    fmt_rate_bytes(bw, sizeof(bw), u->s.byte_rate);
    time_t now_s = (time_t)(u->s.real_ns / 1000000000);
    struct tm tm;
    localtime_r(&now_s, &tm);
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    logsum_safe_text(url, u->url, strlen(u->url), 200, 0, u->utf8);
    size_t silent = 0;
    for (size_t i = 0; i < u->s.npub; i++)
        silent += u->s.pub[i].silent;
    char npub[48];
    snprintf(npub, sizeof(npub), silent ? "%zu pub (%zu silent)" : "%zu pub", u->s.npub, silent);
    snprintf(line, u->line_cap,
             "%smcl-stat %s  %.0f msg/s  %s  %s  drops %" PRIu64 "  malformed %" PRIu64 "  %s",
             u->paused ? "[PAUSED] " : "", url, u->s.msg_rate, bw, npub, u->s.st.kernel_drops,
             u->s.st.malformed, clock);
    put(0, 0, line, A_BOLD);

    // Column widths: the topic column takes what the others leave (at least 8).
    layout c = {.type = 4, .utf8 = u->utf8};
    for (size_t i = 0; i < n; i++) {
        size_t yl = strlen(dr[i].t->type);
        c.type = yl > c.type ? yl : c.type;
    }
    c.type = c.type > 12 ? 12 : c.type;
    c.spark = true;
    size_t longest = 6;
    for (size_t i = 0; i < n; i++) {
        size_t tl = dr[i].pub ? 0 : strlen(dr[i].t->topic); // (publishers span 3 columns)
        longest = tl > longest ? tl : longest;
    }
    size_t fixed = FIXED_COLS + c.type + SPARK_COLS;
    size_t room = width > fixed + 8 ? width - fixed : 8;
    c.topic = longest < room ? longest : room;
    if (c.topic > 200)
        c.topic = 200;
    if (H >= 2) {
        fmt_header(line, &c, sort_by, sort_desc());
        put(1, 0, line, A_UNDERLINE);
    }

    // Body: rows 2 .. H-2, scrolled to keep the selection in view.
    int body = H - 3 > 0 ? H - 3 : 0;
    if (u->sel_index >= n)
        u->sel_index = n ? n - 1 : 0;
    if (u->sel_index < u->top)
        u->top = u->sel_index;
    if (body > 0 && u->sel_index >= u->top + (size_t)body)
        u->top = u->sel_index - (size_t)body + 1;
    if (u->top > u->sel_index)
        u->top = u->sel_index;
    if (n == 0 && body > 0)
        put(2, 0,
            u->filter[0] ? "(no topic matches the filter)" : "(no messages yet)", A_DIM);
    for (int r = 0; r < body && u->top + (size_t)r < n; r++) {
        const drow *d = &dr[u->top + (size_t)r];
        char pubs[16] = "", name[256];
        if (d->pub) {
            const mcl_publisher_stats *p = find_pub(&u->s, d->t->publisher);
            char pn[200];
            pub_name(pn, sizeof(pn), d->t->publisher, p);
            snprintf(name, sizeof(name), "  %s%s", pn, p != NULL && p->silent ? " (silent)" : "");
            fmt_row(line, &c, name, NULL, NULL, d->t, u->s.real_ns);
        } else {
            snprintf(pubs, sizeof(pubs), "%" PRIu32, d->t->publishers);
            const char *topic = d->t->topic[0] ? d->t->topic : "(none)";
            char mark[MCL_TOPIC_MAX + 4];
            snprintf(mark, sizeof(mark), "%s%s", is_expanded(u, d->t->topic) ? "-" : "", topic);
            fmt_row(line, &c, is_expanded(u, d->t->topic) ? mark : topic,
                    d->t->type[0] ? d->t->type : "-", pubs, d->t, u->s.real_ns);
        }
        bool sel = u->top + (size_t)r == u->sel_index;
        if (sel) { // the whole width highlighted
            size_t l = strlen(line);
            while (l < width && l + 1 < u->line_cap)
                line[l++] = ' ';
            line[l] = '\0';
        }
        put(2 + r, 0, line, sel ? A_REVERSE : 0);
    }

    // Status line: keys, sort, filter.
    if (H >= 3) {
        char f[4 * 64 + 1];
        logsum_safe_text(f, u->filter, strlen(u->filter), 64, 0, u->utf8);
        if (u->editing)
            snprintf(line, u->line_cap, "filter: %s_   (Enter keeps it, Esc clears it)", f);
        else
            snprintf(line, u->line_cap,
                     "sort: %s %s%s%s  %zu topic%s  q quit  p pause  s sort  r reverse  / filter"
                     "  Enter publishers",
                     sort_names[sort_by], sort_desc() ? "v" : "^", f[0] ? "  filter: " : "", f,
                     u->s.nt, u->s.nt == 1 ? "" : "s");
        put(H - 1, 0, line, u->editing ? A_BOLD : 0);
    }
    refresh();
}

// Finds the selection's row (by topic and publisher) after the rows changed.
static void
locate(ui *u, const drow *dr, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(dr[i].t->topic, u->sel_topic) == 0 &&
            (dr[i].pub ? dr[i].t->publisher : 0) == u->sel_pub) {
            u->sel_index = i;
            return;
        }
}

static void
remember(ui *u, const drow *dr, size_t n)
{
    if (u->sel_index < n) {
        snprintf(u->sel_topic, sizeof(u->sel_topic), "%s", dr[u->sel_index].t->topic);
        u->sel_pub = dr[u->sel_index].pub ? dr[u->sel_index].t->publisher : 0;
    }
}

// Returns false to quit.
static bool
key(ui *u, int ch, const drow *dr, size_t n)
{
    int page = LINES - 3 > 1 ? LINES - 3 : 1;
    if (u->editing) {
        size_t fl = strlen(u->filter);
        if (ch == 27) { // Esc
            u->filter[0] = '\0';
            u->editing = false;
        } else if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
            u->editing = false;
        } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
            if (fl > 0)
                u->filter[fl - 1] = '\0';
        } else if (ch >= 0x20 && ch < 0x7f && fl + 1 < sizeof(u->filter)) {
            u->filter[fl] = (char)ch;
            u->filter[fl + 1] = '\0';
        }
        return true;
    }
    switch (ch) {
    case 'q':
    case 'Q':
        return false;
    case 'p':
    case 'P':
        u->paused = !u->paused;
        break;
    case 's':
    case 'S':
        sort_by = (sort_by + 1) % SORT_N;
        sort_reverse = false;
        break;
    case 'r':
    case 'R':
        sort_reverse = !sort_reverse;
        break;
    case '/':
        u->editing = true;
        break;
    case 27:
        u->filter[0] = '\0';
        break;
    case '\n':
    case '\r':
    case ' ':
    case KEY_ENTER:
        if (u->sel_index < n) {
            toggle_expanded(u, dr[u->sel_index].t->topic);
            u->sel_pub = 0; // the selection moves to the topic row
            snprintf(u->sel_topic, sizeof(u->sel_topic), "%s", dr[u->sel_index].t->topic);
            return true;
        }
        break;
    case KEY_UP:
    case 'k':
        if (u->sel_index > 0)
            u->sel_index--;
        break;
    case KEY_DOWN:
    case 'j':
        if (u->sel_index + 1 < n)
            u->sel_index++;
        break;
    case KEY_PPAGE:
        u->sel_index = u->sel_index > (size_t)page ? u->sel_index - (size_t)page : 0;
        break;
    case KEY_NPAGE:
        u->sel_index = u->sel_index + (size_t)page < n ? u->sel_index + (size_t)page : (n ? n - 1 : 0);
        break;
    case KEY_HOME:
        u->sel_index = 0;
        break;
    case KEY_END:
        u->sel_index = n ? n - 1 : 0;
        break;
    default:
        return true;
    }
    remember(u, dr, n);
    return true;
}

static int
run_tui(mcl_raw_listener *l, const char *url, bool utf8)
{
    // Keys come from the terminal, also when stdin is something else (a background job's
    // /dev/null): a monitor whose getch() met EOF would spin.
    FILE *in = isatty(STDIN_FILENO) ? stdin : fopen("/dev/tty", "r");
    if (in == NULL)
        return -1;
    SCREEN *scr = newterm(NULL, stdout, in);
    if (scr == NULL) {
        if (in != stdin)
            fclose(in);
        return -1; // unknown terminal: the caller prints a table instead
    }
    set_term(scr);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);
    timeout(100); // getch waits at most 100 ms: signals and the redraw clock are seen
    ui u = {.l = l, .url = url, .utf8 = utf8, .s = {.mono_ns = tool_mono_ns()}};
    drow *dr = NULL;
    size_t cap = 0, n = 0;
    int status = EXIT_OK;
    int64_t next = 0;
    bool dirty = true;
    while (!tool_stop) {
        int64_t now = tool_mono_ns();
        if (!u.paused && now >= next) {
            remember(&u, dr, n); // (the rows point into the snapshot that take() replaces)
            n = 0;
            if (!take(l, &u.s)) {
                status = EXIT_RUNTIME; // (said once the terminal is back)
                break;
            }
            next = now + 500 * 1000000LL;
            dirty = true;
        }
        if (dirty) {
            n = build_rows(&u, &dr, &cap);
            locate(&u, dr, n);
            draw(&u, dr, n);
            dirty = false;
        }
        int ch = getch();
        if (ch == ERR)
            continue;
        if (ch == KEY_RESIZE) {
            dirty = true;
            continue;
        }
        if (!key(&u, ch, dr, n))
            break;
        // Apply at once (sort, filter, expansion change the rows).
        n = build_rows(&u, &dr, &cap);
        locate(&u, dr, n);
        if (u.sel_index >= n)
            u.sel_index = n ? n - 1 : 0;
        remember(&u, dr, n);
        draw(&u, dr, n);
    }
    endwin();
    delscreen(scr);
    if (in != stdin)
        fclose(in);
    if (status != EXIT_OK)
        tool_err(prog, "out of memory");
    for (size_t i = 0; i < u.nexpanded; i++)
        free(u.expanded[i]);
    free(u.expanded);
    free(u.rows);
    free(u.line);
    free(dr);
    snap_free(&u.s);
    return status;
}

#endif // MCL_STAT_CURSES

// --- main ------------------------------------------------------------------------------------

static void
on_msg(const mcl_raw_msg *m, void *user)
{
    (void)m; // the library keeps the statistics: nothing to do per message
    (void)user;
}

static int
report_write_error(FILE *o)
{
    if (fflush(o) != 0 || ferror(o)) {
        tool_err(prog, "cannot write the output");
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    const char *url = NULL;
    char **topics = NULL;
    size_t ntopics = 0;
    bool json = false, verbose = false, have_once = false, ascii = false;
    double once = 5, interval = 1;
    uint64_t count = 0;
    const char *files[64];
    int nfiles = 0;
    enum { OPT_ONCE = 256, OPT_JSON, OPT_INTERVAL, OPT_ASCII, OPT_HELP, OPT_VERSION };
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"once", required_argument, NULL, OPT_ONCE},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"interval", required_argument, NULL, OPT_INTERVAL},
                                         {"count", required_argument, NULL, 'n'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"ascii", no_argument, NULL, OPT_ASCII},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, OPT_HELP},
                                         {"version", no_argument, NULL, OPT_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c, status = EXIT_OK;
    while ((c = tool_getopt(prog, argc, argv, "u:t:n:f:v", opts)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 't':
            if ((status = tool_add_topics(prog, &topics, &ntopics, optarg)) != EXIT_OK)
                goto out;
            break;
        case OPT_ONCE:
            if (!tool_parse_double(optarg, 0.001, 1e7, &once)) {
                tool_err(prog, "invalid --once '%s' (seconds > 0)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            have_once = true;
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_INTERVAL:
            if (!tool_parse_double(optarg, 0.01, 1e7, &interval)) {
                tool_err(prog, "invalid --interval '%s' (seconds, at least 0.01)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case 'n':
            if (!tool_parse_u64(optarg, UINT64_MAX, &count) || count == 0) {
                tool_err(prog, "invalid count '%s' (a whole number > 0)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case 'f':
            if (nfiles == 64) {
                tool_err(prog, "at most 64 logs");
                status = EXIT_USAGE;
                goto out;
            }
            files[nfiles++] = optarg;
            break;
        case OPT_ASCII:
            ascii = true;
            break;
        case 'v':
            verbose = true;
            break;
        case OPT_HELP:
            usage(stdout);
            goto out;
        case OPT_VERSION:
            tool_version(prog); // (--help says when it has no full-screen monitor)
            goto out;
        default:
            status = EXIT_USAGE;
            goto out;
        }
    }
    if (optind < argc) {
        tool_err(prog, "unexpected argument '%s'", argv[optind]);
        status = EXIT_USAGE;
        goto out;
    }
    if (nfiles > 0 && (json || have_once || count > 0 || url != NULL)) {
        tool_err(prog, "-f summarises a log: not with -u, --once, --json or -n");
        status = EXIT_USAGE;
        goto out;
    }
    if (count > 0 && !json) {
        tool_err(prog, "-n counts the objects of --json");
        status = EXIT_USAGE;
        goto out;
    }
    // Nothing can be shown on a closed stdout (and the listener's socket would take its
    // descriptor): say so and stop.
    if (fcntl(STDOUT_FILENO, F_GETFL) < 0) {
        tool_err(prog, "standard output is closed");
        status = EXIT_RUNTIME;
        goto out;
    }
    tool_log_to_stderr(prog, verbose);
    tool_signals();

    if (nfiles > 0) {
        status = logsum_report(prog, files, nfiles, topics, ntopics, stdout);
        goto out;
    }

    setlocale(LC_ALL, "");
    bool utf8 = !ascii && strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    mcl_connection *conn = NULL;
    if ((status = tool_connection(prog, url, &conn)) != EXIT_OK)
        goto out;
    mcl_raw_listener *l = NULL;
    mcl_err rv = mcl_raw_listener_open(&l, conn, (const char *const *)topics, ntopics);
    if (rv != MCL_OK) {
        status = tool_open_error(prog, "cannot listen on", mcl_connection_url(conn), rv);
        mcl_connection_free(conn);
        goto out;
    }
    mcl_listener_stats lst;
    if (mcl_raw_listener_stats(l, &lst) == MCL_OK)
        tool_check_rcvbuf(prog, conn, lst.rcvbuf);
    const char *lurl = mcl_raw_listener_url(l);
    if (verbose)
        tool_err(prog, "listening on %s", lurl);
    // The listener thread receives; this thread only reads statistics. It takes no signal
    // (they interrupt the UI's waits, not its receive calls).
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    if ((rv = mcl_raw_listener_subscribe(l, on_msg, NULL)) == MCL_OK)
        rv = mcl_raw_listener_start(l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv != MCL_OK) {
        tool_err(prog, "cannot start the listener: %s", mcl_strerror(rv));
        status = EXIT_RUNTIME;
        goto done;
    }
    int64_t start = tool_mono_ns();
    snap s = {.mono_ns = start};
    if (json) {
        if (have_once) {
            interval = once;
            count = 1;
        }
        for (uint64_t k = 0; !tool_stop && (count == 0 || k < count); k++) {
            wait_until(start + (int64_t)((double)(k + 1) * interval * 1e9));
            if (tool_stop)
                break;
            if (!take(l, &s)) {
                tool_err(prog, "out of memory");
                status = EXIT_RUNTIME;
                break;
            }
            print_json(stdout, lurl, &s, (double)(s.mono_ns - start) / 1e9);
            if ((status = report_write_error(stdout)) != EXIT_OK)
                break;
        }
    } else {
        bool table = have_once || !isatty(STDOUT_FILENO);
#if MCL_STAT_CURSES
        if (!table) {
            int r = run_tui(l, lurl, utf8);
            if (r < 0) {
                tool_err(prog, "cannot use this terminal (TERM=%s, no /dev/tty?): printing a "
                               "table after %.3g s",
                         getenv("TERM") ? getenv("TERM") : "", once);
                table = true;
            } else {
                status = r;
            }
        }
#else
        (void)utf8;
        table = true; // built without ncurses
#endif
        if (table) {
            wait_until(start + (int64_t)(once * 1e9));
            if (!take(l, &s)) {
                tool_err(prog, "out of memory");
                status = EXIT_RUNTIME;
            } else {
                print_table(stdout, lurl, &s, (double)(s.mono_ns - start) / 1e9);
                status = report_write_error(stdout);
            }
        }
    }
    snap_free(&s);
done:
    mcl_raw_listener_free(l);
    mcl_connection_free(conn);
out:
    tool_free_list(topics, ntopics);
    return status;
}
