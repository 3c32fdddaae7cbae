// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/version.h
 * Compile-time and run-time version of the mcl library.
 */
#ifndef MCL_VERSION_H
#define MCL_VERSION_H

#include <mcl/export.h>

#define MCL_VERSION_MAJOR 0
#define MCL_VERSION_MINOR 3
#define MCL_VERSION_PATCH 0
/** Version as one comparable number: 0xMMmmpp. */
#define MCL_VERSION_HEX ((MCL_VERSION_MAJOR << 16) | (MCL_VERSION_MINOR << 8) | MCL_VERSION_PATCH)
/** Version as text, "MAJOR.MINOR.PATCH", made from the three numbers above (the one source of
 * the version: CMake, mcl.pc, the packages, the man pages and every tool read those). */
#define MCL_VERSION_STRING                                                                         \
    MCL__VERSION_XSTR(MCL_VERSION_MAJOR) "." MCL__VERSION_XSTR(MCL_VERSION_MINOR) "."               \
        MCL__VERSION_XSTR(MCL_VERSION_PATCH)
#define MCL__VERSION_STR(x) #x
#define MCL__VERSION_XSTR(x) MCL__VERSION_STR(x)

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Version of the library actually loaded, as "MAJOR.MINOR.PATCH".
 * Ownership: static text, never NULL. Thread-safe.
 * @since 0.1
 */
MCL_API const char *mcl_version(void);

/** Version of the loaded library as MCL_VERSION_HEX. @since 0.1 */
MCL_API unsigned mcl_version_hex(void);

#ifdef __cplusplus
}
#endif
#endif
