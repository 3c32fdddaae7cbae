// SPDX-License-Identifier: BSD-3-Clause
// The stream layer's messages byte for byte (lib/stream/swire.h): a vector for every one-way
// message, OPEN and its answer, LIST answers, a table of malformed messages each refused with
// its reason, and hostile input (every field checked, nothing read outside the message).
#include "harness.h"
#include "stream/swire.h"

#include <stdlib.h>
#include <string.h>

static size_t
unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        CU_ASSERT_FATAL(sscanf(p, "%2x", &v) == 1);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

// The whole message: the header mcl__smsg_encode writes, then a text, then a push's data.
static size_t
encode(const mcl__smsg *m, uint8_t *out)
{
    size_t n = mcl__smsg_encode(m, out);
    CU_ASSERT_FATAL(n >= MCL__SW_HDR && n <= 64);
    if (m->textlen > 0)
        memcpy(out + n, m->text, m->textlen);
    n += m->textlen;
    if (m->len > 0)
        memcpy(out + n, m->data, m->len);
    return n + m->len;
}

static void
same_smsg(const mcl__smsg *a, const mcl__smsg *b)
{
    CU_ASSERT_EQUAL(a->type, b->type);
    CU_ASSERT_EQUAL(a->sid, b->sid);
    CU_ASSERT_EQUAL(a->ctx, b->ctx);
    CU_ASSERT_EQUAL(a->whence, b->whence);
    CU_ASSERT_EQUAL(a->eos, b->eos);
    CU_ASSERT_EQUAL(a->offset, b->offset);
    CU_ASSERT_EQUAL(a->lseq, b->lseq);
    CU_ASSERT_EQUAL(a->ulimit, b->ulimit);
    CU_ASSERT_EQUAL(a->plimit, b->plimit);
    CU_ASSERT_EQUAL(a->done, b->done);
    CU_ASSERT_EQUAL(a->flags, b->flags);
    CU_ASSERT_EQUAL(a->nunits, b->nunits);
    CU_ASSERT_EQUAL(a->pushno, b->pushno);
    CU_ASSERT_EQUAL(a->poff, b->poff);
    CU_ASSERT_EQUAL(a->pos, b->pos);
    CU_ASSERT_EQUAL(a->start, b->start);
    CU_ASSERT_EQUAL(a->end, b->end);
    CU_ASSERT_EQUAL(a->code, b->code);
    CU_ASSERT_EQUAL_FATAL(a->len, b->len);
    CU_ASSERT(a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
    CU_ASSERT_EQUAL_FATAL(a->textlen, b->textlen);
    CU_ASSERT(a->textlen == 0 || memcmp(a->text, b->text, a->textlen) == 0);
}

// --- one-way messages ----------------------------------------------------------------------------

typedef struct smsg_vec {
    const char *hex;
    bool entities;
    mcl__smsg m;
} smsg_vec;

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

static const smsg_vec vecs[] = {
    // READ: sid 1, ctx 2, whence 1 (ABS), eos 1 (follow), offset 5, credit 100 units, 3 pushes.
    {"00000001 00000002 01 01 0000 0000000000000005 0000000000000064 0000000000000003",
     false,
     {.type = MCL__SM_READ,
      .sid = 1,
      .ctx = 2,
      .whence = 1,
      .eos = 1,
      .offset = 5,
      .ulimit = 100,
      .plimit = 3}},
    // READ at a time (whence 5), stop at the end, credit beyond 32 bits.
    {"0badcafe 80000000 05 00 0000 1122334455667788 0000000100000000 00000000ffffffff",
     false,
     {.type = MCL__SM_READ,
      .sid = 0x0badcafe,
      .ctx = 0x80000000,
      .whence = 5,
      .offset = 0x1122334455667788,
      .ulimit = 0x100000000,
      .plimit = 0xffffffff}},
    // WRITE from the end (whence 3), offset -1.
    {"00000007 00000003 03 00 0000 ffffffffffffffff",
     false,
     {.type = MCL__SM_WRITE, .sid = 7, .ctx = 3, .whence = 3, .offset = -1}},
    {"00000007 00000004 02 00 0000 0000000000000000",
     false,
     {.type = MCL__SM_WRITE, .sid = 7, .ctx = 4, .whence = 2}},
    // LIMIT: credit number 9, 4096 units, 16 pushes.
    {"00000001 00000002 00000009 0000000000001000 0000000000000010",
     false,
     {.type = MCL__SM_LIMIT, .sid = 1, .ctx = 2, .lseq = 9, .ulimit = 4096, .plimit = 16}},
    // WLIMIT: as LIMIT, and 2048 units written.
    {"00000001 00000002 0000000a 0000000000001000 0000000000000010 0000000000000800",
     false,
     {.type = MCL__SM_WLIMIT,
      .sid = 1,
      .ctx = 2,
      .lseq = 10,
      .ulimit = 4096,
      .plimit = 16,
      .done = 2048}},
    // WLIMIT with all written.
    {"00000001 00000002 00000000 0000000000000007 0000000000000001 0000000000000007",
     false,
     {.type = MCL__SM_WLIMIT, .sid = 1, .ctx = 2, .ulimit = 7, .plimit = 1, .done = 7}},
    // PUSH of bytes: 3 units, push 7 at offset 16, "abc".
    {"00000001 00000002 00 000000 00000003 0000000000000007 0000000000000010 616263",
     false,
     {.type = MCL__SM_PUSH,
      .sid = 1,
      .ctx = 2,
      .nunits = 3,
      .pushno = 7,
      .poff = 16,
      .data = B("abc")}},
    // The last PUSH of bytes: end-of-stream, no data.
    {"00000001 00000002 01 000000 00000000 0000000000000008 0000000000000013",
     false,
     {.type = MCL__SM_PUSH, .sid = 1, .ctx = 2, .flags = MCL__SW_EOS, .pushno = 8, .poff = 19}},
    // PUSH of entities with end-of-stream: two elements, "a" and "bc".
    {"00000001 00000002 01 000000 00000002 0000000000000000 0000000000000000 "
     "00000001 61 00000002 6263",
     true,
     {.type = MCL__SM_PUSH,
      .sid = 1,
      .ctx = 2,
      .flags = MCL__SW_EOS,
      .nunits = 2,
      .data = B("\0\0\0\x01"
                "a"
                "\0\0\0\x02"
                "bc")}},
    // The last PUSH of entities: end-of-stream, no elements.
    {"00000001 00000002 01 000000 00000000 0000000000000001 0000000000000002",
     true,
     {.type = MCL__SM_PUSH, .sid = 1, .ctx = 2, .flags = MCL__SW_EOS, .pushno = 1, .poff = 2}},
    // WPUSH of bytes: "hi".
    {"00000001 00000003 00 000000 00000002 0000000000000000 0000000000000000 6869",
     false,
     {.type = MCL__SM_WPUSH, .sid = 1, .ctx = 3, .nunits = 2, .data = B("hi")}},
    // WPUSH of entities: one element of three bytes, push 5 at unit 9.
    {"00000001 00000003 00 000000 00000001 0000000000000005 0000000000000009 00000003 010203",
     true,
     {.type = MCL__SM_WPUSH,
      .sid = 1,
      .ctx = 3,
      .nunits = 1,
      .pushno = 5,
      .poff = 9,
      .data = B("\0\0\0\x03\x01\x02\x03")}},
    // POS: at 5 of [0, 10].
    {"00000001 00000002 0000000000000005 0000000000000000 000000000000000a",
     false,
     {.type = MCL__SM_POS, .sid = 1, .ctx = 2, .pos = 5, .end = 10}},
    // POS at both bounds, the end unknown.
    {"00000001 00000002 ffffffffffffffff 0000000000000003 ffffffffffffffff",
     false,
     {.type = MCL__SM_POS, .sid = 1, .ctx = 2, .pos = UINT64_MAX, .start = 3, .end = UINT64_MAX}},
    {"00000001 00000002 0000000000000003 0000000000000003 ffffffffffffffff",
     false,
     {.type = MCL__SM_POS, .sid = 1, .ctx = 2, .pos = 3, .start = 3, .end = UINT64_MAX}},
    // CTXERR: invalid position (2), "bad pos".
    {"00000001 00000002 0002 0007 62616420706f73",
     false,
     {.type = MCL__SM_CTXERR,
      .sid = 1,
      .ctx = 2,
      .code = MCL__SW_INVALID_POS,
      .text = B("bad pos")}},
    // CTXERR: general (1), no text.
    {"00000001 00000002 0001 0000",
     false,
     {.type = MCL__SM_CTXERR, .sid = 1, .ctx = 2, .code = MCL__SW_GENERAL}},
    // TRUNC at 32 in context 4.
    {"00000001 00000004 0000000000000020",
     false,
     {.type = MCL__SM_TRUNC, .sid = 1, .ctx = 4, .pos = 32}},
    {"00000001 00000000", false, {.type = MCL__SM_CLOSE, .sid = 1}},
    {"00000009 00000000", false, {.type = MCL__SM_CLOSED, .sid = 9}},
    // FAIL: "gone \u00e9" (UTF-8), with a context id.
    {"00000001 00000005 0000 0007 676f6e6520c3a9",
     false,
     {.type = MCL__SM_FAIL, .sid = 1, .ctx = 5, .text = B("gone \xc3\xa9")}},
    {"00000002 00000000 0000 0000", false, {.type = MCL__SM_FAIL, .sid = 2}},
    // SFAIL (the streamer's side): "error".
    {"00000003 00000000 0000 0005 6572726f72",
     false,
     {.type = MCL__SM_SFAIL, .sid = 3, .text = B("error")}},
};
#define NVECS (sizeof(vecs) / sizeof(vecs[0]))
#define NONEWAY (MCL__SM_SFAIL - MCL__SM_READ + 1) // READ..SFAIL

static void
test_vectors(void)
{
    bool seen[MCL__SM_SFAIL + 1] = {false};
    bool seen_ent[2] = {false};
    for (size_t i = 0; i < NVECS; i++) {
        const smsg_vec *v = &vecs[i];
        uint8_t want[256], got[256];
        size_t n = unhex(v->hex, want);
        size_t m = encode(&v->m, got);
        if (m != n || memcmp(got, want, n) != 0)
            fprintf(stderr, "\n  vector %zu: encoded differently\n", i);
        CU_ASSERT_EQUAL(m, n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        // Decoded from a heap copy of exactly n bytes (ASan sees any read beyond).
        uint8_t *p = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, want, n);
        mcl__smsg d;
        char why[128] = "x";
        mcl_err rv = mcl__smsg_decode(v->m.type, p, n, v->entities, &d, why, sizeof(why));
        if (rv != MCL_OK)
            fprintf(stderr, "\n  vector %zu: %s\n", i, why);
        CU_ASSERT_EQUAL_FATAL(rv, MCL_OK);
        CU_ASSERT_STRING_EQUAL(why, ""); // cleared on success
        same_smsg(&d, &v->m);
        CU_ASSERT(d.len == 0 || (d.data >= p && d.data + d.len == p + n)); // the data ends it
        CU_ASSERT(d.textlen == 0 || (d.text >= p && d.text + d.textlen == p + n));
        free(p);
        seen[v->m.type] = true;
        if (v->m.type == MCL__SM_PUSH)
            seen_ent[v->entities] = true;
    }
    for (int t = MCL__SM_READ; t <= MCL__SM_SFAIL; t++)
        CU_ASSERT(seen[t]);
    CU_ASSERT(seen_ent[0] && seen_ent[1]);
}

// A push of entities decodes either way: as entities it is checked element by element, as
// bytes its unit count must be its length. And the elements walk as they were framed.
static void
test_push_elements(void)
{
    uint8_t b[128];
    size_t n = unhex("00000001 00000002 00 000000 00000003 0000000000000000 0000000000000000 "
                     "00000001 61 00000002 6263 00000004 00010203",
                     b);
    mcl__smsg m;
    char why[128];
    MCLT_OK(mcl__smsg_decode(MCL__SM_PUSH, b, n, true, &m, why, sizeof(why)));
    CU_ASSERT_EQUAL(m.nunits, 3);
    CU_ASSERT_EQUAL(m.len, 19);
    const char *want[] = {"a", "bc", "\0\x01\x02\x03"};
    size_t wantlen[] = {1, 2, 4};
    size_t off = 0;
    for (uint32_t i = 0; i < m.nunits; i++) {
        size_t el;
        const uint8_t *e = mcl__spush_elem(m.data, &off, &el);
        CU_ASSERT_EQUAL_FATAL(el, wantlen[i]);
        CU_ASSERT(memcmp(e, want[i], el) == 0);
        CU_ASSERT(e >= m.data && e + el <= m.data + m.len);
    }
    CU_ASSERT_EQUAL(off, m.len);
    // As bytes: 3 units said, 19 carried.
    MCLT_ERR(mcl__smsg_decode(MCL__SM_PUSH, b, n, false, &m, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "3 bytes said, 19 carried"));
    // A byte push whose bytes happen to look like nothing framed.
    n = unhex("00000001 00000002 00 000000 00000002 0000000000000000 0000000000000000 ffff", b);
    MCLT_OK(mcl__smsg_decode(MCL__SM_PUSH, b, n, false, &m, why, sizeof(why)));
    MCLT_ERR(mcl__smsg_decode(MCL__SM_PUSH, b, n, true, &m, why, sizeof(why)), MCL_EPROTO);
}

// The fixed size of each message, by one byte too few and one too many; the variable ones
// by a header one byte short. Also types that are not one-way messages.
static void
test_wrong_lengths(void)
{
    static const struct {
        int type;
        size_t size;
        bool var;
    } t[] = {{MCL__SM_READ, 36, false},   {MCL__SM_WRITE, 20, false}, {MCL__SM_LIMIT, 28, false},
             {MCL__SM_WLIMIT, 36, false}, {MCL__SM_PUSH, 32, true},   {MCL__SM_WPUSH, 32, true},
             {MCL__SM_POS, 32, false},    {MCL__SM_CTXERR, 12, true}, {MCL__SM_TRUNC, 16, false},
             {MCL__SM_CLOSE, 8, false},   {MCL__SM_CLOSED, 8, false}, {MCL__SM_FAIL, 12, true},
             {MCL__SM_SFAIL, 12, true}};
    CU_ASSERT_EQUAL(sizeof(t) / sizeof(t[0]), NONEWAY);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        // A valid message of the type; cut inside its header, or (fixed sizes) a byte too many.
        const smsg_vec *v = NULL;
        for (size_t k = 0; k < NVECS && v == NULL; k++)
            if (vecs[k].m.type == t[i].type)
                v = &vecs[k];
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        uint8_t b[128];
        size_t n = unhex(v->hex, b), size = t[i].size;
        CU_ASSERT(t[i].var ? n >= size : n == size);
        b[n] = 0;
        mcl__smsg m;
        char why[128], says[64];
        MCLT_OK(mcl__smsg_decode(t[i].type, b, n, v->entities, &m, why, sizeof(why)));
        snprintf(says, sizeof(says), "of %zu bytes (expected %s%zu)", size - 1,
                 t[i].var ? "at least " : "", size);
        MCLT_ERR(mcl__smsg_decode(t[i].type, b, size - 1, false, &m, why, sizeof(why)), MCL_EPROTO);
        if (strstr(why, says) == NULL)
            fprintf(stderr, "\n  type %d: '%s' (expected '%s')\n", t[i].type, why, says);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, says));
        MCLT_ERR(mcl__smsg_decode(t[i].type, b, 0, false, &m, why, sizeof(why)), MCL_EPROTO);
        if (!t[i].var) {
            snprintf(says, sizeof(says), "of %zu bytes (expected %zu)", size + 1, size);
            MCLT_ERR(mcl__smsg_decode(t[i].type, b, size + 1, false, &m, why, sizeof(why)),
                     MCL_EPROTO);
            CU_ASSERT_PTR_NOT_NULL(strstr(why, says));
        }
    }
    int unknown[] = {0, MCL__SM_OPEN, MCL__SM_LIST, MCL__SM_READ - 1, MCL__SM_SFAIL + 1, 255, -1};
    uint8_t b[64] = {0};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        mcl__smsg m;
        char why[128];
        MCLT_ERR(mcl__smsg_decode(unknown[i], b, sizeof(b), false, &m, why, sizeof(why)),
                 MCL_EPROTO);
        if (strstr(why, "unknown stream message type") == NULL)
            fprintf(stderr, "\n  type %d: '%s'\n", unknown[i], why);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown stream message type"));
    }
}

