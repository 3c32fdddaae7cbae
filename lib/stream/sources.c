// SPDX-License-Identifier: BSD-3-Clause
// The sink sources read into, and the built-in sources: memory (bytes or elements), file,
// value iterator.
#define _GNU_SOURCE
#include "stream_int.h"

#include "../core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// --- the sink ------------------------------------------------------------------------------------

mcl_err
mcl__sink_init(mcl_stream_sink *k, mcl_stream_kind kind, size_t max, uint64_t max_units)
{
    memset(k, 0, sizeof(*k));
    k->kind = kind;
    k->max = max;
    k->max_units = max_units;
    return MCL_OK;
}

void
mcl__sink_reset(mcl_stream_sink *k, size_t max, uint64_t max_units)
{
    k->len = 0;
    k->units = 0;
    k->max = max;
    k->max_units = max_units;
    k->too_big = k->nomem = false;
}

void
mcl__sink_fini(mcl_stream_sink *k)
{
    mcl__free(k->buf);
    k->buf = NULL;
    k->cap = k->len = 0;
}

static bool
sink_room(mcl_stream_sink *k, size_t need)
{
    if (k->len + need <= k->cap)
        return true;
    size_t cap = k->cap ? k->cap : 4096;
    while (cap < k->len + need)
        cap *= 2;
    uint8_t *b = mcl__realloc(k->buf, cap);
    if (b == NULL) {
        k->nomem = true;
        return false;
    }
    k->buf = b;
    k->cap = cap;
    return true;
}

mcl_err
mcl_stream_sink_put(mcl_stream_sink *k, const void *data, size_t len)
{
    if (k == NULL || (data == NULL && len > 0))
        return MCL_EINVAL;
    if (k->kind == MCL_STREAM_ENTITIES) {
        if (len == 0 || len > UINT32_MAX)
            return MCL_EINVAL; // an element is one msgpack value: never empty
        if (k->units >= k->max_units || k->len + 4 + len > k->max) {
            if (k->units == 0 && 4 + len > k->max)
                k->too_big = true;
            return MCL_EMSGSIZE;
        }
        if (!sink_room(k, 4 + len))
            return MCL_ENOMEM;
        mcl__put_be32(k->buf + k->len, (uint32_t)len);
        memcpy(k->buf + k->len + 4, data, len);
        k->len += 4 + len;
        k->units++;
        return MCL_OK;
    }
    if (len == 0)
        return MCL_OK;
    if (k->units + len > k->max_units || k->len + len > k->max)
        return MCL_EMSGSIZE;
    if (!sink_room(k, len))
        return MCL_ENOMEM;
    memcpy(k->buf + k->len, data, len);
    k->len += len;
    k->units += len;
    return MCL_OK;
}

// The byte budget left in a byte sink (its units and bytes are the same).
static size_t
sink_left(const mcl_stream_sink *k)
{
    uint64_t u = k->max_units - k->units;
    size_t b = k->max - k->len;
    return u < b ? (size_t)u : b;
}

size_t
mcl_stream_sink_room(const mcl_stream_sink *k)
{
    if (k == NULL)
        return 0;
    if (k->kind != MCL_STREAM_ENTITIES)
        return sink_left(k);
    if (k->units >= k->max_units || k->max - k->len <= 4)
        return 0;
    return k->max - k->len - 4;
}

// --- memory --------------------------------------------------------------------------------------

// Bytes: data holds them. Elements: data holds them back to back, off[i] where element i starts
// (off[n] the end).
typedef struct memsrc {
    mcl_stream_kind kind;
    bool writable;
    uint8_t *data;
    size_t len, cap;
    size_t *off; // elements only
    size_t n, ncap;
} memsrc;

static unsigned
mem_mode(void *self)
{
    memsrc *m = self;
    unsigned mode = MCL_STREAM_READABLE | MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK |
                    MCL_STREAM_BOUNDED_START | MCL_STREAM_BOUNDED_END;
    if (m->writable)
        mode |= MCL_STREAM_WRITABLE | MCL_STREAM_MOVABLE_END | MCL_STREAM_TRUNCATE;
    return mode;
}

static uint64_t
mem_units(const memsrc *m)
{
    return m->kind == MCL_STREAM_BYTES ? m->len : m->n;
}

static void
mem_bounds(void *self, uint64_t *start, uint64_t *end)
{
    *start = 0;
    *end = mem_units(self);
}

