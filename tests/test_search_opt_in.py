"""Text search is opt-in per record type (`"search": true`): a type without it answers `q=`
with a 400 saying how to turn it on, writes to it leave no search entries, and turning it on
or off builds or drops the entries of the type's existing records in the type change."""

from __future__ import annotations

from typing import Any

import pytest

from recordbase.core.query import Query
from tests.conftest import Api

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}}


def records(type_key: str, count: int, word: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{type_key}{i}", "name": f"{word} {i}", "data": {"title": f"{word} tale"}}
        for i in range(count)
    ]


def add(api: Api, type_key: str, count: int, word: str) -> None:
    body = {"records": records(type_key, count, word)}
    r = api.post(f"/v1/types/{type_key}/records", json=body)
    assert r.status_code == 201, r.text


def search(api: Api, type_key: str, text: str) -> Any:
    return api.get(f"/v1/types/{type_key}/records", params={"q": text})


def raw(api: Api, sql: str, *params: Any) -> list[Any]:
    """Rows of a read of the store's own tables (what the search entries physically are)."""

    async def read() -> list[Any]:
        return list(
            await api.service.store.read(lambda tx: tx.conn.execute(sql, params).fetchall())
        )

    return list(api.client.portal.call(read))  # type: ignore[union-attr]


def fts_rows(api: Api, type_key: str | None = None) -> int:
    """SQLite: FTS rows in all, or those of one type's records."""
    if type_key is None:
        return int(raw(api, "SELECT count(*) FROM records_fts")[0][0])
    sql = (
        "SELECT count(*) FROM records_fts WHERE rowid IN (SELECT r.seq FROM records r "
        "JOIN record_types t ON t.no = r.type_id WHERE t.key = ?)"  # SQLite: type numbers
    )
    return int(raw(api, sql, type_key)[0][0])


def test_search_is_off_by_default_and_q_says_how_to_turn_it_on(api: Api) -> None:
    created = api.make_type("note", schema=SCHEMA)
    assert created["search"] is False
    add(api, "note", 2, "hello")
    for r in (
        search(api, "note", "hello"),
        api.get("/v1/types/note/records/count", params={"q": "hello"}),
        api.post("/v1/types/note/records/query", json={"q": "hello"}),
    ):
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid_filter"
        assert '"search": true' in body["detail"]
        assert body["errors"][0]["path"] == "q"
    # Blank text is no search at all, and filters work as ever.
    assert api.get("/v1/types/note/records", params={"q": "  "}).status_code == 200
    assert [t["search"] for t in api.get("/v1/types").json()["types"]] == [False]


