/*
 * Authentication and authorization core: API keys (stored as hashes), roles
 * and permissions, HS256 JWTs signed from a rotating keyring, the audit
 * trail, token-bucket rate limiting and Authorization header parsing.
 *
 * No HTTP or server dependency: the server's middleware and the CLI
 * (`modelcat keys ...`) both use it. Storage goes through db.h (tables in
 * db/migrations/0004_auth.sql). Nothing here logs, and no error message
 * ever contains a secret (key secret, JWT signing secret, bootstrap key).
 *
 * Errors: 0 or a negative code of core/err.h with detail in struct
 * err_detail. A refused credential (unknown, revoked, wrong secret, bad
 * signature, expired, wrong algorithm ...) is AUTH_ERR_DENIED, malformed
 * credential text ERR_PARSE, oversized text ERR_TOOBIG; each refusal has
 * its own message. auth_refused() tells refusals (HTTP 401) from failures
 * of the store or of memory (5xx).
 */
#ifndef MC_AUTH_AUTH_H
#define MC_AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct db_conn;

/* The code of a refused credential. */
#define AUTH_ERR_DENIED ERR_DENIED

/*
 * 1 when rc, returned by a function of this header while checking a
 * credential, means "the credential is refused" (answer 401): ERR_DENIED
 * (AUTH_ERR_DENIED), ERR_PARSE, ERR_TOOBIG, ERR_RANGE, ERR_NOTFOUND.
 * 0 for 0 and for failures that are not the client's fault (ERR_NOMEM,
 * ERR_BUSY, ERR_UNAVAIL, ERR_IO, ERR_CORRUPT, ERR_INTERNAL ...).
 */
int auth_refused(int rc);

/* ---- Roles and permissions (auth_request.c) ---- */

/*
 * Roles are not ordered. viewer reads; editor also writes the catalog
 * (models, hardware) and benchmark results; worker reads, claims and
 * updates jobs and posts benchmark results (but cannot edit the catalog);
 * admin may do everything, including keys and the audit trail.
 */
enum auth_role {
    AUTH_ROLE_VIEWER,
    AUTH_ROLE_EDITOR,
    AUTH_ROLE_WORKER,
    AUTH_ROLE_ADMIN,
};
#define AUTH_ROLE_COUNT 4

enum auth_perm {
    AUTH_READ,          /* GET of catalog, runs, jobs */
    AUTH_WRITE_CATALOG, /* create/update/delete models and hardware */
    AUTH_WRITE_RESULTS, /* post benchmark runs and samples */
    AUTH_JOBS,          /* claim, heartbeat, checkpoint, finish jobs */
    AUTH_ADMIN,         /* keys, audit, other administration */
};
#define AUTH_PERM_COUNT 5

/*
 * Parses a role name ("viewer", "editor", "worker", "admin"; exact, lower
 * case) of n bytes at s. Returns 0 and *out, or ERR_INVAL with detail.
 */
int auth_role_parse(const char *s, size_t n, enum auth_role *out,
                    struct err_detail *d) MC_WUR;
/* Name of r, or "unknown" for a value outside the enum. */
const char *auth_role_name(enum auth_role r);
/* Name of p ("read", "write_catalog", ...), or "unknown". */
const char *auth_perm_name(enum auth_perm p);
/* 1 when role r holds permission p, else 0 (also for values out of range). */
int auth_allows(enum auth_role r, enum auth_perm p);

/* Who a checked credential belongs to. */
enum auth_via {
    AUTH_VIA_NONE,      /* anonymous */
    AUTH_VIA_KEY,       /* an API key of the api_keys table */
    AUTH_VIA_BOOTSTRAP, /* MODELCAT_BOOTSTRAP_ADMIN_KEY */
    AUTH_VIA_JWT,       /* a JWT of auth_jwt_issue */
};

#define AUTH_SUB_MAX 64   /* bytes of a subject (key id, JWT sub) */
#define AUTH_NAME_MAX 128 /* bytes of a key's name */

struct auth_principal {
    enum auth_via via;
    enum auth_role role;
    char id[AUTH_SUB_MAX + 1];    /* key id, "bootstrap" or JWT sub */
    char name[AUTH_NAME_MAX + 1]; /* key name (AUTH_VIA_KEY), else "" */
    int64_t expires_s;            /* JWT exp (Unix seconds), else 0 */
    int touch;                    /* AUTH_VIA_KEY: last_used_at is older than
                                     AUTH_TOUCH_MS, call auth_key_touch */
};

