/*
 * Unit tests of src/bench/dataset.c: word counting, the random dataset
 * (length bounds, exact word counts, shared prefix, seeds), and the
 * ShareGPT and JSONL loaders on small files written under /tmp, malformed
 * ones included (refused with the right line or entry), plus allocation
 * failure at every step.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/dataset.h"
#include "core/err.h"
#include "core/mem.h"

/* --- helpers --- */

static char tmp_path[64];

/* Writes n bytes to a fresh temporary file and returns its path. */
static const char *write_tmp(const char *data, size_t n)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/mc_test_dataset_XXXXXX");
    int fd = mkstemp(tmp_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
    return tmp_path;
}

static const char *write_str(const char *s)
{
    return write_tmp(s, strlen(s));
}

static void rm_tmp(void)
{
    unlink(tmp_path);
}

/* Asserts that every prompt of ds is well formed. */
static void check_prompts(const struct bench_dataset *ds)
{
    for (size_t i = 0; i < ds->n; i++) {
        const struct bench_prompt *p = &ds->v[i];
        assert_non_null(p->text);
        assert_int_equal(strlen(p->text), p->len);
        assert_int_equal(bench_count_words(p->text, p->len), (size_t)p->input_tokens);
        assert_true(p->input_tokens >= 1);
        assert_true(p->output_len >= 1);
    }
}

/* Loads JSONL text; returns the code and leaves detail in *d. */
static int load_jsonl(const char *text, size_t n, struct bench_dataset *ds,
                      struct err_detail *d)
{
    const char *path = write_str(text);
    err_clear(d);
    int rc = bench_dataset_jsonl(ds, path, n, d);
    rm_tmp();
    return rc;
}

static int load_sharegpt(const char *text, size_t n, uint64_t seed,
                         struct bench_dataset *ds, struct err_detail *d)
{
    const char *path = write_str(text);
    err_clear(d);
    int rc = bench_dataset_sharegpt(ds, path, n, seed, d);
    rm_tmp();
    return rc;
}

/* Asserts a refusal with code and a message containing want. */
static void assert_refused(int rc, int code, const struct err_detail *d, const char *want)
{
    if (rc != code || !strstr(d->msg, want))
        print_error("got %s \"%s\", want %s with \"%s\"\n", err_name(rc), d->msg,
                    err_name(code), want);
    assert_int_equal(rc, code);
    assert_non_null(strstr(d->msg, want));
}

/* --- words --- */

static void test_count_words(void **state)
{
    (void)state;
    assert_int_equal(bench_count_words("", 0), 0);
    assert_int_equal(bench_count_words("   \t\n", 5), 0);
    assert_int_equal(bench_count_words("one", 3), 1);
    const char *mixed = " one  two\tthree\r\nfour ";
    assert_int_equal(bench_count_words(mixed, strlen(mixed)), 4);
    assert_int_equal(bench_count_words("a\vb\fc", 5), 3);
    /* Non-ASCII bytes (UTF-8) are word bytes, not separators. */
    assert_int_equal(bench_count_words("caf\xc3\xa9 \xe4\xb8\xad", 9), 2);
    /* Only the first n bytes count. */
    assert_int_equal(bench_count_words("ab cd", 2), 1);
}

/* --- random --- */

static void test_random_bounds_and_prefix(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    const int32_t prefix = 10;
    assert_int_equal(bench_dataset_random(&ds, 300, 100, 50, 0.2, prefix, 42, &d), 0);
    assert_int_equal(ds.n, 300);
    check_prompts(&ds);
    int in_min = 1 << 30, in_max = 0, out_min = 1 << 30, out_max = 0;
    size_t prefix_bytes = (size_t)prefix * 5; /* ten 4-letter words and their spaces */
    for (size_t i = 0; i < ds.n; i++) {
        int in = ds.v[i].input_tokens - prefix, out = ds.v[i].output_len;
        assert_true(in >= 80 && in <= 120);
        assert_true(out >= 40 && out <= 60);
        in_min = in < in_min ? in : in_min;
        in_max = in > in_max ? in : in_max;
        out_min = out < out_min ? out : out_min;
        out_max = out > out_max ? out : out_max;
        assert_memory_equal(ds.v[i].text, ds.v[0].text, prefix_bytes);
        for (size_t j = 0; j < ds.v[i].len; j++)
            assert_true((ds.v[i].text[j] >= 'a' && ds.v[i].text[j] <= 'z') ||
                        ds.v[i].text[j] == ' ');
    }
    /* The interval is used, ends included, with 300 draws over 41 values. */
    assert_int_equal(in_min, 80);
    assert_int_equal(in_max, 120);
    assert_int_equal(out_min, 40);
    assert_int_equal(out_max, 60);
    /* After the prefix the prompts differ. */
    assert_true(strcmp(ds.v[0].text + prefix_bytes, ds.v[1].text + prefix_bytes) != 0);
    bench_dataset_free(&ds);
    assert_null(ds.v);
    assert_int_equal(ds.n, 0);
}

