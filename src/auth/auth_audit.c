/*
 * The audit trail: one row per audited request in the audit table
 * (db/migrations/0004_auth.sql), its newest-first listing with keyset
 * pagination, and pruning for retention.
 *
 * Audit text comes from requests (paths, ids, addresses), so a write never
 * fails because of it: each field is cut to its cap at a character
 * boundary and bytes that are not UTF-8 become '?' (PostgreSQL refuses
 * invalid UTF-8 in TEXT). The page cursor is base64url of "at:id" of the
 * last row shown, parsed strictly when it comes back.
 */
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "core/codec.h"
#include "core/jw.h"
#include "core/timeutil.h"
#include "db/db.h"

#define TEXT_CAP 256
#define PATH_CAP 1024
#define LIST_MAX 200

/*
 * Copies s into out (cap bytes with the NUL), valid UTF-8 sequences as
 * they are and each other byte as '?', stopping before a sequence that
 * would not fit. Returns the length.
 */
static size_t clean_text(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len > 1 && (strnlen(s, len) < len || !codec_utf8_valid(s, len)))
            len = 0;
        size_t w = len ? len : 1;
        if (o + w >= cap)
            break;
        if (len)
            memcpy(out + o, s, len);
        else
            out[o] = '?';
        o += w;
        s += w;
    }
    out[o] = '\0';
    return o;
}

/* A parameter for optional text s cleaned into tmp (cap bytes). */
static struct db_param opt_text(const char *s, char *tmp, size_t cap)
{
    if (!s)
        return db_p_null();
    size_t n = clean_text(s, tmp, cap);
    return db_p_text(tmp, n);
}

