// SPDX-License-Identifier: BSD-3-Clause
// Log files: writer (buffered, split, periodic flush) and reader (mmap, CRC32C, resync, merge,
// seek, Python MCL text logs). docs/log-format.md is the specification.
#define _GNU_SOURCE
#include <mcl/logfile.h>

#include "../core/internal.h"
#include "../core/zcodec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_MAGIC "MCLLOG\r\n"
#define REC_SYNC "MREC"
#define BLK_SYNC "MBLK"
enum { LOG_VERSION = 1, LOG_VERSION_Z = 2, REC_HDR = 12, REC_BODY = 32, FILE_HDR_FIXED = 24 };
#define MAX_RECORD ((uint64_t)1 << 32) // a body larger than this is not believed
// Compressed blocks (docs/log-format.md "Compressed blocks"): the body's fixed fields, the
// largest uncompressed size believed (checked before anything is allocated), the most it may
// expand over its bytes in the file (so that decompressing is linear in the file's size), and
// the default size of a writer's blocks.
// Inside a block, records are encoded as in a file without their sync marker (INNER_HDR: length
// and CRC), so that compressed bytes hold no copies of markers.
enum { BLK_BODY = 32, INNER_HDR = 8, MAX_BLOCK = 16 << 20, BLK_RATIO = 256, BLOCK_DEFAULT = 1 << 20 };

// --- CRC32C (Castagnoli) -----------------------------------------------------------------------
// Two implementations with the same results: the SSE4.2 crc32 instruction (x86-64, chosen at run
// time), three streams interleaved on long buffers; and a portable slicing-by-8 table. Both
// continue a CRC: crc32c_update(crc32c(A), B) == crc32c(A || B). crc32c_shift() moves a CRC over
// n zero bytes (GF(2) arithmetic), so that the CRC of a range can be taken from two prefix CRCs
// (the reader's resynchronisation, below).

#define CRC_POLY 0x82F63B78u // reflected

static uint32_t crc_tab[8][256];
static uint32_t crc_x2n[64];        // x^(2^k) mod P
static uint32_t crc_hw_l1, crc_hw_l2; // x^(8 * CRC_HW_BLOCK), x^(16 * CRC_HW_BLOCK) mod P
static bool crc_hw_ok;
static int crc_impl; // 0: a byte at a time (as before 0.3; benchmarks), 1: slicing by 8, 2: SSE4.2
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
enum { CRC_HW_BLOCK = 4096 }; // bytes per stream per round of the interleaved loop

// a * b mod P (reflected: bit 31 is x^0).
static uint32_t
crc_mulmod(uint32_t a, uint32_t b)
{
    uint32_t m = (uint32_t)1 << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0)
                break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ CRC_POLY : b >> 1;
    }
    return p;
}

// x^(8 n) mod P, n < 2^32: one product per non-zero hex digit of n (crc_x8n_tab[k][d] is
// x^(8 d 16^k) mod P).
static uint32_t crc_x8n_tab[8][16];
static uint32_t
crc_x8n(uint64_t n)
{
    uint32_t p = (uint32_t)1 << 31; // x^0
    for (unsigned k = 0; n != 0 && k < 8; n >>= 4, k++)
        if (n & 15)
            p = crc_mulmod(crc_x8n_tab[k][n & 15], p);
    for (unsigned k = 32; n != 0; n >>= 1, k++) // (not used by the reader: bodies are < 4 GiB)
        if (n & 1)
            p = crc_mulmod(crc_x2n[(k + 3) & 63], p);
    return p;
}

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    uint32_t p = (uint32_t)1 << 30; // x^1
    crc_x2n[0] = p;
    for (int k = 1; k < 64; k++)
        crc_x2n[k] = p = crc_mulmod(p, p);
    for (int k = 0; k < 8; k++) {
        crc_x8n_tab[k][0] = (uint32_t)1 << 31;
        for (int d = 1; d < 16; d++) // x^(8 d 16^k) = x^(8 (d-1) 16^k) * x^(2^(4k + 3))
            crc_x8n_tab[k][d] = crc_mulmod(crc_x8n_tab[k][d - 1], crc_x2n[4 * k + 3]);
    }
    crc_hw_l1 = crc_x8n(CRC_HW_BLOCK);
    crc_hw_l2 = crc_x8n(2 * CRC_HW_BLOCK);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    crc_hw_ok = __builtin_cpu_supports("sse4.2");
#endif
    crc_impl = crc_hw_ok ? 2 : 1;
}

// The CRC register (not inverted) over n bytes, slicing by 8.
static uint32_t
crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
    for (; n > 0 && ((uintptr_t)p & 7) != 0; n--)
        c = crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
            crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
            crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
    }
    for (; n > 0; n--)
        c = crc_tab[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

// The CRC register over n bytes with the crc32 instruction: three independent streams of
// CRC_HW_BLOCK bytes at a time (the instruction's latency is three times its throughput), joined
// by multiplying by x^(8 len) mod P; then one stream for the rest.
__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    for (; n > 0 && ((uintptr_t)p & 7) != 0; n--)
        c = _mm_crc32_u8(c, *p++);
    uint64_t c0 = c;
    while (n >= 3 * CRC_HW_BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *q = p;
        for (size_t i = 0; i < CRC_HW_BLOCK; i += 8, q += 8) {
            uint64_t a, b, d;
            memcpy(&a, q, 8);
            memcpy(&b, q + CRC_HW_BLOCK, 8);
            memcpy(&d, q + 2 * CRC_HW_BLOCK, 8);
            c0 = _mm_crc32_u64(c0, a);
            c1 = _mm_crc32_u64(c1, b);
            c2 = _mm_crc32_u64(c2, d);
        }
        c0 = crc_mulmod(crc_hw_l2, (uint32_t)c0) ^ crc_mulmod(crc_hw_l1, (uint32_t)c1) ^
             (uint32_t)c2;
        p += 3 * CRC_HW_BLOCK;
        n -= 3 * CRC_HW_BLOCK;
    }
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t a;
        memcpy(&a, p, 8);
        c0 = _mm_crc32_u64(c0, a);
    }
    c = (uint32_t)c0;
    for (; n > 0; n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#else
static uint32_t
crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    return crc_sw(c, p, n);
}
#endif

