/*
 * Datasets of prompts for `modelcat bench`: synthetic random prompts and
 * the two file formats (ShareGPT JSON, our JSONL). See dataset.h for the
 * token-as-word convention shared with the simulator.
 *
 * Files are read whole (capped at BENCH_FILE_MAX) and parsed with jansson.
 * A ShareGPT file is one large array (the public one is ~650 MB), so it is
 * not loaded as one tree: each entry is parsed on its own with
 * JSON_DISABLE_EOF_CHECK, which stops after one value and reports how many
 * bytes it used. The first pass keeps only the byte span of each usable
 * entry; after the shuffle only the chosen entries are parsed again. Peak
 * memory is the file, 32 bytes per usable entry and the chosen prompts.
 */
#include "bench/dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bench/arrival.h"
#include "core/mem.h"

/* The longest JSONL line: a 1 MiB prompt written as six-byte \u escapes, and room. */
#define JSONL_LINE_MAX ((size_t)8 << 20)

/* Separate random streams for datasets and arrivals seeded with one number. */
#define SEED_RANDOM 0x52414e444f4d3031ULL   /* "RANDOM01" */
#define SEED_SHAREGPT 0x5348415245475054ULL /* "SHAREGPT" */

size_t bench_count_words(const char *s, size_t n)
{
    size_t words = 0;
    int in_word = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int space = c == ' ' || (c >= '\t' && c <= '\r');
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

void bench_dataset_free(struct bench_dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->n; i++)
        mem_free(ds->v[i].text);
    mem_free(ds->v);
    ds->v = NULL;
    ds->n = 0;
}

/*
 * Fills the entries [have, n) of v by repeating [0, have) in order.
 * Returns 0 or ERR_NOMEM; entries copied so far are counted in *filled.
 */
static int repeat_prompts(struct bench_prompt *v, size_t have, size_t n, size_t *filled,
                          struct err_detail *d)
{
    for (size_t i = have; i < n; i++) {
        const struct bench_prompt *src = &v[i % have];
        v[i] = *src;
        v[i].text = mem_strndup(src->text, src->len);
        if (!v[i].text)
            return err_set(d, ERR_NOMEM, "dataset", "out of memory copying prompts");
        *filled = i + 1;
    }
    return 0;
}

/* --- random --- */

/*
 * The vocabulary: 6,400 words of two consonant-vowel syllables ("bada",
 * "zuvo"), made from the index so no table or file is needed.
 */
#define VOCAB_SIZE (16 * 5 * 16 * 5)
#define VOCAB_WORD_LEN 4

static void vocab_word(uint64_t w, char out[VOCAB_WORD_LEN])
{
    static const char cons[] = "bdfghjklmnprstvz";
    static const char vow[] = "aeiou";
    unsigned a = (unsigned)(w / 80), b = (unsigned)(w % 80);
    out[0] = cons[a / 5];
    out[1] = vow[a % 5];
    out[2] = cons[b / 5];
    out[3] = vow[b % 5];
}

/* Appends `words` random vocabulary words to p (separated by spaces, a space before
 * the first when p already holds text); returns the new length. */
static size_t put_words(struct rng *r, char *p, size_t len, int64_t words)
{
    for (int64_t i = 0; i < words; i++) {
        if (len)
            p[len++] = ' ';
        vocab_word(rng_below(r, VOCAB_SIZE), p + len);
        len += VOCAB_WORD_LEN;
    }
    p[len] = '\0';
    return len;
}

/* Bounds of vLLM's random lengths: [floor(L(1-r)), ceil(L(1+r))], at least 1. */
static void len_bounds(int32_t l, double ratio, int64_t *lo, int64_t *hi)
{
    *lo = (int64_t)floor((double)l * (1.0 - ratio));
    *hi = (int64_t)ceil((double)l * (1.0 + ratio));
    if (*lo < 1)
        *lo = 1;
    if (*hi < *lo)
        *hi = *lo;
}

