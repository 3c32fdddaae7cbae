// SPDX-License-Identifier: BSD-3-Clause
// The process's heartbeat thread "mcl-heartbeat": one for every broadcaster of the process
// that has heartbeats (connection option heartbeat=, default 1000 ms). It starts with the
// first such broadcaster and ends with the last. A broadcaster being sent for is marked busy;
// closing it waits until it is not (so nothing is sent on a closed transport), and the send
// happens with no lock of the registry held (a lossless zmq peer may hold it back). Also the
// identity every heartbeat carries: host name, program name and process id.
#define _GNU_SOURCE
#include "heartbeat.h"

#include "../core/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct hb_entry {
    struct hb_entry *next;
    mcl_raw_broadcaster *b;
    uint32_t every_ms;
    int64_t due_ns;
    bool busy;
} hb_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;      // the thread's wake-up (CLOCK_MONOTONIC), and "no longer busy"
static bool cv_ready;
static hb_entry *entries;
static bool running, stopping;
static bool exiting; // the last broadcaster went: its close is joining the thread
static pthread_t thread;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

// In a forked child the thread does not exist, and the broadcasters it served are the
// parent's: start from nothing. The condition variable too: it still counts the parent's
// waiting thread, and the child's first broadcast would wait for that waiter forever (it is
// initialised again by the next mcl__hb_add()).
static void
after_fork_child(void)
{
    pthread_mutex_init(&lock, NULL);
    while (entries != NULL) { // (memory only: the parent's broadcasters are not touched)
        hb_entry *e = entries;
        entries = e->next;
        mcl__free(e);
    }
    running = stopping = exiting = false;
    cv_ready = false;
}

static void
fork_init(void)
{
    (void)pthread_atfork(NULL, NULL, after_fork_child);
}

static void *
hb_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        int64_t now = mcl__mono_ns(), next = INT64_MAX;
        hb_entry *due = NULL;
        for (hb_entry *e = entries; e != NULL; e = e->next) {
            if (e->due_ns <= now && due == NULL)
                due = e;
            else if (e->due_ns < next)
                next = e->due_ns;
        }
        if (due != NULL) {
            due->busy = true;
            due->due_ns = now + (int64_t)due->every_ms * 1000000;
            pthread_mutex_unlock(&lock);
            mcl__bcast_heartbeat(due->b, false);
            pthread_mutex_lock(&lock);
            due->busy = false;
            pthread_cond_broadcast(&cv);
            continue;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&cv, &lock);
        } else {
            struct timespec ts = {(time_t)(next / 1000000000), (long)(next % 1000000000)};
            pthread_cond_timedwait(&cv, &lock, &ts);
        }
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

mcl_err
mcl__hb_add(mcl_raw_broadcaster *b, uint32_t every_ms)
{
    hb_entry *e = mcl__zalloc(sizeof(*e));
    if (e == NULL)
        return MCL_ENOMEM;
    e->b = b;
    e->every_ms = every_ms;
    e->due_ns = mcl__mono_ns() + (int64_t)every_ms * 1000000;
    pthread_once(&fork_once, fork_init);
    pthread_mutex_lock(&lock);
    if (!cv_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        cv_ready = pthread_cond_init(&cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (!cv_ready) {
            pthread_mutex_unlock(&lock);
            mcl__free(e);
            return MCL_ESYS;
        }
    }
    while (exiting) // (a new thread only once the old one has ended)
        pthread_cond_wait(&cv, &lock);
    if (!running) {
        stopping = false;
        int rc = pthread_create(&thread, NULL, hb_thread, NULL);
        if (rc != 0) {
            pthread_mutex_unlock(&lock);
            mcl__free(e);
            return mcl__sys_err(rc);
        }
        pthread_setname_np(thread, "mcl-heartbeat");
        running = true;
    }
    e->next = entries;
    entries = e;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&lock);
    return MCL_OK;
}

void
mcl__hb_remove(mcl_raw_broadcaster *b)
{
    pthread_mutex_lock(&lock);
    hb_entry **pp = &entries;
    while (*pp != NULL && (*pp)->b != b)
        pp = &(*pp)->next;
    hb_entry *e = *pp;
    if (e == NULL) {
        pthread_mutex_unlock(&lock);
        return;
    }
    while (e->busy) // a heartbeat of b is being sent: it ends first
        pthread_cond_wait(&cv, &lock);
    pp = &entries; // (the list may have changed meanwhile)
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    bool last = entries == NULL && running;
    pthread_t t = thread;
    if (last) {
        stopping = true;
        running = false;
        exiting = true;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&lock);
    mcl__free(e);
    if (!last)
        return;
    pthread_join(t, NULL);
    pthread_mutex_lock(&lock);
    exiting = false;
    pthread_cond_broadcast(&cv); // (an add waiting to start a new thread)
    pthread_mutex_unlock(&lock);
}

// --- identity ------------------------------------------------------------------------------------

static pthread_once_t id_once = PTHREAD_ONCE_INIT;
static char id_host[MCL__WIRE_HB_NAME_MAX + 1], id_prog[MCL__WIRE_HB_NAME_MAX + 1];

// Printable bytes only (names go to terminals), cut at the wire's limit.
static void
clean(char *dst, const char *src)
{
    size_t n = 0;
    for (; src[n] != '\0' && n < MCL__WIRE_HB_NAME_MAX; n++)
        dst[n] = ((unsigned char)src[n] < 0x20 || src[n] == 0x7f) ? '?' : src[n];
    dst[n] = '\0';
}

static void
id_init(void)
{
    char h[256] = "";
    if (gethostname(h, sizeof(h) - 1) != 0)
        h[0] = '\0';
    h[sizeof(h) - 1] = '\0';
    clean(id_host, h);
    clean(id_prog, program_invocation_short_name ? program_invocation_short_name : "");
}

void
mcl__hb_identity(const char **host, const char **program, uint32_t *pid)
{
    pthread_once(&id_once, id_init);
    *host = id_host;
    *program = id_prog;
    *pid = (uint32_t)getpid();
}
