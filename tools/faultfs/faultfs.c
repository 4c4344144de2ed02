// faultfs: a FUSE file system that mirrors a directory and injects latency and errors
// into chosen operations on chosen paths, for tests and benchmarks of swift-laio.
//
//   faultfs SOURCE MOUNTPOINT [-f] [-s] [-d] [-o OPTION[,OPTION...]]
//           [--rules FILE] [--rule 'LINE']
//
// Everything a program does under MOUNTPOINT is done on SOURCE (a passthrough over the
// low-level libfuse3 API, one O_PATH descriptor per inode the kernel knows). Rules say
// which requests wait and which fail; they are set at mount time and changed while mounted
// by writing lines into MOUNTPOINT/.faultfs-control; MOUNTPOINT/.faultfs-stats counts the
// requests. tools/faultfs/README.md is the manual: rule syntax, options, thread model.
//
// State: there is no global mutable variable. All state lives in one `struct fs` handed
// to libfuse as the session's user data: the inode table (under nodes_lock), the rules
// (under the rwlock rules_lock) and the statistics (atomic counters). The only other
// mutable state is each thread's random-number generator (thread_local, for delay
// distributions and rule probabilities).
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------
// Operations. The names are the FUSE request names, which are what a rule says; the
// README says which system calls send which request.

#define FAULTFS_OPS(X)                                                                 \
    X(LOOKUP, "lookup") X(GETATTR, "getattr") X(SETATTR, "setattr")                     \
    X(READLINK, "readlink") X(MKNOD, "mknod") X(MKDIR, "mkdir") X(UNLINK, "unlink")     \
    X(RMDIR, "rmdir") X(SYMLINK, "symlink") X(RENAME, "rename") X(LINK, "link")         \
    X(OPEN, "open") X(CREATE, "create") X(READ, "read") X(WRITE, "write")               \
    X(FLUSH, "flush") X(RELEASE, "release") X(FSYNC, "fsync")                           \
    X(FALLOCATE, "fallocate") X(OPENDIR, "opendir") X(READDIR, "readdir")               \
    X(RELEASEDIR, "releasedir") X(FSYNCDIR, "fsyncdir") X(STATFS, "statfs")

enum op {
#define X(id, name) OP_##id,
    FAULTFS_OPS(X)
#undef X
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
#define X(id, name) name,
    FAULTFS_OPS(X)
#undef X
};

#define OP_BIT(op) (UINT64_C(1) << (op))
#define ALL_OPS (OP_BIT(OP_COUNT) - 1)

_Static_assert(OP_COUNT < 64, "operation masks are 64-bit");

// ---------------------------------------------------------------------------------------
// Rules.

enum delay_kind { DELAY_NONE, DELAY_FIXED, DELAY_UNIFORM, DELAY_EXP };

struct rule {
    uint64_t ops;                 // mask of OP_BIT
    char *pattern;                // fnmatch(3) pattern, always starting with '/'
    enum delay_kind delay_kind;
    int64_t delay_a, delay_b;     // ns: fixed value; uniform min and max; exp mean (a)
    int error;                    // errno to answer with, 0 for none
    bool hold;                    // wait, deaf to interrupts, until a 'release' command
    double prob;                  // chance that the rule applies to a matching request
    int64_t count;                // how many times it may apply; -1 = without limit
    atomic_int_fast64_t left;     // applications left when count >= 0
    atomic_uint_fast64_t hits;    // how many times it applied
};

struct rules {
    struct rule **v;
    size_t n, cap;
};

// ---------------------------------------------------------------------------------------
// Inodes. Each inode the kernel has been told about is a node holding an O_PATH
// descriptor of the source file; its FUSE inode number is the node's address (the root is
// FUSE_ROOT_ID). Nodes are found again by (st_dev, st_ino) so that one source file is
// one inode under the mount, and freed when the kernel forgets its last lookup.

struct node {
    struct node *next;            // hash chain
    dev_t dev;
    ino_t ino;
    int fd;                       // O_PATH descriptor of the source file
    uint64_t nlookup;             // lookups the kernel holds (under nodes_lock)
};

// The two files of the mount root that are not in the source. They are not listed by
// readdir (servers that list directories see the source as it is) but can be opened.
#define CONTROL_NAME ".faultfs-control"
#define STATS_NAME ".faultfs-stats"
// libfuse's worker threads at most, unless -o max_threads says otherwise (a string: it
// goes into an option).
#define FAULTFS_MAX_THREADS "4096"
#define CONTROL_INO ((fuse_ino_t)2)
#define STATS_INO ((fuse_ino_t)3)

enum cache_mode { CACHE_NONE, CACHE_OPEN, CACHE_KEEP };
static const char *const cache_names[] = {"none", "open", "keep"};

struct op_stats {
    atomic_uint_fast64_t calls, delayed, failed;
};

struct fs {
    // Fixed once the session starts.
    char *source;                 // realpath of SOURCE
    size_t source_len;            // 0 when SOURCE is "/", so that paths keep their '/'
    struct node root;
    double entry_timeout, attr_timeout, negative_timeout;
    enum cache_mode cache;
    unsigned max_background, congestion_threshold;
    struct timespec started;
    uid_t uid;
    gid_t gid;

    pthread_mutex_t nodes_lock;
    struct node **buckets;
    size_t nbuckets, nnodes;

    // The rules. rule_ops is the union of their operation masks, kept so that a request
    // no rule names costs one atomic load and no lock.
    pthread_rwlock_t rules_lock;
    struct rules rules;
    char last_error[512];
    _Atomic uint64_t rule_ops;

    struct op_stats stats[OP_COUNT];

    // Held requests: a 'release' command bumps the generation, and every request held
    // before it goes on. `holding` counts the requests held now, `held_interrupted` those
    // whose caller was interrupted while held (counted once per request).
    atomic_uint_fast64_t release_generation, holding, held_interrupted;
    struct fuse_session *_Atomic session;  // set once the session exists; ends holds at exit
};

static struct fs *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

// ---------------------------------------------------------------------------------------
// Small helpers.

// A per-thread generator (splitmix64), seeded from the clock and the thread id the first
// time a thread draws: delays and probabilities need no reproducibility across runs, and
// a shared generator would need a lock.
static thread_local uint64_t rng_state;

