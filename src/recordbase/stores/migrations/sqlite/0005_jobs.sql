-- Jobs (durable asynchronous writes) and Idempotency-Key responses. Timestamps are fixed-width
-- UTC text, so they compare as instants; the same columns exist on PostgreSQL.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    type_key TEXT NOT NULL,
    action TEXT NOT NULL,
    options TEXT NOT NULL,
    principal TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_by TEXT,
    lease_until TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_queue ON jobs (status, created_at, id);
CREATE INDEX jobs_lease ON jobs (status, lease_until);

-- One row per item; `done` flips in the same transaction as the item's write.
CREATE TABLE job_items (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    payload TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    project_id TEXT NOT NULL,
    key TEXT NOT NULL,
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    locked_until TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency_keys (expires_at);
