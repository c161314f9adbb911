"""The Keywords AI request-log routes: the vendor's dialect over RecordService calls.

Every route answers under `/api/request-logs/...` and the older SDKs' `/request-logs/...`,
with and without a trailing slash and without redirects (docs/research/sdks.md). The built-in
`request_log` type is made on first use (`ensure_type`). A log is acknowledged only once it is
durable: with `keywordsai_api_controls.block` true (the default) after its transaction commits,
with `block: false` as soon as it is stored as a job (core/jobs.py), with its unique_id already
assigned, so the answer comes before the write (docs/faces/keywords.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope

from recordbase.core.clock import utc_text
from recordbase.core.jobs import Job
from recordbase.core.query import Condition, Filter, Query
from recordbase.core.records import Principal, Record, RecordInput
from recordbase.core.service import RecordService
from recordbase.errors import FieldError, ReadOnlyField, RecordbaseError, ValidationFailed
from recordbase.web.dispatch import LeanRoute, lean_endpoint
from recordbase.web.faces.keywords import codec
from recordbase.web.faces.keywords.definition import DEFINITION, TYPE_KEY
from recordbase.web.http import (
    JSONResponse,
    dumps,
    expect_object,
    int_param,
    json_body,
    receive_json,
)

PREFIXES = ("/api/request-logs", "/request-logs")
LIST_PARAMS = (
    "page",
    "page_size",
    "sort_by",
    "start_time",
    "end_time",
    "include_fields",
)


def _service(request: Request) -> RecordService:
    svc: RecordService = request.app.state.service
    return svc


def _principal(request: Request) -> Principal:
    p: Principal = request.state.principal
    return p


async def _ready(request: Request) -> tuple[RecordService, Principal]:
    svc, p = _service(request), _principal(request)
    await svc.ensure_type(p, DEFINITION)
    return svc, p


def _relocate(exc: RecordbaseError, prefix: str) -> RecordbaseError:
    """Error paths in the vendor's terms: /records/3/data/model -> {prefix}/3/model."""
    moved = []
    for e in exc.errors:
        parts = e.path.split("/")
        if len(parts) >= 4 and parts[1] == "records" and parts[3] == "data":
            index = f"/{parts[2]}" if prefix else ""
            e = FieldError(prefix + index + "/" + "/".join(parts[4:]), e.code, e.message)
        moved.append(e)
    exc.errors = moved
    return exc


def _log_data(svc: RecordService, bodies: list[Any], prefix: str) -> list[dict[str, Any]]:
    """Every log's record data, checked in the request (400 at once, also with block false)."""
    now = utc_text(svc.clock())
    out = []
    for i, body in enumerate(bodies):
        where = f"{prefix}/{i}" if prefix else ""
        codec.blocks(body, where)
        data = codec.log_data(body, where)
        # The time the log was received, also when it is queued and written later.
        data.setdefault("timestamp", now)
        out.append(data)
    return out


async def _create(svc: RecordService, p: Principal, bodies: list[Any], prefix: str) -> list[Record]:
    items = [RecordInput(data=data) for data in _log_data(svc, bodies, prefix)]
    try:
        return await svc.create_records(p, TYPE_KEY, items)
    except RecordbaseError as exc:
        raise _relocate(exc, prefix) from None


async def _queue(
    svc: RecordService, p: Principal, bodies: list[Any], prefix: str
) -> tuple[Job, list[dict[str, Any]]]:
    """Store the logs as one `create` job and answer with their pending form (`block: false`).

    Each log's unique_id is assigned here and stored in its job item, so the client can GET
    the log once the job has run; the job is committed before this returns, so an answered log
    survives a crash.
    """
    items: list[dict[str, Any]] = [
        {"id": svc.new_id(), "data": data} for data in _log_data(svc, bodies, prefix)
    ]
    try:
        job = await svc.submit_job(p, TYPE_KEY, "create", items, where="/records", precheck=True)
    except RecordbaseError as exc:
        raise _relocate(exc, prefix) from None
    pending = [codec.pending_log(item["id"], item["data"], p.project_id) for item in items]
    return job, pending


