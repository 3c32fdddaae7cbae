// SPDX-License-Identifier: BSD-3-Clause
// Allocation seam, logging, clocks, errno mapping, randomness.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static atomic_long alloc_fail_countdown = -1;

void
mcl__alloc_fail_after(long n)
{
    atomic_store(&alloc_fail_countdown, n);
}

static bool
alloc_should_fail(void)
{
    long v = atomic_load_explicit(&alloc_fail_countdown, memory_order_relaxed);
    if (MCL__LIKELY(v < 0))
        return false;
    v = atomic_fetch_sub(&alloc_fail_countdown, 1);
    if (v == 0)
        return true;
    if (v < 0) // raced past zero: disable again
        atomic_store(&alloc_fail_countdown, -1);
    return false;
}

void *
mcl__alloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n == 0 ? 1 : n);
}

void *
mcl__zalloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return calloc(1, n == 0 ? 1 : n);
}

void *
mcl__realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n == 0 ? 1 : n);
}

void
mcl__free(void *p)
{
    free(p);
}

char *
mcl__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = mcl__alloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

// --- logging ---------------------------------------------------------------------------------

// Readers (records being emitted) hold it across the handler call, so that once
// mcl_log_set_handler() returns, the old handler is not running and will not run again.
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_INITIALIZER;
static mcl_log_fn log_fn;
static void *log_user;
static atomic_int log_min = MCL_LOG_ERROR + 1; // nothing is enabled without a handler

void
mcl_log_set_handler(mcl_log_fn fn, void *user, mcl_log_level min_level)
{
    pthread_rwlock_wrlock(&log_lock);
    log_fn = fn;
    log_user = user;
    atomic_store(&log_min, fn == NULL ? MCL_LOG_ERROR + 1 : (int)min_level);
    pthread_rwlock_unlock(&log_lock);
}

const char *
mcl_log_level_name(mcl_log_level level)
{
    switch (level) {
    case MCL_LOG_DEBUG:
        return "debug";
    case MCL_LOG_INFO:
        return "info";
    case MCL_LOG_WARN:
        return "warn";
    case MCL_LOG_ERROR:
        return "error";
    }
    return "?";
}

void
mcl__log_forked_child(void)
{
    // Another thread may have held log_lock at fork time: re-create it, and stay silent (the
    // user's handler belongs to the parent).
    pthread_rwlock_t fresh = PTHREAD_RWLOCK_INITIALIZER;
    memcpy(&log_lock, &fresh, sizeof(fresh));
    log_fn = NULL;
    log_user = NULL;
    atomic_store(&log_min, MCL_LOG_ERROR + 1);
}

bool
mcl__log_enabled(mcl_log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min, memory_order_relaxed);
}

static void
log_emit(mcl_log_level level, const char *component, const char *text)
{
    pthread_rwlock_rdlock(&log_lock);
    if (log_fn != NULL)
        log_fn(level, component, text, log_user);
    pthread_rwlock_unlock(&log_lock);
}

void
mcl__log(mcl_log_level level, const char *component, const char *fmt, ...)
{
    if (!mcl__log_enabled(level))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_emit(level, component, buf);
}

mcl_err
mcl__fail(mcl_err code, char *errbuf, size_t errlen, const char *component, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    // With an error buffer the caller gets the text and decides; without one, the log is the
    // only place the detail goes, so it is a warning.
    mcl_log_level lvl = errbuf != NULL && errlen > 0 ? MCL_LOG_DEBUG : MCL_LOG_WARN;
    if (errbuf != NULL && errlen > 0)
        snprintf(errbuf, errlen, "%s", buf);
    if (mcl__log_enabled(lvl))
        log_emit(lvl, component, buf);
    return code;
}

mcl_err
mcl__sys_err(int e)
{
    switch (e) {
    case 0:
        return MCL_OK;
    case EINVAL:
        return MCL_EINVAL;
    case ENOMEM:
    case ENOBUFS:
        return MCL_ENOMEM;
    case ETIMEDOUT:
        return MCL_ETIMEDOUT;
    case EAGAIN:
        return MCL_EAGAIN;
    case EADDRINUSE:
        return MCL_EADDRINUSE;
    case EMSGSIZE:
        return MCL_EMSGSIZE;
    case ENODEV:
    case ENXIO:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EADDRNOTAVAIL:
    case ENETDOWN:
        return MCL_ENODEV;
    case EPERM:
    case EACCES:
        return MCL_EPERM;
    case EINTR:
        return MCL_EINTR;
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
    case EOPNOTSUPP:
        return MCL_ENOTSUP;
    default:
        return MCL_ESYS;
    }
}

