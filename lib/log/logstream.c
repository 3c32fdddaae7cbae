// SPDX-License-Identifier: BSD-3-Clause
// Logs as entity streams: the element codec, params, the log source (record positions, marks,
// time seeks, follow) and the log server (a root directory and named logs: resolver and list).
#define _GNU_SOURCE
#include <mcl/logstream.h>

#include "../core/internal.h"
#include "../stream/stream_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// Reader marks (lib/log/logfile.c; lib/log has no internal header, so declared here too).
size_t mcl__log_mark_words(const mcl_log_reader *r);
void mcl__log_reader_mark(const mcl_log_reader *r, uint64_t *mark);
mcl_err mcl__log_reader_restore(mcl_log_reader *r, const uint64_t *mark);
void mcl__log_reader_size(const mcl_log_reader *r, size_t *files, uint64_t *bytes);

enum {
    MARK_EVERY = 1024,   // a mark every this many records
    PARAMS_MAX = 4096,   // params text, bytes
    PARAMS_TOPICS = 256, // topics in params
    NAME_MAX_LEN = 1024, // a stream name (the stream layer's own limit)
    LIST_MAX = 1000,     // entries a list gives
    LIST_DEPTH = 8,      // directory levels a list walks
    LIST_DIRS = 10000,   // directories a list opens
};
#define COUNT_AT_OPEN ((uint64_t)16 << 20) // a log this small is counted when opened
#define COUNT_IN_LIST ((uint64_t)64 << 20) // ... and this much in all by a list

// --- elements ----------------------------------------------------------------------------------

static size_t
mp_uint_len(uint64_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static size_t
mp_int_len(int64_t v)
{
    if (v >= 0)
        return mp_uint_len((uint64_t)v);
    return v >= -32 ? 1 : v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

static uint8_t *
mp_put_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        mcl__put_be16(p, (uint16_t)v);
        p += 2;
    } else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        mcl__put_be32(p, (uint32_t)v);
        p += 4;
    } else {
        *p++ = 0xcf;
        mcl__put_be64(p, v);
        p += 8;
    }
    return p;
}

static uint8_t *
mp_put_int(uint8_t *p, int64_t v)
{
    if (v >= 0)
        return mp_put_uint(p, (uint64_t)v);
    if (v >= -32) {
        *p++ = (uint8_t)(int8_t)v;
    } else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        *p++ = (uint8_t)(int8_t)v;
    } else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        mcl__put_be16(p, (uint16_t)(int16_t)v);
        p += 2;
    } else if (v >= INT32_MIN) {
        *p++ = 0xd2;
        mcl__put_be32(p, (uint32_t)(int32_t)v);
        p += 4;
    } else {
        *p++ = 0xd3;
        mcl__put_be64(p, (uint64_t)v);
        p += 8;
    }
    return p;
}

static bool
elem_encodable(const mcl_raw_msg *m)
{
    return m->topic_len <= MCL_TOPIC_MAX && (m->topic_len == 0 || m->topic != NULL) &&
           memchr(m->topic ? m->topic : "", 0, m->topic_len) == NULL &&
           (uint64_t)m->len <= UINT32_MAX && (m->len == 0 || m->payload != NULL);
}

mcl_err
mcl_log_elem_encode(const mcl_raw_msg *m, void *buf, size_t size, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (m == NULL || len == NULL || (buf == NULL && size > 0) || !elem_encodable(m))
        return MCL_EINVAL;
    size_t tl = m->topic_len, pl = m->len;
    size_t need = 1 + mp_int_len(m->recv_realtime_ns) +
                  (tl < 32    ? 1
                   : tl < 256 ? 2
                              : 3) +
                  tl + mp_uint_len(m->publisher) + mp_uint_len(m->seq) +
                  (pl < 256     ? 2
                   : pl < 65536 ? 3
                                : 5) +
                  pl;
    *len = need;
    if (size < need)
        return MCL_EMSGSIZE;
    uint8_t *p = buf;
    *p++ = 0x95; // fixarray of 5
    p = mp_put_int(p, m->recv_realtime_ns);
    if (tl < 32) {
        *p++ = (uint8_t)(0xa0 | tl);
    } else if (tl < 256) {
        *p++ = 0xd9;
        *p++ = (uint8_t)tl;
    } else {
        *p++ = 0xda;
        mcl__put_be16(p, (uint16_t)tl);
        p += 2;
    }
    if (tl > 0)
        memcpy(p, m->topic, tl);
    p += tl;
    p = mp_put_uint(p, m->publisher);
    p = mp_put_uint(p, m->seq);
    if (pl < 256) {
        *p++ = 0xc4;
        *p++ = (uint8_t)pl;
    } else if (pl < 65536) {
        *p++ = 0xc5;
        mcl__put_be16(p, (uint16_t)pl);
        p += 2;
    } else {
        *p++ = 0xc6;
        mcl__put_be32(p, (uint32_t)pl);
        p += 4;
    }
    if (pl > 0)
        memcpy(p, m->payload, pl);
    return MCL_OK;
}

