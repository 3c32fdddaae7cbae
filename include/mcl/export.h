// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/export.h
 * Symbol visibility for the public API (everything not marked MCL_API is hidden).
 */
#ifndef MCL_EXPORT_H
#define MCL_EXPORT_H

#if defined(MCL_BUILDING_LIBRARY) && defined(__GNUC__)
#define MCL_API __attribute__((visibility("default")))
#else
#define MCL_API
#endif

#endif
