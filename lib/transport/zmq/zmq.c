// ZeroMQ transport (see zsock.h for the framing). The only file that includes <zmq.h>.
#define _GNU_SOURCE
#include "zmq.h"

#include "../../core/internal.h"
#include "../../raw/wire.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

// A listener also subscribes "\xff\xff\xff\xff\0" + 8 random bytes (its "hello"); the
// broadcaster counts these to know how many listeners are connected and subscribed. The hello
// is the last subscription a listener sends: it is made after the topic subscriptions, and
// libzmq sends the subscriptions of a new connection in ascending byte order. So once the
// broadcaster sees a listener's hello, that listener's topics are in place too. A frame could
// match it only with the topic "\xff\xff\xff\xff" and a TSEQ equal to the 8 random bytes, and
// even then the listener's exact topic check drops it.
#define HELLO_LEN 13

// Handshake failures that mean a key problem (a connection closed before its handshake, e.g.
// a port scan, is HANDSHAKE_FAILED_NO_DETAIL and is not one).
enum { MON_EVENTS = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH };

struct mcl__zsock {
    void *s;   // XPUB or SUB
    void *mon; // PAIR connected to the socket's monitor (NULL if it could not be set up)
    // A bound XPUB is shared by every broadcaster of this process on the same endpoint (as
    // several UDP broadcasters share a group); `lock` serialises their use of the socket.
    pthread_mutex_t lock;
    bool lock_init;
    unsigned refs;             // under ctx_lock
    char ep[MCL__ZADDR_MAX + 32]; // the endpoint it is bound to ("" = not shared)
    struct mcl__zsock *next;   // in `shared`, under ctx_lock
    int64_t subscribers;       // under lock
    uint64_t auth_failures;    // under lock
    bool zap_registered;       // its ZAP domain ("mcl-<address>") lists the allowed client keys
    int64_t log_after_ns;      // handshake failures are logged at most once a second;
    uint64_t log_skipped;      // the skipped ones are counted in the next line
    bool have_msg;
    zmq_msg_t msg; // the last message received (what recv handed out)
    char url[MCL__URL_MAX];
};

// --- the process-wide context ------------------------------------------------------------------

// One context per process, so that zmq+inproc works between any two handles. libzmq contexts
// do not survive fork(): a forked child (the queued listener's receiver) that opens a socket
// gets a new context and leaves the parent's copy alone (its threads do not exist there).
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ctx_ptr;
static pid_t ctx_pid;
static unsigned ctx_refs;
static mcl__zsock *shared; // bound publisher sockets, under ctx_lock

// The ZAP handler (curve_clients=): one REP socket at inproc://zeromq.zap.01 in the
// process's context, served by the "mcl-zap" thread, which answers libzmq's authentication
// requests from a table of domains (one per server socket) and their allowed client keys.
typedef struct zap_domain {
    char name[40];
    uint8_t (*keys)[32];
    size_t nkeys;
    struct zap_domain *next;
} zap_domain;
static pthread_mutex_t zap_lock = PTHREAD_MUTEX_INITIALIZER; // guards zap_domains
static zap_domain *zap_domains;
static bool zap_running; // under ctx_lock
static atomic_bool zap_stop;
static pthread_t zap_thread;

// A fork (the queued listener's receiver) must not happen while another thread holds
// ctx_lock, or the child, which takes it to make its own context, would wait forever.
static void
fork_prepare(void)
{
    pthread_mutex_lock(&ctx_lock);
    pthread_mutex_lock(&zap_lock);
}
static void
fork_done(void)
{
    pthread_mutex_unlock(&zap_lock);
    pthread_mutex_unlock(&ctx_lock);
}
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void
atfork_register(void)
{
    (void)pthread_atfork(fork_prepare, fork_done, fork_done);
}

