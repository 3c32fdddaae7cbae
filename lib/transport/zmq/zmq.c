// SPDX-License-Identifier: BSD-3-Clause
// The ZeroMQ transport's sockets and broadcast ops (framing: zmq_int.h). With zcurve.c and
// zmq_url.c, the only code that includes <zmq.h>.
#define _GNU_SOURCE
#include "zmq_int.h"

#include "../../core/internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef ZMQ_METADATA
#define ZMQ_METADATA 95 // libzmq 4.3 takes it, though its header lists it as a draft
#endif

// A listener also subscribes "\xff\xff\xff\xff\0" + 8 random bytes (its "hello"); the
// broadcaster counts these to know how many listeners are connected and subscribed. The hello
// is the last subscription a listener sends: it is made after the topic subscriptions, and
// libzmq sends the subscriptions of a new connection in ascending byte order. So once the
// broadcaster sees a listener's hello, that listener's topics are in place too. A frame could
// match it only with the topic "\xff\xff\xff\xff" and a TSEQ equal to the 8 random bytes, and
// even then the listener's exact topic check drops it.
//
// The same 8 bytes travel in the connection's ZMTP handshake (metadata HELLO_PROP, 16 hex
// digits), which libzmq attaches to every subscription notice of that connection. The
// broadcaster counts a hello only when the two agree, and each id once: a connection has one
// handshake, so one connection counts at most one listener, however many hellos it
// subscribes, and a plain subscription (or a copied hello) counts nothing. Without CURVE this
// is no authentication: a program that imitates the handshake on purpose counts one per
// connection it holds (docs/zmq.md).
#define HELLO_LEN 13
#define HELLO_PROP "X-Mcl-Hello"

// What a broadcaster takes from one subscriber, in libzmq's notices: subscriptions of at most
// XPUB_MSG_MAX bytes (a topic prefix, or a hello; larger frames make libzmq drop the
// connection before reading them; the CURVE handshake fits too), and in all, over every
// connection of the socket, SUBS_MAX distinct prefixes and SUBS_BYTES_MAX bytes of them (the
// subscriber whose subscription goes beyond is disconnected).
#define XPUB_MSG_MAX ((int64_t)MCL_TOPIC_MAX + 1024)
#define SUBS_MAX 4096
#define SUBS_BYTES_MAX ((int64_t)256 << 10)

// Bytes a frame adds in front of its datagram: TOPIC '\0' TSEQ.
#define PREFIX_LEN(tl) ((tl) + 1 + 8)

// The largest frame a listener accepts beyond maxmsg: the prefix, and a datagram's own
// headers (16-byte datagram header, 14-byte record header, the topic again).
#define FRAME_OVERHEAD (PREFIX_LEN(MCL_TOPIC_MAX) + 16 + 14 + MCL_TOPIC_MAX)

// --- the process-wide context ------------------------------------------------------------------

// One context per process, so that zmq+inproc works between any two handles. libzmq contexts
// do not survive fork(): a forked child (the queued listener's receiver) that opens a socket
// gets a new context and leaves the parent's copy alone (its threads do not exist there).
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ctx_ptr;
static pid_t ctx_pid;
static unsigned ctx_refs;
static mcl__zsock *shared; // bound publisher sockets, under ctx_lock

// A fork (the queued listener's receiver) must not happen while another thread holds
// ctx_lock, or the child, which takes it to make its own context, would wait forever.
static void
fork_prepare(void)
{
    pthread_mutex_lock(&ctx_lock);
    mcl__zmq_zap_fork_lock();
}
static void
fork_done(void)
{
    mcl__zmq_zap_fork_unlock();
    pthread_mutex_unlock(&ctx_lock);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void
atfork_register(void)
{
    (void)pthread_atfork(fork_prepare, fork_done, fork_done);
}

mcl_err
mcl__zmq_ctx_acquire(void **out)
{
    pthread_once(&atfork_once, atfork_register);
    pthread_mutex_lock(&ctx_lock);
    pid_t me = getpid();
    if (ctx_ptr != NULL && ctx_pid != me) {
        ctx_ptr = NULL;
        ctx_refs = 0;
        shared = NULL; // the parent's sockets, not usable here
        mcl__zmq_zap_forget_locked();
    }
    if (ctx_ptr == NULL) {
        ctx_ptr = zmq_ctx_new();
        if (ctx_ptr == NULL) {
            int e = errno;
            pthread_mutex_unlock(&ctx_lock);
            return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "zmq_ctx_new: %s",
                             zmq_strerror(e));
        }
        ctx_pid = me;
        (void)zmq_ctx_set(ctx_ptr, ZMQ_BLOCKY, 0);
    }
    ctx_refs++;
    *out = ctx_ptr;
    pthread_mutex_unlock(&ctx_lock);
    return MCL_OK;
}

void
mcl__zmq_ctx_release(void)
{
    pthread_mutex_lock(&ctx_lock);
    void *term = NULL;
    if (ctx_ptr != NULL && ctx_pid == getpid() && --ctx_refs == 0) {
        term = ctx_ptr;
        ctx_ptr = NULL;
        mcl__zmq_zap_stop_locked(); // its socket must close before the context can end
    }
    pthread_mutex_unlock(&ctx_lock);
    if (term != NULL) // waits for sockets' linger; every socket of ours is closed by now
        (void)zmq_ctx_term(term);
}

void
mcl__zmq_ctx_lock(void)
{
    pthread_mutex_lock(&ctx_lock);
}

void
mcl__zmq_ctx_unlock(void)
{
    pthread_mutex_unlock(&ctx_lock);
}

// --- open / close ------------------------------------------------------------------------------