static uint64_t rng_next(void) {
    if (rng_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                    ((uint64_t)syscall(SYS_gettid) << 32) ^ UINT64_C(0x9E3779B97F4A7C15);
    }
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

// Uniform in [0, 1).
static double rng_unit(void) { return (double)(rng_next() >> 11) * 0x1p-53; }

static void proc_path(char *buf, size_t size, int fd) {
    snprintf(buf, size, "/proc/self/fd/%d", fd);
}

static int64_t ts_ns(const struct timespec *ts) {
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static struct timespec ns_ts(int64_t ns) {
    return (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
}

// ---------------------------------------------------------------------------------------
// Parsing rules.

// Durations: a decimal number and a unit, ns, us, ms or s ("50ms", "1.5s", "200us").
static bool parse_duration(const char *s, int64_t *ns) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !isfinite(v) || v < 0) return false;
    double scale;
    if (strcmp(end, "ns") == 0) scale = 1;
    else if (strcmp(end, "us") == 0) scale = 1e3;
    else if (strcmp(end, "ms") == 0) scale = 1e6;
    else if (strcmp(end, "s") == 0) scale = 1e9;
    else return false;
    double total = v * scale;
    if (total > 86400e9) return false; // a day: longer is a mistake, and must not overflow
    *ns = (int64_t)llround(total);
    return true;
}

static void format_duration(char *buf, size_t size, int64_t ns) {
    if (ns != 0 && ns % 1000000000 == 0) snprintf(buf, size, "%" PRId64 "s", ns / 1000000000);
    else if (ns != 0 && ns % 1000000 == 0) snprintf(buf, size, "%" PRId64 "ms", ns / 1000000);
    else if (ns != 0 && ns % 1000 == 0) snprintf(buf, size, "%" PRId64 "us", ns / 1000);
    else snprintf(buf, size, "%" PRId64 "ns", ns);
}

// An errno by its name (EIO, ENOSPC, any name glibc knows) or its number.
static int parse_errno(const char *s) {
    if (*s >= '0' && *s <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return (*end == 0 && v > 0 && v < 4096) ? (int)v : 0;
    }
    static const struct { const char *name; int value; } aliases[] = {
        {"EWOULDBLOCK", EWOULDBLOCK}, {"EDEADLOCK", EDEADLOCK}, {"ENOTSUP", ENOTSUP}};
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(s, aliases[i].name) == 0) return aliases[i].value;
    for (int e = 1; e < 4096; e++) {
        const char *name = strerrorname_np(e);
        if (name && strcmp(name, s) == 0) return e;
    }
    return 0;
}

static void format_errno(char *buf, size_t size, int e) {
    const char *name = strerrorname_np(e);
    if (name) snprintf(buf, size, "%s", name);
    else snprintf(buf, size, "%d", e);
}

static bool parse_ops(char *s, uint64_t *mask) {
    *mask = 0;
    if (strcmp(s, "*") == 0 || strcmp(s, "all") == 0) {
        *mask = ALL_OPS;
        return true;
    }
    char *save;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < OP_COUNT; i++)
            if (strcmp(tok, op_names[i]) == 0) found = i;
        if (found < 0) return false;
        *mask |= OP_BIT(found);
    }
    return *mask != 0;
}

static void free_rule(struct rule *r) {
    if (!r) return;
    free(r->pattern);
    free(r);
}

// Parses one rule from its whitespace-separated words:
//   OPS PATTERN [delay=D|delay=MIN..MAX|delay=exp:MEAN] [error=ERRNO] [prob=P] [count=N]
// On failure writes the reason into err and returns NULL.
static struct rule *parse_rule(char **words, size_t n, char *err, size_t errsize) {
    if (n < 2) {
        snprintf(err, errsize, "a rule needs at least OPERATIONS and PATTERN");
        return NULL;
    }
    struct rule *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    r->prob = 1;
    r->count = -1;
    char *ops = strdup(words[0]);
    bool ops_ok = ops && parse_ops(ops, &r->ops);
    free(ops);
    if (!ops_ok) {
        snprintf(err, errsize, "unknown operation in '%s' (operations: lookup, getattr, "
                               "open, read, write, ...; '*' for all)", words[0]);
        goto fail;
    }
    // Patterns match the path from the mount root with its leading '/'; one written
    // without it gets it, so "data/*" and "/data/*" are the same rule.
    const char *pat = words[1];
    if (asprintf(&r->pattern, "%s%s", pat[0] == '/' ? "" : "/", pat) < 0) {
        r->pattern = NULL;
        snprintf(err, errsize, "out of memory");
        goto fail;
    }
    for (size_t i = 2; i < n; i++) {
        char *w = words[i];
        char *eq = strchr(w, '=');
        if (!eq && strcmp(w, "hold") == 0) {
            r->hold = true;
            continue;
        }
        if (!eq) {
            snprintf(err, errsize, "'%s' is not KEY=VALUE", w);
            goto fail;
        }
        *eq = 0;
        const char *key = w, *val = eq + 1;
        if (strcmp(key, "delay") == 0) {
            const char *dots = strstr(val, "..");
            if (strncmp(val, "exp:", 4) == 0) {
                r->delay_kind = DELAY_EXP;
                if (!parse_duration(val + 4, &r->delay_a)) goto bad_delay;
            } else if (dots) {
                char lo[64];
                size_t len = (size_t)(dots - val);
                if (len >= sizeof lo) goto bad_delay;
                memcpy(lo, val, len);
                lo[len] = 0;
                r->delay_kind = DELAY_UNIFORM;
                if (!parse_duration(lo, &r->delay_a) || !parse_duration(dots + 2, &r->delay_b) ||
                    r->delay_b < r->delay_a)
                    goto bad_delay;
            } else {
                r->delay_kind = DELAY_FIXED;
                if (!parse_duration(val, &r->delay_a)) goto bad_delay;
            }
        } else if (strcmp(key, "error") == 0) {
            r->error = parse_errno(val);
            if (r->error == 0) {
                snprintf(err, errsize, "unknown errno '%s' (a name like EIO or a number)", val);
                goto fail;
            }
        } else if (strcmp(key, "prob") == 0) {
            char *end;
            r->prob = strtod(val, &end);
            if (end == val || *end || !(r->prob >= 0 && r->prob <= 1)) {
                snprintf(err, errsize, "prob must be a number from 0 to 1, not '%s'", val);
                goto fail;
            }
        } else if (strcmp(key, "count") == 0) {
            char *end;
            long long c = strtoll(val, &end, 10);
            if (end == val || *end || c < 0) {
                snprintf(err, errsize, "count must be a whole number >= 0, not '%s'", val);
                goto fail;
            }
            r->count = c;
            atomic_init(&r->left, c);
        } else {
            snprintf(err, errsize, "unknown key '%s' (delay, error, prob, count; and the word hold)", key);
            goto fail;
        }
        continue;
    bad_delay:
        snprintf(err, errsize, "bad delay '%s' (50ms, 10ms..50ms or exp:20ms; units ns us ms s)",
                 val);
        goto fail;
    }
    return r;
fail:
    free_rule(r);
    return NULL;
}

// The rule as a line that parses back to the same rule.
static void format_rule(FILE *out, const struct rule *r) {
    if (r->ops == ALL_OPS) {
        fputs("*", out);
    } else {
        const char *sep = "";
        for (int i = 0; i < OP_COUNT; i++)
            if (r->ops & OP_BIT(i)) {
                fprintf(out, "%s%s", sep, op_names[i]);
                sep = ",";
            }
    }
    fprintf(out, " %s", r->pattern);
    char a[32], b[32];
    format_duration(a, sizeof a, r->delay_a);
    format_duration(b, sizeof b, r->delay_b);
    switch (r->delay_kind) {
    case DELAY_NONE: break;
    case DELAY_FIXED: fprintf(out, " delay=%s", a); break;
    case DELAY_UNIFORM: fprintf(out, " delay=%s..%s", a, b); break;
    case DELAY_EXP: fprintf(out, " delay=exp:%s", a); break;
    }
    if (r->hold) fputs(" hold", out);
    if (r->error) {
        format_errno(a, sizeof a, r->error);
        fprintf(out, " error=%s", a);
    }
    if (r->prob < 1) fprintf(out, " prob=%g", r->prob);
    if (r->count >= 0) fprintf(out, " count=%" PRId64, r->count);
}

// One line of a batch: a rule to append, or a command.
enum command_kind { CMD_RULE, CMD_CLEAR, CMD_RESET_STATS, CMD_RELEASE };
struct command {
    enum command_kind kind;
    struct rule *rule;
};

