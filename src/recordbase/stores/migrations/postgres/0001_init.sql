-- recordbase PostgreSQL schema, version 1 (the same tables as SQLite, in native types).
-- Text that is sorted or keyed uses the "C" collation so order is byte order on every
-- server, as in SQLite, whatever the database's default locale.
CREATE TABLE meta (
    k TEXT PRIMARY KEY,
    v TEXT NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    prefix TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL,
    rate DOUBLE PRECISION,
    burst INTEGER,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);

CREATE TABLE record_types (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id),
    key TEXT NOT NULL,
    -- JSON text, not jsonb: jsonb reorders object keys, and computed fields run in order.
    definition TEXT NOT NULL,
    version INTEGER NOT NULL,
    next_number BIGINT NOT NULL DEFAULT 1,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, key)
);

-- seq keeps insertion order (export, copy); ids are unique per type.
CREATE TABLE records (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type_id TEXT NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C",
    external_id TEXT COLLATE "C",
    owner TEXT COLLATE "C",
    data JSONB NOT NULL,
    description TEXT,
    attachments JSONB NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    created_by TEXT COLLATE "C",
    updated_by TEXT COLLATE "C"
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
);
CREATE INDEX record_keys_record ON record_keys (type_id, record_id);
