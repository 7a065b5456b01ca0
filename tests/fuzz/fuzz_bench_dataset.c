/*
 * Fuzz target: the dataset file loaders of src/bench/dataset.c. Each input
 * is written to a temporary file and loaded as JSONL and as ShareGPT, with
 * n = 0 (all records) and n = 5 (prefix or cyclic repetition).
 *
 * Properties, each abort()ing when violated:
 *  - a load returns 0 or one of the documented error codes, with a message;
 *  - on error the dataset is empty;
 *  - on success every prompt is NUL-terminated at len, has input_tokens
 *    equal to its word count (>= 1) and output_len in [1, BENCH_OUTPUT_LEN_MAX],
 *    and the dataset has n entries (n = 5) or at least one (n = 0).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/dataset.h"
#include "core/err.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_bench_dataset: property failed at line %d: %s\n", \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

static char path[64];
static int fd = -1;

static void cleanup(void)
{
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
}

/* Writes data to the target's own temporary file; 0 on success. */
static int put_file(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        snprintf(path, sizeof(path), "/tmp/fuzz_bench_dataset_XXXXXX");
        fd = mkstemp(path);
        if (fd < 0)
            return -1;
        atexit(cleanup);
    }
    if (ftruncate(fd, 0) != 0)
        return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

static void check(int rc, const struct bench_dataset *ds, const struct err_detail *d, size_t n)
{
    if (rc != 0) {
        CHECK(rc == ERR_PARSE || rc == ERR_RANGE || rc == ERR_INVAL || rc == ERR_TOOBIG ||
              rc == ERR_NOMEM || rc == ERR_IO || rc == ERR_NOTFOUND);
        CHECK(ds->v == NULL && ds->n == 0);
        CHECK(d->msg[0] != '\0');
        return;
    }
    CHECK(ds->v != NULL);
    CHECK(n ? ds->n == n : ds->n >= 1);
    for (size_t i = 0; i < ds->n; i++) {
        const struct bench_prompt *p = &ds->v[i];
        CHECK(p->text != NULL);
        CHECK(strlen(p->text) == p->len);
        CHECK(p->len <= BENCH_PROMPT_MAX);
        CHECK(p->input_tokens >= 1);
        CHECK(bench_count_words(p->text, p->len) == (size_t)p->input_tokens);
        CHECK(p->output_len >= 1 && p->output_len <= BENCH_OUTPUT_LEN_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (put_file(data, size) != 0)
        return 0;
    static const size_t ns[] = {0, 5};
    for (size_t k = 0; k < 2; k++) {
        struct bench_dataset ds;
        struct err_detail d;
        err_clear(&d);
        int rc = bench_dataset_jsonl(&ds, path, ns[k], &d);
        check(rc, &ds, &d, ns[k]);
        bench_dataset_free(&ds);

        err_clear(&d);
        rc = bench_dataset_sharegpt(&ds, path, ns[k], 42 + k, &d);
        check(rc, &ds, &d, ns[k]);
        bench_dataset_free(&ds);
    }
    return 0;
}
