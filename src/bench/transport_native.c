/*
 * The default transport: our own HTTP/1.1 client on the event loop.
 *
 * Hand-written rather than libcurl on this hot path: measured here,
 * libcurl 7.88's multi interface adds 49–78% CPU per streamed event at
 * 1–2k streams (an extra poll() after every read, connection-cache scans
 * growing with N, ~23 KB per transfer) and halves requests/s; this one
 * does one read(2) per readiness, one clock read per read, and keeps
 * connections alive. Each connection has a persistent read event and a
 * write event armed only while a request is partly written.
 *
 * Timestamps: with --timestamps kernel (the default) every read is
 * recvmsg(2) with SO_TIMESTAMPNS, and the time of the bytes is when the
 * kernel received them (of the last segment the read returned), not when
 * this loop got round to reading them: with a thousand streams emitting in
 * the same decode step, the last socket of a burst is read milliseconds
 * after its bytes arrived, and that delay belongs to the client, not to
 * the engine. The delay itself, kernel receipt to read, is kept as the
 * read lag, so a saturated client shows in the result.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/backend.h"
#include "bench/client_int.h"
#include "bench/h1.h"
#include "core/mem.h"
#include "core/timeutil.h"

#define RBUF_SIZE 65536
#define MAX_CONNS 60000

struct conn {
    struct client *cl;
    int fd;
    struct event *rev, *wev;
    int connected;
    struct h1_parser h1;
    struct bench_stream st;
    struct bench_req *req;       /* in flight on this connection, or NULL */
    struct buf out;              /* request bytes not yet written */
    size_t out_off;
    int64_t started;             /* when the current request was put on it */
    struct conn *next, *prev;    /* idle list, or busy list */
};

struct native {
    struct conn *idle, *busy;
    int nconns;
    char rbuf[RBUF_SIZE];        /* one loop, one read at a time */
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

static void list_push(struct conn **head, struct conn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void list_remove(struct conn **head, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (*head == c)
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* Frees c, which must be on no list. */
static void conn_free(struct conn *c)
{
    struct native *n = c->cl->tp;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fd >= 0)
        close(c->fd);
    bench__stream_free(&c->st);
    buf_free(&c->out);
    n->nconns--;
    mem_free(c);
}

static struct conn *conn_open(struct client *cl)
{
    struct native *n = cl->tp;
    struct conn *c = mem_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cl = cl;
    c->fd = -1;
    n->nconns++;
    buf_init(&c->out, 8 << 20);
    bench__stream_init(&c->st, cl);
    c->fd = socket(cl->t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        goto fail;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cl->run->kernel_ts)
        setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    c->rev = event_new(cl->base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(cl->base, c->fd, EV_WRITE, on_write, c);
    if (!c->rev || !c->wev)
        goto fail;
    if (connect(c->fd, (struct sockaddr *)&cl->t->addr, cl->t->addrlen) == 0)
        c->connected = 1;
    else if (errno != EINPROGRESS)
        goto fail;
    event_add(c->rev, NULL);
    return c;
fail:
    conn_free(c);
    return NULL;
}

/* Ends the request on c (if any) with err and drops the connection. */
static void conn_abort(struct conn *c, int err)
{
    struct native *n = c->cl->tp;
    struct bench_req *r = c->req;
    list_remove(r ? &n->busy : &n->idle, c);
    c->req = NULL;
    struct client *cl = c->cl;
    conn_free(c);
    if (r)
        bench__finish(cl, r, err);
}

static void response_done(struct conn *c)
{
    struct client *cl = c->cl;
    struct native *n = cl->tp;
    struct bench_req *r = c->req;
    int err = bench__stream_verdict(&c->st, c->h1.status);
    list_remove(&n->busy, c);
    c->req = NULL;
    if (c->h1.keep_alive && !err)
        list_push(&n->idle, c);
    else
        conn_free(c);
    bench__finish(cl, r, err);
}

static int on_body(void *arg, const char *p, size_t len)
{
    struct conn *c = arg;
    if (c->h1.status != 200)
        return 0; /* an error body: its status says enough */
    return bench__stream_body(&c->st, p, len);
}

/*
 * Writes what is pending on c; arms the write event if the socket is full.
 * The request is sent at the start of the write(2) that takes its last
 * byte: on loopback the peer's kernel has the bytes before write returns.
 */
static void flush_out(struct conn *c)
{
    int64_t t = 0;
    while (c->out_off < c->out.len) {
        t = time_mono_ns();
        ssize_t k = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        if (k <= 0) {
            conn_abort(c, BENCH_E_RESET);
            return;
        }
        c->out_off += (size_t)k;
    }
    c->req->sent_ns = t ? t : time_mono_ns();
    buf_reset(&c->out);
    c->out_off = 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)what;
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            conn_abort(c, BENCH_E_CONNECT);
            return;
        }
        c->connected = 1;
    }
    if (c->req)
        flush_out(c);
}

static void build_request(struct client *cl, struct conn *c, struct bench_req *r)
{
    const struct bench_load *l = cl->l;
    struct buf body;
    char rid[40], tp[TRACE_PARENT_LEN + 1];
    buf_init(&body, 8 << 20);
    bench__request_body(cl, r, &body);
    bench_request_id(cl->run, r->id, rid);
    bench_traceparent(cl->run, r->id, tp);
    buf_printf(&c->out, "POST %s%s HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
               "X-Request-Id: %s\r\ntraceparent: %s\r\nContent-Length: %zu\r\n",
               cl->t->prefix, bench_backend_path(l->backend), cl->t->host_header, rid, tp,
               body.len);
    if (l->api_key)
        buf_printf(&c->out, "Authorization: Bearer %s\r\n", l->api_key);
    for (int i = 0; i < l->nheaders; i++)
        buf_printf(&c->out, "%s\r\n", l->headers[i]);
    buf_puts(&c->out, "\r\n");
    buf_append(&c->out, body.p, body.len);
    buf_free(&body);
}

