// SPDX-License-Identifier: BSD-3-Clause
// Log files: round trips, split rules, torn and corrupt files, filters, seek, merge, files
// still being written, Python MCL text logs.
#define _GNU_SOURCE
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// lib/log/logfile.c, internal: the CRC32C, and the switch between its implementations (0 a byte
// at a time, 1 slicing by 8, 2 SSE4.2).
uint32_t mcl__crc32c(const void *data, size_t n);
int mcl__crc32c_impl(int impl);

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static mcl_raw_msg
rec(int64_t t, uint64_t seq, const char *topic, const void *payload, size_t len)
{
    mcl_raw_msg m = {.topic = topic,
                     .topic_len = strlen(topic),
                     .payload = payload,
                     .len = len,
                     .publisher = 0xabc,
                     .seq = seq,
                     .recv_realtime_ns = t};
    return m;
}

static uint8_t big[1 << 20];

// Writes n records: times 1e9 + i*1e6 ns, topic "t<i%3>", payload i bytes of (uint8_t)i (the
// 7th is 1 MiB).
static void
write_log(const char *path, int n, const mcl_log_writer_options *o)
{
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, path, o));
    for (int i = 0; i < n; i++) {
        char topic[8];
        snprintf(topic, sizeof(topic), "t%d", i % 3);
        size_t len = i == 7 ? sizeof(big) : (size_t)i;
        memset(big, i, len);
        mcl_raw_msg m = rec(1000000000LL + (int64_t)i * 1000000, (uint64_t)i, topic, big, len);
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
}

static int
read_all(const char *const *paths, size_t n, const mcl_log_reader_options *o, uint64_t *corrupt,
         int64_t *first_t, int check)
{
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, n, o));
    const mcl_raw_msg *m;
    int count = 0;
    int64_t prev = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        if (count == 0 && first_t)
            *first_t = m->recv_realtime_ns;
        CU_ASSERT(m->recv_realtime_ns >= prev); // merged in time order
        prev = m->recv_realtime_ns;
        if (check) {
            int i = (int)m->seq;
            char topic[8];
            snprintf(topic, sizeof(topic), "t%d", i % 3);
            CU_ASSERT_STRING_EQUAL(m->topic, topic);
            CU_ASSERT_EQUAL(m->len, i == 7 ? sizeof(big) : (size_t)i);
            const uint8_t *p = m->payload;
            for (size_t k = 0; k < m->len; k += 997)
                if (p[k] != (uint8_t)i) {
                    CU_FAIL("payload");
                    break;
                }
        }
        count++;
    }
    if (corrupt)
        *corrupt = mcl_log_reader_corrupt(r, NULL);
    mcl_log_reader_close(r);
    return count;
}

static void
test_roundtrip_and_overwrite(void)
{
    const char *p = mclt_tmppath("a.mcllog");
    write_log(p, 50, NULL);
    const char *paths[] = {p};
    uint64_t corrupt = 1;
    CU_ASSERT_EQUAL(read_all(paths, 1, NULL, &corrupt, NULL, 1), 50);
    CU_ASSERT_EQUAL(corrupt, 0);
    mcl_log_writer *w;
    MCLT_ERR(mcl_log_writer_open(&w, p, NULL), MCL_EEXIST); // refuses to overwrite
    mcl_log_writer_options o = {.overwrite = true};
    write_log(p, 5, &o);
    CU_ASSERT_EQUAL(read_all(paths, 1, NULL, NULL, NULL, 1), 5);
    const char *none[] = {mclt_tmppath("nothing-here")};
    mcl_log_reader *r;
    MCLT_ERR(mcl_log_reader_open(&r, none, 1, NULL), MCL_ENOENT);
    int fd = open(mclt_tmppath("junk.mcllog"), O_WRONLY | O_CREAT, 0644);
    CU_ASSERT(write(fd, "\x01\x02garbage", 9) == 9);
    close(fd);
    const char *junk[] = {mclt_tmppath("junk.mcllog")};
    MCLT_ERR(mcl_log_reader_open(&r, junk, 1, NULL), MCL_EPROTO);
    unlink(junk[0]);
}

