"""The usual create's shortcut (RecordWrites._usual_create): one record of data alone, of a
type with nothing to name, shape or key, is written without the general path's steps. It must
store and answer what the general path would, and hand everything else to it: invalid data,
a missing scope, a type changed since it was cached. Real service, real SQLite file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core import service_base
from recordbase.core.records import Record, RecordInput
from recordbase.core.service import RecordService
from recordbase.errors import Forbidden, ValidationFailed
from recordbase.stores import open_store

SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}, "email": {"type": "string"}},
    "additionalProperties": False,
}


def _stored(record: Record) -> dict[str, Any]:
    d = record.as_dict()
    for varies in ("id", "created_at", "updated_at"):
        d.pop(varies)
    return d


def _run(tmp_path: Path, test: Any) -> None:
    async def main() -> None:
        settings = Settings(database_url=str(tmp_path / "u.db"), job_worker=False)
        service = RecordService(open_store(settings), settings)
        await service.start()
        try:
            _key, secret = await service.create_key("p", ["admin"])
            principal = await service.authenticate(secret)
            await service.create_type(principal, {"key": "person", "schema": SCHEMA})
            await test(service, principal)
        finally:
            await service.close()

    asyncio.run(main())


def test_the_shortcut_stores_what_the_general_path_stores(tmp_path: Path) -> None:
    async def test(service: RecordService, p: Any) -> None:
        taken: list[str] = []
        original = service._usual_create

        def spy(*args: Any) -> Any:
            made = original(*args)
            taken.append("usual" if made is not None else "general")
            return made

        service._usual_create = spy  # type: ignore[method-assign]
        await service.type_for(p, "person")  # cached, and the cache kept fresh meanwhile
        service._epoch_read_at = time.monotonic() + 60
        data = {"age": 3, "email": "a@example.com"}
        (usual,) = await service.create_records(p, "person", [RecordInput(data=dict(data))])
        # An explicit null name is not data alone: the general path writes it.
        (general,) = await service.create_records(
            p, "person", [RecordInput(data=dict(data), name=None)]
        )
        assert taken == ["usual", "general"]
        assert _stored(usual) == _stored(general)
        for made in (usual, general):
            stored = await service.get_record(p, "person", made.id)
            assert stored.as_dict() == made.as_dict()

    _run(tmp_path, test)


def test_what_the_shortcut_declines_gets_the_general_paths_errors(tmp_path: Path) -> None:
    async def test(service: RecordService, p: Any) -> None:
        with pytest.raises(ValidationFailed) as bad:
            await service.create_records(p, "person", [RecordInput(data={"age": "x"})])
        assert bad.value.errors[0].path == "/records/0/data/age"
        _key, secret = await service.create_key("p", ["records:read"])
        reader = await service.authenticate(secret)
        with pytest.raises(Forbidden):
            await service.create_records(reader, "person", [RecordInput(data={"age": 1})])

    _run(tmp_path, test)


def test_a_type_changed_since_it_was_cached_is_read_again(tmp_path: Path) -> None:
    """Another process changed the type (here: the cache is handed the older version while
    the store holds the new one); the shortcut's write finds the version moved and the
    general path reads the type again, so the new schema decides."""

    async def test(service: RecordService, p: Any) -> None:
        older = await service.type_for(p, "person")
        await service.update_type(p, "person", {"schema": {**SCHEMA, "required": ["email"]}})
        service._types[(p.project_id, "person")] = older
        service._epoch_bumps = service_base._LOCAL_BUMPS[0]  # the cache looks fresh
        service._epoch_read_at = time.monotonic() + 60
        assert service.cached_type(p, "person") is older
        with pytest.raises(ValidationFailed) as missing:
            await service.create_records(p, "person", [RecordInput(data={"age": 1})])
        assert "email" in str(missing.value.errors)
        newer = await service.type_for(p, "person")
        assert newer.version == older.version + 1
        # and a record the new schema accepts goes through
        (made,) = await service.create_records(
            p, "person", [RecordInput(data={"email": "b@example.com"})]
        )
        assert (await service.get_record(p, "person", made.id)).data == {"email": "b@example.com"}

    _run(tmp_path, test)
