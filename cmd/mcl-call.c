// SPDX-License-Identifier: BSD-3-Clause
// mcl-call: list the methods of an RPC service and call them from the command line, with JSON
// arguments; or serve a demo service to try it on.
#define _GNU_SOURCE
#include "common.h"

#include <mcl/rpc.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "mcl-call";

enum { EXIT_STATUS_BASE = 10 }; // a call that ended with status S exits 10 + S

static void
usage(FILE *f)
{
    fprintf(
        f, "Usage: mcl-call [OPTION]... URL --list\n"
           "       mcl-call [OPTION]... URL METHOD ['{\"json\": \"arguments\"}']\n"
           "       mcl-call [OPTION]... --serve-demo URL\n"
           "Call a method of the mcl RPC service at URL (zmq+tcp://HOST:PORT, zmq+ipc://PATH)\n"
           "and print its result as JSON. METHOD is a name (calc.add) or #ID. The arguments\n"
           "(default {}) are checked against the schema the service publishes before anything\n"
           "is sent; a refusal names the field.\n"
           "\n"
           "  -l, --list          list the methods: ids, names, argument and result schemas\n"
           "  -t, --timeout MS    the call's deadline (default 20000; also bounds connecting)\n"
           "      --channel N     the service's packet-stream channel, decimal or 0x hex (default 0;\n"
           "                      an mcl-broker's control methods: 0x4243)\n"
           "  -j, --json          machine-readable output: the whole outcome as one JSON object\n"
           "                      ({\"status\", \"code\", \"message\", \"field\", \"local\",\n"
           "                      \"result\", \"latency_us\"});\n"
           "                      with --list, the service's description\n"
           "  -p, --pretty        indent the JSON\n"
           "      --serve-demo URL  serve a demo service (calc.add, calc.div, text.upper,\n"
           "                      demo.sleep, demo.echo, clock.now) until Ctrl-C\n"
           "  -v, --verbose       the library's warnings on stderr\n"
           "  -h, --help          this text\n"
           "      --version       version\n"
           "\n"
           "Try it: mcl-call --serve-demo zmq+tcp://127.0.0.1:5600 &\n"
           "        mcl-call zmq+tcp://127.0.0.1:5600 --list\n"
           "        mcl-call zmq+tcp://127.0.0.1:5600 calc.add '{\"a\": 1, \"b\": 2}'\n"
           "\n" TOOL_HELP_EXIT_WITH("the call succeeded (--serve-demo: stopped by SIGINT or SIGTERM)",
                                   "     (no service in time, a connection lost before the call)\n")
           "     (also: arguments that are not JSON)\n"
           "  10+S  the call ended with RPC status S (13 INVALID_ARGUMENT, also when refused\n"
           "     before sending; 14 DEADLINE_EXCEEDED; 22 UNIMPLEMENTED; 31 NO_MORE_REQUESTS;\n"
           "     32 DISCONNECTED; ...)\n");
}

// --- listing -----------------------------------------------------------------------------------

static void
print_fields(const mcl_rpc_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        printf("%s%s%s: %s", i ? ", " : "", f[i].name, f[i].optional ? "?" : "",
               mcl_type_name(f[i].type));
        if (f[i].def != NULL)
            printf(" = %s", f[i].def);
    }
}

static void
list_text(const mcl_rpc_client *c)
{
    size_t n = mcl_rpc_client_nmethods(c);
    printf("service %s%s%s (%zu methods)\n", mcl_rpc_client_service_name(c),
           mcl_rpc_client_service_doc(c)[0] ? ": " : "", mcl_rpc_client_service_doc(c), n);
    for (size_t i = 0; i < n; i++) {
        const mcl_rpc_method_info *m = mcl_rpc_client_method_at(c, i);
        printf("%10u  %s(", (unsigned)m->id, m->name);
        print_fields(m->args, m->nargs);
        if (m->flags & MCL_RPC_OPEN_ARGS)
            printf("%s...", m->nargs ? ", " : "");
        printf(") -> {");
        print_fields(m->result, m->nresult);
        if (m->flags & MCL_RPC_OPEN_RESULT)
            printf("%s...", m->nresult ? ", " : "");
        printf("}\n");
        if (m->doc[0] != '\0')
            printf("%10s  %s\n", "", m->doc);
        for (size_t k = 0; k < m->nargs; k++)
            if (m->args[k].doc[0] != '\0')
                printf("%10s    %s: %s\n", "", m->args[k].name, m->args[k].doc);
    }
}