// A socket of `type` with what every socket of ours gets: linger, IPv6 for tcp, CURVE and
// the ZAP domain. It holds a reference to the process-wide context (*ctxp, for the caller's
// monitor and bind); on failure nothing is left open and the error is logged.
mcl_err
mcl__zmq_zsock_new(const struct mcl_connection *c, int type, mcl__zsock **zp, void **ctxp)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    *zp = NULL;
    void *ctx = NULL;
    mcl_err rv = mcl__zmq_ctx_acquire(&ctx);
    if (rv != MCL_OK)
        return rv;
    mcl__zsock *z = mcl__zalloc(sizeof(*z));
    if (z == NULL) {
        mcl__zmq_ctx_release();
        return MCL_ENOMEM;
    }
    snprintf(z->url, sizeof(z->url), "%s", c->url);
    z->refs = 1;
    z->kind = o->kind;
    if (pthread_mutex_init(&z->lock, NULL) != 0) {
        mcl__free(z);
        mcl__zmq_ctx_release();
        return MCL_ESYS;
    }
    z->lock_init = true;
    int linger = o->linger_ms, v6 = 1; // IPv6 host names and addresses (IPv4 keeps working)
    if ((z->s = zmq_socket(ctx, type)) == NULL ||
        zmq_setsockopt(z->s, ZMQ_LINGER, &linger, sizeof(linger)) != 0 ||
        (o->kind == MCL__ZMQ_TCP && zmq_setsockopt(z->s, ZMQ_IPV6, &v6, sizeof(v6)) != 0)) {
        int e = errno;
        rv = mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "%s: %s: %s", c->url,
                       z->s == NULL ? "zmq_socket" : "zmq_setsockopt", zmq_strerror(e));
    } else if ((rv = mcl__zmq_setup_curve(z, o)) == MCL_OK && o->curve_clients[0] != '\0') {
        rv = mcl__zmq_zap_register(z, ctx, o);
    }
    if (rv != MCL_OK) {
        mcl__zmq_zsock_close(z);
        return rv;
    }
    *zp = z;
    *ctxp = ctx;
    return MCL_OK;
}

void
mcl__zmq_endpoint(const struct mcl_connection *c, char *ep, size_t len)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    bool v6 = strchr(o->addr, ':') != NULL;
    if (o->kind != MCL__ZMQ_TCP)
        snprintf(ep, len, "%s://%s", o->kind == MCL__ZMQ_IPC ? "ipc" : "inproc", o->addr);
    else if (c->port == 0)
        snprintf(ep, len, v6 ? "tcp://[%s]:*" : "tcp://%s:*", o->addr);
    else
        snprintf(ep, len, v6 ? "tcp://[%s]:%u" : "tcp://%s:%u", o->addr, (unsigned)c->port);
}

mcl_err
mcl__zmq_bind_or_connect(mcl__zsock *z, const struct mcl_connection *c, bool bind,
                         const char *ep, uint16_t *bound_port)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    if (!bind && o->kind == MCL__ZMQ_TCP && (c->port == 0 || strcmp(o->addr, "*") == 0))
        return mcl__fail(MCL_EINVAL, NULL, 0, "zmq",
                         "%s: cannot connect to %s (give the host and port of the binding side)",
                         c->url, c->port == 0 ? "port 0" : "*");
    z->bound = bind;
    if ((bind ? zmq_bind(z->s, ep) : zmq_connect(z->s, ep)) != 0) {
        int e = errno;
        mcl_err code = e == EADDRINUSE ? MCL_EADDRINUSE
                       : e == EINVAL || e == EPROTONOSUPPORT || e == ENODEV ? MCL_EURL
                                                                            : mcl__sys_err(e);
        if (bind && e == ENODEV && o->kind == MCL__ZMQ_TCP) // libzmq's word for a bad host
            return mcl__fail(code, NULL, 0, "zmq",
                             "%s: cannot bind '%s': not an address of this machine, an "
                             "interface name, or a host name that resolves to one",
                             c->url, o->addr);
        return mcl__fail(code, NULL, 0, "zmq", "%s: %s(%s): %s", c->url,
                         bind ? "zmq_bind" : "zmq_connect", ep, zmq_strerror(e));
    }
    if (bind && o->kind == MCL__ZMQ_TCP && c->port == 0) {
        char last[MCL__ZADDR_MAX + 32];
        size_t ll = sizeof(last);
        if (zmq_getsockopt(z->s, ZMQ_LAST_ENDPOINT, last, &ll) == 0) {
            const char *colon = strrchr(last, ':');
            unsigned p = 0;
            if (colon != NULL && sscanf(colon + 1, "%u", &p) == 1 && p > 0 && p < 65536) {
                *bound_port = (uint16_t)p;
                struct mcl_connection named = *c; // the URL that names this socket now
                named.port = (uint16_t)p;
                mcl__connection_canon(&named);
                snprintf(z->url, sizeof(z->url), "%s", named.url);
            }
        }
    }
    return MCL_OK;
}

// What a connect can know before libzmq tries (it retries for ever, in silence): a tcp host
// name that does not resolve (also when the lookup fails only for now: the caller may try
// again), and an ipc path in a directory that does not exist or that is not a socket, fail
// here. An ipc socket not made yet (its broadcaster may start later) is only logged.
static mcl_err
check_connect_target(const struct mcl_connection *c)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    if (o->kind == MCL__ZMQ_TCP && strcmp(o->addr, "*") != 0) {
        struct in6_addr a6;
        if (inet_pton(AF_INET, o->addr, &a6) == 1 || inet_pton(AF_INET6, o->addr, &a6) == 1)
            return MCL_OK;
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int r = getaddrinfo(o->addr, NULL, &hints, &res);
        if (res != NULL)
            freeaddrinfo(res);
        if (r == 0)
            return MCL_OK;
        return mcl__fail(MCL_ENOENT, NULL, 0, "zmq", "%s: cannot resolve host '%s': %s", c->url,
                         o->addr, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
    }
    if (o->kind == MCL__ZMQ_IPC) {
        struct stat st;
        if (stat(o->addr, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return mcl__fail(MCL_EINVAL, NULL, 0, "zmq", "%s: %s is not a socket", c->url,
                                 o->addr);
            return MCL_OK;
        }
        int e = errno;
        char dir[MCL__ZADDR_MAX];
        snprintf(dir, sizeof(dir), "%s", o->addr);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash != NULL)
            *slash = '\0';
        else
            snprintf(dir, sizeof(dir), ".");
        if (e == ENOENT && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
            mcl__log(MCL_LOG_WARN, "zmq", "%s: no socket at %s yet; waiting for a broadcaster "
                     "to bind it", c->url, o->addr);
            return MCL_OK;
        }
        return mcl__fail(e == ENOENT ? MCL_ENOENT : mcl__sys_err(e), NULL, 0, "zmq",
                         "%s: no socket at %s: %s", c->url, o->addr,
                         e == ENOENT ? "its directory does not exist" : strerror(e));
    }
    return MCL_OK;
}

