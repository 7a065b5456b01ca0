/*
 * Validation of what reaches the jobs queue from outside (see jobs.h): a
 * job's spec, checked literally as `modelcat bench` checks its flags (the
 * members become argv for the same cfg_load(CMD_BENCH), then the command's
 * cross-field checks, replicated from cli/bench.c's parse_opts and
 * load_dataset because those are static there and the server does not link
 * the bench library), labels, and the bodies of the worker protocol.
 *
 * Settings refused in a job: where results go (result_json, requests_out,
 * catalog, catalog_api_key: the worker publishes to the API it claimed
 * from), the logging of the worker process (log_level, log_format), and
 * api_key: a spec is readable by every reader of the API, so the engine's
 * key comes from the worker's environment (MODELCAT_API_KEY), never a job.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/stats.h"
#include "catalog/jobs.h"
#include "core/codec.h"
#include "core/config.h"
#include "core/jw.h"
#include "core/mem.h"

#define MAX_ARGS 128
#define SWEEP_MAX 64
#define HEADERS_MAX 32

static const char *const refused[] = {
    "result-json", "requests-out", "catalog", "catalog-api-key", "api-key",
    "log-level", "log-format", NULL,
};

/*
 * The error field for member k: k itself when it is short printable ASCII
 * (err_detail keeps ERR_FIELD_LEN bytes, and a cut must not split a UTF-8
 * character), else `whole`.
 */
static const char *field_of(const char *k, const char *whole)
{
    size_t n = strlen(k);
    if (n == 0 || n >= 48)
        return whole;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e)
            return whole;
    return k;
}

/* The bench setting named by member (underscore form), or -1. */
static int bench_setting(const char *member, char *flag, size_t cap)
{
    size_t n = strlen(member);
    if (n == 0 || n >= cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = member[i];
        if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '_'))
            return -1;
        flag[i] = ch == '_' ? '-' : ch;
    }
    flag[n] = '\0';
    for (int i = 0; i < CFG__COUNT; i++)
        if ((cfg_defs[i].cmds & CMD_BENCH) && strcmp(cfg_defs[i].name, flag) == 0)
            return i;
    return -1;
}

/* Appends "--flag=value" to the argument text (NUL-separated) and counts it. */
static int add_arg(struct buf *args, int *argc, const char *flag, const char *v, size_t n,
                   const char *member, struct err_detail *d)
{
    if (memchr(v, '\0', n))
        return err_set(d, ERR_INVAL, member, "%s must not hold a NUL character", member);
    if (*argc >= MAX_ARGS)
        return err_set(d, ERR_RANGE, member, "the spec has too many values");
    buf_puts(args, "--");
    buf_puts(args, flag);
    buf_putc(args, '=');
    buf_append(args, v, n);
    buf_putc(args, '\0');
    (*argc)++;
    return buf_err(args) ? err_set(d, ERR_RANGE, member, "the spec is too large") : 0;
}

/* Adds the flag of one member of the spec. */
static int member_arg(const char *member, json_t *v, struct buf *args, int *argc,
                      struct err_detail *d)
{
    char flag[48], num[40];
    int i = bench_setting(member, flag, sizeof(flag));
    if (i < 0)
        return err_set(d, ERR_INVAL, field_of(member, "spec"),
                       "unknown member '%s' of a job spec", field_of(member, "(unprintable)"));
    for (const char *const *r = refused; *r; r++)
        if (strcmp(*r, flag) == 0)
            return err_set(d, ERR_INVAL, member, "%s cannot be set in a job%s", member,
                           strcmp(flag, "api-key") == 0
                               ? " (a worker sends its own MODELCAT_API_KEY)" : "");
    enum cfg_type t = cfg_defs[i].type;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return 0; /* the default */
    case JSON_STRING:
        if (t == CFG_T_BOOL)
            break;
        return add_arg(args, argc, flag, json_string_value(v), json_string_length(v), member,
                       d);
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
        return t == CFG_T_BOOL ? err_set(d, ERR_INVAL, member, "%s must be true or false",
                                         member)
                               : add_arg(args, argc, flag, num, strlen(num), member, d);
    case JSON_REAL:
        if (t == CFG_T_BOOL || jw_fmt_double(num, sizeof(num), json_real_value(v)) < 0)
            break;
        return add_arg(args, argc, flag, num, strlen(num), member, d);
    case JSON_TRUE:
    case JSON_FALSE:
        if (t != CFG_T_BOOL)
            break;
        return add_arg(args, argc, flag, json_is_true(v) ? "1" : "0", 1, member, d);
    case JSON_ARRAY: {
        if (t != CFG_T_LIST)
            break;
        size_t k;
        json_t *e;
        json_array_foreach(v, k, e) {
            int rc;
            if (!json_is_string(e))
                return err_set(d, ERR_INVAL, member, "%s must be an array of strings",
                               member);
            if ((rc = add_arg(args, argc, flag, json_string_value(e), json_string_length(e),
                              member, d)))
                return rc;
        }
        return 0;
    }
    default:
        break;
    }
    return err_set(d, ERR_INVAL, member, "%s must be %s", member,
                   t == CFG_T_BOOL ? "true or false"
                   : t == CFG_T_LIST ? "a string or an array of strings"
                   : "a string or a number");
}