static int random_check(size_t n, int32_t input_len, int32_t output_len, double range_ratio,
                        int32_t prefix_len, struct err_detail *d)
{
    if (n == 0 || n > BENCH_DATASET_MAX)
        return err_set(d, ERR_RANGE, "num_prompts", "number of prompts must be in [1, %zu]",
                       BENCH_DATASET_MAX);
    if (input_len < 1)
        return err_set(d, ERR_RANGE, "input_len", "input length must be >= 1");
    if (output_len < 1)
        return err_set(d, ERR_RANGE, "output_len", "output length must be >= 1");
    if (!(range_ratio >= 0.0 && range_ratio < 1.0))
        return err_set(d, ERR_RANGE, "range_ratio", "range ratio must be in [0, 1)");
    if (prefix_len < 0)
        return err_set(d, ERR_RANGE, "prefix_len", "prefix length must be >= 0");
    return 0;
}

int bench_dataset_random(struct bench_dataset *ds, size_t n, int32_t input_len,
                         int32_t output_len, double range_ratio, int32_t prefix_len,
                         uint64_t seed, struct err_detail *d)
{
    ds->v = NULL;
    ds->n = 0;
    int rc = random_check(n, input_len, output_len, range_ratio, prefix_len, d);
    if (rc)
        return rc;
    int64_t in_lo, in_hi, out_lo, out_hi;
    len_bounds(input_len, range_ratio, &in_lo, &in_hi);
    len_bounds(output_len, range_ratio, &out_lo, &out_hi);
    if (out_hi > BENCH_OUTPUT_LEN_MAX)
        return err_set(d, ERR_RANGE, "output_len", "output length may reach %lld, over %d",
                       (long long)out_hi, BENCH_OUTPUT_LEN_MAX);
    int64_t max_words = (int64_t)prefix_len + in_hi;
    size_t max_bytes = (size_t)max_words * (VOCAB_WORD_LEN + 1) - 1;
    if (max_bytes > BENCH_PROMPT_MAX)
        return err_set(d, ERR_RANGE, "input_len",
                       "prompts of up to %lld words (%zu bytes) pass the %zu-byte cap",
                       (long long)max_words, max_bytes, BENCH_PROMPT_MAX);

    struct rng r;
    rng_seed(&r, seed ^ SEED_RANDOM);
    char *prefix = mem_malloc(max_bytes + 1);
    struct bench_prompt *v = mem_calloc(n, sizeof(*v));
    size_t filled = 0;
    if (!prefix || !v) {
        rc = err_set(d, ERR_NOMEM, "num_prompts", "out of memory for %zu prompts", n);
        goto out;
    }
    size_t prefix_bytes = put_words(&r, prefix, 0, prefix_len);
    for (size_t i = 0; i < n; i++, filled++) {
        int64_t in = in_lo + (int64_t)rng_below(&r, (uint64_t)(in_hi - in_lo + 1));
        int64_t out = out_lo + (int64_t)rng_below(&r, (uint64_t)(out_hi - out_lo + 1));
        size_t bytes = (size_t)(prefix_len + in) * (VOCAB_WORD_LEN + 1);
        char *t = mem_malloc(bytes);
        if (!t) {
            rc = err_set(d, ERR_NOMEM, "num_prompts", "out of memory for %zu prompts", n);
            goto out;
        }
        memcpy(t, prefix, prefix_bytes);
        v[i].text = t;
        v[i].len = put_words(&r, t, prefix_bytes, in);
        v[i].input_tokens = (int32_t)(prefix_len + in);
        v[i].output_len = (int32_t)out;
    }
    ds->v = v;
    ds->n = n;
    v = NULL;
out:
    if (v) {
        for (size_t i = 0; i < filled; i++)
            mem_free(v[i].text);
        mem_free(v);
    }
    mem_free(prefix);
    return rc;
}

/* --- files --- */

