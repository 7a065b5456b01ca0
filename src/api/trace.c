/*
 * The API's server spans: api_dispatch opens one per request when tracing
 * is on (core/trace.h), parented by a valid incoming W3C traceparent, and
 * ends it with the route and status once the response is ready. The db
 * and cache wrappers hang their spans under it through the thread's
 * current span. Only the method, the route pattern (never the path with
 * its ids or the query), the status and the request id are recorded;
 * no header values other than traceparent/tracestate are read.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "core/trace.h"

int api__trace_begin(struct http_req *req, struct trace_span *sp)
{
    struct trace_ctx parent;
    const char *tp = http_header(req, "traceparent");
    int has_parent = tp && trace_parse_parent(tp, strlen(tp), &parent) == 0;
    if (!trace_server_begin(sp, has_parent ? &parent : NULL,
                            req->method_name ? req->method_name : "HTTP"))
        return 0;
    const char *ts = has_parent ? http_header(req, "tracestate") : NULL;
    if (ts && trace_state_ok(ts))
        snprintf(sp->state, sizeof(sp->state), "%s", ts);
    return 1;
}

void api__trace_end(const struct http_req *req, const struct http_resp *resp,
                    struct trace_span *sp)
{
    const char *method = req->method_name ? req->method_name : "";
    const char *route = req->route ? req->route->pattern : "";
    snprintf(sp->name, sizeof(sp->name), "%.16s %.62s", method, req->route ? route : "(no route)");
    trace_attr_str(sp, "http.method", method);
    trace_attr_str(sp, "http.route", route);
    trace_attr_int(sp, "http.status_code", resp->status);
    trace_attr_str(sp, "http.request_id", req->request_id);
    sp->error = resp->status >= 500;
    trace_server_end(sp);
}
