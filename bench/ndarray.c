// SPDX-License-Identifier: BSD-3-Clause
// Typed arrays (MCL_TYPE_NDARRAY) against their alternatives, side by side in one run:
//  1. setting and getting a 1 MiB float32 array in a value (mcl_value_put_ndarray, then
//     mcl_value_get_ndarray and a read of the data) against memcpy of the same bytes into a
//     buffer already allocated (the target: >= 0.8x memcpy's rate);
//  2. encoding and decoding a message holding that array (mcl_msg_encode, mcl_msg_decode)
//     against the same numbers as a msgpack array of floats (mcl_value_push_double: msgpack
//     float64, 9 bytes each, as mcl writes every float), with the sizes on the wire and of the
//     decoded trees (targets: >= 5x faster, >= 3x smaller).
// One line of key=value per case, then the ratios:
//
//   build/release/bench/mcl-bench-ndarray [ROUNDS]    (default 200; 1 MiB each)
#include <mcl/mcl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N = 262144 }; // float32 elements: 1 MiB

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
check(mcl_err rv, const char *what)
{
    if (rv != MCL_OK) {
        fprintf(stderr, "mcl-bench-ndarray: %s: %s\n", what, mcl_strerror(rv));
        exit(1);
    }
}

static volatile float sink; // keeps the reads of the data

// Median of three runs of f (seconds per round).
typedef double (*bench_fn)(long rounds, void *arg);
static double
median3(bench_fn f, long rounds, void *arg)
{
    double t[3];
    for (int i = 0; i < 3; i++)
        t[i] = f(rounds, arg);
    for (int i = 0; i < 2; i++)
        for (int j = i + 1; j < 3; j++)
            if (t[j] < t[i]) {
                double x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    return t[1];
}

static float *src;

static double
b_memcpy(long rounds, void *arg)
{
    float *dst = arg;
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        src[0] = (float)r;
        memcpy(dst, src, N * sizeof(float));
        sink = dst[r % N];
    }
    return (now_s() - t0) / (double)rounds;
}

static double
b_setget(long rounds, void *arg)
{
    mcl_value *map = arg;
    const uint64_t shape[1] = {N};
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        src[0] = (float)r;
        check(mcl_value_put_ndarray(map, "scan", MCL_DTYPE_FLOAT32, 1, shape, src), "put");
        const void *data;
        size_t nbytes;
        check(mcl_value_get_ndarray(mcl_value_find(map, "scan"), NULL, NULL, NULL, &data, &nbytes),
              "get");
        sink = ((const float *)data)[r % N];
    }
    return (now_s() - t0) / (double)rounds;
}

static double
b_codec(long rounds, void *arg)
{
    mcl_msg *m = arg;
    double t0 = now_s();
    for (long r = 0; r < rounds; r++) {
        void *buf;
        size_t len;
        mcl_msg *back;
        check(mcl_msg_encode(m, &buf, &len), "encode");
        check(mcl_msg_decode(&back, buf, len, NULL, NULL, 0), "decode");
        mcl_free(buf);
        mcl_msg_free(back);
    }
    return (now_s() - t0) / (double)rounds;
}

static size_t
wire_len(const mcl_msg *m)
{
    void *buf;
    size_t len;
    check(mcl_msg_encode(m, &buf, &len), "encode");
    mcl_free(buf);
    return len;
}

int
main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
    if (rounds <= 0)
        rounds = 200;
    src = malloc(N * sizeof(float));
    float *dst = malloc(N * sizeof(float));
    if (src == NULL || dst == NULL)
        return 1;
    for (size_t i = 0; i < N; i++)
        src[i] = (float)i * 0.25f - 1000.0f; // like a lidar scan: varied, exactly representable
    memset(dst, 0, N * sizeof(float));

    // 1. set + get against memcpy.
    mcl_value *map;
    check(mcl_value_new(&map, MCL_TYPE_MAP), "new");
    b_setget(3, map); // warm: the allocator settles on reusing the 1 MiB block
    b_memcpy(3, dst);
    double tm = median3(b_memcpy, rounds, dst), ts = median3(b_setget, rounds, map);
    double mib = (double)(N * sizeof(float)) / (1 << 20);
    printf("case=memcpy bytes=%zu ns=%.0f gib_s=%.2f\n", N * sizeof(float), tm * 1e9,
           mib / 1024 / tm);
    printf("case=set_get bytes=%zu ns=%.0f gib_s=%.2f\n", N * sizeof(float), ts * 1e9,
           mib / 1024 / ts);
    mcl_value_free(map);

    // 2. a message with the array, against the same numbers as a msgpack array of floats.
    mcl_msg *nd, *arr;
    mcl_value *a;
    check(mcl_msg_new(&nd, NULL), "new");
    check(mcl_msg_set_str(nd, "name", "Scan"), "set");
    check(mcl_msg_set_ndarray(nd, "scan", MCL_DTYPE_FLOAT32, 1, (const uint64_t[]){N}, src),
          "set");
    check(mcl_msg_new(&arr, NULL), "new");
    check(mcl_msg_set_str(arr, "name", "Scan"), "set");
    check(mcl_msg_set_array(arr, "scan", &a), "set");
    for (size_t i = 0; i < N; i++)
        check(mcl_value_push_double(a, src[i]), "push");
    size_t lnd = wire_len(nd), larr = wire_len(arr);
    long arounds = rounds / 20 > 3 ? rounds / 20 : 3; // (the array form is slow)
    double tnd = median3(b_codec, rounds, nd), tarr = median3(b_codec, arounds, arr);
    // The decoded trees: a 48-byte node and an 8-byte slot per float, against one block.
    size_t mem_nd = lnd + 64, mem_arr = (size_t)N * (48 + 8) + 64;
    printf("case=codec_ndarray wire_bytes=%zu tree_bytes~%zu encode_decode_us=%.1f\n", lnd,
           mem_nd, tnd * 1e6);
    printf("case=codec_msgpack_array wire_bytes=%zu tree_bytes~%zu encode_decode_us=%.1f\n", larr,
           mem_arr, tarr * 1e6);
    printf("ratio set_get_vs_memcpy=%.2f (target >= 0.8)\n", tm / ts);
    printf("ratio codec_speedup=%.1f (target >= 5)\n", tarr / tnd);
    printf("ratio wire_smaller=%.2f (target >= 3; msgpack float32 would be 5 B/float: %.2f) "
           "tree_smaller=%.1f\n",
           (double)larr / (double)lnd, (double)(N * 5 + 20) / (double)lnd,
           (double)mem_arr / (double)mem_nd);
    mcl_msg_free(nd);
    mcl_msg_free(arr);
    free(src);
    free(dst);
    return 0;
}
