// SPDX-License-Identifier: BSD-3-Clause
// The standing test of the transport table: every registered transport fills the ops its
// capabilities promise, fits its options into a connection, and parses its own example URL
// back to itself. A test rather than an assert, so that release builds are checked too.
#include "harness.h"
#include "transport/transport.h"

#include <string.h>

static bool
has_key(const mcl__tport *t, const char *key)
{
    for (const char *const *k = t->keys; k != NULL && *k != NULL; k++)
        if (strcmp(*k, key) == 0)
            return true;
    return false;
}

static void
test_every_transport_fills_its_ops(void)
{
    CU_ASSERT_FATAL(mcl__tport_count() >= 2); // udp and inproc are always built
    for (size_t i = 0; i < mcl__tport_count(); i++) {
        const mcl__tport *t = mcl__tport_at(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT(t->scheme != NULL && t->scheme[0] != '\0');
        CU_ASSERT(t->family != NULL && t->family[0] != '\0');
        CU_ASSERT(t->known != NULL && t->known[0] != '\0');
        CU_ASSERT(t->opts_size > 0 && t->opts_size <= MCL__TP_OPTS_MAX);
        CU_ASSERT_PTR_NOT_NULL(t->keys);
        CU_ASSERT_PTR_NOT_NULL(t->defaults);
        CU_ASSERT_PTR_NOT_NULL(t->parse_addr);
        CU_ASSERT_PTR_NOT_NULL(t->parse_option);
        CU_ASSERT_PTR_NOT_NULL(t->canon);
        CU_ASSERT_PTR_EQUAL(mcl__tport_find(t->scheme, strlen(t->scheme)), t);
        for (size_t j = 0; j < i; j++)
            CU_ASSERT(strcmp(mcl__tport_at(j)->scheme, t->scheme) != 0);
        // Generic options are the front door's; a transport does not parse them itself.
        const char *generic[] = {"maxmsg", "batch", "dgram", "expire", "partmem"};
        for (size_t g = 0; g < sizeof(generic) / sizeof(generic[0]); g++)
            CU_ASSERT_FALSE(has_key(t, generic[g]));
        // Every transport carries broadcasts, packet streams, or both; what it has is whole.
        CU_ASSERT_FATAL(t->bcast != NULL || t->pipe != NULL);
        const mcl__pipe_ops *po = t->pipe;
        if (po != NULL) {
            CU_ASSERT(po->send && po->recv && po->rfd && po->wfd && po->close);
            CU_ASSERT(po->dial != NULL);
            CU_ASSERT((po->listen && po->server_fd && po->accept && po->server_close) ||
                      (!po->listen && !po->server_fd && !po->accept && !po->server_close));
            CU_ASSERT_EQUAL(po->flush != NULL, po->want_flush != NULL);
        }
        const mcl__bcast_ops *o = t->bcast;
        if (o == NULL) { // (then a queued listener has nothing to open)
            CU_ASSERT_EQUAL(t->caps, 0);
            continue;
        }
        CU_ASSERT(o->tx_open && o->tx_send && o->tx_close);
        CU_ASSERT(o->rx_open && o->rx_read && o->rx_fd && o->rx_close);
        // What the capabilities promise is there, and only then.
        CU_ASSERT_EQUAL((t->caps & MCL__TP_SUBCOUNT) != 0, o->tx_info != NULL);
        CU_ASSERT_EQUAL((t->caps & MCL__TP_EDGE_FD) != 0, o->rx_pending != NULL);
        CU_ASSERT_FALSE((t->caps & MCL__TP_PUBFILTER) && (t->caps & MCL__TP_FRAGMENT));
        if (t->caps & MCL__TP_FORK_FD)
            CU_ASSERT(t->caps & MCL__TP_XPROCESS);
        if (o->rx_probe != NULL) // a probe stands in for the socket a fork would share
            CU_ASSERT_FALSE(t->caps & MCL__TP_FORK_FD);
    }
}

static void
test_examples_parse_back(void)
{
    for (size_t i = 0; i < mcl__tport_count(); i++) {
        const mcl__tport *t = mcl__tport_at(i);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t->example);
        mcl_connection *c = mclt_parse(t->example);
        CU_ASSERT_PTR_EQUAL(c->tp, t);
        CU_ASSERT_STRING_EQUAL(mcl_connection_scheme(c), t->scheme);
        CU_ASSERT_EQUAL(mcl_connection_dgram(c) != 0, (t->caps & MCL__TP_FRAGMENT) != 0);
        mcl_connection *c2 = mclt_parse(mcl_connection_url(c));
        CU_ASSERT(mcl_connection_equal(c, c2));
        mcl_connection_free(c2);
        mcl_connection_free(c);
    }
}

static void
test_unknown_scheme_lists_the_registry(void)
{
    char err[256];
    mcl_connection *c;
    MCLT_ERR(mcl_connection_parse(&c, "sctp://x", err, sizeof(err)), MCL_EURL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown scheme 'sctp'"));
    for (size_t i = 0; i < mcl__tport_count(); i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(err, mcl__tport_at(i)->scheme));
#if !MCL_HAVE_ZMQ
    MCLT_ERR(mcl_connection_parse(&c, "zmq+tcp://h:1", err, sizeof(err)), MCL_EURL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no ZeroMQ"));
#endif
}

static CU_TestInfo tests[] = {
    {"every_transport_fills_its_ops", test_every_transport_fills_its_ops},
    {"examples_parse_back", test_examples_parse_back},
    {"unknown_scheme_lists_the_registry", test_unknown_scheme_lists_the_registry},
    CU_TEST_INFO_NULL};
MCLT_SUITE("transport_registry", NULL, NULL, tests);
