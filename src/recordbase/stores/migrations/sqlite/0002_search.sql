-- recordbase SQLite schema, version 2: full-text search over names and string data.
-- One FTS5 row per record (rowid = records.seq) holding the name and every string value of
-- the data; triggers keep it in step with every insert, update and delete, whatever the
-- write path. unicode61 with remove_diacritics folds case and accents.
CREATE VIRTUAL TABLE records_fts USING fts5(
    body,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN
    INSERT INTO records_fts (rowid, body) VALUES (
        new.seq,
        coalesce(new.name, '') || ' ' || coalesce(
            (SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text'), ''
        )
    );
END;

CREATE TRIGGER records_fts_update AFTER UPDATE OF name, data ON records BEGIN
    DELETE FROM records_fts WHERE rowid = old.seq;
    INSERT INTO records_fts (rowid, body) VALUES (
        new.seq,
        coalesce(new.name, '') || ' ' || coalesce(
            (SELECT group_concat(value, ' ') FROM json_tree(new.data) WHERE type = 'text'), ''
        )
    );
END;

CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN
    DELETE FROM records_fts WHERE rowid = old.seq;
END;

-- Records written before this version.
INSERT INTO records_fts (rowid, body)
SELECT seq, coalesce(name, '') || ' ' || coalesce(
    (SELECT group_concat(value, ' ') FROM json_tree(records.data) WHERE type = 'text'), ''
)
FROM records;