// Parses a batch of lines (a rules file, or one write into the control file). Blank
// lines and '#' comments (also at the end of a line) are skipped. Either every line
// parses and *out holds the commands, or nothing does and err says which line is wrong.
static int parse_batch(const char *text, size_t len, struct command **out, size_t *count,
                       char *err, size_t errsize) {
    char *copy = malloc(len + 1);
    if (!copy) {
        snprintf(err, errsize, "out of memory");
        return ENOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = 0;
    struct command *cmds = NULL;
    size_t n = 0, cap = 0;
    int result = 0;
    unsigned lineno = 0;
    char *save_line;
    for (char *line = strtok_r(copy, "\n", &save_line); line;
         line = strtok_r(NULL, "\n", &save_line)) {
        lineno++;
        char *words[64];
        size_t nw = 0;
        char *save_word;
        for (char *w = strtok_r(line, " \t\r", &save_word); w;
             w = strtok_r(NULL, " \t\r", &save_word)) {
            if (w[0] == '#') break;
            if (nw == sizeof words / sizeof words[0]) {
                snprintf(err, errsize, "line %u: too many words", lineno);
                result = EINVAL;
                goto done;
            }
            words[nw++] = w;
        }
        if (nw == 0) continue;
        struct command c = {CMD_RULE, NULL};
        if (nw == 1 && strcmp(words[0], "clear") == 0) {
            c.kind = CMD_CLEAR;
        } else if (nw == 1 && strcmp(words[0], "reset-stats") == 0) {
            c.kind = CMD_RESET_STATS;
        } else if (nw == 1 && strcmp(words[0], "release") == 0) {
            c.kind = CMD_RELEASE;
        } else {
            char why[400];
            c.rule = parse_rule(words, nw, why, sizeof why);
            if (!c.rule) {
                snprintf(err, errsize, "line %u: %s", lineno, why);
                result = EINVAL;
                goto done;
            }
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct command *grown = realloc(cmds, ncap * sizeof *grown);
            if (!grown) {
                free_rule(c.rule);
                snprintf(err, errsize, "out of memory");
                result = ENOMEM;
                goto done;
            }
            cmds = grown;
            cap = ncap;
        }
        cmds[n++] = c;
    }
done:
    free(copy);
    if (result != 0) {
        for (size_t i = 0; i < n; i++) free_rule(cmds[i].rule);
        free(cmds);
        return result;
    }
    *out = cmds;
    *count = n;
    return 0;
}

static void reset_stats(struct fs *fs) {
    for (int i = 0; i < OP_COUNT; i++) {
        atomic_store(&fs->stats[i].calls, 0);
        atomic_store(&fs->stats[i].delayed, 0);
        atomic_store(&fs->stats[i].failed, 0);
    }
    atomic_store(&fs->held_interrupted, 0);
}

// Parses a batch and applies it as a whole under the write lock, so a request sees the
// rules before the batch or after it, never half of it. Returns 0 or an errno.
static int apply_batch(struct fs *fs, const char *text, size_t len) {
    struct command *cmds = NULL;
    size_t n = 0;
    char err[sizeof fs->last_error];
    int result = parse_batch(text, len, &cmds, &n, err, sizeof err);
    struct rules dropped = {0};

    pthread_rwlock_wrlock(&fs->rules_lock);
    if (result != 0) {
        snprintf(fs->last_error, sizeof fs->last_error, "%s", err);
        goto unlock;
    }
    for (size_t i = 0; i < n && result == 0; i++) {
        struct rules *rs = &fs->rules;
        switch (cmds[i].kind) {
        case CMD_CLEAR:
            // Freed after the lock is released; nothing else can see them by then.
            for (size_t j = 0; j < rs->n; j++) {
                if (dropped.n == dropped.cap) {
                    size_t ncap = dropped.cap ? dropped.cap * 2 : 16;
                    struct rule **grown = realloc(dropped.v, ncap * sizeof *grown);
                    if (!grown) { free_rule(rs->v[j]); continue; } // nobody holds it now
                    dropped.v = grown;
                    dropped.cap = ncap;
                }
                dropped.v[dropped.n++] = rs->v[j];
            }
            rs->n = 0;
            break;
        case CMD_RELEASE:
            atomic_fetch_add(&fs->release_generation, 1);
            break;
        case CMD_RESET_STATS:
            reset_stats(fs);
            for (size_t j = 0; j < rs->n; j++) atomic_store(&rs->v[j]->hits, 0);
            break;
        case CMD_RULE:
            if (rs->n == rs->cap) {
                size_t ncap = rs->cap ? rs->cap * 2 : 16;
                struct rule **grown = realloc(rs->v, ncap * sizeof *grown);
                if (!grown) {
                    snprintf(fs->last_error, sizeof fs->last_error, "out of memory");
                    result = ENOMEM;
                    break;
                }
                rs->v = grown;
                rs->cap = ncap;
            }
            rs->v[rs->n++] = cmds[i].rule;
            cmds[i].rule = NULL;
            break;
        }
    }
    uint64_t mask = 0;
    for (size_t j = 0; j < fs->rules.n; j++) mask |= fs->rules.v[j]->ops;
    atomic_store_explicit(&fs->rule_ops, mask, memory_order_release);
    if (result == 0) fs->last_error[0] = 0;
unlock:
    pthread_rwlock_unlock(&fs->rules_lock);

    if (result != 0) fprintf(stderr, "faultfs: rules not changed: %s\n", fs->last_error);
    for (size_t i = 0; i < n; i++) free_rule(cmds[i].rule);
    free(cmds);
    for (size_t j = 0; j < dropped.n; j++) free_rule(dropped.v[j]);
    free(dropped.v);
    return result;
}

// ---------------------------------------------------------------------------------------
// Injecting faults.

// The path of a node (and of `name` in it, when name is not NULL) from the mount root,
// with a leading '/'. The kernel keeps /proc/self/fd/N up to date through renames, so
// this is right even after a file moved, however it moved. Returns false when the path
// cannot be had.
static bool node_path(struct fs *fs, struct node *node, const char *name, char *buf,
                      size_t size) {
    size_t len;
    if (node == &fs->root) {
        buf[0] = '/';
        len = 1;
    } else {
        char link[64], target[PATH_MAX];
        proc_path(link, sizeof link, node->fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n < 0) return false;
        target[n] = 0;
        const char *rel = target;
        if (fs->source_len > 0) {
            if (strncmp(target, fs->source, fs->source_len) != 0 ||
                (target[fs->source_len] != '/' && target[fs->source_len] != 0))
                return false; // moved out of the source: no path under the mount
            rel = target + fs->source_len;
        }
        if (*rel == 0) rel = "/";
        len = strlen(rel);
        if (len >= size) return false;
        memcpy(buf, rel, len + 1);
    }
    if (name) {
        int n = snprintf(buf + len, size - len, "%s%s", len == 1 ? "" : "/", name);
        if (n < 0 || (size_t)n >= size - len) return false;
    } else {
        buf[len] = 0;
    }
    return true;
}

static int64_t sample_delay(const struct rule *r) {
    switch (r->delay_kind) {
    case DELAY_NONE: return 0;
    case DELAY_FIXED: return r->delay_a;
    case DELAY_UNIFORM:
        return r->delay_a + (int64_t)(rng_unit() * (double)(r->delay_b - r->delay_a + 1));
    case DELAY_EXP: return (int64_t)(-(double)r->delay_a * log(1.0 - rng_unit()));
    }
    return 0;
}

// Takes one application from a rule with a count; false when none is left.
static bool take_one(struct rule *r) {
    if (r->count < 0) return true;
    int_fast64_t left = atomic_load(&r->left);
    while (left > 0)
        if (atomic_compare_exchange_weak(&r->left, &left, left - 1)) return true;
    return false;
}

// Sleeps in this handler's thread (other threads go on serving, and sleep at the same
// time). Wakes every 100 ms to see whether the kernel interrupted the request (its
// caller got a signal or died), so that a killed caller does not hold a thread for the
// whole delay. Returns 0, or EINTR when interrupted.
static int sleep_ns(fuse_req_t req, int64_t ns) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t deadline = ts_ns(&now) + ns;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t t = ts_ns(&now);
        if (t >= deadline) return 0;
        int64_t until = deadline - t > 100000000 ? t + 100000000 : deadline;
        struct timespec ts = ns_ts(until);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        if (fuse_req_interrupted(req)) return EINTR;
    }
}