static void test_random_exact_and_floor(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    /* Ratio 0: every length exact; no prefix. */
    assert_int_equal(bench_dataset_random(&ds, 20, 7, 3, 0.0, 0, 1, &d), 0);
    check_prompts(&ds);
    for (size_t i = 0; i < ds.n; i++) {
        assert_int_equal(ds.v[i].input_tokens, 7);
        assert_int_equal(ds.v[i].output_len, 3);
        assert_int_equal(ds.v[i].len, 7 * 5 - 1);
    }
    bench_dataset_free(&ds);
    /* floor(1 * 0.1) = 0 is raised to 1; ceil(1 * 1.9) = 2. */
    assert_int_equal(bench_dataset_random(&ds, 500, 1, 1, 0.9, 0, 1, &d), 0);
    int seen[3] = {0};
    for (size_t i = 0; i < ds.n; i++) {
        assert_true(ds.v[i].input_tokens >= 1 && ds.v[i].input_tokens <= 2);
        assert_true(ds.v[i].output_len >= 1 && ds.v[i].output_len <= 2);
        seen[ds.v[i].input_tokens]++;
    }
    assert_true(seen[1] > 0 && seen[2] > 0);
    bench_dataset_free(&ds);
    /* Small interval: every value of [5, 15] appears. */
    assert_int_equal(bench_dataset_random(&ds, 2000, 10, 10, 0.5, 0, 9, &d), 0);
    int hit[16] = {0};
    for (size_t i = 0; i < ds.n; i++)
        hit[ds.v[i].input_tokens]++;
    for (int v = 5; v <= 15; v++)
        assert_true(hit[v] > 0);
    bench_dataset_free(&ds);
}

static void test_random_seeds(void **state)
{
    (void)state;
    struct bench_dataset a, b, c;
    struct err_detail d;
    assert_int_equal(bench_dataset_random(&a, 50, 64, 16, 0.1, 8, 7, &d), 0);
    assert_int_equal(bench_dataset_random(&b, 50, 64, 16, 0.1, 8, 7, &d), 0);
    assert_int_equal(bench_dataset_random(&c, 50, 64, 16, 0.1, 8, 8, &d), 0);
    int differ = 0;
    for (size_t i = 0; i < 50; i++) {
        assert_string_equal(a.v[i].text, b.v[i].text);
        assert_int_equal(a.v[i].output_len, b.v[i].output_len);
        differ += strcmp(a.v[i].text, c.v[i].text) != 0;
    }
    assert_int_equal(differ, 50);
    /* Another seed, another shared prefix: the prefix cache starts cold. */
    assert_true(memcmp(a.v[0].text, c.v[0].text, 8 * 5) != 0);
    bench_dataset_free(&a);
    bench_dataset_free(&b);
    bench_dataset_free(&c);
}

