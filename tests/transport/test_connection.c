// SPDX-License-Identifier: BSD-3-Clause
#include "harness.h"

#include <stdlib.h>
#include <string.h>

typedef struct good_case {
    const char *url;
    const char *canon;
    int family;
    unsigned port;
    int ttl;
} good_case;

static const good_case good[] = {
    {"udp://239.255.26.1:26000", "udp://239.255.26.1:26000", 4, 26000, 1},
    {"udp://239.255.26.1", "udp://239.255.26.1:26000", 4, 26000, 1},
    {"udp://239.255.26.1:0?iface=lo&ttl=0", "udp://239.255.26.1:0?iface=lo&ttl=0", 4, 0, 0},
    {"udp://239.255.26.1:26000?ttl=1&iface=eth0", "udp://239.255.26.1:26000?iface=eth0", 4, 26000,
     1},
    {"udp://224.0.0.251:5353?ttl=255", "udp://224.0.0.251:5353?ttl=255", 4, 5353, 255},
    {"udp://[ff15::1]:26000?iface=veth0", "udp://[ff15::1]:26000?iface=veth0", 6, 26000, 1},
    {"udp://[FF15::C75D:CE41:EA8E:000A]:26000", "udp://[ff15::c75d:ce41:ea8e:a]:26000", 6, 26000,
     1},
    {"udp://[ff02::1%mcl0]:7", "udp://[ff02::1]:7?iface=mcl0", 6, 7, 1},
    {"udp://239.1.2.3:65535?loop=0&rcvbuf=4M&sndbuf=1m&maxmsg=1G&dgram=9000&expire=500&partmem=1G",
     "udp://239.1.2.3:65535?loop=0&rcvbuf=4M&sndbuf=1M&maxmsg=1G&dgram=9000&expire=500&partmem=1G",
     4, 65535, 1},
    {"udp://239.1.2.3:1/?loop=true", "udp://239.1.2.3:1", 4, 1, 1},
    {"udp://239.1.2.3:1?batch=100", "udp://239.1.2.3:1?batch=100", 4, 1, 1},
    {"udp://239.1.2.3:1?batch=0", "udp://239.1.2.3:1", 4, 1, 1},
    // Pacing: bytes per second with size suffixes (canonical: the largest exact one), messages
    // per second; 0 is the default (unpaced) and left out.
    {"udp://239.1.2.3:1?rate=200M&msgrate=5000", "udp://239.1.2.3:1?rate=200M&msgrate=5000", 4, 1,
     1},
    {"udp://239.1.2.3:1?msgrate=1&rate=1048576", "udp://239.1.2.3:1?rate=1M&msgrate=1", 4, 1, 1},
    {"udp://239.1.2.3:1?rate=1k&msgrate=10000000", "udp://239.1.2.3:1?rate=1k&msgrate=10000000",
     4, 1, 1},
    {"udp://239.1.2.3:1?rate=1025&batch=10", "udp://239.1.2.3:1?batch=10&rate=1025", 4, 1, 1},
    {"udp://239.1.2.3:1?rate=0&msgrate=0", "udp://239.1.2.3:1", 4, 1, 1},
    {"udp://239.1.2.3:1?rate=1024G", "udp://239.1.2.3:1?rate=1024G", 4, 1, 1},
    {"udp://239.1.2.3:1?rcvbuf=0&iface=127.0.0.1", "udp://239.1.2.3:1?iface=127.0.0.1&rcvbuf=0",
     4, 1, 1},
#if MCL_HAVE_ZMQ
    // ZeroMQ: family 0, ttl 0; options in a fixed order, defaults left out.
    {"zmq+tcp://127.0.0.1:5556", "zmq+tcp://127.0.0.1:5556", 0, 5556, 0},
    {"zmq+tcp://*:0", "zmq+tcp://*:0", 0, 0, 0},
    {"zmq+tcp://*:*/", "zmq+tcp://*:0", 0, 0, 0},
    {"zmq+tcp://collector.example-1:7?mode=connect", "zmq+tcp://collector.example-1:7?mode=connect",
     0, 7, 0},
    {"zmq+tcp://[::1]:9", "zmq+tcp://[::1]:9", 0, 9, 0},
    {"zmq+tcp://[0:0::1]:9?timeout=inf&linger=1000", "zmq+tcp://[::1]:9", 0, 9, 0},
    {"zmq+tcp://h:1?curve_server=keys/s.pub&curve=me.key&maxmsg=1M&linger=0&timeout=0&drop=1&hwm="
     "5&mode=bind",
     "zmq+tcp://h:1?mode=bind&hwm=5&drop=1&timeout=0&linger=0&maxmsg=1M&curve=me.key&curve_server="
     "keys/s.pub",
     0, 1, 0},
    {"zmq+ipc:///tmp/mcl.sock", "zmq+ipc:///tmp/mcl.sock", 0, 0, 0},
    {"zmq+ipc://rel/x?drop=0", "zmq+ipc://rel/x", 0, 0, 0},
    {"zmq+inproc://bus?hwm=100000", "zmq+inproc://bus?hwm=100000", 0, 0, 0},
    {"zmq+ipc://rel/x?coalesce=1", "zmq+ipc://rel/x", 0, 0, 0},
    {"zmq+inproc://bus?coalesce=0&batch=5", "zmq+inproc://bus?batch=5&coalesce=0", 0, 0, 0},
    {"zmq+inproc://b?batch=200&maxmsg=1k", "zmq+inproc://b?maxmsg=1k&batch=200", 0, 0, 0},
    {"zmq+tcp://h:1?msgrate=9&rate=64k", "zmq+tcp://h:1?rate=64k&msgrate=9", 0, 1, 0},
    {"zmq+tcp://*:5?curve_clients=ok.txt&curve=s.key", "zmq+tcp://*:5?curve=s.key&curve_clients=ok.txt",
     0, 5, 0},
#endif
    // inproc: faults first, then the generic options; defaults left out.
    {"inproc://bus", "inproc://bus", 0, 0, 0},
    {"inproc://a/b-c.d_e?seed=5&reorder=0.10&dup=0.05&drop=0.1&depth=8&queue=1M&dgram=1200&"
     "maxmsg=1M&expire=100&partmem=1G&batch=50",
     "inproc://a/b-c.d_e?drop=0.1&dup=0.05&reorder=0.1&depth=8&seed=5&queue=1M&maxmsg=1M&"
     "dgram=1200&expire=100&partmem=1G&batch=50",
     0, 0, 0},
    {"inproc://x?drop=1&depth=4&seed=1&queue=64M&dup=0", "inproc://x?drop=1", 0, 0, 0},
    {"inproc://x?drop=0.000001&reorder=1.0", "inproc://x?drop=0.000001&reorder=1", 0, 0, 0},
    {"inproc://x?rate=2G&msgrate=7", "inproc://x?rate=2G&msgrate=7", 0, 0, 0},
};

