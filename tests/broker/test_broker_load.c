// SPDX-License-Identifier: BSD-3-Clause
// The broker under load, in a process of its own (so that its memory can be read from
// /proc): a writer pushing 32 KiB frames as fast as credit allows, four readers stalled in
// their callbacks (ring buffers far larger than max_reader_bytes), a lossless reader, clients
// that connect, create, subscribe and vanish mid-transfer, a flood of creates and deletes, and
// a stranger holding half of a large packet. The broker's peak memory stays under the bound
// docs/broker.md states (readers' buffers + a share per connection + about 1 KiB per object,
// over what it used idle), the lossless reader gets every frame in order, and the broker stops
// cleanly: under ASan and valgrind its exit status carries their verdict (leaks, errors).
#define _GNU_SOURCE
#include "harness.h"

#include <mcl/broker.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    FRAME = 32 * 1024,
    READER_BYTES = 1 << 20, // max_reader_bytes
    CONN_SHARE = 8 << 20,   // per connection: 4 MiB of output, a packet of up to 4 MiB
    STALLED = 4,
};

// Whether memory figures mean anything here (not under ASan or valgrind, which add their own).
static bool
plain_memory(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return false;
#endif
#endif
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool vg = false;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "vgpreload") != NULL)
            vg = true;
    if (f != NULL)
        fclose(f);
    return !vg;
}

// A /proc/PID/status figure in KiB ("VmRSS", "VmHWM"), or -1.
static long
status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t kl = strlen(key);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, kl) == 0 && line[kl] == ':')
            v = strtol(line + kl + 1, NULL, 10);
    if (f != NULL)
        fclose(f);
    return v;
}

typedef struct child {
    pid_t pid;
    int stop; // write end: closing it stops the broker
    int status;
    char url[256];
} child;

static bool
exited(void *arg)
{
    child *c = arg;
    return waitpid(c->pid, &c->status, WNOHANG) == c->pid;
}

// The broker in a child process: it prints its URL on a pipe, serves until the other pipe
// closes, frees everything and exits (so that ASan's and valgrind's checks at exit run).
static bool
broker_child(child *ch, const mcl_broker_options *o)
{
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
        return false;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        mcl_broker *b;
        if (mcl_broker_open(&b, "tcp://127.0.0.1:0", o) != MCL_OK)
            _exit(3);
        const char *u = mcl_broker_url(b);
        if (write(up[1], u, strlen(u) + 1) < 0)
            _exit(4);
        char x;
        while (read(down[0], &x, 1) > 0)
            ;
        mcl_broker_free(b);
        exit(0);
    }
    close(up[1]);
    close(down[0]);
    size_t n = 0;
    ssize_t r;
    while (n < sizeof(ch->url) - 1 && (r = read(up[0], ch->url + n, 1)) == 1 && ch->url[n] != 0)
        n++;
    ch->url[n] = '\0';
    close(up[0]);
    ch->pid = pid;
    ch->stop = down[1];
    return n > 0;
}

// --- readers -------------------------------------------------------------------------------------

typedef struct rd {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    bool stall;
    uint64_t n, last_seq, gaps, bad;
} rd;

static void
on_frame(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
         void *user)
{
    (void)c;
    (void)sub;
    rd *r = user;
    pthread_mutex_lock(&r->lock);
    while (r->stall)
        pthread_cond_wait(&r->cv, &r->lock);
    if (r->n > 0 && seq != r->last_seq + 1)
        r->gaps++;
    uint64_t idx;
    if (len != FRAME || (memcpy(&idx, data, sizeof(idx)), idx + 1 != seq))
        r->bad++; // (frame i carries i in its first bytes; the broker numbers from 1)
    r->last_seq = seq;
    r->n++;
    pthread_mutex_unlock(&r->lock);
}

static void
rd_init(rd *r, bool stall)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->stall = stall;
}

static void
rd_release(rd *r)
{
    pthread_mutex_lock(&r->lock);
    r->stall = false;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->lock);
}

typedef struct has {
    rd *r;
    uint64_t n;
} has;

static bool
has_n(void *arg)
{
    has *h = arg;
    pthread_mutex_lock(&h->r->lock);
    bool y = h->r->n >= h->n;
    pthread_mutex_unlock(&h->r->lock);
    return y;
}

