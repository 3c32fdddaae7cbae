// SPDX-License-Identifier: BSD-3-Clause
// Message <-> JSON with jansson. Values JSON cannot hold become one-key tagged objects
// ("$bin", "$float", "$str", "$uint", "$ndarray"); a genuine map that would read back as a tag
// is wrapped in {"$map": ...}. docs/json.md documents the mapping.
#include "msg_int.h"

#include "../core/internal.h"

#include <float.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tags[] = {"$bin", "$float", "$str", "$uint", "$map", "$ndarray"};

static bool
is_tag(const char *k)
{
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
        if (strcmp(k, tags[i]) == 0)
            return true;
    return false;
}

static bool
utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            need = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            need = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < need)
            return false;
        for (size_t k = 1; k < need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
            (need == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need;
    }
    return true;
}

static json_t *
tagged(const char *tag, json_t *v)
{
    json_t *o = json_object();
    if (o == NULL || v == NULL || json_object_set_new(o, tag, v) != 0) {
        json_decref(o);
        json_decref(v);
        return NULL;
    }
    return o;
}

static json_t *
tagged_b64(const char *tag, const char *p, size_t n)
{
    char *b = mcl__b64_encode(p, n);
    if (b == NULL)
        return NULL;
    json_t *s = json_string(b);
    mcl__free(b);
    return tagged(tag, s);
}

static json_t *nd_to_json(const mcl_value *v, int flags);

static json_t *
to_json(const mcl_value *v, int flags)
{
    switch (v->type) {
    case MCL_TYPE_NIL:
    case MCL_TYPE_ANY:
        return json_null();
    case MCL_TYPE_BOOL:
        return json_boolean(v->b);
    case MCL_TYPE_INT:
        if (v->is_u && v->u > (uint64_t)INT64_MAX) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v->u);
            return tagged("$uint", json_string(buf));
        }
        return json_integer(v->is_u ? (json_int_t)v->u : (json_int_t)v->i);
    case MCL_TYPE_FLOAT:
        if (isnan(v->d))
            return tagged("$float", json_string("nan"));
        if (isinf(v->d))
            return tagged("$float", json_string(v->d > 0 ? "inf" : "-inf"));
        return json_real(v->d);
    case MCL_TYPE_STR:
        if (utf8_valid(v->s.p, v->s.n))
            return json_stringn(v->s.p, v->s.n);
        return tagged_b64("$str", v->s.p, v->s.n);
    case MCL_TYPE_BIN:
        return tagged_b64("$bin", v->s.p, v->s.n);
    case MCL_TYPE_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < v->a.n; i++)
            if (json_array_append_new(a, to_json(v->a.v[i], flags)) != 0) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    case MCL_TYPE_MAP: {
        json_t *o = json_object();
        // JSON keys must be Unicode: invalid bytes become '?' (documented, keys only), and a
        // key so made gets a "?N" suffix until no other key of the map has its name, so that
        // no value vanishes. `taken` (only when some key needs it) holds every name in use:
        // the valid keys from the start, the made ones as they are made; the suffixes count on
        // through the map, so many keys that collapse alike cost one probe each.
        json_t *taken = NULL;
        size_t suffix = 0;
        for (size_t i = 0; o != NULL && taken == NULL && i < v->m.n; i++)
            if (!utf8_valid(v->m.kv[i].key, v->m.kv[i].klen)) {
                taken = json_object();
                for (size_t k = 0; taken != NULL && k < v->m.n; k++)
                    if (utf8_valid(v->m.kv[k].key, v->m.kv[k].klen) &&
                        json_object_set_new(taken, v->m.kv[k].key, json_null()) != 0) {
                        json_decref(taken);
                        taken = NULL;
                    }
                if (taken == NULL) {
                    json_decref(o);
                    o = NULL;
                }
            }
        for (size_t i = 0; o != NULL && i < v->m.n; i++) {
            const mcl__kv *kv = &v->m.kv[i];
            json_t *item = to_json(kv->val, flags);
            char *key = mcl__alloc(kv->klen + 24);
            if (key != NULL) {
                memcpy(key, kv->key, kv->klen + 1);
                if (!utf8_valid(key, kv->klen)) {
                    for (size_t k = 0; k < kv->klen; k++)
                        if ((unsigned char)key[k] >= 0x80)
                            key[k] = '?';
                    while (json_object_get(taken, key) != NULL)
                        snprintf(key + kv->klen, 24, "?%zu", ++suffix);
                    if (json_object_set_new(taken, key, json_null()) != 0) {
                        mcl__free(key);
                        key = NULL;
                    }
                }
            }
            if (key == NULL || item == NULL || json_object_set_new(o, key, item) != 0) {
                if (key == NULL || item == NULL)
                    json_decref(item);
                json_decref(o);
                o = NULL;
            }
            mcl__free(key);
        }
        json_decref(taken);
        if (o != NULL && v->m.n == 1 && is_tag(v->m.kv[0].key))
            return tagged("$map", o);
        return o;
    }
    case MCL_TYPE_NDARRAY:
        return nd_to_json(v, flags);
    }
    return NULL;
}