static mcl_err
mem_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    memsrc *m = self;
    if (pos > mem_units(m))
        return MCL_ERANGE;
    if (m->kind == MCL_STREAM_BYTES) {
        size_t n = m->len - (size_t)pos, room = sink_left(k);
        if (n > room)
            n = room;
        if (n > max)
            n = (size_t)max;
        return mcl_stream_sink_put(k, m->data + pos, n);
    }
    for (uint64_t i = pos; i < m->n && i - pos < max; i++) {
        mcl_err rv = mcl_stream_sink_put(k, m->data + m->off[i], m->off[i + 1] - m->off[i]);
        if (rv == MCL_EMSGSIZE)
            break;
        if (rv != MCL_OK)
            return rv;
    }
    return MCL_OK;
}

static bool
mem_grow(memsrc *m, size_t bytes, size_t elems)
{
    if (bytes > m->cap) {
        size_t cap = m->cap ? m->cap : 256;
        while (cap < bytes)
            cap *= 2;
        uint8_t *d = mcl__realloc(m->data, cap);
        if (d == NULL)
            return false;
        m->data = d;
        m->cap = cap;
    }
    if (m->kind == MCL_STREAM_ENTITIES && elems + 1 > m->ncap) {
        size_t cap = m->ncap ? m->ncap : 16;
        while (cap < elems + 1)
            cap *= 2;
        size_t *o = mcl__realloc(m->off, cap * sizeof(*o));
        if (o == NULL)
            return false;
        m->off = o;
        m->ncap = cap;
    }
    return true;
}

static mcl_err
mem_write(void *self, uint64_t pos, const mcl_stream_elem *elems, size_t n)
{
    memsrc *m = self;
    if (pos > mem_units(m))
        return MCL_ERANGE;
    if (m->kind == MCL_STREAM_BYTES) {
        size_t len = n ? elems[0].len : 0;
        if (!mem_grow(m, (size_t)pos + len, 0))
            return MCL_ENOMEM;
        if (len)
            memcpy(m->data + pos, elems[0].data, len);
        if (pos + len > m->len)
            m->len = (size_t)pos + len;
        return MCL_OK;
    }
    // Elements overwrite from pos: those after the last one written stay. Rebuilt whole.
    size_t keep_after = pos + n < m->n ? m->n - ((size_t)pos + n) : 0;
    size_t total_n = (size_t)pos + n + keep_after;
    size_t add = 0;
    for (size_t i = 0; i < n; i++)
        add += elems[i].len;
    size_t head = m->off[pos], tail_at = keep_after ? m->off[pos + n] : m->len;
    size_t tail = m->len - tail_at, total = head + add + tail;
    uint8_t *d = mcl__alloc(total ? total : 1);
    size_t *o = mcl__alloc((total_n + 1) * sizeof(*o));
    if (d == NULL || o == NULL) {
        mcl__free(d);
        mcl__free(o);
        return MCL_ENOMEM;
    }
    if (head > 0)
        memcpy(d, m->data, head);
    memcpy(o, m->off, ((size_t)pos + 1) * sizeof(*o));
    size_t at = head;
    for (size_t i = 0; i < n; i++) {
        o[pos + i] = at;
        memcpy(d + at, elems[i].data, elems[i].len);
        at += elems[i].len;
    }
    if (tail)
        memcpy(d + at, m->data + tail_at, tail);
    for (size_t i = 0; i < keep_after; i++)
        o[pos + n + i] = m->off[pos + n + i] - tail_at + at;
    o[total_n] = total;
    mcl__free(m->data);
    mcl__free(m->off);
    m->data = d;
    m->cap = total ? total : 1;
    m->off = o;
    m->ncap = total_n + 1;
    m->n = total_n;
    m->len = total;
    return MCL_OK;
}

static mcl_err
mem_truncate(void *self, uint64_t pos)
{
    memsrc *m = self;
    if (pos > mem_units(m))
        return MCL_ERANGE;
    if (m->kind == MCL_STREAM_BYTES) {
        m->len = (size_t)pos;
    } else {
        m->n = (size_t)pos;
        m->len = m->off[pos];
    }
    return MCL_OK;
}

static void
mem_close(void *self)
{
    memsrc *m = self;
    mcl__free(m->data);
    mcl__free(m->off);
    mcl__free(m);
}

