/*
 * Response bytes of the simulated servers, field for field as vLLM's
 * OpenAI-compatible server and TGI write them (vLLM: protocol.py and
 * serving_completion.py / serving_chat.py, pydantic dumps with their
 * exclude_unset / exclude_none choices; TGI: router StreamResponse and
 * GenerateResponse). Stream events are appended as whole SSE events
 * ("data: {...}\n\n", TGI "data:{...}\n\n"); chunked framing is separate
 * (sim__chunk_open / sim__chunk_close) so several events can share one
 * write(2) while staying one chunk each.
 *
 * Token events are on the hot path, so they are appended with plain
 * buffer calls rather than through the JSON writer.
 */
#include <stdio.h>
#include <string.h>

#include "core/jw.h"
#include "sim/sim_int.h"

#define TGI_LOGPROB "-0.25"

int sim__tok_text(char out[24], int64_t i)
{
    return snprintf(out, 24, " tok%lld", (long long)i);
}

static void tok(struct buf *b, int64_t i)
{
    char t[24];
    int n = sim__tok_text(t, i);
    buf_putc(b, '"');
    buf_append(b, t, (size_t)n);
    buf_putc(b, '"');
}

/* The concatenated text of tokens 0..n-1 as one JSON string. */
static void all_text(struct buf *b, int64_t n)
{
    char t[24];
    buf_putc(b, '"');
    for (int64_t i = 0; i < n && !buf_err(b); i++)
        buf_append(b, t, (size_t)sim__tok_text(t, i));
    buf_putc(b, '"');
}

static const char *finish(const struct sim__out *o)
{
    if (!o->early_stop)
        return "length";
    return o->api == SIM_API_TGI ? "eos_token" : "stop";
}

/* {"id":..,"object":..,"created":..,"model":.., */
static void openai_head(struct buf *b, const struct sim__out *o, const char *object)
{
    buf_puts(b, "{\"id\":");
    jw_escape(b, o->id, strlen(o->id));
    buf_puts(b, ",\"object\":\"");
    buf_puts(b, object);
    buf_puts(b, "\",\"created\":");
    buf_i64(b, o->created);
    buf_puts(b, ",\"model\":");
    jw_escape(b, o->model, strlen(o->model));
    buf_putc(b, ',');
}

/* UsageInfo in vLLM's field order; with_details adds prompt_tokens_details. */
static void usage(struct buf *b, int64_t prompt, int64_t completion, int with_details)
{
    buf_puts(b, "{\"prompt_tokens\":");
    buf_i64(b, prompt);
    buf_puts(b, ",\"total_tokens\":");
    buf_i64(b, prompt + completion);
    buf_puts(b, ",\"completion_tokens\":");
    buf_i64(b, completion);
    buf_puts(b, with_details ? ",\"prompt_tokens_details\":null}" : "}");
}

static void tgi_token(struct buf *b, int64_t i)
{
    buf_puts(b, "{\"id\":");
    buf_i64(b, 1000 + i);
    buf_puts(b, ",\"text\":");
    tok(b, i);
    buf_puts(b, ",\"logprob\":" TGI_LOGPROB ",\"special\":false}");
}

static void tgi_event(struct buf *b, const struct sim__out *o, int64_t i, int last)
{
    buf_puts(b, "data:{\"index\":");
    buf_i64(b, i + 1);
    buf_puts(b, ",\"token\":");
    tgi_token(b, i);
    if (!last) {
        buf_puts(b, ",\"generated_text\":null,\"details\":null}\n\n");
        return;
    }
    buf_puts(b, ",\"generated_text\":");
    all_text(b, i + 1);
    if (o->details) {
        buf_puts(b, ",\"details\":{\"finish_reason\":\"");
        buf_puts(b, finish(o));
        buf_puts(b, "\",\"generated_tokens\":");
        buf_i64(b, i + 1);
        buf_puts(b, ",\"seed\":null}}\n\n");
    } else {
        buf_puts(b, ",\"details\":null}\n\n");
    }
}

void sim__render_token(struct buf *b, const struct sim__out *o, int64_t i, int last)
{
    if (o->api == SIM_API_TGI) {
        tgi_event(b, o, i, last);
        return;
    }
    int chat = o->api == SIM_API_CHAT;
    buf_puts(b, "data: ");
    openai_head(b, o, chat ? "chat.completion.chunk" : "text_completion");
    buf_puts(b, chat ? "\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     : "\"choices\":[{\"index\":0,\"text\":");
    tok(b, i);
    buf_puts(b, chat ? "},\"logprobs\":null,\"finish_reason\":" : ",\"logprobs\":null,"
                                                                 "\"finish_reason\":");
    if (last) {
        buf_putc(b, '"');
        buf_puts(b, finish(o));
        buf_puts(b, "\",\"stop_reason\":null}]");
    } else {
        buf_puts(b, chat ? "null}]" : "null,\"stop_reason\":null}]");
    }
    if (o->continuous_usage) {
        buf_puts(b, ",\"usage\":");
        usage(b, o->prompt_tokens, i + 1, !chat);
    } else if (!chat) {
        buf_puts(b, ",\"usage\":null"); /* completions dump with exclude_unset=False */
    }
    buf_puts(b, "}\n\n");
}

void sim__render_role(struct buf *b, const struct sim__out *o)
{
    buf_puts(b, "data: ");
    openai_head(b, o, "chat.completion.chunk");
    buf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
                "\"\"},\"logprobs\":null,\"finish_reason\":null}]");
    if (o->continuous_usage) {
        buf_puts(b, ",\"usage\":");
        usage(b, o->prompt_tokens, 0, 0);
    }
    buf_puts(b, "}\n\n");
}

