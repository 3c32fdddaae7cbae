// SPDX-License-Identifier: BSD-3-Clause
// Built instead of lib/transport/zmq when mcl is configured without ZeroMQ (MCL_WITH_ZMQ=OFF,
// or AUTO without libzmq): the CURVE helpers of include/mcl/connection.h say so.
#include "../core/internal.h"

#include <mcl/connection.h>

mcl_err
mcl_curve_keypair(char public_z85[41], char secret_z85[41])
{
    if (public_z85 == NULL || secret_z85 == NULL)
        return MCL_EINVAL;
    return mcl__fail(MCL_ENOTSUP, NULL, 0, "zmq", "this build of mcl has no ZeroMQ (CURVE)");
}

mcl_err
mcl_curve_key_hex(const char *z85, char hex[65])
{
    if (z85 == NULL || hex == NULL)
        return MCL_EINVAL;
    return mcl__fail(MCL_ENOTSUP, NULL, 0, "zmq", "this build of mcl has no ZeroMQ (CURVE)");
}