static void
test_split_rules(void)
{
    mcl_log_writer_options by_count = {.split_count = 10};
    write_log(mclt_tmppath("c"), 35, &by_count);
    mcl_log_writer_options by_bytes = {.split_bytes = 4096};
    write_log(mclt_tmppath("b"), 60, &by_bytes);
    mcl_log_writer_options by_time = {.split_seconds = 0.0095}; // 10 records of 1 ms per part
    write_log(mclt_tmppath("s"), 30, &by_time);
    struct stat st;
    CU_ASSERT_EQUAL(stat(mclt_tmppath("c_003.mcllog"), &st), 0);
    CU_ASSERT_NOT_EQUAL(stat(mclt_tmppath("c_004.mcllog"), &st), 0);
    CU_ASSERT_EQUAL(stat(mclt_tmppath("s_002.mcllog"), &st), 0);
    CU_ASSERT_NOT_EQUAL(stat(mclt_tmppath("s_003.mcllog"), &st), 0);
    // Every part but the one with the 1 MiB record keeps to 4 KiB.
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof(name), "b_%03d.mcllog", i);
        if (stat(mclt_tmppath("%s", name), &st) != 0)
            break;
        CU_ASSERT(st.st_size <= 4096 || st.st_size > (1 << 20));
    }
    const char *c[] = {mclt_tmppath("c")}, *b[] = {mclt_tmppath("b")}, *s[] = {mclt_tmppath("s")};
    CU_ASSERT_EQUAL(read_all(c, 1, NULL, NULL, NULL, 1), 35);
    CU_ASSERT_EQUAL(read_all(b, 1, NULL, NULL, NULL, 1), 60);
    CU_ASSERT_EQUAL(read_all(s, 1, NULL, NULL, NULL, 1), 30);
}

static size_t
file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

static void
copy_prefix(const char *from, const char *to, size_t n, long flip_at)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    CU_ASSERT_FATAL(in != NULL && out != NULL);
    for (size_t i = 0; i < n; i++) {
        int c = fgetc(in);
        if ((long)i == flip_at)
            c ^= 0x10;
        fputc(c, out);
    }
    fclose(in);
    fclose(out);
}

static void
test_torn_and_corrupt_files(void)
{
    // 20 small records (no 1 MiB one: n < 8 would include it; use records 8..)
    const char *p = mclt_tmppath("t.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, p, NULL));
    for (int i = 0; i < 20; i++) {
        memset(big, i, 40);
        mcl_raw_msg m = rec(1000 + i, (uint64_t)i, "torn", big, 40);
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
    size_t size = file_size(p);
    size_t recsz = 12 + 32 + 4 + 40;
    const char *tp[] = {mclt_tmppath("cut.mcllog")};
    // Cut at every byte offset of the last three records: every complete one is read.
    for (size_t cut = size - 3 * recsz; cut <= size; cut++) {
        copy_prefix(p, tp[0], cut, -1);
        uint64_t corrupt = 99;
        int n = read_all(tp, 1, NULL, &corrupt, NULL, 0);
        CU_ASSERT_EQUAL(n, (int)(20 - (size - cut + recsz - 1) / recsz));
        CU_ASSERT_EQUAL(corrupt, 0); // a torn tail is the end, not damage
    }
    // A flipped bit in any byte of any record loses that record only (or, for a damaged
    // length that lands inside the next record, that one too); the rest is read and the damage
    // is counted. Never a crash, never a silent stop.
    size_t hdr = size - 20 * recsz;
    for (size_t at = hdr; at < size; at++) {
        copy_prefix(p, tp[0], size, (long)at);
        uint64_t corrupt = 0;
        int n = read_all(tp, 1, NULL, &corrupt, NULL, 0);
        size_t which = (at - hdr) / recsz;
        // The last record's length pointing past the end looks exactly like a record still
        // being written: the reader stops there (it is not counted as damage).
        bool tail_len = which == 19 && (at - hdr) % recsz >= 4 && (at - hdr) % recsz < 8;
        if (tail_len) {
            CU_ASSERT_EQUAL(n, 19);
            continue;
        }
        if (!(n == 19 || (n == 18 && which < 19)) || corrupt < 1)
            fprintf(stderr, "\n  flip at record %zu byte %zu: %d read, %llu damaged ", which,
                    (at - hdr) % recsz, n, (unsigned long long)corrupt);
        CU_ASSERT(n == 19 || (n == 18 && which < 19));
        CU_ASSERT(corrupt >= 1);
    }
    unlink(tp[0]);
}

static void
test_filters_seek_merge(void)
{
    write_log(mclt_tmppath("m1.mcllog"), 40, NULL);
    // A second file whose records fall between the first's.
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("m2.mcllog"), NULL));
    for (int i = 0; i < 40; i++) {
        mcl_raw_msg m =
            rec(1000000000LL + (int64_t)i * 1000000 + 500000, 1000 + (uint64_t)i, "other", "x", 1);
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_close(w));
    const char *both[] = {mclt_tmppath("m1.mcllog"), mclt_tmppath("m2.mcllog")};
    CU_ASSERT_EQUAL(read_all(both, 2, NULL, NULL, NULL, 0), 80); // in time order (checked)
    const char *only[] = {"t1", "oth*"};
    mcl_log_reader_options o = {.topics = only, .ntopics = 2};
    CU_ASSERT_EQUAL(read_all(both, 2, &o, NULL, NULL, 0), 13 + 40);
    mcl_log_reader_options win = {.start_ns = 1000000000LL + 10000000,
                                  .end_ns = 1000000000LL + 19000000};
    int64_t first = 0;
    CU_ASSERT_EQUAL(read_all(both, 1, &win, NULL, &first, 1), 10);
    CU_ASSERT_EQUAL(first, 1000000000LL + 10000000);
    // Seek, then reset.
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, both, 2, NULL));
    MCLT_OK(mcl_log_reader_seek(r, 1000000000LL + 30000000));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_log_reader_next(r, &m));
    CU_ASSERT_EQUAL(m->seq, 30);
    MCLT_OK(mcl_log_reader_next(r, &m));
    CU_ASSERT_EQUAL(m->seq, 1030);
    MCLT_OK(mcl_log_reader_reset(r));
    MCLT_OK(mcl_log_reader_next(r, &m));
    CU_ASSERT_EQUAL(m->seq, 0);
    mcl_log_reader_close(r);
    // A directory: everything in it.
    const char *d[] = {mclt_tmpdir()};
    CU_ASSERT(read_all(d, 1, NULL, NULL, NULL, 0) >= 80);
}

