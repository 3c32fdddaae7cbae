// SPDX-License-Identifier: BSD-3-Clause
// Compressed logs (docs/log-format.md "Compressed blocks"): round trips through both codecs
// equal to the plain log, seek by time, a damaged block, a torn last block and following it,
// blocks that lie about their sizes, old-version refusal, remote-log marks inside blocks.
#define _GNU_SOURCE
#include "harness.h"

#include <mcl/logfile.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Internal (lib/log/logfile.c, lib/core/zcodec.c, lib/core/alloc).
uint32_t mcl__crc32c(const void *data, size_t n);
void mcl__log_reader_blocks(const mcl_log_reader *r, uint64_t *n, uint64_t *bytes,
                            uint64_t *raw);
void mcl__alloc_fail_after(long n);
size_t mcl__log_mark_words(const mcl_log_reader *r);
void mcl__log_reader_mark(const mcl_log_reader *r, uint64_t *mark);
mcl_err mcl__log_reader_restore(mcl_log_reader *r, const uint64_t *mark);
bool mcl__z_built(int codec);

static uint8_t pay[1 << 20];

// Record i: time 1e9 + i ms, topic "t<i%3>", a payload of size (i * 37) % 900 that compresses
// (a counter in a pattern); record 7 is 1 MiB + 1 (larger than any block: written plain).
static size_t
fill(int i)
{
    size_t len = i == 7 ? sizeof(pay) : (size_t)i * 37 % 900;
    for (size_t k = 0; k < len; k++)
        pay[k] = k % 16 == 0 ? (uint8_t)i : (uint8_t)(k / 64);
    return len;
}

static void
write_n(const char *path, int n, mcl_log_compress z, size_t block)
{
    mcl_log_writer_options o = {.overwrite = true, .compress = z, .block_bytes = block};
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, path, &o));
    for (int i = 0; i < n; i++) {
        char topic[8];
        snprintf(topic, sizeof(topic), "t%d", i % 3);
        size_t len = fill(i);
        mcl_raw_msg m = {.topic = topic, .topic_len = strlen(topic), .payload = pay, .len = len,
                         .publisher = 0xabc, .seq = (uint64_t)i,
                         .recv_realtime_ns = 1000000000LL + (int64_t)i * 1000000};
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
}

static size_t
file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

static uint8_t *
slurp(const char *p, size_t *n)
{
    *n = file_size(p);
    uint8_t *b = malloc(*n + 1);
    FILE *f = fopen(p, "rb");
    CU_ASSERT_FATAL(b != NULL && f != NULL);
    CU_ASSERT_FATAL(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}

static void
spit(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fwrite(b, 1, n, f) == n);
    fclose(f);
}

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// The units of a log file (records and blocks), walked by their lengths.
typedef struct unit {
    size_t off, len; // in the file, 12 + L
    bool blk;
    uint32_t n;      // records (1 for a plain record)
    uint64_t first;  // seq of its first record
} unit;

static size_t
units(const uint8_t *b, size_t size, unit *u, size_t max)
{
    size_t off = (size_t)b[10] << 8 | b[11], k = 0;
    uint64_t seq = 0;
    while (off + 12 <= size && k < max) {
        bool blk = memcmp(b + off, "MBLK", 4) == 0;
        size_t len = 12 + be32(b + off + 4);
        if (off + len > size)
            break;
        uint32_t n = blk ? be32(b + off + 24) : 1;
        u[k++] = (unit){off, len, blk, n, seq};
        seq += n;
        off += len;
    }
    return k;
}

// Reads everything; returns the count; checks every record against fill() when check.
static int
read_log(const char *p, uint64_t *corrupt, uint64_t *bytes, uint64_t *tail, bool *seen,
         int nseen)
{
    const char *paths[] = {p};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        int i = (int)m->seq;
        size_t len = fill(i);
        char topic[8];
        snprintf(topic, sizeof(topic), "t%d", i % 3);
        CU_ASSERT_STRING_EQUAL(m->topic, topic);
        CU_ASSERT_EQUAL(m->len, len);
        CU_ASSERT(len == 0 || memcmp(m->payload, pay, len) == 0);
        CU_ASSERT_EQUAL(m->recv_realtime_ns, 1000000000LL + (int64_t)i * 1000000);
        if (seen != NULL && i >= 0 && i < nseen)
            seen[i] = true;
        n++;
    }
    uint64_t by = 0;
    uint64_t c = mcl_log_reader_corrupt(r, &by);
    if (corrupt)
        *corrupt = c;
    if (bytes)
        *bytes = by;
    if (tail)
        *tail = mcl_log_reader_tail(r);
    mcl_log_reader_close(r);
    return n;
}