static void test_random_refused(void **state)
{
    (void)state;
    struct bench_dataset ds = {(struct bench_prompt *)1, 1};
    struct err_detail d;
    assert_int_equal(bench_dataset_random(&ds, 0, 10, 10, 0, 0, 1, &d), ERR_RANGE);
    assert_null(ds.v);
    assert_int_equal(bench_dataset_random(&ds, 1, 0, 10, 0, 0, 1, &d), ERR_RANGE);
    assert_string_equal(d.field, "input_len");
    assert_int_equal(bench_dataset_random(&ds, 1, 10, 0, 0, 0, 1, &d), ERR_RANGE);
    assert_string_equal(d.field, "output_len");
    assert_int_equal(bench_dataset_random(&ds, 1, 10, 10, 1.0, 0, 1, &d), ERR_RANGE);
    assert_string_equal(d.field, "range_ratio");
    assert_int_equal(bench_dataset_random(&ds, 1, 10, 10, -0.1, 0, 1, &d), ERR_RANGE);
    assert_int_equal(bench_dataset_random(&ds, 1, 10, 10, 0.0 / 0.0, 0, 1, &d), ERR_RANGE);
    assert_int_equal(bench_dataset_random(&ds, 1, 10, 10, 0, -1, 1, &d), ERR_RANGE);
    assert_string_equal(d.field, "prefix_len");
    /* A prompt over 1 MiB: 250,000 words of 5 bytes. */
    assert_int_equal(bench_dataset_random(&ds, 1, 250000, 10, 0, 0, 1, &d), ERR_RANGE);
    assert_int_equal(bench_dataset_random(&ds, 1, 200000, 10, 0, 50000, 1, &d), ERR_RANGE);
    assert_int_equal(bench_dataset_random(&ds, 1, 10, BENCH_OUTPUT_LEN_MAX + 1, 0, 0, 1, &d),
                     ERR_RANGE);
    assert_int_equal(bench_dataset_random(&ds, BENCH_DATASET_MAX + 1, 1, 1, 0, 0, 1, &d),
                     ERR_RANGE);
    /* Just under the cap is accepted. */
    assert_int_equal(bench_dataset_random(&ds, 1, 200000, 10, 0, 0, 1, &d), 0);
    assert_true(ds.v[0].len <= BENCH_PROMPT_MAX);
    bench_dataset_free(&ds);
}

/* --- JSONL --- */

static void test_jsonl_ok(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    const char *text = "{\"prompt\": \"hello there world\", \"output_len\": 5}\n"
                       "\n"
                       "   \t\r\n"
                       "{\"output_len\": 1, \"prompt\": \"caf\\u00e9 au lait\", \"id\": 7}\r\n"
                       "{\"prompt\":\"  spaced\\nout  \",\"output_len\":300}"; /* no final LF */
    assert_int_equal(load_jsonl(text, 0, &ds, &d), 0);
    assert_int_equal(ds.n, 3);
    check_prompts(&ds);
    assert_string_equal(ds.v[0].text, "hello there world");
    assert_int_equal(ds.v[0].input_tokens, 3);
    assert_int_equal(ds.v[0].output_len, 5);
    assert_string_equal(ds.v[1].text, "caf\xc3\xa9 au lait");
    assert_int_equal(ds.v[1].output_len, 1);
    assert_string_equal(ds.v[2].text, "  spaced\nout  ");
    assert_int_equal(ds.v[2].input_tokens, 2);
    bench_dataset_free(&ds);

    /* n below and above the record count: a prefix, then cyclic repetition. */
    assert_int_equal(load_jsonl(text, 2, &ds, &d), 0);
    assert_int_equal(ds.n, 2);
    assert_string_equal(ds.v[1].text, "caf\xc3\xa9 au lait");
    bench_dataset_free(&ds);
    assert_int_equal(load_jsonl(text, 8, &ds, &d), 0);
    assert_int_equal(ds.n, 8);
    check_prompts(&ds);
    for (size_t i = 3; i < 8; i++) {
        assert_string_equal(ds.v[i].text, ds.v[i % 3].text);
        assert_int_equal(ds.v[i].output_len, ds.v[i % 3].output_len);
        assert_ptr_not_equal(ds.v[i].text, ds.v[i % 3].text);
    }
    bench_dataset_free(&ds);
}

