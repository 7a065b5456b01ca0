/*
 * Private to catalog/: generic single-item operations over a resource
 * description (record.h). Semantics and errors as in catalog.h.
 */
#ifndef MC_CATALOG_ITEM_H
#define MC_CATALOG_ITEM_H

#include "catalog/catalog.h"
#include "catalog/record.h"

int item_get(const struct resource *r, struct db_conn *c, const char *id,
             struct buf *out, char etag[21], struct err_detail *d) MC_WUR;
int item_write(const struct resource *r, struct db_conn *c, enum cat_write how,
               const char *id, json_t *body, const char *if_match, struct buf *out,
               char etag[21], struct err_detail *d) MC_WUR;
int item_delete(const struct resource *r, struct db_conn *c, const char *id,
                int cascade, const char *if_match, struct err_detail *d) MC_WUR;

/*
 * A write transaction that PostgreSQL refused because of a concurrent one
 * (db_retryable) runs again from the start, this many times in all.
 */
#define ITEM_WRITE_TRIES 3
/* Drops what a failed try appended to out after its first len bytes. */
void item_rewind(struct buf *out, size_t len);

#endif
