"""Zendesk custom objects and limits: /api/v2/custom_objects[/{key}], /limits/*.

An object is a record type (see model.py); these handlers translate and make one service call.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recordbase.core.types import RecordType
from recordbase.errors import FieldError
from recordbase.web.faces.zendesk.common import (
    api_url,
    check_params,
    now_text,
    svc,
    who,
    wrapped,
)
from recordbase.web.faces.zendesk.model import FIELD_LIMIT, ZendeskMeta, invalid
from recordbase.web.http import JSONResponse

OBJECT_MEMBERS: Final = (
    "key",
    "title",
    "title_pluralized",
    "description",
    "include_in_list_view",
    "allows_attachments",
    "allows_photos",
)
OBJECT_ECHO: Final = (
    "url",
    "created_at",
    "updated_at",
    "created_by_user_id",
    "updated_by_user_id",
    "raw_title",
    "raw_title_pluralized",
    "raw_description",
)
OBJECT_LIMIT: Final = 50
RECORD_LIMIT: Final = 1_000_000
SHOW_PARAMS: Final = ("include_permissions_metadata", "include_ui_path")
BASE: Final = "/api/v2/custom_objects"


def render_object(request: Request, rtype: RecordType) -> dict[str, Any]:
    obj = ZendeskMeta(rtype.extra).object
    title = rtype.definition.name
    plural = obj.get("title_pluralized", title)
    return {
        "key": rtype.key,
        "title": title,
        "raw_title": title,
        "title_pluralized": plural,
        "raw_title_pluralized": plural,
        "description": rtype.definition.description,
        "raw_description": rtype.definition.description,
        "include_in_list_view": obj.get("include_in_list_view", True),
        "allows_attachments": obj.get("allows_attachments", False),
        "allows_photos": obj.get("allows_photos", False),
        "created_at": rtype.created_at,
        "updated_at": rtype.updated_at,
        "created_by_user_id": obj.get("created_by_user_id", ""),
        "updated_by_user_id": obj.get("updated_by_user_id", ""),
        "url": api_url(request, f"{BASE}/{rtype.key}"),
    }


def _check_object(body: dict[str, Any], *, creating: bool) -> None:
    errors = [
        FieldError(f"/{k}", "unknown_member", f"valid: {', '.join(OBJECT_MEMBERS)}")
        for k in body
        if k not in OBJECT_MEMBERS and k not in OBJECT_ECHO
    ]
    required = ("key", "title", "title_pluralized") if creating else ()
    for member in ("key", "title", "title_pluralized", "description"):
        value = body.get(member)
        if member in required and (not isinstance(value, str) or not value.strip()):
            errors.append(FieldError(f"/{member}", "required", f"{member} is required"))
        elif member in body and not isinstance(value, str):
            errors.append(FieldError(f"/{member}", "type", "expected a string"))
    for member in ("include_in_list_view", "allows_attachments", "allows_photos"):
        if member in body and not isinstance(body[member], bool):
            errors.append(FieldError(f"/{member}", "type", "expected true or false"))
    invalid(errors)


def _object_meta(body: dict[str, Any], meta: ZendeskMeta, user: str) -> None:
    for member in (
        "title_pluralized",
        "include_in_list_view",
        "allows_attachments",
        "allows_photos",
    ):
        if member in body:
            meta.object[member] = body[member]
    meta.object.setdefault("created_by_user_id", user)
    meta.object["updated_by_user_id"] = user


async def list_objects(request: Request) -> Response:
    check_params(request, ("include_ui_path",))
    types = await svc(request).list_types(who(request))
    return JSONResponse({"custom_objects": [render_object(request, t) for t in types]})


async def create_object(request: Request) -> Response:
    check_params(request, ())
    body = await wrapped(request, "custom_object")
    _check_object(body, creating=True)
    p = who(request)
    definition = {
        "key": body["key"],
        "name": body["title"],
        "description": body.get("description", ""),
        "schema": {"type": "object", "properties": {}},
        # Zendesk's record search and autocomplete are text searches (docs/faces/zendesk.md).
        "search": True,
    }
    meta = ZendeskMeta({})
    _object_meta(body, meta, p.actor)
    meta.ensure_standard(now_text(request))
    rtype = await svc(request).create_type(p, definition, extra=meta.extra())
    return JSONResponse({"custom_object": render_object(request, rtype)}, status_code=201)


async def show_object(request: Request) -> Response:
    check_params(request, SHOW_PARAMS)
    rtype, _next = await svc(request).get_type(who(request), request.path_params["key"])
    return JSONResponse({"custom_object": render_object(request, rtype)})


async def update_object(request: Request) -> Response:
    check_params(request, ())
    key = request.path_params["key"]
    body = await wrapped(request, "custom_object", allow_empty=True)
    _check_object(body, creating=False)
    if "key" in body and body["key"] != key:
        invalid([FieldError("/key", "immutable", "the key of an object cannot change")])
    p = who(request)
    rtype, _next = await svc(request).get_type(p, key)
    if not body:
        return JSONResponse({"custom_object": render_object(request, rtype)})
    meta = ZendeskMeta(rtype.extra)
    _object_meta(body, meta, p.actor)
    changes = {
        m: body[n] for n, m in (("title", "name"), ("description", "description")) if n in body
    }
    rtype, _next = await svc(request).update_type(p, key, changes, extra=meta.extra())
    return JSONResponse({"custom_object": render_object(request, rtype)})


async def delete_object(request: Request) -> Response:
    check_params(request, ())
    await svc(request).delete_type(who(request), request.path_params["key"])
    return Response(status_code=204)


async def object_limit(request: Request) -> Response:
    check_params(request, ())
    types = await svc(request).list_types(who(request))
    return JSONResponse({"count": len(types), "limit": OBJECT_LIMIT})


async def record_limit(request: Request) -> Response:
    check_params(request, ())
    p = who(request)
    types = await svc(request).list_types(p)
    total = 0
    for rtype in types:
        if p.can("records", "read", rtype.key):
            total += await svc(request).count_records(p, rtype.key)
    return JSONResponse({"count": total, "limit": RECORD_LIMIT})


async def field_limit(request: Request) -> Response:
    check_params(request, ())
    rtype, _next = await svc(request).get_type(who(request), request.path_params["key"])
    return JSONResponse({"count": len(ZendeskMeta(rtype.extra).fields), "limit": FIELD_LIMIT})


def routes() -> list[Route]:
    return [
        Route(BASE, list_objects, methods=["GET"]),
        Route(BASE, create_object, methods=["POST"]),
        Route(BASE + "/limits/object_limit", object_limit, methods=["GET"]),
        Route(BASE + "/limits/record_limit", record_limit, methods=["GET"]),
        Route(BASE + "/{key}", show_object, methods=["GET"]),
        Route(BASE + "/{key}", update_object, methods=["PATCH", "PUT"]),
        Route(BASE + "/{key}", delete_object, methods=["DELETE"]),
        Route(BASE + "/{key}/limits/field_limit", field_limit, methods=["GET"]),
    ]


__all__ = ["render_object", "routes"]
