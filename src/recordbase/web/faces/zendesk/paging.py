"""Zendesk cursor pagination over the core's keyset cursors: page[size|after|before].

`after_cursor` is the core cursor after the page's last record (prefixed `a.`); `before_cursor`
is a core cursor for the reversed sort, positioned at the page's first record (prefixed `b.`),
so a page[before] request reads the reversed order and flips the result. When there is nothing
further, the cursor and link are null: python-zendesk's pager stops only on a null
`after_cursor`, mercury-orm's only on a null `links.next`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from starlette.requests import Request

from recordbase.core.query import Query, SortKey, stable_sort
from recordbase.core.records import Record
from recordbase.errors import BadRequest, InvalidCursor, PageTooLarge
from recordbase.web.faces.zendesk.common import svc, who

PAGE_PARAMS: Final = ("page[size]", "page[after]", "page[before]")
MAX_PAGE: Final = 100


@dataclass(frozen=True)
class PageRequest:
    size: int
    after: str | None
    before: str | None


@dataclass(frozen=True)
class PageResult:
    records: list[Record]
    meta: dict[str, Any]
    links: dict[str, Any]
    count: int | None


def page_request(request: Request) -> PageRequest:
    params = request.query_params
    raw = params.get("page[size]") or ""
    size = MAX_PAGE
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise BadRequest("page[size] must be a positive integer.")
        size = int(raw)
        if size > MAX_PAGE:
            raise PageTooLarge(f"page[size] must be at most {MAX_PAGE}.", extra={"max": MAX_PAGE})
    after = params.get("page[after]") or None
    before = params.get("page[before]") or None
    if after and before:
        raise BadRequest("page[before] and page[after] can't be used together.")
    return PageRequest(size, after, before)


def _core(cursor: str, direction: str) -> str:
    prefix = direction + "."
    if not cursor.startswith(prefix):
        raise InvalidCursor(
            "The cursor does not belong to this parameter: pass meta.after_cursor as "
            "page[after] and meta.before_cursor as page[before]."
        )
    return cursor[len(prefix) :]


def _reversed(query: Query) -> Query:
    return replace(
        query, sort=tuple(SortKey(k.path, not k.descending) for k in stable_sort(query.sort))
    )


async def fetch_page(
    request: Request, type_key: str, query: Query, page: PageRequest
) -> PageResult:
    service, p = svc(request), who(request)
    forward = replace(query, limit=page.size)
    backward = _reversed(forward)
    if page.before:
        result = await service.list_records(p, type_key, backward, _core(page.before, "b"))
        records = list(reversed(result.records))
        more_before, more_after = result.next_cursor is not None, True
    else:
        cursor = _core(page.after, "a") if page.after else None
        result = await service.list_records(p, type_key, forward, cursor)
        records = result.records
        more_before, more_after = page.after is not None, result.next_cursor is not None
    after = before = None
    if records and more_after:
        after = "a." + await service.cursor_at(p, type_key, forward, records[-1])
    if records and more_before:
        before = "b." + await service.cursor_at(p, type_key, backward, records[0])
    has_more = more_before if page.before else more_after
    meta = {"has_more": has_more, "after_cursor": after, "before_cursor": before}
    links = {
        "prev": _link(request, "page[before]", before, page.size),
        "next": _link(request, "page[after]", after, page.size),
    }
    return PageResult(records, meta, links, result.count)


def _link(request: Request, param: str, cursor: str | None, size: int) -> str | None:
    if cursor is None:
        return None
    url = request.url.remove_query_params(list(PAGE_PARAMS))
    return str(url.include_query_params(**{param: cursor, "page[size]": size}))