static mcl_err
ctx_acquire(void **out)
{
    pthread_once(&atfork_once, atfork_register);
    pthread_mutex_lock(&ctx_lock);
    pid_t me = getpid();
    if (ctx_ptr != NULL && ctx_pid != me) {
        ctx_ptr = NULL;
        ctx_refs = 0;
        shared = NULL; // the parent's sockets, not usable here
        zap_running = false; // its thread does not exist here
        zap_domains = NULL;
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

static void
ctx_release(void)
{
    pthread_mutex_lock(&ctx_lock);
    void *term = NULL;
    bool stop_zap = false;
    if (ctx_ptr != NULL && ctx_pid == getpid() && --ctx_refs == 0) {
        term = ctx_ptr;
        ctx_ptr = NULL;
        stop_zap = zap_running;
        zap_running = false;
    }
    if (stop_zap) {
        // Its socket must be closed before the context can end. Under ctx_lock, so that no
        // new context starts a handler meanwhile (the thread takes only zap_lock; it notices
        // the stop within 100 ms).
        atomic_store(&zap_stop, true);
        pthread_join(zap_thread, NULL);
    }
    pthread_mutex_unlock(&ctx_lock);
    if (term != NULL) // waits for sockets' linger; every socket of ours is closed by now
        (void)zmq_ctx_term(term);
}

// --- keys ------------------------------------------------------------------------------------

static bool
z85_key_ok(const char *k)
{
    uint8_t bin[32];
    return strlen(k) == 40 && zmq_z85_decode(bin, k) != NULL;
}

// Opens a key file for reading; the error names the URL, the kind of file and the reason.
static mcl_err
open_key_file(const char *url, const char *what, const char *path, FILE **fp)
{
    *fp = fopen(path, "r");
    if (*fp != NULL)
        return MCL_OK;
    int e = errno;
    return mcl__fail(e == ENOENT ? MCL_ENOENT : mcl__sys_err(e), NULL, 0, "zmq", "%s: %s %s: %s",
                     url, what, path, strerror(e));
}

// Reads "public = KEY" and (when sec is not NULL) "secret = KEY" from a key file written by
// mcl-keygen. Lines starting with '#' and blank lines are ignored.
static mcl_err
read_key_file(const char *url, const char *path, char pub[41], char sec[41])
{
    FILE *f;
    mcl_err orv = open_key_file(url, "key file", path, &f);
    if (orv != MCL_OK)
        return orv;
    char line[256];
    pub[0] = '\0';
    if (sec != NULL)
        sec[0] = '\0';
    unsigned lineno = 0;
    mcl_err rv = MCL_OK;
    while (rv == MCL_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char key[16], val[64];
        if (sscanf(p, "%15[a-z] = %63s", key, val) != 2 || !z85_key_ok(val)) {
            rv = mcl__fail(MCL_EAUTH, NULL, 0, "zmq",
                           "%s: key file %s line %u: expected 'public = KEY' or "
                           "'secret = KEY' with a 40-character Z85 key",
                           url, path, lineno);
        } else if (strcmp(key, "public") == 0) {
            memcpy(pub, val, 41);
        } else if (strcmp(key, "secret") == 0) {
            if (sec != NULL)
                memcpy(sec, val, 41);
        }
    }
    fclose(f);
    if (rv != MCL_OK)
        return rv;
    if (pub[0] == '\0' || (sec != NULL && sec[0] == '\0'))
        return mcl__fail(MCL_EAUTH, NULL, 0, "zmq", "%s: key file %s has no %s key", url, path,
                         pub[0] == '\0' ? "public" : "secret");
    return MCL_OK;
}

mcl_err
mcl__zmq_keypair(char pub[41], char sec[41])
{
    if (zmq_curve_keypair(pub, sec) != 0) {
        int e = errno;
        return mcl__fail(e == ENOTSUP ? MCL_ENOTSUP : mcl__sys_err(e), NULL, 0, "zmq",
                         "zmq_curve_keypair: %s", zmq_strerror(e));
    }
    return MCL_OK;
}

// A key written as 64 hex digits (Z85 text uses characters that URLs reserve, such as & and ?).
static bool
hex_key_to_z85(const char *hex, char z85[41])
{
    if (strlen(hex) != 64)
        return false;
    uint8_t bin[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)hex[2 * i]) ||
            !isxdigit((unsigned char)hex[2 * i + 1]))
            return false;
        bin[i] = (uint8_t)v;
    }
    return zmq_z85_encode(z85, bin, 32) != NULL;
}

static int
set_str(void *s, int opt, const char *v)
{
    return zmq_setsockopt(s, opt, v, strlen(v));
}