// Opens a socket for a broadcaster (XPUB) or a listener (SUB) on c and binds or connects it.
// Broadcasters of one process that bind the same endpoint with the same options share one
// socket (reference-counted; different options: MCL_EADDRINUSE). A bind to port 0 (or *)
// reports the port chosen in *bound_port. The socket holds a reference to the process-wide
// context (a forked child gets its own).
static mcl_err
zsock_open(const struct mcl_connection *c, bool publisher, mcl__zsock **sockp,
           uint16_t *bound_port)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    *sockp = NULL;
    void *ctx = NULL;
    mcl__zsock *z;
    mcl_err rv = mcl__zmq_zsock_new(c, publisher ? ZMQ_XPUB : ZMQ_SUB, &z, &ctx);
    if (rv != MCL_OK)
        return rv;
    bool bind = o->mode == MCL__ZMODE_BIND || (o->mode == MCL__ZMODE_DEFAULT && publisher);
    int hwm = o->hwm, nodrop = o->drop ? 0 : 1, tmo = o->timeout_ms;
    // Larger messages are refused by libzmq before they are read into memory (the peer is
    // disconnected); what gets through is still checked against maxmsg by the engine. A batch
    // frame (up to MCL__ZMQ_BATCH_MAX of records) passes too: the engine checks each record
    // against maxmsg and counts what is larger as oversize.
    size_t body = c->maxmsg > MCL__ZMQ_BATCH_MAX ? c->maxmsg : MCL__ZMQ_BATCH_MAX;
    int64_t max = (int64_t)body + (int64_t)FRAME_OVERHEAD;
    if (publisher)
        max = XPUB_MSG_MAX; // it receives only subscriptions
    char meta[sizeof(HELLO_PROP) + 1 + 16 + 1];
    if (!publisher) { // the listener's hello id, also in its handshake (see HELLO_LEN)
        uint64_t id;
        if ((rv = mcl__random_u64(&id)) != MCL_OK) {
            mcl__zmq_zsock_close(z);
            return rv;
        }
        memcpy(z->hello_id, &id, 8);
        int n = snprintf(meta, sizeof(meta), "%s:", HELLO_PROP);
        for (int i = 0; i < 8; i++)
            n += snprintf(meta + n, sizeof(meta) - (size_t)n, "%02x", z->hello_id[i]);
    }
    if ((hwm > 0 &&
         zmq_setsockopt(z->s, publisher ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0) ||
        (publisher && (zmq_setsockopt(z->s, ZMQ_XPUB_NODROP, &nodrop, sizeof(nodrop)) != 0 ||
                       zmq_setsockopt(z->s, ZMQ_SNDTIMEO, &tmo, sizeof(tmo)) != 0)) ||
        (!publisher && zmq_setsockopt(z->s, ZMQ_METADATA, meta, strlen(meta)) != 0) ||
        zmq_setsockopt(z->s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0) {
        int e = errno;
        mcl__zmq_zsock_close(z);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "%s: zmq_setsockopt: %s", c->url,
                         zmq_strerror(e));
    }
    char ep[MCL__ZADDR_MAX + 32];
    mcl__zmq_endpoint(c, ep, sizeof(ep));
    if (publisher && bind && !(o->kind == MCL__ZMQ_TCP && c->port == 0)) {
        mcl__zsock *other = NULL;
        bool same = false;
        char other_url[MCL__URL_MAX] = "";
        pthread_mutex_lock(&ctx_lock);
        for (other = shared; other != NULL; other = other->next)
            if (strcmp(other->ep, ep) == 0) // (a forked child starts with an empty list)
                break;
        if (other != NULL && (same = strcmp(other->url, c->url) == 0))
            other->refs++;
        if (other != NULL)
            snprintf(other_url, sizeof(other_url), "%s", other->url);
        pthread_mutex_unlock(&ctx_lock);
        if (other != NULL) {
            mcl__zmq_zsock_close(z);
            if (!same)
                return mcl__fail(MCL_EADDRINUSE, NULL, 0, "zmq",
                                 "%s: %s is already bound by this process as %s (broadcasters "
                                 "share an endpoint only with the same options)",
                                 c->url, ep, other_url);
            *sockp = other;
            return MCL_OK;
        }
    }
    if (o->curve_key[0] != '\0' || o->curve_server[0] != '\0')
        mcl__zmq_setup_monitor(z, ctx, !bind); // only CURVE handshakes can fail for a key
    uint16_t port = c->port;
    if (!bind && (rv = check_connect_target(c)) != MCL_OK) {
        mcl__zmq_zsock_close(z);
        return rv;
    }
    if ((rv = mcl__zmq_bind_or_connect(z, c, bind, ep, &port)) != MCL_OK) {
        mcl__zmq_zsock_close(z);
        return rv;
    }
    if (port != c->port)
        *bound_port = port;
    if (bind && o->kind == MCL__ZMQ_TCP)
        z->lport = port;
    else if (bind && o->kind == MCL__ZMQ_IPC)
        snprintf(z->lpath, sizeof(z->lpath), "%s", o->addr);
    if (publisher && bind) { // others of this process may share it from now on
        if (o->kind == MCL__ZMQ_TCP && port != 0 && strstr(ep, ":*") != NULL)
            snprintf(ep, sizeof(ep), strchr(o->addr, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u",
                     o->addr, (unsigned)port);
        snprintf(z->ep, sizeof(z->ep), "%s", ep);
        pthread_mutex_lock(&ctx_lock);
        z->next = shared;
        shared = z;
        pthread_mutex_unlock(&ctx_lock);
    }
    *sockp = z;
    return MCL_OK;
}

// Drops a reference; the last one closes the socket (pending messages are sent for up to the
// connection's linger time).
void
mcl__zmq_zsock_close(mcl__zsock *z)
{
    if (z == NULL)
        return;
    pthread_mutex_lock(&ctx_lock);
    if (z->refs > 1) {
        z->refs--;
        pthread_mutex_unlock(&ctx_lock);
        return;
    }
    if (z->ep[0] != '\0') {
        for (mcl__zsock **pp = &shared; *pp != NULL; pp = &(*pp)->next)
            if (*pp == z) {
                *pp = z->next;
                break;
            }
    }
    pthread_mutex_unlock(&ctx_lock);
    mcl__zmq_zap_unregister(z);
    mcl__zmq_close_monitor(z);
    if (z->s != NULL)
        zmq_close(z->s);
    if (z->lock_init)
        pthread_mutex_destroy(&z->lock);
    mcl__free(z->hellos);
    mcl__free(z);
    mcl__zmq_ctx_release();
}

// --- broadcasters ------------------------------------------------------------------------------

// Coalescing (coalesce=1, the default without batch=): every frame is handed to libzmq with
// a free function, which libzmq calls once its I/O thread has taken the frame from the queue
// of every subscriber (copied it into a socket's write buffer; zmq+inproc: once the listener
// has read it) or dropped it. `n` is 1 for the broadcaster plus 1 per frame not yet freed, so
// n - 1 is the backlog; the tracker is freed by whoever takes n to 0 (frames can outlive the
// socket by its linger, and libzmq frees them on its own thread). The free function takes no
// lock: a publisher may hold its locks while it waits in zmq_msg_send for the I/O thread.
typedef struct ztrack {
    atomic_uint_fast64_t n;
} ztrack;

struct mcl__tx {
    mcl__zsock *z; // possibly shared with other broadcasters of this process
    int timeout_ms;
    int stall_ms;
    ztrack *track; // coalescing: frames libzmq still holds (NULL: not counted)
};

static void
ztrack_put(ztrack *t)
{
    if (atomic_fetch_sub_explicit(&t->n, 1, memory_order_acq_rel) == 1)
        mcl__free(t);
}

// libzmq's free function of a counted frame (its I/O thread, or the sender's on a drop).
static void
frame_free(void *data, void *hint)
{
    mcl__free(data);
    ztrack_put(hint);
}

// --- peers of a bound XPUB ---------------------------------------------------------------------
//
// libzmq does not tell which connection a full queue belongs to, nor lets one disconnect a
// peer of a bound socket. So the process's sockets are looked at, only when needed (a lossless
// publish has waited `stall` ms; the subscription cap was passed): those whose local address
// is the bound endpoint (tcp: its port; ipc: its path) and that have a peer are the socket's
// connections. One is disconnected with shutdown(), after checking that the descriptor is
// still the socket seen (its inode); libzmq then closes it, drops its queue and its
// subscriptions, and a listener of ours reconnects. A socket that connects (mode=connect)
// chose its peers, and inproc peers have no descriptor: neither is ever disconnected.

typedef struct zpeer {
    int fd;
    ino_t ino;
    char addr[INET6_ADDRSTRLEN + 8]; // for people: "IP:PORT", or "pid P" for ipc
    char key[INET6_ADDRSTRLEN + 40]; // as libzmq's Peer-Address property says it
    int outq;                        // bytes sent to it and not taken yet
    uint64_t rx_bytes;               // tcp: bytes it sent us
} zpeer;

enum { PEERS_MAX = 1024 };

static bool
peer_of(const mcl__zsock *z, int fd, zpeer *p)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    struct sockaddr_storage la, pa;
    socklen_t ll = sizeof(la), pl = sizeof(pa);
    if (getsockname(fd, (struct sockaddr *)&la, &ll) != 0 ||
        getpeername(fd, (struct sockaddr *)&pa, &pl) != 0)
        return false;
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->ino = st.st_ino;
    if (z->kind == MCL__ZMQ_TCP && (la.ss_family == AF_INET || la.ss_family == AF_INET6)) {
        uint16_t port = la.ss_family == AF_INET
                            ? ntohs(((struct sockaddr_in *)&la)->sin_port)
                            : ntohs(((struct sockaddr_in6 *)&la)->sin6_port);
        if (port != z->lport)
            return false;
        char host[INET6_ADDRSTRLEN], serv[8];
        if (getnameinfo((struct sockaddr *)&pa, pl, host, sizeof(host), serv, sizeof(serv),
                        NI_NUMERICHOST | NI_NUMERICSERV) != 0)
            return false;
        snprintf(p->key, sizeof(p->key), "%s", host);
        snprintf(p->addr, sizeof(p->addr), "%s:%s", host, serv);
        struct tcp_info ti;
        socklen_t tl = sizeof(ti);
        memset(&ti, 0, sizeof(ti));
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
            p->rx_bytes = ti.tcpi_bytes_received;
    } else if (z->kind == MCL__ZMQ_IPC && la.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&la;
        if (ll <= offsetof(struct sockaddr_un, sun_path) ||
            strncmp(un->sun_path, z->lpath, sizeof(un->sun_path)) != 0)
            return false;
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0)
            return false;
        snprintf(p->key, sizeof(p->key), ":%u:%u:%d", (unsigned)cr.uid, (unsigned)cr.gid,
                 (int)cr.pid);
        snprintf(p->addr, sizeof(p->addr), "pid %d", (int)cr.pid);
    } else {
        return false;
    }
    if (ioctl(fd, SIOCOUTQ, &p->outq) != 0)
        p->outq = 0;
    return true;
}

