-- The catalog: models, hardware, benchmark runs and their per-request
-- samples. Written in the SQL subset shared by SQLite and PostgreSQL.
-- Times are BIGINT milliseconds since the Unix epoch (UTC), sample times
-- nanoseconds from the start of their run.

CREATE TABLE models (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    family         TEXT,
    parameters_b   DOUBLE PRECISION NOT NULL,
    architecture   TEXT,
    context_length BIGINT,
    quantization   TEXT,
    license        TEXT,
    source_uri     TEXT,
    description    TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX models_name ON models (name, id);
CREATE INDEX models_params ON models (parameters_b, id);
CREATE INDEX models_created ON models (created_at, id);
CREATE INDEX models_updated ON models (updated_at, id);
CREATE INDEX models_family ON models (family);

-- One row per (model, tag): the tag filter is an index lookup.
CREATE TABLE model_tags (
    model_id TEXT NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (model_id, tag)
);
CREATE INDEX model_tags_tag ON model_tags (tag, model_id);

CREATE TABLE hardware (
    id                     TEXT PRIMARY KEY,
    gpu                    TEXT NOT NULL,
    memory_gb              DOUBLE PRECISION NOT NULL,
    provider               TEXT,
    instance_type          TEXT,
    gpus_per_instance      BIGINT NOT NULL,
    on_demand_usd_per_hour DOUBLE PRECISION,
    spot_usd_per_hour      DOUBLE PRECISION,
    price_source           TEXT,
    price_date             TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

CREATE TABLE runs (
    id                     TEXT PRIMARY KEY,
    model                  TEXT NOT NULL REFERENCES models (id),
    engine                 TEXT NOT NULL,
    engine_version         TEXT,
    engine_args            TEXT,
    hardware               TEXT NOT NULL REFERENCES hardware (id),
    gpu_count              BIGINT NOT NULL,
    tensor_parallel        BIGINT NOT NULL,
    dataset                TEXT NOT NULL,
    mean_input_tokens      DOUBLE PRECISION,
    mean_output_tokens     DOUBLE PRECISION,
    request_rate           DOUBLE PRECISION,
    max_concurrency        BIGINT,
    duration               DOUBLE PRECISION NOT NULL,
    completed              BIGINT NOT NULL,
    failed                 BIGINT NOT NULL,
    total_input_tokens     BIGINT NOT NULL,
    total_output_tokens    BIGINT NOT NULL,
    request_throughput     DOUBLE PRECISION NOT NULL,
    request_goodput        DOUBLE PRECISION,
    output_throughput      DOUBLE PRECISION NOT NULL,
    total_token_throughput DOUBLE PRECISION NOT NULL,
    mean_ttft_ms DOUBLE PRECISION, median_ttft_ms DOUBLE PRECISION,
    std_ttft_ms DOUBLE PRECISION, p50_ttft_ms DOUBLE PRECISION,
    p90_ttft_ms DOUBLE PRECISION, p95_ttft_ms DOUBLE PRECISION,
    p99_ttft_ms DOUBLE PRECISION,
    mean_tpot_ms DOUBLE PRECISION, median_tpot_ms DOUBLE PRECISION,
    std_tpot_ms DOUBLE PRECISION, p50_tpot_ms DOUBLE PRECISION,
    p90_tpot_ms DOUBLE PRECISION, p95_tpot_ms DOUBLE PRECISION,
    p99_tpot_ms DOUBLE PRECISION,
    mean_itl_ms DOUBLE PRECISION, median_itl_ms DOUBLE PRECISION,
    std_itl_ms DOUBLE PRECISION, p50_itl_ms DOUBLE PRECISION,
    p90_itl_ms DOUBLE PRECISION, p95_itl_ms DOUBLE PRECISION,
    p99_itl_ms DOUBLE PRECISION,
    mean_e2el_ms DOUBLE PRECISION, median_e2el_ms DOUBLE PRECISION,
    std_e2el_ms DOUBLE PRECISION, p50_e2el_ms DOUBLE PRECISION,
    p90_e2el_ms DOUBLE PRECISION, p95_e2el_ms DOUBLE PRECISION,
    p99_e2el_ms DOUBLE PRECISION,
    tool                   TEXT,
    tool_version           TEXT,
    seed                   BIGINT,
    command                TEXT,
    sweep_id               TEXT,
    sample_count           BIGINT NOT NULL DEFAULT 0,
    created_at             BIGINT NOT NULL
);
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_model ON runs (model, created_at, id);
CREATE INDEX runs_hardware ON runs (hardware);
CREATE INDEX runs_sweep ON runs (sweep_id);

CREATE TABLE samples (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx            BIGINT NOT NULL,
    scheduled_ns   BIGINT NOT NULL,
    sent_ns        BIGINT NOT NULL,
    first_token_ns BIGINT,
    last_token_ns  BIGINT,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    error          TEXT,
    PRIMARY KEY (run_id, idx)
);

-- Idempotency-Key of POST /api/v1/benchmarks: the run a key created and a
-- hash of the canonical body that created it.
CREATE TABLE idempotency_keys (
    key        TEXT PRIMARY KEY,
    body_hash  TEXT NOT NULL,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
