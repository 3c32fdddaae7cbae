// SPDX-License-Identifier: BSD-3-Clause
// A minimal listener: prints the Imu messages it receives for 5 seconds, then the counters.
// Reception runs in a separate process (a queued listener), so a slow callback loses nothing.
//
//   build/examples/imu_listener [URL]
#include <mcl/mcl.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

static void
on_imu(const mcl_msg *m, const mcl_raw_msg *raw, void *user)
{
    (void)user;
    double ax = 0, ay = 0, az = 0;
    mcl_msg_get_double(m, "ax", &ax);
    mcl_msg_get_double(m, "ay", &ay);
    mcl_msg_get_double(m, "az", &az);
    printf("%-6s seq %-6" PRIu64 " ax=%+.3f ay=%+.3f az=%+.3f\n", raw->topic, raw->seq, ax, ay, az);
}

int
main(int argc, char **argv)
{
    mcl_connection *c;
    char err[256];
    mcl_err rv = argc > 1 ? mcl_connection_parse(&c, argv[1], err, sizeof(err))
                          : mcl_connection_default(&c, err, sizeof(err));
    if (rv != MCL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    const char *topics[] = {"imu"};
    mcl_queued_listener *ql;
    if ((rv = mcl_queued_listener_new(&ql, c, NULL, topics, 1, NULL)) != MCL_OK ||
        (rv = mcl_queued_listener_subscribe_msg(ql, on_imu, NULL)) != MCL_OK) {
        fprintf(stderr, "cannot listen: %s\n", mcl_strerror(rv));
        return 1;
    }
    struct timespec ts = {5, 0};
    nanosleep(&ts, NULL);
    mcl_queued_stats st;
    mcl_queued_listener_stats(ql, &st);
    printf("delivered %" PRIu64 ", lost %" PRIu64 ", undecodable %" PRIu64 "\n", st.delivered,
           st.receiver.lost, st.undecodable);
    mcl_queued_listener_free(ql);
    mcl_connection_free(c);
    return 0;
}
