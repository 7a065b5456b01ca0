/*
 * JWTs for the API: HS256 only, signed with the active key of a keyring
 * and verified with any key that is not retired (rotation: add the new key
 * as active, keep the old one verify-only for one token lifetime, then
 * retire or drop it). libjwt 1.10 signs and decodes.
 *
 * DESIGN: libjwt is not trusted with the decision alone. In 1.10,
 * jwt_decode picks the algorithm from the token's own header: with no key
 * it turns any alg into "none" and skips the signature, with a key it
 * verifies HS384/HS512 as readily as HS256, and older releases accepted
 * alg "none" whatever the key; its base64 decoder is lenient, it keeps the
 * last of duplicate JSON members, reads a string "exp" as 0, and before
 * the fix of CVE-2024-25189 compared signatures with strcmp. So
 * auth_jwt_verify first checks everything itself, on the raw text: size
 * cap, three strict base64url parts, the header's JSON (duplicates refused,
 * alg exactly "HS256", kid known and not retired, no "crit"), then the
 * HMAC-SHA256 with CRYPTO_memcmp. Only a token that passed is given to
 * jwt_decode with the kid's secret, which must agree (alg HS256, same sub).
 * The claims are read from our strict parse: exp and iat must be JSON
 * integers, sub and role strings. Every refusal has its own message;
 * none quotes a secret.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/auth.h"
#include "auth/auth_int.h"
#include "core/codec.h"

#define HEAD_MAX 1024     /* base64url chars of the header */
#define MAC_LEN 32

/* ---- keyring ---- */

