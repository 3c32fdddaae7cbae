// SPDX-License-Identifier: BSD-3-Clause
// inproc:// pipes: in-process pairs for the packet stream. A server listens on a name; a dial
// makes a pair of ends, hands one to the server's accept queue and returns the other. Each
// direction of a pair is a bounded queue of packets (pipeq= bytes) with an eventfd that is
// readable while the reader has something to read; a writer that finds the queue full gets
// MCL_EAGAIN and waits on its own eventfd, which the reader signals when it makes room.
// Faults from a side's URL apply to what that side sends: stall=N swallows every packet after
// the N-th (a peer that stops answering, for dead-peer tests), cut=N breaks the pair after
// the N-th (both ends see MCL_ECLOSED).
#define _GNU_SOURCE
#include "inproc_int.h"

#include "../../core/internal.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum { BACKLOG = 1024 }; // pipes waiting to be accepted

typedef struct ipkt {
    struct ipkt *next;
    size_t len;
    uint8_t data[];
} ipkt;

// One direction: packets to the end on that side.
typedef struct idir {
    ipkt *head, *tail;
    size_t bytes;
    bool writer_gone;  // the sending end closed: after the queue, MCL_ECLOSED
    bool writer_waits; // the sender found it full and waits on its space eventfd
} idir;

typedef struct ipair {
    pthread_mutex_t lock;
    idir dir[2];  // dir[i]: to end i (0: the dialer, 1: the accepted end)
    int rfd[2];   // readable while dir[i] has a packet or its writer is gone
    int space[2]; // end i may send again (the reader of dir[1 - i] made room)
    bool rsig[2], ssig[2];
    bool broken; // cut=: both ends see MCL_ECLOSED
    size_t cap;  // bytes per direction
    uint64_t sent[2], stall[2], cut[2];
    unsigned ends; // ends still open
} ipair;

struct mcl__pipe {
    ipair *p;
    int side;
    ipkt *cur; // what the last recv handed out
};

struct mcl__pserver {
    struct mcl__pserver *next; // in `servers`, under servers_lock
    char name[MCL__INPROC_NAME_MAX];
    inproc_opts opts;
    int efd; // readable while `pending` is not empty
    mcl__pipe *pending[BACKLOG];
    size_t npending;
    bool closing;
    pthread_mutex_t lock;
};

static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mcl__pserver *servers;

static void
sig_set(int fd, bool *flag)
{
    if (*flag)
        return;
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof(one));
    (void)w; // a small eventfd counter never overflows
    *flag = true;
}

static void
sig_clear(int fd, bool *flag)
{
    if (!*flag)
        return;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    *flag = false;
}

static void
pair_free(ipair *p)
{
    for (int i = 0; i < 2; i++) {
        for (ipkt *k = p->dir[i].head, *n; k != NULL; k = n) {
            n = k->next;
            mcl__free(k);
        }
        if (p->rfd[i] >= 0)
            close(p->rfd[i]);
        if (p->space[i] >= 0)
            close(p->space[i]);
    }
    pthread_mutex_destroy(&p->lock);
    mcl__free(p);
}

static ipair *
pair_new(const inproc_opts *dialer, const inproc_opts *server)
{
    ipair *p = mcl__zalloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    p->rfd[0] = p->rfd[1] = p->space[0] = p->space[1] = -1;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        mcl__free(p);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        p->rfd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        p->space[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->rfd[i] < 0 || p->space[i] < 0) {
            pair_free(p);
            return NULL;
        }
    }
    p->cap = dialer->pipeq < server->pipeq ? dialer->pipeq : server->pipeq;
    p->stall[0] = dialer->stall;
    p->cut[0] = dialer->cut;
    p->stall[1] = server->stall;
    p->cut[1] = server->cut;
    p->ends = 2;
    return p;
}

static mcl__pipe *
end_new(ipair *p, int side)
{
    mcl__pipe *e = mcl__zalloc(sizeof(*e));
    if (e != NULL) {
        e->p = p;
        e->side = side;
    }
    return e;
}

// --- servers -------------------------------------------------------------------------------------

