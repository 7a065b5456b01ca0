/*
 * Catalog start-up (SQL built from the resource descriptions) and the demo
 * catalog loader, which goes through the same validation as the API.
 */
#include <stdio.h>

#include "catalog/item.h"

extern struct resource cat_models, cat_hardware, cat_runs;
void cat__runs_init(void);

/* Generated from demo_seed.json at build time. */
extern const char demo_seed_json[];
extern const size_t demo_seed_json_len;

void cat_init(void)
{
    rec_init(&cat_models);
    rec_init(&cat_hardware);
    cat__runs_init();
}

/* Creates every object of array `arr` with `write`; existing ids count as done. */
static int seed_array(struct db_conn *c, json_t *arr, const char *what,
                      int (*write)(struct db_conn *, enum cat_write, const char *, json_t *,
                                   const char *, struct buf *, char *, struct err_detail *),
                      int *created, struct err_detail *d)
{
    size_t i;
    json_t *v;
    struct buf out;
    char etag[21];
    buf_init(&out, 1 << 20);
    json_array_foreach(arr, i, v) {
        buf_reset(&out);
        int rc = write(c, CAT_CREATE, NULL, v, NULL, &out, etag, d);
        if (rc == ERR_EXISTS)
            continue;
        if (rc) {
            char msg[ERR_MSG_LEN], field[ERR_FIELD_LEN];
            snprintf(msg, sizeof(msg), "%s", d->msg);
            snprintf(field, sizeof(field), "%s", d->field);
            buf_free(&out);
            return err_set(d, rc, field, "demo %s #%zu: %s", what, i, msg);
        }
        (*created)++;
    }
    buf_free(&out);
    return 0;
}

int cat_seed_demo(struct db *db, int *models, int *hardware, struct err_detail *d)
{
    json_error_t jerr;
    json_t *doc = json_loadb(demo_seed_json, demo_seed_json_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return err_set(d, ERR_CORRUPT, NULL, "demo data: %s (line %d)", jerr.text, jerr.line);
    struct db_conn *c;
    int rc = db_acquire(db, &c, d);
    *models = *hardware = 0;
    if (!rc) {
        rc = seed_array(c, json_object_get(doc, "hardware"), "hardware", cat_hw_write,
                        hardware, d);
        if (!rc)
            rc = seed_array(c, json_object_get(doc, "models"), "model", cat_model_write,
                            models, d);
        db_release(db, c);
    }
    json_decref(doc);
    return rc;
}
