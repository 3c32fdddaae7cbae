// SPDX-License-Identifier: BSD-3-Clause
// Log summaries: per-topic figures of a log's records, and the report of `mcl-stat -f`.
#define _GNU_SOURCE
#include "logsum.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct logsum {
    logsum_topic *v;
    size_t n, cap;
    uint32_t *slot; // open addressing: index + 1 into v (0: empty); a power of two
    size_t nslot;
    bool sorted;
    uint64_t records, bytes, untracked;
    int64_t first_ns, last_ns;
};

static uint64_t
hash_topic(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

logsum *
logsum_new(void)
{
    logsum *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->nslot = 64;
    if ((s->slot = calloc(s->nslot, sizeof(*s->slot))) == NULL) {
        free(s);
        return NULL;
    }
    s->sorted = true;
    return s;
}

void
logsum_free(logsum *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].topic);
    free(s->v);
    free(s->slot);
    free(s);
}

// Puts every entry into the slots (all empty).
static void
reindex(logsum *s)
{
    for (size_t i = 0; i < s->n; i++) {
        size_t j = hash_topic(s->v[i].topic, strlen(s->v[i].topic)) & (s->nslot - 1);
        while (s->slot[j] != 0)
            j = (j + 1) & (s->nslot - 1);
        s->slot[j] = (uint32_t)(i + 1);
    }
}

// Doubles the slots; false when out of memory (the old ones stay).
static bool
grow_slots(logsum *s)
{
    uint32_t *ns = calloc(s->nslot * 2, sizeof(*ns));
    if (ns == NULL)
        return false;
    free(s->slot);
    s->slot = ns;
    s->nslot *= 2;
    reindex(s);
    return true;
}

// The entry of topic t[0..n) (created when new); NULL when out of memory or over the cap
// (*full says which).
static logsum_topic *
find(logsum *s, const char *t, size_t n, bool *full)
{
    *full = false;
    size_t j = hash_topic(t, n) & (s->nslot - 1);
    while (s->slot[j] != 0) {
        logsum_topic *e = &s->v[s->slot[j] - 1];
        if (strncmp(e->topic, t, n) == 0 && e->topic[n] == '\0')
            return e;
        j = (j + 1) & (s->nslot - 1);
    }
    if (s->n >= LOGSUM_MAX_TOPICS) {
        *full = true;
        return NULL;
    }
    if ((s->n + 1) * 2 > s->nslot) { // at most half full: probes stay short
        if (!grow_slots(s))
            return NULL;
        j = hash_topic(t, n) & (s->nslot - 1);
        while (s->slot[j] != 0)
            j = (j + 1) & (s->nslot - 1);
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        logsum_topic *nv = realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL)
            return NULL;
        s->v = nv;
        s->cap = nc;
    }
    char *copy = strndup(t, n);
    if (copy == NULL)
        return NULL;
    logsum_topic *e = &s->v[s->n];
    *e = (logsum_topic){.topic = copy, .size_min = UINT64_MAX};
    s->slot[j] = (uint32_t)(++s->n);
    s->sorted = false;
    return e;
}

static void
note_type(logsum_topic *e, const char *type)
{
    if (type[0] == '\0') {
        e->untyped = true;
        return;
    }
    if (!e->typed) {
        snprintf(e->type, sizeof(e->type), "%s", type);
        e->typed = true;
    } else if (strcmp(e->type, type) != 0) {
        snprintf(e->type, sizeof(e->type), "(mixed)");
    }
}

static void
account(logsum *s, int64_t first, int64_t last)
{
    if (s->records == 0 || first < s->first_ns)
        s->first_ns = first;
    if (s->records == 0 || last > s->last_ns)
        s->last_ns = last;
}

bool
logsum_add(logsum *s, const mcl_raw_msg *m)
{
    bool full;
    logsum_topic *e = find(s, m->topic, m->topic_len, &full);
    if (e == NULL && !full)
        return false;
    account(s, m->recv_realtime_ns, m->recv_realtime_ns);
    s->records++;
    s->bytes += m->len;
    if (e == NULL) {
        s->untracked++;
        return true;
    }
    if (e->count == 0 || m->recv_realtime_ns < e->first_ns)
        e->first_ns = m->recv_realtime_ns;
    if (e->count == 0 || m->recv_realtime_ns > e->last_ns)
        e->last_ns = m->recv_realtime_ns;
    e->count++;
    e->bytes += m->len;
    if (m->len < e->size_min)
        e->size_min = m->len;
    if (m->len > e->size_max)
        e->size_max = m->len;
    char type[64];
    logsum_peek_type(m->payload, m->len, type, sizeof(type));
    note_type(e, type);
    return true;
}

