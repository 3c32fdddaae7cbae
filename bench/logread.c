// SPDX-License-Identifier: BSD-3-Clause
// Log reading rate (lib/log/logfile.c): writes a log of about MB megabytes (default 1024) of
// RECORD-byte payloads (default 4096) into /tmp, reads it through mcl_log_reader with each
// CRC32C: a byte at a time (bytewise: the table of mcl 0.2, the rate before), the portable
// slicing-by-8 table (slice8) and the SSE4.2 crc32 instruction (sse42, when the CPU has it);
// deletes it. Also the bare CRC32C rate of each over a 64 MiB buffer. One line per case:
//   BENCH case=logread impl=bytewise|slice8|sse42 mb=.. records=.. mb_per_s=..
//   BENCH case=crc32c impl=bytewise|slice8|sse42 mb_per_s=..
//   mcl-bench-logread [-m MB] [-s RECORD] [-o PATH]
// -T: typed records instead, an IMU message as msgpack (name, timestamp and 8 numeric fields,
// about 130 bytes), read once with the fastest CRC, and the log kept at PATH for the Python
// reader's row of the same file (bench/python/pylog.py); -R: only read an existing PATH.
//   BENCH case=logread-typed impl=c mb=.. records=.. records_per_s=..
// Linked with mcl_testing: the switch between the two CRCs is internal.
#define _GNU_SOURCE
#include <mcl/logfile.h>
#include <mcl/value.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint32_t mcl__crc32c(const void *data, size_t n);
int mcl__crc32c_impl(int impl);

static const char *const impls[] = {"bytewise", "slice8", "sse42"};

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "mcl-bench-logread: %s\n", what);
    exit(1);
}

// Reads the whole log; returns the seconds it took and the records in *n.
static double
read_log(const char *path, unsigned long long *n)
{
    const char *paths[] = {path};
    mcl_log_reader *r;
    double t0 = now_s();
    if (mcl_log_reader_open(&r, paths, 1, NULL) != MCL_OK)
        die("cannot open the log");
    const mcl_raw_msg *m;
    volatile uint8_t sink = 0;
    *n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        if (m->len > 0)
            sink ^= ((const uint8_t *)m->payload)[m->len - 1];
        ++*n;
    }
    if (mcl_log_reader_corrupt(r, NULL) != 0)
        die("the log reads as damaged");
    mcl_log_reader_close(r);
    (void)sink;
    return now_s() - t0;
}

// One IMU-like message as msgpack: what mcl-sim's imu topic carries, with numbers that vary.
static void *
imu_payload(uint64_t i, size_t *len)
{
    mcl_value *v;
    if (mcl_value_new(&v, MCL_TYPE_MAP) != MCL_OK)
        die("out of memory");
    double t = 1.7e9 + (double)i / 100.0;
    static const char *const keys[] = {"ax", "ay", "az", "gx", "gy", "gz", "temp"};
    bool ok = mcl_value_put_str(v, "name", "ImuMessage") == MCL_OK &&
              mcl_value_put_double(v, "timestamp", t) == MCL_OK &&
              mcl_value_put_int(v, "seq", (int64_t)i) == MCL_OK;
    for (size_t k = 0; ok && k < sizeof keys / sizeof keys[0]; k++)
        ok = mcl_value_put_double(v, keys[k], (double)((i * 7919 + k * 104729) % 20011) / 997.0 - 10.0) == MCL_OK;
    void *buf = NULL;
    if (!ok || mcl_value_encode(v, &buf, len) != MCL_OK)
        die("cannot encode");
    mcl_value_free(v);
    return buf;
}