static bool
active(void *arg)
{
    void **a = arg;
    return mcl_broker_writer_active(a[0], *(uint32_t *)a[1]);
}

// --- churn: clients that come, make things, and vanish mid-transfer ------------------------------

typedef struct churn {
    const char *url;
    atomic_bool stop;
    atomic_int rounds;
} churn;

static void
on_any(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
       void *user)
{
    (void)c, (void)sub, (void)seq, (void)data, (void)len, (void)user;
}

static void *
churner(void *arg)
{
    churn *k = arg;
    for (int i = 0; i < 40 && !atomic_load(&k->stop); i++) {
        mcl_broker_client_options o = {.name = "churn", .timeout_ms = 5000};
        mcl_broker_client *c;
        if (mcl_broker_connect(&c, k->url, &o) != MCL_OK)
            continue;
        char name[32];
        snprintf(name, sizeof(name), "tmp%d", i);
        mcl_broker_channel_options t = {.lifetime_ms = 100, .keep = (i % 2) == 0};
        (void)mcl_broker_create(c, name, &t);
        uint32_t sub;
        mcl_broker_reader_options ro = {.buffer = 50, .policy = MCL_BROKER_RING};
        (void)mcl_broker_subscribe(c, "load", &ro, on_any, NULL, &sub); // and vanish with it
        for (int j = 0; j < 20; j++) { // a flood of creates and deletes
            snprintf(name, sizeof(name), "flood%d.%d", i, j % 3);
            if (mcl_broker_create(c, name, NULL) == MCL_OK && j % 2)
                (void)mcl_broker_delete(c, name);
        }
        mcl_broker_client_free(c);
        atomic_fetch_add(&k->rounds, 1);
    }
    return NULL;
}

// A stranger that sends the front of a packet of almost 4 MiB and then waits: the broker holds
// what came of it, no more, and keeps serving.
static int
half_packet(const char *url)
{
    const char *p = strrchr(url, ':');
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(p + 1)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    uint8_t *buf = calloc(1, 2 << 20);
    uint32_t len = htonl((4u << 20) - 100);
    memcpy(buf, &len, 4);
    (void)!write(fd, buf, 2 << 20); // (a partial write is fine)
    free(buf);
    return fd;
}

