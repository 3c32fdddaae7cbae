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
