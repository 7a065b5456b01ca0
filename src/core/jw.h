/*
 * Streaming JSON writer into a struct buf. Strings are escaped, and bytes
 * that are not UTF-8 are written as U+FFFD, so the output is always valid
 * JSON whatever the text came from. Responses are written straight
 * from store rows with no intermediate tree: on the list route this is the
 * difference between building ~1,000 jansson nodes per page and none.
 * Commas are inserted automatically; nesting depth is capped at JW_DEPTH.
 */
#ifndef MC_CORE_JW_H
#define MC_CORE_JW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define JW_DEPTH 32

struct jw {
    struct buf *b;
    int depth;
    uint8_t first[JW_DEPTH]; /* 1 while no member written at that level */
};

void jw_init(struct jw *w, struct buf *b);
void jw_obj_open(struct jw *w);
void jw_obj_close(struct jw *w);
void jw_arr_open(struct jw *w);
void jw_arr_close(struct jw *w);
/*
 * Writes `"key":`; the next value call writes the member's value. The key
 * is copied as is: it must be one of our identifiers, needing no escapes.
 */
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *s, size_t n);
void jw_cstr(struct jw *w, const char *s);   /* NULL writes null */
void jw_i64(struct jw *w, int64_t v);
/* Shortest text that reads back as the same double; NaN/inf write null. */
void jw_num(struct jw *w, double v);
void jw_bool(struct jw *w, int v);
void jw_null(struct jw *w);
/* Inserts n bytes that are already valid JSON (a value). */
void jw_raw(struct jw *w, const char *json, size_t n);

/* Appends s (n bytes) as a quoted, escaped JSON string to b. */
void jw_escape(struct buf *b, const char *s, size_t n);
/* Formats v into out (>= 32 bytes) as jw_num does; returns the length. */
int jw_fmt_double(char *out, size_t outlen, double v);

#endif