static void
test_load_memory_bound(void)
{
    bool measure = plain_memory();
    unsigned frames = measure ? 6000 : 1500; // (fewer under the sanitizers and valgrind)
    mcl_broker_options bo = {.max_reader_bytes = READER_BYTES,
                             .max_frame = 64 * 1024,
                             .max_window = 16,
                             .writer_credit = 64,
                             .heartbeat_ms = 20000};
    child ch;
    CU_ASSERT_FATAL(broker_child(&ch, &bo));
    mcl_broker_client_options co = {.name = "writer", .timeout_ms = 10000};
    mcl_broker_client *w;
    MCLT_OK(mcl_broker_connect(&w, ch.url, &co));
    MCLT_OK(mcl_broker_create(w, "load", NULL));
    uint32_t wid;
    MCLT_OK(mcl_broker_writer(w, "load", NULL, NULL, NULL, &wid));
    long base_kb = status_kb(ch.pid, "VmRSS"); // idle, one client
    // Readers: four that stall at their first frame, with buffers of 10,000 frames (310 MiB
    // of these frames: only max_reader_bytes may stay), and one lossless reader.
    mcl_broker_client *sc[STALLED], *lc;
    rd stalled[STALLED], lossless;
    uint32_t sub;
    for (int i = 0; i < STALLED; i++) {
        co.name = "stalled";
        MCLT_OK(mcl_broker_connect(&sc[i], ch.url, &co));
        rd_init(&stalled[i], true);
        mcl_broker_reader_options ro = {.buffer = 10000, .policy = MCL_BROKER_RING};
        MCLT_OK(mcl_broker_subscribe(sc[i], "load", &ro, on_frame, &stalled[i], &sub));
    }
    co.name = "lossless";
    MCLT_OK(mcl_broker_connect(&lc, ch.url, &co));
    rd_init(&lossless, false);
    mcl_broker_reader_options bl = {.buffer = 100, .policy = MCL_BROKER_BLOCK};
    MCLT_OK(mcl_broker_subscribe(lc, "load", &bl, on_frame, &lossless, &sub));
    void *aa[2] = {w, &wid};
    CU_ASSERT_FATAL(mclt_wait_until(active, aa, 5000));
    int stranger = half_packet(ch.url);
    CU_ASSERT(stranger >= 0);
    churn k = {.url = ch.url};
    pthread_t kt;
    CU_ASSERT_FATAL(pthread_create(&kt, NULL, churner, &k) == 0);
    uint8_t *f = calloc(1, FRAME);
    CU_ASSERT_FATAL(f != NULL);
    unsigned put = 0;
    long peak_kb = 0;
    int64_t end = mclt_now_ms() + 60000;
    while (put < frames && mclt_now_ms() < end) {
        uint64_t idx = put;
        memcpy(f, &idx, sizeof(idx));
        mcl_err rv = mcl_broker_put_wait(w, wid, f, FRAME, 10000);
        if (rv != MCL_OK) {
            CU_FAIL("a put failed");
            break;
        }
        put++;
        if (put % 200 == 0) {
            long kb = status_kb(ch.pid, "VmRSS");
            if (kb > peak_kb)
                peak_kb = kb;
        }
    }
    free(f);
    CU_ASSERT_EQUAL(put, frames);
    has want = {&lossless, frames};
    CU_ASSERT(mclt_wait_until(has_n, &want, 60000));
    atomic_store(&k.stop, true);
    pthread_join(kt, NULL);
    CU_ASSERT(atomic_load(&k.rounds) > 0);
    long hwm_kb = status_kb(ch.pid, "VmHWM");
    pthread_mutex_lock(&lossless.lock);
    CU_ASSERT_EQUAL(lossless.n, frames);
    CU_ASSERT_EQUAL(lossless.gaps, 0);
    CU_ASSERT_EQUAL(lossless.bad, 0);
    pthread_mutex_unlock(&lossless.lock);
    // The bound: over the idle figure, each reader's buffer, each connection's share (the
    // writer, the stalled and lossless readers, a churning client, the stranger), 1 KiB per
    // object, and 8 MiB for the allocator's own slack.
    long conns = 1 + STALLED + 1 + 1 + 1;
    long bound_kb = base_kb + (STALLED + 2) * (READER_BYTES / 1024) + conns * (CONN_SHARE / 1024) +
                    64 + 8 * 1024;
    if (measure) {
        fprintf(stderr, "\n  broker: idle %ld KiB, peak %ld KiB (sampled %ld), bound %ld KiB; "
                        "%u frames of %d bytes put\n",
                hwm_kb > 0 ? base_kb : -1, hwm_kb, peak_kb, bound_kb, put, FRAME);
        CU_ASSERT(base_kb > 0 && hwm_kb > 0);
        CU_ASSERT(hwm_kb <= bound_kb);
    }
    // The stalled readers get going again: what their buffers kept, the rest counted dropped.
    for (int i = 0; i < STALLED; i++)
        rd_release(&stalled[i]);
    for (int i = 0; i < STALLED; i++) {
        has one = {&stalled[i], 2};
        CU_ASSERT(mclt_wait_until(has_n, &one, 10000));
        mcl_broker_client_free(sc[i]);
        pthread_mutex_lock(&stalled[i].lock);
        CU_ASSERT(stalled[i].n < frames); // the ring dropped (counted at the broker)
        CU_ASSERT_EQUAL(stalled[i].bad, 0);
        pthread_mutex_unlock(&stalled[i].lock);
    }
    if (stranger >= 0)
        close(stranger);
    mcl_broker_client_free(lc);
    mcl_broker_client_free(w);
    // Stop it: it frees everything and exits 0, or ASan/valgrind say otherwise.
    close(ch.stop);
    if (!mclt_wait_until(exited, &ch, 60000)) {
        kill(ch.pid, SIGKILL);
        waitpid(ch.pid, &ch.status, 0);
        CU_FAIL("the broker did not stop within 60 s");
    }
    CU_ASSERT(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0);
}

static CU_TestInfo tests[] = {{"load_memory_bound", test_load_memory_bound}, CU_TEST_INFO_NULL};
MCLT_SUITE("broker_load", NULL, NULL, tests);
