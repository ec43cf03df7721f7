/* accept-bulk: the three programs of scripts/bench.sh's W7 ("accept under bulk"), one binary.
 *
 *   accept-bulk serve -p PORT [-T LIFETIME_S] [-m MAX_CONNS]
 *       The backend. Each connection's first byte says what it wants: 'B' = bulk, the backend
 *       then writes to it endlessly from a static 64 KiB buffer (what it is sent later is
 *       ignored); 'P' = probe, the backend answers "PONG\n" at once and closes when the peer
 *       does. Every epoll round handles accepts and first bytes before any bulk write (at most
 *       one 64 KiB send per bulk connection per round), so a probe waits behind at most one
 *       round of the backend's own writes. Exits after LIFETIME_S seconds [3600].
 *   accept-bulk bulk -p PORT [-c CONNS] [-d MAX_S] [-T CONNECT_TIMEOUT_MS]
 *       Opens CONNS [200] connections, sends "B\n" on each, and reads as fast as it can until
 *       SIGTERM/SIGINT or MAX_S seconds [60]. It reads with recv(MSG_TRUNC), which the kernel
 *       discards without copying: TCP flow control sees a reader as fast as any, and the load
 *       CPU is left to the backend and the probe. Prints "ready N" once every connection is
 *       established (or has failed), then at the end: established, failed, bytes, elapsed_s,
 *       mib_s (bytes read after "ready", over the time since then).
 *   accept-bulk probe -p PORT [-n COUNT] [-d SECONDS] [-T TIMEOUT_MS]
 *       COUNT [300] probes, one after another, paced over SECONDS [3] (probe i starts at
 *       i x SECONDS/COUNT, or as soon as probe i-1 ends if that is later): connect() (the clock
 *       starts just before it), send "P\n", wait for the first response byte (the clock stops),
 *       close. A probe with no answer within TIMEOUT_MS [2000] counts as a timeout and enters
 *       the latencies at TIMEOUT_MS (a lower bound: it makes p99 and max honest, not smaller);
 *       a refused or reset probe counts as an error and is left out of them. Prints probes,
 *       completed, timeouts, errors, elapsed_s, latency_{p50,p90,p99,max,mean}_us; exit status 1
 *       only when no probe was answered or timed out (every one refused or reset).
 *
 * Output: "key value" lines on stdout. Every loop is bounded in count and time. Linux only
 * (epoll), C99, no dependencies:  cc -O2 -o accept-bulk accept-bulk.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES 65536
#define MAX_EVENTS 512

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die_usage(void) {
    fprintf(stderr, "usage: accept-bulk serve -p PORT [-T LIFETIME_S] [-m MAX_CONNS]\n"
                    "       accept-bulk bulk -p PORT [-c CONNS] [-d MAX_S] [-T CONNECT_TIMEOUT_MS]\n"
                    "       accept-bulk probe -p PORT [-n COUNT] [-d SECONDS] [-T TIMEOUT_MS]\n");
    exit(2);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A non-blocking TCP socket with TCP_NODELAY whose connect() to 127.0.0.1:port has started;
 * -1 if socket() or connect() failed at once. */
static int start_connect(const struct sockaddr_in *a) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static int connected_ok(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

/* epoll_wait with EINTR as "no events"; -1 only on a real error (reported). */
static int wait_events(int ep, struct epoll_event *evs, int timeout_ms) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno == EINTR) return 0;
    if (n < 0) perror("epoll_wait");
    return n;
}

static volatile sig_atomic_t stop_flag = 0;
static void on_stop(int sig) { (void)sig; stop_flag = 1; }

/* ------------------------------------------------------------------ serve */
enum { C_FREE, C_NEW, C_BULK, C_PROBE };
struct conn { int fd; int st; };

static void serve_close(int ep, struct conn *c, int *free_ids, int *n_free, int id) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->st = C_FREE;
    free_ids[(*n_free)++] = id;
}

