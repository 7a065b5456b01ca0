/*
 * Unit tests of src/core/config.c: flags, environment, precedence, bounds,
 * sizes, enums, booleans, per-command settings, URL masking and printing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

/* --- helpers --- */

/* Removes every MODELCAT_* variable of the table so the host can't leak in. */
static void clear_env(void)
{
    for (int i = 0; i < CFG__COUNT; i++) {
        char name[80];
        size_t k = (size_t)snprintf(name, sizeof(name), "MODELCAT_");
        for (const char *p = cfg_defs[i].name; *p && k + 1 < sizeof(name); p++)
            name[k++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        name[k] = '\0';
        unsetenv(name);
        if (cfg_defs[i].env)
            unsetenv(cfg_defs[i].env);
    }
}

static int setup_env(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

/*
 * cfg_load for `cmd` with argv = {"cmd", args..., NULL}. Returns its code;
 * on success the caller frees c.
 */
static int load_v(struct cfg *c, unsigned cmd, struct err_detail *d, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    argv[argc++] = (char *)"modelcat";
    va_start(ap, d);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && argc < 31;)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    err_clear(d);
    return cfg_load(c, cmd, argc, argv, d);
}
#define LOAD(c, cmd, d, ...) load_v(c, cmd, d, __VA_ARGS__, (const char *)NULL)
#define LOAD0(c, cmd, d) load_v(c, cmd, d, (const char *)NULL)

/* Loads successfully and returns the numeric value of setting id. */
static int64_t load_num(unsigned cmd, enum cfg_id id, const char *a1, const char *a2)
{
    struct cfg c;
    struct err_detail d;
    int rc = load_v(&c, cmd, &d, a1, a2, (const char *)NULL);
    if (rc)
        fail_msg("cfg_load(%s %s) = %d: %s", a1 ? a1 : "", a2 ? a2 : "", rc, d.msg);
    int64_t v = cfg_int(&c, id);
    cfg_free(&c);
    return v;
}

/* Expects ERR_INVAL whose message contains each of the NULL-terminated words. */
static void expect_inval_v(unsigned cmd, const char *a1, const char *a2, ...)
{
    struct cfg c;
    struct err_detail d;
    int rc = load_v(&c, cmd, &d, a1, a2, (const char *)NULL);
    if (rc != ERR_INVAL)
        fail_msg("cfg_load(%s %s) = %d, want ERR_INVAL", a1, a2 ? a2 : "", rc);
    /* cfg_load freed what it had on error: the strings are gone. */
    for (int i = 0; i < CFG__COUNT; i++)
        assert_null(c.str[i]);
    va_list ap;
    va_start(ap, a2);
    for (const char *w; (w = va_arg(ap, const char *)) != NULL;)
        if (!strstr(d.msg, w))
            fail_msg("message '%s' lacks '%s'", d.msg, w);
    va_end(ap);
}
#define EXPECT_INVAL(cmd, a1, a2, ...) expect_inval_v(cmd, a1, a2, __VA_ARGS__, (const char *)NULL)

/* --- tests --- */

static void test_threads_flag_forms(void **state)
{
    (void)state;
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads", "4"), 4);
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads=4", NULL), 4);
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads=256", NULL), 256);
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads", "1"), 1);

    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--threads", "7"), 0);
    assert_int_equal(c.src[CFG_THREADS], CFG_SRC_FLAG);
    assert_string_equal(cfg_str(&c, CFG_THREADS), "7");
    assert_int_equal(c.src[CFG_LISTEN], CFG_SRC_DEFAULT);
    assert_int_equal(c.cmd, CMD_SERVE);
    assert_int_equal(c.nargs, 0);
    cfg_free(&c);
}

static void test_env_and_precedence(void **state)
{
    (void)state;
    struct cfg c;
    struct err_detail d;
    setenv("MODELCAT_THREADS", "3", 1);
    assert_int_equal(LOAD0(&c, CMD_SERVE, &d), 0);
    assert_int_equal(cfg_int(&c, CFG_THREADS), 3);
    assert_int_equal(c.src[CFG_THREADS], CFG_SRC_ENV);
    cfg_free(&c);

    /* The flag beats the environment, whichever form it takes. */
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads", "9"), 9);
    assert_int_equal(load_num(CMD_SERVE, CFG_THREADS, "--threads=12", NULL), 12);
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--threads", "5"), 0);
    assert_int_equal(c.src[CFG_THREADS], CFG_SRC_FLAG);
    cfg_free(&c);

    /* A bad environment value is refused, named by its variable. */
    setenv("MODELCAT_THREADS", "lots", 1);
    EXPECT_INVAL(CMD_SERVE, NULL, NULL, "MODELCAT_THREADS", "lots");
    setenv("MODELCAT_THREADS", "0", 1);
    EXPECT_INVAL(CMD_SERVE, NULL, NULL, "MODELCAT_THREADS", "1..256");
    unsetenv("MODELCAT_THREADS");

    /* Dashes become underscores in the variable name. */
    setenv("MODELCAT_MAX_BODY", "2M", 1);
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, NULL, NULL), 2097152);
    unsetenv("MODELCAT_MAX_BODY");

    /* The environment of a setting another command owns is not read. */
    setenv("MODELCAT_THREADS", "bogus", 1);
    assert_int_equal(LOAD0(&c, CMD_MIGRATE, &d), 0);
    assert_int_equal(c.src[CFG_THREADS], CFG_SRC_DEFAULT);
    cfg_free(&c);
    unsetenv("MODELCAT_THREADS");
}