// Continues crc (a CRC32C of what came before, 0 for nothing) over n more bytes.
static uint32_t
crc32c_update(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    if (crc_impl == 2)
        return ~crc_hw(~crc, p, n);
    if (crc_impl == 1)
        return ~crc_sw(~crc, p, n);
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_tab[0][(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// The CRC of A || B, from crc(A) and crc(B) and B's length: crc32c_shift(crc(A), |B|) ^ crc(B).
static uint32_t
crc32c_shift(uint32_t crc, uint64_t n)
{
    pthread_once(&crc_once, crc_init);
    return n == 0 ? crc : crc_mulmod(crc_x8n(n), crc);
}

uint32_t mcl__crc32c(const void *data, size_t n);
int mcl__crc32c_impl(int impl);

uint32_t
mcl__crc32c(const void *data, size_t n)
{
    return crc32c_update(0, data, n);
}

// Tests and benchmarks: which implementation computes CRCs. impl < 0 asks; 0 is a byte at a
// time (the table lookup of mcl 0.2, for comparison), 1 slicing by 8 (the portable one), 2 the
// SSE4.2 instruction (when the CPU has it; else 1). Returns the one in use. Not synchronised
// with readers running at the same time (all give the same results).
int
mcl__crc32c_impl(int impl)
{
    pthread_once(&crc_once, crc_init);
    if (impl >= 0)
        crc_impl = impl >= 2 ? (crc_hw_ok ? 2 : 1) : impl;
    return crc_impl;
}

// --- writer ------------------------------------------------------------------------------------

struct mcl_log_writer {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    char *path;
    char *meta;
    mcl_log_writer_options o;
    bool split;
    FILE *f;
    char *fbuf;
    unsigned part, parts;
    uint64_t part_bytes, part_count;
    int64_t part_t0;
    uint64_t records, bytes;
    bool dirty, stop, failed;
    mcl_err err; // why `failed`
    // Records of the current part not yet known to be in the file (still buffered, or handed
    // to the kernel by a flush that has not been checked): where each ends in the part. On a
    // failed write, those past what reached the file are taken off the counts (write_failed()).
    uint64_t *pend;
    size_t npend;
    uint64_t pend_from; // where the first of them starts
    pthread_t flusher;
    bool has_flusher;
    // Compression: the block being collected (plain records, blk_len bytes, blk_n of them,
    // times blk_tmin..blk_tmax) and the buffer it is compressed into.
    uint8_t *blk, *zbuf;
    size_t blk_cap, blk_len, blk_n, zcap;
    int64_t blk_tmin, blk_tmax;
    mcl__zctx *zx;
};

static mcl_err
write_header(mcl_log_writer *w)
{
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    size_t ml = w->meta ? strlen(w->meta) : 0;
    size_t text = 64 + strlen(host) + ml;
    if (FILE_HDR_FIXED + text + 4 > 0xffff) // the header length field is 16 bits
        return mcl__fail(MCL_EINVAL, NULL, 0, "log", "header metadata too long (%zu bytes)", ml);
    uint8_t *h = mcl__zalloc(FILE_HDR_FIXED + text + 4);
    if (h == NULL)
        return MCL_ENOMEM;
    memcpy(h, LOG_MAGIC, 8);
    mcl__put_be16(h + 8, w->o.compress ? LOG_VERSION_Z : LOG_VERSION);
    char zl[32] = "";
    if (w->o.compress)
        snprintf(zl, sizeof(zl), "compress=%s\n", mcl__z_name(mcl__z_stored((int)w->o.compress)));
    int n = snprintf((char *)h + FILE_HDR_FIXED, text, "host=%s\npart=%u\n%s%s%s", host, w->part,
                     zl, w->meta ? w->meta : "", ml && w->meta[ml - 1] != '\n' ? "\n" : "");
    size_t len = FILE_HDR_FIXED + (size_t)(n < 0 ? 0 : n) + 4;
    mcl__put_be16(h + 10, (uint16_t)len);
    mcl__put_be32(h + 12, 0);
    mcl__put_be64(h + 16, (uint64_t)mcl__real_ns());
    mcl__put_be32(h + len - 4, mcl__crc32c(h, len - 4));
    mcl_err rv = fwrite(h, 1, len, w->f) == len ? MCL_OK : mcl__sys_err(errno);
    mcl__free(h);
    w->part_bytes = len;
    return rv;
}

enum { PEND_MAX = 1 << 15 }; // records buffered before a flush is forced (256 KiB of offsets)

// Everything buffered reached the kernel.
static void
confirmed(mcl_log_writer *w)
{
    w->npend = 0;
    w->pend_from = w->part_bytes;
}

// Writing the current part failed with errno e (disk full, a file size limit, an I/O error):
// from now on every call fails with it, and the counts keep only the records that reached the
// file (its size now tells: what stdio could not write is still in its buffer, never written).
static void
write_failed(mcl_log_writer *w, int e, const char *what)
{
    off_t at = w->f != NULL ? lseek(fileno(w->f), 0, SEEK_CUR) : -1;
    uint64_t in_file = at >= 0 ? (uint64_t)at : w->pend_from;
    size_t keep = 0;
    while (keep < w->npend && w->pend[keep] <= in_file)
        keep++;
    uint64_t end = keep > 0 ? w->pend[keep - 1] : w->pend_from;
    w->records -= w->npend - keep;
    w->bytes -= w->part_bytes - end;
    w->part_bytes = end;
    w->npend = 0;
    w->pend_from = end;
    if (!w->failed) {
        w->failed = true;
        w->err = mcl__fail(mcl__sys_err(e), NULL, 0, "log", "%s: %s: %s", w->path, what,
                           strerror(e));
    }
}

// fflush() of the current part; on failure, write_failed().
static bool
flush_file(mcl_log_writer *w)
{
    if (w->f == NULL)
        return true;
    errno = 0;
    if (fflush(w->f) == 0 && !ferror(w->f)) {
        confirmed(w);
        return true;
    }
    write_failed(w, errno ? errno : EIO, "write");
    return false;
}

static const uint8_t zeros[4096];

// Writes the block being collected (compression): as a block, or as the plain records it
// holds when compressing does not make it at least a 16th smaller. A block is padded with
// zero bytes to at least 1/BLK_RATIO of what it holds (the reader's bound on expansion).
// false when the file did not take it (write_failed(): its records are not counted).
static bool
emit_block(mcl_log_writer *w)
{
    size_t n = w->blk_n, u = w->blk_len;
    w->blk_n = w->blk_len = 0;
    if (n == 0)
        return true;
    // (room for the block's records and one more: a plain record's pend entry comes next)
    if (w->f == NULL || w->failed || (w->npend + n >= PEND_MAX && !flush_file(w)))
        return false;
    uint8_t *h = w->zbuf;
    size_t c = mcl__z_compress(w->zx, (int)w->o.compress, w->o.compress_level, w->blk, u,
                               h + REC_HDR + BLK_BODY, w->zcap - REC_HDR - BLK_BODY);
    size_t body = BLK_BODY + c, least = (u + BLK_RATIO - 1) / BLK_RATIO;
    if (body < least)
        body = least;
    size_t total = REC_HDR + body;
    errno = 0;
    bool ok;
    // Plain records (the block's, each with its marker) unless compressing saves a 16th: data
    // that hardly compresses reads faster plain, and takes about the same disk.
    if (c == 0 || total > (u + 4 * n) - (u + 4 * n) / 16) {
        total = u + 4 * n;
        ok = true;
        for (size_t at = 0; ok && at < u;) {
            size_t k = INNER_HDR + mcl__get_be32(w->blk + at);
            ok = fwrite(REC_SYNC, 1, 4, w->f) == 4 && fwrite(w->blk + at, 1, k, w->f) == k;
            at += k;
        }
    } else {
        memcpy(h, BLK_SYNC, 4);
        mcl__put_be32(h + 4, (uint32_t)body);
        uint8_t *b = h + REC_HDR;
        b[0] = (uint8_t)mcl__z_stored((int)w->o.compress);
        b[1] = 0;
        mcl__put_be16(b + 2, 0);
        mcl__put_be32(b + 4, (uint32_t)c);
        mcl__put_be32(b + 8, (uint32_t)u);
        mcl__put_be32(b + 12, (uint32_t)n);
        mcl__put_be64(b + 16, (uint64_t)w->blk_tmin);
        mcl__put_be64(b + 24, (uint64_t)w->blk_tmax);
        uint32_t crc = crc32c_update(0, b, BLK_BODY + c);
        for (size_t pad = body - BLK_BODY - c; pad > 0;) {
            size_t k = pad < sizeof(zeros) ? pad : sizeof(zeros);
            crc = crc32c_update(crc, zeros, k);
            pad -= k;
        }
        mcl__put_be32(h + 8, crc);
        ok = fwrite(h, 1, REC_HDR + BLK_BODY + c, w->f) == REC_HDR + BLK_BODY + c;
        for (size_t pad = body - BLK_BODY - c; ok && pad > 0;) {
            size_t k = pad < sizeof(zeros) ? pad : sizeof(zeros);
            ok = fwrite(zeros, 1, k, w->f) == k;
            pad -= k;
        }
    }
    if (!ok || ferror(w->f)) {
        write_failed(w, errno ? errno : EIO, "write");
        return false;
    }
    w->part_bytes += total;
    w->records += n;
    w->bytes += total;
    for (size_t i = 0; i < n; i++)
        w->pend[w->npend++] = w->part_bytes;
    w->dirty = true;
    return true;
}

// Writes the block being collected, then fflush(); on failure, write_failed().
static bool
flush_part(mcl_log_writer *w)
{
    return emit_block(w) && flush_file(w);
}

static mcl_err
open_part(mcl_log_writer *w)
{
    char *name = NULL;
    if (w->split) {
        if (asprintf(&name, "%s_%03u.mcllog", w->path, w->part) < 0)
            return MCL_ENOMEM;
    } else if ((name = strdup(w->path)) == NULL) {
        return MCL_ENOMEM;
    }
    int fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC | (w->o.overwrite ? O_TRUNC : O_EXCL),
                  0644);
    int e = errno;
    mcl_err rv = MCL_OK;
    if (fd < 0)
        rv = mcl__fail(e == EEXIST ? MCL_EEXIST : mcl__sys_err(e), NULL, 0, "log", "%s: %s", name,
                       e == EEXIST ? "exists (overwrite not allowed)" : strerror(e));
    free(name);
    if (rv != MCL_OK)
        return rv;
    w->f = fdopen(fd, "wb");
    if (w->f == NULL) {
        close(fd);
        return MCL_ENOMEM;
    }
    setvbuf(w->f, w->fbuf, _IOFBF, 1 << 20);
    w->part_count = 0;
    w->part_t0 = 0;
    w->parts++;
    rv = write_header(w);
    confirmed(w);
    return rv;
}

static mcl_err
close_part(mcl_log_writer *w)
{
    if (w->f == NULL)
        return MCL_OK;
    mcl_err rv = w->failed || flush_part(w) ? MCL_OK : w->err;
    if (rv == MCL_OK && !w->failed && fsync(fileno(w->f)) != 0 && errno != EINVAL) {
        write_failed(w, errno, "fsync");
        rv = w->err;
    }
    if (w->failed) { // (what stdio still holds must not reach the file at fclose)
        int fd = fileno(w->f);
        int nfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (nfd >= 0) {
            dup2(nfd, fd);
            close(nfd);
        }
    }
    if (fclose(w->f) != 0 && rv == MCL_OK && !w->failed)
        rv = mcl__sys_err(errno);
    w->f = NULL;
    return rv;
}

static void *
flusher_thread(void *arg)
{
    mcl_log_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t due = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)w->o.flush_ms * 1000000;
        ts.tv_sec = (time_t)(due / 1000000000);
        ts.tv_nsec = (long)(due % 1000000000);
        pthread_cond_timedwait(&w->cv, &w->lock, &ts);
        if (w->dirty && w->f != NULL && !w->failed) {
            flush_part(w); // disk full or I/O error: reported by the next call
            w->dirty = false;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

mcl_err
mcl_log_writer_open(mcl_log_writer **wp, const char *path, const mcl_log_writer_options *o)
{
    if (wp != NULL)
        *wp = NULL;
    if (wp == NULL || path == NULL || path[0] == '\0')
        return MCL_EINVAL;
    mcl_log_writer *w = mcl__zalloc(sizeof(*w));
    if (w == NULL)
        return MCL_ENOMEM;
    if (o != NULL)
        w->o = *o;
    if (w->o.flush_ms <= 0)
        w->o.flush_ms = 100;
    w->split = w->o.split_bytes || w->o.split_count || w->o.split_seconds > 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    mcl_err rv = MCL_OK;
    w->path = mcl__strdup(path);
    w->meta = o && o->metadata ? mcl__strdup(o->metadata) : NULL;
    w->fbuf = mcl__alloc(1 << 20);
    w->pend = mcl__alloc(PEND_MAX * sizeof(*w->pend));
    if (w->path == NULL || w->fbuf == NULL || w->pend == NULL ||
        (o && o->metadata && w->meta == NULL))
        rv = MCL_ENOMEM;
    if (rv == MCL_OK && w->o.compress != MCL_LOG_COMPRESS_NONE) {
        w->blk_cap = w->o.block_bytes ? w->o.block_bytes : BLOCK_DEFAULT;
        if ((w->o.compress != MCL_LOG_COMPRESS_ZSTD && w->o.compress != MCL_LOG_COMPRESS_LZ4 &&
             w->o.compress != MCL_LOG_COMPRESS_LZ4HC) ||
            w->blk_cap > MAX_BLOCK || w->blk_cap < REC_HDR + REC_BODY || w->o.compress_level < 0)
            rv = mcl__fail(MCL_EINVAL, NULL, 0, "log", "bad compression options");
        else if (!mcl__z_built((int)w->o.compress))
            rv = mcl__fail(MCL_ENOTSUP, NULL, 0, "log", "built without %s",
                           mcl__z_name((int)w->o.compress));
        if (rv == MCL_OK) {
            w->zcap = REC_HDR + BLK_BODY + mcl__z_bound((int)w->o.compress, w->blk_cap);
            w->blk = mcl__alloc(w->blk_cap);
            w->zbuf = mcl__alloc(w->zcap);
            w->zx = mcl__zctx_new();
            if (w->blk == NULL || w->zbuf == NULL || w->zx == NULL)
                rv = MCL_ENOMEM;
        }
    }
    // Parts of an earlier recording under the same name would be read as part of this one:
    // refuse them, or with overwrite remove them.
    for (unsigned i = 0; rv == MCL_OK && w->split && i < 10000; i++) {
        char *name;
        if (asprintf(&name, "%s_%03u.mcllog", w->path, i) < 0) {
            rv = MCL_ENOMEM;
            break;
        }
        if (access(name, F_OK) == 0) {
            if (!w->o.overwrite)
                rv = mcl__fail(MCL_EEXIST, NULL, 0, "log", "%s: exists (overwrite not allowed)",
                               name);
            else if (unlink(name) != 0)
                rv = mcl__sys_err(errno);
        }
        free(name);
    }
    if (rv == MCL_OK)
        rv = open_part(w);
    if (rv == MCL_OK) {
        int e = pthread_create(&w->flusher, NULL, flusher_thread, w);
        if (e != 0)
            rv = mcl__sys_err(e);
        else
            w->has_flusher = true;
    }
    if (rv != MCL_OK) {
        mcl_log_writer_close(w);
        return rv;
    }
    *wp = w;
    return MCL_OK;
}

mcl_err
mcl_log_writer_write(mcl_log_writer *w, const mcl_raw_msg *m)
{
    if (w == NULL || m == NULL || m->topic_len > MCL_TOPIC_MAX ||
        m->len > (size_t)UINT32_MAX - REC_BODY - MCL_TOPIC_MAX)
        return MCL_EINVAL;
    uint8_t hb[REC_HDR + REC_BODY];
    uint32_t body = (uint32_t)(REC_BODY + m->topic_len + m->len);
    memcpy(hb, REC_SYNC, 4);
    mcl__put_be32(hb + 4, body);
    uint8_t *b = hb + REC_HDR;
    mcl__put_be64(b, (uint64_t)m->recv_realtime_ns);
    mcl__put_be64(b + 8, m->publisher);
    mcl__put_be64(b + 16, m->seq);
    mcl__put_be16(b + 24, (uint16_t)m->topic_len);
    mcl__put_be16(b + 26, 0);
    mcl__put_be32(b + 28, (uint32_t)m->len);
    uint32_t crc = crc32c_update(0, b, REC_BODY);
    crc = crc32c_update(crc, m->topic, m->topic_len);
    if (m->len > 0)
        crc = crc32c_update(crc, m->payload, m->len);
    mcl__put_be32(hb + 8, crc);
    size_t total = REC_HDR + (size_t)body;
    pthread_mutex_lock(&w->lock);
    mcl_err rv = MCL_OK;
    if (w->f == NULL) {
        rv = MCL_ECLOSED;
        goto out;
    }
    if (w->failed) { // an earlier flush lost data: never report success after that
        rv = w->err;
        goto out;
    }
    if (w->split && w->part_count > 0 &&
        ((w->o.split_count && w->part_count >= w->o.split_count) ||
         // (compressed: as if the block being collected were not, so a part stays under)
         (w->o.split_bytes && w->part_bytes + w->blk_len + total > w->o.split_bytes) ||
         (w->o.split_seconds > 0 &&
          (double)(m->recv_realtime_ns - w->part_t0) >= w->o.split_seconds * 1e9))) {
        if ((rv = close_part(w)) != MCL_OK)
            goto out;
        w->part++;
        if ((rv = open_part(w)) != MCL_OK)
            goto out;
    }
    if (w->o.compress) {
        // Into the block being collected; it is written when full, at the next flush, at the
        // end of the part. A record too large for a block is written plain (after the block).
        size_t in = total - 4; // (no marker inside a block)
        if (w->blk_n > 0 && (w->blk_len + in > w->blk_cap || w->blk_n >= PEND_MAX / 2) &&
            !emit_block(w)) {
            rv = w->err;
            goto out;
        }
        if (in <= w->blk_cap) {
            uint8_t *d = w->blk + w->blk_len;
            memcpy(d, hb + 4, sizeof(hb) - 4);
            memcpy(d + sizeof(hb) - 4, m->topic, m->topic_len);
            if (m->len > 0)
                memcpy(d + sizeof(hb) - 4 + m->topic_len, m->payload, m->len);
            if (w->blk_n == 0 || m->recv_realtime_ns < w->blk_tmin)
                w->blk_tmin = m->recv_realtime_ns;
            if (w->blk_n == 0 || m->recv_realtime_ns > w->blk_tmax)
                w->blk_tmax = m->recv_realtime_ns;
            w->blk_len += in;
            w->blk_n++;
            if (w->part_count++ == 0)
                w->part_t0 = m->recv_realtime_ns;
            w->dirty = true;
            goto out;
        }
    }
    errno = 0;
    if (ferror(w->f) || fwrite(hb, 1, sizeof(hb), w->f) != sizeof(hb) ||
        fwrite(m->topic, 1, m->topic_len, w->f) != m->topic_len ||
        (m->len > 0 && fwrite(m->payload, 1, m->len, w->f) != m->len)) {
        write_failed(w, errno ? errno : EIO, "write");
        rv = w->err;
        goto out;
    }
    if (w->part_count++ == 0)
        w->part_t0 = m->recv_realtime_ns;
    w->part_bytes += total;
    w->records++;
    w->bytes += total;
    w->dirty = true;
    w->pend[w->npend++] = w->part_bytes;
    if (w->npend == PEND_MAX && !flush_part(w))
        rv = w->err;
out:
    pthread_mutex_unlock(&w->lock);
    return rv;
}

mcl_err
mcl_log_writer_flush(mcl_log_writer *w, bool sync)
{
    if (w == NULL)
        return MCL_EINVAL;
    pthread_mutex_lock(&w->lock);
    mcl_err rv = w->f == NULL ? MCL_ECLOSED : w->failed || !flush_part(w) ? w->err : MCL_OK;
    if (rv == MCL_OK && sync && fsync(fileno(w->f)) != 0) {
        write_failed(w, errno, "fsync");
        rv = w->err;
    }
    w->dirty = false;
    pthread_mutex_unlock(&w->lock);
    return rv;
}

void
mcl_log_writer_counts(const mcl_log_writer *cw, uint64_t *records, uint64_t *bytes,
                      unsigned *parts)
{
    mcl_log_writer *w = (mcl_log_writer *)(uintptr_t)cw;
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    if (records)
        *records = w->records;
    if (bytes)
        *bytes = w->bytes;
    if (parts)
        *parts = w->parts;
    pthread_mutex_unlock(&w->lock);
}

mcl_err
mcl_log_writer_close(mcl_log_writer *w)
{
    if (w == NULL)
        return MCL_OK;
    if (w->has_flusher) {
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->lock);
        pthread_join(w->flusher, NULL);
    }
    mcl_err rv = close_part(w);
    if (w->failed && rv == MCL_OK)
        rv = w->err;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->lock);
    mcl__free(w->fbuf);
    mcl__free(w->pend);
    mcl__free(w->blk);
    mcl__free(w->zbuf);
    mcl__zctx_free(w->zx);
    mcl__free(w->path);
    mcl__free(w->meta);
    mcl__free(w);
    return rv;
}

// --- reader ------------------------------------------------------------------------------------

typedef struct lfile {
    char *path;
    const uint8_t *base; // mmap, or NULL when empty
    size_t size;
    bool text;           // Python MCL text log
    size_t data_off;     // first record
    size_t off;          // next record
    int64_t created_ns;  // text logs: the header's "created" (0: unknown)
    size_t cp_org, cp_ext; // resynchronising (body_crc_ok()): prefix CRCs from cp_org (SIZE_MAX:
    uint32_t *cp;          // none) for records starting before cp_ext; cp[i] covers i * CRC_CP
    size_t ncp, cp_cap;    // bytes
    size_t nul_lo, nul_hi; // has_nul(): no NUL in [nul_lo, nul_hi), and nul_hi is one if
    bool nul_found;        // nul_found
    bool tent;             // bin_record(): a record running past the end was met at tent_off;
    size_t tent_off;       // the damage counted since (tent_n records, tent_b bytes) is taken
    uint64_t tent_n, tent_b; // back if no valid record follows
    bool cont;             // the damage being skipped goes on (a long stretch without markers)
    size_t rec_off;      // where the record last decoded starts (a mark's position), and,
    size_t rec_in;       // for a record of a block, where inside the block (else 0)
    bool rec_blk;        // the record last decoded came from a block (the source's buffer)
    bool blocks;         // a version 2 file: "MBLK" is a sync marker too
    bool in_blk;         // a block is being read: its records are src->zb[blk_pos..blk_len)
    size_t blk_off, blk_len, blk_pos;
    size_t blk_resume;   // the block at blk_resume_off, when loaded, is read from here in it
    size_t blk_resume_off; // (a mark's position; 0: none)
    size_t zbad_end;     // a block that checked but did not decompress ended here: a block
                         // starting before is not decompressed (linear time)
    bool pending;        // no complete header yet (a file just created): no records, detected
                         // again by mcl_log_reader_refresh() once it grows
    bool bad;            // grew into something that is not a log: never read
} lfile;

typedef struct source {
    lfile *files;
    size_t nfiles, cur;
    bool have;          // a look-ahead record is in `msg`
    bool need;          // advance() must (go on and) load the look-ahead: mcl_log_reader_next()
    bool floor_on;      // after a seek: records before floor_ns are skipped until one is not
    int64_t floor_ns;
    bool done;
    mcl_raw_msg msg;
    char *topic_buf;    // text logs: the decoded topic and payload
    uint8_t *pay_buf;
    size_t pay_cap;
    int64_t text_created; // created time of the series (its first file's header)
    char *prefix, *ext;   // a split series PATH_NNN.EXT: its parts (refresh looks for more)
    size_t la_cur, la_off; // where the look-ahead record starts (file, offset, and inside a
    size_t la_in;          // block): marks
    bool la_blk;           // the look-ahead points into zb (not into a mapping)
    uint8_t *zb;           // the records of the block being read (compressed logs)
    size_t zcap;
    mcl__zctx *zx;
} source;

struct mcl_log_reader {
    source *src;
    size_t nsrc;
    bool oom; // a block could not be loaded for want of memory: next says so (and retries)
    mcl_log_reader_options o;
    char **topics;
    uint64_t corrupt, corrupt_bytes;
    mcl_raw_msg out;
    int last; // source of the record handed out
    bool (*stop)(void *); // mcl_log_reader_set_stop(), asked every STOP_STEP bytes in next()
    void *stop_arg;
    bool in_next, stopped;
    uint64_t work; // bytes gone through since stop() was last asked
    uint64_t stop_step; // ask every this many bytes (STOP_STEP; fuzz tests: less)
    uint64_t blocks, block_bytes, block_raw; // blocks read: their bytes in the file, decompressed
};

enum { STOP_STEP = 1 << 20, SCAN_STEP = 1 << 20 };

// Counts `bytes` more of work in mcl_log_reader_next(); true when the caller's stop function
// says stop (asked once per STOP_STEP bytes).
static bool
should_stop(mcl_log_reader *r, size_t bytes)
{
    r->work += bytes;
    if (!r->in_next || r->stop == NULL || r->work < r->stop_step)
        return false;
    r->work = 0;
    return r->stopped = r->stop(r->stop_arg);
}

// Counts damage: provisionally while f has a record running past the end (bin_record()).
static void
count_damage(mcl_log_reader *r, lfile *f, uint64_t recs, uint64_t bytes)
{
    r->corrupt += recs;
    r->corrupt_bytes += bytes;
    if (f->tent) {
        f->tent_n += recs;
        f->tent_b += bytes;
    }
}

// Takes back the provisional damage of f.
static void
tent_drop(mcl_log_reader *r, lfile *f)
{
    if (f->tent) {
        r->corrupt -= f->tent_n;
        r->corrupt_bytes -= f->tent_b;
    }
    f->tent = false;
    f->tent_n = f->tent_b = 0;
}

static bool
topic_ok(const mcl_log_reader *r, const char *t, size_t n)
{
    if (r->o.ntopics == 0)
        return true;
    for (size_t i = 0; i < r->o.ntopics; i++) {
        const char *p = r->topics[i];
        size_t pl = strlen(p);
        if (pl > 0 && p[pl - 1] == '*') {
            if (n >= pl - 1 && memcmp(t, p, pl - 1) == 0)
                return true;
        } else if (pl == n && memcmp(t, p, n) == 0) {
            return true;
        }
    }
    return false;
}

// Parses "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC) into ns; 0 on failure.
static int64_t
parse_created(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    if (end == NULL)
        return 0;
    time_t secs = timegm(&tm);
    if (secs < 0 || secs > 9000000000LL) // beyond 2255: not a time we can hold in ns
        return 0;
    int64_t ns = (int64_t)secs * 1000000000;
    if (*end == '.') {
        int64_t frac = 0, scale = 100000000;
        for (end++; *end >= '0' && *end <= '9' && scale > 0; end++, scale /= 10)
            frac += (*end - '0') * scale;
        ns += frac;
    }
    return ns;
}

// Maps what the file at path holds now (a file being written: its size now). MCL_EALREADY
// (nothing mapped) when its size is still `same`.
static mcl_err
map_now(const char *path, const uint8_t **basep, size_t *sizep, size_t same)
{
    *basep = NULL;
    *sizep = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); // a FIFO must not block us
    if (fd < 0)
        return errno == ENOENT ? MCL_ENOENT : mcl__sys_err(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return MCL_EINVAL;
    }
    size_t size = (size_t)st.st_size;
    if (size == same) {
        close(fd);
        return MCL_EALREADY;
    }
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return mcl__sys_err(e);
        }
        *basep = p;
    }
    close(fd);
    *sizep = size;
    return MCL_OK;
}