static mcl_err
setup_curve(mcl__zsock *z, const struct mcl_connection *c)
{
    char pub[41], sec[41];
    mcl_err rv;
    if (c->curve_server[0] != '\0') { // a client: it knows the server's public key
        char server[41];
        struct stat st;
        if (stat(c->curve_server, &st) != 0 && hex_key_to_z85(c->curve_server, server))
            ; // given in the URL
        else if ((rv = read_key_file(z->url, c->curve_server, server, NULL)) != MCL_OK)
            return rv;
        if (c->curve_key[0] != '\0')
            rv = read_key_file(z->url, c->curve_key, pub, sec);
        else
            rv = mcl__zmq_keypair(pub, sec); // an anonymous client
        if (rv != MCL_OK)
            return rv;
        if (set_str(z->s, ZMQ_CURVE_SERVERKEY, server) != 0 ||
            set_str(z->s, ZMQ_CURVE_PUBLICKEY, pub) != 0 ||
            set_str(z->s, ZMQ_CURVE_SECRETKEY, sec) != 0)
            goto fail;
    } else if (c->curve_key[0] != '\0') { // a server: it holds the secret key
        if ((rv = read_key_file(z->url, c->curve_key, pub, sec)) != MCL_OK)
            return rv;
        int one = 1;
        if (zmq_setsockopt(z->s, ZMQ_CURVE_SERVER, &one, sizeof(one)) != 0 ||
            set_str(z->s, ZMQ_CURVE_SECRETKEY, sec) != 0)
            goto fail;
    }
    return MCL_OK;
fail:;
    int e = errno;
    return mcl__fail(e == EINVAL ? MCL_ENOTSUP : mcl__sys_err(e), NULL, 0, "zmq",
                     "%s: CURVE set-up failed: %s (is libzmq built with libsodium?)", z->url,
                     zmq_strerror(e));
}

// --- ZAP: which clients a CURVE server accepts ----------------------------------------------

// Reads the allowed client keys: lines "public = Z85" (so .pub files can be concatenated), a
// bare Z85 key, or 64 hex digits; '#' comments and blank lines are ignored.
static mcl_err
read_client_keys(const char *url, const char *path, uint8_t (**keys)[32], size_t *n)
{
    *keys = NULL;
    *n = 0;
    FILE *f;
    mcl_err orv = open_key_file(url, "client key file", path, &f);
    if (orv != MCL_OK)
        return orv;
    char line[256];
    unsigned lineno = 0;
    size_t cap = 0;
    mcl_err rv = MCL_OK;
    while (rv == MCL_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\r\n")] = '\0';
        if (*p == '#' || *p == '\0')
            continue;
        char val[80] = "", z85[41];
        uint8_t bin[32];
        if (sscanf(p, "public = %79s", val) != 1)
            sscanf(p, "%79s", val);
        bool ok = false;
        if (strlen(val) == 40 && zmq_z85_decode(bin, val) != NULL)
            ok = true;
        else if (hex_key_to_z85(val, z85) && zmq_z85_decode(bin, z85) != NULL)
            ok = true;
        if (!ok) {
            rv = mcl__fail(MCL_EAUTH, NULL, 0, "zmq",
                           "%s: client key file %s line %u: not a public key (Z85, 'public = "
                           "Z85' or 64 hex digits)",
                           url, path, lineno);
            break;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            uint8_t(*nk)[32] = mcl__realloc(*keys, cap * sizeof(**keys));
            if (nk == NULL) {
                rv = MCL_ENOMEM;
                break;
            }
            *keys = nk;
        }
        memcpy((*keys)[(*n)++], bin, 32);
    }
    fclose(f);
    if (rv != MCL_OK) {
        mcl__free(*keys);
        *keys = NULL;
        *n = 0;
    }
    return rv;
}

// Answers one ZAP request: 200 unless the domain is one of ours and the key is not listed.
static void
zap_answer(void *rep)
{
    zmq_msg_t part[7];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, rep, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 7)
            part[n++] = m; // ownership moves into the array
        else
            zmq_msg_close(&m);
    }
    if (n < 2) { // not a request; a REP socket must still answer
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        zmq_send(rep, "", 0, 0);
        return;
    }
    const char *code = "200", *text = "OK";
    if (n >= 7 && zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&part[6]) == 32) {
        char domain[40];
        size_t dl = zmq_msg_size(&part[2]) < sizeof(domain) - 1 ? zmq_msg_size(&part[2])
                                                                : sizeof(domain) - 1;
        memcpy(domain, zmq_msg_data(&part[2]), dl);
        domain[dl] = '\0';
        pthread_mutex_lock(&zap_lock);
        for (zap_domain *d = zap_domains; d != NULL; d = d->next) {
            if (strcmp(d->name, domain) != 0)
                continue;
            code = "400";
            text = "client key not allowed";
            for (size_t k = 0; k < d->nkeys; k++)
                if (memcmp(d->keys[k], zmq_msg_data(&part[6]), 32) == 0) {
                    code = "200";
                    text = "OK";
                }
            break;
        }
        pthread_mutex_unlock(&zap_lock);
    }
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(rep, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
    zmq_send(rep, code, 3, ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static void *
zap_main(void *arg)
{
    void *rep = arg;
    while (!atomic_load(&zap_stop)) {
        zmq_pollitem_t it = {.socket = rep, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 100) > 0)
            zap_answer(rep);
    }
    zmq_close(rep);
    return NULL;
}

// Starts the handler if it does not run yet. Called with ctx_lock held.
static mcl_err
zap_start_locked(void *ctx)
{
    if (zap_running)
        return MCL_OK;
    void *rep = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (rep == NULL || zmq_setsockopt(rep, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(rep, "inproc://zeromq.zap.01") != 0) {
        int e = errno;
        if (rep != NULL)
            zmq_close(rep);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "ZAP handler: %s", zmq_strerror(e));
    }
    atomic_store(&zap_stop, false);
    int e = pthread_create(&zap_thread, NULL, zap_main, rep);
    if (e != 0) {
        zmq_close(rep);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "zmq", "ZAP handler: pthread_create: %s",
                         strerror(e));
    }
    pthread_setname_np(zap_thread, "mcl-zap");
    zap_running = true;
    return MCL_OK;
}

