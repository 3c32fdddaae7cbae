// SPDX-License-Identifier: BSD-3-Clause
// The channel broker end to end over tcp:// on loopback (zmq+tcp:// when MCL_TEST_BROKER_URL
// says so: ctest runs both): channels (names, owners, private
// keys, single and multi writer, lifetimes, keep), delivery, decimation, the four overrun
// policies with a stalled reader, writer gating and credit, and clients that go away.
#define _GNU_SOURCE
#include "harness.h"

#include <mcl/broker.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mcl_broker *
broker(const mcl_broker_options *o)
{
    const char *url = getenv("MCL_TEST_BROKER_URL");
    mcl_broker *b;
    MCLT_OK(mcl_broker_open(&b, url != NULL && url[0] != '\0' ? url : "tcp://127.0.0.1:0", o));
    return b;
}

static mcl_broker_client *
client(mcl_broker *b, const char *name)
{
    mcl_broker_client_options o = {.name = name};
    mcl_broker_client *c;
    MCLT_OK(mcl_broker_connect(&c, mcl_broker_url(b), &o));
    return c;
}

// A reader's log: frames in order, and a gate that can stall its callback.
typedef struct rlog {
    pthread_mutex_t lock;
    pthread_cond_t cv;
    uint64_t n, last_seq, gaps, bytes;
    bool in_order;
    bool stall;
    unsigned stalled_in; // callbacks now waiting at the gate
} rlog;

static void
rlog_init(rlog *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->in_order = true;
}

static void
on_frame(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
         void *user)
{
    (void)c;
    (void)sub;
    (void)data;
    rlog *l = user;
    pthread_mutex_lock(&l->lock);
    while (l->stall) {
        l->stalled_in++;
        pthread_cond_wait(&l->cv, &l->lock);
        l->stalled_in--;
    }
    if (seq <= l->last_seq)
        l->in_order = false;
    if (l->n > 0 && seq != l->last_seq + 1)
        l->gaps++;
    l->last_seq = seq;
    l->n++;
    l->bytes += len;
    pthread_mutex_unlock(&l->lock);
}

static uint64_t
rlog_n(rlog *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

typedef struct want {
    rlog *l;
    uint64_t n;
} want;

static bool
has_n(void *arg)
{
    want *w = arg;
    return rlog_n(w->l) >= w->n;
}

static void
gate(rlog *l, bool stall)
{
    pthread_mutex_lock(&l->lock);
    l->stall = stall;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->lock);
}

static bool
is_stalled(void *arg)
{
    rlog *l = arg;
    pthread_mutex_lock(&l->lock);
    bool y = l->stalled_in > 0;
    pthread_mutex_unlock(&l->lock);
    return y;
}

typedef struct active_log {
    atomic_int active, inactive;
} active_log;

static void
on_active(mcl_broker_client *c, uint32_t wid, bool active, void *user)
{
    (void)c;
    (void)wid;
    active_log *a = user;
    atomic_fetch_add(active ? &a->active : &a->inactive, 1);
}

typedef struct wa {
    mcl_broker_client *c;
    uint32_t wid;
    bool want;
} wa;

static bool
writer_is(void *arg)
{
    wa *w = arg;
    return mcl_broker_writer_active(w->c, w->wid) == w->want;
}

// The reader's counters at the broker, from broker.stats.
static bool
reader_stat(mcl_broker_client *c, const char *chan, uint32_t sub, const char *key, uint64_t *out)
{
    mcl_value *a = NULL;
    (void)mcl_value_new(&a, MCL_TYPE_MAP);
    (void)mcl_value_put_str(a, "name", chan);
    mcl_rpc_result *r;
    bool ok = false;
    if (mcl_rpc_call(mcl_broker_rpc(c), "broker.stats", a, 5000, &r) == MCL_OK) {
        if (r->status == MCL_PSTREAM_OK) {
            const mcl_value *chans = mcl_value_find(r->value, "channels");
            for (size_t i = 0; i < mcl_value_count(chans); i++) {
                const mcl_value *rs = mcl_value_find(mcl_value_item(chans, i), "reader_stats");
                for (size_t k = 0; k < mcl_value_count(rs); k++) {
                    const mcl_value *e = mcl_value_item(rs, k);
                    uint64_t id = 0;
                    (void)mcl_value_get_uint(mcl_value_find(e, "sub"), &id);
                    if (id == sub)
                        ok = mcl_value_get_uint(mcl_value_find(e, key), out) == MCL_OK;
                }
            }
        }
        mcl_rpc_result_free(r);
    }
    mcl_value_free(a);
    return ok;
}

// Puts n frames, waiting for credit; returns how many went.
static uint64_t
put_n(mcl_broker_client *c, uint32_t wid, uint64_t n, int timeout_ms)
{
    uint8_t f[64] = {1, 2, 3};
    uint64_t i = 0;
    for (; i < n; i++)
        if (mcl_broker_put_wait(c, wid, f, sizeof(f), timeout_ms) != MCL_OK)
            break;
    return i;
}

// --- tests ---------------------------------------------------------------------------------------

