/*
 * Benchmark runs: the resource description (the summary metrics use the
 * field names of vLLM's `bench serve` result), creation with per-request
 * samples and Idempotency-Key replay, the list filters and metric sorts,
 * the derived cost per million output tokens, and the GPU telemetry
 * summary a bench run with --gpu-telemetry sends.
 */
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "catalog/item.h"
#include "core/codec.h"
#include "core/timeutil.h"

#define LAT(m) \
    {"mean_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"median_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"std_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"p50_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"p90_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"p95_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}, \
    {"p99_" #m "_ms", FK_REAL, 0, 0, 1e12, NULL, 0}

static const char *chk_sweep(const char *s, size_t n);

/* Summary metrics are the fields from METRIC_FIRST to METRIC_LAST. */
#define METRIC_FIRST 13
#define METRIC_LAST 49
static const struct fld run_fields[] = {
    {"id", FK_TEXT, FF_SERVER | FF_KEY, 0, 0, NULL, 0},
    {"model", FK_TEXT, FF_REQ, 3, 128, chk_model_id, 0},
    {"engine", FK_TEXT, FF_REQ, 1, 32, chk_slug, 0},
    {"engine_version", FK_TEXT, 0, 1, 64, NULL, 0},
    {"engine_args", FK_TEXT, 0, 0, 4096, chk_printable, 0},
    {"hardware", FK_TEXT, FF_REQ, 1, 128, chk_slug, 0},
    {"gpu_count", FK_INT, FF_DEF, 1, 1024, NULL, 1},
    {"tensor_parallel", FK_INT, FF_DEF, 1, 1024, NULL, 1},
    {"dataset", FK_TEXT, FF_REQ, 1, 256, NULL, 0},
    {"mean_input_tokens", FK_REAL, 0, 0, 1e9, NULL, 0},
    {"mean_output_tokens", FK_REAL, 0, 0, 1e9, NULL, 0},
    {"request_rate", FK_REAL, FF_XMIN, 0, 1e9, NULL, 0},
    {"max_concurrency", FK_INT, 0, 1, 10000000, NULL, 0},
    {"duration", FK_REAL, FF_REQ | FF_XMIN, 0, 1e9, NULL, 0},
    {"completed", FK_INT, FF_REQ, 0, 1e12, NULL, 0},
    {"failed", FK_INT, FF_DEF, 0, 1e12, NULL, 0},
    {"total_input_tokens", FK_INT, FF_REQ, 0, 1e15, NULL, 0},
    {"total_output_tokens", FK_INT, FF_REQ, 0, 1e15, NULL, 0},
    {"request_throughput", FK_REAL, FF_REQ, 0, 1e12, NULL, 0},
    {"request_goodput", FK_REAL, 0, 0, 1e12, NULL, 0},
    {"output_throughput", FK_REAL, FF_REQ, 0, 1e12, NULL, 0},
    {"total_token_throughput", FK_REAL, FF_REQ, 0, 1e12, NULL, 0},
    LAT(ttft), LAT(tpot), LAT(itl), LAT(e2el),
    {"tool", FK_TEXT, 0, 1, 64, NULL, 0},
    {"tool_version", FK_TEXT, 0, 1, 64, NULL, 0},
    {"seed", FK_INT, 0, 0, 9223372036854775807.0, NULL, 0},
    {"command", FK_TEXT, 0, 0, 8192, chk_printable, 0},
    {"sweep_id", FK_TEXT, 0, 1, 64, chk_sweep, 0},
    /* The telemetry summary (bench --gpu-telemetry); null without it. */
    {"gpu_util_mean_pct", FK_REAL, 0, 0, 100, NULL, 0},
    {"gpu_util_max_pct", FK_REAL, 0, 0, 100, NULL, 0},
    {"gpu_mem_peak_bytes", FK_INT, 0, 0, 9.2e18, NULL, 0},
    {"gpu_power_mean_w", FK_REAL, 0, 0, 1e6, NULL, 0},
    {"energy_per_output_token_j", FK_REAL, 0, 0, 1e12, NULL, 0},
    {"kv_cache_peak_pct", FK_REAL, 0, 0, 100, NULL, 0},
    {"sample_count", FK_INT, FF_SERVER, 0, 0, NULL, 0},
    {"created_at", FK_TIME, FF_SERVER, 0, 0, NULL, 0},
    {"samples", FK_TEXT, FF_NOCOL, 0, 0, NULL, 0},
    {"gpu_samples", FK_TEXT, FF_NOCOL, 0, 0, NULL, 0},
};
#define NRUNF ((int)(sizeof(run_fields) / sizeof(run_fields[0])))
_Static_assert(METRIC_LAST - METRIC_FIRST + 1 == 9 + 28, "summary metric range");
_Static_assert(NRUNF <= REC_MAX, "run fields fit a record");

static const char *chk_sweep(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return "may contain only letters, digits, '.', '_' and '-'";
    }
    return NULL;
}

double cat_cost_per_1m(double usd_per_hour, int64_t gpu_count, int64_t gpus_per_instance,
                       double output_tok_per_s)
{
    if (!(output_tok_per_s > 0) || gpu_count < 1 || gpus_per_instance < 1 ||
        !(usd_per_hour >= 0) || !isfinite(usd_per_hour))
        return -1;
    return usd_per_hour * (double)gpu_count / (double)gpus_per_instance /
           (output_tok_per_s * 3600.0) * 1e6;
}