/* ---- API keys (auth_key.c) ---- */

/*
 * An API key is "mc_" + 8-char public id (lowercase base32, a-z2-7, 40
 * random bits) + "_" + 43 chars of base64url (32 random bytes): 55 chars.
 * The id names the row; only SHA-256 of the whole key is stored, as
 * "sha256:" + 64 hex digits.
 */
#define AUTH_KEY_PREFIX "mc_"
#define AUTH_KEY_ID_LEN 8
#define AUTH_KEY_SECRET_LEN 43
#define AUTH_KEY_LEN (3 + AUTH_KEY_ID_LEN + 1 + AUTH_KEY_SECRET_LEN)
#define AUTH_KEY_BUF (AUTH_KEY_LEN + 1)
#define AUTH_KEY_ID_BUF (AUTH_KEY_ID_LEN + 1)
#define AUTH_HASH_BUF (7 + 64 + 1)
/* last_used_at is written at most once per this many ms per key. */
#define AUTH_TOUCH_MS 60000

/*
 * Makes a new random key (CSPRNG, RAND_bytes) into key and its public id
 * into id, both NUL-terminated. Returns 0, or ERR_INTERNAL when the CSPRNG
 * fails (nothing usable is written then).
 */
int auth_key_generate(char key[AUTH_KEY_BUF], char id[AUTH_KEY_ID_BUF],
                      struct err_detail *d) MC_WUR;
/*
 * Checks the shape of the n bytes at s (prefix, length, alphabets,
 * separator) without touching any store. Returns 0 and the public id in id
 * (may be NULL), or ERR_PARSE naming what is wrong (never quoting s).
 */
int auth_key_parse(const char *s, size_t n, char id[AUTH_KEY_ID_BUF],
                   struct err_detail *d) MC_WUR;
/* Writes the stored form of the n-byte key s ("sha256:<hex>") to out. */
void auth_key_hash(const char *s, size_t n, char out[AUTH_HASH_BUF]);
/*
 * Constant-time comparison (CRYPTO_memcmp) of two stored hashes: 1 when
 * equal, 0 otherwise (also when either is NULL or their lengths differ).
 */
int auth_hash_equal(const char *a, const char *b);

/*
 * Bootstrap admin key (MODELCAT_BOOTSTRAP_ADMIN_KEY). It must have the
 * API-key format above (make one with auth_key_generate), so it has 256
 * random bits and the Authorization parser classifies it as a key.
 * auth_bootstrap_validate returns 0 when configured is acceptable, else
 * ERR_INVAL with detail (never quoting it).
 */
int auth_bootstrap_validate(const char *configured, struct err_detail *d) MC_WUR;
/*
 * Compares the presented credential (n bytes) with the configured
 * bootstrap key in constant time (SHA-256 of both, CRYPTO_memcmp, so the
 * length does not leak either). Returns 1 on a match and fills out (may be
 * NULL) as {AUTH_VIA_BOOTSTRAP, admin, "bootstrap"}; 0 when configured is
 * NULL or empty or they differ.
 */
int auth_bootstrap_check(const char *configured, const char *presented, size_t n,
                         struct auth_principal *out);

/*
 * Creates a key named name (1..AUTH_NAME_MAX bytes of UTF-8 without
 * control characters) with role, created_by (NULL, a key id, "bootstrap"
 * or "cli"), at now_ms. Writes the full key into key_out (shown to the
 * user once; never stored) and its id into id_out. Returns 0, ERR_INVAL
 * (bad name or created_by), or a store error. Retries an id collision.
 */
int auth_key_create(struct db_conn *c, const char *name, enum auth_role role,
                    const char *created_by, int64_t now_ms,
                    char key_out[AUTH_KEY_BUF], char id_out[AUTH_KEY_ID_BUF],
                    struct err_detail *d) MC_WUR;
/*
 * Revokes key id at now_ms. Returns 0 (also when it was already revoked;
 * the first revocation time stays), ERR_NOTFOUND, or a store error.
 */
int auth_key_revoke(struct db_conn *c, const char *id, int64_t now_ms,
                    struct err_detail *d) MC_WUR;
