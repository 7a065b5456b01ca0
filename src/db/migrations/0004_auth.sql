-- Authentication: API keys (only a hash of each key is stored) and the
-- audit trail of requests. Written in the SQL subset shared by SQLite and
-- PostgreSQL 15. Times are BIGINT milliseconds since the Unix epoch (UTC).

-- id is the key's public id (the 8 characters after "mc_"); hash is
-- "sha256:" + hex of SHA-256 of the whole key. role is one of viewer,
-- editor, worker, admin. created_by is a key id, "bootstrap" or "cli".
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    hash         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    created_by   TEXT
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

-- One row per audited request. id is a UUIDv7 (time-ordered); actor is a
-- key id, "bootstrap", a JWT subject, or NULL for an anonymous request.
CREATE TABLE audit (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT,
    role        TEXT,
    ip          TEXT,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    resource    TEXT,
    resource_id TEXT,
    request_id  TEXT,
    status      INTEGER NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at, id);
CREATE INDEX audit_actor ON audit (actor, at, id);
CREATE INDEX audit_resource ON audit (resource, resource_id, at, id);
