/*
 * The stand-alone /metrics endpoint of worker, bench and sim (see
 * metrics_http.h).
 *
 * DESIGN: one thread blocks in accept() on a listening socket. To stop,
 * the owner calls shutdown() on that socket, which wakes accept() with an
 * error on Linux; the thread sees the stop flag and exits, and the owner
 * joins it. A client gets SO_RCVTIMEO/SO_SNDTIMEO of 2 s, so a silent or
 * slow peer holds the thread for at most that long; the commands' own work
 * never waits on it (the registry is lock-free).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/metrics_http.h"

#define REQ_MAX 8192
#define IO_TIMEOUT_S 2
#define BODY_MAX (64u << 20)

struct metrics_http {
    int fd;
    int port;
    char host[64];
    int v6;
    struct metrics *m;
    pthread_t thread;
    atomic_int stop;
};

/* Splits "host:port" or "[v6]:port" into host and port. 0 or ERR_INVAL. */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon, *h = addr;
    size_t hl;
    if (*addr == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return ERR_INVAL;
        h = addr + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return ERR_INVAL;
        hl = (size_t)(colon - addr);
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hcap || pl == 0 || pl >= pcap)
        return ERR_INVAL;
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(port, colon + 1, pl + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return ERR_INVAL;
    return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Reads up to the end of the request head; returns its length, or -1. */
static ssize_t read_head(int fd, char *req, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = recv(fd, req + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n += (size_t)r;
        req[n] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            return (ssize_t)n;
    }
    return -1; /* over the cap */
}

static void reply(int fd, const char *status, const char *ctype, const char *body,
                  size_t len, int head_only)
{
    char hdr[256];
    int hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      status, ctype, len);
    send_all(fd, hdr, (size_t)hl);
    if (!head_only && len)
        send_all(fd, body, len);
}

/* Answers one request on client socket fd. */
static void serve_one(struct metrics_http *h, int fd)
{
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[REQ_MAX];
    if (read_head(fd, req, sizeof(req)) < 0) {
        reply(fd, "400 Bad Request", "text/plain", "bad request\n", 12, 0);
        return;
    }
    int head = !strncmp(req, "HEAD ", 5);
    if (strncmp(req, "GET ", 4) && !head) {
        reply(fd, "405 Method Not Allowed", "text/plain", "method not allowed\n", 19, 0);
        return;
    }
    const char *path = req + (head ? 5 : 4);
    size_t pl = strcspn(path, " ?\r\n");
    if (pl != 8 || strncmp(path, "/metrics", 8)) {
        reply(fd, "404 Not Found", "text/plain", "not found\n", 10, head);
        return;
    }
    struct buf b;
    buf_init(&b, BODY_MAX);
    if (metrics_render(h->m, &b))
        reply(fd, "500 Internal Server Error", "text/plain", "render failed\n", 14, head);
    else
        reply(fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.p, b.len, head);
    buf_free(&b);
}

static void *serve_loop(void *arg)
{
    struct metrics_http *h = arg;
    while (!atomic_load(&h->stop)) {
        int fd = accept(h->fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
                errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (errno != EINTR && errno != ECONNABORTED)
                    usleep(100000);
                continue;
            }
            break; /* shut down */
        }
        if (!atomic_load(&h->stop))
            serve_one(h, fd);
        close(fd);
    }
    return NULL;
}

/* Binds and listens on host:port; fills h->fd, port, host. */
static int bind_listen(struct metrics_http *h, const char *host, const char *port,
                       struct err_detail *d)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g || !ai)
        return err_set(d, ERR_INVAL, "metrics-listen", "%s: %s", host, gai_strerror(g));
    int rc = 0, one = 1;
    h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0) {
        rc = err_set(d, ERR_IO, "metrics-listen", "socket: %s", strerror(errno));
        goto out;
    }
    setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(h->fd, ai->ai_addr, ai->ai_addrlen) || listen(h->fd, 16)) {
        rc = err_set(d, ERR_IO, "metrics-listen", "%s:%s: %s", host, port, strerror(errno));
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(h->fd, (struct sockaddr *)&ss, &sl);
    h->v6 = ss.ss_family == AF_INET6;
    h->port = h->v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(h->host, sizeof(h->host), "%s", host);
out:
    freeaddrinfo(ai);
    return rc;
}

int metrics_http_start(const char *addr, struct metrics *m, struct metrics_http **out,
                       struct err_detail *d)
{
    char host[64], port[8];
    *out = NULL;
    if (!addr || split_addr(addr, host, sizeof(host), port, sizeof(port)))
        return err_set(d, ERR_INVAL, "metrics-listen", "want host:port, got \"%s\"",
                       addr ? addr : "");
    struct metrics_http *h = mem_calloc(1, sizeof(*h));
    if (!h)
        return err_set(d, ERR_NOMEM, "metrics-listen", "out of memory");
    h->fd = -1;
    h->m = m;
    int rc = bind_listen(h, host, port, d);
    if (rc)
        goto out;
    if (pthread_create(&h->thread, NULL, serve_loop, h)) {
        rc = err_set(d, ERR_NOMEM, "metrics-listen", "cannot start a thread");
        goto out;
    }
    *out = h;
    return 0;
out:
    if (h->fd >= 0)
        close(h->fd);
    mem_free(h);
    return rc;
}

int metrics_http_port(const struct metrics_http *h) { return h->port; }

void metrics_http_url(const struct metrics_http *h, char *out, size_t cap)
{
    snprintf(out, cap, h->v6 ? "http://[%s]:%d/metrics" : "http://%s:%d/metrics", h->host,
             h->port);
}

void metrics_http_stop(struct metrics_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    shutdown(h->fd, SHUT_RDWR);
    pthread_join(h->thread, NULL);
    close(h->fd);
    mem_free(h);
}
