/* connect-load: a small load generator for scripts/bench-forward.sh's shape B (CONNECT).
 *
 * Each connection: connect to the proxy at 127.0.0.1:PORT, send
 *     CONNECT TARGET HTTP/1.1 / Host: TARGET / Proxy-Authorization: Basic AUTH
 * read the answer head (it must be a 200), send a plain HTTP request inside the tunnel
 *     GET PATH HTTP/1.1 / Host: x / Connection: close
 * read the response to EOF (its status must be 200), close. With -D there is no CONNECT: the GET
 * is sent straight away (a TCP relay, or the origin itself, as a reference).
 *
 * CONCURRENCY connections are kept in flight; a new one starts as soon as one ends, until
 * DURATION seconds have passed or MAX connections have started. Connections still in flight
 * then finish (each bounded by the per-connection timeout), so every connection the proxy served
 * is counted, and the rate is completed connections over the time to the last one.
 *
 *     cc -O2 -o connect-load connect-load.c
 *     connect-load -p 3128 -t 127.0.0.1:8080 -a dXNlcjpwYXNz -c 50 -d 3 [-n 1000000]
 *                  [-u /index.html] [-T 5000] [-D]
 *
 * Output on stdout, one "key value" line each (scripts/bench/forward_report.py parses it):
 * connections (completed, status 200), errors (the sum of the error_* lines), elapsed_s,
 * rate (connections/s), latency_{p50,p90,p99,max,mean}_us (connect() to EOF),
 * tunnel_{p50,p99}_us (connect() to the CONNECT answer's head). Exit status 0 unless the
 * arguments were wrong or nothing could be measured. Linux only (epoll), C99, no dependencies.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { FREE, CONNECTING, TUNNEL_WAIT, RESPONSE };
enum err { E_CONNECT, E_STATUS, E_RESPONSE, E_TIMEOUT, E_IO, E_COUNT };
static const char *const err_names[E_COUNT] = {"connect", "connect_status", "response_status",
                                               "timeout", "io"};

struct slot {
    int fd;
    enum state st;
    int64_t start_ns, deadline_ns, tunnel_ns;
    size_t head_len;   /* bytes of the CONNECT answer (TUNNEL_WAIT), or of the response start */
    char head[1024];
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(void) {
    fprintf(stderr, "usage: connect-load -p PROXY_PORT -t HOST:PORT -a BASE64 [-c CONCURRENCY] "
                    "[-d SECONDS] [-n MAX] [-u PATH] [-T TIMEOUT_MS] [-D]\n");
    exit(2);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(const uint32_t *v, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* Arguments and run state are globals: one load run per process. */
static int port = 0, conc = 50, duration = 3, timeout_ms = 5000, direct = 0;
static long max_conns = 1000000;
static const char *target = NULL, *auth = NULL, *path = "/index.html";
static char connect_req[1024], get_req[512];
static size_t connect_len, get_len;
static struct sockaddr_in proxy_addr;
static int ep;
static struct slot *slots;
static long started = 0, completed = 0, errors[E_COUNT];
static uint32_t *lat_us, *tun_us;
static size_t n_tun = 0;
static int64_t last_done_ns = 0;

static void finish(struct slot *s, int err) {
    if (err >= 0) errors[err]++;
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    s->st = FREE;
    last_done_ns = now_ns();
}

static void launch(struct slot *s) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { perror("socket"); exit(1); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    started++;
    s->fd = fd;
    s->start_ns = now_ns();
    s->deadline_ns = s->start_ns + (int64_t)timeout_ms * 1000000;
    s->head_len = 0;
    s->st = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.ptr = s};
    if (connect(fd, (struct sockaddr *)&proxy_addr, sizeof proxy_addr) < 0 && errno != EINPROGRESS) {
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);  /* so finish() can DEL it */
        finish(s, E_CONNECT);
        return;
    }
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int send_all(int fd, const char *p, size_t n) {
    /* A fresh loopback socket takes a few hundred bytes at once; a short write is an error. */
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : -1;
}

static int status_is_200(const char *h, size_t n) {
    return n >= 12 && (memcmp(h, "HTTP/1.1 200", 12) == 0 || memcmp(h, "HTTP/1.0 200", 12) == 0);
}

static void on_event(struct slot *s, uint32_t events) {
    char buf[16384];
    if (s->st == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            finish(s, E_CONNECT);
            return;
        }
        if (!(events & EPOLLOUT)) return;
        const char *req = direct ? get_req : connect_req;
        size_t n = direct ? get_len : connect_len;
        if (send_all(s->fd, req, n) < 0) { finish(s, E_IO); return; }
        s->st = direct ? RESPONSE : TUNNEL_WAIT;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        return;
    }
    for (;;) {
        ssize_t r = recv(s->fd, buf, sizeof buf, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            finish(s, E_IO);
            return;
        }
        if (s->st == TUNNEL_WAIT) {
            if (r == 0) { finish(s, E_STATUS); return; }
            size_t room = sizeof s->head - 1 - s->head_len;
            size_t take = (size_t)r < room ? (size_t)r : room;
            memcpy(s->head + s->head_len, buf, take);
            s->head_len += take;
            s->head[s->head_len] = '\0';
            char *end = strstr(s->head, "\r\n\r\n");
            if (!end) {
                if (s->head_len >= sizeof s->head - 1) { finish(s, E_STATUS); return; }
                continue;
            }
            if (!status_is_200(s->head, s->head_len)) { finish(s, E_STATUS); return; }
            if ((size_t)(end + 4 - s->head) != s->head_len) { finish(s, E_IO); return; }
            s->tunnel_ns = now_ns() - s->start_ns;
            if (send_all(s->fd, get_req, get_len) < 0) { finish(s, E_IO); return; }
            s->st = RESPONSE;
            s->head_len = 0;
            continue;
        }
        /* RESPONSE: keep the first bytes for the status line, read to EOF */
        if (r == 0) {
            if (!status_is_200(s->head, s->head_len)) { finish(s, E_RESPONSE); return; }
            int64_t t = now_ns() - s->start_ns;
            lat_us[completed] = (uint32_t)(t / 1000);
            completed++;
            if (!direct) tun_us[n_tun++] = (uint32_t)(s->tunnel_ns / 1000);
            finish(s, -1);
            return;
        }
        if (s->head_len < 16) {
            size_t take = (size_t)r < 16 - s->head_len ? (size_t)r : 16 - s->head_len;
            memcpy(s->head + s->head_len, buf, take);
            s->head_len += take;
        }
    }
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "p:t:a:c:d:n:u:T:D")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 't': target = optarg; break;
        case 'a': auth = optarg; break;
        case 'c': conc = atoi(optarg); break;
        case 'd': duration = atoi(optarg); break;
        case 'n': max_conns = atol(optarg); break;
        case 'u': path = optarg; break;
        case 'T': timeout_ms = atoi(optarg); break;
        case 'D': direct = 1; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || !target || (!auth && !direct) || conc < 1 || conc > 4096 ||
        duration < 1 || duration > 600 || max_conns < 1 || max_conns > 50000000 ||
        timeout_ms < 1 || timeout_ms > 60000 || strlen(target) > 300 || strlen(path) > 300 ||
        (auth && strlen(auth) > 500))
        usage();
    signal(SIGPIPE, SIG_IGN);

    connect_len = (size_t)snprintf(connect_req, sizeof connect_req,
                                   "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n",
                                   target, target, auth ? auth : "");
    get_len = (size_t)snprintf(get_req, sizeof get_req,
                               "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    memset(&proxy_addr, 0, sizeof proxy_addr);
    proxy_addr.sin_family = AF_INET;
    proxy_addr.sin_port = htons((uint16_t)port);
    proxy_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    ep = epoll_create1(EPOLL_CLOEXEC);
    slots = calloc((size_t)conc, sizeof *slots);
    lat_us = malloc((size_t)max_conns * sizeof *lat_us);
    tun_us = malloc((size_t)max_conns * sizeof *tun_us);
    if (ep < 0 || !slots || !lat_us || !tun_us) { perror("setup"); return 1; }

    int64_t t0 = now_ns(), stop_ns = t0 + (int64_t)duration * 1000000000;
    last_done_ns = t0;
    for (int i = 0; i < conc && started < max_conns; i++) launch(&slots[i]);
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = now_ns();
        int launching = now < stop_ns && started < max_conns;
        int in_flight = 0;
        for (int i = 0; i < conc; i++) {
            struct slot *s = &slots[i];
            if (s->st != FREE && now > s->deadline_ns) finish(s, E_TIMEOUT);
            if (s->st == FREE && launching && started < max_conns) launch(s);
            in_flight += s->st != FREE;
        }
        if (!in_flight) break;
        int n = epoll_wait(ep, evs, 256, 50);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) {
            struct slot *s = evs[i].data.ptr;
            if (s->st != FREE) on_event(s, evs[i].events);
            if (s->st == FREE && now_ns() < stop_ns && started < max_conns) launch(s);
        }
    }

    double elapsed = (double)(last_done_ns - t0) / 1e9;
    long nerr = 0;
    for (int e = 0; e < E_COUNT; e++) nerr += errors[e];
    qsort(lat_us, (size_t)completed, sizeof *lat_us, cmp_u32);
    qsort(tun_us, n_tun, sizeof *tun_us, cmp_u32);
    double sum = 0;
    for (long i = 0; i < completed; i++) sum += lat_us[i];
    printf("mode %s\n", direct ? "direct" : "connect");
    printf("concurrency %d\n", conc);
    printf("started %ld\n", started);
    printf("connections %ld\n", completed);
    printf("errors %ld\n", nerr);
    for (int e = 0; e < E_COUNT; e++) printf("error_%s %ld\n", err_names[e], errors[e]);
    printf("elapsed_s %.6f\n", elapsed);
    printf("rate %.1f\n", elapsed > 0 ? (double)completed / elapsed : 0.0);
    printf("latency_p50_us %u\n", pct(lat_us, (size_t)completed, 0.50));
    printf("latency_p90_us %u\n", pct(lat_us, (size_t)completed, 0.90));
    printf("latency_p99_us %u\n", pct(lat_us, (size_t)completed, 0.99));
    printf("latency_max_us %u\n", completed ? lat_us[completed - 1] : 0);
    printf("latency_mean_us %.1f\n", completed ? sum / (double)completed : 0.0);
    if (!direct) {
        printf("tunnel_p50_us %u\n", pct(tun_us, n_tun, 0.50));
        printf("tunnel_p99_us %u\n", pct(tun_us, n_tun, 0.99));
    }
    return completed > 0 ? 0 : 1;
}