static int check_sweep(const char *sw, struct err_detail *d)
{
    int conc = !strncmp(sw, "concurrency=", 12);
    if (!*sw)
        return 0;
    if (!conc && strncmp(sw, "rate=", 5))
        return err_set(d, ERR_INVAL, "sweep", "sweep: want concurrency=1,4,16 or rate=1,2,4");
    const char *s = sw + (conc ? 12 : 5);
    int n = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        if (end == s || n == SWEEP_MAX || !isfinite(v) || !(v > 0) || (conc && v != floor(v)))
            return err_set(d, ERR_INVAL, "sweep", "sweep: at most %d positive %s", SWEEP_MAX,
                           conc ? "integers" : "numbers");
        n++;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return err_set(d, ERR_INVAL, "sweep", "sweep: bad list");
    }
    return n ? 0 : err_set(d, ERR_INVAL, "sweep", "sweep: bad list");
}

static int check_headers(const char *s, struct err_detail *d)
{
    int n = 0;
    while (*s) {
        size_t len = strcspn(s, "\n");
        const char *colon = memchr(s, ':', len);
        if (!colon || colon == s || memchr(s, '\r', len))
            return err_set(d, ERR_INVAL, "header", "header: '%.*s' is not 'Name: value'",
                           (int)(len > 64 ? 64 : len), s);
        if (++n > HEADERS_MAX)
            return err_set(d, ERR_RANGE, "header", "at most %d headers", HEADERS_MAX);
        s += len + (s[len] == '\n');
    }
    return 0;
}

static int check_url(const struct cfg *c, struct err_detail *d)
{
    const char *url = cfg_str(c, CFG_BENCH_BASE_URL);
    int curl = !strcmp(cfg_str(c, CFG_BENCH_TRANSPORT), "curl");
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return err_set(d, ERR_INVAL, "base_url", "base_url is not an http:// or https:// URL");
    if (!strncmp(url, "https://", 8) && !curl)
        return err_set(d, ERR_INVAL, "base_url", "an https base_url needs transport curl");
    const char *h = url + (url[4] == 's' ? 8 : 7);
    if (!*h || *h == '/')
        return err_set(d, ERR_INVAL, "base_url", "base_url has no host");
    return 0;
}

/* The checks of cli/bench.c that span several settings. */
static int cross_checks(json_t *spec, const struct cfg *c, struct err_detail *d)
{
    int rc;
    if ((cfg_int(c, CFG_BENCH_NUM_PROMPTS) == 0) == (cfg_double(c, CFG_BENCH_DURATION) == 0))
        return err_set(d, ERR_INVAL,
                       json_object_get(spec, "duration") ? "duration" : "num_prompts",
                       "give either num_prompts or duration (with num_prompts 0), not both");
    const char *rate = cfg_str(c, CFG_BENCH_REQUEST_RATE);
    double r = INFINITY, b = cfg_double(c, CFG_BENCH_BURSTINESS);
    if (strcmp(rate, "inf") != 0) {
        char *end;
        r = strtod(rate, &end);
        if (end == rate || *end || !(r > 0) || !isfinite(r))
            return err_set(d, ERR_INVAL, "request_rate",
                           "request_rate must be a positive number or \"inf\"");
        if (!(r * b < INFINITY) || !(1.0 / (r * b) < INFINITY))
            return err_set(d, ERR_RANGE, "request_rate",
                           "request_rate times burstiness is out of range");
    }
    /* The CLI's own parsers of those lists (bench/stats.h). */
    double pcts[BENCH_PCT_MAX];
    int npcts;
    struct bench_slo slo;
    if ((rc = bench_pcts_parse(cfg_str(c, CFG_BENCH_PERCENTILES), pcts, &npcts, d)) ||
        (rc = bench_slo_parse(cfg_str(c, CFG_BENCH_GOODPUT), &slo, d)) ||
        (rc = check_sweep(cfg_str(c, CFG_BENCH_SWEEP), d)) ||
        (rc = check_headers(cfg_str(c, CFG_BENCH_HEADER), d)) || (rc = check_url(c, d)))
        return rc;
    if (strcmp(cfg_str(c, CFG_BENCH_DATASET), "random") != 0 &&
        !*cfg_str(c, CFG_BENCH_DATASET_PATH))
        return err_set(d, ERR_INVAL, "dataset_path", "dataset %s needs dataset_path",
                       cfg_str(c, CFG_BENCH_DATASET));
    return 0;
}

