"""Held inserts (stores/sqlite_held.py): the new records of a group's writes go into SQLite
as one multi-row INSERT, and nothing else changes — each write's records are stored in the
order the writes came, a write that reads sees the rows held before it, and a clash among
held rows fails only the write that made it, with the same error as before. On both writer
lanes, through the service on a real SQLite file; one event-loop turn of writes is one group
(tests/test_sqlite_groups.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.records import Principal, Record, RecordInput, parse_record_input
from recordbase.core.service import RecordService
from recordbase.core.store import UniqueClash
from recordbase.errors import DuplicateId, UniqueViolation
from recordbase.stores import open_store
from tests.test_sqlite_groups import _trace

LANES = pytest.mark.parametrize("lane", ["thread", "loop"])


async def _service(tmp_path: Path, lane: str) -> tuple[RecordService, Principal]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", sqlite_writer=lane)
    service = RecordService(open_store(settings), settings)
    await service.start()
    _key, secret = await service.create_key("held", ["admin"])
    principal = await service.authenticate(secret)
    for key in ("note", "memo"):
        await service.create_type(principal, {"key": key, "schema": {"type": "object"}})
    # Both types cached under the store's latest epoch (it is read again only after
    # EPOCH_WINDOW): from here a create queues its write without waiting, so the writes of
    # one gather queue in call order.
    await asyncio.sleep(0.01)
    for key in ("note", "memo"):
        await service.type_for(principal, key)
    return service, principal


def _item(body: dict[str, Any]) -> RecordInput:
    errors: list[Any] = []
    item = parse_record_input(body, "", errors)
    assert not errors
    return item


def _stored(service: RecordService) -> list[tuple[str, str]]:
    """(type number, id) of every record, in the order they were inserted."""
    conn = service.store._epoch_conn  # type: ignore[attr-defined]
    return [(str(r[0]), r[1]) for r in conn.execute("SELECT type_id, id FROM records ORDER BY seq")]


@LANES
def test_a_groups_single_creates_are_one_insert_in_write_order(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        service, p = await _service(tmp_path, lane)
        store: Any = service.store
        try:
            statements: list[str] = []
            await store.write(_trace(statements))
            # No client ids: a client id is looked up first, and a read sends what is held.
            bodies: list[dict[str, Any]] = [{"data": {"n": i}} for i in range(6)]
            bodies[2]["external_id"] = "ext-2"  # another column: another statement
            types = ["note", "note", "note", "note", "memo", "note"]
            made = await asyncio.gather(
                *(
                    service.create_records(p, t, [_item(b)])
                    for t, b in zip(types, bodies, strict=True)
                )
            )
            inserts = [s for s in statements if s.startswith("INSERT INTO records")]
            # 0-1 | 2 (external id) | 3 | 4 (memo) | 5: only consecutive alike rows share one
            assert len(inserts) == 5
            # Ids are made as the writes queue (ascending ULIDs): stored in the same order.
            assert [rid for _t, rid in _stored(service)] == sorted(r[0].id for r in made)
            statements.clear()
            made = await asyncio.gather(
                *(service.create_records(p, "note", [_item({"data": {"n": i}})]) for i in range(8))
            )
            inserts = [s for s in statements if s.startswith("INSERT INTO records")]
            assert len(inserts) == 1 and inserts[0].count("), (") == 7
            got = await service.get_record(p, "note", made[5][0].id)
            assert got.data == {"n": 5} and got.created_at == made[5][0].created_at
        finally:
            store._writer.conn.set_trace_callback(None)
            await service.close()

    asyncio.run(main())


@LANES
def test_a_clash_among_held_rows_fails_that_write_alone(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        service, p = await _service(tmp_path, lane)
        try:
            await service.create_records(p, "note", [_item({"id": "old", "data": {}})])
            answers = await asyncio.gather(
                service.create_records(p, "note", [_item({"id": "a", "data": {"n": 1}})]),
                service.create_records(p, "note", [_item({"id": "a", "data": {"n": 2}})]),
                service.create_records(p, "note", [_item({"id": "old", "data": {}})]),
                service.create_records(p, "note", [_item({"id": "b", "data": {"n": 3}})]),
                return_exceptions=True,
            )
            assert isinstance(answers[1], DuplicateId) and isinstance(answers[2], DuplicateId)
            assert [r[0].id for r in (answers[0], answers[3])] == ["a", "b"]  # type: ignore[index]
            assert [rid for _t, rid in _stored(service)] == ["old", "a", "b"]
            got = await service.get_record(p, "note", "a")
            assert got.data == {"n": 1}
            # An external id taken twice in one group: the second write gets the 409.
            answers = await asyncio.gather(
                service.create_records(p, "memo", [_item({"external_id": "x", "data": {}})]),
                service.create_records(p, "memo", [_item({"external_id": "x", "data": {}})]),
                return_exceptions=True,
            )
            assert not isinstance(answers[0], BaseException)
            assert isinstance(answers[1], UniqueViolation)
            assert "external_id" in str(answers[1])
        finally:
            await service.close()

    asyncio.run(main())


@LANES
def test_a_write_that_reads_sees_the_rows_held_before_it(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        service, p = await _service(tmp_path, lane)
        try:
            created, upserted = await asyncio.gather(
                service.create_records(p, "note", [_item({"external_id": "k", "data": {"v": 1}})]),
                service.upsert_records(
                    p, "note", "external_id", [_item({"external_id": "k", "data": {"v": 2}})]
                ),
            )
            assert upserted.updated == [created[0].id] and upserted.created == []
            got = await service.get_record(p, "note", created[0].id)
            assert got.data == {"v": 2} and got.version == 2
            assert len(_stored(service)) == 1
        finally:
            await service.close()

    asyncio.run(main())


@LANES
def test_held_rows_that_clash_when_sent_fail_the_write_that_made_them(
    tmp_path: Path, lane: str
) -> None:
    # Records inserted straight through the store, with no look-up first: the clash shows
    # only when the held rows are sent (at the group's end), and the replay pins it on the
    # second write, as the unique index would have without holding.
    async def main() -> None:
        service, p = await _service(tmp_path, lane)
        store: Any = service.store
        rtype = await service.type_for(p, "note")
        now = datetime.now(UTC)

        def insert(rid: str, n: int) -> Any:
            record = Record(
                rid, "note", None, None, None, {"n": n}, None, [], 1, now, now, "t", "t"
            )
            return lambda tx: tx.insert_records(rtype, [record], []) or rid

        try:
            answers = await asyncio.gather(
                store.write(insert("x", 1)),
                store.write(insert("y", 2)),
                store.write(insert("x", 3)),
                return_exceptions=True,
            )
            assert answers[:2] == ["x", "y"]
            assert isinstance(answers[2], UniqueClash) and answers[2].key_name == "__id"
            assert [rid for _t, rid in _stored(service)] == ["x", "y"]
            assert (await service.get_record(p, "note", "x")).data == {"n": 1}
        finally:
            await service.close()

    asyncio.run(main())