static void
test_channels_and_owners(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *a = client(b, "a"), *o = client(b, "other");
    MCLT_OK(mcl_broker_create(a, "imu", NULL));
    MCLT_ERR(mcl_broker_create(o, "imu", NULL), MCL_EEXIST);
    MCLT_ERR(mcl_broker_create(a, "", NULL), MCL_EINVAL);
    mcl_broker_channel_options nokey = {.private_ = true};
    MCLT_ERR(mcl_broker_create(a, "p", &nokey), MCL_EINVAL);
    CU_ASSERT_EQUAL(mcl_broker_channels(b), 3); // and the statistics and events channels
    MCLT_ERR(mcl_broker_delete(o, "imu"), MCL_EPERM);
    MCLT_ERR(mcl_broker_delete(a, MCL_BROKER_STATS_CHANNEL), MCL_EPERM);
    MCLT_ERR(mcl_broker_delete(a, MCL_BROKER_EVENTS_CHANNEL), MCL_EPERM);
    MCLT_ERR(mcl_broker_create(a, MCL_BROKER_EVENTS_CHANNEL, NULL), MCL_EEXIST);
    MCLT_ERR(mcl_broker_delete(o, "nothing"), MCL_ENOENT);
    uint32_t w;
    MCLT_ERR(mcl_broker_writer(o, "nothing", NULL, NULL, NULL, &w), MCL_ENOENT);
    MCLT_ERR(mcl_broker_writer(a, MCL_BROKER_STATS_CHANNEL, NULL, NULL, NULL, &w), MCL_EPERM);
    MCLT_ERR(mcl_broker_writer(a, MCL_BROKER_EVENTS_CHANNEL, NULL, NULL, NULL, &w), MCL_EPERM);
    // Single writer unless multi_writer.
    MCLT_OK(mcl_broker_writer(a, "imu", NULL, NULL, NULL, &w));
    uint32_t w2;
    MCLT_ERR(mcl_broker_writer(o, "imu", NULL, NULL, NULL, &w2), MCL_EALREADY);
    mcl_broker_channel_options multi = {.multi_writer = true};
    MCLT_OK(mcl_broker_create(a, "many", &multi));
    MCLT_OK(mcl_broker_writer(a, "many", NULL, NULL, NULL, &w2));
    MCLT_OK(mcl_broker_writer(o, "many", NULL, NULL, NULL, &w2));
    // Private: the key is checked; it is not listed to others.
    mcl_broker_channel_options priv = {.private_ = true, .key = "s3cret"};
    MCLT_OK(mcl_broker_create(a, "secret", &priv));
    rlog l;
    rlog_init(&l);
    uint32_t sub;
    mcl_broker_reader_options wrong = {.key = "guess"}, right = {.key = "s3cret"};
    MCLT_ERR(mcl_broker_subscribe(o, "secret", &wrong, on_frame, &l, &sub), MCL_EPERM);
    MCLT_ERR(mcl_broker_subscribe(o, "secret", NULL, on_frame, &l, &sub), MCL_EPERM);
    MCLT_ERR(mcl_broker_writer(o, "secret", "guess", NULL, NULL, &w2), MCL_EPERM);
    MCLT_OK(mcl_broker_subscribe(o, "secret", &right, on_frame, &l, &sub));
    mcl_rpc_result *r;
    MCLT_OK(mcl_rpc_call(mcl_broker_rpc(o), "broker.channels", NULL, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    const mcl_value *chans = mcl_value_find(r->value, "channels");
    CU_ASSERT_EQUAL(mcl_value_count(chans), 4); // imu, many, statistics, events: not secret
    for (size_t i = 0; i < mcl_value_count(chans); i++) {
        const char *nm;
        size_t nl;
        MCLT_OK(mcl_value_get_str(mcl_value_find(mcl_value_item(chans, i), "name"), &nm, &nl));
        CU_ASSERT(strcmp(nm, "secret") != 0);
    }
    mcl_rpc_result_free(r);
    // The owner deletes: the reader hears it.
    MCLT_OK(mcl_broker_delete(a, "imu"));
    CU_ASSERT_EQUAL(mcl_broker_channels(b), 4);
    mcl_broker_client_free(a);
    mcl_broker_client_free(o);
    mcl_broker_free(b);
}

static void
test_gating_and_delivery(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *w = client(b, "writer"), *rd = client(b, "reader");
    MCLT_OK(mcl_broker_create(w, "data", NULL));
    active_log al = {0};
    uint32_t wid;
    MCLT_OK(mcl_broker_writer(w, "data", NULL, on_active, &al, &wid));
    CU_ASSERT(!mcl_broker_writer_active(w, wid)); // inactive at creation
    MCLT_ERR(mcl_broker_put(w, wid, "x", 1), MCL_EAGAIN);
    mcl_broker_counts n;
    MCLT_OK(mcl_broker_counts_of(w, wid, &n));
    CU_ASSERT_EQUAL(n.refused_inactive, 1);
    rlog l;
    rlog_init(&l);
    uint32_t sub;
    mcl_broker_reader_options lossless = {.policy = MCL_BROKER_BLOCK};
    MCLT_OK(mcl_broker_subscribe(rd, "data", &lossless, on_frame, &l, &sub));
    wa want_on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &want_on, 3000));
    CU_ASSERT_EQUAL(atomic_load(&al.active), 1);
    // 5000 frames as fast as the writer goes: lossless with BLOCK (credit holds it back).
    CU_ASSERT_EQUAL(put_n(w, wid, 5000, 5000), 5000);
    want wn = {&l, 5000};
    CU_ASSERT(mclt_wait_until(has_n, &wn, 10000));
    pthread_mutex_lock(&l.lock);
    CU_ASSERT_EQUAL(l.n, 5000);
    CU_ASSERT(l.in_order);
    CU_ASSERT_EQUAL(l.gaps, 0);
    pthread_mutex_unlock(&l.lock);
    // A frame over the broker's max_frame (1 MiB) is refused here, not dropped there; one of
    // exactly max_frame goes.
    size_t big = (size_t)1 << 20;
    uint8_t *huge = calloc(1, big + 1);
    CU_ASSERT_FATAL(huge != NULL);
    MCLT_ERR(mcl_broker_put_wait(w, wid, huge, big + 1, 5000), MCL_EMSGSIZE);
    MCLT_OK(mcl_broker_put_wait(w, wid, huge, big, 5000));
    free(huge);
    wn.n = 5001;
    CU_ASSERT(mclt_wait_until(has_n, &wn, 10000));
    // The last reader leaves: inactive.
    MCLT_OK(mcl_broker_unsubscribe(rd, sub));
    wa want_off = {w, wid, false};
    CU_ASSERT(mclt_wait_until(writer_is, &want_off, 3000));
    CU_ASSERT_EQUAL(atomic_load(&al.inactive), 1);
    // A reader that dies (its client goes): inactive again, within a heartbeat.
    MCLT_OK(mcl_broker_subscribe(rd, "data", NULL, on_frame, &l, &sub));
    CU_ASSERT(mclt_wait_until(writer_is, &want_on, 3000));
    mcl_broker_client_free(rd);
    CU_ASSERT(mclt_wait_until(writer_is, &want_off, 5000));
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

static void
test_decimation(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *w = client(b, "writer"), *rd = client(b, "reader");
    MCLT_OK(mcl_broker_create(w, "d", NULL));
    uint32_t wid, sub, sub_all;
    MCLT_OK(mcl_broker_writer(w, "d", NULL, NULL, NULL, &wid));
    rlog tenth, all;
    rlog_init(&tenth);
    rlog_init(&all);
    mcl_broker_reader_options every10 = {.buffer = 2000, .every = 10}, keep = {.buffer = 2000};
    MCLT_OK(mcl_broker_subscribe(rd, "d", &every10, on_frame, &tenth, &sub));
    MCLT_OK(mcl_broker_subscribe(rd, "d", &keep, on_frame, &all, &sub_all));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000));
    CU_ASSERT_EQUAL(put_n(w, wid, 1003, 5000), 1003);
    want wa_ = {&all, 1003};
    CU_ASSERT(mclt_wait_until(has_n, &wa_, 10000));
    want wt = {&tenth, 100};
    CU_ASSERT(mclt_wait_until(has_n, &wt, 5000));
    uint64_t dec = 0;
    CU_ASSERT(reader_stat(rd, "d", sub, "decimated", &dec));
    CU_ASSERT_EQUAL(rlog_n(&tenth), 101); // frames 1, 11, ..., 1001: floor(1003/10) + 1
    CU_ASSERT_EQUAL(dec, 1003 - 101);
    pthread_mutex_lock(&tenth.lock);
    CU_ASSERT_EQUAL(tenth.gaps, 100); // every delivered frame after the first skips 9
    pthread_mutex_unlock(&tenth.lock);
    // At most 20 per second.
    rlog slow;
    rlog_init(&slow);
    uint32_t sub_rate;
    mcl_broker_reader_options rate = {.buffer = 2000, .max_rate = 20};
    MCLT_OK(mcl_broker_subscribe(rd, "d", &rate, on_frame, &slow, &sub_rate));
    int64_t t0 = mclt_now_ms();
    uint64_t put = 0;
    while (mclt_now_ms() - t0 < 500)
        put += put_n(w, wid, 10, 5000);
    int64_t el = mclt_now_ms() - t0;
    want wsl = {&slow, 1};
    CU_ASSERT(mclt_wait_until(has_n, &wsl, 3000));
    uint64_t got = rlog_n(&slow);
    CU_ASSERT(put > 100);
    CU_ASSERT(got >= 1 && got <= 2 + (uint64_t)(el * 20 / 1000));
    mcl_broker_client_free(rd);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