/*
 * Checks a presented key (n bytes): shape first (ERR_PARSE, no store
 * access), then the row by id, then the hash in constant time. Returns 0
 * and *out (via AUTH_VIA_KEY; out->touch set when last_used_at is older
 * than AUTH_TOUCH_MS), AUTH_ERR_DENIED for an unknown, revoked or wrong
 * key (distinct messages), ERR_CORRUPT for a stored role or hash that does
 * not parse, or a store error. Reads only: it may run on a replica.
 */
int auth_key_lookup(struct db_conn *c, const char *key, size_t n, int64_t now_ms,
                    struct auth_principal *out, struct err_detail *d) MC_WUR;
/*
 * Whether key id exists and is not revoked (for tokens issued from it).
 * Returns 0, AUTH_ERR_DENIED (unknown or revoked), or a store error.
 */
int auth_key_active(struct db_conn *c, const char *id, struct err_detail *d) MC_WUR;
/*
 * Sets last_used_at of key id to now_ms if it is older than AUTH_TOUCH_MS
 * (one conditional UPDATE; needs the primary). Returns 0 or a store error.
 */
int auth_key_touch(struct db_conn *c, const char *id, int64_t now_ms,
                   struct err_detail *d) MC_WUR;
/*
 * Appends {"items":[{"id","name","role","created_at","last_used_at",
 * "revoked_at","created_by"}...]} (times RFC 3339, null when unset; newest
 * first; never the hash) to out. Revoked keys are listed only with
 * include_revoked. Returns 0, ERR_TOOBIG/ERR_NOMEM (out's cap), or a
 * store error.
 */
int auth_key_list(struct db_conn *c, int include_revoked, struct buf *out,
                  struct err_detail *d) MC_WUR;

/* ---- Audit trail (auth_audit.c) ---- */

/*
 * One audited request. Borrowed strings; NULL is SQL NULL. method, path
 * and outcome are required. Text that is not UTF-8 is stored with '?' for
 * each bad byte, and each field is cut (at a character boundary) to 1024
 * bytes for path, 256 for the others, so a hostile request cannot make
 * the audit write fail.
 */
struct auth_audit {
    int64_t at_ms;
    const char *actor;       /* key id, "bootstrap", JWT sub, NULL anonymous */
    const char *role;
    const char *ip;
    const char *method;
    const char *path;
    const char *resource;    /* "models", "keys", ... */
    const char *resource_id;
    const char *request_id;
    int status;              /* HTTP status sent */
    const char *outcome;     /* "ok", "denied", "forbidden", "limited", "error" */
};

/*
 * Inserts a into the audit table with a fresh UUIDv7 id (written to id_out
 * when not NULL). Returns 0, ERR_INVAL (a required field missing), or a
 * store error.
 */
int auth_audit_write(struct db_conn *c, const struct auth_audit *a,
                     char id_out[37], struct err_detail *d) MC_WUR;

/* Filter and page of auth_audit_list; NULL/0 fields do not filter. */
struct auth_audit_filter {
    const char *actor;
    const char *resource;
    const char *resource_id;
    int64_t since_ms;    /* at >= since_ms when > 0 */
    int64_t until_ms;    /* at < until_ms when > 0 */
    int limit;           /* 1..200 */
    const char *cursor;  /* next_cursor of the previous page, or NULL */
};

/*
 * Appends {"items":[...],"next_cursor":...} to out, newest first (keyset
 * on (at, id), so pages neither skip nor repeat rows). Returns 0, ERR_RANGE
 * (limit), ERR_PARSE (cursor), ERR_INVAL (a filter that is not UTF-8 or
 * over 1024 bytes), ERR_TOOBIG/ERR_NOMEM, or a store error.
 */
int auth_audit_list(struct db_conn *c, const struct auth_audit_filter *f,
                    struct buf *out, struct err_detail *d) MC_WUR;
/*
 * Deletes audit rows older than before_ms (retention). *deleted (may be
 * NULL) gets the count. Returns 0 or a store error.
 */
int auth_audit_prune(struct db_conn *c, int64_t before_ms, int64_t *deleted,
                     struct err_detail *d) MC_WUR;

/* ---- JWT, HS256 only (auth_jwt.c) ---- */