static void test_unknown_flag(void **state)
{
    (void)state;
    EXPECT_INVAL(CMD_SERVE, "--bogus", NULL, "--bogus");
    EXPECT_INVAL(CMD_SERVE, "--bogus=1", NULL, "--bogus");
    EXPECT_INVAL(CMD_SERVE, "-x", NULL, "-x");
    EXPECT_INVAL(CMD_SERVE, "--Threads", "2", "--Threads");
    EXPECT_INVAL(CMD_SERVE, "--thread", "2", "--thread");
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--threads", "2", "--nope"), ERR_INVAL);
    assert_string_equal(d.msg, "unknown flag '--nope'");
}

/* "min..max" of setting id, as messages and --help write it. */
static const char *bounds(enum cfg_id id)
{
    static char out[4][64];
    static int k;
    char *b = out[k++ % 4];
    snprintf(b, sizeof(out[0]), "%.0f..%.0f", (double)cfg_defs[id].min,
             (double)cfg_defs[id].max);
    return b;
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(bounds(CFG_THREADS), "1..256");
    assert_string_equal(bounds(CFG_MAX_BODY), "1024..1073741824");
    EXPECT_INVAL(CMD_SERVE, "--threads", "0", "--threads", bounds(CFG_THREADS));
    EXPECT_INVAL(CMD_SERVE, "--threads", "257", "--threads", bounds(CFG_THREADS));
    EXPECT_INVAL(CMD_SERVE, "--threads", "-1", bounds(CFG_THREADS));
    EXPECT_INVAL(CMD_SERVE, "--max-body", "1", "--max-body", bounds(CFG_MAX_BODY));
    EXPECT_INVAL(CMD_SERVE, "--max-body", "2G", bounds(CFG_MAX_BODY));
    EXPECT_INVAL(CMD_SERVE, "--threads", "4x", "--threads", "not an integer");
    EXPECT_INVAL(CMD_SERVE, "--threads", "", "--threads");
    EXPECT_INVAL(CMD_SERVE, "--threads", "99999999999999999999", "--threads");
}

static void test_sizes(void **state)
{
    (void)state;
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, "--max-body", "2M"), 2097152);
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, "--max-body", "2m"), 2097152);
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, "--max-body", "1K"), 1024);
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, "--max-body=1G", NULL), 1073741824);
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, "--max-body", "5000"), 5000);
    /* The default "1M". */
    assert_int_equal(load_num(CMD_SERVE, CFG_MAX_BODY, NULL, NULL), 1048576);
    EXPECT_INVAL(CMD_SERVE, "--max-body", "12Q", "--max-body", "12Q", "not a size");
    EXPECT_INVAL(CMD_SERVE, "--max-body", "2MB", "not a size");
    EXPECT_INVAL(CMD_SERVE, "--max-body", "M", "not a size");
    /* A suffix is only for sizes. */
    EXPECT_INVAL(CMD_SERVE, "--threads", "1K", "not an integer");
}

static void test_enum(void **state)
{
    (void)state;
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--log-level", "debug", "--log-format=json"), 0);
    assert_string_equal(cfg_str(&c, CFG_LOG_LEVEL), "debug");
    assert_string_equal(cfg_str(&c, CFG_LOG_FORMAT), "json");
    cfg_free(&c);
    EXPECT_INVAL(CMD_SERVE, "--log-level", "verbose", "--log-level", "verbose",
                 "debug|info|warn|error");
    /* Whole choices only: neither a prefix nor a longer word. */
    EXPECT_INVAL(CMD_SERVE, "--log-level", "inf", "inf");
    EXPECT_INVAL(CMD_SERVE, "--log-level", "infos", "infos");
    EXPECT_INVAL(CMD_SERVE, "--log-level", "info|warn", "info|warn");
    EXPECT_INVAL(CMD_SERVE, "--db-sync", "off", "full|normal");
}

