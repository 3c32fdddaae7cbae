// SPDX-License-Identifier: BSD-3-Clause
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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

// --- the library's messages: one line per error ------------------------------------------------

// A warning held (tool_log_to_stderr()): the tool's line for the failure may claim it; the
// thread prints it when nobody has by due_ns. Lock order: held.lock, then stderr.
enum { HOLD_MS = 500 };
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool have;
    pthread_t owner;   // the thread that logged it
    int64_t due_ns;    // CLOCK_MONOTONIC
    const char *prog;
    char component[32];
    char text[512];
} held = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pid_t held_pid; // the process whose thread prints (not a forked child)
static bool held_thread_on;

static void
print_lib_locked(const char *prog, mcl_log_level level, const char *component, const char *text)
{
    flockfile(stderr);
    status_clear_locked();
    fprintf(stderr, "%s: %s: %s: %s\n", prog, mcl_log_level_name(level), component, text);
    funlockfile(stderr);
}

// Prints what is held, if anything (with held.lock).
static void
held_print_locked(void)
{
    if (held.have)
        print_lib_locked(held.prog, MCL_LOG_WARN, held.component, held.text);
    held.have = false;
}

static void *
held_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held.lock);
    for (;;) {
        if (!held.have) {
            pthread_cond_wait(&held.cond, &held.lock);
            continue;
        }
        if (tool_mono_ns() >= held.due_ns) {
            held_print_locked();
            continue;
        }
        struct timespec ts = {.tv_sec = held.due_ns / 1000000000,
                              .tv_nsec = held.due_ns % 1000000000};
        pthread_cond_timedwait(&held.cond, &held.lock, &ts);
    }
    return NULL;
}

static void
held_at_exit(void)
{
    if (getpid() != held_pid)
        return;
    pthread_mutex_lock(&held.lock);
    held_print_locked();
    pthread_mutex_unlock(&held.lock);
}

static void
log_sink_verbose(mcl_log_level level, const char *component, const char *message, void *user)
{
    print_lib_locked((const char *)user, level, component, message);
}

static void
log_sink(mcl_log_level level, const char *component, const char *message, void *user)
{
    pthread_mutex_lock(&held.lock);
    held_print_locked(); // (an earlier one first: they stay in order)
    if (level != MCL_LOG_WARN || !held_thread_on) {
        print_lib_locked((const char *)user, level, component, message);
    } else {
        held.have = true;
        held.owner = pthread_self();
        held.due_ns = tool_mono_ns() + HOLD_MS * 1000000LL;
        held.prog = (const char *)user;
        snprintf(held.component, sizeof(held.component), "%s", component);
        snprintf(held.text, sizeof(held.text), "%s", message);
        pthread_cond_signal(&held.cond);
    }
    pthread_mutex_unlock(&held.lock);
}

// Whether the detail is about what msg names: its first "X: " part (a URL, a path) is in msg.
static bool
detail_related(const char *detail, const char *msg)
{
    const char *sep = strstr(detail, ": ");
    if (sep == NULL || sep == detail || sep - detail > 1000)
        return strstr(msg, detail) != NULL;
    char head[1024];
    snprintf(head, sizeof(head), "%.*s", (int)(sep - detail), detail);
    return strstr(msg, head) != NULL;
}

// Takes the warning held, if any, into buf (else buf is ""): one logged on this thread (the
// failing call ran here), or on another (a call that runs on the library's thread) when it
// is about what msg names.
static void
held_take(const char *msg, char *buf, size_t len)
{
    buf[0] = '\0';
    pthread_mutex_lock(&held.lock);
    if (held.have &&
        (pthread_equal(held.owner, pthread_self()) || detail_related(held.text, msg))) {
        snprintf(buf, len, "%s", held.text);
        held.have = false;
    }
    pthread_mutex_unlock(&held.lock);
}