// A reader over [p, p + n): every take checks what is left first.
typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static bool
rd_take(rd *r, size_t k, const uint8_t **out)
{
    if (r->n < k)
        return false;
    *out = r->p;
    r->p += k;
    r->n -= k;
    return true;
}

// Any msgpack int: *neg says whether it is negative; *sv holds it (negative), *uv (not).
static bool
rd_int(rd *r, bool *neg, int64_t *sv, uint64_t *uv)
{
    const uint8_t *t, *b;
    if (!rd_take(r, 1, &t))
        return false;
    uint8_t c = t[0];
    *neg = false;
    *sv = 0;
    *uv = 0;
    if (c <= 0x7f) {
        *uv = c;
        return true;
    }
    if (c >= 0xe0) {
        *neg = true;
        *sv = (int8_t)c;
        return true;
    }
    size_t k = c == 0xcc || c == 0xd0   ? 1
               : c == 0xcd || c == 0xd1 ? 2
               : c == 0xce || c == 0xd2 ? 4
               : c == 0xcf || c == 0xd3 ? 8
                                        : 0;
    if (k == 0 || !rd_take(r, k, &b))
        return false;
    uint64_t v = k == 1   ? b[0]
                 : k == 2 ? mcl__get_be16(b)
                 : k == 4 ? mcl__get_be32(b)
                          : mcl__get_be64(b);
    if (c >= 0xcc && c <= 0xcf) {
        *uv = v;
        return true;
    }
    int64_t s = k == 1 ? (int8_t)v : k == 2 ? (int16_t)v : k == 4 ? (int32_t)v : (int64_t)v;
    if (s < 0) {
        *neg = true;
        *sv = s;
    } else {
        *uv = (uint64_t)s;
    }
    return true;
}

static bool
rd_uint(rd *r, uint64_t *out)
{
    bool neg;
    int64_t sv;
    return rd_int(r, &neg, &sv, out) && !neg;
}

// A str (is_bin false) or bin header, then its bytes.
static bool
rd_blob(rd *r, bool is_bin, const uint8_t **data, size_t *len)
{
    const uint8_t *t, *b;
    if (!rd_take(r, 1, &t))
        return false;
    uint8_t c = t[0];
    size_t n;
    if (!is_bin && (c & 0xe0) == 0xa0) {
        n = c & 0x1f;
    } else {
        size_t k = is_bin ? (c == 0xc4   ? 1
                             : c == 0xc5 ? 2
                             : c == 0xc6 ? 4
                                         : 0)
                          : (c == 0xd9   ? 1
                             : c == 0xda ? 2
                             : c == 0xdb ? 4
                                         : 0);
        if (k == 0 || !rd_take(r, k, &b))
            return false;
        n = k == 1 ? b[0] : k == 2 ? mcl__get_be16(b) : mcl__get_be32(b);
    }
    return rd_take(r, n, data) && (*len = n, true);
}

mcl_err
mcl_log_elem_decode(const void *data, size_t len, mcl_raw_msg *out)
{
    if (out == NULL)
        return MCL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (data == NULL)
        return len == 0 ? MCL_EDECODE : MCL_EINVAL;
    rd r = {data, len};
    const uint8_t *t, *topic, *pay;
    size_t tl, pl;
    bool neg;
    int64_t sv;
    uint64_t uv, pub, seq;
    if (!rd_take(&r, 1, &t))
        return MCL_EDECODE;
    if (t[0] == 0xdc || t[0] == 0xdd) { // array 16 / 32 of 5 (not the shortest form, but valid)
        const uint8_t *c;
        size_t k = t[0] == 0xdc ? 2 : 4;
        if (!rd_take(&r, k, &c) || (k == 2 ? mcl__get_be16(c) : mcl__get_be32(c)) != 5)
            return MCL_EDECODE;
    } else if (t[0] != 0x95) {
        return MCL_EDECODE;
    }
    if (!rd_int(&r, &neg, &sv, &uv) || (!neg && uv > INT64_MAX))
        return MCL_EDECODE;
    int64_t time = neg ? sv : (int64_t)uv;
    if (!rd_blob(&r, false, &topic, &tl) || tl > MCL_TOPIC_MAX || memchr(topic, 0, tl) != NULL ||
        !rd_uint(&r, &pub) || !rd_uint(&r, &seq) || !rd_blob(&r, true, &pay, &pl) || r.n != 0)
        return MCL_EDECODE;
    out->recv_realtime_ns = time;
    out->topic = (const char *)topic;
    out->topic_len = tl;
    out->publisher = pub;
    out->seq = seq;
    out->payload = pl > 0 ? pay : NULL;
    out->len = pl;
    return MCL_OK;
}

// --- params ------------------------------------------------------------------------------------

struct mcl_log_params {
    mcl_log_reader_options o;
    char **topics;
    size_t ntopics;
};

static bool
param_plain(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '/' || c == '*' || c == ':' || c == '+';
}

