/*
 * Fuzz target: the Prometheus text-format parser (telemetry/prom.c) that
 * reads dcgm-exporter and engine /metrics pages, and the two mappings on
 * top of it. Properties: the parser returns 0, ERR_PARSE or ERR_TOOBIG;
 * every sample it hands out has a well-formed metric name, at most
 * TEL_PROM_MAX_LABELS labels with well-formed, distinct names, and
 * NUL-terminated values no longer than the input; the mappings return a
 * count in range and utilisation within 0..100.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry/telemetry.h"

static size_t input_len;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_prom: %s\n", what);
    abort();
}

static int name_ok(const char *s, int colon)
{
    if (!*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int check(void *arg, const struct tel_prom_sample *s)
{
    (void)arg;
    if (!name_ok(s->name, 1))
        fail("bad metric name");
    if (s->nlabels < 0 || s->nlabels > TEL_PROM_MAX_LABELS)
        fail("label count out of range");
    for (int i = 0; i < s->nlabels; i++) {
        if (!name_ok(s->labels[i].name, 0))
            fail("bad label name");
        if (strlen(s->labels[i].value) > input_len)
            fail("label value longer than the input");
        for (int j = 0; j < i; j++)
            if (!strcmp(s->labels[i].name, s->labels[j].name))
                fail("repeated label");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct err_detail d;
    struct tel_gpu_sample g[8];
    struct tel_engine_sample e;
    const char *body = (const char *)data;
    input_len = size;
    err_clear(&d);
    int rc = tel_prom_parse(body, size, check, NULL, &d);
    if (rc != 0 && rc != ERR_PARSE && rc != ERR_TOOBIG)
        fail("unexpected return code");
    if (rc && !d.msg[0])
        fail("an error without a message");
    int n = tel_dcgm_map(body, size, 1, g, 8, &d);
    if (n > 8 || (n < 0 && n != rc))
        fail("dcgm map count");
    for (int i = 0; i < n; i++)
        if ((g[i].have & TEL_HAVE_UTIL) && !(g[i].util_pct >= 0 && g[i].util_pct <= 100))
            fail("utilisation out of range");
    n = tel_engine_map(body, size, 1, &e, &d);
    if (n != 0 && n != 1 && n != rc)
        fail("engine map result");
    return 0;
}
