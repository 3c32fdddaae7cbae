// SPDX-License-Identifier: BSD-3-Clause
// ZeroMQ security: key files, CURVE set-up, the ZAP handler that admits only the client keys a
// server lists (thread mcl-zap, one per process), the handshake monitor, and the public CURVE
// helpers of include/mcl/connection.h.
#define _GNU_SOURCE
#include "zmq_int.h"

#include "../../core/internal.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// Key files are small: a key pair file is two lines; a client list of 1 MiB holds about 15,000
// keys.
#define KEYFILE_MAX ((size_t)64 << 10)
#define CLIENTS_FILE_MAX ((size_t)1 << 20)

// Handshake failures that mean a key problem. On a socket that binds, a connection closed
// before its handshake (e.g. a port scan) is HANDSHAKE_FAILED_NO_DETAIL and is not one; on a
// CURVE socket that connects it is what a wrong server key looks like (the server cannot open
// the client's HELLO, and hangs up without a word), so it counts there, and a handshake that
// succeeds forgets the server's failures (a new failure is logged again).
enum {
    MON_EVENTS = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
    MON_EVENTS_CONNECT =
        MON_EVENTS | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED,
};
// The reasons a peer is remembered with (one line each).
enum { FAIL_AUTH = 1, FAIL_KEY = 2, FAIL_PROTOCOL = 3, FAIL_HUNG_UP = 4 };

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
static bool zap_running; // under the context lock
static atomic_bool zap_stop;
static pthread_t zap_thread;

void
mcl__zmq_zap_fork_lock(void)
{
    pthread_mutex_lock(&zap_lock);
}

void
mcl__zmq_zap_fork_unlock(void)
{
    pthread_mutex_unlock(&zap_lock);
}

void
mcl__zmq_zap_forget_locked(void)
{
    zap_running = false; // its thread does not exist here
    zap_domains = NULL;
}

void
mcl__zmq_zap_stop_locked(void)
{
    if (!zap_running)
        return;
    zap_running = false;
    // Its socket must be closed before the context can end. Under the context lock, so that
    // no new context starts a handler meanwhile (the thread takes only zap_lock; it notices
    // the stop within 100 ms).
    atomic_store(&zap_stop, true);
    pthread_join(zap_thread, NULL);
}

// --- keys ------------------------------------------------------------------------------------