static void
test_reading_while_written(void)
{
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("live.mcllog"), NULL));
    for (int i = 0; i < 10; i++) {
        mcl_raw_msg m = rec(i + 1, (uint64_t)i, "live", "abc", 3);
        MCLT_OK(mcl_log_writer_write(w, &m));
    }
    MCLT_OK(mcl_log_writer_flush(w, false));
    const char *p[] = {mclt_tmppath("live.mcllog")};
    CU_ASSERT_EQUAL(read_all(p, 1, NULL, NULL, NULL, 0), 10); // the writer is still open
    uint64_t recs, bytes;
    unsigned parts;
    mcl_log_writer_counts(w, &recs, &bytes, &parts);
    CU_ASSERT_EQUAL(recs, 10);
    CU_ASSERT_EQUAL(parts, 1);
    MCLT_OK(mcl_log_writer_close(w));
}

// Two records of ACFR's sample log UnitTestMessageA.log (Python MCL text format).
static const char mcl_text[] =
    "#-----------------------------------------------------------------\n"
    "# MCL_LOG\n"
    "#     -- version     1.0\n"
    "#     -- revision    ffff000000000000000000000000000000000000\n"
    "#     -- created     1970-01-01 00:00:00\n"
    "#\n"
    "#      >>> UnitTestMessageA\n"
    "#-----------------------------------------------------------------\n"
    "     0.01000    ''          "
    "83a974696d657374616d70cb3f847ae147ae147ba464617461cb3f847ae147ae147ba46e616d65b0556e6974546573"
    "744d65737361676541\n"
    "     0.02000    ''          "
    "83a974696d657374616d70cb3f947ae147ae147ba464617461cb3f947ae147ae147ba46e616d65b0556e6974546573"
    "744d65737361676541\n"
    "    not a data line at all\n"
    "     0.03000    'topic'     "
    "83a974696d657374616d70cb3f9eb851eb851eb8a464617461cb3f9eb851eb851eb8a46e616d65b0556e6974546573"
    "744d65737361676541\n";

static void
test_python_mcl_text_logs(void)
{
    FILE *f = fopen(mclt_tmppath("UnitTestMessageA.log"), "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(mcl_text, f);
    fclose(f);
    const char *p[] = {mclt_tmppath("UnitTestMessageA.log")};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, p, 1, NULL));
    const mcl_raw_msg *m;
    double want[] = {0.01, 0.02, 0.03};
    for (int i = 0; i < 3; i++) {
        MCLT_OK(mcl_log_reader_next(r, &m));
        CU_ASSERT_EQUAL(m->recv_realtime_ns, (int64_t)(want[i] * 1e9 + 0.5)); // created: epoch
        mcl_msg *msg;
        MCLT_OK(mcl_msg_decode(&msg, m->payload, m->len, NULL, NULL, 0));
        double d;
        MCLT_OK(mcl_msg_get_double(msg, "data", &d));
        CU_ASSERT_DOUBLE_EQUAL(d, want[i], 1e-12);
        CU_ASSERT_STRING_EQUAL(mcl_msg_name(msg), "UnitTestMessageA");
        mcl_msg_free(msg);
    }
    CU_ASSERT_STRING_EQUAL(m->topic, "topic");
    MCLT_ERR(mcl_log_reader_next(r, &m), MCL_ENOENT);
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, NULL), 1); // the bad line, counted
    mcl_log_reader_close(r);
}