// Holds the request until the next 'release' command, ignoring the kernel's interrupts
// (the caller can then only be killed: FUSE waits for the answer of an interrupted request
// it has sent), so a test can keep a call in the kernel for as long as it needs, however
// the caller's side tries to cancel it. Looks every 10 ms; an unmount (the session
// exits) ends every hold, so the server can end.
static void hold_request(fuse_req_t req, struct fs *fs) {
    uint_fast64_t generation = atomic_load(&fs->release_generation);
    atomic_fetch_add(&fs->holding, 1);
    bool interrupted = false;
    while (atomic_load(&fs->release_generation) == generation) {
        struct fuse_session *se = atomic_load(&fs->session);
        if (se && fuse_session_exited(se)) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        if (!interrupted && fuse_req_interrupted(req)) {
            interrupted = true;
            atomic_fetch_add(&fs->held_interrupted, 1);
        }
    }
    atomic_fetch_sub(&fs->holding, 1);
}

// Called first by every handler of a mirrored file: counts the request, finds the first
// rule that matches (operation, path) and applies it: its delay first, then its error,
// which the handler answers with instead of doing the operation. Returns 0 or an errno.
static int fault(fuse_req_t req, enum op op, struct node *node, const char *name) {
    struct fs *fs = fs_of(req);
    atomic_fetch_add_explicit(&fs->stats[op].calls, 1, memory_order_relaxed);
    if (!(atomic_load_explicit(&fs->rule_ops, memory_order_acquire) & OP_BIT(op))) return 0;
    char path[PATH_MAX + NAME_MAX + 2];
    if (!node_path(fs, node, name, path, sizeof path)) return 0;

    int64_t delay = 0;
    int error = 0;
    bool hold = false;
    pthread_rwlock_rdlock(&fs->rules_lock);
    for (size_t i = 0; i < fs->rules.n; i++) {
        struct rule *r = fs->rules.v[i];
        if (!(r->ops & OP_BIT(op)) || fnmatch(r->pattern, path, 0) != 0) continue;
        if (r->prob < 1 && rng_unit() >= r->prob) continue;
        if (!take_one(r)) continue;
        atomic_fetch_add_explicit(&r->hits, 1, memory_order_relaxed);
        delay = sample_delay(r);
        error = r->error;
        hold = r->hold;
        break;
    }
    pthread_rwlock_unlock(&fs->rules_lock);

    if (delay > 0) {
        atomic_fetch_add_explicit(&fs->stats[op].delayed, 1, memory_order_relaxed);
        int e = sleep_ns(req, delay);
        if (e) return e;
    }
    if (hold) hold_request(req, fs);
    if (error) atomic_fetch_add_explicit(&fs->stats[op].failed, 1, memory_order_relaxed);
    return error;
}

// ---------------------------------------------------------------------------------------
// The inode table.

static size_t node_hash(dev_t dev, ino_t ino, size_t nbuckets) {
    uint64_t h = (uint64_t)ino * UINT64_C(0x9E3779B97F4A7C15) ^ (uint64_t)dev;
    return (size_t)(h ^ (h >> 29)) & (nbuckets - 1);
}

static void nodes_grow(struct fs *fs) {
    size_t nb = fs->nbuckets * 2;
    struct node **b = calloc(nb, sizeof *b);
    if (!b) return; // longer chains, still correct
    for (size_t i = 0; i < fs->nbuckets; i++) {
        struct node *n = fs->buckets[i];
        while (n) {
            struct node *next = n->next;
            size_t h = node_hash(n->dev, n->ino, nb);
            n->next = b[h];
            b[h] = n;
            n = next;
        }
    }
    free(fs->buckets);
    fs->buckets = b;
    fs->nbuckets = nb;
}

// The node of the source file behind fd (an O_PATH descriptor, which this takes over),
// with one more lookup counted. NULL when out of memory.
static struct node *node_get(struct fs *fs, int fd, const struct stat *st) {
    pthread_mutex_lock(&fs->nodes_lock);
    size_t h = node_hash(st->st_dev, st->st_ino, fs->nbuckets);
    struct node *n;
    for (n = fs->buckets[h]; n; n = n->next)
        if (n->dev == st->st_dev && n->ino == st->st_ino) break;
    if (n) {
        n->nlookup++;
        pthread_mutex_unlock(&fs->nodes_lock);
        close(fd);
        return n;
    }
    n = calloc(1, sizeof *n);
    if (!n) {
        pthread_mutex_unlock(&fs->nodes_lock);
        close(fd);
        return NULL;
    }
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    n->fd = fd;
    n->nlookup = 1;
    n->next = fs->buckets[h];
    fs->buckets[h] = n;
    if (++fs->nnodes > fs->nbuckets * 2) nodes_grow(fs);
    pthread_mutex_unlock(&fs->nodes_lock);
    return n;
}

static void node_forget(struct fs *fs, struct node *n, uint64_t count) {
    if (n == &fs->root) return;
    pthread_mutex_lock(&fs->nodes_lock);
    if (count < n->nlookup) {
        n->nlookup -= count;
        pthread_mutex_unlock(&fs->nodes_lock);
        return;
    }
    struct node **p = &fs->buckets[node_hash(n->dev, n->ino, fs->nbuckets)];
    while (*p != n) p = &(*p)->next;
    *p = n->next;
    fs->nnodes--;
    pthread_mutex_unlock(&fs->nodes_lock);
    close(n->fd);
    free(n);
}

static bool is_special(fuse_ino_t ino) { return ino == CONTROL_INO || ino == STATS_INO; }

static struct node *node_of(fuse_req_t req, fuse_ino_t ino) {
    if (ino == FUSE_ROOT_ID) return &fs_of(req)->root;
    return (struct node *)(uintptr_t)ino;
}

static bool is_special_name(fuse_ino_t parent, const char *name) {
    return parent == FUSE_ROOT_ID &&
           (strcmp(name, CONTROL_NAME) == 0 || strcmp(name, STATS_NAME) == 0);
}

// Looks up `name` in `parent` on the source and fills the entry for the kernel (one more
// lookup counted on the node). Returns 0 or an errno.
static int make_entry(struct fs *fs, struct node *parent, const char *name,
                      struct fuse_entry_param *e) {
    memset(e, 0, sizeof *e);
    int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno;
    if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
        int err = errno;
        close(fd);
        return err;
    }
    struct node *n = node_get(fs, fd, &e->attr);
    if (!n) return ENOMEM;
    e->ino = (fuse_ino_t)(uintptr_t)n;
    e->attr_timeout = fs->attr_timeout;
    e->entry_timeout = fs->entry_timeout;
    return 0;
}

