-- Benchmark jobs (catalog/jobs.c): a queue of `modelcat bench` specs that
-- workers claim under a lease, checkpoint and finish. Times are ms since
-- the epoch; JSON (spec, labels, progress, checkpoint, run_ids) is stored
-- as text. A job's labels are also rows of job_labels, so that the claim
-- can match them in SQL and lock only the one row it takes.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    spec TEXT NOT NULL,
    labels TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    progress TEXT,
    checkpoint TEXT,
    checkpoint_bytes BIGINT NOT NULL DEFAULT 0,
    checkpoint_at BIGINT,
    run_ids TEXT NOT NULL DEFAULT '[]',
    reason TEXT,
    worker TEXT,
    lease_s BIGINT,
    lease_expires_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
-- The claim (oldest queued first) and GET /api/v1/jobs?status=.
CREATE INDEX jobs_status_created ON jobs (status, created_at, id);
-- GET /api/v1/jobs, newest first.
CREATE INDEX jobs_created ON jobs (created_at, id);
-- The sweep of expired leases before each claim.
CREATE INDEX jobs_status_lease ON jobs (status, lease_expires_at);
CREATE TABLE job_labels (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