/* Columns of gpu_count and output_throughput (fields and columns coincide). */
static int gpu_col, thr_col;

/* Extra columns: h.on_demand, h.spot, h.gpus_per_instance. */
static void render_costs(struct db_rows *row, int col, struct jw *w)
{
    static const char *const names[2] = {"cost_per_1m_output_tokens_on_demand_usd",
                                         "cost_per_1m_output_tokens_spot_usd"};
    for (int i = 0; i < 2; i++) {
        jw_key(w, names[i]);
        double cost = -1;
        if (db_col_type(row, col + i) != DB_NULL)
            cost = cat_cost_per_1m(db_col_real(row, col + i), db_col_int(row, gpu_col),
                                   db_col_int(row, col + 2), db_col_real(row, thr_col));
        if (cost < 0)
            jw_null(w);
        else
            jw_num(w, cost);
    }
}

struct resource cat_runs = {
    .name = "benchmark run",
    .table = "runs",
    .alias = "r",
    .f = run_fields,
    .nf = NRUNF,
    .from = "runs r JOIN hardware h ON h.id = r.hardware",
    .extra = "h.on_demand_usd_per_hour, h.spot_usd_per_hour, h.gpus_per_instance",
    .nextra = 3,
    .render_extra = render_costs,
    /* The time series have no foreign key on PostgreSQL (migration 0005). */
    .children_sql = (const char *const[]){"DELETE FROM samples WHERE run_id = $1",
                                          "DELETE FROM gpu_samples WHERE run_id = $1", NULL},
};

/* "created", then each metric twice: "m" (NULLs last) and "-m" (NULLs last). */
static struct list_sort run_sorts[2 + 2 * (METRIC_LAST - METRIC_FIRST + 1) + 1];
static char sort_names[METRIC_LAST - METRIC_FIRST + 1][40];
static char sort_exprs[2 * (METRIC_LAST - METRIC_FIRST + 1)][80];

void cat__runs_init(void)
{
    int n = 0;
    rec_init(&cat_runs);
    gpu_col = rec_field(&cat_runs, "gpu_count");
    thr_col = rec_field(&cat_runs, "output_throughput");
    run_sorts[n++] = (struct list_sort){"created", "r.created_at", FK_INT};
    for (int i = METRIC_FIRST; i <= METRIC_LAST; i++) {
        int k = i - METRIC_FIRST;
        snprintf(sort_names[k], sizeof(sort_names[k]), "-%s", run_fields[i].name);
        snprintf(sort_exprs[2 * k], sizeof(sort_exprs[0]), "COALESCE(r.%s, 1e300)",
                 run_fields[i].name);
        snprintf(sort_exprs[2 * k + 1], sizeof(sort_exprs[0]), "COALESCE(r.%s, -1e300)",
                 run_fields[i].name);
        run_sorts[n++] = (struct list_sort){run_fields[i].name, sort_exprs[2 * k], FK_REAL};
        run_sorts[n++] = (struct list_sort){sort_names[k], sort_exprs[2 * k + 1], FK_REAL};
    }
    run_sorts[n] = (struct list_sort){NULL, NULL, 0};
}

int cat_run_list(struct db_conn *c, const struct cat_run_filter *f,
                 const struct cat_page *pg, struct buf *out, struct err_detail *d)
{
    struct list_q q;
    listq_init(&q);
    buf_printf(&q.sql, "%s FROM %s WHERE 1=1", cat_runs.select, cat_runs.from);
    static const struct {
        const char *cond;
        size_t off;
    } text_filters[] = {
        {"r.model = $%d", offsetof(struct cat_run_filter, model)},
        {"r.engine = $%d", offsetof(struct cat_run_filter, engine)},
        {"r.engine_version = $%d", offsetof(struct cat_run_filter, engine_version)},
        {"r.hardware = $%d", offsetof(struct cat_run_filter, hardware)},
        {"r.sweep_id = $%d", offsetof(struct cat_run_filter, sweep_id)},
        {"r.dataset = $%d", offsetof(struct cat_run_filter, dataset)},
    };
    for (size_t i = 0; i < sizeof(text_filters) / sizeof(text_filters[0]); i++) {
        const char *v = *(const char *const *)((const char *)f + text_filters[i].off);
        if (v)
            listq_where(&q, text_filters[i].cond, db_p_text(v, strlen(v)));
    }
    if (f->has_gpu_count)
        listq_where(&q, "r.gpu_count = $%d", db_p_int(f->gpu_count));
    struct page_req pr = {pg->limit, pg->cursor, pg->sort};
    int rc = list_run(c, &q, "runs", run_sorts, "-created", "r.id", cat_runs.ncols + cat_runs.nextra, &pr,
                      rec_render_cb, &cat_runs, out, d);
    listq_free(&q);
    return rc;
}

int cat_run_get(struct db_conn *c, const char *id, struct buf *out, char etag[21],
                struct err_detail *d)
{
    return item_get(&cat_runs, c, id, out, etag, d);
}

int cat_run_delete(struct db_conn *c, const char *id, const char *if_match,
                   struct err_detail *d)
{
    return item_delete(&cat_runs, c, id, 0, if_match, d);
}
