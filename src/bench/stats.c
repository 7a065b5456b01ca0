/*
 * The result of a benchmark run: vLLM's calculate_metrics() over our
 * per-request records, plus the corrected (from-scheduled) latencies,
 * errors by category and where the token counts came from; and the two
 * ways of showing it, vLLM's JSON members and its text table.
 *
 * Each distribution is gathered into one scratch array, sorted, and reduced
 * with numpy's definitions (see stats.h), so figures agree with vLLM's to
 * the last printed digit on the same records.
 */
#include "bench/stats.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define NS_PER_MS 1e6
#define NS_PER_S 1000000000LL
/* Peak-rate buckets are skipped for a span longer than this (bad clocks). */
#define PEAK_MAX_SECONDS (7 * 24 * 3600)

static const double default_pcts[] = {50, 90, 95, 99};

static const char *const err_names[BENCH_E__COUNT] = {
    [BENCH_OK] = "ok",
    [BENCH_E_CONNECT] = "connect",
    [BENCH_E_RESET] = "reset",
    [BENCH_E_TIMEOUT] = "timeout",
    [BENCH_E_HTTP_4XX] = "http_4xx",
    [BENCH_E_HTTP_429] = "http_429",
    [BENCH_E_HTTP_5XX] = "http_5xx",
    [BENCH_E_STREAM_ERROR] = "stream_error",
    [BENCH_E_TRUNCATED] = "truncated",
    [BENCH_E_MALFORMED] = "malformed",
    [BENCH_E_OVERSIZED] = "oversized",
};

/* Key stem, table label and table header of each metric. */
static const struct {
    const char *key, *label, *header;
} metrics[BENCH_M__COUNT] = {
    [BENCH_M_TTFT] = {"ttft", "TTFT", "Time to First Token"},
    [BENCH_M_TPOT] = {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
    [BENCH_M_ITL] = {"itl", "ITL", "Inter-token Latency"},
    [BENCH_M_E2EL] = {"e2el", "E2EL", "End-to-end Latency"},
    [BENCH_M_QUEUE] = {"queue", "Queue", "Queueing Delay (sent - scheduled)"},
    [BENCH_M_TTFT_SCHED] = {"ttft_from_scheduled", "TTFT sched",
                            "TTFT from Scheduled (corrected)"},
    [BENCH_M_E2EL_SCHED] = {"e2el_from_scheduled", "E2EL sched",
                            "E2EL from Scheduled (corrected)"},
};

const char *bench_err_name(int err)
{
    return err >= 0 && err < BENCH_E__COUNT ? err_names[err] : "unknown";
}

const char *bench_tok_src_name(int src)
{
    switch (src) {
    case BENCH_TOK_EVENTS: return "events";
    case BENCH_TOK_USAGE: return "usage";
    case BENCH_TOK_DETAILS: return "details";
    case BENCH_TOK_SRC_MIXED: return "mixed";
    default: return NULL;
    }
}

const char *bench_metric_name(int m)
{
    return m >= 0 && m < BENCH_M__COUNT ? metrics[m].key : "unknown";
}

/* --- statistics --- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    /* numpy "linear": virtual index (n - 1) * q, then _lerp(a, b, t). */
    double vi = (double)(n - 1) * (p / 100.0);
    double fl = floor(vi);
    size_t lo = fl <= 0 ? 0 : fl >= (double)(n - 1) ? n - 1 : (size_t)fl;
    size_t hi = lo + 1 < n ? lo + 1 : n - 1;
    double t = vi - fl, a = sorted[lo], b = sorted[hi];
    double diff = b - a;
    /* numpy computes from the nearer end for accuracy. */
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

/* Sorts x[0..n) and fills *out with its statistics at pcts[0..npct). */
static void dist_compute(double *x, size_t n, const double *pcts, int npct,
                         struct bench_dist *out)
{
    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n == 0)
        return;
    qsort(x, n, sizeof(*x), cmp_double);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    double mean = sum / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    out->mean = mean;
    out->std = sqrt(ss / (double)n);
    /* np.median: the middle value, or the mean of the two middle ones. */
    out->median = n % 2 ? x[n / 2] : (x[n / 2 - 1] + x[n / 2]) / 2.0;
    for (int i = 0; i < npct; i++)
        out->pct[i] = bench_percentile(x, n, pcts[i]);
}

/* --- gathering --- */

static int counted(const struct bench_req *r)
{
    return !r->warmup && r->err == BENCH_OK;
}