// Whether the line p[0..n) (no newline) has the shape of a Python MCL data line: ELAPSED
// 'TOPIC' HEX, three tokens (ELAPSED digits and '.', HEX an even number of hex digits). partial:
// the line is still being written: true if it may become one.
static bool
text_data_line(const uint8_t *p, size_t n, bool partial)
{
#define BLANK(c) ((c) == ' ' || (c) == '\t' || (c) == '\r')
#define HEX(c) (((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
    size_t i = 0, st;
    while (i < n && BLANK(p[i]))
        i++;
    for (st = i; i < n && ((p[i] >= '0' && p[i] <= '9') || p[i] == '.'); i++)
        ;
    if (i == n)
        return partial;
    if (i == st || !BLANK(p[i]))
        return false;
    while (i < n && BLANK(p[i]))
        i++;
    if (i == n)
        return partial;
    if (p[i] != '\'')
        return false;
    for (st = i++; i < n && !BLANK(p[i]); i++)
        ;
    if (i == n)
        return partial;
    if (i - st < 2 || p[i - 1] != '\'')
        return false;
    while (i < n && BLANK(p[i]))
        i++;
    for (st = i; i < n && HEX(p[i]); i++)
        ;
    size_t hl = i - st;
    while (i < n && BLANK(p[i]))
        i++;
    return i == n && (partial || hl % 2 == 0);
#undef BLANK
#undef HEX
}