// --- reals -----------------------------------------------------------------------------------

// The shortest text that reads back as the finite double d, written the way jansson writes
// reals: with a '.' or an exponent (so that it reads back as a float: "1.0"), no '+' and no
// leading zeros in the exponent ("1e300"), and '.' whatever the locale. A normal double needs
// at most 17 significant digits, and if some decimal of 15 digits or fewer reads back as d,
// %.15g (correctly rounded, trailing zeros dropped) is that decimal: so the first of %.15g,
// %.16g and %.17g that reads back bit-identical is the shortest. A subnormal has fewer bits,
// so fewer digits may be enough (5e-324: one, where %.15g writes 15): its are tried from 1 up.
size_t
mcl__json_real(double d, char buf[MCL__JSON_REAL_MAX])
{
    const char point = *localeconv()->decimal_point; // printf and strtod use the locale's
    size_t n = 0;
    for (int prec = fabs(d) < DBL_MIN && d != 0 ? 1 : 15; prec <= 17; prec++) {
        n = (size_t)snprintf(buf, MCL__JSON_REAL_MAX, "%.*g", prec, d); // at most 24 chars
        if (prec == 17)
            break; // always enough
        double back = strtod(buf, NULL);
        if (memcmp(&back, &d, sizeof(d)) == 0)
            break;
    }
    char *p = point != '.' ? strchr(buf, point) : NULL;
    if (p != NULL)
        *p = '.';
    char *e = strchr(buf, 'e');
    if (e != NULL) { // "e+05" -> "e5", "e-05" -> "e-5"
        char *from = e + 1, *to = e + 1;
        if (*from == '+')
            from++;
        else if (*from == '-')
            from = ++to;
        while (*from == '0' && from[1] != '\0')
            from++;
        memmove(to, from, strlen(from) + 1);
        n = strlen(buf);
    } else if (strchr(buf, '.') == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return n;
}

// Makes room for `need` more bytes at *o in *out (capacity *cap); false when out of memory
// (*out is then freed and NULL).
static bool
reserve(char **out, size_t *cap, size_t o, size_t need)
{
    if (*cap - o >= need)
        return true;
    size_t nc = *cap * 2 > o + need ? *cap * 2 : o + need;
    char *bigger = mcl__realloc(*out, nc);
    if (bigger == NULL) {
        mcl__free(*out);
        *out = NULL;
        return false;
    }
    *out = bigger;
    *cap = nc;
    return true;
}

// jansson writes every real with the same precision (JSON_REAL_PRECISION is for the whole
// text), 17 digits so that it reads back exactly, and so with noise ("0.10000000000000001").
// This rewrites each real of text (a number with a '.' or an exponent: jansson writes every
// real so, and never an integer so), outside strings, in its shortest form. Returns a new text
// (malloc'd: mcl_free) or NULL when out of memory.
static char *
shorten_reals(const char *text)
{
    const char point = *localeconv()->decimal_point;
    size_t cap = strlen(text) + 64, o = 0;
    char *out = mcl__alloc(cap);
    const char *p = text;
    while (out != NULL && *p != '\0') {
        size_t tl; // the next token: a string, a number, or one other character
        bool real = false;
        if (*p == '"') { // a key or a string value, up to its closing quote
            const char *q = p + 1;
            while (*q != '\0' && *q != '"')
                q += q[0] == '\\' && q[1] != '\0' ? 2 : 1;
            tl = (size_t)(q - p) + (*q == '"');
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            tl = strspn(p, "0123456789+-.eE");
            for (size_t i = 0; i < tl && !real; i++) // (only within it: strcspn would look on)
                real = p[i] == '.' || p[i] == 'e' || p[i] == 'E';
        } else {
            tl = 1;
        }
        if (!reserve(&out, &cap, o, tl + MCL__JSON_REAL_MAX + 1))
            return NULL;
        char tok[MCL__JSON_REAL_MAX + 16];
        if (!real || tl >= sizeof(tok)) { // (jansson's reals are at most 24 characters)
            memcpy(out + o, p, tl);
            o += tl;
        } else {
            memcpy(tok, p, tl);
            tok[tl] = '\0';
            char *dot = point != '.' ? strchr(tok, '.') : NULL;
            if (dot != NULL)
                *dot = point;
            o += mcl__json_real(strtod(tok, NULL), out + o);
        }
        p += tl;
    }
    if (out != NULL)
        out[o] = '\0';
    return out;
}

mcl_err
mcl_msg_to_json(const mcl_msg *m, int flags, char **jsonp)
{
    if (jsonp != NULL)
        *jsonp = NULL;
    if (m == NULL || jsonp == NULL)
        return MCL_EINVAL;
    return mcl_value_to_json(mcl_msg_fields(m), flags, jsonp);
}

mcl_err
mcl_value_to_json(const mcl_value *v, int flags, char **jsonp)
{
    if (jsonp != NULL)
        *jsonp = NULL;
    if (v == NULL || jsonp == NULL)
        return MCL_EINVAL;
    json_t *j = to_json(v, flags);
    if (j == NULL)
        return MCL_ENOMEM;
    size_t jf = JSON_ENCODE_ANY | JSON_REAL_PRECISION(17);
    if (flags & MCL_JSON_INDENT)
        jf |= JSON_INDENT(2);
    else
        jf |= JSON_COMPACT;
    if (flags & MCL_JSON_SORT)
        jf |= JSON_SORT_KEYS;
    char *text = json_dumps(j, jf);
    json_decref(j);
    if (text == NULL)
        return MCL_ENOMEM;
    *jsonp = shorten_reals(text);
    free(text); // jansson's (malloc)
    return *jsonp ? MCL_OK : MCL_ENOMEM;
}

// --- JSON -> value ---------------------------------------------------------------------------

static mcl_err from_json(json_t *j, mcl_value **out, int depth);

static mcl_err nd_from_json(json_t *arg, mcl_value **out);

static mcl_err
from_tag(const char *tag, json_t *arg, mcl_value **out, int depth)
{
    if (strcmp(tag, "$ndarray") == 0)
        return nd_from_json(arg, out);
    if (strcmp(tag, "$map") == 0) {
        if (!json_is_object(arg))
            return MCL_EDECODE;
        // The wrapped object is a plain map, even if its one key looks like a tag.
        mcl_value *m = mcl__val_new(MCL_TYPE_MAP);
        if (m == NULL)
            return MCL_ENOMEM;
        const char *k;
        json_t *item;
        json_object_foreach(arg, k, item)
        {
            mcl_value *c = NULL;
            mcl_err rv = from_json(item, &c, depth + 1);
            if (rv == MCL_OK)
                rv = mcl__val_put(m, k, strlen(k), c);
            if (rv != MCL_OK) {
                mcl__val_free(m);
                return rv;
            }
        }
        *out = m;
        return MCL_OK;
    }
    if (!json_is_string(arg))
        return MCL_EDECODE;
    const char *s = json_string_value(arg);
    size_t n = json_string_length(arg);
    if (strcmp(tag, "$float") == 0) {
        double d;
        if (strcmp(s, "nan") == 0)
            d = NAN;
        else if (strcmp(s, "inf") == 0)
            d = INFINITY;
        else if (strcmp(s, "-inf") == 0)
            d = -INFINITY;
        else
            return MCL_EDECODE;
        mcl_value *v = mcl__val_new(MCL_TYPE_FLOAT);
        if (v == NULL)
            return MCL_ENOMEM;
        v->d = d;
        *out = v;
        return MCL_OK;
    }
    if (strcmp(tag, "$uint") == 0) {
        uint64_t u = 0;
        if (n == 0 || n > 20)
            return MCL_EDECODE;
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9' || u > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
                return MCL_EDECODE;
            u = u * 10 + (uint64_t)(s[i] - '0');
        }
        mcl_value *v = mcl__val_new(MCL_TYPE_INT);
        if (v == NULL)
            return MCL_ENOMEM;
        v->is_u = true;
        v->u = u;
        *out = v;
        return MCL_OK;
    }
    // "$bin" and "$str": base64 bytes.
    uint8_t *bytes;
    size_t blen;
    if (!mcl__b64_decode(s, n, &bytes, &blen))
        return MCL_EDECODE;
    mcl_value *v = mcl__val_str((const char *)bytes, blen,
                                strcmp(tag, "$bin") == 0 ? MCL_TYPE_BIN : MCL_TYPE_STR);
    mcl__free(bytes);
    if (v == NULL)
        return MCL_ENOMEM;
    *out = v;
    return MCL_OK;
}

