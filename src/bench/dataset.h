/*
 * Prompts for a benchmark run: synthetic random prompts, ShareGPT
 * conversations, or a JSONL file of our own.
 *
 * Tokens are counted as words: one token is one maximal run of bytes that
 * are not ASCII whitespace (space, \t, \n, \v, \f, \r). The engine
 * simulator counts the same way, so a prompt's input_tokens is what the
 * simulator will report as its prompt tokens. Against a real engine the
 * server's own count (usage) replaces it in the results.
 *
 * Every file is outside input: a file may hold at most BENCH_FILE_MAX
 * bytes, a prompt at most BENCH_PROMPT_MAX bytes, an output length at most
 * BENCH_OUTPUT_LEN_MAX tokens; errors name the line (JSONL) or the entry
 * and its line (ShareGPT).
 */
#ifndef MC_BENCH_DATASET_H
#define MC_BENCH_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define BENCH_FILE_MAX ((size_t)1 << 30)        /* 1 GiB */
#define BENCH_PROMPT_MAX ((size_t)1 << 20)      /* 1 MiB of prompt text */
#define BENCH_OUTPUT_LEN_MAX 1048576            /* tokens asked of one request */
#define BENCH_DATASET_MAX ((size_t)10000000)    /* prompts in one dataset */

struct bench_prompt {
    char *text;            /* owned by the dataset; NUL-terminated, valid UTF-8 */
    size_t len;            /* bytes, without the NUL */
    int32_t input_tokens;  /* words in text (see above), >= 1 */
    int32_t output_len;    /* tokens to ask for (max_tokens), >= 1 */
};

struct bench_dataset {
    struct bench_prompt *v; /* owned; n entries */
    size_t n;
};

/* Number of words (tokens, as defined above) in the n bytes at s. */
size_t bench_count_words(const char *s, size_t n);

/*
 * Synthetic prompts, as vLLM's random dataset: for each of n prompts an
 * input length uniform in [floor(L(1-r)), ceil(L(1+r))] with L = input_len
 * and an output length likewise from output_len (both at least 1), with
 * r = range_ratio in [0, 1). The text is prefix_len words shared by every
 * prompt, then the prompt's own random words, all drawn from a fixed
 * vocabulary of 6,400 four-letter lowercase words; input_tokens is
 * prefix_len plus the drawn length. Everything, the shared prefix too,
 * comes from seed: the same seed gives the same dataset, another seed
 * different prompts (so an engine's prefix cache is cold across runs).
 *
 * Returns 0 and fills ds (free with bench_dataset_free), or ERR_RANGE
 * (a parameter out of bounds, or a prompt over BENCH_PROMPT_MAX) or
 * ERR_NOMEM with detail; ds is empty on error.
 */
int bench_dataset_random(struct bench_dataset *ds, size_t n, int32_t input_len,
                         int32_t output_len, double range_ratio, int32_t prefix_len,
                         uint64_t seed, struct err_detail *d) MC_WUR;

/*
 * ShareGPT JSON at path: an array of {"conversations": [{"from": ...,
 * "value": ...}, ...]}. The prompt is the first turn from "human" (or
 * "user"), output_len the word count of the turn that follows it (capped at
 * BENCH_OUTPUT_LEN_MAX). Entries with fewer than 2 turns, no human turn
 * followed by a reply, an empty prompt or reply, or a prompt over
 * BENCH_PROMPT_MAX are skipped, not refused: one odd conversation in a
 * public dataset should not stop a run. The usable entries are shuffled with seed
 * and the first n taken; when fewer than n are usable they repeat in the
 * shuffled order until n are taken. n = 0 takes every usable entry once.
 * Entries are parsed one at a time, so memory is the file plus the result.
 *
 * Returns 0 and fills ds, or with detail: ERR_IO / ERR_NOTFOUND (the
 * file), ERR_TOOBIG (file over its cap), ERR_PARSE (not JSON,
 * or an entry of the wrong shape: "entry 12 (line 340): ..."), ERR_INVAL
 * (no usable entry), ERR_NOMEM. ds is empty on error.
 */
int bench_dataset_sharegpt(struct bench_dataset *ds, const char *path, size_t n,
                           uint64_t seed, struct err_detail *d) MC_WUR;

/*
 * JSONL at path: one {"prompt": string, "output_len": integer >= 1} per
 * line (other members are ignored; duplicate keys are refused). Lines of
 * only whitespace are skipped. The prompt must hold at least one word.
 * The whole file is validated; the first n records are taken, repeating
 * from the first when the file has fewer. n = 0 takes every record once.
 *
 * Returns 0 and fills ds, or with detail: ERR_IO / ERR_NOTFOUND,
 * ERR_TOOBIG, ERR_PARSE or ERR_RANGE naming the line ("line 7: ..."),
 * ERR_INVAL (no record), ERR_NOMEM. ds is empty on error.
 */
int bench_dataset_jsonl(struct bench_dataset *ds, const char *path, size_t n,
                        struct err_detail *d) MC_WUR;

/* Frees every prompt and the array; ds is empty afterwards. NULL is a no-op. */
void bench_dataset_free(struct bench_dataset *ds);

#endif
