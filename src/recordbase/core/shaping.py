"""Write-time shaping of record data: aliases, read-only fields, defaults, discriminator, computed.

A record type may declare, besides its JSON Schema:
- `aliases`: an old name accepted for a new one (`data.generation_time` -> `data.latency`);
  both given with different values is a 400 `alias_conflict`;
- `read_only`: paths a client may not write (sending a different value is a 400
  `read_only_field`; a replace keeps the stored value);
- JSON Schema `default`s: filled in where a property is absent (its parent object present);
- `discriminator`: a field whose value selects how other fields are parsed (today:
  `parse_json`, a JSON text that decodes to an object or array becomes that structure);
- `computed`: path -> expression (core/expressions.py), evaluated in declaration order on every
  write where the client did not send the field; a value the client set stays until it changes
  it, and `constants` are names the expressions may use (e.g. a price table).

`parse_shaping` checks these members of a definition; `shaper_for(rtype)` compiles them once
per type version into a `Shaper`, which the service calls on every create, replace and patch,
before schema validation. Pure: no I/O.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from recordbase.core.expressions import Expression, compile_expression, evaluate
from recordbase.errors import AliasConflict, FieldError, ReadOnlyField

if TYPE_CHECKING:
    from recordbase.core.types import Discriminator, RecordType, TypeDefinition

Parts = tuple[str, ...]
_MISSING: Any = object()
_MAX_ENTRIES = 64
_MAX_CONSTANTS_BYTES = 256 * 1024
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CASE_ACTIONS = ("parse_json",)


# parsing a definition -------------------------------------------------------------------------


def parse_shaping(body: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """The shaping members of a type definition as TypeDefinition keyword arguments."""

    aliases = _parse_map(body.get("aliases"), "aliases", errors, _check_alias_target)
    computed = _parse_map(body.get("computed"), "computed", errors, _check_expression)
    read_only: list[str] = []
    raw_ro = body.get("read_only")
    if raw_ro is not None:
        if not isinstance(raw_ro, list) or len(raw_ro) > _MAX_ENTRIES:
            errors.append(FieldError("/read_only", "type", "a list of data paths (at most 64)"))
        else:
            for i, path in enumerate(raw_ro):
                if _data_path(path) is None:
                    errors.append(FieldError(f"/read_only/{i}", "invalid_path", "data.<a>.<b>"))
                else:
                    read_only.append(path)
    for target in aliases.values():
        if target in aliases:
            errors.append(FieldError("/aliases", "invalid", f"{target!r} is an alias and a target"))
    discriminator: Discriminator | None = _parse_discriminator(body.get("discriminator"), errors)
    constants = body.get("constants") or {}
    if not isinstance(constants, dict):
        errors.append(FieldError("/constants", "type", "an object of name -> JSON value"))
        constants = {}
    for name in constants:
        if not _NAME_RE.match(name) or name == "data":
            errors.append(FieldError(f"/constants/{name}", "invalid", "an identifier, not 'data'"))
    if len(orjson.dumps(constants)) > _MAX_CONSTANTS_BYTES:
        errors.append(FieldError("/constants", "too_large", "at most 256 KiB of JSON"))
    return {
        "aliases": aliases,
        "computed": computed,
        "read_only": tuple(read_only),
        "discriminator": discriminator,
        "constants": constants,
    }


def _data_path(path: Any) -> Parts | None:
    from recordbase.core.types import parse_path

    if not isinstance(path, str):
        return None
    try:
        parts = parse_path(path)
    except ValueError:
        return None
    return parts[1:] if parts[0] == "data" else None


def _check_alias_target(target: Any) -> str | None:
    return None if _data_path(target) is not None else "the target must be a data.<a>.<b> path"


def _check_expression(source: Any) -> str | None:
    try:
        compile_expression(source)
    except ValueError as exc:
        return str(exc)
    return None


def _parse_map(raw: Any, member: str, errors: list[FieldError], check: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > _MAX_ENTRIES:
        errors.append(FieldError(f"/{member}", "type", "an object of data paths (at most 64)"))
        return {}
    out: dict[str, str] = {}
    for path, value in raw.items():
        where = f"/{member}/{path}"
        if _data_path(path) is None:
            errors.append(FieldError(where, "invalid_path", "keys are data.<a>.<b> paths"))
            continue
        problem = check(value)
        if problem:
            errors.append(FieldError(where, "invalid", problem))
            continue
        if value == path:
            errors.append(FieldError(where, "invalid", "a path cannot alias itself"))
            continue
        out[path] = value
    return out


def _parse_discriminator(raw: Any, errors: list[FieldError]) -> Discriminator | None:
    from recordbase.core.types import Discriminator

    if raw is None:
        return None
    shape = '{"field": "data.<path>", "cases": {"<value>": {"parse_json": ["data.<path>"]}}}'
    if not isinstance(raw, dict) or set(raw) - {"field", "cases"} or "field" not in raw:
        errors.append(FieldError("/discriminator", "invalid", f"expected {shape}"))
        return None
    if _data_path(raw["field"]) is None:
        errors.append(FieldError("/discriminator/field", "invalid_path", "data.<a>.<b>"))
    cases_raw = raw.get("cases", {})
    if not isinstance(cases_raw, dict) or len(cases_raw) > _MAX_ENTRIES:
        errors.append(FieldError("/discriminator/cases", "type", f"expected {shape}"))
        return None
    cases: dict[str, dict[str, tuple[str, ...]]] = {}
    for value, case in cases_raw.items():
        where = f"/discriminator/cases/{value}"
        if not isinstance(case, dict) or set(case) - set(CASE_ACTIONS):
            errors.append(FieldError(where, "invalid", f"valid actions: {', '.join(CASE_ACTIONS)}"))
            continue
        paths = case.get("parse_json", [])
        if not isinstance(paths, list) or any(_data_path(p) is None for p in paths):
            errors.append(FieldError(f"{where}/parse_json", "invalid_path", "data paths"))
            continue
        cases[value] = {"parse_json": tuple(paths)}
    return Discriminator(raw["field"], cases)


# nested values ---------------------------------------------------------------------------------


def get_in(data: Any, parts: Parts) -> Any:
    node = data
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def set_in(data: dict[str, Any], parts: Parts, value: Any) -> dict[str, Any]:
    """A copy of `data` with `value` at `parts` (copying only along the path)."""
    head, rest = parts[0], parts[1:]
    out = dict(data)
    if not rest:
        out[head] = value
        return out
    child = out.get(head, _MISSING)
    if child is _MISSING:
        child = {}
    if not isinstance(child, dict):
        return data  # a scalar is in the way: leave it for the schema to judge
    out[head] = set_in(child, rest, value)
    return out


def del_in(data: dict[str, Any], parts: Parts) -> dict[str, Any]:
    if get_in(data, parts) is _MISSING:
        return data
    out = dict(data)
    if len(parts) == 1:
        del out[parts[0]]
    else:
        out[parts[0]] = del_in(out[parts[0]], parts[1:])
    return out


def _pointer(where: str, parts: Parts) -> str:
    return where + "".join("/" + p for p in parts)


# the compiled shaper ---------------------------------------------------------------------------


def _defaults(schema: Mapping[str, Any], prefix: Parts = ()) -> Iterator[tuple[Parts, Any]]:
    """(path, default) of every `properties` member with a `default`, parents first."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    for name, sub in props.items():
        if isinstance(sub, dict):
            if "default" in sub:
                yield (*prefix, name), sub["default"]
            yield from _defaults(sub, (*prefix, name))