static int serve(int port, int lifetime_s, int max_conns) {
    static char chunk[CHUNK_BYTES];
    memset(chunk, 'x', sizeof chunk);
    struct conn *conns = calloc((size_t)max_conns, sizeof *conns);
    int *free_ids = malloc((size_t)max_conns * sizeof *free_ids), n_free = max_conns;
    if (!conns || !free_ids) { perror("calloc"); return 1; }
    for (int i = 0; i < max_conns; i++) free_ids[i] = max_conns - 1 - i;

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = loopback(port);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
        perror("listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0) { perror("epoll"); return 1; }

    long accepted = 0, bulk = 0, probes = 0;
    int64_t end_ns = now_ns() + (int64_t)lifetime_s * 1000000000;
    struct epoll_event evs[MAX_EVENTS];
    while (!stop_flag && now_ns() < end_ns) {
        int n = wait_events(ep, evs, 200);
        if (n < 0) return 1;
        /* Pass 1: accepts, first bytes, closes. Pass 2: bulk writes. */
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == UINT32_MAX) {
                for (int k = 0; k < 64 && n_free > 0; k++) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    int c = free_ids[--n_free];
                    conns[c].fd = fd;
                    conns[c].st = C_NEW;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    accepted++;
                }
                continue;
            }
            struct conn *c = &conns[id];
            if (c->st == C_FREE) continue;
            int close_it = (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
            if (!close_it && c->st == C_NEW && (evs[i].events & EPOLLIN)) {
                char b[64];
                ssize_t r = recv(c->fd, b, sizeof b, 0);
                if (r <= 0) {
                    close_it = r == 0 || (errno != EAGAIN && errno != EINTR);
                } else if (b[0] == 'B') {
                    c->st = C_BULK;
                    bulk++;
                    struct epoll_event ev = {.events = EPOLLOUT | EPOLLRDHUP, .data.u32 = id};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                } else {
                    c->st = C_PROBE;
                    probes++;
                    close_it = send(c->fd, "PONG\n", 5, MSG_NOSIGNAL) != 5;
                }
            } else if (!close_it && c->st == C_PROBE && (evs[i].events & EPOLLIN)) {
                char b[64];
                ssize_t r = recv(c->fd, b, sizeof b, 0);
                close_it = r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
            }
            if (close_it) serve_close(ep, c, free_ids, &n_free, (int)id);
        }
        for (int i = 0; i < n; i++) {
            uint32_t id = evs[i].data.u32;
            if (id == UINT32_MAX || conns[id].st != C_BULK || !(evs[i].events & EPOLLOUT)) continue;
            ssize_t w = send(conns[id].fd, chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EINTR) serve_close(ep, &conns[id], free_ids, &n_free, (int)id);
        }
    }
    printf("accepted %ld\nbulk %ld\nprobes %ld\n", accepted, bulk, probes);
    return 0;
}

