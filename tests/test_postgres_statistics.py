"""PostgreSQL only: the store refreshes planner statistics itself (PostgresStore.analyze), so a
type filled after the last ANALYZE is not planned as if empty — its upsert lookup by external
id uses the external-id index instead of reading every record of the type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from recordbase.config import Settings
from tests.conftest import Api

R = "/v1/types/{}/records"


def _lookup_plan(api: Api, type_key: str, external_id: str) -> str:
    def explain(tx: Any) -> str:
        type_id = tx.conn.execute(
            "SELECT id FROM record_types WHERE key = %s", (type_key,)
        ).fetchone()[0]
        rows = tx.conn.execute(
            "EXPLAIN SELECT id FROM records WHERE type_id = %s AND external_id = ANY(%s) "
            "ORDER BY id FOR UPDATE",
            (type_id, [external_id]),
        ).fetchall()
        return "\n".join(r[0] for r in rows)

    plan: str = api.client.portal.call(lambda: api.service.store.write(explain))  # type: ignore[union-attr]
    return plan


def _analyzed_then_upserted(api: Api, *, size: int, external: bool) -> Any:
    """Type `big` (20 batches of `size`, with external ids or not), statistics taken, then
    type `ups` filled by 3,000 upserts the statistics do not know; returns the store."""
    store: Any = api.service.store
    api.make_type("big")
    for b in range(20):
        batch = [
            {"external_id": f"b{b}-{i}", "data": {}} if external else {"data": {}}
            for i in range(size)
        ]
        assert api.post(R.format("big"), json={"records": batch}).status_code == 201
    assert store.analyze(force=True)
    api.make_type("ups")
    for b in range(30):
        batch = [{"external_id": f"u{b}-{i}", "data": {}} for i in range(100)]
        r = api.put(R.format("ups") + "?on=external_id", json={"records": batch})
        assert r.status_code == 200, r.text
    return store


@pytest.mark.backend("postgresql")
def test_a_type_filled_after_the_last_analyze_gets_its_own_estimate(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = make_api(settings.replace(pg_analyze_seconds=3600))  # the thread stays out of it
    store = _analyzed_then_upserted(api, size=100, external=True)
    stale = _lookup_plan(api, "ups", "u7-7")
    assert "records_external_id" not in stale  # the estimate of an empty type
    assert not store.analyze()  # analyzed within the window: another run would be wasted
    assert store.analyze(force=True)
    fresh = _lookup_plan(api, "ups", "u7-7")
    assert "records_external_id" in fresh, fresh


@pytest.mark.backend("postgresql")
def test_the_analyzer_runs_only_after_writes(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = make_api(settings.replace(pg_analyze_seconds=3600))
    store: Any = api.service.store

    def last_analyze() -> Any:
        def read(tx: Any) -> Any:
            row = tx.conn.execute(
                "SELECT last_analyze FROM pg_stat_user_tables WHERE relid = to_regclass('records')"
            ).fetchone()
            return row[0]

        return api.client.portal.call(lambda: store.read(read))  # type: ignore[union-attr]

    seen = store._writes
    assert store.analyze_if_written(seen) == seen and last_analyze() is None
    api.make_type("contact")
    assert api.post(R.format("contact"), json={"record": {"data": {}}}).status_code == 201
    after = store.analyze_if_written(seen)
    assert after > seen
    assert last_analyze() is not None


@pytest.mark.backend("postgresql")
def test_one_external_id_is_sought_by_index_before_statistics_catch_up(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    """An upsert of one record looks its external id up with the store's own condition
    (PgTx._in, PgTx._lock): planned with the estimate of an empty type, an array condition
    was a filter that read the whole type's index entries; one value is an index search."""
    api = make_api(settings.replace(pg_analyze_seconds=3600))  # the thread stays out of it
    # as the bench's read set: many records, no external ids
    store = _analyzed_then_upserted(api, size=1000, external=False)

    def plan(tx: Any) -> str:
        type_id = tx.conn.execute("SELECT id FROM record_types WHERE key = 'ups'").fetchone()[0]
        ((condition, args),) = tx._in(["u7-7"])
        sql = f"EXPLAIN SELECT id FROM records WHERE type_id = ? AND external_id {condition}"
        rows = tx.conn.execute((sql + tx._lock()).replace("?", "%s"), (type_id, *args))
        return "\n".join(r[0] for r in rows)

    found: str = api.client.portal.call(lambda: store.write(plan))  # type: ignore[union-attr]
    sought = [line for line in found.splitlines() if "Index Cond" in line]
    assert any("external_id" in line for line in sought), found