// Replies with an entry made by make_entry; if the kernel did not take it (the request
// was interrupted), the lookup it would have held is given back.
static void reply_entry(fuse_req_t req, struct fuse_entry_param *e) {
    if (fuse_reply_entry(req, e) != 0)
        node_forget(fs_of(req), (struct node *)(uintptr_t)e->ino, 1);
}

// ---------------------------------------------------------------------------------------
// The control and statistics files.

struct snapshot {
    size_t len;
    char data[];
};

static void special_attr(struct fs *fs, fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = S_IFREG | (ino == CONTROL_INO ? 0644 : 0444);
    st->st_nlink = 1;
    st->st_uid = fs->uid;
    st->st_gid = fs->gid;
    st->st_blksize = 4096;
    st->st_atim = st->st_mtim = st->st_ctim = fs->started;
}

// Moves an open_memstream buffer into a snapshot (and frees the buffer).
static struct snapshot *snapshot_of(char *buf, size_t len) {
    struct snapshot *s = malloc(sizeof *s + len);
    if (s) {
        s->len = len;
        memcpy(s->data, buf, len);
    }
    free(buf);
    return s;
}

// The text of .faultfs-stats: one line per operation, then one per rule.
static struct snapshot *stats_text(struct fs *fs) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    for (int i = 0; i < OP_COUNT; i++)
        fprintf(f, "%s calls=%" PRIuFAST64 " delayed=%" PRIuFAST64 " failed=%" PRIuFAST64 "\n",
                op_names[i], atomic_load(&fs->stats[i].calls),
                atomic_load(&fs->stats[i].delayed), atomic_load(&fs->stats[i].failed));
    fprintf(f, "held now=%" PRIuFAST64 " interrupted=%" PRIuFAST64 "\n", atomic_load(&fs->holding),
            atomic_load(&fs->held_interrupted));
    // Formatting under the read lock writes only to memory (open_memstream).
    pthread_rwlock_rdlock(&fs->rules_lock);
    for (size_t i = 0; i < fs->rules.n; i++) {
        fprintf(f, "rule %zu hits=%" PRIuFAST64 ": ", i + 1, atomic_load(&fs->rules.v[i]->hits));
        format_rule(f, fs->rules.v[i]);
        fputc('\n', f);
    }
    pthread_rwlock_unlock(&fs->rules_lock);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return snapshot_of(buf, len);
}

// The text read from .faultfs-control: the rules in order, as lines that can be written
// back, and the reason the last refused write was refused.
static struct snapshot *control_text(struct fs *fs) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fputs("# faultfs rules, first match wins. Write lines here to change them:\n"
          "# OPS PATTERN [delay=D|MIN..MAX|exp:MEAN] [hold] [error=ERRNO] [prob=P] [count=N],\n"
          "# 'clear', 'reset-stats' or 'release'; one write(2) is one batch, applied whole.\n",
          f);
    pthread_rwlock_rdlock(&fs->rules_lock);
    if (fs->last_error[0]) fprintf(f, "# last refused write: %s\n", fs->last_error);
    for (size_t i = 0; i < fs->rules.n; i++) {
        format_rule(f, fs->rules.v[i]);
        fprintf(f, "  # hits=%" PRIuFAST64 "\n", atomic_load(&fs->rules.v[i]->hits));
    }
    pthread_rwlock_unlock(&fs->rules_lock);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return snapshot_of(buf, len);
}

static void special_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    struct fs *fs = fs_of(req);
    int acc = fi->flags & O_ACCMODE;
    if (ino == STATS_INO && acc != O_RDONLY) {
        fuse_reply_err(req, EACCES);
        return;
    }
    struct snapshot *s = NULL;
    // Read at open, so that reads at any offset see one consistent text.
    if (acc != O_WRONLY) {
        s = ino == STATS_INO ? stats_text(fs) : control_text(fs);
        if (!s) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
    }
    fi->fh = (uint64_t)(uintptr_t)s;
    // direct_io: reads are not bounded by st_size (0) and nothing is cached.
    fi->direct_io = 1;
    if (fuse_reply_open(req, fi) != 0) free(s);
}

static void special_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi) {
    struct snapshot *s = (struct snapshot *)(uintptr_t)fi->fh;
    if (!s || off < 0 || (size_t)off >= s->len) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t n = s->len - (size_t)off;
    fuse_reply_buf(req, s->data + off, n < size ? n : size);
}

// ---------------------------------------------------------------------------------------
// The file system operations. Each handler of a mirrored file calls fault() first.

static void fs_init(void *userdata, struct fuse_conn_info *conn) {
    struct fs *fs = userdata;
    // Requests the kernel sends in the background (readahead and async reads through the
    // page cache, async direct I/O) are limited to max_background in flight; the default
    // (12) would serialize concurrent cached reads behind a few delayed ones.
    conn->max_background = fs->max_background;
    conn->congestion_threshold = fs->congestion_threshold;
    // Writes go through to the source one by one, so write rules see every write.
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    // Cached data is dropped when a file's size or mtime is seen to change.
    if (fs->cache != CACHE_NONE && (conn->capable & FUSE_CAP_AUTO_INVAL_DATA))
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct fs *fs = fs_of(req);
    struct fuse_entry_param e;
    if (is_special_name(parent, name)) {
        memset(&e, 0, sizeof e);
        e.ino = strcmp(name, CONTROL_NAME) == 0 ? CONTROL_INO : STATS_INO;
        special_attr(fs, e.ino, &e.attr);
        fuse_reply_entry(req, &e);
        return;
    }
    struct node *p = node_of(req, parent);
    int err = fault(req, OP_LOOKUP, p, name);
    if (!err) err = make_entry(fs, p, name, &e);
    if (err == ENOENT && fs->negative_timeout > 0) {
        // A negative entry: the kernel remembers that the name is absent.
        memset(&e, 0, sizeof e);
        e.entry_timeout = fs->negative_timeout;
        fuse_reply_entry(req, &e);
        return;
    }
    if (err) fuse_reply_err(req, err);
    else reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
    if (!is_special(ino)) node_forget(fs_of(req), node_of(req, ino), nlookup);
    fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
    for (size_t i = 0; i < count; i++)
        if (!is_special(forgets[i].ino))
            node_forget(fs_of(req), node_of(req, forgets[i].ino), forgets[i].nlookup);
    fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    struct fs *fs = fs_of(req);
    struct stat st;
    if (is_special(ino)) {
        special_attr(fs, ino, &st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    struct node *n = node_of(req, ino);
    int err = fault(req, OP_GETATTR, n, NULL);
    if (!err && fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) err = errno;
    if (err) fuse_reply_err(req, err);
    else fuse_reply_attr(req, &st, fs->attr_timeout);
}

// chmod, chown, truncate and utimes all arrive as SETATTR.
static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
    struct fs *fs = fs_of(req);
    struct stat st;
    if (is_special(ino)) {
        // `> .faultfs-control` may truncate first; there is nothing to truncate.
        special_attr(fs, ino, &st);
        fuse_reply_attr(req, &st, 0);
        return;
    }
    struct node *n = node_of(req, ino);
    int err = fault(req, OP_SETATTR, n, NULL);
    char proc[64];
    proc_path(proc, sizeof proc, n->fd);
    if (!err && (to_set & FUSE_SET_ATTR_MODE)) {
        int r = fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(proc, attr->st_mode);
        if (r < 0) err = errno;
    }
    if (!err && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
        uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) err = errno;
    }
    if (!err && (to_set & FUSE_SET_ATTR_SIZE)) {
        int r = fi ? ftruncate((int)fi->fh, attr->st_size) : truncate(proc, attr->st_size);
        if (r < 0) err = errno;
    }
    if (!err && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME_NOW) tv[0].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_ATIME) tv[0] = attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW) tv[1].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_MTIME) tv[1] = attr->st_mtim;
        int r = fi ? futimens((int)fi->fh, tv) : utimensat(AT_FDCWD, proc, tv, 0);
        if (r < 0) err = errno;
    }
    if (!err && fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) err = errno;
    if (err) fuse_reply_err(req, err);
    else fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino) {
    struct node *n = node_of(req, ino);
    int err = fault(req, OP_READLINK, n, NULL);
    char target[PATH_MAX + 1];
    ssize_t len = 0;
    if (!err && (len = readlinkat(n->fd, "", target, sizeof target - 1)) < 0) err = errno;
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    target[len] = 0;
    fuse_reply_readlink(req, target);
}

