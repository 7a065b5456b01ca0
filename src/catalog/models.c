/*
 * Models: the resource description, tag bookkeeping and the list filters
 * of GET /api/v1/models. Tags are stored twice on purpose: as canonical
 * JSON in models.tags (rendered without a join) and one row per tag in
 * model_tags (the tag filter is an index lookup).
 */
#include <string.h>

#include "catalog/item.h"

static const struct fld model_fields[] = {
    {"id", FK_TEXT, FF_REQ | FF_KEY, 3, 128, chk_model_id, 0},
    {"name", FK_TEXT, FF_REQ, 1, 200, NULL, 0},
    {"family", FK_TEXT, 0, 1, 64, NULL, 0},
    {"parameters_b", FK_REAL, FF_REQ | FF_XMIN, 0, 100000, NULL, 0},
    {"architecture", FK_TEXT, 0, 1, 64, NULL, 0},
    {"context_length", FK_INT, 0, 1, 100000000, NULL, 0},
    {"quantization", FK_TEXT, 0, 1, 32, chk_slug, 0},
    {"license", FK_TEXT, 0, 1, 64, NULL, 0},
    {"source_uri", FK_TEXT, 0, 1, 2048, chk_url, 0},
    {"description", FK_TEXT, 0, 0, 8192, chk_printable, 0},
    {"tags", FK_TAGS, 0, 0, 32, NULL, 0},
    {"created_at", FK_TIME, FF_SERVER, 0, 0, NULL, 0},
    {"updated_at", FK_TIME, FF_SERVER, 0, 0, NULL, 0},
};

static int sync_tags(struct db_conn *c, const struct rec *rec, struct err_detail *d)
{
    struct db_param p[2] = {rec->v[0], db_p_null()};
    int rc = db_exec(c, "DELETE FROM model_tags WHERE model_id = $1", p, 1, NULL, d);
    for (int i = 0; !rc && i < rec->ntags; i++) {
        p[1] = db_p_text(rec->tag[i], rec->tag_len[i]);
        rc = db_exec(c, "INSERT INTO model_tags (model_id, tag) VALUES ($1, $2)", p, 2,
                     NULL, d);
    }
    return rc;
}

struct resource cat_models = {
    .name = "model",
    .table = "models",
    .alias = "m",
    .f = model_fields,
    .nf = sizeof(model_fields) / sizeof(model_fields[0]),
    .from = "models m",
    .after_write = sync_tags,
    .refs_sql = "SELECT COUNT(*) FROM runs WHERE model = $1",
    .cascade_sql = (const char *const[]){
        "DELETE FROM samples WHERE run_id IN (SELECT id FROM runs WHERE model = $1)",
        "DELETE FROM gpu_samples WHERE run_id IN (SELECT id FROM runs WHERE model = $1)",
        "DELETE FROM runs WHERE model = $1", NULL},
};

static const struct list_sort model_sorts[] = {
    {"name", "m.name", FK_TEXT},
    {"params", "m.parameters_b", FK_REAL},
    {"created", "m.created_at", FK_INT},
    {"updated", "m.updated_at", FK_INT},
    {NULL, NULL, 0},
};

/* '%' + s with LIKE's metacharacters escaped, lowercased + '%', into b. */
static void like_pattern(struct buf *b, const char *s)
{
    buf_putc(b, '%');
    for (; *s; s++) {
        char ch = *s;
        if (ch == '%' || ch == '_' || ch == '\\')
            buf_putc(b, '\\');
        buf_putc(b, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
    }
    buf_putc(b, '%');
}

int cat_model_list(struct db_conn *c, const struct cat_model_filter *f,
                   const struct cat_page *pg, struct buf *out, struct err_detail *d)
{
    struct list_q q;
    struct buf like;
    listq_init(&q);
    buf_init(&like, 1024);
    buf_printf(&q.sql, "%s FROM models m WHERE 1=1", cat_models.select);
    if (f->q) {
        like_pattern(&like, f->q);
        int n = listq_param(&q, db_p_text(like.p, like.len));
        buf_printf(&q.sql,
                   " AND (lower(m.id) LIKE $%d ESCAPE '\\' OR lower(m.name) LIKE $%d"
                   " ESCAPE '\\' OR lower(m.family) LIKE $%d ESCAPE '\\'"
                   " OR lower(m.description) LIKE $%d ESCAPE '\\' OR EXISTS (SELECT 1"
                   " FROM model_tags t WHERE t.model_id = m.id AND t.tag LIKE $%d"
                   " ESCAPE '\\'))", n, n, n, n, n);
    }
    if (f->family)
        listq_where(&q, "m.family = $%d", db_p_text(f->family, strlen(f->family)));
    if (f->license)
        listq_where(&q, "m.license = $%d", db_p_text(f->license, strlen(f->license)));
    if (f->quantization)
        listq_where(&q, "m.quantization = $%d",
                    db_p_text(f->quantization, strlen(f->quantization)));
    for (int i = 0; i < f->ntags; i++)
        listq_where(&q, "EXISTS (SELECT 1 FROM model_tags t WHERE t.model_id = m.id"
                        " AND t.tag = $%d)", db_p_text(f->tags[i], strlen(f->tags[i])));
    if (f->has_min_params)
        listq_where(&q, "m.parameters_b >= $%d", db_p_real(f->min_params));
    if (f->has_max_params)
        listq_where(&q, "m.parameters_b <= $%d", db_p_real(f->max_params));
    if (f->has_min_context)
        listq_where(&q, "m.context_length >= $%d", db_p_int(f->min_context));
    struct page_req pr = {pg->limit, pg->cursor, pg->sort};
    int rc = buf_err(&like) ? err_set(d, ERR_NOMEM, "q", "out of memory")
                            : list_run(c, &q, "models", model_sorts, "name", "m.id",
                                       cat_models.ncols, &pr, rec_render_cb, &cat_models,
                                       out, d);
    buf_free(&like);
    listq_free(&q);
    return rc;
}

int cat_model_get(struct db_conn *c, const char *id, struct buf *out, char etag[21],
                  struct err_detail *d)
{
    return item_get(&cat_models, c, id, out, etag, d);
}

int cat_model_write(struct db_conn *c, enum cat_write how, const char *id, json_t *body,
                    const char *if_match, struct buf *out, char etag[21],
                    struct err_detail *d)
{
    return item_write(&cat_models, c, how, id, body, if_match, out, etag, d);
}

int cat_model_delete(struct db_conn *c, const char *id, int cascade, const char *if_match,
                     struct err_detail *d)
{
    return item_delete(&cat_models, c, id, cascade, if_match, d);
}
