// SPDX-License-Identifier: BSD-3-Clause
// mcl-keygen: write a CURVE key pair for zmq connections, or a group key for authenticated
// multicast.
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *prog = "mcl-keygen";

static void
usage(FILE *f)
{
    fprintf(f,
            "Usage: mcl-keygen [OPTION]... NAME\n"
            "       mcl-keygen --group [--rotate] NAME\n"
            "Write a CURVE key pair for zmq connections: NAME.key (public and secret key, mode\n"
            "0600) and NAME.pub (public key only), and print the public key in hex.\n"
            "With --group, write a group key for authenticated multicast instead: NAME.gkey\n"
            "(mode 0600), for ?key=NAME.gkey on every broadcaster and listener of the group\n"
            "(add &encrypt=1 on broadcasters to encrypt too; docs/security.md).\n"
            "\n"
            "  -g, --group    a group key (NAME.gkey)\n"
            "      --rotate   with --group: put a new key first in an existing NAME.gkey and\n"
            "                 keep the old ones after it (at most 8): listeners with the new\n"
            "                 file accept both while broadcasters move to the new key; drop\n"
            "                 the old lines once every broadcaster has the new file\n"
            "  -f, --force    overwrite existing files\n"
            "  -h, --help     this text\n"
            "      --version  version\n"
            "\n"
            "Use: the server (usually the binding side) gets ?curve=NAME.key; every client gets\n"
            "?curve_server=NAME.pub (or the hex key printed here) and, optionally, its own\n"
            "?curve=CLIENT.key; ?curve_clients=FILE on the server (FILE: client .pub files\n"
            "concatenated) admits only those clients. A client with a wrong key is refused; both\n"
            "sides log it, once per peer, and count every failed handshake (auth_failures,\n"
            "in mcl-dump --stats); wait_for_subscribers reports MCL_EAUTH.\n"
            "\n" TOOL_HELP_EXIT_WITH("success", "     (a file that cannot be written)\n"));
}

// Writes text to path with the given mode. The data goes to a new file (created with that
// mode, never through a symlink) that is renamed into place, so a secret is never readable
// under looser permissions, even for a moment, and an existing file is only replaced with
// --force. Errors name path (the temporary file is the tool's business). Returns EXIT_OK,
// EXIT_USAGE (path exists, without --force) or EXIT_RUNTIME.
static int
write_file(const char *path, mode_t mode, bool force, const char *text)
{
    if (!force && access(path, F_OK) == 0) {
        tool_err(prog, "%s: %s (use --force to overwrite)", path, strerror(EEXIST));
        return EXIT_USAGE;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    if (tmp == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    snprintf(tmp, pl + 16, "%s.tmp%06d", path, (int)(getpid() % 1000000));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        tool_err(prog, "%s: cannot create it: %s", path, strerror(errno));
        free(tmp);
        return EXIT_RUNTIME;
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
    return e == 0 ? EXIT_OK : e == EEXIST ? EXIT_USAGE : EXIT_RUNTIME;
}

// A group key: NAME.gkey with a new random key (first) and, with --rotate, the keys the file
// had after it.
static int
group_key(const char *name, bool force, bool rotate)
{
    uint8_t raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        tool_err(prog, "cannot read random bytes: %s", strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t nl = strlen(name) + 6;
    char *path = malloc(nl);
    char text[1024];
    if (path == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    snprintf(path, nl, "%s.gkey", name);
    int n = snprintf(text, sizeof(text),
                     "# mcl group key: keep this file secret (anyone with it can publish on the "
                     "group)\nkey = ");
    for (size_t i = 0; i < sizeof(raw); i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%02x", raw[i]);
    n += snprintf(text + n, sizeof(text) - (size_t)n, "\n");
    memset(raw, 0, sizeof(raw));
    int kept = 0;
    if (rotate) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            int e = errno;
            tool_err(prog, "%s: %s (--rotate adds a key to an existing file)", path, strerror(e));
            free(path);
            return e == ENOENT || e == EACCES || e == ENOTDIR ? EXIT_USAGE : EXIT_RUNTIME;
        }
        char line[256];
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "key", 3) == 0 && kept < 7 &&
                (size_t)n + strlen(line) + 1 < sizeof(text)) {
                n += snprintf(text + n, sizeof(text) - (size_t)n, "%s", line);
                kept++;
            }
        fclose(f);
        force = true;
    }
    int ec = write_file(path, 0600, force, text);
    if (ec == EXIT_OK)
        printf("%s: a new group key%s\n", path,
               rotate ? (kept ? " first, the previous ones kept after it" : "") : "");
    memset(text, 0, sizeof(text));
    free(path);
    return ec;
}

int
main(int argc, char **argv)
{
    bool force = false, group = false, rotate = false;
    enum { O_HELP = 256, O_VERSION, O_ROTATE };
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
                                         {"group", no_argument, NULL, 'g'},
                                         {"rotate", no_argument, NULL, O_ROTATE},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = tool_getopt(prog, argc, argv, "fg", opts)) != -1) {
        switch (c) {
        case 'f':
            force = true;
            break;
        case 'g':
            group = true;
            break;
        case O_ROTATE:
            rotate = true;
            break;
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
    if (argc - optind != 1 || argv[optind][0] == '\0') {
        tool_err(prog, group ? "give one NAME (the file is NAME.gkey)"
                             : "give one NAME (the files are NAME.key and NAME.pub)");
        return EXIT_USAGE;
    }
    if (rotate && !group) {
        tool_err(prog, "--rotate is for group keys: give --group too");
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    if (group)
        return group_key(name, force, rotate);
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
        if ((ec = write_file(kpath, 0600, force, text)) != EXIT_OK) {
            // (said)
        } else {
            snprintf(text, sizeof(text), "# mcl CURVE public key (hex: %s)\npublic = %s\n", hex,
                     pub);
            if ((ec = write_file(ppath, 0644, force, text)) != EXIT_OK) {
                unlink(kpath);
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
