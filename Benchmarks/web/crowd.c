// crowd: the load generators of the web benchmark's crowd regime (Benchmarks/web/webbench.py).
//
//   crowd raw DIR K SECONDS WARMUP FILES
//       The storage's own capacity: K threads, each opening, fstat-ing, reading (st_size
//       bytes) and closing DIR/fNN (NN = 00 .. FILES-1, thread i starting at file i mod FILES
//       and going on to the next) in a loop. Counts the files done between WARMUP and
//       SECONDS after the start.
//   crowd http PORT K SECONDS PREFIX FILES
//       K keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, each asking for PREFIX NN
//       (the same order as raw) one request after another. Prints "connected N" once every
//       connection is up, and at the end the completions per 10 ms since the start.
//   crowd probe PORT INTERVAL_MS SECONDS PREFIX FILES
//       A paced probe: one request every INTERVAL_MS on a keep-alive connection that is
//       free (a new one is opened when none is, up to 16); a probe that finds all 16 busy,
//       or is not answered within a second after the end, counts as unanswered, and its
//       latency as infinite in the percentiles.
//
// Every form stops after SECONDS (or at SIGTERM or SIGINT) and prints one JSON line. All
// traffic goes to 127.0.0.1. Built by webbench.py with cc -O2 -pthread.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "crowd: %s: %s\n", what, strerror(errno));
    exit(1);
}

// A growable array of latencies (seconds).
struct samples {
    double *v;
    size_t n, cap;
};

static void add_sample(struct samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v) die("realloc");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// The p-th percentile (nearest rank) of n sorted values, in ms; -1 (printed as null)
// when it falls on an infinite (unanswered) one or there are none.
static double percentile_ms(const double *sorted, size_t n, double p) {
    if (n == 0) return -1;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    double v = sorted[rank - 1];
    return isinf(v) ? -1 : v * 1000.0;
}

static void print_ms(const char *key, double v, const char *after) {
    if (v < 0)
        printf("\"%s\": null%s", key, after);
    else
        printf("\"%s\": %.3f%s", key, v, after);
}

// ---------------------------------------------------------------------------------------
// raw: K threads on the storage

struct raw_thread {
    pthread_t id;
    const char *dir;
    unsigned files, next;
    double start, warm, end;
    long done, errors;
    struct samples latency;
};

static void *raw_run(void *arg) {
    struct raw_thread *t = arg;
    char path[4096];
    size_t size = 1 << 16;
    char *buf = malloc(size);
    if (!buf) die("malloc");
    while (!stopping) {
        double begun = now();
        if (begun >= t->end) break;
        snprintf(path, sizeof path, "%s/f%02u", t->dir, t->next % t->files);
        t->next++;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            t->errors++;
            usleep(10000);      // a missing file does not make a busy loop
            continue;
        }
        struct stat st;
        int ok = fstat(fd, &st) == 0;
        off_t got = 0;
        while (ok && got < st.st_size) {
            ssize_t r = read(fd, buf, size);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                ok = r == 0 && got == st.st_size;
                break;
            }
            got += r;
        }
        close(fd);
        double ended = now();
        if (!ok) {
            t->errors++;
            continue;
        }
        if (ended >= t->warm && ended <= t->end) t->done++;
        add_sample(&t->latency, ended - begun);
    }
    free(buf);
    return NULL;
}

