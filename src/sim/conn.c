/*
 * One client connection of the simulator's HTTP/1.1 server: reading and
 * framing requests (Content-Length bodies only; chunked requests get 411),
 * keep-alive, and the write path.
 *
 * DESIGN
 * Responses are written with write(2) straight from the caller's buffer
 * the moment they exist; only when the socket would block does the rest go
 * to a per-connection evbuffer drained on EV_WRITE (later writes queue
 * behind it, so bytes never reorder). docs/sim.md has the measurement that
 * chose this over evhttp's chunked replies. Every byte handed over is
 * counted (`queued`, `sent`), so a request can mark the offset where its
 * first or last content event ends and have the clock read right after
 * the write(2) that carried that byte: those are the truth timestamps.
 *
 * Requests on one connection are served in order: while one is active the
 * connection keeps reading (to notice a client that hangs up) but parses
 * nothing; the next request is parsed from a fresh callback once the
 * response is finished, never from inside the engine's callbacks.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/timeutil.h"
#include "sim/sim_int.h"

#define IN_MAX ((size_t)SIM_HEAD_MAX + (size_t)SIM_BODY_MAX + 65536)
#define READ_CHUNK 65536

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

static void finish_close(struct sim_conn *c);

/* Records now, the start of the write that took them, for marks the socket has taken. */
static void stamp(struct sim_conn *c, int64_t now)
{
    struct sim__req *r = &c->req;
    if (!c->active)
        return;
    if (r->first_mark && c->sent >= r->first_mark) {
        r->first_ns = now;
        r->first_mark = 0;
    }
    if (r->last_mark && c->sent >= r->last_mark) {
        r->last_ns = now;
        r->last_mark = 0;
    }
}

static int backlog_add(struct sim_conn *c, const char *p, size_t n)
{
    if (!c->backlog && !(c->backlog = evbuffer_new()))
        return -1;
    if (evbuffer_get_length(c->backlog) + n > SIM_BACKLOG_MAX) {
        log_warn("sim", "fd %d: client reads too slowly (%zu bytes unsent); closing",
                 c->fd, evbuffer_get_length(c->backlog));
        return -1;
    }
    if (evbuffer_add(c->backlog, p, n) != 0)
        return -1;
    event_add(c->wev, NULL);
    return 0;
}