static void
zap_unregister(mcl__zsock *z)
{
    if (!z->zap_registered)
        return;
    char name[40];
    snprintf(name, sizeof(name), "mcl-%p", (void *)z);
    pthread_mutex_lock(&zap_lock);
    for (zap_domain **pp = &zap_domains; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0) {
            zap_domain *d = *pp;
            *pp = d->next;
            mcl__free(d->keys);
            mcl__free(d);
            break;
        }
    pthread_mutex_unlock(&zap_lock);
    z->zap_registered = false;
}

// A CURVE server with curve_clients=: its own ZAP domain with the keys it accepts.
static mcl_err
zap_register(mcl__zsock *z, void *ctx, const struct mcl_connection *c)
{
    zap_domain *d = mcl__zalloc(sizeof(*d));
    if (d == NULL)
        return MCL_ENOMEM;
    snprintf(d->name, sizeof(d->name), "mcl-%p", (void *)z);
    mcl_err rv = read_client_keys(z->url, c->curve_clients, &d->keys, &d->nkeys);
    if (rv == MCL_OK && zmq_setsockopt(z->s, ZMQ_ZAP_DOMAIN, d->name, strlen(d->name)) != 0)
        rv = mcl__fail(mcl__sys_err(errno), NULL, 0, "zmq", "%s: ZMQ_ZAP_DOMAIN: %s", z->url,
                       zmq_strerror(errno));
    if (rv == MCL_OK) {
        pthread_mutex_lock(&ctx_lock);
        rv = zap_start_locked(ctx);
        pthread_mutex_unlock(&ctx_lock);
    }
    if (rv != MCL_OK) {
        mcl__free(d->keys);
        mcl__free(d);
        return rv;
    }
    pthread_mutex_lock(&zap_lock);
    d->next = zap_domains;
    zap_domains = d;
    pthread_mutex_unlock(&zap_lock);
    z->zap_registered = true;
    return MCL_OK;
}

// --- open / close ------------------------------------------------------------------------------

static void
setup_monitor(mcl__zsock *z, void *ctx)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://mcl-monitor-%p", (void *)z);
    if (zmq_socket_monitor(z->s, ep, MON_EVENTS) != 0)
        return; // failed handshakes then go unreported, nothing else changes
    z->mon = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    if (z->mon != NULL) {
        (void)zmq_setsockopt(z->mon, ZMQ_LINGER, &zero, sizeof(zero));
        // No limit on the queue of events: libzmq's I/O thread blocks when the monitor's
        // queue is full, and that would stall every socket of the process.
        (void)zmq_setsockopt(z->mon, ZMQ_RCVHWM, &zero, sizeof(zero));
    }
    if (z->mon != NULL && zmq_connect(z->mon, ep) != 0) {
        zmq_close(z->mon);
        z->mon = NULL;
    }
}