int auth_audit_write(struct db_conn *c, const struct auth_audit *a,
                     char id_out[37], struct err_detail *d)
{
    if (!a || !a->method || !a->path || !a->outcome)
        return err_set(d, ERR_INVAL, NULL, "an audit record needs method, path and outcome");
    char id[37];
    if (codec_uuid7(id, a->at_ms) < 0)
        return err_set(d, ERR_INTERNAL, NULL, "no random bytes for an audit id");
    char actor[TEXT_CAP], role[TEXT_CAP], ip[TEXT_CAP], method[TEXT_CAP];
    char path[PATH_CAP], res[TEXT_CAP], res_id[TEXT_CAP], req_id[TEXT_CAP];
    char outcome[TEXT_CAP];
    struct db_param p[12] = {
        db_p_text(id, 36),
        db_p_int(a->at_ms),
        opt_text(a->actor, actor, sizeof(actor)),
        opt_text(a->role, role, sizeof(role)),
        opt_text(a->ip, ip, sizeof(ip)),
        opt_text(a->method, method, sizeof(method)),
        opt_text(a->path, path, sizeof(path)),
        opt_text(a->resource, res, sizeof(res)),
        opt_text(a->resource_id, res_id, sizeof(res_id)),
        opt_text(a->request_id, req_id, sizeof(req_id)),
        db_p_int(a->status),
        opt_text(a->outcome, outcome, sizeof(outcome)),
    };
    int rc = db_exec(c,
                     "INSERT INTO audit (id, at, actor, role, ip, method, path, resource, "
                     "resource_id, request_id, status, outcome) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                     p, 12, NULL, d);
    if (rc == 0 && id_out)
        memcpy(id_out, id, sizeof(id));
    return rc;
}

/* ---- listing ---- */

/* 1 when s (n bytes) is a lowercase UUID text (8-4-4-4-12 hex). */
static int is_uuid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Parses a cursor into *at and id[37]. 0 or ERR_PARSE. */
static int decode_cursor(const char *cur, int64_t *at, char id[37], struct err_detail *d)
{
    unsigned char raw[64];
    size_t n = strlen(cur);
    long len = n <= 80 ? codec_b64url_decode(cur, n, raw, sizeof(raw) - 1) : -1;
    const char *s = (const char *)raw;
    const char *colon = len > 0 ? memchr(s, ':', (size_t)len) : NULL;
    size_t dig = colon ? (size_t)(colon - s) : 0;
    int64_t v = 0;
    int ok = colon && dig >= 1 && dig <= 18 &&
             is_uuid(colon + 1, (size_t)len - dig - 1);
    for (size_t i = 0; ok && i < dig; i++) {
        if (s[i] < '0' || s[i] > '9')
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok)
        return err_set(d, ERR_PARSE, "cursor", "cursor is malformed or not for this list");
    *at = v;
    memcpy(id, colon + 1, 36);
    id[36] = '\0';
    return 0;
}

static void encode_cursor(struct jw *w, int64_t at, const char *id)
{
    char raw[64], enc[90]; /* (4 * 63 + 2) / 3 + 1 <= 90 */
    int n = snprintf(raw, sizeof(raw), "%lld:%.36s", (long long)at, id);
    size_t len = auth__b64url((const unsigned char *)raw, (size_t)n, enc);
    jw_str(w, enc, len);
}

/* Appends " AND <col> = $k" with text s as parameter k. */
static void where_text(struct buf *sql, struct db_param *p, int *np, const char *col,
                       const char *s)
{
    p[*np] = db_p_text(s, strlen(s));
    ++*np;
    buf_printf(sql, " AND %s = $%d", col, *np);
}

static void where_int(struct buf *sql, struct db_param *p, int *np, const char *cond,
                      int64_t v)
{
    p[*np] = db_p_int(v);
    ++*np;
    buf_printf(sql, " AND %s $%d", cond, *np);
}

static void render_row(struct jw *w, struct db_rows *r)
{
    static const char *const names[] = {"id", "at", "actor", "role", "ip", "method",
                                        "path", "resource", "resource_id", "request_id",
                                        "status", "outcome"};
    jw_obj_open(w);
    for (int col = 0; col < 12; col++) {
        jw_key(w, names[col]);
        size_t n = 0;
        const char *s;
        char ts[32];
        if (col == 1) {
            if (time_fmt_rfc3339(ts, sizeof(ts), db_col_int(r, col)) < 0)
                jw_null(w);
            else
                jw_cstr(w, ts);
        } else if (col == 10) {
            jw_i64(w, db_col_int(r, col));
        } else if ((s = db_col_text(r, col, &n)) != NULL) {
            jw_str(w, s, n);
        } else {
            jw_null(w);
        }
    }
    jw_obj_close(w);
}

int auth_audit_list(struct db_conn *c, const struct auth_audit_filter *f,
                    struct buf *out, struct err_detail *d)
{
    if (f->limit < 1 || f->limit > LIST_MAX)
        return err_set(d, ERR_RANGE, "limit", "limit is 1 to %d", LIST_MAX);
    const char *texts[3] = {f->actor, f->resource, f->resource_id};
    for (int i = 0; i < 3; i++)
        if (texts[i] && (strlen(texts[i]) > PATH_CAP ||
                         !codec_utf8_valid(texts[i], strlen(texts[i]))))
            return err_set(d, ERR_INVAL, i == 0 ? "actor" : i == 1 ? "resource" : "resource_id",
                           "a filter is at most %d bytes of UTF-8", PATH_CAP);
    int64_t cur_at = 0;
    char cur_id[37];
    if (f->cursor && decode_cursor(f->cursor, &cur_at, cur_id, d))
        return ERR_PARSE;
    struct db_param p[10];
    int np = 0;
    struct buf sql;
    buf_init(&sql, 2048);
    buf_puts(&sql, "SELECT id, at, actor, role, ip, method, path, resource, resource_id, "
                   "request_id, status, outcome FROM audit WHERE 1=1");
    if (f->actor)
        where_text(&sql, p, &np, "actor", f->actor);
    if (f->resource)
        where_text(&sql, p, &np, "resource", f->resource);
    if (f->resource_id)
        where_text(&sql, p, &np, "resource_id", f->resource_id);
    if (f->since_ms > 0)
        where_int(&sql, p, &np, "at >=", f->since_ms);
    if (f->until_ms > 0)
        where_int(&sql, p, &np, "at <", f->until_ms);
    if (f->cursor) {
        p[np++] = db_p_int(cur_at);
        p[np++] = db_p_text(cur_id, 36);
        buf_printf(&sql, " AND (at, id) < ($%d, $%d)", np - 1, np);
    }
    p[np++] = db_p_int(f->limit + 1);
    buf_printf(&sql, " ORDER BY at DESC, id DESC LIMIT $%d", np);

    struct db_rows *r = NULL;
    int rc = buf_err(&sql) ? err_set(d, ERR_NOMEM, NULL, "query too large")
                           : db_query(c, sql.p, p, np, &r, d);
    buf_free(&sql);
    if (rc)
        return rc;
    struct jw w;
    jw_init(&w, out);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    int n = 0, more = 0;
    int64_t last_at = 0;
    char last_id[37] = "";
    while ((rc = db_next(r)) == 1) {
        if (n == f->limit) {
            more = 1;
            break;
        }
        render_row(&w, r);
        size_t il = 0;
        const char *id = db_col_text(r, 0, &il);
        last_at = db_col_int(r, 1);
        snprintf(last_id, sizeof(last_id), "%.*s", (int)(il < 36 ? il : 36), id ? id : "");
        n++;
    }
    db_rows_close(r);
    if (rc < 0)
        return err_set(d, rc, NULL, "listing the audit trail failed");
    jw_arr_close(&w);
    jw_key(&w, "next_cursor");
    if (more)
        encode_cursor(&w, last_at, last_id);
    else
        jw_null(&w);
    jw_obj_close(&w);
    if (buf_err(out))
        return err_set(d, buf_err(out), NULL, "audit page too large");
    return 0;
}

int auth_audit_prune(struct db_conn *c, int64_t before_ms, int64_t *deleted,
                     struct err_detail *d)
{
    struct db_param p = db_p_int(before_ms);
    return db_exec(c, "DELETE FROM audit WHERE at < $1", &p, 1, deleted, d);
}
