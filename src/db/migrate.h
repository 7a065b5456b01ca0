/*
 * Schema migrations, embedded in the binary from db/migrations/NNNN_*.sql.
 * Each runs once, in its own transaction, recorded in schema_migrations.
 */
#ifndef MC_DB_MIGRATE_H
#define MC_DB_MIGRATE_H

#include "db/db.h"

/* Version of the newest migration compiled in. */
int db_schema_latest(void);
/*
 * Applies every migration newer than the store's version. Returns 0 and sets
 * *applied (may be NULL) to how many ran, or an error with detail in d.
 */
int db_migrate(struct db *db, int *applied, struct err_detail *d) MC_WUR;
/* The store's applied version in *version (0: none). */
int db_schema_version(struct db_conn *c, int *version, struct err_detail *d) MC_WUR;

#endif
