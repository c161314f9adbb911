"""JSON Schema 2020-12 validation of record data, compiled once per type version.

Backed by jsonschema-rs (a Rust validator: about 1 µs per 10-field record here, see
docs/decisions.md). Errors come back as `FieldError`s whose paths are JSON Pointers under the
record, e.g. `/data/email`. Remote `$ref`s are never fetched: a schema must be self-contained.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs

from recordbase.errors import FieldError

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_MAX_ERRORS = 20


def _no_remote(uri: str) -> Any:
    raise ValueError(f"remote $ref {uri!r} is not allowed; schemas must be self-contained")


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when `schema` is a valid 2020-12 schema that compiles; else the problem."""
    candidate = schema if "$schema" in schema else {"$schema": DRAFT, **schema}
    if candidate.get("$schema") != DRAFT:
        return f"$schema must be {DRAFT!r} (JSON Schema 2020-12) or absent"
    try:
        jsonschema_rs.meta.validate(candidate)
        _compile(candidate)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        return str(exc).split("\n", 1)[0]
    return None


def _compile(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, retriever=_no_remote)


class Validate:
    """A compiled schema: `validate(data, path_prefix)` -> errors, [] when valid.

    `is_valid(data)` answers the common case alone, in C (jsonschema_rs), for callers that
    need no error list when the data is valid (core/writes.RecordMaker)."""

    __slots__ = ("_validator", "is_valid")

    def __init__(self, schema: dict[str, Any]) -> None:
        self._validator = _compile(schema)
        self.is_valid: Callable[[Any], bool] = self._validator.is_valid

    def __call__(self, data: Any, prefix: str) -> list[FieldError]:
        if self.is_valid(data):
            return []
        errors: list[FieldError] = []
        for err in self._validator.iter_errors(data):
            pointer = "".join("/" + _escape(str(p)) for p in err.instance_path)
            kind = type(err.kind).__name__.lower()
            if kind == "required":  # point at the missing member, not at its parent
                pointer += "/" + _escape(str(err.kind.property))
            errors.append(FieldError(prefix + pointer, kind, err.message))
            if len(errors) >= _MAX_ERRORS:
                break
        return errors


def compile_validator(schema: dict[str, Any]) -> Validate:
    """A function-like (data, path_prefix) -> errors; [] means valid. Fast path: `is_valid`."""
    return Validate(schema)


def _escape(segment: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return segment.replace("~", "~0").replace("/", "~1")


class ValidatorCache:
    """Compiled validators keyed by (type id, version); a new version compiles anew."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._cache: dict[tuple[str, int], Validate] = {}

    def get(self, type_id: str, version: int, schema: dict[str, Any]) -> Validate:
        key = (type_id, version)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self._size:
                self._cache.clear()
            found = self._cache[key] = compile_validator(schema)
        return found
