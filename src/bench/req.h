/*
 * The per-request record of a benchmark run: what the client measured for
 * one request. Times are CLOCK_MONOTONIC nanoseconds, taken when the bytes
 * were read (all events of one read share its timestamp).
 */
#ifndef MC_BENCH_REQ_H
#define MC_BENCH_REQ_H

#include <stddef.h>
#include <stdint.h>

/* Why a request failed; BENCH_OK when it did not. */
enum bench_err {
    BENCH_OK = 0,
    BENCH_E_CONNECT,      /* connection refused / unreachable */
    BENCH_E_RESET,        /* connection reset or closed before the response ended */
    BENCH_E_TIMEOUT,      /* --request-timeout passed */
    BENCH_E_HTTP_4XX,     /* 4xx other than 429 */
    BENCH_E_HTTP_429,     /* rate limited */
    BENCH_E_HTTP_5XX,
    BENCH_E_STREAM_ERROR, /* an error event inside a 200 stream */
    BENCH_E_TRUNCATED,    /* the stream ended without its final event */
    BENCH_E_MALFORMED,    /* unparsable HTTP, SSE or JSON */
    BENCH_E_OVERSIZED,    /* an event or header over its cap */
    BENCH_E__COUNT
};

/* Where a request's output token count came from. */
enum bench_tok_src {
    BENCH_TOK_EVENTS = 0, /* one per content event (no count from the server) */
    BENCH_TOK_USAGE,      /* usage.completion_tokens (OpenAI/vLLM, LMDeploy) */
    BENCH_TOK_DETAILS,    /* TGI details.generated_tokens */
};

struct bench_req {
    uint64_t id;              /* request id, also sent as X-Request-Id */
    int64_t scheduled_ns;     /* when the arrival process said to send it */
    int64_t sent_ns;          /* when the request was written to the socket */
    int64_t first_ns;         /* first content event; 0 if none */
    int64_t last_ns;          /* last content event; 0 if none */
    int32_t input_tokens;     /* from the server's usage when given, else the dataset */
    int32_t output_tokens;    /* see tok_src */
    int32_t events;           /* content events received */
    uint8_t err;              /* enum bench_err */
    uint8_t tok_src;          /* enum bench_tok_src */
    uint8_t warmup;           /* not counted in the summary */
    int32_t http_status;      /* 0 when no response */
    int64_t *itl_ns;          /* gaps between successive content events (events-1) */
    int32_t itl_len, itl_cap;
};

#endif
