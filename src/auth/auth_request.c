/*
 * What a request presents and what it may do: the Authorization header
 * (RFC 6750 Bearer credentials, classified as API key or JWT before any
 * check that costs a store access or an HMAC), roles and their
 * permissions, and the classification of auth errors into refusals and
 * server failures.
 *
 * Roles are a table of permission bits, not a ladder: a worker posts
 * results and runs jobs but cannot edit the catalog; an editor edits the
 * catalog and posts results but does not claim jobs.
 */
#include <string.h>
#include <strings.h>

#include "auth/auth.h"

int auth_refused(int rc)
{
    switch (rc) {
    case AUTH_ERR_DENIED:
    case ERR_PARSE:
    case ERR_TOOBIG:
    case ERR_RANGE:
    case ERR_NOTFOUND:
        return 1;
    default:
        return 0;
    }
}

/* ---- roles ---- */

#define P(x) (1u << (x))

static const struct {
    const char *name;
    unsigned perms;
} roles[AUTH_ROLE_COUNT] = {
    [AUTH_ROLE_VIEWER] = {"viewer", P(AUTH_READ)},
    [AUTH_ROLE_EDITOR] = {"editor", P(AUTH_READ) | P(AUTH_WRITE_CATALOG) |
                                        P(AUTH_WRITE_RESULTS)},
    [AUTH_ROLE_WORKER] = {"worker", P(AUTH_READ) | P(AUTH_WRITE_RESULTS) | P(AUTH_JOBS)},
    [AUTH_ROLE_ADMIN] = {"admin", P(AUTH_READ) | P(AUTH_WRITE_CATALOG) |
                                      P(AUTH_WRITE_RESULTS) | P(AUTH_JOBS) |
                                      P(AUTH_ADMIN)},
};

static const char *const perm_names[AUTH_PERM_COUNT] = {
    [AUTH_READ] = "read",
    [AUTH_WRITE_CATALOG] = "write_catalog",
    [AUTH_WRITE_RESULTS] = "write_results",
    [AUTH_JOBS] = "jobs",
    [AUTH_ADMIN] = "admin",
};

int auth_role_parse(const char *s, size_t n, enum auth_role *out,
                    struct err_detail *d)
{
    for (int i = 0; s && i < AUTH_ROLE_COUNT; i++) {
        if (strlen(roles[i].name) == n && memcmp(roles[i].name, s, n) == 0) {
            *out = (enum auth_role)i;
            return 0;
        }
    }
    return err_set(d, ERR_INVAL, "role",
                   "unknown role; one of viewer, editor, worker, admin");
}

const char *auth_role_name(enum auth_role r)
{
    if ((int)r < 0 || (int)r >= AUTH_ROLE_COUNT)
        return "unknown";
    return roles[r].name;
}

const char *auth_perm_name(enum auth_perm p)
{
    if ((int)p < 0 || (int)p >= AUTH_PERM_COUNT)
        return "unknown";
    return perm_names[p];
}

int auth_allows(enum auth_role r, enum auth_perm p)
{
    if ((int)r < 0 || (int)r >= AUTH_ROLE_COUNT || (int)p < 0 ||
        (int)p >= AUTH_PERM_COUNT)
        return 0;
    return (roles[r].perms & P(p)) != 0;
}

/* ---- Authorization header ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* token68 of RFC 7235: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int is_token68(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (is_b64url(s[i]) || s[i] == '.' || s[i] == '~' || s[i] == '+' ||
                     s[i] == '/'))
        i++;
    if (i == 0)
        return 0;
    while (i < n && s[i] == '=')
        i++;
    return i == n;
}

/*
 * 1 when s has exactly two dots and base64url parts, the first two
 * non-empty (the signature may be empty so that an alg "none" token
 * reaches the verifier and gets its own refusal).
 */
static int looks_like_jwt(const char *s, size_t n)
{
    size_t part = 0, plen = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (plen == 0 || ++part > 2)
                return 0;
            plen = 0;
        } else if (!is_b64url(s[i])) {
            return 0;
        } else {
            plen++;
        }
    }
    return part == 2;
}

int auth_parse_authorization(const char *header, struct auth_bearer *out,
                             struct err_detail *d)
{
    memset(out, 0, sizeof(*out));
    if (!header)
        return 0;
    size_t n = strnlen(header, AUTH_HEADER_MAX + 1);
    if (n > AUTH_HEADER_MAX)
        return err_set(d, ERR_TOOBIG, "authorization",
                       "the Authorization header is longer than %d bytes", AUTH_HEADER_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)header[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return err_set(d, ERR_PARSE, "authorization",
                           "the Authorization header holds control characters");
        if (c >= 0x80)
            return err_set(d, ERR_PARSE, "authorization",
                           "the Authorization header holds non-ASCII bytes");
    }
    const char *s = header, *e = header + n;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    if (s == e)
        return err_set(d, ERR_PARSE, "authorization", "the Authorization header is empty");
    const char *sp = s;
    while (sp < e && !is_ows(*sp))
        sp++;
    /* The scheme is not quoted back: a client may have sent a bare secret. */
    if (sp - s != 6 || strncasecmp(s, "Bearer", 6) != 0)
        return err_set(d, ERR_PARSE, "authorization",
                       "only the Bearer scheme is accepted (Authorization: Bearer <key or token>)");
    while (sp < e && is_ows(*sp))
        sp++;
    if (sp == e)
        return err_set(d, ERR_PARSE, "authorization", "no credential after Bearer");
    size_t len = (size_t)(e - sp);
    for (size_t i = 0; i < len; i++)
        if (is_ows(sp[i]))
            return err_set(d, ERR_PARSE, "authorization",
                           "the Bearer credential contains spaces");
    if (!is_token68(sp, len))
        return err_set(d, ERR_PARSE, "authorization",
                       "the Bearer credential holds characters outside token68");
    if (len >= 3 && memcmp(sp, AUTH_KEY_PREFIX, 3) == 0)
        out->kind = AUTH_CRED_KEY;
    else if (looks_like_jwt(sp, len))
        out->kind = AUTH_CRED_JWT;
    else
        return err_set(d, ERR_PARSE, "authorization",
                       "the Bearer credential is neither an API key (mc_...) nor a JWT");
    out->tok = sp;
    out->len = len;
    return 0;
}