mcl_err
mcl_log_params_format(const mcl_log_reader_options *o, char *buf, size_t size, size_t *len)
{
    if (len != NULL)
        *len = 0;
    if (len == NULL || (buf == NULL && size > 0) ||
        (o != NULL && o->ntopics > 0 && o->topics == NULL))
        return MCL_EINVAL;
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
#define PUT_(ch)                                                                                   \
    do {                                                                                           \
        if (n + 1 < size)                                                                          \
            buf[n] = (ch);                                                                         \
        n++;                                                                                       \
    } while (0)
    for (size_t i = 0; o != NULL && i < o->ntopics; i++) {
        if (o->topics[i] == NULL)
            return MCL_EINVAL;
        if (n > 0)
            PUT_('&');
        for (const char *q = "topic="; *q; q++)
            PUT_(*q);
        for (const uint8_t *p = (const uint8_t *)o->topics[i]; *p; p++) {
            if (param_plain(*p)) {
                PUT_((char)*p);
            } else {
                PUT_('%');
                PUT_(hex[*p >> 4]);
                PUT_(hex[*p & 15]);
            }
        }
    }
    for (int k = 0; o != NULL && k < 2; k++) {
        int64_t v = k == 0 ? o->start_ns : o->end_ns;
        if (v == 0)
            continue;
        if (v < 0)
            return MCL_EINVAL; // (params carry times since the epoch)
        char num[40];
        snprintf(num, sizeof(num), "%s%s=%lld", n > 0 ? "&" : "", k == 0 ? "start" : "end",
                 (long long)v);
        for (const char *q = num; *q; q++)
            PUT_(*q);
    }
#undef PUT_
    if (size > 0)
        buf[n < size ? n : size - 1] = '\0';
    *len = n;
    return n < size ? MCL_OK : MCL_EMSGSIZE;
}

void
mcl_log_params_free(mcl_log_params *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->ntopics; i++)
        mcl__free(p->topics[i]);
    mcl__free(p->topics);
    mcl__free(p);
}

const mcl_log_reader_options *
mcl_log_params_options(const mcl_log_params *p)
{
    return p != NULL ? &p->o : NULL;
}