static int kid_ok(const char *kid, size_t n)
{
    if (n < 1 || n > AUTH_JWT_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static struct auth_jwt_key *find_kid(const struct auth_keyring *ring, const char *kid,
                                     size_t n)
{
    for (int i = 0; i < ring->n; i++)
        if (strlen(ring->k[i].kid) == n && memcmp(ring->k[i].kid, kid, n) == 0)
            return (struct auth_jwt_key *)&ring->k[i];
    return NULL;
}

static const struct auth_jwt_key *active_key(const struct auth_keyring *ring)
{
    for (int i = 0; i < ring->n; i++)
        if (ring->k[i].state == AUTH_KS_ACTIVE)
            return &ring->k[i];
    return NULL;
}

void auth_keyring_clear(struct auth_keyring *ring)
{
    OPENSSL_cleanse(ring, sizeof(*ring));
    ring->n = 0;
}

int auth_keyring_add(struct auth_keyring *ring, const char *kid,
                     const unsigned char *secret, size_t len,
                     enum auth_key_state state, struct err_detail *d)
{
    size_t kn = kid ? strlen(kid) : 0;
    if (!kid_ok(kid, kn))
        return err_set(d, ERR_INVAL, "kid",
                       "a kid is 1 to %d characters of A-Z a-z 0-9 . _ -", AUTH_JWT_KID_MAX);
    if (find_kid(ring, kid, kn))
        return err_set(d, ERR_INVAL, "kid", "kid '%s' appears twice", kid);
    if (len < AUTH_JWT_SECRET_MIN || len > AUTH_JWT_SECRET_MAX)
        return err_set(d, ERR_RANGE, "kid",
                       "the secret of kid '%s' has %zu bytes; %d to %d are needed", kid, len,
                       AUTH_JWT_SECRET_MIN, AUTH_JWT_SECRET_MAX);
    if (state != AUTH_KS_ACTIVE && state != AUTH_KS_VERIFY && state != AUTH_KS_RETIRED)
        return err_set(d, ERR_INVAL, "kid", "bad state for kid '%s'", kid);
    if (state == AUTH_KS_ACTIVE && active_key(ring))
        return err_set(d, ERR_INVAL, "kid",
                       "kid '%s' would be a second active key; exactly one signs", kid);
    if (ring->n >= AUTH_JWT_MAX_KEYS)
        return err_set(d, ERR_RANGE, "kid", "a keyring holds at most %d keys",
                       AUTH_JWT_MAX_KEYS);
    struct auth_jwt_key *k = &ring->k[ring->n++];
    memcpy(k->kid, kid, kn + 1);
    memcpy(k->secret, secret, len);
    k->len = len;
    k->state = state;
    return 0;
}

int auth_keyring_set_state(struct auth_keyring *ring, const char *kid,
                           enum auth_key_state state, struct err_detail *d)
{
    struct auth_jwt_key *k = kid ? find_kid(ring, kid, strlen(kid)) : NULL;
    if (!k)
        return err_set(d, ERR_NOTFOUND, "kid", "no such kid in the keyring");
    if (state == AUTH_KS_ACTIVE)
        for (int i = 0; i < ring->n; i++)
            if (ring->k[i].state == AUTH_KS_ACTIVE)
                ring->k[i].state = AUTH_KS_VERIFY;
    k->state = state;
    return 0;
}

/* Parses one "kid:secret[:state]" entry (n bytes at s) into ring. */
static int parse_entry(struct auth_keyring *ring, const char *s, size_t n, int first,
                       struct err_detail *d)
{
    const char *c1 = memchr(s, ':', n);
    if (!c1)
        return err_set(d, ERR_PARSE, "jwt_keys", "entry %d has no ':' (kid:secret)",
                       ring->n + 1);
    char kid[AUTH_JWT_KID_MAX + 1];
    size_t kn = (size_t)(c1 - s);
    if (!kid_ok(s, kn))
        return err_set(d, ERR_PARSE, "jwt_keys",
                       "entry %d: a kid is 1 to %d characters of A-Z a-z 0-9 . _ -",
                       ring->n + 1, AUTH_JWT_KID_MAX);
    memcpy(kid, s, kn);
    kid[kn] = '\0';
    const char *sec = c1 + 1, *end = s + n;
    const char *c2 = memchr(sec, ':', (size_t)(end - sec));
    size_t sn = (size_t)((c2 ? c2 : end) - sec);
    enum auth_key_state st = first ? AUTH_KS_ACTIVE : AUTH_KS_VERIFY;
    if (c2) {
        size_t tn = (size_t)(end - c2 - 1);
        if (tn == 6 && memcmp(c2 + 1, "active", 6) == 0)
            st = AUTH_KS_ACTIVE;
        else if (tn == 6 && memcmp(c2 + 1, "verify", 6) == 0)
            st = AUTH_KS_VERIFY;
        else if (tn == 7 && memcmp(c2 + 1, "retired", 7) == 0)
            st = AUTH_KS_RETIRED;
        else
            return err_set(d, ERR_PARSE, "jwt_keys",
                           "kid '%s': state is active, verify or retired", kid);
    }
    unsigned char secret[AUTH_JWT_SECRET_MAX];
    long len = sn <= (AUTH_JWT_SECRET_MAX * 4 + 2) / 3
                   ? codec_b64url_decode(sec, sn, secret, sizeof(secret)) : -2;
    int rc;
    if (len == -1)
        rc = err_set(d, ERR_PARSE, "jwt_keys",
                     "the secret of kid '%s' is not base64url without padding", kid);
    else if (len < AUTH_JWT_SECRET_MIN)
        rc = err_set(d, ERR_RANGE, "jwt_keys",
                     "the secret of kid '%s' must decode to %d to %d bytes", kid,
                     AUTH_JWT_SECRET_MIN, AUTH_JWT_SECRET_MAX);
    else
        rc = auth_keyring_add(ring, kid, secret, (size_t)len, st, d);
    OPENSSL_cleanse(secret, sizeof(secret));
    return rc;
}

int auth_keyring_parse(struct auth_keyring *ring, const char *spec, struct err_detail *d)
{
    auth_keyring_clear(ring);
    if (!spec)
        return err_set(d, ERR_PARSE, "jwt_keys", "no JWT keys given");
    int rc = 0, entries = 0;
    const char *s = spec;
    for (;;) {
        const char *e = strchr(s, ',');
        const char *end = e ? e : s + strlen(s);
        while (s < end && *s == ' ')
            s++;
        const char *t = end;
        while (t > s && t[-1] == ' ')
            t--;
        if (t == s) {
            rc = err_set(d, ERR_PARSE, "jwt_keys", "entry %d is empty", entries + 1);
            break;
        }
        if ((rc = parse_entry(ring, s, (size_t)(t - s), entries == 0, d)))
            break;
        entries++;
        if (!e)
            break;
        s = e + 1;
    }
    if (rc == 0 && !active_key(ring))
        rc = err_set(d, ERR_INVAL, "jwt_keys", "no active key: exactly one must sign");
    if (rc)
        auth_keyring_clear(ring);
    return rc;
}

/* ---- issue ---- */

int auth_jwt_issue(const struct auth_keyring *ring, const char *sub,
                   enum auth_role role, int64_t now_s, int64_t ttl_s,
                   char *out, size_t cap, struct err_detail *d)
{
    const struct auth_jwt_key *k = active_key(ring);
    if (!k)
        return err_set(d, ERR_INVAL, NULL, "the keyring has no active key");
    if (!sub || !auth__token_text(sub, strlen(sub), 1, AUTH_SUB_MAX))
        return err_set(d, ERR_INVAL, "sub", "sub is 1 to %d printable ASCII characters",
                       AUTH_SUB_MAX);
    const char *rname = auth_role_name(role);
    if (strcmp(rname, "unknown") == 0)
        return err_set(d, ERR_INVAL, "role", "unknown role");
    if (ttl_s < 1 || ttl_s > AUTH_JWT_TTL_MAX)
        return err_set(d, ERR_RANGE, "ttl", "a token lives 1 to %d seconds", AUTH_JWT_TTL_MAX);
    unsigned char rnd[16];
    char jti[32];
    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1)
        return err_set(d, ERR_INTERNAL, NULL, "the random number generator failed");
    auth__b64url(rnd, sizeof(rnd), jti);

    jwt_t *jwt = NULL;
    char *tok = NULL;
    int rc = 0;
    if (jwt_new(&jwt)) {
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory creating a JWT");
        goto out;
    }
    if (jwt_add_header(jwt, "kid", k->kid) || jwt_add_grant(jwt, "sub", sub) ||
        jwt_add_grant(jwt, "role", rname) || jwt_add_grant(jwt, "jti", jti) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, k->secret, (int)k->len)) {
        rc = err_set(d, ERR_INTERNAL, NULL, "libjwt refused the token's contents");
        goto out;
    }
    tok = jwt_encode_str(jwt);
    if (!tok) {
        rc = err_set(d, ERR_NOMEM, NULL, "libjwt could not encode the token");
        goto out;
    }
    size_t n = strlen(tok);
    if (n + 1 > cap || n > AUTH_JWT_TOKEN_MAX) {
        rc = err_set(d, ERR_TOOBIG, NULL, "the token needs %zu bytes", n + 1);
        goto out;
    }
    memcpy(out, tok, n + 1);
out:
    free(tok); /* libjwt 1.10 allocates with malloc and has no jwt_free_str */
    jwt_free(jwt); /* wipes its copy of the key */
    return rc;
}

