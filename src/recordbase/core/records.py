"""Records, their inputs, API keys and the caller (`Principal`) with its scopes.

`parse_record_input` checks the shape of one record as a client sends it (top-level members
and their JSON types) and collects every problem with its JSON Pointer path; semantics
(schema, naming, unique keys) are the service's. Pure data: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, Final

import orjson

from recordbase.errors import FieldError, Forbidden

RECORD_MEMBERS: Final = (
    "id",
    "name",
    "external_id",
    "owner",
    "data",
    "description",
    "attachments",
)
# Members a client may send back unchanged (e.g. after a GET); they are ignored on write.
ECHO_MEMBERS: Final = ("type", "version", "created_at", "updated_at", "created_by", "updated_by")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


@dataclass(slots=True)
class Record:
    id: str
    type: str
    name: str | None
    external_id: str | None
    owner: str | None
    data: dict[str, Any]
    description: str | None
    attachments: list[Any]
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: str | None
    updated_by: str | None
    # The JSON text of `data` (orjson, no options) when a write already made it for its size
    # check, so the store binds it instead of serialising `data` again; None: not known.
    # Whoever assigns `data` afterwards assigns this too (or None).
    data_json: str | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "external_id": self.external_id,
            "owner": self.owner,
            "data": self.data,
            "description": self.description,
            "attachments": self.attachments,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "created_by": self.created_by,
            "updated_by": self.updated_by,
        }


# How the API writes values out (web/http.py uses the same): datetimes as UTC with Z.
OUTPUT_JSON_OPTIONS: Final = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def record_json(record: Record) -> str:
    """A record's JSON text exactly as the API answers it (`as_dict`, OUTPUT_JSON_OPTIONS)."""
    return orjson.dumps(record.as_dict(), option=OUTPUT_JSON_OPTIONS).decode()


def records_json(records: list[Record]) -> bytes:
    """`[r.as_dict() for r in records]` as the API writes it, byte for byte, made for the
    records one write returns: each record's `data` is the JSON text the write kept for the
    store (orjson's, as the API's own), and the members records share (version, timestamps,
    authors: all of one write's) are written once. A 100-record batch's answer otherwise
    turned every record into a dict and serialised its data a second time.
    tests/test_list_json.py holds the two to each other."""
    dumps = orjson.dumps
    parts: list[bytes] = []
    shared: tuple[Any, ...] | None = None
    tail = type_text = bare_head = bare_tail = b""
    for r in records:
        if r.data_json is None:
            parts.append(dumps(r.as_dict(), option=OUTPUT_JSON_OPTIONS))
            continue
        key = (r.type, r.version, r.created_at, r.updated_at, r.created_by, r.updated_by)
        if key != shared:
            shared = key
            tail = dumps(
                {
                    "version": r.version,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                    "created_by": r.created_by,
                    "updated_by": r.updated_by,
                },
                option=OUTPUT_JSON_OPTIONS,
            )[1:]
            type_text = dumps(r.type)
            # A record of data alone (the usual create) is its id and data between these.
            bare_head = (
                b',"type":' + type_text + b',"name":null,"external_id":null,"owner":null,"data":'
            )
            bare_tail = b',"description":null,"attachments":[],' + tail
        name, external_id, owner = r.name, r.external_id, r.owner
        description, attachments = r.description, r.attachments
        if (
            name is None
            and external_id is None
            and owner is None
            and description is None
            and not attachments
        ):
            parts.append(b'{"id":' + dumps(r.id) + bare_head + r.data_json.encode() + bare_tail)
            continue
        parts.append(
            b'{"id":%b,"type":%b,"name":%b,"external_id":%b,"owner":%b,"data":%b,'
            b'"description":%b,"attachments":%b,%b'
            % (
                dumps(r.id),
                type_text,
                b"null" if name is None else dumps(name),
                b"null" if external_id is None else dumps(external_id),
                b"null" if owner is None else dumps(owner),
                r.data_json.encode(),
                b"null" if description is None else dumps(description),
                dumps(attachments, option=OUTPUT_JSON_OPTIONS) if attachments else b"[]",
                tail,
            )
        )
    return b"[" + b",".join(parts) + b"]"


def record_from_json(text: str | bytes) -> Record:
    """The Record of a `record_json` text (used for the one record a page's cursor needs)."""
    d = orjson.loads(text)
    d["created_at"] = datetime.fromisoformat(d["created_at"])
    d["updated_at"] = datetime.fromisoformat(d["updated_at"])
    return Record(**d)


@dataclass(slots=True)
class RecordInput:
    """One record as sent for create, replace or patch; UNSET marks an absent member."""

    id: str | _Unset | None = UNSET
    name: str | _Unset | None = UNSET
    external_id: str | _Unset | None = UNSET
    owner: str | _Unset | None = UNSET
    data: dict[str, Any] | _Unset = UNSET
    description: str | _Unset | None = UNSET
    attachments: list[Any] | _Unset = UNSET


_STRING_MEMBERS = {
    "id": 64,
    "name": 255,
    "external_id": 255,
    "owner": 255,
    "description": 10_000,
}