// A text file is a Python MCL log only in the shapes Python MCL writes (and reads): its header
// (a first line of '#' and 65 '-', then "# MCL_LOG"), or, a later part of a split series, no
// header and a data line first. Anything else (a README, a CSV, binary junk) is refused with
// MCL_EPROTO; MCL_EAGAIN while the bytes so far are a prefix of a header still being written
// (a first data line is taken as soon as the file has it).
static mcl_err
text_shape(const lfile *f)
{
    static const char block[] = "#-----------------------------------------------------------------";
    static const char title[] = "# MCL_LOG";
    const uint8_t *b = f->base;
    size_t n = f->size;
    if (b[0] == '#') {
        size_t bl = sizeof(block) - 1, tl = sizeof(title) - 1;
        size_t i = 0;
        bool ok = memcmp(b, block, n < bl ? n : bl) == 0;
        for (i = bl; ok && i < n && b[i] != '\n'; i++) // (then only trailing blanks or '\r')
            ok = b[i] == ' ' || b[i] == '\r' || b[i] == '\t';
        if (ok && i + 1 < n) {
            const uint8_t *t = b + i + 1;
            size_t rest = n - i - 1;
            ok = memcmp(t, title, rest < tl ? rest : tl) == 0;
            for (size_t j = tl; ok && j < rest && t[j] != '\n'; j++)
                ok = t[j] == ' ' || t[j] == '\r' || t[j] == '\t';
            if (ok && (rest <= tl || memchr(t, '\n', rest) == NULL))
                return MCL_EAGAIN; // the second line still being written
        } else if (ok) {
            return MCL_EAGAIN;
        }
        if (ok)
            return MCL_OK;
    } else if (b[0] == ' ' || (b[0] >= '0' && b[0] <= '9')) {
        const uint8_t *nl = memchr(b, '\n', n);
        if (text_data_line(b, nl != NULL ? (size_t)(nl - b) : n, nl == NULL))
            return MCL_OK;
    }
    return mcl__fail(MCL_EPROTO, NULL, 0, "log", "%s: not an mcl or Python MCL log", f->path);
}

// Finds f's format and first record. MCL_EAGAIN: no complete header yet (an empty file, a
// prefix of the binary header, a text header line without its newline): the file is just being
// created; no records until it grows.
static mcl_err
detect(lfile *f)
{
    f->pending = false;
    f->text = false;
    f->data_off = f->off = 0;
    if (f->size == 0)
        return MCL_EAGAIN;
    // Binary log: magic, header with CRC. Text log: starts with '#' or a data line.
    size_t mn = f->size < 8 ? f->size : 8;
    if (memcmp(f->base, LOG_MAGIC, mn) == 0) {
        if (f->size < FILE_HDR_FIXED + 4)
            return MCL_EAGAIN;
        size_t hl = mcl__get_be16(f->base + 10);
        unsigned v = mcl__get_be16(f->base + 8);
        bool known = v == LOG_VERSION || v == LOG_VERSION_Z;
        if (known && hl >= FILE_HDR_FIXED + 4 && hl > f->size)
            return MCL_EAGAIN; // the header is still being written
        if (hl < FILE_HDR_FIXED + 4 || hl > f->size ||
            mcl__get_be32(f->base + hl - 4) != mcl__crc32c(f->base, hl - 4))
            return mcl__fail(MCL_EPROTO, NULL, 0, "log", "%s: damaged or unknown file header",
                             f->path);
        if (!known)
            return mcl__fail(MCL_EPROTO, NULL, 0, "log",
                             "%s: log format version %u (this reader knows 1 and 2)", f->path, v);
        f->blocks = v == LOG_VERSION_Z;
        // A compressed log names its codec: one this build lacks is refused, not misread.
        const char *meta = (const char *)f->base + FILE_HDR_FIXED;
        size_t ml = hl - 4 - FILE_HDR_FIXED;
        for (size_t i = 0; f->blocks && i < ml;) {
            const char *nl = memchr(meta + i, '\n', ml - i);
            size_t ll = nl != NULL ? (size_t)(nl - (meta + i)) : ml - i;
            if (ll > 9 && memcmp(meta + i, "compress=", 9) == 0) {
                int c = mcl__z_parse(meta + i + 9, ll - 9);
                if (c > 0 && !mcl__z_built(c))
                    return mcl__fail(MCL_ENOTSUP, NULL, 0, "log",
                                     "%s: compressed with %.*s, which this build lacks", f->path,
                                     (int)(ll - 9), meta + i + 9);
            }
            i += ll + 1;
        }
        f->data_off = f->off = hl;
        return MCL_OK;
    }
    f->text = true;
    size_t off = 0;
    mcl_err rv = text_shape(f);
    if (rv != MCL_OK)
        return rv;
    while (off < f->size && f->base[off] == '#') { // the header of a Python MCL log
        const uint8_t *nl = memchr(f->base + off, '\n', f->size - off);
        if (nl == NULL)
            return MCL_EAGAIN; // a header line still being written
        size_t ll = (size_t)(nl - (f->base + off));
        char line[256];
        size_t cl = ll < sizeof(line) - 1 ? ll : sizeof(line) - 1;
        memcpy(line, f->base + off, cl);
        line[cl] = '\0';
        char *c = strstr(line, "-- created");
        if (c != NULL) {
            c += strlen("-- created");
            while (*c == ' ')
                c++;
            f->created_ns = parse_created(c);
        }
        off += ll + 1;
    }
    f->data_off = f->off = off;
    return MCL_OK;
}

static mcl_err
map_file(lfile *f)
{
    mcl_err rv = map_now(f->path, &f->base, &f->size, SIZE_MAX);
    if (rv != MCL_OK)
        return rv;
    rv = detect(f);
    if (rv == MCL_EAGAIN) { // being created: read as empty for now
        f->pending = true;
        rv = MCL_OK;
    }
    return rv;
}

static void
unmap_file(lfile *f)
{
    if (f->base != NULL)
        munmap((void *)(uintptr_t)f->base, f->size);
    f->base = NULL;
    mcl__free(f->cp);
    f->cp = NULL;
    f->ncp = f->cp_cap = 0;
    f->cp_org = SIZE_MAX;
}

// --- checking records: CRCs of ranges that overlap, topics ----------------------------------------
//
// A damaged record is skipped by going on at the next sync marker after its start, which may lie
// inside the bytes the damaged record claimed. A crafted file can make every marker claim a
// record that runs (with lengths that add up) nearly to the end of the file: checksumming each of
// those separately is quadratic. So once a record fails, the CRCs of the ones that start inside
// what it covered come from prefix CRCs: cp[i] is the CRC32C of [cp_org, cp_org + i * CRC_CP),
// the CRC of a range [s, e) is C(e) ^ shift(C(s), e - s), and C(x) is cp[i] continued over less
// than CRC_CP bytes. Every byte is checksummed at most twice (the failed record, then the prefix
// CRCs), plus at most 2 * CRC_CP bytes and two shifts per candidate record; the prefix CRCs take
// 4 bytes per CRC_CP bytes of the region (at most the file's size / 64), only while it lasts (it
// ends at the next record that checks).

enum { CRC_CP = 256 };