def test_search_member_is_checked_and_kept(api: Api) -> None:
    r = api.post("/v1/types", json={"key": "note", "search": "yes"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["path"] == "/search"
    assert api.make_type("note", schema=SCHEMA, search=True)["search"] is True
    # A PATCH of other members keeps search as it was.
    r = api.patch("/v1/types/note", json={"description": "notes"})
    assert r.status_code == 200, r.text
    assert r.json()["search"] is True
    assert api.get("/v1/types/note").json()["search"] is True


def test_turning_search_on_indexes_existing_records_and_off_drops_them(api: Api) -> None:
    api.make_type("note", schema=SCHEMA)
    add(api, "note", 3, "walrus")
    r = api.patch("/v1/types/note", json={"search": True})
    assert r.status_code == 200, r.text
    assert r.json()["search"] is True and r.json()["version"] == 1  # no schema change
    found = search(api, "note", "walr")
    assert found.status_code == 200, found.text
    assert len(found.json()["records"]) == 3
    # Writes after the change are searchable too.
    r = api.patch("/v1/types/note/records/note0", json={"name": "narwhal"})
    assert r.status_code == 200, r.text
    assert [x["id"] for x in search(api, "note", "narwh").json()["records"]] == ["note0"]
    r = api.patch("/v1/types/note", json={"search": False})
    assert r.status_code == 200, r.text
    assert search(api, "note", "walr").status_code == 400
    r = api.patch("/v1/types/note", json={"search": True})
    assert len(search(api, "note", "walr").json()["records"]) == 3  # note0's title
    assert len(search(api, "note", "narwh").json()["records"]) == 1


@pytest.mark.backend("sqlite")  # the FTS5 table is SQLite's
def test_sqlite_plain_types_write_no_fts_rows(api: Api) -> None:
    api.make_type("log", schema=SCHEMA)
    api.make_type("note", schema=SCHEMA, search=True)
    add(api, "log", 50, "request")
    assert api.patch("/v1/types/log/records/log1", json={"name": "changed"}).status_code == 200
    assert fts_rows(api) == 0
    add(api, "note", 4, "hello")
    assert fts_rows(api) == fts_rows(api, "note") == 4
    assert api.delete("/v1/types/note/records/note0").status_code == 204
    assert fts_rows(api) == 3
    assert api.patch("/v1/types/log", json={"search": True}).status_code == 200
    assert fts_rows(api, "log") == 50
    assert api.patch("/v1/types/log", json={"search": False}).status_code == 200
    assert fts_rows(api) == fts_rows(api, "note") == 3
    assert api.delete("/v1/types/note").status_code == 204
    assert fts_rows(api) == 0
    assert raw(api, "SELECT count(*) FROM search_types")[0][0] == 0


@pytest.mark.backend("postgresql")  # per-type partial GIN indexes
def test_postgres_search_index_per_type(api: Api) -> None:
    def search_indexes() -> list[str]:
        rows = raw(
            api,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname LIKE 'rbs\\_%%'",
        )
        return [str(r[0]) for r in rows]

    api.make_type("log", schema=SCHEMA)
    assert search_indexes() == []
    note = api.make_type("note", schema=SCHEMA, search=True)
    add(api, "note", 300, "walrus")
    assert api.patch("/v1/types/note/records/note7", json={"name": "hello"}).status_code == 200
    (index,) = search_indexes()
    assert "gin" in index and "rb_search_vector" in index

    async def plan() -> str:
        def fn(tx: Any) -> str:
            # Few rows: without these the planner may rightly prefer another path.
            tx.conn.execute("ANALYZE records")
            tx.conn.execute("SET LOCAL enable_seqscan = off")
            rtype = tx.get_type(tx.project_by_name("p1").id, "note")
            return str(tx.explain(rtype, Query(text="hello")))

        return str(await api.service.store.read(fn))

    assert "rbs_" in api.client.portal.call(plan)  # type: ignore[union-attr]
    assert note["search"] is True
    assert api.patch("/v1/types/note", json={"search": False}).status_code == 200
    assert search_indexes() == []
    assert api.patch("/v1/types/note", json={"search": True}).status_code == 200
    assert len(search_indexes()) == 1
    assert api.delete("/v1/types/note").status_code == 204
    assert search_indexes() == []


OLD_DEFINITION = {  # as stored before version 6: no `search` member
    "key": "legacy",
    "name": "legacy",
    "description": "",
    "schema": SCHEMA,
    "naming": None,
    "unique_keys": [],
    "indexes": [],
    "aliases": {},
    "computed": {},
    "read_only": [],
    "discriminator": None,
    "constants": {},
}


def _database_at_version_5(url: str) -> None:
    """A database as recordbase left it before search was opt-in, with one type and records."""
    import orjson

    from recordbase.stores.common import migrations

    at = "2026-01-01T00:00:00.000000Z"
    definition = orjson.dumps(OLD_DEFINITION).decode()
    rows = [("T1", f"r{i}", f"walrus {i}", f'{{"title": "tale {i}"}}', 1, at, at) for i in range(2)]
    insert_record = (
        "INSERT INTO records (type_id, id, name, data, version, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg, pg.transaction():
            for version, sql in migrations("postgres"):
                if version < 6:
                    pg.execute(sql.encode())
            pg.execute("INSERT INTO meta (k, v) VALUES ('schema_version', '5'), ('epoch', '0')")
            pg.execute("INSERT INTO projects VALUES ('P1', 'p1', %s)", (at,))
            pg.execute(
                "INSERT INTO record_types (id, project_id, key, definition, version, "
                "created_at, updated_at) VALUES ('T1', 'P1', 'legacy', %s, 1, %s, %s)",
                (definition, at, at),
            )
            with pg.cursor() as cur:
                cur.executemany(
                    insert_record.replace("?", "%s").replace("%s, 1", "%s::jsonb, 1"), rows
                )
        return
    import sqlite3

    lite = sqlite3.connect(url, isolation_level=None)
    for version, sql in migrations("sqlite"):
        if version < 6:
            lite.executescript(sql)
    lite.execute("INSERT INTO meta (k, v) VALUES ('schema_version', '5'), ('epoch', '0')")
    lite.execute("INSERT INTO projects VALUES ('P1', 'p1', ?)", (at,))
    lite.execute(
        "INSERT INTO record_types (id, project_id, key, definition, version, created_at, "
        "updated_at) VALUES ('T1', 'P1', 'legacy', ?, 1, ?, ?)",
        (definition, at, at),
    )
    lite.executemany(insert_record, rows)
    lite.close()


def test_types_made_before_the_upgrade_keep_search(
    settings: Any, make_api: Any, db_url: str
) -> None:
    _database_at_version_5(settings.database_url)
    api = make_api(settings)
    shown = api.get("/v1/types/legacy")
    assert shown.status_code == 200, shown.text
    assert shown.json()["search"] is True
    assert shown.json()["name"] == "legacy"
    found = search(api, "legacy", "walr")
    assert sorted(r["id"] for r in found.json()["records"]) == ["r0", "r1"]
    # Like any type, it can opt out (and the next write costs no search entry).
    assert api.patch("/v1/types/legacy", json={"search": False}).status_code == 200
    assert search(api, "legacy", "walr").status_code == 400
    if not str(db_url).startswith("postgres"):
        assert fts_rows(api) == 0
