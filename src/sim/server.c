/*
 * `modelcat sim`'s server: the event loop, the listening socket, the one
 * engine timer, signals, and the route table. Generation requests go to
 * gen.c; connection I/O lives in conn.c. Single-threaded by design: the
 * engine, the metrics and every connection are touched only from the loop,
 * so nothing is locked.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "sim/sim_int.h"

void sim__rearm(struct sim_server *s)
{
    int64_t next = sim__engine_next(&s->eng);
    if (next == s->armed)
        return;
    s->armed = next;
    if (next < 0) {
        evtimer_del(s->tick);
        return;
    }
    int64_t d = next - time_mono_ns();
    if (d < 0)
        d = 0;
    int64_t us = (d + 999) / 1000; /* round up: never wake before it is due */
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    evtimer_add(s->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sim_server *s = arg;
    (void)fd;
    (void)what;
    s->armed = -1;
    sim__engine_run(&s->eng, time_mono_ns());
    sim__rearm(s);
}

static void on_house(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    int64_t now = time_mono_ns();
    sim__gen_keepalive(arg, now);
    sim__conn_reap(arg, now);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct sim_server *s = arg;
    (void)what;
    log_info("sim", "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopbreak(s->base);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    struct sim_server *s = arg;
    (void)l;
    (void)sa;
    (void)salen;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Kernel receive times of requests, for the ground truth's arrival. */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    /* Over the limit: answer the request 503, within a bounded overdraft. */
    if (s->nconns >= s->o->max_connections + 1024) {
        close(fd);
        return;
    }
    struct sim_conn *c = sim__conn_accept(s, fd);
    if (c && s->nconns > s->o->max_connections)
        c->reject = 1;
}

static void on_relisten(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(((struct sim_server *)arg)->lis);
}

/* accept(2) failed (EMFILE...): pause accepting for 100 ms, not spin. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct sim_server *s = arg;
    struct timeval tv = {0, 100000};
    log_warn("sim", "accept: %s; pausing 100 ms", strerror(errno));
    evconnlistener_disable(l);
    evtimer_add(s->relisten, &tv);
}

static void reply_json(struct sim_conn *c, int status, const char *json)
{
    sim__conn_reply(c, status, "application/json", json, strlen(json));
}

static void get_route(struct sim_conn *c, const char *path)
{
    struct sim_server *s = c->srv;
    struct buf b;
    buf_init(&b, 1 << 20);
    if (!strcmp(path, "/health")) {
        sim__conn_reply(c, 200, NULL, "", 0);
    } else if (!strcmp(path, "/v1/models")) {
        sim__render_models(&b, s->o->model, time_wall_ms() / 1000);
        sim__conn_reply(c, 200, "application/json", b.p, b.len);
    } else if (!strcmp(path, "/metrics")) {
        /* KV-cache usage: the share of the decode slots in use. */
        double kv = s->o->max_num_seqs > 0 ? (double)s->eng.running / s->o->max_num_seqs : 0;
        sim__metrics_render(&b, &s->met, s->o->model, (int64_t)s->eng.running,
                            (int64_t)s->eng.waiting.n, kv > 1 ? 1 : kv);
        if (buf_err(&b))
            reply_json(c, 500, "{\"detail\":\"metrics too large\"}");
        else
            sim__conn_reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.len);
    } else {
        reply_json(c, 404, "{\"detail\":\"Not Found\"}");
    }
    buf_free(&b);
}

static const struct {
    const char *path;
    int method, api, stream; /* stream -1: from the body */
} routes[] = {
    {"/health", SIM_M_GET, -1, 0},
    {"/v1/models", SIM_M_GET, -1, 0},
    {"/metrics", SIM_M_GET, -1, 0},
    {"/v1/completions", SIM_M_POST, SIM_API_COMPL, -1},
    {"/v1/chat/completions", SIM_M_POST, SIM_API_CHAT, -1},
    {"/generate", SIM_M_POST, SIM_API_TGI, 0},
    {"/generate_stream", SIM_M_POST, SIM_API_TGI, 1},
};

void sim__dispatch(struct sim_conn *c, const char *body, size_t n, int64_t now)
{
    const char *path = c->head.path;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (routes[i].method != c->head.method) {
            reply_json(c, 405, "{\"detail\":\"Method Not Allowed\"}");
            return;
        }
        if (routes[i].api < 0)
            get_route(c, path);
        else
            sim__gen_start(c, routes[i].api, routes[i].stream, body, n, now);
        return;
    }
    reply_json(c, 404, "{\"detail\":\"Not Found\"}");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        log_warn("sim", "cannot raise the open-file limit: %s", strerror(errno));
}

