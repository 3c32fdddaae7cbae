#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t tool_stop;

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
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void
log_sink(mcl_log_level level, const char *component, const char *message, void *user)
{
    fprintf(stderr, "%s: %s: %s: %s\n", (const char *)user, mcl_log_level_name(level), component,
            message);
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

static int
log_open_local(const char *prog, tool_log *l, const char *const *paths, int npaths)
{
    mcl_log_reader_options ro = {.topics = (const char *const *)l->o.topics, .ntopics = l->o.ntopics};
    mcl_err rv = mcl_log_reader_open(&l->r, paths, (size_t)npaths, &ro);
    const mcl_raw_msg *m;
    if (rv == MCL_OK && mcl_log_reader_next(l->r, &m) == MCL_OK) {
        l->first_ns = m->recv_realtime_ns;
        l->have_first = true;
    }
    if (rv == MCL_OK && (l->o.start_s > 0 || l->o.end_s > 0)) {
        if (!l->have_first) {
            tool_err(prog, "%s: no records: --start/--end count from the first", paths[0]);
            return EXIT_RUNTIME;
        }
        mcl_log_reader_close(l->r);
        l->r = NULL;
        ro.start_ns = l->o.start_s > 0 ? l->first_ns + (int64_t)(l->o.start_s * 1e9) : 0;
        ro.end_ns = l->o.end_s > 0 ? l->first_ns + (int64_t)(l->o.end_s * 1e9) : 0;
        rv = mcl_log_reader_open(&l->r, paths, (size_t)npaths, &ro);
    } else if (rv == MCL_OK) {
        rv = mcl_log_reader_reset(l->r);
    }
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", paths[0], mcl_strerror(rv));
        return rv == MCL_ENOENT || rv == MCL_EPROTO ? EXIT_USAGE : EXIT_RUNTIME;
    }
    return EXIT_OK;
}

// Opens the remote log with the filters as params (start_ns/end_ns: absolute, 0: none).
static mcl_err
log_dial(tool_log *l, int64_t start_ns, int64_t end_ns)
{
    mcl_log_reader_options fo = {.topics = (const char *const *)l->o.topics,
                                 .ntopics = l->o.ntopics,
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
    if ((rv = mcl_stream_open(&l->s, l->loc, NULL, &so)) != MCL_OK) {
        snprintf(l->err, sizeof(l->err), "%s", mcl_strerror(rv));
        return rv;
    }
    if (mcl_stream_kind_of(l->s) != MCL_STREAM_ENTITIES) {
        snprintf(l->err, sizeof(l->err), "not a log (a byte stream)");
        return MCL_EPROTO;
    }
    int64_t v;
    if (info_i64(mcl_stream_info(l->s), "corrupt", &v) && v > 0)
        l->corrupt = (uint64_t)v;
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
    if (rv == MCL_OK && (l->o.start_s > 0 || l->o.end_s > 0)) {
        if (!l->have_first) {
            tool_err(prog, "%s: no records: --start/--end count from the first", loc);
            return EXIT_RUNTIME;
        }
        // The server filters by absolute times: open again with them.
        mcl_stream_close(l->s, 2000);
        mcl_stream_free(l->s);
        l->s = NULL;
        rv = log_dial(l, l->o.start_s > 0 ? l->first_ns + (int64_t)(l->o.start_s * 1e9) : 0,
                      l->o.end_s > 0 ? l->first_ns + (int64_t)(l->o.end_s * 1e9) : 0);
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

uint64_t
tool_log_corrupt(const tool_log *l, uint64_t *bytes)
{
    if (bytes != NULL)
        *bytes = 0;
    return l->r != NULL ? mcl_log_reader_corrupt(l->r, bytes) : l->corrupt;
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
    free(l);
}