def _job_link(job: Job) -> dict[str, Any]:
    # Where the native API reports the job's progress and each log's outcome (docs/jobs.md).
    return {"job_id": job.id, "job_url": f"/v1/jobs/{job.id}"}


async def create_log(
    scope: Scope, receive: Receive, headers: Headers, _params: dict[str, Any], app: Any
) -> tuple[int, bytes]:
    """One log; a lean handler (web/dispatch.py), its endpoint made by `lean_endpoint`."""
    body = await receive_json(receive, headers, app.settings)
    svc: RecordService = app.service
    p: Principal = scope["state"]["principal"]
    await svc.ensure_type(p, DEFINITION)
    if not codec.blocks(body):
        job, (pending,) = await _queue(svc, p, [body], "")
        return 202, dumps({**pending, **_job_link(job)})
    records = await _create(svc, p, [body], "")
    return 201, dumps(codec.render_log(records[0], p.project_id))


async def bulk_create(request: Request) -> Response:
    body = expect_object(await json_body(request), ("logs", "keywordsai_api_controls"))
    logs = body.get("logs")
    if not isinstance(logs, list):
        raise ValidationFailed(
            'Send {"logs": [...]}.', errors=[FieldError("/logs", "type", "a list of logs")]
        )
    svc, p = await _ready(request)
    if _bulk_queued(body, logs):
        job, pending = await _queue(svc, p, logs, "/logs")
        return JSONResponse({"status": "pending", **_bulk_result(pending), **_job_link(job)}, 202)
    records = await _create(svc, p, logs, "/logs")
    return JSONResponse(_bulk_result([codec.render_log(r, p.project_id) for r in records]))


def _bulk_queued(body: dict[str, Any], logs: list[Any]) -> bool:
    """Queue a batch when the body says `block: false`, or when every one of its logs does.

    A synchronous answer also honours a log's `block: false` (it only allows answering early),
    so a batch that mixes the two is written at once.
    """
    if not codec.blocks(body):
        return True
    return bool(logs) and not any(codec.blocks(log, f"/logs/{i}") for i, log in enumerate(logs))


def _bulk_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    # A batch commits whole or not at all, so there are never item-level errors on success.
    return {"success_count": len(results), "error_count": 0, "errors": [], "results": results}


async def list_logs(request: Request) -> Response:
    params = request.query_params
    body: Any = None
    if request.method == "POST":
        body = await json_body(request, allow_empty=True)
    body = expect_object(body or {}, ("filters",))
    svc, p = await _ready(request)
    page = int_param(params, "page", 1, 1, 10**9)
    page_size = int_param(params, "page_size", 100, 1, svc.settings.max_page_size)
    sort = codec.parse_sort(params.get("sort_by"))
    conditions = _time_window(params, svc)
    for name, value in params.items():
        if name not in LIST_PARAMS:  # e.g. ?log_type=chat or ?customer_identifier=c1
            conditions.append(Condition(codec.field_path(name), "eq", value))
    conditions += codec.parse_filters(body.get("filters"))
    query = Query(
        filter=codec.conjoin_all(conditions),
        sort=sort,
        offset=(page - 1) * page_size,
        limit=page_size,
        count=True,
    )
    result = await svc.list_records(p, TYPE_KEY, query)
    results = [codec.render_log(r, p.project_id) for r in result.records]
    fields = [f for f in params.get("include_fields", "").split(",") if f.strip()]
    if fields:
        results = [{k: v for k, v in r.items() if k in fields} for r in results]
    count = result.count or 0
    url = request.url
    return JSONResponse(
        {
            "count": count,
            "next": str(url.include_query_params(page=page + 1))
            if page * page_size < count
            else None,
            "previous": str(url.include_query_params(page=page - 1)) if page > 1 else None,
            "results": results,
        }
    )