static const mcl_log_compress codecs[] = {MCL_LOG_COMPRESS_ZSTD, MCL_LOG_COMPRESS_LZ4,
                                          MCL_LOG_COMPRESS_LZ4HC};

static void
test_roundtrip_both_codecs(void)
{
    enum { N = 2000 };
    write_n(mclt_tmppath("plain.mcllog"), N, MCL_LOG_COMPRESS_NONE, 0);
    for (int c = 0; c < 3; c++) { // (lz4hc writes lz4 blocks and says so)
        if (!mcl__z_built((int)codecs[c]))
            continue;
        for (int bs = 0; bs < 2; bs++) {
            const char *zp = mclt_tmppath("z.mcllog");
            write_n(zp, N, codecs[c], bs ? 8192 : 0);
            size_t zs;
            uint8_t *zb = slurp(zp, &zs);
            CU_ASSERT_EQUAL(zb[9], 2); // version 2
            CU_ASSERT(memmem(zb, 200, c == 0 ? "compress=zstd\n" : "compress=lz4\n",
                             c == 0 ? 14 : 13) != NULL);
            unit u[4096];
            size_t nu = units(zb, zs, u, 4096), nb = 0;
            for (size_t k = 0; k < nu; k++)
                nb += u[k].blk;
            CU_ASSERT(nb >= (bs ? 20u : 1u)); // (and record 7 plain)
            CU_ASSERT(nu >= 2 && !u[1].blk && u[1].first == 7);
            free(zb);
            // (record 7, 1 MiB, is plain in both)
            CU_ASSERT(zs - u[1].len < (file_size(mclt_tmppath("plain.mcllog")) - u[1].len) / 2);
            // Record by record the same as the plain log.
            const char *pp[] = {mclt_tmppath("plain.mcllog")}, *zpp[] = {zp};
            mcl_log_reader *a, *b;
            MCLT_OK(mcl_log_reader_open(&a, pp, 1, NULL));
            MCLT_OK(mcl_log_reader_open(&b, zpp, 1, NULL));
            const mcl_raw_msg *ma, *mb;
            int n = 0;
            while (mcl_log_reader_next(a, &ma) == MCL_OK) {
                if (mcl_log_reader_next(b, &mb) != MCL_OK) {
                    CU_FAIL("compressed log ends early");
                    break;
                }
                CU_ASSERT_EQUAL(ma->seq, mb->seq);
                CU_ASSERT_EQUAL(ma->publisher, mb->publisher);
                CU_ASSERT_EQUAL(ma->recv_realtime_ns, mb->recv_realtime_ns);
                CU_ASSERT_STRING_EQUAL(ma->topic, mb->topic);
                CU_ASSERT(ma->len == mb->len && (ma->len == 0 || memcmp(ma->payload, mb->payload, ma->len) == 0));
                n++;
            }
            CU_ASSERT_EQUAL(n, N);
            CU_ASSERT_EQUAL(mcl_log_reader_next(b, &mb), MCL_ENOENT);
            uint64_t blocks, bbytes, raw, cb;
            mcl__log_reader_blocks(b, &blocks, &bbytes, &raw);
            CU_ASSERT_EQUAL(blocks, nb);
            CU_ASSERT_EQUAL(mcl_log_reader_corrupt(b, &cb), 0);
            CU_ASSERT_EQUAL(mcl_log_reader_tail(b), 0);
            // A second pass (reset) reads the same.
            MCLT_OK(mcl_log_reader_reset(b));
            int n2 = 0;
            while (mcl_log_reader_next(b, &mb) == MCL_OK)
                n2++;
            CU_ASSERT_EQUAL(n2, N);
            mcl_log_reader_close(a);
            mcl_log_reader_close(b);
        }
    }
}

