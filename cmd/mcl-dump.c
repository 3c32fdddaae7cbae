// SPDX-License-Identifier: BSD-3-Clause
// mcl-dump: print the messages on a connection, one line each (or JSON Lines).
#define _GNU_SOURCE
#include "common.h"
#include "logsum.h"

#include <pthread.h>

#include <getopt.h>
#include <math.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <langinfo.h>
#include <locale.h>
#include <sys/ioctl.h>

static const char *prog = "mcl-dump";

// The human format's line width (--columns; 0: no limit). A line longer than `columns` is cut
// and ends in the ellipsis; with a limit the line is also the compact one (time of day, no
// padding). By default the terminal's width when stdout is one (asked again for each line, so
// a resized window is followed), else no limit.
static size_t columns;
static bool columns_auto;
static const char *ellipsis = "...";
static size_t ellipsis_cols = 3;

// --json's flags for mcl_msg_to_json(): --json-base64 adds MCL_JSON_NDARRAY_BASE64.
static int json_flags = MCL_JSON_COMPACT;

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-dump [OPTION]...\n"
            "       mcl-dump -f LOG [-F] [--start SEC] [--end SEC] [OPTION]...\n"
            "       mcl-dump --list URL\n"
            "Print the messages published on an mcl connection, or those of a log, one line each.\n"
            "\n"
            "  -u, --url URL        connection (default: $MCL_URL, else %s)\n"
            "  -t, --topic T[,T]    only these topics; 'imu/*' matches a prefix (repeatable)\n"
            "  -n, --count N        exit after N messages (exit 1 if the timeout comes first)\n"
            "      --timeout SEC    exit after SEC seconds\n"
            "      --json           JSON Lines instead of the human format\n"
            "      --json-base64    --json with typed arrays' data as base64 of their little-\n"
            "                       endian bytes (\"base64\" instead of nested \"data\" lists:\n"
            "                       about 4/3 of the bytes); mcl-pub --json reads both\n"
            "      --raw            do not decode msgpack messages (show text or hex)\n"
            "  -f, --file LOG       print a log instead of live traffic (repeatable: merged in time\n"
            "                       order; mcl or Python MCL logs, split series, directories), or a\n"
            "                       remote log: zmq+tcp://HOST:PORT/NAME (mcl-log --serve; alone)\n"
            "  -F, --follow         with -f: at the end, wait for more (a log being recorded)\n"
            "      --start SEC      with -f: begin SEC seconds after the log's first message\n"
            "      --end SEC        with -f: stop SEC seconds after it\n"
            "      --list URL       list the logs a log server offers (name, then its info)\n"
            "      --broker URL/CH  read channel CH of an mcl-broker (e.g. its statistics:\n"
            "                       zmq+tcp://HOST:5800/mcl.broker.stats); with --every N,\n"
            "                       --max-rate R (decimated at the broker), --key K (private)\n"
            "      --csv F[,F]      one CSV line (CRLF) per message with these fields, as MCL's\n"
            "                       dump_to_csv writes them; messages that are not maps are skipped;\n"
            "                       a typed array is DTYPE[SHAPE]:BASE64 (little-endian bytes)\n"
            "      --stats          on stderr at exit: per publisher received/lost/duplicates,\n"
            "                       then per topic (with -f: the log's topics: count, rate,\n"
            "                       type, sizes; as mcl-stat -f)\n"
            "  -q, --quiet          do not print messages (with --stats: count only)\n"
            "  -w, --width N        bytes of payload shown in the human format (default 48)\n"
            "      --columns N      human format: each line at most N columns, cut with '...'\n"
            "                       ('…' on a UTF-8 terminal); default: the terminal's width\n"
            "                       when stdout is one, else no limit; 0: no limit, long format\n"
            "  -v, --verbose        library debug messages on stderr\n"
            "  -h, --help           this text\n"
            "      --version        version\n"
            "\n"
            "Human format: TIME TOPIC SIZE PUBLISHER/SEQ PAYLOAD. A payload that is a msgpack map\n"
            "(an mcl message) is shown as its name and KEY=VALUE fields (a typed array as\n"
            "DTYPE[SHAPE] and its first 4 elements: float32[1024] 0.5 1.25 2 -1 ...); otherwise\n"
            "as text when it is printable UTF-8, else hex. With a column limit (a terminal, or --columns N)\n"
            "the line is compact: TIME is the time of day (UTC, ms), fields are not padded, and\n"
            "a line too long is cut; a pipe or a file gets the long format, uncut.\n"
            "JSON: {\"time\":..., \"topic\":..., \"size\":..., \"publisher\":\"<hex>\", \"seq\":...,\n"
            "\"sender\":\"ADDR:PORT\" (null when unknown: zmq, logs), then \"msg\":{...}\n"
            "(docs/json.md), \"text\":... or \"base64\":...}.\n"
            "A remote log is filtered by its server (-t, --start, --end); --count and --timeout\n"
            "apply to logs too.\n"
            "\n" TOOL_HELP_EXIT,
            MCL_DEFAULT_URL);
}

// Printable text: valid UTF-8 with no control characters other than tab, CR and LF.
static bool
is_text(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
            return false;
        if (p[i] == 0x7f)
            return false;
        size_t k = tool_utf8_len(p + i, n - i, NULL);
        if (k == 0)
            return false;
        if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) // C1 controls (U+0080..U+009F)
            return false;
        i += k;
    }
    return true;
}

// Writes bytes for a terminal: printable UTF-8 as is, anything else as \xNN (or \n, \t...),
// so no received byte can drive the terminal.
static void
print_safe(FILE *o, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = p[i] >= 0x20 && p[i] != 0x7f ? tool_utf8_len(p + i, n - i, NULL) : 0;
        if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
            k = 0;
        if (k > 0) {
            fwrite(p + i, 1, k, o);
            i += k;
            continue;
        }
        switch (p[i]) {
        case '\n':
            fputs("\\n", o);
            break;
        case '\r':
            fputs("\\r", o);
            break;
        case '\t':
            fputs("\\t", o);
            break;
        default:
            fprintf(o, "\\x%02x", p[i]);
        }
        i++;
    }
}