/* Reads path whole (at most BENCH_FILE_MAX bytes) into a NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *outlen, struct err_detail *d)
{
    int rc = 0;
    char *p = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(d, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "dataset_path",
                       "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = err_set(d, ERR_IO, "dataset_path", "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = err_set(d, ERR_IO, "dataset_path", "cannot read %s: is a directory", path);
        goto out;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > BENCH_FILE_MAX) {
        rc = err_set(d, ERR_TOOBIG, "dataset_path", "%s is over the %zu-byte limit", path,
                     BENCH_FILE_MAX);
        goto out;
    }
    /* The size is a hint only: the file may change, or be a pipe. */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, len = 0;
    p = mem_malloc(cap + 1);
    if (!p) {
        rc = err_set(d, ERR_NOMEM, "dataset_path", "out of memory reading %s", path);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            size_t ncap = cap * 2 > BENCH_FILE_MAX + 1 ? BENCH_FILE_MAX + 1 : cap * 2;
            if (len > BENCH_FILE_MAX) {
                rc = err_set(d, ERR_TOOBIG, "dataset_path", "%s is over the %zu-byte limit",
                             path, BENCH_FILE_MAX);
                goto out;
            }
            char *np = mem_realloc(p, ncap + 1);
            if (!np) {
                rc = err_set(d, ERR_NOMEM, "dataset_path", "out of memory reading %s", path);
                goto out;
            }
            p = np;
            cap = ncap;
        }
        ssize_t got = read(fd, p + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = err_set(d, ERR_IO, "dataset_path", "cannot read %s: %s", path,
                         strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (len > BENCH_FILE_MAX) {
        rc = err_set(d, ERR_TOOBIG, "dataset_path", "%s is over the %zu-byte limit", path,
                     BENCH_FILE_MAX);
        goto out;
    }
    p[len] = '\0';
    *out = p;
    *outlen = len;
    p = NULL;
out:
    mem_free(p);
    close(fd);
    return rc;
}

/* A growable array of prompts, reserved ahead of each push. */
struct plist {
    struct bench_prompt *v;
    size_t n, cap;
};

static int plist_reserve(struct plist *l, size_t want)
{
    if (want <= l->cap)
        return 0;
    size_t ncap = l->cap ? l->cap : 64;
    while (ncap < want)
        ncap *= 2;
    struct bench_prompt *nv = mem_realloc(l->v, ncap * sizeof(*nv));
    if (!nv)
        return ERR_NOMEM;
    l->v = nv;
    l->cap = ncap;
    return 0;
}

static void plist_free(struct plist *l)
{
    for (size_t i = 0; i < l->n; i++)
        mem_free(l->v[i].text);
    mem_free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/*
 * Moves the first `have` prompts of l into ds, repeated to n when n > have
 * (n = 0: have). Returns 0 or ERR_NOMEM; l is emptied either way.
 */
static int plist_finish(struct plist *l, size_t n, struct bench_dataset *ds,
                        struct err_detail *d)
{
    size_t have = l->n, want = n ? n : have;
    size_t filled = have;
    int rc = plist_reserve(l, want);
    if (rc)
        rc = err_set(d, ERR_NOMEM, "num_prompts", "out of memory for %zu prompts", want);
    else
        rc = repeat_prompts(l->v, have, want, &filled, d);
    l->n = filled;
    if (rc) {
        plist_free(l);
        return rc;
    }
    ds->v = l->v;
    ds->n = want;
    l->v = NULL;
    l->n = l->cap = 0;
    return 0;
}

/* Copies text into p; ERR_NOMEM with detail. */
static int prompt_set(struct bench_prompt *p, const char *text, size_t len, size_t words,
                      int64_t output_len, struct err_detail *d)
{
    p->text = mem_strndup(text, len);
    if (!p->text)
        return err_set(d, ERR_NOMEM, "dataset", "out of memory for a prompt");
    p->len = len;
    p->input_tokens = (int32_t)words;
    p->output_len = (int32_t)output_len;
    return 0;
}

/* --- JSONL --- */

/* Checks one JSONL record and, when out is not NULL, stores it there. */
static int jsonl_record(const char *line, size_t len, size_t lineno, const char *path,
                        struct bench_prompt *out, struct err_detail *d)
{
    int rc = 0;
    json_error_t je;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return err_set(d, ERR_PARSE, "dataset_path", "line %zu: %s (column %d) in %s", lineno,
                       je.text, je.column, path);
    json_t *pr = json_object_get(root, "prompt");
    json_t *ol = json_object_get(root, "output_len");
    if (!json_is_object(root)) {
        rc = err_set(d, ERR_PARSE, "dataset_path", "line %zu: not a JSON object in %s", lineno,
                     path);
    } else if (!json_is_string(pr)) {
        rc = err_set(d, ERR_PARSE, "dataset_path", "line %zu: \"prompt\" must be a string in %s",
                     lineno, path);
    } else if (!json_is_integer(ol)) {
        rc = err_set(d, ERR_PARSE, "dataset_path",
                     "line %zu: \"output_len\" must be an integer in %s", lineno, path);
    } else if (json_integer_value(ol) < 1 || json_integer_value(ol) > BENCH_OUTPUT_LEN_MAX) {
        rc = err_set(d, ERR_RANGE, "dataset_path", "line %zu: \"output_len\" must be in [1, %d] in %s",
                     lineno, BENCH_OUTPUT_LEN_MAX, path);
    } else if (json_string_length(pr) > BENCH_PROMPT_MAX) {
        rc = err_set(d, ERR_TOOBIG, "dataset_path", "line %zu: prompt over %zu bytes in %s",
                     lineno, BENCH_PROMPT_MAX, path);
    } else {
        const char *text = json_string_value(pr);
        size_t tlen = json_string_length(pr);
        size_t words = bench_count_words(text, tlen);
        if (words == 0)
            rc = err_set(d, ERR_RANGE, "dataset_path", "line %zu: prompt has no words in %s",
                         lineno, path);
        else if (out)
            rc = prompt_set(out, text, tlen, words, json_integer_value(ol), d);
    }
    json_decref(root);
    return rc;
}

static int only_space(const char *s, size_t n)
{
    return bench_count_words(s, n) == 0;
}

int bench_dataset_jsonl(struct bench_dataset *ds, const char *path, size_t n,
                        struct err_detail *d)
{
    ds->v = NULL;
    ds->n = 0;
    if (n > BENCH_DATASET_MAX)
        return err_set(d, ERR_RANGE, "num_prompts", "number of prompts must be <= %zu",
                       BENCH_DATASET_MAX);
    char *p = NULL;
    size_t len = 0, lineno = 0, records = 0;
    struct plist l = {0};
    int rc = read_file(path, &p, &len, d);
    if (rc)
        return rc;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(p + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - p) : len;
        lineno++;
        const char *line = p + pos;
        size_t llen = end - pos;
        pos = end + 1;
        if (llen > JSONL_LINE_MAX) {
            rc = err_set(d, ERR_TOOBIG, "dataset_path", "line %zu: over %zu bytes in %s", lineno,
                         JSONL_LINE_MAX, path);
            goto out;
        }
        if (only_space(line, llen))
            continue;
        if (++records > BENCH_DATASET_MAX) {
            rc = err_set(d, ERR_TOOBIG, "dataset_path", "line %zu: over %zu records in %s",
                         lineno, BENCH_DATASET_MAX, path);
            goto out;
        }
        int keep = n == 0 || l.n < n;
        if (keep && plist_reserve(&l, l.n + 1)) {
            rc = err_set(d, ERR_NOMEM, "dataset_path", "out of memory reading %s", path);
            goto out;
        }
        rc = jsonl_record(line, llen, lineno, path, keep ? &l.v[l.n] : NULL, d);
        if (rc)
            goto out;
        if (keep)
            l.n++;
    }
    if (l.n == 0) {
        rc = err_set(d, ERR_INVAL, "dataset_path", "no records in %s", path);
        goto out;
    }
    rc = plist_finish(&l, n, ds, d);
out:
    plist_free(&l);
    mem_free(p);
    return rc;
}

/* --- ShareGPT --- */

/* Where a usable entry lies in the file. */
struct span {
    size_t off, len;   /* bytes of the entry's JSON value */
    size_t entry;      /* index in the array, from 0 */
    size_t line;       /* line of its first byte, from 1 */
};

/* What one entry offers: the prompt and the reply's word count. */
struct sgpt_pick {
    const char *text;
    size_t len, words, reply_words;
};

static int is_human(const char *from)
{
    return strcmp(from, "human") == 0 || strcmp(from, "user") == 0;
}

/* Reads turn t's "from" and "value"; -1 when t lacks either as a string. */
static int turn_get(json_t *t, const char **from, json_t **value)
{
    json_t *f = json_object_get(t, "from");
    *value = json_object_get(t, "value");
    if (!json_is_object(t) || !json_is_string(f))
        return -1;
    *from = json_string_value(f);
    return 0;
}

/*
 * Looks at one parsed entry. Returns 0 (usable; *pk filled), 1 (skip), or
 * ERR_PARSE with detail when the entry has the wrong shape.
 */
static int sgpt_entry(json_t *e, const struct span *sp, const char *path, struct sgpt_pick *pk,
                      struct err_detail *d)
{
#define BAD(what) err_set(d, ERR_PARSE, "dataset_path", "entry %zu (line %zu): %s in %s", \
                          sp->entry, sp->line, what, path)
    if (!json_is_object(e))
        return BAD("not an object");
    json_t *conv = json_object_get(e, "conversations");
    if (!json_is_array(conv))
        return BAD("\"conversations\" is missing or not an array");
    size_t nturns = json_array_size(conv);
    if (nturns < 2)
        return 1;
    for (size_t i = 0; i + 1 < nturns; i++) {
        const char *from, *rfrom;
        json_t *value, *rvalue;
        if (turn_get(json_array_get(conv, i), &from, &value))
            return BAD("a turn lacks a string \"from\"");
        if (!is_human(from))
            continue;
        if (turn_get(json_array_get(conv, i + 1), &rfrom, &rvalue))
            return BAD("a turn lacks a string \"from\"");
        if (!json_is_string(value) || !json_is_string(rvalue))
            return BAD("a turn's \"value\" is not a string");
        if (is_human(rfrom))
            return 1;
        pk->text = json_string_value(value);
        pk->len = json_string_length(value);
        pk->words = bench_count_words(pk->text, pk->len);
        pk->reply_words = bench_count_words(json_string_value(rvalue),
                                            json_string_length(rvalue));
        if (pk->words == 0 || pk->reply_words == 0 || pk->len > BENCH_PROMPT_MAX)
            return 1;
        if (pk->reply_words > BENCH_OUTPUT_LEN_MAX)
            pk->reply_words = BENCH_OUTPUT_LEN_MAX;
        return 0;
    }
    return 1;
#undef BAD
}

