/*
 * Fuzz target: the W3C traceparent parser (trace_parse_parent) and the
 * tracestate check (trace_state_ok).
 *
 * Input: the header value, bytes as received (not NUL-terminated for the
 * parser; a NUL-terminated heap copy for trace_state_ok).
 *
 * Properties (abort on violation): a value the parser accepts has exactly
 * the canonical form, formats back to the same bytes, and has non-zero
 * ids; a refused value leaves the output untouched; trace_state_ok never
 * accepts more than TRACE_STATE_MAX bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/trace.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_traceparent: property failed at line %d: %s\n",\
                    __LINE__, #cond);                                            \
            abort();                                                             \
        }                                                                        \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace_ctx c, zero;
    memset(&c, 0xa5, sizeof(c));
    memcpy(&zero, &c, sizeof(c));
    int rc = trace_parse_parent((const char *)data, size, &c);
    if (rc == 0) {
        char out[TRACE_PARENT_LEN + 1];
        static const uint8_t z[16];
        CHECK(size == TRACE_PARENT_LEN);
        trace_format_parent(&c, out);
        CHECK(memcmp(out, data, TRACE_PARENT_LEN) == 0);
        CHECK(memcmp(c.trace_id, z, 16) != 0 && memcmp(c.span_id, z, 8) != 0);
    } else {
        CHECK(rc == ERR_PARSE);
        CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
    }
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (trace_state_ok(s))
        CHECK(strlen(s) <= TRACE_STATE_MAX);
    free(s);
    return 0;
}
