-- recordbase SQLite schema, version 1.
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL,
    rate REAL,
    burst INTEGER,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT,
    last_used_at TEXT
);

CREATE TABLE record_types (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    key TEXT NOT NULL,
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    next_number INTEGER NOT NULL DEFAULT 1,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project_id, key)
);

-- seq is the rowid: inserts append, while ids (ULIDs) stay unique per type.
CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    type_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT,
    external_id TEXT,
    owner TEXT,
    data TEXT NOT NULL,
    description TEXT,
    attachments TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT,
    updated_by TEXT
);
CREATE UNIQUE INDEX records_id ON records (type_id, id);
CREATE UNIQUE INDEX records_external_id ON records (type_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX records_created ON records (type_id, created_at, id);
CREATE INDEX records_updated ON records (type_id, updated_at, id);
CREATE INDEX records_name ON records (type_id, name);
CREATE INDEX records_owner ON records (type_id, owner);

-- Unique names and declared unique keys: one row per (type, key, canonical value).
CREATE TABLE record_keys (
    type_id TEXT NOT NULL,
    key_name TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (type_id, key_name, value)
) WITHOUT ROWID;
CREATE INDEX record_keys_record ON record_keys (type_id, record_id);
