// SPDX-License-Identifier: BSD-3-Clause
// tcp://HOST:PORT and unix://PATH: packet streams over plain stream sockets, with no library
// and no I/O thread between the socket and the packet stream (docs/transports.md). Packets
// are framed by a big-endian u32 length (the fd pipe, fdpipe.c, which reads and writes them);
// this file parses the URLs, listens, accepts and dials. Pipes only: a broadcaster or a
// listener on these schemes is refused (there is no multicast on a stream socket).
#define _GNU_SOURCE
#include "../transport.h"

#include "../../core/internal.h"
#include "../../core/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
    K_TCP = 1,
    K_UNIX = 2,
    ADDR_MAX = 256,
    PATH_MAX_ = 107, // sun_path less the NUL
    DEF_TIMEOUT_MS = 5000,
    OUTBUF = 4 << 20, // what a pipe holds that the kernel did not take yet
    BACKLOG = 128,
};

typedef struct sock_opts {
    int kind;
    char addr[ADDR_MAX]; // tcp: the host ("*" = any); unix: the path
    int timeout_ms;      // dial: how long a connect may take
} sock_opts;

extern const mcl__tport mcl__tcp_tport, mcl__unix_tport;

static sock_opts *
opts(struct mcl_connection *c)
{
    return (sock_opts *)mcl__tport_opts(c);
}
static const sock_opts *
copts(const struct mcl_connection *c)
{
    return (const sock_opts *)mcl__tport_copts(c);
}

static void
sock_defaults(struct mcl_connection *c)
{
    sock_opts *o = opts(c);
    o->kind = c->tp == &mcl__tcp_tport ? K_TCP : K_UNIX;
    o->timeout_ms = DEF_TIMEOUT_MS;
}

static bool
host_ok(const char *h, size_t n)
{
    if (n == 0 || n >= ADDR_MAX)
        return false;
    if (n == 1 && h[0] == '*')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return true;
}

static mcl_err
sock_parse_addr(struct mcl_connection *c, const char *url, const char *rest, const char **qp,
                char *errbuf, size_t errlen)
{
    sock_opts *o = opts(c);
    const char *q = strchr(rest, '?');
    const char *aend = q ? q : rest + strlen(rest);
    size_t alen = (size_t)(aend - rest);
    *qp = aend;
    c->port = 0;
    if (o->kind == K_UNIX) {
        if (alen == 0)
            return MCL__URL_FAIL("%s: missing socket path (unix:///PATH)", url);
        if (alen > PATH_MAX_)
            return MCL__URL_FAIL("%s: socket path longer than %d bytes", url, PATH_MAX_);
        memcpy(o->addr, rest, alen);
        o->addr[alen] = '\0';
        return MCL_OK;
    }
    const char *h = rest, *he;
    if (*h == '[') {
        const char *close = memchr(h, ']', alen);
        if (close == NULL)
            return MCL__URL_FAIL("%s: '[' without ']' around the IPv6 address", url);
        char tmp[INET6_ADDRSTRLEN];
        size_t hl = (size_t)(close - h - 1);
        struct in6_addr a6;
        if (hl == 0 || hl >= sizeof(tmp))
            return MCL__URL_FAIL("%s: bad IPv6 address", url);
        memcpy(tmp, h + 1, hl);
        tmp[hl] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return MCL__URL_FAIL("%s: '%s' is not an IPv6 address", url, tmp);
        inet_ntop(AF_INET6, &a6, o->addr, sizeof(o->addr));
        he = close + 1;
    } else {
        he = memchr(h, ':', alen);
        if (he == NULL)
            return MCL__URL_FAIL("%s: missing port (tcp://HOST:PORT; port 0 or * binds a free "
                                 "port)",
                                 url);
        if (!host_ok(h, (size_t)(he - h)))
            return MCL__URL_FAIL("%s: '%.*s' is not a host name, IPv4 address or *", url,
                                 (int)(he - h), h);
        memcpy(o->addr, h, (size_t)(he - h));
        o->addr[he - h] = '\0';
    }
    if (he >= aend || *he != ':')
        return MCL__URL_FAIL("%s: missing port (tcp://HOST:PORT)", url);
    const char *ps = he + 1;
    size_t pl = (size_t)(aend - ps);
    uint64_t port;
    if (pl == 1 && ps[0] == '*')
        port = 0;
    else if (!mcl__url_uint(ps, pl, 65535, &port))
        return MCL__URL_FAIL("%s: port '%.*s' is not an integer 0..65535", url, (int)pl, ps);
    c->port = (uint16_t)port;
    return MCL_OK;
}

static mcl_err
sock_parse_option(struct mcl_connection *c, const char *url, const char *key, size_t klen,
                  const char *val, size_t vlen, char *errbuf, size_t errlen)
{
    uint64_t v;
    if (MCL__KEY_IS("timeout")) {
        if (!mcl__url_uint(val, vlen, 3600000, &v) || v == 0)
            return MCL__URL_FAIL("%s: timeout '%.*s' is not milliseconds 1..3600000", url,
                                 (int)vlen, val);
        opts(c)->timeout_ms = (int)v;
        return MCL_OK;
    }
    return MCL__URL_FAIL("%s: unknown option '%.*s'", url, (int)klen, key);
}