typedef struct offered_arg {
    mcl_broker_client *c;
    uint32_t sub;
    uint64_t n;
    const char *chan;
} offered_arg;

static bool
offered_all(void *arg)
{
    offered_arg *o = arg;
    uint64_t n = 0;
    return reader_stat(o->c, o->chan ? o->chan : "c", o->sub, "offered", &n) && n >= o->n;
}

static bool
offered_more(void *arg)
{
    return offered_all(arg);
}

// One writer, a fast reader, and a stalled reader with each policy.
static void
test_policies_with_a_stalled_reader(void)
{
    mcl_broker_options bo = {.max_window = 8, .writer_credit = 16};
    mcl_broker *b = broker(&bo);
    mcl_broker_client *w = client(b, "writer"), *fast = client(b, "fast");
    MCLT_OK(mcl_broker_create(w, "c", NULL));
    uint32_t wid;
    MCLT_OK(mcl_broker_writer(w, "c", NULL, NULL, NULL, &wid));
    rlog fl;
    rlog_init(&fl);
    uint32_t fsub;
    mcl_broker_reader_options big = {.buffer = 10000};
    MCLT_OK(mcl_broker_subscribe(fast, "c", &big, on_frame, &fl, &fsub));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000));
    uint64_t total = 0;
    for (int p = MCL_BROKER_RING; p <= MCL_BROKER_ERROR; p++) {
        mcl_broker_client *slow = client(b, "slow");
        rlog sl;
        rlog_init(&sl);
        sl.stall = true;
        uint32_t ssub;
        mcl_broker_reader_options ro = {.buffer = 50, .policy = (mcl_broker_policy)p};
        MCLT_OK(mcl_broker_subscribe(slow, "c", &ro, on_frame, &sl, &ssub));
        // Put 500: the stalled reader takes 1 into its callback, 8 in flight, 50 buffered.
        uint64_t went = put_n(w, wid, 500, p == MCL_BROKER_BLOCK ? 1500 : 5000);
        total += went;
        CU_ASSERT(mclt_wait_until(is_stalled, &sl, 3000));
        if (p == MCL_BROKER_RING || p == MCL_BROKER_DROP_NEW) { // the broker has had them all
            offered_arg oa = {fast, ssub, went, "c"};
            CU_ASSERT(mclt_wait_until(offered_all, &oa, 5000));
        }
        uint64_t dropped = 0, depth = 0;
        if (p == MCL_BROKER_BLOCK) {
            // Nothing dropped: the writer was held back once the buffer filled.
            CU_ASSERT(went < 500);
            CU_ASSERT(reader_stat(fast, "c", ssub, "dropped", &dropped));
            CU_ASSERT_EQUAL(dropped, 0);
            gate(&sl, false); // resumes: the writer gets credit, the rest goes, nothing lost
            uint64_t more = put_n(w, wid, 500 - went, 5000);
            total += more;
            CU_ASSERT_EQUAL(went + more, 500);
            want ws = {&sl, 500};
            CU_ASSERT(mclt_wait_until(has_n, &ws, 10000));
            pthread_mutex_lock(&sl.lock);
            CU_ASSERT_EQUAL(sl.n, 500);
            CU_ASSERT_EQUAL(sl.gaps, 0);
            pthread_mutex_unlock(&sl.lock);
        } else if (p == MCL_BROKER_ERROR) {
            CU_ASSERT_EQUAL(went, 500); // never holds the writer
            // The subscription ended: the broker no longer lists it.
            CU_ASSERT(!reader_stat(fast, "c", ssub, "dropped", &dropped));
            gate(&sl, false);
        } else {
            CU_ASSERT_EQUAL(went, 500); // never holds the writer
            CU_ASSERT(reader_stat(fast, "c", ssub, "dropped", &dropped));
            CU_ASSERT(reader_stat(fast, "c", ssub, "depth", &depth));
            CU_ASSERT_EQUAL(depth, 50);
            CU_ASSERT(dropped >= 500 - 50 - 8 - 1);
            gate(&sl, false);
            want ws = {&sl, 500 - dropped};
            CU_ASSERT(mclt_wait_until(has_n, &ws, 10000));
            pthread_mutex_lock(&sl.lock);
            CU_ASSERT_EQUAL(sl.n + dropped, 500); // every frame delivered or counted
            // ring keeps the newest (the channel's last frame came); drop_new the oldest.
            if (p == MCL_BROKER_RING) {
                CU_ASSERT_EQUAL(sl.last_seq, total);
            } else {
                CU_ASSERT(sl.last_seq < total);
            }
            pthread_mutex_unlock(&sl.lock);
        }
        mcl_broker_client_free(slow);
    }
    // The fast reader lost nothing through all of it.
    want wf = {&fl, total};
    CU_ASSERT(mclt_wait_until(has_n, &wf, 10000));
    pthread_mutex_lock(&fl.lock);
    CU_ASSERT_EQUAL(fl.n, total);
    CU_ASSERT_EQUAL(fl.gaps, 0);
    pthread_mutex_unlock(&fl.lock);
    mcl_broker_client_free(fast);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

