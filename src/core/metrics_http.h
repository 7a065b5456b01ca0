/*
 * A tiny Prometheus endpoint for the commands that are not the server
 * (worker, bench, sim): one thread that accepts on one address, reads one
 * request (8 KiB at most, 2 s to arrive) and answers GET or HEAD /metrics
 * with metrics_render of a registry, 404 otherwise, and closes. One
 * connection at a time. It needs no HTTP library, so bench and sim link
 * nothing of the server's.
 */
#ifndef MC_CORE_METRICS_HTTP_H
#define MC_CORE_METRICS_HTTP_H

#include "core/err.h"
#include "core/metrics.h"

struct metrics_http;

/*
 * Binds addr ("host:port", IPv4, or "[v6]:port"; port 0 picks one),
 * listens and starts the serving thread, which renders m (borrowed: it
 * must outlive metrics_http_stop). Returns 0 and *out, or ERR_INVAL (a bad
 * address), ERR_IO (bind/listen failed) or ERR_NOMEM with detail in d.
 */
int metrics_http_start(const char *addr, struct metrics *m, struct metrics_http **out,
                       struct err_detail *d) MC_WUR;
/* The port it is bound to (the one picked when addr gave 0). */
int metrics_http_port(const struct metrics_http *h);
/* Writes "http://host:port/metrics" (the bound address) into out. */
void metrics_http_url(const struct metrics_http *h, char *out, size_t cap);
/* Stops accepting, waits for the thread and frees h. NULL is a no-op. */
void metrics_http_stop(struct metrics_http *h);

#endif