static mcl_err
describe_fields(mcl_value *arr, const mcl_rpc_field *f, size_t n)
{
    mcl_err rv = MCL_OK;
    for (size_t i = 0; i < n && rv == MCL_OK; i++) {
        mcl_value *e;
        rv = mcl_value_push_map(arr, &e);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "name", f[i].name);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "type", mcl_type_name(f[i].type));
        if (rv == MCL_OK)
            rv = mcl_value_put_bool(e, "optional", f[i].optional);
        if (rv == MCL_OK && f[i].def != NULL) {
            mcl_value *d;
            rv = mcl_value_from_json(&d, f[i].def, strlen(f[i].def), NULL, 0);
            if (rv == MCL_OK) {
                rv = mcl_value_put_copy(e, "default", d);
                mcl_value_free(d);
            }
        }
        if (rv == MCL_OK && f[i].doc[0] != '\0')
            rv = mcl_value_put_str(e, "doc", f[i].doc);
    }
    return rv;
}

static int
list_json(const mcl_rpc_client *c, int jflags)
{
    mcl_value *d, *ms;
    mcl_err rv = mcl_value_new(&d, MCL_TYPE_MAP);
    if (rv == MCL_OK)
        rv = mcl_value_put_str(d, "service", mcl_rpc_client_service_name(c));
    if (rv == MCL_OK)
        rv = mcl_value_put_str(d, "doc", mcl_rpc_client_service_doc(c));
    if (rv == MCL_OK)
        rv = mcl_value_put_uint(d, "max_args", mcl_rpc_client_max_args(c));
    if (rv == MCL_OK)
        rv = mcl_value_put_array(d, "methods", &ms);
    for (size_t i = 0; i < mcl_rpc_client_nmethods(c) && rv == MCL_OK; i++) {
        const mcl_rpc_method_info *m = mcl_rpc_client_method_at(c, i);
        mcl_value *e, *a, *r;
        rv = mcl_value_push_map(ms, &e);
        if (rv == MCL_OK)
            rv = mcl_value_put_uint(e, "id", m->id);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "name", m->name);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(e, "doc", m->doc);
        if (rv == MCL_OK)
            rv = mcl_value_put_bool(e, "open_args", (m->flags & MCL_RPC_OPEN_ARGS) != 0);
        if (rv == MCL_OK)
            rv = mcl_value_put_bool(e, "open_result", (m->flags & MCL_RPC_OPEN_RESULT) != 0);
        if (rv == MCL_OK && (rv = mcl_value_put_array(e, "args", &a)) == MCL_OK)
            rv = describe_fields(a, m->args, m->nargs);
        if (rv == MCL_OK && (rv = mcl_value_put_array(e, "result", &r)) == MCL_OK)
            rv = describe_fields(r, m->result, m->nresult);
    }
    char *js = NULL;
    if (rv == MCL_OK)
        rv = mcl_value_to_json(d, jflags, &js);
    mcl_value_free(d);
    if (rv != MCL_OK) {
        tool_err(prog, "cannot print the description: %s", mcl_strerror(rv));
        return EXIT_RUNTIME;
    }
    printf("%s\n", js);
    mcl_free(js);
    return EXIT_OK;
}

// --- calling -----------------------------------------------------------------------------------

