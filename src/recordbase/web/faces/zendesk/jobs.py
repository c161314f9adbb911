"""Zendesk bulk record jobs: POST .../{key}/jobs and GET /api/v2/job_statuses/{id}.

A Zendesk job (at most 100 items, one of six actions) becomes one of the core's durable jobs
(core/jobs.py): its items are translated to native record items here, checked for Zendesk's
shape rules at submission (a malformed item refuses the whole job, 422), and carried out later
by the job runner, item by item, each with its own result. The POST answers 201 with the queued
job's status; GET job_statuses renders the core job and its per-item results in Zendesk's shape.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.core.clock import utc_text
from recordbase.core.jobs import RUNNING, ItemResult, Job
from recordbase.core.records import UNSET
from recordbase.core.types import RecordType
from recordbase.errors import FieldError, RecordbaseError, all_error_classes
from recordbase.web.faces.zendesk.codec import parse_record
from recordbase.web.faces.zendesk.common import api_url, check_params, svc, who, wrapped
from recordbase.web.faces.zendesk.errors import error_body
from recordbase.web.faces.zendesk.model import invalid
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


def _reference(item: Any, member: str, where: str, errors: list[FieldError]) -> dict[str, str]:
    """A delete item: Zendesk sends plain strings; `{"id": ...}` objects are taken too."""
    value = item.get(member) if isinstance(item, dict) else item
    if not isinstance(value, str) or not value:
        errors.append(FieldError(where, "required", f"a {member} string"))
        return {}
    return {member: value}


def _record(
    item: Any, rtype: RecordType, action: str, where: str, errors: list[FieldError]
) -> dict[str, Any]:
    """A record item as the core's native item: {id?, name?, external_id?, data?}."""
    parsed = parse_record(item, rtype, where, errors, creating=action == "create")
    native: dict[str, Any] = {}
    for member in ("name", "external_id", "data"):
        value = getattr(parsed, member)
        if value is not UNSET:
            native[member] = value
    if action == "update":
        native.update(_reference(item, "id", f"{where}/id", errors))
    return native


# Zendesk action -> (core action, options)
CORE_ACTIONS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "create": ("create", {}),
    "update": ("update", {"merge": True}),
    "delete": ("delete", {}),
    "delete_by_external_id": ("delete_by", {"on": "external_id"}),
    "create_or_update_by_external_id": ("upsert", {"on": "external_id", "merge": True}),
    "create_or_update_by_name": ("upsert", {"on": "name", "merge": True}),
}


def _native_items(rtype: RecordType, action: str, items: list[Any]) -> list[dict[str, Any]]:
    errors: list[FieldError] = []
    native = []
    for i, item in enumerate(items):
        where = f"/job/items/{i}"
        if action == "delete":
            native.append(_reference(item, "id", where, errors))
        elif action == "delete_by_external_id":
            native.append(_reference(item, "external_id", where, errors))
        else:
            native.append(_record(item, rtype, action, where, errors))
            key = "external_id" if action.endswith("external_id") else "name"
            if action.startswith("create_or_update") and not native[-1].get(key):
                errors.append(FieldError(f"{where}/{key}", "required", f"the {key} to match"))
    invalid(errors)
    return native


def _status_text(status: str) -> str:
    return "working" if status == RUNNING else status


def _result(r: ItemResult, action: str) -> dict[str, Any]:
    if r.ok:
        done = {"create": "Created", "update": "Updated", "delete": "Deleted"}
        return {
            "index": r.index,
            "id": r.id,
            "action": action,
            "success": True,
            "status": done.get(r.action or "", "Updated"),
        }
    error = r.error or {}
    cls = _ERRORS.get(error.get("code", ""), RecordbaseError)
    fields = [FieldError(e["path"], e["code"], e["message"]) for e in error.get("errors", [])]
    _status, body = error_body(cls(error.get("message", ""), errors=fields))
    details = body.get("details")
    text = (
        "; ".join(f"{k}: {e['description']}" for k, es in details.items() for e in es)
        if isinstance(details, dict)
        else str(body.get("description", ""))
    )
    return {
        "index": r.index,
        "id": None,
        "action": action,
        "success": False,
        "error": body["error"],
        "details": text,
    }


_ERRORS: Final = {c.code: c for c in all_error_classes()}


def render_job(request: Request, job: Job) -> dict[str, Any]:
    action = _zendesk_action(job)
    message = None
    if job.finished_at is not None:
        message = f"Completed at {utc_text(job.finished_at)}"
    if job.error:
        message = str(job.error.get("message", "failed"))
    results = None if job.results is None else [_result(r, action) for r in job.results]
    return {
        "id": job.id,
        "status": _status_text(job.status),
        "total": job.total,
        "progress": job.processed,
        "message": message,
        "results": results,
        "url": api_url(request, f"/api/v2/job_statuses/{job.id}"),
    }


async def create_job(request: Request) -> Response:
    check_params(request, ())
    job = await wrapped(request, "job")
    action, items = _check_job(job)
    p = who(request)
    rtype = await svc(request).type_for(p, request.path_params["key"])
    p.require("records", "write", rtype.key)
    core_action, options = CORE_ACTIONS[action]
    native = _native_items(rtype, action, items)
    made = await svc(request).submit_job(
        p, rtype.key, core_action, native, options, where="/job/items"
    )
    return JSONResponse({"job_status": render_job(request, made)}, status_code=201)


def _zendesk_action(job: Job) -> str:
    """The Zendesk action a core job was submitted as (the inverse of CORE_ACTIONS)."""
    if job.action == "delete_by":
        return "delete_by_external_id"
    if job.action == "upsert":
        return f"create_or_update_by_{job.options.get('on', 'external_id')}"
    return job.action


async def show_job_status(request: Request) -> Response:
    check_params(request, ())
    job_id = request.path_params["id"].removesuffix(".json")  # zenpy adds .json
    job = await svc(request).get_job(who(request), job_id)
    return JSONResponse({"job_status": render_job(request, job)})


def routes() -> list[Route]:
    return [
        Route("/api/v2/custom_objects/{key}/jobs", create_job, methods=["POST"]),
        Route("/api/v2/job_statuses/{id}", show_job_status, methods=["GET"]),
    ]
