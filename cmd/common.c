#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t tool_stop;

// The status whose line is on the screen now (NULL: none); read and written only with
// stderr locked (flockfile), so that library threads' messages can clear it too.
static tool_status *status_shown;

static void
status_clear_locked(void)
{
    tool_status *s = status_shown;
    if (s == NULL)
        return;
    if (s->dumb)
        fprintf(stderr, "\r%*s\r", s->len, "");
    else
        fputs("\r\033[K", stderr);
    status_shown = NULL;
}

static void
on_signal(int sig)
{
    (void)sig;
    tool_stop = 1;
}

void
tool_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); // a closed terminal or ssh session: stop cleanly too
    // SIGPIPE keeps its default: `mcl-dump | head` ends like any filter when head exits.
}

void
tool_err(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    status_clear_locked();
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

static void
log_sink(mcl_log_level level, const char *component, const char *message, void *user)
{
    flockfile(stderr);
    status_clear_locked();
    fprintf(stderr, "%s: %s: %s: %s\n", (const char *)user, mcl_log_level_name(level), component,
            message);
    funlockfile(stderr);
}

void
tool_status_init(tool_status *s, bool enable)
{
    const char *term = getenv("TERM");
    *s = (tool_status){.on = enable && isatty(STDERR_FILENO),
                       .next_ns = tool_mono_ns() + TOOL_STATUS_PERIOD_MS * 1000000LL,
                       .dumb = term == NULL || *term == '\0' || strcmp(term, "dumb") == 0};
}

bool
tool_status_due(const tool_status *s)
{
    return s->on && tool_mono_ns() >= s->next_ns;
}

void
tool_status_show(tool_status *s, const char *fmt, ...)
{
    if (!s->on)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    size_t n = r < 0 ? 0 : (size_t)r < sizeof(text) ? (size_t)r : sizeof(text) - 1;
    for (size_t i = 0; i < n; i++) // (a file name's control characters would move the cursor)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            text[i] = '?';
    // One row: a line wider than the terminal would wrap, and '\r' rewrite only its last row.
    // (Bytes, not columns: a UTF-8 name is cut a little early, never in a character.)
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && n > (size_t)ws.ws_col - 1) {
        n = (size_t)ws.ws_col - 1;
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
            n--;
    }
    flockfile(stderr);
    fputc('\r', stderr);
    fwrite(text, 1, n, stderr);
    if (!s->dumb)
        fputs("\033[K", stderr);
    else if (status_shown == s && (size_t)s->len > n)
        fprintf(stderr, "%*s", (int)((size_t)s->len - n), "");
    fflush(stderr);
    status_shown = s;
    s->len = (int)n;
    funlockfile(stderr);
    s->ever = true;
    s->next_ns = tool_mono_ns() + TOOL_STATUS_PERIOD_MS * 1000000LL;
}

void
tool_status_end(tool_status *s)
{
    if (!s->on)
        return;
    flockfile(stderr);
    if (status_shown == s) {
        fputc('\n', stderr);
        status_shown = NULL;
    }
    funlockfile(stderr);
    s->on = false;
}

void
tool_status_clear(void)
{
    flockfile(stderr);
    status_clear_locked();
    funlockfile(stderr);
}

void
tool_log_to_stderr(const char *prog, bool verbose)
{
    mcl_log_set_handler(log_sink, (void *)(uintptr_t)prog, verbose ? MCL_LOG_DEBUG : MCL_LOG_WARN);
}

bool
tool_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

bool
tool_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift) {
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
    }
    if (*end != '\0' || v > (max >> shift))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

