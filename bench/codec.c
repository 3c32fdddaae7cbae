// SPDX-License-Identifier: BSD-3-Clause
// Decoding and encoding cost of values, for before/after comparisons of lib/msg's msgpack
// codec: COUNT decodes (mcl_value_decode) and encodes of two payloads, a 64-byte RPC argument
// map and a 40-field IMU-like message, timed here and counted exactly under callgrind:
//
//   build/release/bench/mcl-bench-codec [COUNT]
//   valgrind --tool=callgrind --callgrind-out-file=cg.out build/release/bench/mcl-bench-codec 20000
#include <mcl/mcl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
run(const char *name, const mcl_value *v, long count)
{
    void *buf;
    size_t len;
    if (mcl_value_encode(v, &buf, &len) != MCL_OK) {
        fprintf(stderr, "codec: cannot encode\n");
        exit(1);
    }
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        mcl_value *d;
        if (mcl_value_decode(&d, buf, len, NULL, 0) != MCL_OK) {
            fprintf(stderr, "codec: cannot decode\n");
            exit(1);
        }
        mcl_value_free(d);
    }
    double t1 = now_s();
    for (long i = 0; i < count; i++) {
        void *b2;
        size_t l2;
        if (mcl_value_encode(v, &b2, &l2) != MCL_OK || l2 != len) {
            fprintf(stderr, "codec: cannot encode\n");
            exit(1);
        }
        mcl_free(b2);
    }
    double t2 = now_s();
    printf("%s: %zu bytes, decode %.0f ns, encode %.0f ns\n", name, len, (t1 - t0) / count * 1e9,
           (t2 - t1) / count * 1e9);
    mcl_free(buf);
}

int
main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    if (count <= 0 || count > 100000000) {
        fprintf(stderr, "usage: mcl-bench-codec [COUNT (1..1e8)]\n");
        return 2;
    }
    mcl_value *args;
    const char *aj = "{\"a\": 1.25, \"b\": -7, \"tag\": \"0123456789012345678901234567890123\"}";
    if (mcl_value_from_json(&args, aj, strlen(aj), NULL, 0) != MCL_OK)
        return 1;
    run("rpc-args", args, count);
    mcl_value_free(args);
    mcl_value *imu, *arr;
    mcl_value_new(&imu, MCL_TYPE_MAP);
    mcl_value_put_str(imu, "name", "ImuMessage");
    mcl_value_put_double(imu, "timestamp", 1764630000.123456);
    char key[16];
    for (int i = 0; i < 36; i++) {
        snprintf(key, sizeof(key), "field%02d", i);
        if (i % 3 == 0)
            mcl_value_put_double(imu, key, i * 0.5);
        else if (i % 3 == 1)
            mcl_value_put_int(imu, key, i * 1000);
        else
            mcl_value_put_str(imu, key, "ok");
    }
    mcl_value_put_array(imu, "quat", &arr);
    for (int i = 0; i < 4; i++)
        mcl_value_push_double(arr, 0.25 * i);
    run("imu-40", imu, count / 4 > 0 ? count / 4 : 1);
    mcl_value_free(imu);
    return 0;
}