static void
json_string(FILE *o, const char *s, size_t n)
{
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", o);
            break;
        case '\\':
            fputs("\\\\", o);
            break;
        case '\n':
            fputs("\\n", o);
            break;
        case '\r':
            fputs("\\r", o);
            break;
        case '\t':
            fputs("\\t", o);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(o, "\\u%04x", c);
            else
                fputc(c, o);
        }
    }
    fputc('"', o);
}

static void
base64(FILE *o, const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        fputc(tab[v >> 18], o);
        fputc(tab[(v >> 12) & 63], o);
        fputc(tab[(v >> 6) & 63], o);
        fputc(tab[v & 63], o);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        fputc(tab[v >> 18], o);
        fputc(tab[(v >> 12) & 63], o);
        fputs("==", o);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        fputc(tab[v >> 18], o);
        fputc(tab[(v >> 12) & 63], o);
        fputc(tab[(v >> 6) & 63], o);
        fputc('=', o);
    }
}

// A payload that is exactly one msgpack map decodes as a message; anything else is shown raw.
static mcl_msg *
try_decode(const mcl_raw_msg *m)
{
    const uint8_t *p = m->payload;
    if (m->len == 0 || !((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf))
        return NULL;
    mcl_msg *msg = NULL;
    char why[256];
    if (mcl_msg_decode(&msg, p, m->len, NULL, why, sizeof(why)) != MCL_OK) {
        tool_err(prog, "message %" PRIu64 " is undecodable, shown raw: %s", m->seq, why);
        return NULL;
    }
    return msg;
}

// A typed array's dtype and shape: "float32[1024]", "uint8[480,640]", "float64[]" (0-d).
static void
nd_head(FILE *o, mcl_dtype dt, size_t ndim, const uint64_t *shape)
{
    fprintf(o, "%s[", mcl_dtype_name(dt));
    for (size_t k = 0; k < ndim; k++)
        fprintf(o, "%s%" PRIu64, k ? "," : "", shape[k]);
    fputc(']', o);
}

// Element i of a typed array as text (floats as %.6g, like float fields).
static void
nd_elem(FILE *o, mcl_dtype dt, const uint8_t *p)
{
    union {
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        float f;
        double d;
    } x;
    memcpy(&x, p, mcl_dtype_size(dt));
    switch (dt) {
    case MCL_DTYPE_INT8: fprintf(o, "%d", x.i8); break;
    case MCL_DTYPE_INT16: fprintf(o, "%d", x.i16); break;
    case MCL_DTYPE_INT32: fprintf(o, "%" PRId32, x.i32); break;
    case MCL_DTYPE_INT64: fprintf(o, "%" PRId64, x.i64); break;
    case MCL_DTYPE_UINT8: fprintf(o, "%u", x.u8); break;
    case MCL_DTYPE_UINT16: fprintf(o, "%u", x.u16); break;
    case MCL_DTYPE_UINT32: fprintf(o, "%" PRIu32, x.u32); break;
    case MCL_DTYPE_UINT64: fprintf(o, "%" PRIu64, x.u64); break;
    case MCL_DTYPE_FLOAT32: fprintf(o, "%.6g", (double)x.f); break;
    case MCL_DTYPE_FLOAT64: fprintf(o, "%.6g", x.d); break;
    case MCL_DTYPE_BOOL: fputs(x.u8 ? "true" : "false", o); break;
    default: fputc('?', o);
    }
}

// The human format's summary: "float32[1024] 0.5 1.25 2 ..." (the first ND_SHOWN elements in
// row-major order).
enum { ND_SHOWN = 4 };
static void
nd_summary(FILE *o, const mcl_value *v)
{
    mcl_dtype dt;
    size_t ndim, nbytes;
    const uint64_t *shape;
    const void *data;
    if (mcl_value_get_ndarray(v, &dt, &ndim, &shape, &data, &nbytes) != MCL_OK)
        return;
    nd_head(o, dt, ndim, shape);
    size_t es = mcl_dtype_size(dt), n = nbytes / es;
    for (size_t i = 0; i < n && i < ND_SHOWN; i++) {
        fputc(' ', o);
        nd_elem(o, dt, (const uint8_t *)data + i * es);
    }
    if (n > ND_SHOWN)
        fputs(" ...", o);
}

static void
print_value(FILE *o, const mcl_value *v, int width)
{
    char buf[64];
    const char *s;
    size_t n;
    const void *b;
    int64_t i;
    uint64_t u;
    double d;
    bool t;
    switch (mcl_value_type(v)) {
    case MCL_TYPE_BOOL:
        mcl_value_get_bool(v, &t);
        snprintf(buf, sizeof(buf), "%s", t ? "true" : "false");
        break;
    case MCL_TYPE_INT:
        if (mcl_value_get_int(v, &i) == MCL_OK)
            snprintf(buf, sizeof(buf), "%lld", (long long)i);
        else if (mcl_value_get_uint(v, &u) == MCL_OK)
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)u);
        break;
    case MCL_TYPE_FLOAT:
        mcl_value_get_double(v, &d);
        snprintf(buf, sizeof(buf), "%.6g", d);
        break;
    case MCL_TYPE_STR:
        mcl_value_get_str(v, &s, &n);
        fputc('"', o);
        print_safe(o, (const uint8_t *)s, n < 32 ? n : 32);
        fputs(n > 32 ? "...\"" : "\"", o);
        return;
    case MCL_TYPE_BIN:
        mcl_value_get_bin(v, &b, &n);
        snprintf(buf, sizeof(buf), "<%zu B>", n);
        break;
    case MCL_TYPE_ARRAY:
        snprintf(buf, sizeof(buf), "[%zu]", mcl_value_count(v));
        break;
    case MCL_TYPE_MAP:
        snprintf(buf, sizeof(buf), "{%zu}", mcl_value_count(v));
        break;
    case MCL_TYPE_NDARRAY: {
        char *text = NULL;
        size_t tl = 0;
        FILE *mf = open_memstream(&text, &tl);
        if (mf != NULL) {
            nd_summary(mf, v);
            fclose(mf);
        }
        fprintf(o, "%-*s", width, text != NULL ? text : "ndarray");
        free(text);
        return;
    }
    default:
        snprintf(buf, sizeof(buf), "nil");
    }
    fprintf(o, "%-*s", width, buf);
}