static void
test_refuses_bad_fields(void)
{
    // The push header after sid and ctx: flags, 3 reserved, nunits, pushno, offset.
#define PH(flags, nunits) flags " 000000 " nunits " 0000000000000000 0000000000000000 "
    static const struct {
        int type;
        bool entities;
        const char *hex, *says;
    } bad[] = {
        {MCL__SM_READ, false,
         "00000001 00000002 00 01 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: whence 0"},
        {MCL__SM_READ, false,
         "00000001 00000002 04 01 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: whence 4"},
        {MCL__SM_READ, false,
         "00000001 00000002 06 01 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: whence 6"},
        {MCL__SM_READ, false,
         "00000001 00000002 ff 01 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: whence 255"},
        {MCL__SM_WRITE, false, "00000001 00000002 00 00 0000 0000000000000000", "WRITE: whence 0"},
        {MCL__SM_WRITE, false, "00000001 00000002 04 00 0000 0000000000000000", "WRITE: whence 4"},
        {MCL__SM_WRITE, false, "00000001 00000002 06 00 0000 0000000000000000", "WRITE: whence 6"},
        {MCL__SM_READ, false,
         "00000001 00000002 01 02 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: bad end-of-stream policy"},
        {MCL__SM_READ, false,
         "00000001 00000002 01 00 0100 0000000000000005 0000000000000064 0000000000000003",
         "READ: bad end-of-stream policy or reserved bytes"},
        {MCL__SM_READ, false,
         "00000001 00000002 01 00 0001 0000000000000005 0000000000000064 0000000000000003",
         "READ: bad end-of-stream policy or reserved bytes"},
        {MCL__SM_WRITE, false, "00000001 00000002 01 01 0000 0000000000000000",
         "WRITE: bad end-of-stream policy"},
        {MCL__SM_WRITE, false, "00000001 00000002 01 00 0001 0000000000000000",
         "WRITE: bad end-of-stream policy or reserved bytes"},
        {MCL__SM_READ, false,
         "00000001 00000000 01 01 0000 0000000000000005 0000000000000064 0000000000000003",
         "READ: context 0"},
        {MCL__SM_WRITE, false, "00000001 00000000 01 00 0000 0000000000000000", "WRITE: context 0"},
        {MCL__SM_WLIMIT, false,
         "00000001 00000002 00000000 0000000000000007 0000000000000001 0000000000000008",
         "WLIMIT: 8 units written beyond the limit 7"},
        {MCL__SM_WLIMIT, false,
         "00000001 00000002 00000000 0000000000000000 0000000000000001 ffffffffffffffff",
         "beyond the limit 0"},
        // Push flags and reserved bytes.
        {MCL__SM_PUSH, false,
         "00000001 00000002 02 000000 00000001 0000000000000000 0000000000000000 61",
         "PUSH: flags 0x02 or reserved bytes set"},
        {MCL__SM_PUSH, false,
         "00000001 00000002 80 000000 00000001 0000000000000000 0000000000000000 61",
         "PUSH: flags 0x80"},
        {MCL__SM_PUSH, false,
         "00000001 00000002 00 010000 00000001 0000000000000000 0000000000000000 61",
         "PUSH: flags 0x00 or reserved bytes set"},
        {MCL__SM_PUSH, false,
         "00000001 00000002 01 000001 00000001 0000000000000000 0000000000000000 61",
         "PUSH: flags 0x01 or reserved bytes set"},
        {MCL__SM_WPUSH, false,
         "00000001 00000002 03 000000 00000001 0000000000000000 0000000000000000 61",
         "WPUSH: flags 0x03"},
        {MCL__SM_WPUSH, false,
         "00000001 00000002 01 000000 00000001 0000000000000000 0000000000000000 61",
         "WPUSH: end-of-stream flag"},
        // Empty pushes need end-of-stream (and WPUSH has none).
        {MCL__SM_PUSH, false, "00000001 00000002 " PH("00", "00000000"),
         "PUSH: an empty push without end-of-stream"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000000"),
         "PUSH: an empty push without end-of-stream"},
        {MCL__SM_WPUSH, false, "00000001 00000002 " PH("00", "00000000"),
         "WPUSH: an empty push without end-of-stream"},
        // A byte push's unit count is its length.
        {MCL__SM_PUSH, false, "00000001 00000002 " PH("00", "00000003") "6162",
         "PUSH: 3 bytes said, 2 carried"},
        {MCL__SM_PUSH, false, "00000001 00000002 " PH("00", "00000001") "6162",
         "PUSH: 1 bytes said, 2 carried"},
        {MCL__SM_PUSH, false, "00000001 00000002 " PH("01", "00000000") "61",
         "PUSH: 0 bytes said, 1 carried"},
        {MCL__SM_WPUSH, false, "00000001 00000002 " PH("00", "ffffffff") "61",
         "WPUSH: 4294967295 bytes said, 1 carried"},
        // Entity framing.
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000001") "00000000",
         "PUSH: element 0 of 0 bytes in 0 left"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000002") "00000001 61 00000000",
         "PUSH: element 1 of 0 bytes in 0 left"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000001") "00000005 6162",
         "PUSH: element 0 of 5 bytes in 2 left"},
        {MCL__SM_WPUSH, true, "00000001 00000002 " PH("00", "00000001") "ffffffff 6162",
         "WPUSH: element 0 of 4294967295 bytes in 2 left"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000001") "00000001 61 62",
         "PUSH: 1 bytes after its 1 elements"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("01", "00000000") "00000001 61",
         "PUSH: 5 bytes after its 0 elements"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000002") "00000001 61 000000",
         "PUSH: element 1 of 2 cut short"},
        {MCL__SM_PUSH, true, "00000001 00000002 " PH("00", "00000001") "000001",
         "PUSH: element 0 of 1 cut short"},
        {MCL__SM_WPUSH, true, "00000001 00000002 " PH("00", "ffffffff") "00000001 61",
         "WPUSH: element 1 of 4294967295 cut short"},
        // POS bounds.
        {MCL__SM_POS, false, "00000001 00000002 0000000000000004 0000000000000005 000000000000000a",
         "POS: position 4 outside [5, 10]"},
        {MCL__SM_POS, false, "00000001 00000002 000000000000000b 0000000000000005 000000000000000a",
         "POS: position 11 outside [5, 10]"},
        {MCL__SM_POS, false, "00000001 00000002 0000000000000005 0000000000000006 0000000000000004",
         "POS: position 5 outside [6, 4]"},
        // CTXERR and FAIL: codes and texts.
        {MCL__SM_CTXERR, false, "00000001 00000002 0003 0000", "CTXERR: code 3"},
        {MCL__SM_CTXERR, false, "00000001 00000002 0000 0000", "CTXERR: code 0"},
        {MCL__SM_CTXERR, false, "00000001 00000002 ffff 0002 6869", "CTXERR: code 65535"},
        {MCL__SM_FAIL, false, "00000001 00000002 0001 0000", "FAIL: code 1"},
        {MCL__SM_SFAIL, false, "00000001 00000000 0002 0000", ": code 2"},
        {MCL__SM_SFAIL, false, "00000001 00000000 0000 0002 6100", "SFAIL: a text of 2 bytes said"},
        {MCL__SM_SFAIL, false, "00000001 00000000 0000 0003 6162",
         "SFAIL: a text of 3 bytes said, 2"},
        {MCL__SM_CTXERR, false, "00000001 00000002 0001 0002 c328",
         "CTXERR: a text of 2 bytes said, 2 carried, or not UTF-8"},
        {MCL__SM_CTXERR, false, "00000001 00000002 0001 0002 6100",
         "CTXERR: a text of 2 bytes said, 2 carried, or not UTF-8"},
        {MCL__SM_FAIL, false, "00000001 00000002 0000 0001 ff", "FAIL: a text of 1 bytes said"},
        {MCL__SM_CTXERR, false, "00000001 00000002 0001 0005 616263",
         "CTXERR: a text of 5 bytes said, 3 carried"},
        {MCL__SM_CTXERR, false, "00000001 00000002 0001 0001 616263",
         "CTXERR: a text of 1 bytes said, 3 carried"},
        {MCL__SM_FAIL, false, "00000001 00000002 0000 0000 61", "FAIL: a text of 0 bytes said, 1"},
        {MCL__SM_FAIL, false, "00000001 00000002 0000 ffff", "FAIL: a text of 65535 bytes said, 0"},
        // Context ids.
        {MCL__SM_CLOSE, false, "00000001 00000001", "CLOSE: context 1"},
        {MCL__SM_CLOSED, false, "00000001 ffffffff", "CLOSED: context 4294967295"},
        {MCL__SM_TRUNC, false, "00000001 00000000 0000000000000020", "TRUNC: context 0"},
    };