// Writes len bytes of data to the file name (in the test directory); returns its path.
static const char *
put_file(const char *name, const void *data, size_t len)
{
    const char *path = mclt_tmppath("%s", name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

// Files that are not logs are refused (MCL_EPROTO), not read as Python MCL logs full of damaged
// lines: a README starting with '#', text starting with a digit, a CSV, binary junk; while
// Python MCL's own shapes (its header, a later part starting with a data line, a header still
// being written) open.
static void
test_not_a_log(void)
{
    static const char readme[] = "# mcl\n\nA C toolkit.\n\n## Tools\n\n    mcl-dump -f LOG\n";
    static const char digits[] = "0 1 2 3\nnot a log\n";
    static const char csv[] = "12.5,imu,0.1\n13.0,imu,0.2\n";
    static const char comment[] = "#-- not the header\n# MCL_LOG\n";
    static const char wrong_title[] =
        "#-----------------------------------------------------------------\n# README\n";
    uint8_t junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    junk[0] = '7'; // (junk that starts like a data line)
    struct {
        const char *name;
        const void *data;
        size_t len;
    } bad[] = {{"README.md", readme, sizeof(readme) - 1},  {"digits.txt", digits, sizeof(digits) - 1},
               {"data.csv", csv, sizeof(csv) - 1},          {"comment.log", comment, sizeof(comment) - 1},
               {"title.log", wrong_title, sizeof(wrong_title) - 1}, {"junk.bin", junk, sizeof(junk)},
               {"junk2.bin", junk + 1, sizeof(junk) - 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *p[] = {put_file(bad[i].name, bad[i].data, bad[i].len)};
        mcl_log_reader *r = NULL;
        mcl_err rv = mcl_log_reader_open(&r, p, 1, NULL);
        if (rv != MCL_EPROTO)
            fprintf(stderr, "  %s: %s, not MCL_EPROTO\n", bad[i].name, mcl_err_name(rv));
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        if (rv == MCL_OK)
            mcl_log_reader_close(r);
    }
    // Python MCL's shapes open: the sample header, a later part (a data line first), and
    // prefixes of a header being written (no records yet).
    const char *good[] = {mcl_text, mcl_text + strlen(mcl_text) - strlen(strstr(mcl_text, "     0.01")),
                          "#-------", "#-----------------------------------------------------------------\n# MC",
                          "     0.01000    'top"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *p[] = {put_file("good.log", good[i], strlen(good[i]))};
        mcl_log_reader *r = NULL;
        mcl_err rv = mcl_log_reader_open(&r, p, 1, NULL);
        if (rv != MCL_OK)
            fprintf(stderr, "  good[%zu]: %s\n", i, mcl_err_name(rv));
        CU_ASSERT_EQUAL(rv, MCL_OK);
        const mcl_raw_msg *m;
        if (rv == MCL_OK) {
            CU_ASSERT_EQUAL(mcl_log_reader_next(r, &m) == MCL_OK, i < 2);
            mcl_log_reader_close(r);
        }
    }
}

static void
test_review_regressions(void)
{
    // Seeking a text log keeps its first record.
    const char *tp[] = {mclt_tmppath("UnitTestMessageA.log")};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, tp, 1, NULL));
    MCLT_OK(mcl_log_reader_seek(r, 0));
    const mcl_raw_msg *m;
    MCLT_OK(mcl_log_reader_next(r, &m));
    CU_ASSERT_EQUAL(m->recv_realtime_ns, 10000000);
    mcl_log_reader_close(r);
    // Seeking to a time that ends one part and starts the next loses neither record.
    mcl_log_writer_options two = {.split_count = 2};
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("tie"), &two));
    int64_t times[] = {1, 2, 2, 3};
    for (int i = 0; i < 4; i++) {
        mcl_raw_msg x = rec(times[i], (uint64_t)i, "t", "x", 1);
        MCLT_OK(mcl_log_writer_write(w, &x));
    }
    MCLT_OK(mcl_log_writer_close(w));
    const char *tie[] = {mclt_tmppath("tie")};
    MCLT_OK(mcl_log_reader_open(&r, tie, 1, NULL));
    MCLT_OK(mcl_log_reader_seek(r, 2));
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        n++;
    CU_ASSERT_EQUAL(n, 3);
    mcl_log_reader_close(r);
    // Stale parts of a longer earlier recording: refused, or removed with overwrite.
    MCLT_ERR(mcl_log_writer_open(&w, mclt_tmppath("tie"), &two), MCL_EEXIST);
    two.overwrite = true;
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("tie"), &two));
    mcl_raw_msg x = rec(5, 0, "t", "x", 1);
    MCLT_OK(mcl_log_writer_write(w, &x));
    MCLT_OK(mcl_log_writer_close(w));
    CU_ASSERT_EQUAL(read_all(tie, 1, NULL, NULL, NULL, 0), 1);
    // A full disk is an error, not a silent success.
    if (access("/dev/full", W_OK) == 0) {
        mcl_log_writer_options ow = {.overwrite = true};
        mcl_err rv = mcl_log_writer_open(&w, "/dev/full", &ow);
        if (rv == MCL_OK) {
            mcl_err wr = MCL_OK;
            static uint8_t pay[4096];
            for (int i = 0; i < 1000 && wr == MCL_OK; i++) {
                mcl_raw_msg y = rec(i, (uint64_t)i, "t", pay, sizeof(pay));
                wr = mcl_log_writer_write(w, &y);
            }
            mcl_err cr = mcl_log_writer_close(w);
            CU_ASSERT(wr != MCL_OK || cr != MCL_OK);
        } else {
            CU_ASSERT(rv != MCL_OK);
        }
    }
    // A records past --end do not end reading: a later record in range is still found.
    MCLT_OK(mcl_log_writer_open(&w, mclt_tmppath("ooo.mcllog"), NULL));
    int64_t ooo[] = {10, 30, 20, 40};
    for (int i = 0; i < 4; i++) {
        mcl_raw_msg y = rec(ooo[i], (uint64_t)i, "t", "x", 1);
        MCLT_OK(mcl_log_writer_write(w, &y));
    }
    MCLT_OK(mcl_log_writer_close(w));
    const char *op[] = {mclt_tmppath("ooo.mcllog")};
    mcl_log_reader_options win = {.end_ns = 25};
    CU_ASSERT_EQUAL(read_all(op, 1, &win, NULL, NULL, 0), 2);
    // A directory with odd entries: a subdirectory named *.log, a FIFO, a 4-digit part.
    char sub[400];
    snprintf(sub, sizeof(sub), "%s/odd", mclt_tmpdir());
    mkdir(sub, 0755);
    char path[500];
    snprintf(path, sizeof(path), "%s/dir.log", sub);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/fifo.log", sub);
    mkfifo(path, 0644);
    snprintf(path, sizeof(path), "%s/ok.mcllog", sub);
    MCLT_OK(mcl_log_writer_open(&w, path, NULL));
    MCLT_OK(mcl_log_writer_write(w, &x));
    MCLT_OK(mcl_log_writer_close(w));
    const char *dp[] = {sub};
    CU_ASSERT_EQUAL(read_all(dp, 1, NULL, NULL, NULL, 0), 1);
}