mcl_err
mcl__zmq_open(struct mcl_connection *c, bool publisher, mcl__zsock **sockp)
{
    *sockp = NULL;
    void *ctx = NULL;
    mcl_err rv = ctx_acquire(&ctx);
    if (rv != MCL_OK)
        return rv;
    mcl__zsock *z = mcl__zalloc(sizeof(*z));
    if (z == NULL) {
        ctx_release();
        return MCL_ENOMEM;
    }
    snprintf(z->url, sizeof(z->url), "%s", c->url);
    bool bind = c->zmode == MCL__ZMODE_BIND || (c->zmode == MCL__ZMODE_DEFAULT && publisher);
    char ep[MCL__ZADDR_MAX + 32];
    const char *what = "zmq_socket";
    z->refs = 1;
    if (pthread_mutex_init(&z->lock, NULL) != 0) {
        rv = MCL_ESYS;
        goto out;
    }
    z->lock_init = true;
    z->s = zmq_socket(ctx, publisher ? ZMQ_XPUB : ZMQ_SUB);
    if (z->s == NULL)
        goto zfail;
    what = "zmq_setsockopt";
    int linger = c->linger_ms;
    if (zmq_setsockopt(z->s, ZMQ_LINGER, &linger, sizeof(linger)) != 0)
        goto zfail;
    if (c->hwm > 0) {
        int hwm = c->hwm;
        if (zmq_setsockopt(z->s, publisher ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0)
            goto zfail;
    }
    if (publisher) {
        int nodrop = c->zdrop ? 0 : 1;
        int tmo = c->ztimeout_ms;
        if (zmq_setsockopt(z->s, ZMQ_XPUB_NODROP, &nodrop, sizeof(nodrop)) != 0 ||
            zmq_setsockopt(z->s, ZMQ_SNDTIMEO, &tmo, sizeof(tmo)) != 0)
            goto zfail;
    } else {
        // Larger messages are refused by libzmq before they are read into memory (the peer is
        // disconnected); what gets through is still checked against maxmsg by the engine.
        // A batch frame (up to MCL__ZMQ_BATCH_MAX of records) passes too: the engine checks
        // each record against maxmsg and counts what is larger as oversize.
        size_t body = c->maxmsg > MCL__ZMQ_BATCH_MAX ? c->maxmsg : MCL__ZMQ_BATCH_MAX;
        int64_t max = (int64_t)body + (int64_t)MCL__ZMQ_OVERHEAD(MCL_TOPIC_MAX);
        if (zmq_setsockopt(z->s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0)
            goto zfail;
    }
    if (c->zkind == MCL__ZMQ_TCP) {
        int v6 = 1; // accept IPv6 host names and addresses (IPv4 keeps working)
        if (zmq_setsockopt(z->s, ZMQ_IPV6, &v6, sizeof(v6)) != 0)
            goto zfail;
    }
    if ((rv = setup_curve(z, c)) != MCL_OK)
        goto out;
    if (c->curve_clients[0] != '\0' && (rv = zap_register(z, ctx, c)) != MCL_OK)
        goto out;
    if (c->zkind == MCL__ZMQ_TCP) {
        bool v6 = strchr(c->zaddr, ':') != NULL;
        if (!bind && (c->port == 0 || strcmp(c->zaddr, "*") == 0)) {
            rv = mcl__fail(MCL_EINVAL, NULL, 0, "zmq",
                           "%s: cannot connect to %s (give the host and port of the binding side)",
                           c->url, c->port == 0 ? "port 0" : "*");
            goto out;
        }
        if (c->port == 0)
            snprintf(ep, sizeof(ep), v6 ? "tcp://[%s]:*" : "tcp://%s:*", c->zaddr);
        else
            snprintf(ep, sizeof(ep), v6 ? "tcp://[%s]:%u" : "tcp://%s:%u", c->zaddr,
                     (unsigned)c->port);
    } else {
        snprintf(ep, sizeof(ep), "%s://%s", c->zkind == MCL__ZMQ_IPC ? "ipc" : "inproc",
                 c->zaddr);
    }
    if (publisher && bind && !(c->zkind == MCL__ZMQ_TCP && c->port == 0)) {
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
            mcl__zmq_close(z);
            if (!same)
                return mcl__fail(MCL_EADDRINUSE, NULL, 0, "zmq",
                                 "%s: %s is already bound by this process as %s (broadcasters "
                                 "share an endpoint only with the same options)",
                                 c->url, ep, other_url);
            *sockp = other;
            return MCL_OK;
        }
    }
    if (c->curve_key[0] != '\0' || c->curve_server[0] != '\0')
        setup_monitor(z, ctx); // only CURVE handshakes can fail for a key
    what = bind ? "zmq_bind" : "zmq_connect";
    if ((bind ? zmq_bind(z->s, ep) : zmq_connect(z->s, ep)) != 0)
        goto zfail;
    if (bind && c->zkind == MCL__ZMQ_TCP && c->port == 0) {
        char last[MCL__ZADDR_MAX + 32];
        size_t ll = sizeof(last);
        if (zmq_getsockopt(z->s, ZMQ_LAST_ENDPOINT, last, &ll) == 0) {
            const char *colon = strrchr(last, ':');
            unsigned port = 0;
            if (colon != NULL && sscanf(colon + 1, "%u", &port) == 1 && port > 0 && port < 65536) {
                c->port = (uint16_t)port;
                mcl__connection_canon(c);
                snprintf(z->url, sizeof(z->url), "%s", c->url);
            }
        }
    }
    if (publisher && bind) { // others of this process may share it from now on
        if (c->zkind == MCL__ZMQ_TCP && c->port != 0 && strstr(ep, ":*") != NULL)
            snprintf(ep, sizeof(ep), strchr(c->zaddr, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u",
                     c->zaddr, (unsigned)c->port);
        snprintf(z->ep, sizeof(z->ep), "%s", ep);
        pthread_mutex_lock(&ctx_lock);
        z->next = shared;
        shared = z;
        pthread_mutex_unlock(&ctx_lock);
    }
    *sockp = z;
    return MCL_OK;
zfail:;
    int e = errno;
    mcl_err code = e == EADDRINUSE ? MCL_EADDRINUSE
                   : e == EINVAL || e == EPROTONOSUPPORT || e == ENODEV ? MCL_EURL
                                                                        : mcl__sys_err(e);
    rv = mcl__fail(code, NULL, 0, "zmq", "%s: %s(%s): %s", c->url, what,
                   strcmp(what, "zmq_bind") == 0 || strcmp(what, "zmq_connect") == 0 ? ep : "",
                   zmq_strerror(e));
out:
    mcl__zmq_close(z);
    return rv;
}

void
mcl__zmq_close(mcl__zsock *z)
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
    if (z->have_msg)
        zmq_msg_close(&z->msg);
    zap_unregister(z);
    // Stop the monitor before closing its reader: an event sent to a reader that is gone would
    // block libzmq's I/O thread.
    if (z->s != NULL && z->mon != NULL)
        (void)zmq_socket_monitor(z->s, NULL, 0);
    if (z->mon != NULL)
        zmq_close(z->mon);
    if (z->s != NULL)
        zmq_close(z->s);
    if (z->lock_init)
        pthread_mutex_destroy(&z->lock);
    mcl__free(z);
    ctx_release();
}

// --- listener ----------------------------------------------------------------------------------

mcl_err
mcl__zmq_subscribe(mcl__zsock *z, const char *const *topics, size_t ntopics)
{
    uint8_t hello[HELLO_LEN] = {0xff, 0xff, 0xff, 0xff, 0};
    uint64_t id;
    mcl_err rv = mcl__random_u64(&id);
    if (rv != MCL_OK)
        return rv;
    memcpy(hello + 5, &id, 8);
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

mcl_err
mcl__zmq_recv(mcl__zsock *z, const uint8_t **data, size_t *len)
{
    if (z->have_msg) {
        zmq_msg_close(&z->msg);
        z->have_msg = false;
    }
    zmq_msg_init(&z->msg);
    for (;;) {
        int r = zmq_msg_recv(&z->msg, z->s, ZMQ_DONTWAIT);
        if (r >= 0)
            break;
        int e = errno;
        if (e == EINTR)
            continue;
        zmq_msg_close(&z->msg);
        if (e == EAGAIN)
            return MCL_EAGAIN;
        return mcl__fail(e == ETERM ? MCL_ECLOSED : mcl__sys_err(e), NULL, 0, "zmq",
                         "%s: zmq_msg_recv: %s", z->url, zmq_strerror(e));
    }
    z->have_msg = true;
    if (zmq_msg_more(&z->msg)) {
        // Not ours (we send single frames): skip the rest of it and report it as malformed.
        zmq_msg_t part;
        zmq_msg_init(&part);
        while (zmq_msg_recv(&part, z->s, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&part))
            ;
        zmq_msg_close(&part);
        *data = NULL;
        *len = 0;
        return MCL_OK;
    }
    *data = zmq_msg_data(&z->msg);
    *len = zmq_msg_size(&z->msg);
    return MCL_OK;
}

bool
mcl__zmq_readable(mcl__zsock *z)
{
    int ev = 0;
    size_t l = sizeof(ev);
    return zmq_getsockopt(z->s, ZMQ_EVENTS, &ev, &l) == 0 && (ev & ZMQ_POLLIN) != 0;
}

int
mcl__zmq_fd(mcl__zsock *z)
{
    int fd = -1;
    size_t l = sizeof(fd);
    if (zmq_getsockopt(z->s, ZMQ_FD, &fd, &l) != 0)
        return -1;
    return fd;
}

int
mcl__zmq_wait(mcl__zsock *z, int extra_fd, int timeout_ms)
{
    zmq_pollitem_t it[2] = {{.socket = z->s, .events = ZMQ_POLLIN},
                            {.fd = extra_fd, .events = ZMQ_POLLIN}};
    int r;
    do {
        r = zmq_poll(it, extra_fd >= 0 ? 2 : 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r;
}

// --- broadcaster -------------------------------------------------------------------------------

// Sends m (its ownership passes to libzmq on success; closed here on failure).
static mcl_err
send_msg(mcl__zsock *z, zmq_msg_t *m, int timeout_ms)
{
    pthread_mutex_lock(&z->lock);
    for (;;) {
        if (zmq_msg_send(m, z->s, 0) >= 0) {
            pthread_mutex_unlock(&z->lock);
            return MCL_OK;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        pthread_mutex_unlock(&z->lock);
        zmq_msg_close(m);
        if (e == EAGAIN)
            return timeout_ms == 0 ? MCL_EAGAIN : MCL_ETIMEDOUT;
        return mcl__fail(e == ETERM ? MCL_ECLOSED : mcl__sys_err(e), NULL, 0, "zmq",
                         "%s: zmq_msg_send: %s", z->url, zmq_strerror(e));
    }
}

mcl_err
mcl__zmq_send(mcl__zsock *z, int timeout_ms, uint64_t publisher, uint64_t seq, uint64_t tseq,
              const char *topic, size_t tl, const void *data, size_t len)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, MCL__ZMQ_OVERHEAD(tl) + len) != 0)
        return MCL_ENOMEM;
    uint8_t *p = zmq_msg_data(&m);
    memcpy(p, topic, tl);
    p[tl] = '\0';
    mcl__put_be64(p + tl + 1, tseq);
    size_t off = tl + 1 + 8;
    off += mcl__wire_put_hdr(p + off, 0, 1, publisher);
    off += mcl__wire_put_rec(p + off, seq, topic, (uint16_t)tl, (uint32_t)len);
    if (len > 0)
        memcpy(p + off, data, len);
    return send_msg(z, &m, timeout_ms);
}

mcl_err
mcl__zmq_send_frame(mcl__zsock *z, int timeout_ms, const char *topic, size_t tl, uint64_t tseq,
                    const uint8_t *dgram, size_t len)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, tl + 1 + 8 + len) != 0)
        return MCL_ENOMEM;
    uint8_t *p = zmq_msg_data(&m);
    memcpy(p, topic, tl);
    p[tl] = '\0';
    mcl__put_be64(p + tl + 1, tseq);
    memcpy(p + tl + 1 + 8, dgram, len);
    return send_msg(z, &m, timeout_ms);
}

