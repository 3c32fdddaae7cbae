// SPDX-License-Identifier: BSD-3-Clause
// Helpers shared by the request/response benchmarks (bench/pstream.c, bench/rpc.c): the
// clock, latency quantiles, memory, and the raw libzmq echo pair they are measured against.
#ifndef MCL_BENCH_COMMON_H
#define MCL_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

// CLOCK_MONOTONIC in ns.
uint64_t now_ns(void);
// Prints "PROGRAM: what" on stderr and exits 1.
void die(const char *what) __attribute__((noreturn));
// The resident set (VmRSS of /proc/self/status), KiB; 0 if unknown.
long rss_kb(void);

// Warm-up round trips before the N that are timed, in every round-trip case.
enum { RTT_WARMUP = 1000 };

// Sorts lat (n round trips, ns) and prints
// "BENCH case=rtt impl=IMPL size=SIZE n=N p50_us=.. p99_us=.. p999_us=..[ EXTRA]".
void report_rtt(const char *bench, const char *impl, size_t size, uint64_t *lat, size_t n,
                const char *extra);

// RTT_WARMUP + n round trips of once(ctx), one at a time; the last n timed into lat.
void rtt_loop(size_t n, uint64_t *lat, void (*once)(void *ctx), void *ctx);

#ifdef MCL_BENCH_ZMQ
// Raw libzmq over tcp on 127.0.0.1: a client socket of type ctype against an echo thread
// on a stype socket (ZMQ_ROUTER/ZMQ_DEALER, ZMQ_REP/ZMQ_REQ), size-byte messages. With lat:
// round trips, one in flight (timed into lat); without: n messages with window in flight,
// returns the time they took (ns).
uint64_t run_zmq(int stype, int ctype, size_t size, size_t n, unsigned window, uint64_t *lat);
#endif

#endif