static void test_jsonl_refused(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    const char *good = "{\"prompt\": \"a b\", \"output_len\": 2}\n";
    char text[512];
#define BAD(line3, code, want)                                                   \
    do {                                                                         \
        snprintf(text, sizeof(text), "%s\n%s%s\n%s", good, good, line3, good);   \
        int rc_ = load_jsonl(text, 0, &ds, &d);                                  \
        assert_refused(rc_, code, &d, want);                                     \
        assert_null(ds.v);                                                       \
        assert_int_equal(ds.n, 0);                                               \
    } while (0)
    /* The bad record is on line 4 (line 2 is blank). */
    BAD("{\"prompt\": \"x\", \"output_len\": 0}", ERR_RANGE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": 1048577}", ERR_RANGE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": -3}", ERR_RANGE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": 2.5}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": \"2\"}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"x\"}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": 5, \"output_len\": 2}", ERR_PARSE, "line 4:");
    BAD("{\"output_len\": 2}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"  \", \"output_len\": 2}", ERR_RANGE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": 2", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": 2} {}", ERR_PARSE, "line 4:");
    BAD("[\"prompt\", 2]", ERR_PARSE, "line 4:");
    BAD("\"just a string\"", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"x\", \"prompt\": \"y\", \"output_len\": 2}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"a\\u0000b\", \"output_len\": 2}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"\xff\xfe\", \"output_len\": 2}", ERR_PARSE, "line 4:");
    BAD("{\"prompt\": \"x\", \"output_len\": 99999999999999999999999}", ERR_PARSE, "line 4:");
#undef BAD
    /* A NUL byte in the file. */
    static const char nul[] = "{\"prompt\": \"a b\", \"output_len\": 2}\n{\"prompt\": \"a\0b\"}\n";
    const char *path = write_tmp(nul, sizeof(nul) - 1);
    int rc = bench_dataset_jsonl(&ds, path, 0, &d);
    rm_tmp();
    assert_refused(rc, ERR_PARSE, &d, "line 2:");

    /* Empty, blank-only and missing files. */
    assert_refused(load_jsonl("", 0, &ds, &d), ERR_INVAL, &d, "no records");
    assert_refused(load_jsonl("\n \n\n", 0, &ds, &d), ERR_INVAL, &d, "no records");
    assert_int_equal(bench_dataset_jsonl(&ds, "/nonexistent/x.jsonl", 0, &d), ERR_NOTFOUND);
    assert_int_equal(bench_dataset_jsonl(&ds, "/tmp", 0, &d), ERR_IO);
}

/* Loads one JSONL record whose prompt is "a a a ..." of exactly plen bytes. */
static int load_prompt_of(size_t plen, struct bench_dataset *ds, struct err_detail *d)
{
    size_t cap = plen + 128;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, cap, "{\"output_len\": 3, \"prompt\": \"");
    for (size_t i = 0; i < plen; i++)
        text[len++] = i % 2 ? ' ' : 'a';
    len += (size_t)snprintf(text + len, cap - len, "\"}\n");
    const char *path = write_tmp(text, len);
    int rc = bench_dataset_jsonl(ds, path, 0, d);
    rm_tmp();
    free(text);
    return rc;
}

static void test_jsonl_prompt_cap(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    assert_refused(load_prompt_of(BENCH_PROMPT_MAX + 1, &ds, &d), ERR_TOOBIG, &d, "line 1:");
    assert_int_equal(load_prompt_of(BENCH_PROMPT_MAX, &ds, &d), 0);
    assert_int_equal(ds.v[0].len, BENCH_PROMPT_MAX);
    assert_int_equal(ds.v[0].input_tokens, (int32_t)(BENCH_PROMPT_MAX / 2));
    bench_dataset_free(&ds);
}

/* --- ShareGPT --- */

static const char sharegpt_ok[] =
    "[\n"
    "  {\"id\": \"a\", \"conversations\": [\n"
    "    {\"from\": \"human\", \"value\": \"what is two plus two\"},\n"
    "    {\"from\": \"gpt\", \"value\": \"it is four\"},\n"
    "    {\"from\": \"human\", \"value\": \"thanks\"}]},\n"
    "  {\"id\": \"one turn\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}]},\n"
    "  {\"id\": \"none\", \"conversations\": []},\n"
    "  {\"id\": \"system first\", \"conversations\": [\n"
    "    {\"from\": \"system\", \"value\": \"be brief\"},\n"
    "    {\"from\": \"human\", \"value\": \"name a colour\"},\n"
    "    {\"from\": \"gpt\", \"value\": \"blue\"}]},\n"
    "  {\"id\": \"empty reply\", \"conversations\": [\n"
    "    {\"from\": \"human\", \"value\": \"hello\"}, {\"from\": \"gpt\", \"value\": \" \"}]},\n"
    "  {\"id\": \"empty prompt\", \"conversations\": [\n"
    "    {\"from\": \"human\", \"value\": \"\"}, {\"from\": \"gpt\", \"value\": \"hm\"}]},\n"
    "  {\"id\": \"two humans\", \"conversations\": [\n"
    "    {\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]},\n"
    "  {\"id\": \"gpt only\", \"conversations\": [\n"
    "    {\"from\": \"gpt\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]},\n"
    "  {\"id\": \"user role\", \"conversations\": [\n"
    "    {\"from\": \"user\", \"value\": \"caf\\u00e9 please\"},\n"
    "    {\"from\": \"assistant\", \"value\": \"one caf\\u00e9 coming right up\"}]}\n"
    "]\n";

