/*
 * Fuzz target: If-Match / If-None-Match parsing, cat_etag_matches.
 *
 * Input: the header value, a NUL byte, then the entity tag to compare with
 * (both as NUL-terminated heap copies). Without a NUL, the whole input is
 * the header and the tag is a real strong ETag as rec_etag writes it.
 *
 * Properties (abort on violation): the result is 0 or 1; weak_ok only ever
 * adds matches; "*" alone matches; a well-formed tag matches itself, alone
 * and inside a list.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_etag: property failed at line %d: %s\n",       \
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

static char *dupn(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* "\"...\"" with no other quote inside: a tag rec_etag could have made. */
static int well_formed(const char *e)
{
    size_t n = strlen(e);
    return n >= 2 && e[0] == '"' && e[n - 1] == '"' && !memchr(e + 1, '"', n - 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hn = nul ? (size_t)(nul - data) : size;
    char *header = dupn(data, hn);
    char *etag = nul ? dupn(nul + 1, size - hn - 1) : dupn((const uint8_t *)"\"0f3a9c1d2e4b5a69\"", 18);
    if (!header || !etag) {
        free(header);
        free(etag);
        return 0;
    }

    int strong = cat_etag_matches(header, etag, 0);
    int weak = cat_etag_matches(header, etag, 1);
    CHECK(strong == 0 || strong == 1);
    CHECK(weak == 0 || weak == 1);
    CHECK(!strong || weak);
    CHECK(cat_etag_matches(NULL, etag, 1) == 0);
    CHECK(cat_etag_matches("*", etag, 0) == 1);

    if (well_formed(etag)) {
        CHECK(cat_etag_matches(etag, etag, 0) == 1);
        size_t n = strlen(etag);
        char *list = malloc(n + 32);
        CHECK(list);
        snprintf(list, n + 32, "\"x\", W/\"y\",%s ,\"z\"", etag);
        CHECK(cat_etag_matches(list, etag, 0) == 1);
        snprintf(list, n + 32, "W/%s", etag);
        CHECK(cat_etag_matches(list, etag, 0) == 0 && cat_etag_matches(list, etag, 1) == 1);
        free(list);
    }

    /* The header against a tag taken from the header itself. */
    cat_etag_matches(header, header, 0);
    cat_etag_matches(etag, header, 1);

    free(header);
    free(etag);
    return 0;
}
