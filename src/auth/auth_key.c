/*
 * API keys: generation from the CSPRNG, strict parsing before any store
 * access, hashing, the bootstrap admin key, and the api_keys table (create,
 * revoke, lookup, touch, list) through db.h.
 *
 * DESIGN: a key is "mc_<id>_<secret>": the 8-char id (40 random bits,
 * lowercase base32) is public and is the row's primary key, so lookup is
 * one index probe; the secret is 32 bytes from RAND_bytes. Only SHA-256 of
 * the whole key is stored ("sha256:<hex>"). Plain SHA-256 rather than
 * HMAC with a server pepper: the secret has 256 bits of entropy, so a
 * stolen table cannot be brute-forced either way, and a pepper would be
 * one more secret that the server and every CLI invocation must share,
 * whose loss or rotation would silently invalidate every key. (Password
 * hashing such as Argon2 is for low-entropy secrets and would only cost
 * CPU per request.) The "sha256:" prefix leaves room for another scheme.
 * Hashes are compared with CRYPTO_memcmp; the hash is checked before the
 * revocation state, so only the holder of a key learns it was revoked.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "core/codec.h"
#include "core/jw.h"
#include "core/timeutil.h"
#include "db/db.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b64u[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define ID_OFF 3
#define SEP_OFF (ID_OFF + AUTH_KEY_ID_LEN)
#define SECRET_OFF (SEP_OFF + 1)
#define SECRET_BYTES 32

size_t auth__b64url(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[v >> 12 & 63];
        out[o++] = b64u[v >> 6 & 63];
        out[o++] = b64u[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64u[v >> 18];
        out[o++] = b64u[v >> 12 & 63];
        out[o++] = b64u[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

int auth__token_text(const char *s, size_t n, size_t min, size_t max)
{
    if (!s || n < min || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int auth_key_generate(char key[AUTH_KEY_BUF], char id[AUTH_KEY_ID_BUF],
                      struct err_detail *d)
{
    unsigned char r[5 + SECRET_BYTES];
    if (RAND_bytes(r, (int)sizeof(r)) != 1) {
        OPENSSL_cleanse(r, sizeof(r));
        return err_set(d, ERR_INTERNAL, NULL, "the random number generator failed");
    }
    /* 5 bytes = 40 bits = 8 base32 digits, most significant first. */
    uint64_t v = 0;
    for (int i = 0; i < 5; i++)
        v = v << 8 | r[i];
    memcpy(key, AUTH_KEY_PREFIX, 3);
    for (int i = 0; i < AUTH_KEY_ID_LEN; i++)
        key[ID_OFF + i] = b32[(v >> (35 - 5 * i)) & 31];
    key[SEP_OFF] = '_';
    auth__b64url(r + 5, SECRET_BYTES, key + SECRET_OFF);
    OPENSSL_cleanse(r, sizeof(r));
    memcpy(id, key + ID_OFF, AUTH_KEY_ID_LEN);
    id[AUTH_KEY_ID_LEN] = '\0';
    return 0;
}

static int in_alphabet(const char *alpha, char c)
{
    return c != '\0' && strchr(alpha, c) != NULL;
}

/* 1 when the n bytes at s are a key id (8 lowercase base32 digits). */
static int is_key_id(const char *s, size_t n)
{
    if (n != AUTH_KEY_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!in_alphabet(b32, s[i]))
            return 0;
    return 1;
}

