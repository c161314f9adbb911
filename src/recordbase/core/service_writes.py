"""RecordService, part two: record writes — create, upsert, update, delete (see core/service.py).

Each write checks scope and input before its transaction, then runs one function inside one
store transaction (`_write`), retrying once when the type changed underneath.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

import orjson

from recordbase.core.jobs import AFTER_WRITE
from recordbase.core.records import (
    UNSET,
    Principal,
    Record,
    RecordInput,
)
from recordbase.core.service_base import ServiceBase, _TypeChanged
from recordbase.core.shaping import shaper_for
from recordbase.core.store import ReadTx, UniqueClash, WriteTx
from recordbase.core.types import RecordType
from recordbase.core.writes import (
    RecordMaker,
    all_key_rows,
    check_batch_duplicates,
    check_clashes,
    data_json,
    key_rows,
    merge_patch,
    unique_clash_error,
    value_at,
)
from recordbase.errors import (
    BadRequest,
    BatchTooLarge,
    FieldError,
    PreconditionFailed,
    RecordNotFound,
    ValidationFailed,
)

T = TypeVar("T")


@dataclass(frozen=True)
class UpsertResult:
    records: list[Record]
    created: list[str]
    updated: list[str]


class RecordWrites(ServiceBase):
    # writes ------------------------------------------------------------------------------

    async def _write(
        self, p: Principal, type_key: str, make: Callable[[RecordType], Callable[[WriteTx], T]]
    ) -> T:
        """Run a record write; if the type changed underneath, reload it and retry once."""
        after = AFTER_WRITE.get()  # set by the job runner (core/job_runner.py) only
        for attempt in (0, 1):
            rtype = self.cached_type(p, type_key) or await self.type_for(p, type_key)
            fn = make(rtype)

            def guarded(tx: WriteTx, rtype: RecordType = rtype, fn: Any = fn) -> T:
                if tx.type_version(rtype.id) != rtype.version:
                    raise _TypeChanged
                try:
                    result: T = fn(tx)
                except UniqueClash as exc:
                    raise unique_clash_error(rtype, exc.key_name) from exc
                if after is not None:
                    after(tx, result)
                return result

            try:
                return await self.store.write(guarded)
            except _TypeChanged:
                self._types.pop((p.project_id, type_key), None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _check_batch(self, items: Sequence[Any]) -> None:
        if not items:
            raise ValidationFailed(
                "A batch needs at least one record.",
                errors=[FieldError("/records", "min_items", "at least one record")],
            )
        if len(items) > self.settings.max_batch:
            raise BatchTooLarge(
                f"{len(items)} records in one batch; the limit is {self.settings.max_batch}.",
                extra={"limit": self.settings.max_batch},
            )

    def _maker(
        self, p: Principal, rtype: RecordType, now: datetime, ids: Callable[[], str] | None = None
    ) -> RecordMaker:
        validate = self.validators.get(rtype.id, rtype.version, rtype.schema)
        max_bytes = self.settings.max_record_bytes
        return RecordMaker(rtype, validate, max_bytes, p.actor, now, ids or self.new_id)

    def _new_record(
        self,
        p: Principal,
        rtype: RecordType,
        item: RecordInput,
        where: str,
        errors: list[FieldError],
        now: datetime,
    ) -> Record:
        """One new record; problems go to `errors` (see RecordMaker; batches use it directly)."""
        return self._maker(p, rtype, now).make(item, where, errors)

    async def create_records(
        self, p: Principal, type_key: str, items: Sequence[RecordInput]
    ) -> list[Record]:
        if len(items) == 1:
            usual = self._usual_create(p, type_key, items[0])
            if usual is not None:
                try:
                    return await usual
                except _TypeChanged:  # as _write: forget the type, then the way below
                    self._types.pop((p.project_id, type_key), None)
        p.require("records", "write", type_key)
        if not items or len(items) > self.settings.max_batch:
            self._check_batch(items)  # raises
        client_ids = 0  # loops rather than generators here and below: a frame less each
        for item in items:
            if isinstance(item.id, str):
                client_ids += 1

        def make(rtype: RecordType) -> Callable[[WriteTx], list[Record]]:
            now = self.clock()
            errors: list[FieldError] = []
            # The batch's new ids in one call (one lock, one clock read: core/clock.py).
            fresh = iter(self.new_ids(len(items) - client_ids))
            maker = self._maker(p, rtype, now, fresh.__next__)
            records = [maker.make(item, f"/records/{i}", errors) for i, item in enumerate(items)]
            if errors:
                _raise_invalid(errors)
            plain = not (client_ids or rtype.keyed)
            for r in records:
                if r.external_id is not None:
                    plain = False
                    break
            if plain:
                # Fresh ids, no external ids, no key rows, no names to number: `write` below
                # would find nothing to check (the usual create) and only insert.
                def insert(tx: WriteTx) -> list[Record]:
                    tx.insert_records(rtype, records, ())
                    return records

                return insert

            def write(tx: WriteTx) -> list[Record]:
                self._number(tx, rtype, records)
                check_batch_duplicates(rtype, records)
                rows = all_key_rows(rtype, records)
                # Fresh ULIDs cannot clash: look ids up only when the client chose some.
                check_clashes(tx, rtype, records, rows, check_ids=client_ids > 0)
                tx.insert_records(rtype, records, rows)
                return records

            return write

        return await self._write(p, type_key, make)

    def _usual_create(
        self, p: Principal, type_key: str, item: RecordInput
    ) -> Awaitable[list[Record]] | None:
        """The usual create, written as the way below would write it, without its steps for
        what it cannot hold: one record of data alone, valid, by a key that may write it, of
        a cached type with nothing to name, shape or key, outside a job. None, having done
        nothing, for anything else (errors included): the way below then decides. ~3 µs of
        the event loop's ~10 for a create's service part (docs/performance.md, round 16)."""
        data = item.data
        if (
            type(data) is not dict
            or item.id is not UNSET
            or item.name is not UNSET
            or item.external_id is not UNSET
            or item.owner is not UNSET
            or item.description is not UNSET
            or item.attachments is not UNSET
            or AFTER_WRITE.get() is not None
            or not p.can("records", "write", type_key)
            or self.settings.max_batch < 1
        ):
            return None
        rtype = self.cached_type(p, type_key)
        if rtype is None:
            return None
        kind = (rtype.id, rtype.version)
        is_valid = self._usual_types.get(kind)
        if is_valid is None:
            is_valid = self._usual_types[kind] = self._usual_validity(rtype)
        if is_valid is False:
            return None
        raw = orjson.dumps(data)
        if len(raw) > self.settings.max_record_bytes or not is_valid(data):
            return None
        now, actor = self.clock(), p.actor
        # RecordMaker.make's record of data alone
        record = Record(
            self.new_id(), rtype.key, None, None, None, data, None, [], 1,
            now, now, actor, actor, raw.decode(),
        )  # fmt: skip
        records = [record]
        version = rtype.version

        def insert(tx: WriteTx) -> list[Record]:  # _write's guarded and create_records' insert
            if tx.type_version(rtype.id) != version:
                raise _TypeChanged
            tx.insert_records(rtype, records, ())
            return records

        return self.store.write(insert)

    def _usual_validity(self, rtype: RecordType) -> Callable[[Any], bool] | Literal[False]:
        """The type's data check for `_usual_create`, or False when its records are never
        usual (naming rules, unique keys or shaping)."""
        if len(self._usual_types) >= 1024:
            self._usual_types.clear()
        if rtype.naming is not None or rtype.keyed or not shaper_for(rtype).idle:
            return False
        is_valid: Callable[[Any], bool] = self.validators.get(
            rtype.id, rtype.version, rtype.schema
        ).is_valid
        return is_valid

    def _number(self, tx: WriteTx, rtype: RecordType, records: Sequence[Record]) -> None:
        naming = rtype.naming
        if naming is None or naming.mode != "autonumber" or not records:
            return
        first = tx.allocate_numbers(rtype, len(records))
        for offset, record in enumerate(records):
            record.name = naming.format(first + offset)

    async def upsert_records(
        self,
        p: Principal,
        type_key: str,
        on: str,
        items: Sequence[RecordInput],
        *,
        merge: bool = False,
    ) -> UpsertResult:
        """Create or update each item, matched by `on` (external_id, name or a unique key)."""
        p.require("records", "write", type_key)
        self._check_batch(items)

        def make(rtype: RecordType) -> Callable[[WriteTx], UpsertResult]:
            match = self._upsert_matcher(rtype, on)
            now = self.clock()
            maker = self._maker(p, rtype, now)
            errors: list[FieldError] = []
            wanted: list[str] = []
            for i, item in enumerate(items):
                value = match.key_of(item)
                if value is None:
                    errors.append(
                        FieldError(f"/records/{i}/{match.label}", "required", f"upsert on {on!r}")
                    )
                wanted.append(value or "")
            if len(set(wanted)) != len(wanted):
                errors.append(FieldError("/records", "duplicate", f"two records share {on!r}"))
            _raise_invalid(errors)

            def write(tx: WriteTx) -> UpsertResult:
                existing = match.find(tx, wanted)
                created: list[Record] = []
                updated: list[Record] = []
                out: list[Record] = []
                created_at: list[int] = []  # positions in the request, for error paths
                updated_at: list[int] = []
                before: dict[str, Record] = {}
                for i, item in enumerate(items):
                    where = f"/records/{i}"
                    old = existing.get(wanted[i])
                    if old is None:
                        record = maker.make(item, where, errors)
                        created.append(record)
                        created_at.append(i)
                    else:
                        record = self._changed(p, rtype, old, item, where, errors, now, merge)
                        updated.append(record)
                        updated_at.append(i)
                        before[old.id] = old
                    out.append(record)
                _raise_invalid(errors)
                self._number(tx, rtype, created)
                check_batch_duplicates(rtype, out)
                new_rows = [row for r in created for row in key_rows(rtype, r)]
                upd_rows = [row for r in updated for row in key_rows(rtype, r)]
                check_clashes(
                    tx,
                    rtype,
                    created,
                    new_rows,
                    check_ids=_client_ids(items),
                    at=created_at,
                    externals_free=match.column == "external_id",
                )
                check_clashes(
                    tx, rtype, updated, upd_rows, check_ids=False, at=updated_at, before=before
                )
                if updated:
                    tx.update_records(rtype, updated, upd_rows, before=before)
                if created:
                    tx.insert_records(rtype, created, new_rows)
                return UpsertResult(out, [r.id for r in created], [r.id for r in updated])

            return write

        return await self._write(p, type_key, make)

    def _upsert_matcher(self, rtype: RecordType, on: str) -> _Matcher:
        choices = ["external_id", "name", *(k.name for k in rtype.definition.unique_keys)]
        if on == "external_id":
            return _Matcher(
                rtype, "external_id", lambda i: _str_or_none(i.external_id), "external_id"
            )
        if on == "name":
            if rtype.naming is None or rtype.naming.mode != "unique":
                raise BadRequest(
                    f"Upsert by name needs unique naming on {rtype.key!r} "
                    '(naming: {"mode": "unique"}).'
                )
            return _Matcher(rtype, "name", lambda i: _str_or_none(i.name), "name")
        spec = rtype.unique_key(on)
        if spec is None:
            raise BadRequest(
                f"Cannot upsert on {on!r}; valid: {', '.join(choices)}.",
                extra={"valid": choices},
            )

        def key_of(item: RecordInput) -> str | None:
            probe = Record(
                "",
                rtype.key,
                _get(item.name),
                _get(item.external_id),
                _get(item.owner),
                item.data if isinstance(item.data, dict) else {},
                None,
                [],
                1,
                self.clock(),
                self.clock(),
                None,
                None,
            )
            values = [value_at(probe, tuple(f.split("."))) for f in spec.fields]
            if any(v is None for v in values):
                return None
            return orjson.dumps(values, default=str).decode()

        return _Matcher(rtype, "data", key_of, None, key_name=spec.name)

    def _changed(
        self,
        p: Principal,
        rtype: RecordType,
        old: Record,
        item: RecordInput,
        where: str,
        errors: list[FieldError],
        now: datetime,
        merge: bool,
    ) -> Record:
        """The record `old` after applying `item` (merge: a patch; else a replacement)."""
        new = replace(old, version=old.version + 1, updated_at=now, updated_by=p.actor)
        shaper, sent = shaper_for(rtype), item.data if isinstance(item.data, dict) else {}
        if isinstance(item.data, dict):
            sent = shaper.incoming(item.data, f"{where}/data", old.data)
            new.data = merge_patch(old.data, sent) if merge else sent
        elif not merge:
            new.data = {}
        for member in ("name", "external_id", "owner", "description", "attachments"):
            value = getattr(item, member)
            if value is not UNSET:
                setattr(new, member, [] if member == "attachments" and value is None else value)
            elif not merge and member not in ("name", "external_id"):
                setattr(new, member, [] if member == "attachments" else None)
        if rtype.naming is not None and new.name != old.name:
            if rtype.naming.mode == "autonumber":
                errors.append(FieldError(f"{where}/name", "read_only", "names are numbered"))
            elif new.name is None:
                errors.append(FieldError(f"{where}/name", "required", "a unique name"))
        if new.data is not old.data:
            new.data = shaper.complete(new.data, sent, old.data)
            new.data_json = data_json(new.data, where, self.settings.max_record_bytes)
            validate = self.validators.get(rtype.id, rtype.version, rtype.schema)
            errors.extend(validate(new.data, f"{where}/data"))
        return new

    async def update_record(
        self,
        p: Principal,
        type_key: str,
        record_id: str,
        item: RecordInput,
        *,
        if_match: int | None = None,
        merge: bool = True,
    ) -> Record:
        p.require("records", "write", type_key)

        def make(rtype: RecordType) -> Callable[[WriteTx], Record]:
            now = self.clock()

            def write(tx: WriteTx) -> Record:
                old = self._stored(tx, rtype, record_id, if_match)
                errors: list[FieldError] = []
                new = self._changed(p, rtype, old, item, "", errors, now, merge)
                _raise_invalid(errors)
                rows = key_rows(rtype, new)
                check_clashes(tx, rtype, [new], rows, check_ids=False, before={old.id: old})
                tx.update_records(rtype, [new], rows, before={old.id: old})
                return new

            return write

        return await self._write(p, type_key, make)

    async def update_records(
        self, p: Principal, type_key: str, changes: Sequence[tuple[str, RecordInput]]
    ) -> list[Record]:
        """Patch several records by id in one transaction: all change or none does."""
        p.require("records", "write", type_key)
        self._check_batch(changes)
        ids = [record_id for record_id, _ in changes]
        if len(set(ids)) != len(ids):
            raise ValidationFailed(
                "A record appears twice in one batch update.",
                errors=[FieldError("/records", "duplicate", "one change per record")],
            )

        def make(rtype: RecordType) -> Callable[[WriteTx], list[Record]]:
            now = self.clock()

            def write(tx: WriteTx) -> list[Record]:
                found = {r.id: r for r in tx.get_records(rtype, ids)}
                errors: list[FieldError] = []
                out: list[Record] = []
                for n, (record_id, item) in enumerate(changes):
                    old = found.get(record_id)
                    if old is None:
                        raise RecordNotFound(f"No record {record_id!r} of type {rtype.key!r}.")
                    out.append(
                        self._changed(p, rtype, old, item, f"/records/{n}", errors, now, True)
                    )
                _raise_invalid(errors)
                check_batch_duplicates(rtype, out)
                rows = [row for r in out for row in key_rows(rtype, r)]
                check_clashes(tx, rtype, out, rows, check_ids=False, before=found)
                tx.update_records(rtype, out, rows, before=found)
                return out

            return write

        return await self._write(p, type_key, make)

    def _stored(
        self, tx: ReadTx, rtype: RecordType, record_id: str, if_match: int | None
    ) -> Record:
        found = tx.get_records(rtype, [record_id])
        if not found:
            raise RecordNotFound(f"No record {record_id!r} of type {rtype.key!r}.")
        if if_match is not None and found[0].version != if_match:
            raise PreconditionFailed(
                f"Record {record_id!r} is at version {found[0].version}, not {if_match}.",
                extra={"current_version": found[0].version},
            )
        return found[0]

    async def delete_record(
        self, p: Principal, type_key: str, record_id: str, *, if_match: int | None = None
    ) -> Record:
        p.require("records", "write", type_key)

        def make(rtype: RecordType) -> Callable[[WriteTx], Record]:
            def write(tx: WriteTx) -> Record:
                old = self._stored(tx, rtype, record_id, if_match)
                tx.delete_records(rtype, [old.id])
                return old

            return write

        return await self._write(p, type_key, make)

    async def delete_by(self, p: Principal, type_key: str, column: str, value: str) -> Record:
        """Delete the record whose external_id or name is `value`."""
        p.require("records", "write", type_key)

        def make(rtype: RecordType) -> Callable[[WriteTx], Record]:
            def write(tx: WriteTx) -> Record:
                found = tx.find_records(rtype, column, [value])
                if not found:
                    raise RecordNotFound(f"No record of {rtype.key!r} with {column} {value!r}.")
                tx.delete_records(rtype, [r.id for r in found])
                return found[0]

            return write

        return await self._write(p, type_key, make)


@dataclass(frozen=True)
class _Matcher:
    """How an upsert finds the stored record of each item."""

    rtype: RecordType
    label: str
    key_of: Callable[[RecordInput], str | None]
    column: str | None
    key_name: str | None = None

    def find(self, tx: ReadTx, values: list[str]) -> dict[str, Record]:
        if self.column is not None:
            found = tx.find_records(self.rtype, self.column, values)
            return {getattr(r, self.column): r for r in found}
        assert self.key_name is not None
        holders = tx.find_keys(self.rtype, self.key_name, values)
        by_id = {r.id: r for r in tx.get_records(self.rtype, list(holders.values()))}
        return {v: by_id[rid] for v, rid in holders.items() if rid in by_id}


def _client_ids(items: Sequence[RecordInput]) -> bool:
    return any(isinstance(item.id, str) for item in items)


def _get(value: Any) -> Any:
    return None if value is UNSET else value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _raise_invalid(errors: list[FieldError]) -> None:
    if errors:
        first = errors[0]
        raise ValidationFailed(
            f"{len(errors)} problem(s); first at {first.path or '/'}: {first.message}",
            errors=errors,
        )