@dataclass(frozen=True)
class Shaper:
    aliases: tuple[tuple[Parts, Parts], ...]
    read_only: tuple[Parts, ...]
    defaults: tuple[tuple[Parts, Any], ...]
    discriminator: tuple[Parts, dict[str, tuple[Parts, ...]]] | None
    computed: tuple[tuple[Parts, Expression], ...]
    constants: Mapping[str, Any]

    @classmethod
    def build(cls, d: TypeDefinition) -> Shaper:
        def parts(path: str) -> Parts:
            return tuple(path.split("."))[1:]

        disc = None
        if d.discriminator is not None:
            cases = {
                value: tuple(parts(p) for p in case.get("parse_json", ()))
                for value, case in d.discriminator.cases.items()
            }
            disc = (parts(d.discriminator.field), cases)
        return cls(
            aliases=tuple((parts(a), parts(t)) for a, t in d.aliases.items()),
            read_only=tuple(parts(p) for p in d.read_only),
            defaults=tuple(_defaults(d.schema)),
            discriminator=disc,
            computed=tuple((parts(p), compile_expression(e)) for p, e in d.computed.items()),
            constants=d.constants,
        )

    @cached_property  # once per compiled shaper (frozen)
    def idle(self) -> bool:
        """Whether the type declares nothing to shape: `created` returns data as it is."""
        return not (
            self.aliases or self.read_only or self.defaults or self.discriminator or self.computed
        )

    def created(self, data: dict[str, Any], where: str) -> dict[str, Any]:
        """A new record's data: incoming then complete, skipped when the type shapes nothing."""
        if self.idle:
            return data  # what both steps return when there is nothing to apply (batch hot path)
        sent = self.incoming(data, where, None)
        return self.complete(sent, sent, None)

    def incoming(
        self, sent: dict[str, Any], where: str, old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The client's data with aliases resolved; raises on a read-only write."""
        for alias, target in self.aliases:
            value = get_in(sent, alias)
            if value is _MISSING:
                continue
            current = get_in(sent, target)
            if current is not _MISSING and current != value:
                raise AliasConflict(
                    f"{'.'.join(alias)} is another name for {'.'.join(target)}; "
                    "both were given with different values.",
                    errors=[FieldError(_pointer(where, alias), "alias_conflict", "send one")],
                )
            sent = del_in(sent, alias)
            if current is _MISSING:
                sent = set_in(sent, target, value)
        for path in self.read_only:
            value = get_in(sent, path)
            if value is _MISSING or (old is not None and get_in(old, path) == value):
                continue
            raise ReadOnlyField(
                f"{'.'.join(path)} is read-only.",
                errors=[FieldError(_pointer(where, path), "read_only", "cannot be written")],
            )
        return sent

    def complete(
        self, data: dict[str, Any], sent: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """`data` after defaults, discriminator parsing and computed fields."""
        if old is not None:
            for path in self.read_only:
                kept = get_in(old, path)
                if kept is not _MISSING and get_in(data, path) is _MISSING:
                    data = set_in(data, path, kept)
        for path, default in self.defaults:
            if get_in(data, path) is _MISSING and (
                len(path) == 1 or isinstance(get_in(data, path[:-1]), dict)
            ):
                data = set_in(data, path, copy.deepcopy(default))
        if self.discriminator is not None:
            data = self._parse_by_case(data)
        for path, expr in self.computed:
            if get_in(sent, path) is not _MISSING:
                continue
            current = get_in(data, path)
            if (
                old is not None
                and current is not _MISSING
                and current == get_in(old, path)
                and current != evaluate(expr, old, self.constants)
            ):
                continue  # the client set this value earlier: it stays until the client changes it
            value = evaluate(expr, data, self.constants)
            data = del_in(data, path) if value is None else set_in(data, path, value)
        return data

    def _parse_by_case(self, data: dict[str, Any]) -> dict[str, Any]:
        assert self.discriminator is not None
        field, cases = self.discriminator
        selector = get_in(data, field)
        for path in cases.get(selector, ()) if isinstance(selector, str) else ():
            text = get_in(data, path)
            if not isinstance(text, str):
                continue
            try:
                parsed = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue  # plain text stays text
            if isinstance(parsed, dict | list):
                data = set_in(data, path, parsed)
        return data


_SHAPERS: dict[tuple[str, int, Any], Shaper] = {}


def shaper_for(rtype: RecordType) -> Shaper:
    """The compiled shaper of a type version (cached; any type change compiles anew)."""
    key = (rtype.id, rtype.version, rtype.updated_at)
    found = _SHAPERS.get(key)
    if found is None:
        if len(_SHAPERS) >= 1024:
            _SHAPERS.clear()
        found = _SHAPERS[key] = Shaper.build(rtype.definition)
    return found