// Reads the subscription notices; called with z->lock held.
static void
read_subscriptions_locked(mcl__zsock *z)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, z->s, ZMQ_DONTWAIT) >= 0) {
        const uint8_t *p = zmq_msg_data(&m);
        if (zmq_msg_size(&m) == 1 + HELLO_LEN && p[1] == 0xff && p[2] == 0xff && p[3] == 0xff &&
            p[4] == 0xff && p[5] == 0) {
            if (p[0] == 1)
                z->subscribers++;
            else if (p[0] == 0 && z->subscribers > 0)
                z->subscribers--;
        }
    }
    zmq_msg_close(&m);
}

static uint64_t monitor_read(mcl__zsock *z);

void
mcl__zmq_housekeeping(mcl__zsock *z, int wait_ms, int64_t *subscribers, uint64_t *auth_failures)
{
    pthread_mutex_lock(&z->lock);
    if (wait_ms > 0) {
        zmq_pollitem_t it[2] = {{.socket = z->s, .events = ZMQ_POLLIN},
                                {.socket = z->mon, .events = ZMQ_POLLIN}};
        (void)zmq_poll(it, z->mon != NULL ? 2 : 1, wait_ms);
    }
    read_subscriptions_locked(z);
    z->auth_failures += monitor_read(z);
    *subscribers = z->subscribers;
    *auth_failures = z->auth_failures;
    pthread_mutex_unlock(&z->lock);
}