/* Received a content event, with times in order (sent <= first <= last). */
static int has_content(const struct bench_req *r)
{
    return r->first_ns > 0 && r->sent_ns <= r->first_ns && r->first_ns <= r->last_ns;
}

static double ms(int64_t ns)
{
    return (double)ns / NS_PER_MS;
}

/* TPOT in ms of a request with content; 0 when output_tokens <= 1 (as vLLM's goodput). */
static double tpot_ms(const struct bench_req *r)
{
    if (r->output_tokens <= 1)
        return 0.0;
    return ms(r->last_ns - r->first_ns) / (double)(r->output_tokens - 1);
}

/* Writes metric m's samples from the counted requests into x; returns how many. */
static size_t gather(int m, const struct bench_req *reqs, size_t n, double *x)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_req *r = &reqs[i];
        if (!counted(r))
            continue;
        if (m == BENCH_M_QUEUE) {
            x[k++] = ms(r->sent_ns - r->scheduled_ns);
            continue;
        }
        if (!has_content(r))
            continue;
        switch (m) {
        case BENCH_M_TTFT: x[k++] = ms(r->first_ns - r->sent_ns); break;
        case BENCH_M_TPOT:
            if (r->output_tokens > 1)
                x[k++] = tpot_ms(r);
            break;
        case BENCH_M_ITL:
            for (int32_t j = 0; r->itl_ns && j < r->itl_len; j++)
                x[k++] = ms(r->itl_ns[j]);
            break;
        case BENCH_M_E2EL: x[k++] = ms(r->last_ns - r->sent_ns); break;
        case BENCH_M_TTFT_SCHED: x[k++] = ms(r->first_ns - r->scheduled_ns); break;
        case BENCH_M_E2EL_SCHED: x[k++] = ms(r->last_ns - r->scheduled_ns); break;
        default: break;
        }
    }
    return k;
}

/* 1 when completed request r meets every SLO set in slo. */
static int is_good(const struct bench_req *r, const struct bench_slo *slo)
{
    if (!has_content(r))
        return 0;
    if (slo->ttft_ms > 0 && !(ms(r->first_ns - r->sent_ns) <= slo->ttft_ms))
        return 0;
    if (slo->tpot_ms > 0 && !(tpot_ms(r) <= slo->tpot_ms))
        return 0;
    if (slo->e2el_ms > 0 && !(ms(r->last_ns - r->sent_ns) <= slo->e2el_ms))
        return 0;
    return 1;
}

/* Counts, totals, errors, goodput and token source; returns the scratch size needed. */
static size_t tally(struct bench_summary *s, const struct bench_req *reqs, size_t n,
                    int has_slo)
{
    unsigned srcmask = 0;
    size_t need = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_req *r = &reqs[i];
        if (r->warmup)
            continue;
        if (r->err != BENCH_OK) {
            s->failed++;
            if (r->err < BENCH_E__COUNT)
                s->errors[r->err]++;
            continue;
        }
        s->completed++;
        s->total_input_tokens += r->input_tokens > 0 ? r->input_tokens : 0;
        s->total_output_tokens += r->output_tokens > 0 ? r->output_tokens : 0;
        if (r->tok_src <= BENCH_TOK_DETAILS)
            srcmask |= 1u << r->tok_src;
        if (has_slo && is_good(r, &s->slo))
            s->good++;
        if (has_content(r) && r->itl_ns && r->itl_len > 0)
            need += (size_t)r->itl_len;
    }
    s->tok_src = BENCH_TOK_SRC_NONE;
    for (int src = 0; src <= BENCH_TOK_DETAILS; src++)
        if (srcmask == 1u << src)
            s->tok_src = src;
    if (srcmask && s->tok_src == BENCH_TOK_SRC_NONE)
        s->tok_src = BENCH_TOK_SRC_MIXED;
    return need > (size_t)s->completed ? need : (size_t)s->completed;
}

/*
 * vLLM's peak figures: 1-s buckets from the earliest send; each content
 * event adds 1 to its bucket; a request is active in every bucket from its
 * send to its last event. Returns 0 or ERR_NOMEM.
 */