/* Cuts s before a UTF-8 sequence that a bounded format split. */
static void utf8_trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && !codec_utf8_valid(s, n))
        n--;
    s[n] = '\0';
}

int job_spec_check(json_t *spec, struct err_detail *d)
{
    struct buf args;
    char *argv[MAX_ARGS + 1];
    struct cfg c;
    const char *k;
    json_t *v;
    int argc = 0, rc = 0;
    if (!json_is_object(spec))
        return err_set(d, ERR_INVAL, "spec", "a job spec is a JSON object");
    buf_init(&args, 2 * JOB_SPEC_MAX);
    json_object_foreach(spec, k, v) {
        if ((rc = member_arg(k, v, &args, &argc, d)))
            goto out;
    }
    static const char *const required[] = {"base_url", "model"};
    for (int i = 0; i < 2; i++) {
        json_t *m = json_object_get(spec, required[i]);
        if (!json_is_string(m) || !json_string_length(m)) {
            rc = err_set(d, ERR_INVAL, required[i], "%s is required", required[i]);
            goto out;
        }
    }
    argv[0] = "bench";
    for (size_t off = 0, i = 1; off < args.len; i++) {
        argv[i] = args.p + off;
        off += strlen(args.p + off) + 1;
    }
    argv[argc + 1] = NULL;
    if ((rc = cfg_load(&c, CMD_BENCH, argc + 1, argv, d))) {
        for (char *p = d->field; *p; p++) /* the member's name, not the flag's */
            if (*p == '-')
                *p = '_';
        goto out;
    }
    rc = cross_checks(spec, &c, d);
    cfg_free(&c);
out:
    buf_free(&args);
    if (rc) /* the messages quote values, cut to fit */
        utf8_trim(d->msg);
    return rc;
}

/* 1 when s (n bytes) is 1..JOB_LABEL_LEN of [A-Za-z0-9._/-]. */
static int label_text(const char *s, size_t n)
{
    if (n == 0 || n > JOB_LABEL_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || strchr("._/-", s[i])) || !s[i])
            return 0;
    return 1;
}

int job_labels_check(json_t *labels, const char *field, struct err_detail *d)
{
    const char *k;
    json_t *v;
    if (!labels || json_is_null(labels))
        return 0;
    if (!json_is_object(labels))
        return err_set(d, ERR_INVAL, field, "%s must be an object of strings", field);
    if (json_object_size(labels) > JOB_LABELS_MAX)
        return err_set(d, ERR_RANGE, field, "at most %d labels", JOB_LABELS_MAX);
    json_object_foreach(labels, k, v) {
        if (!label_text(k, strlen(k)) || !json_is_string(v) ||
            !label_text(json_string_value(v), json_string_length(v)))
            return err_set(d, ERR_INVAL, field,
                           "%s: keys and values are 1 to %d characters of"
                           " [A-Za-z0-9._/-]", field, JOB_LABEL_LEN);
    }
    return 0;
}

/* 1 when s is a UUID in its lowercase text form. */
static int uuid_shape(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* Compact JSON of an object member, at most max bytes, into *out (owned). */
static int dump_object(json_t *v, const char *field, size_t max, char **out, size_t *len,
                       struct err_detail *d)
{
    if (!json_is_object(v))
        return err_set(d, ERR_INVAL, field, "%s must be a JSON object", field);
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    if (n == 0 || n > max)
        return err_set(d, ERR_RANGE, field, "%s is larger than %zu bytes", field, max);
    char *s = mem_malloc(n + 1);
    if (!s)
        return err_set(d, ERR_NOMEM, field, "out of memory");
    if (json_dumpb(v, s, n, JSON_COMPACT) != n) {
        mem_free(s);
        return err_set(d, ERR_INTERNAL, field, "%s could not be written", field);
    }
    s[n] = '\0';
    *out = s;
    if (len)
        *len = n;
    return 0;
}

static int text_member(json_t *v, const char *field, size_t max, int printable,
                       const char **out, struct err_detail *d)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max)
        return err_set(d, ERR_INVAL, field, "%s must be a string of 1 to %zu bytes", field,
                       max);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if (s[i] == '\0' || (printable && ((unsigned char)s[i] < 0x20 ||
                                           (unsigned char)s[i] > 0x7e)))
            return err_set(d, ERR_INVAL, field, "%s must be %s", field,
                           printable ? "printable ASCII" : "text without NUL");
    *out = s;
    return 0;
}

