// SPDX-License-Identifier: BSD-3-Clause
#include <mcl/version.h>

const char *
mcl_version(void)
{
    return MCL_VERSION_STRING;
}

unsigned
mcl_version_hex(void)
{
    return MCL_VERSION_HEX;
}