def parse_record_input(obj: Any, path: str, errors: list[FieldError]) -> RecordInput:
    """Check one record's shape; problems are appended to `errors` with paths under `path`."""
    result = RecordInput()
    if not isinstance(obj, dict):
        errors.append(FieldError(path, "type", "expected a record object"))
        return result
    if len(obj) == 1 and isinstance(obj.get("data"), dict):  # the usual create: data alone
        result.data = obj["data"]
        return result
    for member, value in obj.items():
        where = f"{path}/{member}"
        if member in ECHO_MEMBERS:
            continue
        if member not in RECORD_MEMBERS:
            errors.append(
                FieldError(where, "unknown_member", f"valid members: {', '.join(RECORD_MEMBERS)}")
            )
            continue
        if member == "data":
            if not isinstance(value, dict):
                errors.append(FieldError(where, "type", "expected an object"))
                continue
        elif member == "attachments":
            if value is None:
                value = []
            if not isinstance(value, list) or len(value) > 100:
                errors.append(FieldError(where, "type", "expected a list (at most 100)"))
                continue
        elif value is not None:
            limit = _STRING_MEMBERS[member]
            if not isinstance(value, str):
                errors.append(FieldError(where, "type", "expected a string or null"))
                continue
            if not value.strip() or len(value) > limit:
                errors.append(FieldError(where, "length", f"1 to {limit} characters"))
                continue
            if member == "id" and not ID_RE.match(value):
                errors.append(
                    FieldError(where, "invalid", "1-64 characters: letters, digits, _ and -")
                )
                continue
        elif member == "id":
            continue
        setattr(result, member, value)
    return result


# Keys and scopes ---------------------------------------------------------------------------

SCOPES: Final = ("records:read", "records:write", "types:read", "types:write", "admin")


@dataclass(frozen=True)
class Scope:
    resource: str  # records | types | admin
    action: str  # read | write | "" for admin
    type_key: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        """`records:write`, `records:write:blood_test`, `admin`; raises ValueError."""
        if text == "admin":
            return cls("admin", "")
        parts = text.split(":")
        if len(parts) not in (2, 3) or ":".join(parts[:2]) not in SCOPES:
            raise ValueError(
                f"unknown scope {text!r}; valid: {', '.join(SCOPES)} "
                "(records:* and types:* may be narrowed to one type: records:write:<type>)"
            )
        type_key = parts[2] if len(parts) == 3 else None
        if type_key is not None and not re.match(r"^[a-z][a-z0-9_]{0,62}$", type_key):
            raise ValueError(f"scope {text!r}: {type_key!r} is not a type key")
        return cls(parts[0], parts[1], type_key)

    def __str__(self) -> str:
        if self.resource == "admin":
            return "admin"
        base = f"{self.resource}:{self.action}"
        return f"{base}:{self.type_key}" if self.type_key else base

    def grants(self, resource: str, action: str, type_key: str | None) -> bool:
        if self.resource == "admin":
            return True
        if self.resource != resource or self.action != action:
            return False
        return self.type_key is None or self.type_key == type_key


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    project_name: str
    prefix: str
    scopes: tuple[Scope, ...]
    rate: float | None
    burst: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    name: str = ""
    # The key's project's defaults, read with the key so authentication stays one lookup.
    project_rate: float | None = None
    project_burst: int | None = None

    @property
    def limits(self) -> tuple[float | None, int | None]:
        """The effective (rate, burst): the key's own, else its project's; None: the deployment's."""
        rate = self.rate if self.rate is not None else self.project_rate
        burst = self.burst if self.burst is not None else self.project_burst
        return rate, burst

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project_name,
            "prefix": self.prefix,
            "name": self.name,
            "scopes": [str(s) for s in self.scopes],
            "rate": self.rate,
            "burst": self.burst,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
        }


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's project and scopes. Every service method takes it first."""

    project_id: str
    project_name: str
    key_id: str
    scopes: tuple[Scope, ...]
    rate: float | None = None
    burst: int | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Answers of `can`, kept: one principal serves every request of its cached key, and its
    # scopes never change (a changed key is a new principal).
    _can: dict[tuple[str, str, str | None], bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def can(self, resource: str, action: str, type_key: str | None = None) -> bool:
        asked = (resource, action, type_key)
        answer = self._can.get(asked)
        if answer is None:
            answer = any(s.grants(resource, action, type_key) for s in self.scopes)
            if len(self._can) < 1024:  # type keys come from requests: keep it bounded
                self._can[asked] = answer
        return answer

    def require(self, resource: str, action: str, type_key: str | None = None) -> None:
        if not self.can(resource, action, type_key):
            needed = f"{resource}:{action}" + (f":{type_key}" if type_key else "")
            raise Forbidden(
                f"This key lacks the scope {needed!r} (it has: "
                f"{', '.join(str(s) for s in self.scopes) or 'none'}).",
                extra={"missing_scope": needed},
            )

    @cached_property  # once per principal (frozen): a plain attribute after
    def actor(self) -> str:
        return self.user or f"key:{self.key_id}"


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    created_at: datetime
    # Token-bucket defaults for the project's keys without their own (None: Settings').
    rate: float | None = None
    burst: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "rate": self.rate,
            "burst": self.burst,
            "created_at": self.created_at,
        }