int auth_key_parse(const char *s, size_t n, char id[AUTH_KEY_ID_BUF],
                   struct err_detail *d)
{
    if (!s || n < 3 || memcmp(s, AUTH_KEY_PREFIX, 3) != 0)
        return err_set(d, ERR_PARSE, "key", "an API key starts with \"mc_\"");
    if (n != AUTH_KEY_LEN)
        return err_set(d, ERR_PARSE, "key", "an API key has %d characters, not %zu",
                       AUTH_KEY_LEN, n);
    if (!is_key_id(s + ID_OFF, AUTH_KEY_ID_LEN))
        return err_set(d, ERR_PARSE, "key",
                       "the id of an API key is 8 characters of a-z and 2-7");
    if (s[SEP_OFF] != '_')
        return err_set(d, ERR_PARSE, "key", "an API key has '_' after its id");
    for (size_t i = SECRET_OFF; i < n; i++)
        if (!in_alphabet(b64u, s[i]))
            return err_set(d, ERR_PARSE, "key",
                           "the secret of an API key is base64url (A-Z a-z 0-9 - _)");
    /* 43 chars carry 258 bits: the last char's 2 low bits must be zero. */
    if ((strchr(b64u, s[n - 1]) - b64u) & 3)
        return err_set(d, ERR_PARSE, "key", "the secret of an API key is not canonical");
    if (id) {
        memcpy(id, s + ID_OFF, AUTH_KEY_ID_LEN);
        id[AUTH_KEY_ID_LEN] = '\0';
    }
    return 0;
}

void auth_key_hash(const char *s, size_t n, char out[AUTH_HASH_BUF])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        memset(md, 0, sizeof(md)); /* cannot match a stored hash of a real key */
    memcpy(out, "sha256:", 7);
    for (int i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[7 + 64] = '\0';
}

int auth_hash_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t n = strlen(a);
    if (n != strlen(b) || n == 0)
        return 0;
    return CRYPTO_memcmp(a, b, n) == 0;
}

int auth_bootstrap_validate(const char *configured, struct err_detail *d)
{
    if (!configured || !*configured)
        return err_set(d, ERR_INVAL, "bootstrap_admin_key", "the bootstrap key is empty");
    struct err_detail pd;
    if (auth_key_parse(configured, strlen(configured), NULL, &pd))
        return err_set(d, ERR_INVAL, "bootstrap_admin_key",
                       "the bootstrap key must have the API key format (%s); "
                       "make one with `modelcat keys generate`", pd.msg);
    return 0;
}

int auth_bootstrap_check(const char *configured, const char *presented, size_t n,
                         struct auth_principal *out)
{
    if (!configured || !*configured || !presented)
        return 0;
    unsigned char a[32], b[32];
    unsigned int la = 0, lb = 0;
    int ok = EVP_Digest(configured, strlen(configured), a, &la, EVP_sha256(), NULL) == 1 &&
             EVP_Digest(presented, n, b, &lb, EVP_sha256(), NULL) == 1 && la == 32 &&
             lb == 32 && CRYPTO_memcmp(a, b, 32) == 0;
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    if (ok && out) {
        memset(out, 0, sizeof(*out));
        out->via = AUTH_VIA_BOOTSTRAP;
        out->role = AUTH_ROLE_ADMIN;
        memcpy(out->id, "bootstrap", sizeof("bootstrap"));
    }
    return ok;
}

/* 1 when name is 1..AUTH_NAME_MAX bytes of UTF-8 without control chars. */
static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > AUTH_NAME_MAX || !codec_utf8_valid(name, n))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return 0;
    return 1;
}

int auth_key_create(struct db_conn *c, const char *name, enum auth_role role,
                    const char *created_by, int64_t now_ms,
                    char key_out[AUTH_KEY_BUF], char id_out[AUTH_KEY_ID_BUF],
                    struct err_detail *d)
{
    if (!name_ok(name))
        return err_set(d, ERR_INVAL, "name",
                       "a key name is 1 to %d bytes of UTF-8 without control characters",
                       AUTH_NAME_MAX);
    if (created_by && !auth__token_text(created_by, strlen(created_by), 1, AUTH_SUB_MAX))
        return err_set(d, ERR_INVAL, "created_by",
                       "created_by is 1 to %d printable ASCII characters", AUTH_SUB_MAX);
    const char *rname = auth_role_name(role);
    if (strcmp(rname, "unknown") == 0)
        return err_set(d, ERR_INVAL, "role", "unknown role");
    static const char sql[] =
        "INSERT INTO api_keys (id, name, role, hash, created_at, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6)";
    int rc = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        char hash[AUTH_HASH_BUF];
        if ((rc = auth_key_generate(key_out, id_out, d)))
            break;
        auth_key_hash(key_out, AUTH_KEY_LEN, hash);
        struct db_param p[6] = {
            db_p_text(id_out, AUTH_KEY_ID_LEN), db_p_text(name, strlen(name)),
            db_p_text(rname, strlen(rname)), db_p_text(hash, strlen(hash)),
            db_p_int(now_ms),
            created_by ? db_p_text(created_by, strlen(created_by)) : db_p_null(),
        };
        rc = db_exec(c, sql, p, 6, NULL, d);
        if (rc != ERR_EXISTS) /* an id collision (2^-40 per key) tries again */
            break;
    }
    if (rc) {
        OPENSSL_cleanse(key_out, AUTH_KEY_BUF);
        key_out[0] = '\0';
    }
    return rc;
}