/* ---- verify ---- */

/* Decodes part (n chars) of a token into a JSON object, or NULL. */
static json_t *decode_json(const char *part, size_t n, unsigned char *tmp, size_t cap)
{
    long len = codec_b64url_decode(part, n, tmp, cap);
    if (len <= 0)
        return NULL;
    json_t *j = json_loadb((const char *)tmp, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Checks the header object h; returns the kid's key or sets d. */
static int check_header(const struct auth_keyring *ring, json_t *h,
                        const struct auth_jwt_key **key, struct err_detail *d)
{
    json_t *alg = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
    json_t *kid = json_object_get(h, "kid");
    if (!alg)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT header has no alg");
    if (!json_is_string(alg))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT alg is not a string");
    const char *a = json_string_value(alg);
    if (strcasecmp(a, "none") == 0)
        return err_set(d, AUTH_ERR_DENIED, "token", "unsigned JWTs (alg none) are refused");
    if (strcmp(a, "HS256") != 0 || json_string_length(alg) != 5) {
        /* Quoted only when it looks like an algorithm name (RS256, ES512). */
        if (kid_ok(a, json_string_length(alg)) && json_string_length(alg) <= 16)
            return err_set(d, AUTH_ERR_DENIED, "token",
                           "JWT alg '%s' is not allowed; only HS256", a);
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT alg is not allowed; only HS256");
    }
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT typ is not \"JWT\"");
    if (json_object_get(h, "crit"))
        return err_set(d, AUTH_ERR_DENIED, "token", "JWT critical header extensions are refused");
    if (!kid)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT header has no kid");
    const char *ks = json_string_value(kid);
    size_t kn = json_string_length(kid);
    if (!json_is_string(kid) || !kid_ok(ks, kn))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT kid is malformed");
    const struct auth_jwt_key *k = find_kid(ring, ks, kn);
    if (!k)
        return err_set(d, AUTH_ERR_DENIED, "token", "unknown JWT kid '%s'", ks);
    if (k->state == AUTH_KS_RETIRED)
        return err_set(d, AUTH_ERR_DENIED, "token", "JWT kid '%s' is retired", ks);
    *key = k;
    return 0;
}

/* An integer claim: 1 present and *v set, 0 absent, -1 present but not an integer. */
static int int_claim(json_t *c, const char *name, int64_t *v)
{
    json_t *j = json_object_get(c, name);
    if (!j)
        return 0;
    if (!json_is_integer(j))
        return -1;
    *v = (int64_t)json_integer_value(j);
    return 1;
}

/* Checks the claims object c at now_s and fills out. */
static int check_claims(json_t *c, int64_t now_s, struct auth_principal *out,
                        struct err_detail *d)
{
    int64_t exp = 0, iat = 0, nbf = 0;
    int he = int_claim(c, "exp", &exp), hi = int_claim(c, "iat", &iat);
    int hn = int_claim(c, "nbf", &nbf);
    if (he <= 0)
        return err_set(d, AUTH_ERR_DENIED, "token",
                       he ? "the JWT exp is not an integer" : "the JWT has no exp");
    if (hi <= 0)
        return err_set(d, AUTH_ERR_DENIED, "token",
                       hi ? "the JWT iat is not an integer" : "the JWT has no iat");
    if (hn < 0)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT nbf is not an integer");
    if (exp <= now_s)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT has expired");
    if (iat > now_s + AUTH_JWT_IAT_SKEW)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT iat is in the future");
    if (hn && nbf > now_s + AUTH_JWT_IAT_SKEW)
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT is not valid yet (nbf)");
    json_t *sub = json_object_get(c, "sub"), *role = json_object_get(c, "role");
    if (!json_is_string(sub) ||
        !auth__token_text(json_string_value(sub), json_string_length(sub), 1, AUTH_SUB_MAX))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT sub is missing or malformed");
    if (!json_is_string(role))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT has no role");
    if (auth_role_parse(json_string_value(role), json_string_length(role), &out->role, NULL))
        return err_set(d, AUTH_ERR_DENIED, "token", "the JWT role is unknown");
    out->via = AUTH_VIA_JWT;
    memcpy(out->id, json_string_value(sub), json_string_length(sub) + 1);
    out->expires_s = exp;
    return 0;
}

/* libjwt must agree with what we checked: alg HS256 and the same sub. */
static int libjwt_agrees(const char *token, const struct auth_jwt_key *k, const char *sub,
                         struct err_detail *d)
{
    jwt_t *jwt = NULL;
    int e = jwt_decode(&jwt, token, k->secret, (int)k->len);
    int rc = 0;
    if (e == ENOMEM)
        rc = err_set(d, ERR_NOMEM, NULL, "out of memory decoding a JWT");
    else if (e || !jwt || jwt_get_alg(jwt) != JWT_ALG_HS256)
        rc = err_set(d, AUTH_ERR_DENIED, "token", "the JWT library refused the token");
    else {
        const char *s = jwt_get_grant(jwt, "sub");
        if (!s || strcmp(s, sub) != 0)
            rc = err_set(d, AUTH_ERR_DENIED, "token", "the JWT library read another sub");
    }
    jwt_free(jwt);
    return rc;
}

int auth_jwt_verify(const struct auth_keyring *ring, const char *token,
                    int64_t now_s, struct auth_principal *out,
                    struct err_detail *d)
{
    memset(out, 0, sizeof(*out));
    if (!token || !*token)
        return err_set(d, ERR_PARSE, "token", "no JWT given");
    size_t n = strnlen(token, AUTH_JWT_TOKEN_MAX + 1);
    if (n > AUTH_JWT_TOKEN_MAX)
        return err_set(d, ERR_TOOBIG, "token", "a JWT is at most %d bytes",
                       AUTH_JWT_TOKEN_MAX);
    const char *d1 = memchr(token, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)))
        return err_set(d, ERR_PARSE, "token", "a JWT has three parts separated by dots");
    size_t hn = (size_t)(d1 - token), pn = (size_t)(d2 - d1 - 1);
    size_t sn = n - (size_t)(d2 + 1 - token);
    if (hn == 0 || pn == 0)
        return err_set(d, ERR_PARSE, "token", "the JWT header or payload is empty");
    if (hn > HEAD_MAX)
        return err_set(d, ERR_TOOBIG, "token", "the JWT header is too long");

    unsigned char tmp[AUTH_JWT_TOKEN_MAX];
    unsigned char mac[EVP_MAX_MD_SIZE], sig[MAC_LEN + 3];
    const struct auth_jwt_key *k = NULL;
    json_t *h = decode_json(token, hn, tmp, sizeof(tmp)), *c = NULL;
    int rc;
    if (!h) {
        rc = err_set(d, ERR_PARSE, "token", "the JWT header is not a base64url JSON object");
        goto out;
    }
    if ((rc = check_header(ring, h, &k, d)))
        goto out;
    if (sn == 0) {
        rc = err_set(d, AUTH_ERR_DENIED, "token", "the JWT has no signature");
        goto out;
    }
    long sl = codec_b64url_decode(d2 + 1, sn, sig, sizeof(sig));
    if (sl != MAC_LEN) {
        rc = err_set(d, AUTH_ERR_DENIED, "token", "the JWT signature is malformed");
        goto out;
    }
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), k->secret, (int)k->len, (const unsigned char *)token,
              (size_t)(d2 - token), mac, &ml) || ml != MAC_LEN) {
        rc = err_set(d, ERR_INTERNAL, NULL, "HMAC-SHA256 failed");
        goto out;
    }
    if (CRYPTO_memcmp(mac, sig, MAC_LEN) != 0) {
        rc = err_set(d, AUTH_ERR_DENIED, "token", "the JWT signature does not verify");
        goto out;
    }
    if (!(c = decode_json(d1 + 1, pn, tmp, sizeof(tmp)))) {
        rc = err_set(d, ERR_PARSE, "token", "the JWT payload is not a base64url JSON object");
        goto out;
    }
    if ((rc = check_claims(c, now_s, out, d)))
        goto out;
    rc = libjwt_agrees(token, k, out->id, d);
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    json_decref(h);
    json_decref(c);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}
