// SPDX-License-Identifier: BSD-3-Clause
#include "harness.h"

#include <string.h>

static const mcl_err all[] = {
#define X_(name, val, text) MCL_##name,
    MCL_ERR_MAP(X_)
#undef X_
};

static void
test_names_unique_texts_nonempty(void)
{
    size_t n = sizeof(all) / sizeof(all[0]);
    CU_ASSERT(n >= 15);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(all[i], (mcl_err)i); // codes are dense from 0: append-only table
        CU_ASSERT_PTR_NOT_NULL_FATAL(mcl_strerror(all[i]));
        CU_ASSERT(strlen(mcl_strerror(all[i])) > 0);
        CU_ASSERT(strncmp(mcl_err_name(all[i]), "MCL_", 4) == 0);
        for (size_t j = 0; j < i; j++) {
            CU_ASSERT(strcmp(mcl_err_name(all[i]), mcl_err_name(all[j])) != 0);
            CU_ASSERT(strcmp(mcl_strerror(all[i]), mcl_strerror(all[j])) != 0);
        }
    }
    CU_ASSERT_STRING_EQUAL(mcl_err_name(MCL_EINVAL), "MCL_EINVAL");
    CU_ASSERT_STRING_EQUAL(mcl_strerror((mcl_err)999), "unknown error");
    CU_ASSERT_STRING_EQUAL(mcl_err_name((mcl_err)999), "MCL_E?");
}

static void
test_version(void)
{
    CU_ASSERT_STRING_EQUAL(mcl_version(), MCL_VERSION_STRING);
    CU_ASSERT_EQUAL(mcl_version_hex(), MCL_VERSION_HEX);
}

static CU_TestInfo tests[] = {{"names_unique_texts_nonempty", test_names_unique_texts_nonempty},
                              {"version", test_version},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("core_err", NULL, NULL, tests);
