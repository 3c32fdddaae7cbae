// SPDX-License-Identifier: BSD-3-Clause
// Message broadcaster and listener over real sockets (run inside scripts/netns.sh).
#include "harness.h"

#include <stdatomic.h>
#include <string.h>

static const mcl_msgtype *imu;
static int group;

static int
suite_init(void)
{
    const mcl_field f[] = {{"ax", MCL_TYPE_FLOAT}, {"seq", MCL_TYPE_INT}};
    return mcl_msgtype_define(&imu, "Imu", f, 2, "udp://239.255.79.1:0?iface=lo&ttl=0", "imu",
                              NULL, 0) == MCL_OK
               ? 0
               : 1;
}

static mcl_connection *
fresh(void)
{
    char url[96];
    snprintf(url, sizeof(url), "udp://239.255.79.%d:0?iface=lo&ttl=0", 10 + ++group);
    mcl_connection *c;
    MCLT_OK(mcl_connection_parse(&c, url, NULL, 0));
    return c;
}

static mcl_msg *
imu_msg(double ax, int64_t seq)
{
    mcl_msg *m;
    MCLT_OK(mcl_msg_new(&m, imu));
    MCLT_OK(mcl_msg_set_double(m, "ax", ax));
    MCLT_OK(mcl_msg_set_int(m, "seq", seq));
    return m;
}

static void
test_roundtrip_and_refusals(void)
{
    mcl_connection *c = fresh();
    mcl_msg_listener *l;
    MCLT_OK(mcl_msg_listener_open(&l, imu, c, NULL, 0));
    mcl_connection *bound;
    MCLT_OK(mcl_connection_parse(&bound, mcl_msg_listener_url(l), NULL, 0));
    mcl_msg_broadcaster *b;
    MCLT_OK(mcl_msg_broadcaster_open(&b, imu, bound, NULL));
    // Refused before sending: another type, a missing field, a field of the wrong kind.
    mcl_msg *wrong;
    MCLT_OK(mcl_msg_new(&wrong, NULL));
    MCLT_OK(mcl_msg_set_str(wrong, "name", "Gnss"));
    MCLT_ERR(mcl_msg_broadcaster_publish(b, wrong, NULL), MCL_ETYPE);
    mcl_msg_free(wrong);
    mcl_msg *m = imu_msg(0.5, 1);
    MCLT_OK(mcl_msg_remove(m, "seq"));
    MCLT_ERR(mcl_msg_broadcaster_publish(b, m, NULL), MCL_EMISSING);
    MCLT_OK(mcl_msg_set_str(m, "seq", "one"));
    MCLT_ERR(mcl_msg_broadcaster_publish(b, m, NULL), MCL_ETYPE);
    mcl_msg_free(m);
    // A good one arrives decoded, on the type's default topic.
    m = imu_msg(0.25, 7);
    MCLT_OK(mcl_msg_set_str(m, "extra", "survives"));
    MCLT_OK(mcl_msg_broadcaster_publish(b, m, NULL));
    const mcl_msg *got;
    const mcl_raw_msg *raw;
    MCLT_OK(mcl_msg_listener_recv(l, &got, &raw, 5000));
    CU_ASSERT(mcl_value_equal(mcl_msg_fields(m), mcl_msg_fields(got)));
    CU_ASSERT_STRING_EQUAL(raw->topic, "imu");
    CU_ASSERT_EQUAL(raw->seq, 0); // the refused ones were never sent
    mcl_msg_stats st;
    MCLT_OK(mcl_msg_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.messages, 1);
    CU_ASSERT_EQUAL(st.raw.lost, 0);
    mcl_msg_free(m);
    // Publish after close fails; second close reports it.
    MCLT_OK(mcl_msg_broadcaster_close(b));
    MCLT_ERR(mcl_msg_broadcaster_close(b), MCL_ECLOSED);
    m = imu_msg(1, 1);
    MCLT_ERR(mcl_msg_broadcaster_publish(b, m, NULL), MCL_ECLOSED);
    mcl_msg_free(m);
    MCLT_OK(mcl_msg_listener_close(l));
    MCLT_ERR(mcl_msg_listener_close(l), MCL_ECLOSED);
    mcl_msg_broadcaster_free(b);
    mcl_msg_listener_free(l);
    mcl_connection_free(bound);
    mcl_connection_free(c);
}