// --- monitor -----------------------------------------------------------------------------------

uint64_t
mcl__zmq_auth_failures(mcl__zsock *z)
{
    return monitor_read(z);
}

static uint64_t
monitor_read(mcl__zsock *z)
{
    if (z->mon == NULL)
        return 0;
    uint64_t n = 0;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, z->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t id = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            memcpy(&id, zmq_msg_data(&ev), 2);
            memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        }
        char peer[128] = "";
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev) && zmq_msg_recv(&addr, z->mon, ZMQ_DONTWAIT) >= 0) {
            size_t al = zmq_msg_size(&addr) < sizeof(peer) - 1 ? zmq_msg_size(&addr)
                                                               : sizeof(peer) - 1;
            memcpy(peer, zmq_msg_data(&addr), al);
            peer[al] = '\0';
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
        if (id & MON_EVENTS) {
            n++;
            int64_t now = mcl__mono_ns();
            if (now < z->log_after_ns) { // a client retrying every 100 ms: not a line each
                z->log_skipped++;
                continue;
            }
            z->log_after_ns = now + 1000000000;
            const char *why = id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "authentication refused"
                              : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                                  ? "wrong CURVE key"
                                  : "protocol error (CURVE on one side only, or a wrong key)";
            mcl__log(MCL_LOG_ERROR, "zmq",
                     "%s: handshake with %s failed: %s (0x%x; %llu more in the last second)",
                     z->url, peer[0] ? peer : "a peer", why, (unsigned)value,
                     (unsigned long long)z->log_skipped);
            z->log_skipped = 0;
        }
    }
    return n;
}