static size_t skip_ws(const char *p, size_t len, size_t pos, size_t *line)
{
    while (pos < len && (p[pos] == ' ' || p[pos] == '\t' || p[pos] == '\n' || p[pos] == '\r')) {
        if (p[pos] == '\n')
            ++*line;
        pos++;
    }
    return pos;
}

static size_t count_lines(const char *p, size_t from, size_t to)
{
    size_t k = 0;
    for (const char *q = p + from; (q = memchr(q, '\n', (size_t)(p + to - q))) != NULL; q++)
        k++;
    return k;
}

/* Pushes sp onto the span array (*v, *n, *cap); ERR_NOMEM. */
static int span_push(struct span **v, size_t *n, size_t *cap, const struct span *sp)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        struct span *nv = mem_realloc(*v, ncap * sizeof(*nv));
        if (!nv)
            return ERR_NOMEM;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = *sp;
    return 0;
}

/*
 * First pass: walks the top-level array of p, parsing entries one at a
 * time, and records the spans of the usable ones.
 */
static int sgpt_scan(const char *p, size_t len, const char *path, struct span **out,
                     size_t *nout, struct err_detail *d)
{
    size_t line = 1, pos = 0, cap = 0, entry = 0;
    int rc = 0;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    pos = skip_ws(p, len, pos, &line);
    if (pos >= len || p[pos] != '[')
        return err_set(d, ERR_PARSE, "dataset_path",
                       "line %zu: expected a JSON array of conversations in %s", line, path);
    pos = skip_ws(p, len, pos + 1, &line);
    if (pos < len && p[pos] == ']')
        goto end;
    for (;; entry++) {
        json_error_t je;
        struct span sp = {.off = pos, .entry = entry, .line = line};
        json_t *e = json_loadb(p + pos, len - pos, JSON_DISABLE_EOF_CHECK, &je);
        if (!e) {
            rc = err_set(d, ERR_PARSE, "dataset_path", "entry %zu (line %zu): %s in %s", entry,
                         line + (je.line > 0 ? (size_t)je.line - 1 : 0), je.text, path);
            goto out;
        }
        sp.len = (size_t)je.position;
        struct sgpt_pick pk;
        rc = sgpt_entry(e, &sp, path, &pk, d);
        json_decref(e);
        if (rc < 0)
            goto out;
        if (rc == 0 && *nout >= BENCH_DATASET_MAX) {
            rc = err_set(d, ERR_TOOBIG, "dataset_path", "entry %zu (line %zu): over %zu usable "
                         "entries in %s", entry, line, BENCH_DATASET_MAX, path);
            goto out;
        }
        if (rc == 0 && span_push(out, nout, &cap, &sp)) {
            rc = err_set(d, ERR_NOMEM, "dataset_path", "out of memory reading %s", path);
            goto out;
        }
        rc = 0;
        line += count_lines(p, pos, pos + sp.len);
        pos = skip_ws(p, len, pos + sp.len, &line);
        if (pos < len && p[pos] == ']')
            break;
        if (pos >= len || p[pos] != ',') {
            rc = err_set(d, ERR_PARSE, "dataset_path",
                         "entry %zu (line %zu): expected ',' or ']' after it in %s", entry, line,
                         path);
            goto out;
        }
        pos = skip_ws(p, len, pos + 1, &line);
    }
end:
    pos = skip_ws(p, len, pos + 1, &line);
    if (pos < len)
        rc = err_set(d, ERR_PARSE, "dataset_path", "line %zu: data after the array in %s", line,
                     path);
out:
    return rc;
}