static mcl_err
from_json(json_t *j, mcl_value **out, int depth)
{
    *out = NULL;
    if ((json_is_array(j) || json_is_object(j)) && depth >= MCL__MAX_NESTING)
        return MCL_EDECODE;
    mcl_value *v = NULL;
    switch (json_typeof(j)) {
    case JSON_NULL:
        v = mcl__val_new(MCL_TYPE_NIL);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        if ((v = mcl__val_new(MCL_TYPE_BOOL)) != NULL)
            v->b = json_is_true(j);
        break;
    case JSON_INTEGER:
        if ((v = mcl__val_new(MCL_TYPE_INT)) != NULL)
            v->i = (int64_t)json_integer_value(j);
        break;
    case JSON_REAL:
        if ((v = mcl__val_new(MCL_TYPE_FLOAT)) != NULL)
            v->d = json_real_value(j);
        break;
    case JSON_STRING:
        v = mcl__val_str(json_string_value(j), json_string_length(j), MCL_TYPE_STR);
        break;
    case JSON_ARRAY: {
        if ((v = mcl__val_new(MCL_TYPE_ARRAY)) == NULL)
            break;
        size_t i;
        json_t *item;
        json_array_foreach(j, i, item)
        {
            mcl_value *c = NULL;
            mcl_err rv = from_json(item, &c, depth + 1);
            if (rv == MCL_OK)
                rv = mcl__val_push(v, c);
            if (rv != MCL_OK) {
                mcl__val_free(v);
                return rv;
            }
        }
        break;
    }
    case JSON_OBJECT: {
        if (json_object_size(j) == 1) {
            const char *k = json_object_iter_key(json_object_iter(j));
            if (is_tag(k))
                return from_tag(k, json_object_get(j, k), out, depth);
        }
        if ((v = mcl__val_new(MCL_TYPE_MAP)) == NULL)
            break;
        const char *k;
        json_t *item;
        json_object_foreach(j, k, item)
        {
            mcl_value *c = NULL;
            mcl_err rv = from_json(item, &c, depth + 1);
            if (rv == MCL_OK) // jansson already refused duplicate keys
                rv = mcl__val_append(v, k, strlen(k), c);
            if (rv != MCL_OK) {
                mcl__val_free(v);
                return rv;
            }
        }
        break;
    }
    }
    if (v == NULL)
        return MCL_ENOMEM;
    *out = v;
    return MCL_OK;
}

