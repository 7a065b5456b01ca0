/*
 * The libcurl transport (--transport curl): for https:// targets, HTTP/2
 * and proxies, which the native transport does not speak. libcurl's multi
 * interface is driven by the same libevent loop (socket and timer
 * callbacks); response bytes reach the shared stream handling (stream.c)
 * from the write callback, which libcurl calls right after each recv, so
 * timestamps mean the same as with the native transport. The request's
 * sent time is the transfer start plus libcurl's PRETRANSFER time.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "bench/backend.h"
#include "bench/client_int.h"
#include "core/mem.h"
#include "core/timeutil.h"

struct xfer {
    struct client *cl;
    CURL *easy;
    struct curl_slist *hdrs;
    struct buf body;
    struct bench_stream st;
    struct bench_req *req;
    int64_t t0;          /* when the transfer was added */
    long status;
    struct xfer *next, *prev;
};

struct curlt {
    CURLM *multi;
    struct event *timer;
    struct xfer *active;
    char url[2048];
};

static void list_push(struct xfer **head, struct xfer *x)
{
    x->prev = NULL;
    x->next = *head;
    if (*head)
        (*head)->prev = x;
    *head = x;
}

static void list_remove(struct xfer **head, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        *head = x->next;
    if (x->next)
        x->next->prev = x->prev;
}

static void xfer_free(struct curlt *t, struct xfer *x)
{
    curl_multi_remove_handle(t->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    buf_free(&x->body);
    bench__stream_free(&x->st);
    mem_free(x);
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    x->st.ts = time_mono_ns();
    x->cl->run->reads++;
    if (!x->status)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    if (x->status != 200)
        return len;
    return bench__stream_body(&x->st, p, len) ? 0 : len; /* 0 aborts the transfer */
}

static int verdict(struct xfer *x, CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        return bench__stream_verdict(&x->st, (int)x->status);
    case CURLE_WRITE_ERROR: /* we stopped it: the stream said why */
        return x->req->err ? x->req->err : BENCH_E_MALFORMED;
    case CURLE_OPERATION_TIMEDOUT:
        return BENCH_E_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION: /* an https server we cannot trust */
        return BENCH_E_CONNECT;
    case CURLE_PARTIAL_FILE:
        return BENCH_E_TRUNCATED;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return BENCH_E_RESET;
    default:
        return BENCH_E_MALFORMED;
    }
}

static void check_done(struct client *cl)
{
    struct curlt *t = cl->tp;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct xfer *x;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        curl_off_t pre = 0;
        curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
        x->req->sent_ns = x->t0 + (int64_t)pre * 1000;
        int err = verdict(x, cc);
        struct bench_req *r = x->req;
        list_remove(&t->active, x);
        xfer_free(t, x);
        bench__finish(cl, r, err);
    }
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    struct curlt *t = cl->tp;
    int running, action = (what & EV_READ ? CURL_CSELECT_IN : 0) |
                          (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(t->multi, fd, action, &running);
    check_done(cl);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    struct curlt *t = cl->tp;
    int running;
    (void)fd, (void)what;
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(cl);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct client *cl = userp;
    struct curlt *t = cl->tp;
    struct event *ev = socketp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (ev)
            event_free(ev);
        curl_multi_assign(t->multi, s, NULL);
        return 0;
    }
    short flags = EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) |
                  (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (ev) {
        event_del(ev);
        event_assign(ev, cl->base, s, flags, on_sock, cl);
    } else {
        ev = event_new(cl->base, s, flags, on_sock, cl);
        if (!ev)
            return -1;
        curl_multi_assign(t->multi, s, ev);
    }
    event_add(ev, NULL);
    return 0;
}

static int timer_cb(CURLM *multi, long ms, void *userp)
{
    struct client *cl = userp;
    struct curlt *t = cl->tp;
    (void)multi;
    if (ms < 0) {
        evtimer_del(t->timer);
    } else {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        evtimer_add(t->timer, &tv);
    }
    return 0;
}

