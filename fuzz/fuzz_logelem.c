// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: what a log stream takes from the network (lib/log/logstream.c). The first byte
// says what the rest is:
//   0: one element, for mcl_log_elem_decode(): what it accepts lies inside the input, has a
//      topic of at most MCL_TOPIC_MAX bytes without NUL, and encodes again (shortest forms: no
//      longer than the input) into an element that decodes to the same record;
//   1: params text, for mcl_log_params_parse(): what it accepts formats again (escaped) into
//      text that parses to the same filters;
//   2: a log file for the log source, read through in small pushes (the last byte of the input
//      sets the push size), then at a time seek's position and again from an index: the records
//      at an index are the same whichever way it was reached, and nothing crashes or leaks;
//   3: a log file that grows: written in pieces (the first byte sets their size), the reader
//      refreshed after each: every record it returns lies inside the file, no more records than
//      bytes, and once complete a reset reads what a fresh reader reads.
// Nothing may crash, leak or hang.
#define _GNU_SOURCE
#include <mcl/logstream.h>

#include "stream/stream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_elem(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1); // exactly n bytes: ASan sees any read past them
    if (copy == NULL)
        return;
    if (n > 0)
        memcpy(copy, p, n);
    mcl_raw_msg m;
    if (mcl_log_elem_decode(copy, n, &m) == MCL_OK) {
        const uint8_t *t = (const uint8_t *)m.topic, *pl = m.payload;
        if (m.topic_len > MCL_TOPIC_MAX || (m.topic_len > 0 && memchr(t, 0, m.topic_len)) ||
            (m.topic_len > 0 && (t < copy || t + m.topic_len > copy + n)) ||
            (m.len > 0 && (pl < copy || pl + m.len > copy + n)) || (m.len > 0) != (pl != NULL))
            abort();
        size_t need;
        if (mcl_log_elem_encode(&m, NULL, 0, &need) != MCL_EMSGSIZE || need > n)
            abort(); // shortest forms: never longer than what was read
        uint8_t *again = malloc(need);
        mcl_raw_msg d;
        size_t len;
        if (again != NULL) {
            if (mcl_log_elem_encode(&m, again, need, &len) != MCL_OK || len != need ||
                mcl_log_elem_decode(again, len, &d) != MCL_OK ||
                d.recv_realtime_ns != m.recv_realtime_ns || d.publisher != m.publisher ||
                d.seq != m.seq || d.topic_len != m.topic_len || d.len != m.len ||
                memcmp(d.topic, m.topic, m.topic_len) != 0 ||
                (m.len > 0 && memcmp(d.payload, m.payload, m.len) != 0))
                abort();
            free(again);
        }
    }
    free(copy);
}

static void
fuzz_params(const uint8_t *p, size_t n)
{
    char *text = malloc(n + 1);
    if (text == NULL)
        return;
    memcpy(text, p, n);
    text[n] = '\0';
    mcl_log_params *pa;
    if (mcl_log_params_parse(&pa, text) == MCL_OK) {
        const mcl_log_reader_options *o = mcl_log_params_options(pa);
        if (o->ntopics > 256 || (o->end_ns != 0 && o->start_ns > o->end_ns) || o->start_ns < 0)
            abort();
        size_t len;
        (void)mcl_log_params_format(o, NULL, 0, &len);
        char *again = malloc(len + 1);
        mcl_log_params *pb;
        if (again != NULL && mcl_log_params_format(o, again, len + 1, &len) == MCL_OK) {
            if (mcl_log_params_parse(&pb, again) != MCL_OK)
                abort(); // what was read is written so that it reads again
            const mcl_log_reader_options *q = mcl_log_params_options(pb);
            if (q->ntopics != o->ntopics || q->start_ns != o->start_ns || q->end_ns != o->end_ns)
                abort();
            for (size_t i = 0; i < o->ntopics; i++)
                if (strcmp(q->topics[i], o->topics[i]) != 0)
                    abort();
            mcl_log_params_free(pb);
        }
        free(again);
        mcl_log_params_free(pa);
    }
    free(text);
}

