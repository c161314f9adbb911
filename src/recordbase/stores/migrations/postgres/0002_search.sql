-- recordbase PostgreSQL schema, version 2: full-text search and date-time instants.
-- Search covers the name and every string value of the data, case- and accent-folded
-- (unaccent, a trusted extension, kept in `public` so every schema finds it), as prefixes.
CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public;

-- IMMUTABLE wrappers: index expressions may only use immutable functions. They are immutable
-- here because the dictionary is named explicitly and sessions run with timezone=UTC.
CREATE FUNCTION rb_fold_text(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, t)) $$;

CREATE FUNCTION rb_search_vector(name text, data jsonb) RETURNS tsvector
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT to_tsvector('simple'::regconfig, rb_fold_text(
        coalesce(name, '') || ' ' || coalesce(
            (SELECT string_agg(v #>> '{}', ' ')
             FROM jsonb_path_query(data, 'strict $.** ? (@.type() == "string")') AS v),
            '')))
    $$;

-- A date-time text as an instant; text that is not a date-time is NULL (as in SQLite).
CREATE FUNCTION rb_instant(t text) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
    BEGIN
        RETURN t::timestamptz;
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END
    $$;

CREATE INDEX records_search ON records USING gin (rb_search_vector(name, data));
