"""Zendesk custom object fields: /api/v2/custom_objects/{key}/fields[...].

Each change rewrites the record type's JSON Schema (model.field_schema) and its persisted
Zendesk metadata in one `update_type` call; the name field's `properties` become the type's
naming rule, which the core freezes once records exist.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.core.types import RecordType
from recordbase.errors import FieldError, NotFound
from recordbase.web.faces.zendesk.common import (
    api_url,
    bool_param,
    check_params,
    now_text,
    svc,
    who,
    wrapped,
)
from recordbase.web.faces.zendesk.model import (
    FIELD_ECHO,
    FIELD_LIMIT,
    FIELD_MEMBERS,
    ZendeskMeta,
    check_field,
    check_kind,
    invalid,
    name_properties,
    naming_from_properties,
    stored_options,
)
from recordbase.web.http import JSONResponse, json_body

BASE: Final = "/api/v2/custom_objects/{key}/fields"
PAGE_PARAMS: Final = ("page[size]", "page[after]", "page[before]")
STANDARD_WRITABLE: Final = ("title", "description", "properties")


def render_field(
    request: Request, rtype: RecordType, f: dict[str, Any], next_number: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": f["id"],
        "key": f["key"],
        "type": f["type"],
        "title": f["title"],
        "raw_title": f["title"],
        "description": f.get("description", ""),
        "raw_description": f.get("description", ""),
        "position": f.get("position", 0),
        "active": f.get("active", True),
        "required": f.get("required", False),
        "system": False,
        "regexp_for_validation": f.get("regexp_for_validation"),
        "created_at": f["created_at"],
        "updated_at": f["updated_at"],
        "url": api_url(request, f"/api/v2/custom_objects/{rtype.key}/fields/{f['id']}"),
    }
    for member in (
        "custom_field_options",
        "tag",
        "relationship_target_type",
        "relationship_filter",
    ):
        if f.get(member) is not None:
            out[member] = f[member]
    if f["key"] == "standard::name":
        out["properties"] = name_properties(rtype.naming, next_number)
    return out


def _ordered(meta: ZendeskMeta, now: str, standard: bool) -> list[dict[str, Any]]:
    custom = sorted(meta.fields, key=lambda f: (f.get("position", 0), f["id"]))
    if not standard:
        return custom
    meta.ensure_standard(now)
    return [*meta.standard.values(), *custom]


async def list_fields(request: Request) -> Response:
    check_params(request, ("include_standard_fields", *PAGE_PARAMS))
    rtype, next_number = await svc(request).get_type(who(request), request.path_params["key"])
    fields = _ordered(
        ZendeskMeta(rtype.extra), now_text(request), bool_param(request, "include_standard_fields")
    )
    rendered = [render_field(request, rtype, f, next_number) for f in fields]
    return JSONResponse({"custom_object_fields": rendered})


def _find(meta: ZendeskMeta, key_or_id: str, now: str) -> dict[str, Any]:
    found = meta.field(key_or_id) or meta.standard_field(key_or_id, now)
    if found is None:
        raise NotFound(f"No field {key_or_id!r} on this object.")
    return found


async def show_field(request: Request) -> Response:
    check_params(request, ("include_standard_fields",))
    rtype, next_number = await svc(request).get_type(who(request), request.path_params["key"])
    f = _find(ZendeskMeta(rtype.extra), request.path_params["field"], now_text(request))
    return JSONResponse({"custom_object_field": render_field(request, rtype, f, next_number)})


def _apply(f: dict[str, Any], body: dict[str, Any], meta: ZendeskMeta, now: str) -> None:
    for member in FIELD_MEMBERS:
        if member in body and member not in ("key", "type", "properties"):
            f[member] = body[member]
    if f["type"] in ("dropdown", "multiselect") and isinstance(f.get("custom_field_options"), list):
        invalid(check_kind(f))
        f["custom_field_options"] = stored_options(f["custom_field_options"], meta)
    f["updated_at"] = now


async def create_field(request: Request) -> Response:
    check_params(request, ())
    key = request.path_params["key"]
    body = await wrapped(request, "custom_object_field")
    p = who(request)
    rtype, next_number = await svc(request).get_type(p, key)
    meta = ZendeskMeta(rtype.extra)
    errors = check_field(body, meta, creating=True)
    if "properties" in body:
        errors.append(FieldError("/properties", "invalid", "only the name field has properties"))
    if len(meta.fields) >= FIELD_LIMIT:
        errors.append(FieldError("/base", "limit", f"at most {FIELD_LIMIT} fields per object"))
    invalid(errors)
    now = now_text(request)
    position = max((f.get("position", 0) for f in meta.fields), default=1) + 1
    f: dict[str, Any] = {
        "id": meta.new_id(),
        "key": body["key"],
        "type": body.get("type", "text"),
        "title": body["title"],
        "description": "",
        "position": position,
        "active": True,
        "required": False,
        "created_at": now,
    }
    invalid(check_kind({**f, **body}))
    _apply(f, body, meta, now)
    meta.fields.append(f)
    rtype, next_number = await svc(request).update_type(
        p, key, {"schema": meta.schema()}, extra=meta.extra()
    )
    rendered = render_field(request, rtype, f, next_number)
    return JSONResponse({"custom_object_field": rendered}, status_code=201)


async def update_field(request: Request) -> Response:
    check_params(request, ())
    key = request.path_params["key"]
    body = await wrapped(request, "custom_object_field", allow_empty=True)
    p = who(request)
    rtype, next_number = await svc(request).get_type(p, key)
    meta = ZendeskMeta(rtype.extra)
    now = now_text(request)
    f = _find(meta, request.path_params["field"], now)
    if not body:
        return JSONResponse({"custom_object_field": render_field(request, rtype, f, next_number)})
    changes: dict[str, Any] = {}
    if f["key"].startswith("standard::"):
        _update_standard(f, body, rtype, next_number, changes)
        f["updated_at"] = now
    else:
        errors = check_field(body, meta, creating=False)
        for member in ("key", "type"):
            if member in body and body[member] != f[member]:
                errors.append(FieldError(f"/{member}", "immutable", f"a field's {member} is fixed"))
        if "properties" in body:
            errors.append(FieldError("/properties", "invalid", "only the name field has them"))
        invalid(errors)
        _apply(f, body, meta, now)
        invalid(check_kind(f))
        changes["schema"] = meta.schema()
    rtype, next_number = await svc(request).update_type(p, key, changes, extra=meta.extra())
    return JSONResponse({"custom_object_field": render_field(request, rtype, f, next_number)})


def _update_standard(
    f: dict[str, Any],
    body: dict[str, Any],
    rtype: RecordType,
    next_number: int,
    changes: dict[str, Any],
) -> None:
    errors = [
        FieldError(
            f"/{m}", "read_only", f"standard fields only take {', '.join(STANDARD_WRITABLE)}"
        )
        for m in body
        if m not in STANDARD_WRITABLE and m not in FIELD_ECHO and body[m] != f.get(m)
    ]
    if "properties" in body and f["key"] != "standard::name":
        errors.append(FieldError("/properties", "invalid", "only the name field has them"))
    for member in ("title", "description"):
        if member in body and not isinstance(body[member], str):
            errors.append(FieldError(f"/{member}", "type", "expected a string"))
    invalid(errors)
    for member in ("title", "description"):
        if member in body:
            f[member] = body[member]
    if "properties" in body:
        changes["naming"] = naming_from_properties(body["properties"], rtype.naming, next_number)


async def delete_field(request: Request) -> Response:
    check_params(request, ())
    key = request.path_params["key"]
    p = who(request)
    rtype, _next = await svc(request).get_type(p, key)
    meta = ZendeskMeta(rtype.extra)
    f = _find(meta, request.path_params["field"], now_text(request))
    if f["key"].startswith("standard::"):
        invalid([FieldError("/key", "invalid", "standard fields can't be deleted")])
    meta.fields = [g for g in meta.fields if g["id"] != f["id"]]
    await svc(request).update_type(p, key, {"schema": meta.schema()}, extra=meta.extra())
    return Response(status_code=204)


async def reorder_fields(request: Request) -> Response:
    check_params(request, ())
    key = request.path_params["key"]
    body = await json_body(request, allow_empty=True)
    raw_ids = body.get("custom_object_field_ids") if isinstance(body, dict) else None
    if not isinstance(raw_ids, list) or set(body) - {"custom_object_field_ids"}:
        invalid([FieldError("/custom_object_field_ids", "required", "a list of field ids")])
    ids = [str(i) for i in raw_ids] if isinstance(raw_ids, list) else []
    p = who(request)
    rtype, _next = await svc(request).get_type(p, key)
    meta = ZendeskMeta(rtype.extra)
    by_id = {str(f["id"]): f for f in meta.fields}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        invalid(
            [
                FieldError(
                    "/custom_object_field_ids",
                    "invalid",
                    f"unknown field id(s) {', '.join(unknown)}; valid: {', '.join(by_id)}",
                )
            ]
        )
    order = ids + [i for i in by_id if i not in ids]
    for position, fid in enumerate(order, start=2):
        by_id[fid]["position"] = position
    await svc(request).update_type(p, key, {}, extra=meta.extra())
    return Response(status_code=200, media_type="application/json")


def routes() -> list[Route]:
    return [
        Route(BASE, list_fields, methods=["GET"]),
        Route(BASE, create_field, methods=["POST"]),
        Route(BASE + "/reorder", reorder_fields, methods=["PUT"]),
        Route(BASE + "/{field}", show_field, methods=["GET"]),
        # mercury-orm updates fields with PUT; Zendesk documents PATCH.
        Route(BASE + "/{field}", update_field, methods=["PATCH", "PUT"]),
        Route(BASE + "/{field}", delete_field, methods=["DELETE"]),
    ]
