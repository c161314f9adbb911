"""Pure helpers for record writes: merge patches, naming rules, key rows and clash checks.

The service calls these both before a transaction (shape and schema checks) and inside it
(merging with the stored record, finding clashes). They do no I/O: the transaction object is
passed in where stored data is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from recordbase.core.records import UNSET, Record, RecordInput
from recordbase.core.store import KeyRow, ReadTx
from recordbase.core.types import RecordType
from recordbase.errors import DuplicateId, FieldError, UniqueViolation

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
    seen: dict[tuple[str, str], int] = {}
    keyed = rtype.naming is not None or bool(rtype.definition.unique_keys)
    for i, record in enumerate(records):
        pairs = [("__id", record.id)]
        if record.external_id is not None:
            pairs.append(("__external_id", record.external_id))
        if keyed:  # key_rows is [] otherwise; skipping the call is ~5% of a batch's writer time
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
) -> None:
    """Raise 409 when a stored record (other than the one written) holds one of the keys."""
    position = {r.id: i for i, r in enumerate(records)}
    if check_ids:
        for found in tx.get_records(rtype, [r.id for r in records]):
            raise _clash_error(rtype, "__id", found.id, found.id, None, position[found.id])
    externals = {r.external_id: r.id for r in records if r.external_id is not None}
    if externals:
        for found in tx.find_records(rtype, "external_id", list(externals)):
            assert found.external_id is not None
            if found.id != externals[found.external_id]:
                i = position[externals[found.external_id]]
                raise _clash_error(rtype, "__external_id", found.external_id, found.id, None, i)
    by_key: dict[str, dict[str, str]] = {}
    for rid, name, value in rows:
        by_key.setdefault(name, {})[value] = rid
    for name, wanted in by_key.items():
        for value, holder in tx.find_keys(rtype, name, list(wanted)).items():
            if holder != wanted[value]:
                raise _clash_error(rtype, name, value, holder, None, position[wanted[value]])


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
