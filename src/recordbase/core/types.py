"""Record types: what a project declares about one kind of record.

A `RecordType` carries the JSON Schema of the data, the naming rule (autonumber or unique
names), unique keys, indexes and the type's version. `parse_type_definition` turns a client's
JSON definition into a `TypeDefinition`, raising a 400 that names every problem; the service
then stores it. Pure data and checks: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from recordbase.errors import FieldError, InvalidSchema, UnknownMember, ValidationFailed

KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
PATH_SEGMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
SYSTEM_FIELDS = (
    "id",
    "name",
    "external_id",
    "owner",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
)
TYPE_MEMBERS = (
    "key",
    "name",
    "description",
    "schema",
    "naming",
    "unique_keys",
    "indexes",
    "aliases",
    "computed",
    "read_only",
    "discriminator",
    "constants",
    "search",
)


@dataclass(frozen=True)
class Naming:
    mode: Literal["autonumber", "unique"]
    prefix: str = ""
    padding: int = 0
    next: int = 1

    def format(self, number: int) -> str:
        return (
            f"{self.prefix}{number:0{self.padding}d}" if self.padding else f"{self.prefix}{number}"
        )

    def as_dict(self, next_number: int | None = None) -> dict[str, Any]:
        if self.mode == "unique":
            return {"mode": "unique"}
        return {
            "mode": "autonumber",
            "prefix": self.prefix,
            "padding": self.padding,
            "next": self.next if next_number is None else next_number,
        }


@dataclass(frozen=True)
class KeySpec:
    """A declared unique key or index: a name and one or more paths."""

    name: str
    fields: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "fields": list(self.fields)}


@dataclass(frozen=True)
class TypeDefinition:
    key: str
    name: str
    description: str
    schema: dict[str, Any]
    naming: Naming | None = None
    unique_keys: tuple[KeySpec, ...] = ()
    indexes: tuple[KeySpec, ...] = ()
    # Write-time shaping (core/shaping.py): old name -> new name, path -> expression, ...
    aliases: dict[str, str] = field(default_factory=dict)
    computed: dict[str, str] = field(default_factory=dict)
    read_only: tuple[str, ...] = ()
    discriminator: Discriminator | None = None
    constants: dict[str, Any] = field(default_factory=dict)
    # Full-text search (`q=`) over the name and string data; off by default, because the
    # search entries cost every write of the type (docs/filters.md).
    search: bool = False

    def shaping_dict(self) -> dict[str, Any]:
        """The shaping members as JSON (stored with the definition and shown by the API)."""
        return {
            "aliases": dict(self.aliases),
            "computed": dict(self.computed),
            "read_only": list(self.read_only),
            "discriminator": self.discriminator.as_dict() if self.discriminator else None,
            "constants": self.constants,
        }


@dataclass(frozen=True)
class Discriminator:
    """A field whose value selects how other fields are parsed (see core/shaping.py)."""

    field: str
    cases: dict[str, dict[str, tuple[str, ...]]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "cases": {
                value: {how: list(paths) for how, paths in case.items()}
                for value, case in self.cases.items()
            },
        }


@dataclass(frozen=True)
class RecordType:
    id: str
    project_id: str
    definition: TypeDefinition
    version: int
    created_at: datetime
    updated_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    # Read on every write: cached_property keeps each answer in the (frozen, never changed)
    # object's __dict__, so a read after the first is a plain attribute, not a call.
    @cached_property
    def key(self) -> str:
        return self.definition.key

    @cached_property
    def schema(self) -> dict[str, Any]:
        return self.definition.schema

    @cached_property
    def naming(self) -> Naming | None:
        return self.definition.naming

    @cached_property
    def keyed(self) -> bool:
        """Whether its records have key rows (a unique name or declared unique keys). Removing
        a unique key deletes its rows and naming cannot change once records exist, so a type
        that is not keyed has none: its writes need not look for them."""
        return self.definition.naming is not None or bool(self.definition.unique_keys)

    def unique_key(self, name: str) -> KeySpec | None:
        return next((k for k in self.definition.unique_keys if k.name == name), None)

    def with_definition(self, definition: TypeDefinition, now: datetime) -> RecordType:
        bump = definition.schema != self.definition.schema
        return replace(
            self, definition=definition, version=self.version + int(bump), updated_at=now
        )


def parse_path(path: str) -> tuple[str, ...]:
    """`data.a.b` -> ("data", "a", "b"); a system field -> (field,). Raises ValueError."""
    if path in SYSTEM_FIELDS:
        return (path,)
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "data" or len(parts) > 17:
        raise ValueError(path)
    if not all(PATH_SEGMENT_RE.match(p) for p in parts[1:]):
        raise ValueError(path)
    return tuple(parts)


def schema_at(schema: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The sub-schema a `data.` path points to, following `properties`; None if undeclared."""
    node: Mapping[str, Any] | None = schema
    for part in path[1:]:
        if node is None:
            return None
        props = node.get("properties")
        node = props.get(part) if isinstance(props, Mapping) else None
    return node


