/*
 * Corpus replay driver for the fuzz targets in normal (non-libFuzzer)
 * builds: `fuzz_x DIR` feeds every regular file in DIR, in name order, to
 * LLVMFuzzerTestOneInput and prints how many it ran. A single regular file
 * may be given instead of a directory (handy to replay one reproducer).
 * Exits non-zero when DIR is missing, unreadable or holds no regular file.
 *
 * Each input is copied into a heap buffer of exactly its size, so a
 * sanitizer build catches reads past the end as libFuzzer would.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target; libFuzzer calls it once before the first input. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reads the file at path into a fresh heap buffer; 0 on success. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *p = malloc(cap);
    while (p) {
        if (n == cap) {
            uint8_t *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
        size_t r = fread(p + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = !p || ferror(f);
    fclose(f);
    if (err) {
        free(p);
        return -1;
    }
    /* Exactly n bytes (at least 1 for malloc), so overreads are caught. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(p);
        return -1;
    }
    if (n)
        memcpy(exact, p, n);
    free(p);
    *out = exact;
    *len = n;
    return 0;
}

static int run_one(const char *path)
{
    uint8_t *data;
    size_t len;
    if (read_file(path, &data, &len)) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (getenv("REPLAY_VERBOSE"))
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 0;
}

static int is_regular(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);

    if (is_regular(dir)) {
        if (run_one(dir))
            return 1;
        printf("replay: ran 1 input (%s)\n", dir);
        return 0;
    }

    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot open corpus directory %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    int ran = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + 1 + strlen(names[i]->d_name) + 1;
        char *path = malloc(len);
        if (path) {
            snprintf(path, len, "%s/%s", dir, names[i]->d_name);
            if (is_regular(path)) {
                if (run_one(path))
                    failed++;
                else
                    ran++;
            }
            free(path);
        } else {
            failed++;
        }
        free(names[i]);
    }
    free(names);
    printf("replay: ran %d inputs from %s\n", ran, dir);
    if (failed) {
        fprintf(stderr, "replay: %d files could not be read\n", failed);
        return 1;
    }
    if (ran == 0) {
        fprintf(stderr, "replay: no inputs in %s\n", dir);
        return 1;
    }
    return 0;
}
