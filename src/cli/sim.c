/*
 * `modelcat sim`: run the inference-engine simulator (src/sim/) with the
 * settings of the `sim` rows of the config table, until SIGTERM/SIGINT.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/obs.h"
#include "core/config.h"
#include "core/log.h"
#include "sim/sim.h"

static const char *const statuses[] = {"stop", "length", "abort"};

/* modelcat_sim_* from the simulator's atomic totals, at scrape time. */
static void collect_sim(struct buf *out, void *arg)
{
    (void)arg;
    struct sim_totals t;
    sim_totals(&t);
    metrics_write_head(out, "modelcat_sim_requests_total",
                       "Requests the simulator finished, by finish reason.", "counter");
    for (int i = 0; i < 3; i++) {
        const char *lab[] = {"status", statuses[i]};
        metrics_write_sample(out, "modelcat_sim_requests_total", lab, 1,
                             (double)t.requests[i]);
    }
    metrics_write_head(out, "modelcat_sim_tokens_total", "Tokens the simulator generated.",
                       "counter");
    metrics_write_sample(out, "modelcat_sim_tokens_total", NULL, 0, (double)t.tokens);
}

static int sim_families(struct metrics *reg, void *arg)
{
    return metrics_collector(reg, collect_sim, arg) ? 1 : 0;
}

int cli_sim(int argc, char **argv)
{
    struct cfg c;
    int rc = cli_setup(&c, CMD_SIM, argc, argv,
                       "usage: modelcat sim [flags]\n\n"
                       "Simulates an LLM inference server (vLLM's OpenAI API, TGI's generate\n"
                       "API, /metrics) with a continuous-batching timing model, for testing\n"
                       "benchmark clients without a GPU. See docs/sim.md.");
    if (rc >= 0)
        return rc;
    const char *truth = cfg_str(&c, CFG_SIM_TRUTH);
    struct sim_opts o = {
        .listen = cfg_str(&c, CFG_SIM_LISTEN),
        .model = cfg_str(&c, CFG_SIM_MODEL),
        .max_num_seqs = (int)cfg_int(&c, CFG_SIM_MAX_NUM_SEQS),
        .prefill_tok_per_s = cfg_double(&c, CFG_SIM_PREFILL_TOKENS_PER_S),
        .itl_ms = cfg_double(&c, CFG_SIM_ITL_MS),
        .itl_ms_per_seq = cfg_double(&c, CFG_SIM_ITL_MS_PER_SEQ),
        .jitter = cfg_double(&c, CFG_SIM_JITTER),
        .seed = (uint64_t)cfg_int(&c, CFG_SIM_SEED),
        .max_connections = (int)cfg_int(&c, CFG_SIM_MAX_CONNECTIONS),
        .error_rate = cfg_double(&c, CFG_SIM_ERROR_RATE),
        .stall_rate = cfg_double(&c, CFG_SIM_STALL_RATE),
        .stall_ms = (int)cfg_int(&c, CFG_SIM_STALL_MS),
        .drop_rate = cfg_double(&c, CFG_SIM_DROP_RATE),
        .stream_interval = (int)cfg_int(&c, CFG_SIM_STREAM_INTERVAL),
        .truth_path = truth && *truth ? truth : NULL,
    };
    if (!*o.model) {
        fprintf(stderr, "modelcat sim: --model must not be empty\n");
        cfg_free(&c);
        return 2;
    }
    struct err_detail d;
    err_clear(&d);
    rc = 0;
    if (cli_obs_start(cfg_str(&c, CFG_METRICS_LISTEN), 0, sim_families, NULL)) {
        cfg_free(&c);
        return 2;
    }
    if (sim_run(&o, &d)) {
        log_error("sim", "%s", d.msg);
        rc = 1;
    } else {
        log_info("sim", "stopped");
    }
    cli_obs_stop();
    cfg_free(&c);
    return rc;
}
