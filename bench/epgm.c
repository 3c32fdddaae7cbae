// SPDX-License-Identifier: BSD-3-Clause
// Probe of raw libzmq over epgm (OpenPGM) on this machine, which decided that mcl refuses
// zmq+epgm URLs (docs/zmq.md). A forked SUB and a PUB on epgm://127.0.0.1;239.255.43.1:5555
// (ZMQ_RATE 1 Gbit/s, SUB ZMQ_RCVBUF 4 MiB); the PUB sends COUNT messages of SIZE bytes at full
// speed; the SUB counts what arrives until 3 s of silence. Run inside scripts/netns.sh:
//
//   scripts/netns.sh build/release/bench/mcl-bench-epgm [SIZE [COUNT [nodrop]]]
//
// nodrop: the publisher is an XPUB with ZMQ_XPUB_NODROP (blocking instead of dropping at its
// high-water mark), as mcl's lossless default would need.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

int
main(int argc, char **argv)
{
    int size = argc > 1 ? atoi(argv[1]) : 64, count = argc > 2 ? atoi(argv[2]) : 20000;
    int nodrop = argc > 3 && strcmp(argv[3], "nodrop") == 0;
    if (size < 1 || size > 65000 || count < 1 || count > 10000000) {
        fprintf(stderr, "usage: mcl-bench-epgm [SIZE 1..65000 [COUNT]]\n");
        return 2;
    }
    const char *ep = "epgm://127.0.0.1;239.255.43.1:5555";
    int rate = 1000000; // kbit/s
    pid_t pid = fork();
    if (pid == 0) {
        void *ctx = zmq_ctx_new();
        void *s = zmq_socket(ctx, ZMQ_SUB);
        int buf = 4 << 20, tmo = 3000;
        zmq_setsockopt(s, ZMQ_RATE, &rate, sizeof(rate));
        zmq_setsockopt(s, ZMQ_RCVBUF, &buf, sizeof(buf));
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
        if (zmq_connect(s, ep) != 0) {
            fprintf(stderr, "sub: %s\n", zmq_strerror(zmq_errno()));
            _exit(3);
        }
        static char b[65536];
        long got = 0;
        while (zmq_recv(s, b, sizeof(b), 0) >= 0)
            got++;
        printf("impl=zmq-epgm%s size=%d sent=%d received=%ld loss_pct=%.2f\n",
               nodrop ? "-nodrop" : "", size, count, got, 100.0 * (double)(count - got) / count);
        fflush(stdout);
        _exit(0);
    }
    sleep(1); // the subscriber joins the group first
    void *ctx = zmq_ctx_new();
    void *p = zmq_socket(ctx, nodrop ? ZMQ_XPUB : ZMQ_PUB);
    zmq_setsockopt(p, ZMQ_RATE, &rate, sizeof(rate));
    if (nodrop)
        zmq_setsockopt(p, ZMQ_XPUB_NODROP, &nodrop, sizeof(nodrop));
    if (zmq_connect(p, ep) != 0) {
        fprintf(stderr, "pub: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    sleep(1);
    char *b = calloc(1, (size_t)size);
    for (int i = 0; b != NULL && i < count; i++)
        zmq_send(p, b, (size_t)size, 0);
    int st;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st))
        printf("impl=zmq-epgm size=%d subscriber killed by signal %d\n", size, WTERMSIG(st));
    int zero = 0;
    zmq_setsockopt(p, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(p);
    zmq_ctx_term(ctx);
    free(b);
    return 0;
}