static void
test_valid_urls(void)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        mcl_connection *c = NULL;
        char err[256];
        mcl_err rv = mcl_connection_parse(&c, good[i].url, err, sizeof(err));
        if (rv != MCL_OK)
            fprintf(stderr, "\n  %s: %s\n", good[i].url, err);
        CU_ASSERT_EQUAL_FATAL(rv, MCL_OK);
        CU_ASSERT_STRING_EQUAL(mcl_connection_url(c), good[i].canon);
        CU_ASSERT_EQUAL(mcl_connection_family(c), good[i].family);
        CU_ASSERT_EQUAL(mcl_connection_port(c), good[i].port);
        CU_ASSERT_EQUAL(mcl_connection_ttl(c), good[i].ttl);
        // The canonical URL parses back to an equal connection.
        mcl_connection *c2 = NULL;
        MCLT_OK(mcl_connection_parse(&c2, mcl_connection_url(c), NULL, 0));
        CU_ASSERT(mcl_connection_equal(c, c2));
        mcl_connection_free(c2);
        mcl_connection_free(c);
    }
}

static void
test_option_values(void)
{
    mcl_connection *c = NULL;
    MCLT_OK(mcl_connection_parse(&c, "udp://239.1.1.1:9?rcvbuf=3k&loop=0&iface=lo&maxmsg=100",
                                 NULL, 0));
    CU_ASSERT_EQUAL(mcl_connection_rcvbuf(c), 3072);
    CU_ASSERT_FALSE(mcl_connection_loop(c));
    CU_ASSERT_STRING_EQUAL(mcl_connection_iface(c), "lo");
    CU_ASSERT_STRING_EQUAL(mcl_connection_group(c), "239.1.1.1");
    CU_ASSERT_EQUAL(mcl_connection_maxmsg(c), 100);
    CU_ASSERT_EQUAL(mcl_connection_dgram(c), 65000);
    mcl_connection *d = NULL;
    MCLT_OK(mcl_connection_dup(&d, c));
    CU_ASSERT(mcl_connection_equal(c, d));
    mcl_connection_free(d);
    mcl_connection_free(c);
    // IPv6 datagrams may be a little larger than IPv4 ones.
    MCLT_OK(mcl_connection_parse(&c, "udp://[ff15::1]:1?dgram=65527", NULL, 0));
    CU_ASSERT_EQUAL(mcl_connection_dgram(c), 65527);
    mcl_connection_free(c);
}