static mcl_err
ipipe_listen(mcl__pserver **sp, const struct mcl_connection *c, uint16_t *bound_port)
{
    (void)bound_port;
    *sp = NULL;
    const inproc_opts *o = mcl__tport_copts(c);
    struct mcl__pserver *s = mcl__zalloc(sizeof(*s));
    if (s == NULL)
        return MCL_ENOMEM;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        mcl__free(s);
        return MCL_ESYS;
    }
    s->opts = *o;
    snprintf(s->name, sizeof(s->name), "%s", o->name);
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        int e = errno;
        pthread_mutex_destroy(&s->lock);
        mcl__free(s);
        return mcl__fail(mcl__sys_err(e), NULL, 0, "inproc", "%s: eventfd: %s", c->url,
                         strerror(e));
    }
    pthread_mutex_lock(&servers_lock);
    for (struct mcl__pserver *o2 = servers; o2 != NULL; o2 = o2->next)
        if (strcmp(o2->name, s->name) == 0) {
            pthread_mutex_unlock(&servers_lock);
            close(s->efd);
            pthread_mutex_destroy(&s->lock);
            mcl__free(s);
            return mcl__fail(MCL_EADDRINUSE, NULL, 0, "inproc",
                             "%s: this process already listens on inproc://%s", c->url, o->name);
        }
    s->next = servers;
    servers = s;
    pthread_mutex_unlock(&servers_lock);
    *sp = s;
    return MCL_OK;
}

static int
ipipe_server_fd(const mcl__pserver *s)
{
    return s->efd;
}

static mcl_err
ipipe_accept(mcl__pserver *s, mcl__pipe **pp)
{
    *pp = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->npending == 0) {
        pthread_mutex_unlock(&s->lock);
        return MCL_EAGAIN;
    }
    *pp = s->pending[0];
    memmove(s->pending, s->pending + 1, --s->npending * sizeof(s->pending[0]));
    if (s->npending == 0) {
        uint64_t v;
        ssize_t r = read(s->efd, &v, sizeof(v));
        (void)r;
    }
    pthread_mutex_unlock(&s->lock);
    return MCL_OK;
}

static void ipipe_close(mcl__pipe *e);

static void
ipipe_server_close(mcl__pserver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&servers_lock);
    for (struct mcl__pserver **pp = &servers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&servers_lock);
    // No dial can find it now: what waits to be accepted is closed (its dialer sees the end).
    for (size_t i = 0; i < s->npending; i++)
        ipipe_close(s->pending[i]);
    close(s->efd);
    pthread_mutex_destroy(&s->lock);
    mcl__free(s);
}