#undef PH
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[128];
        size_t n = unhex(bad[i].hex, b);
        uint8_t *p = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, b, n);
        mcl__smsg m;
        char why[128] = "";
        mcl_err rv = mcl__smsg_decode(bad[i].type, p, n, bad[i].entities, &m, why, sizeof(why));
        if (rv != MCL_EPROTO || strstr(why, bad[i].says) == NULL)
            fprintf(stderr, "\n  case %zu: %s '%s' (expected '%s')\n", i, mcl_err_name(rv), why,
                    bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, bad[i].says));
        free(p);
    }
    // A text of 1024 bytes is the most; 1025 is refused even when valid UTF-8 and counted right.
    uint8_t b[12 + 1025];
    memset(b, 'a', sizeof(b));
    mcl__smsg m = {.type = MCL__SM_CTXERR,
                   .sid = 1,
                   .ctx = 2,
                   .code = MCL__SW_GENERAL,
                   .textlen = MCL__SW_TEXT_MAX};
    CU_ASSERT_EQUAL(mcl__smsg_encode(&m, b), 12);
    char why[128];
    MCLT_OK(mcl__smsg_decode(MCL__SM_CTXERR, b, 12 + 1024, false, &m, why, sizeof(why)));
    CU_ASSERT_EQUAL(m.textlen, 1024);
    m.type = MCL__SM_FAIL;
    m.code = 0;
    m.textlen = MCL__SW_TEXT_MAX + 1;
    CU_ASSERT_EQUAL(mcl__smsg_encode(&m, b), 12);
    MCLT_ERR(mcl__smsg_decode(MCL__SM_FAIL, b, sizeof(b), false, &m, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "a text of 1025 bytes said, 1025 carried, or not UTF-8"));
    // A reason cut to fit a small buffer, and no buffer at all.
    char small[8];
    uint8_t c[8] = {0, 0, 0, 1, 0, 0, 0, 1};
    MCLT_ERR(mcl__smsg_decode(MCL__SM_CLOSE, c, 8, false, &m, small, sizeof(small)), MCL_EPROTO);
    CU_ASSERT_STRING_EQUAL(small, "CLOSE: ");
    MCLT_ERR(mcl__smsg_decode(MCL__SM_CLOSE, c, 8, false, &m, NULL, 0), MCL_EPROTO);
}

