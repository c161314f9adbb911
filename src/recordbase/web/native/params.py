"""Native list requests -> core `Query`: the query string of GET .../records (and /count) and
the JSON body of POST .../records/query.

Filters are parsed by the core (core/filters.py) so every face shares one language; this module
only adds the native paging members: limit + cursor (keyset), page + page_size (page numbers),
count, sort and q (text search).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from recordbase.config import Settings
from recordbase.core.filters import parse_json_filter, parse_params, parse_sort
from recordbase.core.query import Query
from recordbase.errors import FieldError, ValidationFailed
from recordbase.web.http import bool_param, expect_object, int_param

LIST_PARAMS = ("limit", "cursor", "count", "sort", "q", "page", "page_size")
COUNT_PARAMS = ("q",)
BODY_MEMBERS = ("filter", "sort", "limit", "cursor", "count", "q", "page", "page_size")
MAX_PAGE = 1_000_000

__all__ = ["parse_count_params", "parse_list_params", "parse_query_body", "parse_sort"]


def _paging(params: Mapping[str, Any], settings: Settings) -> tuple[int, int | None]:
    """(limit, offset): keyset paging by `limit`, or page numbers by `page`/`page_size`."""
    top = settings.max_page_size
    if params.get("page") is None and params.get("page_size") is None:
        return int_param(params, "limit", settings.default_page_size, 1, top), None
    if params.get("limit") is not None:
        raise ValidationFailed(
            "Use limit (with cursors) or page/page_size, not both.",
            errors=[FieldError("/limit", "conflict", "drop limit or page/page_size")],
        )
    size = int_param(params, "page_size", settings.default_page_size, 1, top)
    page = int_param(params, "page", 1, 1, MAX_PAGE)
    return size, (page - 1) * size


def parse_list_params(request: Request) -> tuple[Query, str | None]:
    params = request.query_params
    settings: Settings = request.app.state.settings
    limit, offset = _paging(params, settings)
    query = Query(
        filter=parse_params(params.multi_items(), LIST_PARAMS),
        sort=parse_sort(params.get("sort")),
        limit=limit,
        offset=offset,
        count=bool_param(params, "count"),
        text=params.get("q") or None,
    )
    return query, params.get("cursor") or None


def parse_count_params(request: Request) -> Query:
    params = request.query_params
    return Query(filter=parse_params(params.multi_items(), COUNT_PARAMS), text=params.get("q"))


def parse_query_body(body: Any, settings: Settings) -> tuple[Query, str | None]:
    """`{"filter", "sort", "limit", "cursor", "count", "q", "page", "page_size"}`."""
    body = expect_object(body, BODY_MEMBERS)
    for name in ("limit", "page", "page_size"):
        if name in body and (not isinstance(body[name], int) or isinstance(body[name], bool)):
            raise ValidationFailed(
                f"{name} must be an integer.", errors=[FieldError(f"/{name}", "type", "integer")]
            )
    paging = {k: str(body[k]) for k in ("limit", "page", "page_size") if k in body}
    limit, offset = _paging(paging, settings)
    for name, kinds in (("cursor", (str,)), ("q", (str,)), ("count", (bool,))):
        if body.get(name) is not None and not isinstance(body[name], kinds):
            kind = "a boolean" if name == "count" else "a string"
            raise ValidationFailed(
                f"{name} must be {kind}.", errors=[FieldError(f"/{name}", "type", kind)]
            )
    sort = body.get("sort")
    if sort is not None and not isinstance(sort, (str, list)):
        raise ValidationFailed(
            'sort is a list of keys such as ["-created_at", "data.age"].',
            errors=[FieldError("/sort", "type", "a list of strings or a comma-separated string")],
        )
    query = Query(
        filter=parse_json_filter(body.get("filter")),
        sort=parse_sort(sort),
        limit=limit,
        offset=offset,
        count=bool(body.get("count", False)),
        text=body.get("q") or None,
    )
    return query, body.get("cursor") or None
