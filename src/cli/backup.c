/*
 * `modelcat backup` and `modelcat restore` (backup/backup.h does the work):
 *   backup --to DIR|s3://bucket/prefix [--db URL] [--keep N] [--keep-days D]
 *   backup list --to ...              the complete sets, oldest first
 *   backup verify --to ... [NAME]     checksums and readability (default: newest)
 *   restore FROM [--db URL] [--force] FROM: DIR/modelcat-... or s3://.../set
 * Progress and errors go to stderr; `backup` prints the set's name on
 * stdout, `list` one "NAME BYTES" line per set.
 */
#include <stdio.h>
#include <string.h>

#include "backup/backup.h"
#include "cli/cli.h"
#include "core/config.h"
#include "core/timeutil.h"

static const char backup_usage[] =
    "usage: modelcat backup --to DIR|s3://bucket/prefix [--db URL] [--keep N] [--keep-days D]\n"
    "       modelcat backup list --to DIR|s3://...\n"
    "       modelcat backup verify --to DIR|s3://... [NAME]\n\n"
    "Backs the store up as a set modelcat-YYYYMMDDTHHMMSSZ/ (the dump and manifest.json),\n"
    "consistent while serve runs; lists and verifies sets. See docs/operations.md.";

static const char restore_usage[] =
    "usage: modelcat restore FROM [--db URL] [--force]\n\n"
    "Restores a backup set (FROM: DIR/modelcat-YYYYMMDDTHHMMSSZ or s3://bucket/prefix/set)\n"
    "into the store after checking it; refuses a store that holds data unless --force.";

static struct backup_store_opts store_opts(const struct cfg *c)
{
    struct backup_store_opts o = {
        .s3_endpoint = *cfg_str(c, CFG_BACKUP_S3_ENDPOINT) ? cfg_str(c, CFG_BACKUP_S3_ENDPOINT)
                                                           : NULL,
        .s3_region = cfg_str(c, CFG_BACKUP_S3_REGION),
        .timeout_ms = 30000,
    };
    return o;
}

static int print_set(void *arg, const struct backup_set_info *set)
{
    char *newest = arg;
    printf("%s %llu\n", set->name, (unsigned long long)set->bytes);
    snprintf(newest, BACKUP_NAME_LEN, "%s", set->name);
    return 0;
}

static int keep_newest(void *arg, const struct backup_set_info *set)
{
    snprintf(arg, BACKUP_NAME_LEN, "%s", set->name);
    return 0;
}

/* backup list / backup verify. */
static int list_or_verify(const struct cfg *c, const char *verb)
{
    struct backup_store_opts so = store_opts(c);
    struct backup_store *s;
    struct err_detail d;
    char name[BACKUP_NAME_LEN] = "";
    err_clear(&d);
    int rc = backup_store_open(cfg_str(c, CFG_BACKUP_TO), &so, &s, &d);
    if (rc) {
        fprintf(stderr, "modelcat backup %s: %s\n", verb, d.msg);
        return rc == ERR_INVAL ? 2 : 1;
    }
    if (!strcmp(verb, "list")) {
        rc = backup_list(s, print_set, name, &d);
    } else {
        if (c->nargs > 1)
            snprintf(name, sizeof(name), "%s", c->args[1]);
        else if (!(rc = backup_list(s, keep_newest, name, &d)) && !name[0])
            rc = err_set(&d, ERR_NOTFOUND, NULL, "no backup sets there");
        int64_t t0 = time_mono_ns();
        if (!rc && !(rc = backup_verify(s, name, &d)))
            fprintf(stderr, "%s: ok (checksums, sizes and archive verified in %.2fs)\n", name,
                    (double)(time_mono_ns() - t0) / 1e9);
    }
    s->ops->close(s);
    if (rc)
        fprintf(stderr, "modelcat backup %s: %s%s%s\n", verb, name, name[0] ? ": " : "",
                d.msg);
    return rc ? 1 : 0;
}

int cli_backup(int argc, char **argv)
{
    struct cfg c;
    struct err_detail d;
    struct backup_result r;
    int rc = cli_setup(&c, CMD_BACKUP, argc, argv, backup_usage);
    if (rc >= 0)
        return rc;
    err_clear(&d);
    const char *verb = c.nargs ? c.args[0] : "";
    if (!*cfg_str(&c, CFG_BACKUP_TO) || (*verb && strcmp(verb, "list") &&
                                         strcmp(verb, "verify"))) {
        fprintf(stderr, "%s\n", backup_usage);
        cfg_free(&c);
        return 2;
    }
    if (*verb) {
        rc = list_or_verify(&c, verb);
        cfg_free(&c);
        return rc;
    }
    struct backup_opts o = {
        .db_url = cfg_str(&c, CFG_DB),
        .to = cfg_str(&c, CFG_BACKUP_TO),
        .store = store_opts(&c),
        .keep = (int)cfg_int(&c, CFG_BACKUP_KEEP),
        .keep_days = cfg_double(&c, CFG_BACKUP_KEEP_DAYS),
        .lock = 1,
    };
    int64_t t0 = time_mono_ns();
    rc = backup_create(&o, time_wall_ms(), &r, &d);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    if (rc) {
        fprintf(stderr, "modelcat backup: %s (nothing was kept; the database is untouched)\n",
                d.msg);
    } else {
        printf("%s\n", r.name);
        fprintf(stderr, "backup %s: %llu bytes, %lld rows in %.2fs%s%s\n", r.name,
                (unsigned long long)r.bytes, (long long)r.rows, secs, d.msg[0] ? "; " : "",
                d.msg);
        if (r.deleted)
            fprintf(stderr, "retention removed %d old set%s\n", r.deleted,
                    r.deleted == 1 ? "" : "s");
    }
    cfg_free(&c);
    return rc ? (rc == ERR_INVAL ? 2 : 1) : 0;
}

int cli_restore(int argc, char **argv)
{
    struct cfg c;
    struct err_detail d;
    struct backup_restore_result r;
    int rc = cli_setup(&c, CMD_RESTORE, argc, argv, restore_usage);
    if (rc >= 0)
        return rc;
    err_clear(&d);
    if (c.nargs != 1) {
        fprintf(stderr, "%s\n", restore_usage);
        cfg_free(&c);
        return 2;
    }
    struct backup_restore_opts o = {
        .from = c.args[0],
        .db_url = cfg_str(&c, CFG_DB),
        .store = store_opts(&c),
        .force = (int)cfg_int(&c, CFG_RESTORE_FORCE),
    };
    int64_t t0 = time_mono_ns();
    rc = backup_restore(&o, &r, &d);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    if (rc)
        fprintf(stderr, "modelcat restore: %s\n", d.msg);
    else
        fprintf(stderr, "restored %s: %lld rows in %.2fs (schema v%d%s)\n", r.name,
                (long long)r.rows, secs, r.schema_from,
                r.migrations ? ", migrated forward" : "");
    cfg_free(&c);
    return rc ? (rc == ERR_INVAL ? 2 : 1) : 0;
}