// The CRC of [cp_org, x) (x within the region's checkpoints, or extending them).
static bool
cp_prefix(lfile *f, size_t x, uint32_t *crc)
{
    size_t i = (x - f->cp_org) / CRC_CP;
    if (i >= f->ncp) {
        if (i >= f->cp_cap) {
            size_t cap = f->cp_cap ? f->cp_cap : 64;
            while (cap <= i)
                cap *= 2;
            uint32_t *n = mcl__realloc(f->cp, cap * sizeof(*n));
            if (n == NULL)
                return false;
            f->cp = n;
            f->cp_cap = cap;
        }
        for (; f->ncp <= i; f->ncp++)
            f->cp[f->ncp] = crc32c_update(f->cp[f->ncp - 1],
                                          f->base + f->cp_org + (f->ncp - 1) * CRC_CP, CRC_CP);
    }
    size_t at = f->cp_org + i * CRC_CP;
    *crc = crc32c_update(f->cp[i], f->base + at, x - at);
    return true;
}

// Whether the body [s, s + len) of a candidate record has CRC `want`.
static bool
body_crc_ok(lfile *f, size_t s, size_t len, uint32_t want)
{
    uint32_t cs, ce;
    if (f->cp_org != SIZE_MAX && s >= f->cp_org && s < f->cp_ext && cp_prefix(f, s, &cs) &&
        cp_prefix(f, s + len, &ce)) {
        if (s + len > f->cp_ext)
            f->cp_ext = s + len;
        return (ce ^ crc32c_shift(cs, len)) == want;
    }
    // Not inside a region: checksummed directly, and the start of a region in case it fails.
    f->cp_org = s;
    f->cp_ext = s + len;
    f->ncp = 0;
    if (f->cp_cap > 0 || (f->cp = mcl__alloc(64 * sizeof(*f->cp))) != NULL) {
        if (f->cp_cap == 0)
            f->cp_cap = 64;
        f->cp[0] = 0;
        f->ncp = 1;
    } else {
        f->cp_org = SIZE_MAX; // no memory: checksummed directly each time
    }
    return crc32c_update(0, f->base + s, len) == want;
}

// Whether [a, a + n) holds a NUL byte. Remembers that [nul_lo, nul_hi) holds none (and, with
// nul_found, that nul_hi is one), so that overlapping topics of crafted records cost linear time.
static bool
has_nul(lfile *f, size_t a, size_t n)
{
    if (n == 0)
        return false;
    if (a < f->nul_lo || a > f->nul_hi) {
        f->nul_lo = f->nul_hi = a;
        f->nul_found = false;
    }
    if (!f->nul_found && f->nul_hi < a + n) {
        const uint8_t *z = memchr(f->base + f->nul_hi, 0, a + n - f->nul_hi);
        f->nul_found = z != NULL;
        f->nul_hi = z != NULL ? (size_t)(z - f->base) : a + n;
    }
    return f->nul_found && f->nul_hi < a + n;
}

// Forgets what was learnt about f's bytes (it was mapped again).
static void
forget_checks(lfile *f)
{
    f->cp_org = SIZE_MAX;
    f->nul_lo = f->nul_hi = 0;
    f->nul_found = false;
    f->zbad_end = 0;
}

// Whether a complete candidate record starts at off: marker, lengths that add up, inside the
// file. Sets *body.
static bool
candidate(const lfile *f, size_t off, uint64_t *body)
{
    const uint8_t *p = f->base + off;
    if (off + REC_HDR + REC_BODY > f->size || memcmp(p, REC_SYNC, 4) != 0)
        return false;
    *body = mcl__get_be32(p + 4);
    const uint8_t *b = p + REC_HDR;
    return *body >= REC_BODY && *body < MAX_RECORD && off + REC_HDR + *body <= f->size &&
           (uint64_t)REC_BODY + mcl__get_be16(b + 24) + mcl__get_be32(b + 28) == *body;
}

// The first sync marker in p[0..n) ("MREC"; in a compressed log also "MBLK"), or NULL.
static const uint8_t *
find_sync(const lfile *f, const uint8_t *p, size_t n)
{
    if (!f->blocks)
        return memmem(p, n, REC_SYNC, 4);
    for (const uint8_t *e = p + n; n >= 4;) {
        const uint8_t *q = memchr(p, 'M', n - 3);
        if (q == NULL)
            return NULL;
        if (memcmp(q, REC_SYNC, 4) == 0 || memcmp(q, BLK_SYNC, 4) == 0)
            return q;
        p = q + 1;
        n = (size_t)(e - p);
    }
    return NULL;
}

// Whether a complete candidate block starts at off: marker, lengths, codec and the bounds on
// its sizes (decompressed at most MAX_BLOCK and BLK_RATIO times its body, one record at least
// per 44 bytes), all checked before its CRC and before anything is allocated. Sets *body.
static bool
blk_candidate(const lfile *f, size_t off, uint64_t *body)
{
    const uint8_t *p = f->base + off;
    if (!f->blocks || off + REC_HDR + BLK_BODY > f->size || memcmp(p, BLK_SYNC, 4) != 0)
        return false;
    *body = mcl__get_be32(p + 4);
    const uint8_t *b = p + REC_HDR;
    uint64_t c = mcl__get_be32(b + 4), u = mcl__get_be32(b + 8), n = mcl__get_be32(b + 12);
    return *body >= BLK_BODY && off + REC_HDR + *body <= f->size &&
           (b[0] == MCL__Z_ZSTD || b[0] == MCL__Z_LZ4) && b[1] == 0 && mcl__get_be16(b + 2) == 0 &&
           c > 0 && BLK_BODY + c <= *body && u >= INNER_HDR + REC_BODY && u <= MAX_BLOCK &&
           u <= BLK_RATIO * *body && n > 0 && n <= u / (INNER_HDR + REC_BODY) &&
           (int64_t)mcl__get_be64(b + 16) <= (int64_t)mcl__get_be64(b + 24);
}

// Loads the block at f->off (a candidate whose CRC checked) into s->zb: its padding must be
// zero, it must decompress to exactly its size, and hold exactly its count of records, each
// of which checks as in a file (marker, lengths, CRC, topic) and lies in its time range.
// 1: loaded, f->in_blk; 0: damaged; -1: out of memory.
static int
load_block(source *s, lfile *f, uint64_t body)
{
    const uint8_t *b = f->base + f->off + REC_HDR;
    size_t c = mcl__get_be32(b + 4), u = mcl__get_be32(b + 8), n = mcl__get_be32(b + 12);
    int64_t t0 = (int64_t)mcl__get_be64(b + 16), t1 = (int64_t)mcl__get_be64(b + 24);
    for (size_t i = BLK_BODY + c; i < body; i++)
        if (b[i] != 0)
            return 0;
    if (u > s->zcap) {
        uint8_t *nb = mcl__realloc(s->zb, u);
        if (nb == NULL)
            return -1;
        s->zb = nb;
        s->zcap = u;
    }
    if (s->zx == NULL && (s->zx = mcl__zctx_new()) == NULL)
        return -1;
    mcl_err rv = mcl__z_decompress(s->zx, b[0], b + BLK_BODY, c, s->zb, u);
    if (rv == MCL_ENOMEM)
        return -1;
    if (rv != MCL_OK)
        return 0;
    size_t pos = 0, k = 0, resume = f->off == f->blk_resume_off ? f->blk_resume : 0;
    size_t from = 0; // where reading starts: the first record at or after a mark's position
    while (pos < u) {
        const uint8_t *p = s->zb + pos;
        if (u - pos < INNER_HDR + REC_BODY)
            return 0;
        uint64_t rb = mcl__get_be32(p);
        const uint8_t *rbp = p + INNER_HDR;
        uint64_t tl = mcl__get_be16(rbp + 24), pl = mcl__get_be32(rbp + 28);
        int64_t t = (int64_t)mcl__get_be64(rbp);
        if (rb > u - pos - INNER_HDR || REC_BODY + tl + pl != rb || t < t0 || t > t1 ||
            crc32c_update(0, rbp, (size_t)rb) != mcl__get_be32(p + 4) ||
            (tl > 0 && memchr(rbp + REC_BODY, 0, (size_t)tl) != NULL))
            return 0;
        if (pos < resume)
            from = pos + INNER_HDR + (size_t)rb;
        pos += INNER_HDR + (size_t)rb;
        k++;
    }
    if (k != n)
        return 0;
    f->in_blk = true;
    f->blk_off = f->off;
    f->blk_len = u;
    f->blk_pos = from;
    return 1;
}

// Decodes the binary record at f->off into m; on success advances f->off. Returns 1 for a
// record, 0 at the end, -2 when the caller's stop function said stop (f keeps where it was:
// calling again goes on).
//
// A damaged record is counted, and its bytes up to the next sync marker after its start are
// skipped (counted as bytes). A record that runs past the end of the file is a record still
// being written, unless a valid record follows: the bytes from it on are damage then, and
// otherwise the end for now (not counted: mcl_log_reader_tail() tells). Deciding that takes one
// pass to the next valid record or the end, never more: the damage met on the way is counted
// provisionally and, at the end, taken back.
// A checked record body (receive time, publisher, seq, topic and payload lengths, topic,
// payload) as a message that borrows from it. Topics are stored without NUL: copied into the
// reader's buffer on delivery.
static void
fill_msg(mcl_raw_msg *m, const uint8_t *b)
{
    uint32_t tl = mcl__get_be16(b + 24), pl = mcl__get_be32(b + 28);
    memset(m, 0, sizeof(*m));
    m->recv_realtime_ns = (int64_t)mcl__get_be64(b);
    m->publisher = mcl__get_be64(b + 8);
    m->seq = mcl__get_be64(b + 16);
    m->topic = (const char *)(b + REC_BODY);
    m->topic_len = tl;
    m->payload = pl ? b + REC_BODY + tl : NULL;
    m->len = pl;
}

