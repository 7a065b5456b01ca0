/*
 * What every command does first: settings, --help, logging, the store.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "db/db.h"

int cli_setup(struct cfg *c, unsigned cmd, int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("%s\n\nSettings (flag, environment variable, default):\n", usage);
            cfg_print_help(stdout, cmd);
            return 0;
        }
    }
    struct err_detail d;
    err_clear(&d);
    if (cfg_load(c, cmd, argc, argv, &d)) {
        fprintf(stderr, "modelcat %s: %s\n", argv[0], d.msg);
        return 2;
    }
    log_set_level((enum log_level)log_level_parse(cfg_str(c, CFG_LOG_LEVEL)));
    log_set_format(strcmp(cfg_str(c, CFG_LOG_FORMAT), "json") == 0 ? LOG_FMT_JSON
                                                                   : LOG_FMT_TEXT);
    return -1;
}

/* mkdir -p of the directory part of an sqlite: path, so ./var just works. */
static void make_parent(const char *url)
{
    if (strncmp(url, "sqlite:", 7) != 0)
        return;
    char path[1024];
    snprintf(path, sizeof(path), "%s", url + 7);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) && errno != EEXIST)
            return;
        *p = '/';
    }
}

int cli_open_db(const struct cfg *c, int nconns, struct db **out)
{
    struct db_opts o = {
        .max_conns = nconns,
        .busy_timeout_ms = (int)cfg_int(c, CFG_DB_BUSY_TIMEOUT),
        .sync_full = strcmp(cfg_str(c, CFG_DB_SYNC), "full") == 0,
    };
    struct err_detail d;
    err_clear(&d);
    make_parent(cfg_str(c, CFG_DB));
    int rc = db_open(cfg_str(c, CFG_DB), &o, out, &d);
    if (rc) {
        char masked[512];
        cfg_mask_url(masked, sizeof(masked), cfg_str(c, CFG_DB));
        log_error("db", "cannot open %s: %s", masked, d.msg);
    }
    return rc;
}