// Counts the values of a JSON text before jansson parses it, so that its memory (tens of bytes
// per value) is bounded by MCL_DECODE_MAX_VALUES whatever the text: the top, each element of
// an array and each member of an object, except the one member of a tagged object (whose
// first key, as written, is a tag: it and its argument are one value). Strings are skipped;
// nothing else is checked (jansson does that). Returns false (and says why) for too many
// values, or brackets nested deeper than any text that could be read (a value nests at most 32
// deep, and a "$map" wrapper adds a level to each).
static bool
json_count(const char *t, size_t len, char *why, size_t whylen)
{
    enum { MAX_TEXT_DEPTH = 2 * MCL__MAX_NESTING + 2 };
    struct {
        bool array;   // else an object
        bool tag;     // an object whose first key is a tag
        int members;  // of an object, counted up to 2
    } lv[MAX_TEXT_DEPTH];
    int depth = 0;
    bool first = false; // just after '[' or '{': the next token opens the first element or key
    uint64_t values = 1;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        bool was_first = first;
        first = false;
        if (was_first && depth > 0 && lv[depth - 1].array && c != ']')
            values++;
        switch (c) {
        case '"': {
            size_t start = ++i;
            for (; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                    i++;
            if (was_first && depth > 0 && !lv[depth - 1].array && i < len) {
                char key[16];
                size_t n = i - start;
                if (n < sizeof(key)) {
                    memcpy(key, t + start, n);
                    key[n] = '\0';
                    lv[depth - 1].tag = is_tag(key);
                }
            }
            break;
        }
        case '[':
        case '{':
            if (depth == MAX_TEXT_DEPTH) {
                snprintf(why, whylen, "containers nested deeper than %d levels", MCL__MAX_NESTING);
                return false;
            }
            lv[depth].array = c == '[';
            lv[depth].tag = false;
            lv[depth].members = 0;
            depth++;
            first = true;
            break;
        case ']':
        case '}':
            if (depth > 0)
                depth--;
            break;
        case ',':
            if (depth > 0 && lv[depth - 1].array)
                values++;
            break;
        case ':':
            if (depth > 0 && !lv[depth - 1].array && lv[depth - 1].members < 2) {
                int m = ++lv[depth - 1].members;
                if (lv[depth - 1].tag) // the tag's member is no value; a second makes it a map
                    values += m == 2 ? 2 : 0;
                else
                    values++;
            } else {
                values++;
            }
            break;
        default:
            break;
        }
        if (values > MCL_DECODE_MAX_VALUES) {
            snprintf(why, whylen, "more than %d values (MCL_DECODE_MAX_VALUES)",
                     MCL_DECODE_MAX_VALUES);
            return false;
        }
    }
    return true;
}

