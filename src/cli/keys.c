/*
 * `modelcat keys`: API keys, administered against the store directly (so
 * the first admin key needs no running server):
 *   keys create --name N --role R   prints the new key once
 *   keys list [--all]               the keys as JSON (never a secret)
 *   keys revoke ID                  refused from the next request on
 *   keys generate                   a fresh key for MODELCAT_BOOTSTRAP_ADMIN_KEY
 *                                   (no store involved)
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "db/migrate.h"

static const char usage[] =
    "usage: modelcat keys create --name NAME --role viewer|editor|worker|admin [--db URL]\n"
    "       modelcat keys list [--all] [--db URL]\n"
    "       modelcat keys revoke ID [--db URL]\n"
    "       modelcat keys generate\n\n"
    "API keys: only a hash of each is stored, so `create` prints the key once.\n"
    "`generate` prints a key to use as MODELCAT_BOOTSTRAP_ADMIN_KEY.";

static int run(struct cfg *c, const char *verb, struct db_conn *conn)
{
    struct err_detail d;
    struct buf out;
    int rc;
    err_clear(&d);
    if (!strcmp(verb, "create")) {
        enum auth_role role;
        char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF];
        const char *name = cfg_str(c, CFG_KEY_NAME), *r = cfg_str(c, CFG_KEY_ROLE);
        if (!*name) {
            fprintf(stderr, "modelcat keys create: --name is required\n");
            return 2;
        }
        if ((rc = auth_role_parse(r, strlen(r), &role, &d)) ||
            (rc = auth_key_create(conn, name, role, "cli", time_wall_ms(), key, id, &d))) {
            fprintf(stderr, "modelcat keys create: %s\n", d.msg);
            return rc == ERR_INVAL ? 2 : 1;
        }
        printf("%s\n", key);
        fprintf(stderr, "key %s (%s, role %s) created; it is shown only this once\n", id,
                name, r);
        return 0;
    }
    if (!strcmp(verb, "list")) {
        buf_init(&out, 64 << 20);
        rc = auth_key_list(conn, (int)cfg_int(c, CFG_KEY_ALL), &out, &d);
        if (!rc)
            printf("%.*s\n", (int)out.len, out.p ? out.p : "");
        else
            fprintf(stderr, "modelcat keys list: %s\n", d.msg);
        buf_free(&out);
        return rc ? 1 : 0;
    }
    /* revoke */
    if (c->nargs != 2) {
        fprintf(stderr, "modelcat keys revoke: give the key's id\n");
        return 2;
    }
    rc = auth_key_revoke(conn, c->args[1], time_wall_ms(), &d);
    if (rc) {
        fprintf(stderr, "modelcat keys revoke: %s\n", d.msg);
        return 1;
    }
    fprintf(stderr, "key %s revoked\n", c->args[1]);
    return 0;
}

int cli_keys(int argc, char **argv)
{
    struct cfg c;
    struct db *db;
    struct db_conn *conn;
    struct err_detail d;
    int rc = cli_setup(&c, CMD_KEYS, argc, argv, usage);
    if (rc >= 0)
        return rc;
    err_clear(&d);
    const char *verb = c.nargs ? c.args[0] : "";
    if (!strcmp(verb, "generate")) {
        char key[AUTH_KEY_BUF], id[AUTH_KEY_ID_BUF];
        rc = auth_key_generate(key, id, &d);
        if (!rc)
            printf("%s\n", key);
        else
            fprintf(stderr, "modelcat keys generate: %s\n", d.msg);
        cfg_free(&c);
        return rc ? 1 : 0;
    }
    if (strcmp(verb, "create") && strcmp(verb, "list") && strcmp(verb, "revoke")) {
        fprintf(stderr, "%s\n", usage);
        cfg_free(&c);
        return 2;
    }
    rc = 1;
    if (cli_open_db(&c, 1, &db) == 0) {
        if (db_migrate(db, NULL, &d))
            log_error("keys", "migrations failed: %s", d.msg);
        else if (db_acquire(db, &conn, &d))
            log_error("keys", "%s", d.msg);
        else {
            rc = run(&c, verb, conn);
            db_release(db, conn);
        }
        db_close(db);
    }
    cfg_free(&c);
    return rc;
}
