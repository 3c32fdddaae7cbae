// SPDX-License-Identifier: BSD-3-Clause
// A small RPC service and its client, both sides of include/mcl/rpc.h:
//   rpc_calc serve URL          serve calc.add and calc.div until Ctrl-C (or stdin closes)
//   rpc_calc call URL A B       call calc.add and calc.div with a = A, b = B
// Try: ./rpc_calc serve zmq+tcp://127.0.0.1:5601 & ./rpc_calc call zmq+tcp://127.0.0.1:5601 6 3
// (mcl-call zmq+tcp://127.0.0.1:5601 --list shows its description.)
#include <mcl/rpc.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// --- the service ---------------------------------------------------------------------------------

static void
add(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    double a, b; // the schema was checked: both are there, and numbers
    mcl_value_get_double(mcl_value_find(args, "a"), &a);
    mcl_value_get_double(mcl_value_find(args, "b"), &b);
    mcl_value_put_double(mcl_rpc_req_result(rq), "sum", a + b);
    mcl_rpc_reply(rq);
}

static void
divide(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    double a, b;
    mcl_value_get_double(mcl_value_find(args, "a"), &a);
    mcl_value_get_double(mcl_value_find(args, "b"), &b);
    if (b == 0) { // every failure is an answer too: the caller gets the status and the text
        mcl_rpc_fail(rq, MCL_PSTREAM_INVALID_ARGUMENT, "cannot divide %g by 0", a);
        return;
    }
    mcl_value_put_double(mcl_rpc_req_result(rq), "q", a / b);
    mcl_rpc_reply(rq);
}

static const mcl_rpc_field ab[] = {{"a", MCL_TYPE_FLOAT, false, NULL, "left operand"},
                                   {"b", MCL_TYPE_FLOAT, false, NULL, "right operand"}};
static const mcl_rpc_field sum[] = {{"sum", MCL_TYPE_FLOAT, false, NULL, NULL}};
static const mcl_rpc_field quot[] = {{"q", MCL_TYPE_FLOAT, false, NULL, NULL}};

// Ids are part of the interface: chosen here, never derived from the order of this table.
static const mcl_rpc_method methods[] = {
    {10, "calc.add", "a + b", ab, 2, sum, 1, 0, add, NULL},
    {11, "calc.div", "a / b", ab, 2, quot, 1, 0, divide, NULL},
};

static volatile sig_atomic_t stop;
static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int
serve(const char *url)
{
    mcl_rpc_service *s;
    char why[256];
    if (mcl_rpc_service_new(&s, "calc", "two operations", NULL) != MCL_OK ||
        mcl_rpc_service_add(s, methods, 2, why, sizeof(why)) != MCL_OK) {
        fprintf(stderr, "rpc_calc: %s\n", why);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    mcl_err rv = mcl_rpc_service_listen(s, url);
    if (rv != MCL_OK) {
        fprintf(stderr, "rpc_calc: %s: %s\n", url, mcl_strerror(rv));
        mcl_rpc_service_free(s, 0);
        return 1;
    }
    printf("serving calc on %s\n", mcl_rpc_service_url(s));
    fflush(stdout);
    while (!stop) { // the service runs on its own thread meanwhile
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    mcl_rpc_service_free(s, 1000);
    return 0;
}

// --- the client --------------------------------------------------------------------------------

static int
call(const char *url, double a, double b)
{
    mcl_rpc_client *c;
    char why[256];
    if (mcl_rpc_client_open(&c, url, NULL, why, sizeof(why)) != MCL_OK) {
        fprintf(stderr, "rpc_calc: %s\n", why);
        return 1;
    }
    mcl_value *args;
    mcl_value_new(&args, MCL_TYPE_MAP);
    mcl_value_put_double(args, "a", a);
    mcl_value_put_double(args, "b", b);
    int ec = 0;
    const char *names[] = {"calc.add", "calc.div"}, *keys[] = {"sum", "q"};
    for (int i = 0; i < 2; i++) {
        mcl_rpc_result *r;
        if (mcl_rpc_call(c, names[i], args, 2000, &r) != MCL_OK) {
            ec = 1;
            continue;
        }
        double v;
        if (r->status == MCL_PSTREAM_OK &&
            mcl_value_get_double(mcl_value_find(r->value, keys[i]), &v) == MCL_OK) {
            printf("%s(%g, %g) = %g\n", names[i], a, b, v);
        } else {
            printf("%s(%g, %g) failed: %s: %s\n", names[i], a, b, mcl_rpc_status_name(r->status),
                   r->message);
            ec = 1;
        }
        mcl_rpc_result_free(r);
    }
    mcl_value_free(args);
    mcl_rpc_client_free(c, 1000);
    return ec;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2]);
    if (argc == 5 && strcmp(argv[1], "call") == 0)
        return call(argv[2], atof(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: rpc_calc serve URL | rpc_calc call URL A B\n");
    return 2;
}