mcl_err
mcl_value_from_json(mcl_value **vp, const char *text, size_t len, char *errbuf, size_t errlen)
{
    if (vp != NULL)
        *vp = NULL;
    if (errbuf != NULL && errlen > 0)
        errbuf[0] = '\0';
    if (vp == NULL || text == NULL)
        return MCL_EINVAL;
    char why[200];
    if (!json_count(text, len, why, sizeof(why)))
        return mcl__fail(MCL_EDECODE, errbuf, errlen, "json", "%s", why);
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (j == NULL)
        return mcl__fail(MCL_EDECODE, errbuf, errlen, "json", "line %d, column %d: %s", e.line,
                         e.column, e.text);
    mcl_err rv = from_json(j, vp, 0);
    json_decref(j);
    if (rv == MCL_EDECODE)
        return mcl__fail(rv, errbuf, errlen, "json", "malformed tagged value ($bin, $float, "
                                                     "$str, $uint, $map or $ndarray) or nesting "
                                                     "too deep");
    // What is read must be what a receiver can decode: its msgpack, in the decoding budget.
    mcl__dcost cost;
    if (rv == MCL_OK) {
        mcl__val_measure(*vp, &cost);
        if (mcl__decode_check(&cost, cost.packed, why, sizeof(why)) != MCL_OK) {
            mcl__val_free(*vp);
            *vp = NULL;
            return mcl__fail(MCL_EDECODE, errbuf, errlen, "json", "%llu bytes as msgpack: %s",
                             (unsigned long long)cost.packed, why);
        }
    }
    if (rv == MCL_OK)
        (*vp)->root = true;
    return rv;
}

mcl_err
mcl_msg_from_json(mcl_msg **mp, const char *text, size_t len, char *errbuf, size_t errlen)
{
    if (mp != NULL)
        *mp = NULL;
    if (mp == NULL)
        return MCL_EINVAL;
    mcl_value *root = NULL;
    mcl_err rv = mcl_value_from_json(&root, text, len, errbuf, errlen);
    if (rv != MCL_OK)
        return rv;
    if (root->type != MCL_TYPE_MAP) { // (also a top-level tag such as {"$bin": ...})
        mcl__val_free(root);
        return mcl__fail(MCL_ENOTMAP, errbuf, errlen, "json", "a message must be a JSON object");
    }
    root->root = false; // the message's from now on
    if ((*mp = mcl__msg_wrap(root)) == NULL)
        return MCL_ENOMEM;
    return MCL_OK;
}

// --- typed arrays ----------------------------------------------------------------------------
//
// {"$ndarray": {"dtype": "float32", "shape": [2, 3], "data": [[...], [...]]}}: data as nested
// lists (ndim deep; a 0-d array: one element), or "base64": the little-endian bytes
// (MCL_JSON_NDARRAY_BASE64). Elements: integers as numbers (uint64 above INT64_MAX as a decimal
// string), floats as the shortest number that reads back to the same float32 or float64 and
// NaN/inf as the strings "nan" (or "nan:HEX" with its bits), "inf", "-inf", bools as
// true/false (another byte as its number): every element reads back bit for bit.

// The bits of C's NAN as float32 and float64 (0x7fc00000, 0x7ff8000000000000 on IEEE hosts).
static bool
is_plain_nan(const uint8_t *p, size_t es)
{
    const float f = NAN;
    const double d = NAN;
    return memcmp(p, es == 4 ? (const void *)&f : (const void *)&d, es) == 0;
}

