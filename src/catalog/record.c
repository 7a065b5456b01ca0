/*
 * Generic resource machinery (see record.h): SQL text from the field list,
 * validation of request bodies, rendering of rows, ETags, field checkers.
 */
#include "catalog/record.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/codec.h"
#include "core/timeutil.h"

static void append(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    snprintf(dst + n, cap - n, "%s", s);
}

void rec_init(struct resource *r)
{
    char tmp[160];
    char values[512] = "";
    int key = -1;
    r->ncols = r->nupd = 0;
    r->select[0] = '\0';
    snprintf(r->insert, sizeof(r->insert), "INSERT INTO %s (", r->table);
    snprintf(r->update, sizeof(r->update), "UPDATE %s SET ", r->table);
    for (int i = 0; i < r->nf; i++) {
        const struct fld *f = &r->f[i];
        if (f->flags & FF_NOCOL)
            continue;
        int c = r->ncols;
        snprintf(tmp, sizeof(tmp), "%s%s.%s", c ? ", " : "", r->alias, f->name);
        append(r->select, sizeof(r->select), tmp);
        snprintf(tmp, sizeof(tmp), "%s%s", c ? ", " : "", f->name);
        append(r->insert, sizeof(r->insert), tmp);
        snprintf(tmp, sizeof(tmp), "%s$%d", c ? ", " : "", c + 1);
        append(values, sizeof(values), tmp);
        r->ins_idx[r->ncols++] = i;
        if (f->flags & FF_KEY)
            key = i;
    }
    /* Updates bind the key as $1 and never change it or the creation time. */
    r->upd_idx[r->nupd++] = key;
    for (int i = 0; i < r->nf; i++) {
        const struct fld *f = &r->f[i];
        if ((f->flags & (FF_NOCOL | FF_KEY)) || strcmp(f->name, "created_at") == 0)
            continue;
        snprintf(tmp, sizeof(tmp), "%s%s = $%d", r->nupd > 1 ? ", " : "", f->name,
                 r->nupd + 1);
        append(r->update, sizeof(r->update), tmp);
        r->upd_idx[r->nupd++] = i;
    }
    append(r->insert, sizeof(r->insert), ") VALUES (");
    append(r->insert, sizeof(r->insert), values);
    append(r->insert, sizeof(r->insert), ")");
    append(r->update, sizeof(r->update), " WHERE id = $1");
    if (r->extra) {
        append(r->select, sizeof(r->select), ", ");
        append(r->select, sizeof(r->select), r->extra);
    }
}

int rec_params(const int *idx, int n, const struct rec *rec, struct db_param *out)
{
    for (int i = 0; i < n; i++)
        out[i] = rec->v[idx[i]];
    return n;
}

int rec_field(const struct resource *r, const char *name)
{
    for (int i = 0; i < r->nf; i++)
        if (strcmp(r->f[i].name, name) == 0)
            return i;
    return -1;
}

void rec_free(struct rec *rec)
{
    buf_free(&rec->tags);
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += ((unsigned char)s[i] & 0xc0) != 0x80;
    return k;
}

static int check_tags(const struct fld *f, json_t *v, struct rec *out,
                      struct err_detail *d)
{
    if (!json_is_array(v))
        return err_set(d, ERR_INVAL, f->name, "%s must be an array of strings", f->name);
    size_t n = json_array_size(v);
    if (n > f->max)
        return err_set(d, ERR_RANGE, f->name, "%s has %zu entries, at most %.0f allowed",
                       f->name, n, f->max);
    struct jw w;
    jw_init(&w, &out->tags);
    jw_arr_open(&w);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(v, i);
        if (!json_is_string(t))
            return err_set(d, ERR_INVAL, f->name, "%s[%zu] must be a string", f->name, i);
        const char *s = json_string_value(t);
        size_t len = json_string_length(t);
        const char *why = chk_slug(s, len);
        if (why || len > 64)
            return err_set(d, ERR_INVAL, f->name, "%s[%zu] %s", f->name, i,
                           why ? why : "is longer than 64 characters");
        int dup = 0;
        for (int k = 0; k < out->ntags; k++)
            dup |= out->tag_len[k] == len && memcmp(out->tag[k], s, len) == 0;
        if (dup)
            continue;
        out->tag[out->ntags] = s;
        out->tag_len[out->ntags++] = len;
        jw_str(&w, s, len);
    }
    jw_arr_close(&w);
    if (buf_err(&out->tags))
        return err_set(d, ERR_NOMEM, f->name, "out of memory");
    return 0;
}