static void test_bool_per_command(void **state)
{
    (void)state;
    assert_int_equal(load_num(CMD_SEED, CFG_DEMO, NULL, NULL), 0);
    assert_int_equal(load_num(CMD_SEED, CFG_DEMO, "--demo", NULL), 1);
    assert_int_equal(load_num(CMD_SEED, CFG_DEMO, "--demo=false", NULL), 0);
    assert_int_equal(load_num(CMD_SEED, CFG_DEMO, "--demo=true", NULL), 1);
    EXPECT_INVAL(CMD_SEED, "--demo=maybe", NULL, "--demo", "maybe");
    /* A bool flag takes no value: the next argument is positional. */
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SEED, &d, "--demo", "extra"), 0);
    assert_int_equal(cfg_int(&c, CFG_DEMO), 1);
    assert_int_equal(c.nargs, 1);
    assert_string_equal(c.args[0], "extra");
    cfg_free(&c);
    /* serve does not know --demo, nor seed --threads. */
    EXPECT_INVAL(CMD_SERVE, "--demo", NULL, "--demo");
    EXPECT_INVAL(CMD_SEED, "--threads", "2", "--threads");
    /* The environment sets a bool too. */
    setenv("MODELCAT_DEMO", "yes", 1);
    assert_int_equal(load_num(CMD_SEED, CFG_DEMO, NULL, NULL), 1);
    setenv("MODELCAT_DEMO", "2", 1);
    EXPECT_INVAL(CMD_SEED, NULL, NULL, "MODELCAT_DEMO");
    unsetenv("MODELCAT_DEMO");
}

static void test_missing_value(void **state)
{
    (void)state;
    EXPECT_INVAL(CMD_SERVE, "--threads", NULL, "--threads", "needs a value");
    EXPECT_INVAL(CMD_SERVE, "--listen", NULL, "--listen", "needs a value");
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--listen=127.0.0.1:1", "--threads"), ERR_INVAL);
    assert_string_equal(d.field, "threads");
}

static void test_positional_args(void **state)
{
    (void)state;
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_CONFIG, &d, "a", "--log-level", "warn", "b"), 0);
    assert_int_equal(c.nargs, 2);
    assert_string_equal(c.args[0], "a");
    assert_string_equal(c.args[1], "b");
    assert_string_equal(cfg_str(&c, CFG_LOG_LEVEL), "warn");
    cfg_free(&c);
    assert_int_equal(LOAD(&c, CMD_CONFIG, &d, "1", "2", "3", "4", "5", "6", "7", "8", "9"),
                     ERR_INVAL);
    assert_non_null(strstr(d.msg, "too many"));
}

static void test_mask_url(void **state)
{
    (void)state;
    char out[256];
    cfg_mask_url(out, sizeof(out), "postgres://u:secret@h/db");
    assert_string_equal(out, "postgres://u:****@h/db");
    assert_null(strstr(out, "secret"));
    cfg_mask_url(out, sizeof(out), "postgresql://admin:p4ss@db.example:5432/x?sslmode=on");
    assert_string_equal(out, "postgresql://admin:****@db.example:5432/x?sslmode=on");
    cfg_mask_url(out, sizeof(out), "sqlite:./x");
    assert_string_equal(out, "sqlite:./x");
    cfg_mask_url(out, sizeof(out), "sqlite:./var/modelcat.db");
    assert_string_equal(out, "sqlite:./var/modelcat.db");
    cfg_mask_url(out, sizeof(out), "postgres://u@h/db");  /* no password */
    assert_string_equal(out, "postgres://u@h/db");
    cfg_mask_url(out, sizeof(out), "redis://h:6379/0");   /* a port is no password */
    assert_string_equal(out, "redis://h:6379/0");
    /* A short buffer truncates, never overflows. */
    char small[8];
    cfg_mask_url(small, sizeof(small), "postgres://u:secret@h/db");
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* Text cfg_print writes for c. Caller frees. */
static char *print_to_string(const struct cfg *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_print(f, c);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_print_masks_secret(void **state)
{
    (void)state;
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD(&c, CMD_SERVE, &d, "--db", "postgres://u:secret@h/db",
                          "--max-body", "2M"), 0);
    assert_string_equal(cfg_str(&c, CFG_DB), "postgres://u:secret@h/db");
    char *text = print_to_string(&c);
    assert_null(strstr(text, "secret"));
    assert_non_null(strstr(text, "db = postgres://u:****@h/db\n"));
    assert_non_null(strstr(text, "max-body = 2097152\n"));
    assert_non_null(strstr(text, "log-level = info\n"));
    /* One line per setting. */
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, CFG__COUNT);
    free(text);
    cfg_free(&c);

    /* The same through the environment. */
    setenv("MODELCAT_DB", "postgres://u:secret@h/db", 1);
    assert_int_equal(LOAD0(&c, CMD_MIGRATE, &d), 0);
    text = print_to_string(&c);
    assert_null(strstr(text, "secret"));
    free(text);
    cfg_free(&c);
    unsetenv("MODELCAT_DB");
}

