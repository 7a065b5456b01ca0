/*
 * Fuzz target: a whole request through api_dispatch, the server's dispatch
 * function, against a store seeded with the demo catalog and a few runs.
 * It reaches the parsers that are static in api/ (Content-Type media
 * types, the field recovery of out-of-range JSON numbers, Idempotency-Key
 * checks, query parameter parsing in each handler) together with routing,
 * bodies, cursors and ETags as the server combines them.
 *
 * Input, a small HTTP-like text:
 *   METHOD SP TARGET LF          TARGET = path [ "?" query ]
 *   (Name ":" value LF)*         headers (at most 16; CR before LF dropped)
 *   LF
 *   body                         the rest, as bytes
 * The query is split and decoded as the server does it (libmicrohttpd's
 * splitting, then http_query_add, which server.c's collect_arg calls).
 *
 * After a write that succeeded the store is reloaded, so every input starts
 * from the same catalog (up to run ids, which are random).
 *
 * Authentication is on, with a bootstrap admin key: an input without an
 * Authorization header is sent with that key (so the corpus reaches the
 * handlers), one with its own header exercises the credential checks.
 *
 * Properties (abort on violation): no 500 (an internal error is a bug by
 * docs/api.md); the status is one the API documents; a JSON response body
 * is valid JSON (so valid UTF-8); 405 carries Allow, 201 Location and ETag.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "core/mem.h"
#include "fuzz_store.h"
#include "http/http.h"

#define NRUNS 4
#define MAX_HDR 17
#define FUZZ_ADMIN_KEY "mc_abcdefgh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_api: property failed at line %d: %s\n",        \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

struct fake_conn {
    int nhdr;
    const char *name[MAX_HDR];
    const char *value[MAX_HDR];
};

static const char *get_header(const struct http_req *r, const char *name)
{
    const struct fake_conn *fc = r->conn;
    for (int i = 0; i < fc->nhdr; i++)
        if (strcasecmp(fc->name[i], name) == 0)
            return fc->value[i];
    return NULL;
}

/* server.c's collect_arg: the real http_query_add. */
static int collect_arg(struct http_req *r, const char *key, const char *value)
{
    return http_query_add(r, key, value);
}

static void unescape_plus(char *s)
{
    for (; *s; s++)
        if (*s == '+')
            *s = ' ';
}

/* MHD_parse_arguments_ of libmicrohttpd 0.9.75 with an identity unescaper. */
static void parse_arguments(char *args, struct http_req *r)
{
    while (args && args[0] != '\0') {
        char *equals = strchr(args, '=');
        char *amper = strchr(args, '&');
        if (!amper) {
            if (equals)
                *equals++ = '\0';
            unescape_plus(args);
            if (equals)
                unescape_plus(equals);
            collect_arg(r, args, equals);
            return;
        }
        *amper++ = '\0';
        if (!equals || equals >= amper) {
            unescape_plus(args);
            if (!collect_arg(r, args, NULL))
                return;
        } else {
            *equals++ = '\0';
            unescape_plus(args);
            unescape_plus(equals);
            if (!collect_arg(r, args, equals))
                return;
        }
        args = amper;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fs_open(NRUNS);
    api_init(fs_db, NULL);
    struct api_auth_opts ao = {.jwt_ttl_s = 900, .bootstrap_key = FUZZ_ADMIN_KEY};
    struct err_detail d;
    if (api_auth_init(&ao, &d)) {
        fprintf(stderr, "fuzz_api: api_auth_init: %s\n", d.msg);
        abort();
    }
    return 0;
}

/* Splits off the next line of [*p, end): NUL-terminates it in place. */
static char *next_line(char **p, char *end)
{
    if (*p >= end)
        return NULL;
    char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
        nl = end;
    *nl = '\0';
    if (nl > s && nl[-1] == '\r')
        nl[-1] = '\0';
    *p = nl + 1;
    return s;
}

static const char *resp_header(const struct http_resp *r, const char *name)
{
    for (int i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdr[i].name, name) == 0)
            return r->hdr[i].value;
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* One writable heap copy, NUL-terminated; lines are cut in place. */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    char *p = text, *end = text + size;

    char *line = next_line(&p, end);
    if (!line) {
        free(text);
        return 0;
    }
    char *sp = strchr(line, ' ');
    const char *method = line, *target = sp ? sp + 1 : "/";
    if (sp)
        *sp = '\0';

    struct fake_conn fc;
    memset(&fc, 0, sizeof(fc));
    while ((line = next_line(&p, end)) && *line) {
        char *colon = strchr(line, ':');
        if (!colon || fc.nhdr == MAX_HDR - 1)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        fc.name[fc.nhdr] = line;
        fc.value[fc.nhdr++] = v;
    }
    if (!get_header(&(struct http_req){.conn = &fc}, "Authorization")) {
        fc.name[fc.nhdr] = "Authorization";
        fc.value[fc.nhdr++] = "Bearer " FUZZ_ADMIN_KEY;
    }
    const char *body = p < end ? p : "";
    size_t body_len = p < end ? (size_t)(end - p) : 0;

    /* Path and query: copies, as the server's are separate strings. */
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    char *path = mem_strndup(target, plen);
    char *query = mem_strdup(q ? q + 1 : "");
    CHECK(path && query);

    struct http_req req;
    memset(&req, 0, sizeof(req));
    req.method = http_method_parse(method);
    req.method_name = method;
    req.path = path;
    req.body = body;
    req.body_len = body_len;
    req.header = get_header;
    req.conn = &fc;
    parse_arguments(query, &req);

    struct http_resp resp;
    memset(&resp, 0, sizeof(resp));
    buf_init(&resp.body, (size_t)1 << 30);
    resp.status = 500;
    api_dispatch(&req, &resp);

    static const int known[] = {200, 201, 204, 304, 400, 401, 403, 404, 405, 409, 412, 413,
                                415, 422, 503};
    int ok = 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        ok |= resp.status == known[i];
    if (!ok) {
        fprintf(stderr, "fuzz_api: %s %s answered %d: %.*s\n", method, target, resp.status,
                (int)resp.body.len, resp.body.p ? resp.body.p : "");
        abort();
    }
    CHECK(resp.nhdr >= 0 && resp.nhdr <= HTTP_MAX_HEADERS);
    if (resp.body.len && resp.content_type && strstr(resp.content_type, "json")) {
        char what[96];
        snprintf(what, sizeof(what), "the %d response", resp.status);
        fz_check_json("fuzz_api", what, resp.body.p, resp.body.len);
    }
    if (resp.status == 405)
        CHECK(resp_header(&resp, "Allow") != NULL);
    if (resp.status == 201)
        CHECK(resp_header(&resp, "Location") &&
              (resp_header(&resp, "ETag") || !strncmp(path, "/api/v1/keys", 12)));
    if (resp.status == 401)
        CHECK(resp_header(&resp, "WWW-Authenticate") != NULL);
    if (resp.status == 304)
        CHECK(resp.body.len == 0);

    /* A write that took effect: reload the catalog. */
    if (resp.status >= 200 && resp.status < 300 &&
        !(req.method & (HTTP_GET | HTTP_HEAD | HTTP_OPTIONS)))
        fs_reset(NRUNS);

    buf_free(&resp.body);
    for (int i = 0; i < req.nparams; i++)
        mem_free(req.params[i]);
    for (int i = 0; i < req.nquery; i++) {
        mem_free(req.query[i].key);
        mem_free(req.query[i].value);
    }
    mem_free(path);
    mem_free(query);
    free(text);
    return 0;
}
