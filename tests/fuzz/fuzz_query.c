/*
 * Fuzz target: query strings.
 *
 * http/server.c hands each argument libmicrohttpd splits off to
 * http_query_add, so this target reproduces the whole path outside the
 * server:
 *  1. libmicrohttpd 0.9.75's splitting (MHD_parse_arguments_): on '&', then
 *     on the first '=', a literal '+' turned into ' ' (MHD_unescape_plus),
 *     the URL unescaper being the identity (server.c installs one), and an
 *     argument without '=' passed with a NULL value;
 *  2. http_query_add (http/router.c): strict percent-decoding with
 *     plus_space, UTF-8 check, at most HTTP_MAX_QUERY arguments, else
 *     bad_query;
 *  3. the readers of the filled struct http_req: http_query, and the API's
 *     parameter parsers (api_list_args of each list route, api_q_int,
 *     api_q_double, api_q_bool).
 *
 * Input: the query string (what follows '?'), up to a NUL.
 *
 * Properties (abort on violation): decoded keys and values are valid UTF-8;
 * http_query returns the first argument of a name; every error response
 * the API parsers write is valid JSON (so valid UTF-8).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "core/codec.h"
#include "core/mem.h"
#include "fuzz_util.h"
#include "http/http.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_query: property failed at line %d: %s\n",      \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* server.c's collect_arg: the real http_query_add. */
static int collect_arg(void *cls, const char *key, const char *value)
{
    return http_query_add(cls, key, value);
}

static void unescape_plus(char *s)
{
    for (; *s; s++)
        if (*s == '+')
            *s = ' ';
}

/* --- MHD_parse_arguments_ of libmicrohttpd 0.9.75 (identity unescaper) --- */
static void parse_arguments(char *args, struct http_req *r)
{
    while (args && args[0] != '\0') {
        char *equals = strchr(args, '=');
        char *amper = strchr(args, '&');
        if (!amper) {
            if (!equals) {
                unescape_plus(args);
                collect_arg(r, args, NULL);
                return;
            }
            *equals++ = '\0';
            unescape_plus(args);
            unescape_plus(equals);
            collect_arg(r, args, equals);
            return;
        }
        *amper++ = '\0';
        if (!equals || equals >= amper) {
            unescape_plus(args);
            if (!collect_arg(r, args, NULL))
                return;
            args = amper;
            continue;
        }
        *equals++ = '\0';
        unescape_plus(args);
        unescape_plus(equals);
        if (!collect_arg(r, args, equals))
            return;
        args = amper;
    }
}

static const char *no_header(const struct http_req *r, const char *name)
{
    (void)r, (void)name;
    return NULL;
}

/* After an API parser: its error body, when it wrote one, is valid JSON. */
static void check_resp(struct http_resp *resp, int rc, const char *what)
{
    if (rc) {
        CHECK(resp->status == 400);
        fz_check_json("fuzz_query", what, resp->body.p, resp->body.len);
    }
    buf_reset(&resp->body);
    resp->status = 0;
}

static const char *const models_params[] = {
    "q", "family", "license", "quantization", "tag", "min_params", "max_params",
    "min_context", NULL,
};
static const char *const hw_params[] = {"gpu", "provider", NULL};
static const char *const runs_params[] = {
    "model", "engine", "engine_version", "hardware", "gpu_count", "sweep_id", "dataset", NULL,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *query = malloc(size + 1);
    if (!query)
        return 0;
    if (size)
        memcpy(query, data, size);
    query[size] = '\0';

    struct http_req req;
    memset(&req, 0, sizeof(req));
    req.method = HTTP_GET;
    req.method_name = "GET";
    req.path = "/api/v1/models";
    req.body = "";
    req.header = no_header;
    parse_arguments(query, &req);

    CHECK(req.nquery >= 0 && req.nquery <= HTTP_MAX_QUERY);
    for (int i = 0; i < req.nquery; i++) {
        const char *k = req.query[i].key, *v = req.query[i].value;
        CHECK(k && v);
        CHECK(codec_utf8_valid(k, strlen(k)) && codec_utf8_valid(v, strlen(v)));
        /* http_query finds the first argument of that name. */
        int first = i;
        for (int j = 0; j < i; j++)
            if (strcmp(req.query[j].key, k) == 0) {
                first = j;
                break;
            }
        CHECK(http_query(&req, k) == req.query[first].value);
    }
    /* A name no argument has is not found. */
    char absent[24];
    for (int n = 0, taken = 1; taken; n++) {
        snprintf(absent, sizeof(absent), "absent%d", n);
        taken = 0;
        for (int i = 0; i < req.nquery; i++)
            taken |= strcmp(req.query[i].key, absent) == 0;
    }
    CHECK(http_query(&req, absent) == NULL);

    /* The API's readers of the query. */
    struct http_resp resp;
    memset(&resp, 0, sizeof(resp));
    buf_init(&resp.body, 1 << 20);
    struct cat_page pg;
    int has, b, rc;
    int64_t iv;
    double dv;
    rc = api_list_args(&req, &resp, models_params, &pg);
    check_resp(&resp, rc, "api_list_args(models)");
    if (!rc)
        CHECK(pg.limit >= 1 && pg.limit <= 200 && (!pg.cursor || *pg.cursor));
    rc = api_list_args(&req, &resp, hw_params, &pg);
    check_resp(&resp, rc, "api_list_args(hardware)");
    rc = api_list_args(&req, &resp, runs_params, &pg);
    check_resp(&resp, rc, "api_list_args(benchmarks)");
    rc = api_list_args(&req, &resp, runs_params + 1, &pg);
    check_resp(&resp, rc, "api_list_args(model benchmarks)");
    static const char *const ints[] = {"limit", "min_context", "gpu_count"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        rc = api_q_int(&req, &resp, ints[i], &has, &iv);
        check_resp(&resp, rc, "api_q_int");
    }
    static const char *const dbls[] = {"min_params", "max_params"};
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++) {
        rc = api_q_double(&req, &resp, dbls[i], &has, &dv);
        check_resp(&resp, rc, "api_q_double");
    }
    rc = api_q_bool(&req, &resp, "cascade", &b);
    check_resp(&resp, rc, "api_q_bool");
    CHECK(rc || b == 0 || b == 1);
    buf_free(&resp.body);

    for (int i = 0; i < req.nquery; i++) {
        mem_free(req.query[i].key);
        mem_free(req.query[i].value);
    }
    free(query);
    return 0;
}
