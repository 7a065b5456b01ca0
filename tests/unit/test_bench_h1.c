/*
 * The benchmark client's HTTP/1.1 response parser (bench/h1.c): framing
 * by Content-Length, chunked coding and EOF over every read boundary, and
 * refusal of malformed or oversized input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "bench/h1.h"
#include "core/buf.h"

static int body_cb(void *arg, const char *p, size_t n)
{
    buf_append(arg, p, n);
    return 0;
}

/* Parses s split at cut; returns the h1_feed result, body in b, bytes used. */
static int parse_split(const char *s, size_t n, size_t cut, struct h1_parser *p, struct buf *b,
                       size_t *used_total)
{
    size_t used;
    h1_init(p, 0);
    buf_reset(b);
    int rc = h1_feed(p, s, cut, &used, body_cb, b);
    *used_total = used;
    if (rc != 0)
        return rc;
    assert_int_equal(used, cut);
    rc = h1_feed(p, s + cut, n - cut, &used, body_cb, b);
    *used_total += used;
    return rc;
}

static void check_every_split(const char *s, int status, const char *body, int keep)
{
    struct h1_parser p;
    struct buf b;
    size_t n = strlen(s), used;
    buf_init(&b, 1 << 16);
    for (size_t cut = 0; cut <= n; cut++) {
        assert_int_equal(parse_split(s, n, cut, &p, &b, &used), 1);
        assert_int_equal(used, n);
        assert_int_equal(p.status, status);
        assert_int_equal(p.keep_alive, keep);
        assert_string_equal(b.p ? b.p : "", body);
    }
    buf_free(&b);
}

static void test_content_length(void **state)
{
    (void)state;
    check_every_split("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
                      200, "hello", 1);
    check_every_split("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404, "", 1);
    check_every_split("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, "ok", 0);
    check_every_split("HTTP/1.1 200 OK\nConnection: close\ncontent-length: 1\n\nx", 200, "x", 0);
}

static void test_chunked(void **state)
{
    (void)state;
    check_every_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "7\r\ndata: a\r\n19;ext=1\r\n\n\ndata: {\"b\":\"cdefghijk\"}\r\n"
                      "0\r\nX-Trailer: 1\r\n\r\n",
                      200, "data: a\n\ndata: {\"b\":\"cdefghijk\"}", 1);
}

static void test_eof_delimited_body(void **state)
{
    (void)state;
    struct h1_parser p;
    struct buf b;
    size_t used;
    const char *s = "HTTP/1.1 200 OK\r\n\r\nstreamed until close";
    buf_init(&b, 4096);
    h1_init(&p, 0);
    assert_int_equal(h1_feed(&p, s, strlen(s), &used, body_cb, &b), 0);
    assert_int_equal(h1_eof(&p), 1);
    assert_string_equal(b.p, "streamed until close");
    assert_int_equal(p.keep_alive, 0);
    /* A Content-Length body cut short by EOF is truncated. */
    h1_init(&p, 0);
    s = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    assert_int_equal(h1_feed(&p, s, strlen(s), &used, body_cb, &b), 0);
    assert_int_equal(h1_eof(&p), ERR_PARSE);
    buf_free(&b);
}

static void test_pipelined_leftover_is_not_consumed(void **state)
{
    (void)state;
    struct h1_parser p;
    struct buf b;
    size_t used;
    const char *s = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n";
    buf_init(&b, 4096);
    h1_init(&p, 0);
    assert_int_equal(h1_feed(&p, s, strlen(s), &used, body_cb, &b), 1);
    assert_int_equal(used, strlen("HTTP/1.1 204 No Content\r\n\r\n"));
    buf_free(&b);
}

static int refused(const char *s)
{
    struct h1_parser p;
    struct buf b;
    size_t used;
    buf_init(&b, 4096);
    h1_init(&p, 0);
    int rc = h1_feed(&p, s, strlen(s), &used, body_cb, &b);
    buf_free(&b);
    return rc;
}

static void test_malformed(void **state)
{
    (void)state;
    assert_int_equal(refused("HTTP/2 200 OK\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 20 OK\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200OK\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("garbage\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
                     ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
                     ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "1\r\nabX\r\n"), ERR_PARSE);
    assert_int_equal(refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "fffffffffffffffff\r\n"), ERR_TOOBIG);
}

static void test_oversized_head(void **state)
{
    (void)state;
    static char big[H1_MAX_HEAD + 100];
    size_t n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX: ");
    memset(big + n, 'a', sizeof(big) - n - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(refused(big), ERR_TOOBIG);
    char many[8192];
    size_t k = (size_t)snprintf(many, sizeof(many), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < H1_MAX_HEADERS + 1; i++)
        k += (size_t)snprintf(many + k, sizeof(many) - k, "H%d: v\r\n", i);
    snprintf(many + k, sizeof(many) - k, "\r\n");
    assert_int_equal(refused(many), ERR_TOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_eof_delimited_body),
        cmocka_unit_test(test_pipelined_leftover_is_not_consumed),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversized_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