// A NaN element: "nan" for C's NAN, else "nan:" and its bits in hex ("nan:ffc00000"), so that
// every NaN reads back bit for bit.
static json_t *
nan_text(const uint8_t *p, size_t es)
{
    if (is_plain_nan(p, es))
        return json_string("nan");
    uint64_t bits = 0;
    if (es == 4) {
        uint32_t b32;
        memcpy(&b32, p, 4);
        bits = b32;
    } else {
        memcpy(&bits, p, 8);
    }
    char buf[24];
    snprintf(buf, sizeof(buf), "nan:%0*llx", (int)(2 * es), (unsigned long long)bits);
    return json_string(buf);
}

// The element of a "nan:HEX" text (exactly 2 x es lowercase hex digits that make a NaN).
static bool
nan_from_text(const char *s, size_t n, size_t es, uint8_t *p)
{
    if (n != 4 + 2 * es || memcmp(s, "nan:", 4) != 0)
        return false;
    uint64_t bits = 0;
    for (size_t i = 4; i < n; i++) {
        int v = s[i] >= '0' && s[i] <= '9'   ? s[i] - '0'
                : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10
                                             : -1;
        if (v < 0)
            return false;
        bits = bits << 4 | (uint64_t)v;
    }
    if (es == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, 4);
        if (!isnan(f))
            return false;
        memcpy(p, &b32, 4);
    } else {
        double d;
        memcpy(&d, &bits, 8);
        if (!isnan(d))
            return false;
        memcpy(p, &bits, 8);
    }
    return !is_plain_nan(p, es); // (one text per value: C's NAN is "nan")
}

static json_t *
nd_elem(const uint8_t *p, unsigned dtype)
{
    union {
        int8_t i8;
        int16_t i16;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        uint64_t u64;
        float f;
        double d;
    } x;
    memcpy(&x, p, mcl_dtype_size((mcl_dtype)dtype));
    double d;
    switch (dtype) {
    case MCL_DTYPE_INT8:
        return json_integer(x.i8);
    case MCL_DTYPE_INT16:
        return json_integer(x.i16);
    case MCL_DTYPE_INT32:
        return json_integer(x.i32);
    case MCL_DTYPE_INT64:
        return json_integer((json_int_t)x.i64);
    case MCL_DTYPE_UINT8:
        return json_integer(x.u8);
    case MCL_DTYPE_UINT16:
        return json_integer(x.u16);
    case MCL_DTYPE_UINT32:
        return json_integer((json_int_t)x.u32);
    case MCL_DTYPE_UINT64:
        if (x.u64 > (uint64_t)INT64_MAX) {
            char buf[24];
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)x.u64);
            return json_string(buf);
        }
        return json_integer((json_int_t)x.u64);
    case MCL_DTYPE_BOOL: // (another byte than 0 or 1 as its number, so that it reads back)
        return x.u8 <= 1 ? json_boolean(x.u8 != 0) : json_integer(x.u8);
    case MCL_DTYPE_FLOAT32:
        if (isnan(x.f))
            return nan_text(p, 4);
        if (!isfinite(x.f))
            return json_string(x.f > 0 ? "inf" : "-inf");
        {
            // The shortest decimal that reads back as this float (%.6g is it when 6 digits
            // do, as %.15g for doubles; subnormals may need fewer), kept as the double nearest
            // that decimal, which the writer then prints as that decimal: "0.1", not the
            // double 0.10000000149011612. If that double does not narrow back (it cannot
            // happen for a correct strtod, but costs one compare), the exact widening is used.
            char buf[40];
            for (int prec = fabsf(x.f) < FLT_MIN && x.f != 0 ? 1 : 6; prec <= 9; prec++) {
                snprintf(buf, sizeof(buf), "%.*g", prec, (double)x.f);
                if (prec == 9 || strtof(buf, NULL) == x.f)
                    break;
            }
            d = strtod(buf, NULL);
            if (!(fabs(d) <= FLT_MAX) || (float)d != x.f)
                d = (double)x.f;
        }
        return json_real(d);
    case MCL_DTYPE_FLOAT64:
        if (isnan(x.d))
            return nan_text(p, 8);
        if (!isfinite(x.d))
            return json_string(x.d > 0 ? "inf" : "-inf");
        return json_real(x.d);
    }
    return NULL;
}