static void
sock_canon(struct mcl_connection *c)
{
    const sock_opts *o = copts(c);
    mcl__canon k;
    mcl__canon_start(&k, c->url, sizeof(c->url));
    if (o->kind == K_UNIX)
        mcl__canon_text(&k, "unix://%s", o->addr);
    else if (strchr(o->addr, ':') != NULL)
        mcl__canon_text(&k, "tcp://[%s]:%u", o->addr, (unsigned)c->port);
    else
        mcl__canon_text(&k, "tcp://%s:%u", o->addr, (unsigned)c->port);
    if (o->timeout_ms != DEF_TIMEOUT_MS)
        mcl__canon_opt(&k, "timeout=%d", o->timeout_ms);
    if (c->maxmsg != MCL__DEF_MAXMSG)
        mcl__canon_size(&k, "maxmsg", c->maxmsg);
    // (the generic options every URL takes; they mean nothing to a packet stream, but a
    // canonical URL says what was parsed)
    if (c->batch_us != 0)
        mcl__canon_opt(&k, "batch=%u", (unsigned)c->batch_us);
    mcl__canon_bcast_opts(&k, c);
}

// --- sockets ---------------------------------------------------------------------------------

static mcl_err
sys_fail(const struct mcl_connection *c, const char *what, int e)
{
    return mcl__fail(mcl__sys_err(e), NULL, 0, "sock", "%s: %s: %s", c->url, what, strerror(e));
}

static void
tune(int fd, int kind)
{
    if (kind == K_TCP) { // packets are whole when written: no waiting for more (Nagle)
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
}

static mcl_err
unix_addr(const struct mcl_connection *c, struct sockaddr_un *sa)
{
    const sock_opts *o = copts(c);
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(o->addr) >= sizeof(sa->sun_path))
        return MCL_EURL;
    strcpy(sa->sun_path, o->addr);
    return MCL_OK;
}

struct mcl__pserver {
    int fd;
    int spare; // a descriptor kept back, to accept and close a peer when none is left
    int kind;
    char path[PATH_MAX_ + 1]; // unix: the socket file this server made (removed at close)
    dev_t dev;
    ino_t ino;
};

// Whether a socket file at path has a listener: a stale one (its server died) may be replaced.
static bool
unix_live(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; // (cannot tell: do not remove it)
    bool live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 ||
                (errno != ECONNREFUSED && errno != ENOENT);
    close(fd);
    return live;
}

mcl_err
mcl__sock_listen(mcl__pserver **sp, const struct mcl_connection *c, uint16_t *bound_port)
{
    *sp = NULL;
    const sock_opts *o = copts(c);
    mcl__pserver *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    s->fd = -1;
    s->kind = o->kind;
    s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    mcl_err rv = MCL_OK;
    if (o->kind == K_UNIX) {
        struct sockaddr_un sa;
        if ((rv = unix_addr(c, &sa)) != MCL_OK)
            goto fail;
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0) {
            rv = sys_fail(c, "socket", errno);
            goto fail;
        }
        struct stat st;
        if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode) && !unix_live(&sa))
            (void)unlink(sa.sun_path); // a dead server's file
        if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            int e = errno;
            rv = e == EADDRINUSE ? mcl__fail(MCL_EADDRINUSE, NULL, 0, "sock",
                                             "%s: %s exists (another server listens there, or "
                                             "it is not a socket)",
                                             c->url, sa.sun_path)
                                 : sys_fail(c, "bind", e);
            goto fail;
        }
        snprintf(s->path, sizeof(s->path), "%s", sa.sun_path);
        if (stat(s->path, &st) == 0) {
            s->dev = st.st_dev;
            s->ino = st.st_ino;
        }
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)c->port);
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(strcmp(o->addr, "*") == 0 ? NULL : o->addr, port, &hints, &ai);
        if (g != 0) {
            rv = mcl__fail(MCL_EUNREACH, NULL, 0, "sock", "%s: %s: %s", c->url, o->addr,
                           gai_strerror(g));
            goto fail;
        }
        s->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (s->fd < 0 ||
            setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(s->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            int e = errno;
            freeaddrinfo(ai);
            rv = e == EADDRINUSE ? mcl__fail(MCL_EADDRINUSE, NULL, 0, "sock",
                                             "%s: the port is in use", c->url)
                                 : sys_fail(c, "bind", e);
            goto fail;
        }
        freeaddrinfo(ai);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0)
            *bound_port = ntohs(ss.ss_family == AF_INET6
                                    ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (listen(s->fd, BACKLOG) != 0) {
        rv = sys_fail(c, "listen", errno);
        goto fail;
    }
    *sp = s;
    return MCL_OK;
fail:
    if (s->fd >= 0)
        close(s->fd);
    if (s->spare >= 0)
        close(s->spare);
    mcl__free(s);
    return rv;
}

int
mcl__sock_server_fd(const mcl__pserver *s)
{
    return s->fd;
}