// Fields as aligned KEY=VALUE columns; "name" leads, "timestamp" is left out (the line starts
// with the receive time; --json shows everything).
static void
print_fields(FILE *o, const mcl_msg *msg)
{
    const char *name = mcl_msg_name(msg);
    if (name != NULL) {
        print_safe(o, (const uint8_t *)name, strlen(name));
        if (columns == 0)
            fprintf(o, "%*s", strlen(name) < 12 ? (int)(12 - strlen(name)) : 1, "");
    }
    const mcl_value *f = mcl_msg_fields(msg);
    for (size_t i = 0; i < mcl_value_count(f); i++) {
        const char *k;
        const mcl_value *v = mcl_value_entry(f, i, &k);
        if (strcmp(k, "name") == 0 || strcmp(k, "timestamp") == 0)
            continue;
        fputc(' ', o);
        print_safe(o, (const uint8_t *)k, strlen(k));
        fputc('=', o);
        print_value(o, v, columns > 0 ? 0 : 12); // compact: no padding
    }
}

static void
print_json(FILE *o, const mcl_raw_msg *m, const mcl_msg *msg)
{
    char t[40], sender[64];
    tool_format_time(m->recv_realtime_ns, t, sizeof(t));
    mcl_raw_msg_sender(m, sender, sizeof(sender));
    fprintf(o, "{\"time\":\"%s\",", t);
    if (is_text((const uint8_t *)m->topic, m->topic_len)) {
        fputs("\"topic\":", o);
        json_string(o, m->topic, m->topic_len);
    } else { // JSON strings must be Unicode: keep the exact bytes in base64
        fputs("\"topic_base64\":\"", o);
        base64(o, (const uint8_t *)m->topic, m->topic_len);
        fputc('"', o);
    }
    fprintf(o, ",\"size\":%zu,\"publisher\":\"%016" PRIx64 "\",\"seq\":%" PRIu64 ",\"sender\":",
            m->len, m->publisher, m->seq);
    if (m->sender_family == 0) // zmq, or a log: the sender's address is not known
        fputs("null,", o);
    else
        fprintf(o, "\"%s\",", sender);
    char *js = NULL;
    if (msg != NULL && mcl_msg_to_json(msg, json_flags, &js) == MCL_OK) {
        fputs("\"msg\":", o);
        fputs(js, o);
        mcl_free(js);
    } else if (is_text(m->payload, m->len)) {
        fputs("\"text\":", o);
        json_string(o, m->payload, m->len);
    } else {
        fputs("\"base64\":\"", o);
        base64(o, m->payload, m->len);
        fputc('"', o);
    }
    fputs("}\n", o);
}

static void
print_human(FILE *o, const mcl_raw_msg *m, const mcl_msg *msg, size_t width)
{
    char t[40];
    tool_format_time(m->recv_realtime_ns, t, sizeof(t));
    const uint8_t *p = m->payload;
    const char *tod = strchr(t, 'T'); // compact: the time of day, to the millisecond
    if (columns > 0 && tod != NULL)
        fprintf(o, "%.12s  ", tod + 1);
    else
        fprintf(o, "%s  ", t);
    if (m->topic_len == 0)
        fputc('-', o);
    else
        print_safe(o, (const uint8_t *)m->topic, m->topic_len);
    size_t tw = columns > 0 ? 12 : 16, tl = m->topic_len ? m->topic_len : 1;
    fprintf(o, "%*s %*zu B  %08" PRIx64 "/%-*" PRIu64 "  ", tl < tw ? (int)(tw - tl) : 0, "",
            columns > 0 ? 7 : 8, m->len, (uint64_t)(m->publisher >> 32), columns > 0 ? 4 : 6,
            m->seq);
    size_t n = m->len < width ? m->len : width;
    if (msg != NULL) {
        print_fields(o, msg);
        fputc('\n', o);
        return;
    }
    if (is_text(p, m->len) || (m->len > width && is_text(p, n))) {
        fputc('"', o);
        print_safe(o, p, n);
        fputc('"', o);
    } else {
        for (size_t i = 0; i < n; i++)
            fprintf(o, "%02x", p[i]);
    }
    if (m->len > n)
        fputs("...", o);
    fputc('\n', o);
}

// A double as Python's repr() prints it, so that --csv matches MCL's dump_to_csv byte for
// byte: the shortest digits that read back the same, positional for exponents -4..15 ("0.01",
// "10.0", "1000000000000000.0"), scientific otherwise ("1e+16", "1.5e-05").
static void
print_pyfloat(FILE *o, double d)
{
    if (isnan(d) || isinf(d)) {
        fputs(isnan(d) ? "nan" : d > 0 ? "inf" : "-inf", o);
        return;
    }
    char sci[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(sci, sizeof(sci), "%.*e", prec - 1, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    int exp10 = atoi(strchr(sci, 'e') + 1);
    if (exp10 < -4 || exp10 >= 16) {
        fputs(sci, o); // C writes at least two exponent digits, as Python does
        return;
    }
    char pos[64];
    int decimals = prec - 1 - exp10;
    snprintf(pos, sizeof(pos), "%.*f", decimals > 0 ? decimals : 0, d);
    fputs(pos, o);
    if (strchr(pos, '.') == NULL)
        fputs(".0", o);
}

// A CSV field as Python's csv module writes it (QUOTE_MINIMAL).
static void
print_csv_text(FILE *o, const char *s, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        fwrite(s, 1, n, o);
        return;
    }
    fputc('"', o);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', o);
        fputc(s[i], o);
    }
    fputc('"', o);
}

