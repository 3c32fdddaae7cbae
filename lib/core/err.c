// SPDX-License-Identifier: BSD-3-Clause
#include <mcl/err.h>

const char *
mcl_strerror(mcl_err err)
{
    switch (err) {
#define MCL_ERR_TEXT_(name, val, text)                                                             \
    case MCL_##name:                                                                               \
        return text;
        MCL_ERR_MAP(MCL_ERR_TEXT_)
#undef MCL_ERR_TEXT_
    }
    return "unknown error";
}

const char *
mcl_err_name(mcl_err err)
{
    switch (err) {
#define MCL_ERR_NAME_(name, val, text)                                                             \
    case MCL_##name:                                                                               \
        return "MCL_" #name;
        MCL_ERR_MAP(MCL_ERR_NAME_)
#undef MCL_ERR_NAME_
    }
    return "MCL_E?";
}
