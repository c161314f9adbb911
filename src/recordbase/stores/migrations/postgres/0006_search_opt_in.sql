-- recordbase PostgreSQL schema, version 6: full-text search is opt-in per record type.
-- The one GIN index of version 2 covered every record of every type, so every write paid
-- for it. Now each type with `"search": true` has its own partial GIN index
-- (stores/pg_indexes.py: `rbs_<md5 of the type id>` ... WHERE type_id = '<id>').
DROP INDEX IF EXISTS records_search;

-- Types made before this version keep text search, so an upgrade changes no answer;
-- `PATCH /v1/types/<key> {"search": false}` drops a type's index. The definition is JSON
-- text whose member order matters (0001), so the member is appended, not set via jsonb.
UPDATE record_types
SET definition = left(rtrim(definition), -1) || ',"search":true}'
WHERE definition::jsonb -> 'search' IS NULL;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT id FROM record_types LOOP
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS %I ON records USING gin (rb_search_vector(name, data)) '
            'WHERE type_id = %L',
            'rbs_' || md5(t.id), t.id);
    END LOOP;
END
$$;
