-- recordbase SQLite schema, version 6: full-text search is opt-in per record type.
-- The triggers of version 2 indexed every record of every type and halved batch inserts;
-- now the store writes the FTS rows itself (stores/sqlite_search.py), one set-based
-- statement per write and only for types listed here (a type's `"search": true`).
DROP TRIGGER records_fts_insert;
DROP TRIGGER records_fts_update;
DROP TRIGGER records_fts_delete;

-- The types whose records have FTS rows: what the store maintains, whatever a cached
-- definition says.
CREATE TABLE search_types (
    type_id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Types made before this version keep text search (their FTS rows already exist), so an
-- upgrade changes no answer; `PATCH /v1/types/<key> {"search": false}` drops them.
INSERT INTO search_types (type_id) SELECT id FROM record_types;
UPDATE record_types SET definition = json_set(definition, '$.search', json('true'));
