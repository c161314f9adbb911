"""SQLite's records and key rows name their type by a number (`record_types.no`, migration
0009): a database from before the migration keeps every record, unique key, declared index
and full-text row; numbers are never given to a second type; lists find the right type's
records after types come and go."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from recordbase.config import Settings
from recordbase.stores.common import migrations
from recordbase.stores.sqlite_search import BODY
from tests.conftest import Api
from tests.test_query_search_index import plan as index_plan

pytestmark = pytest.mark.backend("sqlite")

SCHEMA = {
    "type": "object",
    "properties": {"email": {"type": "string"}, "customer": {"type": "string"}},
}
AT = "2026-01-01T00:00:00.000000Z"


def _definition(key: str) -> str:
    return orjson.dumps(
        {
            "key": key,
            "name": key,
            "description": "",
            "schema": SCHEMA,
            "naming": None,
            "unique_keys": [{"name": "by_email", "fields": ["data.email"]}],
            "indexes": [{"name": "by_customer", "fields": ["data.customer"]}],
            "aliases": {},
            "computed": {},
            "read_only": [],
            "discriminator": None,
            "constants": {},
            "search": True,
        }
    ).decode()


def _database_at_version_7(path: str) -> None:
    """Two types with records, key rows and FTS rows, as version 7 stored them (type ids)."""
    lite = sqlite3.connect(path, isolation_level=None)
    for version, sql in migrations("sqlite"):
        if version <= 7:
            lite.executescript(sql)
    lite.execute("INSERT INTO meta (k, v) VALUES ('schema_version', '7'), ('epoch', '0')")
    lite.execute("INSERT INTO projects (id, name, created_at) VALUES ('P1', 'p1', ?)", (AT,))
    for type_id, key in (("T_ONE", "one"), ("T_TWO", "two")):
        lite.execute(
            "INSERT INTO record_types (id, project_id, key, definition, version, created_at, "
            "updated_at) VALUES (?, 'P1', ?, ?, 1, ?, ?)",
            (type_id, key, _definition(key), AT, AT),
        )
        lite.execute("INSERT INTO search_types (type_id) VALUES (?)", (type_id,))
        for i in range(20):
            data = {"email": f"{key}{i}@x.org", "customer": f"c{i % 4}"}
            lite.execute(
                "INSERT INTO records (type_id, id, name, data, version, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, 1, ?, ?)",
                (
                    type_id,
                    f"{key}-{i:02d}",
                    f"walrus {key} {i}",
                    orjson.dumps(data).decode(),
                    AT,
                    AT,
                ),
            )
            lite.execute(
                "INSERT INTO record_keys (type_id, key_name, value, record_id) VALUES (?, ?, ?, ?)",
                (type_id, "by_email", orjson.dumps([data["email"]]).decode(), f"{key}-{i:02d}"),
            )
        lite.execute(
            f"INSERT INTO records_fts (rowid, body) SELECT seq, {BODY} FROM records "
            "WHERE type_id = ?",
            (type_id,),
        )
    lite.close()


def test_a_database_from_before_type_numbers_keeps_everything(
    settings: Settings, make_api: Callable[..., Api]
) -> None:
    path = settings.database_url.removeprefix("sqlite:///")
    _database_at_version_7(path)
    api = make_api(settings)
    conn = sqlite3.connect(path, isolation_level=None)
    numbers = dict(conn.execute("SELECT id, no FROM record_types").fetchall())
    assert sorted(numbers.values()) == [1, 2]
    held = conn.execute("SELECT DISTINCT typeof(type_id), type_id FROM records").fetchall()
    assert sorted(held) == [("integer", 1), ("integer", 2)]
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 40
    assert conn.execute("SELECT count(*) FROM meta WHERE k LIKE 'rebuild%'").fetchone()[0] == 0

    for key in ("one", "two"):
        listed = api.get(f"/v1/types/{key}/records", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        assert sorted(r["id"] for r in listed.json()["records"]) == [
            f"{key}-{i:02d}" for i in range(20)
        ]
        # The declared index was made again, for this type's number, and a filter uses it.
        found = api.get(f"/v1/types/{key}/records", params={"data.customer": "c1"})
        assert sorted(r["id"] for r in found.json()["records"]) == [
            f"{key}-{i:02d}" for i in range(1, 20, 4)
        ]
        plan = index_plan(api, key, {"data.customer": "c1"})
        assert "rbx_" in plan, plan
        # The unique key's rows came along: a second record with a taken email clashes.
        clash = api.post(
            f"/v1/types/{key}/records", json={"record": {"data": {"email": f"{key}3@x.org"}}}
        )
        assert clash.status_code == 409, clash.text
        # Full-text rows still match their records (records.seq was kept).
        hits = api.get(f"/v1/types/{key}/records", params={"q": "walrus"})
        assert hits.status_code == 200, hits.text
        assert len(hits.json()["records"]) == 20
    assert api.get("/v1/types/one/records/two-01").status_code == 404


def test_numbers_are_never_given_twice_and_lists_follow_them(
    api: Api, settings: Settings, tmp_path: Path
) -> None:
    api.make_type("a", schema=SCHEMA)
    assert (
        api.post("/v1/types/a/records", json={"record": {"data": {"email": "a"}}}).status_code
        == 201
    )
    # A list through a reader: the reader now knows type a's number.
    assert len(api.get("/v1/types/a/records").json()["records"]) == 1
    assert api.delete("/v1/types/a").status_code in (200, 204)
    api.make_type("b", schema=SCHEMA)
    assert api.get("/v1/types/b/records").json()["records"] == []
    api.make_type("a", schema=SCHEMA)  # the same key again: a new type, a new number
    assert api.get("/v1/types/a/records").json()["records"] == []
    path = settings.database_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path, isolation_level=None)
    assert [r[0] for r in conn.execute("SELECT no FROM record_types ORDER BY key")] == [3, 2]
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