bool
logsum_merge(logsum *a, const logsum *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const logsum_topic *f = &b->v[i];
        bool full;
        logsum_topic *e = find(a, f->topic, strlen(f->topic), &full);
        if (e == NULL && !full)
            return false;
        if (e == NULL) {
            a->untracked += f->count;
            continue;
        }
        if (e->count == 0 || f->first_ns < e->first_ns)
            e->first_ns = f->first_ns;
        if (e->count == 0 || f->last_ns > e->last_ns)
            e->last_ns = f->last_ns;
        e->count += f->count;
        e->bytes += f->bytes;
        if (f->size_min < e->size_min)
            e->size_min = f->size_min;
        if (f->size_max > e->size_max)
            e->size_max = f->size_max;
        if (f->typed)
            note_type(e, f->type);
        if (f->untyped)
            e->untyped = true;
    }
    if (b->records > 0)
        account(a, b->first_ns, b->last_ns);
    a->records += b->records;
    a->bytes += b->bytes;
    a->untracked += b->untracked;
    return true;
}

uint64_t
logsum_records(const logsum *s)
{
    return s->records;
}

uint64_t
logsum_bytes(const logsum *s)
{
    return s->bytes;
}

uint64_t
logsum_untracked(const logsum *s)
{
    return s->untracked;
}

bool
logsum_span(const logsum *s, int64_t *first_ns, int64_t *last_ns)
{
    *first_ns = s->first_ns;
    *last_ns = s->last_ns;
    return s->records > 0;
}

static int
cmp_topic(const void *a, const void *b)
{
    return strcmp(((const logsum_topic *)a)->topic, ((const logsum_topic *)b)->topic);
}

const logsum_topic *
logsum_topics(logsum *s, size_t *n)
{
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof(*s->v), cmp_topic);
        memset(s->slot, 0, s->nslot * sizeof(*s->slot)); // the entries moved
        reindex(s);
        s->sorted = true;
    }
    *n = s->n;
    return s->v;
}

// --- the type of a typed message -----------------------------------------------------------

void
logsum_peek_type(const void *payload, size_t n, char *out, size_t outsz)
{
    (void)mcl_raw_type_name(payload, n, out, outsz); // (the library's bounded look)
}

// --- text ------------------------------------------------------------------------------------

size_t
logsum_utf8_seq(const uint8_t *p, size_t n)
{
    uint32_t cp;
    size_t k = tool_utf8_len(p, n, &cp);
    return k >= 2 && !(cp >= 0x80 && cp < 0xa0) ? k : 0; // (multi-byte only, no C1 controls)
}