static int peaks(struct bench_summary *s, const struct bench_req *reqs, size_t n)
{
    int64_t t0 = INT64_MAX, t1 = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        if (counted(&reqs[i]) && has_content(&reqs[i])) {
            t0 = reqs[i].sent_ns < t0 ? reqs[i].sent_ns : t0;
            t1 = reqs[i].last_ns > t1 ? reqs[i].last_ns : t1;
        }
    }
    if (t0 < 0 || t0 == INT64_MAX || t1 < t0 || (t1 - t0) / NS_PER_S >= PEAK_MAX_SECONDS)
        return 0;
    size_t nb = (size_t)((t1 - t0 + NS_PER_S - 1) / NS_PER_S) + 1;
    int64_t *tok = mem_calloc(nb, sizeof(*tok));
    int64_t *act = mem_calloc(nb + 1, sizeof(*act)); /* +1 -1 marks, summed below */
    if (!tok || !act) {
        mem_free(tok);
        mem_free(act);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct bench_req *r = &reqs[i];
        if (!counted(r) || !has_content(r))
            continue;
        int64_t t = r->first_ns;
        tok[(t - t0) / NS_PER_S]++;
        for (int32_t j = 0; r->itl_ns && j < r->itl_len; j++) {
            /* A gap that would pass the last event is bad data: stop there. */
            if (r->itl_ns[j] < 0 || r->itl_ns[j] > t1 - t)
                break;
            t += r->itl_ns[j];
            tok[(t - t0) / NS_PER_S]++;
        }
        size_t b0 = (size_t)((r->sent_ns - t0) / NS_PER_S);
        size_t b1 = (size_t)((r->last_ns - t0) / NS_PER_S);
        if (r->last_ns >= r->sent_ns && b1 < nb) {
            act[b0]++;
            act[b1 + 1]--;
        }
    }
    int64_t run = 0;
    for (size_t b = 0; b < nb; b++) {
        run += act[b];
        if ((double)tok[b] > s->max_output_tokens_per_s)
            s->max_output_tokens_per_s = (double)tok[b];
        if (run > s->max_concurrent_requests)
            s->max_concurrent_requests = run;
    }
    mem_free(tok);
    mem_free(act);
    return 0;
}

static int check_args(const struct bench_slo *slo, const double *pcts, int npct,
                      struct err_detail *d)
{
    if (npct < 0 || npct > BENCH_PCT_MAX)
        return err_set(d, ERR_RANGE, "percentiles", "at most %d percentiles", BENCH_PCT_MAX);
    for (int i = 0; i < npct; i++)
        if (!(pcts[i] >= 0.0 && pcts[i] <= 100.0))
            return err_set(d, ERR_RANGE, "percentiles", "percentile %g is outside [0, 100]",
                           pcts[i]);
    if (slo && (!(slo->ttft_ms >= 0) || !(slo->tpot_ms >= 0) || !(slo->e2el_ms >= 0)))
        return err_set(d, ERR_RANGE, "goodput", "SLOs must be >= 0 ms (0: unset)");
    return 0;
}

/* v per second over duration_s, divided as vLLM does; 0 for a non-positive duration. */
static double per_second(double v, double duration_s)
{
    return duration_s > 0 ? v / duration_s : 0.0;
}

int bench_summarize(struct bench_summary *s, const struct bench_req *reqs, size_t n,
                    double duration_s, const struct bench_slo *slo, const double *pcts,
                    int npct, struct err_detail *d)
{
    if (!pcts || npct == 0) {
        pcts = default_pcts;
        npct = (int)(sizeof(default_pcts) / sizeof(default_pcts[0]));
    }
    int rc = check_args(slo, pcts, npct, d);
    if (rc)
        return rc;
    memset(s, 0, sizeof(*s));
    s->duration = duration_s;
    s->npct = npct;
    memcpy(s->pcts, pcts, (size_t)npct * sizeof(*pcts));
    int has_slo = slo && (slo->ttft_ms > 0 || slo->tpot_ms > 0 || slo->e2el_ms > 0);
    if (has_slo)
        s->slo = *slo;
    size_t need = tally(s, reqs, n, has_slo);

    double *x = mem_malloc((need ? need : 1) * sizeof(*x));
    if (!x || peaks(s, reqs, n)) {
        mem_free(x);
        return err_set(d, ERR_NOMEM, "", "out of memory summarizing %zu requests", n);
    }
    for (int m = 0; m < BENCH_M__COUNT; m++)
        dist_compute(x, gather(m, reqs, n, x), s->pcts, s->npct, &s->m[m]);
    mem_free(x);

    s->request_throughput = per_second((double)s->completed, duration_s);
    s->request_goodput = has_slo ? per_second((double)s->good, duration_s) : NAN;
    s->output_throughput = per_second((double)s->total_output_tokens, duration_s);
    s->total_token_throughput =
        per_second((double)(s->total_input_tokens + s->total_output_tokens), duration_s);
    return 0;
}