int sim__conn_send(struct sim_conn *c, const char *p, size_t n)
{
    if (c->dead)
        return -1;
    c->queued += n;
    if (c->backlog && evbuffer_get_length(c->backlog) > 0)
        return backlog_add(c, p, n) ? (c->dead = 1, -1) : 0;
    /* Bytes are handed over when the write starts: a clock read after it
       would take in a preemption at the syscall's return. */
    ssize_t w;
    int64_t now;
    do {
        now = time_mono_ns();
        w = write(c->fd, p, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        c->dead = 1;
        return -1;
    }
    if (w < 0)
        w = 0;
    c->sent += (uint64_t)w;
    stamp(c, now);
    if ((size_t)w < n && backlog_add(c, p + w, n - (size_t)w)) {
        c->dead = 1;
        return -1;
    }
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct sim_conn *c = arg;
    (void)fd;
    (void)what;
    int marked = c->active && (c->req.first_mark || c->req.last_mark);
    while (evbuffer_get_length(c->backlog) > 0) {
        int64_t now = time_mono_ns(); /* as in sim__conn_send */
        int w = evbuffer_write(c->backlog, c->fd);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        if (w <= 0) {
            sim__conn_free(c, "client_closed");
            return;
        }
        c->sent += (uint64_t)w;
        stamp(c, now);
    }
    if (evbuffer_get_length(c->backlog) == 0) {
        event_del(c->wev);
        if (c->closing) {
            finish_close(c);
            return;
        }
    }
    if (marked && !c->req.first_mark && !c->req.last_mark)
        sim__gen_flushed(c); /* may free c */
}

void sim__conn_head(struct sim_conn *c, struct buf *b, int status, const char *ctype,
                    int64_t clen)
{
    buf_printf(b, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (ctype)
        buf_printf(b, "content-type: %s\r\n", ctype);
    c->chunked = 0;
    if (clen >= 0) {
        buf_puts(b, "content-length: ");
        buf_i64(b, clen);
        buf_puts(b, "\r\n");
    } else if (!c->head.http10) {
        buf_puts(b, "transfer-encoding: chunked\r\n");
        c->chunked = 1;
    } else {
        c->head.keep_alive = 0; /* 1.0: the end of the body is the close */
    }
    if (!c->head.keep_alive)
        buf_puts(b, "connection: close\r\n");
    else if (c->head.http10)
        buf_puts(b, "connection: keep-alive\r\n");
    if (c->head.request_id[0])
        buf_printf(b, "x-request-id: %s\r\n", c->head.request_id);
    buf_puts(b, "\r\n");
}

void sim__conn_reply(struct sim_conn *c, int status, const char *ctype, const char *body,
                     size_t n)
{
    struct buf *b = &c->srv->out;
    buf_reset(b);
    sim__conn_head(c, b, status, ctype, (int64_t)n);
    buf_append(b, body, n);
    int rc = buf_err(b) || sim__conn_send(c, b->p, b->len);
    if (b->cap > ((size_t)1 << 20))
        buf_free(b); /* keep the scratch small between large responses */
    if (rc) {
        sim__conn_free(c, "client_closed");
        return;
    }
    sim__conn_next(c);
}

/*
 * Answers a request the connection cannot frame (or must refuse), then
 * closes through SIM_C_LINGER, so that a body the client is still sending
 * does not turn the close into a reset that destroys the answer.
 */
static void conn_fail(struct sim_conn *c, int status, const char *msg)
{
    struct buf body;
    buf_init(&body, 4096);
    sim__render_error(&body, SIM_API_COMPL, status,
                      status == 503 ? "ServiceUnavailableError" : "BadRequestError", msg);
    c->head.keep_alive = 0;
    c->linger = 1;
    c->head.request_id[0] = '\0';
    sim__conn_reply(c, status, "application/json", body.p ? body.p : "", body.len);
    buf_free(&body);
}

static void set_reading(struct sim_conn *c, int on)
{
    if (on && !c->reading)
        event_add(c->rev, NULL);
    else if (!on && c->reading)
        event_del(c->rev);
    c->reading = on;
}

#define LINGER_NS 2000000000LL

static void finish_close(struct sim_conn *c)
{
    if (!c->linger || c->dead) {
        sim__conn_free(c, "client_closed");
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = SIM_C_LINGER;
    c->linger_until = time_mono_ns() + LINGER_NS;
    set_reading(c, 1);
}

void sim__conn_reap(struct sim_server *s, int64_t now)
{
    struct sim_conn *c, *next;
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->state == SIM_C_LINGER && now >= c->linger_until)
            sim__conn_free(c, "client_closed");
    }
}

void sim__conn_next(struct sim_conn *c)
{
    c->state = SIM_C_HEAD;
    c->sent_continue = 0;
    if (!c->head.keep_alive || c->dead) {
        c->closing = 1;
        if (!c->backlog || evbuffer_get_length(c->backlog) == 0)
            finish_close(c);
        return;
    }
    size_t used = c->head.len + (size_t)(c->head.content_length > 0 ? c->head.content_length : 0);
    if (used > c->in.len)
        used = c->in.len;
    if (used) {
        memmove(c->in.p, c->in.p + used, c->in.len - used + 1); /* with the NUL */
        c->in.len -= used;
    }
    if (!c->in.len && c->in.cap > 16384)
        buf_free(&c->in); /* do not keep a large body's room while idle */
    memset(&c->head, 0, sizeof(c->head));
    set_reading(c, 1);
    if (c->in.len)
        event_active(c->rev, EV_READ, 0); /* a pipelined request, from a fresh callback */
}

/* Parses what is buffered; dispatches one complete request. */
static void process(struct sim_conn *c)
{
    if (c->state == SIM_C_HEAD) {
        int rc = sim__head_parse(c->in.p, c->in.len, &c->head);
        if (rc == 0)
            return;
        if (rc < 0) {
            conn_fail(c, rc == ERR_TOOBIG ? 431 : rc == ERR_RANGE ? 414 : 400,
                      rc == ERR_TOOBIG   ? "request head too large"
                      : rc == ERR_RANGE ? "request target or X-Request-Id too long"
                                        : "malformed HTTP request");
            return;
        }
        if (c->reject) {
            conn_fail(c, 503, "too many open connections");
            return;
        }
        if (c->head.has_te || (c->head.method == SIM_M_POST && c->head.content_length < 0)) {
            conn_fail(c, 411, "a Content-Length body is required (no chunked requests)");
            return;
        }
        if (c->head.content_length > SIM_BODY_MAX) {
            conn_fail(c, 413, "request body larger than 4 MiB");
            return;
        }
        c->state = SIM_C_BODY;
    }
    size_t need = c->head.len + (size_t)(c->head.content_length > 0 ? c->head.content_length : 0);
    if (c->in.len < need) {
        if (c->head.expect_continue && !c->sent_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            c->sent_continue = 1;
            if (sim__conn_send(c, cont, sizeof(cont) - 1))
                sim__conn_free(c, "client_closed");
        }
        return;
    }
    c->state = SIM_C_BUSY;
    /* Arrival is when the kernel received the request's last bytes, not
       when this loop got round to reading them: a busy step must not make
       the ground truth late. */
    sim__dispatch(c, c->in.p + c->head.len, need - c->head.len,
                  c->rx_ns ? c->rx_ns : time_mono_ns());
}

/*
 * read(2) that also takes the kernel's receive timestamp (SO_TIMESTAMPNS,
 * CLOCK_REALTIME) and converts it to CLOCK_MONOTONIC into c->rx_ns; 0 when
 * the kernel gave none.
 */
static ssize_t read_stamped(struct sim_conn *c, int fd, char *p, size_t n)
{
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {p, n};
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof(ctl);
    ssize_t k = recvmsg(fd, &m, 0);
    c->rx_ns = 0;
    for (struct cmsghdr *h = k > 0 ? CMSG_FIRSTHDR(&m) : NULL; h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(h), sizeof(ts));
        int64_t v = time_mono_from_realtime(&ts), now = time_mono_ns();
        c->rx_ns = v > 0 && v <= now ? v : 0;
    }
    return k;
}