def parse_type_definition(body: Any, *, key: str | None = None) -> TypeDefinition:
    """Check a JSON type definition; `key` fixes the key (updates keep the stored one)."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "A record type must be a JSON object.",
            errors=[FieldError("", "type", "expected an object")],
        )
    unknown = sorted(set(body) - set(TYPE_MEMBERS))
    if unknown:
        raise UnknownMember(
            f"Unknown member(s) {', '.join(unknown)}; valid: {', '.join(TYPE_MEMBERS)}.",
            errors=[FieldError(f"/{u}", "unknown_member", "not a type member") for u in unknown],
        )
    errors: list[FieldError] = []
    the_key = key if key is not None else body.get("key")
    if not isinstance(the_key, str) or not KEY_RE.match(the_key):
        errors.append(
            FieldError("/key", "invalid", "a slug: lowercase letter, then a-z, 0-9 or _ (max 63)")
        )
    name = body.get("name", the_key if isinstance(the_key, str) else "")
    description = body.get("description", "")
    for member, value in (("name", name), ("description", description)):
        if not isinstance(value, str) or len(value) > 1000:
            errors.append(FieldError(f"/{member}", "type", "expected a string (max 1000)"))
    schema = body.get("schema", {"type": "object"})
    errors.extend(_check_schema(schema))
    naming = _parse_naming(body.get("naming"), errors)
    unique_keys = _parse_keyspecs(body.get("unique_keys"), "unique_keys", errors)
    indexes = _parse_keyspecs(body.get("indexes"), "indexes", errors)
    from recordbase.core.shaping import parse_shaping

    shaping = parse_shaping(body, errors)
    search = body.get("search", False)
    if not isinstance(search, bool):
        errors.append(FieldError("/search", "type", "expected true or false"))
    if errors:
        first = errors[0]
        raise (InvalidSchema if first.path.startswith("/schema") else ValidationFailed)(
            f"Invalid record type: {first.path or '/'}: {first.message}", errors=errors
        )
    assert isinstance(the_key, str)
    return TypeDefinition(
        key=the_key,
        name=str(name),
        description=str(description),
        schema=schema,
        naming=naming,
        unique_keys=unique_keys,
        indexes=indexes,
        **shaping,
        search=bool(search),
    )


def _check_schema(schema: Any) -> list[FieldError]:
    # Imported here so that the validation module stays the only one touching jsonschema_rs.
    from recordbase.core.validation import check_schema

    if not isinstance(schema, dict):
        return [FieldError("/schema", "type", "expected a JSON Schema object")]
    if schema.get("type", "object") != "object":
        return [FieldError("/schema/type", "invalid", 'the data schema must be {"type": "object"}')]
    problem = check_schema(schema)
    return [FieldError("/schema", "invalid_schema", problem)] if problem else []


def _parse_naming(raw: Any, errors: list[FieldError]) -> Naming | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("mode") not in ("autonumber", "unique"):
        errors.append(
            FieldError("/naming/mode", "invalid", 'mode must be one of "autonumber", "unique"')
        )
        return None
    allowed = {"mode", "prefix", "padding", "next"} if raw["mode"] == "autonumber" else {"mode"}
    for extra in sorted(set(raw) - allowed):
        errors.append(
            FieldError(f"/naming/{extra}", "unknown_member", f"valid: {', '.join(sorted(allowed))}")
        )
    if raw["mode"] == "unique":
        return Naming("unique")
    prefix, padding, nxt = raw.get("prefix", ""), raw.get("padding", 0), raw.get("next", 1)
    if not isinstance(prefix, str) or len(prefix) > 30:
        errors.append(FieldError("/naming/prefix", "invalid", "a string of at most 30 characters"))
    if not _is_int(padding) or not 0 <= padding <= 9:
        errors.append(FieldError("/naming/padding", "invalid", "an integer from 0 to 9"))
    if not _is_int(nxt) or not 1 <= nxt < 2**53:
        errors.append(FieldError("/naming/next", "invalid", "an integer of at least 1"))
    if any(e.path.startswith("/naming") for e in errors):
        return None
    return Naming("autonumber", prefix, padding, nxt)


def _parse_keyspecs(raw: Any, member: str, errors: list[FieldError]) -> tuple[KeySpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 32:
        errors.append(FieldError(f"/{member}", "type", "expected a list (at most 32)"))
        return ()
    specs: list[KeySpec] = []
    for i, item in enumerate(raw):
        where = f"/{member}/{i}"
        if not isinstance(item, dict) or set(item) - {"name", "fields"}:
            errors.append(FieldError(where, "invalid", 'expected {"name": ..., "fields": [...]}'))
            continue
        name, paths = item.get("name"), item.get("fields")
        if not isinstance(name, str) or not KEY_RE.match(name):
            errors.append(FieldError(f"{where}/name", "invalid", "a slug (a-z, 0-9, _)"))
        if any(s.name == name for s in specs):
            errors.append(FieldError(f"{where}/name", "duplicate", f"{name!r} is declared twice"))
        if not isinstance(paths, list) or not 1 <= len(paths) <= 8:
            errors.append(FieldError(f"{where}/fields", "invalid", "a list of 1 to 8 paths"))
            continue
        for j, path in enumerate(paths):
            try:
                parse_path(path) if isinstance(path, str) else parse_path("")
            except ValueError:
                errors.append(
                    FieldError(
                        f"{where}/fields/{j}",
                        "invalid_path",
                        f"a system field ({', '.join(SYSTEM_FIELDS)}) or data.<a>.<b>",
                    )
                )
        if isinstance(name, str):
            specs.append(KeySpec(name, tuple(str(p) for p in paths)))
    return tuple(specs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def type_as_dict(rtype: RecordType, next_number: int | None = None) -> dict[str, Any]:
    d = rtype.definition
    out: dict[str, Any] = {
        "key": d.key,
        "name": d.name,
        "description": d.description,
        "schema": d.schema,
        "naming": d.naming.as_dict(next_number) if d.naming else None,
        "unique_keys": [k.as_dict() for k in d.unique_keys],
        "indexes": [k.as_dict() for k in d.indexes],
        **d.shaping_dict(),
        "search": d.search,
        "version": rtype.version,
        "created_at": rtype.created_at,
        "updated_at": rtype.updated_at,
    }
    return out