static int run_ids_member(json_t *v, struct err_detail *d)
{
    size_t i;
    json_t *e;
    if (!json_is_array(v))
        return err_set(d, ERR_INVAL, "run_ids", "run_ids must be an array of run ids");
    if (json_array_size(v) > JOB_RUN_IDS_MAX)
        return err_set(d, ERR_RANGE, "run_ids", "at most %d run ids", JOB_RUN_IDS_MAX);
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || !uuid_shape(json_string_value(e), json_string_length(e)))
            return err_set(d, ERR_INVAL, "run_ids", "run_ids[%zu] is not a run id", i);
    }
    return 0;
}

/* Members each call accepts, NULL-ended. */
static const char *const *allowed(enum job_op op)
{
    static const char *const claim[] = {"worker", "labels", "lease_s", NULL};
    static const char *const hb[] = {"worker", "progress", NULL};
    static const char *const cp[] = {"worker", "checkpoint", "progress", "run_ids", NULL};
    static const char *const done[] = {"worker", "outcome", "reason", "run_ids", "progress",
                                       NULL};
    static const char *const rel[] = {"worker", "reason", "progress", NULL};
    switch (op) {
    case JOB_CLAIM: return claim;
    case JOB_HEARTBEAT: return hb;
    case JOB_CHECKPOINT: return cp;
    case JOB_COMPLETE: return done;
    default: return rel;
    }
}

int job_msg_parse(enum job_op op, json_t *body, struct job_msg *m, struct err_detail *d)
{
    const char *k;
    json_t *v;
    int rc;
    memset(m, 0, sizeof(*m));
    m->lease_s = JOB_LEASE_DEF;
    if (!json_is_object(body))
        return err_set(d, ERR_INVAL, NULL, "the body must be a JSON object");
    json_object_foreach(body, k, v) {
        const char *const *a = allowed(op);
        while (*a && strcmp(*a, k) != 0)
            a++;
        if (!*a)
            return err_set(d, ERR_INVAL, field_of(k, "body"), "unknown member '%s'",
                           field_of(k, "(unprintable)"));
    }
    if ((rc = text_member(json_object_get(body, "worker"), "worker", JOB_WORKER_MAX, 1,
                          &m->worker, d)))
        return rc;
    if ((v = json_object_get(body, "labels")) &&
        (rc = job_labels_check(v, "labels", d)))
        return rc;
    m->labels = json_is_object(v) ? v : NULL;
    if ((v = json_object_get(body, "lease_s"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > JOB_LEASE_MAX)
            return err_set(d, ERR_RANGE, "lease_s", "lease_s must be an integer of 1 to %d",
                           JOB_LEASE_MAX);
        m->lease_s = json_integer_value(v);
    }
    if ((v = json_object_get(body, "progress")) && !json_is_null(v) &&
        (rc = dump_object(v, "progress", JOB_PROGRESS_MAX, &m->progress, NULL, d)))
        return rc;
    if (op == JOB_CHECKPOINT &&
        (rc = dump_object(json_object_get(body, "checkpoint"), "checkpoint", (size_t)-1 / 2,
                          &m->checkpoint, &m->checkpoint_len, d)))
        return rc;
    if ((v = json_object_get(body, "run_ids")) && !json_is_null(v)) {
        if ((rc = run_ids_member(v, d)))
            return rc;
        m->run_ids = v;
    }
    if (op == JOB_COMPLETE) {
        const char *o = json_string_value(json_object_get(body, "outcome"));
        if (!o || (strcmp(o, "succeeded") && strcmp(o, "failed")))
            return err_set(d, ERR_INVAL, "outcome", "outcome must be succeeded or failed");
        m->succeeded = !strcmp(o, "succeeded");
    }
    v = json_object_get(body, "reason");
    if ((op == JOB_RELEASE || (v && !json_is_null(v))) &&
        (rc = text_member(v, "reason", JOB_REASON_MAX, 0, &m->reason, d)))
        return rc;
    return 0;
}

void job_msg_free(struct job_msg *m)
{
    mem_free(m->progress);
    mem_free(m->checkpoint);
    m->progress = m->checkpoint = NULL;
}