/*
 * Reads through one shared stack-sized buffer (the loop is single-threaded)
 * and keeps only what arrived, so an idle connection holds no read room.
 */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    static char scratch[READ_CHUNK];
    struct sim_conn *c = arg;
    (void)what;
    if (c->state == SIM_C_LINGER) { /* discard until the client closes */
        ssize_t k = read(fd, scratch, sizeof(scratch));
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            sim__conn_free(c, "client_closed");
        return;
    }
    size_t room = IN_MAX - c->in.len;
    if (room > READ_CHUNK)
        room = READ_CHUNK;
    if (!room) { /* full while a response is in progress: wait for it */
        if (c->state == SIM_C_BUSY)
            set_reading(c, 0);
        else
            sim__conn_free(c, "client_closed");
        return;
    }
    ssize_t n = read_stamped(c, fd, scratch, room);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        n = 0;
    } else if (n <= 0) { /* the client hung up (or reset) */
        sim__conn_free(c, "client_closed");
        return;
    }
    buf_append(&c->in, scratch, (size_t)n);
    if (buf_err(&c->in)) {
        sim__conn_free(c, "client_closed");
        return;
    }
    if (c->state != SIM_C_BUSY)
        process(c);
}

struct sim_conn *sim__conn_accept(struct sim_server *s, int fd)
{
    struct sim_conn *c = mem_calloc(1, sizeof(*c));
    if (c) {
        c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
        c->wev = event_new(s->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    }
    if (!c || !c->rev || !c->wev) {
        if (c && c->rev)
            event_free(c->rev);
        if (c && c->wev)
            event_free(c->wev);
        mem_free(c);
        close(fd);
        return NULL;
    }
    c->srv = s;
    c->fd = fd;
    buf_init(&c->in, IN_MAX);
    buf_init(&c->held, (size_t)8 << 20);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    set_reading(c, 1);
    return c;
}

void sim__conn_free(struct sim_conn *c, const char *reason)
{
    struct sim_server *s = c->srv;
    if (c->active)
        sim__gen_gone(c, reason);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    event_free(c->rev);
    event_free(c->wev);
    if (c->backlog)
        evbuffer_free(c->backlog);
    close(c->fd);
    buf_free(&c->in);
    buf_free(&c->held);
    mem_free(c);
}
