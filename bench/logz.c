// SPDX-License-Identifier: BSD-3-Clause
// Compressed recordings (lib/log/logfile.c blocks, lib/core/zcodec.c): one line per case.
//
// 1. The codecs on sensor-like payloads: a camera-like u8 frame (640x480 mono8: a smooth scene
//    with +-3 levels of sensor noise) and a lidar-like float32 scan (15360 ranges of a square
//    arena with 2 cm of noise), each compressed and decompressed many times:
//      BENCH case=zcodec data=camera|lidar impl=zstd1|zstd3|lz4 ratio=.. comp_mb_per_s=..
//            decomp_mb_per_s=..
// 2. Logs of mcl-sim's default traffic (per simulated second: imu 100 x ~150 B, gnss 10 x
//    ~110 B, wheels 50 x ~70 B msgpack; camera 5 x 131072 B; lidar 10 x 61440 B), written
//    plain, with zstd (level 3) and with lz4, SECONDS simulated seconds (default 60): bytes on
//    disk, write rate (records handed to the writer until close with fsync), read rate with the
//    file in the page cache (best of 5) and after its pages were dropped (posix_fadvise: from
//    the disk). Two payload mixes: mix=sim, the camera and lidar payloads as mcl-sim makes them
//    (cmd/mcl-sim.c: a camera frame that is a moving gradient, very compressible; a lidar scan
//    of float32 ranges with 2 cm of noise, as in (1)), and mix=noisy, the sensor-like frame of
//    (1) for the camera too (what a real camera gives, roughly).
//      BENCH case=logz mix=sim|noisy impl=plain|zstd|lz4 records=.. mb=.. disk_mb=..
//            disk_ratio=.. write_mb_per_s=.. read_mb_per_s=.. cold_read_mb_per_s=..
//    MB are of the records (12 + L bytes each, as a plain log holds them).
//   mcl-bench-logz [-t SECONDS] [-d DIR]
// Linked with mcl_testing (the codec layer is internal).
#define _GNU_SOURCE
#include <mcl/logfile.h>
#include <mcl/value.h>

#include "core/zcodec.h"

#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    fprintf(stderr, "mcl-bench-logz: %s\n", what);
    exit(1);
}

static uint64_t rng = 88172645463325252ULL;
static uint32_t
rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

enum { CAM_W = 640, CAM_H = 480, CAM_BYTES = 131072, LIDAR_BYTES = 61440 };

// A camera-like frame: a smooth scene (sky, horizon, road texture) moving with k, plus noise.
static void
camera_frame(uint8_t *d, size_t n, uint64_t k)
{
    for (size_t i = 0; i < n; i++) {
        size_t x = i % CAM_W, y = i / CAM_W;
        double v = y < 200
                       ? 180 + 20 * sin((double)(x + k * 4) / 90.0)
                       : 60 + 40 * sin((double)(x * y + k * 7) / 5000.0) + (double)(y - 200) / 4;
        int p = (int)v + (int)(rnd() % 7) - 3;
        d[i] = (uint8_t)(p < 0 ? 0 : p > 255 ? 255 : p);
    }
}

// A lidar-like scan: ranges to the walls of a 60 m square arena, 2 cm of noise, float32 LE.
static void
lidar_scan(uint8_t *d, size_t n, uint64_t k)
{
    size_t m = n / 4;
    for (size_t i = 0; i < m; i++) {
        double a = 2 * M_PI * (double)i / (double)m + (double)k * 0.01;
        double r = 30.0 / fmax(fabs(cos(a)), fabs(sin(a))) + ((double)(rnd() % 2001) - 1000) * 2e-5;
        float f = (float)r;
        memcpy(d + 4 * i, &f, 4);
    }
}

// mcl-sim's camera frame (cmd/mcl-sim.c): a moving gradient, 640 wide.
static void
sim_gradient(uint8_t *d, size_t n, uint64_t k)
{
    for (size_t i = 0; i < n; i++)
        d[i] = (uint8_t)((i % 640) + (i / 640) + k * 3);
}

