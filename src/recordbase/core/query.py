"""The one query language: a filter tree, sort keys and paging, shared by every face.

A face parses its own dialect into these values; the service checks them against the record
type (`check_query`) and a store compiles them to SQL. Pure data: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Union

OPERATORS: Final[dict[str, str]] = {
    "eq": "equals (also written as the empty operator)",
    "iexact": "equals, ignoring case",
    "not": "not equal",
    "lt": "less than",
    "lte": "less than or equal",
    "gt": "greater than",
    "gte": "greater than or equal",
    "contains": "substring of a string; member of an array",
    "icontains": "substring, ignoring case",
    "startswith": "string prefix",
    "endswith": "string suffix",
    "in": "equals one of a list",
    "isnull": "true: missing or null; false: present and not null",
}
OPERATOR_ALIASES: Final = {"": "eq"}


@dataclass(frozen=True)
class Condition:
    path: tuple[str, ...]
    op: str
    value: Any
    # The field's kind (core/filters.py KINDS), set by `check_query`; stores compare by it.
    kind: str = "any"


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


Filter = Union[Condition, And, Or, Not]  # noqa: UP007 - a runtime alias used by isinstance users


@dataclass(frozen=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool = False
    kind: str = "any"  # set by `check_query`, like Condition.kind

    def __str__(self) -> str:
        return ("-" if self.descending else "") + ".".join(self.path)


DEFAULT_SORT: Final = (SortKey(("created_at",)),)


@dataclass(frozen=True)
class Query:
    filter: Filter | None = None
    sort: tuple[SortKey, ...] = DEFAULT_SORT
    limit: int = 100
    # Keyset position: the sort values and id of the last record of the previous page.
    after: tuple[Any, ...] | None = None
    # Page-number paging (for faces that need it): 0-based offset; exclusive with `after`.
    offset: int | None = None
    count: bool = False
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    records: list[Any]
    next_after: tuple[Any, ...] | None
    count: int | None = None


def stable_sort(sort: tuple[SortKey, ...]) -> tuple[SortKey, ...]:
    """The sort made total: it ends with `id` (in the direction of the last key)."""
    for i, key in enumerate(sort):
        if key.path == ("id",):
            return sort[: i + 1]
    last_desc = bool(sort) and sort[-1].descending
    return (*sort, SortKey(("id",), last_desc, "string"))


def conjoin(*filters: Filter | None) -> Filter | None:
    items = tuple(f for f in filters if f is not None)
    if not items:
        return None
    return items[0] if len(items) == 1 else And(items)
