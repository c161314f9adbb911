"""PostgreSQL only: declared indexes become expression indexes that the planner uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.query import Condition, Query, SortKey
from tests.conftest import Api


def _plan(api: Api, query: Query) -> str:
    rtype = api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.read(lambda tx: tx.get_type(_project(tx), "contact"))
    )

    def explain(tx: Any) -> str:
        sql, params = tx._select(rtype, query, count=False)
        # Tiny tables are cheaper to scan; forbid that so the choice is between indexes.
        tx.conn.execute("SET LOCAL enable_seqscan = off")
        rows = tx.conn.execute("EXPLAIN " + sql, params).fetchall()
        return "\n".join(r[0] for r in rows)

    plan: str = api.client.portal.call(lambda: api.service.store.read(explain))  # type: ignore[union-attr]
    return plan


def _project(tx: Any) -> str:
    return str(tx.project_by_name("p1").id)


@pytest.mark.backend("postgresql")
def test_declared_index_is_created_used_and_dropped(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = make_api(settings)
    api.make_type("contact", indexes=[{"name": "by_age", "fields": ["data.age"]}])
    records = [{"data": {"age": i % 50, "email": f"e{i}@x.org"}} for i in range(300)]
    assert api.post("/v1/types/contact/records", json={"records": records}).status_code == 201
    api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.write(lambda tx: tx.conn.execute("ANALYZE records"))
    )
    by_age = Query(filter=Condition(("data", "age"), "eq", 7), sort=(SortKey(("id",)),))
    assert "rbx_" in _plan(api, by_age)
    sorted_by_age = Query(sort=(SortKey(("data", "age")), SortKey(("id",))), limit=5)
    assert "rbx_" in _plan(api, sorted_by_age)
    assert api.patch("/v1/types/contact", json={"indexes": []}).status_code == 200
    assert "rbx_" not in _plan(api, by_age)


@pytest.mark.backend("postgresql")
def test_instant_comparisons_survive_parallel_plans(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    """rb_instant has an exception block, so it must be PARALLEL UNSAFE: forced parallel
    plans (what a big table gets) must still answer a date-time filter and build its index."""
    api = make_api(settings)
    api.make_type("contact")
    body = {"records": [{"data": {"born": f"2020-01-{d:02d}T00:00:00Z"}} for d in range(1, 29)]}
    assert api.post("/v1/types/contact/records", json=body).status_code == 201

    def forced(tx: Any) -> int:
        tx.conn.execute("SET LOCAL force_parallel_mode = on")
        row = tx.conn.execute(
            "SELECT count(*) FROM records WHERE rb_instant(data->>'born') > rb_instant(%s)",
            ("2020-01-14T00:00:00+00:00",),
        ).fetchone()
        tx.conn.execute("SET LOCAL max_parallel_maintenance_workers = 2")
        tx.conn.execute("CREATE INDEX rb_test_born ON records (rb_instant(data->>'born'))")
        return int(row[0])

    count = api.client.portal.call(lambda: api.service.store.write(forced))  # type: ignore[union-attr]
    assert count == 14


@pytest.mark.backend("postgresql")
def test_declared_index_is_the_types_own_and_serves_generic_plans(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    """A declared index is partial: another type's writes add nothing to it, and a prepared
    statement's generic plan (the type named as a literal) still reads it."""
    api = make_api(settings)
    api.make_type("contact", indexes=[{"name": "by_age", "fields": ["data.age"]}])
    api.make_type("other")
    records = [{"data": {"age": i % 50}} for i in range(300)]
    assert api.post("/v1/types/contact/records", json={"records": records}).status_code == 201

    def size(tx: Any) -> int:
        row = tx.conn.execute(
            "SELECT pg_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relname LIKE 'rbx\\_%'"
        ).fetchone()
        return int(row[0])

    before = api.client.portal.call(lambda: api.service.store.read(size))  # type: ignore[union-attr]
    for _ in range(4):
        others = [{"data": {"age": i}} for i in range(500)]
        assert api.post("/v1/types/other/records", json={"records": others}).status_code == 201
    after = api.client.portal.call(lambda: api.service.store.read(size))  # type: ignore[union-attr]
    assert after == before

    rtype = api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.read(lambda tx: tx.get_type(_project(tx), "contact"))
    )
    by_age = Query(filter=Condition(("data", "age"), "eq", 7), sort=(SortKey(("id",)),))

    def generic(tx: Any) -> str:
        sql, params = tx._select(rtype, by_age, count=False)
        assert len(params) == 1 and rtype.id in sql
        tx.conn.execute("ANALYZE records")
        tx.conn.execute("SET LOCAL enable_seqscan = off")
        tx.conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        tx.conn.execute("PREPARE by_age AS " + sql.replace("%s", "$1"))
        rows = tx.conn.execute("EXPLAIN EXECUTE by_age('7')").fetchall()
        tx.conn.execute("DEALLOCATE by_age")
        return "\n".join(r[0] for r in rows)

    plan = api.client.portal.call(lambda: api.service.store.write(generic))  # type: ignore[union-attr]
    assert "rbx_" in plan, plan
    page = api.get("/v1/types/contact/records", params={"data.age": "7"}).json()
    assert len(page["records"]) == 6