// The part of a library detail that msg does not say already: leading "X: " parts whose X msg
// contains are dropped (a URL or a path the tool names too); "" when msg has all of it.
static const char *
detail_beyond(const char *detail, const char *msg)
{
    for (;;) {
        if (detail[0] == '\0' || strstr(msg, detail) != NULL)
            return "";
        const char *sep = strstr(detail, ": ");
        if (sep == NULL || sep == detail)
            return detail;
        char head[512];
        size_t hl = (size_t)(sep - detail) < sizeof(head) - 1 ? (size_t)(sep - detail) : sizeof(head) - 1;
        memcpy(head, detail, hl);
        head[hl] = '\0';
        if (strstr(msg, head) == NULL)
            return detail;
        detail = sep + 2;
    }
}

void
tool_err(const char *prog, const char *fmt, ...)
{
    char msg[1024], detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    held_take(msg, detail, sizeof(detail));
    const char *more = detail_beyond(detail, msg);
    flockfile(stderr);
    status_clear_locked();
    if (more[0] != '\0')
        fprintf(stderr, "%s: %s (%s)\n", prog, msg, more);
    else
        fprintf(stderr, "%s: %s\n", prog, msg);
    funlockfile(stderr);
}

int
tool_getopt(const char *prog, int argc, char **argv, const char *shortopts,
            const struct option *longopts)
{
    char so[128];
    snprintf(so, sizeof(so), ":h%s", shortopts); // ':': a missing value returns ':'
    opterr = 0;
    int c = getopt_long(argc, argv, so, longopts, NULL);
    if (c == 'h') {
        for (const struct option *o = longopts; o->name != NULL; o++)
            if (strcmp(o->name, "help") == 0)
                return o->flag == NULL ? o->val : 0;
    }
    if (c != '?' && c != ':')
        return c;
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    char name[128];
    bool is_long = strncmp(arg, "--", 2) == 0;
    if (is_long) {
        size_t n = strcspn(arg, "=");
        snprintf(name, sizeof(name), "%.*s", (int)(n < 100 ? n : 100), arg);
    } else {
        snprintf(name, sizeof(name), "-%c", optopt > 0 && optopt < 128 ? optopt : '?');
    }
    const char *why = "unknown option";
    if (c == ':') {
        why = "missing the value of option";
    } else if (is_long) {
        for (const struct option *o = longopts; o->name != NULL; o++)
            if (strcmp(o->name, name + 2) == 0)
                why = o->has_arg == no_argument ? "no value goes with option" : why;
        if (strcmp(why, "unknown option") == 0)
            for (const struct option *o = longopts; o->name != NULL; o++)
                if (strncmp(o->name, name + 2, strlen(name + 2)) == 0)
                    why = "ambiguous option";
    }
    tool_err(prog, "%s '%s' (%s --help lists the options)", why, name, prog);
    return '?';
}

void
tool_version(const char *prog)
{
    printf("%s %s\n", prog, mcl_version());
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
    if (verbose) {
        mcl_log_set_handler(log_sink_verbose, (void *)(uintptr_t)prog, MCL_LOG_DEBUG);
        return;
    }
    pthread_mutex_lock(&held.lock);
    if (!held_thread_on) {
        pthread_condattr_t ca;
        pthread_t t;
        if (pthread_condattr_init(&ca) == 0 && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
            pthread_cond_init(&held.cond, &ca) == 0) {
            // (Without the thread, warnings are printed at once, as errors are.)
            pthread_attr_t ta;
            pthread_attr_init(&ta);
            pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &ta, held_main, NULL) == 0) {
                held_thread_on = true;
                held_pid = getpid();
                atexit(held_at_exit);
            }
            pthread_attr_destroy(&ta);
        }
    }
    pthread_mutex_unlock(&held.lock);
    mcl_log_set_handler(log_sink, (void *)(uintptr_t)prog, MCL_LOG_WARN);
}