static int find_text(const struct bench_dataset *ds, const char *text)
{
    for (size_t i = 0; i < ds->n; i++)
        if (strcmp(ds->v[i].text, text) == 0)
            return (int)i;
    return -1;
}

static void test_sharegpt_ok(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    assert_int_equal(load_sharegpt(sharegpt_ok, 0, 1, &ds, &d), 0);
    assert_int_equal(ds.n, 3);
    check_prompts(&ds);
    int a = find_text(&ds, "what is two plus two");
    int b = find_text(&ds, "name a colour");
    int c = find_text(&ds, "caf\xc3\xa9 please");
    assert_true(a >= 0 && b >= 0 && c >= 0);
    assert_int_equal(ds.v[a].input_tokens, 5);
    assert_int_equal(ds.v[a].output_len, 3);
    assert_int_equal(ds.v[b].output_len, 1);
    assert_int_equal(ds.v[c].output_len, 5);
    bench_dataset_free(&ds);

    /* n above the usable count repeats the shuffled order cyclically. */
    assert_int_equal(load_sharegpt(sharegpt_ok, 7, 1, &ds, &d), 0);
    assert_int_equal(ds.n, 7);
    check_prompts(&ds);
    for (size_t i = 3; i < 7; i++)
        assert_string_equal(ds.v[i].text, ds.v[i % 3].text);
    bench_dataset_free(&ds);

    /* The same seed gives the same order; some other seed another one. */
    struct bench_dataset x, y;
    assert_int_equal(load_sharegpt(sharegpt_ok, 2, 5, &x, &d), 0);
    assert_int_equal(load_sharegpt(sharegpt_ok, 2, 5, &y, &d), 0);
    assert_int_equal(x.n, 2);
    assert_string_equal(x.v[0].text, y.v[0].text);
    assert_string_equal(x.v[1].text, y.v[1].text);
    bench_dataset_free(&y);
    int other = 0;
    for (uint64_t seed = 6; seed < 30 && !other; seed++) {
        assert_int_equal(load_sharegpt(sharegpt_ok, 2, seed, &y, &d), 0);
        other = strcmp(x.v[0].text, y.v[0].text) != 0 || strcmp(x.v[1].text, y.v[1].text) != 0;
        bench_dataset_free(&y);
    }
    assert_true(other);
    bench_dataset_free(&x);

    /* A byte-order mark, an empty-looking layout, one entry. */
    assert_int_equal(load_sharegpt("\xef\xbb\xbf[{\"conversations\":[{\"from\":\"human\",\"value\":"
                                   "\"x y\"},{\"from\":\"gpt\",\"value\":\"z\"}]}]",
                                   0, 1, &ds, &d), 0);
    assert_int_equal(ds.n, 1);
    bench_dataset_free(&ds);
}

static void test_sharegpt_refused(void **state)
{
    (void)state;
    struct bench_dataset ds;
    struct err_detail d;
    const char *e0 = "  {\"conversations\": [{\"from\": \"human\", \"value\": \"a\"},"
                     " {\"from\": \"gpt\", \"value\": \"b\"}]}";
    char text[1024];
#define BAD(entry1, code, want)                                                  \
    do {                                                                         \
        snprintf(text, sizeof(text), "[\n%s,\n%s,\n%s\n]\n", e0, entry1, e0);    \
        int rc_ = load_sharegpt(text, 0, 1, &ds, &d);                            \
        assert_refused(rc_, code, &d, want);                                     \
        assert_null(ds.v);                                                       \
    } while (0)
    /* Entry 1 starts on line 3. */
    BAD("\"a string\"", ERR_PARSE, "entry 1 (line 3)");
    BAD("[1, 2]", ERR_PARSE, "entry 1 (line 3)");
    BAD("{\"id\": 1}", ERR_PARSE, "entry 1 (line 3)");
    BAD("{\"conversations\": {}}", ERR_PARSE, "entry 1 (line 3)");
    BAD("{\"conversations\": [1, 2]}", ERR_PARSE, "entry 1 (line 3)");
    BAD("{\"conversations\": [{\"value\": \"a\"}, {\"value\": \"b\"}]}", ERR_PARSE,
        "entry 1 (line 3)");
    BAD("{\"conversations\": [{\"from\": \"human\", \"value\": 3},"
        " {\"from\": \"gpt\", \"value\": \"b\"}]}", ERR_PARSE, "entry 1 (line 3)");
    BAD("{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"},"
        " {\"from\": \"gpt\"}]}", ERR_PARSE, "entry 1 (line 3)");
    /* A syntax error on the entry's second line is reported on line 4. */
    BAD("{\"conversations\":\n [tru]}", ERR_PARSE, "line 4)");
    BAD("{\"conversations\": [\"\\u0000\"]}", ERR_PARSE, "entry 1 (line 3)");