static void
print_csv(FILE *o, const mcl_msg *msg, char **fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            fputc(',', o);
        const mcl_value *v = mcl_msg_get(msg, fields[i]);
        const char *s;
        size_t len;
        int64_t iv;
        uint64_t uv;
        double d;
        bool b;
        switch (mcl_value_type(v)) {
        case MCL_TYPE_FLOAT:
            mcl_value_get_double(v, &d);
            print_pyfloat(o, d);
            break;
        case MCL_TYPE_INT:
            if (mcl_value_get_int(v, &iv) == MCL_OK)
                fprintf(o, "%lld", (long long)iv);
            else if (mcl_value_get_uint(v, &uv) == MCL_OK)
                fprintf(o, "%llu", (unsigned long long)uv);
            break;
        case MCL_TYPE_STR:
            mcl_value_get_str(v, &s, &len);
            print_csv_text(o, s, len);
            break;
        case MCL_TYPE_BOOL:
            mcl_value_get_bool(v, &b);
            fputs(b ? "True" : "False", o);
            break;
        case MCL_TYPE_NIL:
            if (v != NULL)
                fputs("None", o);
            break;
        case MCL_TYPE_NDARRAY: { // DTYPE[D0,D1,...]:BASE64 of the little-endian bytes
            char *text = NULL;
            size_t tl = 0;
            FILE *mf = open_memstream(&text, &tl);
            mcl_dtype dt;
            size_t ndim, nbytes;
            const uint64_t *shape;
            const void *data;
            if (mf != NULL &&
                mcl_value_get_ndarray(v, &dt, &ndim, &shape, &data, &nbytes) == MCL_OK) {
                nd_head(mf, dt, ndim, shape);
                fputc(':', mf);
                base64(mf, data, nbytes); // (host order: little-endian on every host we build)
            }
            if (mf != NULL)
                fclose(mf);
            if (text != NULL)
                print_csv_text(o, text, tl);
            free(text);
            break;
        }
        default:
            fputs("...", o);
        }
    }
    fputs("\r\n", o); // RFC 4180 line ends, as Python's csv module (and MCL's files) write them
}

// Terminal columns of a code point: 0 for combining marks, 2 for East Asian wide ones and
// emoji, else 1 (a small wcwidth() that needs no locale).
static size_t
cp_columns(uint32_t c)
{
    if ((c >= 0x300 && c <= 0x36f) || (c >= 0x200b && c <= 0x200f) || (c >= 0xfe00 && c <= 0xfe0f))
        return 0;
    if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
        (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
        (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
        (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
        (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd))
        return 2;
    return 1;
}

// Writes line s (n bytes, no '\n': print_safe's output, so printable UTF-8) cut to cols
// columns: a longer one keeps what fits before the ellipsis.
static void
put_cut(FILE *o, const char *s, size_t n, size_t cols)
{
    size_t w = 0, cut = n;
    bool fits = true;
    for (size_t i = 0; i < n;) {
        uint32_t cp = '?';
        size_t k = tool_utf8_len((const uint8_t *)s + i, n - i, &cp);
        if (k == 0)
            k = 1;
        size_t cw = cp_columns(cp);
        if (cut == n && w + cw + ellipsis_cols > cols)
            cut = i; // where the ellipsis goes if the line is too long
        if ((w += cw) > cols) {
            fits = false;
            break;
        }
        i += k;
    }
    if (fits) {
        fwrite(s, 1, n, o);
    } else {
        while (cut > 0 && s[cut - 1] == ' ') // not "x= …" but "x=…"
            cut--;
        fwrite(s, 1, cut, o);
        fputs(ellipsis, o);
    }
}

// The terminal's width for --columns' default (at least 20), or 0 when stdout is none.
static size_t
terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
        return 0;
    return ws.ws_col < 20 ? 20 : ws.ws_col;
}

static void
print_one(const mcl_raw_msg *m, bool json, size_t width, bool raw, char **csv, size_t ncsv)
{
    mcl_msg *msg = raw ? NULL : try_decode(m);
    if (ncsv > 0) {
        if (msg != NULL)
            print_csv(stdout, msg, csv, ncsv);
    } else if (json) {
        print_json(stdout, m, msg);
    } else if (columns > 0) { // the line in memory first, then cut to the width
        if (columns_auto) {
            size_t c = terminal_columns();
            columns = c > 0 ? c : columns;
        }
        char *line = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&line, &len);
        if (mem != NULL) {
            print_human(mem, m, msg, width);
            if (fclose(mem) == 0 && line != NULL) {
                put_cut(stdout, line, len > 0 && line[len - 1] == '\n' ? len - 1 : len, columns);
                fputc('\n', stdout);
            }
            free(line);
        } else { // (out of memory: the line uncut)
            print_human(stdout, m, msg, width);
        }
    } else {
        print_human(stdout, m, msg, width);
    }
    mcl_msg_free(msg);
}

static int
dump_logs(const char **files, int nfiles, const tool_log_options *lo, bool json, bool quiet,
          size_t width, bool raw, char **csv, size_t ncsv, bool have_count, uint64_t count,
          double timeout, bool stats)
{
    tool_log *l;
    int status = tool_log_open(prog, &l, files, nfiles, lo);
    if (status != EXIT_OK)
        return status;
    logsum *sum = NULL; // --stats: the per-topic table of what was read
    if (stats && (sum = logsum_new()) == NULL) {
        tool_err(prog, "out of memory");
        tool_log_close(l);
        return EXIT_RUNTIME;
    }
    int64_t deadline = timeout > 0 ? tool_mono_ns() + (int64_t)(timeout * 1e9) : INT64_MAX;
    bool tty = isatty(STDOUT_FILENO);
    uint64_t n = 0;
    bool ended = false;
    while ((!have_count || n < count) && !tool_stop) {
        int64_t now = tool_mono_ns();
        if (now >= deadline)
            break;
        int64_t left_ms = (deadline - now + 999999) / 1000000;
        const mcl_raw_msg *m;
        mcl_err rv = tool_log_next(l, &m, left_ms > 200 ? 200 : (int)left_ms); // wake for signals
        if (rv == MCL_ENOENT) {
            ended = true;
            break;
        }
        if (rv == MCL_ETIMEDOUT) { // following (or a slow server): show what came so far
            fflush(stdout);
            continue;
        }
        if (rv != MCL_OK) {
            tool_err(prog, "%s: %s", files[0], tool_log_error(l));
            status = EXIT_RUNTIME;
            break;
        }
        n++;
        if (sum != NULL && !logsum_add(sum, m)) {
            tool_err(prog, "out of memory");
            status = EXIT_RUNTIME;
            break;
        }
        if (!quiet) {
            print_one(m, json, width, raw, csv, ncsv);
            if (tty)
                fflush(stdout);
        }
        if (ferror(stdout)) {
            tool_err(prog, "cannot write the output");
            status = EXIT_RUNTIME;
            break;
        }
    }
    if (fflush(stdout) != 0 && status == EXIT_OK)
        status = EXIT_RUNTIME;
    if (have_count && n < count && !ended && status == EXIT_OK && !tool_stop) {
        tool_err(prog, "timed out after %llu of %llu messages", (unsigned long long)n,
                 (unsigned long long)count);
        status = EXIT_RUNTIME;
    }
    uint64_t bad_bytes, bad = tool_log_corrupt(l, &bad_bytes);
    if (bad > 0 && bad_bytes > 0)
        tool_err(prog, "%llu damaged records skipped (%llu bytes)", (unsigned long long)bad,
                 (unsigned long long)bad_bytes);
    else if (bad > 0)
        tool_err(prog, "%llu damaged records skipped", (unsigned long long)bad);
    uint64_t tail = tool_log_tail(l);
    if (tail > 0 && !tool_stop) // (docs/log-format.md: what is counted)
        tool_err(prog, "the last %llu bytes are not a whole record (one still being written, or a "
                 "torn end)", (unsigned long long)tail);
    if (sum != NULL) {
        fprintf(stderr, "%llu records", (unsigned long long)logsum_records(sum));
        int64_t first, last;
        if (logsum_span(sum, &first, &last))
            fprintf(stderr, " in %.3f s", (double)(last - first) / 1e9);
        fprintf(stderr, ", %llu damaged\n", (unsigned long long)bad);
        if (logsum_records(sum) > 0)
            logsum_print_topics(sum, stderr);
        logsum_free(sum);
    }
    tool_log_close(l);
    return status;
}

