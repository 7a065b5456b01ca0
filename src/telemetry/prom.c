/*
 * A parser of the Prometheus text exposition format (version 0.0.4), for
 * the pages of dcgm-exporter and of inference engines. It reads outside
 * input, so everything is bounded: the body (TEL_PROM_MAX_BODY), each line
 * (TEL_PROM_MAX_LINE) and the labels of a sample (TEL_PROM_MAX_LABELS);
 * one scratch buffer of a line's size holds the names and the unescaped
 * label values handed to the callback.
 *
 * Grammar, per line (spaces and tabs separate tokens):
 *   # HELP name text      (text not checked)
 *   # TYPE name counter|gauge|histogram|summary|untyped
 *   # anything else       (a comment)
 *   name [{label="value",...}] value [timestamp_ms]
 * A value is a decimal float, NaN, Inf, +Inf or -Inf (any case); label
 * values escape \" \\ and \n and nothing else. A trailing comma inside the
 * braces is allowed, a repeated label name is not. A '\r' before the
 * '\n' is tolerated; a NUL byte anywhere is an error.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "telemetry/telemetry.h"

/* The scratch buffer: every byte of a line at most once, plus the NULs. */
#define ARENA_CAP (TEL_PROM_MAX_LINE + 2 * TEL_PROM_MAX_LABELS + 8)

struct pstate {
    const char *p, *end;   /* the line being read */
    char *arena;
    size_t used;
    const char *why;       /* what was wrong, for ERR_PARSE */
};

static int is_ws(char c) { return c == ' ' || c == '\t'; }
static int name_start(char c, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
static int name_char(char c, int colon) { return name_start(c, colon) || (c >= '0' && c <= '9'); }

static void skip_ws(struct pstate *s)
{
    while (s->p < s->end && is_ws(*s->p))
        s->p++;
}

/* Appends one byte to the arena; the cap cannot be passed by a bounded line. */
static void put(struct pstate *s, char c)
{
    if (s->used < ARENA_CAP)
        s->arena[s->used++] = c;
}

/* Copies a name (metric names allow ':') into the arena; NULL if none. */
static const char *read_name(struct pstate *s, int colon)
{
    if (s->p >= s->end || !name_start(*s->p, colon))
        return NULL;
    const char *out = s->arena + s->used;
    while (s->p < s->end && name_char(*s->p, colon))
        put(s, *s->p++);
    put(s, '\0');
    return out;
}

/* Reads "..." with its escapes into the arena; NULL with why on error. */
static const char *read_quoted(struct pstate *s)
{
    if (s->p >= s->end || *s->p != '"') {
        s->why = "expected '\"' to open a label value";
        return NULL;
    }
    s->p++;
    const char *out = s->arena + s->used;
    while (s->p < s->end && *s->p != '"') {
        char c = *s->p++;
        if (c == '\\') {
            if (s->p >= s->end)
                break;
            char e = *s->p++;
            if (e == 'n')
                c = '\n';
            else if (e == '\\' || e == '"')
                c = e;
            else {
                s->why = "unknown escape in a label value";
                return NULL;
            }
        }
        put(s, c);
    }
    if (s->p >= s->end) {
        s->why = "unterminated label value";
        return NULL;
    }
    s->p++;
    put(s, '\0');
    return out;
}

/* The {...} of a sample; 0, ERR_PARSE or ERR_TOOBIG. */
static int read_labels(struct pstate *s, struct tel_prom_sample *out)
{
    s->p++; /* '{' */
    for (;;) {
        skip_ws(s);
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            return 0;
        }
        const char *name = read_name(s, 0);
        if (!name) {
            s->why = "expected a label name or '}'";
            return ERR_PARSE;
        }
        if (out->nlabels == TEL_PROM_MAX_LABELS) {
            s->why = "too many labels";
            return ERR_TOOBIG;
        }
        for (int i = 0; i < out->nlabels; i++)
            if (!strcmp(out->labels[i].name, name)) {
                s->why = "a label is repeated";
                return ERR_PARSE;
            }
        skip_ws(s);
        if (s->p >= s->end || *s->p != '=') {
            s->why = "expected '=' after a label name";
            return ERR_PARSE;
        }
        s->p++;
        skip_ws(s);
        const char *value = read_quoted(s);
        if (!value)
            return ERR_PARSE;
        out->labels[out->nlabels++] = (struct tel_prom_label){name, value};
        skip_ws(s);
        if (s->p < s->end && *s->p == ',')
            s->p++;
        else if (s->p >= s->end || *s->p != '}') {
            s->why = "expected ',' or '}' after a label";
            return ERR_PARSE;
        }
    }
}

/* The next space-free token as a C string in tok[cap]; 0 or -1 (too long/absent). */
static int token(struct pstate *s, char *tok, size_t cap)
{
    size_t n = 0;
    while (s->p < s->end && !is_ws(*s->p)) {
        if (n + 1 >= cap)
            return -1;
        tok[n++] = *s->p++;
    }
    tok[n] = '\0';
    return n ? 0 : -1;
}