#undef BAD
    assert_refused(load_sharegpt("", 0, 1, &ds, &d), ERR_PARSE, &d, "line 1:");
    assert_refused(load_sharegpt("\n\n{\"conversations\": []}", 0, 1, &ds, &d), ERR_PARSE, &d,
                   "line 3:");
    assert_refused(load_sharegpt("[]", 0, 1, &ds, &d), ERR_INVAL, &d, "no usable");
    assert_refused(load_sharegpt(" [ \n ] ", 0, 1, &ds, &d), ERR_INVAL, &d, "no usable");
    snprintf(text, sizeof(text), "[%s,\n]", e0);
    assert_refused(load_sharegpt(text, 0, 1, &ds, &d), ERR_PARSE, &d, "entry 1 (line 2)");
    snprintf(text, sizeof(text), "[%s\n%s]", e0, e0);
    assert_refused(load_sharegpt(text, 0, 1, &ds, &d), ERR_PARSE, &d,
                   "entry 0 (line 2): expected ',' or ']'");
    snprintf(text, sizeof(text), "[%s]\n\n x", e0);
    assert_refused(load_sharegpt(text, 0, 1, &ds, &d), ERR_PARSE, &d, "line 3: data after");
    snprintf(text, sizeof(text), "[%s", e0);
    assert_refused(load_sharegpt(text, 0, 1, &ds, &d), ERR_PARSE, &d, "entry 0 (line 1)");
    snprintf(text, sizeof(text), "[%s,", e0);
    assert_refused(load_sharegpt(text, 0, 1, &ds, &d), ERR_PARSE, &d, "entry 1 (line 1)");
    assert_int_equal(bench_dataset_sharegpt(&ds, "/nonexistent/sg.json", 0, 1, &d),
                     ERR_NOTFOUND);
}

/* --- allocation failure --- */

/* Fails the k-th allocation for k = 0, 1, ... until a load succeeds. */
static void fail_each_alloc(int sharegpt, const char *text, size_t n)
{
    const char *path = write_str(text);
    int ok = 0;
    for (long k = 0; k < 10000 && !ok; k++) {
        struct bench_dataset ds;
        struct err_detail d;
        mem_fail_after(k);
        int rc = sharegpt ? bench_dataset_sharegpt(&ds, path, n, 3, &d)
                          : bench_dataset_jsonl(&ds, path, n, &d);
        mem_fail_after(-1);
        if (rc == 0) {
            ok = 1;
            check_prompts(&ds);
            bench_dataset_free(&ds);
        } else {
            assert_int_equal(rc, ERR_NOMEM);
            assert_null(ds.v);
        }
    }
    rm_tmp();
    assert_true(ok);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    fail_each_alloc(1, sharegpt_ok, 5);
    fail_each_alloc(0, "{\"prompt\": \"a b\", \"output_len\": 2}\n"
                       "{\"prompt\": \"c\", \"output_len\": 1}\n", 5);
    for (long k = 0; k < 50; k++) {
        struct bench_dataset ds;
        struct err_detail d;
        mem_fail_after(k);
        int rc = bench_dataset_random(&ds, 10, 20, 5, 0.5, 3, 1, &d);
        mem_fail_after(-1);
        assert_true(rc == 0 || rc == ERR_NOMEM);
        bench_dataset_free(&ds);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_words),
        cmocka_unit_test(test_random_bounds_and_prefix),
        cmocka_unit_test(test_random_exact_and_floor),
        cmocka_unit_test(test_random_seeds),
        cmocka_unit_test(test_random_refused),
        cmocka_unit_test(test_jsonl_ok),
        cmocka_unit_test(test_jsonl_refused),
        cmocka_unit_test(test_jsonl_prompt_cap),
        cmocka_unit_test(test_sharegpt_ok),
        cmocka_unit_test(test_sharegpt_refused),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
