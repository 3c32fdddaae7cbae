// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/logger.h
 * A logging facility for applications: levels, several sinks each with its own filters,
 * callable from any thread. mcl_logger_install() routes the library's own log records
 * (mcl/log.h) through a logger.
 */
#ifndef MCL_LOGGER_H
#define MCL_LOGGER_H

#include <mcl/err.h>
#include <mcl/export.h>
#include <mcl/log.h>

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mcl_logger mcl_logger;

/** Create a logger with no sink. Free with mcl_logger_free(). @since 0.1 */
MCL_API mcl_err mcl_logger_new(mcl_logger **lp);

/** Release; uninstalls it first if installed. NULL-safe. @since 0.1 */
MCL_API void mcl_logger_free(mcl_logger *l);

/**
 * Add a sink: @p fn receives records at @p min_level or above whose component starts with
 * @p component_prefix (NULL or "": all). Sinks are called in the order added, under the
 * logger's lock (so one record is never interleaved with another). Thread-safe.
 * @retval MCL_OK @retval MCL_EINVAL @retval MCL_ENOMEM
 * @since 0.1
 */
MCL_API mcl_err mcl_logger_add_sink(mcl_logger *l, mcl_log_fn fn, void *user,
                                    mcl_log_level min_level, const char *component_prefix);

/**
 * Add a sink writing "TIME LEVEL COMPONENT: MESSAGE" lines to @p f (e.g. stderr); the FILE is
 * not closed by the logger. Same filters as mcl_logger_add_sink().
 * @since 0.1
 */
MCL_API mcl_err mcl_logger_add_file(mcl_logger *l, FILE *f, mcl_log_level min_level,
                                    const char *component_prefix);

/** Log one record (printf format). Thread-safe. @since 0.1 */
MCL_API void mcl_logger_log(mcl_logger *l, mcl_log_level level, const char *component,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * Route the library's log records through @p l (replaces any handler set with
 * mcl_log_set_handler()); NULL uninstalls. @since 0.1
 */
MCL_API void mcl_logger_install(mcl_logger *l);

#ifdef __cplusplus
}
#endif
#endif