int auth_key_revoke(struct db_conn *c, const char *id, int64_t now_ms,
                    struct err_detail *d)
{
    if (!id || !is_key_id(id, strlen(id)))
        return err_set(d, ERR_NOTFOUND, "id", "no such API key");
    struct db_param p[2] = {db_p_text(id, AUTH_KEY_ID_LEN), db_p_int(now_ms)};
    int64_t changes = 0;
    int rc = db_exec(c, "UPDATE api_keys SET revoked_at = $2 "
                        "WHERE id = $1 AND revoked_at IS NULL",
                     p, 2, &changes, d);
    if (rc || changes > 0)
        return rc;
    int64_t n = 0;
    rc = db_query_int(c, "SELECT COUNT(*) FROM api_keys WHERE id = $1", p, 1, &n, d);
    if (rc)
        return rc;
    return n ? 0 : err_set(d, ERR_NOTFOUND, "id", "no such API key");
}

int auth_key_lookup(struct db_conn *c, const char *key, size_t n, int64_t now_ms,
                    struct auth_principal *out, struct err_detail *d)
{
    char id[AUTH_KEY_ID_BUF], want[AUTH_HASH_BUF], have[AUTH_HASH_BUF];
    char role[16] = "";
    memset(out, 0, sizeof(*out));
    int rc = auth_key_parse(key, n, id, d);
    if (rc)
        return rc;
    struct db_param p = db_p_text(id, AUTH_KEY_ID_LEN);
    struct db_rows *r = NULL;
    rc = db_query(c, "SELECT name, role, hash, revoked_at, last_used_at "
                     "FROM api_keys WHERE id = $1", &p, 1, &r, d);
    if (rc)
        return rc;
    rc = db_next(r);
    if (rc <= 0) {
        db_rows_close(r);
        if (rc < 0)
            return err_set(d, rc, NULL, "API key lookup failed");
        return err_set(d, AUTH_ERR_DENIED, "authorization", "unknown API key");
    }
    size_t ln = 0, lr = 0, lh = 0;
    const char *nm = db_col_text(r, 0, &ln), *rl = db_col_text(r, 1, &lr);
    const char *hs = db_col_text(r, 2, &lh);
    int revoked = db_col_type(r, 3) != DB_NULL;
    int64_t used = db_col_type(r, 4) == DB_NULL ? INT64_MIN : db_col_int(r, 4);
    int stored_ok = nm && rl && hs && lh == AUTH_HASH_BUF - 1 && lr < sizeof(role) &&
                    ln <= AUTH_NAME_MAX;
    if (stored_ok) {
        memcpy(out->name, nm, ln);
        out->name[ln] = '\0';
        memcpy(role, rl, lr);
        role[lr] = '\0';
        memcpy(have, hs, lh + 1);
    }
    db_rows_close(r);
    if (!stored_ok)
        return err_set(d, ERR_CORRUPT, NULL, "stored API key %s is malformed", id);
    auth_key_hash(key, n, want);
    if (!auth_hash_equal(want, have)) {
        out->name[0] = '\0';
        return err_set(d, AUTH_ERR_DENIED, "authorization", "wrong API key secret");
    }
    if (revoked) {
        out->name[0] = '\0';
        return err_set(d, AUTH_ERR_DENIED, "authorization", "API key %s has been revoked",
                       id);
    }
    if (auth_role_parse(role, strlen(role), &out->role, NULL))
        return err_set(d, ERR_CORRUPT, NULL, "stored role of API key %s is unknown", id);
    out->via = AUTH_VIA_KEY;
    memcpy(out->id, id, AUTH_KEY_ID_BUF);
    out->touch = used == INT64_MIN || used < now_ms - AUTH_TOUCH_MS;
    return 0;
}

