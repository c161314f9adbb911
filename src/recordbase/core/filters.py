"""Parsing and checking the one query language (DESIGN.md, "Filters"), for every face.

Two dialects parse into the same tree (core/query.py): query-string pairs `path__op=value`
(`parse_params`) and the JSON form `{"<path>": {"operator": op, "value": [...]}, "or": [...]}`
(`parse_json_filter`). Parsing knows no schema: a query-string value stays `Text` until
`check_query` resolves each path against the record type's schema, checks the operator and
the value against the field's kind, and returns the query with typed values and kinds, ready
for a store to compile. Every failure is a 400 naming the valid choices. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from recordbase.core.clock import utc_text
from recordbase.core.query import (
    DEFAULT_SORT,
    OPERATOR_ALIASES,
    OPERATORS,
    And,
    Condition,
    Filter,
    Not,
    Or,
    Query,
    SortKey,
)
from recordbase.core.types import SYSTEM_FIELDS, RecordType, parse_path
from recordbase.errors import FieldError, InvalidFilter, InvalidSort, UnknownParameter

# What a path holds, as far as comparing goes. "any": undeclared or of several types; values
# then compare by their own JSON type.
KINDS: Final = ("string", "number", "boolean", "datetime", "array", "object", "any")
SYSTEM_KINDS: Final[dict[str, str]] = {
    "id": "string",
    "name": "string",
    "external_id": "string",
    "owner": "string",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "string",
    "updated_by": "string",
    "version": "number",
}
_SCALAR_OPS = ("eq", "not", "in", "isnull")
_RANGE_OPS = ("lt", "lte", "gt", "gte")
_TEXT_OPS = ("iexact", "contains", "icontains", "startswith", "endswith")
OPERATORS_BY_KIND: Final[dict[str, tuple[str, ...]]] = {
    "string": (*_SCALAR_OPS, *_RANGE_OPS, *_TEXT_OPS),
    "number": (*_SCALAR_OPS, *_RANGE_OPS),
    "boolean": _SCALAR_OPS,
    "datetime": (*_SCALAR_OPS, *_RANGE_OPS, *_TEXT_OPS),
    "array": ("contains", "isnull"),
    "object": ("isnull",),
    "any": tuple(OPERATORS),
}
SORTABLE_KINDS: Final = ("string", "number", "boolean", "datetime", "any")
MAX_FILTER_NODES: Final = 200
MAX_TEXT: Final = 200


@dataclass(frozen=True)
class Text:
    """A query-string value not yet typed: `check_query` reads it by the field's kind."""

    raw: str


# parsing ----------------------------------------------------------------------------------


def parse_params(items: Iterable[tuple[str, str]], reserved: Iterable[str]) -> Filter | None:
    """`path__op=value` pairs (every pair not in `reserved`) -> one AND of conditions.

    The last `__` separates the operator, so `data.a__b=1` is an unknown operator `b`; a key
    that names neither a system field nor a `data.` path is an unknown parameter.
    """
    reserved = tuple(reserved)
    conditions: list[Filter] = []
    for key, raw in items:
        if key in reserved:
            continue
        name, sep, op = key.rpartition("__")
        if not sep:
            name, op = key, ""
        try:
            path = parse_path(name)
        except ValueError:
            valid = [*reserved, "<system field>[__<operator>]", "data.<path>[__<operator>]"]
            raise UnknownParameter(
                f"Unknown query parameter {key!r}; valid: {', '.join(reserved)}, or a filter "
                f"<path>__<operator> where <path> is one of {', '.join(SYSTEM_FIELDS)} or "
                "data.<a>.<b>.",
                extra={"valid": valid},
            ) from None
        if op in ("in",) and raw.startswith("["):
            value: Any = _json_list(key, raw)
        elif op == "in":
            value = [Text(part) for part in raw.split(",")] if raw else []
        else:
            value = Text(raw)
        conditions.append(Condition(path, op, value))
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else And(tuple(conditions))


def _json_list(key: str, raw: str) -> list[Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, list):
        raise _bad(key, "invalid_value", 'a comma-separated list or a JSON array ["a", "b"]')
    return value