// The connections of a bound tcp or ipc socket (at most max).
static size_t
find_peers(const mcl__zsock *z, zpeer *out, size_t max)
{
    if (!z->bound || (z->kind == MCL__ZMQ_TCP && z->lport == 0) ||
        (z->kind == MCL__ZMQ_IPC && z->lpath[0] == '\0') || z->kind == MCL__ZMQ_INPROC)
        return 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *de;
    int self = dirfd(d);
    while (n < max && (de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || end == de->d_name || fd < 0 || fd == self)
            continue;
        if (peer_of(z, (int)fd, &out[n]))
            n++;
    }
    closedir(d);
    return n;
}

// Disconnects p (still the socket seen), counts it and keeps a line to log. Under z->lock.
static void
drop_peer_locked(mcl__zsock *z, const zpeer *p, const char *why)
{
    struct stat st;
    if (fstat(p->fd, &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != p->ino)
        return; // gone meanwhile (libzmq closed it)
    if (shutdown(p->fd, SHUT_RDWR) != 0)
        return;
    z->peers_dropped++;
    int64_t now = mcl__mono_ns();
    if (z->drop_line[0] != '\0' || now < z->drop_log_after_ns) {
        z->drop_skipped++;
        return;
    }
    z->drop_log_after_ns = now + 1000000000;
    snprintf(z->drop_line, sizeof(z->drop_line), "%s: disconnected the subscriber at %s: %s",
             z->url, p->addr, why);
}

// A lossless publish has waited stall_ms: every connection that has not taken what was sent
// to it is disconnected (while a publish waits nothing new is queued, so a subscriber that
// reads has taken everything by now). Under z->lock.
static void
drop_stalled_locked(mcl__zsock *z, int stall_ms)
{
    zpeer *p = mcl__alloc(PEERS_MAX * sizeof(*p));
    if (p == NULL)
        return;
    size_t n = find_peers(z, p, PEERS_MAX);
    char why[160];
    for (size_t i = 0; i < n; i++) {
        if (p[i].outq <= 0)
            continue;
        snprintf(why, sizeof(why),
                 "it took nothing for %d ms while a lossless publish waited for room in its "
                 "queue (%d bytes unread; stall=)",
                 stall_ms, p[i].outq);
        drop_peer_locked(z, &p[i], why);
    }
    mcl__free(p);
}

// A subscription went beyond the socket's cap: the connection it came from is disconnected
// (tcp: of those from its address, the one that sent the most; ipc: those of its process).
// Under z->lock.
static void
drop_over_cap_locked(mcl__zsock *z, const char *peer_key)
{
    int64_t now = mcl__mono_ns();
    if (now < z->cap_grace_ns || peer_key == NULL)
        return; // the prefixes of the peer dropped last are still being removed
    zpeer *p = mcl__alloc(PEERS_MAX * sizeof(*p));
    if (p == NULL)
        return;
    size_t n = find_peers(z, p, PEERS_MAX), best = n;
    char why[160];
    snprintf(why, sizeof(why),
             "its subscriptions took the socket over %d distinct prefixes or %lld bytes of them",
             SUBS_MAX, (long long)SUBS_BYTES_MAX);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p[i].key, peer_key) != 0)
            continue;
        if (z->kind == MCL__ZMQ_IPC)
            drop_peer_locked(z, &p[i], why);
        else if (best == n || p[i].rx_bytes > p[best].rx_bytes)
            best = i;
    }
    if (best < n)
        drop_peer_locked(z, &p[best], why);
    z->cap_grace_ns = now + 1000000000;
    mcl__free(p);
}

