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

static void read_usage(const char *u, const char *end, struct bench_ev *ev, int src)
{
    struct js_iter it;
    const char *k, *v, *ve;
    size_t kl;
    int64_t x;
    if (js_obj_begin(&it, u, end))
        return; /* null */
    while (js_obj_next(&it, &k, &kl, &v, &ve) == 1) {
        if ((js_key_is(k, kl, "completion_tokens") || js_key_is(k, kl, "generated_tokens")) &&
            js_int(v, ve, &x) == 0 && x >= 0) {
            ev->completion_tokens = x;
            ev->tok_src = src;
        } else if (js_key_is(k, kl, "prompt_tokens") && js_int(v, ve, &x) == 0 && x >= 0) {
            ev->prompt_tokens = x;
        }
    }
}

/* Content of choices[0]: "text", or for chat delta.content; "" is none. */
static int choice_has_content(int b, const char *c, const char *end)
{
    const char *text = b == BENCH_OPENAI_CHAT ? js_get(js_get(c, end, "delta"), end, "content")
                                              : js_get(c, end, "text");
    return js_str_nonempty(text, end) == 1; /* a role-only chat chunk is not a token */
}

/*
 * One pass over the event's members: each value is skipped (and so
 * checked) once; only choices[0], usage, token and details are looked into.
 */
static int scan_event(int b, const char *p, const char *end, struct bench_ev *ev)
{
    struct js_iter it;
    const char *k, *v, *ve;
    size_t kl;
    int rc;
    if (js_obj_begin(&it, p, end))
        return -1;
    while ((rc = js_obj_next(&it, &k, &kl, &v, &ve)) == 1) {
        if (js_key_is(k, kl, "error")) {
            ev->error |= !js_is_null(v, ve);
        } else if (b == BENCH_TGI) {
            if (js_key_is(k, kl, "token") && !js_is_null(v, ve))
                ev->content = js_str_nonempty(js_get(v, ve, "text"), ve) >= 0;
            else if (js_key_is(k, kl, "details"))
                read_usage(v, ve, ev, BENCH_TOK_DETAILS);
            else if (js_key_is(k, kl, "generated_text"))
                ev->end |= !js_is_null(v, ve);
        } else if (js_key_is(k, kl, "choices")) {
            const char *c = js_first(v, ve);
            ev->content = c && choice_has_content(b, c, ve);
        } else if (js_key_is(k, kl, "usage")) {
            read_usage(v, ve, ev, BENCH_TOK_USAGE);
        }
    }
    if (rc < 0 || js_ws(it.p, end) != end)
        return -1;
    return 0;
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
    if (scan_event(b, p, end, ev))
        return -1;
    if (ev->error) /* an error event says nothing else */
        ev->content = ev->end = 0;
    return 0;
}
