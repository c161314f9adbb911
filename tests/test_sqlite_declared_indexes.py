"""SQLite declared indexes are partial to their type (sqlite_indexes.py): other types' writes
put nothing in them; whole-table ones from earlier versions are replaced when the store
opens; and the sampled statistics get a rows-per-type estimate that keeps the planner on a
declared index once a type outgrows the sample."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest

from recordbase.config import Settings
from recordbase.stores.sqlite_indexes import ANALYSIS_LIMIT, analyze
from tests.conftest import Api
from tests.test_query_search_index import plan

pytestmark = pytest.mark.backend("sqlite")

SCHEMA = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "n": {"type": "integer"}},
}
INDEXES = [{"name": "by_customer", "fields": ["data.customer"]}]


def _db(api: Api) -> sqlite3.Connection:
    path = api.service.settings.database_url.removeprefix("sqlite:///")
    return sqlite3.connect(path, isolation_level=None)


def _type_no(conn: sqlite3.Connection, key: str) -> int:
    """The type's number: what SQLite's records hold for their type."""
    return int(conn.execute("SELECT no FROM record_types WHERE key = ?", (key,)).fetchone()[0])


def test_a_declared_index_holds_its_own_type_only(api: Api) -> None:
    api.make_type("a", schema=SCHEMA, indexes=INDEXES)
    api.make_type("b", schema=SCHEMA)
    for key, n in (("a", 30), ("b", 70)):
        body = {"records": [{"data": {"customer": f"c{i % 5}", "n": i}} for i in range(n)]}
        assert api.post(f"/v1/types/{key}/records", json=body).status_code == 201
    conn = _db(api)
    (name, sql), *more = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name LIKE 'rbx%'"
    ).fetchall()
    assert not more
    type_a = _type_no(conn, "a")  # a literal: what lets SQLite use a partial index
    assert sql.endswith(f"WHERE type_id = {type_a}"), sql
    # Only type a's 30 records are in it (b's 70 are not).
    count = conn.execute(
        f'SELECT count(*) FROM records INDEXED BY "{name}" WHERE type_id = {type_a}'
    )
    assert count.fetchone()[0] == 30
    r = api.get("/v1/types/a/records", params={"data.customer": "c1"})
    assert r.status_code == 200 and len(r.json()["records"]) == 6


def test_whole_table_indexes_of_earlier_versions_are_replaced_on_open(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = make_api(settings)
    api.make_type("a", schema=SCHEMA, indexes=INDEXES)
    conn = _db(api)
    type_no = _type_no(conn, "a")
    (name,) = conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'rbx%'").fetchone()
    # As an earlier version made it: over the whole table, led by type_id, no WHERE.
    old = name[: name.rindex("_")] + "_00000000"
    conn.execute(f'DROP INDEX "{name}"')
    conn.execute(
        f'CREATE INDEX "{old}" ON records (type_id, json_extract(data, \'$."customer"\'), id)'
    )
    api.client.__exit__(None, None, None)
    again = make_api(settings)  # opens the store again
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'rbx%'")]
    assert names == [name], names
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
    assert f"WHERE type_id = {type_no}" in sql
    assert again.get("/v1/types/a/records", params={"data.customer": "x"}).status_code == 200


def _stat(conn: sqlite3.Connection, index: str) -> list[int]:
    row = conn.execute(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'records' AND idx = ?", (index,)
    ).fetchone()
    return [int(x) for x in row[0].split() if x.isdigit()]


def test_statistics_count_a_type_beyond_the_sample(api: Api) -> None:
    big = 3 * ANALYSIS_LIMIT
    api.make_type("a", schema=SCHEMA, indexes=INDEXES)
    api.make_type("b", schema=SCHEMA)
    for key, n in (("a", big), ("b", big)):
        for start in range(0, n, 1000):
            body = {
                "records": [
                    {"data": {"customer": f"c{i}", "n": i}} for i in range(start, start + 1000)
                ]
            }
            assert api.post(f"/v1/types/{key}/records", json=body).status_code == 201
    conn = _db(api)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    conn.execute("ANALYZE")
    sampled = _stat(conn, "records_created")
    analyze(conn)
    conn.execute("COMMIT")
    # The sample saw one type (~ANALYSIS_LIMIT rows of it); the fix says total / types.
    assert sampled[1] <= ANALYSIS_LIMIT + 1 < big
    total, per_type = _stat(conn, "records_created")[:2]
    assert per_type >= total // 2 > ANALYSIS_LIMIT + 1  # (total: the sample's estimate)
    (declared,) = conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'rbx%'").fetchone()
    partial_total, partial_per_type = _stat(conn, declared)[:2]
    assert partial_per_type == partial_total  # one type: every entry shares its type_id
    # A fresh connection (as after a restart) plans a customer's page on the declared index.
    assert "by_customer" in plan(api, "a", {"data.customer": "c7"})