def parse_json_filter(body: Any, where: str = "/filter") -> Filter | None:
    """The JSON form -> a filter tree; members of one object are ANDed."""
    counter = [0]
    return _parse_node(body, where, counter, 0)


def _parse_node(body: Any, where: str, counter: list[int], depth: int) -> Filter | None:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise _bad(where, "type", 'expected an object such as {"data.age": {"operator": ...}}')
    if depth > 16:
        raise _bad(where, "too_deep", "filters nest at most 16 levels")
    items: list[Filter] = []
    for key, value in body.items():
        counter[0] += 1
        if counter[0] > MAX_FILTER_NODES:
            raise _bad(where, "too_many", f"at most {MAX_FILTER_NODES} conditions")
        at = f"{where}/{key}"
        if key in ("and", "or"):
            if not isinstance(value, list):
                raise _bad(at, "type", "expected a list of filter objects")
            parts = [_parse_node(v, f"{at}/{i}", counter, depth + 1) for i, v in enumerate(value)]
            kept = tuple(p for p in parts if p is not None)
            if kept:
                items.append(And(kept) if key == "and" else Or(kept))
            elif key == "or":
                items.append(Or(()))  # an empty OR matches nothing
        elif key == "not":
            inner = _parse_node(value, at, counter, depth + 1)
            if inner is not None:
                items.append(Not(inner))
        else:
            items.append(_parse_condition(key, value, at))
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))


def _parse_condition(key: str, spec: Any, at: str) -> Condition:
    try:
        path = parse_path(key)
    except ValueError:
        raise _bad(
            at,
            "unknown_path",
            f"a system field ({', '.join(SYSTEM_FIELDS)}), data.<a>.<b>, or and/or/not",
            valid=[*SYSTEM_FIELDS, "data.<path>", "and", "or", "not"],
        ) from None
    if not isinstance(spec, dict):
        return Condition(path, "eq", spec)  # shorthand: {"data.age": 18}
    unknown = sorted(set(spec) - {"operator", "value"})
    if unknown:
        raise _bad(
            at, "unknown_member", "members are operator and value", valid=["operator", "value"]
        )
    op = spec.get("operator", "eq")
    if not isinstance(op, str):
        raise _bad(f"{at}/operator", "type", "an operator name", valid=list(OPERATORS))
    value = spec.get("value")
    # The value is a list; every operator but `in` takes its one item.
    if op != "in" and isinstance(value, list):
        if len(value) != 1:
            raise _bad(f"{at}/value", "invalid_value", f"{op} takes exactly one value")
        value = value[0]
    return Condition(path, op, value)


def parse_sort(raw: str | list[Any] | None, where: str = "sort") -> tuple[SortKey, ...]:
    """`-created_at,data.age` (or a list of such names) -> sort keys; - means descending."""
    if raw is None or raw == "" or raw == []:
        return DEFAULT_SORT
    parts = raw.split(",") if isinstance(raw, str) else raw
    keys: list[SortKey] = []
    for part in parts:
        if not isinstance(part, str):
            raise InvalidSort(f"{where}: each sort key is a string such as '-created_at'.")
        part = part.strip()
        name = part.lstrip("-+")
        try:
            path = parse_path(name)
        except ValueError:
            raise InvalidSort(
                f"Cannot sort by {name!r}; valid: {', '.join(SYSTEM_FIELDS)} or data.<path>, "
                "with - for descending.",
                extra={"valid": [*SYSTEM_FIELDS, "data.<path>"]},
            ) from None
        keys.append(SortKey(path, part.startswith("-")))
    if len(keys) > 8:
        raise InvalidSort("At most 8 sort keys.")
    return tuple(keys)


# checking against the type ----------------------------------------------------------------


def field_kind(rtype: RecordType, path: tuple[str, ...]) -> str:
    """The kind of a path in this type; an undeclared path of a closed object is a 400."""
    if path[0] != "data":
        return SYSTEM_KINDS[path[0]]
    return schema_kind(_schema_node(rtype, path))