typedef struct ended_log {
    atomic_int n;
    char why[128];
} ended_log;

static void
on_ended(mcl_broker_client *c, uint32_t id, const char *why, void *user)
{
    (void)c;
    (void)id;
    ended_log *e = user;
    snprintf(e->why, sizeof(e->why), "%s", why);
    atomic_fetch_add(&e->n, 1);
}

static bool
ended_once(void *arg)
{
    return atomic_load(&((ended_log *)arg)->n) >= 1;
}

static bool
no_channels(void *arg)
{
    return mcl_broker_channels(arg) == 2; // (the statistics and events channels stay)
}

static bool
one_channel(void *arg)
{
    return mcl_broker_channels(arg) == 3; // one, and the statistics and events channels
}

// The events channel's maps, as "event channel client reason" lines.
typedef struct events_log {
    pthread_mutex_t lock;
    char text[4096];
} events_log;

static void
on_event(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
         void *user)
{
    (void)c;
    (void)sub;
    (void)seq;
    events_log *e = user;
    mcl_value *v = NULL;
    if (mcl_value_decode(&v, data, len, NULL, 0) != MCL_OK)
        return;
    const char *f[4] = {"", "", "", ""};
    const char *keys[4] = {"event", "channel", "client", "reason"};
    for (int i = 0; i < 4; i++) {
        size_t n;
        (void)mcl_value_get_str(mcl_value_find(v, keys[i]), &f[i], &n);
    }
    pthread_mutex_lock(&e->lock);
    size_t used = strlen(e->text);
    snprintf(e->text + used, sizeof(e->text) - used, "%s %s %s %s\n", f[0], f[1], f[2], f[3]);
    pthread_mutex_unlock(&e->lock);
    mcl_value_free(v);
}

typedef struct saw_arg {
    events_log *e;
    const char *line;
} saw_arg;

static bool
saw_event(void *arg)
{
    saw_arg *a = arg;
    pthread_mutex_lock(&a->e->lock);
    bool y = strstr(a->e->text, a->line) != NULL;
    pthread_mutex_unlock(&a->e->lock);
    return y;
}

