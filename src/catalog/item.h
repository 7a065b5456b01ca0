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

#endif