static void test_defs_table_and_defaults(void **state)
{
    (void)state;
    for (int i = 0; i < CFG__COUNT; i++) {
        const struct cfg_def *def = &cfg_defs[i];
        assert_non_null(def->name);
        assert_true(def->name[0] >= 'a' && def->name[0] <= 'z');
        assert_non_null(def->help);
        assert_true(strlen(def->help) > 0);
        assert_true(def->cmds != 0);
        if (def->type == CFG_T_INT || def->type == CFG_T_SIZE || def->type == CFG_T_BOOL)
            assert_true(def->min <= def->max);
        if (def->type == CFG_T_ENUM)
            assert_non_null(def->choices);
        /* A name is reused only by a scoped row for other commands. */
        for (int k = 0; k < i; k++)
            if (strcmp(def->name, cfg_defs[k].name) == 0) {
                assert_true((def->cmds & cfg_defs[k].cmds) == 0);
                assert_true(def->scope || cfg_defs[k].scope);
            }
    }
    /* Every default passes the row's own validation. */
    struct cfg c;
    struct err_detail d;
    assert_int_equal(LOAD0(&c, CMD_ALL, &d), 0);
    for (int i = 0; i < CFG__COUNT; i++) {
        assert_non_null(cfg_str(&c, (enum cfg_id)i));
        assert_int_equal(c.src[i], CFG_SRC_DEFAULT);
        if (cfg_defs[i].def)
            assert_string_equal(cfg_str(&c, (enum cfg_id)i), cfg_defs[i].def);
        const struct cfg_def *def = &cfg_defs[i];
        if (def->type == CFG_T_INT || def->type == CFG_T_SIZE) {
            assert_true(cfg_int(&c, (enum cfg_id)i) >= def->min);
            assert_true(cfg_int(&c, (enum cfg_id)i) <= def->max);
        }
    }
    assert_int_equal(cfg_int(&c, CFG_DB_BUSY_TIMEOUT), 5000);
    assert_string_equal(cfg_str(&c, CFG_DB), "sqlite:./var/modelcat.db");
    cfg_free(&c);
    /* And for each command alone. */
    static const unsigned cmds[] = {CMD_SERVE, CMD_MIGRATE, CMD_SEED, CMD_CONFIG};
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        assert_int_equal(LOAD0(&c, cmds[k], &d), 0);
        cfg_free(&c);
    }
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_print_help(f, CMD_SEED);
    fclose(f);
    assert_non_null(strstr(text, "--demo "));
    assert_non_null(strstr(text, "MODELCAT_DEMO"));
    assert_non_null(strstr(text, "--db V"));
    assert_null(strstr(text, "--threads"));
    free(text);

    f = open_memstream(&text, &len);
    assert_non_null(f);
    cfg_print_help(f, CMD_SERVE);
    fclose(f);
    assert_non_null(strstr(text, "--threads V"));
    assert_non_null(strstr(text, "MODELCAT_MAX_BODY"));
    assert_non_null(strstr(text, "1024..1073741824"));
    assert_non_null(strstr(text, "debug|info|warn|error"));
    assert_null(strstr(text, "--demo"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_threads_flag_forms, setup_env),
        cmocka_unit_test_setup(test_env_and_precedence, setup_env),
        cmocka_unit_test_setup(test_unknown_flag, setup_env),
        cmocka_unit_test_setup(test_out_of_range, setup_env),
        cmocka_unit_test_setup(test_sizes, setup_env),
        cmocka_unit_test_setup(test_enum, setup_env),
        cmocka_unit_test_setup(test_bool_per_command, setup_env),
        cmocka_unit_test_setup(test_missing_value, setup_env),
        cmocka_unit_test_setup(test_positional_args, setup_env),
        cmocka_unit_test_setup(test_mask_url, setup_env),
        cmocka_unit_test_setup(test_print_masks_secret, setup_env),
        cmocka_unit_test_setup(test_defs_table_and_defaults, setup_env),
        cmocka_unit_test_setup(test_help, setup_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
