/*
 * Keyset pagination shared by every list route (see record.h, list_run).
 *
 * DESIGN: a page is "rows after (sort key, id) of the last row seen", in a
 * total order (the id breaks ties), so rows inserted or deleted between
 * pages never shift the window: no duplicates, no gaps, and page N costs
 * the same as page 1 (an index range scan, no OFFSET). The cursor carries
 * the resource, the sort and the last (key, id); it is base64url of a small
 * JSON array, validated strictly when it comes back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/record.h"
#include "core/codec.h"
#include "core/mem.h"

void listq_init(struct list_q *q)
{
    buf_init(&q->sql, 8192);
    q->np = 0;
}

void listq_free(struct list_q *q)
{
    buf_free(&q->sql);
}

int listq_param(struct list_q *q, struct db_param p)
{
    if (q->np >= (int)(sizeof(q->p) / sizeof(q->p[0]))) {
        q->sql.err = ERR_TOOBIG;
        return 0;
    }
    q->p[q->np++] = p;
    return q->np;
}

void listq_where(struct list_q *q, const char *cond_fmt, struct db_param p)
{
    int n = listq_param(q, p);
    buf_puts(&q->sql, " AND ");
    /* cond_fmt is one of our constants with %d where the number goes. */
    for (const char *s = cond_fmt; *s; s++) {
        if (s[0] == '%' && s[1] == 'd') {
            buf_i64(&q->sql, n);
            s++;
        } else {
            buf_putc(&q->sql, *s);
        }
    }
}

/*
 * Parses cursor text into a JSON array [resource, sort, key, id] (*out,
 * owned by the caller) after checking it belongs to this list and sort.
 */
