// SPDX-License-Identifier: BSD-3-Clause
// The sender of the Python rows (bench/python/pysub.py): COUNT msgpack payloads of SIZE bytes (a
// bin holding the message index as 8 bytes, then filler), as fast as possible, pinned to core
// 1. "mcl": through an mcl raw broadcaster on URL; "raw": the same payloads as bare UDP
// datagrams to URL's group and port (what a pure-Python publisher's socket.sendto() would put
// on the wire, one datagram per message). Prints one line when done:
//   BENCH case=pysend impl=mcl|raw sent=N seconds=S
//   mcl-bench-pysend mcl|raw URL COUNT SIZE
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
die(const char *what)
{
    fprintf(stderr, "mcl-bench-pysend: %s\n", what);
    return 1;
}

int
main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[1], "mcl") != 0 && strcmp(argv[1], "raw") != 0))
        return die("usage: mcl-bench-pysend mcl|raw URL COUNT SIZE");
    bool raw = strcmp(argv[1], "raw") == 0;
    unsigned long long count = strtoull(argv[3], NULL, 10);
    size_t size = (size_t)strtoul(argv[4], NULL, 10);
    if (count == 0 || size < 11 || size > 65000)
        return die("COUNT must be > 0 and SIZE 11..65000");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1 % (int)sysconf(_SC_NPROCESSORS_ONLN), &set);
    sched_setaffinity(0, sizeof(set), &set);

    mcl_connection *c;
    char err[256];
    if (mcl_connection_parse(&c, argv[2], err, sizeof err) != MCL_OK)
        return die(err);
    // msgpack bin 16 (SIZE - 3 bytes of data: fits a 16-bit length).
    uint8_t *p = calloc(1, size);
    if (p == NULL)
        return die("out of memory");
    size_t dlen = size - 3;
    p[0] = 0xc5;
    p[1] = (uint8_t)(dlen >> 8);
    p[2] = (uint8_t)dlen;
    int s = -1;
    mcl_raw_broadcaster *b = NULL;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(mcl_connection_port(c))};
    if (raw) {
        s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ip_mreqn mr = {.imr_ifindex = (int)if_nametoindex("lo")};
        unsigned char ttl = 0;
        if (s < 0 || inet_pton(AF_INET, mcl_connection_group(c), &a.sin_addr) != 1 ||
            setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) != 0 ||
            setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) != 0 ||
            connect(s, (struct sockaddr *)&a, sizeof a) != 0)
            return die("cannot open the raw socket (an IPv4 group on lo is needed)");
    } else if (mcl_raw_broadcaster_open(&b, c, NULL) != MCL_OK) {
        return die("cannot open the broadcaster");
    }
    double t0 = now_s();
    for (unsigned long long i = 0; i < count; i++) {
        memcpy(p + 3, &i, sizeof i);
        if (raw) {
            while (send(s, p, size, 0) < 0)
                if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
                    return die("send failed");
        } else if (mcl_raw_broadcaster_publish(b, NULL, p, size) != MCL_OK) {
            return die("publish failed");
        }
    }
    double t = now_s() - t0;
    printf("BENCH case=pysend impl=%s sent=%llu seconds=%.3f\n", argv[1], count, t);
    if (s >= 0)
        close(s);
    mcl_raw_broadcaster_close(b);
    mcl_connection_free(c);
    free(p);
    return 0;
}
