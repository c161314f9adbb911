"""RecordService, part one: API keys and record types (see core/service.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson

from recordbase.auth.keys import hash_secret
from recordbase.core.records import (
    UNSET,
    ApiKey,
    Principal,
    Project,
    Scope,
    _Unset,
)
from recordbase.core.service_base import _KEY_CACHE_MAX, ServiceBase
from recordbase.core.store import ReadTx, UniqueClash, WriteTx
from recordbase.core.types import RecordType, parse_type_definition
from recordbase.core.writes import (
    key_rows,
)
from recordbase.errors import (
    BadRequest,
    KeyNotFound,
    NamingFrozen,
    ProjectNotFound,
    SchemaConflict,
    TypeExists,
    TypeNotFound,
    Unauthenticated,
    UniqueViolation,
    ValidationFailed,
)

T = TypeVar("T")


class KeysAndTypes(ServiceBase):
    # keys and projects --------------------------------------------------------------------

    def authenticated(self, secret: str | None) -> Principal | None:
        """`authenticate`'s answer when it needs nothing awaited and nothing written: a key
        seen lately, with the caches known fresh; None: await `authenticate`."""
        if not secret or self._stale():
            return None
        made = self._principals.get(hash_secret(secret))
        if made is not None and self.clock() < made[2]:
            return made[1]
        return None

    async def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthenticated("No API key: send Authorization: Bearer <key>.")
        if self._stale():  # not awaiting _sync when it would return at once
            await self._sync()
        digest = hash_secret(secret)
        now = self.clock()
        # A key seen lately answers from here until its last-used time is due to be written
        # again or it expires, whichever is first: no checks to repeat in between (a key
        # changed or revoked bumps the epoch, which empties this cache in _sync).
        made = self._principals.get(digest)
        if made is not None and now < made[2]:
            return made[1]
        keys = self._keys
        if digest in keys:
            key = keys[digest]
        else:
            key = await self.store.read(lambda tx: tx.key_by_hash(digest))
            if len(keys) >= _KEY_CACHE_MAX:
                keys.clear()
                self._principals.clear()
            keys[digest] = key
        if key is None:
            raise Unauthenticated("Unknown API key.")
        if key.revoked_at is not None:
            raise Unauthenticated("This API key has been revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("This API key has expired.")
        until = self._touch(key.id, now)
        if key.expires_at is not None and key.expires_at < until:
            until = key.expires_at
        # The Principal is made once per cached key object and shared by its requests (frozen;
        # its `extra` dict must not be mutated in place).
        if made is not None and made[0] is key:
            principal = made[1]
        else:
            rate, burst = key.limits
            principal = Principal(
                project_id=key.project_id,
                project_name=key.project_name,
                key_id=key.id,
                scopes=key.scopes,
                rate=rate,
                burst=burst,
            )
        self._principals[digest] = (key, principal, until)
        return principal

    def _touch(self, key_id: str, now: datetime) -> datetime:
        """Write the key's last-used time when due; returns when it is due next."""
        due = self._touched.get(key_id)  # when this key's last-used time may be written again
        if due is not None and now < due:
            return due
        due = self._touched[key_id] = now + timedelta(seconds=self.settings.key_touch_seconds)
        self._spawn(self.store.write(lambda tx: tx.touch_keys([(key_id, now)])))
        return due

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
        from recordbase.auth.keys import display_prefix, new_secret

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
        from recordbase.auth.keys import looks_like_secret

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

    async def list_projects(self) -> list[Project]:
        return await self.store.read(lambda tx: tx.list_projects())

    async def set_project_limits(
        self,
        project: str,
        *,
        rate: float | _Unset | None = UNSET,
        burst: int | _Unset | None = UNSET,
    ) -> Project:
        """Set (None: clear) the rate/burst that the project's keys without their own take.

        An omitted member stays. Bumps the epoch: cached keys carry their project's limits.
        """
        if isinstance(rate, float | int) and not rate > 0:
            raise BadRequest(f"rate must be above 0 requests per second, not {rate}.")
        if isinstance(burst, int) and burst < 1:
            raise BadRequest(f"burst must be at least 1, not {burst}.")

        def write(tx: WriteTx) -> Project:
            found = tx.project_by_name(project)
            if found is None:
                raise ProjectNotFound(f"No project {project!r}; `keys create` makes one.")
            changed = replace(
                found,
                rate=found.rate if isinstance(rate, _Unset) else rate,
                burst=found.burst if isinstance(burst, _Unset) else burst,
            )
            tx.set_project_limits(changed.id, changed.rate, changed.burst)
            tx.bump_epoch()
            return changed

        return await self._write_bumping(write)

    # types -------------------------------------------------------------------------------
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

        # slow: building the type's indexes reads the records table
        return await self.store.write(write, slow=True)

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
            tx.sync_indexes(rtype)  # its declared indexes, as for any created type
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


def _definition_json(rtype: RecordType) -> str:
    """The type's definition members (every member a client may send), as JSON."""
    from recordbase.core.types import TYPE_MEMBERS, type_as_dict

    d = type_as_dict(rtype)
    return orjson.dumps({k: d[k] for k in TYPE_MEMBERS if k in d}).decode()
