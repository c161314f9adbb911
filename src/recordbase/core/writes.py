"""Pure helpers for record writes: merge patches, naming rules, key rows and clash checks.

The service calls these both before a transaction (shape and schema checks) and inside it
(merging with the stored record, finding clashes). They do no I/O: the transaction object is
passed in where stored data is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from recordbase.core.records import UNSET, Record, RecordInput, _Unset
from recordbase.core.shaping import shaper_for
from recordbase.core.store import KeyRow, ReadTx
from recordbase.core.types import RecordType
from recordbase.core.validation import Validate
from recordbase.errors import (
    DuplicateId,
    FieldError,
    RecordTooLarge,
    UniqueViolation,
)

NAME_KEY = "__name"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def value_at(record: Record, path: tuple[str, ...]) -> Any:
    """The value of a system field or `data.` path of a record; None when missing."""
    if path[0] != "data":
        return getattr(record, path[0])
    node: Any = record.data
    for part in path[1:]:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def data_json(data: dict[str, Any], where: str, max_bytes: int) -> str:
    """The JSON text the store writes for `data`; raises 413 past `max_bytes`."""
    raw = orjson.dumps(data)
    if len(raw) > max_bytes:
        raise RecordTooLarge(
            f"{where}/data is {len(raw)} bytes; the limit is {max_bytes}.",
            errors=[FieldError(f"{where}/data", "too_large", f"{len(raw)} bytes")],
        )
    return raw.decode()


class RecordMaker:
    """Builds new records of one type for one request; what they share is looked up once.

    `make` shapes the client's data, checks its size (keeping the JSON text for the store)
    and validates it, adding naming and schema problems to `errors`; new ids come from `ids`.
    """

    def __init__(
        self,
        rtype: RecordType,
        validate: Validate,
        max_bytes: int,
        actor: str,
        now: datetime,
        ids: Callable[[], str],
    ) -> None:
        self.rtype = rtype
        self.naming = rtype.naming
        self.key = rtype.key
        shaper = shaper_for(rtype)
        self.shape = None if shaper.idle else shaper.created
        self.validate = validate
        self.is_valid = validate.is_valid
        # Neither naming rules nor shaping: a record of data alone takes `make`'s short way.
        self.plain = self.naming is None and self.shape is None
        self.max_bytes = max_bytes
        self.actor = actor
        self.now = now
        self.ids = ids

    def make(self, item: RecordInput, where: str, errors: list[FieldError]) -> Record:
        data = item.data
        if (
            self.plain
            and type(data) is dict
            and item.id is UNSET
            and item.name is UNSET
            and item.external_id is UNSET
            and item.owner is UNSET
            and item.description is UNSET
            and item.attachments is UNSET
        ):
            # The usual create, `{"data": {...}}`: what the way below does for it, without
            # the checks that cannot apply, and with the schema's yes/no answer alone when
            # the data is valid (0.6 of 2.4 µs a record; docs/performance.md, round 13).
            raw = orjson.dumps(data)
            if len(raw) <= self.max_bytes and self.is_valid(data):
                now, actor = self.now, self.actor
                return Record(
                    self.ids(), self.key, None, None, None, data, None, [], 1,
                    now, now, actor, actor, raw.decode(),
                )  # fmt: skip
        if self.naming is not None:
            errors.extend(naming_errors(self.rtype, item, where, creating=True))
        at = where + "/data"
        data = data if isinstance(data, dict) else {}
        if self.shape is not None:
            data = self.shape(data, at)
        text = data_json(data, where, self.max_bytes)
        problems = self.validate(data, at)
        if problems:
            errors.extend(problems)
        name, external_id, owner = item.name, item.external_id, item.owner
        description, now, actor = item.description, self.now, self.actor
        return Record(
            item.id if isinstance(item.id, str) else self.ids(),
            self.key,
            None if isinstance(name, _Unset) else name,
            None if isinstance(external_id, _Unset) else external_id,
            None if isinstance(owner, _Unset) else owner,
            data,
            None if isinstance(description, _Unset) else description,
            item.attachments if isinstance(item.attachments, list) else [],
            1,
            now,
            now,
            actor,
            actor,
            text,
        )


def all_key_rows(rtype: RecordType, records: Sequence[Record]) -> list[KeyRow]:
    """The key rows of several records, in order."""
    if not rtype.keyed:
        return []
    return [row for r in records for row in key_rows(rtype, r)]


def key_rows(rtype: RecordType, record: Record) -> list[KeyRow]:
    """The unique-key rows of a record: its unique name and each complete declared key."""
    rows: list[KeyRow] = []
    if rtype.naming is not None and record.name is not None:
        rows.append((record.id, NAME_KEY, record.name))
    for spec in rtype.definition.unique_keys:
        values = [value_at(record, tuple(f.split("."))) for f in spec.fields]
        if any(v is None for v in values):
            continue  # like SQL: a key with a missing part never clashes
        rows.append((record.id, spec.name, orjson.dumps(values, default=str).decode()))
    return rows


def naming_errors(
    rtype: RecordType, item: RecordInput, where: str, creating: bool
) -> list[FieldError]:
    naming = rtype.naming
    if naming is None:
        return []
    if naming.mode == "autonumber":
        if creating and item.name is not UNSET and item.name is not None:
            return [FieldError(f"{where}/name", "read_only", "names are numbered automatically")]
        return []
    if creating and (item.name is UNSET or item.name is None):
        return [FieldError(f"{where}/name", "required", "a unique name is required")]
    return []


def check_batch_duplicates(rtype: RecordType, records: Sequence[Record]) -> None:
    """Two records of one batch may not share an id, external id or unique key."""
    if len(records) < 2:  # one record's pairs never repeat (each key name appears once)
        return
    has_keys = rtype.keyed
    if not has_keys:  # ids and external ids only: sets tell whether the loop below would raise
        externals = [r.external_id for r in records if r.external_id is not None]
        if len({r.id for r in records}) == len(records) and len(set(externals)) == len(externals):
            return
    seen: dict[tuple[str, str], int] = {}
    for i, record in enumerate(records):
        pairs = [("__id", record.id)]
        if record.external_id is not None:
            pairs.append(("__external_id", record.external_id))
        if has_keys:  # key_rows is [] otherwise; skipping the call is ~5% of a batch's writer time
            pairs.extend((name, value) for _rid, name, value in key_rows(rtype, record))
        for pair in pairs:
            if pair in seen:
                raise _clash_error(rtype, pair[0], pair[1], None, f"/records/{seen[pair]}", i)
            seen[pair] = i


def check_clashes(
    tx: ReadTx,
    rtype: RecordType,
    records: Sequence[Record],
    rows: Sequence[KeyRow],
    *,
    check_ids: bool,
    at: Sequence[int] | None = None,
    before: Mapping[str, Record] | None = None,
    externals_free: bool = False,
) -> None:
    """Raise 409 when a stored record (other than the one written) holds one of the keys.

    `at`: each record's position in the request (default: its position in `records`), for
    the error's path. `before`: the stored versions of records being changed, by id; an
    external id a record keeps is its own (the unique index holds it), so it is not looked
    up again (one query less per upsert that matched on it). `externals_free`: the caller
    looked these records' external ids up in this transaction and found them free (an upsert
    on external_id creating them); a concurrent writer that takes one meanwhile makes the
    insert fail on the unique index, and the store retries the write."""

    externals = {
        r.external_id: r.id
        for r in ([] if externals_free else records)
        if r.external_id is not None
        and (
            before is None or (old := before.get(r.id)) is None or old.external_id != r.external_id
        )
    }
    if not (check_ids or externals or rows):  # nothing to look up (most single creates)
        return

    def position(record_id: str) -> int:  # only when raising
        i = next(i for i, r in enumerate(records) if r.id == record_id)
        return i if at is None else at[i]

    if check_ids:
        for found in tx.get_records(rtype, [r.id for r in records]):
            raise _clash_error(rtype, "__id", found.id, found.id, None, position(found.id))
    if externals:
        for found in tx.find_records(rtype, "external_id", list(externals)):
            assert found.external_id is not None
            if found.id != externals[found.external_id]:
                i = position(externals[found.external_id])
                raise _clash_error(rtype, "__external_id", found.external_id, found.id, None, i)
    by_key: dict[str, dict[str, str]] = {}
    for rid, name, value in rows:
        by_key.setdefault(name, {})[value] = rid
    for name, wanted in by_key.items():
        for value, holder in tx.find_keys(rtype, name, list(wanted)).items():
            if holder != wanted[value]:
                raise _clash_error(rtype, name, value, holder, None, position(wanted[value]))


def _clash_error(
    rtype: RecordType, key: str, value: str, holder: str | None, other: str | None, index: int
) -> UniqueViolation | DuplicateId:
    where = f"/records/{index}"
    label = {"__id": "id", "__external_id": "external_id", NAME_KEY: "name"}.get(key, key)
    against = f"record {holder}" if holder else f"the record at {other} of this batch"
    path = {"id": "/id", "external_id": "/external_id", "name": "/name"}.get(label, "/data")
    detail = f"{label} {value!r} of type {rtype.key!r} is already used by {against}."
    extra = {"key": label, "value": value, "conflicting_record": holder}
    error = FieldError(where + path, "unique", detail)
    if key == "__id":
        return DuplicateId(detail, errors=[error], extra=extra)
    return UniqueViolation(detail, errors=[error], extra=extra)


def unique_clash_error(rtype: RecordType, key: str) -> UniqueViolation | DuplicateId:
    """A clash the database caught (a concurrent writer won the race)."""
    label = {"__id": "id", "__external_id": "external_id", NAME_KEY: "name"}.get(key, key)
    detail = f"A {label} of this write is already used by another record of {rtype.key!r}."
    cls = DuplicateId if key == "__id" else UniqueViolation
    return cls(detail, extra={"key": label})