static void
test_seek_by_time(void)
{
    enum { N = 3000 };
    const char *pp = mclt_tmppath("sp.mcllog"), *zp = mclt_tmppath("sz.mcllog");
    write_n(pp, N, MCL_LOG_COMPRESS_NONE, 0);
    write_n(zp, N, MCL_LOG_COMPRESS_ZSTD, 16384);
    const char *a[] = {pp}, *b[] = {zp};
    mcl_log_reader *ra, *rb;
    MCLT_OK(mcl_log_reader_open(&ra, a, 1, NULL));
    MCLT_OK(mcl_log_reader_open(&rb, b, 1, NULL));
    const int64_t ts[] = {0, 1000000000LL, 1000000000LL + 1, 1000000000LL + 7000000,
                          1000000000LL + 1234500000LL, 1000000000LL + 2999000000LL,
                          1000000000LL + 1500000000LL, 1000000000LL + 3000000000LL, 1000000000LL + 17000000};
    for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]); k++) {
        const mcl_raw_msg *ma, *mb;
        MCLT_OK(mcl_log_reader_seek(ra, ts[k]));
        MCLT_OK(mcl_log_reader_seek(rb, ts[k]));
        mcl_err ea = mcl_log_reader_next(ra, &ma), eb = mcl_log_reader_next(rb, &mb);
        CU_ASSERT_EQUAL(ea, eb);
        if (ea == MCL_OK && eb == MCL_OK) {
            CU_ASSERT_EQUAL(ma->seq, mb->seq);
            CU_ASSERT(mb->recv_realtime_ns >= ts[k]);
            // and the next few agree
            for (int j = 0; j < 5; j++)
                if (mcl_log_reader_next(ra, &ma) == MCL_OK && mcl_log_reader_next(rb, &mb) == MCL_OK)
                    CU_ASSERT_EQUAL(ma->seq, mb->seq);
        }
    }
    // start_ns as a filter, too: the same first record.
    mcl_log_reader_options o = {.start_ns = 1000000000LL + 2222222222LL};
    mcl_log_reader *fa, *fb;
    MCLT_OK(mcl_log_reader_open(&fa, a, 1, &o));
    MCLT_OK(mcl_log_reader_open(&fb, b, 1, &o));
    const mcl_raw_msg *ma, *mb;
    MCLT_OK(mcl_log_reader_next(fa, &ma));
    MCLT_OK(mcl_log_reader_next(fb, &mb));
    CU_ASSERT_EQUAL(ma->seq, 2223);
    CU_ASSERT_EQUAL(mb->seq, 2223);
    mcl_log_reader_close(fa);
    mcl_log_reader_close(fb);
    mcl_log_reader_close(ra);
    mcl_log_reader_close(rb);
}

// A flipped byte in a block (its compressed bytes, or its header fields) loses only that
// block's records, counted as one damaged record of the block's bytes; the next block reads.
static void
test_damaged_block(void)
{
    enum { N = 600 };
    const char *zp = mclt_tmppath("d.mcllog"), *cp = mclt_tmppath("d2.mcllog");
    write_n(zp, N, MCL_LOG_COMPRESS_ZSTD, 4096);
    size_t zs;
    uint8_t *zb = slurp(zp, &zs);
    unit u[1024];
    size_t nu = units(zb, zs, u, 1024);
    CU_ASSERT_FATAL(nu > 10);
    size_t which[] = {0, 3, nu / 2, nu - 2};
    size_t where[] = {12, 20, 24, 28, 200}; // codec, U, N, a time, compressed bytes
    for (size_t w = 0; w < 4; w++) {
        const unit *b = &u[which[w]];
        CU_ASSERT_FATAL(b->blk);
        for (size_t k = 0; k < 5; k++) {
            size_t at = b->off + (where[k] < b->len ? where[k] : b->len - 1);
            zb[at] ^= 0x10;
            spit(cp, zb, zs);
            zb[at] ^= 0x10;
            bool seen[N] = {false};
            uint64_t corrupt, bytes, tail;
            int n = read_log(cp, &corrupt, &bytes, &tail, seen, N);
            CU_ASSERT_EQUAL(n, N - (int)b->n);
            CU_ASSERT_EQUAL(corrupt, 1);
            CU_ASSERT_EQUAL(bytes, b->len);
            CU_ASSERT_EQUAL(tail, 0);
            for (int i = 0; i < N; i++)
                CU_ASSERT_EQUAL(seen[i], !((uint64_t)i >= b->first && (uint64_t)i < b->first + b->n));
        }
    }
    free(zb);
}