typedef struct bad_case {
    const char *url;
    const char *says; // a piece of the error message that names the problem
} bad_case;

static const bad_case bad[] = {
    {"", "empty"},
    {"239.255.0.1:26000", "missing scheme"},
    {"sctp://239.255.0.1:26000", "unknown scheme"},
#if MCL_HAVE_ZMQ
    {"zmq+epgm://127.0.0.1;239.1.1.1:5555", "not supported"},
    {"zmq+pgm://x", "not supported"},
    {"zmq+udp://127.0.0.1:5", "unknown ZeroMQ transport"},
    {"zmq+://127.0.0.1:5", "unknown scheme"},
    {"zmq+tcp://127.0.0.1", "missing port"},
    {"zmq+tcp://127.0.0.1:", "port"},
    {"zmq+tcp://127.0.0.1:65536", "port"},
    {"zmq+tcp://:5", "not a host name"},
    {"zmq+tcp://a/b:5", "not a host name"},
    {"zmq+tcp://[::1:5", "without ']'"},
    {"zmq+tcp://[zz]:5", "not an IPv6"},
    {"zmq+tcp://[::1]5", "missing port"},
    {"zmq+ipc://", "missing socket path"},
    {"zmq+inproc://", "missing endpoint name"},
    {"zmq+ipc:///tmp/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     "longer than 107"},
    {"zmq+tcp://h:1?ttl=0", "udp:// connections only"},
    {"udp://239.1.1.1:1?mode=bind", "zmq+ connections only"},
    {"udp://239.1.1.1:1?curve=k", "zmq+ connections only"},
    {"zmq+tcp://h:1?mode=both", "bind or connect"},
    {"zmq+tcp://h:1?drop=yes", "0 or 1"},
    {"zmq+tcp://h:1?coalesce=2", "coalesce '2' must be 0 or 1"},
    {"udp://239.1.1.1:1?coalesce=0", "zmq+ connections only"},
    {"zmq+tcp://h:1?timeout=-1", "milliseconds"},
    {"zmq+tcp://h:1?hwm=1e3", "number of messages"},
    {"zmq+tcp://h:1?linger=9999999", "milliseconds"},
    {"zmq+tcp://h:1?curve=", "key file"},
    {"zmq+tcp://h:1?wat=1", "known for zmq+"},
    {"zmq+tcp://h:1?hwm=1&hwm=2", "twice"},
    {"zmq+inproc://x?curve=k.key", "inproc never leaves"},
    {"zmq+tcp://h:1?curve_clients=ok.txt", "for the CURVE server"},
    {"zmq+tcp://h:1?curve=a.key&curve_server=s.pub&curve_clients=ok.txt", "for the CURVE server"},
    {"zmq+tcp://h:1?expire=5", "udp:// and inproc:// connections only"},
    {"zmq+tcp://h:1?seed=5", "inproc:// connections only"},
    {"udp://239.1.1.1:1?drop=1", "zmq+ and inproc:// connections only"},
    {"inproc://x?mode=bind", "zmq+ connections only"},
#else
    {"zmq+tcp://127.0.0.1:5556", "no ZeroMQ transport"},
    {"zmq+ipc:///tmp/x", "no ZeroMQ transport"},
    {"udp://239.1.1.1:1?drop=1", "inproc:// connections only"},
#endif
    {"udp://", "missing group"},
    {"udp://10.0.0.1:26000", "not a multicast address"},
    {"udp://127.0.0.1:26000", "not a multicast address"},
    {"udp://255.255.255.255:1", "not a multicast address"},
    {"udp://[::1]:26000", "not a multicast address"},
    {"udp://[fe80::1]:26000", "not a multicast address"},
    {"udp://localhost:26000", "not a numeric IPv4"},
    {"udp://239.1:26000", "not a numeric IPv4"},
    {"udp://239.255.0.256:1", "not a numeric IPv4"},
    {"udp://ff15::1:26000", "brackets"},
    {"udp://[ff15::1:26000", "without ']'"},
    {"udp://[zz::1]:26000", "not an IPv6 address"},
    {"udp://239.255.0.1:65536", "port"},
    {"udp://239.255.0.1:-1", "port"},
    {"udp://239.255.0.1:", "port"},
    {"udp://239.255.0.1:12ab", "port"},
    {"udp://239.255.0.1:99999999999999999999999", "port"},
    {"udp://239.255.0.1:1?ttl=256", "ttl"},
    {"udp://239.255.0.1:1?ttl=-1", "ttl"},
    {"udp://239.255.0.1:1?ttl=", "ttl"},
    {"udp://239.255.0.1:1?ttl", "KEY=VALUE"},
    {"udp://239.255.0.1:1?=5", "KEY=VALUE"},
    {"udp://239.255.0.1:1?colour=red", "unknown option 'colour'"},
    {"udp://239.255.0.1:1?loop=2", "loop"},
    {"udp://239.255.0.1:1?rcvbuf=lots", "rcvbuf"},
    {"udp://239.255.0.1:1?rcvbuf=3G", "rcvbuf"},
    {"udp://239.255.0.1:1?maxmsg=0", "maxmsg"},
    {"udp://239.255.0.1:1?maxmsg=4G", "maxmsg"},
    {"udp://239.255.0.1:1?dgram=100", "dgram"},
    {"udp://239.255.0.1:1?dgram=65520", "IPv4 limit"},
    {"udp://239.255.0.1:1?expire=0", "expire"},
    {"udp://239.255.0.1:1?batch=2000000", "batch"},
    {"udp://239.255.0.1:1?rate=fast", "rate 'fast' is not bytes per second"},
    {"udp://239.255.0.1:1?rate=", "rate '' is not"},
    {"udp://239.255.0.1:1?rate=-1M", "rate '-1M'"},
    {"udp://239.255.0.1:1?rate=1023", "rate '1023'"},
    {"udp://239.255.0.1:1?rate=1025G", "rate '1025G'"},
    {"udp://239.255.0.1:1?rate=1.5M", "rate '1.5M'"},
    {"udp://239.255.0.1:1?rate=99999999999999999999999", "rate '9999"},
    {"udp://239.255.0.1:1?rate=5000msg", "rate '5000msg'"},
    {"udp://239.255.0.1:1?msgrate=10000001", "msgrate '10000001' is not messages per second"},
    {"udp://239.255.0.1:1?msgrate=1k", "msgrate '1k'"},
    {"udp://239.255.0.1:1?msgrate=-5", "msgrate '-5'"},
    {"udp://239.255.0.1:1?rate=1M&rate=2M", "'rate' is given twice"},
    {"inproc://x?rate=abc", "rate 'abc'"},
    {"tcp://127.0.0.1:1?rate=1M", "applies to connections with broadcasters"},
    {"unix:///tmp/x.sock?msgrate=5", "applies to connections with broadcasters"},
    {"udp://239.255.0.1:1?iface=", "iface"},
    {"udp://239.255.0.1:1?iface=a/b", "iface"},
    {"udp://239.255.0.1:1 ", "invalid character"},
    {"udp://239.255.0.1:1#frag", "port"},
    {"udp://239.255.0.1#frag", "not a numeric IPv4"},
    {"udp://239.255.0.1:1/x", "unexpected"},
    {"udp://239.255.0.1:1?ttl=1&&loop=1", "KEY=VALUE"},
    {"udp://[ff02::1%x&ttl=9]:1", "after '%'"},
    {"udp://[ff02::1%a/b]:1", "after '%'"},
    {"udp://[ff02::1%]:1", "after '%'"},
    {"udp://[ff02::1%eth0]:1?iface=lo", "given twice"},
    {"udp://239.255.0.1:1?iface=lo&iface=eth0", "given twice"},
    {"udp://239.255.0.1:1?ttl=1&loop=1&ttl=2", "'ttl' is given twice"},
    {"inproc://", "missing group name"},
    {"inproc://a:b", "':' in the group name"},
    {"inproc://a?b", "not KEY=VALUE"},
    {"inproc://xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     "longer than 127"},
    {"inproc://x?drop=1.5", "probability"},
    {"inproc://x?drop=0.1234567", "probability"},
    {"inproc://x?dup=-0.1", "probability"},
    {"inproc://x?reorder=.5", "probability"},
    {"inproc://x?reorder=0.", "probability"},
    {"inproc://x?depth=0", "depth"},
    {"inproc://x?depth=65", "depth"},
    {"inproc://x?seed=abc", "seed"},
    {"inproc://x?queue=1k", "at least 64k"},
    {"inproc://x?dgram=100", "dgram"},
    {"inproc://x?ttl=1", "udp:// connections only"},
    {"inproc://x?bogus=1", "unknown option 'bogus'"},
    {"inproc://x?drop=0.1&drop=0.2", "twice"},
    {"udp://239.1.1.1:1?seed=1", "inproc:// connections only"},
};

static void
test_invalid_urls(void)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mcl_connection *c = (mcl_connection *)(uintptr_t)1; // must be reset to NULL
        char err[256] = "untouched";
        mcl_err rv = mcl_connection_parse(&c, bad[i].url, err, sizeof(err));
        if (rv != MCL_EURL || strstr(err, bad[i].says) == NULL)
            fprintf(stderr, "\n  '%s' -> %s: '%s' (expected to mention '%s')\n", bad[i].url,
                    mcl_err_name(rv), err, bad[i].says);
        CU_ASSERT_EQUAL(rv, MCL_EURL);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].says));
    }
}