static int
hexdig(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

// A time: 1..19 decimal digits, at most INT64_MAX.
static bool
parse_ns(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0'); // 19 digits fit in 64 bits
    }
    if (v > INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

// A topic value: plain bytes and %XX, decoded into a new string.
static mcl_err
parse_topic(const char *s, size_t n, char **out)
{
    char *t = mcl__alloc(n + 1);
    if (t == NULL)
        return MCL_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexdig(s[i + 1]) : -1, lo = i + 2 < n ? hexdig(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                mcl__free(t);
                return MCL_EINVAL; // malformed, or a NUL byte
            }
            t[k++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (param_plain(c)) {
            t[k++] = (char)c;
        } else {
            mcl__free(t);
            return MCL_EINVAL;
        }
    }
    t[k] = '\0';
    if (k > (size_t)MCL_TOPIC_MAX + (k > 0 && t[k - 1] == '*' ? 1u : 0u)) {
        mcl__free(t);
        return MCL_EINVAL;
    }
    *out = t;
    return MCL_OK;
}

mcl_err
mcl_log_params_parse(mcl_log_params **pp, const char *params)
{
    if (pp != NULL)
        *pp = NULL;
    if (pp == NULL)
        return MCL_EINVAL;
    size_t total = params != NULL ? strnlen(params, PARAMS_MAX + 1) : 0;
    if (total > PARAMS_MAX)
        return MCL_EINVAL;
    mcl_log_params *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return MCL_ENOMEM;
    mcl_err rv = MCL_OK;
    bool have_start = false, have_end = false;
    size_t at = 0;
    while (rv == MCL_OK && at < total) {
        const char *item = params + at;
        const char *amp = memchr(item, '&', total - at);
        size_t il = amp ? (size_t)(amp - item) : total - at;
        at += il + (amp ? 1 : 0);
        if (amp != NULL && at == total) { // a trailing '&'
            rv = MCL_EINVAL;
            break;
        }
        const char *eq = memchr(item, '=', il);
        if (eq == NULL) {
            rv = MCL_EINVAL;
            break;
        }
        size_t kl = (size_t)(eq - item), vl = il - kl - 1;
        const char *val = eq + 1;
        if (kl == 5 && memcmp(item, "topic", 5) == 0) {
            if (p->ntopics == PARAMS_TOPICS) {
                rv = MCL_EINVAL;
                break;
            }
            char **nt = mcl__realloc(p->topics, (p->ntopics + 1) * sizeof(*nt));
            if (nt == NULL) {
                rv = MCL_ENOMEM;
                break;
            }
            p->topics = nt;
            if ((rv = parse_topic(val, vl, &p->topics[p->ntopics])) == MCL_OK)
                p->ntopics++;
        } else if (kl == 5 && memcmp(item, "start", 5) == 0 && !have_start) {
            have_start = true;
            if (!parse_ns(val, vl, &p->o.start_ns))
                rv = MCL_EINVAL;
        } else if (kl == 3 && memcmp(item, "end", 3) == 0 && !have_end) {
            have_end = true;
            if (!parse_ns(val, vl, &p->o.end_ns))
                rv = MCL_EINVAL;
        } else {
            rv = MCL_EINVAL; // an unknown key, or start/end twice
        }
    }
    if (rv == MCL_OK && p->o.start_ns != 0 && p->o.end_ns != 0 && p->o.end_ns < p->o.start_ns)
        rv = MCL_EINVAL;
    if (rv != MCL_OK) {
        mcl_log_params_free(p);
        return rv;
    }
    p->o.topics = (const char *const *)p->topics;
    p->o.ntopics = p->ntopics;
    *pp = p;
    return MCL_OK;
}

// --- the log source ----------------------------------------------------------------------------

typedef struct logsrc {
    mcl_log_reader *r;
    size_t mwords; // words of a reader mark
    // Marks every MARK_EVERY records: mk_idx[i] is the record the mark's next read returns,
    // mk_max[i] the latest time of the records before it (INT64_MIN: none); ascending in both.
    uint64_t *mk_idx, *mk;
    int64_t *mk_max;
    size_t nmk, mkcap;
    uint64_t next;    // records the reader returned since its reset: the next's index
    int64_t run_max;  // the latest time of records [0, next)
    int64_t prev_max; // ... of records [0, next - 1)
    bool held;        // record next - 1 is in enc, not put yet (no room in the push)
    int64_t held_t;
    uint8_t *enc;
    size_t enc_len, enc_cap;
    bool end_known; // a read reached the end: `end` records then
    uint64_t end;
    char *info;
} logsrc;

static void
ls_reset(logsrc *ls)
{
    mcl_log_reader_reset(ls->r);
    ls->next = 0;
    ls->run_max = ls->prev_max = INT64_MIN;
    ls->held = false;
}

static void
ls_add_mark(logsrc *ls)
{
    if (ls->nmk > 0 && ls->mk_idx[ls->nmk - 1] >= ls->next)
        return;                 // (read again after going back: marked already)
    if (ls->nmk == ls->mkcap) { // marks only speed seeks up: without memory, go on without
        size_t cap = ls->mkcap ? 2 * ls->mkcap : 64;
        uint64_t *ni = mcl__realloc(ls->mk_idx, cap * sizeof(*ni));
        if (ni == NULL)
            return;
        ls->mk_idx = ni;
        int64_t *nx = mcl__realloc(ls->mk_max, cap * sizeof(*nx));
        if (nx == NULL)
            return;
        ls->mk_max = nx;
        uint64_t *nm = mcl__realloc(ls->mk, cap * ls->mwords * sizeof(*nm));
        if (nm == NULL)
            return;
        ls->mk = nm;
        ls->mkcap = cap;
    }
    ls->mk_idx[ls->nmk] = ls->next;
    ls->mk_max[ls->nmk] = ls->run_max;
    mcl__log_reader_mark(ls->r, ls->mk + ls->nmk * ls->mwords);
    ls->nmk++;
}

// The next record of the stream (records that cannot be elements are left out: a topic with a
// NUL byte or too long, from a crafted file; always the same ones, so indices hold).
static mcl_err
ls_fetch(logsrc *ls, const mcl_raw_msg **mp)
{
    for (;;) {
        const mcl_raw_msg *m;
        mcl_err rv = mcl_log_reader_next(ls->r, &m);
        if (rv != MCL_OK)
            return rv;
        if (!elem_encodable(m))
            continue;
        ls->next++;
        ls->prev_max = ls->run_max;
        if (m->recv_realtime_ns > ls->run_max)
            ls->run_max = m->recv_realtime_ns;
        if (ls->next % MARK_EVERY == 0)
            ls_add_mark(ls);
        *mp = m;
        return MCL_OK;
    }
}

// ls_fetch(); at the end, the files are refreshed once (*refreshed) and it tries again.
static mcl_err
ls_fetch_follow(logsrc *ls, const mcl_raw_msg **mp, bool *refreshed)
{
    mcl_err rv = ls_fetch(ls, mp);
    if (rv == MCL_ENOENT && !*refreshed) {
        *refreshed = true;
        mcl_log_reader_refresh(ls->r);
        rv = ls_fetch(ls, mp);
    }
    if (rv == MCL_ENOENT) {
        ls->end_known = true;
        ls->end = ls->next;
    }
    return rv;
}

static mcl_err
ls_hold(logsrc *ls, const mcl_raw_msg *m)
{
    size_t need;
    mcl_err rv = mcl_log_elem_encode(m, ls->enc, ls->enc_cap, &need);
    if (rv == MCL_EMSGSIZE) {
        uint8_t *nb = mcl__realloc(ls->enc, need);
        if (nb == NULL)
            return MCL_ENOMEM;
        ls->enc = nb;
        ls->enc_cap = need;
        rv = mcl_log_elem_encode(m, ls->enc, ls->enc_cap, &need);
    }
    if (rv != MCL_OK)
        return rv;
    ls->enc_len = need;
    ls->held = true;
    ls->held_t = m->recv_realtime_ns;
    return MCL_OK;
}

static uint64_t
ls_pos(const logsrc *ls)
{
    return ls->held ? ls->next - 1 : ls->next;
}

// Goes back to mark i (SIZE_MAX: the start).
static void
ls_restore(logsrc *ls, size_t i)
{
    if (i == SIZE_MAX || mcl__log_reader_restore(ls->r, ls->mk + i * ls->mwords) != MCL_OK) {
        ls_reset(ls);
        return;
    }
    ls->next = ls->mk_idx[i];
    ls->run_max = ls->prev_max = ls->mk_max[i];
    ls->held = false;
}

// Moves to record index pos: from here, or from the nearest mark before it. MCL_ERANGE: the
// data ends before pos (the reader stays at the end).
static mcl_err
ls_seek_index(logsrc *ls, uint64_t pos)
{
    uint64_t cur = ls_pos(ls);
    if (pos == cur)
        return MCL_OK;
    size_t lo = 0, hi = ls->nmk; // the last mark at or before pos
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ls->mk_idx[mid] <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t mk = lo > 0 ? lo - 1 : SIZE_MAX;
    uint64_t from = mk != SIZE_MAX ? ls->mk_idx[mk] : 0;
    if (pos < cur || from > cur)
        ls_restore(ls, mk);
    bool refreshed = false;
    while (ls_pos(ls) < pos) {
        if (ls->held) {
            ls->held = false;
            continue;
        }
        const mcl_raw_msg *m;
        mcl_err rv = ls_fetch_follow(ls, &m, &refreshed);
        if (rv == MCL_ENOENT)
            return MCL_ERANGE;
        if (rv != MCL_OK)
            return rv;
    }
    return MCL_OK;
}

static unsigned
ls_mode(void *self)
{
    (void)self;
    return MCL_STREAM_READABLE | MCL_STREAM_SEEK_FWD | MCL_STREAM_SEEK_BACK | MCL_STREAM_SEEK_TIME |
           MCL_STREAM_BOUNDED_START | MCL_STREAM_MOVABLE_END;
}

static void
ls_bounds(void *self, uint64_t *start, uint64_t *end)
{
    logsrc *ls = self;
    *start = 0;
    *end = !ls->end_known ? MCL_STREAM_NOEND : ls->end > ls->next ? ls->end : ls->next;
}

static mcl_err
ls_read(void *self, uint64_t pos, uint64_t max, mcl_stream_sink *k)
{
    logsrc *ls = self;
    mcl_err rv = ls_seek_index(ls, pos);
    if (rv != MCL_OK)
        return rv;
    bool refreshed = false;
    for (uint64_t n = 0; n < max; n++) {
        if (!ls->held) {
            const mcl_raw_msg *m;
            rv = ls_fetch_follow(ls, &m, &refreshed);
            if (rv == MCL_ENOENT)
                return MCL_OK; // the end, for now
            if (rv != MCL_OK || (rv = ls_hold(ls, m)) != MCL_OK)
                return rv;
        }
        rv = mcl_stream_sink_put(k, ls->enc, ls->enc_len);
        if (rv == MCL_EMSGSIZE) // no room: it comes first in the next read (unless it never fits)
            return k->too_big ? MCL_EMSGSIZE : MCL_OK;
        if (rv != MCL_OK)
            return rv;
        ls->held = false;
    }
    return MCL_OK;
}

static mcl_err
ls_seek_time(void *self, int64_t t, uint64_t *pos)
{
    logsrc *ls = self;
    // The last mark whose records before it are all older than t: the answer is not before it.
    size_t lo = 0, hi = ls->nmk;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ls->mk_max[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t mk = lo > 0 ? lo - 1 : SIZE_MAX;
    uint64_t from = mk != SIZE_MAX ? ls->mk_idx[mk] : 0;
    int64_t before = ls->held ? ls->prev_max : ls->run_max; // latest time before here
    if (!(before < t && ls_pos(ls) >= from))
        ls_restore(ls, mk);
    bool refreshed = false;
    for (;;) {
        if (ls->held) {
            if (ls->held_t >= t) {
                *pos = ls->next - 1;
                return MCL_OK;
            }
            ls->held = false;
        }
        const mcl_raw_msg *m;
        mcl_err rv = ls_fetch_follow(ls, &m, &refreshed);
        if (rv == MCL_ENOENT) { // none yet: the end (a follower waits there)
            *pos = ls->next;
            return MCL_OK;
        }
        if (rv != MCL_OK)
            return rv;
        if (m->recv_realtime_ns >= t) {
            if ((rv = ls_hold(ls, m)) != MCL_OK)
                return rv;
            *pos = ls->next - 1;
            return MCL_OK;
        }
    }
}

static const char *
ls_info(void *self)
{
    return ((logsrc *)self)->info;
}

static void
ls_free(logsrc *ls)
{
    if (ls == NULL)
        return;
    mcl_log_reader_close(ls->r);
    mcl__free(ls->mk_idx);
    mcl__free(ls->mk_max);
    mcl__free(ls->mk);
    mcl__free(ls->enc);
    mcl__free(ls->info);
    mcl__free(ls);
}

static void
ls_close(void *self)
{
    ls_free(self);
}

static const mcl_stream_source_ops log_source_ops = {
    .kind = MCL_STREAM_ENTITIES,
    .mode = ls_mode,
    .bounds = ls_bounds,
    .read = ls_read,
    .seek_time = ls_seek_time,
    .info = ls_info,
    .close = ls_close,
};

// Opens the source and describes it; a log of at most count_limit bytes is read through (its
// records and last time known, its marks made). *counted: the bytes that took.
static mcl_err
ls_open(logsrc **lsp, const char *const *paths, size_t npaths, const mcl_log_reader_options *o,
        uint64_t count_limit, uint64_t *counted)
{
    *lsp = NULL;
    logsrc *ls = mcl__zalloc(sizeof(*ls));
    if (ls == NULL)
        return MCL_ENOMEM;
    mcl_err rv = mcl_log_reader_open(&ls->r, paths, npaths, o);
    if (rv != MCL_OK) {
        mcl__free(ls);
        return rv;
    }
    ls->mwords = mcl__log_mark_words(ls->r);
    ls->run_max = ls->prev_max = INT64_MIN;
    size_t files;
    uint64_t bytes;
    mcl__log_reader_size(ls->r, &files, &bytes);
    const mcl_raw_msg *m;
    bool have_first = false;
    int64_t first = 0;
    if ((rv = ls_fetch(ls, &m)) == MCL_OK) {
        have_first = true;
        first = m->recv_realtime_ns;
    }
    if (rv == MCL_OK && bytes <= count_limit) {
        while ((rv = ls_fetch(ls, &m)) == MCL_OK) {
        }
        if (counted != NULL)
            *counted = bytes;
    }
    if (rv == MCL_ENOENT) {
        ls->end_known = true;
        ls->end = ls->next;
        rv = MCL_OK;
    }
    char info[256];
    size_t n = 0;
    if (have_first)
        n += (size_t)snprintf(info + n, sizeof(info) - n, "first_ns=%lld\n", (long long)first);
    if (ls->end_known && ls->end > 0)
        n += (size_t)snprintf(info + n, sizeof(info) - n, "last_ns=%lld\n", (long long)ls->run_max);
    if (ls->end_known)
        n += (size_t)snprintf(info + n, sizeof(info) - n, "records=%llu\n",
                              (unsigned long long)ls->end);
    snprintf(info + n, sizeof(info) - n, "files=%zu\ncorrupt=%llu\n", files,
             (unsigned long long)mcl_log_reader_corrupt(ls->r, NULL));
    if (rv == MCL_OK && (ls->info = mcl__strdup(info)) == NULL)
        rv = MCL_ENOMEM;
    if (rv != MCL_OK) {
        ls_free(ls);
        return rv;
    }
    ls_reset(ls);
    *lsp = ls;
    return MCL_OK;
}

mcl_err
mcl_log_source_open(mcl_stream_source *src, const char *const *paths, size_t npaths,
                    const mcl_log_reader_options *o)
{
    if (src == NULL || paths == NULL || npaths == 0)
        return MCL_EINVAL;
    logsrc *ls;
    mcl_err rv = ls_open(&ls, paths, npaths, o, COUNT_AT_OPEN, NULL);
    if (rv != MCL_OK)
        return rv;
    src->ops = &log_source_ops;
    src->self = ls;
    return MCL_OK;
}

// --- the log server ----------------------------------------------------------------------------

typedef struct named_log {
    char *name, *path;
} named_log;

struct mcl_log_server {
    char *root; // its real path (NULL: no root)
    named_log *names;
    size_t nnames;
    mcl_stream_server *srv;
};

mcl_err
mcl_log_server_new(mcl_log_server **sp, const char *root)
{
    if (sp != NULL)
        *sp = NULL;
    if (sp == NULL)
        return MCL_EINVAL;
    mcl_log_server *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    if (root != NULL) {
        char *rp = realpath(root, NULL);
        struct stat st;
        if (rp == NULL || stat(rp, &st) != 0 || !S_ISDIR(st.st_mode)) {
            bool nomem = rp == NULL && errno == ENOMEM;
            free(rp);
            mcl__free(s);
            return nomem ? MCL_ENOMEM : MCL_ENOENT; // (the caller says what is wrong)
        }
        s->root = mcl__strdup(rp);
        free(rp);
        if (s->root == NULL) {
            mcl__free(s);
            return MCL_ENOMEM;
        }
    }
    *sp = s;
    return MCL_OK;
}

static bool
name_bytes_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)name[i] < 0x20 || name[i] == 0x7f)
            return false;
    return true;
}