static bool
sndtimeo(mcl__zsock *z, int ms)
{
    return zmq_setsockopt(z->s, ZMQ_SNDTIMEO, &ms, sizeof(ms)) == 0;
}

static void zmq_tx_close(mcl__tx *tx);

static mcl_err
zmq_tx_open(mcl__tx **txp, const struct mcl_connection *c, mcl__tx_limits *lim)
{
    *txp = NULL;
    mcl__tx *tx = mcl__zalloc(sizeof(*tx));
    if (tx == NULL)
        return MCL_ENOMEM;
    tx->timeout_ms = mcl__zmq_opts_of(c)->timeout_ms;
    tx->stall_ms = mcl__zmq_opts_of(c)->drop ? -1 : mcl__zmq_opts_of(c)->stall_ms;
    mcl_err rv = zsock_open(c, true, &tx->z, &lim->bound_port);
    if (rv != MCL_OK) {
        mcl__free(tx);
        return rv;
    }
    lim->batch_max = MCL__ZMQ_BATCH_MAX;
    if (mcl__zmq_opts_of(c)->coalesce && c->batch_us == 0) { // (batch= packs by time instead)
        if ((tx->track = mcl__alloc(sizeof(*tx->track))) == NULL) {
            zmq_tx_close(tx);
            return MCL_ENOMEM;
        }
        atomic_init(&tx->track->n, 1);
        lim->coalesce = true;
    }
    *txp = tx;
    return MCL_OK;
}

static uint64_t
zmq_tx_backlog(const mcl__tx *tx)
{
    return tx->track != NULL ? atomic_load_explicit(&tx->track->n, memory_order_acquire) - 1 : 0;
}

// Sends m (its ownership passes to libzmq on success; closed here on failure). A lossless
// send that waits: in slices of at most stall_ms (the socket's ZMQ_SNDTIMEO), after each of
// which the connections that took nothing are disconnected, until timeout_ms.
static mcl_err send_msg_slow(mcl__tx *tx, zmq_msg_t *m, bool nowait, char *why, size_t whylen,
                             int e);

static mcl_err
send_msg(mcl__tx *tx, zmq_msg_t *m, bool nowait, char *why, size_t whylen)
{
    mcl__zsock *z = tx->z;
    pthread_mutex_lock(&z->lock);
    if (MCL__LIKELY(zmq_msg_send(m, z->s, ZMQ_DONTWAIT) >= 0)) { // the usual case: queued
        pthread_mutex_unlock(&z->lock);
        return MCL_OK;
    }
    return send_msg_slow(tx, m, nowait, why, whylen, errno); // (z->lock held)
}

// send_msg after its first try failed with errno e, z->lock held (released here).
static __attribute__((noinline)) mcl_err
send_msg_slow(mcl__tx *tx, zmq_msg_t *m, bool nowait, char *why, size_t whylen, int e)
{
    mcl__zsock *z = tx->z;
    int timeout_ms = tx->timeout_ms, stall_ms = tx->stall_ms;
    int64_t start = 0, deadline = INT64_MAX, stall_at = INT64_MAX;
    int flags = ZMQ_DONTWAIT;
    for (bool first = true;; first = false) {
        if (!first) {
            if (zmq_msg_send(m, z->s, flags) >= 0) {
                e = 0;
                break;
            }
            e = errno;
        }
        if (e == EINTR)
            continue;
        if (e != EAGAIN || nowait || timeout_ms == 0)
            break;
        int64_t now = mcl__mono_ns();
        if (start == 0) { // the queue of some subscriber is full: wait
            start = now;
            deadline = timeout_ms < 0 ? INT64_MAX : now + (int64_t)timeout_ms * 1000000;
            stall_at = stall_ms < 0 ? INT64_MAX : now + (int64_t)stall_ms * 1000000;
        } else if (now >= stall_at) {
            drop_stalled_locked(z, stall_ms);
            stall_at = now + (int64_t)stall_ms * 1000000;
        }
        if (now >= deadline)
            break;
        int64_t until = deadline < stall_at ? deadline : stall_at;
        int64_t ms = (until - now + 999999) / 1000000;
        if (!sndtimeo(z, until == INT64_MAX ? -1 : ms > INT32_MAX ? INT32_MAX : (int)ms)) {
            e = errno;
            break;
        }
        flags = 0;
    }
    if (flags == 0)
        (void)sndtimeo(z, timeout_ms); // as it was
    pthread_mutex_unlock(&z->lock);
    if (e == 0)
        return MCL_OK;
    zmq_msg_close(m);
    if (e == EAGAIN) // a lossless queue stayed full: nothing was sent to anyone
        return timeout_ms == 0 || nowait ? MCL_EAGAIN : MCL_ETIMEDOUT;
    snprintf(why, whylen, "zmq_msg_send: %s", zmq_strerror(e));
    return e == ETERM ? MCL_ECLOSED : mcl__sys_err(e);
}