// --- OPEN ----------------------------------------------------------------------------------------

static void
same_sopen(const mcl__sopen *a, const mcl__sopen *b, bool answer)
{
    CU_ASSERT_EQUAL(a->sid, b->sid);
    CU_ASSERT_EQUAL(a->mode, b->mode);
    CU_ASSERT_EQUAL(a->window, b->window);
    CU_ASSERT_EQUAL(a->max_pushes, b->max_pushes);
    CU_ASSERT_EQUAL(a->max_push, b->max_push);
    if (answer) {
        CU_ASSERT_EQUAL(a->kind, b->kind);
        CU_ASSERT_EQUAL(a->start, b->start);
        CU_ASSERT_EQUAL(a->end, b->end);
        CU_ASSERT_EQUAL_FATAL(a->infolen, b->infolen);
        CU_ASSERT(a->infolen == 0 || memcmp(a->info, b->info, a->infolen) == 0);
    } else {
        CU_ASSERT_EQUAL_FATAL(a->namelen, b->namelen);
        CU_ASSERT(a->namelen == 0 || memcmp(a->name, b->name, a->namelen) == 0);
        CU_ASSERT_EQUAL_FATAL(a->paramslen, b->paramslen);
        CU_ASSERT(a->paramslen == 0 || memcmp(a->params, b->params, a->paramslen) == 0);
    }
}