mcl_err
mcl_log_server_add(mcl_log_server *s, const char *name, const char *path)
{
    if (s == NULL || name == NULL || path == NULL || path[0] == '\0' || !name_bytes_ok(name) ||
        strchr(name, '/') != NULL)
        return MCL_EINVAL;
    if (s->srv != NULL)
        return MCL_ESTATE;
    for (size_t i = 0; i < s->nnames; i++)
        if (strcmp(s->names[i].name, name) == 0)
            return MCL_EEXIST;
    named_log *nn = mcl__realloc(s->names, (s->nnames + 1) * sizeof(*nn));
    if (nn == NULL)
        return MCL_ENOMEM;
    s->names = nn;
    named_log *e = &s->names[s->nnames];
    e->name = mcl__strdup(name);
    e->path = mcl__strdup(path);
    if (e->name == NULL || e->path == NULL) {
        mcl__free(e->name);
        mcl__free(e->path);
        return MCL_ENOMEM;
    }
    s->nnames++;
    return MCL_OK;
}

// A name relative to the root: components that are not empty, "." or "..".
static bool
rel_name_ok(const char *name)
{
    if (!name_bytes_ok(name) || name[0] == '/')
        return false;
    for (const char *c = name;;) {
        const char *sl = strchr(c, '/');
        size_t cl = sl ? (size_t)(sl - c) : strlen(c);
        if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (sl == NULL)
            return true;
        c = sl + 1;
    }
}

