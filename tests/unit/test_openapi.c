/*
 * The OpenAPI document (docs/openapi.json) and the router's table agree:
 * every route the router knows is documented, and the document describes
 * no path or operation the router lacks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "api/api.h"
#include "http/http.h"

static const struct {
    int bit;
    const char *key; /* OpenAPI operation key */
} ops[] = {
    {HTTP_GET, "get"}, {HTTP_HEAD, "head"}, {HTTP_POST, "post"}, {HTTP_PUT, "put"},
    {HTTP_PATCH, "patch"}, {HTTP_DELETE, "delete"}, {HTTP_OPTIONS, "options"},
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static const char *op_key(int bit)
{
    for (size_t i = 0; i < NOPS; i++)
        if (ops[i].bit == bit)
            return ops[i].key;
    return NULL;
}

static int doc_setup(void **state)
{
    json_error_t e;
    json_t *doc = json_load_file(SOURCE_DIR "/docs/openapi.json", JSON_REJECT_DUPLICATES, &e);
    if (!doc) {
        print_error("docs/openapi.json: %s (line %d)\n", e.text, e.line);
        return -1;
    }
    *state = doc;
    return 0;
}

static int doc_teardown(void **state)
{
    json_decref(*state);
    return 0;
}

static json_t *doc_paths(void **state)
{
    json_t *paths = json_object_get(*state, "paths");
    assert_true(json_is_object(paths));
    return paths;
}

static void test_document_shape(void **state)
{
    json_t *doc = *state;
    const char *v = json_string_value(json_object_get(doc, "openapi"));
    assert_non_null(v);
    assert_int_equal(strncmp(v, "3.", 2), 0);
    assert_true(json_object_size(doc_paths(state)) > 0);
}

static void test_every_route_documented(void **state)
{
    json_t *paths = doc_paths(state);
    int n = 0;
    const struct http_route *r = api_routes(&n);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        if (r[i].method == HTTP_HEAD)
            continue;
        const char *key = op_key(r[i].method);
        assert_non_null(key);
        json_t *item = json_object_get(paths, r[i].pattern);
        if (!json_is_object(item))
            fail_msg("route %s is missing from docs/openapi.json", r[i].pattern);
        json_t *op = json_object_get(item, key);
        if (!json_is_object(op))
            fail_msg("operation %s %s is missing from docs/openapi.json", key, r[i].pattern);
        assert_non_null(json_object_get(op, "responses"));
    }
}

/* 1 when the router has a route for (bit, pattern). */
static int router_has(int bit, const char *pattern)
{
    int n = 0;
    const struct http_route *r = api_routes(&n);
    for (int i = 0; i < n; i++)
        if ((bit == 0 || r[i].method == bit || (bit == HTTP_HEAD && r[i].method == HTTP_GET)) &&
            strcmp(r[i].pattern, pattern) == 0)
            return 1;
    return 0;
}

static void test_no_undocumented_extras(void **state)
{
    json_t *paths = doc_paths(state);
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        if (!router_has(0, path))
            fail_msg("docs/openapi.json has %s, which the router lacks", path);
        const char *key;
        json_t *op;
        json_object_foreach(item, key, op) {
            for (size_t k = 0; k < NOPS; k++)
                if (strcmp(key, ops[k].key) == 0 && !router_has(ops[k].bit, path))
                    fail_msg("docs/openapi.json has %s %s, which the router lacks", key,
                             path);
        }
    }
}

/* The {parameters} of each documented path are declared as path parameters. */
static void test_path_parameters_declared(void **state)
{
    json_t *paths = doc_paths(state);
    const char *path;
    json_t *item;
    json_object_foreach(paths, path, item) {
        for (const char *p = strchr(path, '{'); p; p = strchr(p + 1, '{')) {
            const char *e = strchr(p, '}');
            assert_non_null(e);
            char name[64];
            snprintf(name, sizeof(name), "%.*s", (int)(e - p - 1), p + 1);
            const char *key;
            json_t *op;
            json_object_foreach(item, key, op) {
                int is_op = 0;
                for (size_t k = 0; k < NOPS; k++)
                    is_op |= strcmp(key, ops[k].key) == 0;
                if (!is_op)
                    continue;
                /* Declared on the operation or on the path item. */
                int found = 0;
                json_t *lists[2] = {json_object_get(op, "parameters"),
                                    json_object_get(item, "parameters")};
                for (int l = 0; l < 2; l++) {
                    size_t i;
                    json_t *prm;
                    json_array_foreach(lists[l], i, prm) {
                        json_t *ref = json_object_get(prm, "$ref");
                        if (ref) {
                            /* "#/components/parameters/<name>" */
                            const char *s = json_string_value(ref);
                            const char *slash = s ? strrchr(s, '/') : NULL;
                            json_t *c = json_object_get(json_object_get(
                                json_object_get(*state, "components"), "parameters"),
                                slash ? slash + 1 : "");
                            prm = c ? c : prm;
                        }
                        const char *in = json_string_value(json_object_get(prm, "in"));
                        const char *nm = json_string_value(json_object_get(prm, "name"));
                        if (in && nm && !strcmp(in, "path") && !strcmp(nm, name))
                            found = 1;
                    }
                }
                if (!found)
                    fail_msg("%s %s does not declare path parameter '%s'", key, path,
                             name);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_shape),
        cmocka_unit_test(test_every_route_documented),
        cmocka_unit_test(test_no_undocumented_extras),
        cmocka_unit_test(test_path_parameters_declared),
    };
    return cmocka_run_group_tests(tests, doc_setup, doc_teardown);
}