static const struct {
    const char *hex;
    mcl__sopen o;
} open_reqs[] = {
    // sid 1, mode READABLE, window 64k, 4 pushes of at most 32k, "log", "a=1".
    {"00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 0003 613d31",
     {.sid = 1,
      .mode = 1,
      .window = 0x10000,
      .max_pushes = 4,
      .max_push = 0x8000,
      .name = (const uint8_t *)"log",
      .namelen = 3,
      .params = (const uint8_t *)"a=1",
      .paramslen = 3}},
    // No mode required, no params, a UTF-8 name.
    {"ffffffff 0000 0000 ffffffffffffffff ffffffff 00000001 0004 6361c3a9 0000",
     {.sid = 0xffffffff,
      .window = UINT64_MAX,
      .max_pushes = 0xffffffff,
      .max_push = 1,
      .name = (const uint8_t *)"ca\xc3\xa9",
      .namelen = 4}},
};

static const struct {
    const char *hex;
    mcl__sopen o;
} open_answers[] = {
    // Entities, mode 0x35 (readable, seek forward, bounded start and end), [0, unbounded], "{}".
    {"00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
     "0002 7b7d",
     {.sid = 1,
      .kind = 2,
      .mode = 0x35,
      .window = 0x8000,
      .max_pushes = 4,
      .max_push = 0x1000,
      .end = UINT64_MAX,
      .info = (const uint8_t *)"{}",
      .infolen = 2}},
    // Bytes, writable only, the smallest push, start = end, no description.
    {"00000002 01 00 0002 0000000000000001 00000001 00000040 0000000000000007 0000000000000007 "
     "0000",
     {.sid = 2,
      .kind = 1,
      .mode = 2,
      .window = 1,
      .max_pushes = 1,
      .max_push = 64,
      .start = 7,
      .end = 7}},
};