static int
bin_record(mcl_log_reader *r, source *s, lfile *f, mcl_raw_msg *m)
{
    for (;;) {
        if (f->in_blk) { // the next record of the block being read (checked when loaded)
            if (f->blk_pos < f->blk_len) {
                const uint8_t *b = s->zb + f->blk_pos + INNER_HDR;
                fill_msg(m, b);
                f->rec_off = f->blk_off;
                f->rec_in = f->blk_pos;
                f->rec_blk = true;
                f->blk_pos += INNER_HDR + REC_BODY + m->topic_len + m->len;
                return 1;
            }
            f->in_blk = false;
        }
        if (f->off + REC_HDR + REC_BODY > f->size)
            break;
        const uint8_t *p = f->base + f->off;
        uint64_t body = 0;
        bool blk = f->blocks && memcmp(p, BLK_SYNC, 4) == 0;
        bool marker = blk || memcmp(p, REC_SYNC, 4) == 0;
        if (marker && f->off + REC_HDR + mcl__get_be32(p + 4) > f->size) {
            if (!f->tent) {
                f->tent = true;
                f->tent_off = f->off;
                f->tent_n = f->tent_b = 0;
            }
        } else if (candidate(f, f->off, &body)) {
            const uint8_t *b = p + REC_HDR;
            uint32_t tl = mcl__get_be16(b + 24);
            if (body_crc_ok(f, f->off + REC_HDR, (size_t)body, mcl__get_be32(p + 8)) &&
                !has_nul(f, f->off + REC_HDR + REC_BODY, tl)) {
                fill_msg(m, b);
                f->rec_off = f->off;
                f->rec_in = 0;
                f->rec_blk = false;
                f->off += REC_HDR + (size_t)body;
                f->cp_org = SIZE_MAX; // records that start inside this one are never looked at
                f->tent = false;      // (what was provisional is damage)
                f->cont = false;
                return 1;
            }
        } else if (blk && blk_candidate(f, f->off, &body) &&
                   body_crc_ok(f, f->off + REC_HDR, (size_t)body, mcl__get_be32(p + 8))) {
            const uint8_t *b = p + REC_HDR;
            int64_t tmax = (int64_t)mcl__get_be64(b + 24);
            int64_t floor = r->o.start_ns;
            if (s->floor_on && s->floor_ns > floor)
                floor = s->floor_ns;
            // Every record before the time asked (a seek, start_ns): skipped undecompressed.
            bool skip = floor != 0 && tmax < floor;
            int k = skip || f->off < f->zbad_end ? (skip ? 1 : 0) : load_block(s, f, body);
            if (k < 0) { // out of memory: said by next (MCL_ENOMEM); the next call retries
                r->oom = true;
                return -3;
            }
            if (k > 0) {
                r->blocks++;
                r->block_bytes += REC_HDR + body;
                // (its records as if plain, 12 + L each: the fuzz target's accounting)
                r->block_raw += mcl__get_be32(b + 8) + 4 * (uint64_t)mcl__get_be32(b + 12);
                f->off += REC_HDR + (size_t)body;
                f->cp_org = SIZE_MAX;
                f->tent = false;
                f->cont = false;
                if (skip && should_stop(r, REC_HDR + (size_t)body))
                    return -2;
                continue; // (its first record)
            }
            if (f->off >= f->zbad_end)
                f->zbad_end = f->off + REC_HDR + (size_t)body;
        }
        // Damaged: count it and go on at the next marker, looked for SCAN_STEP bytes at a time
        // (a stretch without one goes on as the same damaged record). Without one up to the
        // end, it is skipped to there, but for the start of a marker (being written).
        size_t rest = f->size - f->off - 1, win = rest > SCAN_STEP ? SCAN_STEP : rest;
        const uint8_t *next = find_sync(f, p + 1, win);
        size_t skip, keep = 3;
        bool more = false;
        if (next != NULL) {
            skip = (size_t)(next - p);
        } else if (win < rest) {
            skip = win - 2; // (a marker may start in the last three bytes looked at)
            more = true;
        } else {
            while (keep > 0 && memcmp(f->base + f->size - keep, REC_SYNC, keep) != 0 &&
                   (!f->blocks || memcmp(f->base + f->size - keep, BLK_SYNC, keep) != 0))
                keep--;
            skip = f->size - f->off - keep;
        }
        count_damage(r, f, marker || !f->cont ? 1 : 0, skip);
        f->cont = more;
        f->off += skip;
        if (should_stop(r, skip))
            return -2;
    }
    if (f->tent) { // nothing valid after the record running past the end: the end, for now
        tent_drop(r, f);
        f->off = f->tent_off;
    }
    f->cont = false;
    return 0;
}