// The tail of mkdir, mknod, symlink and link: reply with the new entry.
static void reply_new_entry(fuse_req_t req, struct node *parent, const char *name, int err) {
    struct fuse_entry_param e;
    if (!err) err = make_entry(fs_of(req), parent, name, &e);
    if (err) fuse_reply_err(req, err);
    else reply_entry(req, &e);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? EEXIST : fault(req, OP_MKDIR, p, name);
    if (!err && mkdirat(p->fd, name, mode) < 0) err = errno;
    reply_new_entry(req, p, name, err);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev) {
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? EEXIST : fault(req, OP_MKNOD, p, name);
    if (!err && mknodat(p->fd, name, mode, rdev) < 0) err = errno;
    reply_new_entry(req, p, name, err);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? EEXIST : fault(req, OP_SYMLINK, p, name);
    if (!err && symlinkat(link, p->fd, name) < 0) err = errno;
    reply_new_entry(req, p, name, err);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
    if (is_special(ino)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    struct node *n = node_of(req, ino), *p = node_of(req, newparent);
    int err = is_special_name(newparent, newname) ? EEXIST : fault(req, OP_LINK, p, newname);
    char proc[64];
    proc_path(proc, sizeof proc, n->fd);
    // Linking through /proc/self/fd needs no CAP_DAC_READ_SEARCH (AT_EMPTY_PATH would).
    if (!err && linkat(AT_FDCWD, proc, p->fd, newname, AT_SYMLINK_FOLLOW) < 0) err = errno;
    reply_new_entry(req, p, newname, err);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? EPERM : fault(req, OP_UNLINK, p, name);
    if (!err && unlinkat(p->fd, name, 0) < 0) err = errno;
    fuse_reply_err(req, err);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? ENOTDIR : fault(req, OP_RMDIR, p, name);
    if (!err && unlinkat(p->fd, name, AT_REMOVEDIR) < 0) err = errno;
    fuse_reply_err(req, err);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
    struct node *p = node_of(req, parent), *np = node_of(req, newparent);
    int err = (is_special_name(parent, name) || is_special_name(newparent, newname))
                  ? EPERM
                  : fault(req, OP_RENAME, p, name);
    if (!err && renameat2(p->fd, name, np->fd, newname, flags) < 0) err = errno;
    fuse_reply_err(req, err);
}

// Flags for opening the source file: O_NOFOLLOW would refuse the /proc magic link, and
// O_DIRECT is the kernel's business (it sends such I/O here uncached already), not a
// constraint on the buffers libfuse hands us.
static int source_flags(int flags) {
    return (flags & ~(O_NOFOLLOW | O_DIRECT | O_CREAT | O_EXCL | O_NOCTTY)) | O_CLOEXEC;
}

static void set_cache(struct fs *fs, struct fuse_file_info *fi) {
    fi->direct_io = fs->cache == CACHE_NONE;
    fi->keep_cache = fs->cache == CACHE_KEEP;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (is_special(ino)) {
        special_open(req, ino, fi);
        return;
    }
    struct node *n = node_of(req, ino);
    int err = fault(req, OP_OPEN, n, NULL);
    int fd = -1;
    if (!err) {
        char proc[64];
        proc_path(proc, sizeof proc, n->fd);
        fd = open(proc, source_flags(fi->flags));
        if (fd < 0) err = errno;
    }
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)fd;
    set_cache(fs_of(req), fi);
    if (fuse_reply_open(req, fi) != 0) close(fd);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi) {
    struct fs *fs = fs_of(req);
    struct node *p = node_of(req, parent);
    int err = is_special_name(parent, name) ? EEXIST : fault(req, OP_CREATE, p, name);
    int fd = -1;
    struct fuse_entry_param e;
    if (!err) {
        fd = openat(p->fd, name, source_flags(fi->flags) | O_CREAT | (fi->flags & O_EXCL), mode);
        if (fd < 0) err = errno;
    }
    if (!err) {
        err = make_entry(fs, p, name, &e);
        if (err) close(fd);
    }
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)fd;
    set_cache(fs, fi);
    if (fuse_reply_create(req, &e, fi) != 0) {
        close(fd);
        node_forget(fs, (struct node *)(uintptr_t)e.ino, 1);
    }
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
    if (is_special(ino)) {
        special_read(req, size, off, fi);
        return;
    }
    int err = fault(req, OP_READ, node_of(req, ino), NULL);
    char *buf = err ? NULL : malloc(size ? size : 1);
    if (!err && !buf) err = ENOMEM;
    size_t done = 0;
    while (!err && done < size) {
        ssize_t r = pread((int)fi->fh, buf + done, size - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        done += (size_t)r;
    }
    // A partial read before an error still returns what was read, as read(2) does.
    if (err && done == 0) fuse_reply_err(req, err);
    else fuse_reply_buf(req, buf, done);
    free(buf);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
    if (ino == CONTROL_INO) {
        int err = apply_batch(fs_of(req), buf, size);
        if (err) fuse_reply_err(req, err);
        else fuse_reply_write(req, size);
        return;
    }
    if (is_special(ino)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    int err = fault(req, OP_WRITE, node_of(req, ino), NULL);
    size_t done = 0;
    while (!err && done < size) {
        ssize_t r = pwrite((int)fi->fh, buf + done, size - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) err = errno;
        if (r <= 0) break;
        done += (size_t)r;
    }
    if (err && done == 0) fuse_reply_err(req, err);
    else if (done == 0) fuse_reply_err(req, EIO); // pwrite wrote nothing and said no error
    else fuse_reply_write(req, done);
}

// FLUSH is sent at every close(2) of a descriptor; close returns its error.
static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (is_special(ino)) {
        fuse_reply_err(req, 0);
        return;
    }
    int err = fault(req, OP_FLUSH, node_of(req, ino), NULL);
    // Closing a duplicate reports what a close of the source file would (NFS, say).
    if (!err) {
        int dup_fd = dup((int)fi->fh);
        if (dup_fd < 0 || close(dup_fd) < 0) err = errno;
    }
    fuse_reply_err(req, err);
}