/* ------------------------------------------------------------------ bulk */
static int bulk(int port, int n_conns, int max_s, int connect_timeout_ms) {
    struct sockaddr_in a = loopback(port);
    int *fds = malloc((size_t)n_conns * sizeof *fds);
    char *sent = calloc((size_t)n_conns, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!fds || !sent || ep < 0) { perror("setup"); return 1; }
    int64_t t0 = now_ns(), end_ns = t0 + (int64_t)max_s * 1000000000;
    int64_t connect_end = t0 + (int64_t)connect_timeout_ms * 1000000, ready_ns = 0;
    long established = 0, failed = 0, bytes = 0, bytes_before_ready = 0;
    for (int i = 0; i < n_conns; i++) {
        fds[i] = start_connect(&a);
        if (fds[i] < 0) { failed++; continue; }
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    struct epoll_event evs[MAX_EVENTS];
    while (!stop_flag && now_ns() < end_ns) {
        if (!ready_ns && (established + failed == n_conns || now_ns() > connect_end)) {
            ready_ns = now_ns();
            bytes_before_ready = bytes;
            printf("ready %ld\n", established);
            fflush(stdout);
        }
        int n = wait_events(ep, evs, 100);
        if (n < 0) return 1;
        for (int i = 0; i < n; i++) {
            int k = (int)evs[i].data.u32, fd = fds[k];
            if (fd < 0) continue;
            int bad = (evs[i].events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0;
            if (!bad && !sent[k] && (evs[i].events & EPOLLOUT)) {
                bad = !connected_ok(fd) || send(fd, "B\n", 2, MSG_NOSIGNAL) != 2;
                if (!bad) {
                    sent[k] = 1;
                    established++;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)k};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
            } else if (!bad && (evs[i].events & EPOLLIN)) {
                ssize_t r = recv(fd, NULL, 1 << 20, MSG_TRUNC | MSG_DONTWAIT);
                if (r > 0) bytes += r;
                bad = r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
            }
            if (bad) {
                if (!sent[k]) failed++;
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                fds[k] = -1;
            }
        }
    }
    int64_t t1 = now_ns();
    for (int i = 0; i < n_conns; i++)
        if (fds[i] >= 0) close(fds[i]);
    if (!ready_ns) ready_ns = t1;
    double el = (double)(t1 - ready_ns) / 1e9;
    long b = bytes - bytes_before_ready;
    printf("established %ld\nfailed %ld\nbytes %ld\nelapsed_s %.3f\nmib_s %.1f\n", established,
           failed, b, el, el > 0 ? (double)b / 1048576.0 / el : 0.0);
    return established == n_conns ? 0 : 1;
}

/* ------------------------------------------------------------------ probe */
enum { P_OK, P_TIMEOUT, P_ERROR };

/* One probe: returns P_OK with *us set, P_TIMEOUT (with *us = the timeout) or P_ERROR. */
static int probe_once(const struct sockaddr_in *a, int timeout_ms, uint32_t *us) {
    int64_t t0 = now_ns(), deadline = t0 + (int64_t)timeout_ms * 1000000;
    int fd = start_connect(a), res = P_ERROR, stage = 0;
    if (fd < 0) return P_ERROR;
    for (int rounds = 0; rounds < 1000; rounds++) {
        int64_t left_ms = (deadline - now_ns()) / 1000000;
        if (left_ms < 0) { res = P_TIMEOUT; break; }
        struct pollfd p = {.fd = fd, .events = stage == 0 ? POLLOUT : POLLIN};
        int r = poll(&p, 1, (int)left_ms + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        if (r == 0) continue;  /* the deadline check above ends it */
        if (stage == 0) {
            if (!connected_ok(fd) || send(fd, "P\n", 2, MSG_NOSIGNAL) != 2) break;
            stage = 1;
            continue;
        }
        char b[64];
        ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (n > 0) {
            *us = (uint32_t)((now_ns() - t0) / 1000);
            res = P_OK;
            break;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    if (res == P_TIMEOUT) *us = (uint32_t)timeout_ms * 1000;
    close(fd);
    return res;
}

static int cmp_u32(const void *x, const void *y) {
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static uint32_t pct(const uint32_t *v, long n, double p) {
    if (n <= 0) return 0;
    long i = (long)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static int probe(int port, long count, int seconds, int timeout_ms) {
    struct sockaddr_in a = loopback(port);
    uint32_t *lat = malloc((size_t)count * sizeof *lat);
    if (!lat) { perror("malloc"); return 1; }
    long n_lat = 0, completed = 0, timeouts = 0, errors = 0, started = 0;
    int64_t t0 = now_ns(), interval = (int64_t)seconds * 1000000000 / count;
    int64_t hard_end = t0 + ((int64_t)seconds * 1000 + 2LL * timeout_ms) * 1000000;
    for (long i = 0; i < count && !stop_flag && now_ns() < hard_end; i++) {
        int64_t at = t0 + i * interval, wait = at - now_ns();
        if (wait > 0) {
            struct timespec ts = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
            nanosleep(&ts, NULL);
        }
        uint32_t us = 0;
        started++;
        switch (probe_once(&a, timeout_ms, &us)) {
        case P_OK: completed++; lat[n_lat++] = us; break;
        case P_TIMEOUT: timeouts++; lat[n_lat++] = us; break;
        default: errors++; break;
        }
    }
    double el = (double)(now_ns() - t0) / 1e9, sum = 0;
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_u32);
    for (long i = 0; i < n_lat; i++) sum += lat[i];
    printf("probes %ld\ncompleted %ld\ntimeouts %ld\nerrors %ld\nelapsed_s %.3f\n", started,
           completed, timeouts, errors, el);
    printf("latency_p50_us %u\nlatency_p90_us %u\nlatency_p99_us %u\nlatency_max_us %u\n",
           pct(lat, n_lat, 0.50), pct(lat, n_lat, 0.90), pct(lat, n_lat, 0.99),
           n_lat ? lat[n_lat - 1] : 0);
    printf("latency_mean_us %.1f\n", n_lat ? sum / (double)n_lat : 0.0);
    return n_lat > 0 ? 0 : 1;  /* timeouts are a result: only a run with no latency at all fails */
}

int main(int argc, char **argv) {
    if (argc < 2) die_usage();
    const char *mode = argv[1];
    int port = 0, conns = 200, seconds = -1, timeout_ms = -1, max_conns = 4096, opt;
    long count = 300;
    optind = 2;
    while ((opt = getopt(argc, argv, "p:c:d:n:T:m:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': conns = atoi(optarg); break;
        case 'd': seconds = atoi(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'T': timeout_ms = atoi(optarg); break;
        case 'm': max_conns = atoi(optarg); break;
        default: die_usage();
        }
    }
    if (port <= 0 || port > 65535) die_usage();
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;  /* no SA_RESTART: a blocking call returns EINTR and the loop ends */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (strcmp(mode, "serve") == 0) {
        if (timeout_ms < 0) timeout_ms = 3600;  /* -T is the lifetime in seconds here */
        if (timeout_ms < 1 || timeout_ms > 86400 || max_conns < 1 || max_conns > 100000) die_usage();
        return serve(port, timeout_ms, max_conns);
    }
    if (strcmp(mode, "bulk") == 0) {
        if (seconds < 0) seconds = 60;
        if (timeout_ms < 0) timeout_ms = 5000;
        if (conns < 1 || conns > 10000 || seconds < 1 || seconds > 3600 || timeout_ms < 1 ||
            timeout_ms > 60000)
            die_usage();
        return bulk(port, conns, seconds, timeout_ms);
    }
    if (strcmp(mode, "probe") == 0) {
        if (seconds < 0) seconds = 3;
        if (timeout_ms < 0) timeout_ms = 2000;
        if (count < 1 || count > 1000000 || seconds < 1 || seconds > 600 || timeout_ms < 1 ||
            timeout_ms > 60000)
            die_usage();
        return probe(port, count, seconds, timeout_ms);
    }
    die_usage();
    return 2;
}