static void
codec_case(const char *data, const uint8_t *src, size_t n)
{
    struct {
        const char *name;
        int codec, level;
    } cs[] = {{"zstd1", MCL__Z_ZSTD, 1},
              {"zstd3", MCL__Z_ZSTD, 3},
              {"lz4", MCL__Z_LZ4, 1},
              {"lz4hc", MCL__Z_LZ4HC, 9}};
    mcl__zctx *z = mcl__zctx_new();
    size_t cap = mcl__z_bound(MCL__Z_ZSTD, n) + mcl__z_bound(MCL__Z_LZ4, n);
    uint8_t *dst = malloc(cap), *back = malloc(n);
    if (z == NULL || dst == NULL || back == NULL)
        die("out of memory");
    for (size_t k = 0; k < sizeof(cs) / sizeof(cs[0]); k++) {
        if (!mcl__z_built(cs[k].codec))
            continue;
        size_t c = 0;
        int reps = 0;
        double t0 = now_s(), tc;
        do {
            c = mcl__z_compress(z, cs[k].codec, cs[k].level, src, n, dst, cap);
            reps++;
        } while ((tc = now_s() - t0) < 0.5);
        if (c == 0)
            die("compression failed");
        int dreps = 0;
        double td;
        t0 = now_s();
        do {
            if (mcl__z_decompress(z, mcl__z_stored(cs[k].codec), dst, c, back, n) != MCL_OK)
                die("decompression failed");
            dreps++;
        } while ((td = now_s() - t0) < 0.5);
        if (memcmp(src, back, n) != 0)
            die("round trip differs");
        printf("BENCH case=zcodec data=%s bytes=%zu impl=%s ratio=%.2f comp_mb_per_s=%.0f "
               "decomp_mb_per_s=%.0f\n",
               data, n, cs[k].name, (double)n / (double)c, (double)n * reps / tc / 1e6,
               (double)n * dreps / td / 1e6);
    }
    free(dst);
    free(back);
    mcl__zctx_free(z);
}

// A small msgpack map as mcl-sim's imu/gnss/wheels carry: name, timestamp, nf numeric fields.
static void *
small_payload(const char *name, int nf, uint64_t i, size_t *len)
{
    mcl_value *v;
    if (mcl_value_new(&v, MCL_TYPE_MAP) != MCL_OK)
        die("out of memory");
    static const char *const keys[] = {"ax", "ay", "az", "gx", "gy", "gz", "temp", "lat", "lon"};
    bool ok = mcl_value_put_str(v, "name", name) == MCL_OK &&
              mcl_value_put_double(v, "timestamp", 1.7e9 + (double)i / 100.0) == MCL_OK;
    for (int k = 0; ok && k < nf; k++)
        ok = mcl_value_put_double(
                 v, keys[k], sin((double)i / 50.0 + k) * 9.81 + (double)(rnd() % 1000) * 1e-4) ==
             MCL_OK;
    void *buf = NULL;
    if (!ok || mcl_value_encode(v, &buf, len) != MCL_OK)
        die("cannot encode");
    mcl_value_free(v);
    return buf;
}

static uint64_t
file_bytes(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

// Reads the whole log; the seconds it took.
static double
read_log(const char *path, uint64_t want)
{
    const char *paths[] = {path};
    mcl_log_reader *r;
    double t0 = now_s();
    if (mcl_log_reader_open(&r, paths, 1, NULL) != MCL_OK)
        die("cannot open the log");
    const mcl_raw_msg *m;
    volatile uint8_t sink = 0;
    uint64_t n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        if (m->len > 0)
            sink ^= ((const uint8_t *)m->payload)[m->len - 1];
        n++;
    }
    if (mcl_log_reader_corrupt(r, NULL) != 0 || n != want)
        die("the log does not read back whole");
    mcl_log_reader_close(r);
    (void)sink;
    return now_s() - t0;
}

