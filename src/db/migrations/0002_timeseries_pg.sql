-- Time series, PostgreSQL form (SQLite runs 0002_timeseries.sql: the same
-- columns in plain tables). samples and gpu_samples are range-partitioned
-- by ts (BIGINT ms since the Unix epoch, UTC), one partition per calendar
-- month, or TimescaleDB hypertables where the extension can be created.
--   samples.ts      the creation time of the sample's run: a run's samples
--                   share one partition, and a read of them prunes to it;
--   gpu_samples.ts  the wall time the GPU was sampled.
-- The server creates the partitions of the coming months ahead of time
-- (modelcat_ensure_partition, below); rows outside them land in the
-- DEFAULT partition and move out when their month's partition is made.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'timescaledb is installed but cannot be created (%): '
                         'using declarative partitions', SQLERRM;
        END;
    END IF;
END $$;

ALTER TABLE samples RENAME TO samples_v1;
ALTER TABLE samples_v1 RENAME CONSTRAINT samples_pkey TO samples_v1_pkey;
ALTER TABLE samples_v1 RENAME CONSTRAINT samples_run_id_fkey TO samples_v1_run_id_fkey;

-- A month partition of parent for the time at_ms, made if missing: the
-- rows of that month waiting in the DEFAULT partition move into it. Returns
-- the partition's name, or NULL when parent is not partitioned (a
-- TimescaleDB hypertable makes its own chunks). Concurrent callers
-- serialize on an advisory lock.
CREATE FUNCTION modelcat_ensure_partition(parent TEXT, at_ms BIGINT) RETURNS TEXT
LANGUAGE plpgsql AS $f$
DECLARE
    m    TIMESTAMP := date_trunc('month', to_timestamp(at_ms / 1000.0) AT TIME ZONE 'UTC');
    lo   BIGINT := (extract(epoch FROM m AT TIME ZONE 'UTC') * 1000)::BIGINT;
    hi   BIGINT := (extract(epoch FROM (m + INTERVAL '1 month') AT TIME ZONE 'UTC') * 1000)::BIGINT;
    part TEXT := parent || '_' || to_char(m, 'YYYYMM');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = parent::regclass) THEN
        RETURN NULL;
    END IF;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('modelcat_ensure_partition'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   part, parent);
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE ts >= %s AND ts < %s RETURNING *)'
                   ' INSERT INTO %I SELECT * FROM moved', parent || '_default', lo, hi, part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                   parent, part, lo, hi);
    RETURN part;
END
$f$;

DO $$
DECLARE
    tsdb BOOLEAN := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    how  TEXT := CASE WHEN tsdb THEN '' ELSE ' PARTITION BY RANGE (ts)' END;
BEGIN
    EXECUTE 'CREATE TABLE samples ('
        ' run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,'
        ' idx            BIGINT NOT NULL,'
        ' scheduled_ns   BIGINT NOT NULL,'
        ' sent_ns        BIGINT NOT NULL,'
        ' first_token_ns BIGINT,'
        ' last_token_ns  BIGINT,'
        ' input_tokens   BIGINT NOT NULL,'
        ' output_tokens  BIGINT NOT NULL,'
        ' error          TEXT,'
        ' ts             BIGINT NOT NULL,'
        ' PRIMARY KEY (run_id, idx, ts))' || how;
    EXECUTE 'CREATE TABLE gpu_samples ('
        ' run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,'
        ' ts             BIGINT NOT NULL,'
        ' gpu            BIGINT NOT NULL,'
        ' util_pct       DOUBLE PRECISION,'
        ' mem_used_bytes BIGINT,'
        ' power_w        DOUBLE PRECISION,'
        ' temp_c         DOUBLE PRECISION,'
        ' sm_clock_mhz   DOUBLE PRECISION,'
        ' energy_j       DOUBLE PRECISION,'
        ' PRIMARY KEY (run_id, gpu, ts))' || how;
    EXECUTE 'CREATE INDEX gpu_samples_ts ON gpu_samples (ts)';
    IF tsdb THEN
        -- Integer time: chunks of 7 days in milliseconds.
        EXECUTE 'SELECT create_hypertable(''samples'', ''ts'','
                ' chunk_time_interval => 604800000::BIGINT)';
        EXECUTE 'SELECT create_hypertable(''gpu_samples'', ''ts'','
                ' chunk_time_interval => 604800000::BIGINT)';
    ELSE
        CREATE TABLE samples_default PARTITION OF samples DEFAULT;
        CREATE TABLE gpu_samples_default PARTITION OF gpu_samples DEFAULT;
    END IF;
END $$;

-- The samples stored so far, each at its run's time, then a partition for
-- every month that has some.
INSERT INTO samples (run_id, idx, scheduled_ns, sent_ns, first_token_ns, last_token_ns,
                     input_tokens, output_tokens, error, ts)
SELECT s.run_id, s.idx, s.scheduled_ns, s.sent_ns, s.first_token_ns, s.last_token_ns,
       s.input_tokens, s.output_tokens, s.error, r.created_at
FROM samples_v1 s JOIN runs r ON r.id = s.run_id;
DROP TABLE samples_v1;
SELECT modelcat_ensure_partition('samples', m)
FROM (SELECT DISTINCT created_at / 86400000 * 86400000 AS m FROM runs) AS days;
