/*
 * Streaming, allocation-free reading of the "samples" array of a
 * POST /api/v1/benchmarks body, so that ingest never builds a jansson tree
 * for up to a million per-request samples.
 *
 * Use:
 *   1. cat_json_split() cuts the "samples" member out of the body: `rest`
 *      gets the body without it (parse that with jansson as before) and
 *      span/span_len the raw text of its value.
 *   2. cat_samples_count() checks the whole value for malformed JSON and
 *      counts its elements: call it before anything else looks at a sample,
 *      so that malformed JSON anywhere in the array is ERR_PARSE, as it was
 *      when jansson parsed the whole body up front.
 *   3. cat_samples_begin() / cat_samples_next() yield the samples one by
 *      one, validated exactly as check_sample() in samples.c does on the
 *      jansson tree (same codes, fields and messages).
 *
 * Both the split and the iterator accept exactly what
 * json_loadb(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL) accepts, except:
 *  - an integer or real out of range is reported as the sample's ERR_INVAL
 *    ("must be an integer >= 0", "unknown field", ...) rather than as
 *    jansson's overflow error (which the API answers with 422 as well);
 *  - duplicate member names in a sample with more than CAT_SCAN_NAMES / 2
 *    names other than the seven columns (in nested objects or unknown
 *    members) may go unnoticed, leaving that sample's ERR_INVAL;
 *  - a raw NUL byte is always malformed here, while jansson 2.14 skips one
 *    that directly follows a number or literal ("[1\0,2]" loads as [1,2]:
 *    its reader takes a pushed-back NUL for its empty-buffer mark).
 * Nesting is limited as in jansson (JSON_PARSER_MAX_DEPTH 2048, counting
 * the body object as depth 1 and the samples array as depth 2).
 *
 * Byte offsets in the messages of cat_json_split count from the start of
 * the body; those of the samples functions from the start of the span.
 *
 * Nothing here allocates or keeps a pointer past the call, except that the
 * iterator reads the span between begin and the last next, and a
 * struct cat_sample may point into the span (error) until the next call.
 */
#ifndef MC_CATALOG_SAMPLES_SCAN_H
#define MC_CATALOG_SAMPLES_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define CAT_SAMPLE_COLS 7        /* scheduled_ns .. output_tokens, error */
#define CAT_SAMPLE_ERROR_MAX 1024 /* bytes of decoded UTF-8 in column 6 */
#define CAT_SCAN_MAX_DEPTH 2048  /* jansson's JSON_PARSER_MAX_DEPTH */
#define CAT_SCAN_NAMES 512       /* slots for duplicate checks, per sample */

/*
 * Splits body (n bytes, a JSON object with optional whitespace around it)
 * at its top-level member named key (a NUL-terminated name of at most 255
 * bytes, compared with the decoded member names byte for byte). Appends to
 * rest (initialised by the caller) the body with that member and one
 * adjacent comma removed, and points *span and *span_len at the raw text
 * of its value inside body (NULL and 0 when there is no such member).
 * Only the structure is checked (strings and escapes in member names,
 * nesting, commas and colons at the top level); the values other than key's
 * are left to whoever parses rest, key's value to cat_samples_count.
 * Returns 0; ERR_PARSE when the body is not an object ("the body must be a
 * JSON object"), when key occurs twice ("duplicate member 'samples'") or the
 * structure is malformed (the message names the byte offset); ERR_INVAL for
 * an over-long key; or rest's error (ERR_TOOBIG, ERR_NOMEM) when it is full.
 * On error *span is NULL and rest may hold part of the body.
 */
int cat_json_split(const char *body, size_t n, const char *key, struct buf *rest,
                   const char **span, size_t *span_len, struct err_detail *d) MC_WUR;

/* One validated sample. */
struct cat_sample {
    /* scheduled_ns, sent_ns, first_token_ns, last_token_ns, input_tokens,
       output_tokens: each >= 0; 0 when null */
    int64_t v[6];
    unsigned nulls;         /* bit c set: column c is null (only 2, 3 and 6 may be) */
    const char *error;      /* column 6, decoded UTF-8, no NUL ending; NULL when null */
    size_t error_len;
    char errbuf[1024 * 4 + 1]; /* decoding space when the string has escapes */
};

/* A slot of the duplicate-name check: a member name of an open object. */
struct cat_scan_name {
    size_t off;             /* raw name, after the opening quote, from the span */
    uint32_t len;           /* raw length; bit 31: it has escapes */
    uint32_t obj;           /* id of its object; < gen means empty */
    uint32_t hash;          /* FNV-1a of the decoded name */
};

/*
 * Iterator over a samples array. All members are private. About 20 KiB:
 * fine on a thread's stack, but not on a tiny one.
 */
struct cat_sample_iter {
    const unsigned char *base, *p, *end;
    struct err_detail *d;
    size_t index;           /* of the next element */
    int rc;                 /* 0 while running, 1 at the end, or the error */
    uint32_t next_obj;      /* id of the next object opened */
    uint32_t gen;           /* first id of the current element */
    uint32_t nnames;        /* slots used by the current element */
    uint32_t obj[CAT_SCAN_MAX_DEPTH + 1]; /* id of the object open at a depth, 0: array */
    struct cat_scan_name names[CAT_SCAN_NAMES];
};

/*
 * Counts the elements of the samples value at span (n bytes, as returned by
 * cat_json_split; NULL means absent) into *count, checking the whole value
 * for malformed JSON on the way. Returns 0 (*count is 0 for absent or null);
 * ERR_PARSE for malformed JSON (the message names the byte offset in span);
 * ERR_INVAL (field "samples", "samples must be an array") for a well-formed
 * value that is neither an array nor null.
 */
int cat_samples_count(const char *span, size_t n, size_t *count,
                      struct err_detail *d) MC_WUR;

/*
 * Starts iterating over the samples value at span (n bytes; NULL means
 * absent). Returns 0 (absent and null give no samples); ERR_INVAL (field
 * "samples", "samples must be an array") for a value that is neither an
 * array nor null; ERR_PARSE when such a value is malformed.
 */
int cat_samples_begin(struct cat_sample_iter *it, const char *span, size_t n,
                      struct err_detail *d) MC_WUR;

/*
 * Reads the next sample into s. Returns 1 with s filled; 0 at the end of the
 * array; ERR_INVAL with the field and message check_sample() gives
 * ("samples[3].sent_ns", "samples[3].sent_ns is required", ...); ERR_PARSE
 * for malformed JSON in the element or the delimiter after it, or for a
 * duplicate member name. After an error or the end it returns the same
 * again (d is set only the first time).
 */
int cat_samples_next(struct cat_sample_iter *it, struct cat_sample *s,
                     struct err_detail *d) MC_WUR;

#endif