/* Validates one present, non-null value of field f into *p. */
static int check_value(const struct fld *f, json_t *v, struct db_param *p,
                       struct rec *out, struct err_detail *d)
{
    switch (f->kind) {
    case FK_TEXT:
    case FK_DATE: {
        if (!json_is_string(v))
            return err_set(d, ERR_INVAL, f->name, "%s must be a string", f->name);
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), chars = utf8_len(s, n);
        if (chars < f->min || chars > f->max)
            return err_set(d, ERR_RANGE, f->name,
                           "%s must be %.0f to %.0f characters long", f->name,
                           f->min, f->max);
        if (f->kind == FK_DATE && time_parse_date(s, n))
            return err_set(d, ERR_INVAL, f->name, "%s must be a date YYYY-MM-DD", f->name);
        const char *why = f->check ? f->check(s, n) : chk_line(s, n);
        if (why)
            return err_set(d, ERR_INVAL, f->name, "%s %s", f->name, why);
        *p = db_p_text(s, n);
        return 0;
    }
    case FK_INT: {
        if (!json_is_integer(v))
            return err_set(d, ERR_INVAL, f->name, "%s must be an integer", f->name);
        json_int_t i = json_integer_value(v);
        if ((double)i < f->min || (double)i > f->max)
            return err_set(d, ERR_RANGE, f->name, "%s must be between %.0f and %.0f",
                           f->name, f->min, f->max);
        *p = db_p_int(i);
        return 0;
    }
    case FK_REAL: {
        if (!json_is_number(v))
            return err_set(d, ERR_INVAL, f->name, "%s must be a number", f->name);
        double x = json_number_value(v);
        if (!isfinite(x) || x > f->max || x < f->min || ((f->flags & FF_XMIN) && x == f->min))
            return err_set(d, ERR_RANGE, f->name, "%s must be %s %g and <= %g", f->name,
                           (f->flags & FF_XMIN) ? ">" : ">=", f->min, f->max);
        *p = db_p_real(x);
        return 0;
    }
    case FK_TAGS: {
        int rc = check_tags(f, v, out, d);
        if (!rc)
            *p = db_p_text(out->tags.p, out->tags.len);
        return rc;
    }
    }
    return err_set(d, ERR_INTERNAL, f->name, "unknown field kind");
}

int rec_validate(const struct resource *r, json_t *obj, struct rec *out,
                 struct err_detail *d)
{
    memset(out, 0, sizeof(*out));
    buf_init(&out->tags, 4096);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (rec_field(r, key) < 0)
            return err_set(d, ERR_INVAL, key, "unknown field '%.64s'", key);
    }
    for (int i = 0; i < r->nf; i++) {
        const struct fld *f = &r->f[i];
        out->v[i] = db_p_null();
        if (f->flags & (FF_SERVER | FF_NOCOL))
            continue;
        v = json_object_get(obj, f->name);
        if (!v || json_is_null(v)) {
            if (f->flags & FF_REQ)
                return err_set(d, ERR_INVAL, f->name, "%s is required", f->name);
            if (f->flags & FF_DEF)
                out->v[i] = f->kind == FK_INT ? db_p_int((int64_t)f->def) : db_p_real(f->def);
            else if (f->kind == FK_TAGS)
                out->v[i] = db_p_text("[]", 2);
            continue;
        }
        int rc = check_value(f, v, &out->v[i], out, d);
        if (rc)
            return rc;
    }
    return 0;
}

