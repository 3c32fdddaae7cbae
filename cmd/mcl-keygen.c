// mcl-keygen: write a CURVE key pair for zmq connections.
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "mcl-keygen";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-keygen [OPTION]... NAME\n"
            "Write a CURVE key pair for zmq connections: NAME.key (public and secret key, mode\n"
            "0600) and NAME.pub (public key only), and print the public key in hex.\n"
            "\n"
            "  -f, --force    overwrite existing files\n"
            "      --help     this text\n"
            "      --version  version\n"
            "\n"
            "Use: the server (usually the binding side) gets ?curve=NAME.key; every client gets\n"
            "?curve_server=NAME.pub (or the hex key printed here) and, optionally, its own\n"
            "?curve=CLIENT.key; ?curve_clients=FILE on the server (FILE: client .pub files\n"
            "concatenated) admits only those clients. A client with a wrong key is refused; both\n"
            "sides log the failed handshake and count it (auth_failures), and\n"
            "wait_for_subscribers reports MCL_EAUTH.\n"
            "Exit status: 0 success, 1 runtime failure, 2 usage error.\n");
}

// Writes text to path with the given mode. The data goes to a new file (created with that
// mode, never through a symlink) that is renamed into place, so a secret is never readable
// under looser permissions, even for a moment, and an existing file is only replaced with
// --force.
static int
write_file(const char *path, mode_t mode, bool force, const char *text)
{
    if (!force && access(path, F_OK) == 0) {
        tool_err(prog, "%s: %s (use --force to overwrite)", path, strerror(EEXIST));
        return -1;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (tmp == NULL) {
        tool_err(prog, "out of memory");
        return -1;
    }
    snprintf(tmp, pl + 16, "%s.tmp%06d", path, (int)(getpid() % 1000000));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        tool_err(prog, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int e = w < 0 ? errno : (size_t)w != len ? EIO : 0;
    if (e == 0 && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0 && !force && link(tmp, path) != 0) // refuses to replace a file made meanwhile
        e = errno;
    else if (e == 0 && force && rename(tmp, path) != 0)
        e = errno;
    if (e != 0 || !force)
        unlink(tmp);
    if (e != 0)
        tool_err(prog, "%s: %s%s", path, strerror(e), e == EEXIST ? " (use --force to overwrite)" : "");
    free(tmp);
    return e == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    bool force = false;
    enum { O_HELP = 256, O_VERSION };
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            force = true;
            break;
        case O_HELP:
            usage(stdout);
            return EXIT_OK;
        case O_VERSION:
            printf("mcl-keygen %s\n", mcl_version());
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'mcl-keygen --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || argv[optind][0] == '\0') {
        tool_err(prog, "give one NAME (the files are NAME.key and NAME.pub)");
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    char pub[41], sec[41], hex[65];
    mcl_err rv = mcl_curve_keypair(pub, sec);
    if (rv != MCL_OK || mcl_curve_key_hex(pub, hex) != MCL_OK) {
        tool_err(prog, "cannot make a key pair: %s", mcl_strerror(rv));
        return EXIT_RUNTIME;
    }
    size_t nl = strlen(name) + 5;
    char *kpath = malloc(nl), *ppath = malloc(nl);
    char text[256];
    int ec = EXIT_OK;
    if (kpath == NULL || ppath == NULL) {
        tool_err(prog, "out of memory");
        ec = EXIT_RUNTIME;
    } else {
        snprintf(kpath, nl, "%s.key", name);
        snprintf(ppath, nl, "%s.pub", name);
        snprintf(text, sizeof(text),
                 "# mcl CURVE key pair: keep this file secret\npublic = %s\nsecret = %s\n", pub,
                 sec);
        if (write_file(kpath, 0600, force, text) != 0) {
            ec = EXIT_RUNTIME;
        } else {
            snprintf(text, sizeof(text), "# mcl CURVE public key (hex: %s)\npublic = %s\n", hex,
                     pub);
            if (write_file(ppath, 0644, force, text) != 0) {
                unlink(kpath);
                ec = EXIT_RUNTIME;
            } else {
                printf("%s\n", hex);
            }
        }
    }
    memset(sec, 0, sizeof(sec));
    memset(text, 0, sizeof(text));
    free(kpath);
    free(ppath);
    return ec;
}
