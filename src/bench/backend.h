/*
 * Inference-engine protocols as the benchmark client speaks them: the
 * request each backend expects, and what one streamed event means
 * (content or not, token counts the server reports, errors, the end).
 */
#ifndef MC_BENCH_BACKEND_H
#define MC_BENCH_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

enum bench_backend {
    BENCH_VLLM,        /* POST /v1/completions, vLLM's extensions */
    BENCH_OPENAI,      /* POST /v1/completions */
    BENCH_OPENAI_CHAT, /* POST /v1/chat/completions */
    BENCH_TGI,         /* POST /generate_stream */
    BENCH_LMDEPLOY,    /* POST /v1/completions (errors as events) */
};

/* Backend by name ("vllm", "openai", "openai-chat", "tgi", "lmdeploy"), or -1. */
int bench_backend_parse(const char *name);
const char *bench_backend_name(int b);
/* Path of the streaming endpoint, relative to the base URL. */
const char *bench_backend_path(int b);

struct bench_reqspec {
    const char *model;
    const char *prompt;
    size_t prompt_len;
    int max_tokens;
    int ignore_eos;
};

/* Appends the JSON request body for backend b to out. */
void bench_backend_body(int b, const struct bench_reqspec *r, struct buf *out);

/* What one SSE event says. */
struct bench_ev {
    int content;                /* carries generated text: a token event */
    int64_t completion_tokens;  /* the server's cumulative count, or -1 */
    int64_t prompt_tokens;      /* the server's prompt count, or -1 */
    int tok_src;                /* enum bench_tok_src of completion_tokens */
    int end;                    /* the stream's last event ([DONE], TGI's final) */
    int error;                  /* an error event inside the stream */
};

/*
 * Interprets one event's data. Returns 0, or -1 when the data is not a
 * JSON object (nor "[DONE]") — a malformed stream.
 */
int bench_backend_event(int b, const char *data, size_t len, struct bench_ev *ev);

#endif