void rec_render_fields(const struct resource *r, struct db_rows *row, struct jw *w)
{
    int col = 0;
    for (int i = 0; i < r->nf; i++) {
        const struct fld *f = &r->f[i];
        if (f->flags & FF_NOCOL)
            continue;
        int c = col++;
        if (f->flags & FF_HIDDEN)
            continue;
        jw_key(w, f->name);
        if (db_col_type(row, c) == DB_NULL) {
            jw_null(w);
            continue;
        }
        size_t n;
        const char *s;
        switch (f->kind) {
        case FK_TEXT:
        case FK_DATE:
            s = db_col_text(row, c, &n);
            jw_str(w, s, n);
            break;
        case FK_TAGS:
            s = db_col_text(row, c, &n);
            jw_raw(w, s, n);
            break;
        case FK_INT:
            jw_i64(w, db_col_int(row, c));
            break;
        case FK_REAL:
            jw_num(w, db_col_real(row, c));
            break;
        case FK_TIME: {
            char ts[32];
            if (time_fmt_rfc3339(ts, sizeof(ts), db_col_int(row, c)) < 0)
                jw_null(w);
            else
                jw_cstr(w, ts);
            break;
        }
        }
    }
}

void rec_render(const struct resource *r, struct db_rows *row, struct jw *w)
{
    jw_obj_open(w);
    rec_render_fields(r, row, w);
    if (r->render_extra)
        r->render_extra(row, r->ncols, w);
    jw_obj_close(w);
}

void rec_render_cb(struct db_rows *row, struct jw *w, void *arg)
{
    rec_render(arg, row, w);
}

void rec_etag(const char *json, size_t n, char out[21])
{
    snprintf(out, 21, "\"%016llx\"",
             (unsigned long long)codec_fnv1a64(json, n, CODEC_FNV_INIT));
}

int cat_etag_matches(const char *h, const char *etag, int weak_ok)
{
    if (!h)
        return 0;
    size_t elen = strlen(etag);
    while (*h) {
        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        if (*h == '*')
            return 1;
        int weak = 0;
        if (h[0] == 'W' && h[1] == '/') {
            weak = 1;
            h += 2;
        }
        if (*h != '"')
            return 0;
        const char *end = strchr(h + 1, '"');
        if (!end)
            return 0;
        size_t n = (size_t)(end - h) + 1;
        if ((!weak || weak_ok) && n == elen && memcmp(h, etag, n) == 0)
            return 1;
        h = end + 1;
    }
    return 0;
}

/* --- checkers: NULL when acceptable, else the rest of a sentence --- */

static int slug_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* org/name, each part [A-Za-z0-9][A-Za-z0-9._-]*, not "." or "..". */
const char *chk_model_id(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    if (!slash)
        return "must look like org/name";
    size_t a = (size_t)(slash - s), b = n - a - 1;
    if (a == 0 || b == 0 || !slug_char(s[0]) || s[0] == '.' || s[0] == '_' ||
        s[0] == '-' || !slug_char(slash[1]) || slash[1] == '.' ||
        slash[1] == '_' || slash[1] == '-')
        return "must look like org/name, each part starting with a letter or digit";
    for (size_t i = 0; i < n; i++)
        if (i != a && !slug_char(s[i]))
            return "may contain only letters, digits, '.', '_', '-' and one '/'";
    return NULL;
}

/* [a-z0-9][a-z0-9._-]* */
const char *chk_slug(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return "must start with a lowercase letter or digit";
    for (size_t i = 0; i < n; i++)
        if (!slug_char(s[i]) || (s[i] >= 'A' && s[i] <= 'Z'))
            return "may contain only lowercase letters, digits, '.', '_' and '-'";
    return NULL;
}

/* A lowercase token: [a-z0-9_-], starts alphanumeric (quantization, engine). */
const char *chk_url(const char *s, size_t n)
{
    if (!((n > 7 && strncmp(s, "http://", 7) == 0) ||
          (n > 8 && strncmp(s, "https://", 8) == 0)))
        return "must be an http:// or https:// URL";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return "must not contain spaces or control characters";
    return NULL;
}

/* One line of text: no control characters. */
const char *chk_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return "must not contain control characters";
    return NULL;
}

/* Free text: control characters other than tab and newlines refused. */
const char *chk_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < ' ' && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return "must not contain control characters";
    }
    return NULL;
}