// --list: one line per log, its name and then its info's key=value lines, space-separated.
static void
on_listed(void *user, const char *name, const char *info)
{
    (*(unsigned long *)user)++;
    print_safe(stdout, (const uint8_t *)name, strlen(name));
    for (const char *p = info ? info : ""; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 0) {
            fputc(' ', stdout);
            print_safe(stdout, (const uint8_t *)p, n);
        }
        p += n + (nl ? 1 : 0);
    }
    fputc('\n', stdout);
}

static int
list_logs(const char *url, double timeout)
{
    unsigned long n = 0;
    mcl_err rv = mcl_stream_list(url, on_listed, &n, timeout > 0 ? (int)(timeout * 1000) : 10000);
    if (fflush(stdout) != 0) {
        tool_err(prog, "cannot write the output");
        return EXIT_RUNTIME;
    }
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", url, mcl_strerror(rv));
        return rv == MCL_EURL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    return EXIT_OK;
}

// Widths of the --stats tables' cells: digits of v, characters of "%.1f".
static int
ndigits(uint64_t v)
{
    int n = 1;
    for (; v >= 10; v /= 10)
        n++;
    return n;
}

static int
fwidth(double v)
{
    char b[512];
    int n = snprintf(b, sizeof(b), "%.1f", v);
    return n > 0 ? n : 1;
}

#define WIDEN(w, x) ((w) = (x) > (w) ? (x) : (w))

// Prints "LEAD item, item, ..." wrapped before `width` columns (continued lines indented).
static void
put_wrapped(FILE *o, const char *lead, char (*items)[96], size_t n, size_t width)
{
    size_t at = strlen(lead);
    fputs(lead, o);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        if (i > 0 && at + 2 + len > width) {
            fputs(",\n      ", o);
            at = 6;
        } else if (i > 0) {
            fputs(", ", o);
            at += 2;
        }
        fputs(items[i], o);
        at += len;
    }
    fputc('\n', o);
}

// The per-topic table of --stats: what the listener counted per topic (since it opened; HZ
// over the last seconds).
static void
print_topic_stats(mcl_raw_listener *l)
{
    size_t n = mcl_raw_listener_topics(l, NULL, 0), cap = n;
    mcl_topic_stats *ts = calloc(cap ? cap : 1, sizeof(*ts));
    if (ts == NULL)
        return;
    n = mcl_raw_listener_topics(l, ts, cap ? cap : 1);
    n = n < cap ? n : cap;
    size_t tw = 5, yw = 4;
    for (size_t i = 0; i < n; i++) {
        size_t tl = strlen(ts[i].topic), yl = strlen(ts[i].type);
        tw = tl > tw ? tl : tw;
        yw = yl > yw ? yl : yw;
    }
    tw = tw > 40 ? 40 : tw;
    yw = yw > 20 ? 20 : yw;
    // Each number column as wide as its widest cell, so the table is as narrow as its numbers
    // (the simulator's topics fit 100 columns).
    int wp = 4, wr = 8, wb = 5, wh = 2, wl = 4, wd = 4, wo = 5, wmin = 3, wmean = 4, wmax = 3;
    for (size_t i = 0; i < n; i++) {
        const mcl_topic_stats *t = &ts[i];
        WIDEN(wp, ndigits(t->publishers));
        WIDEN(wr, ndigits(t->messages));
        WIDEN(wb, ndigits(t->bytes));
        WIDEN(wh, fwidth(t->rate_hz));
        WIDEN(wl, ndigits(t->lost));
        WIDEN(wd, ndigits(t->duplicates));
        WIDEN(wo, ndigits(t->reordered));
        WIDEN(wmin, ndigits(t->messages ? t->size_min : 0));
        WIDEN(wmean, fwidth(t->size_mean));
        WIDEN(wmax, ndigits(t->size_max));
    }
    char cell[4 * 40 + 42], tcell[4 * 20 + 22];
    fprintf(stderr, "%-*s %-*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s\n", (int)tw, "topic",
            (int)yw, "type", wp, "pubs", wr, "received", wb, "bytes", wh, "Hz", wl, "lost", wd,
            "dups", wo, "reord", wmin, "min", wmean, "mean", wmax, "max");
    for (size_t i = 0; i < n; i++) {
        const mcl_topic_stats *t = &ts[i];
        const char *name = t->topic[0] ? t->topic : "(none)";
        logsum_safe_text(cell, name, strlen(name), tw, tw, false);
        logsum_safe_text(tcell, t->type[0] ? t->type : "-", t->type[0] ? strlen(t->type) : 1, yw,
                         yw, false);
        fprintf(stderr,
                "%s %s %*" PRIu32 " %*" PRIu64 " %*" PRIu64 " %*.1f %*" PRIu64 " %*" PRIu64
                " %*" PRIu64 " %*" PRIu64 " %*.1f %*" PRIu64 "\n",
                cell, tcell, wp, t->publishers, wr, t->messages, wb, t->bytes, wh, t->rate_hz, wl,
                t->lost, wd, t->duplicates, wo, t->reordered, wmin,
                t->messages ? t->size_min : 0, wmean, t->size_mean, wmax, t->size_max);
    }
    uint64_t untracked = mcl_raw_listener_topics_untracked(l);
    if (untracked > 0)
        fprintf(stderr, "(%" PRIu64 " messages of topics beyond the tracking cap)\n", untracked);
    free(ts);
}

