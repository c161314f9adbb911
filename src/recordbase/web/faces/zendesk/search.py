"""Zendesk's query dialects -> the core's Query: sorts and the filtered-search language.

The POST search body `{"filter": {...}}` is a tree of `$and` / `$or` arrays and comparison
objects `{"<attribute>": {"$op": value}}`; several members of one object are ANDed. Attributes
are `custom_object_fields.<key>` or the standard `created_at, updated_at, created_by_user,
updated_by_user, name, external_id`. It becomes the core's Condition/And/Or/Not tree; anything
unknown is a 400 that lists the valid choices.
"""

from __future__ import annotations

from typing import Any, Final

from recordbase.core.query import And, Condition, Filter, Not, Or, SortKey, conjoin
from recordbase.errors import InvalidFilter, InvalidSort
from recordbase.web.faces.zendesk.model import ZendeskMeta

STANDARD_ATTRIBUTES: Final = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "created_by_user": "created_by",
    "updated_by_user": "updated_by",
    "name": "name",
    "external_id": "external_id",
}
# Zendesk operator -> (core operator, negated)
OPERATORS: Final = {
    "$eq": ("eq", False),
    "$noteq": ("not", False),
    "$lt": ("lt", False),
    "$lte": ("lte", False),
    "$gt": ("gt", False),
    "$gte": ("gte", False),
    "$contains": ("contains", False),
    "$not_contains": ("contains", True),
    "$starts_with": ("startswith", False),
    "$exists": ("isnull", False),
    "$in": ("in", False),
    "$not_in": ("in", True),
}
LIST_SORTS: Final = ("id", "updated_at")
SEARCH_SORTS: Final = ("name", "created_at", "updated_at")
_MAX_DEPTH = 8


def parse_sort(raw: str | None, allowed: tuple[str, ...], default: str) -> tuple[SortKey, ...]:
    """`sort=-updated_at`; empty (mercury-orm sends `sort=`) means the default."""
    text = (raw or "").strip() or default
    name = text.lstrip("-")
    if name not in allowed:
        valid = [v for a in allowed for v in (a, "-" + a)]
        raise InvalidSort(
            f"Cannot sort by {text!r}; valid: {', '.join(valid)}.", extra={"valid": valid}
        )
    return (SortKey((name,), text.startswith("-")),)


def parse_filter(raw: Any, meta: ZendeskMeta, declared: bool) -> Filter | None:
    """The filter of a POST search (`declared`: the object's fields are known)."""
    return _node(raw, meta, declared, "filter", 0)


def _node(raw: Any, meta: ZendeskMeta, declared: bool, where: str, depth: int) -> Filter | None:
    if depth > _MAX_DEPTH:
        raise InvalidFilter(f"{where}: filters nest at most {_MAX_DEPTH} levels.")
    if not isinstance(raw, dict) or not raw:
        raise InvalidFilter(
            f'{where}: expected an object such as {{"$and": [...]}} or '
            '{"custom_object_fields.<key>": {"$eq": value}}.'
        )
    parts: list[Filter | None] = []
    for member, value in raw.items():
        if member in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{where}.{member}: expected a non-empty array of filters.")
            subs = [
                _node(v, meta, declared, f"{where}.{member}[{i}]", depth + 1)
                for i, v in enumerate(value)
            ]
            items = tuple(s for s in subs if s is not None)
            parts.append(And(items) if member == "$and" else Or(items))
        elif member.startswith("$"):
            raise InvalidFilter(f"{where}: unknown logical operator {member!r}; valid: $and, $or.")
        else:
            parts.append(_comparison(_path(member, meta, declared), value, f"{where}.{member}"))
    return conjoin(*parts)


def _path(attribute: str, meta: ZendeskMeta, declared: bool) -> tuple[str, ...]:
    if attribute in STANDARD_ATTRIBUTES:
        return (STANDARD_ATTRIBUTES[attribute],)
    prefix, dot, key = attribute.partition(".")
    keys = [f["key"] for f in meta.fields]
    if prefix == "custom_object_fields" and dot and (key in keys or (not declared and key)):
        return ("data", key)
    valid = [*STANDARD_ATTRIBUTES, *(f"custom_object_fields.{k}" for k in keys)]
    raise InvalidFilter(
        f"Unknown filter attribute {attribute!r}; valid: {', '.join(valid)}.",
        extra={"valid": valid},
    )


def _comparison(path: tuple[str, ...], raw: Any, where: str) -> Filter:
    if not isinstance(raw, dict) or not raw:
        raise InvalidFilter(f'{where}: expected a comparison object such as {{"$eq": "value"}}.')
    conditions: list[Filter] = []
    for op, value in raw.items():
        if op not in OPERATORS:
            raise InvalidFilter(
                f"{where}: unknown operator {op!r}; valid: {', '.join(OPERATORS)}.",
                extra={"valid": list(OPERATORS)},
            )
        core_op, negated = OPERATORS[op]
        condition = Condition(path, core_op, _value(op, value, where))
        if negated:
            # A record without a value doesn't contain / isn't in anything: it matches, which
            # SQL's NOT on a NULL would lose.
            conditions.append(Or((Not(condition), Condition(path, "isnull", True))))
        else:
            conditions.append(condition)
    return conditions[0] if len(conditions) == 1 else And(tuple(conditions))


def _value(op: str, value: Any, where: str) -> Any:
    if op == "$exists":
        if not isinstance(value, bool):
            raise InvalidFilter(f"{where}.{op}: expected true or false.")
        return not value  # the core asks the opposite question: isnull
    if op in ("$in", "$not_in"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise InvalidFilter(f"{where}.{op}: expected an array of values.")
        return value
    if not _scalar(value) or value is None:
        raise InvalidFilter(f"{where}.{op}: expected a string, number or boolean.")
    return value


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
