"""The Keywords AI face: request logs in the vendor's dialect (seed 002, docs/faces/keywords.md).

`FACE` plugs the vendor's auth schemes (`Authorization: Bearer KEY` or `Api-Key KEY`) and error
shape (`{"detail": ...}`, and DRF's throttling message on 429) into the pipeline; `routes()`
are the request-log routes (web/faces/keywords/routes.py).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from recordbase.errors import RateLimited, RecordbaseError
from recordbase.web.faces.keywords.routes import PREFIXES, routes
from recordbase.web.http import JSONResponse
from recordbase.web.middleware import Face, bearer_or_api_key


def credentials(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "api-key" and token.strip():
        return token.strip()
    return bearer_or_api_key(headers)


def render_error(error: RecordbaseError, request: Request) -> Response:
    detail = error.detail
    if isinstance(error, RateLimited):
        detail = (
            "Request was throttled. Expected available in "
            f"{error.extra.get('retry_after', 1)} seconds."
        )
    body: dict[str, Any] = {"detail": detail, "code": error.code}
    if error.errors:
        body["errors"] = [e.as_dict() for e in error.errors]
    if "valid" in error.extra:
        body["valid"] = error.extra["valid"]
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return JSONResponse(body, status_code=error.status)


FACE = Face("keywords", PREFIXES, render_error, credentials=credentials)

__all__ = ["FACE", "routes"]