bool
tool_parse_double(const char *s, double min, double max, double *out)
{
    if (s == NULL || *s == '\0')
        return false;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int
tool_connection(const char *prog, const char *url, mcl_connection **conn)
{
    char err[512];
    mcl_err rv = url ? mcl_connection_parse(conn, url, err, sizeof(err))
                     : mcl_connection_default(conn, err, sizeof(err));
    if (rv != MCL_OK) {
        tool_err(prog, "%s", err[0] ? err : mcl_strerror(rv));
        return rv == MCL_EURL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    return EXIT_OK;
}

bool
tool_close_broadcaster(const char *prog, mcl_raw_broadcaster *b, bool reported,
                       mcl_broadcaster_stats *bs)
{
    mcl_err rv = mcl_raw_broadcaster_close(b);
    *bs = (mcl_broadcaster_stats){0};
    mcl_raw_broadcaster_stats(b, bs);
    if (rv == MCL_OK && (bs->errors == 0 || reported))
        return true;
    tool_err(prog, "sending failed: %s (%llu messages not sent)",
             mcl_strerror(rv != MCL_OK ? rv : MCL_ESYS), (unsigned long long)bs->errors);
    return false;
}

bool
tool_wait_option(const char *prog, int c, const char *arg, tool_wait *w)
{
    uint64_t v;
    if (c == TOOL_OPT_SUBSCRIBERS) {
        if (!tool_parse_u64(arg, 100000, &v)) {
            tool_err(prog, "invalid --subscribers '%s' (0..100000)", arg);
            return false;
        }
        w->want = (long)v;
    } else if (!tool_parse_double(arg, 0, 1e6, &w->wait_s)) {
        tool_err(prog, "invalid --wait '%s' (seconds)", arg);
        return false;
    }
    return true;
}

bool
tool_wait_subscribers(const char *prog, mcl_raw_broadcaster *b, const tool_wait *w)
{
    long want = w->want;
    double wait_s = w->wait_s;
    const mcl_connection *c = mcl_raw_broadcaster_connection(b);
    // Transports that do not count listeners (multicast) have nothing to wait for.
    if (want == 0 || mcl_raw_broadcaster_wait_for_subscribers(b, 0, 0) == MCL_ENOTSUP)
        return true;
    if (want < 0)
        want = 1;
    int64_t deadline = tool_mono_ns() + (int64_t)(wait_s * 1e9);
    mcl_err rv = MCL_ETIMEDOUT;
    bool auth_failed = false;
    while (!tool_stop && tool_mono_ns() < deadline &&
           (rv = mcl_raw_broadcaster_wait_for_subscribers(b, (size_t)want, 100)) != MCL_OK)
        auth_failed |= rv == MCL_EAUTH;
    if (rv != MCL_OK && auth_failed)
        rv = MCL_EAUTH;
    if (rv == MCL_OK)
        return true;
    if (tool_stop)
        return false;
    tool_err(prog, "%s: %s waiting %.3g s for %ld subscriber%s (--subscribers 0 publishes "
                   "without waiting)",
             mcl_connection_url(c),
             rv == MCL_EAUTH ? "handshakes failed (wrong or missing CURVE key?)" : "timed out",
             wait_s, want, want == 1 ? "" : "s");
    return false;
}

int64_t
tool_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
tool_sleep_until(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000, .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !tool_stop)
        ;
}

void
tool_format_time(int64_t ns, char *buf, size_t len)
{
    // Floor division, so that times before 1970 print as the earlier second plus a positive
    // fraction (-0.5 s is 1969-12-31T23:59:59.500000Z).
    int64_t s = ns / 1000000000, r = ns % 1000000000;
    if (r < 0) {
        s--;
        r += 1000000000;
    }
    time_t sec = (time_t)s;
    long usec = (long)(r / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char d[32];
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06ldZ", d, usec);
}

void
tool_format_duration(double seconds, char *buf, size_t len)
{
    if (!isfinite(seconds) || seconds < 0)
        seconds = 0;
    if (seconds < 59.95) {
        snprintf(buf, len, "%.1f s", seconds);
        return;
    }
    unsigned long long t = seconds < 1e15 ? (unsigned long long)(seconds + 0.5) : 1000000000000000ULL;
    if (t < 3600)
        snprintf(buf, len, "%llu:%02llu", t / 60, t % 60);
    else
        snprintf(buf, len, "%llu:%02llu:%02llu", t / 3600, t / 60 % 60, t % 60);
}

int
tool_add_list(char ***list, size_t *n, const char *arg)
{
    char *copy = strdup(arg);
    if (copy == NULL)
        return -1;
    char *rest = copy;
    for (char *tok = strsep(&rest, ","); tok != NULL; tok = strsep(&rest, ",")) {
        char **nl = realloc(*list, (*n + 1) * sizeof(**list));
        if (nl == NULL || (nl[*n] = strdup(tok)) == NULL) {
            if (nl != NULL)
                *list = nl;
            free(copy);
            return -1;
        }
        *list = nl;
        (*n)++;
    }
    free(copy);
    return 0;
}

int
tool_add_topics(const char *prog, char ***list, size_t *n, const char *arg)
{
    if (tool_add_list(list, n, arg) != 0) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < *n; i++) {
        size_t tl = strlen((*list)[i]);
        if (tl > (size_t)MCL_TOPIC_MAX + (tl > 0 && (*list)[i][tl - 1] == '*' ? 1u : 0u)) {
            tool_err(prog, "topic longer than %d bytes", MCL_TOPIC_MAX);
            return EXIT_USAGE;
        }
    }
    return EXIT_OK;
}

void
tool_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

// --- logs, local or remote -----------------------------------------------------------------------

enum { LOG_BATCH = 64, LOG_POLL_MS = 50 };

struct tool_log {
    tool_log_options o;
    int64_t first_ns;
    bool have_first;
    bool empty;                 // the filters selected no record (at open)
    int64_t start_ns, end_ns;   // --start/--end as absolute times (0: none)
    char **paths;               // (copies) local: for the readers of span and count
    size_t npaths;
    int64_t last_ns;            // remote: the server's last_ns (topic filter, no times)
    bool have_last;
    uint64_t records;           // remote: the server's records= of the selection
    bool have_records;
    // local
    mcl_log_reader *r;
    // remote
    char *loc;
    mcl_stream *s;
    mcl_stream_elem batch[LOG_BATCH];
    size_t nbatch, at;
    mcl_raw_msg msg;
    char topic[MCL_TOPIC_MAX + 1];
    uint64_t corrupt;
    char err[256];
};

bool
tool_log_is_remote(const char *path)
{
    return strstr(path, "://") != NULL;
}

// The value of KEY= in info's lines.
static bool
info_i64(const char *info, const char *key, int64_t *out)
{
    size_t kl = strlen(key);
    for (const char *l = info; l != NULL && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
            char *end;
            errno = 0;
            long long v = strtoll(l + kl + 1, &end, 10);
            if (errno == 0 && end != l + kl + 1 && (*end == '\n' || *end == '\0')) {
                *out = v;
                return true;
            }
        }
    return false;
}

// The log reader's stop function (mcl_log_reader_set_stop()): a signal stops even a reader
// going through a huge damaged file, within about a MiB of it.
bool
tool_reader_stop(void *arg)
{
    (void)arg;
    return tool_stop != 0;
}

// mcl_log_reader_open(), stopped by signals.
static mcl_err
reader_open(mcl_log_reader **rp, const char *const *paths, size_t n, const mcl_log_reader_options *o)
{
    mcl_err rv = mcl_log_reader_open(rp, paths, n, o);
    if (rv == MCL_OK)
        mcl_log_reader_set_stop(*rp, tool_reader_stop, NULL);
    return rv;
}

static int
log_open_local(const char *prog, tool_log *l, const char *const *paths, int npaths)
{
    mcl_log_reader_options ro = {.topics = (const char *const *)l->o.topics, .ntopics = l->o.ntopics};
    if ((l->paths = calloc((size_t)npaths, sizeof(*l->paths))) == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    for (; l->npaths < (size_t)npaths; l->npaths++)
        if ((l->paths[l->npaths] = strdup(paths[l->npaths])) == NULL) {
            tool_err(prog, "out of memory");
            return EXIT_RUNTIME;
        }
    mcl_err rv = reader_open(&l->r, paths, (size_t)npaths, &ro);
    const mcl_raw_msg *m;
    if (rv == MCL_OK && mcl_log_reader_next(l->r, &m) == MCL_OK) {
        l->first_ns = m->recv_realtime_ns;
        l->have_first = true;
    }
    l->empty = !l->have_first && !l->o.follow;
    if (rv == MCL_OK && tool_stop) // a signal (during a long first read): the caller stops
        return EXIT_OK;
    if (rv == MCL_OK && (l->o.start_s > 0 || l->o.end_s > 0) && !(l->empty && l->o.empty_ok)) {
        if (!l->have_first) {
            tool_err(prog, "%s: no records: --start/--end count from the first", paths[0]);
            return EXIT_RUNTIME;
        }
        mcl_log_reader_close(l->r);
        l->r = NULL;
        ro.start_ns = l->start_ns = l->o.start_s > 0 ? l->first_ns + (int64_t)(l->o.start_s * 1e9) : 0;
        ro.end_ns = l->end_ns = l->o.end_s > 0 ? l->first_ns + (int64_t)(l->o.end_s * 1e9) : 0;
        rv = reader_open(&l->r, paths, (size_t)npaths, &ro);
        // Whether the range selects anything: its first record (then back before it).
        if (rv == MCL_OK && !l->o.follow) {
            l->empty = mcl_log_reader_next(l->r, &m) != MCL_OK;
            rv = mcl_log_reader_reset(l->r);
        }
    } else if (rv == MCL_OK) {
        rv = mcl_log_reader_reset(l->r);
    }
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", paths[0], mcl_strerror(rv));
        return rv == MCL_ENOENT || rv == MCL_EPROTO ? EXIT_USAGE : EXIT_RUNTIME;
    }
    return EXIT_OK;
}

// Opens the remote log as *sp with these filters as params (start_ns/end_ns: absolute, 0:
// none).
static mcl_err
log_dial_as(tool_log *l, mcl_stream **sp, char **topics, size_t ntopics, int64_t start_ns,
            int64_t end_ns)
{
    mcl_log_reader_options fo = {.topics = (const char *const *)topics,
                                 .ntopics = ntopics,
                                 .start_ns = start_ns,
                                 .end_ns = end_ns};
    char params[1100];
    size_t len;
    mcl_err rv = mcl_log_params_format(&fo, params, sizeof(params), &len);
    if (rv != MCL_OK) {
        snprintf(l->err, sizeof(l->err), "the filters are too long for a remote log");
        return rv;
    }
    mcl_stream_options so = {.params = params,
                             .require_mode = MCL_STREAM_READABLE | MCL_STREAM_SEEK_BACK,
                             .eos = l->o.follow ? MCL_STREAM_EOS_FOLLOW : MCL_STREAM_EOS_STOP};
    if ((rv = mcl_stream_open(sp, l->loc, NULL, &so)) != MCL_OK) {
        snprintf(l->err, sizeof(l->err), "%s", mcl_strerror(rv));
        return rv;
    }
    if (mcl_stream_kind_of(*sp) != MCL_STREAM_ENTITIES) {
        snprintf(l->err, sizeof(l->err), "not a log (a byte stream)");
        return MCL_EPROTO;
    }
    return MCL_OK;
}

// Opens the remote log with the tool's filters (and these times) as l->s.
static mcl_err
log_dial(tool_log *l, int64_t start_ns, int64_t end_ns)
{
    mcl_err rv = log_dial_as(l, &l->s, l->o.topics, l->o.ntopics, start_ns, end_ns);
    if (rv != MCL_OK)
        return rv;
    const char *info = mcl_stream_info(l->s);
    int64_t v;
    if (info_i64(info, "corrupt", &v) && v > 0)
        l->corrupt = (uint64_t)v;
    l->have_records = info_i64(info, "records", &v) && v >= 0;
    l->records = l->have_records ? (uint64_t)v : 0;
    // (The server's first record is the first that passes the filters.)
    l->empty = !l->o.follow && !info_i64(info, "first_ns", &v);
    return MCL_OK;
}

static int
log_open_remote(const char *prog, tool_log *l, const char *loc)
{
    if ((l->loc = strdup(loc)) == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    mcl_err rv = log_dial(l, 0, 0);
    int64_t v;
    if (rv == MCL_OK && info_i64(mcl_stream_info(l->s), "first_ns", &v)) {
        l->first_ns = v;
        l->have_first = true;
    }
    if (rv == MCL_OK && info_i64(mcl_stream_info(l->s), "last_ns", &v)) {
        l->last_ns = v;
        l->have_last = true;
    }
    if (rv == MCL_OK && (l->o.start_s > 0 || l->o.end_s > 0) && !(l->empty && l->o.empty_ok)) {
        if (!l->have_first) {
            tool_err(prog, "%s: no records: --start/--end count from the first", loc);
            return EXIT_RUNTIME;
        }
        // The server filters by absolute times: open again with them.
        mcl_stream_close(l->s, 2000);
        mcl_stream_free(l->s);
        l->s = NULL;
        l->start_ns = l->o.start_s > 0 ? l->first_ns + (int64_t)(l->o.start_s * 1e9) : 0;
        l->end_ns = l->o.end_s > 0 ? l->first_ns + (int64_t)(l->o.end_s * 1e9) : 0;
        rv = log_dial(l, l->start_ns, l->end_ns);
    }
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", loc, l->err);
        return rv == MCL_ENOENT || rv == MCL_EPERM || rv == MCL_EURL || rv == MCL_EINVAL
                   ? EXIT_USAGE
                   : EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int
tool_log_open(const char *prog, tool_log **lp, const char *const *paths, int npaths,
              const tool_log_options *o)
{
    *lp = NULL;
    int remote = 0;
    for (int i = 0; i < npaths; i++)
        remote += tool_log_is_remote(paths[i]);
    if (remote > 0 && npaths > 1) {
        tool_err(prog, "a remote log is read alone (not merged with other logs)");
        return EXIT_USAGE;
    }
    tool_log *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    if (o != NULL)
        l->o = *o;
    int ec = remote ? log_open_remote(prog, l, paths[0]) : log_open_local(prog, l, paths, npaths);
    if (ec != EXIT_OK) {
        tool_log_close(l);
        return ec;
    }
    *lp = l;
    return EXIT_OK;
}

mcl_err
tool_log_next(tool_log *l, const mcl_raw_msg **m, int timeout_ms)
{
    *m = NULL;
    if (l->r != NULL) {
        int64_t deadline = tool_mono_ns() + (int64_t)timeout_ms * 1000000;
        for (;;) {
            mcl_err rv = mcl_log_reader_next(l->r, m);
            if (rv == MCL_EINTR) // stopped by a signal: nothing in time
                return MCL_ETIMEDOUT;
            if (rv != MCL_ENOENT || !l->o.follow)
                return rv;
            // Following: pick up what the recorder wrote since, or wait a little for it.
            mcl_log_reader_refresh(l->r);
            if ((rv = mcl_log_reader_next(l->r, m)) != MCL_ENOENT)
                return rv;
            int64_t now = tool_mono_ns();
            if (now >= deadline || tool_stop)
                return MCL_ETIMEDOUT;
            int64_t wake = now + LOG_POLL_MS * 1000000LL;
            tool_sleep_until(wake < deadline ? wake : deadline);
        }
    }
    if (l->at == l->nbatch) {
        l->at = l->nbatch = 0;
        size_t got;
        mcl_err rv = mcl_stream_recv_elems(l->s, l->batch, LOG_BATCH, &got, timeout_ms > 0 ? timeout_ms : 1);
        if (rv == MCL_EEOF)
            return MCL_ENOENT;
        if (rv == MCL_ETIMEDOUT)
            return rv;
        if (rv != MCL_OK) {
            const char *why = mcl_stream_error(l->s);
            snprintf(l->err, sizeof(l->err), "%s%s%s", mcl_strerror(rv), why[0] ? ": " : "", why);
            return rv;
        }
        l->nbatch = got;
    }
    const mcl_stream_elem *e = &l->batch[l->at++];
    mcl_err rv = mcl_log_elem_decode(e->data, e->len, &l->msg);
    if (rv != MCL_OK) {
        snprintf(l->err, sizeof(l->err), "a record from the server does not decode");
        return rv;
    }
    memcpy(l->topic, l->msg.topic, l->msg.topic_len); // (decoded in place: not terminated)
    l->topic[l->msg.topic_len] = '\0';
    l->msg.topic = l->topic;
    *m = &l->msg;
    return MCL_OK;
}

mcl_err
tool_log_rewind(tool_log *l)
{
    if (l->r != NULL)
        return mcl_log_reader_reset(l->r);
    l->at = l->nbatch = 0;
    return mcl_stream_seek(l->s, MCL_STREAM_ABS, 0);
}

bool
tool_log_first_ns(const tool_log *l, int64_t *t)
{
    *t = l->first_ns;
    return l->have_first;
}

bool
tool_log_empty(const tool_log *l)
{
    return l->empty;
}

enum { SPAN_BUDGET_MS = 1000 };

bool
tool_log_span(tool_log *l, bool topics, int64_t *first, int64_t *last, bool *last_known)
{
    *first = *last = 0;
    *last_known = false;
    char **tl = topics ? l->o.topics : NULL;
    size_t tn = topics ? l->o.ntopics : 0;
    if (l->r == NULL) { // remote: what the server says
        if (topics || l->o.ntopics == 0) {
            *first = l->first_ns;
            *last = l->last_ns;
            *last_known = l->have_last;
            return l->have_first;
        }
        mcl_stream *s = NULL;
        int64_t v;
        bool have = false;
        if (log_dial_as(l, &s, NULL, 0, 0, 0) == MCL_OK &&
            info_i64(mcl_stream_info(s), "first_ns", &v)) {
            have = true;
            *first = v;
            if ((*last_known = info_i64(mcl_stream_info(s), "last_ns", &v)))
                *last = v;
        }
        l->err[0] = '\0';
        if (s != NULL) {
            mcl_stream_close(s, 2000);
            mcl_stream_free(s);
        }
        return have;
    }
    mcl_log_reader_options ro = {.topics = (const char *const *)tl, .ntopics = tn};
    mcl_log_reader *r;
    if (reader_open(&r, (const char *const *)l->paths, l->npaths, &ro) != MCL_OK)
        return false;
    const mcl_raw_msg *m;
    bool have = mcl_log_reader_next(r, &m) == MCL_OK;
    if (have) {
        // The last time: the largest t with a record at or after it, by seeks (each a binary
        // search in the files), not by reading every record.
        *first = m->recv_realtime_ns;
        int64_t lo = *first, hi = INT64_MAX; // a record at or after lo; none found at hi
        int64_t deadline = tool_mono_ns() + SPAN_BUDGET_MS * 1000000LL;
        bool late = false;
        while (hi - lo > 1 && !(late = tool_mono_ns() > deadline)) {
            int64_t mid = lo + (hi - lo) / 2;
            if (mcl_log_reader_seek(r, mid) == MCL_OK && mcl_log_reader_next(r, &m) == MCL_OK)
                lo = m->recv_realtime_ns > mid && m->recv_realtime_ns < hi ? m->recv_realtime_ns
                                                                           : mid;
            else
                hi = mid;
        }
        *last = lo;
        *last_known = !late;
    }
    mcl_log_reader_close(r);
    return have;
}

bool
tool_log_count(tool_log *l, int budget_ms, uint64_t *n)
{
    *n = 0;
    if (l->r == NULL) {
        *n = l->records;
        return l->have_records;
    }
    if (l->empty) // (and not following)
        return true;
    if (l->o.follow)
        return false; // still growing
    mcl_log_reader_options ro = {.topics = (const char *const *)l->o.topics,
                                 .ntopics = l->o.ntopics,
                                 .start_ns = l->start_ns,
                                 .end_ns = l->end_ns};
    mcl_log_reader *r;
    if (reader_open(&r, (const char *const *)l->paths, l->npaths, &ro) != MCL_OK)
        return false;
    int64_t deadline = tool_mono_ns() + (int64_t)budget_ms * 1000000;
    const mcl_raw_msg *m;
    uint64_t k = 0;
    bool done = false;
    while (!tool_stop) {
        if ((k & 1023) == 1023 && tool_mono_ns() > deadline)
            break;
        mcl_err rv = mcl_log_reader_next(r, &m);
        if (rv != MCL_OK) {
            done = rv == MCL_ENOENT;
            break;
        }
        k++;
    }
    mcl_log_reader_close(r);
    *n = k;
    return done;
}

uint64_t
tool_log_corrupt(const tool_log *l, uint64_t *bytes)
{
    if (bytes != NULL)
        *bytes = 0;
    return l->r != NULL ? mcl_log_reader_corrupt(l->r, bytes) : l->corrupt;
}

uint64_t
tool_log_tail(const tool_log *l)
{
    return l->r != NULL ? mcl_log_reader_tail(l->r) : 0; // (a remote log: not told)
}

const char *
tool_log_error(tool_log *l)
{
    return l->err[0] ? l->err : "failed";
}

void
tool_log_close(tool_log *l)
{
    if (l == NULL)
        return;
    mcl_log_reader_close(l->r);
    if (l->s != NULL) {
        mcl_stream_close(l->s, 2000);
        mcl_stream_free(l->s);
    }
    free(l->loc);
    tool_free_list(l->paths, l->npaths);
    free(l);
}

size_t
tool_utf8_len(const uint8_t *p, size_t n, uint32_t *cpp)
{
    uint8_t c = p[0];
    if (c < 0x80) {
        if (cpp != NULL)
            *cpp = c;
        return 1;
    }
    size_t need;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
        need = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        need = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    if (cpp != NULL)
        *cpp = cp;
    return need;
}
