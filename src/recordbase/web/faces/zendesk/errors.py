"""Zendesk's side of the pipeline: credentials, caller identity, rate-limit headers, errors.

Zendesk clients authenticate with `Authorization: Bearer <token>` or Basic
`{email}/token:{api_token}`; the token is our API key and, with Basic, the email becomes the
principal's user (it is what `created_by_user_id` shows). Errors are rendered in Zendesk's
envelope `{"error", "description", "details"}`: body validation, uniqueness and frozen-property
failures are 422 `RecordInvalid` with per-field details, as Zendesk reports them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import replace
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from recordbase.core.records import Principal
from recordbase.errors import (
    AliasConflict,
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    InvalidCursor,
    InvalidJson,
    MethodNotAllowed,
    NestingTooDeep,
    NotFound,
    PageTooLarge,
    PayloadTooLarge,
    RateLimited,
    ReadOnlyField,
    RecordbaseError,
    RecordTooLarge,
    RouteNotFound,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from recordbase.ratelimit import Decision
from recordbase.web.http import JSONResponse

# Failures of the body's content: Zendesk answers these 422 RecordInvalid with details.
_RECORD_INVALID = (ValidationFailed, ReadOnlyField, AliasConflict, Conflict, RecordTooLarge)


def _basic(headers: Headers) -> tuple[str, str] | None:
    """(email, token) from Basic `{email}/token:{token}`; None for any other header."""
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, token = decoded.partition(":")
    email, slash, kind = user.rpartition("/")
    if not slash or kind != "token" or not email or not token:
        return None  # a password login: Zendesk API keys always come as {email}/token
    return email, token


def credentials(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    found = _basic(headers)
    return found[1] if found else None


def refine(principal: Principal, headers: Headers) -> Principal:
    """With Basic auth the caller names itself by email; records show it as the user."""
    found = _basic(headers)
    return replace(principal, user=found[0]) if found else principal


def limit_headers(d: Decision) -> dict[str, str]:
    return {"X-Rate-Limit": str(d.limit), "X-Rate-Limit-Remaining": str(d.remaining)}


def detail_key(path: str) -> str:
    """A JSON Pointer from the core (`/records/0/data/color`) as Zendesk names the attribute."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "records" and parts[1].isdigit():
        parts = parts[2:]
    if not parts:
        return "base"
    if parts[0] == "data":
        return "custom_object_fields." + ".".join(parts[1:]) if len(parts) > 1 else "base"
    return ".".join(parts)


def _detail_error(code: str) -> str:
    if code in ("required", "min_items"):
        return "BlankValue"
    if code in ("unique", "duplicate", "duplicate_id", "unique_violation", "type_exists"):
        return "DuplicateValue"
    return "InvalidValue"


def _details(error: RecordbaseError) -> dict[str, list[dict[str, str]]]:
    details: dict[str, list[dict[str, str]]] = {}
    items = error.errors or [FieldError(_conflict_path(error), error.code, error.detail)]
    for item in items:
        entry = {"description": item.message, "error": _detail_error(item.code)}
        details.setdefault(detail_key(item.path), []).append(entry)
    return details


def _conflict_path(error: RecordbaseError) -> str:
    key = error.extra.get("key")
    return f"/{key}" if key in ("name", "external_id", "id") else ""


def error_body(error: RecordbaseError) -> tuple[int, dict[str, Any]]:
    """The status and Zendesk body for one of our errors."""
    if isinstance(error, _RECORD_INVALID):
        body: dict[str, Any] = {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": _details(error),
        }
        return 422, body
    if isinstance(error, Unauthenticated):
        return 401, {"error": "Couldn't authenticate you", "description": error.detail}
    if isinstance(error, Forbidden):
        return 403, {"error": "Forbidden", "description": error.detail}
    if isinstance(error, RouteNotFound):
        return 404, {"error": "InvalidEndpoint", "description": "Not found"}
    if isinstance(error, NotFound):
        return 404, {"error": "RecordNotFound", "description": "Not found"}
    if isinstance(error, RateLimited):
        return 429, {"error": "TooManyRequests", "description": error.detail}
    return error.status, {"error": _name(error), "description": error.detail}


def _name(error: RecordbaseError) -> str:
    if isinstance(error, (InvalidCursor, PageTooLarge)):
        return "InvalidPaginationParameter"
    if isinstance(error, (InvalidJson, NestingTooDeep, UnsupportedMediaType)):
        return "InvalidJSON" if not isinstance(error, UnsupportedMediaType) else "InvalidMediaType"
    if isinstance(error, MethodNotAllowed):
        return "InvalidEndpoint"
    if isinstance(error, PayloadTooLarge):
        return "RequestTooLarge"
    if isinstance(error, BadRequest):
        return "InvalidParameter"
    return "InternalError" if error.status >= 500 else "Error"


def render_error(error: RecordbaseError, request: Request) -> Response:
    status, body = error_body(error)
    return JSONResponse(body, status_code=status)