static int
print_outcome(const char *method, const mcl_rpc_result *r, bool as_json, int jflags)
{
    int ec = r->status == MCL_PSTREAM_OK ? EXIT_OK : EXIT_STATUS_BASE + (int)r->status;
    if (ec > 255)
        ec = 255;
    if (as_json) {
        mcl_value *o;
        mcl_err rv = mcl_value_new(&o, MCL_TYPE_MAP);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(o, "status", mcl_rpc_status_name(r->status));
        if (rv == MCL_OK)
            rv = mcl_value_put_int(o, "code", (int64_t)r->status);
        if (rv == MCL_OK)
            rv = mcl_value_put_str(o, "message", r->message);
        if (rv == MCL_OK && r->field[0] != '\0')
            rv = mcl_value_put_str(o, "field", r->field);
        if (rv == MCL_OK)
            rv = mcl_value_put_bool(o, "local", r->local);
        if (rv == MCL_OK && r->value != NULL)
            rv = mcl_value_put_copy(o, "result", r->value);
        if (rv == MCL_OK)
            rv = mcl_value_put_int(o, "latency_us", r->latency_ns / 1000);
        char *js = NULL;
        if (rv == MCL_OK)
            rv = mcl_value_to_json(o, jflags, &js);
        mcl_value_free(o);
        if (rv != MCL_OK) {
            tool_err(prog, "cannot print the result: %s", mcl_strerror(rv));
            return EXIT_RUNTIME;
        }
        printf("%s\n", js);
        mcl_free(js);
        return ec;
    }
    if (r->status == MCL_PSTREAM_OK) {
        char *js = NULL;
        mcl_err rv = mcl_value_to_json(r->value, jflags, &js);
        if (rv != MCL_OK) {
            tool_err(prog, "cannot print the result: %s", mcl_strerror(rv));
            return EXIT_RUNTIME;
        }
        printf("%s\n", js);
        mcl_free(js);
        return EXIT_OK;
    }
    const char *where = "";
    if (r->local)
        where = r->status == MCL_PSTREAM_INVALID_ARGUMENT ||
                        r->status == MCL_PSTREAM_RESOURCE_EXHAUSTED ||
                        r->status == MCL_PSTREAM_UNIMPLEMENTED
                    ? " (refused before sending)"
                : r->status == MCL_PSTREAM_DEADLINE_EXCEEDED ? " (no answer in time)"
                                                             : " (on this side)";
    tool_err(prog, "%s: %s%s: %s", method, mcl_rpc_status_name(r->status), where,
             r->message[0] ? r->message : mcl_pstream_status_text(r->status));
    return ec;
}

static uint32_t rpc_channel; // --channel: the service's packet-stream channel (0 by default)

static int
run_call(const char *url, const char *method, const char *args_json, bool list, int timeout_ms,
         bool as_json, int jflags)
{
    mcl_value *args = NULL;
    char why[512];
    if (args_json != NULL &&
        mcl_value_from_json(&args, args_json, strlen(args_json), why, sizeof(why)) != MCL_OK) {
        tool_err(prog, "the arguments are not JSON: %s", why);
        return EXIT_USAGE;
    }
    if (args != NULL && mcl_value_type(args) != MCL_TYPE_MAP) {
        tool_err(prog, "the arguments must be a JSON object ({\"name\": value, ...}), not a %s",
                 mcl_type_name(mcl_value_type(args)));
        mcl_value_free(args);
        return EXIT_USAGE;
    }
    mcl_rpc_client_options o = {.timeout_ms = timeout_ms,
                                .describe_ms =
                                    timeout_ms > 0 && timeout_ms < 5000 ? timeout_ms : 5000,
                                .channel = rpc_channel};
    mcl_rpc_client *c;
    mcl_err rv = mcl_rpc_client_open(&c, url, &o, why, sizeof(why));
    if (rv != MCL_OK) {
        tool_err(prog, "%s", why[0] ? why : mcl_strerror(rv));
        mcl_value_free(args);
        return tool_open_status(url, rv);
    }
    int ec;
    if (list) {
        ec = as_json ? list_json(c, jflags) : (list_text(c), EXIT_OK);
    } else {
        mcl_rpc_result *r = NULL;
        rv = mcl_rpc_call(c, method, args, timeout_ms, &r);
        if (rv == MCL_EINVAL && method[0] == '#') {
            tool_err(prog, "'%s': an id is # and a number from 1 to 4294967295", method);
            ec = EXIT_USAGE;
        } else if (rv != MCL_OK) {
            tool_err(prog, "%s: the call failed: %s", method, mcl_strerror(rv));
            ec = EXIT_RUNTIME;
        } else {
            ec = print_outcome(method, r, as_json, jflags);
        }
        mcl_rpc_result_free(r);
    }
    fflush(stdout);
    mcl_rpc_client_free(c, 1000);
    mcl_value_free(args);
    return ec;
}