static bool
z85_key_ok(const char *k)
{
    uint8_t bin[32];
    return strlen(k) == 40 && zmq_z85_decode(bin, k) != NULL;
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

// Reads a key file the URL names, bounded (a regular file of at most max bytes: /dev/zero or
// a FIFO is refused at once, nothing blocks), and parses it. The error names the URL, the kind
// of file, the path and the reason (the line at fault for a parse error).
static mcl_err
load_keys(const char *url, const char *what, const char *path, int kind, size_t max,
          mcl__zkeys *k)
{
    char *buf = NULL;
    size_t len = 0;
    const char *why = "";
    memset(k, 0, sizeof(*k));
    mcl_err rv = mcl__read_small_file(path, max, &buf, &len, &why);
    if (rv != MCL_OK)
        return mcl__fail(rv, NULL, 0, "zmq", "%s: %s %s: %s", url, what, path,
                         rv == MCL_ENOMEM ? "out of memory" : why);
    rv = mcl__zmq_parse_keys(buf, len, kind, k);
    mcl__free(buf);
    if (rv == MCL_ENOMEM)
        return rv;
    if (rv != MCL_OK && k->line > 0)
        return mcl__fail(rv, NULL, 0, "zmq", "%s: %s %s line %u: %s", url, what, path, k->line,
                         k->why);
    if (rv != MCL_OK)
        return mcl__fail(rv, NULL, 0, "zmq", "%s: %s %s: %s", url, what, path, k->why);
    return MCL_OK;
}

// One line of a key file, NUL-terminated in out (false: longer than the buffer).
static bool
next_line(const char *buf, size_t len, size_t *pos, char *out, size_t outlen)
{
    size_t s = *pos, e = s;
    while (e < len && buf[e] != '\n')
        e++;
    *pos = e < len ? e + 1 : e;
    size_t n = e - s;
    if (n > 0 && buf[s + n - 1] == '\r')
        n--;
    if (n >= outlen)
        return false;
    memcpy(out, buf + s, n);
    out[n] = '\0';
    return true;
}

mcl_err
mcl__zmq_parse_keys(const char *buf, size_t len, int kind, mcl__zkeys *k)
{
    bool clients = kind == MCL__ZKEYS_CLIENTS;
    memset(k, 0, sizeof(*k));
    k->why = "";
    char line[256];
    size_t pos = 0, cap = 0;
    unsigned lineno = 0;
    while (pos < len) {
        lineno++;
        if (!next_line(buf, len, &pos, line, sizeof(line))) {
            k->line = lineno;
            k->why = "line longer than 255 bytes";
            goto fail;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        if (!clients) {
            char key[16], val[64];
            if (sscanf(p, "%15[a-z] = %63s", key, val) != 2 || !z85_key_ok(val)) {
                k->line = lineno;
                k->why = "expected 'public = KEY' or 'secret = KEY' with a 40-character Z85 key";
                goto fail;
            }
            if (strcmp(key, "public") == 0)
                memcpy(k->pub, val, 41);
            else if (strcmp(key, "secret") == 0)
                memcpy(k->sec, val, 41);
            continue;
        }
        char val[80] = "", z85[41];
        uint8_t bin[32];
        if (sscanf(p, "public = %79s", val) != 1)
            (void)sscanf(p, "%79s", val);
        bool ok = (strlen(val) == 40 && zmq_z85_decode(bin, val) != NULL) ||
                  (hex_key_to_z85(val, z85) && zmq_z85_decode(bin, z85) != NULL);
        if (!ok) {
            k->line = lineno;
            k->why = "not a public key (Z85, 'public = Z85' or 64 hex digits)";
            goto fail;
        }
        if (k->nkeys == cap) {
            cap = cap ? cap * 2 : 8;
            uint8_t(*nk)[32] = mcl__realloc(k->keys, cap * sizeof(*k->keys));
            if (nk == NULL) {
                mcl__zmq_keys_fini(k);
                return MCL_ENOMEM;
            }
            k->keys = nk;
        }
        memcpy(k->keys[k->nkeys++], bin, 32);
    }
    if (!clients && (k->pub[0] == '\0' || (kind == MCL__ZKEYS_PAIR && k->sec[0] == '\0'))) {
        k->why = k->pub[0] == '\0' ? "no public key" : "no secret key";
        goto fail;
    }
    return MCL_OK;
fail:;
    unsigned l = k->line;
    const char *w = k->why;
    mcl__zmq_keys_fini(k);
    k->line = l;
    k->why = w;
    return MCL_EAUTH;
}

void
mcl__zmq_keys_fini(mcl__zkeys *k)
{
    mcl__free(k->keys);
    memset(k, 0, sizeof(*k));
    k->why = "";
}

// Reads "public = KEY" and (when sec is not NULL) "secret = KEY" from a key file written by
// mcl-keygen. Lines starting with '#' and blank lines are ignored.
static mcl_err
read_key_file(const char *url, const char *path, char pub[41], char sec[41])
{
    mcl__zkeys k;
    mcl_err rv = load_keys(url, "key file", path, sec != NULL ? MCL__ZKEYS_PAIR : MCL__ZKEYS_PUBLIC,
                           KEYFILE_MAX, &k);
    if (rv == MCL_OK) {
        memcpy(pub, k.pub, 41);
        if (sec != NULL)
            memcpy(sec, k.sec, 41);
    }
    mcl__zmq_keys_fini(&k);
    return rv;
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

static int
set_str(void *s, int opt, const char *v)
{
    return zmq_setsockopt(s, opt, v, strlen(v));
}

mcl_err
mcl__zmq_setup_curve(mcl__zsock *z, const mcl__zmq_opts *c)
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
    mcl__zkeys k;
    mcl_err rv = load_keys(url, "client key file", path, MCL__ZKEYS_CLIENTS, CLIENTS_FILE_MAX, &k);
    *keys = k.keys; // NULL on failure
    *n = k.nkeys;
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

// Starts the handler if it does not run yet. Called with the context lock held.
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

void
mcl__zmq_zap_unregister(mcl__zsock *z)
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
mcl_err
mcl__zmq_zap_register(mcl__zsock *z, void *ctx, const mcl__zmq_opts *c)
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
        mcl__zmq_ctx_lock();
        rv = zap_start_locked(ctx);
        mcl__zmq_ctx_unlock();
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

// --- monitor -----------------------------------------------------------------------------------

void
mcl__zmq_setup_monitor(mcl__zsock *z, void *ctx, bool connects)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://mcl-monitor-%p", (void *)z);
    z->connects = connects;
    if (zmq_socket_monitor(z->s, ep, connects ? MON_EVENTS_CONNECT : MON_EVENTS) != 0)
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

void
mcl__zmq_close_monitor(mcl__zsock *z)
{
    // Stop the monitor before closing its reader: an event sent to a reader that is gone would
    // block libzmq's I/O thread.
    if (z->s != NULL && z->mon != NULL)
        (void)zmq_socket_monitor(z->s, NULL, 0);
    if (z->mon != NULL)
        zmq_close(z->mon);
    z->mon = NULL;
}

// The remembered failures of the peer at addr for the reason why, or a new slot for them
// (*fresh: log it). Peers quiet for MCL__ZMQ_FAILED_FORGET_S are forgotten on the way; when
// every slot is taken, the least recently failing peer gives its slot (*evicted).
static mcl__zfailed *
failed_slot(mcl__zsock *z, const char *addr, int why, int64_t now, bool *fresh, bool *evicted)
{
    const int64_t forget_ns = (int64_t)MCL__ZMQ_FAILED_FORGET_S * 1000000000;
    mcl__zfailed *empty = NULL, *oldest = NULL;
    for (size_t i = 0; i < MCL__ZMQ_FAILED_PEERS; i++) {
        mcl__zfailed *f = &z->failed[i];
        if (f->addr[0] != '\0' && now - f->last_ns > forget_ns)
            f->addr[0] = '\0';
        if (f->addr[0] == '\0') {
            if (empty == NULL)
                empty = f;
        } else if (f->why == why && strcmp(f->addr, addr) == 0) {
            *fresh = *evicted = false;
            return f;
        } else if (oldest == NULL || f->last_ns < oldest->last_ns) {
            oldest = f;
        }
    }
    *fresh = true;
    *evicted = empty == NULL;
    mcl__zfailed *f = empty != NULL ? empty : oldest;
    snprintf(f->addr, sizeof(f->addr), "%s", addr);
    f->why = why;
    return f;
}

// "tcp://[::ffff:A.B.C.D]:PORT" becomes "tcp://A.B.C.D:PORT" (in place).
static void
unmap_v4(char *ep)
{
    static const char pre[] = "tcp://[::ffff:";
    size_t pl = sizeof(pre) - 1;
    char *close = strstr(ep, "]:");
    if (strncmp(ep, pre, pl) != 0 || close == NULL || strchr(ep + pl, ':') < close)
        return;
    size_t v4 = (size_t)(close - (ep + pl));
    memmove(ep + 6, ep + pl, v4);                           // the address after "tcp://"
    memmove(ep + 6 + v4, close + 1, strlen(close + 1) + 1); // ":PORT" and the NUL
}

// A handshake with the server at addr succeeded: its next failure is news again.
static void
failed_forget(mcl__zsock *z, const char *addr)
{
    for (size_t i = 0; i < MCL__ZMQ_FAILED_PEERS; i++)
        if (strcmp(z->failed[i].addr, addr) == 0)
            z->failed[i].addr[0] = '\0';
}

uint64_t
mcl__zmq_monitor_read(mcl__zsock *z, char *line, size_t len)
{
    if (len > 0)
        line[0] = '\0';
    if (z->mon == NULL)
        return 0;
    uint64_t n = 0;
    size_t used = 0;   // of `line`: one line per new peer, each ending in '\n'
    unsigned more = 0; // new peers whose line did not fit (counted in the last line)
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
        // libzmq 4.3's event names the endpoint: for a socket that binds that is our own
        // address (the peer's is not told), for one that connects the server's, as given
        // or as resolved (an IPv4 address mapped to IPv6): one name for one address.
        unmap_v4(peer);
        const char *at = peer[0] ? peer : "this endpoint";
        if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            if (z->connects)
                failed_forget(z, at);
            continue;
        }
        if (id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? !z->connects : !(id & MON_EVENTS))
            continue;
        n++;
        int why = id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH            ? FAIL_AUTH
                  : id == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL     ? FAIL_HUNG_UP
                  : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ? FAIL_KEY
                                                                   : FAIL_PROTOCOL;
        int64_t now = mcl__mono_ns();
        bool fresh, evicted;
        mcl__zfailed *f = failed_slot(z, at, why, now, &fresh, &evicted);
        f->last_ns = now;
        if (!fresh) // a client retrying every 100 ms: not a line each
            continue;
        if (evicted) { // more peers than slots: at most a line a second
            if (now < z->log_after_ns)
                continue;
            z->log_after_ns = now + 1000000000;
        }
        if (len - used < MCL__ZMQ_LOGLINE_ONE) {
            more++;
            continue;
        }
        const char *text = why == FAIL_AUTH  ? "authentication refused"
                           : why == FAIL_KEY ? "wrong CURVE key"
                           : why == FAIL_HUNG_UP
                               ? "the server closed the connection during the handshake (wrong "
                                 "curve_server key?)"
                               : "protocol error (CURVE on one side only, or a wrong key)";
        // (At most MCL__ZMQ_LOGLINE_ONE - 1 bytes: snprintf cuts a longer one.)
        int w = snprintf(line + used, MCL__ZMQ_LOGLINE_ONE - 1,
                         z->bound ? "%s: handshake with a peer on %s failed: %s (0x%x; later "
                                    "failures like it are counted in auth_failures, not logged)"
                                  : "%s: handshake with the server at %s failed: %s (0x%x; "
                                    "later failures like it are counted in auth_failures, not "
                                    "logged)",
                         z->url, at, text, (unsigned)value);
        if (w > 0)
            used += (size_t)w < MCL__ZMQ_LOGLINE_ONE - 2 ? (size_t)w : MCL__ZMQ_LOGLINE_ONE - 2;
        line[used++] = '\n';
        line[used] = '\0';
    }
    if (more > 0 && used > 0) // on the last line, in place of its '\n' (cut if need be)
        snprintf(line + used - 1, len - used + 1, " (and %u more peers)", more);
    return n;
}

void
mcl__zmq_log_lines(const char *lines)
{
    for (const char *p = lines; *p != '\0';) {
        size_t n = strcspn(p, "\n");
        mcl__log(MCL_LOG_ERROR, "zmq", "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
    }
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
