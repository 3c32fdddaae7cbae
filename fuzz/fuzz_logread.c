// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the log reader (lib/log/logfile.c) on a file from a stranger: mcl logs (header,
// records, sync markers, CRCs, damage and torn tails; compressed blocks) and Python MCL text
// logs. The input is the file. Reading it must end (a second pass reads as many), every record
// must lie inside the file (from a block: at most 256 times the file's size), the damage
// counted must fit in it (for an mcl log, exactly: records read, bytes skipped as damage and the
// unread tail add up to the bytes after the header, where a compressed block read counts with
// its bytes in the file instead of its records'), a pass stopped by the stop function at every
// chance (mcl_log_reader_set_stop(): resynchronisation interrupted and resumed anywhere) must
// read the same, and a seek to a time seen, then reading on, must give records no older than
// that time; nothing may crash, leak or hang.
#define _GNU_SOURCE
#include <mcl/logfile.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
// lib/log/logfile.c
void mcl__log_reader_stop_every(mcl_log_reader *r, uint64_t bytes);
void mcl__log_reader_blocks(const mcl_log_reader *r, uint64_t *n, uint64_t *bytes,
                            uint64_t *raw);

static bool
stop_always(void *arg)
{
    ++*(unsigned long *)arg;
    return true;
}

static char path[64];

// Reads everything; returns the count, and the time of the middle record in *mid, the bytes
// of the records in *rec_bytes. With a stop function, MCL_EINTR goes on.
static long
read_all(mcl_log_reader *r, size_t size, int64_t *mid, uint64_t *rec_bytes)
{
    const mcl_raw_msg *m;
    long n = 0, stops = 0;
    uint64_t rb = 0;
    for (;;) {
        mcl_err rv = mcl_log_reader_next(r, &m);
        if (rv == MCL_EINTR) {
            if (++stops > 4 * (long)size + 16)
                abort(); // stopped without getting on
            continue;
        }
        if (rv != MCL_OK)
            break;
        rb += 12 + 32 + m->topic_len + m->len;
        if (m->len > 256 * (uint64_t)size || m->topic_len > size || m->topic == NULL ||
            m->topic[m->topic_len] != '\0' || (m->len > 0 && m->payload == NULL))
            abort(); // a record from outside the file
        if (mid != NULL && (n == 0 || (n & (n - 1)) == 0))
            *mid = m->recv_realtime_ns; // (a time seen, about the middle)
        if (++n > (long)size + 1)
            abort(); // more records than bytes: the reader loops
    }
    uint64_t bytes = 0;
    (void)mcl_log_reader_corrupt(r, &bytes);
    if (bytes > size)
        abort();
    if (rec_bytes != NULL)
        *rec_bytes = rb;
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/mcl-fuzz-logread-%d.mcllog", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return 0;
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return 0;
    }
    fclose(f);
    mcl_log_reader *r;
    const char *paths[] = {path};
    if (mcl_log_reader_open(&r, paths, 1, NULL) == MCL_OK) {
        int64_t mid = 0;
        uint64_t rb = 0, bad_bytes, bad = 0;
        long n = read_all(r, size, &mid, &rb);
        bad = mcl_log_reader_corrupt(r, &bad_bytes);
        uint64_t tail = mcl_log_reader_tail(r);
        // An mcl log with a whole header: every byte after it is accounted for. The records of
        // the blocks read (raw: their bytes as if plain) were all returned (rb holds them);
        // the blocks count with their bytes in the file instead.
        uint64_t nblk, blk_bytes, blk_raw;
        mcl__log_reader_blocks(r, &nblk, &blk_bytes, &blk_raw);
        size_t hl = size >= 12 ? (size_t)data[10] << 8 | data[11] : 0;
        if (blk_raw > rb || blk_bytes > size || (nblk == 0) != (blk_bytes == 0))
            abort();
        if (size >= 28 && memcmp(data, "MCLLOG\r\n", 8) == 0 && hl <= size &&
            rb - blk_raw + blk_bytes + bad_bytes + tail != size - hl)
            abort();
        if (mcl_log_reader_reset(r) != MCL_OK || read_all(r, size, NULL, NULL) != n)
            abort(); // a second pass reads the same
        unsigned long asked = 0;
        uint64_t bad2_bytes;
        mcl_log_reader_set_stop(r, stop_always, &asked);
        mcl__log_reader_stop_every(r, 0);
        if (mcl_log_reader_reset(r) != MCL_OK || read_all(r, size, NULL, NULL) != n ||
            mcl_log_reader_corrupt(r, &bad2_bytes) != bad || bad2_bytes != bad_bytes ||
            mcl_log_reader_tail(r) != tail)
            abort(); // stopped and resumed anywhere: the same
        mcl_log_reader_set_stop(r, NULL, NULL);
        if (n > 0 && mcl_log_reader_seek(r, mid) == MCL_OK) {
            const mcl_raw_msg *m;
            if (mcl_log_reader_next(r, &m) == MCL_OK && m->recv_realtime_ns < mid)
                abort(); // a seek lands before the time asked
        }
        mcl_log_reader_close(r);
    }
    unlink(path);
    return 0;
}