// kill -9 of the recorder: the file ends inside a block. Every complete block is read, the
// part block is the tail (not damage); once the file is complete (refresh), the rest reads.
static void
test_torn_last_block_and_follow(void)
{
    enum { N = 400 };
    const char *zp = mclt_tmppath("t.mcllog"), *cp = mclt_tmppath("t2.mcllog");
    write_n(zp, N, MCL_LOG_COMPRESS_LZ4, 4096);
    size_t zs;
    uint8_t *zb = slurp(zp, &zs);
    unit u[1024];
    size_t nu = units(zb, zs, u, 1024);
    const unit *last = &u[nu - 1];
    CU_ASSERT_FATAL(last->blk && last->off + last->len == zs);
    size_t cuts[] = {last->off + 1, last->off + 12, last->off + 44, last->off + last->len / 2,
                     zs - 1};
    for (size_t k = 0; k < 5; k++) {
        spit(cp, zb, cuts[k]);
        uint64_t corrupt, bytes, tail;
        int n = read_log(cp, &corrupt, &bytes, &tail, NULL, 0);
        CU_ASSERT_EQUAL(n, N - (int)last->n);
        CU_ASSERT_EQUAL(corrupt, 0);
        CU_ASSERT_EQUAL(tail, cuts[k] - last->off);
    }
    // Following: open the torn copy, read to its end, complete it, refresh, read on.
    spit(cp, zb, last->off + last->len / 2);
    const char *paths[] = {cp};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        n++;
    CU_ASSERT_EQUAL(n, N - (int)last->n);
    spit(cp, zb, zs);
    MCLT_OK(mcl_log_reader_refresh(r));
    uint64_t want = last->first;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        CU_ASSERT_EQUAL(m->seq, want);
        want++;
        n++;
    }
    CU_ASSERT_EQUAL(n, N);
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, NULL), 0);
    mcl_log_reader_close(r);
    free(zb);
}

// Blocks whose header claims more than the bound (16 MiB, or 256 times the block's bytes) are
// damage, refused before anything is allocated for them: whichever allocation of the read
// fails, the reader still counts the block as damage (were it allocated for, that failure
// would end the reading there, uncounted, as the tail).
// A block that cannot be loaded for want of memory is neither damage nor the end: next says
// MCL_ENOMEM, and the next call (memory back) reads it, every record, nothing counted.
static void
test_block_out_of_memory_retried(void)
{
    const char *zp = mclt_tmppath("m.mcllog");
    write_n(zp, 20, MCL_LOG_COMPRESS_LZ4, 0);
    const char *paths[] = {zp};
    int failures = 0;
    for (long nth = 0; nth < 6; nth++) { // the nth allocation of the first read fails
        mcl_log_reader *r;
        MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
        const mcl_raw_msg *m;
        mcl__alloc_fail_after(nth);
        mcl_err rv = mcl_log_reader_next(r, &m);
        mcl__alloc_fail_after(-1);
        CU_ASSERT(rv == MCL_OK || rv == MCL_ENOMEM);
        int n = rv == MCL_OK ? 1 : 0;
        failures += rv == MCL_ENOMEM;
        while ((rv = mcl_log_reader_next(r, &m)) == MCL_OK)
            n++;
        CU_ASSERT_EQUAL(rv, MCL_ENOENT);
        CU_ASSERT_EQUAL(n, 20);
        uint64_t bytes;
        CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, &bytes), 0);
        CU_ASSERT_EQUAL(mcl_log_reader_tail(r), 0);
        mcl_log_reader_close(r);
    }
    CU_ASSERT(failures > 0); // (some of those allocations were the block's)
}

