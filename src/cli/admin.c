/*
 * Administrative commands: migrate, seed, config.
 */
#include <stdio.h>

#include "catalog/catalog.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "db/migrate.h"

int cli_migrate(int argc, char **argv)
{
    struct cfg c;
    struct db *db;
    struct err_detail d;
    int rc = cli_setup(&c, CMD_MIGRATE, argc, argv,
                       "usage: modelcat migrate [--db URL]\n\n"
                       "Applies the embedded schema migrations to the store.");
    if (rc >= 0)
        return rc;
    rc = 1;
    err_clear(&d);
    if (cli_open_db(&c, 1, &db) == 0) {
        int n = 0;
        if (db_migrate(db, &n, &d))
            log_error("migrate", "%s", d.msg);
        else {
            printf("schema at version %d (%d migration%s applied)\n", db_schema_latest(), n,
                   n == 1 ? "" : "s");
            rc = 0;
        }
        db_close(db);
    }
    cfg_free(&c);
    return rc;
}

int cli_seed(int argc, char **argv)
{
    struct cfg c;
    struct db *db;
    struct err_detail d;
    int rc = cli_setup(&c, CMD_SEED, argc, argv,
                       "usage: modelcat seed --demo [--db URL]\n\n"
                       "Loads the demo catalog: well-known open models and a GPU price\n"
                       "table with sources. Ids already present are left as they are.\n"
                       "No benchmark results are invented: those come from real runs.");
    if (rc >= 0)
        return rc;
    if (!cfg_int(&c, CFG_DEMO)) {
        fprintf(stderr, "modelcat seed: nothing to load; pass --demo\n");
        cfg_free(&c);
        return 2;
    }
    rc = 1;
    err_clear(&d);
    cat_init();
    if (cli_open_db(&c, 1, &db) == 0) {
        int m = 0, h = 0;
        if (db_migrate(db, NULL, &d) || cat_seed_demo(db, &m, &h, &d))
            log_error("seed", "%s%s%s", d.field, d.field[0] ? ": " : "", d.msg);
        else {
            printf("demo catalog loaded: %d models and %d hardware rows added\n", m, h);
            rc = 0;
        }
        db_close(db);
    }
    cfg_free(&c);
    return rc;
}

int cli_config(int argc, char **argv)
{
    struct cfg c;
    int rc = cli_setup(&c, CMD_ALL, argc, argv,
                       "usage: modelcat config [flags]\n\n"
                       "Prints the effective settings (flags > environment > defaults),\n"
                       "with secrets masked.");
    if (rc >= 0)
        return rc;
    cfg_print(stdout, &c);
    cfg_free(&c);
    return 0;
}
