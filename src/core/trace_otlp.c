/*
 * The OTLP/HTTP JSON encoding of a batch of spans (an
 * ExportTraceServiceRequest): resourceSpans, each with its resource's
 * attributes and scopeSpans, each with its scope and spans. Ids are hex
 * strings, times are decimal strings of Unix nanoseconds, and 64-bit
 * integer attribute values are strings too, as the protobuf JSON mapping
 * asks. The spans carry only what the tracing core put in them: names and
 * attributes chosen by the code, never request bodies, SQL parameters or
 * credentials.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/jw.h"
#include "core/trace.h"

static const uint8_t zero_id[8];

/* "key": "<decimal>" for a 64-bit value (JSON strings, as OTLP/JSON wants). */
static void key_i64_str(struct jw *w, const char *key, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)v);
    jw_key(w, key);
    jw_cstr(w, s);
}

/* One KeyValue with a string value. */
static void kv_str(struct jw *w, const char *key, const char *value)
{
    jw_obj_open(w);
    jw_key(w, "key");
    jw_cstr(w, key);
    jw_key(w, "value");
    jw_obj_open(w);
    jw_key(w, "stringValue");
    jw_cstr(w, value);
    jw_obj_close(w);
    jw_obj_close(w);
}

static void attrs(struct jw *w, const struct trace_span *sp)
{
    jw_key(w, "attributes");
    jw_arr_open(w);
    for (int i = 0; i < sp->nattrs && i < TRACE_MAX_ATTRS; i++) {
        const struct trace_attr *a = &sp->attrs[i];
        if (!a->is_int) {
            kv_str(w, a->key, a->s);
            continue;
        }
        jw_obj_open(w);
        jw_key(w, "key");
        jw_cstr(w, a->key);
        jw_key(w, "value");
        jw_obj_open(w);
        key_i64_str(w, "intValue", a->i);
        jw_obj_close(w);
        jw_obj_close(w);
    }
    jw_arr_close(w);
}

static void span(struct jw *w, const struct trace_span *sp)
{
    char hex[33];
    jw_obj_open(w);
    trace_hex(sp->ctx.trace_id, 16, hex);
    jw_key(w, "traceId");
    jw_cstr(w, hex);
    trace_hex(sp->ctx.span_id, 8, hex);
    jw_key(w, "spanId");
    jw_cstr(w, hex);
    if (memcmp(sp->parent_id, zero_id, 8) != 0) {
        trace_hex(sp->parent_id, 8, hex);
        jw_key(w, "parentSpanId");
        jw_cstr(w, hex);
    }
    if (sp->state[0]) {
        jw_key(w, "traceState");
        jw_cstr(w, sp->state);
    }
    jw_key(w, "name");
    jw_cstr(w, sp->name);
    jw_key(w, "kind");
    jw_i64(w, sp->kind);
    key_i64_str(w, "startTimeUnixNano", sp->start_ns);
    key_i64_str(w, "endTimeUnixNano", sp->end_ns);
    attrs(w, sp);
    jw_key(w, "status");
    jw_obj_open(w);
    jw_key(w, "code");
    jw_i64(w, sp->error ? 2 : 0); /* STATUS_CODE_ERROR : STATUS_CODE_UNSET */
    jw_obj_close(w);
    jw_obj_close(w);
}

int trace_otlp_encode(struct buf *out, const struct trace_span *spans, size_t n,
                      const char *version)
{
    struct jw w;
    jw_init(&w, out);
    jw_obj_open(&w);
    jw_key(&w, "resourceSpans");
    jw_arr_open(&w);
    jw_obj_open(&w);
    jw_key(&w, "resource");
    jw_obj_open(&w);
    jw_key(&w, "attributes");
    jw_arr_open(&w);
    kv_str(&w, "service.name", "modelcat");
    kv_str(&w, "service.version", version ? version : "");
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_key(&w, "scopeSpans");
    jw_arr_open(&w);
    jw_obj_open(&w);
    jw_key(&w, "scope");
    jw_obj_open(&w);
    jw_key(&w, "name");
    jw_cstr(&w, "modelcat");
    jw_key(&w, "version");
    jw_cstr(&w, version ? version : "");
    jw_obj_close(&w);
    jw_key(&w, "spans");
    jw_arr_open(&w);
    for (size_t i = 0; i < n; i++)
        span(&w, &spans[i]);
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_arr_close(&w);
    jw_obj_close(&w);
    jw_arr_close(&w);
    jw_obj_close(&w);
    return buf_err(out);
}