// Every datagram becomes one frame behind its TOPIC '\0' TSEQ prefix (one copy into the
// zmq_msg_t, which libzmq owns from then on).
static mcl_err
zmq_tx_send(mcl__tx *tx, const mcl__frame *f, unsigned nf, unsigned *sent, char *why,
            size_t whylen)
{
    *sent = 0;
    for (unsigned i = 0; i < nf; i++) {
        size_t len = PREFIX_LEN(f[i].tl);
        for (unsigned k = 0; k < f[i].niov; k++)
            len += f[i].iov[k].iov_len;
        zmq_msg_t m;
        uint8_t *p;
        if (tx->track == NULL) {
            if (zmq_msg_init_size(&m, len) != 0) {
                snprintf(why, whylen, "zmq_msg_init_size(%zu): out of memory", len);
                return MCL_ENOMEM;
            }
            p = zmq_msg_data(&m);
        } else { // counted until libzmq frees it (see ztrack)
            if ((p = mcl__alloc(len)) == NULL) {
                snprintf(why, whylen, "a frame of %zu bytes: out of memory", len);
                return MCL_ENOMEM;
            }
            atomic_fetch_add_explicit(&tx->track->n, 1, memory_order_relaxed);
            if (zmq_msg_init_data(&m, p, len, frame_free, tx->track) != 0) {
                mcl__free(p);
                ztrack_put(tx->track); // (never 0 here: the broadcaster holds one)
                snprintf(why, whylen, "zmq_msg_init_data(%zu): out of memory", len);
                return MCL_ENOMEM;
            }
        }
        mcl__copy_short(p, f[i].topic, f[i].tl);
        p[f[i].tl] = '\0';
        mcl__put_be64(p + f[i].tl + 1, f[i].tseq);
        size_t off = PREFIX_LEN(f[i].tl);
        for (unsigned k = 0; k < f[i].niov; k++) {
            if (f[i].iov[k].iov_len > 0)
                memcpy(p + off, f[i].iov[k].iov_base, f[i].iov[k].iov_len);
            off += f[i].iov[k].iov_len;
        }
        mcl_err rv = send_msg(tx, &m, f[i].nowait, why, whylen);
        if (rv != MCL_OK)
            return rv;
        ++*sent;
    }
    return MCL_OK;
}

// Whether the hello id (8 bytes at id) is the one in the connection's handshake.
static bool
hello_matches(zmq_msg_t *m, const uint8_t *id)
{
    const char *v = zmq_msg_gets(m, HELLO_PROP);
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    return v != NULL && strcmp(v, hex) == 0;
}

static size_t
hello_find(const mcl__zsock *z, uint64_t id)
{
    for (size_t i = 0; i < z->nhellos; i++)
        if (z->hellos[i] == id)
            return i;
    return z->nhellos;
}

// Reads the subscription notices; called with z->lock held. libzmq gives one when a prefix is
// subscribed by its first connection and one when its last connection leaves, so the counts
// of distinct prefixes are exact.
static void
read_subscriptions_locked(mcl__zsock *z)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, z->s, ZMQ_DONTWAIT) >= 0) {
        const uint8_t *p = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        if (n == 0 || p[0] > 1)
            continue; // not a notice
        bool sub = p[0] == 1;
        int64_t bytes = (int64_t)n - 1;
        if (sub) {
            z->nsubs++;
            z->subs_bytes += bytes;
        } else if (z->nsubs > 0) {
            z->nsubs--;
            z->subs_bytes = z->subs_bytes > bytes ? z->subs_bytes - bytes : 0;
        }
        if (n == 1 + HELLO_LEN && p[1] == 0xff && p[2] == 0xff && p[3] == 0xff && p[4] == 0xff &&
            p[5] == 0) {
            uint64_t id;
            memcpy(&id, p + 6, 8);
            size_t at = hello_find(z, id);
            // inproc has no handshake: its peers are in this process
            bool ok = z->kind == MCL__ZMQ_INPROC || hello_matches(&m, p + 6);
            if (sub && at == z->nhellos && z->nhellos < SUBS_MAX && ok) {
                if (z->nhellos == z->hellos_cap) {
                    size_t nc = z->hellos_cap ? 2 * z->hellos_cap : 8;
                    uint64_t *nh = mcl__realloc(z->hellos, nc * sizeof(*nh));
                    if (nh == NULL)
                        continue; // not counted
                    z->hellos = nh;
                    z->hellos_cap = nc;
                }
                z->hellos[z->nhellos++] = id;
                z->subscribers++;
            } else if (!sub && at < z->nhellos) {
                z->hellos[at] = z->hellos[--z->nhellos];
                z->subscribers--;
            }
        }
        if (sub && (z->nsubs > SUBS_MAX || z->subs_bytes > SUBS_BYTES_MAX))
            drop_over_cap_locked(z, zmq_msg_gets(&m, "Peer-Address"));
    }
    zmq_msg_close(&m);
}

// Waits up to wait_ms for a subscription notice or a monitor event, reads what the socket
// holds, and reports the socket's totals (shared by the broadcasters on its endpoint).
static void
zmq_tx_info(mcl__tx *tx, int wait_ms, mcl__tx_info *out)
{
    mcl__zsock *z = tx->z;
    pthread_mutex_lock(&z->lock);
    if (wait_ms > 0) {
        zmq_pollitem_t it[2] = {{.socket = z->s, .events = ZMQ_POLLIN},
                                {.socket = z->mon, .events = ZMQ_POLLIN}};
        (void)zmq_poll(it, z->mon != NULL ? 2 : 1, wait_ms);
    }
    read_subscriptions_locked(z);
    char line[MCL__ZMQ_LOGLINE];
    z->auth_failures += mcl__zmq_monitor_read(z, line, sizeof(line));
    out->subscribers = z->subscribers;
    out->auth_failures = z->auth_failures;
    out->peers_dropped = z->peers_dropped;
    char dline[sizeof(z->drop_line)];
    uint64_t dskipped = z->drop_skipped;
    snprintf(dline, sizeof(dline), "%s", z->drop_line);
    if (dline[0] != '\0') {
        z->drop_line[0] = '\0';
        z->drop_skipped = 0;
    }
    pthread_mutex_unlock(&z->lock);
    if (line[0] != '\0') // not under z->lock: the handler may publish on this socket
        mcl__zmq_log_lines(line);
    if (dline[0] != '\0' && dskipped > 0)
        mcl__log(MCL_LOG_WARN, "zmq", "%s (and %llu more disconnected)", dline,
                 (unsigned long long)dskipped);
    else if (dline[0] != '\0')
        mcl__log(MCL_LOG_WARN, "zmq", "%s", dline);
}

