// Fuzz target: the log reader (lib/log/logfile.c) on a file from a stranger: mcl logs (header,
// records, sync markers, CRCs, damage and torn tails) and Python MCL text logs. The input is
// the file. Reading it must end (a second pass reads as many), every record must lie inside the
// file, the damage counted must fit in it, and a seek to a time seen, then reading
// on, must give records no older than that time; nothing may crash, leak or hang.
#define _GNU_SOURCE
#include <mcl/logfile.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

// Reads everything; returns the count, and the time of the middle record in *mid.
static long
read_all(mcl_log_reader *r, size_t size, int64_t *mid)
{
    const mcl_raw_msg *m;
    long n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        if (m->len > size || m->topic_len > size || m->topic == NULL ||
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
        long n = read_all(r, size, &mid);
        if (mcl_log_reader_reset(r) != MCL_OK || read_all(r, size, NULL) != n)
            abort(); // a second pass reads the same
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