// Whether the real path of p lies in the root (or is it). ENOENT: p does not exist.
static mcl_err
inside_root(const mcl_log_server *s, const char *p)
{
    char *rp = realpath(p, NULL);
    if (rp == NULL)
        return errno == ENOMEM ? MCL_ENOMEM : MCL_ENOENT;
    size_t rl = strlen(s->root);
    bool in = strncmp(rp, s->root, rl) == 0 &&
              (rp[rl] == '\0' || rp[rl] == '/' || (rl == 1 && s->root[0] == '/'));
    free(rp);
    return in ? MCL_OK : MCL_EPERM;
}

// The file system path that serves name (mcl__free it), checked to stay inside the root.
static mcl_err
root_path(const mcl_log_server *s, const char *name, char **out)
{
    *out = NULL;
    if (s->root == NULL)
        return MCL_ENOENT;
    if (!rel_name_ok(name)) { // (from the network: debug level, a peer cannot flood the log)
        mcl__log(MCL_LOG_DEBUG, "logstream", "refused a stream name");
        return MCL_EPERM;
    }
    char *p;
    if (asprintf(&p, "%s/%s", s->root, name) < 0)
        return MCL_ENOMEM;
    mcl_err rv = inside_root(s, p);
    if (rv == MCL_ENOENT) { // a split series: PATH_000.mcllog or PATH_000.log
        const char *exts[] = {"mcllog", "log"};
        for (int k = 0; k < 2 && rv == MCL_ENOENT; k++) {
            char *first;
            if (asprintf(&first, "%s_000.%s", p, exts[k]) < 0) {
                rv = MCL_ENOMEM;
                break;
            }
            rv = inside_root(s, first);
            free(first);
        }
    }
    if (rv != MCL_OK) {
        free(p);
        return rv;
    }
    *out = mcl__strdup(p);
    free(p);
    return *out != NULL ? MCL_OK : MCL_ENOMEM;
}

