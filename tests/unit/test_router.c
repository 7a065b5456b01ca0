/*
 * Unit tests of src/http/router.c against a small route table of our own,
 * plus sanity checks of the API's real table (api_routes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "core/mem.h"
#include "http/http.h"

/* Handlers are never called; distinct functions tell routes apart. */
static void h_list(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_create(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_get(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_put(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_sub(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_root(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }
static void h_two(struct http_req *q, struct http_resp *r) { (void)q; (void)r; }

static const struct http_route table[] = {
    {HTTP_GET, "/", h_root},
    {HTTP_GET, "/v1/things", h_list},
    {HTTP_POST, "/v1/things", h_create},
    {HTTP_GET, "/v1/things/{id}", h_get},
    {HTTP_PUT, "/v1/things/{id}", h_put},
    {HTTP_GET, "/v1/things/{id}/parts", h_sub},
    {HTTP_GET, "/v1/a/{x}/b/{y}", h_two},
};
#define NTABLE ((int)(sizeof(table) / sizeof(table[0])))

/* Result of one match, with the request's captures copied out. */
struct m {
    const struct http_route *route;
    int allow, bad, nparams;
    char params[HTTP_MAX_PARAMS][128];
};

/* Routes method+path through table and frees the request's captures. */
static struct m route(int method, const char *path)
{
    struct http_req req;
    struct m r;
    memset(&req, 0, sizeof(req));
    memset(&r, 0, sizeof(r));
    req.method = method;
    req.path = path;
    r.allow = r.bad = -1;
    r.route = http_route_match(table, NTABLE, &req, &r.allow, &r.bad);
    r.nparams = req.nparams;
    for (int i = 0; i < req.nparams; i++) {
        snprintf(r.params[i], sizeof(r.params[i]), "%s", req.params[i]);
        mem_free(req.params[i]);
    }
    return r;
}

/* Expects a match of handler h with the given captures (NULL-terminated). */
static void expect_route(int method, const char *path, http_handler h, ...)
{
    struct m r = route(method, path);
    if (!r.route)
        fail_msg("%s did not match (allow %d, bad %d)", path, r.allow, r.bad);
    assert_true(r.route->handler == h);
    assert_int_equal(r.bad, 0);
    va_list ap;
    va_start(ap, h);
    int n = 0;
    for (const char *want; (want = va_arg(ap, const char *)) != NULL; n++) {
        assert_true(n < r.nparams);
        assert_string_equal(r.params[n], want);
    }
    va_end(ap);
    assert_int_equal(r.nparams, n);
}
#define EXPECT_ROUTE(method, path, ...) expect_route(method, path, __VA_ARGS__, (const char *)NULL)

/* Expects no route, with the given Allow mask and bad flag. */
static void expect_none(int method, const char *path, int allow, int bad)
{
    struct m r = route(method, path);
    if (r.route)
        fail_msg("%s matched %s, want none", path, r.route->pattern);
    assert_int_equal(r.allow, allow);
    assert_int_equal(r.bad, bad);
    assert_int_equal(r.nparams, 0);
}

static void test_exact_paths(void **state)
{
    (void)state;
    EXPECT_ROUTE(HTTP_GET, "/", h_root);
    EXPECT_ROUTE(HTTP_GET, "/v1/things", h_list);
    EXPECT_ROUTE(HTTP_POST, "/v1/things", h_create);
    expect_none(HTTP_GET, "/v1/thing", 0, 0);
    expect_none(HTTP_GET, "/v1/thingsx", 0, 0);
    expect_none(HTTP_GET, "/v1", 0, 0);
    expect_none(HTTP_GET, "/V1/things", 0, 0);
    expect_none(HTTP_GET, "", 0, 0);
    expect_none(HTTP_GET, "v1/things", 0, 0);
    expect_none(HTTP_GET, "/nope", 0, 0);
}

static void test_captures(void **state)
{
    (void)state;
    EXPECT_ROUTE(HTTP_GET, "/v1/things/abc", h_get, "abc");
    EXPECT_ROUTE(HTTP_PUT, "/v1/things/abc", h_put, "abc");
    /* An encoded '/' stays inside the segment and is decoded once. */
    EXPECT_ROUTE(HTTP_GET, "/v1/things/org%2Fname", h_get, "org/name");
    EXPECT_ROUTE(HTTP_GET, "/v1/things/org%2fname/parts", h_sub, "org/name");
    EXPECT_ROUTE(HTTP_GET, "/v1/things/a%20b%2541", h_get, "a b%41");
    EXPECT_ROUTE(HTTP_GET, "/v1/things/%C3%A9t%C3%A9", h_get, "\xc3\xa9t\xc3\xa9");
    /* '+' in a path is a plus, not a space. */
    EXPECT_ROUTE(HTTP_GET, "/v1/things/a+b", h_get, "a+b");
    EXPECT_ROUTE(HTTP_GET, "/v1/a/one/b/two", h_two, "one", "two");
    /* An empty segment is not a capture. */
    expect_none(HTTP_GET, "/v1/things//parts", 0, 0);
}

static void test_method_mismatch_allow(void **state)
{
    (void)state;
    expect_none(HTTP_DELETE, "/v1/things/x", HTTP_GET | HTTP_PUT, 0);
    expect_none(HTTP_PATCH, "/v1/things", HTTP_GET | HTTP_POST, 0);
    expect_none(HTTP_POST, "/v1/things/x/parts", HTTP_GET, 0);

    char allow[128];
    http_allow_string(HTTP_GET | HTTP_PUT, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, PUT");
    http_allow_string(HTTP_GET | HTTP_POST, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, POST");
    http_allow_string(HTTP_DELETE | HTTP_GET | HTTP_PATCH | HTTP_PUT, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, PUT, PATCH, DELETE");
    http_allow_string(HTTP_POST, allow, sizeof(allow));
    assert_string_equal(allow, "POST");
    http_allow_string(0, allow, sizeof(allow));
    assert_string_equal(allow, "");
    /* A short buffer truncates, never overflows. */
    char small[6];
    http_allow_string(HTTP_GET | HTTP_PUT | HTTP_DELETE, small, sizeof(small));
    assert_true(strlen(small) < sizeof(small));
    assert_int_equal(strncmp(small, "GET, ", strlen(small)), 0);
}

static void test_head_serves_get(void **state)
{
    (void)state;
    EXPECT_ROUTE(HTTP_HEAD, "/v1/things", h_list);
    EXPECT_ROUTE(HTTP_HEAD, "/v1/things/org%2Fx", h_get, "org/x");
    /* A path without GET has no HEAD either. */
    static const struct http_route post_only[] = {{HTTP_POST, "/p", h_create}};
    struct http_req req;
    int allow, bad;
    memset(&req, 0, sizeof(req));
    req.method = HTTP_HEAD;
    req.path = "/p";
    assert_null(http_route_match(post_only, 1, &req, &allow, &bad));
    assert_int_equal(allow, HTTP_POST);
}

/*
 * Expects a malformed capture: no route, *bad set, no captures left behind,
 * and the request's method among the allowed ones (the scan stops there).
 */
static void expect_bad(int method, const char *path)
{
    struct m r = route(method, path);
    if (r.route)
        fail_msg("%s matched %s, want a malformed capture", path, r.route->pattern);
    assert_int_equal(r.bad, 1);
    assert_int_equal(r.nparams, 0);
    assert_true(r.allow & (method == HTTP_HEAD ? HTTP_GET : method));
}

static void test_malformed_capture(void **state)
{
    (void)state;
    expect_bad(HTTP_GET, "/v1/things/%zz");
    expect_bad(HTTP_HEAD, "/v1/things/%zz");
    expect_bad(HTTP_PUT, "/v1/things/ab%2");
    expect_bad(HTTP_GET, "/v1/things/ab%");
    expect_bad(HTTP_GET, "/v1/things/%zz/parts");
    /* A decoded NUL and invalid UTF-8 are malformed too. */
    expect_bad(HTTP_GET, "/v1/things/a%00b");
    expect_bad(HTTP_GET, "/v1/things/%C0%AF");
    expect_bad(HTTP_GET, "/v1/things/%FF");
    expect_bad(HTTP_GET, "/v1/a/%zz/b/two");
    /* The method that doesn't match never decodes: plain 405 data. */
    expect_none(HTTP_DELETE, "/v1/things/%zz", HTTP_GET | HTTP_PUT, 0);
}

static void test_trailing_slash_and_segments(void **state)
{
    (void)state;
    expect_none(HTTP_GET, "/v1/things/", 0, 0);
    expect_none(HTTP_GET, "/v1/things/abc/", 0, 0);
    expect_none(HTTP_GET, "/v1/things/abc/parts/", 0, 0);
    expect_none(HTTP_GET, "/v1/things/abc/parts/more", 0, 0);
    expect_none(HTTP_GET, "/v1/things/abc/def", 0, 0);
    expect_none(HTTP_GET, "/v1/a/1/b/2/c", 0, 0);
    expect_none(HTTP_GET, "/v1/a/1/b", 0, 0);
    expect_none(HTTP_GET, "//", 0, 0);
}

static void test_method_parse(void **state)
{
    (void)state;
    assert_int_equal(http_method_parse("GET"), HTTP_GET);
    assert_int_equal(http_method_parse("HEAD"), HTTP_HEAD);
    assert_int_equal(http_method_parse("DELETE"), HTTP_DELETE);
    assert_int_equal(http_method_parse("OPTIONS"), HTTP_OPTIONS);
    assert_int_equal(http_method_parse("get"), 0);
    assert_int_equal(http_method_parse("TRACE"), 0);
    assert_int_equal(http_method_parse(""), 0);
}

static int one_bit(int m)
{
    return m != 0 && (m & (m - 1)) == 0;
}

static void test_api_routes_table(void **state)
{
    (void)state;
    int n = 0;
    const struct http_route *r = api_routes(&n);
    assert_non_null(r);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        assert_non_null(r[i].pattern);
        assert_int_equal(r[i].pattern[0], '/');
        assert_non_null(r[i].handler);
        assert_true(one_bit(r[i].method));
        assert_true(r[i].method != HTTP_HEAD); /* GET serves HEAD */
        /* Each {capture} is a whole segment. */
        for (const char *p = strchr(r[i].pattern, '{'); p; p = strchr(p + 1, '{')) {
            assert_int_equal(p[-1], '/');
            const char *e = strchr(p, '}');
            assert_non_null(e);
            assert_true(e[1] == '\0' || e[1] == '/');
        }
        for (int k = 0; k < i; k++)
            if (r[k].method == r[i].method && strcmp(r[k].pattern, r[i].pattern) == 0)
                fail_msg("duplicate route %d %s", r[i].method, r[i].pattern);
    }
    /* And the table routes a model id with an encoded slash. */
    struct http_req req;
    int allow, bad;
    memset(&req, 0, sizeof(req));
    req.method = HTTP_GET;
    req.path = "/api/v1/models/meta-llama%2FLlama-3.1-8B";
    const struct http_route *m = http_route_match(r, n, &req, &allow, &bad);
    assert_non_null(m);
    assert_string_equal(m->pattern, "/api/v1/models/{id}");
    assert_int_equal(req.nparams, 1);
    assert_string_equal(req.params[0], "meta-llama/Llama-3.1-8B");
    mem_free(req.params[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_paths),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_method_mismatch_allow),
        cmocka_unit_test(test_head_serves_get),
        cmocka_unit_test(test_malformed_capture),
        cmocka_unit_test(test_trailing_slash_and_segments),
        cmocka_unit_test(test_method_parse),
        cmocka_unit_test(test_api_routes_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