static mcl_err
ipipe_dial(mcl__pipe **pp, const struct mcl_connection *c)
{
    *pp = NULL;
    const inproc_opts *o = mcl__tport_copts(c);
    pthread_mutex_lock(&servers_lock);
    struct mcl__pserver *s = servers;
    while (s != NULL && strcmp(s->name, o->name) != 0)
        s = s->next;
    if (s == NULL) {
        pthread_mutex_unlock(&servers_lock);
        return mcl__fail(MCL_EUNREACH, NULL, 0, "inproc",
                         "%s: nobody in this process listens on inproc://%s", c->url, o->name);
    }
    ipair *p = pair_new(o, &s->opts);
    mcl__pipe *mine = p ? end_new(p, 0) : NULL, *theirs = p ? end_new(p, 1) : NULL;
    mcl_err rv = MCL_OK;
    if (mine == NULL || theirs == NULL) {
        rv = MCL_ENOMEM;
    } else {
        pthread_mutex_lock(&s->lock);
        if (s->npending == BACKLOG) {
            rv = MCL_EAGAIN; // (logged below, without the locks)
        } else {
            s->pending[s->npending++] = theirs;
            uint64_t one = 1;
            ssize_t w = write(s->efd, &one, sizeof(one));
            (void)w;
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&servers_lock);
    if (rv != MCL_OK) {
        mcl__free(mine);
        mcl__free(theirs);
        if (p != NULL)
            pair_free(p);
        if (rv == MCL_EAGAIN)
            return mcl__fail(MCL_EAGAIN, NULL, 0, "inproc",
                             "%s: %d dials wait to be accepted already", c->url, BACKLOG);
        return rv;
    }
    *pp = mine;
    return MCL_OK;
}

// --- ends ----------------------------------------------------------------------------------------

static mcl_err
ipipe_send(mcl__pipe *e, const struct iovec *iov, unsigned niov, char *why, size_t whylen)
{
    ipair *p = e->p;
    int to = 1 - e->side;
    size_t len = 0;
    for (unsigned i = 0; i < niov; i++)
        len += iov[i].iov_len;
    pthread_mutex_lock(&p->lock);
    idir *d = &p->dir[to];
    mcl_err rv = MCL_OK;
    if (p->broken || p->ends < 2) {
        rv = MCL_ECLOSED;
    } else if (d->bytes > 0 && d->bytes + len > p->cap) { // one packet always fits an empty queue
        d->writer_waits = true;
        rv = MCL_EAGAIN;
    } else if (p->stall[e->side] != 0 && p->sent[e->side] >= p->stall[e->side]) {
        p->sent[e->side]++; // stalled: taken, never delivered
    } else {
        ipkt *k = mcl__alloc(sizeof(*k) + len);
        if (k == NULL) {
            snprintf(why, whylen, "out of memory for a packet of %zu bytes", len);
            rv = MCL_ENOMEM;
        } else {
            k->next = NULL;
            k->len = len;
            size_t off = 0;
            for (unsigned i = 0; i < niov; i++) {
                if (iov[i].iov_len > 0)
                    memcpy(k->data + off, iov[i].iov_base, iov[i].iov_len);
                off += iov[i].iov_len;
            }
            if (d->tail != NULL)
                d->tail->next = k;
            else
                d->head = k;
            d->tail = k;
            d->bytes += len;
            sig_set(p->rfd[to], &p->rsig[to]);
            if (p->cut[e->side] != 0 && ++p->sent[e->side] >= p->cut[e->side]) {
                p->broken = true; // after this one: both ends see the end
                sig_set(p->rfd[e->side], &p->rsig[e->side]);
            } else if (p->cut[e->side] == 0) {
                p->sent[e->side]++;
            }
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rv;
}

static mcl_err
ipipe_recv(mcl__pipe *e, const uint8_t **data, size_t *len, size_t max, char *why, size_t whylen)
{
    ipair *p = e->p;
    mcl__free(e->cur);
    e->cur = NULL;
    pthread_mutex_lock(&p->lock);
    idir *d = &p->dir[e->side];
    mcl_err rv = MCL_OK;
    ipkt *k = d->head; // what was queued before a cut still arrives
    if (k == NULL) {
        rv = p->broken || d->writer_gone ? MCL_ECLOSED : MCL_EAGAIN;
        if (rv == MCL_EAGAIN)
            sig_clear(p->rfd[e->side], &p->rsig[e->side]);
    } else if (k->len > max) {
        snprintf(why, whylen, "a packet of %zu bytes (at most %zu)", k->len, max);
        rv = MCL_EPROTO;
    } else {
        d->head = k->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->bytes -= k->len;
        e->cur = k;
        *data = k->data;
        *len = k->len;
        if (d->head == NULL && !d->writer_gone && !p->broken)
            sig_clear(p->rfd[e->side], &p->rsig[e->side]);
        if (d->writer_waits) { // room again for the other end
            d->writer_waits = false;
            int other = 1 - e->side;
            sig_set(p->space[other], &p->ssig[other]);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return rv;
}

static int
ipipe_rfd(const mcl__pipe *e)
{
    return e->p->rfd[e->side];
}

static int
ipipe_wfd(const mcl__pipe *e, short *events)
{
    // Readable once the reader made room (the flag is cleared by the next send attempt).
    ipair *p = e->p;
    pthread_mutex_lock(&p->lock);
    if (!p->dir[1 - e->side].writer_waits)
        sig_set(p->space[e->side], &p->ssig[e->side]); // room already: go at once
    else
        sig_clear(p->space[e->side], &p->ssig[e->side]);
    pthread_mutex_unlock(&p->lock);
    *events = POLLIN;
    return p->space[e->side];
}

static void
ipipe_close(mcl__pipe *e)
{
    if (e == NULL)
        return;
    ipair *p = e->p;
    mcl__free(e->cur);
    pthread_mutex_lock(&p->lock);
    int to = 1 - e->side;
    p->dir[to].writer_gone = true; // the other end reads what is queued, then the end
    sig_set(p->rfd[to], &p->rsig[to]);
    sig_set(p->space[to], &p->ssig[to]); // a waiting writer finds out at once
    bool last = --p->ends == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        pair_free(p);
    mcl__free(e);
}

const mcl__pipe_ops mcl__inproc_pipe_ops = {
    .listen = ipipe_listen,
    .server_fd = ipipe_server_fd,
    .accept = ipipe_accept,
    .server_close = ipipe_server_close,
    .dial = ipipe_dial,
    .send = ipipe_send,
    .recv = ipipe_recv,
    .rfd = ipipe_rfd,
    .wfd = ipipe_wfd,
    .close = ipipe_close,
};
