/*
 * Single-item operations shared by resources (see record.h): get, create,
 * replace, merge-patch and delete, each one transaction, with ETags and
 * If-Match checked inside the transaction that writes. A write that met a
 * concurrent writer on PostgreSQL is run again (ITEM_WRITE_TRIES).
 */
#include <stdio.h>
#include <string.h>

#include "catalog/item.h"
#include "core/timeutil.h"

/* Renders item id into out (appended) and its ETag; ERR_NOTFOUND if absent. */
int item_get(const struct resource *r, struct db_conn *c, const char *id,
             struct buf *out, char etag[21], struct err_detail *d)
{
    char sql[4096];
    snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE %s.id = $1", r->select,
             r->from, r->alias);
    struct db_param p = db_p_text(id, strlen(id));
    struct db_rows *row;
    int rc = db_query(c, sql, &p, 1, &row, d);
    if (rc)
        return rc;
    size_t start = out->len;
    rc = db_next(row);
    if (rc == 1) {
        struct jw w;
        jw_init(&w, out);
        rec_render(r, row, &w);
        rc = buf_err(out) ? err_set(d, buf_err(out), NULL, "response too large") : 0;
        if (!rc && etag)
            rec_etag(out->p + start, out->len - start, etag);
    } else if (rc == 0) {
        rc = err_set(d, ERR_NOTFOUND, NULL, "no %s '%.128s'", r->name, id);
    } else {
        rc = err_set(d, rc, NULL, "%s lookup failed", r->name);
    }
    db_rows_close(row);
    return rc;
}

/* RFC 7386: applies patch to target in place. */
static int merge_patch(json_t *target, json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach(patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
        } else if (json_is_object(v)) {
            json_t *t = json_object_get(target, k);
            if (!json_is_object(t)) {
                t = json_object();
                if (!t || json_object_set_new(target, k, t))
                    return ERR_NOMEM;
            }
            if (merge_patch(t, v))
                return ERR_NOMEM;
        } else if (json_object_set(target, k, v)) {
            return ERR_NOMEM;
        }
    }
    return 0;
}

/*
 * Reads the current item for a replace/patch/delete, checks If-Match, and
 * for a patch returns in *merged the current representation with patch
 * applied. The row is locked first with a write that changes nothing (the
 * portable SELECT ... FOR UPDATE): on PostgreSQL a concurrent writer of the
 * item waits here and the read then sees its result, so If-Match is checked
 * against the version this transaction replaces; SQLite's write
 * transaction already excludes other writers.
 */
static int load_current(const struct resource *r, struct db_conn *c, const char *id,
                        const char *if_match, json_t *patch, json_t **merged,
                        struct err_detail *d)
{
    struct buf cur;
    char etag[21], lock[256];
    struct db_param p = db_p_text(id, strlen(id));
    snprintf(lock, sizeof(lock), "UPDATE %s SET created_at = created_at WHERE id = $1",
             r->table);
    int rc = db_exec(c, lock, &p, 1, NULL, d);
    if (rc)
        return rc;
    buf_init(&cur, 1 << 20);
    rc = item_get(r, c, id, &cur, etag, d);
    if (!rc && if_match && !cat_etag_matches(if_match, etag, 0))
        rc = err_set(d, ERR_PRECOND, NULL, "If-Match does not match the current ETag %s", etag);
    if (!rc && patch) {
        *merged = json_loadb(cur.p, cur.len, 0, NULL);
        if (!*merged || merge_patch(*merged, patch))
            rc = err_set(d, ERR_NOMEM, NULL, "out of memory");
    }
    buf_free(&cur);
    return rc;
}

void item_rewind(struct buf *out, size_t len)
{
    if (out->len > len) {
        out->len = len;
        out->p[len] = '\0';
    }
}

