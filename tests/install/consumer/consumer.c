// SPDX-License-Identifier: BSD-3-Clause
// A program outside the tree, built against an installed mcl (tests/install/test_install.sh):
// it checks the header and the loaded library agree on the version, then sends one message
// through the in-process transport and receives it. Exit 0 only when all of that worked.
#include <mcl/mcl.h>

#include <stdio.h>
#include <string.h>

int
main(void)
{
    if (strcmp(mcl_version(), MCL_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", MCL_VERSION_STRING, mcl_version());
        return 1;
    }
    char err[256];
    mcl_connection *conn = NULL;
    mcl_raw_listener *l = NULL;
    mcl_raw_broadcaster *b = NULL;
    const mcl_raw_msg *m = NULL;
    int rc = 1;
    if (mcl_connection_parse(&conn, "inproc://install-test", err, sizeof err) != MCL_OK) {
        fprintf(stderr, "parse: %s\n", err);
        return 1;
    }
    if (mcl_raw_listener_open(&l, conn, NULL, 0) != MCL_OK ||
        mcl_raw_broadcaster_open(&b, conn, "greeting") != MCL_OK ||
        mcl_raw_broadcaster_publish(b, NULL, "hello", 5) != MCL_OK ||
        mcl_raw_listener_recv(l, &m, 5000) != MCL_OK) {
        fprintf(stderr, "round trip failed\n");
        goto out;
    }
    if (strcmp(m->topic, "greeting") != 0 || m->len != 5 || memcmp(m->payload, "hello", 5) != 0) {
        fprintf(stderr, "received something else\n");
        goto out;
    }
    printf("mcl %s: received '%.*s' on %s\n", mcl_version(), (int)m->len, (const char *)m->payload,
           m->topic);
    rc = 0;
out:
    mcl_raw_broadcaster_free(b);
    mcl_raw_listener_free(l);
    mcl_connection_free(conn);
    return rc;
}