#define AUTH_JWT_MAX_KEYS 8
#define AUTH_JWT_KID_MAX 32      /* kid: 1..32 of [A-Za-z0-9._-] */
#define AUTH_JWT_SECRET_MIN 32   /* bytes */
#define AUTH_JWT_SECRET_MAX 128
#define AUTH_JWT_TOKEN_MAX 4096  /* longer tokens are refused unparsed */
#define AUTH_JWT_TTL_MAX 86400   /* seconds */
#define AUTH_JWT_IAT_SKEW 60     /* iat/nbf may be this far in the future */

enum auth_key_state {
    AUTH_KS_ACTIVE,  /* signs new tokens and verifies */
    AUTH_KS_VERIFY,  /* verifies only (rotation: the previous key) */
    AUTH_KS_RETIRED, /* refuses its tokens, with a message saying so */
};

struct auth_jwt_key {
    char kid[AUTH_JWT_KID_MAX + 1];
    unsigned char secret[AUTH_JWT_SECRET_MAX];
    size_t len;
    enum auth_key_state state;
};

/*
 * Signing keys; exactly one is active once the ring is usable. A plain
 * value the caller owns (no allocation). Read-only once shared between
 * threads; change it only through these functions before sharing, or swap
 * a whole new ring in. Clear it with auth_keyring_clear (wipes secrets).
 */
struct auth_keyring {
    int n;
    struct auth_jwt_key k[AUTH_JWT_MAX_KEYS];
};

/*
 * Parses a keyring setting (MODELCAT_JWT_KEYS) into ring, replacing what
 * it held. Grammar:
 *
 *   ring  = entry *( "," entry )       ; at most AUTH_JWT_MAX_KEYS
 *   entry = kid ":" secret [ ":" state ]
 *   kid   = 1*32( ALPHA / DIGIT / "." / "_" / "-" ), unique in the ring
 *   secret= base64url without padding of 32..128 random bytes
 *   state = "active" / "verify" / "retired"
 *
 * Spaces around entries are ignored. Without explicit states the first
 * entry is active and the others verify-only. Exactly one must be active.
 * Example: "k2026b:<43 chars>,k2026a:<43 chars>". Returns 0, or ERR_PARSE
 * / ERR_RANGE / ERR_INVAL with detail naming the kid, never the secret
 * (ring is left cleared then).
 */
int auth_keyring_parse(struct auth_keyring *ring, const char *spec,
                       struct err_detail *d) MC_WUR;
/*
 * Adds one key. Returns 0, ERR_INVAL (kid syntax, duplicate kid, a second
 * active key), ERR_RANGE (secret length, ring full).
 */
int auth_keyring_add(struct auth_keyring *ring, const char *kid,
                     const unsigned char *secret, size_t len,
                     enum auth_key_state state, struct err_detail *d) MC_WUR;
/*
 * Changes the state of kid. Making a key active demotes the active one to
 * verify-only. Returns 0, ERR_NOTFOUND.
 */
int auth_keyring_set_state(struct auth_keyring *ring, const char *kid,
                           enum auth_key_state state, struct err_detail *d) MC_WUR;
/* Wipes the secrets (OPENSSL_cleanse) and empties ring. */
void auth_keyring_clear(struct auth_keyring *ring);

/*
 * Issues an HS256 token with the active key: header {alg, typ, kid};
 * claims sub, role, iat = now_s, exp = now_s + ttl_s, jti (128 random bits).
 * sub: 1..AUTH_SUB_MAX printable ASCII bytes. Writes the NUL-terminated
 * token into out (cap bytes). Returns 0, ERR_INVAL (no active key, bad
 * sub or role), ERR_RANGE (ttl_s outside 1..AUTH_JWT_TTL_MAX), ERR_TOOBIG
 * (cap), ERR_NOMEM, ERR_INTERNAL (CSPRNG or libjwt failure).
 */
int auth_jwt_issue(const struct auth_keyring *ring, const char *sub,
                   enum auth_role role, int64_t now_s, int64_t ttl_s,
                   char *out, size_t cap, struct err_detail *d) MC_WUR;
