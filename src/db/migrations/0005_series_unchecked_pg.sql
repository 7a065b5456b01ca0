-- PostgreSQL only: the time series lose their foreign key to runs. COPY
-- checked it row by row (an index probe of runs and a row lock each):
-- 40% of the time of a million-sample ingest. A run's series are written
-- in the transaction that creates the run, and deleted by the catalog
-- before the run (catalog/runs.c, models.c, hardware.c), so nothing is
-- lost; TimescaleDB advises the same for hypertables. SQLite keeps its
-- keys, which cost it little.
ALTER TABLE samples DROP CONSTRAINT IF EXISTS samples_run_id_fkey;
ALTER TABLE gpu_samples DROP CONSTRAINT IF EXISTS gpu_samples_run_id_fkey;
