-- recordbase SQLite schema, version 9: records and key rows name their type by a number.
-- Every index on `records` leads with the type, and a type id (a 26-character ULID) was
-- repeated in the table and in all five indexes of every record: an insert wrote ~130 bytes
-- of type ids per record. `record_types.no` (never reused: AUTOINCREMENT) takes its place in
-- `records.type_id` and `record_keys.type_id` (one or two bytes): a 100-record insert into
-- the table runs ~15% faster (docs/performance.md, round 8). Ids stay what the API shows;
-- the store turns an id into its number (sqlite_tx.py). PostgreSQL keeps text type ids.
--
-- The tables are rebuilt (SQLite cannot change a column's type in place): on a big database
-- this migration takes a while, once. `records.seq` is kept, so full-text rows still match.
-- Declared indexes go with the old table; the store rebuilds them when it next opens
-- (meta `rebuild_declared_indexes`, stores/sqlite.py).
CREATE TABLE record_types_numbered (
    no INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
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
INSERT INTO record_types_numbered (
    id, project_id, key, definition, version, next_number, extra, created_at, updated_at
)
SELECT id, project_id, key, definition, version, next_number, extra, created_at, updated_at
FROM record_types ORDER BY created_at, id;
DROP TABLE record_types;
ALTER TABLE record_types_numbered RENAME TO record_types;

CREATE TABLE records_numbered (
    seq INTEGER PRIMARY KEY,
    type_id INTEGER NOT NULL,
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
INSERT INTO records_numbered (
    seq, type_id, id, name, external_id, owner, data, description, attachments, version,
    created_at, updated_at, created_by, updated_by
)
SELECT r.seq, t.no, r.id, r.name, r.external_id, r.owner, r.data, r.description,
    r.attachments, r.version, r.created_at, r.updated_at, r.created_by, r.updated_by
FROM records r JOIN record_types t ON t.id = r.type_id ORDER BY r.seq;
DROP TABLE records;
ALTER TABLE records_numbered RENAME TO records;
CREATE UNIQUE INDEX records_id ON records (type_id, id);
CREATE UNIQUE INDEX records_external_id ON records (type_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX records_created ON records (type_id, created_at, id);
CREATE INDEX records_updated ON records (type_id, updated_at, id);
CREATE INDEX records_name ON records (type_id, name);
CREATE INDEX records_owner ON records (type_id, owner);

CREATE TABLE record_keys_numbered (
    type_id INTEGER NOT NULL,
    key_name TEXT NOT NULL,
    value TEXT NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (type_id, key_name, value)
) WITHOUT ROWID;
INSERT INTO record_keys_numbered (type_id, key_name, value, record_id)
SELECT t.no, k.key_name, k.value, k.record_id
FROM record_keys k JOIN record_types t ON t.id = k.type_id;
DROP TABLE record_keys;
ALTER TABLE record_keys_numbered RENAME TO record_keys;
CREATE INDEX record_keys_record ON record_keys (type_id, record_id);

INSERT INTO meta (k, v) VALUES ('rebuild_declared_indexes', '1')
    ON CONFLICT (k) DO UPDATE SET v = excluded.v;