static int
hexval(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

// A Python MCL data line: ELAPSED 'TOPIC' HEX (exactly three tokens, as MCL reads them).
static int
text_record(mcl_log_reader *r, source *s, lfile *f, mcl_raw_msg *m)
{
    while (f->off < f->size) {
        const uint8_t *p = f->base + f->off;
        const uint8_t *nl = memchr(p, '\n', f->size - f->off);
        if (nl == NULL) // a line still being written
            return 0;
        size_t ll = (size_t)(nl - p);
        f->rec_off = f->off;
        f->off += ll + 1;
        const uint8_t *tok[4];
        size_t tlen[4];
        int nt = 0;
        for (size_t i = 0; i < ll && nt < 4;) {
            while (i < ll && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
                i++;
            if (i >= ll)
                break;
            size_t st = i;
            while (i < ll && p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
                i++;
            tok[nt] = p + st;
            tlen[nt++] = i - st;
        }
        if (nt == 0)
            continue;
        char num[64];
        bool ok = nt == 3 && tlen[0] < sizeof(num) && tlen[1] >= 2 && tok[1][0] == '\'' &&
                  tok[1][tlen[1] - 1] == '\'' && tlen[2] % 2 == 0;
        double el = 0;
        if (ok) {
            memcpy(num, tok[0], tlen[0]);
            num[tlen[0]] = '\0';
            char *end;
            el = strtod(num, &end);
            ok = *end == '\0' && el >= 0 && el < 1e9; // finite, under 31 years
        }
        size_t pl = ok ? tlen[2] / 2 : 0;
        if (ok && pl > s->pay_cap) {
            uint8_t *nb = mcl__realloc(s->pay_buf, pl);
            if (nb == NULL)
                return 0;
            s->pay_buf = nb;
            s->pay_cap = pl;
        }
        for (size_t i = 0; ok && i < pl; i++) {
            int hi = hexval(tok[2][2 * i]), lo = hexval(tok[2][2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            if (ok)
                s->pay_buf[i] = (uint8_t)(hi << 4 | lo);
        }
        if (!ok) {
            count_damage(r, f, 1, ll + 1);
            if (should_stop(r, ll + 1))
                return -2;
            continue;
        }
        size_t tl = tlen[1] - 2;
        char *tb = mcl__realloc(s->topic_buf, tl + 1);
        if (tb == NULL)
            return 0;
        s->topic_buf = tb;
        memcpy(tb, tok[1] + 1, tl);
        tb[tl] = '\0';
        memset(m, 0, sizeof(*m));
        m->recv_realtime_ns = s->text_created + (int64_t)(el * 1e9 + 0.5);
        m->topic = tb;
        m->topic_len = tl;
        m->payload = pl ? s->pay_buf : NULL;
        m->len = pl;
        return 1;
    }
    return 0;
}

// Loads the next record of source s (applying the filters) into s->msg. Leaves s->need set
// (and r->stopped) when the caller's stop function said stop: the next call goes on.
static void
advance(mcl_log_reader *r, source *s)
{
    s->have = false;
    s->need = true;
    while (!s->done && s->cur < s->nfiles) {
        lfile *f = &s->files[s->cur];
        int k = f->pending || f->bad ? 0
                : f->text            ? text_record(r, s, f, &s->msg)
                                     : bin_record(r, s, f, &s->msg);
        if (k == -2)
            return;
        if (k == -3) // (f stays at the block; s->need stays set: the next call tries again)
            return;
        if (k <= 0) {
            // A file before the last one is finished (a writer finishes a part before it
            // starts the next): what it holds after its last record is damage.
            if (s->cur + 1 < s->nfiles && !f->pending && !f->bad && f->off < f->size) {
                count_damage(r, f, 1, f->size - f->off);
                f->off = f->size;
            }
            s->cur++;
            continue;
        }
        bool skip = (r->o.start_ns && s->msg.recv_realtime_ns < r->o.start_ns) ||
                    // (not the end: records of several connections may be slightly out of order)
                    (r->o.end_ns && s->msg.recv_realtime_ns > r->o.end_ns) ||
                    !topic_ok(r, s->msg.topic, s->msg.topic_len) ||
                    (s->floor_on && s->msg.recv_realtime_ns < s->floor_ns);
        if (skip) {
            if (should_stop(r, REC_HDR + REC_BODY + s->msg.topic_len + s->msg.len))
                return;
            continue;
        }
        s->floor_on = false;
        s->have = true;
        s->la_cur = s->cur;
        s->la_off = f->rec_off;
        s->la_in = f->text ? 0 : f->rec_in;
        s->la_blk = !f->text && f->rec_blk;
        break;
    }
    s->need = false;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// The files of a split series PATH_000.EXT, PATH_001.EXT, ... (until one is missing).
static mcl_err
add_series(source *s, const char *prefix, const char *ext)
{
    for (unsigned i = 0;; i++) {
        char *name;
        if (asprintf(&name, "%s_%03u.%s", prefix, i, ext) < 0)
            return MCL_ENOMEM;
        if (!exists(name)) {
            free(name);
            return MCL_OK;
        }
        lfile *nf = mcl__realloc(s->files, (s->nfiles + 1) * sizeof(*nf));
        if (nf == NULL) {
            free(name);
            return MCL_ENOMEM;
        }
        s->files = nf;
        memset(&s->files[s->nfiles], 0, sizeof(lfile));
        s->files[s->nfiles].path = mcl__strdup(name);
        free(name);
        if (s->files[s->nfiles++].path == NULL)
            return MCL_ENOMEM;
    }
}

static mcl_err
add_source(mcl_log_reader *r, void (*fill)(source *, void *), void *arg)
{
    source *ns = mcl__realloc(r->src, (r->nsrc + 1) * sizeof(*ns));
    if (ns == NULL)
        return MCL_ENOMEM;
    r->src = ns;
    memset(&r->src[r->nsrc], 0, sizeof(source));
    fill(&r->src[r->nsrc], arg);
    r->nsrc++;
    return MCL_OK;
}

static void
fill_file(source *s, void *arg)
{
    s->files = mcl__zalloc(sizeof(lfile));
    if (s->files != NULL) {
        s->files[0].path = mcl__strdup(arg);
        s->nfiles = s->files[0].path ? 1 : 0;
    }
}

typedef struct series_arg {
    const char *prefix, *ext;
    mcl_err rv;
} series_arg;

static void
fill_series(source *s, void *arg)
{
    series_arg *a = arg;
    s->prefix = mcl__strdup(a->prefix); // mcl_log_reader_refresh() looks for later parts
    s->ext = mcl__strdup(a->ext);
    a->rv = s->prefix == NULL || s->ext == NULL ? MCL_ENOMEM : add_series(s, a->prefix, a->ext);
}

// Whether name is PREFIX_NNN.EXT; sets prefix length.
static bool
series_name(const char *name, size_t *plen, const char **ext)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL)
        return false;
    const char *d = dot;
    while (d > name && d[-1] >= '0' && d[-1] <= '9')
        d--;
    if (dot - d < 3 || d == name || d[-1] != '_')
        return false;
    *plen = (size_t)(d - 1 - name);
    *ext = dot + 1;
    return true;
}

static mcl_err
add_path(mcl_log_reader *r, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return add_source(r, fill_file, (void *)(uintptr_t)path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d == NULL)
            return mcl__sys_err(errno);
        char **names = NULL;
        size_t n = 0;
        mcl_err rv = MCL_OK;
        for (struct dirent *e = readdir(d); e != NULL && rv == MCL_OK; e = readdir(d)) {
            size_t l = strlen(e->d_name);
            if (!((l > 7 && strcmp(e->d_name + l - 7, ".mcllog") == 0) ||
                  (l > 4 && strcmp(e->d_name + l - 4, ".log") == 0)))
                continue;
            struct stat est; // only regular files (not FIFOs, sockets or directories)
            if (fstatat(dirfd(d), e->d_name, &est, AT_SYMLINK_NOFOLLOW) != 0 ||
                !S_ISREG(est.st_mode))
                continue;
            char **nn = mcl__realloc(names, (n + 1) * sizeof(*nn));
            if (nn == NULL || asprintf(&nn[n], "%s/%s", path, e->d_name) < 0) {
                names = nn ? nn : names;
                rv = MCL_ENOMEM;
                break;
            }
            names = nn;
            n++;
        }
        closedir(d);
        if (rv == MCL_OK && n == 0)
            rv = mcl__fail(MCL_ENOENT, NULL, 0, "log", "%s: no log files in it", path);
        if (names != NULL)
            qsort(names, n, sizeof(*names), cmp_str);
        for (size_t i = 0; i < n && rv == MCL_OK; i++) {
            size_t pl;
            const char *ext;
            bool in_series = false;
            if (series_name(names[i], &pl, &ext)) {
                char *first;
                if (asprintf(&first, "%.*s_000.%s", (int)pl, names[i], ext) < 0) {
                    rv = MCL_ENOMEM;
                    break;
                }
                in_series = exists(first);
                free(first);
            }
            if (in_series) {
                if (strncmp(names[i] + pl, "_000.", 5) != 0)
                    continue; // a later part: read with its series
                char *prefix = strndup(names[i], pl);
                if (prefix == NULL) {
                    rv = MCL_ENOMEM;
                    break;
                }
                series_arg a = {prefix, ext, MCL_OK};
                rv = add_source(r, fill_series, &a);
                if (rv == MCL_OK)
                    rv = a.rv;
                free(prefix);
            } else {
                rv = add_source(r, fill_file, names[i]);
            }
        }
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return rv;
    }
    const char *exts[] = {"mcllog", "log"};
    for (int k = 0; k < 2; k++) {
        char *first;
        if (asprintf(&first, "%s_000.%s", path, exts[k]) < 0)
            return MCL_ENOMEM;
        bool there = exists(first);
        free(first);
        if (there) {
            series_arg a = {path, exts[k], MCL_OK};
            mcl_err rv = add_source(r, fill_series, &a);
            return rv != MCL_OK ? rv : a.rv;
        }
    }
    return mcl__fail(MCL_ENOENT, NULL, 0, "log", "%s: no such log, split series or directory",
                     path);
}

void
mcl_log_reader_close(mcl_log_reader *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        for (size_t k = 0; k < s->nfiles; k++) {
            unmap_file(&s->files[k]);
            mcl__free(s->files[k].path);
        }
        mcl__free(s->files);
        mcl__free(s->topic_buf);
        mcl__free(s->pay_buf);
        mcl__free(s->zb);
        mcl__zctx_free(s->zx);
        mcl__free(s->prefix);
        mcl__free(s->ext);
    }
    mcl__free(r->src);
    for (size_t i = 0; i < r->o.ntopics; i++)
        mcl__free(r->topics[i]);
    mcl__free(r->topics);
    mcl__free((void *)(uintptr_t)r->out.topic);
    mcl__free(r);
}

// Reading f starts again from its first record.
static void
new_pass(lfile *f)
{
    f->off = f->data_off;
    f->tent = f->cont = false;
    f->tent_n = f->tent_b = 0;
    f->in_blk = false;
    f->blk_resume = f->blk_resume_off = 0;
    f->zbad_end = 0;
}

mcl_err
mcl_log_reader_set_stop(mcl_log_reader *r, bool (*stop)(void *arg), void *arg)
{
    if (r == NULL)
        return MCL_EINVAL;
    r->stop = stop;
    r->stop_arg = arg;
    return MCL_OK;
}

// Tests: ask the stop function every `bytes` bytes (0: every time there is a chance).
void mcl__log_reader_stop_every(mcl_log_reader *r, uint64_t bytes);
void
mcl__log_reader_stop_every(mcl_log_reader *r, uint64_t bytes)
{
    r->stop_step = bytes;
}

mcl_err
mcl_log_reader_reset(mcl_log_reader *r)
{
    if (r == NULL)
        return MCL_EINVAL;
    r->corrupt = r->corrupt_bytes = 0; // counted again as the files are read again
    r->blocks = r->block_bytes = r->block_raw = 0;
    r->last = -1;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        s->cur = 0;
        s->done = false;
        s->have = false;
        s->need = true; // read by mcl_log_reader_next(), which can be stopped
        s->floor_on = false;
        for (size_t k = 0; k < s->nfiles; k++)
            new_pass(&s->files[k]);
    }
    return MCL_OK;
}

mcl_err
mcl_log_reader_open(mcl_log_reader **rp, const char *const *paths, size_t npaths,
                    const mcl_log_reader_options *o)
{
    if (rp != NULL)
        *rp = NULL;
    if (rp == NULL || paths == NULL || npaths == 0)
        return MCL_EINVAL;
    mcl_log_reader *r = mcl__zalloc(sizeof(*r));
    if (r == NULL)
        return MCL_ENOMEM;
    r->last = -1;
    r->stop_step = STOP_STEP;
    mcl_err rv = MCL_OK;
    if (o != NULL) {
        r->o = *o;
        r->o.topics = NULL;
        r->o.ntopics = 0;
        if (o->ntopics > 0) {
            r->topics = mcl__zalloc(o->ntopics * sizeof(*r->topics));
            if (r->topics == NULL)
                rv = MCL_ENOMEM;
            for (size_t i = 0; rv == MCL_OK && i < o->ntopics; i++, r->o.ntopics++)
                if (o->topics[i] == NULL || (r->topics[i] = mcl__strdup(o->topics[i])) == NULL)
                    rv = o->topics[i] == NULL ? MCL_EINVAL : MCL_ENOMEM;
        }
    }
    for (size_t i = 0; i < npaths && rv == MCL_OK; i++)
        rv = paths[i] == NULL ? MCL_EINVAL : add_path(r, paths[i]);
    for (size_t i = 0; i < r->nsrc && rv == MCL_OK; i++) {
        source *s = &r->src[i];
        if (s->nfiles == 0)
            rv = MCL_ENOMEM;
        for (size_t k = 0; k < s->nfiles && rv == MCL_OK; k++)
            if ((rv = map_file(&s->files[k])) == MCL_ENOENT)
                rv = mcl__fail(MCL_ENOENT, NULL, 0, "log", "%s vanished", s->files[k].path);
        // Python MCL writes the header (and its creation time) in the first part only.
        if (rv == MCL_OK)
            s->text_created = s->files[0].created_ns;
    }
    if (rv == MCL_OK)
        rv = mcl_log_reader_reset(r);
    if (rv != MCL_OK) {
        mcl_log_reader_close(r);
        return rv;
    }
    *rp = r;
    return MCL_OK;
}

mcl_err
mcl_log_reader_next(mcl_log_reader *r, const mcl_raw_msg **msgp)
{
    if (msgp != NULL)
        *msgp = NULL;
    if (r == NULL || msgp == NULL)
        return MCL_EINVAL;
    if (r->last >= 0) { // the record handed out last: its source moves on
        r->src[r->last].need = true;
        r->last = -1;
    }
    r->in_next = true;
    r->work = 0;
    for (size_t i = 0; i < r->nsrc; i++)
        if (r->src[i].need) {
            advance(r, &r->src[i]);
            if (r->stopped) { // (the next call goes on with this source)
                r->stopped = r->in_next = false;
                return MCL_EINTR;
            }
            if (r->oom) { // (this source stays where it was: the next call tries again)
                r->oom = r->in_next = false;
                return MCL_ENOMEM;
            }
        }
    r->in_next = false;
    int best = -1;
    for (size_t i = 0; i < r->nsrc; i++) // merge: the earliest record first (ties: path order)
        if (r->src[i].have &&
            (best < 0 || r->src[i].msg.recv_realtime_ns < r->src[best].msg.recv_realtime_ns))
            best = (int)i;
    if (best < 0)
        return MCL_ENOENT;
    // Hand out a copy whose topic is NUL-terminated (without memory for it, the record stays
    // the next one: calling again retries).
    const mcl_raw_msg *m = &r->src[best].msg;
    char *t = mcl__realloc((void *)(uintptr_t)r->out.topic, m->topic_len + 1);
    if (t == NULL)
        return MCL_ENOMEM;
    r->last = best;
    memcpy(t, m->topic, m->topic_len);
    t[m->topic_len] = '\0';
    r->out = *m;
    r->out.topic = t;
    *msgp = &r->out;
    return MCL_OK;
}

// First valid binary record starting in [at, limit) of f: its time, and its offset; false if
// none. Does not count damage (a probe, not a read). Bisection halves `limit - at` each time, so
// a seek looks at each byte a few times at most.
static bool
probe(lfile *f, size_t at, size_t limit, int64_t *t, size_t *roff)
{
    while (at < limit && at + REC_HDR + REC_BODY <= f->size) {
        size_t end = limit + 3 < f->size ? limit + 3 : f->size; // a marker starting before limit
        const uint8_t *p = find_sync(f, f->base + at, end - at);
        if (p == NULL)
            return false;
        size_t off = (size_t)(p - f->base);
        uint64_t body;
        // (a block: its earliest time, from its header; not decompressed)
        if ((candidate(f, off, &body) || blk_candidate(f, off, &body)) &&
            body_crc_ok(f, off + REC_HDR, (size_t)body, mcl__get_be32(p + 8))) {
            *t = (int64_t)mcl__get_be64(p + REC_HDR + (p[1] == 'B' ? 16 : 0));
            *roff = off;
            return true;
        }
        at = off + 1;
    }
    return false;
}

mcl_err
mcl_log_reader_seek(mcl_log_reader *r, int64_t t)
{
    if (r == NULL)
        return MCL_EINVAL;
    r->corrupt = r->corrupt_bytes = 0; // counted again as the files are read again
    r->blocks = r->block_bytes = r->block_raw = 0;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        s->cur = 0; // no read-ahead here: the positions below are where reading resumes
        s->done = false;
        for (size_t k = 0; k < s->nfiles; k++)
            new_pass(&s->files[k]);
        // Skip the parts that a later part starts after, then binary-search inside the part.
        for (; s->cur < s->nfiles; s->cur++) {
            lfile *f = &s->files[s->cur];
            if (f->text)
                break; // text logs: the linear scan below
            if (s->cur + 1 < s->nfiles) {
                lfile *n = &s->files[s->cur + 1];
                int64_t nt;
                size_t no;
                if (!n->text && probe(n, n->data_off, n->size, &nt, &no) && nt < t)
                    continue;
            }
            size_t lo = f->data_off, hi = f->size;
            while (hi - lo > 65536) {
                size_t mid = lo + (hi - lo) / 2, off;
                int64_t mt;
                if (probe(f, mid, hi, &mt, &off) && mt < t)
                    lo = off;
                else
                    hi = mid;
            }
            f->off = lo;
            break;
        }
        s->have = false;
        s->done = false;
        s->need = true; // read by mcl_log_reader_next(), from the first record at or after t
        s->floor_on = true;
        s->floor_ns = t;
    }
    r->last = -1;
    return MCL_OK;
}