static int raw_main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: crowd raw DIR K SECONDS WARMUP FILES\n");
        return 2;
    }
    unsigned k = (unsigned)atoi(argv[3]), files = (unsigned)atoi(argv[6]);
    double seconds = atof(argv[4]), warmup = atof(argv[5]);
    if (k < 1 || files < 1 || seconds <= warmup) {
        fprintf(stderr, "crowd raw: K and FILES at least 1, SECONDS more than WARMUP\n");
        return 2;
    }
    struct raw_thread *t = calloc(k, sizeof *t);
    if (!t) die("calloc");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    double start = now();
    unsigned started = 0;
    for (unsigned i = 0; i < k; i++) {
        t[i] = (struct raw_thread){.dir = argv[2], .files = files, .next = i, .start = start,
                                   .warm = start + warmup, .end = start + seconds};
        if (pthread_create(&t[i].id, &attr, raw_run, &t[i]) != 0) {
            fprintf(stderr, "crowd raw: could start only %u threads of %u\n", i, k);
            stopping = 1;
            break;
        }
        started++;
    }
    long done = 0, errors = 0;
    struct samples all = {0};
    for (unsigned i = 0; i < started; i++) {
        pthread_join(t[i].id, NULL);
        done += t[i].done;
        errors += t[i].errors;
        for (size_t j = 0; j < t[i].latency.n; j++) add_sample(&all, t[i].latency.v[j]);
        free(t[i].latency.v);
    }
    qsort(all.v, all.n, sizeof *all.v, by_value);
    double window = seconds - warmup;
    printf("{\"threads\": %u, \"window_s\": %.3f, \"done\": %ld, \"per_s\": %.3f, \"errors\": %ld, "
           "\"files\": %zu, ", started, window, done, (double)done / window, errors, all.n);
    print_ms("latency_p50_ms", percentile_ms(all.v, all.n, 50), ", ");
    print_ms("latency_p99_ms", percentile_ms(all.v, all.n, 99), ", ");
    double sum = 0;
    for (size_t j = 0; j < all.n; j++) sum += all.v[j];
    print_ms("latency_mean_ms", all.n ? sum / (double)all.n * 1000.0 : -1, "}\n");
    free(all.v);
    free(t);
    return started == k ? 0 : 1;
}

// ---------------------------------------------------------------------------------------
// HTTP connections on epoll (http and probe)

enum { C_IDLE, C_CONNECTING, C_SENDING, C_READING, C_RETRY };

struct conn {
    int fd, state;
    char out[512];
    int outlen, outoff;
    char in[16384];
    int inlen, header_done, status;
    long body_left;
    unsigned next;          // the next file this connection asks for (http)
    long probe;             // the probe in flight (probe), -1 none
    double sent, retry_at;
};

static struct sockaddr_in target;
static const char *prefix;
static unsigned nfiles;
static int epfd;
static long connect_errors, read_errors, bad_status, parse_errors;

static void watch(struct conn *c, uint32_t events, int op) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) != 0) die("epoll_ctl");
}

static void conn_close(struct conn *c, double retry_delay) {
    if (c->fd >= 0) close(c->fd);     // also leaves the epoll set
    c->fd = -1;
    c->state = C_RETRY;
    c->retry_at = now() + retry_delay;
}