// Fake records that overlap, each claiming to run exactly to the end of the file with lengths
// that add up: checking each one's CRC would cost the rest of the file each time, quadratic in
// the file (1.3 MB took a minute once). Each CRC comes from prefix CRCs now (every byte is
// checksummed at most twice), so this 4 MiB file reads at once; its one genuine record is read
// and every fake one is counted as damage, with exactly its bytes.
static void
test_crafted_overlapping_records(void)
{
    const char *p = mclt_tmppath("crafted.mcllog");
    mcl_log_writer *w;
    MCLT_OK(mcl_log_writer_open(&w, p, NULL));
    mcl_raw_msg m = rec(1000, 1, "real", "hello", 5);
    MCLT_OK(mcl_log_writer_write(w, &m));
    MCLT_OK(mcl_log_writer_close(w));
    size_t base = file_size(p);
    enum { BLOCK = 48, NFAKE = (4 << 20) / BLOCK };
    size_t total = base + (size_t)NFAKE * BLOCK;
    uint8_t *fake = calloc(NFAKE, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fake);
    for (size_t i = 0; i < NFAKE; i++) {
        uint8_t *q = fake + i * BLOCK;
        uint32_t body = (uint32_t)(total - (base + i * BLOCK) - 12);
        memcpy(q, "MREC", 4);
        q[4] = (uint8_t)(body >> 24), q[5] = (uint8_t)(body >> 16), q[6] = (uint8_t)(body >> 8),
        q[7] = (uint8_t)body;    // CRC (bytes 8..11) left 0: wrong, but only a CRC can tell
        uint32_t pl = body - 32; // topic length 0 (bytes 36..37), payload length: the rest
        q[40] = (uint8_t)(pl >> 24), q[41] = (uint8_t)(pl >> 16), q[42] = (uint8_t)(pl >> 8),
        q[43] = (uint8_t)pl;
    }
    FILE *f = fopen(p, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(fake, BLOCK, NFAKE, f), (size_t)NFAKE);
    fclose(f);
    free(fake);
    const char *paths[] = {p};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *got;
    int n = 0;
    double t0 = now_s();
    while (mcl_log_reader_next(r, &got) == MCL_OK)
        n++;
    CU_ASSERT(now_s() - t0 < 10.0); // (about 0.5 s under ASan; quadratic would be hours)
    CU_ASSERT_EQUAL(n, 1);
    uint64_t bytes;
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, &bytes), NFAKE); // every fake, and no more
    CU_ASSERT_EQUAL(bytes, (uint64_t)NFAKE * BLOCK);
    CU_ASSERT_EQUAL(mcl_log_reader_tail(r), 0);
    mcl_log_reader_close(r);
    unlink(p);
}