def _time_window(params: Any, svc: RecordService) -> list[Filter]:
    start_raw, end_raw = params.get("start_time"), params.get("end_time")
    start = (
        codec.parse_time(start_raw, "/start_time")
        if start_raw
        else svc.clock() - timedelta(hours=1)
    )
    out: list[Filter] = [Condition(("data", "timestamp"), "gte", utc_text(start))]
    if end_raw:
        end = codec.parse_time(end_raw, "/end_time")
        out.append(Condition(("data", "timestamp"), "lte", utc_text(end)))
    return out


async def get_log(request: Request) -> Response:
    svc, p = await _ready(request)
    record = await svc.get_record(p, TYPE_KEY, request.path_params["unique_id"])
    return JSONResponse(codec.render_log(record, p.project_id))


def _update_patch(body: Any, where: str, unique_id: str | None = None) -> dict[str, Any]:
    """The data merge patch of one log update; immutable fields are a 400."""
    if not isinstance(body, dict):
        raise ValidationFailed("Expected a JSON object.", errors=[FieldError(where, "type", "")])
    patch: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("unique_id", "id") and (unique_id is None or value == unique_id):
            continue
        if key not in codec.UPDATABLE:
            raise ReadOnlyField(
                f"{key!r} cannot be changed on a stored log; updatable: "
                f"{', '.join(codec.UPDATABLE)}.",
                errors=[FieldError(f"{where}/{key}", "immutable", "not updatable")],
                extra={"valid": list(codec.UPDATABLE)},
            )
        if key == "metadata" and value is not None and not isinstance(value, dict):
            raise ValidationFailed(
                "metadata must be an object.",
                errors=[FieldError(f"{where}/metadata", "type", "an object")],
            )
        patch[key] = value
    return patch


async def update_log(request: Request) -> Response:
    unique_id = request.path_params["unique_id"]
    patch = _update_patch(await json_body(request), "", unique_id)
    svc, p = await _ready(request)
    try:
        record = await svc.update_record(p, TYPE_KEY, unique_id, RecordInput(data=patch))
    except RecordbaseError as exc:
        raise _relocate(exc, "") from None
    return JSONResponse(codec.render_log(record, p.project_id))


async def batch_update(request: Request) -> Response:
    body = expect_object(await json_body(request), ("logs",))
    logs = body.get("logs")
    if not isinstance(logs, list):
        raise ValidationFailed(
            'Send {"logs": [{"unique_id": ..., ...}]}.',
            errors=[FieldError("/logs", "type", "a list")],
        )
    changes: list[tuple[str, RecordInput]] = []
    for i, log in enumerate(logs):
        unique_id = log.get("unique_id") if isinstance(log, dict) else None
        if not isinstance(unique_id, str) or not unique_id:
            raise ValidationFailed(
                "Every log needs its unique_id.",
                errors=[FieldError(f"/logs/{i}/unique_id", "required", "a string")],
            )
        changes.append((unique_id, RecordInput(data=_update_patch(log, f"/logs/{i}"))))
    svc, p = await _ready(request)
    try:
        records = await svc.update_records(p, TYPE_KEY, changes)
    except RecordbaseError as exc:
        raise _relocate(exc, "/logs") from None
    return JSONResponse(_bulk_result([codec.render_log(r, p.project_id) for r in records]))


Endpoint = Callable[[Request], Awaitable[Response]]


def routes() -> list[Route]:
    create = lean_endpoint(create_log)
    table: list[tuple[str, Endpoint, list[str]]] = [
        ("", create, ["POST"]),
        ("/create", create, ["POST"]),
        ("/list", list_logs, ["GET", "POST"]),
        ("/bulk", bulk_create, ["POST"]),
        ("/batch-update", batch_update, ["PATCH"]),
        ("/{unique_id}", get_log, ["GET"]),
        ("/{unique_id}", update_log, ["PATCH"]),
    ]
    out: list[Route] = []
    for prefix in PREFIXES:
        for path, endpoint, methods in table:
            for slash in ("", "/"):
                if endpoint is create:
                    route: Route = LeanRoute(
                        prefix + path + slash, endpoint, lean=create_log, methods=methods
                    )
                else:
                    route = Route(prefix + path + slash, endpoint, methods=methods)
                out.append(route)
    return out
