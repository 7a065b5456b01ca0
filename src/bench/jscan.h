/*
 * A scanner that answers questions about one JSON text without building a
 * tree: "where is member k of this object", "is this string empty", "what
 * integer is this". It is the per-event hot path of the benchmark client,
 * where a jansson tree per streamed token would cost more than the kernel.
 *
 * Every function takes [p, end) and never reads outside it; malformed or
 * truncated input gives NULL / -1, never a crash. Nesting is limited to
 * JS_MAX_DEPTH. Keys are compared byte for byte (no unescaping).
 */
#ifndef MC_BENCH_JSCAN_H
#define MC_BENCH_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#define JS_MAX_DEPTH 64

/* Iteration over the members of one object, each value skipped once. */
struct js_iter {
    const char *p, *end;
};

/* Starts iterating the object at p: 0, or -1 when p is not an object. */
int js_obj_begin(struct js_iter *it, const char *p, const char *end);
/*
 * Next member: 1 with its key (*k, *kl: the raw bytes between the quotes)
 * and value [*v, *ve); 0 at the end of the object; -1 when malformed.
 */
int js_obj_next(struct js_iter *it, const char **k, size_t *kl, const char **v,
                const char **ve);
/* 1 when the raw key [k, k+kl) is lit. */
int js_key_is(const char *k, size_t kl, const char *lit);

/* Skips whitespace. */
const char *js_ws(const char *p, const char *end);
/* Returns the end of the value at p (after whitespace), or NULL if malformed. */
const char *js_skip(const char *p, const char *end);
/* Value of member key in the object at p, or NULL (absent, or not an object). */
const char *js_get(const char *p, const char *end, const char *key);
/* First element of the array at p, or NULL (empty or not an array). */
const char *js_first(const char *p, const char *end);
/* 1 when the value at p is null (or p is NULL). */
int js_is_null(const char *p, const char *end);
/* For a string at p: 1 non-empty, 0 empty; -1 when not a string. */
int js_str_nonempty(const char *p, const char *end);
/* Integer at p into *v: 0, or -1 when not an integer in int64 range. */
int js_int(const char *p, const char *end, int64_t *v);

#endif