static void
put_be32(uint8_t *q, uint32_t v)
{
    q[0] = (uint8_t)(v >> 24), q[1] = (uint8_t)(v >> 16), q[2] = (uint8_t)(v >> 8), q[3] = (uint8_t)v;
}

// Writes a log holding the genuine records "real" (time 1000 + i) of `nreal`, then appends `n`
// blocks of BLOCK bytes made by make(i, block, offset of the block, size of the whole file),
// then (with `tail`) one more genuine record written to a second log and copied. Returns the
// file's size; *hdr is where the first block starts.
enum { BLOCK = 48 };
static size_t
craft(const char *p, size_t n, void (*make)(size_t, uint8_t *, size_t, size_t), bool tail,
      size_t *blocks_at)
{
    mcl_log_writer *w;
    mcl_log_writer_options o = {.overwrite = true};
    MCLT_OK(mcl_log_writer_open(&w, p, &o));
    mcl_raw_msg m = rec(1000, 1, "real", "hello", 5);
    MCLT_OK(mcl_log_writer_write(w, &m));
    MCLT_OK(mcl_log_writer_close(w));
    size_t base = file_size(p);
    uint8_t last[128];
    size_t last_len = 0;
    if (tail) { // a genuine record: 12 + 32 + 4 + 5 bytes, the same as the first one
        FILE *in = fopen(p, "rb");
        CU_ASSERT_FATAL(in != NULL);
        last_len = 12 + 32 + 4 + 5;
        CU_ASSERT_FATAL(fseek(in, (long)(base - last_len), SEEK_SET) == 0);
        CU_ASSERT_FATAL(fread(last, 1, last_len, in) == last_len);
        fclose(in);
    }
    size_t total = base + n * BLOCK + last_len;
    uint8_t *fake = calloc(n ? n : 1, BLOCK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fake);
    for (size_t i = n; i-- > 0;) // from the end: a block may checksum those after it
        make(i, fake + i * BLOCK, base + i * BLOCK, total);
    FILE *f = fopen(p, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(fake, BLOCK, n, f), n);
    if (tail)
        CU_ASSERT_EQUAL(fwrite(last, 1, last_len, f), last_len);
    fclose(f);
    free(fake);
    *blocks_at = base;
    return total;
}

// A marker whose length runs past the end of the file.
static void
make_past_end(size_t i, uint8_t *q, size_t at, size_t total)
{
    (void)i, (void)at, (void)total;
    memcpy(q, "MREC", 4);
    put_be32(q + 4, 0x7fffffff);
}

static bool
count_stop(void *arg)
{
    ++*(unsigned long *)arg;
    return true;
}

// Reads p: records, damage (records, bytes), tail; and how long it took.
static int
read_counts(const char *p, uint64_t *bad, uint64_t *bad_bytes, uint64_t *tail, double *secs)
{
    const char *paths[] = {p};
    mcl_log_reader *r;
    double t0 = now_s();
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        n++;
    *bad = mcl_log_reader_corrupt(r, bad_bytes);
    *tail = mcl_log_reader_tail(r);
    *secs = now_s() - t0;
    mcl_log_reader_close(r);
    return n;
}