def item_kind(rtype: RecordType, path: tuple[str, ...]) -> str:
    """The kind of the items of the array at `path` ("any" when not declared)."""
    items = _schema_node(rtype, path).get("items") if path[0] == "data" else None
    kind = schema_kind(items) if isinstance(items, Mapping) else "any"
    return "string" if kind == "datetime" else kind  # members match as written


def _schema_node(rtype: RecordType, path: tuple[str, ...]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = rtype.schema
    for depth, part in enumerate(path[1:], start=1):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if isinstance(props, Mapping) and part in props and isinstance(props[part], Mapping):
            node = props[part]
        elif isinstance(extra, Mapping):
            node = extra
        elif isinstance(props, Mapping) and props:
            # The object declares its members: a path off that list is a typo, not a query.
            prefix = ".".join(path[:depth])
            valid = [f"{prefix}.{p}" for p in props]
            raise _bad(
                ".".join(path),
                "unknown_path",
                f"not declared in the schema of {rtype.key!r}; valid here: {', '.join(valid)}",
                valid=valid,
            )
        else:
            return {}  # a free-form object: anything may live below it
    return node


def schema_kind(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):  # ["string", "null"]: a nullable string
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 or set(kinds) == {"integer", "number"} else None
    if kind in ("integer", "number"):
        return "number"
    if kind == "string":
        return "datetime" if node.get("format") == "date-time" else "string"
    if kind in ("boolean", "array", "object"):
        return str(kind)
    return "any"


def check_query(query: Query, rtype: RecordType, settings: Any) -> Query:
    """The query with every path, operator and value checked and typed for `rtype`."""
    max_in = int(getattr(settings, "max_in_values", 1000))
    flt = None if query.filter is None else _check_node(query.filter, rtype, max_in)
    sort = tuple(_check_sort_key(k, rtype) for k in query.sort)
    text = query.text.strip() if query.text else None
    if text is not None and len(text) > MAX_TEXT:
        raise _bad("q", "too_long", f"text search takes at most {MAX_TEXT} characters")
    if text and not rtype.definition.search:
        # Search entries cost every write, so a type opts in; say how rather than scan.
        raise InvalidFilter(
            f"Text search (q) is off for record type {rtype.key!r}; turn it on with "
            f'"search": true in the type definition (PATCH /v1/types/{rtype.key}).',
            errors=[FieldError("q", "search_off", 'the type needs "search": true')],
            extra={"type": rtype.key},
        )
    # Query(...) rather than dataclasses.replace: this runs on every list request.
    return Query(
        filter=flt,
        sort=sort,
        limit=query.limit,
        after=query.after,
        offset=query.offset,
        count=query.count,
        text=text or None,
        extra=query.extra,
    )


def _check_sort_key(key: SortKey, rtype: RecordType) -> SortKey:
    try:
        kind = field_kind(rtype, key.path)
    except InvalidFilter as exc:
        raise InvalidSort(exc.detail, errors=exc.errors, extra=exc.extra) from None
    if kind not in SORTABLE_KINDS:
        raise InvalidSort(
            f"Cannot sort by {'.'.join(key.path)}: it holds {kind} values; sort by a string, "
            "number, boolean or date-time field.",
        )
    return SortKey(key.path, key.descending, kind)


def _check_node(node: Filter, rtype: RecordType, max_in: int) -> Filter:
    if isinstance(node, And):
        return And(tuple(_check_node(i, rtype, max_in) for i in node.items))
    if isinstance(node, Or):
        return Or(tuple(_check_node(i, rtype, max_in) for i in node.items))
    if isinstance(node, Not):
        return Not(_check_node(node.item, rtype, max_in))
    return _check_condition(node, rtype, max_in)


def _check_condition(c: Condition, rtype: RecordType, max_in: int) -> Condition:
    name = ".".join(c.path)
    op = OPERATOR_ALIASES.get(c.op, c.op)
    if op not in OPERATORS:
        raise _bad(
            name,
            "unknown_operator",
            f"unknown operator {c.op!r}; valid: {', '.join(OPERATORS)}",
            valid=list(OPERATORS),
        )
    kind = field_kind(rtype, c.path)
    allowed = OPERATORS_BY_KIND[kind]
    if op not in allowed:
        raise _bad(
            name,
            "invalid_operator",
            f"{op} does not apply to a {kind} field; valid: {', '.join(allowed)}",
            valid=list(allowed),
        )
    if op == "isnull":
        return Condition(c.path, op, _boolean(name, c.value), kind)
    if op == "in":
        if not isinstance(c.value, list):
            raise _bad(name, "invalid_value", "in takes a list of values")
        if len(c.value) > max_in:
            raise _bad(name, "too_many_values", f"in takes at most {max_in} values", max=max_in)
        values = [_typed(name, kind, "eq", v) for v in c.value]
        return Condition(c.path, op, values, kind)
    if kind == "array":
        member = item_kind(rtype, c.path)
        if member in ("array", "object"):
            member = "any"
        return Condition(c.path, op, _typed(name, member, "eq", c.value), kind)
    return Condition(c.path, op, _typed(name, kind, op, c.value), kind)


def _typed(name: str, kind: str, op: str, value: Any) -> Any:
    """The value read and checked for comparing with a field of `kind` under `op`."""
    if kind == "any" and op == "contains" and not isinstance(value, Text):
        # An untyped field: a string looks for a substring (or member), else a member.
        return _any_scalar(name, value)
    if op in _TEXT_OPS:
        return _string(name, value)
    if kind == "number":
        return _number(name, value)
    if kind == "boolean":
        return _boolean(name, value)
    if kind == "datetime":
        return _instant(name, value)
    if kind == "string":
        return _string(name, value)
    scalar = _any_scalar(name, value)
    if op in _RANGE_OPS and isinstance(scalar, bool):
        raise _bad(name, "invalid_value", f"{op} compares numbers, strings or date-times")
    return scalar


def _string(name: str, value: Any) -> str:
    if isinstance(value, Text):
        return value.raw
    if not isinstance(value, str):
        raise _bad(name, "invalid_value", f"expected a string, got {_json_type(value)}")
    return value


def _number(name: str, value: Any) -> int | float:
    if isinstance(value, Text):
        try:
            number: int | float = int(value.raw)
        except ValueError:
            try:
                number = float(value.raw)
            except ValueError:
                raise _bad(name, "invalid_value", f"expected a number, got {value.raw!r}") from None
        value = number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(name, "invalid_value", f"expected a number, got {_json_type(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(name, "invalid_value", "expected a finite number")
    return value


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, Text):
        lowered = value.raw.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise _bad(name, "invalid_value", f"expected true or false, got {value.raw!r}")
    if not isinstance(value, bool):
        raise _bad(name, "invalid_value", f"expected true or false, got {_json_type(value)}")
    return value


def _instant(name: str, value: Any) -> str:
    """A date-time as canonical UTC text (what the stores compare as an instant)."""
    raw = value.raw if isinstance(value, Text) else value
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)  # no offset: read as UTC, like the stores
            return utc_text(parsed)
    shown = repr(raw) if isinstance(raw, str) else _json_type(raw)
    raise _bad(name, "invalid_value", f"expected an RFC 3339 date-time, got {shown}")


def _any_scalar(name: str, value: Any) -> Any:
    if isinstance(value, Text):
        return _guess(value.raw)
    if value is None or isinstance(value, (dict, list)):
        hint = "; use isnull for null" if value is None else ""
        raise _bad(name, "invalid_value", f"expected a string, number or boolean{hint}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(name, "invalid_value", "expected a finite number")
    return value


def _guess(raw: str) -> Any:
    """An untyped query-string value: true/false and numbers as such, else the string."""
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if math.isfinite(number) else raw


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Text):
        return repr(value.raw)
    return "an array" if isinstance(value, list) else "an object"


def _bad(path: str, code: str, message: str, **extra: Any) -> InvalidFilter:
    return InvalidFilter(
        f"Invalid filter at {path}: {message}.",
        errors=[FieldError(path, code, message)],
        extra=extra,
    )