static int native_start(struct client *cl, struct bench_req *r)
{
    struct native *n = cl->tp;
    struct conn *c = n->idle;
    if (c)
        list_remove(&n->idle, c);
    else if (n->nconns >= MAX_CONNS || !(c = conn_open(cl)))
        return -1;
    c->req = r;
    c->started = time_mono_ns();
    list_push(&n->busy, c);
    h1_init(&c->h1, 0);
    bench__stream_begin(&c->st, r);
    build_request(cl, c, r);
    if (buf_err(&c->out))
        conn_abort(c, BENCH_E_OVERSIZED);
    else if (c->connected)
        flush_out(c);
    else
        event_add(c->wev, NULL);
    return 0;
}

/* Adds one read lag to the run's histogram (see client.h). */
static void note_lag(struct bench_run *run, int64_t lag)
{
    if (lag < 0)
        lag = 0;
    uint64_t v = (uint64_t)lag + 1;
    int msb = 63 - __builtin_clzll(v);
    int sub = msb >= 2 ? (int)((v >> (msb - 2)) & 3) : 0;
    run->lag_hist[msb * 4 + sub]++;
    run->lag_n++;
    run->lag_sum_ns += lag;
    if (lag > run->lag_max_ns)
        run->lag_max_ns = lag;
}

/*
 * read(2), or with kernel timestamps recvmsg(2) that also returns in *ts
 * the kernel's receive time of the bytes, converted to CLOCK_MONOTONIC;
 * *ts is the loop's clock when there is no stamp. Stamps later than now
 * (clock steps) are not trusted.
 */
static ssize_t read_timed(struct conn *c, int fd, char *p, size_t cap, int64_t *ts)
{
    struct bench_run *run = c->cl->run;
    if (!run->kernel_ts) {
        ssize_t k = read(fd, p, cap);
        *ts = time_mono_ns();
        return k;
    }
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {p, cap};
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof(ctl);
    ssize_t k = recvmsg(fd, &m, 0);
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int64_t now = (int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec;
    *ts = now;
    if (k <= 0)
        return k;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec st;
        memcpy(&st, CMSG_DATA(h), sizeof(st));
        int64_t v = time_mono_from_realtime(&st);
        if (v > 0 && v <= now) {
            *ts = v;
            if (c->cl->measuring)
                note_lag(run, now - v);
        }
    }
    return k;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct native *n = c->cl->tp;
    (void)what;
    int64_t ts;
    ssize_t k = read_timed(c, fd, n->rbuf, sizeof(n->rbuf), &ts);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (!c->req) { /* an idle connection closed (or sent garbage): drop it */
        conn_abort(c, BENCH_OK);
        return;
    }
    if (k <= 0) {
        if (k == 0 && h1_eof(&c->h1) == 1) {
            c->h1.keep_alive = 0;
            response_done(c);
        } else {
            conn_abort(c, BENCH_E_RESET);
        }
        return;
    }
    c->cl->run->reads++;
    /* A stamp cannot precede the request's write, except by the write's
       own syscall return on loopback: keep the order. */
    c->st.ts = ts > c->req->sent_ns ? ts : c->req->sent_ns;
    size_t used = 0;
    int rc = h1_feed(&c->h1, n->rbuf, (size_t)k, &used, on_body, c);
    if (rc == 1 && used == (size_t)k)
        response_done(c);
    else if (rc == BENCH_STOP)
        conn_abort(c, c->req->err ? c->req->err : BENCH_E_MALFORMED);
    else if (rc != 0) /* framing error, or bytes after the response */
        conn_abort(c, rc == ERR_TOOBIG ? BENCH_E_OVERSIZED : BENCH_E_MALFORMED);
}

static int native_init(struct client *cl, struct err_detail *d)
{
    if (!(cl->tp = mem_calloc(1, sizeof(struct native))))
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    return 0;
}

static void native_sweep(struct client *cl, int64_t now)
{
    struct native *n = cl->tp;
    int64_t limit = (int64_t)(cl->l->request_timeout_s * 1e9);
    if (cl->l->request_timeout_s <= 0)
        return;
    for (struct conn *c = n->busy, *next; c; c = next) {
        next = c->next;
        if (now - c->started > limit)
            conn_abort(c, BENCH_E_TIMEOUT);
    }
}

static void native_shutdown(struct client *cl)
{
    struct native *n = cl->tp;
    if (!n)
        return;
    while (n->busy) {
        struct conn *c = n->busy;
        list_remove(&n->busy, c);
        conn_free(c); /* its request stays unfinished: incomplete */
    }
    while (n->idle) {
        struct conn *c = n->idle;
        list_remove(&n->idle, c);
        conn_free(c);
    }
    mem_free(n);
    cl->tp = NULL;
}

const struct bench_transport bench_native_transport = {
    .name = "native",
    .init = native_init,
    .start = native_start,
    .sweep = native_sweep,
    .shutdown = native_shutdown,
};