/*
 * Verifies token at now_s. Before libjwt sees it, this checks the size,
 * the three base64url parts, the header's JSON (alg must be exactly
 * "HS256": "none" and every other algorithm are refused; typ "JWT" if
 * present; no "crit"; kid known and not retired) and the HMAC in constant
 * time; then libjwt decodes it with the kid's secret and must agree; then
 * the claims: exp (integer, refused when exp <= now_s, no leeway), iat
 * (integer, refused when more than AUTH_JWT_IAT_SKEW ahead), nbf if
 * present, sub and role strings. Returns 0 and *out (AUTH_VIA_JWT), or
 * ERR_TOOBIG, ERR_PARSE (malformed), AUTH_ERR_DENIED (each refusal with its
 * own message), ERR_NOMEM.
 */
int auth_jwt_verify(const struct auth_keyring *ring, const char *token,
                    int64_t now_s, struct auth_principal *out,
                    struct err_detail *d) MC_WUR;

/* ---- Rate limiting (auth_ratelimit.c) ---- */

struct auth_rl_opts {
    double rate;      /* tokens per second; 0 disables the limiter */
    double burst;     /* bucket size, >= 1 */
    int max_entries;  /* buckets kept; the least recently used is evicted */
};
#define AUTH_RL_KEY_MAX 63 /* longer keys are cut to this many bytes */

/*
 * Parses a rate-limit setting into o (max_entries left as it was, or
 * 16384 when it was <= 0). Grammar:
 *
 *   spec  = "off" / rate [ "," "burst=" count ]
 *   rate  = number "/" unit        ; > 0 and <= 1e6 per second
 *   unit  = "s" / "sec" / "second" / "m" / "min" / "minute"
 *         / "h" / "hour"
 *   count = integer 1..1000000
 *
 * "20/s,burst=40": 20 per second, bursts of 40. "600/min": 10 per second;
 * the default burst is one second's worth, at least 1. "off": rate 0.
 * Returns 0, or ERR_PARSE / ERR_RANGE with detail.
 */
int auth_rl_parse(const char *spec, struct auth_rl_opts *o,
                  struct err_detail *d) MC_WUR;

struct auth_rl;
/*
 * Creates a limiter (thread-safe; 16 shards, each a mutex, a hash index
 * and a fixed array of buckets allocated here). Returns 0 and *out,
 * ERR_RANGE (rate outside 0..1e6, burst outside 1..1e6, max_entries
 * outside 16..16M), ERR_NOMEM.
 */
int auth_rl_create(const struct auth_rl_opts *o, struct auth_rl **out,
                   struct err_detail *d) MC_WUR;
/* Frees rl (NULL is fine). No call may be in flight. */
void auth_rl_destroy(struct auth_rl *rl);
/*
 * Takes one token from key's bucket at now_ns (monotonic). Returns 0 when
 * allowed, 1 when limited with *retry_after_s (may be NULL) set to the
 * seconds until a token is available (> 0). A key seen for the first time
 * starts with a full bucket; when the shard is full its least recently
 * used bucket is reused. A disabled limiter always allows.
 */
int auth_rl_take(struct auth_rl *rl, const char *key, int64_t now_ns,
                 double *retry_after_s);
/* Number of buckets currently held (for metrics and tests). */
long auth_rl_entries(struct auth_rl *rl);

/* ---- Authorization header (auth_request.c) ---- */

#define AUTH_HEADER_MAX (AUTH_JWT_TOKEN_MAX + 64)

enum auth_cred {
    AUTH_CRED_NONE, /* no header: anonymous */
    AUTH_CRED_KEY,  /* "mc_..." : auth_key_lookup / auth_bootstrap_check */
    AUTH_CRED_JWT,  /* three dot-separated base64url parts: auth_jwt_verify */
};

struct auth_bearer {
    enum auth_cred kind;
    const char *tok; /* points into header; NOT NUL-terminated at len */
    size_t len;
};

/*
 * Parses an Authorization header value (NULL when the request has none).
 * Accepts "Bearer" (any case) then spaces then the credential, with
 * optional surrounding spaces or tabs. Returns 0 with out->kind
 * AUTH_CRED_NONE for NULL, or AUTH_CRED_KEY / AUTH_CRED_JWT and the
 * credential's span; ERR_TOOBIG (over AUTH_HEADER_MAX), ERR_PARSE (empty,
 * another scheme, no credential, control or non-ASCII bytes, a credential
 * that is neither a key nor a JWT). Never quotes the credential.
 */
int auth_parse_authorization(const char *header, struct auth_bearer *out,
                             struct err_detail *d) MC_WUR;

#endif
