// SPDX-License-Identifier: BSD-3-Clause
// Packet codecs byte for byte: the native format's vectors (docs/pstream-format.md), the
// captured bytes of Python's cs.packetstream (../shared/research/cs-packetstream-wire.md), and
// hostile input (every field checked, nothing read outside the packet).
#include "harness.h"
#include "pstream/pwire.h"

#include <stdlib.h>
#include <string.h>

// The bytes of k as its codec writes them (framing not included).
static size_t
encode(int codec, const mcl__pkt *k, uint8_t *out)
{
    uint8_t hdr[MCL__PW_HDR_MAX];
    struct iovec iov[4];
    unsigned n = 0;
    MCLT_OK(mcl__pkt_encode(codec, k, hdr, iov, &n));
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

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

// --- native --------------------------------------------------------------------------------------

typedef struct native_vec {
    const char *hex;
    mcl__pkt k;
} native_vec;

static const native_vec native[] = {
    // A request: channel 0, tag 2, type 1, flags 7, payload "hi".
    {"01 01 0000 00000000 00000002 00000001 00000007 0000 0000 6869",
     {.kind = MCL__PK_REQUEST,
      .tag = 2,
      .type = 1,
      .flags = 7,
      .payload = (const uint8_t *)"hi",
      .len = 2}},
    // Its answer on channel 3, tag 9: OK, flags 1, "ok".
    {"01 02 0000 00000003 00000009 00000000 00000001 0000 0000 6f6b",
     {.kind = MCL__PK_RESPONSE,
      .channel = 3,
      .tag = 9,
      .flags = 1,
      .payload = (const uint8_t *)"ok",
      .len = 2}},
    // A refusal: status 12 (UNIMPLEMENTED) with its message, no payload.
    {"01 02 000c 00000000 00000002 00000000 00000000 0012 0000 6e6f2072657175657374206861"
     "6e646c6572",
     {.kind = MCL__PK_RESPONSE,
      .status = 12,
      .tag = 2,
      .msg = (const uint8_t *)"no request handler",
      .msglen = 18}},
    // A status message and a payload together.
    {"01 02 0016 00000001 00000005 00000000 00000000 0003 0000 454f46 0102",
     {.kind = MCL__PK_RESPONSE,
      .status = 22,
      .channel = 1,
      .tag = 5,
      .msg = (const uint8_t *)"EOF",
      .msglen = 3,
      .payload = (const uint8_t *)"\x01\x02",
      .len = 2}},
    {"01 03 0000 00000003 00000009 00000000 00000000 0000 0000",
     {.kind = MCL__PK_CANCEL, .channel = 3, .tag = 9}},
    {"01 04 0000 00000000 00000000 00000000 00000000 0000 0000", {.kind = MCL__PK_ERQ}},
    {"01 05 0000 00000000 00000000 00000000 00000000 0000 0000", {.kind = MCL__PK_EOF}},
    {"01 06 0000 00000000 00000001 00000000 00000000 0000 0000 0000000000000539",
     {.kind = MCL__PK_PING,
      .tag = 1,
      .payload = (const uint8_t *)"\0\0\0\0\0\0\x05\x39",
      .len = 8}},
    {"01 07 0000 00000000 00000001 00000000 00000000 0000 0000", {.kind = MCL__PK_PONG, .tag = 1}},
    // A one-way message: channel 7, type 3, flags 2, payload "hi"; no tag.
    {"01 08 0000 00000007 00000000 00000003 00000002 0000 0000 6869",
     {.kind = MCL__PK_MESSAGE,
      .channel = 7,
      .type = 3,
      .flags = 2,
      .payload = (const uint8_t *)"hi",
      .len = 2}},
};

static void
same_pkt(const mcl__pkt *a, const mcl__pkt *b)
{
    CU_ASSERT_EQUAL(a->kind, b->kind);
    CU_ASSERT_EQUAL(a->status, b->status);
    CU_ASSERT_EQUAL(a->channel, b->channel);
    CU_ASSERT_EQUAL(a->tag, b->tag);
    CU_ASSERT_EQUAL(a->type, b->type);
    CU_ASSERT_EQUAL(a->flags, b->flags);
    CU_ASSERT_EQUAL_FATAL(a->msglen, b->msglen);
    CU_ASSERT(a->msglen == 0 || memcmp(a->msg, b->msg, a->msglen) == 0);
    CU_ASSERT_EQUAL_FATAL(a->len, b->len);
    CU_ASSERT(a->len == 0 || memcmp(a->payload, b->payload, a->len) == 0);
}

static void
test_native_vectors(void)
{
    for (size_t i = 0; i < sizeof(native) / sizeof(native[0]); i++) {
        uint8_t want[256], got[256];
        size_t n = unhex(native[i].hex, want);
        size_t m = encode(MCL__PS_NATIVE, &native[i].k, got);
        CU_ASSERT_EQUAL(m, n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        mcl__pkt k;
        char why[128];
        MCLT_OK(mcl__pkt_decode(MCL__PS_NATIVE, want, n, &k, why, sizeof(why)));
        same_pkt(&k, &native[i].k);
    }
}

static void
test_native_refuses_bad_fields(void)
{
    struct {
        const char *hex, *says;
    } bad[] = {
        {"", "header alone"},
        {"01 01 0000 00000000 00000002 00000001 00000007 0000", "header alone"},
        {"02 01 0000 00000000 00000002 00000001 00000007 0000 0000", "version 2"},
        {"01 00 0000 00000000 00000002 00000001 00000007 0000 0000", "unknown packet kind 0"},
        {"01 09 0000 00000000 00000002 00000001 00000007 0000 0000", "unknown packet kind 9"},
        {"01 08 0000 00000000 00000002 00000001 00000007 0000 0000", "message with a status or a tag"},
        {"01 08 0003 00000000 00000000 00000001 00000007 0000 0000", "message with a status or a tag"},
        {"01 01 0000 00000000 00000002 00000001 00000007 0000 0001", "reserved"},
        {"01 01 0005 00000000 00000002 00000001 00000007 0000 0000", "request with a status"},
        {"01 02 0000 00000000 00000002 00000001 00000000 0000 0000", "request type"},
        {"01 02 0000 00000000 00000002 00000000 00000000 0005 0000 6162", "status message of 5"},
        {"01 02 0001 00000000 00000002 00000000 00000000 0002 0000 c328", "not UTF-8"},
        {"01 02 0001 00000000 00000002 00000000 00000000 0002 0000 6100", "not UTF-8"},
        {"01 03 0000 00000003 00000009 00000000 00000001 0000 0000", "cancel"},
        {"01 03 0000 00000003 00000009 00000000 00000000 0000 0000 00", "cancel"},
        {"01 04 0000 00000000 00000001 00000000 00000000 0000 0000", "ERQ"},
        {"01 05 0000 00000000 00000000 00000000 00000000 0000 0000 00", "EOF"},
        {"01 06 0000 00000001 00000001 00000000 00000000 0000 0000", "ping"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[128];
        size_t n = unhex(bad[i].hex, b);
        mcl__pkt k;
        char why[128] = "";
        mcl_err rv = mcl__pkt_decode(MCL__PS_NATIVE, b, n, &k, why, sizeof(why));
        if (rv != MCL_EPROTO || strstr(why, bad[i].says) == NULL)
            fprintf(stderr, "\n  case %zu: %s '%s' (expected '%s')\n", i, mcl_err_name(rv), why,
                    bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, bad[i].says));
    }
    // A ping of 65 bytes: too large to echo.
    uint8_t p[MCL__PW_HDR + 65] = {1, 6};
    mcl__pkt k;
    char why[128];
    MCLT_ERR(mcl__pkt_decode(MCL__PS_NATIVE, p, sizeof(p), &k, why, sizeof(why)), MCL_EPROTO);
}

// --- cs.packetstream -----------------------------------------------------------------------------

static void
test_bsuint_table(void)
{
    struct {
        uint64_t v;
        const char *hex;
    } t[] = {{0, "00"},          {1, "01"},
             {127, "7f"},        {128, "8100"},
             {255, "817f"},      {300, "822c"},
             {16383, "ff7f"},    {16384, "818000"},
             {102400, "86a000"}, {UINT64_MAX, "81ffffffffffffffff7f"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t want[16], got[16];
        size_t n = unhex(t[i].hex, want);
        CU_ASSERT_EQUAL(mcl__bsuint_put(got, t[i].v), n);
        CU_ASSERT(memcmp(got, want, n) == 0);
        uint64_t v;
        size_t used;
        MCLT_OK(mcl__bsuint_get(want, n, &v, &used));
        CU_ASSERT_EQUAL(v, t[i].v);
        CU_ASSERT_EQUAL(used, n);
        MCLT_ERR(mcl__bsuint_get(want, n - 1, &v, &used), n > 1 ? MCL_EAGAIN : MCL_EAGAIN);
    }
    // Non-minimal forms are accepted (a tag sent as 80 07 is 7); longer than 64 bits is not.
    uint8_t b[20];
    uint64_t v;
    size_t used;
    size_t n = unhex("8007", b);
    MCLT_OK(mcl__bsuint_get(b, n, &v, &used));
    CU_ASSERT_EQUAL(v, 7);
    n = unhex("828080808080808080807f", b);
    MCLT_ERR(mcl__bsuint_get(b, n, &v, &used), MCL_EPROTO);
    memset(b, 0x80, sizeof(b));
    MCLT_ERR(mcl__bsuint_get(b, sizeof(b), &v, &used), MCL_EPROTO);
}

// The captured packets (with their BSUInt length prefix), what they mean, and that this codec
// writes them back byte for byte.
typedef struct cs_vec {
    const char *hex; // the frame: length, then the body
    size_t extra;    // payload bytes after hex: `extra` bytes of fill (0x61)
    mcl__pkt k;
} cs_vec;

static const cs_vec cs[] = {
    {"03 02 02 01", 0, {.kind = MCL__PK_REQUEST, .tag = 2, .type = 0}},
    {"04 03 06 02 7f",
     0,
     {.kind = MCL__PK_REQUEST,
      .tag = 3,
      .type = 1,
      .flags = 1,
      .payload = (const uint8_t *)"\x7f",
      .len = 1}},
    {"0c 07 81 02 02", 8, {.kind = MCL__PK_REQUEST, .tag = 7, .type = 1, .flags = 0x20, .len = 8}},
    {"81 03 0b 84 02 02",
     127,
     {.kind = MCL__PK_REQUEST, .tag = 11, .type = 1, .flags = 0x80, .len = 127}},
    {"08 02 16 01 68 65 6c 6c 6f",
     0,
     {.kind = MCL__PK_REQUEST,
      .tag = 2,
      .type = 0,
      .flags = 5,
      .payload = (const uint8_t *)"hello",
      .len = 5}},
    {"07 02 34 68 65 6c 6c 6f",
     0,
     {.kind = MCL__PK_RESPONSE,
      .tag = 2,
      .flags = 6,
      .payload = (const uint8_t *)"hello",
      .len = 5}},
    {"02 02 0c", 0, {.kind = MCL__PK_RESPONSE, .tag = 2, .flags = 1}},
    {"1a 11 00 657863657074696f6e20647572696e672068616e646c6572",
     0,
     {.kind = MCL__PK_RESPONSE,
      .status = MCL__PST_REJECTED,
      .tag = 17,
      .msg = (const uint8_t *)"exception during handler",
      .msglen = 24}},
    {"15 00 01 01 756e6b6e6f776e206368616e6e656c202564",
     0,
     {.kind = MCL__PK_RESPONSE,
      .status = MCL__PST_REJECTED,
      .channel = 1,
      .tag = 0,
      .msg = (const uint8_t *)"unknown channel %d",
      .msglen = 18}},
    {"81 4c 82 2c 8c 4c", 200, {.kind = MCL__PK_RESPONSE, .tag = 300, .flags = 201, .len = 200}},
    {"03 00 02 00", 0, {.kind = MCL__PK_EOF}},
    {"03 01 02 00", 0, {.kind = MCL__PK_ERQ}},
};

static void
test_cs_vectors(void)
{
    static uint8_t fill[256];
    memset(fill, 0x61, sizeof(fill));
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
        uint8_t frame[512];
        size_t n = unhex(cs[i].hex, frame);
        memcpy(frame + n, fill, cs[i].extra);
        n += cs[i].extra;
        uint64_t blen;
        size_t hl;
        MCLT_OK(mcl__bsuint_get(frame, n, &blen, &hl));
        CU_ASSERT_EQUAL_FATAL(hl + blen, n); // the length prefix covers exactly the body
        mcl__pkt want = cs[i].k;
        if (cs[i].extra > 0)
            want.payload = fill;
        mcl__pkt k;
        char why[128];
        mcl_err rv = mcl__pkt_decode(MCL__PS_CS, frame + hl, (size_t)blen, &k, why, sizeof(why));
        if (rv != MCL_OK)
            fprintf(stderr, "\n  vector %zu: %s\n", i, why);
        CU_ASSERT_EQUAL_FATAL(rv, MCL_OK);
        same_pkt(&k, &want);
        uint8_t body[512], out[520];
        size_t m = encode(MCL__PS_CS, &want, body);
        size_t ol = mcl__bsuint_put(out, m);
        memcpy(out + ol, body, m);
        CU_ASSERT_EQUAL(ol + m, n);
        CU_ASSERT(memcmp(out, frame, n) == 0);
    }
    // What cs.packetstream cannot say.
    mcl__pkt c = {.kind = MCL__PK_CANCEL, .tag = 3};
    uint8_t hdr[MCL__PW_HDR_MAX];
    struct iovec iov[4];
    unsigned ni;
    MCLT_ERR(mcl__pkt_encode(MCL__PS_CS, &c, hdr, iov, &ni), MCL_ENOTSUP);
    c.kind = MCL__PK_PING;
    MCLT_ERR(mcl__pkt_encode(MCL__PS_CS, &c, hdr, iov, &ni), MCL_ENOTSUP);
}

static void
test_cs_refuses_bad_fields(void)
{
    struct {
        const char *hex, *says;
    } bad[] = {
        {"", "ends inside its tag"},
        {"05", "ends inside its flags"},
        {"05 03", "ends inside its channel"},
        {"05 02", "ends inside its request type"},
        {"05 02 00 00", "malformed EOF"}, // rq 0, tag 5
        {"00 02 00 ff", "malformed EOF"}, // an EOF with a payload
        {"00 03 01 00", "malformed EOF"}, // an EOF on channel 1
        {"00 06 00", "malformed EOF"},    // an EOF with flags
        {"90 80 80 80 00 02 01", "tag beyond 32 bits"},
        {"05 03 90 80 80 80 00 01", "channel beyond 32 bits"},
        {"05 02 90 80 80 80 00", "request type beyond 32 bits"},
        {"05 00 c3 28", "not UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[64];
        size_t n = unhex(bad[i].hex, b);
        mcl__pkt k;
        char why[128] = "";
        mcl_err rv = mcl__pkt_decode(MCL__PS_CS, b, n, &k, why, sizeof(why));
        if (rv != MCL_EPROTO || strstr(why, bad[i].says) == NULL)
            fprintf(stderr, "\n  case %zu (%s): %s '%s' (expected '%s')\n", i, bad[i].hex,
                    mcl_err_name(rv), why, bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, bad[i].says));
    }
    // Flags beyond 32 bits (Python's are unbounded; ours are u32): a request, then a response.
    uint64_t fields[2] = {(((uint64_t)1 << 32) << 2) | 2, (((uint64_t)1 << 33) | 1) << 2};
    const char *says[2] = {"request flags beyond 32 bits", "response flags beyond 32 bits"};
    for (int i = 0; i < 2; i++) {
        uint8_t b[32];
        size_t n = mcl__bsuint_put(b, 5);
        n += mcl__bsuint_put(b + n, fields[i]);
        if (i == 0)
            n += mcl__bsuint_put(b + n, 1);
        mcl__pkt k;
        char why[128] = "";
        MCLT_ERR(mcl__pkt_decode(MCL__PS_CS, b, n, &k, why, sizeof(why)), MCL_EPROTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, says[i]));
    }
}

static void
test_utf8(void)
{
    CU_ASSERT(mcl__utf8_ok((const uint8_t *)"", 0));
    const char *text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    CU_ASSERT(mcl__utf8_ok((const uint8_t *)text, strlen(text)));
    CU_ASSERT_FALSE(mcl__utf8_ok((const uint8_t *)"\xc0\xaf", 2));         // overlong
    CU_ASSERT_FALSE(mcl__utf8_ok((const uint8_t *)"\xed\xa0\x80", 3));     // surrogate
    CU_ASSERT_FALSE(mcl__utf8_ok((const uint8_t *)"\xf4\x90\x80\x80", 4)); // > U+10FFFF
    CU_ASSERT_FALSE(mcl__utf8_ok((const uint8_t *)"\xe2\x82", 2));         // cut short
    CU_ASSERT_FALSE(mcl__utf8_ok((const uint8_t *)"\xff", 1));
}

// Random bytes and mutations of valid packets: refused or decoded, never a crash, never a field
// that points outside the packet.
static void
test_hostile_bytes(void)
{
    uint64_t seed = 99;
    uint8_t buf[300];
    for (int round = 0; round < 200000; round++) {
        int codec = round & 1 ? MCL__PS_CS : MCL__PS_NATIVE;
        size_t n = (size_t)(mclt_rand(&seed) % sizeof(buf));
        if (round % 3 == 0) { // a valid packet with a byte or two changed
            const native_vec *v = &native[mclt_rand(&seed) % (sizeof(native) / sizeof(native[0]))];
            if (codec == MCL__PS_CS && (v->k.kind == MCL__PK_CANCEL || v->k.kind >= MCL__PK_PING))
                continue; // not in that codec
            n = encode(codec, &v->k, buf);
            if (n == 0)
                continue;
            buf[mclt_rand(&seed) % n] ^= (uint8_t)(1 + mclt_rand(&seed) % 255);
            if (mclt_rand(&seed) % 4 == 0)
                n -= mclt_rand(&seed) % n;
        } else {
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)mclt_rand(&seed);
            if (codec == MCL__PS_NATIVE && n >= 2) {
                buf[0] = 1;
                buf[1] = (uint8_t)(1 + mclt_rand(&seed) % 7);
            }
        }
        // From a heap copy of exactly n bytes, so that ASan sees any read beyond.
        uint8_t *p = malloc(n ? n : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        memcpy(p, buf, n);
        mcl__pkt k;
        char why[128];
        mcl_err rv = mcl__pkt_decode(codec, p, n, &k, why, sizeof(why));
        CU_ASSERT(rv == MCL_OK || rv == MCL_EPROTO);
        if (rv == MCL_OK) {
            CU_ASSERT(k.len == 0 || (k.payload >= p && k.payload + k.len <= p + n));
            CU_ASSERT(k.msglen == 0 || (k.msg >= p && k.msg + k.msglen <= p + n));
            uint8_t again[600];
            if (k.kind != MCL__PK_CANCEL && !(codec == MCL__PS_CS && k.kind >= MCL__PK_PING))
                (void)encode(codec, &k, again); // whatever decodes can be written again
        }
        free(p);
    }
}

static CU_TestInfo tests[] = {{"native_vectors", test_native_vectors},
                              {"native_refuses_bad_fields", test_native_refuses_bad_fields},
                              {"bsuint_table", test_bsuint_table},
                              {"cs_vectors", test_cs_vectors},
                              {"cs_refuses_bad_fields", test_cs_refuses_bad_fields},
                              {"utf8", test_utf8},
                              {"hostile_bytes", test_hostile_bytes},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("pstream_wire", NULL, NULL, tests);