static void
print_stats(mcl_raw_listener *l)
{
    mcl_listener_stats st;
    mcl_raw_listener_stats(l, &st);
    size_t n = 0;
    mcl_raw_listener_publishers(l, NULL, 0, &n);
    mcl_publisher_stats *ps = calloc(n ? n : 1, sizeof(*ps));
    if (ps != NULL)
        mcl_raw_listener_publishers(l, ps, n, &n);
    else
        n = 0;
    // Columns as wide as their widest cell (two passes), the program last.
    int ws = 6, wr = 8, wl = 4, wd = 4, wo = 5, wq = 8;
    for (size_t i = 0; i < n; i++) {
        mcl_raw_msg tmp = {.sender_family = ps[i].family, .sender_port = ps[i].port};
        memcpy(tmp.sender_addr, ps[i].addr, sizeof(tmp.sender_addr));
        char sender[64];
        mcl_raw_msg_sender(&tmp, sender, sizeof(sender));
        WIDEN(ws, (int)strlen(sender));
        WIDEN(wr, ndigits(ps[i].messages));
        WIDEN(wl, ndigits(ps[i].lost));
        WIDEN(wd, ndigits(ps[i].duplicates));
        WIDEN(wo, ndigits(ps[i].reordered));
        WIDEN(wq, ndigits(ps[i].last_seq));
    }
    fprintf(stderr, "%-16s  %-*s %*s %*s %*s %*s %*s  %s\n", "publisher", ws, "sender", wr,
            "received", wl, "lost", wd, "dups", wo, "reord", wq, "last seq", "program[pid]@host");
    for (size_t i = 0; i < n; i++) {
        mcl_raw_msg tmp = {.sender_family = ps[i].family, .sender_port = ps[i].port};
        memcpy(tmp.sender_addr, ps[i].addr, sizeof(tmp.sender_addr));
        char sender[64];
        mcl_raw_msg_sender(&tmp, sender, sizeof(sender));
        // Who it is, from its heartbeats (names are printable: the library checks them).
        char who[160] = "-";
        if (ps[i].program[0] != '\0' || ps[i].host[0] != '\0')
            snprintf(who, sizeof(who), "%s[%" PRIu32 "]@%s%s", ps[i].program, ps[i].pid,
                     ps[i].host, ps[i].silent ? " (silent)" : "");
        fprintf(stderr,
                "%016" PRIx64 "  %-*s %*" PRIu64 " %*" PRIu64 " %*" PRIu64 " %*" PRIu64
                " %*" PRIu64 "  %s\n",
                ps[i].publisher, ws, sender, wr, ps[i].messages, wl, ps[i].lost, wd,
                ps[i].duplicates, wo, ps[i].reordered, wq, ps[i].last_seq, who);
    }
    // The totals, wrapped to fit (100 columns, or --columns).
    char it[20][96];
    size_t ni = 0;
    snprintf(it[ni++], 96, "received %" PRIu64 " (%" PRIu64 " bytes)", st.messages, st.bytes);
    snprintf(it[ni++], 96, "lost %" PRIu64, st.lost);
    snprintf(it[ni++], 96, "duplicates %" PRIu64, st.duplicates);
    snprintf(it[ni++], 96, "reordered %" PRIu64, st.reordered);
    snprintf(it[ni++], 96, "filtered %" PRIu64, st.filtered);
    snprintf(it[ni++], 96, "malformed %" PRIu64, st.malformed);
    snprintf(it[ni++], 96, "expired %" PRIu64, st.expired);
    snprintf(it[ni++], 96, "evicted %" PRIu64, st.evicted);
    snprintf(it[ni++], 96, "oversize %" PRIu64, st.oversize);
    if (st.rcvbuf > 0) { // UDP: what the kernel dropped, and the buffer it had
        snprintf(it[ni++], 96, "kernel drops %" PRIu64, st.kernel_drops);
        snprintf(it[ni++], 96, "receive buffer %zu bytes", st.rcvbuf);
    }
    if (st.auth_failures > 0)
        snprintf(it[ni++], 96, "failed handshakes %" PRIu64, st.auth_failures);
    if (st.auth_rejected > 0 || st.replayed > 0 || st.suspect > 0) { // (docs/security.md)
        snprintf(it[ni++], 96, "failed authentication %" PRIu64, st.auth_rejected);
        snprintf(it[ni++], 96, "replayed %" PRIu64, st.replayed);
        snprintf(it[ni++], 96, "suspect %" PRIu64, st.suspect);
    }
    if (st.compressed > 0 || st.undecompressed > 0) { // compress= (docs/wire-format.md)
        snprintf(it[ni++], 96, "compressed %" PRIu64 " (%" PRIu64 " bytes as sent)",
                 st.compressed, st.compressed_bytes);
        snprintf(it[ni++], 96, "undecompressed %" PRIu64, st.undecompressed);
    }
    put_wrapped(stderr, "total: ", it, ni, columns > 0 && columns < 100 ? columns : 100);
    free(ps);
    print_topic_stats(l);
}

// --broker URL/CHANNEL: a channel of an mcl-broker, read as a client (the broker decimates).
typedef struct bdump {
    pthread_mutex_t lock;
    uint64_t n, count;
    bool have_count, quiet, json, raw;
    size_t width;
    char **csv;
    size_t ncsv;
    const char *channel;
    char ended[256];
} bdump;