static void
test_bad_arguments_and_garbage(void)
{
    mcl_connection *c;
    MCLT_ERR(mcl_connection_parse(NULL, "udp://239.1.1.1:1", NULL, 0), MCL_EINVAL);
    MCLT_ERR(mcl_connection_parse(&c, NULL, NULL, 0), MCL_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    // A very long URL and random bytes are rejected, never crash.
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    MCLT_ERR(mcl_connection_parse(&c, big, NULL, 0), MCL_EURL);
    uint64_t s = 42;
    // Random bytes after every scheme's prefix, and printable option soup after a valid
    // address: refused or parsed, never a crash, and what parses prints back to itself.
    const char *prefixes[] = {"udp://", "inproc://", "zmq+tcp://", "zmq+ipc://",
                              "udp://239.1.2.3:4?", "inproc://x?", "zmq+tcp://h:1?"};
    const char soup[] = "abcdefghijklmnopqrstuvwxyz0123456789=&?.:-_/%[]*";
    for (size_t pi = 0; pi < sizeof(prefixes) / sizeof(prefixes[0]); pi++) {
        for (int i = 0; i < 3000; i++) {
            char u[96];
            size_t pl = strlen(prefixes[pi]);
            memcpy(u, prefixes[pi], pl);
            size_t n = pl + mclt_rand(&s) % 50;
            bool printable = prefixes[pi][pl - 1] == '?';
            for (size_t k = pl; k < n; k++)
                u[k] = printable ? soup[mclt_rand(&s) % (sizeof(soup) - 1)]
                                 : (char)(1 + mclt_rand(&s) % 127);
            u[n] = '\0';
            mcl_err rv = mcl_connection_parse(&c, u, NULL, 0);
            CU_ASSERT(rv == MCL_OK || rv == MCL_EURL);
            if (rv == MCL_OK) {
                mcl_connection *c2 = NULL;
                CU_ASSERT_EQUAL(mcl_connection_parse(&c2, mcl_connection_url(c), NULL, 0),
                                MCL_OK);
                CU_ASSERT(mcl_connection_equal(c, c2));
                mcl_connection_free(c2);
            }
            mcl_connection_free(c);
        }
    }
    // Free and accessors are NULL-safe.
    mcl_connection_free(NULL);
    CU_ASSERT_STRING_EQUAL(mcl_connection_url(NULL), "");
    CU_ASSERT_FALSE(mcl_connection_equal(NULL, NULL));
}

static void
test_default_and_env(void)
{
    mcl_connection *c = NULL;
    unsetenv("MCL_URL");
    MCLT_OK(mcl_connection_default(&c, NULL, 0));
    CU_ASSERT_STRING_EQUAL(mcl_connection_url(c), MCL_DEFAULT_URL);
    CU_ASSERT_EQUAL(mcl_connection_ttl(c), 0); // the default never leaves the host
    mcl_connection_free(c);

    setenv("MCL_URL", "udp://239.9.9.9:999?ttl=0", 1);
    MCLT_OK(mcl_connection_default(&c, NULL, 0));
    CU_ASSERT_STRING_EQUAL(mcl_connection_url(c), "udp://239.9.9.9:999?ttl=0");
    mcl_connection_free(c);

    char err[256];
    setenv("MCL_URL", "udp://1.2.3.4:5", 1);
    MCLT_ERR(mcl_connection_default(&c, err, sizeof(err)), MCL_EURL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "MCL_URL"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a multicast"));
    unsetenv("MCL_URL");
}

static int log_calls;
static char log_last[512];
static void
log_sink(mcl_log_level level, const char *component, const char *message, void *user)
{
    (void)component;
    CU_ASSERT_PTR_EQUAL(user, &log_calls);
    (void)level;
    log_calls++;
    snprintf(log_last, sizeof(log_last), "%s", message);
}

static void
test_errors_reach_the_log_callback(void)
{
    mcl_connection *c;
    mcl_log_set_handler(log_sink, &log_calls, MCL_LOG_WARN);
    log_calls = 0;
    // Without an error buffer the detail is a warning; with one, only a debug record.
    MCLT_ERR(mcl_connection_parse(&c, "udp://239.1.1.1:1?bogus=1", NULL, 0), MCL_EURL);
    CU_ASSERT_EQUAL(log_calls, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(log_last, "bogus"));
    char err[128];
    MCLT_ERR(mcl_connection_parse(&c, "udp://239.1.1.1:1?bogus=2", err, sizeof(err)), MCL_EURL);
    CU_ASSERT_EQUAL(log_calls, 1);
    mcl_log_set_handler(log_sink, &log_calls, MCL_LOG_DEBUG);
    MCLT_ERR(mcl_connection_parse(&c, "udp://239.1.1.1:1?bogus=3", err, sizeof(err)), MCL_EURL);
    CU_ASSERT_EQUAL(log_calls, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(log_last, "bogus"));
    mcl_log_set_handler(NULL, NULL, MCL_LOG_DEBUG);
    MCLT_ERR(mcl_connection_parse(&c, "udp://239.1.1.1:1?bogus=1", NULL, 0), MCL_EURL);
    CU_ASSERT_EQUAL(log_calls, 2); // silent without a handler
}

static CU_TestInfo tests[] = {{"valid_urls", test_valid_urls},
                              {"option_values", test_option_values},
                              {"invalid_urls", test_invalid_urls},
                              {"bad_arguments_and_garbage", test_bad_arguments_and_garbage},
                              {"default_and_env", test_default_and_env},
                              {"errors_reach_the_log_callback", test_errors_reach_the_log_callback},
                              CU_TEST_INFO_NULL};
MCLT_SUITE("transport_connection", NULL, NULL, tests);
