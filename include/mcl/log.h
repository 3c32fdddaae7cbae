// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/log.h
 * Optional log callback. The library never prints: warnings and details of errors (why a URL
 * was rejected, a receive buffer smaller than requested, a malformed datagram) go to the
 * process-wide handler installed here, or nowhere when none is installed (the default).
 */
#ifndef MCL_LOG_H
#define MCL_LOG_H

#include <mcl/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Severity of a log record, lowest first. */
typedef enum mcl_log_level {
    MCL_LOG_DEBUG = 0,
    MCL_LOG_INFO = 1,
    MCL_LOG_WARN = 2,
    MCL_LOG_ERROR = 3,
} mcl_log_level;

/**
 * A log sink.
 * @param level      severity.
 * @param component  the module that speaks ("url", "listener", ...); static text.
 * @param message    one line, no trailing newline; borrowed, valid only during the call.
 * @param user       the pointer given to mcl_log_set_handler().
 * Thread-safety: called from whichever thread hit the event (a listener thread, the caller's
 * thread), possibly from several threads at once; it must not call back into mcl_log_set_handler().
 */
typedef void (*mcl_log_fn)(mcl_log_level level, const char *component, const char *message,
                           void *user);

/**
 * Install (or, with @p fn NULL, remove) the process-wide log handler.
 * @param fn         the sink, or NULL for silence.
 * @param user       passed to every call of @p fn; stored, never dereferenced.
 * @param min_level  records below this level are not formatted at all.
 * Thread-safe: once this returns, the previous handler is not running and is never called
 * again (so its @p user data may be freed). A handler must not call this function.
 * @since 0.1
 */
MCL_API void mcl_log_set_handler(mcl_log_fn fn, void *user, mcl_log_level min_level);

/** Name of a level ("debug", "info", "warn", "error"); static text, never NULL. @since 0.1 */
MCL_API const char *mcl_log_level_name(mcl_log_level level);

#ifdef __cplusplus
}
#endif
#endif
