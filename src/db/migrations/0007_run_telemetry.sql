-- GPU and engine telemetry summary of a benchmark run (modelcat bench
-- --gpu-telemetry computes them from its samples): nullable, because runs
-- measured without telemetry have none. One statement per column: SQLite's
-- ALTER TABLE adds one column at a time.
ALTER TABLE runs ADD COLUMN gpu_util_mean_pct DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN gpu_util_max_pct DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN gpu_mem_peak_bytes BIGINT;
ALTER TABLE runs ADD COLUMN gpu_power_mean_w DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN energy_per_output_token_j DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN kv_cache_peak_pct DOUBLE PRECISION;
