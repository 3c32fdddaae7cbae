// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: a packet stream reading bytes from a stranger. The first byte picks the codec
// (bit 0: cs.packetstream) and whether this side has requests in flight (bit 1), the rest is
// what the peer writes on a socketpair, framing included. The stream must end or go quiet
// without crashing, leaking or hanging, and every request it made must complete exactly once.
#include <mcl/pstream.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_REQ = 8 };

static int completions[MAX_REQ + 1];
static mcl_pstream_request *held[4];
static int nheld;

static void
on_done(const mcl_pstream_result *r, void *user)
{
    (void)r;
    completions[(intptr_t)user]++;
}

static void
handler(mcl_pstream *ps, mcl_pstream_request *rq, void *user)
{
    (void)ps;
    (void)user;
    size_t n;
    const void *p = mcl_pstream_request_payload(rq, &n);
    if (mcl_pstream_request_type(rq) % 3 == 2 && nheld < 4) { // answered later
        held[nheld++] = rq;
        return;
    }
    mcl_pstream_status st =
        mcl_pstream_request_type(rq) % 3 == 1 ? MCL_PSTREAM_INTERNAL : MCL_PSTREAM_OK;
    (void)mcl_pstream_reply(rq, st, mcl_pstream_request_flags(rq), p, n, "fuzz");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    mcl_pstream_options o = {.codec = (data[0] & 1) ? MCL_PSTREAM_CS : MCL_PSTREAM_NATIVE,
                             .max_packet = 65536,
                             .ping_ms = -1,
                             .idle_ms = -1,
                             .timeout_ms = 60000,
                             .close_ms = 100,
                             .max_incoming = 16};
    mcl_pstream *ps;
    if (mcl_pstream_open_fd(&ps, sv[0], sv[0], &o) != MCL_OK)
        abort();
    (void)mcl_pstream_handle(ps, MCL_PSTREAM_ANY, MCL_PSTREAM_ANY, handler, NULL);
    memset(completions, 0, sizeof(completions));
    nheld = 0;
    int made = 0;
    if (data[0] & 2)
        for (intptr_t i = 1; i <= MAX_REQ; i++)
            if (mcl_pstream_submit(ps, 0, (uint32_t)i, 0, "q", 1, 0, on_done, (void *)i, NULL) ==
                MCL_OK)
                made++;
    (void)fcntl(sv[1], F_SETFL, O_NONBLOCK);
    size_t off = 1;
    char sink[4096];
    for (int round = 0; round < 10000; round++) {
        if (off < size) {
            ssize_t w = write(sv[1], data + off, size - off);
            if (w > 0)
                off += (size_t)w;
        } else if (off == size) {
            shutdown(sv[1], SHUT_WR); // then the peer says nothing more
            off++;
        }
        while (read(sv[1], sink, sizeof(sink)) > 0) // what the stream answers is discarded
            ;
        if (round == 2 && nheld > 0) // answers from outside the handler, after it returned
            for (int i = 0; i < nheld; i++)
                (void)mcl_pstream_reply(held[i], MCL_PSTREAM_OK, 0, NULL, 0, NULL);
        if (round == 2)
            nheld = 0;
        if (mcl_pstream_dispatch(ps) != MCL_OK)
            abort();
        if (!mcl_pstream_is_open(ps) || (off > size && round > 100))
            break;
    }
    mcl_pstream_free(ps);           // completes what is left
    for (int i = 0; i < nheld; i++) // replies after the end are refused, never crash
        (void)mcl_pstream_reply(held[i], MCL_PSTREAM_OK, 0, NULL, 0, NULL);
    for (int i = 1; i <= made; i++)
        if (completions[i] != 1)
            abort();
    close(sv[0]);
    close(sv[1]);
    return 0;
}
