// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/err.h
 * Error codes. Every fallible mcl function returns an mcl_err; MCL_OK (0) is success.
 * Codes are positive, stable and only ever appended.
 */
#ifndef MCL_ERR_H
#define MCL_ERR_H

#include <mcl/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The one table of codes, names and texts. New codes go at the end. */
#define MCL_ERR_MAP(X)                                                                             \
    X(OK, 0, "success")                                                                            \
    X(EINVAL, 1, "invalid argument")                                                               \
    X(ENOMEM, 2, "out of memory")                                                                  \
    X(ETIMEDOUT, 3, "timed out")                                                                   \
    X(EAGAIN, 4, "nothing available now; try again")                                               \
    X(ECLOSED, 5, "object is closed")                                                              \
    X(ENOTSUP, 6, "not supported")                                                                 \
    X(ESTATE, 7, "operation not valid in this state")                                              \
    X(EADDRINUSE, 8, "address in use")                                                             \
    X(EMSGSIZE, 9, "message too large")                                                            \
    X(ENODEV, 10, "no such interface or no multicast route")                                      \
    X(EPROTO, 11, "malformed or foreign datagram or packet")                                       \
    X(ESYS, 12, "operating-system error")                                                          \
    X(EURL, 13, "invalid connection URL")                                                          \
    X(EALREADY, 14, "already done (already open, or already subscribed)")                          \
    X(ENOENT, 15, "not found")                                                                     \
    X(EPERM, 16, "permission denied")                                                              \
    X(EINTR, 17, "interrupted")                                                                   \
    X(ETYPE, 18, "value is not of the expected type")                                             \
    X(ERANGE, 19, "value out of range for the requested type")                                    \
    X(EREADONLY, 20, "field is read-only")                                                        \
    X(EMISSING, 21, "mandatory field missing")                                                    \
    X(EDECODE, 22, "payload cannot be decoded")                                                   \
    X(ENOTMAP, 23, "payload is not a map")                                                        \
    X(EEXIST, 24, "already exists")                                                               \
    X(ECANCELED, 25, "cancelled")                                                                 \
    X(EAUTH, 26, "authentication failed (wrong or missing key)")                                  \
    X(EUNREACH, 27, "peer unreachable (gone, or no route to it)")                                 \
    X(EEOF, 28, "end of stream")

/** Error codes; see MCL_ERR_MAP for the texts. */
typedef enum mcl_err {
#define MCL_ERR_ENUM_(name, val, text) MCL_##name = val,
    MCL_ERR_MAP(MCL_ERR_ENUM_)
#undef MCL_ERR_ENUM_
} mcl_err;

/**
 * Human-readable text of @p err ("invalid argument").
 * Ownership: static text, never NULL (unknown codes give "unknown error"). Thread-safe.
 * @since 0.1
 */
MCL_API const char *mcl_strerror(mcl_err err);

/**
 * Symbolic name of @p err ("MCL_EINVAL").
 * Ownership: static text, never NULL (unknown codes give "MCL_E?"). Thread-safe.
 * @since 0.1
 */
MCL_API const char *mcl_err_name(mcl_err err);

#ifdef __cplusplus
}
#endif
#endif