static int write_once(const struct resource *r, struct db_conn *c, enum cat_write how,
                      const char *id, json_t *body, const char *if_match, struct buf *out,
                      char etag[21], struct err_detail *d)
{
    struct rec rec;
    struct db_param p[REC_MAX];
    json_t *merged = NULL;
    int rc, key = r->upd_idx[0];
    memset(&rec, 0, sizeof(rec));
    buf_init(&rec.tags, 0);
    if (!json_is_object(body))
        return err_set(d, ERR_PARSE, NULL, "the body must be a JSON object");
    if (how == CAT_PATCH) {
        json_t *nid = json_object_get(body, r->f[key].name);
        if (nid && !(json_is_string(nid) && strcmp(json_string_value(nid), id) == 0))
            return err_set(d, ERR_INVAL, r->f[key].name, "%s cannot be changed", r->f[key].name);
    }
    if (how == CAT_REPLACE && !json_object_get(body, r->f[key].name) &&
        json_object_set_new(body, r->f[key].name, json_string(id)))
        return err_set(d, ERR_NOMEM, NULL, "out of memory");
    if ((rc = db_begin(c, 1, d)))
        return rc;
    if (how != CAT_CREATE &&
        (rc = load_current(r, c, id, if_match, how == CAT_PATCH ? body : NULL, &merged, d)))
        goto out;
    if ((rc = rec_validate(r, merged ? merged : body, &rec, d)))
        goto out;
    if (how == CAT_REPLACE) {
        const struct db_param *k = &rec.v[key];
        if (strlen(id) != k->n || memcmp(id, k->s, k->n) != 0) {
            rc = err_set(d, ERR_INVAL, r->f[key].name,
                         "%s in the body differs from the one in the path", r->f[key].name);
            goto out;
        }
    }
    int64_t now = time_wall_ms();
    int ci = rec_field(r, "created_at"), ui = rec_field(r, "updated_at");
    if (ci >= 0)
        rec.v[ci] = db_p_int(now);
    if (ui >= 0)
        rec.v[ui] = db_p_int(now);
    if (how == CAT_CREATE) {
        int n = rec_params(r->ins_idx, r->ncols, &rec, p);
        rc = db_exec(c, r->insert, p, n, NULL, d);
        if (rc == ERR_EXISTS)
            rc = err_set(d, ERR_EXISTS, r->f[key].name, "%s '%.*s' already exists",
                         r->name, (int)rec.v[key].n, rec.v[key].s);
    } else {
        int n = rec_params(r->upd_idx, r->nupd, &rec, p);
        rc = db_exec(c, r->update, p, n, NULL, d);
    }
    if (rc || (r->after_write && (rc = r->after_write(c, &rec, d))))
        goto out;
    char kid[256];
    snprintf(kid, sizeof(kid), "%.*s", (int)rec.v[key].n, rec.v[key].s);
    if ((rc = item_get(r, c, kid, out, etag, d)) || (rc = db_commit(c, d)))
        goto out;
out:
    db_rollback(c);
    rec_free(&rec);
    json_decref(merged);
    return rc;
}

int item_write(const struct resource *r, struct db_conn *c, enum cat_write how,
               const char *id, json_t *body, const char *if_match, struct buf *out,
               char etag[21], struct err_detail *d)
{
    size_t mark = out->len;
    for (int i = 1;; i++) {
        int rc = write_once(r, c, how, id, body, if_match, out, etag, d);
        if (i == ITEM_WRITE_TRIES || !db_retryable(c, rc))
            return rc;
        item_rewind(out, mark);
    }
}

static int delete_once(const struct resource *r, struct db_conn *c, const char *id,
                       int cascade, const char *if_match, struct err_detail *d)
{
    struct db_param p = db_p_text(id, strlen(id));
    int rc;
    if ((rc = db_begin(c, 1, d)))
        return rc;
    if ((rc = load_current(r, c, id, if_match, NULL, NULL, d)))
        goto out;
    if (r->refs_sql) {
        int64_t refs = 0;
        if ((rc = db_query_int(c, r->refs_sql, &p, 1, &refs, d)))
            goto out;
        if (refs > 0 && !cascade) {
            rc = err_set(d, ERR_CONFLICT, NULL,
                         "%lld benchmark runs reference %s '%.128s'; delete them or"
                         " pass cascade=true", (long long)refs, r->name, id);
            goto out;
        }
        for (int i = 0; refs > 0 && r->cascade_sql[i]; i++)
            if ((rc = db_exec(c, r->cascade_sql[i], &p, 1, NULL, d)))
                goto out;
    }
    for (int i = 0; r->children_sql && r->children_sql[i]; i++)
        if ((rc = db_exec(c, r->children_sql[i], &p, 1, NULL, d)))
            goto out;
    char sql[256];
    snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id = $1", r->table);
    if ((rc = db_exec(c, sql, &p, 1, NULL, d)) || (rc = db_commit(c, d)))
        goto out;
out:
    db_rollback(c);
    return rc;
}

int item_delete(const struct resource *r, struct db_conn *c, const char *id,
                int cascade, const char *if_match, struct err_detail *d)
{
    for (int i = 1;; i++) {
        int rc = delete_once(r, c, id, cascade, if_match, d);
        if (i == ITEM_WRITE_TRIES || !db_retryable(c, rc))
            return rc;
    }
}