size_t
logsum_safe_text(char *out, const char *src, size_t n, size_t cols, size_t pad, bool utf8)
{
    const uint8_t *p = (const uint8_t *)src;
    size_t o = 0, w = 0, i = 0;
    while (i < n && w < cols) {
        size_t k = p[i] >= 0x20 && p[i] < 0x7f ? 1 : (utf8 && p[i] >= 0x80 ? logsum_utf8_seq(p + i, n - i) : 0);
        // The last column of a cut text shows '~'.
        bool more = i + (k ? k : 1) < n;
        if (w == cols - 1 && more) {
            out[o++] = '~';
            w++;
            i = n;
            break;
        }
        if (k == 0) {
            out[o++] = '?';
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
        w++;
    }
    while (w < pad) {
        out[o++] = ' ';
        w++;
    }
    out[o] = '\0';
    return w;
}

// --- the per-topic table ---------------------------------------------------------------------

static void
print_cell(FILE *o, const char *s, size_t cols)
{
    char buf[4 * 64 + 64 + 1];
    if (cols > 64)
        cols = 64;
    logsum_safe_text(buf, s, strlen(s), cols, cols, false);
    fputs(buf, o);
}

void
logsum_print_topics(logsum *s, FILE *o)
{
    size_t n;
    const logsum_topic *t = logsum_topics(s, &n);
    int64_t first, last;
    double dur = logsum_span(s, &first, &last) ? (double)(last - first) / 1e9 : 0;
    size_t tw = 5, yw = 4;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(t[i].topic), y = strlen(t[i].type);
        tw = l > tw ? l : tw;
        yw = y > yw ? y : yw;
    }
    tw = tw > 40 ? 40 : tw;
    yw = yw > 20 ? 20 : yw;
    print_cell(o, "TOPIC", tw);
    fprintf(o, " %9s %10s  ", "COUNT", "HZ");
    print_cell(o, "TYPE", yw);
    fprintf(o, " %7s %9s %7s\n", "MIN", "MEAN", "MAX"); // payload sizes in bytes
    for (size_t i = 0; i < n; i++) {
        print_cell(o, t[i].topic[0] ? t[i].topic : "(none)", tw);
        char rate[32];
        if (dur > 0)
            snprintf(rate, sizeof(rate), "%.2f", (double)t[i].count / dur);
        else
            snprintf(rate, sizeof(rate), "-");
        fprintf(o, " %9" PRIu64 " %10s  ", t[i].count, rate);
        print_cell(o, t[i].type[0] ? t[i].type : "-", yw);
        fprintf(o, " %7" PRIu64 " %9.1f %7" PRIu64 "\n", t[i].count ? t[i].size_min : 0,
                t[i].count ? (double)t[i].bytes / (double)t[i].count : 0.0, t[i].size_max);
    }
    if (s->untracked > 0)
        fprintf(o, "(%" PRIu64 " records on topics beyond the first %d not shown)\n", s->untracked,
                LOGSUM_MAX_TOPICS);
}

// --- the report of mcl-stat -f ---------------------------------------------------------------

typedef struct part {
    char *path;
    bool opened;
    char err[128];
    uint64_t records, damaged, damaged_bytes, size, tail;
    int64_t first_ns, last_ns;
} part;

typedef struct parts {
    part *v;
    size_t n;
} parts;

static bool
add_part(parts *ps, const char *path)
{
    part *nv = realloc(ps->v, (ps->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return false;
    ps->v = nv;
    ps->v[ps->n] = (part){.path = strdup(path)};
    if (ps->v[ps->n].path == NULL)
        return false;
    ps->n++;
    return true;
}

static bool
regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// The files mcl_log_reader_open() reads for path: the file itself, the *.mcllog and *.log
// files of a directory, or the parts PATH_000.EXT, PATH_001.EXT, ... of a split series.
// False when out of memory; adds nothing when path names none of these.
static bool
expand(parts *ps, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return add_part(ps, path);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d == NULL)
            return true;
        char **names = NULL;
        size_t n = 0;
        bool ok = true;
        for (struct dirent *e = readdir(d); e != NULL && ok; e = readdir(d)) {
            size_t l = strlen(e->d_name);
            if (!((l > 7 && strcmp(e->d_name + l - 7, ".mcllog") == 0) ||
                  (l > 4 && strcmp(e->d_name + l - 4, ".log") == 0)))
                continue;
            char *full;
            if (asprintf(&full, "%s/%s", path, e->d_name) < 0) {
                ok = false;
                break;
            }
            struct stat est; // only regular files (not links, FIFOs, sockets or directories)
            if (lstat(full, &est) != 0 || !S_ISREG(est.st_mode)) {
                free(full);
                continue;
            }
            char **nn = realloc(names, (n + 1) * sizeof(*nn));
            if (nn == NULL) {
                free(full);
                ok = false;
                break;
            }
            names = nn;
            names[n++] = full;
        }
        closedir(d);
        if (names != NULL)
            qsort(names, n, sizeof(*names), cmp_str);
        for (size_t i = 0; i < n; i++) {
            ok = ok && add_part(ps, names[i]);
            free(names[i]);
        }
        free(names);
        return ok;
    }
    static const char *const exts[] = {"mcllog", "log"};
    for (int k = 0; k < 2; k++) {
        for (unsigned i = 0;; i++) {
            char *name;
            if (asprintf(&name, "%s_%03u.%s", path, i, exts[k]) < 0)
                return false;
            bool there = regular(name);
            bool ok = !there || add_part(ps, name);
            free(name);
            if (!ok)
                return false;
            if (!there)
                break;
        }
        if (ps->n > 0)
            return true;
    }
    return true;
}