static void
on_bframe(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
          void *user)
{
    (void)c;
    (void)sub;
    bdump *d = user;
    pthread_mutex_lock(&d->lock);
    if (!d->have_count || d->n < d->count) {
        d->n++;
        if (!d->quiet) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            mcl_raw_msg m = {.topic = d->channel,
                             .topic_len = strlen(d->channel),
                             .payload = data,
                             .len = len,
                             .seq = seq,
                             .recv_realtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec};
            print_one(&m, d->json, d->width, d->raw, d->csv, d->ncsv);
            fflush(stdout);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static void
on_bended(mcl_broker_client *c, uint32_t id, const char *why, void *user)
{
    (void)c;
    (void)id;
    bdump *d = user;
    pthread_mutex_lock(&d->lock);
    snprintf(d->ended, sizeof(d->ended), "%s", why);
    pthread_mutex_unlock(&d->lock);
}

static int
dump_broker(const char *loc, const mcl_broker_reader_options *ro, bdump *d, double timeout)
{
    char url[512], name[1025];
    if (mcl_stream_split_location(loc, url, sizeof(url), name, sizeof(name)) != MCL_OK) {
        tool_err(prog, "--broker: '%s' is not URL/CHANNEL", loc);
        return EXIT_USAGE;
    }
    d->channel = name;
    mcl_broker_client_options co = {.name = "mcl-dump", .ended = on_bended, .user = d};
    mcl_broker_client *c;
    mcl_err rv = mcl_broker_connect(&c, url, &co);
    if (rv != MCL_OK) {
        tool_err(prog, "%s: no broker: %s", url, mcl_strerror(rv));
        return EXIT_RUNTIME;
    }
    uint32_t sub;
    if ((rv = mcl_broker_subscribe(c, d->channel, ro, on_bframe, d, &sub)) != MCL_OK) {
        tool_err(prog, "%s: %s: %s", url, d->channel,
                 rv == MCL_ENOENT ? "no such channel"
                 : rv == MCL_EPERM ? "wrong key"
                                   : mcl_strerror(rv));
        mcl_broker_client_free(c);
        return rv == MCL_ENOENT || rv == MCL_EPERM ? EXIT_USAGE : EXIT_RUNTIME;
    }
    int64_t deadline = timeout > 0 ? tool_mono_ns() + (int64_t)(timeout * 1e9) : INT64_MAX;
    int status = EXIT_OK;
    while (!tool_stop && tool_mono_ns() < deadline) {
        pthread_mutex_lock(&d->lock);
        bool done = d->have_count && d->n >= d->count;
        bool ended = d->ended[0] != '\0';
        pthread_mutex_unlock(&d->lock);
        if (done)
            break;
        if (ended) {
            tool_err(prog, "%s: %s", d->channel, d->ended);
            status = EXIT_RUNTIME;
            break;
        }
        struct timespec ts = {0, 50 * 1000000}; // (polls the tally and signals)
        nanosleep(&ts, NULL);
    }
    mcl_broker_client_free(c);
    if (d->have_count && d->n < d->count && status == EXIT_OK && !tool_stop) {
        tool_err(prog, "timed out after %llu of %llu messages", (unsigned long long)d->n,
                 (unsigned long long)d->count);
        status = EXIT_RUNTIME;
    }
    return status;
}

int
main(int argc, char **argv)
{
    const char *url = NULL;
    char **topics = NULL;
    size_t ntopics = 0;
    bool json = false, stats = false, quiet = false, verbose = false, have_count = false,
         raw = false;
    uint64_t count = 0, width = 48;
    double timeout = 0;
    enum {
        OPT_TIMEOUT = 256,
        OPT_JSON,
        OPT_JSON_BASE64,
        OPT_STATS,
        OPT_HELP,
        OPT_VERSION,
        OPT_RAW,
        OPT_CSV,
        OPT_START,
        OPT_END,
        OPT_LIST,
        OPT_BROKER,
        OPT_EVERY,
        OPT_MAX_RATE,
        OPT_KEY,
        OPT_COLUMNS
    };
    int64_t cols = -1; // --columns (-1: the default)
    const char *broker_loc = NULL;
    mcl_broker_reader_options bro = {0};
    tool_log_options lo = {0};
    const char *list_url = NULL;
    const char *files[64];
    int nfiles = 0;
    char **csv = NULL;
    size_t ncsv = 0;
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, OPT_TIMEOUT},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"json-base64", no_argument, NULL, OPT_JSON_BASE64},
                                         {"raw", no_argument, NULL, OPT_RAW},
                                         {"file", required_argument, NULL, 'f'},
                                         {"follow", no_argument, NULL, 'F'},
                                         {"start", required_argument, NULL, OPT_START},
                                         {"end", required_argument, NULL, OPT_END},
                                         {"list", required_argument, NULL, OPT_LIST},
                                         {"broker", required_argument, NULL, OPT_BROKER},
                                         {"every", required_argument, NULL, OPT_EVERY},
                                         {"max-rate", required_argument, NULL, OPT_MAX_RATE},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"csv", required_argument, NULL, OPT_CSV},
                                         {"stats", no_argument, NULL, OPT_STATS},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"width", required_argument, NULL, 'w'},
                                         {"columns", required_argument, NULL, OPT_COLUMNS},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, OPT_HELP},
                                         {"version", no_argument, NULL, OPT_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c, status = EXIT_OK;
    while ((c = tool_getopt(prog, argc, argv, "u:t:n:qw:vf:F", opts)) != -1) {
        switch (c) {
        case 'u':
            url = optarg;
            break;
        case 't':
            if ((status = tool_add_topics(prog, &topics, &ntopics, optarg)) != EXIT_OK)
                goto out;
            break;
        case 'n':
            if (!tool_parse_u64(optarg, UINT64_MAX, &count) || count == 0) {
                tool_err(prog, "invalid count '%s' (a whole number > 0)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            have_count = true;
            break;
        case OPT_TIMEOUT:
            if (!tool_parse_double(optarg, 0.001, 1e9, &timeout)) {
                tool_err(prog, "invalid timeout '%s' (seconds > 0)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_JSON:
            json = true;
            break;
        case OPT_JSON_BASE64:
            json = true;
            json_flags |= MCL_JSON_NDARRAY_BASE64;
            break;
        case OPT_STATS:
            stats = true;
            break;
        case OPT_RAW:
            raw = true;
            break;
        case 'f':
            if (nfiles == 64) {
                tool_err(prog, "at most 64 logs");
                status = EXIT_USAGE;
                goto out;
            }
            files[nfiles++] = optarg;
            break;
        case OPT_BROKER:
            broker_loc = optarg;
            break;
        case OPT_EVERY: {
            uint64_t e;
            if (!tool_parse_u64(optarg, UINT32_MAX, &e) || e == 0) {
                tool_err(prog, "invalid --every '%s' (1 of every N frames)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            bro.every = (uint32_t)e;
            break;
        }
        case OPT_MAX_RATE:
            if (!tool_parse_double(optarg, 0.001, 1e9, &bro.max_rate)) {
                tool_err(prog, "invalid --max-rate '%s' (frames per second)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_KEY:
            bro.key = optarg;
            break;
        case 'F':
            lo.follow = true;
            break;
        case OPT_START:
        case OPT_END:
            if (!tool_parse_double(optarg, 0, 1e9, c == OPT_START ? &lo.start_s : &lo.end_s)) {
                tool_err(prog, "invalid %s '%s' (seconds)", c == OPT_START ? "--start" : "--end",
                         optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_LIST:
            list_url = optarg;
            break;
        case OPT_CSV:
            if (tool_add_list(&csv, &ncsv, optarg) != 0) { // the same comma splitting
                status = EXIT_RUNTIME;
                goto out;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 'w':
            if (!tool_parse_u64(optarg, 1 << 20, &width)) {
                tool_err(prog, "invalid width '%s'", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            break;
        case OPT_COLUMNS: {
            uint64_t v;
            if (!tool_parse_u64(optarg, 100000, &v) || (v > 0 && v < 20)) {
                tool_err(prog, "invalid --columns '%s' (0, or 20 to 100000)", optarg);
                status = EXIT_USAGE;
                goto out;
            }
            cols = (int64_t)v;
            break;
        }
        case 'v':
            verbose = true;
            break;
        case OPT_HELP:
            usage(stdout);
            goto out;
        case OPT_VERSION:
            tool_version(prog);
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
    if (nfiles == 0 && (lo.follow || lo.start_s > 0 || lo.end_s > 0)) {
        tool_err(prog, "--follow, --start and --end read a log: give it with -f LOG");
        status = EXIT_USAGE;
        goto out;
    }
    if (lo.end_s > 0 && lo.end_s <= lo.start_s) {
        tool_err(prog, "--end must come after --start");
        status = EXIT_USAGE;
        goto out;
    }
    if (list_url != NULL && nfiles > 0) {
        tool_err(prog, "--list and -f do not go together");
        status = EXIT_USAGE;
        goto out;
    }
    if (cols >= 0) {
        columns = (size_t)cols;
    } else if (isatty(STDOUT_FILENO) && (columns = terminal_columns()) > 0) {
        columns_auto = true;
    }
    if (columns > 0 && isatty(STDOUT_FILENO)) { // the ellipsis: '…' on a UTF-8 terminal, else
        const char *was = setlocale(LC_CTYPE, ""); // "..." (a pipe: columns = bytes)
        if (was != NULL && strcmp(nl_langinfo(CODESET), "UTF-8") == 0) {
            ellipsis = "\xe2\x80\xa6";
            ellipsis_cols = 1;
        }
        setlocale(LC_CTYPE, "C"); // (nothing else here depends on the locale)
    }
    tool_log_to_stderr(prog, verbose);
    tool_signals();

    if (list_url != NULL) {
        status = list_logs(list_url, timeout);
        goto out;
    }
    if (broker_loc != NULL) {
        if (nfiles > 0 || ntopics > 0) {
            tool_err(prog, "--broker reads one channel: not with -f or -t");
            status = EXIT_USAGE;
            goto out;
        }
        bdump d = {.lock = PTHREAD_MUTEX_INITIALIZER,
                   .count = count,
                   .have_count = have_count,
                   .quiet = quiet,
                   .json = json,
                   .raw = raw,
                   .width = (size_t)width,
                   .csv = csv,
                   .ncsv = ncsv};
        status = dump_broker(broker_loc, &bro, &d, timeout);
        goto out;
    }
    if (nfiles > 0) {
        lo.topics = topics;
        lo.ntopics = ntopics;
        status = dump_logs(files, nfiles, &lo, json, quiet, (size_t)width, raw, csv, ncsv,
                           have_count, count, timeout, stats);
        goto out;
    }

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
    if (verbose)
        tool_err(prog, "listening on %s", mcl_raw_listener_url(l));
    int64_t start = tool_mono_ns();
    int64_t deadline = timeout > 0 ? start + (int64_t)(timeout * 1e9) : INT64_MAX;
    uint64_t got = 0;
    bool tty = isatty(STDOUT_FILENO);
    while (!tool_stop && (!have_count || got < count)) {
        int64_t now = tool_mono_ns();
        if (now >= deadline)
            break;
        int64_t left_ms = (deadline - now + 999999) / 1000000;
        int wait = left_ms > 200 ? 200 : (int)left_ms; // wake up for signals
        const mcl_raw_msg *m;
        rv = mcl_raw_listener_recv(l, &m, wait);
        if (rv == MCL_ETIMEDOUT) {
            fflush(stdout);
            continue;
        }
        if (rv != MCL_OK) {
            tool_err(prog, "receive failed: %s", mcl_strerror(rv));
            status = EXIT_RUNTIME;
            break;
        }
        got++;
        if (!quiet) {
            print_one(m, json, (size_t)width, raw, csv, ncsv);
            if (tty)
                fflush(stdout);
            if (ferror(stdout)) {
                tool_err(prog, "cannot write the output");
                status = EXIT_RUNTIME;
                break;
            }
        }
    }
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        tool_err(prog, "cannot write the output");
        status = EXIT_RUNTIME;
    }
    if (have_count && got < count && status == EXIT_OK && !tool_stop) {
        mcl_listener_stats ast = {0}; // zmq: a wrong or missing CURVE key says so here
        (void)mcl_raw_listener_stats(l, &ast);
        char why[96] = "";
        if (ast.auth_failures > 0)
            snprintf(why, sizeof(why), "; %llu handshakes failed (wrong or missing CURVE key?)",
                     (unsigned long long)ast.auth_failures);
        tool_err(prog, "timed out after %llu of %llu messages%s", (unsigned long long)got,
                 (unsigned long long)count, why);
        status = EXIT_RUNTIME;
    }
    if (stats)
        print_stats(l);
    mcl_raw_listener_free(l);
    mcl_connection_free(conn);
out:
    tool_free_list(topics, ntopics);
    tool_free_list(csv, ncsv);
    return status;
}
