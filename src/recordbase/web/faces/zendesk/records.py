"""Zendesk custom object records: /api/v2/custom_objects/{key}/records[...].

Create, show, update (a merge of `custom_object_fields`), delete, list, upsert and delete by
external id or name, count, text search, filtered search and name autocomplete; each handler
translates its request (codec.py, search.py, paging.py) and makes its service calls.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.core.query import Condition, Filter, Query, conjoin
from recordbase.core.records import Record, RecordInput
from recordbase.core.types import RecordType
from recordbase.errors import BadRequest, FieldError, InvalidFilter
from recordbase.web.faces.zendesk.codec import parse_record, render_record
from recordbase.web.faces.zendesk.common import check_params, now_text, svc, who, wrapped
from recordbase.web.faces.zendesk.model import ZendeskMeta, invalid
from recordbase.web.faces.zendesk.paging import PAGE_PARAMS, PageResult, fetch_page, page_request
from recordbase.web.faces.zendesk.search import LIST_SORTS, SEARCH_SORTS, parse_filter, parse_sort
from recordbase.web.http import JSONResponse, json_body

BASE: Final = "/api/v2/custom_objects/{key}/records"
# Documented autocomplete parameters that narrow lookups in Zendesk's UI; no effect here.
AUTOCOMPLETE_IGNORED: Final = (
    "field_id",
    "source",
    "requester_id",
    "assignee_id",
    "organization_id",
)


async def _type(request: Request) -> RecordType:
    return await svc(request).type_for(who(request), request.path_params["key"])


def _one(request: Request, rtype: RecordType, record: Any, status: int = 200) -> Response:
    return JSONResponse(
        {"custom_object_record": render_record(request, rtype, record)}, status_code=status
    )


def _parse(body: dict[str, Any], rtype: RecordType, *, creating: bool) -> RecordInput:
    errors: list[FieldError] = []
    item = parse_record(body, rtype, "", errors, creating=creating)
    invalid(errors)
    return item


async def create_record(request: Request) -> Response:
    check_params(request, ())
    body = await wrapped(request, "custom_object_record")
    rtype = await _type(request)
    item = _parse(body, rtype, creating=True)
    records = await svc(request).create_records(who(request), rtype.key, [item])
    return _one(request, rtype, records[0], 201)


async def show_record(request: Request) -> Response:
    check_params(request, ())
    rtype = await _type(request)
    record = await svc(request).get_record(who(request), rtype.key, request.path_params["id"])
    return _one(request, rtype, record)


async def update_record(request: Request) -> Response:
    check_params(request, ())
    body = await wrapped(request, "custom_object_record", allow_empty=True)
    rtype = await _type(request)
    rid = request.path_params["id"]
    item = _parse(body, rtype, creating=False)
    if not any(m in body for m in ("name", "external_id", "custom_object_fields")):
        # Nothing to change (python-zendesk sends no body at all): the record as it is.
        return _one(request, rtype, await svc(request).get_record(who(request), rtype.key, rid))
    record = await svc(request).update_record(who(request), rtype.key, rid, item, merge=True)
    return _one(request, rtype, record)


async def delete_record(request: Request) -> Response:
    check_params(request, ())
    rtype = await _type(request)
    await svc(request).delete_record(who(request), rtype.key, request.path_params["id"])
    return Response(status_code=204)


def _by(request: Request, rtype: RecordType) -> tuple[str, str]:
    """("external_id" | "name", value) from the query; an empty value counts as absent."""
    check_params(request, ("external_id", "name"))
    external_id = request.query_params.get("external_id") or None
    name = request.query_params.get("name") or None
    if external_id and name:
        raise BadRequest("external_id and name can't be used together; send one of them.")
    if not external_id and not name:
        raise BadRequest("Send external_id or name to identify the record.")
    if name and (rtype.naming is None or rtype.naming.mode != "unique"):
        raise BadRequest("Records are found by name only when the name field is_unique.")
    return ("external_id", external_id) if external_id else ("name", str(name))


async def upsert_one(
    request: Request, rtype: RecordType, column: str, value: str, body: Any
) -> tuple[Record, bool]:
    """Create or update the record whose `column` is `value`; (record, created)."""
    item = _parse(body if isinstance(body, dict) else {}, rtype, creating=False)
    setattr(item, column, value)
    p = who(request)
    # Zendesk requires a name when the upsert creates (and the name is not numbered).
    if (
        rtype.naming is None
        and not isinstance(item.name, str)
        and not await svc(request).get_records(p, rtype.key, column, [value])
    ):
        invalid([FieldError("/name", "required", "Name can't be blank")])
    result = await svc(request).upsert_records(p, rtype.key, column, [item], merge=True)
    return result.records[0], bool(result.created)


async def upsert_record(request: Request) -> Response:
    rtype = await _type(request)
    column, value = _by(request, rtype)
    body = await wrapped(request, "custom_object_record", allow_empty=True)
    record, _created = await upsert_one(request, rtype, column, value, body)
    return _one(request, rtype, record)


async def delete_by(request: Request) -> Response:
    rtype = await _type(request)
    column, value = _by(request, rtype)
    await svc(request).delete_by(who(request), rtype.key, column, value)
    return Response(status_code=204)


def _list_body(request: Request, rtype: RecordType, page: PageResult, count: bool) -> Response:
    body: dict[str, Any] = {
        "custom_object_records": [render_record(request, rtype, r) for r in page.records],
        "meta": page.meta,
        "links": page.links,
    }
    if count:
        body["count"] = page.count
    return JSONResponse(body)


def _csv(request: Request, name: str) -> list[str] | None:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return None
    return [v.strip() for v in raw.split(",") if v.strip()]


async def list_records(request: Request) -> Response:
    check_params(request, ("filter[ids]", "filter[external_ids]", "sort", *PAGE_PARAMS))
    rtype = await _type(request)
    ids, external_ids = _csv(request, "filter[ids]"), _csv(request, "filter[external_ids]")
    filter = conjoin(
        Condition(("id",), "in", ids) if ids else None,
        Condition(("external_id",), "in", external_ids) if external_ids else None,
    )
    sort = parse_sort(request.query_params.get("sort"), LIST_SORTS, "id")
    page = await fetch_page(
        request, rtype.key, Query(filter=filter, sort=sort), page_request(request)
    )
    return _list_body(request, rtype, page, count=False)


async def _search(request: Request, rtype: RecordType, filter: Filter | None) -> Response:
    text = (request.query_params.get("query") or "").strip() or None
    query = Query(filter=filter, text=text, count=True)
    raw_sort = (request.query_params.get("sort") or "").strip()
    if raw_sort:  # without one Zendesk orders by relevance; we keep creation order
        query = replace(query, sort=parse_sort(raw_sort, SEARCH_SORTS, "created_at"))
    page = await fetch_page(request, rtype.key, query, page_request(request))
    return _list_body(request, rtype, page, count=True)


async def search_records(request: Request) -> Response:
    check_params(request, ("query", "sort", *PAGE_PARAMS))
    return await _search(request, await _type(request), None)


async def filtered_search(request: Request) -> Response:
    check_params(request, ("query", "sort", *PAGE_PARAMS))
    rtype = await _type(request)
    body = await json_body(request, allow_empty=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"filter"}:
        raise InvalidFilter('Expected a body {"filter": {...}}.', extra={"valid": ["filter"]})
    filter = None
    if body.get("filter") is not None:
        filter = parse_filter(body["filter"], ZendeskMeta(rtype.extra), "zendesk" in rtype.extra)
    return await _search(request, rtype, filter)


async def autocomplete(request: Request) -> Response:
    allowed = ("name", *PAGE_PARAMS, *AUTOCOMPLETE_IGNORED)
    dynamic = [k for k in request.query_params if k.startswith("filter[dynamic_values]")]
    check_params(request, (*allowed, *dynamic))
    rtype = await _type(request)
    name = (request.query_params.get("name") or "").strip()
    filter = Condition(("name",), "icontains", name) if name else None
    sort = parse_sort("name", SEARCH_SORTS, "name")
    query = Query(filter=filter, sort=sort, count=True)
    page = await fetch_page(request, rtype.key, query, page_request(request))
    return _list_body(request, rtype, page, count=True)


async def count_records(request: Request) -> Response:
    check_params(request, ())
    rtype = await _type(request)
    total = await svc(request).count_records(who(request), rtype.key)
    return JSONResponse({"count": {"value": total, "refreshed_at": now_text(request)}})


def routes() -> list[Route]:
    return [
        Route(BASE, list_records, methods=["GET"]),
        Route(BASE, create_record, methods=["POST"]),
        Route(BASE, upsert_record, methods=["PATCH"]),
        Route(BASE, delete_by, methods=["DELETE"]),
        Route(BASE + "/count", count_records, methods=["GET"]),
        Route(BASE + "/search", search_records, methods=["GET"]),
        Route(BASE + "/search", filtered_search, methods=["POST"]),
        Route(BASE + "/autocomplete", autocomplete, methods=["GET"]),
        Route(BASE + "/{id}", show_record, methods=["GET"]),
        Route(BASE + "/{id}", update_record, methods=["PATCH"]),
        Route(BASE + "/{id}", delete_record, methods=["DELETE"]),
    ]
