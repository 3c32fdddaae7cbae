// SPDX-License-Identifier: BSD-3-Clause
#define _GNU_SOURCE
#include <mcl/logger.h>

#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

typedef struct sink {
    mcl_log_fn fn;
    void *user;
    mcl_log_level min;
    char *prefix;
    size_t prefix_len;
    FILE *file;
} sink;

struct mcl_logger {
    pthread_mutex_t lock;
    sink *sinks;
    size_t n, cap;
    mcl_log_level min; // lowest level any sink wants
};

static mcl_logger *installed;
static pthread_mutex_t installed_lock = PTHREAD_MUTEX_INITIALIZER;

mcl_err
mcl_logger_new(mcl_logger **lp)
{
    if (lp != NULL)
        *lp = NULL;
    if (lp == NULL)
        return MCL_EINVAL;
    mcl_logger *l = mcl__zalloc(sizeof(*l));
    if (l == NULL)
        return MCL_ENOMEM;
    if (pthread_mutex_init(&l->lock, NULL) != 0) {
        mcl__free(l);
        return MCL_ESYS;
    }
    l->min = MCL_LOG_ERROR + 1;
    *lp = l;
    return MCL_OK;
}

void
mcl_logger_free(mcl_logger *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&installed_lock);
    if (installed == l) { // after this, no record is being emitted through l
        installed = NULL;
        mcl_log_set_handler(NULL, NULL, MCL_LOG_DEBUG);
    }
    pthread_mutex_unlock(&installed_lock);
    for (size_t i = 0; i < l->n; i++)
        mcl__free(l->sinks[i].prefix);
    mcl__free(l->sinks);
    pthread_mutex_destroy(&l->lock);
    mcl__free(l);
}

static void route(mcl_log_level level, const char *component, const char *message, void *user);

static mcl_err
add(mcl_logger *l, sink s, const char *prefix)
{
    if (l == NULL)
        return MCL_EINVAL;
    s.prefix = mcl__strdup(prefix ? prefix : "");
    if (s.prefix == NULL)
        return MCL_ENOMEM;
    s.prefix_len = strlen(s.prefix);
    mcl_err rv = MCL_OK;
    pthread_mutex_lock(&l->lock);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        sink *ns = mcl__realloc(l->sinks, nc * sizeof(*ns));
        if (ns == NULL)
            rv = MCL_ENOMEM;
        else {
            l->sinks = ns;
            l->cap = nc;
        }
    }
    if (rv == MCL_OK) {
        l->sinks[l->n++] = s;
        if (s.min < l->min)
            l->min = s.min;
    }
    pthread_mutex_unlock(&l->lock);
    if (rv != MCL_OK) {
        mcl__free(s.prefix);
        return rv;
    }
    pthread_mutex_lock(&installed_lock);
    if (installed == l) // the library may now have to format lower levels
        mcl_log_set_handler(route, l, l->min);
    pthread_mutex_unlock(&installed_lock);
    return MCL_OK;
}

mcl_err
mcl_logger_add_sink(mcl_logger *l, mcl_log_fn fn, void *user, mcl_log_level min,
                    const char *prefix)
{
    if (fn == NULL)
        return MCL_EINVAL;
    return add(l, (sink){.fn = fn, .user = user, .min = min}, prefix);
}

mcl_err
mcl_logger_add_file(mcl_logger *l, FILE *f, mcl_log_level min, const char *prefix)
{
    if (f == NULL)
        return MCL_EINVAL;
    return add(l, (sink){.file = f, .min = min}, prefix);
}

static void
emit(mcl_logger *l, mcl_log_level level, const char *component, const char *msg)
{
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n; i++) {
        sink *s = &l->sinks[i];
        if (level < s->min || strncmp(component, s->prefix, s->prefix_len) != 0)
            continue;
        if (s->file != NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            struct tm tm;
            gmtime_r(&ts.tv_sec, &tm);
            char t[32];
            strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
            fprintf(s->file, "%s.%03ldZ %-5s %s: %s\n", t, ts.tv_nsec / 1000000,
                    mcl_log_level_name(level), component, msg);
            fflush(s->file);
        } else {
            s->fn(level, component, msg, s->user);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

void
mcl_logger_log(mcl_logger *l, mcl_log_level level, const char *component, const char *fmt, ...)
{
    if (l == NULL || fmt == NULL || level < l->min)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    emit(l, level, component ? component : "", buf);
}

static void
route(mcl_log_level level, const char *component, const char *message, void *user)
{
    emit(user, level, component, message);
}

void
mcl_logger_install(mcl_logger *l)
{
    pthread_mutex_lock(&installed_lock);
    installed = l;
    if (l == NULL)
        mcl_log_set_handler(NULL, NULL, MCL_LOG_DEBUG);
    else
        mcl_log_set_handler(route, l, l->min);
    pthread_mutex_unlock(&installed_lock);
}
