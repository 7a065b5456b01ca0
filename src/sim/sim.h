/*
 * The inference-engine simulator behind `modelcat sim`: an HTTP/1.1 server
 * that speaks the OpenAI/vLLM completions and chat APIs and TGI's generate
 * API, and answers from a model of a continuous-batching engine instead of
 * a GPU. It exists so that the benchmark client (and anyone else) can be
 * tested against a server whose timing is known: every finished request can
 * be written to a "truth" file with the instants the server handed its first
 * and last tokens to the socket. See docs/sim.md.
 *
 * One thread, one libevent loop. sim_run() owns everything it creates and
 * frees all of it before it returns.
 */
#ifndef MC_SIM_SIM_H
#define MC_SIM_SIM_H

#include <stdint.h>

#include "core/err.h"

struct sim_opts {
    const char *listen;         /* "HOST:PORT" or "[V6]:PORT"; port 0 picks one */
    const char *model;          /* the one served model name */
    int max_num_seqs;           /* sequences decoded at once; the rest wait */
    double prefill_tok_per_s;   /* prompt tokens the engine prefills per second */
    double itl_ms;              /* decode step time with an empty batch, ms */
    double itl_ms_per_seq;      /* added step time per running sequence, ms */
    double jitter;              /* step time x (1 + jitter x N(0,1)), >= 0 */
    uint64_t seed;              /* PRNG seed: lengths, jitter, fault draws */
    int max_connections;        /* open client connections at most; more get 503 */
    double error_rate;          /* probability of an injected HTTP 500 */
    double stall_rate;          /* probability of a stall after half the tokens */
    int stall_ms;               /* length of an injected stall */
    double drop_rate;           /* probability of a connection closed mid-stream */
    const char *truth_path;     /* JSON-lines ground truth file, or NULL */
    int stream_interval;        /* token events per write of a stream (>= 1) */
};

/*
 * Listens on o->listen, logs "listening on http://HOST:PORT" and serves
 * until SIGTERM or SIGINT. Raises RLIMIT_NOFILE to its hard limit first.
 * Returns 0 after a signal (truth file flushed, everything freed), or a
 * negative ERR_* code with a message in d when it cannot start (bad
 * address, bind failure, truth file not writable, out of memory).
 */
int sim_run(const struct sim_opts *o, struct err_detail *d) MC_WUR;

/* Process totals that any thread may read while sim_run runs: finished
   requests by finish reason (stop, length, abort) and generated tokens. */
struct sim_totals {
    uint64_t requests[3];
    uint64_t tokens;
};
/* Fills *out with relaxed atomic loads of the totals. */
void sim_totals(struct sim_totals *out);

#endif