// Markers with lengths past the end of the file before a genuine record: each asked whether a
// valid record follows, which scanned the rest of the file every time (2 MB took minutes under
// ASan). Read in linear time now, and the damage counted exactly: every fake marker is one
// damaged record, its 48 bytes skipped. Without the genuine record at the end, the first fake
// marker is the end for now (a record being written): no damage, and the tail says how much.
static void
test_crafted_markers_past_the_end(void)
{
    const char *p = mclt_tmppath("pastend.mcllog");
    enum { NFAKE = (2 << 20) / BLOCK };
    size_t at, total = craft(p, NFAKE, make_past_end, true, &at);
    uint64_t bad, bytes, tail;
    double secs;
    CU_ASSERT_EQUAL(read_counts(p, &bad, &bytes, &tail, &secs), 2);
    CU_ASSERT_EQUAL(bad, NFAKE);
    CU_ASSERT_EQUAL(bytes, (uint64_t)NFAKE * BLOCK);
    CU_ASSERT_EQUAL(tail, 0);
    CU_ASSERT(secs < 2.0);
    if (secs >= 2.0)
        fprintf(stderr, "\n  2 MB of markers past the end read in %.1f s ", secs);
    // A stop function asked on the way (every MiB): each "stop" returns MCL_EINTR at once, and
    // calling again goes on, to the same records and counts.
    const char *paths[] = {p};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    unsigned long asked = 0;
    MCLT_OK(mcl_log_reader_set_stop(r, count_stop, &asked));
    const mcl_raw_msg *m;
    int n = 0, stops = 0;
    for (mcl_err rv; (rv = mcl_log_reader_next(r, &m)) != MCL_ENOENT && stops < 100;)
        if (rv == MCL_EINTR)
            stops++;
        else if (rv == MCL_OK)
            n++;
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT(stops >= 1 && (unsigned long)stops == asked);
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, &bytes), NFAKE);
    CU_ASSERT_EQUAL(bytes, (uint64_t)NFAKE * BLOCK);
    mcl_log_reader_close(r);
    total = craft(p, NFAKE, make_past_end, false, &at);
    CU_ASSERT_EQUAL(read_counts(p, &bad, &bytes, &tail, &secs), 1);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(bytes, 0);
    CU_ASSERT_EQUAL(tail, total - at);
    CU_ASSERT(secs < 2.0);
    unlink(p);
}

// Overlapping fake records with lengths that add up, each running to the end, and each with
// its right CRC but a NUL in its topic (so the CRC passes and the record is still refused):
// checking every topic, too, must not rescan the file. Exact damage again.
static void
make_nul_topic(size_t i, uint8_t *q, size_t at, size_t total)
{
    (void)i;
    uint32_t body = (uint32_t)(total - at - 12);
    memset(q, 'x', BLOCK);
    memcpy(q, "MREC", 4);
    put_be32(q + 4, body);
    q[36] = 0, q[37] = 8;    // an 8-byte topic (bytes 44..51) ...
    q[47] = 0;               // ... that holds a NUL
    put_be32(q + 40, body - 40); // the payload: the rest of the file
    // (its CRC, bytes 8..11, is set once the whole file is made)
}