void
tool_format_size(uint64_t b, bool si, char *buf, size_t len)
{
    static const char *const bin[] = {"KiB", "MiB", "GiB", "TiB"};
    static const char *const dec[] = {"kB", "MB", "GB", "TB"};
    double base = si ? 1e3 : 1024.0, v = (double)b;
    if (v < base) {
        snprintf(buf, len, "%llu bytes", (unsigned long long)b);
        return;
    }
    int i = -1;
    while (v >= base && i < 3) {
        v /= base;
        i++;
    }
    // Whole binary units without a fraction ("64 MiB": what maxmsg=64M means).
    if (!si && v == floor(v))
        snprintf(buf, len, "%.0f %s", v, bin[i]);
    else
        snprintf(buf, len, "%.1f %s", v, si ? dec[i] : bin[i]);
}

void
tool_url_with(const char *url, const char *key, const char *value, char *buf, size_t len)
{
    size_t kl = strlen(key), o = 0;
    const char *q = strchr(url, '?');
    size_t base = q != NULL ? (size_t)(q - url) : strlen(url);
    o += (size_t)snprintf(buf, len, "%.*s", (int)base, url);
    char sep = '?';
    for (const char *p = q != NULL ? q + 1 : ""; *p != '\0' && o < len;) {
        size_t n = strcspn(p, "&");
        if (n > 0 && !(n >= kl && strncmp(p, key, kl) == 0 && (n == kl || p[kl] == '='))) {
            o += (size_t)snprintf(buf + o, len - o, "%c%.*s", sep, (int)n, p);
            sep = '&';
        }
        p += n;
        if (*p == '&')
            p++;
    }
    if (o < len)
        snprintf(buf + o, len - o, "%c%s=%s", sep, key, value);
}

// WHAT (a file, a line, a size) of len bytes is above conn's maxmsg: says so, with the URL that
// raises it (say_size: "is 70.0 MiB", else WHAT says the size; len 0: the size is not known,
// only that it is larger: a pipe).
void
tool_too_large(const char *prog, const mcl_connection *conn, const char *what, uint64_t len, bool say_size)
{
    size_t max = mcl_connection_maxmsg(conn);
    char have[40], lim[32], url[1200];
    tool_format_size(max, false, lim, sizeof(lim));
    if (len == 0)
        snprintf(have, sizeof(have), "larger");
    else
        tool_format_size(len, false, have, sizeof(have));
    // Whole MiB at least as large (maxmsg takes k/M/G suffixes); at most 4G-1.
    uint64_t mib = len == 0 ? 0 : (len + (1u << 20) - 1) >> 20;
    char val[32];
    if (len == 0)
        snprintf(val, sizeof(val), "SIZE");
    else if (mib < 4096)
        snprintf(val, sizeof(val), "%lluM", (unsigned long long)mib);
    else
        snprintf(val, sizeof(val), "4294967295");
    tool_url_with(mcl_connection_url(conn), "maxmsg", val, url, sizeof(url));
    tool_err(prog, "%s%s%s, above the connection's maxmsg (%s): raise it with -u '%s'%s", what,
             say_size ? " is " : "", say_size ? have : "", lim, url,
             mib < 4096 ? "" : " (the largest message: 4 GiB - 1 byte)");
}

void
tool_check_rcvbuf(const char *prog, const mcl_connection *conn, size_t granted)
{
    size_t want = mcl_connection_rcvbuf(conn);
    // The library's own line about it (held: a warning when rcvbuf= was given) goes.
    pthread_mutex_lock(&held.lock);
    if (held.have && pthread_equal(held.owner, pthread_self()) &&
        strstr(held.text, "receive buffer is") != NULL)
        held.have = false;
    pthread_mutex_unlock(&held.lock);
    // (Within about 1.5 %: the kernel's rounding, or a request above what a socket can have.)
    if (want == 0 || granted == 0 || (uint64_t)granted * 64 >= (uint64_t)want * 63)
        return;
    char g[32], w[32];
    tool_format_size(granted, false, g, sizeof(g));
    tool_format_size(want, false, w, sizeof(w));
    tool_err(prog,
             "warning: the kernel granted a receive buffer of %s, not the %s asked for (bursts "
             "may be dropped): raise it with sysctl -w net.core.rmem_max=%zu, or ask for less "
             "with rcvbuf= in the URL",
             g, w, want);
}