// --- per (publisher, topic) counters ---------------------------------------------------------

typedef struct tseq_entry {
    uint64_t pub;
    uint64_t hash;
    char *topic; // NULL: empty slot
    size_t tl;
    uint64_t value;
} tseq_entry;

struct mcl__tseq {
    tseq_entry *e;
    size_t cap, n;
    tseq_entry *last; // the entry of the previous call (usually asked again)
};

enum { TSEQ_MAX = 65536 };

mcl__tseq *
mcl__tseq_new(void)
{
    return mcl__zalloc(sizeof(mcl__tseq));
}

static void
tseq_clear(mcl__tseq *t)
{
    for (size_t i = 0; i < t->cap; i++)
        mcl__free(t->e[i].topic);
    mcl__free(t->e);
    t->e = NULL;
    t->cap = t->n = 0;
    t->last = NULL;
}

void
mcl__tseq_free(mcl__tseq *t)
{
    if (t == NULL)
        return;
    tseq_clear(t);
    mcl__free(t);
}

static uint64_t
tseq_hash(uint64_t pub, const char *topic, size_t tl)
{
    uint64_t h = pub ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < tl; i++)
        h = (h ^ (uint8_t)topic[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

uint64_t *
mcl__tseq_slot(mcl__tseq *t, uint64_t pub, const char *topic, size_t tl, bool *created)
{
    *created = false;
    tseq_entry *l = t->last;
    if (l != NULL && l->pub == pub && l->tl == tl && memcmp(l->topic, topic, tl) == 0)
        return &l->value;
    if (t->n >= TSEQ_MAX) // forget all: the next message of each pair starts it afresh
        tseq_clear(t);
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        tseq_entry *ne = mcl__zalloc(ncap * sizeof(*ne));
        if (ne == NULL)
            return NULL;
        for (size_t i = 0; i < t->cap; i++) {
            if (t->e[i].topic == NULL)
                continue;
            size_t j = (size_t)t->e[i].hash & (ncap - 1);
            while (ne[j].topic != NULL)
                j = (j + 1) & (ncap - 1);
            ne[j] = t->e[i];
        }
        mcl__free(t->e);
        t->e = ne;
        t->cap = ncap;
        t->last = NULL; // it pointed into the old array
    }
    uint64_t h = tseq_hash(pub, topic, tl);
    size_t j = (size_t)h & (t->cap - 1);
    for (; t->e[j].topic != NULL; j = (j + 1) & (t->cap - 1)) {
        tseq_entry *e = &t->e[j];
        if (e->hash == h && e->pub == pub && e->tl == tl && memcmp(e->topic, topic, tl) == 0) {
            t->last = e;
            return &e->value;
        }
    }
    char *copy = mcl__alloc(tl + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, topic, tl);
    copy[tl] = '\0';
    t->e[j] = (tseq_entry){.pub = pub, .hash = h, .topic = copy, .tl = tl, .value = 0};
    t->n++;
    t->last = &t->e[j];
    *created = true;
    return &t->e[j].value;
}

// --- public helpers ----------------------------------------------------------------------------

mcl_err
mcl_curve_keypair(char public_z85[41], char secret_z85[41])
{
    if (public_z85 == NULL || secret_z85 == NULL)
        return MCL_EINVAL;
    return mcl__zmq_keypair(public_z85, secret_z85);
}

mcl_err
mcl_curve_key_hex(const char *z85, char hex[65])
{
    uint8_t bin[32];
    if (z85 == NULL || hex == NULL || strlen(z85) != 40 || zmq_z85_decode(bin, z85) == NULL)
        return MCL_EINVAL;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", bin[i]);
    return MCL_OK;
}
