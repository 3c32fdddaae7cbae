// SPDX-License-Identifier: BSD-3-Clause
// Work per message, for instruction counts under callgrind (which are repeatable where timings
// on a shared machine are not): one process publishes COUNT messages of SIZE bytes on URL and
// receives them back on the same host, in rounds of 64 so that no buffer overflows. Compare
// two builds with
//
//   scripts/netns.sh valgrind --tool=callgrind --callgrind-out-file=cg.out
//       build/release/bench/mcl-bench-percall [URL [SIZE [COUNT [bfirst]]]]  (one line;
//       bfirst: the broadcaster binds, e.g. for zmq+tcp://127.0.0.1:0)
//   callgrind_annotate --inclusive=yes cg.out | grep -E 'publish|listener_recv'
//
// Prints one key=value line (received, lost) so that a run that lost messages is seen.
#include <mcl/mcl.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "udp://239.255.92.1:0?iface=lo&ttl=0";
    size_t size = argc > 2 ? strtoul(argv[2], NULL, 10) : 64;
    long count = argc > 3 ? strtol(argv[3], NULL, 10) : 20000;
    char err[256];
    mcl_connection *c;
    if (mcl_connection_parse(&c, url, err, sizeof(err)) != MCL_OK) {
        fprintf(stderr, "percall: %s\n", err);
        return 2;
    }
    // The side that binds opens first (udp: the listener, for its port; zmq: the broadcaster),
    // and the other opens on its effective connection.
    bool bfirst = argc > 4 && strcmp(argv[4], "bfirst") == 0;
    mcl_raw_listener *l = NULL;
    mcl_raw_broadcaster *b = NULL;
    mcl_err rv;
    if (bfirst) {
        rv = mcl_raw_broadcaster_open(&b, c, "percall");
        if (rv == MCL_OK)
            rv = mcl_raw_listener_open(&l, mcl_raw_broadcaster_connection(b), NULL, 0);
    } else {
        rv = mcl_raw_listener_open(&l, c, NULL, 0);
        if (rv == MCL_OK)
            rv = mcl_raw_broadcaster_open(&b, mcl_raw_listener_connection(l), "percall");
    }
    if (rv != MCL_OK) {
        fprintf(stderr, "percall: %s: %s\n", url, mcl_strerror(rv));
        return 1;
    }
    mcl_raw_broadcaster_wait_for_subscribers(b, 1, 5000); // zmq, inproc; udp: MCL_ENOTSUP
    char *payload = calloc(1, size ? size : 1);
    long got = 0;
    for (long sent = 0; sent < count;) {
        long round = count - sent < 64 ? count - sent : 64;
        for (long i = 0; i < round; i++, sent++)
            if (mcl_raw_broadcaster_publish(b, NULL, payload, size) != MCL_OK)
                return 1;
        for (long i = 0; i < round; i++) {
            const mcl_raw_msg *m;
            if (mcl_raw_listener_recv(l, &m, 2000) != MCL_OK)
                break;
            got++;
        }
    }
    mcl_listener_stats st;
    mcl_raw_listener_stats(l, &st);
    printf("impl=percall url=%s size=%zu sent=%ld received=%ld lost=%llu\n", url, size, count,
           got, (unsigned long long)st.lost);
    free(payload);
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_connection_free(c);
    return got == count ? 0 : 1;
}
