"""The SQLite writer's transaction remembers a type's version and search flag for the rest of
its group (SqliteTx._type_state): one statement for a whole group of writes to a type, and
never a stale answer — a type changed earlier in the group, a change rolled back with the
write that made it, and search turned on in the group all show in later writes. On both
writer lanes, through the store's own write path on a real SQLite file."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.records import Principal, parse_record_input
from recordbase.core.service import RecordService
from recordbase.core.types import RecordType
from recordbase.stores import open_store
from tests.test_sqlite_groups import _trace

LANES = pytest.mark.parametrize("lane", ["thread", "loop"])


async def _service(tmp_path: Path, lane: str) -> tuple[RecordService, Principal, RecordType]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", sqlite_writer=lane)
    service = RecordService(open_store(settings), settings)
    await service.start()
    _key, secret = await service.create_key("memo", ["admin"])
    principal = await service.authenticate(secret)
    rtype = await service.create_type(
        principal, {"key": "note", "schema": {"type": "object"}, "search": False}
    )
    return service, principal, rtype


def _version(rtype: RecordType) -> Any:
    return lambda tx: tx.type_version(rtype.id)


def _set_version(rtype: RecordType, version: int, fail: bool = False) -> Any:
    def fn(tx: Any) -> str:
        tx.update_type(replace(rtype, version=version), None)
        if fail:
            assert tx.type_version(rtype.id) == version  # remembered, then rolled back
            raise ValueError("failed after changing the type")
        return "changed"

    return fn


@LANES
def test_a_group_reads_a_type_once_and_sees_its_own_changes(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        service, _p, rtype = await _service(tmp_path, lane)
        store: Any = service.store
        v = rtype.version
        try:
            statements: list[str] = []
            await store.write(_trace(statements))
            # One event-loop turn: one group (tests/test_sqlite_groups.py).
            looks = await asyncio.gather(*(store.write(_version(rtype)) for _ in range(5)))
            assert looks == [v] * 5
            assert sum("FROM record_types" in s for s in statements) == 1
            answers = await asyncio.gather(
                store.write(_version(rtype)),
                store.write(_set_version(rtype, v + 1)),
                store.write(_version(rtype)),
            )
            assert answers == [v, "changed", v + 1]
            # A change rolled back with its failing write is forgotten with it.
            answers = await asyncio.gather(
                store.write(_version(rtype)),
                store.write(_set_version(rtype, v + 7, fail=True)),
                store.write(_version(rtype)),
                return_exceptions=True,
            )
            assert answers[0] == v + 1 and answers[2] == v + 1
            assert isinstance(answers[1], ValueError)
            assert await store.write(_version(rtype)) == v + 1
            gone = await store.write(lambda tx: tx.type_version("no-such-type"))
            assert gone is None
        finally:
            store._writer.conn.set_trace_callback(None)
            await service.close()

    asyncio.run(main())


@LANES
def test_records_written_after_search_is_turned_on_in_the_same_group_are_found(
    tmp_path: Path, lane: str
) -> None:
    async def main() -> None:
        service, principal, rtype = await _service(tmp_path, lane)
        store: Any = service.store
        try:
            on = replace(rtype, definition=replace(rtype.definition, search=True))
            errors: list[Any] = []
            item = parse_record_input({"data": {"text": "zebracorn"}}, "", errors)
            assert not errors

            def turn_on(tx: Any) -> str:
                tx.sync_indexes(on)
                return "on"

            def searched(tx: Any) -> bool:
                return bool(tx._searched(rtype.id))

            # Write 1 learns the type has no search rows, write 2 turns search on, writes 3
            # and 4 must see it (the record gets its search row).
            answers = await asyncio.gather(
                store.write(searched),
                store.write(turn_on),
                store.write(searched),
                service.create_records(principal, "note", [item]),
            )
            assert answers[:3] == [False, "on", True]
            rows = store._epoch_conn.execute(
                "SELECT count(*) FROM records_fts WHERE records_fts MATCH 'zebracorn'"
            ).fetchone()
            assert rows[0] == 1
        finally:
            await service.close()

    asyncio.run(main())