void sim__render_usage(struct buf *b, const struct sim__out *o, int64_t n)
{
    if (o->api == SIM_API_TGI || !o->include_usage)
        return;
    buf_puts(b, "data: ");
    openai_head(b, o, o->api == SIM_API_CHAT ? "chat.completion.chunk" : "text_completion");
    buf_puts(b, "\"choices\":[],\"usage\":");
    usage(b, o->prompt_tokens, n, 0);
    buf_puts(b, "}\n\n");
}

void sim__render_done(struct buf *b)
{
    buf_puts(b, "data: [DONE]\n\n");
}

static void full_tgi(struct buf *b, const struct sim__out *o, int64_t n)
{
    buf_puts(b, "{\"generated_text\":");
    all_text(b, n);
    if (o->details) {
        buf_puts(b, ",\"details\":{\"finish_reason\":\"");
        buf_puts(b, finish(o));
        buf_puts(b, "\",\"generated_tokens\":");
        buf_i64(b, n);
        buf_puts(b, ",\"seed\":null,\"prefill\":[],\"tokens\":[");
        for (int64_t i = 0; i < n && !buf_err(b); i++) {
            if (i)
                buf_putc(b, ',');
            tgi_token(b, i);
        }
        buf_puts(b, "]}");
    }
    buf_putc(b, '}');
}

void sim__render_full(struct buf *b, const struct sim__out *o, int64_t n)
{
    if (o->api == SIM_API_TGI) {
        full_tgi(b, o, n);
        return;
    }
    int chat = o->api == SIM_API_CHAT;
    openai_head(b, o, chat ? "chat.completion" : "text_completion");
    buf_puts(b, chat ? "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"reasoning_content\":null,\"content\":"
                     : "\"choices\":[{\"index\":0,\"text\":");
    all_text(b, n);
    buf_puts(b, chat ? ",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\""
                     : ",\"logprobs\":null,\"finish_reason\":\"");
    buf_puts(b, finish(o));
    buf_puts(b, chat ? "\",\"stop_reason\":null}],\"usage\":"
                     : "\",\"stop_reason\":null,\"prompt_logprobs\":null}],\"usage\":");
    usage(b, o->prompt_tokens, n, 1);
    buf_puts(b, chat ? ",\"prompt_logprobs\":null}" : "}");
}

static const char *tgi_error_type(int code)
{
    switch (code) {
    case 500: return "generation";
    case 503: return "overloaded";
    case 404: return "not_found";
    default: return "validation";
    }
}

void sim__render_error(struct buf *b, int api, int code, const char *type, const char *msg)
{
    struct jw w;
    jw_init(&w, b);
    jw_obj_open(&w);
    jw_key(&w, "error");
    if (api == SIM_API_TGI) {
        jw_cstr(&w, msg);
        jw_key(&w, "error_type");
        jw_cstr(&w, tgi_error_type(code));
    } else {
        jw_obj_open(&w);
        jw_key(&w, "message");
        jw_cstr(&w, msg);
        jw_key(&w, "type");
        jw_cstr(&w, type);
        jw_key(&w, "param");
        jw_null(&w);
        jw_key(&w, "code");
        jw_i64(&w, code);
        jw_obj_close(&w);
    }
    jw_obj_close(&w);
}

void sim__render_error_event(struct buf *b, int api, const char *msg)
{
    if (api == SIM_API_TGI) {
        buf_puts(b, "data:{\"error\":");
        jw_escape(b, msg, strlen(msg));
        buf_puts(b, ",\"error_type\":\"generation\"}\n\n");
        return;
    }
    buf_puts(b, "data: {\"error\":{\"message\":");
    jw_escape(b, msg, strlen(msg));
    buf_puts(b, ",\"type\":\"InternalServerError\",\"code\":500}}\n\n");
}

void sim__render_models(struct buf *b, const char *model, int64_t created)
{
    struct jw w;
    jw_init(&w, b);
    jw_obj_open(&w);
    jw_key(&w, "object");
    jw_cstr(&w, "list");
    jw_key(&w, "data");
    jw_arr_open(&w);
    jw_obj_open(&w);
    jw_key(&w, "id");
    jw_cstr(&w, model);
    jw_key(&w, "object");
    jw_cstr(&w, "model");
    jw_key(&w, "created");
    jw_i64(&w, created);
    jw_key(&w, "owned_by");
    jw_cstr(&w, "vllm");
    jw_key(&w, "root");
    jw_cstr(&w, model);
    jw_key(&w, "parent");
    jw_null(&w);
    jw_obj_close(&w);
    jw_arr_close(&w);
    jw_obj_close(&w);
}

#define CHUNK_ROOM 10 /* "ffffffff\r\n" */

size_t sim__chunk_open(struct buf *b)
{
    size_t at = b->len;
    buf_append(b, "0000000000", CHUNK_ROOM);
    return at;
}

void sim__chunk_close(struct buf *b, size_t at)
{
    if (at == (size_t)-1 || buf_err(b))
        return;
    size_t size = b->len - at - CHUNK_ROOM;
    char line[CHUNK_ROOM + 8];
    int k = snprintf(line, sizeof(line), "%zx\r\n", size);
    memmove(b->p + at + k, b->p + at + CHUNK_ROOM, size);
    memcpy(b->p + at, line, (size_t)k);
    b->len -= CHUNK_ROOM - (size_t)k;
    buf_append(b, "\r\n", 2);
}