uint64_t
mcl_log_reader_corrupt(const mcl_log_reader *r, uint64_t *bytes)
{
    if (r == NULL)
        return 0;
    if (bytes != NULL)
        *bytes = r->corrupt_bytes;
    return r->corrupt;
}

uint64_t
mcl_log_reader_tail(const mcl_log_reader *r)
{
    uint64_t n = 0;
    for (size_t i = 0; r != NULL && i < r->nsrc; i++) {
        const source *s = &r->src[i];
        if (s->have || s->nfiles == 0 || s->cur < s->nfiles)
            continue; // not at its end
        const lfile *f = &s->files[s->nfiles - 1];
        if (!f->pending && !f->bad && f->off < f->size)
            n += f->size - f->off;
    }
    return n;
}

// --- following files that grow ------------------------------------------------------------------

// File f of s was mapped again (old mapping ob/os, new nb/ns): the look-ahead record, when it
// is f's (binary records point into the mapping; text records into the source's buffers), and
// the record handed out, when it is that one, point at the same bytes of the new mapping. A
// look-ahead no longer inside (the file shrank) is dropped and read again from where it
// started; returns true then.
static bool
relocate(mcl_log_reader *r, source *s, lfile *f, const uint8_t *ob, const uint8_t *nb, size_t ns)
{
    if (!s->have || f->text || s->la_blk || &s->files[s->la_cur] != f || ob == NULL)
        return false; // (a record of a block is in the source's buffer)
    bool out = r->last >= 0 && &r->src[r->last] == s; // r->out is a copy of this look-ahead
    size_t to = (size_t)((uintptr_t)s->msg.topic - (uintptr_t)ob);
    if (to + s->msg.topic_len + s->msg.len <= ns) {
        s->msg.topic = (const char *)(nb + to);
        if (s->msg.payload != NULL)
            s->msg.payload = nb + to + s->msg.topic_len;
        if (out)
            r->out.payload = s->msg.payload; // (its topic is a copy)
        return false;
    }
    s->have = false;
    s->cur = s->la_cur;
    f->off = s->la_off < ns ? s->la_off : ns;
    if (out) {
        r->last = -1;
        r->out.payload = NULL;
        r->out.len = 0;
    }
    return true;
}

// Maps f again if its size changed; a file that was still being created is detected now.
// Returns true when it holds more than before. Errors keep what was mapped (a file gone for a
// moment, a failed mmap: tried again at the next refresh).
static bool
refresh_file(mcl_log_reader *r, source *s, lfile *f, bool *dropped)
{
    if (f->bad)
        return false;
    const uint8_t *nb;
    size_t ns;
    if (map_now(f->path, &nb, &ns, f->size) != MCL_OK)
        return false;
    const uint8_t *ob = f->base;
    size_t os = f->size;
    if (relocate(r, s, f, ob, nb, ns))
        *dropped = true;
    if (ob != NULL)
        munmap((void *)(uintptr_t)ob, os);
    f->base = nb;
    f->size = ns;
    forget_checks(f);
    if (f->tent) { // stopped while deciding about a record past the end: decide again
        tent_drop(r, f);
        f->off = f->tent_off;
    }
    f->cont = false;
    if (f->off > ns) // shrank (rewritten?): read on from its new end
        f->off = ns;
    if (f->data_off > ns)
        f->data_off = ns;
    if (f->pending) {
        mcl_err rv = detect(f);
        if (rv == MCL_EAGAIN) {
            f->pending = true;
            return false;
        }
        if (rv != MCL_OK) {
            f->bad = true;
            return false;
        }
        if (f == &s->files[0])
            s->text_created = f->created_ns;
    }
    return ns > os;
}

// New parts of a split series (PATH_NNN+1.EXT, ...): returns the index of the first one added,
// or SIZE_MAX when there is none.
static size_t
refresh_series(source *s)
{
    size_t first = SIZE_MAX;
    while (s->prefix != NULL && s->nfiles < 1000000) {
        char *name;
        if (asprintf(&name, "%s_%03zu.%s", s->prefix, s->nfiles, s->ext) < 0)
            break;
        if (!exists(name)) {
            free(name);
            break;
        }
        lfile *nf = mcl__realloc(s->files, (s->nfiles + 1) * sizeof(*nf));
        if (nf == NULL) {
            free(name);
            break;
        }
        s->files = nf;
        lfile *f = &s->files[s->nfiles];
        memset(f, 0, sizeof(*f));
        f->path = mcl__strdup(name);
        free(name);
        if (f->path == NULL)
            break;
        mcl_err rv = map_file(f);
        if (rv == MCL_ENOENT || rv == MCL_ENOMEM || rv == MCL_ESYS) { // try again next time
            unmap_file(f);
            mcl__free(f->path);
            break;
        }
        if (rv != MCL_OK)
            f->bad = true; // not a log (or not a file): skipped, later parts still read
        if (first == SIZE_MAX)
            first = s->nfiles;
        s->nfiles++;
    }
    return first;
}

mcl_err
mcl_log_reader_refresh(mcl_log_reader *r)
{
    if (r == NULL)
        return MCL_EINVAL;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        if (s->nfiles == 0)
            continue;
        // Parts before the current one are finished (a writer closes a part before it starts
        // the next): only the current one and those after it can grow.
        // New parts are looked for first: a part that has a successor was finished before the
        // successor was created, so it is mapped complete below (its unread end is damage).
        size_t from = s->cur < s->nfiles ? s->cur : s->nfiles - 1, grown = SIZE_MAX;
        size_t added = refresh_series(s);
        bool dropped = false;
        for (size_t k = from; k < s->nfiles; k++)
            if (refresh_file(r, s, &s->files[k], &dropped) && grown == SIZE_MAX)
                grown = k;
        if (grown == SIZE_MAX)
            grown = added;
        if (!s->have && (grown != SIZE_MAX || dropped)) { // it had reached its end: go on
            if (grown < s->cur)
                s->cur = grown;
            s->need = true; // (mcl_log_reader_next() reads)
        }
    }
    return MCL_OK;
}

// --- marks (lib/log/logstream.c) -----------------------------------------------------------------

// A mark records where each source's next record starts, so that the log stream can come back
// to a record index without reading from the start: words [nsrc, last + 1, then per source
// have, file, offset, offset inside the block at offset (0: a plain record)]. Declared again
// in logstream.c (lib/log has no internal header).
size_t mcl__log_mark_words(const mcl_log_reader *r);
void mcl__log_reader_mark(const mcl_log_reader *r, uint64_t *mark);
mcl_err mcl__log_reader_restore(mcl_log_reader *r, const uint64_t *mark);
void mcl__log_reader_size(const mcl_log_reader *r, size_t *files, uint64_t *bytes);

size_t
mcl__log_mark_words(const mcl_log_reader *r)
{
    return 2 + 4 * r->nsrc;
}

void
mcl__log_reader_mark(const mcl_log_reader *r, uint64_t *mark)
{
    mark[0] = r->nsrc;
    mark[1] = (uint64_t)(r->last + 1);
    for (size_t i = 0; i < r->nsrc; i++) {
        const source *s = &r->src[i];
        uint64_t *m = mark + 2 + 4 * i;
        size_t c = s->cur < s->nfiles ? s->cur : s->nfiles - 1; // (at its end: the last file)
        const lfile *f = s->nfiles ? &s->files[c] : NULL;
        m[0] = s->have;
        m[1] = s->have ? s->la_cur : c;
        m[2] = s->have ? s->la_off : f == NULL ? 0 : f->in_blk ? f->blk_off : f->off;
        m[3] = s->have ? s->la_in : f != NULL && f->in_blk ? f->blk_pos : 0;
    }
}

mcl_err
mcl__log_reader_restore(mcl_log_reader *r, const uint64_t *mark)
{
    if (mark[0] != r->nsrc || mark[1] > r->nsrc)
        return MCL_EINVAL;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        const uint64_t *m = mark + 2 + 4 * i;
        if (s->nfiles == 0 || m[1] >= s->nfiles)
            return MCL_EINVAL;
    }
    int last = (int)mark[1] - 1;
    for (size_t i = 0; i < r->nsrc; i++) {
        source *s = &r->src[i];
        const uint64_t *m = mark + 2 + 4 * i;
        s->cur = (size_t)m[1];
        s->done = false;
        for (size_t k = 0; k < s->nfiles; k++) {
            tent_drop(r, &s->files[k]);
            s->files[k].cont = false;
            s->files[k].in_blk = false;
            s->files[k].blk_resume = 0;
            if (k > s->cur)
                s->files[k].off = s->files[k].data_off;
        }
        s->floor_on = false;
        lfile *f = &s->files[s->cur];
        f->off = m[2] < f->data_off ? f->data_off : m[2] > f->size ? f->size : (size_t)m[2];
        f->blk_resume = (size_t)m[3]; // (read from there when the block at off loads)
        f->blk_resume_off = f->off;
        advance(r, s); // the look-ahead again (or, at the end, what came since)
        if ((int)i == last && !s->have)
            last = -1; // (the file changed under us)
    }
    r->last = last;
    return MCL_OK;
}

// Tests and the fuzz target: the compressed blocks read so far (since the last reset or seek),
// their bytes in the files, and the bytes of their records as if plain (12 + L each).
void mcl__log_reader_blocks(const mcl_log_reader *r, uint64_t *n, uint64_t *bytes,
                            uint64_t *raw);
void
mcl__log_reader_blocks(const mcl_log_reader *r, uint64_t *n, uint64_t *bytes, uint64_t *raw)
{
    *n = r->blocks;
    *bytes = r->block_bytes;
    *raw = r->block_raw;
}

void
mcl__log_reader_size(const mcl_log_reader *r, size_t *files, uint64_t *bytes)
{
    size_t n = 0;
    uint64_t b = 0;
    for (size_t i = 0; i < r->nsrc; i++) {
        n += r->src[i].nfiles;
        for (size_t k = 0; k < r->src[i].nfiles; k++)
            b += r->src[i].files[k].size;
    }
    *files = n;
    *bytes = b;
}