static const mcl_stream_source_ops mem_bytes_ops = {
    .kind = MCL_STREAM_BYTES,
    .mode = mem_mode,
    .bounds = mem_bounds,
    .read = mem_read,
    .write = mem_write,
    .truncate = mem_truncate,
    .close = mem_close,
};
static const mcl_stream_source_ops mem_elems_ops = {
    .kind = MCL_STREAM_ENTITIES,
    .mode = mem_mode,
    .bounds = mem_bounds,
    .read = mem_read,
    .write = mem_write,
    .truncate = mem_truncate,
    .close = mem_close,
};

static memsrc *
mem_new(mcl_stream_kind kind, bool writable)
{
    memsrc *m = mcl__zalloc(sizeof(*m));
    if (m == NULL)
        return NULL;
    m->kind = kind;
    m->writable = writable;
    if (kind == MCL_STREAM_ENTITIES) {
        if (!mem_grow(m, 0, 0)) {
            mem_close(m);
            return NULL;
        }
        m->off[0] = 0;
    }
    return m;
}

mcl_err
mcl_stream_source_memory(mcl_stream_source *src, const void *data, size_t len, bool writable)
{
    if (src == NULL || (data == NULL && len > 0))
        return MCL_EINVAL;
    memsrc *m = mem_new(MCL_STREAM_BYTES, writable);
    if (m == NULL || !mem_grow(m, len, 0)) {
        if (m != NULL)
            mem_close(m);
        return MCL_ENOMEM;
    }
    if (len)
        memcpy(m->data, data, len);
    m->len = len;
    src->ops = &mem_bytes_ops;
    src->self = m;
    return MCL_OK;
}

mcl_err
mcl_stream_source_elems(mcl_stream_source *src, const mcl_stream_elem *elems, size_t n,
                        bool writable)
{
    if (src == NULL || (elems == NULL && n > 0))
        return MCL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (elems[i].len == 0 || elems[i].data == NULL)
            return MCL_EINVAL;
    memsrc *m = mem_new(MCL_STREAM_ENTITIES, writable);
    if (m == NULL)
        return MCL_ENOMEM;
    mcl_err rv = mem_write(m, 0, elems, n);
    if (rv != MCL_OK) {
        mem_close(m);
        return rv;
    }
    src->ops = &mem_elems_ops;
    src->self = m;
    return MCL_OK;
}

// --- file ----------------------------------------------------------------------------------------

typedef struct filesrc {
    int fd;
    bool writable;
} filesrc;

static unsigned
file_mode(void *self)
{
    filesrc *f = self;
    unsigned mode = MCL_STREAM_READABLE | MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK |
                    MCL_STREAM_BOUNDED_START | MCL_STREAM_BOUNDED_END | MCL_STREAM_MOVABLE_END;
    if (f->writable)
        mode |= MCL_STREAM_WRITABLE | MCL_STREAM_TRUNCATE;
    return mode;
}