// RELEASE comes when the last descriptor of an open file is gone; the kernel does not
// wait for it and ignores its error, so a rule can only delay it (the descriptor is
// closed in any case).
static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (is_special(ino)) {
        free((struct snapshot *)(uintptr_t)fi->fh);
        fuse_reply_err(req, 0);
        return;
    }
    (void)fault(req, OP_RELEASE, node_of(req, ino), NULL);
    close((int)fi->fh);
    fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    if (is_special(ino)) {
        fuse_reply_err(req, 0);
        return;
    }
    int err = fault(req, OP_FSYNC, node_of(req, ino), NULL);
    if (!err && (datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh)) < 0) err = errno;
    fuse_reply_err(req, err);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi) {
    if (is_special(ino)) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    int err = fault(req, OP_FALLOCATE, node_of(req, ino), NULL);
    if (!err && fallocate((int)fi->fh, mode, offset, length) < 0) err = errno;
    fuse_reply_err(req, err);
}

// An open directory: the stream, and the entry that did not fit in the last reply.
struct dir_handle {
    DIR *dir;
    off_t pos;                    // the offset the next entry is at
    struct dirent *pending;
};

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    struct node *n = node_of(req, ino);
    int err = fault(req, OP_OPENDIR, n, NULL);
    struct dir_handle *d = NULL;
    if (!err) {
        d = calloc(1, sizeof *d);
        int fd = d ? openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (!d) err = ENOMEM;
        else if (fd < 0) err = errno;
        else if (!(d->dir = fdopendir(fd))) {
            err = errno;
            close(fd);
        }
    }
    if (err) {
        free(d);
        fuse_reply_err(req, err);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0) {
        closedir(d->dir);
        free(d);
    }
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi) {
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    int err = fault(req, OP_READDIR, node_of(req, ino), NULL);
    char *buf = err ? NULL : malloc(size);
    if (!err && !buf) err = ENOMEM;
    if (err) {
        fuse_reply_err(req, err);
        return;
    }
    if (off != d->pos) {
        seekdir(d->dir, off);
        d->pending = NULL;
        d->pos = off;
    }
    size_t used = 0;
    for (;;) {
        struct dirent *de = d->pending;
        if (!de) {
            errno = 0;
            de = readdir(d->dir);
            if (!de) {
                if (errno && used == 0) err = errno;
                break;
            }
        }
        struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12};
        off_t next = telldir(d->dir);
        size_t len = fuse_add_direntry(req, buf + used, size - used, de->d_name, &st, next);
        if (len > size - used) {
            d->pending = de; // sent with the next reply
            break;
        }
        d->pending = NULL;
        d->pos = next;
        used += len;
    }
    if (err) fuse_reply_err(req, err);
    else fuse_reply_buf(req, buf, used);
    free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    (void)fault(req, OP_RELEASEDIR, node_of(req, ino), NULL);
    closedir(d->dir);
    free(d);
    fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    int err = fault(req, OP_FSYNCDIR, node_of(req, ino), NULL);
    int fd = dirfd(d->dir);
    if (!err && (datasync ? fdatasync(fd) : fsync(fd)) < 0) err = errno;
    fuse_reply_err(req, err);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino) {
    struct node *n = is_special(ino) ? node_of(req, FUSE_ROOT_ID) : node_of(req, ino);
    int err = fault(req, OP_STATFS, n, NULL);
    struct statvfs sv;
    if (!err && fstatvfs(n->fd, &sv) < 0) err = errno;
    if (err) fuse_reply_err(req, err);
    else fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mknod = fs_mknod,
    .mkdir = fs_mkdir,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .flush = fs_flush,
    .release = fs_release,
    .fsync = fs_fsync,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .releasedir = fs_releasedir,
    .fsyncdir = fs_fsyncdir,
    .statfs = fs_statfs,
    .create = fs_create,
    .fallocate = fs_fallocate,
};

// ---------------------------------------------------------------------------------------
// Command line.

struct options {
    char *source;
    double entry_timeout, attr_timeout, negative_timeout, actimeo; // < 0: not given
    char *cache;
    unsigned max_background, congestion_threshold;                 // 0: derived
};

#define OPT(t, field) {t, offsetof(struct options, field), 0}
static const struct fuse_opt option_spec[] = {
    OPT("entry_timeout=%lf", entry_timeout),
    OPT("attr_timeout=%lf", attr_timeout),
    OPT("negative_timeout=%lf", negative_timeout),
    OPT("actimeo=%lf", actimeo),
    OPT("cache=%s", cache),
    OPT("max_background=%u", max_background),
    OPT("congestion_threshold=%u", congestion_threshold),
    FUSE_OPT_END,
};

// Takes the first non-option argument as SOURCE; the second stays for libfuse (the
// mount point).
static int option_proc(void *data, const char *arg, int key, struct fuse_args *args) {
    (void)args;
    struct options *o = data;
    if (key == FUSE_OPT_KEY_NONOPT && !o->source) {
        o->source = strdup(arg); // arg does not outlive the parse
        return o->source ? 0 : -1;
    }
    return 1;
}

static void usage(const char *prog) {
    printf("usage: %s SOURCE MOUNTPOINT [options]\n"
           "\n"
           "Mirrors SOURCE on MOUNTPOINT, delaying and failing requests by rules.\n"
           "\n"
           "faultfs options:\n"
           "    --rules FILE            load rules from FILE (may repeat)\n"
           "    --rule 'LINE'           add one rule line (may repeat; in order with --rules)\n"
           "    -o cache=none|open|keep data caching: none (direct_io, the default), open\n"
           "                            (page cache, dropped at each open), keep (page\n"
           "                            cache kept across opens until the file changes)\n"
           "    -o actimeo=S            entry and attribute timeout in seconds (default 0)\n"
           "    -o entry_timeout=S      name lookups cached for S seconds (default actimeo)\n"
           "    -o attr_timeout=S       attributes cached for S seconds (default actimeo)\n"
           "    -o negative_timeout=S   absent names cached for S seconds (default 0)\n"
           "    -o max_threads=N        worker threads at most (default here " FAULTFS_MAX_THREADS ")\n"
           "    -o max_background=N     background requests in flight (default max_threads)\n"
           "    -o congestion_threshold=N  (default 3/4 of max_background)\n"
           "\n"
           "Rules: OPS PATTERN [delay=D|delay=MIN..MAX|delay=exp:MEAN] [error=ERRNO]\n"
           "       [prob=P] [count=N]; first match wins. Change them while mounted by\n"
           "       writing lines into MOUNTPOINT/" CONTROL_NAME "; counts are in\n"
           "       MOUNTPOINT/" STATS_NAME ". See tools/faultfs/README.md.\n"
           "\n",
           prog);
}

// --rule and --rules are taken out of argv before libfuse sees it (their values contain
// commas and spaces, which -o cannot carry). Returns the number of arguments left.
struct rule_source {
    bool is_file;
    const char *value;
};

static int take_rule_args(int argc, char **argv, struct rule_source *out, size_t *nout) {
    int kept = 1;
    *nout = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool file = strncmp(a, "--rules", 7) == 0 && (a[7] == 0 || a[7] == '=');
        bool line = strncmp(a, "--rule", 6) == 0 && (a[6] == 0 || a[6] == '=');
        if (!file && !line) {
            argv[kept++] = argv[i];
            continue;
        }
        size_t name_len = file ? 7 : 6;
        const char *value;
        if (a[name_len] == '=') value = a + name_len + 1;
        else if (i + 1 < argc) value = argv[++i];
        else {
            fprintf(stderr, "faultfs: %s needs a value\n", a);
            return -1;
        }
        out[(*nout)++] = (struct rule_source){file, value};
    }
    argv[kept] = NULL;
    return kept;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "re");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static int load_rules(struct fs *fs, const struct rule_source *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *text;
        if (src[i].is_file) {
            text = read_file(src[i].value, &len);
            if (!text) {
                fprintf(stderr, "faultfs: cannot read rules file %s: %s\n", src[i].value,
                        strerror(errno));
                return -1;
            }
        } else {
            text = strdup(src[i].value);
            if (!text) return -1;
            len = strlen(text);
        }
        int err = apply_batch(fs, text, len);
        free(text);
        if (err) {
            fprintf(stderr, "faultfs: in %s %s\n", src[i].is_file ? "rules file" : "rule",
                    src[i].value);
            return -1;
        }
    }
    return 0;
}

