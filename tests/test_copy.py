"""`recordbase copy`: SQLite -> PostgreSQL -> SQLite, interrupted once, compared record by record."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recordbase.cli import main
from recordbase.config import Settings
from recordbase.stores import open_store
from recordbase.stores.transfer import Interrupted, copy_deployment
from tests.conftest import PG_DEFAULT, Api, require_service


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    from tests.pg import fresh_database

    yield from fresh_database(PG_DEFAULT)


def _settings(url: str) -> Settings:
    return Settings(database_url=url, default_rate=1e6, default_burst=10**6, job_worker=False)


def _everything(url: str) -> dict[str, Any]:
    """Every project, key, type (with its counter) and record of a database, as plain values."""

    async def read() -> dict[str, Any]:
        store = open_store(_settings(url))
        await store.open()
        try:

            def collect(tx: Any) -> dict[str, Any]:
                out: dict[str, Any] = {"projects": tx.list_projects(), "keys": tx.list_keys(None)}
                for project in out["projects"]:
                    for rtype in tx.list_types(project.id):
                        records = [r.as_dict() for r in tx.iter_records(rtype)]
                        out[rtype.key] = (rtype, tx.next_number(rtype), records)
                return out

            return await store.read(collect)
        finally:
            await store.close()

    return asyncio.run(read())


def _fill(api: Api) -> None:
    api.make_type(
        "contact",
        unique_keys=[{"name": "by_email", "fields": ["data.email"]}],
        indexes=[{"name": "by_age", "fields": ["data.age"]}],
    )
    api.make_type(
        "ticket", schema={"type": "object"}, naming={"mode": "autonumber", "prefix": "T-"}
    )
    for start in range(0, 1500, 500):
        batch = [
            {"external_id": f"x{i}", "data": {"email": f"p{i}@x.org", "age": i % 90, "tags": ["a"]}}
            for i in range(start, start + 500)
        ]
        assert api.post("/v1/types/contact/records", json={"records": batch}).status_code == 201
    tickets = [{"data": {"n": i}} for i in range(30)]
    assert api.post("/v1/types/ticket/records", json={"records": tickets}).status_code == 201
    # Project limits travel too (the round trip below compares projects).
    set_limits = api.service.set_project_limits
    api.client.portal.call(lambda: set_limits("p1", rate=5.0, burst=40))  # type: ignore[union-attr]


def test_copy_round_trip_compares_every_record(
    make_api: Callable[..., Api], tmp_path: Path, pg_url: str
) -> None:
    first = str(tmp_path / "first.db")
    source = make_api(_settings(first))
    _fill(source)
    page = source.get("/v1/types/contact/records?limit=7&sort=-data.age").json()

    with pytest.raises(Interrupted):  # a crash midway...
        copy_deployment(first, pg_url, chunk=400, progress=None, stop_after=2)
    bar = io.StringIO()
    counts = copy_deployment(first, pg_url, chunk=400, progress=bar)  # ...then resume
    assert counts["records"] == 1530 and counts["record_keys"] == 1530
    assert "records       [" in bar.getvalue() and "1530/1530" in bar.getvalue()

    second = str(tmp_path / "second.db")
    assert main(["copy", "--from", pg_url, "--to", second, "--chunk", "500"]) == 0
    original = _everything(first)
    assert len(original["contact"][2]) == 1500 and original["ticket"][1] == 31
    assert [(p.rate, p.burst) for p in original["projects"]] == [(5.0, 40)]
    assert _everything(pg_url) == original
    assert _everything(second) == original

    # The copy serves: same secret, same cursors, numbering continues, unique keys hold.
    target = make_api(_settings(pg_url))
    target.key = source.key
    nxt = target.get(
        f"/v1/types/contact/records?limit=7&sort=-data.age&cursor={page['next_cursor']}"
    )
    assert nxt.status_code == 200, nxt.text
    again = source.get(
        f"/v1/types/contact/records?limit=7&sort=-data.age&cursor={page['next_cursor']}"
    )
    assert [r["id"] for r in nxt.json()["records"]] == [r["id"] for r in again.json()["records"]]
    made = target.post("/v1/types/ticket/records", json={"record": {"data": {}}})
    assert made.json()["records"][0]["name"] == "T-31"
    clash = target.post(
        "/v1/types/contact/records", json={"record": {"data": {"email": "p3@x.org"}}}
    )
    assert clash.status_code == 409