// Reads up to max records from pos into seqs (in pushes of push bytes); returns how many.
static size_t
read_from(mcl_stream_source *src, uint64_t pos, size_t max, size_t push, uint64_t *seqs)
{
    mcl_stream_sink k;
    mcl__sink_init(&k, MCL_STREAM_ENTITIES, push, max);
    size_t n = 0;
    for (int reads = 0; n < max && reads < 4096; reads++) {
        mcl__sink_reset(&k, push, max - n);
        mcl_err rv = src->ops->read(src->self, pos + n, max - n, &k);
        if (rv != MCL_OK || k.units == 0)
            break;
        for (size_t at = 0; at + 4 <= k.len;) {
            size_t l = (size_t)k.buf[at] << 24 | (size_t)k.buf[at + 1] << 16 |
                       (size_t)k.buf[at + 2] << 8 | k.buf[at + 3];
            mcl_raw_msg m;
            if (at + 4 + l > k.len || mcl_log_elem_decode(k.buf + at + 4, l, &m) != MCL_OK)
                abort(); // the source puts only elements that decode
            seqs[n++] = m.seq;
            at += 4 + l;
        }
    }
    mcl__sink_fini(&k);
    return n;
}

static char path[64];

static void
fuzz_source(const uint8_t *p, size_t n)
{
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/mcl-fuzz-logelem-%d.mcllog", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    if (n > 0 && fwrite(p, 1, n, f) != n) {
        fclose(f);
        return;
    }
    fclose(f);
    size_t push = 64 + (n > 0 ? (size_t)p[n - 1] * 16 : 0);
    mcl_stream_source src;
    const char *paths[] = {path};
    enum { MAX = 256 };
    static uint64_t a[MAX], b[MAX];
    if (mcl_log_source_open(&src, paths, 1, NULL) == MCL_OK) {
        const char *info = src.ops->info(src.self);
        if (info == NULL || strstr(info, "files=1\n") == NULL)
            abort();
        size_t na = read_from(&src, 0, MAX, push, a);
        uint64_t pos;
        if (na > 2) {
            size_t nb = read_from(&src, na / 2, MAX, push, b); // back, from an index
            for (size_t i = 0; i < nb && na / 2 + i < na; i++)
                if (b[i] != a[na / 2 + i])
                    abort();
        }
        if (src.ops->seek_time(src.self, 0, &pos) == MCL_OK && pos > 0 && pos < na) {
            size_t nb = read_from(&src, pos, 4, push, b);
            for (size_t i = 0; i < nb && pos + i < na; i++)
                if (b[i] != a[pos + i])
                    abort(); // a time seek's index is the record's true index
        }
        src.ops->close(src.self);
    }
    unlink(path);
}

static long
count_records(mcl_log_reader *r, size_t size)
{
    const mcl_raw_msg *m;
    long n = 0;
    while (mcl_log_reader_next(r, &m) == MCL_OK) {
        if (m->len > size || m->topic_len > size || m->topic[m->topic_len] != '\0' ||
            (m->len > 0 && m->payload == NULL) || ++n > (long)size + 1)
            abort();
    }
    return n;
}

static void
fuzz_growing(const uint8_t *p, size_t n)
{
    if (n < 2)
        return;
    size_t piece = 1 + (size_t)p[0] * 4;
    p++;
    n--;
    if (path[0] == '\0')
        snprintf(path, sizeof(path), "/tmp/mcl-fuzz-logelem-%d.mcllog", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    size_t at = piece < n ? piece : n;
    if (fwrite(p, 1, at, f) != at || fflush(f) != 0) {
        fclose(f);
        return;
    }
    mcl_log_reader *r;
    const char *paths[] = {path};
    if (mcl_log_reader_open(&r, paths, 1, NULL) == MCL_OK) {
        long got = count_records(r, n);
        while (at < n) {
            size_t k = piece < n - at ? piece : n - at;
            if (fwrite(p + at, 1, k, f) != k || fflush(f) != 0)
                break;
            at += k;
            if (mcl_log_reader_refresh(r) != MCL_OK)
                abort();
            got += count_records(r, n);
            if (got > (long)n + 1)
                abort();
        }
        mcl_log_reader *fresh;
        if (at == n && mcl_log_reader_open(&fresh, paths, 1, NULL) == MCL_OK) {
            long want = count_records(fresh, n);
            if (mcl_log_reader_reset(r) != MCL_OK || count_records(r, n) != want)
                abort(); // the same file reads the same, however it was seen growing
            mcl_log_reader_close(fresh);
        }
        mcl_log_reader_close(r);
    }
    fclose(f);
    unlink(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0]) {
    case 0:
        fuzz_elem(data + 1, size - 1);
        break;
    case 1:
        fuzz_params(data + 1, size - 1);
        break;
    case 2:
        fuzz_source(data + 1, size - 1);
        break;
    case 3:
        fuzz_growing(data + 1, size - 1);
        break;
    default:
        break;
    }
    return 0;
}