// Whether the URL names a key file (key=, curve=, curve_server=, curve_clients=) that cannot
// be read; then *e is its errno and path its name.
static bool
url_bad_key_file(const char *url, char *path, size_t plen, int *e)
{
    const char *q = strchr(url, '?');
    if (q == NULL)
        return false;
    static const char *const keys[] = {"key", "curve", "curve_server", "curve_clients"};
    for (const char *p = q + 1; *p != '\0';) {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        if (eq != NULL) {
            size_t kl = (size_t)(eq - p), vl = n - kl - 1;
            for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
                if (strlen(keys[i]) == kl && strncmp(p, keys[i], kl) == 0 && vl > 0 && vl < plen) {
                    memcpy(path, eq + 1, vl);
                    path[vl] = '\0';
                    struct stat st;
                    bool hexkey = vl == 64 && strspn(path, "0123456789abcdefABCDEF") == 64;
                    if (i == 2 && (hexkey || vl == 40) && stat(path, &st) != 0)
                        break; // curve_server= with a key itself
                    if (access(path, R_OK) != 0) {
                        *e = errno;
                        return true;
                    }
                }
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return false;
}

int
tool_open_status(const char *url, mcl_err rv)
{
    char path[1024];
    int e;
    if (rv == MCL_EURL || rv == MCL_EINVAL || (rv != MCL_ENOMEM && url_bad_key_file(url, path, sizeof(path), &e)))
        return EXIT_USAGE;
    return EXIT_RUNTIME;
}

int
tool_open_error(const char *prog, const char *what, const char *url, mcl_err rv)
{
    char path[1024];
    int e = 0;
    bool bad_file = rv != MCL_ENOMEM && url_bad_key_file(url, path, sizeof(path), &e);
    size_t wl = strlen(what);
    const char *sp = wl > 0 && what[wl - 1] == '=' ? "" : " "; // ("--bridge-out CH=URL")
    if (bad_file)
        tool_err(prog, "%s%s%s: key file %s: %s", what, sp, url, path, strerror(e));
    else
        tool_err(prog, "%s%s%s: %s", what, sp, url, mcl_strerror(rv));
    return bad_file || rv == MCL_EURL || rv == MCL_EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
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
        // (A key file that cannot be read, or is no key file: the input is wrong.)
        return rv == MCL_EURL || rv == MCL_ENOENT || rv == MCL_EPERM || rv == MCL_EAUTH ||
                       rv == MCL_EINVAL
                   ? EXIT_USAGE
                   : EXIT_RUNTIME;
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
    // The library logged each failing peer once; this line says how many attempts failed.
    mcl_broadcaster_stats st = {0};
    (void)mcl_raw_broadcaster_stats(b, &st);
    char why[96] = "timed out";
    if (rv == MCL_EAUTH)
        snprintf(why, sizeof(why), "%llu handshakes failed (wrong or missing CURVE key?)",
                 (unsigned long long)st.auth_failures);
    tool_err(prog, "%s: %s waiting %.3g s for %ld subscriber%s (--subscribers 0 publishes "
                   "without waiting)",
             mcl_connection_url(c), why, wait_s, want, want == 1 ? "" : "s");
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
    if (rv == MCL_EPROTO) {
        tool_err(prog, "%s: not an mcl or Python MCL log", paths[0]);
        return EXIT_USAGE;
    }
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", paths[0], mcl_strerror(rv));
        return rv == MCL_ENOENT || rv == MCL_EPERM ? EXIT_USAGE : EXIT_RUNTIME;
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
