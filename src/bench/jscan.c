/*
 * Tree-less JSON scanning (see jscan.h). js_skip is a small recursive
 * validator of structure (strings with escapes, numbers, literals, nested
 * containers); it checks enough to stay in bounds and find value ends, not
 * full RFC 8259 conformance (e.g. it does not validate UTF-8 in strings).
 */
#include "bench/jscan.h"

#include <string.h>

const char *js_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* End of the string starting at p ('"'), or NULL. */
static const char *skip_str(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\') {
            if (++p >= end)
                return NULL;
        } else if ((unsigned char)*p < 0x20) {
            return NULL;
        }
    }
    return NULL;
}

static const char *skip_depth(const char *p, const char *end, int depth);

static const char *skip_container(const char *p, const char *end, int depth, char close)
{
    int obj = close == '}';
    p = js_ws(p + 1, end);
    if (p < end && *p == close)
        return p + 1;
    while (p < end) {
        if (obj) {
            if (*p != '"' || !(p = skip_str(p, end)))
                return NULL;
            p = js_ws(p, end);
            if (p >= end || *p != ':')
                return NULL;
            p++;
        }
        if (!(p = skip_depth(p, end, depth + 1)))
            return NULL;
        p = js_ws(p, end);
        if (p >= end)
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p = js_ws(p + 1, end);
    }
    return NULL;
}

static const char *skip_depth(const char *p, const char *end, int depth)
{
    p = js_ws(p, end);
    if (p >= end || depth > JS_MAX_DEPTH)
        return NULL;
    switch (*p) {
    case '"':
        return skip_str(p, end);
    case '{':
        return skip_container(p, end, depth, '}');
    case '[':
        return skip_container(p, end, depth, ']');
    case 't':
        return end - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
    default:
        if (*p != '-' && (*p < '0' || *p > '9'))
            return NULL;
        p++;
        while (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' ||
                           *p == '+' || *p == '-'))
            p++;
        return p;
    }
}

const char *js_skip(const char *p, const char *end)
{
    return p ? skip_depth(p, end, 0) : NULL;
}

const char *js_get(const char *p, const char *end, const char *key)
{
    if (!p)
        return NULL;
    size_t kl = strlen(key);
    p = js_ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p = js_ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *ks = p + 1, *ke = skip_str(p, end);
        if (!ke)
            return NULL;
        p = js_ws(ke, end);
        if (p >= end || *p != ':')
            return NULL;
        p = js_ws(p + 1, end);
        if ((size_t)(ke - 1 - ks) == kl && memcmp(ks, key, kl) == 0)
            return p;
        if (!(p = js_skip(p, end)))
            return NULL;
        p = js_ws(p, end);
        if (p >= end || *p != ',')
            return NULL;
        p = js_ws(p + 1, end);
    }
    return NULL;
}

const char *js_first(const char *p, const char *end)
{
    if (!p)
        return NULL;
    p = js_ws(p, end);
    if (p >= end || *p != '[')
        return NULL;
    p = js_ws(p + 1, end);
    return p < end && *p != ']' ? p : NULL;
}

int js_is_null(const char *p, const char *end)
{
    if (!p)
        return 1;
    p = js_ws(p, end);
    return end - p >= 4 && !memcmp(p, "null", 4);
}

int js_str_nonempty(const char *p, const char *end)
{
    if (!p)
        return -1;
    p = js_ws(p, end);
    if (p >= end || *p != '"')
        return -1;
    if (!skip_str(p, end))
        return -1;
    return p + 1 < end && p[1] != '"';
}

int js_int(const char *p, const char *end, int64_t *v)
{
    if (!p)
        return -1;
    p = js_ws(p, end);
    int neg = p < end && *p == '-';
    p += neg;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    uint64_t x = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (x > (UINT64_C(1) << 62))
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return -1;
    *v = neg ? -(int64_t)x : (int64_t)x;
    return 0;
}

int js_obj_begin(struct js_iter *it, const char *p, const char *end)
{
    p = p ? js_ws(p, end) : end;
    if (p >= end || *p != '{')
        return -1;
    it->p = js_ws(p + 1, end);
    it->end = end;
    return 0;
}

int js_obj_next(struct js_iter *it, const char **k, size_t *kl, const char **v,
                const char **ve)
{
    const char *p = it->p, *end = it->end;
    if (p < end && *p == '}') {
        it->p = p + 1;
        return 0;
    }
    if (p >= end || *p != '"')
        return -1;
    const char *ke = skip_str(p, end);
    if (!ke)
        return -1;
    *k = p + 1;
    *kl = (size_t)(ke - 1 - *k);
    p = js_ws(ke, end);
    if (p >= end || *p != ':')
        return -1;
    *v = js_ws(p + 1, end);
    if (!(*ve = skip_depth(*v, end, 1)))
        return -1;
    p = js_ws(*ve, end);
    if (p < end && *p == ',') {
        p = js_ws(p + 1, end);
        if (p >= end || *p != '"')
            return -1;
    } else if (p >= end || *p != '}') {
        return -1;
    }
    it->p = p;
    return 1;
}

int js_key_is(const char *k, size_t kl, const char *lit)
{
    return strlen(lit) == kl && memcmp(k, lit, kl) == 0;
}