mcl_err
mcl_log_server_resolve(mcl_log_server *s, const char *name, const char *params,
                       mcl_stream_source *src)
{
    if (s == NULL || name == NULL || src == NULL)
        return MCL_EINVAL;
    mcl_log_params *pa;
    mcl_err rv = mcl_log_params_parse(&pa, params);
    if (rv != MCL_OK)
        return rv;
    char *path = NULL;
    for (size_t i = 0; i < s->nnames && path == NULL; i++)
        if (strcmp(s->names[i].name, name) == 0 && (path = mcl__strdup(s->names[i].path)) == NULL)
            rv = MCL_ENOMEM;
    if (rv == MCL_OK && path == NULL)
        rv = root_path(s, name, &path);
    if (rv == MCL_OK) {
        const char *paths[] = {path};
        rv = mcl_log_source_open(src, paths, 1, mcl_log_params_options(pa));
    }
    mcl__free(path);
    mcl_log_params_free(pa);
    return rv;
}

typedef struct list_ctx {
    void (*add)(void *ctx, const char *name, const char *info);
    void *ctx;
    unsigned entries;
    unsigned dirs;         // directories opened (bounds the walk of a huge tree)
    uint64_t count_budget; // bytes of logs the list may still read through
} list_ctx;

static void
list_one(const mcl_log_server *s, list_ctx *lc, const char *name, const char *path, bool in_root)
{
    if (lc->entries >= LIST_MAX)
        return;
    for (size_t i = 0; in_root && i < s->nnames; i++)
        if (strcmp(s->names[i].name, name) == 0)
            return; // hidden by the named log
    lc->entries++;
    logsrc *ls;
    uint64_t counted = 0;
    const char *paths[] = {path};
    mcl_err rv = ls_open(&ls, paths, 1, NULL, lc->count_budget, &counted);
    if (rv != MCL_OK) {
        char info[64];
        snprintf(info, sizeof(info), "error=%s\n", mcl_err_name(rv));
        lc->add(lc->ctx, name, info);
        return;
    }
    lc->count_budget -= counted < lc->count_budget ? counted : lc->count_budget;
    lc->add(lc->ctx, name, ls->info);
    ls_free(ls);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
has_ext(const char *n, const char **ext)
{
    size_t l = strlen(n);
    if (l > 7 && strcmp(n + l - 7, ".mcllog") == 0)
        *ext = "mcllog";
    else if (l > 4 && strcmp(n + l - 4, ".log") == 0)
        *ext = "log";
    else
        return false;
    return true;
}

// Whether n is PREFIX_NNN.EXT (three digits or more) with PREFIX_000.EXT in the directory:
// then *plen is PREFIX's length and *first whether n is that part.
static bool
in_series(int dfd, const char *n, const char *ext, size_t *plen, bool *first)
{
    size_t l = strlen(n), el = strlen(ext) + 1, d = l - el;
    size_t k = d;
    while (k > 0 && n[k - 1] >= '0' && n[k - 1] <= '9')
        k--;
    if (d - k < 3 || k < 2 || n[k - 1] != '_')
        return false;
    char part0[NAME_MAX + 1];
    if ((size_t)snprintf(part0, sizeof(part0), "%.*s_000.%s", (int)(k - 1), n, ext) >=
        sizeof(part0))
        return false;
    struct stat st;
    if (fstatat(dfd, part0, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return false;
    *plen = k - 1;
    *first = strcmp(part0, n) == 0;
    return true;
}

static void
list_dir(const mcl_log_server *s, list_ctx *lc, const char *rel, int depth)
{
    char *dpath;
    if (lc->dirs >= LIST_DIRS || asprintf(&dpath, "%s%s%s", s->root, rel[0] ? "/" : "", rel) < 0)
        return;
    lc->dirs++;
    DIR *d = opendir(dpath);
    free(dpath);
    if (d == NULL)
        return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e = readdir(d); e != NULL && n < 4 * LIST_MAX; e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 32;
            char **nn = mcl__realloc(names, nc * sizeof(*nn));
            if (nn == NULL)
                break;
            names = nn;
            cap = nc;
        }
        if ((names[n] = mcl__strdup(e->d_name)) == NULL)
            break;
        n++;
    }
    if (names != NULL)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n && lc->entries < LIST_MAX; i++) {
        struct stat st;
        const char *ext;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        char *sub;
        if (asprintf(&sub, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) < 0)
            break;
        if (S_ISDIR(st.st_mode) && depth + 1 < LIST_DEPTH) {
            list_dir(s, lc, sub, depth + 1);
        } else if (S_ISREG(st.st_mode) && has_ext(names[i], &ext)) {
            size_t pl;
            bool first;
            char *path;
            if (in_series(dirfd(d), names[i], ext, &pl, &first)) {
                if (first) { // the series once, by its PATH
                    size_t cut = strlen(sub) - (strlen(names[i]) - pl);
                    sub[cut] = '\0';
                    if (asprintf(&path, "%s/%s", s->root, sub) >= 0) {
                        list_one(s, lc, sub, path, true);
                        free(path);
                    }
                }
            } else if (asprintf(&path, "%s/%s", s->root, sub) >= 0) {
                list_one(s, lc, sub, path, true);
                free(path);
            }
        }
        free(sub);
    }
    for (size_t i = 0; i < n; i++)
        mcl__free(names[i]);
    mcl__free(names);
    closedir(d);
}

