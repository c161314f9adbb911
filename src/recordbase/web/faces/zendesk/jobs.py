"""Zendesk bulk record jobs: POST .../{key}/jobs and GET /api/v2/job_statuses/{id}.

A job holds at most 100 items and one of six actions. Like Zendesk's, it is not atomic: each
item is its own service call with its own result (`success`, and `error`/`details` when it
failed). Until durable jobs exist, jobs run synchronously inside the request; the POST answers
201 with the finished job's status (results null, as Zendesk's queued answer has them) and the
per-item results are read back from GET job_statuses, which the service keeps.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.core.records import RecordInput
from recordbase.core.types import RecordType
from recordbase.errors import FieldError, RecordbaseError
from recordbase.web.faces.zendesk.codec import parse_record
from recordbase.web.faces.zendesk.common import api_url, check_params, now_text, svc, who, wrapped
from recordbase.web.faces.zendesk.errors import error_body
from recordbase.web.faces.zendesk.model import invalid
from recordbase.web.faces.zendesk.records import upsert_one
from recordbase.web.http import JSONResponse

ACTIONS: Final = (
    "create",
    "update",
    "delete",
    "delete_by_external_id",
    "create_or_update_by_external_id",
    "create_or_update_by_name",
)
MAX_ITEMS: Final = 100
_DONE = {"create": "Created", "update": "Updated", "delete": "Deleted"}


def _check_job(job: dict[str, Any]) -> tuple[str, list[Any]]:
    errors = [
        FieldError(f"/job/{k}", "unknown_member", "valid: action, items")
        for k in job
        if k not in ("action", "items")
    ]
    action, items = job.get("action"), job.get("items")
    if action not in ACTIONS:
        errors.append(FieldError("/job/action", "invalid", f"one of {', '.join(ACTIONS)}"))
    if not isinstance(items, list) or not items:
        errors.append(FieldError("/job/items", "required", "a non-empty array"))
    elif len(items) > MAX_ITEMS:
        errors.append(FieldError("/job/items", "too_many", f"at most {MAX_ITEMS} items"))
    invalid(errors)
    assert isinstance(action, str) and isinstance(items, list)
    return action, items


def _reference(item: Any, member: str) -> str:
    """A delete item: Zendesk sends plain strings; `{"id": ...}` objects are taken too."""
    value = item.get(member) if isinstance(item, dict) else item
    if not isinstance(value, str) or not value:
        invalid([FieldError(f"/{member}", "required", f"a {member} string")])
    assert isinstance(value, str)
    return value


def _record_item(item: Any, rtype: RecordType, creating: bool) -> RecordInput:
    errors: list[FieldError] = []
    parsed = parse_record(item, rtype, "", errors, creating=creating)
    invalid(errors)
    return parsed


async def _run_item(request: Request, rtype: RecordType, action: str, item: Any) -> str:
    """Do one item; returns the id of the record it touched."""
    service, p, key = svc(request), who(request), rtype.key
    if action == "create":
        made = await service.create_records(p, key, [_record_item(item, rtype, True)])
        return made[0].id
    if action == "update":
        rid = _reference(item, "id")
        updated = await service.update_record(p, key, rid, _record_item(item, rtype, False))
        return updated.id
    if action == "delete":
        return (await service.delete_record(p, key, _reference(item, "id"))).id
    if action == "delete_by_external_id":
        return (await service.delete_by(p, key, "external_id", _reference(item, "external_id"))).id
    column = "external_id" if action == "create_or_update_by_external_id" else "name"
    value = _reference(item, column)
    record, _created = await upsert_one(request, rtype, column, value, item)
    return record.id


async def _result(
    request: Request, rtype: RecordType, action: str, i: int, item: Any
) -> dict[str, Any]:
    try:
        rid = await _run_item(request, rtype, action, item)
    except RecordbaseError as exc:
        _status, body = error_body(exc)
        details = body.get("details")
        text = (
            "; ".join(f"{k}: {e['description']}" for k, es in details.items() for e in es)
            if isinstance(details, dict)
            else str(body.get("description", ""))
        )
        return {
            "index": i,
            "id": item.get("id") if isinstance(item, dict) else item,
            "action": action,
            "success": False,
            "error": body["error"],
            "details": text,
        }
    status = _DONE.get(action, "Deleted" if action.startswith("delete") else "Updated")
    return {"index": i, "id": rid, "action": action, "success": True, "status": status}


async def create_job(request: Request) -> Response:
    check_params(request, ())
    job = await wrapped(request, "job")
    action, items = _check_job(job)
    rtype = await svc(request).type_for(who(request), request.path_params["key"])
    who(request).require("records", "write", rtype.key)
    results = [await _result(request, rtype, action, i, item) for i, item in enumerate(items)]
    job_id = svc(request).new_id()
    status = {
        "id": job_id,
        "status": "completed",
        "total": len(items),
        "progress": len(items),
        "message": f"Completed at {now_text(request)}",
        "results": results,
    }
    await svc(request).save_job_status(who(request), rtype.key, job_id, status)
    answer = {**status, "results": None, "url": _url(request, job_id)}
    return JSONResponse({"job_status": answer}, status_code=201)


def _url(request: Request, job_id: str) -> str:
    return api_url(request, f"/api/v2/job_statuses/{job_id}")


async def show_job_status(request: Request) -> Response:
    check_params(request, ())
    job_id = request.path_params["id"].removesuffix(".json")  # zenpy adds .json
    status = await svc(request).get_job_status(who(request), job_id)
    return JSONResponse({"job_status": {**status, "url": _url(request, job_id)}})


def routes() -> list[Route]:
    return [
        Route("/api/v2/custom_objects/{key}/jobs", create_job, methods=["POST"]),
        Route("/api/v2/job_statuses/{id}", show_job_status, methods=["GET"]),
    ]