/* Second pass: parses the entry at sp again and stores its prompt in out. */
static int sgpt_take(const char *p, const struct span *sp, const char *path,
                     struct bench_prompt *out, struct err_detail *d)
{
    json_error_t je;
    json_t *e = json_loadb(p + sp->off, sp->len, 0, &je);
    struct sgpt_pick pk;
    int rc = e ? sgpt_entry(e, sp, path, &pk, d) : -1;
    if (rc == 0)
        rc = prompt_set(out, pk.text, pk.len, pk.words, (int64_t)pk.reply_words, d);
    else if (rc > 0 || !e)
        rc = err_set(d, ERR_INTERNAL, "dataset_path", "entry %zu changed between passes",
                     sp->entry);
    json_decref(e);
    return rc;
}

int bench_dataset_sharegpt(struct bench_dataset *ds, const char *path, size_t n,
                           uint64_t seed, struct err_detail *d)
{
    ds->v = NULL;
    ds->n = 0;
    if (n > BENCH_DATASET_MAX)
        return err_set(d, ERR_RANGE, "num_prompts", "number of prompts must be <= %zu",
                       BENCH_DATASET_MAX);
    char *p = NULL;
    size_t len = 0, nspans = 0;
    struct span *spans = NULL;
    struct plist l = {0};
    int rc = read_file(path, &p, &len, d);
    if (rc)
        return rc;
    rc = sgpt_scan(p, len, path, &spans, &nspans, d);
    if (rc)
        goto out;
    if (nspans == 0) {
        rc = err_set(d, ERR_INVAL, "dataset_path", "no usable conversations in %s", path);
        goto out;
    }
    struct rng r;
    rng_seed(&r, seed ^ SEED_SHAREGPT);
    for (size_t i = nspans - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&r, (uint64_t)i + 1);
        struct span t = spans[i];
        spans[i] = spans[j];
        spans[j] = t;
    }
    size_t take = n && n < nspans ? n : nspans;
    if (plist_reserve(&l, take)) {
        rc = err_set(d, ERR_NOMEM, "num_prompts", "out of memory for %zu prompts", take);
        goto out;
    }
    for (; l.n < take; l.n++) {
        rc = sgpt_take(p, &spans[l.n], path, &l.v[l.n], d);
        if (rc)
            goto out;
    }
    rc = plist_finish(&l, n, ds, d);
out:
    plist_free(&l);
    mem_free(spans);
    mem_free(p);
    return rc;
}
