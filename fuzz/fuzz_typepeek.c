// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: the type-name peek of the per-topic statistics (mcl__type_peek, lib/raw/topics.c),
// which looks into every payload a listener delivers for a msgpack map's "name" string. The
// input is a payload from a stranger, from an exact-size copy (a read past its end is caught by
// ASan). Checked:
// - the result is NUL-terminated, as long as the return value says, and fits the buffer;
// - what it finds does not depend on bytes after the name (the input with junk appended gives
//   the same name), and a smaller buffer gets a prefix of it;
// - against msgpack-c as the reference: when the whole input is one msgpack object that
//   msgpack-c can be asked to read (lengths fit, nesting bounded) and is at most 1024 bytes
//   (so the peek's step limit cannot be reached), the peek finds exactly the reference's name:
//   the value of the first str key "name" among the map's first 32 entries, when it is a str
//   without a NUL byte.
#include "msg/msg_int.h"
#include "raw/topics.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
be16(const uint8_t *p)
{
    return (uint64_t)p[0] << 8 | p[1];
}

static uint64_t
be32(const uint8_t *p)
{
    return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
}

// Whether the bytes are exactly one msgpack object with lengths that fit and nesting of at
// most MCL__MAX_NESTING (as fuzz_msgpack.c asks before it calls msgpack-c).
// clang-format off
static bool
plausible(const uint8_t *p, size_t len)
{
    size_t off = 0;
    uint64_t pending[MCL__MAX_NESTING + 1];
    int depth = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        if (off >= len)
            return false;
        uint8_t c = p[off++];
        uint64_t skip = 0, count = 0;
        size_t left = len - off;
#define NEED(n) do { if (left < (n)) return false; } while (0)
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            skip = 0;
        } else if ((c & 0xf0) == 0x80) {
            count = 2 * (uint64_t)(c & 0x0f);
        } else if ((c & 0xf0) == 0x90) {
            count = c & 0x0f;
        } else if ((c & 0xe0) == 0xa0) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: NEED(1); skip = 1 + (uint64_t)p[off]; break;
            case 0xc5: case 0xda: NEED(2); skip = 2 + be16(p + off); break;
            case 0xc6: case 0xdb: NEED(4); skip = 4 + be32(p + off); break;
            case 0xc7: NEED(1); skip = 2 + (uint64_t)p[off]; break;
            case 0xc8: NEED(2); skip = 3 + be16(p + off); break;
            case 0xc9: NEED(4); skip = 5 + be32(p + off); break;
            case 0xca: case 0xce: case 0xd2: skip = 4; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: NEED(2); count = be16(p + off); skip = 2; break;
            case 0xdd: NEED(4); count = be32(p + off); skip = 4; break;
            case 0xde: NEED(2); count = 2 * be16(p + off); skip = 2; break;
            case 0xdf: NEED(4); count = 2 * be32(p + off); skip = 4; break;
            default: return false;
            }
        }
#undef NEED
        if (skip > left)
            return false;
        off += (size_t)skip;
        if (count > 0) {
            if (count > len - off || depth == MCL__MAX_NESTING)
                return false;
            pending[++depth] = count;
        }
    }
    return off == len;
}
// clang-format on

// The reference: the name msgpack-c's reading gives, or "" (ref must hold 64 bytes).
static void
reference(const msgpack_object *o, char *ref)
{
    ref[0] = '\0';
    if (o->type != MSGPACK_OBJECT_MAP)
        return;
    for (uint32_t i = 0; i < o->via.map.size && i < 32; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 4 ||
            memcmp(k->via.str.ptr, "name", 4) != 0)
            continue;
        if (v->type == MSGPACK_OBJECT_STR &&
            (v->via.str.size == 0 || memchr(v->via.str.ptr, 0, v->via.str.size) == NULL)) {
            size_t n = v->via.str.size < 63 ? v->via.str.size : 63;
            memcpy(ref, v->via.str.ptr, n);
            ref[n] = '\0';
        }
        return;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    uint8_t *q = malloc(size + 16);
    if (p == NULL || q == NULL) {
        free(p);
        free(q);
        return 0;
    }
    memcpy(p, data, size);
    char out[64], again[64], small[8];
    size_t n = mcl__type_peek(p, size, out, sizeof(out));
    if (n >= sizeof(out) || strlen(out) != n)
        abort();
    if (n > 0 && (size == 0 || (p[0] & 0xf0) != 0x80) &&
        (size == 0 || (p[0] != 0xde && p[0] != 0xdf)))
        abort(); // a name from something that is no map
    // Junk after the input changes nothing that was found.
    memcpy(q, data, size);
    memset(q + size, 0xc1, 16);
    size_t m = mcl__type_peek(q, size + 16, again, sizeof(again));
    if (n > 0 && (m != n || strcmp(again, out) != 0))
        abort();
    // A small buffer: a prefix.
    size_t s = mcl__type_peek(p, size, small, sizeof(small));
    if (s != (n < 7 ? n : 7) || strncmp(small, out, s) != 0 || small[s] != '\0')
        abort();
    // The reference, where it may be asked.
    if (size > 0 && size <= 1024 && plausible(p, size)) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)p, size, &off);
        if (r == MSGPACK_UNPACK_SUCCESS && off == size) {
            char ref[64];
            reference(&u.data, ref);
            if (strcmp(ref, out) != 0)
                abort();
        }
        msgpack_unpacked_destroy(&u);
    }
    free(p);
    free(q);
    return 0;
}
