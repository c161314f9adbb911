"""Query-string parsing for native list routes: limit, cursor, count and sort.

Filters in the query string (`?data.age__gte=18`) are parsed by the query engine (issue 3);
until then any parameter other than those listed here is a 400 naming the valid ones.
"""

from __future__ import annotations

from starlette.requests import Request

from recordbase.core.query import DEFAULT_SORT, Query, SortKey
from recordbase.core.types import SYSTEM_FIELDS, parse_path
from recordbase.errors import InvalidSort
from recordbase.web.http import bool_param, check_params, int_param

LIST_PARAMS = ("limit", "cursor", "count", "sort")


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    if not raw:
        return DEFAULT_SORT
    keys: list[SortKey] = []
    for part in raw.split(","):
        part = part.strip()
        descending = part.startswith("-")
        name = part.lstrip("-+")
        try:
            path = parse_path(name)
        except ValueError:
            raise InvalidSort(
                f"Cannot sort by {name!r}; valid: {', '.join(SYSTEM_FIELDS)} or data.<path>, "
                "with - for descending.",
                extra={"valid": list(SYSTEM_FIELDS)},
            ) from None
        keys.append(SortKey(path, descending))
    if len(keys) > 8:
        raise InvalidSort("At most 8 sort keys.")
    return tuple(keys)


def parse_list_params(request: Request) -> tuple[Query, str | None]:
    params = request.query_params
    check_params(params, LIST_PARAMS)
    settings = request.app.state.settings
    limit = int_param(params, "limit", settings.default_page_size, 1, settings.max_page_size)
    query = Query(
        sort=parse_sort(params.get("sort")), limit=limit, count=bool_param(params, "count")
    )
    return query, params.get("cursor") or None