void
mcl_log_server_list(mcl_log_server *s, void (*add)(void *ctx, const char *name, const char *info),
                    void *ctx)
{
    if (s == NULL || add == NULL)
        return;
    list_ctx lc = {.add = add, .ctx = ctx, .count_budget = COUNT_IN_LIST};
    for (size_t i = 0; i < s->nnames; i++)
        list_one(s, &lc, s->names[i].name, s->names[i].path, false);
    if (s->root != NULL)
        list_dir(s, &lc, "", 0);
}

static mcl_err
server_resolve(void *user, const char *name, const char *params, mcl_stream_source *src)
{
    return mcl_log_server_resolve(user, name, params, src);
}

static void
server_list(void *user, void (*add)(void *ctx, const char *name, const char *info), void *ctx)
{
    mcl_log_server_list(user, add, ctx);
}

mcl_err
mcl_log_server_listen(mcl_log_server *s, const char *url, const mcl_stream_server_options *o)
{
    if (s == NULL || url == NULL)
        return MCL_EINVAL;
    if (s->srv != NULL)
        return MCL_ESTATE;
    mcl_stream_server *srv;
    mcl_err rv = mcl_stream_server_new(&srv, server_resolve, server_list, s, o);
    if (rv != MCL_OK)
        return rv;
    if ((rv = mcl_stream_server_listen(srv, url)) != MCL_OK) {
        mcl_stream_server_free(srv);
        return rv;
    }
    s->srv = srv;
    return MCL_OK;
}

mcl_err
mcl_log_server_open(mcl_log_server **sp, const char *root, const char *url)
{
    mcl_err rv = mcl_log_server_new(sp, root);
    if (rv != MCL_OK)
        return rv;
    if ((rv = mcl_log_server_listen(*sp, url, NULL)) != MCL_OK) {
        mcl_log_server_free(*sp);
        *sp = NULL;
    }
    return rv;
}

const char *
mcl_log_server_url(const mcl_log_server *s)
{
    return s != NULL && s->srv != NULL ? mcl_stream_server_url(s->srv) : NULL;
}

mcl_stream_server *
mcl_log_server_streams(mcl_log_server *s)
{
    return s != NULL ? s->srv : NULL;
}

void
mcl_log_server_free(mcl_log_server *s)
{
    if (s == NULL)
        return;
    mcl_stream_server_free(s->srv); // (closes every source first: they do not use s)
    for (size_t i = 0; i < s->nnames; i++) {
        mcl__free(s->names[i].name);
        mcl__free(s->names[i].path);
    }
    mcl__free(s->names);
    mcl__free(s->root);
    mcl__free(s);
}
