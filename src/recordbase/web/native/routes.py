"""The native /v1 API: routes that translate HTTP into RecordService calls and back.

No SQL, no store: each handler parses its request (unknown members and parameters are 400s),
makes one service call and renders the result. Errors are rendered as RFC 9457 problem+json
by `render_problem`.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from recordbase.core.jobs import Job
from recordbase.core.query import DEFAULT_SORT, Query
from recordbase.core.records import Principal, RecordInput, parse_record_input, records_json
from recordbase.core.service import RecordService
from recordbase.core.types import type_as_dict
from recordbase.errors import FieldError, RecordbaseError, ValidationFailed
from recordbase.web.dispatch import LeanRoute
from recordbase.web.http import (
    JSONBytesResponse,
    JSONResponse,
    bool_param,
    check_params,
    dumps,
    expect_object,
    int_param,
    json_body,
    receive_json,
)
from recordbase.web.native import params as query_params


def service(request: Request) -> RecordService:
    svc: RecordService = request.app.state.service
    return svc


def principal(request: Request) -> Principal:
    p: Principal = request.scope["state"]["principal"]  # request.state.principal, unwrapped
    return p


def render_problem(error: RecordbaseError, request: Request) -> Response:
    body: dict[str, Any] = {
        "type": f"/docs/errors#{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    if error.errors:
        body["errors"] = [e.as_dict() for e in error.errors]
    body.update({k: v for k, v in error.extra.items() if k not in body})
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=error.status, media_type="application/problem+json")


# types ------------------------------------------------------------------------------------


async def list_types(request: Request) -> Response:
    check_params(request.query_params, ())
    types = await service(request).list_types(principal(request))
    return JSONResponse({"types": [type_as_dict(t) for t in types]})


async def create_type(request: Request) -> Response:
    check_params(request.query_params, ())
    body = await json_body(request)
    rtype = await service(request).create_type(principal(request), body)
    return JSONResponse(type_as_dict(rtype, rtype.naming.next if rtype.naming else None), 201)


async def get_type(request: Request) -> Response:
    check_params(request.query_params, ())
    rtype, next_number = await service(request).get_type(
        principal(request), request.path_params["type"]
    )
    return JSONResponse(type_as_dict(rtype, next_number))


async def update_type(request: Request) -> Response:
    check_params(request.query_params, ())
    body = await json_body(request)
    if isinstance(body, dict) and "key" in body and body["key"] != request.path_params["type"]:
        raise ValidationFailed(
            "A type's key cannot change.",
            errors=[FieldError("/key", "immutable", "create a new type instead")],
        )
    rtype, next_number = await service(request).update_type(
        principal(request), request.path_params["type"], body
    )
    return JSONResponse(type_as_dict(rtype, next_number))


async def delete_type(request: Request) -> Response:
    check_params(request.query_params, ())
    await service(request).delete_type(principal(request), request.path_params["type"])
    return Response(status_code=204)


# records ----------------------------------------------------------------------------------


def _raw_items(body: Any) -> list[Any]:
    body = expect_object(body, ("records", "record"))
    if ("records" in body) == ("record" in body):
        raise ValidationFailed(
            'Send either {"records": [...]} or {"record": {...}}.',
            errors=[FieldError("/records", "required", "records or record")],
        )
    # A single record is a batch of one: error paths read /records/0/... either way.
    if "record" in body:
        items = [body["record"]]
    else:
        items = body["records"]
        if not isinstance(items, list):
            raise ValidationFailed(
                "records must be a list.", errors=[FieldError("/records", "type", "a list")]
            )
    return list(items)


def _record_items(body: Any) -> list[RecordInput]:
    if type(body) is dict and len(body) == 1:  # {"record": {"data": {...}}}: nothing to check
        item = body.get("record")
        if type(item) is dict and len(item) == 1:
            data = item.get("data")
            if type(data) is dict:
                return [RecordInput(data=data)]
    items = _raw_items(body)
    errors: list[FieldError] = []
    parsed = [parse_record_input(item, f"/records/{i}", errors) for i, item in enumerate(items)]
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in the records.", errors=errors)
    return parsed


def _one_item(body: Any) -> RecordInput:
    errors: list[FieldError] = []
    item = parse_record_input(body, "", errors)
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in the record.", errors=errors)
    return item


def _if_match(request: Request) -> int | None:
    raw = request.headers.get("if-match")
    if raw is None:
        return None
    cleaned = raw.strip().removeprefix("W/").strip('"')
    if not cleaned.isdigit():
        raise ValidationFailed(
            'If-Match must be the record\'s version, e.g. If-Match: "3".',
            errors=[FieldError("/headers/If-Match", "invalid", "a version number")],
        )
    return int(cleaned)


def _record_response(record: Any, status: int = 200) -> Response:
    return JSONResponse(
        record.as_dict(), status_code=status, headers={"ETag": f'"{record.version}"'}
    )


def wants_async(request: Request) -> bool:
    """Whether the client sent `Prefer: respond-async` (RFC 7240)."""
    prefer = request.headers.get("prefer", "")
    if not prefer:
        return False
    tokens = (part.split(";", 1)[0].split("=", 1)[0].strip().lower() for part in prefer.split(","))
    return "respond-async" in tokens


def job_url(job: Job) -> str:
    return f"/v1/jobs/{job.id}"


def job_as_dict(job: Job) -> dict[str, Any]:
    return {**job.as_dict(), "url": job_url(job)}


async def _submit(
    request: Request, action: str, items: list[Any], options: dict[str, Any], where: str
) -> Response:
    job = await service(request).submit_job(
        principal(request),
        request.path_params["type"],
        action,
        items,
        options,
        where=where,
        precheck=True,
    )
    return JSONResponse(
        job_as_dict(job),
        status_code=202,
        headers={"Location": job_url(job), "Preference-Applied": "respond-async"},
    )


async def get_job(request: Request) -> Response:
    check_params(request.query_params, ())
    job = await service(request).get_job(principal(request), request.path_params["id"])
    return JSONResponse(job_as_dict(job))


async def create_records(request: Request) -> Response:
    check_params(request.query_params, ())
    body = await json_body(request)
    if wants_async(request):
        return await _submit(request, "create", _raw_items(body), {}, "/records")
    answer = await _created(service(request), principal(request), request.path_params["type"], body)
    return JSONBytesResponse(answer, status_code=201)


async def create_records_lean(
    scope: Scope, receive: Receive, headers: Headers, path_params: dict[str, Any], app: Any
) -> tuple[int, bytes] | None:
    """create_records in the Pipeline's lean lane (web/dispatch.py): the same checks, errors
    and answer, without a Request or a Response."""
    if scope["query_string"] or "prefer" in headers:
        return None  # parameters are refused there, and Prefer may ask for a job
    body = await receive_json(receive, headers, app.settings)
    principal: Principal = scope["state"]["principal"]
    # _created's two lines, without a coroutine of their own
    records = await app.service.create_records(principal, path_params["type"], _record_items(body))
    return 201, b'{"records":' + records_json(records) + b"}"


async def _created(svc: RecordService, p: Principal, type_key: str, body: Any) -> bytes:
    records = await svc.create_records(p, type_key, _record_items(body))
    return b'{"records":' + records_json(records) + b"}"


async def upsert_records(request: Request) -> Response:
    check_params(request.query_params, ("on",))
    on = request.query_params.get("on", "external_id")
    body = await json_body(request)
    if wants_async(request):
        return await _submit(request, "upsert", _raw_items(body), {"on": on}, "/records")
    items = _record_items(body)
    result = await service(request).upsert_records(
        principal(request), request.path_params["type"], on, items
    )
    return JSONResponse(
        {
            "records": [r.as_dict() for r in result.records],
            "created": result.created,
            "updated": result.updated,
        }
    )


async def list_records(request: Request) -> Response:
    query, cursor = query_params.parse_list_params(request)
    return await _records_page(request, query, cursor)


async def query_records(request: Request) -> Response:
    check_params(request.query_params, ())
    body = await json_body(request)
    query, cursor = query_params.parse_query_body(body, request.app.state.settings)
    return await _records_page(request, query, cursor)


async def count_records(request: Request) -> Response:
    query = query_params.parse_count_params(request)
    count = await service(request).count_records(
        principal(request), request.path_params["type"], query.filter, query.text
    )
    return JSONResponse({"count": count})


async def _records_page(request: Request, query: Query, cursor: str | None) -> Response:
    result = await service(request).list_records_json(
        principal(request), request.path_params["type"], query, cursor
    )
    # The body `{"records": [...], "next_cursor": ..., "count": ...}` as JSONResponse writes
    # it, around the page's records as the service made them (no Record or dict per row).
    body = b'{"records":' + result.records + b',"next_cursor":' + dumps(result.next_cursor)
    if result.count is not None:
        body += b',"count":%d' % result.count
    return JSONBytesResponse(body + b"}")


async def get_record(request: Request) -> Response:
    check_params(request.query_params, ())
    record = await service(request).get_record(
        principal(request), request.path_params["type"], request.path_params["id"]
    )
    return _record_response(record)


async def patch_record(request: Request) -> Response:
    return await _update(request, merge=True)


async def put_record(request: Request) -> Response:
    return await _update(request, merge=False)


async def _update(request: Request, *, merge: bool) -> Response:
    check_params(request.query_params, ())
    body = await json_body(request)
    item = _one_item(body)
    if wants_async(request):
        options = {"merge": merge, "if_match": _if_match(request)}
        return await _submit(
            request, "update", [{**body, "id": request.path_params["id"]}], options, ""
        )
    record = await service(request).update_record(
        principal(request),
        request.path_params["type"],
        request.path_params["id"],
        item,
        if_match=_if_match(request),
        merge=merge,
    )
    return _record_response(record)


async def delete_record(request: Request) -> Response:
    check_params(request.query_params, ())
    if wants_async(request):
        options = {"if_match": _if_match(request)}
        return await _submit(request, "delete", [{"id": request.path_params["id"]}], options, "")
    await service(request).delete_record(
        principal(request),
        request.path_params["type"],
        request.path_params["id"],
        if_match=_if_match(request),
    )
    return Response(status_code=204)


def routes() -> list[Route]:
    t = "/v1/types"
    r = t + "/{type}/records"
    return [
        Route(t, list_types, methods=["GET"]),
        Route(t, create_type, methods=["POST"]),
        Route(t + "/{type}", get_type, methods=["GET"]),
        Route(t + "/{type}", update_type, methods=["PATCH"]),
        Route(t + "/{type}", delete_type, methods=["DELETE"]),
        LeanRoute(r, create_records, lean=create_records_lean, methods=["POST"]),
        Route(r, upsert_records, methods=["PUT"]),
        Route(r, list_records, methods=["GET"]),
        Route(r + "/query", query_records, methods=["POST"]),
        Route(r + "/count", count_records, methods=["GET"]),
        Route(r + "/{id}", get_record, methods=["GET"]),
        Route(r + "/{id}", patch_record, methods=["PATCH"]),
        Route(r + "/{id}", put_record, methods=["PUT"]),
        Route(r + "/{id}", delete_record, methods=["DELETE"]),
        Route("/v1/jobs/{id}", get_job, methods=["GET"]),
    ]


__all__ = ["DEFAULT_SORT", "Query", "bool_param", "int_param", "render_problem", "routes"]