// Frees what the session held, once it has ended (the kernel forgets nothing at unmount,
// so the remaining nodes are freed here).
static void fs_free(struct fs *fs) {
    for (size_t i = 0; i < fs->nbuckets; i++) {
        struct node *n = fs->buckets[i];
        while (n) {
            struct node *next = n->next;
            close(n->fd);
            free(n);
            n = next;
        }
    }
    free(fs->buckets);
    for (size_t i = 0; i < fs->rules.n; i++) free_rule(fs->rules.v[i]);
    free(fs->rules.v);
    pthread_rwlock_destroy(&fs->rules_lock);
    pthread_mutex_destroy(&fs->nodes_lock);
    if (fs->root.fd >= 0) close(fs->root.fd);
    free(fs->source);
    free(fs);
}

int main(int argc, char **argv) {
    struct rule_source *rule_src = calloc((size_t)argc, sizeof *rule_src);
    size_t nrule_src = 0;
    if (!rule_src) return 1;
    int left = take_rule_args(argc, argv, rule_src, &nrule_src);
    if (left < 0) return 2;

    // An allocated copy: libfuse inserts and removes arguments in place.
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    for (int i = 0; i < left; i++)
        if (fuse_opt_add_arg(&args, argv[i]) != 0) return 1;
    struct options opt = {.entry_timeout = -1, .attr_timeout = -1, .negative_timeout = -1,
                          .actimeo = -1};
    // Before the caller's options, so that theirs win: a thread per concurrent request
    // up to 4096 (libfuse's default is 10), and the file system type "fuse.faultfs".
    // Threads are started only when a request finds none free, so the cap costs nothing
    // until a crowd of callers waits at once: a mount delaying every call must not make
    // its callers queue for threads (a benchmark of a thousand blocked calls would
    // measure faultfs's pool, not the program).
    if (fuse_opt_insert_arg(&args, 1, "-omax_threads=" FAULTFS_MAX_THREADS) != 0 ||
        fuse_opt_insert_arg(&args, 1, "-osubtype=faultfs") != 0 ||
        fuse_opt_parse(&args, &opt, option_spec, option_proc) != 0)
        return 2;

    struct fuse_cmdline_opts cmd;
    if (fuse_parse_cmdline(&args, &cmd) != 0) return 2;
    if (cmd.show_help) {
        usage(argv[0]);
        fuse_cmdline_help();
        fuse_lowlevel_help();
        return 0;
    }
    if (cmd.show_version) {
        printf("faultfs, libfuse %s\n", fuse_pkgversion());
        fuse_lowlevel_version();
        return 0;
    }
    if (!opt.source || !cmd.mountpoint) {
        fprintf(stderr, "usage: %s SOURCE MOUNTPOINT [options]  (--help for more)\n", argv[0]);
        return 2;
    }

    struct fs *fs = calloc(1, sizeof *fs);
    if (!fs) return 1;
    fs->source = realpath(opt.source, NULL);
    if (!fs->source) {
        fprintf(stderr, "faultfs: source %s: %s\n", opt.source, strerror(errno));
        return 1;
    }
    fs->source_len = strcmp(fs->source, "/") == 0 ? 0 : strlen(fs->source);
    fs->root.fd = open(fs->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fs->root.fd < 0) {
        fprintf(stderr, "faultfs: source %s: %s\n", fs->source, strerror(errno));
        return 1;
    }
    if (opt.actimeo >= 0) {
        if (opt.entry_timeout < 0) opt.entry_timeout = opt.actimeo;
        if (opt.attr_timeout < 0) opt.attr_timeout = opt.actimeo;
    }
    fs->entry_timeout = opt.entry_timeout < 0 ? 0 : opt.entry_timeout;
    fs->attr_timeout = opt.attr_timeout < 0 ? 0 : opt.attr_timeout;
    fs->negative_timeout = opt.negative_timeout < 0 ? 0 : opt.negative_timeout;
    fs->cache = CACHE_NONE;
    if (opt.cache) {
        int found = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(opt.cache, cache_names[i]) == 0) found = i;
        if (found < 0) {
            fprintf(stderr, "faultfs: cache=%s: use none, open or keep\n", opt.cache);
            return 2;
        }
        fs->cache = (enum cache_mode)found;
    }
    if (cmd.max_threads < 1) cmd.max_threads = 1;
    fs->max_background = opt.max_background ? opt.max_background : cmd.max_threads;
    if (fs->max_background > 65535) fs->max_background = 65535;
    fs->congestion_threshold = opt.congestion_threshold ? opt.congestion_threshold
                                                        : (fs->max_background * 3 + 3) / 4;
    clock_gettime(CLOCK_REALTIME, &fs->started);
    fs->uid = getuid();
    fs->gid = getgid();
    pthread_mutex_init(&fs->nodes_lock, NULL);
    pthread_rwlock_init(&fs->rules_lock, NULL);
    fs->nbuckets = 1024;
    fs->buckets = calloc(fs->nbuckets, sizeof *fs->buckets);
    if (!fs->buckets) return 1;
    if (load_rules(fs, rule_src, nrule_src) != 0) return 2;

    // The kernel checks permissions from the attributes we return (this process does the
    // work with its own credentials, so it must not be the one that checks), and when
    // root, other users may use the mount.
    if (fuse_opt_add_arg(&args, "-odefault_permissions") != 0) return 1;
    if (getuid() == 0 && fuse_opt_add_arg(&args, "-oallow_other") != 0) return 1;

    struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, fs);
    atomic_store(&fs->session, se);
    if (!se) return 2;
    int status = 1;
    if (fuse_set_signal_handlers(se) != 0) goto out_session;
    if (fuse_session_mount(se, cmd.mountpoint) != 0) goto out_signals;
    fprintf(stderr,
            "faultfs: %s on %s: cache=%s entry_timeout=%gs attr_timeout=%gs "
            "max_threads=%u max_background=%u, %zu rule(s)\n",
            fs->source, cmd.mountpoint, cache_names[fs->cache], fs->entry_timeout,
            fs->attr_timeout, cmd.singlethread ? 1 : cmd.max_threads, fs->max_background,
            fs->rules.n);
    fuse_daemonize(cmd.foreground);
    if (cmd.singlethread) {
        status = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        if (!cfg) goto out_unmount;
        fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd.clone_fd);
        // UINT_MAX means not given: keep libfuse's default (idle threads are kept).
        if (cmd.max_idle_threads != UINT_MAX)
            fuse_loop_cfg_set_idle_threads(cfg, cmd.max_idle_threads);
        fuse_loop_cfg_set_max_threads(cfg, cmd.max_threads);
        status = fuse_session_loop_mt(se, cfg);
        fuse_loop_cfg_destroy(cfg);
    }
out_unmount:
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out_session:
    fuse_session_destroy(se);
    free(cmd.mountpoint);
    fuse_opt_free_args(&args);
    fs_free(fs);
    free(opt.source);
    free(opt.cache);
    free(rule_src);
    return status ? 1 : 0;
}