// The nested lists of dims k.. of the elements from *p (advanced).
static json_t *
nd_lists(const mcl_value *v, size_t k, const uint8_t **p, size_t es)
{
    if (k == v->nd.ndim) {
        json_t *e = nd_elem(*p, v->nd.dtype);
        *p += es;
        return e;
    }
    json_t *a = json_array();
    for (uint64_t i = 0; a != NULL && i < v->nd.blk[k]; i++)
        if (json_array_append_new(a, nd_lists(v, k + 1, p, es)) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static json_t *
nd_to_json(const mcl_value *v, int flags)
{
    size_t es = mcl_dtype_size((mcl_dtype)v->nd.dtype);
    json_t *o = json_object(), *shape = json_array(), *data = NULL;
    for (size_t k = 0; shape != NULL && k < v->nd.ndim; k++)
        if (json_array_append_new(shape, json_integer((json_int_t)v->nd.blk[k])) != 0) {
            json_decref(shape);
            shape = NULL;
        }
    if (flags & MCL_JSON_NDARRAY_BASE64) {
        const uint8_t *src = mcl__nd_data(v);
        uint8_t *le = NULL;
        if (es > 1 && v->nd.nbytes > 0 && mcl__nd_data(v) != NULL) { // (a no-op copy on LE)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            if ((le = mcl__alloc(v->nd.nbytes)) != NULL)
                mcl__nd_copy_le(le, src, v->nd.nbytes, es);
            src = le;
#endif
        }
        char *b = src != NULL ? mcl__b64_encode(src, v->nd.nbytes) : NULL;
        mcl__free(le);
        if (b != NULL)
            data = json_string(b);
        mcl__free(b);
    } else {
        const uint8_t *p = mcl__nd_data(v);
        data = nd_lists(v, 0, &p, es);
    }
    if (o == NULL || shape == NULL || data == NULL) {
        json_decref(o);
        json_decref(shape);
        json_decref(data);
        return NULL;
    }
    // (set_new takes its value also when it fails: every call is made)
    int bad = json_object_set_new(o, "dtype", json_string(mcl_dtype_name((mcl_dtype)v->nd.dtype)));
    bad |= json_object_set_new(o, "shape", shape);
    bad |= json_object_set_new(o, flags & MCL_JSON_NDARRAY_BASE64 ? "base64" : "data", data);
    if (bad != 0) {
        json_decref(o);
        return NULL;
    }
    return tagged("$ndarray", o);
}

// One element from JSON into p; false when it is not a value of the dtype.
static bool
nd_elem_from(json_t *j, unsigned dtype, uint8_t *p)
{
    if (dtype == MCL_DTYPE_BOOL) {
        if (json_is_integer(j) && json_integer_value(j) > 1 && json_integer_value(j) <= 255) {
            *p = (uint8_t)json_integer_value(j); // (a byte that is neither 0 nor 1)
            return true;
        }
        if (!json_is_boolean(j))
            return false;
        *p = json_is_true(j) ? 1 : 0;
        return true;
    }
    if (dtype == MCL_DTYPE_FLOAT32 || dtype == MCL_DTYPE_FLOAT64) {
        double d;
        if (json_is_integer(j)) {
            d = (double)json_integer_value(j);
        } else if (json_is_real(j)) {
            d = json_real_value(j);
        } else if (json_is_string(j)) {
            const char *s = json_string_value(j);
            if (strcmp(s, "nan") == 0)
                d = NAN;
            else if (strcmp(s, "inf") == 0)
                d = INFINITY;
            else if (strcmp(s, "-inf") == 0)
                d = -INFINITY;
            else
                return nan_from_text(s, json_string_length(j), mcl_dtype_size((mcl_dtype)dtype), p);
        } else {
            return false;
        }
        if (dtype == MCL_DTYPE_FLOAT64) {
            memcpy(p, &d, 8);
            return true;
        }
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return false; // not a float32
        float f = (float)d;
        memcpy(p, &f, 4);
        return true;
    }
    // Integers: a JSON integer in the dtype's range; uint64 also a decimal string.
    uint64_t u = 0;
    int64_t i = 0;
    bool neg = false;
    if (json_is_integer(j)) {
        i = (int64_t)json_integer_value(j);
        neg = i < 0;
        u = (uint64_t)i;
    } else if (dtype == MCL_DTYPE_UINT64 && json_is_string(j)) {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        if (n == 0 || n > 20)
            return false;
        for (size_t k = 0; k < n; k++) {
            if (s[k] < '0' || s[k] > '9' || u > (UINT64_MAX - (uint64_t)(s[k] - '0')) / 10)
                return false;
            u = u * 10 + (uint64_t)(s[k] - '0');
        }
    } else {
        return false;
    }
    static const int64_t lo[] = {[MCL_DTYPE_INT8] = INT8_MIN, [MCL_DTYPE_INT16] = INT16_MIN,
                                 [MCL_DTYPE_INT32] = INT32_MIN, [MCL_DTYPE_INT64] = INT64_MIN};
    static const uint64_t hi[] = {
        [MCL_DTYPE_INT8] = INT8_MAX,    [MCL_DTYPE_INT16] = INT16_MAX,
        [MCL_DTYPE_INT32] = INT32_MAX,  [MCL_DTYPE_INT64] = INT64_MAX,
        [MCL_DTYPE_UINT8] = UINT8_MAX,  [MCL_DTYPE_UINT16] = UINT16_MAX,
        [MCL_DTYPE_UINT32] = UINT32_MAX, [MCL_DTYPE_UINT64] = UINT64_MAX};
    bool is_signed = dtype <= MCL_DTYPE_INT64;
    if (neg ? !is_signed || i < lo[dtype] : u > hi[dtype])
        return false;
    size_t es = mcl_dtype_size((mcl_dtype)dtype);
    // Two's complement truncation to es bytes, in host order.
    switch (es) {
    case 1: {
        uint8_t x = (uint8_t)u;
        memcpy(p, &x, 1);
        break;
    }
    case 2: {
        uint16_t x = (uint16_t)u;
        memcpy(p, &x, 2);
        break;
    }
    case 4: {
        uint32_t x = (uint32_t)u;
        memcpy(p, &x, 4);
        break;
    }
    default:
        memcpy(p, &u, 8);
    }
    return true;
}

// Reads nested lists of dims k.. into *p (advanced); false unless they match the shape.
static bool
nd_lists_from(json_t *j, const mcl__ndhdr *h, size_t k, uint8_t **p, size_t es)
{
    if (k == h->ndim) {
        if (!nd_elem_from(j, h->dtype, *p))
            return false;
        *p += es;
        return true;
    }
    if (!json_is_array(j) || json_array_size(j) != h->shape[k])
        return false;
    size_t i;
    json_t *item;
    json_array_foreach(j, i, item)
    {
        if (!nd_lists_from(item, h, k + 1, p, es))
            return false;
    }
    return true;
}

static mcl_err
nd_from_json(json_t *arg, mcl_value **out)
{
    mcl__ndhdr h;
    json_t *dt = json_object_get(arg, "dtype"), *shape = json_object_get(arg, "shape");
    json_t *data = json_object_get(arg, "data"), *b64 = json_object_get(arg, "base64");
    mcl_dtype dtype;
    if (!json_is_object(arg) || json_object_size(arg) != 3 || !json_is_string(dt) ||
        mcl_dtype_from_name(json_string_value(dt), &dtype) != MCL_OK || !json_is_array(shape) ||
        json_array_size(shape) > MCL_NDARRAY_MAX_NDIM || (data == NULL) == (b64 == NULL))
        return MCL_EDECODE; // (three keys: dtype, shape, and one of data / base64)
    h.dtype = (uint8_t)dtype;
    h.ndim = (uint8_t)json_array_size(shape);
    for (size_t k = 0; k < h.ndim; k++) {
        json_t *d = json_array_get(shape, k);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return MCL_EDECODE;
        h.shape[k] = (uint64_t)json_integer_value(d);
    }
    if (mcl__nd_nbytes(h.dtype, h.ndim, h.shape, &h.nbytes) != MCL_OK)
        return MCL_EDECODE;
    size_t es = mcl_dtype_size(dtype);
    mcl_value *v = NULL;
    if (b64 != NULL) {
        uint8_t *bytes;
        size_t blen;
        if (!json_is_string(b64) ||
            !mcl__b64_decode(json_string_value(b64), json_string_length(b64), &bytes, &blen))
            return MCL_EDECODE;
        if (blen != h.nbytes) {
            mcl__free(bytes);
            return MCL_EDECODE;
        }
        if ((v = mcl__val_nd(h.dtype, h.ndim, h.shape, h.nbytes)) != NULL)
            mcl__nd_copy_le(mcl__nd_data(v), bytes, h.nbytes, es);
        mcl__free(bytes);
        if (v == NULL)
            return MCL_ENOMEM;
    } else {
        if ((v = mcl__val_nd(h.dtype, h.ndim, h.shape, h.nbytes)) == NULL)
            return MCL_ENOMEM;
        uint8_t *p = mcl__nd_data(v);
        if (!nd_lists_from(data, &h, 0, &p, es)) {
            mcl__val_free(v);
            return MCL_EDECODE;
        }
    }
    *out = v;
    return MCL_OK;
}
