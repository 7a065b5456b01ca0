-- Time series, SQLite form (PostgreSQL runs 0002_timeseries_pg.sql instead:
-- the same columns, range-partitioned by ts). Both tables carry ts, a
-- BIGINT of milliseconds since the Unix epoch (UTC):
--   samples.ts      the creation time of the sample's run, so all of a
--                   run's samples share one partition and a read of them
--                   prunes to it;
--   gpu_samples.ts  the wall time the GPU was sampled.

ALTER TABLE samples ADD COLUMN ts BIGINT NOT NULL DEFAULT 0;
UPDATE samples SET ts = (SELECT created_at FROM runs WHERE runs.id = samples.run_id);

-- One row per GPU per sampling instant (every second while a benchmark
-- runs). Every measurement is optional: a source reports what it has.
CREATE TABLE gpu_samples (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    ts             BIGINT NOT NULL,
    gpu            BIGINT NOT NULL,
    util_pct       DOUBLE PRECISION,
    mem_used_bytes BIGINT,
    power_w        DOUBLE PRECISION,
    temp_c         DOUBLE PRECISION,
    sm_clock_mhz   DOUBLE PRECISION,
    energy_j       DOUBLE PRECISION,
    PRIMARY KEY (run_id, gpu, ts)
);
CREATE INDEX gpu_samples_ts ON gpu_samples (ts);