static void
file_bounds(void *self, uint64_t *start, uint64_t *end)
{
    filesrc *f = self;
    struct stat st;
    *start = 0;
    *end = fstat(f->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static mcl_err
file_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    filesrc *f = self;
    uint64_t start, end;
    file_bounds(f, &start, &end);
    if (pos > end)
        return MCL_ERANGE;
    size_t n = sink_left(k);
    if (n > max)
        n = (size_t)max;
    if (n > end - pos)
        n = (size_t)(end - pos);
    if (n == 0)
        return MCL_OK;
    if (!sink_room(k, n))
        return MCL_ENOMEM;
    ssize_t r;
    do
        r = pread(f->fd, k->buf + k->len, n, (off_t)pos);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return mcl__sys_err(errno);
    k->len += (size_t)r;
    k->units += (uint64_t)r;
    return MCL_OK;
}

static mcl_err
file_write(void *self, uint64_t pos, const mcl_stream_elem *elems, size_t n)
{
    filesrc *f = self;
    const uint8_t *p = n ? elems[0].data : NULL;
    size_t len = n ? elems[0].len : 0;
    while (len > 0) {
        ssize_t w = pwrite(f->fd, p, len, (off_t)pos);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return mcl__sys_err(errno);
        p += w;
        len -= (size_t)w;
        pos += (uint64_t)w;
    }
    return MCL_OK;
}

static mcl_err
file_truncate(void *self, uint64_t pos)
{
    filesrc *f = self;
    return ftruncate(f->fd, (off_t)pos) == 0 ? MCL_OK : mcl__sys_err(errno);
}

static void
file_close(void *self)
{
    filesrc *f = self;
    close(f->fd);
    mcl__free(f);
}

static const mcl_stream_source_ops file_ops = {
    .kind = MCL_STREAM_BYTES,
    .mode = file_mode,
    .bounds = file_bounds,
    .read = file_read,
    .write = file_write,
    .truncate = file_truncate,
    .close = file_close,
};

mcl_err
mcl_stream_source_file(mcl_stream_source *src, const char *path, bool writable)
{
    if (src == NULL || path == NULL)
        return MCL_EINVAL;
    int fd = open(path, (writable ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == ENOENT ? MCL_ENOENT
               : errno == EACCES || errno == EPERM ? MCL_EPERM
                                                   : mcl__sys_err(errno);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return MCL_EINVAL;
    }
    filesrc *f = mcl__zalloc(sizeof(*f));
    if (f == NULL) {
        close(fd);
        return MCL_ENOMEM;
    }
    f->fd = fd;
    f->writable = writable;
    src->ops = &file_ops;
    src->self = f;
    return MCL_OK;
}

// --- value iterator ------------------------------------------------------------------------------

typedef struct itersrc {
    mcl_stream_next_fn next;
    void (*done)(void *);
    void *user;
    uint64_t pos; // elements produced so far
    bool ended;
    // An element the last read could not fit: it goes first into the next push.
    uint8_t *held;
    size_t held_len;
} itersrc;

static unsigned
iter_mode(void *self)
{
    (void)self;
    return MCL_STREAM_READABLE | MCL_STREAM_BOUNDED_START;
}

static void
iter_bounds(void *self, uint64_t *start, uint64_t *end)
{
    itersrc *it = self;
    *start = 0;
    *end = it->ended ? it->pos : MCL_STREAM_NOEND;
}

// The iterator's elements go through a private sink of one element, so that one that does not
// fit the push is kept for the next.
static mcl_err
iter_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    itersrc *it = self;
    if (pos != it->pos - (it->held ? 1 : 0))
        return MCL_ERANGE; // no seeking: only where it is
    uint64_t n = 0;
    if (it->held != NULL) {
        mcl_err rv = mcl_stream_sink_put(k, it->held, it->held_len);
        if (rv != MCL_OK)
            return rv == MCL_EMSGSIZE ? (k->too_big ? MCL_EMSGSIZE : MCL_OK) : rv;
        mcl__free(it->held);
        it->held = NULL;
        n++;
    }
    mcl_stream_sink one;
    mcl__sink_init(&one, MCL_STREAM_ENTITIES, k->max, 1);
    mcl_err rv = MCL_OK;
    while (!it->ended && n < max) {
        mcl__sink_reset(&one, k->max, 1);
        rv = it->next(it->user, &one);
        if (rv == MCL_EEOF) {
            it->ended = true;
            rv = MCL_OK;
            break;
        }
        if (rv != MCL_OK)
            break;
        if (one.units == 0)
            break; // nothing now
        size_t el = mcl__get_be32(one.buf);
        it->pos++;
        rv = mcl_stream_sink_put(k, one.buf + 4, el);
        if (rv == MCL_EMSGSIZE) {
            it->held = mcl__alloc(el);
            if (it->held == NULL) {
                rv = MCL_ENOMEM;
                break;
            }
            memcpy(it->held, one.buf + 4, el);
            it->held_len = el;
            rv = MCL_OK;
            break;
        }
        if (rv != MCL_OK)
            break;
        n++;
    }
    if (one.too_big)
        rv = MCL_EMSGSIZE;
    mcl__sink_fini(&one);
    return rv;
}

static void
iter_close(void *self)
{
    itersrc *it = self;
    if (it->done != NULL)
        it->done(it->user);
    mcl__free(it->held);
    mcl__free(it);
}

static const mcl_stream_source_ops iter_ops = {
    .kind = MCL_STREAM_ENTITIES,
    .mode = iter_mode,
    .bounds = iter_bounds,
    .read = iter_read,
    .close = iter_close,
};

mcl_err
mcl_stream_source_iterator(mcl_stream_source *src, mcl_stream_next_fn next, void (*done)(void *),
                           void *user)
{
    if (src == NULL || next == NULL)
        return MCL_EINVAL;
    itersrc *it = mcl__zalloc(sizeof(*it));
    if (it == NULL)
        return MCL_ENOMEM;
    it->next = next;
    it->done = done;
    it->user = user;
    src->ops = &iter_ops;
    src->self = it;
    return MCL_OK;
}
