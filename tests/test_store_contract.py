"""The store contract: the Store / ReadTx / WriteTx API itself, run on every database URL.

These tests talk to the store directly (no HTTP, no service), so a new backend shows exactly
which promise of core/store.py it breaks: persistence, ordering, keyset paging, unique
constraints surfacing as UniqueClash with the key's name, whole-call rollback, the epoch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.query import Condition, Not, Or, Query, SortKey
from recordbase.core.records import ApiKey, Project, Record, Scope
from recordbase.core.store import Store, UniqueClash
from recordbase.core.types import KeySpec, Naming, RecordType, TypeDefinition
from recordbase.stores import open_store

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def run(url: str, body: Callable[[Store], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        store = open_store(Settings(database_url=url))
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def make_type(naming: Naming | None = None, **kw: Any) -> RecordType:
    definition = TypeDefinition(
        key="contact",
        name="Contact",
        description="",
        schema={"type": "object"},
        naming=naming,
        **kw,
    )
    return RecordType("T1", "P1", definition, 1, T0, T0)


def record(i: int, **kw: Any) -> Record:
    values: dict[str, Any] = {
        "id": f"R{i:04d}",
        "type": "contact",
        "name": None,
        "external_id": None,
        "owner": None,
        "data": {"n": i, "email": f"e{i}@x.org", "tags": ["a", f"t{i % 3}"]},
        "description": None,
        "attachments": [],
        "version": 1,
        "created_at": T0 + timedelta(seconds=i),
        "updated_at": T0 + timedelta(seconds=i),
        "created_by": "k",
        "updated_by": "k",
    }
    values.update(kw)
    return Record(**values)


async def setup_type(store: Store, rtype: RecordType) -> None:
    def write(tx: Any) -> None:
        tx.insert_project(Project("P1", "p1", T0))
        tx.insert_type(rtype, 1)

    await store.write(write)


def test_projects_keys_and_meta(db_url: str) -> None:
    async def body(store: Store) -> None:
        key = ApiKey(
            "K1", "P1", "p1", "rb_ab", (Scope("admin", ""),), 5.0, 10, T0, None, None, None
        )

        def write(tx: Any) -> None:
            tx.insert_project(Project("P1", "p1", T0))
            tx.insert_key(key, "digest-1")
            tx.set_meta("answer", "42")

        await store.write(write)
        found = await store.read(lambda tx: tx.key_by_hash("digest-1"))
        assert found == key
        assert found.created_at.utcoffset() == timedelta(0)
        assert await store.read(lambda tx: tx.key_by_hash("nope")) is None
        assert await store.read(lambda tx: tx.get_meta("answer")) == "42"
        assert [p.name for p in await store.read(lambda tx: tx.list_projects())] == ["p1"]
        later = T0 + timedelta(hours=1)
        await store.write(lambda tx: tx.revoke_key("K1", later))
        await store.write(lambda tx: tx.touch_keys([("K1", later)]))
        (listed,) = await store.read(lambda tx: tx.list_keys("P1"))
        assert listed.revoked_at == later and listed.last_used_at == later
        assert listed.rate == 5.0 and listed.burst == 10

    run(db_url, body)


def test_epoch_changes_when_bumped(db_url: str) -> None:
    async def body(store: Store) -> None:
        before = await store.epoch()
        await store.write(lambda tx: tx.bump_epoch())
        assert await store.epoch() != before

    run(db_url, body)


def test_types_numbers_and_rollback(db_url: str) -> None:
    async def body(store: Store) -> None:
        rtype = make_type(Naming("autonumber", "C-", 3, 1))
        await setup_type(store, rtype)
        assert await store.read(lambda tx: tx.get_type("P1", "contact")) == rtype
        assert await store.write(lambda tx: tx.allocate_numbers(rtype, 3)) == 1
        assert await store.write(lambda tx: tx.allocate_numbers(rtype, 2)) == 4

        def fails(tx: Any) -> None:
            tx.allocate_numbers(rtype, 10)
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await store.write(fails)
        # The failed call's numbers came back: no gap.
        assert await store.read(lambda tx: tx.next_number(rtype)) == 6
        assert await store.read(lambda tx: tx.type_version("T1")) == 1

    run(db_url, body)


def test_records_round_trip_and_queries(db_url: str) -> None:
    async def body(store: Store) -> None:
        rtype = make_type()
        await setup_type(store, rtype)
        records = [record(i, external_id=f"x{i}") for i in range(1, 8)]
        await store.write(lambda tx: tx.insert_records(rtype, records, []))
        got = await store.read(lambda tx: tx.get_records(rtype, ["R0003", "R0005"]))
        assert sorted(got, key=lambda r: r.id) == [records[2], records[4]]
        by_ext = await store.read(lambda tx: tx.find_records(rtype, "external_id", ["x7"]))
        assert [r.id for r in by_ext] == ["R0007"]
        query = Query(
            filter=Or((Condition(("data", "n"), "gt", 5), Condition(("data", "n"), "lt", 2))),
            sort=(SortKey(("data", "n"), True), SortKey(("id",), True)),
            limit=2,
        )
        first = await store.read(lambda tx: tx.list_records(rtype, query))
        assert [r.id for r in first] == ["R0007", "R0006"]
        after = (6, "R0006")
        rest = await store.read(
            lambda tx: tx.list_records(rtype, Query(**{**query.__dict__, "after": after}))
        )
        assert [r.id for r in rest] == ["R0001"]
        member = Condition(("data", "tags"), "contains", "t1")
        assert await store.read(lambda tx: tx.count_records(rtype, member, None)) == 3
        assert await store.read(lambda tx: tx.count_records(rtype, Not(member), None)) == 4
        all_ids = [r.id for r in await store.read(lambda tx: list(tx.iter_records(rtype)))]
        assert all_ids == [r.id for r in records]

    run(db_url, body)


def test_batches_of_new_records_round_trip_every_column(db_url: str) -> None:
    """Records made together (one timestamp object, one author, version 1) go in with what
    they share bound once (SQLite); whichever optional columns some of them set, every
    record reads back exactly as given, in batches of 1, of 100 (several statements) and
    with timestamps of their own (the general statement)."""

    async def body(store: Store) -> None:
        rtype = make_type()
        await setup_type(store, rtype)
        at = T0 + timedelta(days=1)

        def made(i: int, **kw: Any) -> Record:
            return record(i, created_at=at, updated_at=at, created_by="key-9", **kw)

        def mixed(i: int) -> Record:
            return made(
                i,
                updated_by="key-9",
                name=f"name {i}" if i % 3 == 0 else None,
                external_id=f"ext-{i}" if i % 7 == 0 else None,
                owner=f"owner {i % 4}" if i % 5 == 0 else None,
                description=f"about {i}" if i % 11 == 0 else None,
                attachments=[{"file": f"f{i}.txt"}] if i % 13 == 0 else [],
            )

        plain = [made(i, updated_by="key-9") for i in range(100)]
        varied = [mixed(i) for i in range(100, 200)]
        single = [mixed(330)]
        described = [made(i, updated_by="key-9", description="d") for i in range(400, 403)]
        # timestamps of their own: not a batch made together
        own = [record(i) for i in range(500, 510)]
        edited = [made(600, updated_by="key-9", version=3)]
        groups = [plain, varied, single, described, own, edited]
        for group in groups:
            await store.write(lambda tx, g=group: tx.insert_records(rtype, g, []))
        for group in groups:
            ids = [r.id for r in group]
            got = await store.read(lambda tx, ids=ids: tx.get_records(rtype, ids))
            assert sorted(got, key=lambda r: r.id) == sorted(group, key=lambda r: r.id)

    run(db_url, body)


def test_update_delete_and_key_rows(db_url: str) -> None:
    async def body(store: Store) -> None:
        rtype = make_type(unique_keys=(KeySpec("by_email", ("data.email",)),))
        await setup_type(store, rtype)
        one, two = record(1), record(2)
        rows = [("R0001", "by_email", '["a"]'), ("R0002", "by_email", '["b"]')]
        await store.write(lambda tx: tx.insert_records(rtype, [one, two], rows))
        one.data = {"n": 10}
        one.version = 2
        await store.write(
            lambda tx: tx.update_records(rtype, [one], [("R0001", "by_email", '["c"]')])
        )
        keys = await store.read(lambda tx: tx.find_keys(rtype, "by_email", ['["a"]', '["c"]']))
        assert keys == {'["c"]': "R0001"}
        (stored,) = await store.read(lambda tx: tx.get_records(rtype, ["R0001"]))
        assert stored.data == {"n": 10} and stored.version == 2
        await store.write(lambda tx: tx.delete_records(rtype, ["R0002"]))
        assert await store.read(lambda tx: tx.find_keys(rtype, "by_email", ['["b"]'])) == {}
        assert await store.write(lambda tx: tx.delete_type(rtype)) == 1
        assert await store.read(lambda tx: tx.get_type("P1", "contact")) is None

    run(db_url, body)


@pytest.mark.parametrize(
    ("clash", "expected"),
    [("id", "__id"), ("external_id", "__external_id"), ("key", "by_email")],
)
def test_unique_clash_names_the_key_and_rolls_back(db_url: str, clash: str, expected: str) -> None:
    async def body(store: Store) -> None:
        rtype = make_type(unique_keys=(KeySpec("by_email", ("data.email",)),))
        await setup_type(store, rtype)
        first = record(1, external_id="x1")
        await store.write(
            lambda tx: tx.insert_records(rtype, [first], [("R0001", "by_email", "e")])
        )
        second = record(2, external_id="x2")
        rows = [("R0002", "by_email", "f")]
        if clash == "id":
            second.id = "R0001"
        elif clash == "external_id":
            second.external_id = "x1"
        else:
            rows = [("R0002", "by_email", "e")]

        def write(tx: Any) -> None:
            tx.insert_records(rtype, [record(3)], [])  # must vanish with the failed call
            tx.insert_records(rtype, [second], rows)

        with pytest.raises(UniqueClash) as info:
            await store.write(write)
        # SQLite's error text does not say which declared key fired.
        names = {expected, "__key"} if clash == "key" and store.dialect == "sqlite" else {expected}
        assert info.value.key_name in names
        assert await store.read(lambda tx: tx.get_records(rtype, ["R0003"])) == []

    run(db_url, body)


def test_a_migration_numbered_below_an_applied_one_still_runs(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel branches can land migration 6 after 7 was applied: 6 must still run."""
    import sqlite3

    from recordbase.stores import common

    db = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    db.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('migration:0001', 'applied')")
    db.execute("INSERT INTO meta VALUES ('migration:0003', 'applied')")
    ran: list[str] = []
    monkeypatch.setattr(common, "migrations", lambda d: [(1, "one"), (2, "two"), (3, "three")])
    version = common.apply_migrations(db, "sqlite", True, lambda conn, sql: ran.append(sql))
    assert ran == ["two"] and version == 3
    keys = {r[0] for r in db.execute("SELECT k FROM meta")}
    assert {"migration:0001", "migration:0002", "migration:0003", "schema_version"} <= keys
    db.close()
