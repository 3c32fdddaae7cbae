// SPDX-License-Identifier: BSD-3-Clause
// Fuzz target: JSON from a stranger into values and messages (mcl_value_from_json and
// mcl_msg_from_json, lib/msg/json.c on jansson; docs/json.md gives the mapping, with the tagged
// objects $bin, $float, $str, $uint, $map and $ndarray). The input is the JSON text, read from an
// exact-size copy without a NUL (a read past its end is caught by ASan).
//
// Both readers must agree (a message is a value that is a map: MCL_ENOTMAP otherwise) and a
// refusal must say why. What is read must say itself again: mcl_value_to_json of it (compact,
// and indented with sorted keys) reads back to an equal value (mcl_value_equal) and is a fixed
// point (the second writing is the same text); it encodes to msgpack (mcl_value_encode) that
// decodes (mcl_value_decode) to an equal value; and a message does the same through
// mcl_msg_to_json and mcl_msg_encode/mcl_msg_decode. Nothing may leak.
#include <mcl/message.h>
#include <mcl/value.h>

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
refusal_says_why(const char *err, size_t cap)
{
    if (err[0] == '\0' || memchr(err, '\0', cap) == NULL)
        abort();
}

// v written with flags reads back to an equal value whose writing is the same text. Returns
// the text (the caller frees it).
static char *
says_again(const mcl_value *v, int flags)
{
    char *t = NULL;
    if (mcl_value_to_json(v, flags, &t) != MCL_OK || t == NULL)
        abort(); // every value can be written (only MCL_ENOMEM could stop it)
    mcl_value *back = NULL;
    char err[256];
    if (mcl_value_from_json(&back, t, strlen(t), err, sizeof(err)) != MCL_OK)
        abort(); // what was written does not read
    if (!mcl_value_equal(v, back) || !mcl_value_equal(back, v))
        abort(); // reads as something else
    char *t2 = NULL;
    if (mcl_value_to_json(back, flags, &t2) != MCL_OK || strcmp(t, t2) != 0)
        abort(); // not a fixed point
    mcl_free(t2);
    mcl_value_free(back);
    return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);

    mcl_value *v = NULL;
    char err[256];
    mcl_err rv = mcl_value_from_json(&v, in, size, err, sizeof(err));
    if (rv != MCL_OK && rv != MCL_EDECODE && rv != MCL_ENOMEM)
        abort();
    if ((rv == MCL_OK) != (v != NULL))
        abort();
    if (rv != MCL_OK)
        refusal_says_why(err, sizeof(err));

    mcl_msg *m = NULL;
    char merr[256];
    mcl_err mrv = mcl_msg_from_json(&m, in, size, merr, sizeof(merr));
    if ((mrv == MCL_OK) != (m != NULL))
        abort();
    if (rv == MCL_EDECODE && mrv != MCL_EDECODE)
        abort();
    if (rv == MCL_OK && mrv != MCL_ENOMEM &&
        mrv != (mcl_value_type(v) == MCL_TYPE_MAP ? MCL_OK : MCL_ENOTMAP))
        abort();
    if (mrv != MCL_OK)
        refusal_says_why(merr, sizeof(merr));
    free(in);

    if (v != NULL) {
        if (!mcl_value_equal(v, v))
            abort();
        char *compact = says_again(v, MCL_JSON_COMPACT);
        mcl_free(says_again(v, MCL_JSON_INDENT | MCL_JSON_SORT));
        mcl_free(says_again(v, MCL_JSON_NDARRAY_BASE64)); // typed arrays as base64

        // msgpack, both ways.
        void *buf = NULL;
        size_t len = 0;
        if (mcl_value_encode(v, &buf, &len) != MCL_OK)
            abort(); // the JSON reader nests no deeper than the encoder allows
        mcl_value *back = NULL;
        char derr[256];
        if (mcl_value_decode(&back, buf, len, derr, sizeof(derr)) != MCL_OK)
            abort();
        if (!mcl_value_equal(v, back))
            abort();
        mcl_value_free(back);
        mcl_free(buf);

        mcl_value *copy = NULL;
        if (mcl_value_dup(&copy, v) != MCL_OK || !mcl_value_equal(v, copy))
            abort();
        mcl_value_free(copy);

        if (m != NULL) { // the message holds the same value and says it the same way
            if (!mcl_value_equal(mcl_msg_fields(m), v))
                abort();
            char *mt = NULL;
            if (mcl_msg_to_json(m, MCL_JSON_COMPACT, &mt) != MCL_OK || strcmp(mt, compact) != 0)
                abort();
            mcl_free(mt);
            if (mcl_msg_encode(m, &buf, &len) != MCL_OK)
                abort();
            mcl_msg *m2 = NULL;
            if (mcl_msg_decode(&m2, buf, len, NULL, derr, sizeof(derr)) != MCL_OK ||
                !mcl_value_equal(mcl_msg_fields(m2), v))
                abort();
            mcl_msg_free(m2);
            mcl_free(buf);
        }
        mcl_free(compact);
        mcl_value_free(v);
    }
    mcl_msg_free(m);
    return 0;
}