static void
test_huge_block_refused(void)
{
    const char *zp = mclt_tmppath("h.mcllog"), *cp = mclt_tmppath("h2.mcllog");
    write_n(zp, 20, MCL_LOG_COMPRESS_ZSTD, 0); // block 0: records 0..6, record 7 plain, block
    size_t zs;
    uint8_t *zb = slurp(zp, &zs);
    unit u[8];
    size_t nu = units(zb, zs, u, 8);
    CU_ASSERT_FATAL(nu == 3 && u[0].blk && u[2].blk);
    const uint32_t claims[] = {0xfffffff0u, (16u << 20) + 1, (uint32_t)(256 * (u[0].len - 12) + 1)};
    for (int k = 0; k < 3; k++) {
        uint8_t *b = malloc(zs);
        CU_ASSERT_FATAL(b != NULL);
        memcpy(b, zb, zs);
        uint8_t *h = b + u[0].off;
        put32(h + 20, claims[k]);
        put32(h + 8, mcl__crc32c(h + 12, u[0].len - 12)); // a right CRC: only the size lies
        size_t hl = (size_t)b[10] << 8 | b[11];
        spit(cp, b, hl + u[0].len); // the lying block alone
        const char *paths[] = {cp};
        for (long nth = 0; nth < 8; nth++) { // the nth allocation of the read fails
            mcl_log_reader *r;
            MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
            const mcl_raw_msg *m;
            mcl__alloc_fail_after(nth);
            mcl_err rv = mcl_log_reader_next(r, &m);
            mcl__alloc_fail_after(-1);
            CU_ASSERT_EQUAL(rv, MCL_ENOENT);
            uint64_t bytes;
            CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, &bytes), 1);
            CU_ASSERT_EQUAL(bytes, u[0].len);
            CU_ASSERT_EQUAL(mcl_log_reader_tail(r), 0);
            mcl_log_reader_close(r);
        }
        spit(cp, b, zs); // with the rest: block 0's records lost, the rest read
        uint64_t corrupt;
        CU_ASSERT_EQUAL(read_log(cp, &corrupt, NULL, NULL, NULL, 0), 20 - (int)u[0].n);
        CU_ASSERT_EQUAL(corrupt, 1);
        free(b);
    }
    free(zb);
}

// A file of a later version is refused with a clear error, never misread (as a version 1
// reader refuses a compressed log); a plain log stays version 1.
static void
test_versions(void)
{
    const char *pp = mclt_tmppath("v1.mcllog"), *zp = mclt_tmppath("v.mcllog"), *cp = mclt_tmppath("v3.mcllog");
    write_n(pp, 10, MCL_LOG_COMPRESS_NONE, 0);
    write_n(zp, 10, MCL_LOG_COMPRESS_ZSTD, 0);
    size_t ps, zs;
    uint8_t *pb = slurp(pp, &ps), *zb = slurp(zp, &zs);
    CU_ASSERT_EQUAL(pb[9], 1);
    CU_ASSERT_EQUAL(zb[9], 2);
    size_t hl = (size_t)zb[10] << 8 | zb[11];
    zb[9] = 3;
    put32(zb + hl - 4, mcl__crc32c(zb, hl - 4));
    spit(cp, zb, zs);
    const char *paths[] = {cp};
    mcl_log_reader *r;
    MCLT_ERR(mcl_log_reader_open(&r, paths, 1, NULL), MCL_EPROTO);
    // MBLK in a version 1 file is no marker: a block copied into one is damage.
    zb[9] = 1;
    put32(zb + hl - 4, mcl__crc32c(zb, hl - 4));
    spit(cp, zb, zs);
    uint64_t corrupt;
    int n = read_log(cp, &corrupt, NULL, NULL, NULL, 0);
    CU_ASSERT_EQUAL(n, 1); // record 7, plain
    CU_ASSERT(corrupt >= 1);
    // Bad options.
    mcl_log_writer *w;
    mcl_log_writer_options o = {.compress = (mcl_log_compress)7};
    MCLT_ERR(mcl_log_writer_open(&w, mclt_tmppath("bad.mcllog"), &o), MCL_EINVAL);
    o = (mcl_log_writer_options){.compress = MCL_LOG_COMPRESS_ZSTD, .block_bytes = (16 << 20) + 1};
    MCLT_ERR(mcl_log_writer_open(&w, mclt_tmppath("bad.mcllog"), &o), MCL_EINVAL);
    free(pb);
    free(zb);
}

