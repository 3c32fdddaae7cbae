// SPDX-License-Identifier: BSD-3-Clause
// Internal helpers shared by every layer of the library: allocation seam, logging, byte order,
// clocks and errno mapping. Never installed.
#ifndef MCL__INTERNAL_H
#define MCL__INTERNAL_H

#include <mcl/err.h>
#include <mcl/log.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define MCL__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MCL__LIKELY(x) __builtin_expect(!!(x), 1)
#define MCL__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MCL__PRINTF(a, b)
#define MCL__LIKELY(x) (x)
#define MCL__UNLIKELY(x) (x)
#endif

// Every allocation goes through these, so tests can inject failures (mcl__alloc_fail_after).
void *mcl__alloc(size_t n);
void *mcl__zalloc(size_t n);
void *mcl__realloc(void *p, size_t n);
void mcl__free(void *p);
char *mcl__strdup(const char *s);
// Test seam: the n-th allocation from now on (0 = the next one) fails; -1 disables.
void mcl__alloc_fail_after(long n);

// Logging through the optional handler (mcl/log.h). Cheap when no handler is installed.
bool mcl__log_enabled(mcl_log_level level);
// In a process just forked from a threaded one: make logging safe (and silent).
void mcl__log_forked_child(void);
void mcl__log(mcl_log_level level, const char *component, const char *fmt, ...) MCL__PRINTF(3, 4);

// Formats into errbuf (may be NULL) and logs (DEBUG when errbuf takes it, else WARN). Returns code, for `return mcl__fail(...)`.
mcl_err mcl__fail(mcl_err code, char *errbuf, size_t errlen, const char *component,
                  const char *fmt, ...) MCL__PRINTF(5, 6);

// errno -> mcl_err; unmapped values become MCL_ESYS.
mcl_err mcl__sys_err(int errnum);

// Clocks, in nanoseconds.
// Whether an object opened by process @p owner is being used in a forked child of it: there the
// object's threads do not exist, and its sockets, group memberships, receiver processes and
// peers are the parent's. Such an object's close and free release only the child's memory.
bool mcl__inherited(pid_t owner);
int64_t mcl__mono_ns(void);
// CLOCK_MONOTONIC_COARSE: the same clock a tick behind (some ms), at a fraction of the cost;
// for what is measured in seconds (when a link was last heard).
int64_t mcl__coarse_ns(void);
int64_t mcl__real_ns(void);

// Big-endian encoding (never by casting buffers to structs): byte by byte, or, where the
// compiler says the machine is little-endian, one unaligned move and a byte swap (what the
// byte-by-byte form compiles to when the compiler recognises it, which it does not always).
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MCL__BSWAP 1
#endif
static inline void
mcl__put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void
mcl__put_be32(uint8_t *p, uint32_t v)
{
#ifdef MCL__BSWAP
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
#endif
}
static inline void
mcl__put_be64(uint8_t *p, uint64_t v)
{
#ifdef MCL__BSWAP
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
#else
    mcl__put_be32(p, (uint32_t)(v >> 32));
    mcl__put_be32(p + 4, (uint32_t)v);
#endif
}
static inline uint16_t
mcl__get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t
mcl__get_be32(const uint8_t *p)
{
#ifdef MCL__BSWAP
    uint32_t v;
    memcpy(&v, p, 4);
    return __builtin_bswap32(v);
#else
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
#endif
}
static inline uint64_t
mcl__get_be64(const uint8_t *p)
{
#ifdef MCL__BSWAP
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
#else
    return (uint64_t)mcl__get_be32(p) << 32 | mcl__get_be32(p + 4);
#endif
}

// mcl__nul_at for n <= 32.
static inline size_t
mcl__nul_at_short(const uint8_t *p, size_t n)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    // (v - 0x01..) & ~v & 0x80.. sets the top bit of v's first zero byte (and maybe of
    // bytes after it, never before): its lowest set bit is the first NUL.
    if (n >= 8 && n <= 32) {
        uint64_t v, z;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&v, p + i, 8);
            z = (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
            if (z != 0)
                return i + (size_t)__builtin_ctzll(z) / 8;
        }
        if (i < n) { // the last 8 bytes (those before i hold no NUL)
            memcpy(&v, p + n - 8, 8);
            z = (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
            if (z != 0)
                return n - 8 + (size_t)__builtin_ctzll(z) / 8;
        }
        return n;
    }
    if (n >= 4 && n < 8) {
        uint32_t v, z;
        memcpy(&v, p, 4);
        z = (v - 0x01010101U) & ~v & 0x80808080U;
        if (z != 0)
            return (size_t)__builtin_ctz(z) / 8;
        memcpy(&v, p + n - 4, 4);
        z = (v - 0x01010101U) & ~v & 0x80808080U;
        return z != 0 ? n - 4 + (size_t)__builtin_ctz(z) / 8 : n;
    }
#endif
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0)
            return i;
    return n;
}

// The index of the first NUL byte of p[0..n), or n. Topics are short: the first 32 bytes are
// looked at a word at a time (no call, no loop per byte), the rest with memchr.
static inline size_t
mcl__nul_at(const uint8_t *p, size_t n)
{
    if (n <= 32)
        return mcl__nul_at_short(p, n);
    size_t i = mcl__nul_at_short(p, 32);
    if (i < 32)
        return i;
    const uint8_t *z = memchr(p + 32, 0, n - 32);
    return z != NULL ? (size_t)(z - p) : n;
}

// memcpy(dst, src, n) for the short runs of a topic: up to 16 bytes in two overlapping moves
// (no call), longer ones with memcpy.
static inline void
mcl__copy_short(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 8 && n <= 16) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n > 0) {
        memcpy(d, s, n);
    }
}

// memcmp(a, b, n) == 0 for the short runs of a topic: up to 16 bytes in two overlapping
// compares (no call), longer ones with memcmp.
static inline bool
mcl__same_short(const void *pa, const void *pb, size_t n)
{
    const uint8_t *a = pa, *b = pb;
    if (n >= 8 && n <= 16) {
        uint64_t x, y, u, v;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return x == y && u == v;
    }
    if (n >= 4 && n < 8) {
        uint32_t x, y, u, v;
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return x == y && u == v;
    }
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i])
                return false;
        return true;
    }
    return memcmp(a, b, n) == 0;
}

// Base64 (RFC 4648, with padding). encode: returns a NUL-terminated string (mcl__free) or NULL.
// decode: strict (padding required, no whitespace); false on malformed input or no memory.
char *mcl__b64_encode(const void *data, size_t len);
bool mcl__b64_decode(const char *s, size_t slen, uint8_t **out, size_t *outlen);

// A random 64-bit value from the kernel (getrandom), never 0.
mcl_err mcl__random_u64(uint64_t *out);

// Reads a small file that came from a user (key files and the like), bounded: only a regular
// file (a FIFO, device or directory is refused without blocking: opened O_NONBLOCK and checked
// with fstat), at most `max` bytes (a larger one is refused, MCL_EMSGSIZE), never following it
// past what fstat said. On success *out is a NUL-terminated buffer (mcl__free) of *len bytes.
// On failure *why is a static text for the message (e.g. "not a regular file") and the error is
// MCL_ENOENT, MCL_EMSGSIZE, MCL_EINVAL (not a regular file) or a system error.
mcl_err mcl__read_small_file(const char *path, size_t max, char **out, size_t *len,
                             const char **why);

#endif