static void
test_lifetimes_and_owners_leaving(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *a = client(b, "a"), *mon = client(b, "monitor");
    events_log ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
    uint32_t esub;
    MCLT_OK(mcl_broker_subscribe(mon, MCL_BROKER_EVENTS_CHANNEL, NULL, on_event, &ev, &esub));
    ended_log el = {0};
    mcl_broker_client_options ro = {.name = "reader", .ended = on_ended, .user = &el};
    mcl_broker_client *rd;
    MCLT_OK(mcl_broker_connect(&rd, mcl_broker_url(b), &ro));
    // A temporary channel nobody uses goes after its lifetime; one in use stays.
    mcl_broker_channel_options tmp = {.lifetime_ms = 200, .keep = true};
    MCLT_OK(mcl_broker_create(a, "tmp", &tmp));
    MCLT_OK(mcl_broker_create(a, "used", &tmp));
    rlog l;
    rlog_init(&l);
    uint32_t sub;
    MCLT_OK(mcl_broker_subscribe(rd, "used", NULL, on_frame, &l, &sub));
    int64_t t0 = mclt_now_ms();
    CU_ASSERT(mclt_wait_until(one_channel, b, 3000));
    CU_ASSERT(mclt_now_ms() - t0 >= 150); // not before its lifetime
    saw_arg sa = {&ev, "created tmp a \n"};
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    sa.line = "removed tmp a its lifetime ended\n"; // announced
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    MCLT_OK(mcl_broker_unsubscribe(rd, sub));
    CU_ASSERT(mclt_wait_until(no_channels, b, 3000)); // unused now: it goes too
    sa.line = "removed used a its lifetime ended\n";
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    // A kept channel whose creator left has no owner: creating it again adopts it (with the
    // key, when private), and the new owner may delete it.
    mcl_broker_client *k = client(b, "keeper");
    mcl_broker_channel_options kept = {.keep = true, .private_ = true, .key = "k1"};
    MCLT_OK(mcl_broker_create(k, "kept", &kept));
    mcl_broker_client_free(k);
    mcl_broker_client *k2 = client(b, "keeper2");
    MCLT_ERR(mcl_broker_delete(k2, "kept"), MCL_ENOENT); // (private: not even seen)
    mcl_broker_channel_options wrongkey = {.keep = true, .private_ = true, .key = "k2"};
    MCLT_ERR(mcl_broker_create(k2, "kept", &wrongkey), MCL_EEXIST);
    MCLT_OK(mcl_broker_create(k2, "kept", &kept));
    sa.line = "adopted kept keeper2 \n";
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    MCLT_OK(mcl_broker_delete(k2, "kept"));
    sa.line = "removed kept keeper2 the channel was deleted\n";
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    mcl_broker_client_free(k2);
    // A creator that disconnects takes its channel (keep: false), and its readers hear it.
    MCLT_OK(mcl_broker_create(a, "mine", NULL));
    MCLT_OK(mcl_broker_subscribe(rd, "mine", NULL, on_frame, &l, &sub));
    mcl_broker_client_free(a);
    CU_ASSERT(mclt_wait_until(ended_once, &el, 5000));
    CU_ASSERT_PTR_NOT_NULL(strstr(el.why, "creator disconnected"));
    CU_ASSERT(mclt_wait_until(no_channels, b, 3000));
    sa.line = "removed mine a its creator disconnected\n";
    CU_ASSERT(mclt_wait_until(saw_event, &sa, 3000));
    mcl_broker_client_free(rd);
    mcl_broker_client_free(mon);
    mcl_broker_free(b);
}

// Strangers: garbage on both channels, ids that are not theirs, puts beyond credit, a flood of
// creates and deletes. The broker answers or counts, and serves the others as before.
static void
test_hostile_clients(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *w = client(b, "writer"), *rd = client(b, "reader");
    MCLT_OK(mcl_broker_create(w, "c", NULL));
    uint32_t wid, sub;
    MCLT_OK(mcl_broker_writer(w, "c", NULL, NULL, NULL, &wid));
    rlog l;
    rlog_init(&l);
    mcl_broker_reader_options lossless = {.policy = MCL_BROKER_BLOCK};
    MCLT_OK(mcl_broker_subscribe(rd, "c", &lossless, on_frame, &l, &sub));
    mcl_pstream *raw;
    MCLT_OK(mcl_pstream_dial(&raw, mcl_broker_url(b), NULL));
    MCLT_OK(mcl_pstream_start(raw));
    uint64_t rng = 99;
    uint8_t junk[64];
    for (int i = 0; i < 2000; i++) {
        size_t n = mclt_rand(&rng) % sizeof(junk);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)mclt_rand(&rng);
        if (i % 3 == 0 && n >= 4) { // a put on the writer's id, from a stranger
            junk[0] = (uint8_t)(wid >> 24), junk[1] = (uint8_t)(wid >> 16);
            junk[2] = (uint8_t)(wid >> 8), junk[3] = (uint8_t)wid;
        }
        (void)mcl_pstream_send(raw, MCL_BROKER_DATA_CHANNEL, (uint32_t)(mclt_rand(&rng) % 8), 0,
                               junk, n);
        if (i % 50 == 0) { // and garbage calls
            mcl_pstream_result *r = NULL; // answered (refused), never left hanging
            MCLT_OK(mcl_pstream_call(raw, MCL_BROKER_RPC_CHANNEL, (uint32_t)(i % 12), 0, junk, n,
                                     2000, &r));
            CU_ASSERT(r->status != MCL_PSTREAM_DEADLINE_EXCEEDED);
            mcl_pstream_result_free(r);
        }
    }
    // A flood of creates and deletes leaves nothing behind.
    for (int i = 0; i < 300; i++) {
        char name[32];
        snprintf(name, sizeof(name), "flood%d", i % 7);
        mcl_err rv = mcl_broker_create(w, name, NULL);
        CU_ASSERT(rv == MCL_OK || rv == MCL_EEXIST);
        if (i % 2 == 1)
            (void)mcl_broker_delete(w, name);
    }
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof(name), "flood%d", i);
        (void)mcl_broker_delete(w, name);
    }
    CU_ASSERT_EQUAL(mcl_broker_channels(b), 3);
    // The stranger's puts never reached the reader; the writer's do, all of them.
    CU_ASSERT_EQUAL(rlog_n(&l), 0);
    CU_ASSERT_EQUAL(put_n(w, wid, 300, 5000), 300);
    want wn = {&l, 300};
    CU_ASSERT(mclt_wait_until(has_n, &wn, 10000));
    pthread_mutex_lock(&l.lock);
    CU_ASSERT_EQUAL(l.n, 300);
    CU_ASSERT_EQUAL(l.gaps, 0);
    pthread_mutex_unlock(&l.lock);
    CU_ASSERT_EQUAL(mcl_broker_clients(b), 3);
    mcl_pstream_free(raw);
    mcl_broker_client_free(rd);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