// Split and flush: each part a complete compressed file; flush writes the block being
// collected (a reader sees the records at once).
static void
test_split_and_flush(void)
{
    mcl_log_writer_options o = {.compress = MCL_LOG_COMPRESS_ZSTD, .split_count = 100,
                                .block_bytes = 8192};
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("sp"), &o));
    for (int i = 0; i < 250; i++) {
        size_t len = fill(i == 7 ? 8 : i);
        mcl_raw_msg m = {.topic = "t", .topic_len = 1, .payload = pay, .len = len,
                         .seq = (uint64_t)i, .recv_realtime_ns = 1000 + i};
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_flush(w, false));
    uint64_t recs;
    mcl_log_writer_counts(w, &recs, NULL, NULL);
    CU_ASSERT_EQUAL(recs, 250);
    const char *paths[] = {mclt_tmppath("sp")};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        CU_ASSERT_EQUAL(m->seq, (uint64_t)n++);
    CU_ASSERT_EQUAL(n, 250); // before close: flushed
    mcl_log_reader_close(r);
    MCLT_OK(mcl_log_writer_close(w));
    CU_ASSERT(file_size(mclt_tmppath("sp_002.mcllog")) > 0);
}

// The test vectors of docs/log-format.md "Compressed blocks", after a version 2 header.
static const char *const vectors[] = {
    // lz4
    "4d424c4b0000006d9f7560c2020000000000004d0000008a00000002000000003b9aca00000000003b9aca01"
    "f0000000003d0ddf8470000000003b9aca07000002001001050001020011030600bf1a696d7568656c6c6f2c"
    "200700000045004044bd92f92b00343b9aca3d000608000f45000c5068656c6c6f",
    // zstd
    "4d424c4b0000006ce520f64d010000000000004c0000008a00000002000000003b9aca00000000003b9aca01"
    "28b52ffd208a1d0200b4020000003d0ddf8470000000003b9aca00010003001a696d7568656c6c6f2c200000"
    "003d44bd92f93b9aca030900481000c4ad7600020da702ae921e040c08968125"};

static void
test_vectors(void)
{
    static const char meta[] = "host=x\npart=0\ncompress=lz4\n";
    uint8_t f[512];
    size_t hl = 24 + sizeof(meta) - 1 + 4;
    memset(f, 0, sizeof(f));
    memcpy(f, "MCLLOG\r\n", 8);
    f[9] = 2;
    f[10] = (uint8_t)(hl >> 8), f[11] = (uint8_t)hl;
    memcpy(f + 24, meta, sizeof(meta) - 1);
    put32(f + hl - 4, mcl__crc32c(f, hl - 4));
    for (int v = 0; v < 2; v++) {
        if (!mcl__z_built(v == 0 ? 2 : 1))
            continue;
        size_t n = hl;
        for (const char *h = vectors[v]; *h != '\0';) {
            if (*h == ' ') {
                h++;
                continue;
            }
            unsigned x;
            CU_ASSERT_FATAL(sscanf(h, "%2x", &x) == 1);
            f[n++] = (uint8_t)x;
            h += 2;
        }
        CU_ASSERT_EQUAL(n - hl, v == 0 ? 121u : 120u);
        spit(mclt_tmppath("vec.mcllog"), f, n);
        const char *paths[] = {mclt_tmppath("vec.mcllog")};
        mcl_log_reader *r;
        MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
        const mcl_raw_msg *m;
        for (int i = 0; i < 2; i++) {
            MCLT_OK(mcl_log_reader_next(r, &m));
            if (m == NULL)
                break;
            CU_ASSERT_EQUAL(m->recv_realtime_ns, 1000000000 + i);
            CU_ASSERT_EQUAL(m->publisher, 1);
            CU_ASSERT_EQUAL(m->seq, (uint64_t)i);
            CU_ASSERT_STRING_EQUAL(m->topic, "imu");
            CU_ASSERT(m->len == 26 && memcmp(m->payload, "hello, hello, hello, hello", 26) == 0);
        }
        CU_ASSERT_EQUAL(mcl_log_reader_next(r, &m), MCL_ENOENT);
        CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, NULL), 0);
        uint64_t nb, bb, raw;
        mcl__log_reader_blocks(r, &nb, &bb, &raw);
        CU_ASSERT_EQUAL(nb, 1);
        CU_ASSERT_EQUAL(bb, n - hl);
        mcl_log_reader_close(r);
    }
}