// --- the demo service ----------------------------------------------------------------------------

typedef struct demo {
    mcl_reactor *r;
    pthread_mutex_t mu;
    struct sleeper {
        mcl_rpc_req *rq;
        int64_t ms;
        struct sleeper *next, *prev;
        struct demo *d;
    } * sleeping; // deferred demo.sleep calls (the reactor thread's, until it stops)
} demo;

static double
arg_num(const mcl_value *args, const char *key)
{
    double d = 0;
    (void)mcl_value_get_double(mcl_value_find(args, key), &d);
    return d;
}

static void
d_add(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    mcl_value_put_double(mcl_rpc_req_result(rq), "sum", arg_num(args, "a") + arg_num(args, "b"));
    mcl_rpc_reply(rq);
}

static void
d_div(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    double b = arg_num(args, "b");
    if (b == 0) {
        mcl_rpc_fail(rq, MCL_PSTREAM_INVALID_ARGUMENT, "b must not be 0");
        return;
    }
    mcl_value_put_double(mcl_rpc_req_result(rq), "q", arg_num(args, "a") / b);
    mcl_rpc_reply(rq);
}

static void
d_upper(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    const char *s;
    size_t n;
    (void)mcl_value_get_str(mcl_value_find(args, "s"), &s, &n);
    char *u = malloc(n + 1);
    if (u == NULL) {
        mcl_rpc_fail(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        u[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
    u[n] = '\0';
    mcl_value_put_strn(mcl_rpc_req_result(rq), "s", u, n);
    free(u);
    mcl_rpc_reply(rq);
}

static void
sleeper_unlink(demo *d, struct sleeper *s)
{
    pthread_mutex_lock(&d->mu);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        d->sleeping = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    pthread_mutex_unlock(&d->mu);
}

static void
sleep_done(mcl_reactor *r, mcl_handle h, void *user)
{
    (void)r;
    (void)h;
    struct sleeper *s = user;
    sleeper_unlink(s->d, s);
    mcl_value_put_int(mcl_rpc_req_result(s->rq), "slept_ms", s->ms);
    (void)mcl_rpc_reply(s->rq); // MCL_ECANCELED when the caller gave up: nothing sent
    free(s);
}

static void
d_sleep(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    demo *d = user;
    int64_t ms = 0;
    (void)mcl_value_get_int(mcl_value_find(args, "ms"), &ms);
    if (ms < 0 || ms > 3600000) {
        mcl_rpc_fail(rq, MCL_PSTREAM_OUT_OF_RANGE, "ms must be 0..3600000");
        return;
    }
    struct sleeper *s = calloc(1, sizeof(*s));
    if (s == NULL || mcl_rpc_defer(rq) != MCL_OK) {
        free(s);
        mcl_rpc_fail(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    *s = (struct sleeper){.rq = rq, .ms = ms, .d = d};
    pthread_mutex_lock(&d->mu);
    s->next = d->sleeping;
    if (s->next != NULL)
        s->next->prev = s;
    d->sleeping = s;
    pthread_mutex_unlock(&d->mu);
    if (mcl_reactor_timer(d->r, ms, 0, 0, sleep_done, s, NULL) != MCL_OK) {
        sleeper_unlink(d, s);
        free(s);
        mcl_rpc_fail(rq, MCL_PSTREAM_RESOURCE_EXHAUSTED, "no timer");
    }
}

static void
d_echo(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)user;
    mcl_value *res = mcl_rpc_req_result(rq);
    for (size_t i = 0; i < mcl_value_count(args); i++) {
        const char *k;
        const mcl_value *v = mcl_value_entry(args, i, &k);
        mcl_value_put_copy(res, k, v);
    }
    mcl_rpc_reply(rq);
}

static void
d_now(mcl_rpc_req *rq, const mcl_value *args, void *user)
{
    (void)args;
    (void)user;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mcl_value_put_double(mcl_rpc_req_result(rq), "unix", (double)ts.tv_sec + ts.tv_nsec / 1e9);
    char iso[40];
    tool_format_time((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, iso, sizeof(iso));
    mcl_value_put_str(mcl_rpc_req_result(rq), "iso", iso);
    mcl_rpc_reply(rq);
}

static int
serve_demo(const char *url)
{
    static const mcl_rpc_field ab[] = {{"a", MCL_TYPE_FLOAT, false, NULL, "a number"},
                                       {"b", MCL_TYPE_FLOAT, false, NULL, "a number"}};
    static const mcl_rpc_field sum[] = {{"sum", MCL_TYPE_FLOAT, false, NULL, NULL}};
    static const mcl_rpc_field q[] = {{"q", MCL_TYPE_FLOAT, false, NULL, NULL}};
    static const mcl_rpc_field s[] = {{"s", MCL_TYPE_STR, false, NULL, "text"}};
    static const mcl_rpc_field ms[] = {
        {"ms", MCL_TYPE_INT, true, "1000", "how long, in milliseconds"}};
    static const mcl_rpc_field slept[] = {{"slept_ms", MCL_TYPE_INT, false, NULL, NULL}};
    static const mcl_rpc_field now[] = {{"unix", MCL_TYPE_FLOAT, false, NULL, "seconds"},
                                        {"iso", MCL_TYPE_STR, false, NULL, "UTC, ISO 8601"}};
    demo d = {.sleeping = NULL};
    pthread_mutex_init(&d.mu, NULL);
    const mcl_rpc_method methods[] = {
        {1, "calc.add", "a + b", ab, 2, sum, 1, 0, d_add, NULL},
        {2, "calc.div", "a / b (b = 0: INVALID_ARGUMENT)", ab, 2, q, 1, 0, d_div, NULL},
        {3, "text.upper", "s in capitals (ASCII)", s, 1, s, 1, 0, d_upper, NULL},
        {4, "demo.sleep", "answers after ms milliseconds (try --timeout shorter than ms)", ms, 1,
         slept, 1, 0, d_sleep, &d},
        {5, "demo.echo", "returns its arguments, whatever they are", NULL, 0, NULL, 0,
         MCL_RPC_OPEN_ARGS | MCL_RPC_OPEN_RESULT, d_echo, NULL},
        {6, "clock.now", "the service's clock", NULL, 0, now, 2, 0, d_now, NULL},
    };
    char why[512];
    mcl_rpc_service *svc = NULL;
    mcl_err rv = mcl_reactor_new(&d.r, NULL);
    if (rv == MCL_OK)
        rv = mcl_reactor_start(d.r);
    mcl_rpc_service_options so = {.reactor = d.r};
    if (rv == MCL_OK)
        rv = mcl_rpc_service_new(&svc, "demo", "a demo of mcl RPC", &so);
    if (rv == MCL_OK)
        rv = mcl_rpc_service_add(svc, methods, sizeof(methods) / sizeof(methods[0]), why,
                                 sizeof(why));
    if (rv != MCL_OK) {
        tool_err(prog, "cannot make the demo service: %s", mcl_strerror(rv));
        mcl_rpc_service_free(svc, 0);
        mcl_reactor_free(d.r);
        return EXIT_RUNTIME;
    }
    tool_signals();
    rv = mcl_rpc_service_listen(svc, url);
    if (rv != MCL_OK) {
        tool_err(prog, "%s: %s", url, mcl_strerror(rv));
        mcl_rpc_service_free(svc, 0);
        mcl_reactor_free(d.r);
        return tool_open_status(url, rv);
    }
    printf("serving demo on %s\n", mcl_rpc_service_url(svc));
    fflush(stdout);
    while (!tool_stop)
        tool_sleep_until(tool_mono_ns() + 100000000);
    uint64_t calls = 0;
    for (uint32_t id = 1; id <= 6; id++) {
        mcl_rpc_method_stats st;
        if (mcl_rpc_service_stats(svc, id, &st) == MCL_OK)
            calls += st.calls;
    }
    mcl_rpc_service_free(svc, 1000);
    (void)mcl_reactor_stop(d.r);
    mcl_reactor_free(d.r); // (its timers will not fire: the sleepers left are answered here)
    while (d.sleeping != NULL) {
        struct sleeper *sl = d.sleeping;
        d.sleeping = sl->next;
        (void)mcl_rpc_fail(sl->rq, MCL_PSTREAM_UNAVAILABLE, "the demo service stopped");
        free(sl);
    }
    pthread_mutex_destroy(&d.mu);
    fprintf(stderr, "%s: served %llu calls\n", prog, (unsigned long long)calls);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    bool list = false, as_json = false, pretty = false, verbose = false;
    const char *demo_url = NULL;
    uint64_t timeout = 0;
    enum { O_HELP = 256, O_VERSION, O_DEMO, O_CHANNEL };
    static const struct option opts[] = {{"list", no_argument, NULL, 'l'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"pretty", no_argument, NULL, 'p'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"serve-demo", required_argument, NULL, O_DEMO},
                                         {"channel", required_argument, NULL, O_CHANNEL},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "lt:jpv", opts)) != -1) {
        switch (c) {
        case 'l':
            list = true;
            break;
        case 't':
            if (!tool_parse_u64(optarg, 86400000, &timeout) || timeout == 0) {
                tool_err(prog, "--timeout: '%s' is not a number of milliseconds (1..86400000)",
                         optarg);
                return EXIT_USAGE;
            }
            break;
        case 'j':
            as_json = true;
            break;
        case 'p':
            pretty = true;
            break;
        case 'v':
            verbose = true;
            break;
        case O_DEMO:
            demo_url = optarg;
            break;
        case O_CHANNEL: {
            uint64_t ch = 0;
            char *end = NULL;
            bool hex = strncmp(optarg, "0x", 2) == 0 || strncmp(optarg, "0X", 2) == 0;
            if (hex) {
                errno = 0;
                ch = strtoull(optarg + 2, &end, 16);
            }
            if (hex ? (errno != 0 || end == optarg + 2 || *end != '\0' || ch > UINT32_MAX - 1)
                    : !tool_parse_u64(optarg, UINT32_MAX - 1, &ch)) {
                tool_err(prog, "--channel: '%s' is not a channel number", optarg);
                return EXIT_USAGE;
            }
            rpc_channel = (uint32_t)ch;
            break;
        }
        case O_HELP:
            usage(stdout);
            return EXIT_OK;
        case O_VERSION:
            tool_version(prog);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    tool_log_to_stderr(prog, verbose);
    int left = argc - optind;
    if (demo_url != NULL) {
        if (left != 0 || list) {
            tool_err(prog, "--serve-demo takes only its URL");
            return EXIT_USAGE;
        }
        return serve_demo(demo_url);
    }
    if (list ? left != 1 : (left < 2 || left > 3)) {
        tool_err(prog, list ? "--list takes the service's URL only"
                            : "give URL METHOD ['{\"json\": \"arguments\"}'] (or URL --list; "
                              "mcl-call --help)");
        return EXIT_USAGE;
    }
    const char *url = argv[optind];
    const char *method = list ? NULL : argv[optind + 1];
    const char *args = !list && left == 3 ? argv[optind + 2] : NULL;
    return run_call(url, method, args, list, (int)timeout, as_json,
                    pretty ? MCL_JSON_INDENT : MCL_JSON_COMPACT);
}