// --- client-to-client RPC through the broker -------------------------------------------------------

static void
h_add(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    (void)user;
    int64_t a = 0, b2 = 0;
    (void)mcl_value_get_int(mcl_value_find(args, "a"), &a);
    (void)mcl_value_get_int(mcl_value_find(args, "b"), &b2);
    (void)mcl_value_put_int(mcl_rpc_req_result(call), "sum", a + b2);
    (void)mcl_rpc_reply(call);
}

static mcl_rpc_req *held_call;

static void
h_hold(mcl_rpc_req *call, const mcl_value *args, void *user)
{
    (void)args;
    (void)user;
    held_call = call; // answered at the end of the test
    (void)mcl_rpc_defer(call);
}

static bool
call_is_held(void *arg)
{
    (void)arg;
    return __atomic_load_n(&held_call, __ATOMIC_SEQ_CST) != NULL;
}

typedef struct done_box {
    atomic_int done;
    mcl_rpc_status st;
    char msg[128];
} done_box;

static void
on_rpc_done(const mcl_rpc_result *r, void *user)
{
    done_box *d = user;
    d->st = r->status;
    snprintf(d->msg, sizeof(d->msg), "%s", r->message);
    atomic_store(&d->done, 1);
}

static bool
box_done(void *arg)
{
    return atomic_load(&((done_box *)arg)->done) != 0;
}

static void
test_rpc_between_clients(void)
{
    mcl_broker *b = broker(NULL);
    mcl_broker_client *resp = client(b, "responder"), *caller = client(b, "caller");
    mcl_rpc_service *svc;
    MCLT_OK(mcl_rpc_service_new(&svc, "calc", NULL, NULL));
    const mcl_rpc_field ab[] = {{"a", MCL_TYPE_INT, false, NULL, NULL},
                                {"b", MCL_TYPE_INT, false, NULL, NULL}};
    const mcl_rpc_field sum[] = {{"sum", MCL_TYPE_INT, false, NULL, NULL}};
    const mcl_rpc_method m[] = {{1, "calc.add", NULL, ab, 2, sum, 1, 0, h_add, NULL},
                                {2, "calc.hold", NULL, NULL, 0, NULL, 0, 0, h_hold, NULL}};
    MCLT_OK(mcl_rpc_service_add(svc, m, 2, NULL, 0));
    MCLT_OK(mcl_broker_serve_rpc(resp, "calc", svc));
    MCLT_ERR(mcl_broker_serve_rpc(caller, "calc", svc), MCL_EALREADY);
    // Nobody serves "nothing": refused at once.
    mcl_rpc_client *rc;
    int64_t t0 = mclt_now_ms();
    MCLT_ERR(mcl_broker_rpc_client(caller, "nothing", &rc), MCL_ENOENT);
    CU_ASSERT(mclt_now_ms() - t0 < 1000);
    MCLT_OK(mcl_broker_rpc_client(caller, "calc", &rc));
    CU_ASSERT_PTR_NOT_NULL(mcl_rpc_client_method(rc, "calc.add")); // the responder's description
    mcl_value *a;
    const char *json = "{\"a\": 40, \"b\": 2}";
    MCLT_OK(mcl_value_from_json(&a, json, strlen(json), NULL, 0));
    mcl_rpc_result *r;
    MCLT_OK(mcl_rpc_call(rc, "calc.add", a, 5000, &r));
    CU_ASSERT_EQUAL(r->status, MCL_PSTREAM_OK);
    int64_t got = 0;
    (void)mcl_value_get_int(mcl_value_find(r->value, "sum"), &got);
    CU_ASSERT_EQUAL(got, 42);
    mcl_rpc_result_free(r);
    mcl_value_free(a);
    // A call in progress when its responder disconnects ends at once: no responder.
    held_call = NULL;
    done_box d = {0};
    MCLT_OK(mcl_rpc_submit(rc, mcl_rpc_client_method(rc, "calc.hold"), NULL, 20000, on_rpc_done,
                           &d, NULL));
    CU_ASSERT_FATAL(mclt_wait_until(call_is_held, NULL, 5000));
    t0 = mclt_now_ms();
    mcl_broker_client_free(resp);
    CU_ASSERT(mclt_wait_until(box_done, &d, 5000));
    CU_ASSERT(mclt_now_ms() - t0 < 3000);
    CU_ASSERT_EQUAL(d.st, MCL_PSTREAM_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.msg, "no responder"));
    (void)mcl_rpc_reply(held_call); // (its connection is gone: nothing is sent)
    // And the name is free again, with no responder behind it.
    mcl_rpc_client *again;
    MCLT_ERR(mcl_broker_rpc_client(caller, "calc", &again), MCL_ENOENT);
    mcl_rpc_client_free(rc, 500);
    mcl_broker_client_free(caller);
    mcl_rpc_service_free(svc, 0);
    mcl_broker_free(b);
}

typedef struct stats_box {
    pthread_mutex_t lock;
    int frames;
    bool saw_reader; // a reader of channel "c" with offered == 20 and policy ring
} stats_box;