int auth_key_active(struct db_conn *c, const char *id, struct err_detail *d)
{
    struct db_param p = db_p_text(id, strlen(id));
    struct db_rows *row;
    int rc = db_query(c, "SELECT revoked_at FROM api_keys WHERE id = $1", &p, 1, &row, d);
    if (rc)
        return rc;
    rc = db_next(row);
    int revoked = rc == 1 && db_col_type(row, 0) != DB_NULL;
    db_rows_close(row);
    if (rc < 0)
        return err_set(d, ERR_IO, NULL, "key lookup failed");
    if (rc == 0)
        return err_set(d, AUTH_ERR_DENIED, "Authorization",
                       "the key this token was issued for no longer exists");
    if (revoked)
        return err_set(d, AUTH_ERR_DENIED, "Authorization",
                       "the key this token was issued for is revoked");
    return 0;
}

int auth_key_touch(struct db_conn *c, const char *id, int64_t now_ms,
                   struct err_detail *d)
{
    if (!id || !is_key_id(id, strlen(id)))
        return err_set(d, ERR_NOTFOUND, "id", "no such API key");
    struct db_param p[3] = {db_p_text(id, AUTH_KEY_ID_LEN), db_p_int(now_ms),
                            db_p_int(now_ms - AUTH_TOUCH_MS)};
    return db_exec(c, "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 "
                      "AND (last_used_at IS NULL OR last_used_at < $3)",
                   p, 3, NULL, d);
}

/* Writes column col of r as an RFC 3339 time, or null. */
static void jw_time_col(struct jw *w, struct db_rows *r, int col)
{
    char ts[32];
    if (db_col_type(r, col) == DB_NULL ||
        time_fmt_rfc3339(ts, sizeof(ts), db_col_int(r, col)) < 0)
        jw_null(w);
    else
        jw_cstr(w, ts);
}

/* Writes text column col of r, or null. */
static void jw_text_col(struct jw *w, struct db_rows *r, int col)
{
    size_t n = 0;
    const char *s = db_col_text(r, col, &n);
    if (s)
        jw_str(w, s, n);
    else
        jw_null(w);
}

int auth_key_list(struct db_conn *c, int include_revoked, struct buf *out,
                  struct err_detail *d)
{
    const char *sql = include_revoked
        ? "SELECT id, name, role, created_at, last_used_at, revoked_at, created_by "
          "FROM api_keys ORDER BY created_at DESC, id DESC"
        : "SELECT id, name, role, created_at, last_used_at, revoked_at, created_by "
          "FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at DESC, id DESC";
    static const char *const names[] = {"id", "name", "role", "created_at",
                                        "last_used_at", "revoked_at", "created_by"};
    struct db_rows *r = NULL;
    int rc = db_query(c, sql, NULL, 0, &r, d);
    if (rc)
        return rc;
    struct jw w;
    jw_init(&w, out);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    while ((rc = db_next(r)) == 1) {
        jw_obj_open(&w);
        for (int col = 0; col < 7; col++) {
            jw_key(&w, names[col]);
            if (col >= 3 && col <= 5)
                jw_time_col(&w, r, col);
            else
                jw_text_col(&w, r, col);
        }
        jw_obj_close(&w);
    }
    db_rows_close(r);
    if (rc < 0)
        return err_set(d, rc, NULL, "listing API keys failed");
    jw_arr_close(&w);
    jw_obj_close(&w);
    if (buf_err(out))
        return err_set(d, buf_err(out), NULL, "key list too large");
    return 0;
}