static void
zmq_tx_close(mcl__tx *tx)
{
    if (tx == NULL)
        return;
    mcl__zmq_zsock_close(tx->z);
    if (tx->track != NULL)
        ztrack_put(tx->track); // freed now, or by the last of its frames
    mcl__free(tx);
}

// --- listeners ---------------------------------------------------------------------------------

struct mcl__rxs {
    mcl__zsock *z;
    int fd;                               // ZMQ_FD, read once at open
    zmq_msg_t msg[MCL__ZMQ_RX_BATCH];     // what the last read handed out
    unsigned nmsg;
    // A frame that rx_pending read ahead (asking libzmq for ZMQ_EVENTS costs it a poll and a
    // getpid every time, a read that finds a frame costs neither): the next read's first.
    zmq_msg_t ahead;
    bool have_ahead;
    int64_t real_off; // CLOCK_REALTIME - CLOCK_MONOTONIC, re-read every 1024 reads
    unsigned real_age;
};

// Subscribes the prefixes that cover the topic filter, then the hello (see HELLO_LEN).
static mcl_err
subscribe(mcl__zsock *z, const char *const *topics, size_t ntopics)
{
    uint8_t hello[HELLO_LEN] = {0xff, 0xff, 0xff, 0xff, 0};
    memcpy(hello + 5, z->hello_id, 8); // also in the handshake (zsock_open)
    if (ntopics == 0 && zmq_setsockopt(z->s, ZMQ_SUBSCRIBE, "", 0) != 0)
        goto fail;
    for (size_t i = 0; i < ntopics; i++) {
        // "a/b*" -> prefix "a/b"; "imu" -> "imu\0" (exactly that topic); "" -> "\0".
        char buf[MCL_TOPIC_MAX + 2];
        size_t n = strlen(topics[i]);
        if (n > 0 && topics[i][n - 1] == '*') {
            memcpy(buf, topics[i], n - 1);
            n--;
        } else {
            memcpy(buf, topics[i], n);
            buf[n++] = '\0';
        }
        if (zmq_setsockopt(z->s, ZMQ_SUBSCRIBE, buf, n) != 0)
            goto fail;
    }
    if (zmq_setsockopt(z->s, ZMQ_SUBSCRIBE, hello, sizeof(hello)) != 0) // last: see HELLO_LEN
        goto fail;
    return MCL_OK;
fail:;
    int e = errno;
    return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "%s: subscribe: %s", z->url,
                     zmq_strerror(e));
}

static void zmq_rx_close(mcl__rxs *rx);

static mcl_err
zmq_rx_open(mcl__rxs **rxp, const struct mcl_connection *c, const char *const *topics,
            size_t ntopics, int adopt_fd, mcl__rx_opened *out)
{
    *rxp = NULL;
    if (adopt_fd >= 0) // libzmq sockets cannot be handed to another process
        return MCL_EINVAL;
    mcl__rxs *rx = mcl__zalloc(sizeof(*rx));
    if (rx == NULL)
        return MCL_ENOMEM;
    rx->fd = -1;
    mcl_err rv = zsock_open(c, false, &rx->z, &out->bound_port);
    if (rv == MCL_OK)
        rv = subscribe(rx->z, topics, ntopics);
    if (rv == MCL_OK) {
        size_t l = sizeof(rx->fd);
        if (zmq_getsockopt(rx->z->s, ZMQ_FD, &rx->fd, &l) != 0 || rx->fd < 0)
            rv = mcl__fail(MCL_ESYS, NULL, 0, "listener", "%s: no ZMQ_FD", c->url);
    }
    if (rv != MCL_OK) {
        zmq_rx_close(rx);
        return rv;
    }
    *rxp = rx;
    return MCL_OK;
}

static void
release_batch(mcl__rxs *rx)
{
    for (unsigned i = 0; i < rx->nmsg; i++)
        zmq_msg_close(&rx->msg[i]);
    rx->nmsg = 0;
}

// One frame into *m (initialised here; closed again unless MCL_OK). MCL_OK, MCL_EAGAIN when
// none waits, or an error (its errno in *err).
static mcl_err
recv_frame(mcl__rxs *rx, zmq_msg_t *m, int *err)
{
    zmq_msg_init(m);
    for (;;) {
        if (zmq_msg_recv(m, rx->z->s, ZMQ_DONTWAIT) >= 0)
            return MCL_OK;
        int e = errno;
        if (e == EINTR)
            continue;
        zmq_msg_close(m);
        *err = e;
        return e == EAGAIN ? MCL_EAGAIN : e == ETERM ? MCL_ECLOSED : mcl__sys_err(e);
    }
}