static int parse_value(const char *t, double *v)
{
    const char *u = t + (*t == '+' || *t == '-');
    if (!strcasecmp(t, "nan")) {
        *v = NAN;
        return 0;
    }
    if (!strcasecmp(u, "inf")) {
        *v = *t == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    /* Decimal only: no hex floats, no "infinity", no "nan(...)". */
    if (strspn(t, "0123456789.eE+-") != strlen(t))
        return -1;
    char *end;
    errno = 0;
    *v = strtod(t, &end);
    return end == t || *end ? -1 : 0;
}

static int parse_ts(const char *t, int64_t *ts)
{
    const char *u = t + (*t == '-');
    if (!*u || strspn(u, "0123456789") != strlen(u))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (errno || *end)
        return -1;
    *ts = v;
    return 0;
}

/* A "# ..." line: HELP and TYPE are checked, other comments skipped. */
static int comment(struct pstate *s)
{
    char word[8];
    s->p++;
    skip_ws(s);
    if (token(s, word, sizeof(word)) || (strcmp(word, "HELP") && strcmp(word, "TYPE")))
        return 0;
    skip_ws(s);
    if (!read_name(s, 1)) {
        s->why = "HELP or TYPE without a metric name";
        return ERR_PARSE;
    }
    if (word[0] == 'H')
        return 0;
    char type[16];
    skip_ws(s);
    if (token(s, type, sizeof(type)) ||
        (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
         strcmp(type, "summary") && strcmp(type, "untyped"))) {
        s->why = "unknown TYPE";
        return ERR_PARSE;
    }
    skip_ws(s);
    if (s->p != s->end) {
        s->why = "text after the TYPE";
        return ERR_PARSE;
    }
    return 0;
}

/* One sample line into out; 0, ERR_PARSE or ERR_TOOBIG. */
static int sample(struct pstate *s, struct tel_prom_sample *out)
{
    char tok[64];
    int rc;
    out->nlabels = 0;
    out->has_ts = 0;
    if (!(out->name = read_name(s, 1))) {
        s->why = "expected a metric name";
        return ERR_PARSE;
    }
    int spaced = s->p < s->end && is_ws(*s->p);
    skip_ws(s);
    if (s->p < s->end && *s->p == '{') {
        if ((rc = read_labels(s, out)))
            return rc;
        spaced = 1;
        skip_ws(s);
    }
    if (!spaced || token(s, tok, sizeof(tok)) || parse_value(tok, &out->value)) {
        s->why = "expected a value";
        return ERR_PARSE;
    }
    skip_ws(s);
    if (s->p < s->end) {
        if (token(s, tok, sizeof(tok)) || parse_ts(tok, &out->ts_ms)) {
            s->why = "bad timestamp";
            return ERR_PARSE;
        }
        out->has_ts = 1;
        skip_ws(s);
        if (s->p < s->end) {
            s->why = "text after the timestamp";
            return ERR_PARSE;
        }
    }
    return 0;
}

int tel_prom_parse(const char *body, size_t len, tel_prom_cb cb, void *arg,
                   struct err_detail *d)
{
    if (len > TEL_PROM_MAX_BODY)
        return err_set(d, ERR_TOOBIG, "metrics", "page of %zu bytes is over %d", len,
                       TEL_PROM_MAX_BODY);
    struct tel_prom_sample *smp = mem_malloc(sizeof(*smp));
    struct pstate s = {.arena = mem_malloc(ARENA_CAP)};
    int rc = 0;
    size_t lineno = 0;
    if (!smp || !s.arena) {
        rc = err_set(d, ERR_NOMEM, "metrics", "out of memory");
        goto out;
    }
    for (const char *p = body, *end = body + len; p < end && !rc;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        s.p = p;
        s.end = le > p && le[-1] == '\r' ? le - 1 : le;
        s.used = 0;
        s.why = "bad line";
        p = nl ? nl + 1 : end;
        if ((size_t)(s.end - s.p) > TEL_PROM_MAX_LINE) {
            rc = err_set(d, ERR_TOOBIG, "metrics", "line %zu is over %d bytes", lineno,
                         TEL_PROM_MAX_LINE);
            break;
        }
        if (memchr(s.p, '\0', (size_t)(s.end - s.p))) {
            rc = err_set(d, ERR_PARSE, "metrics", "line %zu: a NUL byte", lineno);
            break;
        }
        skip_ws(&s);
        if (s.p == s.end)
            continue;
        int is_comment = *s.p == '#';
        rc = is_comment ? comment(&s) : sample(&s, smp);
        if (rc) {
            rc = err_set(d, rc, "metrics", "line %zu: %s", lineno, s.why);
            break;
        }
        if (!is_comment && cb)
            rc = cb(arg, smp);
    }
out:
    mem_free(s.arena);
    mem_free(smp);
    return rc;
}

const char *tel_prom_label(const struct tel_prom_sample *s, const char *name)
{
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->labels[i].name, name))
            return s->labels[i].value;
    return NULL;
}
