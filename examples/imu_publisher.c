// SPDX-License-Identifier: BSD-3-Clause
// A minimal publisher of typed messages: an IMU at 100 Hz for 5 seconds.
//
//   build/examples/imu_publisher [URL]
//
// Watch it with: mcl-dump -u URL
#include <mcl/mcl.h>

#include <math.h>
#include <stdio.h>
#include <time.h>

int
main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : MCL_DEFAULT_URL;
    const mcl_field fields[] = {{"ax", MCL_TYPE_FLOAT}, {"ay", MCL_TYPE_FLOAT}, {"az", MCL_TYPE_FLOAT}};
    const mcl_msgtype *imu;
    char err[256];
    mcl_err rv = mcl_msgtype_define(&imu, "Imu", fields, 3, url, "imu", err, sizeof(err));
    if (rv != MCL_OK) {
        fprintf(stderr, "cannot define Imu: %s\n", err[0] ? err : mcl_strerror(rv));
        return 1;
    }
    mcl_msg_broadcaster *b;
    if ((rv = mcl_msg_broadcaster_open(&b, imu, NULL, NULL)) != MCL_OK) { // the type's URL and topic
        fprintf(stderr, "cannot open %s: %s\n", url, mcl_strerror(rv));
        return 1;
    }
    for (int i = 0; i < 500; i++) {
        mcl_msg *m;
        if (mcl_msg_new(&m, imu) != MCL_OK)
            return 1;
        double t = i / 100.0;
        mcl_msg_set_double(m, "ax", 0.2 * sin(t));
        mcl_msg_set_double(m, "ay", 0.1 * cos(t));
        mcl_msg_set_double(m, "az", 9.81);
        rv = mcl_msg_broadcaster_publish(b, m, NULL); // checked against the type, then sent
        mcl_msg_free(m);
        if (rv != MCL_OK) {
            fprintf(stderr, "publish: %s\n", mcl_strerror(rv));
            break;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    mcl_msg_broadcaster_free(b);
    return rv == MCL_OK ? 0 : 1;
}