static void
test_garbage_is_counted_and_skipped(void)
{
    mcl_connection *c = fresh();
    mcl_msg_listener *l;
    MCLT_OK(mcl_msg_listener_open(&l, imu, c, NULL, 0));
    mcl_connection *bound;
    MCLT_OK(mcl_connection_parse(&bound, mcl_msg_listener_url(l), NULL, 0));
    mcl_raw_broadcaster *rb;
    MCLT_OK(mcl_raw_broadcaster_open(&rb, bound, "imu"));
    MCLT_OK(mcl_raw_broadcaster_publish(rb, NULL, "not msgpack at all", 18));
    MCLT_OK(mcl_raw_broadcaster_publish(rb, NULL, "\x93\x01\x02\x03", 4)); // an array
    MCLT_OK(mcl_raw_broadcaster_publish(rb, NULL, "\x81\xa2" "ax\x01", 5)); // lacks "seq"
    MCLT_OK(mcl_raw_broadcaster_publish(rb, NULL, "", 0));
    mcl_msg_broadcaster *b;
    MCLT_OK(mcl_msg_broadcaster_open(&b, imu, bound, NULL));
    mcl_msg *m = imu_msg(2.5, 42);
    MCLT_OK(mcl_msg_broadcaster_publish(b, m, NULL));
    const mcl_msg *got;
    MCLT_OK(mcl_msg_listener_recv(l, &got, NULL, 5000));
    int64_t seq;
    MCLT_OK(mcl_msg_get_int(got, "seq", &seq));
    CU_ASSERT_EQUAL(seq, 42);
    mcl_msg_stats st;
    MCLT_OK(mcl_msg_listener_stats(l, &st));
    CU_ASSERT_EQUAL(st.undecodable, 4);
    CU_ASSERT_EQUAL(st.messages, 1);
    mcl_msg_free(m);
    mcl_msg_broadcaster_free(b);
    mcl_raw_broadcaster_free(rb);
    mcl_msg_listener_free(l);
    mcl_connection_free(bound);
    mcl_connection_free(c);
}

static atomic_int cb_count;
static char cb_topics[8][16];

static void
on_msg(const mcl_msg *m, const mcl_raw_msg *raw, void *user)
{
    (void)user;
    int i = atomic_load(&cb_count);
    if (i < 8)
        snprintf(cb_topics[i], 16, "%s", raw->topic);
    CU_ASSERT_STRING_EQUAL(mcl_msg_name(m), "Imu");
    atomic_fetch_add(&cb_count, 1);
}

static bool
have3(void *arg)
{
    (void)arg;
    return atomic_load(&cb_count) >= 3;
}

static void
test_mcl_filtered_messages_on_thread(void)
{
    // MCL: a message listener for topics A, C and E gets exactly those of A..E, in order.
    atomic_store(&cb_count, 0);
    mcl_connection *c = fresh();
    const char *topics[] = {"topic A", "topic C", "topic E"};
    mcl_msg_listener *l;
    MCLT_OK(mcl_msg_listener_open(&l, imu, c, topics, 3));
    MCLT_OK(mcl_msg_listener_subscribe(l, on_msg, NULL));
    MCLT_ERR(mcl_msg_listener_subscribe(l, on_msg, NULL), MCL_EALREADY);
    MCLT_OK(mcl_msg_listener_start(l));
    mcl_connection *bound;
    MCLT_OK(mcl_connection_parse(&bound, mcl_msg_listener_url(l), NULL, 0));
    mcl_msg_broadcaster *b;
    MCLT_OK(mcl_msg_broadcaster_open(&b, imu, bound, NULL));
    const char *all[] = {"topic A", "topic B", "topic C", "topic D", "topic E"};
    for (int i = 0; i < 5; i++) {
        mcl_msg *m = imu_msg(i, i);
        MCLT_OK(mcl_msg_broadcaster_publish(b, m, all[i]));
        mcl_msg_free(m);
    }
    CU_ASSERT_FATAL(mclt_wait_until(have3, NULL, 5000));
    MCLT_OK(mcl_msg_listener_stop(l));
    CU_ASSERT_EQUAL(atomic_load(&cb_count), 3);
    CU_ASSERT_STRING_EQUAL(cb_topics[0], "topic A");
    CU_ASSERT_STRING_EQUAL(cb_topics[1], "topic C");
    CU_ASSERT_STRING_EQUAL(cb_topics[2], "topic E");
    MCLT_OK(mcl_msg_listener_unsubscribe(l, on_msg, NULL));
    CU_ASSERT_EQUAL(mcl_msg_listener_subscriptions(l), 0);
    mcl_msg_broadcaster_free(b);
    mcl_msg_listener_free(l);
    mcl_connection_free(bound);
    mcl_connection_free(c);
}

static void
test_type_without_connection(void)
{
    const mcl_msgtype *t;
    MCLT_OK(mcl_msgtype_define(&t, "NoConn", NULL, 0, NULL, NULL, NULL, 0));
    mcl_msg_broadcaster *b;
    MCLT_ERR(mcl_msg_broadcaster_open(&b, t, NULL, NULL), MCL_EINVAL);
    mcl_msg_listener *l;
    MCLT_ERR(mcl_msg_listener_open(&l, t, NULL, NULL, 0), MCL_EINVAL);
    MCLT_ERR(mcl_msg_listener_open(&l, NULL, NULL, NULL, 0), MCL_EINVAL);
    MCLT_OK(mcl_msgtype_remove("NoConn"));
}

static CU_TestInfo tests[] = {
    {"roundtrip_and_refusals", test_roundtrip_and_refusals},
    {"garbage_is_counted_and_skipped", test_garbage_is_counted_and_skipped},
    {"mcl_filtered_messages_on_thread", test_mcl_filtered_messages_on_thread},
    {"type_without_connection", test_type_without_connection},
    CU_TEST_INFO_NULL};
MCLT_SUITE("msg_net", suite_init, NULL, tests);