/* --- parsing of command-line values --- */

static const char *skip_sep(const char *p)
{
    while (*p == ',' || isspace((unsigned char)*p))
        p++;
    return p;
}

/* Reads a finite number at p into *v; returns the end, or NULL. */
static const char *read_num(const char *p, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(*v))
        return NULL;
    return end;
}

int bench_slo_parse(const char *spec, struct bench_slo *slo, struct err_detail *d)
{
    memset(slo, 0, sizeof(*slo));
    for (const char *p = skip_sep(spec); *p; p = skip_sep(p)) {
        double *dst = NULL;
        size_t klen = strcspn(p, ":, \t\n");
        if (klen == 4 && strncmp(p, "ttft", 4) == 0)
            dst = &slo->ttft_ms;
        else if (klen == 4 && strncmp(p, "tpot", 4) == 0)
            dst = &slo->tpot_ms;
        else if (klen == 4 && strncmp(p, "e2el", 4) == 0)
            dst = &slo->e2el_ms;
        if (!dst || p[klen] != ':')
            return err_set(d, ERR_INVAL, "goodput",
                           "expected ttft:MS, tpot:MS or e2el:MS at \"%.20s\"", p);
        if (*dst > 0)
            return err_set(d, ERR_INVAL, "goodput", "%.4s is given twice", p);
        double v;
        const char *end = read_num(p + klen + 1, &v);
        if (!end || (*end && *end != ',' && !isspace((unsigned char)*end)) || !(v > 0))
            return err_set(d, ERR_INVAL, "goodput", "%.4s needs a number of ms > 0", p);
        *dst = v;
        p = end;
    }
    return 0;
}

int bench_pcts_parse(const char *spec, double *out, int *n, struct err_detail *d)
{
    int k = 0;
    for (const char *p = skip_sep(spec); *p; p = skip_sep(p)) {
        double v;
        const char *end = read_num(p, &v);
        if (!end || (*end && *end != ',' && !isspace((unsigned char)*end)))
            return err_set(d, ERR_INVAL, "percentiles", "not a number at \"%.20s\"", p);
        if (!(v >= 0.0 && v <= 100.0))
            return err_set(d, ERR_RANGE, "percentiles", "percentile %g is outside [0, 100]", v);
        if (k == BENCH_PCT_MAX)
            return err_set(d, ERR_RANGE, "percentiles", "at most %d percentiles", BENCH_PCT_MAX);
        out[k++] = v;
        p = end;
    }
    if (k == 0)
        return err_set(d, ERR_INVAL, "percentiles", "no percentile given");
    *n = k;
    return 0;
}

/* --- output --- */

/* Python's p_word: "99" for whole numbers, else the shortest repr ("99.9"). */
static void pct_word(double p, char *out, size_t outlen)
{
    if (p == floor(p))
        snprintf(out, outlen, "%d", (int)p);
    else
        jw_fmt_double(out, outlen, p);
}

static void json_metric(const struct bench_summary *s, int m, struct jw *w)
{
    const struct bench_dist *dd = &s->m[m];
    const char *k = metrics[m].key;
    char key[96], pw[40];
    snprintf(key, sizeof(key), "mean_%s_ms", k);
    jw_key(w, key);
    jw_num(w, dd->mean);
    snprintf(key, sizeof(key), "median_%s_ms", k);
    jw_key(w, key);
    jw_num(w, dd->median);
    snprintf(key, sizeof(key), "std_%s_ms", k);
    jw_key(w, key);
    jw_num(w, dd->std);
    for (int i = 0; i < s->npct; i++) {
        pct_word(s->pcts[i], pw, sizeof(pw));
        snprintf(key, sizeof(key), "p%s_%s_ms", pw, k);
        jw_key(w, key);
        jw_num(w, dd->pct[i]);
    }
}

