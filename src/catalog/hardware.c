/*
 * Hardware: GPU instance types with their prices, the resource description
 * and the list filters of GET /api/v1/hardware.
 */
#include <string.h>

#include "catalog/item.h"

static const struct fld hw_fields[] = {
    {"id", FK_TEXT, FF_REQ | FF_KEY, 1, 128, chk_slug, 0},
    {"gpu", FK_TEXT, FF_REQ, 1, 64, NULL, 0},
    {"memory_gb", FK_REAL, FF_REQ | FF_XMIN, 0, 10000, NULL, 0},
    {"provider", FK_TEXT, 0, 1, 64, NULL, 0},
    {"instance_type", FK_TEXT, 0, 1, 64, NULL, 0},
    {"gpus_per_instance", FK_INT, FF_DEF, 1, 64, NULL, 1},
    {"on_demand_usd_per_hour", FK_REAL, 0, 0, 1e6, NULL, 0},
    {"spot_usd_per_hour", FK_REAL, 0, 0, 1e6, NULL, 0},
    {"price_source", FK_TEXT, 0, 1, 2048, NULL, 0},
    {"price_date", FK_DATE, 0, 10, 10, NULL, 0},
    {"created_at", FK_TIME, FF_SERVER, 0, 0, NULL, 0},
    {"updated_at", FK_TIME, FF_SERVER, 0, 0, NULL, 0},
};

struct resource cat_hardware = {
    .name = "hardware",
    .table = "hardware",
    .alias = "h",
    .f = hw_fields,
    .nf = sizeof(hw_fields) / sizeof(hw_fields[0]),
    .from = "hardware h",
    .refs_sql = "SELECT COUNT(*) FROM runs WHERE hardware = $1",
    .cascade_sql = (const char *const[]){
        "DELETE FROM samples WHERE run_id IN (SELECT id FROM runs WHERE hardware = $1)",
        "DELETE FROM gpu_samples WHERE run_id IN (SELECT id FROM runs WHERE hardware = $1)",
        "DELETE FROM runs WHERE hardware = $1", NULL},
};

static const struct list_sort hw_sorts[] = {
    {"id", "h.id", FK_TEXT},
    {"gpu", "h.gpu", FK_TEXT},
    {"on_demand", "COALESCE(h.on_demand_usd_per_hour, 1e300)", FK_REAL},
    {"spot", "COALESCE(h.spot_usd_per_hour, 1e300)", FK_REAL},
    {NULL, NULL, 0},
};

int cat_hw_list(struct db_conn *c, const struct cat_hw_filter *f,
                const struct cat_page *pg, struct buf *out, struct err_detail *d)
{
    struct list_q q;
    listq_init(&q);
    buf_printf(&q.sql, "%s FROM hardware h WHERE 1=1", cat_hardware.select);
    if (f->gpu)
        listq_where(&q, "h.gpu = $%d", db_p_text(f->gpu, strlen(f->gpu)));
    if (f->provider)
        listq_where(&q, "h.provider = $%d", db_p_text(f->provider, strlen(f->provider)));
    struct page_req pr = {pg->limit, pg->cursor, pg->sort};
    int rc = list_run(c, &q, "hardware", hw_sorts, "id", "h.id", cat_hardware.ncols, &pr,
                      rec_render_cb, &cat_hardware, out, d);
    listq_free(&q);
    return rc;
}

int cat_hw_get(struct db_conn *c, const char *id, struct buf *out, char etag[21],
               struct err_detail *d)
{
    return item_get(&cat_hardware, c, id, out, etag, d);
}

int cat_hw_write(struct db_conn *c, enum cat_write how, const char *id, json_t *body,
                 const char *if_match, struct buf *out, char etag[21],
                 struct err_detail *d)
{
    return item_write(&cat_hardware, c, how, id, body, if_match, out, etag, d);
}

int cat_hw_delete(struct db_conn *c, const char *id, int cascade, const char *if_match,
                  struct err_detail *d)
{
    return item_delete(&cat_hardware, c, id, cascade, if_match, d);
}