// Many tiny records: blocks end at 16384 records, the writer's bookkeeping of records not yet
// in the file never overflows (plain records too large for a block mixed in), every record reads.
static void
test_many_tiny_records(void)
{
    enum { N = 70000 };
    mcl_log_writer_options o = {.overwrite = true, .compress = MCL_LOG_COMPRESS_LZ4};
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("tiny.mcllog"), &o));
    for (int i = 0; i < N; i++) {
        size_t len = i % 20000 == 19999 ? sizeof(pay) : 0;
        memset(pay, 1, len);
        mcl_raw_msg m = {.topic = "t", .topic_len = 1, .payload = len ? pay : NULL, .len = len,
                         .seq = (uint64_t)i, .recv_realtime_ns = 1000 + i};
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
    const char *paths[] = {mclt_tmppath("tiny.mcllog")};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        if (m->seq != (uint64_t)n++)
            break;
    CU_ASSERT_EQUAL(n, N);
    uint64_t nb, bb, raw;
    mcl__log_reader_blocks(r, &nb, &bb, &raw);
    CU_ASSERT(nb >= N / 16384);
    mcl_log_reader_close(r);
}

// Remote logs come back to a record through reader marks: a mark taken at any record of a
// block (or a plain one) restores to that record.
static void
test_marks_inside_blocks(void)
{
    enum { N = 500 };
    const char *zp = mclt_tmppath("mk.mcllog");
    write_n(zp, N, MCL_LOG_COMPRESS_ZSTD, 4096);
    const char *paths[] = {zp};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    size_t words = mcl__log_mark_words(r);
    uint64_t *mk = calloc(words, sizeof(*mk));
    CU_ASSERT_FATAL(mk != NULL);
    const mcl_raw_msg *m;
    for (int at = 0; at < N; at += 37) {
        MCLT_OK(mcl_log_reader_reset(r));
        for (int i = 0; i < at; i++)
            MCLT_OK(mcl_log_reader_next(r, &m));
        mcl__log_reader_mark(r, mk);
        for (int i = 0; i < 50 && mcl_log_reader_next(r, &m) == MCL_OK; i++)
            ;
        MCLT_OK(mcl__log_reader_restore(r, mk));
        if (at == 0)
            continue; // (the mark before the first read: next() returns the first record)
        // The mark was taken after `at` records were returned: the next one is record at.
        MCLT_OK(mcl_log_reader_next(r, &m));
        if (m != NULL)
            CU_ASSERT_EQUAL(m->seq, (uint64_t)at);
        MCLT_OK(mcl_log_reader_next(r, &m));
        if (m != NULL)
            CU_ASSERT_EQUAL(m->seq, (uint64_t)at + 1);
    }
    free(mk);
    mcl_log_reader_close(r);
}

static CU_TestInfo tests[] = {{"vectors", test_vectors},
                              {"roundtrip_both_codecs", test_roundtrip_both_codecs},
                              {"seek_by_time", test_seek_by_time},
                              {"damaged_block", test_damaged_block},
                              {"torn_last_block_and_follow", test_torn_last_block_and_follow},
                              {"huge_block_refused", test_huge_block_refused},
                              {"block_out_of_memory_retried", test_block_out_of_memory_retried},
                              {"versions", test_versions},
                              {"split_and_flush", test_split_and_flush},
                              {"marks_inside_blocks", test_marks_inside_blocks},
                              {"many_tiny_records", test_many_tiny_records},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("log_zblocks", NULL, NULL, tests);