/* Splits "host:port" / "[v6]:port" into host and port. */
static int split_listen(const char *l, char *host, size_t hn, char *port, size_t pn,
                        struct err_detail *d)
{
    const char *colon = strrchr(l, ':');
    const char *h = l, *he = colon;
    if (!colon || !colon[1])
        return err_set(d, ERR_INVAL, "listen", "--listen: '%s' is not HOST:PORT", l);
    if (*l == '[') {
        if (colon == l || colon[-1] != ']')
            return err_set(d, ERR_INVAL, "listen", "--listen: '%s' is not [V6]:PORT", l);
        h = l + 1;
        he = colon - 1;
    }
    if ((size_t)(he - h) >= hn || strlen(colon + 1) >= pn)
        return err_set(d, ERR_INVAL, "listen", "--listen: '%s' is too long", l);
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    return 0;
}

static int bound_port(struct evconnlistener *lis)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(lis), (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int start_listener(struct sim_server *s, struct err_detail *d)
{
    char host[256], port[16];
    int rc = split_listen(s->o->listen, host, sizeof(host), port, sizeof(port), d);
    if (rc)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (g != 0)
        return err_set(d, ERR_INVAL, "listen", "--listen %s: %s", s->o->listen,
                       gai_strerror(g));
    s->lis = evconnlistener_new_bind(s->base, on_accept, s,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC,
                                     4096, ai->ai_addr, (int)ai->ai_addrlen);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (!s->lis)
        return err_set(d, ERR_IO, "listen", "cannot listen on %s: %s", s->o->listen,
                       strerror(errno));
    evconnlistener_set_error_cb(s->lis, on_accept_error);
    log_info("sim", "listening on http://%s%s%s:%d (model %s, max-num-seqs %d)",
             family == AF_INET6 ? "[" : "", host, family == AF_INET6 ? "]" : "",
             bound_port(s->lis), s->o->model, s->o->max_num_seqs);
    return 0;
}

static int make_events(struct sim_server *s, struct err_detail *d)
{
    struct event_config *cfg = event_config_new();
    if (cfg) {
        /* Exact timers (timerfd) instead of the coarse clock's ~4 ms steps. */
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER | EVENT_BASE_FLAG_NOLOCK);
        s->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (!s->base)
        return err_set(d, ERR_NOMEM, "", "cannot create the event loop");
    s->tick = evtimer_new(s->base, on_tick, s);
    s->house = event_new(s->base, -1, EV_PERSIST, on_house, s);
    s->relisten = evtimer_new(s->base, on_relisten, s);
    s->sig_term = evsignal_new(s->base, SIGTERM, on_signal, s);
    s->sig_int = evsignal_new(s->base, SIGINT, on_signal, s);
    if (!s->tick || !s->house || !s->relisten || !s->sig_term || !s->sig_int)
        return err_set(d, ERR_NOMEM, "", "cannot create events");
    struct timeval quarter = {0, 250000}; /* keep-alive comments within 1.25 s */
    event_add(s->house, &quarter);
    event_add(s->sig_term, NULL);
    event_add(s->sig_int, NULL);
    return 0;
}

static void free_event(struct event *ev)
{
    if (ev)
        event_free(ev);
}

static int teardown(struct sim_server *s)
{
    while (s->conns)
        sim__conn_free(s->conns, "shutdown");
    if (s->lis)
        evconnlistener_free(s->lis);
    free_event(s->tick);
    free_event(s->house);
    free_event(s->relisten);
    free_event(s->sig_term);
    free_event(s->sig_int);
    if (s->base)
        event_base_free(s->base);
    buf_free(&s->out);
    return sim__truth_close(&s->truth);
}

int sim_run(const struct sim_opts *o, struct err_detail *d)
{
    struct sim_server s;
    memset(&s, 0, sizeof(s));
    s.o = o;
    s.armed = -1;
    buf_init(&s.out, SIM_OUT_MAX);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    rng_seed(&s.rng, o->seed);
    /* Generated request ids differ between runs; nothing else depends on them. */
    rng_seed(&s.id_rng, (uint64_t)time_wall_ms() * 1000003u ^ (uint64_t)getpid() ^
                                 (uint64_t)time_mono_ns());
    sim__metrics_init(&s.met);
    struct sim__engine_cfg ec = {
        .max_num_seqs = o->max_num_seqs,
        .prefill_tok_per_s = o->prefill_tok_per_s,
        .itl_ms = o->itl_ms,
        .itl_ms_per_seq = o->itl_ms_per_seq,
        .jitter = o->jitter,
    };
    sim__engine_init(&s.eng, &ec, &s.rng, sim__gen_token, &s);
    int rc = sim__truth_open(&s.truth, o->truth_path, d);
    if (!rc)
        rc = make_events(&s, d);
    if (!rc)
        rc = start_listener(&s, d);
    if (!rc && event_base_dispatch(s.base) < 0)
        rc = err_set(d, ERR_INTERNAL, "", "the event loop failed");
    int trc = teardown(&s);
    if (!rc && trc)
        rc = err_set(d, trc, "truth", "cannot write the truth file %s", o->truth_path);
    return rc;
}