mcl_err
mcl__sock_accept(mcl__pserver *s, mcl__pipe **pp)
{
    *pp = NULL;
    for (;;) {
        int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if ((e == EMFILE || e == ENFILE) && s->spare >= 0) {
                // No descriptor left: take the peer with the spare one and close it, or the
                // listening socket stays readable and the server spins.
                close(s->spare);
                int x = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
                if (x >= 0)
                    close(x);
                s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
                return MCL_ENOMEM;
            }
            return e == EAGAIN || e == EWOULDBLOCK ? MCL_EAGAIN : mcl__sys_err(e);
        }
        tune(fd, s->kind);
        mcl_err rv = mcl__fdpipe_adopt(pp, fd, OUTBUF);
        if (rv != MCL_OK)
            close(fd);
        return rv;
    }
}

void
mcl__sock_server_close(mcl__pserver *s)
{
    if (s == NULL)
        return;
    struct stat st;
    if (s->path[0] != '\0' && stat(s->path, &st) == 0 && st.st_dev == s->dev &&
        st.st_ino == s->ino)
        (void)unlink(s->path); // ours still (not a newer server's)
    close(s->fd);
    if (s->spare >= 0)
        close(s->spare);
    mcl__free(s);
}

// Waits for a non-blocking connect to finish, at most until deadline_ns.
static int
connect_wait(int fd, int64_t deadline_ns)
{
    for (;;) {
        int64_t left = (deadline_ns - mcl__mono_ns()) / 1000000;
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int n = poll(&pf, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return ETIMEDOUT;
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            return errno;
        return err;
    }
}

// Connects within the URL's timeout: 0 or errno.
static int
connect_to(int fd, const struct sockaddr *sa, socklen_t sl, int64_t deadline_ns)
{
    if (connect(fd, sa, sl) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return errno;
    return connect_wait(fd, deadline_ns);
}

mcl_err
mcl__sock_dial(mcl__pipe **pp, const struct mcl_connection *c)
{
    *pp = NULL;
    const sock_opts *o = copts(c);
    int64_t deadline = mcl__mono_ns() + (int64_t)o->timeout_ms * 1000000;
    int fd = -1, e = 0;
    if (o->kind == K_UNIX) {
        struct sockaddr_un sa;
        if (unix_addr(c, &sa) != MCL_OK)
            return MCL_EURL;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return sys_fail(c, "socket", errno);
        e = connect_to(fd, (struct sockaddr *)&sa, sizeof(sa), deadline);
    } else {
        if (c->port == 0 || strcmp(o->addr, "*") == 0)
            return mcl__fail(MCL_EURL, NULL, 0, "sock", "%s: a dial needs a host and a port",
                             c->url);
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)c->port);
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(o->addr, port, &hints, &ai);
        if (g != 0)
            return mcl__fail(MCL_EUNREACH, NULL, 0, "sock", "%s: %s: %s", c->url, o->addr,
                             gai_strerror(g));
        e = ENOENT;
        for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) { // each address in turn
            fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                e = errno;
                continue;
            }
            e = connect_to(fd, a->ai_addr, a->ai_addrlen, deadline);
            if (e == 0)
                break;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(ai);
    }
    if (e != 0) {
        if (fd >= 0)
            close(fd);
        mcl_err rv = e == ECONNREFUSED || e == ENOENT ? MCL_ECLOSED
                     : e == ETIMEDOUT                 ? MCL_ETIMEDOUT
                                                      : mcl__sys_err(e);
        return mcl__fail(rv, NULL, 0, "sock", "%s: connect: %s", c->url,
                         e == ENOENT && o->kind == K_UNIX ? "no such socket" : strerror(e));
    }
    tune(fd, o->kind);
    mcl_err rv = mcl__fdpipe_adopt(pp, fd, OUTBUF);
    if (rv != MCL_OK)
        close(fd);
    return rv;
}

static const char *const sock_keys[] = {"timeout", NULL};

extern const mcl__pipe_ops mcl__sock_pipe_ops; // fdpipe.c: the fd pipe with the ops above

const mcl__tport mcl__tcp_tport = {
    .scheme = "tcp",
    .family = "tcp://",
    .example = "tcp://127.0.0.1:5800",
    .caps = 0, // (pipes only: no broadcaster, so nothing a queued listener could open)
    .opts_size = sizeof(sock_opts),
    .keys = sock_keys,
    .known = "known for tcp: timeout, maxmsg",
    .defaults = sock_defaults,
    .parse_addr = sock_parse_addr,
    .parse_option = sock_parse_option,
    .canon = sock_canon,
    .pipe = &mcl__sock_pipe_ops,
};

const mcl__tport mcl__unix_tport = {
    .scheme = "unix",
    .family = "unix://",
    .example = "unix:///tmp/mcl-broker.sock",
    .caps = 0, // (pipes only: no broadcaster, so nothing a queued listener could open)
    .opts_size = sizeof(sock_opts),
    .keys = sock_keys,
    .known = "known for unix: timeout, maxmsg",
    .defaults = sock_defaults,
    .parse_addr = sock_parse_addr,
    .parse_option = sock_parse_option,
    .canon = sock_canon,
    .pipe = &mcl__sock_pipe_ops,
};