static int conn_open(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        connect_errors++;
        c->state = C_RETRY;
        c->retry_at = now() + 0.1;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->inlen = 0;
    if (connect(c->fd, (struct sockaddr *)&target, sizeof target) != 0 && errno != EINPROGRESS) {
        connect_errors++;
        conn_close(c, 0.1);
        return -1;
    }
    c->state = C_CONNECTING;
    watch(c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

// Writes what is left of the request; returns -1 when the connection failed.
static int conn_flush(struct conn *c) {
    while (c->outoff < c->outlen) {
        ssize_t w = send(c->fd, c->out + c->outoff, (size_t)(c->outlen - c->outoff), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            c->state = C_SENDING;
            return 0;
        }
        if (w <= 0) return -1;
        c->outoff += (int)w;
    }
    c->state = C_READING;
    c->header_done = 0;
    c->inlen = 0;
    watch(c, EPOLLIN, EPOLL_CTL_MOD);
    return 0;
}

static int conn_request(struct conn *c, unsigned file) {
    c->outlen = snprintf(c->out, sizeof c->out, "GET %s%02u HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                         prefix, file % nfiles);
    c->outoff = 0;
    c->sent = now();
    return conn_flush(c);
}

// Reads what is there; returns 1 when a whole response has come (its status in c->status;
// *again set when the connection may be reused), 0 when more is to come, -1 on failure.
static int conn_read(struct conn *c, int *again) {
    for (;;) {
        if (c->header_done) {
            char sink[65536];
            size_t want = c->body_left < (long)sizeof sink ? (size_t)c->body_left : sizeof sink;
            if (want == 0) return 1;
            ssize_t r = recv(c->fd, sink, want, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0 && errno == EAGAIN) return 0;
            if (r <= 0) return -1;
            c->body_left -= r;
            if (c->body_left == 0) return 1;
            continue;
        }
        if (c->inlen == (int)sizeof c->in - 1) {
            parse_errors++;
            return -1;
        }
        ssize_t r = recv(c->fd, c->in + c->inlen, sizeof c->in - 1 - (size_t)c->inlen, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return 0;
        if (r <= 0) return -1;
        c->inlen += (int)r;
        c->in[c->inlen] = 0;
        char *end = strstr(c->in, "\r\n\r\n");
        if (!end) continue;
        int header_len = (int)(end - c->in) + 4;
        if (strncmp(c->in, "HTTP/1.", 7) != 0 || c->inlen < 12) {
            parse_errors++;
            return -1;
        }
        c->status = atoi(c->in + 9);
        long length = -1;
        *again = 1;
        for (char *line = strstr(c->in, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
            char *field = line + 2;
            if (strncasecmp(field, "content-length:", 15) == 0) length = atol(field + 15);
            if (strncasecmp(field, "connection:", 11) == 0 && strcasestr(field, "close") &&
                strcasestr(field, "close") < strstr(field, "\r\n"))
                *again = 0;
        }
        if (length < 0) {
            parse_errors++;     // this client knows Content-Length only
            return -1;
        }
        c->header_done = 1;
        c->body_left = length - (c->inlen - header_len);
        if (c->body_left < 0) {
            parse_errors++;     // no pipelining: nothing may follow the body
            return -1;
        }
        if (c->body_left == 0) return 1;
    }
}

static void start_target(const char *port_text) {
    int port = atoi(port_text);
    if (port < 1 || port > 65535) {
        fprintf(stderr, "crowd: bad port %s\n", port_text);
        exit(2);
    }
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
}

// Whether a connecting socket is now connected (else it failed: closed for a retry).
static int conn_connected(struct conn *c) {
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
        connect_errors++;
        conn_close(c, 0.1);
        return 0;
    }
    return 1;
}

// ---------------------------------------------------------------------------------------
// http: the crowd

#define BUCKET 0.01

static int http_main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: crowd http PORT K SECONDS PREFIX FILES\n");
        return 2;
    }
    start_target(argv[2]);
    unsigned k = (unsigned)atoi(argv[3]);
    double seconds = atof(argv[4]);
    prefix = argv[5];
    nfiles = (unsigned)atoi(argv[6]);
    if (k < 1 || nfiles < 1 || seconds <= 0) {
        fprintf(stderr, "crowd http: K, FILES and SECONDS must be positive\n");
        return 2;
    }
    size_t nbuckets = (size_t)(seconds / BUCKET) + 2;
    long *counts = calloc(nbuckets, sizeof *counts);
    struct conn *conns = calloc(k, sizeof *conns);
    struct epoll_event *events = calloc(k, sizeof *events);
    if (!counts || !conns || !events) die("calloc");
    struct samples latency = {0};
    double start = now(), end = start + seconds;
    long done = 0;
    for (unsigned i = 0; i < k; i++) {
        conns[i].fd = -1;
        conns[i].next = i;
        conn_open(&conns[i]);
    }
    unsigned connected = 0;
    int announced = 0;
    while (!stopping) {
        double t = now();
        if (t >= end) break;
        if (!announced && connected >= k) {
            printf("connected %u %.6f\n", connected, t);
            fflush(stdout);
            announced = 1;
        }
        int n = epoll_wait(epfd, events, (int)k, 10);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (c->state == C_CONNECTING) {
                if (!conn_connected(c)) continue;
                if (c->sent == 0) connected++;     // first connect of this connection
                if (conn_request(c, c->next) != 0) {
                    read_errors++;
                    conn_close(c, 0.1);
                }
            } else if (c->state == C_SENDING) {
                if (conn_flush(c) != 0) {
                    read_errors++;
                    conn_close(c, 0.1);
                }
            } else if (c->state == C_READING) {
                int again = 1;
                int r = conn_read(c, &again);
                if (r == 0) continue;
                if (r < 0) {
                    read_errors++;
                    conn_close(c, 0.1);
                    continue;
                }
                double finished = now();
                if (c->status >= 200 && c->status < 300) {
                    size_t b = (size_t)((finished - start) / BUCKET);
                    if (b < nbuckets) counts[b]++;
                    add_sample(&latency, finished - c->sent);
                    done++;
                } else {
                    bad_status++;
                }
                c->next++;
                if (!again) {
                    conn_close(c, 0);
                    continue;
                }
                if (conn_request(c, c->next) != 0) {
                    read_errors++;
                    conn_close(c, 0.1);
                }
            }
        }
        t = now();
        for (unsigned i = 0; i < k; i++)
            if (conns[i].state == C_RETRY && conns[i].retry_at <= t) conn_open(&conns[i]);
    }
    double stopped = now();
    for (unsigned i = 0; i < k; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    qsort(latency.v, latency.n, sizeof *latency.v, by_value);
    size_t last = nbuckets;
    while (last > 0 && counts[last - 1] == 0) last--;
    printf("{\"start\": %.6f, \"stopped\": %.6f, \"connections\": %u, \"connected\": %u, \"done\": %ld, "
           "\"connect_errors\": %ld, \"read_errors\": %ld, \"bad_status\": %ld, \"parse_errors\": %ld, ",
           start, stopped, k, connected, done, connect_errors, read_errors, bad_status, parse_errors);
    print_ms("latency_p50_ms", percentile_ms(latency.v, latency.n, 50), ", ");
    print_ms("latency_p99_ms", percentile_ms(latency.v, latency.n, 99), ", ");
    printf("\"bucket_s\": %g, \"counts\": [", BUCKET);
    for (size_t b = 0; b < last; b++) printf(b ? ",%ld" : "%ld", counts[b]);
    printf("]}\n");
    return 0;
}

// ---------------------------------------------------------------------------------------
// probe: a paced fast request

#define PROBE_CONNECTIONS 16

static int probe_main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: crowd probe PORT INTERVAL_MS SECONDS PREFIX FILES\n");
        return 2;
    }
    start_target(argv[2]);
    double interval = atof(argv[3]) / 1000.0, seconds = atof(argv[4]);
    prefix = argv[5];
    nfiles = (unsigned)atoi(argv[6]);
    if (interval <= 0 || seconds <= 0 || nfiles < 1) {
        fprintf(stderr, "crowd probe: INTERVAL_MS, SECONDS and FILES must be positive\n");
        return 2;
    }
    size_t total = (size_t)(seconds / interval);
    if (total < 1) total = 1;
    double *latency = calloc(total, sizeof *latency);     // 0: not answered (yet)
    double *scheduled = calloc(total, sizeof *scheduled);
    struct conn conns[PROBE_CONNECTIONS];
    struct epoll_event events[PROBE_CONNECTIONS];
    if (!latency || !scheduled) die("calloc");
    for (int i = 0; i < PROBE_CONNECTIONS; i++) conns[i] = (struct conn){.fd = -1, .state = C_IDLE, .probe = -1};
    int open_count = 0;
    long answered = 0, busy = 0;
    double start = now(), grace_end = start + seconds + 1.0;
    size_t issued = 0;
    while (!stopping) {
        double t = now();
        if (t >= grace_end) break;
        // The probes now due, each on a free connection.
        while (issued < total && start + (double)issued * interval <= t) {
            scheduled[issued] = start + (double)issued * interval;
            struct conn *c = NULL;
            for (int i = 0; i < open_count && !c; i++)
                if (conns[i].state == C_IDLE && conns[i].fd >= 0) c = &conns[i];
            for (int i = 0; i < PROBE_CONNECTIONS && !c; i++)
                if (conns[i].fd < 0 && conns[i].probe < 0) {
                    c = &conns[i];
                    if (i >= open_count) open_count = i + 1;
                }
            if (!c) {
                busy++;          // every connection is waiting: this probe is not answered
                issued++;
                continue;
            }
            c->probe = (long)issued;
            c->next = (unsigned)issued;
            if (c->fd < 0) {
                if (conn_open(c) != 0) c->probe = -1;
            } else if (conn_request(c, c->next) != 0) {
                read_errors++;
                c->probe = -1;
                conn_close(c, 0);
            }
            issued++;
        }
        if (issued >= total) {
            int outstanding = 0;
            for (int i = 0; i < PROBE_CONNECTIONS; i++) outstanding += conns[i].probe >= 0;
            if (!outstanding) break;
        }
        double wait = issued < total ? start + (double)issued * interval - now() : grace_end - now();
        int ms = wait <= 0 ? 0 : (int)ceil(wait * 1000.0);
        int n = epoll_wait(epfd, events, PROBE_CONNECTIONS, ms > 100 ? 100 : ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int e = 0; e < n; e++) {
            struct conn *c = events[e].data.ptr;
            if (c->state == C_CONNECTING) {
                if (!conn_connected(c)) {
                    c->probe = -1;
                    c->state = C_IDLE;
                    continue;
                }
                if (conn_request(c, c->next) != 0) {
                    read_errors++;
                    c->probe = -1;
                    conn_close(c, 0);
                    c->state = C_IDLE;
                }
            } else if (c->state == C_SENDING) {
                if (conn_flush(c) != 0) {
                    read_errors++;
                    c->probe = -1;
                    conn_close(c, 0);
                    c->state = C_IDLE;
                }
            } else if (c->state == C_READING) {
                int again = 1;
                int r = conn_read(c, &again);
                if (r == 0) continue;
                double finished = now();
                if (r > 0 && c->status >= 200 && c->status < 300 && c->probe >= 0) {
                    latency[c->probe] = finished - scheduled[c->probe];
                    if (latency[c->probe] <= 0) latency[c->probe] = 1e-9;
                    answered++;
                } else if (r > 0) {
                    bad_status++;
                } else {
                    read_errors++;
                }
                c->probe = -1;
                if (r < 0 || !again) {
                    conn_close(c, 0);
                } else {
                    watch(c, 0, EPOLL_CTL_MOD);
                }
                c->state = C_IDLE;
            }
        }
    }
    for (int i = 0; i < PROBE_CONNECTIONS; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    // Percentiles over every probe due: the unanswered count as infinitely late.
    for (size_t i = 0; i < issued; i++)
        if (latency[i] == 0) latency[i] = INFINITY;
    double *answered_only = calloc(issued ? issued : 1, sizeof *answered_only);
    size_t na = 0;
    for (size_t i = 0; i < issued; i++)
        if (!isinf(latency[i])) answered_only[na++] = latency[i];
    qsort(latency, issued, sizeof *latency, by_value);
    qsort(answered_only, na, sizeof *answered_only, by_value);
    printf("{\"due\": %zu, \"answered\": %ld, \"all_busy\": %ld, \"connect_errors\": %ld, "
           "\"read_errors\": %ld, \"bad_status\": %ld, \"parse_errors\": %ld, \"connections\": %d, ",
           issued, answered, busy, connect_errors, read_errors, bad_status, parse_errors, open_count);
    print_ms("p50_ms", percentile_ms(latency, issued, 50), ", ");
    print_ms("p90_ms", percentile_ms(latency, issued, 90), ", ");
    print_ms("p99_ms", percentile_ms(latency, issued, 99), ", ");
    print_ms("answered_p99_ms", percentile_ms(answered_only, na, 99), ", ");
    print_ms("answered_max_ms", na ? answered_only[na - 1] * 1000.0 : -1, "}\n");
    free(answered_only);
    free(latency);
    free(scheduled);
    return 0;
}

int main(int argc, char **argv) {
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "raw") == 0) return raw_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "http") == 0) return http_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "probe") == 0) return probe_main(argc, argv);
    fprintf(stderr, "usage: crowd raw|http|probe ...  (see Benchmarks/web/crowd.c)\n");
    return 2;
}