static void
on_stats_frame(mcl_broker_client *c, uint32_t sub, uint64_t seq, const void *data, size_t len,
               void *user)
{
    (void)c;
    (void)sub;
    (void)seq;
    stats_box *sb = user;
    mcl_value *v;
    if (mcl_value_decode(&v, data, len, NULL, 0) != MCL_OK)
        return;
    const mcl_value *chans = mcl_value_find(v, "channels");
    bool saw = false;
    for (size_t i = 0; i < mcl_value_count(chans); i++) {
        const mcl_value *ch = mcl_value_item(chans, i);
        const char *nm;
        size_t nl;
        if (mcl_value_get_str(mcl_value_find(ch, "name"), &nm, &nl) != MCL_OK || strcmp(nm, "c"))
            continue;
        const mcl_value *rs = mcl_value_find(ch, "reader_stats");
        for (size_t k = 0; k < mcl_value_count(rs); k++) {
            uint64_t off = 0;
            (void)mcl_value_get_uint(mcl_value_find(mcl_value_item(rs, k), "offered"), &off);
            saw = saw || off == 20;
        }
    }
    mcl_value_free(v);
    pthread_mutex_lock(&sb->lock);
    sb->frames++;
    sb->saw_reader = sb->saw_reader || saw;
    pthread_mutex_unlock(&sb->lock);
}

static bool
stats_seen(void *arg)
{
    stats_box *sb = arg;
    pthread_mutex_lock(&sb->lock);
    bool y = sb->saw_reader;
    pthread_mutex_unlock(&sb->lock);
    return y;
}

static void
test_statistics_channel(void)
{
    mcl_broker_options bo = {.stats_ms = 50};
    mcl_broker *b = broker(&bo);
    mcl_broker_client *w = client(b, "writer"), *rd = client(b, "reader"),
                      *mon = client(b, "monitor");
    MCLT_OK(mcl_broker_create(w, "c", NULL));
    uint32_t wid, sub, ssub;
    MCLT_OK(mcl_broker_writer(w, "c", NULL, NULL, NULL, &wid));
    rlog l;
    rlog_init(&l);
    mcl_broker_reader_options lossless = {.policy = MCL_BROKER_BLOCK};
    MCLT_OK(mcl_broker_subscribe(rd, "c", &lossless, on_frame, &l, &sub));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000));
    CU_ASSERT_EQUAL(put_n(w, wid, 20, 5000), 20);
    stats_box sb = {.lock = PTHREAD_MUTEX_INITIALIZER};
    MCLT_OK(mcl_broker_subscribe(mon, MCL_BROKER_STATS_CHANNEL, NULL, on_stats_frame, &sb, &ssub));
    CU_ASSERT(mclt_wait_until(stats_seen, &sb, 5000));
    mcl_broker_client_free(mon);
    mcl_broker_client_free(rd);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

typedef struct raw_box {
    atomic_int n;
    char topic[64];
} raw_box;

static void
on_raw(const mcl_raw_msg *m, void *user)
{
    raw_box *rb = user;
    snprintf(rb->topic, sizeof(rb->topic), "%s", m->topic);
    atomic_fetch_add(&rb->n, 1);
}

static bool
raw_has(void *arg)
{
    return atomic_load(&((raw_box *)arg)->n) >= 50;
}

// Bridges: a channel republished on an in-process group, and a group feeding a channel; a
// channel bridged out and in on one group does not go round.
static void
test_bridges(void)
{
    mcl_broker *b = broker(NULL);
    char out_url[64], in_url[64];
    snprintf(out_url, sizeof(out_url), "inproc://broker-out-%d", (int)getpid());
    snprintf(in_url, sizeof(in_url), "inproc://broker-in-%d", (int)getpid());
    mcl_connection *cn;
    MCLT_OK(mcl_connection_parse(&cn, out_url, NULL, 0));
    mcl_raw_listener *l;
    MCLT_OK(mcl_raw_listener_open(&l, cn, NULL, 0));
    mcl_connection_free(cn);
    raw_box rb = {0};
    MCLT_OK(mcl_raw_listener_subscribe(l, on_raw, &rb));
    MCLT_OK(mcl_raw_listener_start(l));
    MCLT_OK(mcl_broker_bridge_out(b, "out", out_url));
    mcl_broker_client *w = client(b, "writer");
    uint32_t wid;
    MCLT_OK(mcl_broker_writer(w, "out", NULL, NULL, NULL, &wid));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000)); // the bridge reads
    CU_ASSERT_EQUAL(put_n(w, wid, 50, 5000), 50);
    CU_ASSERT(mclt_wait_until(raw_has, &rb, 5000));
    CU_ASSERT_STRING_EQUAL(rb.topic, "out");
    // In: what is published on the group reaches the channel's readers.
    MCLT_OK(mcl_broker_bridge_in(b, in_url, "fed"));
    rlog fl;
    rlog_init(&fl);
    uint32_t sub;
    mcl_broker_reader_options big = {.buffer = 1000};
    MCLT_OK(mcl_broker_subscribe(w, "fed", &big, on_frame, &fl, &sub));
    MCLT_OK(mcl_connection_parse(&cn, in_url, NULL, 0));
    mcl_raw_broadcaster *pub;
    MCLT_OK(mcl_raw_broadcaster_open(&pub, cn, "t"));
    mcl_connection_free(cn);
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_raw_broadcaster_publish(pub, NULL, "hello", 5));
    want wf = {&fl, 100};
    CU_ASSERT(mclt_wait_until(has_n, &wf, 5000));
    pthread_mutex_lock(&fl.lock);
    CU_ASSERT_EQUAL(fl.n, 100);
    CU_ASSERT_EQUAL(fl.bytes, 500);
    pthread_mutex_unlock(&fl.lock);
    // Out and in on one group: the broker's own frames come back and are ignored.
    MCLT_OK(mcl_broker_bridge_in(b, out_url, "out"));
    rlog ol;
    rlog_init(&ol);
    MCLT_OK(mcl_broker_subscribe(w, "out", &big, on_frame, &ol, &sub));
    CU_ASSERT_EQUAL(put_n(w, wid, 10, 5000), 10);
    want wo = {&ol, 10};
    CU_ASSERT(mclt_wait_until(has_n, &wo, 5000));
    offered_arg more = {w, sub, 11, "out"};
    CU_ASSERT(!mclt_wait_until(offered_more, &more, 300)); // none of them came round again
    mcl_raw_broadcaster_free(pub);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
    mcl_raw_listener_free(l);
}

