/*
 * The OTLP/HTTP span exporter: a background thread that drains the tracing
 * core's queue (core/trace.h) in batches and POSTs them as JSON to
 * {endpoint}/v1/traces with libcurl.
 */
#ifndef MC_TRACE_EXPORT_H
#define MC_TRACE_EXPORT_H

#include "core/err.h"

#define TRACE_EXPORT_BATCH 512         /* spans per POST at most */
#define TRACE_EXPORT_BODY_MAX (8 << 20) /* a batch's JSON at most; more: dropped */

struct trace_exporter;

struct trace_export_opts {
    const char *endpoint;    /* "http://collector:4318" (no /v1/traces); copied */
    const char *version;     /* service.version; static */
    int interval_ms;         /* flush period; 0: 1000 */
    int timeout_ms;          /* per POST; 0: 5000 */
};

/*
 * Starts the exporter thread. The tracing core must be initialized
 * (trace_init). Returns 0 with *out set; ERR_INVAL (detail in d) for an
 * endpoint that is not http(s)://, ERR_NOMEM, or ERR_INTERNAL when the
 * thread cannot start.
 */
int trace_export_start(const struct trace_export_opts *o, struct trace_exporter **out,
                       struct err_detail *d) MC_WUR;
/*
 * Stops the thread after one last flush of what is queued (each POST
 * bounded by the timeout) and frees e. NULL is a no-op.
 */
void trace_export_stop(struct trace_exporter *e);

#endif