static int
typed_log(const char *path, uint64_t want, bool read_only)
{
    uint64_t bytes = 0;
    if (!read_only) {
        mcl_log_writer *w;
        mcl_log_writer_options o = {.overwrite = true};
        if (mcl_log_writer_open(&w, path, &o) != MCL_OK)
            die("cannot create the log");
        for (uint64_t seq = 0; bytes < want; seq++) {
            size_t len;
            void *p = imu_payload(seq, &len);
            mcl_raw_msg m = {.topic = "imu", .topic_len = 3, .payload = p, .len = len,
                             .publisher = 1, .seq = seq,
                             .recv_realtime_ns = 1700000000000000000LL + (int64_t)seq * 10000000};
            if (mcl_log_writer_write(w, &m) != MCL_OK)
                die("cannot write the log (disk full?)");
            mcl_free(p);
            if (seq % 1024 == 0)
                mcl_log_writer_counts(w, NULL, &bytes, NULL);
        }
        if (mcl_log_writer_close(w) != MCL_OK)
            die("cannot write the log");
    }
    unsigned long long n;
    read_log(path, &n); // warms the page cache
    double best = 0;
    for (int k = 0; k < 3; k++) {
        double s = read_log(path, &n);
        best = k == 0 || s < best ? s : best;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0)
        die("cannot stat the log");
    bytes = (uint64_t)ftell(f);
    fclose(f);
    printf("BENCH case=logread-typed impl=c mb=%.0f records=%llu records_per_s=%.0f\n",
           (double)bytes / 1e6, n, (double)n / best);
    return 0;
}

int
main(int argc, char **argv)
{
    long mb = 1024, rec = 4096;
    bool typed = false, read_only = false;
    char path[256];
    snprintf(path, sizeof(path), "/tmp/mcl-bench-logread-%d.mcllog", (int)getpid());
    for (int c; (c = getopt(argc, argv, "m:s:o:TR")) != -1;) {
        if (c == 'T')
            typed = true;
        else if (c == 'R')
            typed = read_only = true;
        else if (c == 'm')
            mb = atol(optarg);
        else if (c == 's')
            rec = atol(optarg);
        else if (c == 'o')
            snprintf(path, sizeof(path), "%s", optarg);
        else
            die("usage: mcl-bench-logread [-m MB] [-s RECORD] [-o PATH] [-T | -R]");
    }
    if (mb <= 0 || rec <= 0 || rec > (64 << 20))
        die("bad -m or -s");
    if (typed)
        return typed_log(path, (uint64_t)mb << 20, read_only);
    int best = mcl__crc32c_impl(2);

    // The bare CRC.
    size_t blen = (size_t)64 << 20;
    uint8_t *buf = malloc(blen);
    if (buf == NULL)
        die("out of memory");
    for (size_t i = 0; i < blen; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    for (int use = 0; use <= best; use++) {
        mcl__crc32c_impl(use);
        volatile uint32_t c = 0;
        double t0 = now_s();
        for (int k = 0; k < 2; k++)
            c ^= mcl__crc32c(buf, blen);
        double s = now_s() - t0;
        (void)c;
        printf("BENCH case=crc32c impl=%s mb_per_s=%.0f\n", impls[use],
               2.0 * (double)blen / 1e6 / s);
    }

    // The log.
    mcl_log_writer *w;
    mcl_log_writer_options o = {.overwrite = true};
    if (mcl_log_writer_open(&w, path, &o) != MCL_OK)
        die("cannot create the log");
    uint64_t want = (uint64_t)mb << 20, bytes = 0, seq = 0;
    while (bytes < want) {
        buf[0] = (uint8_t)seq;
        mcl_raw_msg m = {.topic = "bench/logread", .topic_len = 13, .payload = buf,
                         .len = (size_t)rec, .publisher = 1, .seq = seq,
                         .recv_realtime_ns = 1000000000LL + (int64_t)seq * 1000};
        if (mcl_log_writer_write(w, &m) != MCL_OK)
            die("cannot write the log (disk full?)");
        seq++;
        mcl_log_writer_counts(w, NULL, &bytes, NULL);
    }
    if (mcl_log_writer_close(w) != MCL_OK)
        die("cannot write the log");
    free(buf);
    unsigned long long n;
    read_log(path, &n); // warms the page cache
    for (int use = 0; use <= best; use++) {
        mcl__crc32c_impl(use);
        double s = read_log(path, &n);
        printf("BENCH case=logread impl=%s mb=%.0f records=%llu mb_per_s=%.0f\n", impls[use],
               (double)bytes / 1e6, n, (double)bytes / 1e6 / s);
    }
    if (best < 2)
        printf("BENCH case=logread impl=sse42 skipped=no-sse4.2\n");
    unlink(path);
    return 0;
}
