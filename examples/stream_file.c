// SPDX-License-Identifier: BSD-3-Clause
// Serve files as seekable remote byte streams, and read one (a remote `tail`, `head` or `cat`).
//
//   stream_file serve URL DIR         serve every regular file of DIR by its name (read-only)
//   stream_file cat URL/NAME          copy the whole file to stdout
//   stream_file tail URL/NAME [N]     the last N bytes (default 1024), then follow the file
//                                     as it grows, until SIGINT
//
// URLs: zmq+tcp://HOST:PORT (the server prints where it listens), zmq+ipc://PATH.
//   stream_file serve zmq+tcp://127.0.0.1:5710 /var/log &
//   stream_file tail zmq+tcp://127.0.0.1:5710/syslog 200
#define _GNU_SOURCE
#include <mcl/mcl.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

// The server's resolver: NAME is a file directly in DIR (no '/' and no "..": nothing else).
static mcl_err
resolve(void *user, const char *name, const char *params, mcl_stream_source *src)
{
    (void)params;
    const char *dir = user;
    if (strchr(name, '/') != NULL || strcmp(name, "..") == 0 || strcmp(name, ".") == 0)
        return MCL_EPERM;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return MCL_EINVAL;
    return mcl_stream_source_file(src, path, false);
}

static int
serve(const char *url, const char *dir)
{
    mcl_stream_server *srv;
    mcl_err rv = mcl_stream_server_new(&srv, resolve, NULL, (void *)(uintptr_t)dir, NULL);
    if (rv == MCL_OK)
        rv = mcl_stream_server_listen(srv, url);
    if (rv != MCL_OK) {
        fprintf(stderr, "stream_file: %s: %s\n", url, mcl_strerror(rv));
        mcl_stream_server_free(srv);
        return 1;
    }
    fprintf(stderr, "stream_file: serving %s on %s\n", dir, mcl_stream_server_url(srv));
    while (!stop)
        pause();
    mcl_stream_server_free(srv);
    return 0;
}

static int
read_out(const char *loc, bool tail, long n)
{
    mcl_stream_options o = {.eos = tail ? MCL_STREAM_EOS_FOLLOW : MCL_STREAM_EOS_STOP};
    mcl_stream *s;
    mcl_err rv = mcl_stream_open(&s, loc, NULL, &o);
    if (rv != MCL_OK) {
        fprintf(stderr, "stream_file: %s: %s\n", loc, mcl_strerror(rv));
        return 1;
    }
    if (tail) {
        uint64_t end;
        rv = mcl_stream_tell(s, NULL, NULL, &end, 0);
        if (rv == MCL_OK)
            rv = mcl_stream_seek(s, MCL_STREAM_FROM_END, -(int64_t)(end < (uint64_t)n ? end : (uint64_t)n));
    }
    char buf[65536];
    size_t got;
    while (rv == MCL_OK && !stop) {
        rv = mcl_stream_recv(s, buf, sizeof(buf), &got, 500);
        if (rv == MCL_OK && fwrite(buf, 1, got, stdout) != got)
            rv = MCL_ESYS;
        else if (rv == MCL_ETIMEDOUT && tail) {
            fflush(stdout);
            rv = MCL_OK;
        }
    }
    fflush(stdout);
    int code = rv == MCL_OK || rv == MCL_EEOF ? 0 : 1;
    if (code != 0)
        fprintf(stderr, "stream_file: %s: %s %s\n", loc, mcl_strerror(rv), mcl_stream_error(s));
    (void)mcl_stream_close(s, 1000);
    mcl_stream_free(s);
    return code;
}

int
main(int argc, char **argv)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (argc == 4 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "cat") == 0)
        return read_out(argv[2], false, 0);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "tail") == 0)
        return read_out(argv[2], true, argc == 4 ? atol(argv[3]) : 1024);
    fprintf(stderr, "usage: stream_file serve URL DIR | cat URL/NAME | tail URL/NAME [N]\n");
    return 2;
}