static int decode_cursor(const char *cur, const char *resource, const char *sort,
                         const struct list_sort *ls, json_t **out,
                         struct err_detail *d)
{
    unsigned char raw[1024];
    size_t n = strlen(cur);
    long len = n <= 1360 ? codec_b64url_decode(cur, n, raw, sizeof(raw)) : -1;
    json_t *a = len > 0 ? json_loadb((const char *)raw, (size_t)len, 0, NULL) : NULL;
    json_t *r = json_array_get(a, 0), *s = json_array_get(a, 1);
    json_t *v = json_array_get(a, 2), *id = json_array_get(a, 3);
    if (!json_is_array(a) || json_array_size(a) != 4 || !json_is_string(r) ||
        !json_is_string(s) || !json_is_string(id) ||
        strcmp(json_string_value(r), resource) != 0 ||
        !((ls->kind == FK_TEXT && json_is_string(v)) ||
          (ls->kind == FK_INT && json_is_integer(v)) ||
          (ls->kind == FK_REAL && json_is_number(v)))) {
        json_decref(a);
        return err_set(d, ERR_PARSE, "cursor", "cursor is malformed or not for this list");
    }
    if (strcmp(json_string_value(s), sort) != 0) {
        int rc = err_set(d, ERR_PARSE, "cursor",
                         "cursor was made for sort '%.32s', not '%.32s'",
                         json_string_value(s), sort);
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

static struct db_param key_param(const struct list_sort *ls, json_t *v)
{
    if (ls->kind == FK_TEXT)
        return db_p_text(json_string_value(v), json_string_length(v));
    if (ls->kind == FK_INT)
        return db_p_int(json_integer_value(v));
    return db_p_real(json_number_value(v));
}

/* Writes the cursor that continues after (key, id) as a JSON string. */
static void encode_cursor(struct jw *w, const char *resource, const char *sort,
                          json_t *key, json_t *id)
{
    json_t *a = json_pack("[s,s,O,O]", resource, sort, key, id);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    struct buf tmp;
    buf_init(&tmp, 2048);
    if (s)
        codec_b64url_encode(&tmp, s, strlen(s));
    if (!s || buf_err(&tmp))
        w->b->err = ERR_NOMEM;
    else
        jw_str(w, tmp.p, tmp.len);
    buf_free(&tmp);
    free(s);
    json_decref(a);
}

static json_t *col_json(struct db_rows *row, int col, int kind)
{
    size_t n;
    const char *s;
    switch (kind) {
    case FK_TEXT:
        s = db_col_text(row, col, &n);
        return json_stringn(s ? s : "", n);
    case FK_INT:
        return json_integer(db_col_int(row, col));
    default:
        return json_real(db_col_real(row, col));
    }
}

int list_run(struct db_conn *c, struct list_q *q, const char *resource,
             const struct list_sort *sorts, const char *def_sort,
             const char *id_expr, int ncols, const struct page_req *pg,
             void (*render)(struct db_rows *row, struct jw *w, void *arg),
             void *arg, struct buf *out, struct err_detail *d)
{
    const char *sort = pg->sort ? pg->sort : def_sort;
    int desc = sort[0] == '-';
    /* An entry may name the descending order itself ("-x"), when its
       expression differs (NULLs last both ways); else "x" serves both. */
    const struct list_sort *ls = sorts;
    while (ls->name && strcmp(ls->name, sort) != 0)
        ls++;
    if (!ls->name)
        for (ls = sorts; ls->name && strcmp(ls->name, sort + desc) != 0;)
            ls++;
    if (!ls->name)
        return err_set(d, ERR_INVAL, "sort", "unknown sort '%.64s'", sort);

    json_t *cur = NULL, *last_key = NULL, *last_id = NULL;
    struct buf sql;
    struct db_rows *row = NULL;
    int rc = 0, n = 0, more = 0;
    buf_init(&sql, 16384);
    if (pg->cursor && (rc = decode_cursor(pg->cursor, resource, sort, ls, &cur, d)))
        goto out;
    buf_puts(&sql, "SELECT ");
    /* q->sql starts with the column list, then " FROM ...". */
    const char *from = strstr(q->sql.p, " FROM ");
    buf_append(&sql, q->sql.p, (size_t)(from - q->sql.p));
    buf_printf(&sql, ", %s%s", ls->expr, from);
    if (cur) {
        int a = listq_param(q, key_param(ls, json_array_get(cur, 2)));
        int b = listq_param(q, db_p_text(json_string_value(json_array_get(cur, 3)),
                                         json_string_length(json_array_get(cur, 3))));
        buf_printf(&sql, " AND (%s, %s) %c ($%d, $%d)", ls->expr, id_expr,
                   desc ? '<' : '>', a, b);
    }
    const char *dir = desc ? "DESC" : "ASC";
    int lim = listq_param(q, db_p_int(pg->limit + 1));
    buf_printf(&sql, " ORDER BY %s %s, %s %s LIMIT $%d", ls->expr, dir, id_expr, dir, lim);
    if (buf_err(&sql) || buf_err(&q->sql)) {
        rc = err_set(d, ERR_TOOBIG, NULL, "query too complex");
        goto out;
    }
    if ((rc = db_query(c, sql.p, q->p, q->np, &row, d)))
        goto out;

    struct jw w;
    jw_init(&w, out);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    while ((rc = db_next(row)) == 1) {
        if (n == pg->limit) {
            more = 1;
            break;
        }
        render(row, &w, arg);
        n++;
        if (n == pg->limit) { /* only the last row's key can become the cursor */
            last_key = col_json(row, ncols, ls->kind);
            last_id = col_json(row, 0, FK_TEXT);
        }
    }
    if (rc < 0) {
        rc = err_set(d, rc, NULL, "list query failed");
        goto out;
    }
    rc = 0;
    jw_arr_close(&w);
    jw_key(&w, "next_cursor");
    if (more && last_key && last_id)
        encode_cursor(&w, resource, sort, last_key, last_id);
    else
        jw_null(&w);
    jw_obj_close(&w);
    if (buf_err(out))
        rc = err_set(d, buf_err(out), NULL, "response too large");
out:
    db_rows_close(row);
    json_decref(cur);
    json_decref(last_key);
    json_decref(last_id);
    buf_free(&sql);
    return rc;
}
