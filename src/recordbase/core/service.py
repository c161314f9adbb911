"""RecordService: every operation of recordbase, the same for every face.

Each method takes the caller's `Principal` first and checks its scope (house rule 3), loads the
record type from a cache that the store's epoch invalidates (so a revoked key or changed type
takes effect at once, across processes), checks and prepares the input, then makes exactly one
store call whose function runs inside one transaction. Failures are raised as RecordbaseError.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from recordbase.config import Settings
from recordbase.core import cursor as cursors
from recordbase.core.clock import Clock, NewId, new_ulid, system_clock, utc_text
from recordbase.core.filters import check_query
from recordbase.core.idempotency import IdempotencyKeys
from recordbase.core.job_runner import JobRunner
from recordbase.core.jobs import AFTER_WRITE, Job
from recordbase.core.query import Filter, Page, Query, SortKey, stable_sort
from recordbase.core.records import (
    UNSET,
    ApiKey,
    Principal,
    Project,
    Record,
    RecordInput,
    Scope,
)
from recordbase.core.shaping import shaper_for
from recordbase.core.store import ReadTx, Store, UniqueClash, WriteTx
from recordbase.core.types import RecordType, parse_type_definition
from recordbase.core.validation import ValidatorCache
from recordbase.core.writes import (
    check_batch_duplicates,
    check_clashes,
    key_rows,
    merge_patch,
    naming_errors,
    unique_clash_error,
    value_at,
)
from recordbase.errors import (
    BadRequest,
    BatchTooLarge,
    FieldError,
    InvalidCursor,
    KeyNotFound,
    NamingFrozen,
    PreconditionFailed,
    RecordNotFound,
    RecordTooLarge,
    SchemaConflict,
    TypeExists,
    TypeNotFound,
    Unauthenticated,
    UniqueViolation,
    ValidationFailed,
)

T = TypeVar("T")
_KEY_CACHE_MAX = 100_000
# The epoch (bumped by every key or type change) is read from the store at most once per this
# many seconds: it was a fifth of the event loop's time when read twice per request (see
# docs/performance.md). Changes made through any RecordService of this process count at once
# (_LOCAL_BUMPS); another process's change is seen within this window.
EPOCH_WINDOW = 0.002
_LOCAL_BUMPS = [0]


@dataclass(frozen=True)
class UpsertResult:
    records: list[Record]
    created: list[str]
    updated: list[str]


@dataclass(frozen=True)
class ListResult:
    records: list[Record]
    next_cursor: str | None
    count: int | None = None


class _TypeChanged(Exception):
    """The type changed between the cache and the transaction: reload and retry once."""


class RecordService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        new_id: NewId = new_ulid,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.new_id = new_id
        self.validators = ValidatorCache()
        self._epoch = -1
        self._epoch_read_at = -1.0
        self._epoch_bumps = -1
        self._keys: dict[str, ApiKey | None] = {}
        self._types: dict[tuple[str, str], RecordType] = {}
        self._touched: dict[str, datetime] = {}
        self._cursor_secret = b""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.jobs = JobRunner(self)
        self.idempotency = IdempotencyKeys(store, settings, clock, new_id)

    # lifecycle and caches -----------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()

        def secret(tx: WriteTx) -> str:
            found = tx.get_meta("cursor_secret")
            if found is None:
                found = secrets.token_hex(32)
                tx.set_meta("cursor_secret", found)
            return found

        self._cursor_secret = bytes.fromhex(await self.store.write(secret))

    async def close(self) -> None:
        await self.jobs.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    async def _sync(self) -> None:
        now = time.monotonic()
        if self._epoch_bumps == _LOCAL_BUMPS[0] and now - self._epoch_read_at < EPOCH_WINDOW:
            return
        self._epoch_bumps = _LOCAL_BUMPS[0]
        self._epoch_read_at = now
        epoch = await self.store.epoch()
        if epoch != self._epoch:
            self._keys.clear()
            self._types.clear()
            self._epoch = epoch

    async def _write_bumping(self, fn: Callable[[WriteTx], T]) -> T:
        """A write that bumps the epoch: once committed, every service here re-reads it."""
        try:
            return await self.store.write(fn)
        finally:
            _LOCAL_BUMPS[0] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # keys and projects --------------------------------------------------------------------

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("No API key: send Authorization: Bearer <key>.")
        from recordbase.auth.keys import hash_secret

        await self._sync()
        digest = hash_secret(secret)
        if digest in self._keys:
            key = self._keys[digest]
        else:
            key = await self.store.read(lambda tx: tx.key_by_hash(digest))
            if len(self._keys) >= _KEY_CACHE_MAX:
                self._keys.clear()
            self._keys[digest] = key
        now = self.clock()
        if key is None:
            raise Unauthenticated("Unknown API key.")
        if key.revoked_at is not None:
            raise Unauthenticated("This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("This API key has expired.")
        self._touch(key.id, now)
        return Principal(
            project_id=key.project_id,
            project_name=key.project_name,
            key_id=key.id,
            scopes=key.scopes,
            rate=key.rate,
            burst=key.burst,
        )

    def _touch(self, key_id: str, now: datetime) -> None:
        last = self._touched.get(key_id)
        if last is not None and (now - last).total_seconds() < self.settings.key_touch_seconds:
            return
        self._touched[key_id] = now
        self._spawn(self.store.write(lambda tx: tx.touch_keys([(key_id, now)])))

    async def create_key(
        self,
        project: str,
        scopes: Sequence[str],
        *,
        rate: float | None = None,
        burst: int | None = None,
        expires_in: timedelta | None = None,
        name: str = "",
    ) -> tuple[ApiKey, str]:
        """Create a key (and its project if missing); returns the key and its secret."""
        from recordbase.auth.keys import display_prefix, hash_secret, new_secret

        try:
            parsed = tuple(Scope.parse(s) for s in scopes)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        if not parsed:
            raise BadRequest("A key needs at least one scope.")
        secret = new_secret()
        now = self.clock()

        def write(tx: WriteTx) -> ApiKey:
            found = tx.project_by_name(project)
            if found is None:
                found = Project(self.new_id(), project, now)
                tx.insert_project(found)
            key = ApiKey(
                id=self.new_id(),
                project_id=found.id,
                project_name=found.name,
                prefix=display_prefix(secret),
                scopes=parsed,
                rate=rate,
                burst=burst,
                created_at=now,
                expires_at=now + expires_in if expires_in else None,
                revoked_at=None,
                last_used_at=None,
                name=name,
            )
            tx.insert_key(key, hash_secret(secret))
            tx.bump_epoch()
            return key

        return await self._write_bumping(write), secret

    async def list_keys(self, project: str | None = None) -> list[ApiKey]:
        def read(tx: ReadTx) -> list[ApiKey]:
            if project is None:
                return tx.list_keys(None)
            found = tx.project_by_name(project)
            return [] if found is None else tx.list_keys(found.id)

        return await self.store.read(read)

    async def revoke_key(self, key_or_secret: str) -> ApiKey:
        from recordbase.auth.keys import hash_secret, looks_like_secret

        now = self.clock()

        def write(tx: WriteTx) -> ApiKey:
            if looks_like_secret(key_or_secret):
                key = tx.key_by_hash(hash_secret(key_or_secret))
            else:
                key = tx.get_key(key_or_secret)
            if key is None:
                raise KeyNotFound(f"No API key {key_or_secret!r}.")
            tx.revoke_key(key.id, now)
            tx.bump_epoch()
            return replace(key, revoked_at=key.revoked_at or now)

        return await self._write_bumping(write)

    # types -------------------------------------------------------------------------------

    async def type_for(self, p: Principal, key: str) -> RecordType:
        await self._sync()
        cached = self._types.get((p.project_id, key))
        if cached is not None:
            return cached
        found = await self.store.read(lambda tx: tx.get_type(p.project_id, key))
        if found is None:
            raise TypeNotFound(f"No record type {key!r} in this project.")
        self._types[(p.project_id, key)] = found
        return found

    async def list_types(self, p: Principal) -> list[RecordType]:
        p.require("types", "read")
        return await self.store.read(lambda tx: tx.list_types(p.project_id))

    async def get_type(self, p: Principal, key: str) -> tuple[RecordType, int]:
        """The type and its next autonumber (read fresh: it moves with every create)."""
        p.require("types", "read", key)

        def read(tx: ReadTx) -> tuple[RecordType, int]:
            found = tx.get_type(p.project_id, key)
            if found is None:
                raise TypeNotFound(f"No record type {key!r} in this project.")
            return found, tx.next_number(found)

        return await self.store.read(read)

    async def create_type(
        self, p: Principal, body: Any, *, extra: dict[str, Any] | None = None
    ) -> RecordType:
        """Create a type; `extra` is face metadata persisted with it (e.g. Zendesk field ids)."""
        definition = parse_type_definition(body)
        p.require("types", "write", definition.key)
        now = self.clock()
        rtype = RecordType(self.new_id(), p.project_id, definition, 1, now, now, extra or {})

        def write(tx: WriteTx) -> RecordType:
            if tx.get_type(p.project_id, definition.key) is not None:
                raise TypeExists(f"A record type {definition.key!r} already exists.")
            tx.insert_type(rtype, definition.naming.next if definition.naming else 1)
            tx.sync_indexes(rtype)
            tx.bump_epoch()
            return rtype

        return await self.store.write(write)

    async def ensure_type(self, p: Principal, body: dict[str, Any]) -> RecordType:
        """A built-in type that a face owns (e.g. request logs): made on first use.

        No types:write scope is needed: the definition comes from recordbase, not the client.
        """
        try:
            return await self.type_for(p, str(body.get("key")))
        except TypeNotFound:
            pass
        definition = parse_type_definition(body)
        now = self.clock()
        rtype = RecordType(self.new_id(), p.project_id, definition, 1, now, now)

        def write(tx: WriteTx) -> RecordType:
            found = tx.get_type(p.project_id, definition.key)
            if found is not None:
                return found
            tx.insert_type(rtype, definition.naming.next if definition.naming else 1)
            tx.bump_epoch()
            return rtype

        return await self._write_bumping(write)

    async def update_type(
        self, p: Principal, key: str, changes: Any, *, extra: dict[str, Any] | None = None
    ) -> tuple[RecordType, int]:
        """Change a type; `changes` holds the members to replace (the key stays); `extra`,
        when given, replaces the type's face metadata."""
        p.require("types", "write", key)
        if not isinstance(changes, dict):
            raise ValidationFailed("Expected a JSON object of type members.")
        now = self.clock()

        def write(tx: WriteTx) -> tuple[RecordType, int]:
            current = tx.get_type(p.project_id, key)
            if current is None:
                raise TypeNotFound(f"No record type {key!r} in this project.")
            old = orjson.loads(_definition_json(current))
            definition = parse_type_definition({**old, **changes, "key": key}, key=key)
            updated = current.with_definition(definition, now)
            if extra is not None:
                updated = replace(updated, extra=extra)
            self._check_type_change(tx, current, updated)
            next_number = None
            if definition.naming != current.naming and definition.naming is not None:
                next_number = definition.naming.next
            tx.update_type(updated, next_number)
            tx.sync_indexes(updated)
            tx.bump_epoch()
            return updated, tx.next_number(updated)

        return await self._write_bumping(write)

    def _check_type_change(self, tx: WriteTx, old: RecordType, new: RecordType) -> None:
        naming_changed = old.naming != new.naming
        keys_changed = old.definition.unique_keys != new.definition.unique_keys
        if new.version == old.version and not naming_changed and not keys_changed:
            return
        validate = self.validators.get(new.id, new.version, new.schema)
        failing: list[str] = []
        count = 0
        rows: dict[str, list[tuple[str, str, str]]] = {
            k.name: [] for k in new.definition.unique_keys
        }
        for record in tx.iter_records(old):
            count += 1
            if new.version != old.version and validate(record.data, "/data"):
                failing.append(record.id)
            for row in key_rows(new, record):
                if row[1] in rows:
                    rows[row[1]].append(row)
        if failing:
            raise SchemaConflict(
                f"{len(failing)} existing record(s) of {old.key!r} would break the new schema.",
                extra={"failing_count": len(failing), "failing_ids": failing[:10]},
            )
        if naming_changed and count:
            raise NamingFrozen(
                f"Naming rules of {old.key!r} cannot change once it has records ({count}).",
                extra={"record_count": count},
            )
        if keys_changed:
            for name, key_rows_of in rows.items():
                try:
                    tx.replace_key_rows(new, name, key_rows_of)
                except UniqueClash as exc:
                    raise UniqueViolation(
                        f"Existing records of {old.key!r} share values of the new unique key "
                        f"{name!r}.",
                        extra={"key": name},
                    ) from exc
            for gone in old.definition.unique_keys:
                if gone.name not in rows:
                    tx.replace_key_rows(new, gone.name, [])

    async def delete_type(self, p: Principal, key: str) -> int:
        """Delete a type and all its records; returns how many records went with it."""
        p.require("types", "write", key)

        def write(tx: WriteTx) -> int:
            current = tx.get_type(p.project_id, key)
            if current is None:
                raise TypeNotFound(f"No record type {key!r} in this project.")
            deleted = tx.delete_type(current)
            tx.bump_epoch()
            return deleted

        return await self._write_bumping(write)

    # writes ------------------------------------------------------------------------------

    async def _write(
        self, p: Principal, type_key: str, make: Callable[[RecordType], Callable[[WriteTx], T]]
    ) -> T:
        """Run a record write; if the type changed underneath, reload it and retry once."""
        after = AFTER_WRITE.get()  # set by the job runner (core/job_runner.py) only
        for attempt in (0, 1):
            rtype = await self.type_for(p, type_key)
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

    def _check_data(self, rtype: RecordType, data: dict[str, Any], where: str) -> list[FieldError]:
        size = len(orjson.dumps(data))
        if size > self.settings.max_record_bytes:
            raise RecordTooLarge(
                f"{where}/data is {size} bytes; the limit is {self.settings.max_record_bytes}.",
                errors=[FieldError(f"{where}/data", "too_large", f"{size} bytes")],
            )
        return self.validators.get(rtype.id, rtype.version, rtype.schema)(data, f"{where}/data")

    def _new_record(
        self,
        p: Principal,
        rtype: RecordType,
        item: RecordInput,
        where: str,
        errors: list[FieldError],
        now: datetime,
    ) -> Record:
        errors.extend(naming_errors(rtype, item, where, creating=True))
        data = item.data if isinstance(item.data, dict) else {}
        shaper = shaper_for(rtype)
        sent = shaper.incoming(data, f"{where}/data", None)
        data = shaper.complete(sent, sent, None)
        errors.extend(self._check_data(rtype, data, where))
        return Record(
            id=item.id if isinstance(item.id, str) else self.new_id(),
            type=rtype.key,
            name=_get(item.name),
            external_id=_get(item.external_id),
            owner=_get(item.owner),
            data=data,
            description=_get(item.description),
            attachments=item.attachments if isinstance(item.attachments, list) else [],
            version=1,
            created_at=now,
            updated_at=now,
            created_by=p.actor,
            updated_by=p.actor,
        )

    async def create_records(
        self, p: Principal, type_key: str, items: Sequence[RecordInput]
    ) -> list[Record]:
        p.require("records", "write", type_key)
        self._check_batch(items)

        def make(rtype: RecordType) -> Callable[[WriteTx], list[Record]]:
            now = self.clock()
            errors: list[FieldError] = []
            records = [
                self._new_record(p, rtype, item, f"/records/{i}", errors, now)
                for i, item in enumerate(items)
            ]
            _raise_invalid(errors)

            def write(tx: WriteTx) -> list[Record]:
                self._number(tx, rtype, records)
                check_batch_duplicates(rtype, records)
                rows = [row for r in records for row in key_rows(rtype, r)]
                # Fresh ULIDs cannot clash: look ids up only when the client chose some.
                check_clashes(tx, rtype, records, rows, check_ids=_client_ids(items))
                tx.insert_records(rtype, records, rows)
                return records

            return write

        return await self._write(p, type_key, make)

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
                for i, item in enumerate(items):
                    where = f"/records/{i}"
                    old = existing.get(wanted[i])
                    if old is None:
                        record = self._new_record(p, rtype, item, where, errors, now)
                        created.append(record)
                    else:
                        record = self._changed(p, rtype, old, item, where, errors, now, merge)
                        updated.append(record)
                    out.append(record)
                _raise_invalid(errors)
                self._number(tx, rtype, created)
                check_batch_duplicates(rtype, out)
                new_rows = [row for r in created for row in key_rows(rtype, r)]
                upd_rows = [row for r in updated for row in key_rows(rtype, r)]
                check_clashes(tx, rtype, created, new_rows, check_ids=_client_ids(items))
                check_clashes(tx, rtype, updated, upd_rows, check_ids=False)
                if updated:
                    tx.update_records(rtype, updated, upd_rows)
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
            errors.extend(self._check_data(rtype, new.data, where))
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
                check_clashes(tx, rtype, [new], rows, check_ids=False)
                tx.update_records(rtype, [new], rows)
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
                check_clashes(tx, rtype, out, rows, check_ids=False)
                tx.update_records(rtype, out, rows)
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

    # jobs: durable asynchronous writes (core/jobs.py, core/job_runner.py) -------------------

    async def submit_job(
        self,
        p: Principal,
        type_key: str,
        action: str,
        items: Sequence[Any],
        options: dict[str, Any] | None = None,
        *,
        where: str = "/items",
        precheck: bool = False,
    ) -> Job:
        """Accept a write to carry out later; stored durably before this returns.

        `precheck` checks `create` items against the type (schema, naming, shaping) before
        accepting, so bad data is a 400 at once rather than a failed item later."""
        return await self.jobs.submit(
            p, type_key, action, items, options, where=where, precheck=precheck
        )

    async def get_job(self, p: Principal, job_id: str, *, results: bool = True) -> Job:
        return await self.jobs.get(p, job_id, results=results)

    async def run_pending_jobs(self) -> int:
        """Carry out every claimable job now (tests call this; servers run the worker loop)."""
        return await self.jobs.run_pending()

    # reads -------------------------------------------------------------------------------

    async def get_record(self, p: Principal, type_key: str, record_id: str) -> Record:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        return await self.store.read(lambda tx: self._stored(tx, rtype, record_id, None))

    async def get_records(
        self, p: Principal, type_key: str, column: str, values: Sequence[str]
    ) -> list[Record]:
        """Records whose id, external_id or name is one of `values` (any order)."""
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        return await self.store.read(lambda tx: tx.find_records(rtype, column, values))

    async def list_records(
        self, p: Principal, type_key: str, query: Query, cursor: str | None = None
    ) -> ListResult:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        query = check_query(query, rtype, self.settings)
        page_size = query.limit
        if not 1 <= page_size <= self.settings.max_page_size:
            from recordbase.errors import PageTooLarge

            raise PageTooLarge(
                f"limit must be between 1 and {self.settings.max_page_size}.",
                extra={"max": self.settings.max_page_size},
            )
        sort = stable_sort(query.sort)
        fp = _fingerprint(rtype, query, sort)
        if cursor and query.offset is not None:
            raise BadRequest("Use either cursor or page, not both.")
        after = cursors.decode(self._cursor_secret, fp, cursor) if cursor else None
        if after is not None and len(after) != len(sort):
            raise InvalidCursor("The cursor does not fit this sort.")
        q = replace(query, sort=sort, after=after, limit=page_size + 1)

        def read(tx: ReadTx) -> Page:
            records = tx.list_records(rtype, q)
            total = tx.count_records(rtype, q.filter, q.text) if q.count else None
            return Page(records, None, total)

        page = await self.store.read(read)
        records: list[Record] = page.records
        next_cursor = None
        if len(records) > page_size:
            records = records[:page_size]
            last = records[-1]
            if query.offset is not None:  # page-number paging: the faces number the pages
                return ListResult(records, None, page.count)
            values = tuple(_sort_value(last, k.path) for k in sort)
            next_cursor = cursors.encode(self._cursor_secret, fp, values)
        return ListResult(records, next_cursor, page.count)

    async def count_records(
        self, p: Principal, type_key: str, filter: Filter | None = None, text: str | None = None
    ) -> int:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        q = check_query(Query(filter=filter, text=text), rtype, self.settings)
        return await self.store.read(lambda tx: tx.count_records(rtype, q.filter, q.text))

    async def cursor_at(self, p: Principal, type_key: str, query: Query, record: Record) -> str:
        """A cursor for `query` positioned just after `record` (faces that page backwards
        ask for one at the first record of a page, under the reversed sort)."""
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        query = check_query(query, rtype, self.settings)
        sort = stable_sort(query.sort)
        fp = _fingerprint(rtype, query, sort)
        values = tuple(_sort_value(record, k.path) for k in sort)
        return cursors.encode(self._cursor_secret, fp, values)


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


def _fingerprint(rtype: RecordType, query: Query, sort: tuple[SortKey, ...]) -> str:
    """What a cursor is bound to. The type's version is part of it: a cursor made before a
    schema change is stale."""
    return cursors.fingerprint(
        rtype.id, rtype.version, query.filter, [str(s) for s in sort], query.text
    )


def _sort_value(record: Record, path: tuple[str, ...]) -> Any:
    value = value_at(record, path)
    return utc_text(value) if isinstance(value, datetime) else value


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


def _definition_json(rtype: RecordType) -> str:
    from recordbase.core.types import type_as_dict

    d = type_as_dict(rtype)
    return orjson.dumps(
        {
            k: d[k]
            for k in ("key", "name", "description", "schema", "naming", "unique_keys", "indexes")
        }
        | rtype.definition.shaping_dict()
    ).decode()