static void
test_crafted_damage_counts(void)
{
    // A split series whose first part ends in garbage after its last record: a finished part,
    // so the garbage is damage (it was not counted at all: the reader went on to the next
    // part). The second part's torn end is the tail.
    mcl_log_writer_options two = {.split_count = 3, .overwrite = true};
    write_log(mclt_tmppath("dmg"), 6, &two);
    FILE *f = fopen(mclt_tmppath("dmg_000.mcllog"), "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint8_t junk[100];
    memset(junk, 0x55, sizeof(junk));
    memcpy(junk + 10, "MREC\x7f\xff\xff\xff", 8); // a record past the end
    CU_ASSERT_EQUAL(fwrite(junk, 1, sizeof(junk), f), sizeof(junk));
    fclose(f);
    f = fopen(mclt_tmppath("dmg_001.mcllog"), "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite("MREC\0\0\1\0", 1, 8, f), 8); // the start of a record being written
    fclose(f);
    const char *paths[] = {mclt_tmppath("dmg")};
    mcl_log_reader *r;
    MCLT_OK(mcl_log_reader_open(&r, paths, 1, NULL));
    const mcl_raw_msg *m;
    int n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK)
        n++;
    CU_ASSERT_EQUAL(n, 6);
    uint64_t bytes;
    CU_ASSERT_EQUAL(mcl_log_reader_corrupt(r, &bytes), 2); // junk before the marker, then it
    CU_ASSERT_EQUAL(bytes, sizeof(junk));
    CU_ASSERT_EQUAL(mcl_log_reader_tail(r), 8);
    mcl_log_reader_close(r);

    // Fakes whose CRCs check but whose topics hold a NUL, each running to the end.
    const char *p = mclt_tmppath("nul.mcllog");
    enum { NFAKE = 2000 };
    size_t at, total = craft(p, NFAKE, make_nul_topic, true, &at);
    // Now give each fake its right CRC, from the last one back (each covers those after it).
    uint8_t *all = malloc(total);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    f = fopen(p, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fread(all, 1, total, f), total);
    for (size_t i = NFAKE; i-- > 0;) {
        uint8_t *q = all + at + i * BLOCK;
        put_be32(q + 8, mcl__crc32c(q + 12, total - (at + i * BLOCK) - 12));
    }
    rewind(f);
    CU_ASSERT_EQUAL(fwrite(all, 1, total, f), total);
    fclose(f);
    free(all);
    uint64_t bad, bad_bytes, tail;
    double secs;
    CU_ASSERT_EQUAL(read_counts(p, &bad, &bad_bytes, &tail, &secs), 2);
    CU_ASSERT_EQUAL(bad, NFAKE);
    CU_ASSERT_EQUAL(bad_bytes, (uint64_t)NFAKE * BLOCK);
    CU_ASSERT_EQUAL(tail, 0);
    unlink(p);
}

// RFC 3720's CRC32C test vectors, and random buffers of many lengths (up to 1 MiB: the
// interleaved loop) at every alignment, give the same CRC with the crc32 instruction, the
// portable slicing-by-8 table and a byte at a time.
static void
test_crc32c_all_paths(void)
{
    int best = mcl__crc32c_impl(-1);
    static uint8_t buf[(1 << 20) + 8];
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (int impl = 0; impl <= 2; impl++) {
        CU_ASSERT_EQUAL(mcl__crc32c_impl(impl), impl == 2 ? best : impl);
        uint8_t v[32];
        memset(v, 0, sizeof(v));
        CU_ASSERT_EQUAL(mcl__crc32c(v, 32), 0x8A9136AAu);
        memset(v, 0xff, sizeof(v));
        CU_ASSERT_EQUAL(mcl__crc32c(v, 32), 0x62A8AB43u);
        for (int i = 0; i < 32; i++)
            v[i] = (uint8_t)i;
        CU_ASSERT_EQUAL(mcl__crc32c(v, 32), 0x46DD794Eu);
        for (int i = 0; i < 32; i++)
            v[i] = (uint8_t)(31 - i);
        CU_ASSERT_EQUAL(mcl__crc32c(v, 32), 0x113FDB5Cu);
        CU_ASSERT_EQUAL(mcl__crc32c("123456789", 9), 0xE3069283u);
        CU_ASSERT_EQUAL(mcl__crc32c("", 0), 0);
    }
    if (best != 2)
        fprintf(stderr, "\n  (no SSE4.2 here: the instruction's path was not tested) ");
    size_t lens[] = {1, 7, 8, 9, 63, 255, 4095, 4096 * 3 - 1, 4096 * 3, 4096 * 3 + 1,
                     4096 * 7 + 5, 65536, sizeof(buf) - 8};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        for (size_t a = 0; a < 8; a++) {
            uint32_t c[3];
            for (int impl = 0; impl <= 2; impl++) {
                mcl__crc32c_impl(impl);
                c[impl] = mcl__crc32c(buf + a, lens[k]);
            }
            CU_ASSERT(c[0] == c[1] && c[1] == c[2]);
        }
    // A log written with one reads with the others.
    mcl__crc32c_impl(0);
    write_log(mclt_tmppath("crcpaths.mcllog"), 20, NULL);
    for (int impl = 1; impl <= 2; impl++) {
        mcl__crc32c_impl(impl);
        const char *paths[] = {mclt_tmppath("crcpaths.mcllog")};
        uint64_t corrupt = 1;
        CU_ASSERT_EQUAL(read_all(paths, 1, NULL, &corrupt, NULL, 1), 20);
        CU_ASSERT_EQUAL(corrupt, 0);
    }
    mcl__crc32c_impl(2);
    unlink(mclt_tmppath("crcpaths.mcllog"));
}

static CU_TestInfo tests[] = {{"roundtrip_and_overwrite", test_roundtrip_and_overwrite},
                              {"split_rules", test_split_rules},
                              {"torn_and_corrupt_files", test_torn_and_corrupt_files},
                              {"crafted_overlapping_records", test_crafted_overlapping_records},
                              {"crafted_markers_past_the_end", test_crafted_markers_past_the_end},
                              {"crafted_damage_counts", test_crafted_damage_counts},
                              {"crc32c_all_paths", test_crc32c_all_paths},
                              {"filters_seek_merge", test_filters_seek_merge},
                              {"reading_while_written", test_reading_while_written},
                              {"python_mcl_text_logs", test_python_mcl_text_logs},
                              {"not_a_log", test_not_a_log},
                              {"review_regressions", test_review_regressions},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("log_file", NULL, NULL, tests);