@pytest.mark.backend("postgresql")
def test_pages_sorted_by_created_at_walk_the_records_created_index(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    # A NULLS FIRST on the never-null created_at/id did not match the index's order, so every
    # default-sorted page (and every keyset page) sorted the whole type.
    api = make_api(settings)
    api.make_type("contact", schema={"type": "object"})
    records = [{"data": {"status": ["open", "won"][i % 2]}} for i in range(300)]
    assert api.post("/v1/types/contact/records", json={"records": records}).status_code == 201
    _analyze(api)
    sort = (SortKey(("created_at",)), SortKey(("id",)))
    page = _plan(api, Query(sort=sort, limit=10))
    assert "records_created" in page and "Sort" not in page
    deep = _plan(api, Query(sort=sort, limit=10, after=("2026-01-01T00:00:00Z", "x")))
    assert "records_created" in deep and "Sort" not in deep
    newest = _plan(api, Query(sort=(SortKey(("created_at",), True), SortKey(("id",), True))))
    assert "records_created" in newest and "Sort" not in newest


@pytest.mark.backend("postgresql")
def test_equality_on_a_typed_field_has_no_type_guard(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    # The guard doubled the conditions and made the planner expect almost no match, so it
    # scanned the table instead of walking the sort's index; jsonb equality needs none.
    api = make_api(settings)
    api.make_type(
        "contact",
        schema={
            "type": "object",
            "properties": {"status": {"type": "string"}, "n": {"type": "integer"}},
        },
    )
    records = [{"data": {"status": ["open", "won"][i % 2], "n": i}} for i in range(40)]
    assert api.post("/v1/types/contact/records", json={"records": records}).status_code == 201
    page = _plan(api, Query(filter=Condition(("data", "status"), "eq", "open"), limit=5))
    assert "jsonb_typeof" not in page
    listed = api.get("/v1/types/contact/records", params={"data.status": "open", "limit": 100})
    assert len(listed.json()["records"]) == 20
    assert (
        api.get("/v1/types/contact/records", params={"data.n": "3"}).json()["records"][0]["data"][
            "n"
        ]
        == 3
    )
    # a string never equals a number, guard or not
    assert api.get("/v1/types/contact/records", params={"data.status": "3"}).json()["records"] == []


def _analyze(api: Api) -> None:
    api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.write(lambda tx: tx.conn.execute("ANALYZE records"))
    )


@pytest.mark.backend("postgresql")
def test_declared_index_expressions_get_statistics_so_filtered_pages_use_them(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    # Without statistics on the expression the planner took 0.5% of rows for `= value` and
    # walked records_created for a default-sorted page instead of the declared index.
    api = make_api(settings)
    schema = {"type": "object", "properties": {"customer": {"type": "string"}}}
    api.make_type("contact", schema=schema, indexes=[{"name": "by_c", "fields": ["data.customer"]}])
    for start in range(0, 4000, 1000):
        batch = [{"data": {"customer": f"c-{i % 2000}"}} for i in range(start, start + 1000)]
        assert api.post("/v1/types/contact/records", json={"records": batch}).status_code == 201
    _analyze(api)
    stats = api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.store.read(
            lambda tx: tx.conn.execute(
                "SELECT count(*) FROM pg_statistic_ext WHERE stxname LIKE 'rbt_%'"
            ).fetchone()[0]
        )
    )
    assert stats >= 1
    page = _plan(
        api,
        Query(
            filter=Condition(("data", "customer"), "eq", "c-7"),
            sort=(SortKey(("created_at",)), SortKey(("id",))),
            limit=100,
        ),
    )
    assert "rbx_" in page, page