// A reader's buffer is bounded in bytes too: a stalled ring reader never holds more.
static void
test_reader_bytes_bound(void)
{
    mcl_broker_options bo = {.max_reader_bytes = 10000, .max_window = 2};
    mcl_broker *b = broker(&bo);
    mcl_broker_client *w = client(b, "writer"), *slow = client(b, "slow");
    MCLT_OK(mcl_broker_create(w, "big", NULL));
    uint32_t wid, sub;
    MCLT_OK(mcl_broker_writer(w, "big", NULL, NULL, NULL, &wid));
    rlog sl;
    rlog_init(&sl);
    sl.stall = true;
    mcl_broker_reader_options ro = {.buffer = 1000};
    MCLT_OK(mcl_broker_subscribe(slow, "big", &ro, on_frame, &sl, &sub));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000));
    uint8_t frame[1000] = {0};
    for (int i = 0; i < 100; i++)
        MCLT_OK(mcl_broker_put_wait(w, wid, frame, sizeof(frame), 5000));
    offered_arg oa = {w, sub, 100, "big"};
    CU_ASSERT(mclt_wait_until(offered_all, &oa, 5000));
    uint64_t depth = 0, dropped = 0;
    CU_ASSERT(reader_stat(w, "big", sub, "depth", &depth));
    CU_ASSERT(reader_stat(w, "big", sub, "dropped", &dropped));
    CU_ASSERT(depth <= 10); // 10,000 bytes of 1000-byte frames, not 1000 frames
    CU_ASSERT(dropped >= 100 - 10 - 2 - 1);
    gate(&sl, false);
    mcl_broker_client_free(slow);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

typedef struct marks {
    atomic_int n;
    atomic_ullong seq;
} marks;

typedef struct rlog_m {
    rlog l; // first: the frames go to on_frame with it
    marks m;
} rlog_m;

static void
on_mark_m(mcl_broker_client *c, uint32_t sub, uint64_t seq, void *user)
{
    (void)c;
    (void)sub;
    rlog_m *x = user;
    atomic_store(&x->m.seq, seq);
    atomic_fetch_add(&x->m.n, 1);
}

static bool
marked(void *arg)
{
    return atomic_load(&((rlog_m *)arg)->m.n) >= 1;
}

// End-of-transfer marks pass through decimation and overrun policies, in order.
static void
test_end_of_transfer(void)
{
    mcl_broker_options bo = {.max_window = 2};
    mcl_broker *b = broker(&bo);
    mcl_broker_client *w = client(b, "writer"), *rd = client(b, "reader"),
                      *slow = client(b, "slow");
    MCLT_OK(mcl_broker_create(w, "t", NULL));
    uint32_t wid, s1, s2;
    MCLT_OK(mcl_broker_writer(w, "t", NULL, NULL, NULL, &wid));
    rlog_m dec, st;
    rlog_init(&dec.l);
    rlog_init(&st.l);
    atomic_init(&dec.m.n, 0);
    atomic_init(&st.m.n, 0);
    mcl_broker_reader_options every10 = {.every = 10, .on_end = on_mark_m};
    MCLT_OK(mcl_broker_subscribe(rd, "t", &every10, on_frame, &dec, &s1));
    st.l.stall = true;
    mcl_broker_reader_options small = {.buffer = 5, .on_end = on_mark_m};
    MCLT_OK(mcl_broker_subscribe(slow, "t", &small, on_frame, &st, &s2));
    wa on = {w, wid, true};
    CU_ASSERT_FATAL(mclt_wait_until(writer_is, &on, 3000));
    CU_ASSERT_EQUAL(put_n(w, wid, 30, 5000), 30);
    MCLT_OK(mcl_broker_end_transfer(w, wid));
    CU_ASSERT(mclt_wait_until(marked, &dec, 5000));
    CU_ASSERT_EQUAL(rlog_n(&dec.l), 3); // frames 1, 11, 21: and the mark after them
    CU_ASSERT_EQUAL(atomic_load(&dec.m.seq), 30);
    // The stalled ring reader dropped data, but not the mark.
    offered_arg oa = {w, s2, 30, "t"};
    CU_ASSERT(mclt_wait_until(offered_all, &oa, 5000));
    gate(&st.l, false);
    CU_ASSERT(mclt_wait_until(marked, &st, 5000));
    CU_ASSERT_EQUAL(atomic_load(&st.m.seq), 30);
    CU_ASSERT(rlog_n(&st.l) < 30);
    mcl_broker_client_free(slow);
    mcl_broker_client_free(rd);
    mcl_broker_client_free(w);
    mcl_broker_free(b);
}

static CU_TestInfo tests[] = {
    {"channels_and_owners", test_channels_and_owners},
    {"gating_and_delivery", test_gating_and_delivery},
    {"decimation", test_decimation},
    {"policies_with_a_stalled_reader", test_policies_with_a_stalled_reader},
    {"lifetimes_and_owners_leaving", test_lifetimes_and_owners_leaving},
    {"hostile_clients", test_hostile_clients},
    {"rpc_between_clients", test_rpc_between_clients},
    {"statistics_channel", test_statistics_channel},
    {"bridges", test_bridges},
    {"reader_bytes_bound", test_reader_bytes_bound},
    {"end_of_transfer", test_end_of_transfer},
    CU_TEST_INFO_NULL};
MCLT_SUITE("broker_core", NULL, NULL, tests);