bool
mcl__inherited(pid_t owner)
{
    return owner != 0 && owner != getpid();
}

int64_t
mcl__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
mcl__coarse_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
mcl__real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

mcl_err
mcl__random_u64(uint64_t *out)
{
    uint64_t v = 0;
    do {
        ssize_t n = getrandom(&v, sizeof(v), 0);
        if (n != (ssize_t)sizeof(v)) {
            int e = errno;
            if (n < 0 && e == EINTR)
                continue;
            return n < 0 ? mcl__sys_err(e) : MCL_ESYS;
        }
    } while (v == 0);
    *out = v;
    return MCL_OK;
}

// --- small files ---------------------------------------------------------------------------

mcl_err
mcl__read_small_file(const char *path, size_t max, char **out, size_t *len, const char **why)
{
    *out = NULL;
    *len = 0;
    *why = "";
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        *why = strerror(e);
        return e == ENOENT ? MCL_ENOENT : e == EACCES ? MCL_EPERM : mcl__sys_err(e);
    }
    struct stat sb;
    mcl_err rv = MCL_OK;
    if (fstat(fd, &sb) != 0) {
        *why = strerror(errno);
        rv = mcl__sys_err(errno);
    } else if (!S_ISREG(sb.st_mode)) {
        *why = S_ISDIR(sb.st_mode) ? "a directory, not a regular file" : "not a regular file";
        rv = MCL_EINVAL;
    } else if ((uint64_t)sb.st_size > max) {
        *why = "too large for a key file";
        rv = MCL_EMSGSIZE;
    }
    char *buf = NULL;
    size_t got = 0;
    if (rv == MCL_OK && (buf = mcl__alloc((size_t)sb.st_size + 1)) == NULL)
        rv = MCL_ENOMEM;
    while (rv == MCL_OK && got < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *why = strerror(errno);
            rv = mcl__sys_err(errno);
        } else if (n == 0) {
            break; // shrank meanwhile: what is there
        } else {
            got += (size_t)n;
        }
    }
    close(fd);
    if (rv != MCL_OK) {
        mcl__free(buf);
        return rv;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return MCL_OK;
}

// --- base64 ----------------------------------------------------------------------------------

static const char b64_tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
mcl__b64_encode(const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t olen = (len + 2) / 3 * 4;
    char *o = mcl__alloc(olen + 1);
    if (o == NULL)
        return NULL;
    size_t j = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        o[j++] = b64_tab[v >> 18];
        o[j++] = b64_tab[(v >> 12) & 63];
        o[j++] = b64_tab[(v >> 6) & 63];
        o[j++] = b64_tab[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        o[j++] = b64_tab[v >> 18];
        o[j++] = b64_tab[(v >> 12) & 63];
        o[j++] = '=';
        o[j++] = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        o[j++] = b64_tab[v >> 18];
        o[j++] = b64_tab[(v >> 12) & 63];
        o[j++] = b64_tab[(v >> 6) & 63];
        o[j++] = '=';
    }
    o[j] = '\0';
    return o;
}

static int
b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool
mcl__b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (n % 4 != 0)
        return false;
    size_t pad = 0;
    if (n > 0 && s[n - 1] == '=')
        pad++;
    if (n > 1 && s[n - 2] == '=')
        pad++;
    size_t olen = n / 4 * 3 - pad;
    uint8_t *o = mcl__alloc(olen + 1);
    if (o == NULL)
        return false;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            bool padpos = i + 4 == n && (size_t)k >= 4 - pad;
            v[k] = padpos ? 0 : b64_val(s[i + (size_t)k]);
            if (v[k] < 0) {
                mcl__free(o);
                return false;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        // The bits a padded group does not use must be 0 ("QR==" is not another "QQ=="): one
        // text per binary value, never a silent guess.
        if (i + 4 == n && ((pad == 2 && (w & 0xFFFF) != 0) || (pad == 1 && (w & 0xFF) != 0))) {
            mcl__free(o);
            return false;
        }
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int k = 0; k < 3 && j < olen; k++)
            o[j++] = b[k];
    }
    *out = o;
    *outlen = olen;
    return true;
}