// Reads one frame into slot i (the one read ahead first). MCL_OK, MCL_EAGAIN when none waits,
// or an error (its errno in *err; not logged here). *now: the arrival time of the frames of
// this read, taken at the first (0: not yet): one clock read per read, not per frame (they
// were all waiting).
static mcl_err
read_one(mcl__rxs *rx, unsigned i, mcl__dgram *d, int *err, int64_t *now)
{
    zmq_msg_t *m = &rx->msg[i];
    if (rx->have_ahead) { // (only ever for the first slot: rx_read takes it first)
        zmq_msg_init(m);
        zmq_msg_move(m, &rx->ahead);
        zmq_msg_close(&rx->ahead);
        rx->have_ahead = false;
    } else {
        mcl_err rv = recv_frame(rx, m, err);
        if (rv != MCL_OK)
            return rv;
    }
    rx->nmsg = i + 1;
    d->data = NULL;
    d->len = 0;
    d->has_tseq = false;
    d->meta.family = 0; // no sender address through libzmq
    d->meta.port = 0;
    memset(d->meta.addr, 0, sizeof(d->meta.addr));
    if (*now == 0) {
        *now = mcl__mono_ns();
        if (rx->real_age-- == 0) { // one clock read per read; the offset moves only with
            rx->real_off = mcl__real_ns() - *now; // adjustments of the real-time clock
            rx->real_age = 1023;
        }
    }
    d->meta.mono_ns = *now;
    d->meta.real_ns = d->meta.mono_ns + rx->real_off;
    if (zmq_msg_more(m)) {
        // Not ours (we send single frames): skip the rest of it; reported as malformed.
        zmq_msg_t part;
        zmq_msg_init(&part);
        while (zmq_msg_recv(&part, rx->z->s, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&part))
            ;
        zmq_msg_close(&part);
        return MCL_OK;
    }
    const uint8_t *p = zmq_msg_data(m);
    size_t n = zmq_msg_size(m);
    // The topic's end (mcl__nul_at: a word at a time over the first 32 bytes, where most
    // topics end, memchr beyond).
    if (p == NULL)
        return MCL_OK;
    size_t lim = n < MCL_TOPIC_MAX + 1 ? n : MCL_TOPIC_MAX + 1;
    size_t tl = mcl__nul_at(p, lim);
    if (tl == lim || n - tl - 1 < 8)
        return MCL_OK; // not our framing: data stays NULL (malformed)
    const uint8_t *nul = p + tl;
    size_t skip = PREFIX_LEN(tl);
    d->data = p + skip;
    d->len = n - skip;
    d->has_tseq = true;
    d->topic = (const char *)p;
    d->tl = (size_t)(nul - p);
    d->tseq = mcl__get_be64(nul + 1);
    return MCL_OK;
}

static mcl_err
zmq_rx_read(mcl__rxs *rx, mcl__dgram *out, unsigned max, unsigned *n, uint64_t *kernel_drops)
{
    (void)kernel_drops; // libzmq drops nothing silently on a SUB (the publisher blocks or counts)
    release_batch(rx);
    if (max > MCL__ZMQ_RX_BATCH)
        max = MCL__ZMQ_RX_BATCH;
    unsigned i = 0;
    int e = 0;
    int64_t now = 0;
    mcl_err rv = MCL_OK;
    while (i < max && (rv = read_one(rx, i, &out[i], &e, &now)) == MCL_OK)
        i++;
    *n = i;
    if (i > 0) // an error after some frames comes back with the next read
        return MCL_OK;
    if (rv != MCL_EAGAIN)
        return mcl__fail(rv, NULL, 0, "zmq", "%s: zmq_msg_recv: %s", rx->z->url,
                         zmq_strerror(e));
    return rv;
}

static int
zmq_rx_fd(const mcl__rxs *rx)
{
    return rx->fd;
}

// Reads a frame ahead rather than asking ZMQ_EVENTS: when frames wait (a busy receiver that
// asks after every batch) that costs no system call; when none does, the same as ZMQ_EVENTS
// (libzmq processes its commands: the fd is armed again). An error other than EAGAIN says
// true: the next read reports it.
static bool
zmq_rx_pending(mcl__rxs *rx)
{
    if (rx->have_ahead)
        return true;
    int e = 0;
    mcl_err rv = recv_frame(rx, &rx->ahead, &e);
    rx->have_ahead = rv == MCL_OK;
    return rv != MCL_EAGAIN;
}

static int
zmq_rx_wait(mcl__rxs *rx, int extra_fd, int timeout_ms)
{
    if (rx->have_ahead)
        return 1; // (read ahead: readable now)
    zmq_pollitem_t it[2] = {{.socket = rx->z->s, .events = ZMQ_POLLIN},
                            {.fd = extra_fd, .events = ZMQ_POLLIN}};
    int r;
    do {
        r = zmq_poll(it, extra_fd >= 0 ? 2 : 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

static void
zmq_rx_idle(mcl__rxs *rx, mcl__rx_idle *out)
{
    char line[MCL__ZMQ_LOGLINE];
    out->auth_failures = mcl__zmq_monitor_read(rx->z, line, sizeof(line));
    if (line[0] != '\0')
        mcl__zmq_log_lines(line);
}

static void
zmq_rx_close(mcl__rxs *rx)
{
    if (rx == NULL)
        return;
    release_batch(rx);
    if (rx->have_ahead)
        zmq_msg_close(&rx->ahead);
    mcl__zmq_zsock_close(rx->z);
    mcl__free(rx);
}

// A queued listener's receiver opens its own socket in another process: try it here, so that a
// bad key file or address fails the open, not the receiver. A binding URL is tried by
// connecting to it: a trial bind, closed late by libzmq, could take the port from the receiver
// or unlink its ipc socket file.
static mcl_err
zmq_rx_probe(const struct mcl_connection *c)
{
    const mcl__zmq_opts *o = mcl__zmq_opts_of(c);
    if (o->kind == MCL__ZMQ_TCP && c->port == 0)
        return mcl__fail(MCL_EINVAL, NULL, 0, "zmq",
                         "%s: a receiver in another process needs a fixed port (it binds it "
                         "again after a restart)",
                         c->url);
    bool binds = o->mode == MCL__ZMODE_BIND;
    if (binds && o->kind == MCL__ZMQ_TCP && strcmp(o->addr, "*") == 0)
        return MCL_OK; // nothing to connect to; the receiver reports a failure itself
    struct mcl_connection probe = *c;
    if (binds) {
        mcl__zmq_opts *po = mcl__tport_opts(&probe);
        po->mode = MCL__ZMODE_CONNECT;
    }
    mcl__zsock *z;
    uint16_t port = 0;
    mcl_err rv = zsock_open(&probe, false, &z, &port);
    mcl__zmq_zsock_close(z);
    return rv;
}

const mcl__bcast_ops mcl__zmq_bcast_ops = {
    .tx_open = zmq_tx_open,
    .tx_send = zmq_tx_send,
    .tx_info = zmq_tx_info,
    .tx_backlog = zmq_tx_backlog,
    .tx_close = zmq_tx_close,
    .rx_open = zmq_rx_open,
    .rx_probe = zmq_rx_probe,
    .rx_read = zmq_rx_read,
    .rx_fd = zmq_rx_fd,
    .rx_pending = zmq_rx_pending,
    .rx_wait = zmq_rx_wait,
    .rx_idle = zmq_rx_idle,
    .rx_close = zmq_rx_close,
};
