/*
 * Fuzz target: command-line settings, cfg_load (core/config.c).
 *
 * Input: arguments separated by NUL bytes (at most 16; a trailing NUL does
 * not add an empty one), each a NUL-terminated heap copy, after argv[0].
 * Parsed for `serve`, `seed` and `bench`; on success the settings are
 * printed (which masks passwords and secrets) and freed. MODELCAT_*
 * variables are removed from the environment first, so only the input
 * matters.
 *
 * Properties (abort on violation): the result is 0 or ERR_INVAL with a
 * message; on success every setting has a value, numbers are within their
 * bounds, and at most 8 positional arguments were kept.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define MAX_ARGS 16

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_config: property failed at line %d: %s\n",     \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

static FILE *devnull;

extern char **environ;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* Drop every MODELCAT_* variable (collect the names first: unsetenv
       changes environ). */
    char *names[256];
    int n = 0;
    for (char **e = environ; e && *e && n < 256; e++)
        if (strncmp(*e, "MODELCAT_", 9) == 0) {
            const char *eq = strchr(*e, '=');
            names[n++] = strndup(*e, eq ? (size_t)(eq - *e) : strlen(*e));
        }
    for (int i = 0; i < n; i++) {
        if (names[i])
            unsetenv(names[i]);
        free(names[i]);
    }
    devnull = fopen("/dev/null", "w");
    return 0;
}

static void load(unsigned cmd, const char *cmdname, int argc, char **args)
{
    char *argv[MAX_ARGS + 2];
    argv[0] = (char *)cmdname;
    for (int i = 0; i < argc; i++)
        argv[i + 1] = args[i];
    argv[argc + 1] = NULL;

    struct cfg c;
    struct err_detail d;
    err_clear(&d);
    int rc = cfg_load(&c, cmd, argc + 1, argv, &d);
    CHECK(rc == 0 || rc == ERR_INVAL);
    if (rc) {
        CHECK(d.msg[0] != '\0');
        return;
    }
    CHECK(c.cmd == cmd);
    CHECK(c.nargs >= 0 && c.nargs <= 8);
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_def *def = &cfg_defs[i];
        CHECK(c.str[i] != NULL);
        if (def->type == CFG_T_INT || def->type == CFG_T_SIZE)
            CHECK(c.num[i] >= def->min && c.num[i] <= def->max);
        if (def->type == CFG_T_DOUBLE)
            CHECK(c.dbl[i] >= def->min && c.dbl[i] <= def->max);
        if (def->type == CFG_T_BOOL)
            CHECK(c.num[i] == 0 || c.num[i] == 1);
        /* A setting of another command keeps its default. */
        if (!(def->cmds & cmd))
            CHECK(c.src[i] == CFG_SRC_DEFAULT);
    }
    if (devnull)
        cfg_print(devnull, &c);
    char masked[512];
    cfg_mask_url(masked, sizeof(masked), cfg_str(&c, CFG_DB));
    cfg_free(&c);
    for (int i = 0; i < CFG__COUNT; i++)
        CHECK(c.str[i] == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *args[MAX_ARGS];
    int argc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && argc < MAX_ARGS; i++) {
        if (i < size && data[i] != 0)
            continue;
        if (i == size && start == size && size > 0)
            break; /* trailing NUL */
        size_t n = i - start;
        char *a = malloc(n + 1);
        if (!a)
            break;
        if (n)
            memcpy(a, data + start, n);
        a[n] = '\0';
        args[argc++] = a;
        start = i + 1;
    }

    load(CMD_SERVE, "serve", argc, args);
    load(CMD_SEED, "seed", argc, args);
    /* The benchmark client's settings add the DOUBLE, LIST and SECRET types. */
    load(CMD_BENCH, "bench", argc, args);

    for (int i = 0; i < argc; i++)
        free(args[i]);
    return 0;
}