static void
test_open_vectors(void)
{
    char why[128];
    for (size_t i = 0; i < sizeof(open_reqs) / sizeof(open_reqs[0]); i++) {
        uint8_t want[256], got[256];
        size_t n = unhex(open_reqs[i].hex, want);
        CU_ASSERT_EQUAL(mcl__sopen_encode_req(&open_reqs[i].o, got, sizeof(got)), n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        CU_ASSERT_EQUAL(mcl__sopen_encode_req(&open_reqs[i].o, got, n), n); // exactly fits
        CU_ASSERT_EQUAL(mcl__sopen_encode_req(&open_reqs[i].o, got, n - 1), 0);
        uint8_t *p = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, want, n);
        mcl__sopen o;
        MCLT_OK(mcl__sopen_decode_req(p, n, &o, why, sizeof(why)));
        same_sopen(&o, &open_reqs[i].o, false);
        CU_ASSERT(o.name >= p && o.name + o.namelen <= p + n);
        CU_ASSERT(o.params >= p && o.params + o.paramslen <= p + n);
        // What decodes writes back the same bytes.
        CU_ASSERT_EQUAL(mcl__sopen_encode_req(&o, got, sizeof(got)), n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        free(p);
    }
    for (size_t i = 0; i < sizeof(open_answers) / sizeof(open_answers[0]); i++) {
        uint8_t want[256], got[256];
        size_t n = unhex(open_answers[i].hex, want);
        CU_ASSERT_EQUAL(mcl__sopen_encode_ans(&open_answers[i].o, got, sizeof(got)), n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        CU_ASSERT_EQUAL(mcl__sopen_encode_ans(&open_answers[i].o, got, n), n);
        CU_ASSERT_EQUAL(mcl__sopen_encode_ans(&open_answers[i].o, got, n - 1), 0);
        uint8_t *p = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, want, n);
        mcl__sopen o;
        MCLT_OK(mcl__sopen_decode_ans(p, n, &o, why, sizeof(why)));
        same_sopen(&o, &open_answers[i].o, true);
        CU_ASSERT(o.info >= p && o.info + o.infolen <= p + n);
        CU_ASSERT_EQUAL(mcl__sopen_encode_ans(&o, got, sizeof(got)), n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        free(p);
    }
    // Texts at their limits: a name and params of 1024 bytes, a description of 8192.
    static uint8_t big[MCL__SW_INFO_MAX + 64], text[MCL__SW_INFO_MAX + 1];
    memset(text, 'x', sizeof(text));
    mcl__sopen r = {.sid = 3,
                    .window = 1,
                    .max_pushes = 1,
                    .max_push = 1,
                    .name = text,
                    .namelen = MCL__SW_TEXT_MAX,
                    .params = text,
                    .paramslen = MCL__SW_TEXT_MAX};
    size_t n = mcl__sopen_encode_req(&r, big, sizeof(big));
    CU_ASSERT_EQUAL(n, 24 + 2 + 1024 + 2 + 1024);
    mcl__sopen o;
    MCLT_OK(mcl__sopen_decode_req(big, n, &o, why, sizeof(why)));
    same_sopen(&o, &r, false);
    r.namelen++;
    n = mcl__sopen_encode_req(&r, big, sizeof(big));
    MCLT_ERR(mcl__sopen_decode_req(big, n, &o, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "its name is not UTF-8 text of at most 1024 bytes"));
    r.namelen--;
    r.paramslen++;
    n = mcl__sopen_encode_req(&r, big, sizeof(big));
    MCLT_ERR(mcl__sopen_decode_req(big, n, &o, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "its params is not UTF-8 text of at most 1024 bytes"));
    mcl__sopen a = {.sid = 3,
                    .kind = 1,
                    .mode = 1,
                    .window = 1,
                    .max_pushes = 1,
                    .max_push = 64,
                    .info = text,
                    .infolen = MCL__SW_INFO_MAX};
    n = mcl__sopen_encode_ans(&a, big, sizeof(big));
    CU_ASSERT_EQUAL(n, 42 + 8192);
    MCLT_OK(mcl__sopen_decode_ans(big, n, &o, why, sizeof(why)));
    same_sopen(&o, &a, true);
    a.infolen++;
    n = mcl__sopen_encode_ans(&a, big, sizeof(big));
    MCLT_ERR(mcl__sopen_decode_ans(big, n, &o, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "its info is not UTF-8 text of at most 8192 bytes"));
}

static void
test_open_refuses_bad_fields(void)
{
    static const struct {
        bool answer;
        const char *hex, *says;
    } bad[] = {
        {false, "", "OPEN: 0 bytes"},
        {false, "00000001 0001 0000 0000000000010000 00000004 000080", "OPEN: 23 bytes"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000",
         "cut short before its name"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67",
         "cut short before its params"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 00",
         "cut short before its params"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0009 6c6f67",
         "OPEN: name of 9 bytes in 3"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 0002 61",
         "OPEN: params of 2 bytes in 1"},
        {false, "00000000 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 0000",
         "stream id, name, window, pushes or push size 0"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0000 0000",
         "stream id, name, window, pushes or push size 0"},
        {false, "00000001 0001 0000 0000000000000000 00000004 00008000 0003 6c6f67 0000",
         "stream id, name, window, pushes or push size 0"},
        {false, "00000001 0001 0000 0000000000010000 00000000 00008000 0003 6c6f67 0000",
         "stream id, name, window, pushes or push size 0"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00000000 0003 6c6f67 0000",
         "stream id, name, window, pushes or push size 0"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 0000 00",
         "OPEN: 1 bytes after its fields"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0003 6c6f67 0000 0000",
         "OPEN: 2 bytes after its fields"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0002 c328 0000",
         "OPEN: its name is not UTF-8"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0002 6100 0000",
         "OPEN: its name is not UTF-8"},
        {false, "00000001 0001 0000 0000000000010000 00000004 00008000 0001 61 0003 eda080",
         "OPEN: its params is not UTF-8"},
        {false, "00000001 0001 0001 0000000000010000 00000004 00008000 0003 6c6f67 0000",
         "OPEN: reserved bytes set"},
        {false, "00000001 0001 8000 0000000000010000 00000004 00008000 0003 6c6f67 0000",
         "OPEN: reserved bytes set"},
        // Answers.
        {true, "", "OPEN answer: 0 bytes"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "00",
         "OPEN answer: 41 bytes"},
        {true,
         "00000001 03 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "kind 3, limits"},
        {true,
         "00000001 00 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "kind 0, limits"},
        {true, // stream id 0
         "00000000 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "OPEN answer: stream id, kind 2"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 0000003f 0000000000000000 ffffffffffffffff "
         "0000",
         "limits or mode 0x35 out of range"},
        {true,
         "00000001 02 00 0035 0000000000000000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "limits or mode 0x35 out of range"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000000 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "limits or mode 0x35 out of range"},
        {true,
         "00000001 02 00 0000 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "limits or mode 0x0 out of range"},
        {true,
         "00000001 02 00 0034 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "limits or mode 0x34 out of range"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000008 0000000000000007 "
         "0000",
         "limits or mode 0x35 out of range"},
        {true,
         "00000001 02 01 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000",
         "OPEN answer: trailing or reserved bytes"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0000 00",
         "OPEN answer: trailing or reserved bytes"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0003 7b7d",
         "OPEN: info of 3 bytes in 2"},
        {true,
         "00000001 02 00 0035 0000000000008000 00000004 00001000 0000000000000000 ffffffffffffffff "
         "0002 c0af",
         "its info is not UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[128];
        size_t n = unhex(bad[i].hex, b);
        uint8_t *p = malloc(n ? n : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, b, n);
        mcl__sopen o;
        char why[128] = "";
        mcl_err rv = bad[i].answer ? mcl__sopen_decode_ans(p, n, &o, why, sizeof(why))
                                   : mcl__sopen_decode_req(p, n, &o, why, sizeof(why));
        if (rv != MCL_EPROTO || strstr(why, bad[i].says) == NULL)
            fprintf(stderr, "\n  case %zu: %s '%s' (expected '%s')\n", i, mcl_err_name(rv), why,
                    bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, bad[i].says));
        free(p);
    }
}

// --- LIST ----------------------------------------------------------------------------------------

typedef struct list_seen {
    int n;
    char name[4][MCL__SW_TEXT_MAX + 1];
    char info[4][MCL__SW_INFO_MAX + 1];
} list_seen;

static void
list_cb(void *user, const char *name, const char *info)
{
    list_seen *s = user;
    if (s->n < 4) {
        snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
        snprintf(s->info[s->n], sizeof(s->info[0]), "%s", info);
    }
    s->n++;
}

static void
test_list(void)
{
    static list_seen s;
    uint8_t b[256];
    char why[128];
    size_t n = unhex("0003 6c6f67 0009 7b2262223a20317d 0a 0001 62 0000 0002 c3a9 0001 78", b);
    uint8_t *p = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    memcpy(p, b, n);
    memset(&s, 0, sizeof(s));
    MCLT_OK(mcl__slist_decode(p, n, list_cb, &s, why, sizeof(why)));
    CU_ASSERT_EQUAL_FATAL(s.n, 3);
    CU_ASSERT_STRING_EQUAL(s.name[0], "log");
    CU_ASSERT_STRING_EQUAL(s.info[0], "{\"b\": 1}\n");
    CU_ASSERT_STRING_EQUAL(s.name[1], "b");
    CU_ASSERT_STRING_EQUAL(s.info[1], "");
    CU_ASSERT_STRING_EQUAL(s.name[2], "\xc3\xa9");
    CU_ASSERT_STRING_EQUAL(s.info[2], "x");
    MCLT_OK(mcl__slist_decode(p, n, NULL, NULL, why, sizeof(why))); // checked without a callback
    free(p);
    // Lengths are checked against n, not against what happens to follow in memory.
    n = unhex("0003 616263 0001 78", b);
    for (size_t cut = 1; cut < n; cut++) {
        memset(&s, 0, sizeof(s));
        MCLT_ERR(mcl__slist_decode(b, cut, list_cb, &s, why, sizeof(why)), MCL_EPROTO);
        CU_ASSERT_EQUAL(s.n, 0);
    }
    MCLT_OK(mcl__slist_decode(b, n, list_cb, &s, why, sizeof(why)));
    CU_ASSERT_EQUAL(s.n, 1);
    // No sources at all.
    memset(&s, 0, sizeof(s));
    MCLT_OK(mcl__slist_decode(b, 0, list_cb, &s, why, sizeof(why)));
    CU_ASSERT_EQUAL(s.n, 0);
    // A name of 1024 bytes and a description of 8192: the most.
    static uint8_t big[4 + MCL__SW_TEXT_MAX + MCL__SW_INFO_MAX + 1];
    memset(big, 'n', sizeof(big));
    big[0] = 0x04, big[1] = 0x00;
    big[2 + 1024] = 0x20, big[3 + 1024] = 0x00;
    memset(&s, 0, sizeof(s));
    MCLT_OK(mcl__slist_decode(big, 4 + 1024 + 8192, list_cb, &s, why, sizeof(why)));
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(strlen(s.name[0]), 1024);
    CU_ASSERT_EQUAL(strlen(s.info[0]), 8192);
    big[2 + 1024] = 0x20, big[3 + 1024] = 0x01; // 8193
    MCLT_ERR(mcl__slist_decode(big, sizeof(big), list_cb, &s, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "a description that is not UTF-8 text of 1..8192 bytes"));
    big[0] = 0x04, big[1] = 0x01;               // a name of 1025
    big[2 + 1025] = 0x00, big[3 + 1025] = 0x00; // never read: the name is refused first
    MCLT_ERR(mcl__slist_decode(big, 4 + 1025, list_cb, &s, why, sizeof(why)), MCL_EPROTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "a name that is not UTF-8 text of 1..1024 bytes"));

    static const struct {
        const char *hex, *says;
        int before; // entries delivered before the refusal
    } bad[] = {
        {"0000 0000", "LIST: a name that is not UTF-8 text of 1..1024 bytes", 0},
        {"0001 61 0000 0000 0000", "LIST: a name that is not UTF-8", 1},
        {"00", "LIST: cut short", 0},
        {"0001 61", "LIST: cut short", 0},
        {"0001 61 00", "LIST: cut short", 0},
        {"0001 61 0000 00", "LIST: cut short", 1},
        {"0003 6162", "LIST: a name that is not UTF-8", 0},
        {"0001 61 0003 6162", "LIST: a description that is not UTF-8", 0},
        {"0001 ff 0000", "LIST: a name that is not UTF-8", 0},
        {"0001 00 0000", "LIST: a name that is not UTF-8", 0},
        {"0001 61 0002 c328", "LIST: a description that is not UTF-8", 0},
        {"0001 61 0001 00", "LIST: a description that is not UTF-8", 0},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = unhex(bad[i].hex, b);
        p = malloc(n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, b, n);
        memset(&s, 0, sizeof(s));
        char w[128] = "";
        mcl_err rv = mcl__slist_decode(p, n, list_cb, &s, w, sizeof(w));
        if (rv != MCL_EPROTO || strstr(w, bad[i].says) == NULL)
            fprintf(stderr, "\n  case %zu: %s '%s' (expected '%s')\n", i, mcl_err_name(rv), w,
                    bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(w, bad[i].says));
        CU_ASSERT_EQUAL(s.n, bad[i].before);
        free(p);
    }
}

// --- hostile input -------------------------------------------------------------------------------

typedef struct list_check {
    const uint8_t *p;
    size_t n, off;
    bool same;
} list_check;

// Each entry as it came: the LIST bytes say exactly these names and descriptions in order.
static void
list_check_cb(void *user, const char *name, const char *info)
{
    list_check *c = user;
    const char *t[2] = {name, info};
    for (int k = 0; k < 2; k++) {
        size_t l = strlen(t[k]);
        if (c->n - c->off < 2 + l || ((size_t)c->p[c->off] << 8 | c->p[c->off + 1]) != l ||
            memcmp(c->p + c->off + 2, t[k], l) != 0) {
            c->same = false;
            return;
        }
        c->off += 2 + l;
    }
}

// Random bytes and mutations of valid messages, for every type: refused with a reason or
// decoded, never a crash, nothing pointing outside the input, and what decodes encodes back
// to the same bytes (every message has one encoding).
static void
test_hostile_bytes(void)
{
    // One-way messages READ..SFAIL, then OPEN, its answer, LIST, and any type at all.
    enum { OPEN_REQ = NONEWAY, OPEN_ANS, LIST, ANY };
    static const char list_hex[] = "0003 6c6f67 0002 7b7d 0001 62 0000";
    uint64_t seed = 7;
    static uint8_t buf[600], again[700];
    int decoded[ANY + 1] = {0};
    for (int round = 0; round < 300000; round++) {
        int sel = (int)(mclt_rand(&seed) % (ANY + 1));
        int type = sel < NONEWAY ? MCL__SM_READ + sel
                   : sel == ANY  ? (int)(mclt_rand(&seed) % 30)
                                 : 0;
        bool entities = mclt_rand(&seed) & 1;
        size_t n;
        if (round % 3 == 0 && sel != ANY) { // a valid message of the kind, a byte or two changed
            if (sel == OPEN_REQ) {
                n = unhex(open_reqs[mclt_rand(&seed) % 2].hex, buf);
            } else if (sel == OPEN_ANS) {
                n = unhex(open_answers[mclt_rand(&seed) % 2].hex, buf);
            } else if (sel == LIST) {
                n = unhex(list_hex, buf);
            } else {
                const smsg_vec *v;
                do
                    v = &vecs[mclt_rand(&seed) % NVECS];
                while (v->m.type != type);
                n = unhex(v->hex, buf);
            }
            buf[mclt_rand(&seed) % n] ^= (uint8_t)(1 + mclt_rand(&seed) % 255);
            if (mclt_rand(&seed) % 2)
                buf[mclt_rand(&seed) % n] = (uint8_t)mclt_rand(&seed);
            if (mclt_rand(&seed) % 4 == 0)
                n -= mclt_rand(&seed) % n;
        } else {
            n = (size_t)(mclt_rand(&seed) % (round % 2 ? 64 : sizeof(buf)));
            for (size_t i = 0; i < n; i++)
                buf[i] =
                    (uint8_t)(mclt_rand(&seed) % 4 == 0 ? mclt_rand(&seed) % 4 : mclt_rand(&seed));
        }
        uint8_t *p = malloc(n ? n : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, buf, n);
        char why[128];
        mcl_err rv;
        if (sel < NONEWAY || sel == ANY) {
            mcl__smsg m;
            rv = mcl__smsg_decode(type, p, n, entities, &m, why, sizeof(why));
            if (rv == MCL_OK) {
                CU_ASSERT(m.type == type);
                CU_ASSERT(m.len == 0 || (m.data >= p && m.data + m.len == p + n));
                CU_ASSERT(m.textlen == 0 || (m.text >= p && m.text + m.textlen == p + n));
                size_t k = encode(&m, again);
                CU_ASSERT(k == n && memcmp(again, p, n) == 0);
                if (entities && (type == MCL__SM_PUSH || type == MCL__SM_WPUSH)) {
                    size_t off = 0;
                    for (uint32_t i = 0; i < m.nunits; i++) {
                        size_t el;
                        const uint8_t *e = mcl__spush_elem(m.data, &off, &el);
                        CU_ASSERT(el > 0 && e >= m.data && e + el <= m.data + m.len);
                    }
                    CU_ASSERT(off == m.len);
                }
            }
        } else if (sel == OPEN_REQ || sel == OPEN_ANS) {
            mcl__sopen o;
            rv = sel == OPEN_REQ ? mcl__sopen_decode_req(p, n, &o, why, sizeof(why))
                                 : mcl__sopen_decode_ans(p, n, &o, why, sizeof(why));
            if (rv == MCL_OK) {
                size_t k = sel == OPEN_REQ ? mcl__sopen_encode_req(&o, again, sizeof(again))
                                           : mcl__sopen_encode_ans(&o, again, sizeof(again));
                CU_ASSERT(k == n && memcmp(again, p, n) == 0);
            }
        } else {
            list_check c = {p, n, 0, true};
            rv = mcl__slist_decode(p, n, list_check_cb, &c, why, sizeof(why));
            CU_ASSERT(c.same);
            if (rv == MCL_OK)
                CU_ASSERT(c.off == n);
        }
        CU_ASSERT(rv == MCL_OK || rv == MCL_EPROTO);
        if (rv != MCL_OK)
            CU_ASSERT(why[0] != '\0' && memchr(why, '\0', sizeof(why)) != NULL);
        decoded[sel] += rv == MCL_OK;
        free(p);
    }
    // The checks on what decodes ran for every kind (mutations keep many messages valid).
    for (int k = 0; k < ANY; k++) {
        if (decoded[k] < 100)
            fprintf(stderr, "\n  kind %d: %d decoded\n", k, decoded[k]);
        CU_ASSERT(decoded[k] >= 100);
    }
}

static CU_TestInfo tests[] = {{"vectors", test_vectors},
                              {"push_elements", test_push_elements},
                              {"wrong_lengths", test_wrong_lengths},
                              {"refuses_bad_fields", test_refuses_bad_fields},
                              {"open_vectors", test_open_vectors},
                              {"open_refuses_bad_fields", test_open_refuses_bad_fields},
                              {"list", test_list},
                              {"hostile_bytes", test_hostile_bytes},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("stream_wire", NULL, NULL, tests);