static void
drop_pages(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fdatasync(fd);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

static void
log_case(const char *dir, bool noisy, int seconds)
{
    struct {
        const char *name;
        mcl_log_compress z;
    } cs[] = {{"plain", MCL_LOG_COMPRESS_NONE},
              {"zstd", MCL_LOG_COMPRESS_ZSTD},
              {"lz4", MCL_LOG_COMPRESS_LZ4},
              {"lz4hc", MCL_LOG_COMPRESS_LZ4HC}};
    // The traffic, made once (so that every log gets the same records): per 10 ms tick, imu;
    // every 20 ms wheels; 100 ms gnss and lidar; 200 ms camera.
    typedef struct {
        const char *topic;
        uint8_t *p;
        size_t len;
        int64_t t;
    } rec;
    size_t nrec = (size_t)seconds * 175, k = 0;
    rec *rs = calloc(nrec, sizeof(*rs));
    if (rs == NULL)
        die("out of memory");
    uint64_t raw = 0;
    for (int tick = 0; tick < seconds * 100; tick++) {
        int64_t t = 1700000000000000000LL + (int64_t)tick * 10000000;
        uint64_t kk = (uint64_t)tick;
        size_t len;
        uint8_t *sp = small_payload("ImuMessage", 7, kk, &len);
        rs[k++] = (rec){"imu", sp, len, t + 1000};
        if (tick % 2 == 0) {
            sp = small_payload("WheelMessage", 4, kk, &len);
            rs[k++] = (rec){"wheels", sp, len, t + 2000};
        }
        if (tick % 10 == 0) {
            sp = small_payload("GnssMessage", 9, kk, &len);
            rs[k++] = (rec){"gnss", sp, len, t + 3000};
            uint8_t *l = malloc(LIDAR_BYTES);
            if (l == NULL)
                die("out of memory");
            lidar_scan(l, LIDAR_BYTES, kk);
            rs[k++] = (rec){"lidar/top", l, LIDAR_BYTES, t + 4000};
        }
        if (tick % 20 == 0) {
            uint8_t *c = malloc(CAM_BYTES);
            if (c == NULL)
                die("out of memory");
            (noisy ? camera_frame : sim_gradient)(c, CAM_BYTES, kk);
            rs[k++] = (rec){"camera/front", c, CAM_BYTES, t + 5000};
        }
    }
    nrec = k;
    for (size_t i = 0; i < nrec; i++)
        raw += 12 + 32 + strlen(rs[i].topic) + rs[i].len;
    for (size_t c = 0; c < sizeof(cs) / sizeof(cs[0]); c++) {
        if (cs[c].z != MCL_LOG_COMPRESS_NONE && !mcl__z_built((int)cs[c].z))
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/mcl-bench-logz-%d.mcllog", dir, (int)getpid());
        mcl_log_writer_options o = {.overwrite = true, .compress = cs[c].z};
        mcl_log_writer *w;
        double t0 = now_s();
        if (mcl_log_writer_open(&w, path, &o) != MCL_OK)
            die("cannot create the log");
        for (size_t i = 0; i < nrec; i++) {
            mcl_raw_msg m = {.topic = rs[i].topic,
                             .topic_len = strlen(rs[i].topic),
                             .payload = rs[i].p,
                             .len = rs[i].len,
                             .publisher = 1,
                             .seq = i,
                             .recv_realtime_ns = rs[i].t};
            if (mcl_log_writer_write(w, &m) != MCL_OK)
                die("cannot write the log (disk full?)");
        }
        if (mcl_log_writer_close(w) != MCL_OK)
            die("cannot write the log");
        double tw = now_s() - t0;
        uint64_t disk = file_bytes(path);
        (void)read_log(path, nrec); // (in the page cache now)
        double best = 0;
        for (int r = 0; r < 5; r++) {
            double s = read_log(path, nrec);
            best = r == 0 || s < best ? s : best;
        }
        drop_pages(path);
        double cold = read_log(path, nrec);
        unlink(path);
        printf("BENCH case=logz mix=%s impl=%s records=%zu mb=%.1f disk_mb=%.1f disk_ratio=%.3f "
               "write_mb_per_s=%.0f read_mb_per_s=%.0f cold_read_mb_per_s=%.0f\n",
               noisy ? "noisy" : "sim", cs[c].name, nrec, (double)raw / 1e6, (double)disk / 1e6,
               (double)disk / (double)raw, (double)raw / tw / 1e6, (double)raw / best / 1e6,
               (double)raw / cold / 1e6);
        fflush(stdout);
    }
    for (size_t i = 0; i < nrec; i++) {
        if (rs[i].len == CAM_BYTES || rs[i].len == LIDAR_BYTES)
            free(rs[i].p);
        else
            mcl_free(rs[i].p);
    }
    free(rs);
}

int
main(int argc, char **argv)
{
    int seconds = 60;
    const char *dir = "/tmp";
    for (int c; (c = getopt(argc, argv, "t:d:")) != -1;) {
        if (c == 't')
            seconds = atoi(optarg);
        else if (c == 'd')
            dir = optarg;
        else
            die("usage: mcl-bench-logz [-t SECONDS] [-d DIR]");
    }
    if (seconds < 1 || seconds > 3600)
        die("-t: 1 to 3600 seconds");
    static uint8_t cam[CAM_W * CAM_H], lid[LIDAR_BYTES];
    camera_frame(cam, sizeof(cam), 1);
    lidar_scan(lid, sizeof(lid), 1);
    codec_case("camera", cam, sizeof(cam));
    codec_case("lidar", lid, sizeof(lid));
    log_case(dir, false, seconds);
    log_case(dir, true, seconds);
    return 0;
}