static void
print_safe_line(FILE *o, const char *label, const char *s)
{
    size_t n = strlen(s);
    char *buf = malloc(4 * n + 1);
    if (buf == NULL)
        return;
    logsum_safe_text(buf, s, n, n, 0, true);
    fprintf(o, "%s%s\n", label, buf);
    free(buf);
}

static void
print_time_line(FILE *o, const char *label, bool have, int64_t t)
{
    char buf[64] = "-";
    if (have)
        tool_format_time(t, buf, sizeof(buf));
    fprintf(o, "%s%s\n", label, buf);
}

static void
human_bytes(char *buf, size_t len, uint64_t b)
{
    if (b < 10000)
        snprintf(buf, len, "%" PRIu64 " B", b);
    else if (b < 10000000)
        snprintf(buf, len, "%.1f kB", (double)b / 1e3);
    else if (b < 10000000000ull)
        snprintf(buf, len, "%.1f MB", (double)b / 1e6);
    else
        snprintf(buf, len, "%.1f GB", (double)b / 1e9);
}

// Reads one part (topic filter applied) into sum.
static int
read_part(const char *prog, part *p, char **topics, size_t ntopics, logsum *sum)
{
    mcl_log_reader_options ro = {.topics = (const char *const *)topics, .ntopics = ntopics};
    mcl_log_reader *r;
    const char *path = p->path;
    struct stat st;
    if (stat(path, &st) == 0)
        p->size = (uint64_t)st.st_size;
    mcl_err rv = mcl_log_reader_open(&r, &path, 1, &ro);
    if (rv != MCL_OK) {
        snprintf(p->err, sizeof(p->err), "%s", rv == MCL_EPROTO ? "not an mcl or Python MCL log" : mcl_strerror(rv));
        return EXIT_OK;
    }
    p->opened = true;
    mcl_log_reader_set_stop(r, tool_reader_stop, NULL);
    const mcl_raw_msg *m;
    while (!tool_stop && (rv = mcl_log_reader_next(r, &m)) == MCL_OK) {
        if (!logsum_add(sum, m)) {
            mcl_log_reader_close(r);
            tool_err(prog, "out of memory");
            return EXIT_RUNTIME;
        }
        if (p->records == 0 || m->recv_realtime_ns < p->first_ns)
            p->first_ns = m->recv_realtime_ns;
        if (p->records == 0 || m->recv_realtime_ns > p->last_ns)
            p->last_ns = m->recv_realtime_ns;
        p->records++;
    }
    p->damaged = mcl_log_reader_corrupt(r, &p->damaged_bytes);
    p->tail = mcl_log_reader_tail(r);
    mcl_log_reader_close(r);
    if (rv != MCL_OK && rv != MCL_ENOENT && !(rv == MCL_EINTR && tool_stop)) {
        tool_err(prog, "%s: %s", path, mcl_strerror(rv));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

// A remote log: one stream of records, no parts.
static int
read_remote(const char *prog, const char *loc, char **topics, size_t ntopics, logsum *sum,
            uint64_t *damaged)
{
    tool_log_options lo = {.topics = topics, .ntopics = ntopics};
    tool_log *l;
    int status = tool_log_open(prog, &l, &loc, 1, &lo);
    if (status != EXIT_OK)
        return status;
    const mcl_raw_msg *m;
    mcl_err rv;
    while (!tool_stop && (rv = tool_log_next(l, &m, 10000)) == MCL_OK)
        if (!logsum_add(sum, m)) {
            tool_err(prog, "out of memory");
            status = EXIT_RUNTIME;
            break;
        }
    if (status == EXIT_OK && !tool_stop && rv != MCL_ENOENT) {
        tool_err(prog, "%s: %s", loc, rv == MCL_ETIMEDOUT ? "the server stopped answering"
                                                            : tool_log_error(l));
        status = EXIT_RUNTIME;
    }
    *damaged = tool_log_corrupt(l, NULL);
    tool_log_close(l);
    return status;
}

int
logsum_report(const char *prog, const char *const *paths, int npaths, char **topics,
              size_t ntopics, FILE *o)
{
    logsum *sum = logsum_new();
    parts ps = {0};
    int status = EXIT_OK;
    uint64_t damaged = 0, damaged_bytes = 0, tail = 0;
    bool remote = npaths == 1 && tool_log_is_remote(paths[0]);
    if (sum == NULL) {
        tool_err(prog, "out of memory");
        return EXIT_RUNTIME;
    }
    if (remote) {
        status = read_remote(prog, paths[0], topics, ntopics, sum, &damaged);
    } else {
        for (int i = 0; i < npaths && status == EXIT_OK; i++) {
            if (tool_log_is_remote(paths[i])) {
                tool_err(prog, "a remote log is read alone (not with other logs)");
                status = EXIT_USAGE;
            }
            size_t before = ps.n;
            if (status == EXIT_OK && !expand(&ps, paths[i])) {
                tool_err(prog, "out of memory");
                status = EXIT_RUNTIME;
            } else if (status == EXIT_OK && ps.n == before) {
                tool_err(prog, "%s: no such log, split series or directory", paths[i]);
                status = EXIT_USAGE;
            }
        }
        size_t opened = 0;
        for (size_t i = 0; i < ps.n && status == EXIT_OK && !tool_stop; i++) {
            status = read_part(prog, &ps.v[i], topics, ntopics, sum);
            opened += ps.v[i].opened;
            damaged += ps.v[i].damaged;
            damaged_bytes += ps.v[i].damaged_bytes;
            tail += ps.v[i].tail;
        }
        if (status == EXIT_OK && opened == 0 && ps.n > 0) {
            tool_err(prog, "%s: %s", ps.v[0].path, ps.v[0].err);
            status = EXIT_USAGE;
        }
    }
    if (status == EXIT_OK) {
        char b1[32];
        for (int i = 0; i < npaths; i++)
            print_safe_line(o, i == 0 ? "path:       " : "            ", paths[i]);
        if (!remote) {
            fprintf(o, "parts:      %zu\n", ps.n);
            for (size_t i = 0; i < ps.n; i++) {
                const part *p = &ps.v[i];
                print_safe_line(o, "  ", p->path);
                if (!p->opened) {
                    fprintf(o, "    %s\n", p->err);
                    continue;
                }
                human_bytes(b1, sizeof(b1), p->size);
                fprintf(o, "    %" PRIu64 " records, %s", p->records, b1);
                if (p->damaged > 0)
                    fprintf(o, ", %" PRIu64 " damaged", p->damaged);
                if (p->records > 0) {
                    char t1[64], t2[64];
                    tool_format_time(p->first_ns, t1, sizeof(t1));
                    tool_format_time(p->last_ns, t2, sizeof(t2));
                    fprintf(o, ", %s .. %s", t1, t2);
                }
                fputc('\n', o);
            }
        }
        int64_t first, last;
        bool have = logsum_span(sum, &first, &last);
        fprintf(o, "duration:   %.3f s\n", have ? (double)(last - first) / 1e9 : 0.0);
        print_time_line(o, "start:      ", have, first);
        print_time_line(o, "end:        ", have, last);
        human_bytes(b1, sizeof(b1), logsum_bytes(sum));
        fprintf(o, "messages:   %" PRIu64 " (%s of payload)\n", logsum_records(sum), b1);
        fprintf(o, "damaged:    %" PRIu64 " records", damaged);
        if (damaged_bytes > 0)
            fprintf(o, " (%" PRIu64 " bytes skipped)", damaged_bytes);
        if (tail > 0) // (docs/log-format.md: what is counted)
            fprintf(o, "; the last %" PRIu64 " bytes are not a whole record (one still being "
                       "written, or a torn end)", tail);
        fputc('\n', o);
        size_t nt;
        logsum_topics(sum, &nt);
        fprintf(o, "topics:     %zu\n", nt);
        if (nt > 0)
            logsum_print_topics(sum, o);
        if (fflush(o) != 0 || ferror(o)) {
            tool_err(prog, "cannot write the output");
            status = EXIT_RUNTIME;
        }
    }
    for (size_t i = 0; i < ps.n; i++)
        free(ps.v[i].path);
    free(ps.v);
    logsum_free(sum);
    return status;
}
