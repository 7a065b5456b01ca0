/*
 * Backends (see backend.h). Request bodies follow what each engine's own
 * benchmark sends (vLLM `bench serve`, TGI's generate_stream); events are
 * read with the tree-less scanner in jscan.c.
 */
#include "bench/backend.h"

#include <string.h>

#include "bench/jscan.h"
#include "bench/req.h"
#include "core/jw.h"

static const char *const names[] = {"vllm", "openai", "openai-chat", "tgi", "lmdeploy"};

int bench_backend_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *bench_backend_name(int b)
{
    return b >= 0 && b < (int)(sizeof(names) / sizeof(names[0])) ? names[b] : "?";
}

const char *bench_backend_path(int b)
{
    switch (b) {
    case BENCH_OPENAI_CHAT: return "/v1/chat/completions";
    case BENCH_TGI: return "/generate_stream";
    default: return "/v1/completions";
    }
}

static void stream_options(struct jw *w)
{
    jw_key(w, "stream");
    jw_bool(w, 1);
    jw_key(w, "stream_options");
    jw_obj_open(w);
    jw_key(w, "include_usage");
    jw_bool(w, 1);
    jw_key(w, "continuous_usage_stats");
    jw_bool(w, 1);
    jw_obj_close(w);
}

void bench_backend_body(int b, const struct bench_reqspec *r, struct buf *out)
{
    struct jw w;
    jw_init(&w, out);
    jw_obj_open(&w);
    if (b == BENCH_TGI) {
        jw_key(&w, "inputs");
        jw_str(&w, r->prompt, r->prompt_len);
        jw_key(&w, "parameters");
        jw_obj_open(&w);
        jw_key(&w, "max_new_tokens");
        jw_i64(&w, r->max_tokens);
        jw_key(&w, "details");
        jw_bool(&w, 1);
        jw_key(&w, "do_sample");
        jw_bool(&w, 0);
        if (r->ignore_eos) { /* TGI has no ignore_eos; the sim honours it */
            jw_key(&w, "ignore_eos");
            jw_bool(&w, 1);
        }
        jw_obj_close(&w);
        jw_obj_close(&w);
        return;
    }
    jw_key(&w, "model");
    jw_cstr(&w, r->model);
    if (b == BENCH_OPENAI_CHAT) {
        jw_key(&w, "messages");
        jw_arr_open(&w);
        jw_obj_open(&w);
        jw_key(&w, "role");
        jw_cstr(&w, "user");
        jw_key(&w, "content");
        jw_str(&w, r->prompt, r->prompt_len);
        jw_obj_close(&w);
        jw_arr_close(&w);
        jw_key(&w, "max_completion_tokens");
    } else {
        jw_key(&w, "prompt");
        jw_str(&w, r->prompt, r->prompt_len);
        jw_key(&w, "max_tokens");
    }
    jw_i64(&w, r->max_tokens);
    jw_key(&w, "temperature");
    jw_i64(&w, 0);
    stream_options(&w);
    if (r->ignore_eos) {
        jw_key(&w, "ignore_eos");
        jw_bool(&w, 1);
    }
    jw_obj_close(&w);
}

static void read_usage(const char *u, const char *end, struct bench_ev *ev)
{
    int64_t v;
    if (!u || js_is_null(u, end))
        return;
    if (js_int(js_get(u, end, "completion_tokens"), end, &v) == 0 && v >= 0) {
        ev->completion_tokens = v;
        ev->tok_src = BENCH_TOK_USAGE;
    }
    if (js_int(js_get(u, end, "prompt_tokens"), end, &v) == 0 && v >= 0)
        ev->prompt_tokens = v;
}

static void openai_event(int b, const char *p, const char *end, struct bench_ev *ev)
{
    const char *c = js_first(js_get(p, end, "choices"), end);
    if (c) {
        const char *text = b == BENCH_OPENAI_CHAT
                               ? js_get(js_get(c, end, "delta"), end, "content")
                               : js_get(c, end, "text");
        /* A role-only chat chunk has "" or no content: not a token. */
        ev->content = js_str_nonempty(text, end) == 1;
    }
    read_usage(js_get(p, end, "usage"), end, ev);
}

static void tgi_event(const char *p, const char *end, struct bench_ev *ev)
{
    const char *tok = js_get(p, end, "token");
    if (tok && !js_is_null(tok, end))
        ev->content = js_str_nonempty(js_get(tok, end, "text"), end) >= 0;
    const char *det = js_get(p, end, "details");
    int64_t v;
    if (det && !js_is_null(det, end) &&
        js_int(js_get(det, end, "generated_tokens"), end, &v) == 0 && v >= 0) {
        ev->completion_tokens = v;
        ev->tok_src = BENCH_TOK_DETAILS;
    }
    const char *gen = js_get(p, end, "generated_text");
    if (gen && !js_is_null(gen, end))
        ev->end = 1;
}

int bench_backend_event(int b, const char *data, size_t len, struct bench_ev *ev)
{
    const char *end = data + len;
    memset(ev, 0, sizeof(*ev));
    ev->completion_tokens = ev->prompt_tokens = -1;
    const char *p = js_ws(data, end);
    if (end - p >= 6 && memcmp(p, "[DONE]", 6) == 0 && js_ws(p + 6, end) == end) {
        ev->end = b != BENCH_TGI;
        return ev->end ? 0 : -1;
    }
    if (p >= end || *p != '{' || js_skip(p, end) == NULL)
        return -1;
    const char *e = js_get(p, end, "error");
    if (e && !js_is_null(e, end)) {
        ev->error = 1;
        return 0;
    }
    if (b == BENCH_TGI)
        tgi_event(p, end, ev);
    else
        openai_event(b, p, end, ev);
    return 0;
}