void bench_summary_json(const struct bench_summary *s, struct jw *w)
{
    jw_key(w, "duration");
    jw_num(w, s->duration);
    jw_key(w, "completed");
    jw_i64(w, s->completed);
    jw_key(w, "failed");
    jw_i64(w, s->failed);
    jw_key(w, "total_input_tokens");
    jw_i64(w, s->total_input_tokens);
    jw_key(w, "total_output_tokens");
    jw_i64(w, s->total_output_tokens);
    jw_key(w, "request_throughput");
    jw_num(w, s->request_throughput);
    jw_key(w, "request_goodput");
    jw_num(w, s->request_goodput); /* NAN (no SLO) writes null */
    jw_key(w, "output_throughput");
    jw_num(w, s->output_throughput);
    jw_key(w, "total_token_throughput");
    jw_num(w, s->total_token_throughput);
    jw_key(w, "max_output_tokens_per_s");
    jw_num(w, s->max_output_tokens_per_s);
    jw_key(w, "max_concurrent_requests");
    jw_i64(w, s->max_concurrent_requests);
    for (int m = 0; m < BENCH_M__COUNT; m++)
        json_metric(s, m, w);
    jw_key(w, "error_counts");
    jw_obj_open(w);
    for (int e = 1; e < BENCH_E__COUNT; e++) {
        jw_key(w, err_names[e]);
        jw_i64(w, s->errors[e]);
    }
    jw_obj_close(w);
    jw_key(w, "token_count_source");
    jw_cstr(w, bench_tok_src_name(s->tok_src));
}

/* Python's "{s:{c}^{n}}": s centred in 50 columns of fill, the odd column on the right. */
static void rule(FILE *f, const char *title, char fill)
{
    int len = (int)strlen(title), pad = len < 50 ? 50 - len : 0;
    for (int i = 0; i < pad / 2; i++)
        fputc(fill, f);
    fputs(title, f);
    for (int i = 0; i < pad - pad / 2; i++)
        fputc(fill, f);
    fputc('\n', f);
}

static void row_i(FILE *f, const char *label, int64_t v)
{
    char num[32];
    snprintf(num, sizeof(num), "%lld", (long long)v);
    fprintf(f, "%-40s %-10s\n", label, num);
}

static void row_f(FILE *f, const char *label, double v)
{
    fprintf(f, "%-40s %-10.2f\n", label, v);
}

static void table_metric(const struct bench_summary *s, int m, FILE *f)
{
    const struct bench_dist *dd = &s->m[m];
    const char *name = metrics[m].label;
    char label[96], pw[40];
    rule(f, metrics[m].header, '-');
    snprintf(label, sizeof(label), "Mean %s (ms):", name);
    row_f(f, label, dd->mean);
    snprintf(label, sizeof(label), "Median %s (ms):", name);
    row_f(f, label, dd->median);
    for (int i = 0; i < s->npct; i++) {
        pct_word(s->pcts[i], pw, sizeof(pw));
        snprintf(label, sizeof(label), "P%s %s (ms):", pw, name);
        row_f(f, label, dd->pct[i]);
    }
}

void bench_summary_table(const struct bench_summary *s, FILE *f)
{
    rule(f, " Serving Benchmark Result ", '=');
    row_i(f, "Successful requests:", s->completed);
    row_i(f, "Failed requests:", s->failed);
    if (s->max_concurrency > 0)
        row_i(f, "Maximum request concurrency:", s->max_concurrency);
    if (s->request_rate > 0 && isfinite(s->request_rate))
        row_f(f, "Request rate configured (RPS):", s->request_rate);
    row_f(f, "Benchmark duration (s):", s->duration);
    row_i(f, "Total input tokens:", s->total_input_tokens);
    row_i(f, "Total generated tokens:", s->total_output_tokens);
    row_f(f, "Request throughput (req/s):", s->request_throughput);
    if (!isnan(s->request_goodput))
        row_f(f, "Request goodput (req/s):", s->request_goodput);
    row_f(f, "Output token throughput (tok/s):", s->output_throughput);
    row_f(f, "Peak output token throughput (tok/s):", s->max_output_tokens_per_s);
    row_f(f, "Peak concurrent requests:", (double)s->max_concurrent_requests);
    row_f(f, "Total Token throughput (tok/s):", s->total_token_throughput);
    for (int m = 0; m < BENCH_M__COUNT; m++)
        table_metric(s, m, f);
    if (s->failed > 0) {
        rule(f, "Errors", '-');
        for (int e = 1; e < BENCH_E__COUNT; e++) {
            char label[64];
            snprintf(label, sizeof(label), "%s:", err_names[e]);
            if (s->errors[e])
                row_i(f, label, s->errors[e]);
        }
    }
    const char *src = bench_tok_src_name(s->tok_src);
    fprintf(f, "%-40s %-10s\n", "Token counts from:", src ? src : "-");
    fputs("==================================================\n", f);
}