static int curl_start(struct client *cl, struct bench_req *r)
{
    struct curlt *t = cl->tp;
    const struct bench_load *l = cl->l;
    struct xfer *x = mem_calloc(1, sizeof(*x));
    char line[300], rid[40];
    if (!x)
        return -1;
    x->cl = cl;
    x->req = r;
    buf_init(&x->body, 8 << 20);
    bench__stream_init(&x->st, cl);
    bench__stream_begin(&x->st, r);
    bench__request_body(cl, r, &x->body);
    if (buf_err(&x->body) || !(x->easy = curl_easy_init())) {
        xfer_free(t, x);
        return -1;
    }
    bench_request_id(cl->run, r->id, rid);
    snprintf(line, sizeof(line), "X-Request-Id: %s", rid);
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    x->hdrs = curl_slist_append(x->hdrs, "Accept: text/event-stream");
    x->hdrs = curl_slist_append(x->hdrs, line);
    char tp[TRACE_PARENT_LEN + 1];
    bench_traceparent(cl->run, r->id, tp);
    snprintf(line, sizeof(line), "traceparent: %s", tp);
    x->hdrs = curl_slist_append(x->hdrs, line);
    if (l->api_key) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", l->api_key);
        x->hdrs = curl_slist_append(x->hdrs, line);
    }
    for (int i = 0; i < l->nheaders; i++)
        x->hdrs = curl_slist_append(x->hdrs, l->headers[i]);
    char url[2200];
    snprintf(url, sizeof(url), "%s%s", t->url, bench_backend_path(l->backend));
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body.p);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body.len);
    curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L);
    if (l->cacert)
        curl_easy_setopt(x->easy, CURLOPT_CAINFO, l->cacert);
    if (l->request_timeout_s > 0)
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(l->request_timeout_s * 1000));
    x->t0 = time_mono_ns();
    list_push(&t->active, x);
    if (curl_multi_add_handle(t->multi, x->easy) != CURLM_OK) {
        list_remove(&t->active, x);
        xfer_free(t, x);
        return -1;
    }
    return 0;
}

static int curl_init_transport(struct client *cl, struct err_detail *d)
{
    struct curlt *t = mem_calloc(1, sizeof(*t));
    if (!t)
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    cl->tp = t;
    snprintf(t->url, sizeof(t->url), "%s", cl->url);
    size_t n = strlen(t->url);
    while (n && t->url[n - 1] == '/')
        t->url[--n] = '\0';
    curl_global_init(CURL_GLOBAL_DEFAULT);
    t->multi = curl_multi_init();
    t->timer = evtimer_new(cl->base, on_timer, cl);
    if (!t->multi || !t->timer)
        return err_set(d, ERR_NOMEM, NULL, "cannot set up libcurl");
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, cl);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, cl);
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, 65536L);
    if (cl->l->max_concurrency)
        curl_multi_setopt(t->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                          (long)cl->l->max_concurrency);
    return 0;
}

static void curl_sweep(struct client *cl, int64_t now)
{
    (void)cl, (void)now; /* CURLOPT_TIMEOUT_MS enforces the timeout */
}

static void curl_shutdown(struct client *cl)
{
    struct curlt *t = cl->tp;
    if (!t)
        return;
    while (t->active) {
        struct xfer *x = t->active;
        list_remove(&t->active, x);
        xfer_free(t, x); /* its request stays unfinished: incomplete */
    }
    if (t->multi)
        curl_multi_cleanup(t->multi);
    if (t->timer)
        event_free(t->timer);
    mem_free(t);
    cl->tp = NULL;
}

const struct bench_transport bench_curl_transport = {
    .name = "curl",
    .init = curl_init_transport,
    .start = curl_start,
    .sweep = curl_sweep,
    .shutdown = curl_shutdown,
};
